//! One logical database (SELECT n) of one shard: a dictionary per hash slot.
//!
//! Keeping one dictionary per slot makes the per-slot questions of Redis
//! Cluster cheap (CLUSTER COUNTKEYSINSLOT is a length, GETKEYSINSLOT and slot
//! migration walk one small dictionary) and lets SCAN use the slot as its
//! cursor, which stays valid however the dictionaries grow. Keys with a TTL
//! are also listed in `volatile` so the active expiry cycle can sample them
//! at random, as Redis samples its `expires` dictionary.

use crate::dict::{hash, SlotDict};
use crate::slot::{slot_of, SLOTS};
use crate::value::Value;

/// Marks an entry that has no TTL.
pub const NO_EXPIRE: i64 = i64::MAX;
/// `meta` bit set for strings Redis would report as `raw` (changed in
/// place by APPEND, SETRANGE, SETBIT, ...); the other 31 bits are the
/// index into `Db::volatile`.
const RAW_BIT: u32 = 1 << 31;
const NOT_VOLATILE: u32 = !RAW_BIT;

/// A key's value and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry time in Unix milliseconds, or [`NO_EXPIRE`].
    expire_at_ms: i64,
    /// Index into `Db::volatile` (or `NOT_VOLATILE`), plus `RAW_BIT`.
    meta: u32,
    /// Last access, in Unix seconds (for OBJECT IDLETIME).
    pub access_s: u32,
}

impl Entry {
    /// Absolute expiry in Unix milliseconds, if the key has a TTL.
    pub fn expire_at(&self) -> Option<i64> {
        (self.expire_at_ms != NO_EXPIRE).then_some(self.expire_at_ms)
    }

    fn vidx(&self) -> u32 {
        self.meta & !RAW_BIT
    }

    fn set_vidx(&mut self, i: u32) {
        debug_assert!(i <= NOT_VOLATILE);
        self.meta = (self.meta & RAW_BIT) | i;
    }

    /// Marks a string changed in place: OBJECT ENCODING then says `raw`,
    /// as Redis does once it has unshared a string to modify it.
    pub fn set_raw(&mut self) {
        self.meta |= RAW_BIT;
    }

    /// The encoding Redis 7.0 would report for this entry's value.
    pub fn encoding_name(&self, lim: &crate::value::EncodingLimits) -> &'static str {
        match self.value {
            Value::Str(_) if self.meta & RAW_BIT != 0 => "raw",
            _ => self.value.encoding_name(lim),
        }
    }

    /// A fresh entry without a TTL.
    pub(crate) fn new(value: Value, now_s: u32) -> Entry {
        Entry {
            value,
            expire_at_ms: NO_EXPIRE,
            meta: NOT_VOLATILE,
            access_s: now_s,
        }
    }

    /// True when the key's TTL has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at_ms != NO_EXPIRE && self.expire_at_ms <= now_ms
    }
}

/// Longest key stored inline.
const KEY_INLINE_BYTES_MAX: usize = 22;

/// A key as the dictionary stores it: short keys inline, so comparing a
/// probed entry's key reads the bucket already in cache instead of
/// chasing a pointer (a cache miss per lookup on a large keyspace).
#[derive(Clone)]
pub enum Key {
    /// Up to [`KEY_INLINE_BYTES_MAX`] bytes, in place.
    Inline {
        len: u8,
        buf: [u8; KEY_INLINE_BYTES_MAX],
    },
    /// Longer keys.
    Heap(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Key>() == 24);

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(k: &[u8]) -> Key {
        if k.len() <= KEY_INLINE_BYTES_MAX {
            let mut buf = [0u8; KEY_INLINE_BYTES_MAX];
            buf[..k.len()].copy_from_slice(k);
            Key::Inline {
                len: k.len() as u8,
                buf,
            }
        } else {
            Key::Heap(k.into())
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl std::hash::Hash for Key {
    /// Hashes exactly as `[u8]` does, so lookups by `&[u8]` find it.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// A key's lookup worked out ahead of it: its slot and hash, between the
/// two steps of a prefetch.
#[derive(Debug, Clone, Copy)]
pub struct Ahead {
    slot: u16,
    hash: u64,
}

/// A database: per-slot dictionaries plus the list of keys with a TTL.
#[derive(Default)]
pub struct Db {
    /// Empty until the first insert, then one dictionary per slot.
    dicts: Vec<SlotDict>,
    /// Hash seed of this database's dictionaries.
    seed: u64,
    /// Keys that have a TTL, in no order, for random sampling. Invariant:
    /// `volatile[i]` names an entry whose volatile index is `i`.
    volatile: Vec<Key>,
    len: usize,
}

impl Db {
    /// An empty database whose dictionaries hash with `seed`.
    pub fn with_seed(seed: u64) -> Db {
        Db {
            seed,
            ..Db::default()
        }
    }

    /// Number of keys (including expired ones not yet reclaimed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the database has no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Keys stored in `slot`.
    pub fn slot_len(&self, slot: u16) -> usize {
        self.dicts.get(slot as usize).map_or(0, |d| d.len())
    }

    /// The keys of `slot`, in no particular order.
    pub fn slot_keys(&self, slot: u16) -> impl Iterator<Item = &[u8]> {
        self.dicts
            .get(slot as usize)
            .into_iter()
            .flat_map(|d| d.iter().map(|(k, _)| &k[..]))
    }

    /// Every entry of `slot`.
    pub fn slot_entries(&self, slot: u16) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.dicts
            .get(slot as usize)
            .into_iter()
            .flat_map(|d| d.iter().map(|(k, e)| (&k[..], e)))
    }

    /// Every entry, slot by slot.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.dicts
            .iter()
            .flat_map(|d| d.iter().map(|(k, e)| (&k[..], e)))
    }

    /// The entry of `key`, expired or not.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.dicts.get(slot_of(key) as usize)?.get(self.seed, key)
    }

    /// The entry of `key` for update, expired or not.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let seed = self.seed;
        self.dicts
            .get_mut(slot_of(key) as usize)?
            .get_mut(seed, key)
    }

