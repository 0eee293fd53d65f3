//! Differential tests: SLOWLOG, MONITOR, CLIENT REPLY / NO-EVICT and the
//! HELP texts of CLIENT, CONFIG, COMMAND and SLOWLOG, slotd (1 and 2
//! shards) vs redis-server 7.0. What depends on the clock (ids, times,
//! durations, MONITOR's timestamps) and the clients' ports is left out of
//! the comparison; everything else must be equal.
use tests::{assert_same, encode, RawConn, Resp, Server};

/// Both servers, slotd with `slotd_args` (e.g. `--shards 2`), each with
/// `args`.
fn pair(slotd_args: &[&str], args: &[&str]) -> (Server, Server) {
    let mut s = slotd_args.to_vec();
    s.extend_from_slice(args);
    (Server::slotd(&s), Server::redis(args))
}

fn cmd(c: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    c.cmd(args)
}

/// SLOWLOG GET -1, an entry a line (its arguments and client name),
/// checking the fields that cannot be compared: ids fall, times are now,
/// the client is a loopback `ip:port`.
fn entries(c: &mut RawConn) -> Vec<String> {
    let raw = c.cmd_str(&["SLOWLOG", "GET", "-1"]);
    let (Resp::Agg(b'*', Some(items)), _) = Resp::parse(&raw).unwrap() else {
        panic!("SLOWLOG GET: {}", tests::show(&raw));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut last_id = i64::MAX;
    let mut out = Vec::new();
    for e in items {
        let Resp::Agg(b'*', Some(f)) = e else {
            panic!("entry {e:?}");
        };
        assert_eq!(f.len(), 6, "{f:?}");
        let int = |r: &Resp| match r {
            Resp::Line(b':', v) => String::from_utf8_lossy(v).parse::<i64>().unwrap(),
            _ => panic!("{r:?}"),
        };
        let id = int(&f[0]);
        assert!(id < last_id, "ids fall: {id} after {last_id}");
        last_id = id;
        assert!((int(&f[1]) - now).abs() <= 5, "{f:?}");
        assert!(int(&f[2]) >= 0);
        let Resp::Agg(b'*', Some(argv)) = &f[3] else {
            panic!("{f:?}");
        };
        let argv: Vec<String> = argv
            .iter()
            .map(|a| match a {
                Resp::Bulk(_, Some(v)) => String::from_utf8_lossy(v).into_owned(),
                _ => panic!("{a:?}"),
            })
            .collect();
        let Resp::Bulk(_, Some(peer)) = &f[4] else {
            panic!("{f:?}");
        };
        assert!(peer.starts_with(b"127.0.0.1:"), "{f:?}");
        let Resp::Bulk(_, Some(name)) = &f[5] else {
            panic!("{f:?}");
        };
        out.push(format!(
            "{} | {}",
            argv.join(" "),
            String::from_utf8_lossy(name)
        ));
    }
    out
}

/// The commands whose slow log entries are compared: names, long and
/// many arguments, redacted passwords, a transaction, keys on both cores.
fn slow_workload(c: &mut RawConn) {
    let long = "x".repeat(200);
    let many: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
    let mut rpush: Vec<&str> = vec!["RPUSH", "list"];
    rpush.extend(many.iter().map(|s| s.as_str()));
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["CLIENT", "SETNAME", "worker"],
        &["SET", "b", &long],
        &["GET", "c"],
        &rpush,
        &["MSET", "k1", "v1", "k2", "v2", "k3", "v3"],
        &["AUTH", "secret"],
        &["AUTH", "user", "secret"],
        &["AUTH", "a", "b", "c"],
        &["HELLO", "2", "AUTH", "default", "pw"],
        &[
            "CONFIG",
            "SET",
            "masterauth",
            "hidden",
            "maxmemory-samples",
            "5",
        ],
        &["CONFIG", "SET", "MASTERUSER", "hidden"],
        &["MULTI"],
        &["INCR", "n"],
        &["SET", "k9", "v"],
        &["EXEC"],
        &["DEL", "a", "b", "k1"],
        &["DBSIZE"],
        &["CLIENT", "SETNAME", ""],
        &["PING"],
        &["NOSUCHCOMMAND"],
        &["GET"],
    ];
    for args in script {
        c.cmd_str(args);
    }
}

