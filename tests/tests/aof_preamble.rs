//! `aof-use-rdb-preamble no`: an AOF rewrite writes its base as commands
//! (`<appendfilename>.<seq>.base.aof`), per key the commands Redis 7.0's
//! `rewriteAppendOnlyFileRio` writes. Checked against the real
//! redis-server: per-key command sequences compared with its own base, its
//! base loading into slotd and slotd's into it (DEBUG DIGEST equal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tests::{RawConn, Resp, Server};

fn temp_dir(name: &str) -> PathBuf {
    tests::fresh_dir("preamble", name)
}

use tests::text;

/// An absolute expiry far ahead, the same on both servers.
const AT: &str = "4102444800123";

/// Keys of every type, small and large encodings, with and without a TTL,
/// in the current database (`tag` makes the names differ per database).
fn fill(r: &mut RawConn, tag: &str) {
    let k = |name: &str| format!("{tag}:{name}");
    let mut run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = r.cmd_str(&a);
        assert!(!reply.starts_with(b"-"), "{a:?} -> {}", text(&reply));
    };
    let many = |n: usize, f: &dyn Fn(usize) -> Vec<String>| -> Vec<String> {
        (0..n).flat_map(f).collect()
    };
    let cmd = |parts: &[&str], rest: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        v.extend(rest);
        v
    };
    run(cmd(&["SET", &k("str"), "hello"], vec![]));
    run(cmd(&["SET", &k("int"), "12345"], vec![]));
    run(cmd(&["SET", &k("big"), &"x".repeat(20_000)], vec![]));
    run(cmd(&["SET", &k("str-ttl"), "v"], vec![]));
    run(cmd(&["RPUSH", &k("list"), "a", "1", "-7", "b"], vec![]));
    run(cmd(
        &["RPUSH", &k("list-big")],
        many(200, &|i| vec![format!("e{i}")]),
    ));
    run(cmd(
        &["HSET", &k("hash"), "f1", "v1", "f2", "2", "f0", "v0"],
        vec![],
    ));
    run(cmd(
        &["HSET", &k("hash-big")],
        many(150, &|i| vec![format!("f{i}"), format!("v{i}")]),
    ));
    run(cmd(&["SADD", &k("intset"), "5", "3", "-1", "100"], vec![]));
    run(cmd(
        &["SADD", &k("intset-big")],
        many(300, &|i| vec![format!("{}", i * 3)]),
    ));
    run(cmd(&["SADD", &k("set"), "x", "y", "z"], vec![]));
    run(cmd(
        &["SADD", &k("set-big")],
        many(140, &|i| vec![format!("m{i}")]),
    ));
    run(cmd(
        &[
            "ZADD",
            &k("zset"),
            "1.5",
            "a",
            "-3",
            "b",
            "0.1",
            "c",
            "inf",
            "d",
            "1.5",
            "a2",
        ],
        vec![],
    ));
    run(cmd(
        &["ZADD", &k("zset-big")],
        many(200, &|i| vec![format!("{}.25", i % 50), format!("m{i}")]),
    ));
    for key in ["str-ttl", "list", "hash-big", "intset", "set-big", "zset"] {
        run(cmd(&["PEXPIREAT", &k(key), AT], vec![]));
    }
}

/// Fills databases 0 and 3.
fn fill_dbs(r: &mut RawConn) {
    fill(r, "a");
    assert_eq!(r.cmd_str(&["SELECT", "3"]), b"+OK\r\n");
    fill(r, "b");
    assert_eq!(r.cmd_str(&["SELECT", "0"]), b"+OK\r\n");
}

