//! MIGRATE and RESTORE-ASKING: slotd → slotd, slotd → redis-server and
//! redis-server → slotd, every reply compared with redis-server's own for
//! the same call, and MIGRATE's atomicity under a concurrent writer.
use std::time::Duration;
use tests::{show, RawConn, Server};

fn port(s: &Server) -> String {
    s.port().to_string()
}

/// A raw reply on one line, its CRLFs as spaces: `+OK`, `$2 v1`.
fn line(reply: &[u8]) -> String {
    show(reply).replace("\\r\\n", " ").trim_end().to_string()
}

/// Runs a command given as strings and shows its reply on one line.
fn cmd(c: &mut RawConn, args: &[&str]) -> String {
    line(&c.cmd_str(args))
}

/// Builds one key of each type (and encoding) on `c`; returns their names.
fn build_all_types(c: &mut RawConn, tag: &str) -> Vec<String> {
    let k = |n: &str| format!("{tag}:{n}");
    let big: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    let bigref: Vec<&str> = big.iter().map(|s| s.as_str()).collect();
    let mut cmds: Vec<Vec<String>> = vec![
        vec!["SET".into(), k("int"), "-12345".into()],
        vec!["SET".into(), k("str"), "hello".into()],
        vec!["SET".into(), k("long"), "x".repeat(40_000)],
        vec![
            "RPUSH".into(),
            k("list"),
            "a".into(),
            "1".into(),
            "b".into(),
        ],
        vec!["HSET".into(), k("hash"), "f".into(), "v".into()],
        vec![
            "SADD".into(),
            k("intset"),
            "1".into(),
            "2".into(),
            "-3".into(),
        ],
        vec!["SADD".into(), k("set"), "x".into(), "y".into()],
        vec![
            "ZADD".into(),
            k("zset"),
            "1.5".into(),
            "m".into(),
            "2".into(),
            "n".into(),
        ],
    ];
    let mut h = vec!["HSET".to_string(), k("bighash")];
    let mut s = vec!["SADD".to_string(), k("bigset")];
    let mut z = vec!["ZADD".to_string(), k("bigzset")];
    let mut l = vec!["RPUSH".to_string(), k("biglist")];
    for (i, f) in bigref.iter().enumerate() {
        h.extend([f.to_string(), i.to_string()]);
        s.push(f.to_string());
        z.extend([i.to_string(), f.to_string()]);
        l.push(f.to_string());
    }
    cmds.extend([h, s, z, l]);
    let mut keys = Vec::new();
    for c2 in cmds {
        let argv: Vec<&str> = c2.iter().map(|s| s.as_str()).collect();
        c.cmd_str(&argv);
        keys.push(c2[1].clone());
    }
    keys
}

/// A key's value as Redis's DEBUG DIGEST-VALUE (the same on both servers).
fn digest(c: &mut RawConn, key: &str) -> String {
    cmd(c, &["DEBUG", "DIGEST-VALUE", key])
}

fn pttl(c: &mut RawConn, key: &str) -> i64 {
    let r = cmd(c, &["PTTL", key]);
    r.trim_start_matches(':').trim().parse().unwrap_or(-9)
}

