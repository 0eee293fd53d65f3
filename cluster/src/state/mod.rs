//! The cluster bus as a state machine: Redis 7.0's `cluster.c` without its
//! sockets, clock and random source.
//!
//! Owns: the nodes table (addresses, flags, epochs, ping/pong times, failure
//! reports), the slot → owner map, the links' bookkeeping (which link belongs
//! to which node, inbound or outbound), and every protocol rule: MEET/PING/
//! PONG handshake, gossip selection, PFAIL → FAIL, FAIL propagation and
//! clearing, slot ownership by config epoch, UPDATE, currentEpoch
//! propagation, config-epoch collisions.
//!
//! # Calling order (the driver's contract)
//! - Every 100 ms: [`Cluster::tick`] (Redis's `clusterCron`).
//! - A whole frame read from a link: [`crate::wire::decode`], then
//!   [`Cluster::handle`]. Frames that do not decode are dropped (count them).
//! - A connection accepted on the bus port: [`Cluster::accept`] gives its
//!   [`LinkId`].
//! - An [`Action::Connect`] that succeeded: [`Cluster::connected`]; one that
//!   failed, or any link that breaks: [`Cluster::closed`].
//! - Every call returns [`Action`]s to perform in order: `SaveConfig` comes
//!   first, so a new epoch is on disk before any message announces it. A
//!   `Send` on a link still connecting is queued by the driver until it
//!   connects (as Redis's send buffer).
//!
//! Time is `now_ms` (Unix milliseconds, as Redis's `mstime()`: the ping and
//! pong times travel in gossip in seconds); randomness is an `RngCore`.
//!
//! Replicas, elections, manual failover and replica migration are in
//! [`failover`]: the driver reports the node's replication offset and data
//! age ([`Cluster::set_replication`]), and a promotion shows in the slot
//! map (its master gone) and in the log lines of [`Action::Log`].
//!
//! # Not here yet
//! MODULE messages, and the rejoin delay of `clusterUpdateState`.
//!
//! # Slot migration
//! A slot this node migrates is always one it owns: losing it (by gossip,
//! DELSLOTS, SETSLOT NODE) closes the migration. Redis keeps the stale
//! `[slot->-id]` until SETSLOT NODE/STABLE; shards could not use it anyway.

use crate::cores::{self, CorePorts};
use crate::nodes_conf::{NodeLine, NodesConf};
use crate::slotmap::{Endpoint, EndpointType, SlotMap};
use crate::wire::{flags, msg_type, Body, Gossip, GossipEntry, Header, Msg, PingExt};
use crate::{NodeId, SlotBitmap, SLOTS};
use rand::RngCore;
use std::collections::BTreeMap;

mod failover;
pub use failover::{FailoverMode, MF_PAUSE_MULT, MF_TIMEOUT_MS, MIGRATION_DELAY_MS};

/// Failure reports are valid for this many node timeouts
/// (`CLUSTER_FAIL_REPORT_VALIDITY_MULT`).
pub const FAIL_REPORT_VALIDITY_MULT: u64 = 2;
/// A master that serves slots keeps FAIL this many node timeouts before a
/// PONG may clear it (`CLUSTER_FAIL_UNDO_TIME_MULT`).
pub const FAIL_UNDO_TIME_MULT: u64 = 2;
/// A handshake node that never answers is dropped after the node timeout,
/// but never before this.
pub const HANDSHAKE_TIMEOUT_MIN_MS: u64 = 1000;
/// `tick` is called this often; the random ping goes out every 10 ticks.
pub const TICK_MS: u64 = 100;
/// A master's state turns ok no sooner than this after its first update
/// (`CLUSTER_WRITABLE_DELAY`).
pub const WRITABLE_DELAY_MS: u64 = 2000;
/// After being among a minority, a master waits the node timeout within
/// these bounds before its state turns ok (`CLUSTER_MIN/MAX_REJOIN_DELAY`).
pub const REJOIN_DELAY_MIN_MS: u64 = 500;
pub const REJOIN_DELAY_MAX_MS: u64 = 5000;
/// Number of message types Redis counts (`CLUSTERMSG_TYPE_COUNT`).
pub const MSG_TYPES: usize = 11;
/// A forgotten node may not come back through gossip for this long
/// (`CLUSTER_BLACKLIST_TTL`).
pub const FORGET_BAN_MS: u64 = 60_000;
/// A node's core ports go to each other node again this often, whether or
/// not they changed: a node that dropped them (it did not know us yet, in
/// a handshake) learns them within this time, and meanwhile names our
/// node's port, which costs its clients a hop between our cores at most.
pub const CORES_RESEND_MS: u64 = 10_000;

/// The node's settings that the protocol reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// `cluster-node-timeout`.
    pub node_timeout_ms: u64,
    /// `cluster-announce-ip`; empty: learned from the socket of a MEET.
    pub announce_ip: String,
    /// Client port, plaintext port (0 unless TLS), bus port, as announced.
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    /// `cluster-announce-hostname`; empty: none.
    pub hostname: String,
    /// `cluster-require-full-coverage`.
    pub require_full_coverage: bool,
    /// `cluster-preferred-endpoint-type`: how CLUSTER SLOTS and SHARDS
    /// name nodes.
    pub preferred_endpoint: EndpointType,
    /// `cluster-replica-validity-factor` (0: a replica always may fail over).
    pub replica_validity_factor: u64,
    /// `cluster-replica-no-failover`.
    pub replica_no_failover: bool,
    /// `cluster-migration-barrier`.
    pub migration_barrier: u64,
    /// `cluster-allow-replica-migration`.
    pub allow_replica_migration: bool,
    /// `repl-ping-replica-period`, in ms (part of the validity bound).
    pub repl_ping_period_ms: u64,
}

impl Config {
    /// Redis's defaults for a node on `port` (bus port + 10000).
    pub fn new(port: u16) -> Config {
        Config {
            node_timeout_ms: 15000,
            announce_ip: String::new(),
            port,
            pport: 0,
            cport: port.wrapping_add(10000),
            hostname: String::new(),
            require_full_coverage: true,
            preferred_endpoint: EndpointType::Ip,
            replica_validity_factor: 10,
            replica_no_failover: false,
            migration_barrier: 1,
            allow_replica_migration: true,
            repl_ping_period_ms: 10_000,
        }
    }
}

/// A TCP connection on the bus, named by the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// Splits `actions` into those to carry out now and the resumes of
/// paused writers to carry out last (once the shards route by the new
/// map). A resume followed by a new pause in the same batch (a manual
/// failover requested again) stays in its place, so the pause wins.
pub fn resume_last(actions: Vec<Action>) -> (Vec<Action>, Vec<Action>) {
    let last_pause = actions
        .iter()
        .rposition(|a| matches!(a, Action::PauseWrites { until_ms } if *until_ms != 0));
    let (resume, rest): (Vec<_>, Vec<_>) = actions.into_iter().enumerate().partition(|(i, a)| {
        *a == Action::PauseWrites { until_ms: 0 } && last_pause.is_none_or(|p| *i > p)
    });
    (
        rest.into_iter().map(|(_, a)| a).collect(),
        resume.into_iter().map(|(_, a)| a).collect(),
    )
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Persist [`Cluster::nodes_conf`] atomically and fsync it.
    SaveConfig,
    /// Open a connection to `ip:cport`; report [`Cluster::connected`] or
    /// [`Cluster::closed`] for `link`.
    Connect {
        link: LinkId,
        ip: String,
        cport: u16,
    },
    /// Encode and write `msg` on `link`.
    Send { link: LinkId, msg: Msg },
    /// Close `link`; the state machine has forgotten it already.
    Close { link: LinkId },
    /// This node flagged `node` FAIL on its own (quorum reached): log
    /// "Marking node <id> as failing (quorum reached)."
    Failing { node: NodeId },
    /// Slot owners, migrations or the cluster state changed: shards need
    /// a new slot map ([`Cluster::slot_map`]).
    SlotMapChanged,
    /// A PUBLISH from another node: deliver `message` on `channel` to this
    /// node's subscribers (`shard`: to SSUBSCRIBE's).
    Deliver {
        channel: Vec<u8>,
        message: Vec<u8>,
        shard: bool,
    },
    /// Another node took these slots of this node by a newer config (a
    /// message or UPDATE, not a migration): delete the keys they still
    /// hold, logged as DEL (Redis's dirty slots, `delKeysInSlot`), so no
    /// stale key outlives the move. Comes after the [`Action::SlotMapChanged`]
    /// that stops serving them.
    DropSlotKeys { slots: Vec<u16> },
    /// A line for the log (elections, votes, FAIL received and cleared,
    /// reconfiguration), in Redis's words and at its level.
    Log { warning: bool, line: String },
    /// A replica asked for a manual failover (MFSTART): stop this node's
    /// writers until `until_ms` (Unix ms; 0: resume them now). Once every
    /// core has stopped them, report the replication offset reached with
    /// [`Cluster::writes_paused`]. A resume comes after the
    /// [`Action::SlotMapChanged`] of the same call.
    PauseWrites { until_ms: u64 },
}

/// One known node (`clusterNode`).
#[derive(Debug, Clone)]
struct Node {
    id: NodeId,
    /// [`flags`] bits.
    flags: u16,
    /// When this entry was created (handshake nodes expire from it).
    ctime: u64,
    ip: String,
    port: u16,
    pport: u16,
    cport: u16,
    hostname: String,
    config_epoch: u64,
    /// The master of a replica, when known.
    slaveof: Option<NodeId>,
    /// When it became its master's replica ([`Cluster::attached`]): a
    /// master lists its replicas in this order, as Redis keeps them in
    /// `master->slaves` (appended as they are learnt).
    attached: u64,
    /// When the unanswered PING went out; 0: none pending.
    ping_sent: u64,
    pong_received: u64,
    data_received: u64,
    fail_time: u64,
    /// Outbound link (we PING, it PONGs).
    link: Option<LinkId>,
    /// Inbound link (it PINGs, we PONG).
    inbound_link: Option<LinkId>,
    /// (reporting master, time of its latest report).
    fail_reports: Vec<(NodeId, u64)>,
    /// Slots owned, in step with [`Cluster::slots`].
    slots: SlotBitmap,
    /// Number of bits in `slots`.
    numslots: usize,
    /// `ping` counter of the last message this node was gossiped in.
    last_in_ping_gossip: u64,
    /// The replication offset its last message carried.
    repl_offset: i64,
    /// A master: when this node last voted for one of its replicas.
    voted_time: u64,
    /// A master: since when it has no healthy replica (0: it has one).
    orphaned_time: u64,
    /// Its client ports per shard core, as it announced them (myself: as
    /// [`Cluster::set_my_cores`] set them).
    cores: Option<Box<CorePorts>>,
    /// Our core ports as last sent to it: on which link, which
    /// [`Cluster::cores_gen`], when.
    cores_sent: Option<(LinkId, u64, u64)>,
}

impl Node {
    fn new(id: NodeId, node_flags: u16, now: u64) -> Node {
        Node {
            id,
            flags: node_flags,
            ctime: now,
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            config_epoch: 0,
            slaveof: None,
            attached: 0,
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            fail_time: 0,
            link: None,
            inbound_link: None,
            fail_reports: Vec::new(),
            slots: SlotBitmap::new(),
            numslots: 0,
            last_in_ping_gossip: 0,
            repl_offset: 0,
            voted_time: 0,
            orphaned_time: 0,
            cores: None,
            cores_sent: None,
        }
    }
    fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    fn is_master(&self) -> bool {
        self.has(flags::MASTER)
    }
}

/// One connection (`clusterLink`).
#[derive(Debug, Clone)]
struct Link {
    /// The node it belongs to: always set for outbound links, learned from
    /// the first known sender for inbound ones.
    node: Option<NodeId>,
    inbound: bool,
    ctime: u64,
    /// The remote address of the socket (for nodes that do not announce one).
    peer_ip: String,
    /// Our address on the socket (how the peer reaches us).
    local_ip: String,
    /// Inbound, or outbound and [`Cluster::connected`].
    up: bool,
    /// The driver's send buffer, as last reported ([`Cluster::link_buffer`]).
    send_allocated: u64,
    send_used: u64,
}

/// A link as CLUSTER LINKS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub id: LinkId,
    /// `from` the peer (accepted) or `to` it.
    pub inbound: bool,
    pub node: NodeId,
    /// Unix ms.
    pub create_time: u64,
    /// `r` once connected, `rw` while data waits to be sent; empty while
    /// connecting (Redis's installed handlers).
    pub events: &'static str,
    pub send_buffer_allocated: u64,
    pub send_buffer_used: u64,
}

/// Message counters by type, as CLUSTER INFO shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: [u64; MSG_TYPES],
    pub received: [u64; MSG_TYPES],
    /// Links the driver closed for exceeding `cluster-link-sendbuf-limit`
    /// (`total_cluster_links_buffer_limit_exceeded`).
    pub links_buffer_limit_exceeded: u64,
    /// Frames dropped: unreadable (counted by the driver), or from a
    /// sender this node does not know other than a MEET.
    pub dropped: u64,
}

