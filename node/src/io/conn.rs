//! One client connection's state. It lives on the core that accepted it.

use super::slab::Key;
use bytes::Bytes;
use engine::OwnedArgs;
use hashbrown::HashSet;

/// Why a connection is not reading its next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Free to run the next command.
    No,
    /// A task is working on its last command.
    Task(Key),
    /// Parked in a blocking command on this core.
    Blocked,
    /// This core is locked by another core's transaction; retry on unlock.
    Stalled,
}

/// A client connection.
pub struct Conn {
    pub fd: i32,
    /// Also registered in the ring's file table, at the connection's slab
    /// index: receives and sends name it there, sparing a file lookup each.
    pub fixed: bool,
    /// CLIENT ID.
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    pub last_ms: i64,
    /// The cron period in which this client last sent something (see
    /// `Core::active`).
    pub active_in: u32,
    /// Received bytes; `rpos` is where the next request starts.
    pub rbuf: Vec<u8>,
    pub rpos: usize,
    /// Don't parse again before `rbuf` holds this many bytes.
    pub need: usize,
    /// Replies waiting to be sent.
    pub out: Vec<u8>,
    /// The buffer a send is in flight from (must not move meanwhile).
    pub sending: Vec<u8>,
    pub send_off: usize,
    pub send_inflight: bool,
    pub recv_inflight: bool,
    /// Queued for the send pass.
    pub flush_queued: bool,
    pub db: usize,
    pub resp3: bool,
    pub name: Option<Bytes>,
    pub authed: bool,
    /// MULTI: queued commands; `multi_failed` after a queue-time error.
    pub multi: Option<Vec<OwnedArgs>>,
    pub multi_failed: bool,
    /// WATCHed keys: (core, db, key, version).
    pub watches: Vec<(usize, usize, Bytes, u64)>,
    pub subs: HashSet<Bytes>,
    pub psubs: HashSet<Bytes>,
    pub ssubs: HashSet<Bytes>,
    pub wait: Wait,
    /// Close once the pending output is sent (QUIT, protocol error).
    pub close_after_flush: bool,
    /// Shutting down: waiting for in-flight operations to finish.
    pub closing: bool,
    /// Unix seconds since the output has been at or above the soft
    /// `client-output-buffer-limit` (0: below it).
    pub obuf_soft_since: i64,
    /// The last command run (CLIENT LIST's `cmd`); also where the next
    /// command's name is looked up first, as clients tend to repeat one.
    pub last_cmd: Option<&'static engine::cmd::Spec>,
    /// Scratch for the parser, kept to avoid allocating per request.
    pub spans: Vec<(u32, u32)>,
    pub scratch: Vec<u8>,
}

impl Conn {
    /// A fresh connection.
    pub fn new(fd: i32, id: u64, addr: String, laddr: String, now_ms: i64, authed: bool) -> Conn {
        Conn {
            fd,
            fixed: false,
            id,
            addr,
            laddr,
            created_ms: now_ms,
            last_ms: now_ms,
            active_in: 0,
            rbuf: Vec::with_capacity(16 * 1024),
            rpos: 0,
            need: 0,
            out: Vec::new(),
            sending: Vec::new(),
            send_off: 0,
            send_inflight: false,
            recv_inflight: false,
            flush_queued: false,
            db: 0,
            resp3: false,
            name: None,
            authed,
            multi: None,
            multi_failed: false,
            watches: Vec::new(),
            subs: HashSet::new(),
            psubs: HashSet::new(),
            ssubs: HashSet::new(),
            wait: Wait::No,
            close_after_flush: false,
            closing: false,
            obuf_soft_since: 0,
            last_cmd: None,
            spans: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Subscriptions of all kinds.
    pub fn sub_count(&self) -> usize {
        self.subs.len() + self.psubs.len() + self.ssubs.len()
    }

    /// CLIENT LIST flags.
    pub fn flags(&self) -> String {
        let mut f = String::new();
        if self.wait == Wait::Blocked {
            f.push('b');
        }
        if self.sub_count() > 0 {
            f.push('P');
        }
        if self.multi.is_some() {
            f.push('x');
        }
        if self.close_after_flush {
            f.push('c');
        }
        if f.is_empty() {
            f.push('N');
        }
        f
    }

    /// One CLIENT LIST / CLIENT INFO line, in Redis 7.0's field order.
    pub fn info_line(&self, now_ms: i64) -> String {
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
            (now_ms - self.created_ms) / 1000,
            (now_ms - self.last_ms) / 1000,
            self.flags(),
            self.db,
            self.subs.len(),
            self.psubs.len(),
            self.ssubs.len(),
            self.multi.as_ref().map_or(-1, |m| m.len() as i64),
            self.rbuf.len() - self.rpos,
            self.rbuf.capacity() - self.rbuf.len(),
            self.rbuf.capacity(),
            self.rbuf.len(),
            self.out.len() + self.sending.len(),
            self.rbuf.capacity() + self.out.capacity() + self.sending.capacity(),
            self.last_cmd.map_or("NULL", |s| s.name),
            if self.resp3 { 3 } else { 2 },
        )
    }
}
