//! Behaviour that depends on keys living on different shard cores: atomic
//! multi-key commands and transactions, WATCH, blocking pops, pub/sub,
//! SCAN and the admin commands that gather from every core.

use redis::{Commands, Connection, Value};
use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};
use tests::Server;

/// Four shard cores: enough that most key pairs and most connections are
/// on different cores.
fn server() -> Server {
    Server::slotd(&["--shards", "4"])
}

/// Keys spread over every core (slot ranges are contiguous per core, so a
/// few dozen distinct keys cover all four).
fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

/// MGET of `ks` on `c`: every value the same (`what` says otherwise).
fn mget_is_whole(c: &mut tests::RawConn, ks: &[String], what: &str) {
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(ks.iter().map(|k| k.as_str()));
    let r = tests::Resp::parse(&c.cmd_str(&mget)).unwrap().0;
    let tests::Resp::Agg(_, Some(vals)) = r else {
        panic!("MGET: {r:?}")
    };
    assert!(vals.iter().all(|v| *v == vals[0]), "{what}: {vals:?}");
}

#[test]
fn mset_mget_are_atomic_across_cores() {
    let s = server();
    let ks = keys("atomic", 16);
    let mut w = s.client();
    let pairs: Vec<(String, String)> = ks.iter().map(|k| (k.clone(), "0".to_string())).collect();
    let _: () = w.mset(&pairs).unwrap();
    let reader_keys = ks.clone();
    let mut r = s.client();
    let reader = thread::spawn(move || {
        for _ in 0..400 {
            let vals: Vec<String> = r.mget(&reader_keys).unwrap();
            let first = &vals[0];
            assert!(
                vals.iter().all(|v| v == first),
                "torn MSET observed: {vals:?}"
            );
        }
    });
    for round in 1..=400 {
        let pairs: Vec<(String, String)> =
            ks.iter().map(|k| (k.clone(), round.to_string())).collect();
        let _: () = w.mset(&pairs).unwrap();
    }
    reader.join().unwrap();
    let vals: Vec<String> = w.mget(&ks).unwrap();
    assert!(vals.iter().all(|v| v == "400"));
    let deleted: i64 = w.del(&ks).unwrap();
    assert_eq!(deleted, 16);
}

