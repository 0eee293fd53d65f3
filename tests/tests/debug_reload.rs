//! DEBUG DIGEST / DIGEST-VALUE against the stock redis-server 7.0 (same
//! commands, same digests, with 1 and 2 shards), DEBUG RELOAD and DEBUG
//! LOADAOF keep every key, type and TTL, and all of them are refused
//! without `enable-debug-command`.

use std::path::PathBuf;
use std::time::Duration;
use tests::{RawConn, Server};

fn temp_dir(name: &str) -> PathBuf {
    tests::fresh_dir("debug", name)
}

use tests::text;

fn ok(r: &mut RawConn, args: &[&str]) {
    let reply = text(&r.cmd_str(args));
    assert!(!reply.starts_with('-'), "{args:?} -> {reply}");
}

/// Every value type in its small and large encodings, integers, special
/// scores, TTLs, and keys in databases 0, 1 and 3.
fn fill(r: &mut RawConn) {
    for i in 0..200 {
        let k = format!("k{i}");
        ok(
            r,
            &["SET", &k, &format!("value-{i}-{}", "x".repeat(i % 40))],
        );
        ok(r, &["SET", &format!("n{i}"), &(i * 7 - 300).to_string()]);
        ok(r, &["RPUSH", &format!("l{}", i % 5), &k, "1", "-5"]);
        ok(r, &["RPUSH", "lbig", &"e".repeat(i)]);
        ok(r, &["HSET", &format!("h{}", i % 5), &k, &i.to_string()]);
        ok(r, &["HSET", "hbig", &k, &"v".repeat(i)]);
        ok(r, &["SADD", &format!("s{}", i % 4), &i.to_string()]);
        ok(r, &["SADD", "sbig", &k]);
        ok(r, &["SADD", "sstr", &format!("m{}", i % 30)]);
        ok(r, &["ZADD", &format!("z{}", i % 3), &format!("{i}.25"), &k]);
        ok(r, &["ZADD", "zbig", &format!("{}", i as f64 / 7.0), &k]);
    }
    ok(
        r,
        &[
            "ZADD", "zspecial", "inf", "a", "-inf", "b", "0.1", "c", "-0", "d",
        ],
    );
    ok(
        r,
        &["ZADD", "zspecial", "1e300", "e", "123456789012345678", "f"],
    );
    ok(r, &["SET", "empty", ""]);
    ok(r, &["SET", "ttl", "v", "PX", "100000000"]);
    ok(r, &["HSET", "httl", "f", "v"]);
    ok(r, &["EXPIRE", "httl", "500000"]);
    ok(r, &["SET", "persisted", "v", "EX", "1000"]);
    ok(r, &["PERSIST", "persisted"]);
    ok(r, &["SELECT", "1"]);
    ok(r, &["SET", "k1", "in-db-1"]);
    ok(r, &["LPUSH", "l1", "c", "b", "a"]);
    ok(r, &["SELECT", "3"]);
    ok(r, &["SADD", "s", "1", "2", "3"]);
    ok(r, &["SET", "t", "x", "EX", "99999"]);
    ok(r, &["SELECT", "0"]);
}

fn digest(r: &mut RawConn) -> String {
    let d = text(&r.cmd_str(&["DEBUG", "DIGEST"]));
    assert!(d.starts_with('+') && d.len() == 43, "DEBUG DIGEST -> {d}");
    d
}

const VALUE_KEYS: &[&str] = &[
    "k5",
    "n3",
    "l0",
    "lbig",
    "h1",
    "hbig",
    "s0",
    "sbig",
    "sstr",
    "z2",
    "zbig",
    "zspecial",
    "empty",
    "ttl",
    "httl",
    "persisted",
    "missing",
];

fn digest_values(r: &mut RawConn) -> String {
    let mut args = vec!["DEBUG", "DIGEST-VALUE"];
    args.extend_from_slice(VALUE_KEYS);
    text(&r.cmd_str(&args))
}

fn slotd(shards: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--shards", shards, "--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    Server::slotd(&args)
}

