//! slotd as a replica of a stock redis-server 7.0 master (issue 13: how
//! users migrate): REPLICAOF and `replicaof`, the full resynchronization
//! and the command stream (checked by DEBUG DIGEST against the master,
//! which slotd computes as Redis does), partial resynchronization after a
//! lost link, the replica's refusals and settings, INFO replication and
//! ROLE beside a redis-server replica of the same master, and REPLICAOF
//! NO ONE keeping the data.

use std::process::Command;
use std::time::{Duration, Instant};
use tests::cluster::wait_for;
use tests::Server;

/// A field of INFO replication.
fn info(s: &Server, field: &str) -> String {
    tests::info_field(s, "replication", field)
}

/// The field names of INFO replication, in order.
fn info_names(s: &Server) -> Vec<String> {
    s.cli(&["info", "replication"])
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
        .collect()
}

fn digest(s: &Server) -> String {
    let d = s.cli(&["debug", "digest"]).trim().to_string();
    assert!(
        d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()),
        "DEBUG DIGEST: {d}"
    );
    d
}

/// DEBUG is needed for DEBUG DIGEST.
const DEBUG: [&str; 2] = ["--enable-debug-command", "yes"];

/// Waits until `replica` has applied everything `master` has sent, then
/// checks both hold the same data.
fn caught_up(master: &Server, replica: &Server) {
    // The master's offset moves with its PINGs too: compare live values.
    wait_for(20, "the replica to reach the master's offset", || {
        let want = info(master, "master_repl_offset");
        info(replica, "slave_repl_offset") == want
    });
    // Applied a moment after it is acknowledged: compare until equal.
    let d = digest(master);
    let deadline = Instant::now() + Duration::from_secs(5);
    while digest(replica) != d {
        assert!(
            Instant::now() < deadline,
            "replica digest {} != master {}\n--- replica log ---\n{}",
            digest(replica),
            d,
            replica.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Data of every type, TTLs and a second database, on `s`.
fn load(s: &Server, tag: &str) {
    let mut cmds = String::new();
    for i in 0..300 {
        cmds.push_str(&format!("SET {tag}:s:{i} v{i}\n"));
        if i % 10 == 0 {
            cmds.push_str(&format!("EXPIRE {tag}:s:{i} 10000\n"));
        }
    }
    for i in 0..20 {
        cmds.push_str(&format!("HSET {tag}:h:{i} f1 a f2 {i}\n"));
        cmds.push_str(&format!("RPUSH {tag}:l:{i} a b c {i}\n"));
        cmds.push_str(&format!("SADD {tag}:set:{i} x y {i}\n"));
        cmds.push_str(&format!("ZADD {tag}:z:{i} 1 a 2.5 b {i} c\n"));
    }
    cmds.push_str(&format!("SELECT 3\nSET {tag}:db3 three\nSELECT 0\n"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' \"$CMDS\" | redis-cli -h 127.0.0.1 -p {} > /dev/null",
            s.port()
        ))
        .env("CMDS", cmds)
        .status()
        .expect("redis-cli");
    assert!(out.success());
}

/// A redis-server master holding data of every type (`load` with `tag`)
/// and a slotd replica of it (the directive at start, two cores) that has
/// caught up.
fn redis_master_and_slotd_replica(tag: &str) -> (Server, Server) {
    let master = Server::redis(&[DEBUG[0], DEBUG[1], "--repl-diskless-sync-delay", "0"]);
    load(&master, tag);
    let port = master.port().to_string();
    let replica = Server::slotd(&[
        DEBUG[0],
        DEBUG[1],
        "--shards",
        "2",
        "--replicaof",
        "127.0.0.1",
        &port,
    ]);
    wait_for(20, "the slotd replica's link", || {
        info(&replica, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    (master, replica)
}

#[test]
fn slotd_replicates_a_redis_master() {
    let (master, replica) = redis_master_and_slotd_replica("before");
    let port = master.port().to_string();
    // A stock replica of the same master, for INFO's fields.
    let stock = Server::redis(&["--replicaof", "127.0.0.1", &port]);
    assert_eq!(
        replica.cli(&["dbsize"]).trim(),
        master.cli(&["dbsize"]).trim()
    );
    let log = replica.log();
    for line in [
        "Connecting to MASTER 127.0.0.1:",
        "MASTER <-> REPLICA sync started",
        "Full resync from master: ",
        "MASTER <-> REPLICA sync: Loading DB in memory",
        "MASTER <-> REPLICA sync: Finished with success",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }

    // The stream: what redis-server propagates, keys on both cores,
    // transactions, another database, rewritten commands.
    write_stream(&master);
    caught_up(&master, &replica);

    // Writes are refused, as Redis's replica refuses them, unless
    // replica-read-only is off.
    assert_eq!(
        replica.cli(&["set", "x", "1"]).trim(),
        "READONLY You can't write against a read only replica."
    );
    assert_eq!(
        stock.cli(&["set", "x", "1"]).trim(),
        "READONLY You can't write against a read only replica."
    );
    let mut r = replica.raw();
    assert_eq!(r.cmd_str(&["multi"]), b"+OK\r\n");
    assert!(r.cmd_str(&["set", "x", "1"]).starts_with(b"-READONLY"));
    assert!(r.cmd_str(&["exec"]).starts_with(b"-EXECABORT"));
    replica.cli(&["config", "set", "replica-read-only", "no"]);
    assert_eq!(replica.cli(&["set", "local", "1"]).trim(), "OK");
    assert_eq!(info(&replica, "slave_read_only"), "0");
    replica.cli(&["del", "local"]);
    replica.cli(&["config", "set", "replica-read-only", "yes"]);

    // INFO replication: Redis's fields in Redis's order; ROLE; the master
    // client in CLIENT LIST.
    let want = info(&master, "master_repl_offset");
    wait_for(20, "the stock replica to catch up", || {
        info(&stock, "master_link_status") == "up" && info(&stock, "master_repl_offset") == want
    });
    assert_eq!(info_names(&replica), info_names(&stock));
    for f in [
        "role",
        "master_host",
        "master_port",
        "master_link_status",
        "slave_priority",
        "slave_read_only",
        "master_replid",
        "master_repl_offset",
    ] {
        assert_eq!(info(&replica, f), info(&stock, f), "{f}");
    }
    let role = replica.cli(&["role"]);
    let lines: Vec<&str> = role.lines().collect();
    assert_eq!(
        lines[..4],
        ["slave", "127.0.0.1", port.as_str(), "connected"]
    );
    assert_eq!(lines[4], info(&replica, "slave_repl_offset"));
    let clients = replica.cli(&["client", "list"]);
    assert!(
        clients
            .lines()
            .any(|l| l.contains("flags=M") && l.contains(&format!("addr=127.0.0.1:{port}"))),
        "{clients}"
    );
    let slaves = master.cli(&["info", "replication"]);
    assert!(slaves.contains("connected_slaves:2"), "{slaves}");

    // A lost link resumes with PSYNC: the master counts a partial sync and
    // the writes made meanwhile arrive.
    let partial = info_stat(&master, "sync_partial_ok");
    master.cli(&["client", "kill", "type", "replica"]);
    master.cli(&["set", "while-away", "1"]);
    master.cli(&["hset", "h", "later", "1"]);
    wait_for(20, "the links to come back", || {
        info(&replica, "master_link_status") == "up" && info(&stock, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    assert!(info_stat(&master, "sync_partial_ok") >= partial + 2);
    assert!(replica
        .log()
        .contains("Successful partial resynchronization with master."));

    // Expired keys stay until the master's DEL: the replica reads them as
    // absent but counts them, as Redis's replica does.
    master.cli(&["debug", "set-active-expire", "0"]);
    master.cli(&["set", "short", "1", "px", "50"]);
    caught_up(&master, &replica);
    std::thread::sleep(Duration::from_millis(200));
    let before = replica.cli(&["dbsize"]).trim().parse::<i64>().unwrap();
    assert_eq!(replica.cli(&["get", "short"]).trim(), "");
    assert_eq!(
        replica.cli(&["dbsize"]).trim().parse::<i64>().unwrap(),
        before
    );
    assert_eq!(master.cli(&["get", "short"]).trim(), "");
    caught_up(&master, &replica);
    assert_eq!(
        replica.cli(&["dbsize"]).trim().parse::<i64>().unwrap(),
        before - 1
    );

    // REPLICAOF NO ONE: a master again, with the data, writable, the old
    // replication ID kept as the secondary one.
    let old_id = info(&master, "master_replid");
    let offset: i64 = info(&replica, "slave_repl_offset").parse().unwrap();
    assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
    assert_eq!(info(&replica, "role"), "master");
    assert_eq!(info(&replica, "master_replid2"), old_id);
    assert_eq!(
        info(&replica, "second_repl_offset"),
        (offset + 1).to_string()
    );
    assert_ne!(info(&replica, "master_replid"), old_id);
    assert_eq!(digest(&replica), digest(&master));
    assert_eq!(replica.cli(&["set", "mine", "1"]).trim(), "OK");
    assert!(replica
        .log()
        .contains("MASTER MODE enabled (user request from 'id="));
    // And back: the same master again is a new link (a full sync, since
    // this node wrote on its own meanwhile).
    assert_eq!(replica.cli(&["replicaof", "127.0.0.1", &port]).trim(), "OK");
    assert_eq!(
        replica.cli(&["replicaof", "127.0.0.1", &port]).trim(),
        "OK Already connected to specified master"
    );
    wait_for(20, "the link to come back", || {
        info(&replica, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    assert_eq!(replica.cli(&["exists", "mine"]).trim(), "0");
    assert_eq!(
        replica.cli(&["replicaof", "127.0.0.1", "x"]).trim(),
        "ERR Invalid master port"
    );
}

/// redis-server's `FAILOVER TO` a slotd replica: the master sends its
/// replica `PSYNC <replid> <offset> FAILOVER` from its new replica link,
/// and the replica, whose replication ID it is, becomes a master first
/// (Redis's `syncCommand`), so the old master continues as its replica.
#[test]
fn a_redis_masters_failover_to_a_slotd_replica_completes() {
    let (master, replica) = redis_master_and_slotd_replica("fo");
    let target = replica.port().to_string();
    assert_eq!(
        master
            .cli(&["failover", "to", "127.0.0.1", &target, "timeout", "10000"])
            .trim(),
        "OK"
    );
    wait_for(20, "the old master to follow the slotd node", || {
        info(&master, "role") == "slave"
            && info(&master, "master_port") == target
            && info(&master, "master_link_status") == "up"
            && info(&master, "master_failover_state") == "no-failover"
    });
    assert_eq!(info(&replica, "role"), "master");
    let log = replica.log();
    for line in [
        "Failover request received for replid ",
        "MASTER MODE enabled (failover request from '",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    // Writes go to the new master and reach the old one.
    assert_eq!(replica.cli(&["set", "after", "failover"]).trim(), "OK");
    caught_up(&replica, &master);
    assert_eq!(master.cli(&["get", "after"]).trim(), "failover");
    // A replid that is not the replica's own is refused, as in Redis.
    let other = Server::slotd(&["--replicaof", "127.0.0.1", &target]);
    wait_for(20, "a replica of the new master", || {
        info(&other, "master_link_status") == "up"
    });
    let mut r = other.raw();
    assert_eq!(
        r.cmd_str(&[
            "psync",
            "0123456789012345678901234567890123456789",
            "1",
            "failover"
        ]),
        b"-ERR PSYNC FAILOVER replid must match my replid.\r\n"
    );
}

/// REPLICAOF NO ONE under a stream of writes: the node's history ends at
/// the offset it reports (`second_repl_offset` - 1), and its data is the
/// stream up to there, no command more or less. The master sends only
/// INCRs of one key (no PINGs in the test's time), each the same number
/// of bytes, so the counter must equal the bytes past the start over that
/// size. Before 2026-12-07 the rest of a read in progress was applied past
/// the offset, and the master client dropped what it had not run when the
/// link closed its end first. The data is read right after the reply: the
/// promotion answers once the master client has run what it was handed
/// (before 2026-12-07 the test read until the counter stayed put).
#[test]
fn replicaof_no_one_keeps_exactly_the_stream_up_to_the_offset_it_reports() {
    let master = Server::redis(&["--repl-ping-replica-period", "3600"]);
    let port = master.port().to_string();
    let replica = Server::slotd(&["--replicaof", "127.0.0.1", &port]);
    const KEY: &str = "counter:__rand_int__";
    // `*2 $4 INCR $20 counter:__rand_int__` as the master propagates it.
    const INCR_LEN: i64 = 41;
    for round in 0..6 {
        wait_for(20, "the replica's link", || {
            info(&replica, "master_link_status") == "up"
        });
        // A write first, so the stream's SELECT is behind the start.
        master.cli(&["set", "warm", &round.to_string()]);
        master.cli(&["del", KEY]);
        wait_for(20, "the replica to catch up", || {
            info(&replica, "slave_repl_offset") == info(&master, "master_repl_offset")
        });
        let start: i64 = info(&master, "master_repl_offset").parse().unwrap();
        let mut load = Command::new("redis-benchmark")
            .args([
                "-p", &port, "-t", "incr", "-n", "3000000", "-P", "32", "-c", "4", "-q",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-benchmark");
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
        let _ = load.kill();
        let _ = load.wait();
        let end = info(&replica, "second_repl_offset").parse::<i64>().unwrap() - 1;
        // What the link handed over has run before the promotion's reply.
        let got: i64 = replica.cli(&["get", KEY]).trim().parse().unwrap_or(0);
        let bytes = end - start;
        assert!(
            bytes > 0,
            "round {round}: nothing streamed before REPLICAOF NO ONE"
        );
        assert_eq!(
            bytes % INCR_LEN,
            0,
            "round {round}: offset {end} is not at a command's end (start {start})"
        );
        assert_eq!(
            got,
            bytes / INCR_LEN,
            "round {round}: the data holds {got} INCRs, the offset reported {end} covers {}",
            bytes / INCR_LEN
        );
        // What ran after the promotion was already counted in the old
        // history: the new one has no write of its own yet.
        assert_eq!(
            info(&replica, "master_repl_offset").parse::<i64>().unwrap(),
            end,
            "round {round}: the promoted node counted writes nobody sent it"
        );
        assert_eq!(replica.cli(&["replicaof", "127.0.0.1", &port]).trim(), "OK");
    }
}

/// REPLICAOF NO ONE while core 0, which runs the master client, is busy:
/// the link has handed over commands that have not run yet. Redis never
/// runs a command of its old master after a write of its own as a master;
/// slotd runs what was handed over (its offset counts it) before it takes
/// a write: the promotion's +OK comes once the master client has run it.
/// Before 2026-12-07 the reply came at once and the INCRs still waiting
/// ran after a client's SET of the same key, on the promoted node only.
#[test]
fn a_promotion_runs_what_was_handed_over_before_the_new_masters_writes() {
    let master = Server::redis(&["--repl-ping-replica-period", "3600"]);
    let port = master.port().to_string();
    let (replica, base) = slotd_with_core_ports(&["--replicaof", "127.0.0.1", &port]);
    wait_for(20, "the replica's link", || {
        info(&replica, "master_link_status") == "up"
    });
    master.cli(&["set", "k", "0"]);
    wait_for(20, "the replica to catch up", || {
        info(&replica, "slave_repl_offset") == info(&master, "master_repl_offset")
    });
    // Core 0 sleeps; the link (a thread of its own) goes on reading.
    let sleeper = sleep_core_0(base);
    let incrs: String = "INCR k\r\n".repeat(500);
    let (ok, out) = tests::redis_cli_pipe(&master, incrs.into_bytes());
    assert!(ok, "redis-cli --pipe: {out}");
    // (INFO would wait for core 0.) The link reads them meanwhile: checked
    // below, from where the promotion says the old history ends.
    std::thread::sleep(Duration::from_millis(300));
    let mut c = tests::RawConn::connect(base + 1).expect("core 1's port");
    c.set_read_timeout(Duration::from_secs(20));
    asleep(&sleeper, "REPLICAOF NO ONE");
    assert_eq!(
        tests::text(&c.cmd_str(&["replicaof", "no", "one"])),
        "+OK\r\n"
    );
    assert_eq!(tests::text(&c.cmd_str(&["set", "k", "1000000"])), "+OK\r\n");
    assert_eq!(
        tests::text(&sleeper.join().unwrap()),
        "+OK\r\n",
        "DEBUG SLEEP on core 0"
    );
    // Whatever was still to run has run by now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        info(&replica, "second_repl_offset"),
        (info(&master, "master_repl_offset").parse::<i64>().unwrap() + 1).to_string(),
        "the link had read every INCR before the promotion"
    );
    assert_eq!(
        replica.cli(&["get", "k"]).trim(),
        "1000000",
        "an INCR of the old master ran after the new master's SET"
    );
}

/// A field of INFO stats, as a number (-1 when absent).
fn info_stat(s: &Server, field: &str) -> i64 {
    tests::info_field(s, "stats", field).parse().unwrap_or(-1)
}

#[test]
fn replica_authenticates_and_follows_settings() {
    // masteruser + masterauth against an ACL user; the announced address.
    let master = Server::redis(&[
        "--repl-diskless-sync-delay",
        "0",
        "--repl-ping-replica-period",
        "1",
    ]);
    master.cli(&["acl", "setuser", "repl", "on", ">pw", "+@all", "~*"]);
    master.cli(&["config", "set", "requirepass", "secret"]);
    master.cli(&["-a", "secret", "--no-auth-warning", "set", "k", "v"]);
    let port = master.port().to_string();
    let replica = Server::slotd(&[
        "--masteruser",
        "repl",
        "--masterauth",
        "pw",
        "--replica-announce-ip",
        "10.1.2.3",
        "--replica-announce-port",
        "4567",
        "--repl-timeout",
        "2",
        "--replica-serve-stale-data",
        "no",
        "--rdb-del-sync-files",
        "yes",
        "--replica-lazy-flush",
        "yes",
    ]);
    assert_eq!(
        replica.cli(&["config", "get", "repl-timeout"]),
        "repl-timeout\n2\n"
    );
    assert_eq!(replica.cli(&["replicaof", "127.0.0.1", &port]).trim(), "OK");
    wait_for(20, "the link", || {
        info(&replica, "master_link_status") == "up"
    });
    assert_eq!(replica.cli(&["get", "k"]).trim(), "v");
    // rdb-del-sync-files: no persistence, so the transfer's file goes.
    wait_for(5, "the sync file to go", || {
        !replica.dir().join("dump.rdb").exists()
    });
    assert!(replica
        .log()
        .contains("Removing the RDB file obtained from the master."));
    wait_for(10, "the master to list the announced address", || {
        master
            .cli(&["-a", "secret", "--no-auth-warning", "info", "replication"])
            .contains("slave0:ip=10.1.2.3,port=4567,state=online")
    });

    // repl-timeout: a master that stops answering is dropped after 2 s;
    // with replica-serve-stale-data no, data commands are refused while
    // the link is down, INFO and the like still answer.
    let pid = master.pid().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    assert!(stop.is_ok_and(|s| s.success()));
    let started = Instant::now();
    wait_for(10, "the replica to time the master out", || {
        info(&replica, "master_link_status") == "down"
    });
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert_eq!(
        replica.cli(&["get", "k"]).trim(),
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    assert_eq!(replica.cli(&["ping"]).trim(), "PONG");
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(replica
        .log()
        .contains("MASTER timeout: no data nor PING received..."));
    wait_for(20, "the link to come back", || {
        info(&replica, "master_link_status") == "up"
    });
    assert_eq!(replica.cli(&["get", "k"]).trim(), "v");

    // replica-lazy-flush: the next full resynchronization hands the old
    // keys to the lazy free thread (INFO counts them as Redis does).
    let lazy = |s: &Server| -> i64 {
        tests::info_field(s, "memory", "lazyfreed_objects")
            .parse()
            .unwrap_or(-1)
    };
    let before = lazy(&replica);
    replica.cli(&["replicaof", "no", "one"]);
    replica.cli(&["set", "mine", "1"]);
    replica.cli(&["replicaof", "127.0.0.1", &port]);
    wait_for(20, "the full resynchronization", || {
        info(&replica, "master_link_status") == "up"
            && replica.cli(&["exists", "mine"]).trim() == "0"
    });
    wait_for(5, "the lazy free", || lazy(&replica) >= before + 2);

    // A wrong password: the link never comes up, with Redis's log line.
    let other = Server::slotd(&["--masterauth", "wrong"]);
    other.cli(&["replicaof", "127.0.0.1", &port]);
    wait_for(10, "the AUTH failure", || {
        other.log().contains("Unable to AUTH to MASTER: ")
    });
    assert_eq!(info(&other, "master_link_status"), "down");

    // Cluster mode refuses REPLICAOF, as Redis does.
    let node = Server::slotd_cluster(&[]);
    assert_eq!(
        node.cli(&["replicaof", "127.0.0.1", &port]).trim(),
        "ERR REPLICAOF not allowed in cluster mode."
    );
}

/// The stream's commands of both tests: keys on both cores, transactions,
/// another database, commands that Redis rewrites when it propagates.
fn write_stream(master: &Server) {
    for cmd in [
        vec!["set", "a", "1"],
        vec!["incr", "a"],
        vec!["incrbyfloat", "f", "1.5"],
        vec!["mset", "k1", "1", "k2", "2", "k3", "3", "k4", "4"],
        vec!["expire", "k1", "1000"],
        vec!["set", "px", "v", "px", "100000"],
        vec!["lpush", "list", "a", "b", "c"],
        vec!["lpop", "list"],
        vec!["sadd", "s", "a", "b", "c", "d"],
        vec!["spop", "s"],
        vec!["hset", "h", "f", "v", "g", "w"],
        vec!["zadd", "z", "1", "a", "2", "b"],
        vec!["zincrby", "z", "3", "a"],
        vec!["del", "k2", "before:s:1", "before:s:2"],
        vec!["rename", "k3", "k5"],
        vec!["getex", "k4", "ex", "500"],
    ] {
        let out = master.cli(&cmd);
        assert!(!out.starts_with("ERR"), "{cmd:?}: {out}");
    }
    let mut m = master.raw();
    m.cmd_str(&["multi"]);
    for i in 0..10 {
        m.cmd_str(&["set", &format!("tx{i}"), &i.to_string()]);
    }
    m.cmd_str(&["incr", "a"]);
    assert!(tests::show(&m.cmd_str(&["exec"])).contains("OK"));
    m.cmd_str(&["select", "5"]);
    m.cmd_str(&["set", "in5", "x"]);
}

#[test]
fn a_redis_replica_follows_slotd() {
    let master = Server::slotd(&[
        DEBUG[0],
        DEBUG[1],
        "--shards",
        "2",
        "--repl-backlog-size",
        "2mb",
        "--repl-ping-replica-period",
        "1",
        "--repl-disable-tcp-nodelay",
        "yes",
    ]);
    load(&master, "before");
    let port = master.port().to_string();
    let replica = Server::redis(&[DEBUG[0], DEBUG[1], "--replicaof", "127.0.0.1", &port]);
    wait_for(20, "the replica's link", || {
        info(&replica, "master_link_status") == "up"
    });
    // The full resynchronization: the snapshot is of the offset the
    // replica starts from.
    caught_up(&master, &replica);
    assert_eq!(
        replica.cli(&["dbsize"]).trim(),
        master.cli(&["dbsize"]).trim()
    );
    assert_eq!(info_stat(&master, "sync_full"), 1);
    write_stream(&master);
    caught_up(&master, &replica);

    // Writes while the replica syncs go into the stream after its
    // snapshot: none lost, none twice.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let port = master.port();
            std::thread::spawn(move || {
                let mut c = tests::RawConn::connect(port).unwrap();
                for round in 0..60 {
                    // A pipeline of INCRs over both cores, and an MSET
                    // across them.
                    let mut batch = Vec::new();
                    for i in 0..50 {
                        let k = format!("ctr{}", (i * 7 + w) % 31);
                        batch.extend(tests::encode(&[b"incr", k.as_bytes()]));
                    }
                    let (m, n) = (format!("m{w}:{round}"), format!("n{w}:{round}"));
                    batch.extend(tests::encode(&[
                        b"mset",
                        m.as_bytes(),
                        b"1",
                        n.as_bytes(),
                        b"2",
                    ]));
                    c.send(&batch).unwrap();
                    for _ in 0..51 {
                        c.read_reply().unwrap();
                    }
                }
            })
        })
        .collect();
    // The first sync was diskless (Redis's default): no file on the
    // master, the EOF framing on the replica. The second from disk.
    assert!(!master.dir().join("dump.rdb").exists());
    assert!(replica
        .log()
        .contains("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF"));
    master.cli(&["config", "set", "repl-diskless-sync", "no"]);
    let second = Server::redis(&[DEBUG[0], DEBUG[1], "--replicaof", "127.0.0.1", &port]);
    for w in writers {
        w.join().unwrap();
    }
    wait_for(20, "the second replica's link", || {
        info(&second, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    caught_up(&master, &second);
    assert_eq!(info_stat(&master, "sync_full"), 2);
    assert!(master.dir().join("dump.rdb").exists());
    assert!(second.log().contains("bytes from master to disk"));

    // INFO replication and ROLE, as a redis-server master shows them.
    let text = master.cli(&["info", "replication"]);
    assert!(text.contains("connected_slaves:2"), "{text}");
    assert!(text.contains("repl_backlog_active:1"), "{text}");
    assert!(text.contains("repl_backlog_size:2097152"), "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        [
            "role",
            "connected_slaves",
            "slave0",
            "slave1",
            "master_failover_state",
            "master_replid",
            "master_replid2",
            "master_repl_offset",
            "second_repl_offset",
            "repl_backlog_active",
            "repl_backlog_size",
            "repl_backlog_first_byte_offset",
            "repl_backlog_histlen"
        ]
    );
    assert_eq!(
        info(&replica, "master_replid"),
        info(&master, "master_replid")
    );
    let role = master.cli(&["role"]);
    assert!(role.starts_with("master\n"), "{role}");
    assert!(
        role.contains(&format!("127.0.0.1\n{}\n", replica.port())),
        "{role}"
    );

    // WAIT counts the replicas that acknowledged the writes before it.
    let mut c = master.raw();
    c.cmd_str(&["set", "w", "1"]);
    assert_eq!(tests::text(&c.cmd_str(&["wait", "2", "5000"])), ":2\r\n");
    let started = Instant::now();
    assert_eq!(tests::text(&c.cmd_str(&["wait", "3", "300"])), ":2\r\n");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A lost link resumes from the backlog.
    replica.cli(&["client", "kill", "type", "master"]);
    master.cli(&["set", "while-away", "1"]);
    master.cli(&["mset", "wa1", "1", "wa2", "2", "wa3", "3"]);
    wait_for(20, "the link to come back", || {
        info(&replica, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    assert_eq!(info_stat(&master, "sync_partial_ok"), 1);
    assert!(master
        .log()
        .contains("Partial resynchronization request from 127.0.0.1:"));
    // A hand-made replica: the newlines a replica sends while it loads
    // are skipped, and its ACK is counted.
    {
        use std::io::Read;
        let mut c = tests::RawConn::connect(master.port()).unwrap();
        assert_eq!(
            c.cmd_str(&["replconf", "listening-port", "9999"]),
            b"+OK\r\n"
        );
        c.send(&tests::encode(&[b"psync", b"?", b"-1"])).unwrap();
        c.set_read_timeout(Duration::from_secs(10));
        // +FULLRESYNC <id> <offset>\r\n, then $<len>\r\n and the RDB.
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let need = loop {
            let n = c.stream().read(&mut buf).unwrap();
            assert!(n > 0, "the master closed the link");
            got.extend_from_slice(&buf[..n]);
            // Newlines (keepalives) may come before the `$<len>` line.
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((first, rest)) = text.split_once("\r\n") else {
                continue;
            };
            assert!(first.starts_with("+FULLRESYNC "), "{text}");
            let body = rest.trim_start_matches('\n');
            if let Some((head, _)) = body.split_once("\r\n") {
                let len: usize = head.trim_start_matches('$').parse().unwrap();
                break text.len() - body.len() + head.len() + 2 + len;
            }
        };
        while got.len() < need {
            let n = c.stream().read(&mut buf).unwrap();
            assert!(n > 0, "the master closed the link");
            got.extend_from_slice(&buf[..n]);
        }
        c.send(b"\n\n").unwrap();
        c.send(&tests::encode(&[b"replconf", b"ack", b"5"]))
            .unwrap();
        wait_for(10, "the hand-made replica's ACK", || {
            info(&master, "slave2").contains("port=9999,state=online,offset=5,")
        });
    }
    // The replica keeps PINGs coming (repl-ping-replica-period 1): its
    // last I/O stays recent with no writes.
    std::thread::sleep(Duration::from_millis(2500));
    let idle: i64 = info(&replica, "master_last_io_seconds_ago")
        .parse()
        .unwrap();
    assert!(idle <= 1, "{idle}");
}

#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    // As Redis: with `min-replicas-to-write 1`, writes need a replica
    // whose last ACK is at most `min-replicas-max-lag` seconds old.
    let mut pair = Vec::new();
    for bin in ["slotd", "redis"] {
        let args = ["--min-replicas-to-write", "1", "--min-slaves-max-lag", "2"];
        let master = if bin == "slotd" {
            Server::slotd(&[&args[..], &["--shards", "2"]].concat())
        } else {
            Server::redis(&args)
        };
        let mut c = master.raw();
        let refused = tests::text(&c.cmd_str(&["set", "k", "v"]));
        let read = tests::text(&c.cmd_str(&["get", "k"]));
        c.cmd_str(&["multi"]);
        let queued = tests::text(&c.cmd_str(&["set", "k", "v"]));
        let exec = tests::text(&c.cmd_str(&["exec"]));
        let port = master.port().to_string();
        let mut replica = Server::redis(&["--replicaof", "127.0.0.1", &port]);
        wait_for(20, "the replica's link", || {
            info(&replica, "master_link_status") == "up"
        });
        wait_for(5, "a good replica", || {
            tests::text(&c.cmd_str(&["set", "k", "v"])) == "+OK\r\n"
        });
        // The replica stops acknowledging: refused again after the lag.
        Command::new("kill")
            .args(["-STOP", &replica.pid().to_string()])
            .status()
            .unwrap();
        wait_for(10, "the replica no longer good", || {
            tests::text(&c.cmd_str(&["set", "k", "v"])).starts_with("-NOREPLICAS")
        });
        assert_eq!(
            tests::text(&c.cmd_str(&["config", "set", "min-slaves-to-write", "0"])),
            "+OK\r\n"
        );
        let off = tests::text(&c.cmd_str(&["set", "k", "v"]));
        Command::new("kill")
            .args(["-CONT", &replica.pid().to_string()])
            .status()
            .unwrap();
        replica.stop();
        pair.push((refused, read, queued, exec, off));
    }
    assert_eq!(
        pair[0].0, "-NOREPLICAS Not enough good replicas to write.\r\n",
        "{pair:?}"
    );
    assert_eq!(pair[0], pair[1]);
}

/// A redis-server master, and the arguments of a 2-shard slotd replica of
/// it with its own `dir` (plus `extra`), to start and restart.
fn master_and_replica_args(name: &str, extra: &[&str]) -> (Server, Vec<String>) {
    let master = Server::redis(&DEBUG);
    let dir = tests::fresh_dir(name, "r");
    let mut args: Vec<String> = DEBUG.iter().map(|a| a.to_string()).collect();
    args.extend(["--shards".into(), "2".into(), "--dir".into()]);
    args.push(dir.to_string_lossy().into_owned());
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(["--replicaof".into(), "127.0.0.1".into()]);
    args.push(master.port().to_string());
    (master, args)
}

/// The restarted `replica` caught up with `master` by a partial
/// resynchronization: both log lines, no new full one.
fn resumed_partially(master: &Server, replica: &Server, full_before: &str) {
    caught_up(master, replica);
    let log = replica.log();
    assert!(
        log.contains("Trying a partial resynchronization (request ")
            && log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    assert_eq!(tests::info_field(master, "stats", "sync_full"), full_before);
}

/// A snapshot taken while the replica's link is down (its master refuses
/// it for a while) records where the replica stands in the master's
/// stream, as Redis's cached master does: killed and restarted from that
/// snapshot, the replica continues partially.
#[test]
fn a_snapshot_taken_while_the_link_is_down_lets_a_killed_replica_continue_partially() {
    let (master, args) = master_and_replica_args("replica-down-snapshot", &[]);
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let mut replica = Server::slotd(&args);
    caught_up(&master, &replica);
    let mut m = master.raw();
    for i in 0..100 {
        m.cmd_str(&["incr", &format!("c{i}")]);
    }
    caught_up(&master, &replica);
    // The master refuses the replica from now on: its link goes down and
    // stays down.
    m.cmd_str(&["config", "set", "requirepass", "sesame"]);
    m.cmd_str(&["client", "kill", "type", "replica"]);
    wait_for(10, "the link down", || {
        tests::info_field(&replica, "replication", "master_link_status") == "down"
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tests::info_field(&replica, "replication", "master_link_status"),
        "down"
    );
    assert_eq!(replica.cli(&["bgsave"]).trim(), "Background saving started");
    wait_for(20, "the replica's snapshot", || {
        tests::info_field(&replica, "persistence", "rdb_saves") == "1"
    });
    replica.kill();
    assert_eq!(
        tests::text(&m.cmd_str(&["config", "set", "requirepass", ""])),
        "+OK\r\n"
    );
    for i in 0..50 {
        m.cmd_str(&["incr", &format!("c{i}")]);
    }
    let full_before = tests::info_field(&master, "stats", "sync_full");
    let replica = Server::slotd_at(replica.port(), &args);
    resumed_partially(&master, &replica, &full_before);
}

#[test]
fn a_replica_shut_down_and_restarted_continues_partially_in_its_database() {
    // The master's stream stays in database 3 across the replica's
    // restart (Redis selects again only after a full resynchronization):
    // the replica must remember it, with the offset, in its final save.
    let (master, args) = master_and_replica_args("replica-restart", &["--save", "3600 1"]);
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let mut replica = Server::slotd(&args);
    // After the full resynchronization the stream selects database 3 for
    // the first write, and never again.
    caught_up(&master, &replica);
    let mut m = master.raw();
    m.cmd_str(&["select", "3"]);
    for i in 0..100 {
        m.cmd_str(&["set", &format!("k{i}"), &i.to_string()]);
    }
    caught_up(&master, &replica);
    let full_before = tests::info_field(&master, "stats", "sync_full");
    // SHUTDOWN (save rules: the final save) closes the connection.
    let mut r = replica.raw();
    r.send(b"SHUTDOWN\r\n").unwrap();
    assert!(r.is_closed(Duration::from_secs(20)));
    wait_for(20, "the replica's exit", || {
        replica
            .log()
            .contains("Redis is now ready to exit, bye bye...")
    });
    replica.kill();
    for i in 100..150 {
        m.cmd_str(&["set", &format!("k{i}"), &i.to_string()]);
    }
    m.cmd_str(&["incr", "k1"]);
    let replica = Server::slotd_at(replica.port(), &args);
    resumed_partially(&master, &replica, &full_before);
    assert_eq!(tests::info_field(&master, "stats", "sync_partial_ok"), "1");
    let mut c = replica.raw();
    c.cmd_str(&["select", "3"]);
    assert_eq!(tests::text(&c.cmd_str(&["get", "k1"])), "$1\r\n2\r\n");
    assert_eq!(tests::text(&c.cmd_str(&["get", "k149"])), "$3\r\n149\r\n");
    assert_eq!(tests::text(&c.cmd_str(&["dbsize"])), ":150\r\n");
}

/// A hand-made replica's PSYNC: the first line of the reply and, for a
/// full resynchronization, the RDB skipped; the connection, reading on.
fn psync(port: u16, replid: &str, offset: &str) -> (String, tests::RawConn) {
    use std::io::Read;
    let mut c = tests::RawConn::connect(port).unwrap();
    c.set_read_timeout(Duration::from_secs(10));
    c.send(&tests::encode(&[
        b"psync",
        replid.as_bytes(),
        offset.as_bytes(),
    ]))
    .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // The reply line, after any keepalive newlines.
    while !got.ends_with(b"\r\n") {
        assert_eq!(c.stream().read(&mut byte).unwrap(), 1, "closed");
        if !(got.is_empty() && byte[0] == b'\n') {
            got.push(byte[0]);
        }
    }
    let line = String::from_utf8_lossy(&got).trim_end().to_string();
    if line.starts_with("+FULLRESYNC") {
        // `$<len>\r\n` (disk-backed) and the payload.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n") {
            assert_eq!(c.stream().read(&mut byte).unwrap(), 1, "closed");
            if !(head.is_empty() && byte[0] == b'\n') {
                head.push(byte[0]);
            }
        }
        let len: usize = String::from_utf8_lossy(&head[1..head.len() - 2])
            .parse()
            .unwrap();
        let mut rdb = vec![0u8; len];
        c.stream().read_exact(&mut rdb).unwrap();
        assert!(rdb.starts_with(b"REDIS"));
    }
    (line, c)
}

/// A hand-made master: accepts a replica on `listener`, answers its
/// handshake (PING, REPLCONFs) and returns at its PSYNC, with the PSYNC's
/// arguments.
fn replica_handshake(listener: &std::net::TcpListener) -> (std::net::TcpStream, Vec<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no replica connected: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    loop {
        // A command: `*N`, then N bulks of `$len` and data.
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed");
        let Some(n) = line.trim().strip_prefix('*') else {
            continue;
        };
        let mut args = Vec::new();
        for _ in 0..n.parse::<usize>().unwrap() {
            let mut len = String::new();
            reader.read_line(&mut len).unwrap();
            let mut arg = vec![0u8; len.trim()[1..].parse::<usize>().unwrap() + 2];
            reader.read_exact(&mut arg).unwrap();
            args.push(String::from_utf8_lossy(&arg[..arg.len() - 2]).to_lowercase());
        }
        match args[0].as_str() {
            "ping" => sock.write_all(b"+PONG\r\n").unwrap(),
            "psync" => return (sock, args),
            _ => sock.write_all(b"+OK\r\n").unwrap(),
        }
    }
}

/// An RDB from the master that does not load stops the link: the stream
/// after it is not applied, the link is not up, and the replica tries a
/// full resynchronization again (before, the stream was applied over the
/// old data and the link resumed from the failed sync).
#[test]
fn a_master_rdb_that_does_not_load_is_not_followed_by_its_stream() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = Server::slotd(&["--shards", "2", "--repl-diskless-load", "disabled"]);
    let mut c = replica.raw();
    assert_eq!(tests::text(&c.cmd_str(&["set", "old", "1"])), "+OK\r\n");
    c.cmd_str(&["replicaof", "127.0.0.1", &port]);
    let replid = "a".repeat(40);
    let (mut first, _) = replica_handshake(&listener);
    let mut out = format!("+FULLRESYNC {replid} 1000\r\n$10\r\nGARBAGE!!!").into_bytes();
    out.extend(tests::encode(&[b"SET", b"new", b"1"]));
    first.write_all(&out).unwrap();
    // The next attempt is a full one again, not a PSYNC from the first.
    let (_second, psync) = replica_handshake(&listener);
    assert!(!psync.contains(&replid), "{psync:?}");
    assert_eq!(tests::text(&c.cmd_str(&["get", "new"])), "$-1\r\n");
    assert_eq!(
        tests::info_field(&replica, "replication", "master_link_status"),
        "down"
    );
}

/// An RDB file from redis-server `r` holding only key `key`, taken with
/// `redis-cli --rdb`.
fn rdb_of(r: &Server, key: &str) -> std::path::PathBuf {
    r.cli(&["flushall"]);
    r.cli(&["set", key, "1"]);
    let file = tests::fresh_dir("rdbof", key).join("dump.rdb");
    let out = Command::new("redis-cli")
        .args(["-p", &r.port().to_string(), "--rdb"])
        .arg(&file)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{out:?}");
    file
}

/// slotd with 2 shards, each also serving clients on a port of its own
/// (`shard-port-base`, returned), DEBUG on, and `args`.
fn slotd_with_core_ports(args: &[&str]) -> (Server, u16) {
    let base = loop {
        let p = tests::free_port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let b = base.to_string();
    let mut all = vec![
        "--shards",
        "2",
        "--shard-port-base",
        &b,
        "--enable-debug-command",
        "yes",
    ];
    all.extend_from_slice(args);
    (Server::slotd(&all), base)
}

/// Keeps core 0 (port `base`), which runs the master client, busy for
/// 4 s in DEBUG SLEEP; the thread returns its reply. (A test checks it is
/// still asleep when the scenario needs it: `asleep`.)
fn sleep_core_0(base: u16) -> std::thread::JoinHandle<Vec<u8>> {
    let sleeper = std::thread::spawn(move || {
        let mut c = tests::RawConn::connect(base).expect("core 0's port");
        c.set_read_timeout(Duration::from_secs(20));
        c.cmd_str(&["debug", "sleep", "4"])
    });
    std::thread::sleep(Duration::from_millis(200));
    sleeper
}

/// Fails the test when core 0 woke before the step that needs it asleep
/// (a machine too slow for the scenario's timing).
fn asleep(sleeper: &std::thread::JoinHandle<Vec<u8>>, step: &str) {
    assert!(!sleeper.is_finished(), "core 0 woke before {step}");
}

/// Values of 32 KB and more reach the master client as big arguments,
/// received apart from its input buffer: they count in what it applied,
/// so the replica's offset reaches the master's and a promotion does not
/// wait for them. Before 2026-12-07 they were left out of the count:
/// `slave_repl_offset` stayed behind for good.
#[test]
fn big_values_from_the_master_count_in_the_replicas_offset() {
    let master = Server::redis(&[]);
    let port = master.port().to_string();
    let replica = Server::slotd(&["--replicaof", "127.0.0.1", &port]);
    wait_for(20, "the replica's link", || {
        info(&replica, "master_link_status") == "up"
    });
    let big = "v".repeat(300_000);
    for i in 0..3 {
        let mut c = master.raw();
        c.cmd_str(&["set", &format!("big:{i}"), &big]);
    }
    wait_for(10, "the replica's offset to reach the master's", || {
        info(&replica, "slave_repl_offset") == info(&master, "master_repl_offset")
    });
    assert_eq!(replica.cli(&["strlen", "big:2"]).trim(), "300000");
    let started = Instant::now();
    assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the promotion waited {:?}",
        started.elapsed()
    );
}

/// REPLICAOF NO ONE while the master's RDB waits to be loaded (core 0,
/// which runs the master client, is busy): the node keeps its data and its
/// history, as Redis does when a promotion aborts a load. Before
/// 2026-12-07 the load ran after the promotion and replaced the new
/// master's data with the old master's RDB (and its writes with it).
#[test]
fn a_promotion_before_the_rdb_is_loaded_keeps_the_data() {
    use std::io::Write;
    let r = Server::redis(&[]);
    let sent = std::fs::read(rdb_of(&r, "sent")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (replica, base) = slotd_with_core_ports(&["--repl-diskless-load", "disabled"]);
    let mut c = tests::RawConn::connect(base + 1).expect("core 1's port");
    c.set_read_timeout(Duration::from_secs(20));
    assert_eq!(tests::text(&c.cmd_str(&["set", "old", "1"])), "+OK\r\n");
    let mine = info(&replica, "master_replid");
    c.cmd_str(&["replicaof", "127.0.0.1", &port]);
    let (mut sock, _) = replica_handshake(&listener);
    let sleeper = sleep_core_0(base);
    let mut out = format!("+FULLRESYNC {} 1\r\n${}\r\n", "c".repeat(40), sent.len()).into_bytes();
    out.extend(&sent);
    sock.write_all(&out).unwrap();
    // (INFO would wait for core 0.)
    wait_for(10, "the transfer", || {
        replica.log().contains("MASTER <-> REPLICA sync: receiving")
    });
    std::thread::sleep(Duration::from_millis(300));
    asleep(&sleeper, "REPLICAOF NO ONE");
    assert_eq!(
        tests::text(&c.cmd_str(&["replicaof", "no", "one"])),
        "+OK\r\n"
    );
    assert_eq!(tests::text(&sleeper.join().unwrap()), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tests::text(&c.cmd_str(&["exists", "old"])), ":1\r\n");
    assert_eq!(tests::text(&c.cmd_str(&["exists", "sent"])), ":0\r\n");
    assert_eq!(info(&replica, "master_replid2"), mine, "the history kept");
    assert!(
        replica
            .log()
            .contains("the link ended before the master's RDB was loaded: not loaded"),
        "{}",
        replica.log()
    );
}

/// The link's own command that loads a transferred RDB
/// (`slotd-replica-load <path>`) is never taken from the master's stream:
/// there it does nothing (before 2026-12-07 it replaced the keyspace with
/// any RDB file the node could read).
#[test]
fn a_load_command_in_the_masters_stream_does_nothing() {
    use std::io::Write;
    // Two RDB files from redis-server: one to transfer, one to name.
    let r = Server::redis(&[]);
    let sent = std::fs::read(rdb_of(&r, "sent")).unwrap();
    let other = rdb_of(&r, "other");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = Server::slotd(&["--shards", "2", "--repl-diskless-load", "disabled"]);
    let mut c = replica.raw();
    c.cmd_str(&["replicaof", "127.0.0.1", &port]);
    let (mut sock, _) = replica_handshake(&listener);
    let mut out = format!("+FULLRESYNC {} 1\r\n${}\r\n", "c".repeat(40), sent.len()).into_bytes();
    out.extend(&sent);
    out.extend(tests::encode(&[
        b"slotd-replica-load",
        other.to_str().unwrap().as_bytes(),
    ]));
    out.extend(tests::encode(&[b"SET", b"after", b"1"]));
    sock.write_all(&out).unwrap();
    wait_for(20, "the stream after the RDB", || {
        tests::text(&c.cmd_str(&["exists", "after"])) == ":1\r\n"
    });
    assert_eq!(tests::text(&c.cmd_str(&["exists", "sent"])), ":1\r\n");
    assert_eq!(tests::text(&c.cmd_str(&["exists", "other"])), ":0\r\n");
    assert!(
        replica
            .log()
            .contains("Ignored a 'slotd-replica-load' command in the master's stream"),
        "{}",
        replica.log()
    );
}

/// A replica takes its master's replication ID once the RDB has loaded,
/// not at `+FULLRESYNC`: during the transfer, and after a `REPLICAOF NO
/// ONE` that cut it short, its IDs are those of the data it holds.
#[test]
fn the_masters_id_is_taken_only_with_its_rdb() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = Server::slotd(&["--shards", "2", "--repl-diskless-load", "disabled"]);
    let mine = tests::info_field(&replica, "replication", "master_replid");
    let mut c = replica.raw();
    c.cmd_str(&["replicaof", "127.0.0.1", &port]);
    let (mut sock, _) = replica_handshake(&listener);
    let theirs = "b".repeat(40);
    sock.write_all(format!("+FULLRESYNC {theirs} 100\r\n$1000\r\nREDIS").as_bytes())
        .unwrap();
    wait_for(20, "the transfer to start", || {
        tests::info_field(&replica, "replication", "master_sync_in_progress") == "1"
    });
    assert_eq!(
        tests::info_field(&replica, "replication", "master_replid"),
        mine
    );
    c.cmd_str(&["replicaof", "no", "one"]);
    let replid2 = tests::info_field(&replica, "replication", "master_replid2");
    assert_ne!(replid2, theirs);
    assert_ne!(
        tests::info_field(&replica, "replication", "master_replid"),
        theirs
    );
}

/// A replica's REPLCONF ACK sent inline (as some clients' replicas do)
/// counts as one sent in RESP, on redis-server and on slotd.
#[test]
fn an_inline_replconf_ack_from_a_replica_counts() {
    for bin in ["redis", "slotd"] {
        let master = master_for(bin, &["--repl-diskless-sync", "no"]);
        let (line, mut r) = psync(master.port(), "?", "-1");
        assert!(line.starts_with("+FULLRESYNC"), "{bin}: {line}");
        r.send(b"REPLCONF ACK 5\r\n").unwrap();
        wait_for(20, "the ACK's offset in INFO", || {
            master
                .cli(&["info", "replication"])
                .lines()
                .any(|l| l.starts_with("slave0:") && l.contains(",offset=5,"))
        });
    }
}

/// A master: redis-server (`bin` "redis"), or slotd with 2 shards, with
/// `args`.
fn master_for(bin: &str, args: &[&str]) -> Server {
    if bin == "slotd" {
        Server::slotd(&[args, &["--shards", "2"]].concat())
    } else {
        Server::redis(args)
    }
}

/// Reads exactly `n` bytes of the stream.
fn stream_bytes(c: &mut tests::RawConn, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    c.stream().read_exact(&mut b).unwrap();
    b
}

#[test]
fn t17_psync_continues_with_exactly_the_missing_bytes_or_resyncs_fully() {
    // The same exchange with a redis-server master and a slotd master:
    // the same replies, and the same bytes after +CONTINUE.
    let mut seen = Vec::new();
    for bin in ["redis", "slotd"] {
        let master = master_for(
            bin,
            &[
                "--repl-diskless-sync",
                "no",
                "--repl-backlog-size",
                "16kb",
                "--repl-ping-replica-period",
                "60",
            ],
        );
        let port = master.port();
        let (line, mut first) = psync(port, "?", "-1");
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0], "+FULLRESYNC", "{bin}: {line}");
        let (replid, start) = (f[1].to_string(), f[2].parse::<i64>().unwrap());
        assert_eq!(replid.len(), 40);
        // Two writes the first replica receives, then it goes away.
        let mut c = master.raw();
        c.cmd_str(&["set", "a", "1"]);
        c.cmd_str(&["set", "b", "2"]);
        let sent: Vec<u8> = [
            tests::encode(&[b"SELECT", b"0"]),
            tests::encode(&[b"set", b"a", b"1"]),
            tests::encode(&[b"set", b"b", b"2"]),
        ]
        .concat();
        let got = stream_bytes(&mut first, sent.len());
        assert_eq!(
            String::from_utf8_lossy(&got).to_lowercase(),
            String::from_utf8_lossy(&sent).to_lowercase(),
            "{bin}"
        );
        drop(first);
        // Missed while away: only these come after +CONTINUE.
        c.cmd_str(&["set", "c", "3"]);
        c.cmd_str(&["incr", "n"]);
        let missed: Vec<u8> = [
            tests::encode(&[b"set", b"c", b"3"]),
            tests::encode(&[b"incr", b"n"]),
        ]
        .concat();
        let at = start + sent.len() as i64;
        let (line, mut again) = psync(port, &replid, &(at + 1).to_string());
        assert_eq!(line, "+CONTINUE", "{bin}");
        let got = stream_bytes(&mut again, missed.len());
        assert_eq!(
            String::from_utf8_lossy(&got).to_lowercase(),
            String::from_utf8_lossy(&missed).to_lowercase(),
            "{bin}"
        );
        drop(again);
        // Past the 16 KiB backlog: a full resynchronization.
        let big = "x".repeat(1000);
        for i in 0..40 {
            c.cmd_str(&["set", &format!("big{i}"), &big]);
        }
        let (line, _) = psync(port, &replid, &(at + 1).to_string());
        assert!(line.starts_with("+FULLRESYNC "), "{bin}: {line}");
        // An unknown replication ID too.
        let (line, _) = psync(port, &"0".repeat(40), "1");
        assert!(line.starts_with("+FULLRESYNC "), "{bin}: {line}");
        seen.push(tests::info_field(&master, "stats", "sync_partial_ok"));
        seen.push(tests::info_field(&master, "stats", "sync_partial_err"));
    }
    assert_eq!(seen[..2], seen[2..], "sync_partial_ok/err: redis, slotd");
}

/// `redis-cli --rdb`, the backup operators take from a running server: it
/// says `REPLCONF rdb-only 1` then SYNC, so the master sends the RDB and
/// then closes the link, streaming nothing after it. Disk-backed and
/// diskless; the file loads into redis-server with the master's data.
#[test]
fn redis_cli_rdb_takes_a_backup_and_the_master_lets_it_go() {
    let m = Server::slotd(&DEBUG);
    load(&m, "b");
    let want = digest(&m);
    for diskless in ["no", "yes"] {
        m.cli(&["config", "set", "repl-diskless-sync", diskless]);
        m.cli(&["config", "set", "repl-diskless-sync-delay", "0"]);
        let dir = tests::fresh_dir("rdbonly", diskless);
        let file = dir.join("backup.rdb");
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &m.port().to_string(), "--rdb"])
            .arg(&file)
            .output()
            .expect("redis-cli");
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "diskless {diskless}: {said}");
        assert!(said.contains("Transfer finished with success"), "{said}");
        assert!(!said.contains("error"), "diskless {diskless}: {said}");
        // The master closed it: no replica left, and Redis's log line.
        wait_for(10, "the rdb-only replica to be let go", || {
            info(&m, "connected_slaves") == "0"
        });
        let log = m.log();
        let done = log
            .matches("RDB transfer completed, rdb only replica (")
            .count();
        assert_eq!(done, if diskless == "no" { 1 } else { 2 }, "{log}");
        let r = Server::redis(&[
            "--dir",
            &dir.to_string_lossy(),
            "--dbfilename",
            "backup.rdb",
            "--enable-debug-command",
            "yes",
        ]);
        assert_eq!(digest(&r), want, "diskless {diskless}");
    }
}

/// A replica killed with SIGKILL continues with a partial
/// resynchronization from its last snapshot, as Redis's does: the
/// snapshot records where the master's stream was (the link holds still
/// while the cores start their images). Taken while the master writes
/// increments (some in MULTI/EXEC) over both cores: a position off by
/// one command would show in the digest after the restart.
#[test]
fn a_replica_killed_continues_partially_from_its_last_snapshot() {
    let (master, args) = master_and_replica_args("replica-kill", &[]);
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let mut replica = Server::slotd(&args);
    caught_up(&master, &replica);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, port) = (stop.clone(), master.port());
        std::thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = format!("c{}", i % 64);
                if i.is_multiple_of(7) {
                    c.cmd_str(&["multi"]);
                    c.cmd_str(&["incr", &k]);
                    c.cmd_str(&["incr", "in-multi"]);
                    c.cmd_str(&["exec"]);
                } else {
                    c.cmd_str(&["incr", &k]);
                }
                i += 1;
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let saves = |s: &Server| tests::info_field(s, "persistence", "rdb_saves");
    assert_eq!(replica.cli(&["bgsave"]).trim(), "Background saving started");
    wait_for(20, "the replica's snapshot", || saves(&replica) == "1");
    assert_eq!(
        tests::info_field(&replica, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 100, "{written} writes");
    let full_before = tests::info_field(&master, "stats", "sync_full");
    replica.kill();
    let mut m = master.raw();
    for i in 0..50 {
        m.cmd_str(&["incr", &format!("c{i}")]);
    }
    let replica = Server::slotd_at(replica.port(), &args);
    resumed_partially(&master, &replica, &full_before);
}

/// Two replicas asking for a full resynchronization at once (their SYNCs
/// reach two cores while the first one's snapshot runs): the second waits
/// for that snapshot to end and takes its own, as a Redis replica that
/// cannot join a running BGSAVE waits for the next one; neither is turned
/// away to try again (`sync_full` counts one each).
#[test]
fn replicas_that_sync_at_once_both_get_their_snapshot() {
    let master = Server::slotd(&[DEBUG[0], DEBUG[1], "--shards", "2"]);
    assert_eq!(master.cli(&["debug", "populate", "100000"]).trim(), "OK");
    let port = master.port().to_string();
    for round in 1..=4 {
        let pair = [Server::redis(&DEBUG), Server::redis(&DEBUG)];
        // Both told at the same instant: their SYNCs come together.
        let go = std::sync::Barrier::new(2);
        std::thread::scope(|t| {
            for r in &pair {
                let (go, port) = (&go, &port);
                t.spawn(move || {
                    go.wait();
                    assert_eq!(r.cli(&["replicaof", "127.0.0.1", port]).trim(), "OK");
                });
            }
        });
        for r in &pair {
            caught_up(&master, r);
        }
        assert_eq!(
            info_stat(&master, "sync_full"),
            2 * round,
            "round {round}\n{}",
            master.log()
        );
    }
    assert!(
        !master.log().contains("Can't start a snapshot"),
        "{}",
        master.log()
    );
}

/// Chained replication (checklist F14): the replicas of a slotd replica
/// get its master's stream byte for byte, as Redis 4.0+ proxies it, with
/// the top master's replication ID and offsets; the stream's database
/// survives a full resynchronization from the middle of the chain (the
/// RDB's `repl-stream-db`); links that drop resume partially; a promoted
/// middle node keeps its replicas with a partial resynchronization under
/// its new ID, and one that follows a master again passes the new
/// master's data down.
#[test]
fn replicas_of_a_slotd_replica_follow_the_top_masters_stream() {
    let master = Server::redis(&DEBUG);
    let mport = master.port().to_string();
    let mid_args = [
        DEBUG[0],
        DEBUG[1],
        "--shards",
        "2",
        "--replicaof",
        "127.0.0.1",
        &mport,
    ];
    let mid = Server::slotd(&mid_args);
    load(&master, "a");
    caught_up(&master, &mid);
    // The master's stream goes on in database 3, selected once.
    let mut m = master.raw();
    m.cmd_str(&["select", "3"]);
    m.cmd_str(&["set", "in3", "x"]);
    caught_up(&master, &mid);

    let rport = mid.port().to_string();
    let dir = tests::fresh_dir("chained", "sub");
    let dir = dir.to_string_lossy().into_owned();
    let sub_args = [
        DEBUG[0],
        DEBUG[1],
        "--shards",
        "2",
        "--dir",
        &dir,
        "--save",
        "3600 1",
        "--replicaof",
        "127.0.0.1",
        &rport,
    ];
    let sub = Server::slotd(&sub_args);
    let sub_redis = Server::redis(&[DEBUG[0], DEBUG[1], "--replicaof", "127.0.0.1", &rport]);
    // Writes in database 3 without a SELECT, a transaction, every type.
    m.cmd_str(&["set", "in3b", "y"]);
    m.cmd_str(&["multi"]);
    m.cmd_str(&["incr", "t1"]);
    m.cmd_str(&["incr", "t2"]);
    assert_eq!(tests::text(&m.cmd_str(&["exec"])), "*2\r\n:1\r\n:1\r\n");
    load(&master, "b");
    write_stream(&master);
    for s in [&mid, &sub, &sub_redis] {
        caught_up(&master, s);
        assert_eq!(info(s, "master_replid"), info(&master, "master_replid"));
    }
    assert_eq!(sub.cli(&["-n", "3", "get", "in3b"]).trim(), "y");
    assert_eq!(info(&mid, "connected_slaves"), "2");
    // PUBLISH reaches the subscribers at the end of the chain.
    let mut listener = sub.raw();
    assert!(tests::show(&listener.cmd_str(&["subscribe", "news"])).contains("news"));
    m.cmd_str(&["publish", "news", "down the chain"]);
    let got = tests::show(&listener.read_reply().unwrap());
    assert!(got.contains("down the chain"), "{got}");
    drop(listener);
    assert_eq!(info_stat(&mid, "sync_full"), 2);
    assert_eq!(
        mid.cli(&["wait", "1", "0"]).trim(),
        "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."
    );

    // Byte for byte: a PSYNC at the same point on the master and on the
    // middle node continues with the same bytes.
    let id = info(&master, "master_replid");
    let at: i64 = info(&master, "master_repl_offset").parse().unwrap();
    let (l1, mut c1) = psync(master.port(), &id, &(at + 1).to_string());
    let (l2, mut c2) = psync(mid.port(), &id, &(at + 1).to_string());
    assert_eq!((l1.as_str(), l2.as_str()), ("+CONTINUE", "+CONTINUE"));
    m.cmd_str(&["set", "k", "v"]);
    m.cmd_str(&["multi"]);
    m.cmd_str(&["lpush", "q", "1", "2"]);
    m.cmd_str(&["exec"]);
    let n = info(&master, "master_repl_offset").parse::<i64>().unwrap() - at;
    let b1 = stream_bytes(&mut c1, n as usize);
    assert_eq!(stream_bytes(&mut c2, n as usize), b1);
    assert!(tests::show(&b1).contains("lpush"), "{}", tests::show(&b1));
    drop((c1, c2));

    // Links that drop resume partially: both, killed by the middle node
    // (CLIENT KILL TYPE replica); the redis-server replica's, killed on
    // its side; the slotd replica's across a restart from its final save.
    let partial = info_stat(&mid, "sync_partial_ok");
    assert_eq!(mid.cli(&["client", "kill", "type", "replica"]).trim(), "2");
    for s in [&sub, &sub_redis] {
        wait_for(20, "the replica's link back", || {
            info(s, "master_link_status") == "up"
        });
    }
    wait_for(20, "both replicas back", || {
        info_stat(&mid, "sync_partial_ok") == partial + 2
    });
    let partial = partial + 2;
    sub_redis.cli(&["client", "kill", "type", "master"]);
    let mut r = sub.raw();
    r.send(b"SHUTDOWN\r\n").unwrap();
    assert!(r.is_closed(Duration::from_secs(20)));
    let mut sub = sub;
    sub.kill();
    load(&master, "c");
    let sub = Server::slotd_at(sub.port(), &sub_args);
    for s in [&sub, &sub_redis] {
        caught_up(&master, s);
    }
    assert_eq!(info_stat(&mid, "sync_partial_ok"), partial + 2);
    assert_eq!(info_stat(&mid, "sync_full"), 2);

    // The middle node promoted: a new ID, the old one kept as the
    // secondary; its replicas continue partially and follow its writes.
    // Writes sent with the promotion, in one packet, run before the
    // master thread has turned the node's own stream on: they reach the
    // replicas all the same.
    let old_id = info(&mid, "master_replid");
    let mut batch = b"REPLICAOF NO ONE\r\nSELECT 3\r\nSET after promotion\r\n".to_vec();
    for i in 0..300 {
        batch.extend_from_slice(format!("SET window:{i} {i}\r\n").as_bytes());
    }
    let mut p = mid.raw();
    p.send(&batch).unwrap();
    for _ in 0..303 {
        let r = tests::text(&p.read_reply().unwrap());
        assert_eq!(r, "+OK\r\n");
    }
    for s in [&sub, &sub_redis] {
        wait_for(20, "the replica's link to the promoted node", || {
            info(s, "master_link_status") == "up"
                && info(s, "master_replid") == info(&mid, "master_replid")
        });
        caught_up(&mid, s);
        assert_eq!(info(s, "master_replid2"), old_id);
    }
    assert_eq!(info(&mid, "master_replid2"), old_id);
    assert_eq!(info_stat(&mid, "sync_partial_ok"), partial + 4);
    assert_eq!(info_stat(&mid, "sync_full"), 2);
    assert_eq!(
        sub_redis.cli(&["-n", "3", "get", "after"]).trim(),
        "promotion"
    );

    // Following the master again: a full resynchronization of the middle
    // node, whose replicas then load the master's data from it.
    assert_eq!(mid.cli(&["replicaof", "127.0.0.1", &mport]).trim(), "OK");
    load(&master, "d");
    for s in [&mid, &sub, &sub_redis] {
        wait_for(20, "the master's replication ID down the chain", || {
            info(s, "master_replid") == info(&master, "master_replid")
        });
        caught_up(&master, s);
    }
    assert_eq!(sub.cli(&["-n", "3", "get", "after"]).trim(), "");
}

/// `redis-cli --replica` (`REPLCONF rdb-filter-only ""`: an empty RDB,
/// then the stream) shows the same commands from slotd as from
/// redis-server; `--functions-rdb` gets an RDB without keys.
#[test]
fn redis_cli_replica_mode_logs_the_stream_as_with_redis() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut seen = Vec::new();
    for s in [
        Server::slotd(&["--shards", "2"]),
        Server::redis(&["--repl-diskless-sync-delay", "0"]),
    ] {
        s.cli(&["set", "before", "1"]);
        // Line-buffered, with the progress lines of stderr in order.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec stdbuf -oL -eL redis-cli -p {} --replica 2>&1",
                s.port()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut wrote = false;
        while !lines.iter().any(|l: &String| l.contains("\"incr\"")) {
            assert!(Instant::now() < deadline, "{lines:?}");
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                lines.push(l);
            }
            if !wrote
                && lines
                    .iter()
                    .any(|l| l.contains("Logging commands from master"))
            {
                wrote = true;
                s.cli(&["set", "a", "1"]);
                s.cli(&["lpush", "q", "x", "y"]);
                s.cli(&["incr", "n"]);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        // The RDB's size differs (aux fields): keep the commands.
        let cmds: Vec<String> = lines.into_iter().filter(|l| l.starts_with('"')).collect();
        seen.push(cmds);
        // --functions-rdb: the keys stay out.
        let dir = tests::fresh_dir(
            "functions-rdb",
            if seen.len() == 1 { "slotd" } else { "redis" },
        );
        let path = dir.join("f.rdb");
        let out = Command::new("redis-cli")
            .args(["-p", &s.port().to_string(), "--functions-rdb"])
            .arg(&path)
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rdb = std::fs::read(&path).unwrap();
        assert!(rdb.starts_with(b"REDIS"));
        assert!(!rdb.windows(6).any(|w| w == b"before"), "{rdb:?}");
    }
    assert_eq!(
        seen[0],
        vec![
            "\"set\",\"a\",\"1\"".to_string(),
            "\"lpush\",\"q\",\"x\",\"y\"".to_string(),
            "\"incr\",\"n\"".to_string()
        ]
    );
    assert_eq!(seen[0], seen[1]);
}

/// What a replica reads for commands whose keys live on several cores is
/// what Redis propagates, byte for byte: the command itself (DEL with
/// every key as sent, MSET, RENAME, SMOVE, stores...), not what each core
/// rebuilt; nothing for those that changed nothing; transactions across
/// cores in the order they ran, one command unwrapped, SELECT before
/// MULTI; PUBLISH (standalone). Compared with a redis-server master in
/// the same run.
/// What a replica reads when `script` (ending with `set end 1`) runs on a
/// redis-server master and on a slotd master of 2 shards: the two streams,
/// redis-server's first.
fn propagated(script: &[Vec<&str>]) -> Vec<String> {
    use std::io::Read;
    let mut streams = Vec::new();
    for bin in ["redis", "slotd"] {
        let master = master_for(
            bin,
            &[
                "--repl-diskless-sync",
                "no",
                "--repl-ping-replica-period",
                "60",
            ],
        );
        let (line, r) = psync(master.port(), "?", "-1");
        assert!(line.starts_with("+FULLRESYNC"), "{bin}: {line}");
        let mut c = master.raw();
        for cmd in script {
            c.cmd_str(cmd);
        }
        let end = tests::encode(&[b"set", b"end", b"1"]);
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(&end) {
            assert_eq!(r.stream().read(&mut byte).unwrap(), 1, "{bin}: closed");
            got.push(byte[0]);
        }
        streams.push(String::from_utf8_lossy(&got).into_owned());
    }
    streams
}

#[test]
fn commands_across_cores_reach_replicas_as_redis_propagates_them() {
    let script: Vec<Vec<&str>> = vec![
        vec![
            "mset", "k1", "a", "k2", "b", "k3", "c", "k4", "d", "k5", "e", "k6", "f",
        ],
        vec!["msetnx", "n1", "1", "n2", "2", "n3", "3"],
        vec!["publish", "ch", "hello"],
        vec!["pfadd", "hll", "a", "b", "c"],
        vec!["pfcount", "hll"],
        vec!["pfcount", "hll"],
        vec!["pfmerge", "hll2", "hll", "nosuch"],
        // GEOADD goes as the ZADD it runs; the stores as sent.
        vec![
            "geoadd",
            "geo",
            "CH",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
        vec!["geoadd", "geo", "nx", "13.361389", "38.115556", "Palermo"],
        vec![
            "geosearchstore",
            "gdst",
            "geo",
            "fromlonlat",
            "15",
            "37",
            "byradius",
            "200",
            "km",
            "storedist",
        ],
        vec![
            "georadius",
            "geo",
            "15",
            "37",
            "200",
            "km",
            "store",
            "gdst2",
        ],
        vec![
            "georadiusbymember",
            "geo",
            "Palermo",
            "1",
            "km",
            "storedist",
            "gdst2",
        ],
        vec![
            "geosearchstore",
            "gdst",
            "nosuchgeo",
            "frommember",
            "x",
            "byradius",
            "1",
            "km",
        ],
        vec!["msetnx", "n1", "x", "n9", "y"],
        vec!["del", "k1", "nosuch", "k2", "k3"],
        vec!["del", "nosuch1", "nosuch2", "nosuch3"],
        vec!["unlink", "k4", "n1", "nosuch"],
        vec!["rename", "k5", "r5"],
        vec!["renamenx", "k6", "n2"],
        vec!["copy", "r5", "c5"],
        vec!["sadd", "s1", "a", "b", "c"],
        vec!["sadd", "s2", "c", "d"],
        vec!["smove", "s1", "s3", "a"],
        vec!["sunionstore", "u", "s1", "s2", "s3"],
        vec!["sinterstore", "i", "s1", "s2"],
        vec!["sdiffstore", "d", "s1", "s2"],
        vec!["rpush", "l1", "x", "y", "z"],
        vec!["lmove", "l1", "l2", "left", "right"],
        vec!["rpoplpush", "l1", "l3"],
        vec!["zadd", "z1", "1", "a", "2", "b"],
        vec!["zadd", "z2", "3", "b", "4", "c"],
        vec!["zunionstore", "zu", "2", "z1", "z2"],
        vec!["zinterstore", "zi", "2", "z1", "z2", "weights", "2", "3"],
        vec!["zrangestore", "zr", "zu", "0", "1"],
        vec!["select", "3"],
        vec!["mset", "k1", "1", "k2", "2", "k3", "3"],
        vec!["del", "k1", "k2", "k3"],
        vec!["spublish", "ch", "in3"],
        // Transactions across cores, and on one core, in database 3.
        vec!["multi"],
        vec!["set", "k1", "x"],
        vec!["incr", "cnt"],
        vec!["set", "k2", "y"],
        vec!["lpush", "l9", "a"],
        vec!["mset", "k3", "z", "k4", "w"],
        vec!["exec"],
        vec!["multi"],
        vec!["incr", "cnt"],
        vec!["get", "cnt"],
        vec!["exec"],
        vec!["multi"],
        vec!["incr", "cnt"],
        vec!["incrbyfloat", "cnt", "1.5"],
        vec!["exec"],
        vec!["multi"],
        vec!["get", "k1"],
        vec!["get", "k2"],
        vec!["exec"],
        vec!["multi"],
        vec!["set", "k1", "only"],
        vec!["get", "k2"],
        vec!["exec"],
        vec!["select", "0"],
        vec!["set", "end", "1"],
    ];
    let streams = propagated(&script);
    assert!(streams[0].contains("mset"), "{}", streams[0]);
    assert_eq!(streams[1], streams[0], "slotd (left), redis-server (right)");
}

/// Scripts reach the replicas as Redis 7.0 propagates them: the commands
/// they ran, wrapped in MULTI/EXEC when more than one, byte for byte the
/// same stream as redis-server's, whether a script ran on its keys' core
/// or with every core locked (keys declared on both cores, undeclared
/// keys, multi-key commands and SELECT inside the script).
#[test]
fn scripts_reach_replicas_as_redis_propagates_them() {
    let two = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])";
    let script: Vec<Vec<&str>> = vec![
        vec!["eval", "return redis.call('set', KEYS[1], 'one')", "1", "a"],
        vec!["eval", two, "2", "k1", "cnt", "v1"],
        vec!["eval", two, "2", "k2", "cnt", "v2"],
        vec!["eval", two, "2", "k3", "k3:n", "v3"],
        vec!["eval", two, "2", "k3", "k3:n", "v3"],
        vec!["eval", "return redis.call('get', KEYS[1])", "1", "k1"],
        // Later runs of a script that stayed on its key's core run there.
        vec!["eval", "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[1])", "1", "a:n"],
        vec!["eval", "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[1])", "1", "a:n"],
        vec!["eval", "redis.call('incr', KEYS[1]); return redis.call('incr', KEYS[1])", "1", "a:n"],
        vec!["eval", "return redis.call('incr', KEYS[1])", "1", "a:m"],
        vec!["eval", "return redis.call('incr', KEYS[1])", "1", "a:m"],
        vec!["eval", "for i = 1, 6 do redis.call('rpush', 'list' .. i, i) end return 1", "0"],
        vec!["eval", "return redis.call('mset', 'm1', 1, 'm2', 2, 'm3', 3)", "0"],
        vec!["eval", "return redis.call('mget', 'm1', 'm2', 'm3')", "0"],
        vec!["eval", "redis.call('incr', KEYS[1]); return redis.pcall('lpush', KEYS[1], 'x')", "1", "cnt"],
        vec!["eval", "redis.call('set', 'x', 1); redis.call('select', 5); redis.call('set', 'y', 2); return 1", "0"],
        vec!["eval", "return redis.call('del', 'm1', 'm2', 'nosuch')", "0"],
        vec!["script", "load", "return redis.call('incrby', KEYS[1], ARGV[1])"],
        vec!["evalsha", "65b45e1e1b8b36c8c3e885080b88ae484e64fde6", "1", "bysha", "3"],
        vec!["function", "load", "#!lua name=lib\nredis.register_function('f', function(k, a) redis.call('incrby', k[1], a[1]) return redis.call('incr', k[2]) end)"],
        vec!["fcall", "f", "2", "fa", "fb", "3"],
        vec!["fcall", "f", "2", "fa", "fa:b", "3"],
        vec!["fcall", "f", "2", "fa", "fa:b", "3"],
        vec!["function", "delete", "lib"],
        // PUBLISH goes to the replicas inside the script's effects.
        vec!["eval", "redis.call('set', KEYS[1], 1); redis.call('publish', 'ch', 'x'); return 1", "1", "pk"],
        vec!["eval", "redis.call('publish', 'ch', 'alone'); return 1", "0"],
        vec!["eval", "redis.call('publish', 'ch', 'p1'); redis.call('incr', KEYS[1]); redis.call('publish', 'ch', 'p2'); return 1", "1", "pk"],
        vec!["select", "3"],
        vec!["eval", two, "2", "k1", "cnt", "in3"],
        vec!["select", "0"],
        vec!["set", "end", "1"],
    ];
    let streams = propagated(&script);
    assert!(streams[0].contains("MULTI"), "{}", streams[0]);
    assert_eq!(streams[1], streams[0], "slotd (left), redis-server (right)");
}

/// `repl-diskless-load swapdb` and `on-empty-db`: the master's RDB goes to
/// memory and is parsed from there, never to the replica's disk (Redis's
/// "to parser"); the data and the stream after it are the master's. A
/// CONFIG SET back to `disabled` writes the next one to disk again.
#[test]
fn a_diskless_load_keeps_the_masters_rdb_off_the_disk() {
    for mode in ["swapdb", "on-empty-db"] {
        let master = Server::redis(&[DEBUG[0], DEBUG[1], "--repl-diskless-sync-delay", "0"]);
        load(&master, "a");
        let dir = tests::fresh_dir("diskless-load", mode);
        let d = dir.to_string_lossy().into_owned();
        let port = master.port().to_string();
        let replica = Server::slotd(&[
            DEBUG[0],
            DEBUG[1],
            "--shards",
            "2",
            "--dir",
            &d,
            "--repl-diskless-load",
            mode,
            "--replicaof",
            "127.0.0.1",
            &port,
        ]);
        caught_up(&master, &replica);
        write_stream(&master);
        caught_up(&master, &replica);
        let log = replica.log();
        assert!(
            log.contains("receiving streamed RDB from master with EOF to parser"),
            "{log}"
        );
        let files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".rdb"))
            .collect();
        assert!(files.is_empty(), "{mode}: {files:?}");
        assert_eq!(
            replica.cli(&["config", "get", "repl-diskless-load"]).trim(),
            format!("repl-diskless-load\n{mode}")
        );
        // Back on disk: the next full resynchronization leaves dump.rdb.
        replica.cli(&["config", "set", "repl-diskless-load", "disabled"]);
        // Promoted and back, it offers its own new history, which the
        // master does not know: a full resynchronization.
        replica.cli(&["replicaof", "no", "one"]);
        replica.cli(&["replicaof", "127.0.0.1", &port]);
        caught_up(&master, &replica);
        assert!(dir.join("dump.rdb").exists(), "{mode}");
    }
}

/// With a replica attached, what the cores rebuild for commands and
/// transactions across cores goes to their AOF only (the replicas get the
/// forms): the AOF still holds every write. After a restart from it the
/// master has the data the replica has.
#[test]
fn the_aof_keeps_every_write_while_replicas_get_the_forms() {
    let dir = tests::fresh_dir("aof-forms", "m");
    let d = dir.to_string_lossy().into_owned();
    let args = [
        DEBUG[0],
        DEBUG[1],
        "--shards",
        "2",
        "--dir",
        &d,
        "--appendonly",
        "yes",
        "--save",
        "",
    ];
    let mut master = Server::slotd(&args);
    let port = master.port().to_string();
    let replica = Server::redis(&[DEBUG[0], DEBUG[1], "--replicaof", "127.0.0.1", &port]);
    wait_for(20, "the replica's link", || {
        info(&replica, "master_link_status") == "up"
    });
    let mut c = master.raw();
    for i in 0..200 {
        let (a, b, x) = (format!("a{i}"), format!("b{i}"), format!("x{}", i % 7));
        c.cmd_str(&["mset", &a, "1", &b, "2", &x, &i.to_string()]);
        c.cmd_str(&["multi"]);
        c.cmd_str(&["incr", &x]);
        c.cmd_str(&["rename", &a, &format!("r{i}")]);
        c.cmd_str(&["del", &b, &format!("r{}", i.max(1) - 1)]);
        c.cmd_str(&["exec"]);
    }
    write_stream(&master);
    caught_up(&master, &replica);
    let want = digest(&replica);
    let mut r = master.raw();
    r.send(b"SHUTDOWN NOSAVE\r\n").unwrap();
    assert!(r.is_closed(Duration::from_secs(20)));
    master.kill();
    let master = Server::slotd_at(master.port(), &args);
    assert_eq!(digest(&master), want);
}

/// CLIENT UNBLOCK of a client in WAIT (a replica that never acknowledges):
/// it gets the count of replicas that did, or `-UNBLOCKED` with ERROR,
/// as from redis-server.
#[test]
fn client_unblock_ends_a_wait_as_redis() {
    let mut seen = Vec::new();
    for bin in ["redis", "slotd"] {
        let master = master_for(bin, &["--repl-diskless-sync", "no"]);
        let (line, _replica) = psync(master.port(), "?", "-1");
        assert!(line.starts_with("+FULLRESYNC"), "{bin}: {line}");
        let mut out = Vec::new();
        let mut c = master.raw();
        c.set_read_timeout(Duration::from_secs(10));
        let id = tests::text(&c.cmd_str(&["CLIENT", "ID"]));
        let id = id.trim().trim_start_matches(':').to_string();
        c.cmd_str(&["SET", "k", "v"]);
        let mut admin = master.raw();
        for error in [false, true] {
            c.send(&tests::encode(&[b"WAIT", b"1", b"0"])).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let mut args = vec!["CLIENT", "UNBLOCK", id.as_str()];
            if error {
                args.push("ERROR");
            }
            out.push(tests::show(&admin.cmd_str(&args)));
            out.push(tests::show(&c.read_reply().unwrap()));
        }
        // Not in WAIT any more: nothing to unblock.
        out.push(tests::show(&admin.cmd_str(&["CLIENT", "UNBLOCK", &id])));
        seen.push(out);
    }
    assert_eq!(seen[1], seen[0], "slotd (left), redis-server (right)");
}

/// Sends `cmds` (inline commands) to the server on `port` with
/// `redis-cli --pipe`, as a bulk load does.
fn pipe(port: u16, cmds: &str) {
    use std::io::Write;
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    let mut input = cli.stdin.take().unwrap();
    input.write_all(cmds.as_bytes()).unwrap();
    drop(input);
    assert!(cli.wait().unwrap().success());
}

/// CLIENT KILL TYPE master on a replica drops its link as Redis does
/// (`replicationCacheMaster`): the link goes down, reconnects and
/// continues partially, so no command of the stream is lost or run twice
/// (the INCRs, on keys of both cores in three databases, would show it).
/// Once promoted, the node has no master client to kill.
#[test]
fn a_killed_master_client_reconnects_and_continues_partially() {
    let (master, replica) = redis_master_and_slotd_replica("killed-master-client");
    let full_before = tests::info_field(&master, "stats", "sync_full");
    let port = master.port();
    let writer = std::thread::spawn(move || {
        for batch in 0..300 {
            let mut cmds = String::new();
            for i in 0..300 {
                if i % 100 == 0 {
                    cmds.push_str(&format!("SELECT {}\r\n", (batch + i / 100) % 3));
                }
                cmds.push_str(&format!("INCR c{}\r\n", i % 16));
            }
            pipe(port, &cmds);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut kills = 0;
    let mut r = replica.raw();
    while !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(37));
        if tests::text(&r.cmd_str(&["client", "kill", "type", "master"])) == ":1\r\n" {
            kills += 1;
        }
    }
    writer.join().unwrap();
    assert!(kills >= 2, "the master client was killed {kills} times");
    wait_for(20, "the link up again", || {
        info(&replica, "master_link_status") == "up"
    });
    caught_up(&master, &replica);
    let log = replica.log();
    assert!(
        log.contains("Caching the disconnected master state.")
            && log.contains("Trying a partial resynchronization (request ")
            && log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    assert_eq!(
        tests::info_field(&master, "stats", "sync_full"),
        full_before
    );
    let mut c = replica.raw();
    c.cmd_str(&["select", "2"]);
    assert_eq!(tests::text(&c.cmd_str(&["exists", "c15"])), ":1\r\n");
    assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
    assert_eq!(
        replica.cli(&["client", "kill", "type", "master"]).trim(),
        "0"
    );
}

/// As in Redis, `client-query-buffer-limit` does not apply to the master
/// client: input that piles up while core 0 is busy (here in DEBUG SLEEP)
/// past the limit does not close it, and the replica goes on following
/// partially (closed, the master client would drop what the link's offset
/// counts).
#[test]
fn the_query_buffer_limit_spares_the_master_client() {
    let master = Server::redis(&[DEBUG[0], DEBUG[1]]);
    let port = master.port().to_string();
    let (replica, base) = slotd_with_core_ports(&["--replicaof", "127.0.0.1", &port]);
    caught_up(&master, &replica);
    let full_before = tests::info_field(&master, "stats", "sync_full");
    assert_eq!(
        replica
            .cli(&["config", "set", "client-query-buffer-limit", "1mb"])
            .trim(),
        "OK"
    );
    let sleeper = sleep_core_0(base);
    // About 3 MB of stream in small commands, read by the link meanwhile.
    let mut cmds = String::new();
    for i in 0..40000 {
        cmds.push_str(&format!("SET key:{i} {:040}\r\n", i));
    }
    pipe(master.port(), &cmds);
    asleep(&sleeper, "the stream was sent");
    sleeper.join().unwrap();
    caught_up(&master, &replica);
    assert_eq!(
        tests::info_field(&master, "stats", "sync_full"),
        full_before
    );
    assert!(
        !replica.log().contains("reached max query buffer length"),
        "{}",
        replica.log()
    );
}

/// A link lost in the middle of the master's RDB removes the temporary
/// file it was receiving (Redis's `replicationAbortSyncTransfer`): failed
/// attempts do not fill the disk.
#[test]
fn a_transfer_cut_short_leaves_no_temporary_file() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = Server::slotd(&["--repl-diskless-load", "disabled"]);
    replica.cli(&["replicaof", "127.0.0.1", &port]);
    let temps = || {
        std::fs::read_dir(replica.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("temp-") && n.ends_with(".rdb"))
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        let (mut c, _) = replica_handshake(&listener);
        let mut out = format!("+FULLRESYNC {} 1000\r\n$100000\r\n", "b".repeat(40)).into_bytes();
        out.extend(std::iter::repeat_n(b'x', 5000));
        c.write_all(&out).unwrap();
        wait_for(10, "the temporary file", || !temps().is_empty());
        drop(c);
    }
    // The third attempt comes once the second's file is gone.
    let (_c, _) = replica_handshake(&listener);
    assert_eq!(temps(), Vec::<String>::new());
}

/// A read-only replica's scripts may read but not write, as on a
/// redis-server replica of the same master (a script that wrote there
/// left the replica unlike its master): a write called from a script
/// without flags fails at the call, one with a shebang that may write is
/// refused at its start, on one core and across both.
#[test]
fn a_replicas_scripts_do_not_write() {
    let (master, replica) = redis_master_and_slotd_replica("ro-scripts");
    master.cli(&["set", "a", "1"]);
    let lib = "#!lua name=lib\nredis.register_function('w', function(k) return redis.call('set', k[1], 'y') end)\nredis.register_function{function_name='r', callback=function(k) return redis.call('get', k[1]) end, flags={'no-writes'}}";
    assert_eq!(master.cli(&["function", "load", lib]).trim(), "lib");
    let port = master.port().to_string();
    let stock = Server::redis(&["--replicaof", "127.0.0.1", &port]);
    wait_for(20, "both replicas' data", || {
        replica.cli(&["get", "a"]).trim() == "1" && stock.cli(&["get", "a"]).trim() == "1"
    });
    let cases: &[&[&str]] = &[
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "a"],
        &["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "a"],
        &["EVAL", "return redis.pcall('set', KEYS[1], 'x')", "1", "a"],
        // Keys on both of slotd's cores.
        &[
            "EVAL",
            "redis.call('get', KEYS[2]) return redis.call('set', KEYS[1], 'x')",
            "2",
            "a",
            "b",
        ],
        &["EVAL", "#!lua\nreturn redis.call('get', KEYS[1])", "1", "a"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
            "1",
            "a",
        ],
        // PUBLISH and PFCOUNT are no writes.
        &["EVAL", "return redis.call('pfcount', KEYS[1])", "1", "a"],
        &["EVAL", "return redis.call('publish', 'ch', 'm')", "0"],
        &["SCRIPT", "LOAD", "return redis.call('set', KEYS[1], 'x')"],
        &[
            "EVALSHA",
            "ee5bed0f6963e93a14eebfb64f07c299c1b4313f",
            "1",
            "a",
        ],
        &["FCALL", "w", "1", "a"],
        &["FCALL", "r", "1", "a"],
    ];
    for args in cases {
        let mut got = Vec::new();
        for s in [&replica, &stock] {
            let r = tests::text(&s.raw().cmd_str(args));
            // (The script's name in the error is the same on both.)
            got.push(r);
        }
        assert_eq!(got[0], got[1], "{args:?}: slotd, then redis-server");
    }
    assert_eq!(replica.cli(&["get", "a"]).trim(), "1");
    assert_eq!(replica.cli(&["exists", "b"]).trim(), "0");
}
