//! Running commands on this core's keyspace, and the clients blocked on
//! its keys.

use super::Shard;
use crate::io::{Key, Wait};
use crate::mesh::{CoreStats, Msg, Request, Response, Seg};
use bytes::Bytes;
use engine::cmd::meta::stats_name;
use engine::cmd::{self, Ctx};
use engine::{OwnedArgs, Reply};

/// Most pipelined commands whose keys are prefetched together.
const AHEAD_MAX: usize = 16;

/// Who waits for a parked blocking command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A connection of this core.
    Local(Key),
    /// A task on core `from`, request `id`.
    Remote { from: usize, id: u64 },
}

/// A blocking command parked until one of its keys gets data.
pub(super) struct Waiter {
    pub origin: Origin,
    pub db: usize,
    pub args: OwnedArgs,
    pub keys: Vec<Bytes>,
    pub deadline_ms: Option<i64>,
    /// What to answer when the deadline passes.
    pub timeout_reply: Reply,
    /// The client's connection (its core and key), when known: CLIENT
    /// UNBLOCK finds the command by it.
    pub client: Option<(usize, Key)>,
    /// A probe of a command blocked on keys of several cores
    /// (`Request::Probe`): nothing runs here, its task is told that a key
    /// got data. `Some(counted)`: whether INFO counts it.
    pub probe: Option<bool>,
    /// While the slow log is on: how long the command's first run took
    /// (µs) and its arguments as the log keeps them; when it is served,
    /// that run and the serving one are logged, as Redis logs a blocked
    /// command once unblocked (the wait not counted).
    pub slow: Option<Box<(u64, Vec<Bytes>)>>,
}

impl Shard {
    /// A command refused on this core before it ran (`rejected_calls`),
    /// with its error, counted here whoever sends it on.
    fn refused(
        &mut self,
        spec: &'static engine::cmd::Spec,
        args: &engine::Args,
        e: Reply,
    ) -> Reply {
        if self.uncounted {
            return e;
        }
        self.count_rejected(stats_name(spec, args));
        if let Reply::Error(err) = &e {
            self.count_error(err);
        }
        e
    }

