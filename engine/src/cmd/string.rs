//! String commands: GET, SET and the rest of Redis's `string` group, plus
//! the bitmap commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP).

use super::{flags::*, Ctx, Spec};
use crate::error;
use crate::reply::Reply;
use crate::value::Value;
use bytes::Bytes;

/// The string family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("get", 2, READONLY | FAST, (1, 1, 1), get, "string"),
    Spec::new("set", -3, WRITE | DENYOOM, (1, 1, 1), set, "string"),
];

/// Reads `key` as a string: `Ok(None)` when missing, WRONGTYPE otherwise.
pub fn read_str(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match ctx.shard.lookup_read(ctx.db, key, ctx.now_ms) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s.clone())),
            _ => Err(Reply::err(error::WRONGTYPE)),
        },
    }
}

/// ```text
/// GET key
/// ```
/// Get the value of a key.
fn get(ctx: &mut Ctx) -> Reply {
    match read_str(ctx, ctx.args.get(1)) {
        Ok(Some(v)) => Reply::Bulk(v),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// How SET treats the key's TTL.
enum Ttl {
    /// Drop any TTL.
    Clear,
    /// Keep the current TTL (KEEPTTL).
    Keep,
    /// Expire at this absolute Unix time in ms.
    At(i64),
}

/// Parses an expiry given as `unit_ms` units relative to now (`relative`) or
/// absolute, into absolute ms; refuses non-positive and overflowing values
/// with `err` (SET and GETEX word it with their own name).
pub fn parse_expire(
    raw: &[u8],
    unit_ms: i64,
    relative: bool,
    now_ms: i64,
    err: &'static str,
) -> Result<i64, Reply> {
    let n = crate::resp::parse_i64(raw).ok_or_else(|| Reply::err(error::NOT_INT))?;
    if n <= 0 {
        return Err(Reply::err(err));
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(|| Reply::err(err))?;
    if relative {
        ms.checked_add(now_ms).ok_or_else(|| Reply::err(err))
    } else {
        Ok(ms)
    }
}

/// ```text
/// SET key value [NX | XX] [GET] [EX seconds | PX milliseconds |
///   EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]
/// ```
/// Set the string value of a key.
fn set(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (key, val) = (args.get(1), args.get(2));
    let (mut nx, mut xx, mut want_get) = (false, false, false);
    let mut ttl = Ttl::Clear;
    let mut ttl_given = false;
    let mut i = 3;
    while i < args.len() {
        let a = args.get(i);
        let has_next = i + 1 < args.len();
        if a.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if a.eq_ignore_ascii_case(b"get") {
            want_get = true;
        } else if a.eq_ignore_ascii_case(b"keepttl") && !ttl_given {
            ttl = Ttl::Keep;
            ttl_given = true;
        } else if has_next && !ttl_given {
            let (unit, relative) = match a.to_ascii_lowercase().as_slice() {
                b"ex" => (1000, true),
                b"px" => (1, true),
                b"exat" => (1000, false),
                b"pxat" => (1, false),
                _ => return Reply::err(error::SYNTAX),
            };
            match parse_expire(args.get(i + 1), unit, relative, ctx.now_ms, error::INVALID_EXPIRE) {
                Ok(at) => ttl = Ttl::At(at),
                Err(e) => return e,
            }
            ttl_given = true;
            i += 1;
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 1;
    }

    let old = if want_get {
        match read_str(ctx, key) {
            Ok(v) => v,
            Err(e) => return e,
        }
    } else {
        None
    };
    let exists = ctx.shard.lookup(ctx.db, key, ctx.now_ms).is_some();
    if (nx && exists) || (xx && !exists) {
        return if want_get { old.map_or(Reply::Nil, Reply::Bulk) } else { Reply::Nil };
    }
    let value = Value::Str(Bytes::copy_from_slice(val));
    match ttl {
        Ttl::Keep => ctx.shard.dbs[ctx.db].set_keep_ttl(key, value, (ctx.now_ms / 1000) as u32),
        _ => ctx.shard.dbs[ctx.db].insert(key, value, (ctx.now_ms / 1000) as u32).map_or((), |_| ()),
    }
    if let Ttl::At(at) = ttl {
        ctx.shard.dbs[ctx.db].set_expire(key, Some(at));
    }
    ctx.shard.touch(ctx.db, key);
    ctx.dirty(1);
    if ttl_given || want_get {
        // Replay must not depend on when it runs: log an absolute PXAT and
        // drop GET, as Redis 7.0 rewrites it.
        let mut argv = vec![
            Bytes::from_static(b"SET"),
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(val),
        ];
        match ttl {
            Ttl::At(at) => {
                argv.push(Bytes::from_static(b"PXAT"));
                argv.push(Bytes::from(at.to_string()));
            }
            Ttl::Keep => argv.push(Bytes::from_static(b"KEEPTTL")),
            Ttl::Clear => {}
        }
        ctx.propagate_as(vec![argv]);
    }
    if want_get {
        old.map_or(Reply::Nil, Reply::Bulk)
    } else {
        Reply::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::super::t;
    use crate::reply::Reply;
    use crate::shard::Shard;
    use bytes::Bytes;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn set_get_options() {
        let mut s = Shard::new(16, 1);
        assert_eq!(t(&mut s, 0, "GET k"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SET k v"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "GET k"), bulk("v"));
        assert_eq!(t(&mut s, 0, "SET k w NX"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SET k w XX GET"), bulk("v"));
        assert_eq!(t(&mut s, 0, "SET j w XX"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SET k w NX XX"), Reply::err("ERR syntax error"));
        assert_eq!(t(&mut s, 0, "SET k w EX 0"), Reply::err("ERR invalid expire time in 'set' command"));
        assert_eq!(t(&mut s, 0, "SET k w EX x"), Reply::err("ERR value is not an integer or out of range"));
        assert_eq!(t(&mut s, 0, "SET k w EX 10 PX 10"), Reply::err("ERR syntax error"));
        assert_eq!(t(&mut s, 1000, "SET k w EX 10"), Reply::Ok);
        assert_eq!(t(&mut s, 10_999, "GET k"), bulk("w"));
        assert_eq!(t(&mut s, 11_000, "GET k"), Reply::Nil);
        assert_eq!(t(&mut s, 0, "SET k v PX 100"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "SET k v2 KEEPTTL"), Reply::Ok);
        assert_eq!(s.dbs[0].get(b"k").unwrap().expire_at(), Some(100));
        assert_eq!(t(&mut s, 0, "SET k v3"), Reply::Ok);
        assert_eq!(s.dbs[0].get(b"k").unwrap().expire_at(), None);
    }

    #[test]
    fn set_logs_absolute_expiry() {
        let mut s = Shard::new(1, 1);
        s.enable_log();
        t(&mut s, 5000, "SET k v EX 10 GET");
        t(&mut s, 5000, "SET k v NX");
        let log = s.take_log();
        assert_eq!(log.len(), 1, "a SET that wrote nothing logs nothing");
        let argv: Vec<&[u8]> = log[0].argv.iter().map(|b| &b[..]).collect();
        assert_eq!(argv, vec![&b"SET"[..], b"k", b"v", b"PXAT", b"15000"]);
    }
}
