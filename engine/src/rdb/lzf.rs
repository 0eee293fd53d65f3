//! LZF compression of RDB strings (liblzf's format, which Redis reads).
//!
//! Written here rather than taken from `lzf-rust` (whose decoder the
//! reader uses): its encoder zeroes a 256 KiB hash table for every string,
//! which made a snapshot of small values spend 80% of its time in memset.
//! This one sizes the table to the input and reuses it.
//!
//! The format: a control byte below 32 starts a run of `ctrl + 1` literal
//! bytes; otherwise its top 3 bits are the match length minus 2 (7: one
//! more byte adds to it) and its low 5 bits, with the next byte, are the
//! distance back minus 1 (13 bits).

use std::cell::RefCell;

const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = 7 + 255 + 2;

/// The hash table, kept between strings: a position is stored as
/// `base + position + 1`, and `base` moves past each input, so what an
/// earlier string left reads as empty without clearing the table (for the
/// small values of a snapshot, clearing cost more than compressing).
struct Table {
    slots: Vec<u32>,
    base: u32,
    /// Strings in a row that did not compress (see [`FAILS_FAST`]).
    fails: u32,
}

impl Table {
    const fn new() -> Table {
        Table {
            slots: Vec::new(),
            base: 0,
            fails: 0,
        }
    }
}

/// After this many strings in a row that did not compress (a snapshot of
/// random or already compressed values), the walk's strides grow four
/// times as fast (`FAST_SHIFT`): such a string then costs about half (64
/// random bytes: 118 to 64 ns), and the first string that compresses
/// brings the usual strides back, so data that compresses keeps its ratio
/// (this crate's sources in 64-byte to 5000-byte pieces: the same size).
const FAILS_FAST: u32 = 32;
const FAST_SHIFT: usize = 2;

thread_local! {
    static TABLE: RefCell<Table> = const { RefCell::new(Table::new()) };
}

/// Compresses `input`, appending to `out`, and returns the compressed
/// length; `None` (and `out` as it was) when that would not be below
/// `limit` bytes.
pub fn compress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Option<usize> {
    TABLE.with(|t| compress_with(input, out, limit, &mut t.borrow_mut()))
}

fn compress_with(input: &[u8], out: &mut Vec<u8>, limit: usize, t: &mut Table) -> Option<usize> {
    let shift = if t.fails >= FAILS_FAST { FAST_SHIFT } else { 4 };
    let n = encode(input, out, limit, t, shift);
    t.fails = if n.is_some() {
        0
    } else {
        t.fails.saturating_add(1)
    };
    n
}

