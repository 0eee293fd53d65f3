//! The master side of Redis 7.0's replication, free of I/O.
//!
//! [`Master`] follows Redis 7.0.15's `replication.c` (`syncCommand`,
//! `masterTryPartialResynchronization`, `replconfCommand`,
//! `updateSlavesWaitingBgsave`, `shiftReplicationId`,
//! `refreshGoodSlavesCount`, `replicationCountAcksByOffset`, the master part
//! of `replicationCron`) and the replication section of
//! `genRedisInfoString`. The driver owns the sockets: it hands over the
//! `REPLCONF`/`SYNC`/`PSYNC` commands of a connection, the merged write
//! stream ([`Master::feed`]), the progress of the RDB it sends, and the
//! time in milliseconds; it gets back replies, [`Out`] actions and, per
//! replica, the stream bytes to write ([`Master::output`]). Nothing here
//! reads a clock, does I/O or panics on any input.
//!
//! The stream reaches a replica from the backlog: a replica's position is
//! an offset, and [`Master::output`] gives it what the backlog holds past
//! it. A replica that falls further behind than the backlog holds
//! (`repl-backlog-size`) is dropped: Redis would keep the bytes in the
//! replica's output buffer up to `client-output-buffer-limit replica`
//! (256 MiB by default).
//!
//! As in Redis, the backlog exists from the first replica's SYNC (created
//! under a new replication ID), and `master_repl_offset` does not move
//! while there is no backlog. Randomness is an input: the caller passes a
//! fresh 40-character ID to the calls that may need one.

use crate::backlog::{self, Backlog};
use crate::RUN_ID_SIZE;

/// The driver's name for a client connection.
pub type ConnId = u64;

/// `PING` as `replicationCron` feeds it into the stream.
pub const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
/// `REPLCONF GETACK *` as WAIT has it fed into the stream.
pub const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
/// The reply to a write refused by `min-replicas-to-write`.
pub const NOREPLICAS: &str = "-NOREPLICAS Not enough good replicas to write.";
/// `replicationCron`'s period.
pub const CRON_PERIOD_MS: u64 = 1000;
/// `NET_HOST_STR_LEN`: `REPLCONF ip-address` must be shorter.
const HOST_STR_LEN: usize = 256;
const NO_REPLID: [u8; RUN_ID_SIZE] = [b'0'; RUN_ID_SIZE];

