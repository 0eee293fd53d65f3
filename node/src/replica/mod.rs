//! A replica's link to its master (REPLICAOF, `replicaof`). API:
//! [`Replication`] (`set_master`, `unset_master`, `status`, `master_of`).
//!
//! One thread per link (`replica-link`, unpinned, sleeping in `poll(2)`)
//! connects to the master and runs `repl::Replica`, the protocol as a
//! state machine, over a plain socket: the handshake, PSYNC, the RDB of a
//! full resynchronization (written to a temporary file in `dir`, then
//! renamed to `dbfilename`, as Redis's disk load does), ACKs and
//! `repl-timeout`. The thread touches no data. What the master sends
//! reaches the keyspace through one connection on core 0, the master
//! client (CLIENT LIST flag `M`): the thread holds the other end of a
//! socket pair and writes the stream's commands into it, so they run
//! exactly as a client's pipeline does, in order, with the cores' usual
//! machinery for keys on several cores and MULTI/EXEC. A full
//! resynchronization's load travels the same way, as one internal command
//! only the master client may send (`LOAD_COMMAND`): everything received
//! before it is applied first, and everything after it lands on the
//! loaded data. The replies the core writes back are read and dropped.
//!
//! The offset acknowledged to the master is the offset of the commands
//! handed to the master client, which applies them moments later.

mod master;
mod stream;

pub use master::{Note, Rdb, SyncJob, View, NOMASTERLINK};
use stream::Proxied;
pub use stream::Stream;

use crate::mesh::{Mesh, Msg, Response};
use crate::shared::Shared;
use repl::{Action, Replica, Resume};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The command, sent only on the master client, that replaces the keyspace
/// with the RDB file named by its argument.
pub const LOAD_COMMAND: &[u8] = b"slotd-replica-load";

/// The core that serves the master client.
const MASTER_CORE: usize = 0;

/// Stop reading from the master while this much of the stream waits for
/// the master client.
const FEED_MAX: usize = 16 << 20;

/// Where the link stands, as Redis's `repl_state` (ROLE's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Sync,
    Connected,
}

impl LinkState {
    /// ROLE's name for it.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// What INFO replication and ROLE show.
#[derive(Debug, Clone)]
pub struct Status {
    /// The master followed (`None`: this node is a master).
    pub master: Option<(String, u16)>,
    pub state: LinkState,
    /// Unix ms of the last bytes from the master (0: no link).
    pub last_io_ms: i64,
    /// Unix ms the link went down (0: it never was up).
    pub down_since_ms: i64,
    /// A transfer's size (-1 for a diskless one), bytes read, last read.
    pub transfer_size: i64,
    pub transfer_read: i64,
    pub transfer_last_io_ms: i64,
    /// The master's offset of the last byte received, and applied
    /// (`slave_read_repl_offset`, `slave_repl_offset`); -1 before a sync.
    pub read_offset: i64,
    pub offset: i64,
    /// The link's master client is up (ROLE's offset is -1 otherwise).
    pub has_master_client: bool,
    /// This node's replication ID, the previous one and the offset up to
    /// which that one is valid, and `master_repl_offset`.
    pub replid: String,
    pub replid2: String,
    pub second_offset: i64,
    pub repl_offset: i64,
    /// The master thread's view (INFO lines, sync counts, offset), once
    /// replicas have come.
    pub master_view: Option<View>,
}

const NO_ID: &str = "0000000000000000000000000000000000000000";

/// A replication ID: 40 random hex digits.
pub(crate) fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// A snapshot's request to hold the stream still (see
/// [`crate::persist::StreamHold`]), shared by the node and its links.
#[derive(Default)]
struct Hold {
    /// Looked at by the link thread each turn.
    asked: AtomicBool,
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Default)]
struct HoldState {
    /// A holder has it (or waits for the answer).
    taken: bool,
    asked: bool,
    /// The link's answer: where the data stands (`Some(None)`: it could
    /// not say).
    answer: Option<Option<Resume>>,
}

/// How long a snapshot waits for the link to hold still, and the link
/// for the snapshot to let it go.
const HOLD_WAIT: Duration = Duration::from_secs(1);
const HOLD_MAX: Duration = Duration::from_secs(3);

struct Link {
    host: String,
    port: u16,
    stop: Arc<AtomicBool>,
    /// Told to stop, the thread first waits until the master client ran
    /// everything it was handed (a shutdown's final save).
    drain: Arc<AtomicBool>,
    /// Set by REPLICAOF NO ONE before it takes the offset the link got
    /// to: nothing more of the stream goes to the master client.
    freeze: Arc<AtomicBool>,
    /// Set by CLIENT KILL of the master client: the link drops its
    /// connection and reconnects ([`Replication::reset_link`]).
    reset: Arc<AtomicBool>,
    thread: JoinHandle<Option<Resume>>,
}

/// The node's replication role, and the link when it is a replica.
pub struct Replication {
    shared: Arc<Shared>,
    mesh: Arc<Mesh>,
    link: Mutex<Option<Link>>,
    /// Where the next link may resume (Redis's cached master).
    cached: Mutex<Option<Resume>>,
    status: Arc<Mutex<Status>>,
    /// The master side: the cores' chunks, the notes for the master
    /// thread (started by the first REPLCONF/SYNC), and its INFO lines.
    stream: Arc<Stream>,
    notes: Arc<Mutex<Vec<Note>>>,
    master_info: Arc<Mutex<View>>,
    master_started: AtomicBool,
    /// The snapshot job (and its file) of each replica's full
    /// resynchronization, until its socket is handed over.
    jobs: Mutex<Vec<(u64, SyncJob)>>,
    /// The node is shutting down: no new link. The master the link
    /// ended for it followed, in case the shutdown fails.
    ending: AtomicBool,
    ended: Mutex<Option<(String, u16)>>,
    hold: Arc<Hold>,
    /// A promotion waiting for the master client to run what the link had
    /// handed it ([`Replication::unset_master`]), and whether one does.
    promotion: Mutex<Option<Promotion>>,
    promoting: AtomicBool,
    /// RDB loads handed to master clients of feeds numbered up to this
    /// one and not started yet are dropped: a promotion froze their link,
    /// or another link replaced it ([`Replication::start_load`]).
    dropped_loads: AtomicU64,
    /// RDB loads master clients run ([`Replication::start_load`]).
    loading: AtomicU64,
}

/// A promotion under way: the node stays a read-only replica until its
/// master client has run every command the link handed it (the offset it
/// took as its old history's end counts them), then becomes a master and
/// answers the REPLICAOF NO ONE that wait ([`Replication::finish_promotion`]).
struct Promotion {
    /// The feed's number and its bytes handed over.
    fed: (u64, u64),
    /// Requests to answer (core, request id) once it is done.
    waiters: Vec<(usize, u64)>,
    /// An RDB load was running at the freeze: the data will be the old
    /// master's new RDB, so the node starts a history of its own without
    /// a secondary ID.
    fresh: bool,
}

