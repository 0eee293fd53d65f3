//! Wire-protocol tests: pipelining, inline commands, malformed input,
//! limits, and a bounded seeded fuzz run.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::{encode, show, RawConn, Server};

#[test]
fn pipeline_1000_in_one_write() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    let mut buf = Vec::new();
    for i in 0..500 {
        let k = format!("key:{i}");
        let v = format!("value:{i}");
        buf.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
        buf.extend(encode(&[b"GET", k.as_bytes()]));
    }
    c.send(&buf).unwrap();
    for i in 0..500 {
        assert_eq!(c.read_reply().unwrap(), b"+OK\r\n", "reply to SET #{i}");
        let v = format!("value:{i}");
        let want = format!("${}\r\n{}\r\n", v.len(), v);
        assert_eq!(
            show(&c.read_reply().unwrap()),
            show(want.as_bytes()),
            "GET #{i}"
        );
    }
    // Mixed pipeline across keys on different shards, incl. INCR ordering.
    let mut buf = Vec::new();
    for i in 0..1000 {
        let k = format!("ctr:{}", i % 7);
        buf.extend(encode(&[b"INCR", k.as_bytes()]));
    }
    c.send(&buf).unwrap();
    let mut counts = [0i64; 7];
    for i in 0..1000 {
        counts[i % 7] += 1;
        let want = format!(":{}\r\n", counts[i % 7]);
        assert_eq!(
            show(&c.read_reply().unwrap()),
            show(want.as_bytes()),
            "INCR #{i}"
        );
    }
}

#[test]
fn inline_commands() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    assert_eq!(c.raw_cmd(b"PING\r\n").unwrap(), b"+PONG\r\n");
    assert_eq!(c.raw_cmd(b"ping\n").unwrap(), b"+PONG\r\n");
    assert_eq!(c.raw_cmd(b"SET a \"b c\"\r\n").unwrap(), b"+OK\r\n");
    assert_eq!(c.cmd_str(&["GET", "a"]), b"$3\r\nb c\r\n");
    assert_eq!(c.raw_cmd(b"SET   x   'y z'  \r\n").unwrap(), b"+OK\r\n");
    assert_eq!(c.raw_cmd(b"GET x\r\n").unwrap(), b"$3\r\ny z\r\n");
    assert_eq!(c.raw_cmd(b"SET q \"\\x41\\n\"\r\n").unwrap(), b"+OK\r\n");
    assert_eq!(c.raw_cmd(b"GET q\r\n").unwrap(), b"$2\r\nA\n\r\n");
    // Empty lines are ignored; the next command still works.
    assert_eq!(c.raw_cmd(b"\r\n\r\nECHO hi\r\n").unwrap(), b"$2\r\nhi\r\n");
    // Inline and multibulk mixed in one write.
    c.send(b"PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n").unwrap();
    for _ in 0..3 {
        assert_eq!(c.read_reply().unwrap(), b"+PONG\r\n");
    }
}

