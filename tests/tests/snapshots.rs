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
    let d = std::env::temp_dir().join(format!("slotd-snap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

/// Waits until no background save runs; returns INFO persistence.
fn bgsave_done(r: &mut tests::RawConn) -> String {
    for _ in 0..200 {
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
