//! Sorted set commands: ZADD, ZRANGE and the rest of Redis's `sorted_set`
//! group, including the blocking pops (BZPOPMIN, BZPOPMAX, BZMPOP).

use super::list::parse_timeout;
use super::set::{
    parse_rand_count, scan_cursor, scan_parse, scan_pick, scan_reply, too_many_repeats, Rng, Set,
    REPEAT_MAX,
};
use super::{check, drop_if_empty, flags::*, peek, write, Block, Ctx, Spec};
use crate::args::{parse_float, Args};
use crate::error;
use crate::notify;
use crate::reply::{fmt_g17, Reply};
use crate::setval::Member;
use crate::value::Value;
use crate::zset::{LexBound, ZSet};
use bytes::Bytes;
use hashbrown::HashMap;
use std::ops::Bound;

/// The zset family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), zadd),
    Spec::new("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), zincrby),
    Spec::new("zrem", -3, WRITE | FAST, (1, 1, 1), zrem),
    Spec::new("zcard", 2, READONLY | FAST, (1, 1, 1), zcard),
    Spec::new("zscore", 3, READONLY | FAST, (1, 1, 1), zscore),
    Spec::new("zmscore", -3, READONLY | FAST, (1, 1, 1), zmscore),
    Spec::new("zrank", 3, READONLY | FAST, (1, 1, 1), zrank),
    Spec::new("zrevrank", 3, READONLY | FAST, (1, 1, 1), zrevrank),
    Spec::new("zcount", 4, READONLY | FAST, (1, 1, 1), zcount),
    Spec::new("zlexcount", 4, READONLY | FAST, (1, 1, 1), zlexcount),
    Spec::new("zrange", -4, READONLY, (1, 1, 1), zrange),
    Spec::new("zrangebyscore", -4, READONLY, (1, 1, 1), zrangebyscore),
    Spec::new(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        zrevrangebyscore,
    ),
    Spec::new("zrangebylex", -4, READONLY, (1, 1, 1), zrangebylex),
    Spec::new("zrevrangebylex", -4, READONLY, (1, 1, 1), zrevrangebylex),
    Spec::new("zrevrange", -4, READONLY, (1, 1, 1), zrevrange),
    Spec::new("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), zrangestore),
    Spec::new("zremrangebyrank", 4, WRITE, (1, 1, 1), zremrangebyrank),
    Spec::new("zremrangebyscore", 4, WRITE, (1, 1, 1), zremrangebyscore),
    Spec::new("zremrangebylex", 4, WRITE, (1, 1, 1), zremrangebylex),
    Spec::new("zpopmin", -2, WRITE | FAST, (1, 1, 1), zpopmin),
    Spec::new("zpopmax", -2, WRITE | FAST, (1, 1, 1), zpopmax),
    Spec::new(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        bzpopmin,
    ),
    Spec::new(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        (1, -2, 1),
        bzpopmax,
    ),
    Spec::new("zmpop", -4, WRITE, (0, 0, 0), zmpop).movable(zmpop_keys),
    Spec::new("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), bzmpop).movable(bzmpop_keys),
    Spec::new("zrandmember", -2, READONLY, (1, 1, 1), zrandmember),
    Spec::new("zunion", -3, READONLY, (0, 0, 0), zunion).movable(zsrc_keys),
    Spec::new("zinter", -3, READONLY, (0, 0, 0), zinter).movable(zsrc_keys),
    Spec::new("zdiff", -3, READONLY, (0, 0, 0), zdiff).movable(zsrc_keys),
    Spec::new("zunionstore", -4, WRITE | DENYOOM, (1, 1, 1), zunionstore).movable(zstore_keys),
    Spec::new("zinterstore", -4, WRITE | DENYOOM, (1, 1, 1), zinterstore).movable(zstore_keys),
    Spec::new("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), zdiffstore).movable(zstore_keys),
    Spec::new("zintercard", -3, READONLY, (0, 0, 0), zintercard).movable(zsrc_keys),
    Spec::new("zscan", -3, READONLY, (1, 1, 1), zscan),
];

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const MINMAX_FLOAT: &str = "ERR min or max is not a float";
const MINMAX_LEX: &str = "ERR min or max not valid string range item";
const NUMKEYS: &str = "ERR numkeys should be greater than 0";

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

/// Records a modification that removed `n` members of `key`.
fn removed(ctx: &mut Ctx, key: &[u8], n: usize, event: &'static str) {
    if n > 0 {
        let gone = drop_if_empty(ctx, key);
        ctx.shard.touch(ctx.db, key);
        ctx.notify(notify::ZSET, event, key);
        if gone {
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.dirty(n as u64);
    }
}

/// Stores `z` at `dst`, overwriting it (an empty result deletes it), and
/// replies its size.
fn store(ctx: &mut Ctx, dst: &[u8], mut z: ZSet, event: &'static str) -> Reply {
    z.fit(&ctx.shard.limits);
    let n = z.len();
    let db = ctx.db;
    if n == 0 {
        if ctx.shard.remove(db, dst) {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
    } else {
        ctx.shard.set(db, dst, Value::ZSet(Box::new(z)), ctx.now_ms);
        ctx.shard.signal_ready(db, dst);
        ctx.notify(notify::ZSET, event, dst);
        ctx.dirty(1);
    }
    Reply::Int(n as i64)
}

/// Member/score pairs as a reply: pairs with scores, else members only.
fn items_reply<'a>(items: impl Iterator<Item = (&'a [u8], f64)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .map(|(m, s)| (Reply::bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.map(|(m, _)| Reply::bulk(m)).collect())
    }
}

/// ZADD's flags.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// What an add did.
struct AddResult {
    added: usize,
    updated: usize,
    /// The score of the last element actually processed (INCR's reply).
    score: Option<f64>,
}

/// Adds (score, member) pairs to the sorted set at `key` per `f`, creating
/// it unless XX; Redis's `zsetAdd` semantics.
fn add_members<'a>(
    ctx: &mut Ctx,
    key: &[u8],
    f: AddFlags,
    items: impl Iterator<Item = (f64, &'a [u8])>,
) -> Result<AddResult, Reply> {
    let mut r = AddResult {
        added: 0,
        updated: 0,
        score: None,
    };
    if write::<ZSet>(ctx, key)?.is_none() {
        if f.xx {
            return Ok(r);
        }
        ctx.shard
            .set(ctx.db, key, Value::ZSet(Box::default()), ctx.now_ms);
    }
    let mut err = None;
    let lim = ctx.shard.limits;
    if let Some(z) = write::<ZSet>(ctx, key)? {
        for (score, m) in items {
            match z.score(m) {
                Some(cur) => {
                    if f.nx {
                        continue;
                    }
                    let new = if f.incr { cur + score } else { score };
                    if new.is_nan() {
                        err = Some(Reply::err(NAN_SCORE));
                        break;
                    }
                    if (f.gt && new <= cur) || (f.lt && new >= cur) {
                        continue;
                    }
                    r.score = Some(new);
                    if new != cur {
                        z.insert(m, new, &lim);
                        r.updated += 1;
                    }
                }
                None => {
                    if f.xx {
                        continue;
                    }
                    z.insert(m, score, &lim);
                    r.score = Some(score);
                    r.added += 1;
                }
            }
        }
    }
    drop_if_empty(ctx, key);
    if r.added + r.updated > 0 {
        ctx.shard.touch(ctx.db, key);
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
        ctx.dirty((r.added + r.updated) as u64);
    }
    if r.added > 0 {
        ctx.shard.signal_ready(ctx.db, key);
    }
    match err {
        Some(e) => Err(e),
        None => Ok(r),
    }
}

/// ```text
/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
/// ```
/// Add one or more members to a sorted set, or update its score if it
/// already exists.
pub(crate) fn zadd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let mut f = AddFlags::default();
    let mut ch = false;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        match a.to_ascii_lowercase().as_slice() {
            b"nx" => f.nx = true,
            b"xx" => f.xx = true,
            b"gt" => f.gt = true,
            b"lt" => f.lt = true,
            b"ch" => ch = true,
            b"incr" => f.incr = true,
            _ => break,
        }
        i += 1;
    }
    let elements = args.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Reply::err(error::SYNTAX);
    }
    if f.nx && f.xx {
        return Reply::err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 2 {
        return Reply::err("ERR INCR option supports a single increment-element pair");
    }
    // Every score is checked before anything is written.
    let mut scores = Vec::with_capacity(elements / 2);
    for j in (i..args.len()).step_by(2) {
        scores.push(tri!(args.float(j)));
    }
    let items = scores
        .into_iter()
        .enumerate()
        .map(|(n, s)| (s, args.get(i + 2 * n + 1)));
    let r = tri!(add_members(ctx, key, f, items));
    if f.incr {
        r.score.map_or(Reply::Nil, Reply::Double)
    } else if ch {
        Reply::Int((r.added + r.updated) as i64)
    } else {
        Reply::Int(r.added as i64)
    }
}

/// ```text
/// ZINCRBY key increment member
/// ```
/// Increment the score of a member in a sorted set.
fn zincrby(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let incr = tri!(args.float(2));
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let r = tri!(add_members(
        ctx,
        args.get(1),
        f,
        std::iter::once((incr, args.get(3)))
    ));
    r.score.map_or(Reply::Nil, Reply::Double)
}

/// ```text
/// ZREM key member [member ...]
/// ```
/// Remove one or more members from a sorted set.
fn zrem(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let n = match tri!(write::<ZSet>(ctx, key)) {
        None => return Reply::Int(0),
        Some(z) => args.iter_from(2).filter(|m| z.remove(m).is_some()).count(),
    };
    removed(ctx, key, n, "zrem");
    Reply::Int(n as i64)
}

/// ```text
/// ZCARD key
/// ```
/// Get the number of members in a sorted set.
fn zcard(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<ZSet>(ctx, key));
    Reply::Int(peek::<ZSet>(ctx, key).map_or(0, |z| z.len() as i64))
}

