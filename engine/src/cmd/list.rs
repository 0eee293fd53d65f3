//! The `list` command family: pushes, pops, ranges, LPOS, the moves between
//! lists and the blocking pops (BLPOP & co).
//!
//! Blocking commands first try to serve themselves like their non-blocking
//! form; when every key is empty they set [`Ctx::block`] and return what a
//! timeout replies. The node re-runs them when a key they wait on is
//! signalled ready, so every command that adds elements calls
//! [`crate::shard::Shard::signal_ready`]. When a blocking pop does take
//! something it is logged as its non-blocking form, as Redis propagates it.

use super::{flags::*, Block, Ctx, Spec};
use crate::args::Args;
use crate::error;
use crate::list::{Fill, PackedList};
use crate::notify;
use crate::reply::Reply;
use crate::resp::parse_i64;
use crate::shard::Shard;
use crate::value::Value;
use bytes::Bytes;

/// The list family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpush),
    Spec::new("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpush),
    Spec::new("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpushx),
    Spec::new("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpushx),
    Spec::new("lpop", -2, WRITE | FAST, (1, 1, 1), lpop),
    Spec::new("rpop", -2, WRITE | FAST, (1, 1, 1), rpop),
    Spec::new("llen", 2, READONLY | FAST, (1, 1, 1), llen),
    Spec::new("lrange", 4, READONLY, (1, 1, 1), lrange),
    Spec::new("lindex", 3, READONLY, (1, 1, 1), lindex),
    Spec::new("lset", 4, WRITE | DENYOOM, (1, 1, 1), lset),
    Spec::new("linsert", 5, WRITE | DENYOOM, (1, 1, 1), linsert),
    Spec::new("lrem", 4, WRITE, (1, 1, 1), lrem),
    Spec::new("ltrim", 4, WRITE, (1, 1, 1), ltrim),
    Spec::new("lpos", -3, READONLY, (1, 1, 1), lpos),
    Spec::new("lmove", 5, WRITE | DENYOOM, (1, 2, 1), lmove),
    Spec::new("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), rpoplpush),
    Spec::new("lmpop", -4, WRITE, (0, 0, 0), lmpop).movable(lmpop_keys),
    Spec::new("blpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), blpop),
    Spec::new("brpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), brpop),
    Spec::new(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        blmove,
    ),
    Spec::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        (1, 2, 1),
        brpoplpush,
    ),
    Spec::new("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), blmpop).movable(blmpop_keys),
];

const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, \
2 from the second ... or use negative to start from the end of the list";
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const NUMKEYS: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";

/// The list at `key`: `Ok(None)` when missing, WRONGTYPE for another type.
/// `read` counts a keyspace hit/miss (reads); writes look up silently, as
/// Redis's `lookupKeyWrite` does.
fn list_at<'s>(
    shard: &'s mut Shard,
    db: usize,
    key: &[u8],
    now_ms: i64,
    read: bool,
) -> Result<Option<&'s mut PackedList>, Reply> {
    let e = if read {
        shard.lookup_read(db, key, now_ms)
    } else {
        shard.lookup_write(db, key, now_ms)
    };
    match e {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(Reply::err(error::WRONGTYPE)),
        },
    }
}

/// The chunk bound lists are built with (`list-max-listpack-size`).
fn fill(shard: &Shard) -> Fill {
    Fill(shard.limits.list_listpack_size)
}

/// Parses a blocking timeout (float seconds) as Redis 7.0 does, into an
/// absolute deadline (`None`: wait forever).
pub fn parse_timeout(raw: &[u8], now_ms: i64) -> Result<Option<i64>, Reply> {
    // (Redis reads it as a long double: a tiny positive one, zero as a
    // double, still waits a millisecond.)
    let secs = match crate::args::strtod(raw) {
        Some((v, true)) if v == 0.0 && v.is_sign_positive() => f64::MIN_POSITIVE,
        Some((v, _)) => v,
        None => return Err(Reply::err(error::TIMEOUT_NOT_FLOAT)),
    };
    let ms = (secs * 1000.0).ceil();
    // C's (long long) cast of an out-of-range value yields LLONG_MIN, which
    // Redis then reports as negative.
    if ms >= i64::MAX as f64 || ms < 0.0 {
        return Err(Reply::err(error::TIMEOUT_NEGATIVE));
    }
    let ms = ms as i64;
    Ok((ms > 0).then(|| now_ms.saturating_add(ms)))
}

/// Parses LEFT / RIGHT; true for LEFT.
fn parse_side(a: &[u8]) -> Result<bool, Reply> {
    if a.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if a.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(Reply::err(error::SYNTAX))
    }
}

/// Parses a count that must be >= 0 (LPOP's, LPOS's COUNT and MAXLEN):
/// any failure replies `msg`, as Redis's `getPositiveLongFromObjectOrReply`.
fn positive(a: &[u8], msg: &'static str) -> Result<i64, Reply> {
    match parse_i64(a) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Reply::err(msg)),
    }
}

/// Parks the client on `keys` unless inside MULTI; returns `reply` (what a
/// timeout answers, and MULTI's immediate answer).
fn block_on(ctx: &mut Ctx, keys: Vec<Bytes>, deadline_ms: Option<i64>, reply: Reply) -> Reply {
    if !ctx.in_multi {
        ctx.block = Some(Block {
            keys,
            deadline_ms,
            rerun: None,
        });
    }
    reply
}

fn side_word(left: bool, pop: bool) -> Bytes {
    Bytes::from_static(match (left, pop) {
        (true, true) => b"LPOP",
        (false, true) => b"RPOP",
        (true, false) => b"LEFT",
        (false, false) => b"RIGHT",
    })
}

