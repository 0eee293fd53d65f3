//! Client-side caching (CLIENT TRACKING), differential against
//! redis-server 7.0: the same script of commands over several raw
//! connections to both servers, comparing every byte each connection
//! receives (replies and invalidation pushes or pub/sub messages), step
//! by step. slotd runs with 1 and 2 shards; with 2 the keys `a`/`foo`
//! live on one core and `b`/`bar`/`c` on the other, and the connections
//! are spread over both cores.
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tests::{encode, show, Resp, Server};

/// One step: connection `.0` sends `.1`. Commands starting with `#`
/// are the script's own: `#flags` (CLIENT INFO's `flags=` and `redir=`
/// fields), `#info field` (an INFO field), `#pipe "cmd a" "cmd b" ...`
/// (commands sent in one write), `#sleep ms`, `#unordered`
/// (the next step's output is compared as a multiset: invalidations from
/// several cores may arrive in any order), `#close`.
type Step<'a> = (usize, &'a [&'a str]);

struct Conn {
    s: TcpStream,
    id: String,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut c = Conn {
            s,
            id: String::new(),
        };
        c.send(&["CLIENT", "ID"]);
        let r = c.drain(Duration::from_millis(500));
        c.id = String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned();
        c
    }

    fn send(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.s.write_all(&encode(&a)).unwrap();
    }

    /// Everything received until the connection stays quiet for `idle`.
    fn drain(&mut self, idle: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        self.s.set_read_timeout(Some(idle)).unwrap();
        let mut buf = [0u8; 65536];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => break,
            }
        }
        out
    }
}

