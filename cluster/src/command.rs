//! The CLUSTER command (Redis 7.0.15's `clusterCommand`) on the state
//! machine: the same replies, errors and arity rules, byte for byte.
//!
//! The node calls [`needs`] first, looks up what it names in its keyspace
//! ([`Facts`]), then [`execute`]s and performs the returned [`Action`]s as
//! after any other call of the state machine. COUNTKEYSINSLOT and
//! GETKEYSINSLOT are the node's own: they read only the keyspace.

use crate::nodes_conf;
use crate::slotmap::EndpointType;
use crate::state::{Action, Cluster, FailoverMode, MSG_TYPES};
use crate::wire::flags;
use crate::{NodeId, SLOTS};
use engine::Reply;
use std::collections::BTreeMap;

/// What the node must look up in its keyspace before running a subcommand.
pub enum Need {
    Nothing,
    DbKeys,
    SlotKeys(u16),
}

/// Keys in the node's db 0 (`db_keys`), and in the slot `needs` named
/// (`slot_keys`).
pub struct Facts {
    pub db_keys: u64,
    pub slot_keys: u64,
}

/// Subcommands and their arity in Redis 7.0's command table (negative: at
/// least that many arguments, CLUSTER and the subcommand included).
const SUBCOMMANDS: [(&str, i32); 27] = [
    ("addslots", -3),
    ("addslotsrange", -4),
    ("bumpepoch", 2),
    ("count-failure-reports", 3),
    ("countkeysinslot", 3),
    ("delslots", -3),
    ("delslotsrange", -4),
    ("failover", -2),
    ("flushslots", 2),
    ("forget", 3),
    ("getkeysinslot", 4),
    ("help", 2),
    ("info", 2),
    ("keyslot", 3),
    ("links", 2),
    ("meet", -4),
    ("myid", 2),
    ("nodes", 2),
    ("replicas", 3),
    ("replicate", 3),
    ("reset", -2),
    ("saveconfig", 2),
    ("set-config-epoch", 3),
    ("setslot", -4),
    ("shards", 2),
    ("slaves", 3),
    ("slots", 2),
];

/// Message type names of CLUSTER INFO, by type (`clusterGetMessageTypeString`).
const MSG_NAMES: [&str; MSG_TYPES] = [
    "ping",
    "pong",
    "meet",
    "fail",
    "publish",
    "auth-req",
    "auth-ack",
    "update",
    "mfstart",
    "module",
    "publishshard",
];

/// CLUSTER HELP after its first line (`addReplyHelp`).
const HELP: &[&str] = &[
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "HELP",
    "    Prints this help.",
];

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An error line from text that may hold client bytes: no CR or LF, as
/// Redis's `addReplyErrorFormat`.
fn error(msg: String) -> Reply {
    Reply::err(msg.replace(['\r', '\n'], " "))
}

/// `getSlotOrReply`.
fn slot_arg(b: &[u8]) -> Result<u16, Reply> {
    match engine::resp::parse_i64(b) {
        Some(s) if (0..SLOTS as i64).contains(&s) => Ok(s as u16),
        _ => Err(Reply::err("ERR Invalid or out of range slot")),
    }
}

/// A known node named by `b` (`clusterLookupNode`).
fn lookup(c: &Cluster, b: &[u8]) -> Option<NodeId> {
    NodeId::parse(b).filter(|id| c.node_flags(id).is_some())
}

/// What the node must look up before [`execute`]: the keys of db 0 for
/// FLUSHSLOTS and RESET, those of the slot for SETSLOT <slot> NODE.
/// `args` is the whole argv, `args[0] == "CLUSTER"` (any case).
pub fn needs(args: &[&[u8]]) -> Need {
    let Some(sub) = args.get(1) else {
        return Need::Nothing;
    };
    match lower(sub).as_str() {
        "flushslots" | "reset" | "replicate" => Need::DbKeys,
        "setslot" if args.len() == 5 && args[3].eq_ignore_ascii_case(b"node") => {
            match slot_arg(args[2]) {
                Ok(slot) => Need::SlotKeys(slot),
                Err(_) => Need::Nothing,
            }
        }
        _ => Need::Nothing,
    }
}

