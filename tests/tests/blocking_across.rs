//! Blocking commands whose keys live on several shard cores (standalone
//! mode, where Redis lets one command name any keys): BLPOP over queues of
//! several cores waits like Redis's and is served by the first push, each
//! element is taken once, and timeouts, CLIENT UNBLOCK, INFO's
//! `blocked_clients` and a client that leaves behave as in Redis.

use std::thread;
use std::time::{Duration, Instant};
use tests::{RawConn, Server};

const SHARDS: usize = 2;

/// The core of `key` on a standalone node of `SHARDS` cores (slot ranges
/// are cut evenly, in order).
fn core_of(key: &str) -> usize {
    let b = key.as_bytes();
    let tagged = match b.iter().position(|&c| c == b'{') {
        Some(s) => match b[s + 1..].iter().position(|&c| c == b'}') {
            Some(0) | None => b,
            Some(len) => &b[s + 1..s + 1 + len],
        },
        None => b,
    };
    let slot = crc16::State::<crc16::XMODEM>::calculate(tagged) as usize & 16383;
    slot * SHARDS / 16384
}

/// One key named `prefix:N` on each core, core 0's first.
fn per_core(prefix: &str) -> Vec<String> {
    let mut out = vec![String::new(); SHARDS];
    for i in 0.. {
        let k = format!("{prefix}:{i}");
        let c = core_of(&k);
        if out[c].is_empty() {
            out[c] = k;
        }
        if out.iter().all(|k| !k.is_empty()) {
            return out;
        }
    }
    unreachable!()
}

fn slotd() -> Server {
    Server::slotd(&["--shards", &SHARDS.to_string()])
}

/// Sends `blocking` on its own connection, and after 150 ms `feed` on
/// another; returns the blocked command's reply and how long it took.
fn block_then_feed(s: &Server, blocking: &[&str], feed: &[&[&str]]) -> (String, Duration) {
    let port = s.port();
    let cmd: Vec<String> = blocking.iter().map(|a| a.to_string()).collect();
    let waiter = thread::spawn(move || {
        let mut c = RawConn::connect(port).unwrap();
        c.set_read_timeout(Duration::from_secs(10));
        let args: Vec<&str> = cmd.iter().map(|a| a.as_str()).collect();
        let start = Instant::now();
        let r = c.cmd_str(&args);
        (tests::show(&r), start.elapsed())
    });
    thread::sleep(Duration::from_millis(150));
    let mut p = s.raw();
    for f in feed {
        p.cmd_str(f);
    }
    waiter.join().unwrap()
}

/// Each family's blocking command over keys of both cores waits, and the
/// first write to any of its keys serves it as Redis serves it; what is
/// left afterwards is Redis's too.
#[test]
fn blocking_commands_over_several_cores_wait_and_are_served_as_in_redis() {
    let l = per_core("list");
    let z = per_core("zset");
    let st = per_core("stream");
    let (l0, l1, z0, z1, s0, s1) = (&l[0], &l[1], &z[0], &z[1], &st[0], &st[1]);
    type Case<'a> = (
        Vec<Vec<&'a str>>,
        Vec<&'a str>,
        Vec<Vec<&'a str>>,
        Vec<Vec<&'a str>>,
    );
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec!["BLPOP", l0, l1, "5"],
            vec![vec!["RPUSH", l1, "x", "y"]],
            vec![vec!["LRANGE", l1, "0", "-1"]],
        ),
        (
            vec![],
            vec!["BRPOP", l1, l0, "5"],
            vec![vec!["RPUSH", l0, "a", "b"]],
            vec![vec!["LRANGE", l0, "0", "-1"]],
        ),
        (
            vec![],
            vec!["BLMPOP", "5", "2", l0, l1, "LEFT", "COUNT", "2"],
            vec![vec!["RPUSH", l1, "a", "b", "c"]],
            vec![vec!["LRANGE", l1, "0", "-1"]],
        ),
        (
            vec![],
            vec!["BLMOVE", l0, l1, "LEFT", "RIGHT", "5"],
            vec![vec!["RPUSH", l0, "v", "w"]],
            vec![vec!["LRANGE", l0, "0", "-1"], vec!["LRANGE", l1, "0", "-1"]],
        ),
        (
            vec![],
            vec!["BRPOPLPUSH", l1, l0, "5"],
            vec![vec!["RPUSH", l1, "p"]],
            vec![vec!["LRANGE", l0, "0", "-1"], vec!["EXISTS", l1]],
        ),
        (
            vec![],
            vec!["BZPOPMIN", z0, z1, "5"],
            vec![vec!["ZADD", z1, "2", "b", "1", "a"]],
            vec![vec!["ZRANGE", z1, "0", "-1", "WITHSCORES"]],
        ),
        (
            vec![],
            vec!["BZMPOP", "5", "2", z1, z0, "MAX", "COUNT", "5"],
            vec![vec!["ZADD", z0, "1", "a", "2", "b"]],
            vec![vec!["EXISTS", z0]],
        ),
        (
            vec![vec!["XADD", s0, "1-1", "f", "old"]],
            vec!["XREAD", "BLOCK", "5000", "STREAMS", s0, s1, "$", "$"],
            vec![vec!["XADD", s1, "2-1", "f", "new"]],
            vec![vec!["XLEN", s1]],
        ),
        (
            vec![
                vec!["XGROUP", "CREATE", s0, "g", "$", "MKSTREAM"],
                vec!["XGROUP", "CREATE", s1, "g", "$", "MKSTREAM"],
            ],
            vec![
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "5000",
                "STREAMS",
                s0,
                s1,
                ">",
                ">",
            ],
            vec![vec!["XADD", s0, "3-1", "f", "v"]],
            vec![vec!["XPENDING", s0, "g"]],
        ),
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for slotd_side in [false, true] {
        let s = if slotd_side {
            slotd()
        } else {
            Server::redis(&[])
        };
        let mut out = Vec::new();
        for (setup, blocking, feed, after) in &cases {
            let mut c = s.raw();
            c.cmd_str(&["FLUSHALL"]);
            for cmd in setup {
                c.cmd_str(cmd);
            }
            let feed: Vec<&[&str]> = feed.iter().map(|f| &f[..]).collect();
            let (reply, took) = block_then_feed(&s, blocking, &feed);
            assert!(
                took >= Duration::from_millis(100),
                "{blocking:?} answered after {took:?} without waiting: {reply}"
            );
            out.push(format!("{blocking:?} -> {reply}"));
            for cmd in after {
                out.push(format!("{cmd:?} -> {}", tests::show(&c.cmd_str(cmd))));
            }
        }
        seen.push(out);
    }
    assert_eq!(
        seen[1], seen[0],
        "slotd (right) against redis-server (left)"
    );
}

