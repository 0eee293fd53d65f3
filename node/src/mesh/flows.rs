//! The slow paths, as tasks: a command on another core, a command whose
//! keys span cores, fan-out commands and MULTI/EXEC.
//!
//! Cross-core atomicity uses ordered shard locks: a task takes the lock of
//! every core it needs in ascending core order (so two tasks can never wait
//! on each other), does its work with plain requests, and releases them.
//! While locked, a core defers every other request and stalls its own
//! connections' commands, so nothing observes a half-done multi-core write.
//! A multi-key command is run by copying its keys into a scratch keyspace,
//! executing the ordinary engine handler there, and writing back exactly
//! the keys the handler touched: one implementation per command, whatever
//! the key placement.

use super::msg::{Exported, Request, Response, Seg, TxId};
use super::route::{parse_db, route, Route};
use super::task::{Effect, Rpc, TaskDone};
use crate::io::Key;
use bytes::Bytes;
use engine::cmd::{flags, Merge, Spec};
use engine::lazyfree::Why;
use engine::{OwnedArgs, Reply};
use std::rc::Rc;

pub(super) fn first_reply(resp: Response) -> Reply {
    match resp {
        Response::Replies(mut r) if !r.is_empty() => r.swap_remove(0),
        Response::Count(n) => Reply::Int(n),
        _ => Reply::err("ERR internal error: unexpected answer from a shard"),
    }
}

pub(super) fn exec_req(
    db: usize,
    cmds: Vec<OwnedArgs>,
    tx: Option<TxId>,
    in_multi: bool,
) -> Request {
    exec_req_for(db, cmds, tx, in_multi, None)
}

/// [`exec_req`] for one part of a command split over cores: it counts in
/// INFO's commandstats on the `first` part's core only.
fn part_req(
    db: usize,
    cmds: Vec<OwnedArgs>,
    tx: Option<TxId>,
    in_multi: bool,
    first: bool,
) -> Request {
    let n = cmds.len();
    let mut req = exec_req(db, cmds, tx, in_multi);
    if let Request::Exec { counts, .. } = &mut req {
        *counts = vec![first; n];
    }
    req
}

/// [`exec_req`] for commands of connection `conn` of this core (their
/// slow log entries come back to it).
fn exec_req_for(
    db: usize,
    cmds: Vec<OwnedArgs>,
    tx: Option<TxId>,
    in_multi: bool,
    conn: Option<Key>,
) -> Request {
    Request::Exec {
        db,
        cmds,
        tx,
        in_multi,
        may_block: false,
        watch: Vec::new(),
        conn,
        counts: Vec::new(),
    }
}

/// Commands whose keys all live on core `to`, run there in order in one
/// request (a pipeline's consecutive commands for one core travel
/// together).
pub async fn remote(
    rpc: Rc<Rpc>,
    to: usize,
    db: usize,
    cmds: Vec<OwnedArgs>,
    may_block: bool,
    conn: Key,
) -> TaskDone {
    let n = cmds.len();
    let req = Request::Exec {
        db,
        cmds,
        tx: None,
        in_multi: false,
        may_block,
        watch: Vec::new(),
        conn: Some(conn),
        counts: Vec::new(),
    };
    let answer = match may_block {
        true => rpc.parked(rpc.call(to, req)).await,
        false => rpc.call(to, req).await,
    };
    let replies = match answer {
        Response::Replies(r) if r.len() == n => r,
        _ => vec![Reply::err("ERR internal error: unexpected answer from a shard"); n],
    };
    TaskDone {
        conn,
        replies,
        effects: Vec::new(),
        encoded: engine::Encoded::default(),
    }
}

/// A client's pipelined single-key commands that cross cores (see
/// [`Request::Pipeline`]), run so that every observer sees the writes in
/// the order the client sent them, and the replies come back encoded:
/// - reads only: every core runs its own at once, and the replies are put
///   back in the client's order;
/// - writes in fewer than [`LOCKED_SEGS_MIN`] segments: they travel core to
///   core in order (one message per change of core, no core waits);
/// - writes in more segments (long pipelines over random keys): the task
///   takes the locks of the cores involved (ordered, as for multi-key
///   commands), every core runs its own at once, and the locks go: nobody
///   sees any of the writes before all are done, so none out of order, and
///   the cost is a few messages however long the pipeline. (Locking for
///   short pipelines was measured: with many clients the cores' waits for
///   each other cost more than the hops they save.)
///
/// A chain (see [`chained`]) does not come here: it is one request and
/// needs no task ([`Chain`]).
pub async fn pipeline(
    rpc: Rc<Rpc>,
    db: usize,
    resp3: bool,
    p: PipelineIn,
    to: PipelineTo,
) -> TaskDone {
    let PipelineIn {
        bytes: (bytes, holes, bigs),
        pre,
        segs,
        writes,
    } = p;
    let req = |pre, segs: Vec<Seg>, tx: Option<TxId>, direct: i32, out| {
        Request::Pipeline(Box::new(super::msg::Pipeline {
            tx,
            direct,
            db,
            resp3,
            bytes: bytes.clone(),
            holes: holes.clone(),
            bigs: bigs.clone(),
            pre,
            segs,
            at: 0,
            out,
            ends: Vec::new(),
            conn: Some(to.conn),
            needs: to.after.clone(),
            reserved: false,
            part: None,
        }))
    };
    let mut cores: Vec<usize> = segs.iter().map(|s| s.core).collect();
    cores.sort_unstable();
    cores.dedup();
    let n_cmds = segs.iter().map(|s| s.cmds).sum::<u32>();
    let mut locks = None;
    if writes {
        let l = Locks::take(&rpc, &cores).await;
        if l.paused {
            // Writers paused for a manual failover: the pipeline goes core
            // to core instead, each core refusing its writes.
            l.release().await;
            let p = PipelineIn {
                bytes: (bytes.clone(), holes.clone(), bigs.clone()),
                pre,
                segs,
                writes,
            };
            let (core, req, chain) = Chain::start(db, resp3, p, to);
            let resp = rpc.call(core, req).await;
            return chain.done(resp);
        }
        locks = Some(l);
    }
    // With the AOF on: the writes the replies reveal.
    let mut needs = Vec::new();
    let tx = locks.as_ref().map(|l| l.tx);
    let calls: Vec<_> = cores
        .iter()
        .map(|&c| {
            let own = segs.iter().filter(|s| s.core == c).copied().collect();
            rpc.call(c, req(pre.clone(), own, tx, -1, engine::Encoded::default()))
        })
        .collect();
    let mut parts = Vec::with_capacity(calls.len());
    for call in calls {
        parts.push(match call.await {
            Response::Encoded {
                out,
                ends,
                needs: n,
            } => {
                // (What each part's replies reveal, one offset per
                // core: the client's next commands depend on it.)
                for (d, x) in n {
                    super::add_need(&mut needs, d, x);
                }
                (out, ends, 0usize, 0usize)
            }
            _ => (engine::Encoded::default(), Vec::new(), 0, 0),
        });
    }
    if let Some(l) = locks {
        l.release().await;
    }
    let start = engine::Encoded {
        bytes: to.head.clone(),
        bigs: Vec::new(),
    };
    let encoded = interleave(start, &segs, &cores, &mut parts);
    pipeline_done(to.conn, encoded, to.head, n_cmds, resp3, needs)
}

/// A pipeline's end for its connection: its replies, or when an answer
/// did not match its commands (`None`), `head` and an error for each.
fn pipeline_done(
    conn: Key,
    encoded: Option<engine::Encoded>,
    head: Vec<u8>,
    n_cmds: u32,
    resp3: bool,
    needs: Vec<(usize, u64)>,
) -> TaskDone {
    let encoded = encoded.unwrap_or_else(|| {
        let mut out = engine::Encoded {
            bytes: head,
            bigs: Vec::new(),
        };
        let err = Reply::err("ERR internal error: unexpected answer from a shard");
        for _ in 0..n_cmds {
            out.push(&err, resp3);
        }
        out
    });
    TaskDone {
        conn,
        replies: Vec::new(),
        encoded,
        effects: if needs.is_empty() {
            Vec::new()
        } else {
            vec![Effect::AofNeeds(needs)]
        },
    }
}

/// A pipeline's bytes and commands (see `Request::Pipeline`).
pub struct PipelineIn {
    pub bytes: (Bytes, Vec<usize>, Vec<Bytes>),
    pub pre: Box<[(u32, u32)]>,
    pub segs: Vec<Seg>,
    pub writes: bool,
}

/// Whom a pipeline answers: the client's connection on this core; its
/// socket when the core that answers a pipeline run core to core may
/// send its replies on it itself (-1: not); the replies of its earlier
/// commands, which go first; and with the AOF on, what its writes depend
/// on (see `Request::Pipeline`'s `needs`): this core and its log offset,
/// and the client's earlier writes on other cores not known effective
/// yet.
pub struct PipelineTo {
    pub conn: Key,
    pub direct: i32,
    pub head: Vec<u8>,
    pub after: Vec<(usize, u64)>,
}

/// True when the node answers this MEMORY call (all but USAGE, which
/// runs on the key's core).
pub fn memory_is_node(args: &engine::Args) -> bool {
    !args.get(1).eq_ignore_ascii_case(b"usage")
}

/// Whether `spec` with `args` is answered by the node rather than on a
/// core's keyspace.
fn node_answers(spec: &Spec, args: &engine::Args) -> bool {
    spec.has(flags::NODE) || (spec.name == "memory" && memory_is_node(args))
}

