//! Deterministic simulation of the cluster bus: N state machines exchange
//! messages through a simulated network driven by one seeded RNG.
//!
//! Two families of seeds share the network and the checks:
//! - `simulation`: 3 to 7 masters, no replicas, slot moves among the faults.
//! - `failover_simulation`: 3 to 5 masters with 0 to 2 replicas each (made
//!   with CLUSTER REPLICATE), whose replication offsets the simulation
//!   models ([`Sim::replication`]); some seeds also run CLUSTER FAILOVER
//!   FORCE or TAKEOVER on a random replica.
//!
//! Messages on one connection arrive in order, as over TCP (two nodes have
//! two connections, one each way, so their messages may still cross).
//! Faults: message delay, loss and duplication, partitions (the TCP links
//! stay up but carry nothing, as a cut cable), pauses (SIGSTOP: no ticks,
//! nothing received) and crashes (kill -9) with a restart from the last
//! saved `nodes.conf` (through its text). Every message goes through
//! `wire::encode` / `wire::decode`.
//!
//! Checked after every step:
//! - a node's currentEpoch never decreases (restarts included), nor its own
//!   configEpoch while it is a master;
//! - a node flags another FAIL on its own only when a majority of the
//!   masters (in its view) had it PFAIL or FAIL within the report validity
//!   window (2 x node timeout, plus the network's delay), and any other FAIL
//!   comes from one of those;
//! - a node grants at most one failover vote per epoch, across its restarts
//!   ("Failover auth granted to X for epoch E");
//! - at most one election is won per epoch ("Failover election won", for
//!   the epoch of the node's last "Starting a failover election");
//! - no two nodes that are masters in their own view claim a slot with the
//!   same config epoch (unless one of the two epochs was taken without
//!   consensus, by CLUSTER FAILOVER TAKEOVER or by the SETSLOT NODE that
//!   ends an import: Redis resolves such collisions afterwards).
//!
//! Checked once faults heal: every view converges (all nodes known, none
//! flagged, the same roles and masters, the same owner for every slot,
//! distinct config epochs among masters, cluster ok), so a resumed or
//! restarted node is cleared.
//!
//! Focused scenarios: a crashed master with replicas is replaced by one of
//! them, once, within node timeout x 3 + 3 s (one election retry more after
//! a split vote between replicas of equal rank), and comes back as its replica
//! without serving its old slots again; with a majority of masters down no
//! replica is promoted.
//!
//! `SEEDS=n` runs seeds 0..n of each random family (default 2000 and 1000);
//! `SEED=s` replays one seed, and `TRACE=1` prints its faults and log lines.
//! A failure prints the seed and the step.

use cluster::nodes_conf;
use cluster::state::{Action, Cluster, Config, FailoverMode, LinkId, TICK_MS};
use cluster::wire::{self, flags, Msg};
use cluster::{NodeId, SLOTS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const NODE_TIMEOUT_MS: u64 = 1000;
const DELAY_MAX_MS: u64 = 20;
const LOSS: f64 = 0.01;
const DUPLICATION: f64 = 0.01;
const T0: u64 = 1_700_000_000_000;
/// A report is valid 2 x node timeout after it arrives; it left its sender
/// at most the network's delay earlier.
const REPORT_WINDOW_MS: u64 = 2 * NODE_TIMEOUT_MS + 2 * DELAY_MAX_MS + TICK_MS;
/// Bytes a master's offset grows by, at most, per tick while it is up.
const WRITES_PER_TICK: i64 = 1000;
/// How far, at most, a connected replica's applied offset lags its master's.
const REPLICA_LAG_MAX: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Up,
    Paused,
    Down,
}

/// A slot claim: a node that is a master in its own view, its config epoch
/// and the slots it owns (inclusive runs).
type Claim = (u64, Vec<(u16, u16)>);

struct SimNode {
    cluster: Cluster,
    life: Life,
    /// Bumped at each restart: events for an older incarnation are stale.
    incarnation: u64,
    /// The last `nodes.conf` text saved.
    saved: String,
    /// Highest currentEpoch seen, across restarts.
    epoch_high: u64,
    /// Highest own configEpoch seen while a master, across restarts.
    config_epoch_high: u64,
    /// Flags of every node in this view after the last step.
    view: BTreeMap<NodeId, u16>,
    /// Replication offset: written (master) or applied (replica).
    offset: i64,
    /// When this replica last heard from its master (0: not since it
    /// started).
    last_contact: u64,
    /// The epoch of this incarnation's last "Starting a failover election".
    election_epoch: Option<u64>,
    /// What this node claims, `None` unless up (or paused) and a master.
    claim: Option<Claim>,
}

/// The cluster a seed builds.
struct Setup {
    masters: usize,
    /// The number of replicas of each master.
    replicas: Vec<usize>,
    /// Slot moves among the faults (only without replicas: a move makes a
    /// config epoch without consensus).
    slot_moves: bool,
    /// CLUSTER FAILOVER FORCE / TAKEOVER among the faults.
    manual_failovers: bool,
}

impl Setup {
    /// `simulation`'s: 3 to 7 masters, no replicas.
    fn masters_only(seed: u64) -> Setup {
        let masters = 3 + (seed % 5) as usize;
        Setup {
            masters,
            replicas: vec![0; masters],
            slot_moves: true,
            manual_failovers: false,
        }
    }

