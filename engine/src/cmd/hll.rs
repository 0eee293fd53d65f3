//! HyperLogLog commands (`hyperloglog` group): PFADD, PFCOUNT, PFMERGE,
//! PFDEBUG, PFSELFTEST, on strings in Redis 7.0's HLL representation
//! ([`crate::hll`]), with its replies and errors.

use super::{flags::*, Ctx, Spec};
use crate::error;
use crate::hll::{self, Invalid};
use crate::reply::Reply;
use crate::value::{StrData, Value};

/// The HyperLogLog family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("pfadd", -2, WRITE | DENYOOM | FAST, (1, 1, 1), pfadd),
    // A read that may cache what it computed in the key, which then
    // replicates (Redis's `may_replicate`, hidden from COMMAND INFO).
    Spec::new("pfcount", -2, READONLY, (1, -1, 1), pfcount),
    Spec::new("pfmerge", -2, WRITE | DENYOOM, (1, -1, 1), pfmerge),
    Spec::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, (2, 2, 1), pfdebug),
    Spec::new("pfselftest", 1, ADMIN, (0, 0, 0), pfselftest),
];

fn invalid(_: Invalid) -> Reply {
    Reply::err(hll::INVALID_ERR)
}

/// A dense HLL's registers change in place (no copy of its 12 KiB):
/// how many of `elements` changed one.
fn add_in_place<'a>(ctx: &mut Ctx, key: &[u8], elements: impl Iterator<Item = &'a [u8]>) -> i64 {
    let Some(e) = ctx.shard.dbs[ctx.db].get_mut(key) else {
        return 0;
    };
    let Value::Str(s) = &mut e.value else {
        return 0;
    };
    let mut m = s.take_mut(0);
    let changed = elements.filter(|ele| hll::add_dense(&mut m, ele)).count() as i64;
    if changed > 0 {
        hll::invalidate(&mut m);
    }
    *s = StrData::from(m.freeze());
    changed
}

/// The HLL at `key` as bytes: `Ok(None)` when missing, WRONGTYPE for
/// another type or a string that is not an HLL.
fn read(ctx: &mut Ctx, key: &[u8], write: bool) -> Result<Option<Vec<u8>>, Reply> {
    let e = match write {
        true => ctx.shard.lookup_write(ctx.db, key, ctx.now_ms),
        false => ctx.shard.lookup_read(ctx.db, key, ctx.now_ms),
    };
    match e {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) if hll::is_hll(s) => Ok(Some(s.to_vec())),
            Value::Str(_) => Err(Reply::err(hll::NOT_HLL_ERR)),
            _ => Err(Reply::err(error::WRONGTYPE)),
        },
    }
}

/// Stores `bytes` at `key` (a raw string, as Redis's HLL objects are).
fn store(ctx: &mut Ctx, key: &[u8], bytes: Vec<u8>) {
    let db = ctx.db;
    ctx.shard.before_write(key);
    match ctx.shard.dbs[db].get_mut(key) {
        Some(e) => {
            e.value = Value::Str(StrData::from(bytes));
            e.set_raw();
        }
        None => {
            let now_s = ctx.shard.evict.new_lru(ctx.now_ms);
            ctx.shard.dbs[db].insert(key, Value::Str(StrData::from(bytes)), now_s);
            ctx.notify(crate::notify::NEW, "new", key);
            if let Some(e) = ctx.shard.dbs[db].get_mut(key) {
                e.set_raw();
            }
        }
    }
    ctx.shard.touch(db, key);
}

/// `hll-sparse-max-bytes`.
fn sparse_max(ctx: &Ctx) -> usize {
    ctx.shard.limits.hll_sparse_max_bytes
}

/// ```text
/// PFADD key [element [element ...]]
/// ```
/// Adds elements to a HyperLogLog key; 1 when a register changed (or the
/// key was created).
fn pfadd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let dense = ctx
        .shard
        .lookup(ctx.db, key, ctx.now_ms)
        .is_some_and(|e| matches!(&e.value, Value::Str(s) if hll::is_hll(s) && !hll::is_sparse(s)));
    if dense {
        let updated = add_in_place(ctx, key, args.iter_from(2));
        if updated > 0 {
            ctx.shard.touch(ctx.db, key);
            ctx.notify(crate::notify::STRING, "pfadd", key);
            ctx.dirty(updated as u64);
        }
        return Reply::Int((updated > 0) as i64);
    }
    let (mut h, mut updated) = match read(ctx, key, true) {
        Ok(Some(h)) => (h, 0),
        Ok(None) => (hll::new_sparse(), 1),
        Err(e) => return e,
    };
    let max = sparse_max(ctx);
    for ele in args.iter_from(2) {
        match hll::add(&mut h, ele, max) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(e) => return invalid(e),
        }
    }
    if updated > 0 {
        hll::invalidate(&mut h);
        store(ctx, key, h);
        ctx.notify(crate::notify::STRING, "pfadd", key);
        ctx.dirty(updated);
    }
    Reply::Int((updated > 0) as i64)
}

