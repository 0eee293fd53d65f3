//! Byte scripts against the state machine.

use super::*;

const ID: &str = "8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f";
const ID2: &str = "0123456789abcdef0123456789abcdef01234567";
const MARK: &str = "ab4e2f7c9d1b3a5c6e8f0a2b4c6d8e0f1a3b5c7d";

/// What `received` returns, without the [`Action::Proxy`] copies of the
/// stream (`proxied_bytes_are_the_stream_as_sent` checks those).
fn rx(r: &mut Replica, now: u64, data: &[u8]) -> Vec<Action> {
    let mut a = r.received(now, data);
    a.retain(|a| !matches!(a, Action::Proxy { .. }));
    a
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode(&args)
}

fn send(args: &[&str]) -> Action {
    Action::Send(cmd(args))
}

fn command(args: &[&str], offset_after: i64) -> Action {
    Action::Command {
        argv: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        offset_after,
    }
}

fn ack(off: i64) -> Action {
    send(&["REPLCONF", "ACK", &off.to_string()])
}

fn err_close(r: &[Action]) -> Option<&str> {
    match r {
        [.., Action::Error(m), Action::Close] => Some(m),
        _ => None,
    }
}

fn no_cache() -> Action {
    Action::Notice("Partial resynchronization not possible (no cached master)".into())
}

fn trying(id: &str, off: i64) -> Action {
    Action::Notice(format!(
        "Trying a partial resynchronization (request {id}:{off})."
    ))
}

/// Through the handshake without auth, up to the PSYNC reply.
fn handshaken(cfg: Config) -> Replica {
    let mut r = Replica::new(cfg);
    r.connected(0);
    rx(&mut r, 0, b"+PONG\r\n");
    rx(&mut r, 0, b"+OK\r\n+OK\r\n");
    r
}

/// Adjacent RDB chunks joined: the same exchange split differently gives
/// the same normalized actions.
fn normalize(actions: Vec<Action>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for a in actions {
        if let (Some(Action::RdbChunk(prev)), Action::RdbChunk(next)) = (out.last_mut(), &a) {
            prev.extend_from_slice(next);
            continue;
        }
        out.push(a);
    }
    out
}

#[test]
fn handshake_order_without_auth() {
    let mut r = Replica::new(Config::new(6380));
    assert_eq!(r.connected(5), vec![send(&["PING"])]);
    assert_eq!(
        rx(&mut r, 5, b"+PONG\r\n"),
        vec![
            send(&["REPLCONF", "listening-port", "6380"]),
            send(&["REPLCONF", "capa", "eof", "capa", "psync2"]),
        ]
    );
    assert_eq!(rx(&mut r, 5, b"+OK\r\n"), vec![]);
    assert_eq!(
        rx(&mut r, 5, b"+OK\r\n"),
        vec![no_cache(), send(&["PSYNC", "?", "-1"])]
    );
}

#[test]
fn handshake_with_user_password_and_announce_ip() {
    let mut cfg = Config::new(7000);
    cfg.masteruser = Some(b"repl".to_vec());
    cfg.masterauth = Some(b"s3cret".to_vec());
    cfg.announce_ip = Some(b"10.0.0.9".to_vec());
    let mut r = Replica::new(cfg);
    assert_eq!(r.connected(0), vec![send(&["PING"])]);
    // -NOAUTH to PING: replication can continue.
    assert_eq!(
        rx(&mut r, 0, b"-NOAUTH Authentication required.\r\n"),
        vec![
            send(&["AUTH", "repl", "s3cret"]),
            send(&["REPLCONF", "listening-port", "7000"]),
            send(&["REPLCONF", "ip-address", "10.0.0.9"]),
            send(&["REPLCONF", "capa", "eof", "capa", "psync2"]),
        ]
    );
    // Errors to REPLCONF are not critical.
    let r2 = rx(
        &mut r,
        0,
        b"+OK\r\n-ERR Unrecognized REPLCONF option: listening-port\r\n+OK\r\n-ERR x\r\n",
    );
    assert_eq!(r2, vec![no_cache(), send(&["PSYNC", "?", "-1"])]);
}

#[test]
fn auth_without_user() {
    let mut cfg = Config::new(1);
    cfg.masterauth = Some(b"pw".to_vec());
    let mut r = Replica::new(cfg);
    r.connected(0);
    let a = rx(&mut r, 0, b"-NOPERM x\r\n");
    assert_eq!(a[0], send(&["AUTH", "pw"]));
}