    /// Runs one command on this core's keyspace. Parks it when it blocks
    /// (`origin` is then told later). The caller serves the clients its
    /// writes woke ([`Shard::serve_ready`]) once the whole request is done,
    /// so a transaction's intermediate states are never handed out.
    pub fn run_local(
        &mut self,
        spec: &'static engine::cmd::Spec,
        db: usize,
        args: engine::Args,
        in_multi: bool,
        origin: Option<Origin>,
    ) -> Option<Reply> {
        // A command a client of another core sent is timed here for the
        // slow log (one of this core's is timed by its dispatch).
        let slow = (self.serving.is_some() && self.slow_on())
            .then(|| self.cmd_clock.take().unwrap_or_else(crate::shared::ticks));
        let start = self.stat_clock();
        if self.writes_paused && spec.has(engine::cmd::flags::WRITE) {
            // Sent before this core paused its writers.
            return Some(self.refused(spec, &args, Reply::err(crate::mesh::WRITES_PAUSED)));
        }
        if self.cluster_moving {
            if let Some(refused) = self.migration_check(spec, db, &args) {
                return Some(self.refused(spec, &args, refused));
            }
        }
        if self.settings.maxmemory > 0 && !self.unstreamed {
            if let Some(oom) = self.refuse_for_memory(spec, &args) {
                return Some(self.refused(spec, &args, oom));
            }
        }
        if spec.has(engine::cmd::flags::NOSCRIPT)
            && (spec.name.starts_with("eval") || spec.name.starts_with("fcall"))
        {
            self.engine.scripts_read_only = self.scripts_read_only();
        }
        let mut ctx = Ctx::new(&mut self.engine, db, self.now_ms, args);
        if spec.name == "scan" {
            // SCAN's cursor is a slot: this call walks the run of slots
            // from it that this core owns.
            if let Some(c) = engine::resp::parse_i64(args.get(1))
                .filter(|c| (0..engine::slot::SLOTS as i64).contains(c))
            {
                ctx.slots = c as usize..self.mesh.slots.run_end(c as u16);
            }
        }
        ctx.in_multi = in_multi;
        let scripted = spec.has(engine::cmd::flags::SELF_LOGGED) && crate::shared::monitoring();
        if scripted {
            ctx.shard.script_calls = Some(Vec::new());
        }
        let script = spec.has(engine::cmd::flags::NOSCRIPT)
            && (spec.name.starts_with("eval") || spec.name.starts_with("fcall"));
        if script && !self.uncounted {
            ctx.shard.script_counting = true;
            ctx.shard.script_timing = start.is_some();
        }
        let reply = cmd::execute(spec, &mut ctx);
        let block = ctx.block.take();
        if scripted {
            self.monitor_script_calls();
        }
        if self.engine.script_counting {
            self.engine.script_counting = false;
            self.count_script_calls();
        }
        // Published now: a task of this core (PUBLISH, a script, EXEC)
        // may send its messages before the turn ends.
        if self.engine.has_events() {
            self.publish_events();
        }
        let e = self.cmdstats.entry(stats_name(spec, &args)).or_default();
        if !self.uncounted {
            e.calls += 1;
            if let Some(t) = start {
                e.nsec += crate::mesh::STAT_TIMED_EVERY * t.elapsed().as_nanos() as u64;
            }
        }
        // (A part other than the first: the command counts elsewhere.)
        if let (Reply::Error(err), false) = (&reply, self.uncounted) {
            e.failed += 1;
            if !(script && engine::script::error_already_counted(err)) {
                self.count_error(err);
            }
        }
        if let (Some(t), None) = (slow, &block) {
            let end = crate::shared::ticks();
            self.slow_check_remote(spec, &args, crate::shared::micros_between(t, end));
            self.cmd_clock = Some(end);
        }
        self.stats.total_commands_processed += u64::from(!self.uncounted);
        match (block, origin) {
            (Some(b), Some(origin)) if !in_multi => {
                for k in &b.keys {
                    self.engine.set_blocked_on(db, k, true);
                }
                // A client of another core: its first run, for the slow
                // log once served (one of this core's gets it from its
                // dispatch: `Shard::slow_parked`).
                let first_run = slow.map(|t| {
                    let argv = engine::slowlog::entry_argv(spec.name, &args);
                    Box::new((crate::shared::micros_since(t), argv))
                });
                // XREAD parks as the command to re-run (`$` resolved).
                let args = match &b.rerun {
                    Some(argv) => OwnedArgs::from_iter(argv.iter().map(|a| &a[..])),
                    None => args.to_owned(),
                };
                let client = match origin {
                    Origin::Local(k) => Some((self.id, k)),
                    Origin::Remote { .. } => self.serving,
                };
                self.waiters.push(Waiter {
                    client,
                    origin,
                    db,
                    args,
                    keys: b.keys,
                    deadline_ms: b.deadline_ms,
                    timeout_reply: reply,
                    probe: None,
                    slow: first_run,
                });
                None
            }
            _ => Some(reply),
        }
    }

    /// During a slot migration, what Redis decides from the keys that exist
    /// (`getNodeByQuery`): a command whose keys are gone from a slot
    /// migrating away gets ASK, one over a slot half moved TRYAGAIN. Run
    /// here, on the keys' owner, so nothing moves between the check and
    /// the command.
    fn migration_check(
        &self,
        spec: &'static engine::cmd::Spec,
        db: usize,
        args: &engine::Args,
    ) -> Option<Reply> {
        let map = self.cluster.as_deref()?;
        let mut idx = Vec::new();
        spec.key_indices(args, &mut idx).ok()?;
        let slot = engine::slot::slot_of(args.get(*idx.first()?));
        if !map.moving(slot) {
            return None;
        }
        let d = self.engine.dbs.get(db)?;
        // A key named twice counts once (RPOPLPUSH k k is one key).
        let mut keys: Vec<&[u8]> = idx.iter().map(|&i| args.get(i)).collect();
        keys.sort_unstable();
        keys.dedup();
        let missing = keys.iter().filter(|k| d.get(k).is_none()).count();
        match map.migration(slot, keys.len(), missing) {
            cluster::slotmap::Migration::Run => None,
            cluster::slotmap::Migration::Refuse(e) => Some(Reply::Error(e.into())),
        }
    }