#[test]
fn byte_by_byte_and_large_values() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    let req = encode(&[b"SET", b"slow", b"value"]);
    for b in &req {
        c.send(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let r = c.cmd(&[b"GET", b"big"]);
    let head = format!("${}\r\n", big.len());
    assert!(r.starts_with(head.as_bytes()));
    assert_eq!(&r[head.len()..r.len() - 2], &big[..]);
    assert_eq!(c.cmd_str(&["STRLEN", "big"]), b":3000000\r\n");
}

/// Sends `bytes` on a new connection to both servers and checks slotd
/// answers exactly like redis and closes the connection, while another
/// connection keeps working.
fn protocol_error_like_redis(slotd: &Server, redis: &Server, bytes: &[u8]) {
    let mut a = slotd.raw();
    let mut b = redis.raw();
    let ra = a.raw_cmd(bytes).unwrap_or_default();
    let rb = b.raw_cmd(bytes).unwrap();
    assert!(
        rb.starts_with(b"-ERR Protocol error"),
        "redis reply to {:?}: {}",
        show(bytes),
        show(&rb)
    );
    assert!(
        ra.starts_with(b"-ERR Protocol error"),
        "slotd reply to {:?}: {}",
        show(bytes),
        show(&ra)
    );
    assert_eq!(show(&ra), show(&rb), "error text for {:?}", show(bytes));
    assert!(
        a.is_closed(Duration::from_secs(3)),
        "slotd kept the connection open after {:?}",
        show(bytes)
    );
    let mut ok = slotd.raw();
    assert_eq!(ok.cmd_str(&["PING"]), b"+PONG\r\n");
}

#[test]
fn malformed_resp_closes_connection() {
    let slotd = Server::slotd(&[]);
    let redis = Server::redis(&[]);
    // A healthy connection opened before the bad ones must stay usable.
    let mut keeper = slotd.raw();
    assert_eq!(keeper.cmd_str(&["SET", "k", "v"]), b"+OK\r\n");
    for bad in [
        &b"*1\r\n$x\r\n"[..],
        b"*x\r\n",
        b"*2\r\n$3\r\nGET\r\nxyz\r\n",
        b"*1\r\n$-5\r\n",
        b"SET a \"b\r\n",
        b"SET a 'b\r\n",
        b"SET a \"b\"c\r\n",
    ] {
        protocol_error_like_redis(&slotd, &redis, bad);
    }
    assert_eq!(keeper.cmd_str(&["GET", "k"]), b"$1\r\nv\r\n");
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn oversized_bulk_is_refused_without_allocation() {
    let slotd = Server::slotd(&[]);
    let redis = Server::redis(&[]);
    let before = rss_kb(slotd.pid());
    protocol_error_like_redis(&slotd, &redis, b"*2\r\n$3\r\nGET\r\n$99999999999\r\n");
    // Over the 512 MiB default proto-max-bulk-len by one byte.
    protocol_error_like_redis(&slotd, &redis, b"*2\r\n$3\r\nGET\r\n$536870913\r\n");
    // Huge multibulk counts are refused or wait for data, never crash.
    let mut c = slotd.raw();
    c.send(b"*2147483647\r\n$3\r\nGET\r\n").unwrap();
    drop(c);
    let after = rss_kb(slotd.pid());
    assert!(
        after < before + 64 * 1024,
        "slotd RSS grew from {before} kB to {after} kB on refused requests"
    );
    let mut ok = slotd.raw();
    assert_eq!(ok.cmd_str(&["PING"]), b"+PONG\r\n");
}

#[test]
fn quit_closes_connection() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    assert_eq!(c.cmd_str(&["QUIT"]), b"+OK\r\n");
    assert!(c.is_closed(Duration::from_secs(3)));
}

/// Random request material: either pure noise or a mutated valid pipeline.
fn fuzz_payload(rng: &mut StdRng, len: usize) -> Vec<u8> {
    if rng.gen_bool(0.3) {
        return (0..len).map(|_| rng.gen()).collect();
    }
    const CMDS: &[&[&str]] = &[
        &["SET", "fz", "v"],
        &["GET", "fz"],
        &["INCR", "fzn"],
        &["LPUSH", "fzl", "a", "b"],
        &["RPOP", "fzl"],
        &["HSET", "fzh", "f", "v"],
        &["SADD", "fzs", "m"],
        &["ZADD", "fzz", "1.5", "m"],
        &["ZRANGE", "fzz", "0", "-1", "WITHSCORES"],
        &["LRANGE", "fzl", "0", "-1"],
        &["DEL", "fz", "fzl"],
        &["EXPIRE", "fz", "100"],
        &["MULTI"],
        &["EXEC"],
        &["PING"],
        &["ECHO", "x"],
        &["HELLO", "3"],
        &["MGET", "fz", "fzn"],
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let cmd = CMDS[rng.gen_range(0..CMDS.len())];
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let mut piece = if rng.gen_bool(0.2) {
            let mut l = cmd.join(" ").into_bytes();
            l.extend_from_slice(b"\r\n");
            l
        } else {
            encode(&args)
        };
        if rng.gen_bool(0.5) {
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..piece.len());
                match rng.gen_range(0..4) {
                    0 => piece[i] = rng.gen(),
                    1 => {
                        piece.truncate(i);
                    }
                    2 => piece.insert(i, b"*$:\r\n-0123456789"[rng.gen_range(0..16)]),
                    _ => {
                        let n = rng.gen_range(0..10_000_000u64).to_string();
                        piece.splice(i..i, n.bytes());
                    }
                }
                if piece.is_empty() {
                    break;
                }
            }
        }
        out.extend_from_slice(&piece);
    }
    out.truncate(len);
    out
}