#[test]
fn ping_replies() {
    for ok in [
        &b"+PONG\r\n"[..],
        b"+anything\n",
        b"-ERR operation not permitted\r\n",
    ] {
        let mut r = Replica::new(Config::new(1));
        r.connected(0);
        assert_eq!(rx(&mut r, 0, ok).len(), 2, "{ok:?}");
    }
    for (bad, msg) in [
        (
            &b"-ERR unknown command\r\n"[..],
            "Error reply to PING from master: '-ERR unknown command'",
        ),
        (b"\r\n", "Error reply to PING from master: ''"),
        (b":1\r\n", "Error reply to PING from master: ':1'"),
    ] {
        let mut r = Replica::new(Config::new(1));
        r.connected(0);
        let a = rx(&mut r, 0, bad);
        assert_eq!(err_close(&a), Some(msg));
        // The link is gone: nothing more is read.
        assert_eq!(rx(&mut r, 0, b"+PONG\r\n"), vec![]);
    }
}

#[test]
fn auth_error_aborts() {
    let mut cfg = Config::new(1);
    cfg.masterauth = Some(b"bad".to_vec());
    let mut r = Replica::new(cfg);
    r.connected(0);
    rx(&mut r, 0, b"+PONG\r\n");
    let a = rx(
        &mut r,
        0,
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n",
    );
    assert_eq!(
        err_close(&a),
        Some("Unable to AUTH to MASTER: -WRONGPASS invalid username-password pair or user is disabled.")
    );
}

#[test]
fn full_resync_disk_framing_then_stream() {
    let mut r = handshaken(Config::new(1));
    let mut script = Vec::new();
    script.extend_from_slice(b"\n\n"); // keepalives before the PSYNC reply
    script.extend_from_slice(format!("+FULLRESYNC {ID} 1000\r\n").as_bytes());
    script.extend_from_slice(b"\n\n\n"); // keepalives while the RDB is made
    script.extend_from_slice(b"$7\r\nREDIS00");
    let set = cmd(&["SET", "k", "v"]);
    script.extend_from_slice(&set);
    let a = rx(&mut r, 10, &script);
    let off = 1000 + set.len() as i64;
    assert_eq!(
        a,
        vec![
            Action::FullSync {
                replid: Some(ID.into()),
                offset: 1000
            },
            Action::RdbStart { len: Some(7) },
            Action::RdbChunk(b"REDIS00".to_vec()),
            Action::RdbDone,
            command(&["SET", "k", "v"], off),
        ]
    );
    assert!(r.is_streaming());
    assert_eq!(r.offset(), off);
    assert_eq!(
        r.resume_point(),
        Some(Resume {
            replid: ID.into(),
            offset: off,
            db: 0,
        })
    );
}

#[test]
fn diskless_eof_framing_acks_at_once() {
    let mut r = handshaken(Config::new(1));
    let mut script = format!("+FULLRESYNC {ID} 50\r\n$EOF:{MARK}\r\n").into_bytes();
    let payload = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xff12345678".to_vec();
    script.extend_from_slice(&payload);
    script.extend_from_slice(MARK.as_bytes());
    let a = normalize(rx(&mut r, 0, &script));
    assert_eq!(
        a,
        vec![
            Action::FullSync {
                replid: Some(ID.into()),
                offset: 50
            },
            Action::RdbStart { len: None },
            Action::RdbChunk(payload),
            Action::RdbDone,
            ack(50),
        ]
    );
}

#[test]
fn diskless_mark_split_anywhere() {
    let payload: Vec<u8> = (0..200u8).collect();
    let mut script = format!("$EOF:{MARK}\r\n").into_bytes();
    script.extend_from_slice(&payload);
    script.extend_from_slice(MARK.as_bytes());
    script.extend_from_slice(&cmd(&["PING"]));
    for size in [1, 3, 39, 40, 41, 100] {
        let mut r = handshaken(Config::new(1));
        rx(&mut r, 0, format!("+FULLRESYNC {ID} 0\r\n").as_bytes());
        let mut a = Vec::new();
        for c in script.chunks(size) {
            a.extend(rx(&mut r, 0, c));
        }
        assert_eq!(
            normalize(a),
            vec![
                Action::RdbStart { len: None },
                Action::RdbChunk(payload.clone()),
                Action::RdbDone,
                ack(0),
                command(&["PING"], 14),
            ],
            "chunks of {size}"
        );
    }
}

