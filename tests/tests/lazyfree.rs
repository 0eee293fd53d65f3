//! Lazy freeing: UNLINK, DEL, FLUSHALL/FLUSHDB ASYNC and the
//! `lazyfree-lazy-*` directives against a real slotd (two shard cores, so
//! multi-key deletions cross cores) and the stock redis-server: the same
//! replies, the keys gone, and the same INFO `lazyfreed_objects` counts
//! once `lazyfree_pending_objects` is back to 0.

use std::time::{Duration, Instant};
use tests::{show, RawConn, Server};

/// A field of INFO memory as a number.
fn info_field(c: &mut RawConn, name: &str) -> u64 {
    let reply = String::from_utf8_lossy(&c.cmd_str(&["INFO", "memory"])).into_owned();
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO memory has no {name}: {reply}"))
        .trim()
        .parse()
        .unwrap()
}

/// `lazyfreed_objects` once nothing is pending any more.
fn freed_when_settled(c: &mut RawConn) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(c, "lazyfree_pending_objects") > 0 {
        assert!(Instant::now() < deadline, "lazy freeing never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    info_field(c, "lazyfreed_objects")
}

/// The commands that build big values of each type (above Redis's
/// LAZYFREE_THRESHOLD of 64 in its encodings) and a small one, under keys
/// with `tag`.
fn build(tag: &str) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut hset = vec!["HSET".to_string(), format!("h{tag}")];
    let mut sadd = vec!["SADD".to_string(), format!("s{tag}")];
    let mut zadd = vec!["ZADD".to_string(), format!("z{tag}")];
    // Above hash-max-listpack-entries (512) and the set and zset limits
    // (128).
    for i in 0..600 {
        hset.extend([format!("f{i}"), format!("v{i}")]);
    }
    for i in 0..200 {
        sadd.push(format!("m{i}"));
        zadd.extend([i.to_string(), format!("m{i}")]);
    }
    cmds.extend([hset, sadd, zadd]);
    // 700 items of 1000 bytes: about 90 quicklist nodes of 8 KB.
    let mut rpush = vec!["RPUSH".to_string(), format!("l{tag}")];
    rpush.extend((0..700).map(|i| format!("{i:01000}")));
    cmds.push(rpush);
    cmds.push(vec![
        "HSET".into(),
        format!("small{tag}"),
        "f".into(),
        "v".into(),
    ]);
    cmds
}

fn keys(tag: &str) -> Vec<String> {
    ["h", "s", "z", "l", "small"]
        .iter()
        .map(|p| format!("{p}{tag}"))
        .collect()
}

/// Runs one step on both servers: the same replies, then the same
/// `lazyfreed_objects` once settled.
struct Pair {
    slotd: RawConn,
    redis: RawConn,
    step: usize,
}

impl Pair {
    fn run(&mut self, cmd: &[String]) -> Vec<u8> {
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let a = self.slotd.cmd(&args);
        let b = self.redis.cmd(&args);
        let shown: Vec<&str> = cmd.iter().map(|s| &s[..s.len().min(20)]).collect();
        assert_eq!(
            show(&a),
            show(&b),
            "step {}: {shown:?} (slotd, then redis)",
            self.step
        );
        a
    }

    fn line(&mut self, line: &str) -> Vec<u8> {
        let cmd: Vec<String> = line.split(' ').map(String::from).collect();
        self.run(&cmd)
    }

    fn build(&mut self, tag: &str) {
        for c in build(tag) {
            self.run(&c);
        }
    }

    /// Both servers count the same freed objects; returns the count.
    fn same_count(&mut self, what: &str) -> u64 {
        self.step += 1;
        let a = freed_when_settled(&mut self.slotd);
        let b = freed_when_settled(&mut self.redis);
        assert_eq!(a, b, "{what}: lazyfreed_objects (slotd, then redis)");
        a
    }
}

fn pair() -> (Server, Server, Pair) {
    let slotd = Server::slotd(&["--shards", "2"]);
    let redis = Server::redis(&[]);
    let p = Pair {
        slotd: slotd.raw(),
        redis: redis.raw(),
        step: 0,
    };
    (slotd, redis, p)
}

