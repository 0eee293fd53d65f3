//! Generic keyspace commands (Redis's `keyspace` group): DEL, UNLINK,
//! EXISTS, TOUCH, TYPE, RENAME, RENAMENX, COPY, MOVE, RANDOMKEY, KEYS, SCAN,
//! OBJECT, the EXPIRE family, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.
//!
//! Multi-key commands (DEL, EXISTS, RENAME, COPY, ...) run plainly: the node
//! guarantees every key they name is owned by this shard (or runs them on a
//! merged scratch shard).
//!
//! # SCAN cursors
//!
//! The keyspace is one dictionary per hash slot ([`crate::db`]) and a shard
//! owns the contiguous slot range `ctx.slots`. SCAN's cursor is a slot
//! number: a call returns every key of whole slots, starting at slot
//! `cursor` and moving on to the following slots until at least COUNT keys
//! were collected or the end of the shard's range is reached. The returned
//! cursor is the next slot to scan, which may be the first slot of the next
//! shard (the node routes the next call there by cursor), or 0 after slot
//! 16383. Because every call returns whole slots, a key present during the
//! whole iteration is always returned, and never twice unless it moved
//! between slots (it cannot): dictionaries growing or shrinking in between
//! calls do not matter, unlike Redis's reverse-binary bucket cursors which
//! need that trick to give the same guarantee.

use super::{flags::*, Ctx, Merge, Spec};
use crate::args::Args;
use crate::db::Entry;
use crate::error;
use crate::glob::glob_match;
use crate::lazyfree::Why;
use crate::notify;
use crate::reply::Reply;
use crate::slot::SLOTS;
use bytes::Bytes;

/// The keys family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("del", -2, WRITE, (1, -1, 1), del),
    Spec::new("unlink", -2, WRITE | FAST, (1, -1, 1), unlink),
    Spec::new("exists", -2, READONLY | FAST, (1, -1, 1), exists),
    Spec::new("touch", -2, READONLY | FAST, (1, -1, 1), touch),
    Spec::new("type", 2, READONLY | FAST, (1, 1, 1), type_cmd),
    Spec::new("rename", 3, WRITE, (1, 2, 1), rename),
    Spec::new("renamenx", 3, WRITE | FAST, (1, 2, 1), renamenx),
    Spec::new("copy", -3, WRITE | DENYOOM, (1, 2, 1), copy),
    Spec::new("move", 3, WRITE | FAST, (1, 1, 1), move_cmd),
    Spec::new("randomkey", 1, READONLY, (0, 0, 0), randomkey).all_shards(Merge::AnyNonNil),
    Spec::new("keys", 2, READONLY, (0, 0, 0), keys).all_shards(Merge::Concat),
    Spec::new("scan", -2, READONLY, (0, 0, 0), scan),
    Spec::new("object", -2, READONLY, (0, 0, 0), object)
        .subcommands()
        .movable(object_keys),
    Spec::new("expire", -3, WRITE | FAST, (1, 1, 1), expire),
    Spec::new("pexpire", -3, WRITE | FAST, (1, 1, 1), pexpire),
    Spec::new("expireat", -3, WRITE | FAST, (1, 1, 1), expireat),
    Spec::new("pexpireat", -3, WRITE | FAST, (1, 1, 1), pexpireat),
    Spec::new("ttl", 2, READONLY | FAST, (1, 1, 1), ttl),
    Spec::new("pttl", 2, READONLY | FAST, (1, 1, 1), pttl),
    Spec::new("expiretime", 2, READONLY | FAST, (1, 1, 1), expiretime),
    Spec::new("pexpiretime", 2, READONLY | FAST, (1, 1, 1), pexpiretime),
    Spec::new("persist", 2, WRITE | FAST, (1, 1, 1), persist),
];

const SAME_OBJECT: &str = "ERR source and destination objects are the same";
const DB_RANGE: &str = "ERR DB index is out of range";
const INT_RANGE: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
const INVALID_CURSOR: &str = "ERR invalid cursor";
const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. \
Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const NO_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
/// Redis shares the string objects of the integers 0..10000; OBJECT
/// REFCOUNT reports them as `OBJ_SHARED_REFCOUNT`.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Looks a key up the way Redis's `LOOKUP_NOTOUCH` reads do (TYPE, EXISTS,
/// TTL, OBJECT): expires it lazily and counts a hit or miss, but leaves the
/// access time alone.
fn peek<'a>(ctx: &'a mut Ctx, db: usize, key: &[u8]) -> Option<&'a mut Entry> {
    let now = ctx.now_ms;
    let found = ctx.shard.lookup(db, key, now).is_some();
    if found {
        ctx.shard.stats.keyspace_hits += 1;
    } else {
        ctx.shard.stats.keyspace_misses += 1;
        ctx.shard.notify(notify::KEY_MISS, "keymiss", db, key);
    }
    ctx.shard.dbs[db].get_mut(key)
}

/// True when `key` exists (expiring it lazily), without counting a read.
fn exists_for_write(ctx: &mut Ctx, db: usize, key: &[u8]) -> bool {
    let now = ctx.now_ms;
    ctx.shard.lookup_write(db, key, now).is_some()
}

/// Parses a database index as Redis's `getIntFromObjectOrReply` +
/// `selectDb` do.
fn parse_db(ctx: &Ctx, i: usize) -> Result<usize, Reply> {
    let n = ctx.args.int(i)?;
    let n = i32::try_from(n).map_err(|_| Reply::err(INT_RANGE))?;
    if n < 0 || n as usize >= ctx.shard.dbs.len() {
        return Err(Reply::err(DB_RANGE));
    }
    Ok(n as usize)
}

/// ```text
/// DEL key [key ...]
/// UNLINK key [key ...]
/// ```
/// Delete a key. UNLINK frees big values in another thread; DEL does
/// too with `lazyfree-lazy-user-del yes`.
fn del(ctx: &mut Ctx) -> Reply {
    delete_keys(ctx, Why::UserDel)
}

fn unlink(ctx: &mut Ctx) -> Reply {
    delete_keys(ctx, Why::Unlink)
}

fn delete_keys(ctx: &mut Ctx, why: Why) -> Reply {
    let args = ctx.args;
    let mut n = 0;
    for key in args.iter_from(1) {
        ctx.shard.expire_if_due(ctx.db, key, ctx.now_ms);
        if ctx.shard.delete(ctx.db, key, why) {
            ctx.notify(notify::GENERIC, "del", key);
            n += 1;
        }
    }
    ctx.dirty(n);
    Reply::Int(n as i64)
}

