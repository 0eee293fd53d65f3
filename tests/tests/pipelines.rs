//! Pipelines that cross cores: replies in the client's order and byte for
//! byte what redis-server answers, writes seen by every other client in
//! the order they were sent, and a long pipeline consumed in linear work.

use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tests::{encode, RawConn, Server};

/// `n` random commands over a small key pool: strings, hashes and lists,
/// reads and writes, so consecutive commands keep changing core; with
/// `inline`, a third of them in the inline form (as `redis-cli --pipe` of
/// a text file sends them).
fn random_pipeline(seed: u64, n: usize, inline: bool) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        let k = format!("k{}", rng.gen_range(0..200));
        let v = format!("v{}", rng.gen_range(0..1000));
        let cmd: Vec<&[u8]> = match rng.gen_range(0..12) {
            0 => vec![b"SET", k.as_bytes(), v.as_bytes()],
            1 => vec![b"GET", k.as_bytes()],
            2 => vec![b"INCR", k.as_bytes()],
            3 => vec![b"APPEND", k.as_bytes(), v.as_bytes()],
            4 => vec![b"DEL", k.as_bytes()],
            5 => vec![b"EXISTS", k.as_bytes()],
            6 => vec![b"STRLEN", k.as_bytes()],
            7 => vec![b"HSET", k.as_bytes(), b"f", v.as_bytes()],
            8 => vec![b"HGETALL", k.as_bytes()],
            9 => vec![b"LPUSH", k.as_bytes(), v.as_bytes()],
            10 => vec![b"LRANGE", k.as_bytes(), b"0", b"-1"],
            _ => vec![b"TYPE", k.as_bytes()],
        };
        if inline && rng.gen_range(0..3) == 0 {
            let words: Vec<String> = cmd
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            out.extend_from_slice(format!("{}\r\n", words.join(" ")).as_bytes());
        } else {
            out.extend_from_slice(&encode(&cmd));
        }
    }
    out
}

/// Sends `bytes` (holding `n` commands) at once and reads the `n` replies.
fn run_pipeline(c: &mut RawConn, bytes: &[u8], n: usize) -> Vec<Vec<u8>> {
    c.send(bytes).unwrap();
    (0..n).map(|_| c.read_reply().unwrap()).collect()
}

#[test]
fn pipeline_replies_match_redis_byte_for_byte() {
    for (seed, resp3, inline) in [(1, false, false), (2, true, false), (3, false, true)] {
        let bytes = random_pipeline(seed, 3000, inline);
        same_as_redis(&format!("seed {seed} resp3 {resp3}"), |c| {
            if resp3 {
                c.cmd_str(&["HELLO", "3"]);
            }
            run_pipeline(c, &bytes, 3000)
        });
    }
}

/// Runs `replies` on a connection to redis-server, to slotd on 2 shards
/// and to slotd on 3, and asserts that slotd's replies are redis-server's,
/// byte for byte.
fn same_as_redis(case: &str, replies: impl Fn(&mut RawConn) -> Vec<Vec<u8>>) {
    let replies: Vec<_> = [
        Server::redis(&[]),
        Server::slotd(&["--shards", "2"]),
        Server::slotd(&["--shards", "3"]),
    ]
    .iter()
    .map(|srv| replies(&mut srv.raw()))
    .collect();
    for (i, r) in replies[0].iter().enumerate() {
        for (other, name) in [(&replies[1], "2 shards"), (&replies[2], "3 shards")] {
            assert_eq!(
                &other[i],
                r,
                "{case}: reply {i} differs on {name}: {} vs redis {}",
                tests::show(&other[i]),
                tests::show(r)
            );
        }
    }
}