fn info_field(r: &mut RawConn, field: &str) -> String {
    let info = text(&r.cmd_str(&["INFO", "persistence"]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_string()
}

/// BGREWRITEAOF, then waits for it to end successfully.
fn rewrite(r: &mut RawConn) {
    let before: u64 = info_field(r, "aof_rewrites").parse().unwrap();
    let reply = text(&r.cmd_str(&["BGREWRITEAOF"]));
    assert!(
        reply.starts_with("+Background append only file rewriting"),
        "{reply}"
    );
    let t = Instant::now();
    loop {
        let done: u64 = info_field(r, "aof_rewrites").parse().unwrap();
        if done > before && info_field(r, "aof_rewrite_in_progress") == "0" {
            assert_eq!(info_field(r, "aof_last_bgrewrite_status"), "ok");
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "rewrite never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn digest(r: &mut RawConn) -> String {
    let d = text(&r.cmd_str(&["DEBUG", "DIGEST"]));
    assert!(
        d.starts_with('+') && d != "+0000000000000000000000000000000000000000\r\n",
        "DEBUG DIGEST -> {d}"
    );
    d
}

/// The files of `dir`'s appendonlydir.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The base file the manifest of `dir`'s appendonlydir names.
fn base_of(dir: &Path) -> (String, Vec<u8>) {
    let aof = dir.join("appendonlydir");
    let manifest = std::fs::read_to_string(aof.join("appendonly.aof.manifest")).unwrap();
    let bases: Vec<&str> = manifest
        .lines()
        .filter(|l| l.contains(" type b"))
        .filter_map(|l| l.split(' ').nth(1))
        .collect();
    assert_eq!(bases.len(), 1, "{manifest}");
    let bytes = std::fs::read(aof.join(bases[0])).unwrap();
    (bases[0].to_string(), bytes)
}

type Cmd = Vec<Vec<u8>>;

/// A base of commands as (database, key) -> the commands naming the key,
/// in file order.
fn per_key(base: &[u8]) -> BTreeMap<(usize, Vec<u8>), Vec<Cmd>> {
    let mut out: BTreeMap<(usize, Vec<u8>), Vec<Cmd>> = BTreeMap::new();
    let (mut pos, mut db) = (0, 0);
    while pos < base.len() {
        let (resp, used) = Resp::parse(&base[pos..]).expect("a RESP command");
        pos += used;
        let Resp::Agg(b'*', Some(items)) = resp else {
            panic!("not a command at offset {pos}");
        };
        let argv: Cmd = items
            .into_iter()
            .map(|i| match i {
                Resp::Bulk(b'$', Some(b)) => b,
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        if argv[0] == b"SELECT" {
            db = std::str::from_utf8(&argv[1]).unwrap().parse().unwrap();
            continue;
        }
        out.entry((db, argv[1].clone())).or_default().push(argv);
    }
    out
}

/// Commands for a value stored in no particular order (a hash table):
/// command names and sizes in order, items sorted.
fn unordered(cmds: &[Cmd]) -> (Vec<(Vec<u8>, usize)>, Vec<Cmd>) {
    let shape = cmds.iter().map(|c| (c[0].clone(), c.len())).collect();
    let mut items: Vec<Cmd> = Vec::new();
    for c in cmds {
        let width = if c[0] == b"HMSET" || c[0] == b"ZADD" {
            2
        } else {
            1
        };
        items.extend(c[2..].chunks(width).map(|p| p.to_vec()));
    }
    items.sort();
    (shape, items)
}

fn start_slotd(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--enable-debug-command",
        "yes",
        "--appendonly",
        "yes",
        "--dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::slotd(&args)
}

/// Copies `from`'s appendonlydir into `to`.
fn copy_aof_dir(from: &Path, to: &Path) {
    let (src, dst) = (from.join("appendonlydir"), to.join("appendonlydir"));
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// A rewrite with `aof-use-rdb-preamble no` writes `.base.aof`, commands
/// from its first byte, and a restart loads the same dataset, for one
/// shard and two.
#[test]
fn bgrewriteaof_writes_a_command_base_that_restarts_to_the_same_data() {
    for shards in ["1", "2"] {
        let dir = temp_dir(&format!("restart{shards}"));
        let opts = ["--aof-use-rdb-preamble", "no", "--shards", shards];
        let mut s = start_slotd(&dir, &opts);
        let mut r = s.raw();
        fill_dbs(&mut r);
        rewrite(&mut r);
        let want = digest(&mut r);
        let (name, base) = base_of(&dir);
        assert_eq!(name, "appendonly.aof.2.base.aof", "shards {shards}");
        assert!(
            base.starts_with(b"*2\r\n$6\r\nSELECT\r\n"),
            "shards {shards}"
        );
        let manifest =
            std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
        assert!(
            manifest.starts_with("file appendonly.aof.2.base.aof seq 2 type b\n"),
            "{manifest}"
        );
        assert_eq!(per_key(&base).len(), 28, "every key in the base");
        drop(r);
        s.stop();
        // The incr files are empty: what comes back came from the base.
        for f in files(&dir).iter().filter(|f| f.ends_with(".incr.aof")) {
            let len = std::fs::metadata(dir.join("appendonlydir").join(f))
                .unwrap()
                .len();
            assert_eq!(len, 0, "{f}");
        }
        let s = start_slotd(&dir, &opts);
        let mut r = s.raw();
        assert_eq!(digest(&mut r), want, "shards {shards}");
        assert_eq!(r.cmd_str(&["DBSIZE"]), b":14\r\n");
        assert_eq!(
            text(&r.cmd_str(&["PEXPIRETIME", "a:zset"])),
            format!(":{AT}\r\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The same dataset written to redis-server 7.0 and to slotd (one shard
/// and two) with `aof-use-rdb-preamble no`: both bases hold the same
/// commands per key (byte for byte where Redis's order is defined),
/// redis-server's appendonlydir loads into slotd and slotd's base into
/// redis-server.
#[test]
fn a_command_base_loads_into_slotd_and_redis_both_ways() {
    let rdir = temp_dir("redis");
    let mut redis = Server::redis(&[
        "--enable-debug-command",
        "yes",
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
        "--dir",
        rdir.to_str().unwrap(),
    ]);
    let mut rr = redis.raw();
    fill_dbs(&mut rr);
    rewrite(&mut rr);
    let want = digest(&mut rr);
    let (rname, rbase) = base_of(&rdir);
    assert!(rname.ends_with(".base.aof"), "{rname}");
    let rkeys = per_key(&rbase);
    assert_eq!(rkeys.len(), 28);
    // Redis's encodings decide which keys have a defined order.
    let mut encodings = BTreeMap::new();
    for (db, key) in rkeys.keys() {
        rr.cmd_str(&["SELECT", &db.to_string()]);
        let enc = text(&rr.cmd(&[&b"OBJECT"[..], &b"ENCODING"[..], &key[..]]));
        encodings.insert((*db, key.clone()), enc);
    }
    drop(rr);
    redis.stop();

    for shards in ["1", "2"] {
        let sdir = temp_dir(&format!("slotd{shards}"));
        let opts = ["--aof-use-rdb-preamble", "no", "--shards", shards];
        let mut slotd = start_slotd(&sdir, &opts);
        let mut sr = slotd.raw();
        fill_dbs(&mut sr);
        rewrite(&mut sr);
        assert_eq!(digest(&mut sr), want, "the same dataset on both servers");
        let (sname, sbase) = base_of(&sdir);
        assert!(sname.ends_with(".base.aof"), "{sname}");
        let skeys = per_key(&sbase);
        assert_eq!(
            rkeys.keys().collect::<Vec<_>>(),
            skeys.keys().collect::<Vec<_>>()
        );
        let mut exact = 0;
        for (dk, rcmds) in &rkeys {
            let scmds = &skeys[dk];
            let enc = &encodings[dk];
            let what = format!("db {} key {}", dk.0, String::from_utf8_lossy(&dk.1));
            if enc.contains("hashtable") || enc.contains("skiplist") {
                assert_eq!(unordered(scmds), unordered(rcmds), "{what}");
            } else {
                assert_eq!(scmds, rcmds, "{what} ({enc})");
                exact += 1;
            }
        }
        assert!(exact >= 20, "only {exact} keys compared byte for byte");
        drop(sr);
        slotd.stop();

        // redis-server's directory into slotd.
        let to_slotd = temp_dir(&format!("to-slotd{shards}"));
        copy_aof_dir(&rdir, &to_slotd);
        let s = start_slotd(&to_slotd, &opts);
        let mut r = s.raw();
        assert_eq!(digest(&mut r), want, "redis-server's base.aof into slotd");
        // Loaded from another layout: slotd starts a generation of its
        // own, its base written as commands too.
        assert!(base_of(&to_slotd).0.ends_with(".base.aof"));
        drop(r);
        drop(s);

        // slotd's directory into redis-server. With several cores the
        // manifest lists one incr file per core under one sequence number,
        // which redis-server refuses ("non-monotonic sequence number"):
        // there the base goes over with a manifest naming it alone (the
        // incr files are empty, nothing was written after the rewrite).
        let to_redis = temp_dir(&format!("to-redis{shards}"));
        if shards == "1" {
            copy_aof_dir(&sdir, &to_redis);
        } else {
            let aof = to_redis.join("appendonlydir");
            std::fs::create_dir_all(&aof).unwrap();
            std::fs::write(aof.join(&sname), &sbase).unwrap();
            std::fs::write(
                aof.join("appendonly.aof.manifest"),
                format!("file {sname} seq 2 type b\n"),
            )
            .unwrap();
        }
        let redis = Server::redis(&[
            "--enable-debug-command",
            "yes",
            "--appendonly",
            "yes",
            "--dir",
            to_redis.to_str().unwrap(),
        ]);
        let mut r = redis.raw();
        assert_eq!(digest(&mut r), want, "slotd's base.aof into redis-server");
        r.cmd_str(&["SELECT", "3"]);
        assert_eq!(
            text(&r.cmd_str(&["PEXPIRETIME", "b:set-big"])),
            format!(":{AT}\r\n")
        );
        drop(r);
        drop(redis);
        for d in [sdir, to_slotd, to_redis] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let _ = std::fs::remove_dir_all(rdir);
}

/// `CONFIG SET aof-use-rdb-preamble` switches the next rewrite's format
/// both ways (CONFIG GET answers it), and `CONFIG SET appendonly yes`
/// writes its first base as commands too.
#[test]
fn config_set_aof_use_rdb_preamble_switches_the_base_format() {
    for shards in ["1", "2"] {
        let dir = temp_dir(&format!("switch{shards}"));
        let s = start_slotd(&dir, &["--shards", shards]);
        let mut r = s.raw();
        fill_dbs(&mut r);
        let want = digest(&mut r);
        assert_eq!(
            s.cli(&["config", "get", "aof-use-rdb-preamble"]),
            "aof-use-rdb-preamble\nyes\n"
        );
        rewrite(&mut r);
        assert!(base_of(&dir).1.starts_with(b"REDIS"));
        assert_eq!(
            r.cmd_str(&["CONFIG", "SET", "aof-use-rdb-preamble", "no"]),
            b"+OK\r\n"
        );
        assert_eq!(
            s.cli(&["config", "get", "aof-use-rdb-preamble"]),
            "aof-use-rdb-preamble\nno\n"
        );
        rewrite(&mut r);
        let (name, base) = base_of(&dir);
        assert_eq!(name, "appendonly.aof.3.base.aof");
        assert!(base.starts_with(b"*2\r\n"));
        assert!(!files(&dir).iter().any(|f| f.ends_with(".rdb")));
        // `CONFIG SET appendonly yes` rewrites in the form in force.
        r.cmd_str(&["CONFIG", "SET", "appendonly", "no"]);
        assert_eq!(
            r.cmd_str(&["CONFIG", "SET", "appendonly", "yes"]),
            b"+OK\r\n"
        );
        let t = Instant::now();
        while info_field(&mut r, "aof_rewrite_in_progress") != "0"
            || info_field(&mut r, "aof_enabled") != "1"
        {
            assert!(t.elapsed() < Duration::from_secs(20), "no rewrite");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(base_of(&dir).0, "appendonly.aof.4.base.aof");
        // Back to RDB.
        r.cmd_str(&["CONFIG", "SET", "aof-use-rdb-preamble", "yes"]);
        rewrite(&mut r);
        assert_eq!(base_of(&dir).0, "appendonly.aof.5.base.rdb");
        r.cmd_str(&["CONFIG", "SET", "aof-use-rdb-preamble", "no"]);
        rewrite(&mut r);
        assert_eq!(base_of(&dir).0, "appendonly.aof.6.base.aof");
        drop(r);
        drop(s);
        let s = start_slotd(&dir, &["--shards", shards]);
        let mut r = s.raw();
        assert_eq!(digest(&mut r), want, "shards {shards}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
