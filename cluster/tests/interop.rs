//! Wire compatibility with the stock redis-server 7.0, both ways, and
//! `nodes.conf` files written by it.
//!
//! `meet_real_redis`: our state machine, driven by a tiny blocking driver in
//! this file, MEETs a real redis-server on its bus port, decodes its PONG
//! (ID, slots, epoch, flags checked against CLUSTER MYID / NODES / INFO),
//! then answers the PINGs redis sends to our listener until redis lists us
//! as a connected master. `nodes_conf_written_by_redis`: two real nodes MEET,
//! and the `nodes.conf` each writes parses and renders back byte for byte.
//!
//! Every process started here is killed by `Drop`.

use cluster::state::{Action, Cluster, Config, LinkId};
use cluster::wire::{self, flags, Body, Msg};
use cluster::NodeId;
use cluster::{command, nodes_conf};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A redis-server in cluster mode (started and stopped by `tests::Server`,
/// on a port whose bus port is free) and a client connection to it.
struct Redis {
    server: tests::Server,
    port: u16,
    conn: redis::Connection,
}

impl Redis {
    fn start() -> Redis {
        let server = tests::Server::redis_cluster(&["--cluster-node-timeout", "5000"]);
        let port = server.port();
        let conn = server.client();
        Redis { server, port, conn }
    }

    fn cmd(&mut self, args: &[&str]) -> redis::Value {
        tests::query(&mut self.conn, args)
    }

    fn text(&mut self, args: &[&str]) -> String {
        match self.cmd(args) {
            redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
            redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => s,
            redis::Value::Okay => "OK".into(),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

/// One bus connection of the test driver.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Drives a [`Cluster`] over real sockets, one thread, blocking writes.
struct Driver {
    node: Cluster,
    listener: TcpListener,
    conns: BTreeMap<LinkId, Conn>,
    rng: StdRng,
    /// Every message received, in order.
    received: Vec<Msg>,
}

impl Driver {
    fn perform(&mut self, actions: Vec<Action>) {
        let mut queue = actions;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for a in queue {
                match a {
                    Action::Connect { link, ip, cport } => {
                        match TcpStream::connect((ip.as_str(), cport)) {
                            Ok(stream) => {
                                stream.set_nonblocking(true).unwrap();
                                let local = stream.local_addr().unwrap().ip().to_string();
                                self.conns.insert(
                                    link,
                                    Conn {
                                        stream,
                                        buf: Vec::new(),
                                    },
                                );
                                next.extend(self.node.connected(
                                    now_ms(),
                                    link,
                                    &local,
                                    &mut self.rng,
                                ));
                            }
                            Err(_) => next.extend(self.node.closed(now_ms(), link)),
                        }
                    }
                    Action::Send { link, msg } => {
                        if let Some(c) = self.conns.get_mut(&link) {
                            c.stream.set_nonblocking(false).unwrap();
                            c.stream.write_all(&wire::encode(&msg)).unwrap();
                            c.stream.set_nonblocking(true).unwrap();
                        }
                    }
                    Action::Close { link } => {
                        self.conns.remove(&link);
                    }
                    Action::SaveConfig
                    | Action::SlotMapChanged
                    | Action::Failing { .. }
                    | Action::Deliver { .. }
                    | Action::DropSlotKeys { .. }
                    | Action::Log { .. }
                    | Action::PauseWrites { .. } => {}
                }
            }
            queue = next;
        }
    }

    /// Accepts, reads and handles whatever is there, and ticks.
    fn turn(&mut self) {
        while let Ok((stream, peer)) = self.listener.accept() {
            stream.set_nonblocking(true).unwrap();
            let local = stream.local_addr().unwrap().ip().to_string();
            let link = self.node.accept(now_ms(), &peer.ip().to_string(), &local);
            self.conns.insert(
                link,
                Conn {
                    stream,
                    buf: Vec::new(),
                },
            );
        }
        let links: Vec<LinkId> = self.conns.keys().copied().collect();
        for link in links {
            let mut closed = false;
            let mut frames = Vec::new();
            if let Some(c) = self.conns.get_mut(&link) {
                let mut chunk = [0u8; 65536];
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                while c.buf.len() >= 8 {
                    let len = wire::frame_len(c.buf[..8].try_into().unwrap())
                        .expect("redis sends valid frames");
                    if c.buf.len() < len {
                        break;
                    }
                    frames.push(c.buf.drain(..len).collect::<Vec<u8>>());
                }
            }
            for frame in frames {
                let msg = wire::decode(&frame).expect("redis's frames decode");
                // Byte for byte: what we decode re-encodes to redis's bytes.
                assert_eq!(
                    wire::encode(&msg),
                    frame,
                    "re-encoding a {:?}",
                    msg.body.msg_type()
                );
                self.received.push(msg.clone());
                let actions = self.node.handle(now_ms(), link, msg, &mut self.rng);
                self.perform(actions);
            }
            if closed {
                self.conns.remove(&link);
                let actions = self.node.closed(now_ms(), link);
                self.perform(actions);
            }
        }
        let actions = self.node.tick(now_ms(), &mut self.rng);
        self.perform(actions);
    }
}

fn node_line(nodes: &str, id: &str) -> Option<String> {
    nodes
        .lines()
        .find(|l| l.starts_with(id))
        .map(str::to_string)
}

#[test]
fn meet_real_redis() {
    let mut redis = Redis::start();
    assert_eq!(redis.text(&["CLUSTER", "ADDSLOTS", "0", "1", "2"]), "OK");
    let redis_id = redis.text(&["CLUSTER", "MYID"]);
    let info = redis.text(&["CLUSTER", "INFO"]);
    let epoch: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let cport = listener.local_addr().unwrap().port();
    let mut rng = StdRng::seed_from_u64(now_ms());
    let my_id = NodeId::random(&mut rng);
    let mut config = Config::new(cport.wrapping_sub(10000).max(1));
    config.cport = cport;
    config.announce_ip = "127.0.0.1".into();
    config.node_timeout_ms = 5000;
    let node = Cluster::new(my_id, config, now_ms());
    let mut d = Driver {
        node,
        listener,
        conns: BTreeMap::new(),
        rng,
        received: Vec::new(),
    };
    d.node
        .meet(
            now_ms(),
            "127.0.0.1",
            redis.port,
            redis.port + 10000,
            &mut d.rng,
        )
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut redis_line = None;
    while Instant::now() < deadline {
        d.turn();
        let nodes = redis.text(&["CLUSTER", "NODES"]);
        let line = node_line(&nodes, &my_id.to_string());
        let known = d
            .node
            .nodes()
            .iter()
            .any(|n| n.id.to_string() == redis_id && n.numslots == 3);
        if let (Some(line), true) = (&line, known) {
            if line.contains(" master ") && line.contains(" connected") {
                redis_line = Some(line.clone());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The PONG redis answered our MEET with.
    let pong = d
        .received
        .iter()
        .find(|m| matches!(m.body, Body::Pong(_)))
        .expect("a PONG from redis");
    let h = &pong.header;
    assert_eq!(h.sender.to_string(), redis_id);
    assert_eq!(h.myslots.iter().collect::<Vec<u16>>(), vec![0, 1, 2]);
    assert_eq!(h.current_epoch, epoch);
    assert_eq!(h.flags & flags::MASTER, flags::MASTER);
    assert!(h.slaveof.is_null());
    assert_eq!(h.port, redis.port);
    assert_eq!(h.cport, redis.port + 10000);
    // And redis PINGed us on our listener, and our PONGs completed its handshake.
    assert!(
        d.received.iter().any(|m| matches!(m.body, Body::Ping(_))),
        "redis never pinged us"
    );
    let line = redis_line.unwrap_or_else(|| {
        panic!(
            "redis does not list us as a connected master:\n{}",
            redis.text(&["CLUSTER", "NODES"])
        )
    });
    assert!(
        line.contains(&format!(
            "127.0.0.1:{}@{}",
            d.node.nodes_conf().myself().unwrap().port,
            cport
        )),
        "{line}"
    );
    assert!(!line.contains("handshake"), "{line}");
    let info = redis.text(&["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_known_nodes:2"), "{info}");
}

#[test]
fn nodes_conf_written_by_redis() {
    let mut a = Redis::start();
    let mut b = Redis::start();
    assert_eq!(
        a.text(&["CLUSTER", "ADDSLOTSRANGE", "0", "5000", "5002", "5002"]),
        "OK"
    );
    assert_eq!(
        b.text(&["CLUSTER", "ADDSLOTSRANGE", "5001", "5001", "5003", "16383"]),
        "OK"
    );
    assert_eq!(
        a.text(&["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string()]),
        "OK"
    );
    let a_id = a.text(&["CLUSTER", "MYID"]);
    let b_id = b.text(&["CLUSTER", "MYID"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a_nodes = a.text(&["CLUSTER", "NODES"]);
        let b_nodes = b.text(&["CLUSTER", "NODES"]);
        let a_sees_b =
            node_line(&a_nodes, &b_id).is_some_and(|l| l.contains(" connected 5001 5003-16383"));
        let b_sees_a =
            node_line(&b_nodes, &a_id).is_some_and(|l| l.contains(" connected 0-5000 5002"));
        if a_sees_b && b_sees_a {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two redis never met:\n{a_nodes}\n{b_nodes}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for r in [&mut a, &mut b] {
        assert_eq!(r.text(&["CLUSTER", "SAVECONFIG"]), "OK");
        let text = std::fs::read_to_string(r.server.dir().join("nodes.conf")).unwrap();
        let conf = nodes_conf::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(conf.nodes.len(), 2, "{text}");
        assert_eq!(
            nodes_conf::render(&conf),
            text.trim_end_matches('\n').to_string() + "\n"
        );
        // The state machine loads it and sees the same owners.
        let me = conf.myself().unwrap();
        let node = Cluster::from_conf(&conf, Config::new(me.port), now_ms()).unwrap();
        assert_eq!(node.myself().to_string(), r.text(&["CLUSTER", "MYID"]));
        let nodes = r.text(&["CLUSTER", "NODES"]);
        for slot in [0u16, 5000, 5001, 5002, 5003, 16383] {
            let owner = node.slot_owner(slot).unwrap().to_string();
            let expected = nodes
                .lines()
                .find(|l| {
                    l.split(' ').skip(8).any(|r| match r.split_once('-') {
                        Some((x, y)) => (x.parse().unwrap()..=y.parse().unwrap()).contains(&slot),
                        None => r.parse() == Ok(slot),
                    })
                })
                .unwrap();
            assert!(
                expected.starts_with(&owner),
                "slot {slot}: {owner} vs {expected}"
            );
        }
    }
}

/// One request on a fresh connection, the reply's raw bytes. `resp3`:
/// HELLO 3 first.
fn raw(port: u16, resp3: bool, args: &[&str]) -> Vec<u8> {
    fn request(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }
    // The reply ends where the PING's +PONG does.
    fn until_pong(s: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while !buf.ends_with(b"+PONG\r\n") {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "redis closed");
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.truncate(buf.len() - 7);
        buf
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    if resp3 {
        s.write_all(&[request(&["HELLO", "3"]), request(&["PING"])].concat())
            .unwrap();
        until_pong(&mut s);
    }
    s.write_all(&[request(args), request(&["PING"])].concat())
        .unwrap();
    until_pong(&mut s)
}

impl Driver {
    /// CLUSTER ... on our node, its reply encoded.
    fn cluster(&mut self, resp3: bool, args: &[&str]) -> Vec<u8> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let facts = command::Facts {
            db_keys: 0,
            slot_keys: 0,
        };
        let (reply, actions) =
            command::execute(&mut self.node, &argv, &facts, now_ms(), &mut self.rng);
        self.perform(actions);
        let mut out = Vec::new();
        reply.encode(resp3, &mut out);
        out
    }

    fn cluster_text(&mut self, args: &[&str]) -> String {
        let bytes = self.cluster(false, args);
        let s = String::from_utf8(bytes).unwrap();
        // A bulk string: drop the $len line and the final CRLF.
        let body = s.split_once("\r\n").unwrap().1;
        body.strip_suffix("\r\n").unwrap().to_string()
    }
}

/// Our node, MEETing `redis` and waiting until both list each other as
/// connected masters that agree on every slot owner and epoch.
fn joined(redis: &mut Redis) -> Driver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let cport = listener.local_addr().unwrap().port();
    let mut rng = StdRng::seed_from_u64(now_ms());
    let my_id = NodeId::random(&mut rng);
    let mut config = Config::new(cport.wrapping_sub(10000).max(1));
    config.cport = cport;
    config.announce_ip = "127.0.0.1".into();
    config.node_timeout_ms = 5000;
    let node = Cluster::new(my_id, config, now_ms());
    let mut d = Driver {
        node,
        listener,
        conns: BTreeMap::new(),
        rng,
        received: Vec::new(),
    };
    let meet = ["CLUSTER", "MEET", "127.0.0.1", &redis.port.to_string()];
    assert_eq!(d.cluster(false, &meet), b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        d.turn();
        let theirs = redis.text(&["CLUSTER", "NODES"]);
        let ours = d.cluster_text(&["CLUSTER", "NODES"]);
        if same_view(&theirs, &ours) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "never converged:\n{theirs}\n{ours}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CLUSTER NODES line without what depends on who looks: `myself`, the
/// ping/pong times, the open slots (only shown for myself).
fn neutral(line: &str) -> String {
    let mut f: Vec<String> = line.split(' ').map(str::to_string).collect();
    f[2] = f[2].replace("myself,", "");
    f[4] = "0".into();
    f[5] = "0".into();
    f.retain(|x| !x.starts_with('['));
    f.join(" ")
}

fn same_view(a: &str, b: &str) -> bool {
    let mut a: Vec<String> = a.lines().map(neutral).collect();
    let mut b: Vec<String> = b.lines().map(neutral).collect();
    a.sort();
    b.sort();
    a.len() == 2 && a == b && a.iter().all(|l| l.contains(" connected"))
}

/// The open slots at the end of `nodes`' myself line, `peer` renamed PEER.
fn open_slots(nodes: &str, peer: &str) -> String {
    let line = nodes.lines().find(|l| l.contains("myself")).unwrap();
    line.split(' ')
        .filter(|x| x.starts_with('['))
        .collect::<Vec<_>>()
        .join(" ")
        .replace(peer, "PEER")
}

#[test]
fn cluster_commands_match_redis() {
    let mut redis = Redis::start();
    assert_eq!(redis.text(&["CLUSTER", "ADDSLOTSRANGE", "0", "2"]), "OK");
    let redis_id = redis.text(&["CLUSTER", "MYID"]);
    let mut d = joined(&mut redis);
    assert_eq!(
        d.cluster(false, &["CLUSTER", "ADDSLOTSRANGE", "10", "12", "20", "20"]),
        b"+OK\r\n"
    );
    let my_id = d.node.myself().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        d.turn();
        let theirs = redis.text(&["CLUSTER", "NODES"]);
        let ours = d.cluster_text(&["CLUSTER", "NODES"]);
        // Every field of every node, as each sees the other.
        // (Redis counts cluster_size only after its first 2 s.)
        let size = redis.text(&["CLUSTER", "INFO"]).contains("cluster_size:2");
        if same_view(&theirs, &ours) && theirs.contains(" 10-12 20") && size {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never converged:\n{theirs}\n{ours}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Mirror images: each migrates one of its slots to the other and
    // imports one of the other's.
    for args in [
        ["CLUSTER", "SETSLOT", "1", "MIGRATING", &my_id],
        ["CLUSTER", "SETSLOT", "11", "IMPORTING", &my_id],
    ] {
        assert_eq!(redis.text(&args), "OK");
    }
    for args in [
        ["CLUSTER", "SETSLOT", "11", "MIGRATING", &redis_id],
        ["CLUSTER", "SETSLOT", "1", "IMPORTING", &redis_id],
    ] {
        assert_eq!(d.cluster(false, &args), b"+OK\r\n");
    }
    let theirs = redis.text(&["CLUSTER", "NODES"]);
    let ours = d.cluster_text(&["CLUSTER", "NODES"]);
    assert!(same_view(&theirs, &ours), "{theirs}\n{ours}");
    assert_eq!(
        open_slots(&theirs, &my_id),
        "[1->-PEER] [11-<-PEER]",
        "{theirs}"
    );
    assert_eq!(open_slots(&ours, &redis_id), "[1-<-PEER] [11->-PEER]");
    // NODES is verbatim text in RESP3.
    let theirs = raw(redis.port, true, &["CLUSTER", "NODES"]);
    assert!(
        theirs.starts_with(b"="),
        "{}",
        String::from_utf8_lossy(&theirs)
    );
    assert!(d.cluster(true, &["CLUSTER", "NODES"]).starts_with(b"="));

    // Same cluster, same SLOTS, byte for byte, in both protocols.
    for resp3 in [false, true] {
        assert_eq!(
            String::from_utf8_lossy(&d.cluster(resp3, &["CLUSTER", "SLOTS"])),
            String::from_utf8_lossy(&raw(redis.port, resp3, &["CLUSTER", "SLOTS"])),
            "CLUSTER SLOTS, resp3 {resp3}"
        );
    }

    // SHARDS: the same shards; Redis lists them in its hash table's order.
    for resp3 in [false, true] {
        let theirs =
            String::from_utf8_lossy(&raw(redis.port, resp3, &["CLUSTER", "SHARDS"])).into_owned();
        let ours = String::from_utf8(d.cluster(resp3, &["CLUSTER", "SHARDS"])).unwrap();
        let (head, rest) = ours.split_at(ours.find("\r\n").unwrap() + 2);
        let split = if resp3 {
            "%2\r\n$5\r\nslots\r\n"
        } else {
            "*4\r\n$5\r\nslots\r\n"
        };
        let shards: Vec<&str> = rest.split(split).filter(|s| !s.is_empty()).collect();
        assert_eq!(shards.len(), 2, "{ours}");
        let swapped = format!("{head}{split}{}{split}{}", shards[1], shards[0]);
        assert!(
            theirs == ours || theirs == swapped,
            "CLUSTER SHARDS, resp3 {resp3}:\n{theirs}\n{ours}"
        );
    }

    // INFO: the same values but for the message counters and each one's
    // own epoch.
    let info = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                !l.starts_with("cluster_stats_messages_") && !l.starts_with("cluster_my_epoch:")
            })
            .map(str::to_string)
            .collect()
    };
    let theirs = redis.text(&["CLUSTER", "INFO"]);
    let ours = d.cluster_text(&["CLUSTER", "INFO"]);
    assert_eq!(info(&ours), info(&theirs), "{ours}\n{theirs}");
    for key in [
        "cluster_stats_messages_sent:",
        "cluster_stats_messages_received:",
    ] {
        assert!(ours.contains(key) && theirs.contains(key));
    }
    assert!(
        ours.contains("cluster_stats_messages_meet_sent:1\r\n"),
        "{ours}"
    );

    // LINKS: one each way with the peer, the same fields.
    let links = |v: redis::Value| -> Vec<(String, String, String)> {
        let redis::Value::Array(links) = v else {
            panic!("{v:?}")
        };
        let mut out: Vec<(String, String, String)> = links
            .into_iter()
            .map(|l| {
                let redis::Value::Array(kv) = l else { panic!() };
                let text = |v: &redis::Value| match v {
                    redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                    redis::Value::Int(_) => "int".into(),
                    other => panic!("{other:?}"),
                };
                let keys: Vec<String> = kv.iter().step_by(2).map(text).collect();
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
                );
                (text(&kv[1]), text(&kv[3]), text(&kv[7]))
            })
            .collect();
        out.sort();
        out
    };
    let ours_raw = d.cluster(false, &["CLUSTER", "LINKS"]);
    let ours = links(redis::parse_redis_value(&ours_raw).unwrap());
    let theirs = links(redis.cmd(&["CLUSTER", "LINKS"]));
    let rename = |v: Vec<(String, String, String)>, peer: &str| -> Vec<(String, String, String)> {
        v.into_iter()
            .map(|(dir, node, ev)| (dir, node.replace(peer, "PEER"), ev))
            .collect()
    };
    assert_eq!(rename(ours, &redis_id), rename(theirs, &my_id));

    // Errors and simple replies, byte for byte, on the same situation.
    let cases: Vec<Vec<String>> = [
        "CLUSTER HELP",
        "CLUSTER foo",
        "CLUSTER MEET",
        "CLUSTER MEET 1.2.3.4 1 2 3",
        "CLUSTER MEET 1.2.3.4 x",
        "CLUSTER MEET 1.2.3.4 70000",
        "CLUSTER MEET 1.2.3.4 60000",
        "CLUSTER MEET nohost 7000",
        "CLUSTER MEET 1.2.3.4 7000 x",
        "CLUSTER NODES x",
        "CLUSTER ADDSLOTS 1",
        "CLUSTER ADDSLOTS 5 5",
        "CLUSTER ADDSLOTS 16384",
        "CLUSTER ADDSLOTS -1",
        "CLUSTER ADDSLOTS 007",
        "CLUSTER ADDSLOTSRANGE 1 2 3",
        "CLUSTER ADDSLOTSRANGE 5 3",
        "CLUSTER ADDSLOTSRANGE 3 5 5 6",
        "CLUSTER ADDSLOTSRANGE 3 x",
        "CLUSTER DELSLOTS 5",
        "CLUSTER DELSLOTSRANGE 5 6",
        "CLUSTER SETSLOT 1",
        "CLUSTER SETSLOT 1 foo",
        "CLUSTER SETSLOT x stable",
        "CLUSTER SETSLOT 5 migrating 0123",
        "CLUSTER SETSLOT 5 node 0123",
        "CLUSTER SETSLOT 5 stable x",
        "CLUSTER RESET x",
        "CLUSTER RESET soft x",
        "CLUSTER SET-CONFIG-EPOCH x",
        "CLUSTER SET-CONFIG-EPOCH -1",
        "CLUSTER SET-CONFIG-EPOCH 5",
        "CLUSTER FORGET abc",
        "CLUSTER REPLICAS abc",
        "CLUSTER SLAVES abc",
        "CLUSTER COUNT-FAILURE-REPORTS abc",
        "CLUSTER COUNTKEYSINSLOT",
        "CLUSTER FAILOVER x",
        "CLUSTER FAILOVER",
        "CLUSTER FAILOVER FORCE",
        "CLUSTER FAILOVER a b",
        "CLUSTER KEYSLOT foo",
        "CLUSTER KEYSLOT {user1000}.following",
        "CLUSTER KEYSLOT {}x",
        "CLUSTER MYID x",
        "cluster bumpepoch x",
    ]
    .iter()
    .map(|l| l.split(' ').map(str::to_string).collect())
    .chain([
        vec!["CLUSTER".into(), "FORGET".into(), redis_id.clone()],
        vec!["CLUSTER".into(), "REPLICAS".into(), my_id.clone()],
        vec![
            "CLUSTER".into(),
            "COUNT-FAILURE-REPORTS".into(),
            my_id.clone(),
        ],
        vec![
            "CLUSTER".into(),
            "SETSLOT".into(),
            "5".into(),
            "MIGRATING".into(),
            my_id.clone(),
        ],
        vec![
            "CLUSTER".into(),
            "SETSLOT".into(),
            "5".into(),
            "IMPORTING".into(),
            my_id.clone(),
        ],
        vec![
            "CLUSTER".into(),
            "SETSLOT".into(),
            "5".into(),
            "STABLE".into(),
        ],
        vec!["CLUSTER".into(), "FORGET".into(), "0".repeat(40)],
    ])
    .collect();
    for case in &cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        // Each side sees itself as `myself`: swap the IDs for ours.
        let mirrored: Vec<String> = case
            .iter()
            .map(|a| {
                if *a == my_id {
                    redis_id.clone()
                } else if *a == redis_id {
                    my_id.clone()
                } else {
                    a.clone()
                }
            })
            .collect();
        let mirrored: Vec<&str> = mirrored.iter().map(String::as_str).collect();
        let theirs = raw(redis.port, false, &args);
        let ours = d.cluster(false, &mirrored);
        let ours = String::from_utf8_lossy(&ours)
            .replace(&redis_id, "PEER")
            .replace(&my_id, "ME");
        let theirs = String::from_utf8_lossy(&theirs)
            .replace(&my_id, "PEER")
            .replace(&redis_id, "ME");
        assert_eq!(ours, theirs, "{args:?}");
    }
}
