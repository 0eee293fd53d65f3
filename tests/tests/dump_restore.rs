//! DUMP and RESTORE across slotd and redis-server 7.0, both ways, for
//! every value type in every encoding redis-server writes, with TTLs.
use tests::{show, RawConn, Server};

/// Commands building one key each (`k:<name>`), small and large forms.
fn builders() -> Vec<(String, Vec<Vec<String>>)> {
    let mut out: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let mut add = |name: &str, cmds: Vec<Vec<String>>| out.push((format!("k:{name}"), cmds));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    add("int", vec![s(&["SET", "k:int", "-123456"])]);
    add("short", vec![s(&["SET", "k:short", "hello"])]);
    add("lzf", vec![s(&["SET", "k:lzf", &"abcd".repeat(500)])]);
    add(
        "big",
        vec![s(&["SET", "k:big", &"0123456789".repeat(10_000)])],
    );
    add("hash", vec![s(&["HSET", "k:hash", "a", "1", "b", "two"])]);
    add(
        "zset",
        vec![s(&["ZADD", "k:zset", "1", "a", "2.5", "b", "-inf", "c"])],
    );
    add(
        "intset",
        vec![s(&["SADD", "k:intset", "1", "-5", "70000", "9000000000"])],
    );
    add("set", vec![s(&["SADD", "k:set", "x", "y", "z"])]);
    add(
        "list",
        vec![s(&["RPUSH", "k:list", "a", "1", "300", "-5", "x"])],
    );
    let mut big = |name: &str, cmd: &str, per: &dyn Fn(usize) -> Vec<String>| {
        let mut argv = vec![cmd.to_string(), format!("k:{name}")];
        for i in 0..1000 {
            argv.extend(per(i));
        }
        out.push((format!("k:{name}"), vec![argv]));
    };
    big("bighash", "HSET", &|i| {
        vec![format!("field{i}"), format!("value{i}")]
    });
    big("bigzset", "ZADD", &|i| {
        vec![format!("{}", i as f64 / 7.0), format!("m{i}")]
    });
    big("bigset", "SADD", &|i| vec![format!("member{i}")]);
    big("bigintset", "SADD", &|i| vec![format!("{}", i * 37)]);
    big("biglist", "RPUSH", &|i| {
        vec![format!("item{i}"), "x".repeat(i % 50)]
    });
    out
}

/// A key's content as a sortable dump of replies, to compare servers.
fn content(c: &mut RawConn, key: &str) -> String {
    let ty = match tests::Resp::parse(&c.cmd_str(&["TYPE", key])).unwrap().0 {
        tests::Resp::Line(_, t) => String::from_utf8(t).unwrap(),
        other => panic!("TYPE: {other:?}"),
    };
    let reads: Vec<Vec<&str>> = match ty.as_str() {
        "string" => vec![vec!["GET", key]],
        "hash" => vec![vec!["HLEN", key], vec!["HGETALL", key]],
        "zset" => vec![vec!["ZRANGE", key, "0", "-1", "WITHSCORES"]],
        "set" => vec![vec!["SCARD", key], vec!["SMEMBERS", key]],
        "list" => vec![vec!["LRANGE", key, "0", "-1"]],
        other => panic!("type {other}"),
    };
    let mut out = ty.clone();
    for r in reads {
        let reply = tests::Resp::parse(&c.cmd_str(&r)).unwrap().0.sorted();
        out.push_str(&format!(" {reply:?}"));
    }
    out
}

fn bulk(reply: &[u8]) -> Vec<u8> {
    match tests::Resp::parse(reply).unwrap().0 {
        tests::Resp::Bulk(_, Some(b)) => b,
        other => panic!("not a bulk: {other:?}"),
    }
}

fn int(reply: &[u8]) -> i64 {
    match tests::Resp::parse(reply).unwrap().0 {
        tests::Resp::Line(b':', n) => String::from_utf8(n).unwrap().parse().unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

fn copy_all(from: &mut RawConn, to: &mut RawConn, keys: &[String]) {
    for k in keys {
        let p = bulk(&from.cmd_str(&["DUMP", k]));
        let ttl = int(&from.cmd_str(&["PTTL", k])).max(0).to_string();
        let r = to.cmd(&[b"RESTORE", k.as_bytes(), ttl.as_bytes(), &p, b"REPLACE"]);
        assert_eq!(r, b"+OK\r\n", "RESTORE {k}: {}", show(&r));
    }
}

#[test]
fn payloads_cross_both_ways_with_every_encoding() {
    let redis = Server::redis(&[]);
    let slotd = Server::slotd(&["--shards", "2"]);
    let (mut r, mut s) = (redis.raw(), slotd.raw());
    let keys: Vec<String> = builders()
        .into_iter()
        .map(|(k, cmds)| {
            for c in cmds {
                let argv: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
                r.cmd_str(&argv);
            }
            k
        })
        .collect();
    r.cmd_str(&["PEXPIRE", "k:hash", "100000"]);
    r.cmd_str(&["PEXPIRE", "k:biglist", "200000"]);
    // redis-server → slotd.
    copy_all(&mut r, &mut s, &keys);
    for k in &keys {
        assert_eq!(content(&mut s, k), content(&mut r, k), "{k} in slotd");
    }
    let ttl = int(&s.cmd_str(&["PTTL", "k:hash"]));
    assert!((90_000..=100_000).contains(&ttl), "TTL carried: {ttl}");
    // slotd → redis-server, into fresh keys.
    r.cmd_str(&["FLUSHALL"]);
    copy_all(&mut s, &mut r, &keys);
    for k in &keys {
        assert_eq!(
            content(&mut r, k),
            content(&mut s, k),
            "{k} in redis-server"
        );
    }
    // The same encodings as redis-server gives them when built there.
    for k in &keys {
        assert_eq!(
            show(&s.cmd_str(&["OBJECT", "ENCODING", k])),
            show(&r.cmd_str(&["OBJECT", "ENCODING", k])),
            "{k}"
        );
    }
}

#[test]
fn errors_match_redis_server() {
    let redis = Server::redis(&[]);
    let slotd = Server::slotd(&[]);
    let (mut r, mut s) = (redis.raw(), slotd.raw());
    r.cmd_str(&["SET", "a", "1"]);
    s.cmd_str(&["SET", "a", "1"]);
    let p = bulk(&r.cmd_str(&["DUMP", "a"]));
    let mut damaged = p.clone();
    damaged[1] ^= 1;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"a", b"0", &p],
        vec![b"RESTORE", b"b", b"-5", &p],
        vec![b"RESTORE", b"b", b"x", &p],
        vec![b"RESTORE", b"b", b"0", &damaged],
        vec![b"RESTORE", b"b", b"0", b"short"],
        vec![b"RESTORE", b"b", b"0", &p, b"NOPE"],
        vec![b"RESTORE", b"b", b"0", &p, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"b", b"0", &p, b"FREQ", b"300"],
        vec![b"RESTORE", b"b", b"0", &p, b"FREQ", b"3"],
        vec![b"RESTORE", b"b", b"0", &p, b"IDLETIME", b"5", b"REPLACE"],
        vec![b"GET", b"b"],
        vec![b"RESTORE", b"c", b"1", &p, b"ABSTTL"],
        vec![b"EXISTS", b"c"],
        vec![b"DUMP", b"nosuch"],
        vec![b"RESTORE", b"b"],
        vec![b"DUMP"],
    ];
    for c in cases {
        assert_eq!(
            show(&s.cmd(&c)),
            show(&r.cmd(&c)),
            "{}",
            tests::show_args(&c)
        );
    }
}