#[test]
fn empty_rdb_and_short_eof_header() {
    let mut r = handshaken(Config::new(1));
    let a = rx(
        &mut r,
        0,
        format!("+FULLRESYNC {ID} 3\r\n$0\r\n").as_bytes(),
    );
    assert_eq!(a[1..], [Action::RdbStart { len: Some(0) }, Action::RdbDone]);
    // `$EOF:` with a short mark is read as a length, which it is not.
    let mut r = handshaken(Config::new(1));
    let a = rx(
        &mut r,
        0,
        format!("+FULLRESYNC {ID} 3\r\n$EOF:abc\r\n").as_bytes(),
    );
    assert_eq!(
        err_close(&a),
        Some("Bad protocol from MASTER: invalid RDB length '$EOF:abc'")
    );
}

#[test]
fn bulk_header_errors() {
    for (line, msg) in [
        (
            &b"-ERR BGSAVE failed\r\n"[..],
            "MASTER aborted replication with an error: ERR BGSAVE failed".to_string(),
        ),
        (
            b"+OK\r\n",
            "Bad protocol from MASTER, the first byte is not '$' (we received '+OK'), are you sure the host and port are right?".to_string(),
        ),
        (
            b"$-5\r\n",
            "Bad protocol from MASTER: invalid RDB length '$-5'".to_string(),
        ),
    ] {
        let mut r = handshaken(Config::new(1));
        rx(&mut r, 0, format!("+FULLRESYNC {ID} 0\r\n").as_bytes());
        let a = rx(&mut r, 0, line);
        assert_eq!(err_close(&a), Some(msg.as_str()));
    }
}

#[test]
fn psync_with_cached_master_and_continue() {
    let mut cfg = Config::new(1);
    cfg.resume = Some(Resume {
        replid: ID.into(),
        offset: 99,
        db: 0,
    });
    let mut r = Replica::new(cfg);
    r.connected(0);
    rx(&mut r, 0, b"+PONG\r\n");
    let a = rx(&mut r, 0, b"+OK\r\n+OK\r\n");
    assert_eq!(a, vec![trying(ID, 100), send(&["PSYNC", ID, "100"])]);
    let set = cmd(&["SET", "a", "1"]);
    let mut script = b"+CONTINUE\r\n".to_vec();
    script.extend_from_slice(&set);
    let a = rx(&mut r, 0, &script);
    assert_eq!(
        a,
        vec![
            Action::PartialSync {
                replid: ID.into(),
                offset: 99
            },
            command(&["SET", "a", "1"], 99 + set.len() as i64),
        ]
    );
}

#[test]
fn continue_with_new_replid() {
    let mut cfg = Config::new(1);
    cfg.resume = Some(Resume {
        replid: ID.into(),
        offset: 10,
        db: 0,
    });
    let mut r = handshaken(cfg);
    let a = rx(&mut r, 0, format!("+CONTINUE {ID2}\r\n").as_bytes());
    assert_eq!(
        a,
        vec![Action::PartialSync {
            replid: ID2.into(),
            offset: 10
        }]
    );
    assert_eq!(r.resume_point().map(|p| p.replid), Some(ID2.to_string()));
    // The next link offers the new ID.
    r.closed();
    r.connected(1);
    rx(&mut r, 1, b"+PONG\r\n");
    assert_eq!(
        rx(&mut r, 1, b"+OK\r\n+OK\r\n"),
        vec![trying(ID2, 11), send(&["PSYNC", ID2, "11"])]
    );
}

#[test]
fn continue_without_cache_is_an_error() {
    let mut r = handshaken(Config::new(1));
    let a = rx(&mut r, 0, b"+CONTINUE\r\n");
    assert!(err_close(&a).is_some());
}

#[test]
fn psync_try_later() {
    for reply in [
        "-NOMASTERLINK Can't SYNC while not connected with my master",
        "-LOADING Redis is loading the dataset in memory",
    ] {
        let mut r = handshaken(Config::new(1));
        let a = rx(&mut r, 0, format!("{reply}\r\n").as_bytes());
        assert_eq!(
            err_close(&a),
            Some(
                format!("Master is currently unable to PSYNC but should be in the future: {reply}")
                    .as_str()
            )
        );
    }
}

