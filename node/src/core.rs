//! One shard core: a pinned thread running an io_uring event loop.
//!
//! The loop owns the core's keyspace (`engine::Shard`), its connections and
//! its inbox. Every core arms an accept on each of the process's listening
//! sockets (made once by `main`); the kernel wakes one waiting core per
//! connection, which admits it (maxclients, protected mode) and hands it to
//! the core with the fewest connections, itself on a tie, through the mesh
//! (`Msg::Adopt`). Each turn it reaps completions (accepts, receives,
//! sends, the inbox eventfd), runs the commands that arrived, serves other
//! cores' requests, polls woken tasks, then submits all sends with the next
//! wait in one `io_uring_enter`.
//!
//! Sockets are driven by io_uring directly rather than through glommio's
//! streams: the measurements put glommio's per-operation send, recv
//! and re-armed poll at 0.7x redis-server's throughput, while a plain
//! io_uring loop with batched submission matched it.

use crate::conn::{Conn, Wait};
use crate::mesh::{AdminQuery, CoreStats, Mesh, Msg, Request, Response, Seg, TxId};
use crate::shared::{now_ms, Settings, Shared};
use crate::slab::{Key, Slab};
use crate::task::{Executor, Rpc};
use bytes::Bytes;
use engine::cmd::{self, Ctx};
use engine::{OwnedArgs, Reply};
use hashbrown::HashMap;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_WAKE: u64 = 4;
const KIND_CRON: u64 = 5;

/// Sleep batching (see `Core::run`): at most one request waited for per
/// this many clients active in the last cron period,
const BATCH_CLIENTS_PER_WAIT: u64 = 4;
/// and at most this many,
const BATCH_MAX: u64 = 16;
/// and no more than the last period's receive rate brings in half of
/// this, the longest a batching core sleeps before it looks anyway.
const BATCH_WAIT_NS: u64 = 200_000;
/// Receive buffers per core, and their size: the kernel copies incoming
/// bytes into one of these, the core appends them to the connection's
/// buffer and hands the buffer back at once.
const RECV_BUFS: u16 = 64;
/// A connection's input buffer is compacted only once this many bytes
/// of it have been consumed (and at least half of it).
const COMPACT_MIN: usize = 16 * 1024;
/// Most pipelined commands, and bytes, sent across cores as one pipeline.
const PIPELINE_CMDS_MAX: u32 = 1024;
const PIPELINE_BYTES_MAX: usize = 1 << 20;
const RECV_BUF_BYTES: usize = 16 * 1024;
/// Registered file table entries per core (connections beyond use plain
/// descriptors).
const FIXED_FILES_MAX: u32 = 16 * 1024;

/// Runs `$body` with `$f` naming connection `$c` (slab key `$key`) as an
/// io_uring target: its registered slot when it has one, else its fd.
macro_rules! with_target {
    ($c:expr, $key:expr, |$f:ident| $body:expr) => {
        if $c.fixed {
            let $f = types::Fixed($key.index);
            $body
        } else {
            let $f = types::Fd($c.fd);
            $body
        }
    };
}

fn user_data(kind: u64, key: Key) -> u64 {
    (kind << 56) | ((key.gen as u64 & 0xff_ffff) << 32) | key.index as u64
}

fn split_user_data(ud: u64) -> (u64, Key) {
    (
        ud >> 56,
        Key {
            index: ud as u32,
            gen: ((ud >> 32) & 0xff_ffff) as u32,
        },
    )
}

/// Who waits for a parked blocking command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A connection of this core.
    Local(Key),
    /// A task on core `from`, request `id`.
    Remote { from: usize, id: u64 },
}

/// A blocking command parked until one of its keys gets data.
pub struct Waiter {
    pub origin: Origin,
    pub db: usize,
    pub args: OwnedArgs,
    pub keys: Vec<Bytes>,
    pub deadline_ms: Option<i64>,
    /// What to answer when the deadline passes.
    pub timeout_reply: Reply,
}

/// What a finished task hands back to its connection.
pub struct TaskDone {
    pub conn: Key,
    pub replies: Vec<Reply>,
    /// Replies already encoded for the connection, sent after `replies`.
    pub encoded: Vec<u8>,
    /// Connection state the task changed.
    pub effects: Vec<Effect>,
}

/// Connection changes a task reports.
pub enum Effect {
    /// SELECT ran inside EXEC.
    Db(usize),
    /// WATCHes registered (core, db, key, version).
    Watched(Vec<(usize, usize, Bytes, u64)>),
}

/// The pub/sub subscribers on this core.
#[derive(Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, Vec<Key>>,
    pub patterns: HashMap<Bytes, Vec<Key>>,
    pub shard_channels: HashMap<Bytes, Vec<Key>>,
}

/// The first command of a pipeline that crosses cores: its owner core,
/// whether it writes, its length in the input, and its RESP form when it
/// came inline.
struct First {
    to: usize,
    write: bool,
    consumed: usize,
    head: Option<Vec<u8>>,
}

/// A pipeline ready to cross cores (see [`crate::mesh::Request::Pipeline`]).
struct Planned {
    bytes: Bytes,
    segs: Vec<Seg>,
    writes: bool,
}

/// A shard core.
pub struct Core {
    pub id: usize,
    pub cores: usize,
    /// Hash slots this core owns.
    pub slots: std::ops::Range<usize>,
    pub engine: engine::Shard,
    pub shared: Arc<Shared>,
    pub settings: Settings,
    pub mesh: Arc<Mesh>,
    pub rpc: Rc<Rpc>,
    pub exec: Executor<TaskDone>,
    ring: IoUring,
    /// Declared after `ring` so the ring is closed before this is unmapped.
    bufring: crate::bufring::BufRing,
    /// The process's listening sockets: `main` owns and closes them; this
    /// core accepts on them until it stops.
    listeners: Vec<i32>,
    pub conns: Slab<Conn>,
    /// Connections with output to send this turn.
    flush: Vec<Key>,
    /// Connections to run again (a task finished, a lock was released).
    pub resume: Vec<Key>,
    /// The transaction holding this core's lock.
    pub lock: Option<TxId>,
    /// Requests that arrived while locked, in order.
    deferred: VecDeque<Msg>,
    /// Connections waiting for the lock to go.
    pub stalled: Vec<Key>,
    pub waiters: Vec<Waiter>,
    pub pubsub: PubSub,
    pub stats: CoreStats,
    /// Per-command calls, usec: for INFO commandstats.
    pub cmdstats: HashMap<&'static str, (u64, u64)>,
    eventfd_buf: Box<u64>,
    /// The cron timer's period, read by the kernel when the timer is
    /// submitted.
    cron_ts: Box<types::Timespec>,
    /// Unix ms, read once per loop turn and per receive batch.
    pub now_ms: i64,
    cmd_serial: u64,
    /// Reused buffer for a turn's completions.
    cqes: Vec<(u64, i32, u32)>,
    /// Reused spans for looking one request ahead.
    ahead_spans: Vec<(u32, u32)>,
    /// Keys of this batch whose slot headers are being prefetched.
    ahead: Vec<(usize, engine::db::Ahead)>,
    pub stopping: bool,
    /// Size of the ring's registered file table (0: none could be made).
    fixed_files: u32,
    /// What `io_uring_enter` is given for this ring: its registered index
    /// with `ENTER_REGISTERED_RING` (no file lookup per call), else its fd.
    enter_fd: i32,
    enter_flags: u32,
    /// Cron periods, numbered, for counting active clients.
    period: u32,
    /// This period's clients that sent something, receives, and the
    /// command count when it began.
    active: u64,
    recvs: u64,
    msgs: u64,
    period_cmds_from: u64,
    /// Requests to wait for when sleeping, from the last period's traffic
    /// (1: wake on the first completion).
    batch: u32,
}

