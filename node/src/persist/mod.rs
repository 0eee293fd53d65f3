//! # persist: RDB snapshots and loading at start
//!
//! Above `mesh`, below `shard`. One snapshot at a time for the whole node
//! ([`State`]): a [`Job`] that every core fills with its own RDB records
//! (each core serialises its slots while serving, see `engine::snapshot`)
//! and that one short-lived writer thread ([`start`]) turns into
//! `temp-<pid>.rdb` in `dir` (header, aux fields, every core's records in
//! core order, EOF and CRC64), fsyncs, renames to `dbfilename` and fsyncs
//! the directory. File I/O never runs on a shard core. Loading at start
//! ([`load`]) parses the file once and hands each core its keys.
//! docs/persistence.md describes the design.
//!
//! DEBUG RELOAD and DEBUG LOADAOF read the files back on a thread
//! (`reload.rs`: [`reload::off_core`], [`reload::read_rdb`],
//! [`reload::read_aof`]).
//!
//! API: [`State`], [`Job`], [`start`], [`load`], [`Rules`], [`reload`].

pub mod aof;
pub mod aofload;
mod direct;
mod file;
pub use file::empty_rdb;
pub mod reload;

pub use aofload::load_aof;
pub use file::load;

/// Start-up with `appendonly yes`: loads the append-only directory when
/// it has a manifest, else starts an empty one, and opens each core's incr
/// file. A directory this process can go on appending to (written with
/// the same number of cores, each core's log kept up to a point in its
/// last file) is kept, its cut tails removed; any other (a redis-server
/// directory, another core count, a cut that reaches an older file) is
/// loaded, then replaced by a new generation holding what was loaded.
/// `Err` is the message to stop the start with.
pub fn aof_start(
    state: &State,
    slots: &crate::mesh::SlotTable,
    databases: usize,
    lim: &engine::value::EncodingLimits,
    load_truncated: bool,
    (checksum, form): (bool, engine::snapshot::Form),
) -> Result<(), String> {
    let cores = slots.cores();
    let aof = &state.aof;
    let (Some(parent), Some(dirname)) = (aof.dir.parent(), aof.dir.file_name()) else {
        return Err(format!("Bad appenddirname {}", aof.dir.display()));
    };
    let loaded = load_aof(
        parent,
        &dirname.to_string_lossy(),
        &aof.filename,
        &aofload::Loading {
            cores: slots,
            databases,
            limits: lim,
            load_truncated,
            progress: Some(state),
        },
    )?;
    let Some(mut loaded) = loaded else {
        return aof.new_generation(cores, 1, &[], checksum, form);
    };
    match aof.continuable(cores, &loaded.logs) {
        Some((files, ends, zeros)) => aof.resume(files, &ends, &zeros)?,
        None => aof.new_generation(
            cores,
            loaded.max_seq.max(0) as u64 + 1,
            &loaded.per_core,
            checksum,
            form,
        )?,
    }
    loaded.preload(state);
    Ok(())
}

use crate::mesh::{Mesh, Msg};
use crate::shared::{now_ms, Shared};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;

/// Bytes a core may leave waiting for the writer before it pauses its
/// background walk (copy-on-write chunks are always queued).
pub const CORE_BUDGET: usize = 4 << 20;

/// Node-wide persistence state, shared by every core.
pub struct State {
    job: Mutex<Option<Arc<Job>>>,
    /// Bumped when a job starts: each core compares it once a turn.
    pub epoch: AtomicU64,
    pub in_progress: AtomicBool,
    /// `BGSAVE SCHEDULE` asked for a save while another ran.
    pub scheduled: AtomicBool,
    pub last_ok: AtomicBool,
    pub last_time_sec: AtomicI64,
    pub current_start_ms: AtomicI64,
    /// When the last attempt started (Unix seconds): save rules wait 5 s
    /// after a failure, as Redis does.
    pub last_try_s: AtomicI64,
    pub saves: AtomicU64,
    /// Per core: `dirty` published by the core, and its value when the
    /// last successful snapshot started.
    pub core_dirty: Vec<AtomicU64>,
    pub saved_dirty: Vec<AtomicU64>,
    pub loaded_keys: AtomicU64,
    pub expired_keys: AtomicU64,
    /// Per core: keys read from the file, inserted by the core at start.
    preload: Mutex<Vec<Vec<(usize, engine::rdb::read::Entry)>>>,
    /// The replication position the file at start recorded, if any.
    loaded_repl: Mutex<Option<repl::Resume>>,
    /// The append-only file.
    pub aof: aof::Aof,
    /// Loading the files at start (cores answer -LOADING meanwhile), and
    /// its progress for INFO.
    pub loading: AtomicBool,
    pub loading_start_ms: AtomicI64,
    pub loading_total_bytes: AtomicU64,
    pub loading_loaded_bytes: AtomicU64,
}