/// ```text
/// ZSCORE key member
/// ```
/// Get the score associated with the given member in a sorted set.
fn zscore(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<ZSet>(ctx, key));
    peek::<ZSet>(ctx, key)
        .and_then(|z| z.score(ctx.args.get(2)))
        .map_or(Reply::Nil, Reply::Double)
}

/// ```text
/// ZMSCORE key member [member ...]
/// ```
/// Get the score associated with the given members in a sorted set.
fn zmscore(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<ZSet>(ctx, key));
    let z = peek::<ZSet>(ctx, key);
    Reply::Array(
        ctx.args
            .iter_from(2)
            .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
            .collect(),
    )
}

fn rank_generic(ctx: &mut Ctx, rev: bool) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<ZSet>(ctx, key));
    let Some(z) = peek::<ZSet>(ctx, key) else {
        return Reply::Nil;
    };
    match z.rank(ctx.args.get(2)) {
        Some(r) if rev => Reply::Int((z.len() - 1 - r) as i64),
        Some(r) => Reply::Int(r as i64),
        None => Reply::Nil,
    }
}

/// ```text
/// ZRANK key member
/// ```
/// Determine the index of a member in a sorted set.
fn zrank(ctx: &mut Ctx) -> Reply {
    rank_generic(ctx, false)
}

/// ```text
/// ZREVRANK key member
/// ```
/// Determine the index of a member in a sorted set, with scores ordered from
/// high to low.
fn zrevrank(ctx: &mut Ctx) -> Reply {
    rank_generic(ctx, true)
}

/// Parses one end of a score range: `(x` exclusive, `x` inclusive; as
/// `strtod` in Redis's `zslParseRange`, an empty number reads as 0 and a
/// number out of range as its rounding (infinite or zero).
fn parse_score_bound(s: &[u8]) -> Option<Bound<f64>> {
    let (excl, num) = match s.first() {
        Some(b'(') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = if num.is_empty() {
        0.0
    } else {
        crate::args::strtod(num)?.0
    };
    Some(if excl {
        Bound::Excluded(v)
    } else {
        Bound::Included(v)
    })
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<(Bound<f64>, Bound<f64>), Reply> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Reply::err(MINMAX_FLOAT)),
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<(LexBound, LexBound), Reply> {
    match (LexBound::parse(min), LexBound::parse(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(Reply::err(MINMAX_LEX)),
    }
}

/// ```text
/// ZCOUNT key min max
/// ```
/// Count the members in a sorted set with scores within the given values.
fn zcount(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (min, max) = tri!(parse_score_range(args.get(2), args.get(3)));
    tri!(check::<ZSet>(ctx, args.get(1)));
    Reply::Int(
        peek::<ZSet>(ctx, args.get(1)).map_or(0, |z| z.range_by_score(min, max).count() as i64),
    )
}

/// ```text
/// ZLEXCOUNT key min max
/// ```
/// Count the number of members in a sorted set between a given
/// lexicographical range.
fn zlexcount(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (min, max) = tri!(parse_lex_range(args.get(2), args.get(3)));
    tri!(check::<ZSet>(ctx, args.get(1)));
    Reply::Int(
        peek::<ZSet>(ctx, args.get(1)).map_or(0, |z| z.range_by_lex(&min, &max).count() as i64),
    )
}

/// Normalises a rank range as Redis does (negative from the end, clamped);
/// None when empty.
fn norm_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { start + len } else { start };
    let mut e = if end < 0 { end + len } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The shared body of ZRANGE, ZRANGESTORE and the older range commands:
/// Redis 7.0's `zrangeGenericCommand`. `at` is the index of the source key;
/// `dst` the destination of ZRANGESTORE; `rev` None lets REV decide.
fn zrange_generic(
    ctx: &mut Ctx,
    at: usize,
    dst: Option<&[u8]>,
    mut ty: RangeType,
    rev: Option<bool>,
) -> Reply {
    let args = ctx.args;
    let key = args.get(at);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut limit_given = false;
    let mut reverse = rev;
    let mut j = at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        if dst.is_none() && args.is(j, "withscores") {
            withscores = true;
        } else if args.is(j, "limit") && left >= 2 {
            offset = tri!(args.int(j + 1));
            limit = tri!(args.int(j + 2));
            limit_given = true;
            j += 2;
        } else if reverse.is_none() && args.is(j, "rev") {
            reverse = Some(true);
        } else if ty == RangeType::Auto && args.is(j, "bylex") {
            ty = RangeType::Lex;
        } else if ty == RangeType::Auto && args.is(j, "byscore") {
            ty = RangeType::Score;
        } else {
            return Reply::err(error::SYNTAX);
        }
        j += 1;
    }
    let reverse = reverse.unwrap_or(false);
    if ty == RangeType::Auto {
        ty = RangeType::Rank;
    }
    // Redis compares the limit with -1, so "LIMIT 0 -1" passes as no limit.
    if limit_given && limit != -1 && ty == RangeType::Rank {
        return Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && ty == RangeType::Lex {
        return Reply::err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut lo, mut hi) = (args.get(at + 1), args.get(at + 2));
    if reverse && ty != RangeType::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    enum R {
        Rank(i64, i64),
        Score(Bound<f64>, Bound<f64>),
        Lex(LexBound, LexBound),
    }
    let range = match ty {
        RangeType::Score => {
            let (a, b) = tri!(parse_score_range(lo, hi));
            R::Score(a, b)
        }
        RangeType::Lex => {
            let (a, b) = tri!(parse_lex_range(lo, hi));
            R::Lex(a, b)
        }
        _ => R::Rank(tri!(args.int(at + 1)), tri!(args.int(at + 2))),
    };
    let exists = tri!(check::<ZSet>(ctx, key));
    let items: Vec<(Bytes, f64)> = match peek::<ZSet>(ctx, key) {
        Some(z) if exists => {
            let window = |it: &mut dyn Iterator<Item = (&[u8], f64)>| -> Vec<(Bytes, f64)> {
                if offset < 0 || (offset > 0 && offset as u64 >= z.len() as u64) {
                    return Vec::new();
                }
                let take = if limit < 0 {
                    usize::MAX
                } else {
                    limit as usize
                };
                it.skip(offset as usize)
                    .take(take)
                    .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                    .collect()
            };
            match range {
                R::Rank(a, b) => match norm_ranks(a, b, z.len()) {
                    Some((s, e)) => z
                        .rank_range(s, e, reverse)
                        .into_iter()
                        .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                        .collect(),
                    None => Vec::new(),
                },
                R::Score(a, b) => {
                    let it = z.range_by_score(a, b);
                    if reverse {
                        window(&mut it.rev())
                    } else {
                        window(&mut { it })
                    }
                }
                R::Lex(a, b) => {
                    let it = z.range_by_lex(&a, &b);
                    if reverse {
                        window(&mut it.rev())
                    } else {
                        window(&mut { it })
                    }
                }
            }
        }
        _ => Vec::new(),
    };
    match dst {
        Some(d) => {
            // The packed form if it fits, as Redis's ZRANGESTORE.
            let mut z = ZSet::new_large();
            for (m, s) in items {
                z.insert(&m, s, &ctx.shard.limits);
            }
            store(ctx, d, z, "zrangestore")
        }
        None => items_reply(items.iter().map(|(m, s)| (&m[..], *s)), withscores),
    }
}

/// ```text
/// ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count]
///   [WITHSCORES]
/// ```
/// Return a range of members in a sorted set.
fn zrange(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Auto, None)
}

/// ```text
/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
/// ```
/// Store a range of members from sorted set into another key.
fn zrangestore(ctx: &mut Ctx) -> Reply {
    let dst = ctx.args.get(1);
    zrange_generic(ctx, 2, Some(dst), RangeType::Auto, None)
}

/// ```text
/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
/// ```
/// Return a range of members in a sorted set, by score.
fn zrangebyscore(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Score, Some(false))
}

