//! The master state machine and the stream merger against a stock
//! redis-server 7.0 replica (`--replicaof` this test's port), driven by a
//! thin blocking-socket driver in this file.
//!
//! `stock_replica_follows_merged_stream`: the replica's handshake gets
//! `+FULLRESYNC` and an empty RDB; writes of two "cores", pushed to the
//! merger out of ticket order (one a transaction across both), then fed
//! through the backlog, show on the replica (GET, in two databases); the
//! replica's ACK reaches the master's state (offset and lag in INFO); after
//! the link is dropped and more writes are made, the replica's PSYNC gets
//! `+CONTINUE` from the backlog and the writes made meanwhile show.
//!
//! The replica is stopped by `tests::Server`'s `Drop`.

use engine::writelog::WriteLog;
use repl::master::{ConnId, Master, MasterConfig, Out};
use repl::merge::{Chunk, Merger, TxnPart};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const ID: &[u8; 40] = b"1111111111222222222233333333334444444444";
const FRESH: &[u8; 40] = b"abcdefabcdefabcdefabcdefabcdefabcdef0123";

/// An RDB with no keys: version 10 (Redis 7.0), EOF, CRC64.
fn empty_rdb() -> Vec<u8> {
    let mut rdb = b"REDIS0010".to_vec();
    rdb.push(0xFF);
    let mut d = engine::rdb::crc64();
    d.update(&rdb);
    rdb.extend_from_slice(&d.finalize().to_le_bytes());
    rdb
}

struct Driver {
    master: Master,
    merger: Merger,
    listener: TcpListener,
    link: Option<(ConnId, TcpStream, Vec<u8>)>,
    next_conn: ConnId,
    start: Instant,
    /// Every PSYNC reply line sent.
    replies: Vec<String>,
}

impl Driver {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn accept(&mut self) {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    self.next_conn += 1;
                    self.link = Some((self.next_conn, s, Vec::new()));
                    return;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the replica never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if let Some((_, s, _)) = &mut self.link {
            s.write_all(bytes).unwrap();
        }
    }

    fn perform(&mut self, outs: Vec<Out>) {
        for o in outs {
            match o {
                Out::Send(_, b) => {
                    if b.starts_with(b"+") {
                        self.replies.push(String::from_utf8_lossy(&b).into_owned());
                    }
                    self.send(&b);
                }
                Out::FullResync { conn, .. } => {
                    self.merger.reset_db();
                    let rdb = empty_rdb();
                    self.master.rdb_transfer(conn, false);
                    self.send(format!("${}\r\n", rdb.len()).as_bytes());
                    self.send(&rdb);
                    let now = self.now();
                    let more = self.master.rdb_done(conn, now);
                    self.perform(more);
                }
                Out::Close(_) => panic!("the master closed the replica"),
                Out::Log(_) => {}
            }
        }
    }

    /// Reads and answers the replica's commands, merges, feeds and sends
    /// the stream, ticks, for `ms` or until `done`.
    fn pump(&mut self, ms: u64, done: impl Fn(&Driver) -> bool) -> bool {
        let until = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < until {
            if done(self) {
                return true;
            }
            let mut stream = Vec::new();
            self.merger.drain(&mut stream).unwrap();
            self.master.feed(&stream);
            let now = self.now();
            let outs = self.master.tick(now);
            self.perform(outs);
            let Some((conn, s, pending)) = &mut self.link else {
                return false;
            };
            let conn = *conn;
            let mut out = Vec::new();
            assert!(self.master.output(conn, &mut out));
            s.write_all(&out).unwrap();
            match s.read(&mut buf) {
                Ok(0) => panic!("the replica closed the link"),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("{e}"),
            }
            let peer = s.peer_addr().unwrap().ip().to_string();
            let mut input = std::mem::take(pending);
            let (mut spans, mut scratch) = (Vec::new(), Vec::new());
            let mut pos = 0;
            while let Ok(engine::resp::Parsed::Command { consumed, inline }) = engine::resp::parse(
                &input[pos..],
                &engine::resp::Limits::default(),
                &mut spans,
                &mut scratch,
            ) {
                let src: &[u8] = if inline { &scratch } else { &input[pos..] };
                let argv: Vec<Vec<u8>> = spans
                    .iter()
                    .map(|&(a, b)| src[a as usize..b as usize].to_vec())
                    .collect();
                pos += consumed;
                let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                let now = self.now();
                let name = args[0].to_ascii_uppercase();
                match name.as_slice() {
                    b"PING" => self.send(b"+PONG\r\n"),
                    b"REPLCONF" => {
                        let r = self.master.replconf(conn, &peer, &args, now);
                        self.send(&r);
                    }
                    b"PSYNC" | b"SYNC" => {
                        let outs = self.master.sync(conn, &peer, &args, now, *FRESH);
                        self.perform(outs);
                    }
                    other => panic!("unexpected {:?}", String::from_utf8_lossy(other)),
                }
            }
            input.drain(..pos);
            if let Some((_, _, p)) = &mut self.link {
                *p = input;
            }
        }
        done(self)
    }

