//! `nodes.conf`: read at start (or created, with a new node ID), written
//! atomically on every change (a temporary file renamed over it), and
//! locked so two nodes cannot share it.
//!
//! When an epoch changed (a node must never forget an epoch it announced),
//! the save is durable before it returns: fsync of the file, rename, fsync
//! of the directory. Other changes (slot assignments, node addresses and
//! flags) are renamed in at once, so a crash of the process keeps them,
//! and fsynced by the bus's next cron, within 100 ms: a reshard changes
//! slots several times per slot moved, and an fsync each would make it 50
//! times slower on a disk that takes 10 ms per fsync (Redis does not fsync
//! those either).

use cluster::nodes_conf;
use cluster::state::{Cluster, Config};
use cluster::NodeId;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A node's state from its file, and the lock that holds the file.
pub struct Loaded {
    pub cluster: Cluster,
    pub file: ConfFile,
}

/// The config file this node owns, locked.
pub struct ConfFile {
    path: PathBuf,
    /// Holds an exclusive `flock` on the current file.
    lock: Option<File>,
    /// The file on disk was renamed in but not fsynced yet.
    unsynced: bool,
}

/// Redis's refusal when another node holds the file.
fn used_elsewhere(path: &Path) -> String {
    format!(
        "Sorry, the cluster configuration file {} is already used by a different Redis Cluster node. Please make sure that different nodes use different cluster configuration files.",
        path.display()
    )
}

/// Takes an exclusive lock on `path` (created if missing): `Err` when
/// another process holds it.
fn lock(path: &Path) -> Result<File, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| {
            format!(
                "Can't open {} in order to acquire a lock: {}",
                path.display(),
                crate::log::io_error_text(&e)
            )
        })?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(used_elsewhere(path));
        }
        return Err(format!(
            "Impossible to lock {}: {}",
            path.display(),
            crate::log::io_error_text(&e)
        ));
    }
    Ok(f)
}

/// Reads `path` (Redis's `clusterLoadConfig`), or starts a new node when
/// it does not exist or is empty. A file that does not parse stops the
/// start with the reason.
pub fn load(path: &Path, config: Config, now_ms: u64) -> Result<Loaded, String> {
    let text = match std::fs::read(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(format!(
                "Loading the cluster node config from {}: {}",
                path.display(),
                crate::log::io_error_text(&e)
            ))
        }
    };
    let lock = lock(path)?;
    let mut file = ConfFile {
        path: path.to_path_buf(),
        lock: Some(lock),
        unsynced: false,
    };
    let cluster = match text.filter(|t| !t.is_empty()) {
        Some(t) => {
            let text = String::from_utf8(t).map_err(|_| {
                format!(
                    "Unrecoverable error: corrupted cluster config file \"{}\": not text.",
                    path.display()
                )
            })?;
            let conf = nodes_conf::parse(&text).map_err(|e| {
                format!(
                    "Unrecoverable error: corrupted cluster config file \"{}\": {e}",
                    path.display()
                )
            })?;
            let c = Cluster::from_conf(&conf, config, now_ms).map_err(|e| {
                format!(
                    "Unrecoverable error: cluster config file \"{}\": {e}",
                    path.display()
                )
            })?;
            crate::log::notice(format_args!(
                "Node configuration loaded, I'm {}",
                c.myself()
            ));
            c
        }
        None => {
            let id = NodeId::random(&mut rand::thread_rng());
            let c = Cluster::new(id, config, now_ms);
            crate::log::notice(format_args!("No cluster configuration found, I'm {id}"));
            file.save(&c, true).map_err(|e| {
                format!(
                    "Fatal: can't update cluster config file: {}",
                    crate::log::io_error_text(&e)
                )
            })?;
            c
        }
    };
    Ok(Loaded { cluster, file })
}

impl ConfFile {
    /// Writes the cluster's state: a temporary file beside it, renamed over
    /// it; `durable`: with fsyncs of the file before the rename and of the
    /// directory after, else left for [`ConfFile::sync`].
    pub fn save(&mut self, cluster: &Cluster, durable: bool) -> std::io::Result<()> {
        let text = nodes_conf::render(&cluster.nodes_conf());
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            if durable {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if durable {
            self.sync_dir()?;
        }
        self.unsynced = !durable;
        // The old lock is on the replaced file: hold the new one.
        if let Ok(l) = lock(&self.path) {
            self.lock = Some(l);
        }
        Ok(())
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)?.sync_all()
    }

    /// Makes a save that was not durable durable (the bus's cron).
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            File::open(&self.path)?.sync_all()?;
            self.sync_dir()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
