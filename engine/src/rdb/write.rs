//! Writing RDB: lengths, strings (with Redis's integer and LZF
//! encodings), values in the plain forms every Redis reads, and the
//! records of a file.

use super::*;
use crate::value::Value;

/// A length, in the 1, 2, 5 or 9 bytes Redis's `rdbSaveLen` uses.
pub fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The integer `s` spells in Redis's canonical form (no sign `+`, no
/// leading zeros), if any: such strings are stored as integers.
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == s).then_some(n)
}

/// A string as Redis's `rdbSaveRawString` writes it: up to 11 bytes that
/// spell an integer in 1, 2 or 4 bytes; with `compress`, longer than 20
/// bytes LZF-compressed when that saves at least 4 bytes; else the length
/// and the bytes.
pub fn string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(n) = canonical_int(s) {
            if let Ok(b) = i8::try_from(n) {
                out.extend_from_slice(&[0xC0, b as u8]);
                return;
            }
            if let Ok(h) = i16::try_from(n) {
                out.push(0xC1);
                out.extend_from_slice(&h.to_le_bytes());
                return;
            }
            if let Ok(w) = i32::try_from(n) {
                out.push(0xC2);
                out.extend_from_slice(&w.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        // Redis keeps the compressed form when it saves more than 4 bytes.
        // Compressed in place, its header then written after it and
        // rotated to the front (no buffer of its own).
        let at = out.len();
        if let Some(n) = super::lzf::compress(s, out, s.len() - 4) {
            out.push(0xC3);
            len(out, n as u64);
            len(out, s.len() as u64);
            let head = out.len() - at - n;
            out[at..].rotate_right(head);
            return;
        }
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The RDB type byte `value` is written with.
fn type_of(value: &Value) -> u8 {
    match value {
        Value::Str(_) => TYPE_STRING,
        Value::List(_) => TYPE_LIST,
        Value::Set(_) => TYPE_SET,
        Value::Hash(_) => TYPE_HASH,
        Value::ZSet(_) => TYPE_ZSET_2,
        Value::Stream(_) => TYPE_STREAM_LISTPACKS_2,
    }
}

/// `value` as its type byte and body.
pub fn value(out: &mut Vec<u8>, val: &Value, compress: bool) {
    out.push(type_of(val));
    body(out, val, compress);
}

fn body(out: &mut Vec<u8>, value: &Value, compress: bool) {
    match value {
        Value::Str(s) => string(out, s, compress),
        Value::List(l) => {
            len(out, l.len() as u64);
            for item in l.iter() {
                string(out, item, compress);
            }
        }
        Value::Set(s) => {
            len(out, s.len() as u64);
            for m in s.iter() {
                string(out, &m, compress);
            }
        }
        Value::Hash(h) => {
            len(out, h.len() as u64);
            for (f, v) in h.iter() {
                string(out, f, compress);
                string(out, v, compress);
            }
        }
        Value::ZSet(z) => {
            len(out, z.len() as u64);
            // Greatest first, as Redis writes them: a loader then always
            // inserts at the head of its index.
            for (m, score) in z.iter().rev() {
                string(out, m, compress);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Value::Stream(s) => stream(out, s, compress),
    }
}

/// A stream as Redis 7.0 writes `RDB_TYPE_STREAM_LISTPACKS_2`: its nodes
/// (master ID, listpack) as they are, the counters and IDs, then each
/// group with its PEL and consumers.
fn stream(out: &mut Vec<u8>, s: &crate::stream::Stream, compress: bool) {
    len(out, s.node_count() as u64);
    for (master, lp) in s.nodes() {
        string(out, &master.to_be(), compress);
        string(out, lp, compress);
    }
    for n in [
        s.length,
        s.last_id.ms,
        s.last_id.seq,
        s.first_id.ms,
        s.first_id.seq,
        s.max_deleted.ms,
        s.max_deleted.seq,
        s.entries_added,
    ] {
        len(out, n);
    }
    len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        string(out, name, compress);
        len(out, g.last_id.ms);
        len(out, g.last_id.seq);
        len(out, g.entries_read as u64);
        len(out, g.pel.len() as u64);
        for (id, n) in &g.pel {
            out.extend_from_slice(&id.to_be());
            out.extend_from_slice(&n.delivery_time.to_le_bytes());
            len(out, n.delivery_count);
        }
        len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            string(out, cname, compress);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.to_be());
            }
        }
    }
}

/// The start of a file: the magic and version.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(format!("REDIS{VERSION:04}").as_bytes());
}

/// An auxiliary field (`redis-ver`, `ctime`, …).
pub fn aux(out: &mut Vec<u8>, key: &str, val: &[u8]) {
    out.push(OP_AUX);
    string(out, key.as_bytes(), false);
    string(out, val, false);
}

/// The database the following keys belong to, and its size hints.
pub fn select_db(out: &mut Vec<u8>, db: usize, keys: usize, expires: usize) {
    out.push(OP_SELECTDB);
    len(out, db as u64);
    out.push(OP_RESIZEDB);
    len(out, keys as u64);
    len(out, expires as u64);
}

/// The database the following keys belong to, without size hints (a
/// snapshot's chunks each name their database).
pub fn select(out: &mut Vec<u8>, db: usize) {
    out.push(OP_SELECTDB);
    len(out, db as u64);
}

/// One key: its expiry (absolute Unix milliseconds) if it has one, then
/// its value and name.
pub fn entry(out: &mut Vec<u8>, key: &[u8], val: &Value, expire_ms: Option<i64>, compress: bool) {
    if let Some(at) = expire_ms {
        out.push(OP_EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.push(type_of(val));
    string(out, key, compress);
    body(out, val, compress);
}

/// The end of a file: the EOF opcode and the CRC64 of everything before
/// the checksum (`crc` has seen every byte written so far, not these), or
/// zeros without `checksum` (`rdbchecksum no`).
pub fn footer(out: &mut Vec<u8>, mut crc: super::Crc64, checksum: bool) {
    out.push(OP_EOF);
    if checksum {
        crc.update(&[OP_EOF]);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
    } else {
        out.extend_from_slice(&[0; 8]);
    }
}