/// Runs CLUSTER <sub> ... on the state machine; the reply and the actions
/// the driver performs (SaveConfig etc).
pub fn execute(
    c: &mut Cluster,
    args: &[&[u8]],
    facts: &Facts,
    now_ms: u64,
    rng: &mut dyn rand::RngCore,
) -> (Reply, Vec<Action>) {
    if args.len() < 2 {
        return (
            Reply::err("ERR wrong number of arguments for 'cluster' command"),
            Vec::new(),
        );
    }
    let cmd = text(args[0]).to_ascii_uppercase();
    let sub = lower(args[1]);
    let Some(&(name, arity)) = SUBCOMMANDS.iter().find(|(n, _)| *n == sub) else {
        let shown: Vec<u8> = args[1].iter().copied().take(128).collect();
        return (
            error(format!(
                "ERR unknown subcommand '{}'. Try {cmd} HELP.",
                text(&shown)
            )),
            Vec::new(),
        );
    };
    let argc = args.len() as i32;
    if (arity > 0 && argc != arity) || argc < -arity {
        return (arity_error(name), Vec::new());
    }
    let subcommand_syntax = || {
        let shown: Vec<u8> = args[1].iter().copied().take(128).collect();
        error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
            text(&shown)
        ))
    };
    let done = |r: Reply| (r, Vec::new());
    let state = |r: Result<Vec<Action>, String>| match r {
        Ok(actions) => (Reply::Ok, actions),
        Err(e) => (error(format!("ERR {e}")), Vec::new()),
    };
    match name {
        "help" => {
            let mut lines = vec![Reply::status(format!(
                "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
            ))];
            lines.extend(HELP.iter().map(|l| Reply::status(*l)));
            done(Reply::Array(lines))
        }
        "meet" => {
            if argc > 5 {
                return done(subcommand_syntax());
            }
            done(meet(c, args, now_ms, rng))
        }
        "nodes" => done(Reply::Verbatim(nodes_text(c).into())),
        "myid" => done(Reply::bulk(&c.myself().0)),
        "slots" => done(slots(c)),
        "shards" => done(shards(c)),
        "flushslots" => {
            if facts.db_keys != 0 {
                return done(Reply::err(
                    "ERR DB must be empty to perform CLUSTER FLUSHSLOTS.",
                ));
            }
            (Reply::Ok, c.flush_slots())
        }
        "addslots" | "delslots" => {
            let del = name == "delslots";
            let mut slots = Vec::with_capacity(args.len() - 2);
            for a in &args[2..] {
                match slot_arg(a) {
                    Ok(s) => slots.push(s),
                    Err(e) => return done(e),
                }
            }
            let mut seen = vec![false; SLOTS];
            for &s in &slots {
                if let Err(e) = check_slot(c, &mut seen, del, s) {
                    return done(e);
                }
            }
            state(if del {
                c.del_slots(&slots)
            } else {
                c.add_slots(&slots)
            })
        }
        "addslotsrange" | "delslotsrange" => {
            if argc % 2 == 1 {
                return done(arity_error(name));
            }
            let del = name == "delslotsrange";
            let mut seen = vec![false; SLOTS];
            let mut slots = Vec::new();
            for pair in args[2..].chunks(2) {
                let (start, end) = match (slot_arg(pair[0]), slot_arg(pair[1])) {
                    (Err(e), _) | (Ok(_), Err(e)) => return done(e),
                    (Ok(s), Ok(e)) => (s, e),
                };
                if start > end {
                    return done(error(format!(
                        "ERR start slot number {start} is greater than end slot number {end}"
                    )));
                }
                for s in start..=end {
                    if let Err(e) = check_slot(c, &mut seen, del, s) {
                        return done(e);
                    }
                    slots.push(s);
                }
            }
            slots.sort_unstable();
            state(if del {
                c.del_slots(&slots)
            } else {
                c.add_slots(&slots)
            })
        }
        "setslot" => setslot(c, args, facts, now_ms, rng),
        "bumpepoch" => {
            let (bumped, actions) = c.bump_epoch();
            let word = if bumped { "BUMPED" } else { "STILL" };
            (
                Reply::status(format!("{word} {}", c.config_epoch())),
                actions,
            )
        }
        "info" => done(Reply::Verbatim(info_text(c).into())),
        "saveconfig" => (Reply::Ok, vec![Action::SaveConfig]),
        "keyslot" => done(Reply::Int(engine::slot::slot_of(args[2]) as i64)),
        "countkeysinslot" | "getkeysinslot" => done(error(format!(
            "ERR internal error: CLUSTER {} is answered by the node",
            name.to_ascii_uppercase()
        ))),
        "forget" => match lookup(c, args[2]) {
            None => done(error(format!("ERR Unknown node {}", text(args[2])))),
            Some(id) => state(c.forget(now_ms, id)),
        },
        "replicate" => match lookup(c, args[2]) {
            None => done(error(format!("ERR Unknown node {}", text(args[2])))),
            Some(id) => state(c.replicate(id, facts.db_keys)),
        },
        "slaves" | "replicas" => match lookup(c, args[2]) {
            None => done(error(format!("ERR Unknown node {}", text(args[2])))),
            Some(id) if c.node_flags(&id).unwrap_or(0) & flags::SLAVE != 0 => {
                done(Reply::err("ERR The specified node is not a master"))
            }
            // clusterGenNodeDescription of each replica of the node.
            Some(id) => {
                let lines: BTreeMap<NodeId, nodes_conf::NodeLine> =
                    c.node_lines().into_iter().map(|l| (l.id, l)).collect();
                done(Reply::Array(
                    replicas(c, &lines, id)
                        .map(|l| {
                            let mut out = String::new();
                            nodes_conf::render_node(&mut out, l);
                            Reply::bulk(out.as_bytes())
                        })
                        .collect(),
                ))
            }
        },
        "count-failure-reports" => {
            match lookup(c, args[2]).and_then(|id| c.failure_reports(now_ms, &id)) {
                None => done(error(format!("ERR Unknown node {}", text(args[2])))),
                Some(n) => done(Reply::Int(n as i64)),
            }
        }
        "failover" => {
            if argc > 3 {
                return done(subcommand_syntax());
            }
            if argc == 3
                && !args[2].eq_ignore_ascii_case(b"force")
                && !args[2].eq_ignore_ascii_case(b"takeover")
            {
                return done(Reply::err(engine::error::SYNTAX));
            }
            let mode = match args.get(2) {
                None => FailoverMode::Default,
                Some(a) if a.eq_ignore_ascii_case(b"force") => FailoverMode::Force,
                Some(_) => FailoverMode::Takeover,
            };
            match c.failover(now_ms, mode, rng) {
                Ok(actions) => (Reply::Ok, actions),
                Err(e) => done(error(format!("ERR {e}"))),
            }
        }
        "set-config-epoch" => match engine::resp::parse_i64(args[2]) {
            None => done(Reply::err(engine::error::NOT_INT)),
            Some(e) if e < 0 => done(error(format!("ERR Invalid config epoch specified: {e}"))),
            Some(e) => state(c.set_config_epoch(e as u64)),
        },
        "reset" => {
            if argc > 3 {
                return done(subcommand_syntax());
            }
            let hard = match args.get(2) {
                None => false,
                Some(a) if a.eq_ignore_ascii_case(b"hard") => true,
                Some(a) if a.eq_ignore_ascii_case(b"soft") => false,
                Some(_) => return done(Reply::err(engine::error::SYNTAX)),
            };
            if !c.is_replica() && facts.db_keys != 0 {
                return done(Reply::err(
                    "ERR CLUSTER RESET can't be called with master nodes containing keys",
                ));
            }
            (Reply::Ok, c.reset(hard, rng))
        }
        "links" => done(links(c)),
        _ => done(subcommand_syntax()),
    }
}

fn arity_error(name: &str) -> Reply {
    error(format!(
        "ERR wrong number of arguments for 'cluster|{name}' command"
    ))
}

/// `checkSlotAssignmentsOrReply` for one slot.
fn check_slot(c: &Cluster, seen: &mut [bool], del: bool, slot: u16) -> Result<(), Reply> {
    let owned = c.slot_owner(slot).is_some();
    if del && !owned {
        return Err(error(format!("ERR Slot {slot} is already unassigned")));
    }
    if !del && owned {
        return Err(error(format!("ERR Slot {slot} is already busy")));
    }
    let seen = &mut seen[slot as usize];
    if *seen {
        return Err(error(format!("ERR Slot {slot} specified multiple times")));
    }
    *seen = true;
    Ok(())
}

/// CLUSTER MEET ip port [cport].
fn meet(c: &mut Cluster, args: &[&[u8]], now_ms: u64, rng: &mut dyn rand::RngCore) -> Reply {
    let Some(port) = engine::resp::parse_i64(args[3]) else {
        return error(format!(
            "ERR Invalid TCP base port specified: {}",
            text(args[3])
        ));
    };
    let cport = match args.get(4) {
        None => port.saturating_add(10000),
        Some(a) => match engine::resp::parse_i64(a) {
            Some(p) => p,
            None => {
                return error(format!("ERR Invalid TCP bus port specified: {}", text(a)));
            }
        },
    };
    let ip = text(args[2]);
    let valid_port = |p: i64| (1..=65535).contains(&p);
    let valid = ip.parse::<std::net::IpAddr>().is_ok() && valid_port(port) && valid_port(cport);
    if !valid {
        return error(format!(
            "ERR Invalid node address specified: {ip}:{}",
            text(args[3])
        ));
    }
    // The only other refusal is a handshake already under way with that
    // address, which Redis answers OK too.
    let _ = c.meet(now_ms, &ip, port as u16, cport as u16, rng);
    Reply::Ok
}

