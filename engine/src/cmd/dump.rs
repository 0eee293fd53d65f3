//! DUMP and RESTORE: a value as Redis's serialised payload (its RDB form,
//! the RDB version and a CRC64), readable by redis-server and back.

use super::flags::*;
use super::{Ctx, Spec};
use crate::error;
use crate::reply::Reply;
use bytes::Bytes;

/// The DUMP family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("dump", 2, READONLY, (1, 1, 1), dump, "generic"),
    Spec::new(
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        restore,
        "generic",
    ),
];

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_FORMAT: &str = "ERR Bad data format";

/// ```text
/// DUMP key
/// ```
/// Return a serialized version of the value stored at the specified key.
fn dump(ctx: &mut Ctx) -> Reply {
    let Some(e) = ctx.shard.lookup_read(ctx.db, ctx.args.get(1), ctx.now_ms) else {
        return Reply::Nil;
    };
    // Always LZF where it pays, whatever `rdbcompression` says (snapshots
    // follow it; Redis's DUMP does too): the payload is valid either way.
    Reply::Bulk(Bytes::from(crate::rdb::dump(&e.value, true)))
}

/// ```text
/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
/// ```
/// Create a key using the provided serialized value, previously obtained
/// using DUMP.
fn restore(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (mut replace, mut absttl) = (false, false);
    let (mut idle_s, mut freq) = (None, None);
    let mut i = 4;
    while i < args.len() {
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "absttl") {
            absttl = true;
        } else if args.is(i, "idletime") && i + 1 < args.len() && freq.is_none() {
            let n = match args.int(i + 1) {
                Ok(n) => n,
                Err(e) => return e,
            };
            if n < 0 {
                return Reply::err("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle_s = Some(n);
            i += 1;
        } else if args.is(i, "freq") && i + 1 < args.len() && idle_s.is_none() {
            let n = match args.int(i + 1) {
                Ok(n) => n,
                Err(e) => return e,
            };
            if !(0..=255).contains(&n) {
                return Reply::err("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(n as u32);
            i += 1;
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 1;
    }
    let (db, now) = (ctx.db, ctx.now_ms);
    if !replace && ctx.shard.lookup(db, key, now).is_some() {
        return Reply::err(BUSYKEY);
    }
    let mut ttl = match args.int(2) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if ttl < 0 {
        return Reply::err("ERR Invalid TTL value, must be >= 0");
    }
    let value = match crate::rdb::undump(args.get(3), &ctx.shard.limits) {
        None => return Reply::err(BAD_PAYLOAD),
        Some(Err(_)) => return Reply::err(BAD_FORMAT),
        Some(Ok(v)) => v,
    };
    let deleted = replace && ctx.shard.remove(db, key);
    if ttl > 0 && !absttl {
        ttl = ttl.saturating_add(now);
    }
    if ttl > 0 && ttl <= now {
        // Already expired: nothing is added; a replaced key is deleted.
        if deleted {
            ctx.shard.signal_ready(db, key);
            ctx.dirty(1);
            ctx.propagate_as(vec![vec![
                Bytes::from_static(b"DEL"),
                Bytes::copy_from_slice(key),
            ]]);
        }
        return Reply::Ok;
    }
    let evict = ctx.shard.evict;
    let lru = match (freq, idle_s) {
        (Some(f), _) if evict.policy.is_lfu() => evict.new_lru(now) & !0xff | f,
        (_, Some(s)) if !evict.policy.is_lfu() => {
            ((now / 1000) as u32).saturating_sub(s.min(u32::MAX as i64) as u32)
        }
        _ => evict.new_lru(now),
    };
    ctx.shard.dbs[db].insert(key, value, lru);
    if ttl > 0 {
        ctx.shard.dbs[db].set_expire(key, Some(ttl));
    }
    ctx.shard.touch(db, key);
    ctx.shard.signal_ready(db, key);
    ctx.dirty(1);
    if ttl > 0 && !absttl {
        // Logged with the absolute expiry, as Redis propagates it.
        let mut argv: Vec<Bytes> = args.iter().map(Bytes::copy_from_slice).collect();
        argv[2] = Bytes::from(ttl.to_string());
        argv.push(Bytes::from_static(b"ABSTTL"));
        ctx.propagate_as(vec![argv]);
    }
    Reply::Ok
}

#[cfg(test)]
mod tests {
    use crate::cmd::run as run_args;
    use crate::reply::Reply;
    use crate::shard::Shard;

    fn run(s: &mut Shard, now: i64, args: &[&[u8]]) -> Reply {
        run_args(s, 0, now, args)
    }

    #[test]
    fn dump_then_restore_with_every_option() {
        let mut s = Shard::new(1, 1);
        run(&mut s, 0, &[b"RPUSH", b"l", b"a", b"b"]);
        let Reply::Bulk(p) = run(&mut s, 0, &[b"DUMP", b"l"]) else {
            panic!()
        };
        assert_eq!(run(&mut s, 0, &[b"DUMP", b"nosuch"]), Reply::Nil);
        assert_eq!(
            run(&mut s, 0, &[b"RESTORE", b"l", b"0", &p]),
            Reply::err(super::BUSYKEY)
        );
        assert_eq!(
            run(&mut s, 0, &[b"RESTORE", b"l2", b"-1", &p]),
            Reply::err("ERR Invalid TTL value, must be >= 0")
        );
        assert_eq!(
            run(&mut s, 0, &[b"RESTORE", b"l2", b"0", b"junk"]),
            Reply::err(super::BAD_PAYLOAD)
        );
        assert_eq!(
            run(&mut s, 0, &[b"RESTORE", b"l2", b"0", &p, b"FOO"]),
            Reply::err(crate::error::SYNTAX)
        );
        assert_eq!(
            run(
                &mut s,
                0,
                &[b"RESTORE", b"l2", b"0", &p, b"IDLETIME", b"-1"]
            ),
            Reply::err("ERR Invalid IDLETIME value, must be >= 0")
        );
        assert_eq!(
            run(
                &mut s,
                1000,
                &[b"RESTORE", b"l2", b"5000", &p, b"IDLETIME", b"10"]
            ),
            Reply::Ok
        );
        assert_eq!(run(&mut s, 1000, &[b"PTTL", b"l2"]), Reply::Int(5000));
        assert_eq!(
            run(&mut s, 1000, &[b"LRANGE", b"l2", b"0", b"-1"]),
            run(&mut s, 0, &[b"LRANGE", b"l", b"0", b"-1"])
        );
        assert_eq!(
            run(
                &mut s,
                1000,
                &[b"RESTORE", b"l", b"3000", &p, b"REPLACE", b"ABSTTL"]
            ),
            Reply::Ok
        );
        assert_eq!(run(&mut s, 1000, &[b"PTTL", b"l"]), Reply::Int(2000));
        // An absolute TTL in the past deletes a replaced key and adds none.
        assert_eq!(
            run(
                &mut s,
                5000,
                &[b"RESTORE", b"l", b"10", &p, b"REPLACE", b"ABSTTL"]
            ),
            Reply::Ok
        );
        assert_eq!(run(&mut s, 5000, &[b"EXISTS", b"l"]), Reply::Int(0));
        s.dbs[0].invariants();
    }
}
