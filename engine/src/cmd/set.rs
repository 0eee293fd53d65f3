//! Set commands: SADD, SREM, SMEMBERS and the rest of Redis's `set` group.
//!
//! Also home of the cursor logic SSCAN and ZSCAN share ([`scan_parse`],
//! [`scan_pick`]) and of a small local random generator ([`Rng`]) seeded
//! from the shard, so sampling never holds a borrow of the shard.

use super::{check, drop_if_empty, drop_if_empty_notify, flags::*, peek, write, Ctx, Spec};
use crate::args::Args;
use crate::error;
use crate::notify;
use crate::reply::Reply;
use crate::setval::SetVal;
use crate::value::Value;
use bytes::Bytes;
use hashbrown::HashSet;

/// A set value.
pub type Set = SetVal;

/// A computed set of members (SINTER and the like), before it is replied
/// or stored.
type Members = HashSet<Bytes>;

/// The set family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), sadd),
    Spec::new("srem", -3, WRITE | FAST, (1, 1, 1), srem),
    Spec::new("scard", 2, READONLY | FAST, (1, 1, 1), scard),
    Spec::new("sismember", 3, READONLY | FAST, (1, 1, 1), sismember),
    Spec::new("smismember", -3, READONLY | FAST, (1, 1, 1), smismember),
    Spec::new("smembers", 2, READONLY, (1, 1, 1), smembers),
    Spec::new("srandmember", -2, READONLY, (1, 1, 1), srandmember),
    Spec::new("spop", -2, WRITE | FAST, (1, 1, 1), spop),
    Spec::new("smove", 4, WRITE | FAST, (1, 2, 1), smove),
    Spec::new("sinter", -2, READONLY, (1, -1, 1), sinter),
    Spec::new("sunion", -2, READONLY, (1, -1, 1), sunion),
    Spec::new("sdiff", -2, READONLY, (1, -1, 1), sdiff),
    Spec::new("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sinterstore),
    Spec::new("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sunionstore),
    Spec::new("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sdiffstore),
    Spec::new("sintercard", -3, READONLY, (0, 0, 0), sintercard).movable(sintercard_keys),
    Spec::new("sscan", -3, READONLY, (1, 1, 1), sscan),
];

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

/// ```text
/// SADD key member [member ...]
/// ```
/// Add one or more members to a set.
fn sadd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let lim = ctx.shard.limits;
    let added = match tri!(write::<Set>(ctx, key)) {
        Some(s) => args.iter_from(2).filter(|m| s.insert(m, &lim)).count(),
        None => {
            let mut s = Set::for_first(args.get(2));
            let n = args.iter_from(2).filter(|m| s.insert(m, &lim)).count();
            ctx.shard
                .set(ctx.db, key, Value::Set(Box::new(s)), ctx.now_ms);
            n
        }
    };
    if added > 0 {
        ctx.shard.touch(ctx.db, key);
        ctx.notify(notify::SET, "sadd", key);
        ctx.dirty(added as u64);
    }
    Reply::Int(added as i64)
}

/// ```text
/// SREM key member [member ...]
/// ```
/// Remove one or more members from a set.
fn srem(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let removed = match tri!(write::<Set>(ctx, key)) {
        None => return Reply::Int(0),
        Some(s) => args.iter_from(2).filter(|m| s.remove(m)).count(),
    };
    if removed > 0 {
        let gone = drop_if_empty(ctx, key);
        ctx.shard.touch(ctx.db, key);
        ctx.notify(notify::SET, "srem", key);
        if gone {
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.dirty(removed as u64);
    }
    Reply::Int(removed as i64)
}

/// ```text
/// SCARD key
/// ```
/// Get the number of members in a set.
fn scard(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<Set>(ctx, key));
    Reply::Int(peek::<Set>(ctx, key).map_or(0, |s| s.len() as i64))
}

/// ```text
/// SISMEMBER key member
/// ```
/// Determine if a given value is a member of a set.
fn sismember(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<Set>(ctx, key));
    let m = ctx.args.get(2);
    Reply::Int(peek::<Set>(ctx, key).is_some_and(|s| s.contains(m)) as i64)
}

/// ```text
/// SMISMEMBER key member [member ...]
/// ```
/// Returns the membership associated with the given elements for a set.
fn smismember(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<Set>(ctx, key));
    let set = peek::<Set>(ctx, key);
    Reply::Array(
        ctx.args
            .iter_from(2)
            .map(|m| Reply::Int(set.is_some_and(|s| s.contains(m)) as i64))
            .collect(),
    )
}