fn slowlog_entries_as_redis(slotd_args: &[&str]) {
    let (s, r) = pair(slotd_args, &["--slowlog-log-slower-than", "0"]);
    let mut got = Vec::new();
    for srv in [&s, &r] {
        let mut c = srv.raw();
        cmd(&mut c, &[b"SLOWLOG", b"RESET"]);
        slow_workload(&mut c);
        got.push(entries(&mut c));
    }
    assert_eq!(got[0], got[1], "slotd (left) vs redis-server (right)");
    // The fields under test are there: redacted, trimmed, named.
    let all = got[0].join("\n");
    assert!(all.contains("AUTH (redacted) (redacted)"), "{all}");
    assert!(all.contains("... (72 more bytes)"), "{all}");
    assert!(all.contains("... (11 more arguments)"), "{all}");
    assert!(all.contains("masterauth (redacted)"), "{all}");
}

#[test]
fn slowlog_entries_match_redis_one_shard() {
    slowlog_entries_as_redis(&["--shards", "1"]);
}

#[test]
fn slowlog_entries_match_redis_two_shards() {
    slowlog_entries_as_redis(&["--shards", "2"]);
}

/// Blocking commands are logged once served, not while they wait, and
/// their wait does not count (Redis's `updateStatsOnUnblock`): BLPOP on
/// keys of each core and over both, from a client whose core is not the
/// keys' one too (slotd with 2 shards; the names spread over both).
#[test]
fn blocked_commands_are_logged_once_served_as_redis() {
    let (s, r) = pair(&["--shards", "2"], &["--slowlog-log-slower-than", "0"]);
    let blocking: [&[&str]; 5] = [
        &["BLPOP", "a", "5"],
        &["BLPOP", "b", "5"],
        &["BLPOP", "c", "d", "5"],
        &["BLPOP", "a", "b", "c", "d", "e", "f", "5"],
        &["XREAD", "BLOCK", "5000", "STREAMS", "a1", "b1", "$", "$"],
    ];
    let mut got = Vec::new();
    for srv in [&s, &r] {
        let mut out = Vec::new();
        for (n, cmd_line) in blocking.iter().enumerate() {
            let mut c = srv.raw();
            let mut w = srv.raw();
            w.set_read_timeout(std::time::Duration::from_secs(10));
            w.cmd_str(&["CLIENT", "SETNAME", &format!("w{n}")]);
            c.cmd_str(&["SLOWLOG", "RESET"]);
            w.send(&tests::encode(
                &cmd_line.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
            ))
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            out.push(format!("waiting: {:?}", entries(&mut c)));
            let last = cmd_line[cmd_line.len() - 2];
            if cmd_line[0] == "XREAD" {
                c.cmd_str(&["XADD", "b1", "1-1", "f", "v"]);
            } else {
                c.cmd_str(&["RPUSH", last, "v"]);
            }
            let t0 = std::time::Instant::now();
            let reply = w.read_reply().unwrap();
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(3) && reply.starts_with(b"*"),
                "{cmd_line:?} was not served: {}",
                tests::show(&reply)
            );
            let raw = c.cmd_str(&["SLOWLOG", "GET", "1"]);
            let (Resp::Agg(_, Some(items)), _) = Resp::parse(&raw).unwrap() else {
                panic!("{}", tests::show(&raw));
            };
            let Resp::Agg(_, Some(f)) = &items[0] else {
                panic!("{items:?}");
            };
            let Resp::Line(b':', us) = &f[2] else {
                panic!("{f:?}");
            };
            let us: u64 = String::from_utf8_lossy(us).parse().unwrap();
            assert!(us < 200_000, "{cmd_line:?} logged with its wait: {us} µs");
            // The served command and the one that fed it may be logged in
            // either order in slotd (README: known differences).
            let mut served = entries(&mut c);
            served.sort();
            out.push(format!("served: {served:?}"));
        }
        got.push(out);
    }
    assert_eq!(got[0], got[1], "slotd (left) vs redis-server (right)");
}

