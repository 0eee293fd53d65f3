//! One hash slot's dictionary: open addressing with linear probing.
//!
//! A general-purpose hash map hides where an entry lives; this one can say
//! it, so the node can prefetch the next pipelined command's entry while it
//! runs the current one (each lookup on a large keyspace is otherwise a few
//! cache misses in a row). Entries are `Option`s in one array; a probe
//! compares keys in place (short keys are stored inline, so the first probe
//! usually touches one cache line). Deletion shifts the following entries
//! back, so there are no tombstones and probes stay short. The header is 24
//! bytes, so the 16384 headers of a database stay mostly in cache.

use crate::db::{Entry, Key};

/// Most entries per 4 slots of capacity before the table grows.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;
/// Smallest non-empty capacity.
const CAPACITY_MIN: usize = 8;

/// The hash of `key` under `seed` (a multiply-rotate mix over 8-byte
/// words; the seed is random per database so keys cannot be chosen to
/// collide).
pub fn hash(seed: u64, key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

/// A slot's keys and entries.
#[derive(Default)]
pub struct SlotDict {
    slots: Box<[Option<(Key, Entry)>]>,
    len: usize,
}

impl SlotDict {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn find(&self, seed: u64, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash(seed, key) as usize & mask;
        // The load factor keeps an empty slot in every table, so this ends.
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, _)) if **k == *key => return Some(i),
                Some(_) => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry of `key`.
    pub fn get(&self, seed: u64, key: &[u8]) -> Option<&Entry> {
        let i = self.find(seed, key)?;
        self.slots[i].as_ref().map(|(_, e)| e)
    }

    /// The entry of `key`, for update.
    pub fn get_mut(&mut self, seed: u64, key: &[u8]) -> Option<&mut Entry> {
        let i = self.find(seed, key)?;
        self.slots[i].as_mut().map(|(_, e)| e)
    }

    /// Adds `key`, which must not be present.
    pub fn insert_new(&mut self, seed: u64, key: Key, entry: Entry) {
        debug_assert!(self.find(seed, &key).is_none());
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow(seed);
        }
        let mask = self.mask();
        let mut i = hash(seed, &key) as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some((key, entry));
        self.len += 1;
    }

    fn grow(&mut self, seed: u64) {
        let cap = (self.slots.len() * 2).max(CAPACITY_MIN);
        let old = std::mem::replace(&mut self.slots, (0..cap).map(|_| None).collect());
        self.len = 0;
        for (k, e) in old.into_vec().into_iter().flatten() {
            self.insert_new(seed, k, e);
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, seed: u64, key: &[u8]) -> Option<Entry> {
        let i = self.find(seed, key)?;
        let (_, entry) = self.slots[i].take()?;
        self.len -= 1;
        // Shift back every following entry that may sit in the hole, so
        // probes never stop early at it.
        let mask = self.mask();
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some((k, _)) = &self.slots[j] {
            let home = hash(seed, k) as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if self.len == 0 {
            *self = SlotDict::default();
        }
        Some(entry)
    }

    /// Every key and entry, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(k, e)| (k, e)))
    }

    /// Asks the CPU to start loading where the key with `hash` (see
    /// [`hash`]) would be found, so a lookup shortly after does not wait
    /// for memory.
    pub fn prefetch(&self, hash: u64) {
        if self.len == 0 {
            return;
        }
        let i = hash as usize & self.mask();
        let p = self.slots.as_ptr().wrapping_add(i) as *const u8;
        // An entry spans two cache lines at most.
        prefetch_read(p);
        prefetch_read(p.wrapping_add(std::mem::size_of::<Option<(Key, Entry)>>() - 1));
    }

    /// Checks that every entry is reachable from its home position.
    pub fn invariants(&self, seed: u64) {
        let mut n = 0;
        for (k, _) in self.iter() {
            n += 1;
            assert!(self.find(seed, k).is_some(), "entry reachable");
        }
        assert_eq!(n, self.len, "len counts entries");
        if !self.slots.is_empty() {
            assert!(
                self.slots.iter().any(|s| s.is_none()),
                "a free slot remains"
            );
        }
    }
}

/// A read prefetch hint; a no-op where the architecture has none here.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::StrData;
    use crate::value::Value;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    fn entry(v: u64) -> Entry {
        Entry::new(Value::Str(StrData::from(v.to_string().into_bytes())), 0)
    }

    /// Random inserts and removes agree with std's map at every step.
    #[test]
    fn matches_a_reference_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for seed in [0u64, 1, 0xdead_beef] {
            let mut d = SlotDict::default();
            let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
            for step in 0..20_000u64 {
                let k = format!("k{}", rng.gen_range(0..300)).into_bytes();
                if rng.gen_bool(0.6) {
                    if d.get(seed, &k).is_none() {
                        d.insert_new(seed, Key::from(&k[..]), entry(step));
                        model.insert(k.clone(), step);
                    }
                } else {
                    assert_eq!(d.remove(seed, &k).is_some(), model.remove(&k).is_some());
                }
                assert_eq!(d.len(), model.len());
                if step % 997 == 0 {
                    d.invariants(seed);
                    for (k, v) in &model {
                        let e = d.get(seed, k).expect("present");
                        assert_eq!(
                            e.value,
                            Value::Str(StrData::from(v.to_string().into_bytes()))
                        );
                    }
                }
            }
            d.invariants(seed);
            assert_eq!(d.iter().count(), model.len());
        }
    }

    #[test]
    fn hash_spreads_short_keys() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            seen.insert(hash(7, format!("key:{i:012}").as_bytes()) & 0xffff);
        }
        assert!(seen.len() > 8_000, "{} distinct of 10000", seen.len());
        assert_ne!(hash(1, b"a"), hash(2, b"a"));
        assert_ne!(hash(1, b""), hash(1, b"\0"));
    }
}
