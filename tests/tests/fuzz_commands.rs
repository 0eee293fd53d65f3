//! A seeded run of random commands against a real slotd with two shards:
//! every command the server lists (but those that would stop the run:
//! SHUTDOWN, blocking, replication, MONITOR, ...) with random arguments
//! drawn from keys of every type on both cores, option words, numbers at
//! the edges and noise, in random pipelines, transactions and databases.
//! Each command gets an answer, the server never hangs nor dies, and it
//! still serves a fresh client at the end. `FUZZ_SEED` replays a run,
//! `FUZZ_COMMANDS` sets its length, `FUZZ_ARGS` adds server arguments
//! (e.g. `--appendonly yes --appendfsync always`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tests::{encode, show, RawConn, Resp, Server};

/// Commands that would end or stall the run rather than test it (MULTI
/// and EXEC are sent around random commands, never alone).
const SKIP: &[&str] = &[
    "shutdown",
    "replicaof",
    "slaveof",
    "sync",
    "psync",
    "monitor",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "debug",
    "migrate",
    "failover",
    "client",
    "wait",
    "waitaof",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "bzpopmin",
    "bzpopmax",
    "blmpop",
    "bzmpop",
    "xread",
    "xreadgroup",
    "config",
    "cluster",
    "replconf",
    "acl",
    "multi",
    "exec",
];

/// Keys of every type, on both cores (the `{a}` and `{b}` tags hash to
/// slots 15495 and 3300).
const KEYS: &[&str] = &[
    "{a}s", "{a}l", "{a}h", "{a}z", "{a}x", "{a}i", "{b}s", "{b}l", "{b}h", "{b}z", "{b}x", "{b}t",
    "{b}none", "{a}none",
];

const SEED_DATA: &[&[&str]] = &[
    &["SET", "{a}s", "12345"],
    &["SET", "{b}s", "hello world"],
    &["RPUSH", "{a}l", "a", "b", "1", "300", "-5"],
    &["HSET", "{a}h", "f1", "v1", "f2", "2"],
    &["ZADD", "{a}z", "1", "a", "2.5", "b", "-3", "c"],
    &["XADD", "{a}x", "1-1", "f", "v"],
    &["XADD", "{a}x", "2-1", "f", "v"],
    &["XGROUP", "CREATE", "{a}x", "g", "0"],
    &["SADD", "{a}i", "1", "2", "3"],
    &["SADD", "{b}t", "x", "y"],
    &["XADD", "{b}x", "5-5", "a", "b"],
    &["PFADD", "{b}p", "a", "b"],
    &["GEOADD", "{b}g", "13.361389", "38.115556", "Palermo"],
];

const WORDS: &[&str] = &[
    "WITHSCORES",
    "LIMIT",
    "COUNT",
    "MATCH",
    "TYPE",
    "BY",
    "GET",
    "STORE",
    "REV",
    "BYSCORE",
    "BYLEX",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "EX",
    "PX",
    "KEEPTTL",
    "WITHVALUES",
    "IDLE",
    "JUSTID",
    "MAXLEN",
    "MINID",
    "~",
    "=",
    "*",
    "-",
    "+",
    "(1",
    "[a",
    "OVERFLOW",
    "SAT",
    "INCRBY",
    "u8",
    "i64",
    "#1",
    "BIT",
    "BYTE",
    "AND",
    "XOR",
    "NOT",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "RANK",
    "ALPHA",
    "DESC",
    "WEIGHTS",
    "AGGREGATE",
    "MIN",
    "FROMMEMBER",
    "BYRADIUS",
    "m",
    "WITHCOORD",
    "ANY",
    "LEN",
    "IDX",
    "REPLACE",
    "ABSTTL",
    "DB",
    "ENCODING",
    "FREQ",
    "HELP",
    "STREAM",
    "GROUPS",
    "FULL",
    "CREATE",
    "SETID",
    "CREATECONSUMER",
    "MKSTREAM",
    ">",
    "$",
    "0-0",
    "1-1",
    "g",
    "c1",
    "f",
    "a",
    "USAGE",
    "LOAD",
    "FLUSH",
    "EXISTS",
    "NUMSUB",
    "CHANNELS",
    "GETKEYS",
    "INFO",
    "LIST",
    "KILL",
    "MULTI",
    "EXEC",
    "0",
    "1",
    "2",
    "-1",
    "3",
    "return redis.call('get', KEYS[1])",
    "return redis.call('incr', KEYS[1])",
    "#!lua name=lib\nredis.register_function('f', function(k, a) return #k end)",
];

