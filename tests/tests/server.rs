//! Server and connection commands against the real binary: AUTH with
//! requirepass, HELLO, CLIENT, CONFIG at runtime, INFO, COMMAND, start-up
//! errors and shutdown.

use std::process::Command;
use std::time::Duration;
use tests::Server;

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn requirepass_gates_every_command_but_auth() {
    let s = Server::slotd(&["--requirepass", "s3cret"]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["GET", "k"])),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        text(c.cmd_str(&["AUTH", "wrong"])),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(text(c.cmd_str(&["AUTH", "default", "s3cret"])), "+OK\r\n");
    assert_eq!(text(c.cmd_str(&["SET", "k", "v"])), "+OK\r\n");
    // A fresh connection is not authenticated; HELLO can authenticate.
    let mut d = s.raw();
    assert_eq!(
        text(d.cmd_str(&["HELLO", "3"])),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
    );
    let hello = text(d.cmd_str(&["HELLO", "3", "AUTH", "default", "s3cret"]));
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    assert_eq!(text(d.cmd_str(&["GET", "k"])), "$1\r\nv\r\n");
    // Without requirepass the old form of AUTH is an error, while the
    // default user takes any password (Redis's `nopass`), so clients set
    // up with a user name and a password connect.
    let open = Server::slotd(&[]);
    let mut o = open.raw();
    let e = text(o.cmd_str(&["AUTH", "x"]));
    assert!(
        e.starts_with("-ERR AUTH <password> called without any password configured"),
        "{e}"
    );
    assert_eq!(text(o.cmd_str(&["AUTH", "default", "x"])), "+OK\r\n");
    assert_eq!(
        text(o.cmd_str(&["AUTH", "nobody", "x"])),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let hello = text(o.cmd_str(&["HELLO", "2", "AUTH", "default", "x"]));
    assert!(hello.starts_with("*14\r\n"), "{hello}");
}

#[test]
fn hello_switches_protocol() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["HELLO", "4"])),
        "-NOPROTO unsupported protocol version\r\n"
    );
    let h = text(c.cmd_str(&["HELLO", "3", "SETNAME", "me"]));
    assert!(h.contains("$5\r\nproto\r\n:3\r\n"), "{h}");
    assert_eq!(text(c.cmd_str(&["CLIENT", "GETNAME"])), "$2\r\nme\r\n");
    c.cmd_str(&["HSET", "h", "f", "v"]);
    assert_eq!(
        text(c.cmd_str(&["HGETALL", "h"])),
        "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(text(c.cmd_str(&["GET", "missing"])), "_\r\n");
    c.cmd_str(&["HELLO", "2"]);
    assert_eq!(
        text(c.cmd_str(&["HGETALL", "h"])),
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn client_commands() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["CLIENT", "SETNAME", "has space"])),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        text(c.cmd_str(&["CLIENT", "SETNAME", "worker-1"])),
        "+OK\r\n"
    );
    let id = text(c.cmd_str(&["CLIENT", "ID"]));
    let id = id.trim_start_matches(':').trim();
    let info = text(c.cmd_str(&["CLIENT", "INFO"]));
    assert!(info.contains(&format!("id={id} ")), "{info}");
    assert!(info.contains("name=worker-1"), "{info}");
    let list = text(c.cmd_str(&["CLIENT", "LIST"]));
    assert!(list.contains("name=worker-1"), "{list}");
    assert_eq!(
        text(c.cmd_str(&["CLIENT", "NOSUCH"])),
        "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n"
    );
}

