//! Cluster mode against real processes and real tools: `redis-cli
//! --cluster create|check`, `redis-cli -c`, MOVED/CROSSSLOT as Redis 7.0
//! answers them, `nodes.conf` across a restart, failure detection with
//! SIGSTOP/SIGCONT, the cluster directives, and a mixed cluster of slotd
//! and stock redis-server nodes.
//!
//! Every process started here is stopped by `Drop`, also when an assertion
//! fails.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::cluster::{addr, info as info_field, myid, tool as cluster_tool, wait_for};
use tests::{RawConn, Server};

/// Node timeout used by these tests (the benchmarks use Redis's 15000).
const TIMEOUT: &str = "1000";

fn node(extra: &[&str]) -> Server {
    let mut args = vec!["--cluster-node-timeout", TIMEOUT, "--shards", "2"];
    args.extend_from_slice(extra);
    Server::slotd_cluster(&args)
}

/// CLUSTER NODES reduced to what every node must agree on: (id, address,
/// master/slave, config epoch, slots), sorted.
fn agreed_view(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = s
        .cli(&["cluster", "nodes"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let role = if f[2].contains("master") {
                "master"
            } else {
                "slave"
            };
            let addr = f[1].split('@').next().unwrap_or("");
            format!("{} {} {} {} {}", f[0], addr, role, f[6], f[8..].join(" "))
        })
        .collect();
    v.sort();
    v
}

/// Creates a cluster of `nodes` with `redis-cli --cluster create` and waits
/// until every node says ok and all agree on CLUSTER NODES.
fn create(nodes: &[&Server]) {
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(|n| addr(n)));
    let (ok, out) = cluster_tool(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    assert!(
        out.contains("[OK] All 16384 slots covered."),
        "create output:\n{out}"
    );
    wait_for(20, "cluster_state:ok everywhere", || {
        nodes.iter().all(|n| info_field(n, "cluster_state") == "ok")
    });
    wait_for(20, "the same CLUSTER NODES everywhere", || {
        let first = agreed_view(nodes[0]);
        first.len() == nodes.len() && nodes.iter().all(|n| agreed_view(n) == first)
    });
}