    fn drop_link(&mut self) {
        if let Some((conn, _, _)) = self.link.take() {
            let now = self.now();
            assert!(self.master.closed(conn, now).is_some());
        }
    }
}

/// One core's turn: its writes as a chunk under `ticket`.
fn turn(log: &mut WriteLog, ticket: u64, txn: Option<TxnPart>, writes: &[(u16, &[&str])]) -> Chunk {
    log.reset_db();
    let mark = txn.map(|_| log.begin_multi(None));
    for (db, argv) in writes {
        log.record(*db, argv.iter().map(|a| a.as_bytes()));
    }
    if let Some(m) = mark {
        log.end_multi(m, false);
    }
    let mut bytes = Vec::new();
    log.take(&mut bytes);
    Chunk { ticket, txn, bytes }
}

fn get(conn: &mut redis::Connection, db: u16, key: &str) -> Option<String> {
    redis::cmd("SELECT").arg(db).query::<()>(conn).unwrap();
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

#[test]
fn stock_replica_follows_merged_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let cfg = MasterConfig {
        // No PINGs while offsets are compared.
        ping_period_ms: 3_600_000,
        ..MasterConfig::default()
    };
    let mut d = Driver {
        master: Master::new(*ID, cfg),
        merger: Merger::new(),
        listener,
        link: None,
        next_conn: 0,
        start: Instant::now(),
        replies: Vec::new(),
    };
    let replica = tests::Server::redis(&["--replicaof", "127.0.0.1", &port]);
    let mut client = replica.client();
    d.accept();
    assert!(d.pump(10_000, |d| d
        .master
        .replica(1)
        .is_some_and(|(s, _)| s == repl::master::ReplState::Online)));
    assert_eq!(
        d.replies,
        [format!(
            "+FULLRESYNC {} 0\r\n",
            String::from_utf8_lossy(FRESH)
        )]
    );

    // Two cores; tickets 0..4 arrive out of order; 2 and 3 are the parts
    // of one transaction.
    let (mut a, mut b) = (WriteLog::new(0), WriteLog::new(0));
    let txn = Some(TxnPart {
        id: 1,
        parts: 2,
        form: false,
    });
    let chunks = [
        turn(
            &mut a,
            0,
            None,
            &[(0, &["SET", "k1", "a0"]), (1, &["SET", "k2", "a1"])],
        ),
        turn(&mut b, 1, None, &[(0, &["SET", "k1", "b0"])]),
        turn(&mut a, 2, txn, &[(0, &["SET", "t1", "x"])]),
        turn(&mut b, 3, txn, &[(1, &["SET", "t2", "y"])]),
        turn(&mut b, 4, None, &[(1, &["INCR", "n"])]),
    ];
    for i in [4, 2, 1, 3, 0] {
        d.merger.push(chunks[i].clone());
    }
    let mut ok = false;
    for _ in 0..100 {
        d.pump(50, |_| false);
        if get(&mut client, 1, "n").as_deref() == Some("1") {
            ok = true;
            break;
        }
    }
    assert!(ok, "the writes never reached the replica");
    assert_eq!(
        get(&mut client, 0, "k1").as_deref(),
        Some("b0"),
        "ticket 1 after 0"
    );
    assert_eq!(get(&mut client, 1, "k2").as_deref(), Some("a1"));
    assert_eq!(get(&mut client, 0, "t1").as_deref(), Some("x"));
    assert_eq!(get(&mut client, 1, "t2").as_deref(), Some("y"));

    // The replica acknowledges what it applied.
    let target = d.master.offset();
    assert!(d.pump(5_000, |d| d
        .master
        .replica(1)
        .is_some_and(|(_, off)| off == target)));
    let now = d.now();
    let info = d.master.info(now);
    assert!(
        info.contains(&format!(",state=online,offset={target},lag=")),
        "{info}"
    );
    let info_replica: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut client)
        .unwrap();
    assert!(
        info_replica.contains(&format!("slave_repl_offset:{target}")),
        "{info_replica}"
    );

    // The link drops; writes go on; the replica resumes with +CONTINUE.
    d.drop_link();
    d.merger
        .push(turn(&mut a, 5, None, &[(0, &["SET", "after", "1"])]));
    let mut stream = Vec::new();
    d.merger.drain(&mut stream).unwrap();
    d.master.feed(&stream);
    d.accept();
    let mut ok = false;
    for _ in 0..100 {
        d.pump(50, |_| false);
        if get(&mut client, 0, "after").as_deref() == Some("1") {
            ok = true;
            break;
        }
    }
    assert!(ok, "the write made while disconnected never arrived");
    assert_eq!(d.replies.len(), 2, "{:?}", d.replies);
    assert_eq!(
        d.replies[1],
        format!("+CONTINUE {}\r\n", String::from_utf8_lossy(FRESH))
    );
    assert_eq!(d.master.sync_stats(), (1, 1, 0));
}