impl Core {
    /// Sets up core `id`: its ring, accepting on `listeners`.
    pub fn new(
        id: usize,
        cores: usize,
        shared: Arc<Shared>,
        mesh: Arc<Mesh>,
        listeners: Vec<i32>,
    ) -> std::io::Result<Core> {
        // Completions are posted only when this thread enters the kernel
        // (DEFER_TASKRUN): no interrupts of user work to run task work.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4096)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(4096))
            .or_else(|_| IoUring::new(4096))?;
        let bufring =
            crate::bufring::BufRing::new(&ring.submitter(), 0, RECV_BUFS, RECV_BUF_BYTES)?;
        let (enter_fd, enter_flags) = match register_ring_fd(ring.as_raw_fd()) {
            Some(i) => (i, ENTER_REGISTERED_RING),
            None => (ring.as_raw_fd(), 0),
        };
        // A sparse table for connections' sockets; smaller if the file
        // limit refuses this size, none if the kernel has no such table.
        let mut fixed_files = FIXED_FILES_MAX;
        while fixed_files > 0 && ring.submitter().register_files_sparse(fixed_files).is_err() {
            fixed_files /= 4;
        }
        let settings = shared.settings();
        // Random per process: dictionary hash seeds must not be guessable,
        // or chosen keys could all collide.
        let mut seed = [0u8; 8];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let _ = f.read_exact(&mut seed);
        }
        let seed = u64::from_le_bytes(seed) ^ crate::shared::now_ms() as u64 ^ id as u64;
        let mut engine = engine::Shard::new(settings.databases, seed);
        engine.limits = settings.encoding;
        crate::flows::set_limits(settings.encoding);
        let slots =
            engine::slot::core_first_slot(id, cores)..engine::slot::core_first_slot(id + 1, cores);
        Ok(Core {
            id,
            cores,
            slots,
            engine,
            settings,
            rpc: Rpc::new(mesh.clone(), id),
            mesh,
            shared,
            exec: Executor::default(),
            ring,
            bufring,
            listeners,
            conns: Slab::default(),
            flush: Vec::new(),
            resume: Vec::new(),
            lock: None,
            deferred: VecDeque::new(),
            stalled: Vec::new(),
            waiters: Vec::new(),
            pubsub: PubSub::default(),
            stats: CoreStats::default(),
            cmdstats: HashMap::new(),
            eventfd_buf: Box::new(0),
            cron_ts: Box::new(types::Timespec::new()),
            now_ms: now_ms(),
            cmd_serial: 0,
            cqes: Vec::with_capacity(256),
            ahead_spans: Vec::new(),
            ahead: Vec::new(),
            stopping: false,
            fixed_files,
            enter_fd,
            enter_flags,
            period: 1,
            active: 0,
            recvs: 0,
            msgs: 0,
            period_cmds_from: 0,
            batch: 1,
        })
    }

    fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an entry points at (a connection's receive
        // or send buffer, the eventfd word) stays allocated and unmoved
        // until its completion is reaped: connections are only freed once
        // nothing is in flight for them.
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                self.enter(None, None);
            }
        }
    }

    fn arm_accept(&mut self, idx: usize) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listeners[idx]))
            .build()
            .user_data(user_data(
                KIND_ACCEPT,
                Key {
                    index: idx as u32,
                    gen: 0,
                },
            ));
        self.push_sqe(e);
    }

    /// Arms what wakes this core when another core sends it a message:
    /// a wait on its futex word, reset first, or else a read of its eventfd.
    fn arm_wake(&mut self) {
        if self.mesh.futex() {
            let word = self.mesh.futex_word(self.id);
            word.store(0, Ordering::SeqCst);
            const FUTEX2_SIZE_U32: u32 = 0x02;
            const FUTEX2_PRIVATE: u32 = 128;
            let e = opcode::FutexWait::new(
                word.as_ptr(),
                0,
                u32::MAX as u64,
                FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            )
            .build()
            .user_data(user_data(KIND_WAKE, Key { index: 0, gen: 0 }));
            self.push_sqe(e);
            return;
        }
        let fd = self.mesh.eventfd(self.id);
        let ptr = &mut *self.eventfd_buf as *mut u64 as *mut u8;
        let e = opcode::Read::new(types::Fd(fd), ptr, 8)
            .build()
            .user_data(user_data(KIND_WAKE, Key { index: 0, gen: 0 }));
        self.push_sqe(e);
    }

    /// Arms the cron timer: a timeout entry that completes after one
    /// period (`hz`), so a sleeping core needs no timeout of its own.
    fn arm_cron(&mut self) {
        let ms = 1000 / self.settings.hz.clamp(1, 500) as u64;
        *self.cron_ts = types::Timespec::new().nsec((ms * 1_000_000) as u32);
        let e = opcode::Timeout::new(&*self.cron_ts)
            .build()
            .user_data(user_data(KIND_CRON, Key { index: 0, gen: 0 }));
        self.push_sqe(e);
    }

    /// Arms a multishot receive: the kernel keeps delivering data into
    /// buffers from the core's buffer ring until the socket closes or the
    /// ring runs dry (then this is called again).
    fn arm_recv(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.recv_inflight || c.closing {
            return;
        }
        c.recv_inflight = true;
        let group = self.bufring.group;
        let e = with_target!(c, key, |f| opcode::RecvMulti::new(f, group).build())
            .user_data(user_data(KIND_RECV, key));
        self.push_sqe(e);
    }

    /// Queues `key` for the send pass.
    pub fn want_flush(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key) {
            if !c.flush_queued {
                c.flush_queued = true;
                self.flush.push(key);
            }
        }
    }

    fn start_send(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.flush_queued = false;
        if c.send_inflight || c.closing {
            return;
        }
        if c.send_off >= c.sending.len() {
            c.sending.clear();
            c.send_off = 0;
            if c.out.is_empty() {
                return;
            }
            std::mem::swap(&mut c.sending, &mut c.out);
        }
        let rest = &c.sending[c.send_off..];
        c.send_inflight = true;
        let (ptr, len) = (rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32);
        let e = with_target!(c, key, |f| opcode::Send::new(f, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build())
        .user_data(user_data(KIND_SEND, key));
        self.push_sqe(e);
    }

    /// Runs the loop until shutdown.
    pub fn run(&mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.arm_wake();
        self.arm_cron();
        loop {
            // One clock read a turn: commands, cron and the wait all use it.
            let now = now_ms();
            self.now_ms = now;
            self.reap();
            self.drain_inbox();
            self.turn();
            if !self.waiters.is_empty() {
                self.expire_waiters(now);
            }
            if self.stopping && self.conns.len() == 0 {
                return;
            }
            // Work in hand, or entries to submit (the sends of this turn,
            // which complete as they are submitted): submit, collect what
            // is done, and come back without sleeping. Only an idle core
            // marks itself asleep, so a turn costs no barrier.
            let busy = !self.resume.is_empty() || self.exec.has_ready();
            if busy || !self.ring.submission().is_empty() || !self.mesh.prepare_sleep(self.id) {
                self.enter(Some(0), None);
                continue;
            }
            // The cron timer wakes an idle core; only a blocked client's
            // deadline needs a timeout on the wait.
            let deadline = self.waiters.iter().filter_map(|w| w.deadline_ms).min();
            let ts = deadline.map(|d| {
                let wait_ms = (d - now).clamp(0, 1000);
                types::Timespec::new()
                    .sec((wait_ms / 1000) as u64)
                    .nsec(((wait_ms % 1000) * 1_000_000) as u32)
            });
            // A sleep and its wake-up cost about as much CPU as serving a
            // request. With many active clients each sending one request
            // at a time, a core sleeps until several requests are in
            // (`batch_size`): with DEFER_TASKRUN the kernel wakes it only
            // then, and the replies go out together, while the other
            // clients keep their sender busy. A wait that times out means
            // the load fell: then every completion wakes the core until
            // the next cron period. Few clients, pipelines, or messages
            // from other cores: wake on the first completion. (Measured
            // and not kept: io_uring's min-wait, which wakes at the first
            // completion and sleeps again, and a short busy poll before
            // sleeping, which costs more CPU than the sleep it saves.)
            let want = if ts.is_none() { self.batch } else { 1 };
            if want > 1 {
                let ts = types::Timespec::new().nsec(BATCH_WAIT_NS as u32);
                self.enter(Some(want), Some(&ts));
                if (self.ring.completion().len() as u32) < want {
                    self.batch = 1;
                }
            } else {
                self.enter(Some(1), ts.as_ref());
            }
            self.mesh.woke(self.id);
        }
    }

    /// Submits queued entries; with `want` also posts finished work's
    /// completions and waits until there are `want` of them, or until
    /// `timeout`.
    fn enter(&mut self, want: Option<u32>, timeout: Option<&types::Timespec>) {
        let to_submit = self.ring.submission().len() as u32;
        let mut flags = self.enter_flags;
        if want.is_some() {
            flags |= ENTER_GETEVENTS;
        }
        let args = timeout.map(|ts| types::SubmitArgs::new().timespec(ts));
        let (argp, argsz) = match &args {
            Some(a) => {
                flags |= ENTER_EXT_ARG;
                (
                    a as *const types::SubmitArgs as *const libc::c_void,
                    std::mem::size_of::<types::SubmitArgs>(),
                )
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `enter_fd` names this ring (by fd or registered index, as
        // `enter_flags` says); `argp` is null or points at a getevents
        // argument (`SubmitArgs` is its transparent wrapper) that outlives
        // the call. Errors (EINTR, ETIME, EBUSY) leave the loop to go on.
        unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.enter_fd,
                to_submit,
                want.unwrap_or(0),
                flags,
                argp,
                argsz,
            );
        }
    }

    /// Runs queued work: resumed connections, tasks, sends.
    fn turn(&mut self) {
        for _ in 0..64 {
            let resume = std::mem::take(&mut self.resume);
            for key in resume {
                self.process(key);
            }
            for (_, done) in self.exec.run() {
                self.task_done(done);
            }
            if self.resume.is_empty() && !self.exec.has_ready() {
                break;
            }
        }
        let flush = std::mem::take(&mut self.flush);
        for key in flush {
            if self.over_output_limit(key) {
                if let Some(c) = self.conns.get(key) {
                    crate::log::warning(format_args!(
                        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                        c.info_line(self.now_ms)
                    ));
                }
                self.close(key);
                continue;
            }
            self.start_send(key);
        }
    }

    /// `client-output-buffer-limit`, checked when output was added, as
    /// Redis does: the client's unsent bytes reached its class's hard limit,
    /// or have stayed at or above the soft limit for longer than its
    /// seconds (tracked from the first time they were seen there).
    fn over_output_limit(&mut self, key: Key) -> bool {
        let now_s = self.now_ms / 1000;
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let pending = c.out.len() + c.sending.len() - c.send_off.min(c.sending.len());
        let limit = self.settings.obuf[if c.sub_count() > 0 { 2 } else { 0 }];
        let hard = limit.hard > 0 && pending as u64 >= limit.hard;
        let mut soft = limit.soft > 0 && pending as u64 >= limit.soft;
        if soft {
            if c.obuf_soft_since == 0 {
                c.obuf_soft_since = now_s;
                soft = false;
            } else if now_s - c.obuf_soft_since <= limit.soft_seconds as i64 {
                soft = false;
            }
        } else {
            c.obuf_soft_since = 0;
        }
        hard || soft
    }

    /// Handles every posted completion.
    fn reap(&mut self) {
        let mut batch = std::mem::take(&mut self.cqes);
        loop {
            batch.clear();
            batch.extend(
                self.ring
                    .completion()
                    .take(256)
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if batch.is_empty() {
                self.cqes = batch;
                return;
            }
            // First take in every received buffer and prefetch what each
            // connection will look up, in three steps (every key's slot
            // header, table word, then entry), then run them: the lookups'
            // cache misses overlap instead of following one another. (With
            // a single receive there is nothing to overlap.)
            let recvs = batch
                .iter()
                .filter(|&&(ud, _, _)| split_user_data(ud).0 == KIND_RECV)
                .count();
            for &(ud, res, flags) in &batch {
                let (kind, key) = split_user_data(ud);
                if kind == KIND_RECV {
                    self.ingest(key, res, flags, recvs > 1);
                }
            }
            for &ahead in &self.ahead {
                self.engine.prefetch_entry(ahead);
            }
            for ahead in self.ahead.drain(..) {
                self.engine.prefetch_node(ahead);
            }
            for &(ud, res, flags) in &batch {
                let (kind, key) = split_user_data(ud);
                match kind {
                    KIND_ACCEPT => self.on_accept(key.index as usize, res, flags),
                    KIND_RECV => self.on_recv(key, res, flags),
                    KIND_SEND => self.on_send(key, res),
                    KIND_WAKE => self.arm_wake(),
                    KIND_CRON => {
                        self.cron(self.now_ms);
                        self.arm_cron();
                    }
                    _ => {}
                }
            }
        }
    }

    fn on_accept(&mut self, idx: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.stopping {
            self.arm_accept(idx);
        }
        if res < 0 {
            if !self.stopping && res != -libc::EAGAIN && res != -libc::EINTR {
                crate::log::warning(format_args!(
                    "Accepting client connection: accept: {}",
                    crate::log::io_error_text(&std::io::Error::from_raw_os_error(-res))
                ));
            }
            return;
        }
        let fd = res;
        // (A core told to stop may be gone already: hand it nothing.)
        if self.stopping || self.shared.shutdown.load(Ordering::Relaxed) {
            // SAFETY: we own the accepted fd.
            unsafe { libc::close(fd) };
            return;
        }
        if !self.admit(fd) {
            return;
        }
        let to = least_loaded(self.id, &self.shared.core_clients);
        // Counted now, so the next accept (on any core) sees it placed.
        self.shared.core_clients[to].fetch_add(1, Ordering::Relaxed);
        if to == self.id {
            self.adopt(fd);
        } else {
            self.mesh.send(to, Msg::Adopt { fd });
        }
    }

    /// Redis's admission of a new connection: `maxclients`, then protected
    /// mode. A refused client gets Redis's error line, is closed and counts
    /// as rejected; an admitted one counts as received.
    fn admit(&mut self, fd: i32) -> bool {
        let clients = self.shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let refusal: Option<&[u8]> = if clients > self.settings.maxclients {
            Some(b"-ERR max number of clients reached\r\n")
        } else if crate::net::protected_mode_denies(
            crate::net::sock_addr(fd, true).map(|a| a.ip()),
            self.settings.protected_mode,
            self.settings.requirepass.is_some(),
        ) {
            Some(crate::net::PROTECTED_MODE_DENIED)
        } else {
            None
        };
        let Some(msg) = refusal else {
            self.stats.total_connections_received += 1;
            return true;
        };
        self.shared.clients.fetch_sub(1, Ordering::Relaxed);
        self.stats.rejected_connections += 1;
        // SAFETY: best-effort write then close of our own fd.
        unsafe {
            libc::send(
                fd,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
            libc::close(fd);
        }
        false
    }

    /// Takes on an admitted connection, accepted here or handed over by the
    /// core that accepted it (already counted in `core_clients`): socket
    /// options, names, the registered file slot, the first receive. A
    /// stopping core closes it instead.
    fn adopt(&mut self, fd: i32) {
        if self.stopping {
            // SAFETY: the handed-over fd is ours; nothing uses it.
            unsafe { libc::close(fd) };
            self.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shared.core_clients[self.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        crate::net::nodelay(fd);
        if self.settings.tcp_keepalive_s > 0 {
            crate::net::keepalive(fd, self.settings.tcp_keepalive_s);
        }
        let addr = crate::net::sock_name(fd, true);
        let laddr = crate::net::sock_name(fd, false);
        let id = self.shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let authed = self.settings.requirepass.is_none();
        let key = self
            .conns
            .insert(Conn::new(fd, id, addr, laddr, now_ms(), authed));
        self.stats.connected_clients += 1;
        if key.index < self.fixed_files
            && matches!(
                self.ring
                    .submitter()
                    .register_files_update(key.index, &[fd]),
                Ok(1)
            )
        {
            if let Some(c) = self.conns.get_mut(key) {
                c.fixed = true;
            }
        }
        self.arm_recv(key);
    }

    /// Copies a receive's bytes into the connection's buffer and hands
    /// the ring buffer back; with `prefetch`, starts prefetching the first
    /// request's key (its slot header; `reap` then asks for the entry).
    fn ingest(&mut self, key: Key, res: i32, flags: u32, prefetch: bool) {
        let bid = cqueue::buffer_select(flags);
        if res > 0 {
            if let (Some(bid), Some(c)) = (bid, self.conns.get_mut(key)) {
                if !c.closing {
                    c.rbuf
                        .extend_from_slice(self.bufring.data(bid, res as usize));
                }
            }
        }
        if let Some(bid) = bid {
            self.bufring.recycle(bid);
        }
        if let Some(c) = self.conns.get(key) {
            if prefetch && res > 0 && c.wait == Wait::No && c.rpos < c.rbuf.len() {
                let limits = self.settings.limits;
                let rest = &c.rbuf[c.rpos..];
                if let Some(k) = first_key(&mut self.stats, &mut self.ahead_spans, rest, &limits) {
                    self.ahead.extend(self.engine.prefetch_slot(c.db, k));
                }
            }
        }
    }

    /// Handles a receive completion after [`Core::ingest`] took its bytes.
    fn on_recv(&mut self, key: Key, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !more {
            c.recv_inflight = false;
        }
        if c.closing {
            self.try_free(key);
            return;
        }
        if res <= 0 {
            if res == -libc::EINTR || res == -libc::EAGAIN || res == -libc::ENOBUFS {
                self.arm_recv(key);
                return;
            }
            self.close(key);
            return;
        }
        c.last_ms = self.now_ms;
        self.recvs += 1;
        if c.active_in != self.period {
            c.active_in = self.period;
            self.active += 1;
        }
        self.stats.net_input_bytes += res as u64;
        if c.rbuf.len() - c.rpos > self.settings.query_buf_max {
            crate::log::warning(format_args!(
                "Closing client that reached max query buffer length: id={} addr={} (qbuf initial bytes: {:?})",
                c.id,
                c.addr,
                String::from_utf8_lossy(&c.rbuf[c.rpos..c.rpos + 64.min(c.rbuf.len() - c.rpos)])
            ));
            self.close(key);
            return;
        }
        self.process(key);
        self.arm_recv(key);
    }

    fn on_send(&mut self, key: Key, res: i32) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.send_inflight = false;
        if c.closing {
            self.try_free(key);
            return;
        }
        if res < 0 {
            if res == -libc::EINTR || res == -libc::EAGAIN {
                self.want_flush(key);
                return;
            }
            self.close(key);
            return;
        }
        c.send_off += res as usize;
        self.stats.net_output_bytes += res as u64;
        let pending = c.send_off < c.sending.len() || !c.out.is_empty();
        if pending {
            self.want_flush(key);
        } else if c.close_after_flush {
            self.close(key);
        }
    }

    /// Starts closing a connection: cancels its work, shuts the socket so
    /// in-flight operations complete, and frees it once none remain.
    pub fn close(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        // SAFETY: shutting down our own socket; completions follow.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        if let Wait::Task(t) = c.wait {
            self.exec.cancel(t);
        }
        let watches = std::mem::take(&mut c.watches);
        crate::dispatch::unwatch_all(self, watches);
        if let Some(i) = self
            .waiters
            .iter()
            .position(|w| w.origin == Origin::Local(key))
        {
            let w = self.waiters.remove(i);
            self.unblock_keys(&w);
        }
        self.unsubscribe_all(key);
        self.try_free(key);
    }

    fn try_free(&mut self, key: Key) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.recv_inflight || c.send_inflight {
            return;
        }
        if let Some(c) = self.conns.remove(key) {
            if c.fixed {
                // The table holds the socket open too: drop that hold.
                let _ = self
                    .ring
                    .submitter()
                    .register_files_update(key.index, &[-1]);
            }
            // SAFETY: nothing is in flight on this fd any more.
            unsafe { libc::close(c.fd) };
            self.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shared.core_clients[self.id].fetch_sub(1, Ordering::Relaxed);
            self.stats.connected_clients = self.stats.connected_clients.saturating_sub(1);
        }
    }

    fn unsubscribe_all(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let subs: Vec<Bytes> = c.subs.drain().collect();
        let psubs: Vec<Bytes> = c.psubs.drain().collect();
        let ssubs: Vec<Bytes> = c.ssubs.drain().collect();
        for (map, names) in [
            (&mut self.pubsub.channels, subs),
            (&mut self.pubsub.patterns, psubs),
            (&mut self.pubsub.shard_channels, ssubs),
        ] {
            for n in names {
                if let Some(v) = map.get_mut(&n) {
                    v.retain(|k| *k != key);
                    if v.is_empty() {
                        map.remove(&n);
                    }
                }
            }
        }
    }

    /// Parses and runs the commands buffered on `key` until one has to wait.
    pub fn process(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.closing || c.close_after_flush || c.wait != Wait::No {
            return;
        }
        let db = c.db;
        let rbuf = std::mem::take(&mut c.rbuf);
        let mut spans = std::mem::take(&mut c.spans);
        let mut scratch = std::mem::take(&mut c.scratch);
        let mut pos = c.rpos;
        let mut need = c.need;
        let limits = self.settings.limits;
        loop {
            if rbuf.len() < need || pos >= rbuf.len() {
                break;
            }
            match parse(
                &mut self.stats,
                &rbuf[pos..],
                &limits,
                &mut spans,
                &mut scratch,
            ) {
                Ok(engine::resp::Parsed::Incomplete { need: n }) => {
                    need = pos + n;
                    break;
                }
                Ok(engine::resp::Parsed::Empty { consumed }) => pos += consumed,
                Ok(engine::resp::Parsed::Command { consumed, inline }) => {
                    need = 0;
                    // Start loading the next pipelined command's entry.
                    if let Some(k) = first_key(
                        &mut self.stats,
                        &mut self.ahead_spans,
                        &rbuf[pos + consumed..],
                        &limits,
                    ) {
                        self.engine.prefetch(db, k);
                    }
                    let src: &[u8] = if inline { &scratch } else { &rbuf[pos..] };
                    let args = engine::Args::new(src, &spans);
                    match crate::dispatch::command(self, key, args) {
                        crate::dispatch::Next::Continue => pos += consumed,
                        crate::dispatch::Next::Wait => {
                            pos += consumed;
                            break;
                        }
                        crate::dispatch::Next::Retry => break,
                        crate::dispatch::Next::Remote { to, db, write } => {
                            // An inline command travels re-encoded as RESP
                            // (the owner parses RESP only).
                            let head = inline.then(|| {
                                let mut head = Vec::new();
                                encode_command(&engine::Args::new(&scratch, &spans), &mut head);
                                head
                            });
                            let first = First {
                                to,
                                write,
                                consumed,
                                head,
                            };
                            let (p, end) = self.gather_pipeline(
                                key,
                                &rbuf,
                                pos,
                                first,
                                &mut spans,
                                &mut scratch,
                            );
                            pos = end;
                            let resp3 = self.conns.get(key).is_some_and(|c| c.resp3);
                            let rpc = self.rpc.clone();
                            crate::dispatch::spawn(self, key, async move {
                                crate::flows::pipeline(
                                    rpc, db, resp3, p.bytes, p.segs, p.writes, key,
                                )
                                .await
                            });
                            break;
                        }
                    }
                }
                Err(e) => {
                    if let Some(c) = self.conns.get_mut(key) {
                        let msg = e.message();
                        crate::log::verbose(format_args!(
                            "Protocol error ({}) from client: id={} addr={}",
                            e.0, c.id, c.addr
                        ));
                        Reply::err(msg).encode(c.resp3, &mut c.out);
                        c.close_after_flush = true;
                    }
                    self.want_flush(key);
                    pos = rbuf.len();
                    break;
                }
            }
            if self
                .conns
                .get(key)
                .is_none_or(|c| c.close_after_flush || c.closing)
            {
                break;
            }
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.rbuf = rbuf;
            c.spans = spans;
            c.scratch = scratch;
            // The kernel never writes into this buffer (it fills the ring's
            // buffers), so it can be compacted at any time. It is, once the
            // consumed part is at least as long as what remains: moving the
            // rest at every stop (each hop of a pipeline to another core)
            // would make a long pipeline quadratic; this way each byte is
            // moved a bounded number of times.
            if pos == c.rbuf.len() {
                c.rbuf.clear();
                c.rpos = 0;
                c.need = 0;
            } else if pos >= COMPACT_MIN && pos * 2 >= c.rbuf.len() {
                self.stats.input_bytes_moved += (c.rbuf.len() - pos) as u64;
                c.rbuf.drain(..pos);
                c.rpos = 0;
                c.need = need.saturating_sub(pos);
            } else {
                c.rpos = pos;
                c.need = need;
            }
        }
    }

    /// Appends `reply` to `key`'s output.
    pub fn reply(&mut self, key: Key, reply: &Reply) {
        if let Some(c) = self.conns.get_mut(key) {
            reply.encode(c.resp3, &mut c.out);
            self.want_flush(key);
        }
    }

    fn task_done(&mut self, done: TaskDone) {
        let key = done.conn;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        for e in done.effects {
            match e {
                Effect::Db(db) => c.db = db,
                Effect::Watched(w) => c.watches.extend(w),
            }
        }
        for r in &done.replies {
            r.encode(c.resp3, &mut c.out);
        }
        c.out.extend_from_slice(&done.encoded);
        if matches!(c.wait, Wait::Task(_)) {
            c.wait = Wait::No;
        }
        self.want_flush(key);
        self.resume.push(key);
    }

    /// Runs one command on this core's keyspace. Parks it when it blocks
    /// (`origin` is then told later). The caller serves the clients its
    /// writes woke ([`Core::serve_ready`]) once the whole request is done,
    /// so a transaction's intermediate states are never handed out.
    pub fn run_local(
        &mut self,
        spec: &'static engine::cmd::Spec,
        db: usize,
        args: engine::Args,
        in_multi: bool,
        origin: Option<Origin>,
    ) -> Option<Reply> {
        // Time one command in 16 for INFO commandstats: a clock read per
        // command would cost more than a GET.
        self.cmd_serial = self.cmd_serial.wrapping_add(1);
        let timed = (self.cmd_serial & 15 == 0).then(std::time::Instant::now);
        let mut ctx = Ctx::new(&mut self.engine, db, self.now_ms, args);
        ctx.slots = self.slots.clone();
        ctx.in_multi = in_multi;
        let reply = cmd::execute(spec, &mut ctx);
        let block = ctx.block.take();
        let e = self.cmdstats.entry(spec.name).or_insert((0, 0));
        e.0 += 1;
        if let Some(t) = timed {
            e.1 += 16 * t.elapsed().as_micros() as u64;
        }
        self.stats.total_commands_processed += 1;
        match (block, origin) {
            (Some(b), Some(origin)) if !in_multi => {
                for k in &b.keys {
                    self.engine.set_blocked_on(db, k, true);
                }
                self.waiters.push(Waiter {
                    origin,
                    db,
                    args: args.to_owned(),
                    keys: b.keys,
                    deadline_ms: b.deadline_ms,
                    timeout_reply: reply,
                });
                None
            }
            _ => Some(reply),
        }
    }

    /// Cuts a pipeline that crosses cores: its first command, at
    /// `rbuf[start..]`, is for another core; the pipelined commands behind
    /// it go along while they can ([`crate::dispatch::plan_target`]), up to
    /// [`PIPELINE_CMDS_MAX`] commands or [`PIPELINE_BYTES_MAX`] bytes. Returns
    /// the pipeline and where in `rbuf` it ends.
    fn gather_pipeline(
        &mut self,
        key: Key,
        rbuf: &[u8],
        start: usize,
        first: First,
        spans: &mut Vec<(u32, u32)>,
        scratch: &mut Vec<u8>,
    ) -> (Planned, usize) {
        let mut pos = start + first.consumed;
        let mut segs = vec![Seg {
            core: first.to,
            start: 0,
            end: first.consumed as u32,
            cmds: 1,
        }];
        let (mut writes, mut cmds) = (first.write, 1);
        while cmds < PIPELINE_CMDS_MAX && pos - start < PIPELINE_BYTES_MAX {
            let Ok(engine::resp::Parsed::Command {
                consumed,
                inline: false,
            }) = parse(
                &mut self.stats,
                &rbuf[pos..],
                &self.settings.limits,
                spans,
                scratch,
            )
            else {
                break;
            };
            let next = engine::Args::new(&rbuf[pos..], spans);
            let Some((owner, write)) = crate::dispatch::plan_target(self, key, &next) else {
                break;
            };
            let (from, end) = ((pos - start) as u32, (pos + consumed - start) as u32);
            match segs.last_mut() {
                Some(s) if s.core == owner => {
                    s.end = end;
                    s.cmds += 1;
                }
                _ => segs.push(Seg {
                    core: owner,
                    start: from,
                    end,
                    cmds: 1,
                }),
            }
            writes |= write;
            cmds += 1;
            pos += consumed;
        }
        let bytes = match first.head {
            None => Bytes::copy_from_slice(&rbuf[start..pos]),
            Some(mut head) => {
                // The offsets shift by the re-encoding of the first command.
                let (old, new) = (first.consumed as u32, head.len() as u32);
                for s in &mut segs {
                    if s.start > 0 {
                        s.start = s.start - old + new;
                    }
                    s.end = s.end - old + new;
                }
                head.extend_from_slice(&rbuf[start + first.consumed..pos]);
                Bytes::from(head)
            }
        };
        (
            Planned {
                bytes,
                segs,
                writes,
            },
            pos,
        )
    }

    /// Runs `cmds` pipelined commands, the RESP bytes `buf`, and appends
    /// their replies to `out`, encoded for the client's protocol. They were
    /// checked on the client's core ([`crate::dispatch::plan_target`]): plain
    /// single-key commands of this core that do not block.
    fn run_segment(
        &mut self,
        db: usize,
        resp3: bool,
        mut buf: &[u8],
        cmds: u32,
        out: &mut Vec<u8>,
    ) {
        let limits = self.settings.limits;
        let mut spans = std::mem::take(&mut self.ahead_spans);
        let mut scratch = Vec::new();
        for _ in 0..cmds {
            let parsed = parse(&mut self.stats, buf, &limits, &mut spans, &mut scratch);
            let reply = match parsed {
                Ok(engine::resp::Parsed::Command {
                    consumed,
                    inline: false,
                }) => {
                    let args = engine::Args::new(buf, &spans);
                    let reply = match engine::cmd::registry().lookup(args.get(0)) {
                        Some(spec) => self.run_local(spec, db, args, false, None),
                        None => None,
                    };
                    buf = &buf[consumed.min(buf.len())..];
                    reply
                }
                _ => None,
            };
            reply
                .unwrap_or_else(|| {
                    Reply::err("ERR internal error: a pipelined command did not run on its shard")
                })
                .encode(resp3, out);
        }
        self.ahead_spans = spans;
    }

    /// Gives data that just arrived to clients blocked on it, oldest first.
    /// Waits while a transaction holds this core: its unlock serves them.
    pub fn serve_ready(&mut self) {
        if self.lock.is_some() {
            return;
        }
        for _ in 0..1024 {
            let ready = self.engine.take_ready();
            if ready.is_empty() {
                return;
            }
            for (db, key) in ready {
                let db = db as usize;
                let mut i = 0;
                while i < self.waiters.len() {
                    let w = &self.waiters[i];
                    if w.db != db || !w.keys.iter().any(|k| k[..] == key[..]) {
                        i += 1;
                        continue;
                    }
                    let Some(spec) = engine::cmd::registry().lookup(w.args.as_args().get(0)) else {
                        i += 1;
                        continue;
                    };
                    let args = w.args.clone();
                    let mut ctx = Ctx::new(&mut self.engine, db, self.now_ms, args.as_args());
                    ctx.slots = self.slots.clone();
                    let reply = cmd::execute(spec, &mut ctx);
                    if ctx.block.is_some() {
                        i += 1;
                        continue;
                    }
                    let w = self.waiters.remove(i);
                    self.unblock_keys(&w);
                    self.deliver(w.origin, reply);
                }
            }
        }
    }

    fn unblock_keys(&mut self, w: &Waiter) {
        for k in &w.keys {
            let still = self
                .waiters
                .iter()
                .any(|o| o.db == w.db && o.keys.iter().any(|x| x == k));
            if !still {
                self.engine.set_blocked_on(w.db, k, false);
            }
        }
    }

    fn deliver(&mut self, origin: Origin, reply: Reply) {
        match origin {
            Origin::Local(key) => {
                if let Some(c) = self.conns.get_mut(key) {
                    reply.encode(c.resp3, &mut c.out);
                    c.wait = Wait::No;
                    self.want_flush(key);
                    self.resume.push(key);
                }
            }
            Origin::Remote { from, id } => self.mesh.send(
                from,
                Msg::Resp {
                    id,
                    resp: Response::Replies(vec![reply]),
                },
            ),
        }
    }

    /// Answers blocked clients whose deadline passed (checked every turn,
    /// so a short BLPOP timeout is not rounded up to the cron period).
    fn expire_waiters(&mut self, now: i64) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].deadline_ms.is_some_and(|d| d <= now) {
                let w = self.waiters.remove(i);
                self.unblock_keys(&w);
                let reply = w.timeout_reply.clone();
                self.deliver(w.origin, reply);
            } else {
                i += 1;
            }
        }
    }

    fn cron(&mut self, now: i64) {
        self.plan_batch();
        // Active expiry: Redis's adaptive cycle, bounded to a quarter of a
        // tick's time.
        let budget =
            std::time::Duration::from_micros(250_000 / self.settings.hz.clamp(1, 500) as u64);
        let start = std::time::Instant::now();
        let active_expire = self.shared.active_expire.load(Ordering::Relaxed);
        for db in (0..self.engine.dbs.len()).filter(|_| active_expire) {
            loop {
                let (sampled, expired) = self.engine.active_expire(db, 20, now);
                if sampled == 0 || expired * 10 <= sampled || start.elapsed() > budget {
                    break;
                }
            }
        }
        // Idle clients (`timeout`).
        if self.settings.timeout_s > 0 {
            let limit = self.settings.timeout_s as i64 * 1000;
            for key in self.conns.keys() {
                let idle = self.conns.get(key).is_some_and(|c| {
                    now - c.last_ms > limit && c.wait != Wait::Blocked && c.sub_count() == 0
                });
                if idle {
                    self.close(key);
                }
            }
        }
        if self.shared.shutdown.load(Ordering::Relaxed) && !self.stopping {
            self.stop();
        }
    }

    /// Closes a cron period: sets how many requests a sleep waits for
    /// from the traffic it saw. Batching is for many clients each sending
    /// one request at a time; pipelined traffic already brings many
    /// requests per wake-up.
    fn plan_batch(&mut self) {
        // (CONFIG RESETSTAT may have zeroed the count meanwhile.)
        let cmds = self
            .stats
            .total_commands_processed
            .saturating_sub(self.period_cmds_from);
        let period_ns = 1_000_000_000 / self.settings.hz.clamp(1, 500) as u64;
        // A message wakes a core sleeping on its futex at once, so messages
        // need not keep it from batching; on an eventfd they would wait.
        let msgs = if self.mesh.futex() { 0 } else { self.msgs };
        self.batch = batch_size(self.active, self.recvs, cmds, msgs, period_ns);
        self.period = self.period.wrapping_add(1);
        self.active = 0;
        self.recvs = 0;
        self.msgs = 0;
        self.period_cmds_from = self.stats.total_commands_processed;
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&mut self) {
        self.stopping = true;
        // Shut, not closed: `main` closes them once every core is gone.
        // Shutting a listening socket ends every core's pending accept and
        // refuses new connections; a second shutdown is harmless.
        for fd in std::mem::take(&mut self.listeners) {
            // SAFETY: the sockets stay open until every core has returned.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for key in self.conns.keys() {
            self.close(key);
        }
    }

    fn drain_inbox(&mut self) {
        for _ in 0..4096 {
            let Some(msg) = self.mesh.recv(self.id) else {
                return;
            };
            self.handle_msg(msg);
        }
    }

    fn handle_msg(&mut self, msg: Msg) {
        self.msgs += 1;
        match msg {
            Msg::Resp { id, resp } => self.rpc.complete(id, resp),
            Msg::Adopt { fd } => self.adopt(fd),
            Msg::Req { from, id, req } => {
                if let Some(tx) = self.lock {
                    let mine = match &req {
                        Request::Exec { tx: Some(t), .. }
                        | Request::Pipeline { tx: Some(t), .. } => *t == tx,
                        Request::Unlock(t) => *t == tx,
                        Request::Export { .. } | Request::Import { .. } => true,
                        Request::Lock(_)
                        | Request::Exec { .. }
                        | Request::Pipeline { .. }
                        | Request::Watch { .. } => false,
                        _ => true,
                    };
                    if !mine {
                        self.deferred.push_back(Msg::Req { from, id, req });
                        return;
                    }
                }
                self.handle_request(from, id, req);
            }
        }
    }

    fn answer(&self, from: usize, id: u64, resp: Response) {
        if id != 0 {
            self.mesh.send(from, Msg::Resp { id, resp });
        }
    }

    fn handle_request(&mut self, from: usize, id: u64, req: Request) {
        match req {
            Request::Exec {
                db,
                cmds,
                in_multi,
                may_block,
                watch,
                ..
            } => {
                for (d, key, version) in &watch {
                    if self.engine.watch_version(*d, key) != *version {
                        return self.answer(from, id, Response::WatchFailed);
                    }
                }
                let mut replies = Vec::with_capacity(cmds.len());
                let mut db = db;
                for owned in &cmds {
                    let args = owned.as_args();
                    let Some(spec) = engine::cmd::registry().lookup(args.get(0)) else {
                        replies.push(Reply::Error(
                            engine::error::unknown_command(args.get(0), args.iter_from(1)).into(),
                        ));
                        continue;
                    };
                    if spec.name == "select" {
                        // SELECT inside EXEC switches the database for
                        // the commands after it.
                        match crate::dispatch::parse_db(args.get(1), self.settings.databases) {
                            Ok(d) => {
                                db = d;
                                replies.push(Reply::Ok);
                            }
                            Err(e) => replies.push(e),
                        }
                        continue;
                    }
                    let origin =
                        (may_block && cmds.len() == 1).then_some(Origin::Remote { from, id });
                    match self.run_local(spec, db, args, in_multi, origin) {
                        Some(r) => replies.push(r),
                        None => return, // parked; answered when served
                    }
                }
                self.answer(from, id, Response::Replies(replies));
                self.serve_ready();
            }
            Request::Pipeline {
                tx,
                db,
                resp3,
                bytes,
                segs,
                mut at,
                mut out,
                mut ends,
            } => {
                while let Some(seg) = segs.get(at).filter(|s| s.core == self.id) {
                    let part = bytes
                        .get(seg.start as usize..seg.end as usize)
                        .unwrap_or(&[]);
                    self.run_segment(db, resp3, part, seg.cmds, &mut out);
                    ends.push(out.len() as u32);
                    at += 1;
                }
                self.serve_ready();
                match segs.get(at).map(|s| s.core) {
                    Some(next) => {
                        let req = Request::Pipeline {
                            tx,
                            db,
                            resp3,
                            bytes,
                            segs,
                            at,
                            out,
                            ends,
                        };
                        self.mesh.send(next, Msg::Req { from, id, req });
                    }
                    None => self.answer(from, id, Response::Encoded { out, ends }),
                }
            }
            Request::Lock(tx) => {
                // Only reached when unlocked (see handle_msg).
                self.lock = Some(tx);
                self.answer(from, id, Response::Granted);
            }
            Request::Unlock(tx) => {
                if self.lock == Some(tx) {
                    self.lock = None;
                    self.serve_ready();
                    let deferred = std::mem::take(&mut self.deferred);
                    for msg in deferred {
                        if self.lock.is_some() {
                            self.deferred.push_back(msg);
                        } else {
                            self.handle_msg(msg);
                        }
                    }
                    if self.lock.is_none() {
                        let stalled = std::mem::take(&mut self.stalled);
                        for key in stalled {
                            if let Some(c) = self.conns.get_mut(key) {
                                if c.wait == Wait::Stalled {
                                    c.wait = Wait::No;
                                }
                            }
                            self.resume.push(key);
                        }
                    }
                }
            }
            Request::Export { db, keys } => {
                let now = now_ms();
                let entries = keys
                    .into_iter()
                    .map(|k| {
                        let e = self
                            .engine
                            .lookup(db, &k, now)
                            .map(|e| (e.value.clone(), e.expire_at()));
                        (k, e)
                    })
                    .collect();
                self.answer(from, id, Response::Entries(entries));
            }
            Request::Import { db, entries } => {
                let now = now_ms();
                for (k, e) in entries {
                    match e {
                        None => {
                            if self.engine.remove(db, &k).is_some() {
                                self.engine
                                    .log_write(db, || vec![Bytes::from_static(b"DEL"), k.clone()]);
                            }
                        }
                        Some((v, exp)) => {
                            if self.engine.log_enabled() {
                                self.engine
                                    .log_write(db, || vec![Bytes::from_static(b"DEL"), k.clone()]);
                                for argv in engine::rewrite::rebuild(&k, &v, exp) {
                                    self.engine.log_write(db, || argv);
                                }
                            }
                            self.engine.set(db, &k, v, now);
                            self.engine.dbs[db].set_expire(&k, exp);
                            self.engine.signal_ready(db, &k);
                        }
                    }
                    self.engine.dirty += 1;
                }
                self.serve_ready();
                self.answer(from, id, Response::Done);
            }
            Request::Watch { db, keys } => {
                let v = keys.iter().map(|k| self.engine.watch(db, k)).collect();
                self.answer(from, id, Response::Versions(v));
            }
            Request::Unwatch { db, keys } => {
                for k in keys {
                    self.engine.unwatch(db, &k);
                }
            }
            Request::Publish {
                channel,
                message,
                sharded,
            } => {
                let n = crate::pubsub::deliver(self, &channel, &message, sharded);
                self.answer(from, id, Response::Count(n as i64));
            }
            Request::PubsubQuery { sub, args } => {
                let r = crate::pubsub::query(self, &sub, &args);
                self.answer(from, id, Response::Replies(vec![r]));
            }
            Request::CancelBlocked { id: bid } => {
                if let Some(i) = self
                    .waiters
                    .iter()
                    .position(|w| w.origin == Origin::Remote { from, id: bid })
                {
                    let w = self.waiters.remove(i);
                    self.unblock_keys(&w);
                }
            }
            Request::Admin(q) => {
                let resp = self.admin(q);
                self.answer(from, id, resp);
            }
        }
    }

    fn admin(&mut self, q: AdminQuery) -> Response {
        match q {
            AdminQuery::ClientList { ids } => {
                let now = now_ms();
                let mut s = String::new();
                for c in self.conns.iter() {
                    if !c.closing && (ids.is_empty() || ids.contains(&c.id)) {
                        s.push_str(&c.info_line(now));
                        s.push('\n');
                    }
                }
                Response::Lines(s)
            }
            AdminQuery::ClientKill { filter } => {
                let mut n = 0;
                for key in self.conns.keys() {
                    let Some(c) = self.conns.get(key) else {
                        continue;
                    };
                    let hit = filter.id.is_none_or(|i| i == c.id)
                        && filter.addr.as_ref().is_none_or(|a| *a == c.addr)
                        && filter.laddr.as_ref().is_none_or(|a| *a == c.laddr)
                        && filter.skipme_id.is_none_or(|me| me != c.id);
                    if hit && !c.closing {
                        n += 1;
                        if let Some(c) = self.conns.get_mut(key) {
                            c.close_after_flush = true;
                        }
                        self.want_flush(key);
                        if self
                            .conns
                            .get(key)
                            .is_some_and(|c| c.out.is_empty() && c.sending.is_empty())
                        {
                            self.close(key);
                        }
                    }
                }
                Response::Count(n)
            }
            AdminQuery::Stats => {
                let mut s = self.stats.clone();
                s.blocked_clients = self
                    .waiters
                    .iter()
                    .filter(|w| matches!(w.origin, Origin::Local(_)))
                    .count() as u64;
                s.pubsub_clients = self.conns.iter().filter(|c| c.sub_count() > 0).count() as u64;
                s.connected_clients = self.conns.len() as u64;
                s.expired_keys = self.engine.stats.expired_keys;
                s.keyspace_hits = self.engine.stats.keyspace_hits;
                s.keyspace_misses = self.engine.stats.keyspace_misses;
                s.dirty = self.engine.dirty;
                s.pubsub_channels = self.pubsub.channels.len() as u64;
                s.pubsub_patterns = self.pubsub.patterns.len() as u64;
                s.keyspace = self
                    .engine
                    .dbs
                    .iter()
                    .map(|d| (d.len() as u64, d.volatile_len() as u64))
                    .collect();
                s.cmdstats = self
                    .cmdstats
                    .iter()
                    .map(|(n, (calls, usec))| (*n, *calls, *usec, 0, 0))
                    .collect();
                Response::Stats(Box::new(s))
            }
            AdminQuery::ResetStats => {
                self.stats = CoreStats::default();
                self.stats.connected_clients = self.conns.len() as u64;
                self.engine.stats = engine::shard::Stats::default();
                self.cmdstats.clear();
                Response::Done
            }
            AdminQuery::Reload => {
                self.settings = self.shared.settings();
                self.engine.limits = self.settings.encoding;
                crate::flows::set_limits(self.settings.encoding);
                Response::Done
            }
            AdminQuery::Shutdown => {
                self.stop();
                Response::Done
            }
        }
    }
}

