//! The `hash` command family: HSET & co, the counters, HRANDFIELD, HSCAN.
//!
//! HSCAN: a hash Redis would keep as a listpack (small, short values) or
//! one no larger than COUNT is returned whole, with cursor 0, as Redis
//! does for listpacks. Larger hashes are walked in order of the field's
//! hash under the map's own hasher: the cursor is the lowest hash value not
//! yet returned. This keeps Redis's guarantee (a field present for the whole
//! iteration is returned at least once) across inserts, deletes and
//! resizes, since a field's hash never changes while the hash object lives;
//! it is lost if the key is deleted and re-created (new hasher). Without a
//! way to jump to a hash range, each call walks the whole hash; to bound
//! the total work a call returns at least about len/256 fields whatever
//! COUNT says (COUNT is a hint in Redis too).

use super::{flags::*, Ctx, Spec};
use crate::error;
use crate::glob::glob_match;
use crate::hashval::HashVal;
use crate::ldouble;
use crate::notify;
use crate::reply::Reply;
use crate::resp::parse_i64;
use crate::shard::Shard;
use crate::value::Value;
use bytes::Bytes;

/// The hash family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hset),
    Spec::new("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hsetnx),
    Spec::new("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), hmset),
    Spec::new("hget", 3, READONLY | FAST, (1, 1, 1), hget),
    Spec::new("hmget", -3, READONLY | FAST, (1, 1, 1), hmget),
    Spec::new("hdel", -3, WRITE | FAST, (1, 1, 1), hdel),
    Spec::new("hlen", 2, READONLY | FAST, (1, 1, 1), hlen),
    Spec::new("hstrlen", 3, READONLY | FAST, (1, 1, 1), hstrlen),
    Spec::new("hexists", 3, READONLY | FAST, (1, 1, 1), hexists),
    Spec::new("hkeys", 2, READONLY, (1, 1, 1), hkeys),
    Spec::new("hvals", 2, READONLY, (1, 1, 1), hvals),
    Spec::new("hgetall", 2, READONLY, (1, 1, 1), hgetall),
    Spec::new("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), hincrby),
    Spec::new(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        hincrbyfloat,
    ),
    Spec::new("hrandfield", -2, READONLY, (1, 1, 1), hrandfield),
    Spec::new("hscan", -3, READONLY, (1, 1, 1), hscan),
];

const NOT_INT_VALUE: &str = "ERR hash value is not an integer";
const NOT_FLOAT_VALUE: &str = "ERR hash value is not a float";
const NAN_OR_INF: &str = "ERR value is NaN or Infinity";
const WOULD_BE_NAN: &str = "ERR increment would produce NaN or Infinity";
const RANDFIELD_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const OUT_OF_RANGE: &str = "ERR value is out of range";
const INVALID_CURSOR: &str = "ERR invalid cursor";

type Hash = HashVal;

/// The hash at `key`: `Ok(None)` when missing, WRONGTYPE for another type.
/// `read` counts a keyspace hit/miss; writes look up silently.
fn hash_at<'s>(
    shard: &'s mut Shard,
    db: usize,
    key: &[u8],
    now_ms: i64,
    read: bool,
) -> Result<Option<&'s mut Hash>, Reply> {
    let e = if read {
        shard.lookup_read(db, key, now_ms)
    } else {
        shard.lookup_write(db, key, now_ms)
    };
    match e {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(Reply::err(error::WRONGTYPE)),
        },
    }
}

/// The hash at `key` for a write, created empty when missing (the caller
/// must store something or remove it again).
fn hash_or_create<'s>(ctx: &'s mut Ctx, key: &[u8]) -> Result<&'s mut Hash, Reply> {
    let (db, now) = (ctx.db, ctx.now_ms);
    if hash_at(ctx.shard, db, key, now, false)?.is_none() {
        ctx.shard.set(db, key, Value::Hash(Box::default()), now);
    }
    // (Looked up again without touching it: the write touched it once.)
    match ctx.shard.dbs[db].get_mut(key).map(|e| &mut e.value) {
        Some(Value::Hash(h)) => Ok(h),
        Some(_) => Err(Reply::err(error::WRONGTYPE)),
        None => Err(Reply::err(error::NO_KEY)),
    }
}

