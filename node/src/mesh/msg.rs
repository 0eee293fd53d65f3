//! Messages between cores.
//!
//! Every core has one inbox (a lock-free MPSC queue) and a way to be woken
//! when it sleeps in `io_uring_enter`: a futex word it waits on with an
//! io_uring FUTEX_WAIT entry (Linux 6.7+), else an eventfd it reads. A
//! sender pays the wake-up (one syscall) only when the core really sleeps,
//! once however many messages it sends. A futex wake-up is a forced one:
//! it ends a sleep that waits for several completions (see `Core::run`),
//! so cores that exchange messages can batch their sleeps too; an eventfd
//! read is one completion among those waited for. A message owns all its data
//! (`OwnedArgs`, `Bytes`, `Value`), so no core ever holds a reference into
//! another core's memory. A request never waits on another hop while its
//! owner handles it: hops are chained by the requesting task, not by the
//! core serving them, which keeps the mesh free of cycles.

use crate::io::ClientType;
use crossbeam_queue::SegQueue;
use engine::value::Value;
use engine::{OwnedArgs, Reply};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Identifies a multi-shard operation holding shard locks: (core, serial).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxId(pub usize, pub u64);

impl TxId {
    /// The transaction's name in the replication stream (`TxnPart::id`).
    pub fn repl_id(self) -> u64 {
        ((self.0 as u64) << 48) ^ self.1
    }
}

/// A key's value and absolute expiry (ms), as moved between cores.
pub type Exported = Option<(Value, Option<i64>)>;

/// Consecutive pipelined commands for one core: a byte range of a
/// [`Request::Pipeline`]'s RESP bytes holding `cmds` commands; `pre`: where
/// their entries start in the pipeline's `pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub core: usize,
    pub start: u32,
    pub end: u32,
    pub cmds: u32,
    pub pre: u32,
}

/// In a [`Request::Pipeline`]'s `pre`, a command's header whose argument
/// count is this was not parsed ahead: its core parses it.
pub const NOT_PARSED: u32 = u32::MAX;

