//! The append-only file against the real binary: what is acknowledged
//! survives kill -9, transactions across cores come back whole or not at
//! all, a directory loads into another shard count, BGREWRITEAOF and
//! `CONFIG SET appendonly` keep every write, and redis-server's own
//! appendonlydir loads into slotd.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::{RawConn, Server};

fn temp_dir(name: &str) -> PathBuf {
    tests::fresh_dir("aof", name)
}

fn start(dir: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--appendonly", "yes", "--dir", dir];
    args.extend_from_slice(extra);
    Server::slotd(&args)
}

fn kill9(s: &mut Server) {
    Command::new("kill")
        .args(["-KILL", &s.pid().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    while s.is_alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn bulk(reply: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(reply).into_owned();
    if s.starts_with("$-1") {
        return None;
    }
    s.split("\r\n").nth(1).map(str::to_string)
}

/// INFO persistence's `slotd_aof_coreN` line: (recorded, written, fsynced).
fn offsets(r: &mut RawConn, core: usize) -> (u64, u64, u64) {
    let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
    let line = info
        .lines()
        .find(|l| l.starts_with(&format!("slotd_aof_core{core}:")))
        .unwrap_or_else(|| panic!("no offsets for core {core} in {info}"));
    let v: Vec<u64> = line
        .split([':', ',', '='])
        .filter_map(|p| p.parse().ok())
        .collect();
    (v[0], v[1], v[2])
}

/// The core owning `key` on a node of `cores` cores.
fn core_of(key: &str, cores: usize) -> usize {
    let slot = {
        let b = key.as_bytes();
        let h = match b.iter().position(|&c| c == b'{') {
            Some(s) => match b[s + 1..].iter().position(|&c| c == b'}') {
                Some(0) | None => b,
                Some(e) => &b[s + 1..s + 1 + e],
            },
            None => b,
        };
        crc16::State::<crc16::XMODEM>::calculate(h) as usize & 16383
    };
    slot * cores / 16384
}

#[test]
fn appendfsync_always_loses_no_acknowledged_write() {
    let dir = temp_dir("always");
    let d = dir.to_str().unwrap();
    // Under `always` a reply leaves only once an fsync covers the write:
    // right after the reply, the owning core's fsynced offset has reached
    // its recorded one (one client, nothing else writing).
    let mut s = start(d, &["--shards", "2", "--appendfsync", "always"]);
    let mut r = s.raw();
    for i in 0..50 {
        let k = format!("probe{i}");
        r.cmd_str(&["SET", &k, "v"]);
        let (rec, _, synced) = offsets(&mut r, core_of(&k, 2));
        assert_eq!(synced, rec, "SET {k} answered before its fsync");
    }
    // Under everysec the same probe sees the fsync lag behind: the check
    // above can fail.
    r.cmd_str(&["CONFIG", "SET", "appendfsync", "everysec"]);
    let lagged = (0..200).any(|i| {
        let k = format!("lag{i}");
        r.cmd_str(&["SET", &k, "v"]);
        let (rec, _, synced) = offsets(&mut r, core_of(&k, 2));
        synced < rec
    });
    assert!(lagged, "everysec never showed an unsynced write");
    r.cmd_str(&["CONFIG", "SET", "appendfsync", "always"]);
    drop(r);
    // 20 rounds of kill -9 under load: every acknowledged write is there.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    for round in 0..20 {
        let port = s.port();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let Ok(mut c) = RawConn::connect(port) else {
                        return;
                    };
                    c.set_read_timeout(Duration::from_secs(2));
                    for n in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let k = format!("r{round}w{w}k{}", n % 50);
                        let v = n.to_string();
                        match c.try_cmd(&[b"SET", k.as_bytes(), v.as_bytes()]) {
                            Ok(rep) if rep == b"+OK\r\n" => acked.lock().unwrap().push((k, n)),
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        // (The first replies may take long on a loaded machine: the
        // kill comes a while after the first one.)
        let t = Instant::now();
        while acked.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(100 + 37 * (round % 5)));
        kill9(&mut s);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        s = start(d, &["--shards", "2", "--appendfsync", "always"]);
        let mut r = s.raw();
        // The latest acknowledged value of each key, or a later one whose
        // reply was lost with the kill.
        let mut latest = std::collections::HashMap::new();
        for (k, n) in acked.lock().unwrap().drain(..) {
            let e = latest.entry(k).or_insert(n);
            *e = (*e).max(n);
        }
        assert!(
            !latest.is_empty(),
            "round {round}: nothing was acknowledged"
        );
        for (k, n) in latest {
            let got: u64 = bulk(&r.cmd_str(&["GET", &k]))
                .unwrap_or_else(|| panic!("round {round}: acknowledged {k} lost"))
                .parse()
                .unwrap();
            assert!(
                got >= n,
                "round {round}: {k} is {got}, {n} was acknowledged"
            );
        }
    }
}

/// Sixteen keys whose cores alternate (2 cores), the first on core
/// `first`: a pipeline over them runs core to core, one change of core
/// per command, and ends on the other core.
fn alternating_keys(prefix: &str, first: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut i = 0;
    while keys.len() < 16 {
        let k = format!("{prefix}:{i}");
        if core_of(&k, 2) == (keys.len() + first) % 2 {
            keys.push(k);
        }
        i += 1;
    }
    keys
}

/// Sends one pipeline setting every key to `n`; true when all 16 were
/// acknowledged.
fn set_pipeline(c: &mut RawConn, keys: &[String], n: u64) -> bool {
    let v = n.to_string();
    let mut bytes = Vec::new();
    for k in keys {
        bytes.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    if c.send(&bytes).is_err() {
        return false;
    }
    keys.iter()
        .all(|_| matches!(c.read_reply(), Ok(r) if r == b"+OK\r\n"))
}

#[test]
fn pipelines_across_cores_under_always_keep_order_and_acks_across_kill_9() {
    let dir = temp_dir("always-pipelines");
    let d = dir.to_str().unwrap();
    let args = ["--shards", "2", "--appendfsync", "always"];
    let s = start(d, &args);
    // A pipeline's replies leave once every core that ran part of it has
    // its part on disk: right after them (nothing else writing) both
    // cores' fsynced offsets have reached their recorded ones. Pipelines
    // of two SETs, one per core, in both orders: when the second runs on
    // the core that is not the connection's, only that core's fsync
    // covers it, done or not when the connection's core has its own.
    let mut r = s.raw();
    for n in 0..60 {
        let keys = alternating_keys("probe", n as usize % 2);
        assert!(set_pipeline(&mut r, &keys[..2], n), "pipeline {n} refused");
        for core in 0..2 {
            let (rec, _, synced) = offsets(&mut r, core);
            assert_eq!(
                synced, rec,
                "pipeline {n} answered before core {core}'s fsync"
            );
        }
    }
    drop(r);
    pipeline_kill_rounds(s, d, &args, Duration::ZERO);
}

/// RESP for one command.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    b
}

#[test]
fn commands_across_cores_sent_before_earlier_replies_wait_for_them_and_run_in_order() {
    // A client that sends on before its replies came (a pipeline longer
    // than one read): under `always`, a command crossing cores other than
    // as a pipeline (MSET over both cores, a transaction over both) waits
    // for the client's earlier part on the other core to be on disk, then
    // runs; nothing hangs and every reply and value is in order.
    let dir = temp_dir("always-earlier");
    let s = start(
        dir.to_str().unwrap(),
        &["--shards", "2", "--appendfsync", "always"],
    );
    let mut r = s.raw();
    r.set_read_timeout(Duration::from_secs(10));
    let keys: Vec<Vec<String>> = (0..2)
        .map(|c| alternating_keys(&format!("e{c}"), c))
        .collect();
    for n in 0..200usize {
        let v = n.to_string();
        let (a, b) = (&keys[n % 2], &keys[(n + 1) % 2]);
        let mut sends = vec![resp(&["SET", &a[0], &v])];
        sends.push(resp(&["MSET", &a[1], &v, &b[1], &v]));
        sends.push(resp(&["MULTI"]));
        sends.push(resp(&["SET", &a[2], &v]));
        sends.push(resp(&["SET", &b[2], &v]));
        sends.push(resp(&["EXEC"]));
        sends.push(resp(&["INCR", &a[3]]));
        // Each in its own write, without waiting for a reply.
        for bytes in &sends {
            r.send(bytes).unwrap();
        }
        let mut replies = Vec::new();
        for _ in 0..sends.len() {
            replies.push(r.read_reply().unwrap_or_else(|e| panic!("round {n}: {e}")));
        }
        let text: Vec<String> = replies
            .iter()
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect();
        assert_eq!(
            text[..5],
            [
                "+OK\r\n",
                "+OK\r\n",
                "+OK\r\n",
                "+QUEUED\r\n",
                "+QUEUED\r\n"
            ],
            "round {n}"
        );
        assert_eq!(text[5], "*2\r\n+OK\r\n+OK\r\n", "round {n}");
        assert!(text[6].starts_with(':'), "round {n}: {}", text[6]);
        for k in [&a[0], &a[1], &b[1], &a[2], &b[2]] {
            assert_eq!(
                bulk(&r.cmd_str(&["GET", k])).as_deref(),
                Some(&v[..]),
                "round {n} {k}"
            );
        }
    }
    let want = (0..200usize).filter(|n| n % 2 == 0).count().to_string();
    assert_eq!(
        bulk(&r.cmd_str(&["GET", &keys[0][3]])).as_deref(),
        Some(&want[..])
    );
}

#[test]
fn pipelines_across_cores_under_everysec_keep_order_and_acks_across_kill_9() {
    let dir = temp_dir("everysec-pipelines");
    let d = dir.to_str().unwrap();
    let args = ["--shards", "2", "--appendfsync", "everysec"];
    pipeline_kill_rounds(start(d, &args), d, &args, EVERYSEC_GRACE);
}

#[test]
fn pipelines_across_cores_under_everysec_keep_order_across_rewrites_and_kill_9() {
    // Pipelines over two cores run both parts at once under `everysec`
    // (each core logs its part of a transaction across cores): a
    // rewrite's switch of files falls between a pipeline's parts on the
    // two cores, or not, and a kill -9 comes during or after rewrites.
    let dir = temp_dir("everysec-pipelines-rewrite");
    let d = dir.to_str().unwrap();
    let args = ["--shards", "2", "--appendfsync", "everysec"];
    pipeline_rounds(start(d, &args), d, &args, EVERYSEC_GRACE, true);
    // And they did run so (the counter is this process's).
    let s = start(d, &args);
    let mut r = s.raw();
    let keys = alternating_keys("check", 0);
    for n in 1..=50 {
        assert!(set_pipeline(&mut r, &keys, n));
    }
    assert!(
        reserved_pipelines(&mut r) > 0,
        "pipelines over two cores did not run both parts at once"
    );
}

#[test]
fn switching_from_everysec_to_always_under_pipelines_loses_nothing_acknowledged_after() {
    // Under `everysec` the two cores' parts of a pipeline reach their
    // files apart; once `CONFIG SET appendfsync always` has answered, every
    // pipeline acknowledged must survive a kill -9 (the parts logged before
    // the switch are all on disk before anything after it is revealed),
    // and the switch holds nothing up for good.
    let dir = temp_dir("everysec-to-always");
    let d = dir.to_str().unwrap();
    let mut s = start(d, &["--shards", "2", "--appendfsync", "everysec"]);
    for round in 0..4u64 {
        let port = s.port();
        let stop = Arc::new(AtomicBool::new(false));
        let switched: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let (stop, switched) = (stop.clone(), switched.clone());
                let keys = alternating_keys(&format!("f{round}w{w}"), w % 2);
                std::thread::spawn(move || {
                    // The last pipeline acknowledged after the switch.
                    let mut after = 0;
                    let mut c = RawConn::connect(port).unwrap();
                    c.set_read_timeout(Duration::from_secs(5));
                    for n in 1u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // (Read before the send: a pipeline sent after the
                        // switch's answer.)
                        let past = switched.lock().unwrap().is_some();
                        if !set_pipeline(&mut c, &keys, n) {
                            break;
                        }
                        if past {
                            after = n;
                        }
                    }
                    (keys, after)
                })
            })
            .collect();
        let mut r = s.raw();
        std::thread::sleep(Duration::from_millis(80 + 30 * round));
        for policy in ["always", "everysec", "always"]
            .iter()
            .skip(((round % 2) * 2) as usize)
        {
            assert_eq!(
                r.cmd_str(&["CONFIG", "SET", "appendfsync", policy]),
                b"+OK\r\n"
            );
            // (Round 2 switches back and forth at once.)
            if round == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        *switched.lock().unwrap() = Some(Instant::now());
        std::thread::sleep(Duration::from_millis(120));
        kill9(&mut s);
        stop.store(true, Ordering::Relaxed);
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        s = start(d, &["--shards", "2", "--appendfsync", "everysec"]);
        let mut r = s.raw();
        let mut any = false;
        for (keys, after) in results {
            let got = pipelined_values(&mut r, &keys, round);
            any |= after > 0;
            assert!(
                got[15] >= after,
                "round {round}: pipeline {after} was acknowledged under always, the keys hold {got:?}"
            );
        }
        assert!(any, "round {round}: nothing acknowledged after the switch");
    }
}

