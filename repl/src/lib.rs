//! Redis 7.0's replication protocol, free of I/O: the replica side here
//! ([`Replica`]), the master side in [`master`] ([`master::Master`]: PSYNC
//! decisions, replica states, INFO replication), its backlog in
//! [`backlog`], and in [`merge`] the merge of the shard cores' write
//! streams into the one ordered stream a Redis replica follows.
//!
//! [`Replica`] follows Redis 7.0.15's `replication.c` (`syncWithMaster`,
//! `slaveTryPartialResynchronization`, `readSyncBulkPayload`,
//! `replicationCron`) and the master-client parts of `networking.c`
//! (`processInlineBuffer`, `commandProcessed`) as a state machine: the driver
//! connects a socket to the master and feeds it [`Replica::connected`],
//! [`Replica::received`] with whatever bytes arrive (any split), and
//! [`Replica::tick`] about every 100 ms; each returns the [`Action`]s to carry
//! out (bytes to send, closing the link, the RDB payload, the commands to
//! apply with the replication offset after each). Time is an argument in
//! milliseconds; nothing here blocks, reads a clock or panics on any input
//! (garbage from the master is an [`Action::Error`] then [`Action::Close`]).
//!
//! One `Replica` outlives its links: after a link ends (a [`Action::Close`]
//! it returned, or [`Replica::closed`]) the next [`Replica::connected`] tries
//! `PSYNC <replid> <offset+1>` with what the previous link reached, as Redis's
//! cached master does; [`Replica::resume_point`] is what to persist for a
//! partial resynchronization after a restart (Redis's `repl-id`/`repl-offset`
//! RDB aux fields).
//!
//! The handshake, in Redis's order: `PING`, and after its reply, pipelined,
//! `AUTH [<user>] <pass>` (with `masterauth`), `REPLCONF listening-port
//! <port>`, `REPLCONF ip-address <ip>` (with an announce IP), `REPLCONF capa
//! eof capa psync2`; after their replies `PSYNC`. Then `+FULLRESYNC` and an
//! RDB framed as `$<len>\r\n<bytes>` (disk-backed) or `$EOF:<40-byte
//! mark>\r\n<bytes><mark>` (diskless, acknowledged at once with `REPLCONF
//! ACK`), or `+CONTINUE [<new replid>]`; a master that refuses `PSYNC` with
//! another reply than `-NOMASTERLINK`/`-LOADING` is asked with `SYNC`. The
//! command stream that follows advances the offset by each command's bytes,
//! except inside `MULTI` (the offset moves at `EXEC`, as Redis's
//! `commandProcessed` does); `REPLCONF GETACK` is answered with the offset
//! before it.

pub mod backlog;
pub mod master;
pub mod merge;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use engine::resp;

/// Length of a replication ID and of the diskless EOF mark
/// (`CONFIG_RUN_ID_SIZE`).
pub const RUN_ID_SIZE: usize = 40;
/// `replicationCron`'s period: the replica acknowledges its offset this often.
pub const ACK_PERIOD_MS: u64 = 1000;
/// Longest handshake reply or RDB header line accepted (Redis reads them into
/// a 1024-byte buffer at most).
pub const LINE_MAX: usize = 1024;
/// The greatest replication offset followed (2^62 - 1, far past any real
/// stream): a `+FULLRESYNC` beyond it, or a stream that would pass it, is
/// refused, so offsets stay clear of `i64` overflow here and on the master
/// side this replica may become. A saved resume point beyond it is ignored.
pub const OFFSET_MAX: i64 = i64::MAX / 2;
/// Longest inline line in the command stream (`PROTO_INLINE_MAX_SIZE`).
const INLINE_MAX: usize = 64 * 1024;

/// Where a partial resynchronization can start: the master's replication ID
/// and the offset of the last byte applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// 40 characters.
    pub replid: String,
    /// The replication offset reached (PSYNC asks for the byte after it).
    pub offset: i64,
    /// The database the stream had selected there (Redis's
    /// `repl-stream-db`): the master does not select it again.
    pub db: usize,
}

