//! `nodes.conf`: read at start (or created, with a new node ID), replaced
//! atomically on every change, and locked so two nodes cannot share it.
//!
//! Two files take turns: `nodes.conf` and `nodes.conf.tmp`. A save writes
//! the whole new text into the `.tmp` file in place, then swaps the two
//! names in one step (`renameat2(RENAME_EXCHANGE)`): `nodes.conf` is always
//! a whole file, old or new, and no inode is ever freed (on a filesystem
//! mounted with `discard`, freeing the replaced file of a plain rename
//! costs milliseconds of kernel time per save, and a reshard saves several
//! times per slot on every node). Both files are `flock`ed for the life of
//! the process. Where the filesystem cannot exchange names, a plain rename
//! is used. A text shorter than the file it goes into is padded with
//! newlines, as Redis pads it (the loader skips blank lines): truncating
//! costs more than writing.
//!
//! When an epoch changed (a node must never forget an epoch it announced),
//! the save is durable before it returns: fsync of the file, the swap,
//! fsync of the directory. Other changes (slot assignments, node addresses
//! and flags) are swapped in at once, so a crash of the process keeps them,
//! and fsynced by the bus's next cron, within 100 ms (Redis does not fsync
//! those either).

use cluster::nodes_conf;
use cluster::state::{Cluster, Config};
use cluster::NodeId;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A node's state from its file, and the lock that holds the file.
pub struct Loaded {
    pub cluster: Cluster,
    pub file: ConfFile,
}

/// The config file this node owns, and its partner, both locked.
pub struct ConfFile {
    path: PathBuf,
    tmp: PathBuf,
    /// The file now named `path`.
    cur: File,
    /// The file now named `tmp`: the next save is written there.
    spare: File,
    /// The file named `path` was swapped in but not fsynced yet.
    unsynced: bool,
}

/// Swaps the names `a` and `b` (both must exist).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two NUL-terminated paths we own.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
        .write(true)
        .create(true)
        .truncate(false)
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
    let cur = lock(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let spare = lock(&tmp)?;
    let mut file = ConfFile {
        path: path.to_path_buf(),
        tmp,
        cur,
        spare,
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
    /// Replaces the file with the cluster's state (see the module doc);
    /// `durable`: fsynced before the swap and the directory after, else
    /// left for [`ConfFile::sync`].
    pub fn save(&mut self, cluster: &Cluster, durable: bool) -> std::io::Result<()> {
        let mut text = nodes_conf::render(&cluster.nodes_conf()).into_bytes();
        // As Redis does: a shorter text is padded with newlines (lines the
        // loader skips) rather than the file truncated, which costs more
        // than the write on ext4.
        let had = self.spare.metadata()?.len() as usize;
        if text.len() < had {
            text.resize(had, b'\n');
        }
        self.spare.write_all_at(&text, 0)?;
        if durable {
            self.spare.sync_all()?;
        }
        match exchange(&self.tmp, &self.path) {
            Ok(()) => std::mem::swap(&mut self.cur, &mut self.spare),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // No exchange here: rename, and lock a new partner.
                std::fs::rename(&self.tmp, &self.path)?;
                let fresh = lock(&self.tmp).map_err(std::io::Error::other)?;
                self.cur = std::mem::replace(&mut self.spare, fresh);
            }
            Err(e) => return Err(e),
        }
        if durable {
            self.sync_dir()?;
        }
        self.unsynced = !durable;
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
            self.cur.sync_all()?;
            self.sync_dir()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
