//! # shard: one core's state and what runs on it
//!
//! Above `mesh`. A [`Shard`] is everything a core owns except its ring:
//! the keyspace (`engine::Shard`), the connections and their output
//! queue, blocked clients, pub/sub subscribers, counters, and the
//! shard lock a multi-core transaction holds. It runs commands on the
//! keyspace ([`Shard::run_local`]), serves clients blocked on keys, and
//! answers other cores' requests ([`Shard::request`]).
//!
//! The event loop (`core`) drives it and does the I/O it asks for: a
//! connection queued in `flush` gets its output sent, one in `resume` runs
//! again, one in `closed` is freed once nothing is in flight for it.
//!
//! API: [`Shard`], [`Origin`], [`parse`]/[`first_key`] (request parsing
//! that counts the bytes examined), [`pubsub`].

mod holds;
mod memory;
pub use memory::OOM;
mod observe;
pub mod pubsub;
mod run;
mod serve;
mod snap;
mod tracking;

pub use run::{first_key, parse, Origin};

use crate::io::{Conn, Key, Slab, Wait};
use crate::mesh::{CoreStats, Effect, Executor, Mesh, Msg, Request, Rpc, TaskDone, TxId};
use crate::shared::{now_ms, Settings, Shared};
use bytes::Bytes;
use engine::Reply;
use hashbrown::HashMap;
use run::Waiter;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

/// A core's state.
/// The node-wide services every core holds a handle to.
#[derive(Clone)]
pub struct Services {
    pub persist: Arc<crate::persist::State>,
    /// Cluster mode's bus core.
    pub bus: Option<Arc<crate::mesh::Bus>>,
    pub replication: Arc<crate::replica::Replication>,
}

