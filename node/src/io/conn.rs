//! One client connection's state. It lives on the core it was handed to
//! when accepted, until its commands keep going to one other core: then
//! it may move there ([`Moved`]).

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
    /// Its last commands went to other cores as a chain without a task
    /// (the shard's `chains`).
    Chain(Key),
    /// A task that must finish even if the client goes away is working on
    /// its last command (MIGRATE: once keys reached the target, they must
    /// leave this node).
    Detached,
    /// Parked in a blocking command on this core.
    Blocked,
    /// This core is locked by another core's transaction; retry on unlock.
    Stalled,
}

impl Wait {
    /// Its last command is being worked on elsewhere (a task or a chain)
    /// and its reply comes when that work ends.
    pub fn in_flight(&self) -> bool {
        matches!(self, Wait::Task(_) | Wait::Chain(_) | Wait::Detached)
    }
}

/// Below this much left to come, the rest of a big argument comes through
/// the shared receive buffers: a receive straight into its buffer pays a
/// cancel and a re-arm of the multishot receive.
pub const BIG_RECV_MIN: usize = 256 * 1024;

/// Big bulk arguments (`engine::resp::BIG_ARG` bytes or more) of the
/// request at `Conn::rpos`, each received into a buffer of its own size
/// rather than into `Conn::rbuf`: they become values without a copy.
#[derive(Default)]
pub struct BigArgs {
    /// Where each received one would start in `rbuf` (its `$len` line is
    /// there, and its CRLF right at this position), and its bytes.
    pub at: Vec<usize>,
    pub done: Vec<Bytes>,
    /// The one being received, its place in `rbuf` and its size.
    pub filling: Option<(Vec<u8>, usize, usize)>,
}

impl BigArgs {
    /// Once the argument being received is all in, it joins the received
    /// ones.
    fn done_if_full(&mut self) {
        if let Some((buf, at, want)) = &mut self.filling {
            if buf.len() == *want {
                self.at.push(*at);
                self.done.push(Bytes::from(std::mem::take(buf)));
                self.filling = None;
            }
        }
    }
}

/// Unsent replies' big bulks, sent from the values themselves: each is
/// sent once the output before its position has been.
pub type BigOut = Vec<(usize, Bytes)>;

/// An emptied buffer with more capacity than this is freed rather than
/// kept, so an idle connection holds no large buffer.
pub const BUF_KEEP: usize = 4 * 1024;

/// An emptied input buffer at least this large (a long pipeline's) is
/// kept while the connection is busy and freed by the cron once it has
/// been idle for [`IDLE_FREE_MS`], as Redis's `clientsCronResizeQueryBuffer`
/// does: freeing it after each pipeline and growing it again for the next
/// fragmented memory under eviction (RSS 1.4x `maxmemory` with 2 shards,
/// `tests/tests/maxmemory.rs`).
pub const RBUF_KEEP: usize = 256 * 1024;

/// Unread input a connection may hold while a task runs its earlier
/// commands; past it, the connection stops receiving until that input is
/// taken. Redis reads a client's next request only once it has run the
/// ones before; slotd reads ahead while a pipeline runs on other cores,
/// but no further than this, so a bulk load (`redis-cli --pipe`) that
/// sends faster than the cores run cannot pile its input up in memory
/// (it reached 400 MB, which `maxmemory` then took from the keys).
pub const INPUT_AHEAD_MAX: usize = 1 << 20;

/// Idle time after which the cron frees a connection's emptied buffers.
pub const IDLE_FREE_MS: i64 = 2000;

/// Most pieces one send of output with big bulks takes (a `sendmsg` with
/// this many `iovec`s).
pub const SEND_PIECES: usize = 8;