#[test]
fn psync_refused_falls_back_to_sync() {
    for reply in ["-ERR unknown command 'PSYNC'", "+OK"] {
        let mut r = handshaken(Config::new(1));
        let a = rx(&mut r, 0, format!("{reply}\r\n").as_bytes());
        assert_eq!(
            a,
            vec![
                Action::Send(b"SYNC\r\n".to_vec()),
                Action::FullSync {
                    replid: None,
                    offset: -1
                }
            ]
        );
        let ping = cmd(&["PING"]);
        let mut script = b"\n$3\r\nabc".to_vec();
        script.extend_from_slice(&ping);
        let a = rx(&mut r, 0, &script);
        assert_eq!(a[3], command(&["PING"], -1 + ping.len() as i64));
        // A pre-PSYNC master gets no periodic ACK, and nothing to resume.
        assert_eq!(r.tick(5000), vec![]);
        assert_eq!(r.resume_point(), None);
        // GETACK is still answered.
        let a = rx(&mut r, 5000, &cmd(&["REPLCONF", "GETACK", "*"]));
        assert_eq!(a, vec![ack(-1 + ping.len() as i64)]);
    }
}

#[test]
fn malformed_fullresync_has_no_replid() {
    for line in ["+FULLRESYNC", "+FULLRESYNC abc 5", "+FULLRESYNC {ID}"] {
        let line = line.replace("{ID}", ID);
        let mut r = handshaken(Config::new(1));
        let a = rx(&mut r, 0, format!("{line}\r\n").as_bytes());
        assert_eq!(
            a,
            vec![Action::FullSync {
                replid: None,
                offset: -1
            }],
            "{line}"
        );
    }
    // strtoll reads the offset's leading digits.
    assert_eq!(
        parse_fullresync(format!("+FULLRESYNC {ID} 12x").as_bytes()),
        (Some(ID.into()), 12)
    );
    assert_eq!(
        parse_fullresync(format!("+FULLRESYNC {ID} 99999999999999999999999").as_bytes()),
        (Some(ID.into()), i64::MAX)
    );
}

/// A stream past a full sync at offset 0.
fn streaming() -> Replica {
    let mut r = handshaken(Config::new(1));
    rx(
        &mut r,
        0,
        format!("+FULLRESYNC {ID} 0\r\n$0\r\n").as_bytes(),
    );
    assert!(r.is_streaming());
    r
}

#[test]
fn getack_answers_the_offset_before_it() {
    let mut r = streaming();
    let set = cmd(&["SET", "k", "v"]);
    let getack = cmd(&["REPLCONF", "GETACK", "*"]);
    let mut script = set.clone();
    script.extend_from_slice(&getack);
    let a = rx(&mut r, 1, &script);
    let off = set.len() as i64;
    assert_eq!(a, vec![command(&["SET", "k", "v"], off), ack(off)]);
    // The GETACK itself counts from then on.
    assert_eq!(r.offset(), off + getack.len() as i64);
    let a = rx(&mut r, 1, &cmd(&["replconf", "getack", "*"]));
    assert_eq!(a, vec![ack(off + getack.len() as i64)]);
    // Arity errors and other options send nothing, but count.
    let before = r.offset();
    let odd = cmd(&["REPLCONF", "GETACK"]);
    assert_eq!(rx(&mut r, 1, &odd), vec![]);
    assert_eq!(r.offset(), before + odd.len() as i64);
    assert_eq!(rx(&mut r, 1, &cmd(&["REPLCONF", "ACK", "5"])), vec![]);
    let capa_then_getack = cmd(&["REPLCONF", "capa", "eof", "getack", "*"]);
    assert_eq!(rx(&mut r, 1, &capa_then_getack).len(), 1);
}

#[test]
fn multi_offsets_move_at_exec() {
    let mut r = streaming();
    let parts = [
        cmd(&["MULTI"]),
        cmd(&["INCR", "c"]),
        cmd(&["REPLCONF", "GETACK", "*"]),
        cmd(&["EXEC"]),
    ];
    let mut a = Vec::new();
    for p in &parts {
        a.extend(rx(&mut r, 1, p));
        if p == &parts[1] {
            // An ACK in the middle of the transaction reports its start.
            assert_eq!(r.tick(2000), vec![ack(0)]);
        }
    }
    let total: i64 = parts.iter().map(|p| p.len() as i64).sum();
    assert_eq!(
        a,
        vec![
            command(&["MULTI"], 0),
            command(&["INCR", "c"], 0),
            command(&["EXEC"], total),
        ]
    );
    let a = rx(&mut r, 1, &[cmd(&["MULTI"]), cmd(&["DISCARD"])].concat());
    let discard = total + (cmd(&["MULTI"]).len() + cmd(&["DISCARD"]).len()) as i64;
    assert_eq!(a[1], command(&["DISCARD"], discard));
}

