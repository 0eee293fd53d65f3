//! The value types a key can hold, and how Redis would name their encodings.

use crate::list::PackedList;
use crate::zset::ZSet;
use bytes::Bytes;
use hashbrown::{HashMap, HashSet};

/// A key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also integers and bitmaps).
    Str(StrData),
    /// A list, head at the front (boxed: a pointer in the entry).
    List(Box<PackedList>),
    /// A hash of field → value.
    Hash(HashMap<Bytes, Bytes>),
    /// A set of members.
    Set(HashSet<Bytes>),
    /// A sorted set (boxed: it is the largest variant, and every entry
    /// would otherwise pay its size).
    ZSet(Box<ZSet>),
}

/// Longest string kept inline in its entry.
pub const INLINE_MAX: usize = 38;

/// A string value's bytes: up to [`INLINE_MAX`] of them inline in the
/// entry (no allocation, and a lookup finds the bytes in the same cache
/// lines as the key: the common small value costs no extra miss), longer
/// ones as a shared `Bytes` that replies hand out without copying. Either
/// way the same size as the largest other `Value`, so entries do not grow.
#[derive(Clone)]
pub enum StrData {
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    Heap(Bytes),
}

impl StrData {
    /// A copy of `s`.
    pub fn copy_from_slice(s: &[u8]) -> StrData {
        if s.len() <= INLINE_MAX {
            let mut buf = [0u8; INLINE_MAX];
            buf[..s.len()].copy_from_slice(s);
            StrData::Inline {
                len: s.len() as u8,
                buf,
            }
        } else {
            StrData::Heap(Bytes::copy_from_slice(s))
        }
    }

    /// The bytes as a `Bytes`: shared when stored so, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            StrData::Inline { .. } => Bytes::copy_from_slice(self),
            StrData::Heap(b) => b.clone(),
        }
    }

    /// Takes the bytes out for in-place modification, leaving the value
    /// empty: no copy when stored unshared on the heap, else a copy with
    /// room for `want` bytes. Put them back with `StrData::from`.
    pub fn take_mut(&mut self, want: usize) -> bytes::BytesMut {
        match std::mem::take(self) {
            StrData::Heap(b) => match b.try_into_mut() {
                Ok(m) => m,
                Err(b) => copy_with_room(&b, want),
            },
            inline => copy_with_room(&inline, want),
        }
    }
}

fn copy_with_room(s: &[u8], want: usize) -> bytes::BytesMut {
    let mut m = bytes::BytesMut::with_capacity(want.max(s.len()));
    m.extend_from_slice(s);
    m
}

impl Default for StrData {
    fn default() -> Self {
        StrData::Inline {
            len: 0,
            buf: [0; INLINE_MAX],
        }
    }
}

impl std::ops::Deref for StrData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            StrData::Inline { len, buf } => &buf[..*len as usize],
            StrData::Heap(b) => b,
        }
    }
}

impl From<Bytes> for StrData {
    /// Short strings move inline; longer ones keep their buffer.
    fn from(b: Bytes) -> Self {
        if b.len() <= INLINE_MAX {
            StrData::copy_from_slice(&b)
        } else {
            StrData::Heap(b)
        }
    }
}

impl From<Vec<u8>> for StrData {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE_MAX {
            StrData::copy_from_slice(&v)
        } else {
            StrData::Heap(Bytes::from(v))
        }
    }
}

impl PartialEq for StrData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for StrData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self))
    }
}

/// Thresholds that decide which encoding OBJECT ENCODING reports; they are
/// the CONFIG parameters of the same names, with Redis 7.0's defaults.
#[derive(Debug, Clone, Copy)]
pub struct EncodingLimits {
    /// `hash-max-listpack-entries`.
    pub hash_entries_max: usize,
    /// `hash-max-listpack-value`.
    pub hash_value_bytes_max: usize,
    /// `set-max-intset-entries`.
    pub set_intset_entries_max: usize,
    /// `zset-max-listpack-entries`.
    pub zset_entries_max: usize,
    /// `zset-max-listpack-value`.
    pub zset_value_bytes_max: usize,
    /// `list-max-listpack-size` (negative: a size class, -2 = 8 KiB).
    pub list_listpack_size: i64,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_entries_max: 128,
            hash_value_bytes_max: 64,
            set_intset_entries_max: 512,
            zset_entries_max: 128,
            zset_value_bytes_max: 64,
            list_listpack_size: -2,
        }
    }
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// The encoding Redis 7.0 would use for this value. slotd has one
    /// in-memory representation per type; the name is derived from the
    /// contents with Redis's thresholds so tools that read it keep working.
    pub fn encoding_name(&self, lim: &EncodingLimits) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && crate::resp::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            // Redis 7.0 stores every list as a quicklist (of listpack
            // nodes); the listpack encoding for small lists came in 7.2.
            Value::List(_) => "quicklist",
            Value::Hash(h) => {
                if h.len() <= lim.hash_entries_max
                    && h.iter().all(|(k, v)| {
                        k.len() <= lim.hash_value_bytes_max && v.len() <= lim.hash_value_bytes_max
                    })
                {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::Set(s) => {
                if s.len() <= lim.set_intset_entries_max
                    && s.iter().all(|m| crate::resp::parse_i64(m).is_some())
                {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                if z.len() <= lim.zset_entries_max
                    && z.iter().all(|(m, _)| m.len() <= lim.zset_value_bytes_max)
                {
                    "listpack"
                } else {
                    "skiplist"
                }
            }
        }
    }

    /// Elements in a collection (1 for strings): sizes the cost of freeing.
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
        }
    }

    /// True for an empty collection, which must not stay in the keyspace.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Str(_) => false,
            _ => self.len() == 0,
        }
    }
}

/// A collection type a command family works on, so the typed lookups
/// (exists-or-WRONGTYPE, read, write) are written once in `cmd`.
pub trait Typed {
    /// The value as this type, if it is one.
    fn of(v: &Value) -> Option<&Self>;
    /// The value as this type, for update.
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
}

impl Typed for HashSet<Bytes> {
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
}

impl Typed for ZSet {
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_up_to_inline_max_live_in_the_entry() {
        for n in [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, 1000] {
            let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
            for s in [
                StrData::copy_from_slice(&v),
                StrData::from(v.clone()),
                StrData::from(Bytes::from(v.clone())),
            ] {
                assert_eq!(&*s, &v[..]);
                assert_eq!(&s.to_bytes()[..], &v[..]);
                assert_eq!(matches!(s, StrData::Inline { .. }), n <= INLINE_MAX, "{n}");
            }
        }
        // No entry grows: the string fits where the largest other
        // variant already is.
        assert_eq!(std::mem::size_of::<Value>(), 48);
    }

    #[test]
    fn take_mut_hands_out_the_bytes_and_leaves_an_empty_string() {
        for n in [3, INLINE_MAX + 10] {
            let v = vec![b'x'; n];
            let mut s = StrData::copy_from_slice(&v);
            let shared = s.to_bytes();
            let mut m = s.take_mut(n + 5);
            assert!(s.is_empty());
            assert!(m.capacity() >= n);
            m.extend_from_slice(b"yz");
            let s = StrData::from(m.freeze());
            assert_eq!(s.len(), n + 2);
            assert_eq!(matches!(s, StrData::Inline { .. }), n + 2 <= INLINE_MAX);
            // A reply still holding the old bytes is not disturbed.
            assert_eq!(&shared[..], &v[..]);
        }
    }
}
