//! RDB snapshots both ways against the stock redis-server 7.0: slotd's
//! SAVE/BGSAVE files load in redis-server with every type and TTL, and
//! redis-server's dump.rdb loads in slotd (two shards); damaged files stop
//! the start with a clear error.

use std::time::Duration;
use tests::Server;

/// Every value type, several encodings, and TTLs.
fn fill(s: &Server) {
    let mut r = s.raw();
    for i in 0..300 {
        let k = format!("k{i}");
        let v = format!("value-{i}-{}", "x".repeat(i % 50));
        r.cmd_str(&["SET", &k, &v]);
        r.cmd_str(&["SET", &format!("n{i}"), &i.to_string()]);
        r.cmd_str(&["RPUSH", &format!("l{}", i % 7), &k, "1", "-5"]);
        r.cmd_str(&["HSET", &format!("h{}", i % 5), &k, &v]);
        r.cmd_str(&["SADD", &format!("s{}", i % 4), &i.to_string()]);
        r.cmd_str(&["SADD", "sbig", &k]);
        r.cmd_str(&["ZADD", &format!("z{}", i % 3), &format!("{}.5", i), &k]);
        r.cmd_str(&["HSET", "hbig", &k, &"v".repeat(i)]);
    }
    r.cmd_str(&["SET", "ttl", "v", "PX", "100000000"]);
    r.cmd_str(&["HSET", "httl", "f", "v"]);
    r.cmd_str(&["EXPIRE", "httl", "500000"]);
}

/// Every key with its type, DUMP-independent contents and TTL (rounded).
fn contents(s: &Server) -> Vec<String> {
    let mut r = s.raw();
    let mut keys = s.cli(&["--scan"]);
    keys.push('\n');
    let mut out = Vec::new();
    for k in keys.split_whitespace() {
        let ty = String::from_utf8_lossy(&r.cmd_str(&["TYPE", k])).into_owned();
        let body = match ty.trim() {
            "+string" => r.cmd_str(&["GET", k]),
            "+list" => r.cmd_str(&["LRANGE", k, "0", "-1"]),
            "+hash" => s
                .cli(&["HGETALL", k])
                .lines()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes(),
            "+set" => s
                .cli(&["SMEMBERS", k])
                .lines()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes(),
            "+zset" => r.cmd_str(&["ZRANGE", k, "0", "-1", "WITHSCORES"]),
            _ => b"?".to_vec(),
        };
        let ttl = String::from_utf8_lossy(&r.cmd_str(&["TTL", k])).into_owned();
        let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap_or(-9);
        out.push(format!(
            "{k} {} {} {}",
            ty.trim(),
            String::from_utf8_lossy(&body),
            if ttl > 0 { (ttl + 50) / 100 } else { ttl }
        ));
    }
    out.sort();
    out
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    tests::fresh_dir("snap", name)
}

