//! `nodes.conf` in Redis 7.0's format, both ways.
//!
//! Owns: the text of the file (Redis's `clusterLoadConfig` and
//! `clusterGenNodesDescription`): one line per node, then the `vars` line.
//!
//! ```text
//! <id> <ip:port@cport[,hostname]> <flags> <master|-> <ping_sent> <pong_recv> <config_epoch> <connected|disconnected> <slot|start-end>... [<slot>->-<id>] [<slot>-<-<id>]
//! vars currentEpoch <n> lastVoteEpoch <n>
//! ```
//!
//! [`parse`] refuses what Redis refuses ("Unrecoverable error: corrupted
//! cluster config file") with the line number and the reason; [`render`]
//! writes what Redis writes, so a file Redis wrote renders back byte for
//! byte. Writing the file atomically is the driver's job.

use crate::wire::flags;
use crate::{NodeId, SLOTS};
use std::fmt;

/// The flags a line can carry, in the order Redis writes them
/// (`redisNodeFlagsTable`).
const FLAG_NAMES: [(u16, &str); 8] = [
    (flags::MYSELF, "myself"),
    (flags::MASTER, "master"),
    (flags::SLAVE, "slave"),
    (flags::PFAIL, "fail?"),
    (flags::FAIL, "fail"),
    (flags::HANDSHAKE, "handshake"),
    (flags::NOADDR, "noaddr"),
    (flags::NOFAILOVER, "nofailover"),
];

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodesConf {
    /// One per node line, in file order; exactly one has `MYSELF`.
    pub nodes: Vec<NodeLine>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
}

/// One node line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: NodeId,
    /// Empty for a node without address.
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// Empty when the node announces none.
    pub hostname: String,
    /// [`flags`] bits, among those of [`FLAG_NAMES`].
    pub flags: u16,
    /// The master of a replica.
    pub master: Option<NodeId>,
    /// Milliseconds (Unix time); Redis only checks it for zero on load.
    pub ping_sent: u64,
    pub pong_received: u64,
    pub config_epoch: u64,
    pub connected: bool,
    /// Served slots as written: inclusive ranges, ascending.
    pub slots: Vec<(u16, u16)>,
    /// `[slot->-id]`: slots this node (myself) migrates to `id`.
    pub migrating: Vec<(u16, NodeId)>,
    /// `[slot-<-id]`: slots this node (myself) imports from `id`.
    pub importing: Vec<(u16, NodeId)>,
}

/// A file Redis would refuse to start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "corrupted cluster config file: {}", self.reason)
        } else {
            write!(
                f,
                "corrupted cluster config file at line {}: {}",
                self.line, self.reason
            )
        }
    }
}

impl std::error::Error for ConfError {}

impl NodesConf {
    /// The line of this node.
    pub fn myself(&self) -> Option<&NodeLine> {
        self.nodes.iter().find(|n| n.flags & flags::MYSELF != 0)
    }
}

/// Parses a whole file.
pub fn parse(text: &str) -> Result<NodesConf, ConfError> {
    let mut conf = NodesConf::default();
    let mut myself_seen = false;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let err = |reason: String| ConfError {
            line: lineno,
            reason,
        };
        let argv: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(&first) = argv.first() else {
            continue; // blank lines: Redis pads with newlines
        };
        if first.eq_ignore_ascii_case("vars") {
            if argv.len().is_multiple_of(2) {
                return Err(err("vars line without a value for every name".into()));
            }
            for pair in argv[1..].chunks(2) {
                let value = pair[1]
                    .parse::<u64>()
                    .map_err(|_| err(format!("{} is not a number: {}", pair[0], pair[1])))?;
                if pair[0].eq_ignore_ascii_case("currentEpoch") {
                    conf.current_epoch = value;
                } else if pair[0].eq_ignore_ascii_case("lastVoteEpoch") {
                    conf.last_vote_epoch = value;
                }
            }
            continue;
        }
        if argv.len() < 8 {
            return Err(err(format!(
                "{} fields where a node line has at least 8",
                argv.len()
            )));
        }
        let node = parse_node(&argv).map_err(err)?;
        if node.flags & flags::MYSELF != 0 {
            if myself_seen {
                return Err(err("a second node flagged myself".into()));
            }
            myself_seen = true;
        }
        if conf.nodes.iter().any(|n| n.id == node.id) {
            return Err(err(format!("node {} listed twice", node.id)));
        }
        conf.nodes.push(node);
    }
    if !myself_seen {
        return Err(ConfError {
            line: 0,
            reason: "no node is flagged myself".into(),
        });
    }
    Ok(conf)
}

