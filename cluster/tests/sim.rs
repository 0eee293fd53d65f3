//! Deterministic simulation of the cluster bus: N state machines (3 to 7)
//! exchange messages through a simulated network driven by one seeded RNG.
//!
//! Faults: message delay, loss and duplication, partitions (the TCP links
//! stay up but carry nothing, as a cut cable), pauses (SIGSTOP: no ticks,
//! nothing received) and restarts from the last saved `nodes.conf` (through
//! its text). Every message goes through `wire::encode` / `wire::decode`.
//!
//! Checked after every step: a node's currentEpoch never decreases (restarts
//! included); a node flags another FAIL on its own only when a majority of
//! the masters had it PFAIL or FAIL within the report validity window
//! (2 x node timeout, plus the network's delay), and any other FAIL comes
//! from one of those. Checked once faults heal: every view converges (all
//! nodes known, none flagged, the same owner for every slot, distinct config
//! epochs, cluster ok), so a resumed or restarted node is cleared.
//!
//! `SEEDS=n` runs seeds 0..n (default 300); `SEED=s` replays one seed, and
//! `TRACE=1` prints its faults. A failure prints the seed and the step.

use cluster::nodes_conf;
use cluster::state::{Action, Cluster, Config, LinkId, TICK_MS};
use cluster::wire::{self, flags, Msg};
use cluster::{NodeId, SLOTS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

const NODE_TIMEOUT_MS: u64 = 1000;
const DELAY_MAX_MS: u64 = 20;
const LOSS: f64 = 0.01;
const DUPLICATION: f64 = 0.01;
const T0: u64 = 1_700_000_000_000;
/// A report is valid 2 x node timeout after it arrives; it left its sender
/// at most the network's delay earlier.
const REPORT_WINDOW_MS: u64 = 2 * NODE_TIMEOUT_MS + 2 * DELAY_MAX_MS + TICK_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Up,
    Paused,
    Down,
}

