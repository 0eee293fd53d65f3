//! The replica state machine against a stock redis-server 7.0 master, driven
//! by a thin blocking-socket driver in this file.
//!
//! `disk_backed_sync` and `diskless_sync` (`repl-diskless-sync no`/`yes` on
//! the master) run the same script: the handshake gets `+FULLRESYNC` with
//! the master's `master_replid`; the RDB (`$<len>` or the `$EOF:` mark)
//! parses with `engine::rdb::read` and holds the keys set before; writes
//! arrive as Redis 7.0 propagates them (EXPIRE as PEXPIREAT, a transaction
//! wrapped in MULTI/EXEC) with offsets matching `master_repl_offset`; a WAIT
//! on the master is satisfied through `REPLCONF GETACK`; the master's INFO
//! shows our acknowledged offset; and a new replica started from the saved
//! resume point gets `+CONTINUE` and the writes made meanwhile.
//!
//! Every process started here is killed by `Drop`.

use repl::{Action, Config, Replica, Resume};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The master: a stock redis-server (started and stopped by
/// `tests::Server`) and a client connection to it.
struct Redis {
    _server: tests::Server,
    port: u16,
    conn: redis::Connection,
}

impl Redis {
    fn start(diskless: bool) -> Redis {
        let server = tests::Server::redis(&[
            "--repl-diskless-sync",
            if diskless { "yes" } else { "no" },
            "--repl-diskless-sync-delay",
            "0",
            // No PINGs into the stream while offsets are compared.
            "--repl-ping-replica-period",
            "3600",
        ]);
        let port = server.port();
        let conn = server.client();
        Redis {
            _server: server,
            port,
            conn,
        }
    }

    fn cmd(&mut self, args: &[&str]) -> redis::Value {
        tests::query(&mut self.conn, args)
    }

    /// A field of INFO replication.
    fn info(&mut self, field: &str) -> String {
        let text: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.conn)
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {text}"))
            .to_string()
    }

    fn offset(&mut self) -> i64 {
        self.info("master_repl_offset").parse().unwrap()
    }
}

/// The thin driver: one blocking socket, the replica's actions carried out.
struct Driver {
    replica: Replica,
    stream: Option<TcpStream>,
    start: Instant,
    /// Every action but Send, Close and RDB chunks, in order.
    events: Vec<Action>,
    rdb: Vec<u8>,
    /// Every byte received from the master.
    raw: Vec<u8>,
}

