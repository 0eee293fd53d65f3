//! Connections go where their keys are: with 2 shard cores, a connection
//! whose single-key commands keep going to the other core moves there
//! (INFO `slotd_connections_moved`, `slotd_shard_clients`), and the client
//! sees nothing of it: every reply right and in order (compared with
//! redis-server's, byte for byte), pipelined input in flight during the
//! move included; the same CLIENT ID and CLIENT LIST line, database and
//! protocol. Connections in a state that cannot travel (MULTI, WATCH,
//! subscriptions, tracking) and connections over random keys stay.

use std::time::Duration;
use tests::{encode, RawConn, Server};

/// Consecutive commands for one other core that move a connection
/// (`node::io::MOVE_AFTER`).
const MOVE_AFTER: usize = 64;

fn slot(key: &str) -> usize {
    let k = key.as_bytes();
    let h = match k.iter().position(|&b| b == b'{') {
        Some(s) => match k[s + 1..].iter().position(|&b| b == b'}') {
            Some(e) if e > 0 => &k[s + 1..s + 1 + e],
            _ => k,
        },
        None => k,
    };
    crc16::State::<crc16::XMODEM>::calculate(h) as usize & 16383
}

/// The core owning `key` with 2 shard cores.
fn core_of(key: &str) -> usize {
    slot(key) * 2 / 16384
}

/// A hashtag whose keys core `core` owns.
fn tag_on(core: usize) -> String {
    (0..)
        .map(|i| format!("t{i}"))
        .find(|t| core_of(&format!("{{{t}}}")) == core)
        .unwrap()
}

/// An INFO field, asked on connection `c` itself (so the counts include
/// no other connection).
fn field(c: &mut RawConn, section: &str, name: &str) -> String {
    let reply = c.cmd_str(&["INFO", section]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .to_string()
}

fn moved(c: &mut RawConn) -> u64 {
    field(c, "stats", "slotd_connections_moved")
        .parse()
        .unwrap()
}

/// Connections per core.
fn shard_clients(c: &mut RawConn) -> Vec<usize> {
    field(c, "clients", "slotd_shard_clients")
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The core serving `c`, the only connection of its server (once the
/// harness's start-up probe has been freed).
fn core_serving(c: &mut RawConn) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut counts = shard_clients(c);
    while counts.iter().sum::<usize>() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        counts = shard_clients(c);
    }
    assert_eq!(
        counts.iter().sum::<usize>(),
        1,
        "one connection: {counts:?}"
    );
    counts.iter().position(|&n| n == 1).unwrap()
}

fn two_cores() -> Server {
    Server::slotd(&["--shards", "2"])
}

/// Sends `args` to both and checks the replies are the same.
fn both(a: &mut RawConn, b: &mut RawConn, args: &[&str]) -> Vec<u8> {
    let x = a.cmd_str(args);
    let y = b.cmd_str(args);
    assert!(
        x == y,
        "slotd vs redis-server for {args:?}: {} vs {}",
        tests::show(&x),
        tests::show(&y)
    );
    x
}

/// A long pipeline on hashtag `tag`: SETs, GETs, INCRs and APPENDs whose
/// replies depend on every earlier one, so a reply lost, repeated or out
/// of order shows. Returns its RESP bytes and its command count.
fn pipeline(tag: &str, n: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut cmds = 0;
    for i in 0..n {
        let k = format!("{{{tag}}}:k{}", i % 300);
        let v = format!("v{i}-{}", "x".repeat(48));
        let ctr = format!("{{{tag}}}:ctr");
        let log = format!("{{{tag}}}:log");
        let i_s = i.to_string();
        for args in [
            vec!["SET", &k, &v],
            vec!["GET", &k],
            vec!["INCR", &ctr],
            vec!["APPEND", &log, &i_s],
        ] {
            let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
            out.extend_from_slice(&encode(&a));
            cmds += 1;
        }
    }
    (out, cmds)
}

/// Writes `bytes` to both in one write each (a thread writes to slotd so
/// a pipeline larger than the socket buffers cannot block), and checks
/// each of the `cmds` replies against redis-server's.
fn pipeline_both(a: &mut RawConn, b: &mut RawConn, bytes: &[u8], cmds: usize) {
    let mut w = a.stream().try_clone().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        w.write_all(&data).unwrap();
    });
    b.send(bytes).unwrap();
    for i in 0..cmds {
        let y = b.read_reply().unwrap();
        let x = a
            .read_reply()
            .unwrap_or_else(|e| panic!("reply {i} of {cmds}: {e}"));
        assert!(
            x == y,
            "reply {i} of {cmds}: {} vs {}",
            tests::show(&x),
            tests::show(&y)
        );
    }
    writer.join().unwrap();
}

