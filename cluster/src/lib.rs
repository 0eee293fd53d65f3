//! slotd's Redis Cluster bus, free of I/O: Redis 7.0's wire format, its
//! `nodes.conf`, and the gossip / failure-detection state machine.
//!
//! # Layout
//! - [`wire`]: the cluster bus message (`clusterMsg` of Redis 7.0.15) byte for
//!   byte: [`wire::decode`] (never panics, applies Redis's length rules) and
//!   [`wire::encode`].
//! - [`nodes_conf`]: the `nodes.conf` file both ways.
//! - [`command`]: the CLUSTER command on a [`state::Cluster`].
//! - [`slotmap`]: the slot map shard cores route by.
//! - [`cores`]: a node's client ports per shard core, as MODULE messages
//!   carry them.
//! - [`state`]: [`state::Cluster`], the bus as a state machine. The driver
//!   (sockets, timers, the file) lives elsewhere and feeds it received
//!   messages, link events, the time and a random number generator; it gets
//!   back [`state::Action`]s to perform.
//!
//! No sockets, no clocks, no threads, no `thread_rng()`: time (`now_ms`) and
//! randomness (an `RngCore`) are arguments, so a seeded simulation replays
//! any run exactly (`cluster/tests/sim.rs`).
//!
//! This module holds what the three share: node IDs and slot bitmaps.

pub mod command;
pub mod cores;
pub mod nodes_conf;
pub mod slotmap;
pub mod state;
pub mod wire;

#[cfg(test)]
mod fuzz_tests;

use std::fmt;

/// Number of hash slots (`CLUSTER_SLOTS`).
pub const SLOTS: usize = 16384;
/// Bytes of a slot bitmap (`CLUSTER_SLOTS/8`).
pub const SLOT_BITMAP_BYTES: usize = SLOTS / 8;
/// Bytes of a node ID (`CLUSTER_NAMELEN`: 40 hex characters).
pub const NODE_ID_BYTES: usize = 40;

/// A node's name: 40 characters, on the wire exactly as sent (Redis does not
/// check them there), in `nodes.conf` checked as Redis's
/// `verifyClusterNodeId` does (`[a-z0-9]{40}`). All zeros means "no node"
/// (`CLUSTER_NODE_NULL_NAME`, the `slaveof` of a master).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub [u8; NODE_ID_BYTES]);

impl NodeId {
    /// The null name.
    pub const NULL: NodeId = NodeId([0; NODE_ID_BYTES]);

    /// `Some` if `s` is a valid name for `nodes.conf` and CLUSTER commands.
    pub fn parse(s: &[u8]) -> Option<NodeId> {
        let bytes: [u8; NODE_ID_BYTES] = s.try_into().ok()?;
        let valid = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        valid.then_some(NodeId(bytes))
    }