/// Writers whose MSETs name the keys in opposite orders, a MULTI/EXEC
/// writer (which takes the cores' locks one by one) and readers (MGET,
/// EXISTS) all at once over four cores: nothing deadlocks (every reply
/// within 10 s), no reader sees half a write, and the last write wins.
#[test]
fn concurrent_multi_key_writers_and_readers_stay_atomic() {
    let s = server();
    let ks = keys("mix", 12);
    let port = s.port();
    let encode_mset = |ks: &[String], v: &str| {
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for k in ks {
            args.push(k.as_bytes());
            args.push(v.as_bytes());
        }
        tests::encode(&args)
    };
    let mut first = tests::RawConn::connect(port).unwrap();
    first.raw_cmd(&encode_mset(&ks, "w0-0")).unwrap();
    let mut threads = Vec::new();
    for w in 0..2 {
        let mut order = ks.clone();
        if w == 1 {
            order.reverse();
        }
        threads.push(thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            for i in 0..300 {
                let mset: Vec<u8> = {
                    let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
                    for k in &order {
                        args.push(k.as_bytes().to_vec());
                        args.push(format!("w{w}-{i}").into_bytes());
                    }
                    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                    tests::encode(&refs)
                };
                assert_eq!(c.raw_cmd(&mset).unwrap(), b"+OK\r\n");
            }
        }));
    }
    {
        let ks = ks.clone();
        threads.push(thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            for i in 0..100 {
                c.cmd_str(&["MULTI"]);
                for k in &ks {
                    c.cmd_str(&["SET", k, &format!("tx-{i}")]);
                }
                let r = c.cmd_str(&["EXEC"]);
                assert!(r.starts_with(b"*12\r\n"), "{}", tests::show(&r));
            }
        }));
    }
    for _ in 0..2 {
        let ks = ks.clone();
        threads.push(thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            let mut exists: Vec<&str> = vec!["EXISTS"];
            exists.extend(ks.iter().map(|k| k.as_str()));
            for _ in 0..300 {
                mget_is_whole(&mut c, &ks, "torn write seen");
                assert_eq!(c.cmd_str(&exists), b":12\r\n");
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    mget_is_whole(&mut s.raw(), &ks, "final state torn");
}

/// Many clients on each of two cores sending MSET, MGET, EXISTS and DEL
/// over keys of both cores at once: a core's multi-key commands that
/// arrive together run as one transaction, and each must still be atomic
/// and see the others in one order on every core (no reader sees half a
/// write, EXISTS counts all or none). Clients that leave with commands in
/// flight hold nobody up.
#[test]
fn multi_key_commands_gathered_on_a_core_stay_atomic() {
    let s = Server::slotd(&["--shards", "2"]);
    let ks = keys("gathered", 8);
    let port = s.port();
    let mut threads = Vec::new();
    for t in 0..12 {
        let ks = ks.clone();
        threads.push(thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            let mut exists: Vec<&str> = vec!["EXISTS"];
            exists.extend(ks.iter().map(|k| k.as_str()));
            for i in 0..300 {
                if t == 0 && i % 10 == 5 {
                    let mut del: Vec<&str> = vec!["DEL"];
                    del.extend(ks.iter().map(|k| k.as_str()));
                    let r = c.cmd_str(&del);
                    assert!(r == b":0\r\n" || r == b":8\r\n", "DEL: {}", tests::show(&r));
                    continue;
                }
                let v = format!("t{t}-{i}");
                let mut mset: Vec<&str> = vec!["MSET"];
                for k in &ks {
                    mset.push(k);
                    mset.push(&v);
                }
                assert_eq!(c.cmd_str(&mset), b"+OK\r\n");
                mget_is_whole(&mut c, &ks, "torn write seen");
                let n = c.cmd_str(&exists);
                assert!(
                    n == b":0\r\n" || n == b":8\r\n",
                    "EXISTS: {}",
                    tests::show(&n)
                );
            }
        }));
    }
    {
        let ks = ks.clone();
        threads.push(thread::spawn(move || {
            let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
            for k in &ks {
                args.push(k.as_bytes().to_vec());
                args.push(b"quitter".to_vec());
            }
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let mset = tests::encode(&refs);
            for _ in 0..200 {
                let mut c = tests::RawConn::connect(port).unwrap();
                c.send(&mset).unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    mget_is_whole(&mut s.raw(), &ks, "final state torn");
}

#[test]
fn multi_exec_across_cores_is_atomic() {
    let s = server();
    let ks = keys("tx", 8);
    let mut w = s.client();
    let mut r = s.client();
    let reader_keys = ks.clone();
    let reader = thread::spawn(move || {
        for _ in 0..300 {
            let vals: Vec<Option<i64>> = r.mget(&reader_keys).unwrap();
            let first = vals[0];
            assert!(
                vals.iter().all(|v| *v == first),
                "partial transaction seen: {vals:?}"
            );
        }
    });
    for _ in 0..300 {
        let mut p = redis::pipe();
        p.atomic();
        for k in &ks {
            p.incr(k, 1);
        }
        let out: Vec<i64> = p.query(&mut w).unwrap();
        assert!(out.iter().all(|v| *v == out[0]));
    }
    reader.join().unwrap();
    let vals: Vec<i64> = w.mget(&ks).unwrap();
    assert_eq!(vals, vec![300; 8]);
}

#[test]
fn transaction_errors_and_queueing() {
    let s = server();
    let mut c = s.raw();
    assert_eq!(c.cmd_str(&["MULTI"]), b"+OK\r\n");
    assert_eq!(c.cmd_str(&["SET", "a", "1"]), b"+QUEUED\r\n");
    assert_eq!(
        c.cmd_str(&["NOSUCH"])[..25],
        b"-ERR unknown command 'NOS"[..]
    );
    assert_eq!(
        c.cmd_str(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(c.cmd_str(&["GET", "a"]), b"$-1\r\n");
    assert_eq!(c.cmd_str(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    assert_eq!(c.cmd_str(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&["MULTI"]),
        b"-ERR MULTI calls can not be nested\r\n"
    );
    assert_eq!(c.cmd_str(&["SET", "a", "1"]), b"+QUEUED\r\n");
    assert_eq!(c.cmd_str(&["LPUSH", "a", "x"]), b"+QUEUED\r\n");
    assert_eq!(c.cmd_str(&["SET", "b", "2"]), b"+QUEUED\r\n");
    // Errors at run time stay in the array; the rest still runs.
    let out = c.cmd_str(&["EXEC"]);
    assert_eq!(
        out,
        b"*3\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n+OK\r\n".to_vec()
    );
    assert_eq!(
        c.cmd_str(&["MGET", "a", "b"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );
    assert_eq!(c.cmd_str(&["DISCARD"]), b"-ERR DISCARD without MULTI\r\n");
}

#[test]
fn watch_aborts_when_another_client_writes() {
    let s = server();
    let mut a = s.client();
    let mut b = s.client();
    for k in keys("w", 8) {
        let _: () = a.set(&k, 1).unwrap();
        redis::cmd("WATCH").arg(&k).query::<()>(&mut a).unwrap();
        let _: () = b.set(&k, 2).unwrap();
        let out: Value = redis::pipe().atomic().set(&k, 3).query(&mut a).unwrap();
        assert_eq!(out, Value::Nil, "EXEC must abort after {k} changed");
        let v: i64 = a.get(&k).unwrap();
        assert_eq!(v, 2);
        // Without a concurrent write the same transaction commits.
        redis::cmd("WATCH").arg(&k).query::<()>(&mut a).unwrap();
        let out: Vec<String> = redis::pipe().atomic().set(&k, 3).query(&mut a).unwrap();
        assert_eq!(out, vec!["OK"]);
    }
}

#[test]
fn blocking_pop_is_served_from_any_core() {
    let s = server();
    for k in keys("bl", 6) {
        let port = s.port();
        let key = k.clone();
        let waiter = thread::spawn(move || {
            let mut c = tests::RawConn::connect(port).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            c.cmd_str(&["BLPOP", &key, "5"])
        });
        thread::sleep(Duration::from_millis(100));
        let mut p = s.client();
        let _: i64 = p.rpush(&k, "v").unwrap();
        let got = waiter.join().unwrap();
        let want = format!("*2\r\n${}\r\n{}\r\n$1\r\nv\r\n", k.len(), k);
        assert_eq!(String::from_utf8_lossy(&got), want);
        let len: i64 = p.llen(&k).unwrap();
        assert_eq!(len, 0, "the blocked client took the element");
    }
}

#[test]
fn blocking_pop_times_out_and_dead_waiters_take_nothing() {
    let s = server();
    let mut c = s.raw();
    let start = Instant::now();
    assert_eq!(c.cmd_str(&["BLPOP", "empty:list", "0.2"]), b"*-1\r\n");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "returned after {took:?}");

    // A client that disconnects while blocked must not swallow a push.
    for k in keys("gone", 4) {
        let mut w = s.raw();
        w.send(&tests::encode(&[b"BLPOP", k.as_bytes(), b"0"]))
            .unwrap();
        thread::sleep(Duration::from_millis(50));
        w.shutdown();
        drop(w);
        thread::sleep(Duration::from_millis(50));
        let mut p = s.client();
        let _: i64 = p.rpush(&k, "kept").unwrap();
        let v: Vec<String> = p.lrange(&k, 0, -1).unwrap();
        assert_eq!(v, vec!["kept"]);
    }
}

#[test]
fn publish_reaches_subscribers_on_every_core() {
    let s = server();
    let mut subs: Vec<Connection> = (0..6).map(|_| s.client()).collect();
    for c in subs.iter_mut() {
        redis::cmd("SUBSCRIBE").arg("news").query::<()>(c).unwrap();
    }
    let mut p = s.client();
    let n: i64 = p.publish("news", "hello").unwrap();
    assert_eq!(n, 6);
    for c in subs.iter_mut() {
        let msg = c.recv_response().unwrap();
        let want = Value::Array(vec![
            Value::BulkString(b"message".to_vec()),
            Value::BulkString(b"news".to_vec()),
            Value::BulkString(b"hello".to_vec()),
        ]);
        assert_eq!(msg, want);
    }
    let numsub: Vec<Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .query(&mut p)
        .unwrap();
    assert_eq!(numsub[1], Value::Int(6));
    // A subscribed RESP2 client may only run subscription commands.
    let mut raw = s.raw();
    raw.cmd_str(&["SUBSCRIBE", "x"]);
    let e = raw.cmd_str(&["GET", "k"]);
    assert!(
        String::from_utf8_lossy(&e).starts_with("-ERR Can't execute 'get': only (P|S)SUBSCRIBE"),
        "{}",
        String::from_utf8_lossy(&e)
    );
}

#[test]
fn scan_keys_dbsize_and_flush_cover_every_core() {
    let s = server();
    let mut c = s.client();
    let all: HashSet<String> = keys("scan", 1000).into_iter().collect();
    for k in &all {
        let _: () = c.set(k, 1).unwrap();
    }
    let _: () = c.set("other", 1).unwrap();
    let mut seen = HashSet::new();
    let mut cursor: u64 = 0;
    let mut calls = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("scan:*")
            .arg("COUNT")
            .arg(100)
            .query(&mut c)
            .unwrap();
        seen.extend(batch);
        calls += 1;
        assert!(calls < 20_000, "SCAN does not terminate");
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen, all);
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 1001);
    let ks: Vec<String> = c.keys("scan:1?").unwrap();
    assert_eq!(ks.len(), 10);
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn cross_core_rename_and_store_commands() {
    let s = server();
    let mut c = s.client();
    let ks = keys("mv", 8);
    for (i, k) in ks.iter().enumerate() {
        let _: () = c.set(k, i).unwrap();
        let _: i64 = c.expire(k, 1000).unwrap();
    }
    for pair in ks.windows(2) {
        let dst = format!("{}:renamed", pair[0]);
        let _: () = c.rename(&pair[0], &dst).unwrap();
        let ttl: i64 = c.ttl(&dst).unwrap();
        assert!(ttl > 900, "TTL moved with the key");
        let gone: bool = c.exists(&pair[0]).unwrap();
        assert!(!gone);
    }
    let _: i64 = c.sadd("s:a", &["1", "2", "3"]).unwrap();
    let _: i64 = c.sadd("s:b", &["2", "3", "4"]).unwrap();
    let n: i64 = c.sinterstore("s:dst", &["s:a", "s:b"]).unwrap();
    assert_eq!(n, 2);
    let mut m: Vec<String> = c.smembers("s:dst").unwrap();
    m.sort();
    assert_eq!(m, vec!["2", "3"]);
}

#[test]
fn client_list_and_kill_span_cores() {
    let s = server();
    let mut admin = s.client();
    let others: Vec<Connection> = (0..5).map(|_| s.client()).collect();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert_eq!(list.lines().count(), 6, "{list}");
    let mut victim = s.client();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut victim).unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1);
    let r: redis::RedisResult<String> = redis::cmd("PING").query(&mut victim);
    assert!(r.is_err(), "killed client still answered");
    drop(others);
}

/// A reply computed on another core may be sent on the client's socket by
/// that core (sparing the connection's core a wake-up): every reply still
/// reaches the client that asked, whatever else happens to connections
/// meanwhile. Clients that leave right after asking (their sockets closed
/// and their descriptors reused by new connections) must never make a
/// reply land on someone else's connection, and each client's next
/// request, sent as soon as its reply arrives, is served.
#[test]
fn replies_from_other_cores_reach_only_the_client_that_asked() {
    let s = server();
    let ks = keys("own", 64);
    let mut c = s.client();
    for k in &ks {
        let _: () = c.set(k, format!("value-of-{k}")).unwrap();
    }
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let ks = ks.clone();
            let port = s.port();
            thread::spawn(move || {
                for round in 0..150 {
                    let mut conn =
                        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    conn.set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let ask = |conn: &mut std::net::TcpStream, k: &str| {
                        let req = format!("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", k.len(), k);
                        std::io::Write::write_all(conn, req.as_bytes()).unwrap();
                    };
                    if round % 3 == 0 {
                        // Ask and leave at once.
                        ask(&mut conn, &ks[(t * 7 + round) % ks.len()]);
                        continue;
                    }
                    let mut buf = Vec::new();
                    for i in 0..4 {
                        let k = &ks[(t * 13 + round * 5 + i) % ks.len()];
                        ask(&mut conn, k);
                        let want = format!("value-of-{k}");
                        let want = format!("${}\r\n{}\r\n", want.len(), want);
                        buf.clear();
                        while buf.len() < want.len() {
                            let mut chunk = [0u8; 256];
                            let n = std::io::Read::read(&mut conn, &mut chunk).expect("a reply");
                            assert!(n > 0, "connection closed before the reply to GET {k}");
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        assert_eq!(String::from_utf8_lossy(&buf), want, "GET {k}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, ks.len());
}

/// A script whose commands touch every core (declared keys or none) runs
/// with every core locked: no reader, plain or scripted, sees half of it,
/// and concurrent scripts never lose an increment.
#[test]
fn scripts_across_cores_are_atomic() {
    let s = server();
    let ks = keys("lua", 8);
    let bump = "for i, k in ipairs(KEYS) do redis.call('incr', k) end return #KEYS";
    let bump_undeclared =
        "for i = 0, 7 do redis.call('incr', 'lua:' .. i) end return redis.call('get', 'lua:0')";
    let read =
        "local t = {} for i = 0, 7 do t[#t + 1] = redis.call('get', 'lua:' .. i) end return t";
    let mut readers = Vec::new();
    for n in 0..2 {
        let mut r = s.client();
        let reader_keys = ks.clone();
        readers.push(thread::spawn(move || {
            for _ in 0..200 {
                let vals: Vec<Option<i64>> = if n == 0 {
                    r.mget(&reader_keys).unwrap()
                } else {
                    redis::cmd("EVAL").arg(read).arg(0).query(&mut r).unwrap()
                };
                assert!(
                    vals.iter().all(|v| *v == vals[0]),
                    "partial script seen: {vals:?}"
                );
            }
        }));
    }
    let mut writers = Vec::new();
    for n in 0..2 {
        let mut w = s.client();
        let ks = ks.clone();
        writers.push(thread::spawn(move || {
            for _ in 0..150 {
                let mut c = redis::cmd("EVAL");
                if n == 0 {
                    c.arg(bump).arg(ks.len()).arg(&ks);
                } else {
                    c.arg(bump_undeclared).arg(0);
                }
                let _: redis::Value = c.query(&mut w).unwrap();
            }
        }));
    }
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }
    let mut c = s.client();
    let vals: Vec<i64> = c.mget(&ks).unwrap();
    assert_eq!(vals, vec![300; 8]);
}

/// A script whose runs stayed on its declared key's core runs there
/// alone; concurrent runs from clients on every core still count exactly.
/// When such a script later reaches another core's key, that command
/// fails (the script catches it with pcall) and its next runs lock every
/// core again.
#[test]
fn scripts_on_one_core_and_their_placement() {
    let s = server();
    let limiter = "local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('pexpire', KEYS[1], 60000) end return n";
    let mut threads = Vec::new();
    for _ in 0..4 {
        let mut c = s.client();
        threads.push(thread::spawn(move || {
            for _ in 0..250 {
                let _: i64 = redis::cmd("EVAL")
                    .arg(limiter)
                    .arg(1)
                    .arg("rate:user")
                    .query(&mut c)
                    .unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut c = s.client();
    let n: i64 = c.get("rate:user").unwrap();
    assert_eq!(n, 1000);
    let ttl: i64 = c.pttl("rate:user").unwrap();
    assert!(ttl > 0 && ttl <= 60000, "{ttl}");
    // A script that stays home, then strays.
    let stray = "if ARGV[1] ~= '' then local r = redis.pcall('get', ARGV[1]) if type(r) == 'table' then return r['err'] end end return redis.call('incr', KEYS[1])";
    let mut run = |arg: &str| -> redis::Value {
        redis::cmd("EVAL")
            .arg(stray)
            .arg(1)
            .arg("home")
            .arg(arg)
            .query(&mut c)
            .unwrap()
    };
    assert_eq!(run(""), redis::Value::Int(1));
    assert_eq!(run(""), redis::Value::Int(2));
    // Find a key on another core than "home": the local run reports it.
    let mut saw_off_core = false;
    for i in 0..64 {
        match run(&format!("other:{i}")) {
            redis::Value::BulkString(e) => {
                let e = String::from_utf8_lossy(&e).into_owned();
                assert!(
                    e.starts_with("ERR Script attempted to access a key of another core"),
                    "{e}"
                );
                saw_off_core = true;
                // The next run locks every core and reaches it.
                assert!(matches!(run(&format!("other:{i}")), redis::Value::Int(_)));
                break;
            }
            redis::Value::Int(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_off_core);
}
