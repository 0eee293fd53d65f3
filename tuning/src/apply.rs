//! Applying a profile (writing IRQ affinities and kernel settings under a
//! root), recording the previous values in an undo file, and reverting.
//!
//! Every write is read first: a missing target is an error before anything
//! is written, and the undo file is saved before the first write, so a
//! failure half-way can still be reverted.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::TuneError;
use crate::host::{selected_word, under, THP_PATH};
use crate::profile::Profile;

/// One file write: an absolute host path and the value written to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// Absolute host path (`/proc/irq/45/smp_affinity_list`).
    pub path: String,
    /// The value written (without newline).
    pub value: String,
}

impl fmt::Display for Write {
    /// `write /proc/irq/45/smp_affinity_list 3`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write {} {}", self.path, self.value)
    }
}

/// What `revert` needs: each written path and what it held before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoFile {
    /// Format version, 1.
    pub format: u32,
    /// The root the writes went to (informational; `revert` takes a root).
    pub root: String,
    /// The previous values, in the order they were overwritten.
    pub writes: Vec<Write>,
}

/// The writes `profile` asks for, in order: IRQ affinities, then settings.
pub fn planned_writes(profile: &Profile) -> Vec<Write> {
    let mut out: Vec<Write> = profile
        .irqs
        .iter()
        .map(|i| Write {
            path: format!("/proc/irq/{}/smp_affinity_list", i.irq),
            value: i.cpu.to_string(),
        })
        .collect();
    out.extend(profile.sysctls.iter().map(|s| Write {
        path: s.path.clone(),
        value: s.value.clone(),
    }));
    out
}

/// The value to write back to restore a file that currently holds `text`.
fn restorable(path: &str, text: &str) -> String {
    if path == THP_PATH {
        if let Some(w) = selected_word(text) {
            return w;
        }
    }
    text.trim().to_string()
}

/// Performs `profile`'s writes under `root`, first saving the previous
/// values to `undo_path`. Returns the writes made.
pub fn apply(profile: &Profile, root: &Path, undo_path: &Path) -> Result<Vec<Write>, TuneError> {
    let writes = planned_writes(profile);
    let mut previous = Vec::new();
    for w in &writes {
        let full = under(root, &w.path);
        let text = fs::read_to_string(&full).map_err(|e| TuneError::io(&full, e))?;
        previous.push(Write {
            path: w.path.clone(),
            value: restorable(&w.path, &text),
        });
    }
    let undo = UndoFile {
        format: 1,
        root: root.display().to_string(),
        writes: previous,
    };
    let text = toml::to_string(&undo)
        .map_err(|e| TuneError::Plan(format!("cannot encode the undo file: {e}")))?;
    fs::write(undo_path, text).map_err(|e| TuneError::io(undo_path, e))?;
    write_all(root, &writes)?;
    Ok(writes)
}

/// Reads an undo file.
pub fn load_undo(path: &Path) -> Result<UndoFile, TuneError> {
    let text = fs::read_to_string(path).map_err(|e| TuneError::io(path, e))?;
    let undo: UndoFile = toml::from_str(&text)
        .map_err(|e| TuneError::parse(path, format!("not a valid undo file: {e}")))?;
    if undo.format != 1 {
        return Err(TuneError::parse(
            path,
            format!("undo file format {} is not supported", undo.format),
        ));
    }
    for w in &undo.writes {
        let ok = (w.path.starts_with("/proc/") || w.path.starts_with("/sys/"))
            && !w.path.split('/').any(|c| c == "..");
        if !ok {
            return Err(TuneError::parse(
                path,
                format!("refusing to write {:?}: only /proc and /sys paths", w.path),
            ));
        }
    }
    Ok(undo)
}

/// Writes back the previous values of an undo file under `root`, last
/// write first. Returns the writes made.
pub fn revert(undo_path: &Path, root: &Path) -> Result<Vec<Write>, TuneError> {
    let undo = load_undo(undo_path)?;
    let writes: Vec<Write> = undo.writes.into_iter().rev().collect();
    write_all(root, &writes)?;
    Ok(writes)
}

fn write_all(root: &Path, writes: &[Write]) -> Result<(), TuneError> {
    for w in writes {
        let full = under(root, &w.path);
        fs::write(&full, format!("{}\n", w.value)).map_err(|e| TuneError::io(&full, e))?;
    }
    Ok(())
}
