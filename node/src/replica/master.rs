//! The master side: one thread (`repl-master`, unpinned, sleeping in
//! `poll(2)`) that merges the cores' chunks into one stream
//! (`repl::merge`), keeps the backlog and the replicas' state
//! (`repl::master`), and writes to the replicas' sockets.
//!
//! A replica connects like any client, to a core: its `REPLCONF`s are
//! answered by this thread (through the core's task), its `SYNC`/`PSYNC`
//! is decided here while a task holds every core's lock (so the stream's
//! offset and the snapshot that a full resynchronization sends are of one
//! instant), then the core lets the socket go and hands it over here with
//! whatever it had received after the command. A full resynchronization
//! sends the RDB the barrier's snapshot job writes: its file
//! (`repl-diskless-sync no`), or, diskless, what the job's writer puts in
//! a pipe, framed by `$EOF:<mark>` as Redis frames it.

use super::stream::{Proxied, Stream};
use crate::mesh::{Mesh, Msg, Response};
use crate::persist::Job;
use engine::Reply;
use repl::master::{Master, MasterConfig, Out};
use repl::merge::Merger;
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of the merged stream enters the backlog at a time.
const BACKLOG_PIECE: usize = 64 * 1024;

/// Where a full resynchronization's RDB comes from.
pub enum Rdb {
    /// The file the snapshot job writes (disk-backed).
    File(std::path::PathBuf),
    /// A pipe the snapshot job writes into (`repl-diskless-sync yes`).
    Pipe(OwnedFd),
}

/// A full resynchronization's snapshot job and where its RDB comes from.
pub type SyncJob = (Arc<Job>, Rdb);

/// What INFO and ROLE show of the master side.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// INFO replication from `role:master` to `repl_backlog_histlen`.
    pub text: String,
    /// `sync_full`, `sync_partial_ok`, `sync_partial_err`.
    pub syncs: (u64, u64, u64),
    /// `master_repl_offset`.
    pub offset: i64,
}

/// A WAIT in progress.
struct Waiting {
    ticket: u64,
    offset: Option<i64>,
    replicas: i64,
    deadline: Option<u64>,
    core: usize,
    id: u64,
    conn: crate::io::Key,
}

/// What the cores tell the master thread.
pub enum Note {
    /// WAIT: once every write before `ticket` is in the stream, answer
    /// `Count(n)` when `replicas` replicas acknowledged it, or after
    /// `timeout_ms` (0: no limit) with how many did.
    Wait {
        ticket: u64,
        replicas: i64,
        timeout_ms: i64,
        core: usize,
        id: u64,
        conn: crate::io::Key,
    },
    /// CLIENT UNBLOCK of connection `conn` of core `core`, in WAIT: it is
    /// answered now, as at its timeout, or with `-UNBLOCKED` (`error`).
    UnblockWait {
        core: usize,
        conn: crate::io::Key,
        error: bool,
    },
    /// `REPLCONF` from client `conn` of core `core`: answer request `id`
    /// with the reply (none for ACK/GETACK).
    Replconf {
        conn: u64,
        peer_ip: String,
        argv: Vec<Vec<u8>>,
        core: usize,
        id: u64,
    },
    /// `SYNC`/`PSYNC`, under the barrier: answer `Count(1)` for a full
    /// resynchronization (a snapshot must start now), `Count(0)` for a
    /// partial one, or the error reply. On a replica, `at` is where its
    /// link, held still, left the data.
    Sync {
        conn: u64,
        peer_ip: String,
        argv: Vec<Vec<u8>>,
        core: usize,
        id: u64,
        at: Option<repl::Resume>,
    },
    /// The node became a replica (`history: None`): its replicas get its
    /// master's stream from now on; or a master again, continuing
    /// `history` with the writes of its cores. Either way the replicas are
    /// disconnected, to learn the new replication ID (Redis's
    /// `disconnectSlaves`), and resynchronize, partially where they can.
    Mode { history: Option<History> },
    /// The replica's socket, let go by its core, with the output it had
    /// not sent and the input after the command; `job` writes the RDB of a
    /// full resynchronization, `rdb` names its file.
    Socket {
        conn: u64,
        /// The connection's peer and local addresses (CLIENT KILL's
        /// `ADDR`, `LADDR`).
        addr: String,
        laddr: String,
        fd: OwnedFd,
        out: Vec<u8>,
        input: Vec<u8>,
        job: Option<SyncJob>,
    },
    /// CLIENT KILL: close the replicas `filter` matches, answer request
    /// `id` of core `core` with how many.
    Kill {
        filter: crate::mesh::KillFilter,
        core: usize,
        id: u64,
    },
    /// A core closed a connection that spoke REPLCONF but never became a
    /// replica here.
    Gone { conn: u64 },
    /// The replication offset once every write whose ticket was taken is
    /// in the backlog (a manual failover's paused master), or `None` if
    /// the stream did not catch up within a second.
    Offset {
        tx: std::sync::mpsc::Sender<Option<i64>>,
    },
}