/// Whether a pipeline goes core to core in one request, the last core
/// answering with every reply: its commands are all for one core, or
/// they write in fewer than [`LOCKED_SEGS_MIN`] segments. Else it runs
/// as a task ([`pipeline`]).
pub fn chained(p: &PipelineIn) -> bool {
    let first = p.segs.first().map(|s| s.core);
    p.segs.iter().all(|s| Some(s.core) == first) || (p.writes && p.segs.len() < LOCKED_SEGS_MIN)
}

/// Whether a pipeline that is not [`chained`] may run as a fan-out
/// without a task ([`Chain::fan_out`]): it only reads, and its commands
/// are for this core (`me`) and one other. (The caller checks what the
/// core's state allows.)
pub fn fans_out(p: &PipelineIn, me: usize) -> bool {
    !p.writes && over_two(p, me)
}

/// Whether pipeline `p`'s commands are for this core (`me`) and exactly
/// one other.
pub fn over_two(p: &PipelineIn, me: usize) -> bool {
    let other = p.segs.iter().find(|s| s.core != me).map(|s| s.core);
    other.is_some() && p.segs.iter().all(|s| s.core == me || Some(s.core) == other)
}

/// The request id of chain `key` (of the core's table of chains in
/// flight): ids with the top bit set, which `Rpc`'s counter never
/// reaches.
pub fn chain_id(key: Key) -> u64 {
    CHAIN_ID | (key.index as u64) << 32 | key.gen as u64
}

/// The chain an answer's id names, if it names one ([`chain_id`]).
pub fn chain_key(id: u64) -> Option<Key> {
    (id & CHAIN_ID != 0).then_some(Key {
        index: ((id & !CHAIN_ID) >> 32) as u32,
        gen: id as u32,
    })
}

const CHAIN_ID: u64 = 1 << 63;

/// A chained pipeline ([`chained`]) in flight, sent without a task: what
/// its answer needs to become the client's replies. Most remote commands
/// are the single commands of clients that wait for each reply, and a
/// task costs allocations and polls for each.
pub struct Chain {
    conn: Key,
    n_segs: usize,
    n_cmds: u32,
    resp3: bool,
    /// The replies that go first, for an answer that does not match.
    head: Vec<u8>,
    /// A read pipeline fanned out ([`Chain::fan_out`]): the replies of
    /// this core's segments, which the other core's answer interleaves.
    here: Option<Box<RanHere>>,
    /// A write pipeline fanned out with this core's keys reserved
    /// ([`Chain::reserved`]): this core's part, run once the other's
    /// answer is in.
    reserved: Option<Box<Reserved>>,
}

/// A write pipeline over this core and one other whose keys here are
/// reserved (`shard::holds`) while the other core runs its part: what
/// this core runs once that part is in, the reservation to give back, and
/// what a pipeline the other core refused needs to go core to core
/// instead.
pub struct Reserved {
    pub db: usize,
    pub p: PipelineIn,
    pub holds: Vec<u64>,
    /// With the AOF on, the name both cores' parts are logged under and
    /// the requester's snapshot epoch (`msg::Pipeline::part`).
    pub part: Option<(TxId, u64)>,
    direct: i32,
    after: Vec<(usize, u64)>,
}

/// This core's part of a fanned-out read pipeline: every segment in the
/// client's order, this core's replies and their segments' ends, this
/// core and the other.
struct RanHere {
    segs: Vec<Seg>,
    out: engine::Encoded,
    ends: Vec<u32>,
    me: usize,
    other: usize,
}

impl Chain {
    /// The first core of chained pipeline `p` and the request for it,
    /// and what its answer will need.
    pub fn start(db: usize, resp3: bool, p: PipelineIn, to: PipelineTo) -> (usize, Request, Chain) {
        let n_cmds = p.segs.iter().map(|s| s.cmds).sum::<u32>();
        let head = to.head.clone();
        let mut out = engine::Encoded {
            bytes: to.head,
            bigs: Vec::new(),
        };
        // Room for short replies (`+OK`, integers), so that a chain's
        // replies do not grow the buffer reply by reply.
        out.bytes.reserve(n_cmds as usize * 8);
        let chain = Chain {
            conn: to.conn,
            n_segs: p.segs.len(),
            n_cmds,
            resp3,
            head,
            here: None,
            reserved: None,
        };
        let (bytes, holes, bigs) = p.bytes;
        let first = p.segs.first().map_or(0, |s| s.core);
        let req = Request::Pipeline(Box::new(super::msg::Pipeline {
            tx: None,
            direct: to.direct,
            db,
            resp3,
            bytes,
            holes,
            bigs,
            pre: p.pre,
            segs: p.segs,
            at: 0,
            out,
            ends: Vec::new(),
            conn: Some(to.conn),
            needs: to.after,
            reserved: false,
            part: None,
        }));
        (first, req, chain)
    }

    /// A read pipeline over this core (`me`) and one other, without a
    /// task ([`fans_out`]): the other core and the request for its
    /// segments, and the chain that waits for its answer, to which
    /// [`Chain::ran_here`] adds this core's replies. Both parts run at
    /// once, and nothing goes through this core's own inbox.
    pub fn fan_out(
        db: usize,
        resp3: bool,
        p: &PipelineIn,
        to: PipelineTo,
        me: usize,
    ) -> (usize, Request, Chain) {
        let other = p.segs.iter().find(|s| s.core != me).map_or(me, |s| s.core);
        let theirs: Vec<Seg> = p.segs.iter().filter(|s| s.core == other).copied().collect();
        let (bytes, holes, bigs) = &p.bytes;
        let chain = Chain {
            conn: to.conn,
            n_segs: theirs.len(),
            n_cmds: p.segs.iter().map(|s| s.cmds).sum::<u32>(),
            resp3,
            head: to.head,
            here: Some(Box::new(RanHere {
                segs: p.segs.clone(),
                out: engine::Encoded::default(),
                ends: Vec::new(),
                me,
                other,
            })),
            reserved: None,
        };
        let req = Request::Pipeline(Box::new(super::msg::Pipeline {
            tx: None,
            direct: -1,
            db,
            resp3,
            bytes: bytes.clone(),
            holes: holes.clone(),
            bigs: bigs.clone(),
            pre: p.pre.clone(),
            segs: theirs,
            at: 0,
            out: engine::Encoded::default(),
            ends: Vec::new(),
            conn: Some(to.conn),
            needs: Vec::new(),
            reserved: false,
            part: None,
        }));
        (other, req, chain)
    }

    /// A write pipeline over this core (`me`) and one other whose keys
    /// here are reserved (`holds`; `shard::holds` says why that keeps the
    /// client's order for every observer): the other core and the request
    /// for its segments, which it runs at once or refuses, and the chain
    /// that waits for its answer, holding this core's part
    /// ([`Chain::take_reserved`]).
    /// With the AOF on, `part` names the transaction across cores both
    /// parts are logged as, and the other core's part depends on what the
    /// pipeline comes after (`to.after`), as a run core to core does.
    pub fn reserved(
        db: usize,
        resp3: bool,
        p: PipelineIn,
        to: PipelineTo,
        me: usize,
        (holds, part): (Vec<u64>, Option<(TxId, u64)>),
    ) -> (usize, Request, Chain) {
        let direct = to.direct;
        let after = to.after.clone();
        let (other, mut req, mut chain) = Chain::fan_out(db, resp3, &p, to, me);
        if let Request::Pipeline(theirs) = &mut req {
            theirs.reserved = true;
            if part.is_some() {
                theirs.part = part;
                theirs.needs = after.clone();
            }
        }
        chain.reserved = Some(Box::new(Reserved {
            db,
            p,
            holds,
            part,
            direct,
            after,
        }));
        (other, req, chain)
    }

    /// Whether this chain holds a reserved part ([`Chain::reserved`]),
    /// which must run whatever becomes of the client.
    pub fn is_reserved(&self) -> bool {
        self.reserved.is_some()
    }

    /// The reserved part of a pipeline ([`Chain::reserved`]), taken out.
    pub fn take_reserved(&mut self) -> Option<Box<Reserved>> {
        self.reserved.take()
    }

    /// The connection the chain answers.
    pub fn conn(&self) -> Key {
        self.conn
    }

    /// Whether the client speaks RESP3.
    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// A reserved pipeline the other core refused, core to core instead
    /// ([`Chain::start`]): its first core, the request, the new chain.
    pub fn restart(self, r: Reserved) -> (usize, Request, Chain) {
        let to = PipelineTo {
            conn: self.conn,
            direct: r.direct,
            head: self.head,
            after: r.after,
        };
        Chain::start(r.db, self.resp3, r.p, to)
    }

    /// This core's replies to a fanned-out pipeline's segments here, and
    /// their segments' end offsets in `out`.
    pub fn ran_here(&mut self, out: engine::Encoded, ends: Vec<u32>) {
        if let Some(h) = &mut self.here {
            h.out = out;
            h.ends = ends;
        }
    }

    /// The client's replies, from the last core's answer.
    pub fn done(self, resp: Response) -> TaskDone {
        let (encoded, needs) = match resp {
            Response::Encoded { out, ends, needs } if ends.len() == self.n_segs => {
                match self.here {
                    Some(h) => {
                        let RanHere {
                            segs,
                            out: mine,
                            ends: my_ends,
                            me,
                            other,
                        } = *h;
                        // (Each core's part in `cores`' order.)
                        let theirs = (out, ends, 0, 0);
                        let mine = (mine, my_ends, 0, 0);
                        let (cores, mut parts) = match me < other {
                            true => ([me, other], [mine, theirs]),
                            false => ([other, me], [theirs, mine]),
                        };
                        let start = engine::Encoded {
                            bytes: self.head.clone(),
                            bigs: Vec::new(),
                        };
                        (interleave(start, &segs, &cores, &mut parts), needs)
                    }
                    None => (Some(out), needs),
                }
            }
            _ => (None, Vec::new()),
        };
        pipeline_done(
            self.conn,
            encoded,
            self.head,
            self.n_cmds,
            self.resp3,
            needs,
        )
    }
}