#[test]
fn keepalives_and_empty_multibulk_count_with_the_next_command() {
    let mut r = streaming();
    let ping = cmd(&["PING"]);
    let mut script = b"\n\r\n*0\r\n*-1\r\n".to_vec();
    script.extend_from_slice(&ping);
    let a = rx(&mut r, 1, &script);
    assert_eq!(a, vec![command(&["PING"], script.len() as i64)]);
    let a = rx(&mut r, 1, b"\n");
    assert_eq!(a, vec![]);
    assert_eq!(r.offset(), script.len() as i64);
}

#[test]
fn garbage_in_the_stream_drops_the_cached_master() {
    for (bad, msg) in [
        (&b"SET k v\r\n"[..], "Receiving inline protocol from master, master stream corruption? Closing the master connection and discarding the cached master."),
        (b"*x\r\n", "Protocol error (invalid multibulk length) from MASTER"),
        (b"*1\r\n:1\r\n", "Protocol error (expected '$', got ':') from MASTER"),
        (b"*1\r\n$3\r\nabcde", "Protocol error (invalid bulk length) from MASTER"),
    ] {
        let mut r = streaming();
        assert!(r.resume_point().is_some());
        let a = rx(&mut r, 1, bad);
        assert_eq!(err_close(&a), Some(msg), "{bad:?}");
        assert_eq!(r.resume_point(), None);
        r.connected(2);
        rx(&mut r, 2, b"+PONG\r\n+OK\r\n");
        assert_eq!(rx(&mut r, 2, b"+OK\r\n"), vec![no_cache(), send(&["PSYNC", "?", "-1"])]);
    }
}

#[test]
fn long_lines_are_refused() {
    let mut r = Replica::new(Config::new(1));
    r.connected(0);
    let a = rx(&mut r, 0, &[b'+'; LINE_MAX + 1]);
    assert!(err_close(&a).is_some());
    let mut r = streaming();
    let a = rx(&mut r, 0, &vec![b' '; INLINE_MAX + 1]);
    assert_eq!(
        err_close(&a),
        Some("Protocol error (too big inline request) from MASTER")
    );
}

#[test]
fn timeouts_in_each_phase() {
    let mut cfg = Config::new(1);
    cfg.repl_timeout_ms = 60_000;
    let mut r = Replica::new(cfg.clone());
    r.connected(1000);
    assert_eq!(r.tick(61_000), vec![]);
    assert_eq!(
        err_close(&r.tick(61_001)),
        Some("Timeout connecting to the MASTER...")
    );
    let mut r = handshaken(cfg.clone());
    rx(
        &mut r,
        0,
        format!("+FULLRESYNC {ID} 0\r\n$100\r\n").as_bytes(),
    );
    rx(&mut r, 30_000, b"\x00\x01");
    assert_eq!(r.tick(90_000), vec![]);
    assert_eq!(
        err_close(&r.tick(90_001)),
        Some("Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.")
    );
    let mut r = streaming();
    rx(&mut r, 10_000, &cmd(&["PING"]));
    assert_eq!(r.tick(70_000), vec![ack(14)]);
    let a = r.tick(70_001);
    assert_eq!(
        err_close(&a),
        Some("MASTER timeout: no data nor PING received...")
    );
    // A timed-out link is resumable.
    assert_eq!(r.resume_point().map(|p| p.offset), Some(14));
    assert_eq!(r.tick(80_000), vec![]);
}

#[test]
fn ack_every_second() {
    let mut r = streaming();
    assert_eq!(r.tick(500), vec![]);
    assert_eq!(r.tick(1000), vec![ack(0)]);
    assert_eq!(r.tick(1500), vec![]);
    rx(&mut r, 1600, &cmd(&["PING"]));
    assert_eq!(r.tick(2000), vec![ack(14)]);
    r.closed();
    assert_eq!(r.tick(3000), vec![]);
    assert_eq!(rx(&mut r, 3000, &cmd(&["PING"])), vec![]);
}

