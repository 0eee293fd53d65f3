//! Other cores' requests, served on this one: commands and pipeline
//! segments, shard locks, moving keys in and out for multi-key commands,
//! WATCH versions, pub/sub delivery, and the node-wide questions (CLIENT
//! LIST/KILL, INFO counters, RESETSTAT, settings reload, shutdown).

use super::run::Origin;
use super::{pubsub, Shard};
use crate::io::{Key, Wait};
use crate::mesh::{parse_db, AdminQuery, CoreStats, Msg, Pipeline, Request, Response, Seg};
use crate::shared::now_ms;
use bytes::Bytes;
use engine::Reply;

/// The largest reply a core sends on another core's client socket
/// ([`Shard::flush_direct`]).
const DIRECT_MAX: usize = 16 * 1024;

/// Bytes per command reserved up front for the replies of a pipeline's
/// part run here (a GET of a 64-byte value takes 71), so that they do not
/// grow the buffer reply by reply; a bigger reply grows it as usual.
const REPLY_GUESS: usize = 96;

/// Whether `req` is served while transaction `tx` holds this core's lock:
/// that transaction's own requests, and those that neither read nor write
/// the keyspace; the rest wait for the unlock.
fn served_under(tx: crate::mesh::TxId, req: &Request) -> bool {
    match req {
        Request::Exec { tx: Some(t), .. } | Request::Export { tx: Some(t), .. } => *t == tx,
        Request::Pipeline(p) => p.tx == Some(tx),
        Request::Unlock(t) | Request::SnapshotStart { tx: t } => *t == tx,
        Request::Export { tx: None, .. } | Request::Import { .. } => true,
        Request::Exec { .. } | Request::Watch { .. } => false,
        _ => !keyspace_wide(req),
    }
}

/// Requests that take a lock, read or replace a core's keyspace beyond
/// keys they name, or pause its writers: they wait while a transaction
/// holds the core or a key is reserved there.
pub(super) fn keyspace_wide(req: &Request) -> bool {
    matches!(
        req,
        Request::Lock(..)
            | Request::Digest
            | Request::DigestValues { .. }
            | Request::Replace { .. }
            | Request::DropSlot { .. }
            | Request::TakeSlots { .. }
            | Request::PutSlots(_)
            | Request::PauseWrites { .. }
            | Request::CountKeys { .. }
            | Request::KeysInSlot { .. }
    )
}

/// A pipeline's replies waiting to be sent on another core's client
/// socket ([`Shard::flush_direct`]), with the AOF on once every core's log
/// is effective past the pipeline's records (`needs`: per core, its log
/// offset after its part).
pub(super) struct DirectSend {
    from: usize,
    fd: i32,
    id: u64,
    out: engine::Encoded,
    ends: Vec<u32>,
    needs: Vec<(usize, u64)>,
}

impl Shard {
    /// Runs segment `seg` of a pipeline whose bytes are `bytes` (with
    /// `holes` and `bigs` for its first command) and whose commands were
    /// parsed as `pre`: its replies go on `out`, its end offset on `ends`.
    fn run_seg(
        &mut self,
        db: usize,
        resp3: bool,
        (bytes, holes, bigs): (&[u8], &[usize], &[Bytes]),
        pre: &[(u32, u32)],
        seg: &Seg,
        (out, ends): (&mut engine::Encoded, &mut Vec<u32>),
    ) {
        let part = bytes
            .get(seg.start as usize..seg.end as usize)
            .unwrap_or(&[]);
        let holes = if seg.start == 0 { holes } else { &[] };
        let parsed = pre.get(seg.pre as usize..).unwrap_or(&[]);
        self.run_segment(db, resp3, (part, holes, bigs), (seg.cmds, parsed), out);
        ends.push(out.bytes.len() as u32);
    }