/// What one core asks of another.
#[derive(Debug)]
pub enum Request {
    /// Pause (`on`) or resume this core's writers for a manual failover
    /// (`gen` names the pause); once paused, the core tells the bus with
    /// `Ask::Paused`. Deferred while another transaction holds the lock,
    /// so that transaction's writes come before the pause.
    PauseWrites { on: bool, gen: u64 },
    /// A client's pipelined single-key commands, as the RESP bytes it sent
    /// (`bytes`), cut into segments by owner core. The receiving core runs
    /// `segs[at]` and the segments right after it that are also its own,
    /// appends the replies, encoded for the client's protocol, to `out`
    /// (and each segment's end offset to `ends`), then passes the rest on
    /// to the next segment's core; the core that runs the last segment
    /// answers the requester with [`Response::Encoded`]. So writes become
    /// visible in the order the client sent them, to every observer, and a
    /// change of core costs one message, not a round trip. `tx` is set when
    /// the sender holds this core's lock (see `flows::pipeline`). The first
    /// command's big arguments travel apart, shared (`bigs`, at `holes` in
    /// `bytes`: see `engine::resp::parse_with_holes`). `direct`: the
    /// client's socket (-1: none), on which the answering core may send
    /// the replies itself (see `Shard::flush_direct`).
    /// Boxed: it travels core to core, moved as one pointer.
    Pipeline(Box<Pipeline>),
    /// Run these commands in order, atomically, in database `db`.
    /// `tx` is set when the sender holds this core's lock. `watch` lists
    /// WATCH versions that must all still hold, or nothing runs.
    /// `may_block`: a blocking command that finds nothing parks here until
    /// data arrives or its deadline passes.
    Exec {
        db: usize,
        cmds: Vec<OwnedArgs>,
        tx: Option<TxId>,
        in_multi: bool,
        may_block: bool,
        watch: Vec<(usize, bytes::Bytes, u64)>,
        /// As for `Pipeline`.
        conn: Option<crate::io::Key>,
        /// Per command, whether it counts in INFO's commandstats and
        /// `total_commands_processed` here (empty: all do): a command
        /// split over cores counts on its first part's core only.
        counts: Vec<bool>,
    },
    /// Take this core's lock for `tx`, which locks these cores; answered
    /// once granted. `true`: the coordinator adds the command's form to
    /// the replication stream (`repl::merge::Form`): what this core
    /// rebuilds for it goes to its AOF only.
    Lock(TxId, Vec<usize>, bool),
    /// Release the lock held by `tx` (answered once this core's part is
    /// closed in its log, and under `always` on disk).
    Unlock(TxId),
    /// Every core's part of transaction `tx` is closed and written (under
    /// `always`, fsynced): what this core recorded after its part may now
    /// be revealed (see `persist::aof::CoreAof::hold_until_settled`).
    /// Answered once this core's effective offset covers what it recorded
    /// so far (the part among it).
    Settled(TxId),
    /// Copy out these keys: under the lock of the transaction that sends
    /// it (a request of the caller's transaction `tx`, which may be sent
    /// right behind its `Lock`, or `None` for a caller that holds the lock
    /// already or needs none).
    Export {
        db: usize,
        keys: Vec<bytes::Bytes>,
        tx: Option<TxId>,
    },
    /// Client-side caching: client `id`, served by core `core`, read
    /// these keys of this core (no answer). Sent before the read itself,
    /// so no write between the two goes unnoticed.
    TrackKeys {
        id: u64,
        core: usize,
        keys: Vec<bytes::Bytes>,
    },
    /// Client `id` of core `core` starts (`on`) or stops BCAST tracking
    /// of these prefixes; answered with [`Response::Done`].
    TrackPrefixes {
        id: u64,
        core: usize,
        prefixes: Vec<Vec<u8>>,
        on: bool,
    },
    /// Replace these keys (under `tx`'s lock): `None` deletes, freeing
    /// as `why` allows (overwritten values as `lazyfree-lazy-server-del`).
    /// `del_events`: a deletion is a `del` keyspace event (MIGRATE's);
    /// otherwise none (a write-back: its command's events came from the
    /// scratch run).
    Import {
        db: usize,
        entries: Vec<(bytes::Bytes, Exported)>,
        why: engine::lazyfree::Why,
        del_events: bool,
    },
    /// Register WATCHes; answered with the versions.
    Watch { db: usize, keys: Vec<bytes::Bytes> },
    /// Drop WATCHes (no answer).
    Unwatch { db: usize, keys: Vec<bytes::Bytes> },
    /// Deliver a pub/sub message to this core's subscribers; answered with
    /// how many received it.
    Publish {
        channel: bytes::Bytes,
        message: bytes::Bytes,
        sharded: bool,
    },
    /// Keyspace notifications another core published: deliver each
    /// (channel, message) to this core's subscribers, in order (no answer).
    Notify(std::sync::Arc<Vec<(bytes::Bytes, bytes::Bytes)>>),
    /// PUBSUB CHANNELS/NUMSUB/NUMPAT/SHARDCHANNELS/SHARDNUMSUB on this core.
    PubsubQuery {
        sub: String,
        args: Vec<bytes::Bytes>,
    },
    /// Forget a parked blocking request (its client went away).
    CancelBlocked { id: u64 },
    /// A blocking command whose keys are on several cores found nothing:
    /// tell its task when one of `keys` (this core's) gets data, answering
    /// `Int(1)`, or `Int(0)` once `deadline_ms` passes (sent under the
    /// task's locks, so no write comes between its look and the probe).
    /// `counted`: this probe stands for the client in INFO's
    /// `blocked_clients` (one probe of the command is). `conn`: the
    /// client's connection on the task's core (CLIENT UNBLOCK finds it).
    Probe {
        conn: crate::io::Key,
        db: usize,
        keys: Vec<bytes::Bytes>,
        deadline_ms: Option<i64>,
        counted: bool,
    },
    /// This core's part of CLIENT LIST / INFO / CLIENT KILL / RESETSTAT.
    Admin(AdminQuery),
    /// DEBUG DIGEST: this core's part of each database's digest
    /// (`engine::Shard::digest_parts`).
    Digest,
    /// DEBUG DIGEST-VALUE of these keys of `db`.
    DigestValues { db: usize, keys: Vec<bytes::Bytes> },
    /// CLUSTER COUNTKEYSINSLOT (`slot`), or the keys of database 0 on this
    /// core (`None`): answered with a count.
    CountKeys { slot: Option<u16> },
    /// CLUSTER GETKEYSINSLOT: up to `max` keys of `slot`, as bulk replies.
    KeysInSlot { slot: u16, max: usize },
    /// Cluster mode: another node took `slot` by a newer config; delete
    /// the keys of database 0 it still holds here, each logged as DEL.
    DropSlot { slot: u16 },
    /// Cluster mode, from the bus core to core 0: move these slots, keys
    /// and all, to these cores ([`super::respread`]; no answer).
    Respread { moves: Vec<(u16, usize)> },
    /// Give these slots up, those still this core's that can move
    /// (`engine::Shard::take_slot`), stopping once `max_keys` keys are
    /// taken: answered with [`Response::Slots`].
    TakeSlots { slots: Vec<u16>, max_keys: usize },
    /// Take these slots over (answered with [`Response::Done`]).
    PutSlots(Vec<engine::shard::SlotMove>),
    /// A replication barrier (every core locked by `tx`): start this
    /// core's image of the snapshot job now.
    SnapshotStart { tx: TxId },
    /// DEBUG RELOAD / LOADAOF: the keys read back from the files, those of
    /// this core's slots; replace the keyspace with them (emptied first
    /// when `flush`), logging nothing.
    Replace {
        entries: Vec<(usize, engine::rdb::read::Entry)>,
        flush: bool,
        /// The old keys go to the lazy free thread (`replica-lazy-flush`).
        lazy: bool,
    },
}