#[test]
fn rewrites_succeed_under_many_clients_pipelining_over_two_cores() {
    // 200 clients pipelining SETs over both cores under `everysec`: every
    // core logs many pipelines' parts a turn, and BGREWRITEAOF succeeds
    // (a part counted among the transactions a rewrite's switch may fall
    // between made it fail past 24 of them, "core 1 took part in 27
    // transactions across cores while switching files").
    let dir = temp_dir("rewrite-many-pipelines");
    let d = dir.to_str().unwrap();
    let s = start(d, &["--shards", "2", "--appendfsync", "everysec"]);
    let mut bench = Command::new("redis-benchmark")
        .args([
            "-p",
            &s.port().to_string(),
            "-t",
            "set",
            "-c",
            "200",
            "-P",
            "16",
        ])
        .args(["-n", "20000000", "-r", "100000", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-benchmark");
    let mut r = s.raw();
    r.set_read_timeout(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    for n in 1..=4 {
        assert!(
            r.cmd_str(&["BGREWRITEAOF"]).starts_with(b"+Background"),
            "rewrite {n} refused"
        );
        let t = Instant::now();
        loop {
            let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
            if info.contains("aof_rewrite_in_progress:0") {
                assert!(
                    info.contains("aof_last_bgrewrite_status:ok")
                        && info.contains(&format!("aof_rewrites:{n}\r\n")),
                    "rewrite {n} failed: {info}"
                );
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "rewrite {n} never ended: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        reserved_pipelines(&mut r) > 0,
        "no pipeline ran both parts at once"
    );
    let _ = bench.kill();
    let _ = bench.wait();
}

/// How many pipelines reserved their keys and ran both parts at once:
/// INFO's `slotd_pipelines_reserved` less those the other core refused
/// (`slotd_pipelines_refused`, which then went core to core).
fn reserved_pipelines(r: &mut RawConn) -> u64 {
    let info = String::from_utf8(r.cmd_str(&["INFO", "stats"])).unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in INFO stats"))
    };
    field("slotd_pipelines_reserved:").saturating_sub(field("slotd_pipelines_refused:"))
}

/// Rounds of kill -9 under pipelined load over alternating cores: each
/// client's keys hold a prefix of what it sent (every key of pipeline n
/// set before any key of n + 1) and nothing acknowledged `grace` before
/// the kill is lost.
fn pipeline_kill_rounds(s: Server, d: &str, args: &[&str], grace: Duration) {
    pipeline_rounds(s, d, args, grace, false);
}

/// [`pipeline_kill_rounds`], with BGREWRITEAOF sent every few
/// milliseconds until the kill when `rewrites`.
fn pipeline_rounds(mut s: Server, d: &str, args: &[&str], grace: Duration, rewrites: bool) {
    for round in 0..8 {
        let port = s.port();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let stop = stop.clone();
                let keys = alternating_keys(&format!("r{round}w{w}"), w % 2);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let Ok(mut c) = RawConn::connect(port) else {
                        return (keys, acked);
                    };
                    c.set_read_timeout(Duration::from_secs(2));
                    for n in 1u64.. {
                        if stop.load(Ordering::Relaxed) || !set_pipeline(&mut c, &keys, n) {
                            break;
                        }
                        acked.push((n, Instant::now()));
                    }
                    (keys, acked)
                })
            })
            .collect();
        let wait = Duration::from_millis(150 + 41 * (round % 4));
        if rewrites {
            let mut r = s.raw();
            let t = Instant::now();
            while t.elapsed() < wait {
                // (Refused while one runs: it is retried.)
                let _ = r.cmd_str(&["BGREWRITEAOF"]);
                std::thread::sleep(Duration::from_millis(7 + round * 3));
            }
        } else {
            std::thread::sleep(wait);
        }
        let killed = Instant::now();
        kill9(&mut s);
        stop.store(true, Ordering::Relaxed);
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        s = start(d, args);
        let mut r = s.raw();
        let mut any = false;
        for (keys, acked) in results {
            let got = pipelined_values(&mut r, &keys, round);
            // The last pipeline acknowledged `grace` before the kill.
            if let Some(&(n, _)) = acked
                .iter()
                .rev()
                .find(|(_, at)| killed.duration_since(*at) >= grace)
            {
                any = true;
                assert!(
                    got[15] >= n,
                    "round {round}: pipeline {n} was acknowledged, the keys hold {got:?}"
                );
            }
        }
        assert!(any, "round {round}: nothing was acknowledged");
    }
}