fn set_pairs(ctx: &mut Ctx) -> Result<i64, Reply> {
    let args = ctx.args;
    if args.len() % 2 == 1 {
        return Err(Reply::err(error::wrong_arity(&args.name_lower())));
    }
    let key = args.get(1);
    let pairs = (args.len() - 2) / 2;
    let lim = ctx.shard.limits;
    let h = hash_or_create(ctx, key)?;
    let mut added = 0;
    let mut i = 2;
    while i + 1 < args.len() {
        added += h.set(args.get(i), args.get(i + 1), &lim) as i64;
        i += 2;
    }
    ctx.shard.touch(ctx.db, key);
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(pairs as u64);
    Ok(added)
}

/// ```text
/// HSET key field value [field value ...]
/// ```
/// Set the string value of a hash field.
fn hset(ctx: &mut Ctx) -> Reply {
    set_pairs(ctx).map_or_else(|e| e, Reply::Int)
}

/// ```text
/// HMSET key field value [field value ...]
/// ```
/// Set multiple hash fields to multiple values.
fn hmset(ctx: &mut Ctx) -> Reply {
    set_pairs(ctx).map_or_else(|e| e, |_| Reply::Ok)
}

/// ```text
/// HSETNX key field value
/// ```
/// Set the value of a hash field, only if the field does not exist.
fn hsetnx(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (key, field) = (args.get(1), args.get(2));
    match hash_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(Some(h)) if h.contains(field) => return Reply::Int(0),
        Ok(_) => {}
    }
    let lim = ctx.shard.limits;
    match hash_or_create(ctx, key) {
        Err(e) => return e,
        Ok(h) => h.set(field, args.get(3), &lim),
    };
    ctx.shard.touch(ctx.db, key);
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(1);
    Reply::Int(1)
}

/// ```text
/// HGET key field
/// ```
/// Get the value of a hash field.
fn hget(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(h) => match h.and_then(|h| h.get(args.get(2))) {
            Some(v) => Reply::bulk(v),
            None => Reply::Nil,
        },
    }
}

/// ```text
/// HMGET key field [field ...]
/// ```
/// Get the values of all the given hash fields.
fn hmget(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(h) => Reply::Array(
            args.iter_from(2)
                .map(|f| match h.as_ref().and_then(|h| h.get(f)) {
                    Some(v) => Reply::bulk(v),
                    None => Reply::Nil,
                })
                .collect(),
        ),
    }
}

/// ```text
/// HDEL key field [field ...]
/// ```
/// Delete one or more hash fields.
fn hdel(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (deleted, empty) = match hash_at(ctx.shard, ctx.db, key, ctx.now_ms, false) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(h)) => {
            let mut n = 0i64;
            for f in args.iter_from(2) {
                if h.remove(f) {
                    n += 1;
                    if h.is_empty() {
                        break;
                    }
                }
            }
            (n, h.is_empty())
        }
    };
    if deleted > 0 {
        if empty {
            ctx.shard.remove(ctx.db, key);
        } else {
            ctx.shard.touch(ctx.db, key);
        }
        ctx.notify(notify::HASH, "hdel", key);
        if empty {
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.dirty(deleted as u64);
    }
    Reply::Int(deleted)
}

/// ```text
/// HLEN key
/// ```
/// Get the number of fields in a hash.
fn hlen(ctx: &mut Ctx) -> Reply {
    match hash_at(ctx.shard, ctx.db, ctx.args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(h) => Reply::Int(h.map_or(0, |h| h.len() as i64)),
    }
}

/// ```text
/// HSTRLEN key field
/// ```
/// Get the length of the value of a hash field.
fn hstrlen(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(h) => Reply::Int(
            h.and_then(|h| h.get(args.get(2)))
                .map_or(0, |v| v.len() as i64),
        ),
    }
}

/// ```text
/// HEXISTS key field
/// ```
/// Determine if a hash field exists.
fn hexists(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(h) => Reply::Int(h.is_some_and(|h| h.contains(args.get(2))) as i64),
    }
}

/// ```text
/// HKEYS key
/// ```
/// Get all the fields in a hash.
fn hkeys(ctx: &mut Ctx) -> Reply {
    match hash_at(ctx.shard, ctx.db, ctx.args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(h)) => Reply::Array(h.iter().map(|(k, _)| Reply::bulk(k)).collect()),
    }
}