    /// Serves the deferred requests again, in the order they came: those
    /// that must still wait (a lock, a reserved key) stay, with every one
    /// behind them.
    pub(super) fn retry_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        // (Other clients' requests, though a master client's work may
        // release them.)
        self.streamed(Shard::run_deferred);
    }

    fn run_deferred(&mut self) {
        let spare = std::mem::take(&mut self.deferred_spare);
        let mut deferred = std::mem::replace(&mut self.deferred, spare);
        let unlocker = self.req_client;
        for (from, id, client, req) in deferred.drain(..) {
            // A request of the transaction that took the lock meanwhile
            // (sent right behind its lock) runs now.
            if self.lock.is_some_and(|tx| !served_under(tx, &req)) || self.held_back(&req) {
                self.deferred.push_back((from, id, client, req));
            } else {
                // Counted again, as when it first arrived.
                self.msgs += 1;
                self.set_req_client(client);
                self.request(from, id, req);
            }
        }
        self.deferred_spare = deferred;
        self.set_req_client(unlocker);
    }

    /// Unless a transaction holds this core, the connections it stalled
    /// (or a reserved key did) try their command again.
    pub(super) fn resume_stalled(&mut self) {
        if self.lock.is_some() {
            return;
        }
        for key in self.stalled.drain(..) {
            if let Some(c) = self.conns.get_mut(key) {
                if c.wait == Wait::Stalled {
                    c.wait = Wait::No;
                }
            }
            self.resume.push(key);
        }
    }

    /// Runs what follows for connection `who` (core, key), or for nobody;
    /// the clock the commands share starts again.
    fn serve_for(&mut self, who: Option<(usize, Key)>) {
        self.serving = who;
        self.cmd_clock = None;
    }

    /// Runs this core's segments of read pipeline `p` of its connection
    /// `key`, fanned out from here (`mesh::flows::Chain::fan_out`): their
    /// replies, and each segment's end offset in them. (Their keys were
    /// prefetched as the pipeline was parsed.)
    pub fn run_here(
        &mut self,
        key: Key,
        (db, resp3): (usize, bool),
        p: &crate::mesh::flows::PipelineIn,
    ) -> (engine::Encoded, Vec<u32>) {
        self.serve_for(Some((self.id, key)));
        let me = self.id;
        let cmds: u32 = p.segs.iter().filter(|s| s.core == me).map(|s| s.cmds).sum();
        let mut out = engine::Encoded::default();
        out.bytes.reserve(cmds as usize * REPLY_GUESS);
        let mut ends = Vec::new();
        let (bytes, holes, bigs) = &p.bytes;
        for seg in p.segs.iter().filter(|s| s.core == me) {
            self.run_seg(
                db,
                resp3,
                (bytes, holes, bigs),
                &p.pre,
                seg,
                (&mut out, &mut ends),
            );
        }
        self.serve_for(None);
        (out, ends)
    }

    /// Serves `req` from core `from` (answered with tag `id`), or defers
    /// it while another transaction holds this core's lock or while it may
    /// touch a key reserved here (`holds`).
    pub fn request(&mut self, from: usize, id: u64, req: Request) {
        if let Request::Pipeline(p) = &req {
            if p.reserved {
                self.reserved_part(from, id, req);
                return;
            }
        }
        if self.lock.is_some_and(|tx| !served_under(tx, &req)) || self.held_back(&req) {
            self.deferred.push_back((from, id, self.req_client, req));
            return;
        }
        // A transaction that adds its form to the replication stream: what
        // its commands log here goes back with the answer (and to the AOF).
        self.capture = self.repl_form
            && self.repl_part.is_some()
            && matches!(
                req,
                Request::Exec { tx: Some(_), .. } | Request::Export { .. }
            );
        if self.capture {
            self.log_to_pending(true);
        }
        self.for_client(self.req_client, |s| s.handle_request(from, id, req));
        self.capture = false;
    }

    /// The connections a pause held try their command again (those still
    /// held wait again).
    pub fn resume_paused(&mut self) {
        for key in std::mem::take(&mut self.paused_conns) {
            if let Some(c) = self.conns.get_mut(key) {
                if c.wait == Wait::Stalled {
                    c.wait = Wait::No;
                }
            }
            self.resume.push(key);
        }
    }

    pub(super) fn answer(&mut self, from: usize, id: u64, mut resp: Response) {
        if std::mem::take(&mut self.capture) {
            let logged = self.log_to_pending(false);
            resp = Response::Logged(Box::new(resp), logged);
        }
        if id != 0 {
            self.send_out(from, Msg::Resp { id, resp });
        }
    }

    /// With the AOF on (and no replica stream): whether a pipeline run
    /// core to core may go on before this core's write (or under
    /// `always` its fsync) is done, carrying its dependencies instead
    /// ([`Request::Pipeline`]'s `needs`). Not while messages wait here
    /// already (they keep their order).
    fn pipeline_unheld(&self) -> bool {
        self.aof.as_ref().is_some_and(|a| !a.holds_messages())
            && !self.capture
            && !self.replication.stream().active()
    }

    /// Adds this core's log offset to a pipeline's `needs`.
    fn note_need(&mut self, needs: &mut Vec<(usize, u64)>) {
        let at = self.engine.write_log().map_or(0, |l| l.offset());
        crate::mesh::add_need(needs, self.id, at);
    }

    /// What this core records from now on depends on a pipeline's
    /// earlier writes on other cores (`needs`).
    pub fn depend_on(&mut self, needs: &[(usize, u64)]) {
        let (Some(a), Some(log)) = (self.aof.as_deref_mut(), self.engine.write_log()) else {
            return;
        };
        for &(d, x) in needs {
            a.depend(d, x, log, &self.persist.aof);
        }
    }

    /// With the AOF on: whether parts of connection `key`'s earlier
    /// pipelines, run on other cores, are not effective there yet.
    pub fn earlier_pending(&self, key: Key) -> bool {
        let aof = &self.persist.aof;
        self.aof.is_some()
            && self.conns.get(key).is_some_and(|c| {
                c.aof_remote
                    .iter()
                    .any(|&(d, x)| d != self.id && !aof.is_effective(d, x))
            })
    }

    /// A command that crosses cores other than as a pipeline (a
    /// multi-key command, a transaction, a script, a blocking command)
    /// carries no dependencies: while the connection's earlier pipelines
    /// have parts not effective on other cores, it waits for them
    /// (true), so the client's later writes never survive a crash without
    /// its earlier ones. Resumed by the event loop (`Core::aof_effective`).
    pub fn stall_for_earlier(&mut self, key: Key) -> bool {
        if !self.earlier_pending(key) {
            return false;
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.wait = Wait::Stalled;
        }
        self.aof_stalled.push(key);
        true
    }

    /// Sends a reserved part's answer (see
    /// `persist::aof::CoreAof::hold_part_answer`).
    fn send_part_answer(&mut self, to: usize, msg: Msg) {
        if self.engine.has_events() {
            self.publish_events();
        }
        let sent = match self.aof.as_deref_mut() {
            Some(a) => a.hold_part_answer(to, msg, &self.persist.aof),
            None => Some((to, msg)),
        };
        if let Some((to, msg)) = sent {
            self.mesh.send(to, msg);
        }
    }

    /// Sends `msg` without the AOF's hold (see [`Shard::pipeline_unheld`]).
    pub(super) fn send_unheld(&mut self, to: usize, msg: Msg) {
        if self.engine.has_events() {
            self.publish_events();
        }
        self.mesh.send(to, msg);
    }

    /// Whether a pipeline's replies, `out`, may go on the client's socket
    /// `fd` (of core `from`, which asked for it: nothing else of that
    /// client's is unsent or in flight, and it waits for these replies
    /// before sending more), so that its core need not wake to pass them
    /// on: the client's next request wakes it. Not when replies wait for
    /// the replicas (`core.rs` holds them), for a big reply, or on the
    /// requester's own core. With the AOF on they wait here until what
    /// they reveal is written (under `always`, on disk) on every core
    /// that ran a part ([`Shard::flush_direct`]).
    fn may_send_direct(&self, from: usize, fd: i32, out: &engine::Encoded) -> bool {
        fd >= 0
            && from != self.id
            && out.bigs.is_empty()
            && out.bytes.len() <= DIRECT_MAX
            && !self.capture
            && !self.replication.stream().active()
    }

    /// Whether every log offset in `needs` is effective (always, once the
    /// AOF is off or under `everysec` and `no`: nothing holds replies
    /// then).
    fn needs_met(&self, needs: &[(usize, u64)]) -> bool {
        self.aof.is_none()
            || self.persist.aof.lags()
            || needs
                .iter()
                .all(|&(d, x)| self.persist.aof.is_effective(d, x))
    }

    /// Whether replies for other cores' clients wait here for the AOF
    /// (then this core asks to be woken when another core's log moves).
    pub fn direct_waiting(&self) -> bool {
        !self.direct_due.is_empty()
    }

    /// Sends the replies [`Shard::may_send_direct`] allowed, gathered over
    /// the inbox drain, one after another: a client woken by the first
    /// finds the others ready too, rather than being woken once per reply
    /// while this core serves the next pipeline. Each requester gets its
    /// answer after its send: a posted one (the client's next request
    /// wakes that core) when everything went, else one that wakes it to
    /// send what a full socket refused.
    pub fn flush_direct(&mut self) {
        if self.direct_due.is_empty() {
            return;
        }
        // The replies reveal the writes: their keyspace events go first.
        if self.engine.has_events() {
            self.publish_events();
        }
        for mut d in std::mem::take(&mut self.direct_due) {
            // Not yet written (or synced) on some core: next turn.
            if !self.needs_met(&d.needs) {
                self.direct_due.push(d);
                continue;
            }
            // Replication turned on meanwhile: the usual answer holds the
            // replies as long as they must wait.
            let sent = self.may_send_direct(d.from, d.fd, &d.out) && {
                // SAFETY: `fd` stays open until this core answers: its
                // core frees a connection only after the answer of a
                // pipeline sent with its socket (`Conn::direct`). A
                // socket shut meanwhile fails the send.
                let n = unsafe {
                    libc::send(
                        d.fd,
                        d.out.bytes.as_ptr().cast(),
                        d.out.bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n > 0 {
                    self.stats.net_output_bytes += n as u64;
                    d.out.bytes.drain(..n as usize);
                }
                d.out.bytes.is_empty()
            };
            // Under `everysec` and `no` the replies did not wait for the
            // parts' writes: the requester's next commands depend on them.
            let needs = if self.persist.aof.lags() {
                d.needs
            } else {
                Vec::new()
            };
            let resp = Response::Encoded {
                out: d.out,
                ends: d.ends,
                needs,
            };
            if sent {
                self.mesh.post(d.from, Msg::Resp { id: d.id, resp });
            } else {
                self.answer(d.from, d.id, resp);
            }
        }
    }

    pub(super) fn handle_request(&mut self, from: usize, id: u64, req: Request) {
        match req {
            Request::TrackKeys {
                id: client,
                core,
                keys,
            } => {
                let t = self.engine.tracking();
                for k in keys {
                    t.remember(&k, (client, core as u16));
                }
            }
            Request::TrackPrefixes {
                id: client,
                core,
                prefixes,
                on,
            } => {
                self.engine
                    .tracking()
                    .set_prefixes((client, core as u16), &prefixes, on);
                self.answer(from, id, Response::Done);
            }
            Request::PauseWrites { on, gen } => {
                // What this core wrote goes to the stream before it says
                // it paused.
                self.take_log();
                self.writes_paused = on;
                if on {
                    if let Some(bus) = &self.bus {
                        bus.ask(crate::mesh::Ask::Paused { gen });
                    }
                } else {
                    self.resume_paused();
                }
            }
            Request::Exec {
                db,
                cmds,
                in_multi,
                may_block,
                watch,
                tx,
                conn,
                counts,
            } => {
                if in_multi && tx.is_none() && self.cluster_moving {
                    if let Some(e) = self.transaction_refusal(db, &cmds) {
                        return self.answer(from, id, Response::Aborted(e));
                    }
                }
                for (d, key, version) in &watch {
                    if self.engine.watch_version(*d, key) != *version {
                        return self.answer(from, id, Response::WatchFailed);
                    }
                }
                // A transaction on this core alone is one MULTI block in
                // its log (one under a lock is inside its part already).
                let wrap = in_multi && tx.is_none() && cmds.len() > 1;
                let mark = match self.engine.write_log() {
                    Some(log) if wrap => Some(log.begin_multi(None)),
                    _ => None,
                };
                let mut replies = Vec::with_capacity(cmds.len());
                let mut db = db;
                self.serve_for(conn.map(|k| (from, k)));
                for (i, owned) in cmds.iter().enumerate() {
                    self.uncounted = !counts.get(i).copied().unwrap_or(true);
                    let args = owned.as_args();
                    let Some(spec) = engine::cmd::registry().lookup(args.get(0)) else {
                        replies.push(Reply::Error(
                            engine::error::unknown_command(args.get(0), args.iter_from(1)).into(),
                        ));
                        continue;
                    };
                    if spec.name == "select" {
                        // SELECT inside EXEC switches the database for
                        // the commands after it.
                        match parse_db(args.get(1), self.settings.databases) {
                            Ok(d) => {
                                db = d;
                                replies.push(Reply::Ok);
                            }
                            Err(e) => replies.push(e),
                        }
                        continue;
                    }
                    let origin =
                        (may_block && cmds.len() == 1).then_some(Origin::Remote { from, id });
                    match self.run_local(spec, db, args, in_multi, origin) {
                        Some(r) => replies.push(r),
                        None => {
                            self.uncounted = false;
                            self.serve_for(None);
                            return; // parked; answered when served
                        }
                    }
                }
                self.uncounted = false;
                self.serve_for(None);
                if let (Some(m), Some(log)) = (mark, self.engine.write_log()) {
                    log.end_multi(m, true);
                }
                self.answer(from, id, Response::Replies(replies));
                self.serve_ready();
            }
            Request::Pipeline(mut p) => {
                self.depend_on(&p.needs);
                self.serve_for(p.conn.map(|k| (from, k)));
                let rest = &p.segs[p.at.min(p.segs.len())..];
                self.prefetch_segments(p.db, (&p.bytes, &p.pre), rest);
                if p.ends.capacity() == 0 {
                    p.ends.reserve_exact(p.segs.len());
                }
                if p.out.bytes.capacity() == 0 {
                    let cmds: u32 = rest
                        .iter()
                        .take_while(|s| s.core == self.id)
                        .map(|s| s.cmds)
                        .sum();
                    p.out.bytes.reserve(cmds as usize * REPLY_GUESS);
                }
                let p_part = p.part;
                let Pipeline {
                    db,
                    resp3,
                    bytes,
                    holes,
                    bigs,
                    pre,
                    segs,
                    at,
                    out,
                    ends,
                    ..
                } = &mut *p;
                // (A reserved part with a name is logged as a part of a
                // transaction across cores: `Shard::in_part`.)
                let part = p_part.map(|(tx, _)| (tx, from));
                self.in_part((part, true), |s| {
                    while let Some(seg) = segs.get(*at).filter(|g| g.core == s.id) {
                        s.run_seg(*db, *resp3, (bytes, holes, bigs), pre, seg, (out, ends));
                        *at += 1;
                    }
                });
                self.serve_for(None);
                self.serve_ready();
                // With the AOF on, a run core to core goes on at once; a
                // reserved part's answer waits only in order behind what
                // waits here, and not under `always`
                // (`CoreAof::hold_part_answer`).
                let part_answer = p_part.is_some() && self.aof.is_some();
                let unheld = p.tx.is_none() && (self.pipeline_unheld() || part_answer);
                if unheld {
                    self.note_need(&mut p.needs);
                }
                match p.segs.get(p.at).map(|s| s.core) {
                    Some(next) => {
                        let msg = Msg::Req {
                            from,
                            id,
                            client: self.req_client,
                            req: Request::Pipeline(p),
                        };
                        if unheld {
                            self.send_unheld(next, msg);
                        } else {
                            self.send_out(next, msg);
                        }
                    }
                    None if self.may_send_direct(from, p.direct, &p.out) => {
                        if self.aof.is_some() {
                            self.note_need(&mut p.needs);
                        }
                        let Pipeline {
                            direct,
                            out,
                            ends,
                            needs,
                            ..
                        } = *p;
                        self.direct_due.push(DirectSend {
                            from,
                            fd: direct,
                            id,
                            out,
                            ends,
                            needs,
                        });
                    }
                    None => {
                        let Pipeline {
                            out, ends, needs, ..
                        } = *p;
                        let resp = Response::Encoded { out, ends, needs };
                        match unheld {
                            true if part_answer => {
                                self.send_part_answer(from, Msg::Resp { id, resp })
                            }
                            true => self.send_unheld(from, Msg::Resp { id, resp }),
                            false => self.answer(from, id, resp),
                        }
                    }
                }
            }
            Request::SnapshotStart { .. } => {
                self.snapshot_start();
                self.answer(from, id, Response::Done);
            }
            Request::Lock(tx, cores, form) => {
                // Only reached when unlocked (see handle_msg).
                self.start_pending_job();
                self.repl_part_begin(
                    repl::merge::TxnPart {
                        id: tx.repl_id(),
                        parts: cores.len() as u32 + form as u32,
                        form: false,
                    },
                    form,
                );
                self.lock = Some(tx);
                // What the transaction writes here is one part of it in
                // this core's log: kept after a crash only with its parts
                // on the other cores (see `persist::aof`).
                let start_ms = self.shared.start_ms;
                if let Some(log) = self.engine.write_log() {
                    let list: Vec<String> = cores.iter().map(|c| c.to_string()).collect();
                    let part = format!(
                        "#X:{}:{}",
                        super::snap::part_id(start_ms, tx),
                        list.join(",")
                    );
                    // What this core records from here on is revealed
                    // only once every part is durable (the load keeps a
                    // part only with the others, and what follows it in
                    // this log only with it). From before the part's
                    // `#X:` line and MULTI: a load that finds the part
                    // open reverts them too, so another core's record
                    // depending on an offset past them was cut with it,
                    // though acknowledged under `always` (the kill -9
                    // test `always_keeps_writes_in_order...` lost one so
                    // in CI).
                    let start = log.offset();
                    log.begin_multi(Some(part.as_bytes()));
                    self.recent_parts.push(tx);
                    if let Some(a) = self.aof.as_deref_mut() {
                        a.hold_until_settled(tx.repl_id(), start);
                    }
                }
                let paused = self.writes_paused;
                self.answer(from, id, Response::Granted { paused });
            }
            Request::Unlock(tx) => {
                if self.lock == Some(tx) {
                    self.lock = None;
                    // With the AOF on, answered once this part is written
                    // (`CoreAof::close_part`): not held like other
                    // messages, since what it reveals stays held until
                    // the coordinator, told every part is, settles it.
                    let mut closed = false;
                    if let Some(log) = self.engine.write_log() {
                        log.end_multi(0, false);
                        if let (Some(a), true) = (self.aof.as_deref_mut(), id != 0) {
                            let done = Msg::Resp {
                                id,
                                resp: Response::Done,
                            };
                            a.close_part(log.offset(), from, done);
                            closed = true;
                        }
                    }
                    self.repl_part_end();
                    if !closed {
                        self.answer(from, id, Response::Done);
                    }
                    self.serve_ready();
                    self.retry_deferred();
                    self.resume_stalled();
                } else {
                    self.answer(from, id, Response::Done);
                }
            }
            Request::Settled(tx) => {
                let at = self.engine.write_log().map_or(0, |l| l.offset());
                match self.aof.as_deref_mut() {
                    Some(a) => {
                        a.settled(tx.repl_id());
                        if id != 0 {
                            let done = Msg::Resp {
                                id,
                                resp: Response::Done,
                            };
                            a.answer_when_effective(at, from, done);
                        }
                    }
                    None => self.answer(from, id, Response::Done),
                }
            }
            Request::Export { db, keys, .. } => {
                let now = now_ms();
                let entries = keys
                    .into_iter()
                    .map(|k| {
                        let e = self
                            .engine
                            .lookup(db, &k, now)
                            .map(|e| (e.value.clone(), e.expire_at()));
                        (k, e)
                    })
                    .collect();
                self.answer(from, id, Response::Entries(entries));
            }
            Request::Import {
                db,
                entries,
                why,
                del_events,
            } => {
                let now = now_ms();
                // The replicas get the command's form instead (the
                // coordinator's): what is rebuilt here goes to the AOF
                // only.
                let aof_only = self.repl_form && self.repl_part.is_some();
                if aof_only {
                    self.log_to_pending(true);
                }
                // A write-back: the command's keyspace events came from
                // its scratch run (`flows::run_on_scratch`).
                let notify = std::mem::take(&mut self.engine.notify_flags);
                for (k, e) in entries {
                    match e {
                        None => {
                            if self.engine.delete(db, &k, why) {
                                self.engine
                                    .log_write(db, || vec![Bytes::from_static(b"DEL"), k.clone()]);
                                if del_events {
                                    self.engine.notify_flags = notify;
                                    self.engine.notify(engine::notify::GENERIC, "del", db, &k);
                                    self.engine.notify_flags = 0;
                                }
                            }
                        }
                        Some((v, exp)) => {
                            if self.engine.log_enabled() {
                                self.engine
                                    .log_write(db, || vec![Bytes::from_static(b"DEL"), k.clone()]);
                                for argv in engine::rewrite::rebuild(&k, &v, exp) {
                                    self.engine.log_write(db, || argv);
                                }
                            }
                            self.engine.set(db, &k, v, now);
                            self.engine.dbs[db].set_expire(&k, exp);
                            self.engine.signal_ready(db, &k);
                        }
                    }
                    self.engine.dirty += 1;
                }
                self.engine.notify_flags = notify;
                if aof_only {
                    self.log_to_pending(false);
                }
                self.serve_ready();
                self.answer(from, id, Response::Done);
            }
            Request::Watch { db, keys } => {
                let v = keys.iter().map(|k| self.engine.watch(db, k)).collect();
                self.answer(from, id, Response::Versions(v));
            }
            Request::Unwatch { db, keys } => {
                for k in keys {
                    // Sent before a re-spread moved its key's slot away:
                    // the watch went with it.
                    let owner = self.mesh.slots.core_of(engine::slot::slot_of(&k));
                    if owner != self.id {
                        let req = Request::Unwatch { db, keys: vec![k] };
                        self.rpc.tell(owner, req);
                        continue;
                    }
                    self.engine.unwatch(db, &k);
                }
            }
            Request::Respread { moves } => {
                let (rpc, shared, bus) = (self.rpc.clone(), self.shared.clone(), self.bus.clone());
                let fut = async move {
                    let moved = crate::mesh::respread::respread(rpc, &shared, moves).await;
                    if let Some(bus) = bus {
                        bus.ask(crate::mesh::Ask::Respread { moved });
                    }
                    // Nobody's connection (the slab has no such index).
                    let none = crate::io::Key {
                        index: u32::MAX,
                        gen: 0,
                    };
                    crate::mesh::TaskDone::reply(none, Reply::Ok)
                };
                self.exec.spawn_for(0, fut);
            }
            Request::TakeSlots { slots, max_keys } => {
                let (mut taken, mut keys) = (Vec::new(), 0);
                for slot in slots {
                    if keys >= max_keys {
                        break;
                    }
                    if self.mesh.slots.core_of(slot) != self.id {
                        continue;
                    }
                    if let Some(m) = self.engine.take_slot(slot) {
                        keys += m.keys();
                        taken.push(m);
                    }
                }
                self.answer(from, id, Response::Slots(taken));
            }
            Request::PutSlots(slots) => {
                for m in slots {
                    self.engine.put_slot(m);
                }
                self.answer(from, id, Response::Done);
            }
            Request::Publish {
                channel,
                message,
                sharded,
            } => {
                let n = pubsub::deliver(self, &channel, &message, sharded);
                self.answer(from, id, Response::Count(n as i64));
            }
            Request::Notify(msgs) => {
                for (channel, message) in msgs.iter() {
                    pubsub::deliver(self, channel, message, false);
                }
            }
            Request::PubsubQuery { sub, args } => {
                let r = pubsub::query(self, &sub, &args);
                self.answer(from, id, Response::Replies(vec![r]));
            }
            Request::Probe {
                conn,
                db,
                keys,
                deadline_ms,
                counted,
            } => self.park_probe(from, id, conn, db, keys, deadline_ms, counted),
            Request::CancelBlocked { id: bid } => {
                if let Some(i) = self
                    .waiters
                    .iter()
                    .position(|w| w.origin == Origin::Remote { from, id: bid })
                {
                    let w = self.waiters.remove(i);
                    self.unblock_keys(&w);
                }
            }
            Request::Admin(q) => {
                let resp = self.admin(q);
                self.answer(from, id, resp);
            }
            Request::CountKeys { slot } => {
                let db = &self.engine.dbs[0];
                let n = slot.map_or(db.len(), |s| db.slot_len(s));
                self.answer(from, id, Response::Count(n as i64));
            }
            Request::KeysInSlot { slot, max } => {
                let keys = self.engine.dbs[0]
                    .slot_keys(slot)
                    .take(max)
                    .map(Reply::bulk)
                    .collect();
                self.answer(from, id, Response::Replies(vec![Reply::Array(keys)]));
            }
            Request::DropSlot { slot } => {
                let keys: Vec<Bytes> = self.engine.dbs[0]
                    .slot_keys(slot)
                    .map(Bytes::copy_from_slice)
                    .collect();
                for k in keys {
                    if self.engine.delete(0, &k, engine::lazyfree::Why::ServerDel) {
                        self.engine
                            .log_write(0, || vec![Bytes::from_static(b"DEL"), k.clone()]);
                    }
                }
                self.answer(from, id, Response::Done);
            }
            Request::Digest => {
                let parts = self.engine.digest_parts();
                self.answer(from, id, Response::Digests(parts));
            }
            Request::DigestValues { db, keys } => {
                let d = keys
                    .iter()
                    .map(|k| Some(self.engine.digest_value(db, k)))
                    .collect();
                self.answer(from, id, Response::Digests(d));
            }
            Request::Replace {
                entries,
                flush,
                lazy,
            } => {
                self.engine.replace_all(entries, flush, lazy, now_ms());
                self.answer(from, id, Response::Done);
            }
        }
    }

    fn admin(&mut self, q: AdminQuery) -> Response {
        match q {
            AdminQuery::ClientList { ids, kind } => {
                let now = now_ms();
                let mut s = String::new();
                for c in self.conns.iter() {
                    if !c.closing
                        && (ids.is_empty() || ids.contains(&c.id))
                        && kind.is_none_or(|k| k == c.client_type())
                    {
                        s.push_str(&c.info_line(now));
                        s.push('\n');
                    }
                }
                Response::Lines(s)
            }
            AdminQuery::ClientKill { filter } => {
                let mut n = 0;
                // (One link: killing two master clients, an old one still
                // running out, resets it once.)
                let mut link_reset = false;
                for key in self.conns.keys() {
                    let Some(c) = self.conns.get(key) else {
                        continue;
                    };
                    let hit = filter.id.is_none_or(|i| i == c.id)
                        && filter.addr.as_ref().is_none_or(|a| *a == c.addr)
                        && filter.laddr.as_ref().is_none_or(|a| *a == c.laddr)
                        && filter.skipme_id.is_none_or(|me| me != c.id)
                        && filter.kind.is_none_or(|k| k == c.client_type());
                    if hit && c.master {
                        // Its link reconnects instead (see `reset_link`).
                        if !c.closing && !link_reset && self.replication.reset_link() {
                            link_reset = true;
                            n += 1;
                        }
                    } else if hit && c.id == filter.caller {
                        // Its reply still comes (Redis closes the caller
                        // after it).
                        n += 1;
                        if let Some(c) = self.conns.get_mut(key) {
                            c.close_after_flush = true;
                        }
                    } else if hit && !c.closing {
                        n += 1;
                        if let Some(c) = self.conns.get_mut(key) {
                            c.close_after_flush = true;
                        }
                        self.want_flush(key);
                        if self.conns.get(key).is_some_and(|c| c.pending_out() == 0) {
                            self.close(key);
                        }
                    }
                }
                Response::Count(n)
            }
            AdminQuery::Stats => {
                // As Redis evicts before every command, INFO included.
                self.perform_evictions();
                let mut s = self.stats.clone();
                [s.inst_ops, s.inst_input, s.inst_output] = self.rates.each_ref().map(|r| r.get());
                let counted = self.waiters.iter().filter(|w| w.probe.unwrap_or(true));
                s.blocked_clients = counted.clone().count() as u64;
                s.timeout_clients = counted.filter(|w| w.deadline_ms.is_some()).count() as u64;
                s.pubsub_clients = self.conns.iter().filter(|c| c.sub_count() > 0).count() as u64;
                s.connected_clients = self.conns.len() as u64;
                s.expired_keys = self.engine.stats.expired_keys;
                s.evicted_keys = self.engine.stats.evicted_keys;
                s.clients_memory = self
                    .conns
                    .iter()
                    .map(|c| (c.rbuf.capacity() + c.out.capacity() + c.sending.capacity()) as u64)
                    .sum();
                s.keyspace_hits = self.engine.stats.keyspace_hits;
                s.keyspace_misses = self.engine.stats.keyspace_misses;
                s.dirty = self.engine.dirty;
                s.pubsub_channels = self.pubsub.channels.len() as u64;
                s.pubsub_patterns = self.pubsub.patterns.len() as u64;
                s.tracking_clients = self.tracking_conns.len() as u64;
                s.tracking = self
                    .engine
                    .tracking
                    .as_deref()
                    .map_or((0, 0, 0), |t| t.totals());
                s.keyspace = self
                    .engine
                    .dbs
                    .iter()
                    .map(|d| (d.len() as u64, d.volatile_len() as u64, d.avg_ttl()))
                    .collect();
                s.cmdstats = self.command_counts();
                s.errorstats = self.error_counts();
                Response::Stats(Box::new(s))
            }
            AdminQuery::ResetStats => {
                self.stats = CoreStats::default();
                self.stats.connected_clients = self.conns.len() as u64;
                self.engine.stats = engine::shard::Stats::default();
                self.reset_command_counts();
                Response::Done
            }
            AdminQuery::Reload => {
                self.settings = self.shared.settings();
                self.engine.limits = self.settings.encoding;
                self.engine.evict = self.settings.evict;
                self.engine.lazy = self.settings.lazyfree;
                self.engine.notify_flags = self.settings.notify;
                crate::mesh::flows::set_limits(self.settings.encoding);
                engine::script::set_busy_threshold(self.settings.busy_reply_threshold_ms);
                crate::mesh::flows::set_notify(self.settings.notify);
                crate::mesh::flows::set_slow_all(self.settings.slowlog_slower_than == 0);
                if let Some(b) = &self.bus {
                    b.set_reads_when_down(self.settings.cluster_reads_when_down);
                }
                Response::Done
            }
            AdminQuery::Evict => {
                self.evict_asked();
                Response::Done
            }
            AdminQuery::Purge => {
                // SAFETY: collects this thread's mimalloc heap.
                unsafe { libmimalloc_sys::mi_collect(true) };
                Response::Done
            }
            AdminQuery::Shutdown => {
                self.stop();
                Response::Done
            }
            AdminQuery::Populate {
                db,
                count,
                prefix,
                size,
            } => {
                let (mesh, me) = (self.mesh.clone(), self.id);
                let owns = |k: &[u8]| mesh.slots.core_of(engine::slot::slot_of(k)) == me;
                engine::cmd::server::populate(
                    &mut self.engine,
                    db,
                    count,
                    &prefix,
                    size,
                    now_ms(),
                    owns,
                );
                self.serve_ready();
                Response::Done
            }
            AdminQuery::SlowlogGet(Some(count)) => Response::Slow(self.slowlog.newest(count)),
            AdminQuery::SlowlogGet(None) => Response::Count(self.slowlog.len() as i64),
            AdminQuery::ClientKey { id } => Response::Count(
                self.conns
                    .keys()
                    .into_iter()
                    .find(|k| self.conns.get(*k).is_some_and(|c| c.id == id))
                    .map_or(-1, |k| ((k.index as i64) << 32) | k.gen as i64),
            ),
            AdminQuery::Unblock { core, key, error } => {
                let mut n = self.unblock_client((core, key), error);
                // A client of this core in WAIT: the master thread holds it.
                let in_wait = core == self.id
                    && self.conns.get(key).is_some_and(|c| {
                        matches!(c.wait, crate::io::Wait::Task(_))
                            && c.last_cmd.is_some_and(|s| s.name == "wait")
                    });
                if in_wait {
                    self.replication.note(crate::replica::Note::UnblockWait {
                        core,
                        conn: key,
                        error,
                    });
                    n = true;
                }
                Response::Count(n as i64)
            }
            AdminQuery::SlowlogReset => {
                self.slowlog.reset();
                Response::Done
            }
            AdminQuery::Unpause => {
                self.resume_paused();
                Response::Done
            }
            AdminQuery::Quiet { own } => {
                let held = self.loading || self.engine.snapshot_active() || self.snapshot_due();
                Response::Quiet {
                    busy: held
                        || self.lock.is_some()
                        || !self.deferred.is_empty()
                        || self.exec.len() + self.chains.len() > own + self.rpc.parked_now.get()
                        || self.aof.as_ref().is_some_and(|a| a.holds_messages()),
                    held,
                    pushed: self.mesh.requests_to(self.id),
                    taken: self.reqs_taken,
                }
            }
            AdminQuery::LogOffset => Response::Count(
                self.engine
                    .write_log()
                    .map_or(-1, |l| l.offset().min(i64::MAX as u64) as i64),
            ),
        }
    }
}