#[test]
fn digest_matches_redis_server() {
    let redis = Server::redis(&["--enable-debug-command", "yes"]);
    let mut rr = redis.raw();
    let zeros = format!("+{}\r\n", "0".repeat(40));
    assert_eq!(digest(&mut rr), zeros);
    fill(&mut rr);
    let want = digest(&mut rr);
    let want_values = digest_values(&mut rr);
    assert_ne!(want, zeros);
    for shards in ["1", "2"] {
        let s = slotd(shards, &[]);
        let mut r = s.raw();
        assert_eq!(digest(&mut r), zeros, "empty, {shards} shards");
        assert_eq!(
            text(&r.cmd_str(&["DEBUG", "DIGEST-VALUE"])),
            text(&rr.cmd_str(&["DEBUG", "DIGEST-VALUE"]))
        );
        fill(&mut r);
        assert_eq!(digest(&mut r), want, "{shards} shards");
        assert_eq!(digest_values(&mut r), want_values, "{shards} shards");
        // The connection's database counts for DIGEST-VALUE.
        for db in ["1", "3"] {
            ok(&mut r, &["SELECT", db]);
            ok(&mut rr, &["SELECT", db]);
            let args = ["DEBUG", "DIGEST-VALUE", "k1", "l1", "s", "t"];
            assert_eq!(text(&r.cmd_str(&args)), text(&rr.cmd_str(&args)));
        }
        ok(&mut rr, &["SELECT", "0"]);
        // A change of order in a list, of a TTL, or of a database changes it.
        ok(&mut r, &["SELECT", "0"]);
        ok(&mut r, &["LMOVE", "l0", "l0", "LEFT", "RIGHT"]);
        assert_ne!(digest(&mut r), want);
        ok(&mut r, &["LMOVE", "l0", "l0", "RIGHT", "LEFT"]);
        assert_eq!(digest(&mut r), want);
        ok(&mut r, &["PERSIST", "ttl"]);
        assert_ne!(digest(&mut r), want);
        ok(&mut r, &["PEXPIRE", "ttl", "100000000"]);
        assert_eq!(digest(&mut r), want);
        ok(&mut r, &["MOVE", "k5", "2"]);
        assert_ne!(digest(&mut r), want);
        assert_eq!(
            text(&r.cmd_str(&["DEBUG", "DIGEST", "extra"])),
            text(&rr.cmd_str(&["DEBUG", "DIGEST", "extra"]))
        );
    }
}

/// Every key with its type and TTL (rounded to 100 s), sorted.
fn keys_and_ttls(r: &mut RawConn) -> Vec<String> {
    let mut out = Vec::new();
    for db in ["0", "1", "3"] {
        ok(r, &["SELECT", db]);
        let keys = text(&r.cmd_str(&["KEYS", "*"]));
        for k in keys
            .split("\r\n")
            .filter(|l| !l.starts_with(['*', '$']) && !l.is_empty())
        {
            let ty = text(&r.cmd_str(&["TYPE", k]));
            let ttl = text(&r.cmd_str(&["TTL", k]));
            let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap_or(-9);
            let ttl = if ttl > 0 { (ttl + 50) / 100 } else { ttl };
            out.push(format!("{db} {k} {} {ttl}", ty.trim()));
        }
    }
    ok(r, &["SELECT", "0"]);
    out.sort();
    out
}