/// A whole exchange in a 7.0 master's framing: replies with keepalives, a
/// tiny diskless RDB, then a stream with SELECT, a transaction and a GETACK
/// (`tests/interop.rs` replays bytes captured from a real master the same
/// way).
fn exchange() -> Vec<u8> {
    let mut s = b"+PONG\r\n+OK\r\n+OK\r\n\n".to_vec();
    s.extend_from_slice(format!("+FULLRESYNC {ID} 14\r\n\n\n").as_bytes());
    let rdb = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x01\x00\x00\x01k\x01v\xff\x00\x01\x02\x03\x04\x05\x06\x07";
    s.extend_from_slice(format!("$EOF:{MARK}\r\n").as_bytes());
    s.extend_from_slice(rdb);
    s.extend_from_slice(MARK.as_bytes());
    for c in [
        cmd(&["SELECT", "0"]),
        cmd(&["SET", "k", "v2"]),
        cmd(&["MULTI"]),
        cmd(&["INCR", "n"]),
        cmd(&["PEXPIREAT", "k", "1700000000000"]),
        cmd(&["EXEC"]),
        cmd(&["PING"]),
        cmd(&["REPLCONF", "GETACK", "*"]),
        cmd(&["DEL", "k"]),
    ] {
        s.extend_from_slice(&c);
    }
    s
}

#[test]
fn split_reads_at_every_byte_boundary() {
    let script = exchange();
    let run = |pieces: &[&[u8]]| {
        let mut r = Replica::new(Config::new(6380));
        let mut a = r.connected(0);
        for p in pieces {
            a.extend(rx(&mut r, 0, p));
        }
        (normalize(a), r.offset())
    };
    let whole = run(&[&script]);
    // The whole exchange reached its end, acks included.
    assert!(whole.0.contains(&ack(14)));
    assert!(matches!(whole.0.last(), Some(Action::Command { argv, .. }) if argv[0] == b"DEL"));
    assert!(!whole.0.iter().any(|a| matches!(a, Action::Error(_))));
    for cut in 0..=script.len() {
        assert_eq!(
            run(&[&script[..cut], &script[cut..]]),
            whole,
            "cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    assert_eq!(run(&bytes), whole);
    let threes: Vec<&[u8]> = script.chunks(3).collect();
    assert_eq!(run(&threes), whole);
}

#[test]
fn garbage_never_panics() {
    // A deterministic generator: mutations of the exchange and random bytes.
    let script = exchange();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut s = script.clone();
        if round % 3 == 0 {
            s = (0..(next() % 300)).map(|_| next() as u8).collect();
        } else {
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % s.len();
                s[i] = next() as u8;
            }
        }
        let mut r = Replica::new(Config::new(1));
        r.connected(0);
        let size = 1 + (next() % 50) as usize;
        for c in s.chunks(size) {
            rx(&mut r, 1, c);
            r.tick(next() % 200_000);
        }
    }
}

#[test]
fn the_resume_point_keeps_the_selected_database() {
    let mut cfg = Config::new(1);
    cfg.resume = Some(Resume {
        replid: ID.into(),
        offset: 10,
        db: 3,
    });
    let mut r = handshaken(cfg);
    rx(&mut r, 0, b"+CONTINUE\r\n");
    assert_eq!(r.db(), 3);
    rx(&mut r, 0, &cmd(&["SELECT", "5"]));
    assert_eq!(r.db(), 5);
    // A SELECT inside MULTI selects at EXEC; a link lost before it
    // leaves the database as it was.
    rx(&mut r, 0, &cmd(&["MULTI"]));
    rx(&mut r, 0, &cmd(&["SELECT", "7"]));
    assert_eq!(r.db(), 5);
    rx(&mut r, 0, &cmd(&["EXEC"]));
    assert_eq!(r.db(), 7);
    rx(&mut r, 0, &cmd(&["MULTI"]));
    rx(&mut r, 0, &cmd(&["SELECT", "1"]));
    r.closed();
    assert_eq!(r.resume_point().map(|p| p.db), Some(7));
}