/// CLIENT LIST and CLIENT KILL honour `TYPE` (and `USER`), with Redis
/// 7.0's replies, against redis-server in the same run: a subscriber on
/// each server is the one `pubsub` client.
#[test]
fn client_kill_and_list_by_type() {
    let mut seen = Vec::new();
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        let mut others: Vec<_> = (0..3).map(|_| s.raw()).collect();
        for o in others.iter_mut() {
            o.cmd_str(&["PING"]);
        }
        let mut sub = s.raw();
        assert!(text(sub.cmd_str(&["SUBSCRIBE", "ch"])).contains("subscribe"));
        let list = text(c.cmd_str(&["CLIENT", "LIST", "TYPE", "pubsub"]));
        let pubsub_lines = list.lines().filter(|l| l.contains("id=")).count();
        let normal = text(c.cmd_str(&["CLIENT", "LIST", "TYPE", "normal"]));
        let normal_lines = normal.lines().filter(|l| l.contains("id=")).count();
        let replies = [
            text(c.cmd_str(&["CLIENT", "KILL", "TYPE", "pubsub"])),
            text(c.cmd_str(&["CLIENT", "KILL", "TYPE", "master"])),
            text(c.cmd_str(&["CLIENT", "KILL", "TYPE", "replica"])),
            text(c.cmd_str(&["CLIENT", "KILL", "TYPE", "nosuch"])),
            text(c.cmd_str(&["CLIENT", "LIST", "TYPE", "nosuch"])),
            text(c.cmd_str(&["CLIENT", "KILL", "USER", "nobody"])),
            text(c.cmd_str(&["CLIENT", "KILL", "MAXAGE", "1"])),
            text(c.cmd_str(&["CLIENT", "KILL", "USER", "default", "SKIPME", "yes"])),
        ];
        assert!(sub.is_closed(Duration::from_secs(5)));
        for o in others.iter_mut() {
            assert!(o.is_closed(Duration::from_secs(5)));
        }
        assert_eq!(text(c.cmd_str(&["PING"])), "+PONG\r\n");
        seen.push((pubsub_lines, normal_lines, replies));
    }
    assert_eq!(seen[0].0, 1);
    assert_eq!(seen[0].1, 4);
    assert_eq!(seen[0].2[0], ":1\r\n");
    assert_eq!(seen[0].2[7], ":3\r\n");
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn config_set_takes_effect_at_runtime() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "GET", "maxclients"])),
        "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    );
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "SET", "requirepass", "pw"])),
        "+OK\r\n"
    );
    // Every core reloads its settings; new connections must authenticate.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..8 {
        let mut d = s.raw();
        assert_eq!(
            text(d.cmd_str(&["PING"])),
            "-NOAUTH Authentication required.\r\n"
        );
    }
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "SET", "nosuch", "1"])),
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n"
    );
    assert_eq!(text(c.cmd_str(&["CONFIG", "RESETSTAT"])), "+OK\r\n");
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "REWRITE"])),
        "-ERR The server is running without a config file\r\n"
    );
}

#[test]
fn info_reports_redis_fields() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.client();
    for i in 0..10 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("EXPIRE")
        .arg("k1")
        .arg(100)
        .query::<()>(&mut c)
        .unwrap();
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    for field in [
        "redis_version:7.0.15",
        "redis_mode:standalone",
        "connected_clients:1",
        "used_memory:",
        "mem_allocator:mimalloc",
        "role:master",
        "cluster_enabled:0",
        "db0:keys=10,expires=1,avg_ttl=0",
    ] {
        assert!(info.contains(field), "missing {field} in\n{info}");
    }
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(used > 100_000, "used_memory {used} is not a real figure");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    assert!(stats.contains("cmdstat_set:calls=10,"), "{stats}");
    assert!(!stats.contains("# Server"));
}

#[test]
fn command_table_is_served() {
    let s = Server::slotd(&[]);
    let mut c = s.client();
    let n: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(n > 150, "only {n} commands");
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .query(&mut c)
        .unwrap();
    let s = format!("{info:?}");
    assert!(s.contains("get") && s.contains("readonly"), "{s}");
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, vec!["a", "b"]);
}

#[test]
fn bad_config_stops_the_start() {
    let bin = tests::slotd_bin();
    let out = Command::new(&bin)
        .args(["--port", "notanumber"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("*** FATAL CONFIG FILE ERROR"), "{err}");
    assert!(err.contains("port"), "{err}");
    let out = Command::new(&bin)
        .args(["--no-such-directive", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Bad directive or wrong number of arguments"),
        "{err}"
    );
}

#[test]
fn a_low_open_files_limit_lowers_maxclients_as_redis_does() {
    let srv = Server::slotd_limited(Some(200), &["--shards", "2"]);
    let got = srv.cli(&["config", "get", "maxclients"]);
    let maxclients: usize = got
        .lines()
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("CONFIG GET maxclients: {got:?}"));
    // Redis keeps 32 descriptors aside; slotd also one ring and one
    // eventfd per core, and one listener per bind address.
    assert!((100..=168).contains(&maxclients), "{maxclients}");
    let log = srv.log();
    assert!(
        log.contains("You requested maxclients of 10000 requiring at least"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Current maximum open files is 200. maxclients has been reduced to {maxclients} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
        )),
        "{log}"
    );
    // Raising it beyond what the limit allows fails and changes nothing.
    let err = srv.cli(&["config", "set", "maxclients", "100000", "hz", "20"]);
    assert!(
        err.starts_with(&format!("ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with {maxclients}")),
        "{err}"
    );
    assert_eq!(srv.cli(&["config", "get", "hz"]), "hz\n10\n");
    assert_eq!(srv.cli(&["config", "get", "maxclients"]), got);
    // Clients up to the limit are served, the next one is turned away.
    let mut conns = Vec::new();
    for _ in 0..maxclients {
        let mut c = srv.raw();
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        conns.push(c);
    }
    let mut extra = srv.raw();
    assert_eq!(
        text(extra.read_reply().unwrap()),
        "-ERR max number of clients reached\r\n"
    );
}