    /// Starts loading where `key` lives, ahead of a lookup (pipelines).
    pub fn prefetch(&self, key: &[u8]) {
        if let Some(d) = self.dicts.get(slot_of(key) as usize) {
            d.prefetch(hash(self.seed, key));
        }
    }

    /// The first half of [`Db::prefetch`], for several keys at once: starts
    /// loading `key`'s slot header (without waiting for it) and returns
    /// what [`Db::prefetch_entry`] needs once the header has arrived.
    pub fn prefetch_slot(&self, key: &[u8]) -> Option<Ahead> {
        let slot = slot_of(key);
        let d = self.dicts.get(slot as usize)?;
        crate::dict::prefetch_read(d as *const SlotDict as *const u8);
        Some(Ahead {
            slot,
            hash: hash(self.seed, key),
        })
    }

    /// The second half: starts loading the entry itself.
    pub fn prefetch_entry(&self, ahead: Ahead) {
        if let Some(d) = self.dicts.get(ahead.slot as usize) {
            d.prefetch(ahead.hash);
        }
    }

    fn dict_mut(&mut self, slot: u16) -> &mut SlotDict {
        if self.dicts.is_empty() {
            self.dicts.resize_with(SLOTS, SlotDict::default);
        }
        &mut self.dicts[slot as usize]
    }

    /// Stores `value` under `key`, dropping any TTL it had; returns the old
    /// entry. Overwriting reuses the existing slot (one hash probe).
    pub fn insert(&mut self, key: &[u8], value: Value, now_s: u32) -> Option<Entry> {
        let seed = self.seed;
        let dict = self.dict_mut(slot_of(key));
        if let Some(e) = dict.get_mut(seed, key) {
            let old = Entry {
                value: std::mem::replace(&mut e.value, value),
                expire_at_ms: e.expire_at_ms,
                meta: NOT_VOLATILE,
                access_s: e.access_s,
            };
            e.access_s = now_s;
            e.expire_at_ms = NO_EXPIRE;
            let was = e.vidx();
            e.meta = NOT_VOLATILE;
            if was != NOT_VOLATILE {
                self.unlist_volatile(was);
            }
            return Some(old);
        }
        dict.insert_new(seed, key.into(), Entry::new(value, now_s));
        self.len += 1;
        None
    }