/// ```text
/// SMEMBERS key
/// ```
/// Get all the members in a set.
fn smembers(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    tri!(check::<Set>(ctx, key));
    Reply::Set(
        peek::<Set>(ctx, key)
            .map_or_else(Vec::new, |s| s.iter().map(|m| Reply::bulk(&m)).collect()),
    )
}

/// A small xorshift generator seeded from `Shard::random`, so sampling can
/// draw numbers while borrowing the value it samples.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeds from the shard's generator.
    pub(crate) fn new(ctx: &mut Ctx) -> Rng {
        Rng(ctx.shard.random() | 1)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }

    /// Moves `k` uniformly chosen elements of `v` to its front (partial
    /// Fisher-Yates).
    pub(crate) fn sample<T>(&mut self, v: &mut [T], k: usize) {
        let n = v.len();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            v.swap(i, j);
        }
    }
}

/// Parses SRANDMEMBER/ZRANDMEMBER's count: any integer but `i64::MIN`.
pub(crate) fn parse_rand_count(args: &Args, i: usize) -> Result<i64, Reply> {
    let n = args.int(i)?;
    if n == i64::MIN {
        return Err(Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(n)
}

/// The most elements SRANDMEMBER, ZRANDMEMBER and HRANDFIELD return for a
/// negative count (members may repeat). Redis 7.0 takes any count and
/// builds the reply until memory runs out; slotd answers a larger one
/// with an error instead of being killed.
pub(crate) const REPEAT_MAX: u64 = 1 << 27;

/// The error for a negative count past [`REPEAT_MAX`].
pub(crate) fn too_many_repeats() -> Reply {
    Reply::Error(
        format!(
            "ERR value is out of range: a negative count returns at most {REPEAT_MAX} elements"
        )
        .into(),
    )
}

/// ```text
/// SRANDMEMBER key [count]
/// ```
/// Get one or multiple random members from a set.
fn srandmember(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    if args.len() > 3 {
        return Reply::err(error::SYNTAX);
    }
    let count = if args.len() == 3 {
        Some(tri!(parse_rand_count(&args, 2)))
    } else {
        None
    };
    tri!(check::<Set>(ctx, key));
    let mut rng = Rng::new(ctx);
    let Some(set) = peek::<Set>(ctx, key) else {
        return if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        };
    };
    let Some(count) = count else {
        let i = rng.below(set.len());
        return set.iter().nth(i).map_or(Reply::Nil, |m| Reply::bulk(&m));
    };
    let mut members: Vec<_> = set.iter().collect();
    if count < 0 {
        // Repeats allowed: the reply grows with what is actually produced.
        let n = count.unsigned_abs();
        if n > REPEAT_MAX {
            return too_many_repeats();
        }
        let mut out = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            out.push(Reply::bulk(&members[rng.below(members.len())]));
        }
        return Reply::Array(out);
    }
    let k = (count as u64).min(members.len() as u64) as usize;
    rng.sample(&mut members, k);
    Reply::Array(members[..k].iter().map(|m| Reply::bulk(m)).collect())
}

/// ```text
/// SPOP key [count]
/// ```
/// Remove and return one or multiple random members from a set.
fn spop(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
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
    let mut rng = Rng::new(ctx);
    let db = ctx.db;
    let Some(set) = tri!(write::<Set>(ctx, key)) else {
        return if count.is_some() {
            Reply::Set(Vec::new())
        } else {
            Reply::Nil
        };
    };
    let kb = Bytes::copy_from_slice(key);
    let Some(count) = count else {
        let i = rng.below(set.len());
        let Some(m) = set.iter().nth(i).map(|m| Bytes::copy_from_slice(&m)) else {
            return Reply::Nil;
        };
        set.remove(&m);
        ctx.notify(notify::SET, "spop", key);
        drop_if_empty_notify(ctx, key);
        ctx.shard.touch(db, key);
        ctx.dirty(1);
        ctx.propagate_as(vec![vec![Bytes::from_static(b"SREM"), kb, m.clone()]]);
        return Reply::Bulk(m);
    };
    if count == 0 {
        return Reply::Set(Vec::new());
    }
    if count >= set.len() as u64 {
        let all: Vec<Reply> = set.iter().map(|m| Reply::bulk(&m)).collect();
        ctx.notify(notify::SET, "spop", key);
        ctx.shard.remove(db, key);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.dirty(all.len() as u64);
        ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), kb]]);
        return Reply::Set(all);
    }
    let k = count as usize;
    let size = set.len();
    ctx.shard.notify(notify::SET, "spop", db, key);
    let Some(set) = tri!(write::<Set>(ctx, key)) else {
        return Reply::Set(Vec::new());
    };
    let mut members: Vec<Bytes> = set.iter().map(|m| Bytes::copy_from_slice(&m)).collect();
    rng.sample(&mut members, k);
    members.truncate(k);
    for m in &members {
        set.remove(m);
    }
    if (size - k) * 5 <= k {
        // Redis moves the few remaining members to a new set, whose
        // encoding is chosen afresh (an all-integer rest becomes an intset).
        let lim = ctx.shard.limits;
        if let Ok(Some(set)) = write::<Set>(ctx, key) {
            *set = SetVal::from_members(
                set.iter()
                    .map(|m| m.to_vec())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|m| &m[..]),
                &lim,
            );
        }
    }
    ctx.shard.touch(db, key);
    ctx.dirty(k as u64);
    // Redis 7.0 propagates one SREM per popped member, all in one
    // MULTI/EXEC.
    let records = members
        .iter()
        .map(|m| vec![Bytes::from_static(b"SREM"), kb.clone(), m.clone()])
        .collect();
    ctx.propagate_atomic(records);
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