#[test]
fn a_connection_hammering_another_cores_keys_moves_there_replies_right_and_in_order() {
    moves_mid_pipeline(two_cores());
}

/// Under `appendfsync always` replies wait for their fsync: a connection
/// moves only once none is held (they leave from the core that held them).
#[test]
fn a_connection_moves_under_appendfsync_always_with_every_reply_right() {
    moves_mid_pipeline(Server::slotd(&[
        "--shards",
        "2",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]));
}

fn moves_mid_pipeline(s: Server) {
    let r = Server::redis(&[]);
    let mut c = s.raw();
    let mut rc = r.raw();
    let home = core_serving(&mut c);
    let tag = tag_on(1 - home);
    // Just under the threshold one command at a time: no move yet.
    for i in 0..MOVE_AFTER - 1 {
        let k = format!("{{{tag}}}:s{i}");
        both(&mut c, &mut rc, &["SET", &k, &i.to_string()]);
    }
    assert_eq!(moved(&mut c), 0);
    assert_eq!(core_serving(&mut c), home);
    // Then a long pipeline in one write: the connection moves while most
    // of it is still unread (in its buffer or in the kernel).
    let (bytes, cmds) = pipeline(&tag, 3000);
    assert!(bytes.len() > 500_000);
    pipeline_both(&mut c, &mut rc, &bytes, cmds);
    assert_eq!(moved(&mut c), 1, "the connection moved once");
    assert_eq!(core_serving(&mut c), 1 - home);
    // It goes on right on its new core, single commands and pipelines.
    for i in 0..200 {
        let k = format!("{{{tag}}}:k{}", i % 7);
        both(&mut c, &mut rc, &["GET", &k]);
        both(&mut c, &mut rc, &["INCR", &format!("{{{tag}}}:ctr")]);
    }
    let (bytes, cmds) = pipeline(&tag, 500);
    pipeline_both(&mut c, &mut rc, &bytes, cmds);
    both(&mut c, &mut rc, &["GET", &format!("{{{tag}}}:log")]);
    assert_eq!(moved(&mut c), 1);
}

/// RESP bytes of `n` copies of `args`.
fn repeated(args: &[&str], n: usize) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    encode(&a).repeat(n)
}