/// A command's duration is its own: not the time the client took to send
/// it after its last request, alone or pipelined, whichever core runs it
/// (slotd times a pipeline's commands with one clock reading each, the
/// end of one the start of the next).
#[test]
fn idle_time_between_requests_is_not_in_a_commands_duration() {
    for shards in ["1", "2"] {
        let (s, r) = pair(&["--shards", shards], &[]);
        for srv in [&s, &r] {
            let mut c = srv.raw();
            c.cmd_str(&["CONFIG", "SET", "slowlog-log-slower-than", "100000"]);
            c.cmd_str(&["SLOWLOG", "RESET"]);
            // Sixteen keys: with 2 shards, some on each core.
            let keys: Vec<String> = (0..16).map(|i| format!("idle:{i}")).collect();
            for round in 0..3 {
                std::thread::sleep(std::time::Duration::from_millis(250));
                let mut pipe = Vec::new();
                for k in &keys {
                    pipe.extend(encode(&[b"SET", k.as_bytes(), b"v"]));
                }
                c.send(&pipe).unwrap();
                for _ in &keys {
                    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
                let k = &keys[round * 5];
                assert_eq!(c.cmd_str(&["GET", k]), b"$1\r\nv\r\n");
            }
            assert_eq!(
                String::from_utf8_lossy(&c.cmd_str(&["SLOWLOG", "GET", "-1"])),
                "*0\r\n",
                "shards {shards}"
            );
        }
    }
}

/// `slowlog-log-slower-than` and `slowlog-max-len`, from the command
/// line and CONFIG SET; LEN, RESET, GET's count and errors.
#[test]
fn slowlog_keeps_what_its_directives_say() {
    for shards in ["1", "2"] {
        let (s, r) = pair(&["--shards", shards], &["--enable-debug-command", "yes"]);
        for srv in [&s, &r] {
            let mut c = srv.raw();
            let mut step = |args: &[&str]| String::from_utf8_lossy(&c.cmd_str(args)).into_owned();
            // Default: 10 ms; fast commands are not logged, a 20 ms one is.
            assert_eq!(step(&["SLOWLOG", "RESET"]), "+OK\r\n");
            step(&["SET", "a", "1"]);
            step(&["DEBUG", "SLEEP", "0.02"]);
            assert_eq!(step(&["SLOWLOG", "LEN"]), ":1\r\n");
            // Off.
            step(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
            step(&["DEBUG", "SLEEP", "0.02"]);
            assert_eq!(step(&["SLOWLOG", "LEN"]), ":1\r\n");
            // Everything, at most 5 entries.
            step(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
            step(&["CONFIG", "SET", "slowlog-max-len", "5"]);
            for k in ["k1", "k2", "k3", "k4", "k5", "k6", "k7"] {
                step(&["SET", k, "v"]);
            }
            assert_eq!(step(&["SLOWLOG", "LEN"]), ":5\r\n");
            let two = c.cmd_str(&["SLOWLOG", "GET", "2"]);
            let (Resp::Agg(_, Some(v)), _) = Resp::parse(&two).unwrap() else {
                panic!()
            };
            assert_eq!(v.len(), 2);
            // The newest first.
            let Resp::Agg(_, Some(f)) = &v[0] else {
                panic!()
            };
            assert_eq!(
                f[3],
                Resp::Agg(
                    b'*',
                    Some(vec![
                        Resp::Bulk(b'$', Some(b"SLOWLOG".to_vec())),
                        Resp::Bulk(b'$', Some(b"LEN".to_vec()))
                    ])
                )
            );
            let zero = c.cmd_str(&["SLOWLOG", "GET", "0"]);
            assert_eq!(zero, b"*0\r\n");
            // RESET is logged after it ran.
            c.cmd_str(&["SLOWLOG", "RESET"]);
            assert_eq!(c.cmd_str(&["SLOWLOG", "LEN"]), b":1\r\n");
        }
    }
    assert_same(&[
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "1", "2"],
        &["SLOWLOG", "LEN", "1"],
        &["SLOWLOG", "RESET", "1"],
        &["SLOWLOG", "HELP", "1"],
        &["SLOWLOG", "NOSUCH"],
        &["SLOWLOG"],
        &["SLOWLOG", "HELP"],
        &["slowlog", "help"],
        &["CLIENT", "HELP"],
        &["CONFIG", "HELP"],
        &["config", "help"],
        &["COMMAND", "HELP"],
        &["CLIENT", "NO-EVICT", "on"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT", "off"],
        &["CLIENT", "NO-EVICT"],
        &["CLIENT", "REPLY", "maybe"],
        &["CLIENT", "REPLY"],
        &["CLIENT", "REPLY", "ON"],
        &["MULTI"],
        &["MONITOR"],
        &["EXEC"],
        &["SUBSCRIBE", "ch"],
        &["MONITOR"],
    ]);
}

/// Reads replies until one is `$3\r\nend\r\n` (ECHO end), returning all
/// the bytes.
fn until_end(c: &mut RawConn) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let r = c.read_reply().expect("reply");
        all.extend_from_slice(&r);
        if r == b"$3\r\nend\r\n" {
            return all;
        }
    }
}

/// CLIENT REPLY OFF / SKIP / ON, pipelined, byte for byte.
fn client_reply_as_redis(slotd_args: &[&str]) {
    let (s, r) = pair(slotd_args, &[]);
    let cmds: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["CLIENT", "REPLY", "OFF"],
        &["SET", "b", "2"],
        &["GET", "a"],
        &["GET", "b"],
        &["NOSUCH"],
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "b"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "a"],
        &["GET", "b"],
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "c"],
        &["MGET", "a", "b", "c"],
        &["CLIENT", "REPLY", "SKIP"],
        &["MGET", "a", "b", "c"],
        &["CLIENT", "REPLY", "OFF"],
        &["RESET"],
        &["GET", "a"],
        &["ECHO", "end"],
    ];
    let mut bytes = Vec::new();
    for a in cmds {
        let a: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
        bytes.extend(encode(&a));
    }
    let mut got = Vec::new();
    for srv in [&s, &r] {
        let mut c = srv.raw();
        // Pipelined, then one command at a time.
        c.send(&bytes).unwrap();
        let piped = until_end(&mut c);
        c.send(&bytes).unwrap();
        let again = until_end(&mut c);
        got.push((tests::show(&piped), tests::show(&again)));
    }
    assert_eq!(got[0], got[1], "slotd (left) vs redis-server (right)");
}