    /// Cluster mode, a transaction on a slot being moved: Redis's checks of
    /// its keys as a whole before any of its commands runs (ASK when all
    /// are missing here, TRYAGAIN when some are), as `getNodeByQuery` makes
    /// them at EXEC, so it never runs in part.
    pub(super) fn transaction_refusal(&self, db: usize, cmds: &[OwnedArgs]) -> Option<Reply> {
        let map = self.cluster.as_deref()?;
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut idx = Vec::new();
        for owned in cmds {
            let a = owned.as_args();
            let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
                continue;
            };
            idx.clear();
            if spec.key_indices(&a, &mut idx).is_ok() {
                keys.extend(idx.iter().map(|&i| a.get(i)));
            }
        }
        let slot = engine::slot::slot_of(keys.first()?);
        if !map.moving(slot) {
            return None;
        }
        keys.sort_unstable();
        keys.dedup();
        let d = self.engine.dbs.get(db)?;
        let missing = keys.iter().filter(|k| d.get(k).is_none()).count();
        match map.migration(slot, keys.len(), missing) {
            cluster::slotmap::Migration::Run => None,
            cluster::slotmap::Migration::Refuse(e) => Some(Reply::Error(e.into())),
        }
    }

    /// Prefetches the keys of the complete commands at the start of each
    /// of `parts`, in order and at most [`AHEAD_MAX`] commands in all, in
    /// three steps over all of them (every key's slot header, table word,
    /// then entry), so their cache misses overlap instead of following one
    /// another; returns how many bytes of `parts` those commands take.
    pub fn prefetch_keys<'a>(
        &mut self,
        db: usize,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> usize {
        let limits = self.settings.limits;
        let mut keys: [(usize, &[u8]); AHEAD_MAX] = [(0, &[]); AHEAD_MAX];
        let (mut n, mut cmds, mut bytes) = (0, 0, 0);
        'parts: for part in parts {
            let mut at = 0;
            while cmds < AHEAD_MAX {
                let Some((k, consumed)) =
                    first_key(&mut self.stats, &mut self.ahead_spans, &part[at..], &limits)
                else {
                    continue 'parts;
                };
                at += consumed;
                bytes += consumed;
                cmds += 1;
                if let Some(k) = k {
                    keys[n] = (db, k);
                    n += 1;
                }
            }
            break;
        }
        self.prefetch_found(&keys[..n]);
        bytes
    }

    /// Prefetches `keys`, each with its database, in three steps over all
    /// of them (see [`Shard::prefetch_keys`]).
    fn prefetch_found(&mut self, keys: &[(usize, &[u8])]) {
        let mut ahead = [None; AHEAD_MAX];
        let n = keys.len().min(AHEAD_MAX);
        for (a, &(db, k)) in ahead.iter_mut().zip(keys) {
            *a = self.engine.prefetch_slot(db, k);
        }
        for a in ahead[..n].iter().flatten() {
            self.engine.prefetch_entry(*a);
        }
        for a in ahead[..n].iter().flatten() {
            self.engine.prefetch_node(*a);
        }
    }

    /// Prefetches the keys of the first commands of the pipelines in
    /// `msgs` (those this core runs first), before they run one after the
    /// other: a pipeline of one command has nothing of its own to overlap
    /// its lookup with, but the requests that arrived together do.
    pub fn prefetch_requests(&mut self, msgs: &[Msg]) {
        let me = self.id;
        let mut keys: [(usize, &[u8]); AHEAD_MAX] = [(0, &[]); AHEAD_MAX];
        let mut n = 0;
        for m in msgs {
            let Msg::Req {
                req: Request::Pipeline(p),
                ..
            } = m
            else {
                continue;
            };
            let (db, bytes, pre, segs, at) = (&p.db, &p.bytes, &p.pre, &p.segs, &p.at);
            let Some(seg) = segs.get(*at).filter(|s| s.core == me) else {
                continue;
            };
            let mut buf = bytes
                .get(seg.start as usize..seg.end as usize)
                .unwrap_or(&[]);
            let mut p = pre.get(seg.pre as usize..).unwrap_or(&[]);
            if let Some(Some(k)) = next_key(&mut p, &mut buf) {
                keys[n] = (*db, k);
                n += 1;
                if n == AHEAD_MAX {
                    break;
                }
            }
        }
        if n >= 2 {
            self.prefetch_found(&keys[..n]);
        }
    }

    /// [`Shard::prefetch_keys`] for a pipeline that reached this core with
    /// `rest` its segments still to run: those it runs now and the ones it
    /// will run after the next hop (a lone command runs at once: nothing
    /// to overlap). The first segment's bytes have holes (big arguments
    /// received apart) when `holes` is not empty: it is skipped then.
    pub(super) fn prefetch_segments(
        &mut self,
        db: usize,
        (bytes, pre): (&[u8], &[(u32, u32)]),
        rest: &[Seg],
    ) {
        let me = self.id;
        let here = rest.iter().take_while(|s| s.core == me);
        let next = rest
            .iter()
            .skip_while(|s| s.core == me)
            .skip_while(|s| s.core != me)
            .take_while(|s| s.core == me);
        if here
            .clone()
            .chain(next.clone())
            .map(|s| s.cmds)
            .sum::<u32>()
            < 2
        {
            return;
        }
        // The keys as the requesting core parsed them (`pre`); a command
        // it did not parse (one sent re-encoded or with big arguments apart)
        // is not prefetched.
        let mut keys: [(usize, &[u8]); AHEAD_MAX] = [(0, &[]); AHEAD_MAX];
        let (mut n, mut cmds) = (0, 0);
        'segs: for s in here.chain(next) {
            let Some(mut buf) = bytes.get(s.start as usize..s.end as usize) else {
                continue;
            };
            let mut p = pre.get(s.pre as usize..).unwrap_or(&[]);
            for _ in 0..s.cmds {
                if cmds == AHEAD_MAX {
                    break 'segs;
                }
                let Some(k) = next_key(&mut p, &mut buf) else {
                    continue 'segs;
                };
                cmds += 1;
                if let Some(k) = k {
                    keys[n] = (db, k);
                    n += 1;
                }
            }
        }
        self.prefetch_found(&keys[..n]);
    }

    /// Runs `cmds` pipelined commands, the RESP bytes `buf`, and appends
    /// their replies to `out`, encoded for the client's protocol. They were
    /// checked on the client's core (`commands::dispatch::plan_target`): plain
    /// single-key commands of this core that do not block. The first of
    /// them may have big arguments received apart, `bigs`, at `holes`.
    /// `pre`: the commands as that core parsed them (see
    /// `Request::Pipeline`'s `pre`); one not found there is parsed here.
    pub(super) fn run_segment(
        &mut self,
        db: usize,
        resp3: bool,
        (mut buf, mut holes, bigs): (&[u8], &[usize], &[Bytes]),
        (cmds, mut pre): (u32, &[(u32, u32)]),
        out: &mut engine::Encoded,
    ) {
        let limits = self.settings.limits;
        let mut spans = std::mem::take(&mut self.ahead_spans);
        let mut scratch = Vec::new();
        for _ in 0..cmds {
            let ahead = parsed_ahead(&mut pre, buf);
            let parsed = match ahead {
                Some((consumed, _)) => Ok(engine::resp::Parsed::Command {
                    consumed,
                    inline: false,
                }),
                None => parse(
                    &mut self.stats,
                    buf,
                    holes,
                    &limits,
                    &mut spans,
                    &mut scratch,
                ),
            };
            let reply = match parsed {
                Ok(engine::resp::Parsed::Command {
                    consumed,
                    inline: false,
                }) => {
                    let spans = ahead.map_or(&spans[..], |(_, s)| s);
                    let args = engine::Args::from_request(buf, spans, bigs);
                    holes = &[];
                    let reply = match engine::cmd::registry().lookup(args.get(0)) {
                        Some(spec) => self.run_local(spec, db, args, false, None),
                        None => None,
                    };
                    buf = &buf[consumed.min(buf.len())..];
                    reply
                }
                _ => None,
            };
            let reply = reply.unwrap_or_else(|| {
                Reply::err("ERR internal error: a pipelined command did not run on its shard")
            });
            out.push(&reply, resp3);
        }
        self.ahead_spans = spans;
    }

    /// Gives data that just arrived to clients blocked on it, oldest first.
    /// Waits while a transaction holds this core: its unlock serves them.
    pub fn serve_ready(&mut self) {
        // (Under a lock, or while a pipeline holds keys reserved here: a
        // blocked command may write one. Its unlock or release serves.)
        if self.lock.is_some() || !self.holds.is_empty() {
            return;
        }
        if self.unstreamed && !self.waiters.is_empty() {
            // What the clients it wakes write is this node's own, whoever
            // wrote the data they waited for.
            return self.streamed(Shard::serve_waiters);
        }
        self.serve_waiters();
    }

    fn serve_waiters(&mut self) {
        for _ in 0..1024 {
            let ready = self.engine.take_ready();
            if ready.is_empty() {
                return;
            }
            for (db, key) in ready {
                let db = db as usize;
                let mut i = 0;
                while i < self.waiters.len() {
                    let w = &self.waiters[i];
                    if w.db != db || !w.keys.iter().any(|k| k[..] == key[..]) {
                        i += 1;
                        continue;
                    }
                    if w.probe.is_some() {
                        // Its task looks again, under its locks.
                        let w = self.waiters.remove(i);
                        self.unblock_keys(&w);
                        self.deliver(w.origin, Reply::Int(1));
                        continue;
                    }
                    let Some(spec) = engine::cmd::registry().lookup(w.args.as_args().get(0)) else {
                        i += 1;
                        continue;
                    };
                    let value = self.engine.dbs[db].get(&key).map(|e| &e.value);
                    if !waits_for(spec.name, value) {
                        // Another type came to the key: no data for this
                        // client (it stays blocked, as in Redis 7.0).
                        i += 1;
                        continue;
                    }
                    let args = w.args.clone();
                    let timed = w.slow.is_some().then(crate::shared::ticks);
                    let mut ctx = Ctx::new(&mut self.engine, db, self.now_ms, args.as_args());
                    ctx.woken = Some(&key);
                    let reply = cmd::execute(spec, &mut ctx);
                    let blocked = ctx.block.is_some();
                    if self.engine.has_events() {
                        self.publish_events();
                    }
                    if blocked {
                        i += 1;
                        continue;
                    }
                    let mut w = self.waiters.remove(i);
                    self.unblock_keys(&w);
                    if let (Some(t), Some(slow)) = (timed, w.slow.take()) {
                        let (first, argv) = *slow;
                        self.slow_served(&w, argv, first + crate::shared::micros_since(t));
                    }
                    self.deliver(w.origin, reply);
                }
            }
        }
    }

    pub(super) fn unblock_keys(&mut self, w: &Waiter) {
        for k in &w.keys {
            let still = self
                .waiters
                .iter()
                .any(|o| o.db == w.db && o.keys.iter().any(|x| x == k));
            if !still {
                self.engine.set_blocked_on(w.db, k, false);
            }
        }
    }

    fn deliver(&mut self, origin: Origin, reply: Reply) {
        match origin {
            Origin::Local(key) => {
                if let Some(c) = self.conns.get_mut(key) {
                    if !c.mute {
                        reply.encode_split(c.resp3, &mut c.out, &mut c.out_big);
                    }
                    c.wait = Wait::No;
                    self.want_flush(key);
                    self.resume.push(key);
                }
            }
            Origin::Remote { from, id } => self.send_out(
                from,
                Msg::Resp {
                    id,
                    resp: Response::Replies(vec![reply]),
                },
            ),
        }
    }

    /// CLIENT UNBLOCK of the command connection `client` has parked here:
    /// it gets its timeout reply, or `-UNBLOCKED` (`error`). False when
    /// none is parked here.
    pub fn unblock_client(&mut self, client: (usize, Key), error: bool) -> bool {
        let Some(i) = self.waiters.iter().position(|w| w.client == Some(client)) else {
            return false;
        };
        let w = self.waiters.remove(i);
        self.unblock_keys(&w);
        let reply = if error {
            Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            w.timeout_reply.clone()
        };
        self.deliver(w.origin, reply);
        true
    }

    /// Parks a probe for the task `from`/`id` of a command blocked on keys
    /// of several cores (`Request::Probe`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn park_probe(
        &mut self,
        from: usize,
        id: u64,
        conn: Key,
        db: usize,
        keys: Vec<Bytes>,
        deadline_ms: Option<i64>,
        counted: bool,
    ) {
        for k in &keys {
            self.engine.set_blocked_on(db, k, true);
        }
        self.waiters.push(Waiter {
            origin: Origin::Remote { from, id },
            db,
            args: OwnedArgs::default(),
            keys,
            deadline_ms,
            timeout_reply: Reply::Int(0),
            client: Some((from, conn)),
            probe: Some(counted),
            slow: None,
        });
    }

    /// Answers blocked clients whose deadline passed (checked every turn,
    /// so a short BLPOP timeout is not rounded up to the cron period).
    /// Cluster mode, with a new slot map: a client blocked on a key of a
    /// slot this node no longer serves gets Redis's redirection (MOVED,
    /// or CLUSTERDOWN) instead of waiting for data that now goes elsewhere.
    pub(super) fn redirect_waiters(&mut self) {
        let Some(map) = self.cluster.clone() else {
            return;
        };
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let slot = w.keys.first().map(|k| engine::slot::slot_of(k));
            match slot.and_then(|s| map.blocked_redirect(s)) {
                Some(e) => {
                    let w = self.waiters.remove(i);
                    self.unblock_keys(&w);
                    self.deliver(w.origin, Reply::Error(e.into()));
                }
                None => i += 1,
            }
        }
    }

    pub fn expire_waiters(&mut self, now: i64) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].deadline_ms.is_some_and(|d| d <= now) {
                let w = self.waiters.remove(i);
                self.unblock_keys(&w);
                let reply = w.timeout_reply.clone();
                self.deliver(w.origin, reply);
            } else {
                i += 1;
            }
        }
    }
}