/// The `sendmsg` header of a send of output with big bulks: it must not
/// move while the send is in flight, hence boxed.
pub struct SendVec {
    pub msg: libc::msghdr,
    pub iov: [libc::iovec; SEND_PIECES],
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
    /// The request's big arguments, when it has some.
    pub big: Option<Box<BigArgs>>,
    /// Replies waiting to be sent, and their big bulks.
    pub out: Vec<u8>,
    pub out_big: BigOut,
    /// The buffer a send is in flight from (must not move meanwhile), its
    /// big bulks, and how far both have been sent: `send_off` in
    /// `sending`, `send_big_off` in `sending_big[0]`, sent once `send_off`
    /// reaches its position.
    pub sending: Vec<u8>,
    pub sending_big: BigOut,
    pub send_off: usize,
    /// Under `appendfsync always`: the log offset an fsync must cover
    /// before `out` may be sent (what the replies in it may reveal).
    pub aof_need: u64,
    /// How many bytes of `out` the last hold covers (this wait, or the
    /// replicas' under a guarded stream): output added after it waits
    /// for the send pass's own look (see `Core::start_send`).
    pub hold_mark: usize,
    /// Bytes that ever left `out` (to `sending`, or along with a
    /// pipeline): with `out.len()`, a mark of the output so far that
    /// stays valid when the front leaves.
    pub out_base: u64,
    /// Turns of this connection's output that wait for the replicas'
    /// output (`Core::repl_hold`), and how far (an `out_base` mark) the
    /// ones released so far reach: while some wait, no more than that is
    /// sent.
    pub repl_holds: u32,
    pub repl_sendable: u64,
    /// With the AOF on: other cores' log offsets, one per core, that must
    /// be effective before `out` may be sent (a pipeline's writes there;
    /// see `persist::aof::CoreAof::depend`); under `everysec` and `no`
    /// only what the client runs next depends on them.
    pub aof_remote: Vec<(usize, u64)>,
    pub send_big_off: usize,
    /// Where a send with big bulks is described (only while some are).
    pub send_vec: Option<Box<SendVec>>,
    pub send_inflight: bool,
    pub recv_inflight: bool,
    /// The receive in flight is a single one into the big argument being
    /// filled ([`Conn::big_spare`]), not the multishot one.
    pub recv_into_big: bool,
    /// The multishot receive is being cancelled so the rest of a big
    /// argument can be received straight into its buffer.
    pub recv_switching: bool,
    /// Receiving stopped: too much input is waiting (see
    /// [`INPUT_AHEAD_MAX`]).
    pub recv_paused: bool,
    /// The task it waits for lets another core send the replies on its
    /// socket (`Shard::flush_direct`): the socket stays open, and the task
    /// runs to its end, until that core has answered. `direct_input`: it
    /// received meanwhile, so its core wants that answer to wake it
    /// (`Shard::direct_inputs`).
    pub direct: bool,
    pub direct_input: bool,
    /// Queued for the send pass.
    pub flush_queued: bool,
    pub db: usize,
    pub resp3: bool,
    pub name: Option<Bytes>,
    pub authed: bool,
    /// Cluster mode: ASKING was sent (good for the next command), READONLY
    /// is on.
    pub asking: bool,
    pub readonly: bool,
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
    /// Its full name when it is a subcommand (`client|info`).
    pub last_sub: Option<&'static str>,
    /// The last command named a subcommand its container does not have.
    pub sub_unknown: bool,
    /// A node command finishing in a task: the name its error, if the
    /// task answers one, counts under (INFO `failed_calls`).
    pub task_stats: Option<&'static str>,
    /// Scratch for the parser, kept to avoid allocating per request.
    pub spans: Vec<(u32, u32)>,
    pub scratch: Vec<u8>,
    /// This node's master (a replica's link feeds the replication stream
    /// through it): its writes are never refused, `timeout` spares it,
    /// and CLIENT LIST shows flag `M`.
    pub master: bool,
    /// The master client: its feed's number, the bytes of its input whose
    /// commands completed, those of the command(s) still running, and
    /// whether the feed closed (the rest of the input still runs).
    pub feed: u64,
    pub applied: u64,
    pub in_flight: u64,
    pub eof: bool,
    /// A replica's connection: it spoke REPLCONF (the master thread knows
    /// it), and once `handoff` is set its socket goes to the master thread
    /// instead of being closed (`cancel_sent`: its receive is cancelled).
    pub replconf: bool,
    pub handoff: bool,
    pub cancel_sent: bool,
    /// CLIENT TRACKING's state while on.
    pub tracking: Option<Box<Tracking>>,
    /// Invalidations (their RESP values) that came while a command of
    /// this client was in flight: sent after its reply, as Redis sends
    /// them after the reply of the command being executed.
    pub track_later: Vec<Vec<u8>>,
    /// MONITOR: every command run anywhere is shown to it (flag `O`).
    pub monitor: bool,
    /// CLIENT NO-EVICT ON (flag `e`; client eviction is not built).
    pub no_evict: bool,
    /// CLIENT REPLY OFF, and SKIP (the next command's reply is dropped);
    /// `mute`: the reply of the command being run is dropped.
    pub reply_off: bool,
    pub skip_next: bool,
    pub mute: bool,
    /// A command of this connection that went to a task, while the slow
    /// log is on: when it started (`shared::ticks`), and its arguments as the log keeps
    /// them (logged when the task is done, if it was slow).
    pub slow_pending: Option<Box<(u64, Vec<Bytes>)>>,
    /// Affinity: the core the last single-key commands went to, and how
    /// many went there in a row (see [`MOVE_AFTER`]).
    pub aff_core: usize,
    pub aff_run: u32,
    /// Moving to core `aff_core`: its receive is being cancelled, and
    /// nothing else runs for it until it leaves.
    pub moving: bool,
    /// When it last moved (0: never).
    pub moved_ms: i64,
}

