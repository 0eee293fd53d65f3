//! Keys reserved by the write pipelines this core fans out.
//!
//! A write pipeline over this core and one other (AOF off or under
//! `everysec`/`no`, no replicas) need not travel core to core, one
//! message per change of core. This core reserves its own keys of the
//! pipeline, sends the other core its segments, which it runs at once,
//! and runs its own once that answer is in; then it gives the keys back. While reserved, a key is neither read
//! nor written by anyone else: requests that would touch one wait
//! ([`Shard::held_back`]), and so do this core's clients
//! ([`Shard::stall_if_held`]); a command that reads or writes data
//! without naming keys, or in another database than the one named (MOVE,
//! COPY ... DB), counts as touching every key. So no observer sees the other core's part
//! without this core's, nor this core's before the other's: the pipeline
//! is atomic to every other client, which is stronger than the order it
//! must keep. Nothing that waits holds anything: the other core refuses
//! its part rather than wait (one of its keys reserved by its own
//! pipeline, or a transaction's lock), and the pipeline then goes core to
//! core (`Response::Refused`); a lock waits until no key is reserved, and
//! no key is reserved while anything waits, so every reservation ends
//! within one answer.

use super::Shard;
use crate::io::{Key, Wait};
use crate::mesh::flows::{Chain, PipelineIn};
use crate::mesh::{Msg, Request, Response, Seg};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;

/// The keys reserved here: a hash of each (database, key) and how many
/// pipelines reserve it. Two keys of one hash only make one wait for the
/// other.
#[derive(Default)]
pub struct Holds {
    counts: hashbrown::HashMap<u64, u32>,
    /// Reservations whose parts are logged (the AOF on), not answered
    /// yet: this core's switch of log files for a rewrite waits for them
    /// (`Shard::snapshot_turn`), so that its part lands in the same
    /// file as the reservation's start.
    parts: u32,
    /// Parts logged here as the requester since the log was last taken
    /// (counted in `persist::aof::Aof::lag_parts` until then).
    untaken: u64,
    /// A part's `#X:` line, written here ([`Shard::begin_part`]).
    line: Vec<u8>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Scratch for a command's key indices.
    idx: Vec<usize>,
}

impl Holds {
    fn hash(&self, db: usize, key: &[u8]) -> u64 {
        self.hasher.hash_one((db, key))
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Whether `key` of database `db` is reserved.
    fn key_held(&self, db: usize, key: &[u8]) -> bool {
        self.counts.contains_key(&self.hash(db, key))
    }

    /// Whether command `args` may touch a reserved key: one of its keys
    /// is, or its keys are not known (a script, an unknown command, one
    /// that reads or writes data without naming keys, see [`keys_of`]);
    /// `None` for a command that touches no data.
    fn args_held(&mut self, db: usize, args: &engine::Args) -> Option<bool> {
        let mut idx = std::mem::take(&mut self.idx);
        idx.clear();
        let held = match keys_of(args, &mut idx) {
            Keys::None => None,
            Keys::Unknown => Some(true),
            Keys::Known => Some(idx.iter().any(|&i| self.key_held(db, args.get(i)))),
        };
        self.idx = idx;
        held
    }

    /// Calls `f` with the hash of each key of segment `seg` of a pipeline
    /// (`bytes`, parsed as `pre`); false if a command's keys are not
    /// known (not parsed ahead, no keys, a script).
    fn seg_keys(
        &mut self,
        db: usize,
        (bytes, pre): (&[u8], &[(u32, u32)]),
        seg: &Seg,
        mut f: impl FnMut(u64),
    ) -> bool {
        let Some(mut buf) = bytes.get(seg.start as usize..seg.end as usize) else {
            return false;
        };
        let mut pre = pre.get(seg.pre as usize..).unwrap_or(&[]);
        let mut idx = std::mem::take(&mut self.idx);
        let mut known = true;
        for _ in 0..seg.cmds {
            let Some((consumed, spans)) = super::run::parsed_ahead(&mut pre, buf) else {
                known = false;
                break;
            };
            let args = engine::Args::from_request(&buf[..consumed], spans, &[]);
            idx.clear();
            if !matches!(keys_of(&args, &mut idx), Keys::Known) {
                known = false;
                break;
            }
            for &i in &idx {
                f(self.hash(db, args.get(i)));
            }
            buf = &buf[consumed..];
        }
        self.idx = idx;
        known
    }

    /// Whether segments `segs` may touch a reserved key.
    fn segs_held<'s>(
        &mut self,
        db: usize,
        bytes: (&[u8], &[(u32, u32)]),
        segs: impl Iterator<Item = &'s Seg>,
    ) -> bool {
        if self.counts.is_empty() {
            return false;
        }
        let counts = std::mem::take(&mut self.counts);
        let mut held = false;
        for seg in segs {
            if !self.seg_keys(db, bytes, seg, |h| held |= counts.contains_key(&h)) || held {
                held = true;
                break;
            }
        }
        self.counts = counts;
        held
    }
}