/// Pushes the arguments from index 2 on; `only_existing` for LPUSHX/RPUSHX.
fn push(ctx: &mut Ctx, left: bool, only_existing: bool) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (db, now) = (ctx.db, ctx.now_ms);
    let n = args.len() - 2;
    let fill = fill(ctx.shard);
    let push_all = |l: &mut PackedList| {
        let items: Vec<&[u8]> = args.iter_from(2).collect();
        l.push_all(&items, left, fill);
        l.len()
    };
    let len = match list_at(ctx.shard, db, key, now, false) {
        Err(e) => return e,
        Ok(Some(l)) => {
            let len = push_all(l);
            ctx.shard.touch(db, key);
            len
        }
        Ok(None) => {
            if only_existing {
                return Reply::Int(0);
            }
            let mut l = Box::new(PackedList::new());
            let len = push_all(&mut l);
            ctx.shard.set(db, key, Value::List(l), now);
            len
        }
    };
    ctx.shard.signal_ready(db, key);
    ctx.notify(notify::LIST, if left { "lpush" } else { "rpush" }, key);
    ctx.dirty(n as u64);
    Reply::Int(len as i64)
}

/// ```text
/// LPUSH key element [element ...]
/// ```
/// Prepend one or multiple elements to a list.
fn lpush(ctx: &mut Ctx) -> Reply {
    push(ctx, true, false)
}

/// ```text
/// RPUSH key element [element ...]
/// ```
/// Append one or multiple elements to a list.
fn rpush(ctx: &mut Ctx) -> Reply {
    push(ctx, false, false)
}

/// ```text
/// LPUSHX key element [element ...]
/// ```
/// Prepend an element to a list, only if the list exists.
fn lpushx(ctx: &mut Ctx) -> Reply {
    push(ctx, true, true)
}

/// ```text
/// RPUSHX key element [element ...]
/// ```
/// Append an element to a list, only if the list exists.
fn rpushx(ctx: &mut Ctx) -> Reply {
    push(ctx, false, true)
}

/// Pops up to `n` elements from the list at `key`, which the caller found
/// non-empty; deletes the key when it empties, marks it modified and counts
/// the write.
fn pop_n(ctx: &mut Ctx, key: &[u8], left: bool, n: usize) -> Vec<Bytes> {
    let (db, now) = (ctx.db, ctx.now_ms);
    let mut out = Vec::new();
    let mut empty = false;
    if let Ok(Some(l)) = list_at(ctx.shard, db, key, now, false) {
        let n = n.min(l.len());
        out.reserve(n);
        for _ in 0..n {
            let v = if left { l.pop_front() } else { l.pop_back() };
            match v {
                Some(v) => out.push(v),
                None => break,
            }
        }
        empty = l.is_empty();
    }
    if out.is_empty() {
        return out;
    }
    ctx.notify(notify::LIST, if left { "lpop" } else { "rpop" }, key);
    if empty {
        ctx.shard.remove(db, key);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.shard.touch(db, key);
    }
    ctx.dirty(out.len() as u64);
    out
}

fn pop(ctx: &mut Ctx, left: bool) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    if args.len() > 3 {
        return Reply::err(error::wrong_arity(&args.name_lower()));
    }
    let count = if args.len() == 3 {
        match positive(args.get(2), error::NOT_POSITIVE) {
            Ok(n) => Some(n),
            Err(e) => return e,
        }
    } else {
        None
    };
    match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::NilArray
            } else {
                Reply::Nil
            }
        }
        Ok(Some(_)) => {}
    }
    match count {
        Some(0) => Reply::Array(Vec::new()),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Reply::Array(
                pop_n(ctx, key, left, n)
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            )
        }
        None => pop_n(ctx, key, left, 1)
            .pop()
            .map_or(Reply::Nil, Reply::Bulk),
    }
}

/// ```text
/// LPOP key [count]
/// ```
/// Remove and get the first elements in a list.
fn lpop(ctx: &mut Ctx) -> Reply {
    pop(ctx, true)
}

/// ```text
/// RPOP key [count]
/// ```
/// Remove and get the last elements in a list.
fn rpop(ctx: &mut Ctx) -> Reply {
    pop(ctx, false)
}

/// ```text
/// LLEN key
/// ```
/// Get the length of a list.
fn llen(ctx: &mut Ctx) -> Reply {
    match list_at(ctx.shard, ctx.db, ctx.args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(l)) => Reply::Int(l.len() as i64),
    }
}

/// Normalises a Redis start/stop pair against `len`: the inclusive index
/// range, or None when empty.
fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

/// ```text
/// LRANGE key start stop
/// ```
/// Get a range of elements from a list.
fn lrange(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (start, stop) = match (args.int(2), args.int(3)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match list_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(l)) => match range(start, stop, l.len()) {
            None => Reply::Array(Vec::new()),
            Some((a, b)) => Reply::Array(l.iter_from(a).take(b - a + 1).map(Reply::bulk).collect()),
        },
    }
}

/// Resolves a possibly negative index into `len`.
fn index_of(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// ```text
/// LINDEX key index
/// ```
/// Get an element from a list by its index.
fn lindex(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let l = match list_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => return e,
        Ok(None) => return Reply::Nil,
        Ok(Some(l)) => l,
    };
    let i = match args.int(2) {
        Ok(i) => i,
        Err(e) => return e,
    };
    match index_of(i, l.len()).and_then(|i| l.get(i)) {
        Some(v) => Reply::bulk(v),
        None => Reply::Nil,
    }
}

/// ```text
/// LSET key index element
/// ```
/// Set the value of an element in a list by its index.
fn lset(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let fill = fill(ctx.shard);
    let l = match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => return Reply::err(error::NO_KEY),
        Ok(Some(l)) => l,
    };
    let i = match args.int(2) {
        Ok(i) => i,
        Err(e) => return e,
    };
    match index_of(i, l.len()) {
        Some(i) if l.set(i, args.get(3), fill) => {}
        _ => return Reply::err(error::OUT_OF_RANGE),
    }
    ctx.shard.touch(ctx.db, key);
    ctx.notify(notify::LIST, "lset", key);
    ctx.dirty(1);
    Reply::Ok
}