/// The state of a [`Request::Pipeline`] as it travels.
#[derive(Debug)]
pub struct Pipeline {
    pub tx: Option<TxId>,
    pub direct: i32,
    pub db: usize,
    pub resp3: bool,
    pub bytes: bytes::Bytes,
    pub holes: Vec<usize>,
    pub bigs: Vec<bytes::Bytes>,
    /// The commands as the requesting core parsed them, so the cores
    /// that run them do not parse them again: per command a header
    /// (its length, its argument count or [`NOT_PARSED`]) and then the
    /// arguments' spans, relative to the command's first byte.
    pub pre: Box<[(u32, u32)]>,
    pub segs: Vec<Seg>,
    pub at: usize,
    pub out: engine::Encoded,
    pub ends: Vec<u32>,
    /// The client's connection on the requesting core (its slow
    /// commands are logged there).
    pub conn: Option<crate::io::Key>,
    /// With the AOF on, a run core to core goes on without
    /// waiting for each core's write (fsync under `always`): the cores that ran a part and
    /// their log offsets after it. The next core's records depend on
    /// them, and the client's replies wait until they are effective
    /// (see `persist::aof::CoreAof::depend`).
    pub needs: Vec<(usize, u64)>,
    /// A write pipeline's part for this core while the requester holds
    /// its own keys of the pipeline reserved (`shard::holds`): run at
    /// once, or answered [`Response::Refused`] when this core is locked
    /// or holds one of the part's keys reserved itself. Never waits.
    pub reserved: bool,
    /// With the AOF on (`everysec` or `no`), a reserved part's name and
    /// the requester's snapshot epoch: each of the two cores logs its part
    /// as a part of one transaction across cores (`#X:`), so that a load
    /// keeps both or neither (the requester's part runs after this one
    /// but comes before it in the client's order, so neither core's log
    /// alone orders them). This core runs it only at the same epoch, so
    /// both parts land in the same generation of files.
    pub part: Option<(TxId, u64)>,
}

