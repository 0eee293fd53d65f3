//! DEBUG RELOAD and DEBUG LOADAOF's file work, off the cores: a thread
//! reads the RDB file or the append-only directory back (after waiting for
//! the AOF to be on disk) and a task on the asking core awaits it
//! ([`off_core`]); the task then hands each core its keys.

use super::aof::Aof;
use super::file;
use crate::mesh::{Mesh, Msg};
use engine::rdb::read::Entry;
use engine::value::EncodingLimits;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Keys read back, per core: (db, entry) of the keys in its slots.
pub type PerCore = Vec<Vec<(usize, Entry)>>;

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// The result of work running on its own thread, for a task on `core`.
pub struct OffCore<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// Runs `f` on a new thread named `name`; the returned future, polled by
/// a task on core `core`, yields its result (`Err` when no thread could
/// be started).
pub fn off_core<T: Send + 'static>(
    mesh: &Arc<Mesh>,
    core: usize,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<OffCore<T>, String> {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let (slot2, mesh) = (slot.clone(), mesh.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let v = f();
            let waker = match slot2.lock() {
                Ok(mut s) => {
                    s.value = Some(v);
                    s.waker.take()
                }
                Err(_) => None,
            };
            if let Some(w) = waker {
                w.wake();
                mesh.send(core, Msg::Wake);
            }
        })
        .map_err(|e| format!("can't start a thread: {e}"))?;
    Ok(OffCore { slot })
}

impl<T> Future for OffCore<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut s) = self.slot.lock() else {
            return Poll::Ready(None);
        };
        match s.value.take() {
            Some(v) => Poll::Ready(Some(v)),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// DEBUG RELOAD's read: the RDB file at `path`, parsed, keys by core.
/// `Err` (logged here) when it is missing or damaged.
pub fn read_rdb(
    path: &Path,
    cores: &crate::mesh::SlotTable,
    databases: usize,
    lim: &EncodingLimits,
) -> Result<PerCore, ()> {
    match file::parse(path, cores, databases, lim, None) {
        Ok(Some(p)) => Ok(p.per_core),
        Ok(None) => {
            crate::log::warning(format_args!(
                "Fatal error loading the DB {}: No such file or directory.",
                path.display()
            ));
            Err(())
        }
        Err(e) => {
            crate::log::warning(format_args!("{e}"));
            Err(())
        }
    }
}

/// How long DEBUG LOADAOF waits for the cores' fsyncs.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// DEBUG LOADAOF's read: waits until every core's AOF is fsynced up to
/// `offsets` (each core's write log offset when asked; -1: no log), then
/// loads the append-only directory. `Err` (logged here) when the disk
/// refuses the writes, the wait times out or the files do not load.
pub fn read_aof(
    aof: &Aof,
    offsets: &[i64],
    cores: &crate::mesh::SlotTable,
    databases: usize,
    lim: &EncodingLimits,
) -> Result<PerCore, ()> {
    let deadline = Instant::now() + SYNC_WAIT;
    aof.force_sync.store(true, Ordering::SeqCst);
    let synced = loop {
        let done = offsets.iter().enumerate().all(|(c, &want)| {
            want < 0
                || aof
                    .synced
                    .get(c)
                    .is_some_and(|s| s.load(Ordering::SeqCst) >= want as u64)
        });
        // A disk that refuses the writes does not let them reach it soon.
        if done || Instant::now() > deadline || !aof.write_ok.load(Ordering::SeqCst) {
            break done;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // A rewrite's commit forces fsyncs too; it clears the flag itself.
    if !aof.rewrite.in_progress.load(Ordering::SeqCst) {
        aof.force_sync.store(false, Ordering::SeqCst);
    }
    if !synced {
        crate::log::warning(format_args!(
            "DEBUG LOADAOF: the AOF could not be fsynced: {}",
            aof.write_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default()
        ));
        return Err(());
    }
    let (parent, dirname) = match (aof.dir.parent(), aof.dir.file_name()) {
        (Some(p), Some(d)) => (PathBuf::from(p), d.to_string_lossy().into_owned()),
        _ => return Err(()),
    };
    // Other clients keep appending meanwhile: a record cut short at a
    // file's end is theirs, not damage.
    match super::load_aof(
        &parent,
        &dirname,
        &aof.filename,
        &super::aofload::Loading {
            cores,
            databases,
            limits: lim,
            load_truncated: true,
            progress: None,
        },
    ) {
        Ok(Some(l)) => Ok(l.per_core),
        Ok(None) => {
            crate::log::warning(format_args!(
                "DEBUG LOADAOF: no manifest in {}",
                aof.dir.display()
            ));
            Err(())
        }
        Err(e) => {
            crate::log::warning(format_args!("{e}"));
            Err(())
        }
    }
}
