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

/// Connections per core (INFO `slotd_shard_clients`), asked on `probe`,
/// which stays open (a connection made to ask would count itself, on
/// whichever core has fewest).
fn per_core(probe: &mut RawConn) -> Vec<u64> {
    let info = String::from_utf8_lossy(&probe.cmd_str(&["INFO", "clients"])).into_owned();
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("slotd_shard_clients:"))
        .unwrap_or_else(|| panic!("{info}"));
    line.trim().split(',').map(|n| n.parse().unwrap()).collect()
}

/// A connection served by core `core` (connections go to the core with
/// fewest; extra ones are kept in `spare` so the counts stay put).
fn connect_on(s: &Server, core: usize, spare: &mut Vec<RawConn>) -> RawConn {
    let mut probe = s.raw();
    for _ in 0..8 {
        let before = per_core(&mut probe);
        let mut c = s.raw();
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        let after = per_core(&mut probe);
        if after[core] > before[core] {
            spare.push(probe);
            return c;
        }
        spare.push(c);
    }
    panic!("no connection landed on core {core}");
}

/// Waits (10 s at most) until client `x` sees key `later`, then checks
/// that client `y` sees key `earlier`, which was sent before it.
fn seen_after(x: &mut RawConn, later: &str, y: &mut RawConn, earlier: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while x.cmd_str(&["EXISTS", later]) != b":1\r\n" {
        assert!(Instant::now() < deadline, "{later} never appeared");
    }
    assert_eq!(
        y.cmd_str(&["EXISTS", earlier]),
        b":1\r\n",
        "{later} was visible before {earlier}, sent before it"
    );
}

/// A writer pipelines `SET {A}a:i` then `SET {B}b:i` (cores 0 and 1)
/// while core 0 is held up by a DEBUG SLEEP. Client X, on core 1, waits
/// for `b:i`; once it sees it, client Y, on core 0, reads `a:i`, which was
/// sent before: it must be there. (Had the cores run their parts of the
/// pipeline independently, core 1 would have written `b:i` during the
/// sleep, and Y's read, served by core 0 before the queued pipeline, would
/// find nothing.)
/// With `scripted`, each SET runs inside a script (EVALSHA: a script may
/// write though EVALSHA is not flagged as a write). `args`: more of the
/// server's. `reserved`: whether the pipelines run with the writer's core
/// holding its keys reserved while core 0 runs its part (INFO
/// `slotd_pipelines_reserved`), rather than core to core or under the
/// cores' locks.
fn pairs_become_visible_in_order(pairs: usize, scripted: bool, args: &[&str], reserved: bool) {
    let mut all = vec!["--shards", "2", "--enable-debug-command", "yes"];
    all.extend_from_slice(args);
    let s = Server::slotd(&all);
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
        seen_after(&mut x, &last_b, &mut y, &first_a);
        for _ in 0..2 * pairs {
            assert_eq!(writer.read_reply().unwrap(), b"+OK\r\n");
        }
        assert_eq!(sleeper.read_reply().unwrap(), b"+OK\r\n");
    }
    let count = info_field(&s, "slotd_pipelines_reserved");
    match reserved {
        true => assert!(count >= 3, "{count} pipelines ran with keys reserved"),
        false => assert_eq!(count, 0, "pipelines ran with keys reserved"),
    }
}

#[test]
fn short_runs_of_writes_become_visible_in_the_order_sent() {
    // 2 x 5 segments: the writer's core (1) holds its keys reserved while
    // core 0 sleeps on its part, also with the AOF on under `everysec`
    // (each core logs its part as one of a transaction across cores);
    // under `always`, core to core.
    pairs_become_visible_in_order(5, false, &[], true);
    pairs_become_visible_in_order(5, false, &["--appendonly", "yes"], true);
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    pairs_become_visible_in_order(5, false, &always, false);
}

#[test]
fn scripted_writes_become_visible_in_the_order_sent() {
    // A script may touch keys it did not declare: never reserved.
    pairs_become_visible_in_order(5, true, &[], false);
    pairs_become_visible_in_order(100, true, &[], false);
}

#[test]
fn long_runs_of_writes_become_visible_in_the_order_sent() {
    // 2 x 100 segments: reserved, also with the AOF on under `everysec`;
    // under `always`, under the cores' locks.
    pairs_become_visible_in_order(100, false, &[], true);
    pairs_become_visible_in_order(100, false, &["--appendonly", "yes"], true);
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    pairs_become_visible_in_order(100, false, &always, false);
}