    /// `failover_simulation`'s: 3 to 5 masters, 0 to 2 replicas each, at
    /// least one replica.
    fn with_replicas(seed: u64) -> Setup {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_f00d);
        let masters = 3 + (seed % 3) as usize;
        let mut replicas: Vec<usize> = (0..masters).map(|_| rng.gen_range(0..=2)).collect();
        if replicas.iter().all(|&r| r == 0) {
            replicas[0] = 1;
        }
        Setup {
            masters,
            replicas,
            slot_moves: false,
            manual_failovers: seed % 2 == 1,
        }
    }
}

enum Ev {
    Tick(usize),
    ConnectResult {
        from: usize,
        inc: u64,
        link: LinkId,
        to: usize,
    },
    Deliver {
        to: usize,
        inc: u64,
        link: LinkId,
        from: usize,
        bytes: Vec<u8>,
    },
    Closed {
        node: usize,
        inc: u64,
        link: LinkId,
    },
    Fault,
}

/// The focused scenario's watch over a failed-over master that restarted:
/// the other views keep `winner` as the owner of its old slots, and it
/// never serves them (cluster ok while it owns one).
struct Watch {
    old: usize,
    winner: NodeId,
    slots: Vec<u16>,
}

struct Sim {
    seed: u64,
    trace: bool,
    now: u64,
    step: u64,
    rng: StdRng,
    setup: Setup,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    events: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    /// (node, incarnation, link) → (peer, its incarnation, its link).
    conns: HashMap<(usize, u64, LinkId), (usize, u64, LinkId)>,
    /// When the last message sent on a connection arrives, by its
    /// receiving end.
    arrival: HashMap<(usize, u64, LinkId), u64>,
    /// Messages sent on links still connecting.
    pending: HashMap<(usize, u64, LinkId), Vec<Msg>>,
    /// Partition group of each node.
    group: Vec<u8>,
    /// Last time node a's view had node b PFAIL or FAIL: [a][b].
    flagged_at: Vec<Vec<Option<u64>>>,
    /// Some node reached FAIL about b by quorum.
    fail_origin: Vec<bool>,
    faults: bool,
    /// (voter, epoch) → the node it voted for.
    votes: HashMap<(usize, u64), NodeId>,
    /// Epoch → the node that won its election.
    winners: BTreeMap<u64, usize>,
    /// Every election started: (epoch, node).
    elections: Vec<(u64, usize)>,
    /// Every election won: (time, node, epoch).
    promotions: Vec<(u64, usize, u64)>,
    /// (node, config epoch) taken without consensus: by CLUSTER FAILOVER
    /// TAKEOVER, or by the SETSLOT NODE that ends an import.
    unilateral: BTreeSet<(usize, u64)>,
    watch: Option<Watch>,
}

fn ip(i: usize) -> String {
    format!("10.0.0.{i}")
}

fn is_master(c: &Cluster) -> bool {
    c.node_flags(&c.myself())
        .is_some_and(|f| f & flags::MASTER != 0)
}

/// What `c` claims if it is a master in its own view.
fn claim_of(c: &Cluster) -> Option<Claim> {
    if !is_master(c) {
        return None;
    }
    let me = c.myself();
    let line = c.node_lines().into_iter().find(|n| n.id == me)?;
    Some((c.config_epoch(), line.slots))
}

fn overlap(a: &[(u16, u16)], b: &[(u16, u16)]) -> Option<u16> {
    a.iter().find_map(|&(s1, e1)| {
        b.iter()
            .find(|&&(s2, e2)| s1 <= e2 && s2 <= e1)
            .map(|&(s2, _)| s1.max(s2))
    })
}