/// ```text
/// HVALS key
/// ```
/// Get all the values in a hash.
fn hvals(ctx: &mut Ctx) -> Reply {
    match hash_at(ctx.shard, ctx.db, ctx.args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(h)) => Reply::Array(h.iter().map(|(_, v)| Reply::bulk(v)).collect()),
    }
}

/// ```text
/// HGETALL key
/// ```
/// Get all the fields and values in a hash.
fn hgetall(ctx: &mut Ctx) -> Reply {
    match hash_at(ctx.shard, ctx.db, ctx.args.get(1), ctx.now_ms, true) {
        Err(e) => e,
        Ok(None) => Reply::Map(Vec::new()),
        Ok(Some(h)) => Reply::Map(
            h.iter()
                .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                .collect(),
        ),
    }
}

/// ```text
/// HINCRBY key field increment
/// ```
/// Increment the integer value of a hash field by the given number.
fn hincrby(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (key, field) = (args.get(1), args.get(2));
    let incr = match args.int(3) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let lim = ctx.shard.limits;
    let h = match hash_or_create(ctx, key) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let old = match h.get(field) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return Reply::err(NOT_INT_VALUE),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        // A hash created just now must not stay empty.
        let empty = h.is_empty();
        if empty {
            ctx.shard.dbs[ctx.db].remove(key);
        }
        return Reply::err(error::OVERFLOW);
    };
    h.set(field, new.to_string().as_bytes(), &lim);
    ctx.shard.touch(ctx.db, key);
    ctx.notify(notify::HASH, "hincrby", key);
    ctx.dirty(1);
    Reply::Int(new)
}

/// ```text
/// HINCRBYFLOAT key field increment
/// ```
/// Increment the float value of a hash field by the given amount.
fn hincrbyfloat(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (key, field, by) = (args.get(1), args.get(2), args.get(3));
    // Redis's long double arithmetic (see `crate::ldouble`).
    match ldouble::parse(by) {
        None => return Reply::err(error::NOT_FLOAT),
        Some(ldouble::Float::Infinite) => return Reply::err(NAN_OR_INF),
        Some(ldouble::Float::Finite) => {}
    }
    let lim = ctx.shard.limits;
    let h = match hash_or_create(ctx, key) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let sum = ldouble::incr(h.get(field), by);
    let new = match sum {
        Ok(v) => v,
        Err(e) => {
            if h.is_empty() {
                ctx.shard.dbs[ctx.db].remove(key);
            }
            return Reply::err(match e {
                ldouble::IncrError::BadValue => NOT_FLOAT_VALUE,
                ldouble::IncrError::BadIncr => error::NOT_FLOAT,
                ldouble::IncrError::NanOrInf => WOULD_BE_NAN,
            });
        }
    };
    let text = Bytes::from(new);
    h.set(field, &text, &lim);
    ctx.shard.touch(ctx.db, key);
    ctx.notify(notify::HASH, "hincrbyfloat", key);
    ctx.dirty(1);
    // Replayed as the resulting value, as Redis does.
    ctx.propagate_as(vec![vec![
        Bytes::from_static(b"HSET"),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(field),
        text.clone(),
    ]]);
    Reply::Bulk(text)
}

