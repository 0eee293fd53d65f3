//! A value as the commands that rebuild it: what a write-back from a
//! multi-core command logs, and what an AOF rewrite will emit.

use crate::value::Value;
use bytes::Bytes;

/// Largest number of elements one rebuilding command carries, so a huge
/// collection becomes several bounded commands (Redis's AOF rewrite uses
/// 64 for the same reason).
pub const ITEMS_PER_CMD_MAX: usize = 64;

fn cmd(name: &'static str, key: &[u8]) -> Vec<Bytes> {
    vec![
        Bytes::from_static(name.as_bytes()),
        Bytes::copy_from_slice(key),
    ]
}

/// Commands that recreate `key` with `value` and `expire_at_ms` from
/// nothing (the caller logs a DEL first when the key may exist).
pub fn rebuild(key: &[u8], value: &Value, expire_at_ms: Option<i64>) -> Vec<Vec<Bytes>> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            let mut c = cmd("SET", key);
            c.push(s.to_bytes());
            out.push(c);
        }
        Value::List(l) => {
            for chunk in l.iter().collect::<Vec<_>>().chunks(ITEMS_PER_CMD_MAX) {
                let mut c = cmd("RPUSH", key);
                c.extend(chunk.iter().map(|b| Bytes::copy_from_slice(b)));
                out.push(c);
            }
        }
        Value::Hash(h) => {
            for chunk in h.iter().collect::<Vec<_>>().chunks(ITEMS_PER_CMD_MAX) {
                let mut c = cmd("HSET", key);
                for (f, v) in chunk {
                    c.push(Bytes::copy_from_slice(f));
                    c.push(Bytes::copy_from_slice(v));
                }
                out.push(c);
            }
        }
        Value::Set(s) => {
            for chunk in s.iter().collect::<Vec<_>>().chunks(ITEMS_PER_CMD_MAX) {
                let mut c = cmd("SADD", key);
                c.extend(chunk.iter().map(|m| Bytes::copy_from_slice(m)));
                out.push(c);
            }
        }
        Value::ZSet(z) => {
            for chunk in z.iter().collect::<Vec<_>>().chunks(ITEMS_PER_CMD_MAX) {
                let mut c = cmd("ZADD", key);
                for (m, score) in chunk {
                    c.push(Bytes::from(crate::reply::fmt_g17(*score)));
                    c.push(Bytes::copy_from_slice(m));
                }
                out.push(c);
            }
        }
    }
    if let Some(at) = expire_at_ms {
        let mut c = cmd("PEXPIREAT", key);
        c.push(Bytes::from(at.to_string()));
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::run;
    use crate::shard::Shard;

    /// Rebuilding a value on a fresh shard gives an equal value and TTL.
    #[test]
    fn round_trip_every_type() {
        let mut a = Shard::new(1, 1);
        let setup: &[&[&[u8]]] = &[
            &[b"SET", b"s", b"v"],
            &[b"PEXPIREAT", b"s", b"99999999999"],
            &[b"RPUSH", b"l", b"a", b"b", b"c"],
            &[b"HSET", b"h", b"f", b"1", b"g", b"2"],
            &[b"SADD", b"t", b"x", b"y"],
            &[b"ZADD", b"z", b"1.5", b"m", b"0.1", b"n"],
        ];
        for argv in setup {
            assert!(!run(&mut a, 0, 0, argv).is_error(), "{argv:?}");
        }
        let mut b = Shard::new(1, 2);
        let mut big = Vec::new();
        for i in 0..200 {
            big.push(format!("{i}"));
        }
        let mut rpush: Vec<&[u8]> = vec![b"RPUSH", b"big"];
        rpush.extend(big.iter().map(|s| s.as_bytes()));
        run(&mut a, 0, 0, &rpush);
        let keys: Vec<Box<[u8]>> = a.dbs[0].iter().map(|(k, _)| Box::from(k)).collect();
        for k in &keys {
            let e = a.dbs[0].get(k).unwrap();
            let cmds = rebuild(k, &e.value, e.expire_at());
            if &k[..] == b"big" {
                assert_eq!(cmds.len(), 4, "200 items in chunks of 64");
            }
            for c in cmds {
                let argv: Vec<&[u8]> = c.iter().map(|x| &x[..]).collect();
                assert!(!run(&mut b, 0, 0, &argv).is_error(), "{argv:?}");
            }
        }
        for k in &keys {
            let (x, y) = (a.dbs[0].get(k).unwrap(), b.dbs[0].get(k).unwrap());
            assert_eq!(x.value, y.value, "{k:?}");
            assert_eq!(x.expire_at(), y.expire_at());
        }
    }
}