/// Runs `steps` on a server with `conns` connections; returns what each
/// step showed on each connection (ids replaced by `<ID n>`).
fn run(s: &Server, conns: usize, steps: &[Step]) -> Vec<(String, Vec<String>)> {
    let mut cs: Vec<Option<Conn>> = (0..conns).map(|_| Some(Conn::open(s.port()))).collect();
    let ids: Vec<String> = cs.iter().map(|c| c.as_ref().unwrap().id.clone()).collect();
    let mut out = Vec::new();
    let mut unordered = false;
    for &(i, cmd) in steps {
        if cmd[0] == "#unordered" {
            unordered = true;
            continue;
        }
        if cmd[0] == "#sleep" {
            std::thread::sleep(Duration::from_millis(cmd[1].parse().unwrap()));
            continue;
        }
        if cmd[0] == "#close" {
            cs[i] = None;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let args: Vec<String> = cmd
            .iter()
            .map(|a| match a.strip_prefix("$ID") {
                Some(n) => ids[n.parse::<usize>().unwrap()].clone(),
                None => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let special = args[0].starts_with('#');
        let sent: Vec<&str> = match args[0] {
            "#flags" => vec!["CLIENT", "INFO"],
            "#info" => vec!["INFO"],
            _ => args.clone(),
        };
        if args[0] == "#pipe" {
            let mut bytes = Vec::new();
            for c in &args[1..] {
                let a: Vec<&[u8]> = c.split(' ').map(|w| w.as_bytes()).collect();
                bytes.extend(encode(&a));
            }
            cs[i].as_mut().unwrap().s.write_all(&bytes).unwrap();
        } else {
            cs[i].as_mut().unwrap().send(&sent);
        }
        let mut shown = Vec::new();
        for (j, c) in cs.iter_mut().enumerate() {
            let Some(c) = c else {
                shown.push(String::new());
                continue;
            };
            let mut got = c.drain(Duration::from_millis(60));
            if special && j == i && args[0] != "#pipe" {
                let text = String::from_utf8_lossy(&got).into_owned();
                let want: Vec<&str> = match args[0] {
                    "#flags" => vec!["flags", "redir"],
                    _ => vec![args[1]],
                };
                got = want
                    .iter()
                    .map(|f| {
                        text.split([' ', '\r', '\n'])
                            .find(|w| {
                                w.starts_with(&format!("{f}=")) || w.starts_with(&format!("{f}:"))
                            })
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
                    .into_bytes();
            }
            if args[0] == "HELLO" && j == i {
                // Its reply names the server's own id: compared by its
                // shape (RESP2 array, RESP3 map) only.
                got.truncate(2);
            }
            let mut text = if unordered {
                let mut vals = Vec::new();
                let mut rest = &got[..];
                while let Some((v, n)) = Resp::parse(rest) {
                    vals.push(v);
                    rest = &rest[n..];
                }
                vals.sort();
                format!("{vals:?}")
            } else {
                show(&got)
            };
            // Client ids differ between the servers: shown by number
            // where a reply names one.
            let names_ids = args[0] == "CLIENT" || text.contains("tracking-redir-broken");
            for (n, id) in ids.iter().enumerate() {
                if names_ids {
                    text = text.replace(&format!(":{id}\\r\\n"), &format!(":<ID{n}>\\r\\n"));
                }
                text = text.replace(&format!("redir={id}"), &format!("redir=<ID{n}>"));
            }
            shown.push(text);
        }
        unordered = false;
        out.push((format!("{i}: {}", cmd.join(" ")), shown));
    }
    out
}

fn check(conns: usize, steps: &[Step]) {
    let redis = Server::redis(&[]);
    let want = run(&redis, conns, steps);
    for shards in ["1", "2"] {
        let slotd = Server::slotd(&["--shards", shards]);
        let got = run(&slotd, conns, steps);
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(
                w.1, g.1,
                "shards {shards}, step `{}`: redis (left) vs slotd (right)",
                w.0
            );
        }
    }
}

#[test]
fn default_mode_resp3() {
    check(
        3,
        &[
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["GET", "a"]),
            (0, &["GET", "b"]),
            (0, &["MGET", "foo", "bar", "c"]),
            (0, &["#flags"]),
            (1, &["SET", "a", "1"]),
            (1, &["SET", "a", "2"]),
            (0, &["#unordered"]),
            (1, &["MSET", "b", "1", "foo", "2", "bar", "3"]),
            (1, &["DEL", "c"]),
            (0, &["GET", "a"]),
            (0, &["SET", "a", "mine"]),
            (1, &["SET", "a", "again"]),
            (0, &["STRLEN", "b"]),
            (0, &["EXISTS", "foo"]),
            (
                0,
                &["#pipe", "GET a", "SET a p1", "GET a", "SET a p2", "GET c"],
            ),
            (
                0,
                &["#pipe", "MULTI", "GET foo", "SET foo m", "EXEC", "GET foo"],
            ),
            (0, &["#pipe", "MULTI", "SET foo n", "EXEC"]),
            (1, &["#pipe", "SET c 1", "SET c 2"]),
            (2, &["#info", "tracking_clients"]),
            (2, &["#info", "tracking_total_keys"]),
            (2, &["#info", "tracking_total_items"]),
            (2, &["HELLO", "3"]),
            (2, &["CLIENT", "TRACKING", "on"]),
            (2, &["GET", "b"]),
            (0, &["#unordered"]),
            (1, &["DEL", "b", "foo"]),
            (0, &["GET", "c"]),
            (2, &["GET", "c"]),
            (1, &["FLUSHALL"]),
            (1, &["SET", "c", "1"]),
            (0, &["GET", "c"]),
            (0, &["FLUSHDB"]),
            (2, &["#info", "tracking_total_keys"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["GET", "a"]),
            (1, &["SET", "a", "3"]),
            (2, &["#info", "tracking_clients"]),
            (0, &["#flags"]),
        ],
    );
}

/// A script that reads registers its declared keys for its caller, as
/// Redis's `trackingRememberKeys` of the script's caller (keys on one core
/// and on both; EVAL, EVAL_RO, EVALSHA, FCALL_RO).
#[test]
fn scripts_remember_their_declared_keys() {
    check(
        2,
        &[
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["EVAL", "return redis.call('get', KEYS[1])", "1", "a"]),
            (1, &["SET", "a", "1"]),
            (0, &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "b"]),
            (1, &["SET", "b", "1"]),
            (
                0,
                &["EVAL", "return redis.call('mget', KEYS[1], KEYS[2])", "2", "foo", "bar"],
            ),
            (1, &["SET", "foo", "1"]),
            (1, &["SET", "bar", "1"]),
            (0, &["SCRIPT", "LOAD", "return redis.call('strlen', KEYS[1])"]),
            (0, &["EVALSHA", "4bda0a00e5541c8717dca29525d5e02f297b52da", "1", "c"]),
            (
                0,
                &["FUNCTION", "LOAD", "#!lua name=t\nredis.register_function{function_name='rd', callback=function(k) return redis.call('get', k[1]) end, flags={'no-writes'}}"],
            ),
            (0, &["FCALL_RO", "rd", "1", "c"]),
            (1, &["SET", "c", "1"]),
            (0, &["FUNCTION", "FLUSH"]),
        ],
    );
}

#[test]
fn noloop_optin_optout() {
    check(
        2,
        &[
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on", "NOLOOP"]),
            (0, &["GET", "a"]),
            (0, &["SET", "a", "1"]),
            (0, &["GET", "a"]),
            (1, &["SET", "a", "2"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["GET", "b"]),
            (1, &["SET", "b", "1"]),
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["GET", "b"]),
            (0, &["GET", "foo"]),
            (1, &["SET", "b", "2"]),
            (1, &["SET", "foo", "2"]),
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["MULTI"]),
            (0, &["GET", "foo"]),
            (0, &["GET", "bar"]),
            (0, &["EXEC"]),
            (1, &["SET", "foo", "3"]),
            (1, &["SET", "bar", "3"]),
            (0, &["CLIENT", "CACHING", "yes"]),
            (0, &["MULTI"]),
            (0, &["DISCARD"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["GET", "bar"]),
            (1, &["SET", "bar", "4"]),
            (0, &["CLIENT", "CACHING", "no"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (0, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
            (0, &["GET", "a"]),
            (0, &["CLIENT", "CACHING", "no"]),
            (0, &["GET", "c"]),
            (1, &["SET", "c", "1"]),
            (1, &["SET", "a", "1"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (0, &["HELLO", "2"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
        ],
    );
}

#[test]
fn bcast_prefixes() {
    check(
        3,
        &[
            (0, &["HELLO", "3"]),
            (
                0,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "obj:",
                ],
            ),
            (0, &["#flags"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (1, &["SET", "user:{t}1", "x"]),
            (1, &["SET", "other", "x"]),
            (
                1,
                &["MSET", "user:{t}2", "y", "user:{t}1", "z", "obj:{t}", "w"],
            ),
            (2, &["#info", "tracking_total_prefixes"]),
            (0, &["SET", "user:{t}3", "mine"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "us"]),
            (0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "new:"]),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (1, &["SET", "new:1", "x"]),
            (0, &["CLIENT", "TRACKING", "off"]),
            (1, &["SET", "new:1", "y"]),
            (2, &["#info", "tracking_total_prefixes"]),
            (2, &["HELLO", "3"]),
            (2, &["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"]),
            (2, &["SET", "a", "mine"]),
            (1, &["SET", "b", "theirs"]),
            (2, &["CLIENT", "TRACKINGINFO"]),
            (1, &["FLUSHALL"]),
        ],
    );
}

#[test]
fn resp2_redirect() {
    check(
        4,
        &[
            (2, &["SUBSCRIBE", "__redis__:invalidate"]),
            (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID2"]),
            (0, &["CLIENT", "GETREDIR"]),
            (0, &["#flags"]),
            (0, &["GET", "a"]),
            (0, &["GET", "b"]),
            (1, &["SET", "a", "1"]),
            (0, &["SET", "b", "1"]),
            (0, &["GET", "a"]),
            (1, &["FLUSHALL"]),
            (3, &["HELLO", "3"]),
            (3, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID2"]),
            (3, &["GET", "foo"]),
            (1, &["SET", "foo", "1"]),
            (2, &["#close"]),
            (3, &["GET", "foo"]),
            (1, &["SET", "foo", "2"]),
            (3, &["CLIENT", "TRACKINGINFO"]),
            (3, &["#flags"]),
            (3, &["CLIENT", "GETREDIR"]),
            (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID2"]),
            (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "$ID3"]),
            (0, &["CLIENT", "GETREDIR"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["CLIENT", "GETREDIR"]),
            (0, &["CLIENT", "TRACKING", "off", "REDIRECT", "$ID3"]),
            (0, &["CLIENT", "GETREDIR"]),
            (1, &["SET", "b", "2"]),
            (
                0,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x", "REDIRECT", "$ID3",
                ],
            ),
            (0, &["CLIENT", "TRACKINGINFO"]),
            (1, &["SET", "x1", "v"]),
            (0, &["SET", "x2", "v"]),
            (3, &["CLIENT", "TRACKING", "off"]),
            (3, &["RESET"]),
            (1, &["SET", "x1", "w"]),
            (3, &["SUBSCRIBE", "__redis__:invalidate"]),
            (1, &["SET", "x1", "z"]),
            (0, &["RESET"]),
            (0, &["CLIENT", "GETREDIR"]),
            (0, &["#flags"]),
        ],
    );
}

#[test]
fn expiry_and_errors() {
    check(
        2,
        &[
            (1, &["SET", "e", "v", "PX", "100"]),
            (0, &["HELLO", "3"]),
            (0, &["CLIENT", "TRACKING", "on"]),
            (0, &["GET", "e"]),
            (0, &["#sleep", "300"]),
            (1, &["GET", "e"]),
            (0, &["CLIENT", "GETREDIR"]),
            (1, &["CLIENT", "GETREDIR"]),
            (1, &["CLIENT", "TRACKINGINFO"]),
            (1, &["CLIENT", "CACHING", "yes"]),
            (1, &["CLIENT", "CACHING"]),
            (1, &["CLIENT", "CACHING", "yes", "no"]),
            (1, &["CLIENT", "TRACKING"]),
            (1, &["CLIENT", "GETREDIR", "x"]),
            (1, &["CLIENT", "TRACKINGINFO", "x"]),
            (1, &["CLIENT", "TRACKING", "maybe"]),
            (1, &["CLIENT", "TRACKING", "on", "bogus"]),
            (1, &["CLIENT", "TRACKING", "on", "REDIRECT"]),
            (1, &["CLIENT", "TRACKING", "on", "REDIRECT", "x"]),
            (1, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
            (
                1,
                &["CLIENT", "TRACKING", "on", "REDIRECT", "999999", "bogus"],
            ),
            (
                1,
                &[
                    "CLIENT", "TRACKING", "on", "REDIRECT", "$ID0", "REDIRECT", "$ID0",
                ],
            ),
            (1, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
            (1, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
            (1, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
            (
                1,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a",
                ],
            ),
            (
                1,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x", "PREFIX", "ab", "PREFIX",
                    "abc",
                ],
            ),
            (1, &["CLIENT", "TRACKINGINFO"]),
            (1, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "xyz"]),
            (1, &["CLIENT", "TRACKING", "on"]),
            (1, &["CLIENT", "TRACKING", "off"]),
            (1, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            (1, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
            (1, &["CLIENT", "CACHING", "no"]),
            (1, &["CLIENT", "CACHING", "maybe"]),
            (1, &["CLIENT", "TRACKING", "off", "bogus"]),
            (1, &["CLIENT", "TRACKING", "off"]),
            (1, &["CONFIG", "GET", "tracking-table-max-keys"]),
            (1, &["CONFIG", "SET", "tracking-table-max-keys", "-1"]),
            (1, &["CONFIG", "SET", "tracking-table-max-keys", "10"]),
            (1, &["CONFIG", "GET", "tracking-table-max-keys"]),
        ],
    );
}

/// `tracking-table-max-keys`: over the limit, keys are forgotten and
/// their clients told (which key is Redis's random pick, so this checks
/// the counts on both servers rather than the bytes).
#[test]
fn tracking_table_max_keys_forgets_keys() {
    let servers = [
        Server::redis(&[]),
        Server::slotd(&["--shards", "1"]),
        Server::slotd(&["--shards", "2"]),
    ];
    for s in &servers {
        let mut c0 = Conn::open(s.port());
        let mut c1 = Conn::open(s.port());
        let idle = Duration::from_millis(60);
        c1.send(&["CONFIG", "SET", "tracking-table-max-keys", "1"]);
        assert_eq!(c1.drain(idle), b"+OK\r\n");
        c0.send(&["HELLO", "3"]);
        c0.drain(idle);
        c0.send(&["CLIENT", "TRACKING", "on"]);
        assert_eq!(c0.drain(idle), b"+OK\r\n");
        let mut got = Vec::new();
        for k in ["a", "b"] {
            c0.send(&["GET", k]);
            got.extend(c0.drain(idle));
        }
        c1.send(&["PING"]);
        c1.drain(idle);
        std::thread::sleep(Duration::from_millis(200));
        got.extend(c0.drain(idle));
        let text = String::from_utf8_lossy(&got).into_owned();
        assert_eq!(
            text.matches("invalidate").count(),
            1,
            "port {}: {text:?}",
            s.port()
        );
        assert!(
            text.contains("invalidate\r\n*1\r\n$1\r\na\r\n")
                || text.contains("invalidate\r\n*1\r\n$1\r\nb\r\n"),
            "{text:?}"
        );
        c1.send(&["INFO", "stats"]);
        let info = String::from_utf8_lossy(&c1.drain(idle)).into_owned();
        assert!(info.contains("tracking_total_keys:1\r\n"), "{info}");
    }
}