/// Write pipelines with this many segments (changes of core) or more run
/// under the locks of their cores rather than core to core.
const LOCKED_SEGS_MIN: usize = 32;

/// Puts the replies of a read pipeline back in the client's order: `parts`
/// holds each core's (in `cores`' order) encoded replies, its segments'
/// end offsets, and how far both have been taken. `None` if a core's
/// answer does not match its segments.
fn interleave(
    mut out: engine::Encoded,
    segs: &[Seg],
    cores: &[usize],
    parts: &mut [(engine::Encoded, Vec<u32>, usize, usize)],
) -> Option<engine::Encoded> {
    out.bytes
        .reserve(parts.iter().map(|p| p.0.bytes.len()).sum());
    for s in segs {
        let (part, ends, from, taken) = parts.get_mut(cores.binary_search(&s.core).ok()?)?;
        let end = *ends.get(*taken)? as usize;
        if end < *from || end > part.bytes.len() {
            return None;
        }
        out.extend_from(part, *from, end);
        *from = end;
        *taken += 1;
    }
    Some(out)
}

/// Holds shard locks; releases them when dropped, also when the task is
/// cancelled halfway (a lock request still queued is released right after
/// it is granted, since messages between two cores stay in order).
pub(super) struct Locks {
    rpc: Rc<Rpc>,
    pub(super) tx: TxId,
    sent: Vec<usize>,
    /// Some locked core has its writers paused for a manual failover:
    /// the holder must not write (it answers TRYAGAIN instead).
    pub(super) paused: bool,
}

impl Locks {
    pub(super) async fn take(rpc: &Rc<Rpc>, cores: &[usize]) -> Locks {
        Locks::take_with(rpc, cores, false).await
    }

    /// [`Locks::take`]; with `form`, the holder adds its command's form to
    /// the replication stream ([`Request::Lock`]).
    pub(super) async fn take_with(rpc: &Rc<Rpc>, cores: &[usize], form: bool) -> Locks {
        let mut sorted = cores.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut locks = Locks {
            rpc: rpc.clone(),
            tx: rpc.new_tx(),
            sent: Vec::new(),
            paused: false,
        };
        for &c in &sorted {
            locks.sent.push(c);
            if let Response::Granted { paused: true } = rpc
                .call(c, Request::Lock(locks.tx, sorted.clone(), form))
                .await
            {
                locks.paused = true;
            }
        }
        locks
    }
}

impl Locks {
    /// Releases the locks and waits until every core has: a core answers
    /// once its part of the transaction is closed in its log (and, with
    /// the AOF on, written; under `appendfsync always`, on disk). Then
    /// the cores are told the transaction is settled (they reveal what
    /// they recorded after their parts) and answer once effective past
    /// their parts, so the client's reply never comes before the
    /// transaction is durable on every core (see
    /// `persist::aof::CoreAof::hold_until_settled`).
    pub(super) async fn release(mut self) {
        let sent = std::mem::take(&mut self.sent);
        let tx = self.tx;
        call_each(&self.rpc, &sent, || Request::Unlock(tx)).await;
        call_each(&self.rpc, &sent, || Request::Settled(tx)).await;
    }
}

/// Sends `req()` to each of `cores` at once and waits for every answer.
async fn call_each(rpc: &Rc<Rpc>, cores: &[usize], req: impl Fn() -> Request) {
    let calls: Vec<_> = cores.iter().map(|&c| rpc.call(c, req())).collect();
    for call in calls {
        let _ = call.await;
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        // (Cancelled: nobody waits for the parts to be durable, so the
        // cores settle it at once.)
        for &c in &self.sent {
            self.rpc.tell(c, Request::Unlock(self.tx));
            self.rpc.tell(c, Request::Settled(self.tx));
        }
    }
}

/// Puts a command's form into the replication stream (the node's
/// replication room gives it; `None` while no replica takes the stream).
pub type FormSink = Box<dyn Fn(Vec<u8>, repl::merge::TxnPart)>;

/// A command whose keys live on several cores. With `form`, the replicas
/// get it as Redis propagates it (as a run on one core logs it) rather
/// than what each core rebuilt: the `DEL`s of keys the cores found
/// expired, then the command (`repl::merge` module doc).
#[allow(clippy::too_many_arguments)]
pub async fn multi_key(
    rpc: Rc<Rpc>,
    cores: Vec<usize>,
    spec: &'static Spec,
    db: usize,
    args: OwnedArgs,
    databases: usize,
    conn: Key,
    form: Option<FormSink>,
    split_writes: bool,
) -> TaskDone {
    if spec.has(flags::BLOCKING) {
        return blocking_across(rpc, cores, spec, db, args, databases, conn, form).await;
    }
    let write = spec.has(engine::cmd::flags::WRITE);
    let form = form.filter(|_| write);
    if let Some(split) = Split::of(&rpc, spec, &args, split_writes) {
        return split.run(&rpc, db, &args, form, conn).await;
    }
    let counted = matches!(spec.name, "del" | "unlink" | "exists" | "touch");
    let (locks, gathered) = if counted {
        let locks = Locks::take_with(&rpc, &cores, form.is_some()).await;
        (locks, Gathered::default())
    } else {
        let keys = match command_keys(spec, &args) {
            Ok(keys) => keys,
            Err(e) => return TaskDone::ran(conn, e, spec.name, std::time::Instant::now()),
        };
        lock_and_export(&rpc, &cores, form.is_some(), db, keys).await
    };
    if locks.paused && write {
        push_form(form.as_ref(), &locks, Vec::new());
        locks.release().await;
        return TaskDone::reply(conn, Reply::err(crate::mesh::WRITES_PAUSED));
    }
    let start = std::time::Instant::now();
    let (reply, bytes) = if counted {
        let (reply, logged) = count_per_core(&rpc, spec, db, &args, locks.tx).await;
        // DEL/UNLINK go as sent when they deleted something (the keys
        // found expired among them too); else the expired keys' DELs.
        match reply {
            Reply::Int(n) if n > 0 => (reply, command_form(db, &args)),
            _ => (reply, logged),
        }
    } else {
        let (reply, bytes, _) = run_gathered(
            &rpc,
            spec,
            db,
            &args,
            databases,
            form.is_some(),
            gathered,
            false,
        )
        .await;
        (reply, bytes)
    };
    push_form(form.as_ref(), &locks, bytes);
    locks.release().await;
    // (Each core counts its part of DEL, EXISTS...: `count_per_core`.)
    match counted {
        true => TaskDone::reply(conn, reply),
        false => TaskDone::ran(conn, reply, spec.name, start),
    }
}

/// A blocking command whose keys live on several cores (BLPOP, BZPOPMIN,
/// BLMOVE, XREAD ... BLOCK over keys of several cores, standalone mode).
/// It looks under the cores' locks like any multi-key command; when it
/// finds nothing, it parks a probe on each core holding keys it waits on,
/// before the locks go (so no write slips between the look and the
/// probes), and the first probe to answer decides: a key got data (look
/// again, with XREAD's `$` as resolved at the first look), the deadline
/// passed (the timeout reply), or CLIENT UNBLOCK (its reply). A client that
/// leaves drops the task, whose probes are then forgotten on their cores.
#[allow(clippy::too_many_arguments)]
async fn blocking_across(
    rpc: Rc<Rpc>,
    cores: Vec<usize>,
    spec: &'static Spec,
    db: usize,
    mut args: OwnedArgs,
    databases: usize,
    conn: Key,
    form: Option<FormSink>,
) -> TaskDone {
    let write = spec.has(flags::WRITE);
    let form = form.filter(|_| write);
    let mut deadline: Option<Option<i64>> = None;
    let mut waited = std::time::Duration::ZERO;
    let start = std::time::Instant::now();
    // Counted once, for its runs (Redis counts a blocked command when it
    // is served, without the wait).
    let done = |reply: Reply, waited: std::time::Duration| {
        let mut d = TaskDone::ran(conn, reply, spec.name, start);
        if let Some(super::task::Effect::Ran(ran)) = d.effects.last_mut() {
            ran.nanos = ran.nanos.saturating_sub(waited.as_nanos() as u64);
        }
        if !waited.is_zero() {
            d.effects
                .push(super::task::Effect::Waited(waited.as_micros() as u64));
        }
        d
    };
    loop {
        let keys = match command_keys(spec, &args) {
            Ok(keys) => keys,
            Err(e) => return done(e, waited),
        };
        let (locks, gathered) = lock_and_export(&rpc, &cores, form.is_some(), db, keys).await;
        if locks.paused && write {
            push_form(form.as_ref(), &locks, Vec::new());
            locks.release().await;
            // (Not run: not counted.)
            let mut d = done(Reply::err(crate::mesh::WRITES_PAUSED), waited);
            d.effects
                .retain(|e| !matches!(e, super::task::Effect::Ran(..)));
            return d;
        }
        let (reply, bytes, block) = run_gathered(
            &rpc,
            spec,
            db,
            &args,
            databases,
            form.is_some(),
            gathered,
            true,
        )
        .await;
        push_form(form.as_ref(), &locks, bytes);
        let Some(block) = block else {
            locks.release().await;
            return done(reply, waited);
        };
        if deadline.is_none() {
            deadline = Some(block.deadline_ms);
            if let Some(argv) = &block.rerun {
                args = OwnedArgs::from_iter(argv.iter().map(|a| &a[..]));
            }
        }
        let until = deadline.flatten();
        let mut by_core: Vec<(usize, Vec<Bytes>)> = Vec::new();
        for k in block.keys {
            let c = rpc.mesh.slots.core_of(engine::slot::slot_of(&k));
            match by_core.iter_mut().find(|(x, _)| *x == c) {
                Some((_, v)) => v.push(k),
                None => by_core.push((c, vec![k])),
            }
        }
        let probes: Vec<_> = by_core
            .into_iter()
            .enumerate()
            .map(|(i, (c, keys))| {
                rpc.call(
                    c,
                    Request::Probe {
                        conn,
                        db,
                        keys,
                        deadline_ms: until,
                        counted: i == 0,
                    },
                )
            })
            .collect();
        locks.release().await;
        if probes.is_empty() {
            return done(reply, waited);
        }
        let since = std::time::Instant::now();
        let answer = first_reply(FirstOf(probes).await);
        waited += since.elapsed();
        match answer {
            Reply::Int(1) => continue,
            Reply::Int(_) => return done(reply, waited),
            other => return done(other, waited),
        }
    }
}

