//! `aof-timestamp-enabled` and `no-appendfsync-on-rewrite` against the real
//! binary: the `#TS` stamps of each core's incr file (plausible seconds,
//! one per second that saw a write, never inside MULTI ... EXEC), a stamped
//! directory loading into slotd and into redis-server 7.0, `check-aof
//! --truncate-to-timestamp` against redis-check-aof, and fsyncs that lag
//! the writes during a BGSAVE only with the directive on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tests::{slotd_bin, RawConn, Server};

fn temp_dir(name: &str) -> PathBuf {
    tests::fresh_dir("aofdir", name)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

use tests::text;

/// Runs `bin args`: (exit code, stdout).
fn run(bin: &Path, args: &[&str]) -> (i32, String) {
    tests::run_tool(bin, args, "")
}

/// The incr files of `dir/appendonlydir`, by name.
fn incr_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    v.sort();
    v
}

/// The lines of an AOF file that are annotations or MULTI/EXEC (RESP
/// bulks are skipped by their lengths, so a value can't pass for one).
fn structure(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let line = |i: usize| {
        let e = i + bytes[i..].windows(2).position(|w| w == b"\r\n").unwrap();
        (String::from_utf8_lossy(&bytes[i..e]).into_owned(), e + 2)
    };
    while i < bytes.len() {
        let (l, next) = line(i);
        if l.starts_with('#') {
            out.push(l);
            i = next;
            continue;
        }
        let argc: usize = l[1..].parse().unwrap();
        i = next;
        let mut first = None;
        for _ in 0..argc {
            let (h, next) = line(i);
            let len: usize = h[1..].parse().unwrap();
            if first.is_none() {
                first = Some(String::from_utf8_lossy(&bytes[next..next + len]).into_owned());
            }
            i = next + len + 2;
        }
        match first.as_deref() {
            Some(c @ ("MULTI" | "EXEC")) => out.push(c.to_string()),
            _ => out.push("cmd".into()),
        }
    }
    out
}

fn digest(r: &mut RawConn) -> String {
    text(&r.cmd_str(&["DEBUG", "DIGEST"]))
}