/// `redis-cli --cluster fix` covers a slot no node serves: it gives the
/// slot an owner in one transaction (DELSLOTS, ADDSLOTS, SETSLOT STABLE,
/// BUMPEPOCH), which spans a node's cores (2 shards per node).
#[test]
fn redis_cli_cluster_fix_covers_a_slot_no_node_serves() {
    let (a, b, c) = (node(&[]), node(&[]), node(&[]));
    create(&[&a, &b, &c]);
    for n in [&a, &b, &c] {
        n.cli(&["cluster", "delslots", "100"]);
    }
    wait_for(20, "the cluster down without slot 100", || {
        [&a, &b, &c]
            .iter()
            .all(|n| info_field(n, "cluster_state") == "fail")
    });
    // (It asks before covering a slot, even with --cluster-yes.)
    let mut fix = Command::new("timeout")
        .args(["60", "redis-cli", "--cluster", "fix", &addr(&a)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fix.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let out = fix.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("Covering slot 100"), "{out}");
    wait_for(20, "cluster_state:ok everywhere", || {
        [&a, &b, &c]
            .iter()
            .all(|n| info_field(n, "cluster_state") == "ok")
    });
    let (ok, out) = cluster_tool(&["check".into(), addr(&b)]);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
}

#[test]
fn cluster_mode_serves_a_three_node_cluster() {
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    assert!(a.cli(&["info", "cluster"]).contains("cluster_enabled:1"));
    assert_eq!(info_field(&a, "cluster_known_nodes"), "3");
    assert_eq!(info_field(&a, "cluster_size"), "3");
    assert_eq!(info_field(&a, "cluster_slots_assigned"), "16384");

    let (ok, out) = cluster_tool(&["check".into(), addr(&b)]);
    assert!(
        ok && out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );

    // Keys written through any node with -c are read through any other.
    for i in 0..50 {
        let k = format!("key:{i}");
        let via = [&a, &b, &c][i % 3];
        assert_eq!(via.cli(&["-c", "set", &k, &format!("v{i}")]).trim(), "OK");
    }
    for i in 0..50 {
        let k = format!("key:{i}");
        let via = [&c, &a, &b][i % 3];
        assert_eq!(via.cli(&["-c", "get", &k]).trim(), format!("v{i}"));
    }
    let total: i64 = [&a, &b, &c]
        .iter()
        .map(|n| n.cli(&["dbsize"]).trim().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 50);

    // Without -c: MOVED to the owner, as Redis words it.
    let slot: u16 = a
        .cli(&["cluster", "keyslot", "foo"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(slot, 12182);
    let owner = [&a, &b, &c]
        .into_iter()
        .find(|n| {
            let mut r = RawConn::connect(n.port()).unwrap();
            !String::from_utf8_lossy(&r.cmd_str(&["get", "foo"])).starts_with("-MOVED")
        })
        .expect("one node owns slot 12182");
    for n in [&a, &b, &c] {
        let mut r = RawConn::connect(n.port()).unwrap();
        let got = String::from_utf8_lossy(&r.cmd_str(&["set", "foo", "bar"])).into_owned();
        // A script reaching a key of another node's slot is refused, as
        // Redis's `scriptVerifyClusterState` (it wrote the key here).
        let script =
            tests::text(&r.cmd_str(&["eval", "return redis.call('set', 'foo', 'zz')", "0"]));
        if n.port() == owner.port() {
            assert_eq!(got, "+OK\r\n");
            assert_eq!(script, "+OK\r\n");
        } else {
            assert_eq!(got, format!("-MOVED 12182 127.0.0.1:{}\r\n", owner.port()));
            assert!(
                script.starts_with(
                    "-ERR Script attempted to access a non local key in a cluster node script: "
                ),
                "{script}"
            );
            assert_eq!(
                tests::text(&r.cmd_str(&["cluster", "countkeysinslot", "12182"])),
                ":0\r\n"
            );
        }
        let cross = r.cmd_str(&["mset", "a", "1", "b", "2"]);
        assert_eq!(
            cross,
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        assert_eq!(
            r.cmd_str(&["select", "1"]),
            b"-ERR SELECT is not allowed in cluster mode\r\n"
        );
    }
    // Hash tags keep multi-key commands in one slot.
    assert_eq!(
        owner
            .cli(&["-c", "mset", "{foo}a", "1", "{foo}b", "2"])
            .trim(),
        "OK"
    );
    assert_eq!(
        owner.cli(&["cluster", "countkeysinslot", "12182"]).trim(),
        "3"
    );
    let keys = owner.cli(&["cluster", "getkeysinslot", "12182", "10"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort();
    assert_eq!(keys, ["foo", "{foo}a", "{foo}b"]);

    // The redis crate's cluster client routes by CLUSTER SLOTS.
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addr(&a))]).unwrap();
    let mut conn = client.get_connection().unwrap();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("rc:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    for i in 0..100 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("rc:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(v, i);
    }
}

#[test]
fn nodes_conf_keeps_identity_across_restart() {
    let dir = std::env::temp_dir().join(format!("slotd-cluster-conf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy().into_owned();
    let mut a = node(&["--dir", &d]);
    let id = a.cli(&["cluster", "myid"]).trim().to_string();
    assert_eq!(id.len(), 40);
    assert_eq!(a.cli(&["cluster", "addslotsrange", "0", "99"]).trim(), "OK");
    assert_eq!(a.cli(&["cluster", "bumpepoch"]).trim(), "BUMPED 1");
    let before = a.cli(&["cluster", "nodes"]);
    a.stop();
    let conf = std::fs::read_to_string(dir.join("nodes.conf")).unwrap();
    assert!(conf.contains(&id) && conf.contains(" 0-99"), "{conf}");

    let b = node(&["--dir", &d]);
    assert_eq!(b.cli(&["cluster", "myid"]).trim(), id);
    let after = b.cli(&["cluster", "nodes"]);
    let fields = |s: &str| -> Vec<String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        vec![f[0].into(), f[2].into(), f[6].into(), f[8].into()]
    };
    assert_eq!(fields(&before), fields(&after));
    drop(b);

    // A corrupt file stops the start with a clear message.
    std::fs::write(dir.join("nodes.conf"), "this is not a nodes.conf\n").unwrap();
    let port = tests::free_port_pair().to_string();
    let out = Command::new(tests::slotd_bin())
        .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &d])
        .args(["--cluster-enabled", "yes", "--save", ""])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("Unrecoverable error: corrupted cluster config file"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stopped_node_is_flagged_fail_and_rejoins() {
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    let cid = c.cli(&["cluster", "myid"]).trim().to_string();
    let flags_of = |s: &Server| -> String {
        s.cli(&["cluster", "nodes"])
            .lines()
            .find(|l| l.starts_with(&cid))
            .map(|l| l.split(' ').nth(2).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let kill = |sig: &str| {
        Command::new("kill")
            .args([sig, &c.pid().to_string()])
            .status()
            .unwrap();
    };
    kill("-STOP");
    let stopped = Instant::now();
    wait_for(15, "FAIL on both other nodes", || {
        flags_of(&a).contains("fail") && !flags_of(&a).contains("fail?") && {
            let f = flags_of(&b);
            f.contains("fail") && !f.contains("fail?")
        }
    });
    // The spec: PFAIL after the node timeout, FAIL once a majority agrees
    // (well within a few timeouts here).
    assert!(stopped.elapsed() >= Duration::from_millis(900));
    wait_for(5, "cluster_state:fail", || {
        info_field(&a, "cluster_state") == "fail"
    });
    let mut r = RawConn::connect(a.port()).unwrap();
    assert_eq!(
        r.cmd_str(&["get", "anything"]),
        b"-CLUSTERDOWN The cluster is down\r\n"
    );
    kill("-CONT");
    wait_for(20, "the node to rejoin", || {
        let f = flags_of(&a);
        !f.contains("fail") && info_field(&a, "cluster_state") == "ok"
    });
}

#[test]
fn cluster_directives_are_honoured() {
    let a = node(&[
        "--cluster-announce-hostname",
        "node-a.example",
        "--cluster-require-full-coverage",
        "no",
    ]);
    let cport = tests::free_port().to_string();
    let b = node(&[
        "--cluster-port",
        &cport,
        "--cluster-announce-ip",
        "127.0.0.1",
        "--cluster-announce-port",
        "6999",
        "--cluster-announce-bus-port",
        "16999",
    ]);
    // B listens on its own bus port and announces another address.
    let nodes_b = b.cli(&["cluster", "nodes"]);
    assert!(nodes_b.contains("127.0.0.1:6999@16999"), "{nodes_b}");
    let nodes_a = a.cli(&["cluster", "nodes"]);
    assert!(nodes_a.contains(",node-a.example "), "{nodes_a}");
    assert_eq!(
        a.cli(&[
            "cluster",
            "meet",
            "127.0.0.1",
            &b.port().to_string(),
            &cport
        ])
        .trim(),
        "OK"
    );
    wait_for(10, "a and b to know each other", || {
        info_field(&a, "cluster_known_nodes") == "2" && info_field(&b, "cluster_known_nodes") == "2"
    });
    assert_eq!(
        a.cli(&["cluster", "addslotsrange", "0", "8000"]).trim(),
        "OK"
    );
    // Full coverage not required: A is ok with half the slots served.
    wait_for(10, "A ok without full coverage", || {
        info_field(&a, "cluster_state") == "ok"
    });
    assert_eq!(info_field(&b, "cluster_state"), "fail");
    let mut rb = RawConn::connect(b.port()).unwrap();
    assert_eq!(
        rb.cmd_str(&["get", "foo"]),
        b"-CLUSTERDOWN Hash slot not served\r\n"
    );
    // B is down (it requires full coverage): reads only when allowed.
    wait_for(10, "B to learn A's slots", || {
        b.cli(&["cluster", "countkeysinslot", "0"]).trim() == "0"
            && b.cli(&["cluster", "slots"]).contains(&a.port().to_string())
    });
    assert_eq!(b.cli(&["cluster", "keyslot", "{b}"]).trim(), "3300");
    assert_eq!(
        rb.cmd_str(&["get", "{b}"]),
        b"-CLUSTERDOWN The cluster is down\r\n"
    );
    assert_eq!(
        rb.cmd_str(&["config", "set", "cluster-allow-reads-when-down", "yes"]),
        b"+OK\r\n"
    );
    let moved = String::from_utf8_lossy(&rb.cmd_str(&["get", "{b}"])).into_owned();
    assert_eq!(moved, format!("-MOVED 3300 127.0.0.1:{}\r\n", a.port()));
    assert_eq!(
        rb.cmd_str(&["set", "{b}", "1"]),
        b"-CLUSTERDOWN The cluster is down and only accepts read commands\r\n"
    );
    assert_eq!(
        rb.cmd_str(&["config", "set", "cluster-allow-pubsubshard-when-down", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(
        rb.cmd_str(&["spublish", "{b}", "hi"]),
        b"-CLUSTERDOWN The cluster is down\r\n"
    );
    // MOVED names the hostname when that is the preferred endpoint.
    let mut ra = RawConn::connect(a.port()).unwrap();
    assert_eq!(a.cli(&["cluster", "keyslot", "x"]).trim(), "16287");
    assert_eq!(
        ra.cmd_str(&["get", "x"]),
        b"-CLUSTERDOWN Hash slot not served\r\n"
    );
    assert_eq!(
        rb.cmd_str(&[
            "config",
            "set",
            "cluster-preferred-endpoint-type",
            "hostname"
        ]),
        b"+OK\r\n"
    );
    wait_for(10, "B to learn A's hostname", || {
        let mut r = RawConn::connect(b.port()).unwrap();
        String::from_utf8_lossy(&r.cmd_str(&["get", "{b}"])).contains("node-a.example")
    });
    // The announced ports set back to 0 at runtime: B announces the ports
    // it listens on again, in its own view and in A's.
    let listening = format!("127.0.0.1:{}@{cport}", b.port());
    for d in ["cluster-announce-port", "cluster-announce-bus-port"] {
        assert_eq!(rb.cmd_str(&["config", "set", d, "0"]), b"+OK\r\n");
    }
    wait_for(10, "B to announce the ports it listens on", || {
        let myself = |n: &Server| {
            n.cli(&["cluster", "nodes"])
                .lines()
                .any(|l| l.contains(&myid(&b)) && l.contains(&listening))
        };
        myself(&b) && myself(&a)
    });
    // A send buffer limit of one byte frees every link with output queued
    // (B's link to A carries its cron's PINGs).
    assert_eq!(
        rb.cmd_str(&["config", "set", "cluster-link-sendbuf-limit", "1"]),
        b"+OK\r\n"
    );
    wait_for(10, "a link freed over the send buffer limit", || {
        info_field(&b, "total_cluster_links_buffer_limit_exceeded")
            .parse::<u64>()
            .unwrap_or(0)
            > 0
    });
}

/// `cluster-announce-ip` cleared at runtime: the node forgets the address
/// it announced and learns its own again from the next PING or MEET (none
/// comes to a node alone, so its address stays empty, as in Redis).
#[test]
fn a_cleared_announce_ip_is_learned_again() {
    let c = node(&["--cluster-announce-ip", "127.0.0.9"]);
    let me = |c: &Server| {
        c.cli(&["cluster", "nodes"])
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_default()
            .to_string()
    };
    let announced = format!(" 127.0.0.9:{}@", c.port());
    assert!(me(&c).contains(&announced), "{}", me(&c));
    assert_eq!(
        c.cli(&["config", "set", "cluster-announce-ip", ""]).trim(),
        "OK"
    );
    let empty = format!(" :{}@", c.port());
    wait_for(10, "the announced address to be forgotten", || {
        me(&c).contains(&empty)
    });
    // CONFIG SET of the other announced addresses still applies.
    assert_eq!(
        c.cli(&["config", "set", "cluster-announce-port", "7001"])
            .trim(),
        "OK"
    );
    wait_for(10, "the announced port", || me(&c).contains(" :7001@"));
}

/// slotd and redis-server nodes in one cluster: keys written through
/// either kind are read through the other, and `redis-cli --cluster
/// reshard` moves slots with their keys from one kind to the other.
#[test]
fn mixed_cluster_with_redis_server() {
    let a = node(&[]);
    let r = Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]);
    let b = node(&[]);
    create(&[&a, &r, &b]);
    for i in 0..60 {
        let k = format!("mixed:{i}");
        let via = [&a, &r, &b][i % 3];
        assert_eq!(via.cli(&["-c", "set", &k, &i.to_string()]).trim(), "OK");
    }
    for i in 0..60 {
        let k = format!("mixed:{i}");
        let via = [&r, &b, &a][i % 3];
        assert_eq!(via.cli(&["-c", "get", &k]).trim(), i.to_string());
    }
    let (ok, out) = cluster_tool(&["check".into(), addr(&r)]);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
    // Slots with their keys move between the two kinds with the stock
    // tool: from redis-server to slotd, and from slotd to redis-server.
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addr(&a))]).unwrap();
    let mut conn = client.get_connection().unwrap();
    for i in 0..3000 {
        let _: () = redis::cmd("SET")
            .arg(format!("bulk:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    let total = |ns: &[&Server]| -> u64 {
        ns.iter()
            .map(|n| n.cli(&["dbsize"]).trim().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(total(&[&a, &r, &b]), 3060);
    for (from, to) in [(&r, &a), (&b, &r)] {
        let before = to.cli(&["dbsize"]).trim().parse::<u64>().unwrap();
        let (ok, out) = cluster_tool(&[
            "reshard".into(),
            addr(&a),
            "--cluster-from".into(),
            myid(from),
            "--cluster-to".into(),
            myid(to),
            "--cluster-slots".into(),
            "300".into(),
            "--cluster-yes".into(),
        ]);
        assert!(ok, "{out}");
        let after = to.cli(&["dbsize"]).trim().parse::<u64>().unwrap();
        assert!(
            after > before + 20,
            "keys moved with the slots: {before} -> {after}"
        );
    }
    wait_for(20, "every node sees the moves", || {
        let (ok, out) = cluster_tool(&["check".into(), addr(&r)]);
        ok && out.contains("[OK] All nodes agree about slots configuration.")
    });
    assert_eq!(total(&[&a, &r, &b]), 3060);
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addr(&b))]).unwrap();
    let mut conn = client.get_connection().unwrap();
    for i in 0..3000 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("bulk:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(v, i);
    }
}

/// redis-py's `RedisCluster` (installed by scripts/test.sh) against a slotd
/// cluster: discovery, routing, a cluster pipeline and hash-tagged MGET.
#[test]
fn redis_py_cluster_client_works() {
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    let script = format!(
        r#"
import redis
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port={port})
for i in range(300):
    rc.set(f"py:{{i}}", i)
assert all(int(rc.get(f"py:{{i}}")) == i for i in range(300))
p = rc.pipeline()
for i in range(300):
    p.incr(f"py:{{i}}")
assert p.execute() == [i + 1 for i in range(300)]
rc.mset({{"{{t}}a": 1, "{{t}}b": 2}})
assert rc.mget("{{t}}a", "{{t}}b") == [b"1", b"2"]
assert len(rc.get_nodes()) == 3
print("ok", sum(n.redis_connection.dbsize() for n in rc.get_primaries()))
"#,
        port = a.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "ok 302");
}

/// `redis-cli --cluster` subcommands other than create and check, on a
/// cluster of slotd nodes: info, call, set-timeout, add-node, reshard and
/// rebalance of empty slots, del-node, fix.
#[test]
fn redis_cli_cluster_tools_work() {
    // set-timeout rewrites each node's config file: give them one.
    let conf = std::env::temp_dir().join(format!("slotd-cluster-tools-{}", std::process::id()));
    std::fs::create_dir_all(&conf).unwrap();
    let with_conf = |i: usize| {
        let f = conf.join(format!("{i}.conf"));
        std::fs::write(&f, "cluster-enabled yes\n").unwrap();
        Server::slotd_with_config(
            &f,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                TIMEOUT,
                "--shards",
                "2",
            ],
        )
    };
    let (a, b, c, d) = (with_conf(0), with_conf(1), with_conf(2), with_conf(3));
    create(&[&a, &b, &c]);
    let (ok, out) = cluster_tool(&["info".into(), addr(&a)]);
    assert!(ok && out.contains("3 masters"), "{out}");
    let (ok, out) = cluster_tool(&["call".into(), addr(&a), "ping".into()]);
    assert!(ok && out.matches("PONG").count() == 3, "{out}");
    let (ok, out) = cluster_tool(&["set-timeout".into(), addr(&a), "2000".into()]);
    assert!(
        ok && out.contains("New node timeout set. 3 OK, 0 ERR."),
        "{out}"
    );
    assert_eq!(
        b.cli(&["config", "get", "cluster-node-timeout"])
            .lines()
            .nth(1),
        Some("2000")
    );
    // A fourth node joins, takes 200 empty slots, gives them back, leaves.
    let (ok, out) = cluster_tool(&["add-node".into(), addr(&d), addr(&a)]);
    assert!(
        ok && out.contains("[OK] New node added correctly."),
        "{out}"
    );
    wait_for(20, "the same four nodes everywhere", || {
        let first = agreed_view(&a);
        first.len() == 4 && [&b, &c, &d].iter().all(|n| agreed_view(n) == first)
    });
    let did = d.cli(&["cluster", "myid"]).trim().to_string();
    let (ok, out) = cluster_tool(&[
        "reshard".into(),
        addr(&a),
        "--cluster-from".into(),
        "all".into(),
        "--cluster-to".into(),
        did.clone(),
        "--cluster-slots".into(),
        "200".into(),
    ]);
    assert!(ok, "{out}");
    // redis-cli takes a share of the 200 from each node, rounded (199 or
    // 200 in all); every node must agree on the new node's slots.
    let slots_of = |n: &Server| -> usize {
        n.cli(&["cluster", "nodes"])
            .lines()
            .find(|l| l.starts_with(&did))
            .map(|l| {
                l.split(' ')
                    .skip(8)
                    .map(|r| match r.split_once('-') {
                        Some((x, y)) => {
                            y.parse::<usize>().unwrap() - x.parse::<usize>().unwrap() + 1
                        }
                        None => 1,
                    })
                    .sum()
            })
            .unwrap_or(0)
    };
    wait_for(20, "every node to agree on the new node's slots", || {
        let n = slots_of(&d);
        (199..=200).contains(&n) && [&a, &b, &c].iter().all(|x| slots_of(x) == n)
    });
    let (ok, out) = cluster_tool(&["check".into(), addr(&d)]);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
    // Rebalance with the new node weighted 0 empties it.
    let (ok, out) = cluster_tool(&[
        "rebalance".into(),
        addr(&a),
        "--cluster-weight".into(),
        format!("{did}=0"),
    ]);
    assert!(ok, "{out}");
    wait_for(20, "the new node to be empty", || {
        d.cli(&["cluster", "nodes"])
            .lines()
            .find(|l| l.starts_with(&did))
            .is_some_and(|l| l.split(' ').count() == 8)
    });
    let (ok, out) = cluster_tool(&["del-node".into(), addr(&a), did.clone()]);
    assert!(
        ok && out.contains("Sending CLUSTER RESET SOFT to the deleted node."),
        "{out}"
    );
    assert_eq!(info_field(&d, "cluster_known_nodes"), "1");
    wait_for(20, "the node to be forgotten", || {
        [&a, &b, &c]
            .iter()
            .all(|n| info_field(n, "cluster_known_nodes") == "3")
    });
    let (ok, out) = cluster_tool(&["fix".into(), addr(&a)]);
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
    let _ = std::fs::remove_dir_all(&conf);
}

/// Garbage, truncated, oversized and wrong-version frames on the bus port,
/// and messages from unknown senders: dropped and counted, no crash, no
/// change of state.
#[test]
fn garbage_on_the_bus_is_dropped_and_counted() {
    use std::io::Write;
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    let before = agreed_view(&a);
    let cport = a.port() + 10000;
    let send = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", cport)).unwrap();
        let _ = s.write_all(bytes);
        std::thread::sleep(Duration::from_millis(50));
    };
    // Not a bus frame at all.
    send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Right signature, a length below the header's.
    send(b"RCmb\x00\x00\x00\x10garbagegarbage");
    // An oversized length.
    send(b"RCmb\xff\xff\xff\xff");
    // A whole header of the right length with a wrong version and type.
    let mut frame = vec![0u8; 2256];
    frame[..4].copy_from_slice(b"RCmb");
    frame[4..8].copy_from_slice(&2256u32.to_be_bytes());
    frame[8..10].copy_from_slice(&99u16.to_be_bytes());
    send(&frame);
    // A FAIL about B from a sender nobody knows.
    frame[8..10].copy_from_slice(&1u16.to_be_bytes());
    frame[12..14].copy_from_slice(&3u16.to_be_bytes());
    send(&frame);
    // Truncated: the connection ends mid-frame.
    send(&frame[..1000]);
    wait_for(10, "the drops to be counted", || {
        info_field(&a, "cluster_stats_messages_dropped")
            .parse::<u64>()
            .unwrap_or(0)
            >= 3
    });
    assert_eq!(info_field(&a, "cluster_state"), "ok");
    assert_eq!(agreed_view(&a), before);
    assert_eq!(a.cli(&["ping"]).trim(), "PONG");
}

/// PUBLISH on one node reaches subscribers on every node (the bus carries
/// it); SPUBLISH stays in the channel's shard.
#[test]
fn publish_reaches_every_node() {
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    let mut sub_b = RawConn::connect(b.port()).unwrap();
    let mut sub_c = RawConn::connect(c.port()).unwrap();
    for s in [&mut sub_b, &mut sub_c] {
        assert_eq!(
            s.cmd_str(&["subscribe", "news"]),
            b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        );
        s.set_read_timeout(Duration::from_secs(5));
    }
    // PUBLISH answers the receivers on this node only, as Redis.
    assert_eq!(a.cli(&["publish", "news", "hello"]).trim(), "0");
    for s in [&mut sub_b, &mut sub_c] {
        assert_eq!(
            s.read_reply().unwrap(),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        );
    }
    // Inside MULTI too.
    let mut m = RawConn::connect(a.port()).unwrap();
    assert_eq!(m.cmd_str(&["multi"]), b"+OK\r\n");
    assert_eq!(m.cmd_str(&["publish", "news", "again"]), b"+QUEUED\r\n");
    assert_eq!(m.cmd_str(&["exec"]), b"*1\r\n:0\r\n");
    for s in [&mut sub_b, &mut sub_c] {
        assert_eq!(
            s.read_reply().unwrap(),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nagain\r\n"
        );
    }
}

/// `redis-benchmark --cluster` runs against a slotd cluster without
/// errors, and `redis-cli --cluster import` moves a standalone server's
/// keys into it (MIGRATE from a standalone slotd).
#[test]
fn redis_benchmark_and_cluster_import_work() {
    let a = node(&[]);
    let b = node(&[]);
    let c = node(&[]);
    create(&[&a, &b, &c]);
    let out = Command::new("timeout")
        .args(["120", "redis-benchmark", "--cluster", "-h", "127.0.0.1"])
        .args(["-p", &a.port().to_string(), "-t", "set,get", "-n", "20000"])
        .args(["-r", "1000", "-q"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for t in ["SET: ", "GET: "] {
        assert!(
            text.lines()
                .any(|l| l.contains(t) && l.contains("requests per second")),
            "{text}"
        );
    }
    assert!(!text.to_lowercase().contains("error"), "{text}");
    // A standalone slotd with keys of every slot range.
    let src = Server::slotd(&["--shards", "2"]);
    for i in 0..300 {
        assert_eq!(
            src.cli(&["set", &format!("imp:{i}"), &i.to_string()])
                .trim(),
            "OK"
        );
    }
    let (ok, out) = cluster_tool(&[
        "import".into(),
        addr(&a),
        "--cluster-from".into(),
        addr(&src),
        "--cluster-copy".into(),
    ]);
    assert!(ok, "{out}");
    for i in (0..300).step_by(17) {
        let k = format!("imp:{i}");
        assert_eq!(b.cli(&["-c", "get", &k]).trim(), i.to_string());
    }
    // COPY: the source keeps its keys.
    assert_eq!(src.cli(&["dbsize"]).trim(), "300");
}

/// A node whose slot another master takes with a newer config epoch (not a
/// migration: CLUSTER SETSLOT NODE and BUMPEPOCH on the taker) deletes the
/// keys it still held in that slot, as Redis 7.0 does with its "dirty
/// slots": checked against redis-server first, then slotd.
#[test]
fn keys_of_a_slot_taken_by_a_newer_config_are_deleted() {
    let redis = || Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]);
    for kind in ["redis", "slotd"] {
        let (a, b, c) = if kind == "redis" {
            (redis(), redis(), redis())
        } else {
            (node(&[]), node(&[]), node(&[]))
        };
        create(&[&a, &b, &c]);
        // Slot 0 belongs to the first node after create.
        let tag = "{3560}"; // CLUSTER KEYSLOT 3560 = 0
        assert_eq!(a.cli(&["cluster", "keyslot", tag]).trim(), "0", "{kind}");
        for i in 0..20 {
            let k = format!("{tag}:{i}");
            assert_eq!(a.cli(&["set", &k, "v"]).trim(), "OK", "{kind}");
        }
        assert_eq!(
            a.cli(&["cluster", "countkeysinslot", "0"]).trim(),
            "20",
            "{kind}"
        );
        let b_id = b.cli(&["cluster", "myid"]).trim().to_string();
        assert_eq!(
            b.cli(&["cluster", "setslot", "0", "node", &b_id]).trim(),
            "OK",
            "{kind}"
        );
        assert!(
            b.cli(&["cluster", "bumpepoch"]).starts_with("BUMPED"),
            "{kind}"
        );
        wait_for(20, "a sees slot 0 on b and drops its keys", || {
            a.cli(&["cluster", "countkeysinslot", "0"]).trim() == "0"
        });
        assert_eq!(
            a.cli(&["get", &format!("{tag}:1")]).trim(),
            format!("MOVED 0 {}", addr(&b)),
            "{kind}"
        );
        // The DELs are what the node now holds: nothing.
        assert_eq!(a.cli(&["dbsize"]).trim(), "0", "{kind}");
    }
}

/// A field of INFO replication.
fn repl_field(s: &Server, field: &str) -> String {
    tests::info_field(s, "replication", field)
}

#[test]
fn replicas_follow_their_masters() {
    // `redis-cli --cluster create --cluster-replicas 1`: 3 masters, each
    // with a replica (CLUSTER REPLICATE), as scripts/cluster.sh makes it.
    let dirs: Vec<String> = (0..6)
        .map(|i| {
            tests::fresh_dir("cluster-replicas", &i.to_string())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut nodes: Vec<Server> = dirs.iter().map(|d| node(&["--dir", d])).collect();
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(addr));
    args.extend(["--cluster-replicas".to_string(), "1".to_string()]);
    let (ok, out) = cluster_tool(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_for(20, "cluster_state:ok everywhere", || {
        nodes.iter().all(|n| info_field(n, "cluster_state") == "ok")
    });
    wait_for(20, "the same CLUSTER NODES everywhere", || {
        let first = agreed_view(&nodes[0]);
        first.iter().filter(|l| l.contains(" slave ")).count() == 3
            && nodes.iter().all(|n| agreed_view(n) == first)
    });
    let masters: Vec<usize> = (0..6)
        .filter(|&i| repl_field(&nodes[i], "role") == "master")
        .collect();
    let replicas: Vec<usize> = (0..6).filter(|i| !masters.contains(i)).collect();
    assert_eq!((masters.len(), replicas.len()), (3, 3));
    wait_for(20, "every replica's link", || {
        replicas
            .iter()
            .all(|&r| repl_field(&nodes[r], "master_link_status") == "up")
    });
    // The master each replica follows.
    let master_of = |nodes: &[Server], r: usize| -> usize {
        let port: u16 = repl_field(&nodes[r], "master_port").parse().unwrap();
        (0..nodes.len()).find(|&m| nodes[m].port() == port).unwrap()
    };
    // Writes through the cluster client reach each master's replica.
    let out = Command::new("timeout")
        .args(["120", "redis-benchmark", "--cluster", "-h", "127.0.0.1"])
        .args([
            "-p",
            &nodes[0].port().to_string(),
            "-t",
            "set",
            "-n",
            "20000",
        ])
        .args(["-r", "5000", "-q"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    for &r in &replicas {
        let m = master_of(&nodes, r);
        wait_for(20, "the replica to hold its master's keys", || {
            nodes[r].cli(&["dbsize"]) == nodes[m].cli(&["dbsize"])
        });
        assert_ne!(nodes[r].cli(&["dbsize"]).trim(), "0");
        // CLUSTER REPLICAS on any node lists it under its master.
        let listed = nodes[0].cli(&["cluster", "replicas", &myid(&nodes[m])]);
        assert!(listed.contains(&myid(&nodes[r])), "{listed}");
    }
    // A replica serves its master's slots to READONLY reads; writes and
    // other clients' reads are MOVED to the master, as Redis redirects.
    let r = replicas[0];
    let m = master_of(&nodes, r);
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| nodes[m].cli(&["set", k, "v"]).trim() == "OK")
        .unwrap();
    wait_for(10, "the key on the replica", || {
        nodes[r].cli(&["dbsize"]) == nodes[m].cli(&["dbsize"])
    });
    let mut c = nodes[r].raw();
    assert!(tests::text(&c.cmd_str(&["get", &key])).starts_with("-MOVED "));
    assert_eq!(tests::text(&c.cmd_str(&["readonly"])), "+OK\r\n");
    assert_eq!(tests::text(&c.cmd_str(&["get", &key])), "$1\r\nv\r\n");
    assert!(tests::text(&c.cmd_str(&["set", &key, "w"])).starts_with("-MOVED "));
    drop(c);
    // Its master's shard channels too, without READONLY (as Redis).
    let mut c = nodes[r].raw();
    assert_eq!(tests::text(&c.cmd_str(&["spublish", &key, "hi"])), ":0\r\n");
    assert_eq!(
        tests::text(&c.cmd_str(&["ssubscribe", &key])),
        format!(
            "*3\r\n$10\r\nssubscribe\r\n${}\r\n{key}\r\n:1\r\n",
            key.len()
        )
    );
    drop(c);
    // Errors as Redis words them.
    let other = masters.iter().copied().find(|&x| x != m).unwrap();
    assert_eq!(
        nodes[r]
            .cli(&["cluster", "replicate", &myid(&nodes[r])])
            .trim(),
        "ERR Can't replicate myself"
    );
    assert_eq!(
        nodes[m]
            .cli(&["cluster", "replicate", &myid(&nodes[other])])
            .trim(),
        "ERR To set a master the node must be empty and without assigned slots."
    );
    assert_eq!(
        nodes[m]
            .cli(&["cluster", "replicate", &myid(&nodes[r])])
            .trim(),
        "ERR I can only replicate a master, not a replica."
    );
    // A stock redis-server joins as another replica of a slotd master.
    let stock = Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]);
    let (ok, out) = cluster_tool(&[
        "add-node".to_string(),
        addr(&stock),
        addr(&nodes[m]),
        "--cluster-slave".to_string(),
        "--cluster-master-id".to_string(),
        myid(&nodes[m]),
    ]);
    assert!(ok, "{out}");
    wait_for(30, "the stock replica's sync", || {
        repl_field(&stock, "master_link_status") == "up"
            && stock.cli(&["dbsize"]) == nodes[m].cli(&["dbsize"])
    });
    // A restarted replica follows its master again (its nodes.conf says
    // whom), and gets what was written meanwhile.
    nodes[r].stop();
    nodes[m].cli(&["set", &key, "after"]);
    nodes[r] = node(&["--dir", &dirs[r]]);
    wait_for(30, "the restarted replica's sync", || {
        repl_field(&nodes[r], "role") == "slave"
            && repl_field(&nodes[r], "master_link_status") == "up"
    });
    let mut c = nodes[r].raw();
    c.cmd_str(&["readonly"]);
    wait_for(10, "the write made meanwhile", || {
        tests::text(&c.cmd_str(&["get", &key])) == "$5\r\nafter\r\n"
    });
}

/// A free loopback port `p` with `p + 1` free too (a node's two core ports).
fn free_port_run() -> u16 {
    loop {
        let p = tests::free_port();
        if p < 65535 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A CLUSTER SLOTS entry: first slot, last slot, (port, id) of its nodes.
type SlotRange = (u16, u16, Vec<(u16, String)>);

/// CLUSTER SLOTS.
fn slot_ranges(s: &Server) -> Vec<SlotRange> {
    let mut conn = s.client();
    let redis::Value::Array(ranges) = tests::query(&mut conn, &["cluster", "slots"]) else {
        panic!("CLUSTER SLOTS is not an array")
    };
    let int = |v: &redis::Value| match v {
        redis::Value::Int(i) => *i as u16,
        other => panic!("{other:?}"),
    };
    ranges
        .iter()
        .map(|r| {
            let redis::Value::Array(r) = r else { panic!() };
            let nodes = r[2..]
                .iter()
                .map(|n| match n {
                    redis::Value::Array(n) => match &n[2] {
                        redis::Value::BulkString(id) => {
                            (int(&n[1]), String::from_utf8_lossy(id).into_owned())
                        }
                        other => panic!("{other:?}"),
                    },
                    other => panic!("{other:?}"),
                })
                .collect();
            (int(&r[0]), int(&r[1]), nodes)
        })
        .collect()
}

/// The per-core client counts INFO shows, asked on `c`.
fn shard_clients(c: &mut RawConn) -> String {
    let info = tests::text(&c.cmd_str(&["info", "clients"]));
    info.lines()
        .find_map(|l| l.strip_prefix("slotd_shard_clients:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `shard-port-base`: each shard core of a node accepts clients on its own
/// port; CLUSTER SLOTS, CLUSTER SHARDS and MOVED name, for each slot, the
/// port of the core that holds it, on every slotd node (the ports travel in
/// a MODULE message, which redis-server ignores); CLUSTER NODES keeps one
/// address per node; a node restarted without the directive is named by
/// its port again.
#[test]
fn shard_ports_route_clients_to_the_owning_core() {
    let pa = free_port_run();
    let pb = loop {
        let p = free_port_run();
        if p.abs_diff(pa) > 1 {
            break p;
        }
    };
    let a_dir = tests::fresh_dir("cluster-shard-ports", "a")
        .to_string_lossy()
        .into_owned();
    let a_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--cluster-node-timeout", TIMEOUT, "--shards", "2", "--dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(a_dir.clone());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args: Vec<String> = a_args(&["--shard-port-base", &pa.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Server::slotd_cluster(&args);
    let b = node(&["--shard-port-base", &pb.to_string()]);
    let r = Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]);
    create(&[&a, &b, &r]);
    assert!(a
        .log()
        .contains(&format!("Shard 1 accepts clients on port {}.", pa + 1)));
    let (aid, bid, rid) = (myid(&a), myid(&b), myid(&r));
    let core_ports = |id: &str| -> Vec<u16> {
        if id == aid {
            vec![pa, pa + 1]
        } else if id == bid {
            vec![pb, pb + 1]
        } else {
            Vec::new()
        }
    };
    // Both slotd nodes name each core's port for its slots; each slotd
    // master's slots come in one run per core, and redis-server's node is
    // named by its port.
    wait_for(
        20,
        "core ports in CLUSTER SLOTS on both slotd nodes",
        || {
            [&a, &b].iter().all(|n| {
                let ranges = slot_ranges(n);
                [(&aid, &a), (&bid, &b)].iter().all(|(id, _)| {
                    let ports: std::collections::BTreeSet<u16> = ranges
                        .iter()
                        .filter(|(_, _, nodes)| nodes[0].1 == **id)
                        .map(|(_, _, nodes)| nodes[0].0)
                        .collect();
                    ports.into_iter().collect::<Vec<_>>() == core_ports(id)
                })
            })
        },
    );
    assert_eq!(slot_ranges(&a), slot_ranges(&b));
    let ranges = slot_ranges(&a);
    // The slots `redis-cli --cluster create` gave each node sit in one run
    // per core.
    for id in [&aid, &bid] {
        assert_eq!(
            ranges.iter().filter(|(_, _, n)| n[0].1 == *id).count(),
            2,
            "{ranges:?}"
        );
    }
    assert!(ranges
        .iter()
        .filter(|(_, _, n)| n[0].1 == rid)
        .all(|(_, _, n)| n[0].0 == r.port()));
    // redis-server lists one address per node, and is none the worse for
    // the MODULE messages.
    assert!(slot_ranges(&r)
        .iter()
        .all(|(_, _, n)| [a.port(), b.port(), r.port()].contains(&n[0].0)));
    assert!(
        info_field(&r, "cluster_stats_messages_module_received")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(!r.log().contains("Received invalid"), "{}", r.log());
    assert!(a
        .cli(&["cluster", "nodes"])
        .lines()
        .all(|l| !l.contains(&format!(":{pa}@"))));

    // A key of each run: its port's core is the one that owns it (a
    // connection to the port lives on that core), and the node redirects
    // to that port.
    for (first, _, nodes) in ranges.iter().filter(|(_, _, n)| n[0].1 == aid) {
        let (port, _) = &nodes[0];
        // Four connections to a core's port all stay on that core (the
        // node's port would spread them over both).
        let core = (port - pa) as usize;
        let want: Vec<&str> = (0..2).map(|c| if c == core { "4" } else { "0" }).collect();
        let mut conns: Vec<RawConn> = (0..4).map(|_| RawConn::connect(*port).unwrap()).collect();
        wait_for(10, "every connection on the port's core", || {
            shard_clients(&mut conns[3]) == want.join(",")
        });
        drop(conns);
        let key = (0..2_000_000)
            .map(|i| format!("k{i}"))
            .find(|k| crc16::State::<crc16::XMODEM>::calculate(k.as_bytes()) & 16383 == *first)
            .unwrap();
        let moved = tests::text(&b.raw().cmd_str(&["set", &key, "v"]));
        assert_eq!(moved, format!("-MOVED {first} 127.0.0.1:{port}\r\n"));
    }
    // Clients that follow MOVED or route by CLUSTER SLOTS work through the
    // core ports.
    for i in 0..60 {
        let k = format!("sp:{i}");
        let via = [&a, &r, &b][i % 3];
        assert_eq!(via.cli(&["-c", "set", &k, &i.to_string()]).trim(), "OK");
    }
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}", addr(&b))]).unwrap();
    let mut conn = client.get_connection().unwrap();
    for i in 0..60 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("sp:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(v, i as i64);
    }
    // CLUSTER SHARDS: one entry per core of each slotd master.
    let shards = b.cli(&["cluster", "shards"]);
    for p in [pa, pa + 1, pb, pb + 1, r.port()] {
        assert!(
            shards.lines().any(|l| l.trim() == p.to_string()),
            "{shards}"
        );
    }
    assert_eq!(
        a.cli(&["config", "set", "shard-port-base", "0"]).trim(),
        "ERR CONFIG SET failed (possibly related to argument 'shard-port-base') - can't set immutable config"
    );

    // Restarted without the directive, `a` is named by its port again.
    let port = a.port();
    a.stop();
    let args = a_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::slotd_cluster_at(port, &args);
    wait_for(20, "a named by its port again", || {
        [&a, &b].iter().all(|n| {
            slot_ranges(n)
                .iter()
                .filter(|(_, _, nodes)| nodes[0].1 == aid)
                .all(|(_, _, nodes)| nodes[0].0 == port)
        }) && info_field(&a, "cluster_state") == "ok"
    });
    assert!(
        RawConn::connect(pa).is_err(),
        "no core port without the directive"
    );
    // Behind a port mapping the core ports could not be reached: refused.
    let port = tests::free_port().to_string();
    let out = Command::new(tests::slotd_bin())
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
        ])
        .args([
            "--shard-port-base",
            &pa.to_string(),
            "--cluster-announce-port",
            "7",
        ])
        .args(["--cluster-config-file", &format!("{a_dir}/nat.conf")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("shard-port-base cannot be used with a cluster-announce-port other than port"));
    assert_eq!(a.cli(&["-c", "get", "sp:7"]).trim(), "7");
}

/// The replies around a slot half moved from `a` to `b` (Redis's
/// `getNodeByQuery` during a migration): ASK for a key already moved,
/// TRYAGAIN for a multi-key command over keys split between the two, on
/// the source and with ASKING on the target; the target's port shown as
/// PORT and the source's as SOURCE.
fn half_moved_slot_replies(a: &Server, b: &Server) -> Vec<String> {
    let slot = a.cli(&["cluster", "keyslot", "{t}"]).trim().to_string();
    // The slot must be a's: move it there first if `create` gave it away.
    let owner = a.cli(&["cluster", "nodes"]);
    assert!(
        owner.lines().any(|l| l.contains("myself") && {
            let s: u32 = slot.parse().unwrap();
            l.split(' ').skip(8).any(|r| match r.split_once('-') {
                Some((x, y)) => (x.parse::<u32>().unwrap()..=y.parse().unwrap()).contains(&s),
                None => r.parse::<u32>().ok() == Some(s),
            })
        }),
        "slot {slot} is not a's"
    );
    let (aid, bid) = (myid(a), myid(b));
    for k in ["{t}1", "{t}2", "{t}3"] {
        assert_eq!(a.cli(&["set", k, k]).trim(), "OK");
    }
    assert_eq!(
        b.cli(&["cluster", "setslot", &slot, "importing", &aid])
            .trim(),
        "OK"
    );
    assert_eq!(
        a.cli(&["cluster", "setslot", &slot, "migrating", &bid])
            .trim(),
        "OK"
    );
    let bport = b.port().to_string();
    assert_eq!(
        a.cli(&["migrate", "127.0.0.1", &bport, "{t}1", "0", "5000"])
            .trim(),
        "OK"
    );
    let mut out = Vec::new();
    let mut on_a = a.raw();
    for cmd in [
        &["get", "{t}1"][..],
        &["get", "{t}2"],
        &["mget", "{t}2", "{t}3"],
        &["mget", "{t}1", "{t}2"],
        &["del", "{t}1", "{t}2"],
        &["exists", "{t}1", "{t}2"],
        &["set", "{t}1", "new"],
    ] {
        out.push(format!("a {cmd:?}: {}", tests::text(&on_a.cmd_str(cmd))));
    }
    let mut on_b = b.raw();
    for cmd in [
        &["get", "{t}1"][..],
        &["asking"],
        &["get", "{t}1"],
        &["asking"],
        &["mget", "{t}1", "{t}2"],
        &["asking"],
        &["get", "{t}2"],
        // A key named twice is one key: no TRYAGAIN.
        &["asking"],
        &["rpoplpush", "{t}nolist", "{t}nolist"],
        // ASKING before MULTI lasts the whole transaction.
        &["asking"],
        &["multi"],
        &["get", "{t}1"],
        &["set", "{t}1", "b"],
        &["exec"],
        &["get", "{t}1"],
    ] {
        out.push(format!("b {cmd:?}: {}", tests::text(&on_b.cmd_str(cmd))));
    }
    let aport = a.port().to_string();
    out.iter()
        .map(|l| l.replace(&bport, "PORT").replace(&aport, "SOURCE"))
        .collect()
}

/// TRYAGAIN and ASK during a migration answer as on a redis-server
/// cluster, with the check for existing keys made on the core that owns
/// them (2 shards per node).
#[test]
fn a_half_moved_slot_answers_ask_and_tryagain_as_redis() {
    let s = [node(&[]), node(&[]), node(&[])];
    create(&[&s[0], &s[1], &s[2]]);
    let r = [
        Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]),
        Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]),
        Server::redis_cluster(&["--cluster-node-timeout", TIMEOUT]),
    ];
    create(&[&r[0], &r[1], &r[2]]);
    // `{t}` hashes to slot 15891, the third node's after `create`.
    let slotd = half_moved_slot_replies(&s[2], &s[0]);
    let redis = half_moved_slot_replies(&r[2], &r[0]);
    assert_eq!(slotd, redis);
    assert!(slotd
        .iter()
        .any(|l| l.contains("-TRYAGAIN Multiple keys request during rehashing of slot")));
    assert!(slotd
        .iter()
        .any(|l| l.contains("-ASK 15891 127.0.0.1:PORT")));
    // A transaction over keys of the slot, some moved already, runs whole
    // or not at all: Redis refuses it (ASK at the moved key's queueing,
    // then EXECABORT); slotd at EXEC (TRYAGAIN, as for a multi-key
    // command): it no longer runs in part.
    let mut t = s[2].raw();
    for cmd in [
        &["multi"][..],
        &["set", "{t}2", "changed"],
        &["incr", "{t}1"],
    ] {
        t.cmd_str(cmd);
    }
    assert_eq!(
        tests::text(&t.cmd_str(&["exec"])),
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    );
    assert_eq!(tests::text(&t.cmd_str(&["get", "{t}2"])), "$4\r\n{t}2\r\n");
}

/// The hash slot of `key`, as CLUSTER KEYSLOT computes it (no hash tag).
fn slot_of(key: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(key.as_bytes()) & 16383
}

/// The port of the core that holds `slot` in CLUSTER SLOTS.
fn core_port_of(ranges: &[SlotRange], slot: u16) -> u16 {
    ranges
        .iter()
        .find(|(a, b, _)| (*a..=*b).contains(&slot))
        .map(|(_, _, n)| n[0].0)
        .unwrap_or(0)
}

/// Slots that leave a node make its cores uneven: it spreads the slots it
/// keeps over its cores again, moving their keys (with their TTLs and
/// WATCHes) between cores while clients keep writing; a slot a client is
/// blocked on stays where it is; and after `kill -9` the append-only files
/// bring every key back as acknowledged.
#[test]
fn slots_left_are_spread_over_the_cores_again() {
    let p = free_port_run();
    let dir = tests::fresh_dir("cluster-respread", "a")
        .to_string_lossy()
        .into_owned();
    let port = p.to_string();
    let args = [
        "--cluster-node-timeout",
        TIMEOUT,
        "--shards",
        "2",
        "--dir",
        &dir,
        "--shard-port-base",
        &port,
        "--appendonly",
        "yes",
        "--cluster-require-full-coverage",
        "no",
    ];
    let mut a = Server::slotd_cluster(&args);
    assert_eq!(
        a.cli(&["cluster", "addslotsrange", "0", "16383"]).trim(),
        "OK"
    );
    let id = myid(&a);
    wait_for(20, "every slot served, one run per core", || {
        info_field(&a, "cluster_state") == "ok"
            && slot_ranges(&a)
                == vec![
                    (0, 8191, vec![(p, id.clone())]),
                    (8192, 16383, vec![(p + 1, id.clone())]),
                ]
    });
    // Keys in the upper half (core 1), a third with a TTL.
    let keys: Vec<String> = (0..200_000)
        .map(|i| format!("rs:{i}"))
        .filter(|k| slot_of(k) >= 8192)
        .take(3000)
        .collect();
    let mut conn = a.client();
    let mut pipe = redis::pipe();
    for (i, k) in keys.iter().enumerate() {
        match i % 3 {
            0 => pipe
                .cmd("SET")
                .arg(k)
                .arg(i)
                .arg("PX")
                .arg(600_000)
                .ignore(),
            _ => pipe.cmd("SET").arg(k).arg(i).ignore(),
        };
    }
    let () = pipe.query(&mut conn).unwrap();
    // A key of slot 16383, where the move starts: a client blocks on it.
    let blocked_key = (0..2_000_000)
        .map(|i| format!("q{i}"))
        .find(|k| slot_of(k) == 16383)
        .unwrap();
    let mut blocked = RawConn::connect(a.port()).unwrap();
    blocked
        .send(&tests::encode(&[b"BLPOP", blocked_key.as_bytes(), b"0"]))
        .unwrap();
    wait_for(10, "the client blocked", || {
        tests::info_field(&a, "clients", "blocked_clients") == "1"
    });
    // Two transactions watch keys of slots that will move.
    let watched = keys.iter().find(|k| slot_of(k) > 15000).unwrap().clone();
    let changed = keys
        .iter()
        .find(|k| slot_of(k) > 14000 && slot_of(k) < 15000)
        .unwrap()
        .clone();
    let mut w = RawConn::connect(a.port()).unwrap();
    assert_eq!(tests::text(&w.cmd_str(&["watch", &watched])), "+OK\r\n");
    let mut w2 = RawConn::connect(a.port()).unwrap();
    assert_eq!(tests::text(&w2.cmd_str(&["watch", &changed])), "+OK\r\n");
    // Counters in slots that will move, written all along.
    let counters: Vec<String> = (0..200_000)
        .map(|i| format!("ctr:{i}"))
        .filter(|k| slot_of(k) > 13000)
        .take(20)
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, counters, port) = (stop.clone(), counters.clone(), a.port());
        std::thread::spawn(move || {
            let mut c = RawConn::connect(port).unwrap();
            let mut done = vec![0u64; counters.len()];
            let mut errors = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = tests::text(&c.cmd_str(&["incr", &counters[i % counters.len()]]));
                match r.starts_with(':') {
                    true => done[i % counters.len()] += 1,
                    false => errors.push(r),
                }
                i += 1;
            }
            (done, errors)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    // Core 0's half leaves the node.
    assert_eq!(
        a.cli(&["cluster", "delslotsrange", "0", "8191"]).trim(),
        "OK"
    );
    wait_for(20, "the slots left spread over both cores", || {
        let ranges = slot_ranges(&a);
        let on0: u32 = ranges
            .iter()
            .filter(|(_, _, n)| n[0].0 == p)
            .map(|(a, b, _)| (*b - *a) as u32 + 1)
            .sum();
        (4096 - 256..=4096).contains(&on0)
    });
    wait_for(10, "the moves logged", || {
        a.log().contains("between cores to even them out")
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (done, errors) = writer.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(done.iter().sum::<u64>() > 0);
    let ranges = slot_ranges(&a);
    // The moved slots came from the top of core 1's run, but the one a
    // client waits on.
    assert_eq!(core_port_of(&ranges, 16383), p + 1, "{ranges:?}");
    assert_eq!(core_port_of(&ranges, 16382), p, "{ranges:?}");
    assert_eq!(core_port_of(&ranges, 8192), p + 1, "{ranges:?}");
    // The keys are on their new core: COUNTKEYSINSLOT asks the core
    // that owns the slot now.
    let moved_slot = slot_of(&watched);
    assert_eq!(core_port_of(&ranges, moved_slot), p);
    let in_slot = keys.iter().filter(|k| slot_of(k) == moved_slot).count();
    assert_eq!(
        a.cli(&["cluster", "countkeysinslot", &moved_slot.to_string()])
            .trim(),
        in_slot.to_string()
    );
    // The watches went with their keys: EXEC runs where nothing changed
    // the key, and is refused where another client wrote it after the move.
    assert_eq!(core_port_of(&ranges, slot_of(&changed)), p);
    assert_eq!(a.cli(&["set", &changed, "changed"]).trim(), "OK");
    for (conn, key, reply) in [
        (&mut w, &watched, "*1\r\n+OK\r\n"),
        (&mut w2, &changed, "*-1\r\n"),
    ] {
        assert_eq!(tests::text(&conn.cmd_str(&["multi"])), "+OK\r\n");
        assert_eq!(
            tests::text(&conn.cmd_str(&["set", key, "tx"])),
            "+QUEUED\r\n"
        );
        assert_eq!(tests::text(&conn.cmd_str(&["exec"])), reply, "{key}");
    }
    // The blocked client is served.
    assert_eq!(a.cli(&["lpush", &blocked_key, "job"]).trim(), "1");
    assert_eq!(
        tests::text(&blocked.read_reply().unwrap()),
        format!(
            "*2\r\n${}\r\n{blocked_key}\r\n$3\r\njob\r\n",
            blocked_key.len()
        )
    );
    let check = |a: &Server| {
        let mut conn = a.client();
        for (i, k) in keys.iter().enumerate() {
            let v: Option<String> = redis::cmd("GET").arg(k).query(&mut conn).unwrap();
            let want = match k {
                k if *k == watched => "tx".to_string(),
                k if *k == changed => "changed".to_string(),
                _ => i.to_string(),
            };
            assert_eq!(v.as_deref(), Some(want.as_str()), "{k}");
            let pttl: i64 = redis::cmd("PTTL").arg(k).query(&mut conn).unwrap();
            let ttl = i % 3 == 0 && *k != watched && *k != changed;
            assert_eq!(pttl > 0, ttl, "{k}: {pttl}");
        }
        for (k, n) in counters.iter().zip(&done) {
            let v: u64 = redis::cmd("GET").arg(k).query(&mut conn).unwrap();
            assert_eq!(v, *n, "{k}");
        }
        let dbsize: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        assert_eq!(dbsize, keys.len() + counters.len());
    };
    check(&a);
    // A crash: the AOFs of both cores bring back every acknowledged write.
    a.kill();
    let a = Server::slotd_cluster_at(a.port(), &args);
    wait_for(20, "the node back", || {
        info_field(&a, "cluster_state") == "ok"
    });
    check(&a);
}

/// A client blocked on a key whose slot moves to another node gets MOVED
/// at once, as Redis redirects it, instead of waiting for data that now
/// goes to the new owner.
#[test]
fn a_client_blocked_on_a_slot_that_moves_away_is_redirected() {
    let (a, b, c) = (node(&[]), node(&[]), node(&[]));
    create(&[&a, &b, &c]);
    // "{t}" is in slot 15891, c's after `create`.
    let slot = c.cli(&["cluster", "keyslot", "{t}"]).trim().to_string();
    let port = c.port();
    let waiter = std::thread::spawn(move || {
        let mut w = RawConn::connect(port).unwrap();
        let t = Instant::now();
        let r = tests::text(&w.cmd_str(&["blpop", "{t}q", "20"]));
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (cid, aid) = (myid(&c), myid(&a));
    assert_eq!(
        a.cli(&["cluster", "setslot", &slot, "importing", &cid])
            .trim(),
        "OK"
    );
    assert_eq!(
        c.cli(&["cluster", "setslot", &slot, "migrating", &aid])
            .trim(),
        "OK"
    );
    for n in [&a, &c, &b] {
        assert_eq!(
            n.cli(&["cluster", "setslot", &slot, "node", &aid]).trim(),
            "OK"
        );
    }
    let (r, waited) = waiter.join().unwrap();
    assert_eq!(r, format!("-MOVED {slot} 127.0.0.1:{}\r\n", a.port()));
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

/// While the cluster is down, a script's command on a key is refused as
/// Redis's `scriptVerifyClusterState` refuses it (slotd ran it): every
/// such command by default, writes only under
/// `cluster-allow-reads-when-down yes`. One node serving half the slots
/// is down (full coverage required); slotd and redis-server answer alike.
#[test]
fn a_script_is_refused_keys_while_the_cluster_is_down() {
    let mut seen = Vec::new();
    for s in [
        node(&[]),
        Server::redis(&[
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            TIMEOUT,
        ]),
    ] {
        // "b" is in slot 3300, which the node serves.
        assert_eq!(
            s.cli(&["cluster", "addslotsrange", "0", "8191"]).trim(),
            "OK"
        );
        wait_for(10, "the cluster to be down", || {
            info_field(&s, "cluster_state") == "fail"
        });
        let mut r = RawConn::connect(s.port()).unwrap();
        let mut eval = |script: &str| -> String {
            let reply = tests::text(&r.cmd_str(&["eval", script, "0"]));
            // (The script's name and line follow.)
            reply.split(" script:").next().unwrap_or("").to_string()
        };
        let mut replies = vec![
            eval("return redis.call('get', 'b')"),
            eval("return redis.call('set', 'b', '1')"),
            eval("return redis.call('ping')"),
        ];
        assert_eq!(
            s.cli(&["config", "set", "cluster-allow-reads-when-down", "yes"])
                .trim(),
            "OK"
        );
        replies.push(eval("return redis.call('get', 'b')"));
        replies.push(eval("return redis.call('set', 'b', '1')"));
        seen.push(replies);
    }
    assert_eq!(
        seen[0][0],
        "-ERR Script attempted to execute a command while the cluster is down"
    );
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}
