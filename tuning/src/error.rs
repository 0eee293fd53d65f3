//! The one error type of the crate. Every variant that comes from a file
//! names the file, so an operator can go and look at it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading a host, planning, loading a
/// profile, applying or reverting it.
#[derive(Debug)]
pub enum TuneError {
    /// A file or directory could not be read or written.
    Io {
        /// The file, as seen from the process (root prefix included).
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file was read but its content makes no sense.
    Parse {
        /// The file, as seen from the process (root prefix included).
        path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// A profile does not fit the host it is checked against.
    Mismatch(String),
    /// A plan cannot be made with the given options on this host.
    Plan(String),
    /// A command line or option that makes no sense.
    Usage(String),
}

impl TuneError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        TuneError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, detail: impl Into<String>) -> Self {
        TuneError::Parse {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for TuneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuneError::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            TuneError::Parse { path, detail } => write!(f, "{}: {}", path.display(), detail),
            TuneError::Mismatch(m) => write!(f, "profile does not fit this host: {m}"),
            TuneError::Plan(m) => write!(f, "cannot plan: {m}"),
            TuneError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for TuneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TuneError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