/// CLUSTER SETSLOT slot IMPORTING id | MIGRATING id | STABLE | NODE id.
fn setslot(
    c: &mut Cluster,
    args: &[&[u8]],
    facts: &Facts,
    now_ms: u64,
    rng: &mut dyn rand::RngCore,
) -> (Reply, Vec<Action>) {
    if c.is_replica() {
        return (
            error("ERR Please use SETSLOT only with masters.".into()),
            Vec::new(),
        );
    }
    let slot = match slot_arg(args[2]) {
        Ok(s) => s,
        Err(e) => return (e, Vec::new()),
    };
    let action = lower(args[3]);
    let result =
        match (action.as_str(), args.len()) {
            ("migrating", 5) => {
                if c.slot_owner(slot) != Some(c.myself()) {
                    Err(format!("I'm not the owner of hash slot {slot}"))
                } else {
                    match lookup(c, args[4]) {
                        None => Err(format!("I don't know about node {}", text(args[4]))),
                        Some(id) => c.setslot_migrating(slot, id),
                    }
                }
            }
            ("importing", 5) => {
                if c.slot_owner(slot) == Some(c.myself()) {
                    Err(format!("I'm already the owner of hash slot {slot}"))
                } else {
                    match lookup(c, args[4]) {
                        None => Err(format!("I don't know about node {}", text(args[4]))),
                        Some(id) => c.setslot_importing(slot, id),
                    }
                }
            }
            ("stable", 4) => c.setslot_stable(slot),
            ("node", 5) => match lookup(c, args[4]) {
                None => Err(format!("Unknown node {}", text(args[4]))),
                Some(id) => c.setslot_node(now_ms, slot, id, facts.slot_keys, rng),
            },
            _ => return (
                Reply::err(
                    "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
                ),
                Vec::new(),
            ),
        };
    match result {
        Ok(actions) => (Reply::Ok, actions),
        Err(e) => (error(format!("ERR {e}")), Vec::new()),
    }
}

/// CLUSTER NODES: one line per node, handshakes included.
fn nodes_text(c: &Cluster) -> String {
    let mut out = String::new();
    for line in c.node_lines() {
        nodes_conf::render_node(&mut out, &line);
        out.push('\n');
    }
    out
}

/// CLUSTER INFO.
fn info_text(c: &Cluster) -> String {
    use std::fmt::Write;
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    let nodes = c.nodes();
    for n in &nodes {
        assigned += n.numslots;
        if n.flags & flags::FAIL != 0 {
            fail += n.numslots;
        } else if n.flags & flags::PFAIL != 0 {
            pfail += n.numslots;
        } else {
            ok += n.numslots;
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if c.state_ok() { "ok" } else { "fail" },
        nodes.len(),
        c.size(),
        c.current_epoch(),
        c.shown_epoch(),
    );
    let stats = c.stats();
    for (dir, counts) in [("sent", &stats.sent), ("received", &stats.received)] {
        for (name, &n) in MSG_NAMES.iter().zip(counts.iter()) {
            if n != 0 {
                let _ = write!(s, "cluster_stats_messages_{name}_{dir}:{n}\r\n");
            }
        }
        let total: u64 = counts.iter().sum();
        let _ = write!(s, "cluster_stats_messages_{dir}:{total}\r\n");
    }
    let _ = write!(s, "cluster_stats_messages_dropped:{}\r\n", stats.dropped);
    let _ = write!(
        s,
        "total_cluster_links_buffer_limit_exceeded:{}\r\n",
        stats.links_buffer_limit_exceeded
    );
    s
}

/// A node's address as CLUSTER SLOTS shows it (`addNodeToNodeReply`), at
/// `port` (the node's, or that of its core holding the slots).
fn slot_node(n: &nodes_conf::NodeLine, port: u16, kind: EndpointType) -> Reply {
    let preferred = match kind {
        EndpointType::Ip => Reply::bulk(n.ip.as_bytes()),
        EndpointType::Hostname if n.hostname.is_empty() => Reply::bulk(b"?"),
        EndpointType::Hostname => Reply::bulk(n.hostname.as_bytes()),
        EndpointType::UnknownEndpoint => Reply::Nil,
    };
    let mut extra = Vec::new();
    if kind != EndpointType::Ip {
        extra.push((Reply::bulk(b"ip"), Reply::bulk(n.ip.as_bytes())));
    }
    if kind != EndpointType::Hostname && !n.hostname.is_empty() {
        extra.push((Reply::bulk(b"hostname"), Reply::bulk(n.hostname.as_bytes())));
    }
    Reply::Array(vec![
        preferred,
        Reply::Int(port as i64),
        Reply::bulk(&n.id.0),
        Reply::Map(extra),
    ])
}

/// The replicas of `master`, as Redis's `master->slaves` lists them (in
/// the order they attached).
fn replicas<'a>(
    c: &Cluster,
    lines: &'a BTreeMap<NodeId, nodes_conf::NodeLine>,
    master: NodeId,
) -> impl Iterator<Item = &'a nodes_conf::NodeLine> {
    c.replicas_of(&master)
        .into_iter()
        .filter_map(move |id| lines.get(&id))
}

/// The port clients reach `slot` on at node `n`: that of its shard core
/// holding it, when the node announced core ports, else the node's.
fn port_for(c: &Cluster, n: &nodes_conf::NodeLine, slot: u16) -> u16 {
    c.core_port(&n.id, slot).unwrap_or(n.port)
}