fn number(rng: &mut StdRng) -> String {
    const EDGES: &[&str] = &[
        "0",
        "-1",
        "1",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "inf",
        "-inf",
        "nan",
        "1e400",
        "0.5",
        "4294967296",
        "-4294967297",
        "65536",
        "100",
    ];
    match rng.gen_range(0..3) {
        0 => EDGES[rng.gen_range(0..EDGES.len())].to_string(),
        1 => rng.gen_range(-20i64..20).to_string(),
        _ => rng.gen::<i64>().to_string(),
    }
}

fn arg(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..13) {
        0..=3 => KEYS[rng.gen_range(0..KEYS.len())].as_bytes().to_vec(),
        4..=7 => WORDS[rng.gen_range(0..WORDS.len())].as_bytes().to_vec(),
        8..=11 => number(rng).into_bytes(),
        _ => (0..rng.gen_range(0..10)).map(|_| rng.gen()).collect(),
    }
}

/// The commands the server lists, but `SKIP` (in cluster mode, CLUSTER
/// is run too).
fn command_names(s: &Server, cluster: bool) -> Vec<String> {
    let mut c = s.client();
    let names: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut c).unwrap();
    let mut names: Vec<String> = names
        .into_iter()
        .map(|n| n.to_lowercase())
        .filter(|n| !SKIP.contains(&n.as_str()) || (cluster && n == "cluster"))
        .collect();
    names.sort();
    assert!(names.len() > 150, "COMMAND LIST: {names:?}");
    names
}

/// A new connection to a server holding just the seed data (a cluster
/// node is reset first and given every slot).
fn seed(port: u16, cluster: bool) -> Result<RawConn, String> {
    let mut c = RawConn::connect(port).unwrap();
    let r = c.cmd(&[b"FLUSHALL"]);
    if r != b"+OK\r\n" {
        return Err(format!("FLUSHALL: {}", show(&r)));
    }
    if cluster {
        for cmd in [
            &["CLUSTER", "RESET", "HARD"][..],
            &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
        ] {
            let r = c.cmd_str(cmd);
            if r != b"+OK\r\n" {
                return Err(format!("{cmd:?}: {}", show(&r)));
            }
        }
        let ok = (0..500).any(|_| {
            let info = c.cmd_str(&["CLUSTER", "INFO"]);
            std::thread::sleep(Duration::from_millis(10));
            show(&info).contains("cluster_state:ok")
        });
        if !ok {
            return Err("cluster_state did not become ok".into());
        }
    }
    for cmd in SEED_DATA {
        let a: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let r = c.cmd(&a);
        if r.starts_with(b"-") {
            return Err(format!("{cmd:?}: {}", show(&r)));
        }
    }
    Ok(c)
}

#[test]
fn random_commands_never_stop_the_server() {
    fuzz(false);
}

#[test]
fn random_commands_never_stop_a_cluster_node() {
    fuzz(true);
}