fn node_id(s: &str, what: &str) -> Result<NodeId, String> {
    NodeId::parse(s.as_bytes()).ok_or_else(|| format!("bad {what} ID {s:?}"))
}

fn slot(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&n| (n as usize) < SLOTS)
        .ok_or_else(|| format!("bad slot {s:?}"))
}

fn parse_node(argv: &[&str]) -> Result<NodeLine, String> {
    let id = node_id(argv[0], "node")?;
    let (addr, hostname) = match argv[1].split_once(',') {
        Some((addr, host)) => (addr, host.to_string()),
        None => (argv[1], String::new()),
    };
    let (ip, ports) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("address {:?} has no port", argv[1]))?;
    let port_num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("bad port {s:?} in {:?}", argv[1]))
    };
    let (port, cport) = match ports.split_once('@') {
        Some((p, c)) => (port_num(p)?, port_num(c)?),
        // Files before Redis 4 had no bus port: the default offset.
        None => {
            let p = port_num(ports)?;
            (p, p.wrapping_add(10000))
        }
    };
    let mut node_flags = 0;
    for name in argv[2].split(',') {
        if name.eq_ignore_ascii_case("noflags") {
            continue;
        }
        let bit = FLAG_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(bit, _)| *bit)
            .ok_or_else(|| format!("unknown flag {name:?}"))?;
        node_flags |= bit;
    }
    let master = match argv[3] {
        m if m.starts_with('-') => None,
        m => Some(node_id(m, "master")?),
    };
    let number = |s: &str, what: &str| s.parse::<u64>().map_err(|_| format!("bad {what} {s:?}"));
    let mut node = NodeLine {
        id,
        ip: ip.to_string(),
        port,
        cport,
        hostname,
        flags: node_flags,
        master,
        ping_sent: number(argv[4], "ping_sent")?,
        pong_received: number(argv[5], "pong_received")?,
        config_epoch: number(argv[6], "config epoch")?,
        connected: match argv[7] {
            "connected" => true,
            "disconnected" => false,
            other => return Err(format!("bad link state {other:?}")),
        },
        slots: Vec::new(),
        migrating: Vec::new(),
        importing: Vec::new(),
    };
    for arg in &argv[8..] {
        if let Some(inner) = arg.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("unterminated {arg:?}"))?;
            if let Some((s, to)) = inner.split_once("->-") {
                node.migrating
                    .push((slot(s)?, node_id(to, "migration target")?));
            } else if let Some((s, from)) = inner.split_once("-<-") {
                node.importing
                    .push((slot(s)?, node_id(from, "import source")?));
            } else {
                return Err(format!("bad migration {arg:?}"));
            }
        } else {
            let (start, stop) = match arg.split_once('-') {
                Some((a, b)) => (slot(a)?, slot(b)?),
                None => (slot(arg)?, slot(arg)?),
            };
            if start > stop {
                return Err(format!("slot range {arg:?} goes backwards"));
            }
            node.slots.push((start, stop));
        }
    }
    Ok(node)
}

/// The file Redis writes for `conf`.
pub fn render(conf: &NodesConf) -> String {
    let mut out = String::new();
    for n in &conf.nodes {
        render_node(&mut out, n);
        out.push('\n');
    }
    out.push_str(&format!(
        "vars currentEpoch {} lastVoteEpoch {}\n",
        conf.current_epoch, conf.last_vote_epoch
    ));
    out
}