#[test]
fn slotd_snapshot_loads_in_redis_with_every_type_and_ttl() {
    let dir = temp_dir("to-redis");
    let d = dir.to_str().unwrap();
    let slotd = Server::slotd(&["--shards", "2", "--dir", d, "--dbfilename", "s.rdb"]);
    fill(&slotd);
    let want = contents(&slotd);
    assert_eq!(slotd.raw().cmd_str(&["SAVE"]), b"+OK\r\n");
    let redis = Server::redis(&["--dir", d, "--dbfilename", "s.rdb"]);
    assert_eq!(contents(&redis), want, "SAVE");
    drop(redis);
    // BGSAVE, then the same.
    slotd.raw().cmd_str(&["SET", "after", "1"]);
    let want = contents(&slotd);
    assert_eq!(
        slotd.raw().cmd_str(&["BGSAVE"]),
        b"+Background saving started\r\n"
    );
    let mut r = slotd.raw();
    for _ in 0..100 {
        let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
        if info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_saves:2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let redis = Server::redis(&["--dir", d, "--dbfilename", "s.rdb"]);
    assert_eq!(contents(&redis), want, "BGSAVE");
}

#[test]
fn redis_snapshot_loads_in_slotd_on_two_shards() {
    let dir = temp_dir("from-redis");
    let d = dir.to_str().unwrap();
    let redis = Server::redis(&["--dir", d, "--dbfilename", "r.rdb"]);
    fill(&redis);
    let want = contents(&redis);
    assert_eq!(redis.raw().cmd_str(&["SAVE"]), b"+OK\r\n");
    drop(redis);
    let slotd = Server::slotd(&["--shards", "2", "--dir", d, "--dbfilename", "r.rdb"]);
    assert_eq!(contents(&slotd), want);
    assert!(slotd.log().contains("Done loading RDB, keys loaded: "));
}

#[test]
fn a_damaged_file_stops_the_start_with_a_clear_error() {
    let dir = temp_dir("damaged");
    let d = dir.to_str().unwrap();
    let redis = Server::redis(&["--dir", d, "--dbfilename", "r.rdb"]);
    fill(&redis);
    assert_eq!(redis.raw().cmd_str(&["SAVE"]), b"+OK\r\n");
    drop(redis);
    let good = std::fs::read(dir.join("r.rdb")).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x5a;
    for (name, bytes, says) in [
        (
            "short.rdb",
            &good[..good.len() / 2],
            "Short read or OOM loading DB",
        ),
        // Cut anywhere (inside a count, a string, a blob): a short read.
        (
            "short3.rdb",
            &good[..good.len() / 3],
            "Short read or OOM loading DB",
        ),
        (
            "short7.rdb",
            &good[..good.len() * 6 / 7],
            "Short read or OOM loading DB",
        ),
        (
            "flipped.rdb",
            &flipped[..],
            "Internal error in RDB reading offset",
        ),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
        let port = tests::free_port().to_string();
        let out = std::process::Command::new(tests::slotd_bin())
            .args([
                "--port",
                &port,
                "--save",
                "",
                "--dir",
                d,
                "--dbfilename",
                name,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(says) && text.contains(name), "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
    }
}

/// Waits until no background save runs (up to 60 s: a loaded CI machine
/// took more than 10); returns INFO persistence.
fn bgsave_done(r: &mut tests::RawConn) -> String {
    for _ in 0..1200 {
        let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
        if info.contains("rdb_bgsave_in_progress:0") {
            return info;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("background save still running");
}

/// A BGSAVE that cannot put its file in place (a directory has the
/// file's name, so the rename fails) makes
/// writes answer Redis's -MISCONF while save rules exist; a save that
/// works again lifts it. Same replies as redis-server's.
#[test]
fn a_failed_bgsave_stops_writes_with_misconf() {
    let mut replies = Vec::new();
    for slotd in [false, true] {
        let d = temp_dir(if slotd {
            "misconf-slotd"
        } else {
            "misconf-redis"
        });
        let dir = d.to_str().unwrap();
        let s = if slotd {
            Server::slotd(&["--dir", dir, "--save", "3600 1"])
        } else {
            Server::redis(&["--dir", dir, "--save", "3600 1"])
        };
        let mut r = s.raw();
        let mut seen = vec![r.cmd_str(&["SET", "a", "1"])];
        let blocker = d.join("dump.rdb");
        std::fs::create_dir_all(blocker.join("x")).unwrap();
        seen.push(r.cmd_str(&["BGSAVE"]));
        let info = bgsave_done(&mut r);
        assert!(info.contains("rdb_last_bgsave_status:err"), "{info}");
        seen.push(r.cmd_str(&["SET", "a", "2"]));
        seen.push(r.cmd_str(&["GET", "a"]));
        std::fs::remove_dir_all(&blocker).unwrap();
        r.cmd_str(&["BGSAVE"]);
        let info = bgsave_done(&mut r);
        assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
        seen.push(r.cmd_str(&["SET", "a", "3"]));
        seen.push(r.cmd_str(&["GET", "a"]));
        replies.push(seen);
        let _ = std::fs::remove_dir_all(&d);
    }
    let show = |v: &Vec<Vec<u8>>| v.iter().map(|r| tests::show(r)).collect::<Vec<_>>();
    assert_eq!(show(&replies[1]), show(&replies[0]));
    assert!(tests::show(&replies[1][2]).starts_with("-MISCONF"));
}

/// The values of `keys` (MGET in chunks) as numbers.
fn counters(c: &mut tests::RawConn, keys: &[String]) -> Vec<u64> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(|k| k.as_bytes()));
        let reply = tests::Resp::parse(&c.cmd(&args)).unwrap().0;
        let tests::Resp::Agg(_, Some(items)) = reply else {
            panic!("MGET: {reply:?}")
        };
        for item in items {
            let tests::Resp::Bulk(_, Some(v)) = item else {
                panic!("missing key")
            };
            out.push(String::from_utf8(v).unwrap().parse().unwrap());
        }
    }
    out
}

/// A BGSAVE while a client keeps incrementing every key in a fixed order
/// (round after round) saves, on each core, the state of one instant:
/// along the writer's order, that core's saved counters never increase and
/// differ by at most one (a prefix of the round done, the rest not). A
/// snapshot that serialised slots as it met them, without copy-on-write,
/// would save later-visited keys with later counts. The file loads in
/// redis-server, every key present and none ahead of the final state.
#[test]
fn bgsave_under_writes_saves_each_cores_state_at_one_instant() {
    const N: usize = 40_000;
    let dir = temp_dir("under-writes");
    let d = dir.to_str().unwrap();
    let slotd = Server::slotd(&["--shards", "2", "--dir", d, "--save", ""]);
    let keys: Vec<String> = (0..N).map(|i| format!("counter:{i}")).collect();
    let mut c = slotd.raw();
    for chunk in keys.chunks(500) {
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for k in chunk {
            args.extend([k.as_bytes(), b"0"]);
        }
        c.cmd(&args);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, keys, mut w) = (stop.clone(), keys.clone(), slotd.raw());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for chunk in keys.chunks(200) {
                    let mut batch = Vec::new();
                    for k in chunk {
                        batch.extend(tests::encode(&[b"INCR", k.as_bytes()]));
                    }
                    w.send(&batch).unwrap();
                    for _ in chunk {
                        w.read_reply().unwrap();
                    }
                }
                rounds += 1;
            }
            rounds
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.cmd_str(&["BGSAVE"]), b"+Background saving started\r\n");
    let info = bgsave_done(&mut c);
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds >= 1, "the writer never finished a round");
    let fin = counters(&mut c, &keys);
    drop(slotd);
    let redis = Server::redis(&["--dir", d, "--dbfilename", "dump.rdb"]);
    let saved = counters(&mut redis.raw(), &keys);
    assert!(
        saved.iter().zip(&fin).all(|(s, f)| s <= f),
        "saved ahead of final"
    );
    assert!(
        saved.iter().zip(&fin).any(|(s, f)| s < f),
        "no write after the snapshot"
    );
    for core in 0..2 {
        let on_core: Vec<u64> = keys
            .iter()
            .zip(&saved)
            .filter(|(k, _)| {
                let slot = crc16::State::<crc16::XMODEM>::calculate(k.as_bytes()) as usize & 16383;
                slot * 2 / 16384 == core
            })
            .map(|(_, &v)| v)
            .collect();
        assert!(
            on_core.len() > N / 4,
            "core {core} has {} keys",
            on_core.len()
        );
        let (max, min) = (on_core[0], *on_core.last().unwrap());
        assert!(max - min <= 1, "core {core}: counters from {min} to {max}");
        let rises = on_core.windows(2).filter(|w| w[1] > w[0]).count();
        assert_eq!(
            rises, 0,
            "core {core}: a later key saved with a later count"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9 in the middle of a BGSAVE leaves the previous dump.rdb in
/// place and loadable (the new file is written aside and renamed only
/// once complete and fsynced).
#[test]
fn kill_during_bgsave_leaves_the_previous_file_loadable() {
    let dir = temp_dir("kill");
    let d = dir.to_str().unwrap();
    let mut slotd = Server::slotd(&["--shards", "2", "--dir", d, "--save", ""]);
    let mut c = slotd.raw();
    c.cmd_str(&["SET", "first", "1"]);
    assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
    let value = "v".repeat(200);
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(1000) {
        let mut args: Vec<String> = vec!["MSET".into()];
        for i in chunk {
            args.extend([format!("k{i}"), value.clone()]);
        }
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        c.cmd_str(&argv);
    }
    assert_eq!(c.cmd_str(&["BGSAVE"]), b"+Background saving started\r\n");
    // SAFETY: plain kill(2) of the child this test started.
    unsafe { libc::kill(slotd.pid() as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!slotd.is_alive());
    let redis = Server::redis(&["--dir", d, "--dbfilename", "dump.rdb"]);
    let n = String::from_utf8(redis.raw().cmd_str(&["DBSIZE"])).unwrap();
    // Either the old file (1 key) or, had the save finished first, the
    // new one (100001 keys): never a damaged or missing file.
    assert!(n == ":1\r\n" || n == ":100001\r\n", "DBSIZE {n:?}");
    eprintln!(
        "after kill -9 during BGSAVE, dump.rdb has DBSIZE {}",
        n.trim()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM saves the final snapshot when save rules exist (as Redis's
/// shutdown does) and does not when there are none.
#[test]
fn sigterm_saves_when_save_rules_exist() {
    for rules in ["3600 1", ""] {
        let dir = temp_dir(if rules.is_empty() {
            "term-none"
        } else {
            "term-rules"
        });
        let d = dir.to_str().unwrap();
        let mut slotd = Server::slotd(&["--shards", "2", "--dir", d, "--save", rules]);
        let mut c = slotd.raw();
        for i in 0..1000 {
            c.cmd_str(&["SET", &format!("k{i}"), &i.to_string()]);
        }
        // SAFETY: plain kill(2) of the child this test started.
        unsafe { libc::kill(slotd.pid() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if !slotd.is_alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!slotd.is_alive(), "still running after SIGTERM");
        let log = slotd.log();
        let file = dir.join("dump.rdb");
        if rules.is_empty() {
            assert!(!file.exists(), "saved without save rules");
        } else {
            assert!(
                log.contains("Saving the final RDB snapshot before exiting."),
                "{log}"
            );
            assert!(log.contains("DB saved on disk"), "{log}");
            let redis = Server::redis(&["--dir", d, "--dbfilename", "dump.rdb"]);
            assert_eq!(redis.raw().cmd_str(&["DBSIZE"]), b":1000\r\n");
            assert_eq!(redis.raw().cmd_str(&["GET", "k999"]), b"$3\r\n999\r\n");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The pages of `f` not yet on the disk (dirty or under writeback), by
/// `cachestat(2)` (Linux 6.5); `None` where the call is missing.
#[cfg(target_arch = "x86_64")]
fn unsynced_pages(f: &std::fs::File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        cache: u64,
        dirty: u64,
        writeback: u64,
        evicted: u64,
        recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off: 0, len: 0 };
    let mut st = Stat::default();
    // SAFETY: cachestat on an open file, with a range (0, 0: the whole
    // file) and a result struct laid out as the kernel's.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            f.as_raw_fd(),
            &range as *const Range,
            &mut st as *mut Stat,
            0,
        )
    };
    (r == 0).then_some(st.dirty + st.writeback)
}

/// `rdb-save-incremental-fsync` and `aof-rewrite-incremental-fsync`
/// (Redis's defaults, `yes`) keep a snapshot or a rewrite's base from
/// piling up in the page cache: its bytes go to the disk every 4 MB as
/// they are written, so at any time little of it is dirty or under
/// writeback; with `no` the whole file waits for the fsync at its end.
/// Measured on the temporary file during BGSAVE and BGREWRITEAOF with
/// cachestat(2); the snapshot saved with steps loads in redis-server.
#[cfg(target_arch = "x86_64")]
#[test]
fn incremental_fsync_keeps_a_snapshot_off_the_page_cache() {
    let dir = temp_dir("autosync");
    let d = dir.to_str().unwrap();
    // SAFETY: statfs into a zeroed struct, on a NUL-terminated path.
    let tmpfs = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        let p = std::ffi::CString::new(d).unwrap();
        libc::statfs(p.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    };
    if tmpfs {
        eprintln!("skipped: {d} is on tmpfs, which has no writeback");
        return;
    }
    let slotd = Server::slotd(&[
        "--shards",
        "2",
        "--dir",
        d,
        "--save",
        "",
        "--rdbcompression",
        "no",
    ]);
    let mut c = slotd.raw();
    // 48 MB of values.
    let keys = 48_000;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        let mut args: Vec<String> = vec!["MSET".into()];
        for i in chunk {
            args.extend([format!("k{i}"), format!("{i:0>1000}")]);
        }
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        assert_eq!(c.cmd_str(&argv), b"+OK\r\n");
    }
    let tmp = format!("temp-{}.rdb", slotd.pid());
    let jobs = [
        (
            "rdb-save-incremental-fsync",
            "BGSAVE",
            dir.join(&tmp),
            "rdb_bgsave_in_progress:0",
        ),
        (
            "aof-rewrite-incremental-fsync",
            "BGREWRITEAOF",
            dir.join("appendonlydir").join(&tmp),
            "aof_rewrite_in_progress:0",
        ),
    ];
    for (directive, job, tmp, done) in jobs {
        if job == "BGREWRITEAOF" {
            // The AOF on (its first base written), then rewrites.
            assert_eq!(
                c.cmd_str(&["CONFIG", "SET", "appendonly", "yes"]),
                b"+OK\r\n"
            );
            for _ in 0..1200 {
                let info =
                    String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
                if info.contains("aof_rewrite_in_progress:0")
                    && info.contains("aof_rewrite_scheduled:0")
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut peaks = Vec::new();
        for autosync in ["no", "yes"] {
            let set = ["CONFIG", "SET", directive, autosync];
            assert_eq!(c.cmd_str(&set), b"+OK\r\n");
            let started = c.cmd_str(&[job]);
            assert!(started.starts_with(b"+Background"), "{job}: {started:?}");
            let mut file = None;
            let mut peak = 0;
            let mut samples = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let f = file.get_or_insert_with(|| std::fs::File::open(&tmp).ok());
                if let Some(f) = f {
                    let Some(pages) = unsynced_pages(f) else {
                        eprintln!("skipped: no cachestat(2) on this kernel");
                        return;
                    };
                    peak = peak.max(pages);
                    samples += 1;
                } else {
                    file = None;
                }
                let info =
                    String::from_utf8_lossy(&c.cmd_str(&["INFO", "persistence"])).into_owned();
                if info.contains(done) {
                    assert!(!info.contains(":err"), "{job}: {info}");
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{job} still running");
                std::thread::sleep(Duration::from_millis(1));
            }
            let mb = peak * 4096 / (1 << 20);
            eprintln!(
                "{directive} {autosync}: at most {mb} MB of the file unsynced ({samples} samples)"
            );
            assert!(samples > 0, "{job}: the temporary file was never seen");
            peaks.push(mb);
        }
        // Without steps the whole file (about 48 MB) waits for the last
        // fsync; with them, about two steps of 4 MB at most.
        assert!(peaks[0] >= 32, "{directive} no: {} MB", peaks[0]);
        assert!(peaks[1] <= 16, "{directive} yes: {} MB", peaks[1]);
        if job == "BGSAVE" {
            let redis = Server::redis(&["--dir", d, "--dbfilename", "dump.rdb"]);
            let n = String::from_utf8(redis.raw().cmd_str(&["DBSIZE"])).unwrap();
            assert_eq!(n, format!(":{keys}\r\n"));
        }
    }
    assert_eq!(c.cmd_str(&["DBSIZE"]), format!(":{keys}\r\n").into_bytes());
    drop(c);
    drop(slotd);
    let _ = std::fs::remove_dir_all(&dir);
}