#[test]
fn shutdown_command_stops_the_server() {
    let mut s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    let _ = c.send(&tests::encode(&[b"SHUTDOWN"]));
    let mut alive = true;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if !s.is_alive() {
            alive = false;
            break;
        }
    }
    assert!(!alive, "server still running after SHUTDOWN");
    assert!(
        s.log().contains("Redis is now ready to exit, bye bye..."),
        "{}",
        s.log()
    );
    // The other core's accept ends when the listening sockets are shut:
    // that is the shutdown, not an error to log.
    assert!(
        !s.log().contains("Accepting client connection"),
        "{}",
        s.log()
    );
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.client();
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET")
            .arg(format!("t{i}"))
            .arg("v")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    p.cmd("SET").arg("keep").arg("v").ignore();
    p.query::<()>(&mut c).unwrap();
    // Nothing reads the keys; only the per-core expiry cycle can remove them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} keys left after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(info.contains("expired_keys:2000\r\n"), "{info}");
}

/// CLIENT PAUSE WRITE holds writes and PUBLISH but not reads; ALL holds
/// everything; CLIENT UNPAUSE lets them go at once; a pause ends by
/// itself; the errors are redis-server's (compared in the same run).
#[test]
fn client_pause_holds_commands_until_it_ends() {
    use std::time::Instant;
    let s = Server::slotd(&["--shards", "2"]);
    let r = Server::redis(&[]);
    for args in [
        &["CLIENT", "PAUSE", "-1"][..],
        &["CLIENT", "PAUSE", "x"],
        &["CLIENT", "PAUSE", "10", "MAYBE"],
        &["CLIENT", "PAUSE"],
        &["CLIENT", "UNPAUSE", "x"],
        &["CLIENT", "UNPAUSE"],
    ] {
        assert_eq!(
            text(s.raw().cmd_str(args)),
            text(r.raw().cmd_str(args)),
            "{args:?}"
        );
    }
    let mut admin = s.raw();
    let mut c = s.raw();
    c.cmd_str(&["SET", "k", "v0"]);
    // WRITE: reads go on, writes wait until UNPAUSE.
    assert_eq!(
        text(admin.cmd_str(&["CLIENT", "PAUSE", "20000", "WRITE"])),
        "+OK\r\n"
    );
    let t = Instant::now();
    assert_eq!(text(c.cmd_str(&["GET", "k"])), "$2\r\nv0\r\n");
    assert!(t.elapsed() < Duration::from_secs(5));
    let port = s.port();
    let writer = std::thread::spawn(move || {
        let mut w = tests::RawConn::connect(port).unwrap();
        let t = Instant::now();
        let set = text(w.cmd_str(&["SET", "k", "v1"]));
        let publish = text(w.cmd_str(&["PUBLISH", "ch", "m"]));
        (set, publish, t.elapsed())
    });
    // A script that may write, and a FUNCTION subcommand that writes,
    // wait too (Redis's `may_replicate` and subcommand flags).
    let scripter = std::thread::spawn(move || {
        let mut w = tests::RawConn::connect(port).unwrap();
        let t = Instant::now();
        let eval = text(w.cmd_str(&["EVAL", "return redis.call('set',KEYS[1],'x')", "1", "e"]));
        let flush = text(w.cmd_str(&["FUNCTION", "FLUSH"]));
        (eval, flush, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        text(c.cmd_str(&["GET", "k"])),
        "$2\r\nv0\r\n",
        "the write waits"
    );
    assert_eq!(
        text(c.cmd_str(&["GET", "e"])),
        "$-1\r\n",
        "the script waits"
    );
    assert_eq!(text(admin.cmd_str(&["CLIENT", "UNPAUSE"])), "+OK\r\n");
    let (eval, flush, waited) = scripter.join().unwrap();
    assert_eq!((eval.as_str(), flush.as_str()), ("+OK\r\n", "+OK\r\n"));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    let (set, publish, waited) = writer.join().unwrap();
    assert_eq!((set.as_str(), publish.as_str()), ("+OK\r\n", ":0\r\n"));
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert_eq!(text(c.cmd_str(&["GET", "k"])), "$2\r\nv1\r\n");
    // ALL: a read waits too, until the pause ends by itself.
    assert_eq!(
        text(admin.cmd_str(&["CLIENT", "PAUSE", "700", "ALL"])),
        "+OK\r\n"
    );
    let t = Instant::now();
    assert_eq!(text(c.cmd_str(&["GET", "k"])), "$2\r\nv1\r\n");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

/// TIME inside a transaction (a rate limiter's pattern) runs as in Redis;
/// a node command slotd does not run in one says so.
#[test]
fn time_runs_inside_a_transaction() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    for cmd in [&["MULTI"][..], &["TIME"], &["INCR", "k"]] {
        c.cmd_str(cmd);
    }
    let r = text(c.cmd_str(&["EXEC"]));
    assert!(
        r.starts_with("*2\r\n*2\r\n$10\r\n") && r.ends_with(":1\r\n"),
        "{r}"
    );
    c.cmd_str(&["MULTI"]);
    c.cmd_str(&["CLIENT", "ID"]);
    assert_eq!(
        text(c.cmd_str(&["EXEC"])),
        "*1\r\n-ERR 'client' inside MULTI is not supported by slotd\r\n"
    );
    // MEMORY's node subcommands likewise (they were sent to a core's
    // keyspace, which answered that STATS did not exist); USAGE runs.
    c.cmd_str(&["MULTI"]);
    c.cmd_str(&["MEMORY", "STATS"]);
    c.cmd_str(&["MEMORY", "USAGE", "k"]);
    let r = text(c.cmd_str(&["EXEC"]));
    assert!(
        r.starts_with("*2\r\n-ERR 'memory' inside MULTI is not supported by slotd\r\n:"),
        "{r}"
    );
}

/// A client blocked on a key that another type comes to stays blocked
/// (its timeout answers), as in Redis 7.0: a list pop on a sorted set, a
/// sorted-set pop on a list.
#[test]
fn a_waiter_stays_blocked_when_another_type_comes_to_its_key() {
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        for (block, write) in [
            (&["BLPOP", "k1", "1"][..], &["ZADD", "k1", "1", "m"][..]),
            (&["BZPOPMIN", "k2", "1"], &["RPUSH", "k2", "a"]),
            (
                &["XREAD", "BLOCK", "1000", "STREAMS", "k3", "$"],
                &["RPUSH", "k3", "a"],
            ),
        ] {
            let port = s.port();
            let block: Vec<String> = block.iter().map(|a| a.to_string()).collect();
            let waiter = std::thread::spawn(move || {
                let mut c = tests::RawConn::connect(port).unwrap();
                let args: Vec<&str> = block.iter().map(|a| a.as_str()).collect();
                text(c.cmd_str(&args))
            });
            std::thread::sleep(Duration::from_millis(300));
            s.raw().cmd_str(write);
            assert_eq!(waiter.join().unwrap(), "*-1\r\n", "{write:?}");
        }
    }
}

/// INFO's instantaneous metrics follow the load, as Redis's (they read 0
/// whatever ran), and fall back to 0 once it stops.
#[test]
fn instantaneous_metrics_follow_the_load() {
    let s = Server::slotd(&["--shards", "2"]);
    let port = s.port();
    let field = |name: &str| -> f64 { tests::info_field(&s, "stats", name).parse().unwrap() };
    let load = std::thread::spawn(move || {
        let mut c = tests::RawConn::connect(port).unwrap();
        let until = std::time::Instant::now() + Duration::from_millis(1500);
        let mut n = 0u64;
        while std::time::Instant::now() < until {
            c.cmd_str(&["SET", &format!("k{}", n % 100), "v"]);
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(1200));
    let (ops, input, output) = (
        field("instantaneous_ops_per_sec"),
        field("instantaneous_input_kbps"),
        field("instantaneous_output_kbps"),
    );
    let sent = load.join().unwrap();
    assert!(
        ops > 0.0 && input > 0.0 && output > 0.0,
        "{ops} {input} {output}"
    );
    // At most what the client sent over the 1.6 s window, at least a
    // sample's worth.
    assert!(ops <= sent as f64 * 2.0, "{ops} for {sent} commands");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(field("instantaneous_ops_per_sec"), 0.0);
}

/// CLIENT KILL that names its caller answers it, then closes it, as in
/// Redis (slotd closed it before the reply).
#[test]
fn client_kill_of_the_caller_answers_then_closes() {
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        assert_eq!(
            text(c.cmd_str(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])),
            ":1\r\n"
        );
        assert!(c.is_closed(Duration::from_secs(2)));
    }
}

/// INFO's `clients_in_timeout_table` counts the blocked clients that have
/// a timeout, as Redis 7.0 (it counted every blocked client).
#[test]
fn clients_in_timeout_table_counts_blocked_clients_with_a_timeout() {
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut a = s.raw();
        let mut b = s.raw();
        a.send(&tests::encode(&[b"BLPOP", b"k1", b"0"])).unwrap();
        b.send(&tests::encode(&[b"BLPOP", b"k2", b"30"])).unwrap();
        let counts = || {
            (
                tests::info_field(&s, "clients", "blocked_clients"),
                tests::info_field(&s, "clients", "clients_in_timeout_table"),
            )
        };
        let mut seen = counts();
        for _ in 0..50 {
            if seen.0 == "2" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            seen = counts();
        }
        assert_eq!(seen, ("2".to_string(), "1".to_string()));
    }
}