/// Consecutive single-key commands for one other core after which a
/// connection in a plain state moves to that core (the default of
/// `SLOTD_MOVE_AFTER`; 0 there: never).
pub const MOVE_AFTER: u32 = 64;

/// A connection moves at most once in this long.
pub const MOVE_EVERY_MS: i64 = 5000;

/// What travels with a connection moving to another core: its socket and
/// what its state holds in a plain state (no MULTI, WATCH, subscriptions,
/// tracking, command in flight, ...: see [`Conn::plain`]).
pub struct Moved {
    pub fd: i32,
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    pub last_ms: i64,
    pub moved_ms: i64,
    /// Unread input, and replies not yet sent (no send was in flight).
    pub input: Vec<u8>,
    pub out: Vec<u8>,
    pub out_big: BigOut,
    pub obuf_soft_since: i64,
    pub db: usize,
    pub resp3: bool,
    pub name: Option<Bytes>,
    pub authed: bool,
    pub asking: bool,
    pub readonly: bool,
    pub no_evict: bool,
    pub last_cmd: Option<&'static engine::cmd::Spec>,
    /// Its full name when it is a subcommand (`client|info`).
    pub last_sub: Option<&'static str>,
}

/// A tracking client's options (Redis's `CLIENT_TRACKING_*` flags).
#[derive(Debug, Default, Clone)]
pub struct Tracking {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING was given for the next command.
    pub caching: bool,
    /// The redirection target was gone when an invalidation was due.
    pub broken_redir: bool,
    /// The client invalidations go to (0: this one), and its core.
    pub redirect: u64,
    pub redirect_core: usize,
    /// BCAST prefixes, sorted.
    pub prefixes: Vec<Vec<u8>>,
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
            rbuf: Vec::new(),
            rpos: 0,
            need: 0,
            big: None,
            out: Vec::new(),
            out_big: Vec::new(),
            sending: Vec::new(),
            sending_big: Vec::new(),
            send_off: 0,
            aof_need: 0,
            hold_mark: 0,
            out_base: 0,
            repl_holds: 0,
            repl_sendable: 0,
            aof_remote: Vec::new(),
            send_big_off: 0,
            send_vec: None,
            send_inflight: false,
            recv_inflight: false,
            recv_paused: false,
            direct: false,
            direct_input: false,
            recv_into_big: false,
            recv_switching: false,
            flush_queued: false,
            db: 0,
            resp3: false,
            name: None,
            authed,
            multi: None,
            multi_failed: false,
            asking: false,
            readonly: false,
            watches: Vec::new(),
            subs: HashSet::new(),
            psubs: HashSet::new(),
            ssubs: HashSet::new(),
            wait: Wait::No,
            close_after_flush: false,
            closing: false,
            obuf_soft_since: 0,
            last_cmd: None,
            last_sub: None,
            task_stats: None,
            sub_unknown: false,
            spans: Vec::new(),
            scratch: Vec::new(),
            master: false,
            feed: 0,
            applied: 0,
            in_flight: 0,
            eof: false,
            replconf: false,
            handoff: false,
            cancel_sent: false,
            tracking: None,
            track_later: Vec::new(),
            monitor: false,
            no_evict: false,
            reply_off: false,
            skip_next: false,
            mute: false,
            slow_pending: None,
            aff_core: 0,
            aff_run: 0,
            moving: false,
            moved_ms: 0,
        }
    }

    /// The connection's state to hand to another core, which takes it on
    /// with [`Conn::arrived`].
    pub fn departing(mut self) -> Moved {
        let input = match self.rpos {
            0 => std::mem::take(&mut self.rbuf),
            at => self.rbuf[at..].to_vec(),
        };
        Moved {
            fd: self.fd,
            id: self.id,
            addr: std::mem::take(&mut self.addr),
            laddr: std::mem::take(&mut self.laddr),
            created_ms: self.created_ms,
            last_ms: self.last_ms,
            moved_ms: self.moved_ms,
            input,
            out: std::mem::take(&mut self.out),
            out_big: std::mem::take(&mut self.out_big),
            obuf_soft_since: self.obuf_soft_since,
            db: self.db,
            resp3: self.resp3,
            name: self.name.take(),
            authed: self.authed,
            asking: self.asking,
            readonly: self.readonly,
            no_evict: self.no_evict,
            last_cmd: self.last_cmd,
            last_sub: self.last_sub,
        }
    }

    /// A connection that moved here from another core.
    pub fn arrived(m: Moved) -> Conn {
        let mut c = Conn::new(m.fd, m.id, m.addr, m.laddr, m.created_ms, m.authed);
        c.last_ms = m.last_ms;
        c.moved_ms = m.moved_ms;
        c.rbuf = m.input;
        c.out = m.out;
        c.out_big = m.out_big;
        c.obuf_soft_since = m.obuf_soft_since;
        c.db = m.db;
        c.resp3 = m.resp3;
        c.name = m.name;
        c.asking = m.asking;
        c.readonly = m.readonly;
        c.no_evict = m.no_evict;
        c.last_cmd = m.last_cmd;
        c.last_sub = m.last_sub;
        c
    }

    /// In a state that may move to another core at this request boundary:
    /// no command in flight, nothing registered elsewhere under this core
    /// (subscriptions, WATCH, tracking, MONITOR, blocked keys), no
    /// transaction, no master or replica link, replies not switched off,
    /// no half-received big argument. Replies not yet handed to a send
    /// (`out`) travel with it; one in flight, or output held until
    /// the AOF or the replicas have the writes it reveals, is waited for by
    /// the caller ([`Conn::sending_done`]).
    pub fn plain(&self) -> bool {
        self.wait == Wait::No
            && !self.moving
            && !self.closing
            && !self.close_after_flush
            && !self.recv_paused
            && !self.direct
            && self.multi.is_none()
            && self.watches.is_empty()
            && self.sub_count() == 0
            && self.tracking.is_none()
            && self.track_later.is_empty()
            && !self.monitor
            && !self.master
            && !self.replconf
            && !self.handoff
            && !self.reply_off
            && !self.skip_next
            && self.big.is_none()
            && self.slow_pending.is_none()
    }

    /// Nothing is being sent: no send in flight, `sending` all sent.
    pub fn sending_done(&self) -> bool {
        !self.send_inflight && self.unsent().next().is_none()
    }

    /// Takes in received bytes: into the big argument being received
    /// first, up to its size, the rest into `rbuf`.
    pub fn take_in(&mut self, mut data: &[u8]) {
        if let Some(big) = self.big.as_deref_mut() {
            if let Some((buf, _, want)) = &mut big.filling {
                let n = (*want - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                big.done_if_full();
            }
        }
        self.rbuf.extend_from_slice(data);
    }

    /// Where the rest of the big argument being received may go straight
    /// from the socket, when at least [`BIG_RECV_MIN`] of it is still to
    /// come: the start of its buffer's unfilled capacity and its length.
    /// The buffer was allocated at its final size and is neither moved
    /// nor freed while a receive into it is in flight (`recv_inflight`
    /// keeps the connection, and with it the buffer, alive).
    pub fn big_spare(&mut self) -> Option<(*mut u8, u32)> {
        let (buf, _, want) = self.big.as_deref_mut()?.filling.as_mut()?;
        let left = *want - buf.len();
        if left < BIG_RECV_MIN || buf.capacity() < *want {
            return None;
        }
        let n = left.min(1 << 30) as u32;
        Some((buf.spare_capacity_mut().as_mut_ptr().cast(), n))
    }

    /// A receive put `n` bytes into the big argument's buffer after its
    /// filled part ([`Conn::big_spare`]).
    pub fn big_received(&mut self, n: usize) {
        let Some(big) = self.big.as_deref_mut() else {
            return;
        };
        let Some((buf, _, want)) = &mut big.filling else {
            return;
        };
        let n = n.min(*want - buf.len());
        // SAFETY: the kernel wrote `n` bytes (at most what `big_spare`
        // offered, which is within the capacity) right after `len`.
        unsafe { buf.set_len(buf.len() + n) };
        big.done_if_full();
    }

    /// A big argument is being received: nothing to parse until it is in.
    pub fn filling(&self) -> bool {
        self.big.as_ref().is_some_and(|b| b.filling.is_some())
    }

    /// The unparsed request bytes held, for `client-query-buffer-limit`:
    /// as Redis counts its query buffer, the big argument being received
    /// counts, those already received do not (they are arguments now).
    pub fn query_len(&self) -> usize {
        let filling = self.big.as_ref().and_then(|b| b.filling.as_ref());
        self.rbuf.len() - self.rpos + filling.map_or(0, |f| f.0.len())
    }

    /// Unsent output bytes (for `client-output-buffer-limit`).
    pub fn pending_out(&self) -> usize {
        let big = |v: &BigOut| v.iter().map(|(_, b)| b.len()).sum::<usize>();
        self.out.len() + big(&self.out_big) + self.sending.len()
            - self.send_off.min(self.sending.len())
            + big(&self.sending_big)
            - self.send_big_off
    }

    /// What is left to send from `sending` and its big bulks, in order;
    /// empty once all is sent.
    pub fn unsent(&self) -> impl Iterator<Item = &[u8]> {
        let mut off = self.send_off;
        let mut big_off = self.send_big_off;
        let mut bigs = self.sending_big.iter();
        std::iter::from_fn(move || loop {
            let Some((at, b)) = bigs.as_slice().first() else {
                let rest = self.sending.get(off..).filter(|r| !r.is_empty());
                off = self.sending.len();
                return rest;
            };
            if off < *at {
                let part = &self.sending[off..*at];
                off = *at;
                return Some(part);
            }
            bigs.next();
            let part = &b[big_off.min(b.len())..];
            big_off = 0;
            if !part.is_empty() {
                return Some(part);
            }
        })
    }

    /// Empties `sending` once all of it is sent; a large reply's buffer
    /// is freed rather than kept for the next one.
    pub fn sent_all(&mut self) {
        self.sending.clear();
        self.send_off = 0;
        if self.sending.capacity() > BUF_KEEP {
            self.sending = Vec::new();
        }
        self.send_vec = None;
    }

    /// Counts `n` bytes of [`Conn::unsent`] as sent.
    pub fn sent(&mut self, mut n: usize) {
        while n > 0 {
            match self.sending_big.first() {
                Some((at, b)) if *at <= self.send_off => {
                    let k = n.min(b.len() - self.send_big_off);
                    self.send_big_off += k;
                    n -= k;
                    if self.send_big_off == b.len() {
                        self.sending_big.remove(0);
                        self.send_big_off = 0;
                    }
                }
                Some((at, _)) => {
                    let k = n.min(at - self.send_off);
                    self.send_off += k;
                    n -= k;
                }
                None => {
                    self.send_off += n;
                    n = 0;
                }
            }
        }
    }

    /// Subscriptions of all kinds.
    /// CLIENT LIST/KILL's type of this connection (a replica's socket
    /// leaves the cores once it syncs).
    pub fn client_type(&self) -> ClientType {
        if self.master {
            ClientType::Master
        } else if self.sub_count() > 0 {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        }
    }

    pub fn sub_count(&self) -> usize {
        self.subs.len() + self.psubs.len() + self.ssubs.len()
    }

    /// CLIENT LIST flags.
    pub fn flags(&self) -> String {
        let mut f = String::new();
        if self.monitor {
            f.push('O');
        }
        if self.master {
            f.push('M');
        }
        if self.handoff {
            f.push('S');
        }
        if self.wait == Wait::Blocked {
            f.push('b');
        }
        if self.sub_count() > 0 {
            f.push('P');
        }
        if self.multi.is_some() {
            f.push('x');
        }
        if let Some(t) = &self.tracking {
            f.push('t');
            if t.broken_redir {
                f.push('R');
            }
            if t.bcast {
                f.push('B');
            }
        }
        if self.close_after_flush {
            f.push('c');
        }
        if self.no_evict {
            f.push('e');
        }
        if f.is_empty() {
            f.push('N');
        }
        f
    }

    /// One CLIENT LIST / CLIENT INFO line, in Redis 7.0's field order.
    pub fn info_line(&self, now_ms: i64) -> String {
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir={} resp={}",
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
            self.query_len(),
            self.rbuf.capacity() - self.rbuf.len(),
            self.rbuf.capacity(),
            self.rbuf.len(),
            self.pending_out(),
            self.rbuf.capacity() + self.out.capacity() + self.sending.capacity(),
            self.last_sub
                .or(self.last_cmd.map(|s| s.name))
                .unwrap_or("NULL"),
            self.tracking.as_ref().map_or(-1, |t| t.redirect as i64),
            if self.resp3 { 3 } else { 2 },
        )
    }
}

impl std::fmt::Debug for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moved")
            .field("fd", &self.fd)
            .field("id", &self.id)
            .field("input", &self.input.len())
            .finish_non_exhaustive()
    }
}

/// A client's type, as CLIENT LIST and CLIENT KILL's `TYPE` name them
/// (Redis's `getClientType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    /// A replica taking the stream (its socket is the master thread's).
    Replica,
    /// Subscribed to a channel or pattern.
    Pubsub,
    /// A replica's link to its master.
    Master,
}

impl ClientType {
    /// `normal`, `replica` or `slave`, `pubsub`, `master` (any case).
    pub fn parse(name: &[u8]) -> Option<ClientType> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("normal") {
            Some(ClientType::Normal)
        } else if is("replica") || is("slave") {
            Some(ClientType::Replica)
        } else if is("pubsub") {
            Some(ClientType::Pubsub)
        } else if is("master") {
            Some(ClientType::Master)
        } else {
            None
        }
    }
}
