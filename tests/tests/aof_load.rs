//! `slotd check-aof` and `slotd check-rdb` against redis-check-aof and
//! redis-check-rdb on directories the stock redis-server 7.0 writes
//! (valid, torn tail, garbage in the middle, `--fix`), and on a slotd
//! two-core manifest whose `#D` dependencies force a cut.

use std::path::{Path, PathBuf};
use tests::{slotd_bin, Server};

fn temp_dir(name: &str) -> PathBuf {
    tests::fresh_dir("aofload", name)
}

use tests::run_tool as run;

fn slotd(args: &[&str], input: &str) -> (i32, String) {
    run(&slotd_bin(), args, input)
}

fn redis(tool: &str, args: &[&str], input: &str) -> (i32, String) {
    run(Path::new(tool), args, input)
}

/// A redis-server-written appendonlydir: an RDB base (BGREWRITEAOF in the
/// middle) and an incr file with every type, TTLs, MULTI/EXEC, SELECT.
fn redis_dir(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let d = dir.to_str().unwrap();
    let mut s = Server::redis(&["--appendonly", "yes", "--dir", d]);
    let mut r = s.raw();
    for i in 0..50 {
        let k = format!("k{i}");
        r.cmd_str(&["SET", &k, &i.to_string()]);
        r.cmd_str(&["RPUSH", "list", &k]);
        r.cmd_str(&["HSET", "hash", &k, "v"]);
        r.cmd_str(&["SADD", "set", &k]);
        r.cmd_str(&["ZADD", "zset", &i.to_string(), &k]);
    }
    r.cmd_str(&["SET", "ttl", "v", "EX", "100000"]);
    r.cmd_str(&["BGREWRITEAOF"]);
    let t = std::time::Instant::now();
    while !String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"]))
        .contains("aof_rewrite_in_progress:0")
        || t.elapsed().as_millis() < 300
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    r.cmd_str(&["MULTI"]);
    r.cmd_str(&["INCR", "k1"]);
    r.cmd_str(&["LPUSH", "list", "first"]);
    r.cmd_str(&["EXEC"]);
    r.cmd_str(&["SELECT", "3"]);
    r.cmd_str(&["SET", "in3", "x", "PX", "900000"]);
    r.cmd_str(&["SELECT", "0"]);
    r.cmd_str(&["ZINCRBY", "zset", "5", "k2"]);
    r.cmd_str(&["RPUSH", "last", "abc"]);
    s.stop();
    dir
}

fn incr_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incr file")
}

