//! A request, top to bottom: parse the next command in a connection's
//! buffer (prefetching the keys of the pipelined ones behind it, a window
//! at a time), hand it to [`dispatch::command`] (checks, then the fast
//! path inline or a task), and when a command belongs to another core, cut
//! the pipeline behind it that can travel along ([`gather_pipeline`]) and
//! send it as one task.

use super::dispatch::{self, Next};
use crate::io::{BigArgs, Key, Wait, BUF_KEEP, RBUF_KEEP};
use crate::log;
use crate::mesh::{flows, Seg, NOT_PARSED};
use crate::shard::{parse, Shard};
use bytes::Bytes;
use engine::Reply;

/// A connection's input buffer is compacted only once this many bytes
/// of it have been consumed (and at least half of it).
const COMPACT_MIN: usize = 16 * 1024;
/// Most pipelined commands, and bytes, sent across cores as one pipeline.
const PIPELINE_CMDS_MAX: u32 = 1024;
const PIPELINE_BYTES_MAX: usize = 1 << 20;

/// The first command of a pipeline that crosses cores: its owner core,
/// whether it writes, its length in the input, and its RESP form when it
/// came inline.
struct First {
    to: usize,
    write: bool,
    consumed: usize,
    head: Option<Vec<u8>>,
    /// Its arguments' spans (in `spans` when the pipeline is gathered)
    /// hold for the bytes that travel: neither re-encoded nor with big
    /// arguments apart.
    parsed: bool,
}

/// Parses and runs the commands buffered on `key` until one has to wait.
pub fn process(shard: &mut Shard, key: Key) {
    // The master client's writes are the master's stream, which its link
    // hands on (`Shard::for_client`).
    let master = shard
        .conns
        .get(key)
        .filter(|c| c.master)
        .map_or(0, |c| c.id);
    shard.for_client(master, |shard| process_commands(shard, key));
}