/// ```text
/// LINSERT key <BEFORE | AFTER> pivot element
/// ```
/// Insert an element before or after another element in a list.
fn linsert(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let after = if args.is(2, "after") {
        true
    } else if args.is(2, "before") {
        false
    } else {
        return Reply::err(error::SYNTAX);
    };
    let pivot = args.get(3);
    let fill = fill(ctx.shard);
    let l = match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    let Some(at) = l.iter().position(|e| e == pivot) else {
        return Reply::Int(-1);
    };
    l.insert(at + after as usize, args.get(4), fill);
    let len = l.len();
    ctx.shard.touch(ctx.db, key);
    ctx.shard.signal_ready(ctx.db, key);
    ctx.notify(notify::LIST, "linsert", key);
    ctx.dirty(1);
    Reply::Int(len as i64)
}

/// ```text
/// LREM key count element
/// ```
/// Remove elements from a list.
fn lrem(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let count = match args.int(2) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let elem = args.get(3);
    let fill = fill(ctx.shard);
    let l = match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    let removed = if count >= 0 {
        // From the head; 0 removes all.
        let limit = if count == 0 { u64::MAX } else { count as u64 };
        let mut removed = 0u64;
        l.retain(
            |e| {
                if removed < limit && e == elem {
                    removed += 1;
                    false
                } else {
                    true
                }
            },
            fill,
        )
    } else {
        // From the tail: keep the first (matches - |count|) matches.
        let matches = l.iter().filter(|&e| e == elem).count() as u64;
        let mut keep = matches.saturating_sub(count.unsigned_abs());
        l.retain(
            |e| {
                if e == elem {
                    if keep > 0 {
                        keep -= 1;
                        true
                    } else {
                        false
                    }
                } else {
                    true
                }
            },
            fill,
        )
    };
    let empty = l.is_empty();
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", key);
        if empty {
            ctx.shard.remove(ctx.db, key);
            ctx.notify(notify::GENERIC, "del", key);
        } else {
            ctx.shard.touch(ctx.db, key);
        }
        ctx.dirty(removed as u64);
    }
    Reply::Int(removed as i64)
}

/// ```text
/// LTRIM key start stop
/// ```
/// Trim a list to the specified range.
fn ltrim(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (start, stop) = match (args.int(2), args.int(3)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let l = match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => return Reply::Ok,
        Ok(Some(l)) => l,
    };
    let len = l.len();
    let removed = match range(start, stop, len) {
        None => len,
        Some((a, b)) => {
            l.trim(a, b + 1);
            len - l.len()
        }
    };
    let empty = removed == len;
    ctx.notify(notify::LIST, "ltrim", key);
    if empty {
        ctx.shard.remove(ctx.db, key);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.shard.touch(ctx.db, key);
    }
    ctx.dirty(removed as u64);
    Reply::Ok
}

/// ```text
/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
/// ```
/// Return the index of matching elements on a list.
fn lpos(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let elem = args.get(2);
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if more && args.is(i, "rank") {
            i += 1;
            rank = match args.int(i) {
                Ok(r) => r,
                Err(e) => return e,
            };
            if rank == 0 {
                return Reply::err(RANK_ZERO);
            }
        } else if more && args.is(i, "count") {
            i += 1;
            count = match positive(args.get(i), COUNT_NEGATIVE) {
                Ok(c) => Some(c),
                Err(e) => return e,
            };
        } else if more && args.is(i, "maxlen") {
            i += 1;
            maxlen = match positive(args.get(i), MAXLEN_NEGATIVE) {
                Ok(m) => m,
                Err(e) => return e,
            };
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 1;
    }
    // A negative rank searches from the tail. Redis negates in C, so
    // LONG_MIN stays negative and then matches from the first hit on: keep
    // that with wrapping arithmetic.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let l = match list_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Nil
            };
        }
        Ok(Some(l)) => l,
    };
    let len = l.len();
    let maxlen = if maxlen == 0 {
        usize::MAX
    } else {
        usize::try_from(maxlen).unwrap_or(usize::MAX)
    };
    let mut out = Vec::new();
    let mut matches: i64 = 0;
    let mut scan = |index: usize, e: &[u8]| -> bool {
        // Returns true to stop.
        if e != elem {
            return false;
        }
        matches = matches.wrapping_add(1);
        if matches < rank {
            return false;
        }
        let pos = if from_tail { len - index - 1 } else { index };
        out.push(Reply::Int(pos as i64));
        match count {
            None => true,
            Some(0) => false,
            Some(c) => matches.wrapping_sub(rank).wrapping_add(1) >= c,
        }
    };
    if from_tail {
        for (index, e) in l.iter().rev().enumerate().take(maxlen) {
            if scan(index, e) {
                break;
            }
        }
    } else {
        for (index, e) in l.iter().enumerate().take(maxlen) {
            if scan(index, e) {
                break;
            }
        }
    }
    match count {
        Some(_) => Reply::Array(out),
        None => out.pop().unwrap_or(Reply::Nil),
    }
}