impl Driver {
    fn new(cfg: Config) -> Driver {
        Driver {
            replica: Replica::new(cfg),
            stream: None,
            start: Instant::now(),
            events: Vec::new(),
            rdb: Vec::new(),
            raw: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn connect(&mut self, port: u16) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        self.stream = Some(s);
        let a = self.replica.connected(self.now());
        self.perform(a);
    }

    fn disconnect(&mut self) {
        self.stream = None;
        self.replica.closed();
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(b) => {
                    if let Some(s) = &mut self.stream {
                        s.write_all(&b).unwrap();
                    }
                }
                Action::Close => self.stream = None,
                Action::RdbChunk(c) => self.rdb.extend_from_slice(&c),
                Action::Error(e) => panic!("replica error: {e}"),
                Action::Notice(_) => {}
                other => self.events.push(other),
            }
        }
    }

    /// Reads, ticks and acts until `done` holds over the events.
    fn pump_until(&mut self, what: &str, done: impl Fn(&Driver) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 64 * 1024];
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            let Some(s) = &mut self.stream else {
                panic!("link closed waiting for {what}");
            };
            match s.read(&mut buf) {
                Ok(0) => panic!("master closed the link waiting for {what}"),
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    let a = self.replica.received(self.now(), &buf[..n]);
                    self.perform(a);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("{e}"),
            }
            let a = self.replica.tick(self.now());
            self.perform(a);
        }
    }

    /// The commands received so far, from event `from` on.
    fn commands(&self, from: usize) -> Vec<(Vec<String>, i64)> {
        self.events[from..]
            .iter()
            .filter_map(|e| match e {
                Action::Command { argv, offset_after } => Some((
                    argv.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                    *offset_after,
                )),
                _ => None,
            })
            .collect()
    }

    /// Reads, ticks and acts for `ms` milliseconds.
    fn pump_for(&mut self, ms: u64) {
        let until = self.now() + ms;
        self.pump_until("nothing", |d| d.now() >= until);
    }

    fn saw_command(&self, name: &str) -> bool {
        self.commands(0).iter().any(|(a, _)| a[0] == name)
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The events and the RDB a fresh replica makes of `pieces` (sends left out:
/// their timing differs).
fn replay(pieces: &[&[u8]]) -> (Vec<Action>, Vec<u8>) {
    let mut r = Replica::new(Config::new(12345));
    let mut actions = r.connected(0);
    for p in pieces {
        actions.extend(r.received(0, p));
    }
    let mut rdb = Vec::new();
    let mut events = Vec::new();
    for a in actions {
        match a {
            Action::Send(_) | Action::Notice(_) => {}
            Action::RdbChunk(c) => rdb.extend_from_slice(&c),
            other => events.push(other),
        }
    }
    (events, rdb)
}

fn names(cmds: &[(Vec<String>, i64)]) -> Vec<String> {
    cmds.iter().map(|(a, _)| a.join(" ")).collect()
}

fn run(diskless: bool) {
    let mut m = Redis::start(diskless);
    m.cmd(&["SET", "k1", "v1"]);
    m.cmd(&["RPUSH", "list", "a", "b", "c"]);
    m.cmd(&["SET", "counter", "10"]);

    // Handshake and full resync.
    let mut d = Driver::new(Config::new(12345));
    d.connect(m.port);
    d.pump_until("the RDB", |d| d.events.contains(&Action::RdbDone));
    let replid = m.info("master_replid");
    let Action::FullSync {
        replid: Some(got),
        offset: full_off,
    } = d.events[0].clone()
    else {
        panic!("not a full sync: {:?}", d.events);
    };
    assert_eq!(got, replid);
    assert_eq!(full_off, m.offset());
    match d.events[1] {
        Action::RdbStart { len: None } => assert!(diskless),
        Action::RdbStart { len: Some(n) } => {
            assert!(!diskless);
            assert_eq!(n as usize, d.rdb.len());
        }
        ref other => panic!("{other:?}"),
    }
    assert!(d.rdb.starts_with(b"REDIS"));
    let mut keys = Vec::new();
    let lim = engine::value::EncodingLimits::default();
    engine::rdb::read::file(&d.rdb, &lim, |item| {
        if let engine::rdb::read::Item::Entry(e) = item {
            keys.push(String::from_utf8(e.key).unwrap());
        }
    })
    .unwrap();
    keys.sort();
    assert_eq!(keys, ["counter", "k1", "list"]);
    assert_eq!(d.replica.offset(), full_off);

    // Writes arrive as Redis 7.0 propagates them.
    let from = d.events.len();
    let before = unix_ms();
    m.cmd(&["SET", "k2", "v2"]);
    m.cmd(&["INCR", "counter"]);
    m.cmd(&["EXPIRE", "k1", "100"]);
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .cmd("INCR")
        .arg("counter")
        .query::<()>(&mut m.conn)
        .unwrap();
    let after = unix_ms();
    d.pump_until("EXEC", |d| d.saw_command("EXEC"));
    let cmds = d.commands(from);
    let mut seen = names(&cmds);
    // PEXPIREAT's absolute time: now + 100 s at the master.
    let at: i64 = cmds[3].0[2].parse().unwrap();
    assert!((before + 100_000..=after + 100_000).contains(&at), "{at}");
    seen[3] = seen[3].replace(&at.to_string(), "<at>");
    assert_eq!(
        seen,
        [
            "SELECT 0",
            "SET k2 v2",
            "INCR counter",
            "PEXPIREAT k1 <at>",
            "MULTI",
            "SET a 1",
            "INCR counter",
            "EXEC",
        ]
    );
    // Offsets: every command advances; inside MULTI they wait for EXEC.
    assert!(cmds[0].1 > full_off);
    assert!(cmds[0].1 < cmds[1].1 && cmds[1].1 < cmds[2].1 && cmds[2].1 < cmds[3].1);
    assert_eq!(cmds[4].1, cmds[3].1);
    assert_eq!(cmds[6].1, cmds[3].1);
    assert_eq!(cmds[7].1, m.offset());
    assert_eq!(d.replica.offset(), m.offset());

    // WAIT on the master: REPLCONF GETACK, answered by the replica.
    let port = m.port;
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut c = client.get_connection().unwrap();
        redis::cmd("SET")
            .arg("w")
            .arg("1")
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query::<i64>(&mut c)
            .unwrap()
    });
    // The GETACK follows the write; WAIT returns once our ACK is in.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "WAIT never returned");
        d.pump_for(50);
    }
    assert_eq!(waiter.join().unwrap(), 1);
    d.pump_for(100);
    let set_w = d
        .commands(0)
        .into_iter()
        .find(|(a, _)| a.get(1).is_some_and(|k| k == "w"))
        .unwrap();
    assert_eq!(set_w.0, ["SET", "w", "1"]);
    // The GETACK counts in both offsets, after the write.
    let getack = repl::encode(&[b"REPLCONF", b"GETACK", b"*"]).len() as i64;
    assert_eq!(d.replica.offset(), set_w.1 + getack);
    assert_eq!(d.replica.offset(), m.offset());

    // The periodic ACK: the master's INFO shows our offset.
    let ours = d.replica.offset();
    let want = format!("offset={ours},");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let slave0 = m.info("slave0");
        if slave0.contains(&want) && slave0.contains("state=online") {
            assert!(slave0.contains("port=12345"), "{slave0}");
            break;
        }
        assert!(Instant::now() < deadline, "{slave0} lacks {want}");
        d.pump_for(100);
    }

    // The captured bytes, replayed split at every boundary, give the same
    // events and RDB.
    assert_eq!(replay(&[&d.raw]), (d.events.clone(), d.rdb.clone()));
    for cut in 0..=d.raw.len() {
        let (a, b) = d.raw.split_at(cut);
        assert_eq!(
            replay(&[a, b]),
            (d.events.clone(), d.rdb.clone()),
            "cut at {cut}"
        );
    }

    // A new replica from the saved resume point continues partially.
    let resume = d.replica.resume_point().expect("resumable");
    assert_eq!(
        resume,
        Resume {
            replid: replid.clone(),
            offset: ours,
            db: 0,
        }
    );
    d.disconnect();
    m.cmd(&["SET", "k3", "v3"]);
    m.cmd(&["DEL", "k2"]);
    let mut cfg = Config::new(12345);
    cfg.resume = Some(resume);
    let mut d2 = Driver::new(cfg);
    d2.connect(m.port);
    d2.pump_until("DEL", |d| d.saw_command("DEL"));
    assert_eq!(
        d2.events[0],
        Action::PartialSync {
            replid,
            offset: ours
        }
    );
    assert!(d2.rdb.is_empty());
    let cmds = d2.commands(0);
    assert_eq!(names(&cmds), ["SET k3 v3", "DEL k2"]);
    assert_eq!(cmds[1].1, m.offset());
}

#[test]
fn disk_backed_sync() {
    run(false);
}

#[test]
fn diskless_sync() {
    run(true);
}