/// What is known of a command's keys ([`keys_of`]).
enum Keys {
    /// The command has none.
    None,
    /// An unknown command, or a script (which may touch keys it did not
    /// declare).
    Unknown,
    /// Their indices are in `idx`.
    Known,
}

/// Appends the indices of `args`'s keys to `idx`, and says whether they
/// are known.
fn keys_of(args: &engine::Args, idx: &mut Vec<usize>) -> Keys {
    use engine::cmd::flags::{READONLY, WRITE};
    let Some(spec) = engine::cmd::registry().lookup(args.get(0)) else {
        return Keys::Unknown;
    };
    if spec.first_key <= 0 && spec.keys.is_none() {
        // One that reads or writes data without naming keys (SCAN,
        // RANDOMKEY, FLUSHDB...) may touch any.
        return match spec.has(READONLY) || spec.has(WRITE) {
            true => Keys::Unknown,
            false => Keys::None,
        };
    }
    // MOVE and COPY ... DB write the key in another database than the
    // one reserved.
    if matches!(spec.name, "move" | "copy") {
        return Keys::Unknown;
    }
    match !engine::cmd::script::is_script(spec.name) && spec.key_indices(args, idx).is_ok() {
        true if !idx.is_empty() => Keys::Known,
        _ => Keys::Unknown,
    }
}

impl Shard {
    /// With the AOF on: whether a write pipeline may reserve its keys
    /// here and send the other core its part at once. Only under
    /// `everysec` and `no`, where replies do not wait for the log: the
    /// two parts are logged as one transaction across cores, kept both
    /// or neither after a crash, which holds nothing back then (under
    /// `always` a part would hold every later record of its core until
    /// the other is on disk, as a transaction's does). Not while a
    /// snapshot job this core has not started is pending, since its
    /// switch of files waits for the reservations' parts (see
    /// [`Shard::aof_part`]) and must come; nor once stopping.
    pub fn aof_may_reserve(&self) -> bool {
        self.persist.aof.lags() && !self.job_unstarted() && !self.stopping
    }

    /// With the AOF on, the name of a reserved pipeline's parts and this
    /// core's snapshot epoch (else `None`), counted until its answer
    /// ([`Holds::parts`]). Both parts land in the same generation of
    /// files: this core does not switch files until its part is logged
    /// (`Shard::snapshot_turn`), and the other runs its part only at the
    /// same epoch. So no rewrite folds one part into its base while the
    /// other is in a new incr file, and the manifest need not name them.
    pub fn aof_part(&mut self) -> Option<(crate::mesh::TxId, u64)> {
        self.aof.as_ref()?;
        self.holds.parts += 1;
        self.persist.aof.lag_parts.fetch_add(1, Ordering::SeqCst);
        Some((self.rpc.new_tx(), self.snap_epoch))
    }

    /// The log was taken (`Core::aof_pump`): the parts logged here as the
    /// requester are in what the AOF writer published as recorded.
    pub fn parts_taken(&mut self) {
        let n = std::mem::take(&mut self.holds.untaken);
        if n > 0 {
            self.persist.aof.lag_parts.fetch_sub(n, Ordering::SeqCst);
        }
    }