/// A replica's socket and what goes through it.
struct Sock {
    fd: Option<OwnedFd>,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
    /// The full resynchronization's job, until its RDB starts going.
    job: Option<SyncJob>,
    /// The RDB being sent: from a file with the bytes left, or from the
    /// job's pipe with the EOF mark that ends it.
    rdb: Option<Sending>,
    /// Stream bytes owed, held until the replica takes the stream.
    held: Vec<u8>,
    addr: String,
    laddr: String,
    /// `REPLCONF rdb-filter-only`: a full resynchronization sends an RDB
    /// without keys, made here, with the stream's position if known.
    empty_rdb: Option<Option<repl::Resume>>,
}

enum Sending {
    File(std::fs::File, u64),
    Pipe(OwnedFd, Arc<Job>, [u8; repl::RUN_ID_SIZE]),
}

impl Sock {
    fn new() -> Sock {
        Sock {
            fd: None,
            out: Vec::new(),
            sent: 0,
            input: Vec::new(),
            job: None,
            rdb: None,
            held: Vec::new(),
            addr: String::new(),
            laddr: String::new(),
            empty_rdb: None,
        }
    }
}

/// The master thread's state.
pub struct MasterThread {
    shared: Arc<crate::shared::Shared>,
    stream: Arc<Stream>,
    mesh: Arc<Mesh>,
    notes: Arc<Mutex<Vec<Note>>>,
    info: Arc<Mutex<View>>,
    waits: Vec<Waiting>,
    master: Master,
    merger: Merger,
    socks: HashMap<u64, Sock>,
    start: Instant,
    buf: Vec<u8>,
    /// `client-output-buffer-limit replica`'s hard limit (0: none).
    obuf_hard: u64,
    /// This node is a replica: the stream is its link's ([`Proxied`]),
    /// known from `proxy_known` on (where the link's stream stands matches
    /// `master`'s ID and offset).
    proxy: bool,
    proxy_known: bool,
}

fn id_bytes(id: &str) -> [u8; repl::RUN_ID_SIZE] {
    let mut out = [b'0'; repl::RUN_ID_SIZE];
    for (o, b) in out.iter_mut().zip(id.bytes()) {
        *o = b;
    }
    out
}

/// The replication history a master thread continues: its ID and offset,
/// and the previous ID with the offset it is valid up to (after a
/// promotion), so that the old master's other replicas resume partially.
pub struct History {
    pub replid: String,
    pub offset: i64,
    pub replid2: Option<(String, i64)>,
}