/// The same MIGRATE scenarios from `src` to `dst`.
fn scenarios(src: &Server, dst: &Server) {
    let (mut s, mut d) = (src.raw(), dst.raw());
    cmd(&mut s, &["FLUSHALL"]);
    cmd(&mut d, &["FLUSHALL"]);
    let dp = port(dst);
    // One key with its TTL.
    cmd(&mut s, &["SET", "one", "v1", "PX", "100000"]);
    assert_eq!(
        cmd(&mut s, &["MIGRATE", "127.0.0.1", &dp, "one", "0", "5000"]),
        "+OK"
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "one"]), ":0");
    assert_eq!(cmd(&mut d, &["GET", "one"]), "$2 v1");
    let t = pttl(&mut d, "one");
    assert!((90_000..=100_000).contains(&t), "TTL kept: {t}");
    // NOKEY.
    assert_eq!(
        cmd(
            &mut s,
            &["MIGRATE", "127.0.0.1", &dp, "nosuch", "0", "5000"]
        ),
        "+NOKEY"
    );
    // Every type, KEYS form, into another database.
    let keys = build_all_types(&mut s, "t");
    let digests: Vec<String> = keys.iter().map(|k| digest(&mut s, k)).collect();
    let mut argv = vec!["MIGRATE", "127.0.0.1", &dp, "", "3", "5000", "KEYS"];
    argv.extend(keys.iter().map(|k| k.as_str()));
    argv.push("missing-one");
    assert_eq!(cmd(&mut s, &argv), "+OK");
    cmd(&mut d, &["SELECT", "3"]);
    for (k, dg) in keys.iter().zip(&digests) {
        assert_eq!(cmd(&mut s, &["EXISTS", k]), ":0", "{k} left the source");
        assert_eq!(&digest(&mut d, k), dg, "{k} on the target");
    }
    cmd(&mut d, &["SELECT", "0"]);
    // COPY keeps the source's key; then BUSYKEY without REPLACE keeps it
    // too; REPLACE moves it.
    cmd(&mut s, &["SET", "c", "first"]);
    assert_eq!(
        cmd(
            &mut s,
            &["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000", "COPY"]
        ),
        "+OK"
    );
    assert_eq!(cmd(&mut s, &["GET", "c"]), "$5 first");
    assert_eq!(cmd(&mut d, &["GET", "c"]), "$5 first");
    cmd(&mut s, &["SET", "c", "second"]);
    assert_eq!(
        cmd(&mut s, &["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000"]),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(cmd(&mut s, &["GET", "c"]), "$6 second");
    assert_eq!(
        cmd(
            &mut s,
            &["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000", "REPLACE"]
        ),
        "+OK"
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "c"]), ":0");
    assert_eq!(cmd(&mut d, &["GET", "c"]), "$6 second");
    // Per-key errors: the keys the target refused stay, the others go.
    cmd(&mut s, &["MSET", "p1", "a", "p2", "b", "p3", "c"]);
    cmd(&mut d, &["SET", "p2", "there"]);
    assert_eq!(
        cmd(
            &mut s,
            &[
                "MIGRATE",
                "127.0.0.1",
                &dp,
                "",
                "0",
                "5000",
                "KEYS",
                "p1",
                "p2",
                "p3"
            ]
        ),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "p1", "p2", "p3"]), ":1");
    assert_eq!(
        cmd(&mut d, &["MGET", "p1", "p2", "p3"]),
        "*3 $1 a $5 there $1 c"
    );
}

#[test]
fn slotd_to_slotd() {
    let (src, dst) = (Server::slotd(&["--shards", "2"]), Server::slotd(&[]));
    scenarios(&src, &dst);
}

#[test]
fn slotd_to_redis() {
    let (src, dst) = (Server::slotd(&["--shards", "2"]), Server::redis(&[]));
    scenarios(&src, &dst);
}

#[test]
fn redis_to_slotd() {
    let (src, dst) = (Server::redis(&[]), Server::slotd(&["--shards", "2"]));
    scenarios(&src, &dst);
}

#[test]
fn redis_to_redis_is_the_reference() {
    // The scenarios' expected replies were checked against redis-server.
    let (src, dst) = (Server::redis(&[]), Server::redis(&[]));
    scenarios(&src, &dst);
}