/// Parses the next request in `buf`, whose big bulks at `holes` were
/// received apart (see `engine::resp::parse_with_holes`), counting the
/// bytes examined (INFO's `slotd_input_bytes_parsed`; an incomplete
/// request counts all of `buf`).
pub fn parse(
    stats: &mut CoreStats,
    buf: &[u8],
    holes: &[usize],
    limits: &engine::resp::Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> Result<engine::resp::Parsed, engine::resp::ProtocolError> {
    let parsed = engine::resp::parse_with_holes(buf, limits, spans, scratch, holes);
    stats.input_bytes_parsed += match parsed {
        Ok(engine::resp::Parsed::Command { consumed, .. })
        | Ok(engine::resp::Parsed::Empty { consumed }) => consumed,
        _ => buf.len(),
    } as u64;
    parsed
}

/// The next command of a segment as the requesting core parsed it, taken
/// off `pre`: its length and its arguments' spans in `buf`; `None` when it
/// was not parsed ahead (or its entries do not fit `buf`: then it is
/// parsed again).
pub(super) fn parsed_ahead<'p>(
    pre: &mut &'p [(u32, u32)],
    buf: &[u8],
) -> Option<(usize, &'p [(u32, u32)])> {
    let (&(consumed, n), rest) = pre.split_first()?;
    if n == crate::mesh::NOT_PARSED {
        *pre = rest;
        return None;
    }
    let n = (n as usize).min(rest.len());
    let (spans, rest) = rest.split_at(n);
    *pre = rest;
    let fits =
        consumed as usize <= buf.len() && spans.iter().all(|&(s, e)| s <= e && e <= consumed);
    (fits && n > 0).then_some((consumed as usize, spans))
}