impl Replication {
    /// A master with a fresh replication ID.
    pub fn new(shared: Arc<Shared>, mesh: Arc<Mesh>) -> std::io::Result<Replication> {
        Ok(Replication {
            stream: Arc::new(Stream::new()?),
            notes: Arc::new(Mutex::new(Vec::new())),
            master_info: Arc::new(Mutex::new(View::default())),
            master_started: AtomicBool::new(false),
            jobs: Mutex::new(Vec::new()),
            ending: AtomicBool::new(false),
            ended: Mutex::new(None),
            hold: Arc::new(Hold::default()),
            promotion: Mutex::new(None),
            promoting: AtomicBool::new(false),
            dropped_loads: AtomicU64::new(0),
            loading: AtomicU64::new(0),
            shared,
            mesh,
            link: Mutex::new(None),
            cached: Mutex::new(None),
            status: Arc::new(Mutex::new(Status {
                master: None,
                state: LinkState::Connect,
                last_io_ms: 0,
                down_since_ms: 0,
                transfer_size: 0,
                transfer_read: 0,
                transfer_last_io_ms: 0,
                read_offset: -1,
                offset: -1,
                has_master_client: false,
                replid: random_id(),
                replid2: NO_ID.into(),
                second_offset: -1,
                repl_offset: 0,
                master_view: None,
            })),
        })
    }

    /// The cores' write streams.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The master part of INFO replication (`connected_slaves` to
    /// `repl_backlog_histlen`), once replicas have come.
    fn master_info(&self) -> Option<View> {
        if !self.master_started.load(Ordering::SeqCst) {
            return None;
        }
        self.master_info.lock().ok().map(|i| i.clone())
    }

    /// Tells the master thread, starting it (and the cores' stream) first
    /// if no replica came before.
    pub fn note(&self, note: Note) {
        self.start_master(self.shared.replica.load(Ordering::SeqCst));
        if let Ok(mut n) = self.notes.lock() {
            n.push(note);
        }
        self.stream.wake();
    }

    /// Starts the master thread, once: at the first replica, or at a
    /// promotion (from then on every write is counted in the offset and
    /// kept in the backlog, so the old master's other replicas can
    /// continue from it). A master's cores push their writes; a replica's
    /// link hands on its master's stream (`proxy`).
    fn start_master(&self, proxy: bool) {
        if !self.master_started.swap(true, Ordering::SeqCst) {
            if proxy {
                self.stream.set_proxying(true);
            } else {
                self.stream.set_active(true);
            }
            let history = self.history();
            let cfg = self.master_config();
            let t = master::MasterThread::new(
                self.shared.clone(),
                self.stream.clone(),
                self.mesh.clone(),
                self.notes.clone(),
                self.master_info.clone(),
                history,
                cfg,
                proxy,
            );
            if let Err(e) = std::thread::Builder::new()
                .name("repl-master".into())
                .spawn(move || t.run())
            {
                crate::log::warning(format_args!("Can't start the replication thread: {e}"));
            }
        }
    }

    /// The replication history the status shows (what a master thread
    /// started now continues).
    fn history(&self) -> master::History {
        let s = self.status();
        master::History {
            replid: s.replid,
            offset: s.repl_offset,
            replid2: (s.replid2 != NO_ID).then_some((s.replid2, s.second_offset)),
        }
    }

    /// Whether the master thread runs (it holds the replicas' sockets).
    pub fn has_replicas_thread(&self) -> bool {
        self.master_started.load(Ordering::SeqCst)
    }

    /// Keeps the snapshot job of client `conn`'s full resynchronization.
    pub fn keep_job(&self, conn: u64, job: SyncJob) {
        if let Ok(mut j) = self.jobs.lock() {
            j.push((conn, job));
        }
    }

    /// The job kept for `conn`, if any.
    pub fn take_job(&self, conn: u64) -> Option<SyncJob> {
        let mut j = self.jobs.lock().ok()?;
        let at = j.iter().position(|(c, _)| *c == conn)?;
        Some(j.remove(at).1)
    }

    /// The master settings from the configuration.
    fn master_config(&self) -> repl::master::MasterConfig {
        let mut cfg = repl::master::MasterConfig::default();
        if let Ok(c) = self.shared.config.lock() {
            cfg.backlog_size = c.int("repl-backlog-size").max(1) as usize;
            cfg.ping_period_ms = c.int("repl-ping-replica-period").max(1) as u64 * 1000;
            cfg.timeout_ms = c.int("repl-timeout").max(1) as u64 * 1000;
        }
        cfg
    }