/// The timeout, CLIENT UNBLOCK (timeout reply and error), INFO's
/// `blocked_clients` and a client that leaves while blocked over several
/// cores: the same as redis-server.
#[test]
fn timeouts_unblock_and_leaving_clients_as_in_redis() {
    let l = per_core("q");
    let mut seen: Vec<Vec<String>> = Vec::new();
    for slotd_side in [false, true] {
        let s = if slotd_side {
            slotd()
        } else {
            Server::redis(&[])
        };
        let mut out = Vec::new();
        let mut c = s.raw();
        // A timeout answers the null array after the time asked.
        let start = Instant::now();
        let r = c.cmd_str(&["BLPOP", &l[0], &l[1], "0.3"]);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "after {took:?}");
        assert!(took < Duration::from_secs(3), "after {took:?}");
        out.push(tests::show(&r));
        for error in [false, true] {
            let mut w = s.raw();
            w.set_read_timeout(Duration::from_secs(10));
            let id = tests::text(&w.cmd_str(&["CLIENT", "ID"]));
            let id = id.trim().trim_start_matches(':').to_string();
            w.send(&tests::encode(&[
                b"BLPOP",
                l[0].as_bytes(),
                l[1].as_bytes(),
                b"0",
            ]))
            .unwrap();
            tests::cluster::wait_for(5, "the client blocks", || {
                tests::info_field(&s, "clients", "blocked_clients") == "1"
            });
            let mut args = vec!["CLIENT", "UNBLOCK", &id];
            if error {
                args.push("ERROR");
            }
            out.push(tests::show(&c.cmd_str(&args)));
            out.push(tests::show(&w.read_reply().unwrap()));
            out.push(tests::info_field(&s, "clients", "blocked_clients"));
        }
        // A client that leaves while blocked takes nothing.
        let mut w = s.raw();
        w.send(&tests::encode(&[
            b"BLPOP",
            l[0].as_bytes(),
            l[1].as_bytes(),
            b"0",
        ]))
        .unwrap();
        tests::cluster::wait_for(5, "the client blocks", || {
            tests::info_field(&s, "clients", "blocked_clients") == "1"
        });
        w.shutdown();
        drop(w);
        tests::cluster::wait_for(5, "the client is gone", || {
            tests::info_field(&s, "clients", "blocked_clients") == "0"
        });
        for k in &l {
            c.cmd_str(&["RPUSH", k, "kept"]);
            out.push(tests::show(&c.cmd_str(&["LRANGE", k, "0", "-1"])));
        }
        seen.push(out);
    }
    assert_eq!(
        seen[1], seen[0],
        "slotd (right) against redis-server (left)"
    );
}

/// Consumers blocked over queues of every core and producers pushing to
/// them at random: every element is taken exactly once (no element lost
/// to a wake-up that came between a look and a wait, none taken twice).
#[test]
fn concurrent_consumers_over_several_cores_take_each_element_once() {
    let s = slotd();
    let queues = per_core("jobs");
    const PER_PRODUCER: usize = 400;
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 4;
    let port = s.port();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let queues = queues.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port).unwrap();
                c.set_read_timeout(Duration::from_secs(10));
                let mut got = Vec::new();
                loop {
                    let mut args = vec!["BRPOP"];
                    args.extend(queues.iter().map(|q| q.as_str()));
                    args.push("1");
                    match tests::Resp::parse(&c.cmd_str(&args)).unwrap().0 {
                        tests::Resp::Agg(_, Some(items)) => {
                            let tests::Resp::Bulk(_, Some(v)) = &items[1] else {
                                panic!("BRPOP answered {items:?}")
                            };
                            got.push(String::from_utf8(v.clone()).unwrap());
                        }
                        // Timed out: the producers are done.
                        _ => return got,
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queues = queues.clone();
            thread::spawn(move || {
                let mut c = RawConn::connect(port).unwrap();
                for i in 0..PER_PRODUCER {
                    let q = &queues[(i * 7 + p) % queues.len()];
                    let v = format!("{p}-{i}");
                    c.cmd_str(&["LPUSH", q, &v]);
                    if i % 50 == 0 {
                        thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<String> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an element was taken twice");
    assert_eq!(n, PER_PRODUCER * PRODUCERS, "elements lost");
    let mut c = s.raw();
    for q in &queues {
        assert_eq!(c.cmd_str(&["LLEN", q]), b":0\r\n");
    }
}
