//! One hash slot's dictionary: a table of tagged pointers to entries.
//!
//! A general-purpose hash map hides where an entry lives; this one can say
//! it, so the node can prefetch the next pipelined command's table word and
//! entry while it runs the current one (each lookup on a large keyspace is
//! otherwise a few cache misses in a row). Per-slot tables stay small (a
//! million keys are about 60 per slot), so growing one never stalls a core.
//! The header is 24 bytes, so the 16384 headers of a database stay mostly
//! in cache.

use crate::entry::{Entry, Node};
use std::ptr::NonNull;

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

/// Most entries per 5 words of table before the table grows (4/5 full).
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;
/// Smallest non-empty table.
const CAPACITY_MIN: usize = 4;
/// Bits of a table word that hold the entry's address (user-space
/// addresses on x86-64 and aarch64 Linux fit in 47 bits); the 16 above
/// hold a tag taken from the key's hash, so a probe skips entries of
/// other keys without reading them.
const ADDR_BITS: u32 = 48;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;
/// Largest table whose home positions come from the tag alone.
const SMALL_CAP: u64 = 1 << 16;

/// A slot's entries: a table of one word per position, holding a pointer
/// to the entry (see [`crate::entry`]) and a 16-bit tag of its key's hash,
/// or 0 when free. Linear probing; the home position of a hash is
/// `hash × capacity / 2³²` (any capacity, so the table grows by half
/// rather than doubling); deletion shifts the following words back, so
/// there are no tombstones. 8 bytes per position at most 4/5 full: about
/// 12 bytes per key on average, against Redis's 8-byte bucket plus a
/// 24-byte `dictEntry`.
#[derive(Default)]
pub struct SlotDict {
    table: Box<[u64]>,
    len: usize,
}

fn tag(h: u64) -> u64 {
    (h >> ADDR_BITS) << ADDR_BITS
}

