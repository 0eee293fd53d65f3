//! The acceptance scenarios of `shared/spec/redis-cluster-checklist.md`
//! that need no replica (T1, T2, T3, T15, T16, T19), against real slotd
//! processes and the stock `redis-cli`. Ports are free ones picked at run
//! time (never 6379), so lines are matched by shape plus the stated
//! numbers: slot ranges, epochs, slot numbers of keys, counts. The
//! scenarios' replica steps come with replication; T10 and T11 move keys
//! and come with MIGRATE.
//!
//! Every process started here is stopped by `Drop`, also when an assertion
//! fails.

use std::process::Command;
use std::time::{Duration, Instant};
use tests::cluster::{addr, info, line_of, myid, tool, wait_for};
use tests::{RawConn, Server};

fn node(timeout: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--cluster-node-timeout", timeout, "--shards", "1"];
    args.extend_from_slice(extra);
    Server::slotd_cluster(&args)
}

fn is_hex40(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A `redis-cli --cluster create` of three masters, waited until ok.
fn create3(nodes: &[&Server; 3]) -> String {
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(|n| addr(n)));
    let (ok, out) = tool(&args);
    assert!(ok, "{out}");
    wait_for(20, "cluster_state:ok", || {
        nodes.iter().all(|n| info(n, "cluster_state") == "ok")
    });
    out
}