pub struct Shard {
    pub id: usize,
    pub cores: usize,
    pub engine: engine::Shard,
    pub shared: Arc<Shared>,
    pub settings: Settings,
    pub mesh: Arc<Mesh>,
    pub rpc: Rc<Rpc>,
    pub exec: Executor<TaskDone>,
    /// This core's chained pipelines in flight (`mesh::flows::Chain`).
    pub chains: Slab<crate::mesh::flows::Chain>,
    pub conns: Slab<Conn>,
    /// Connections with output to send this turn.
    pub flush: Vec<Key>,
    /// Connections to run again (a task finished, a lock was released).
    pub resume: Vec<Key>,
    /// Connections closed, for the event loop to free.
    pub closed: Vec<Key>,
    /// Connections that received while another core may send their
    /// replies (`Conn::direct_input`): while any does, that core's answer
    /// wakes this one (`Mesh::want_posts`).
    pub direct_inputs: u32,
    /// Pipelines' replies to send on other cores' client sockets at the
    /// end of the inbox drain, together (`Shard::flush_direct`).
    direct_due: Vec<serve::DirectSend>,
    /// The transaction holding this core's lock.
    lock: Option<TxId>,
    /// Requests taken from the inbox so far (`mesh::respread`).
    pub reqs_taken: u64,
    /// Requests that arrived while locked, in order: (from, id, the
    /// client they work for, request).
    deferred: VecDeque<(usize, u64, u64, Request)>,
    /// The queue `deferred` had before the last unlock, kept with its
    /// room: a queue grown from nothing at every unlock costs a string of
    /// reallocations, and the allocator's returning of the freed pages
    /// costs a TLB shootdown on every core.
    deferred_spare: VecDeque<(usize, u64, u64, Request)>,
    /// Connections waiting for the lock to go, or for a reserved key.
    stalled: Vec<Key>,
    /// Keys reserved by the write pipelines this core fans out.
    holds: holds::Holds,
    /// With the AOF on: connections whose next command crosses cores
    /// (not as a pipeline) and waits until their earlier pipelines' parts
    /// on other cores are effective (see [`Shard::stall_for_earlier`]).
    pub aof_stalled: Vec<Key>,
    /// Writers paused for a manual failover (`Request::PauseWrites`): a
    /// write is refused here, and a client's write waits in
    /// `paused_conns` until the pause ends.
    pub writes_paused: bool,
    pub paused_conns: Vec<Key>,
    waiters: Vec<Waiter>,
    pubsub: pubsub::PubSub,
    pub stats: CoreStats,
    /// Instantaneous commands, input and output (INFO stats).
    pub rates: [observe::Rate; 3],
    /// While a connection's pipeline runs here: when its last command
    /// ended (a [`crate::shared::ticks`] reading), the next one's start
    /// for the slow log. One reading of the clock a command instead of
    /// two, converted by a multiplication (the clock took 6.5% of the
    /// samples of SET -P 16 on 1 shard, now 5.1%); reset wherever
    /// anything else runs between commands.
    pub cmd_clock: Option<u64>,
    /// Per command: INFO commandstats' counts.
    cmdstats: HashMap<&'static str, crate::mesh::CmdCount>,
    /// Error replies by code (INFO errorstats, see [`Shard::count_error`]).
    errorstats: HashMap<Box<str>, u64>,
    /// While this core runs a part of a command split over cores other
    /// than the first: its calls count on the first part's core.
    pub uncounted: bool,
    /// Unix ms, read once per loop turn and per receive batch.
    pub now_ms: i64,
    cmd_serial: u64,
    /// Reused spans for looking one request ahead.
    pub ahead_spans: Vec<(u32, u32)>,
    pub stopping: bool,
    /// Messages taken from the inbox this cron period (sleep batching).
    pub msgs: u64,
    /// Snapshots and the save rules (`snap.rs`).
    pub persist: Arc<crate::persist::State>,
    /// The last snapshot epoch seen, and the job this core serialises for.
    snap_epoch: u64,
    snap_job: Option<Arc<crate::persist::Job>>,
    /// The transactions across cores that wrote a part here since the
    /// last look at the snapshot epoch, with the one holding the core at
    /// that look; and those of them that ran between a rewrite's start
    /// and this core's switch of files (see `snapshot_turn`).
    recent_parts: Vec<crate::mesh::TxId>,
    straddling: Vec<crate::mesh::TxId>,
    /// This core's append-only file writer, while `appendonly` is on.
    pub aof: Option<Box<crate::persist::aof::CoreAof>>,
    /// The node is loading its files: commands get -LOADING.
    pub loading: bool,
    /// In cluster mode: the bus core's mailbox, and the slot map this core
    /// routes by (`None`: standalone).
    pub bus: Option<Arc<crate::mesh::Bus>>,
    /// The replication role and the replica's link.
    pub replication: Arc<crate::replica::Replication>,
    /// Write log bytes on their way to the replication stream (held while
    /// a transaction across cores holds this core), and that
    /// transaction's part.
    pub repl_pending: Vec<u8>,
    pub repl_part: Option<repl::merge::TxnPart>,
    /// The transaction holding this core adds its command's form to the
    /// replication stream ([`Request::Lock`]'s flag).
    pub repl_form: bool,
    /// The request being served is one of that transaction's: its answer
    /// carries what it logged.
    pub capture: bool,
    /// What is written now is for the master client (`for_client`):
    /// to the AOF, not to this node's own replication stream.
    pub unstreamed: bool,
    pub cluster: Option<Arc<cluster::slotmap::SlotMap>>,
    /// Some slot of the map is migrating or importing: the owner core
    /// checks which keys exist before running a command there.
    pub cluster_moving: bool,
    /// This core's tracking clients, by id (client-side caching).
    pub tracking_conns: HashMap<u64, Key>,
    /// Where clients that others redirect invalidations to were found.
    redirect_targets: HashMap<u64, Key>,
    /// `engine.flushes` when tracking clients were last told of one.
    seen_flushes: u64,
    /// The client on whose behalf the request being served came (0: none).
    pub req_client: u64,
    /// This core's slow log (SLOWLOG merges every core's).
    pub slowlog: engine::slowlog::SlowLog,
    /// The request being served came from core `.0`'s connection `.1`
    /// (when known): a slow command of it is logged there, with the
    /// client's address and name.
    pub serving: Option<(usize, Key)>,
    /// This core's MONITOR connections, and this turn's lines for every
    /// core's (sent at the end of the turn, [`Shard::monitor_flush`]).
    pub monitors: Vec<Key>,
    pub monitor_out: Vec<u8>,
    /// Consecutive single-key commands for one other core after which a
    /// plain connection moves there (`u32::MAX`: never), and the
    /// connections this turn decided to move, for the event loop.
    pub move_after: u32,
    pub moving: Vec<Key>,
}