/// ```text
/// SMOVE source destination member
/// ```
/// Move a member from one set to another.
fn smove(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (src, dst, m) = (args.get(1), args.get(2), args.get(3));
    let db = ctx.db;
    // A missing source answers 0 before the destination's type is checked.
    if tri!(write::<Set>(ctx, src)).is_none() {
        return Reply::Int(0);
    }
    let dst_exists = tri!(write::<Set>(ctx, dst)).is_some();
    if src == dst {
        return Reply::Int(peek::<Set>(ctx, src).is_some_and(|s| s.contains(m)) as i64);
    }
    let removed = match write::<Set>(ctx, src) {
        Ok(Some(s)) => s.remove(m),
        _ => false,
    };
    if !removed {
        return Reply::Int(0);
    }
    ctx.notify(notify::SET, "srem", src);
    drop_if_empty_notify(ctx, src);
    ctx.shard.touch(db, src);
    ctx.dirty(1);
    let lim = ctx.shard.limits;
    let mut added = false;
    if dst_exists {
        if let Ok(Some(s)) = write::<Set>(ctx, dst) {
            if s.insert(m, &lim) {
                ctx.dirty(1);
                added = true;
            }
        }
    } else {
        let s = SetVal::from_members([m], &lim);
        ctx.shard.set(db, dst, Value::Set(Box::new(s)), ctx.now_ms);
        ctx.dirty(1);
        added = true;
    }
    ctx.shard.touch(db, dst);
    if added {
        ctx.notify(notify::SET, "sadd", dst);
    }
    Reply::Int(1)
}

/// The three set algebra operations.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Computes `op` over the sets at the keys of `args[from..]` (missing keys
/// are empty sets). Every key is type-checked first, as Redis 7.0 does.
fn compute(ctx: &mut Ctx, op: Op, from: usize) -> Result<Members, Reply> {
    let args = ctx.args;
    let mut any_missing = false;
    for k in args.iter_from(from) {
        any_missing |= !check::<Set>(ctx, k)?;
    }
    let sets: Vec<Option<&Set>> = args.iter_from(from).map(|k| peek::<Set>(ctx, k)).collect();
    let mut out = Members::new();
    match op {
        Op::Inter => {
            if any_missing {
                return Ok(out);
            }
            let mut sets: Vec<&Set> = sets.into_iter().flatten().collect();
            sets.sort_by_key(|s| s.len());
            if let Some((first, rest)) = sets.split_first() {
                out.extend(
                    first
                        .iter()
                        .filter(|m| rest.iter().all(|s| s.contains(m)))
                        .map(|m| Bytes::copy_from_slice(&m)),
                );
            }
        }
        Op::Union => {
            for s in sets.into_iter().flatten() {
                out.extend(s.iter().map(|m| Bytes::copy_from_slice(&m)));
            }
        }
        Op::Diff => {
            if let Some(Some(first)) = sets.first() {
                let rest = &sets[1..];
                out.extend(
                    first
                        .iter()
                        .filter(|m| !rest.iter().flatten().any(|s| s.contains(m)))
                        .map(|m| Bytes::copy_from_slice(&m)),
                );
            }
        }
    }
    Ok(out)
}