/// Moves one element from `src` to `dst` (LMOVE semantics). Returns the
/// reply and whether something moved.
fn do_move(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) -> (Reply, bool) {
    let (db, now) = (ctx.db, ctx.now_ms);
    match list_at(ctx.shard, db, src, now, false) {
        Err(e) => return (e, false),
        Ok(None) => return (Reply::Nil, false),
        Ok(Some(l)) if l.is_empty() => return (Reply::Nil, false),
        Ok(Some(_)) => {}
    }
    // The destination's type is checked before anything is popped.
    if src != dst {
        if let Err(e) = list_at(ctx.shard, db, dst, now, false) {
            return (e, false);
        }
    }
    let fill = fill(ctx.shard);
    let Ok(Some(l)) = list_at(ctx.shard, db, src, now, false) else {
        return (Reply::Nil, false);
    };
    let Some(v) = (if from_left {
        l.pop_front()
    } else {
        l.pop_back()
    }) else {
        return (Reply::Nil, false);
    };
    let push = |l: &mut PackedList| {
        if to_left {
            l.push_front(&v, fill);
        } else {
            l.push_back(&v, fill);
        }
    };
    let src_gone = src != dst && l.is_empty();
    if src == dst {
        push(l);
        ctx.shard.touch(db, src);
    } else {
        if l.is_empty() {
            ctx.shard.remove(db, src);
        } else {
            ctx.shard.touch(db, src);
        }
        match list_at(ctx.shard, db, dst, now, false) {
            Ok(Some(d)) => {
                push(d);
                ctx.shard.touch(db, dst);
            }
            _ => {
                let mut d = Box::new(PackedList::new());
                push(&mut d);
                ctx.shard.set(db, dst, Value::List(d), now);
            }
        }
    }
    ctx.shard.signal_ready(db, dst);
    ctx.notify(notify::LIST, if to_left { "lpush" } else { "rpush" }, dst);
    ctx.notify(notify::LIST, if from_left { "lpop" } else { "rpop" }, src);
    if src_gone {
        ctx.notify(notify::GENERIC, "del", src);
    }
    ctx.dirty(1);
    (Reply::Bulk(v), true)
}

/// ```text
/// LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>
/// ```
/// Pop an element from a list, push it to another list and return it.
fn lmove(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (from, to) = match (parse_side(args.get(3)), parse_side(args.get(4))) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    do_move(ctx, args.get(1), args.get(2), from, to).0
}

/// ```text
/// RPOPLPUSH source destination
/// ```
/// Remove the last element in a list, prepend it to another list and return
/// it.
fn rpoplpush(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    do_move(ctx, args.get(1), args.get(2), false, true).0
}

/// Parsed LMPOP / BLMPOP arguments.
struct MPop {
    first_key: usize,
    numkeys: usize,
    left: bool,
    count: usize,
}

/// Parses `numkeys key [key ...] LEFT|RIGHT [COUNT count]` starting at
/// argument `at`.
fn parse_mpop(args: &Args, at: usize) -> Result<MPop, Reply> {
    let numkeys = match parse_i64(args.get(at)) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(Reply::err(NUMKEYS)),
    };
    let where_idx = (at as u64 + 1).saturating_add(numkeys);
    if where_idx >= args.len() as u64 {
        return Err(Reply::err(error::SYNTAX));
    }
    let where_idx = where_idx as usize;
    let left = parse_side(args.get(where_idx))?;
    let mut count = None;
    let mut i = where_idx + 1;
    while i < args.len() {
        if count.is_none() && i + 1 < args.len() && args.is(i, "count") {
            i += 1;
            match parse_i64(args.get(i)) {
                Some(c) if c >= 1 => count = Some(c),
                _ => return Err(Reply::err(COUNT_POSITIVE)),
            }
        } else {
            return Err(Reply::err(error::SYNTAX));
        }
        i += 1;
    }
    Ok(MPop {
        first_key: at + 1,
        numkeys: numkeys as usize,
        left,
        count: usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX),
    })
}

/// LMPOP's keys: `numkeys` of them after the numkeys argument.
fn lmpop_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let p = parse_mpop(args, 1)?;
    Ok((p.first_key..p.first_key + p.numkeys).collect())
}

/// BLMPOP's keys; the timeout is checked first, as the command does.
fn blmpop_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    parse_timeout(args.get(1), 0)?;
    let p = parse_mpop(args, 2)?;
    Ok((p.first_key..p.first_key + p.numkeys).collect())
}

/// Pops from the first non-empty list among the parsed keys. `None` when
/// all are empty.
fn mpop(ctx: &mut Ctx, p: &MPop) -> Option<Reply> {
    let args = ctx.args;
    for i in p.first_key..p.first_key + p.numkeys {
        let key = args.get(i);
        match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
            Err(e) => return Some(e),
            Ok(None) => continue,
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(_)) => {}
        }
        let got = pop_n(ctx, key, p.left, p.count);
        // Replicated as [LR]POP key count, as Redis does.
        ctx.propagate_as(vec![vec![
            side_word(p.left, true),
            Bytes::copy_from_slice(key),
            Bytes::from(got.len().to_string()),
        ]]);
        return Some(Reply::Array(vec![
            Reply::bulk(key),
            Reply::Array(got.into_iter().map(Reply::Bulk).collect()),
        ]));
    }
    None
}

/// ```text
/// LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]
/// ```
/// Pop elements from a list.
fn lmpop(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    match parse_mpop(&args, 1) {
        Err(e) => e,
        Ok(p) => mpop(ctx, &p).unwrap_or(Reply::NilArray),
    }
}

/// ```text
/// BLMPOP timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]
/// ```
/// Pop elements from a list, or block until one is available.
fn blmpop(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let deadline = match parse_timeout(args.get(1), ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let p = match parse_mpop(&args, 2) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Some(r) = mpop(ctx, &p) {
        return r;
    }
    let keys = (p.first_key..p.first_key + p.numkeys)
        .map(|i| Bytes::copy_from_slice(args.get(i)))
        .collect();
    block_on(ctx, keys, deadline, Reply::NilArray)
}

fn bpop(ctx: &mut Ctx, left: bool) -> Reply {
    let args = ctx.args;
    let last = args.len() - 1;
    let deadline = match parse_timeout(args.get(last), ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return e,
    };
    for i in 1..last {
        let key = args.get(i);
        match list_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(_)) => {}
        }
        let Some(v) = pop_n(ctx, key, left, 1).pop() else {
            continue;
        };
        ctx.propagate_as(vec![vec![
            side_word(left, true),
            Bytes::copy_from_slice(key),
        ]]);
        return Reply::Array(vec![Reply::bulk(key), Reply::Bulk(v)]);
    }
    let keys = (1..last)
        .map(|i| Bytes::copy_from_slice(args.get(i)))
        .collect();
    block_on(ctx, keys, deadline, Reply::NilArray)
}

/// ```text
/// BLPOP key [key ...] timeout
/// ```
/// Remove and get the first element in a list, or block until one is
/// available.
fn blpop(ctx: &mut Ctx) -> Reply {
    bpop(ctx, true)
}