/// Queue consumers go to their queue's core: XREADGROUP without BLOCK
/// travels like any single-key command (pipelined to the owner), BRPOP
/// through its blocking path, and both count for affinity. Every reply
/// matches redis-server's.
#[test]
fn stream_and_list_consumers_move_to_their_queues_core() {
    let s = two_cores();
    let r = Server::redis(&[]);
    let tag = {
        let mut c = s.raw();
        tag_on(1 - core_serving(&mut c))
    };
    let stream = format!("{{{tag}}}:s");
    let list = format!("{{{tag}}}:l");
    // The queues, filled on a connection that is gone by the time the
    // consumers connect.
    for srv in [&s, &r] {
        let mut p = srv.raw();
        let n = 300;
        let mut fill = Vec::new();
        for i in 1..=n {
            let id = format!("1-{i}");
            let v = format!("item{i}");
            for args in [
                vec!["XADD", &stream, &id, "f", &v],
                vec!["RPUSH", &list, &v],
            ] {
                let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
                fill.extend_from_slice(&encode(&a));
            }
        }
        p.send(&fill).unwrap();
        for _ in 0..2 * n {
            p.read_reply().unwrap();
        }
        assert_eq!(
            p.cmd_str(&["XGROUP", "CREATE", &stream, "g", "0"]),
            b"+OK\r\n"
        );
    }
    let read = [
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "1",
        "STREAMS",
        &stream,
        ">",
    ];
    // A stream consumer, on the other core, one read at a time, then a
    // pipeline of reads.
    let mut c = s.raw();
    let mut rc = r.raw();
    assert_eq!(core_serving(&mut c), 1 - core_of(&stream));
    // (The filling connection may have moved.)
    let base = moved(&mut c);
    for _ in 0..MOVE_AFTER + 8 {
        both(&mut c, &mut rc, &read);
    }
    let bytes = repeated(&read, 100);
    pipeline_both(&mut c, &mut rc, &bytes, 100);
    assert_eq!(moved(&mut c), base + 1, "the stream consumer moved");
    assert_eq!(core_serving(&mut c), core_of(&stream));
    both(&mut c, &mut rc, &["XPENDING", &stream, "g"]);
    drop(c);
    // A list consumer, on the other core too.
    let mut c = s.raw();
    assert_eq!(core_serving(&mut c), 1 - core_of(&list));
    for _ in 0..MOVE_AFTER + 8 {
        both(&mut c, &mut rc, &["BRPOP", &list, "0"]);
    }
    assert_eq!(moved(&mut c), base + 2, "the list consumer moved");
    assert_eq!(core_serving(&mut c), core_of(&list));
    let bytes = repeated(&["BRPOP", &list, "0"], 50);
    pipeline_both(&mut c, &mut rc, &bytes, 50);
    both(&mut c, &mut rc, &["LLEN", &list]);
}

#[test]
fn a_moved_connection_keeps_its_id_name_database_and_protocol() {
    let s = two_cores();
    let r = Server::redis(&[]);
    let mut c = s.raw();
    let mut rc = r.raw();
    let home = core_serving(&mut c);
    let tag = tag_on(1 - home);
    // A later client, placed on the other core.
    let mut other = s.raw();
    assert_eq!(shard_clients(&mut c)[1 - home], 1);
    let id = String::from_utf8(c.cmd_str(&["CLIENT", "ID"])).unwrap();
    c.cmd_str(&["CLIENT", "SETNAME", "mover"]);
    c.cmd_str(&["SELECT", "3"]);
    rc.cmd_str(&["SELECT", "3"]);
    for conn in [&mut c, &mut rc] {
        let hello = conn.cmd_str(&["HELLO", "3", "SETNAME", "mover"]);
        assert!(hello.starts_with(b"%7"), "{}", tests::show(&hello));
    }
    let before = String::from_utf8(c.cmd_str(&["CLIENT", "INFO"])).unwrap();
    for i in 0..MOVE_AFTER + 10 {
        let h = format!("{{{tag}}}:h{}", i % 5);
        both(&mut c, &mut rc, &["HSET", &h, "f", &i.to_string()]);
    }
    assert_eq!(moved(&mut c), 1);
    let mut counts = vec![0, 0];
    counts[1 - home] = 2;
    assert_eq!(shard_clients(&mut c), counts);
    // RESP3 replies (a map, a double, a null) and the database.
    both(&mut c, &mut rc, &["HGETALL", &format!("{{{tag}}}:h1")]);
    both(
        &mut c,
        &mut rc,
        &["ZADD", &format!("{{{tag}}}:z"), "1.5", "a"],
    );
    both(&mut c, &mut rc, &["ZSCORE", &format!("{{{tag}}}:z"), "a"]);
    both(&mut c, &mut rc, &["GET", &format!("{{{tag}}}:none")]);
    both(&mut c, &mut rc, &["DBSIZE"]);
    let id_after = String::from_utf8(c.cmd_str(&["CLIENT", "ID"])).unwrap();
    assert_eq!(id, id_after);
    let after = String::from_utf8(c.cmd_str(&["CLIENT", "INFO"])).unwrap();
    let pick = |line: &str, f: &str| -> String {
        line.split_whitespace()
            .map(|kv| kv.trim_start_matches("txt:"))
            .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
            .unwrap_or_default()
            .to_string()
    };
    for f in ["id", "addr", "laddr", "fd", "name", "db", "resp", "flags"] {
        assert_eq!(pick(&before, f), pick(&after, f), "CLIENT INFO {f}");
    }
    assert_eq!(pick(&after, "name"), "mover");
    assert_eq!(pick(&after, "db"), "3");
    assert_eq!(pick(&after, "resp"), "3");
    // CLIENT LIST from another connection finds it once, as it is.
    let list = String::from_utf8(other.cmd_str(&["CLIENT", "LIST"])).unwrap();
    let lines: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(&format!("id={} ", id.trim_start_matches(':').trim())))
        .collect();
    assert_eq!(lines.len(), 1, "{list}");
    // In id order, as Redis lists its clients, wherever each is served.
    let ids: Vec<u64> = list
        .lines()
        .filter_map(|l| pick(l, "id").parse().ok())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{list}");
    assert_eq!(pick(lines[0], "name"), "mover");
    assert_eq!(pick(lines[0], "db"), "3");
    // CLIENT KILL ID reaches it on its new core.
    let kill = other.cmd_str(&["CLIENT", "KILL", "ID", id.trim_start_matches(':').trim()]);
    assert_eq!(kill, b":1\r\n");
    assert!(c.is_closed(Duration::from_secs(5)));
}

