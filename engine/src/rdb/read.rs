//! Reading RDB: a bounds-checked cursor, values of every type Redis 7.0
//! and older write, and the records of a whole file.

use super::blobs;
use super::*;
use crate::hashval::HashVal;
use crate::list::{Fill, PackedList};
use crate::setval::SetVal;
use crate::stream::{Consumer, Group, Id, Nack, Stream};
use crate::value::{EncodingLimits, StrData, Value};
use crate::zset::ZSet;

/// A cursor over RDB bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Res<T> = Result<T, Error>;
/// A blob decoder of [`blobs`].
type Decoder = fn(&[u8]) -> Result<Vec<Vec<u8>>, String>;

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error at the current offset.
    pub fn error(&self, msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            offset: self.pos,
            empty_key: false,
        }
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.error(SHORT_READ))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// One byte.
    pub fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn le_u64(&mut self, n: usize) -> Res<u64> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0, |a, &b| a << 8 | b as u64))
    }

    /// A length, or a special string encoding (`Err(code)` inside `Ok`).
    fn len_or_enc(&mut self) -> Res<Result<u64, u8>> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Ok((b & 0x3F) as u64),
            1 => Ok(((b as u64 & 0x3F) << 8) | self.u8()? as u64),
            2 => match b {
                0x80 => Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")) as u64),
                0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8"))),
                _ => return Err(self.error(format!("unknown length encoding {b:#x}"))),
            },
            _ => Err(b & 0x3F),
        })
    }

    /// A length.
    pub fn length(&mut self) -> Res<u64> {
        self.len_or_enc()?
            .map_err(|_| self.error("a length was expected, not an encoded string"))
    }

    /// A count of elements that must each take at least one byte: checked
    /// against what is left, so a damaged length cannot make a loader
    /// reserve memory for billions of elements.
    fn count(&mut self) -> Res<usize> {
        let n = self.length()?;
        if n > (self.buf.len() - self.pos) as u64 {
            // More elements than bytes left: the data ends early.
            return Err(self.error(SHORT_READ));
        }
        Ok(n as usize)
    }

    /// A string in any of Redis's encodings.
    pub fn string(&mut self) -> Res<Vec<u8>> {
        match self.len_or_enc()? {
            Ok(n) => {
                let n = usize::try_from(n).map_err(|_| self.error("string too long"))?;
                Ok(self.take(n)?.to_vec())
            }
            Err(0) => Ok((self.u8()? as i8).to_string().into_bytes()),
            Err(1) => Ok((self.le_u64(2)? as u16 as i16).to_string().into_bytes()),
            Err(2) => Ok((self.le_u64(4)? as u32 as i32).to_string().into_bytes()),
            Err(3) => {
                let clen = self.length()?;
                let ulen = self.length()?;
                // LZF expands 3 bytes to 264 at most: a longer length is
                // damage, and is refused before any memory is reserved.
                if ulen > 1 << 32 || ulen > clen.saturating_mul(88) {
                    return Err(self.error("LZF length beyond what its data can give"));
                }
                let clen = usize::try_from(clen).map_err(|_| self.error(SHORT_READ))?;
                let data = self.take(clen)?;
                let Some(mut out) = zeroed(ulen as usize) else {
                    return Err(self.error("failed allocating memory for an LZF string"));
                };
                match lzf_rust::decompress(data, &mut out) {
                    Ok(n) if n == out.len() => Ok(out),
                    _ => Err(self.error("invalid LZF compressed string")),
                }
            }
            Err(e) => Err(self.error(format!("unknown string encoding {e}"))),
        }
    }

    /// A score of the old `ZSET` type: a length byte and ASCII, or 253
    /// (NaN), 254 (+inf), 255 (-inf).
    fn text_double(&mut self) -> Res<f64> {
        match self.u8()? {
            253 => Err(self.error("NaN score")),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or_else(|| self.error("invalid score"))
            }
        }
    }

    fn binary_double(&mut self) -> Res<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn blob(&mut self, decode: Decoder) -> Res<Vec<Vec<u8>>> {
        let at = self.pos;
        let b = self.string()?;
        decode(&b).map_err(|m| Error {
            msg: m,
            offset: at,
            empty_key: false,
        })
    }

    /// A listpack (`ziplist`: a ziplist) blob's elements pushed onto `l`
    /// one by one, never collected.
    fn blob_onto(&mut self, ziplist: bool, l: &mut PackedList, lim: &EncodingLimits) -> Res<()> {
        let at = self.pos;
        let b = self.string()?;
        let push = |e: &[u8]| l.push_back(e, Fill(lim.list_listpack_size));
        let r = if ziplist {
            blobs::ziplist_each(&b, push)
        } else {
            blobs::listpack_each(&b, push)
        };
        r.map_err(|m| Error {
            msg: m,
            offset: at,
            empty_key: false,
        })
    }
}