    /// A fresh random name, as Redis's `getRandomHexChars`.
    pub fn random(rng: &mut (impl rand::RngCore + ?Sized)) -> NodeId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0u8; NODE_ID_BYTES];
        for b in bytes.iter_mut() {
            *b = HEX[(rng.next_u32() & 15) as usize];
        }
        NodeId(bytes)
    }

    /// True for the all-zero name.
    pub fn is_null(&self) -> bool {
        self.0 == [0; NODE_ID_BYTES]
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// A set of slots as the bus carries it: bit `s` is `bytes[s / 8] >> (s % 8)`
/// (Redis's `bitmapTestBit`). Boxed: 2 KiB.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(pub Box<[u8; SLOT_BITMAP_BYTES]>);

impl SlotBitmap {
    /// No slot.
    pub fn new() -> SlotBitmap {
        SlotBitmap(Box::new([0; SLOT_BITMAP_BYTES]))
    }

    /// Whether `slot` (below [`SLOTS`]) is in the set.
    pub fn get(&self, slot: u16) -> bool {
        let slot = slot as usize % SLOTS;
        self.0[slot / 8] & (1 << (slot % 8)) != 0
    }

    /// Adds or removes `slot` (below [`SLOTS`]).
    pub fn set(&mut self, slot: u16, on: bool) {
        let slot = slot as usize % SLOTS;
        if on {
            self.0[slot / 8] |= 1 << (slot % 8);
        } else {
            self.0[slot / 8] &= !(1 << (slot % 8));
        }
    }

    /// Slots `64 × i .. 64 × i + 63` as one word (bit `b` is slot
    /// `64 × i + b`); `i` below 256.
    pub fn word(&self, i: usize) -> u64 {
        let at = (i % (SLOTS / 64)) * 8;
        u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap_or([0; 8]))
    }

    /// Replaces word `i` (see [`SlotBitmap::word`]).
    pub fn set_word(&mut self, i: usize, word: u64) {
        let at = (i % (SLOTS / 64)) * 8;
        self.0[at..at + 8].copy_from_slice(&word.to_le_bytes());
    }

    /// Number of slots in the set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The set as ascending runs of consecutive slots, `(first, last)`
    /// inclusive. A word at a time: empty and full words (nearly all of
    /// them, slots being owned in ranges) cost one comparison each.
    pub fn runs(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut open: Option<u16> = None;
        for (i, w) in self.0.chunks_exact(8).enumerate() {
            let mut word = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
            let base = i as u16 * 64;
            if word == u64::MAX && open.is_some() {
                continue;
            }
            if word == 0 {
                if let Some(first) = open.take() {
                    out.push((first, base - 1));
                }
                continue;
            }
            // Bit by bit: alternate runs of ones and zeros inside the word.
            let mut bit = 0u32;
            while bit < 64 {
                if word & 1 == 1 {
                    let ones = word.trailing_ones().min(64 - bit);
                    open.get_or_insert(base + bit as u16);
                    bit += ones;
                    word = word.checked_shr(ones).unwrap_or(0);
                } else {
                    let zeros = word.trailing_zeros().min(64 - bit);
                    if let Some(first) = open.take() {
                        out.push((first, base + bit as u16 - 1));
                    }
                    bit += zeros;
                    word = word.checked_shr(zeros).unwrap_or(0);
                }
            }
        }
        if let Some(first) = open {
            out.push((first, SLOTS as u16 - 1));
        }
        out
    }

    /// The slots in the set, ascending (empty bytes skipped whole).
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        // Eight bytes at a time, set bits by trailing zeros.
        self.0
            .chunks_exact(8)
            .enumerate()
            .filter_map(|(i, w)| {
                let word = u64::from_le_bytes(w.try_into().ok()?);
                (word != 0).then_some((i, word))
            })
            .flat_map(|(i, mut word)| {
                std::iter::from_fn(move || {
                    (word != 0).then(|| {
                        let bit = word.trailing_zeros() as u16;
                        word &= word - 1;
                        i as u16 * 64 + bit
                    })
                })
            })
    }
}

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap::new()
    }
}

impl fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotBitmap({} slots)", self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Runs by the word agree with runs built slot by slot.
    #[test]
    fn runs_match_the_slots() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..300 {
            let mut b = SlotBitmap::new();
            // Ranges of every length, at every alignment, and stray bits.
            for _ in 0..rng.gen_range(0..12) {
                let first = rng.gen_range(0..SLOTS as u16);
                let len = if round % 3 == 0 {
                    rng.gen_range(1..4)
                } else {
                    rng.gen_range(1..3000)
                };
                for s in first..(first.saturating_add(len)).min(SLOTS as u16) {
                    b.set(s, true);
                }
            }
            if round == 1 {
                (0..SLOTS as u16).for_each(|s| b.set(s, true));
            }
            let mut want: Vec<(u16, u16)> = Vec::new();
            for s in b.iter() {
                match want.last_mut() {
                    Some((_, last)) if *last + 1 == s => *last = s,
                    _ => want.push((s, s)),
                }
            }
            assert_eq!(b.runs(), want, "round {round}");
        }
    }
}