/// A small PRNG seeded from the shard's, so picks can be made while the
/// hash is borrowed from the shard.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// ```text
/// HRANDFIELD key [count [WITHVALUES]]
/// ```
/// Get one or multiple random fields from a hash.
fn hrandfield(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let mut rng = Rng(ctx.shard.random() | 1);
    let mut withvalues = false;
    let mut count = None;
    if args.len() >= 3 {
        let l = match args.int(2) {
            Ok(l) => l,
            Err(e) => return e,
        };
        if l == i64::MIN {
            return Reply::err(RANDFIELD_RANGE);
        }
        if args.len() > 4 || (args.len() == 4 && !args.is(3, "withvalues")) {
            return Reply::err(error::SYNTAX);
        }
        if args.len() == 4 {
            withvalues = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return Reply::err(OUT_OF_RANGE);
            }
        }
        count = Some(l);
    }
    let h = match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => return e,
        Ok(None) => {
            return if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Nil
            }
        }
        Ok(Some(h)) => h,
    };
    let size = h.len();
    let Some(count) = count else {
        return match h.iter().nth(rng.below(size)) {
            Some((k, _)) => Reply::bulk(k),
            None => Reply::Nil,
        };
    };
    if count == 0 || size == 0 {
        return Reply::Array(Vec::new());
    }
    let shape = |picked: Vec<(&[u8], &[u8])>| {
        if withvalues {
            Reply::Pairs(
                picked
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                    .collect(),
            )
        } else {
            Reply::Array(picked.into_iter().map(|(k, _)| Reply::bulk(k)).collect())
        }
    };
    let entries: Vec<(&[u8], &[u8])> = h.iter().collect();
    if count < 0 {
        // Repeats allowed: `|count|` independent picks. The reply really is
        // that long, so grow it as we go rather than reserving it upfront.
        let n = count.unsigned_abs();
        if n > super::set::REPEAT_MAX {
            return super::set::too_many_repeats();
        }
        let mut picked = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            picked.push(entries[rng.below(size)]);
        }
        return shape(picked);
    }
    let mut entries = entries;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count < size {
        // Distinct picks: a partial Fisher-Yates shuffle.
        for i in 0..count {
            let j = i + rng.below(size - i);
            entries.swap(i, j);
        }
        entries.truncate(count);
    }
    shape(entries)
}