/// The key to prefetch of the next command of a segment, taken off `pre`
/// and `buf` (see [`parsed_ahead`]): `None` when `pre` has no more
/// commands, `Some(None)` for one not parsed ahead or without a key.
fn next_key<'a>(pre: &mut &[(u32, u32)], buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let &(consumed, _) = pre.first()?;
    let whole: &'a [u8] = buf;
    let cmd = whole.get(..consumed as usize).unwrap_or(&[]);
    let spans = parsed_ahead(pre, whole);
    *buf = whole.get(consumed as usize..).unwrap_or(&[]);
    let arg = |i: usize| {
        let &(s, e) = spans?.1.get(i)?;
        cmd.get(s as usize..e as usize)
    };
    Some(key_to_prefetch(arg))
}

/// If `rest` starts with a complete request (in RESP), its length and its
/// first argument after the name: the key to prefetch, if it has one. On a
/// large keyspace a lookup is a few cache misses; prefetched, they overlap
/// with other work (the commands before it in a pipeline, or the other
/// connections of the same turn).
pub fn first_key<'a>(
    stats: &mut CoreStats,
    spans: &mut Vec<(u32, u32)>,
    rest: &'a [u8],
    limits: &engine::resp::Limits,
) -> Option<(Option<&'a [u8]>, usize)> {
    if rest.first() != Some(&b'*') {
        return None;
    }
    match parse(stats, rest, &[], limits, spans, &mut Vec::new()) {
        Ok(engine::resp::Parsed::Command {
            inline: false,
            consumed,
        }) => {
            let arg = |i: usize| {
                let &(s, e) = spans.get(i)?;
                rest.get(s as usize..e as usize)
            };
            Some((key_to_prefetch(arg), consumed))
        }
        _ => None,
    }
}

