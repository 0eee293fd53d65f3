//! The process-wide script cache: SHA1 → body, what SCRIPT LOAD, EVAL and
//! SCRIPT EXISTS see whichever core serves them. Each core compiles a body
//! on its own Lua state the first time it runs it; SCRIPT FLUSH empties
//! the cache and moves the generation on, and every state drops what it
//! compiled at its next script.
//!
//! A core touches the lock only for a script it has not seen yet (EVALSHA
//! of a script loaded elsewhere, or a new EVAL body): each thread keeps
//! the entries it looked up, so finding whether a script may run on one
//! core ([`placement`]) costs a local lookup and a relaxed load.

use bytes::Bytes;
use hashbrown::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// One cached script.
pub struct Entry {
    pub body: Bytes,
    /// Where its runs may go ([`Placement`] as a byte).
    placement: AtomicU8,
}

/// Where a script runs, learned from its runs (standalone, more than one
/// core): a script not seen yet runs with every core locked, so that keys
/// it did not declare are reached wherever they live; if that run touched
/// only keys on its declared keys' core, later runs go to that core alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Not run yet, or touched keys off its declared keys' core.
    Everywhere = 0,
    /// Touched only keys on its declared keys' core.
    Local = 1,
}

struct Store {
    scripts: RwLock<HashMap<[u8; 40], Arc<Entry>>>,
    generation: AtomicU64,
}

fn store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(|| Store {
        scripts: RwLock::new(HashMap::new()),
        generation: AtomicU64::new(0),
    })
}

/// Caches `body` under `sha` (kept if already there).
pub fn insert(sha: [u8; 40], body: Bytes) {
    let mut m = store().scripts.write().unwrap_or_else(|e| e.into_inner());
    m.entry(sha).or_insert_with(|| {
        Arc::new(Entry {
            body,
            placement: AtomicU8::new(Placement::Everywhere as u8),
        })
    });
}

/// The body cached under `sha`.
pub fn get(sha: &[u8; 40]) -> Option<Bytes> {
    with_entry(sha, |e| e.body.clone())
}

/// A thread's copies of the entries it looked up.
type Seen = HashMap<[u8; 40], Arc<Entry>>;

thread_local! {
    /// Entries this thread looked up, valid for one generation: a core's
    /// EVALSHA finds its script's placement without the shared lock.
    static SEEN: std::cell::RefCell<(u64, Seen)> =
        std::cell::RefCell::new((u64::MAX, HashMap::new()));
}

/// Runs `f` on the entry of `sha`, from this thread's copy when it has
/// one (no shared lock, no reference count touched).
fn with_entry<R>(sha: &[u8; 40], f: impl FnOnce(&Entry) -> R) -> Option<R> {
    let g = generation();
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != g {
            *s = (g, HashMap::new());
        }
        if !s.1.contains_key(sha) {
            let e = {
                let m = store().scripts.read().unwrap_or_else(|e| e.into_inner());
                m.get(sha).cloned()
            }?;
            s.1.insert(*sha, e);
        }
        s.1.get(sha).map(|e| f(e))
    })
}

/// SCRIPT EXISTS for one name (any case of hex digits).
pub fn exists(name: &[u8]) -> bool {
    let Ok(sha) = <[u8; 40]>::try_from(name.to_ascii_lowercase().as_slice()) else {
        return false;
    };
    with_entry(&sha, |_| ()).is_some()
}

/// Where script `sha` may run (unknown scripts: everywhere).
pub fn placement(sha: &[u8; 40]) -> Placement {
    match with_entry(sha, |e| e.placement.load(Ordering::Relaxed)) {
        Some(p) if p == Placement::Local as u8 => Placement::Local,
        _ => Placement::Everywhere,
    }
}

/// Records what a run of `sha` showed about where its keys live.
pub fn set_placement(sha: &[u8; 40], p: Placement) {
    with_entry(sha, |e| e.placement.store(p as u8, Ordering::Relaxed));
}

/// SCRIPT FLUSH: forgets every script.
pub fn flush() {
    let mut m = store().scripts.write().unwrap_or_else(|e| e.into_inner());
    m.clear();
    store().generation.fetch_add(1, Ordering::SeqCst);
}

/// Changes at each SCRIPT FLUSH.
pub fn generation() -> u64 {
    store().generation.load(Ordering::SeqCst)
}