/// The values of a writer's 16 keys (0 when absent), checked to hold a
/// prefix of the pipelines it sent: every key of pipeline n set before
/// any key of n + 1.
fn pipelined_values(r: &mut RawConn, keys: &[String], round: impl std::fmt::Display) -> Vec<u64> {
    let got: Vec<u64> = keys
        .iter()
        .map(|k| bulk(&r.cmd_str(&["GET", k])).map_or(0, |v| v.parse().unwrap()))
        .collect();
    let prefix = got.windows(2).all(|p| p[0] >= p[1]) && got[0] <= got[15] + 1;
    assert!(
        prefix,
        "round {round}: not a prefix of the pipelines sent: {got:?}"
    );
    got
}

/// Under `everysec` replies do not wait for the write: a core's records
/// reach the file within a few milliseconds (see `persist::aof::LAG_MS`),
/// so a crash of the process may lose what was acknowledged just before
/// it, never anything older, and never a later write without an earlier.
const EVERYSEC_GRACE: Duration = Duration::from_millis(100);

#[test]
fn everysec_replies_before_the_write_which_follows_within_milliseconds() {
    let dir = temp_dir("lag");
    let d = dir.to_str().unwrap();
    // A cron once a second: only the core's own wake-up writes sooner.
    let s = start(d, &["--shards", "1", "--hz", "1"]);
    let mut r = s.raw();
    // (The file itself is the probe: INFO would ask the core by message,
    // and a message waits for the write of what it may reveal.)
    let incr = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .expect("no incr file");
    let has = |key: &str| {
        let f = std::fs::read(&incr).unwrap();
        f.windows(key.len()).any(|w| w == key.as_bytes())
    };
    let mut lagged = 0;
    let mut soon = 0;
    for i in 0..20 {
        let key = format!("lagkey{i:03}");
        assert_eq!(r.cmd_str(&["SET", &key, "v"]), b"+OK\r\n");
        let replied = Instant::now();
        if !has(&key) {
            lagged += 1;
        }
        // Nothing else arrives meanwhile: the sleeping core wakes when
        // the record is due, milliseconds later, not at the next cron (a
        // second). Polled up to 2 s: a loaded machine may delay a few.
        while !has(&key) && replied.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            has(&key),
            "SET {key} is not in the file 2 s after its reply"
        );
        if replied.elapsed() < Duration::from_millis(200) {
            soon += 1;
        }
    }
    assert!(
        soon >= 15,
        "only {soon} of 20 SETs were in the file within 200 ms"
    );
    assert!(lagged > 0, "every reply waited for its write");
}