/// What a replica needs to know to follow a master.
#[derive(Clone, Debug)]
pub struct Config {
    /// `masteruser`: sent with `AUTH` when `masterauth` is set.
    pub masteruser: Option<Vec<u8>>,
    /// `masterauth`: `AUTH` is sent only when this is set.
    pub masterauth: Option<Vec<u8>>,
    /// The port announced with `REPLCONF listening-port`.
    pub listening_port: u16,
    /// `replica-announce-ip`: `REPLCONF ip-address` is sent only when set.
    pub announce_ip: Option<Vec<u8>>,
    /// A resume point kept from an earlier run, for the first `PSYNC`.
    pub resume: Option<Resume>,
    /// `repl-timeout` in milliseconds (Redis's default: 60 s).
    pub repl_timeout_ms: u64,
}

impl Config {
    /// No authentication, no saved resume point, a 60 s `repl-timeout`.
    pub fn new(listening_port: u16) -> Config {
        Config {
            masteruser: None,
            masterauth: None,
            listening_port,
            announce_ip: None,
            resume: None,
            repl_timeout_ms: 60_000,
        }
    }
}

/// What the driver does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the master.
    Send(Vec<u8>),
    /// Close the link (it failed; connect again later and call
    /// [`Replica::connected`]).
    Close,
    /// A full resynchronization starts: empty the dataset and load the RDB
    /// that follows. `replid` is `None` when the master did not give one
    /// (it was asked with `SYNC`, or its `+FULLRESYNC` was malformed); the
    /// offset is then -1 and the stream is followed without periodic ACKs,
    /// as Redis does with a pre-PSYNC master.
    FullSync { replid: Option<String>, offset: i64 },
    /// The RDB's framing: its length, or `None` for the diskless EOF mark.
    RdbStart { len: Option<u64> },
    /// The next bytes of the RDB payload (never the mark).
    RdbChunk(Vec<u8>),
    /// The RDB payload is complete; the command stream follows.
    RdbDone,
    /// The master accepted `PSYNC`: the stream continues from `offset` under
    /// `replid` (a new ID when the master announced one).
    PartialSync { replid: String, offset: i64 },
    /// A command of the stream to apply, and the replica's replication offset
    /// once it is processed (unchanged inside `MULTI` until `EXEC`).
    /// `REPLCONF` (GETACK) is handled here and not reported.
    Command {
        argv: Vec<Vec<u8>>,
        offset_after: i64,
    },
    /// The stream's bytes exactly as the master sent them, from the
    /// previous offset to `offset` (the replica's offset moved there): what
    /// a replica of this replica receives (Redis 4.0+ proxies its master's
    /// stream to its own replicas). Comes after the [`Action::Command`]
    /// that moved the offset, and covers the keepalive newlines, `PING`s,
    /// `REPLCONF GETACK`s and a whole `MULTI`…`EXEC`.
    Proxy { bytes: Vec<u8>, offset: i64 },
    /// Why the link fails, in Redis's log wording; a [`Action::Close`]
    /// follows.
    Error(String),
    /// A line for the log at notice level, in Redis's wording.
    Notice(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No link.
    Idle,
    PingReply,
    AuthReply,
    PortReply,
    IpReply,
    CapaReply,
    PsyncReply,
    /// Waiting for `$<len>` or `$EOF:<mark>` (newlines are keepalives).
    BulkHeader,
    /// This many RDB bytes still to come.
    Bulk {
        left: u64,
    },
    /// Diskless: the RDB ends with this mark.
    BulkEof {
        mark: [u8; RUN_ID_SIZE],
    },
    /// The command stream.
    Stream,
}