#[test]
fn client_reply_matches_redis_one_shard() {
    client_reply_as_redis(&["--shards", "1"]);
}

#[test]
fn client_reply_matches_redis_two_shards() {
    client_reply_as_redis(&["--shards", "2"]);
}

/// A MONITOR line without its timestamp and the client's port.
fn strip(line: &str) -> String {
    let rest = line.split_once(' ').map_or(line, |(_, r)| r);
    // "[db 127.0.0.1:port] ..." or "[db lua] ..."
    match rest.split_once("] ") {
        Some((head, tail)) => {
            let head = match head.rsplit_once(':') {
                Some((h, _)) => h.to_string(),
                None => head.to_string(),
            };
            format!("{head}] {tail}")
        }
        None => rest.to_string(),
    }
}

/// What a monitor sees of `work` (run on its own connection), up to
/// ECHO end.
fn monitored(srv: &Server, work: &dyn Fn(&mut RawConn)) -> Vec<String> {
    let mut m = srv.raw();
    assert_eq!(m.cmd_str(&["MONITOR"]), b"+OK\r\n");
    let mut c = srv.raw();
    work(&mut c);
    c.cmd_str(&["ECHO", "end"]);
    let mut lines = Vec::new();
    loop {
        let r = m.read_reply().expect("monitor line");
        let line = String::from_utf8_lossy(&r).trim_end().to_string();
        assert!(line.starts_with('+'), "{line}");
        let (ts, _) = line[1..].split_once(' ').unwrap();
        let (sec, usec) = ts.split_once('.').unwrap();
        assert!(sec.parse::<u64>().is_ok() && usec.len() == 6, "{line}");
        let done = line.ends_with("\"ECHO\" \"end\"");
        lines.push(strip(&line));
        if done {
            return lines;
        }
    }
}