/// A writer on core 0 pipelines `SET {A}a:<i>` then `SET {B}b:<i>`
/// (cores 0 and 1) while core 1 sleeps (DEBUG SLEEP), then core 0 sleeps
/// longer: core 0 holds its keys reserved, and core 1, awake first, runs
/// its part, whose answer waits for core 0. Client X on core 1 sees
/// `b:<last>`; client Y on core 0 then asks for `a:0`, sent before it:
/// Y's read is served when core 0 wakes, maybe before that answer, and
/// must wait for core 0's part rather than find nothing.
#[test]
fn reserved_keys_keep_the_first_core_part_from_readers_until_it_ran() {
    let s = Server::slotd(&["--shards", "2", "--enable-debug-command", "yes"]);
    let (a, b) = (tag_on(0), tag_on(1));
    let mut spare = Vec::new();
    let mut sleeper0 = connect_on(&s, 0, &mut spare);
    let mut sleeper1 = connect_on(&s, 1, &mut spare);
    let mut writer = connect_on(&s, 0, &mut spare);
    let mut x = connect_on(&s, 1, &mut spare);
    let mut y = connect_on(&s, 0, &mut spare);
    let pairs = 5;
    for round in 0..3 {
        sleeper1
            .send(&encode(&[b"DEBUG", b"SLEEP", b"0.2"]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let mut bytes = Vec::new();
        for i in 0..pairs {
            for k in [
                format!("{{{a}}}a:{round}:{i}"),
                format!("{{{b}}}b:{round}:{i}"),
            ] {
                bytes.extend_from_slice(&encode(&[b"SET", k.as_bytes(), b"1"]));
            }
        }
        writer.send(&bytes).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        sleeper0
            .send(&encode(&[b"DEBUG", b"SLEEP", b"0.5"]))
            .unwrap();
        // (`a:<r>:0` runs at once on the writer's core; the rest of the
        // pipeline starts with `b:<r>:0`, on core 1.)
        let last_b = format!("{{{b}}}b:{round}:{}", pairs - 1);
        let last_a = format!("{{{a}}}a:{round}:{}", pairs - 1);
        seen_after(&mut x, &last_b, &mut y, &last_a);
        for _ in 0..2 * pairs {
            assert_eq!(writer.read_reply().unwrap(), b"+OK\r\n");
        }
        assert_eq!(sleeper0.read_reply().unwrap(), b"+OK\r\n");
        assert_eq!(sleeper1.read_reply().unwrap(), b"+OK\r\n");
    }
    assert!(info_field(&s, "slotd_pipelines_reserved") >= 3);
}

/// A server of 2 shards where core 0 holds a key reserved for a while:
/// [`Reserving::pipeline`] puts core 1 to sleep, then has a writer on
/// core 0 pipeline a key of core 1 and then a key of core 0.
struct Reserving {
    s: Server,
    /// Hash tags of core 0 and core 1.
    a: String,
    b: String,
    spare: Vec<RawConn>,
    sleeper: RawConn,
    writer: RawConn,
}

impl Reserving {
    fn new() -> Reserving {
        let s = Server::slotd(&["--shards", "2", "--enable-debug-command", "yes"]);
        let mut spare = Vec::new();
        let sleeper = connect_on(&s, 1, &mut spare);
        let writer = connect_on(&s, 0, &mut spare);
        let (a, b) = (tag_on(0), tag_on(1));
        Reserving {
            s,
            a,
            b,
            spare,
            sleeper,
            writer,
        }
    }

    fn conn(&mut self, core: usize) -> RawConn {
        connect_on(&self.s, core, &mut self.spare)
    }

    /// Core 1 sleeps 0.3 s (DEBUG SLEEP); meanwhile the writer pipelines
    /// `SET <on1> <v>`, `SET <on0> <v>`. The pipeline starts with core
    /// 1's command (a pipeline that starts with its own core's runs those
    /// at once), so core 0 reserves `on0` and waits for core 1's part:
    /// reserved until core 1 wakes. Returns once the pipeline is sent.
    fn pipeline(&mut self, on1: &str, on0: &str, v: &str) {
        self.sleeper
            .send(&encode(&[b"DEBUG", b"SLEEP", b"0.3"]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let mut bytes = encode(&[b"SET", on1.as_bytes(), v.as_bytes()]);
        bytes.extend_from_slice(&encode(&[b"SET", on0.as_bytes(), v.as_bytes()]));
        self.writer.send(&bytes).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }

    /// The pipeline's replies, then the sleeper's.
    fn done(&mut self) {
        for _ in 0..2 {
            assert_eq!(self.writer.read_reply().unwrap(), b"+OK\r\n");
        }
        assert_eq!(self.sleeper.read_reply().unwrap(), b"+OK\r\n");
    }
}

/// A writer on core 0 pipelines `SET {B}b:<i>` and `SET {A}a:<i>` while
/// core 1 sleeps: core 0 reserves its keys and waits for core 1's part.
/// A client of core 0 reading `a:<i>` meanwhile is served once the
/// pipeline ran there: it waits for the reserved key rather than read
/// around the pipeline. (Nothing that
/// client saw could have shown it the pipeline's part on core 1; the
/// wait is what makes the pipeline all or nothing to every other client,
/// so that two pipelines over the same keys interleave only as commands
/// sent in order can.)
#[test]
fn a_key_reserved_by_a_pipeline_in_flight_is_read_after_the_pipeline() {
    let mut r = Reserving::new();
    let mut local = r.conn(0);
    for round in 0..3 {
        let (ak, bk) = (
            format!("{{{}}}a:{round}", r.a),
            format!("{{{}}}b:{round}", r.b),
        );
        r.pipeline(&bk, &ak, "1");
        assert_eq!(
            local.cmd_str(&["GET", &ak]),
            b"$1\r\n1\r\n",
            "round {round}"
        );
        r.done();
    }
    assert!(info_field(&r.s, "slotd_pipelines_reserved") >= 3);
}

/// A transaction across cores whose lock waits on a core where a
/// pipeline reserved keys runs there only once granted, after the
/// pipeline: never part of it before. The writer on core 0 pipelines
/// `SET <b> X`, `SET <a> X` (a on core 0, b on core 1) while core 1
/// sleeps, so core 0 holds `a` reserved; then a client of core 0 sends
/// `MSET <a> Y <b> Y`. Its lock on core 0 waits for the reservation, and
/// the coordinator sends its command right behind the lock: served at
/// once, it set `a` before the pipeline did and `b` after, leaving
/// `a` = X and `b` = Y, which neither order of the two gives.
#[test]
fn a_transaction_across_cores_runs_whole_after_a_reservation_it_meets() {
    let mut r = Reserving::new();
    let mut other = r.conn(0);
    for round in 0..3 {
        let (ak, bk) = (
            format!("{{{}}}a:{round}", r.a),
            format!("{{{}}}b:{round}", r.b),
        );
        r.pipeline(&bk, &ak, "X");
        let mset = encode(&[b"MSET", ak.as_bytes(), b"Y", bk.as_bytes(), b"Y"]);
        other.send(&mset).unwrap();
        r.done();
        assert_eq!(other.read_reply().unwrap(), b"+OK\r\n");
        let pair = (other.cmd_str(&["GET", &ak]), other.cmd_str(&["GET", &bk]));
        assert_eq!(pair.0, pair.1, "round {round}: a and b differ");
    }
    assert!(info_field(&r.s, "slotd_pipelines_reserved") >= 3);
}

/// A command that reads data without naming keys (SCAN) on a core where
/// a pipeline reserved keys is served after the pipeline, like a read
/// of a reserved key: it sees the key the pipeline creates there.
#[test]
fn a_scan_on_a_core_with_reserved_keys_is_served_after_the_pipeline() {
    let mut r = Reserving::new();
    let mut local = r.conn(0);
    for round in 0..3 {
        let (ak, bk) = (
            format!("{{{}}}new:{round}", r.a),
            format!("{{{}}}b:{round}", r.b),
        );
        r.pipeline(&bk, &ak, "1");
        let scan = local.cmd_str(&["SCAN", "0", "MATCH", &ak, "COUNT", "100000"]);
        let text = String::from_utf8_lossy(&scan).into_owned();
        assert!(text.contains(&ak), "round {round}: {text:?}");
        r.done();
    }
}

/// A client blocked on a key of a core where a pipeline reserved keys is
/// served after the pipeline, whatever key wakes it: a blocked command
/// may write a reserved key (BLMOVE's destination here).
#[test]
fn a_blocked_client_woken_while_keys_are_reserved_is_served_after_the_pipeline() {
    let mut r = Reserving::new();
    let mut pusher = r.conn(0);
    let mut blocked = r.conn(0);
    for round in 0..3 {
        let (src, dst) = (
            format!("{{{}}}src:{round}", r.a),
            format!("{{{}}}dst:{round}", r.a),
        );
        let blmove = [
            b"BLMOVE",
            src.as_bytes(),
            dst.as_bytes(),
            b"LEFT",
            b"LEFT",
            b"0",
        ];
        blocked.send(&encode(&blmove)).unwrap();
        let bk = format!("{{{}}}b:{round}", r.b);
        r.pipeline(&bk, &dst, "1");
        assert_eq!(pusher.cmd_str(&["LPUSH", &src, "v"]), b":1\r\n");
        blocked.set_read_timeout(Duration::from_millis(100));
        let early = blocked.read_reply();
        assert!(early.is_err(), "round {round}: served early: {early:?}");
        blocked.set_read_timeout(Duration::from_secs(10));
        // The pipeline made dst a string first: BLMOVE meets WRONGTYPE.
        let reply = blocked.read_reply().unwrap();
        assert!(reply.starts_with(b"-WRONGTYPE"), "round {round}: {reply:?}");
        r.done();
    }
}

/// Two writers pipeline the same two keys, at the same moment, round
/// after round. T, on core 0, sends `SET {B}p:<r> T`, `SET {A}x:<r> T`,
/// `SET {B}y:<r> T`; U, on core 1, sends `SET {A}q:<r> U`,
/// `SET {B}y:<r> U`, `SET {A}x:<r> U` ({A} on core 0, {B} on core 1).
/// Any interleaving of their commands in the order each sent them never
/// leaves x = T and y = U, which needs U's `y` before its `x`, before T's
/// `x`, before its `y`, before U's `y`. Each pipeline's core runs its
/// commands (T's `x`, U's `y`) after the other core has run the rest, so
/// without its keys reserved meanwhile both pipelines' other parts could
/// run first and leave exactly that. With them, a part that meets the
/// other writer's reservation is refused and its pipeline goes core to
/// core instead.
#[test]
fn pipelines_over_the_same_keys_interleave_only_as_commands_in_order() {
    let s = Server::slotd(&["--shards", "2"]);
    let (a, b) = (tag_on(0), tag_on(1));
    let mut spare = Vec::new();
    let rounds = 1000;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let mut writers = Vec::new();
    for (core, name) in [(0usize, "T"), (1, "U")] {
        let mut c = connect_on(&s, core, &mut spare);
        let (a, b) = (a.clone(), b.clone());
        let barrier = barrier.clone();
        writers.push(std::thread::spawn(move || {
            for r in 0..rounds {
                let (x, y) = (format!("{{{a}}}x:{r}"), format!("{{{b}}}y:{r}"));
                let keys = match core {
                    0 => [format!("{{{b}}}p:{r}"), x, y],
                    _ => [format!("{{{a}}}q:{r}"), y, x],
                };
                let mut bytes = Vec::new();
                for k in &keys {
                    bytes.extend_from_slice(&encode(&[b"SET", k.as_bytes(), name.as_bytes()]));
                }
                barrier.wait();
                for reply in run_pipeline(&mut c, &bytes, 3) {
                    assert_eq!(reply, b"+OK\r\n");
                }
            }
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    let mut seen = std::collections::BTreeMap::new();
    let mut c = s.raw();
    let mut get = |k: String| String::from_utf8_lossy(&c.cmd_str(&["GET", &k])).into_owned();
    for r in 0..rounds {
        let x = get(format!("{{{a}}}x:{r}"))
            .replace("$1\r\n", "")
            .trim()
            .to_string();
        let y = get(format!("{{{b}}}y:{r}"))
            .replace("$1\r\n", "")
            .trim()
            .to_string();
        assert!(
            !(x == "T" && y == "U"),
            "round {r}: x = T and y = U, which no interleaving of the commands gives"
        );
        *seen.entry(format!("{x}{y}")).or_insert(0) += 1;
    }
    let reserved = info_field(&s, "slotd_pipelines_reserved");
    let refused = info_field(&s, "slotd_pipelines_refused");
    println!("(x, y): {seen:?}; {reserved} pipelines reserved, {refused} refused");
    assert!(reserved > 0, "no pipeline ran with its keys reserved");
}

/// Two writers, one on each core, pipeline pairs `SET {A}w<i>:a:<n>` then
/// `SET {B}w<i>:b:<n>` (cores 0 and 1) with an INCR of a counter on each
/// core that both writers share, so each often finds its keys on the
/// other core reserved by the other writer (the part is refused and the
/// pipeline goes core to core), while a third client runs MSETs over
/// both cores (under the cores' locks, which wait for reserved keys). An
/// observer on each core checks that a `b` key never shows before its
/// `a` key; at the end the counters hold every INCR and nothing stalled.
#[test]
fn writers_on_both_cores_over_shared_keys_keep_order_and_lose_nothing() {
    let s = Server::slotd(&["--shards", "2"]);
    let (a, b) = (tag_on(0), tag_on(1));
    let mut spare = Vec::new();
    let rounds = 300;
    let pairs = 4;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..2usize {
        let mut c = connect_on(&s, w, &mut spare);
        let (a, b) = (a.clone(), b.clone());
        threads.push(std::thread::spawn(move || {
            for round in 0..rounds {
                let mut bytes = Vec::new();
                for i in 0..pairs {
                    let n = (round * pairs + i).to_string();
                    let ak = format!("{{{a}}}w{w}:a:{n}");
                    let bk = format!("{{{b}}}w{w}:b:{n}");
                    bytes.extend_from_slice(&encode(&[b"SET", ak.as_bytes(), b"1"]));
                    bytes.extend_from_slice(&encode(&[b"SET", bk.as_bytes(), b"1"]));
                }
                let (ca, cb) = (format!("{{{a}}}count"), format!("{{{b}}}count"));
                bytes.extend_from_slice(&encode(&[b"INCR", ca.as_bytes()]));
                bytes.extend_from_slice(&encode(&[b"INCR", cb.as_bytes()]));
                for (j, r) in run_pipeline(&mut c, &bytes, 2 * pairs + 2)
                    .into_iter()
                    .enumerate()
                {
                    let ok = if j < 2 * pairs {
                        r == b"+OK\r\n"
                    } else {
                        r.starts_with(b":")
                    };
                    assert!(ok, "writer {w}, reply {j}: {}", tests::show(&r));
                }
            }
        }));
    }
    let mut m = s.raw();
    let (ma, mb) = (format!("{{{a}}}m"), format!("{{{b}}}m"));
    let stop2 = stop.clone();
    let mset = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let v = n.to_string();
            let r = m.cmd_str(&["MSET", &ma, &v, &mb, &v]);
            assert_eq!(r, b"+OK\r\n");
            n += 1;
        }
        n
    });
    let mut observers = Vec::new();
    for core in 0..2usize {
        let mut x = connect_on(&s, core, &mut spare);
        let mut y = connect_on(&s, 1 - core, &mut spare);
        let (a, b) = (a.clone(), b.clone());
        let stop = stop.clone();
        observers.push(std::thread::spawn(move || {
            let mut checked = 0;
            let mut next = [0usize; 2];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (w, n) in next.iter_mut().enumerate() {
                    let bk = format!("{{{b}}}w{w}:b:{n}");
                    if x.cmd_str(&["EXISTS", &bk]) != b":1\r\n" {
                        continue;
                    }
                    let ak = format!("{{{a}}}w{w}:a:{n}");
                    assert_eq!(
                        y.cmd_str(&["EXISTS", &ak]),
                        b":1\r\n",
                        "{bk} was visible before {ak}, sent before it"
                    );
                    *n += 1;
                    checked += 1;
                }
            }
            checked
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let msets = mset.join().unwrap();
    let checked: usize = observers.into_iter().map(|o| o.join().unwrap()).sum();
    assert!(
        checked > 0 && msets > 0,
        "{checked} pairs checked, {msets} MSETs"
    );
    for tag in [&a, &b] {
        let count = s.cli(&["get", &format!("{{{tag}}}count")]);
        assert_eq!(count.trim(), (2 * rounds).to_string());
    }
    let reserved = info_field(&s, "slotd_pipelines_reserved");
    let refused = info_field(&s, "slotd_pipelines_refused");
    println!(
        "{reserved} pipelines reserved, {refused} refused, {checked} pairs checked, {msets} MSETs"
    );
    assert!(reserved > 0, "no pipeline ran with its keys reserved");
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