/// SHUTDOWN closes the clients' connections only once the AOF's last
/// records are in the file and fsynced (as redis-server, which exits
/// after its final fsync): a kill -9 after the connection closed loses
/// nothing, even under `everysec`, where replies do not wait for writes.
#[test]
fn shutdown_closes_connections_after_the_aof_is_flushed() {
    let dir = temp_dir("shutdown");
    let d = dir.to_str().unwrap();
    for round in 0..5 {
        let mut s = start(d, &["--shards", "2", "--hz", "1"]);
        let mut w = s.raw();
        for i in 0..20 {
            w.cmd_str(&["SET", &format!("r{round}k{i}"), "v"]);
        }
        let mut r = s.raw();
        r.send(b"SHUTDOWN NOSAVE\r\n").unwrap();
        assert!(r.is_closed(Duration::from_secs(20)));
        // SAFETY: plain kill(2) of the child this test started, at once.
        unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) };
        kill9(&mut s);
        let s = start(d, &["--shards", "2"]);
        let mut r = s.raw();
        for i in 0..20 {
            let k = format!("r{round}k{i}");
            assert_eq!(
                bulk(&r.cmd_str(&["GET", &k])).as_deref(),
                Some("v"),
                "round {round}: {k} lost"
            );
        }
        let mut r = s.raw();
        r.send(b"SHUTDOWN NOSAVE\r\n").unwrap();
        assert!(r.is_closed(Duration::from_secs(20)));
    }
}

#[test]
fn everysec_keeps_writes_in_order_and_loses_only_the_last_milliseconds_across_kill_9() {
    writes_in_order_across_kill_9("everysec", EVERYSEC_GRACE);
}

#[test]
fn always_keeps_writes_in_order_and_every_acknowledged_one_across_kill_9() {
    writes_in_order_across_kill_9("always", Duration::ZERO);
}