/// INFO ALL and EVERYTHING list Redis 7.0's sections in its order, the
/// empty Latencystats section included (`latency-tracking no`).
#[test]
fn info_everything_lists_redis_sections() {
    let heads = |s: &Server, which: &str| -> Vec<String> {
        s.cli(&["info", which])
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let s = Server::slotd(&[]);
    let r = Server::redis(&["--latency-tracking", "no"]);
    for which in ["all", "everything", "latencystats"] {
        assert_eq!(heads(&s, which), heads(&r, which), "INFO {which}");
    }
}

/// CLIENT INFO and LIST show a subcommand's full name in `cmd=`, as Redis
/// 7.0 (`client|info`).
#[test]
fn client_list_shows_the_subcommand() {
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        let info = text(c.cmd_str(&["CLIENT", "INFO"]));
        assert!(info.contains(" cmd=client|info "), "{info}");
        c.cmd_str(&["CONFIG", "GET", "maxmemory"]);
        let list = s.cli(&["client", "list"]);
        assert!(list.contains(" cmd=config|get "), "{list}");
        c.cmd_str(&["GET", "k"]);
        let list = s.cli(&["client", "list"]);
        assert!(list.contains(" cmd=get "), "{list}");
    }
}

/// INFO's error counters as Redis 7.0's: `total_error_replies`, the
/// errorstats section by error code, and commandstats' `rejected_calls`
/// (refused before running: arity, a wrong type of MULTI use) and
/// `failed_calls` (ran and answered an error), named with their
/// subcommand; CONFIG RESETSTAT clears them. They all read 0 before.
#[test]
fn error_counters_follow_redis() {
    let stats = |s: &Server| -> Vec<String> {
        let mut lines: Vec<String> = s
            .cli(&["info", "errorstats"])
            .lines()
            .filter(|l| l.starts_with("errorstat_"))
            .map(str::to_string)
            .collect();
        lines.push(tests::info_field(s, "stats", "total_error_replies"));
        for l in s.cli(&["info", "commandstats"]).lines() {
            // (Calls and times differ: slotd counts some commands where
            // Redis does not; the error counts must not.)
            if let Some((name, rest)) = l.split_once(":calls=") {
                let counts = rest.split_once(",rejected_calls=").map_or("", |r| r.1);
                if !counts.starts_with("0,failed_calls=0") {
                    lines.push(format!("{name}:{counts}"));
                }
            }
        }
        lines.sort();
        lines
    };
    let mut seen = Vec::new();
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        for cmd in [
            &["SET", "s", "v"][..],
            &["LPUSH", "l", "a"],
            &["INCR", "s"],
            &["GET", "l"],
            &["GET"],
            &["NOSUCH", "x"],
            &["CONFIG", "SET", "nosuch", "1"],
            &["CONFIG", "NOSUCH"],
            &["OBJECT", "FREQ", "s"],
            &["MULTI"],
            &["SET", "k", "v"],
            &["INCR", "k"],
            &["SUBSCRIBE"],
            &["EXEC"],
        ] {
            c.cmd_str(cmd);
        }
        let before = stats(&s);
        assert!(
            before.iter().any(|l| l == "errorstat_WRONGTYPE:count=1"),
            "{before:?}"
        );
        assert_eq!(s.cli(&["config", "resetstat"]).trim(), "OK");
        let after = stats(&s);
        assert_eq!(after, ["0"], "after CONFIG RESETSTAT");
        // A node command counts once in `total_commands_processed`.
        let total = || -> u64 {
            tests::info_field(&s, "stats", "total_commands_processed")
                .parse()
                .unwrap()
        };
        let first = total();
        for _ in 0..5 {
            c.cmd_str(&["CONFIG", "GET", "maxmemory"]);
        }
        assert_eq!(total() - first, 6, "five CONFIG GETs and an INFO");
        seen.push(before);
    }
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}