/// `n` random reads over the key pool of [`random_pipeline`].
fn random_reads(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        let k = format!("k{}", rng.gen_range(0..200));
        let cmd: Vec<&[u8]> = match rng.gen_range(0..6) {
            0 => vec![b"GET", k.as_bytes()],
            1 => vec![b"EXISTS", k.as_bytes()],
            2 => vec![b"STRLEN", k.as_bytes()],
            3 => vec![b"HGETALL", k.as_bytes()],
            4 => vec![b"LRANGE", k.as_bytes(), b"0", b"-1"],
            _ => vec![b"TYPE", k.as_bytes()],
        };
        out.extend_from_slice(&encode(&cmd));
    }
    out
}

/// Pipelines of reads only, over keys of every core, as clients send
/// them (16 deep, and longer): on 2 shards each runs on the client's core
/// and the other at once, without a task (`flows::Chain::fan_out`); on 3
/// shards those over three cores run as a task. Replies as redis-server's,
/// byte for byte and in order, RESP2 and RESP3.
#[test]
fn read_pipelines_across_cores_match_redis() {
    let fill = random_pipeline(7, 2000, false);
    for (seed, resp3) in [(11, false), (12, true)] {
        same_as_redis(&format!("seed {seed} resp3 {resp3}"), |c| {
            run_pipeline(c, &fill, 2000);
            if resp3 {
                c.cmd_str(&["HELLO", "3"]);
            }
            let mut got = Vec::new();
            for (i, depth) in [2, 16, 16, 16, 100, 1000].into_iter().enumerate() {
                got.extend(run_pipeline(
                    c,
                    &random_reads(seed * 10 + i as u64, depth),
                    depth,
                ));
            }
            got
        });
    }
}