fn monitor_as_redis(slotd_args: &[&str]) {
    let (s, r) = pair(slotd_args, &[]);
    let work = |c: &mut RawConn| {
        c.cmd(&[b"SET", b"a b", b"q\"\\\n\r\t\x07\x08\x00\xff~ z"]);
        c.cmd_str(&["GET", "k1"]);
        c.cmd_str(&["GET", "k2"]);
        c.cmd_str(&["SELECT", "3"]);
        c.cmd_str(&["SET", "k3", "v"]);
        c.cmd_str(&["MULTI"]);
        c.cmd_str(&["INCR", "k1"]);
        c.cmd_str(&["SELECT", "0"]);
        c.cmd_str(&["INCR", "k1"]);
        c.cmd_str(&["EXEC"]);
        c.cmd_str(&["MULTI"]);
        c.cmd_str(&["NOSUCH"]);
        c.cmd_str(&["EXEC"]);
        c.cmd_str(&[
            "EVAL",
            "redis.call('set', KEYS[1], 'x'); return redis.call('get', KEYS[1])",
            "1",
            "k2",
        ]);
        c.cmd_str(&["CONFIG", "GET", "maxmemory"]);
        c.cmd_str(&["CONFIG", "HELP"]);
        c.cmd_str(&["CLIENT", "LIST"]);
        c.cmd_str(&["CLIENT", "SETNAME", "n"]);
        c.cmd_str(&["AUTH", "pw"]);
        c.cmd_str(&["CONFIG", "SET", "requirepass", ""]);
        c.cmd_str(&["SLOWLOG", "LEN"]);
        c.cmd_str(&["MSET", "k1", "1", "k2", "2", "k3", "3"]);
        c.cmd_str(&["DBSIZE"]);
        c.cmd_str(&["NOSUCHCOMMAND", "x"]);
    };
    let a = monitored(&s, &work);
    let b = monitored(&r, &work);
    assert_eq!(a, b, "slotd (left) vs redis-server (right)");
    // Commands of another connection, and of several at once.
    let more = |c: &mut RawConn| {
        let mut d = RawConn::connect(c.stream().peer_addr().unwrap().port()).unwrap();
        for i in 0..20 {
            let k = format!("key{i}");
            c.cmd_str(&["SET", &k, "1"]);
            d.cmd_str(&["GET", &k]);
        }
    };
    let a = monitored(&s, &more);
    let b = monitored(&r, &more);
    assert_eq!(a, b, "slotd (left) vs redis-server (right)");
}

#[test]
fn monitor_shows_what_redis_shows_one_shard() {
    monitor_as_redis(&["--shards", "1"]);
}

#[test]
fn monitor_shows_what_redis_shows_two_shards() {
    monitor_as_redis(&["--shards", "2"]);
}