fn process_commands(shard: &mut Shard, key: Key) {
    let Some(c) = shard.conns.get_mut(key) else {
        return;
    };
    // (A stopping core runs nothing more: its connections close once its
    // AOF is flushed.)
    if c.closing || c.close_after_flush || c.wait != Wait::No || c.moving || shard.stopping {
        return;
    }
    if c.filling() {
        // (The feed closed in the middle of a big argument: it never
        // completes.)
        if c.eof && c.wait == Wait::No {
            shard.close(key);
        }
        return;
    }
    // Its commands kept going to one other core: it may move there now,
    // its unread input with it (a branch per request otherwise).
    if c.aff_run >= shard.move_after && shard.want_move(key) {
        return;
    }
    let Some(c) = shard.conns.get_mut(key) else {
        return;
    };
    let db = c.db;
    // With the AOF on: what this client sent earlier and ran on other
    // cores may not be effective there yet (its replies wait for it).
    // What it runs from now on comes after it, here and on every core a
    // pipeline reaches.
    let mut earlier =
        (shard.aof.is_some() && !c.aof_remote.is_empty()).then(|| c.aof_remote.clone());
    if let Some(e) = &earlier {
        shard.depend_on(e);
    }
    let Some(c) = shard.conns.get_mut(key) else {
        return;
    };
    let mut rbuf = std::mem::take(&mut c.rbuf);
    // The current request's big arguments, received apart.
    let mut big = c.big.take();
    let mut holes = Vec::new();
    let mut spans = std::mem::take(&mut c.spans);
    let mut scratch = std::mem::take(&mut c.scratch);
    let mut pos = c.rpos;
    let mut need = c.need;
    // The master client counts the input of completed commands (the one
    // that ran in a task is complete now): replication offsets follow it.
    if c.master {
        c.applied += std::mem::take(&mut c.in_flight);
    }
    let start = pos;
    // (Input bytes of the command in flight, here and in big arguments
    // received apart; big arguments of the commands that completed.)
    let (mut flight, mut big_flight, mut big_done) = (0, 0, 0);
    let limits = shard.settings.limits;
    // Where the commands whose keys are being prefetched end.
    let mut ahead_end = pos;
    shard.cmd_clock = None;
    loop {
        if rbuf.len() < need || pos >= rbuf.len() {
            break;
        }
        holes.clear();
        if let Some(b) = &big {
            holes.extend(b.at.iter().map(|&at| at - pos));
        }
        match parse(
            &mut shard.stats,
            &rbuf[pos..],
            &holes,
            &limits,
            &mut spans,
            &mut scratch,
        ) {
            Ok(engine::resp::Parsed::Incomplete { need: n }) => {
                need = pos + n;
                break;
            }
            Ok(engine::resp::Parsed::BigBulk { start, len }) => {
                // Receive it into a buffer of its size, taking what is
                // already here; its CRLF and what follows stay in `rbuf`.
                let at = pos + start;
                let here = (rbuf.len() - at).min(len);
                let mut buf = Vec::with_capacity(len);
                buf.extend_from_slice(&rbuf[at..at + here]);
                rbuf.drain(at..at + here);
                let b = big.get_or_insert_with(Box::<BigArgs>::default);
                if here == len {
                    b.at.push(at);
                    b.done.push(Bytes::from(buf));
                    continue;
                }
                b.filling = Some((buf, at, len));
                need = 0;
                break;
            }
            Ok(engine::resp::Parsed::Empty { consumed }) => pos += consumed,
            Ok(engine::resp::Parsed::Command { consumed, inline }) => {
                need = 0;
                // Start loading the entries of the pipelined commands
                // behind it, a window at a time.
                if pos + consumed >= ahead_end {
                    ahead_end = pos + consumed + shard.prefetch_keys(db, [&rbuf[pos + consumed..]]);
                }
                let src: &[u8] = if inline { &scratch } else { &rbuf[pos..] };
                let bigs = big.as_ref().map_or(&[][..], |b| &b.done[..]);
                let args = if inline {
                    engine::Args::new(src, &spans)
                } else {
                    engine::Args::from_request(src, &spans, bigs)
                };
                match dispatch::command(shard, key, args) {
                    Next::Continue => {
                        pos += consumed;
                        big_done += big_len(&big.take());
                    }
                    Next::Wait => {
                        pos += consumed;
                        flight = consumed;
                        big_flight = big_len(&big.take());
                        break;
                    }
                    Next::Retry => break,
                    Next::Remote { to, db, write } => {
                        // An inline command travels re-encoded as RESP
                        // (the owner parses RESP only).
                        let head = inline.then(|| {
                            let mut head = Vec::new();
                            encode_command(&engine::Args::new(&scratch, &spans), &mut head);
                            head
                        });
                        let first = First {
                            to,
                            write,
                            consumed,
                            parsed: head.is_none() && big.is_none(),
                            head,
                        };
                        let (mut p, end) = gather_pipeline(
                            shard,
                            key,
                            &rbuf,
                            pos,
                            first,
                            &mut spans,
                            &mut scratch,
                        );
                        for s in &p.segs {
                            shard.note_target(key, s.core, s.cmds);
                        }
                        big_flight = big_len(&big);
                        if let Some(b) = big.take() {
                            p.bytes.1 = std::mem::take(&mut holes);
                            p.bytes.2 = b.done;
                        }
                        flight = end - pos;
                        let head = take_head(shard, key);
                        let direct = direct_socket(shard, key, end == rbuf.len() && big.is_none());
                        pos = end;
                        let resp3 = shard.conns.get(key).is_some_and(|c| c.resp3);
                        // With the AOF on, the pipeline comes after what
                        // this core recorded so far (the client's earlier
                        // writes among them) and the client's earlier
                        // writes on other cores. Under `always` (fsyncs
                        // not paused), a client with no reply of this
                        // core unsent or going along (`head`) has had
                        // every earlier reply, so its writes here are on
                        // disk already: other clients' records here do not
                        // concern its pipeline, which then need not wait
                        // for this core's next fsync.
                        // (The loop ends with this pipeline.)
                        let mut after = earlier.take().unwrap_or_default();
                        let settled = direct >= 0
                            && head.is_empty()
                            && !shard.persist.aof.lags()
                            && !shard.persist.aof.fsync_paused();
                        if shard.aof.is_some() && !settled {
                            let at = shard.engine.write_log().map_or(0, |l| l.offset());
                            after.push((shard.id, at));
                        }
                        let to = flows::PipelineTo {
                            conn: key,
                            direct,
                            head,
                            after,
                        };
                        let Some((p, to)) =
                            dispatch::fan_out_writes(shard, key, (db, resp3), p, to)
                        else {
                            break;
                        };
                        if flows::chained(&p) {
                            dispatch::send_chain(shard, key, (db, resp3), p, to);
                        } else if dispatch::may_fan_out(shard, db, &p) {
                            dispatch::fan_out(shard, key, (db, resp3), p, to);
                        } else {
                            let rpc = shard.rpc.clone();
                            dispatch::spawn(shard, key, flows::pipeline(rpc, db, resp3, p, to));
                        }
                        break;
                    }
                }
            }
            Err(e) => {
                if let Some(c) = shard.conns.get_mut(key) {
                    let msg = e.message();
                    log::verbose(format_args!(
                        "Protocol error ({}) from client: id={} addr={}",
                        e.0, c.id, c.addr
                    ));
                    Reply::err(msg).encode(c.resp3, &mut c.out);
                    c.close_after_flush = true;
                }
                shard.want_flush(key);
                pos = rbuf.len();
                big = None;
                break;
            }
        }
        if shard
            .conns
            .get(key)
            .is_none_or(|c| c.close_after_flush || c.closing)
        {
            break;
        }
    }
    shard.cmd_clock = None;
    let mut drained = false;
    if let Some(c) = shard.conns.get_mut(key) {
        if c.master {
            c.applied += (pos - start - flight + big_done) as u64;
            c.in_flight = (flight + big_flight) as u64;
            // (SeqCst: a promotion stores its flag, then reads this. A
            // newer feed's number is higher: an old master client still
            // running does not move it back.)
            shard.shared.master_applied.fetch_max(
                crate::shared::applied_pack(c.feed, c.applied),
                std::sync::atomic::Ordering::SeqCst,
            );
            // A promotion may be waiting for these commands.
            shard.replication.finish_promotion();
            // (At the feed's end, an incomplete command never completes.)
            let rest_incomplete =
                need > rbuf.len() || big.as_ref().is_some_and(|b| b.filling.is_some());
            drained = c.eof && (pos == rbuf.len() || rest_incomplete) && c.wait == Wait::No;
        }
        c.rbuf = rbuf;
        // Parser scratch grown by a request of many (or inline) arguments
        // is not kept either.
        if spans.capacity() * std::mem::size_of::<(u32, u32)>() > BUF_KEEP {
            spans = Vec::new();
        }
        if scratch.capacity() > BUF_KEEP {
            scratch = Vec::new();
        }
        c.spans = spans;
        c.scratch = scratch;
        c.big = big;
        // The kernel never writes into this buffer (it fills the ring's
        // buffers), so it can be compacted at any time. It is, once the
        // consumed part is at least as long as what remains: moving the
        // rest at every stop (each hop of a pipeline to another core)
        // would make a long pipeline quadratic; this way each byte is
        // moved a bounded number of times.
        // An emptied buffer that grew is freed, unless it is a long
        // pipeline's (freed by the cron once the connection is idle).
        if pos == c.rbuf.len() {
            c.rbuf.clear();
            if c.rbuf.capacity() > BUF_KEEP && c.rbuf.capacity() < RBUF_KEEP {
                c.rbuf = Vec::new();
            }
            c.rpos = 0;
            c.need = 0;
        } else if pos >= COMPACT_MIN && pos * 2 >= c.rbuf.len() {
            shard.stats.input_bytes_moved += (c.rbuf.len() - pos) as u64;
            c.rbuf.drain(..pos);
            if let Some(b) = c.big.as_deref_mut() {
                b.at.iter_mut().for_each(|at| *at -= pos);
                if let Some((_, at, _)) = &mut b.filling {
                    *at -= pos;
                }
            }
            c.rpos = 0;
            c.need = need.saturating_sub(pos);
        } else {
            c.rpos = pos;
            c.need = need;
        }
    }
    if drained {
        shard.close(key);
    }
}