impl Sim {
    fn new(seed: u64, trace: bool, setup: Setup) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let masters = setup.masters;
        let n = masters + setup.replicas.iter().sum::<usize>();
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let id = NodeId::random(&mut rng);
            let mut c = Cluster::new(id, config(i), T0);
            if i < masters {
                let start = (i * SLOTS / masters) as u16;
                let end = ((i + 1) * SLOTS / masters) as u16;
                c.add_slots(&(start..end).collect::<Vec<u16>>()).unwrap();
            }
            let saved = nodes_conf::render(&c.nodes_conf());
            ids.push(id);
            nodes.push(SimNode {
                epoch_high: c.current_epoch(),
                config_epoch_high: 0,
                claim: claim_of(&c),
                cluster: c,
                life: Life::Up,
                incarnation: 0,
                saved,
                view: BTreeMap::new(),
                offset: 0,
                last_contact: 0,
                election_epoch: None,
            });
        }
        let mut sim = Sim {
            seed,
            trace,
            now: T0,
            step: 0,
            rng,
            setup,
            nodes,
            ids,
            events: BTreeMap::new(),
            seq: 0,
            conns: HashMap::new(),
            arrival: HashMap::new(),
            pending: HashMap::new(),
            group: vec![0; n],
            flagged_at: vec![vec![None; n]; n],
            fail_origin: vec![false; n],
            faults: false,
            votes: HashMap::new(),
            winners: BTreeMap::new(),
            elections: Vec::new(),
            promotions: Vec::new(),
            unilateral: BTreeSet::new(),
            watch: None,
        };
        for i in 0..n {
            let phase = sim.rng.gen_range(0..TICK_MS);
            sim.at(phase, Ev::Tick(i));
        }
        // As `redis-cli --cluster create`: the first node meets the others.
        for j in 1..n {
            let (s, r) = (&mut sim.nodes[0].cluster, &mut sim.rng);
            s.meet(T0, &ip(j), 6379, 16379, r).unwrap();
        }
        sim
    }

    /// Builds the cluster: every node meets, then the replicas replicate.
    fn create(&mut self) {
        self.converge(30_000, "cluster creation");
        let masters = self.setup.masters;
        let mut r = masters;
        for m in 0..masters {
            for _ in 0..self.setup.replicas[m] {
                let id = self.ids[m];
                let actions = self.nodes[r]
                    .cluster
                    .replicate(id, 0)
                    .unwrap_or_else(|e| self.fail(&format!("node {r} REPLICATE {m}: {e}")));
                self.after(r, actions, None);
                r += 1;
            }
        }
        if r > masters {
            self.converge(30_000, "replicas joining");
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} step {} at +{} ms: {what}\nreplay: SEED={} cargo test --release -p cluster --test sim",
            self.seed,
            self.step,
            self.now - T0,
            self.seed
        );
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), ev);
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b] && self.nodes[b].life == Life::Up
    }

    /// Runs events until `until`.
    fn run(&mut self, until: u64) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((time, _), ev) = entry.remove_entry();
            self.now = time;
            self.step += 1;
            self.event(ev);
        }
        self.now = until;
    }

    /// What node `i` reports to [`Cluster::set_replication`] before a tick:
    /// a master writes (its offset grows while it is up), a replica applies
    /// its master's stream with a small lag while both are up and can reach
    /// each other, and its data ages from its last contact otherwise.
    fn replication(&mut self, i: usize) -> (i64, u64) {
        let master = self.nodes[i].cluster.my_master().map(|m| m.0);
        let Some(master) = master else {
            self.nodes[i].offset += self.rng.gen_range(0..=WRITES_PER_TICK);
            return (self.nodes[i].offset, 0);
        };
        match self.index(&master) {
            Some(j) if self.reachable(i, j) => {
                let lag = self.rng.gen_range(0..=REPLICA_LAG_MAX);
                // A replica ahead of its new master resyncs to its offset.
                self.nodes[i].offset = (self.nodes[j].offset - lag).max(0);
                self.nodes[i].last_contact = self.now;
                (self.nodes[i].offset, 0)
            }
            _ => {
                let age = self.now - self.nodes[i].last_contact;
                (self.nodes[i].offset, age)
            }
        }
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(i) => {
                self.at(TICK_MS, Ev::Tick(i));
                if self.nodes[i].life != Life::Up {
                    return;
                }
                let (offset, data_age) = self.replication(i);
                self.nodes[i].cluster.set_replication(offset, data_age);
                let actions = self.nodes[i].cluster.tick(self.now, &mut self.rng);
                self.after(i, actions, None);
            }
            Ev::ConnectResult {
                from,
                inc,
                link,
                to,
            } => {
                if self.nodes[from].incarnation != inc || self.nodes[from].life == Life::Down {
                    return;
                }
                let key = (from, inc, link);
                let Some(queued) = self.pending.remove(&key) else {
                    return; // closed meanwhile
                };
                // A paused sender still has its kernel connect; it learns later.
                if !self.reachable(from, to) {
                    let actions = self.nodes[from].cluster.closed(self.now, link);
                    self.after(from, actions, None);
                    return;
                }
                let peer_inc = self.nodes[to].incarnation;
                let peer_link = self.nodes[to].cluster.accept(self.now, &ip(from), &ip(to));
                self.conns.insert(key, (to, peer_inc, peer_link));
                self.conns.insert((to, peer_inc, peer_link), key);
                for msg in queued {
                    self.transmit(from, link, &msg);
                }
                let actions =
                    self.nodes[from]
                        .cluster
                        .connected(self.now, link, &ip(from), &mut self.rng);
                self.after(from, actions, None);
            }
            Ev::Deliver {
                to,
                inc,
                link,
                from,
                bytes,
            } => {
                let n = &self.nodes[to];
                if n.incarnation != inc || n.life != Life::Up || self.group[from] != self.group[to]
                {
                    return;
                }
                if !self.conns.contains_key(&(to, inc, link)) {
                    return;
                }
                let msg =
                    wire::decode(&bytes).unwrap_or_else(|e| self.fail(&format!("decode: {e}")));
                let about = match &msg.body {
                    wire::Body::Fail { about } => Some(*about),
                    _ => None,
                };
                let actions = self.nodes[to]
                    .cluster
                    .handle(self.now, link, msg, &mut self.rng);
                self.after(to, actions, about);
            }
            Ev::Closed { node, inc, link } => {
                if self.nodes[node].incarnation != inc || self.nodes[node].life == Life::Down {
                    return;
                }
                let actions = self.nodes[node].cluster.closed(self.now, link);
                self.after(node, actions, None);
            }
            Ev::Fault => {
                if self.faults {
                    self.fault();
                    let next = self.rng.gen_range(200..2000);
                    self.at(next, Ev::Fault);
                }
            }
        }
    }

    /// Sends `msg` from node `i` over its link, through the codec.
    fn transmit(&mut self, i: usize, link: LinkId, msg: &Msg) {
        let inc = self.nodes[i].incarnation;
        let Some(&(to, peer_inc, peer_link)) = self.conns.get(&(i, inc, link)) else {
            return;
        };
        // Loss and duplication only while faults run: creation is a MEET per
        // node that Redis never repeats (over TCP it is never lost).
        if self.group[i] != self.group[to] || (self.faults && self.rng.gen_bool(LOSS)) {
            return;
        }
        let bytes = wire::encode(msg);
        let copies = if self.faults && self.rng.gen_bool(DUPLICATION) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            // In order on one connection, as TCP: never before the last one.
            let mut delay = self.rng.gen_range(1..=DELAY_MAX_MS);
            let last = self.arrival.entry((to, peer_inc, peer_link)).or_insert(0);
            delay = delay.max(last.saturating_sub(self.now));
            *last = self.now + delay;
            let ev = Ev::Deliver {
                to,
                inc: peer_inc,
                link: peer_link,
                from: i,
                bytes: bytes.clone(),
            };
            self.at(delay, ev);
        }
    }

    /// Performs node `i`'s actions, then checks its invariants. `fail_msg`:
    /// the step delivered a FAIL message about this node.
    fn after(&mut self, i: usize, actions: Vec<Action>, fail_msg: Option<NodeId>) {
        let inc = self.nodes[i].incarnation;
        let mut by_quorum = Vec::new();
        let mut changed = false;
        for a in actions {
            match a {
                Action::SaveConfig => {
                    self.nodes[i].saved = nodes_conf::render(&self.nodes[i].cluster.nodes_conf());
                    changed = true;
                }
                Action::Connect {
                    link,
                    ip: addr,
                    cport,
                } => {
                    let to = (0..self.nodes.len()).find(|&j| ip(j) == addr && cport == 16379);
                    self.pending.insert((i, inc, link), Vec::new());
                    match to {
                        Some(to) => {
                            let delay = self.rng.gen_range(1..=DELAY_MAX_MS);
                            self.at(
                                delay,
                                Ev::ConnectResult {
                                    from: i,
                                    inc,
                                    link,
                                    to,
                                },
                            );
                        }
                        None => self.fail(&format!("connect to unknown address {addr}:{cport}")),
                    }
                }
                Action::Send { link, msg } => {
                    if let Some(q) = self.pending.get_mut(&(i, inc, link)) {
                        q.push(msg);
                    } else {
                        self.transmit(i, link, &msg);
                    }
                }
                Action::Close { link } => {
                    self.pending.remove(&(i, inc, link));
                    if let Some(peer) = self.conns.remove(&(i, inc, link)) {
                        self.conns.remove(&peer);
                        self.arrival.remove(&peer);
                        self.arrival.remove(&(i, inc, link));
                        let delay = self.rng.gen_range(1..=DELAY_MAX_MS);
                        self.at(
                            delay,
                            Ev::Closed {
                                node: peer.0,
                                inc: peer.1,
                                link: peer.2,
                            },
                        );
                    }
                }
                Action::Failing { node } => by_quorum.push(node),
                Action::Log { line, .. } => self.log_line(i, &line),
                Action::SlotMapChanged => changed = true,
                Action::Deliver { .. }
                | Action::DropSlotKeys { .. }
                | Action::PauseWrites { .. } => {}
            }
        }
        self.check(i, &by_quorum, fail_msg);
        if changed {
            self.check_claim(i);
            self.check_watch(i);
        }
    }

    /// The failover's log lines: votes, elections started and won.
    fn log_line(&mut self, i: usize, line: &str) {
        if self.trace {
            eprintln!("+{} ms: node {i}: {line}", self.now - T0);
        }
        if let Some(rest) = line.strip_prefix("Failover auth granted to ") {
            let (who, epoch) = rest
                .split_once(" for epoch ")
                .unwrap_or_else(|| self.fail(&format!("node {i} logged {line:?}")));
            let epoch: u64 = epoch.parse().expect("epoch");
            let who = NodeId::parse(who.as_bytes()).expect("node ID");
            if let Some(before) = self.votes.insert((i, epoch), who) {
                self.fail(&format!(
                    "node {i} voted twice for epoch {epoch}: for {before}, then for {who}"
                ));
            }
        } else if let Some(rest) = line.strip_prefix("Starting a failover election for epoch ") {
            let epoch = rest.trim_end_matches('.').parse().expect("epoch");
            self.nodes[i].election_epoch = Some(epoch);
            self.elections.push((epoch, i));
        } else if line.starts_with("Failover election won") {
            let Some(epoch) = self.nodes[i].election_epoch else {
                self.fail(&format!("node {i} won an election it did not start"));
            };
            if let Some(other) = self.winners.insert(epoch, i) {
                self.fail(&format!(
                    "two elections won for epoch {epoch}: by node {other}, then by node {i}"
                ));
            }
            self.promotions.push((self.now, i, epoch));
        }
    }

    fn index(&self, id: &NodeId) -> Option<usize> {
        self.ids.iter().position(|x| x == id)
    }

    /// The per-step invariants for node `i`.
    fn check(&mut self, i: usize, by_quorum: &[NodeId], fail_msg: Option<NodeId>) {
        let epoch = self.nodes[i].cluster.current_epoch();
        if epoch < self.nodes[i].epoch_high {
            self.fail(&format!(
                "node {i} currentEpoch went back from {} to {epoch}",
                self.nodes[i].epoch_high
            ));
        }
        self.nodes[i].epoch_high = epoch;
        if is_master(&self.nodes[i].cluster) {
            let config_epoch = self.nodes[i].cluster.config_epoch();
            if config_epoch < self.nodes[i].config_epoch_high {
                self.fail(&format!(
                    "master {i}'s configEpoch went back from {} to {config_epoch}",
                    self.nodes[i].config_epoch_high
                ));
            }
            self.nodes[i].config_epoch_high = config_epoch;
        }
        let nodes = self.nodes[i].cluster.nodes();
        // The quorum of masters serving slots, in this node's view.
        let size = nodes
            .iter()
            .filter(|n| n.flags & flags::MASTER != 0 && n.numslots > 0)
            .count();
        let quorum = size / 2 + 1;
        let view: BTreeMap<NodeId, u16> = nodes.iter().map(|n| (n.id, n.flags)).collect();
        for (id, &f) in &view {
            let Some(x) = self.index(id) else { continue };
            let before = self.nodes[i].view.get(id).copied().unwrap_or(0);
            if f & (flags::PFAIL | flags::FAIL) != 0 || before & (flags::PFAIL | flags::FAIL) != 0 {
                self.flagged_at[i][x] = Some(self.now);
            }
            if f & flags::FAIL == 0 || before & flags::FAIL != 0 {
                continue;
            }
            if by_quorum.contains(id) {
                // Any node flagging it counts (reports come from masters
                // only, so this bounds them from above).
                let reporters = (0..self.nodes.len())
                    .filter(|&b| b != x)
                    .filter(|&b| {
                        self.flagged_at[b][x].is_some_and(|t| t + REPORT_WINDOW_MS >= self.now)
                    })
                    .count();
                if reporters < quorum {
                    self.fail(&format!(
                        "node {i} marked node {x} FAIL with {reporters} nodes flagging it in the window, quorum {quorum}"
                    ));
                }
                self.fail_origin[x] = true;
            } else if !self.fail_origin[x] {
                let how = if fail_msg == Some(*id) {
                    "a FAIL message"
                } else {
                    "gossip"
                };
                self.fail(&format!(
                    "node {i} learned node {x} FAIL from {how}, but nobody reached quorum"
                ));
            }
        }
        self.nodes[i].view = view;
    }

    /// No two masters (each in its own view) claim a slot with the same
    /// config epoch, unless one took its epoch without consensus.
    fn check_claim(&mut self, i: usize) {
        let claim = if self.nodes[i].life == Life::Down {
            None
        } else {
            claim_of(&self.nodes[i].cluster)
        };
        self.nodes[i].claim = claim;
        let Some((epoch, slots)) = &self.nodes[i].claim else {
            return;
        };
        if self.unilateral.contains(&(i, *epoch)) {
            return;
        }
        for (j, other) in self.nodes.iter().enumerate() {
            let Some((e, theirs)) = &other.claim else {
                continue;
            };
            if j == i || e != epoch || self.unilateral.contains(&(j, *e)) {
                continue;
            }
            if let Some(slot) = overlap(slots, theirs) {
                self.fail(&format!(
                    "masters {i} and {j} both claim slot {slot} with config epoch {epoch}"
                ));
            }
        }
    }

    fn check_watch(&mut self, i: usize) {
        let Some(w) = &self.watch else { return };
        let c = &self.nodes[i].cluster;
        if i == w.old {
            let me = c.myself();
            let serving = is_master(c)
                && c.state_ok()
                && w.slots.iter().any(|&s| c.slot_owner(s) == Some(me));
            if serving {
                self.fail(&format!(
                    "the old master {i} serves its old slots again (cluster ok)"
                ));
            }
        } else if let Some(&s) = w.slots.iter().find(|&&s| c.slot_owner(s) != Some(w.winner)) {
            self.fail(&format!(
                "node {i} gives slot {s} to {:?}, not to the new master",
                c.slot_owner(s).and_then(|o| self.index(&o))
            ));
        }
    }

    fn fault(&mut self) {
        let n = self.nodes.len();
        let i = self.rng.gen_range(0..n);
        match self.rng.gen_range(0..10) {
            0 | 1 => {
                for g in self.group.iter_mut() {
                    *g = 0;
                }
                let cut = self.rng.gen_range(1..n);
                for g in self.group.iter_mut().take(cut) {
                    *g = 1;
                }
                let k = self.rng.gen_range(0..n);
                self.group.rotate_left(k);
                self.log(format!("partition {:?}", self.group));
            }
            2 | 3 => {
                self.group.iter_mut().for_each(|g| *g = 0);
                self.log("heal".into());
            }
            4 | 5 => match self.nodes[i].life {
                Life::Up => {
                    self.nodes[i].life = Life::Paused;
                    self.log(format!("pause {i}"));
                }
                Life::Paused => {
                    self.nodes[i].life = Life::Up;
                    self.log(format!("resume {i}"));
                }
                Life::Down => {}
            },
            6 => match self.nodes[i].life {
                Life::Down => self.start(i),
                _ => self.crash(i),
            },
            7 if self.setup.slot_moves => self.move_slot(i),
            7 if self.setup.manual_failovers => self.manual_failover(i),
            _ => {}
        }
    }

    fn log(&self, what: String) {
        if self.trace {
            eprintln!("+{} ms: {what}", self.now - T0);
        }
    }

    /// Node `i` stops: its connections close on the peers' side.
    fn crash(&mut self, i: usize) {
        self.log(format!("crash {i}"));
        let inc = self.nodes[i].incarnation;
        let mine: Vec<_> = self
            .conns
            .keys()
            .filter(|k| k.0 == i && k.1 == inc)
            .copied()
            .collect();
        for k in mine {
            if let Some(peer) = self.conns.remove(&k) {
                self.conns.remove(&peer);
                self.arrival.remove(&peer);
                self.arrival.remove(&k);
                let delay = self.rng.gen_range(1..=DELAY_MAX_MS);
                self.at(
                    delay,
                    Ev::Closed {
                        node: peer.0,
                        inc: peer.1,
                        link: peer.2,
                    },
                );
            }
        }
        self.pending.retain(|k, _| k.0 != i);
        self.nodes[i].life = Life::Down;
        self.nodes[i].incarnation += 1;
        self.nodes[i].claim = None;
    }

    /// Node `i` starts again from its saved `nodes.conf` (its data too: the
    /// offset stays; a replica has not heard from its master yet).
    fn start(&mut self, i: usize) {
        self.log(format!("restart {i}"));
        let conf = nodes_conf::parse(&self.nodes[i].saved)
            .unwrap_or_else(|e| self.fail(&format!("saved nodes.conf: {e}")));
        let c = Cluster::from_conf(&conf, config(i), self.now).unwrap_or_else(|e| self.fail(&e));
        let node = &mut self.nodes[i];
        node.view = c.nodes().iter().map(|n| (n.id, n.flags)).collect();
        node.cluster = c;
        node.life = Life::Up;
        node.last_contact = 0;
        node.election_epoch = None;
        self.check(i, &[], None);
        self.check_claim(i);
        self.check_watch(i);
    }

    /// Node `i` takes a slot from its owner, as a reshard's last step
    /// (SETSLOT NODE on the target, which bumps its epoch, then the source).
    fn move_slot(&mut self, i: usize) {
        if self.nodes[i].life != Life::Up {
            return;
        }
        let slot = self.rng.gen_range(0..SLOTS as u16);
        let Some(owner) = self.nodes[i].cluster.slot_owner(slot) else {
            return;
        };
        let Some(src) = self.index(&owner).filter(|&s| s != i) else {
            return;
        };
        let boundary =
            (0..=self.nodes.len()).any(|k| (k * SLOTS / self.nodes.len()) as u16 == slot);
        if boundary {
            return; // keep the first slot of each node: nobody ends empty
        }
        self.log(format!("move slot {slot} from {src} to {i}"));
        let me = self.ids[i];
        let now = self.now;
        let actions = self.nodes[i]
            .cluster
            .setslot_importing(slot, owner)
            .unwrap();
        self.after(i, actions, None);
        let actions = self.nodes[i]
            .cluster
            .setslot_node(now, slot, me, 0, &mut self.rng)
            .unwrap();
        let epoch = self.nodes[i].cluster.config_epoch();
        self.unilateral.insert((i, epoch));
        self.after(i, actions, None);
        if self.nodes[src].life == Life::Up {
            let actions = self.nodes[src]
                .cluster
                .setslot_node(now, slot, me, 0, &mut self.rng)
                .unwrap();
            self.after(src, actions, None);
        }
    }

    /// CLUSTER FAILOVER FORCE (or, one time in four, TAKEOVER) on node `i`
    /// if it is an up replica. TAKEOVER only while every node is up and
    /// none is cut off: it takes the slots without a vote, so with its old
    /// master still voting on the other side of a partition two elections
    /// could each find a majority (Redis documents TAKEOVER as unsafe).
    fn manual_failover(&mut self, i: usize) {
        if self.nodes[i].life != Life::Up || is_master(&self.nodes[i].cluster) {
            return;
        }
        let calm =
            self.group.iter().all(|&g| g == 0) && self.nodes.iter().all(|n| n.life == Life::Up);
        let mode = if calm && self.rng.gen_range(0..4) == 0 {
            FailoverMode::Takeover
        } else {
            FailoverMode::Force
        };
        self.log(format!("CLUSTER FAILOVER {mode:?} on {i}"));
        let (offset, data_age) = self.replication(i);
        self.nodes[i].cluster.set_replication(offset, data_age);
        let now = self.now;
        match self.nodes[i].cluster.failover(now, mode, &mut self.rng) {
            Ok(actions) => {
                if mode == FailoverMode::Takeover {
                    let epoch = self.nodes[i].cluster.config_epoch();
                    self.unilateral.insert((i, epoch));
                }
                self.after(i, actions, None);
            }
            Err(e) => self.log(format!("refused: {e}")),
        }
    }

    /// Everyone back up and connected.
    fn heal_all(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        for i in 0..self.nodes.len() {
            match self.nodes[i].life {
                Life::Paused => self.nodes[i].life = Life::Up,
                Life::Down => self.start(i),
                Life::Up => {}
            }
        }
        self.log("heal all".into());
    }

    /// `None` when every view agrees, else what differs.
    fn divergence(&self) -> Option<String> {
        let n = self.nodes.len();
        let first = &self.nodes[0].cluster;
        let role = flags::MASTER | flags::SLAVE;
        let masters_of: Vec<Option<NodeId>> = self
            .nodes
            .iter()
            .map(|s| s.cluster.my_master().map(|m| m.0))
            .collect();
        for (i, node) in self.nodes.iter().enumerate() {
            let c = &node.cluster;
            let view = c.node_lines();
            if view.len() != n {
                return Some(format!("node {i} knows {} nodes, not {n}", view.len()));
            }
            for v in &view {
                let Some(x) = self.index(&v.id) else {
                    return Some(format!("node {i} knows a stranger {}", v.id));
                };
                if v.flags & (flags::PFAIL | flags::FAIL | flags::HANDSHAKE | flags::NOADDR) != 0 {
                    return Some(format!("node {i} flags node {x}: {:#x}", v.flags));
                }
                let own = &self.nodes[x].cluster;
                let own_flags = own.node_flags(&own.myself()).unwrap_or(0);
                if v.flags & role != own_flags & role {
                    return Some(format!(
                        "node {i} has node {x} with role {:#x}, not {:#x}",
                        v.flags & role,
                        own_flags & role
                    ));
                }
                if own_flags & flags::MASTER != 0 && v.config_epoch != own.config_epoch() {
                    return Some(format!(
                        "node {i} has node {x} at config epoch {}",
                        v.config_epoch
                    ));
                }
                if own_flags & flags::SLAVE != 0 && v.master != masters_of[x] {
                    return Some(format!("node {i} has another master for replica {x}"));
                }
            }
            if let Some(m) = masters_of[i] {
                if self.index(&m).is_none_or(|j| masters_of[j].is_some()) {
                    return Some(format!("replica {i} follows a replica"));
                }
            }
            if !c.state_ok() {
                return Some(format!("node {i} sees the cluster down"));
            }
            for slot in 0..SLOTS as u16 {
                if c.slot_owner(slot) != first.slot_owner(slot) {
                    return Some(format!(
                        "slot {slot}: node {i} and node 0 disagree on its owner"
                    ));
                }
            }
        }
        let epochs: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| is_master(&n.cluster))
            .map(|n| n.cluster.config_epoch())
            .collect();
        let distinct: BTreeSet<u64> = epochs.iter().copied().collect();
        if distinct.len() != epochs.len() {
            return Some(format!("config epochs collide: {epochs:?}"));
        }
        None
    }

    /// Runs until every view agrees, for at most `limit_ms`.
    fn converge(&mut self, limit_ms: u64, what: &str) {
        let deadline = self.now + limit_ms;
        while self.now < deadline {
            let next = self.now + 500;
            self.run(next);
            if self.divergence().is_none() {
                return;
            }
        }
        let why = self.divergence().unwrap_or_default();
        self.fail(&format!(
            "{what}: no convergence after {limit_ms} ms: {why}"
        ));
    }

    /// Faults for 10 to 20 s, then everything heals and views converge.
    fn run_faults(&mut self) {
        self.faults = true;
        self.at(0, Ev::Fault);
        let fault_ms = 10_000 + self.rng.gen_range(0..10_000);
        let end = self.now + fault_ms;
        self.run(end);
        self.faults = false;
        self.heal_all();
        self.converge(8 * NODE_TIMEOUT_MS + 10_000, "after healing");
    }
}