/// A monitor is flagged `O` in CLIENT LIST; RESET ends it; so does QUIT.
#[test]
fn monitor_flags_and_its_end() {
    for shards in ["1", "2"] {
        let s = Server::slotd(&["--shards", shards]);
        let mut m = s.raw();
        assert_eq!(m.cmd_str(&["MONITOR"]), b"+OK\r\n");
        let mut c = s.raw();
        let list = String::from_utf8_lossy(&c.cmd_str(&["CLIENT", "LIST"])).into_owned();
        assert_eq!(list.matches("flags=O ").count(), 1, "{list}");
        let clients = tests::info_field(&s, "clients", "connected_clients");
        assert_eq!(clients, "3", "the monitor, this client and INFO's");
        // The monitor sees its own commands too.
        m.send(&encode(&[b"RESET"])).unwrap();
        while m.read_reply().unwrap() != b"+RESET\r\n" {}
        c.cmd_str(&["SET", "after", "reset"]);
        // Nothing more for it: the next reply is PING's.
        let mut rest = Vec::new();
        loop {
            let r = m.cmd_str(&["PING"]);
            if r == b"+PONG\r\n" {
                break;
            }
            rest.push(tests::show(&r));
        }
        assert!(rest.iter().all(|l| !l.contains("after")), "{rest:?}");
        c.cmd_str(&["CLIENT", "NO-EVICT", "on"]);
        let info = String::from_utf8_lossy(&c.cmd_str(&["CLIENT", "INFO"])).into_owned();
        assert!(info.contains(" flags=e "), "{info}");
        let list = String::from_utf8_lossy(&c.cmd_str(&["CLIENT", "LIST"])).into_owned();
        assert!(!list.contains("flags=O"), "{list}");
    }
}

/// CLIENT UNBLOCK with TIMEOUT and ERROR, of commands blocked on keys of
/// either core, and its refusals.
fn client_unblock_as_redis(slotd_args: &[&str]) {
    let (s, r) = pair(slotd_args, &[]);
    let blocking: &[&[&str]] = &[
        &["BLPOP", "k1", "0"],
        &["BLPOP", "k2", "k3", "0"],
        &["BZPOPMIN", "k4", "0"],
        &["BLMOVE", "{k5}a", "{k5}b", "LEFT", "RIGHT", "0"],
        &["XREAD", "BLOCK", "0", "STREAMS", "k7", "$"],
        &["BRPOP", "k8", "0"],
    ];
    let mut got = Vec::new();
    for srv in [&s, &r] {
        let mut seen = Vec::new();
        let mut b = srv.raw();
        for mode in [None, Some("TIMEOUT"), Some("ERROR")] {
            for cmd in blocking {
                let mut a = srv.raw();
                let id = String::from_utf8_lossy(&a.cmd_str(&["CLIENT", "ID"]))
                    .trim_start_matches(':')
                    .trim()
                    .to_string();
                let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
                a.send(&encode(&args)).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
                let mut un = vec!["CLIENT", "UNBLOCK", id.as_str()];
                un.extend(mode);
                let first = b.cmd_str(&un);
                let blocked = a.read_reply().unwrap();
                // Not blocked any more.
                let again = b.cmd_str(&un);
                seen.push(format!(
                    "{} {:?}: {} / {} / {}",
                    cmd.join(" "),
                    mode,
                    tests::show(&first),
                    tests::show(&blocked),
                    tests::show(&again)
                ));
            }
        }
        for bad in [
            &["CLIENT", "UNBLOCK", "x"][..],
            &["CLIENT", "UNBLOCK", "1", "maybe"],
            &["CLIENT", "UNBLOCK", "999999"],
            &["CLIENT", "UNBLOCK"],
            &["CLIENT", "UNBLOCK", "1", "ERROR", "x"],
        ] {
            seen.push(tests::show(&b.cmd_str(bad)));
        }
        got.push(seen);
    }
    assert_eq!(got[0], got[1], "slotd (left) vs redis-server (right)");
}

#[test]
fn client_unblock_matches_redis_one_shard() {
    client_unblock_as_redis(&["--shards", "1"]);
}

#[test]
fn client_unblock_matches_redis_two_shards() {
    client_unblock_as_redis(&["--shards", "2"]);
}