/// One line as CLUSTER NODES and `nodes.conf` show it, without the newline.
pub fn render_node(out: &mut String, n: &NodeLine) {
    use std::fmt::Write;
    let _ = write!(out, "{} {}:{}@{}", n.id, n.ip, n.port, n.cport);
    if !n.hostname.is_empty() {
        let _ = write!(out, ",{}", n.hostname);
    }
    out.push(' ');
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| n.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        out.push_str("noflags");
    } else {
        out.push_str(&names.join(","));
    }
    match &n.master {
        Some(m) => {
            let _ = write!(out, " {m}");
        }
        None => out.push_str(" -"),
    }
    let link = if n.connected {
        "connected"
    } else {
        "disconnected"
    };
    let _ = write!(
        out,
        " {} {} {} {}",
        n.ping_sent, n.pong_received, n.config_epoch, link
    );
    for &(start, stop) in &n.slots {
        if start == stop {
            let _ = write!(out, " {start}");
        } else {
            let _ = write!(out, " {start}-{stop}");
        }
    }
    // By slot, as Redis: a slot both migrating and importing shows as
    // migrating.
    let mut open: Vec<(u16, bool, NodeId)> = n
        .migrating
        .iter()
        .map(|&(s, to)| (s, true, to))
        .chain(
            n.importing
                .iter()
                .filter(|(s, _)| !n.migrating.iter().any(|(m, _)| m == s))
                .map(|&(s, from)| (s, false, from)),
        )
        .collect();
    open.sort_by_key(|&(s, _, _)| s);
    for (slot, migrating, peer) in open {
        if migrating {
            let _ = write!(out, " [{slot}->-{peer}]");
        } else {
            let _ = write!(out, " [{slot}-<-{peer}]");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 master - 0 1426238316232 2 connected 5461-10922
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:7002@17002,host-b master,fail? - 1426238316000 1426238316232 3 disconnected 10923 10925-16383 [10924->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:7003@17003 myself,slave 97a3a64667477371c4479320d683e4c8db5858b1 0 0 0 connected [5-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
97a3a64667477371c4479320d683e4c8db5858b1 :0@0 noaddr,nofailover - 0 0 0 disconnected
vars currentEpoch 6 lastVoteEpoch 2
";

    #[test]
    fn round_trip() {
        let conf = parse(FILE).unwrap();
        assert_eq!(conf.nodes.len(), 4);
        assert_eq!(conf.current_epoch, 6);
        assert_eq!(conf.last_vote_epoch, 2);
        let b = &conf.nodes[1];
        assert_eq!(b.hostname, "host-b");
        assert_eq!(b.flags, flags::MASTER | flags::PFAIL);
        assert_eq!(b.slots, vec![(10923, 10923), (10925, 16383)]);
        assert_eq!(b.migrating.len(), 1);
        assert_eq!(conf.myself().unwrap().port, 7003);
        assert_eq!(render(&conf), FILE);
    }

    #[test]
    fn corrupt_files_name_the_line() {
        let cases = [
            ("abc 1:2@3 master - 0 0 0 connected\n", 1, "bad node ID"),
            (
                "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 myself,master - 0 0 0 connected 0-16384\n",
                1,
                "bad slot",
            ),
            (
                "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 myself,boss - 0 0 0 connected\n",
                1,
                "unknown flag",
            ),
            (
                "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 myself,master - 0 0 0 connected\nvars currentEpoch\n",
                2,
                "vars line",
            ),
            (
                "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 master - 0 0 0\n",
                1,
                "at least 8",
            ),
            (
                "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7001@17001 master - 0 0 0 connected\n",
                0,
                "no node is flagged myself",
            ),
        ];
        for (text, line, reason) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.reason.contains(reason), "{e}");
        }
    }
}