/// A node as the outside sees it (CLUSTER NODES and the simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: NodeId,
    pub flags: u16,
    pub config_epoch: u64,
    pub numslots: usize,
    pub connected: bool,
    pub fail_reports: usize,
}

/// The cluster as this node sees it. See the module doc for the calling
/// order.
///
/// Invariants (checked by [`Cluster::invariants`] in debug builds after
/// every call): exactly one node is `myself` and it is a master; every slot
/// owner is a known node, and a node's `slots` bitmap holds exactly the slots
/// whose owner it is; no node is both PFAIL and FAIL; a node's links are
/// links of this table pointing back at it, outbound in `link` and inbound in
/// `inbound_link`; every slot migrating away is owned by this node.
pub struct Cluster {
    config: Config,
    /// Counts replicas attached to their masters ([`Node::attached`]).
    attached: u64,
    myself: NodeId,
    current_epoch: u64,
    last_vote_epoch: u64,
    nodes: BTreeMap<NodeId, Node>,
    /// The nodes' IDs in order, for random picks ([`Cluster::node_at`]).
    node_ids: Vec<NodeId>,
    /// Owner of each slot.
    slots: Vec<Option<NodeId>>,
    /// Slots whose owner stopped claiming them (`owner_not_claiming_slot`):
    /// kept bound, but not advertised in UPDATE messages.
    not_claimed: SlotBitmap,
    migrating: BTreeMap<u16, NodeId>,
    importing: BTreeMap<u16, NodeId>,
    links: BTreeMap<LinkId, Link>,
    next_link: u64,
    /// CLUSTER FORGET's ban list: node → when gossip may add it again (ms).
    banned: BTreeMap<NodeId, u64>,
    /// 0 ok, 1 fail (`CLUSTER_OK`, `CLUSTER_FAIL`).
    state: u8,
    /// Cron calls so far.
    iteration: u64,
    /// PINGs and PONGs built so far (gossip deduplication).
    pings_built: u64,
    /// Nodes in PFAIL at the last cron, for the gossip section.
    pfail_nodes: usize,
    stats: Stats,
    out: Vec<Action>,
    todo_save: bool,
    todo_update_state: bool,
    todo_slot_map: bool,
    /// Slots of this node taken by another one's newer config, whose keys
    /// must go ([`Action::DropSlotKeys`]).
    dirty_slots: Vec<u16>,
    /// Elections and manual failover.
    election: failover::Election,
    /// From [`Cluster::set_replication`].
    repl_offset: i64,
    data_age_ms: u64,
    /// The time of the latest event (for the state's delays).
    now: u64,
    /// The first state update, and the last one that found this node
    /// among a minority of masters (`clusterUpdateState`'s statics).
    first_update: u64,
    among_minority_time: u64,
    /// Bumped each time this node's core ports change.
    cores_gen: u64,
}

impl Cluster {
    /// A node that knows only itself: a master without slots, epoch 0.
    pub fn new(myself: NodeId, config: Config, now_ms: u64) -> Cluster {
        let mut me = Node::new(myself, flags::MYSELF | flags::MASTER, now_ms);
        me.ip = config.announce_ip.clone();
        me.port = config.port;
        me.pport = config.pport;
        me.cport = config.cport;
        me.hostname = config.hostname.clone();
        let mut nodes = BTreeMap::new();
        nodes.insert(myself, me);
        let mut c = Cluster {
            config,
            attached: 0,
            myself,
            current_epoch: 0,
            last_vote_epoch: 0,
            nodes,
            node_ids: Vec::new(),
            slots: vec![None; SLOTS],
            not_claimed: SlotBitmap::new(),
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 1,
            banned: BTreeMap::new(),
            state: 1,
            iteration: 0,
            pings_built: 0,
            pfail_nodes: 0,
            stats: Stats::default(),
            out: Vec::new(),
            todo_save: false,
            todo_update_state: true,
            todo_slot_map: false,
            dirty_slots: Vec::new(),
            election: failover::Election::new(),
            repl_offset: 0,
            data_age_ms: 0,
            now: now_ms,
            first_update: 0,
            among_minority_time: 0,
            cores_gen: 0,
        };
        // (`cluster-replica-no-failover` at start, as `clusterInit`.)
        c.myself_from_config();
        c
    }

    /// A node restarted from its `nodes.conf` (Redis's `clusterLoadConfig`):
    /// pending pings and pongs count from `now_ms`, FAIL flags too.
    pub fn from_conf(conf: &NodesConf, config: Config, now_ms: u64) -> Result<Cluster, String> {
        let me = conf.myself().ok_or("no node is flagged myself")?;
        let role = me.flags & (flags::MASTER | flags::SLAVE);
        if role != flags::MASTER && role != flags::SLAVE {
            return Err(format!(
                "node {} (myself) must be flagged either master or slave",
                me.id
            ));
        }
        let mut c = Cluster::new(me.id, config, now_ms);
        c.nodes.clear();
        for line in &conf.nodes {
            let mut node_flags = line.flags & !flags::HANDSHAKE;
            // FAIL supersedes PFAIL; never both.
            if node_flags & flags::FAIL != 0 {
                node_flags &= !flags::PFAIL;
            }
            let mut n = Node::new(line.id, node_flags, now_ms);
            n.ip = line.ip.clone();
            n.port = line.port;
            n.cport = line.cport;
            n.hostname = line.hostname.clone();
            n.slaveof = line.master;
            if line.master.is_some() {
                n.attached = c.attach();
            }
            n.config_epoch = if n.has(flags::SLAVE) && line.master.is_some() {
                0
            } else {
                line.config_epoch
            };
            if line.ping_sent != 0 {
                n.ping_sent = now_ms;
            }
            if line.pong_received != 0 {
                n.pong_received = now_ms;
            }
            if n.has(flags::FAIL) {
                n.fail_time = now_ms;
            }
            c.nodes.insert(line.id, n);
        }
        for line in &conf.nodes {
            for node in line
                .master
                .iter()
                .chain(line.migrating.iter().map(|m| &m.1))
            {
                c.nodes
                    .entry(*node)
                    .or_insert_with(|| Node::new(*node, 0, now_ms));
            }
            for &(start, stop) in &line.slots {
                for slot in start..=stop {
                    c.add_slot(line.id, slot);
                }
            }
        }
        let me_line = conf.myself().ok_or("no node is flagged myself")?;
        for &(slot, to) in &me_line.migrating {
            if c.slots[slot as usize] != Some(me_line.id) {
                continue; // a stale migration of a slot lost since
            }
            c.nodes
                .entry(to)
                .or_insert_with(|| Node::new(to, 0, now_ms));
            c.migrating.insert(slot, to);
        }
        for &(slot, from) in &me_line.importing {
            c.nodes
                .entry(from)
                .or_insert_with(|| Node::new(from, 0, now_ms));
            c.importing.insert(slot, from);
        }
        c.current_epoch = conf.current_epoch.max(c.max_epoch());
        c.last_vote_epoch = conf.last_vote_epoch;
        let masters: Vec<NodeId> = c
            .nodes
            .values()
            .filter(|n| n.has(flags::SLAVE))
            .filter_map(|n| n.slaveof)
            .collect();
        for m in masters {
            if let Some(m) = c.nodes.get_mut(&m) {
                m.flags |= flags::MIGRATE_TO;
            }
        }
        c.myself_from_config();
        c.invariants();
        Ok(c)
    }

    // ----- Read side ------------------------------------------------------

    /// This node's ID.
    pub fn myself(&self) -> NodeId {
        self.myself
    }

    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// This node's config epoch.
    pub fn last_vote_epoch(&self) -> u64 {
        self.last_vote_epoch
    }

    pub fn config_epoch(&self) -> u64 {
        self.nodes[&self.myself].config_epoch
    }

    /// CLUSTER INFO's `cluster_my_epoch`: this node's config epoch, or its
    /// master's when it is a replica (as Redis shows it).
    pub fn shown_epoch(&self) -> u64 {
        let me = &self.nodes[&self.myself];
        me.slaveof
            .filter(|_| me.has(flags::SLAVE))
            .and_then(|m| self.nodes.get(&m))
            .map_or(me.config_epoch, |m| m.config_epoch)
    }

    /// Whether the cluster is ok from this node's point of view.
    pub fn state_ok(&self) -> bool {
        self.state == 0
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The owner of `slot` (below [`SLOTS`]).
    pub fn slot_owner(&self, slot: u16) -> Option<NodeId> {
        self.slots.get(slot as usize).copied().flatten()
    }

    /// Every known node, by ID.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.nodes
            .values()
            .map(|n| NodeView {
                id: n.id,
                flags: n.flags,
                config_epoch: n.config_epoch,
                numslots: n.numslots,
                connected: n.link.is_some() || n.id == self.myself,
                fail_reports: n.fail_reports.len(),
            })
            .collect()
    }

    /// The other nodes of this node's shard (`clusterGetNodesServingMySlots`
    /// but myself): its master and the master's replicas.
    fn shard_peers(&self) -> impl Iterator<Item = &Node> {
        let me = &self.nodes[&self.myself];
        let master = match me.slaveof {
            Some(m) if me.has(flags::SLAVE) => m,
            _ => self.myself,
        };
        self.nodes
            .values()
            .filter(move |n| n.id == master || (n.has(flags::SLAVE) && n.slaveof == Some(master)))
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
    }

    /// Whether this node's shard has other nodes (an SPUBLISH goes to
    /// them).
    pub fn has_shard_peers(&self) -> bool {
        self.shard_peers().next().is_some()
    }

    /// The next [`Node::attached`] stamp.
    fn attach(&mut self) -> u64 {
        self.attached += 1;
        self.attached
    }