/// A command run on its keys' values gathered from several cores
/// (SUNION, LMOVE, RENAME, BLPOP over two cores' keys, alone or in a
/// transaction), a script over several cores and the commands a script
/// calls count in commandstats, errorstats and `total_commands_processed`
/// as in Redis (they were left out); a script's error reply that carries
/// on the error of a command it called is counted once (Redis's
/// `ignore_error_stats_update`), on one core and across cores, at a
/// script's first run (over every core) and the next (on its keys' core
/// when they are on one).
#[test]
fn gathered_commands_and_scripts_count_as_redis() {
    let stats = |s: &Server| -> Vec<String> {
        let mut lines: Vec<String> = s
            .cli(&["info", "commandstats"])
            .lines()
            .filter(|l| l.starts_with("cmdstat_") && !l.contains("info") && !l.contains("config"))
            .map(|l| {
                // (Times differ.)
                let (name, rest) = l.split_once(":calls=").unwrap();
                let calls = rest.split(',').next().unwrap();
                let counts = rest.split_once(",rejected_calls=").map_or("", |r| r.1);
                format!("{name}:calls={calls},{counts}")
            })
            .collect();
        lines.extend(
            s.cli(&["info", "errorstats"])
                .lines()
                .filter(|l| l.starts_with("errorstat_"))
                .map(str::to_string),
        );
        lines.sort();
        lines.push(tests::info_field(s, "stats", "total_error_replies"));
        lines
    };
    // With 2 shards a, l1, q, x are on core 1; b, s, l2, str, z on core 0.
    let mut seen = Vec::new();
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        c.cmd_str(&["CONFIG", "RESETSTAT"]);
        for cmd in [
            &["SADD", "a", "1", "2"][..],
            &["SADD", "b", "2", "3"],
            &["SADD", "{a}b", "3"],
            &["SET", "s", "x"],
            &["RPUSH", "l1", "v"],
            &["SUNION", "a", "b"],
            &["SINTER", "a", "s"],
            &["SUNIONSTORE", "z", "a", "b"],
            &["LMOVE", "l1", "l2", "LEFT", "LEFT"],
            &["LMOVE", "a", "l2", "LEFT", "LEFT"],
            &["RENAME", "l2", "x"],
            &["BLPOP", "q", "str", "0.01"],
            &["BLPOP", "q", "s", "0.01"],
            // A transaction over both cores: its commands count one by one.
            &["MULTI"],
            &["SUNION", "a", "b"],
            &["SINTER", "a", "s"],
            &["SELECT", "0"],
            &["GET", "s"],
            &["EXEC"],
        ] {
            c.cmd_str(cmd);
        }
        for keys in [["a", "b"], ["a", "{a}b"]] {
            for script in [
                "return redis.call('scard', KEYS[1]) + redis.call('scard', KEYS[2])",
                "return redis.call('get', KEYS[1])",
                "return redis.pcall('get', KEYS[1])",
                "local e = redis.pcall('get', KEYS[1]); return e['ignore_error_stats_update']",
                "return redis.error_reply('MINE x')",
                "return redis.call('scan', 'x')",
                "return redis.pcall('flushdb', 'x')",
                "return {err='OTHER y'}",
                "error('boom')",
            ] {
                for _ in 0..2 {
                    c.cmd_str(&["EVAL", script, "2", keys[0], keys[1]]);
                }
            }
        }
        let mut got = stats(&s);
        got.push(tests::info_field(&s, "stats", "total_commands_processed"));
        seen.push(got);
    }
    assert!(
        seen[1]
            .iter()
            .any(|l| l.starts_with("cmdstat_sunion:calls=2,")),
        "{:?}",
        seen[1]
    );
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}