fn empty(r: &Reader) -> Error {
    Error {
        empty_key: true,
        ..r.error("empty collection")
    }
}

fn dup(r: &Reader, what: &str) -> Error {
    r.error(format!("duplicate {what} detected"))
}

fn hash_of(r: &Reader, flat: Vec<Vec<u8>>, lim: &EncodingLimits) -> Res<Value> {
    if !flat.len().is_multiple_of(2) {
        return Err(r.error("hash with an odd number of elements"));
    }
    if flat.is_empty() {
        return Err(empty(r));
    }
    let mut h = HashVal::default();
    for p in flat.chunks_exact(2) {
        if !h.set(&p[0], &p[1], lim) {
            return Err(dup(r, "hash fields"));
        }
    }
    Ok(Value::Hash(Box::new(h)))
}

fn zset_of(r: &Reader, pairs: Vec<(Vec<u8>, f64)>, lim: &EncodingLimits) -> Res<Value> {
    if pairs.is_empty() {
        return Err(empty(r));
    }
    let mut z = ZSet::new();
    for (m, s) in pairs {
        if s.is_nan() {
            return Err(r.error("NaN score"));
        }
        if z.insert(&m, s, lim).is_some() {
            return Err(dup(r, "zset elements"));
        }
    }
    Ok(Value::ZSet(Box::new(z)))
}

fn set_of(r: &Reader, members: Vec<Vec<u8>>, lim: &EncodingLimits) -> Res<Value> {
    if members.is_empty() {
        return Err(empty(r));
    }
    let n = members.len();
    let s = SetVal::from_members(members.iter().map(|m| &m[..]), lim);
    if s.len() != n {
        return Err(dup(r, "set members"));
    }
    Ok(Value::Set(Box::new(s)))
}

fn list_of(r: &Reader, l: Box<PackedList>) -> Res<Value> {
    if l.is_empty() {
        return Err(empty(r));
    }
    Ok(Value::List(l))
}

fn score_pairs(r: &Reader, flat: Vec<Vec<u8>>) -> Res<Vec<(Vec<u8>, f64)>> {
    if !flat.len().is_multiple_of(2) {
        return Err(r.error("sorted set with an odd number of elements"));
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let score = std::str::from_utf8(&s)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| r.error("invalid score"))?;
        out.push((m, score));
    }
    Ok(out)
}

fn raw_id(r: &mut Reader) -> Res<Id> {
    let b: [u8; 16] = r.take(16)?.try_into().map_err(|_| r.error(SHORT_READ))?;
    Ok(Id::from_be(&b))
}