/// Writers over both cores, killed: what is left of each is a prefix of
/// what it sent, holding what was acknowledged `grace` before the kill.
fn writes_in_order_across_kill_9(policy: &str, grace: Duration) {
    let dir = temp_dir(&format!("in-order-{policy}"));
    let d = dir.to_str().unwrap();
    let args = ["--shards", "2", "--appendfsync", policy];
    let mut s = start(d, &args);
    let port = s.port();
    // Clients write sequences over keys of both cores; after a kill, what
    // is there of each is a prefix of what it sent (no later write without
    // an earlier one) holding everything acknowledged before the grace.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::<(u64, Instant)>::new();
                let mut c = RawConn::connect(port).unwrap();
                c.set_read_timeout(Duration::from_secs(2));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("w{w}seq{n}");
                    if n % 3 != 2 {
                        match c.try_cmd(&[b"SET", k.as_bytes(), b"1"]) {
                            Ok(r) if r == b"+OK\r\n" => acked.push((n, Instant::now())),
                            _ => break,
                        }
                        n += 1;
                        continue;
                    }
                    // A write on one core and, in the same pipeline, a
                    // command that crosses cores other than as a
                    // pipeline: MSET with a key of the other core half
                    // the time (a multi-key command under the cores'
                    // locks), sent before the SET's turn on its core ends.
                    let k2 = format!("w{w}seq{}", n + 1);
                    let other = format!("w{w}other{n}");
                    let mut p = tests::encode(&[b"SET", k.as_bytes(), b"1"]);
                    p.extend(tests::encode(&[
                        b"MSET",
                        k2.as_bytes(),
                        b"1",
                        other.as_bytes(),
                        b"1",
                    ]));
                    let ok = c.send(&p).is_ok()
                        && c.read_reply().is_ok_and(|r| r == b"+OK\r\n")
                        && c.read_reply().is_ok_and(|r| r == b"+OK\r\n");
                    if !ok {
                        break;
                    }
                    let at = Instant::now();
                    acked.push((n, at));
                    acked.push((n + 1, at));
                    n += 2;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let killed = Instant::now();
    kill9(&mut s);
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let s = start(d, &args);
    let mut r = s.raw();
    for (w, acked) in acked.iter().enumerate() {
        assert!(acked.len() > 100, "too few writes: {}", acked.len());
        let present: Vec<bool> = acked
            .iter()
            .map(|(n, _)| bulk(&r.cmd_str(&["GET", &format!("w{w}seq{n}")])).is_some())
            .collect();
        let kept = present.iter().take_while(|&&p| p).count();
        assert!(
            present[kept..].iter().all(|&p| !p),
            "a later write survived an earlier lost one"
        );
        if let Some((i, (n, at))) = acked.iter().enumerate().nth(kept) {
            let before = killed.duration_since(*at);
            assert!(
                before < grace,
                "w{w}seq{n} (#{i} of {}) acknowledged {before:?} before the kill is lost",
                acked.len(),
            );
        }
    }
}

#[test]
fn multi_exec_across_cores_is_all_or_nothing_after_kill_9() {
    for (policy, round) in ["always", "everysec"]
        .into_iter()
        .flat_map(|p| (0..5).map(move |r| (p, r)))
    {
        let dir = temp_dir(&format!("multi-{policy}-{round}"));
        let d = dir.to_str().unwrap();
        let mut s = start(d, &["--shards", "2", "--appendfsync", policy]);
        let a = "txa";
        let b: &'static str = ["txb", "txc", "txd", "txe", "txf"]
            .into_iter()
            .find(|k| core_of(k, 2) != core_of(a, 2))
            .unwrap();
        let port = s.port();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let w = std::thread::spawn(move || {
            let mut c = RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(2));
            for n in 0u64.. {
                if s2.load(Ordering::Relaxed) {
                    return n;
                }
                let v = n.to_string();
                let mut batch = Vec::new();
                batch.extend(tests::encode(&[b"MULTI"]));
                batch.extend(tests::encode(&[b"SET", a.as_bytes(), v.as_bytes()]));
                batch.extend(tests::encode(&[b"SET", b.as_bytes(), v.as_bytes()]));
                batch.extend(tests::encode(&[b"EXEC"]));
                if c.send(&batch).is_err() {
                    return n;
                }
                for _ in 0..4 {
                    if c.read_reply().is_err() {
                        return n;
                    }
                }
            }
            0
        });
        std::thread::sleep(Duration::from_millis(300 + 53 * round));
        kill9(&mut s);
        stop.store(true, Ordering::Relaxed);
        let sent = w.join().unwrap();
        assert!(sent > 0, "{policy}: no transaction ran");
        let s = start(d, &["--shards", "2", "--appendfsync", policy]);
        let mut r = s.raw();
        let va = bulk(&r.cmd_str(&["GET", a]));
        let vb = bulk(&r.cmd_str(&["GET", b]));
        assert_eq!(va, vb, "{policy}: half a transaction came back");
        // `sent` transactions were acknowledged: under `always` they are
        // on disk.
        if policy == "always" {
            let got: u64 = va
                .expect("always: an acknowledged transaction is lost")
                .parse()
                .unwrap();
            assert!(got + 1 >= sent, "always: {got} back, {sent} acknowledged");
        }
    }
}