/// ```text
/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
/// ```
/// Return a range of members in a sorted set, by score, with scores ordered
/// from high to low.
fn zrevrangebyscore(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Score, Some(true))
}

/// ```text
/// ZRANGEBYLEX key min max [LIMIT offset count]
/// ```
/// Return a range of members in a sorted set, by lexicographical range.
fn zrangebylex(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Lex, Some(false))
}

/// ```text
/// ZREVRANGEBYLEX key max min [LIMIT offset count]
/// ```
/// Return a range of members in a sorted set, by lexicographical range,
/// ordered from higher to lower strings.
fn zrevrangebylex(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Lex, Some(true))
}

/// ```text
/// ZREVRANGE key start stop [WITHSCORES]
/// ```
/// Return a range of members in a sorted set, by index, with scores ordered
/// from high to low.
fn zrevrange(ctx: &mut Ctx) -> Reply {
    zrange_generic(ctx, 1, None, RangeType::Rank, Some(true))
}

/// Removes the members `pick` selects from the sorted set at argument 1.
fn zremrange(ctx: &mut Ctx, event: &'static str, pick: impl FnOnce(&ZSet) -> Vec<Bytes>) -> Reply {
    let key = ctx.args.get(1);
    let n = match tri!(write::<ZSet>(ctx, key)) {
        None => return Reply::Int(0),
        Some(z) => {
            let victims = pick(z);
            for m in &victims {
                z.remove(m);
            }
            victims.len()
        }
    };
    removed(ctx, key, n, event);
    Reply::Int(n as i64)
}

/// ```text
/// ZREMRANGEBYRANK key start stop
/// ```
/// Remove all members in a sorted set within the given indexes.
fn zremrangebyrank(ctx: &mut Ctx) -> Reply {
    let (a, b) = (tri!(ctx.args.int(2)), tri!(ctx.args.int(3)));
    zremrange(ctx, "zremrangebyrank", |z| {
        match norm_ranks(a, b, z.len()) {
            Some((s, e)) => z
                .rank_range(s, e, false)
                .into_iter()
                .map(|(m, _)| Bytes::copy_from_slice(m))
                .collect(),
            None => Vec::new(),
        }
    })
}

/// ```text
/// ZREMRANGEBYSCORE key min max
/// ```
/// Remove all members in a sorted set within the given scores.
fn zremrangebyscore(ctx: &mut Ctx) -> Reply {
    let (a, b) = tri!(parse_score_range(ctx.args.get(2), ctx.args.get(3)));
    zremrange(ctx, "zremrangebyscore", |z| {
        z.range_by_score(a, b)
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect()
    })
}

/// ```text
/// ZREMRANGEBYLEX key min max
/// ```
/// Remove all members in a sorted set between the given lexicographical
/// range.
fn zremrangebylex(ctx: &mut Ctx) -> Reply {
    let (a, b) = tri!(parse_lex_range(ctx.args.get(2), ctx.args.get(3)));
    zremrange(ctx, "zremrangebylex", |z| {
        z.range_by_lex(&a, &b)
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect()
    })
}

/// Pops up to `count` members from the low (or high, `max`) end of the
/// sorted set at `key`, deleting the key when emptied.
fn pop_n(ctx: &mut Ctx, key: &[u8], max: bool, count: u64) -> Result<Vec<(Bytes, f64)>, Reply> {
    let Some(z) = write::<ZSet>(ctx, key)? else {
        return Ok(Vec::new());
    };
    let n = count.min(z.len() as u64) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match if max { z.pop_max() } else { z.pop_min() } {
            Some(p) => out.push(p),
            None => break,
        }
    }
    removed(ctx, key, out.len(), if max { "zpopmax" } else { "zpopmin" });
    Ok(out)
}

fn zpop_generic(ctx: &mut Ctx, max: bool) -> Reply {
    let args = ctx.args;
    if args.len() > 3 {
        return Reply::err(error::SYNTAX);
    }
    let count = if args.len() == 3 {
        match args.int(2) {
            Ok(n) if n >= 0 => Some(n as u64),
            _ => return Reply::err(error::NOT_POSITIVE),
        }
    } else {
        None
    };
    let popped = tri!(pop_n(ctx, args.get(1), max, count.unwrap_or(1)));
    match count {
        None => Reply::Array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
        Some(_) => Reply::Pairs(
            popped
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        ),
    }
}

/// ```text
/// ZPOPMIN key [count]
/// ```
/// Remove and return members with the lowest scores in a sorted set.
fn zpopmin(ctx: &mut Ctx) -> Reply {
    zpop_generic(ctx, false)
}

/// ```text
/// ZPOPMAX key [count]
/// ```
/// Remove and return members with the highest scores in a sorted set.
fn zpopmax(ctx: &mut Ctx) -> Reply {
    zpop_generic(ctx, true)
}

/// Parks the client on `keys` (outside MULTI) and replies the timeout's
/// null array.
fn block_on<'a>(
    ctx: &mut Ctx,
    keys: impl Iterator<Item = &'a [u8]>,
    deadline_ms: Option<i64>,
) -> Reply {
    if !ctx.in_multi {
        ctx.block = Some(Block {
            keys: keys.map(Bytes::copy_from_slice).collect(),
            deadline_ms,
            rerun: None,
        });
    }
    Reply::NilArray
}

fn pop_word(max: bool) -> Bytes {
    Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" })
}

fn bzpop_generic(ctx: &mut Ctx, max: bool) -> Reply {
    let args = ctx.args;
    let last = args.len() - 1;
    let deadline = tri!(parse_timeout(args.get(last), ctx.now_ms));
    for i in 1..last {
        let key = args.get(i);
        if tri!(write::<ZSet>(ctx, key)).is_none() {
            continue;
        }
        let popped = tri!(pop_n(ctx, key, max, 1));
        if let Some((m, s)) = popped.into_iter().next() {
            ctx.propagate_as(vec![vec![pop_word(max), Bytes::copy_from_slice(key)]]);
            return Reply::Array(vec![Reply::bulk(key), Reply::Bulk(m), Reply::Double(s)]);
        }
    }
    block_on(ctx, (1..last).map(|i| args.get(i)), deadline)
}

