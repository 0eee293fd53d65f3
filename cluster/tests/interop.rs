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

use cluster::nodes_conf;
use cluster::state::{Action, Cluster, Config, LinkId};
use cluster::wire::{self, flags, Body, Msg};
use cluster::NodeId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A redis-server in cluster mode on its own port and directory.
struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
    conn: redis::Connection,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port p where p and p + 10000 are free.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 55000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair");
}

impl Redis {
    fn start(tag: &str) -> Redis {
        let port = free_port_pair();
        let dir =
            std::env::temp_dir().join(format!("slotd-cluster-{}-{tag}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(
            std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into()),
        )
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args([
            "--cluster-node-timeout",
            "5000",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let conn = loop {
            match client.get_connection() {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("redis-server did not start: {e}"),
            }
        };
        Redis {
            child,
            dir,
            port,
            conn,
        }
    }

    fn cmd(&mut self, args: &[&str]) -> redis::Value {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.conn)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
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
                    Action::SaveConfig | Action::SlotMapChanged | Action::Failing { .. } => {}
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
    let mut redis = Redis::start("meet");
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
    let mut a = Redis::start("conf-a");
    let mut b = Redis::start("conf-b");
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
        let text = std::fs::read_to_string(r.dir.join("nodes.conf")).unwrap();
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