impl State {
    pub fn new(cores: usize, aof: aof::Aof) -> State {
        State {
            job: Mutex::new(None),
            epoch: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            last_ok: AtomicBool::new(true),
            last_time_sec: AtomicI64::new(-1),
            current_start_ms: AtomicI64::new(0),
            last_try_s: AtomicI64::new(0),
            saves: AtomicU64::new(0),
            core_dirty: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            saved_dirty: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            loaded_keys: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            preload: Mutex::new((0..cores).map(|_| Vec::new()).collect()),
            loaded_repl: Mutex::new(None),
            aof,
            loading: AtomicBool::new(true),
            loading_start_ms: AtomicI64::new(now_ms()),
            loading_total_bytes: AtomicU64::new(0),
            loading_loaded_bytes: AtomicU64::new(0),
        }
    }

    /// Loading is over: every core inserts its keys and serves.
    pub fn finish_loading(&self, mesh: &Mesh) {
        self.loading.store(false, Ordering::Release);
        for c in 0..mesh.cores() {
            mesh.send(c, Msg::Wake);
        }
    }

    /// INFO persistence's loading progress (after the AOF fields, as in
    /// Redis; nothing once loaded). `loading`: the flag as the caller read
    /// it for its `loading:` line, so both lines agree when the load ends
    /// between the two reads.
    pub fn loading_info(&self, loading: bool) -> String {
        if !loading {
            return String::new();
        }
        let start = self.loading_start_ms.load(Ordering::Relaxed);
        let total = self.loading_total_bytes.load(Ordering::Relaxed);
        let done = self.loading_loaded_bytes.load(Ordering::Relaxed);
        let elapsed = (now_ms() - start).max(1) as f64 / 1000.0;
        let perc = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let eta = if done > 0 {
            ((total.saturating_sub(done)) as f64 * elapsed / done as f64) as i64
        } else {
            1
        };
        format!(
            "loading_start_time:{}\r\nloading_total_bytes:{total}\r\nloading_rdb_used_mem:0\r\nloading_loaded_bytes:{done}\r\nloading_loaded_perc:{perc:.2}\r\nloading_eta_seconds:{eta}\r\n",
            start / 1000
        )
    }

    /// The job in progress, if any.
    pub fn job(&self) -> Option<Arc<Job>> {
        self.job.lock().ok().and_then(|j| j.clone())
    }

    /// Changes since the last successful save, all cores.
    pub fn changes(&self) -> u64 {
        self.core_dirty
            .iter()
            .zip(&self.saved_dirty)
            .map(|(d, s)| {
                d.load(Ordering::Relaxed)
                    .saturating_sub(s.load(Ordering::Relaxed))
            })
            .sum()
    }

    /// The replication position the RDB file loaded at start recorded
    /// (taken once).
    pub fn take_loaded_repl(&self) -> Option<repl::Resume> {
        self.loaded_repl.lock().ok().and_then(|mut r| r.take())
    }

    /// Keys core `core` inserts at start (taken once).
    pub fn take_preload(&self, core: usize) -> Vec<(usize, engine::rdb::read::Entry)> {
        self.preload
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(core).map(std::mem::take))
            .unwrap_or_default()
    }
}

/// What a snapshot's cores hand the writer.
struct Chunks {
    queues: Vec<VecDeque<Vec<u8>>>,
    pending: Vec<usize>,
    finished: Vec<bool>,
    dirty_at_start: Vec<u64>,
    /// The cores that started their image.
    started: Vec<bool>,
    /// The outcome, once the file is written (or failed).
    result: Option<Result<(), String>>,
    /// Tasks waiting for the outcome (SAVE, SHUTDOWN, DEBUG RELOAD).
    waiters: Vec<(usize, Waker)>,
}