/// CLUSTER SLOTS: one entry per run of slots with the same owner (and the
/// same ports, when nodes announce core ports): the range, the master,
/// then its replicas that are not failed and have received data
/// (`addNodeReplyForClusterSlot`, `isReplicaAvailable`).
fn slots(c: &Cluster) -> Reply {
    let kind = c.config().preferred_endpoint;
    let lines: BTreeMap<NodeId, nodes_conf::NodeLine> =
        c.node_lines().into_iter().map(|l| (l.id, l)).collect();
    // Per owner: itself, then its available replicas.
    let mut serving: BTreeMap<NodeId, Vec<&nodes_conf::NodeLine>> = BTreeMap::new();
    let mut out = Vec::new();
    // (first slot, last slot, owner, ports of its nodes)
    let mut run: Option<(u16, u16, NodeId, Vec<u16>)> = None;
    let mut flush = |run: Option<(u16, u16, NodeId, Vec<u16>)>,
                     serving: &BTreeMap<NodeId, Vec<&nodes_conf::NodeLine>>| {
        if let Some((start, end, owner, ports)) = run {
            let mut entry = vec![Reply::Int(start as i64), Reply::Int(end as i64)];
            for (n, port) in serving[&owner].iter().zip(ports) {
                entry.push(slot_node(n, port, kind));
            }
            out.push(Reply::Array(entry));
        }
    };
    let mut ports = Vec::new();
    for slot in 0..SLOTS as u16 {
        let owner = c.slot_owner(slot).filter(|o| lines.contains_key(o));
        let Some(owner) = owner else {
            flush(run.take(), &serving);
            continue;
        };
        let nodes = serving.entry(owner).or_insert_with(|| {
            let mut v = vec![&lines[&owner]];
            v.extend(
                replicas(c, &lines, owner)
                    .filter(|r| r.flags & flags::FAIL == 0 && c.repl_offset_of(&r.id) != 0),
            );
            v
        });
        ports.clear();
        ports.extend(nodes.iter().map(|n| port_for(c, n, slot)));
        match &mut run {
            Some((_, end, o, p)) if *o == owner && *p == ports => *end = slot,
            _ => {
                flush(run.take(), &serving);
                run = Some((slot, slot, owner, ports.clone()));
            }
        }
    }
    flush(run, &serving);
    Reply::Array(out)
}

/// One node of a CLUSTER SHARDS entry (`addNodeDetailsToShardReply`).
fn shard_node(c: &Cluster, n: &nodes_conf::NodeLine, port: u16, kind: EndpointType) -> Reply {
    let mut node = vec![(Reply::bulk(b"id"), Reply::bulk(&n.id.0))];
    if port != 0 {
        node.push((Reply::bulk(b"port"), Reply::Int(port as i64)));
    }
    node.push((Reply::bulk(b"ip"), Reply::bulk(n.ip.as_bytes())));
    let endpoint = match kind {
        EndpointType::Ip => n.ip.as_str(),
        EndpointType::Hostname if n.hostname.is_empty() => "?",
        EndpointType::Hostname => n.hostname.as_str(),
        EndpointType::UnknownEndpoint => "",
    };
    node.push((Reply::bulk(b"endpoint"), Reply::bulk(endpoint.as_bytes())));
    if !n.hostname.is_empty() {
        node.push((Reply::bulk(b"hostname"), Reply::bulk(n.hostname.as_bytes())));
    }
    let replica = n.flags & flags::SLAVE != 0;
    let offset = c.repl_offset_of(&n.id);
    let health: &[u8] = if n.flags & flags::FAIL != 0 {
        b"fail"
    } else if replica && offset == 0 {
        b"loading"
    } else {
        b"online"
    };
    let role: &[u8] = if replica { b"replica" } else { b"master" };
    node.extend([
        (Reply::bulk(b"role"), Reply::bulk(role)),
        (Reply::bulk(b"replication-offset"), Reply::Int(offset)),
        (Reply::bulk(b"health"), Reply::bulk(health)),
    ]);
    Reply::Map(node)
}

/// CLUSTER SHARDS: one shard per master, its slots, then the master and
/// its replicas (`clusterGetNodesServingMySlots`). A master that announced
/// core ports shows as one shard per core holding its slots, each naming
/// the master at that core's port (a replica at its own core's port when
/// one core of it holds all those slots, else at its port).
fn shards(c: &Cluster) -> Reply {
    let kind = c.config().preferred_endpoint;
    let lines: BTreeMap<NodeId, nodes_conf::NodeLine> =
        c.node_lines().into_iter().map(|l| (l.id, l)).collect();
    let mut shards = Vec::new();
    for n in lines.values().filter(|n| n.flags & flags::MASTER != 0) {
        // The master's slot runs, grouped by the port that serves them.
        let mut groups: BTreeMap<u16, Vec<(u16, u16)>> = BTreeMap::new();
        for &(first, last) in &n.slots {
            for slot in first..=last {
                let runs = groups.entry(port_for(c, n, slot)).or_default();
                match runs.last_mut() {
                    Some((_, end)) if *end + 1 == slot => *end = slot,
                    _ => runs.push((slot, slot)),
                }
            }
        }
        if groups.is_empty() {
            groups.insert(n.port, Vec::new());
        }
        for (port, runs) in groups {
            let slots = runs
                .iter()
                .flat_map(|&(a, b)| [Reply::Int(a as i64), Reply::Int(b as i64)])
                .collect();
            let mut nodes = vec![shard_node(c, n, port, kind)];
            for r in replicas(c, &lines, n.id) {
                let mut ports = runs
                    .iter()
                    .flat_map(|&(a, b)| a..=b)
                    .map(|s| port_for(c, r, s));
                let first = ports.next().unwrap_or(r.port);
                let port = if ports.all(|p| p == first) {
                    first
                } else {
                    r.port
                };
                nodes.push(shard_node(c, r, port, kind));
            }
            shards.push(Reply::Map(vec![
                (Reply::bulk(b"slots"), Reply::Array(slots)),
                (Reply::bulk(b"nodes"), Reply::Array(nodes)),
            ]));
        }
    }
    Reply::Array(shards)
}