/// ```text
/// BRPOP key [key ...] timeout
/// ```
/// Remove and get the last element in a list, or block until one is
/// available.
fn brpop(ctx: &mut Ctx) -> Reply {
    bpop(ctx, false)
}

/// The blocking moves: serve like LMOVE when the source has elements.
fn bmove(ctx: &mut Ctx, from: bool, to: bool, timeout: &[u8], as_rpoplpush: bool) -> Reply {
    let args = ctx.args;
    let (src, dst) = (args.get(1), args.get(2));
    let deadline = match parse_timeout(timeout, ctx.now_ms) {
        Ok(d) => d,
        Err(e) => return e,
    };
    match list_at(ctx.shard, ctx.db, src, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(Some(l)) if !l.is_empty() => {}
        _ => {
            // MULTI answers a nil bulk at once; a timeout a nil array.
            return if ctx.in_multi {
                Reply::Nil
            } else {
                block_on(
                    ctx,
                    vec![Bytes::copy_from_slice(src)],
                    deadline,
                    Reply::NilArray,
                )
            };
        }
    }
    let (reply, moved) = do_move(ctx, src, dst, from, to);
    if moved {
        let (s, d) = (Bytes::copy_from_slice(src), Bytes::copy_from_slice(dst));
        let argv = if as_rpoplpush {
            vec![Bytes::from_static(b"RPOPLPUSH"), s, d]
        } else {
            vec![
                Bytes::from_static(b"LMOVE"),
                s,
                d,
                side_word(from, false),
                side_word(to, false),
            ]
        };
        ctx.propagate_as(vec![argv]);
    }
    reply
}

/// ```text
/// BLMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout
/// ```
/// Pop an element from a list, push it to another list and return it; or
/// block until one is available.
fn blmove(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (from, to) = match (parse_side(args.get(3)), parse_side(args.get(4))) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    bmove(ctx, from, to, args.get(5), false)
}

/// ```text
/// BRPOPLPUSH source destination timeout
/// ```
/// Pop an element from a list, push it to another list and return it; or
/// block until one is available.
fn brpoplpush(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    bmove(ctx, false, true, args.get(3), true)
}

#[cfg(test)]
mod tests {
    use super::super::{bulk, err};
    use super::super::{run, t};
    use crate::reply::Reply;
    use crate::shard::Shard;
    use bytes::Bytes;