/// commandstats' `usec` and `usec_per_call` measure the commands, as
/// Redis's: they read 0 for commands under a microsecond.
#[test]
fn commandstats_time_the_commands() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    let mut pipeline = Vec::new();
    for i in 0..2000 {
        let k = format!("k{i}");
        pipeline.extend(tests::encode(&[b"GET", k.as_bytes()]));
    }
    c.send(&pipeline).unwrap();
    for _ in 0..2000 {
        c.read_reply().unwrap();
    }
    for _ in 0..50 {
        c.cmd_str(&["CONFIG", "GET", "maxmemory"]);
    }
    let stats = s.cli(&["info", "commandstats"]);
    for cmd in ["get", "config|get"] {
        let line = stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .unwrap_or_else(|| panic!("{stats}"));
        let usec: u64 = line
            .split_once(",usec=")
            .and_then(|(_, r)| r.split(',').next())
            .and_then(|u| u.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(usec > 0, "{line}");
    }
}

/// INFO keyspace's `avg_ttl` is the expiry cycle's estimate of the keys'
/// remaining TTL, as Redis's (it read 0 whatever the keys' TTLs).
#[test]
fn avg_ttl_estimates_the_remaining_ttl() {
    for s in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut c = s.raw();
        for i in 0..200 {
            c.cmd_str(&["SET", &format!("k{i}"), "v", "EX", "1000"]);
        }
        c.cmd_str(&["SELECT", "1"]);
        c.cmd_str(&["SET", "persistent", "v"]);
        std::thread::sleep(Duration::from_millis(1200));
        let keyspace = s.cli(&["info", "keyspace"]);
        let avg = |db: &str| -> i64 {
            let line = keyspace.lines().find(|l| l.starts_with(db)).unwrap_or("");
            line.rsplit_once("avg_ttl=")
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(-1)
        };
        let ttl = avg("db0:");
        assert!((990_000..=1_000_000).contains(&ttl), "{keyspace}");
        assert_eq!(avg("db1:"), 0, "{keyspace}");
    }
}