/// The replica side of one master's replication, across reconnections.
pub struct Replica {
    cfg: Config,
    phase: Phase,
    /// Received bytes not consumed yet.
    buf: Vec<u8>,
    /// Stream parsing is pointless before `buf` holds this many bytes.
    need: usize,
    /// Diskless: the last received bytes, held back because they may be the
    /// start of the mark.
    tail: Vec<u8>,
    /// The master followed (current link or cached): `None` when unknown or
    /// a pre-PSYNC master.
    replid: Option<String>,
    /// Offset of the last command applied (Redis's `master->reploff`).
    reploff: i64,
    /// Whether `replid`/`reploff` may be offered to `PSYNC`.
    resumable: bool,
    /// The database the applied stream has selected, and the one a
    /// `SELECT` queued in the open `MULTI` selects at its `EXEC`.
    db: usize,
    multi_db: Option<usize>,
    /// A pre-PSYNC master: no periodic ACKs.
    pre_psync: bool,
    /// This link's `PSYNC` offered the cached master.
    offered_cache: bool,
    /// What `+FULLRESYNC` announced, until the RDB is complete.
    full: Option<(Option<String>, i64)>,
    /// Offset of the stream bytes consumed (blank lines and empty multibulks
    /// count from the next command on, as Redis's `qb_pos`).
    read_off: i64,
    /// The master is inside `MULTI`.
    in_multi: bool,
    /// Time of the last bytes received (or of the connection).
    last_io: u64,
    /// When `tick` next sends `REPLCONF ACK`.
    next_ack: u64,
    now: u64,
    spans: Vec<(u32, u32)>,
    scratch: Vec<u8>,
    /// Stream bytes consumed since the offset last moved ([`Action::Proxy`]).
    proxy: Vec<u8>,
    /// A link ended inside `MULTI`: the commands handed since it started
    /// must be discarded ([`Replica::take_aborted_multi`]).
    aborted_multi: bool,
}

impl Replica {
    /// A replica with no link yet.
    pub fn new(cfg: Config) -> Replica {
        let resume = cfg.resume.as_ref().filter(|r| r.offset <= OFFSET_MAX);
        let (replid, reploff, resumable, db) = match resume {
            Some(r) => (Some(r.replid.clone()), r.offset, true, r.db),
            None => (None, -1, false, 0),
        };
        Replica {
            cfg,
            phase: Phase::Idle,
            buf: Vec::new(),
            need: 0,
            tail: Vec::new(),
            replid,
            reploff,
            resumable,
            db,
            multi_db: None,
            pre_psync: false,
            offered_cache: false,
            full: None,
            read_off: 0,
            in_multi: false,
            last_io: 0,
            next_ack: 0,
            now: 0,
            spans: Vec::new(),
            scratch: Vec::new(),
            proxy: Vec::new(),
            aborted_multi: false,
        }
    }

    /// The database the stream has selected where the RDB of a full
    /// resynchronization leaves it (its `repl-stream-db` aux field, which
    /// a master that proxies its own master's stream writes: that stream
    /// does not select it again). Call after [`Action::RdbDone`].
    pub fn set_db(&mut self, db: usize) {
        self.db = db;
    }

    /// True once after a link ended inside the master's `MULTI`: the
    /// commands handed since `MULTI` (the `MULTI` included) are resent by
    /// the next `PSYNC`, which resumes at its start, so the driver discards
    /// the transaction it was building (Redis frees its master client).
    pub fn take_aborted_multi(&mut self) -> bool {
        std::mem::take(&mut self.aborted_multi)
    }

    /// Where the next `PSYNC` would resume, if anywhere: what to persist.
    pub fn resume_point(&self) -> Option<Resume> {
        match (&self.replid, self.resumable) {
            (Some(id), true) => Some(Resume {
                replid: id.clone(),
                offset: self.reploff,
                db: self.db,
            }),
            _ => None,
        }
    }

    /// The replication offset applied so far (-1 before any sync).
    pub fn offset(&self) -> i64 {
        self.reploff
    }

