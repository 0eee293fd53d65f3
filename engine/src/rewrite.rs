//! A value as the commands that rebuild it: what a write-back from a
//! multi-core command logs, and what an AOF rewrite writes as its base
//! with `aof-use-rdb-preamble no` (Redis 7.0's `rewriteAppendOnlyFileRio`:
//! SET, RPUSH, SADD, ZADD, HMSET of at most 64 items, then PEXPIREAT).

use crate::value::Value;
use bytes::Bytes;
use std::io::Write;

/// Largest number of elements one rebuilding command carries, so a huge
/// collection becomes several bounded commands (Redis's
/// `AOF_REWRITE_ITEMS_PER_CMD`).
pub const ITEMS_PER_CMD_MAX: usize = 64;

/// Where rebuilding commands go: argument vectors or RESP bytes.
trait Sink {
    /// A command of `argc` arguments starts.
    fn start(&mut self, argc: usize);
    /// Its next argument.
    fn arg(&mut self, a: &[u8]);
}

impl Sink for Vec<Vec<Bytes>> {
    fn start(&mut self, argc: usize) {
        self.push(Vec::with_capacity(argc));
    }
    fn arg(&mut self, a: &[u8]) {
        if let Some(c) = self.last_mut() {
            c.push(Bytes::copy_from_slice(a));
        }
    }
}

/// RESP bytes, as Redis's rio writes them (`*N`, then `$len` bulks).
struct Resp<'a>(&'a mut Vec<u8>);

impl Sink for Resp<'_> {
    fn start(&mut self, argc: usize) {
        // Writing to a Vec cannot fail.
        let _ = write!(self.0, "*{argc}\r\n");
    }
    fn arg(&mut self, a: &[u8]) {
        let _ = write!(self.0, "${}\r\n", a.len());
        self.0.extend_from_slice(a);
        self.0.extend_from_slice(b"\r\n");
    }
}

/// Emits `items` (each `width` arguments, written by `put`) as commands
/// `name key item...` of at most [`ITEMS_PER_CMD_MAX`] items each.
fn chunked<S: Sink, I>(
    s: &mut S,
    name: &[u8],
    key: &[u8],
    len: usize,
    width: usize,
    items: impl Iterator<Item = I>,
    put: impl Fn(&mut S, I),
) {
    let mut left = len;
    for (i, item) in items.enumerate() {
        if i % ITEMS_PER_CMD_MAX == 0 {
            s.start(2 + left.min(ITEMS_PER_CMD_MAX) * width);
            s.arg(name);
            s.arg(key);
        }
        put(s, item);
        left = left.saturating_sub(1);
    }
}

fn emit<S: Sink>(s: &mut S, key: &[u8], value: &Value, expire_at_ms: Option<i64>) {
    match value {
        Value::Str(v) => {
            s.start(3);
            s.arg(b"SET");
            s.arg(key);
            s.arg(v);
        }
        Value::List(l) => chunked(s, b"RPUSH", key, l.len(), 1, l.iter(), |s, e| s.arg(e)),
        Value::Hash(h) => chunked(s, b"HMSET", key, h.len(), 2, h.iter(), |s, (f, v)| {
            s.arg(f);
            s.arg(v);
        }),
        Value::Set(m) => chunked(s, b"SADD", key, m.len(), 1, m.iter(), |s, e| s.arg(&e)),
        Value::ZSet(z) => chunked(s, b"ZADD", key, z.len(), 2, z.iter(), |s, (m, score)| {
            s.arg(crate::reply::fmt_g17(score).as_bytes());
            s.arg(m);
        }),
        Value::Stream(st) => stream(s, key, st),
    }
    if let Some(at) = expire_at_ms {
        s.start(3);
        s.arg(b"PEXPIREAT");
        s.arg(key);
        s.arg(at.to_string().as_bytes());
    }
}