/// SINTER's, SUNION's or SDIFF's reply. Redis 7.0 builds the result as a
/// set (SINTER walks the smallest), which is an intset while every member
/// is an integer and they are at most `set-max-intset-entries`: then the
/// reply comes in ascending order, and so it does here; otherwise in no
/// order.
fn set_reply(ctx: &Ctx, s: Members) -> Reply {
    let mut members: Vec<Bytes> = s.into_iter().collect();
    if members.len() <= ctx.shard.limits.set_intset_entries_max {
        let ints: Option<Vec<i64>> = members.iter().map(|m| crate::resp::parse_i64(m)).collect();
        if let Some(ints) = ints {
            let mut pairs: Vec<(i64, Bytes)> = ints.into_iter().zip(members).collect();
            pairs.sort_unstable_by_key(|p| p.0);
            members = pairs.into_iter().map(|p| p.1).collect();
        }
    }
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

/// Stores `result` at `dst` (overwriting whatever was there; an empty
/// result deletes it) and replies its size.
fn store(ctx: &mut Ctx, dst: &[u8], result: Members, event: &'static str) -> Reply {
    let n = result.len();
    let db = ctx.db;
    if n == 0 {
        if ctx.shard.remove(db, dst) {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
    } else {
        let s = SetVal::from_members(result.iter().map(|m| &m[..]), &ctx.shard.limits);
        ctx.shard.set(db, dst, Value::Set(Box::new(s)), ctx.now_ms);
        ctx.notify(notify::SET, event, dst);
        ctx.dirty(1);
    }
    Reply::Int(n as i64)
}

/// ```text
/// SINTER key [key ...]
/// ```
/// Intersect multiple sets.
fn sinter(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Inter, 1));
    set_reply(ctx, r)
}

/// ```text
/// SUNION key [key ...]
/// ```
/// Add multiple sets.
fn sunion(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Union, 1));
    set_reply(ctx, r)
}

/// ```text
/// SDIFF key [key ...]
/// ```
/// Subtract multiple sets.
fn sdiff(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Diff, 1));
    set_reply(ctx, r)
}

/// ```text
/// SINTERSTORE destination key [key ...]
/// ```
/// Intersect multiple sets and store the resulting set in a key.
fn sinterstore(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Inter, 2));
    store(ctx, ctx.args.get(1), r, "sinterstore")
}

/// ```text
/// SUNIONSTORE destination key [key ...]
/// ```
/// Add multiple sets and store the resulting set in a key.
fn sunionstore(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Union, 2));
    store(ctx, ctx.args.get(1), r, "sunionstore")
}

/// ```text
/// SDIFFSTORE destination key [key ...]
/// ```
/// Subtract multiple sets and store the resulting set in a key.
fn sdiffstore(ctx: &mut Ctx) -> Reply {
    let r = tri!(compute(ctx, Op::Diff, 2));
    store(ctx, ctx.args.get(1), r, "sdiffstore")
}

/// Parses SINTERCARD's numkeys (argument 1).
fn sintercard_numkeys(args: &Args) -> Result<usize, Reply> {
    let n = match args.int(1) {
        Ok(n) if n > 0 => n as u64,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    if n > (args.len() as u64).saturating_sub(2) {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

/// SINTERCARD's keys: `numkeys` keys from argument 2.
fn sintercard_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let n = sintercard_numkeys(args)?;
    Ok((2..2 + n).collect())
}

/// ```text
/// SINTERCARD numkeys key [key ...] [LIMIT limit]
/// ```
/// Intersect multiple sets and return the cardinality of the result.
fn sintercard(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let n = tri!(sintercard_numkeys(&args));
    let mut limit = 0u64;
    let mut i = 2 + n;
    while i < args.len() {
        if args.is(i, "limit") && i + 1 < args.len() {
            limit = match args.int(i + 1) {
                Ok(l) if l >= 0 => l as u64,
                _ => return Reply::err("ERR LIMIT can't be negative"),
            };
            i += 2;
        } else {
            return Reply::err(error::SYNTAX);
        }
    }
    let mut any_missing = false;
    for k in args.iter_from(2).take(n) {
        any_missing |= !tri!(check::<Set>(ctx, k));
    }
    if any_missing {
        return Reply::Int(0);
    }
    let mut sets: Vec<&Set> = args
        .iter_from(2)
        .take(n)
        .filter_map(|k| peek::<Set>(ctx, k))
        .collect();
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return Reply::Int(0);
    };
    let mut count = 0u64;
    for m in first.iter() {
        if rest.iter().all(|s| s.contains(&m)) {
            count += 1;
            if count == limit {
                break;
            }
        }
    }
    Reply::Int(count as i64)
}

/// SSCAN/ZSCAN options.
pub(crate) struct ScanOpts<'a> {
    /// The cursor.
    pub cursor: u64,
    /// MATCH pattern.
    pub pattern: Option<&'a [u8]>,
    /// COUNT hint.
    pub count: usize,
}

