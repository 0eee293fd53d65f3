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
use std::ptr::NonNull;

pub use crate::entry::{Entry, Node};

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
    /// One dictionary per slot, in chunks of [`CHUNK`] slots allocated on
    /// a chunk's first insert: a core that owns part of the slots pays
    /// only for its part.
    dicts: Vec<Option<Box<[SlotDict]>>>,
    /// Hash seed of this database's dictionaries.
    seed: u64,
    /// Entries that have a TTL, in no order, for random sampling.
    /// Invariant: `volatile[i]` points to an entry whose volatile index is
    /// `i`; the dictionaries own the entries.
    volatile: Vec<NonNull<Entry>>,
    /// Where the active expiry cycle goes on in `volatile`.
    expire_cursor: usize,
    /// The active expiry cycle's estimate of the keys' remaining TTL, ms
    /// (INFO keyspace's `avg_ttl`, see [`Db::note_ttls`]).
    avg_ttl: i64,
    len: usize,
}

/// What one step of the active expiry cycle found ([`Db::expire_step`]).
#[derive(Debug, PartialEq, Eq)]
pub enum ExpireStep {
    /// The key has expired: its name is in the caller's buffer.
    Expired,
    /// The key lives on for this many ms.
    Alive(i64),
}

/// Slots per chunk of dictionaries.
const CHUNK: usize = 256;