    /// A copy of what INFO and ROLE show.
    pub fn status(&self) -> Status {
        let mut s = match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        };
        s.master_view = self.master_info();
        s
    }

    /// The master followed, if any.
    pub fn master_of(&self) -> Option<(String, u16)> {
        self.link
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|l| (l.host.clone(), l.port)))
    }

    /// Follows `host:port` from now on (Redis's `replicationSetMaster`):
    /// any previous link ends, its resume point is kept for the next
    /// PSYNC. Returns false when a thread could not be started.
    pub fn set_master(&self, host: &str, port: u16) -> bool {
        if self.ending.load(Ordering::SeqCst) {
            return false;
        }
        // (The old link ends first: it may wait for core 0, which may wait
        // for this lock. Then held throughout: a promotion on another core
        // waits.)
        self.stop_link();
        let Ok(mut promotion) = self.promotion.lock() else {
            return false;
        };
        // A promotion still waiting for the master client ends here: the
        // node stays a replica, and its REPLICAOF NO ONE is answered.
        if let Some(p) = promotion.take() {
            self.promoting.store(false, Ordering::SeqCst);
            self.answer_promoted(p.waiters);
        }
        // (Cancelled, the node was still a replica: its cached history is
        // the promotion's.)
        let was_master = !self.shared.replica.swap(true, Ordering::SeqCst);
        crate::log::set_replica(true);
        self.shared.master_link_up.store(false, Ordering::SeqCst);
        if let Ok(mut s) = self.status.lock() {
            s.master = Some((host.to_string(), port));
            s.state = LinkState::Connect;
            s.last_io_ms = 0;
            s.has_master_client = false;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let freeze = Arc::new(AtomicBool::new(false));
        let reset = Arc::new(AtomicBool::new(false));
        let ctx = LinkCtx {
            host: host.to_string(),
            port,
            shared: self.shared.clone(),
            mesh: self.mesh.clone(),
            status: self.status.clone(),
            stop: stop.clone(),
            drain: drain.clone(),
            freeze: freeze.clone(),
            reset: reset.clone(),
            hold: self.hold.clone(),
            stream: self.stream.clone(),
            proxy_on: false,
            handed: -1,
            // A master's own history is newer than what was cached when it
            // became one.
            resume: {
                let cached = self.cached.lock().ok().and_then(|mut c| c.take());
                let own = if was_master { self.own_history() } else { None };
                own.or(cached)
            },
        };
        if was_master && self.master_started.load(Ordering::SeqCst) {
            self.note(Note::Mode { history: None });
        }
        let thread = std::thread::Builder::new()
            .name("replica-link".into())
            .spawn(move || ctx.run());
        match thread {
            Ok(thread) => {
                if let Ok(mut l) = self.link.lock() {
                    *l = Some(Link {
                        host: host.to_string(),
                        port,
                        stop,
                        drain,
                        freeze,
                        reset,
                        thread,
                    });
                }
                true
            }
            Err(e) => {
                crate::log::warning(format_args!("Can't start the replica link thread: {e}"));
                false
            }
        }
    }

    /// Becomes a master again, keeping the data (Redis's
    /// `replicationUnsetMaster`): the link ends and the replication ID
    /// shifts, the master's kept as the secondary one. Redis drops what
    /// its master client had not run; here the offset taken as the old
    /// history's end counts every command the link handed over, so the
    /// node stays a read-only replica until they have run
    /// ([`Replication::finish_promotion`]; [`Replication::promoting`]
    /// meanwhile).
    pub fn unset_master(&self) {
        {
            // (Held throughout: two promotions at once, from two cores,
            // would shift the ID twice or leave one waiting for nothing.)
            let Ok(mut promotion) = self.promotion.lock() else {
                return;
            };
            if promotion.is_some() || self.status().master.is_none() {
                return;
            }
            let (fed, fresh) = self.unlink();
            match fed {
                Some(fed) => {
                    *promotion = Some(Promotion {
                        fed,
                        waiters: Vec::new(),
                        fresh,
                    });
                    self.promoting.store(true, Ordering::SeqCst);
                }
                None => self.become_master(fresh),
            }
        }
        // Core 0 may have run the last command before `promoting` showed.
        self.finish_promotion();
    }

    /// The first part of [`Replication::unset_master`]: the link ends and
    /// the ID shifts. Returns the feed's number and the bytes it handed
    /// the master client when the master client has not run them all (and
    /// has not closed), and whether an RDB load was running.
    fn unlink(&self) -> (Option<(u64, u64)>, bool) {
        // The link thread is told to stop but not waited for (it may sit
        // in a poll for a while, and this runs on core 0, which serves the
        // master client it still hands the last bytes to): the history to
        // continue is where the stream got, read from the status.
        let link = self.link.lock().ok().and_then(|mut l| l.take());
        if let Some(link) = link {
            // Before the offset is read: the link hands the master client
            // no command past it (`LinkCtx::follow`).
            link.freeze.store(true, Ordering::SeqCst);
            link.stop.store(true, Ordering::SeqCst);
            let thread = link.thread;
            let _ = std::thread::Builder::new()
                .name("replica-link-end".into())
                .spawn(move || drop(thread.join()));
        }
        // (A command handed on is counted under the status's lock, which
        // this read takes first.)
        let status = self.status();
        let fed = self.shared.master_fed.load(Ordering::SeqCst);
        // A load not started is dropped; one running completes (checked
        // after the drop: see `start_load`).
        self.drop_loads();
        let fresh = self.loading.load(Ordering::SeqCst) > 0;
        let read = status.read_offset;
        let cached = if read >= 0 {
            Some(Resume {
                replid: status.replid,
                offset: read.max(status.offset),
                db: 0,
            })
        } else {
            self.cached.lock().ok().and_then(|c| c.clone())
        };
        let mut line = None;
        if let Ok(mut s) = self.status.lock() {
            s.master = None;
            s.state = LinkState::Connect;
            s.has_master_client = false;
            if let Some(r) = cached {
                s.replid2 = r.replid;
                s.second_offset = r.offset + 1;
                s.repl_offset = r.offset.max(0);
            } else {
                s.replid2 = s.replid.clone();
                s.second_offset = s.repl_offset + 1;
            }
            s.replid = random_id();
            s.read_offset = -1;
            s.offset = -1;
            // A later REPLICAOF offers this node's own history (Redis's
            // `replicationCacheMasterUsingMyself`): only a master that
            // knows the new ID (none yet) continues it.
            if let Ok(mut c) = self.cached.lock() {
                *c = Some(Resume {
                    replid: s.replid.clone(),
                    offset: s.repl_offset,
                    db: 0,
                });
            }
            line = Some(format!(
                "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
                s.replid2, s.second_offset, s.replid
            ));
        }
        if let Some(line) = line {
            crate::log::notice(format_args!("{line}"));
        }
        self.shared.master_link_up.store(false, Ordering::SeqCst);
        // The old history's end counts every command handed to the master
        // client: the node takes no write before they have run.
        let fed = (fed >> 40, fed & ((1 << 40) - 1));
        // (And no write before a load still running has replaced the
        // data.)
        (
            (fresh || fed.0 != 0 && !self.ran(fed)).then_some(fed),
            fresh,
        )
    }

    /// Drops the RDB loads not started yet of the current feed and older
    /// ones.
    fn drop_loads(&self) {
        let feed = self.shared.master_fed.load(Ordering::SeqCst) >> 40;
        self.dropped_loads.fetch_max(feed, Ordering::SeqCst);
    }

    /// Whether the master client of feed `feed` may run the RDB load it
    /// was handed: not once a promotion froze its link or another link
    /// replaced it, the node keeping its data and the history that goes
    /// with it (Redis aborts such a load). While it may, the load counts
    /// as running until [`Replication::end_load`].
    pub fn start_load(&self, feed: u64) -> bool {
        // (Counted first: a promotion drops loads, then reads the count.)
        self.loading.fetch_add(1, Ordering::SeqCst);
        if feed <= self.dropped_loads.load(Ordering::SeqCst) {
            self.end_load();
            return false;
        }
        true
    }

    /// An RDB load [`Replication::start_load`] counted ended; a promotion
    /// may wait for it.
    pub fn end_load(&self) {
        self.loading.fetch_sub(1, Ordering::SeqCst);
        self.finish_promotion();
    }

    /// Whether the master client of feed `number` has run its first
    /// `bytes` bytes, or has closed (what it had not run will not run).
    fn ran(&self, (number, bytes): (u64, u64)) -> bool {
        let v = self.shared.master_applied.load(Ordering::SeqCst);
        (v >> 40 == number && v & ((1 << 40) - 1) >= bytes)
            || self.shared.master_closed.load(Ordering::SeqCst) >= number
    }

    /// Whether a promotion waits for the master client.
    pub fn promoting(&self) -> bool {
        self.promoting.load(Ordering::SeqCst)
    }

    /// Ends a promotion waiting for the master client once it has run
    /// what it was handed, or has closed (`Shared::master_closed`: what it
    /// had not run will not run). Called by core 0 as the master client
    /// applies commands and when it closes, and by every core's cron. A
    /// master client always ends: the link, stopped, hands over its last
    /// bytes and closes its end.
    pub fn finish_promotion(&self) {
        if !self.promoting() {
            return;
        }
        let Ok(mut p) = self.promotion.lock() else {
            return;
        };
        // (A load still running, of this feed or an older one, would
        // replace the new master's writes.)
        if !p.as_ref().is_some_and(|p| self.ran(p.fed)) || self.loading.load(Ordering::SeqCst) > 0 {
            return;
        }
        let Some(done) = p.take() else {
            return;
        };
        self.promoting.store(false, Ordering::SeqCst);
        // (Under the lock: a REPLICAOF to another master waits for it.)
        self.become_master(done.fresh);
        drop(p);
        self.answer_promoted(done.waiters);
    }

    /// Answers request `id` of core `core` once no promotion waits (at
    /// once if none does).
    pub fn when_promoted(&self, core: usize, id: u64) {
        if let Ok(mut p) = self.promotion.lock() {
            if let Some(p) = p.as_mut() {
                p.waiters.push((core, id));
                return;
            }
        }
        self.answer_promoted(vec![(core, id)]);
    }

    fn answer_promoted(&self, waiters: Vec<(usize, u64)>) {
        for (core, id) in waiters {
            self.mesh.send(
                core,
                Msg::Resp {
                    id,
                    resp: Response::Done,
                },
            );
        }
    }

    /// The end of a promotion: writes are counted from before the first
    /// one is accepted. `fresh`: the data is not the old history's (an RDB
    /// load ran meanwhile), so the node keeps no secondary ID (Redis's
    /// `clearReplicationId2`).
    fn become_master(&self, fresh: bool) {
        if fresh {
            if let Ok(mut s) = self.status.lock() {
                s.replid2 = NO_ID.into();
                s.second_offset = -1;
            }
            crate::log::notice(format_args!(
                "An RDB load ran during the promotion: no secondary replication ID"
            ));
        }
        if self.master_started.load(Ordering::SeqCst) {
            // The master thread turns the stream on a moment later; writes
            // this node takes meanwhile are kept for it.
            self.stream.set_starting(true);
            let history = Some(self.history());
            if let Ok(mut n) = self.notes.lock() {
                n.push(Note::Mode { history });
            }
            self.stream.wake();
        } else {
            self.start_master(false);
        }
        self.shared.replica.store(false, Ordering::SeqCst);
        crate::log::set_replica(false);
    }

    /// A master turning replica offers its own history to its new master
    /// (Redis's `replicationCacheMasterUsingMyself`): a replica promoted
    /// in its place continues it, as after a manual failover.
    fn own_history(&self) -> Option<Resume> {
        if !self.master_started.load(Ordering::SeqCst) {
            return None;
        }
        let offset = crate::bus::ReplicationView::final_offset(self)?;
        Some(Resume {
            replid: self.status().replid,
            offset,
            db: 0,
        })
    }

    /// Before the final save of a shutdown: no new link from now on, and
    /// the link in place ends once the master client has run everything
    /// it was handed. Returns where the data then stands in the master's
    /// stream, for the file to record (`None` when not a replica, or when
    /// the master client could not finish in time).
    pub fn end_for_shutdown(&self) -> Option<Resume> {
        self.ending.store(true, Ordering::SeqCst);
        let link = self.link.lock().ok().and_then(|mut l| l.take())?;
        if let Ok(mut e) = self.ended.lock() {
            *e = Some((link.host.clone(), link.port));
        }
        link.drain.store(true, Ordering::SeqCst);
        link.stop.store(true, Ordering::SeqCst);
        let at = link.thread.join().ok().flatten();
        if let Ok(mut c) = self.cached.lock() {
            *c = at.clone();
        }
        at
    }

    /// The final save failed and the node goes on: it follows its master
    /// again, continuing where it stopped.
    pub fn shutdown_failed(&self) {
        self.ending.store(false, Ordering::SeqCst);
        let ended = self.ended.lock().ok().and_then(|mut e| e.take());
        if let Some((host, port)) = ended {
            self.set_master(&host, port);
        }
    }

    /// The replication position the RDB file loaded at start recorded
    /// (Redis's `loadDataFromDisk`): a replica offers it to its master's
    /// PSYNC; a master keeps it as its secondary ID, so the replicas of
    /// the master it followed can continue from it.
    pub fn restore(&self, from: Resume, replica: bool) {
        if replica {
            if let Ok(mut s) = self.status.lock() {
                s.replid = from.replid.clone();
                s.repl_offset = from.offset;
            }
            if let Ok(mut c) = self.cached.lock() {
                *c = Some(from);
            }
            return;
        }
        if let Ok(mut s) = self.status.lock() {
            s.replid2 = from.replid;
            s.second_offset = from.offset + 1;
            s.repl_offset = from.offset;
        }
        // Writes are counted from the loaded offset on.
        self.start_master(false);
    }

    /// This node's replication offset, and how stale its data is (cluster
    /// mode's election reads both).
    fn position_now(&self) -> (i64, u64) {
        let s = self.status();
        let now = crate::shared::now_ms();
        if s.master.is_none() {
            let offset = s.master_view.map_or(s.repl_offset, |v| v.offset);
            return (offset, 0);
        }
        let cached = || {
            self.cached
                .lock()
                .ok()
                .and_then(|c| c.as_ref().map(|r| r.offset))
        };
        let offset = if s.offset >= 0 {
            s.offset
        } else {
            cached().unwrap_or(0)
        };
        let since = if s.state == LinkState::Connected {
            s.last_io_ms
        } else {
            s.down_since_ms
        };
        // Never connected: too old to fail over (Redis's repl_down_since 0).
        let age = if since > 0 {
            now.saturating_sub(since) as u64
        } else {
            u64::MAX / 4
        };
        (offset, age)
    }

    /// CLIENT KILL of the master client: as Redis frees its master client
    /// and reconnects to continue partially, the link drops its
    /// connection to the master (within 100 ms) and reconnects (within a
    /// second), its PSYNC resuming where the stream was read. The master
    /// client itself lives on and runs what it was handed: killed, it
    /// would take commands the offset counts with it. True when there was
    /// a link carrying the stream to drop (Redis has a master client only
    /// then: not while it connects or syncs, nor once a promotion froze
    /// the link).
    pub fn reset_link(&self) -> bool {
        let Ok(link) = self.link.lock() else {
            return false;
        };
        match link.as_ref() {
            Some(l)
                if !l.freeze.load(Ordering::SeqCst)
                    && !l.stop.load(Ordering::SeqCst)
                    && self.shared.master_link_up.load(Ordering::SeqCst) =>
            {
                l.reset.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Ends the link thread, if any, keeping where it got to.
    fn stop_link(&self) {
        let link = self.link.lock().ok().and_then(|mut l| l.take());
        if let Some(link) = link {
            link.stop.store(true, Ordering::SeqCst);
            if let Ok(Some(resume)) = link.thread.join() {
                if let Ok(mut c) = self.cached.lock() {
                    *c = Some(resume);
                }
            }
        }
    }
}

/// What a link's thread works with.
struct LinkCtx {
    host: String,
    port: u16,
    shared: Arc<Shared>,
    mesh: Arc<Mesh>,
    status: Arc<Mutex<Status>>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    /// See [`Link::freeze`], [`Link::reset`].
    freeze: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
    hold: Arc<Hold>,
    /// Where the master's stream is handed on to this node's replicas,
    /// and whether it is (the master thread asked, and was told where the
    /// stream stands).
    stream: Arc<Stream>,
    proxy_on: bool,
    /// The offset after the last command handed to the master client.
    handed: i64,
    resume: Option<Resume>,
}

/// Milliseconds on a monotonic clock, for the state machine.
fn mono_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

impl LinkCtx {
    /// Updates the status, unless this link was told to stop: the node has
    /// moved on (another master, or none) and the status is no longer its.
    fn status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            if !self.stop.load(Ordering::SeqCst) {
                f(&mut s);
            }
        }
    }

    /// `repl-diskless-load` is not `disabled`: the master's RDB goes to
    /// memory, not to disk. slotd parses an RDB whole before it replaces
    /// the data, so a failed load keeps the old data whichever mode
    /// (`swapdb`'s promise, which covers `on-empty-db`'s).
    fn diskless_load(&self) -> bool {
        self.shared.config.lock().is_ok_and(|c| {
            c.text("repl-diskless-load")
                .is_some_and(|m| m != "disabled")
        })
    }

    fn config(&self) -> (repl::Config, std::path::PathBuf, String) {
        let mut cfg = repl::Config::new(self.shared.port);
        let mut dir = std::path::PathBuf::from(".");
        let mut dbfilename = "dump.rdb".to_string();
        if let Ok(c) = self.shared.config.lock() {
            let text = |n: &str| c.text(n).filter(|t| !t.is_empty());
            cfg.masterauth = text("masterauth").map(String::into_bytes);
            cfg.masteruser = text("masteruser").map(String::into_bytes);
            cfg.announce_ip = text("replica-announce-ip").map(String::into_bytes);
            let port = c.int("replica-announce-port");
            if port > 0 {
                cfg.listening_port = port as u16;
            }
            cfg.repl_timeout_ms = c.int("repl-timeout").max(1) as u64 * 1000;
            dir = std::path::PathBuf::from(c.dir());
            if let Some(f) = text("dbfilename") {
                dbfilename = f;
            }
        }
        cfg.resume = self.resume.clone();
        (cfg, dir, dbfilename)
    }

    /// The thread: connect, follow, reconnect every second after a
    /// failure, until told to stop. Returns where a PSYNC could resume.
    fn run(mut self) -> Option<Resume> {
        let start = Instant::now();
        let (cfg, _, _) = self.config();
        let timeout = Duration::from_millis(cfg.repl_timeout_ms);
        let mut replica = Replica::new(cfg);
        let mut feed: Option<Feed> = None;
        while !self.stop.load(Ordering::SeqCst) {
            crate::log::notice(format_args!(
                "Connecting to MASTER {}:{}",
                self.host, self.port
            ));
            self.status(|s| s.state = LinkState::Connecting);
            // (A kill of the master client while no link was up has
            // nothing to drop.)
            self.reset.store(false, Ordering::SeqCst);
            crate::log::notice(format_args!("MASTER <-> REPLICA sync started"));
            match connect(&self.host, self.port, timeout) {
                Ok(sock) => {
                    crate::log::notice(format_args!(
                        "Non blocking connect for SYNC fired the event."
                    ));
                    self.follow(&mut replica, sock, &mut feed, start);
                    replica.closed();
                    self.master_client_lost(&mut replica, &mut feed);
                    if replica.take_aborted_multi() {
                        // The next PSYNC resumes at the MULTI: the
                        // transaction the master client was building goes.
                        if let Some(f) = feed.as_mut() {
                            f.push(&repl::encode(&[b"DISCARD"]), replica.offset());
                        }
                    }
                    // As Redis's `repl_down_since`: set when a link that
                    // carried the stream goes down, not at each failed
                    // attempt after (an election reads the age).
                    let was_up = !self.stop.load(Ordering::SeqCst)
                        && self.shared.master_link_up.swap(false, Ordering::SeqCst);
                    self.status(|s| {
                        s.state = LinkState::Connect;
                        s.last_io_ms = 0;
                        if was_up {
                            s.down_since_ms = crate::shared::now_ms();
                        }
                    });
                }
                Err(e) => {
                    crate::log::warning(format_args!(
                        "Error condition on socket for SYNC: {}",
                        crate::log::io_error_text(&e)
                    ));
                    self.status(|s| s.state = LinkState::Connect);
                }
            }
            // `replicationCron` tries again within a second.
            for _ in 0..10 {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(f) = feed.as_mut() {
                    f.pump();
                }
                self.master_client_lost(&mut replica, &mut feed);
                if self.hold.asked.load(Ordering::SeqCst) {
                    self.held(&replica, &mut feed, true);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.resume = replica.resume_point();
        if feed.as_ref().is_some_and(|f| f.eof) && !self.freeze.load(Ordering::SeqCst) {
            // (See `master_client_lost`: the data matches no offset.)
            self.resume = None;
            return None;
        }
        if let Some(mut f) = feed.take() {
            if self.drain.load(Ordering::SeqCst) {
                return self.resume.take().filter(|_| f.drain(&self.shared));
            }
            // Frozen by REPLICAOF NO ONE, which took the offset of all it
            // was handed as where this node's history ends: all of it
            // goes to the master client (core 0 reads on once that
            // command is done), or the data would lack writes the offset
            // counts.
            f.finish(if self.freeze.load(Ordering::SeqCst) {
                10_000
            } else {
                50
            });
        }
        self.resume
    }

    /// One link: runs the state machine until it closes or the thread is
    /// told to stop.
    fn follow(
        &mut self,
        replica: &mut Replica,
        mut sock: TcpStream,
        feed: &mut Option<Feed>,
        start: Instant,
    ) {
        let (_, dir, dbfilename) = self.config();
        // The RDB's file, and whether it is in memory (`repl-diskless-load`).
        let mut rdb = TempRdb(None);
        // A full resynchronization's replication ID, until its RDB loads.
        let mut new_replid = None;
        let mut actions = replica.connected(mono_ms(start));
        self.status(|s| {
            s.state = LinkState::Handshake;
            s.last_io_ms = crate::shared::now_ms();
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_tick = mono_ms(start) + 100;
        loop {
            for a in actions.drain(..) {
                match a {
                    Action::Send(bytes) => {
                        if let Err(e) = sock.write_all(&bytes) {
                            crate::log::warning(format_args!(
                                "I/O error writing to MASTER: {}",
                                crate::log::io_error_text(&e)
                            ));
                            return;
                        }
                    }
                    Action::Close => return,
                    Action::Error(msg) => crate::log::warning(format_args!("{msg}")),
                    Action::Notice(msg) => crate::log::notice(format_args!("{msg}")),
                    Action::FullSync { replid, offset } => {
                        if let Some(id) = &replid {
                            crate::log::notice(format_args!(
                                "Full resync from master: {id}:{offset}"
                            ));
                        }
                        let name = format!(
                            "temp-{}.{}.rdb",
                            crate::shared::now_ms() / 1000,
                            std::process::id()
                        );
                        let file = match self.diskless_load() {
                            true => memfd(&name).map(|(f, p)| (f, p, true)),
                            false => {
                                let path = dir.join(name);
                                std::fs::File::create(&path).map(|f| (f, path, false))
                            }
                        };
                        match file {
                            Ok(f) => rdb.set(f),
                            Err(e) => {
                                crate::log::warning(format_args!(
                                    "Opening the temp file needed for MASTER <-> REPLICA synchronization: {}",
                                    crate::log::io_error_text(&e)
                                ));
                                return;
                            }
                        }
                        self.status(|s| {
                            s.state = LinkState::Sync;
                            s.transfer_size = -1;
                            s.transfer_read = 0;
                            s.transfer_last_io_ms = crate::shared::now_ms();
                        });
                        // The master's ID is ours once its RDB has loaded.
                        new_replid = replid;
                    }
                    Action::RdbStart { len } => {
                        let to = match rdb.0.as_ref().is_some_and(|r| r.2) {
                            true => "to parser",
                            false => "to disk",
                        };
                        match len {
                            Some(n) => crate::log::notice(format_args!(
                                "MASTER <-> REPLICA sync: receiving {n} bytes from master {to}"
                            )),
                            None => crate::log::notice(format_args!(
                                "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF {to}"
                            )),
                        }
                        self.status(|s| s.transfer_size = len.map_or(-1, |n| n as i64));
                    }
                    Action::RdbChunk(bytes) => {
                        if let Some((f, _, _)) = rdb.0.as_mut() {
                            if let Err(e) = f.write_all(&bytes) {
                                crate::log::warning(format_args!(
                                    "Write error saving DB on disk: {}",
                                    crate::log::io_error_text(&e)
                                ));
                                return;
                            }
                        }
                        self.status(|s| {
                            s.transfer_read += bytes.len() as i64;
                            s.transfer_last_io_ms = crate::shared::now_ms();
                        });
                    }
                    Action::RdbDone => {
                        let Some((file, tmp, in_memory)) = rdb.0.take() else {
                            return;
                        };
                        let target = match in_memory {
                            true => tmp.clone(),
                            false => dir.join(&dbfilename),
                        };
                        let done = match in_memory {
                            true => Ok(()),
                            false => file.sync_all().and_then(|_| std::fs::rename(&tmp, &target)),
                        };
                        if let Err(e) = done {
                            crate::log::warning(format_args!(
                                "Failed trying to rename the temp DB into {} in MASTER <-> REPLICA synchronization: {}",
                                dbfilename,
                                crate::log::io_error_text(&e)
                            ));
                            let _ = std::fs::remove_file(&tmp);
                            return;
                        }
                        // A promotion froze the link: the node keeps its
                        // data. (Checked and pushed under the status's
                        // lock, which a promotion takes before it drops
                        // the loads not started.)
                        let Ok(status) = self.status.lock() else {
                            return;
                        };
                        if self.freeze.load(Ordering::SeqCst) {
                            return;
                        }
                        let Some(f) = self.feed(feed) else {
                            return;
                        };
                        let path = target.display().to_string();
                        f.push(
                            &repl::encode(&[LOAD_COMMAND, path.as_bytes()]),
                            replica.offset(),
                        );
                        drop(status);
                        // The stream goes on in the database the RDB says
                        // (a replica proxying its master's stream writes
                        // it), else in 0 until it selects one (Redis's new
                        // master client).
                        let db = stream_db(&target);
                        replica.set_db(db);
                        let db = db.to_string();
                        f.push(&repl::encode(&[b"SELECT", db.as_bytes()]), replica.offset());
                        // In memory, the file lives until the load ran.
                        if in_memory {
                            f.keep_until_applied(file);
                        }
                        // The stream goes on only over the RDB loaded, as
                        // Redis loads it before reading on (sending the
                        // master a newline a second meanwhile).
                        match f.wait_load(&self.shared, &self.stop, &mut sock) {
                            // (Stopped meanwhile: the status is no longer
                            // this link's.)
                            Load::Done if self.stop.load(Ordering::SeqCst) => return,
                            Load::Done => {}
                            Load::Stopped => return,
                            Load::Failed => {
                                replica.load_failed();
                                return;
                            }
                        }
                        if let Some(id) = new_replid.take() {
                            self.status(|s| {
                                s.replid = id;
                                // A new history (Redis's
                                // `clearReplicationId2`).
                                s.replid2 = NO_ID.into();
                                s.second_offset = -1;
                            });
                        }
                        self.link_up(replica, false);
                        if self.proxy_on {
                            self.stream.proxy(Proxied::At {
                                replid: replica.resume_point().map(|r| r.replid),
                                offset: replica.offset(),
                                full: true,
                            });
                        }
                    }
                    Action::PartialSync { replid, offset } => {
                        crate::log::notice(format_args!(
                            "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization."
                        ));
                        // A new master client starts in database 0; the
                        // master's stream goes on in the one it selected.
                        let fresh = feed.is_none();
                        let Some(f) = self.feed(feed) else {
                            return;
                        };
                        if fresh && replica.db() != 0 {
                            let db = replica.db().to_string();
                            f.push(&repl::encode(&[b"SELECT", db.as_bytes()]), offset);
                        }
                        // (After a link dropped by CLIENT KILL the master
                        // client may still be running what the last one
                        // handed it: the offset follows it.)
                        let behind = f.marks.iter().any(|&(_, o)| o < offset);
                        self.status(|s| {
                            if s.replid != replid {
                                // The master's ID changed (it was
                                // promoted): Redis keeps the old one as
                                // its secondary ID, for its own replicas.
                                s.replid2 = std::mem::replace(&mut s.replid, replid.clone());
                                s.second_offset = offset + 1;
                            }
                            if !behind {
                                s.offset = offset;
                            }
                        });
                        crate::log::notice(format_args!(
                            "Successful partial resynchronization with master."
                        ));
                        self.link_up(replica, !behind);
                        if self.proxy_on {
                            self.stream.proxy(Proxied::At {
                                replid: Some(replid),
                                offset,
                                full: false,
                            });
                        }
                    }
                    Action::Command { argv, offset_after } => {
                        // Handed on and counted in one step, under the
                        // status's lock: REPLICAOF NO ONE freezes the link
                        // and then reads the offset as where this node's
                        // history ends, so nothing past it is applied (the
                        // rest of a read used to be). A link told to stop
                        // otherwise (another master, shutdown) hands on the
                        // whole read, which its resume point counts.
                        let Ok(mut s) = self.status.lock() else {
                            return;
                        };
                        // `stop` before `freeze`: REPLICAOF NO ONE sets
                        // `freeze` first, so a link it stopped is seen
                        // frozen here.
                        let stopped = self.stop.load(Ordering::SeqCst);
                        if self.freeze.load(Ordering::SeqCst) {
                            continue;
                        }
                        // The load command is the link's own, never the
                        // master's: one in the stream does nothing (Redis
                        // would answer it with an unknown command error).
                        let own = argv
                            .first()
                            .is_some_and(|a| a.eq_ignore_ascii_case(LOAD_COMMAND));
                        if own {
                            crate::log::warning(format_args!(
                                "Ignored a '{}' command in the master's stream",
                                String::from_utf8_lossy(LOAD_COMMAND)
                            ));
                        }
                        if let Some(f) = feed.as_mut() {
                            // (Ignored, its offset still counts as run
                            // once what came before has.)
                            let bytes = match own {
                                false => {
                                    let args: Vec<&[u8]> =
                                        argv.iter().map(|a| a.as_slice()).collect();
                                    repl::encode(&args)
                                }
                                true => Vec::new(),
                            };
                            f.push(&bytes, offset_after);
                        }
                        self.handed = offset_after;
                        if !stopped {
                            s.read_offset = offset_after;
                        }
                    }
                    Action::Proxy { bytes, offset } => {
                        // Frozen, only what the master client got goes on.
                        let frozen = self.freeze.load(Ordering::SeqCst) && offset > self.handed;
                        if self.proxy_on && !frozen {
                            self.stream.proxy(Proxied::Bytes(bytes));
                        }
                    }
                }
            }
            // The master thread asks for the stream (a replica of this
            // node came) or stops (this node became a master): it learns
            // where the stream stands now, or at the next sync.
            let want = self.stream.proxying();
            if want != self.proxy_on {
                self.proxy_on = want;
                if want && replica.is_streaming() {
                    self.stream.proxy(Proxied::At {
                        replid: replica.resume_point().map(|r| r.replid),
                        offset: replica.offset(),
                        full: false,
                    });
                }
            }
            self.note_applied(feed);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            if self.reset.swap(false, Ordering::SeqCst) {
                crate::log::warning(format_args!("Connection with master lost."));
                crate::log::notice(format_args!("Caching the disconnected master state."));
                return;
            }
            if self.hold.asked.load(Ordering::SeqCst) {
                self.held(replica, feed, false);
            }
            if let Some(f) = feed.as_mut() {
                f.pump();
                if f.eof {
                    // The master client closed (`master_client_lost`).
                    return;
                }
            }
            let backlogged = feed.as_ref().is_some_and(|f| f.pending() > FEED_MAX);
            let mut fds = [
                libc::pollfd {
                    fd: sock.as_raw_fd(),
                    events: if backlogged { 0 } else { libc::POLLIN },
                    revents: 0,
                },
                libc::pollfd {
                    fd: feed.as_ref().map_or(-1, |f| f.fd()),
                    events: libc::POLLIN
                        | if feed.as_ref().is_some_and(|f| f.pending() > 0) {
                            libc::POLLOUT
                        } else {
                            0
                        },
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd entries (a negative fd is skipped).
            // While commands run on the master client, look often at how
            // far it got (the offset an election compares).
            let wait = if feed.as_ref().is_some_and(|f| !f.marks.is_empty()) {
                5
            } else {
                100
            };
            unsafe { libc::poll(fds.as_mut_ptr(), 2, wait) };
            self.note_applied(feed);
            let now = mono_ms(start);
            if fds[0].revents != 0 {
                match sock.read(&mut buf) {
                    Ok(0) => {
                        crate::log::warning(format_args!("Connection with master lost."));
                        return;
                    }
                    Ok(n) => {
                        self.status(|s| s.last_io_ms = crate::shared::now_ms());
                        actions = replica.received(now, &buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        crate::log::warning(format_args!(
                            "Connection with master lost: {}",
                            crate::log::io_error_text(&e)
                        ));
                        return;
                    }
                }
            }
            if now >= next_tick {
                next_tick = now + 100;
                actions.extend(replica.tick(now));
            }
        }
    }

    /// The link carries the stream now; `applied`: the master client has
    /// nothing left to run (a partial resynchronization), else the offset
    /// follows it.
    fn link_up(&self, replica: &Replica, applied: bool) {
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        self.shared.master_link_up.store(true, Ordering::SeqCst);
        let off = replica.offset();
        self.status(|s| {
            s.state = LinkState::Connected;
            s.has_master_client = true;
            s.read_offset = off;
            if applied {
                s.offset = off;
                s.repl_offset = off;
            }
        });
    }

    /// A snapshot asked to hold the stream still: once the master client
    /// has run everything it was handed, answers where the data stands and
    /// hands it nothing more until the snapshot lets go (at most
    /// `HOLD_MAX`; the master's bytes wait in the socket meanwhile).
    /// `down`: asked between links (the retry loop), where the data
    /// stands still at the cached master's point, as Redis's cached
    /// master records it; within a link that does not stream yet, no
    /// answer: the stream, or the retry loop, gives it.
    fn held(&self, replica: &Replica, feed: &mut Option<Feed>, down: bool) {
        let up = self.shared.master_link_up.load(Ordering::SeqCst);
        if !up && !down {
            return;
        }
        let drained = feed.as_mut().map_or(down, |f| f.drain(&self.shared));
        let at = drained.then(|| replica.resume_point()).flatten();
        if let Some(r) = &at {
            self.status(|s| {
                s.offset = r.offset;
                s.repl_offset = r.offset;
            });
        }
        let Ok(mut st) = self.hold.state.lock() else {
            return;
        };
        if !st.asked {
            return;
        }
        st.answer = Some(at);
        self.hold.changed.notify_all();
        let deadline = Instant::now() + HOLD_MAX;
        while st.asked && !self.stop.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = match self
                .hold
                .changed
                .wait_timeout(st, left.min(Duration::from_millis(100)))
            {
                Ok((st, _)) => st,
                Err(_) => return,
            };
        }
    }

    /// `slave_repl_offset` (and the node's `master_repl_offset`): the
    /// offset after the last command the master client completed.
    fn note_applied(&self, feed: &mut Option<Feed>) {
        let applied = feed.as_mut().and_then(|f| f.applied(&self.shared));
        // (Frozen, the status is the promoted node's: its offsets are the
        // new history's.)
        if let Some(off) = applied.filter(|_| !self.freeze.load(Ordering::SeqCst)) {
            self.status(|s| {
                s.offset = off;
                s.repl_offset = off;
            });
        }
    }

    /// The master client closed while the link was not stopped and the
    /// node not shutting down (not a kill, which only resets the link: an
    /// output buffer limit, a send error): what it was handed and had not
    /// run is lost, so the data matches no offset of the stream. The next
    /// link gets a new master client and resynchronizes in full; until
    /// then the node claims no offset of the old history (a new
    /// replication ID, as Redis's `changeReplicationId` after a failed
    /// load), so a promotion meanwhile continues nothing.
    fn master_client_lost(&mut self, replica: &mut Replica, feed: &mut Option<Feed>) {
        let ending =
            self.stop.load(Ordering::SeqCst) || self.shared.shutdown.load(Ordering::SeqCst);
        if ending || !feed.as_ref().is_some_and(|f| f.eof) {
            return;
        }
        *feed = None;
        crate::log::warning(format_args!(
            "The master client closed with commands it had not run: a full resynchronization follows"
        ));
        replica.load_failed();
        self.status(|s| {
            s.replid = random_id();
            s.replid2 = NO_ID.into();
            s.second_offset = -1;
            s.read_offset = -1;
            s.offset = -1;
            s.has_master_client = false;
        });
    }

    /// The master client's feed, made (and its connection handed to core
    /// 0) on first use.
    fn feed<'a>(&self, feed: &'a mut Option<Feed>) -> Option<&'a mut Feed> {
        if feed.is_none() {
            let addr = format!("{}:{}", self.host, self.port);
            match Feed::new(&self.shared, &self.mesh, addr) {
                Ok(f) => *feed = Some(f),
                Err(e) => {
                    crate::log::warning(format_args!(
                        "Can't create the master client: {}",
                        crate::log::io_error_text(&e)
                    ));
                    return None;
                }
            }
        }
        feed.as_mut()
    }
}

/// The file a full resynchronization's RDB is received into, whether it is
/// in memory; on disk, removed if the link ends before the RDB is complete
/// (Redis's `replicationAbortSyncTransfer`).
struct TempRdb(Option<(std::fs::File, std::path::PathBuf, bool)>);

impl TempRdb {
    fn set(&mut self, file: (std::fs::File, std::path::PathBuf, bool)) {
        self.remove();
        self.0 = Some(file);
    }

    fn remove(&mut self) {
        if let Some((_, path, false)) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for TempRdb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// An anonymous file in memory (`memfd_create`) named `name`, with the
/// path that opens it again (`/proc/self/fd/N`) while it is open.
fn memfd(name: &str) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    let cname = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: a valid C string; the descriptor returned is owned here only.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by the file only.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    Ok((file, format!("/proc/self/fd/{fd}").into()))
}

/// The database an RDB file says its stream has selected
/// (`repl-stream-db`), or 0.
fn stream_db(path: &std::path::Path) -> usize {
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    engine::rdb::read::head_aux(&head[..n])
        .into_iter()
        .find(|(k, _)| k == b"repl-stream-db")
        .and_then(|(_, v)| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// Connects to the master within `timeout`.
fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The thread's end of the master client: what waits to be written into
/// it, and the replies read back and dropped.
struct Feed {
    sock: OwnedFd,
    out: Vec<u8>,
    sent: usize,
    sink: Vec<u8>,
    /// Names this feed's master client (`Shared::master_applied`).
    number: u64,
    /// Bytes pushed so far, and the replication offset reached at the end
    /// of each command pushed and not yet known applied.
    fed: u64,
    marks: VecDeque<(u64, i64)>,
    /// An in-memory RDB, closed once the master client ran its load (at
    /// this many bytes fed).
    kept: Option<(u64, std::fs::File)>,
    /// The master client closed its end.
    eof: bool,
    /// Where `fed` is published (`Shared::master_fed`).
    shared: Arc<Shared>,
}

/// How [`Feed::wait_load`] ended.
enum Load {
    Done,
    Failed,
    Stopped,
}

/// Feeds are numbered from 1 (0: no master client).
static NEXT_FEED: AtomicU64 = AtomicU64::new(1);

impl Feed {
    /// A socket pair; the other end becomes the master client on core 0.
    fn new(shared: &Arc<Shared>, mesh: &Mesh, addr: String) -> std::io::Result<Feed> {
        let mut fds = [0i32; 2];
        // SAFETY: plain syscall filling two descriptors we then own.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fds[0]` was just created and is owned here only.
        let sock = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        // SAFETY: fcntl and setsockopt on our own descriptor.
        unsafe {
            let fl = libc::fcntl(fds[0], libc::F_GETFL);
            libc::fcntl(fds[0], libc::F_SETFL, fl | libc::O_NONBLOCK);
            let size: libc::c_int = 4 << 20;
            libc::setsockopt(
                fds[0],
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        shared.clients.fetch_add(1, Ordering::Relaxed);
        shared.core_clients[MASTER_CORE].fetch_add(1, Ordering::Relaxed);
        let number = NEXT_FEED.fetch_add(1, Ordering::Relaxed);
        shared
            .master_fed
            .fetch_max(crate::shared::applied_pack(number, 0), Ordering::SeqCst);
        mesh.send(
            MASTER_CORE,
            Msg::Adopt {
                fd: fds[1],
                master: Some((addr, number)),
            },
        );
        Ok(Feed {
            sock,
            out: Vec::new(),
            sent: 0,
            sink: vec![0u8; 16 * 1024],
            number,
            fed: 0,
            marks: VecDeque::new(),
            kept: None,
            eof: false,
            shared: shared.clone(),
        })
    }

    fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Queues a command after which the stream is at `offset`; the link's
    /// loop writes what a read from the master brought in one go
    /// ([`Feed::pump`]), not one write per command.
    fn push(&mut self, bytes: &[u8], offset: i64) {
        self.out.extend_from_slice(bytes);
        self.fed += bytes.len() as u64;
        self.marks.push_back((self.fed, offset));
        // (A newer feed's number is higher: an old link ending late
        // does not move it back.)
        self.shared.master_fed.fetch_max(
            crate::shared::applied_pack(self.number, self.fed),
            Ordering::SeqCst,
        );
    }

    /// Keeps `file` open until the master client has run what was pushed
    /// so far.
    fn keep_until_applied(&mut self, file: std::fs::File) {
        self.kept = Some((self.fed, file));
    }

    /// The offset of the last command the master client has completed,
    /// if it completed one since the last call.
    fn applied(&mut self, shared: &Shared) -> Option<i64> {
        let v = shared.master_applied.load(Ordering::Acquire);
        if v >> 40 != self.number {
            return None;
        }
        let bytes = v & ((1 << 40) - 1);
        if self.kept.as_ref().is_some_and(|(at, _)| bytes >= *at) {
            self.kept = None;
        }
        let mut last = None;
        while let Some(&(end, offset)) = self.marks.front() {
            if end > bytes {
                break;
            }
            last = Some(offset);
            self.marks.pop_front();
        }
        last
    }

    /// Writes what the socket takes and drops the replies that came back.
    fn pump(&mut self) {
        loop {
            // SAFETY: reads into our own buffer from our own socket.
            let n = unsafe {
                libc::recv(
                    self.fd(),
                    self.sink.as_mut_ptr() as *mut libc::c_void,
                    self.sink.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                self.eof = true;
            }
            if n <= 0 {
                break;
            }
        }
        while self.sent < self.out.len() {
            let rest = &self.out[self.sent..];
            // SAFETY: writes from our own buffer to our own socket.
            let n = unsafe {
                libc::send(
                    self.fd(),
                    rest.as_ptr() as *const libc::c_void,
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n <= 0 {
                break;
            }
            self.sent += n as usize;
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > (1 << 20) {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Waits until the master client has run everything handed to it (a
    /// full resynchronization's load last), its load failed, or the link
    /// is told to stop; writes a newline to the master every second
    /// meanwhile (Redis's `replicationSendNewlineToMaster` while it
    /// loads), so its `repl-timeout` does not drop the link.
    fn wait_load(&mut self, shared: &Shared, stop: &AtomicBool, master: &mut TcpStream) -> Load {
        let mut next_newline = Instant::now() + Duration::from_secs(1);
        let number = self.number;
        let failed = || {
            shared
                .master_load_failed
                .compare_exchange(number, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        };
        loop {
            if failed() {
                return Load::Failed;
            }
            self.pump();
            // (The master client gone, a buffer limit say: its load with
            // it.)
            if self.eof {
                return Load::Failed;
            }
            self.applied(shared);
            if self.pending() == 0 && self.marks.is_empty() {
                // (A failure noted between the look above and now.)
                return if failed() { Load::Failed } else { Load::Done };
            }
            if stop.load(Ordering::SeqCst) {
                return Load::Stopped;
            }
            if Instant::now() >= next_newline {
                next_newline += Duration::from_secs(1);
                let _ = master.write_all(b"\n");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Hands the master client everything waiting and waits until it has
    /// run it all (at most 10 s): true when it has.
    fn drain(&mut self, shared: &Shared) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            self.pump();
            self.applied(shared);
            if self.pending() == 0 && self.marks.is_empty() {
                return true;
            }
            // (The master client is gone: it runs nothing more.)
            if self.eof {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Hands the master client what is still waiting, for up to `ms`
    /// milliseconds, before the pair is closed (what the socket holds is
    /// still read by core 0; REPLICAOF may run on core 0 itself, which
    /// then cannot read).
    fn finish(&mut self, ms: u32) {
        let mut shut = false;
        for _ in 0..ms {
            self.pump();
            if self.pending() == 0 && !shut {
                // End of input for the master client, which runs the rest
                // and then closes its end. Closed from here first with its
                // replies unread, the pair would reset and core 0 would
                // drop what it had not run yet.
                // SAFETY: shutdown of our own socket.
                unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) };
                shut = true;
            }
            if self.eof {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl crate::persist::StreamHold for Replication {
    fn hold(&self) -> Option<Resume> {
        if self.link.lock().map_or(true, |l| l.is_none()) {
            return None;
        }
        let h = &self.hold;
        let mut st = h.state.lock().ok()?;
        let deadline = Instant::now() + HOLD_WAIT;
        // One holder at a time (a snapshot, a replica's sync).
        while st.taken {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = h.changed.wait_timeout(st, left).ok()?.0;
        }
        st.taken = true;
        st.asked = true;
        st.answer = None;
        h.asked.store(true, Ordering::SeqCst);
        while st.answer.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = h.changed.wait_timeout(st, left).ok()?.0;
        }
        let answer = st.answer.take().flatten();
        if answer.is_none() {
            // The link did not come to it, or could not say: nothing is
            // held, and it must not hold later.
            st.asked = false;
            st.taken = false;
            h.asked.store(false, Ordering::SeqCst);
            h.changed.notify_all();
        }
        answer
    }

    fn release(&self) {
        if let Ok(mut st) = self.hold.state.lock() {
            st.asked = false;
            st.answer = None;
            st.taken = false;
        }
        self.hold.asked.store(false, Ordering::SeqCst);
        self.hold.changed.notify_all();
    }
}

impl Replication {
    /// A replica's SYNC/PSYNC on this replica: a thread holds the link
    /// still ([`crate::persist::StreamHold`]) and answers request `id` of
    /// core `core` with `Count(1)` once it is, with where the data stands
    /// in `at` (`Count(0)`: it could not). The caller releases it.
    pub fn hold_for_sync(self: &Arc<Self>, core: usize, id: u64, at: Arc<Mutex<Option<Resume>>>) {
        let me = self.clone();
        let mesh = self.mesh.clone();
        let spawned = std::thread::Builder::new()
            .name("replica-hold".into())
            .spawn(move || {
                let held = crate::persist::StreamHold::hold(&*me);
                let n = held.is_some() as i64;
                if let Ok(mut a) = at.lock() {
                    *a = held;
                }
                me.mesh.send(
                    core,
                    Msg::Resp {
                        id,
                        resp: Response::Count(n),
                    },
                );
            });
        if spawned.is_err() {
            mesh.send(
                core,
                Msg::Resp {
                    id,
                    resp: Response::Count(0),
                },
            );
        }
    }
}

impl crate::bus::ReplicationView for Replication {
    fn position(&self) -> (i64, u64) {
        self.position_now()
    }

    fn final_offset(&self) -> Option<i64> {
        if !self.master_started.load(Ordering::SeqCst) {
            return Some(self.status().repl_offset);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.note(Note::Offset { tx });
        rx.recv_timeout(std::time::Duration::from_secs(2))
            .ok()
            .flatten()
    }
}