/// The affinity threshold: `SLOTD_MOVE_AFTER` (a test and benchmark
/// switch; 0: connections never move), else [`crate::io::MOVE_AFTER`].
fn move_after(cores: usize) -> u32 {
    let n = std::env::var("SLOTD_MOVE_AFTER")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(crate::io::MOVE_AFTER);
    if n == 0 || cores < 2 {
        u32::MAX
    } else {
        n
    }
}

impl Shard {
    /// The state of core `id` of `cores`.
    pub fn new(
        id: usize,
        cores: usize,
        shared: Arc<Shared>,
        mesh: Arc<Mesh>,
        services: Services,
    ) -> Shard {
        let Services {
            persist,
            bus,
            replication,
        } = services;
        let settings = shared.settings();
        // Random per process: dictionary hash seeds must not be guessable,
        // or chosen keys could all collide.
        let mut seed = [0u8; 8];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let _ = f.read_exact(&mut seed);
        }
        let seed = u64::from_le_bytes(seed) ^ now_ms() as u64 ^ id as u64;
        let mut engine = engine::Shard::new(settings.databases, seed);
        engine.limits = settings.encoding;
        engine.evict = settings.evict;
        engine.lazy = settings.lazyfree;
        engine.cluster_mode = bus.is_some();
        engine.script_route = bus.clone().map(|b| {
            b.set_reads_when_down(settings.cluster_reads_when_down);
            let rwd = b.clone();
            crate::mesh::script::cluster_route(move || b.map(), move || rwd.reads_when_down())
        });
        engine.notify_flags = settings.notify;
        if cores > 1 {
            // A script run on this core must not reach another's keys.
            let m = mesh.clone();
            engine.owns = Some(std::sync::Arc::new(move |slot| m.slots.core_of(slot) == id));
        }
        crate::mesh::flows::set_limits(settings.encoding);
        crate::mesh::flows::set_cluster_mode(engine.cluster_mode);
        engine::script::set_busy_threshold(settings.busy_reply_threshold_ms);
        crate::mesh::flows::set_notify(settings.notify);
        crate::mesh::flows::set_slow_all(settings.slowlog_slower_than == 0);
        Shard {
            id,
            cores,
            engine,
            settings,
            rpc: Rpc::new(mesh.clone(), id),
            mesh,
            shared,
            exec: Executor::default(),
            chains: Slab::default(),
            conns: Slab::default(),
            flush: Vec::new(),
            resume: Vec::new(),
            direct_inputs: 0,
            direct_due: Vec::new(),
            closed: Vec::new(),
            lock: None,
            deferred: VecDeque::new(),
            holds: holds::Holds::default(),
            reqs_taken: 0,
            deferred_spare: VecDeque::new(),
            stalled: Vec::new(),
            aof_stalled: Vec::new(),
            writes_paused: false,
            paused_conns: Vec::new(),
            waiters: Vec::new(),
            pubsub: pubsub::PubSub::default(),
            stats: CoreStats::default(),
            rates: Default::default(),
            cmd_clock: None,
            cmdstats: HashMap::new(),
            errorstats: HashMap::new(),
            uncounted: false,
            now_ms: now_ms(),
            cmd_serial: 0,
            ahead_spans: Vec::new(),
            stopping: false,
            msgs: 0,
            // Epoch 0 is "no job yet": a core built after another core
            // started serving (and published a snapshot) joins that job on
            // its first turn instead of leaving the writer waiting.
            snap_epoch: 0,
            persist,
            snap_job: None,
            recent_parts: Vec::new(),
            straddling: Vec::new(),
            aof: None,
            loading: true,
            cluster: None,
            cluster_moving: false,
            bus,
            replication,
            repl_pending: Vec::new(),
            repl_part: None,
            repl_form: false,
            capture: false,
            unstreamed: false,
            tracking_conns: HashMap::new(),
            redirect_targets: HashMap::new(),
            seen_flushes: 0,
            req_client: 0,
            slowlog: engine::slowlog::SlowLog::default(),
            serving: None,
            monitors: Vec::new(),
            monitor_out: Vec::new(),
            move_after: move_after(cores),
            moving: Vec::new(),
        }
        .with_slot_map()
    }

    /// Takes the bus core's latest slot map (cluster mode).
    pub fn take_slot_map(&mut self) {
        if let Some(bus) = &self.bus {
            let map = bus.map();
            self.cluster_moving = map.any_moving();
            self.cluster = Some(map);
            self.follow_master();
            self.redirect_waiters();
        }
    }

    /// Cluster mode, on core 0 once the files are loaded: replicates the
    /// master the slot map names (CLUSTER REPLICATE, or `nodes.conf` at
    /// start), or stops replicating when it names none.
    fn follow_master(&mut self) {
        if self.id != 0 || self.loading {
            return;
        }
        let Some(map) = self.cluster.as_deref() else {
            return;
        };
        let want = map
            .master
            .and_then(|m| map.nodes.get(m as usize))
            .map(|n| (n.ip.clone(), n.port));
        let have = self.replication.master_of();
        if want == have {
            return;
        }
        match want {
            Some((ip, port)) => {
                crate::log::notice(format_args!("Connecting to MASTER {ip}:{port}"));
                self.replication.set_master(&ip, port);
            }
            None => self.replication.unset_master(),
        }
    }

    fn with_slot_map(mut self) -> Shard {
        self.take_slot_map();
        self
    }

    /// Once the node has loaded its files (`persist::State::loading`
    /// cleared): inserts this core's keys and takes its AOF file.
    pub fn finish_loading(&mut self) {
        self.loading = false;
        self.follow_master();
        self.load_preloaded();
        let aof = &self.persist.aof;
        if let Some(a) = aof.take_core(self.id) {
            let at = aof.logged[self.id].load(std::sync::atomic::Ordering::Relaxed);
            self.engine.enable_log_at(at);
            self.aof = Some(Box::new(a));
        }
    }

    /// Publishes the offset this core's log has recorded, before a task
    /// starts that may send other cores what depends on those records
    /// (their dependency annotations read it: `CoreAof::deps`). The
    /// turn's `take_log` publishes it too, but a client's pipeline can
    /// write here and, in the same turn, start a command across cores
    /// (a multi-key command, a transaction, a script) whose parts
    /// elsewhere must depend on that write.
    pub fn publish_recorded(&mut self) {
        // (As `CoreAof::take` publishes it: only for records not taken
        // yet. A log turned on again restarts from 0, and an offset of
        // the old numbering must not come back.)
        if let (Some(_), Some(log)) = (self.aof.as_deref(), self.engine.write_log()) {
            if !log.is_empty() {
                let logged = &self.persist.aof.logged[self.id];
                logged.store(log.offset(), std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// Hands what the write log recorded to its consumers: the AOF writer,
    /// and, once a replica follows this node, the replication stream (as
    /// one chunk, unless a transaction across cores holds this core: its
    /// part goes as one chunk at the unlock). Called before any reply or
    /// message that may reveal those writes leaves.
    pub fn take_log(&mut self) {
        let stream = self.replication.stream();
        // (The master thread turns the stream on, then clears `starting`:
        // read in the other order, one of them shows.)
        if !stream.active() && !stream.starting() && !stream.active_ordered() {
            match (self.aof.as_deref_mut(), self.engine.write_log()) {
                (Some(a), Some(log)) => a.take(log, self.now_ms, &self.persist.aof),
                // Kept on a replica for the moment a promotion starts the
                // stream (`Shard::keep_log`), with nobody to take it (a
                // transaction's open block is dropped with its end).
                (None, Some(log)) if !log.in_multi() => log.discard(),
                _ => {}
            }
            // (What a promotion kept for a stream that went off again
            // before it started is nobody's.)
            self.repl_pending.clear();
            return;
        }
        if !stream.active() {
            // A promotion: what this node writes before its stream starts
            // goes out once it does.
            if !self.engine.log_enabled() {
                self.engine.enable_log();
            }
            self.log_to_pending(true);
            return;
        }
        if !self.engine.log_enabled() {
            self.engine.enable_log();
        }
        self.log_to_pending(true);
        if self.lock.is_none() && !self.repl_pending.is_empty() {
            let bytes = std::mem::take(&mut self.repl_pending);
            self.replication.stream().push(bytes, None);
        }
    }

    /// Once a cron tick: a replica records its writes, so that none made
    /// once it is promoted is missed before its stream starts (the master
    /// thread turns it on a moment after the promotion, `Stream::starting`,
    /// or the promotion itself before the node takes a write: a core's
    /// first write would not be recorded with its log off); what it
    /// records before goes nowhere (`take_log`).
    pub fn keep_log(&mut self) {
        if self.replication.stream().active() {
            return;
        }
        self.take_log();
        if !self.engine.log_enabled()
            && self
                .shared
                .replica
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.engine.enable_log();
        }
    }

    /// Runs `f` with this node's own writes streamed, inside a master
    /// client's work (`for_client`): the clients it serves write for
    /// themselves.
    pub fn streamed(&mut self, f: impl FnOnce(&mut Shard)) {
        if !self.unstreamed {
            return f(self);
        }
        // The master client's writes so far: to the AOF only.
        self.log_to_pending(true);
        self.unstreamed = false;
        f(self);
        self.take_log();
        self.unstreamed = true;
    }

    /// Counts a command the node answered itself, without running it on
    /// the keyspace (INFO's `total_commands_processed` and commandstats).
    pub fn counted(&mut self, name: &'static str) {
        self.stats.total_commands_processed += 1;
        self.cmdstats.entry(name).or_default().calls += 1;
    }

    /// True when the scripts run now may not write: this node is a
    /// read-only replica and they are not its master's.
    pub fn scripts_read_only(&self) -> bool {
        self.settings.replica_read_only
            && self
                .shared
                .replica
                .load(std::sync::atomic::Ordering::Relaxed)
            && !self.unstreamed
    }

    /// Runs `f`, work for client `client` (0: none). When that is the
    /// master client, what `f` writes goes to the AOF only (its link counts
    /// the master's stream and hands it on itself; commands it handed
    /// before a promotion that run after it are the old history's, not new
    /// writes of this node); what others wrote before goes to the stream
    /// first.
    pub fn for_client<R>(&mut self, client: u64, f: impl FnOnce(&mut Shard) -> R) -> R {
        let master = !self.unstreamed
            && client != 0
            && client
                == self
                    .shared
                    .master_client
                    .load(std::sync::atomic::Ordering::Relaxed);
        if !master {
            return f(self);
        }
        self.take_log();
        self.unstreamed = true;
        let r = f(self);
        self.take_log();
        self.unstreamed = false;
        r
    }

    /// A transaction across cores took this core's lock: what was written
    /// before goes first, as a chunk of its own.
    pub fn repl_part_begin(&mut self, part: repl::merge::TxnPart, form: bool) {
        if self.replication.stream().active() {
            self.take_log();
            self.repl_part = Some(part);
            self.repl_form = form;
        }
    }

    /// The transaction released this core: its part goes as one chunk.
    pub fn repl_part_end(&mut self) {
        let Some(part) = self.repl_part.take() else {
            return;
        };
        self.repl_form = false;
        self.log_to_pending(true);
        let bytes = std::mem::take(&mut self.repl_pending);
        self.replication.stream().push(bytes, Some(part));
    }

    /// Moves the write log's bytes to the AOF writer, and a copy to the
    /// replication stream's pending chunk; with `!repl` (what a command's
    /// form stands for in the stream) returns them instead.
    pub fn log_to_pending(&mut self, repl: bool) -> Vec<u8> {
        let Some(log) = self.engine.write_log() else {
            return Vec::new();
        };
        if log.is_empty() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        log.take(&mut bytes);
        // Every chunk starts with its database.
        log.reset_db();
        let offset = log.offset();
        if let Some(a) = self.aof.as_deref_mut() {
            a.append(&bytes, offset, self.now_ms, &self.persist.aof);
        }
        if !repl {
            return bytes;
        }
        if self.unstreamed {
            return Vec::new();
        }
        if self.repl_pending.is_empty() {
            self.repl_pending = bytes;
        } else {
            self.repl_pending.extend_from_slice(&bytes);
        }
        Vec::new()
    }

    /// Sends `msg` to core `to`, or holds it while it may reveal a write
    /// not yet on disk (`appendfsync always`) or not yet in the file
    /// (`everysec`, `no`).
    pub fn send_out(&mut self, to: usize, msg: Msg) {
        if self.engine.has_events() {
            self.publish_events();
        }
        if self.lock.is_none() && self.replication.stream().active() {
            self.take_log();
        }
        let Some(a) = self.aof.as_deref_mut() else {
            return self.mesh.send(to, msg);
        };
        let at = self.engine.write_log().map_or(0, |l| l.offset());
        // (While a transaction holds this core, what it sends is that
        // transaction's: see `CoreAof::durable_msgs_in`.)
        let locked = self.lock.is_some();
        let need = a.gate_msg(at, locked, &self.persist.aof);
        if let Some((to, msg)) = a.hold_msg(need, locked, to, msg) {
            self.mesh.send(to, msg);
        }
    }

    /// Connection `key` received: if another core may be sending its
    /// replies, that core's answer must wake this one (the client may
    /// have sent its next request already).
    pub fn direct_received(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.direct && !c.direct_input {
                c.direct_input = true;
                self.direct_inputs += 1;
                if self.direct_inputs == 1 {
                    self.mesh.want_posts(self.id, true);
                }
            }
        }
    }

    /// Affinity: `cmds` commands of connection `key` went to core `to`
    /// (this one resets the run).
    #[inline]
    pub fn note_target(&mut self, key: Key, to: usize, cmds: u32) {
        if let Some(c) = self.conns.get_mut(key) {
            if to == self.id {
                c.aff_run = 0;
            } else if c.aff_core == to {
                c.aff_run = c.aff_run.saturating_add(cmds);
            } else {
                c.aff_core = to;
                c.aff_run = cmds;
            }
        }
    }

    /// At a request boundary of connection `key`: whether its commands
    /// went to one other core often enough that it moves there now. When
    /// it does, it is marked moving and queued for the event loop, which
    /// stops its receive and hands it over (`Msg::Moved`). Not in a state
    /// that may travel ([`crate::io::Conn::plain`]), while a client uses
    /// tracking redirections (the target's core is remembered), nor twice
    /// in [`crate::io::MOVE_EVERY_MS`]: it stays.
    pub fn want_move(&mut self, key: Key) -> bool {
        let now = self.now_ms;
        let (me, stopping) = (self.id, self.stopping);
        let redirects = self
            .shared
            .tracking_redirects
            .load(std::sync::atomic::Ordering::Relaxed);
        // Replies held for the AOF or the replicas must leave from here.
        let held = self.aof.is_some() || self.replication.stream().active();
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if c.aff_run < self.move_after || c.aff_core == me {
            return false;
        }
        if !c.sending_done() || (held && c.pending_out() > 0) {
            // Asked again at the next request boundary.
            return false;
        }
        if stopping
            || redirects
            || !c.plain()
            || (c.moved_ms != 0 && now - c.moved_ms < crate::io::MOVE_EVERY_MS)
        {
            // Counted again from zero: this is not checked per command.
            c.aff_run = 0;
            return false;
        }
        c.moving = true;
        self.moving.push(key);
        true
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

    /// Appends `reply` to `key`'s output.
    pub fn reply(&mut self, key: Key, reply: &Reply) {
        if let Reply::Error(e) = reply {
            self.count_error(e);
        }
        self.reply_counted(key, reply);
    }

    /// [`Shard::reply`] of a reply whose error, if it is one, was counted
    /// where the command ran ([`Shard::run_local`]).
    pub fn reply_counted(&mut self, key: Key, reply: &Reply) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.mute && !matches!(reply, Reply::Push(_)) {
                return;
            }
            reply.encode_split(c.resp3, &mut c.out, &mut c.out_big);
            self.want_flush(key);
        }
    }

    /// Hands the answer of chain `id` (`mesh::flows::Chain`) to its
    /// connection, if the chain is still awaited.
    pub fn chain_done(&mut self, id: Key, resp: crate::mesh::Response) {
        let Some(chain) = self.chains.remove(id) else {
            return;
        };
        if let Some(chain) = self.reserved_done(chain, &resp) {
            self.task_done(chain.done(resp));
        }
    }

    /// Hands a finished task's replies and effects to its connection and
    /// lets the connection go on.
    pub fn task_done(&mut self, done: TaskDone) {
        let key = done.conn;
        // (Counted whether or not its client is still there.)
        for e in &done.effects {
            if let Effect::Ran(ran) = e {
                self.count_call(ran.name, ran.nanos);
                self.stats.total_commands_processed += 1;
                if ran.failed {
                    self.count_failed(ran.name);
                }
                if let Some(err) = &ran.error {
                    self.count_error(err);
                }
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        // A node command's task: its errors count here (a command on the
        // keyspace counts its own where it runs).
        if let Some(name) = c.task_stats.take() {
            let mut failed = false;
            for r in &done.replies {
                if let Reply::Error(e) = r {
                    self.count_error(e);
                    failed = true;
                }
            }
            if failed {
                self.count_failed(name);
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.direct {
            c.direct = false;
            if std::mem::take(&mut c.direct_input) {
                self.direct_inputs -= 1;
                if self.direct_inputs == 0 {
                    self.mesh.want_posts(self.id, false);
                }
            }
            if c.closing {
                // Its socket may be closed now.
                self.closed.push(key);
                return;
            }
        }
        let mut tracking_off = false;
        for e in done.effects {
            match e {
                Effect::Db(db) => c.db = db,
                Effect::Watched(w) => c.watches.extend(w),
                Effect::Replconf => c.replconf = true,
                Effect::Ran(..) => {}
                Effect::Tracking(t) => {
                    self.tracking_conns.insert(c.id, key);
                    c.tracking = Some(t);
                }
                Effect::TrackingOff => tracking_off = true,
                Effect::Waited(us) => {
                    if let Some(p) = c.slow_pending.as_mut() {
                        p.0 = p.0.saturating_add(crate::shared::ticks_of_micros(us));
                    }
                }
                // (One offset per core: the highest covers the rest.)
                Effect::AofNeeds(needs) => {
                    for (d, x) in needs {
                        crate::mesh::add_need(&mut c.aof_remote, d, x);
                    }
                }
                Effect::HandOff => {
                    c.handoff = true;
                    c.closing = true;
                    if c.wait.in_flight() {
                        c.wait = Wait::No;
                    }
                    self.closed.push(key);
                    return;
                }
            }
        }
        if tracking_off {
            self.tracking_off(key);
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !c.mute {
            for r in &done.replies {
                r.encode_split(c.resp3, &mut c.out, &mut c.out_big);
            }
            let shift = c.out.len();
            c.out.extend_from_slice(&done.encoded.bytes);
            c.out_big
                .extend(done.encoded.bigs.into_iter().map(|(at, b)| (at + shift, b)));
        }

        if c.wait.in_flight() {
            c.wait = Wait::No;
        }
        if c.slow_pending.is_some() {
            self.slow_task_done(key);
        }
        self.want_flush(key);
        self.resume.push(key);
        self.track_release(key);
    }

    /// Starts closing a connection: cancels its work and shuts the socket
    /// so in-flight operations complete; the event loop frees it once none
    /// remain (it is queued in `closed` for that).
    pub fn close(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        if c.master {
            // What it had not run will not run: a promotion waiting for it
            // goes on.
            self.shared
                .master_closed
                .fetch_max(c.feed, std::sync::atomic::Ordering::SeqCst);
            self.replication.finish_promotion();
        }
        // SAFETY: shutting down our own socket; completions follow.
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        match c.wait {
            Wait::Task(t) if !c.direct => self.exec.cancel(t),
            // (Its answer, when it comes, finds no chain.) A reserved
            // pipeline's part here runs when the answer comes, whatever
            // becomes of the client: the other core ran its own part.
            Wait::Chain(h)
                if !c.direct && !self.chains.get(h).is_some_and(|ch| ch.is_reserved()) =>
            {
                drop(self.chains.remove(h))
            }
            _ => {}
        }
        let watches = std::mem::take(&mut c.watches);
        self.unwatch_all(watches);
        if let Some(i) = self
            .waiters
            .iter()
            .position(|w| w.origin == Origin::Local(key))
        {
            let w = self.waiters.remove(i);
            self.unblock_keys(&w);
        }
        pubsub::forget(self, key);
        self.tracking_off(key);
        self.monitor_stop(key);
        self.closed.push(key);
    }

    /// Whether a transaction holds this core's lock.
    pub fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Whether requests or connections wait here for a lock or a reserved
    /// key (no key is reserved then, so that they go on soon).
    pub fn waiting(&self) -> bool {
        !self.deferred.is_empty() || !self.stalled.is_empty()
    }

    /// While another core's transaction holds this core's lock, parks
    /// connection `key` until the unlock (true); else false: go on.
    pub fn stall_if_locked(&mut self, key: Key) -> bool {
        if self.lock.is_none() {
            return false;
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.wait = Wait::Stalled;
        }
        self.stalled.push(key);
        true
    }

    /// While a script that holds this core's lock is past
    /// `busy-reply-threshold`, the connections stalled by the lock go on:
    /// their commands now get BUSY, as Redis answers what waited for a
    /// long script.
    pub fn unstall_if_busy(&mut self) {
        if self.lock.is_none() || self.stalled.is_empty() || engine::script::busy_error().is_none()
        {
            return;
        }
        for key in std::mem::take(&mut self.stalled) {
            if let Some(c) = self.conns.get_mut(key) {
                if c.wait == Wait::Stalled {
                    c.wait = Wait::No;
                }
            }
            self.resume.push(key);
        }
    }

    /// Drops every WATCH in `watches` (fire and forget).
    pub fn unwatch_all(&mut self, watches: Vec<(usize, usize, Bytes, u64)>) {
        for (_, db, key, _) in watches {
            // The key's core now: a re-spread may have moved its slot.
            let c = self.mesh.slots.core_of(engine::slot::slot_of(&key));
            if c == self.id {
                self.engine.unwatch(db, &key);
            } else {
                self.rpc.tell(
                    c,
                    Request::Unwatch {
                        db,
                        keys: vec![key],
                    },
                );
            }
        }
    }

    /// Deadline of the blocked client that waits least long, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.waiters.iter().filter_map(|w| w.deadline_ms).min()
    }

    /// Stops serving: the event loop, seeing `stopping`, stops accepting
    /// and, once the AOF's last records are in the file and fsynced,
    /// closes every connection ([`Shard::close_all`]): as with Redis, a
    /// client that sees its connection close after SHUTDOWN finds every
    /// acknowledged write on disk, whatever `appendfsync` says.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Closes every connection.
    pub fn close_all(&mut self) {
        for key in self.conns.keys() {
            self.close(key);
        }
    }
}