/// One snapshot in progress.
pub struct Job {
    chunks: Mutex<Chunks>,
    ready: Condvar,
    /// RDB records, or commands for an AOF base with
    /// `aof-use-rdb-preamble no`.
    pub form: engine::snapshot::Form,
    /// What an image of commands starts with (its `#TS` annotation).
    pub prelude: Vec<u8>,
    /// `Some(seq)` for an AOF rewrite: the image becomes generation
    /// `seq`'s base file, and each core starts its new incr file at the
    /// instant of its image.
    pub aof_seq: Option<u64>,
    /// The replication stream's position the image holds, if exactly
    /// known: a replica's final save ([`start_known`]), or a replica's
    /// snapshot taken while its link was held still ([`StreamHold`]).
    pub repl: std::sync::OnceLock<repl::Resume>,
}

/// A replica's link, held still while the cores start a snapshot's
/// images, so that the file records exactly where the master's stream
/// was (Redis's `repl-id`, `repl-offset`, `repl-stream-db`) and a replica
/// restarted from it, even after a crash, continues with a partial
/// resynchronization. Implemented by the replication link.
pub trait StreamHold: Send + Sync {
    /// Stops handing the master's commands to the master client once
    /// those handed are run, and answers where the data then stands
    /// (`None`: no stream to hold, nothing held). One holder at a time:
    /// another waits for [`StreamHold::release`].
    fn hold(&self) -> Option<repl::Resume>;
    /// Lets the stream flow again (after a `hold` that answered `Some`).
    fn release(&self);
}

/// How long the writer waits for every core to start its image while a
/// replica's stream is held.
const HOLD_MAX: std::time::Duration = std::time::Duration::from_secs(2);

impl Job {
    /// Core `core` started its image with `dirty` changes counted.
    pub fn started(&self, core: usize, dirty: u64) {
        if let Ok(mut c) = self.chunks.lock() {
            c.dirty_at_start[core] = dirty;
            c.started[core] = true;
        }
    }