/// ```text
/// BZPOPMIN key [key ...] timeout
/// ```
/// Remove and return the member with the lowest score from one of the sorted
/// sets, or block until one is available.
fn bzpopmin(ctx: &mut Ctx) -> Reply {
    bzpop_generic(ctx, false)
}

/// ```text
/// BZPOPMAX key [key ...] timeout
/// ```
/// Remove and return the member with the highest score from one of the
/// sorted sets, or block until one is available.
fn bzpopmax(ctx: &mut Ctx) -> Reply {
    bzpop_generic(ctx, true)
}

/// Parses ZMPOP's numkeys at `at`: the number of keys that follow.
fn mpop_numkeys(args: &Args, at: usize) -> Result<usize, Reply> {
    let n = match args.int(at) {
        Ok(n) if n > 0 => n as u64,
        _ => return Err(Reply::err(NUMKEYS)),
    };
    // Room for the keys and MIN|MAX.
    if n > (args.len() as u64).saturating_sub(at as u64 + 2) {
        return Err(Reply::err(error::SYNTAX));
    }
    Ok(n as usize)
}

fn zmpop_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let n = mpop_numkeys(args, 1)?;
    Ok((2..2 + n).collect())
}

fn bzmpop_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let n = mpop_numkeys(args, 2)?;
    Ok((3..3 + n).collect())
}

/// ZMPOP and BZMPOP: numkeys at `at`, blocking when `blocking`.
fn mpop_generic(ctx: &mut Ctx, at: usize, blocking: bool) -> Reply {
    let args = ctx.args;
    let n = tri!(mpop_numkeys(&args, at));
    let w = at + 1 + n;
    let max = if args.is(w, "min") {
        false
    } else if args.is(w, "max") {
        true
    } else {
        return Reply::err(error::SYNTAX);
    };
    let mut count = None;
    let mut j = w + 1;
    while j < args.len() {
        if count.is_none() && args.is(j, "count") && j + 1 < args.len() {
            count = match args.int(j + 1) {
                Ok(c) if c > 0 => Some(c as u64),
                _ => return Reply::err("ERR count should be greater than 0"),
            };
            j += 2;
        } else {
            return Reply::err(error::SYNTAX);
        }
    }
    let count = count.unwrap_or(1);
    let deadline = if blocking {
        tri!(parse_timeout(args.get(1), ctx.now_ms))
    } else {
        None
    };
    for i in at + 1..w {
        let key = args.get(i);
        if tri!(write::<ZSet>(ctx, key)).is_none() {
            continue;
        }
        let popped = tri!(pop_n(ctx, key, max, count));
        if popped.is_empty() {
            continue;
        }
        let kb = Bytes::copy_from_slice(key);
        ctx.propagate_as(vec![vec![
            pop_word(max),
            kb.clone(),
            Bytes::from(count.to_string()),
        ]]);
        let items = popped
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
            .collect();
        return Reply::Array(vec![Reply::Bulk(kb), Reply::Array(items)]);
    }
    if blocking {
        block_on(ctx, (at + 1..w).map(|i| args.get(i)), deadline)
    } else {
        Reply::NilArray
    }
}

/// ```text
/// ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]
/// ```
/// Remove and return members with scores in a sorted set.
fn zmpop(ctx: &mut Ctx) -> Reply {
    mpop_generic(ctx, 1, false)
}

/// ```text
/// BZMPOP timeout numkeys key [key ...] MIN | MAX [COUNT count]
/// ```
/// Remove and return members with scores in a sorted set or block until one
/// is available.
fn bzmpop(ctx: &mut Ctx) -> Reply {
    mpop_generic(ctx, 2, true)
}

/// ```text
/// ZRANDMEMBER key [count [WITHSCORES]]
/// ```
/// Get one or multiple random elements from a sorted set.
fn zrandmember(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let mut count = None;
    let mut withscores = false;
    if args.len() >= 3 {
        let n = tri!(parse_rand_count(&args, 2));
        if args.len() > 4 || (args.len() == 4 && !args.is(3, "withscores")) {
            return Reply::err(error::SYNTAX);
        }
        if args.len() == 4 {
            withscores = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                return Reply::err("ERR value is out of range");
            }
        }
        count = Some(n);
    }
    tri!(check::<ZSet>(ctx, key));
    let mut rng = Rng::new(ctx);
    let Some(z) = peek::<ZSet>(ctx, key) else {
        return if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        };
    };
    let Some(count) = count else {
        let i = rng.below(z.len());
        return z
            .members()
            .nth(i)
            .map_or(Reply::Nil, |(m, _)| Reply::bulk(m));
    };
    let mut all: Vec<(&[u8], f64)> = z.members().collect();
    let picked: Vec<(&[u8], f64)> = if count < 0 {
        // Repeats allowed: grows with what is produced, never pre-sized.
        let n = count.unsigned_abs();
        if n > REPEAT_MAX {
            return too_many_repeats();
        }
        let mut out = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            out.push(all[rng.below(all.len())]);
        }
        out
    } else {
        let k = (count as u64).min(all.len() as u64) as usize;
        rng.sample(&mut all, k);
        all.truncate(k);
        all
    };
    items_reply(picked.into_iter(), withscores)
}

/// An input of ZUNION & co: a sorted set, or a set whose members score 1.
enum Src<'a> {
    Missing,
    Z(&'a ZSet),
    S(&'a Set),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::Missing => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Missing => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (Member<'_>, f64)> + '_> {
        match self {
            Src::Missing => Box::new(std::iter::empty()),
            Src::Z(z) => Box::new(z.members().map(|(m, s)| (Member::Ref(m), s))),
            Src::S(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ZOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *target += v;
            // inf + -inf: Redis's convention is 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Agg::Min => *target = target.min(v),
        Agg::Max => *target = target.max(v),
    }
}

/// Weighted score; NaN (inf * 0) counts as 0, as in Redis.
fn weighted(s: f64, w: f64) -> f64 {
    let v = s * w;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// Parses numkeys at `at` for ZUNION & co.
fn z_numkeys(args: &Args, at: usize) -> Result<usize, Reply> {
    let n = args.int(at)?;
    if n < 1 {
        return Err(Reply::err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            args.name_lower()
        )));
    }
    if n as u64 > (args.len() as u64).saturating_sub(at as u64 + 1) {
        return Err(Reply::err(error::SYNTAX));
    }
    Ok(n as usize)
}

fn zsrc_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let n = z_numkeys(args, 1)?;
    Ok((2..2 + n).collect())
}

fn zstore_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let n = z_numkeys(args, 2)?;
    let mut v = Vec::with_capacity(n + 1);
    v.push(1);
    v.extend(3..3 + n);
    Ok(v)
}

