//! DUMP and RESTORE: a value as Redis's serialised payload (its RDB form,
//! the RDB version and a CRC64), readable by redis-server and back; and
//! MIGRATE's arguments (the node moves the keys: `mesh/migrate.rs`).

use super::flags::*;
use super::{Ctx, Spec};
use crate::args::Args;
use crate::error;
use crate::reply::Reply;
use bytes::Bytes;

/// The DUMP family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("dump", 2, READONLY, (1, 1, 1), dump),
    Spec::new("restore", -4, WRITE | DENYOOM, (1, 1, 1), restore),
    // RESTORE as MIGRATE sends it in cluster mode: the node counts it as
    // sent after ASKING.
    Spec::new("restore-asking", -4, WRITE | DENYOOM, (1, 1, 1), restore),
    Spec::node("migrate", -6, WRITE, (3, 3, 1)).movable(migrate_keys),
];

/// MIGRATE's keys, as Redis 7.0 finds them (`getKeysFromCommandWithSpecs`,
/// for COMMAND GETKEYS and cluster routing alike): the key argument when no
/// `KEYS` is found searching back from the next-to-last argument; else, its
/// key spec being incomplete, `migrateGetKeys`: what follows the first
/// `KEYS` option (past COPY, REPLACE, AUTH's and AUTH2's arguments), none
/// when the key argument is not empty.
fn migrate_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let argc = args.len();
    if !(2..argc.saturating_sub(1)).any(|i| args.is(i, "keys")) {
        return Ok(vec![3]);
    }
    let mut i = 6;
    while i < argc {
        if args.is(i, "keys") {
            return Ok(if args.get(3).is_empty() {
                (i + 1..argc).collect()
            } else {
                Vec::new()
            });
        }
        if args.is(i, "auth") {
            i += 1;
        } else if args.is(i, "auth2") {
            i += 2;
        }
        i += 1;
    }
    Ok(vec![3])
}

/// A MIGRATE command's arguments, checked in Redis's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrate {
    pub host: Bytes,
    pub port: Bytes,
    /// The keys to move, in the order given (duplicates kept).
    pub keys: Vec<Bytes>,
    pub db: i64,
    /// Milliseconds for each connect, write and read (0 or less: 1000).
    pub timeout_ms: i64,
    pub copy: bool,
    pub replace: bool,
    /// AUTH password, or AUTH2 username password.
    pub auth: Option<(Option<Bytes>, Bytes)>,
}

impl Migrate {
    /// Parses `MIGRATE host port key|"" destination-db timeout [COPY]
    /// [REPLACE] [AUTH password] [AUTH2 username password] [KEYS key ...]`
    /// (arity checked): options first, then the timeout, then the database.
    pub fn parse(args: &Args) -> Result<Migrate, Reply> {
        let (mut copy, mut replace, mut auth) = (false, false, None);
        let mut keys = vec![args.bytes(3)];
        let mut j = 6;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if args.is(j, "copy") {
                copy = true;
            } else if args.is(j, "replace") {
                replace = true;
            } else if args.is(j, "auth") {
                if more == 0 {
                    return Err(Reply::err(error::SYNTAX));
                }
                j += 1;
                auth = Some((None, args.bytes(j)));
            } else if args.is(j, "auth2") {
                if more < 2 {
                    return Err(Reply::err(error::SYNTAX));
                }
                auth = Some((Some(args.bytes(j + 1)), args.bytes(j + 2)));
                j += 2;
            } else if args.is(j, "keys") {
                if !args.get(3).is_empty() {
                    return Err(Reply::err(
                        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                    ));
                }
                keys = (j + 1..args.len()).map(|i| args.bytes(i)).collect();
                break;
            } else {
                return Err(Reply::err(error::SYNTAX));
            }
            j += 1;
        }
        let timeout_ms = args.int(5)?;
        let db = args.int(4)?;
        Ok(Migrate {
            host: args.bytes(1),
            port: args.bytes(2),
            keys,
            db,
            timeout_ms: if timeout_ms <= 0 { 1000 } else { timeout_ms },
            copy,
            replace,
            auth,
        })
    }
}

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
            ctx.notify(crate::notify::GENERIC, "del", key);
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
    ctx.notify(crate::notify::NEW, "new", key);
    if ttl > 0 {
        ctx.shard.dbs[db].set_expire(key, Some(ttl));
    }
    ctx.shard.touch(db, key);
    ctx.shard.signal_ready(db, key);
    ctx.notify(crate::notify::GENERIC, "restore", key);
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

    fn argv(v: &[&str]) -> crate::args::OwnedArgs {
        crate::args::OwnedArgs::from_iter(v.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn migrate_arguments_and_keys() {
        use super::{migrate_keys, Migrate};
        let a = argv(&[
            "MIGRATE", "h", "7", "", "2", "0", "COPY", "AUTH2", "u", "p", "KEYS", "a", "b",
        ]);
        let m = Migrate::parse(&a.as_args()).unwrap();
        assert_eq!(m.keys, vec!["a", "b"]);
        assert_eq!(
            (m.db, m.timeout_ms, m.copy, m.replace),
            (2, 1000, true, false)
        );
        assert_eq!(m.auth, Some((Some("u".into()), "p".into())));
        assert_eq!(migrate_keys(&a.as_args()).unwrap(), vec![11, 12]);
        let a = argv(&["MIGRATE", "h", "7", "k", "0", "5", "KEYS", "a"]);
        assert_eq!(migrate_keys(&a.as_args()).unwrap(), Vec::<usize>::new());
        let a2 = argv(&["MIGRATE", "h", "7", "", "0", "5", "AUTH", "KEYS", "x"]);
        assert_eq!(migrate_keys(&a2.as_args()).unwrap(), vec![3]);
        assert!(Migrate::parse(&a.as_args()).unwrap_err().is_error());
        // Options are checked before the numbers.
        let a = argv(&["MIGRATE", "h", "7", "k", "x", "x", "AUTH"]);
        assert_eq!(
            Migrate::parse(&a.as_args()).unwrap_err(),
            Reply::err(crate::error::SYNTAX)
        );
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