/// The bytes of a request's big arguments, received apart from `rbuf`
/// (the master client counts them in what it applied).
fn big_len(big: &Option<Box<BigArgs>>) -> usize {
    big.as_ref()
        .map_or(0, |b| b.done.iter().map(|d| d.len()).sum())
}

/// The socket of connection `key` if the core that answers its pipeline
/// may send the replies on it (`Shard::flush_direct`), marking the
/// connection so (`Conn::direct`); else -1. Only when that spares its
/// core a wake-up and changes nothing the client can see: `last` (no more
/// input is in, so the next request comes after these replies and wakes
/// this core), nothing of its own output unsent or in flight, no pushes
/// that could come in between (subscriptions), and no replies held for
/// the replicas. With the AOF on, that core holds them until what they
/// reveal is effective on every core (the pipeline's `needs`, which start
/// with this core's log offset and the client's earlier writes).
fn direct_socket(shard: &mut Shard, key: Key, last: bool) -> i32 {
    let held = shard.replication.stream().active();
    match shard.conns.get_mut(key) {
        Some(c)
            if last
                && !held
                && !c.master
                && !c.send_inflight
                && c.pending_out() == 0
                && c.sub_count() == 0 =>
        {
            c.direct = true;
            c.fd
        }
        _ => -1,
    }
}