/// The body of ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD
/// (Redis 7.0's `zunionInterDiffGenericCommand`). numkeys is at `at`.
fn zsetop(ctx: &mut Ctx, op: ZOp, dst: Option<&[u8]>, at: usize, card_only: bool) -> Reply {
    let args = ctx.args;
    let n = tri!(z_numkeys(&args, at));
    let keys = at + 1..at + 1 + n;
    for i in keys.clone() {
        match ctx.shard.lookup_read(ctx.db, args.get(i), ctx.now_ms) {
            None => {}
            Some(e) if matches!(e.value, Value::ZSet(_) | Value::Set(_)) => {}
            Some(_) => return Reply::err(error::WRONGTYPE),
        }
    }
    let mut weights = vec![1.0f64; n];
    let mut agg = Agg::Sum;
    let mut withscores = false;
    let mut limit = 0u64;
    let mut j = keys.end;
    while j < args.len() {
        let remaining = args.len() - j;
        if op != ZOp::Diff && !card_only && remaining > n && args.is(j, "weights") {
            for (k, w) in weights.iter_mut().enumerate() {
                match parse_float(args.get(j + 1 + k)) {
                    Some(v) => *w = v,
                    None => return Reply::err("ERR weight value is not a float"),
                }
            }
            j += 1 + n;
        } else if op != ZOp::Diff && !card_only && remaining >= 2 && args.is(j, "aggregate") {
            agg = match args.get(j + 1).to_ascii_lowercase().as_slice() {
                b"sum" => Agg::Sum,
                b"min" => Agg::Min,
                b"max" => Agg::Max,
                _ => return Reply::err(error::SYNTAX),
            };
            j += 2;
        } else if dst.is_none() && !card_only && args.is(j, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && args.is(j, "limit") {
            limit = match args.int(j + 1) {
                Ok(l) if l >= 0 => l as u64,
                _ => return Reply::err("ERR LIMIT can't be negative"),
            };
            j += 2;
        } else {
            return Reply::err(error::SYNTAX);
        }
    }
    let db = &ctx.shard.dbs[ctx.db];
    let srcs: Vec<(Src, f64)> = keys
        .map(|i| {
            let src = match db.get(args.get(i)).map(|e| &e.value) {
                Some(Value::ZSet(z)) => Src::Z(z),
                Some(Value::Set(s)) => Src::S(s),
                _ => Src::Missing,
            };
            (src, weights[i - at - 1])
        })
        .collect();
    let mut acc: HashMap<Bytes, f64> = HashMap::new();
    match op {
        ZOp::Union => {
            let mut order: Vec<&(Src, f64)> = srcs.iter().collect();
            order.sort_by_key(|(s, _)| s.len());
            for (src, w) in order {
                for (m, s) in src.iter() {
                    let v = weighted(s, *w);
                    match acc.get_mut(&m[..]) {
                        Some(t) => aggregate(t, v, agg),
                        None => {
                            acc.insert(Bytes::copy_from_slice(&m), v);
                        }
                    }
                }
            }
        }
        ZOp::Inter => {
            let mut order: Vec<&(Src, f64)> = srcs.iter().collect();
            order.sort_by_key(|(s, _)| s.len());
            if let Some(((first, w0), rest)) = order.split_first().filter(|(f, _)| f.0.len() > 0) {
                let mut count = 0u64;
                'members: for (m, s) in first.iter() {
                    let mut score = weighted(s, *w0);
                    for (src, w) in rest {
                        match src.score(&m) {
                            Some(v) => aggregate(&mut score, weighted(v, *w), agg),
                            None => continue 'members,
                        }
                    }
                    if card_only {
                        count += 1;
                        if count == limit {
                            break;
                        }
                    } else {
                        acc.insert(Bytes::copy_from_slice(&m), score);
                    }
                }
                if card_only {
                    return Reply::Int(count as i64);
                }
            }
        }
        ZOp::Diff => {
            if let Some(((first, _), rest)) = srcs.split_first() {
                for (m, s) in first.iter() {
                    if !rest.iter().any(|(src, _)| src.score(&m).is_some()) {
                        acc.insert(Bytes::copy_from_slice(&m), s);
                    }
                }
            }
        }
    }
    if card_only {
        return Reply::Int(0);
    }
    // Built large, then packed by `store` if it fits, as Redis's
    // zsetConvertToListpackIfNeeded.
    let mut z = ZSet::new_large();
    for (m, s) in acc {
        z.insert(&m, s, &ctx.shard.limits);
    }
    match dst {
        Some(d) => {
            let event = match op {
                ZOp::Union => "zunionstore",
                ZOp::Inter => "zinterstore",
                ZOp::Diff => "zdiffstore",
            };
            store(ctx, d, z, event)
        }
        None => items_reply(z.iter(), withscores),
    }
}

/// ```text
/// ZUNION numkeys key [key ...] [WEIGHTS weight [weight ...]]
///   [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
/// ```
/// Add multiple sorted sets.
fn zunion(ctx: &mut Ctx) -> Reply {
    zsetop(ctx, ZOp::Union, None, 1, false)
}

/// ```text
/// ZINTER numkeys key [key ...] [WEIGHTS weight [weight ...]]
///   [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
/// ```
/// Intersect multiple sorted sets.
fn zinter(ctx: &mut Ctx) -> Reply {
    zsetop(ctx, ZOp::Inter, None, 1, false)
}

/// ```text
/// ZDIFF numkeys key [key ...] [WITHSCORES]
/// ```
/// Subtract multiple sorted sets.
fn zdiff(ctx: &mut Ctx) -> Reply {
    zsetop(ctx, ZOp::Diff, None, 1, false)
}

/// ```text
/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight
///   [weight ...]] [AGGREGATE SUM | MIN | MAX]
/// ```
/// Add multiple sorted sets and store the resulting sorted set in a new key.
fn zunionstore(ctx: &mut Ctx) -> Reply {
    let dst = ctx.args.get(1);
    zsetop(ctx, ZOp::Union, Some(dst), 2, false)
}

/// ```text
/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight
///   [weight ...]] [AGGREGATE SUM | MIN | MAX]
/// ```
/// Intersect multiple sorted sets and store the resulting sorted set in a
/// new key.
fn zinterstore(ctx: &mut Ctx) -> Reply {
    let dst = ctx.args.get(1);
    zsetop(ctx, ZOp::Inter, Some(dst), 2, false)
}

/// ```text
/// ZDIFFSTORE destination numkeys key [key ...]
/// ```
/// Subtract multiple sorted sets and store the resulting sorted set in a new
/// key.
fn zdiffstore(ctx: &mut Ctx) -> Reply {
    let dst = ctx.args.get(1);
    zsetop(ctx, ZOp::Diff, Some(dst), 2, false)
}

/// ```text
/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
/// ```
/// Intersect multiple sorted sets and return the cardinality of the result.
fn zintercard(ctx: &mut Ctx) -> Reply {
    zsetop(ctx, ZOp::Inter, None, 1, true)
}

/// ```text
/// ZSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
/// Incrementally iterate sorted sets elements and associated scores.
fn zscan(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let cursor = tri!(scan_cursor(&args));
    if !tri!(check::<ZSet>(ctx, key)) {
        return scan_reply(0, Vec::new());
    }
    let mut o = tri!(scan_parse(&args, cursor));
    let Some(z) = peek::<ZSet>(ctx, key) else {
        return scan_reply(0, Vec::new());
    };
    if z.is_packed() {
        // Redis returns a listpack whole, with cursor 0.
        o.count = usize::MAX;
    }
    let (items, next) = scan_pick(z.members(), z.len(), &o);
    let mut out = Vec::with_capacity(items.len() * 2);
    for (m, s) in items {
        out.push(Reply::bulk(m));
        out.push(Reply::Bulk(Bytes::from(fmt_g17(s))));
    }
    scan_reply(next, out)
}

#[cfg(test)]
mod tests {
    use super::super::{bulk, err};
    use super::super::{registry, t, Block};
    use crate::reply::Reply;
    use crate::shard::Shard;
    use bytes::Bytes;

    fn arr(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn pairs(items: &[(&str, f64)]) -> Reply {
        Reply::Pairs(
            items
                .iter()
                .map(|(m, s)| (bulk(m), Reply::Double(*s)))
                .collect(),
        )
    }

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut v = Vec::new();
        r.encode(resp3, &mut v);
        String::from_utf8(v).unwrap()
    }