/// ```text
/// EXISTS key [key ...]
/// ```
/// Determine if a key exists (a key named twice counts twice).
fn exists(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let mut n = 0;
    for key in args.iter_from(1) {
        if peek(ctx, ctx.db, key).is_some() {
            n += 1;
        }
    }
    Reply::Int(n)
}

/// ```text
/// TOUCH key [key ...]
/// ```
/// Alters the last access time of a key(s). Returns the number of existing
/// keys specified.
fn touch(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let mut n = 0;
    for key in args.iter_from(1) {
        if ctx.shard.lookup_read(ctx.db, key, ctx.now_ms).is_some() {
            n += 1;
        }
    }
    Reply::Int(n)
}

/// ```text
/// TYPE key
/// ```
/// Determine the type stored at key.
fn type_cmd(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    let name = peek(ctx, ctx.db, key).map_or("none", |e| e.value.type_name());
    Reply::status(name)
}

/// RENAME and RENAMENX.
fn rename_generic(ctx: &mut Ctx, nx: bool) -> Reply {
    let (src, dst) = (ctx.args.get(1), ctx.args.get(2));
    let db = ctx.db;
    if !exists_for_write(ctx, db, src) {
        return Reply::err(error::NO_KEY);
    }
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::Ok };
    }
    if nx && exists_for_write(ctx, db, dst) {
        return Reply::Int(0);
    }
    let Some(entry) = ctx.shard.take(db, src) else {
        return Reply::err(error::NO_KEY);
    };
    let (expire, lru) = (entry.expire_at(), entry.lru);
    let d = &mut ctx.shard.dbs[db];
    let old = d.insert(dst, entry.into_value(), lru);
    if expire.is_some() {
        d.set_expire(dst, expire);
    }
    ctx.shard.free_overwritten(old);
    ctx.shard.touch(db, dst);
    ctx.shard.signal_ready(db, dst);
    ctx.notify(notify::NEW, "new", dst);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    ctx.dirty(1);
    if nx {
        Reply::Int(1)
    } else {
        Reply::Ok
    }
}

/// ```text
/// RENAME key newkey
/// ```
/// Rename a key (overwriting `newkey`, keeping the TTL of `key`).
fn rename(ctx: &mut Ctx) -> Reply {
    rename_generic(ctx, false)
}

/// ```text
/// RENAMENX key newkey
/// ```
/// Rename a key, only if the new key does not exist.
fn renamenx(ctx: &mut Ctx) -> Reply {
    rename_generic(ctx, true)
}

/// ```text
/// COPY source destination [DB destination-db] [REPLACE]
/// ```
/// Copy a key.
fn copy(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (src, dst) = (args.get(1), args.get(2));
    let mut replace = false;
    let mut dst_db = ctx.db;
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "db") && i + 1 < args.len() {
            match parse_db(ctx, i + 1) {
                Ok(d) => dst_db = d,
                Err(e) => return e,
            }
            i += 1;
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 1;
    }
    if dst_db == ctx.db && src == dst {
        return Reply::err(SAME_OBJECT);
    }
    let Some(entry) = ctx.shard.lookup_read(ctx.db, src, ctx.now_ms) else {
        return Reply::Int(0);
    };
    let (value, expire) = (entry.value.clone(), entry.expire_at());
    if exists_for_write(ctx, dst_db, dst) && !replace {
        return Reply::Int(0);
    }
    let lru = ctx.shard.evict.new_lru(ctx.now_ms);
    let d = &mut ctx.shard.dbs[dst_db];
    let old = d.insert(dst, value, lru);
    if expire.is_some() {
        d.set_expire(dst, expire);
    }
    ctx.shard.free_overwritten(old);
    ctx.shard.touch(dst_db, dst);
    ctx.shard.signal_ready(dst_db, dst);
    ctx.shard.notify(notify::NEW, "new", dst_db, dst);
    ctx.shard.notify(notify::GENERIC, "copy_to", dst_db, dst);
    ctx.dirty(1);
    Reply::Int(1)
}

/// ```text
/// MOVE key db
/// ```
/// Move a key to another database.
fn move_cmd(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    let dst_db = match parse_db(ctx, 2) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let src_db = ctx.db;
    if dst_db == src_db {
        return Reply::err(SAME_OBJECT);
    }
    if !exists_for_write(ctx, src_db, key) || exists_for_write(ctx, dst_db, key) {
        return Reply::Int(0);
    }
    let Some(entry) = ctx.shard.take(src_db, key) else {
        return Reply::Int(0);
    };
    let expire = entry.expire_at();
    let lru = entry.lru;
    let d = &mut ctx.shard.dbs[dst_db];
    d.insert(key, entry.into_value(), lru);
    if expire.is_some() {
        d.set_expire(key, expire);
    }
    ctx.shard.touch(dst_db, key);
    ctx.shard.signal_ready(dst_db, key);
    ctx.shard.notify(notify::NEW, "new", dst_db, key);
    ctx.shard.notify(notify::GENERIC, "move_from", src_db, key);
    ctx.shard.notify(notify::GENERIC, "move_to", dst_db, key);
    ctx.dirty(1);
    Reply::Int(1)
}

/// ```text
/// RANDOMKEY
/// ```
/// Return a random key from the keyspace (of this shard; the node picks
/// one of the shards' answers). Expired keys met on the way are deleted, as
/// Redis does; an expired key is never returned.
fn randomkey(ctx: &mut Ctx) -> Reply {
    let db = ctx.db;
    // Each miss deletes an expired key, so this terminates; the cap bounds
    // the work when most keys have expired.
    for _ in 0..100 {
        let r = ctx.shard.random();
        let Some(key) = ctx.shard.dbs[db].random_key(r).map(Bytes::copy_from_slice) else {
            return Reply::Nil;
        };
        if !ctx.shard.expire_if_due(db, &key, ctx.now_ms) {
            return Reply::Bulk(key);
        }
    }
    // Mostly expired: take the first live key from a random slot on.
    let start = (ctx.shard.random() % SLOTS as u64) as usize;
    let d = &ctx.shard.dbs[db];
    for s in (start..SLOTS).chain(0..start) {
        if let Some((k, _)) = d
            .slot_entries(s as u16)
            .find(|(_, e)| !e.is_expired(ctx.now_ms))
        {
            return Reply::bulk(k);
        }
    }
    Reply::Nil
}