#[test]
fn aof_timestamps_mark_each_second_outside_multi_and_load() {
    let dir = temp_dir("ts");
    let d = dir.to_str().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--dir",
        d,
        "--shards",
        "2",
        "--enable-debug-command",
        "yes",
        "--aof-timestamp-enabled",
        "yes",
    ];
    let mut s = Server::slotd(&args);
    assert_eq!(
        s.cli(&["config", "get", "aof-timestamp-enabled"]),
        "aof-timestamp-enabled\nyes\n"
    );
    let t0 = unix_now();
    let mut r = s.raw();
    // Three bursts of writes a bit over a second apart, with
    // transactions (one core and across cores) in each.
    for burst in 0..3 {
        for i in 0..200 {
            r.cmd_str(&["SET", &format!("k{burst}:{i}"), "v"]);
            if i % 20 == 0 {
                r.cmd_str(&["MULTI"]);
                r.cmd_str(&["INCR", "{t}a"]);
                r.cmd_str(&["INCR", "{t}b"]);
                r.cmd_str(&["EXEC"]);
                r.cmd_str(&["MULTI"]);
                r.cmd_str(&["INCR", "x"]);
                r.cmd_str(&["INCR", "y"]);
                r.cmd_str(&["LPUSH", "l", "e"]);
                r.cmd_str(&["EXEC"]);
            }
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    let t1 = unix_now();
    // Off at run time: no stamp from here.
    assert_eq!(
        r.cmd_str(&["CONFIG", "SET", "aof-timestamp-enabled", "no"]),
        b"+OK\r\n"
    );
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..50 {
        r.cmd_str(&["SET", &format!("off{i}"), "v"]);
    }
    let want = digest(&mut r);
    drop(r);
    s.stop();
    let mut stamps_seen = 0;
    for f in incr_files(&dir) {
        let st = structure(&std::fs::read(&f).unwrap());
        let mut in_multi = false;
        let mut last_ts = 0;
        let mut last_stamp_at = None;
        for (n, l) in st.iter().enumerate() {
            match l.as_str() {
                "MULTI" => in_multi = true,
                "EXEC" => in_multi = false,
                _ => {}
            }
            if let Some(ts) = l.strip_prefix("#TS:") {
                assert!(!in_multi, "{f:?}: {l} inside MULTI ... EXEC");
                let ts: u64 = ts.parse().unwrap();
                assert!((t0..=t1).contains(&ts), "{f:?}: {l} outside [{t0}, {t1}]");
                assert!(ts > last_ts, "{f:?}: {l} after #TS:{last_ts}");
                last_ts = ts;
                last_stamp_at = Some(n);
                stamps_seen += 1;
            }
        }
        // One stamp per second that saw writes: at most the seconds the
        // bursts spanned, and at least one per burst on the core that
        // had writes in each.
        let stamps = st.iter().filter(|l| l.starts_with("#TS:")).count() as u64;
        assert!(
            (3..=t1 - t0 + 1).contains(&stamps),
            "{f:?}: {stamps} stamps over {t0}..{t1}: {st:?}"
        );
        // The writes after `CONFIG SET aof-timestamp-enabled no` (the last
        // 50 SETs, spread over both cores) follow the last stamp with no
        // new one.
        let tail = st.len() - last_stamp_at.unwrap();
        assert!(tail > 10, "{f:?}: the last stamp is too close to the end");
        // The first record of a core's file is a stamp (its first write).
        assert!(st[0].starts_with("#TS:"), "{f:?}: {:?}", &st[..3]);
    }
    assert!(stamps_seen >= 6);
    // slotd's own check and load.
    let m = dir.join("appendonlydir/appendonly.aof.manifest");
    let m = m.to_str().unwrap();
    let (rc, ours) = run(&slotd_bin(), &["check-aof", m]);
    assert_eq!(rc, 0, "{ours}");
    let s = Server::slotd(&args);
    let mut r = s.raw();
    assert_eq!(digest(&mut r), want);
    assert_eq!(text(&r.cmd_str(&["DBSIZE"])), ":655\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-core stamped directory: (dir, incr file, its stamps' seconds,
/// DEBUG DIGEST of the data).
fn stamped_dir(name: &str) -> (PathBuf, PathBuf, Vec<u64>, String) {
    let dir = temp_dir(name);
    let d = dir.to_str().unwrap();
    let mut s = Server::slotd(&[
        "--appendonly",
        "yes",
        "--dir",
        d,
        "--shards",
        "1",
        "--aof-timestamp-enabled",
        "yes",
        "--enable-debug-command",
        "yes",
    ]);
    let mut r = s.raw();
    for burst in 0..3 {
        // Each burst in a second of its own (one stamp each): it starts
        // just after a second begins, not at a fixed pace that lets a
        // burst straddle two seconds on a busy machine.
        let into = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis() as u64;
        std::thread::sleep(Duration::from_millis(1000 - into + 20));
        for i in 0..30 {
            r.cmd_str(&["SET", &format!("k{burst}:{i}"), "v"]);
        }
        r.cmd_str(&["MULTI"]);
        r.cmd_str(&["INCR", "n"]);
        r.cmd_str(&["EXEC"]);
    }
    let digest = digest(&mut r);
    drop(r);
    s.stop();
    let incr = incr_files(&dir).pop().unwrap();
    let stamps: Vec<u64> = structure(&std::fs::read(&incr).unwrap())
        .iter()
        .filter_map(|l| l.strip_prefix("#TS:").map(|t| t.parse().unwrap()))
        .collect();
    assert_eq!(stamps.len(), 3, "{stamps:?}");
    (dir, incr, stamps, digest)
}

#[test]
fn a_stamped_slotd_directory_loads_into_redis_server() {
    // (One core: redis-server 7.0 reads one incr file per sequence number.)
    let (dir, _, _, want) = stamped_dir("toredis");
    let m = dir.join("appendonlydir/appendonly.aof.manifest");
    let (rc, theirs) = run(Path::new("redis-check-aof"), &[m.to_str().unwrap()]);
    assert_eq!(rc, 0, "{theirs}");
    assert!(theirs.contains("All AOF files and manifest are valid"));
    let redis = Server::redis(&[
        "--appendonly",
        "yes",
        "--aof-timestamp-enabled",
        "yes",
        "--dir",
        dir.to_str().unwrap(),
        "--enable-debug-command",
        "yes",
    ]);
    let mut r = redis.raw();
    assert_eq!(digest(&mut r), want, "{}", redis.log());
    assert_eq!(text(&r.cmd_str(&["DBSIZE"])), ":91\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_aof_truncates_to_timestamp_like_redis_check_aof() {
    let (dir, incr, ts, _) = stamped_dir("trunc");
    let m = dir.join("appendonlydir/appendonly.aof.manifest");
    let m = m.to_str().unwrap();
    let original = std::fs::read(&incr).unwrap();
    let restore = || std::fs::write(&incr, &original).unwrap();
    let redis_tool = Path::new("redis-check-aof");
    let slotd = slotd_bin();
    // Compare both tools' exit code, output and resulting file, each run
    // on the original file.
    let both = |args: &[&str]| {
        restore();
        let (rc1, theirs) = run(redis_tool, args);
        let after_redis = std::fs::read(&incr).unwrap();
        restore();
        let mut ours_args = vec!["check-aof"];
        ours_args.extend_from_slice(args);
        let (rc2, ours) = run(&slotd, &ours_args);
        let after_slotd = std::fs::read(&incr).unwrap();
        assert_eq!(rc1, rc2, "{args:?}\nours:\n{ours}\ntheirs:\n{theirs}");
        assert!(
            ours.starts_with(&theirs),
            "{args:?}\nours:\n{ours}\ntheirs:\n{theirs}"
        );
        assert!(after_redis == after_slotd, "{args:?}: the files differ");
        (rc2, ours, after_slotd.len())
    };
    let name = incr.file_name().unwrap().to_str().unwrap().to_string();
    // Up to the second stamp's second minus one: cut at the second stamp.
    let to = (ts[1] - 1).to_string();
    let (rc, out, len) = both(&["--truncate-to-timestamp", &to, m]);
    assert_eq!(rc, 0);
    assert!(
        out.contains(&format!(
            "Successfully truncated AOF {name} to timestamp {to}\n"
        )),
        "{out}"
    );
    let cut = find(&original, format!("#TS:{}\r\n", ts[1]).as_bytes());
    assert_eq!(len, cut);
    let truncated = original[..cut].to_vec();
    // Later than every stamp: nothing to cut.
    let (rc, out, len) = both(&["--truncate-to-timestamp", &(ts[2] + 5).to_string(), m]);
    assert_eq!((rc, len), (0, original.len()));
    assert!(
        out.contains(&format!(
            "Truncate nothing in AOF {name} to timestamp {}\n",
            ts[2] + 5
        )),
        "{out}"
    );
    // Before the first stamp, which opens the file: refused.
    let (rc, out, _) = both(&["--truncate-to-timestamp", &(ts[0] - 1).to_string(), m]);
    assert_eq!(rc, 1);
    assert!(out.contains("has nothing before timestamp"), "{out}");
    // A bad argument.
    let (rc, out, _) = both(&["--truncate-to-timestamp", "12x", m]);
    assert_eq!(rc, 1);
    assert_eq!(out, "Invalid timestamp, aborting...\n");
    // The truncated directory loads: the first burst and its INCR.
    std::fs::write(&incr, &truncated).unwrap();
    let s = Server::slotd(&[
        "--appendonly",
        "yes",
        "--dir",
        dir.to_str().unwrap(),
        "--shards",
        "1",
    ]);
    let mut r = s.raw();
    assert_eq!(text(&r.cmd_str(&["DBSIZE"])), ":31\r\n");
    assert_eq!(text(&r.cmd_str(&["GET", "n"])), "$1\r\n1\r\n");
    drop(r);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}

/// INFO persistence's `slotd_aof_core0` line: (recorded, written, fsynced),
/// and whether a BGSAVE is in progress.
fn offsets(r: &mut RawConn) -> (u64, u64, u64, bool) {
    let info = text(&r.cmd_str(&["INFO", "persistence"]));
    let line = info
        .lines()
        .find(|l| l.starts_with("slotd_aof_core0:"))
        .unwrap_or_else(|| panic!("no offsets in {info}"));
    let v: Vec<u64> = line
        .split([':', ',', '='])
        .filter_map(|p| p.parse().ok())
        .collect();
    (v[0], v[1], v[2], info.contains("rdb_bgsave_in_progress:1"))
}

/// Runs a BGSAVE and, while it is in progress, SETs one key at a time and
/// reads the offsets after each reply: how many probes ran during the
/// save, and how many of them saw the fsynced offset behind the written
/// one (the reply having been sent anyway).
fn probe_bgsave(r: &mut RawConn) -> (u32, u32) {
    assert_eq!(
        text(&r.cmd_str(&["BGSAVE"])),
        "+Background saving started\r\n"
    );
    let (mut during, mut lagging) = (0, 0);
    let t = Instant::now();
    for i in 0u64.. {
        let (_, _, _, before) = offsets(r);
        if !before {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "BGSAVE never ended");
        assert_eq!(r.cmd_str(&["SET", &format!("probe{i}"), "v"]), b"+OK\r\n");
        let (rec, written, synced, after) = offsets(r);
        if after {
            during += 1;
            // A reply leaves once its write is in the file, at least.
            assert_eq!(written, rec, "SET answered before its write");
            if synced < written {
                lagging += 1;
            }
        }
    }
    (during, lagging)
}

#[test]
fn no_appendfsync_on_rewrite_lets_fsync_lag_during_a_bgsave() {
    let dir = temp_dir("nofsync");
    let d = dir.to_str().unwrap();
    let s = Server::slotd(&[
        "--appendonly",
        "yes",
        "--dir",
        d,
        "--shards",
        "1",
        "--rdbcompression",
        "no",
        "--auto-aof-rewrite-percentage",
        "0",
        "--no-appendfsync-on-rewrite",
        "yes",
    ]);
    let mut r = s.raw();
    // A few hundred thousand keys make the BGSAVE last.
    let value = "x".repeat(300);
    let mut batch = Vec::new();
    for chunk in 0..400 {
        let mut args: Vec<String> = vec!["MSET".into()];
        for i in 0..1000 {
            args.push(format!("key:{chunk}:{i}"));
            args.push(value.clone());
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        batch.extend_from_slice(&tests::encode(&refs));
    }
    r.send(&batch).unwrap();
    for _ in 0..400 {
        assert_eq!(r.read_reply().unwrap(), b"+OK\r\n");
    }
    assert_eq!(
        r.cmd_str(&["CONFIG", "SET", "appendfsync", "always"]),
        b"+OK\r\n"
    );
    assert_eq!(
        s.cli(&["config", "get", "no-appendfsync-on-rewrite"]),
        "no-appendfsync-on-rewrite\nyes\n"
    );
    // Directive on: during the save, replies under `always` go out after
    // the write, and the fsyncs wait.
    let (during, lagging) = probe_bgsave(&mut r);
    assert!(during >= 5, "the BGSAVE was too short: {during} probes");
    // (Not every probe: the first may come before the writer thread
    // started, the last ones while fsyncs catch up at the end.)
    assert!(
        lagging * 2 >= during,
        "fsynced kept up during the save: {lagging} of {during} probes lagged"
    );
    // After it, fsyncs resume and cover everything.
    let t = Instant::now();
    loop {
        let (rec, _, synced, _) = offsets(&mut r);
        if synced == rec {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "fsync never resumed");
        std::thread::sleep(Duration::from_millis(20));
    }
    r.cmd_str(&["SET", "after", "v"]);
    let (rec, _, synced, _) = offsets(&mut r);
    assert_eq!(
        synced, rec,
        "SET answered before its fsync once the save ended"
    );
    // Directive off (at run time): no probe lags.
    assert_eq!(
        r.cmd_str(&["CONFIG", "SET", "no-appendfsync-on-rewrite", "no"]),
        b"+OK\r\n"
    );
    let (during, lagging) = probe_bgsave(&mut r);
    assert!(during >= 5, "the BGSAVE was too short: {during} probes");
    assert_eq!(lagging, 0, "fsynced lagged with the directive off");
    let _ = std::fs::remove_dir_all(&dir);
}

/// BGREWRITEAOF, waiting for its end.
fn rewrite(r: &mut RawConn) {
    let count = |r: &mut RawConn| {
        let info = text(&r.cmd_str(&["INFO", "persistence"]));
        let line = info.lines().find_map(|l| l.strip_prefix("aof_rewrites:"));
        line.unwrap().trim().parse::<u64>().unwrap()
    };
    let before = count(r);
    assert!(text(&r.cmd_str(&["BGREWRITEAOF"])).starts_with('+'));
    // (redis-server counts a rewrite when its child starts.)
    let t = Instant::now();
    while count(r) == before
        || !text(&r.cmd_str(&["INFO", "persistence"])).contains("aof_rewrite_in_progress:0")
    {
        assert!(t.elapsed() < Duration::from_secs(20), "no rewrite");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The base file the manifest of `dir/appendonlydir` names.
fn base_file(dir: &Path) -> Vec<u8> {
    let d = dir.join("appendonlydir");
    let m = std::fs::read_to_string(d.join("appendonly.aof.manifest")).unwrap();
    let line = m.lines().find(|l| l.contains(" type b")).unwrap();
    std::fs::read(d.join(line.split(' ').nth(1).unwrap())).unwrap()
}

#[test]
fn a_command_base_starts_with_a_timestamp_as_redis_writes_it() {
    let args = |d: &str| {
        [
            "--appendonly",
            "yes",
            "--dir",
            d,
            "--aof-use-rdb-preamble",
            "no",
            "--aof-timestamp-enabled",
            "yes",
            "--enable-debug-command",
            "yes",
        ]
        .map(str::to_string)
    };
    let mut bases = Vec::new();
    for redis in [true, false] {
        let dir = temp_dir(if redis { "base-redis" } else { "base-slotd" });
        let a = args(dir.to_str().unwrap());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut s = if redis {
            Server::redis(&a)
        } else {
            let mut a = a.clone();
            a.extend(["--shards", "1"]);
            Server::slotd(&a)
        };
        let mut r = s.raw();
        for i in 0..20 {
            r.cmd_str(&["SET", &format!("k{i}"), "v"]);
        }
        let t0 = unix_now();
        rewrite(&mut r);
        let t1 = unix_now();
        let want = digest(&mut r);
        let base = base_file(&dir);
        let first = &base[..base.windows(2).position(|w| w == b"\r\n").unwrap()];
        let ts: u64 = std::str::from_utf8(first)
            .unwrap()
            .strip_prefix("#TS:")
            .unwrap_or_else(|| panic!("redis {redis}: {}", String::from_utf8_lossy(first)))
            .parse()
            .unwrap();
        assert!(
            (t0..=t1).contains(&ts),
            "redis {redis}: {ts} not in {t0}..{t1}"
        );
        bases.push(structure(&base));
        drop(r);
        s.stop();
        // The directory loads into the other server.
        let a2 = args(dir.to_str().unwrap());
        let a2: Vec<&str> = a2.iter().map(String::as_str).collect();
        let other = if redis {
            Server::slotd(&a2)
        } else {
            Server::redis(&a2)
        };
        assert_eq!(digest(&mut other.raw()), want, "{}", other.log());
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The same shape: one stamp, then the commands.
    let shape = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(shape(&bases[0]), shape(&bases[1]), "{bases:?}");
}