/// Sends `n` GETs of keys of `tag` on `c`, one at a time.
fn hammer(c: &mut RawConn, tag: &str, n: usize) {
    for i in 0..n {
        let reply = c.cmd_str(&["GET", &format!("{{{tag}}}:g{i}")]);
        assert!(
            reply.starts_with(b"$-1") || reply.starts_with(b"_"),
            "{}",
            tests::show(&reply)
        );
    }
}

#[test]
fn connections_in_transactions_watching_subscribed_or_tracking_never_move() {
    let s = two_cores();
    let mut c = s.raw();
    let tag = tag_on(1 - core_serving(&mut c));
    // WATCH (and then MULTI/EXEC of many commands).
    c.cmd_str(&["WATCH", &format!("{{{tag}}}:w")]);
    hammer(&mut c, &tag, 3 * MOVE_AFTER);
    assert_eq!(c.cmd_str(&["MULTI"]), b"+OK\r\n");
    for i in 0..3 * MOVE_AFTER {
        c.cmd_str(&["SET", &format!("{{{tag}}}:m{i}"), "v"]);
    }
    let exec = c.cmd_str(&["EXEC"]);
    assert!(exec.starts_with(b"*192"), "{}", tests::show(&exec));
    assert_eq!(moved(&mut c), 0);
    drop(c);
    // Subscribed (RESP3, so commands may run).
    let mut c = s.raw();
    let tag = tag_on(1 - core_serving(&mut c));
    c.cmd_str(&["HELLO", "3"]);
    c.cmd_str(&["SUBSCRIBE", "news"]);
    hammer(&mut c, &tag, 3 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 0);
    c.cmd_str(&["UNSUBSCRIBE", "news"]);
    drop(c);
    // Tracking.
    let mut c = s.raw();
    let tag = tag_on(1 - core_serving(&mut c));
    c.cmd_str(&["HELLO", "3"]);
    c.cmd_str(&["CLIENT", "TRACKING", "ON"]);
    hammer(&mut c, &tag, 3 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 0);
    // Tracking off again: now it may move.
    c.cmd_str(&["CLIENT", "TRACKING", "OFF"]);
    hammer(&mut c, &tag, 3 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 1);
}

#[test]
fn random_keys_never_move_a_connection_and_a_moved_one_does_not_come_straight_back() {
    let s = two_cores();
    let mut c = s.raw();
    let home = core_serving(&mut c);
    // Keys without a hashtag spread over both cores.
    for i in 0..2000 {
        let k = format!("rand:{}", i * 7919 % 10007);
        c.cmd_str(&["SET", &k, "v"]);
    }
    assert_eq!(moved(&mut c), 0);
    assert_eq!(core_serving(&mut c), home);
    // Moves to the other core's keys ...
    let there = tag_on(1 - home);
    hammer(&mut c, &there, 2 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 1);
    assert_eq!(core_serving(&mut c), 1 - home);
    // ... and not straight back to the first core's.
    let back = tag_on(home);
    hammer(&mut c, &back, 4 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 1);
    assert_eq!(core_serving(&mut c), 1 - home);
    // After the pause between moves, it may.
    std::thread::sleep(Duration::from_millis(5200));
    hammer(&mut c, &back, 2 * MOVE_AFTER);
    assert_eq!(moved(&mut c), 2);
    assert_eq!(core_serving(&mut c), home);
}