#[test]
fn unlink_and_del_free_big_keys_as_redis() {
    let (_s, _r, mut p) = pair();
    assert_eq!(p.same_count("at start"), 0);
    // UNLINK: the four big values lazily, the small one at once; keys on
    // both cores in one command.
    p.build("{a}");
    p.build("{b}");
    let mut unlink = vec!["UNLINK".to_string()];
    unlink.extend(keys("{a}"));
    unlink.extend(keys("{b}"));
    unlink.push("nosuchkey".into());
    assert_eq!(p.run(&unlink), b":10\r\n");
    assert_eq!(p.same_count("UNLINK of 8 big values"), 8);
    assert_eq!(
        p.line("EXISTS h{a} s{a} z{a} l{a} small{b} h{b}"),
        b":0\r\n"
    );
    assert_eq!(p.line("DBSIZE"), b":0\r\n");
    // UNLINK of one key on this core.
    p.build("{a}");
    assert_eq!(p.line("UNLINK h{a}"), b":1\r\n");
    assert_eq!(p.same_count("UNLINK of one"), 9);
    // DEL frees at once unless lazyfree-lazy-user-del.
    let mut del = vec!["DEL".to_string()];
    del.extend(keys("{a}"));
    assert_eq!(p.run(&del), b":4\r\n");
    assert_eq!(p.same_count("DEL"), 9);
    p.line("CONFIG SET lazyfree-lazy-user-del yes");
    p.build("{a}");
    p.build("{b}");
    let mut del = vec!["DEL".to_string()];
    del.extend(keys("{a}"));
    del.extend(keys("{b}"));
    assert_eq!(p.run(&del), b":10\r\n");
    assert_eq!(p.same_count("DEL with lazyfree-lazy-user-del"), 17);
    assert_eq!(p.line("DBSIZE"), b":0\r\n");
    // CONFIG RESETSTAT zeroes the count.
    p.line("CONFIG RESETSTAT");
    assert_eq!(p.same_count("after RESETSTAT"), 0);
}

#[test]
fn lazyfree_directives_choose_what_is_freed_lazily() {
    let (_s, _r, mut p) = pair();
    // Implicit deletes: SET and RENAME over big values, a STORE
    // destination; eager by default, lazy with lazyfree-lazy-server-del.
    let overwrite = |p: &mut Pair| {
        p.build("{a}");
        p.line("SET h{a} x");
        p.line("SET k{a} y");
        p.line("RENAME k{a} s{a}");
        p.line("SUNIONSTORE z{a} nosuch{a}");
    };
    overwrite(&mut p);
    assert_eq!(p.same_count("overwrites"), 0);
    p.line("FLUSHALL");
    p.line("CONFIG SET lazyfree-lazy-server-del yes");
    overwrite(&mut p);
    assert_eq!(p.line("GET s{a}"), b"$1\r\ny\r\n");
    assert_eq!(p.same_count("overwrites with lazyfree-lazy-server-del"), 3);
    // Expiry: a big key read after its TTL, and EXPIRE in the past.
    p.line("FLUSHALL SYNC");
    let expire = |p: &mut Pair| {
        p.build("{a}");
        p.line("PEXPIRE h{a} 1");
        p.line("EXPIRE z{a} -1");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(p.line("EXISTS h{a} z{a}"), b":0\r\n");
    };
    expire(&mut p);
    assert_eq!(p.same_count("expiry"), 3);
    p.line("CONFIG SET lazyfree-lazy-expire yes");
    expire(&mut p);
    assert_eq!(p.same_count("expiry with lazyfree-lazy-expire"), 5);
    // FLUSHALL/FLUSHDB hand whole databases off with ASYNC, or without an
    // argument under lazyfree-lazy-user-flush; counted by their keys.
    p.line("FLUSHALL SYNC");
    p.build("{a}");
    p.build("{b}");
    p.line("FLUSHALL");
    assert_eq!(p.same_count("FLUSHALL"), 5);
    p.build("{a}");
    p.build("{b}");
    assert_eq!(p.line("FLUSHALL ASYNC"), b"+OK\r\n");
    assert_eq!(p.line("DBSIZE"), b":0\r\n");
    assert_eq!(p.same_count("FLUSHALL ASYNC"), 15);
    p.build("{a}");
    assert_eq!(p.line("FLUSHDB ASYNC"), b"+OK\r\n");
    assert_eq!(p.same_count("FLUSHDB ASYNC"), 20);
    p.line("CONFIG SET lazyfree-lazy-user-flush yes");
    p.build("{b}");
    p.line("FLUSHDB SYNC");
    assert_eq!(p.same_count("FLUSHDB SYNC"), 20);
    p.build("{b}");
    p.line("FLUSHALL");
    assert_eq!(p.same_count("FLUSHALL with lazyfree-lazy-user-flush"), 25);
    assert_eq!(p.line("HSET h{b} f v"), b":1\r\n", "the new databases work");
}