#[test]
fn a_directory_written_with_two_shards_loads_into_one_and_three() {
    let dir = temp_dir("reshard");
    let d = dir.to_str().unwrap();
    let mut s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    for i in 0..300 {
        let k = format!("key:{i}");
        r.cmd_str(&["SET", &k, &i.to_string()]);
        r.cmd_str(&["RPUSH", &format!("list:{}", i % 7), &k]);
        r.cmd_str(&["HSET", "h", &k, &i.to_string()]);
    }
    r.cmd_str(&["SET", "ttl", "v", "PX", "600000"]);
    r.cmd_str(&["SELECT", "5"]);
    r.cmd_str(&["SET", "in5", "five"]);
    let digest = |r: &mut RawConn| {
        let mut out = Vec::new();
        r.cmd_str(&["SELECT", "0"]);
        for i in (0..300).step_by(17) {
            out.push(r.cmd_str(&["GET", &format!("key:{i}")]));
        }
        out.push(r.cmd_str(&["LRANGE", "list:3", "0", "-1"]));
        out.push(r.cmd_str(&["HLEN", "h"]));
        out.push(r.cmd_str(&["DBSIZE"]));
        r.cmd_str(&["SELECT", "5"]);
        out.push(r.cmd_str(&["GET", "in5"]));
        r.cmd_str(&["SELECT", "0"]);
        let ttl = String::from_utf8_lossy(&r.cmd_str(&["PTTL", "ttl"])).into_owned();
        let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
        assert!(ttl > 500_000, "TTL lost: {ttl}");
        out
    };
    let want = digest(&mut r);
    drop(r);
    s.stop();
    for shards in ["1", "3", "2"] {
        let mut s = start(d, &["--shards", shards]);
        let mut r = s.raw();
        assert_eq!(digest(&mut r), want, "{shards} shards");
        // Keep writing: the new generation is appended to and reloads.
        r.cmd_str(&["SET", &format!("after{shards}"), "x"]);
        drop(r);
        s.stop();
        let s = start(d, &["--shards", shards]);
        let mut r = s.raw();
        assert_eq!(
            bulk(&r.cmd_str(&["GET", &format!("after{shards}")])).as_deref(),
            Some("x")
        );
        r.cmd_str(&["DEL", &format!("after{shards}")]);
    }
}

#[test]
fn bgrewriteaof_under_writes_keeps_every_write_and_survives_kill_9() {
    let dir = temp_dir("rewrite");
    let d = dir.to_str().unwrap();
    let mut s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    for i in 0..20_000 {
        r.send(&tests::encode(&[b"SET", format!("k{i}").as_bytes(), b"0"]))
            .unwrap();
    }
    for _ in 0..20_000 {
        r.read_reply().unwrap();
    }
    // INCRs run while the rewrite walks the keyspace.
    assert_eq!(
        r.cmd_str(&["BGREWRITEAOF"]),
        b"+Background append only file rewriting started\r\n"
    );
    for i in 0..2000 {
        r.cmd_str(&["INCR", &format!("k{}", i * 7 % 20_000)]);
    }
    let t = Instant::now();
    loop {
        let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1") {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "rewrite never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    r.cmd_str(&["SET", "last", "1"]);
    let manifest =
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(
        manifest.starts_with("file appendonly.aof.2.base.rdb seq 2 type b\n"),
        "{manifest}"
    );
    assert_eq!(
        manifest.lines().count(),
        3,
        "old files still listed: {manifest}"
    );
    // Only the new generation's files remain.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.c0.incr.aof",
            "appendonly.aof.2.c1.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    // Start a second rewrite and kill the server while it runs.
    r.cmd_str(&["BGREWRITEAOF"]);
    r.cmd_str(&["INCR", "k0"]);
    // (Under `everysec` the last write may reach the file a little after
    // its reply.)
    std::thread::sleep(EVERYSEC_GRACE);
    kill9(&mut s);
    let s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["DBSIZE"]), b":20001\r\n");
    let mut sum = 0u64;
    for i in 0..20_000 {
        sum += bulk(&r.cmd_str(&["GET", &format!("k{i}")]))
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(sum, 2001, "INCRs lost or doubled across the rewrites");
}

#[test]
fn config_set_appendonly_writes_a_base_and_starts_logging() {
    let dir = temp_dir("enable");
    let d = dir.to_str().unwrap();
    let s = Server::slotd(&["--dir", d, "--shards", "2"]);
    let mut r = s.raw();
    for i in 0..100 {
        r.cmd_str(&["SET", &format!("k{i}"), "before"]);
    }
    assert_eq!(
        r.cmd_str(&["CONFIG", "SET", "appendonly", "yes"]),
        b"+OK\r\n"
    );
    let t = Instant::now();
    while !String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).contains("aof_rewrites:1")
    {
        assert!(t.elapsed() < Duration::from_secs(20), "no rewrite");
        std::thread::sleep(Duration::from_millis(20));
    }
    r.cmd_str(&["SET", "k0", "after"]);
    r.cmd_str(&["CONFIG", "SET", "appendonly", "no"]);
    std::thread::sleep(Duration::from_millis(300));
    // Written after the AOF was turned off: not in the files.
    r.cmd_str(&["SET", "k1", "off"]);
    drop(r);
    let mut s = s;
    s.stop();
    let s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["DBSIZE"]), b":100\r\n");
    assert_eq!(bulk(&r.cmd_str(&["GET", "k0"])).as_deref(), Some("after"));
    assert_eq!(bulk(&r.cmd_str(&["GET", "k1"])).as_deref(), Some("before"));
    // Off, a cron tick (the cores close their files), and on again: the
    // logs restart from offset 0, and a connection whose earlier replies
    // waited for the old log's offsets is not held by them.
    for i in 2..20 {
        r.cmd_str(&["SET", &format!("k{i}"), "on"]);
    }
    r.cmd_str(&["CONFIG", "SET", "appendonly", "no"]);
    std::thread::sleep(Duration::from_millis(300));
    r.cmd_str(&["CONFIG", "SET", "appendonly", "yes"]);
    let t = Instant::now();
    while !String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).contains("aof_rewrites:1")
    {
        assert!(t.elapsed() < Duration::from_secs(20), "no rewrite");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bulk(&r.cmd_str(&["GET", "k2"])).as_deref(), Some("on"));
}