/// The replies of slotd and redis-server as sources of the same calls
/// against the same kind of target, byte for byte.
#[test]
fn errors_and_replies_match_redis() {
    let target = Server::redis(&["--requirepass", "pw"]);
    let tp = port(&target);
    let closed = tests::free_port().to_string();
    let calls: Vec<Vec<&str>> = vec![
        vec!["SET", "k", "v"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000", "BOGUS"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000", "AUTH"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000", "AUTH2", "u"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000", "KEYS", "k"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "x", "1000"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "x"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "x", "x", "BOGUS"],
        vec!["MIGRATE", "127.0.0.1", &tp, "nosuch", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", &tp, "", "0", "1000", "KEYS"],
        vec!["MIGRATE", "127.0.0.1", &closed, "k", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", "notaport", "k", "0", "1000"],
        // No password, a wrong one, then the right ones.
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "0", "1000", "AUTH", "bad"],
        vec![
            "MIGRATE",
            "127.0.0.1",
            &tp,
            "k",
            "0",
            "1000",
            "AUTH2",
            "default",
            "bad",
        ],
        vec!["MIGRATE", "127.0.0.1", &tp, "k", "99", "1000", "AUTH", "pw"],
        vec![
            "MIGRATE",
            "127.0.0.1",
            &tp,
            "k",
            "0",
            "1000",
            "COPY",
            "AUTH",
            "pw",
        ],
        vec!["EXISTS", "k"],
        vec![
            "MIGRATE",
            "127.0.0.1",
            &tp,
            "k",
            "0",
            "1000",
            "AUTH2",
            "default",
            "pw",
        ],
        vec!["EXISTS", "k"],
        vec!["SET", "k", "again"],
        vec![
            "MIGRATE",
            "127.0.0.1",
            &tp,
            "k",
            "0",
            "0",
            "REPLACE",
            "AUTH",
            "pw",
        ],
        vec!["EXISTS", "k"],
        vec!["COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5"],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b",
        ],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a",
        ],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "KEYS",
        ],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5", "KEYS",
        ],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "AUTH", "KEYS", "x",
        ],
        vec![
            "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "AUTH2", "a", "b", "KEYS", "c",
        ],
        vec!["COMMAND", "GETKEYS", "RESTORE-ASKING", "k", "0", "x"],
        vec!["RESTORE-ASKING", "k2", "0", "junk"],
    ];
    let run = |src: &Server| -> Vec<String> {
        let mut t = target.raw();
        cmd(&mut t, &["AUTH", "pw"]);
        cmd(&mut t, &["FLUSHALL"]);
        let mut c = src.raw();
        calls.iter().map(|a| cmd(&mut c, a)).collect()
    };
    let redis = Server::redis(&[]);
    let want = run(&redis);
    let slotd = Server::slotd(&["--shards", "2"]);
    let got = run(&slotd);
    for ((call, w), g) in calls.iter().zip(&want).zip(&got) {
        assert_eq!(g, w, "{call:?}");
    }
}

#[test]
fn auth_against_slotd_target() {
    let dst = Server::slotd(&["--requirepass", "pw"]);
    let dp = port(&dst);
    for src in [Server::slotd(&[]), Server::redis(&[])] {
        let mut s = src.raw();
        cmd(&mut s, &["SET", "a", "1"]);
        let r = cmd(&mut s, &["MIGRATE", "127.0.0.1", &dp, "a", "0", "1000"]);
        assert_eq!(
            r,
            "-ERR Target instance replied with error: NOAUTH Authentication required."
        );
        assert_eq!(
            cmd(
                &mut s,
                &["MIGRATE", "127.0.0.1", &dp, "a", "0", "1000", "AUTH", "pw"]
            ),
            "+OK"
        );
        cmd(&mut s, &["SET", "b", "1"]);
        assert_eq!(
            cmd(
                &mut s,
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &dp,
                    "b",
                    "0",
                    "1000",
                    "AUTH2",
                    "default",
                    "pw"
                ]
            ),
            "+OK"
        );
        let mut d = dst.raw();
        cmd(&mut d, &["AUTH", "pw"]);
        assert_eq!(cmd(&mut d, &["MGET", "a", "b"]), "*2 $1 1 $1 1");
        cmd(&mut d, &["FLUSHALL"]);
    }
}

