//! Redis's dataset digest (`DEBUG DIGEST`, `DEBUG DIGEST-VALUE`), computed
//! exactly as Redis 7.0's `debug.c` does, so one dataset held by slotd and
//! by redis-server gives the same 40 hex digits.
//!
//! Two ways of adding data to a 20-byte digest:
//! - [`xor`]: `digest ^= SHA1(data)`, order-independent (set members, the
//!   fields of a hash, the members of a sorted set, the keys of a
//!   database);
//! - [`mix`]: `digest = SHA1(digest ^ SHA1(data))`, order-dependent (the
//!   elements of a list, a key then its value).
//!
//! A key's digest is `mix(key)` then its value ([`value`]); a database's
//! part is `xor` of its keys' digests (the XOR of their SHA1s); the
//! dataset digest mixes each
//! non-empty database's number in before XORing its part. Keys are only
//! XORed, so a database's part is the XOR of the parts each core holds
//! ([`Shard::digest_parts`]), and [`combine`] gives the node's digest.

use crate::shard::Shard;
use crate::value::Value;
use sha1::{Digest as _, Sha1};

/// A digest: 20 bytes, shown as 40 hex digits.
pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    Sha1::digest(data).into()
}

/// `digest ^= SHA1(data)` (Redis's `xorDigest`).
pub fn xor(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))` (Redis's `mixDigest`).
pub fn mix(digest: &mut Digest, data: &[u8]) {
    xor(digest, data);
    *digest = sha1(&digest[..]);
}

/// Redis's type numbers (`OBJ_STRING` ...), mixed in first.
fn type_number(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// Adds a value and whether it has a TTL to `digest` (Redis's
/// `xorObjectDigest`): `DEBUG DIGEST-VALUE` is this from zeros.
pub fn value(digest: &mut Digest, v: &Value, has_ttl: bool) {
    mix(digest, &type_number(v).to_be_bytes());
    match v {
        Value::Str(s) => mix(digest, s),
        Value::List(l) => {
            for e in l.iter() {
                mix(digest, e);
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                xor(digest, &m);
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.iter() {
                let mut e = [0u8; 20];
                mix(&mut e, m);
                mix(&mut e, crate::reply::fmt_g17(score).as_bytes());
                xor(digest, &e);
            }
        }
        Value::Hash(h) => {
            for (f, val) in h.iter() {
                let mut e = [0u8; 20];
                mix(&mut e, f);
                mix(&mut e, val);
                xor(digest, &e);
            }
        }
        // Each entry's `<ms>.<seq>` then its fields and values, in order
        // (consumer groups are not part of it).
        Value::Stream(st) => {
            let all = crate::stream::Id::MAX;
            for (id, fields) in st.range(crate::stream::Id::MIN, all, false, 0, true) {
                mix(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
                for f in &fields {
                    mix(digest, f);
                }
            }
        }
    }
    if has_ttl {
        xor(digest, b"!!expire!!");
    }
}

/// One key's contribution to its database's part.
pub fn key(key: &[u8], v: &Value, has_ttl: bool) -> Digest {
    let mut d = [0u8; 20];
    mix(&mut d, key);
    value(&mut d, v, has_ttl);
    d
}

impl Shard {
    /// Per database, the XOR of its keys' digests' SHA1s, or `None` when it holds
    /// no key. Keys whose TTL passed but that are still stored count, as
    /// in Redis (a debug command does not expire keys).
    pub fn digest_parts(&self) -> Vec<Option<Digest>> {
        self.dbs
            .iter()
            .map(|db| {
                if db.is_empty() {
                    return None;
                }
                let mut part = [0u8; 20];
                for (k, e) in db.iter() {
                    xor(&mut part, &key(k, &e.value, e.expire_at().is_some()));
                }
                Some(part)
            })
            .collect()
    }

    /// `DEBUG DIGEST-VALUE` of `key` in `db`: zeros when it does not exist.
    pub fn digest_value(&self, db: usize, k: &[u8]) -> Digest {
        let mut d = [0u8; 20];
        if let Some(e) = self.dbs.get(db).and_then(|x| x.get(k)) {
            value(&mut d, &e.value, e.expire_at().is_some());
        }
        d
    }
}

/// The dataset digest from every core's [`Shard::digest_parts`] (Redis's
/// `computeDatasetDigest`): zeros for an empty dataset.
pub fn combine<'a>(cores: impl IntoIterator<Item = &'a [Option<Digest>]>) -> Digest {
    let cores: Vec<&[Option<Digest>]> = cores.into_iter().collect();
    let dbs = cores.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut out = [0u8; 20];
    for j in 0..dbs {
        let parts: Vec<&Digest> = cores.iter().filter_map(|c| c.get(j)?.as_ref()).collect();
        if parts.is_empty() {
            continue;
        }
        mix(&mut out, &(j as u32).to_be_bytes());
        for p in parts {
            out.iter_mut().zip(p).for_each(|(o, x)| *o ^= x);
        }
    }
    out
}

/// 40 lowercase hex digits, as Redis prints a digest.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::run;

    fn shard(cmds: &[&[&[u8]]]) -> Shard {
        let mut s = Shard::new(16, 1);
        for argv in cmds {
            assert!(!run(&mut s, 0, 0, argv).is_error(), "{argv:?}");
        }
        s
    }

    #[test]
    fn sha1_is_sha1() {
        // FIPS 180 test vector.
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn empty_is_zeros() {
        let s = Shard::new(16, 1);
        assert_eq!(hex(&combine([&s.digest_parts()[..]])), "0".repeat(40));
    }

    /// The digest does not depend on insertion order or on how keys are
    /// spread over cores; it does depend on list order, TTLs and the db.
    #[test]
    fn order_and_split() {
        let a = shard(&[&[b"SET", b"a", b"1"], &[b"SADD", b"s", b"x", b"y"]]);
        let b = shard(&[&[b"SADD", b"s", b"y", b"x"], &[b"SET", b"a", b"1"]]);
        let one = combine([&a.digest_parts()[..]]);
        assert_eq!(one, combine([&b.digest_parts()[..]]));
        let c0 = shard(&[&[b"SET", b"a", b"1"]]);
        let c1 = shard(&[&[b"SADD", b"s", b"x", b"y"]]);
        assert_eq!(
            one,
            combine([&c0.digest_parts()[..], &c1.digest_parts()[..]])
        );
        let l1 = shard(&[&[b"RPUSH", b"l", b"a", b"b"]]);
        let l2 = shard(&[&[b"RPUSH", b"l", b"b", b"a"]]);
        assert_ne!(
            combine([&l1.digest_parts()[..]]),
            combine([&l2.digest_parts()[..]])
        );
        let t = shard(&[&[b"SET", b"a", b"1", b"PX", b"100000"]]);
        assert_ne!(c0.digest_value(0, b"a"), t.digest_value(0, b"a"));
        assert_eq!(c0.digest_value(0, b"missing"), [0u8; 20]);
        let mut d1 = Shard::new(16, 1);
        run(&mut d1, 1, 0, &[b"SET", b"a", b"1"]);
        assert_ne!(
            combine([&d1.digest_parts()[..]]),
            combine([&c0.digest_parts()[..]])
        );
    }
}