    /// Whether a reservation's part is still to be logged here.
    pub fn parts_pending(&self) -> bool {
        self.holds.parts > 0
    }

    /// Opens this core's part of reserved pipeline `tx` (over `cores`) in
    /// its log: `#X:` and MULTI, closed by [`Shard::end_part`]. A load
    /// keeps it only with the other core's part whole (see
    /// `engine::aof::cut`).
    ///
    /// The part that runs `first` (the other core's) is noted as open
    /// until both are on disk (`persist::aof::OpenParts`).
    fn begin_part(&mut self, tx: crate::mesh::TxId, cores: (usize, usize), first: bool) -> bool {
        let start_ms = self.shared.start_ms;
        let Some(log) = self.engine.write_log() else {
            return false;
        };
        let start = log.offset();
        // `#X:<part id>:<a>,<b>`, written into a buffer kept for it
        // (formatting it cost a few allocations per pipeline).
        let (a, b) = (cores.0.min(cores.1), cores.0.max(cores.1));
        let line = &mut self.holds.line;
        line.clear();
        line.extend_from_slice(b"#X:");
        super::snap::push_part_id(line, start_ms, tx);
        line.push(b':');
        engine::writelog::push_decimal(line, a as u64);
        line.push(b',');
        engine::writelog::push_decimal(line, b as u64);
        log.begin_multi(Some(line));
        if let (true, Some(aof)) = (first, self.aof.as_deref_mut()) {
            aof.ran_part(start);
        }
        true
    }

    fn end_part(&mut self) {
        if let Some(log) = self.engine.write_log() {
            log.end_multi(0, false);
        }
    }

    /// Runs a reserved part's segments here (`run`), logged as its part
    /// when it has a name; `first` on the core that runs its part first
    /// (not the requester).
    pub(super) fn in_part<T>(
        &mut self,
        (part, first): (Option<(crate::mesh::TxId, usize)>, bool),
        run: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let open = part.is_some_and(|(tx, other)| self.begin_part(tx, (self.id, other), first));
        let out = run(self);
        if open {
            self.end_part();
        }
        out
    }

    /// Reserves this core's keys of write pipeline `p` in database `db`:
    /// their hashes, or `None` when one is reserved already or some are
    /// not known (the pipeline then goes core to core).
    pub fn reserve(&mut self, db: usize, p: &PipelineIn) -> Option<Vec<u64>> {
        let me = self.id;
        let mut hashes = Vec::with_capacity(p.segs.len() * 2);
        for seg in p.segs.iter().filter(|s| s.core == me) {
            if !self
                .holds
                .seg_keys(db, (&p.bytes.0, &p.pre), seg, |h| hashes.push(h))
            {
                return None;
            }
        }
        if hashes.iter().any(|h| self.holds.counts.contains_key(h)) {
            return None;
        }
        for &h in &hashes {
            *self.holds.counts.entry(h).or_insert(0) += 1;
        }
        self.stats.pipelines_reserved += 1;
        Some(hashes)
    }

    /// Gives reserved keys back, and lets what waited for them go on.
    fn release(&mut self, hashes: &[u64]) {
        for h in hashes {
            if let hashbrown::hash_map::Entry::Occupied(mut e) = self.holds.counts.entry(*h) {
                match *e.get() {
                    0 | 1 => drop(e.remove()),
                    _ => *e.get_mut() -= 1,
                }
            }
        }
        self.retry_deferred();
        self.resume_stalled();
    }

    /// Whether pipeline `p`'s segments for this core may touch a key
    /// reserved here (a read pipeline must not then run its part here at
    /// once).
    pub fn pipeline_held(&mut self, db: usize, p: &PipelineIn) -> bool {
        let me = self.id;
        let segs = p.segs.iter().filter(|s| s.core == me);
        self.holds.segs_held(db, (&p.bytes.0, &p.pre), segs)
    }