    fn arr(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }
    fn ints(items: &[i64]) -> Reply {
        Reply::Array(items.iter().map(|&i| Reply::Int(i)).collect())
    }
    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    fn log_argv(s: &mut Shard) -> Vec<String> {
        s.take_log()
            .into_iter()
            .map(|r| {
                r.argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn push_pop_len_range() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "LPUSHX l a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "EXISTS l"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "RPUSH l a b c"), Reply::Int(3));
        assert_eq!(t(&mut s, 0, "LPUSH l z y"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "RPUSHX l d"), Reply::Int(6));
        assert_eq!(
            t(&mut s, 0, "LRANGE l 0 -1"),
            arr(&["y", "z", "a", "b", "c", "d"])
        );
        assert_eq!(t(&mut s, 0, "LRANGE l -2 100"), arr(&["c", "d"]));
        assert_eq!(t(&mut s, 0, "LRANGE l -100 0"), arr(&["y"]));
        assert_eq!(t(&mut s, 0, "LRANGE l 4 2"), arr(&[]));
        assert_eq!(t(&mut s, 0, "LRANGE l 6 10"), arr(&[]));
        assert_eq!(t(&mut s, 0, "LRANGE nokey 0 -1"), arr(&[]));
        assert_eq!(t(&mut s, 0, "LRANGE l x 1"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LRANGE nokey 0 x"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LLEN l"), Reply::Int(6));
        assert_eq!(t(&mut s, 0, "LLEN nokey"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "LPOP l"), bulk("y"));
        assert_eq!(t(&mut s, 0, "RPOP l"), bulk("d"));
        assert_eq!(t(&mut s, 0, "LPOP l 2"), arr(&["z", "a"]));
        assert_eq!(t(&mut s, 0, "LPOP l 0"), arr(&[]));
        assert_eq!(t(&mut s, 0, "RPOP l 10"), arr(&["c", "b"]));
        assert_eq!(
            t(&mut s, 0, "EXISTS l"),
            Reply::Int(0),
            "emptied list is deleted"
        );
        assert_eq!(t(&mut s, 0, "LPOP l"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LPOP l 1"), Reply::NilArray);
        assert_eq!(t(&mut s, 0, "LPOP l 0"), Reply::NilArray);
        assert_eq!(t(&mut s, 0, "LPOP l -1"), err(crate::error::NOT_POSITIVE));
        assert_eq!(t(&mut s, 0, "LPOP l x"), err(crate::error::NOT_POSITIVE));
        assert_eq!(
            t(&mut s, 0, "LPOP l 1 2"),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(t(&mut s, 0, "RPOP l 9223372036854775807"), Reply::NilArray);
        t(&mut s, 0, "SET s x");
        for c in [
            "LPUSH s a",
            "RPUSHX s a",
            "LPOP s",
            "LPOP s 0",
            "LLEN s",
            "LRANGE s 0 1",
        ] {
            assert_eq!(t(&mut s, 0, c), err(WT), "{c}");
        }
    }

    #[test]
    fn index_set_insert() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "RPUSH l a b c");
        assert_eq!(t(&mut s, 0, "LINDEX l 0"), bulk("a"));
        assert_eq!(t(&mut s, 0, "LINDEX l -1"), bulk("c"));
        assert_eq!(t(&mut s, 0, "LINDEX l 3"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LINDEX l -4"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LINDEX l x"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LINDEX nokey x"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LSET l -1 C"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "LSET l 3 C"), err("ERR index out of range"));
        assert_eq!(t(&mut s, 0, "LSET l -4 C"), err("ERR index out of range"));
        assert_eq!(t(&mut s, 0, "LSET l x C"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LSET nokey x C"), err("ERR no such key"));
        assert_eq!(t(&mut s, 0, "LINSERT l BEFORE b x"), Reply::Int(4));
        assert_eq!(t(&mut s, 0, "LINSERT l after C y"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "LINSERT l AFTER zz y"), Reply::Int(-1));
        assert_eq!(t(&mut s, 0, "LINSERT nokey AFTER zz y"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "LINSERT l MIDDLE a b"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "LRANGE l 0 -1"),
            arr(&["a", "x", "b", "C", "y"])
        );
        t(&mut s, 0, "SET s x");
        for c in ["LINDEX s 0", "LSET s 0 a", "LINSERT s BEFORE a b"] {
            assert_eq!(t(&mut s, 0, c), err(WT), "{c}");
        }
    }

    #[test]
    fn rem_and_trim() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "RPUSH l a b a c a b a");
        assert_eq!(t(&mut s, 0, "LREM l 2 a"), Reply::Int(2));
        assert_eq!(
            t(&mut s, 0, "LRANGE l 0 -1"),
            arr(&["b", "c", "a", "b", "a"])
        );
        assert_eq!(t(&mut s, 0, "LREM l -1 b"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "LRANGE l 0 -1"), arr(&["b", "c", "a", "a"]));
        assert_eq!(t(&mut s, 0, "LREM l -9223372036854775808 a"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "LREM l 0 zz"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "LREM l x a"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LREM nokey 0 a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "LREM l 0 b"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "LREM l 0 c"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "EXISTS l"), Reply::Int(0));
        t(&mut s, 0, "RPUSH l 0 1 2 3 4 5");
        assert_eq!(t(&mut s, 0, "LTRIM l 1 -2"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "LRANGE l 0 -1"), arr(&["1", "2", "3", "4"]));
        assert_eq!(t(&mut s, 0, "LTRIM l -100 100"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "LRANGE l 0 -1"), arr(&["1", "2", "3", "4"]));
        assert_eq!(t(&mut s, 0, "LTRIM l x 1"), err(crate::error::NOT_INT));
        assert_eq!(t(&mut s, 0, "LTRIM nokey 0 1"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "LTRIM l 3 1"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "EXISTS l"), Reply::Int(0));
        t(&mut s, 0, "SET s x");
        assert_eq!(t(&mut s, 0, "LREM s 0 a"), err(WT));
        assert_eq!(t(&mut s, 0, "LTRIM s 0 1"), err(WT));
    }

    #[test]
    fn lpos_options() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "RPUSH l a b c a b c");
        assert_eq!(t(&mut s, 0, "LPOS l c"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "LPOS l zz"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LPOS l c RANK 2"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "LPOS l c RANK -1"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "LPOS l c RANK -2"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "LPOS l c RANK 3"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LPOS l a COUNT 0"), ints(&[0, 3]));
        assert_eq!(t(&mut s, 0, "LPOS l a RANK -1 COUNT 0"), ints(&[3, 0]));
        assert_eq!(t(&mut s, 0, "LPOS l a COUNT 1"), ints(&[0]));
        assert_eq!(t(&mut s, 0, "LPOS l a RANK 2 COUNT 5"), ints(&[3]));
        assert_eq!(t(&mut s, 0, "LPOS l zz COUNT 1"), ints(&[]));
        assert_eq!(t(&mut s, 0, "LPOS l c MAXLEN 3"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "LPOS l c RANK 2 MAXLEN 3"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LPOS l a RANK -1 MAXLEN 2"), Reply::Nil);
        assert_eq!(
            t(&mut s, 0, "LPOS l a RANK -9223372036854775808"),
            Reply::Int(3)
        );
        assert_eq!(
            t(&mut s, 0, "LPOS l a RANK 0"),
            err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
        );
        assert_eq!(t(&mut s, 0, "LPOS l a RANK x"), err(crate::error::NOT_INT));
        assert_eq!(
            t(&mut s, 0, "LPOS l a COUNT -1"),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            t(&mut s, 0, "LPOS l a COUNT x"),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            t(&mut s, 0, "LPOS l a MAXLEN -1"),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(t(&mut s, 0, "LPOS l a FOO"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "LPOS l a RANK"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "LPOS nokey a"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LPOS nokey a COUNT 0"), ints(&[]));
        t(&mut s, 0, "SET s x");
        assert_eq!(t(&mut s, 0, "LPOS s a"), err(WT));
    }

    #[test]
    fn moves() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "RPUSH a 1 2 3");
        assert_eq!(t(&mut s, 0, "LMOVE a b LEFT RIGHT"), bulk("1"));
        assert_eq!(t(&mut s, 0, "LMOVE a b right left"), bulk("3"));
        assert_eq!(t(&mut s, 0, "LRANGE b 0 -1"), arr(&["3", "1"]));
        assert_eq!(t(&mut s, 0, "RPOPLPUSH b b"), bulk("1"));
        assert_eq!(t(&mut s, 0, "LRANGE b 0 -1"), arr(&["1", "3"]));
        assert_eq!(
            t(&mut s, 0, "RPOPLPUSH a a"),
            bulk("2"),
            "single element onto itself"
        );
        assert_eq!(t(&mut s, 0, "LRANGE a 0 -1"), arr(&["2"]));
        assert_eq!(t(&mut s, 0, "RPOPLPUSH a b"), bulk("2"));
        assert_eq!(t(&mut s, 0, "EXISTS a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "LMOVE a b LEFT LEFT"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "LMOVE a b UP LEFT"), err("ERR syntax error"));
        t(&mut s, 0, "SET s x");
        assert_eq!(t(&mut s, 0, "LMOVE b s LEFT LEFT"), err(WT));
        assert_eq!(
            t(&mut s, 0, "LRANGE b 0 -1"),
            arr(&["2", "1", "3"]),
            "nothing popped"
        );
        assert_eq!(t(&mut s, 0, "LMOVE s b LEFT LEFT"), err(WT));
        assert_eq!(t(&mut s, 0, "LMOVE nokey s LEFT LEFT"), Reply::Nil);
    }

    #[test]
    fn lmpop_and_keys() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        t(&mut s, 0, "RPUSH b 1 2 3");
        assert_eq!(
            t(&mut s, 0, "LMPOP 2 a b RIGHT COUNT 2"),
            Reply::Array(vec![bulk("b"), arr(&["3", "2"])])
        );
        assert_eq!(
            t(&mut s, 0, "LMPOP 2 a b left COUNT 10"),
            Reply::Array(vec![bulk("b"), arr(&["1"])])
        );
        assert_eq!(t(&mut s, 0, "LMPOP 1 b LEFT"), Reply::NilArray);
        assert_eq!(log_argv(&mut s), ["RPUSH b 1 2 3", "RPOP b 2", "LPOP b 1"]);
        for (c, e) in [
            ("LMPOP 0 a LEFT", "ERR numkeys should be greater than 0"),
            ("LMPOP x a LEFT", "ERR numkeys should be greater than 0"),
            ("LMPOP 2 a LEFT", "ERR syntax error"),
            ("LMPOP 9223372036854775807 a LEFT", "ERR syntax error"),
            ("LMPOP 1 a MIDDLE", "ERR syntax error"),
            (
                "LMPOP 1 a LEFT COUNT 0",
                "ERR count should be greater than 0",
            ),
            (
                "LMPOP 1 a LEFT COUNT x",
                "ERR count should be greater than 0",
            ),
            ("LMPOP 1 a LEFT COUNT 1 COUNT 1", "ERR syntax error"),
            ("LMPOP 1 a LEFT COUNT", "ERR syntax error"),
            (
                "BLMPOP x 1 a LEFT",
                "ERR timeout is not a float or out of range",
            ),
            ("BLMPOP 0 0 a LEFT", "ERR numkeys should be greater than 0"),
        ] {
            assert_eq!(t(&mut s, 0, c), err(e), "{c}");
        }
        t(&mut s, 0, "SET s x");
        assert_eq!(t(&mut s, 0, "LMPOP 2 nokey s LEFT"), err(WT));
        // Key positions for the node.
        let reg = super::super::registry();
        let keys = |cmd: &str| {
            let parts: Vec<&[u8]> = cmd.split(' ').map(|p| p.as_bytes()).collect();
            let owned = crate::args::OwnedArgs::from_iter(parts.iter().copied());
            let args = owned.as_args();
            let spec = reg.lookup(args.get(0)).unwrap();
            let mut out = Vec::new();
            spec.key_indices(&args, &mut out).map(|_| out)
        };
        assert_eq!(keys("LMPOP 2 a b LEFT"), Ok(vec![2, 3]));
        assert_eq!(keys("BLMPOP 0 2 a b LEFT COUNT 3"), Ok(vec![3, 4]));
        assert!(keys("LMPOP 3 a b LEFT").is_err());
        assert!(keys("BLMPOP x 1 a LEFT").is_err());
        assert_eq!(keys("BLPOP a b 0"), Ok(vec![1, 2]));
        assert_eq!(keys("BLMOVE a b LEFT LEFT 0"), Ok(vec![1, 2]));
    }

    #[test]
    fn timeouts() {
        use super::parse_timeout;
        assert_eq!(parse_timeout(b"0", 1000), Ok(None));
        assert_eq!(parse_timeout(b"1.5", 1000), Ok(Some(2500)));
        assert_eq!(parse_timeout(b"0.0001", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b"-0.0001", 1000), Ok(None));
        assert_eq!(parse_timeout(b"1e-400", 1000), Ok(Some(1001)));
        assert_eq!(parse_timeout(b"0x10", 1000), Ok(Some(17000)));
        assert_eq!(parse_timeout(b"-1", 0), Err(err("ERR timeout is negative")));
        assert_eq!(
            parse_timeout(b"inf", 0),
            Err(err("ERR timeout is negative"))
        );
        assert_eq!(
            parse_timeout(b"1e16", 0),
            Err(err("ERR timeout is negative"))
        );
        assert_eq!(
            parse_timeout(b"nan", 0),
            Err(err("ERR timeout is not a float or out of range"))
        );
        assert_eq!(
            parse_timeout(b"x", 0),
            Err(err("ERR timeout is not a float or out of range"))
        );
        assert!(matches!(
            parse_timeout(b"1e15", i64::MAX - 5),
            Ok(Some(i64::MAX))
        ));
    }

    fn run_ctx(
        s: &mut Shard,
        now: i64,
        in_multi: bool,
        cmd: &str,
    ) -> (Reply, Option<super::Block>) {
        let parts: Vec<&[u8]> = cmd.split(' ').map(|p| p.as_bytes()).collect();
        let owned = crate::args::OwnedArgs::from_iter(parts.iter().copied());
        let args = owned.as_args();
        let spec = super::super::registry().lookup(args.get(0)).unwrap();
        let mut ctx = super::Ctx::new(s, 0, now, args);
        ctx.in_multi = in_multi;
        let r = super::super::execute(spec, &mut ctx);
        (r, ctx.block)
    }

    #[test]
    fn blocking_pops() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        // Nothing to take: block, replying what a timeout replies.
        let (r, b) = run_ctx(&mut s, 1000, false, "BLPOP a b 1.5");
        assert_eq!(r, Reply::NilArray);
        let b = b.unwrap();
        assert_eq!(b.keys, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(b.deadline_ms, Some(2500));
        let (_, b) = run_ctx(&mut s, 1000, false, "BRPOP a 0");
        assert_eq!(b.unwrap().deadline_ms, None);
        // Inside MULTI: no block, immediate nil.
        let (r, b) = run_ctx(&mut s, 1000, true, "BLPOP a 0");
        assert_eq!((r, b), (Reply::NilArray, None));
        let (r, b) = run_ctx(&mut s, 1000, true, "BLMOVE a b LEFT LEFT 0");
        assert_eq!((r, b), (Reply::Nil, None));
        let (r, b) = run_ctx(&mut s, 1000, false, "BRPOPLPUSH a b 0");
        assert_eq!(r, Reply::NilArray);
        assert_eq!(b.unwrap().keys, vec![Bytes::from("a")]);
        let (r, b) = run_ctx(&mut s, 1000, false, "BLMPOP 0 2 a b LEFT");
        assert_eq!(r, Reply::NilArray);
        assert_eq!(b.unwrap().keys.len(), 2);
        assert!(
            log_argv(&mut s).is_empty(),
            "blocking without popping logs nothing"
        );

        // Data present: served at once, logged as the non-blocking form.
        t(&mut s, 0, "RPUSH b x y z w");
        let (r, b) = run_ctx(&mut s, 1000, false, "BLPOP a b 0");
        assert_eq!((r, b), (Reply::Array(vec![bulk("b"), bulk("x")]), None));
        assert_eq!(
            t(&mut s, 0, "BRPOP a b 0"),
            Reply::Array(vec![bulk("b"), bulk("w")])
        );
        assert_eq!(t(&mut s, 0, "BLMOVE b c RIGHT LEFT 0"), bulk("z"));
        assert_eq!(t(&mut s, 0, "BRPOPLPUSH b c 0"), bulk("y"));
        assert_eq!(
            t(&mut s, 0, "BLMPOP 0 2 b c LEFT COUNT 5"),
            Reply::Array(vec![bulk("c"), arr(&["y", "z"])])
        );
        assert_eq!(
            log_argv(&mut s),
            [
                "RPUSH b x y z w",
                "LPOP b",
                "RPOP b",
                "LMOVE b c RIGHT LEFT",
                "RPOPLPUSH b c",
                "LPOP c 2"
            ]
        );
        // Errors.
        t(&mut s, 0, "SET s x");
        assert_eq!(t(&mut s, 0, "BLPOP nokey s 0"), err(WT));
        assert_eq!(
            t(&mut s, 0, "BLPOP a x"),
            err("ERR timeout is not a float or out of range")
        );
        assert_eq!(t(&mut s, 0, "BLPOP a -1"), err("ERR timeout is negative"));
        assert_eq!(
            t(&mut s, 0, "BLMOVE a s UP LEFT x"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "BLMOVE a s LEFT LEFT x"),
            err("ERR timeout is not a float or out of range")
        );
        assert_eq!(t(&mut s, 0, "BLMOVE s a LEFT LEFT 0"), err(WT));
        t(&mut s, 0, "RPUSH a 1");
        assert_eq!(t(&mut s, 0, "BLMOVE a s LEFT LEFT 0"), err(WT));
        assert_eq!(t(&mut s, 0, "LLEN a"), Reply::Int(1));
    }

    #[test]
    fn chunks_follow_list_max_listpack_size() {
        let mut s = Shard::new(1, 1);
        let chunks = |s: &mut Shard, key: &[u8]| match s.dbs[0].get(key).map(|e| &e.value) {
            Some(crate::value::Value::List(l)) => l.chunk_count(),
            _ => 0,
        };
        t(&mut s, 0, "RPUSH a 1 2 3 4 5 6 7");
        assert_eq!(chunks(&mut s, b"a"), 1, "default: 8 KiB chunks");
        // As CONFIG SET list-max-listpack-size 2 does.
        s.limits.list_listpack_size = 2;
        t(&mut s, 0, "RPUSH b 1 2 3 4 5 6 7");
        assert_eq!(chunks(&mut s, b"b"), 4);
        t(&mut s, 0, "LINSERT a AFTER 3 x");
        t(&mut s, 0, "LSET a 0 y");
        assert_eq!(
            t(&mut s, 0, "LRANGE a 0 -1"),
            arr(&["y", "2", "3", "x", "4", "5", "6", "7"])
        );
        s.limits.list_listpack_size = -1;
        let big = "z".repeat(3000);
        t(&mut s, 0, &format!("LPUSH c {big} {big} {big}"));
        assert_eq!(chunks(&mut s, b"c"), 3, "4 KiB chunks hold one 3000 B item");
    }

    #[test]
    fn pushes_signal_ready() {
        let mut s = Shard::new(1, 1);
        s.set_blocked_on(0, b"a", true);
        s.set_blocked_on(0, b"d", true);
        t(&mut s, 0, "LPUSH a 1");
        assert_eq!(s.take_ready().len(), 1);
        t(&mut s, 0, "RPUSH a 1");
        t(&mut s, 0, "LINSERT a BEFORE 1 0");
        assert_eq!(s.take_ready().len(), 1);
        t(&mut s, 0, "LMOVE a d LEFT LEFT");
        assert_eq!(s.take_ready(), vec![(0u16, Box::<[u8]>::from(&b"d"[..]))]);
        t(&mut s, 0, "LPUSHX nokey 1");
        t(&mut s, 0, "LPOP a");
        assert!(s.take_ready().is_empty());
    }

    #[test]
    fn writes_touch_watched_keys() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "RPUSH l a b");
        let v = s.watch(0, b"l");
        t(&mut s, 0, "LRANGE l 0 -1");
        assert_eq!(s.watch_version(0, b"l"), v);
        t(&mut s, 0, "LSET l 0 x");
        assert_ne!(s.watch_version(0, b"l"), v);
        let v = s.watch_version(0, b"l");
        t(&mut s, 0, "RPOP l 5");
        assert_ne!(s.watch_version(0, b"l"), v);
        // A no-op write does not log.
        s.enable_log();
        t(&mut s, 0, "LREM nokey 0 a");
        t(&mut s, 0, "LPUSHX nokey a");
        assert!(s.take_log().is_empty());
        let _ = run(&mut s, 0, 0, &[b"LPUSH", b"k", b"a b"]);
        assert_eq!(t(&mut s, 0, "LINDEX k 0"), bulk("a b"));
    }
}