/// A stream (`RDB_TYPE_STREAM_LISTPACKS`, `_2` with `v2`), every node
/// checked deeply and every count checked against the data, as
/// `rdbLoadObject` and `streamValidateListpackIntegrity` do.
fn stream_of(r: &mut Reader, v2: bool) -> Res<Stream> {
    let mut s = Stream::new();
    let nodes = r.count()?;
    let mut live = 0u64;
    for _ in 0..nodes {
        let key = r.string()?;
        let key: [u8; 16] = key
            .try_into()
            .map_err(|_| r.error("Stream node key entry is not the size of a stream ID"))?;
        let lp = r.string()?;
        let n = crate::stream::validate_node(&lp)
            .ok_or_else(|| r.error("Stream listpack integrity check failed."))?;
        live += n.max(0) as u64;
        if !s.insert_node(Id::from_be(&key), lp) {
            return Err(r.error("Listpack re-added with existing key"));
        }
    }
    s.length = r.length()?;
    s.last_id = Id::new(r.length()?, r.length()?);
    if v2 {
        s.first_id = Id::new(r.length()?, r.length()?);
        s.max_deleted = Id::new(r.length()?, r.length()?);
        s.entries_added = r.length()?;
    } else {
        s.entries_added = s.length;
        s.first_id = s.edge(true, true).unwrap_or(Id::MAX);
    }
    if s.length != live {
        return Err(r.error("Stream length inconsistent with rax entries"));
    }
    let groups = r.count()?;
    for _ in 0..groups {
        let name = r.string()?;
        let last = Id::new(r.length()?, r.length()?);
        let read = if v2 {
            r.length()? as i64
        } else {
            s.estimate_distance(last)
        };
        let mut g = Group::new(last, read);
        let pel = r.count()?;
        for _ in 0..pel {
            let id = raw_id(r)?;
            let delivery_time = r.le_u64(8)? as i64;
            let delivery_count = r.length()?;
            let nack = Nack {
                delivery_time,
                delivery_count,
                consumer: Box::default(),
            };
            if g.pel.insert(id, nack).is_some() {
                return Err(r.error("Duplicated global PEL entry loading stream consumer group"));
            }
        }
        let consumers = r.count()?;
        let mut owned = std::collections::BTreeSet::new();
        for _ in 0..consumers {
            let cname = r.string()?;
            let seen_time = r.le_u64(8)? as i64;
            let mut c = Consumer {
                seen_time,
                ..Consumer::default()
            };
            let n = r.count()?;
            for _ in 0..n {
                let id = raw_id(r)?;
                let Some(nack) = g.pel.get_mut(&id) else {
                    return Err(r.error("Consumer entry not found in group global PEL"));
                };
                if !owned.insert(id) || !c.pel.insert(id) {
                    return Err(
                        r.error("Duplicated consumer PEL entry loading a stream consumer group")
                    );
                }
                nack.consumer = cname.clone().into_boxed_slice();
            }
            if g.consumers.insert(cname.into_boxed_slice(), c).is_some() {
                return Err(r.error("Duplicate stream consumer detected."));
            }
        }
        // Every pending entry belongs to a consumer.
        if owned.len() != g.pel.len() {
            return Err(r.error("Stream CG PEL entry without consumer"));
        }
        if s.groups.insert(name.into_boxed_slice(), g).is_some() {
            return Err(r.error("Duplicated consumer group name"));
        }
    }
    Ok(s)
}

/// A value of RDB type `ty`, built in the encodings `lim` asks for.
pub fn value(r: &mut Reader, ty: u8, lim: &EncodingLimits) -> Res<Value> {
    match ty {
        TYPE_STRING => Ok(Value::Str(StrData::from(r.string()?))),
        TYPE_LIST => {
            let n = r.count()?;
            let mut l = Box::new(PackedList::new());
            for _ in 0..n {
                l.push_back(&r.string()?, Fill(lim.list_listpack_size));
            }
            list_of(r, l)
        }
        TYPE_SET => {
            let n = r.count()?;
            let members = (0..n).map(|_| r.string()).collect::<Res<Vec<_>>>()?;
            set_of(r, members, lim)
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = r.count()?;
            // (Each pair takes 2 bytes at least, 9 as ZSET_2.)
            let mut pairs = Vec::with_capacity(n.min(r.left() / 9));
            for _ in 0..n {
                let m = r.string()?;
                let s = if ty == TYPE_ZSET {
                    r.text_double()?
                } else {
                    r.binary_double()?
                };
                pairs.push((m, s));
            }
            zset_of(r, pairs, lim)
        }
        TYPE_HASH => {
            let n = r.count()?;
            let flat = (0..n * 2).map(|_| r.string()).collect::<Res<Vec<_>>>()?;
            hash_of(r, flat, lim)
        }
        TYPE_HASH_ZIPMAP => {
            let flat = r.blob(blobs::zipmap)?;
            hash_of(r, flat, lim)
        }
        TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let flat = r.blob(if ty == TYPE_HASH_ZIPLIST {
                blobs::ziplist
            } else {
                blobs::listpack
            })?;
            hash_of(r, flat, lim)
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let flat = r.blob(if ty == TYPE_ZSET_ZIPLIST {
                blobs::ziplist
            } else {
                blobs::listpack
            })?;
            let pairs = score_pairs(r, flat)?;
            zset_of(r, pairs, lim)
        }
        TYPE_SET_INTSET => {
            let at = r.offset();
            let b = r.string()?;
            let ints = blobs::intset(&b).map_err(|m| Error {
                msg: m,
                offset: at,
                empty_key: false,
            })?;
            let members: Vec<Vec<u8>> = ints.iter().map(|n| n.to_string().into_bytes()).collect();
            set_of(r, members, lim)
        }
        TYPE_LIST_ZIPLIST => {
            let mut l = Box::new(PackedList::new());
            r.blob_onto(true, &mut l, lim)?;
            list_of(r, l)
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            let nodes = r.count()?;
            let mut l = Box::new(PackedList::new());
            for _ in 0..nodes {
                let plain = ty == TYPE_LIST_QUICKLIST_2 && {
                    match r.length()? {
                        1 => true,
                        2 => false,
                        c => return Err(r.error(format!("unknown quicklist container {c}"))),
                    }
                };
                if plain {
                    let item = r.string()?;
                    if item.is_empty() {
                        // Redis's `rdbLoadObject`: never written.
                        return Err(r.error("empty quicklist plain node"));
                    }
                    l.push_back(&item, Fill(lim.list_listpack_size));
                } else {
                    // (Redis skips empty nodes.)
                    r.blob_onto(ty == TYPE_LIST_QUICKLIST, &mut l, lim)?;
                }
            }
            list_of(r, l)
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => {
            stream_of(r, ty == TYPE_STREAM_LISTPACKS_2).map(|s| Value::Stream(Box::new(s)))
        }
        TYPE_MODULE | TYPE_MODULE_2 => Err(r.error("module values are not supported by slotd")),
        t => Err(r.error(format!("unknown value type {t}"))),
    }
}