/// ```text
/// KEYS pattern
/// ```
/// Find all keys matching the given pattern (on this shard; the node
/// concatenates the shards' answers). Expired keys are skipped.
fn keys(ctx: &mut Ctx) -> Reply {
    let pattern = ctx.args.get(1);
    let all = pattern == b"*";
    let now = ctx.now_ms;
    let out = ctx.shard.dbs[ctx.db]
        .iter()
        .filter(|(k, e)| !e.is_expired(now) && (all || glob_match(pattern, k, false)))
        .map(|(k, _)| Reply::bulk(k))
        .collect();
    Reply::Array(out)
}

/// Parses a SCAN cursor as Redis's `strtoul`-based check does: optional
/// sign, decimal digits, no spaces; a negative value wraps around.
fn parse_cursor(s: &[u8]) -> Option<u64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() && !s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { n.wrapping_neg() } else { n })
}

/// ```text
/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
/// ```
/// Incrementally iterate the keys space. The cursor is a hash slot: see the
/// module documentation.
fn scan(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let Some(cursor) = parse_cursor(args.get(1)) else {
        return Reply::err(INVALID_CURSOR);
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut typ: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if args.is(i, "count") && has_value {
            count = match args.int(i + 1) {
                Ok(n) => n,
                Err(e) => return e,
            };
            if count < 1 {
                return Reply::err(error::SYNTAX);
            }
        } else if args.is(i, "match") && has_value {
            pattern = Some(args.get(i + 1)).filter(|p| *p != b"*");
        } else if args.is(i, "type") && has_value {
            typ = Some(args.get(i + 1));
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 2;
    }
    let empty = || Reply::Array(vec![Reply::bulk(b"0"), Reply::Array(Vec::new())]);
    if cursor >= SLOTS as u64 {
        return empty();
    }
    let now = ctx.now_ms;
    let mut slot = (cursor as usize).max(ctx.slots.start);
    let end = ctx.slots.end.min(SLOTS);
    let mut found = Vec::new();
    let mut expired: Vec<Box<[u8]>> = Vec::new();
    let d = &ctx.shard.dbs[ctx.db];
    // As Redis bounds a call's work (ten times COUNT), a call stops after
    // the slot in which it met that many keys, matching or not: SCAN
    // MATCH over a big keyspace stays incremental.
    let budget = count.saturating_mul(10) as usize;
    let mut walked = 0usize;
    while slot < end && (found.len() as i64) < count && walked < budget {
        for (k, e) in d.slot_entries(slot as u16) {
            walked += 1;
            if pattern.is_some_and(|p| !glob_match(p, k, false)) {
                continue;
            }
            if e.is_expired(now) {
                expired.push(k.into());
                continue;
            }
            if typ.is_some_and(|t| !t.eq_ignore_ascii_case(e.value.type_name().as_bytes())) {
                continue;
            }
            found.push(Reply::bulk(k));
        }
        slot += 1;
    }
    // Like Redis, reclaim the expired keys met on the way.
    for k in &expired {
        ctx.shard.expire_if_due(ctx.db, k, now);
    }
    let next = if slot >= SLOTS { 0 } else { slot };
    Reply::Array(vec![Reply::bulk_int(next as i64), Reply::Array(found)])
}

/// OBJECT's key: the third argument of its subcommands that take one.
fn object_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let sub = args.get(1);
    let keyed = ["encoding", "freq", "idletime", "refcount"]
        .iter()
        .any(|s| sub.eq_ignore_ascii_case(s.as_bytes()));
    Ok(if keyed && args.len() == 3 {
        vec![2]
    } else {
        Vec::new()
    })
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// ```text
/// OBJECT ENCODING key
/// OBJECT FREQ key
/// OBJECT IDLETIME key
/// OBJECT REFCOUNT key
/// OBJECT HELP
/// ```
/// A container for object introspection commands.
fn object(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = args.get(1).to_ascii_lowercase();
    let want_argc = match sub.as_slice() {
        b"help" => 2,
        b"encoding" | b"freq" | b"idletime" | b"refcount" => 3,
        _ => return Reply::Error(error::unknown_subcommand(args.get(1), "object").into()),
    };
    let name = String::from_utf8_lossy(&sub).into_owned();
    if args.len() != want_argc {
        return Reply::Error(error::wrong_arity(&format!("object|{name}")).into());
    }
    if sub == b"help" {
        return Reply::Array(OBJECT_HELP.iter().map(|l| Reply::status(*l)).collect());
    }
    let (now_ms, now_s) = (ctx.now_ms, (ctx.now_ms / 1000) as u32);
    let lim = ctx.shard.limits;
    let evict = ctx.shard.evict;
    let policy = evict.policy;
    let Some(e) = peek(ctx, ctx.db, args.get(2)) else {
        return Reply::Nil;
    };
    match sub.as_slice() {
        b"encoding" => Reply::bulk(e.encoding_name(&lim).as_bytes()),
        b"idletime" if policy.is_lfu() => Reply::err(LFU_SELECTED),
        b"idletime" => Reply::Int(now_s.saturating_sub(e.lru) as i64),
        b"freq" if policy.is_lfu() => Reply::Int(evict.lfu_count(e.lru, now_ms) as i64),
        b"refcount" => Reply::Int(match &e.value {
            crate::value::Value::Str(s) if e.encoding_name(&lim) == "int" => {
                match crate::resp::parse_i64(s) {
                    Some(n) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
                    _ => 1,
                }
            }
            _ => 1,
        }),
        _ => Reply::err(NO_LFU),
    }
}

/// The EXPIRE family: `unit_ms` is 1000 for seconds; `relative` adds the
/// current time. `name` words the overflow error.
fn expire_generic(ctx: &mut Ctx, unit_ms: i64, relative: bool, name: &str) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in args.iter_from(3) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Reply::err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::err("ERR GT and LT options at the same time are not compatible");
    }
    let n = match args.int(2) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let invalid = || Reply::err(format!("ERR invalid expire time in '{name}' command"));
    let Some(mut when) = n.checked_mul(unit_ms) else {
        return invalid();
    };
    if relative {
        match when.checked_add(ctx.now_ms) {
            Some(w) => when = w,
            None => return invalid(),
        }
    }
    let db = ctx.db;
    let Some(e) = ctx.shard.lookup_write(db, key, ctx.now_ms) else {
        return Reply::Int(0);
    };
    let current = e.expire_at();
    if (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c))
    {
        return Reply::Int(0);
    }
    if when <= ctx.now_ms {
        // Redis deletes as an expiry (`lazyfree-lazy-expire`).
        ctx.shard.delete(db, key, Why::Expire);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.dirty(1);
        ctx.propagate_as(vec![vec![
            Bytes::from_static(b"DEL"),
            Bytes::copy_from_slice(key),
        ]]);
        return Reply::Int(1);
    }
    ctx.shard.dbs[db].set_expire(key, Some(when));
    ctx.shard.touch(db, key);
    ctx.notify(notify::GENERIC, "expire", key);
    ctx.dirty(1);
    // Logged as an absolute PEXPIREAT; Redis keeps the NX/XX/GT/LT options.
    let mut argv = vec![
        Bytes::from_static(b"PEXPIREAT"),
        Bytes::copy_from_slice(key),
        Bytes::from(when.to_string()),
    ];
    argv.extend(args.iter_from(3).map(Bytes::copy_from_slice));
    ctx.propagate_as(vec![argv]);
    Reply::Int(1)
}