    /// The database the stream has selected at [`Replica::offset`].
    pub fn db(&self) -> usize {
        self.db
    }

    /// True once the link carries the command stream (Redis's
    /// `REPL_STATE_CONNECTED`).
    pub fn is_streaming(&self) -> bool {
        self.phase == Phase::Stream
    }

    /// A TCP connection to the master is established: starts the handshake.
    pub fn connected(&mut self, now: u64) -> Vec<Action> {
        self.reset_link();
        self.now = now;
        self.last_io = now;
        self.phase = Phase::PingReply;
        vec![Action::Send(encode(&[b"PING"]))]
    }

    /// The RDB of the full resynchronization did not load: nothing the
    /// link reached can be resumed (the next attempt is a full one, as
    /// after Redis's `cancelReplicationHandshake` on a failed load).
    pub fn load_failed(&mut self) {
        self.replid = None;
        self.reploff = -1;
        self.resumable = false;
    }

    /// The driver lost the link (EOF, a socket error): the replica keeps
    /// what it reached for the next `PSYNC`.
    pub fn closed(&mut self) {
        self.reset_link();
    }

    /// Bytes from the master.
    pub fn received(&mut self, now: u64, data: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Idle {
            return out;
        }
        self.now = now;
        self.last_io = now;
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            match self.step(&mut pos, &mut out) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(msg) => {
                    self.fail(msg, &mut out);
                    return out;
                }
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
        out
    }