/// A type byte and the value after it (a DUMP payload's body).
pub fn typed_value(r: &mut Reader, lim: &EncodingLimits) -> Res<Value> {
    let ty = r.u8()?;
    value(r, ty, lim)
}

/// One record of a file, in the order the file holds them.
#[derive(Debug)]
pub enum Item {
    /// An auxiliary field.
    Aux(Vec<u8>, Vec<u8>),
    /// The database of the keys that follow.
    Db(usize),
    /// A key and its value.
    Entry(Entry),
    /// A collection stored empty: skipped, as Redis does (with a warning).
    EmptyKey(Vec<u8>),
    /// A FUNCTION library's code (RDB_OPCODE_FUNCTION2).
    Function(Vec<u8>),
}

/// A key read from a file.
#[derive(Debug)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Value,
    /// Absolute expiry in Unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds, if the file recorded one.
    pub idle_s: Option<u64>,
    /// LFU frequency, if the file recorded one.
    pub freq: Option<u8>,
}

/// Reads a whole RDB file from `buf` (for example a mapped file), calling
/// `f` with each record. Checks the magic, the version (1 to 10) and, when
/// the file has one, the CRC64 at the end.
pub fn file(buf: &[u8], lim: &EncodingLimits, mut f: impl FnMut(Item)) -> Res<()> {
    file_at(buf, lim, |_, item| f(item)).map(|_| ())
}

/// The aux fields at the head of an RDB file (`buf` may be just its
/// first bytes): those before the first record of another kind, or before
/// `buf` ends. Empty for anything that is not an RDB.
pub fn head_aux(buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = Reader::new(buf);
    if !r.take(9).is_ok_and(|m| m.starts_with(b"REDIS")) {
        return out;
    }
    while let Ok(OP_AUX) = r.u8() {
        match (r.string(), r.string()) {
            (Ok(k), Ok(v)) => out.push((k, v)),
            _ => break,
        }
    }
    out
}