#[test]
fn aof_files_follow_appenddirname_and_appendfilename() {
    let dir = temp_dir("names");
    let d = dir.to_str().unwrap();
    let mut s = start(
        d,
        &["--appenddirname", "mylogs", "--appendfilename", "data.aof"],
    );
    s.raw().cmd_str(&["SET", "a", "1"]);
    s.stop();
    let m = std::fs::read_to_string(dir.join("mylogs/data.aof.manifest")).unwrap();
    assert!(m.contains("file data.aof.1.base.rdb seq 1 type b"), "{m}");
    let s = start(
        d,
        &["--appenddirname", "mylogs", "--appendfilename", "data.aof"],
    );
    assert_eq!(bulk(&s.raw().cmd_str(&["GET", "a"])).as_deref(), Some("1"));
}

/// Under `always` a core writes zeros ahead of its records (so that each
/// group commit's fdatasync has no file size to commit): they stay out of
/// INFO's sizes, a kill -9 leaves them, `slotd check-aof` and loading
/// skip them, and a clean shutdown cuts them.
#[test]
fn always_writes_zeros_ahead_which_loading_skips_and_shutdown_cuts() {
    let dir = temp_dir("zeros");
    let d = dir.to_str().unwrap();
    let args = ["--shards", "1", "--appendfsync", "always"];
    let incr = dir.join("appendonlydir/appendonly.aof.1.c0.incr.aof");
    let size = || std::fs::metadata(&incr).unwrap().len();
    let mut s = start(d, &args);
    let mut r = s.raw();
    for i in 0..2000 {
        r.cmd_str(&["SET", &format!("k{i}"), &"v".repeat(100)]);
    }
    let (rec, written, synced) = offsets(&mut r, 0);
    assert_eq!((written, synced), (rec, rec));
    // (The zero write is linked to an fsync: wait for the size to settle.)
    let t = Instant::now();
    while size() <= written && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let on_disk = size();
    assert!(
        on_disk > written,
        "no zeros past {written} bytes of records"
    );
    let current: u64 = tests::info_field(&s, "persistence", "aof_current_size")
        .parse()
        .unwrap();
    let base = std::fs::metadata(dir.join("appendonlydir/appendonly.aof.1.base.rdb"))
        .unwrap()
        .len();
    assert_eq!(current, base + written, "INFO counts the zeros");
    kill9(&mut s);
    let bytes = std::fs::read(&incr).unwrap();
    assert!(bytes.len() as u64 > written && bytes[written as usize..].iter().all(|&b| b == 0));
    let m = dir.join("appendonlydir/appendonly.aof.manifest");
    let (rc, out) = tests::run_tool(&tests::slotd_bin(), &["check-aof", m.to_str().unwrap()], "");
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("zero bytes written ahead of its records by slotd: skipped"),
        "{out}"
    );
    assert!(out.contains("is valid"), "{out}");
    // `--fix` cuts them (on a copy: the node cuts them itself below).
    let copy = dir.join("copy.aof");
    std::fs::copy(&incr, &copy).unwrap();
    let (rc, out) = tests::run_tool(
        &tests::slotd_bin(),
        &["check-aof", "--fix", copy.to_str().unwrap()],
        "",
    );
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("Successfully truncated AOF"), "{out}");
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), written);
    // Loading skips them, and goes on appending where the records end.
    let mut s = start(d, &args);
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["DBSIZE"]), b":2000\r\n");
    r.cmd_str(&["SET", "after", "1"]);
    s.stop();
    let bytes = std::fs::read(&incr).unwrap();
    assert!(
        bytes.ends_with(b"after\r\n$1\r\n1\r\n"),
        "the file does not end with its last record"
    );
    let s = start(d, &args);
    assert_eq!(s.raw().cmd_str(&["DBSIZE"]), b":2001\r\n");
}