fn config(i: usize) -> Config {
    let mut c = Config::new(6379);
    c.announce_ip = ip(i);
    c.node_timeout_ms = NODE_TIMEOUT_MS;
    c
}

/// The seeds to run: `SEED=s`, or 0..`SEEDS` (default `default`).
fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => {
            let n = std::env::var("SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default);
            (0..n).collect()
        }
    }
}

/// Runs `run` for each seed, then prints what it took.
fn run_seeds(name: &str, default: u64, run: impl Fn(u64, bool) -> (u64, usize)) {
    let trace = std::env::var("TRACE").is_ok();
    let seeds = seeds(default);
    let start = std::time::Instant::now();
    let (mut steps, mut promotions) = (0, 0);
    for &seed in &seeds {
        let (s, p) = run(seed, trace);
        steps += s;
        promotions += p;
    }
    eprintln!(
        "{name}: {} seeds, {steps} steps, {promotions} promotions, {:.1} s",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn simulation() {
    run_seeds("simulation", 2000, |seed, trace| {
        let mut sim = Sim::new(seed, trace, Setup::masters_only(seed));
        sim.create();
        sim.run_faults();
        (sim.step, sim.promotions.len())
    });
}

#[test]
fn failover_simulation() {
    run_seeds("failover_simulation", 1000, |seed, trace| {
        let mut sim = Sim::new(seed, trace, Setup::with_replicas(seed));
        sim.create();
        sim.run_faults();
        (sim.step, sim.promotions.len())
    });
}

/// The node that owns every one of `slots` in `c`'s view, if one does.
fn sole_owner(c: &Cluster, slots: &[u16]) -> Option<NodeId> {
    let first = c.slot_owner(slots[0])?;
    slots
        .iter()
        .all(|&s| c.slot_owner(s) == Some(first))
        .then_some(first)
}

/// A master with replicas is crashed and stays down while the others run:
/// one of its replicas owns its slots in every live view within node
/// timeout x 3 + 3 s (plus one retry after a split vote), by exactly one
/// election; restarted, the old master
/// becomes that replica's replica and never serves its slots again.
#[test]
fn failover_of_a_crashed_master() {
    run_seeds("failover_of_a_crashed_master", 30, |seed, trace| {
        let mut setup = Setup::with_replicas(seed);
        setup.manual_failovers = false;
        let mut sim = Sim::new(seed, trace, setup);
        let victim = (0..sim.setup.masters)
            .find(|&m| sim.setup.replicas[m] > 0)
            .expect("a master with replicas");
        let first_replica = sim.setup.masters + sim.setup.replicas[..victim].iter().sum::<usize>();
        let replicas: Vec<NodeId> = (first_replica..first_replica + sim.setup.replicas[victim])
            .map(|r| sim.ids[r])
            .collect();
        sim.create();
        // Replicas need an up-to-date offset before their master dies.
        sim.run(sim.now + 2000);
        let slots: Vec<u16> = (0..SLOTS as u16)
            .filter(|&s| sim.nodes[0].cluster.slot_owner(s) == Some(sim.ids[victim]))
            .collect();
        sim.crash(victim);
        let crashed_at = sim.now;
        let mut deadline = crashed_at + 3 * NODE_TIMEOUT_MS + 3000;
        let mut extended = false;
        let done = loop {
            sim.run(sim.now + TICK_MS);
            let owners: BTreeSet<Option<NodeId>> = sim
                .nodes
                .iter()
                .filter(|n| n.life == Life::Up)
                .map(|n| sole_owner(&n.cluster, &slots))
                .collect();
            let taken = owners.len() == 1
                && owners
                    .first()
                    .copied()
                    .flatten()
                    .is_some_and(|o| replicas.contains(&o));
            if taken || sim.now < deadline {
                if taken {
                    break true;
                }
                continue;
            }
            // Two replicas of equal rank (equal offsets) that start within
            // the network's delay split the votes; the retry comes 2 x the
            // election timeout (2 x max(2 x node timeout, 2 s)) later. Once.
            let epochs: Vec<u64> = sim.elections.iter().map(|e| e.0).collect();
            let split = (1..epochs.len()).any(|k| epochs[k..].contains(&epochs[k - 1]));
            if !split || extended {
                break false;
            }
            extended = true;
            deadline += 2 * (2 * NODE_TIMEOUT_MS).max(2000);
        };
        if !done {
            sim.fail(&format!(
                "no replica of node {victim} took its slots within {} ms",
                deadline - crashed_at
            ));
        }
        let live = (0..sim.nodes.len())
            .find(|&i| i != victim)
            .expect("a live node");
        let winner = sole_owner(&sim.nodes[live].cluster, &slots).expect("owner");
        let w = sim.index(&winner).expect("known");
        // Let a late election finish, if any would.
        sim.run(sim.now + 3 * NODE_TIMEOUT_MS);
        let elected: Vec<usize> = sim.promotions.iter().map(|p| p.1).collect();
        if elected != [w] {
            sim.fail(&format!("promotions {elected:?}, expected one of node {w}"));
        }
        sim.watch = Some(Watch {
            old: victim,
            winner,
            slots,
        });
        sim.start(victim);
        sim.run(sim.now + 5000);
        if sim.nodes[victim].cluster.my_master().map(|m| m.0) != Some(winner) {
            sim.fail(&format!(
                "the old master {victim} does not replicate the new one, node {w}"
            ));
        }
        sim.converge(10_000, "after the old master's return");
        (sim.step, sim.promotions.len())
    });
}

/// A majority of the masters crashed: no replica may be promoted.
#[test]
fn no_failover_without_majority() {
    run_seeds("no_failover_without_majority", 20, |seed, trace| {
        let mut setup = Setup::with_replicas(seed);
        setup.replicas = vec![1; setup.masters];
        setup.manual_failovers = false;
        let mut sim = Sim::new(seed, trace, setup);
        sim.create();
        sim.run(sim.now + 2000);
        let masters = sim.setup.masters;
        for m in 0..masters / 2 + 1 {
            sim.crash(m);
        }
        sim.run(sim.now + 10 * NODE_TIMEOUT_MS);
        if !sim.promotions.is_empty() {
            sim.fail(&format!(
                "promotions with a majority of masters down: {:?}",
                sim.promotions
            ));
        }
        sim.heal_all();
        sim.converge(8 * NODE_TIMEOUT_MS + 10_000, "after the masters' return");
        (sim.step, sim.promotions.len())
    });
}