    fn argv(log: &crate::shard::LogRecord) -> Vec<String> {
        log.argv
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn zadd_flags_and_errors() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "ZADD z 1 a 2 b"), Reply::Int(2));
        assert_eq!(
            t(&mut s, 0, "ZADD z NX XX 1 a"),
            err("ERR XX and NX options at the same time are not compatible")
        );
        for c in ["ZADD z GT LT 1 a", "ZADD z GT NX 1 a", "ZADD z LT NX 1 a"] {
            assert_eq!(
                t(&mut s, 0, c),
                err("ERR GT, LT, and/or NX options at the same time are not compatible")
            );
        }
        assert_eq!(
            t(&mut s, 0, "ZADD z INCR 1 a 2 b"),
            err("ERR INCR option supports a single increment-element pair")
        );
        assert_eq!(t(&mut s, 0, "ZADD z 1 a 2"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "ZADD z CH NX"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "ZADD z 1"),
            err("ERR wrong number of arguments for 'zadd' command")
        );
        assert_eq!(
            t(&mut s, 0, "ZADD z 3 c x d"),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            t(&mut s, 0, "ZCARD z"),
            Reply::Int(2),
            "nothing written on a bad score"
        );
        assert_eq!(t(&mut s, 0, "ZADD z NX 5 a 3 c"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "ZSCORE z a"), Reply::Double(1.0));
        assert_eq!(t(&mut s, 0, "ZADD z XX CH 5 a 4 d"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "ZSCORE z d"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZADD z GT CH 1 a 6 b"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "ZADD z LT CH 9 a 1 b"), Reply::Int(1));
        assert_eq!(
            t(&mut s, 0, "ZRANGE z 0 -1 WITHSCORES"),
            pairs(&[("b", 1.0), ("c", 3.0), ("a", 5.0)])
        );
        assert_eq!(t(&mut s, 0, "ZADD z INCR 2 a"), Reply::Double(7.0));
        assert_eq!(t(&mut s, 0, "ZADD z NX INCR 2 a"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZADD z GT INCR -1 a"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZADD nokey XX 1 a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "ZADD nokey XX INCR 1 a"), Reply::Nil);
        assert!(s.dbs[0].get(b"nokey").is_none());
        assert_eq!(t(&mut s, 0, "ZADD z +inf a"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "ZADD z INCR -inf a"),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(
            t(&mut s, 0, "ZINCRBY z -inf a"),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(t(&mut s, 0, "ZINCRBY z 1.5 new"), Reply::Double(1.5));
        assert_eq!(
            t(&mut s, 0, "ZINCRBY z x new"),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            t(&mut s, 0, "ZADD z nan a"),
            err("ERR value is not a valid float")
        );
        t(&mut s, 0, "SET str v");
        for c in [
            "ZADD str 1 a",
            "ZINCRBY str 1 a",
            "ZREM str a",
            "ZCARD str",
            "ZSCORE str a",
            "ZMSCORE str a",
            "ZRANK str a",
            "ZCOUNT str 0 1",
            "ZRANGE str 0 1",
            "ZPOPMIN str",
            "ZRANDMEMBER str",
            "ZREMRANGEBYRANK str 0 1",
            "ZSCAN str 0",
            "ZUNION 2 nokey str",
            "ZMPOP 1 str MIN",
            "BZPOPMIN str 1",
        ] {
            assert_eq!(t(&mut s, 0, c), err(WT), "{c}");
        }
    }

    #[test]
    fn scores_encode_like_redis() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "ZADD z 0.1 a -0 b");
        let r = t(&mut s, 0, "ZSCORE z a");
        assert_eq!(enc(&r, false), "$19\r\n0.10000000000000001\r\n");
        assert_eq!(enc(&r, true), ",0.10000000000000001\r\n");
        assert_eq!(enc(&t(&mut s, 0, "ZSCORE z b"), false), "$1\r\n0\r\n");
        let r = t(&mut s, 0, "ZRANGE z 0 -1 WITHSCORES");
        assert_eq!(
            enc(&r, false),
            "*4\r\n$1\r\nb\r\n$1\r\n0\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n"
        );
        assert_eq!(
            enc(&r, true),
            "*2\r\n*2\r\n$1\r\nb\r\n,0\r\n*2\r\n$1\r\na\r\n,0.10000000000000001\r\n"
        );
        assert_eq!(
            t(&mut s, 0, "ZMSCORE z a nope"),
            Reply::Array(vec![Reply::Double(0.1), Reply::Nil])
        );
        assert_eq!(
            t(&mut s, 0, "ZMSCORE nokey a"),
            Reply::Array(vec![Reply::Nil])
        );
    }

    #[test]
    fn ranks_and_counts() {
        let mut s = Shard::new(1, 1);
        let mut cmd = String::from("ZADD z");
        for i in 0..100 {
            cmd.push_str(&format!(" {} m{i:03}", i % 10));
        }
        t(&mut s, 0, &cmd);
        for i in [0usize, 1, 42, 98, 99] {
            // Score i % 10, then member name: rank = 10 * (i % 10) + i / 10.
            let rank = 10 * (i % 10) + i / 10;
            assert_eq!(
                t(&mut s, 0, &format!("ZRANK z m{i:03}")),
                Reply::Int(rank as i64)
            );
            assert_eq!(
                t(&mut s, 0, &format!("ZREVRANK z m{i:03}")),
                Reply::Int(99 - rank as i64)
            );
        }
        assert_eq!(t(&mut s, 0, "ZRANK z nope"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZRANK nokey a"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZCOUNT z -inf +inf"), Reply::Int(100));
        assert_eq!(t(&mut s, 0, "ZCOUNT z (1 3"), Reply::Int(20));
        assert_eq!(t(&mut s, 0, "ZCOUNT z 3 1"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "ZCOUNT z (9 +inf"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "ZCOUNT z (inf +inf"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "ZCOUNT z a 1"),
            err("ERR min or max is not a float")
        );
        assert_eq!(t(&mut s, 0, "ZCOUNT nokey 0 1"), Reply::Int(0));
        t(&mut s, 0, "ZADD l 0 a 0 b 0 c 0 d");
        assert_eq!(t(&mut s, 0, "ZLEXCOUNT l - +"), Reply::Int(4));
        assert_eq!(t(&mut s, 0, "ZLEXCOUNT l (a [c"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "ZLEXCOUNT l [c (c"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "ZLEXCOUNT l + -"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "ZLEXCOUNT l a c"),
            err("ERR min or max not valid string range item")
        );
    }

    #[test]
    fn zrange_variants() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "ZADD z 1 a 2 b 3 c 4 d");
        assert_eq!(t(&mut s, 0, "ZRANGE z 0 -1"), arr(&["a", "b", "c", "d"]));
        assert_eq!(t(&mut s, 0, "ZRANGE z -2 100"), arr(&["c", "d"]));
        assert_eq!(t(&mut s, 0, "ZRANGE z -100 0"), arr(&["a"]));
        assert_eq!(t(&mut s, 0, "ZRANGE z 3 1"), arr(&[]));
        assert_eq!(
            t(&mut s, 0, "ZRANGE z 0 -1 REV"),
            arr(&["d", "c", "b", "a"])
        );
        assert_eq!(
            t(&mut s, 0, "ZREVRANGE z 1 2 WITHSCORES"),
            pairs(&[("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(t(&mut s, 0, "ZRANGE z (1 3 BYSCORE"), arr(&["b", "c"]));
        assert_eq!(t(&mut s, 0, "ZRANGE z 3 (1 BYSCORE REV"), arr(&["c", "b"]));
        assert_eq!(
            t(&mut s, 0, "ZRANGE z -inf +inf BYSCORE LIMIT 1 2"),
            arr(&["b", "c"])
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z -inf +inf BYSCORE LIMIT -1 2"),
            arr(&[])
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z -inf +inf BYSCORE LIMIT 2 -1"),
            arr(&["c", "d"])
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGEBYSCORE z 2 +inf WITHSCORES LIMIT 0 1"),
            pairs(&[("b", 2.0)])
        );
        assert_eq!(
            t(&mut s, 0, "ZREVRANGEBYSCORE z +inf 2 LIMIT 1 5"),
            arr(&["c", "b"])
        );
        assert_eq!(t(&mut s, 0, "ZRANGE nokey 0 -1"), arr(&[]));
        assert_eq!(
            t(&mut s, 0, "ZRANGE z 0 1 LIMIT 0 1"),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z 0 -1 LIMIT 0 -1"),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z - + BYLEX WITHSCORES"),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        );
        for c in [
            "ZRANGE z 0 1 REV REV",
            "ZRANGE z 0 1 BYSCORE BYLEX",
            "ZRANGEBYSCORE z 0 1 REV",
            "ZRANGE z 0 1 LIMIT 1",
        ] {
            assert_eq!(t(&mut s, 0, c), err("ERR syntax error"), "{c}");
        }
        assert_eq!(
            t(&mut s, 0, "ZRANGE z x 1"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z x 1 BYSCORE"),
            err("ERR min or max is not a float")
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGE z 0 1 BYLEX"),
            err("ERR min or max not valid string range item")
        );
        t(&mut s, 0, "ZADD l 0 a 0 b 0 c 0 d 0 e");
        assert_eq!(t(&mut s, 0, "ZRANGEBYLEX l [b (e"), arr(&["b", "c", "d"]));
        assert_eq!(
            t(&mut s, 0, "ZRANGEBYLEX l - + LIMIT 1 2"),
            arr(&["b", "c"])
        );
        assert_eq!(t(&mut s, 0, "ZREVRANGEBYLEX l + (c"), arr(&["e", "d"]));
        assert_eq!(
            t(&mut s, 0, "ZRANGE l [d [b BYLEX REV"),
            arr(&["d", "c", "b"])
        );
        assert_eq!(t(&mut s, 0, "ZRANGEBYLEX l (c [c"), arr(&[]));
        // Mixed scores: still a sensible answer, no panic.
        t(&mut s, 0, "ZADD l 1 zz");
        assert_eq!(t(&mut s, 0, "ZRANGEBYLEX l [d +"), arr(&["d", "e", "zz"]));
    }

    #[test]
    fn zrangestore_and_remrange() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "ZADD z 1 a 2 b 3 c 4 d");
        assert_eq!(t(&mut s, 0, "ZRANGESTORE dst z 1 2"), Reply::Int(2));
        assert_eq!(
            t(&mut s, 0, "ZRANGE dst 0 -1 WITHSCORES"),
            pairs(&[("b", 2.0), ("c", 3.0)])
        );
        assert_eq!(
            t(&mut s, 0, "ZRANGESTORE dst z +inf 2 BYSCORE REV LIMIT 0 1"),
            Reply::Int(1)
        );
        assert_eq!(t(&mut s, 0, "ZRANGE dst 0 -1"), arr(&["d"]));
        assert_eq!(
            t(&mut s, 0, "ZRANGESTORE dst z 0 1 WITHSCORES"),
            err("ERR syntax error")
        );
        assert_eq!(t(&mut s, 0, "ZRANGESTORE dst nokey 0 1"), Reply::Int(0));
        assert!(s.dbs[0].get(b"dst").is_none());
        assert_eq!(
            t(&mut s, 0, "ZREMRANGEBYRANK z x 1"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "ZREMRANGEBYRANK z -1 -1"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "ZREMRANGEBYRANK z 5 9"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "ZREMRANGEBYSCORE z (1 x"),
            err("ERR min or max is not a float")
        );
        assert_eq!(t(&mut s, 0, "ZREMRANGEBYSCORE z (1 2"), Reply::Int(1));
        assert_eq!(
            t(&mut s, 0, "ZREMRANGEBYLEX z a b"),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(t(&mut s, 0, "ZREM z a x"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "ZREMRANGEBYLEX z - +"), Reply::Int(1));
        assert!(s.dbs[0].get(b"z").is_none(), "emptied zset is deleted");
        assert_eq!(t(&mut s, 0, "ZREM z a"), Reply::Int(0));
    }

    #[test]
    fn pops_and_their_log() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        t(&mut s, 0, "ZADD z 1 a 2 b 3 c 4 d");
        s.take_log();
        assert_eq!(
            t(&mut s, 0, "ZPOPMIN z"),
            Reply::Array(vec![bulk("a"), Reply::Double(1.0)])
        );
        assert_eq!(t(&mut s, 0, "ZPOPMAX z 1"), pairs(&[("d", 4.0)]));
        assert_eq!(t(&mut s, 0, "ZPOPMIN z 0"), pairs(&[]));
        assert_eq!(
            t(&mut s, 0, "ZPOPMIN z -1"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(t(&mut s, 0, "ZPOPMIN z 1 2"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "ZPOPMIN nokey"), Reply::Array(vec![]));
        assert_eq!(t(&mut s, 0, "ZPOPMIN nokey 2"), pairs(&[]));
        assert_eq!(s.take_log().len(), 2);
        assert_eq!(
            t(&mut s, 0, "BZPOPMAX nokey z 0"),
            Reply::Array(vec![bulk("z"), bulk("c"), Reply::Double(3.0)])
        );
        assert_eq!(argv(&s.take_log()[0]), ["ZPOPMAX", "z"]);
        assert_eq!(
            t(&mut s, 0, "ZMPOP 2 nokey z MIN COUNT 5"),
            Reply::Array(vec![
                bulk("z"),
                Reply::Array(vec![Reply::Array(vec![bulk("b"), Reply::Double(2.0)])])
            ])
        );
        assert_eq!(argv(&s.take_log()[0]), ["ZPOPMIN", "z", "5"]);
        assert!(s.dbs[0].get(b"z").is_none());
        assert_eq!(t(&mut s, 0, "ZMPOP 1 z MIN"), Reply::NilArray);
        assert_eq!(
            t(&mut s, 0, "ZMPOP 0 z MIN"),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(t(&mut s, 0, "ZMPOP 2 z MIN"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "ZMPOP 1 z MINX"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "ZMPOP 1 z MIN COUNT 0"),
            err("ERR count should be greater than 0")
        );
        assert_eq!(
            t(&mut s, 0, "ZMPOP 1 z MIN COUNT 1 COUNT 1"),
            err("ERR syntax error")
        );
        t(&mut s, 0, "ZADD y 1 a 2 b");
        s.take_log();
        assert_eq!(
            t(&mut s, 0, "BZMPOP 1 1 y MAX COUNT 1"),
            Reply::Array(vec![
                bulk("y"),
                Reply::Array(vec![Reply::Array(vec![bulk("b"), Reply::Double(2.0)])])
            ])
        );
        assert_eq!(argv(&s.take_log()[0]), ["ZPOPMAX", "y", "1"]);
    }

    #[test]
    fn blocking_when_empty() {
        let mut s = Shard::new(1, 1);
        let run = |s: &mut Shard, cmd: &str, in_multi: bool| {
            let owned: crate::args::OwnedArgs = cmd.split(' ').map(str::as_bytes).collect();
            let args = owned.as_args();
            let spec = registry().lookup(args.get(0)).unwrap();
            let mut ctx = super::super::Ctx::new(s, 0, 10_000, args);
            ctx.in_multi = in_multi;
            let r = super::super::execute(spec, &mut ctx);
            (r, ctx.block)
        };
        let (r, b) = run(&mut s, "BZPOPMIN a b 1.5", false);
        assert_eq!(r, Reply::NilArray);
        assert_eq!(
            b,
            Some(Block {
                keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
                deadline_ms: Some(11_500),
                rerun: None,
            })
        );
        let (_, b) = run(&mut s, "BZMPOP 0 2 a b MIN", false);
        assert_eq!(b.unwrap().deadline_ms, None);
        let (r, b) = run(&mut s, "BZPOPMAX a 0", true);
        assert_eq!((r, b), (Reply::NilArray, None), "MULTI never blocks");
        assert_eq!(
            run(&mut s, "BZPOPMIN a x", false).0,
            err("ERR timeout is not a float or out of range")
        );
        assert_eq!(
            run(&mut s, "BZPOPMIN a -1", false).0,
            err("ERR timeout is negative")
        );
        assert_eq!(
            run(&mut s, "BZMPOP -1 1 a MIN", false).0,
            err("ERR timeout is negative")
        );
        // Adding members signals blocked clients.
        s.set_blocked_on(0, b"a", true);
        t(&mut s, 0, "ZADD a 1 x");
        assert_eq!(s.take_ready().len(), 1);
        t(&mut s, 0, "ZADD a 2 x");
        assert!(s.take_ready().is_empty(), "an update adds nothing");
        t(&mut s, 0, "ZUNIONSTORE a 1 a");
        assert_eq!(s.take_ready().len(), 1);
    }

    #[test]
    fn zrandmember_cases() {
        let mut s = Shard::new(1, 5);
        assert_eq!(t(&mut s, 0, "ZRANDMEMBER nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "ZRANDMEMBER nokey 3"), arr(&[]));
        t(&mut s, 0, "ZADD z 1 a 2 b 3 c");
        assert!(matches!(t(&mut s, 0, "ZRANDMEMBER z"), Reply::Bulk(_)));
        let Reply::Array(v) = t(&mut s, 0, "ZRANDMEMBER z 10") else {
            panic!()
        };
        assert_eq!(v.len(), 3);
        let Reply::Pairs(v) = t(&mut s, 0, "ZRANDMEMBER z -7 WITHSCORES") else {
            panic!()
        };
        assert_eq!(v.len(), 7);
        for (m, sc) in v {
            let want = match m {
                Reply::Bulk(b) if &b[..] == b"a" => 1.0,
                Reply::Bulk(b) if &b[..] == b"b" => 2.0,
                _ => 3.0,
            };
            assert_eq!(sc, Reply::Double(want));
        }
        assert_eq!(t(&mut s, 0, "ZRANDMEMBER z 1 FOO"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "ZRANDMEMBER z 1 WITHSCORES x"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "ZRANDMEMBER z -9223372036854775807 WITHSCORES"),
            err("ERR value is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "ZRANDMEMBER z -9223372036854775808"),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
    }

    #[test]
    fn union_inter_diff() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "ZADD a 1 x 2 y 3 z");
        t(&mut s, 0, "ZADD b 10 y 20 z 30 w");
        t(&mut s, 0, "SADD s x w");
        assert_eq!(
            t(&mut s, 0, "ZUNION 2 a b WITHSCORES"),
            pairs(&[("x", 1.0), ("y", 12.0), ("z", 23.0), ("w", 30.0)])
        );
        assert_eq!(
            t(
                &mut s,
                0,
                "ZUNION 2 a b WEIGHTS 2 0.5 AGGREGATE MAX WITHSCORES"
            ),
            pairs(&[("x", 2.0), ("y", 5.0), ("z", 10.0), ("w", 15.0)])
        );
        assert_eq!(
            t(&mut s, 0, "ZINTER 2 a b AGGREGATE MIN WITHSCORES"),
            pairs(&[("y", 2.0), ("z", 3.0)])
        );
        assert_eq!(
            t(&mut s, 0, "ZINTER 2 a s WITHSCORES"),
            pairs(&[("x", 2.0)])
        );
        assert_eq!(t(&mut s, 0, "ZINTER 2 a nokey"), arr(&[]));
        assert_eq!(t(&mut s, 0, "ZDIFF 2 a b WITHSCORES"), pairs(&[("x", 1.0)]));
        assert_eq!(t(&mut s, 0, "ZDIFF 2 b s"), arr(&["y", "z"]));
        assert_eq!(t(&mut s, 0, "ZINTERCARD 2 a b"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "ZINTERCARD 2 a b LIMIT 1"), Reply::Int(1));
        assert_eq!(
            t(&mut s, 0, "ZINTERCARD 2 a b LIMIT -1"),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            t(&mut s, 0, "ZINTERCARD 1 a WITHSCORES"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "ZUNIONSTORE d 2 a b WEIGHTS 1 2"),
            Reply::Int(4)
        );
        assert_eq!(t(&mut s, 0, "ZSCORE d w"), Reply::Double(60.0));
        assert_eq!(t(&mut s, 0, "ZDIFFSTORE d 2 a a"), Reply::Int(0));
        assert!(s.dbs[0].get(b"d").is_none());
        assert_eq!(
            t(&mut s, 0, "ZUNIONSTORE d 1 a WITHSCORES"),
            err("ERR syntax error")
        );
        assert_eq!(t(&mut s, 0, "ZDIFF 1 a WEIGHTS 1"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "ZUNION 2 a b WEIGHTS 1"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "ZUNION 2 a b WEIGHTS 1 x"),
            err("ERR weight value is not a float")
        );
        assert_eq!(
            t(&mut s, 0, "ZUNION 2 a b AGGREGATE avg"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "ZUNION 0 a"),
            err("ERR at least 1 input key is needed for 'zunion' command")
        );
        assert_eq!(
            t(&mut s, 0, "ZINTERSTORE d 0 a"),
            err("ERR at least 1 input key is needed for 'zinterstore' command")
        );
        assert_eq!(t(&mut s, 0, "ZUNION 3 a b"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "ZUNION x a"),
            err("ERR value is not an integer or out of range")
        );
        // inf + -inf sums to 0; inf * 0 weighs 0.
        t(&mut s, 0, "ZADD p +inf m");
        t(&mut s, 0, "ZADD n -inf m");
        assert_eq!(
            t(&mut s, 0, "ZUNION 2 p n WITHSCORES"),
            pairs(&[("m", 0.0)])
        );
        assert_eq!(
            t(&mut s, 0, "ZUNION 1 p WEIGHTS 0 WITHSCORES"),
            pairs(&[("m", 0.0)])
        );
        let spec = registry().lookup(b"zunionstore").unwrap();
        let o: crate::args::OwnedArgs = ["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        let mut keys = Vec::new();
        spec.key_indices(&o.as_args(), &mut keys).unwrap();
        assert_eq!(keys, [1, 3, 4]);
        let spec = registry().lookup(b"bzmpop").unwrap();
        let o: crate::args::OwnedArgs = ["BZMPOP", "0", "2", "a", "b", "MIN"]
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        keys.clear();
        spec.key_indices(&o.as_args(), &mut keys).unwrap();
        assert_eq!(keys, [3, 4]);
    }

    #[test]
    fn zscan_walks_everything() {
        let mut s = Shard::new(1, 1);
        assert_eq!(
            t(&mut s, 0, "ZSCAN nokey 0"),
            Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
        );
        assert_eq!(t(&mut s, 0, "ZSCAN nokey x"), err("ERR invalid cursor"));
        t(&mut s, 0, "ZADD z 0.5 a 2 b");
        let Reply::Array(r) = t(&mut s, 0, "ZSCAN z 0 MATCH a") else {
            panic!()
        };
        assert_eq!(r, vec![bulk("0"), arr(&["a", "0.5"])]);
        assert_eq!(t(&mut s, 0, "ZSCAN z 0 COUNT 0"), err("ERR syntax error"));
        let mut cmd = String::from("ZADD big");
        for i in 0..500 {
            cmd.push_str(&format!(" {i} m{i}"));
        }
        t(&mut s, 0, &cmd);
        let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
        loop {
            let Reply::Array(r) = t(&mut s, 0, &format!("ZSCAN big {cursor} COUNT 7")) else {
                panic!()
            };
            calls += 1;
            let Reply::Array(items) = &r[1] else { panic!() };
            for p in items.chunks(2) {
                seen.push((p[0].clone(), p[1].clone()));
            }
            // Score changes mid-scan must not hide members.
            t(&mut s, 0, &format!("ZINCRBY big 1000 m{}", calls * 3));
            let Reply::Bulk(c) = &r[0] else { panic!() };
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 10);
        let mut names: Vec<Reply> = seen.into_iter().map(|(m, _)| m).collect();
        names.sort_by_key(|m| format!("{m:?}"));
        names.dedup();
        assert_eq!(names.len(), 500);
    }
}