/// A stream as Redis's `rewriteStreamObject` writes it: an XADD per
/// entry (an empty stream as `XADD key MAXLEN 0 0-1 x y`), XSETID with the
/// last ID, entries added and maximal deleted ID, then each group's
/// XGROUP CREATE with its read counter, an XCLAIM per pending entry of
/// each consumer, and XGROUP CREATECONSUMER for consumers without any.
fn stream<S: Sink>(s: &mut S, key: &[u8], st: &crate::stream::Stream) {
    use crate::stream::Id;
    let id = |i: Id| format!("{}-{}", i.ms, i.seq);
    if st.length > 0 {
        for (eid, fields) in st.range(Id::MIN, Id::MAX, false, 0, true) {
            s.start(3 + fields.len());
            s.arg(b"XADD");
            s.arg(key);
            s.arg(id(eid).as_bytes());
            for f in &fields {
                s.arg(f);
            }
        }
    } else {
        s.start(7);
        for a in [&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"] {
            s.arg(a);
        }
    }
    s.start(7);
    s.arg(b"XSETID");
    s.arg(key);
    s.arg(id(st.last_id).as_bytes());
    s.arg(b"ENTRIESADDED");
    s.arg(st.entries_added.to_string().as_bytes());
    s.arg(b"MAXDELETEDID");
    s.arg(id(st.max_deleted).as_bytes());
    for (name, g) in &st.groups {
        s.start(7);
        s.arg(b"XGROUP");
        s.arg(b"CREATE");
        s.arg(key);
        s.arg(name);
        s.arg(id(g.last_id).as_bytes());
        s.arg(b"ENTRIESREAD");
        s.arg(g.entries_read.to_string().as_bytes());
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                s.start(5);
                for a in [&b"XGROUP"[..], b"CREATECONSUMER", key, name, cname] {
                    s.arg(a);
                }
                continue;
            }
            for pid in &c.pel {
                let Some(n) = g.pel.get(pid) else { continue };
                s.start(12);
                s.arg(b"XCLAIM");
                s.arg(key);
                s.arg(name);
                s.arg(cname);
                s.arg(b"0");
                s.arg(id(*pid).as_bytes());
                s.arg(b"TIME");
                s.arg(n.delivery_time.to_string().as_bytes());
                s.arg(b"RETRYCOUNT");
                s.arg(n.delivery_count.to_string().as_bytes());
                s.arg(b"JUSTID");
                s.arg(b"FORCE");
            }
        }
    }
}

/// Commands that recreate `key` with `value` and `expire_at_ms` from
/// nothing (the caller logs a DEL first when the key may exist).
pub fn rebuild(key: &[u8], value: &Value, expire_at_ms: Option<i64>) -> Vec<Vec<Bytes>> {
    let mut out = Vec::new();
    emit(&mut out, key, value, expire_at_ms);
    out
}

/// Appends [`rebuild`]'s commands to `out` in RESP, byte for byte what
/// Redis 7.0's AOF rewrite writes for the key.
pub fn write_commands(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_at_ms: Option<i64>) {
    emit(&mut Resp(out), key, value, expire_at_ms);
}

/// Appends `SELECT db` in RESP, as Redis's AOF rewrite writes it before
/// a database's keys.
pub fn write_select(out: &mut Vec<u8>, db: usize) {
    let mut s = Resp(out);
    s.start(2);
    s.arg(b"SELECT");
    s.arg(db.to_string().as_bytes());
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

    /// The RESP form is the argument vectors encoded as Redis's rio does,
    /// with Redis's chunk sizes (`2 + min(items left, 64)` arguments).
    #[test]
    fn resp_form_is_the_commands_chunked_as_redis() {
        let mut a = Shard::new(1, 1);
        let mut rpush: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"l".to_vec()];
        rpush.extend((0..130).map(|i| format!("{i}").into_bytes()));
        let argv: Vec<&[u8]> = rpush.iter().map(|x| &x[..]).collect();
        run(&mut a, 0, 0, &argv);
        let e = a.dbs[0].get(b"l").unwrap();
        let mut out = Vec::new();
        write_commands(&mut out, b"l", &e.value, Some(5));
        let mut want = Vec::new();
        for c in rebuild(b"l", &e.value, Some(5)) {
            want.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for x in &c {
                want.extend_from_slice(format!("${}\r\n", x.len()).as_bytes());
                want.extend_from_slice(x);
                want.extend_from_slice(b"\r\n");
            }
        }
        assert_eq!(out, want);
        let sizes: Vec<usize> = rebuild(b"l", &e.value, Some(5))
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [66, 66, 4, 3]);
        let mut sel = Vec::new();
        write_select(&mut sel, 3);
        assert_eq!(sel, b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n");
    }
}