/// Node-wide questions each core answers for itself.
#[derive(Debug)]
pub enum AdminQuery {
    /// CLIENT LIST lines (optionally only these ids, or of this type).
    ClientList {
        ids: Vec<u64>,
        kind: Option<ClientType>,
    },
    /// Kill clients matching a filter; answers how many.
    ClientKill {
        filter: KillFilter,
    },
    /// Counters for INFO.
    Stats,
    /// CONFIG RESETSTAT.
    ResetStats,
    /// SLOWLOG: this core's newest entries (`Some(count)`, answered as
    /// `Response::Slow`), its length (`None`, a `Count`), or a reset.
    SlowlogGet(Option<usize>),
    SlowlogReset,
    /// CLIENT UNBLOCK, first: the key of client `id` if this core serves
    /// it (a `Count` of `ClientKey::pack`, -1 if not).
    ClientKey {
        id: u64,
    },
    /// CLIENT UNBLOCK, then: unblock the command core `core`'s connection
    /// `key` parked here (a `Count`: 1 or 0).
    Unblock {
        core: usize,
        key: crate::io::Key,
        error: bool,
    },
    /// Re-read hot settings after CONFIG SET.
    Reload,
    /// Evict this core's keys while the process is over `maxmemory`
    /// (sent without waiting by a core that has nothing to evict).
    Evict,
    /// MEMORY PURGE: return this core's free pages to the system.
    Purge,
    /// Stop serving: close listeners and connections.
    Shutdown,
    /// The offset this core's write log reached (-1 without a log): DEBUG
    /// LOADAOF waits for the AOF to be fsynced that far.
    LogOffset,
    /// CLIENT UNPAUSE: the connections CLIENT PAUSE held go on.
    Unpause,
    /// Whether this core is still busy with work that may route keys to
    /// cores, `own` of its tasks aside (the re-spread's own task; answered
    /// with [`Response::Quiet`]).
    Quiet {
        own: usize,
    },
    /// DEBUG POPULATE: this core's share of `<prefix>:0` to
    /// `<prefix>:<count-1>` in `db`.
    Populate {
        db: usize,
        count: u64,
        prefix: bytes::Bytes,
        size: usize,
    },
}

/// CLIENT KILL filters.
#[derive(Debug, Default, Clone)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub skipme_id: Option<u64>,
    pub kind: Option<ClientType>,
    /// The client that asks: killed, it closes once its reply is out.
    pub caller: u64,
}

/// One command's INFO commandstats counts: calls, nanoseconds (of the
/// calls timed, one in [`STAT_TIMED_EVERY`], scaled by it), calls refused
/// before they ran (`rejected_calls`) and calls that answered an error
/// (`failed_calls`).
#[derive(Debug, Default, Clone, Copy)]
pub struct CmdCount {
    pub calls: u64,
    pub nsec: u64,
    pub rejected: u64,
    pub failed: u64,
}

/// A core times one command in this many for INFO commandstats: a clock
/// read per command would cost more than a GET. (Nanoseconds: most
/// commands take less than a microsecond, which Redis's per-call
/// microseconds average out and a sample's would not.)
pub const STAT_TIMED_EVERY: u64 = 16;

/// Per-core counters reported by INFO.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    pub connected_clients: u64,
    pub blocked_clients: u64,
    /// Of those, the ones with a timeout (`clients_in_timeout_table`).
    pub timeout_clients: u64,
    pub pubsub_clients: u64,
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    /// Bytes of client input the parser examined, and moved within
    /// connections' buffers (INFO `slotd_input_bytes_parsed`/`_moved`):
    /// they stay a small multiple of `net_input_bytes` however long a
    /// pipeline is.
    pub input_bytes_parsed: u64,
    pub input_bytes_moved: u64,
    /// Connections this core handed to another core their commands kept
    /// going to (INFO `slotd_connections_moved`).
    pub connections_moved: u64,
    /// Write pipelines over two cores this core fanned out with its keys
    /// reserved, and those the other core refused (INFO
    /// `slotd_pipelines_reserved`, `slotd_pipelines_refused`).
    pub pipelines_reserved: u64,
    pub pipelines_refused: u64,
    pub net_output_bytes: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    /// Bytes of this core's connection buffers.
    pub clients_memory: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub dirty: u64,
    pub pubsub_channels: u64,
    pub pubsub_patterns: u64,
    /// Per database: keys, keys with TTL, and their mean remaining TTL in
    /// ms as this core's expiry cycle estimates it (INFO's `avg_ttl`).
    pub keyspace: Vec<(u64, u64, i64)>,
    /// Tracking: clients of this core with tracking on, and this core's
    /// keys, items and prefixes (`engine::tracking::Tracking::totals`).
    pub tracking_clients: u64,
    pub tracking: (u64, u64, u64),
    pub cmdstats: Vec<(&'static str, CmdCount)>,
    /// Error replies, and the count of each code (INFO errorstats).
    pub total_error_replies: u64,
    pub errorstats: Vec<(Box<str>, u64)>,
    /// Commands a second, and client input and output bytes a second, of
    /// the last 1.6 s (Redis's instantaneous metrics).
    pub inst_ops: u64,
    pub inst_input: u64,
    pub inst_output: u64,
}