fn addr(w: u64) -> NonNull<Entry> {
    // SAFETY (of the callers' dereferences): a non-zero word holds the
    // address of an entry the table owns.
    NonNull::new((w & ADDR_MASK) as *mut Entry).expect("occupied word")
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

    /// The home position of hash `h`: from the tag's 16 bits while the
    /// table has at most 2¹⁶ words, so moving an entry (growing, shifting
    /// back after a deletion) needs only its word, not its key; from 32
    /// other bits of the hash in larger tables (a slot holding most of a
    /// database's keys, through hash tags).
    ///
    /// The bits are rotated by an amount that changes with the table's
    /// power of two. Homes scale the bits to the table, so table order is
    /// hash order; deleting keys in that order (SCAN then DEL) leaves
    /// hashes from one end of the range, which the shrink would pack into
    /// that end of the smaller table: one cluster, probed end to end at
    /// every insert (measured: 700k DELs of one hash-tagged slot in SCAN
    /// order took over two minutes). Rotated, the smaller table's homes
    /// come from other bits, which those keys spread over evenly.
    #[inline]
    fn home(&self, h: u64) -> usize {
        Self::home_in(self.table.len(), h)
    }

    /// The home position of hash `h` in a table of `cap` words (see
    /// [`SlotDict::home`]): a function of the two alone, so a walk can
    /// tell where an entry's home was before the table changed size.
    #[inline]
    pub fn home_in(cap: usize, h: u64) -> usize {
        let cap = cap as u64;
        let r = cap.leading_zeros().wrapping_mul(11);
        if cap <= SMALL_CAP {
            let t = ((h >> ADDR_BITS) as u16).rotate_left(r & 15) as u64;
            ((t * cap) >> 16) as usize
        } else {
            (((h.rotate_right(r & 63) & 0xffff_ffff) * cap) >> 32) as usize
        }
    }

    /// The home position of the entry in word `w`.
    fn home_of_word(&self, seed: u64, w: u64) -> usize {
        if self.table.len() as u64 <= SMALL_CAP {
            self.home(w)
        } else {
            // SAFETY: see `addr`.
            self.home(hash(seed, unsafe { addr(w).as_ref() }.key()))
        }
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.table.len() {
            0
        } else {
            i + 1
        }
    }

    fn entry(&self, i: usize) -> &Entry {
        // SAFETY: see `addr`; shared access follows `&self`.
        unsafe { addr(self.table[i]).as_ref() }
    }

    fn find(&self, seed: u64, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let h = hash(seed, key);
        let t = tag(h);
        let mut i = self.home(h);
        // The load factor keeps a free word in every table, so this ends.
        loop {
            let w = self.table[i];
            if w == 0 {
                return None;
            }
            if w & !ADDR_MASK == t && self.entry(i).key() == key {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// The entry of `key`.
    pub fn get(&self, seed: u64, key: &[u8]) -> Option<&Entry> {
        let i = self.find(seed, key)?;
        Some(self.entry(i))
    }

    /// The entry of `key`, for update.
    pub fn get_mut(&mut self, seed: u64, key: &[u8]) -> Option<&mut Entry> {
        let i = self.find(seed, key)?;
        // SAFETY: see `addr`; `&mut self` makes the access exclusive.
        Some(unsafe { addr(self.table[i]).as_mut() })
    }

    /// Adds `node`, whose key must not be present.
    pub fn insert_new(&mut self, seed: u64, node: Node) {
        debug_assert!(self.find(seed, node.key()).is_none());
        if (self.len + 1) * LOAD_DEN > self.table.len() * LOAD_NUM {
            let cap = (self.table.len() + self.table.len() / 2).max(CAPACITY_MIN);
            self.resize(seed, cap);
        }
        let h = hash(seed, node.key());
        self.place(h, node);
        self.len += 1;
    }

    fn place(&mut self, h: u64, node: Node) {
        let p = node.into_raw().as_ptr() as u64;
        assert_eq!(p & !ADDR_MASK, 0, "entry address above 2^48");
        let mut i = self.home(h);
        while self.table[i] != 0 {
            i = self.next(i);
        }
        self.table[i] = tag(h) | p;
    }

    fn resize(&mut self, seed: u64, cap: usize) {
        let old = std::mem::replace(&mut self.table, vec![0; cap].into_boxed_slice());
        for w in old.iter().copied().filter(|&w| w != 0) {
            let mut i = self.home_of_word(seed, w);
            while self.table[i] != 0 {
                i = self.next(i);
            }
            self.table[i] = w;
        }
    }

    /// Takes the entry at `i` out of the table, shifting back the entries
    /// after it that may sit in the hole so probes never stop early.
    fn take(&mut self, seed: u64, i: usize) -> Node {
        // SAFETY: the word is occupied and owned by the table, which
        // forgets it here.
        let node = unsafe { Node::from_raw(addr(self.table[i])) };
        self.table[i] = 0;
        self.len -= 1;
        let cap = self.table.len();
        let mut hole = i;
        let mut j = self.next(i);
        while self.table[j] != 0 {
            let home = self.home_of_word(seed, self.table[j]);
            if (j + cap - home) % cap >= (j + cap - hole) % cap {
                self.table[hole] = std::mem::take(&mut self.table[j]);
                hole = j;
            }
            j = self.next(j);
        }
        node
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, seed: u64, key: &[u8]) -> Option<Node> {
        let i = self.find(seed, key)?;
        let node = self.take(seed, i);
        if self.len == 0 {
            *self = SlotDict::default();
        } else if self.len * 5 < self.table.len() && self.table.len() > CAPACITY_MIN {
            // Shrink once a fifth full, to twice the entries: memory goes
            // back as a slot empties, and a grow is far away again.
            let cap = (self.len * 2).max(CAPACITY_MIN);
            self.resize(seed, cap);
        }
        Some(node)
    }

    /// Replaces the entry of `key` by what `f` makes of it (a TTL added or
    /// removed reallocates the entry). Returns false when `key` is absent.
    pub fn update(&mut self, seed: u64, key: &[u8], f: impl FnOnce(Node) -> Node) -> bool {
        let Some(i) = self.find(seed, key) else {
            return false;
        };
        // SAFETY: the word is owned by the table; it is replaced below by
        // the node `f` returns, so ownership is never doubled.
        let node = f(unsafe { Node::from_raw(addr(self.table[i])) });
        let p = node.into_raw().as_ptr() as u64;
        assert_eq!(p & !ADDR_MASK, 0, "entry address above 2^48");
        self.table[i] = (self.table[i] & !ADDR_MASK) | p;
        true
    }

    /// Every entry, taken out of the table (which is left empty).
    pub fn into_nodes(mut self) -> Vec<Node> {
        let table = std::mem::take(&mut self.table);
        self.len = 0;
        table
            .iter()
            .copied()
            .filter(|&w| w != 0)
            // SAFETY: the table owned every non-zero word's entry; the
            // table is gone, so each is owned once, by its node.
            .map(|w| unsafe { Node::from_raw(addr(w)) })
            .collect()
    }

    /// Words in the table: the capacity homes scale to.
    pub fn capacity(&self) -> usize {
        self.table.len()
    }

    /// The entries whose home position is in `lo..hi` (`hi` at most the
    /// capacity), with their key's hash under `seed`. An entry sits at
    /// its home or past it, wrapping at the end, with every word between
    /// occupied, so the words from `lo` up to the first free one at or
    /// past `hi` hold them all.
    pub fn homed_in(&self, seed: u64, lo: usize, hi: usize) -> impl Iterator<Item = (u64, &Entry)> {
        let cap = self.table.len();
        let span = hi.saturating_sub(lo);
        (0..cap)
            .map(move |s| (s, (lo + s) % cap))
            .take_while(move |&(s, i)| s < span || self.table[i] != 0)
            .filter(|&(_, i)| self.table[i] != 0)
            .filter_map(move |(_, i)| {
                let e = self.entry(i);
                let h = hash(seed, e.key());
                (lo..hi).contains(&Self::home_in(cap, h)).then_some((h, e))
            })
    }

    /// Every entry, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        (0..self.table.len())
            .filter(|&i| self.table[i] != 0)
            .map(|i| self.entry(i))
    }

    /// Every entry, from table position `start` (any number: it wraps)
    /// round to the one before it.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &Entry> {
        let cap = self.table.len().max(1);
        (0..self.table.len())
            .map(move |i| (start % cap + i) % cap)
            .filter(|&i| self.table[i] != 0)
            .map(|i| self.entry(i))
    }

    /// One stage of a walk's prefetch, a few slots ahead of where it reads
    /// (a snapshot's, whose every key is a chain of cache misses: table,
    /// entry, value): stage 0 starts loading the table, 1 the entries, 2
    /// what their values point to, each once the stage before has had time
    /// to arrive. Tables past 256 entries are left to the walk itself.
    pub fn prefetch_walk(&self, stage: u8) {
        if self.len == 0 || self.len > 256 {
            return;
        }
        if stage == 0 {
            for line in self.table.chunks(8) {
                prefetch_read(line.as_ptr() as *const u8);
            }
            return;
        }
        for &w in self.table.iter().filter(|&&w| w != 0) {
            if stage == 1 {
                prefetch_read(addr(w).as_ptr() as *const u8);
            } else {
                // SAFETY: a non-zero word addresses an entry the table owns.
                unsafe { addr(w).as_ref() }.value.prefetch_heap();
            }
        }
    }

    /// Asks the CPU to start loading the table word where the key with
    /// `hash` (see [`hash`]) would be found, so a lookup shortly after
    /// does not wait for memory.
    pub fn prefetch(&self, hash: u64) {
        if self.len == 0 {
            return;
        }
        prefetch_read(self.table.as_ptr().wrapping_add(self.home(hash)) as *const u8);
    }

    /// Starts loading the entry the word at `hash`'s home position points
    /// to, once that word is in cache (see [`SlotDict::prefetch`]): the
    /// entry of the key itself in the common case.
    pub fn prefetch_node(&self, hash: u64) {
        if self.len == 0 {
            return;
        }
        let w = self.table[self.home(hash)];
        if w != 0 {
            prefetch_read((w & ADDR_MASK) as *const u8);
        }
    }

    /// Checks that every entry is reachable from its home position.
    pub fn invariants(&self, seed: u64) {
        let mut n = 0;
        for e in self.iter() {
            n += 1;
            assert!(self.find(seed, e.key()).is_some(), "entry reachable");
        }
        assert_eq!(n, self.len, "len counts entries");
        if !self.table.is_empty() {
            assert!(self.table.contains(&0), "a free word remains");
            assert!(self.len * LOAD_DEN <= self.table.len() * LOAD_NUM);
        }
    }
}

impl Drop for SlotDict {
    fn drop(&mut self) {
        for w in self.table.iter().copied().filter(|&w| w != 0) {
            // SAFETY: the table owns every non-zero word's entry.
            drop(unsafe { Node::from_raw(addr(w)) });
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

    fn node(k: &[u8], v: u64) -> Node {
        Node::new(
            k,
            Value::Str(StrData::from(v.to_string().into_bytes())),
            0,
            None,
        )
    }

    /// The longest run of occupied words (a probe's worst case).
    fn longest_run(d: &SlotDict) -> usize {
        let (mut best, mut run) = (0, 0);
        // Twice round, for a run that wraps.
        for i in 0..2 * d.table.len() {
            run = if d.table[i % d.table.len()] != 0 {
                run + 1
            } else {
                0
            };
            best = best.max(run);
        }
        best
    }

    /// Deleting keys in table order (SCAN then DEL) leaves hashes from
    /// one end of the range; the tables the shrinks make must still
    /// spread them (with homes scaled from the same bits at every size,
    /// the survivors packed into one cluster of about the whole table).
    #[test]
    fn deleting_in_table_order_keeps_probes_short() {
        let seed = 7;
        for n in [40_000usize, 300_000] {
            let mut d = SlotDict::default();
            for i in 0..n {
                d.insert_new(seed, node(format!("{{t}}:{i}").as_bytes(), i as u64));
            }
            let order: Vec<Vec<u8>> = d.iter().map(|e| e.key().to_vec()).collect();
            for (i, k) in order.iter().enumerate() {
                assert!(d.remove(seed, k).is_some());
                if i % 5000 == 0 || i + 100 == n {
                    assert!(
                        longest_run(&d) < 1000,
                        "n {n}: after {i} removals, a run of {}",
                        longest_run(&d)
                    );
                }
            }
            assert!(d.is_empty());
        }
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
                        d.insert_new(seed, node(&k, step));
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

    /// A slot holding many keys (hash tags) outgrows the tag-derived home
    /// positions and back: grows, shifts and shrinks keep every key.
    #[test]
    fn large_tables_switch_home_positions_both_ways() {
        let seed = 5;
        let mut d = SlotDict::default();
        let n = 120_000u64;
        for i in 0..n {
            d.insert_new(seed, node(format!("{{tag}}:{i}").as_bytes(), i));
        }
        assert!(d.table.len() as u64 > SMALL_CAP);
        d.invariants(seed);
        for i in (0..n).filter(|i| i % 10 != 0) {
            assert!(d.remove(seed, format!("{{tag}}:{i}").as_bytes()).is_some());
        }
        assert!((d.table.len() as u64) <= SMALL_CAP, "shrank");
        d.invariants(seed);
        for i in 0..n {
            assert_eq!(
                d.get(seed, format!("{{tag}}:{i}").as_bytes()).is_some(),
                i % 10 == 0
            );
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