impl MasterThread {
    /// `proxy`: the node is a replica (see [`Note::Mode`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<crate::shared::Shared>,
        stream: Arc<Stream>,
        mesh: Arc<Mesh>,
        notes: Arc<Mutex<Vec<Note>>>,
        info: Arc<Mutex<View>>,
        history: History,
        cfg: MasterConfig,
        proxy: bool,
    ) -> MasterThread {
        // `client-output-buffer-limit replica`'s hard limit.
        let obuf_hard = shared.settings().obuf[1].hard;
        MasterThread {
            shared,
            stream,
            mesh,
            notes,
            info,
            waits: Vec::new(),
            master: master_of(history, cfg),
            merger: Merger::new(),
            socks: HashMap::new(),
            start: Instant::now(),
            buf: Vec::new(),
            obuf_hard,
            proxy,
            proxy_known: false,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn run(mut self) {
        loop {
            self.absorb();
            let notes = self.notes.lock().map(|mut n| std::mem::take(&mut *n));
            for note in notes.unwrap_or_default() {
                self.note(note);
            }
            let (min, lag) = {
                let s = self.shared.settings();
                (s.min_replicas_to_write, s.min_replicas_max_lag)
            };
            self.master.set_min_replicas(min, lag);
            // A replica's replicas get its master's PINGs, none of its own.
            self.master
                .hold_pings(self.proxy || self.shared.failover_pause.load(Ordering::SeqCst));
            let outs = self.master.tick(self.now());
            self.outs(outs);
            self.shared
                .good_replicas
                .store(self.master.good_replicas(), Ordering::Relaxed);
            self.absorb();
            self.waits();
            self.pump();
            let streaming = self
                .socks
                .iter()
                .any(|(&conn, s)| s.fd.is_some() && self.master.streaming(conn));
            self.stream.publish_sent(
                self.merger.next_ticket(),
                streaming && !self.proxy,
                &self.mesh,
            );
            if let Ok(mut i) = self.info.lock() {
                *i = View {
                    // A replica whose link's position is not known yet
                    // shows its link's (`Status`).
                    text: if self.proxy && !self.proxy_known {
                        String::new()
                    } else {
                        self.master.info(self.now())
                    },
                    syncs: self.master.sync_stats(),
                    offset: self.master.offset(),
                };
            }
            self.sleep();
        }
    }

    /// Takes the cores' chunks into the merger and the merged bytes into
    /// the backlog.
    fn absorb(&mut self) {
        while let Some(c) = self.stream.pop() {
            self.merger.push(c);
        }
        self.buf.clear();
        let drained = self.merger.drain(&mut self.buf);
        if self.proxy {
            // Chunks a core pushed as the node turned replica: their
            // tickets are passed, their bytes are not this stream's.
            self.buf.clear();
            self.absorb_proxied();
            return;
        }
        if let Err(g) = drained {
            crate::log::warning(format_args!(
                "Replication stream lost chunks {}..{}: replicas must resynchronize",
                g.from, g.to
            ));
            self.close_all();
        }
        // In pieces: each replica takes what it is owed before the
        // backlog moves on, so a burst larger than the backlog loses none.
        let buf = std::mem::take(&mut self.buf);
        for piece in buf.chunks(BACKLOG_PIECE) {
            self.collect();
            self.master.feed(piece);
        }
        self.buf = buf;
    }

    /// Takes what the link handed on: its master's stream into the
    /// backlog, and where it stands after each (re)synchronization.
    fn absorb_proxied(&mut self) {
        while let Some(p) = self.stream.pop_proxied() {
            match p {
                Proxied::Bytes(bytes) if self.proxy_known => {
                    for piece in bytes.chunks(BACKLOG_PIECE) {
                        self.collect();
                        self.master.feed(piece);
                    }
                }
                Proxied::Bytes(_) => {}
                Proxied::At { replid: None, .. } => {
                    self.proxy_known = false;
                    self.close_all();
                }
                Proxied::At {
                    replid: Some(id),
                    offset,
                    full,
                } => {
                    let id = id_bytes(&id);
                    let here = self.proxy_known && !full && self.master.offset() == offset;
                    if here && *self.master.replid() != id {
                        // A partial resynchronization with a new ID
                        // (Redis: shift the IDs, disconnect the replicas).
                        self.master.shift_replid(id);
                        self.close_all();
                    } else if !here {
                        self.close_all();
                        self.master.restart_at(id, offset);
                    }
                    self.proxy_known = true;
                }
            }
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<u64> = self.socks.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
    }

    /// Moves what each replica is owed from the backlog to its socket's
    /// output (or holds it there until the replica takes the stream);
    /// drops a replica past the backlog or over its output limit.
    fn collect(&mut self) {
        let mut drop = Vec::new();
        for (&conn, s) in self.socks.iter_mut() {
            if s.fd.is_none() {
                continue;
            }
            if !self.master.take_owed(conn, &mut s.held) {
                drop.push((conn, "fell out of the replication backlog"));
                continue;
            }
            if s.rdb.is_none()
                && s.job.is_none()
                && self.master.streaming(conn)
                && !s.held.is_empty()
            {
                if s.out.is_empty() {
                    std::mem::swap(&mut s.out, &mut s.held);
                } else {
                    s.out.append(&mut s.held);
                }
            }
            if self.obuf_hard > 0 && (s.held.len() + s.out.len() - s.sent) as u64 > self.obuf_hard {
                drop.push((
                    conn,
                    "scheduled to be closed ASAP for overcoming of output buffer limits",
                ));
            }
        }
        for (conn, why) in drop {
            crate::log::warning(format_args!("Replica {conn} {why}."));
            self.close(conn);
        }
    }

    /// Every ticket taken so far is in the backlog (the cores are locked:
    /// none is being taken).
    fn absorb_all(&mut self) {
        let target = self.stream.next_ticket();
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            self.absorb();
            if self.merger.next_ticket() >= target || Instant::now() > deadline {
                break;
            }
            std::thread::yield_now();
        }
    }

    /// WAITs whose writes reached the stream ask the replicas for an ACK;
    /// those acknowledged (or timed out) are answered.
    fn waits(&mut self) {
        if self.waits.is_empty() {
            return;
        }
        let now = self.now();
        let next = self.merger.next_ticket();
        let mut asked = false;
        let mut i = 0;
        while i < self.waits.len() {
            let w = &mut self.waits[i];
            if w.offset.is_none() && next >= w.ticket {
                w.offset = Some(self.master.offset());
                asked = true;
            }
            let acks = w.offset.map_or(0, |o| self.master.count_acks(o) as i64);
            if (w.offset.is_some() && acks >= w.replicas) || w.deadline.is_some_and(|d| now >= d) {
                let w = self.waits.remove(i);
                self.answer(w.core, w.id, Response::Count(acks));
                continue;
            }
            i += 1;
        }
        if asked {
            self.master.request_acks();
        }
    }

    fn answer(&self, core: usize, id: u64, resp: Response) {
        self.mesh.send(core, Msg::Resp { id, resp });
    }

    fn note(&mut self, note: Note) {
        let now = self.now();
        match note {
            Note::Offset { tx } if self.proxy => {
                self.absorb();
                let _ = tx.send(self.proxy_known.then(|| self.master.offset()));
            }
            Note::Mode { history } => self.mode(history),
            Note::Offset { tx } => {
                let target = self.stream.next_ticket();
                self.absorb_all();
                let done = self.merger.next_ticket() >= target;
                let _ = tx.send(done.then(|| self.master.offset()));
            }
            Note::Wait {
                ticket,
                replicas,
                timeout_ms,
                core,
                id,
                conn,
            } => self.waits.push(Waiting {
                ticket,
                offset: None,
                replicas,
                deadline: (timeout_ms > 0).then(|| now + timeout_ms as u64),
                core,
                id,
                conn,
            }),
            Note::UnblockWait { core, conn, error } => {
                if let Some(i) = self
                    .waits
                    .iter()
                    .position(|w| w.core == core && w.conn == conn)
                {
                    let w = self.waits.remove(i);
                    let resp = if error {
                        Response::Replies(vec![engine::Reply::err(
                            "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                        )])
                    } else {
                        Response::Count(w.offset.map_or(0, |o| self.master.count_acks(o) as i64))
                    };
                    self.answer(w.core, w.id, resp);
                }
            }
            Note::Replconf {
                conn,
                peer_ip,
                argv,
                core,
                id,
            } => {
                let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                let reply = self.master.replconf(conn, &peer_ip, &args, now);
                let replies = reply_of(&reply).into_iter().collect();
                self.answer(core, id, Response::Replies(replies));
            }
            Note::Sync {
                conn,
                peer_ip,
                argv,
                core,
                id,
                at,
            } => {
                self.absorb_all();
                if self.proxy {
                    // Held still, the link handed on all it had: the
                    // backlog ends where the data stands, or the replica
                    // tries again later.
                    let here = at.as_ref().is_some_and(|r| {
                        self.proxy_known
                            && *self.master.replid() == id_bytes(&r.replid)
                            && self.master.offset() == r.offset
                    });
                    if !here {
                        let e = Reply::Error(NOMASTERLINK.into());
                        self.answer(core, id, Response::Replies(vec![e]));
                        return;
                    }
                }
                let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                let fresh = id_bytes(&super::random_id());
                let outs = self.master.sync(conn, &peer_ip, &args, now, fresh);
                let full = outs.iter().any(|o| matches!(o, Out::FullResync { .. }));
                let eof = outs
                    .iter()
                    .any(|o| matches!(o, Out::FullResync { eof: true, .. }));
                let empty = outs
                    .iter()
                    .any(|o| matches!(o, Out::FullResync { empty: true, .. }));
                if empty {
                    self.socks.entry(conn).or_insert_with(Sock::new).empty_rdb = Some(at);
                }
                if full && !self.proxy {
                    // The stream after the RDB selects its database again
                    // (a replica's RDB says where its master's stream is:
                    // `repl-stream-db`).
                    self.merger.reset_db();
                }
                let replica = self.master.replica(conn).is_some();
                let mut error = None;
                for o in outs {
                    match o {
                        Out::Send(c, bytes) if c == conn && !replica => error = reply_of(&bytes),
                        Out::Send(c, bytes) => self
                            .socks
                            .entry(c)
                            .or_insert_with(Sock::new)
                            .out
                            .extend(bytes),
                        Out::Log(line) => crate::log::notice(format_args!("{line}")),
                        Out::Close(c) => self.close(c),
                        Out::FullResync { .. } => {}
                    }
                }
                let resp = match (replica, error) {
                    // 3: no snapshot (an empty RDB is sent).
                    (true, _) if empty => Response::Count(3),
                    (true, _) => Response::Count(full as i64 + (full && eof) as i64),
                    (false, Some(e)) => Response::Replies(vec![e]),
                    (false, None) => Response::Replies(Vec::new()),
                };
                self.answer(core, id, resp);
            }
            Note::Kill { filter, core, id } => {
                let hit: Vec<u64> = self
                    .socks
                    .iter()
                    .filter(|(&conn, s)| {
                        s.fd.is_some()
                            && filter.id.is_none_or(|i| i == conn)
                            && filter.addr.as_ref().is_none_or(|a| *a == s.addr)
                            && filter.laddr.as_ref().is_none_or(|a| *a == s.laddr)
                    })
                    .map(|(&conn, _)| conn)
                    .collect();
                for &conn in &hit {
                    self.close(conn);
                }
                self.answer(core, id, Response::Count(hit.len() as i64));
            }
            Note::Socket {
                conn,
                addr,
                laddr,
                fd,
                out,
                input,
                job,
            } => {
                match self.master.replica(conn) {
                    None => return,
                    // A full resynchronization whose snapshot could not
                    // start: nothing will come.
                    Some((repl::master::ReplState::WaitBgsave, _))
                        if job.is_none()
                            && self.socks.get(&conn).is_none_or(|s| s.empty_rdb.is_none()) =>
                    {
                        crate::log::warning(format_args!(
                            "Can't start a snapshot for a replica's full resynchronization"
                        ));
                        self.close(conn);
                        return;
                    }
                    Some(_) => {}
                }
                set_nonblocking(&fd);
                let s = self.socks.entry(conn).or_insert_with(Sock::new);
                // What the core had not sent goes before what this thread
                // queued (the +FULLRESYNC / +CONTINUE line).
                let mut all = out;
                all.extend_from_slice(&s.out[s.sent..]);
                s.out = all;
                s.sent = 0;
                s.fd = Some(fd);
                s.input = input;
                s.job = job;
                s.addr = addr;
                s.laddr = laddr;
                if let Some(at) = s.empty_rdb.take() {
                    // The empty RDB, framed as a diskless one.
                    let mark = id_bytes(&super::random_id());
                    s.out.extend_from_slice(b"$EOF:");
                    s.out.extend_from_slice(&mark);
                    s.out.extend_from_slice(b"\r\n");
                    s.out
                        .extend(crate::persist::empty_rdb(&self.shared, at.as_ref()));
                    s.out.extend_from_slice(&mark);
                    self.master.rdb_transfer(conn, true);
                    log_outs(self.master.rdb_done(conn, now));
                }
                self.read_input(conn);
            }
            Note::Gone { conn } => {
                if let Some(line) = self.master.closed(conn, now) {
                    crate::log::warning(format_args!("{line}"));
                }
                self.socks.remove(&conn);
            }
        }
    }

    /// [`Note::Mode`].
    fn mode(&mut self, history: Option<History>) {
        self.absorb_all();
        self.close_all();
        match history {
            None => {
                self.proxy = true;
                // The link offers this node's own history first: the
                // backlog goes on if the new master continues it.
                self.proxy_known = true;
                self.stream.set_proxying(true);
                self.stream.set_active(false);
            }
            Some(h) => {
                self.stream.set_proxying(false);
                let continues = self.proxy
                    && self.proxy_known
                    && h.replid2.as_ref().is_some_and(|(old, second)| {
                        *self.master.replid() == id_bytes(old)
                            && self.master.offset() == second.saturating_sub(1)
                    });
                if continues {
                    self.master.shift_replid(id_bytes(&h.replid));
                } else {
                    continue_history(&mut self.master, h);
                }
                self.proxy = false;
                self.proxy_known = false;
                self.stream.set_active(true);
                self.stream.set_starting(false);
            }
        }
    }

    fn outs(&mut self, outs: Vec<Out>) {
        for o in outs {
            match o {
                Out::Send(c, bytes) => {
                    if let Some(s) = self.socks.get_mut(&c) {
                        s.out.extend(bytes);
                    }
                }
                Out::Log(line) => crate::log::notice(format_args!("{line}")),
                Out::Close(c) => self.close(c),
                Out::FullResync { .. } => {}
            }
        }
    }

    fn close(&mut self, conn: u64) {
        self.socks.remove(&conn);
        if let Some(line) = self.master.closed(conn, self.now()) {
            crate::log::warning(format_args!("{line}"));
        }
    }

    /// Moves bytes: the RDB when its file is ready, the stream once the
    /// replica is online, input (ACKs) from the replicas.
    fn pump(&mut self) {
        let ids: Vec<u64> = self.socks.keys().copied().collect();
        for conn in ids {
            self.start_rdb(conn);
            let Some(s) = self.socks.get_mut(&conn) else {
                continue;
            };
            if s.fd.is_none() {
                continue;
            }
            self.collect();
            if !self.write(conn) {
                self.close(conn);
                continue;
            }
            self.read_input(conn);
        }
    }

    /// A full resynchronization's RDB starts going: from the pipe at once
    /// (diskless), from the file once the job is over.
    fn start_rdb(&mut self, conn: u64) {
        let Some(s) = self.socks.get_mut(&conn) else {
            return;
        };
        if s.fd.is_none() {
            return;
        }
        match &s.job {
            None => return,
            Some((job, Rdb::File(_))) if !job.is_over() => return,
            Some(_) => {}
        }
        let Some((job, rdb)) = s.job.take() else {
            return;
        };
        let path = match rdb {
            Rdb::Pipe(fd) => {
                set_nonblocking(&fd);
                let mark = id_bytes(&super::random_id());
                s.out.extend_from_slice(b"$EOF:");
                s.out.extend_from_slice(&mark);
                s.out.extend_from_slice(b"\r\n");
                s.rdb = Some(Sending::Pipe(fd, job, mark));
                self.master.rdb_transfer(conn, true);
                return;
            }
            Rdb::File(path) => path,
        };
        let result = job.poll_result(0, std::task::Waker::noop());
        let file = match result {
            Some(Ok(())) => std::fs::File::open(&path),
            _ => Err(std::io::Error::other("the snapshot failed")),
        };
        let file = match file.and_then(|f| f.metadata().map(|m| (f, m.len()))) {
            Ok(f) => f,
            Err(e) => {
                crate::log::warning(format_args!(
                    "SYNC failed. BGSAVE child returned an error: {}",
                    crate::log::io_error_text(&e)
                ));
                self.close(conn);
                return;
            }
        };
        s.out
            .extend_from_slice(format!("${}\r\n", file.1).as_bytes());
        s.rdb = Some(Sending::File(file.0, file.1));
        self.master.rdb_transfer(conn, false);
    }

    /// Writes what `conn` owes (and RDB bytes when its output is empty);
    /// false when the socket failed or an rdb-only replica is done.
    fn write(&mut self, conn: u64) -> bool {
        let now = self.now();
        let Some(s) = self.socks.get_mut(&conn) else {
            return true;
        };
        let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return true;
        };
        loop {
            if s.sent == s.out.len() {
                s.out.clear();
                s.sent = 0;
                let mut chunk = vec![0u8; 256 * 1024];
                match s.rdb.as_mut() {
                    // An rdb-only replica is closed once its RDB is out.
                    None => return !self.master.rdb_transmitted(conn),
                    Some(Sending::File(_, 0)) => {
                        s.rdb = None;
                        log_outs(self.master.rdb_done(conn, now));
                        return true;
                    }
                    Some(Sending::File(file, left)) => {
                        chunk.truncate((*left).min(chunk.len() as u64) as usize);
                        match file.read(&mut chunk) {
                            Ok(n) if n > 0 => {
                                chunk.truncate(n);
                                *left -= n as u64;
                                s.out = chunk;
                            }
                            _ => return false,
                        }
                    }
                    Some(Sending::Pipe(fd, job, mark)) => {
                        // SAFETY: reads into our buffer from our own pipe.
                        let n = unsafe {
                            libc::read(
                                fd.as_raw_fd(),
                                chunk.as_mut_ptr() as *mut libc::c_void,
                                chunk.len(),
                            )
                        };
                        if n > 0 {
                            chunk.truncate(n as usize);
                            s.out = chunk;
                        } else if n == 0 {
                            // The writer is done: the RDB is whole only if
                            // the job says so (its result comes a moment
                            // after the pipe closes).
                            match job.poll_result(0, std::task::Waker::noop()) {
                                Some(Ok(())) => {}
                                Some(Err(_)) => return false,
                                None => return true,
                            }
                            s.out = mark.to_vec();
                            s.rdb = None;
                            log_outs(self.master.rdb_done(conn, now));
                        } else {
                            return std::io::Error::last_os_error().kind()
                                == std::io::ErrorKind::WouldBlock;
                        }
                    }
                }
            }
            let rest = &s.out[s.sent..];
            // SAFETY: writes from our buffer to our own socket.
            let n = unsafe {
                libc::send(
                    fd,
                    rest.as_ptr() as *const libc::c_void,
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return e.kind() == std::io::ErrorKind::WouldBlock;
            }
            s.sent += n as usize;
            if n > 0 && matches!(s.rdb, Some(Sending::Pipe(..))) {
                self.master.rdb_progress(conn, now);
            }
            if (n as usize) < rest.len() {
                return true;
            }
        }
    }

    /// Reads and runs what a replica sent (REPLCONF ACK).
    fn read_input(&mut self, conn: u64) {
        let now = self.now();
        let Some(s) = self.socks.get_mut(&conn) else {
            return;
        };
        let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut closed = loop {
            // SAFETY: reads into our buffer from our own socket.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                break true;
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                break e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::Interrupted;
            }
            s.input.extend_from_slice(&buf[..n as usize]);
            if s.input.len() > 1 << 20 {
                break true;
            }
        };
        let limits = engine::resp::Limits::default();
        let mut spans = Vec::new();
        let mut scratch = Vec::new();
        let mut pos = 0;
        let mut replies = Vec::new();
        while pos < s.input.len() {
            let rest = &s.input[pos..];
            match engine::resp::parse(rest, &limits, &mut spans, &mut scratch) {
                Ok(engine::resp::Parsed::Command { consumed, inline }) => {
                    // An inline command's arguments are in `scratch`.
                    let from: &[u8] = if inline { &scratch } else { rest };
                    let args: Vec<&[u8]> = spans
                        .iter()
                        .map(|&(a, b)| from.get(a as usize..b as usize).unwrap_or_default())
                        .collect();
                    if args
                        .first()
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"replconf"))
                    {
                        replies.push(self.master.replconf(conn, "", &args, now));
                    }
                    pos += consumed;
                }
                // The newlines a replica sends while it loads the RDB.
                Ok(engine::resp::Parsed::Empty { consumed }) => {
                    self.master.newline(conn, now);
                    pos += consumed;
                }
                Ok(_) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        s.input.drain(..pos.min(s.input.len()));
        for r in replies {
            s.out.extend(r);
        }
        if closed {
            self.close(conn);
        }
    }

    /// Sleeps until a chunk, a note or a replica's bytes arrive, or 100 ms.
    fn sleep(&mut self) {
        let mut fds = vec![libc::pollfd {
            fd: self.stream.eventfd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for s in self.socks.values() {
            if let Some(fd) = &s.fd {
                let mut events = libc::POLLIN;
                let piped = matches!(s.rdb, Some(Sending::Pipe(..)));
                if s.sent < s.out.len() || (s.rdb.is_some() && !piped) {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events,
                    revents: 0,
                });
                if let (Some(Sending::Pipe(p, ..)), true) = (&s.rdb, s.sent == s.out.len()) {
                    fds.push(libc::pollfd {
                        fd: p.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
        }
        let notes = self.notes.lock().map(|n| !n.is_empty()).unwrap_or(false);
        if notes || !self.stream.prepare_sleep() {
            return;
        }
        // SAFETY: `fds` is a valid array of pollfd entries.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        self.stream.woke();
    }
}

/// Redis's refusal of SYNC on a replica whose link is not up.
pub const NOMASTERLINK: &str = "NOMASTERLINK Can't SYNC while not connected with my master";

/// The master side that continues `history`.
fn master_of(history: History, cfg: MasterConfig) -> Master {
    let mut m = Master::new(id_bytes(&history.replid), cfg);
    continue_history(&mut m, history);
    m
}

/// `m` continues `history` from an empty backlog (its connections kept).
fn continue_history(m: &mut Master, history: History) {
    match history.replid2 {
        Some((old, second)) => {
            m.restart_at(id_bytes(&old), second.saturating_sub(1));
            m.shift_replid(id_bytes(&history.replid));
        }
        None => m.restart_at(id_bytes(&history.replid), history.offset),
    }
}

/// A RESP reply line (`+…` or `-…`) as a reply to relay; `None` when
/// empty.
fn reply_of(bytes: &[u8]) -> Option<Reply> {
    let line = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
    match line.split_first() {
        Some((b'+', s)) => Some(Reply::Status(
            String::from_utf8_lossy(s).into_owned().into(),
        )),
        Some((b'-', s)) => Some(Reply::Error(String::from_utf8_lossy(s).into_owned().into())),
        _ => None,
    }
}

/// Logs what `Master::rdb_done` says (it only logs).
fn log_outs(outs: Vec<Out>) {
    for o in outs {
        if let Out::Log(line) = o {
            crate::log::notice(format_args!("{line}"));
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}