    /// Time passes: `repl-timeout` checks and the periodic `REPLCONF ACK`.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        self.now = now;
        let quiet = now.saturating_sub(self.last_io) > self.cfg.repl_timeout_ms;
        let timeout = match self.phase {
            Phase::Idle => return out,
            Phase::PingReply
            | Phase::AuthReply
            | Phase::PortReply
            | Phase::IpReply
            | Phase::CapaReply
            | Phase::PsyncReply => "Timeout connecting to the MASTER...",
            Phase::BulkHeader | Phase::Bulk { .. } | Phase::BulkEof { .. } => {
                "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value."
            }
            Phase::Stream => "MASTER timeout: no data nor PING received...",
        };
        if quiet {
            self.fail(timeout.to_string(), &mut out);
        } else if self.phase == Phase::Stream && !self.pre_psync && now >= self.next_ack {
            self.next_ack = now + ACK_PERIOD_MS;
            out.push(self.ack());
        }
        out
    }

    fn reset_link(&mut self) {
        if self.in_multi {
            self.aborted_multi = true;
        }
        self.proxy.clear();
        self.phase = Phase::Idle;
        self.buf.clear();
        self.need = 0;
        self.tail.clear();
        self.full = None;
        self.in_multi = false;
        self.multi_db = None;
        self.offered_cache = false;
    }

    fn fail(&mut self, msg: String, out: &mut Vec<Action>) {
        self.reset_link();
        out.push(Action::Error(msg));
        out.push(Action::Close);
    }

    fn ack(&self) -> Action {
        let off = self.reploff.to_string();
        Action::Send(encode(&[b"REPLCONF", b"ACK", off.as_bytes()]))
    }

    /// One step of parsing from `pos`: `Ok(true)` when it consumed something
    /// or changed phase, `Ok(false)` when it needs more bytes.
    fn step(&mut self, pos: &mut usize, out: &mut Vec<Action>) -> Result<bool, String> {
        match self.phase {
            Phase::Idle => Ok(false),
            Phase::Bulk { left } => Ok(self.bulk(pos, left, out)),
            Phase::BulkEof { mark } => Ok(self.bulk_eof(pos, &mark, out)),
            Phase::Stream => self.stream(pos, out),
            _ => {
                let Some(line) = self.line(pos)? else {
                    return Ok(false);
                };
                self.reply(&line, out)?;
                Ok(true)
            }
        }
    }

    /// The next line (without `\r\n`), as Redis's `syncReadLine` reads it.
    fn line(&self, pos: &mut usize) -> Result<Option<Vec<u8>>, String> {
        let rest = &self.buf[*pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > LINE_MAX {
                return Err("Bad protocol from MASTER: a reply line longer than 1024 bytes".into());
            }
            return Ok(None);
        };
        let mut line = &rest[..nl];
        if let Some((b'\r', head)) = line.split_last() {
            line = head;
        }
        if line.len() > LINE_MAX {
            return Err("Bad protocol from MASTER: a reply line longer than 1024 bytes".into());
        }
        *pos += nl + 1;
        Ok(Some(line.to_vec()))
    }

    /// A handshake reply or an RDB header line.
    fn reply(&mut self, line: &[u8], out: &mut Vec<Action>) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        match self.phase {
            Phase::PingReply => {
                if !line.starts_with(b"+")
                    && !line.starts_with(b"-NOAUTH")
                    && !line.starts_with(b"-NOPERM")
                    && !line.starts_with(b"-ERR operation not permitted")
                {
                    return Err(format!("Error reply to PING from master: '{text}'"));
                }
                self.send_handshake(out);
            }
            Phase::AuthReply => {
                if line.starts_with(b"-") {
                    return Err(format!("Unable to AUTH to MASTER: {text}"));
                }
                self.phase = Phase::PortReply;
            }
            // Errors to REPLCONF are not critical: older masters ignore them.
            Phase::PortReply => {
                self.phase = if self.cfg.announce_ip.is_some() {
                    Phase::IpReply
                } else {
                    Phase::CapaReply
                };
            }
            Phase::IpReply => self.phase = Phase::CapaReply,
            Phase::CapaReply => self.send_psync(out),
            Phase::PsyncReply => self.psync_reply(line, out)?,
            Phase::BulkHeader => self.bulk_header(line, out)?,
            Phase::Idle | Phase::Bulk { .. } | Phase::BulkEof { .. } | Phase::Stream => {}
        }
        Ok(())
    }

    fn send_handshake(&mut self, out: &mut Vec<Action>) {
        if let Some(pass) = &self.cfg.masterauth {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &self.cfg.masteruser {
                args.push(user);
            }
            args.push(pass);
            out.push(Action::Send(encode(&args)));
        }
        let port = self.cfg.listening_port.to_string();
        out.push(Action::Send(encode(&[
            b"REPLCONF",
            b"listening-port",
            port.as_bytes(),
        ])));
        if let Some(ip) = &self.cfg.announce_ip {
            out.push(Action::Send(encode(&[b"REPLCONF", b"ip-address", ip])));
        }
        out.push(Action::Send(encode(&[
            b"REPLCONF",
            b"capa",
            b"eof",
            b"capa",
            b"psync2",
        ])));
        self.phase = if self.cfg.masterauth.is_some() {
            Phase::AuthReply
        } else {
            Phase::PortReply
        };
    }

    fn send_psync(&mut self, out: &mut Vec<Action>) {
        let cached = match (&self.replid, self.resumable) {
            (Some(id), true) => Some(id.clone()),
            _ => None,
        };
        let cmd = match cached {
            Some(id) => {
                let off = self.reploff.saturating_add(1).to_string();
                out.push(Action::Notice(format!(
                    "Trying a partial resynchronization (request {id}:{off})."
                )));
                encode(&[b"PSYNC", id.as_bytes(), off.as_bytes()])
            }
            None => {
                out.push(Action::Notice(
                    "Partial resynchronization not possible (no cached master)".into(),
                ));
                encode(&[b"PSYNC", b"?", b"-1"])
            }
        };
        self.offered_cache = self.resumable && self.replid.is_some();
        out.push(Action::Send(cmd));
        self.phase = Phase::PsyncReply;
    }

    fn psync_reply(&mut self, line: &[u8], out: &mut Vec<Action>) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        if line.is_empty() {
            // Newlines sent to keep the link alive before the reply.
            return Ok(());
        }
        if line.starts_with(b"+FULLRESYNC") {
            let (replid, offset) = parse_fullresync(line);
            if offset > OFFSET_MAX {
                return Err(format!(
                    "Bad protocol from MASTER: replication offset out of range in '{text}'"
                ));
            }
            out.push(Action::FullSync {
                replid: replid.clone(),
                offset,
            });
            self.full = Some((replid, offset));
            self.phase = Phase::BulkHeader;
            return Ok(());
        }
        if line.starts_with(b"+CONTINUE") {
            if !self.offered_cache {
                return Err(
                    "Unexpected +CONTINUE from master: no cached master was offered".into(),
                );
            }
            // Redis reads a new ID from byte 10 to the end of the line.
            if line.len() == 10 + RUN_ID_SIZE {
                let new = String::from_utf8_lossy(&line[10..]).into_owned();
                if self.replid.as_deref() != Some(new.as_str()) {
                    self.replid = Some(new);
                }
            }
            let replid = self.replid.clone().unwrap_or_default();
            out.push(Action::PartialSync {
                replid,
                offset: self.reploff,
            });
            self.start_stream();
            return Ok(());
        }
        if line.starts_with(b"-NOMASTERLINK") || line.starts_with(b"-LOADING") {
            return Err(format!(
                "Master is currently unable to PSYNC but should be in the future: {text}"
            ));
        }
        // The master does not support PSYNC (or replied something
        // unexpected): Redis retries with SYNC.
        out.push(Action::Send(b"SYNC\r\n".to_vec()));
        out.push(Action::FullSync {
            replid: None,
            offset: -1,
        });
        self.full = Some((None, -1));
        self.phase = Phase::BulkHeader;
        Ok(())
    }

    fn bulk_header(&mut self, line: &[u8], out: &mut Vec<Action>) -> Result<(), String> {
        let text = String::from_utf8_lossy(line);
        match line.first() {
            // A newline keeps the link alive while the master prepares.
            None | Some(0) => Ok(()),
            Some(b'-') => Err(format!(
                "MASTER aborted replication with an error: {}",
                &text[1..]
            )),
            Some(b'$') => {
                if line[1..].starts_with(b"EOF:") && line.len() - 5 >= RUN_ID_SIZE {
                    let mut mark = [0u8; RUN_ID_SIZE];
                    mark.copy_from_slice(&line[5..5 + RUN_ID_SIZE]);
                    out.push(Action::RdbStart { len: None });
                    self.tail.clear();
                    self.phase = Phase::BulkEof { mark };
                    return Ok(());
                }
                match resp::parse_i64(&line[1..]) {
                    Some(len) if len >= 0 => {
                        out.push(Action::RdbStart {
                            len: Some(len as u64),
                        });
                        self.phase = Phase::Bulk { left: len as u64 };
                        Ok(())
                    }
                    _ => Err(format!(
                        "Bad protocol from MASTER: invalid RDB length '{text}'"
                    )),
                }
            }
            Some(_) => Err(format!(
                "Bad protocol from MASTER, the first byte is not '$' (we received '{text}'), are you sure the host and port are right?"
            )),
        }
    }

    fn bulk(&mut self, pos: &mut usize, left: u64, out: &mut Vec<Action>) -> bool {
        let avail = (self.buf.len() - *pos) as u64;
        let n = avail.min(left) as usize;
        if n > 0 {
            out.push(Action::RdbChunk(self.buf[*pos..*pos + n].to_vec()));
            *pos += n;
        }
        let left = left - n as u64;
        if left == 0 {
            self.rdb_done(false, out);
            return true;
        }
        self.phase = Phase::Bulk { left };
        false
    }

    fn bulk_eof(
        &mut self,
        pos: &mut usize,
        mark: &[u8; RUN_ID_SIZE],
        out: &mut Vec<Action>,
    ) -> bool {
        let held = self.tail.len();
        let mut data = std::mem::take(&mut self.tail);
        data.extend_from_slice(&self.buf[*pos..]);
        if let Some(at) = data.windows(RUN_ID_SIZE).position(|w| w == mark) {
            if at > 0 {
                out.push(Action::RdbChunk(data[..at].to_vec()));
            }
            *pos += (at + RUN_ID_SIZE).saturating_sub(held);
            self.rdb_done(true, out);
            return true;
        }
        *pos = self.buf.len();
        let keep = data.len().min(RUN_ID_SIZE - 1);
        self.tail = data.split_off(data.len() - keep);
        if !data.is_empty() {
            out.push(Action::RdbChunk(data));
        }
        false
    }

    fn rdb_done(&mut self, usemark: bool, out: &mut Vec<Action>) {
        out.push(Action::RdbDone);
        let (replid, offset) = self.full.take().unwrap_or((None, -1));
        self.pre_psync = offset == -1;
        self.resumable = replid.is_some() && !self.pre_psync;
        self.replid = replid;
        self.reploff = offset;
        // The loaded RDB is the master's state; its stream selects a
        // database before the first command.
        self.db = 0;
        self.multi_db = None;
        self.start_stream();
        // Redis acknowledges a diskless transfer at once: the master puts
        // the replica online on its first ACK.
        if usemark {
            out.push(self.ack());
        }
    }

    fn start_stream(&mut self) {
        self.proxy.clear();
        self.phase = Phase::Stream;
        self.read_off = self.reploff;
        self.in_multi = false;
        self.multi_db = None;
        self.need = 0;
        self.next_ack = self.now + ACK_PERIOD_MS;
    }

    fn stream(&mut self, pos: &mut usize, out: &mut Vec<Action>) -> Result<bool, String> {
        let rest = &self.buf[*pos..];
        if rest.is_empty() || rest.len() < self.need {
            return Ok(false);
        }
        self.need = 0;
        if rest[0] != b'*' {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > INLINE_MAX {
                    self.resumable = false;
                    return Err("Protocol error (too big inline request) from MASTER".into());
                }
                self.need = rest.len() + 1;
                return Ok(false);
            };
            let mut len = nl;
            if len > 0 && rest[len - 1] == b'\r' {
                len -= 1;
            }
            if len != 0 {
                // Only a bare newline (a keepalive) is allowed inline.
                self.resumable = false;
                return Err("Receiving inline protocol from master, master stream corruption? Closing the master connection and discarding the cached master.".into());
            }
            self.advance(nl + 1)?;
            self.proxy.extend_from_slice(&self.buf[*pos..*pos + nl + 1]);
            *pos += nl + 1;
            return Ok(true);
        }
        let limits = resp::Limits {
            // Redis applies no bulk limit to its master.
            bulk_bytes_max: i64::MAX as usize,
            ..resp::Limits::default()
        };
        match resp::parse(rest, &limits, &mut self.spans, &mut self.scratch) {
            Err(e) => {
                self.resumable = false;
                Err(format!("Protocol error ({}) from MASTER", e.0))
            }
            Ok(resp::Parsed::Incomplete { need }) => {
                self.need = need;
                Ok(false)
            }
            Ok(resp::Parsed::BigBulk { start, len }) => {
                self.need = start.saturating_add(len).saturating_add(2);
                Ok(false)
            }
            Ok(resp::Parsed::Empty { consumed }) => {
                self.advance(consumed)?;
                self.proxy
                    .extend_from_slice(&self.buf[*pos..*pos + consumed]);
                *pos += consumed;
                Ok(true)
            }
            Ok(resp::Parsed::Command { consumed, .. }) => {
                let argv: Vec<Vec<u8>> = self
                    .spans
                    .iter()
                    .filter_map(|&(s, e)| rest.get(s as usize..e as usize))
                    .map(|a| a.to_vec())
                    .collect();
                self.advance(consumed)?;
                self.proxy
                    .extend_from_slice(&self.buf[*pos..*pos + consumed]);
                *pos += consumed;
                self.command(argv, out);
                Ok(true)
            }
        }
    }

    /// Moves the stream offset over `n` consumed bytes, or refuses to pass
    /// [`OFFSET_MAX`] (the cached master is dropped).
    fn advance(&mut self, n: usize) -> Result<(), String> {
        let next = i64::try_from(n)
            .ok()
            .and_then(|n| self.read_off.checked_add(n))
            .filter(|&o| o <= OFFSET_MAX);
        match next {
            Some(o) => {
                self.read_off = o;
                Ok(())
            }
            None => {
                self.resumable = false;
                Err(format!(
                    "Bad protocol from MASTER: the replication offset would pass {OFFSET_MAX}"
                ))
            }
        }
    }

    /// A command of the stream, processed as Redis's master client does.
    fn command(&mut self, argv: Vec<Vec<u8>>, out: &mut Vec<Action>) {
        let name = argv.first().map(Vec::as_slice).unwrap_or_default();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let queued = self.in_multi && !(is("exec") || is("discard") || is("multi"));
        if is("multi") {
            self.in_multi = true;
        } else if is("exec") || is("discard") {
            self.in_multi = false;
            let selected = self.multi_db.take();
            if is("exec") {
                self.db = selected.unwrap_or(self.db);
            }
        } else if is("select") && argv.len() == 2 {
            let db = std::str::from_utf8(&argv[1])
                .ok()
                .and_then(|d| d.parse().ok());
            match (db, queued) {
                (Some(db), true) => self.multi_db = Some(db),
                (Some(db), false) => self.db = db,
                (None, _) => {}
            }
        }
        let replconf = is("replconf");
        // REPLCONF GETACK replies with the offset before it: Redis updates
        // the offset after the command ran.
        if replconf && !queued && is_getack(&argv) {
            out.push(self.ack());
        }
        if !self.in_multi {
            self.reploff = self.read_off;
        }
        if !replconf {
            out.push(Action::Command {
                argv,
                offset_after: self.reploff,
            });
        }
        if !self.in_multi && !self.proxy.is_empty() {
            out.push(Action::Proxy {
                bytes: std::mem::take(&mut self.proxy),
                offset: self.reploff,
            });
        }
    }
}