/// [`file`], also giving each record the offset just past it (what
/// redis-check-rdb shows), and returning the offset past the checksum.
pub fn file_at(buf: &[u8], lim: &EncodingLimits, mut f: impl FnMut(usize, Item)) -> Res<usize> {
    let mut r = Reader::new(buf);
    let magic = r.take(9)?;
    if &magic[..5] != b"REDIS" {
        return Err(Error {
            msg: "wrong signature trying to load DB from file".into(),
            offset: 0,
            empty_key: false,
        });
    }
    let version: u16 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|v| (1..=VERSION).contains(v))
        .ok_or_else(|| Error {
            msg: format!(
                "can't handle RDB format version {}",
                String::from_utf8_lossy(&magic[5..])
            ),
            offset: 5,
            empty_key: false,
        })?;
    let (mut expire_ms, mut idle_s, mut freq) = (None, None, None);
    loop {
        let op = r.u8()?;
        match op {
            OP_EOF => break,
            OP_AUX => {
                let k = r.string()?;
                let v = r.string()?;
                f(r.offset(), Item::Aux(k, v));
            }
            OP_SELECTDB => {
                let db = r.length()?;
                f(
                    r.offset(),
                    Item::Db(usize::try_from(db).map_err(|_| r.error("bad database"))?),
                );
            }
            OP_RESIZEDB => {
                r.length()?;
                r.length()?;
            }
            OP_EXPIRETIME_MS => expire_ms = Some(r.le_u64(8)? as i64),
            // (Signed seconds, as Redis's `rdbLoadTime` reads them.)
            OP_EXPIRETIME => expire_ms = Some(r.le_u64(4)? as u32 as i32 as i64 * 1000),
            OP_IDLE => idle_s = Some(r.length()?),
            OP_FREQ => freq = Some(r.u8()?),
            OP_FUNCTION2 => {
                let code = r.string()?;
                f(r.offset(), Item::Function(code));
            }
            OP_FUNCTION => {
                return Err(r.error(
                    "functions of Redis 7.0's release candidates (RDB_OPCODE_FUNCTION) are not supported",
                ))
            }
            OP_MODULE_AUX => return Err(r.error("module data is not supported by slotd")),
            ty => {
                let key = r.string()?;
                match value(&mut r, ty, lim) {
                    Ok(value) => f(
                        r.offset(),
                        Item::Entry(Entry {
                            key,
                            value,
                            expire_ms: expire_ms.take(),
                            idle_s: idle_s.take(),
                            freq: freq.take(),
                        }),
                    ),
                    Err(e) if e.empty_key => {
                        (expire_ms, idle_s, freq) = (None, None, None);
                        f(r.offset(), Item::EmptyKey(key));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if version >= 5 {
        let at = r.offset();
        let stored = r.take(8)?;
        if stored != [0u8; 8] {
            let mut crc = crc64();
            crc.update(&buf[..at]);
            if crc.finalize().to_le_bytes() != stored {
                return Err(Error {
                    msg: "wrong RDB checksum".into(),
                    offset: at,
                    empty_key: false,
                });
            }
        }
    }
    Ok(r.offset())
}

/// A buffer of `n` zero bytes, or `None` when the allocator refuses it.
/// The allocator's fresh pages are not written: filling the buffer by hand
/// touched all of it before the data was known good, so a forged length
/// (up to 88 times the payload's size) cost that much real memory.
fn zeroed(n: usize) -> Option<Vec<u8>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(n).ok()?;
    // SAFETY: `layout` has a non-zero size; a non-null pointer holds `n`
    // initialised (zero) bytes from the global allocator with `u8`'s
    // layout, which is what a `Vec<u8>` of capacity `n` frees.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        (!p.is_null()).then(|| Vec::from_raw_parts(p, n, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process's peak resident memory (`VmHWM`), in KiB.
    fn peak_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_forged_lzf_length_is_refused_without_touching_that_much_memory() {
        // An LZF string claiming 2 GiB from 24 MiB of junk (within the 88
        // times LZF can expand): decompression fails at the first bytes.
        let ulen: u64 = 2 << 30;
        let clen = ulen / 88 + 1;
        let mut buf = vec![0xC3, 0x80];
        buf.extend_from_slice(&(clen as u32).to_be_bytes());
        buf.push(0x81);
        buf.extend_from_slice(&ulen.to_be_bytes());
        buf.resize(buf.len() + clen as usize, 0xFF);
        let before = peak_kib();
        assert!(Reader::new(&buf).string().is_err());
        let grown = peak_kib().saturating_sub(before);
        assert!(
            grown < 1 << 20,
            "the refused string's buffer was written: the peak grew by {grown} KiB"
        );
    }
}