#[test]
fn lazyfree_directives_round_trip_with_config() {
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for name in [
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
        "replica-lazy-flush",
    ] {
        for line in [
            format!("CONFIG GET {name}"),
            format!("CONFIG SET {name} yes"),
            format!("CONFIG GET {name}"),
            format!("CONFIG SET {name} maybe"),
            format!("CONFIG SET {name} NO"),
            format!("CONFIG GET {name}"),
        ] {
            cmds.push(line.split(' ').map(String::from).collect());
        }
    }
    cmds.push(vec!["CONFIG".into(), "GET".into(), "lazyfree*".into()]);
    let cmds: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let cmds: Vec<&[&str]> = cmds.iter().map(Vec::as_slice).collect();
    tests::assert_same_unordered(&cmds);
    // From the command line too.
    let s = Server::slotd(&["--lazyfree-lazy-user-del", "yes"]);
    assert_eq!(
        s.cli(&["CONFIG", "GET", "lazyfree-lazy-user-del"]),
        "lazyfree-lazy-user-del\nyes\n"
    );
}

#[test]
fn big_strings_are_freed_off_the_core() {
    // slotd hands strings of 1 MiB and more to the lazy free thread (a
    // free of 200 MB costs the core tens of milliseconds); Redis frees
    // strings at once, so this is slotd's own count.
    let s = Server::slotd(&["--shards", "1"]);
    let mut c = s.raw();
    let big = vec![b'x'; 8 << 20];
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"SET", b"small", &big[..1000]]), b"+OK\r\n");
    assert_eq!(c.cmd_str(&["UNLINK", "big", "small"]), b":2\r\n");
    assert_eq!(freed_when_settled(&mut c), 1);
    assert_eq!(c.cmd_str(&["EXISTS", "big"]), b":0\r\n");
    // A client that leaves with 64 MB of replies unread: its buffers go
    // to the lazy free thread (uncounted, as Redis does not count them).
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut reader = s.raw();
    let gets: Vec<u8> = (0..8)
        .flat_map(|_| tests::encode(&[b"GET", b"big"]))
        .collect();
    reader.send(&gets).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(reader);
    assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
    assert_eq!(freed_when_settled(&mut c), 1);
}

/// `lazyfree-lazy-eviction`: keys evicted under `maxmemory` are freed by
/// the lazy free thread (counted in `lazyfreed_objects`) only when it is
/// `yes`; eviction happens either way.
#[test]
fn lazyfree_lazy_eviction_frees_evicted_big_values_off_the_core() {
    for lazy in ["no", "yes"] {
        let s = Server::slotd(&["--lazyfree-lazy-eviction", lazy]);
        let mut c = s.raw();
        let used = info_field(&mut c, "used_memory");
        let limit = (used + 4 * 1024 * 1024).to_string();
        c.cmd_str(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]);
        c.cmd_str(&["CONFIG", "SET", "maxmemory", &limit]);
        // Hashes of 600 fields (above the listpack limit, so each is a
        // value of effort 600): about 40 KB each, 16 MB in all.
        for i in 0..400 {
            c.run_build(&format!("{{ev}}{i}"));
        }
        let info = String::from_utf8_lossy(&c.cmd_str(&["INFO", "stats"])).into_owned();
        let evicted: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("evicted_keys:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(evicted > 100, "lazy {lazy}: only {evicted} evicted");
        let freed = freed_when_settled(&mut c);
        if lazy == "yes" {
            assert!(
                freed >= evicted / 2,
                "lazy yes: {freed} of {evicted} freed lazily"
            );
        } else {
            assert_eq!(freed, 0, "lazy no: nothing freed lazily");
        }
    }
}

trait BuildHash {
    fn run_build(&mut self, tag: &str);
}

impl BuildHash for RawConn {
    fn run_build(&mut self, tag: &str) {
        let cmd = &build(tag)[0];
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        self.cmd(&args);
    }
}