fn sample(r: &mut RawConn) -> Vec<Vec<u8>> {
    vec![
        r.cmd_str(&["GET", "k1"]),
        r.cmd_str(&["GET", "k199"]),
        r.cmd_str(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        r.cmd_str(&["HGETALL", "h"]),
        r.cmd_str(&["DBSIZE"]),
    ]
}

#[test]
fn a_redis_server_appendonlydir_loads_into_slotd() {
    let dir = temp_dir("fromredis");
    let d = dir.to_str().unwrap();
    let mut redis = Server::redis(&["--appendonly", "yes", "--dir", d]);
    let mut r = redis.raw();
    for i in 0..200 {
        let k = format!("k{i}");
        r.cmd_str(&["SET", &k, &i.to_string()]);
        r.cmd_str(&["ZADD", "z", &i.to_string(), &k]);
    }
    r.cmd_str(&["BGREWRITEAOF"]);
    std::thread::sleep(Duration::from_millis(500));
    r.cmd_str(&["MULTI"]);
    r.cmd_str(&["INCR", "k1"]);
    r.cmd_str(&["HSET", "h", "f", "v"]);
    r.cmd_str(&["EXEC"]);
    r.cmd_str(&["SET", "t", "v", "EX", "1000"]);
    let want = sample(&mut r);
    drop(r);
    redis.stop();
    let s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    let got = sample(&mut r);
    assert_eq!(got, want);
    // slotd wrote its own generation from what it loaded.
    let m = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(m.contains(" core 1 cores 2 "), "{m}");
}

#[test]
fn auto_aof_rewrite_starts_when_the_files_grow() {
    let dir = temp_dir("auto");
    let d = dir.to_str().unwrap();
    let s = start(
        d,
        &[
            "--auto-aof-rewrite-min-size",
            "200kb",
            "--auto-aof-rewrite-percentage",
            "100",
        ],
    );
    let mut r = s.raw();
    let rewrites = |r: &mut RawConn| {
        let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
        info.lines()
            .find_map(|l| l.strip_prefix("aof_rewrites:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    // Under the minimum size: no rewrite, however much it grew.
    for i in 0..500 {
        r.cmd_str(&["SET", &format!("k{i}"), &"x".repeat(100)]);
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(rewrites(&mut r), 0);
    // Past it (the same keys written again: the files grow, the data not).
    for _ in 0..6 {
        for i in 0..500 {
            r.cmd_str(&["SET", &format!("k{i}"), &"y".repeat(100)]);
        }
    }
    let t = Instant::now();
    while rewrites(&mut r) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no automatic rewrite"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.log().contains("Starting automatic rewriting of AOF on"));
    // The new base holds the data (500 keys of 100 B, LZF-compressed),
    // not the history (3500 SETs, over 400 KB).
    let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
    let base: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("aof_base_size:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1_000..150_000).contains(&base), "aof_base_size {base}");
}

/// Scripts' effects are in the AOF, wrapped whole: after kill -9 under
/// `appendfsync always`, every acknowledged script's writes are back,
/// those that ran on one core and those that ran with every core locked
/// (keys on both cores), each one all or nothing.
#[test]
fn script_effects_survive_kill_9_whole() {
    let dir = temp_dir("scripts");
    let d = dir.to_str().unwrap();
    let mut s = start(d, &["--shards", "2", "--appendfsync", "always"]);
    let mut r = s.raw();
    let across =
        "for i = 1, 8 do redis.call('incr', 'lua:' .. i) end return redis.call('get', 'lua:1')";
    let local =
        "redis.call('incr', KEYS[1]); return redis.call('rpush', KEYS[1] .. ':log', ARGV[1])";
    for i in 0..50 {
        r.cmd_str(&["EVAL", across, "0"]);
        r.cmd_str(&["EVAL", local, "1", "{h}n", &i.to_string()]);
    }
    kill9(&mut s);
    let s = start(d, &["--shards", "2"]);
    let mut r = s.raw();
    for i in 1..=8 {
        assert_eq!(
            bulk(&r.cmd_str(&["GET", &format!("lua:{i}")])).as_deref(),
            Some("50")
        );
    }
    assert_eq!(bulk(&r.cmd_str(&["GET", "{h}n"])).as_deref(), Some("50"));
    assert_eq!(r.cmd_str(&["LLEN", "{h}n:log"]), b":50\r\n");
}

/// A transaction across cores that a rewrite's switch of files falls
/// between (its part on one core in that core's new incr file, its part
/// on the other in the file before, which the rewrite folds into the
/// base) is kept whole at load, and so is everything after it: the
/// manifest names it with the second core's file (`based`). Before,
/// the load found the first part's sibling nowhere and cut that core's
/// log back to it, every acknowledged write after it lost. A writer
/// sends MSETs of two keys (of two cores, for about half the pairs)
/// while BGREWRITEAOF runs; DEBUG LOADAOF then reloads from the files
/// and every acknowledged pair must be there. (A switch falls inside a
/// transaction in about one round of five here.)
#[test]
fn a_transaction_a_rewrites_switch_falls_between_is_kept_with_what_follows() {
    const WRITERS: usize = 4;
    let dir = temp_dir("straddle");
    let d = dir.to_str().unwrap();
    let s = start(
        d,
        &[
            "--shards",
            "2",
            "--appendfsync",
            "everysec",
            "--enable-debug-command",
            "yes",
        ],
    );
    let mut r = s.raw();
    let rewrites = |r: &mut RawConn| -> (u64, bool) {
        let info = String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"])).into_owned();
        let n = info
            .lines()
            .find_map(|l| l.strip_prefix("aof_rewrites:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (n, info.contains("aof_rewrite_in_progress:0"))
    };
    let mut based = 0;
    for round in 0..16 {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(vec![0u64; WRITERS]));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acked) = (stop.clone(), acked.clone());
                let mut c = s.raw();
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let (x, y) = (format!("x{round}:{w}:{i}"), format!("y{round}:{w}:{i}"));
                        assert_eq!(c.cmd_str(&["MSET", &x, "1", &y, "1"]), b"+OK\r\n");
                        i += 1;
                        acked.lock().unwrap()[w] = i;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let before = rewrites(&mut r).0;
        r.cmd_str(&["BGREWRITEAOF"]);
        let t = Instant::now();
        while !matches!(rewrites(&mut r), (n, true) if n > before) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "round {round}: rewrite never ended: {}",
                String::from_utf8_lossy(&r.cmd_str(&["INFO", "persistence"]))
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        let manifest =
            std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
        based += manifest.contains(" based ") as usize;
        assert_eq!(r.cmd_str(&["DEBUG", "LOADAOF"]), b"+OK\r\n");
        let acked = acked.lock().unwrap().clone();
        for (w, &n) in acked.iter().enumerate() {
            for i in 0..n {
                for k in [format!("x{round}:{w}:{i}"), format!("y{round}:{w}:{i}")] {
                    assert_eq!(
                        r.cmd_str(&["EXISTS", &k]),
                        b":1\r\n",
                        "round {round}: {k} of {n} acknowledged pairs lost ({based} rewrites named transactions so far)"
                    );
                }
            }
        }
    }
    eprintln!("{based} of 16 rewrites named transactions in the manifest");
}