#[test]
fn reload_keeps_every_key_type_ttl_and_the_digest() {
    let redis = Server::redis(&["--enable-debug-command", "yes"]);
    let mut rr = redis.raw();
    fill(&mut rr);
    let want = digest(&mut rr);
    assert_eq!(text(&rr.cmd_str(&["DEBUG", "RELOAD"])), "+OK\r\n");
    assert_eq!(digest(&mut rr), want);
    for shards in ["1", "2"] {
        let dir = temp_dir(&format!("reload-{shards}"));
        let s = slotd(shards, &["--dir", dir.to_str().unwrap()]);
        let mut r = s.raw();
        fill(&mut r);
        assert_eq!(digest(&mut r), want);
        let before = keys_and_ttls(&mut r);
        assert!(before.len() > 40);
        assert_eq!(text(&r.cmd_str(&["DEBUG", "RELOAD"])), "+OK\r\n");
        assert!(dir.join("dump.rdb").exists());
        assert_eq!(digest(&mut r), want, "after DEBUG RELOAD, {shards} shards");
        assert_eq!(keys_and_ttls(&mut r), before);
        assert!(s.log().contains("DB reloaded by DEBUG RELOAD"));

        // NOSAVE loads the file as it is: a write since is gone.
        ok(&mut r, &["SET", "later", "1"]);
        assert_ne!(digest(&mut r), want);
        assert_eq!(text(&r.cmd_str(&["DEBUG", "RELOAD", "NOSAVE"])), "+OK\r\n");
        assert_eq!(digest(&mut r), want);
        // NOFLUSH keeps what memory holds and adds the file's keys back.
        ok(&mut r, &["DEL", "k1", "hbig"]);
        ok(&mut r, &["SET", "extra", "1"]);
        assert_eq!(
            text(&r.cmd_str(&["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"])),
            "+OK\r\n"
        );
        assert_eq!(
            text(&r.cmd_str(&["EXISTS", "k1", "hbig", "extra"])),
            ":3\r\n"
        );
        ok(&mut r, &["DEL", "extra"]);
        assert_eq!(digest(&mut r), want);

        for args in [
            &["DEBUG", "RELOAD", "BOGUS"][..],
            &["DEBUG", "RELOAD", "NOSAVE", "x"],
        ] {
            assert_eq!(text(&r.cmd_str(args)), text(&rr.cmd_str(args)));
        }
        // No file to load: Redis's error.
        std::fs::remove_file(dir.join("dump.rdb")).unwrap();
        assert_eq!(
            text(&r.cmd_str(&["DEBUG", "RELOAD", "NOSAVE"])),
            "-ERR Error trying to load the RDB dump\r\n"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Bytes in the append-only directory's files.
fn aof_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// DEBUG LOADAOF loads what the AOF holds: after DEBUG RELOAD NOSAVE put
/// an older dump.rdb in memory (not logged), LOADAOF brings the newer
/// value back, on slotd as on redis-server.
#[test]
fn loadaof_gives_back_what_the_aof_holds() {
    let rdir = temp_dir("loadaof-redis");
    let redis = Server::redis(&[
        "--enable-debug-command",
        "yes",
        "--appendonly",
        "yes",
        "--dir",
        rdir.to_str().unwrap(),
    ]);
    let mut rr = redis.raw();
    let script = |r: &mut RawConn| -> Vec<String> {
        let mut seen = Vec::new();
        fill(r);
        ok(r, &["SET", "k1", "old"]);
        ok(r, &["SAVE"]);
        ok(r, &["SET", "k1", "new"]);
        ok(r, &["HSET", "h0", "added", "after-save"]);
        seen.push(digest(r));
        assert_eq!(text(&r.cmd_str(&["DEBUG", "RELOAD", "NOSAVE"])), "+OK\r\n");
        seen.push(text(&r.cmd_str(&["GET", "k1"])));
        seen.push(digest(r));
        assert_eq!(text(&r.cmd_str(&["DEBUG", "LOADAOF"])), "+OK\r\n");
        seen.push(text(&r.cmd_str(&["GET", "k1"])));
        seen.push(digest(r));
        seen
    };
    let want = script(&mut rr);
    assert_eq!(want[1], "$3\r\nold\r\n");
    assert_eq!(want[3], "$3\r\nnew\r\n");
    assert_eq!(want[4], want[0]);
    for shards in ["1", "2"] {
        let dir = temp_dir(&format!("loadaof-{shards}"));
        let s = slotd(
            shards,
            &[
                "--dir",
                dir.to_str().unwrap(),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
        );
        let mut r = s.raw();
        assert_eq!(script(&mut r), want, "{shards} shards");
        assert!(s.log().contains("Append Only File loaded by DEBUG LOADAOF"));
        // The reload itself is not logged: the files do not grow.
        std::thread::sleep(Duration::from_millis(300));
        let size = aof_bytes(&dir);
        assert_eq!(text(&r.cmd_str(&["DEBUG", "LOADAOF"])), "+OK\r\n");
        assert_eq!(text(&r.cmd_str(&["DEBUG", "RELOAD", "NOSAVE"])), "+OK\r\n");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(aof_bytes(&dir), size);
        // Writes go on being logged after it, and a restart gives the same.
        ok(&mut r, &["SET", "after", "1"]);
        assert_eq!(text(&r.cmd_str(&["DEBUG", "LOADAOF"])), "+OK\r\n");
        assert_eq!(text(&r.cmd_str(&["GET", "after"])), "$1\r\n1\r\n");
        let d = digest(&mut r);
        drop(r);
        drop(s);
        let s = slotd(
            shards,
            &["--dir", dir.to_str().unwrap(), "--appendonly", "yes"],
        );
        assert_eq!(digest(&mut s.raw()), d);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&rdir);
}

/// With `appendonly no` redis-server 7.0 exits on DEBUG LOADAOF; slotd
/// answers an error and keeps its data.
#[test]
fn loadaof_without_aof_is_an_error() {
    let s = slotd("2", &[]);
    let mut r = s.raw();
    ok(&mut r, &["SET", "a", "1"]);
    assert_eq!(
        text(&r.cmd_str(&["DEBUG", "LOADAOF"])),
        "-ERR Error trying to load the AOF files, check server logs.\r\n"
    );
    assert_eq!(text(&r.cmd_str(&["GET", "a"])), "$1\r\n1\r\n");
}

#[test]
fn debug_is_gated_by_enable_debug_command() {
    let redis = Server::redis(&[]);
    let s = Server::slotd(&["--shards", "2"]);
    let (mut r, mut rr) = (s.raw(), redis.raw());
    ok(&mut r, &["SET", "a", "1"]);
    for args in [
        &["DEBUG", "DIGEST"][..],
        &["DEBUG", "DIGEST-VALUE", "a"],
        &["DEBUG", "RELOAD"],
        &["DEBUG", "LOADAOF"],
    ] {
        let got = text(&r.cmd_str(args));
        assert!(got.starts_with("-ERR DEBUG command not allowed"), "{got}");
        assert_eq!(got, text(&rr.cmd_str(args)));
    }
    assert_eq!(text(&r.cmd_str(&["GET", "a"])), "$1\r\n1\r\n");
}

/// DEBUG POPULATE as Redis 7.0 does it, on 2 cores against redis-server:
/// `key:<j>` = `value:<j>`, a prefix, a size that cuts or pads with zero
/// bytes, existing keys left alone, the errors; the datasets' digests
/// match.
#[test]
fn debug_populate_matches_redis_server() {
    let s = slotd("2", &[]);
    let r = Server::redis(&["--enable-debug-command", "yes"]);
    let script: &[&[&str]] = &[
        &["SET", "key:3", "mine"],
        &["DEBUG", "POPULATE", "1000"],
        &["DBSIZE"],
        &["GET", "key:3"],
        &["GET", "key:999"],
        &["DEBUG", "POPULATE", "50", "p", "3"],
        &["GET", "p:7"],
        &["DEBUG", "POPULATE", "20", "z", "12"],
        &["GET", "z:19"],
        &["STRLEN", "z:0"],
        &["SELECT", "2"],
        &["DEBUG", "POPULATE", "10", "other"],
        &["DBSIZE"],
        &["SELECT", "0"],
        &["DBSIZE"],
        &["DEBUG", "POPULATE", "-1"],
        &["DEBUG", "POPULATE", "x"],
        &["DEBUG", "POPULATE", "5", "q", "-2"],
        &["DEBUG", "POPULATE", "0"],
        &["DEBUG", "POPULATE"],
    ];
    let (mut a, mut b) = (s.raw(), r.raw());
    for cmd in script {
        assert_eq!(text(&a.cmd_str(cmd)), text(&b.cmd_str(cmd)), "{cmd:?}");
    }
    assert_eq!(digest(&mut a), digest(&mut b));
}