/// A producer pipelines `SET job:<i>` then `LPUSH queue <i>`; a consumer
/// that pops `i` must find `job:<i>`, whichever cores the keys live on and
/// however the pipeline is cut (`batch` pairs per pipeline: short ones
/// travel core to core, long ones run under the cores' locks).
fn jobs_are_never_seen_before_their_data(batch: usize) {
    let s = Server::slotd(&["--shards", "2"]);
    let jobs = 3000;
    let port = s.port();
    let consumer = std::thread::spawn(move || {
        let mut c = RawConn::connect(port).unwrap();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < jobs {
            assert!(Instant::now() < deadline, "only {seen} jobs popped");
            // *2 $5 queue $<n> <id>, or a nil array on timeout.
            let r = String::from_utf8_lossy(&c.cmd_str(&["BRPOP", "queue", "5"])).into_owned();
            let parts: Vec<&str> = r.split("\r\n").collect();
            let (Some(&"*2"), Some(id)) = (parts.first(), parts.get(4)) else {
                continue;
            };
            let got = c.cmd_str(&["GET", &format!("job:{id}")]);
            assert_ne!(
                got, b"$-1\r\n",
                "job {id} popped before its data was visible"
            );
            seen += 1;
        }
    });
    let mut p = s.raw();
    let mut sent = 0;
    while sent < jobs {
        let mut bytes = Vec::new();
        let n = batch.min(jobs - sent);
        for i in sent..sent + n {
            let (k, v) = (format!("job:{i}"), format!("payload-{i}"));
            bytes.extend_from_slice(&encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
            bytes.extend_from_slice(&encode(&[b"LPUSH", b"queue", i.to_string().as_bytes()]));
        }
        for r in run_pipeline(&mut p, &bytes, 2 * n) {
            assert!(
                r == b"+OK\r\n" || r.starts_with(b":"),
                "{}",
                tests::show(&r)
            );
        }
        sent += n;
    }
    consumer.join().unwrap();
}

#[test]
fn pipelined_writes_are_seen_in_order_by_other_clients() {
    jobs_are_never_seen_before_their_data(8);
}

#[test]
fn long_pipelined_writes_are_seen_in_order_by_other_clients() {
    jobs_are_never_seen_before_their_data(200);
}

fn info_field(s: &Server, name: &str) -> u64 {
    let info = s.cli(&["info", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

/// 1M SETs in one pipeline over 2 shards: the input path examines and
/// moves each received byte a bounded number of times (a quadratic path
/// would move the backlog at every change of core: thousands of times).
#[test]
fn a_long_pipeline_across_cores_is_consumed_in_linear_work() {
    let s = Server::slotd(&["--shards", "2"]);
    let n = 1_000_000;
    let mut bytes = Vec::with_capacity(n * 75);
    for i in 0..n {
        let k = format!("key:{i:012}");
        bytes.extend_from_slice(&encode(&[b"SET", k.as_bytes(), &[b'v'; 32]]));
    }
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    let mut replies = vec![0u8; n * 5];
    sock.read_exact(&mut replies).unwrap();
    sender.join().unwrap();
    assert!(replies.chunks(5).all(|r| r == b"+OK\r\n"));
    assert_eq!(s.cli(&["dbsize"]), "1000000\n");
    let input = info_field(&s, "total_net_input_bytes") as f64;
    let parsed = info_field(&s, "slotd_input_bytes_parsed") as f64;
    let moved = info_field(&s, "slotd_input_bytes_moved") as f64;
    println!(
        "per input byte: parsed {:.2}, moved {:.2}",
        parsed / input,
        moved / input
    );
    assert!(parsed / input < 4.0, "parsed {parsed} for {input} bytes in");
    assert!(moved / input < 2.0, "moved {moved} for {input} bytes in");
}

/// Redis Cluster's key hash (CRC16/XMODEM of the key).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A hash tag whose keys live on core `core` of 2.
fn tag_on(core: usize) -> String {
    (0..)
        .map(|i| format!("t{i}"))
        .find(|t| ((crc16(t.as_bytes()) & 16383) as usize) * 2 / 16384 == core)
        .unwrap()
}

/// Connections per core (INFO `slotd_shard_clients`).
fn per_core(s: &Server) -> Vec<u64> {
    let info = s.cli(&["info", "clients"]);
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("slotd_shard_clients:"))
        .unwrap_or_else(|| panic!("{info}"));
    line.trim().split(',').map(|n| n.parse().unwrap()).collect()
}

/// A connection served by core `core` (connections go to the core with
/// fewest; extra ones are kept in `spare` so the counts stay put).
fn connect_on(s: &Server, core: usize, spare: &mut Vec<RawConn>) -> RawConn {
    for _ in 0..8 {
        let before = per_core(s);
        let mut c = s.raw();
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        let after = per_core(s);
        if after[core] > before[core] {
            return c;
        }
        spare.push(c);
    }
    panic!("no connection landed on core {core}");
}

/// A writer pipelines `SET {A}a:i` then `SET {B}b:i` (cores 0 and 1)
/// while core 0 is held up by a DEBUG SLEEP. Client X, on core 1, waits
/// for `b:i`; once it sees it, client Y, on core 0, reads `a:i`, which was
/// sent before: it must be there. (Had the cores run their parts of the
/// pipeline independently, core 1 would have written `b:i` during the
/// sleep, and Y's read, served by core 0 before the queued pipeline, would
/// find nothing.)
/// With `scripted`, each SET runs inside a script (EVALSHA: a script may
/// write though EVALSHA is not flagged as a write).
fn pairs_become_visible_in_order(pairs: usize, scripted: bool) {
    let s = Server::slotd(&["--shards", "2", "--enable-debug-command", "yes"]);
    let (a, b) = (tag_on(0), tag_on(1));
    let mut spare = Vec::new();
    let mut sleeper = connect_on(&s, 0, &mut spare);
    let mut writer = connect_on(&s, 1, &mut spare);
    let mut x = connect_on(&s, 1, &mut spare);
    let mut y = connect_on(&s, 0, &mut spare);
    let body = "return redis.call('set', KEYS[1], ARGV[1])";
    let sha = String::from_utf8(writer.cmd_str(&["SCRIPT", "LOAD", body])).unwrap();
    let sha = sha.lines().nth(1).unwrap().to_string();
    if scripted {
        // Its first runs teach slotd that it touches only its keys.
        for k in [format!("{{{a}}}warm"), format!("{{{b}}}warm")] {
            for _ in 0..3 {
                assert_eq!(writer.cmd_str(&["EVALSHA", &sha, "1", &k, "1"]), b"+OK\r\n");
            }
        }
    }
    for round in 0..3 {
        sleeper
            .send(&encode(&[b"DEBUG", b"SLEEP", b"0.3"]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut bytes = Vec::new();
        for i in 0..pairs {
            let ak = format!("{{{a}}}a:{round}:{i}");
            let bk = format!("{{{b}}}b:{round}:{i}");
            for k in [&ak, &bk] {
                let set: &[&[u8]] = if scripted {
                    &[b"EVALSHA", sha.as_bytes(), b"1", k.as_bytes(), b"1"]
                } else {
                    &[b"SET", k.as_bytes(), b"1"]
                };
                bytes.extend_from_slice(&encode(set));
            }
        }
        writer.send(&bytes).unwrap();
        let last_b = format!("{{{b}}}b:{round}:{}", pairs - 1);
        let first_a = format!("{{{a}}}a:{round}:0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while x.cmd_str(&["EXISTS", &last_b]) != b":1\r\n" {
            assert!(Instant::now() < deadline, "{last_b} never appeared");
        }
        assert_eq!(
            y.cmd_str(&["EXISTS", &first_a]),
            b":1\r\n",
            "{last_b} was visible before {first_a}, sent before it"
        );
        for _ in 0..2 * pairs {
            assert_eq!(writer.read_reply().unwrap(), b"+OK\r\n");
        }
        assert_eq!(sleeper.read_reply().unwrap(), b"+OK\r\n");
    }
}

#[test]
fn short_runs_of_writes_become_visible_in_the_order_sent() {
    // 2 x 5 segments: core to core.
    pairs_become_visible_in_order(5, false);
}

#[test]
fn scripted_writes_become_visible_in_the_order_sent() {
    pairs_become_visible_in_order(5, true);
    pairs_become_visible_in_order(100, true);
}

#[test]
fn long_runs_of_writes_become_visible_in_the_order_sent() {
    // 2 x 100 segments: under the cores' locks.
    pairs_become_visible_in_order(100, false);
}

/// Clients that go away while their commands run on the other core (one
/// command, which travels as a chain without a task, or a pipeline whose
/// replies that core may send itself on the socket): every connection
/// is freed once its answer comes back, nothing else breaks, and the
/// writes that ran are there.
#[test]
fn clients_gone_with_commands_on_another_core_are_freed() {
    let s = Server::slotd(&["--shards", "2"]);
    // A connection is freed with its socket: the server's open files
    // come back to what they were (CLIENT LIST no longer shows one that
    // is closing).
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(s.cli(&["ping"]).trim(), "PONG");
    let before = fds();
    for round in 0..200u64 {
        let mut c = s.raw();
        let bytes = if round % 2 == 0 {
            encode(&[b"INCR", format!("gone:{round}").as_bytes()])
        } else {
            random_pipeline(round, 40, false)
        };
        c.send(&bytes).unwrap();
        c.stream().shutdown(std::net::Shutdown::Both).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let open = fds();
        if open <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} sockets left open after their clients went away",
            open - before
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server serves on, on both cores, and each INCR ran at most once.
    for i in (0..200u64).step_by(2) {
        let r = s.cli(&["get", &format!("gone:{i}")]);
        assert!(r.trim() == "" || r.trim() == "1", "gone:{i}: {r:?}");
    }
    assert_eq!(s.cli(&["set", "a", "1"]).trim(), "OK");
    assert_eq!(s.cli(&["set", "b", "1"]).trim(), "OK");
}