/// A core's answer.
#[derive(Debug)]
pub enum Response {
    Replies(Vec<Reply>),
    /// Replies already encoded for the client, and where each segment's
    /// replies end in them.
    /// `needs`: as for `Request::Pipeline`.
    Encoded {
        out: engine::Encoded,
        ends: Vec<u32>,
        needs: Vec<(usize, u64)>,
    },
    /// EXEC aborted by a WATCHed key that changed.
    WatchFailed,
    /// The lock is taken; `paused`: this core's writers are paused for a
    /// manual failover (a transaction that would write must not).
    Granted {
        paused: bool,
    },
    Entries(Vec<(bytes::Bytes, Exported)>),
    Versions(Vec<u64>),
    Count(i64),
    Lines(String),
    Stats(Box<CoreStats>),
    /// Digests: per database (`None`: no key) or per key asked.
    Digests(Vec<Option<engine::digest::Digest>>),
    /// MIGRATE's I/O thread is done: the client's reply, and the keys the
    /// target acknowledged.
    Migrated {
        reply: Reply,
        moved: Vec<bytes::Bytes>,
    },
    Done,
    /// A reserved pipeline part ([`Pipeline::reserved`]) that did not
    /// run.
    Refused,
    /// A transaction that did not run, and the client's reply (ASK or
    /// TRYAGAIN for keys of a slot being moved).
    Aborted(Reply),
    /// [`AdminQuery::Quiet`]: `busy` (some task, lock, deferred request
    /// or held message), `held` (a snapshot, a load: busy for long), and
    /// the requests pushed to this core and taken by it so far.
    Quiet {
        busy: bool,
        held: bool,
        pushed: u64,
        taken: u64,
    },
    /// [`Request::TakeSlots`]: the slots given up.
    Slots(Vec<engine::shard::SlotMove>),
    Slow(Vec<engine::slowlog::Entry>),
    /// The answer to a request of a transaction that adds its form to the
    /// replication stream (`Request::Lock`'s flag): what serving it
    /// logged (the cores write it to their AOF only), for the coordinator
    /// to put in the form in the order of its requests.
    Logged(Box<Response>, Vec<u8>),
    /// From the script thread: run this command of the script (under the
    /// task's locks) and hand the reply back.
    ScriptCall {
        db: usize,
        args: engine::OwnedArgs,
    },
    /// From the script thread: the script's reply.
    ScriptDone(Reply, bool),
}

impl Response {
    /// The answer inside a [`Response::Logged`] (any other as it is), with
    /// what was logged appended to `form`.
    pub fn unlog(self, form: &mut Vec<u8>) -> Response {
        match self {
            Response::Logged(r, bytes) => {
                form.extend_from_slice(&bytes);
                *r
            }
            r => r,
        }
    }
}

/// A message in a core's inbox.
#[derive(Debug)]
pub enum Msg {
    /// `req` from core `from`; the answer goes back tagged with `id`.
    /// `client`: the client on whose behalf (0: none), for tracking's
    /// NOLOOP.
    Req {
        from: usize,
        id: u64,
        client: u64,
        req: Request,
    },
    /// Client-side caching's deliveries (no answer).
    Track(Track),
    /// The answer to this core's request `id`.
    Resp { id: u64, resp: Response },
    /// An accepted, admitted connection for this core to serve (already
    /// counted in `Shared::clients` and `Shared::core_clients`); no answer.
    /// `master`: the replica link's end of the replication stream, with the
    /// master's address (CLIENT LIST's `addr`).
    Adopt {
        fd: i32,
        master: Option<(String, u64)>,
    },
    /// A connection moving here from the core that served it, whose
    /// commands kept coming to this core (already counted here in
    /// `Shared::core_clients`); no answer.
    Moved(Box<crate::io::Moved>),
    /// Look at the node's shared state again (a snapshot started, its
    /// writer took this core's records, its outcome is in); no answer.
    Wake,
    /// The bus core published a new slot map: take it (`Bus::map`).
    SlotMap,
    /// MONITOR lines of commands another core ran, for this core's
    /// monitors (`relay`: lines of this core's task, for every core's, as
    /// if its commands had made them); no answer.
    Monitor { lines: bytes::Bytes, relay: bool },
    /// A slow command another core ran for this core's connection `conn`:
    /// log it here, with the client's address and name; no answer.
    Slow {
        conn: crate::io::Key,
        entry: Box<engine::slowlog::Entry>,
    },
}

