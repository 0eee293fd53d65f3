//! Scripts against the master state machine.

use super::*;
use crate::encode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ID: &[u8; 40] = b"68a1e6270114fa53f8ff5f3b9a840cd231bca8f7";
const ID2: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";
const ID3: &[u8; 40] = b"fedcba9876543210fedcba9876543210fedcba98";
const IP: &str = "127.0.0.1";

/// INFO replication of a stock redis-server 7.0.15 master
/// (`min-replicas-to-write 1`) with one `redis-server --replicaof`
/// replica, captured on this machine: a diskless sync, then `SET a 1`
/// (before the RDB), a PING, `SET b 2`.
const CAPTURED: &str = "# Replication\r\n\
role:master\r\n\
connected_slaves:1\r\n\
min_slaves_good_slaves:1\r\n\
slave0:ip=127.0.0.1,port=17802,state=online,offset=114,lag=0\r\n\
master_failover_state:no-failover\r\n\
master_replid:68a1e6270114fa53f8ff5f3b9a840cd231bca8f7\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:114\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:114\r\n";

fn cmd(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode(&args)
}

fn argv<'a>(args: &'a [&'a str]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

fn replconf(m: &mut Master, conn: ConnId, args: &[&str], now: u64) -> String {
    String::from_utf8(m.replconf(conn, IP, &argv(args), now)).unwrap()
}

fn sync(m: &mut Master, conn: ConnId, args: &[&str], now: u64) -> Vec<Out> {
    m.sync(conn, IP, &argv(args), now, *ID3)
}

fn sent(out: &[Out], conn: ConnId) -> String {
    out.iter()
        .filter_map(|o| match o {
            Out::Send(c, b) if *c == conn => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

fn logs(out: &[Out]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Out::Log(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// A replica (conn 1, port 6380, capa eof psync2) fully synced, disk-backed.
fn with_replica(m: &mut Master, conn: ConnId, now: u64) {
    assert_eq!(
        replconf(m, conn, &["REPLCONF", "listening-port", "6380"], now),
        "+OK\r\n"
    );
    assert_eq!(
        replconf(m, conn, &["REPLCONF", "capa", "eof", "capa", "psync2"], now),
        "+OK\r\n"
    );
    let out = sync(m, conn, &["PSYNC", "?", "-1"], now);
    assert!(out.iter().any(|o| matches!(o, Out::FullResync { .. })));
    m.rdb_transfer(conn, false);
    m.rdb_done(conn, now);
}

#[test]
fn info_as_redis_server_renders_it() {
    // The first PING one period (1 s here) after the start, as in the
    // capture.
    let cfg = MasterConfig {
        min_replicas_to_write: 1,
        ping_period_ms: 1000,
        ..MasterConfig::default()
    };
    let mut m = Master::new(*ID2, cfg);
    assert_eq!(
        replconf(&mut m, 9, &["REPLCONF", "listening-port", "17802"], 0),
        "+OK\r\n"
    );
    replconf(&mut m, 9, &["REPLCONF", "capa", "eof", "capa", "psync2"], 0);
    // The backlog is created under the fresh ID with the first replica.
    let out = m.sync(9, IP, &argv(&["PSYNC", "?", "-1"]), 0, *ID);
    assert_eq!(
        logs(&out),
        [
            "Replica 127.0.0.1:17802 asks for synchronization",
            "Full resync requested by replica 127.0.0.1:17802",
            "Replication backlog created, my new replication IDs are '68a1e6270114fa53f8ff5f3b9a840cd231bca8f7' and '0000000000000000000000000000000000000000'",
        ]
    );
    assert_eq!(sent(&out, 9), format!("+FULLRESYNC {} 0\r\n", text(ID)));
    assert!(out.contains(&Out::FullResync {
        conn: 9,
        offset: 0,
        eof: true,
        empty: false
    }));
    m.feed(&cmd(&["SELECT", "0"]));
    m.feed(&cmd(&["set", "a", "1"]));
    m.rdb_transfer(9, true);
    let info = m.info(500);
    assert!(info.contains("slave0:ip=127.0.0.1,port=17802,state=wait_bgsave,offset=0,lag=0\r\n"));
    assert!(info.contains("min_slaves_good_slaves:0\r\n"));
    let out = m.rdb_done(9, 1000);
    assert_eq!(logs(&out), [
        "Streamed RDB transfer with replica 127.0.0.1:17802 succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming",
        "Synchronization with replica 127.0.0.1:17802 succeeded",
    ]);
    assert_eq!(m.tick(1000), vec![], "the PING goes into the stream");
    m.feed(&cmd(&["SELECT", "0"]));
    m.feed(&cmd(&["set", "b", "2"]));
    assert_eq!(replconf(&mut m, 9, &["REPLCONF", "ACK", "114"], 1500), "");
    assert_eq!(format!("# Replication\r\n{}", m.info(1900)), CAPTURED);
}

#[test]
fn psync_decisions() {
    let mut m = Master::new(*ID, MasterConfig::default());
    with_replica(&mut m, 1, 0);
    let id = text(m.replid());
    m.feed(&[b'x'; 100]);
    // In range, with and without psync2.
    replconf(&mut m, 2, &["REPLCONF", "capa", "psync2"], 0);
    let out = sync(&mut m, 2, &["PSYNC", &id, "51"], 0);
    assert_eq!(sent(&out, 2), format!("+CONTINUE {id}\r\n"));
    assert_eq!(
        logs(&out)[1],
        "Partial resynchronization request from 127.0.0.1:<unknown-replica-port> accepted. Sending 50 bytes of backlog starting from offset 51."
    );
    let mut bytes = Vec::new();
    assert!(m.output(2, &mut bytes));
    assert_eq!(bytes, vec![b'x'; 50]);
    let out = sync(&mut m, 3, &["PSYNC", &id.to_uppercase(), "101"], 0);
    assert_eq!(
        sent(&out, 3),
        "+CONTINUE\r\n",
        "IDs compare case-insensitively"
    );
    // Beyond the end, before the start, another ID, "?".
    for (conn, args, log) in [
        (4, ["PSYNC", &id, "102"], "Unable to partial resync with replica 127.0.0.1:<unknown-replica-port> for lack of backlog (Replica request was: 102)."),
        (5, ["PSYNC", &id, "0"], "Unable to partial resync with replica 127.0.0.1:<unknown-replica-port> for lack of backlog (Replica request was: 0)."),
        (6, ["PSYNC", &text(ID2), "5"], "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '0123456789abcdef0123456789abcdef01234567', my replication IDs are 'fedcba9876543210fedcba9876543210fedcba98' and '0000000000000000000000000000000000000000')"),
        (7, ["PSYNC", "?", "-1"], "Full resync requested by replica 127.0.0.1:<unknown-replica-port>"),
    ] {
        let out = sync(&mut m, conn, &args, 0);
        assert_eq!(logs(&out)[1], log, "{args:?}");
        assert_eq!(sent(&out, conn), format!("+FULLRESYNC {id} 100\r\n"));
    }
    let out = sync(&mut m, 4, &["PSYNC", &id, "1"], 0);
    assert!(out.is_empty(), "already a replica: ignored");
    assert_eq!(m.sync_stats(), (5, 2, 3));
    assert_eq!(m.replica_count(), 7);
    // SYNC: no +FULLRESYNC line, and no timeout (no ACKs expected).
    let out = sync(&mut m, 8, &["SYNC"], 0);
    assert_eq!(sent(&out, 8), "");
    assert!(out.contains(&Out::FullResync {
        conn: 8,
        offset: 100,
        eof: false,
        empty: false
    }));
    // Errors.
    let out = sync(&mut m, 10, &["PSYNC", &id, "x"], 0);
    assert_eq!(
        sent(&out, 10),
        "-ERR value is not an integer or out of range\r\n"
    );
    let out = sync(&mut m, 10, &["PSYNC", &id], 0);
    assert_eq!(
        sent(&out, 10),
        "-ERR wrong number of arguments for 'psync' command\r\n"
    );
    let out = sync(&mut m, 10, &["SYNC", "x"], 0);
    assert_eq!(
        sent(&out, 10),
        "-ERR wrong number of arguments for 'sync' command\r\n"
    );
    let out = sync(&mut m, 10, &["PSYNC", &id, "1", "FAILOVER"], 0);
    assert_eq!(
        sent(&out, 10),
        "-ERR PSYNC FAILOVER can't be sent to a master.\r\n"
    );
    assert_eq!(m.replica(10), None);
    // Refused PSYNCs keep no record of a connection that sent no
    // REPLCONF (its end would never be heard of); one that did keeps it.
    assert!(m.conns.iter().all(|c| c.id != 10));
    replconf(&mut m, 11, &["REPLCONF", "capa", "eof"], 0);
    sync(&mut m, 11, &["PSYNC", &id, "x"], 0);
    assert!(m.conns.iter().any(|c| c.id == 11 && c.capa_eof));
}

#[test]
fn psync_before_any_backlog_and_after_a_promotion() {
    let mut m = Master::new(*ID, MasterConfig::default());
    let out = sync(&mut m, 1, &["PSYNC", &text(ID), "1"], 0);
    assert!(logs(&out)[1].contains("for lack of backlog"));
    // The first replica created the backlog under a new ID.
    assert_eq!(m.replid(), ID3);
    // A replica at offset 500 of ID2 is promoted.
    let mut m = Master::new(*ID2, MasterConfig::default());
    m.restart_at(*ID2, 500);
    let log = m.shift_replid(*ID3);
    assert_eq!(log, format!("Setting secondary replication ID to {}, valid up to offset: 501. New replication ID is {}", text(ID2), text(ID3)));
    assert_eq!(m.replid2(), (ID2, 501));
    m.feed(b"*1\r\n$4\r\nPING\r\n");
    replconf(&mut m, 1, &["REPLCONF", "capa", "psync2"], 0);
    let out = sync(&mut m, 1, &["PSYNC", &text(ID2), "501"], 0);
    assert_eq!(sent(&out, 1), format!("+CONTINUE {}\r\n", text(ID3)));
    let mut bytes = Vec::new();
    assert!(m.output(1, &mut bytes));
    assert_eq!(bytes, b"*1\r\n$4\r\nPING\r\n");
    // Past the secondary ID's end: full.
    let out = sync(&mut m, 2, &["PSYNC", &text(ID2), "502"], 0);
    assert_eq!(logs(&out)[1], "Partial resynchronization not accepted: Requested offset for second ID was 502, but I can reply up to 501");
    assert_eq!(sent(&out, 2), format!("+FULLRESYNC {} 514\r\n", text(ID3)));
    let info = m.info(0);
    assert!(info.contains(&format!(
        "master_replid2:{}\r\nmaster_repl_offset:514\r\nsecond_repl_offset:501\r\n",
        text(ID2)
    )));
}

#[test]
fn replconf_options() {
    let mut m = Master::new(*ID, MasterConfig::default());
    let r = |m: &mut Master, a: &[&str]| replconf(m, 1, a, 0);
    assert_eq!(
        r(&mut m, &["REPLCONF", "listening-port"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(r(&mut m, &["REPLCONF"]), "+OK\r\n");
    assert_eq!(
        r(&mut m, &["REPLCONF", "listening-port", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        r(&mut m, &["REPLCONF", "ip-address", &"a".repeat(256)]),
        "-ERR REPLCONF ip-address provided by replica instance is too long: 256 bytes\r\n"
    );
    assert_eq!(
        r(
            &mut m,
            &["REPLCONF", "ip-address", "10.1.2.3", "capa", "foo"]
        ),
        "+OK\r\n"
    );
    assert_eq!(
        r(&mut m, &["REPLCONF", "bogus", "1"]),
        "-ERR Unrecognized REPLCONF option: bogus\r\n"
    );
    assert_eq!(
        r(&mut m, &["REPLCONF", "rdb-filter-only", "functions keys"]),
        "-ERR Unsupported rdb-filter-only option: keys\r\n"
    );
    // ACK from a non-replica and GETACK on a master: no reply.
    assert_eq!(r(&mut m, &["REPLCONF", "ACK", "5"]), "");
    assert_eq!(r(&mut m, &["REPLCONF", "GETACK", "*"]), "");
    r(&mut m, &["REPLCONF", "listening-port", "7001"]);
    let out = sync(&mut m, 1, &["PSYNC", "?", "-1"], 0);
    assert_eq!(
        logs(&out)[0],
        "Replica 10.1.2.3:7001 asks for synchronization"
    );
    assert!(m
        .info(0)
        .contains("slave0:ip=10.1.2.3,port=7001,state=wait_bgsave,offset=0,lag=0\r\n"));
    m.rdb_transfer(1, false);
    assert!(m.info(0).contains("state=send_bulk"));
    m.rdb_done(1, 0);
    // Offsets only grow; a bad one is ignored.
    r(&mut m, &["REPLCONF", "ACK", "40"]);
    r(&mut m, &["REPLCONF", "ACK", "30"]);
    r(&mut m, &["REPLCONF", "ACK", "x"]);
    assert_eq!(m.replica(1), Some((ReplState::Online, 40)));
}

#[test]
fn an_rdb_only_replica_gets_the_rdb_and_nothing_after() {
    let mut m = Master::new(*ID, MasterConfig::default());
    assert_eq!(
        replconf(&mut m, 1, &["REPLCONF", "rdb-only", "2"], 0),
        "-ERR value is out of range, value must between 0 and 1\r\n"
    );
    assert_eq!(
        replconf(&mut m, 1, &["REPLCONF", "rdb-only", "x"], 0),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        replconf(&mut m, 1, &["REPLCONF", "rdb-only", "1"], 0),
        "+OK\r\n"
    );
    with_replica(&mut m, 2, 0);
    let out = sync(&mut m, 1, &["SYNC"], 0);
    assert!(out
        .iter()
        .any(|o| matches!(o, Out::FullResync { conn: 1, .. })));
    m.feed(&cmd(&["SET", "k", "v"]));
    m.rdb_transfer(1, false);
    let done = m.rdb_done(1, 0);
    assert_eq!(
        logs(&done),
        ["RDB transfer completed, rdb only replica (127.0.0.1:<unknown-replica-port>) should be disconnected asap"]
    );
    assert!(m.rdb_transmitted(1) && !m.rdb_transmitted(2));
    // No stream for it, however far the master goes, and INFO leaves it
    // out (the other replica stays slave0).
    let mut got = Vec::new();
    assert!(m.output(1, &mut got) && got.is_empty());
    for _ in 0..10_000 {
        m.feed(&cmd(&["SET", "k", "v"]));
    }
    assert!(m.output(1, &mut got) && got.is_empty());
    let info = m.info(0);
    assert!(
        info.contains("slave0:") && !info.contains("slave1:"),
        "{info}"
    );
    // Off again: the next replica on that connection is an ordinary one.
    replconf(&mut m, 3, &["REPLCONF", "rdb-only", "1"], 0);
    replconf(&mut m, 3, &["REPLCONF", "rdb-only", "0"], 0);
    sync(&mut m, 3, &["SYNC"], 0);
    m.rdb_transfer(3, false);
    m.rdb_done(3, 0);
    assert_eq!(m.replica(3).map(|r| r.0), Some(ReplState::Online));
}

#[test]
fn stream_output_waits_for_the_first_ack_after_a_diskless_rdb() {
    let mut m = Master::new(*ID, MasterConfig::default());
    replconf(&mut m, 1, &["REPLCONF", "capa", "eof"], 0);
    sync(&mut m, 1, &["PSYNC", "?", "-1"], 0);
    m.feed(b"abc");
    let mut bytes = Vec::new();
    assert!(m.output(1, &mut bytes) && bytes.is_empty(), "not online");
    m.rdb_transfer(1, true);
    m.rdb_done(1, 0);
    assert!(
        m.output(1, &mut bytes) && bytes.is_empty(),
        "waits for an ACK"
    );
    replconf(&mut m, 1, &["REPLCONF", "ACK", "0"], 0);
    assert!(m.output(1, &mut bytes));
    assert_eq!(bytes, b"abc");
    m.feed(b"de");
    assert!(m.output(1, &mut bytes));
    assert_eq!(bytes, b"abcde");
    // A replica the backlog no longer covers must be dropped.
    sync(&mut m, 2, &["PSYNC", "?", "-1"], 0);
    m.feed(&vec![b'y'; backlog::DEFAULT_SIZE + 1]);
    assert!(!m.output(2, &mut Vec::new()));
    assert!(!m.output(1, &mut Vec::new()));
    assert_eq!(
        m.closed(2, 0).as_deref(),
        Some("Connection with replica 127.0.0.1:<unknown-replica-port> lost.")
    );
    assert_eq!(m.closed(2, 0), None);
}

#[test]
fn cron_pings_newlines_timeouts_and_good_replicas() {
    let cfg = MasterConfig {
        min_replicas_to_write: 2,
        min_replicas_max_lag: 10,
        ping_period_ms: 10_000,
        ..MasterConfig::default()
    };
    let mut m = Master::new(*ID, cfg);
    assert_eq!(m.check_write(), Err(NOREPLICAS));
    assert!(m.tick(0).is_empty());
    assert_eq!(m.offset(), 0, "no replicas: no PING, no backlog");
    with_replica(&mut m, 1, 0);
    replconf(&mut m, 2, &["REPLCONF", "listening-port", "6381"], 0);
    sync(&mut m, 2, &["PSYNC", "?", "-1"], 0);
    // Cron runs once a second: the PING waits for its period; replica 2
    // waits for its RDB and gets a newline.
    assert!(m.tick(500).is_empty());
    assert_eq!(m.tick(1000), vec![Out::Send(2, b"\n".to_vec())]);
    assert_eq!(m.offset(), 0);
    m.rdb_transfer(2, false);
    assert!(m.tick(2000).is_empty());
    m.rdb_done(2, 2000);
    assert_eq!(m.good_replicas(), 2);
    assert_eq!(m.check_write(), Ok(()));
    assert!(m.tick(10_000).is_empty());
    assert_eq!(m.offset(), 14, "one PING");
    let mut bytes = Vec::new();
    m.output(1, &mut bytes);
    assert_eq!(bytes, PING);
    // Replica 1 keeps acknowledging; 2 does not.
    replconf(&mut m, 1, &["REPLCONF", "ACK", "14"], 12_500);
    m.tick(12_999);
    assert_eq!(m.good_replicas(), 2, "lag 10 s is still good");
    assert!(m.tick(13_000).is_empty(), "cron ran less than a second ago");
    assert_eq!(m.good_replicas(), 2);
    m.tick(14_000);
    assert_eq!(m.good_replicas(), 1);
    assert_eq!(m.check_write(), Err(NOREPLICAS));
    assert_eq!(m.count_acks(14), 1);
    assert_eq!(m.count_acks(15), 0);
    assert!(m.info(14_000).contains("slave0:ip=127.0.0.1,port=6380,state=online,offset=14,lag=2\r\nslave1:ip=127.0.0.1,port=6381,state=online,offset=0,lag=12\r\n"));
    m.request_acks();
    assert_eq!(m.offset(), 14 + GETACK.len() as i64);
    replconf(&mut m, 1, &["REPLCONF", "ACK", "50"], 60_000);
    let out = m.tick(62_001);
    assert_eq!(
        out,
        vec![
            Out::Log("Disconnecting timedout replica (streaming sync): 127.0.0.1:6381".into()),
            Out::Close(2)
        ]
    );
    assert_eq!(m.replica_count(), 1);
}

#[test]
fn any_input_never_panics() {
    let words: [&[u8]; 12] = [
        b"REPLCONF",
        b"PSYNC",
        b"SYNC",
        b"ack",
        b"listening-port",
        b"capa",
        b"?",
        b"-1",
        b"99999999999999999999",
        b"",
        b"ip-address",
        b"FAILOVER",
    ];
    let mut rng = StdRng::seed_from_u64(1);
    let mut m = Master::new(*ID, MasterConfig::default());
    for i in 0..20_000u64 {
        let n = rng.gen_range(0..6);
        let args: Vec<&[u8]> = (0..n)
            .map(|_| words[rng.gen_range(0..words.len())])
            .collect();
        let conn = rng.gen_range(0..5);
        if rng.gen_bool(0.5) {
            m.replconf(conn, "::1", &args, i);
        } else {
            m.sync(conn, "::1", &args, i, *ID3);
        }
        match rng.gen_range(0..8) {
            0 => m.feed(&vec![b'z'; rng.gen_range(0..40_000)]),
            1 => drop(m.closed(conn, i)),
            2 => m.rdb_transfer(conn, rng.gen_bool(0.5)),
            3 => drop(m.rdb_done(conn, i)),
            4 => drop(m.output(conn, &mut Vec::new())),
            _ => drop(m.tick(i * 10)),
        }
        m.info(i);
    }
}

/// `REPLCONF rdb-filter-only` (redis-cli `--replica`, `--functions-rdb`):
/// EOF capability required, then a full resynchronization without data.
#[test]
fn filtered_replicas_get_an_empty_rdb() {
    let mut m = Master::new(*ID, MasterConfig::default());
    let r = |m: &mut Master, conn: ConnId, args: &[&str]| {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        String::from_utf8(m.replconf(conn, "127.0.0.1", &argv, 0)).unwrap()
    };
    assert_eq!(
        r(&mut m, 1, &["REPLCONF", "rdb-filter-only", ""]),
        "+OK\r\n"
    );
    let out = sync(&mut m, 1, &["SYNC"], 0);
    assert_eq!(
        sent(&out, 1),
        "-ERR Filtered replica requires EOF capability\r\n"
    );
    assert_eq!(r(&mut m, 2, &["REPLCONF", "capa", "eof"]), "+OK\r\n");
    assert_eq!(
        r(&mut m, 2, &["REPLCONF", "rdb-filter-only", "functions"]),
        "+OK\r\n"
    );
    let out = sync(&mut m, 2, &["SYNC"], 0);
    assert!(out.contains(&Out::FullResync {
        conn: 2,
        offset: 0,
        eof: true,
        empty: true
    }));
}

/// Found by `fuzz_tests::master_from_any_offset`: a history continued at
/// `i64::MAX` (an offset from a peer or a file) overflowed in
/// `shift_replid`, in the backlog and in PSYNC (panics in debug builds).
#[test]
fn a_history_at_i64_max_does_not_overflow() {
    let mut m = Master::new(*ID, MasterConfig::default());
    m.restart_at(*ID2, i64::MAX);
    m.shift_replid(*ID3);
    assert_eq!(m.replid2(), (ID2, i64::MAX));
    let max = i64::MAX.to_string();
    replconf(&mut m, 1, &["REPLCONF", "capa", "psync2"], 0);
    let out = sync(&mut m, 1, &["PSYNC", &text(ID3), &max], 0);
    assert_eq!(sent(&out, 1), format!("+CONTINUE {}\r\n", text(ID3)));
    let out = sync(&mut m, 2, &["PSYNC", "?", "-1"], 0);
    assert_eq!(
        sent(&out, 2),
        format!("+FULLRESYNC {} {max}\r\n", text(ID3))
    );
    m.feed(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(m.offset(), i64::MAX);
    assert!(m.output(1, &mut Vec::new()));
    assert!(m.info(0).contains(&format!("master_repl_offset:{max}\r\n")));
}

/// A diskless transfer whose replica stopped taking bytes goes after
/// `repl-timeout` (it would hold the snapshot job for good); one that
/// has not started writing, or a disk-backed one, does not.
#[test]
fn a_stuck_diskless_transfer_times_out() {
    let mut m = Master::new(*ID, MasterConfig::default());
    let timeout = m.config().timeout_ms;
    for conn in [1, 2, 3] {
        replconf(&mut m, conn, &["REPLCONF", "capa", "eof"], 0);
        sync(&mut m, conn, &["PSYNC", "?", "-1"], 0);
    }
    m.rdb_transfer(1, true);
    m.rdb_transfer(2, true);
    m.rdb_transfer(3, false);
    m.rdb_progress(1, 1000);
    m.rdb_progress(1, 5000);
    let out = m.tick(5000 + timeout);
    assert!(!out.iter().any(|o| matches!(o, Out::Close(_))), "{out:?}");
    let out = m.tick(5001 + timeout + 1000);
    assert!(out.contains(&Out::Close(1)), "{out:?}");
    assert!(logs(&out)
        .iter()
        .any(|l| l.starts_with("Disconnecting timedout replica (full sync): ")));
    assert!(!out.contains(&Out::Close(2)) && !out.contains(&Out::Close(3)));
    assert_eq!(m.replica(1), None);
}

/// A newline from a replica (sent while it loads our RDB) counts as a
/// sign of life, as in Redis: it is not dropped for want of ACKs.
#[test]
fn a_loading_replicas_newlines_keep_it() {
    let mut m = Master::new(*ID, MasterConfig::default());
    let timeout = m.config().timeout_ms;
    with_replica(&mut m, 1, 0);
    m.newline(1, timeout);
    let out = m.tick(timeout + 1000);
    assert!(!out.contains(&Out::Close(1)), "{out:?}");
    let out = m.tick(2 * timeout + 2000);
    assert!(out.contains(&Out::Close(1)), "{out:?}");
}