/// Parses a SCAN cursor like Redis's `strtoul` check: optional sign (a
/// negative wraps), decimal digits; the empty string is 0.
fn parse_cursor(a: &[u8]) -> Option<u64> {
    let (neg, digits) = match a.first() {
        Some(b'-') => (true, &a[1..]),
        Some(b'+') => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() {
        return if a.is_empty() { Some(0) } else { None };
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// ```text
/// HSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
/// Incrementally iterate hash fields and associated values.
fn hscan(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let Some(cursor) = parse_cursor(args.get(2)) else {
        return Reply::err(INVALID_CURSOR);
    };
    let h = match hash_at(ctx.shard, ctx.db, args.get(1), ctx.now_ms, true) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![Reply::bulk(b"0"), Reply::Array(Vec::new())]),
        Ok(Some(h)) => h,
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if more && args.is(i, "count") {
            count = match args.int(i + 1) {
                Ok(c) => c,
                Err(e) => return e,
            };
            if count < 1 {
                return Reply::err(error::SYNTAX);
            }
        } else if more && args.is(i, "match") {
            let p = args.get(i + 1);
            pattern = (p != b"*").then_some(p);
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 2;
    }
    let keep = |f: &[u8]| pattern.is_none_or(|p| glob_match(p, f, false));
    let mut out = Vec::new();
    let len = h.len();
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let next = if h.is_packed() || len <= count {
        for (k, v) in h.iter() {
            if keep(k) {
                out.push(Reply::bulk(k));
                out.push(Reply::bulk(v));
            }
        }
        0
    } else {
        // Cover a slice of the hash space expected to hold `batch` fields.
        let batch = count.max(len / 256) as u128;
        let width = ((batch << 64) / len as u128).max(1);
        let end = cursor as u128 + width;
        for (k, v) in h.iter() {
            let hv = h.scan_hash(k).unwrap_or(0) as u128;
            if hv >= cursor as u128 && hv < end && keep(k) {
                out.push(Reply::bulk(k));
                out.push(Reply::bulk(v));
            }
        }
        if end > u64::MAX as u128 {
            0
        } else {
            end as u64
        }
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use super::super::{bulk, err};
    use crate::reply::Reply;
    use crate::shard::Shard;
    use bytes::Bytes;
    use std::collections::{BTreeMap, BTreeSet};

    fn strs(r: &Reply) -> Vec<String> {
        match r {
            Reply::Array(v) => v
                .iter()
                .map(|x| match x {
                    Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    Reply::Nil => "(nil)".into(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }
    fn sorted(r: &Reply) -> Vec<String> {
        let mut v = strs(r);
        v.sort();
        v
    }
    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn set_get_del() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "HSET h a 1 b 2"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "HSET h a 3 c 4"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "HMSET h d 5"), Reply::Ok);
        assert_eq!(
            t(&mut s, 0, "HSET h a 1 b"),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            t(&mut s, 0, "HMSET h a 1 b"),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(t(&mut s, 0, "HSETNX h a 9"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "HSETNX h e 9"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "HSETNX new e 9"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "HGET h a"), bulk("3"));
        assert_eq!(t(&mut s, 0, "HGET h zz"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "HGET nokey a"), Reply::Nil);
        assert_eq!(strs(&t(&mut s, 0, "HMGET h a zz e")), ["3", "(nil)", "9"]);
        assert_eq!(strs(&t(&mut s, 0, "HMGET nokey a b")), ["(nil)", "(nil)"]);
        assert_eq!(t(&mut s, 0, "HLEN h"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "HLEN nokey"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "HSTRLEN h a"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "HSTRLEN h zz"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "HEXISTS h a"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "HEXISTS h zz"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "HEXISTS nokey a"), Reply::Int(0));
        assert_eq!(sorted(&t(&mut s, 0, "HKEYS h")), ["a", "b", "c", "d", "e"]);
        assert_eq!(sorted(&t(&mut s, 0, "HVALS h")), ["2", "3", "4", "5", "9"]);
        assert_eq!(t(&mut s, 0, "HKEYS nokey"), Reply::Array(vec![]));
        match t(&mut s, 0, "HGETALL h") {
            Reply::Map(m) => {
                let got: BTreeMap<_, _> = m
                    .iter()
                    .map(|(k, v)| (format!("{k:?}"), format!("{v:?}")))
                    .collect();
                assert_eq!(got.len(), 5);
                assert_eq!(got[&format!("{:?}", bulk("a"))], format!("{:?}", bulk("3")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t(&mut s, 0, "HGETALL nokey"), Reply::Map(vec![]));
        assert_eq!(t(&mut s, 0, "HDEL h a zz b"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "HDEL nokey a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "HDEL h c d e"), Reply::Int(3));
        assert_eq!(
            t(&mut s, 0, "EXISTS h"),
            Reply::Int(0),
            "emptied hash is deleted"
        );
        t(&mut s, 0, "SET s x");
        for c in [
            "HSET s a 1",
            "HMSET s a 1",
            "HSETNX s a 1",
            "HGET s a",
            "HMGET s a",
            "HDEL s a",
            "HLEN s",
            "HSTRLEN s a",
            "HEXISTS s a",
            "HKEYS s",
            "HVALS s",
            "HGETALL s",
            "HINCRBY s a 1",
            "HINCRBYFLOAT s a 1",
            "HRANDFIELD s",
            "HRANDFIELD s 0",
            "HSCAN s 0",
        ] {
            assert_eq!(t(&mut s, 0, c), err(WT), "{c}");
        }
    }

    #[test]
    fn incr() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        assert_eq!(t(&mut s, 0, "HINCRBY h n 5"), Reply::Int(5));
        assert_eq!(t(&mut s, 0, "HINCRBY h n -7"), Reply::Int(-2));
        assert_eq!(
            t(&mut s, 0, "HINCRBY h n x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBY nokey n x"),
            err("ERR value is not an integer or out of range")
        );
        t(&mut s, 0, "HSET h s abc big 9223372036854775807 f 1.5");
        assert_eq!(
            t(&mut s, 0, "HINCRBY h s 1"),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBY h f 1"),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBY h big 1"),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBY h n -9223372036854775808"),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(t(&mut s, 0, "HINCRBY h big -1"), Reply::Int(i64::MAX - 1));
        assert_eq!(
            t(&mut s, 0, "HINCRBY h2 n 9223372036854775807"),
            Reply::Int(i64::MAX)
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBY h2 n 1"),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(t(&mut s, 0, "HINCRBY h3 n 0"), Reply::Int(0));

        assert_eq!(t(&mut s, 0, "HINCRBYFLOAT h f 0.1"), bulk("1.6"));
        assert_eq!(t(&mut s, 0, "HINCRBYFLOAT h f -1.6"), bulk("0"));
        assert_eq!(t(&mut s, 0, "HINCRBYFLOAT h g 3.0e3"), bulk("3000"));
        assert_eq!(t(&mut s, 0, "HINCRBYFLOAT h tiny 1.5e-20"), bulk("0"));
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h t2 1.23456789e-10"),
            bulk("0.00000000012345679")
        );
        assert_eq!(t(&mut s, 0, "HINCRBYFLOAT h t3 -1e-30"), bulk("0"));
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h big 1"),
            bulk("9223372036854775807")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h s 1"),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h f x"),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h f nan"),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h f inf"),
            err("ERR value is NaN or Infinity")
        );
        // Long double arithmetic, as Redis (checked against 7.0.15).
        for (by, want) in [
            ("10.5", "10.5"),
            ("0.1", "10.6"),
            ("-3", "7.6"),
            ("1e3", "1007.59999999999999998"),
        ] {
            let c = format!("HINCRBYFLOAT ld f {by}");
            assert_eq!(t(&mut s, 0, &c), bulk(want), "{c}");
        }
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT ld f 1e5000"),
            err("ERR value is not a valid float")
        );
        t(&mut s, 0, "HSET h m 1e4932");
        assert_eq!(
            t(&mut s, 0, "HINCRBYFLOAT h m 1e4932"),
            err("ERR increment would produce NaN or Infinity")
        );
        let log: Vec<Vec<Bytes>> = s.take_log().into_iter().map(|r| r.argv).collect();
        let hset_g: Vec<Bytes> = ["HSET", "h", "g", "3000"]
            .iter()
            .map(|x| Bytes::from(*x))
            .collect();
        assert!(log.contains(&hset_g), "{log:?}");
        assert!(!log.iter().any(|a| a[0] == "HINCRBYFLOAT"));
        // Failed increments leave no empty key behind.
        assert_eq!(t(&mut s, 0, "EXISTS nokey"), Reply::Int(0));
    }

    #[test]
    fn randfield() {
        let mut s = Shard::new(1, 7);
        assert_eq!(t(&mut s, 0, "HRANDFIELD nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "HRANDFIELD nokey 5"), Reply::Array(vec![]));
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD nokey -5 WITHVALUES"),
            Reply::Array(vec![])
        );
        t(&mut s, 0, "HSET h a 1 b 2 c 3 d 4 e 5");
        let all: BTreeSet<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        for _ in 0..20 {
            let one = strs(&Reply::Array(vec![t(&mut s, 0, "HRANDFIELD h")]));
            assert!(all.contains(&one[0]));
        }
        assert_eq!(t(&mut s, 0, "HRANDFIELD h 0"), Reply::Array(vec![]));
        let three = strs(&t(&mut s, 0, "HRANDFIELD h 3"));
        assert_eq!(three.iter().collect::<BTreeSet<_>>().len(), 3, "distinct");
        let more = sorted(&t(&mut s, 0, "HRANDFIELD h 10"));
        assert_eq!(more, ["a", "b", "c", "d", "e"]);
        let rep = strs(&t(&mut s, 0, "HRANDFIELD h -20"));
        assert_eq!(rep.len(), 20);
        assert!(rep.iter().all(|f| all.contains(f)));
        assert!(rep.iter().collect::<BTreeSet<_>>().len() < 20, "repeats");
        match t(&mut s, 0, "HRANDFIELD h -3 withvalues") {
            Reply::Pairs(p) => {
                assert_eq!(p.len(), 3);
                for (k, v) in p {
                    let (Reply::Bulk(k), Reply::Bulk(v)) = (k, v) else {
                        panic!()
                    };
                    assert_eq!((k[0] - b'a' + b'1'), v[0]);
                }
            }
            other => panic!("{other:?}"),
        }
        match t(&mut s, 0, "HRANDFIELD h 2 WITHVALUES") {
            Reply::Pairs(p) => assert_eq!(p.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h -9223372036854775808"),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h 1 withvalue"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h 1 withvalues x"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD nokey 1 withvalue"),
            err("ERR syntax error")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h -4611686018427387904 WITHVALUES"),
            err("ERR value is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "HRANDFIELD h 9223372036854775807 WITHVALUES"),
            err("ERR value is out of range")
        );
        // A huge positive count is bounded by the hash itself.
        assert_eq!(
            strs(&t(&mut s, 0, "HRANDFIELD h 9223372036854775807")).len(),
            5
        );
    }

    fn scan(s: &mut Shard, cmd: &str) -> (String, Vec<String>) {
        match t(s, 0, cmd) {
            Reply::Array(v) if v.len() == 2 => {
                let Reply::Bulk(c) = &v[0] else { panic!() };
                (String::from_utf8_lossy(c).into_owned(), strs(&v[1]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hscan_small_and_errors() {
        let mut s = Shard::new(1, 1);
        assert_eq!(scan(&mut s, "HSCAN nokey 0"), ("0".into(), vec![]));
        assert_eq!(scan(&mut s, "HSCAN nokey 0 COUNT 0"), ("0".into(), vec![]));
        t(&mut s, 0, "HSET h foo 1 bar 2 fab 3");
        let (c, items) = scan(&mut s, "HSCAN h 0 COUNT 1");
        assert_eq!(c, "0");
        assert_eq!(items.len(), 6, "a small hash comes whole");
        let (_, items) = scan(&mut s, "HSCAN h 0 MATCH f*");
        let mut fields: Vec<_> = items.chunks(2).map(|p| p[0].clone()).collect();
        fields.sort();
        assert_eq!(fields, ["fab", "foo"]);
        assert_eq!(scan(&mut s, "HSCAN h 0 MATCH f?b").1, ["fab", "3"]);
        assert_eq!(
            scan(&mut s, "HSCAN h  MATCH zz").0,
            "0",
            "empty cursor is 0"
        );
        assert_eq!(t(&mut s, 0, "HSCAN h x"), err("ERR invalid cursor"));
        assert_eq!(t(&mut s, 0, "HSCAN nokey x"), err("ERR invalid cursor"));
        assert_eq!(
            t(&mut s, 0, "HSCAN h 18446744073709551616"),
            err("ERR invalid cursor")
        );
        assert_eq!(scan(&mut s, "HSCAN h -1").0, "0");
        assert_eq!(t(&mut s, 0, "HSCAN h 0 COUNT 0"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "HSCAN h 0 COUNT x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "HSCAN h 0 MATCH"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "HSCAN h 0 NOVALUES"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "HSCAN h 0 foo bar"), err("ERR syntax error"));
        // `*` matches the empty field too.
        t(&mut s, 0, "HSET e x 1");
        let r = super::super::run(&mut s, 0, 0, &[b"HSET", b"e", b"", b"v"]);
        assert_eq!(r, Reply::Int(1));
        assert_eq!(scan(&mut s, "HSCAN e 0 MATCH *").1.len(), 4);
    }

    #[test]
    fn hscan_large_survives_changes() {
        let mut s = Shard::new(1, 1);
        let n = 3000;
        for i in 0..n {
            t(&mut s, 0, &format!("HSET big f{i} v{i}"));
        }
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        let mut extra = 0;
        loop {
            let (next, items) = scan(&mut s, &format!("HSCAN big {cursor} COUNT 50"));
            calls += 1;
            assert!(items.len() < 2 * 400, "bounded batches: {}", items.len());
            for p in items.chunks(2) {
                seen.insert(p[0].clone());
            }
            // Churn between calls: delete some fields already seen and add
            // new ones, which also grows (rehashes) the table.
            for _ in 0..20 {
                t(&mut s, 0, &format!("HSET big x{extra} v"));
                extra += 1;
            }
            if let Some(f) = seen.iter().next().cloned() {
                if f.starts_with('f') {
                    t(&mut s, 0, &format!("HDEL big {f}"));
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
            assert!(calls < 1000);
        }
        assert!(calls > 5, "iterated in several calls: {calls}");
        for i in 0..n {
            assert!(seen.contains(&format!("f{i}")), "missed f{i}");
        }
        // MATCH filters within each batch.
        let mut cursor = "0".to_string();
        let mut found = Vec::new();
        loop {
            let (next, items) = scan(&mut s, &format!("HSCAN big {cursor} MATCH f12? COUNT 100"));
            found.extend(items.chunks(2).map(|p| p[0].clone()));
            if next == "0" {
                break;
            }
            cursor = next;
        }
        found.sort();
        let want: Vec<String> = (120..130).map(|i| format!("f{i}")).collect();
        // f12x may have been deleted by the churn above only if seen first;
        // those that still exist must all be found.
        for w in want {
            let exists = t(&mut s, 0, &format!("HEXISTS big {w}")) == Reply::Int(1);
            assert_eq!(found.contains(&w), exists, "{w}");
        }
    }
}