/// Client-side caching's messages to the core serving a client.
#[derive(Debug)]
pub enum Track {
    /// Invalidations for tracking clients of this core, from the core
    /// owning the keys.
    Invalidate(Vec<engine::tracking::Inval>),
    /// For client `to` of this core, the redirection target of client
    /// `from` (served by `from_core`): the invalidation's value (RESP).
    Redirected {
        to: u64,
        from: u64,
        from_core: usize,
        value: Vec<u8>,
    },
    /// The redirection target of client `id` of this core is gone.
    Broken { id: u64 },
}

/// Whether this kernel's io_uring has FUTEX_WAIT (Linux 6.7+).
fn futex_wait_supported() -> bool {
    let Ok(ring) = io_uring::IoUring::new(2) else {
        return false;
    };
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(io_uring::opcode::FutexWait::CODE)
}

thread_local! {
    /// On a shard core's thread: the cores its sends have yet to wake
    /// (see [`Mesh::batch_wakes`]); `None` on other threads.
    static PENDING_WAKES: std::cell::RefCell<Option<Vec<usize>>> =
        const { std::cell::RefCell::new(None) };
}

/// Adds core `core`'s log offset `at` to a pipeline's `needs` (or a
/// connection's earlier ones): one offset per core, the highest, which
/// covers the lower ones.
pub fn add_need(needs: &mut Vec<(usize, u64)>, core: usize, at: u64) {
    match needs.iter_mut().find(|n| n.0 == core) {
        Some(n) => n.1 = n.1.max(at),
        None => needs.push((core, at)),
    }
}

/// Whether `msg` counts in [`Inbox::reqs`]: a request, but a re-spread's
/// own question.
pub fn counted(msg: &Msg) -> bool {
    matches!(msg, Msg::Req { req, .. } if !matches!(req, Request::Admin(AdminQuery::Quiet { .. })))
}

/// One core's mailbox.
pub struct Inbox {
    queue: SegQueue<Msg>,
    /// Requests pushed so far, [`AdminQuery::Quiet`] aside (counted before
    /// the push; the owner counts what it takes: `mesh::respread`).
    reqs: AtomicU64,
    /// True while the owner sleeps (or is about to) in io_uring_enter.
    sleeping: AtomicBool,
    /// True while the owner wants [`Mesh::post`]ed messages to wake it
    /// too (see [`Mesh::want_posts`]).
    want_posts: AtomicBool,
    /// True while the owner waits for a batch of completions (bounded by
    /// its batch wait): requests of one command then wait with them
    /// rather than wake it (see [`Mesh::batch_sleep`]).
    batching: AtomicBool,
    /// Written to wake the owner when there is no futex wait.
    eventfd: i32,
    /// The owner's futex word: 0 while it may sleep, 1 once woken.
    futex: AtomicU32,
}

/// All cores' mailboxes, shared by every core.
pub struct Mesh {
    inboxes: Vec<Inbox>,
    /// Which core owns each slot.
    pub slots: super::slots::SlotTable,
    /// The cores wait on futexes (io_uring has FUTEX_WAIT).
    futex: bool,
    /// Per core: its channel and pattern subscriptions, kept by the core
    /// (keyspace notifications go only to cores that have some).
    pub subscriptions: Vec<std::sync::atomic::AtomicUsize>,
}