fn fuzz(cluster: bool) {
    let seed_n: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u16>() as u64);
    let total: usize = std::env::var("FUZZ_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cluster { 8_000 } else { 40_000 });
    eprintln!("fuzz seed {seed_n} (FUZZ_SEED={seed_n} replays this run)");
    let mut rng = StdRng::seed_from_u64(seed_n);
    let extra = std::env::var("FUZZ_ARGS").unwrap_or_default();
    let mut args = vec!["--shards", "2", "--enable-debug-command", "yes"];
    args.extend(extra.split_whitespace());
    let mut s = match cluster {
        true => Server::slotd_cluster(&args),
        false => Server::slotd(&args),
    };
    let names = command_names(&s, cluster);
    let mut c = seed(s.port(), cluster).unwrap();
    let mut recent: Vec<String> = Vec::new();
    let (mut sent, mut errors) = (0, 0);
    while sent < total {
        if rng.gen_ratio(1, 400) {
            c = seed(s.port(), cluster).unwrap_or_else(|e| {
                panic!(
                    "after FLUSHALL, {e} (seed {seed_n}); last commands:\n{}",
                    recent.join("\n")
                )
            });
        }
        // A pipeline of 1 to 8 commands, sometimes inside MULTI.
        let n = rng.gen_range(1..=8);
        let mut batch = Vec::new();
        let multi = rng.gen_ratio(1, 10);
        if multi {
            batch.push(vec![b"MULTI".to_vec()]);
        }
        for _ in 0..n {
            let name = &names[rng.gen_range(0..names.len())];
            let mut argv = vec![name.as_bytes().to_vec()];
            for _ in 0..rng.gen_range(0..7) {
                argv.push(arg(&mut rng));
            }
            batch.push(argv);
        }
        if multi {
            batch.push(vec![b"EXEC".to_vec()]);
        }
        // The batch ends with an ECHO of a token: its replies are what
        // comes before the token's (UNSUBSCRIBE answers once per channel).
        let token = format!("end-of-batch-{sent}");
        batch.push(vec![b"ECHO".to_vec(), token.clone().into_bytes()]);
        let end = format!("${}\r\n{token}\r\n", token.len()).into_bytes();
        let mut bytes = Vec::new();
        for argv in &batch {
            let a: Vec<&[u8]> = argv.iter().map(|x| &x[..]).collect();
            bytes.extend_from_slice(&encode(&a));
            recent.push(format!(
                "{:?}",
                a.iter()
                    .map(|x| String::from_utf8_lossy(x))
                    .collect::<Vec<_>>()
            ));
        }
        if recent.len() > 40 {
            recent.drain(..recent.len() - 40);
        }
        sent += batch.len();
        if c.send(&bytes).is_err() {
            // The last batch ended with QUIT: a new connection.
            c = RawConn::connect(s.port()).unwrap();
            c.send(&bytes).unwrap();
        }
        loop {
            match c.read_reply() {
                Ok(r) if r == end => break,
                Ok(r) => errors += r.starts_with(b"-") as usize,
                // QUIT, RESET's protocol change or a refused request may
                // close the connection: open another one.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) && s.is_alive() =>
                {
                    c = RawConn::connect(s.port()).unwrap();
                    break;
                }
                Err(e) => {
                    assert!(
                        s.is_alive(),
                        "slotd died (seed {seed_n}); last commands:\n{}",
                        recent.join("\n")
                    );
                    panic!(
                        "no answer ({e}) (seed {seed_n}); last commands:\n{}",
                        recent.join("\n")
                    );
                }
            }
        }
    }
    assert!(s.is_alive(), "slotd died (seed {seed_n})");
    let mut fresh = RawConn::connect_timeout(s.port(), Duration::from_secs(5)).unwrap();
    assert_eq!(fresh.cmd(&[b"PING"]), b"+PONG\r\n");
    assert!(fresh.cmd(&[b"DBSIZE"]).starts_with(b":"));
    // What the run left loads back as it was: from a snapshot (DEBUG
    // RELOAD) and, with the AOF on, from the log (DEBUG LOADAOF). The TTLs
    // go first, so that nothing expires between the digests.
    persist_every_key(&mut fresh, cluster);
    let before = fresh.cmd(&[b"DEBUG", b"DIGEST"]);
    assert!(before.starts_with(b"+"), "{}", show(&before));
    let mut loads: Vec<&[&[u8]]> = vec![&[b"DEBUG", b"RELOAD"]];
    if extra.contains("--appendonly yes") {
        loads.push(&[b"DEBUG", b"LOADAOF"]);
    }
    for load in loads {
        let name = String::from_utf8_lossy(&load.join(&b' ')).into_owned();
        let r = fresh.cmd(load);
        assert_eq!(r, b"+OK\r\n", "{name}: {} (seed {seed_n})", show(&r));
        let after = fresh.cmd(&[b"DEBUG", b"DIGEST"]);
        assert_eq!(
            show(&after),
            show(&before),
            "{name} changed the data (seed {seed_n})"
        );
    }
    assert!(!s.log().contains("panicked"), "{}", s.log());
    eprintln!("{sent} commands ({errors} answered with an error), server fine");
}

/// Removes the TTL of every key of every database (only database 0 in
/// cluster mode).
fn persist_every_key(c: &mut RawConn, cluster: bool) {
    let dbs = if cluster { 1 } else { 16 };
    for db in 0..dbs {
        let db = db.to_string();
        assert_eq!(c.cmd_str(&["SELECT", &db]), b"+OK\r\n");
        let mut cursor = b"0".to_vec();
        loop {
            let raw = c.cmd(&[b"SCAN", &cursor, b"COUNT", b"1000"]);
            let Some((Resp::Agg(b'*', Some(parts)), _)) = Resp::parse(&raw) else {
                panic!("SCAN: {}", show(&raw));
            };
            let [Resp::Bulk(_, Some(next)), Resp::Agg(b'*', Some(keys))] = &parts[..] else {
                panic!("SCAN: {}", show(&raw));
            };
            for k in keys {
                if let Resp::Bulk(_, Some(k)) = k {
                    c.cmd(&[b"PERSIST", k]);
                }
            }
            if next == b"0" {
                break;
            }
            cursor = next.clone();
        }
    }
    assert_eq!(c.cmd_str(&["SELECT", "0"]), b"+OK\r\n");
}