/// ```text
/// EXPIRE key seconds [NX | XX | GT | LT]
/// ```
/// Set a key's time to live in seconds.
fn expire(ctx: &mut Ctx) -> Reply {
    expire_generic(ctx, 1000, true, "expire")
}

/// ```text
/// PEXPIRE key milliseconds [NX | XX | GT | LT]
/// ```
/// Set a key's time to live in milliseconds.
fn pexpire(ctx: &mut Ctx) -> Reply {
    expire_generic(ctx, 1, true, "pexpire")
}

/// ```text
/// EXPIREAT key unix-time-seconds [NX | XX | GT | LT]
/// ```
/// Set the expiration for a key as a UNIX timestamp.
fn expireat(ctx: &mut Ctx) -> Reply {
    expire_generic(ctx, 1000, false, "expireat")
}

/// ```text
/// PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]
/// ```
/// Set the expiration for a key as a UNIX timestamp specified in
/// milliseconds.
fn pexpireat(ctx: &mut Ctx) -> Reply {
    expire_generic(ctx, 1, false, "pexpireat")
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 without a
/// TTL; seconds are rounded to the nearest, as Redis does.
fn ttl_generic(ctx: &mut Ctx, ms: bool, absolute: bool) -> Reply {
    let now = ctx.now_ms;
    let key = ctx.args.get(1);
    let Some(e) = peek(ctx, ctx.db, key) else {
        return Reply::Int(-2);
    };
    let Some(at) = e.expire_at() else {
        return Reply::Int(-1);
    };
    let v = if absolute {
        at as i128
    } else {
        (at as i128 - now as i128).max(0)
    };
    let v = if ms { v } else { (v + 500) / 1000 };
    Reply::Int(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// ```text
/// TTL key
/// ```
/// Get the time to live for a key in seconds.
fn ttl(ctx: &mut Ctx) -> Reply {
    ttl_generic(ctx, false, false)
}

/// ```text
/// PTTL key
/// ```
/// Get the time to live for a key in milliseconds.
fn pttl(ctx: &mut Ctx) -> Reply {
    ttl_generic(ctx, true, false)
}

/// ```text
/// EXPIRETIME key
/// ```
/// Get the expiration Unix timestamp for a key.
fn expiretime(ctx: &mut Ctx) -> Reply {
    ttl_generic(ctx, false, true)
}

/// ```text
/// PEXPIRETIME key
/// ```
/// Get the expiration Unix timestamp for a key in milliseconds.
fn pexpiretime(ctx: &mut Ctx) -> Reply {
    ttl_generic(ctx, true, true)
}

/// ```text
/// PERSIST key
/// ```
/// Remove the expiration from a key.
fn persist(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    let db = ctx.db;
    match ctx.shard.lookup_write(db, key, ctx.now_ms) {
        Some(e) if e.expire_at().is_some() => {
            ctx.shard.dbs[db].set_expire(key, None);
            ctx.shard.touch(db, key);
            ctx.notify(notify::GENERIC, "persist", key);
            ctx.dirty(1);
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{bulk, err};
    use super::super::{registry, run, t, Ctx};
    use crate::args::OwnedArgs;
    use crate::reply::Reply;
    use crate::shard::Shard;
    use crate::slot::slot_of;

    fn log_of(s: &mut Shard) -> Vec<Vec<String>> {
        s.take_log()
            .into_iter()
            .map(|r| {
                r.argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    fn cmd_log(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn del_unlink_exists_touch() {
        let mut s = Shard::new(16, 1);
        s.enable_log();
        t(&mut s, 0, "SET a 1");
        t(&mut s, 0, "SET b 2");
        t(&mut s, 0, "SET c 3 PX 100");
        s.take_log();
        assert_eq!(t(&mut s, 0, "EXISTS a a b nokey"), Reply::Int(3));
        assert_eq!(t(&mut s, 0, "TOUCH a a b nokey c"), Reply::Int(4));
        assert_eq!(t(&mut s, 100, "EXISTS c"), Reply::Int(0));
        assert_eq!(
            log_of(&mut s),
            vec![cmd_log(&["DEL", "c"])],
            "lazy expiry logs DEL"
        );
        assert_eq!(t(&mut s, 100, "DEL a a nokey"), Reply::Int(1));
        assert_eq!(log_of(&mut s), vec![cmd_log(&["DEL", "a", "a", "nokey"])]);
        assert_eq!(t(&mut s, 100, "DEL a"), Reply::Int(0));
        assert!(
            s.take_log().is_empty(),
            "a DEL that deleted nothing is not logged"
        );
        assert_eq!(t(&mut s, 100, "UNLINK b"), Reply::Int(1));
        assert_eq!(t(&mut s, 100, "EXISTS a b"), Reply::Int(0));
        assert_eq!(s.key_count(), 0);
        assert_eq!(
            t(&mut s, 0, "DEL"),
            err("ERR wrong number of arguments for 'del' command")
        );
        assert_eq!(
            t(&mut s, 0, "EXISTS"),
            err("ERR wrong number of arguments for 'exists' command")
        );
    }

    #[test]
    fn del_and_exists_respect_ttl() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET k v PX 10");
        assert_eq!(
            t(&mut s, 10, "DEL k"),
            Reply::Int(0),
            "an expired key is not deleted by DEL"
        );
        assert_eq!(s.stats.expired_keys, 1);
        t(&mut s, 0, "SET k v");
        let hits = s.stats.keyspace_hits;
        assert_eq!(t(&mut s, 0, "EXISTS k"), Reply::Int(1));
        assert_eq!(s.stats.keyspace_hits, hits + 1);
    }

    #[test]
    fn type_names() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET k v");
        assert_eq!(t(&mut s, 0, "TYPE k"), Reply::status("string"));
        assert_eq!(t(&mut s, 0, "TYPE nokey"), Reply::status("none"));
        s.set(
            0,
            b"l",
            crate::value::Value::List([b"x"].into_iter().collect()),
            0,
        );
        assert_eq!(t(&mut s, 0, "TYPE l"), Reply::status("list"));
        assert_eq!(
            t(&mut s, 0, "TYPE a b"),
            err("ERR wrong number of arguments for 'type' command")
        );
    }

    #[test]
    fn rename_and_renamenx() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "RENAME nokey x"), err("ERR no such key"));
        assert_eq!(t(&mut s, 0, "RENAMENX nokey x"), err("ERR no such key"));
        assert_eq!(t(&mut s, 0, "RENAME nokey nokey"), err("ERR no such key"));
        t(&mut s, 0, "SET a 1 PX 5000");
        t(&mut s, 0, "SET b 2");
        assert_eq!(t(&mut s, 0, "RENAME a a"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "RENAMENX a a"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "RENAMENX a b"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "GET a"), bulk("1"));
        assert_eq!(t(&mut s, 0, "RENAME a b"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "GET a"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "GET b"), bulk("1"));
        assert_eq!(
            t(&mut s, 0, "PTTL b"),
            Reply::Int(5000),
            "the TTL moves with the key"
        );
        assert_eq!(t(&mut s, 0, "RENAMENX b c"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "GET c"), bulk("1"));
        assert_eq!(t(&mut s, 0, "EXISTS b"), Reply::Int(0));
        t(&mut s, 0, "SET d 4");
        assert_eq!(t(&mut s, 0, "RENAME d c"), Reply::Ok);
        assert_eq!(
            t(&mut s, 0, "TTL c"),
            Reply::Int(-1),
            "overwriting drops the old TTL"
        );
        assert_eq!(t(&mut s, 5000, "RENAME c e"), Reply::Ok);
        t(&mut s, 0, "SET x 1 PX 10");
        assert_eq!(
            t(&mut s, 10, "RENAME x y"),
            err("ERR no such key"),
            "expired source"
        );
        s.dbs[0].invariants();
    }

    #[test]
    fn rename_bumps_watch_and_signals() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET a 1");
        let (va, vb) = (s.watch(0, b"a"), s.watch(0, b"b"));
        s.set_blocked_on(0, b"b", true);
        t(&mut s, 0, "RENAME a b");
        assert_ne!(s.watch_version(0, b"a"), va);
        assert_ne!(s.watch_version(0, b"b"), vb);
        assert_eq!(s.take_ready().len(), 1);
    }

    #[test]
    fn copy_options() {
        let mut s = Shard::new(16, 1);
        s.enable_log();
        t(&mut s, 0, "SET k v PX 9000");
        s.take_log();
        assert_eq!(
            t(&mut s, 0, "COPY k k"),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(
            t(&mut s, 0, "COPY k k DB 0"),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(
            t(&mut s, 0, "COPY k k DB 16"),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "COPY k k DB -1"),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "COPY k k DB x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            t(&mut s, 0, "COPY k k DB 99999999999"),
            err("ERR value is out of range, value must between -2147483648 and 2147483647")
        );
        assert_eq!(t(&mut s, 0, "COPY k k2 foo"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "COPY k k2 DB"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "COPY k"),
            err("ERR wrong number of arguments for 'copy' command")
        );
        assert!(s.take_log().is_empty());
        assert_eq!(t(&mut s, 0, "COPY nokey x"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "COPY k k2 REPLACE REPLACE"), Reply::Int(1));
        assert_eq!(
            log_of(&mut s),
            vec![cmd_log(&["COPY", "k", "k2", "REPLACE", "REPLACE"])]
        );
        assert_eq!(t(&mut s, 0, "PTTL k2"), Reply::Int(9000));
        t(&mut s, 0, "SET k w");
        assert_eq!(t(&mut s, 0, "COPY k k2"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "GET k2"), bulk("v"));
        assert_eq!(t(&mut s, 0, "COPY k k2 replace"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "GET k2"), bulk("w"));
        assert_eq!(t(&mut s, 0, "TTL k2"), Reply::Int(-1));
        assert_eq!(t(&mut s, 0, "COPY k k DB 3"), Reply::Int(1));
        assert_eq!(run(&mut s, 3, 0, &[b"GET", b"k"]), bulk("w"));
        assert_eq!(t(&mut s, 0, "COPY k k db 3"), Reply::Int(0));
        // The copy is independent of the source.
        s.set(
            0,
            b"l",
            crate::value::Value::List([b"x"].into_iter().collect()),
            0,
        );
        assert_eq!(t(&mut s, 0, "COPY l l2"), Reply::Int(1));
        if let Some(e) = s.dbs[0].get_mut(b"l") {
            if let crate::value::Value::List(l) = &mut e.value {
                l.push_back(b"y", crate::list::Fill::default());
            }
        }
        assert_eq!(s.dbs[0].get(b"l2").map(|e| e.value.len()), Some(1));
    }

    #[test]
    fn move_between_dbs() {
        let mut s = Shard::new(16, 1);
        t(&mut s, 0, "SET k v PX 7000");
        assert_eq!(
            t(&mut s, 0, "MOVE k 0"),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(
            t(&mut s, 0, "MOVE k 16"),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "MOVE k x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "MOVE nokey 1"), Reply::Int(0));
        assert_eq!(run(&mut s, 1, 0, &[b"SET", b"k", b"other"]), Reply::Ok);
        assert_eq!(
            t(&mut s, 0, "MOVE k 1"),
            Reply::Int(0),
            "exists in the target"
        );
        run(&mut s, 1, 0, &[b"DEL", b"k"]);
        assert_eq!(t(&mut s, 0, "MOVE k 1"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "EXISTS k"), Reply::Int(0));
        assert_eq!(run(&mut s, 1, 0, &[b"GET", b"k"]), bulk("v"));
        assert_eq!(run(&mut s, 1, 0, &[b"PTTL", b"k"]), Reply::Int(7000));
        s.dbs[0].invariants();
        s.dbs[1].invariants();
    }

    #[test]
    fn expire_options_and_errors() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET k v");
        let nx_err = err("ERR NX and XX, GT or LT options at the same time are not compatible");
        let gtlt = err("ERR GT and LT options at the same time are not compatible");
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 NX XX"), nx_err);
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 nx gt"), nx_err);
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 NX LT"), nx_err);
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 GT LT"), gtlt);
        assert_eq!(
            t(&mut s, 0, "EXPIRE k 100 foo"),
            err("ERR Unsupported option foo")
        );
        assert_eq!(
            t(&mut s, 0, "EXPIRE k abc foo"),
            err("ERR Unsupported option foo"),
            "options first"
        );
        assert_eq!(
            t(&mut s, 0, "EXPIRE k abc"),
            err("ERR value is not an integer or out of range")
        );
        let inv = |c: &str| err(&format!("ERR invalid expire time in '{c}' command"));
        assert_eq!(t(&mut s, 1, "EXPIRE k 9223372036854775807"), inv("expire"));
        assert_eq!(
            t(&mut s, 1_700_000_000_000, "EXPIRE k 9223372036854775"),
            inv("expire")
        );
        assert_eq!(
            t(&mut s, 1_700_000_000_000, "PEXPIRE k 9223372036854775000"),
            inv("pexpire")
        );
        assert_eq!(
            t(&mut s, 1, "EXPIREAT k -9223372036854776"),
            inv("expireat")
        );
        assert_eq!(t(&mut s, 1, "EXPIRE k -9223372036854775808"), inv("expire"));
        assert_eq!(
            t(&mut s, 1, "PEXPIRE k 9223372036854775807"),
            inv("pexpire")
        );
        assert_eq!(
            t(&mut s, 1, "EXPIREAT k 9223372036854775807"),
            inv("expireat")
        );
        assert_eq!(
            t(&mut s, 0, "EXPIRE k"),
            err("ERR wrong number of arguments for 'expire' command")
        );
        assert_eq!(
            t(&mut s, 1, "PEXPIREAT k 9223372036854775807"),
            Reply::Int(1)
        );
        assert_eq!(t(&mut s, 0, "PERSIST k"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "EXPIRE nokey 10"), Reply::Int(0));
        // GT: no TTL counts as infinite; LT always succeeds then.
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 GT"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(-1));
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 XX"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "EXPIRE k 100 LT"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(100));
        assert_eq!(t(&mut s, 0, "EXPIRE k 50 NX"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "EXPIRE k 200 LT"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "EXPIRE k 100 GT"),
            Reply::Int(0),
            "equal is not greater"
        );
        assert_eq!(t(&mut s, 0, "EXPIRE k 50 XX"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "EXPIRE k 40 gt"), Reply::Int(0));
        assert_eq!(t(&mut s, 0, "EXPIRE k 60 XX GT"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(60));
        assert_eq!(t(&mut s, 0, "PEXPIREAT k 123456"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "PEXPIRETIME k"), Reply::Int(123456));
        assert_eq!(t(&mut s, 0, "EXPIREAT k 1000"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "PEXPIRETIME k"), Reply::Int(1_000_000));
        assert_eq!(t(&mut s, 0, "PEXPIRE k 1500"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "PTTL k"), Reply::Int(1500));
        assert_eq!(t(&mut s, 1499, "GET k"), bulk("v"));
        assert_eq!(t(&mut s, 1500, "GET k"), Reply::Nil);
        s.dbs[0].invariants();
    }

    #[test]
    fn expire_logs_pexpireat_or_del() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        t(&mut s, 1000, "SET k v");
        s.take_log();
        assert_eq!(t(&mut s, 1000, "EXPIRE k 10"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "PEXPIRE k 20000 GT"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "EXPIREAT k 30"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "PEXPIREAT k 40000"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "EXPIRE k 5 NX"), Reply::Int(0));
        assert_eq!(
            log_of(&mut s),
            vec![
                cmd_log(&["PEXPIREAT", "k", "11000"]),
                cmd_log(&["PEXPIREAT", "k", "21000", "GT"]),
                cmd_log(&["PEXPIREAT", "k", "30000"]),
                cmd_log(&["PEXPIREAT", "k", "40000"]),
            ]
        );
        // A time in the past deletes the key, logged as DEL, reply 1.
        assert_eq!(t(&mut s, 1000, "EXPIRE k -1"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "EXISTS k"), Reply::Int(0));
        t(&mut s, 1000, "SET j v");
        s.take_log();
        assert_eq!(t(&mut s, 1000, "PEXPIREAT j 1000"), Reply::Int(1));
        assert_eq!(t(&mut s, 1000, "EXISTS j"), Reply::Int(0));
        assert_eq!(log_of(&mut s), vec![cmd_log(&["DEL", "j"])]);
        assert_eq!(t(&mut s, 1000, "EXPIRE j 0"), Reply::Int(0));
        assert!(s.take_log().is_empty());
        s.dbs[0].invariants();
    }

    #[test]
    fn ttl_family() {
        let mut s = Shard::new(1, 1);
        for c in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
            assert_eq!(t(&mut s, 0, &format!("{c} nokey")), Reply::Int(-2));
        }
        t(&mut s, 0, "SET k v");
        for c in ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"] {
            assert_eq!(t(&mut s, 0, &format!("{c} k")), Reply::Int(-1));
        }
        t(&mut s, 0, "PEXPIREAT k 10499");
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(10), "rounded to nearest");
        assert_eq!(t(&mut s, 1, "TTL k"), Reply::Int(10));
        assert_eq!(t(&mut s, 0, "PTTL k"), Reply::Int(10499));
        assert_eq!(t(&mut s, 0, "EXPIRETIME k"), Reply::Int(10));
        assert_eq!(t(&mut s, 0, "PEXPIRETIME k"), Reply::Int(10499));
        t(&mut s, 0, "PEXPIREAT k 10500");
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(11));
        assert_eq!(t(&mut s, 10_499, "PTTL k"), Reply::Int(1));
        assert_eq!(t(&mut s, 10_500, "PTTL k"), Reply::Int(-2));
        t(&mut s, 0, "SET k v");
        t(&mut s, 0, "PEXPIREAT k 9223372036854775807");
        assert_eq!(t(&mut s, 0, "EXPIRETIME k"), Reply::Int(9223372036854776));
        // Stored as given, as Redis does.
        assert_eq!(t(&mut s, 0, "PEXPIRETIME k"), Reply::Int(i64::MAX));
        s.dbs[0].invariants();
        assert_eq!(
            t(&mut s, 1_794_582_000_000, "TTL k"),
            Reply::Int(9223370242272776)
        );
        assert_eq!(
            t(&mut s, 0, "TTL"),
            err("ERR wrong number of arguments for 'ttl' command")
        );
    }

    #[test]
    fn persist_cmd() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        assert_eq!(t(&mut s, 0, "PERSIST nokey"), Reply::Int(0));
        t(&mut s, 0, "SET k v");
        assert_eq!(t(&mut s, 0, "PERSIST k"), Reply::Int(0));
        t(&mut s, 0, "SET k v EX 10");
        s.take_log();
        assert_eq!(t(&mut s, 0, "PERSIST k"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "TTL k"), Reply::Int(-1));
        assert_eq!(log_of(&mut s), vec![cmd_log(&["PERSIST", "k"])]);
        assert_eq!(t(&mut s, 20_000, "GET k"), bulk("v"));
        s.dbs[0].invariants();
    }

    #[test]
    fn object_subcommands() {
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET a 1");
        t(&mut s, 0, "SET b abc");
        t(&mut s, 0, "SET c 10000");
        t(&mut s, 0, "SET d 9999");
        t(&mut s, 0, "SET e -1");
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT a"), Reply::Int(2147483647));
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT b"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT c"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT d"), Reply::Int(2147483647));
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT e"), Reply::Int(1));
        assert_eq!(t(&mut s, 0, "OBJECT ENCODING a"), bulk("int"));
        assert_eq!(t(&mut s, 0, "object encoding b"), bulk("embstr"));
        assert_eq!(t(&mut s, 0, "OBJECT ENCODING nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "OBJECT REFCOUNT nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "OBJECT IDLETIME nokey"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "OBJECT FREQ nokey"), Reply::Nil);
        assert_eq!(
            t(&mut s, 0, "OBJECT FREQ a"),
            err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
        );
        assert_eq!(t(&mut s, 5_000, "OBJECT IDLETIME a"), Reply::Int(5));
        assert_eq!(
            t(&mut s, 5_000, "OBJECT IDLETIME a"),
            Reply::Int(5),
            "OBJECT does not touch"
        );
        t(&mut s, 5_000, "GET a");
        assert_eq!(t(&mut s, 7_000, "OBJECT IDLETIME a"), Reply::Int(2));
        assert_eq!(
            t(&mut s, 0, "OBJECT IDLETIME a"),
            Reply::Int(0),
            "clock going back"
        );
        assert_eq!(
            t(&mut s, 0, "OBJECT foo a"),
            err("ERR unknown subcommand 'foo'. Try OBJECT HELP.")
        );
        assert_eq!(
            t(&mut s, 0, "OBJECT ENCODING a b"),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        assert_eq!(
            t(&mut s, 0, "OBJECT ENCODING"),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        assert_eq!(
            t(&mut s, 0, "OBJECT help x"),
            err("ERR wrong number of arguments for 'object|help' command")
        );
        assert_eq!(
            t(&mut s, 0, "OBJECT"),
            err("ERR wrong number of arguments for 'object' command")
        );
        match t(&mut s, 0, "OBJECT HELP") {
            Reply::Array(lines) => {
                assert_eq!(lines.len(), 15);
                assert_eq!(
                    lines[0],
                    Reply::status(
                        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
                    )
                );
                assert_eq!(lines[14], Reply::status("    Prints this help."));
            }
            r => panic!("{r:?}"),
        }
        let spec = registry().lookup(b"object").unwrap();
        let keys = |argv: &[&[u8]]| {
            let o = OwnedArgs::from_iter(argv.iter().copied());
            let mut out = Vec::new();
            spec.key_indices(&o.as_args(), &mut out).map(|_| out)
        };
        assert_eq!(keys(&[b"OBJECT", b"ENCODING", b"k"]), Ok(vec![2]));
        assert_eq!(keys(&[b"OBJECT", b"HELP"]), Ok(vec![]));
        assert_eq!(keys(&[b"OBJECT", b"freq", b"k", b"x"]), Ok(vec![]));
    }

    #[test]
    fn randomkey_never_returns_expired() {
        let mut s = Shard::new(2, 7);
        assert_eq!(t(&mut s, 0, "RANDOMKEY"), Reply::Nil);
        for i in 0..300 {
            t(&mut s, 0, &format!("SET k{i} v PX 100"));
        }
        t(&mut s, 0, "SET live v");
        for _ in 0..5 {
            assert_eq!(t(&mut s, 100, "RANDOMKEY"), bulk("live"));
        }
        t(&mut s, 0, "DEL live");
        assert_eq!(t(&mut s, 100, "RANDOMKEY"), Reply::Nil);
        let mut seen = std::collections::HashSet::new();
        for i in 0..20 {
            t(&mut s, 0, &format!("SET r{i} v"));
        }
        for _ in 0..400 {
            if let Reply::Bulk(b) = t(&mut s, 200, "RANDOMKEY") {
                seen.insert(b);
            }
        }
        assert!(seen.len() > 15, "random keys spread: {}", seen.len());
        assert_eq!(run(&mut s, 1, 0, &[b"RANDOMKEY"]), Reply::Nil);
        s.dbs[0].invariants();
    }

    fn sorted(r: Reply) -> Vec<String> {
        let Reply::Array(items) = r else {
            panic!("{r:?}")
        };
        let mut v: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                r => panic!("{r:?}"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keys_pattern_skips_expired() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "KEYS *"), Reply::Array(vec![]));
        t(&mut s, 0, "SET foo 1");
        t(&mut s, 0, "SET foobar 1");
        t(&mut s, 0, "SET bar 1");
        t(&mut s, 0, "SET fox 1 PX 10");
        assert_eq!(
            sorted(t(&mut s, 0, "KEYS *")),
            ["bar", "foo", "foobar", "fox"]
        );
        assert_eq!(sorted(t(&mut s, 10, "KEYS *")), ["bar", "foo", "foobar"]);
        assert_eq!(sorted(t(&mut s, 10, "KEYS foo")), ["foo"]);
        assert_eq!(sorted(t(&mut s, 10, "KEYS nope")), Vec::<String>::new());
        assert_eq!(sorted(t(&mut s, 10, "KEYS foo*")), ["foo", "foobar"]);
        assert_eq!(sorted(t(&mut s, 10, "KEYS *ar")), ["bar", "foobar"]);
        assert_eq!(sorted(t(&mut s, 10, "KEYS ?ar")), ["bar"]);
        assert_eq!(sorted(t(&mut s, 10, "KEYS [bf]o*")), ["foo", "foobar"]);
        assert_eq!(
            t(&mut s, 0, "KEYS"),
            err("ERR wrong number of arguments for 'keys' command")
        );
    }

    /// Runs SCAN on a shard owning `slots`.
    fn scan_on(s: &mut Shard, slots: std::ops::Range<usize>, now: i64, argv: &str) -> Reply {
        let o = OwnedArgs::from_iter(argv.split(' ').map(str::as_bytes));
        let spec = registry().lookup(b"scan").unwrap();
        let mut ctx = Ctx::new(s, 0, now, o.as_args());
        ctx.slots = slots;
        super::super::execute(spec, &mut ctx)
    }

    fn scan_parts(r: Reply) -> (String, Vec<String>) {
        let Reply::Array(mut v) = r else {
            panic!("{r:?}")
        };
        assert_eq!(v.len(), 2);
        let keys = sorted(v.pop().unwrap());
        let Some(Reply::Bulk(c)) = v.pop() else {
            panic!()
        };
        (String::from_utf8_lossy(&c).into_owned(), keys)
    }

    #[test]
    fn scan_errors() {
        let mut s = Shard::new(1, 1);
        assert_eq!(t(&mut s, 0, "SCAN x"), err("ERR invalid cursor"));
        assert_eq!(t(&mut s, 0, "SCAN 1x"), err("ERR invalid cursor"));
        assert_eq!(t(&mut s, 0, "SCAN -"), err("ERR invalid cursor"));
        assert_eq!(
            t(&mut s, 0, "SCAN 18446744073709551616"),
            err("ERR invalid cursor")
        );
        assert_eq!(t(&mut s, 0, "SCAN 0 COUNT 0"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "SCAN 0 COUNT -1"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "SCAN 0 COUNT x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(t(&mut s, 0, "SCAN 0 TYPE"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "SCAN 0 MATCH"), err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "SCAN 0 foo bar"), err("ERR syntax error"));
        assert_eq!(
            t(&mut s, 0, "SCAN"),
            err("ERR wrong number of arguments for 'scan' command")
        );
        t(&mut s, 0, "SET k v");
        let empty = (String::from("0"), Vec::<String>::new());
        assert_eq!(scan_parts(t(&mut s, 0, "SCAN 16384")), empty);
        assert_eq!(
            scan_parts(t(&mut s, 0, "SCAN -1")),
            empty,
            "strtoul wraps negatives"
        );
        assert_eq!(scan_parts(t(&mut s, 0, "SCAN 0 COUNT 1 COUNT 2")).1, ["k"]);
        assert_eq!(scan_parts(t(&mut s, 0, "SCAN +0")).1, ["k"]);
    }

    #[test]
    fn scan_walks_whole_slots() {
        let mut s = Shard::new(1, 1);
        // Three keys in one slot (hash tags), and 50 spread ones.
        for k in ["{t}a", "{t}b", "{t}c"] {
            t(&mut s, 0, &format!("SET {k} v"));
        }
        for i in 0..50 {
            t(&mut s, 0, &format!("SET key:{i} v"));
        }
        let tslot = slot_of(b"{t}") as usize;
        // COUNT 1 at the tag's slot still returns the whole slot.
        let (next, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {tslot} COUNT 1")));
        assert_eq!(keys, ["{t}a", "{t}b", "{t}c"]);
        assert_eq!(next, (tslot + 1).to_string());
        // A full iteration returns every key exactly once.
        let mut all = Vec::new();
        let mut cursor = String::from("0");
        let mut calls = 0;
        loop {
            let (next, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {cursor} COUNT 5")));
            calls += 1;
            all.extend(keys);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "no duplicates");
        assert_eq!(all.len(), 53);
        assert!(calls >= 10, "COUNT bounds each call: {calls}");
        // MATCH and TYPE filter.
        s.set(
            0,
            b"{t}list",
            crate::value::Value::List([b"x"].into_iter().collect()),
            0,
        );
        let (_, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {tslot} COUNT 1 TYPE LIST")));
        assert_eq!(keys, ["{t}list"]);
        let (_, keys) = scan_parts(t(
            &mut s,
            0,
            &format!("SCAN {tslot} COUNT 1 TYPE nosuchtype"),
        ));
        assert!(keys.is_empty());
        let (_, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {tslot} COUNT 1 MATCH {{t}}a")));
        assert_eq!(keys, ["{t}a"]);
        let (_, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {tslot} COUNT 1 MATCH *[ab]")));
        assert_eq!(keys, ["{t}a", "{t}b"]);
        let (_, keys) = scan_parts(t(&mut s, 0, &format!("SCAN {tslot} COUNT 1 MATCH *")));
        assert_eq!(keys.len(), 4);
    }

    /// A MATCH that rarely matches does not walk the keyspace in one call:
    /// each call stops after the slot where it met ten times COUNT keys.
    #[test]
    fn scan_bounds_the_keys_a_call_walks() {
        let mut s = Shard::new(1, 1);
        for i in 0..2000 {
            t(&mut s, 0, &format!("SET key:{i} v"));
        }
        let (mut cursor, mut calls, mut found) = (String::from("0"), 0, 0);
        loop {
            let (next, keys) = scan_parts(t(
                &mut s,
                0,
                &format!("SCAN {cursor} MATCH nomatch* COUNT 10"),
            ));
            calls += 1;
            found += keys.len();
            if next == "0" {
                break;
            }
            cursor = next;
        }
        assert_eq!(found, 0);
        // 2000 keys, at most about 100 walked a call.
        assert!(calls >= 15, "{calls} calls");
    }

    #[test]
    fn scan_stops_at_shard_end_and_skips_expired() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        let tslot = slot_of(b"{t}") as usize;
        t(&mut s, 0, "SET {t}a v");
        t(&mut s, 0, "SET {t}b v PX 10");
        s.take_log();
        let owned = tslot - 5..tslot + 1;
        let (next, keys) = scan_parts(scan_on(
            &mut s,
            owned.clone(),
            10,
            &format!("SCAN {}", tslot - 5),
        ));
        assert_eq!(keys, ["{t}a"], "expired keys are never returned");
        assert_eq!(
            next,
            (tslot + 1).to_string(),
            "next cursor is the next shard's first slot"
        );
        assert_eq!(
            log_of(&mut s),
            vec![cmd_log(&["DEL", "{t}b"])],
            "met expired keys are reclaimed"
        );
        // A shard ending at the last slot ends the iteration.
        let (next, keys) = scan_parts(scan_on(&mut s, 16000..16384, 10, "SCAN 16000"));
        assert!(keys.is_empty());
        assert_eq!(next, "0");
        // A cursor before the shard's range starts at its first slot.
        let (next, keys) = scan_parts(scan_on(&mut s, tslot..tslot + 1, 10, "SCAN 0"));
        assert_eq!(
            (next, keys),
            ((tslot + 1).to_string(), vec!["{t}a".to_string()])
        );
    }
}