impl Mesh {
    /// Mailboxes for `cores` cores, each with its eventfd.
    pub fn new(cores: usize) -> std::io::Result<Mesh> {
        let mut inboxes = Vec::with_capacity(cores);
        for _ in 0..cores {
            // SAFETY: plain syscall; the fd is owned by the mesh for the
            // life of the process.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            inboxes.push(Inbox {
                queue: SegQueue::new(),
                reqs: AtomicU64::new(0),
                sleeping: AtomicBool::new(false),
                want_posts: AtomicBool::new(false),
                batching: AtomicBool::new(false),
                eventfd: fd,
                futex: AtomicU32::new(0),
            });
        }
        Ok(Mesh {
            inboxes,
            slots: super::slots::SlotTable::new(cores),
            futex: futex_wait_supported(),
            subscriptions: (0..cores)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
        })
    }

    /// Whether cores wait on their futex word (else on their eventfd).
    pub fn futex(&self) -> bool {
        self.futex
    }

    /// The futex word core `core` waits on.
    pub fn futex_word(&self, core: usize) -> &AtomicU32 {
        &self.inboxes[core].futex
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }

    /// Requests pushed to core `core` so far ([`counted`] ones).
    pub fn requests_to(&self, core: usize) -> u64 {
        self.inboxes[core].reqs.load(Ordering::Relaxed)
    }

    /// The eventfd core `core` listens on.
    pub fn eventfd(&self, core: usize) -> i32 {
        self.inboxes[core].eventfd
    }

    /// Queues `msg` for core `to` and wakes it if it sleeps: at once, or,
    /// on a shard core's thread ([`Mesh::batch_wakes`]), at the end of the
    /// sender's turn ([`Mesh::flush_wakes`]).
    pub fn send(&self, to: usize, msg: Msg) {
        let inbox = &self.inboxes[to];
        if counted(&msg) {
            inbox.reqs.fetch_add(1, Ordering::Relaxed);
        }
        // A lone command with nothing locked: a longer pipeline or one
        // under the cores' locks goes on at once.
        let lazy = matches!(
            &msg,
            Msg::Req {
                req: Request::Pipeline(p),
                ..
            } if p.tx.is_none() && p.segs.len() == 1 && p.segs[0].cmds == 1
        );
        inbox.queue.push(msg);
        if lazy && inbox.batching.load(Ordering::SeqCst) {
            return;
        }
        self.wake_soon(to);
    }

    /// `core` is about to wait for a batch of completions, which
    /// ends within its batch wait (200 µs) even if none comes: requests of
    /// one command sent meanwhile do not wake it, they are taken with the
    /// batch (a core whose clients send one request at a time batches
    /// their receives to spare wake-ups; the requests other cores' clients
    /// make of it wait the same way). Measured against waking it once as
    /// many requests as the batch have come: that woke the cores of 2
    /// shards on one CPU more often and cost 9.1-9.6 µs per SET at -P 1
    /// against 7.6-8.5. Set before `prepare_sleep`, cleared by
    /// [`Mesh::woke`].
    pub fn batch_sleep(&self, core: usize) {
        self.inboxes[core].batching.store(true, Ordering::SeqCst);
    }

    /// Messages waiting in `core`'s inbox.
    pub fn waiting(&self, core: usize) -> usize {
        self.inboxes[core].queue.len()
    }

    /// Makes this thread's sends wake their targets only at
    /// [`Mesh::flush_wakes`]: a shard core calls it once, and flushes
    /// before each `io_uring_enter`. So a turn that sends many messages
    /// to a core pays one wake-up at most, and the woken core, when it
    /// shares this one's CPU, does not preempt the turn after the first
    /// message.
    pub fn batch_wakes(&self) {
        PENDING_WAKES.with(|p| *p.borrow_mut() = Some(Vec::new()));
    }

    /// Wakes the cores this thread's sends left to wake.
    pub fn flush_wakes(&self) {
        PENDING_WAKES.with(|p| {
            if let Some(v) = &mut *p.borrow_mut() {
                for to in v.drain(..) {
                    self.wake(to);
                }
            }
        });
    }

    /// Wakes `to` now, or notes it for [`Mesh::flush_wakes`].
    fn wake_soon(&self, to: usize) {
        let deferred = PENDING_WAKES.with(|p| match &mut *p.borrow_mut() {
            Some(v) => {
                if !v.contains(&to) {
                    v.push(to);
                }
                true
            }
            None => false,
        });
        if !deferred {
            self.wake(to);
        }
    }

    /// Queues `msg` for core `to` without waking it, unless it asked for
    /// that ([`Mesh::want_posts`]): for answers it needs only once it
    /// wakes for something else (a reply already sent on the client's
    /// socket: the client's next request wakes its core).
    pub fn post(&self, to: usize, msg: Msg) {
        let inbox = &self.inboxes[to];
        if counted(&msg) {
            inbox.reqs.fetch_add(1, Ordering::Relaxed);
        }
        inbox.queue.push(msg);
        std::sync::atomic::fence(Ordering::SeqCst);
        if inbox.want_posts.load(Ordering::SeqCst) {
            self.wake_soon(to);
        }
    }

    /// Whether [`Mesh::post`]ed messages wake `core` (set before the core
    /// marks itself asleep, so a post either is seen by `prepare_sleep`
    /// or sees both flags).
    pub fn want_posts(&self, core: usize, on: bool) {
        self.inboxes[core].want_posts.store(on, Ordering::SeqCst);
    }

    /// Wakes core `to` if it sleeps.
    fn wake(&self, to: usize) {
        let inbox = &self.inboxes[to];
        if inbox.sleeping.swap(false, Ordering::SeqCst) {
            if self.futex {
                inbox.futex.store(1, Ordering::SeqCst);
                // SAFETY: FUTEX_WAKE on a word the mesh owns for the life
                // of the process; it only reads the address.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        inbox.futex.as_ptr(),
                        libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                        1,
                    );
                }
                return;
            }
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd. A
            // failure (counter overflow) still leaves the core awake.
            unsafe {
                libc::write(inbox.eventfd, &one as *const u64 as *const libc::c_void, 8);
            }
        }
    }

    /// Takes the next message for `core`. An empty inbox is seen with
    /// plain loads (a pop would fence); a message missed by a stale look
    /// is found by `prepare_sleep` before the core sleeps.
    pub fn recv(&self, core: usize) -> Option<Msg> {
        let queue = &self.inboxes[core].queue;
        if queue.is_empty() {
            return None;
        }
        queue.pop()
    }

    /// Marks `core` as about to sleep; returns false if messages arrived
    /// meanwhile (then it must not sleep).
    pub fn prepare_sleep(&self, core: usize) -> bool {
        let inbox = &self.inboxes[core];
        inbox.sleeping.store(true, Ordering::SeqCst);
        if !inbox.queue.is_empty() {
            inbox.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks `core` awake. No barrier: the flag only spares senders the
    /// eventfd write, and a sender that still sees it set wakes the core
    /// once more, which is harmless.
    pub fn woke(&self, core: usize) {
        self.inboxes[core].sleeping.store(false, Ordering::Relaxed);
        self.inboxes[core].batching.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Msg {
        pipeline_of(1)
    }

    fn pipeline_of(cmds: u32) -> Msg {
        Msg::Req {
            from: 0,
            id: 1,
            client: 0,
            req: Request::Pipeline(Box::new(Pipeline {
                tx: None,
                direct: -1,
                db: 0,
                resp3: false,
                bytes: bytes::Bytes::new(),
                holes: Vec::new(),
                bigs: Vec::new(),
                pre: Box::new([]),
                segs: vec![Seg {
                    core: 1,
                    start: 0,
                    end: 0,
                    cmds,
                    pre: 0,
                }],
                at: 0,
                out: engine::Encoded::default(),
                ends: Vec::new(),
                conn: None,
                needs: Vec::new(),
                reserved: false,
                part: None,
            })),
        }
    }

    fn asleep(mesh: &Mesh, core: usize) -> bool {
        mesh.inboxes[core].sleeping.load(Ordering::SeqCst)
    }

    #[test]
    fn a_lone_command_waits_with_a_batching_core_anything_else_wakes_it() {
        let mesh = Mesh::new(2).unwrap();
        mesh.batch_sleep(1);
        assert!(mesh.prepare_sleep(1));
        mesh.send(1, pipeline());
        mesh.send(1, pipeline());
        assert!(asleep(&mesh, 1), "a pipeline request woke a batching core");
        assert_eq!(mesh.waiting(1), 2);
        mesh.send(1, Msg::Wake);
        assert!(!asleep(&mesh, 1), "a wake-up did not wake it");
        while mesh.recv(1).is_some() {}
        // A pipeline of several commands does not wait.
        mesh.woke(1);
        mesh.batch_sleep(1);
        assert!(mesh.prepare_sleep(1));
        mesh.send(1, pipeline_of(2));
        assert!(!asleep(&mesh, 1), "a longer pipeline waited");
        while mesh.recv(1).is_some() {}
        // Waking clears the batch wait: a core that sleeps for any
        // completion is woken by a pipeline request.
        mesh.woke(1);
        assert!(mesh.prepare_sleep(1));
        mesh.send(1, pipeline());
        assert!(!asleep(&mesh, 1), "a core not batching slept on");
    }
}