    /// Waits (at most `max`) until every core started its image.
    fn wait_started(&self, max: std::time::Duration) {
        let deadline = std::time::Instant::now() + max;
        while std::time::Instant::now() < deadline {
            if self
                .chunks
                .lock()
                .map_or(true, |c| c.started.iter().all(|&s| s))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Bytes core `core` has queued and the writer has not taken.
    pub fn pending(&self, core: usize) -> usize {
        self.chunks.lock().map_or(0, |c| c.pending[core])
    }

    /// Queues core `core`'s records; `last` when its image is complete.
    pub fn push(&self, core: usize, bytes: Vec<u8>, last: bool) {
        if let Ok(mut c) = self.chunks.lock() {
            if !bytes.is_empty() {
                c.pending[core] += bytes.len();
                c.queues[core].push_back(bytes);
            }
            c.finished[core] |= last;
        }
        self.ready.notify_all();
    }

    /// True once the file is written or the job failed.
    pub fn is_over(&self) -> bool {
        self.chunks.lock().map_or(true, |c| c.result.is_some())
    }

    /// The outcome, registering `waker` (of a task on core `core`) to be
    /// woken when it comes.
    pub fn poll_result(&self, core: usize, waker: &Waker) -> Option<Result<(), String>> {
        let mut c = self.chunks.lock().ok()?;
        if c.result.is_none() {
            c.waiters.push((core, waker.clone()));
        }
        c.result.clone()
    }

    /// The next chunk of core `core` (waits for one), or `None` once that
    /// core is done. `Err` when the job was failed meanwhile.
    fn next(&self, core: usize, mesh: &Mesh) -> Option<Vec<u8>> {
        let mut c = self.chunks.lock().ok()?;
        loop {
            if let Some(b) = c.queues[core].pop_front() {
                let was_full = c.pending[core] >= CORE_BUDGET;
                c.pending[core] -= b.len();
                drop(c);
                if was_full {
                    mesh.send(core, Msg::Wake);
                }
                return Some(b);
            }
            if c.finished[core] {
                return None;
            }
            c = self
                .ready
                .wait_timeout(c, std::time::Duration::from_millis(100))
                .ok()?
                .0;
        }
    }

    fn finish(&self, result: Result<(), String>, mesh: &Mesh) {
        let waiters = match self.chunks.lock() {
            Ok(mut c) => {
                c.result = Some(result);
                std::mem::take(&mut c.waiters)
            }
            Err(_) => Vec::new(),
        };
        for (core, w) in waiters {
            w.wake();
            mesh.send(core, Msg::Wake);
        }
    }
}

/// A future for a job's outcome, for a task on core `core`.
pub struct Outcome {
    pub job: Arc<Job>,
    pub core: usize,
}

impl std::future::Future for Outcome {
    type Output = Result<(), String>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.job.poll_result(self.core, cx.waker()) {
            Some(r) => std::task::Poll::Ready(r),
            None => std::task::Poll::Pending,
        }
    }
}

/// Why a snapshot could not start.
pub const IN_PROGRESS: &str = "ERR Background save already in progress";

/// Starts a snapshot of every core: returns its job, or `Err` when one is
/// in progress. The cores see it on their next turn (each is woken); the
/// writer thread writes the file as their records come. With `hold` (a
/// replica's link), the writer first holds the stream still, and the
/// cores see the job once it is.
pub fn start(
    shared: &Arc<Shared>,
    state: &Arc<State>,
    mesh: &Arc<Mesh>,
    redis_ver: &'static str,
    hold: Option<Arc<dyn StreamHold>>,
) -> Result<Arc<Job>, ()> {
    start_job(
        shared,
        state,
        mesh,
        redis_ver,
        false,
        None,
        Start::Hold(hold),
    )
}

/// Where the replication position a file records comes from.
enum Start {
    Known(Option<repl::Resume>),
    Hold(Option<Arc<dyn StreamHold>>),
}

/// Starts a snapshot whose replication position is known: the one saved
/// before exiting, or a replica's replica's full resynchronization. A
/// replica whose link ended (or is held still) with every command of its
/// master applied passes where its stream got (`repl`): the file records
/// it (`repl-id`, `repl-offset`, `repl-stream-db`, as Redis's), and the
/// replica continues from it after a restart with a partial
/// resynchronization.
pub fn start_known(
    shared: &Arc<Shared>,
    state: &Arc<State>,
    mesh: &Arc<Mesh>,
    repl: Option<repl::Resume>,
) -> Result<Arc<Job>, ()> {
    start_job(
        shared,
        state,
        mesh,
        crate::config::REDIS_VERSION,
        false,
        None,
        Start::Known(repl),
    )
}

/// Starts a snapshot of every core for a diskless replication: the RDB
/// goes to `out` (a pipe), no file is written and LASTSAVE stays.
pub fn start_stream(
    shared: &Arc<Shared>,
    state: &Arc<State>,
    mesh: &Arc<Mesh>,
    out: std::fs::File,
    repl: Option<repl::Resume>,
) -> Result<Arc<Job>, ()> {
    start_job(
        shared,
        state,
        mesh,
        crate::config::REDIS_VERSION,
        false,
        Some(out),
        Start::Known(repl),
    )
}

/// Starts BGREWRITEAOF: `Err` with Redis's reply when it cannot start now
/// (`Ok(None)`: scheduled after the snapshot in progress).
pub fn start_rewrite(
    shared: &Arc<Shared>,
    state: &Arc<State>,
    mesh: &Arc<Mesh>,
    enable: bool,
) -> Result<Option<Arc<Job>>, String> {
    let aof = &state.aof;
    if !enable && !aof.on.load(Ordering::SeqCst) {
        return Err("ERR slotd rewrites the append-only file only while appendonly is yes".into());
    }
    if aof.rewrite.in_progress.load(Ordering::SeqCst) {
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    if state.in_progress.load(Ordering::SeqCst) {
        aof.rewrite.scheduled.store(true, Ordering::SeqCst);
        return Ok(None);
    }
    if enable {
        aof.prepare_enable()?;
    }
    start_job(
        shared,
        state,
        mesh,
        crate::config::REDIS_VERSION,
        true,
        None,
        Start::Known(None),
    )
    .map(Some)
    .map_err(|()| "ERR Background append only file rewriting already in progress".into())
}

fn start_job(
    shared: &Arc<Shared>,
    state: &Arc<State>,
    mesh: &Arc<Mesh>,
    redis_ver: &'static str,
    rewrite: bool,
    stream: Option<std::fs::File>,
    from: Start,
) -> Result<Arc<Job>, ()> {
    if state.in_progress.swap(true, Ordering::SeqCst) {
        return Err(());
    }
    let cores = mesh.cores();
    let (dir, dbfilename, compress, checksum, preamble, autosync) = match shared.config.lock() {
        Ok(c) => (
            c.dir(),
            c.text("dbfilename").unwrap_or_else(|| "dump.rdb".into()),
            c.flag("rdbcompression"),
            c.flag("rdbchecksum"),
            c.flag("aof-use-rdb-preamble"),
            c.flag(if rewrite {
                "aof-rewrite-incremental-fsync"
            } else {
                "rdb-save-incremental-fsync"
            }),
        ),
        Err(_) => {
            state.in_progress.store(false, Ordering::SeqCst);
            return Err(());
        }
    };
    let form = if rewrite && !preamble {
        engine::snapshot::Form::Commands
    } else {
        engine::snapshot::Form::Rdb { compress }
    };
    let aof_seq = if rewrite {
        match state.aof.begin_rewrite(form) {
            Ok(seq) => Some(seq),
            Err(e) => {
                crate::log::warning(format_args!("{e}"));
                state.in_progress.store(false, Ordering::SeqCst);
                return Err(());
            }
        }
    } else {
        None
    };
    let job = Arc::new(Job {
        chunks: Mutex::new(Chunks {
            queues: (0..cores).map(|_| VecDeque::new()).collect(),
            pending: vec![0; cores],
            finished: vec![false; cores],
            dirty_at_start: vec![0; cores],
            started: vec![false; cores],
            result: None,
            waiters: Vec::new(),
        }),
        ready: Condvar::new(),
        form,
        prelude: state.aof.base_timestamp(),
        aof_seq,
        repl: std::sync::OnceLock::new(),
    });
    let now = now_ms();
    state.current_start_ms.store(now, Ordering::Relaxed);
    state.last_try_s.store(now / 1000, Ordering::Relaxed);
    let hold = match from {
        Start::Known(repl) => {
            if let Some(r) = repl {
                let _ = job.repl.set(r);
            }
            publish(state, mesh, &job);
            None
        }
        Start::Hold(None) => {
            publish(state, mesh, &job);
            None
        }
        Start::Hold(Some(h)) => Some(h),
    };
    let (state2, mesh2, job2, shared2) = (state.clone(), mesh.clone(), job.clone(), shared.clone());
    let spawned = std::thread::Builder::new()
        .name("rdb-save".into())
        .spawn(move || {
            // Below the shard cores: where every CPU is busy, clients go
            // first and the file waits (cores pause their walk when it
            // lags: `CORE_BUDGET`).
            // SAFETY: setpriority on this thread (who = 0) only.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            if let Some(h) = hold {
                let held = h.hold();
                let release = held.is_some();
                if let Some(r) = held {
                    let _ = job2.repl.set(r);
                }
                publish(&state2, &mesh2, &job2);
                if release {
                    job2.wait_started(HOLD_MAX);
                    h.release();
                }
            }
            state2.aof.job_started();
            if let Some(out) = stream {
                let r = file::write_stream(&job2, &mesh2, &shared2, out, checksum, redis_ver);
                state2.aof.resume_fsync();
                if let Err(e) = &r {
                    crate::log::warning(format_args!("{e}"));
                }
                if let Ok(mut j) = state2.job.lock() {
                    *j = None;
                }
                state2.in_progress.store(false, Ordering::SeqCst);
                job2.finish(r, &mesh2);
                return;
            }
            let (path, name) = match aof_seq {
                Some(seq) => (state2.aof.dir.clone(), state2.aof.base_name(seq)),
                None => (std::path::PathBuf::from(&dir), dbfilename),
            };
            let autosync = autosync.then_some(file::AUTOSYNC_BYTES);
            let r = file::write(
                &job2,
                &mesh2,
                &shared2,
                (&path, &name),
                (checksum, autosync),
                redis_ver,
            );
            // `no-appendfsync-on-rewrite`: the job's I/O is over.
            state2.aof.resume_fsync();
            match aof_seq {
                Some(seq) => {
                    let r = r.and_then(|()| state2.aof.commit_rewrite(seq));
                    rewrite_finished(&state2, &job2, &mesh2, r);
                }
                None => finished(&state2, &shared2, &job2, &mesh2, r),
            }
        });
    if let Err(e) = spawned {
        finished(
            state,
            shared,
            &job,
            mesh,
            Err(format!("can't start the writer thread: {e}")),
        );
    }
    Ok(job)
}

/// Shows the cores `job`: each starts its image on its next turn.
fn publish(state: &State, mesh: &Mesh, job: &Arc<Job>) {
    if let Ok(mut j) = state.job.lock() {
        *j = Some(job.clone());
    }
    state.epoch.fetch_add(1, Ordering::SeqCst);
    for c in 0..mesh.cores() {
        mesh.send(c, Msg::Wake);
    }
}

/// Records a rewrite's outcome, as Redis's `backgroundRewriteDoneHandler`.
fn rewrite_finished(state: &State, job: &Job, mesh: &Mesh, r: Result<(), String>) {
    let rw = &state.aof.rewrite;
    let took = (now_ms() - rw.start_ms.load(Ordering::Relaxed)) / 1000;
    rw.last_time_sec.store(took, Ordering::Relaxed);
    match &r {
        Ok(()) => {
            crate::log::notice(format_args!(
                "Background AOF rewrite terminated with success"
            ));
            crate::log::notice(format_args!("Background AOF rewrite finished successfully"));
            rw.last_ok.store(true, Ordering::Relaxed);
            rw.count.fetch_add(1, Ordering::Relaxed);
            rw.failures.store(0, Ordering::Relaxed);
        }
        Err(e) => {
            crate::log::warning(format_args!("Background AOF rewrite failed: {e}"));
            rw.last_ok.store(false, Ordering::Relaxed);
            rw.failures.fetch_add(1, Ordering::Relaxed);
            state.aof.abandon_rewrite();
        }
    }
    rw.in_progress.store(false, Ordering::SeqCst);
    if let Ok(mut j) = state.job.lock() {
        *j = None;
    }
    state.in_progress.store(false, Ordering::SeqCst);
    job.finish(r, mesh);
}

/// Records a job's outcome, as Redis's `backgroundSaveDoneHandler`.
fn finished(state: &State, shared: &Shared, job: &Job, mesh: &Mesh, r: Result<(), String>) {
    let now = now_ms();
    let took = (now - state.current_start_ms.load(Ordering::Relaxed)) / 1000;
    state.last_time_sec.store(took, Ordering::Relaxed);
    match &r {
        Ok(()) => {
            crate::log::notice(format_args!("DB saved on disk"));
            if let Ok(c) = job.chunks.lock() {
                for (s, d) in state.saved_dirty.iter().zip(&c.dirty_at_start) {
                    s.store(*d, Ordering::Relaxed);
                }
            }
            shared.lastsave_s.store(now / 1000, Ordering::Relaxed);
            state.saves.fetch_add(1, Ordering::Relaxed);
            state.last_ok.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            crate::log::warning(format_args!("Background saving error: {e}"));
            state.last_ok.store(false, Ordering::Relaxed);
        }
    }
    if let Ok(mut j) = state.job.lock() {
        *j = None;
    }
    state.in_progress.store(false, Ordering::SeqCst);
    job.finish(r, mesh);
}

/// `save` rules: (seconds, changes) pairs.
pub struct Rules(pub Vec<(i64, u64)>);

impl Rules {
    /// The rules of a `save` value as CONFIG GET shows it.
    pub fn parse(text: &str) -> Rules {
        let n: Vec<i64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        Rules(
            n.chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0], p[1].max(0) as u64))
                .collect(),
        )
    }

    /// Whether a save is due: some rule's changes and seconds are reached
    /// (and after a failure, 5 seconds have passed since the attempt).
    pub fn due(&self, state: &State, now_s: i64, lastsave_s: i64) -> bool {
        let changes = state.changes();
        let retry_ok = state.last_ok.load(Ordering::Relaxed)
            || now_s - state.last_try_s.load(Ordering::Relaxed) > 5;
        retry_ok
            && self
                .0
                .iter()
                .any(|&(secs, n)| changes >= n && now_s - lastsave_s > secs)
    }
}