/// How many requests a sleeping core waits for, after a cron period of
/// `period_ns` in which `active` clients sent `cmds` commands in `recvs`
/// receives and other cores sent `msgs` messages (see `Core::plan_batch`).
fn batch_size(active: u64, recvs: u64, cmds: u64, msgs: u64, period_ns: u64) -> u32 {
    // Pipelines bring many requests per wake-up already; and a message
    // from another core wakes a sleeping core only as one completion
    // among those it waits for, so cores that talk do not batch.
    if cmds > 2 * recvs || msgs * 16 > recvs {
        return 1;
    }
    let in_half_wait = recvs * (BATCH_WAIT_NS / 2) / period_ns.max(1);
    (active / BATCH_CLIENTS_PER_WAIT)
        .min(in_half_wait)
        .clamp(1, BATCH_MAX) as u32
}

/// Appends `args` to `out` as a RESP array of bulk strings.
fn encode_command(args: &engine::Args, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args.iter_from(0) {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the next request in `buf`, counting the bytes examined (INFO's
/// `slotd_input_bytes_parsed`; an incomplete request counts all of `buf`).
fn parse(
    stats: &mut CoreStats,
    buf: &[u8],
    limits: &engine::resp::Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> Result<engine::resp::Parsed, engine::resp::ProtocolError> {
    let parsed = engine::resp::parse(buf, limits, spans, scratch);
    stats.input_bytes_parsed += match parsed {
        Ok(engine::resp::Parsed::Command { consumed, .. })
        | Ok(engine::resp::Parsed::Empty { consumed }) => consumed,
        _ => buf.len(),
    } as u64;
    parsed
}

/// If `rest` starts with a complete request, its first argument after the
/// name: the key to prefetch. On a large keyspace a lookup is a few cache
/// misses; prefetched, they overlap with other work (the command before it
/// in a pipeline, or the other connections of the same turn).
fn first_key<'a>(
    stats: &mut CoreStats,
    spans: &mut Vec<(u32, u32)>,
    rest: &'a [u8],
    limits: &engine::resp::Limits,
) -> Option<&'a [u8]> {
    if rest.first() != Some(&b'*') {
        return None;
    }
    match parse(stats, rest, limits, spans, &mut Vec::new()) {
        Ok(engine::resp::Parsed::Command { inline: false, .. }) => {
            let &(s, e) = spans.get(1)?;
            rest.get(s as usize..e as usize)
        }
        _ => None,
    }
}

/// The core to give a new connection: the one with the fewest, `me` when
/// it ties for fewest.
fn least_loaded(me: usize, loads: &[std::sync::atomic::AtomicUsize]) -> usize {
    let load = |c: usize| loads[c].load(Ordering::Relaxed);
    let mut best = (me, load(me));
    for c in 0..loads.len() {
        let n = load(c);
        if n < best.1 {
            best = (c, n);
        }
    }
    best.0
}

/// `io_uring_enter` flags (linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1;
const ENTER_EXT_ARG: u32 = 8;
const ENTER_REGISTERED_RING: u32 = 16;

/// Registers `ring_fd` with its own ring (IORING_REGISTER_RING_FDS, Linux
/// 5.18); returns the index to enter with, or None where unsupported. The
/// index is valid only on the calling thread: `Core::new` runs on the
/// core's own thread.
fn register_ring_fd(ring_fd: i32) -> Option<i32> {
    const IORING_REGISTER_RING_FDS: libc::c_long = 20;
    // struct io_uring_rsrc_update { u32 offset; u32 resv; u64 data; }
    let mut up: [u32; 4] = [u32::MAX, 0, ring_fd as u32, 0];
    // SAFETY: `up` is a valid io_uring_rsrc_update the kernel reads and
    // fills in (offset u32::MAX: pick a free index).
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_REGISTER_RING_FDS,
            up.as_mut_ptr(),
            1,
        )
    };
    (r == 1 && up[0] != u32::MAX).then_some(up[0] as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD_NS: u64 = 100_000_000;

    #[test]
    fn a_new_connection_goes_to_the_core_with_fewest_preferring_the_acceptor() {
        use std::sync::atomic::AtomicUsize;
        let loads = |v: &[usize]| v.iter().map(|&n| AtomicUsize::new(n)).collect::<Vec<_>>();
        assert_eq!(least_loaded(0, &loads(&[3, 1, 2])), 1);
        assert_eq!(least_loaded(2, &loads(&[3, 1, 2])), 1);
        // Ties: the accepting core keeps it, else the lowest-numbered.
        assert_eq!(least_loaded(2, &loads(&[1, 1, 1])), 2);
        assert_eq!(least_loaded(2, &loads(&[0, 0, 1])), 0);
        assert_eq!(least_loaded(0, &loads(&[5])), 0);
        // A burst accepted on one core alternates once counts are bumped.
        let l = loads(&[0, 0]);
        let mut placed = [0; 2];
        for _ in 0..40 {
            let to = least_loaded(0, &l);
            l[to].fetch_add(1, Ordering::Relaxed);
            placed[to] += 1;
        }
        assert_eq!(placed, [20, 20]);
    }

    #[test]
    fn many_clients_one_request_each_batch_their_wakeups() {
        // 50 clients at 100k requests/s: 10 arrive in half the wait.
        assert_eq!(batch_size(50, 10_000, 10_000, 0, PERIOD_NS), 10);
        // 200 clients at 400k/s: capped.
        assert_eq!(
            batch_size(200, 40_000, 40_000, 0, PERIOD_NS) as u64,
            BATCH_MAX
        );
        // Slower arrivals: fewer waited for, so the wait rarely times out.
        assert_eq!(batch_size(50, 4_000, 4_000, 0, PERIOD_NS), 4);
        // An occasional message from another core (INFO) changes nothing.
        assert_eq!(batch_size(50, 10_000, 10_000, 3, PERIOD_NS), 10);
    }

    #[test]
    fn few_clients_pipelines_cross_core_traffic_and_quiet_periods_wake_at_once() {
        // A handful of clients would wait on each other.
        assert_eq!(batch_size(4, 20_000, 20_000, 0, PERIOD_NS), 1);
        assert_eq!(batch_size(7, 20_000, 20_000, 0, PERIOD_NS), 1);
        // Pipelines (16 commands a receive) bring many requests per wake.
        assert_eq!(batch_size(50, 6_000, 96_000, 0, PERIOD_NS), 1);
        // Idle connections that sent one request each in the period.
        assert_eq!(batch_size(1000, 1000, 1000, 0, PERIOD_NS), 1);
        assert_eq!(batch_size(0, 0, 0, 0, PERIOD_NS), 1);
        // Keys on other cores: their requests and answers must not wait.
        assert_eq!(batch_size(50, 10_000, 10_000, 5_000, PERIOD_NS), 1);
    }
}