/// The proxied bytes are exactly the stream the master sent, cut where the
/// offset moves: keepalives and empty multibulks go with the next command,
/// `REPLCONF GETACK` and `PING` are included, a `MULTI` comes whole with
/// its `EXEC`; a link that ends inside `MULTI` drops what it held and says
/// so once.
#[test]
fn proxied_bytes_are_the_stream_as_sent() {
    let mut r = streaming();
    let parts = [
        b"\n".to_vec(),
        cmd(&["SET", "k", "v"]),
        b"*0\r\n".to_vec(),
        cmd(&["REPLCONF", "GETACK", "*"]),
        cmd(&["PING"]),
        cmd(&["MULTI"]),
        cmd(&["INCR", "c"]),
        cmd(&["EXEC"]),
    ];
    let all = parts.concat();
    for split in [1, 3, 7, all.len()] {
        let mut r2 = streaming();
        let mut got = Vec::new();
        let mut offsets = Vec::new();
        for piece in all.chunks(split) {
            for a in r2.received(1, piece) {
                if let Action::Proxy { bytes, offset } = a {
                    got.extend_from_slice(&bytes);
                    assert_eq!(offset, got.len() as i64);
                    offsets.push(offset);
                }
            }
        }
        assert_eq!(got, all, "split {split}");
        // Never inside the transaction.
        let multi_at = parts[..5].concat().len() as i64;
        assert!(!offsets
            .iter()
            .any(|&o| o > multi_at && o < all.len() as i64));
        assert_eq!(r2.offset(), all.len() as i64);
    }
    // A link lost inside MULTI: nothing of it is proxied, the flag is set
    // once, and the next stream's bytes start at the MULTI.
    let mut got = Vec::new();
    for a in r.received(
        1,
        &[
            cmd(&["SET", "a", "1"]),
            cmd(&["MULTI"]),
            cmd(&["INCR", "c"]),
        ]
        .concat(),
    ) {
        if let Action::Proxy { bytes, .. } = a {
            got.extend(bytes);
        }
    }
    assert_eq!(got, cmd(&["SET", "a", "1"]));
    assert!(!r.take_aborted_multi());
    r.closed();
    assert!(r.take_aborted_multi());
    assert!(!r.take_aborted_multi());
    assert_eq!(r.offset(), got.len() as i64);
}

/// Found by `fuzz_tests::fullresync_with_any_offset`: an offset near
/// `i64::MAX` overflowed at the first command (a panic in debug builds).
#[test]
fn fullresync_offset_past_offset_max_is_refused() {
    let mut r = handshaken(Config::new(1));
    let mut s = format!("+FULLRESYNC {ID} 9223372036854775807\r\n$0\r\n").into_bytes();
    s.extend_from_slice(&cmd(&["PING"]));
    let a = rx(&mut r, 0, &s);
    assert_eq!(
        err_close(&a),
        Some(
            format!("Bad protocol from MASTER: replication offset out of range in '+FULLRESYNC {ID} 9223372036854775807'")
                .as_str()
        )
    );
    assert!(!a.iter().any(|a| matches!(a, Action::FullSync { .. })));
    assert_eq!((r.offset(), r.resume_point()), (-1, None));
    // At the limit it is followed, and the stream stops before passing it.
    let mut r = handshaken(Config::new(1));
    let start = OFFSET_MAX - 14;
    let s = format!("+FULLRESYNC {ID} {start}\r\n$0\r\n");
    rx(&mut r, 0, s.as_bytes());
    let ping = cmd(&["PING"]);
    assert_eq!(rx(&mut r, 0, &ping), vec![command(&["PING"], OFFSET_MAX)]);
    let a = rx(&mut r, 0, b"\n");
    assert_eq!(
        err_close(&a),
        Some("Bad protocol from MASTER: the replication offset would pass 4611686018427387903")
    );
    assert_eq!((r.offset(), r.resume_point()), (OFFSET_MAX, None));
}

/// Found by `fuzz_tests::resume_with_any_offset`: a saved offset near
/// `i64::MAX` overflowed after `+CONTINUE`.
#[test]
fn resume_point_past_offset_max_is_ignored() {
    let mut cfg = Config::new(1);
    cfg.resume = Some(Resume {
        replid: ID.into(),
        offset: i64::MAX,
        db: 0,
    });
    let mut r = Replica::new(cfg);
    assert_eq!(r.resume_point(), None);
    r.connected(0);
    rx(&mut r, 0, b"+PONG\r\n");
    let a = rx(&mut r, 0, b"+OK\r\n+OK\r\n");
    assert_eq!(a, vec![no_cache(), send(&["PSYNC", "?", "-1"])]);
    let mut s = b"+CONTINUE\r\n".to_vec();
    s.extend_from_slice(&cmd(&["PING"]));
    assert_eq!(
        err_close(&rx(&mut r, 0, &s)),
        Some("Unexpected +CONTINUE from master: no cached master was offered")
    );
}