#[test]
fn many_clients_moving_at_once_lose_no_reply_and_counts_stay_right() {
    let s = two_cores();
    let clients = 16;
    // Connected one by one, so each learns its core from the counts.
    let mut conns = Vec::new();
    let mut before = vec![0, 0];
    for _ in 0..clients {
        let mut c = s.raw();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut now = shard_clients(&mut c);
        while now.iter().sum::<usize>() != before.iter().sum::<usize>() + 1 {
            assert!(std::time::Instant::now() < deadline, "{now:?}");
            std::thread::sleep(Duration::from_millis(20));
            now = shard_clients(&mut c);
        }
        let core = (0..2).find(|&k| now[k] > before[k]).unwrap();
        before = now;
        conns.push((c, core));
    }
    // A quarter hammer their own core's keys, half the other core's, a
    // quarter write to both cores in turn first.
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, (mut c, core))| {
            std::thread::spawn(move || {
                let tag = match n % 4 {
                    0 | 1 => tag_on(1 - core),
                    _ => tag_on(core),
                };
                let ctr = format!("{{{tag}}}:ctr{n}");
                let mut expect = 0;
                for i in 0..MOVE_AFTER + 20 {
                    if n % 4 == 3 {
                        let k = format!("{{{}}}:spread{n}", tag_on(i % 2));
                        assert_eq!(c.cmd_str(&["SET", &k, "v"]), b"+OK\r\n");
                        continue;
                    }
                    expect += 1;
                    let r = c.cmd_str(&["INCR", &ctr]);
                    assert_eq!(r, format!(":{expect}\r\n").as_bytes());
                }
                for _ in 0..10 {
                    let mut bytes = Vec::new();
                    for _ in 0..300 {
                        bytes.extend_from_slice(&encode(&[b"INCR", ctr.as_bytes()]));
                    }
                    c.send(&bytes).unwrap();
                    for _ in 0..300 {
                        expect += 1;
                        let r = c.read_reply().unwrap();
                        assert_eq!(r, format!(":{expect}\r\n").as_bytes(), "client {n}");
                    }
                }
                (c, ctr, expect)
            })
        })
        .collect();
    let done: Vec<(RawConn, String, usize)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut admin = s.raw();
    // Exactly the clients hammering the other core's keys moved.
    assert_eq!(moved(&mut admin), (clients / 2) as u64);
    let counts = shard_clients(&mut admin);
    assert_eq!(counts.iter().sum::<usize>(), clients + 1, "{counts:?}");
    let connected = field(&mut admin, "clients", "connected_clients");
    assert_eq!(connected, (clients + 1).to_string());
    // Every counter holds what its client counted.
    for (_, ctr, expect) in &done {
        let v = admin.cmd_str(&["GET", ctr]);
        let want = expect.to_string();
        assert_eq!(v, format!("${}\r\n{want}\r\n", want.len()).as_bytes());
    }
    // Closed, moved or not, they leave the counts.
    drop(done);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let counts = shard_clients(&mut admin);
        if counts.iter().sum::<usize>() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{counts:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(field(&mut admin, "clients", "connected_clients"), "1");
}
#[test]
fn a_moved_connection_is_still_closed_by_timeout() {
    let s = two_cores();
    let mut c = s.raw();
    let tag = tag_on(1 - core_serving(&mut c));
    hammer(&mut c, &tag, MOVE_AFTER + 5);
    assert_eq!(moved(&mut c), 1);
    assert_eq!(c.cmd_str(&["CONFIG", "SET", "timeout", "1"]), b"+OK\r\n");
    assert!(c.is_closed(Duration::from_secs(5)));
    // (Freed once its last completions are in.)
    let mut other = s.raw();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while field(&mut other, "clients", "connected_clients") != "1" {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(shard_clients(&mut other).iter().sum::<usize>(), 1);
}