/// A command split over cores counts once in commandstats and
/// `total_commands_processed`, as in Redis (each core's part counted).
#[test]
fn a_command_over_several_cores_counts_once() {
    let mut seen = Vec::new();
    for s in [Server::slotd(&["--shards", "3"]), Server::redis(&[])] {
        let mut c = s.raw();
        c.cmd_str(&["CONFIG", "RESETSTAT"]);
        for cmd in [
            &["MSET", "x", "1", "y", "2", "a", "3", "b", "4"][..],
            &["MGET", "x", "y", "a", "b"],
            &["DEL", "x", "y"],
            &["EXISTS", "a", "b"],
            &["DBSIZE"],
            &["FLUSHALL"],
        ] {
            c.cmd_str(cmd);
        }
        // Split commands of one pipeline, each counted once, whichever
        // of the 3 cores its parts are on.
        let mut pipeline = Vec::new();
        for cmd in [
            &["MGET", "a", "b"][..],
            &["MGET", "c", "d"],
            &["MSET", "p", "1", "q", "2", "r", "3"],
        ] {
            pipeline.extend(tests::encode(
                &cmd.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
            ));
        }
        c.send(&pipeline).unwrap();
        for _ in 0..3 {
            c.read_reply().unwrap();
        }
        let mut calls: Vec<String> = s
            .cli(&["info", "commandstats"])
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once(":calls=")?;
                let n = rest.split(',').next()?;
                (!name.contains("info") && !name.contains("config")).then(|| format!("{name}={n}"))
            })
            .collect();
        calls.sort();
        calls.push(tests::info_field(&s, "stats", "total_commands_processed"));
        seen.push(calls);
    }
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}