/// CLUSTER LINKS.
fn links(c: &Cluster) -> Reply {
    Reply::Array(
        c.links()
            .into_iter()
            .map(|l| {
                Reply::Map(vec![
                    (
                        Reply::bulk(b"direction"),
                        Reply::bulk(if l.inbound { b"from" } else { b"to" }),
                    ),
                    (Reply::bulk(b"node"), Reply::bulk(&l.node.0)),
                    (
                        Reply::bulk(b"create-time"),
                        Reply::Int(l.create_time as i64),
                    ),
                    (Reply::bulk(b"events"), Reply::bulk(l.events.as_bytes())),
                    (
                        Reply::bulk(b"send-buffer-allocated"),
                        Reply::Int(l.send_buffer_allocated as i64),
                    ),
                    (
                        Reply::bulk(b"send-buffer-used"),
                        Reply::Int(l.send_buffer_used as i64),
                    ),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LinkId;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    use crate::state::tests::{node, T0};

    const NO_KEYS: Facts = Facts {
        db_keys: 0,
        slot_keys: 0,
    };

    fn run(c: &mut Cluster, line: &str) -> Reply {
        run_with(c, line, &NO_KEYS).0
    }

    fn run_with(c: &mut Cluster, line: &str, facts: &Facts) -> (Reply, Vec<Action>) {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let mut rng = StdRng::seed_from_u64(7);
        execute(c, &args, facts, T0, &mut rng)
    }

    fn err(r: Reply) -> String {
        match r {
            Reply::Error(e) => e.into_owned(),
            other => panic!("not an error: {other:?}"),
        }
    }

    fn verbatim(r: Reply) -> String {
        match r {
            Reply::Verbatim(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("not verbatim: {other:?}"),
        }
    }

    /// Nodes wired to each other in memory: every Send is handled at once.
    struct Net {
        nodes: Vec<Cluster>,
        /// (node, link) → (peer node, peer link).
        pairs: BTreeMap<(usize, LinkId), (usize, LinkId)>,
        rng: StdRng,
    }

    impl Net {
        fn new(n: u8) -> Net {
            Net {
                nodes: (0..n).map(node).collect(),
                pairs: BTreeMap::new(),
                rng: StdRng::seed_from_u64(3),
            }
        }

        fn perform(&mut self, i: usize, actions: Vec<Action>) {
            for a in actions {
                match a {
                    Action::Connect { link, ip, .. } => {
                        let j: usize = ip.rsplit('.').next().unwrap().parse().unwrap();
                        let peer = self.nodes[j].accept(T0, &format!("10.0.0.{i}"), &ip);
                        self.pairs.insert((i, link), (j, peer));
                        self.pairs.insert((j, peer), (i, link));
                        let acts = self.nodes[i].connected(
                            T0,
                            link,
                            &format!("10.0.0.{i}"),
                            &mut self.rng,
                        );
                        self.perform(i, acts);
                    }
                    Action::Send { link, msg } => {
                        if let Some(&(j, peer)) = self.pairs.get(&(i, link)) {
                            let acts = self.nodes[j].handle(T0, peer, msg, &mut self.rng);
                            self.perform(j, acts);
                        }
                    }
                    Action::Close { link } => {
                        if let Some((j, peer)) = self.pairs.remove(&(i, link)) {
                            self.pairs.remove(&(j, peer));
                            let acts = self.nodes[j].closed(T0, peer);
                            self.perform(j, acts);
                        }
                    }
                    _ => {}
                }
            }
        }

        fn turns(&mut self, n: usize) {
            for _ in 0..n {
                for i in 0..self.nodes.len() {
                    let acts = self.nodes[i].tick(T0, &mut self.rng);
                    self.perform(i, acts);
                }
            }
        }

        /// Node 0 meets every other node; everyone learns everyone.
        fn joined(n: u8) -> Net {
            let mut net = Net::new(n);
            for j in 1..n {
                let line = format!("CLUSTER MEET 10.0.0.{j} {}", 7000 + j as u16);
                assert_eq!(run(&mut net.nodes[0], &line), Reply::Ok);
            }
            net.turns(30);
            for c in &net.nodes {
                assert_eq!(c.nodes().len(), n as usize, "{}", nodes_text(c));
            }
            net
        }
    }

    #[test]
    fn arity_and_unknown_subcommands_as_redis() {
        let mut c = node(0);
        let cases = [
            (
                "CLUSTER foo",
                "ERR unknown subcommand 'foo'. Try CLUSTER HELP.",
            ),
            (
                "cluster meet",
                "ERR wrong number of arguments for 'cluster|meet' command",
            ),
            (
                "cluster NODES x",
                "ERR wrong number of arguments for 'cluster|nodes' command",
            ),
            (
                "cluster addslotsrange 1 2 3",
                "ERR wrong number of arguments for 'cluster|addslotsrange' command",
            ),
            (
                "cluster MEET 1.2.3.4 1 2 3",
                "ERR unknown subcommand or wrong number of arguments for 'MEET'. Try CLUSTER HELP.",
            ),
            (
                "cluster setslot 1 foo",
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            ),
            (
                "cluster setslot x stable",
                "ERR Invalid or out of range slot",
            ),
            ("cluster reset x", "ERR syntax error"),
            (
                "cluster set-config-epoch x",
                "ERR value is not an integer or out of range",
            ),
            (
                "cluster set-config-epoch -1",
                "ERR Invalid config epoch specified: -1",
            ),
            (
                "cluster meet 1.2.3.4 x",
                "ERR Invalid TCP base port specified: x",
            ),
            (
                "cluster meet 1.2.3.4 70000",
                "ERR Invalid node address specified: 1.2.3.4:70000",
            ),
            (
                "cluster meet 1.2.3.4 60000",
                "ERR Invalid node address specified: 1.2.3.4:60000",
            ),
            (
                "cluster meet foo 7000",
                "ERR Invalid node address specified: foo:7000",
            ),
            (
                "cluster meet 1.2.3.4 7000 x",
                "ERR Invalid TCP bus port specified: x",
            ),
            ("cluster forget abc", "ERR Unknown node abc"),
            ("cluster replicas abc", "ERR Unknown node abc"),
            ("cluster count-failure-reports abc", "ERR Unknown node abc"),
            (
                "cluster addslots 1 1",
                "ERR Slot 1 specified multiple times",
            ),
            ("cluster addslots 16384", "ERR Invalid or out of range slot"),
            ("cluster addslots -1", "ERR Invalid or out of range slot"),
            ("cluster delslots 5", "ERR Slot 5 is already unassigned"),
            (
                "cluster addslotsrange 5 3",
                "ERR start slot number 5 is greater than end slot number 3",
            ),
            ("cluster failover x", "ERR syntax error"),
            ("cluster replicate abc", "ERR Unknown node abc"),
        ];
        for (line, expected) in cases {
            assert_eq!(err(run(&mut c, line)), expected, "{line}");
        }
        assert_eq!(
            err(execute(
                &mut c,
                &[b"cluster"],
                &NO_KEYS,
                T0,
                &mut StdRng::seed_from_u64(1)
            )
            .0),
            "ERR wrong number of arguments for 'cluster' command"
        );
        // None of that changed anything.
        assert_eq!(c.nodes().len(), 1);
        assert_eq!(c.config_epoch(), 0);
    }

    #[test]
    fn slots_are_added_and_deleted() {
        let mut c = node(0);
        assert_eq!(run(&mut c, "cluster addslotsrange 0 10 20 20"), Reply::Ok);
        assert_eq!(run(&mut c, "cluster addslots 30 31"), Reply::Ok);
        assert_eq!(
            err(run(&mut c, "cluster addslots 40 10")),
            "ERR Slot 10 is already busy"
        );
        assert_eq!(
            err(run(&mut c, "cluster addslotsrange 40 45 44 50")),
            "ERR Slot 44 specified multiple times"
        );
        assert_eq!(c.slot_owner(40), None, "a refused command changes nothing");
        assert_eq!(run(&mut c, "cluster delslotsrange 5 10"), Reply::Ok);
        assert_eq!(run(&mut c, "cluster delslots 31"), Reply::Ok);
        let nodes = verbatim(run(&mut c, "cluster nodes"));
        assert!(nodes.ends_with(" connected 0-4 20 30\n"), "{nodes}");
        let info = verbatim(run(&mut c, "cluster info"));
        assert!(info.contains("\r\ncluster_slots_assigned:7\r\ncluster_slots_ok:7\r\n"));
        assert!(info.starts_with("cluster_state:fail\r\n"), "{info}");
        let (r, actions) = run_with(
            &mut c,
            "cluster flushslots",
            &Facts {
                db_keys: 1,
                slot_keys: 0,
            },
        );
        assert_eq!(
            err(r),
            "ERR DB must be empty to perform CLUSTER FLUSHSLOTS."
        );
        assert!(actions.is_empty());
        let (r, actions) = run_with(&mut c, "cluster flushslots", &NO_KEYS);
        assert_eq!(r, Reply::Ok);
        assert_eq!(actions[0], Action::SaveConfig);
        assert_eq!((0..SLOTS as u16).filter_map(|s| c.slot_owner(s)).count(), 0);
    }

    #[test]
    fn slots_reply_runs_by_owner() {
        let mut net = Net::joined(2);
        assert_eq!(
            run(&mut net.nodes[0], "cluster addslotsrange 0 5 7 7"),
            Reply::Ok
        );
        assert_eq!(
            run(&mut net.nodes[1], "cluster addslotsrange 6 6 8 9"),
            Reply::Ok
        );
        net.turns(30);
        assert_eq!(
            slot_runs(&mut net.nodes[0]),
            vec![(0, 5, 7000), (6, 6, 7001), (7, 7, 7000), (8, 9, 7001)]
        );
        let Reply::Array(shards) = run(&mut net.nodes[0], "cluster shards") else {
            panic!()
        };
        assert_eq!(shards.len(), 2);
    }

    /// `cluster slots` as (first slot, last slot, master's port).
    fn slot_runs(c: &mut Cluster) -> Vec<(i64, i64, i64)> {
        let Reply::Array(ranges) = run(c, "cluster slots") else {
            panic!()
        };
        ranges
            .iter()
            .map(|r| match r {
                Reply::Array(v) => match (&v[0], &v[1], &v[2]) {
                    (Reply::Int(a), Reply::Int(b), Reply::Array(n)) => match &n[1] {
                        Reply::Int(p) => (*a, *b, *p),
                        _ => panic!(),
                    },
                    _ => panic!(),
                },
                _ => panic!(),
            })
            .collect()
    }

    /// Ports and roles of `cluster shards`' nodes, shard by shard.
    fn shard_roles(c: &mut Cluster) -> Vec<Vec<(i64, String, String)>> {
        let Reply::Array(shards) = run(c, "cluster shards") else {
            panic!()
        };
        let field = |m: &[(Reply, Reply)], k: &[u8]| -> Reply {
            m.iter()
                .find(|(f, _)| *f == Reply::bulk(k))
                .unwrap()
                .1
                .clone()
        };
        let text = |r: Reply| match r {
            Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        };
        shards
            .into_iter()
            .map(|s| {
                let Reply::Map(s) = s else { panic!() };
                let Reply::Array(nodes) = field(&s, b"nodes") else {
                    panic!()
                };
                nodes
                    .into_iter()
                    .map(|n| {
                        let Reply::Map(n) = n else { panic!() };
                        let Reply::Int(port) = field(&n, b"port") else {
                            panic!()
                        };
                        (port, text(field(&n, b"role")), text(field(&n, b"health")))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn slots_and_shards_list_replicas_as_redis() {
        let mut net = Net::joined(2);
        let master = net.nodes[0].myself();
        assert_eq!(
            run(&mut net.nodes[0], "cluster addslotsrange 0 9"),
            Reply::Ok
        );
        net.turns(30);
        assert_eq!(
            run(&mut net.nodes[1], &format!("cluster replicate {master}")),
            Reply::Ok
        );
        net.turns(30);
        let entry_ports = |c: &mut Cluster| -> Vec<i64> {
            let Reply::Array(ranges) = run(c, "cluster slots") else {
                panic!()
            };
            let Reply::Array(entry) = &ranges[0] else {
                panic!()
            };
            entry[2..]
                .iter()
                .map(|n| match n {
                    Reply::Array(n) => match n[1] {
                        Reply::Int(p) => p,
                        _ => panic!(),
                    },
                    _ => panic!(),
                })
                .collect()
        };
        // A replica that has received nothing yet is left out of SLOTS and
        // is "loading" in SHARDS.
        for i in 0..2 {
            assert_eq!(entry_ports(&mut net.nodes[i]), vec![7000]);
            assert_eq!(
                shard_roles(&mut net.nodes[i]),
                vec![vec![
                    (7000, "master".into(), "online".into()),
                    (7001, "replica".into(), "loading".into())
                ]]
            );
        }
        net.nodes[0].set_replication(500, 0);
        net.nodes[1].set_replication(500, 0);
        net.turns(30);
        for i in 0..2 {
            assert_eq!(entry_ports(&mut net.nodes[i]), vec![7000, 7001]);
            assert_eq!(
                shard_roles(&mut net.nodes[i]),
                vec![vec![
                    (7000, "master".into(), "online".into()),
                    (7001, "replica".into(), "online".into())
                ]]
            );
        }
    }

    /// A master lists its replicas in the order they attached (Redis's
    /// `master->slaves`), not by node ID: the replica with the larger ID
    /// attaches first here.
    #[test]
    fn replicas_are_listed_in_the_order_they_attached() {
        let mut net = Net::joined(3);
        let master = net.nodes[0].myself();
        assert_eq!(
            run(&mut net.nodes[0], "cluster addslotsrange 0 9"),
            Reply::Ok
        );
        net.turns(30);
        let (a, b) = (net.nodes[1].myself(), net.nodes[2].myself());
        let (first, second) = if a > b { (1, 2) } else { (2, 1) };
        for i in [first, second] {
            assert_eq!(
                run(&mut net.nodes[i], &format!("cluster replicate {master}")),
                Reply::Ok
            );
            net.turns(30);
        }
        let expect = vec![net.nodes[first].myself(), net.nodes[second].myself()];
        for i in 0..3 {
            let Reply::Array(lines) = run(&mut net.nodes[i], &format!("cluster replicas {master}"))
            else {
                panic!()
            };
            let ids: Vec<NodeId> = lines
                .iter()
                .map(|l| match l {
                    Reply::Bulk(b) => NodeId::parse(&b[..40]).unwrap(),
                    _ => panic!(),
                })
                .collect();
            assert_eq!(ids, expect, "node {i}");
            assert_eq!(net.nodes[i].replicas_of(&master), expect, "node {i}");
        }
    }

    /// A replica refuses to forget its master and to set slots, as Redis
    /// 7.0 does (forgetting it orphaned the replica; a slot set there was
    /// gossiped as its master's).
    #[test]
    fn a_replica_refuses_to_forget_its_master_or_set_slots() {
        let mut net = Net::joined(3);
        let master = net.nodes[0].myself();
        let other = net.nodes[2].myself();
        assert_eq!(
            run(&mut net.nodes[1], &format!("cluster replicate {master}")),
            Reply::Ok
        );
        net.turns(30);
        assert_eq!(
            err(run(&mut net.nodes[1], &format!("cluster forget {master}"))),
            "ERR Can't forget my master!"
        );
        for cmd in [
            format!("cluster setslot 9000 node {master}"),
            format!("cluster setslot 9001 importing {other}"),
            "cluster setslot 99999 stable".to_string(),
        ] {
            assert_eq!(
                err(run(&mut net.nodes[1], &cmd)),
                "ERR Please use SETSLOT only with masters.",
                "{cmd}"
            );
        }
        assert_eq!(net.nodes[1].slot_owner(9000), None);
        assert_eq!(net.nodes[1].my_master().map(|m| m.0), Some(master));
        // A master may still forget another master.
        assert_eq!(
            run(&mut net.nodes[0], &format!("cluster forget {other}")),
            Reply::Ok
        );
    }

    #[test]
    fn core_ports_travel_in_a_module_message_and_route_clients() {
        let mut net = Net::joined(2);
        assert_eq!(
            run(&mut net.nodes[0], "cluster addslotsrange 0 9"),
            Reply::Ok
        );
        assert_eq!(
            run(&mut net.nodes[1], "cluster addslotsrange 10 19"),
            Reply::Ok
        );
        net.turns(30);
        let mut core = vec![crate::cores::NO_CORE; SLOTS];
        core[10..15].fill(0);
        core[15..20].fill(1);
        let map = crate::cores::CorePorts {
            ports: vec![8100, 8101],
            core,
        };
        assert!(net.nodes[1].set_my_cores(Some(map.clone())));
        assert!(!net.nodes[1].set_my_cores(Some(map)), "unchanged");
        // What node 1 sends decodes back from the wire as it was.
        let acts = net.nodes[1].tick(T0, &mut net.rng);
        let sent: Vec<_> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Send { msg, .. }
                    if msg.body.msg_type() == crate::wire::msg_type::MODULE =>
                {
                    Some(msg.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 1, "one message to the one other node");
        let bytes = crate::wire::encode(&sent[0]);
        assert_eq!(crate::wire::decode(&bytes).unwrap(), sent[0]);
        net.perform(1, acts);
        net.turns(5);
        for i in 0..2 {
            assert_eq!(
                slot_runs(&mut net.nodes[i]),
                vec![(0, 9, 7000), (10, 14, 8100), (15, 19, 8101)],
                "node {i}"
            );
            let ports: Vec<Vec<i64>> = shard_roles(&mut net.nodes[i])
                .into_iter()
                .map(|s| s.into_iter().map(|(p, _, _)| p).collect())
                .collect();
            assert_eq!(ports, vec![vec![7000], vec![8100], vec![8101]], "node {i}");
        }
        let map = net.nodes[0].slot_map(EndpointType::Ip);
        assert_eq!(map.moved(3), "MOVED 3 10.0.0.0:7000");
        assert_eq!(map.moved(12), "MOVED 12 10.0.0.1:8100");
        assert_eq!(map.moved(19), "MOVED 19 10.0.0.1:8101");
        assert_eq!(net.nodes[0].stats().dropped, 0);
        // Garbage under slotd's module ID is dropped, counted and changes
        // nothing; another module's message is ignored.
        let link = *net
            .pairs
            .keys()
            .find(|(i, _)| *i == 0)
            .map(|(_, l)| l)
            .unwrap();
        let mut header = sent[0].header.clone();
        header.sender = net.nodes[1].myself();
        for (id, payload) in [
            (crate::cores::MODULE_ID, vec![1, 2, 3]),
            (*b"othermod", vec![1]),
        ] {
            let msg = crate::wire::Msg {
                header: header.clone(),
                body: crate::wire::Body::Module {
                    module_id: id,
                    kind: 0,
                    payload,
                },
            };
            net.nodes[0].handle(T0, link, msg, &mut StdRng::seed_from_u64(1));
        }
        assert_eq!(net.nodes[0].stats().dropped, 1);
        assert_eq!(net.nodes[0].slot_map(EndpointType::Ip), map);
        // A node that turns them off is named by its port again.
        net.nodes[1].set_my_cores(None);
        net.turns(5);
        assert_eq!(
            net.nodes[0].slot_map(EndpointType::Ip).moved(12),
            "MOVED 12 10.0.0.1:7001"
        );
    }

    #[test]
    fn setslot_migration_round_trip() {
        let mut net = Net::joined(2);
        let (a, b) = (net.nodes[0].myself(), net.nodes[1].myself());
        assert_eq!(run(&mut net.nodes[0], "cluster addslots 5"), Reply::Ok);
        net.turns(30);
        assert_eq!(
            err(run(
                &mut net.nodes[1],
                &format!("cluster setslot 5 migrating {a}")
            )),
            "ERR I'm not the owner of hash slot 5"
        );
        assert_eq!(
            err(run(
                &mut net.nodes[0],
                &format!("cluster setslot 5 importing {b}")
            )),
            "ERR I'm already the owner of hash slot 5"
        );
        assert_eq!(
            err(run(&mut net.nodes[0], "cluster setslot 5 migrating 0123")),
            "ERR I don't know about node 0123"
        );
        assert_eq!(
            run(
                &mut net.nodes[1],
                &format!("cluster setslot 5 importing {a}")
            ),
            Reply::Ok
        );
        assert_eq!(
            run(
                &mut net.nodes[0],
                &format!("cluster setslot 5 migrating {b}")
            ),
            Reply::Ok
        );
        let nodes = verbatim(run(&mut net.nodes[0], "cluster nodes"));
        assert!(
            nodes.contains(&format!(" connected 5 [5->-{b}]\n")),
            "{nodes}"
        );
        let nodes = verbatim(run(&mut net.nodes[1], "cluster nodes"));
        assert!(
            nodes.contains(&format!(" connected [5-<-{a}]\n")),
            "{nodes}"
        );
        let map = net.nodes[0].slot_map(EndpointType::Ip);
        assert_eq!(map.nodes[map.migrating_to(5).unwrap() as usize].id, b);
        let map = net.nodes[1].slot_map(EndpointType::Ip);
        assert_eq!(map.nodes[map.importing_from(5).unwrap() as usize].id, a);
        assert_eq!(map.nodes[0].id, b, "myself first");

        // The target takes the slot: a new epoch, announced at once.
        let before = net.nodes[1].config_epoch();
        let (r, actions) = run_with(
            &mut net.nodes[1],
            &format!("cluster setslot 5 node {b}"),
            &NO_KEYS,
        );
        assert_eq!(r, Reply::Ok);
        assert!(net.nodes[1].config_epoch() > before);
        assert!(net.nodes[1].importing_from(5).is_none());
        // The source, keys still there, refuses to give the slot away.
        let keys = Facts {
            db_keys: 1,
            slot_keys: 1,
        };
        let line = format!("cluster setslot 5 node {b}");
        assert_eq!(
            err(run_with(&mut net.nodes[0], &line, &keys).0),
            "ERR Can't assign hashslot 5 to a different node while I still hold keys for this hash slot."
        );
        // The target's PONG moves the slot on the source, which closes
        // its migration; the source, its last slot gone, becomes the
        // target's replica (`cluster-allow-replica-migration`), and
        // refuses SETSLOT as Redis 7.0 does (redis-cli ignores that).
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Send { msg, .. } if matches!(msg.body, crate::wire::Body::Pong(_)))));
        net.perform(1, actions);
        assert_eq!(net.nodes[0].slot_owner(5), Some(b));
        assert!(net.nodes[0].migrating_to(5).is_none());
        assert_eq!(net.nodes[0].my_master().map(|m| m.0), Some(b));
        assert_eq!(
            err(run(&mut net.nodes[0], &line)),
            "ERR Please use SETSLOT only with masters."
        );
        net.turns(30);
        let nodes = verbatim(run(&mut net.nodes[0], "cluster nodes"));
        assert!(!nodes.contains('['), "{nodes}");
        assert!(matches!(
            needs(&[b"CLUSTER", b"SETSLOT", b"5", b"NODE", b.0.as_slice()]),
            Need::SlotKeys(5)
        ));
        assert!(matches!(needs(&[b"cluster", b"flushslots"]), Need::DbKeys));
        assert!(matches!(needs(&[b"cluster", b"info"]), Need::Nothing));
    }

    #[test]
    fn a_forgotten_node_stays_away() {
        let mut net = Net::joined(3);
        let c = net.nodes[2].myself();
        let me = net.nodes[0].myself();
        assert_eq!(
            err(run(&mut net.nodes[0], &format!("cluster forget {me}"))),
            "ERR I tried hard but I can't forget myself..."
        );
        let (r, actions) = run_with(&mut net.nodes[0], &format!("cluster forget {c}"), &NO_KEYS);
        assert_eq!(r, Reply::Ok);
        assert_eq!(actions[0], Action::SaveConfig);
        net.perform(0, actions);
        // Node 1 still gossips about node 2; node 2 itself is not told.
        net.nodes[2] = node(9);
        net.turns(50);
        assert!(
            net.nodes[0].nodes().iter().all(|n| n.id != c),
            "{}",
            nodes_text(&net.nodes[0])
        );
        assert_eq!(
            err(run(
                &mut net.nodes[0],
                &format!("cluster count-failure-reports {c}")
            )),
            format!("ERR Unknown node {c}")
        );
    }

    #[test]
    fn epochs_and_reset() {
        let mut c = node(0);
        assert_eq!(run(&mut c, "cluster set-config-epoch 5"), Reply::Ok);
        assert_eq!(c.current_epoch(), 5);
        assert_eq!(
            err(run(&mut c, "cluster set-config-epoch 6")),
            "ERR Node config epoch is already non-zero"
        );
        assert_eq!(run(&mut c, "cluster bumpepoch"), Reply::status("STILL 5"));
        assert_eq!(run(&mut c, "cluster addslots 1"), Reply::Ok);
        let id = c.myself();
        let keys = Facts {
            db_keys: 3,
            slot_keys: 0,
        };
        assert_eq!(
            err(run_with(&mut c, "cluster reset hard", &keys).0),
            "ERR CLUSTER RESET can't be called with master nodes containing keys"
        );
        assert_eq!(run(&mut c, "cluster reset soft"), Reply::Ok);
        assert_eq!((c.myself(), c.config_epoch()), (id, 5));
        assert_eq!(c.slot_owner(1), None);
        assert_eq!(run(&mut c, "cluster reset hard"), Reply::Ok);
        assert_ne!(c.myself(), id);
        assert_eq!((c.config_epoch(), c.current_epoch()), (0, 0));
        assert_eq!(run(&mut c, "cluster bumpepoch"), Reply::status("BUMPED 1"));
        assert_eq!(run(&mut c, "cluster myid"), Reply::bulk(&c.myself().0));

        let mut net = Net::joined(2);
        assert_eq!(
            err(run(&mut net.nodes[0], "cluster set-config-epoch 3")),
            "ERR The user can assign a config epoch only when the node does not know any other node."
        );
        assert_eq!(run(&mut net.nodes[0], "cluster reset"), Reply::Ok);
        assert_eq!(net.nodes[0].nodes().len(), 1);
    }

    #[test]
    fn links_and_info_counters() {
        let mut net = Net::joined(2);
        let Reply::Array(links) = run(&mut net.nodes[0], "cluster links") else {
            panic!()
        };
        assert_eq!(links.len(), 2, "one each way");
        let Reply::Map(fields) = &links[0] else {
            panic!()
        };
        let keys: Vec<&Reply> = fields.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "direction",
                "node",
                "create-time",
                "events",
                "send-buffer-allocated",
                "send-buffer-used"
            ]
            .map(|k| Reply::bulk(k.as_bytes()))
            .iter()
            .collect::<Vec<_>>()
        );
        let info = verbatim(run(&mut net.nodes[0], "cluster info"));
        assert!(
            info.contains("cluster_stats_messages_meet_sent:1\r\n"),
            "{info}"
        );
        assert!(info.contains("cluster_known_nodes:2\r\n"));
        assert!(info.ends_with("total_cluster_links_buffer_limit_exceeded:0\r\n"));
        let b = net.nodes[1].myself();
        assert_eq!(
            run(&mut net.nodes[0], &format!("cluster replicas {b}")),
            Reply::Array(Vec::new())
        );
        assert_eq!(
            run(&mut net.nodes[0], "cluster keyslot foo"),
            Reply::Int(12182)
        );
        let (r, a) = run_with(&mut net.nodes[0], "cluster saveconfig", &NO_KEYS);
        assert_eq!((r, a), (Reply::Ok, vec![Action::SaveConfig]));
    }
}