#[test]
fn fuzz_random_bytes_server_survives() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5107d);
    eprintln!("fuzz seed {seed} (set FUZZ_SEED to reproduce)");
    let mut s = Server::slotd(&["--shards", "2"]);
    let port = s.port();

    // A well-behaved client keeps checking answers during the fuzz run.
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let checker = {
        let stop = stop.clone();
        let checks = checks.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let mut c = RawConn::connect(port).map_err(|e| e.to_string())?;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("checker:{}", i % 16);
                let v = format!("v{i}");
                let r = c
                    .try_cmd(&[b"SET", k.as_bytes(), v.as_bytes()])
                    .map_err(|e| e.to_string())?;
                if r != b"+OK\r\n" {
                    return Err(format!("SET {k}: {}", show(&r)));
                }
                let r = c
                    .try_cmd(&[b"GET", k.as_bytes()])
                    .map_err(|e| e.to_string())?;
                let want = format!("${}\r\n{}\r\n", v.len(), v);
                if r != want.as_bytes() {
                    return Err(format!(
                        "GET {k}: {} want {}",
                        show(&r),
                        show(want.as_bytes())
                    ));
                }
                let r = c
                    .try_cmd(&[b"INCR", b"checker:n"])
                    .map_err(|e| e.to_string())?;
                let want = format!(":{}\r\n", i + 1);
                if r != want.as_bytes() {
                    return Err(format!("INCR: {} want {}", show(&r), show(want.as_bytes())));
                }
                i += 1;
                checks.store(i, Ordering::Relaxed);
            }
            Ok(())
        })
    };

    const CONNS: usize = 200;
    const THREADS: usize = 4;
    const BYTES: usize = 4096;
    let deadline = Instant::now() + Duration::from_secs(120);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(t as u64));
                for _ in 0..CONNS / THREADS {
                    if Instant::now() > deadline {
                        break;
                    }
                    let payload = fuzz_payload(&mut rng, BYTES);
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    let Ok(mut sock) =
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    else {
                        panic!("cannot connect to slotd during fuzzing");
                    };
                    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    sock.set_write_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                    // Write in a few random chunks; errors are fine (server may close).
                    let mut off = 0;
                    while off < payload.len() {
                        let n = rng.gen_range(1..=payload.len() - off);
                        if sock.write_all(&payload[off..off + n]).is_err() {
                            break;
                        }
                        off += n;
                    }
                    let _ = sock.shutdown(std::net::Shutdown::Write);
                    let mut sink = [0u8; 16384];
                    let until = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < until {
                        match sock.read(&mut sink) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("fuzz worker panicked");
    }
    // Let the checker observe the server a little longer after the storm.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let res = checker.join().expect("checker thread panicked");
    assert!(s.is_alive(), "slotd died during fuzzing (seed {seed})");
    res.unwrap_or_else(|e| panic!("well-behaved client got a wrong answer (seed {seed}): {e}"));
    assert!(
        checks.load(Ordering::Relaxed) > 0,
        "checker made no progress"
    );
    let mut c = s.raw();
    assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd_str(&["SET", "after", "fuzz"]), b"+OK\r\n");
    assert_eq!(c.cmd_str(&["GET", "after"]), b"$4\r\nfuzz\r\n");
}