/// Parses a scan cursor as Redis's `strtoul` check does.
fn parse_cursor(raw: &[u8]) -> Option<u64> {
    let (neg, digits) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses the cursor (argument 2) of SSCAN/ZSCAN.
pub(crate) fn scan_cursor(args: &Args) -> Result<u64, Reply> {
    parse_cursor(args.get(2)).ok_or_else(|| Reply::err("ERR invalid cursor"))
}

/// Parses SSCAN/ZSCAN's options from argument 3.
pub(crate) fn scan_parse<'a>(args: &Args<'a>, cursor: u64) -> Result<ScanOpts<'a>, Reply> {
    let mut o = ScanOpts {
        cursor,
        pattern: None,
        count: 10,
    };
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Reply::err(error::SYNTAX));
        }
        if args.is(i, "count") {
            let n = args.int(i + 1)?;
            if n < 1 {
                return Err(Reply::err(error::SYNTAX));
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if args.is(i, "match") {
            let p = args.get(i + 1);
            // "*" matches everything: skip the matching altogether.
            o.pattern = (p != b"*").then_some(p);
        } else {
            return Err(Reply::err(error::SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// The hash that orders members for SSCAN/ZSCAN cursors (FNV-1a, then a
/// finaliser): fixed, so a cursor stays meaningful across calls.
fn scan_hash(m: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in m {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// One step of a scan over `items` (member and payload): the members whose
/// hash is at least the cursor, smallest hashes first, about `count` of
/// them (more for big collections, so a full scan costs a bounded number
/// of passes), and the next cursor (0 when done). Members present for the
/// whole scan are returned exactly once, however the collection changes.
pub(crate) fn scan_pick<M: std::ops::Deref<Target = [u8]>, T>(
    items: impl Iterator<Item = (M, T)>,
    len: usize,
    o: &ScanOpts,
) -> (Vec<(M, T)>, u64) {
    let batch = o.count.max(len / 32).max(1);
    let mut cand: Vec<(u64, M, T)> = items
        .filter_map(|(m, t)| {
            let h = scan_hash(&m);
            (h >= o.cursor).then_some((h, m, t))
        })
        .collect();
    let next = if cand.len() <= batch {
        0
    } else {
        cand.select_nth_unstable_by_key(batch - 1, |c| c.0);
        let bound = cand[batch - 1].0;
        // Ties with the boundary hash go in this batch too.
        cand.retain(|c| c.0 <= bound);
        bound.wrapping_add(1)
    };
    let out = cand
        .into_iter()
        .filter(|c| {
            o.pattern
                .is_none_or(|p| crate::glob::glob_match(p, &c.1, false))
        })
        .map(|c| (c.1, c.2))
        .collect();
    (out, next)
}

/// The reply of a scan step.
pub(crate) fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(items),
    ])
}

/// ```text
/// SSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
/// Incrementally iterate Set elements.
fn sscan(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let cursor = tri!(scan_cursor(&args));
    if !tri!(check::<Set>(ctx, key)) {
        return scan_reply(0, Vec::new());
    }
    let mut o = tri!(scan_parse(&args, cursor));
    let Some(set) = peek::<Set>(ctx, key) else {
        return scan_reply(0, Vec::new());
    };
    if matches!(set, SetVal::Ints(_)) {
        // Redis returns an intset whole, with cursor 0.
        o.count = usize::MAX;
    }
    let (items, next) = scan_pick(set.iter().map(|m| (m, ())), set.len(), &o);
    scan_reply(
        next,
        items.into_iter().map(|(m, _)| Reply::bulk(&m)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use super::super::{bulk, err};
    use crate::reply::Reply;
    use crate::shard::Shard;

    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    /// Sorted bulk strings of an array or set reply.
    fn members(r: Reply) -> Vec<String> {
        let items = match r {
            Reply::Array(v) | Reply::Set(v) => v,
            other => panic!("not a collection: {other:?}"),
        };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn argv(log: &crate::shard::LogRecord) -> Vec<String> {
        log.argv
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn sadd_srem_scard_members() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "SADD k a b a c"), Reply::Int(3));
        assert_eq!(t(&mut s, 0, "SADD k a d"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "SCARD k"), Reply::Int(4));
        assert_eq!(t(&mut s, 0, "SCARD nokey"), Reply::Int(0));
        assert_eq!(members(t(&mut s, 0, "SMEMBERS k")), ["a", "b", "c", "d"]);
        assert!(matches!(t(&mut s, 0, "SMEMBERS nokey"), Reply::Set(v) if v.is_empty()));
        assert_eq!(t(&mut s, 0, "SISMEMBER k a"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "SISMEMBER k z"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SISMEMBER nokey z"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "SMISMEMBER k a z b"),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)])
        );
        assert_eq!(
            t(&mut s, 0, "SMISMEMBER nokey a"),
            Reply::Array(vec![Reply::Int(0)])
        );
        assert_eq!(t(&mut s, 0, "SREM k a z"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "SREM nokey a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SREM k b c d"), Reply::Int(3));
        assert!(s.dbs[0].get(b"k").is_none(), "empty set is deleted");
        t(&mut s, 0, "SET str x");
        for cmd in [
            "SADD str a",
            "SREM str a",
            "SCARD str",
            "SISMEMBER str a",
            "SMISMEMBER str a",
            "SMEMBERS str",
            "SRANDMEMBER str",
            "SPOP str",
            "SSCAN str 0",
        ] {
            assert_eq!(t(&mut s, 0, cmd), err(WT), "{cmd}");
        }
        assert_eq!(
            t(&mut s, 0, "SADD k"),
            err("ERR wrong number of arguments for 'sadd' command")
        );
    }

    #[test]
    fn srandmember_counts() {
        let mut s = Shard::new(1, 7);
        assert_eq!(t(&mut s, 0, "SRANDMEMBER nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SRANDMEMBER nokey 5"), Reply::Array(vec![]));
        t(&mut s, 0, "SADD k a b c d e");
        let one = members(Reply::Array(vec![t(&mut s, 0, "SRANDMEMBER k")]));
        assert!(["a", "b", "c", "d", "e"].contains(&one[0].as_str()));
        assert_eq!(
            members(t(&mut s, 0, "SRANDMEMBER k 10")),
            ["a", "b", "c", "d", "e"]
        );
        let three = members(t(&mut s, 0, "SRANDMEMBER k 3"));
        assert_eq!(three.len(), 3);
        assert!(three.windows(2).all(|w| w[0] != w[1]), "distinct");
        assert_eq!(members(t(&mut s, 0, "SRANDMEMBER k -20")).len(), 20);
        // A count past REPEAT_MAX is refused at once (Redis would build it
        // until memory runs out), for the three commands that repeat.
        t(&mut s, 0, "ZADD z 1 a");
        t(&mut s, 0, "HSET h f v");
        for cmd in [
            "SRANDMEMBER k -346422729126229243",
            "ZRANDMEMBER z -134217729",
            "HRANDFIELD h -134217729",
        ] {
            assert_eq!(t(&mut s, 0, cmd), super::too_many_repeats(), "{cmd}");
        }
        assert_eq!(
            t(&mut s, 0, "SRANDMEMBER nokey -346422729126229243"),
            Reply::Array(vec![])
        );
        assert_eq!(t(&mut s, 0, "SRANDMEMBER k 0"), Reply::Array(vec![]));
        assert_eq!(
            t(&mut s, 0, "SRANDMEMBER k x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "SRANDMEMBER k 1 2"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "SRANDMEMBER k -9223372036854775808"),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        // Many samples reach every member.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            if let Reply::Bulk(b) = t(&mut s, 0, "SRANDMEMBER k") {
                seen.insert(b);
            }
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn spop_and_its_log() {
        let mut s = Shard::new(1, 3);
        s.enable_log();
        assert_eq!(t(&mut s, 0, "SPOP nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SPOP nokey 3"), Reply::Set(vec![]));
        assert_eq!(
            t(&mut s, 0, "SPOP k -1"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            t(&mut s, 0, "SPOP k x"),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(t(&mut s, 0, "SPOP k 1 2"), err("ERR syntax error"));
        assert!(s.take_log().is_empty());
        t(&mut s, 0, "SADD k a b c d e");
        s.take_log();
        let Reply::Bulk(m) = t(&mut s, 0, "SPOP k") else {
            panic!()
        };
        let log = s.take_log();
        assert_eq!(log.len(), 1);
        assert_eq!(
            argv(&log[0]),
            ["SREM", "k", std::str::from_utf8(&m).unwrap()]
        );
        assert_eq!(t(&mut s, 0, "SCARD k"), Reply::Int(4));
        assert_eq!(t(&mut s, 0, "SPOP k 0"), Reply::Set(vec![]));
        assert!(s.take_log().is_empty());
        let two = members(t(&mut s, 0, "SPOP k 2"));
        assert_eq!(two.len(), 2);
        // One SREM per member, in MULTI/EXEC, as Redis 7.0 propagates it.
        let log: Vec<Vec<String>> = s.take_log().iter().map(argv).collect();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(
            (&log[0][..], &log[3][..]),
            (&["MULTI".to_string()][..], &["EXEC".to_string()][..])
        );
        let mut logged: Vec<String> = log[1..3]
            .iter()
            .map(|a| {
                assert_eq!(&a[..2], ["SREM", "k"]);
                a[2].clone()
            })
            .collect();
        logged.sort();
        assert_eq!(logged, two);
        assert_eq!(t(&mut s, 0, "SCARD k"), Reply::Int(2));
        assert_eq!(members(t(&mut s, 0, "SPOP k 5")).len(), 2);
        assert_eq!(argv(&s.take_log()[0]), ["DEL", "k"]);
        assert!(s.dbs[0].get(b"k").is_none());
        // The last single pop deletes the key.
        t(&mut s, 0, "SADD k a");
        assert_eq!(t(&mut s, 0, "SPOP k"), bulk("a"));
        assert!(s.dbs[0].get(b"k").is_none());
    }

    #[test]
    fn spop_propagates_one_srem_per_member() {
        let mut s = Shard::new(1, 3);
        let mut cmd = String::from("SADD k");
        for i in 0..3000 {
            cmd.push_str(&format!(" m{i}"));
        }
        t(&mut s, 0, &cmd);
        s.enable_log();
        assert_eq!(members(t(&mut s, 0, "SPOP k 2500")).len(), 2500);
        let log = s.take_log();
        assert_eq!(log.len(), 2502);
        assert!(log[1..2501]
            .iter()
            .all(|l| l.argv.len() == 3 && l.argv[0] == "SREM"));
        assert_eq!(t(&mut s, 0, "SCARD k"), Reply::Int(500));
    }

    #[test]
    fn smove_cases() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SADD a x y");
        t(&mut s, 0, "SET str v");
        assert_eq!(t(&mut s, 0, "SMOVE nokey str x"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SMOVE a str x"), err(WT));
        assert_eq!(t(&mut s, 0, "SMOVE str a x"), err(WT));
        assert_eq!(t(&mut s, 0, "SMOVE a a x"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "SMOVE a a z"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SMOVE a b z"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SMOVE a b x"), Reply::Int(1));
        assert_eq!(members(t(&mut s, 0, "SMEMBERS b")), ["x"]);
        t(&mut s, 0, "SADD b y");
        assert_eq!(t(&mut s, 0, "SMOVE a b y"), Reply::Int(1));
        assert!(s.dbs[0].get(b"a").is_none());
        assert_eq!(members(t(&mut s, 0, "SMEMBERS b")), ["x", "y"]);
    }

    #[test]
    fn algebra_and_store() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SADD a 1 2 3 4");
        t(&mut s, 0, "SADD b 3 4 5");
        t(&mut s, 0, "SADD c 4 5 6");
        t(&mut s, 0, "SET str v");
        assert_eq!(members(t(&mut s, 0, "SINTER a b c")), ["4"]);
        assert_eq!(members(t(&mut s, 0, "SINTER a b")), ["3", "4"]);
        assert_eq!(
            members(t(&mut s, 0, "SINTER a nokey")),
            Vec::<String>::new()
        );
        assert!(matches!(t(&mut s, 0, "SINTER a nokey"), Reply::Set(_)));
        assert_eq!(
            members(t(&mut s, 0, "SUNION a nokey c")),
            ["1", "2", "3", "4", "5", "6"]
        );
        assert_eq!(members(t(&mut s, 0, "SDIFF a b nokey")), ["1", "2"]);
        assert_eq!(members(t(&mut s, 0, "SDIFF nokey a")), Vec::<String>::new());
        for c in [
            "SINTER nokey str",
            "SUNION a str",
            "SDIFF str",
            "SDIFF a str",
            "SINTERSTORE d nokey str",
        ] {
            assert_eq!(t(&mut s, 0, c), err(WT), "{c}");
        }
        assert_eq!(t(&mut s, 0, "SINTERSTORE str a b"), Reply::Int(2));
        assert_eq!(members(t(&mut s, 0, "SMEMBERS str")), ["3", "4"]);
        assert_eq!(t(&mut s, 0, "SUNIONSTORE d a b"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "SDIFFSTORE d d b"), Reply::Int(2));
        assert_eq!(members(t(&mut s, 0, "SMEMBERS d")), ["1", "2"]);
        s.dbs[0].set_expire(b"d", Some(1_000_000));
        assert_eq!(t(&mut s, 0, "SUNIONSTORE d d"), Reply::Int(2));
        assert_eq!(
            s.dbs[0].get(b"d").unwrap().expire_at(),
            None,
            "overwrite drops TTL"
        );
        let dirty = s.dirty;
        assert_eq!(t(&mut s, 0, "SINTERSTORE d a nokey"), Reply::Int(0));
        assert!(s.dbs[0].get(b"d").is_none(), "empty result deletes");
        assert_eq!(s.dirty, dirty + 1);
        assert_eq!(t(&mut s, 0, "SDIFFSTORE d a a"), Reply::Int(0));
        assert_eq!(s.dirty, dirty + 1, "nothing deleted, nothing written");
    }

    #[test]
    fn sintercard_cases() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SADD a 1 2 3 4");
        t(&mut s, 0, "SADD b 2 3 4 5");
        t(&mut s, 0, "SET str v");
        assert_eq!(t(&mut s, 0, "SINTERCARD 2 a b"), Reply::Int(3));
        assert_eq!(t(&mut s, 0, "SINTERCARD 2 a b LIMIT 2"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "SINTERCARD 2 a b LIMIT 0"), Reply::Int(3));
        assert_eq!(t(&mut s, 0, "SINTERCARD 1 a"), Reply::Int(4));
        assert_eq!(t(&mut s, 0, "SINTERCARD 2 a nokey"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "SINTERCARD 2 nokey str"), err(WT));
        assert_eq!(
            t(&mut s, 0, "SINTERCARD 0 a"),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            t(&mut s, 0, "SINTERCARD x a"),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            t(&mut s, 0, "SINTERCARD 3 a b"),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            t(&mut s, 0, "SINTERCARD 1 a LIMIT -1"),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            t(&mut s, 0, "SINTERCARD 1 a LIMIT"),
            err("ERR syntax error")
        );
        assert_eq!(t(&mut s, 0, "SINTERCARD 1 a FOO"), err("ERR syntax error"));
        let spec = super::super::registry().lookup(b"sintercard").unwrap();
        let o = crate::args::OwnedArgs::from_iter([
            &b"SINTERCARD"[..],
            b"2",
            b"a",
            b"b",
            b"LIMIT",
            b"1",
        ]);
        let mut keys = Vec::new();
        spec.key_indices(&o.as_args(), &mut keys).unwrap();
        assert_eq!(keys, [2, 3]);
        let o = crate::args::OwnedArgs::from_iter([&b"SINTERCARD"[..], b"5", b"a"]);
        assert!(spec.key_indices(&o.as_args(), &mut keys).is_err());
    }

    #[test]
    fn sscan_walks_everything_once() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "SSCAN nokey x"), err("ERR invalid cursor"));
        assert_eq!(
            t(&mut s, 0, "SSCAN nokey 0"),
            Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
        );
        t(&mut s, 0, "SADD small a b c");
        let Reply::Array(r) = t(&mut s, 0, "SSCAN small 0") else {
            panic!()
        };
        assert_eq!(r[0], bulk("0"));
        assert_eq!(members(r[1].clone()), ["a", "b", "c"]);
        let Reply::Array(r) = t(&mut s, 0, "SSCAN small 0 MATCH b*") else {
            panic!()
        };
        assert_eq!(members(r[1].clone()), ["b"]);
        assert_eq!(
            t(&mut s, 0, "SSCAN small 0 COUNT 0"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "SSCAN small 0 COUNT x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "SSCAN small 0 MATCH"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "SSCAN small 0 TYPE set"),
            err("ERR syntax error")
        );
        let mut cmd = String::from("SADD big");
        for i in 0..1000 {
            cmd.push_str(&format!(" m{i}"));
        }
        t(&mut s, 0, &cmd);
        let mut seen = Vec::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let Reply::Array(r) = t(&mut s, 0, &format!("SSCAN big {cursor} COUNT 20")) else {
                panic!()
            };
            calls += 1;
            seen.extend(members(r[1].clone()));
            // Growing the set mid-scan must not lose the original members.
            t(&mut s, 0, &format!("SADD big extra{calls}"));
            let Reply::Bulk(c) = &r[0] else { panic!() };
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 10, "iterates in several steps ({calls})");
        seen.retain(|m| !m.starts_with("extra"));
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "no duplicates");
        assert_eq!(seen.len(), 1000);
    }
}