/// Builds a 1M-field hash and a 50 MB string on `c`.
fn build_big(c: &mut RawConn) {
    let mut pipe = Vec::new();
    for batch in 0..1000 {
        let mut argv: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"bighash".to_vec()];
        for i in 0..1000 {
            let n = batch * 1000 + i;
            argv.push(format!("field:{n}").into_bytes());
            argv.push(n.to_string().into_bytes());
        }
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        pipe.extend(tests::encode(&refs));
    }
    c.send(&pipe).unwrap();
    for _ in 0..1000 {
        c.read_reply().unwrap();
    }
    let big: Vec<u8> = (0..50 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.cmd(&[b"SET", b"bigstr", &big]), b"+OK\r\n");
}

#[test]
fn big_values_both_ways() {
    let slotd = Server::slotd(&["--shards", "2"]);
    let redis = Server::redis(&[]);
    let (mut s, mut r) = (slotd.raw(), redis.raw());
    s.set_read_timeout(Duration::from_secs(120));
    r.set_read_timeout(Duration::from_secs(120));
    build_big(&mut s);
    let dh = digest(&mut s, "bighash");
    let ds = digest(&mut s, "bigstr");
    let rp = port(&redis);
    let argv = [
        "MIGRATE",
        "127.0.0.1",
        &rp,
        "",
        "0",
        "60000",
        "KEYS",
        "bighash",
        "bigstr",
    ];
    assert_eq!(cmd(&mut s, &argv), "+OK");
    assert_eq!(cmd(&mut s, &["EXISTS", "bighash", "bigstr"]), ":0");
    assert_eq!(cmd(&mut r, &["HLEN", "bighash"]), ":1000000");
    assert_eq!(digest(&mut r, "bighash"), dh);
    assert_eq!(digest(&mut r, "bigstr"), ds);
    // And back, redis-server → slotd.
    let sp = port(&slotd);
    let argv = [
        "MIGRATE",
        "127.0.0.1",
        &sp,
        "",
        "0",
        "60000",
        "KEYS",
        "bighash",
        "bigstr",
    ];
    assert_eq!(cmd(&mut r, &argv), "+OK");
    assert_eq!(digest(&mut s, "bighash"), dh);
    assert_eq!(digest(&mut s, "bigstr"), ds);
}

/// A writer INCRements keys on the source while a 10k-key MIGRATE runs:
/// every increment that reached a key before it moved is in the value the
/// target got (none lost), and the source has only keys created after the
/// move (never a copy of a moved one).
#[test]
fn concurrent_writer_sees_each_key_in_one_place() {
    const N: usize = 10_000;
    const BASE: i64 = 1_000_000;
    let src = Server::slotd(&["--shards", "2"]);
    let dst = Server::slotd(&[]);
    let mut s = src.raw();
    let keys: Vec<String> = (0..N).map(|i| format!("ctr:{i}")).collect();
    let mut pipe = Vec::new();
    for k in &keys {
        pipe.extend(tests::encode(&[
            b"SET",
            k.as_bytes(),
            BASE.to_string().as_bytes(),
        ]));
    }
    s.send(&pipe).unwrap();
    for _ in 0..N {
        s.read_reply().unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port_s = src.port();
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut w = RawConn::connect(port_s).unwrap();
        let mut before = vec![BASE; N];
        let mut i = 0usize;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            // Pipelines of 50 INCRs over keys on both cores.
            let idx: Vec<usize> = (0..50).map(|j| (i * 7919 + j * 104_729) % N).collect();
            i += 1;
            let mut p = Vec::new();
            for &k in &idx {
                p.extend(tests::encode(&[b"INCR", format!("ctr:{k}").as_bytes()]));
            }
            w.send(&p).unwrap();
            for &k in &idx {
                let r = line(&w.read_reply().unwrap());
                let n: i64 = r.trim_start_matches(':').parse().unwrap();
                if n > BASE {
                    before[k] = before[k].max(n);
                }
            }
        }
        before
    });
    std::thread::sleep(Duration::from_millis(100));
    let dp = port(&dst);
    let mut argv = vec!["MIGRATE", "127.0.0.1", &dp, "", "0", "30000", "KEYS"];
    argv.extend(keys.iter().map(|k| k.as_str()));
    assert_eq!(cmd(&mut s, &argv), "+OK");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let before = writer.join().unwrap();
    let mut d = dst.raw();
    let mut changed = 0;
    for (k, b) in keys.iter().zip(&before) {
        let on_dst = cmd(&mut d, &["GET", k]);
        assert_eq!(
            on_dst,
            format!("${} {b}", b.to_string().len()),
            "{k} on the target"
        );
        let on_src = cmd(&mut s, &["GET", k]);
        if on_src != "$-1" {
            let n: i64 = on_src.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(n < BASE, "{k} is in both places: {on_src}");
        }
        changed += (*b > BASE) as usize;
    }
    assert!(changed > 0, "the writer ran before the move");
}