/// Most reply bytes of a connection's earlier commands that go along
/// with its pipeline (see [`take_head`]).
const HEAD_MAX: usize = 16 * 1024;

/// The replies that `key`'s commands before a pipeline left unsent: they
/// go along with the pipeline, ahead of its own replies, so the client
/// gets them all in one send instead of two. Only plain replies waiting
/// alone (no send under way, no large bulk, nothing that may push
/// messages between them).
fn take_head(shard: &mut Shard, key: Key) -> Vec<u8> {
    match shard.conns.get_mut(key) {
        Some(c)
            if !c.out.is_empty()
                && c.out.len() <= HEAD_MAX
                && c.pending_out() == c.out.len()
                && !c.send_inflight
                && !c.master
                && !c.mute
                && c.repl_holds == 0
                && c.tracking.is_none()
                && c.sub_count() == 0 =>
        {
            let head = c.out.clone();
            c.out_base += head.len() as u64;
            c.out.clear();
            c.hold_mark = 0;
            head
        }
        _ => Vec::new(),
    }
}

/// Cuts a pipeline that crosses cores: its first command, at
/// `rbuf[start..]`, is for another core; the pipelined commands behind
/// it go along while they can ([`dispatch::plan_target`]), up to
/// [`PIPELINE_CMDS_MAX`] commands or [`PIPELINE_BYTES_MAX`] bytes. Returns
/// the pipeline and where in `rbuf` it ends.
fn gather_pipeline(
    shard: &mut Shard,
    key: Key,
    rbuf: &[u8],
    start: usize,
    first: First,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> (flows::PipelineIn, usize) {
    let mut pos = start + first.consumed;
    let mut segs = vec![Seg {
        core: first.to,
        start: 0,
        end: first.consumed as u32,
        cmds: 1,
        pre: 0,
    }];
    // The first command as parsed here, unless it is re-encoded or has
    // big arguments apart: then its core parses it.
    let mut pre = Vec::with_capacity(1 + spans.len());
    if first.parsed {
        pre.push((first.consumed as u32, spans.len() as u32));
        pre.extend_from_slice(spans);
    } else {
        pre.push((first.consumed as u32, NOT_PARSED));
    }
    let (mut writes, mut cmds) = (first.write, 1);
    while cmds < PIPELINE_CMDS_MAX && pos - start < PIPELINE_BYTES_MAX {
        let Ok(engine::resp::Parsed::Command {
            consumed,
            inline: false,
        }) = parse(
            &mut shard.stats,
            &rbuf[pos..],
            &[],
            &shard.settings.limits,
            spans,
            scratch,
        )
        else {
            break;
        };
        let next = engine::Args::new(&rbuf[pos..], spans);
        let Some((owner, write)) = dispatch::plan_target(shard, key, &next) else {
            break;
        };
        let (from, end) = ((pos - start) as u32, (pos + consumed - start) as u32);
        let at = pre.len() as u32;
        pre.push((consumed as u32, spans.len() as u32));
        pre.extend_from_slice(spans);
        match segs.last_mut() {
            Some(s) if s.core == owner => {
                s.end = end;
                s.cmds += 1;
            }
            _ => segs.push(Seg {
                core: owner,
                start: from,
                end,
                cmds: 1,
                pre: at,
            }),
        }
        writes |= write;
        cmds += 1;
        pos += consumed;
    }
    shard.make_room((pos - start) as u64);
    let bytes = (
        match first.head {
            None => Bytes::copy_from_slice(&rbuf[start..pos]),
            Some(mut head) => {
                // The offsets shift by the re-encoding of the first command.
                let (old, new) = (first.consumed as u32, head.len() as u32);
                pre[0].0 = new;
                for s in &mut segs {
                    if s.start > 0 {
                        s.start = s.start - old + new;
                    }
                    s.end = s.end - old + new;
                }
                head.extend_from_slice(&rbuf[start + first.consumed..pos]);
                Bytes::from(head)
            }
        },
        Vec::new(),
        Vec::new(),
    );
    (
        flows::PipelineIn {
            bytes,
            pre: pre.into_boxed_slice(),
            segs,
            writes,
        },
        pos,
    )
}

/// Appends `args` to `out` as a RESP array of bulk strings.
fn encode_command(args: &engine::Args, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args.iter_from(0) {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