/// The answer of whichever of its calls answers first; the others are
/// dropped (a probe's drop forgets it on its core).
struct FirstOf(Vec<super::task::Call>);

impl std::future::Future for FirstOf {
    type Output = Response;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Response> {
        for call in self.0.iter_mut() {
            if let std::task::Poll::Ready(r) = std::pin::Pin::new(call).poll(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        std::task::Poll::Pending
    }
}

/// A multi-key command that each core can run on its own keys: MGET,
/// MSET, DEL, UNLINK, EXISTS and TOUCH. Its parts go right behind the lock
/// requests ([`lock_and_run`]), so it costs one round trip per core plus
/// the unlock, and no value is copied out of its core.
struct Split {
    /// Per core (ascending), its part and where its keys sit in the
    /// command (MGET's replies go back there).
    parts: Vec<(usize, OwnedArgs, Vec<usize>)>,
    merge: SplitMerge,
}

enum SplitMerge {
    /// MGET: one array, in the keys' order.
    Array(usize),
    /// DEL, UNLINK, EXISTS, TOUCH: the counts add up.
    Sum,
    /// MSET.
    Ok,
}

impl Split {
    /// The split of `args`, if `spec` splits (writes only with
    /// `split_writes`: a core that refused its part for memory would leave
    /// the others' done). Keyspace events keep the generic paths, which
    /// emit them in the keys' order; cluster mode has no command over
    /// several cores.
    fn of(
        rpc: &Rc<Rpc>,
        spec: &'static Spec,
        args: &OwnedArgs,
        split_writes: bool,
    ) -> Option<Split> {
        if notify_on() || CLUSTER_MODE.with(|c| c.get()) {
            return None;
        }
        let a = args.as_args();
        let (merge, step) = match spec.name {
            "mget" => (SplitMerge::Array(a.len() - 1), 1),
            "exists" | "touch" => (SplitMerge::Sum, 1),
            "del" | "unlink" if split_writes => (SplitMerge::Sum, 1),
            // An odd count is MSET's own arity error, answered by the
            // generic path.
            "mset" if split_writes && a.len() % 2 == 1 => (SplitMerge::Ok, 2),
            _ => return None,
        };
        let mut parts: Vec<(usize, OwnedArgs, Vec<usize>)> = Vec::new();
        let mut i = 1;
        while i < a.len() {
            let c = rpc.mesh.slots.core_of(engine::slot::slot_of(a.get(i)));
            let at = match parts.iter().position(|p| p.0 == c) {
                Some(at) => at,
                None => {
                    parts.push((c, OwnedArgs::from_iter([a.get(0)]), Vec::new()));
                    parts.len() - 1
                }
            };
            let part = &mut parts[at];
            for j in i..i + step {
                part.1.push(a.get(j));
            }
            part.2.push(i - 1);
            i += step;
        }
        parts.sort_by_key(|p| p.0);
        Some(Split { parts, merge })
    }

    async fn run(
        self,
        rpc: &Rc<Rpc>,
        db: usize,
        args: &OwnedArgs,
        form: Option<FormSink>,
        conn: Key,
    ) -> TaskDone {
        // Without a form for the replicas, the split commands of this
        // core's turn go together under one set of locks.
        if form.is_none() {
            return TaskDone::reply(conn, Joint::run(rpc, db, self).await);
        }
        // (The command counts on its first part's core.)
        let runs: Vec<(usize, Vec<OwnedArgs>, Vec<bool>)> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, (c, p, _))| (*c, vec![p.clone()], vec![i == 0]))
            .collect();
        let (locks, answers) = lock_and_run(rpc, runs, db, true).await;
        let mut logged = Vec::new();
        let answers = answers
            .into_iter()
            .map(|a| match a.unlog(&mut logged) {
                Response::Replies(mut r) if !r.is_empty() => r.swap_remove(0),
                _ => Reply::err("ERR internal error: unexpected answer from a shard"),
            })
            .collect();
        let reply = self.merge(answers);
        // Writes go to the replicas as sent when they changed something
        // (the keys found expired among them too); else the expired
        // keys' DELs.
        let bytes = match (&self.merge, &reply) {
            (SplitMerge::Ok, _) => command_form(db, args),
            (SplitMerge::Sum, Reply::Int(n)) if *n > 0 => command_form(db, args),
            _ => logged,
        };
        push_form(form.as_ref(), &locks, bytes);
        locks.release().await;
        TaskDone::reply(conn, reply)
    }

    /// The command's reply from its parts' replies (in `parts`' order).
    fn merge(&self, answers: Vec<Reply>) -> Reply {
        let mut failed = None;
        let mut total = 0i64;
        let mut items = match self.merge {
            SplitMerge::Array(n) => vec![Reply::Nil; n],
            _ => Vec::new(),
        };
        for ((_, _, at), reply) in self.parts.iter().zip(answers) {
            match (reply, &self.merge) {
                (Reply::Array(vals), SplitMerge::Array(_)) => {
                    for (v, &i) in vals.into_iter().zip(at) {
                        items[i] = v;
                    }
                }
                (Reply::Int(n), SplitMerge::Sum) => total += n,
                (Reply::Ok, SplitMerge::Ok) => {}
                (other, _) => failed = failed.or(Some(other)),
            }
        }
        failed.unwrap_or(match self.merge {
            SplitMerge::Array(_) => Reply::Array(items),
            SplitMerge::Sum => Reply::Int(total),
            SplitMerge::Ok => Reply::Ok,
        })
    }
}

thread_local! {
    /// This core's joints ([`Joint`]).
    static JOINTS: std::cell::RefCell<Joints> = const {
        std::cell::RefCell::new(Joints { open: None, running: false, next: None })
    };
}

/// A core's joints: the one gathering commands, and whether one runs
/// (then the gathering one waits for it: its first command's waker).
struct Joints {
    open: Option<Rc<Joint>>,
    running: bool,
    next: Option<std::task::Waker>,
}

/// Split commands of one core's turn (one database), run as one
/// transaction: the first to start opens the joint and lets the turn's
/// other tasks run; those that find it open join it; then the first takes
/// the locks of every core any of them needs, sends each core its parts
/// of all of them in one request right behind its lock request, and hands
/// each its reply. Each command is still atomic (nothing runs on a locked
/// core but the joint's parts, in order), and a turn's many clients pay
/// one round of locks instead of one each, which with many clients would
/// hold the cores' locks one after another.
///
/// The command that opens a joint runs it for the others: its task runs
/// to its end even if its client leaves ([`joins`]).
struct Joint {
    db: usize,
    /// The commands, in the order they joined.
    members: std::cell::RefCell<Vec<Split>>,
    /// Each member's reply once the joint has run, and its waker.
    replies: std::cell::RefCell<Vec<(Option<Reply>, Option<std::task::Waker>)>>,
}

impl Joint {
    async fn run(rpc: &Rc<Rpc>, db: usize, split: Split) -> Reply {
        let open = JOINTS.with(|j| j.borrow().open.clone());
        if let Some(joint) = open.as_ref().filter(|j| j.db == db) {
            let joint = joint.clone();
            let i = joint.members.borrow().len();
            joint.members.borrow_mut().push(split);
            joint.replies.borrow_mut().push((None, None));
            return JointReply { joint, i }.await;
        }
        let joint = Rc::new(Joint {
            db,
            members: std::cell::RefCell::new(vec![split]),
            replies: std::cell::RefCell::new(vec![(None, None)]),
        });
        // (A joint of another database is open: this one starts its own
        // without gathering.)
        let gathers = open.is_none();
        if gathers {
            JOINTS.with(|j| j.borrow_mut().open = Some(joint.clone()));
        }
        // The turn's other tasks run (and join) before this one goes on,
        // and while a joint runs, the commands that come meanwhile join
        // this one, which goes once it is done.
        YieldOnce(false).await;
        if gathers {
            JointTurn.await;
        }
        let _running = gathers.then_some(JointRunning);
        let mut members = std::mem::take(&mut *joint.members.borrow_mut());
        // Per core (ascending): its parts of every member, and whose.
        let cores = rpc.mesh.cores();
        let mut runs: Vec<(usize, Vec<OwnedArgs>, Vec<bool>)> =
            (0..cores).map(|c| (c, Vec::new(), Vec::new())).collect();
        let mut whose: Vec<Vec<usize>> = vec![Vec::new(); cores];
        for (m, split) in members.iter_mut().enumerate() {
            // (Each member counts on its first part's core.)
            for (i, (c, part, _)) in split.parts.iter_mut().enumerate() {
                runs[*c].1.push(std::mem::take(part));
                runs[*c].2.push(i == 0);
                whose[*c].push(m);
            }
        }
        let (runs, whose): (Vec<_>, Vec<_>) = runs
            .into_iter()
            .zip(whose)
            .filter(|(r, _)| !r.1.is_empty())
            .unzip();
        let counts: Vec<usize> = runs.iter().map(|r| r.1.len()).collect();
        let (locks, answers) = lock_and_run(rpc, runs, db, false).await;
        locks.release().await;
        // Each member's part replies, in its parts' (ascending core) order.
        let mut parts: Vec<Vec<Reply>> = members.iter().map(|_| Vec::new()).collect();
        for ((answer, whose), n) in answers.into_iter().zip(whose).zip(counts) {
            let replies = match answer.unlog(&mut Vec::new()) {
                Response::Replies(r) if r.len() == n => r,
                _ => vec![Reply::err("ERR internal error: unexpected answer from a shard"); n],
            };
            for (reply, m) in replies.into_iter().zip(whose) {
                parts[m].push(reply);
            }
        }
        let mut replies = joint.replies.borrow_mut();
        let mut mine = None;
        for (m, (split, answers)) in members.iter().zip(parts).enumerate() {
            let reply = split.merge(answers);
            if m == 0 {
                mine = Some(reply);
            } else {
                replies[m].0 = Some(reply);
                if let Some(w) = replies[m].1.take() {
                    w.wake();
                }
            }
        }
        mine.unwrap_or_else(|| Reply::err("ERR internal error: no reply"))
    }
}