fn manifest(dir: &Path) -> String {
    dir.join("appendonlydir/appendonly.aof.manifest")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn redis_written_dir_checks_like_redis_check_aof_and_loads() {
    let dir = redis_dir("valid");
    let m = manifest(&dir);
    let (rc, theirs) = redis("redis-check-aof", &[&m], "");
    assert_eq!(rc, 0, "{theirs}");
    let (rc, ours) = slotd(&["check-aof", &m], "");
    assert_eq!(rc, 0, "{ours}");
    assert!(
        ours.starts_with(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert!(theirs.contains("All AOF files and manifest are valid"));
    // 50 strings, list, hash, set, zset, ttl, in3 (db 3), last.
    assert!(ours.contains("AOF loads: keys=57, expired=0"), "{ours}");
    // The base alone, through check-rdb.
    let base = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .unwrap();
    let b = base.to_str().unwrap();
    let (rc1, theirs) = redis("redis-check-rdb", &[b], "");
    let (rc2, ours) = slotd(&["check-rdb", b], "");
    assert_eq!((rc1, rc2), (0, 0));
    assert_eq!(ours, theirs);
    // A damaged RDB: both fail.
    let mut bytes = std::fs::read(&base).unwrap();
    bytes.truncate(bytes.len() - 20);
    let cut = dir.join("cut.rdb");
    std::fs::write(&cut, bytes).unwrap();
    let c = cut.to_str().unwrap();
    let (rc1, theirs) = redis("redis-check-rdb", &[c], "");
    let (rc2, ours) = slotd(&["check-rdb", c], "");
    assert_eq!((rc1, rc2), (1, 1), "{ours}");
    assert!(theirs.contains("--- RDB ERROR DETECTED ---"));
    assert!(ours.contains("--- RDB ERROR DETECTED ---"), "{ours}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn torn_tail_is_reported_and_fixed_like_redis() {
    let dir = redis_dir("torn");
    let incr = incr_file(&dir);
    let len = std::fs::metadata(&incr).unwrap().len();
    // Cut inside the last command's last bulk.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&incr)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let m = manifest(&dir);
    let (rc1, theirs) = redis("redis-check-aof", &[&m], "");
    let (rc2, ours) = slotd(&["check-aof", &m], "");
    assert_eq!((rc1, rc2), (1, 1), "{ours}");
    assert_eq!(ours, theirs);
    assert!(
        ours.contains("Expected to read 5 bytes, got 2 bytes"),
        "{ours}"
    );
    // --fix asks first: "n" aborts.
    let (rc, ours) = slotd(&["check-aof", "--fix", &m], "n\n");
    assert_eq!(rc, 1);
    assert!(ours.contains("Continue? [y/N]: Aborting..."), "{ours}");
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), len - 3);
    let (rc, ours) = slotd(&["check-aof", "--fix", &m], "y\n");
    assert_eq!(rc, 0, "{ours}");
    assert!(ours.contains("Successfully truncated AOF"), "{ours}");
    // Redis agrees the directory is valid now and loads it.
    let (rc, theirs) = redis("redis-check-aof", &[&m], "");
    assert_eq!(rc, 0, "{theirs}");
    let (rc, ours) = slotd(&["check-aof", &m], "");
    assert_eq!(rc, 0);
    assert!(ours.contains("AOF loads: keys=56"), "{ours}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_in_the_middle_is_named_with_its_offset() {
    let dir = redis_dir("garbage");
    let incr = incr_file(&dir);
    let bytes = std::fs::read(&incr).unwrap();
    // Between two records, somewhere in the middle.
    let mid = bytes.len() / 2;
    let at = mid
        + bytes[mid..]
            .windows(3)
            .position(|w| w == b"\n*2" || w == b"\n*3" || w == b"\n*1")
            .unwrap()
        + 1;
    let mut damaged = bytes[..at].to_vec();
    damaged.extend_from_slice(b"garbage\r\n");
    damaged.extend_from_slice(&bytes[at..]);
    std::fs::write(&incr, &damaged).unwrap();
    let m = manifest(&dir);
    let (rc1, theirs) = redis("redis-check-aof", &[&m], "");
    let (rc2, ours) = slotd(&["check-aof", &m], "");
    assert_eq!((rc1, rc2), (1, 1));
    assert_eq!(ours, theirs);
    assert!(ours.contains(&format!("ok_up_to={at},")), "{ours}");
    assert!(ours.contains("format error"), "{ours}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
    }
    out
}

#[test]
fn slotd_two_core_manifest_cuts_records_depending_on_a_lost_tail() {
    let dir = temp_dir("deps");
    let aof = dir.join("appendonlydir");
    std::fs::create_dir_all(&aof).unwrap();
    // Core 1 kept only its first record; core 0's records after its
    // second #D need more of core 1's log.
    let c1 = resp(&["SET", "{b}x", "1"]);
    let mut c0 = resp(&["SET", "{a}1", "1"]);
    c0.extend(format!("#D:1={}\r\n", c1.len()).bytes());
    c0.extend(resp(&["SET", "{a}2", "2"]));
    let keep = c0.len();
    c0.extend(format!("#D:1={}\r\n", c1.len() + 30).bytes());
    c0.extend(resp(&["SET", "{a}3", "3"]));
    std::fs::write(aof.join("appendonly.aof.1.c0.incr.aof"), &c0).unwrap();
    std::fs::write(aof.join("appendonly.aof.1.c1.incr.aof"), &c1).unwrap();
    std::fs::write(
        aof.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.c0.incr.aof seq 1 type i core 0 cores 2 slots 0-8191 offset 0\n\
         file appendonly.aof.1.c1.incr.aof seq 1 type i core 1 cores 2 slots 8192-16383 offset 0\n",
    )
    .unwrap();
    let (rc, ours) = slotd(&["check-aof", &manifest(&dir)], "");
    assert_eq!(rc, 0, "{ours}");
    assert!(
        ours.contains("INCR AOF appendonly.aof.1.c0.incr.aof is valid"),
        "{ours}"
    );
    assert!(
        ours.contains(&format!(
            "AOF of core 0 cut at offset {keep}: {} bytes depend on writes lost on other cores",
            c0.len() - keep
        )),
        "{ours}"
    );
    assert!(ours.contains("AOF loads: keys=3, expired=0"), "{ours}");
    assert!(
        ours.contains(&format!(
            "core 0: keeps {keep} bytes of appendonly.aof.1.c0.incr.aof (log offset {keep}), cut"
        )),
        "{ours}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