    /// Parks connection `key` until the keys it would touch are given
    /// back (true), when command `args` (in database `db`) may touch one
    /// reserved here; else false: go on. A command without keys that
    /// reads or writes data (SCAN, FLUSHDB) may touch any; one that does
    /// not (PING, CLIENT) goes on.
    pub fn stall_if_held(&mut self, key: Key, db: usize, args: &engine::Args) -> bool {
        if self.holds.is_empty() || self.holds.args_held(db, args) != Some(true) {
            return false;
        }
        self.stall(key);
        true
    }

    /// Parks connection `key` while any key is reserved here (true): its
    /// command reads a whole slot (CLUSTER COUNTKEYSINSLOT,
    /// GETKEYSINSLOT).
    pub fn stall_if_reserved(&mut self, key: Key) -> bool {
        if self.holds.is_empty() {
            return false;
        }
        self.stall(key);
        true
    }

    fn stall(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key) {
            c.wait = Wait::Stalled;
        }
        self.stalled.push(key);
    }

    /// Whether request `req` must wait ([`Shard::request`] defers it)
    /// because it may touch a reserved key, or because requests wait
    /// already (they go on in the order they came). Requests that touch
    /// no data go on, and so does a reserved part, which never waits.
    pub(super) fn held_back(&mut self, req: &Request) -> bool {
        // (Under a lock nothing is reserved, and the lock decides.)
        if self.lock.is_some() || self.holds.is_empty() && self.deferred.is_empty() {
            return false;
        }
        let queued = !self.deferred.is_empty();
        let me = self.id;
        match req {
            // A request of a transaction whose lock is not granted here:
            // its `Lock`, sent right before it, waits among the deferred
            // (a lock waits while keys are reserved), so it waits behind.
            Request::Exec { tx: Some(_), .. } | Request::Export { tx: Some(_), .. } => true,
            Request::Pipeline(p) if !p.reserved => {
                let segs = p.segs.iter().skip(p.at).take_while(|s| s.core == me);
                queued || self.holds.segs_held(p.db, (&p.bytes, &p.pre), segs)
            }
            Request::Exec {
                tx: None, db, cmds, ..
            } => {
                queued
                    || cmds
                        .iter()
                        .any(|c| self.holds.args_held(*db, &c.as_args()) != Some(false))
            }
            Request::Export { tx: None, db, keys } => {
                queued || keys.iter().any(|k| self.holds.key_held(*db, k))
            }
            Request::Import { .. } => true,
            _ => super::serve::keyspace_wide(req),
        }
    }

    /// Serves reserved part `req` ([`crate::mesh::msg::Pipeline::reserved`])
    /// at once, or refuses it when a transaction holds this core or one of
    /// its keys is reserved here, or when replicas came on since the
    /// requester chose this path, or the AOF's state differs from what the
    /// requester saw (its two parts would reach the log or the stream
    /// apart: core to core, they go in order), or a part cannot be logged
    /// now ([`Shard::aof_may_reserve`]).
    pub(super) fn reserved_part(&mut self, from: usize, id: u64, req: Request) {
        let refuse = match &req {
            Request::Pipeline(p) => {
                let me = self.id;
                let segs = p.segs.iter().skip(p.at).take_while(|s| s.core == me);
                let aof_refuses = match p.part {
                    Some((_, epoch)) => {
                        self.aof.is_none() || !self.aof_may_reserve() || self.snap_epoch != epoch
                    }
                    None => self.aof.is_some(),
                };
                self.lock.is_some()
                    || aof_refuses
                    || self.replication.stream().active()
                    || self.holds.segs_held(p.db, (&p.bytes, &p.pre), segs)
            }
            _ => false,
        };
        if refuse {
            // It reveals nothing, and must not wait behind messages held
            // for the AOF: the requester holds its keys until it comes,
            // and after a switch to `always` this core's offsets wait
            // for the requester's parts ([`crate::persist::aof::Aof::lag_parts`]).
            let resp = Response::Refused;
            self.send_unheld(from, crate::mesh::Msg::Resp { id, resp });
        } else {
            self.handle_request(from, id, req);
        }
    }

    /// A reserved pipeline's chain got its answer: this core's part runs
    /// now and its keys go back, or, refused, the pipeline goes core to
    /// core (or nowhere, its client gone). Returns the chain when its
    /// answer is for the client now.
    pub(super) fn reserved_done(&mut self, mut chain: Chain, resp: &Response) -> Option<Chain> {
        let Some(r) = chain.take_reserved() else {
            return Some(chain);
        };
        let conn = chain.conn();
        if r.part.is_some() {
            self.holds.parts -= 1;
            // (Logged below, or nothing to log.)
            self.holds.untaken += 1;
        }
        if matches!(resp, Response::Refused) {
            self.stats.pipelines_refused += 1;
            self.release(&r.holds);
            self.serve_ready();
            let alive = self.conns.get(conn).is_some_and(|c| !c.closing);
            if !alive {
                return Some(chain);
            }
            let client = self.conns.get(conn).map_or(0, |c| c.id);
            let (core, req, chain) = chain.restart(*r);
            let h = self.chains.insert(chain);
            let from = self.id;
            self.mesh.send(
                core,
                Msg::Req {
                    from,
                    id: crate::mesh::flows::chain_id(h),
                    client,
                    req,
                },
            );
            if let Some(c) = self.conns.get_mut(conn) {
                c.wait = Wait::Chain(h);
            }
            return None;
        }
        // (A master client's part: `Shard::for_client`.)
        let master = self
            .conns
            .get(conn)
            .filter(|c| c.master)
            .map_or(0, |c| c.id);
        // Logged as its part, after the other core's (whose log offset
        // after it comes with the answer): it comes first in the
        // client's order, but runs second.
        // (Not if its AOF was turned off and on meanwhile: the other
        // part went to files that are gone.)
        let other = r.p.segs.iter().find(|s| s.core != self.id).map(|s| s.core);
        let epoch = self.snap_epoch;
        let part = r
            .part
            .filter(|&(_, e)| e == epoch)
            .map(|(tx, _)| tx)
            .zip(other);
        if let (Some(_), Response::Encoded { needs, .. }) = (part, resp) {
            self.depend_on(needs);
        }
        let (out, ends) = self.for_client(master, |s| {
            s.in_part((part, false), |s| {
                s.run_here(conn, (r.db, chain.resp3()), &r.p)
            })
        });
        chain.ran_here(out, ends);
        self.release(&r.holds);
        self.serve_ready();
        Some(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::NOT_PARSED;

    /// `cmds` as RESP bytes and as the requesting core parses them
    /// (`Pipeline::pre`: a header per command, then its arguments' spans
    /// from the command's first byte), and one segment over all of them.
    fn pipeline(cmds: &[&[&str]]) -> (Vec<u8>, Vec<(u32, u32)>, Seg) {
        let (mut bytes, mut pre) = (Vec::new(), Vec::new());
        for args in cmds {
            let start = bytes.len();
            let mut spans = Vec::new();
            bytes.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in *args {
                bytes.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                let at = (bytes.len() - start) as u32;
                spans.push((at, at + a.len() as u32));
                bytes.extend_from_slice(a.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            pre.push(((bytes.len() - start) as u32, spans.len() as u32));
            pre.extend(spans);
        }
        let seg = Seg {
            core: 0,
            start: 0,
            end: bytes.len() as u32,
            cmds: cmds.len() as u32,
            pre: 0,
        };
        (bytes, pre, seg)
    }

    fn hashes(h: &mut Holds, cmds: &[&[&str]]) -> Option<Vec<u64>> {
        let (bytes, pre, seg) = pipeline(cmds);
        let mut out = Vec::new();
        h.seg_keys(3, (&bytes, &pre), &seg, |x| out.push(x))
            .then_some(out)
    }

    #[test]
    fn a_segment_yields_each_commands_keys_or_says_they_are_not_known() {
        let mut h = Holds::default();
        let got = hashes(
            &mut h,
            &[&["SET", "a", "1"], &["hset", "b", "f", "v"], &["GET", "a"]],
        );
        let want = vec![h.hash(3, b"a"), h.hash(3, b"b"), h.hash(3, b"a")];
        assert_eq!(got, Some(want));
        assert_ne!(h.hash(3, b"a"), h.hash(4, b"a"), "the database counts");
        // Keys not known: a script, a command without keys, an unknown one.
        for cmd in [
            &["EVALSHA", "abc", "1", "a"][..],
            &["PING"][..],
            &["NOSUCHCOMMAND", "a"][..],
        ] {
            assert_eq!(hashes(&mut h, &[&["SET", "a", "1"], cmd]), None, "{cmd:?}");
        }
        // A command the requester did not parse ahead.
        let (bytes, mut pre, seg) = pipeline(&[&["SET", "a", "1"]]);
        pre[0].1 = NOT_PARSED;
        pre.truncate(1);
        assert!(!h.seg_keys(3, (&bytes, &pre), &seg, |_| {}));
    }

    #[test]
    fn a_segment_is_held_while_one_of_its_keys_is_reserved() {
        let mut h = Holds::default();
        let (bytes, pre, seg) = pipeline(&[&["SET", "a", "1"], &["SET", "b", "1"]]);
        assert!(!h.segs_held(3, (&bytes, &pre), [&seg].into_iter()));
        let b = h.hash(3, b"b");
        h.counts.insert(b, 1);
        assert!(h.segs_held(3, (&bytes, &pre), [&seg].into_iter()));
        assert!(!h.segs_held(2, (&bytes, &pre), [&seg].into_iter()));
        let mut idx = Vec::new();
        let (args_bytes, spans) = (b"GETb".to_vec(), [(0u32, 3u32), (3, 4)]);
        let args = engine::Args::new(&args_bytes, &spans);
        assert!(matches!(keys_of(&args, &mut idx), Keys::Known) && idx == [1]);
        assert_eq!(h.args_held(3, &args), Some(true));
        assert_eq!(h.args_held(0, &args), Some(false));
        h.counts.clear();
        assert_eq!(h.args_held(3, &args), Some(false));
    }

    /// A command's keys as [`Holds::args_held`] reads them while key `a`
    /// of database 3 is reserved.
    fn held(h: &mut Holds, cmd: &[&str]) -> Option<bool> {
        let (mut bytes, mut spans) = (Vec::new(), Vec::new());
        for a in cmd {
            spans.push((bytes.len() as u32, (bytes.len() + a.len()) as u32));
            bytes.extend_from_slice(a.as_bytes());
        }
        h.args_held(3, &engine::Args::new(&bytes, &spans))
    }

    #[test]
    fn commands_that_reach_beyond_their_named_keys_count_as_touching_a_reserved_one() {
        let mut h = Holds::default();
        h.counts.insert(h.hash(3, b"a"), 1);
        assert_eq!(held(&mut h, &["GET", "b"]), Some(false));
        assert_eq!(held(&mut h, &["GET", "a"]), Some(true));
        // Data read or written without naming keys.
        for cmd in [&["SCAN", "0"][..], &["RANDOMKEY"][..], &["FLUSHDB"][..]] {
            assert_eq!(held(&mut h, cmd), Some(true), "{cmd:?}");
        }
        // Another database than the one reserved.
        assert_eq!(held(&mut h, &["MOVE", "b", "5"]), Some(true));
        assert_eq!(held(&mut h, &["COPY", "b", "c", "DB", "5"]), Some(true));
        // No data.
        for cmd in [&["PING"][..], &["CLIENT", "ID"][..]] {
            assert_eq!(held(&mut h, cmd), None, "{cmd:?}");
        }
        // And none of these lets a pipeline reserve its keys.
        for cmd in [&["MOVE", "b", "5"][..], &["SCAN", "0"][..]] {
            assert_eq!(hashes(&mut h, &[&["SET", "b", "1"], cmd]), None, "{cmd:?}");
        }
    }
}