    /// Replaces the value of an existing `key`, keeping its TTL; inserts it
    /// without a TTL when it does not exist.
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, now_s: u32) {
        match self.get_mut(key) {
            Some(e) => {
                e.value = value;
                e.access_s = now_s;
                e.meta &= !RAW_BIT;
            }
            None => {
                self.insert(key, value, now_s);
            }
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let seed = self.seed;
        let dict = self.dicts.get_mut(slot_of(key) as usize)?;
        let entry = dict.remove(seed, key)?;
        self.len -= 1;
        if entry.vidx() != NOT_VOLATILE {
            self.unlist_volatile(entry.vidx());
        }
        Some(entry)
    }

    fn unlist_volatile(&mut self, idx: u32) {
        let idx = idx as usize;
        self.volatile.swap_remove(idx);
        if let Some(moved) = self.volatile.get(idx) {
            let moved = moved.clone();
            if let Some(e) = self.get_mut(&moved) {
                e.set_vidx(idx as u32);
            }
        }
    }

    /// Sets the absolute expiry of an existing key (`None` removes the TTL).
    /// Returns false when the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at_ms: Option<i64>) -> bool {
        let next_idx = self.volatile.len() as u32;
        let Some(e) = self.get_mut(key) else {
            return false;
        };
        let was = e.vidx();
        match at_ms {
            Some(at) => {
                // i64::MAX marks "no TTL"; a key asked to expire then is
                // one millisecond early rather than immortal.
                e.expire_at_ms = at.min(NO_EXPIRE - 1);
                if was == NOT_VOLATILE {
                    e.set_vidx(next_idx);
                    self.volatile.push(key.into());
                }
            }
            None => {
                e.expire_at_ms = NO_EXPIRE;
                e.set_vidx(NOT_VOLATILE);
                if was != NOT_VOLATILE {
                    self.unlist_volatile(was);
                }
            }
        }
        true
    }

    /// The `i`-th key with a TTL (for random sampling), if `i` is in range.
    pub fn volatile_key(&self, i: usize) -> Option<&[u8]> {
        self.volatile.get(i).map(|k| &k[..])
    }

    /// A uniformly chosen key, using `r` as the random input.
    pub fn random_key(&self, r: u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let mut target = (r % self.len as u64) as usize;
        for d in &self.dicts {
            if target < d.len() {
                // Dictionaries have no random access; walk to the entry.
                return d.iter().nth(target).map(|(k, _)| &k[..]);
            }
            target -= d.len();
        }
        None
    }

    /// Removes every key; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        *self = Db::with_seed(self.seed);
        n
    }

    /// Checks the structure's invariants (tests and debug builds).
    pub fn invariants(&self) {
        let total: usize = self.dicts.iter().map(|d| d.len()).sum();
        assert_eq!(total, self.len, "len counts every key");
        for (i, k) in self.volatile.iter().enumerate() {
            let e = self.get(k).expect("volatile key exists");
            assert_eq!(e.vidx() as usize, i, "volatile index matches");
            assert!(e.expire_at_ms != NO_EXPIRE, "volatile key has a TTL");
        }
        let with_ttl = self.iter().filter(|(_, e)| e.expire_at().is_some()).count();
        assert_eq!(with_ttl, self.volatile.len(), "every TTL is listed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::StrData;

    fn s(v: &str) -> Value {
        Value::Str(StrData::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn raw_flag_survives_ttl_changes_and_clears_on_overwrite() {
        let mut db = Db::default();
        let lim = crate::value::EncodingLimits::default();
        db.insert(b"a", s("hello"), 0);
        db.insert(b"b", s("x"), 0);
        db.set_expire(b"b", Some(5));
        db.set_expire(b"a", Some(10));
        db.get_mut(b"a").unwrap().set_raw();
        assert_eq!(db.get(b"a").unwrap().encoding_name(&lim), "raw");
        db.remove(b"b");
        db.invariants();
        assert_eq!(db.get(b"a").unwrap().expire_at(), Some(10));
        db.set_expire(b"a", None);
        assert_eq!(db.get(b"a").unwrap().encoding_name(&lim), "raw");
        db.invariants();
        db.insert(b"a", s("hello"), 0);
        assert_eq!(db.get(b"a").unwrap().encoding_name(&lim), "embstr");
    }

    #[test]
    fn inline_and_heap_keys_are_found_by_slice() {
        let mut db = Db::default();
        let short = b"k".to_vec();
        let edge = vec![b'e'; KEY_INLINE_BYTES_MAX];
        let long = vec![b'l'; KEY_INLINE_BYTES_MAX + 1];
        for k in [&short, &edge, &long] {
            db.insert(k, s("v"), 0);
        }
        assert!(matches!(Key::from(&edge[..]), Key::Inline { .. }));
        assert!(matches!(Key::from(&long[..]), Key::Heap(_)));
        for k in [&short, &edge, &long] {
            assert!(db.get(k).is_some());
            assert!(db.slot_keys(slot_of(k)).any(|x| x == &k[..]));
        }
        assert!(db.get(&long[..KEY_INLINE_BYTES_MAX]).is_none());
        assert_eq!(db.len(), 3);
    }

    #[test]
    fn insert_expire_remove_keep_invariants() {
        let mut db = Db::default();
        for i in 0..100 {
            db.insert(format!("k{i}").as_bytes(), s("v"), 0);
            if i % 3 == 0 {
                assert!(db.set_expire(format!("k{i}").as_bytes(), Some(1000 + i)));
            }
        }
        db.invariants();
        assert_eq!(db.len(), 100);
        assert_eq!(db.volatile_len(), 34);
        for i in (0..100).step_by(2) {
            db.remove(format!("k{i}").as_bytes());
        }
        db.invariants();
        db.set_expire(b"k3", None);
        db.insert(b"k9", s("x"), 0);
        db.invariants();
        assert_eq!(db.get(b"k9").unwrap().expire_at(), None);
        assert!(!db.set_expire(b"missing", Some(1)));
        let slot = slot_of(b"k1");
        assert!(db.slot_keys(slot).any(|k| k == b"k1"));
        assert_eq!(db.slot_len(slot), db.slot_keys(slot).count());
        assert!(db.random_key(12345).is_some());
    }
}