    /// The replicas of `master`, in the order they attached to it (as
    /// Redis's `master->slaves` lists them).
    pub fn replicas_of(&self, master: &NodeId) -> Vec<NodeId> {
        let mut r: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| n.has(flags::SLAVE) && n.slaveof.as_ref() == Some(master))
            .collect();
        r.sort_by_key(|n| n.attached);
        r.into_iter().map(|n| n.id).collect()
    }

    /// Number of masters serving slots (`cluster_size`).
    pub fn size(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.is_master() && n.numslots > 0)
            .count()
    }

    /// What `nodes.conf` holds now (handshake nodes left out, as Redis).
    pub fn nodes_conf(&self) -> NodesConf {
        NodesConf {
            nodes: self
                .node_lines()
                .into_iter()
                .filter(|n| n.flags & flags::HANDSHAKE == 0)
                .collect(),
            current_epoch: self.current_epoch,
            last_vote_epoch: self.last_vote_epoch,
        }
    }

    /// Every known node, handshakes included, as CLUSTER NODES lists them.
    pub fn node_lines(&self) -> Vec<NodeLine> {
        self.nodes
            .values()
            .map(|n| {
                let master_epoch = n
                    .slaveof
                    .and_then(|m| self.nodes.get(&m))
                    .filter(|_| n.has(flags::SLAVE))
                    .map(|m| m.config_epoch);
                let is_me = n.id == self.myself;
                NodeLine {
                    id: n.id,
                    ip: n.ip.clone(),
                    port: n.port,
                    cport: n.cport,
                    hostname: n.hostname.clone(),
                    flags: n.flags & !(flags::MEET | flags::MIGRATE_TO),
                    master: n.slaveof,
                    ping_sent: n.ping_sent,
                    pong_received: n.pong_received,
                    config_epoch: master_epoch.unwrap_or(n.config_epoch),
                    connected: n.link.is_some() || is_me,
                    slots: n.slots.runs(),
                    migrating: if is_me {
                        self.migrating.iter().map(|(s, n)| (*s, *n)).collect()
                    } else {
                        Vec::new()
                    },
                    importing: if is_me {
                        self.importing.iter().map(|(s, n)| (*s, *n)).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }

    /// The settings this node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A known node's [`flags`], `None` for an unknown one.
    pub fn node_flags(&self, id: &NodeId) -> Option<u16> {
        self.nodes.get(id).map(|n| n.flags)
    }

    /// A node's replication offset as CLUSTER SLOTS and SHARDS show it: this
    /// node's own (what [`Cluster::set_replication`] reported), or the one
    /// the node's last message carried.
    pub fn repl_offset_of(&self, id: &NodeId) -> i64 {
        if *id == self.myself {
            self.repl_offset
        } else {
            self.nodes.get(id).map_or(0, |n| n.repl_offset)
        }
    }

    /// This node's client ports per shard core (`shard-port-base`), or
    /// `None` when it has none. Returns whether they changed; the other
    /// nodes hear of the change at the next ticks. (The directive cannot
    /// change at runtime, so only tests turn them off: the others then get
    /// an empty map.)
    pub fn set_my_cores(&mut self, map: Option<CorePorts>) -> bool {
        let me = self.nodes.get_mut(&self.myself).expect("myself");
        if me.cores.as_deref() == map.as_ref() {
            return false;
        }
        me.cores = map.map(Box::new);
        self.cores_gen += 1;
        true
    }

    /// The client port of the shard core of `node` that holds `slot`, when
    /// the node announced one.
    pub fn core_port(&self, node: &NodeId, slot: u16) -> Option<u16> {
        self.nodes.get(node)?.cores.as_ref()?.port_of(slot)
    }

    /// The node `slot` is migrating to, if it is.
    pub fn migrating_to(&self, slot: u16) -> Option<NodeId> {
        self.migrating.get(&slot).copied()
    }

    /// The node `slot` is imported from, if it is.
    pub fn importing_from(&self, slot: u16) -> Option<NodeId> {
        self.importing.get(&slot).copied()
    }

    /// The links tied to a node, as CLUSTER LINKS lists them: by node, its
    /// outbound link then its inbound one.
    pub fn links(&self) -> Vec<LinkView> {
        let mut out = Vec::new();
        for n in self.nodes.values() {
            for id in [n.link, n.inbound_link].into_iter().flatten() {
                let Some(l) = self.links.get(&id) else {
                    continue;
                };
                out.push(LinkView {
                    id,
                    inbound: l.inbound,
                    node: n.id,
                    create_time: l.ctime,
                    events: match (l.up, l.send_used > 0) {
                        (false, _) => "",
                        (true, false) => "r",
                        (true, true) => "rw",
                    },
                    send_buffer_allocated: l.send_allocated,
                    send_buffer_used: l.send_used,
                });
            }
        }
        out
    }

    /// The slot map shard cores route by: the nodes that own a slot or are
    /// the peer of a migration (this node first), per-slot indices, and
    /// whether the cluster is ok.
    pub fn slot_map(&self, endpoint: EndpointType) -> SlotMap {
        let endpoint_of = |n: &Node| Endpoint {
            id: n.id,
            ip: n.ip.clone(),
            port: n.port,
            hostname: n.hostname.clone(),
        };
        let me = &self.nodes[&self.myself];
        let mut map = SlotMap::empty(endpoint_of(me));
        map.ok = self.state_ok();
        map.endpoint = endpoint;
        let mut index: BTreeMap<NodeId, u16> = BTreeMap::new();
        index.insert(self.myself, 0);
        let mut index_of = |id: NodeId, nodes: &mut Vec<Endpoint>| -> u16 {
            *index.entry(id).or_insert_with(|| {
                nodes.push(endpoint_of(&self.nodes[&id]));
                (nodes.len() - 1) as u16
            })
        };
        // Node by node, from each one's bitmap (a few nodes own slots; a
        // lookup per slot would compare 16384 IDs).
        for n in self.nodes.values().filter(|n| n.numslots > 0) {
            let i = index_of(n.id, &mut map.nodes);
            for (first, last) in n.slots.runs() {
                map.owner[first as usize..=last as usize].fill(i);
            }
        }
        // BTreeMaps: in slot order, as the map wants them.
        for (&slot, &to) in &self.migrating {
            let i = index_of(to, &mut map.nodes);
            map.migrating.push((slot, i));
        }
        for (&slot, &from) in &self.importing {
            let i = index_of(from, &mut map.nodes);
            map.importing.push((slot, i));
        }
        if let Some((m, _, _)) = self.my_master() {
            map.master = Some(index_of(m, &mut map.nodes));
        }
        // MOVED names the port of the owner's core that holds the slot.
        for n in self.nodes.values().filter(|n| n.numslots > 0) {
            let Some(cores) = &n.cores else { continue };
            if map.core_port.is_empty() {
                map.core_port = vec![0; SLOTS];
            }
            for (first, last) in n.slots.runs() {
                for s in first..=last {
                    map.core_port[s as usize] = cores.port_of(s).unwrap_or(0);
                }
            }
        }
        map
    }

    // ----- Commands -------------------------------------------------------

    /// CLUSTER MEET: start a handshake with `ip:port@cport`. `Err` for an
    /// address Redis refuses ("Invalid node address specified"), or a
    /// handshake already in progress with it.
    pub fn meet(
        &mut self,
        now_ms: u64,
        ip: &str,
        port: u16,
        cport: u16,
        rng: &mut dyn RngCore,
    ) -> Result<(), String> {
        let parsed: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("Invalid node address specified: {ip}:{port}"))?;
        if port == 0 || cport == 0 {
            return Err(format!("Invalid node address specified: {ip}:{port}"));
        }
        let ip = parsed.to_string();
        let in_progress = self.nodes.values().any(|n| {
            n.has(flags::HANDSHAKE)
                && n.ip.eq_ignore_ascii_case(&ip)
                && n.port == port
                && n.cport == cport
        });
        if in_progress {
            return Err("handshake already in progress".into());
        }
        let mut n = Node::new(self.fresh_id(rng), flags::HANDSHAKE | flags::MEET, now_ms);
        n.ip = ip;
        n.port = port;
        n.cport = cport;
        self.nodes.insert(n.id, n);
        self.invariants();
        Ok(())
    }

    /// ADDSLOTS's (`bound` false) and DELSLOTS's (`bound` true) checks:
    /// every slot in range, and bound or unbound as the command needs.
    fn check_slots(&self, slots: &[u16], bound: bool) -> Result<(), String> {
        for &s in slots {
            match self.slots.get(s as usize) {
                None => return Err("Invalid or out of range slot".into()),
                Some(o) if o.is_some() && !bound => {
                    return Err(format!("Slot {s} is already busy"))
                }
                Some(o) if o.is_none() && bound => {
                    return Err(format!("Slot {s} is already unassigned"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// CLUSTER ADDSLOTS: `Err` if a slot is out of range or already owned;
    /// nothing changes then. Closes the import of those slots.
    pub fn add_slots(&mut self, slots: &[u16]) -> Result<Vec<Action>, String> {
        self.check_slots(slots, false)?;
        for &s in slots {
            self.importing.remove(&s);
            self.add_slot(self.myself, s);
        }
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER DELSLOTS: unbinds the slots, whoever owns them. `Err` if one
    /// is out of range or unbound; nothing changes then.
    pub fn del_slots(&mut self, slots: &[u16]) -> Result<Vec<Action>, String> {
        self.check_slots(slots, true)?;
        for &s in slots {
            self.importing.remove(&s);
            self.del_slot(s);
        }
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER FLUSHSLOTS: unbinds every slot of this node.
    pub fn flush_slots(&mut self) -> Vec<Action> {
        for slot in 0..SLOTS as u16 {
            if self.slots[slot as usize] == Some(self.myself) {
                self.del_slot(slot);
            }
        }
        self.todo_save = true;
        self.todo_update_state = true;
        self.finish()
    }

    fn setslot_check(&self, slot: u16, node: &NodeId) -> Result<(), String> {
        if slot as usize >= SLOTS {
            return Err("Invalid or out of range slot".into());
        }
        match self.nodes.get(node) {
            None => Err(format!("I don't know about node {node}")),
            Some(n) if n.has(flags::SLAVE) => Err("Target node is not a master".into()),
            Some(_) => Ok(()),
        }
    }

    /// CLUSTER SETSLOT `slot` MIGRATING `node`: this node must own it.
    pub fn setslot_migrating(&mut self, slot: u16, node: NodeId) -> Result<Vec<Action>, String> {
        if slot as usize >= SLOTS {
            return Err("Invalid or out of range slot".into());
        }
        if self.slots[slot as usize] != Some(self.myself) {
            return Err(format!("I'm not the owner of hash slot {slot}"));
        }
        self.setslot_check(slot, &node)?;
        self.migrating.insert(slot, node);
        self.todo_slot_map = true;
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER SETSLOT `slot` IMPORTING `node`: this node must not own it.
    pub fn setslot_importing(&mut self, slot: u16, node: NodeId) -> Result<Vec<Action>, String> {
        if slot as usize >= SLOTS {
            return Err("Invalid or out of range slot".into());
        }
        if self.slots[slot as usize] == Some(self.myself) {
            return Err(format!("I'm already the owner of hash slot {slot}"));
        }
        self.setslot_check(slot, &node)?;
        self.importing.insert(slot, node);
        self.todo_slot_map = true;
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER SETSLOT `slot` STABLE: closes its migration or import.
    pub fn setslot_stable(&mut self, slot: u16) -> Result<Vec<Action>, String> {
        if slot as usize >= SLOTS {
            return Err("Invalid or out of range slot".into());
        }
        if self.migrating.remove(&slot).is_some() | self.importing.remove(&slot).is_some() {
            self.todo_slot_map = true;
        }
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER SETSLOT `slot` NODE `node` (a known master). `slot_keys`:
    /// keys this node holds in the slot; it may not give away a slot it
    /// holds keys of. A migration with no keys left closes. Ending an import
    /// (`node` is this node) bumps the config epoch without consensus
    /// (`clusterBumpConfigEpochWithoutConsensus`) so the new owner wins over
    /// the old one, and tells everyone at once with a PONG.
    pub fn setslot_node(
        &mut self,
        now_ms: u64,
        slot: u16,
        node: NodeId,
        slot_keys: u64,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<Action>, String> {
        if slot as usize >= SLOTS {
            return Err("Invalid or out of range slot".into());
        }
        match self.nodes.get(&node) {
            None => return Err(format!("Unknown node {node}")),
            Some(n) if n.has(flags::SLAVE) => return Err("Target node is not a master".into()),
            Some(_) => {}
        }
        let mine = self.slots[slot as usize] == Some(self.myself);
        if mine && node != self.myself && slot_keys != 0 {
            return Err(format!(
                "Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
            ));
        }
        if slot_keys == 0 && self.migrating.remove(&slot).is_some() {
            self.todo_slot_map = true;
        }
        if self.slots[slot as usize] != Some(node) {
            self.del_slot(slot);
            self.add_slot(node, slot);
        }
        if node == self.myself && self.importing.remove(&slot).is_some() {
            self.todo_slot_map = true;
            self.bump_epoch_without_consensus();
            self.broadcast_pong(now_ms, false, rng);
        }
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER BUMPEPOCH: a new config epoch unless this node's is already
    /// the greatest and not 0. Returns whether it bumped.
    pub fn bump_epoch(&mut self) -> (bool, Vec<Action>) {
        let bumped = self.bump_epoch_without_consensus();
        (bumped, self.finish())
    }

    fn bump_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_epoch();
        let me = self.nodes.get_mut(&self.myself).expect("myself");
        if me.config_epoch == 0 || me.config_epoch != max {
            // A peer or nodes.conf may have set it to the largest value.
            self.current_epoch = self.current_epoch.saturating_add(1);
            me.config_epoch = self.current_epoch;
            self.todo_save = true;
            true
        } else {
            false
        }
    }

    /// CLUSTER SET-CONFIG-EPOCH: only on a node that knows no other node
    /// and has epoch 0.
    pub fn set_config_epoch(&mut self, epoch: u64) -> Result<Vec<Action>, String> {
        if self.nodes.len() > 1 {
            return Err(
                "The user can assign a config epoch only when the node does not know any other node."
                    .into(),
            );
        }
        let me = self.nodes.get_mut(&self.myself).expect("myself");
        if me.config_epoch != 0 {
            return Err("Node config epoch is already non-zero".into());
        }
        me.config_epoch = epoch;
        self.current_epoch = self.current_epoch.max(epoch);
        self.todo_save = true;
        self.todo_update_state = true;
        Ok(self.finish())
    }

    /// CLUSTER FORGET: drops a node (not this one) and bans it from gossip
    /// for [`FORGET_BAN_MS`].
    pub fn forget(&mut self, now_ms: u64, node: NodeId) -> Result<Vec<Action>, String> {
        if !self.nodes.contains_key(&node) {
            return Err(format!("Unknown node {node}"));
        }
        if node == self.myself {
            return Err("I tried hard but I can't forget myself...".into());
        }
        if self.my_master().is_some_and(|(m, ..)| m == node) {
            return Err("Can't forget my master!".into());
        }
        self.banned.retain(|_, until| *until >= now_ms);
        self.banned.insert(node, now_ms + FORGET_BAN_MS);
        self.del_node(node);
        Ok(self.finish())
    }

    /// CLUSTER REPLICATE (`clusterSetMaster`): this node follows `node`'s
    /// data from now on. A master must own no slot and hold no key in
    /// database 0 (`db_keys`); a replica may switch masters.
    pub fn replicate(&mut self, node: NodeId, db_keys: u64) -> Result<Vec<Action>, String> {
        let Some(n) = self.nodes.get(&node) else {
            return Err(format!("Unknown node {node}"));
        };
        if node == self.myself {
            return Err("Can't replicate myself".into());
        }
        if n.has(flags::SLAVE) {
            return Err("I can only replicate a master, not a replica.".into());
        }
        let me = &self.nodes[&self.myself];
        if me.is_master() && (me.numslots != 0 || db_keys != 0) {
            return Err(
                "To set a master the node must be empty and without assigned slots.".into(),
            );
        }
        self.set_my_master(node);
        Ok(self.finish())
    }

    /// Whether this node is a replica.
    pub fn is_replica(&self) -> bool {
        self.nodes[&self.myself].has(flags::SLAVE)
    }

    /// This node's master, when it is a replica: its ID, IP and port.
    pub fn my_master(&self) -> Option<(NodeId, String, u16)> {
        let me = &self.nodes[&self.myself];
        let m = me.slaveof.filter(|_| me.has(flags::SLAVE))?;
        let n = self.nodes.get(&m)?;
        Some((m, n.ip.clone(), n.port))
    }

    fn is_banned(&mut self, now_ms: u64, node: &NodeId) -> bool {
        self.banned.retain(|_, until| *until >= now_ms);
        self.banned.contains_key(node)
    }

    /// CLUSTER RESET: forgets every other node, unbinds every slot, closes
    /// migrations. `hard`: a new node ID and epochs back to 0.
    pub fn reset(&mut self, hard: bool, rng: &mut dyn RngCore) -> Vec<Action> {
        self.migrating.clear();
        self.importing.clear();
        if self.nodes[&self.myself].has(flags::SLAVE) {
            // A replica turns master and empties its data (`clusterReset`).
            self.set_node_as_master(self.myself);
            self.dirty_slots.extend(0..SLOTS as u16);
        }
        // On a master too: writers a manual failover paused resume.
        self.reset_manual_failover();
        for slot in 0..SLOTS as u16 {
            self.del_slot(slot);
        }
        let others: Vec<NodeId> = self
            .nodes
            .keys()
            .filter(|&&id| id != self.myself)
            .copied()
            .collect();
        for id in others {
            self.del_node(id);
        }
        if hard {
            self.current_epoch = 0;
            self.last_vote_epoch = 0;
            let old = self.myself;
            let new = self.fresh_id(rng);
            let mut me = self.nodes.remove(&old).expect("myself");
            me.id = new;
            me.config_epoch = 0;
            self.nodes.insert(new, me);
            self.myself = new;
        }
        self.todo_slot_map = true;
        self.todo_save = true;
        self.todo_update_state = true;
        self.finish()
    }

    /// Failure reports about `node` still valid, `None` if it is unknown
    /// (CLUSTER COUNT-FAILURE-REPORTS).
    pub fn failure_reports(&mut self, now_ms: u64, node: &NodeId) -> Option<usize> {
        let timeout = self.config.node_timeout_ms;
        self.nodes
            .get_mut(node)
            .map(|n| live_reports(n, now_ms, timeout))
    }

    /// The driver's send buffer of `link` (CLUSTER LINKS shows it).
    pub fn link_buffer(&mut self, link: LinkId, allocated: u64, used: u64) {
        if let Some(l) = self.links.get_mut(&link) {
            l.send_allocated = allocated;
            l.send_used = used;
        }
    }

    /// The directives changed (CONFIG SET): the node timeout, full
    /// coverage and the announced address take effect from the next call.
    pub fn set_config(&mut self, config: Config) {
        // `cluster-announce-ip` cleared: this node learns its address
        // again from the next PING or MEET (Redis's
        // `clusterUpdateMyselfIp` empties it to force that).
        let cleared = !self.config.announce_ip.is_empty() && config.announce_ip.is_empty();
        self.config = config;
        if cleared {
            if let Some(me) = self.nodes.get_mut(&self.myself) {
                me.ip.clear();
                self.todo_save = true;
                self.todo_slot_map = true;
            }
        }
        self.myself_from_config();
        self.todo_update_state = true;
    }

    /// This node's own entry as the running configuration says, not as
    /// nodes.conf left it: ports, announced IP (when set) and hostname, the
    /// `nofailover` flag (Redis's `deriveAnnouncedPorts`,
    /// `clusterUpdateMyselfIp`, `...Hostname`, `...Flags`). A change is
    /// saved.
    fn myself_from_config(&mut self) {
        let c = &self.config;
        let Some(me) = self.nodes.get_mut(&self.myself) else {
            return;
        };
        let seen = |me: &Node| {
            (
                me.ip.clone(),
                (me.port, me.pport, me.cport),
                me.hostname.clone(),
                me.flags,
            )
        };
        let before = seen(me);
        if !c.announce_ip.is_empty() {
            me.ip = c.announce_ip.clone();
        }
        (me.port, me.pport, me.cport) = (c.port, c.pport, c.cport);
        me.hostname = c.hostname.clone();
        me.flags &= !flags::NOFAILOVER;
        if c.replica_no_failover {
            me.flags |= flags::NOFAILOVER;
        }
        if before != seen(me) {
            self.todo_save = true;
            self.todo_slot_map = true;
        }
    }

    /// PUBLISH on this node: every other node delivers it too; SPUBLISH
    /// (`sharded`): the other nodes of this node's shard, its master and
    /// their replicas, deliver it (`clusterPropagatePublish`).
    pub fn publish(&mut self, channel: &[u8], message: &[u8], sharded: bool) -> Vec<Action> {
        let (channel, message) = (channel.to_vec(), message.to_vec());
        if !sharded {
            self.broadcast(Body::Publish { channel, message });
            return self.finish();
        }
        let links: Vec<LinkId> = self.shard_peers().filter_map(|n| n.link).collect();
        for link in links {
            self.send(
                link,
                Body::PublishShard {
                    channel: channel.clone(),
                    message: message.clone(),
                },
            );
        }
        self.finish()
    }

    /// The driver dropped a frame it could not read (bad signature or
    /// length, or a message that does not decode).
    pub fn note_dropped(&mut self) {
        self.stats.dropped += 1;
    }

    /// The driver closed a link whose send buffer exceeded
    /// `cluster-link-sendbuf-limit` (it still reports [`Cluster::closed`]).
    pub fn link_buffer_limit_exceeded(&mut self) {
        self.stats.links_buffer_limit_exceeded += 1;
    }

    // ----- Events ---------------------------------------------------------

    /// A connection was accepted on the bus port from `peer_ip`, on our
    /// address `local_ip`.
    pub fn accept(&mut self, now_ms: u64, peer_ip: &str, local_ip: &str) -> LinkId {
        let id = self.new_link(None, true, now_ms);
        let link = self.links.get_mut(&id).expect("new link");
        link.peer_ip = peer_ip.to_string();
        link.local_ip = local_ip.to_string();
        id
    }

    /// An outbound connection asked by [`Action::Connect`] is up, with our
    /// address `local_ip` on it: send the MEET or PING
    /// (`clusterLinkConnectHandler`).
    pub fn connected(
        &mut self,
        now_ms: u64,
        link: LinkId,
        local_ip: &str,
        rng: &mut dyn RngCore,
    ) -> Vec<Action> {
        let Some(l) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        l.local_ip = local_ip.to_string();
        l.up = true;
        let Some(node_id) = l.node else {
            return Vec::new();
        };
        let Some(node) = self.nodes.get(&node_id) else {
            return Vec::new();
        };
        let old_ping_sent = node.ping_sent;
        let kind = if node.has(flags::MEET) {
            msg_type::MEET
        } else {
            msg_type::PING
        };
        self.send_ping(now_ms, link, kind, rng);
        let node = self.nodes.get_mut(&node_id).expect("node of link");
        if old_ping_sent != 0 {
            node.ping_sent = old_ping_sent;
        }
        node.flags &= !flags::MEET;
        self.finish()
    }

    /// `link` failed to connect, broke, or was closed by the peer.
    pub fn closed(&mut self, now_ms: u64, link: LinkId) -> Vec<Action> {
        // The peer closed the connection or refused it: it may have died.
        // Its failure clock starts now as if a PING had gone unanswered
        // (PFAIL still takes the node timeout with no data, and any PONG
        // stops it), so a crashed node is flagged a node timeout after the
        // crash rather than after the next PING.
        // (Only our own link to it: a peer closing the link it opened to
        // us says nothing of the link we ping it on.)
        let node = self
            .links
            .get(&link)
            .filter(|l| !l.inbound)
            .and_then(|l| l.node);
        if let Some(n) = node.and_then(|id| self.nodes.get_mut(&id)) {
            if n.ping_sent == 0 && !n.has(flags::MYSELF | flags::HANDSHAKE) {
                n.ping_sent = now_ms;
            }
        }
        self.forget_link(link);
        self.finish()
    }

    /// A message arrived on `link` (`clusterProcessPacket` after its length
    /// checks, which [`wire::decode`] made).
    pub fn handle(
        &mut self,
        now_ms: u64,
        link: LinkId,
        msg: Msg,
        rng: &mut dyn RngCore,
    ) -> Vec<Action> {
        self.now = now_ms;
        self.process(now_ms, link, msg, rng);
        if self.election.todo {
            self.run_failover(now_ms, rng);
        }
        self.finish()
    }

    /// The cron, every [`TICK_MS`] (`clusterCron`): connects, pings, PFAIL.
    pub fn tick(&mut self, now_ms: u64, rng: &mut dyn RngCore) -> Vec<Action> {
        self.now = now_ms;
        self.cron(now_ms, rng);
        self.failover_cron(now_ms, rng);
        self.finish()
    }

    // ----- Internals ------------------------------------------------------

    fn finish(&mut self) -> Vec<Action> {
        if self.todo_update_state {
            self.todo_update_state = false;
            self.update_state();
        }
        let mut out = Vec::with_capacity(self.out.len() + 2);
        if std::mem::take(&mut self.todo_save) {
            out.push(Action::SaveConfig);
        }
        // Writers resume only once the shards route by the new map (a
        // paused write then meets the slot's new owner).
        let (rest, resume) = resume_last(std::mem::take(&mut self.out));
        out.extend(rest);
        if std::mem::take(&mut self.todo_slot_map) {
            out.push(Action::SlotMapChanged);
        }
        if !self.dirty_slots.is_empty() {
            out.push(Action::DropSlotKeys {
                slots: std::mem::take(&mut self.dirty_slots),
            });
        }
        out.extend(resume);
        self.invariants();
        out
    }

    fn fresh_id(&self, rng: &mut dyn RngCore) -> NodeId {
        loop {
            let id = NodeId::random(rng);
            if !self.nodes.contains_key(&id) {
                return id;
            }
        }
    }

    fn new_link(&mut self, node: Option<NodeId>, inbound: bool, now: u64) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        self.links.insert(
            id,
            Link {
                node,
                inbound,
                ctime: now,
                peer_ip: String::new(),
                local_ip: String::new(),
                up: inbound,
                send_allocated: 0,
                send_used: 0,
            },
        );
        id
    }

    /// Drops a link from the tables (`freeClusterLink`) without asking the
    /// driver to close it.
    fn forget_link(&mut self, link: LinkId) {
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        if let Some(n) = l.node.and_then(|id| self.nodes.get_mut(&id)) {
            if n.link == Some(link) {
                n.link = None;
            }
            if n.inbound_link == Some(link) {
                n.inbound_link = None;
                // Its core ports came on this link; a node that restarts
                // without them must not keep being named by them. It sends
                // them again on its next link.
                if n.cores.take().is_some() {
                    self.todo_slot_map = true;
                }
            }
        }
    }

    /// Forgets a link and asks the driver to close it.
    fn free_link(&mut self, link: LinkId) {
        if self.links.contains_key(&link) {
            self.forget_link(link);
            self.out.push(Action::Close { link });
        }
    }

    fn max_epoch(&self) -> u64 {
        let max = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        max.max(self.current_epoch)
    }

    fn add_slot(&mut self, node: NodeId, slot: u16) {
        if self.slots[slot as usize].is_some() {
            self.del_slot(slot);
        }
        let Some(n) = self.nodes.get_mut(&node) else {
            return;
        };
        n.slots.set(slot, true);
        n.numslots += 1;
        self.slots[slot as usize] = Some(node);
        self.todo_slot_map = true;
    }

    fn del_slot(&mut self, slot: u16) {
        if let Some(owner) = self.slots[slot as usize].take() {
            if owner == self.myself {
                self.migrating.remove(&slot);
            }
            if let Some(n) = self.nodes.get_mut(&owner) {
                n.slots.set(slot, false);
                n.numslots -= 1;
            }
            self.not_claimed.set(slot, false);
            self.todo_slot_map = true;
        }
    }

    /// Removes a node and everything that points at it (`clusterDelNode`).
    fn del_node(&mut self, id: NodeId) {
        if id == self.myself {
            return;
        }
        for slot in 0..SLOTS as u16 {
            if self.slots[slot as usize] == Some(id) {
                self.del_slot(slot);
            }
        }
        self.migrating.retain(|_, n| *n != id);
        self.importing.retain(|_, n| *n != id);
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|(r, _)| *r != id);
            if n.slaveof == Some(id) {
                n.slaveof = None;
            }
        }
        if let Some(n) = self.nodes.remove(&id) {
            for link in [n.link, n.inbound_link].into_iter().flatten() {
                self.free_link(link);
            }
        }
        // Inbound links whose node was learned from this ID.
        let orphans: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.node == Some(id))
            .map(|(k, _)| *k)
            .collect();
        for link in orphans {
            self.free_link(link);
        }
        self.todo_save = true;
        self.todo_update_state = true;
    }

    /// A handshake node learns its real name (`clusterRenameNode`).
    fn rename_node(&mut self, old: NodeId, new: NodeId) {
        let Some(mut n) = self.nodes.remove(&old) else {
            return;
        };
        n.id = new;
        for peer in self
            .migrating
            .values_mut()
            .chain(self.importing.values_mut())
        {
            if *peer == old {
                *peer = new;
            }
        }
        for link in self.links.values_mut() {
            if link.node == Some(old) {
                link.node = Some(new);
            }
        }
        self.nodes.insert(new, n);
    }

    fn set_node_as_master(&mut self, id: NodeId) {
        let myself = self.myself;
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        if n.is_master() {
            return;
        }
        if n.slaveof.is_some() && id != myself {
            n.flags |= flags::MIGRATE_TO;
        }
        n.flags &= !flags::SLAVE;
        n.flags |= flags::MASTER;
        n.slaveof = None;
        self.todo_save = true;
        self.todo_update_state = true;
    }

    /// The header every message of ours carries (`clusterBuildMessageHdr`).
    fn header(&self) -> Header {
        let me = &self.nodes[&self.myself];
        // A replica announces its master's slots and config epoch.
        let master = me
            .slaveof
            .filter(|_| me.has(flags::SLAVE))
            .and_then(|m| self.nodes.get(&m));
        let shown = master.unwrap_or(me);
        // A master paused for a manual failover tells the offset its
        // writers stopped at.
        let mut mflags = [0; 3];
        let mut offset = self.repl_offset;
        if let Some(paused) = self.election.mf_paused_offset.filter(|_| me.is_master()) {
            mflags[0] |= crate::wire::mflags0::PAUSED;
            offset = paused;
        }
        Header {
            port: self.config.port,
            current_epoch: self.current_epoch,
            config_epoch: shown.config_epoch,
            offset: offset.max(0) as u64,
            sender: self.myself,
            myslots: shown.slots.clone(),
            slaveof: master.map_or(NodeId::NULL, |m| m.id),
            myip: self.config.announce_ip.clone(),
            pport: self.config.pport,
            cport: self.config.cport,
            flags: me.flags,
            state: self.state,
            mflags,
        }
    }

    fn send(&mut self, link: LinkId, body: Body) {
        self.send_with(link, self.header(), body);
    }

    fn send_with(&mut self, link: LinkId, header: Header, body: Body) {
        let kind = body.msg_type() as usize;
        if kind < MSG_TYPES {
            self.stats.sent[kind] += 1;
        }
        self.out.push(Action::Send {
            link,
            msg: Msg { header, body },
        });
    }

    /// To every node with an outbound link (`clusterBroadcastMessage`).
    fn broadcast(&mut self, body: Body) {
        let links: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .collect();
        for link in links {
            self.send(link, body.clone());
        }
    }

    fn gossip_entry(n: &Node) -> GossipEntry {
        GossipEntry {
            node: n.id,
            ping_sent: (n.ping_sent / 1000) as u32,
            pong_received: (n.pong_received / 1000) as u32,
            ip: n.ip.clone(),
            port: n.port,
            cport: n.cport,
            flags: n.flags,
            pport: n.pport,
        }
    }

    /// The `i`th node in ID order, in constant time: from a list of the
    /// IDs made again when the nodes' count changed or it names a node
    /// gone (`nth` on the map walked it: each ping cost the square of the
    /// nodes known, which a flood of MEETs or gossip entries makes many,
    /// and a cron pinging each of them their cube).
    fn node_at(&mut self, i: usize) -> Option<NodeId> {
        let stale = |c: &Self| {
            c.node_ids.len() != c.nodes.len()
                || c.node_ids
                    .get(i)
                    .is_some_and(|id| !c.nodes.contains_key(id))
        };
        if stale(self) {
            self.node_ids = self.nodes.keys().copied().collect();
        }
        self.node_ids.get(i).copied()
    }

    /// A PING, PONG or MEET with its gossip section (`clusterSendPing`):
    /// max(3, nodes/10) random healthy nodes that have a link or slots, then
    /// every PFAIL node.
    fn send_ping(&mut self, now: u64, link: LinkId, kind: u16, rng: &mut dyn RngCore) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let (inbound, link_node) = (l.inbound, l.node);
        self.pings_built += 1;
        let stamp = self.pings_built;
        let total = self.nodes.len() as i64;
        let mut freshnodes = total - 2;
        let wanted = (total / 10).max(3).min(freshnodes);
        if !inbound && kind == msg_type::PING {
            if let Some(n) = link_node.and_then(|id| self.nodes.get_mut(&id)) {
                n.ping_sent = now;
            }
        }
        let mut entries = Vec::new();
        let mut iterations = wanted * 3;
        while freshnodes > 0 && (entries.len() as i64) < wanted && iterations > 0 {
            iterations -= 1;
            let pick = (rng.next_u64() % self.nodes.len() as u64) as usize;
            let Some(id) = self.node_at(pick) else {
                break;
            };
            let Some(n) = self.nodes.get_mut(&id) else {
                break;
            };
            if n.has(flags::MYSELF) || n.has(flags::PFAIL) {
                continue;
            }
            if n.has(flags::HANDSHAKE | flags::NOADDR) || (n.link.is_none() && n.numslots == 0) {
                freshnodes -= 1;
                continue;
            }
            if n.last_in_ping_gossip == stamp {
                continue;
            }
            n.last_in_ping_gossip = stamp;
            entries.push(Self::gossip_entry(n));
            freshnodes -= 1;
        }
        let pfail = self
            .nodes
            .values()
            .filter(|n| n.has(flags::PFAIL) && !n.has(flags::HANDSHAKE | flags::NOADDR))
            .take(self.pfail_nodes)
            .map(Self::gossip_entry);
        entries.extend(pfail);
        let mut extensions = Vec::new();
        if !self.config.hostname.is_empty() {
            extensions.push(PingExt::Hostname(self.config.hostname.clone()));
        }
        let gossip = Gossip {
            entries,
            extensions,
        };
        let body = match kind {
            msg_type::PONG => Body::Pong(gossip),
            msg_type::MEET => Body::Meet(gossip),
            _ => Body::Ping(gossip),
        };
        self.send(link, body);
    }

    /// The node that sent `msg` on `link`, if known and named
    /// (`getNodeFromLinkAndMsg`); ties an inbound link to it.
    fn sender_of(&mut self, link: LinkId, sender: &NodeId) -> Option<NodeId> {
        let l = self.links.get(&link)?;
        if let Some(n) = l.node.and_then(|id| self.nodes.get(&id)) {
            if !n.has(flags::HANDSHAKE) {
                return Some(n.id);
            }
        }
        if !self.nodes.contains_key(sender) || *sender == self.myself {
            return None;
        }
        if l.node.is_none() {
            // `setClusterNodeToInboundClusterLink`: one inbound link per node.
            let old = self.nodes[sender].inbound_link;
            if let Some(old) = old.filter(|&o| o != link) {
                self.free_link(old);
            }
            self.links.get_mut(&link).expect("link").node = Some(*sender);
            self.nodes.get_mut(sender).expect("sender").inbound_link = Some(link);
        }
        Some(*sender)
    }

    fn process(&mut self, now: u64, link: LinkId, msg: Msg, rng: &mut dyn RngCore) {
        if !self.links.contains_key(&link) {
            return;
        }
        let h = &msg.header;
        let kind = msg.body.msg_type();
        if (kind as usize) < MSG_TYPES {
            self.stats.received[kind as usize] += 1;
        }
        let sender = self.sender_of(link, &h.sender);
        let handshake = matches!(kind, msg_type::PING | msg_type::MEET | msg_type::PONG);
        if sender.is_none() && !handshake {
            // Only a PING, MEET or PONG may come from a node not known yet.
            self.stats.dropped += 1;
            return;
        }
        let mut sender_config_epoch = 0;
        if let Some(s) = sender {
            let node = self.nodes.get_mut(&s).expect("sender");
            node.data_received = now;
            if !node.has(flags::HANDSHAKE) {
                sender_config_epoch = h.config_epoch;
                if h.current_epoch > self.current_epoch {
                    self.current_epoch = h.current_epoch;
                    self.todo_save = true;
                }
                if h.config_epoch > node.config_epoch {
                    node.config_epoch = h.config_epoch;
                    self.todo_save = true;
                }
                self.note_sender(s, h);
            }
        }
        match &msg.body {
            Body::Ping(g) | Body::Meet(g) | Body::Pong(g) => {
                let g = g.clone();
                self.process_ping(now, link, &msg, sender, sender_config_epoch, &g, rng);
            }
            Body::Fail { about } => {
                let Some(s) = sender else { return };
                let Some(failing) = self.nodes.get_mut(about) else {
                    return;
                };
                if !failing.has(flags::FAIL | flags::MYSELF) {
                    failing.flags |= flags::FAIL;
                    failing.flags &= !flags::PFAIL;
                    failing.fail_time = now;
                    self.todo_save = true;
                    self.todo_update_state = true;
                    self.out.push(Action::Log {
                        warning: false,
                        line: format!("FAIL message received from {s} about {about}"),
                    });
                    self.failed_now(*about);
                }
            }
            Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {
                if let Some(s) = sender {
                    self.process_failover_msg(now, s, &msg);
                }
            }
            Body::Update {
                config_epoch,
                node,
                slots,
            } => {
                if sender.is_none() {
                    return;
                }
                let Some(n) = self.nodes.get(node) else {
                    return;
                };
                if n.config_epoch >= *config_epoch {
                    return;
                }
                if n.has(flags::SLAVE) {
                    self.set_node_as_master(*node);
                }
                self.nodes.get_mut(node).expect("node").config_epoch = *config_epoch;
                self.todo_save = true;
                self.update_slots_config_with(*node, *config_epoch, slots);
            }
            Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
                self.out.push(Action::Deliver {
                    channel: channel.clone(),
                    message: message.clone(),
                    shard: matches!(msg.body, Body::PublishShard { .. }),
                });
            }
            Body::Module {
                module_id,
                kind,
                payload,
            } if *module_id == cores::MODULE_ID && *kind == cores::MODULE_KIND => {
                let Some(s) = sender else { return };
                match CorePorts::decode(payload) {
                    Some(map) => {
                        let node = self.nodes.get_mut(&s).expect("sender");
                        let map = (!map.ports.is_empty()).then(|| Box::new(map));
                        if node.cores != map {
                            node.cores = map;
                            self.todo_slot_map = true;
                        }
                    }
                    None => self.stats.dropped += 1,
                }
            }
            Body::Unknown { msg_type, .. } => self.out.push(Action::Log {
                warning: true,
                line: format!("Received unknown packet type: {msg_type}"),
            }),
            // Other modules' messages: none is loaded here, as in a Redis
            // without modules.
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn process_ping(
        &mut self,
        now: u64,
        link: LinkId,
        msg: &Msg,
        mut sender: Option<NodeId>,
        sender_config_epoch: u64,
        gossip: &Gossip,
        rng: &mut dyn RngCore,
    ) {
        let h = &msg.header;
        let kind = msg.body.msg_type();
        let l = self.links[&link].clone();
        if kind == msg_type::PING || kind == msg_type::MEET {
            // Learn our own address from the socket a MEET came in on.
            let me = self.nodes.get_mut(&self.myself).expect("myself");
            if (kind == msg_type::MEET || me.ip.is_empty())
                && self.config.announce_ip.is_empty()
                && !l.local_ip.is_empty()
                && me.ip != l.local_ip
            {
                me.ip = l.local_ip.clone();
                self.todo_save = true;
                self.todo_slot_map = true;
            }
            if sender.is_none() && kind == msg_type::MEET {
                let mut n = Node::new(self.fresh_id(rng), flags::HANDSHAKE, now);
                n.ip = if h.myip.is_empty() {
                    l.peer_ip.clone()
                } else {
                    h.myip.clone()
                };
                n.port = h.port;
                n.pport = h.pport;
                n.cport = h.cport;
                self.nodes.insert(n.id, n);
                self.todo_save = true;
                self.process_gossip(now, None, gossip);
            }
            self.send_ping(now, link, msg_type::PONG, rng);
        }

        if !l.inbound {
            let Some(node_id) = l.node else { return };
            let Some(node) = self.nodes.get(&node_id) else {
                return;
            };
            if node.has(flags::HANDSHAKE) {
                if let Some(s) = sender {
                    // We know this node already under its real name.
                    if self.update_address(s, link, h) {
                        self.todo_save = true;
                        self.todo_update_state = true;
                    }
                    self.del_node(node_id);
                    return;
                }
                if self.nodes.contains_key(&h.sender) || h.sender == self.myself {
                    self.del_node(node_id);
                    return;
                }
                if NodeId::parse(&h.sender.0).is_none() {
                    // A name nodes.conf could not hold: ignored, the
                    // handshake times out.
                    return;
                }
                self.rename_node(node_id, h.sender);
                let node = self.nodes.get_mut(&h.sender).expect("renamed");
                node.flags &= !flags::HANDSHAKE;
                node.flags |= h.flags & (flags::MASTER | flags::SLAVE);
                self.todo_save = true;
            } else if node_id != h.sender {
                // Another node answers at this address now.
                let node = self.nodes.get_mut(&node_id).expect("node");
                node.flags |= flags::NOADDR;
                node.ip.clear();
                node.port = 0;
                node.pport = 0;
                node.cport = 0;
                self.free_link(link);
                self.todo_save = true;
                return;
            }
        }

        if let Some(s) = sender {
            let node = self.nodes.get_mut(&s).expect("sender");
            node.flags = (node.flags & !flags::NOFAILOVER) | (h.flags & flags::NOFAILOVER);
            if kind == msg_type::PING
                && !node.has(flags::HANDSHAKE)
                && self.update_address(s, link, h)
            {
                self.todo_save = true;
                self.todo_update_state = true;
            }
        }

        if !l.inbound && kind == msg_type::PONG {
            if let Some(node) = self.links.get(&link).and_then(|l| l.node) {
                let n = self.nodes.get_mut(&node).expect("node of link");
                n.pong_received = now;
                n.ping_sent = 0;
                if n.has(flags::PFAIL) {
                    n.flags &= !flags::PFAIL;
                    self.todo_save = true;
                    self.todo_update_state = true;
                } else if n.has(flags::FAIL) {
                    self.clear_failure_if_needed(now, node);
                }
            }
        }

        // A master that serves slots, claiming in a message older than its
        // config epoch to be a replica: sent before its promotion and
        // delivered after (over the other connection). Its role and slots
        // are not taken from it (Redis 7.2's "Ignore stale message").
        let stale = sender.is_some_and(|s| {
            let n = &self.nodes[&s];
            !h.slaveof.is_null()
                && n.is_master()
                && n.numslots > 0
                && h.config_epoch < n.config_epoch
        });
        if stale {
            sender = None;
        }

        // Role: master or replica of whom.
        if let Some(s) = sender {
            if h.slaveof.is_null() {
                self.set_node_as_master(s);
            } else {
                let master = self.nodes.contains_key(&h.slaveof).then_some(h.slaveof);
                if self.nodes[&s].is_master() {
                    for slot in 0..SLOTS as u16 {
                        if self.slots[slot as usize] == Some(s) {
                            self.del_slot(slot);
                        }
                    }
                    let n = self.nodes.get_mut(&s).expect("sender");
                    n.flags &= !(flags::MASTER | flags::MIGRATE_TO);
                    n.flags |= flags::SLAVE;
                    self.todo_save = true;
                    self.todo_update_state = true;
                }
                let n = &self.nodes[&s];
                if master.is_some() && n.slaveof != master && master != Some(s) {
                    let attached = self.attach();
                    let n = self.nodes.get_mut(&s).expect("sender");
                    n.slaveof = master;
                    n.attached = attached;
                    self.todo_save = true;
                }
                // A master that has had a replica may get a migrating one
                // when it has none left (`clusterNodeAddSlave`).
                if let Some(m) = master.filter(|&m| m != s) {
                    self.nodes.get_mut(&m).expect("known").flags |= flags::MIGRATE_TO;
                }
            }
        }

        // Slots: adopt newer claims, tell senders with older ones.
        let mut dirty = false;
        if let Some(s) = sender {
            let n = &self.nodes[&s];
            let master = if n.is_master() { Some(s) } else { n.slaveof };
            if let Some(m) = master.and_then(|m| self.nodes.get(&m)) {
                dirty = m.slots != h.myslots;
            }
            sender = Some(s);
        }
        if let (Some(s), true) = (sender, dirty) {
            if self.nodes[&s].is_master() {
                self.update_slots_config_with(s, sender_config_epoch, &h.myslots);
            }
            self.maybe_send_update(s, sender_config_epoch, &h.myslots);
        }

        if let Some(s) = sender {
            let me = &self.nodes[&self.myself];
            let other = &self.nodes[&s];
            if me.is_master() && other.is_master() && sender_config_epoch == me.config_epoch {
                self.handle_config_epoch_collision(s);
            }
            self.process_gossip(now, Some(s), gossip);
            let hostname = gossip
                .extensions
                .iter()
                .find_map(|e| match e {
                    PingExt::Hostname(h) => Some(h.clone()),
                    PingExt::Unknown { .. } => None,
                })
                .unwrap_or_default();
            let n = self.nodes.get_mut(&s).expect("sender");
            if n.hostname != hostname {
                n.hostname = hostname;
                self.todo_save = true;
                self.todo_slot_map = true;
            }
        }
    }

    /// The sender claims slots that a node with a greater config epoch owns
    /// in our view: send it one UPDATE about that node.
    fn maybe_send_update(
        &mut self,
        sender: NodeId,
        sender_config_epoch: u64,
        claimed: &SlotBitmap,
    ) {
        // Only claimed slots the sender does not own can be stale claims.
        let mut stale = claimed.clone();
        if let Some(n) = self.nodes.get(&sender) {
            for (b, o) in stale.0.iter_mut().zip(n.slots.0.iter()) {
                *b &= !o;
            }
        }
        for slot in stale.iter() {
            let Some(owner) = self.slots[slot as usize] else {
                continue;
            };
            if owner == sender || self.not_claimed.get(slot) {
                continue;
            }
            let owner = &self.nodes[&owner];
            if owner.config_epoch > sender_config_epoch {
                let mut slots = owner.slots.clone();
                for (b, nc) in slots.0.iter_mut().zip(self.not_claimed.0.iter()) {
                    *b &= !nc;
                }
                let body = Body::Update {
                    config_epoch: owner.config_epoch,
                    node: owner.id,
                    slots,
                };
                if let Some(link) = self.nodes[&sender].link {
                    self.send(link, body);
                }
                return;
            }
        }
    }

    /// The node's address from the message, or the socket's peer
    /// (`nodeUpdateAddressIfNeeded`). Returns whether it changed.
    fn update_address(&mut self, id: NodeId, link: LinkId, h: &Header) -> bool {
        let Some(l) = self.links.get(&link) else {
            return false;
        };
        let ip = if h.myip.is_empty() {
            l.peer_ip.clone()
        } else {
            h.myip.clone()
        };
        let Some(n) = self.nodes.get_mut(&id) else {
            return false;
        };
        if n.link == Some(link) || ip.is_empty() {
            return false;
        }
        if n.port == h.port && n.cport == h.cport && n.pport == h.pport && n.ip == ip {
            return false;
        }
        n.ip = ip;
        n.port = h.port;
        n.pport = h.pport;
        n.cport = h.cport;
        n.flags &= !flags::NOADDR;
        if let Some(old) = n.link {
            self.free_link(old);
        }
        // MOVED and ASK name it by its address.
        self.todo_slot_map = true;
        true
    }

    /// `clusterUpdateSlotsConfigWith`: bind to `sender` every slot it claims
    /// that is unbound, or bound to a node with an older config epoch (and
    /// not being imported).
    fn update_slots_config_with(&mut self, sender: NodeId, epoch: u64, claimed: &SlotBitmap) {
        if sender == self.myself {
            return;
        }
        // Only the slots the sender owns or claims can change, and of those
        // only the claimed slots it does not own yet need a decision: the
        // rest is a word-wide update of `not_claimed` (nearly every message
        // of a stable cluster claims exactly what the sender owns).
        let Some(owned) = self.nodes.get(&sender).map(|n| n.slots.clone()) else {
            return;
        };
        // This node's shard: itself, or the master it replicates.
        let me = &self.nodes[&self.myself];
        let curmaster = if me.is_master() {
            Some(self.myself)
        } else {
            me.slaveof
        };
        let (mut new_master, mut migrated_ours) = (false, 0);
        let mut dirty = Vec::new();
        let mut taken = Vec::new();
        for i in 0..SLOTS / 64 {
            let (o, c) = (owned.word(i), claimed.word(i));
            if o != 0 {
                // Owned and claimed: claimed again; owned, not claimed: not.
                let nc = self.not_claimed.word(i);
                self.not_claimed.set_word(i, (nc & !(o & c)) | (o & !c));
            }
            let mut new = c & !o;
            while new != 0 {
                taken.push((i * 64) as u16 + new.trailing_zeros() as u16);
                new &= new - 1;
            }
        }
        for slot in taken {
            let owner = self.slots[slot as usize];
            if self.importing.contains_key(&slot) {
                continue;
            }
            let older = match owner {
                None => true,
                Some(o) => self.not_claimed.get(slot) || self.nodes[&o].config_epoch < epoch,
            };
            if older {
                if owner == Some(self.myself) {
                    dirty.push(slot);
                }
                if owner.is_some() && owner == curmaster {
                    new_master = true;
                    migrated_ours += 1;
                }
                self.del_slot(slot);
                self.add_slot(sender, slot);
                self.todo_save = true;
                self.todo_update_state = true;
            }
        }
        // Failed over (this master) or our master was: follow the node
        // that took the slots, whose full resync replaces the keys.
        let shard_empty = curmaster
            .and_then(|m| self.nodes.get(&m))
            .is_some_and(|m| m.numslots == 0);
        if new_master
            && shard_empty
            && (self.config.allow_replica_migration || claimed.count() == migrated_ours)
        {
            self.out.push(Action::Log {
                warning: true,
                line: format!(
                    "Configuration change detected. Reconfiguring myself as a replica of {sender}"
                ),
            });
            self.set_my_master(sender);
            return;
        }
        self.dirty_slots.extend(dirty);
        let me = &self.nodes[&self.myself];
        if let Some(grand) = me
            .slaveof
            .and_then(|m| self.nodes.get(&m))
            .filter(|m| m.has(flags::SLAVE))
            .and_then(|m| m.slaveof)
            .filter(|&g| g != self.myself)
        {
            self.out.push(Action::Log {
                warning: true,
                line: format!(
                    "I'm a sub-replica! Reconfiguring myself as a replica of grandmaster {grand}"
                ),
            });
            self.set_my_master(grand);
        }
    }

    /// Two masters with the same config epoch: the one with the smaller ID
    /// takes a new epoch (`clusterHandleConfigEpochCollision`).
    fn handle_config_epoch_collision(&mut self, sender: NodeId) {
        let me = &self.nodes[&self.myself];
        let other = &self.nodes[&sender];
        if other.config_epoch != me.config_epoch || !other.is_master() || !me.is_master() {
            return;
        }
        if sender <= self.myself {
            return;
        }
        // A peer may have set it to the largest value.
        self.current_epoch = self.current_epoch.saturating_add(1);
        self.nodes
            .get_mut(&self.myself)
            .expect("myself")
            .config_epoch = self.current_epoch;
        self.todo_save = true;
    }

    /// `clusterProcessGossipSection`.
    fn process_gossip(&mut self, now: u64, sender: Option<NodeId>, gossip: &Gossip) {
        let sender_is_master = sender
            .and_then(|s| self.nodes.get(&s))
            .is_some_and(|n| n.is_master());
        for g in &gossip.entries {
            let failing = g.flags & (flags::FAIL | flags::PFAIL) != 0;
            if self.nodes.contains_key(&g.node) {
                if let (Some(s), true, false) = (sender, sender_is_master, g.node == self.myself) {
                    if failing {
                        self.add_failure_report(now, g.node, s);
                        self.mark_failing_if_needed(now, g.node);
                    } else {
                        self.del_failure_report(now, g.node, s);
                    }
                }
                let timeout = self.config.node_timeout_ms;
                let node = self.nodes.get_mut(&g.node).expect("known");
                if !failing && node.ping_sent == 0 && live_reports(node, now, timeout) == 0 {
                    let pong = u64::from(g.pong_received) * 1000;
                    if pong <= now + 500 && pong > node.pong_received {
                        node.pong_received = pong;
                    }
                }
                let moved = !node.ip.eq_ignore_ascii_case(&g.ip)
                    || node.port != g.port
                    || node.cport != g.cport;
                if node.has(flags::FAIL | flags::PFAIL)
                    && g.flags & flags::NOADDR == 0
                    && !failing
                    && moved
                {
                    // Others reach it at a new address: reconnect there.
                    let old = node.link;
                    node.ip = g.ip.clone();
                    node.port = g.port;
                    node.pport = g.pport;
                    node.cport = g.cport;
                    node.flags &= !flags::NOADDR;
                    if let Some(old) = old {
                        self.free_link(old);
                    }
                }
            } else if sender.is_some()
                && g.flags & flags::NOADDR == 0
                && NodeId::parse(&g.node.0).is_some()
                && !self.is_banned(now, &g.node)
            {
                let mut node_flags = g.flags & !(flags::MYSELF | flags::HANDSHAKE | flags::MEET);
                // Never both: a sender may claim anything.
                if node_flags & flags::FAIL != 0 {
                    node_flags &= !flags::PFAIL;
                }
                let mut n = Node::new(g.node, node_flags, now);
                n.ip = g.ip.clone();
                n.port = g.port;
                n.pport = g.pport;
                n.cport = g.cport;
                self.nodes.insert(n.id, n);
            }
        }
    }

    fn add_failure_report(&mut self, now: u64, failing: NodeId, reporter: NodeId) {
        let n = self.nodes.get_mut(&failing).expect("failing node");
        match n.fail_reports.iter_mut().find(|(r, _)| *r == reporter) {
            Some(report) => report.1 = now,
            None => n.fail_reports.push((reporter, now)),
        }
    }

    fn del_failure_report(&mut self, now: u64, node: NodeId, reporter: NodeId) {
        let timeout = self.config.node_timeout_ms;
        let n = self.nodes.get_mut(&node).expect("node");
        let before = n.fail_reports.len();
        n.fail_reports.retain(|(r, _)| *r != reporter);
        if n.fail_reports.len() != before {
            live_reports(n, now, timeout);
        }
    }

    /// `markNodeAsFailingIfNeeded`: PFAIL plus reports from a majority of
    /// the masters serving slots (this node included if a master) → FAIL,
    /// broadcast.
    fn mark_failing_if_needed(&mut self, now: u64, id: NodeId) {
        let quorum = self.size() / 2 + 1;
        let me_master = self.nodes[&self.myself].is_master();
        let timeout = self.config.node_timeout_ms;
        let n = self.nodes.get_mut(&id).expect("node");
        if !n.has(flags::PFAIL) || n.has(flags::FAIL) {
            return;
        }
        let failures = live_reports(n, now, timeout) + usize::from(me_master);
        if failures < quorum {
            return;
        }
        n.flags &= !flags::PFAIL;
        n.flags |= flags::FAIL;
        n.fail_time = now;
        self.out.push(Action::Failing { node: id });
        self.failed_now(id);
        self.broadcast(Body::Fail { about: id });
        self.todo_save = true;
        self.todo_update_state = true;
    }

    /// `clearNodeFailureIfNeeded`: a reachable node leaves FAIL at once if it
    /// serves no slots, else once the FAIL is old enough that nobody took
    /// its slots over.
    fn clear_failure_if_needed(&mut self, now: u64, id: NodeId) {
        let undo = self.config.node_timeout_ms * FAIL_UNDO_TIME_MULT;
        let n = self.nodes.get_mut(&id).expect("node");
        let line = if n.has(flags::SLAVE) || n.numslots == 0 {
            let what = if n.has(flags::SLAVE) {
                "replica"
            } else {
                "master without slots"
            };
            format!("Clear FAIL state for node {id}: {what} is reachable again.")
        } else if n.is_master() && now.saturating_sub(n.fail_time) > undo {
            format!("Clear FAIL state for node {id}: is reachable again and nobody is serving its slots after some time.")
        } else {
            return;
        };
        n.flags &= !flags::FAIL;
        self.todo_save = true;
        self.todo_update_state = true;
        self.out.push(Action::Log {
            warning: false,
            line,
        });
    }

    /// `clusterUpdateState`: fail when a slot is unserved (full coverage)
    /// or a majority of masters is unreachable. A master becomes ok no
    /// sooner than [`WRITABLE_DELAY_MS`] after the first update (a
    /// restarted master may have been failed over meanwhile) and a rejoin
    /// delay after it was last among a minority.
    fn update_state(&mut self) {
        let now = self.now;
        if self.first_update == 0 {
            self.first_update = now.max(1);
        }
        let me_master = self.nodes[&self.myself].is_master();
        if me_master && self.state != 0 && now.saturating_sub(self.first_update) < WRITABLE_DELAY_MS
        {
            return;
        }
        let mut ok = true;
        if self.config.require_full_coverage {
            // Every slot has an owner, and no owner is failing (a node's
            // `numslots` counts the slots it owns).
            let (mut owned, mut failing) = (0, false);
            for n in self.nodes.values() {
                owned += n.numslots;
                failing |= n.numslots > 0 && n.has(flags::FAIL);
            }
            ok = owned == SLOTS && !failing;
        }
        let masters: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| n.is_master() && n.numslots > 0)
            .collect();
        let reachable = masters
            .iter()
            .filter(|n| !n.has(flags::FAIL | flags::PFAIL))
            .count();
        if reachable < masters.len() / 2 + 1 {
            ok = false;
            self.among_minority_time = now;
        }
        let state = if ok { 0 } else { 1 };
        let rejoin = self
            .config
            .node_timeout_ms
            .clamp(REJOIN_DELAY_MIN_MS, REJOIN_DELAY_MAX_MS);
        if ok && me_master && now.saturating_sub(self.among_minority_time) < rejoin {
            return;
        }
        if state != self.state {
            self.state = state;
            self.todo_slot_map = true;
        }
    }

    /// Sends this node's core ports to each node that knows us (it has a
    /// link to us) and has not had them on its current link since they
    /// last changed, or for [`CORES_RESEND_MS`].
    fn send_cores(&mut self, now: u64) {
        if self.cores_gen == 0 {
            return;
        }
        // Turned off: an empty map says so.
        let payload = match &self.nodes[&self.myself].cores {
            Some(c) => c.encode(),
            None => CorePorts {
                ports: Vec::new(),
                core: vec![cores::NO_CORE; SLOTS],
            }
            .encode(),
        };
        let gen = self.cores_gen;
        let due: Vec<(NodeId, LinkId)> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE | flags::NOADDR))
            .filter(|n| n.inbound_link.is_some())
            .filter_map(|n| {
                let link = n.link.filter(|l| self.links.get(l).is_some_and(|l| l.up))?;
                let fresh = n.cores_sent.is_some_and(|(l, g, at)| {
                    l == link && g == gen && now.saturating_sub(at) < CORES_RESEND_MS
                });
                (!fresh).then_some((n.id, link))
            })
            .collect();
        for (id, link) in due {
            self.send(
                link,
                Body::Module {
                    module_id: cores::MODULE_ID,
                    kind: cores::MODULE_KIND,
                    payload: payload.clone(),
                },
            );
            self.nodes.get_mut(&id).expect("node").cores_sent = Some((link, gen, now));
        }
    }

    fn cron(&mut self, now: u64, rng: &mut dyn RngCore) {
        self.iteration += 1;
        let timeout = self.config.node_timeout_ms;
        let handshake_timeout = timeout.max(HANDSHAKE_TIMEOUT_MIN_MS);
        self.pfail_nodes = 0;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            if n.has(flags::MYSELF | flags::NOADDR) {
                continue;
            }
            if n.has(flags::PFAIL) {
                self.pfail_nodes += 1;
            }
            if n.has(flags::HANDSHAKE) && now.saturating_sub(n.ctime) > handshake_timeout {
                self.del_node(*id);
                continue;
            }
            if n.link.is_none() {
                let (ip, cport) = (n.ip.clone(), n.cport);
                let link = self.new_link(Some(*id), false, now);
                self.nodes.get_mut(id).expect("node").link = Some(link);
                self.out.push(Action::Connect { link, ip, cport });
            }
        }

        // One random ping a second, to the oldest pong of five random picks.
        if self.iteration.is_multiple_of(10) {
            let mut best: Option<(u64, LinkId)> = None;
            for _ in 0..5 {
                let pick = (rng.next_u64() % self.nodes.len() as u64) as usize;
                let Some(n) = self.nodes.values().nth(pick) else {
                    continue;
                };
                let Some(link) = n.link else { continue };
                if n.ping_sent != 0 || n.has(flags::MYSELF | flags::HANDSHAKE) {
                    continue;
                }
                if best.is_none_or(|(pong, _)| pong > n.pong_received) {
                    best = Some((n.pong_received, link));
                }
            }
            if let Some((_, link)) = best {
                self.send_ping(now, link, msg_type::PING, rng);
            }
        }

        self.send_cores(now);

        let mut new_pfail = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(n) = self.nodes.get(&id) else {
                continue;
            };
            if n.has(flags::MYSELF | flags::NOADDR | flags::HANDSHAKE) {
                continue;
            }
            let ping_delay = now.saturating_sub(n.ping_sent);
            let data_delay = now.saturating_sub(n.data_received);
            if let Some(link) = n.link {
                let age = now.saturating_sub(self.links[&link].ctime);
                if age > timeout
                    && n.ping_sent != 0
                    && ping_delay > timeout / 2
                    && data_delay > timeout / 2
                {
                    // Silent for too long: reconnect, maybe the link is stuck.
                    self.free_link(link);
                }
            }
            let n = &self.nodes[&id];
            if let Some(link) = n.link {
                if n.ping_sent == 0 && now.saturating_sub(n.pong_received) > timeout / 2 {
                    self.send_ping(now, link, msg_type::PING, rng);
                    continue;
                }
            }
            if n.ping_sent == 0 {
                continue;
            }
            if ping_delay.min(data_delay) > timeout && !n.has(flags::PFAIL | flags::FAIL) {
                self.nodes.get_mut(&id).expect("node").flags |= flags::PFAIL;
                self.todo_update_state = true;
                // Counted for the gossip sections from now on.
                self.pfail_nodes += 1;
                // The reports of others may already make it a FAIL, and
                // ours reaches them at once rather than with the next PING.
                self.mark_failing_if_needed(now, id);
                new_pfail = true;
            }
        }
        if new_pfail {
            self.broadcast_pong(now, false, rng);
        }
        if self.state != 0 {
            self.todo_update_state = true;
        }
    }

    /// Checks the invariants listed on [`Cluster`] (debug builds only).
    pub fn invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let me = &self.nodes[&self.myself];
        assert!(me.has(flags::MYSELF));
        assert!(me.is_master() != me.has(flags::SLAVE));
        assert_eq!(
            self.nodes.values().filter(|n| n.has(flags::MYSELF)).count(),
            1
        );
        for (slot, owner) in self.slots.iter().enumerate() {
            if let Some(o) = owner {
                assert!(
                    self.nodes[o].slots.get(slot as u16),
                    "slot {slot} not in its owner's bitmap"
                );
            }
        }
        for n in self.nodes.values() {
            assert_eq!(n.slots.count(), n.numslots);
            for slot in n.slots.iter() {
                assert_eq!(self.slots[slot as usize], Some(n.id));
            }
            assert!(!(n.has(flags::PFAIL) && n.has(flags::FAIL)));
            if let Some(l) = n.link {
                assert!(!self.links[&l].inbound);
                assert_eq!(self.links[&l].node, Some(n.id));
            }
            if let Some(l) = n.inbound_link {
                assert!(self.links[&l].inbound);
                assert_eq!(self.links[&l].node, Some(n.id));
            }
        }
        for (slot, to) in &self.migrating {
            assert_eq!(self.slots[*slot as usize], Some(self.myself));
            assert!(self.nodes.contains_key(to));
        }
        for from in self.importing.values() {
            assert!(self.nodes.contains_key(from));
        }
    }
}

/// Drops expired failure reports (`clusterNodeCleanupFailureReports`) and
/// returns how many are left.
fn live_reports(n: &mut Node, now: u64, node_timeout_ms: u64) -> usize {
    let max_age = node_timeout_ms * FAIL_REPORT_VALIDITY_MULT;
    n.fail_reports
        .retain(|(_, t)| now.saturating_sub(*t) <= max_age);
    n.fail_reports.len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    pub(crate) const T0: u64 = 1_700_000_000_000;

    /// Node `i` of the unit tests: ID `000…0<a+i>`, port 7000+i, 10.0.0.i.
    pub(crate) fn node(i: u8) -> Cluster {
        let mut id = [b'0'; 40];
        id[39] = b'a' + i;
        let mut config = Config::new(7000 + i as u16);
        config.announce_ip = format!("10.0.0.{i}");
        config.node_timeout_ms = 1000;
        Cluster::new(NodeId(id), config, T0)
    }

    fn sends(actions: &[Action]) -> Vec<(LinkId, Msg)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { link, msg } => Some((*link, msg.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn meet_handshake_renames_the_node() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut a, mut b) = (node(0), node(1));
        a.meet(T0, "10.0.0.1", 7001, 17001, &mut rng).unwrap();
        let acts = a.tick(T0, &mut rng);
        let Some(Action::Connect {
            link: a_out,
            ip,
            cport,
        }) = acts
            .iter()
            .find(|a| matches!(a, Action::Connect { .. }))
            .cloned()
        else {
            panic!("no connect: {acts:?}")
        };
        assert_eq!((ip.as_str(), cport), ("10.0.0.1", 17001));
        let meet = sends(&a.connected(T0, a_out, "10.0.0.0", &mut rng));
        assert!(matches!(meet[0].1.body, Body::Meet(_)));
        let b_in = b.accept(T0, "10.0.0.0", "10.0.0.1");
        let pong = sends(&b.handle(T0, b_in, meet[0].1.clone(), &mut rng));
        assert!(matches!(pong[0].1.body, Body::Pong(_)));
        // b now has a handshake node for a, under a random name.
        assert_eq!(b.nodes().len(), 2);
        a.handle(T0 + 1, a_out, pong[0].1.clone(), &mut rng);
        let ids: Vec<NodeId> = a.nodes().iter().map(|n| n.id).collect();
        assert!(ids.contains(&b.myself()), "renamed to b's ID");
        assert!(a.nodes().iter().all(|n| n.flags & flags::HANDSHAKE == 0));
    }

    /// `a` meets the node at 10.0.0.1:7001: the link its tick opens.
    fn dial(a: &mut Cluster, rng: &mut StdRng) -> LinkId {
        a.meet(T0, "10.0.0.1", 7001, 17001, rng).unwrap();
        let acts = a.tick(T0, rng);
        let Some(Action::Connect { link, .. }) = acts
            .into_iter()
            .find(|a| matches!(a, Action::Connect { .. }))
        else {
            panic!()
        };
        link
    }

    #[test]
    fn config_epoch_collision_moves_the_smaller_id() {
        let mut rng = StdRng::seed_from_u64(2);
        let (mut a, b) = (node(0), node(1));
        // a learns of b (through a handshake done by hand) then hears its PING.
        let link = dial(&mut a, &mut rng);
        a.connected(T0, link, "10.0.0.0", &mut rng);
        let mut pong = Msg {
            header: b.header(),
            body: Body::Pong(Gossip::default()),
        };
        a.handle(T0, link, pong.clone(), &mut rng);
        assert_eq!(a.config_epoch(), 0);
        pong.header.current_epoch = 0;
        a.handle(T0 + 10, link, pong, &mut rng);
        // a's ID ends in 'a' < b's 'b': a moves to a new epoch.
        assert_eq!(a.config_epoch(), 1);
        assert_eq!(a.current_epoch(), 1);
    }

    /// A message of a type not known, from a known node, is logged as
    /// Redis logs it, and changes nothing.
    #[test]
    fn an_unknown_message_type_is_logged() {
        let mut rng = StdRng::seed_from_u64(3);
        let (mut a, mut b) = (node(0), node(1));
        let link = dial(&mut a, &mut rng);
        let meet = sends(&a.connected(T0, link, "10.0.0.0", &mut rng));
        let b_in = b.accept(T0, "10.0.0.0", "10.0.0.1");
        let pong = sends(&b.handle(T0, b_in, meet[0].1.clone(), &mut rng));
        a.handle(T0 + 1, link, pong[0].1.clone(), &mut rng);
        let before = crate::nodes_conf::render(&a.nodes_conf());
        let odd = Msg {
            header: b.header(),
            body: Body::Unknown {
                msg_type: 77,
                data: Vec::new(),
            },
        };
        let acts = a.handle(T0 + 2, link, odd, &mut rng);
        assert!(acts.contains(&Action::Log {
            warning: true,
            line: "Received unknown packet type: 77".into()
        }));
        assert_eq!(crate::nodes_conf::render(&a.nodes_conf()), before);
    }

    /// This node's address, ports, hostname and `nofailover` flag come
    /// from the running configuration, not from nodes.conf (which a
    /// change of port, announced IP or hostname made stale).
    #[test]
    fn myself_follows_the_configuration_not_nodes_conf() {
        let a = "a".repeat(40);
        let text = format!(
            "{a} 10.0.0.9:7005@17005,oldhost myself,master,nofailover - 0 0 1 connected 0-16383\nvars currentEpoch 1 lastVoteEpoch 0\n"
        );
        let conf = crate::nodes_conf::parse(&text).unwrap();
        let mut config = Config::new(7000);
        config.announce_ip = "10.0.0.1".into();
        config.hostname = "newhost".into();
        let c = Cluster::from_conf(&conf, config, T0).unwrap();
        let line = crate::nodes_conf::render(&c.nodes_conf());
        let me = line.lines().find(|l| l.contains("myself")).unwrap();
        assert!(
            me.contains(" 10.0.0.1:7000@17000,newhost myself,master - "),
            "{me}"
        );
        let map = c.slot_map(crate::slotmap::EndpointType::Ip);
        assert_eq!(map.nodes[0].port, 7000);
    }

    #[test]
    fn nodes_conf_round_trip() {
        let mut a = node(0);
        a.add_slots(&[0, 1, 2, 100]).unwrap();
        let conf = a.nodes_conf();
        let text = crate::nodes_conf::render(&conf);
        assert!(
            text.contains("myself,master - 0 0 0 connected 0-2 100"),
            "{text}"
        );
        let back = Cluster::from_conf(
            &crate::nodes_conf::parse(&text).unwrap(),
            a.config.clone(),
            T0,
        )
        .unwrap();
        assert_eq!(crate::nodes_conf::render(&back.nodes_conf()), text);
    }

    /// A node started from `text`, its outbound links up, and an inbound
    /// link from B (which holds slots 8001-16383).
    fn from_text(text: &str, rng: &mut StdRng) -> (Cluster, LinkId) {
        let conf = crate::nodes_conf::parse(text).unwrap();
        let mut config = Config::new(7000);
        config.announce_ip = "10.0.0.1".into();
        config.node_timeout_ms = 1000;
        let mut c = Cluster::from_conf(&conf, config, T0).unwrap();
        for a in c.tick(T0, rng) {
            if let Action::Connect { link, .. } = a {
                c.connected(T0, link, "10.0.0.1", rng);
            }
        }
        let inbound = c.accept(T0, "10.0.0.2", "10.0.0.1");
        (c, inbound)
    }

    fn two_masters(epochs: &str) -> String {
        format!(
            "{} 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-8000\n\
             {} 10.0.0.2:7000@17000 master - 0 0 2 connected 8001-16383\n{epochs}\n",
            "a".repeat(40),
            "b".repeat(40)
        )
    }

    fn ping_from_b(current_epoch: u64, config_epoch: u64, gossip: Gossip) -> Msg {
        let mut myslots = SlotBitmap::new();
        (8001..SLOTS as u16).for_each(|s| myslots.set(s, true));
        Msg {
            header: Header {
                port: 7000,
                current_epoch,
                config_epoch,
                offset: 0,
                sender: NodeId([b'b'; 40]),
                myslots,
                slaveof: NodeId::NULL,
                myip: String::new(),
                pport: 0,
                cport: 17000,
                flags: flags::MASTER,
                state: 0,
                mflags: [0; 3],
            },
            body: Body::Ping(gossip),
        }
    }

    /// Regression: a peer announcing currentEpoch 2^64-1 and this node's
    /// config epoch made the collision handling overflow (a panic in debug
    /// builds, epoch 0 in release); then CLUSTER BUMPEPOCH did.
    #[test]
    fn epoch_at_its_limit_does_not_overflow() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut a, link) = from_text(
            &two_masters("vars currentEpoch 3 lastVoteEpoch 0"),
            &mut rng,
        );
        a.handle(
            T0 + 1,
            link,
            ping_from_b(u64::MAX, 3, Gossip::default()),
            &mut rng,
        );
        assert_eq!(a.current_epoch(), u64::MAX);
        assert_eq!(a.config_epoch(), u64::MAX);
        let (mut a, link) = from_text(
            &two_masters("vars currentEpoch 3 lastVoteEpoch 0"),
            &mut rng,
        );
        a.handle(
            T0 + 1,
            link,
            ping_from_b(u64::MAX, 2, Gossip::default()),
            &mut rng,
        );
        assert!(a.bump_epoch().0);
        assert_eq!(a.config_epoch(), u64::MAX);
    }

    /// Regression: a replica loaded with currentEpoch 2^64-1 overflowed
    /// when its failed master's election started.
    #[test]
    fn election_at_the_last_epoch_does_not_overflow() {
        let mut rng = StdRng::seed_from_u64(1);
        let text = format!(
            "{a} 10.0.0.1:7000@17000 master,fail - 0 0 3 connected 0-16383\n\
             {c} 10.0.0.3:7000@17000 myself,slave {a} 0 0 3 connected\n\
             vars currentEpoch 18446744073709551615 lastVoteEpoch 0\n",
            a = "a".repeat(40),
            c = "c".repeat(40)
        );
        let (mut c, _) = from_text(&text, &mut rng);
        let mut started = false;
        for i in 1..30 {
            let actions = c.tick(T0 + i * TICK_MS, &mut rng);
            started |= actions.iter().any(|a| {
                matches!(a, Action::Log { line, .. } if line.starts_with("Starting a failover election"))
            });
        }
        assert!(started);
        assert_eq!(c.current_epoch(), u64::MAX);
    }

    /// Regression: a gossip entry flagged both PFAIL and FAIL about a new
    /// node broke the "never both" invariant (a debug-build panic).
    #[test]
    fn gossiped_node_flagged_pfail_and_fail_keeps_fail() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut a, link) = from_text(
            &two_masters("vars currentEpoch 3 lastVoteEpoch 0"),
            &mut rng,
        );
        let new = NodeId([b'f'; 40]);
        let entry = GossipEntry {
            node: new,
            ping_sent: 0,
            pong_received: 0,
            ip: "10.0.0.6".into(),
            port: 7000,
            cport: 17000,
            flags: flags::MASTER | flags::PFAIL | flags::FAIL,
            pport: 0,
        };
        let gossip = Gossip {
            entries: vec![entry],
            extensions: Vec::new(),
        };
        a.handle(T0 + 1, link, ping_from_b(3, 2, gossip), &mut rng);
        assert_eq!(a.node_flags(&new), Some(flags::MASTER | flags::FAIL));
    }

    /// Regression: a node name nodes.conf cannot hold, gossiped or given
    /// in a handshake reply, was adopted; the saved file then did not load.
    #[test]
    fn names_nodes_conf_cannot_hold_are_not_adopted() {
        let mut rng = StdRng::seed_from_u64(1);
        let (mut a, link) = from_text(
            &two_masters("vars currentEpoch 3 lastVoteEpoch 0"),
            &mut rng,
        );
        let mut bad = [b'f'; 40];
        bad[0] = 0;
        let entry = GossipEntry {
            node: NodeId(bad),
            ping_sent: 0,
            pong_received: 0,
            ip: "10.0.0.6".into(),
            port: 7000,
            cport: 17000,
            flags: flags::MASTER,
            pport: 0,
        };
        let gossip = Gossip {
            entries: vec![entry],
            extensions: Vec::new(),
        };
        a.handle(T0 + 1, link, ping_from_b(3, 2, gossip), &mut rng);
        assert_eq!(a.node_flags(&NodeId(bad)), None);
        // A handshake answered by a PONG under such a name.
        a.meet(T0 + 2, "10.0.0.7", 7000, 17000, &mut rng).unwrap();
        let out = a
            .tick(T0 + 2, &mut rng)
            .into_iter()
            .find_map(|x| match x {
                Action::Connect { link, .. } => Some(link),
                _ => None,
            })
            .unwrap();
        a.connected(T0 + 2, out, "10.0.0.1", &mut rng);
        let mut pong = ping_from_b(3, 0, Gossip::default());
        pong.header.sender = NodeId(bad);
        pong.header.myslots = SlotBitmap::new();
        pong.body = Body::Pong(Gossip::default());
        a.handle(T0 + 3, out, pong, &mut rng);
        assert_eq!(a.node_flags(&NodeId(bad)), None);
        let text = crate::nodes_conf::render(&a.nodes_conf());
        assert!(crate::nodes_conf::parse(&text).is_ok(), "{text}");
    }

    /// Regression: nodes.conf with myself neither or both master and
    /// slave, or a node both "fail?" and "fail", panicked on the
    /// invariants when loaded.
    #[test]
    fn conf_with_impossible_flags() {
        let config = Config::new(7000);
        for flags_text in ["myself", "myself,master,slave", "myself,noflags"] {
            let text = format!(
                "{} 10.0.0.1:7000@17000 {flags_text} - 0 0 0 connected\n",
                "a".repeat(40)
            );
            let conf = crate::nodes_conf::parse(&text).unwrap();
            let e = Cluster::from_conf(&conf, config.clone(), T0).err();
            assert!(e.is_some_and(|e| e.contains("either master or slave")));
        }
        let text = format!(
            "{} 10.0.0.1:7000@17000 myself,master - 0 0 0 connected\n\
             {} 10.0.0.2:7000@17000 master,fail?,fail - 0 0 0 connected\n",
            "a".repeat(40),
            "b".repeat(40)
        );
        let conf = crate::nodes_conf::parse(&text).unwrap();
        let c = Cluster::from_conf(&conf, config, T0).unwrap();
        assert_eq!(
            c.node_flags(&NodeId([b'b'; 40])),
            Some(flags::MASTER | flags::FAIL)
        );
    }
}
