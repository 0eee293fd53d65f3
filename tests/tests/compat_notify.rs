//! Keyspace notifications against redis-server: on each server a RESP2
//! and a RESP3 subscriber PSUBSCRIBE `__key*@*__:*`, one client runs a
//! long script covering every command family, and after each step the
//! messages each subscriber got are compared with redis-server's, in
//! order. A PUBLISH to a channel the pattern matches ends each step, so a
//! step's events are all in before the comparison. With 1 and 2 shards,
//! and with narrower class strings. Expiry, eviction and
//! `notify-keyspace-events` itself (CONFIG GET/SET, the config file,
//! CONFIG REWRITE) too.

use std::time::Duration;
use tests::{encode, show_full, RawConn, Server};

/// The channel that closes a step (matched by the subscribers' pattern).
const SYNC: &str = "__keyevent@99__:sync";

/// One step of the script.
enum Step {
    /// A command on the writer; its reply is compared too.
    Cmd(&'static [&'static str]),
    /// A command whose reply is random (SPOP with a count): only its
    /// events are compared.
    Any(&'static [&'static str]),
    /// A blocking command parked on a second client, then a command on
    /// the writer that serves it; both replies are compared.
    Blocked(&'static [&'static str], &'static [&'static str]),
    /// DUMP of the first key, then RESTORE of the second with the payload
    /// and the extra arguments.
    Restore(&'static str, &'static str, &'static [&'static str]),
    /// MULTI, these commands, EXEC.
    Tx(&'static [&'static [&'static str]]),
}

use Step::{Any, Blocked, Cmd, Restore, Tx};

const SCRIPT: &[Step] = &[
    // Strings.
    Cmd(&["SET", "s1", "v"]),
    Cmd(&["SET", "s1", "v2", "EX", "100"]),
    Cmd(&["SET", "s1", "v3", "KEEPTTL"]),
    Cmd(&["SET", "s1", "v4", "NX"]),
    Cmd(&["SET", "s2", "v", "XX"]),
    Cmd(&["SET", "s2", "v", "GET"]),
    Cmd(&["SET", "s2", "w", "PX", "100000", "GET"]),
    Cmd(&["SETNX", "s3", "a"]),
    Cmd(&["SETEX", "s4", "100", "x"]),
    Cmd(&["PSETEX", "s5", "100000", "x"]),
    Cmd(&["GETSET", "s3", "b"]),
    Cmd(&["GETDEL", "s3"]),
    Cmd(&["GETDEL", "nokey"]),
    Cmd(&["GETEX", "s4", "PERSIST"]),
    Cmd(&["GETEX", "s4", "EX", "200"]),
    Cmd(&["GETEX", "s4", "PXAT", "1"]),
    Cmd(&["MSET", "m1", "1", "m2", "2", "m3", "3"]),
    Cmd(&["MSETNX", "m4", "1", "m1", "2"]),
    Cmd(&["MSETNX", "m4", "1", "m5", "2"]),
    Cmd(&["INCR", "n1"]),
    Cmd(&["INCRBY", "n1", "5"]),
    Cmd(&["DECR", "n1"]),
    Cmd(&["DECRBY", "n1", "2"]),
    Cmd(&["INCRBYFLOAT", "f1", "1.5"]),
    Cmd(&["INCRBYFLOAT", "f1", "2"]),
    Cmd(&["APPEND", "ap", "x"]),
    Cmd(&["APPEND", "ap", "y"]),
    Cmd(&["SETRANGE", "sr", "5", "hello"]),
    Cmd(&["SETRANGE", "sr", "0", ""]),
    Cmd(&["SETBIT", "bits", "7", "1"]),
    Cmd(&["SETBIT", "bits", "7", "1"]),
    Cmd(&["SETBIT", "bits", "100", "0"]),
    Cmd(&["BITOP", "OR", "bo", "m1", "m2"]),
    Cmd(&["BITOP", "AND", "bo", "nokey1", "nokey2"]),
    Cmd(&["BITFIELD", "bf", "SET", "u8", "0", "255", "GET", "u8", "0"]),
    Cmd(&["BITFIELD", "bf", "GET", "u8", "0"]),
    Cmd(&["GET", "nokey"]),
    Cmd(&["MGET", "m1", "nokey2"]),
    Cmd(&["STRLEN", "nokey"]),
    // Keys.
    Cmd(&["DEL", "m1", "nokey"]),
    Cmd(&["MSET", "x1", "1", "x2", "2", "x3", "3", "x4", "4", "x5", "5", "x6", "6"]),
    Cmd(&["EXISTS", "x1", "nokeyA", "nokeyB", "x2", "nokeyC"]),
    Cmd(&["TOUCH", "nokeyD", "x3", "nokeyE"]),
    Cmd(&["DEL", "x1", "x2", "nokey", "x3"]),
    Cmd(&["UNLINK", "x6", "x5", "x4", "x5"]),
    Cmd(&["UNLINK", "m2", "m3"]),
    Cmd(&["EXISTS", "m4", "nokey"]),
    Cmd(&["TYPE", "nokey"]),
    Cmd(&["TTL", "nokey"]),
    Cmd(&["TOUCH", "nokey"]),
    Cmd(&["RENAME", "m4", "r1"]),
    Cmd(&["RENAME", "r1", "r1"]),
    Cmd(&["RENAMENX", "m5", "r1"]),
    Cmd(&["RENAMENX", "m5", "r2"]),
    Cmd(&["SET", "r3", "x"]),
    Cmd(&["RENAME", "r2", "r3"]),
    Cmd(&["EXPIRE", "r3", "100"]),
    Cmd(&["PEXPIRE", "r3", "1000000", "GT"]),
    Cmd(&["EXPIRE", "r3", "10", "NX"]),
    Cmd(&["EXPIREAT", "r3", "1"]),
    Cmd(&["EXPIRE", "nokey", "10"]),
    Cmd(&["SET", "p1", "x", "EX", "100"]),
    Cmd(&["PERSIST", "p1"]),
    Cmd(&["PERSIST", "p1"]),
    Cmd(&["MOVE", "p1", "1"]),
    Cmd(&["SET", "p2", "y"]),
    Cmd(&["COPY", "p2", "cp", "DB", "1"]),
    Cmd(&["COPY", "p2", "cp2"]),
    Cmd(&["COPY", "p2", "cp2"]),
    Cmd(&["COPY", "p2", "cp2", "REPLACE"]),
    Cmd(&["SELECT", "1"]),
    Cmd(&["DEL", "p1", "cp"]),
    Cmd(&["SET", "indb1", "x"]),
    Cmd(&["SELECT", "0"]),
    Cmd(&["SET", "d1", "hello"]),
    Restore("d1", "d2", &["0"]),
    Restore("d1", "d2", &["0", "REPLACE"]),
    Restore("d1", "d2", &["1", "ABSTTL", "REPLACE"]),
    // Lists.
    Cmd(&["RPUSH", "l1", "a", "b", "c"]),
    Cmd(&["LPUSH", "l1", "z"]),
    Cmd(&["LPUSHX", "nolist", "x"]),
    Cmd(&["RPUSHX", "l1", "d"]),
    Cmd(&["LINSERT", "l1", "BEFORE", "b", "bb"]),
    Cmd(&["LINSERT", "l1", "BEFORE", "nothing", "x"]),
    Cmd(&["LSET", "l1", "0", "zz"]),
    Cmd(&["LREM", "l1", "1", "zz"]),
    Cmd(&["LREM", "l1", "1", "nothing"]),
    Cmd(&["LTRIM", "l1", "0", "2"]),
    Cmd(&["LPOP", "l1"]),
    Cmd(&["RPOP", "l1", "2"]),
    Cmd(&["RPUSH", "l2", "1", "2", "3"]),
    Cmd(&["LMOVE", "l2", "l3", "LEFT", "RIGHT"]),
    Cmd(&["RPOPLPUSH", "l2", "l3"]),
    Cmd(&["LMOVE", "l2", "l2", "LEFT", "LEFT"]),
    Cmd(&["LMOVE", "l2", "l3", "LEFT", "LEFT"]),
    Cmd(&["LMPOP", "2", "nolist", "l3", "LEFT", "COUNT", "1"]),
    Cmd(&["LRANGE", "nolist", "0", "-1"]),
    Cmd(&["RPUSH", "lt", "a"]),
    Cmd(&["LTRIM", "lt", "1", "0"]),
    Blocked(&["BLPOP", "bl", "0"], &["RPUSH", "bl", "a", "b"]),
    Blocked(&["BLPOP", "bl1", "0"], &["RPUSH", "bl1", "a"]),
    Blocked(&["BLMOVE", "bl2", "dstl", "RIGHT", "LEFT", "0"], &["RPUSH", "bl2", "x"]),
    Blocked(&["BLMPOP", "0", "1", "bl3", "LEFT", "COUNT", "2"], &["LPUSH", "bl3", "1"]),
    Blocked(&["BZPOPMIN", "bz", "0"], &["ZADD", "bz", "1", "a", "2", "b"]),
    // Hashes.
    Cmd(&["HSET", "h", "f1", "v1", "f2", "v2"]),
    Cmd(&["HSETNX", "h", "f1", "x"]),
    Cmd(&["HSETNX", "h", "f3", "x"]),
    Cmd(&["HMSET", "h", "f4", "v"]),
    Cmd(&["HINCRBY", "h", "n", "3"]),
    Cmd(&["HINCRBYFLOAT", "h", "fl", "1.5"]),
    Cmd(&["HDEL", "h", "f1", "nofield"]),
    Cmd(&["HDEL", "h", "nofield"]),
    Cmd(&["HDEL", "h", "f2", "f3", "f4", "n", "fl"]),
    Cmd(&["HGET", "nohash", "f"]),
    // Sets.
    Cmd(&["SADD", "s", "a", "b", "c"]),
    Cmd(&["SADD", "s", "a"]),
    Cmd(&["SREM", "s", "a", "zz"]),
    Cmd(&["SMOVE", "s", "s2", "b"]),
    Cmd(&["SMOVE", "s", "s2", "c"]),
    Cmd(&["SMOVE", "noset", "s2", "x"]),
    Cmd(&["SADD", "s3", "c"]),
    Cmd(&["SMOVE", "s2", "s3", "c"]),
    Cmd(&["SADD", "sa", "1", "2", "3"]),
    Cmd(&["SADD", "sb", "2", "3", "4"]),
    Cmd(&["SINTERSTORE", "si", "sa", "sb"]),
    Cmd(&["SUNIONSTORE", "su", "sa", "sb"]),
    Cmd(&["SDIFFSTORE", "sd", "sa", "sb"]),
    Cmd(&["SINTERSTORE", "si", "sa", "noset"]),
    Cmd(&["SPOP", "sd"]),
    Cmd(&["SPOP", "noset"]),
    Any(&["SPOP", "su", "10"]),
    Cmd(&["SADD", "sp", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]),
    Any(&["SPOP", "sp", "3"]),
    Any(&["SPOP", "sp", "6"]),
    Cmd(&["SREM", "sp", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]),
    // Sorted sets.
    Cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
    Cmd(&["ZADD", "z", "XX", "5", "a"]),
    Cmd(&["ZADD", "z", "NX", "1", "a"]),
    Cmd(&["ZADD", "z", "CH", "1", "a", "9", "d"]),
    Cmd(&["ZINCRBY", "z", "1", "a"]),
    Cmd(&["ZADD", "z", "INCR", "1", "a"]),
    Cmd(&["ZREM", "z", "d", "nomember"]),
    Cmd(&["ZREMRANGEBYSCORE", "z", "100", "200"]),
    Cmd(&["ZREMRANGEBYRANK", "z", "0", "0"]),
    Cmd(&["ZADD", "zl", "0", "a", "0", "b", "0", "c"]),
    Cmd(&["ZREMRANGEBYLEX", "zl", "[a", "[b"]),
    Cmd(&["ZREMRANGEBYLEX", "zl", "-", "+"]),
    Cmd(&["ZPOPMIN", "z"]),
    Cmd(&["ZPOPMAX", "z", "5"]),
    Cmd(&["ZPOPMAX", "nozset"]),
    Cmd(&["ZADD", "za", "1", "x", "2", "y"]),
    Cmd(&["ZADD", "zb", "2", "y", "3", "z"]),
    Cmd(&["ZUNIONSTORE", "zu", "2", "za", "zb"]),
    Cmd(&["ZINTERSTORE", "zi", "2", "za", "zb"]),
    Cmd(&["ZDIFFSTORE", "zd", "2", "za", "zb"]),
    Cmd(&["ZINTERSTORE", "zi", "2", "za", "nozset"]),
    Cmd(&["ZRANGESTORE", "zr", "za", "0", "-1"]),
    Cmd(&["ZRANGESTORE", "zr", "za", "5", "6"]),
    Cmd(&["ZMPOP", "1", "zu", "MIN", "COUNT", "10"]),
    Cmd(&["ZSCORE", "nozset", "a"]),
    // Streams.
    Cmd(&["XADD", "st", "1-1", "f", "v"]),
    Cmd(&["XADD", "st", "MAXLEN", "1", "2-1", "f", "v"]),
    Cmd(&["XADD", "st", "MAXLEN", "5", "3-1", "f", "v"]),
    Cmd(&["XADD", "nostream", "NOMKSTREAM", "*", "f", "v"]),
    Cmd(&["XGROUP", "CREATE", "st", "g", "0"]),
    Cmd(&["XGROUP", "CREATE", "st2", "g", "$", "MKSTREAM"]),
    Cmd(&["XGROUP", "CREATECONSUMER", "st", "g", "c1"]),
    Cmd(&["XGROUP", "CREATECONSUMER", "st", "g", "c1"]),
    Cmd(&["XREADGROUP", "GROUP", "g", "c2", "COUNT", "1", "STREAMS", "st", ">"]),
    Cmd(&["XREADGROUP", "GROUP", "g", "c2", "COUNT", "1", "STREAMS", "st", ">"]),
    Cmd(&["XGROUP", "SETID", "st", "g", "0"]),
    Cmd(&["XCLAIM", "st", "g", "c3", "0", "2-1", "JUSTID"]),
    Cmd(&["XAUTOCLAIM", "st", "g", "c4", "0", "0", "JUSTID"]),
    Cmd(&["XACK", "st", "g", "2-1"]),
    Cmd(&["XGROUP", "DELCONSUMER", "st", "g", "c1"]),
    Cmd(&["XGROUP", "DESTROY", "st", "g"]),
    Cmd(&["XGROUP", "DESTROY", "st", "g"]),
    Cmd(&["XSETID", "st", "5-0"]),
    Cmd(&["XDEL", "st", "3-1"]),
    Cmd(&["XDEL", "st", "3-1"]),
    Cmd(&["XADD", "st", "6-1", "f", "v"]),
    Cmd(&["XTRIM", "st", "MAXLEN", "0"]),
    Cmd(&["XTRIM", "st", "MAXLEN", "0"]),
    Cmd(&["XRANGE", "nostream", "-", "+"]),
    // Geo.
    Cmd(&["GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"]),
    Cmd(&["GEOSEARCHSTORE", "gs", "geo", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"]),
    Cmd(&["GEORADIUS", "geo", "15", "37", "200", "km", "STORE", "gr"]),
    Cmd(&["GEORADIUSBYMEMBER", "geo", "Palermo", "300", "km", "STOREDIST", "gr"]),
    Cmd(&["GEOSEARCHSTORE", "gs", "geo", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"]),
    Cmd(&["GEOSEARCHSTORE", "gr", "nogeo", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"]),
    // HyperLogLog.
    Cmd(&["PFADD", "hl", "a", "b", "c"]),
    Cmd(&["PFADD", "hl", "a"]),
    Cmd(&["PFADD", "hl2", "x"]),
    Cmd(&["PFMERGE", "hl3", "hl", "hl2"]),
    Cmd(&["PFCOUNT", "hl"]),
    // SORT.
    Cmd(&["RPUSH", "so", "3", "1", "2"]),
    Cmd(&["SORT", "so", "STORE", "sos"]),
    Cmd(&["SORT", "nolist", "STORE", "sos"]),
    // Scripts: on one core, and (with 2 shards) across cores.
    Cmd(&[
        "EVAL",
        "redis.call('set',KEYS[1],'x'); redis.call('lpush',KEYS[2],'y'); redis.call('get','{e}nokey'); return redis.call('del',KEYS[1])",
        "2",
        "{e}1",
        "{e}2",
    ]),
    Cmd(&[
        "EVAL",
        "redis.call('set',KEYS[1],'x'); redis.call('incr',KEYS[2]); redis.call('rpush',KEYS[3],'z'); return redis.call('unlink',KEYS[1],KEYS[2])",
        "3",
        "ea",
        "eb",
        "ec",
    ]),
    // A transaction.
    Tx(&[
        &["SET", "{tx}a", "1"],
        &["INCR", "{tx}b"],
        &["LPUSH", "{tx}c", "x"],
        &["DEL", "{tx}a"],
        &["GET", "{tx}nokey"],
    ]),
    // Neither emits anything.
    Cmd(&["SWAPDB", "0", "1"]),
    Cmd(&["SWAPDB", "0", "1"]),
    Cmd(&["FLUSHALL"]),
];

/// A server under test: its writer, the client that blocks, and the
/// subscribers (RESP2, RESP3).
struct Side {
    server: Server,
    writer: RawConn,
    blocker: RawConn,
    subs: Vec<RawConn>,
    syncs: u64,
}

impl Side {
    fn new(server: Server) -> Side {
        let port = server.port();
        let mut subs = Vec::new();
        for resp3 in [false, true] {
            let mut c = RawConn::connect(port).unwrap();
            if resp3 {
                c.cmd_str(&["HELLO", "3"]);
            }
            let r = c.cmd_str(&["PSUBSCRIBE", "__key*@*__:*"]);
            assert!(show_full(&r).contains("psubscribe"), "{}", show_full(&r));
            subs.push(c);
        }
        Side {
            writer: RawConn::connect(port).unwrap(),
            blocker: RawConn::connect(port).unwrap(),
            server,
            subs,
            syncs: 0,
        }
    }

    /// The messages each subscriber got since the last call, up to a
    /// PUBLISH to [`SYNC`] sent now.
    fn collect(&mut self) -> Vec<Vec<String>> {
        self.syncs += 1;
        let marker = self.syncs.to_string();
        self.writer.cmd_str(&["PUBLISH", SYNC, &marker]);
        self.read_until(&marker)
    }

    /// Each subscriber's messages up to the PUBLISH of `marker` to [`SYNC`].
    fn read_until(&mut self, marker: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for s in &mut self.subs {
            let mut got = Vec::new();
            loop {
                let m = s.read_reply().expect("a subscriber message");
                let shown = show_full(&m);
                if shown.contains(SYNC) {
                    assert!(shown.ends_with(&format!("\\r\\n{marker}\\r\\n")), "{shown}");
                    break;
                }
                got.push(shown);
            }
            out.push(got);
        }
        out
    }

    /// Runs one step: the replies it got, and each subscriber's messages.
    fn step(&mut self, step: &Step) -> (Vec<String>, Vec<Vec<String>>) {
        let replies = match step {
            Cmd(args) => vec![show_full(&self.writer.cmd_str(args))],
            Any(args) => {
                self.writer.cmd_str(args);
                Vec::new()
            }
            Blocked(block, push) => {
                let a: Vec<&[u8]> = block.iter().map(|s| s.as_bytes()).collect();
                self.blocker.send(&encode(&a)).unwrap();
                // Parked before the push arrives. (slotd's INFO counts a
                // client parked on another core's key as not blocked: give
                // it time instead.)
                let deadline = std::time::Instant::now() + Duration::from_millis(300);
                while std::time::Instant::now() < deadline {
                    let info = show_full(&self.writer.cmd_str(&["INFO", "clients"]));
                    if info.contains("blocked_clients:1") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                let pushed = show_full(&self.writer.cmd_str(push));
                let served = show_full(&self.blocker.read_reply().unwrap());
                vec![pushed, served]
            }
            Tx(cmds) => {
                let mut out = vec![show_full(&self.writer.cmd_str(&["MULTI"]))];
                for c in cmds.iter() {
                    out.push(show_full(&self.writer.cmd_str(c)));
                }
                out.push(show_full(&self.writer.cmd_str(&["EXEC"])));
                out
            }
            Restore(src, dst, extra) => {
                let dump = self.writer.cmd_str(&["DUMP", src]);
                let (payload, _) = tests::Resp::parse(&dump).unwrap();
                let tests::Resp::Bulk(_, Some(payload)) = payload else {
                    panic!("DUMP {src}: {}", show_full(&dump));
                };
                let ttl = extra[0].as_bytes();
                let mut a: Vec<&[u8]> = vec![b"RESTORE", dst.as_bytes(), ttl, &payload];
                a.extend(extra[1..].iter().map(|s| s.as_bytes()));
                vec![show_full(&self.writer.cmd(&a))]
            }
        };
        (replies, self.collect())
    }
}

fn describe(step: &Step) -> String {
    match step {
        Cmd(a) | Any(a) => a.join(" "),
        Blocked(b, p) => format!("{} served by {}", b.join(" "), p.join(" ")),
        Restore(s, d, e) => format!("RESTORE {d} (DUMP {s}) {}", e.join(" ")),
        Tx(cmds) => format!(
            "MULTI {} EXEC",
            cmds.iter()
                .map(|c| c.join(" "))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Runs the script on slotd (with `shards`) and redis-server, both with
/// `notify-keyspace-events classes`, comparing each step.
fn compare_script(classes: &str, shards: &str) {
    let mut slotd = Side::new(Server::slotd(&[
        "--shards",
        shards,
        "--notify-keyspace-events",
        classes,
    ]));
    let mut redis = Side::new(Server::redis(&["--notify-keyspace-events", classes]));
    let mut total = 0;
    for step in SCRIPT {
        eprintln!("step: {}", describe(step));
        let (r1, e1) = slotd.step(step);
        let (r2, e2) = redis.step(step);
        let what = describe(step);
        assert_eq!(r1, r2, "replies of `{what}` ({classes}, {shards} shards)");
        assert_eq!(e1, e2, "events of `{what}` ({classes}, {shards} shards)");
        total += e2[0].len();
    }
    // The comparison means something: redis-server sent events.
    if classes.contains('K') || classes.contains('E') {
        assert!(total > 50, "{classes}: only {total} events");
    } else {
        assert_eq!(total, 0, "{classes}");
    }
    drop(slotd.server);
    drop(redis.server);
}

#[test]
fn every_family_kea_one_shard() {
    compare_script("KEA", "1");
}

#[test]
fn every_family_kea_two_shards() {
    compare_script("KEA", "2");
}

#[test]
fn narrower_classes_two_shards() {
    compare_script("Elg$", "2");
}

#[test]
fn new_keymiss_and_stream_classes() {
    compare_script("Knmt", "2");
    compare_script("AKEnm", "1");
}

#[test]
fn off_sends_nothing() {
    compare_script("", "2");
    // Classes without K or E publish nothing either.
    compare_script("A", "1");
}

/// The last bulk string of a message as [`show_full`] prints it.
fn last_bulk(m: &str) -> String {
    m.trim_end_matches("\\r\\n")
        .rsplit("\\r\\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Events that arrive on their own (expiry, eviction): each subscriber's
/// messages until none came for `quiet`.
fn drain(side: &mut Side, quiet: Duration) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for s in &mut side.subs {
        s.set_read_timeout(quiet);
        let mut got = Vec::new();
        while let Ok(m) = s.read_reply() {
            got.push(show_full(&m));
        }
        s.set_read_timeout(Duration::from_secs(10));
        out.push(got);
    }
    out
}

#[test]
fn expired_keys_lazily_and_actively() {
    for shards in ["1", "2"] {
        let mut sides = [
            Side::new(Server::slotd(&[
                "--shards",
                shards,
                "--notify-keyspace-events",
                "KEA",
                "--enable-debug-command",
                "yes",
            ])),
            Side::new(Server::redis(&[
                "--notify-keyspace-events",
                "KEA",
                "--enable-debug-command",
                "yes",
            ])),
        ];
        let mut seen = Vec::new();
        for side in &mut sides {
            // Lazily: the active cycle is off, a read finds it expired.
            side.writer.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
            side.writer.cmd_str(&["SET", "lazy", "v"]);
            side.writer.cmd_str(&["PEXPIRE", "lazy", "50"]);
            let before = side.collect();
            std::thread::sleep(Duration::from_millis(120));
            let got = side.writer.cmd_str(&["GET", "lazy"]);
            assert_eq!(show_full(&got), show_full(b"$-1\r\n"));
            let lazy = side.collect();
            // Actively: nobody reads it.
            side.writer.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
            side.writer.cmd_str(&["SET", "active", "v", "PX", "50"]);
            side.writer.cmd_str(&["HSET", "active2", "f", "v"]);
            side.writer.cmd_str(&["PEXPIRE", "active2", "60"]);
            let set = side.collect();
            let active = drain(side, Duration::from_millis(1500));
            seen.push((before, lazy, set, active));
        }
        let (a, b) = (&seen[0], &seen[1]);
        assert_eq!(a.0, b.0, "{shards} shards: setting the TTL");
        assert_eq!(a.1, b.1, "{shards} shards: lazy expiry");
        assert!(b.1[0].iter().any(|m| m.contains("expired")), "{:?}", b.1);
        assert_eq!(a.2, b.2, "{shards} shards: SET PX");
        // The active cycle may take the two keys in either order.
        for s in 0..2 {
            let (mut x, mut y) = (a.3[s].clone(), b.3[s].clone());
            x.sort();
            y.sort();
            assert_eq!(x, y, "{shards} shards: active expiry");
            assert_eq!(y.len(), 4, "{y:?}");
        }
    }
}

#[test]
fn evicted_keys_are_published() {
    for shards in ["1", "2"] {
        let mut side = Side::new(Server::slotd(&[
            "--shards",
            shards,
            "--notify-keyspace-events",
            "Ee",
            "--maxmemory-policy",
            "allkeys-random",
        ]));
        let mut redis = Side::new(Server::redis(&[
            "--notify-keyspace-events",
            "Ee",
            "--maxmemory-policy",
            "allkeys-random",
        ]));
        for s in [&mut side, &mut redis] {
            let value = "x".repeat(1000);
            for i in 0..2000 {
                s.writer.cmd_str(&["SET", &format!("k{i}"), &value]);
            }
            assert_eq!(s.collect(), vec![Vec::<String>::new(); 2]);
            let info = show_full(&s.writer.cmd_str(&["INFO", "memory"]));
            let used: u64 = info
                .split("used_memory:")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{info}"));
            let limit = (used - 1_000_000).to_string();
            s.writer.cmd_str(&["CONFIG", "SET", "maxmemory", &limit]);
            // Writes make room (and the cron evicts too).
            for i in 0..50 {
                s.writer.cmd_str(&["SET", &format!("w{i}"), "v"]);
            }
            let got = s.collect();
            s.writer.cmd_str(&["CONFIG", "SET", "maxmemory", "0"]);
            // Every message names an evicted key, now gone, on the
            // keyevent channel; as many as INFO counts.
            let evicted: u64 = show_full(&s.writer.cmd_str(&["INFO", "stats"]))
                .split("evicted_keys:")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            let late = drain(s, Duration::from_millis(300));
            for sub in 0..2 {
                let msgs: Vec<&String> = got[sub].iter().chain(&late[sub]).collect();
                assert!(evicted > 100, "{evicted}");
                assert_eq!(msgs.len() as u64, evicted, "{msgs:?}");
                for m in msgs {
                    assert!(m.contains("__keyevent@0__:evicted"), "{m}");
                    let key = last_bulk(m);
                    let exists = s.writer.cmd_str(&["EXISTS", &key]);
                    assert_eq!(exists, b":0\r\n", "{key} evicted but present");
                }
            }
        }
    }
}

/// The directive: CONFIG SET/GET with Redis's normalised string and
/// errors, the command line and config file, CONFIG REWRITE; and that a
/// runtime change reaches every core.
#[test]
fn keyspace_events_match_redis() {
    let dir = tests::fresh_dir("notify", "conf");
    let conf = dir.join("slotd.conf");
    std::fs::write(&conf, "notify-keyspace-events Elx\n").unwrap();
    let slotd = Server::slotd_with_config(&conf, &["--shards", "2"]);
    let redis = Server::redis(&[]);
    let mut s = slotd.raw();
    let mut r = redis.raw();
    assert_eq!(
        show_full(&s.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"])),
        show_full(b"*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nlxE\r\n")
    );
    for v in [
        "",
        "KEA",
        "AKE",
        "Elg$",
        "AKEnm",
        "gx",
        "KEq",
        "AAK",
        "g$lshzxetd",
        "g$lshzxet",
        "m",
        "Kd",
        "nnn",
        "E$$",
        "ke",
        "KE A",
    ] {
        let a = show_full(&s.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", v]));
        let b = show_full(&r.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", v]));
        assert_eq!(a, b, "CONFIG SET notify-keyspace-events {v:?}");
        let a = show_full(&s.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]));
        let b = show_full(&r.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]));
        assert_eq!(a, b, "CONFIG GET after {v:?}");
    }
    // A runtime change reaches both cores: keys on each get events.
    s.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "E$"]);
    let mut sub = slotd.raw();
    sub.cmd_str(&["SUBSCRIBE", "__keyevent@0__:set"]);
    for k in ["a", "b", "c", "d", "e", "f"] {
        s.cmd_str(&["SET", k, "v"]);
    }
    for k in ["a", "b", "c", "d", "e", "f"] {
        let m = show_full(&sub.read_reply().unwrap());
        assert_eq!(last_bulk(&m), k, "{m}");
    }
    // CONFIG REWRITE writes the normalised form, quoted as Redis does.
    s.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    assert_eq!(s.cmd_str(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.lines().any(|l| l == "notify-keyspace-events \"AKE\""),
        "{text}"
    );
    s.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    assert_eq!(s.cmd_str(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.lines().any(|l| l == "notify-keyspace-events \"\""),
        "{text}"
    );
}

/// A replica publishes the events of the writes it applies from its
/// master: a slotd replica (2 cores) and a redis-server replica of the
/// same redis-server master, with subscribers on each replica, after each
/// step of the script run on the master (the PUBLISH that ends a step is
/// replicated too).
#[test]
fn replicas_publish_what_they_apply() {
    let master = Server::redis(&["--repl-diskless-sync-delay", "0"]);
    let port = master.port().to_string();
    let mut replicas = [
        Side::new(Server::slotd(&[
            "--shards",
            "2",
            "--notify-keyspace-events",
            "KEA",
            "--replicaof",
            "127.0.0.1",
            &port,
        ])),
        Side::new(Server::redis(&[
            "--notify-keyspace-events",
            "KEA",
            "--replicaof",
            "127.0.0.1",
            &port,
        ])),
    ];
    for side in &mut replicas {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let info = show_full(&side.writer.cmd_str(&["INFO", "replication"]));
            if info.contains("master_link_status:up") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{info}");
            std::thread::sleep(Duration::from_millis(20));
        }
        side.writer = master.raw();
    }
    let mut total = 0;
    for step in SCRIPT.iter().filter(|s| !matches!(s, Blocked(..))) {
        let what = describe(step);
        let (_, e1) = replicas[0].step(step);
        // The second replica's writer is the master too: the step ran
        // already; only collect what this replica got.
        let marker = replicas[0].syncs.to_string();
        let e2 = replicas[1].read_until(&marker);
        assert_eq!(e1, e2, "events of `{what}` on the replicas");
        total += e2[0].len();
    }
    assert!(total > 50, "only {total} events");
}

/// MIGRATE deletes the keys it moved with a `del` event each (COPY keeps
/// them, without one), as redis-server does.
#[test]
fn migrate_publishes_its_deletions() {
    let target = Server::redis(&[]);
    let tport = target.port().to_string();
    let mut got = Vec::new();
    for source in [
        Server::slotd(&["--shards", "2", "--notify-keyspace-events", "KEA"]),
        Server::redis(&["--notify-keyspace-events", "KEA"]),
    ] {
        let mut side = Side::new(source);
        let mut events = Vec::new();
        for cmd in [
            &["MSET", "ma", "1", "mb", "2", "mc", "3"][..],
            &[
                "MIGRATE",
                "127.0.0.1",
                &tport,
                "",
                "0",
                "5000",
                "KEYS",
                "ma",
                "mb",
            ],
            &[
                "MIGRATE",
                "127.0.0.1",
                &tport,
                "mc",
                "0",
                "5000",
                "COPY",
                "REPLACE",
            ],
            &["MIGRATE", "127.0.0.1", &tport, "nokey", "0", "5000"],
        ] {
            let r = show_full(&side.writer.cmd_str(cmd));
            events.push((cmd.join(" "), r, side.collect()));
        }
        target.cli(&["flushall"]);
        got.push(events);
    }
    for (a, b) in got[0].iter().zip(&got[1]) {
        assert_eq!(a, b, "{}", b.0);
    }
    assert!(format!("{:?}", got[1]).contains("__keyevent@0__:del"));
}