#[test]
fn cluster_mode_sends_restore_asking() {
    let node = Server::slotd_cluster(&["--shards", "2"]);
    let mut c = node.raw();
    assert_eq!(
        cmd(&mut c, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "+OK"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
        assert!(std::time::Instant::now() < deadline, "cluster never ok");
        std::thread::sleep(Duration::from_millis(50));
    }
    let target = Server::redis(&[]);
    let tp = port(&target);
    cmd(&mut c, &["SET", "{t}a", "1"]);
    cmd(&mut c, &["SET", "{t}b", "2"]);
    let argv = [
        "MIGRATE",
        "127.0.0.1",
        &tp,
        "",
        "0",
        "1000",
        "KEYS",
        "{t}a",
        "{t}b",
    ];
    assert_eq!(cmd(&mut c, &argv), "+OK");
    // Keys in two slots: CROSSSLOT, as Redis.
    let argv = [
        "MIGRATE",
        "127.0.0.1",
        &tp,
        "",
        "0",
        "1000",
        "KEYS",
        "a",
        "b",
    ];
    assert_eq!(
        cmd(&mut c, &argv),
        "-CROSSSLOT Keys in request don't hash to the same slot"
    );
    let stats = target.cli(&["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_restore-asking:calls=2"), "{stats}");
    // RESTORE-ASKING on our node runs as RESTORE.
    let mut t = target.raw();
    let p = t.cmd_str(&["DUMP", "{t}a"]);
    let payload = match tests::Resp::parse(&p).unwrap().0 {
        tests::Resp::Bulk(_, Some(b)) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.cmd(&[b"RESTORE-ASKING", b"{t}a", b"0", &payload]),
        b"+OK\r\n"
    );
    assert_eq!(cmd(&mut c, &["GET", "{t}a"]), "$1 1");
}

/// A target that stops answering (SIGSTOP): MIGRATE gives up after its
/// timeout with Redis's IOERR, as redis-server does, and the key stays.
#[test]
fn a_stalled_target_times_out_as_redis() {
    let target = Server::redis(&[]);
    let tp = port(&target);
    let mut replies = Vec::new();
    for source in [Server::slotd(&["--shards", "2"]), Server::redis(&[])] {
        let mut s = source.raw();
        cmd(&mut s, &["SET", "k", "v"]);
        // SAFETY: stops and resumes a process this test started.
        unsafe { libc::kill(target.pid() as i32, libc::SIGSTOP) };
        let t = std::time::Instant::now();
        let reply = cmd(&mut s, &["MIGRATE", "127.0.0.1", &tp, "k", "0", "300"]);
        let waited = t.elapsed();
        unsafe { libc::kill(target.pid() as i32, libc::SIGCONT) };
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!(cmd(&mut s, &["GET", "k"]), "$1 v");
        replies.push(reply);
    }
    assert_eq!(
        replies[0],
        "-IOERR error or timeout reading to target instance"
    );
    assert_eq!(replies[0], replies[1]);
}