/// T1: six empty nodes joined by hand with MEET, slots by ADDSLOTS.
#[test]
fn t1_manual_build_with_meet_and_addslots() {
    let dir = std::env::temp_dir().join(format!("slotd-t1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_string_lossy().into_owned();
    let nodes: Vec<Server> = (0..6)
        .map(|i| {
            let conf = format!("nodes-{i}.conf");
            node("15000", &["--dir", &d, "--cluster-config-file", &conf])
        })
        .collect();
    // Each node names itself and writes a one-node nodes.conf.
    for (i, n) in nodes.iter().enumerate() {
        let log = n.log();
        let id = log
            .lines()
            .find_map(|l| l.split("No cluster configuration found, I'm ").nth(1))
            .unwrap_or_else(|| panic!("no identity line in:\n{log}"))
            .trim()
            .to_string();
        assert!(is_hex40(&id), "{id}");
        assert_eq!(myid(n), id);
        let conf = std::fs::read_to_string(dir.join(format!("nodes-{i}.conf"))).unwrap();
        // Blank lines are padding (Redis pads a shorter text too).
        let lines: Vec<&str> = conf.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2, "{conf}");
        assert!(lines[0].starts_with(&id), "{conf}");
        assert!(
            lines[0].ends_with(" myself,master - 0 0 0 connected"),
            "{conf}"
        );
        assert_eq!(lines[1], "vars currentEpoch 0 lastVoteEpoch 0");
    }
    let first = &nodes[0];
    for n in &nodes[1..] {
        assert_eq!(
            first
                .cli(&["cluster", "meet", "127.0.0.1", &n.port().to_string()])
                .trim(),
            "OK"
        );
    }
    wait_for(20, "six connected masters", || {
        let nodes_out = first.cli(&["cluster", "nodes"]);
        let lines: Vec<&str> = nodes_out.lines().collect();
        lines.len() == 6
            && lines
                .iter()
                .all(|l| l.contains("master") && l.ends_with("connected"))
    });
    let me = line_of(first, &myid(first));
    assert!(me.contains(" myself,master - 0 0 "), "{me}");
    // Six masters met with config epoch 0 collide; each collision gives
    // the node with the smaller ID a new epoch, until all differ: epochs
    // 0-5, current epoch 5 (the article's `cluster_current_epoch:5`).
    wait_for(20, "distinct config epochs", || {
        let mut epochs: Vec<u64> = first
            .cli(&["cluster", "nodes"])
            .lines()
            .filter_map(|l| l.split(' ').nth(6)?.parse().ok())
            .collect();
        epochs.sort_unstable();
        epochs == [0, 1, 2, 3, 4, 5]
    });
    wait_for(20, "current epoch 5 everywhere", || {
        nodes
            .iter()
            .all(|n| info(n, "cluster_current_epoch") == "5")
    });
    // No slot yet: the cluster is down.
    assert_eq!(info(first, "cluster_state"), "fail");
    let mut r = RawConn::connect(first.port()).unwrap();
    assert_eq!(
        r.cmd_str(&["set", "k", "v"]),
        b"-CLUSTERDOWN Hash slot not served\r\n"
    );
    // ADDSLOTS with every slot named, as `{0..5461}` expands.
    for (n, (lo, hi)) in nodes.iter().zip([(0, 5461), (5462, 10922), (10923, 16383)]) {
        let mut args: Vec<String> = vec!["cluster".into(), "addslots".into()];
        args.extend((lo..=hi).map(|s: u32| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = RawConn::connect(n.port()).unwrap();
        assert_eq!(c.cmd_str(&a), b"+OK\r\n");
    }
    wait_for(20, "cluster_state:ok", || {
        info(first, "cluster_state") == "ok"
    });
    for (f, v) in [
        ("cluster_slots_assigned", "16384"),
        ("cluster_slots_ok", "16384"),
        ("cluster_slots_pfail", "0"),
        ("cluster_slots_fail", "0"),
        ("cluster_known_nodes", "6"),
        ("cluster_size", "3"),
    ] {
        assert_eq!(info(first, f), v, "{f}");
    }
    wait_for(20, "every node to see the slots", || {
        nodes.iter().all(|n| {
            line_of(n, &myid(&nodes[0])).ends_with(" connected 0-5461")
                && line_of(n, &myid(&nodes[1])).ends_with(" connected 5462-10922")
                && line_of(n, &myid(&nodes[2])).ends_with(" connected 10923-16383")
        })
    });
    // Step 8: 6382, 6383, 6384 replicate 6379, 6380, 6381; every node
    // then shows three `slave <master-id>` lines.
    for (r, m) in [(3, 0), (4, 1), (5, 2)] {
        assert_eq!(
            nodes[r]
                .cli(&["cluster", "replicate", &myid(&nodes[m])])
                .trim(),
            "OK"
        );
    }
    wait_for(20, "three slave lines everywhere", || {
        nodes.iter().all(|n| {
            [(3, 0), (4, 1), (5, 2)].iter().all(|&(r, m)| {
                line_of(n, &myid(&nodes[r])).contains(&format!("slave {} ", myid(&nodes[m])))
            })
        })
    });
    assert_eq!(info(first, "cluster_size"), "3");
    // A restarted node comes back with its ID and its view.
    let id0 = myid(first);
    let view = |s: &Server| -> Vec<String> {
        let mut v: Vec<String> = s
            .cli(&["cluster", "nodes"])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                format!("{} {} {}", f[0], f[6], f[8..].join(" "))
            })
            .collect();
        v.sort();
        v
    };
    let before = view(first);
    drop(nodes);
    let again = node(
        "15000",
        &["--dir", &d, "--cluster-config-file", "nodes-0.conf"],
    );
    assert_eq!(myid(&again), id0);
    assert_eq!(view(&again), before);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// T2 (masters only until replication): `redis-cli --cluster create`.
#[test]
fn t2_cluster_create() {
    let (a, b, c) = (node("5000", &[]), node("5000", &[]), node("5000", &[]));
    let out = create3(&[&a, &b, &c]);
    for plan in [
        "Master[0] -> Slots 0 - 5460",
        "Master[1] -> Slots 5461 - 10922",
        "Master[2] -> Slots 10923 - 16383",
        "[OK] All nodes agree about slots configuration.",
        "[OK] All 16384 slots covered.",
    ] {
        assert!(out.contains(plan), "{plan} not in:\n{out}");
    }
    wait_for(20, "the final layout everywhere", || {
        [&a, &b, &c].iter().all(|n| {
            line_of(n, &myid(&a)).ends_with(" 1 connected 0-5460")
                && line_of(n, &myid(&b)).ends_with(" 2 connected 5461-10922")
                && line_of(n, &myid(&c)).ends_with(" 3 connected 10923-16383")
        })
    });
    assert!(line_of(&a, &myid(&b)).contains(&format!("@{}", b.port() + 10000)));
    let (ok, check) = tool(&["check".into(), addr(&a)]);
    assert!(ok, "{check}");
    assert!(
        check.contains("(0 keys | 5461 slots | 0 slaves.")
            || check.contains("-> 0 keys | 5461 slots | 0 slaves."),
        "{check}"
    );
    assert!(
        check.contains("-> 0 keys | 5462 slots | 0 slaves."),
        "{check}"
    );
    assert!(check.contains("[OK] 0 keys in 3 masters."), "{check}");
    assert!(check.contains("0.00 keys per slot on average."), "{check}");
    assert_eq!(info(&a, "cluster_current_epoch"), "3");
    assert_eq!(info(&a, "cluster_my_epoch"), "1");
    // A node that has slots or keys refuses to take part in a new create.
    let d = node("5000", &[]);
    let e = node("5000", &[]);
    assert_eq!(d.cli(&["cluster", "addslots", "0"]).trim(), "OK");
    let (ok, out) = tool(&["create".into(), addr(&d), addr(&e), addr(&a)]);
    assert!(!ok, "{out}");
    assert!(out.contains("is not empty"), "{out}");
}

/// T3: key routing and redirects on the T2 layout.
#[test]
fn t3_key_routing_and_redirects() {
    let (a, b, c) = (node("5000", &[]), node("5000", &[]), node("5000", &[]));
    create3(&[&a, &b, &c]);
    for (k, s) in [("name", "5798"), ("bbb", "5287"), ("aaa", "10439")] {
        assert_eq!(a.cli(&["cluster", "keyslot", k]).trim(), s);
    }
    let mut ra = RawConn::connect(a.port()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ra.cmd_str(&["set", "name", "zhangsan"])),
        format!("-MOVED 5798 127.0.0.1:{}\r\n", b.port())
    );
    assert_eq!(a.cli(&["-c", "set", "name", "zhangsan"]).trim(), "OK");
    assert_eq!(b.cli(&["get", "name"]).trim(), "zhangsan");
    // [003]'s sequence, starting on A.
    assert_eq!(a.cli(&["-c", "set", "name", "mrhelloworld"]).trim(), "OK");
    assert_eq!(b.cli(&["set", "aaa", "111"]).trim(), "OK");
    let mut rb = RawConn::connect(b.port()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rb.cmd_str(&["set", "bbb", "222"])),
        format!("-MOVED 5287 127.0.0.1:{}\r\n", a.port())
    );
    assert_eq!(b.cli(&["-c", "set", "bbb", "222"]).trim(), "OK");
    assert_eq!(a.cli(&["-c", "get", "name"]).trim(), "mrhelloworld");
    assert_eq!(b.cli(&["get", "aaa"]).trim(), "111");
    assert_eq!(b.cli(&["-c", "get", "bbb"]).trim(), "222");
    // Hash tags.
    assert_eq!(
        a.cli(&["cluster", "keyslot", "this{foo}key"]).trim(),
        "12182"
    );
    assert_eq!(
        a.cli(&["cluster", "keyslot", "another{foo}key"]).trim(),
        "12182"
    );
    assert_eq!(
        c.cli(&["mset", "this{foo}key", "1", "another{foo}key", "2"])
            .trim(),
        "OK"
    );
    let mut rc = RawConn::connect(c.port()).unwrap();
    assert_eq!(
        rc.cmd_str(&["mget", "this{foo}key", "another{foo}key"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        rc.cmd_str(&["mset", "this{foo}key", "1", "name", "2"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    // Only db 0.
    assert_eq!(
        rc.cmd_str(&["select", "1"]),
        b"-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(rc.cmd_str(&["select", "0"]), b"+OK\r\n");
    // READONLY on a master: its own slots are served, others still MOVED.
    assert_eq!(rc.cmd_str(&["readonly"]), b"+OK\r\n");
    assert_eq!(rc.cmd_str(&["get", "this{foo}key"]), b"$1\r\n1\r\n");
    assert_eq!(
        String::from_utf8_lossy(&rc.cmd_str(&["get", "name"])),
        format!("-MOVED 5798 127.0.0.1:{}\r\n", b.port())
    );
}

/// T15: PFAIL after the node timeout, FAIL by a majority of masters,
/// failure reports counted.
#[test]
fn t15_pfail_fail_mechanics() {
    const T: u64 = 1000;
    let nodes: Vec<Server> = (0..5).map(|_| node("1000", &[])).collect();
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(addr));
    let (ok, out) = tool(&args);
    assert!(ok, "{out}");
    wait_for(20, "cluster_state:ok", || {
        nodes.iter().all(|n| info(n, "cluster_state") == "ok")
    });
    let victim = &nodes[4];
    let vid = myid(victim);
    let flags = |s: &Server| line_of(s, &vid).split(' ').nth(2).unwrap_or("").to_string();
    Command::new("kill")
        .args(["-STOP", &victim.pid().to_string()])
        .status()
        .unwrap();
    let stopped = Instant::now();
    let watcher = &nodes[0];
    let mut pfail_at = None;
    let mut fail_at = None;
    let mut reports_seen = 0;
    while fail_at.is_none() && stopped.elapsed() < Duration::from_secs(15) {
        let f = flags(watcher);
        if f.contains("fail?") && pfail_at.is_none() {
            pfail_at = Some(stopped.elapsed());
        }
        if f.contains("fail") && !f.contains("fail?") {
            fail_at = Some(stopped.elapsed());
        }
        let n: usize = watcher
            .cli(&["cluster", "count-failure-reports", &vid])
            .trim()
            .parse()
            .unwrap_or(0);
        reports_seen = reports_seen.max(n);
        std::thread::sleep(Duration::from_millis(20));
    }
    let fail_at = fail_at.expect("FAIL within 15 s");
    // Reports keep coming in gossip after FAIL (they stay valid 2T).
    let until = Instant::now() + Duration::from_millis(T);
    while Instant::now() < until {
        let n: usize = watcher
            .cli(&["cluster", "count-failure-reports", &vid])
            .trim()
            .parse()
            .unwrap_or(0);
        reports_seen = reports_seen.max(n);
        std::thread::sleep(Duration::from_millis(20));
    }
    // PFAIL needs more than T without a PONG (a PING in flight when the
    // node stopped may be up to T/2 old already).
    if let Some(p) = pfail_at {
        assert!(p >= Duration::from_millis(T / 2), "fail? after {p:?}");
    }
    assert!(
        fail_at >= Duration::from_millis(T / 2),
        "fail after {fail_at:?}"
    );
    // FAIL needs a majority (3 of 5 masters): the other masters report
    // the node failing in their gossip.
    assert!(reports_seen >= 2, "{reports_seen} failure reports seen");
    // Every other node learns FAIL.
    wait_for(10, "FAIL everywhere", || {
        nodes[..4]
            .iter()
            .all(|n| flags(n).contains("fail") && !flags(n).contains("fail?"))
    });
    assert_eq!(info(watcher, "cluster_state"), "fail");
    Command::new("kill")
        .args(["-CONT", &victim.pid().to_string()])
        .status()
        .unwrap();
    wait_for(20, "FAIL cleared", || {
        nodes[..4].iter().all(|n| !flags(n).contains("fail"))
            && info(watcher, "cluster_state") == "ok"
    });
}

/// T16: an idle six-node cluster pings about once a second per node, and
/// the message counters add up.
#[test]
fn t16_gossip_and_heartbeats() {
    let nodes: Vec<Server> = (0..6).map(|_| node("15000", &[])).collect();
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(addr));
    let (ok, out) = tool(&args);
    assert!(ok, "{out}");
    wait_for(20, "cluster_state:ok", || {
        nodes.iter().all(|n| info(n, "cluster_state") == "ok")
    });
    let pings = |n: &Server| -> u64 {
        info(n, "cluster_stats_messages_ping_sent")
            .parse()
            .unwrap_or(0)
    };
    let before: Vec<u64> = nodes.iter().map(pings).collect();
    std::thread::sleep(Duration::from_secs(5));
    for (n, b) in nodes.iter().zip(before) {
        let grown = pings(n) - b;
        assert!((3..=30).contains(&grown), "{grown} pings in 5 s");
        let text = n.cli(&["cluster", "info"]);
        for dir in ["sent", "received"] {
            let mut sum = 0u64;
            let mut total = None;
            for l in text.lines() {
                let Some((k, v)) = l.trim().split_once(':') else {
                    continue;
                };
                if k == format!("cluster_stats_messages_{dir}") {
                    total = v.parse::<u64>().ok();
                } else if k.starts_with("cluster_stats_messages_")
                    && k.ends_with(&format!("_{dir}"))
                {
                    sum += v.parse::<u64>().unwrap();
                }
            }
            assert_eq!(total, Some(sum), "{dir}:\n{text}");
        }
    }
}

/// T19: announced addresses are what CLUSTER NODES shows, and what peers
/// and clients use.
#[test]
fn t19_announced_addresses() {
    let a = node("5000", &[]);
    let c = node("5000", &[]);
    let bus = tests::free_port().to_string();
    // B listens on 127.0.0.1 and 127.0.0.2 and tells everyone 127.0.0.2,
    // with a bus port of its choosing.
    let b = node(
        "5000",
        &[
            "--bind",
            "127.0.0.1 127.0.0.2",
            "--cluster-announce-ip",
            "127.0.0.2",
            "--cluster-port",
            &bus,
            "--cluster-announce-bus-port",
            &bus,
        ],
    );
    create3(&[&a, &b, &c]);
    let bid = myid(&b);
    wait_for(20, "B's announced address everywhere", || {
        [&a, &c]
            .iter()
            .all(|n| line_of(n, &bid).contains(&format!(" 127.0.0.2:{}@{bus} ", b.port())))
    });
    // A key of B's slots, through A: the redirect names 127.0.0.2.
    let mut ra = RawConn::connect(a.port()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ra.cmd_str(&["get", "name"])),
        format!("-MOVED 5798 127.0.0.2:{}\r\n", b.port())
    );
    assert_eq!(a.cli(&["-c", "set", "name", "x"]).trim(), "OK");
    assert_eq!(b.cli(&["get", "name"]).trim(), "x");
}

/// Sums the slots of a CLUSTER NODES line.
fn slot_count(line: &str) -> usize {
    line.split(' ')
        .skip(8)
        .filter(|r| !r.starts_with('['))
        .map(|r| match r.split_once('-') {
            Some((x, y)) => y.parse::<usize>().unwrap() - x.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// The slot ranges of a CLUSTER NODES line.
fn ranges(line: &str) -> String {
    line.split(' ').skip(8).collect::<Vec<_>>().join(" ")
}

/// The config epoch of a CLUSTER NODES line.
fn epoch(line: &str) -> u64 {
    line.split(' ').nth(6).unwrap_or("0").parse().unwrap_or(0)
}

/// Keys written and read back through the `redis` crate's cluster client.
fn cluster_conn(s: &Server) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(vec![format!("redis://{}", addr(s))])
        .unwrap()
        .get_connection()
        .unwrap()
}

fn reshard(from: &str, to: &str, slots: usize, via: &Server) {
    let (ok, out) = tool(&[
        "reshard".into(),
        addr(via),
        "--cluster-from".into(),
        from.into(),
        "--cluster-to".into(),
        to.into(),
        "--cluster-slots".into(),
        slots.to_string(),
    ]);
    assert!(ok, "{out}");
}

/// T10 and T11 (masters only): a fourth node joins, takes 4096 slots with
/// their keys by `redis-cli --cluster reshard`, the layout is rebalanced;
/// a key mid-migration answers ASK / ASKING / MOVED as Redis; then the
/// slots go back in three reshards, and the node is deleted and forgotten.
#[test]
fn t10_t11_scale_out_and_in() {
    const KEYS: usize = 20_000;
    let (a, b, c) = (node("5000", &[]), node("5000", &[]), node("5000", &[]));
    create3(&[&a, &b, &c]);
    let mut conn = cluster_conn(&a);
    let mut pipe = redis::cluster::cluster_pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k:{i}")).arg(i).ignore();
    }
    // The cluster pipeline routes each command by slot.
    let () = pipe.query(&mut conn).unwrap();
    let d = node("5000", &[]);
    let (ok, out) = tool(&["add-node".into(), addr(&d), addr(&a)]);
    assert!(
        ok && out.contains("[OK] New node added correctly."),
        "{out}"
    );
    let all = [&a, &b, &c, &d];
    let did = myid(&d);
    wait_for(20, "four nodes agreeing", || {
        all.iter()
            .all(|n| n.cli(&["cluster", "nodes"]).lines().count() == 4)
            && all.iter().all(|n| line_of(n, &did).contains("master"))
    });
    // As in Redis, a master that was alone (a minority) waits the rejoin
    // delay before its state turns ok; until then it refuses the keys a
    // reshard would send it (CLUSTERDOWN).
    wait_for(10, "the new node's cluster_state:ok", || {
        info(&d, "cluster_state") == "ok"
    });
    let (ok, check) = tool(&["check".into(), addr(&a)]);
    assert!(ok && check.contains("slots: (0 slots) master"), "{check}");
    let max_before = all
        .iter()
        .map(|n| epoch(&line_of(&a, &myid(n))))
        .max()
        .unwrap();

    reshard("all", &did, 4096, &a);
    wait_for(30, "the new layout everywhere", || {
        all.iter().all(|n| {
            ranges(&line_of(n, &did)) == "0-1364 5461-6826 10923-12287"
                && ranges(&line_of(n, &myid(&a))) == "1365-5460"
                && ranges(&line_of(n, &myid(&b))) == "6827-10922"
                && ranges(&line_of(n, &myid(&c))) == "12288-16383"
        })
    });
    assert!(epoch(&line_of(&a, &did)) > max_before);
    for n in all {
        assert_eq!(slot_count(&line_of(&a, &myid(n))), 4096);
    }
    // No key lost, and the moved ones are on the new node.
    let mut conn = cluster_conn(&b);
    for i in (0..KEYS).step_by(7) {
        let v: usize = redis::cmd("GET")
            .arg(format!("k:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(v, i);
    }
    let sizes: Vec<usize> = all
        .iter()
        .map(|n| n.cli(&["dbsize"]).trim().parse().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), KEYS, "{sizes:?}");
    assert!(sizes[3] > KEYS / 5, "{sizes:?}");
    let (ok, out) = tool(&["rebalance".into(), addr(&a)]);
    assert!(ok, "{out}");
    assert!(
        out.contains("*** No rebalancing needed! All nodes are within the 2.00% threshold."),
        "{out}"
    );

    // One slot moved by hand (T10.8), stopped half way (T10.7): slot 0 from
    // the new node to A.
    let key = (0..KEYS)
        .map(|i| format!("k:{i}"))
        .find(|k| a.cli(&["cluster", "keyslot", k]).trim() == "0")
        .unwrap_or_else(|| "k:no-key-in-slot-0".into());
    if !key.starts_with("k:no") {
        let aid = myid(&a);
        assert_eq!(
            a.cli(&["cluster", "setslot", "0", "importing", &did])
                .trim(),
            "OK"
        );
        assert_eq!(
            d.cli(&["cluster", "setslot", "0", "migrating", &aid])
                .trim(),
            "OK"
        );
        // Every key of the slot moves (the probe among them).
        let in_slot: Vec<String> = d
            .cli(&["cluster", "getkeysinslot", "0", "1000"])
            .lines()
            .map(str::to_string)
            .collect();
        assert!(in_slot.contains(&key));
        let port = a.port().to_string();
        for k in &in_slot {
            let r = d.cli(&["migrate", "127.0.0.1", &port, k, "0", "5000"]);
            assert_eq!(r.trim(), "OK");
        }
        let mut rd = RawConn::connect(d.port()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&rd.cmd_str(&["get", &key])),
            format!("-ASK 0 127.0.0.1:{}\r\n", a.port())
        );
        let mut ra = RawConn::connect(a.port()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ra.cmd_str(&["get", &key])),
            format!("-MOVED 0 127.0.0.1:{}\r\n", d.port())
        );
        assert_eq!(ra.cmd_str(&["asking"]), b"+OK\r\n");
        assert!(String::from_utf8_lossy(&ra.cmd_str(&["get", &key])).starts_with('$'));
        // Finish the move: every master learns the new owner.
        assert_eq!(
            d.cli(&["cluster", "setslot", "0", "node", &aid]).trim(),
            "OK"
        );
        assert_eq!(
            a.cli(&["cluster", "setslot", "0", "node", &aid]).trim(),
            "OK"
        );
        wait_for(20, "slot 0 on A everywhere", || {
            all.iter()
                .all(|n| ranges(&line_of(n, &aid)).starts_with("0 "))
        });
        assert!(a.cli(&["get", &key]).trim().parse::<usize>().is_ok());
        // And back, so T11 starts from T10's layout.
        assert_eq!(
            d.cli(&["cluster", "setslot", "0", "importing", &aid])
                .trim(),
            "OK"
        );
        assert_eq!(
            a.cli(&["cluster", "setslot", "0", "migrating", &did])
                .trim(),
            "OK"
        );
        let port = d.port().to_string();
        for k in &in_slot {
            let r = a.cli(&["migrate", "127.0.0.1", &port, k, "0", "5000"]);
            assert_eq!(r.trim(), "OK");
        }
        assert_eq!(
            a.cli(&["cluster", "setslot", "0", "node", &did]).trim(),
            "OK"
        );
        assert_eq!(
            d.cli(&["cluster", "setslot", "0", "node", &did]).trim(),
            "OK"
        );
        wait_for(20, "slot 0 back on the new node", || {
            all.iter()
                .all(|n| ranges(&line_of(n, &did)).starts_with("0-1364"))
        });
    }

    // T11: del-node refuses a node that holds slots.
    let (ok, out) = tool(&["del-node".into(), addr(&a), did.clone()]);
    assert!(!ok && out.contains("is not empty!"), "{out}");
    reshard(&did, &myid(&a), 1365, &a);
    reshard(&did, &myid(&b), 1365, &a);
    reshard(&did, &myid(&c), 1366, &a);
    wait_for(30, "T11's layout everywhere", || {
        all.iter().all(|n| {
            ranges(&line_of(n, &did)).is_empty()
                && ranges(&line_of(n, &myid(&a))) == "0-5460"
                && ranges(&line_of(n, &myid(&b))) == "5461-6825 6827-10922"
                && ranges(&line_of(n, &myid(&c))) == "6826 10923-16383"
        })
    });
    let (ea, eb, ec) = (
        epoch(&line_of(&a, &myid(&a))),
        epoch(&line_of(&a, &myid(&b))),
        epoch(&line_of(&a, &myid(&c))),
    );
    assert!(ea < eb && eb < ec, "{ea} {eb} {ec}");
    let sizes: usize = [&a, &b, &c]
        .iter()
        .map(|n| n.cli(&["dbsize"]).trim().parse::<usize>().unwrap())
        .sum();
    assert_eq!(sizes, KEYS);
    let (ok, out) = tool(&["del-node".into(), addr(&a), did.clone()]);
    assert!(ok, "{out}");
    for l in [
        format!(">>> Removing node {did} from cluster {}", addr(&a)),
        ">>> Sending CLUSTER FORGET messages to the cluster...".into(),
        ">>> Sending CLUSTER RESET SOFT to the deleted node.".into(),
    ] {
        assert!(out.contains(&l), "{l} not in:\n{out}");
    }
    // Forgotten everywhere, and gossip does not bring it back.
    wait_for(10, "three nodes everywhere", || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.cli(&["cluster", "nodes"]).lines().count() == 3)
    });
    std::thread::sleep(Duration::from_secs(3));
    for n in [&a, &b, &c] {
        assert!(line_of(n, &did).is_empty());
    }
}