/// The key to prefetch of a command whose arguments `arg` gives: the
/// first argument after the name, or a script's first declared key (after
/// its body or name, and numkeys).
fn key_to_prefetch<'a>(arg: impl Fn(usize) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    let name = arg(0)?;
    const SCRIPTS: [&[u8]; 6] = [
        b"eval",
        b"evalsha",
        b"eval_ro",
        b"evalsha_ro",
        b"fcall",
        b"fcall_ro",
    ];
    let script = matches!(name.first(), Some(b'e' | b'E' | b'f' | b'F'))
        && SCRIPTS.iter().any(|s| s.eq_ignore_ascii_case(name));
    if script {
        arg(2).filter(|&n| n != b"0").and_then(|_| arg(3))
    } else {
        arg(1)
    }
}

/// True when blocking command `name` waits for `value`'s type: a list for
/// the list pops and moves, a sorted set for the sorted-set pops, a stream
/// for the stream reads (Redis
/// 7.0 serves a key's waiters by the key's type). A missing key, or any
/// other command, is looked at by running it again.
fn waits_for(name: &str, value: Option<&engine::value::Value>) -> bool {
    use engine::value::Value;
    match (name, value) {
        (_, None) => true,
        ("blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop", Some(v)) => {
            matches!(v, Value::List(_))
        }
        ("bzpopmin" | "bzpopmax" | "bzmpop", Some(v)) => matches!(v, Value::ZSet(_)),
        ("xread" | "xreadgroup", Some(v)) => matches!(v, Value::Stream(_)),
        _ => true,
    }
}