fn encode(
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    t: &mut Table,
    shift: usize,
) -> Option<usize> {
    let start = out.len();
    let n = input.len();
    // A table of about twice the input's length, 256 to 65536 entries.
    let bits = (usize::BITS - n.max(1).leading_zeros()).clamp(8, 16);
    let size = 1usize << bits;
    if t.slots.len() < size {
        t.slots.resize(size, 0);
    }
    if u64::from(t.base) + n as u64 + 1 > u64::from(u32::MAX) {
        t.slots.fill(0);
        t.base = 0;
    }
    let base = t.base as usize;
    t.base += n as u32 + 1;
    let table = &mut t.slots[..size];
    let hash = |p: usize| {
        let w = &input[p..p + 3];
        let v = u32::from(w[0]) << 16 | u32::from(w[1]) << 8 | u32::from(w[2]);
        (v.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize & (size - 1)
    };
    let mut lit = 0usize;
    let mut ip = 0usize;
    // Positions looked at since the last match: past 16 (4 after a run of
    // strings that did not compress, `shift` 2) the walk takes longer
    // strides (as Snappy does), so incompressible data, the common case
    // of random values, costs less; a match resets it.
    let mut misses = 0usize;
    let too_long = |out: &Vec<u8>| out.len() - start >= limit;
    while ip + 2 < n {
        let h = hash(ip);
        let cand = table[h] as usize;
        table[h] = (base + ip + 1) as u32;
        if cand > base {
            let r = cand - base - 1;
            let d = ip - r;
            if d <= MAX_OFF && input[r..r + 3] == input[ip..ip + 3] {
                let max = MAX_REF.min(n - ip);
                let mut len = 3;
                while len < max && input[r + len] == input[ip + len] {
                    len += 1;
                }
                literals(out, &input[lit..ip]);
                let (l, off) = (len - 2, d - 1);
                if l < 7 {
                    out.push(((l << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(off as u8);
                if too_long(out) {
                    out.truncate(start);
                    return None;
                }
                ip += len;
                lit = ip;
                misses = 0;
                continue;
            }
        }
        ip += 1 + (misses >> shift);
        misses += 1;
    }
    // The last literals make `rest` bytes and one control byte per 32:
    // when they cannot fit, give up before copying them (the usual end
    // for an incompressible value).
    let rest = n - lit;
    if out.len() - start + rest + rest.div_ceil(MAX_LIT) >= limit {
        out.truncate(start);
        return None;
    }
    literals(out, &input[lit..]);
    Some(out.len() - start)
}

fn literals(out: &mut Vec<u8>, mut run: &[u8]) {
    while !run.is_empty() {
        let k = run.len().min(MAX_LIT);
        out.push((k - 1) as u8);
        out.extend_from_slice(&run[..k]);
        run = &run[k..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) -> Option<usize> {
        let mut out = vec![7u8];
        let n = compress(input, &mut out, input.len().saturating_sub(4).max(1))?;
        assert_eq!(out.len(), n + 1);
        let mut back = vec![0u8; input.len()];
        let m = lzf_rust::decompress(&out[1..], &mut back).expect("lzf-rust decodes it");
        assert_eq!(&back[..m], input);
        Some(n)
    }

    #[test]
    fn the_table_kept_between_strings_never_matches_an_earlier_one() {
        // A long string leaves its positions in the table; a short one
        // after it must not match them (it would read past its end), also
        // when the base wraps round and the table is cleared.
        let long: Vec<u8> = (0..5000).map(|i| (i % 97) as u8).collect();
        let short = b"abcabcabcabcabcabcabcabcabcabcab";
        for base in [0, u32::MAX - 6000, u32::MAX - 40] {
            let mut t = Table {
                base,
                ..Table::new()
            };
            for input in [&long[..], &short[..], &long[..], &short[..]] {
                let mut out = Vec::new();
                let n = compress_with(input, &mut out, input.len(), &mut t).unwrap();
                let mut back = vec![0u8; input.len()];
                let m = lzf_rust::decompress(&out[..n], &mut back).unwrap();
                assert_eq!(&back[..m], input);
            }
        }
    }

    #[test]
    fn after_a_run_of_incompressible_strings_what_repeats_still_compresses() {
        let mut t = Table::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = || -> Vec<u8> {
            (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let text = b"user:1000 {\"name\":\"ann\",\"city\":\"oslo\"} user:1001 {\"name\":\"bob\"}";
        let fresh = compress_with(text, &mut Vec::new(), text.len() - 4, &mut Table::new())
            .expect("compresses");
        for _ in 0..2 * FAILS_FAST {
            let v = noise();
            assert_eq!(compress_with(&v, &mut Vec::new(), 60, &mut t), None);
        }
        assert!(t.fails >= FAILS_FAST, "the fast strides are on");
        let mut out = Vec::new();
        let n = compress_with(text, &mut out, text.len() - 4, &mut t).expect("still compresses");
        let mut back = vec![0u8; text.len()];
        let m = lzf_rust::decompress(&out[..n], &mut back).unwrap();
        assert_eq!(&back[..m], &text[..]);
        assert_eq!(
            t.fails, 0,
            "a string that compresses brings the usual strides back"
        );
        let again = compress_with(text, &mut Vec::new(), text.len() - 4, &mut t);
        assert_eq!(
            again,
            Some(fresh),
            "with the usual strides, the usual result"
        );
    }

    #[test]
    fn compresses_what_repeats_and_decodes_with_lzf_rust() {
        let text = b"hello hello hello hello hello hello hello world".repeat(40);
        let n = round_trip(&text).unwrap();
        assert!(n * 10 < text.len(), "{n} of {}", text.len());
        let zeros = vec![0u8; 100_000];
        assert!(round_trip(&zeros).unwrap() < 2000);
        // Random bytes do not get smaller.
        let mut x = 0x1234_5678_9abc_def0u64;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(round_trip(&noise), None);
        // Mixed: every length and distance class, across many sizes.
        for len in [21usize, 33, 64, 100, 1000, 9000, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| ((i * 7) % 251 / 3) as u8).collect();
            round_trip(&v);
            let w: Vec<u8> = noise.iter().cycle().take(len).copied().collect();
            let _ = round_trip(&w);
        }
    }
}
