//! Server commands. The keyspace-wide ones (DBSIZE, FLUSHDB, FLUSHALL,
//! SWAPDB) run on every shard and the node merges their replies; the ones
//! about the process (INFO, CONFIG, TIME, SHUTDOWN, DEBUG, COMMAND) are the
//! node's.

use super::{flags::*, Block, Ctx, Merge, Spec};
use crate::args::Args;
use crate::error;
use crate::reply::Reply;
use crate::value::{StrData, Value};

/// The server family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("dbsize", 1, READONLY | FAST, (0, 0, 0), dbsize).all_shards(Merge::SumInt),
    Spec::new("flushdb", -1, WRITE, (0, 0, 0), flushdb).all_shards(Merge::AllOk),
    Spec::new("flushall", -1, WRITE, (0, 0, 0), flushall).all_shards(Merge::AllOk),
    Spec::new("swapdb", 3, WRITE | FAST, (0, 0, 0), swapdb).all_shards(Merge::AllOk),
    Spec::node("info", -1, LOADING | STALE, (0, 0, 0)),
    Spec::node("config", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0)).subcommands(),
    Spec::node("time", 1, LOADING | STALE | FAST, (0, 0, 0)),
    Spec::node("lastsave", 1, LOADING | STALE | FAST, (0, 0, 0)),
    Spec::node("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0)),
    Spec::node("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0)),
    Spec::node("bgrewriteaof", 1, ADMIN | NOSCRIPT, (0, 0, 0)),
    Spec::node(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
        (0, 0, 0),
    ),
    Spec::node("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node("command", -1, LOADING | STALE, (0, 0, 0)).subcommands(),
    Spec::node("slowlog", -2, ADMIN | LOADING | STALE, (0, 0, 0)).subcommands(),
    Spec::node("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node("replicaof", 3, ADMIN | NOSCRIPT | STALE, (0, 0, 0)),
    Spec::node("slaveof", 3, ADMIN | NOSCRIPT | STALE, (0, 0, 0)),
    Spec::node("role", 1, NOSCRIPT | LOADING | STALE | FAST, (0, 0, 0)),
    Spec::node("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0)),
    Spec::node("psync", -3, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0)),
    Spec::node(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
    ),
    // MEMORY USAGE runs here, on the key's core; the node answers the
    // other subcommands (they are about the process).
    Spec::new("memory", -2, READONLY, (0, 0, 0), memory)
        .subcommands()
        .movable(memory_keys),
    Spec::new("wait", 3, NOSCRIPT, (0, 0, 0), wait),
];

/// ```text
/// DBSIZE
/// ```
/// Return the number of keys in the selected database.
fn memory_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    Ok(
        if args.get(1).eq_ignore_ascii_case(b"usage") && args.len() >= 3 {
            vec![2]
        } else {
            Vec::new()
        },
    )
}

/// MEMORY USAGE's default `SAMPLES` (Redis's OBJ_COMPUTE_SIZE_DEF_SAMPLES).
const USAGE_SAMPLES: usize = 5;

/// MEMORY USAGE key [SAMPLES count]: the bytes of the key's entry (value
/// inline, metadata and key in one allocation), its dictionary slot, and
/// what its value allocates.
fn memory(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    if !args.get(1).eq_ignore_ascii_case(b"usage") {
        return Reply::Error(error::unknown_subcommand(args.get(1), "memory").into());
    }
    if args.len() < 3 {
        return Reply::Error(error::wrong_arity("memory|usage").into());
    }
    let mut samples = USAGE_SAMPLES;
    let mut j = 3;
    while j < args.len() {
        if !(args.get(j).eq_ignore_ascii_case(b"samples") && j + 1 < args.len()) {
            return Reply::err(error::SYNTAX);
        }
        match crate::resp::parse_i64(args.get(j + 1)) {
            None => return Reply::err(error::NOT_INT),
            Some(n) if n < 0 => return Reply::err(error::SYNTAX),
            Some(n) => samples = n as usize,
        }
        j += 2;
    }
    let (db, now) = (ctx.db, ctx.now_ms);
    ctx.shard.expire_if_due(db, args.get(2), now);
    match ctx.shard.dbs[db].get(args.get(2)) {
        None => Reply::Nil,
        Some(e) => Reply::Int(
            (crate::memsize::malloc_size(e.alloc_size())
                + std::mem::size_of::<usize>()
                + e.value.mem_bytes(samples)) as i64,
        ),
    }
}

fn dbsize(ctx: &mut Ctx) -> Reply {
    Reply::Int(ctx.shard.dbs[ctx.db].len() as i64)
}

/// Checks the optional ASYNC|SYNC argument of FLUSHDB/FLUSHALL.
fn flush_mode_ok(ctx: &Ctx) -> bool {
    match ctx.args.len() {
        1 => true,
        2 => ctx.args.is(1, "async") || ctx.args.is(1, "sync"),
        _ => false,
    }
}

/// Whether FLUSHDB/FLUSHALL hands the databases off: ASYNC, or neither
/// ASYNC nor SYNC with `lazyfree-lazy-user-flush yes` (Redis's
/// `getFlushCommandFlags`).
fn flush_lazily(ctx: &Ctx) -> bool {
    if ctx.args.len() == 2 {
        ctx.args.is(1, "async")
    } else {
        ctx.shard.lazy.user_flush
    }
}

/// ```text
/// WAIT numreplicas timeout
/// ```
/// Wait for the synchronous replication of the connection's writes. slotd
/// has no replicas yet, so none acknowledges: as a standalone Redis, it
/// answers 0 at once when `numreplicas` is 0 or less (or inside MULTI),
/// else after `timeout` ms (0: it waits until the client goes).
fn wait(ctx: &mut Ctx) -> Reply {
    let numreplicas = match ctx.args.int(1) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let timeout = match ctx.args.int(2) {
        Ok(t) if t < 0 => return Reply::err("ERR timeout is negative"),
        Ok(t) => t,
        Err(_) => return Reply::err("ERR timeout is not an integer or out of range"),
    };
    if numreplicas > 0 {
        ctx.block = Some(Block {
            keys: Vec::new(),
            deadline_ms: (timeout > 0).then(|| ctx.now_ms.saturating_add(timeout)),
            rerun: None,
        });
    }
    Reply::Int(0)
}

/// ```text
/// FLUSHDB [ASYNC | SYNC]
/// ```
/// Remove all keys from the current database.
fn flushdb(ctx: &mut Ctx) -> Reply {
    if !flush_mode_ok(ctx) {
        return Reply::err(error::SYNTAX);
    }
    ctx.shard.log_own_slots();
    let n = ctx.shard.flush(Some(ctx.db), flush_lazily(ctx));
    ctx.dirty(n as u64 + 1);
    Reply::Ok
}

/// ```text
/// FLUSHALL [ASYNC | SYNC]
/// ```
/// Remove all keys from all databases.
fn flushall(ctx: &mut Ctx) -> Reply {
    if !flush_mode_ok(ctx) {
        return Reply::err(error::SYNTAX);
    }
    ctx.shard.log_own_slots();
    let n = ctx.shard.flush(None, flush_lazily(ctx));
    ctx.dirty(n as u64 + 1);
    Reply::Ok
}

/// ```text
/// SWAPDB index1 index2
/// ```
/// Swaps two Redis databases.
fn swapdb(ctx: &mut Ctx) -> Reply {
    let count = ctx.shard.dbs.len() as i64;
    let parse = |i: usize, what: &'static str| match ctx.args.int(i) {
        Ok(n) if (0..count).contains(&n) => Ok(n as usize),
        Ok(_) => Err(Reply::err("ERR DB index is out of range")),
        Err(_) => Err(Reply::err(what)),
    };
    let a = match parse(1, "ERR invalid first DB index") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let b = match parse(2, "ERR invalid second DB index") {
        Ok(b) => b,
        Err(e) => return e,
    };
    ctx.shard.log_own_slots();
    if a != b {
        ctx.shard.touch_swapped(a, b);
        ctx.shard.dbs.swap(a, b);
    }
    ctx.dirty(1);
    Reply::Ok
}

/// DEBUG POPULATE's work on one shard: keys `<prefix>:<j>` for `j` below
/// `count` that `owns` (the node keeps each key on its slot's core), each
/// not already there set to `value:<j>` (or, with `size` > 0, that text
/// cut or padded with zero bytes to `size`), as Redis 7.0's `debug.c`
/// does: the name is cut at 127 bytes, nothing is propagated or logged
/// (Redis does not count it as a change), WATCHes see the keys change.
pub fn populate(
    shard: &mut crate::shard::Shard,
    db: usize,
    count: u64,
    prefix: &[u8],
    size: usize,
    now_ms: i64,
    owns: impl Fn(&[u8]) -> bool,
) {
    let mut key = Vec::with_capacity(prefix.len() + 21);
    for j in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(j.to_string().as_bytes());
        key.truncate(127);
        if !owns(&key) || shard.lookup(db, &key, now_ms).is_some() {
            continue;
        }
        let text = format!("value:{j}").into_bytes();
        let value = if size == 0 {
            text
        } else {
            let mut v = vec![0u8; size];
            let n = text.len().min(size);
            v[..n].copy_from_slice(&text[..n]);
            v
        };
        shard.set(db, &key, Value::Str(StrData::from(value)), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::reply::Reply;
    use crate::shard::Shard;

    #[test]
    fn flush_and_size() {
        let mut s = Shard::new(16, 1);
        t(&mut s, 0, "SET a 1");
        t(&mut s, 0, "SET b 1");
        assert_eq!(t(&mut s, 0, "DBSIZE"), Reply::Int(2));
        assert_eq!(t(&mut s, 0, "SWAPDB 0 1"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "DBSIZE"), Reply::Int(0));
        assert_eq!(
            t(&mut s, 0, "SWAPDB 0 16"),
            Reply::err("ERR DB index is out of range")
        );
        assert_eq!(
            t(&mut s, 0, "SWAPDB x 1"),
            Reply::err("ERR invalid first DB index")
        );
        assert_eq!(t(&mut s, 0, "FLUSHALL"), Reply::Ok);
        assert_eq!(s.key_count(), 0);
        assert_eq!(
            t(&mut s, 0, "FLUSHDB bogus"),
            Reply::err("ERR syntax error")
        );
    }

    /// A shard that is one of several logs its slots ahead of the keyless
    /// writes that change its keys only; refused ones log nothing.
    #[test]
    fn keyless_writes_of_one_of_several_shards_log_its_slots() {
        let logged = |s: &mut Shard| {
            let mut bytes = Vec::new();
            s.write_log().unwrap().take(&mut bytes);
            String::from_utf8(bytes).unwrap()
        };
        let mut s = Shard::new(16, 1);
        s.enable_log();
        t(&mut s, 0, "FLUSHALL");
        let log = logged(&mut s);
        assert!(log.ends_with("*1\r\n$8\r\nFLUSHALL\r\n") && !log.contains('#'));
        s.owns = Some(std::sync::Arc::new(|slot| {
            slot < 100 || slot == 200 || (300..=16383).contains(&slot)
        }));
        let slots = "#S:0-99,200,300-16383\r\n";
        for cmd in ["FLUSHALL", "FLUSHDB", "SWAPDB 0 1"] {
            t(&mut s, 0, cmd);
            let log = logged(&mut s);
            assert!(log.starts_with(slots), "{cmd}: {log:?}");
            assert!(log[slots.len()..].starts_with('*'), "{cmd}: {log:?}");
        }
        t(&mut s, 0, "FLUSHDB bogus");
        t(&mut s, 0, "SWAPDB 0 99");
        assert_eq!(logged(&mut s), "");
        // Many runs: lines of at most 1023 bytes, as loaders read them.
        s.owns = Some(std::sync::Arc::new(|slot| slot % 2 == 0));
        t(&mut s, 0, "FLUSHALL");
        let log = logged(&mut s);
        let lines: Vec<&str> = log
            .split("\r\n")
            .take_while(|l| l.starts_with('#'))
            .collect();
        assert!(lines.len() > 1 && lines.iter().all(|l| l.len() < 1023));
        let mut all = Vec::new();
        for l in &lines {
            all.extend(crate::aof::scan::parse_slots(l.as_bytes()).unwrap());
        }
        assert_eq!(all.len(), 8192);
        assert!(all.iter().all(|&(a, b)| a == b && a % 2 == 0));
    }
}