/// The gathering joint's wait for the running one to finish; then it
/// stops gathering and is the running one.
struct JointTurn;

impl std::future::Future for JointTurn {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        JOINTS.with(|j| {
            let mut j = j.borrow_mut();
            if j.running {
                j.next = Some(cx.waker().clone());
                return std::task::Poll::Pending;
            }
            j.running = true;
            j.open = None;
            std::task::Poll::Ready(())
        })
    }
}

/// Marks the running joint done when dropped, and wakes the gathering
/// one.
struct JointRunning;

impl Drop for JointRunning {
    fn drop(&mut self) {
        let next = JOINTS.with(|j| {
            let mut j = j.borrow_mut();
            j.running = false;
            j.next.take()
        });
        if let Some(w) = next {
            w.wake();
        }
    }
}

/// A joint member's wait for its reply.
struct JointReply {
    joint: Rc<Joint>,
    i: usize,
}

impl std::future::Future for JointReply {
    type Output = Reply;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Reply> {
        let mut replies = self.joint.replies.borrow_mut();
        let slot = &mut replies[self.i];
        match slot.0.take() {
            Some(r) => std::task::Poll::Ready(r),
            None => {
                slot.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

/// Pending once (waking itself), then ready: lets the executor poll the
/// other tasks ready now first.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Whether `spec` may run as a joint's first command, which must run to
/// its end whatever its client does (the caller spawns it so).
pub fn joins(spec: &'static Spec) -> bool {
    matches!(
        spec.name,
        "mget" | "mset" | "del" | "unlink" | "exists" | "touch"
    )
}

/// Takes the locks of `runs`' cores (ascending, one run per core) for a
/// new transaction, sending each core's commands right behind its lock
/// request: a request of a transaction waits behind that transaction's
/// lock, so the core runs them once the lock is this one's, and a run costs
/// no round trip of its own. Returns the locks and each run's answer, in
/// `runs`' order.
async fn lock_and_run(
    rpc: &Rc<Rpc>,
    runs: Vec<(usize, Vec<OwnedArgs>, Vec<bool>)>,
    db: usize,
    form: bool,
) -> (Locks, Vec<Response>) {
    let cores: Vec<usize> = runs.iter().map(|r| r.0).collect();
    let mut locks = Locks {
        rpc: rpc.clone(),
        tx: rpc.new_tx(),
        sent: Vec::new(),
        paused: false,
    };
    let mut calls = Vec::with_capacity(runs.len());
    for (c, cmds, counts) in runs {
        locks.sent.push(c);
        let lock = rpc.call(c, Request::Lock(locks.tx, cores.clone(), form));
        let mut req = exec_req(db, cmds, Some(locks.tx), false);
        if let Request::Exec { counts: c, .. } = &mut req {
            *c = counts;
        }
        calls.push(rpc.call(c, req));
        if let Response::Granted { paused: true } = lock.await {
            locks.paused = true;
        }
    }
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.push(call.await);
    }
    (locks, answers)
}

/// A command as its own form: `SELECT db` and the arguments as sent.
fn command_form(db: usize, args: &OwnedArgs) -> Vec<u8> {
    let mut b = Vec::new();
    let n = db.to_string();
    engine::writelog::encode(&mut b, [&b"SELECT"[..], n.as_bytes()].into_iter());
    engine::writelog::encode(&mut b, args.as_args().iter());
    b
}

/// The form's part of `locks`' transaction (one part per locked core, and
/// this one), when it has one.
pub(super) fn push_form(sink: Option<&FormSink>, locks: &Locks, bytes: Vec<u8>) {
    if let Some(sink) = sink {
        sink(
            bytes,
            repl::merge::TxnPart {
                id: locks.tx.repl_id(),
                parts: locks.sent.len() as u32 + 1,
                form: true,
            },
        );
    }
}

/// DEL, UNLINK, EXISTS and TOUCH across cores: each core runs the command
/// on its own keys (duplicates kept, so the counts are Redis's) and the
/// counts add up. No value leaves its core (a 200 MB value or a 1M-field
/// hash is not copied to be deleted). The caller holds the locks.
async fn count_per_core(
    rpc: &Rc<Rpc>,
    spec: &'static Spec,
    db: usize,
    args: &OwnedArgs,
    tx: TxId,
) -> (Reply, Vec<u8>) {
    let cores = rpc.mesh.cores();
    let a = args.as_args();
    let calls: Vec<_> = if notify_on() {
        // Keyspace events in the keys' order, as Redis emits them: one
        // core's run of keys at a time.
        let mut runs: Vec<(usize, OwnedArgs)> = Vec::new();
        for k in a.iter_from(1) {
            let c = rpc.mesh.slots.core_of(engine::slot::slot_of(k));
            match runs.last_mut() {
                Some((rc, cmd)) if *rc == c => cmd.push(k),
                _ => {
                    let mut cmd = OwnedArgs::from_iter([a.get(0)]);
                    cmd.push(k);
                    runs.push((c, cmd));
                }
            }
        }
        let mut done = Vec::with_capacity(runs.len());
        for (i, (c, cmd)) in runs.into_iter().enumerate() {
            let r = rpc
                .call(c, part_req(db, vec![cmd], Some(tx), false, i == 0))
                .await;
            done.push(Box::pin(std::future::ready(r))
                as std::pin::Pin<Box<dyn std::future::Future<Output = Response>>>);
        }
        done
    } else {
        let mut per: Vec<Option<OwnedArgs>> = (0..cores).map(|_| None).collect();
        for k in a.iter_from(1) {
            let c = rpc.mesh.slots.core_of(engine::slot::slot_of(k));
            per[c]
                .get_or_insert_with(|| OwnedArgs::from_iter([a.get(0)]))
                .push(k);
        }
        let mut first = true;
        per.into_iter()
            .enumerate()
            .filter_map(|(c, cmd)| {
                let req = part_req(db, vec![cmd?], Some(tx), false, first);
                first = false;
                let call = rpc.call(c, req);
                Some(Box::pin(call)
                    as std::pin::Pin<
                        Box<dyn std::future::Future<Output = Response>>,
                    >)
            })
            .collect()
    };
    let mut total = 0i64;
    let mut logged = Vec::new();
    let mut failed = None;
    for call in calls {
        match call.await.unlog(&mut logged) {
            Response::Replies(mut r) => match r.pop() {
                Some(Reply::Int(n)) => total += n,
                Some(other) => failed = failed.or(Some(other)),
                None => {}
            },
            _ => {
                let e = Reply::err(format!("ERR {} failed on a core", spec.name));
                failed = failed.or(Some(e));
            }
        }
    }
    (failed.unwrap_or(Reply::Int(total)), logged)
}

/// Copies the command's keys into a scratch keyspace, runs it there, and
/// writes back what it changed. The caller holds the locks of every core
/// involved.
pub(super) async fn gather_run_scatter(
    rpc: &Rc<Rpc>,
    spec: &'static Spec,
    db: usize,
    args: &OwnedArgs,
    databases: usize,
    form: bool,
) -> (Reply, Vec<u8>) {
    let keys = match command_keys(spec, args) {
        Ok(keys) => keys,
        Err(e) => return (e, Vec::new()),
    };
    let gathered = export(rpc, db, keys).await;
    let (reply, bytes, _) =
        run_gathered(rpc, spec, db, args, databases, form, gathered, false).await;
    (reply, bytes)
}

/// [`gather_run_scatter`] with the keys given: SORT's BY and GET patterns
/// name keys its data decides. The source is fetched first, the keys its
/// elements name next, and SORT runs on the scratch keyspace as on a core.
/// The caller holds every core's lock.
pub(super) async fn sort_gathered(
    rpc: &Rc<Rpc>,
    spec: &'static Spec,
    db: usize,
    args: &OwnedArgs,
    databases: usize,
    form: bool,
) -> (Reply, Vec<u8>) {
    let a = args.as_args();
    let src = Bytes::copy_from_slice(a.get(1));
    let c = rpc.mesh.slots.core_of(engine::slot::slot_of(&src));
    let mut logged = Vec::new();
    let source = match rpc
        .call(
            c,
            Request::Export {
                db,
                keys: vec![src.clone()],
                tx: None,
            },
        )
        .await
        .unlog(&mut logged)
    {
        Response::Entries(mut e) => e.pop().and_then(|(_, v)| v),
        _ => None,
    };
    let mut keys = engine::cmd::sort::pattern_keys(&a, source.as_ref().map(|(v, _)| v));
    let mut idx = Vec::new();
    if spec.key_indices(&a, &mut idx).is_ok() {
        keys.extend(idx.iter().map(|&i| Bytes::copy_from_slice(a.get(i))));
    }
    let gathered = export(rpc, db, keys).await;
    let (reply, bytes, _) =
        run_gathered(rpc, spec, db, args, databases, form, gathered, false).await;
    logged.extend(bytes);
    (reply, logged)
}

/// The keys of `args` (`spec`'s key positions), or the error of a key
/// count that does not hold.
fn command_keys(spec: &'static Spec, args: &OwnedArgs) -> Result<Vec<Bytes>, Reply> {
    let a = args.as_args();
    let mut idx = Vec::new();
    spec.key_indices(&a, &mut idx)?;
    Ok(idx
        .iter()
        .map(|&i| Bytes::copy_from_slice(a.get(i)))
        .collect())
}

/// A command's keys as their cores exported them, and the DELs the cores
/// logged for keys they found expired.
#[derive(Default)]
struct Gathered {
    entries: Vec<(Bytes, Exported)>,
    logged: Vec<u8>,
}

impl Gathered {
    fn take(&mut self, answer: Response) {
        if let Response::Entries(e) = answer.unlog(&mut self.logged) {
            self.entries.extend(e);
        }
    }
}

/// `keys` by core (ascending), each key once.
fn keys_by_core(rpc: &Rpc, keys: Vec<Bytes>) -> Vec<(usize, Vec<Bytes>)> {
    let mut by_core: Vec<Vec<Bytes>> = vec![Vec::new(); rpc.mesh.cores()];
    for k in keys {
        let c = rpc.mesh.slots.core_of(engine::slot::slot_of(&k));
        if !by_core[c].contains(&k) {
            by_core[c].push(k);
        }
    }
    by_core
        .into_iter()
        .enumerate()
        .filter(|(_, keys)| !keys.is_empty())
        .collect()
}

/// Exports `keys` from their cores, all at once (the caller holds their
/// locks).
async fn export(rpc: &Rc<Rpc>, db: usize, keys: Vec<Bytes>) -> Gathered {
    let exports: Vec<_> = keys_by_core(rpc, keys)
        .into_iter()
        .map(|(c, keys)| rpc.call(c, Request::Export { db, keys, tx: None }))
        .collect();
    let mut g = Gathered::default();
    for e in exports {
        g.take(e.await);
    }
    g
}

/// Takes the locks of `cores` (ascending) for a new transaction and
/// exports `keys` (on those cores), each core's export sent right behind
/// its lock request, as [`lock_and_run`] does.
async fn lock_and_export(
    rpc: &Rc<Rpc>,
    cores: &[usize],
    form: bool,
    db: usize,
    keys: Vec<Bytes>,
) -> (Locks, Gathered) {
    let mut sorted = cores.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut by_core = keys_by_core(rpc, keys);
    let mut locks = Locks {
        rpc: rpc.clone(),
        tx: rpc.new_tx(),
        sent: Vec::new(),
        paused: false,
    };
    let mut exports = Vec::with_capacity(by_core.len());
    for &c in &sorted {
        locks.sent.push(c);
        let lock = rpc.call(c, Request::Lock(locks.tx, sorted.clone(), form));
        if let Some(i) = by_core.iter().position(|(k, _)| *k == c) {
            let keys = std::mem::take(&mut by_core[i].1);
            let tx = Some(locks.tx);
            exports.push(rpc.call(c, Request::Export { db, keys, tx }));
        }
        if let Response::Granted { paused: true } = lock.await {
            locks.paused = true;
        }
    }
    debug_assert!(
        by_core.iter().all(|(_, k)| k.is_empty()),
        "keys outside the locked cores"
    );
    let mut g = Gathered::default();
    for e in exports {
        g.take(e.await);
    }
    (locks, g)
}

/// Runs `spec` in a scratch keyspace on the keys `gathered`, and writes
/// back what it changed. With `may_block`, a blocking command that found
/// nothing says what it waits for (it changed nothing).
#[allow(clippy::too_many_arguments)]
async fn run_gathered(
    rpc: &Rc<Rpc>,
    spec: &'static Spec,
    db: usize,
    args: &OwnedArgs,
    databases: usize,
    form: bool,
    gathered: Gathered,
    may_block: bool,
) -> (Reply, Vec<u8>, Option<engine::cmd::Block>) {
    let a = args.as_args();
    let Gathered {
        entries: gathered,
        mut logged,
    } = gathered;
    let (reply, writes, bytes, events, block) = run_on_scratch(
        spec,
        db,
        a,
        databases,
        gathered,
        &rpc.mesh.slots,
        form,
        may_block,
    );
    logged.extend(bytes);
    publish_scratch_events(rpc, events);
    // Deletions written back free as the command would have locally.
    let why = match spec.name {
        "unlink" => Why::Unlink,
        "del" => Why::UserDel,
        _ => Why::ServerDel,
    };
    let mut imports = Vec::new();
    for (c, w) in writes.into_iter().enumerate() {
        let mut by_db: Vec<(usize, Vec<(Bytes, Exported)>)> = Vec::new();
        for (d, k, e) in w {
            match by_db.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push((k, e)),
                None => by_db.push((d, vec![(k, e)])),
            }
        }
        for (d, entries) in by_db {
            imports.push(rpc.call(
                c,
                Request::Import {
                    db: d,
                    entries,
                    why,
                    del_events: false,
                },
            ));
        }
    }
    for import in imports {
        let _ = import.await;
    }
    (reply, logged, block)
}

type Writes = Vec<Vec<(usize, Bytes, Exported)>>;

thread_local! {
    /// One scratch keyspace per core, reused: its per-slot table is large
    /// to allocate, and [`run_on_scratch`] never awaits, so tasks cannot
    /// interleave on it.
    static SCRATCH: std::cell::RefCell<Option<engine::Shard>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// This core's encoding thresholds (CONFIG SET updates them), which
    /// the scratch keyspace applies to what it builds.
    static LIMITS: std::cell::Cell<engine::value::EncodingLimits> = std::cell::Cell::new(engine::value::EncodingLimits::default());
}

/// Sets the encoding thresholds multi-core commands on this core use.
pub fn set_limits(l: engine::value::EncodingLimits) {
    LIMITS.with(|c| c.set(l));
}

thread_local! {
    /// Cluster mode, which the scratch keyspace's commands obey as the
    /// cores' do (SORT refuses BY and GET patterns).
    static CLUSTER_MODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells the scratch keyspace of this core whether the node is in
/// cluster mode.
pub fn set_cluster_mode(on: bool) {
    CLUSTER_MODE.with(|c| c.set(on));
}

thread_local! {
    /// This core's `notify-keyspace-events` classes, which the scratch
    /// keyspace collects events of.
    static NOTIFY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Sets the keyspace event classes multi-core commands on this core emit.
pub fn set_notify(flags: u32) {
    NOTIFY.with(|c| c.set(flags));
}

/// Keyspace notifications are on (their order across cores matters).
pub(super) fn notify_on() -> bool {
    NOTIFY.with(|c| c.get()) != 0
}

thread_local! {
    /// `slowlog-log-slower-than 0`: every command is logged, so the order
    /// in which a transaction's commands run on several cores shows.
    static SLOW_ALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets whether this core's slow log takes every command.
pub fn set_slow_all(on: bool) {
    SLOW_ALL.with(|c| c.set(on));
}

/// Publishes keyspace events a scratch run collected, from this core: to
/// every core with subscribers (this one by message too, in order with
/// the others).
fn publish_scratch_events(rpc: &Rpc, events: Vec<engine::notify::Event>) {
    if events.is_empty() {
        return;
    }
    let flags = NOTIFY.with(|c| c.get());
    let mut msgs = Vec::with_capacity(events.len() * 2);
    for e in &events {
        e.messages(flags, &mut msgs);
    }
    let msgs = std::sync::Arc::new(msgs);
    for (c, n) in rpc.mesh.subscriptions.iter().enumerate() {
        if n.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            rpc.tell(c, Request::Notify(msgs.clone()));
        }
    }
}

/// What a scratch run gives: its reply, per core the keys it changed, what
/// it logged, its keyspace events, and what it would block on.
type ScratchRun = (
    Reply,
    Writes,
    Vec<u8>,
    Vec<engine::notify::Event>,
    Option<engine::cmd::Block>,
);

/// Runs `spec` on a scratch keyspace holding `gathered`; returns its reply,
/// per core the keys it changed (moved out, so the scratch is empty again
/// afterwards), and with `form` what the run logged: the command as Redis
/// propagates it. Without `may_block` a blocking command answers as in
/// MULTI; with it, one that found nothing also says what it waits for.
#[allow(clippy::too_many_arguments)]
fn run_on_scratch(
    spec: &'static Spec,
    db: usize,
    args: engine::Args,
    databases: usize,
    gathered: Vec<(Bytes, Exported)>,
    slots: &super::SlotTable,
    form: bool,
    may_block: bool,
) -> ScratchRun {
    let cores = slots.cores();
    let now = crate::shared::now_ms();
    let mut scratch = SCRATCH
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| engine::Shard::new(databases, now as u64));
    scratch.limits = LIMITS.with(|c| c.get());
    scratch.cluster_mode = CLUSTER_MODE.with(|c| c.get());
    // The scratch holds copies: big ones are freed off this core whatever
    // the directives, and not counted by INFO (the owners count theirs).
    scratch.lazy = engine::lazyfree::Settings::ALL;
    let mut placed = Vec::with_capacity(gathered.len());
    for (k, e) in gathered {
        if let Some((v, exp)) = e {
            scratch.set(db, &k, v, now);
            scratch.dbs[db].set_expire(&k, exp);
            placed.push(k);
        }
    }
    scratch.track_touched(true);
    if form {
        scratch.enable_log();
    }
    // Events of the command only: the keys placed above are not new.
    scratch.notify_flags = NOTIFY.with(|c| c.get());
    let mut ctx = engine::cmd::Ctx::new(&mut scratch, db, now, args);
    ctx.in_multi = !may_block;
    let reply = engine::cmd::execute(spec, &mut ctx);
    let block = ctx.block.take();
    scratch.notify_flags = 0;
    let events = scratch.take_events();
    let mut bytes = Vec::new();
    if let Some(log) = scratch.write_log() {
        log.take(&mut bytes);
    }
    scratch.disable_log();
    let mut touched = scratch.take_touched();
    scratch.track_touched(false);
    touched.sort();
    touched.dedup();
    let mut writes: Writes = vec![Vec::new(); cores];
    for (d, k) in touched {
        let d = d as usize;
        let e = scratch.dbs[d].remove(&k).map(|e| {
            let exp = e.expire_at();
            (e.into_value(), exp)
        });
        let c = slots.core_of(engine::slot::slot_of(&k));
        writes[c].push((d, Bytes::copy_from_slice(&k), e));
    }
    for k in placed {
        if let Some(e) = scratch.dbs[db].remove(&k) {
            scratch.free_entry(e, Why::ServerDel);
        }
    }
    debug_assert_eq!(scratch.key_count(), 0, "scratch left empty");
    crate::shared::free_later(
        scratch
            .take_garbage()
            .into_iter()
            .map(engine::lazyfree::Garbage::not_counted)
            .collect(),
    );
    SCRATCH.with(|s| *s.borrow_mut() = Some(scratch));
    (reply, writes, bytes, events, block)
}

/// Sends `args` to every core and merges the answers per the command's
/// merge rule.
pub(super) async fn fanout_reply(
    rpc: &Rc<Rpc>,
    cores: usize,
    spec: &'static Spec,
    db: usize,
    args: &OwnedArgs,
    tx: Option<TxId>,
    form: Option<&mut Vec<u8>>,
) -> Reply {
    let calls: Vec<_> = (0..cores)
        .map(|c| {
            rpc.call(
                c,
                part_req(db, vec![args.clone()], tx, tx.is_some(), c == 0),
            )
        })
        .collect();
    let mut replies = Vec::with_capacity(cores);
    let mut logged = Vec::new();
    for call in calls {
        replies.push(first_reply(call.await.unlog(&mut logged)));
    }
    // Redis propagates it once (FLUSHALL, FLUSHDB...).
    if let Some(form) = form {
        if !logged.is_empty() {
            form.extend(command_form(db, args));
        }
    }
    merge(spec.merge, replies)
}

/// Combines per-core replies.
pub fn merge(rule: Merge, replies: Vec<Reply>) -> Reply {
    if let Some(e) = replies.iter().find(|r| r.is_error()) {
        return e.clone();
    }
    match rule {
        Merge::SumInt => Reply::Int(
            replies
                .iter()
                .map(|r| if let Reply::Int(n) = r { *n } else { 0 })
                .sum(),
        ),
        Merge::Concat => Reply::Array(
            replies
                .into_iter()
                .flat_map(|r| match r {
                    Reply::Array(v) | Reply::Set(v) => v,
                    _ => Vec::new(),
                })
                .collect(),
        ),
        Merge::AnyNonNil => {
            let mut live: Vec<Reply> = replies
                .into_iter()
                .filter(|r| !matches!(r, Reply::Nil | Reply::NilArray))
                .collect();
            if live.is_empty() {
                Reply::Nil
            } else {
                let pick = (crate::shared::now_ms() as usize) % live.len();
                live.swap_remove(pick)
            }
        }
        Merge::AllOk | Merge::None => replies.into_iter().next().unwrap_or(Reply::Ok),
    }
}

/// A command that runs on every core (DBSIZE, KEYS, FLUSHALL, ...).
pub async fn fanout(
    rpc: Rc<Rpc>,
    cores: usize,
    spec: &'static Spec,
    db: usize,
    args: OwnedArgs,
    conn: Key,
) -> TaskDone {
    TaskDone::reply(
        conn,
        fanout_reply(&rpc, cores, spec, db, &args, None, None).await,
    )
}

/// PUBLISH / SPUBLISH: every core delivers to its own subscribers.
pub async fn publish(
    rpc: Rc<Rpc>,
    channel: Bytes,
    message: Bytes,
    sharded: bool,
    conn: Key,
) -> TaskDone {
    TaskDone::reply(
        conn,
        Reply::Int(publish_count(&rpc, channel, message, sharded).await),
    )
}

pub(super) async fn publish_count(
    rpc: &Rc<Rpc>,
    channel: Bytes,
    message: Bytes,
    sharded: bool,
) -> i64 {
    let calls: Vec<_> = (0..rpc.mesh.cores())
        .map(|c| {
            rpc.call(
                c,
                Request::Publish {
                    channel: channel.clone(),
                    message: message.clone(),
                    sharded,
                },
            )
        })
        .collect();
    let mut n = 0;
    for call in calls {
        if let Response::Count(c) = call.await {
            n += c;
        }
    }
    n
}

/// WATCH: registers each key with its owner and records the versions.
pub async fn watch(rpc: Rc<Rpc>, db: usize, keys: Vec<Bytes>, conn: Key) -> TaskDone {
    let cores = rpc.mesh.cores();
    let mut by_core: Vec<Vec<Bytes>> = vec![Vec::new(); cores];
    for k in keys {
        by_core[rpc.mesh.slots.core_of(engine::slot::slot_of(&k))].push(k);
    }
    let mut watched = Vec::new();
    for (c, keys) in by_core.into_iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        if let Response::Versions(v) = rpc
            .call(
                c,
                Request::Watch {
                    db,
                    keys: keys.clone(),
                },
            )
            .await
        {
            watched.extend(keys.into_iter().zip(v).map(|(k, ver)| (c, db, k, ver)));
        }
    }
    TaskDone {
        conn,
        replies: vec![Reply::Ok],
        effects: vec![Effect::Watched(watched)],
        encoded: engine::Encoded::default(),
    }
}

/// EXEC: runs the queued commands atomically across however many cores
/// they touch, unless a WATCHed key changed; then drops the WATCHes.
#[allow(clippy::too_many_arguments)]
pub async fn exec(
    rpc: Rc<Rpc>,
    bus: Option<std::sync::Arc<super::Bus>>,
    db: usize,
    cmds: Vec<OwnedArgs>,
    watches: Vec<(usize, usize, Bytes, u64)>,
    (databases, scripts_ro): (usize, bool),
    conn: Key,
    form: Option<FormSink>,
) -> TaskDone {
    // Dropped after the check, not before: dropping the last WATCH of a key
    // forgets its version. Messages to a core stay in order, so the
    // UNWATCHes follow the transaction's own requests, also if the client
    // goes away midway.
    let guard = Unwatch {
        rpc: rpc.clone(),
        watches,
    };
    exec_checked(
        &rpc,
        bus.as_deref(),
        db,
        cmds,
        &guard.watches,
        (databases, scripts_ro),
        conn,
        form,
    )
    .await
}

/// Drops WATCHes when it goes out of scope.
struct Unwatch {
    rpc: Rc<Rpc>,
    watches: Vec<(usize, usize, Bytes, u64)>,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        for (_, db, key, _) in self.watches.drain(..) {
            // The key's core now: a re-spread may have moved its slot.
            let c = self.rpc.mesh.slots.core_of(engine::slot::slot_of(&key));
            self.rpc.tell(
                c,
                Request::Unwatch {
                    db,
                    keys: vec![key],
                },
            );
        }
    }
}

/// True for a CLUSTER subcommand the bus answers alone, with no count of
/// keys from the cores (which the transaction's locks would hold up).
fn bus_only(a: &engine::Args) -> bool {
    let argv: Vec<&[u8]> = a.iter_from(0).collect();
    let sub = a.get(1);
    !sub.eq_ignore_ascii_case(b"countkeysinslot")
        && !sub.eq_ignore_ascii_case(b"getkeysinslot")
        && matches!(
            cluster::command::needs(&argv),
            cluster::command::Need::Nothing
        )
}

/// A transaction (MULTI/EXEC). On several cores it runs one command at a
/// time under every involved core's lock; with `form`, the replicas get
/// what its commands logged in the order they ran, as Redis propagates a
/// transaction.
#[allow(clippy::too_many_arguments)]
async fn exec_checked(
    rpc: &Rc<Rpc>,
    bus: Option<&super::Bus>,
    db: usize,
    cmds: Vec<OwnedArgs>,
    watches: &[(usize, usize, Bytes, u64)],
    (databases, scripts_ro): (usize, bool),
    conn: Key,
    form: Option<FormSink>,
) -> TaskDone {
    let cores = rpc.mesh.cores();
    // Each WATCH is checked on its key's core now (a re-spread moves a
    // slot's WATCH versions with its keys).
    let owner =
        |w: &(usize, usize, Bytes, u64)| rpc.mesh.slots.core_of(engine::slot::slot_of(&w.2));
    let mut involved: Vec<usize> = watches.iter().map(owner).collect();
    let mut simple = true;
    let mut final_db = db;
    for c in &cmds {
        let a = c.as_args();
        let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
            continue;
        };
        if spec.name == "select" {
            if let Ok(d) = parse_db(a.get(1), databases) {
                final_db = d;
            }
            continue;
        }
        if node_answers(spec, &a) {
            simple = false;
            continue;
        }
        match route(spec, &a, cores, &rpc.mesh.slots) {
            Ok(Route::One(c)) => involved.push(c),
            Ok(Route::Here) => {}
            Ok(Route::Many(v)) => {
                simple = false;
                involved.extend(v);
            }
            Ok(Route::All) | Ok(Route::Everywhere) => {
                simple = false;
                involved.extend(0..cores);
            }
            Err(_) => {}
        }
    }
    involved.sort_unstable();
    involved.dedup();
    let mut effects = if final_db != db {
        vec![Effect::Db(final_db)]
    } else {
        Vec::new()
    };
    let watch_of = |c: usize| -> Vec<(usize, Bytes, u64)> {
        watches
            .iter()
            .filter(|w| owner(w) == c)
            .map(|w| (w.1, w.2.clone(), w.3))
            .collect()
    };
    if simple && involved.len() <= 1 {
        // One core: one request runs the whole transaction atomically.
        let c = involved.first().copied().unwrap_or(rpc.me);
        let req = Request::Exec {
            db,
            watch: watch_of(c),
            cmds,
            tx: None,
            in_multi: true,
            may_block: false,
            conn: Some(conn),
            counts: Vec::new(),
        };
        let reply = match rpc.call(c, req).await {
            Response::Replies(r) => Reply::Array(r),
            Response::Aborted(e) => e,
            _ => Reply::NilArray,
        };
        return TaskDone {
            conn,
            replies: vec![reply],
            effects,
            encoded: engine::Encoded::default(),
        };
    }
    let mut lock_set = involved.clone();
    lock_set.push(rpc.me);
    let writes = cmds.iter().any(|c| {
        engine::cmd::registry()
            .lookup(c.as_args().get(0))
            .is_some_and(|s| s.has(engine::cmd::flags::WRITE))
    });
    let form = form.filter(|_| writes);
    let locks = Locks::take_with(rpc, &lock_set, form.is_some()).await;
    if locks.paused && writes {
        push_form(form.as_ref(), &locks, Vec::new());
        locks.release().await;
        return TaskDone::reply(conn, Reply::err(crate::mesh::WRITES_PAUSED));
    }
    let mut logged = Vec::new();
    for &c in &involved {
        let w = watch_of(c);
        if w.is_empty() {
            continue;
        }
        let req = Request::Exec {
            db,
            cmds: Vec::new(),
            tx: Some(locks.tx),
            in_multi: true,
            may_block: false,
            watch: w,
            conn: None,
            counts: Vec::new(),
        };
        if let Response::WatchFailed = rpc.call(c, req).await.unlog(&mut logged) {
            push_form(form.as_ref(), &locks, Vec::new());
            return TaskDone {
                conn,
                replies: vec![Reply::NilArray],
                effects: Vec::new(),
                encoded: engine::Encoded::default(),
            };
        }
    }
    // Commands of one core each go out at once, in order (a core runs
    // what it receives in order, so a later command still sees their
    // writes); their answers are taken, in order, before any command
    // that needs more than one core, so `logged` keeps the commands'
    // order. With keyspace notifications on, or a slow log that takes
    // every command, one at a time (their events and entries in the
    // commands' order).
    enum Slot {
        Done(Reply),
        Sent(super::task::Call),
    }
    async fn settle(slots: &mut [Slot], from: usize, logged: &mut Vec<u8>) {
        for slot in &mut slots[from..] {
            if let Slot::Sent(call) = slot {
                let r = first_reply(call.await.unlog(logged));
                *slot = Slot::Done(r);
            }
        }
    }
    let mut replies: Vec<Slot> = Vec::with_capacity(cmds.len());
    let mut settled = 0;
    let mut db = db;
    for c in &cmds {
        let a = c.as_args();
        let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
            replies.push(Slot::Done(Reply::err("ERR unknown command")));
            continue;
        };
        let one = match route(spec, &a, cores, &rpc.mesh.slots) {
            _ if spec.name == "select" || node_answers(spec, &a) => None,
            Ok(Route::One(to)) => Some(to),
            Ok(Route::Here) => Some(rpc.me),
            _ => None,
        };
        if let Some(to) = one {
            let req = exec_req_for(db, vec![c.clone()], Some(locks.tx), true, Some(conn));
            replies.push(Slot::Sent(rpc.call(to, req)));
            if notify_on() || SLOW_ALL.with(|c| c.get()) {
                // Keyspace events and slow log entries in the commands'
                // order: one at a time.
                settle(&mut replies, settled, &mut logged).await;
                settled = replies.len();
            }
            continue;
        }
        settle(&mut replies, settled, &mut logged).await;
        settled = replies.len();
        // Run here, not by a core, which would count it (but for a
        // command over every core: `Route::All`).
        let start = std::time::Instant::now();
        let mut counted_by_cores = false;
        let mut error_counted = false;
        let reply = if spec.name == "select" {
            match parse_db(a.get(1), databases) {
                Ok(d) => {
                    db = d;
                    Reply::Ok
                }
                Err(e) => e,
            }
        } else if spec.name == "publish" || spec.name == "spublish" {
            let ch = Bytes::copy_from_slice(a.get(1));
            let msg = Bytes::copy_from_slice(a.get(2));
            let sharded = spec.name == "spublish";
            if let Some(bus) = bus {
                bus.forward_publish(&ch, &msg, sharded);
            }
            Reply::Int(publish_count(rpc, ch, msg, sharded).await)
        } else if spec.name == "time" {
            crate::shared::time_reply()
        } else if spec.name == "unwatch" {
            // (EXEC checked the watches and drops them anyway.)
            Reply::Ok
        } else if spec.name == "monitor" {
            // A transaction expects a reply per command.
            Reply::err("ERR MONITOR isn't allowed for DENY BLOCKING client")
        } else if let Some(bus) = bus.filter(|_| spec.name == "cluster" && bus_only(&a)) {
            // (`redis-cli --cluster fix` sets a slot's owner in one
            // transaction: DELSLOTS, ADDSLOTS, SETSLOT STABLE, BUMPEPOCH.)
            let argv: Vec<Bytes> = a.iter_from(0).map(Bytes::copy_from_slice).collect();
            let facts = cluster::command::Facts {
                db_keys: 0,
                slot_keys: 0,
            };
            match rpc.call_bus(bus, argv, facts).await {
                Response::Replies(mut r) if r.len() == 1 => r.swap_remove(0),
                _ => Reply::err("ERR internal error: unexpected answer from the cluster bus"),
            }
        } else if node_answers(spec, &a) {
            Reply::Error(
                format!("ERR '{}' inside MULTI is not supported by slotd", spec.name).into(),
            )
        } else {
            let tx = Some(locks.tx);
            match route(spec, &a, cores, &rpc.mesh.slots) {
                Err(e) => e,
                Ok(Route::All) => {
                    counted_by_cores = true;
                    let f = form.is_some().then_some(&mut logged);
                    fanout_reply(rpc, cores, spec, db, c, tx, f).await
                }
                Ok(Route::Many(_)) => {
                    let (reply, bytes) =
                        gather_run_scatter(rpc, spec, db, c, databases, form.is_some()).await;
                    logged.extend(bytes);
                    reply
                }
                // Sent above (the same routing).
                Ok(Route::One(_)) | Ok(Route::Here) => {
                    Reply::err("ERR internal error: a command of one core in the wrong path")
                }
                Ok(Route::Everywhere) => {
                    let (reply, counted) = super::script::run(
                        rpc,
                        locks.tx,
                        spec,
                        (db, databases, scripts_ro),
                        c,
                        (form.is_some(), bus),
                        &mut logged,
                    )
                    .await;
                    error_counted = counted;
                    reply
                }
            }
        };
        if !counted_by_cores {
            let mut ran =
                super::task::Ran::of(engine::cmd::meta::stats_name(spec, &a), &reply, start);
            if error_counted {
                ran.error = None;
            }
            effects.push(Effect::Ran(ran));
        }
        replies.push(Slot::Done(reply));
    }
    settle(&mut replies, settled, &mut logged).await;
    let replies = replies
        .into_iter()
        .map(|s| match s {
            Slot::Done(r) => r,
            Slot::Sent(_) => Reply::err("ERR internal error: unsettled command"),
        })
        .collect();
    push_form(form.as_ref(), &locks, logged);
    locks.release().await;
    TaskDone {
        conn,
        replies: vec![Reply::Array(replies)],
        effects,
        encoded: engine::Encoded::default(),
    }
}

/// Runs `work` while this task holds every core's lock: nothing is written
/// anywhere meanwhile, and every core has handed its earlier writes to
/// the replication stream (a replication barrier). `work` gets the
/// transaction's id, for the requests locked cores must serve.
pub async fn under_all_locks<T, F: std::future::Future<Output = T>>(
    rpc: &Rc<Rpc>,
    work: impl FnOnce(TxId) -> F,
) -> T {
    let cores: Vec<usize> = (0..rpc.mesh.cores()).collect();
    let locks = Locks::take(rpc, &cores).await;
    let out = work(locks.tx).await;
    locks.release().await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_id_names_its_chain_and_no_rpc_id_names_one() {
        for key in [
            Key { index: 0, gen: 0 },
            Key { index: 7, gen: 3 },
            Key {
                index: u32::MAX >> 1,
                gen: u32::MAX,
            },
        ] {
            assert_eq!(chain_key(chain_id(key)), Some(key));
        }
        for id in [0, 1, 42, (1 << 62) + 5] {
            assert_eq!(chain_key(id), None);
        }
    }
}
