//! The value types a key can hold, and how Redis would name their encodings.

use crate::zset::ZSet;
use bytes::Bytes;
use hashbrown::{HashMap, HashSet};
use std::collections::VecDeque;

/// A key's value. Strings are `Bytes` so replies share them without copying.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also integers and bitmaps).
    Str(Bytes),
    /// A list, head at the front.
    List(VecDeque<Bytes>),
    /// A hash of field → value.
    Hash(HashMap<Bytes, Bytes>),
    /// A set of members.
    Set(HashSet<Bytes>),
    /// A sorted set (boxed: it is the largest variant, and every entry
    /// would otherwise pay its size).
    ZSet(Box<ZSet>),
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