struct SimNode {
    cluster: Cluster,
    life: Life,
    /// Bumped at each restart: events for an older incarnation are stale.
    incarnation: u64,
    /// The last `nodes.conf` text saved.
    saved: String,
    /// Highest currentEpoch seen, across restarts.
    epoch_high: u64,
    /// Flags of every node in this view after the last step.
    view: BTreeMap<NodeId, u16>,
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

struct Sim {
    seed: u64,
    trace: bool,
    now: u64,
    step: u64,
    rng: StdRng,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    events: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    /// (node, incarnation, link) → (peer, its incarnation, its link).
    conns: HashMap<(usize, u64, LinkId), (usize, u64, LinkId)>,
    /// Messages sent on links still connecting.
    pending: HashMap<(usize, u64, LinkId), Vec<Msg>>,
    /// Partition group of each node.
    group: Vec<u8>,
    /// Last time node a's view had node b PFAIL or FAIL: [a][b].
    flagged_at: Vec<Vec<Option<u64>>>,
    /// Some node reached FAIL about b by quorum.
    fail_origin: Vec<bool>,
    faults: bool,
}

fn ip(i: usize) -> String {
    format!("10.0.0.{i}")
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = 3 + (seed % 5) as usize;
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let id = NodeId::random(&mut rng);
            let mut c = Cluster::new(id, config(i), T0);
            let start = (i * SLOTS / n) as u16;
            let end = ((i + 1) * SLOTS / n) as u16;
            c.add_slots(&(start..end).collect::<Vec<u16>>()).unwrap();
            let saved = nodes_conf::render(&c.nodes_conf());
            ids.push(id);
            nodes.push(SimNode {
                epoch_high: c.current_epoch(),
                cluster: c,
                life: Life::Up,
                incarnation: 0,
                saved,
                view: BTreeMap::new(),
            });
        }
        let mut sim = Sim {
            seed,
            trace,
            now: T0,
            step: 0,
            rng,
            nodes,
            ids,
            events: BTreeMap::new(),
            seq: 0,
            conns: HashMap::new(),
            pending: HashMap::new(),
            group: vec![0; n],
            flagged_at: vec![vec![None; n]; n],
            fail_origin: vec![false; n],
            faults: false,
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

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(i) => {
                self.at(TICK_MS, Ev::Tick(i));
                if self.nodes[i].life != Life::Up {
                    return;
                }
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
            let delay = self.rng.gen_range(1..=DELAY_MAX_MS);
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
        for a in actions {
            match a {
                Action::SaveConfig => {
                    self.nodes[i].saved = nodes_conf::render(&self.nodes[i].cluster.nodes_conf());
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
                Action::SlotMapChanged
                | Action::Deliver { .. }
                | Action::DropSlotKeys { .. }
                | Action::Log { .. } => {}
            }
        }
        self.check(i, &by_quorum, fail_msg);
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
        let view: BTreeMap<NodeId, u16> = self.nodes[i]
            .cluster
            .nodes()
            .iter()
            .map(|n| (n.id, n.flags))
            .collect();
        let quorum = self.nodes.len() / 2 + 1;
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
                let reporters = (0..self.nodes.len())
                    .filter(|&b| b != x)
                    .filter(|&b| {
                        self.flagged_at[b][x].is_some_and(|t| t + REPORT_WINDOW_MS >= self.now)
                    })
                    .count();
                if reporters < quorum {
                    self.fail(&format!(
                        "node {i} marked node {x} FAIL with {reporters} masters flagging it in the window, quorum {quorum}"
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
            7 => self.move_slot(i),
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
    }

    /// Node `i` starts again from its saved `nodes.conf`.
    fn start(&mut self, i: usize) {
        self.log(format!("restart {i}"));
        let conf = nodes_conf::parse(&self.nodes[i].saved)
            .unwrap_or_else(|e| self.fail(&format!("saved nodes.conf: {e}")));
        let c = Cluster::from_conf(&conf, config(i), self.now).unwrap_or_else(|e| self.fail(&e));
        self.nodes[i].view = c.nodes().iter().map(|n| (n.id, n.flags)).collect();
        self.nodes[i].cluster = c;
        self.nodes[i].life = Life::Up;
        self.check(i, &[], None);
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
        self.after(i, actions, None);
        if self.nodes[src].life == Life::Up {
            let actions = self.nodes[src]
                .cluster
                .setslot_node(now, slot, me, 0, &mut self.rng)
                .unwrap();
            self.after(src, actions, None);
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
        for (i, node) in self.nodes.iter().enumerate() {
            let c = &node.cluster;
            let view = c.nodes();
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
                if v.config_epoch != self.nodes[x].cluster.config_epoch() {
                    return Some(format!(
                        "node {i} has node {x} at config epoch {}",
                        v.config_epoch
                    ));
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
        let mut epochs: Vec<u64> = self
            .nodes
            .iter()
            .map(|n| n.cluster.config_epoch())
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        if epochs.len() != n {
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
}

fn config(i: usize) -> Config {
    let mut c = Config::new(6379);
    c.announce_ip = ip(i);
    c.node_timeout_ms = NODE_TIMEOUT_MS;
    c
}

fn run_seed(seed: u64, trace: bool) -> u64 {
    let mut sim = Sim::new(seed, trace);
    sim.converge(30_000, "cluster creation");
    sim.faults = true;
    sim.at(0, Ev::Fault);
    let fault_ms = 10_000 + sim.rng.gen_range(0..10_000);
    let end = sim.now + fault_ms;
    sim.run(end);
    sim.faults = false;
    sim.heal_all();
    sim.converge(8 * NODE_TIMEOUT_MS + 10_000, "after healing");
    sim.step
}

#[test]
fn simulation() {
    let trace = std::env::var("TRACE").is_ok();
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => {
            let n = std::env::var("SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300);
            (0..n).collect()
        }
    };
    let start = std::time::Instant::now();
    let mut steps = 0;
    for &seed in &seeds {
        steps += run_seed(seed, trace);
    }
    eprintln!(
        "simulation: {} seeds, {steps} steps, {:.1} s",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
}