/// The master's replication settings (Redis's defaults from [`MasterConfig::default`]).
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// `repl-backlog-size` in bytes (1 MiB).
    pub backlog_size: usize,
    /// `repl-ping-replica-period` in milliseconds (10 s).
    pub ping_period_ms: u64,
    /// `repl-timeout` in milliseconds (60 s).
    pub timeout_ms: u64,
    /// `min-replicas-to-write` (0: off).
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag` in seconds (10; 0: off).
    pub min_replicas_max_lag: u64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            backlog_size: backlog::DEFAULT_SIZE,
            ping_period_ms: 10_000,
            timeout_ms: 60_000,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
        }
    }
}

/// A replica's state, as INFO names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplState {
    /// `wait_bgsave`: `+FULLRESYNC` sent, the RDB is being made (or, for a
    /// diskless transfer, streamed).
    WaitBgsave,
    /// `send_bulk`: a disk-backed RDB is being sent.
    SendBulk,
    /// `online`: the command stream flows.
    Online,
    /// A replica that asked for the RDB only (`REPLCONF rdb-only 1`, as
    /// `redis-cli --rdb` does) got it whole: it takes no stream and is
    /// closed once its output is written (INFO leaves it out, as Redis).
    RdbTransmitted,
}

impl ReplState {
    fn name(self) -> &'static str {
        match self {
            ReplState::WaitBgsave => "wait_bgsave",
            ReplState::SendBulk => "send_bulk",
            ReplState::Online => "online",
            ReplState::RdbTransmitted => "",
        }
    }
}

/// What the driver does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Write these bytes to the connection.
    Send(ConnId, Vec<u8>),
    /// A full resynchronization: send the connection an RDB of the dataset
    /// exactly as of stream offset `offset` (`$<len>` framing, or the
    /// diskless `$EOF:<mark>` one when `eof` — the replica announced
    /// `capa eof`), telling [`Master::rdb_transfer`] when it starts and
    /// [`Master::rdb_done`] when it is sent. The merged stream must select
    /// its database again: call `Merger::reset_db` before the next drain.
    FullResync {
        conn: ConnId,
        offset: i64,
        eof: bool,
        /// `REPLCONF rdb-filter-only`: the RDB holds no keys (and slotd
        /// has no functions to keep), so none is taken.
        empty: bool,
    },
    /// Close the connection (then call [`Master::closed`]).
    Close(ConnId),
    /// A line for the log, in Redis's wording.
    Log(String),
}

#[derive(Clone, Debug)]
struct Slave {
    /// Order of becoming a replica (INFO lists them so).
    seq: u64,
    state: ReplState,
    /// Came with SYNC: no `+FULLRESYNC`, no ACKs expected.
    pre_psync: bool,
    ack_off: i64,
    /// Milliseconds.
    ack_time: u64,
    /// The next stream offset to send.
    sent: i64,
    /// Diskless: the stream starts at the first ACK after the RDB.
    start_on_ack: bool,
    /// The RDB transfer started; `Some(true)` when diskless.
    diskless: Option<bool>,
    /// When the replica last took bytes of a diskless RDB (0: none yet;
    /// Redis's `repl_last_partial_write`).
    rdb_write_ms: u64,
    /// `REPLCONF rdb-only 1`: the RDB and nothing after it.
    rdb_only: bool,
}

#[derive(Clone, Debug)]
struct Conn {
    id: ConnId,
    peer_ip: String,
    listening_port: i32,
    addr: Option<String>,
    capa_eof: bool,
    capa_psync2: bool,
    rdb_only: bool,
    /// `REPLCONF rdb-filter-only`: the RDB without the data.
    exclude_data: bool,
    slave: Option<Slave>,
}

impl Conn {
    /// `replicationGetSlaveName`.
    fn name(&self) -> String {
        let addr = self.addr.as_deref().unwrap_or(&self.peer_ip);
        if self.listening_port == 0 {
            format!("{addr}:<unknown-replica-port>")
        } else if addr.contains(':') {
            format!("[{addr}]:{}", self.listening_port)
        } else {
            format!("{addr}:{}", self.listening_port)
        }
    }
}

/// The master's side of replication: IDs, offset, backlog, replicas.
pub struct Master {
    cfg: MasterConfig,
    replid: [u8; RUN_ID_SIZE],
    replid2: [u8; RUN_ID_SIZE],
    second_off: i64,
    off: i64,
    backlog: Option<Backlog>,
    conns: Vec<Conn>,
    next_seq: u64,
    good: u32,
    next_cron: u64,
    next_ping: u64,
    /// A manual failover paused the writers: no PING goes into the stream
    /// (its offset must stay where they stopped).
    pings_held: bool,
    sync_full: u64,
    sync_partial_ok: u64,
    sync_partial_err: u64,
}

fn ok() -> Vec<u8> {
    b"+OK\r\n".to_vec()
}

fn err(msg: &str) -> Vec<u8> {
    format!("-ERR {msg}\r\n").into_bytes()
}

/// `string2ll`'s strictness (no spaces, no `+`, no leading zeros).
fn parse_ll(b: &[u8]) -> Option<i64> {
    engine::resp::parse_i64(b)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Master {
    /// A master with replication ID `replid`, offset 0, no backlog yet.
    pub fn new(replid: [u8; RUN_ID_SIZE], cfg: MasterConfig) -> Master {
        let first_ping = cfg.ping_period_ms.max(1);
        Master {
            cfg,
            replid,
            replid2: NO_REPLID,
            second_off: -1,
            off: 0,
            backlog: None,
            conns: Vec::new(),
            next_seq: 0,
            good: 0,
            next_cron: 0,
            // As Redis's cron, whose loop count starts with the server
            // (and no replica): the first PING one period on.
            next_ping: first_ping,
            pings_held: false,
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
        }
    }

    pub fn config(&self) -> &MasterConfig {
        &self.cfg
    }

    /// Changes the settings (`CONFIG SET`); a new `backlog_size` resizes
    /// the backlog keeping its most recent bytes.
    pub fn set_config(&mut self, cfg: MasterConfig) {
        if let Some(b) = &mut self.backlog {
            b.resize(cfg.backlog_size);
        }
        self.cfg = cfg;
    }

    pub fn replid(&self) -> &[u8; RUN_ID_SIZE] {
        &self.replid
    }

    /// `master_replid2` and `second_repl_offset`.
    pub fn replid2(&self) -> (&[u8; RUN_ID_SIZE], i64) {
        (&self.replid2, self.second_off)
    }

    /// `master_repl_offset`.
    pub fn offset(&self) -> i64 {
        self.off
    }

    pub fn backlog(&self) -> Option<&Backlog> {
        self.backlog.as_ref()
    }

    /// `sync_full`, `sync_partial_ok`, `sync_partial_err` of INFO stats.
    pub fn sync_stats(&self) -> (u64, u64, u64) {
        (self.sync_full, self.sync_partial_ok, self.sync_partial_err)
    }

    /// `connected_slaves`.
    pub fn replica_count(&self) -> usize {
        self.slaves().count()
    }

    /// A replica's state and acknowledged offset.
    pub fn replica(&self, conn: ConnId) -> Option<(ReplState, i64)> {
        let c = self.conns.iter().find(|c| c.id == conn)?;
        c.slave.as_ref().map(|s| (s.state, s.ack_off))
    }

    fn slaves(&self) -> impl Iterator<Item = (&Conn, &Slave)> {
        self.conns
            .iter()
            .filter_map(|c| c.slave.as_ref().map(|s| (c, s)))
    }

    fn conn(&mut self, id: ConnId, peer_ip: &str) -> &mut Conn {
        let at = match self.conns.iter().position(|c| c.id == id) {
            Some(at) => at,
            None => {
                self.conns.push(Conn {
                    id,
                    peer_ip: peer_ip.to_string(),
                    listening_port: 0,
                    addr: None,
                    capa_eof: false,
                    capa_psync2: false,
                    rdb_only: false,
                    exclude_data: false,
                    slave: None,
                });
                self.conns.len() - 1
            }
        };
        &mut self.conns[at]
    }

    /// The merged write stream (whole commands): appended to the backlog,
    /// `master_repl_offset` moves on. Nothing happens without a backlog.
    pub fn feed(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.backlog {
            b.feed(bytes);
            self.off = b.master_repl_offset();
        }
    }

    /// WAIT: feeds `REPLCONF GETACK *` so replicas acknowledge at once
    /// (call it once per event-loop turn that has waiting clients, between
    /// whole drains of the merger).
    pub fn request_acks(&mut self) {
        if self.replica_count() > 0 {
            self.feed(GETACK);
        }
    }

    /// `replicationCountAcksByOffset`: online replicas that acknowledged at
    /// least `offset`.
    pub fn count_acks(&self, offset: i64) -> usize {
        self.slaves()
            .filter(|(_, s)| s.state == ReplState::Online && s.ack_off >= offset)
            .count()
    }

    /// `checkGoodReplicasStatus` before a write: `Err` with the reply when
    /// `min-replicas-to-write` is not met.
    pub fn check_write(&self) -> Result<(), &'static str> {
        let on = self.cfg.min_replicas_to_write > 0 && self.cfg.min_replicas_max_lag > 0;
        if on && self.good < self.cfg.min_replicas_to_write {
            return Err(NOREPLICAS);
        }
        Ok(())
    }

    /// Holds the PINGs to the replicas while a manual failover has the
    /// writers paused (`replicationCron` skips them then).
    pub fn hold_pings(&mut self, hold: bool) {
        self.pings_held = hold;
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag` (seconds), which
    /// CONFIG SET may change at any time.
    pub fn set_min_replicas(&mut self, to_write: u32, max_lag: u64) {
        self.cfg.min_replicas_to_write = to_write;
        self.cfg.min_replicas_max_lag = max_lag;
    }

    /// The count of good replicas (`min_slaves_good_slaves`) as last
    /// refreshed.
    pub fn good_replicas(&self) -> u32 {
        self.good
    }

    /// `refreshGoodSlavesCount`.
    fn refresh_good(&mut self, now: u64) {
        if self.cfg.min_replicas_to_write == 0 || self.cfg.min_replicas_max_lag == 0 {
            return;
        }
        let max_lag = self.cfg.min_replicas_max_lag;
        self.good = self
            .slaves()
            .filter(|(_, s)| s.state == ReplState::Online && lag_secs(now, s.ack_time) <= max_lag)
            .count() as u32;
    }

    /// Continues the history `replid` from `offset` with an empty backlog
    /// there, no secondary ID (a replica's link loaded its master's RDB:
    /// Redis frees the backlog and makes a new one at the master's
    /// offset). Connections are kept: the caller closes the replicas
    /// that followed the old history.
    pub fn restart_at(&mut self, replid: [u8; RUN_ID_SIZE], offset: i64) {
        self.replid = replid;
        self.replid2 = NO_REPLID;
        self.second_off = -1;
        self.off = offset;
        self.backlog = Some(Backlog::new(self.cfg.backlog_size, offset));
    }

    /// `shiftReplicationId`, on promotion: the current ID becomes the
    /// secondary one, valid up to `master_repl_offset + 1`; `fresh` is the
    /// new ID. Returns the log line.
    pub fn shift_replid(&mut self, fresh: [u8; RUN_ID_SIZE]) -> String {
        self.replid2 = self.replid;
        self.second_off = self.off.saturating_add(1);
        self.replid = fresh;
        format!(
            "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
            text(&self.replid2),
            self.second_off,
            text(&self.replid)
        )
    }

    /// `REPLCONF <option> <value> ...` from a connection whose peer address
    /// is `peer_ip`: returns the reply (empty for `ACK` and `GETACK`, which
    /// get none). `argv[0]` is `REPLCONF`.
    pub fn replconf(&mut self, conn: ConnId, peer_ip: &str, argv: &[&[u8]], now: u64) -> Vec<u8> {
        if argv.len().is_multiple_of(2) {
            return err("syntax error");
        }
        let mut i = 1;
        while i + 1 < argv.len() {
            let (opt, val) = (argv[i], argv[i + 1]);
            i += 2;
            let c = self.conn(conn, peer_ip);
            if opt.eq_ignore_ascii_case(b"listening-port") {
                match parse_ll(val) {
                    // Redis keeps it in an int.
                    Some(p) => c.listening_port = p as i32,
                    None => return err("value is not an integer or out of range"),
                }
            } else if opt.eq_ignore_ascii_case(b"ip-address") {
                if val.len() >= HOST_STR_LEN {
                    return err(&format!(
                        "REPLCONF ip-address provided by replica instance is too long: {} bytes",
                        val.len()
                    ));
                }
                c.addr = Some(text(val));
            } else if opt.eq_ignore_ascii_case(b"capa") {
                if val.eq_ignore_ascii_case(b"eof") {
                    c.capa_eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    c.capa_psync2 = true;
                }
            } else if opt.eq_ignore_ascii_case(b"ack") {
                let Some(s) = &mut c.slave else {
                    return Vec::new();
                };
                let Some(off) = parse_ll(val) else {
                    return Vec::new();
                };
                if off > s.ack_off {
                    s.ack_off = off;
                }
                s.ack_time = now;
                if s.start_on_ack && s.state == ReplState::Online {
                    s.start_on_ack = false;
                }
                return Vec::new();
            } else if opt.eq_ignore_ascii_case(b"getack") {
                return Vec::new();
            } else if opt.eq_ignore_ascii_case(b"rdb-only") {
                match parse_ll(val) {
                    Some(v @ 0..=1) => c.rdb_only = v == 1,
                    Some(_) => return err("value is out of range, value must between 0 and 1"),
                    None => return err("value is not an integer or out of range"),
                }
            } else if opt.eq_ignore_ascii_case(b"rdb-filter-only") {
                // Include filters: none (an empty RDB, `redis-cli
                // --replica`) or `functions` (`--functions-rdb`; slotd
                // has none). Either way, no data.
                for f in val
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|f| !f.is_empty())
                {
                    if !f.eq_ignore_ascii_case(b"functions") {
                        return err(&format!("Unsupported rdb-filter-only option: {}", text(f)));
                    }
                }
                c.exclude_data = true;
            } else {
                return err(&format!("Unrecognized REPLCONF option: {}", text(opt)));
            }
        }
        ok()
    }

    /// `SYNC` or `PSYNC <replid> <offset>` (`argv[0]` names which) from a
    /// connection whose peer address is `peer_ip`. `fresh` is a new random
    /// ID, used only when this first replica creates the backlog.
    pub fn sync(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        argv: &[&[u8]],
        now: u64,
        fresh: [u8; RUN_ID_SIZE],
    ) -> Vec<Out> {
        let mut out = Vec::new();
        let psync = argv
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"psync"));
        let bad_arity = if psync {
            argv.len() < 3
        } else {
            argv.len() != 1
        };
        if bad_arity {
            let name = if psync { "psync" } else { "sync" };
            out.push(Out::Send(
                conn,
                err(&format!("wrong number of arguments for '{name}' command")),
            ));
            return out;
        }
        // A connection that sent no REPLCONF has no record yet: one made
        // here goes again if the PSYNC is refused (nothing would remove it:
        // the node hears of the connection's end only once it is known).
        let known = self.conns.iter().any(|c| c.id == conn);
        let refused = |me: &mut Self, out: Vec<Out>| {
            if !known {
                me.conns.retain(|c| c.id != conn);
            }
            out
        };
        let c = self.conn(conn, peer_ip);
        if c.slave.is_some() {
            return out;
        }
        if psync && argv.len() > 3 && argv[3].eq_ignore_ascii_case(b"failover") {
            out.push(Out::Log(format!(
                "Failover request received for replid {}.",
                text(argv[1])
            )));
            out.push(Out::Send(
                conn,
                err("PSYNC FAILOVER can't be sent to a master."),
            ));
            return refused(self, out);
        }
        if c.exclude_data && !c.capa_eof {
            out.push(Out::Send(
                conn,
                err("Filtered replica requires EOF capability"),
            ));
            return out;
        }
        let name = c.name();
        out.push(Out::Log(format!("Replica {name} asks for synchronization")));
        let mut pre_psync = false;
        if psync {
            let Some(offset) = parse_ll(argv[2]) else {
                out.push(Out::Send(
                    conn,
                    err("value is not an integer or out of range"),
                ));
                out.push(Out::Log(format!(
                    "Replica {name} asks for synchronization but with a wrong offset"
                )));
                return refused(self, out);
            };
            if self.try_partial(conn, &name, argv[1], offset, now, &mut out) {
                self.sync_partial_ok += 1;
                return out;
            }
            if argv[1].first() != Some(&b'?') {
                self.sync_partial_err += 1;
            }
        } else {
            pre_psync = true;
        }
        self.sync_full += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let c = self.conn(conn, peer_ip);
        let eof = c.capa_eof;
        let rdb_only = c.rdb_only;
        let empty = c.exclude_data;
        c.slave = Some(Slave {
            seq,
            state: ReplState::WaitBgsave,
            pre_psync,
            ack_off: 0,
            ack_time: 0,
            sent: 0,
            start_on_ack: false,
            diskless: None,
            rdb_write_ms: 0,
            rdb_only,
        });
        if self.backlog.is_none() && self.replica_count() == 1 {
            self.replid = fresh;
            self.replid2 = NO_REPLID;
            self.second_off = -1;
            self.backlog = Some(Backlog::new(self.cfg.backlog_size, self.off));
            out.push(Out::Log(format!(
                "Replication backlog created, my new replication IDs are '{}' and '{}'",
                text(&self.replid),
                text(&self.replid2)
            )));
        }
        // replicationSetupSlaveForFullResync, at once: the snapshot is
        // fork-less, taken now.
        let offset = self.off;
        if let Some(s) = self.conn(conn, peer_ip).slave.as_mut() {
            s.sent = offset.saturating_add(1);
        }
        if !pre_psync {
            let line = format!("+FULLRESYNC {} {}\r\n", text(&self.replid), offset);
            out.push(Out::Send(conn, line.into_bytes()));
        }
        out.push(Out::FullResync {
            conn,
            offset,
            eof,
            empty,
        });
        out
    }

    /// `masterTryPartialResynchronization`: true when `+CONTINUE` was sent.
    fn try_partial(
        &mut self,
        conn: ConnId,
        name: &str,
        id: &[u8],
        offset: i64,
        now: u64,
        out: &mut Vec<Out>,
    ) -> bool {
        let is1 = id.eq_ignore_ascii_case(&self.replid);
        let is2 = id.eq_ignore_ascii_case(&self.replid2);
        if !is1 && (!is2 || offset > self.second_off) {
            out.push(Out::Log(if id.first() == Some(&b'?') {
                format!("Full resync requested by replica {name}")
            } else if !is1 && !is2 {
                format!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{}', my replication IDs are '{}' and '{}')",
                    text(id),
                    text(&self.replid),
                    text(&self.replid2)
                )
            } else {
                format!(
                    "Partial resynchronization not accepted: Requested offset for second ID was {offset}, but I can reply up to {}",
                    self.second_off
                )
            }));
            return false;
        }
        let Some(backlog) = self.backlog.as_ref().filter(|b| b.covers(offset)) else {
            out.push(Out::Log(format!(
                "Unable to partial resync with replica {name} for lack of backlog (Replica request was: {offset})."
            )));
            if offset > self.off {
                out.push(Out::Log(format!(
                    "Warning: replica {name} tried to PSYNC with an offset that is greater than the master replication offset."
                )));
            }
            return false;
        };
        let len = backlog.master_repl_offset() - offset + 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let replid = text(&self.replid);
        let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) else {
            return false;
        };
        if c.rdb_only {
            // Redis lets such a replica continue, and it never gets the
            // stream it was promised: it wants a full RDB, so it gets one.
            return false;
        }
        let line = if c.capa_psync2 {
            format!("+CONTINUE {replid}\r\n")
        } else {
            "+CONTINUE\r\n".to_string()
        };
        c.slave = Some(Slave {
            seq,
            state: ReplState::Online,
            pre_psync: false,
            ack_off: 0,
            ack_time: now,
            sent: offset,
            start_on_ack: false,
            diskless: None,
            rdb_write_ms: 0,
            rdb_only: false,
        });
        out.push(Out::Send(conn, line.into_bytes()));
        out.push(Out::Log(format!(
            "Partial resynchronization request from {name} accepted. Sending {len} bytes of backlog starting from offset {offset}."
        )));
        self.refresh_good(now);
        true
    }

    /// The RDB for a full resynchronization starts going out on `conn`:
    /// disk-backed (`$<len>`, state `send_bulk`) or diskless (the `$EOF:`
    /// framing, state stays `wait_bgsave`). Either way the keepalive
    /// newlines stop.
    pub fn rdb_transfer(&mut self, conn: ConnId, diskless: bool) {
        if let Some(s) = self.slave_mut(conn) {
            if s.state == ReplState::WaitBgsave {
                s.diskless = Some(diskless);
                if !diskless {
                    s.state = ReplState::SendBulk;
                }
            }
        }
    }

    /// An empty line from replica `conn` at `now`: it is loading our RDB
    /// and still there (Redis refreshes `repl_ack_time` on it).
    pub fn newline(&mut self, conn: ConnId, now: u64) {
        if let Some(s) = self.slave_mut(conn) {
            s.ack_time = s.ack_time.max(now);
        }
    }

    /// `conn` took bytes of its diskless RDB at `now`.
    pub fn rdb_progress(&mut self, conn: ConnId, now: u64) {
        if let Some(s) = self.slave_mut(conn) {
            s.rdb_write_ms = now;
        }
    }

    /// The whole RDB was written to `conn`: the replica goes online
    /// (`replicaPutOnline`). After a diskless transfer the stream waits for
    /// the replica's first `REPLCONF ACK`, as Redis does.
    pub fn rdb_done(&mut self, conn: ConnId, now: u64) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) else {
            return out;
        };
        let name = c.name();
        let Some(s) = c
            .slave
            .as_mut()
            .filter(|s| matches!(s.state, ReplState::WaitBgsave | ReplState::SendBulk))
        else {
            return out;
        };
        if s.rdb_only {
            s.state = ReplState::RdbTransmitted;
            out.push(Out::Log(format!(
                "RDB transfer completed, rdb only replica ({name}) should be disconnected asap"
            )));
            return out;
        }
        let diskless = s.diskless == Some(true);
        if diskless {
            out.push(Out::Log(format!("Streamed RDB transfer with replica {name} succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming")));
        }
        s.state = ReplState::Online;
        s.ack_time = now;
        s.start_on_ack = diskless;
        out.push(Out::Log(format!(
            "Synchronization with replica {name} succeeded"
        )));
        self.refresh_good(now);
        out
    }

    fn slave_mut(&mut self, conn: ConnId) -> Option<&mut Slave> {
        self.conns
            .iter_mut()
            .find(|c| c.id == conn)
            .and_then(|c| c.slave.as_mut())
    }

    /// The stream bytes `conn` is owed (appended to `out`), once it is
    /// online and streaming. False when the replica fell out of the backlog
    /// and must be closed.
    pub fn output(&mut self, conn: ConnId, out: &mut Vec<u8>) -> bool {
        if self.streaming(conn) {
            return self.take_owed(conn, out);
        }
        // Not streaming yet: only whether it is still within the backlog.
        let first = self.backlog.as_ref().map(|b| b.first_byte_offset());
        let sent = self
            .slaves()
            .find(|(c, s)| c.id == conn && !s.rdb_only)
            .map(|(_, s)| s.sent);
        match (first, sent) {
            (Some(first), Some(sent)) => sent >= first,
            _ => true,
        }
    }

    /// Like [`Master::output`], whatever the replica's state: the stream
    /// bytes it is owed, for the driver to hold while its RDB goes (Redis
    /// keeps them in the replica's output buffer), so a sync longer than
    /// the backlog loses nothing. Send them once [`Master::streaming`].
    /// False when the replica fell out of the backlog.
    pub fn take_owed(&mut self, conn: ConnId, out: &mut Vec<u8>) -> bool {
        let Some(b) = &self.backlog else {
            return true;
        };
        let Some(s) = self
            .conns
            .iter_mut()
            .find(|c| c.id == conn)
            .and_then(|c| c.slave.as_mut())
        else {
            return true;
        };
        if s.rdb_only || s.sent > b.master_repl_offset() {
            return true;
        }
        match b.read_from(s.sent) {
            Some((x, y)) => {
                out.extend_from_slice(x);
                out.extend_from_slice(y);
                s.sent = b.master_repl_offset().saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Whether `conn` takes the stream now: online, and after a diskless
    /// RDB, acknowledged once.
    pub fn streaming(&self, conn: ConnId) -> bool {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .and_then(|c| c.slave.as_ref())
            .is_some_and(|s| s.state == ReplState::Online && !s.start_on_ack)
    }

    /// Whether `conn` is an rdb-only replica that got its whole RDB: the
    /// driver closes it once its output is written.
    pub fn rdb_transmitted(&self, conn: ConnId) -> bool {
        self.replica(conn)
            .is_some_and(|(state, _)| state == ReplState::RdbTransmitted)
    }

    /// The connection is gone. Returns Redis's log line when it was a
    /// replica.
    pub fn closed(&mut self, conn: ConnId, now: u64) -> Option<String> {
        let at = self.conns.iter().position(|c| c.id == conn)?;
        let c = self.conns.remove(at);
        c.slave.as_ref()?;
        self.refresh_good(now);
        Some(format!("Connection with replica {} lost.", c.name()))
    }

    /// `replicationCron`'s master part, at most once per second whatever
    /// the calling rate: the `PING` fed into the stream every
    /// `repl-ping-replica-period` (call between whole drains of the
    /// merger), newlines to replicas waiting for their RDB, replicas whose
    /// last ACK is older than `repl-timeout` dropped, the good replicas
    /// counted again.
    pub fn tick(&mut self, now: u64) -> Vec<Out> {
        let mut out = Vec::new();
        if now < self.next_cron {
            return out;
        }
        self.next_cron = now + CRON_PERIOD_MS;
        if now >= self.next_ping {
            self.next_ping = now + self.cfg.ping_period_ms.max(1);
            if self.replica_count() > 0 && !self.pings_held {
                self.feed(PING);
            }
        }
        for (c, s) in self.slaves() {
            if s.state == ReplState::WaitBgsave && s.diskless.is_none() {
                out.push(Out::Send(c.id, b"\n".to_vec()));
            }
        }
        let timeout = self.cfg.timeout_ms;
        let mut gone = Vec::new();
        for (c, s) in self.slaves() {
            let streaming = s.state == ReplState::Online
                && !s.pre_psync
                && now.saturating_sub(s.ack_time) > timeout;
            // A diskless transfer stuck on a replica that stopped reading
            // would hold the snapshot job (and every later BGSAVE) for
            // good: as Redis, it goes after `repl-timeout`.
            let full = s.state == ReplState::WaitBgsave
                && s.diskless == Some(true)
                && s.rdb_write_ms != 0
                && now.saturating_sub(s.rdb_write_ms) > timeout;
            if streaming || full {
                let what = if full { "full sync" } else { "streaming sync" };
                out.push(Out::Log(format!(
                    "Disconnecting timedout replica ({what}): {}",
                    c.name()
                )));
                out.push(Out::Close(c.id));
                gone.push(c.id);
            }
        }
        self.conns.retain(|c| !gone.contains(&c.id));
        self.refresh_good(now);
        out
    }

    /// INFO replication of a master, from `role:master` to
    /// `repl_backlog_histlen`, in Redis 7.0's order and wording (lines end
    /// with CRLF).
    pub fn info(&self, now: u64) -> String {
        let mut s = String::from("role:master\r\n");
        s += &format!("connected_slaves:{}\r\n", self.replica_count());
        if self.cfg.min_replicas_to_write > 0 && self.cfg.min_replicas_max_lag > 0 {
            s += &format!("min_slaves_good_slaves:{}\r\n", self.good);
        }
        let mut slaves: Vec<(&Conn, &Slave)> = self.slaves().collect();
        slaves.sort_by_key(|(_, sl)| sl.seq);
        let listed = slaves
            .iter()
            .filter(|(_, sl)| sl.state != ReplState::RdbTransmitted);
        for (i, (c, sl)) in listed.enumerate() {
            let lag = if sl.state == ReplState::Online {
                (now / 1000) as i64 - (sl.ack_time / 1000) as i64
            } else {
                0
            };
            s += &format!(
                "slave{i}:ip={},port={},state={},offset={},lag={lag}\r\n",
                c.addr.as_deref().unwrap_or(&c.peer_ip),
                c.listening_port,
                sl.state.name(),
                sl.ack_off
            );
        }
        let b = self.backlog.as_ref();
        s += "master_failover_state:no-failover\r\n";
        s += &format!("master_replid:{}\r\n", text(&self.replid));
        s += &format!("master_replid2:{}\r\n", text(&self.replid2));
        s += &format!("master_repl_offset:{}\r\n", self.off);
        s += &format!("second_repl_offset:{}\r\n", self.second_off);
        s += &format!("repl_backlog_active:{}\r\n", b.is_some() as u8);
        s += &format!(
            "repl_backlog_size:{}\r\n",
            b.map_or(self.cfg.backlog_size.max(backlog::MIN_SIZE), |b| b.size())
        );
        s += &format!(
            "repl_backlog_first_byte_offset:{}\r\n",
            b.map_or(0, |b| b.first_byte_offset())
        );
        s += &format!("repl_backlog_histlen:{}\r\n", b.map_or(0, |b| b.histlen()));
        s
    }
}

/// Whole seconds between two millisecond times, as Redis subtracts its
/// `unixtime` seconds.
fn lag_secs(now: u64, then: u64) -> u64 {
    (now / 1000).saturating_sub(then / 1000)
}

#[cfg(test)]
mod tests;