/// ```text
/// PFCOUNT key [key ...]
/// ```
/// The approximated cardinality of the union of the HyperLogLogs; one
/// key's is cached in its header (a write Redis propagates).
fn pfcount(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    if args.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for key in args.iter_from(1) {
            match read(ctx, key, false) {
                Ok(None) => {}
                Ok(Some(h)) => {
                    if let Err(e) = hll::merge_into(&mut max, &h) {
                        return invalid(e);
                    }
                }
                Err(e) => return e,
            }
        }
        return Reply::Int(hll::count_registers(&max) as i64);
    }
    let key = args.get(1);
    let mut h = match read(ctx, key, false) {
        Ok(Some(h)) => h,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    if let Some(card) = hll::cached(&h) {
        return Reply::Int(card as i64);
    }
    let card = match hll::count(&h) {
        Ok(c) => c,
        Err(e) => return invalid(e),
    };
    hll::set_cached(&mut h, card);
    store(ctx, key, h);
    ctx.dirty(1);
    Reply::Int(card as i64)
}

/// ```text
/// PFMERGE destkey [sourcekey [sourcekey ...]]
/// ```
/// Merges HyperLogLogs into `destkey` (dense if any source is).
fn pfmerge(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    for key in args.iter_from(1) {
        match read(ctx, key, false) {
            Ok(None) => {}
            Ok(Some(h)) => {
                dense |= !hll::is_sparse(&h);
                if let Err(e) = hll::merge_into(&mut max, &h) {
                    return invalid(e);
                }
            }
            Err(e) => return e,
        }
    }
    let dest = args.get(1);
    let mut h = match read(ctx, dest, true) {
        Ok(Some(h)) => h,
        Ok(None) => hll::new_sparse(),
        Err(e) => return e,
    };
    if dense {
        if let Err(e) = hll::to_dense(&mut h) {
            return invalid(e);
        }
    }
    let sparse_max = sparse_max(ctx);
    for (i, &v) in max.iter().enumerate() {
        if v > 0 {
            // As Redis, a corrupt destination is caught by the checks
            // above; a failed set leaves the register as it was.
            let _ = hll::set(&mut h, i, v, sparse_max);
        }
    }
    hll::invalidate(&mut h);
    store(ctx, dest, h);
    ctx.notify(crate::notify::STRING, "pfadd", dest);
    ctx.dirty(1);
    Reply::Ok
}

/// ```text
/// PFDEBUG <GETREG | DECODE | ENCODING | TODENSE> key
/// ```
/// Internal commands for debugging HyperLogLog values.
fn pfdebug(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = String::from_utf8_lossy(args.get(1)).into_owned();
    let key = args.get(2);
    let mut h = match read(ctx, key, true) {
        Ok(Some(h)) => h,
        Ok(None) => return Reply::err("ERR The specified key does not exist"),
        Err(e) => return e,
    };
    match sub.to_ascii_lowercase().as_str() {
        "getreg" => {
            if hll::is_sparse(&h) {
                if let Err(e) = hll::to_dense(&mut h) {
                    return invalid(e);
                }
                store(ctx, key, h.clone());
                ctx.dirty(1);
            }
            Reply::Array(
                hll::registers(&h)
                    .into_iter()
                    .map(|v| Reply::Int(v as i64))
                    .collect(),
            )
        }
        "decode" => {
            if !hll::is_sparse(&h) {
                return Reply::err("ERR HLL encoding is not sparse");
            }
            Reply::bulk(hll::decode(&h).as_bytes())
        }
        "encoding" => Reply::status(if hll::is_sparse(&h) {
            "sparse"
        } else {
            "dense"
        }),
        "todense" => {
            if !hll::is_sparse(&h) {
                return Reply::Int(0);
            }
            if let Err(e) = hll::to_dense(&mut h) {
                return invalid(e);
            }
            store(ctx, key, h);
            ctx.dirty(1);
            Reply::Int(1)
        }
        _ => Reply::Error(format!("ERR Unknown PFDEBUG subcommand '{sub}'").into()),
    }
}

/// ```text
/// PFSELFTEST
/// ```
/// An internal command for testing HyperLogLog values.
fn pfselftest(ctx: &mut Ctx) -> Reply {
    match hll::selftest(ctx.now_ms as u64, sparse_max(ctx)) {
        Ok(()) => Reply::Ok,
        Err(e) => Reply::Error(e.into()),
    }
}