// SAFETY: the raw pointers in `volatile` point to entries the database's
// own dictionaries own; they move with it, and nothing else holds them.
unsafe impl Send for Db {}

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

    fn dict(&self, slot: usize) -> Option<&SlotDict> {
        self.dicts
            .get(slot / CHUNK)?
            .as_ref()
            .map(|c| &c[slot % CHUNK])
    }

    fn dict_at(&mut self, slot: usize) -> Option<&mut SlotDict> {
        self.dicts
            .get_mut(slot / CHUNK)?
            .as_mut()?
            .get_mut(slot % CHUNK)
    }

    fn all_dicts(&self) -> impl Iterator<Item = &SlotDict> {
        self.dicts.iter().flatten().flat_map(|c| c.iter())
    }

    /// `slot`'s dictionary, if it has one, and the seed it hashes with
    /// (for a walk in parts: `snapshot.rs`).
    pub(crate) fn slot_dict(&self, slot: u16) -> Option<(&SlotDict, u64)> {
        self.dict(slot as usize).map(|d| (d, self.seed))
    }

    /// The hash of `key` in this database's dictionaries.
    pub(crate) fn hash_of(&self, key: &[u8]) -> u64 {
        hash(self.seed, key)
    }

    /// Keys stored in `slot`.
    pub fn slot_len(&self, slot: u16) -> usize {
        self.dict(slot as usize).map_or(0, |d| d.len())
    }

    /// The keys of `slot`, in no particular order.
    pub fn slot_keys(&self, slot: u16) -> impl Iterator<Item = &[u8]> {
        self.slot_entries(slot).map(|(k, _)| k)
    }

    /// Every entry of `slot`.
    pub fn slot_entries(&self, slot: u16) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.dict(slot as usize)
            .into_iter()
            .flat_map(|d| d.iter().map(|e| (e.key(), e)))
    }

    /// A stage of a walk's prefetch of `slot` (see
    /// [`SlotDict::prefetch_walk`]); nothing for a slot with no keys.
    pub fn prefetch_walk(&self, slot: usize, stage: u8) {
        if let Some(d) = self.dict(slot) {
            d.prefetch_walk(stage);
        }
    }

    /// Every entry, slot by slot.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.all_dicts()
            .flat_map(|d| d.iter().map(|e| (e.key(), e)))
    }

    /// The entry of `key`, expired or not.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.dict(slot_of(key) as usize)?.get(self.seed, key)
    }

    /// The entry of `key` for update, expired or not.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let seed = self.seed;
        self.dict_at(slot_of(key) as usize)?.get_mut(seed, key)
    }

    /// The first step of a prefetch for several keys at once: starts
    /// loading `key`'s slot header (without waiting for it) and returns
    /// what the next steps need.
    pub fn prefetch_slot(&self, key: &[u8]) -> Option<Ahead> {
        let slot = slot_of(key);
        let d = self.dict(slot as usize)?;
        crate::dict::prefetch_read(d as *const SlotDict as *const u8);
        Some(Ahead {
            slot,
            hash: hash(self.seed, key),
        })
    }

    /// The second step, once the header has arrived: starts loading the
    /// table word.
    pub fn prefetch_entry(&self, ahead: Ahead) {
        if let Some(d) = self.dict(ahead.slot as usize) {
            d.prefetch(ahead.hash);
        }
    }

    /// The third step, once the word has arrived: starts loading the entry
    /// it points to.
    pub fn prefetch_node(&self, ahead: Ahead) {
        if let Some(d) = self.dict(ahead.slot as usize) {
            d.prefetch_node(ahead.hash);
        }
    }

    fn dict_mut(&mut self, slot: u16) -> &mut SlotDict {
        if self.dicts.is_empty() {
            self.dicts.resize_with(SLOTS / CHUNK, || None);
        }
        let chunk = self.dicts[slot as usize / CHUNK]
            .get_or_insert_with(|| (0..CHUNK).map(|_| SlotDict::default()).collect());
        &mut chunk[slot as usize % CHUNK]
    }

    /// Stores `value` under `key`, dropping any TTL it had; returns the old
    /// value. Overwriting a key without a TTL reuses its entry (one hash
    /// probe).
    pub fn insert(&mut self, key: &[u8], value: Value, lru: u32) -> Option<Value> {
        let seed = self.seed;
        let dict = self.dict_mut(slot_of(key));
        if let Some(e) = dict.get_mut(seed, key) {
            e.lru = lru;
            e.clear_raw();
            let had_ttl = e.vidx();
            let old = std::mem::replace(&mut e.value, value);
            if let Some(i) = had_ttl {
                self.drop_ttl(key, i);
            }
            return Some(old);
        }
        dict.insert_new(seed, Node::new(key, value, lru, None));
        self.len += 1;
        None
    }

    /// Replaces the value of an existing `key`, keeping its TTL; inserts it
    /// without a TTL when it does not exist. Returns the old value.
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, lru: u32) -> Option<Value> {
        match self.get_mut(key) {
            Some(e) => {
                e.lru = lru;
                e.clear_raw();
                Some(std::mem::replace(&mut e.value, value))
            }
            None => self.insert(key, value, lru),
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Node> {
        let seed = self.seed;
        let dict = self.dict_at(slot_of(key) as usize)?;
        let node = dict.remove(seed, key)?;
        self.len -= 1;
        if let Some(i) = node.vidx() {
            self.unlist_volatile(i);
        }
        Some(node)
    }

    /// Takes every entry of `slot` out of this database, TTLs included:
    /// for the core that takes the slot over ([`Db::put_nodes`]).
    pub fn take_slot(&mut self, slot: u16) -> Vec<Node> {
        let Some(d) = self.dict_at(slot as usize) else {
            return Vec::new();
        };
        let nodes = std::mem::take(d).into_nodes();
        self.len -= nodes.len();
        for n in &nodes {
            // Read each time: unlisting one may renumber another.
            if let Some(i) = n.vidx() {
                self.unlist_volatile(i);
            }
        }
        nodes
    }

    /// Adds entries another database gave up ([`Db::take_slot`]), with
    /// their TTLs; an entry of the same key here is replaced.
    pub fn put_nodes(&mut self, nodes: Vec<Node>) {
        let seed = self.seed;
        for mut n in nodes {
            if self.get(n.key()).is_some() {
                self.remove(n.key());
            }
            if n.vidx().is_some() {
                n.set_vidx(self.volatile.len() as u32);
                self.volatile.push(NonNull::from(&*n));
            }
            self.dict_mut(slot_of(n.key())).insert_new(seed, n);
            self.len += 1;
        }
    }

    /// Takes the entry at `volatile[idx]` off the list.
    fn unlist_volatile(&mut self, idx: u32) {
        let idx = idx as usize;
        self.volatile.swap_remove(idx);
        if let Some(moved) = self.volatile.get(idx) {
            // SAFETY: listed entries are live and owned by the
            // dictionaries, which `&mut self` holds exclusively.
            unsafe { &mut *moved.as_ptr() }.set_vidx(idx as u32);
        }
    }

    /// Removes the TTL part of `key`'s entry, listed at `volatile[idx]`.
    fn drop_ttl(&mut self, key: &[u8], idx: u32) {
        self.unlist_volatile(idx);
        let seed = self.seed;
        self.dict_mut(slot_of(key))
            .update(seed, key, |n| n.with_ttl(false));
    }

    /// Sets the absolute expiry of an existing key (`None` removes the TTL).
    /// Returns false when the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at_ms: Option<i64>) -> bool {
        let Some(e) = self.get_mut(key) else {
            return false;
        };
        match (at_ms, e.vidx()) {
            (Some(at), Some(_)) => e.set_expire_at(at),
            (Some(at), None) => {
                let seed = self.seed;
                let idx = self.volatile.len() as u32;
                let mut listed = None;
                self.dict_mut(slot_of(key)).update(seed, key, |n| {
                    let mut n = n.with_ttl(true);
                    n.set_expire_at(at);
                    n.set_vidx(idx);
                    listed = Some(NonNull::from(&*n));
                    n
                });
                self.volatile.extend(listed);
            }
            (None, Some(i)) => self.drop_ttl(key, i),
            (None, None) => {}
        }
        true
    }

    /// The `i`-th key with a TTL (for random sampling), if `i` is in range.
    pub fn volatile_key(&self, i: usize) -> Option<&[u8]> {
        // SAFETY: listed entries are live while `&self` is held.
        self.volatile.get(i).map(|p| unsafe { p.as_ref() }.key())
    }

    /// One step of the active expiry cycle: looks at the next key with a
    /// TTL (walking the list in order from where the last step stopped,
    /// as Redis 7.0 walks its `expires` table, so memory is read in order
    /// and the entries ahead are prefetched). Returns `None` when no key
    /// has a TTL; else whether the key has expired at `now_ms`, with its
    /// name in `key` for the caller to delete it (the list's last entry
    /// then takes its place, and the next step looks at that one), or
    /// how long it has to live.
    pub fn expire_step(&mut self, now_ms: i64, key: &mut Vec<u8>) -> Option<ExpireStep> {
        const AHEAD: usize = 8;
        if self.volatile.is_empty() {
            return None;
        }
        if self.expire_cursor >= self.volatile.len() {
            self.expire_cursor = 0;
        }
        let i = self.expire_cursor;
        if let Some(p) = self.volatile.get(i + AHEAD) {
            crate::dict::prefetch_read(p.as_ptr() as *const u8);
        }
        // SAFETY: listed entries are live while `&self` is held.
        let e = unsafe { self.volatile[i].as_ref() };
        if e.is_expired(now_ms) {
            key.clear();
            key.extend_from_slice(e.key());
            Some(ExpireStep::Expired)
        } else {
            self.expire_cursor += 1;
            Some(ExpireStep::Alive(e.expire_at().map_or(0, |at| at - now_ms)))
        }
    }

    /// Folds the remaining TTLs of one round of the active expiry cycle
    /// (`sum` ms over `samples` keys) into [`Db::avg_ttl`], as Redis's
    /// `activeExpireCycle`: 2% of the new mean, 98% of the estimate; 0
    /// when no key has a TTL.
    pub fn note_ttls(&mut self, sum: i128, samples: i128) {
        if self.volatile.is_empty() {
            self.avg_ttl = 0;
        } else if samples > 0 {
            let avg = (sum / samples) as i64;
            if self.avg_ttl == 0 {
                self.avg_ttl = avg;
            }
            self.avg_ttl = (self.avg_ttl / 50) * 49 + avg / 50;
        }
    }

    /// INFO keyspace's `avg_ttl` (ms).
    pub fn avg_ttl(&self) -> i64 {
        self.avg_ttl
    }

    /// The `i`-th entry with a TTL, if `i` is in range.
    pub fn volatile_entry(&self, i: usize) -> Option<&Entry> {
        // SAFETY: listed entries are live while `&self` is held.
        self.volatile.get(i).map(|p| unsafe { p.as_ref() })
    }

    /// Calls `f` on up to `n` entries found from a random place (`r`):
    /// the slot `r` picks and those after it, each from a random position
    /// in its table, as Redis's `dictGetSomeKeys` samples for eviction.
    pub fn sample(&self, r: u64, n: usize, mut f: impl FnMut(&[u8], &Entry)) {
        if self.len == 0 {
            return;
        }
        let mut left = n.min(self.len);
        let start = (r % SLOTS as u64) as usize;
        for i in 0..SLOTS {
            let Some(d) = self.dict((start + i) % SLOTS).filter(|d| !d.is_empty()) else {
                continue;
            };
            for e in d.iter_from((r >> 14) as usize).take(left) {
                f(e.key(), e);
                left -= 1;
            }
            if left == 0 {
                return;
            }
        }
    }

    /// A uniformly chosen key, using `r` as the random input.
    pub fn random_key(&self, r: u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let mut target = (r % self.len as u64) as usize;
        for d in self.all_dicts() {
            if target < d.len() {
                // Dictionaries have no random access; walk to the entry.
                return d.iter().nth(target).map(|e| e.key());
            }
            target -= d.len();
        }
        None
    }

    /// Takes the whole database out, leaving it empty (same hash seed).
    pub fn take(&mut self) -> Db {
        std::mem::replace(self, Db::with_seed(self.seed))
    }

    /// Removes every key; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        *self = Db::with_seed(self.seed);
        n
    }

    /// Checks the structure's invariants (tests and debug builds).
    pub fn invariants(&self) {
        let total: usize = self.all_dicts().map(|d| d.len()).sum();
        assert_eq!(total, self.len, "len counts every key");
        for i in 0..self.volatile.len() {
            let k = self.volatile_key(i).expect("listed");
            let e = self.get(k).expect("volatile key exists");
            assert_eq!(e.vidx(), Some(i as u32), "volatile index matches");
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
    fn a_slot_moves_between_databases_with_its_ttls() {
        let mut from = Db::with_seed(1);
        let mut to = Db::with_seed(2);
        // Keys of two slots ({a} and {b}), half of them with a TTL.
        for i in 0..200 {
            for tag in ["a", "b"] {
                let k = format!("{{{tag}}}:{i}");
                from.insert(k.as_bytes(), s(&k), 7);
                if i % 2 == 0 {
                    from.set_expire(k.as_bytes(), Some(1000 + i));
                }
            }
        }
        // A stale copy of a moving key on the receiving side is replaced.
        to.insert(b"{a}:0", s("old"), 0);
        to.insert(b"other", s("x"), 0);
        let slot = slot_of(b"{a}");
        let nodes = from.take_slot(slot);
        assert_eq!(nodes.len(), 200);
        assert_eq!(from.slot_len(slot), 0);
        assert_eq!(from.len(), 200);
        assert_eq!(from.volatile_len(), 100);
        from.invariants();
        to.put_nodes(nodes);
        to.invariants();
        assert_eq!(to.len(), 201);
        assert_eq!(to.volatile_len(), 100);
        for i in 0..200i64 {
            let k = format!("{{a}}:{i}");
            let e = to.get(k.as_bytes()).expect("moved");
            assert_eq!(e.expire_at(), (i % 2 == 0).then_some(1000 + i));
            assert_eq!(e.lru, 7);
            assert!(matches!(&e.value, Value::Str(v) if v[..] == *k.as_bytes()));
            assert!(from.get(k.as_bytes()).is_none());
        }
        // Expiry still finds the moved TTLs.
        let mut key = Vec::new();
        let mut expired = 0;
        for _ in 0..1000 {
            if to.expire_step(1100, &mut key) == Some(ExpireStep::Expired) {
                to.remove(&key);
                expired += 1;
            }
        }
        assert_eq!(expired, 51); // i = 0, 2, …, 100
        to.invariants();
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
    fn keys_of_any_length_are_found_by_slice() {
        let mut db = Db::default();
        let keys: Vec<Vec<u8>> = [0usize, 1, 22, 23, 1000]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for k in &keys {
            db.insert(k, s("v"), 0);
        }
        for k in &keys {
            assert!(db.get(k).is_some());
            assert!(db.slot_keys(slot_of(k)).any(|x| x == &k[..]));
        }
        assert!(db.get(&[b'k'; 999]).is_none());
        assert_eq!(db.len(), keys.len());
    }

    /// TTLs added and removed (entries reallocated) keep the list of
    /// volatile entries pointing at live entries, under random operations.
    #[test]
    fn random_ttl_churn_keeps_the_volatile_list_true() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut db = Db::default();
        let mut model = std::collections::HashMap::new();
        for step in 0..20_000i64 {
            let k = format!("key:{}", rng.gen_range(0..500));
            match rng.gen_range(0..5) {
                0 => {
                    db.insert(k.as_bytes(), s("x"), 0);
                    model.insert(k.clone(), None);
                }
                1 => {
                    db.remove(k.as_bytes());
                    model.remove(&k);
                }
                2 | 3 => {
                    let at = (step % 3 != 0).then_some(step);
                    assert_eq!(db.set_expire(k.as_bytes(), at), model.contains_key(&k));
                    if let Some(v) = model.get_mut(&k) {
                        *v = at;
                    }
                }
                _ => {
                    db.set_keep_ttl(k.as_bytes(), s("y"), 1);
                }
            }
            if !model.contains_key(&k) && db.get(k.as_bytes()).is_some() {
                model.insert(k, None);
            }
            if step % 1000 == 0 {
                db.invariants();
                for (k, at) in &model {
                    assert_eq!(db.get(k.as_bytes()).unwrap().expire_at(), *at);
                }
            }
        }
        assert_eq!(db.len(), model.len());
        assert_eq!(
            db.volatile_len(),
            model.values().filter(|v| v.is_some()).count()
        );
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