/// Whether `REPLCONF ...` asks for an ACK, as `replconfCommand` reads its
/// option pairs: an even number of arguments is an arity error, options it
/// acts on without returning are skipped, any other stops it.
fn is_getack(argv: &[Vec<u8>]) -> bool {
    if argv.len().is_multiple_of(2) {
        return false;
    }
    for pair in argv[1..].chunks(2) {
        let opt = pair[0].as_slice();
        if opt.eq_ignore_ascii_case(b"getack") {
            return true;
        }
        let skipped = [&b"listening-port"[..], b"ip-address", b"capa"];
        if !skipped.iter().any(|s| opt.eq_ignore_ascii_case(s)) {
            return false;
        }
    }
    false
}

/// `+FULLRESYNC <replid> <offset>` as Redis reads it: the ID must be 40
/// bytes; otherwise there is no ID and the offset is -1.
fn parse_fullresync(line: &[u8]) -> (Option<String>, i64) {
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return (None, -1);
    };
    let id_at = sp + 1;
    let Some(sp2) = line[id_at..].iter().position(|&b| b == b' ') else {
        return (None, -1);
    };
    if sp2 != RUN_ID_SIZE {
        return (None, -1);
    }
    let id = String::from_utf8_lossy(&line[id_at..id_at + sp2]).into_owned();
    (
        Some(id),
        engine::resp::strtol(&line[id_at + sp2 + 1..], 0).0,
    )
}

/// A command as RESP multibulk, as Redis's `sendCommand` writes it.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}
