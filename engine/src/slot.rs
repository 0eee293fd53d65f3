//! Key → hash slot, the one routing rule everything else builds on.
//!
//! `slot = CRC16-XMODEM(hashtag-or-key) & 16383`, as in the Redis Cluster
//! specification. The hashtag is the text between the first `{` and the first
//! `}` after it, when that text is not empty.

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The part of `key` that is hashed: its hashtag if it has a non-empty one.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    // (memchr: a key without a tag is checked 16 bytes a step.)
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Slicing-by-8 tables: `TABLES[k][b]` is the CRC contribution of byte `b`
/// followed by `k` zero bytes. Every command hashes its key at least twice
/// (routing, then the dictionary's slot), so this runs 8 bytes a step.
const TABLES: [[u16; 256]; 8] = {
    let mut t = [[0u16; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut i = 0;
        while i < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            i += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    t
};

/// CRC16-XMODEM (polynomial 0x1021, initial value 0).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let hi = (crc >> 8) as u8 ^ c[0];
        let lo = (crc & 0xff) as u8 ^ c[1];
        crc = TABLES[7][hi as usize]
            ^ TABLES[6][lo as usize]
            ^ TABLES[5][c[2] as usize]
            ^ TABLES[4][c[3] as usize]
            ^ TABLES[3][c[4] as usize]
            ^ TABLES[2][c[5] as usize]
            ^ TABLES[1][c[6] as usize]
            ^ TABLES[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// The hash slot of `key`.
pub fn slot_of(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

/// The shard core that owns `slot` when `shards` cores split the slots.
///
/// Slots are split into contiguous ranges, one per core, so a core owns
/// `[core_first_slot(c), core_first_slot(c + 1))`. Contiguous ranges keep
/// SCAN cursors (which walk slots in order) and slot migration between cores
/// simple; the cost is that a skewed slot range loads one core more, which the
/// CRC16 spread makes unlikely for real key sets.
pub fn core_of(slot: u16, shards: usize) -> usize {
    debug_assert!(shards > 0 && shards <= SLOTS);
    (slot as usize * shards) / SLOTS
}

/// The first slot owned by `core` (or `SLOTS` for `core == shards`).
pub fn core_first_slot(core: usize, shards: usize) -> usize {
    (core * SLOTS).div_ceil(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"name"), 5798);
        assert_eq!(slot_of(b"bbb"), 5287);
        assert_eq!(slot_of(b"aaa"), 10439);
        assert_eq!(slot_of(b"this{foo}key"), 12182);
        assert_eq!(slot_of(b"another{foo}key"), 12182);
        assert_eq!(slot_of(b"foo"), slot_of(b"{foo}"));
    }

    #[test]
    fn sliced_crc_matches_the_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for len in 0..200 {
            for _ in 0..20 {
                let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                assert_eq!(
                    crc16(&data),
                    crc16::State::<crc16::XMODEM>::calculate(&data),
                    "{data:?}"
                );
            }
        }
    }

    #[test]
    fn hash_tag_rules() {
        assert_eq!(hash_tag(b"{}key"), b"{}key");
        assert_eq!(hash_tag(b"a{b}c{d}"), b"b");
        assert_eq!(hash_tag(b"a{{b}}"), b"{b");
        assert_eq!(hash_tag(b"a{"), b"a{");
        assert_eq!(hash_tag(b"a}{b"), b"a}{b");
        // Tags past the first 16 bytes, and keys of many 16-byte steps.
        assert_eq!(hash_tag(b"0123456789abcdefghij{user:1}tail"), b"user:1");
        assert_eq!(
            hash_tag(b"{0123456789abcdefghijklmnopqrstuvwxyz}"),
            b"0123456789abcdefghijklmnopqrstuvwxyz"
        );
        let long = [b'x'; 100];
        assert_eq!(hash_tag(&long), &long[..]);
        assert_eq!(
            slot_of(b"0123456789abcdefghij{user:1}tail"),
            slot_of(b"{user:1}")
        );
    }

    #[test]
    fn core_ranges_cover_all_slots() {
        for shards in [1usize, 2, 3, 7, 64] {
            let mut prev = 0;
            for slot in 0..SLOTS as u16 {
                let c = core_of(slot, shards);
                assert!(c >= prev && c < shards);
                assert!(slot as usize >= core_first_slot(c, shards));
                assert!((slot as usize) < core_first_slot(c + 1, shards));
                prev = c;
            }
            assert_eq!(core_first_slot(shards, shards), SLOTS);
        }
    }
}
