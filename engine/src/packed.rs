//! Building blocks of the compact collection encodings: a packed buffer of
//! entries (one allocation, a count, length-prefixed strings scanned
//! linearly, like Redis's listpack), a sorted integer set of the narrowest
//! width (like Redis's intset), and thin owned byte strings for the large
//! forms' hash tables.

use hashbrown::DefaultHashBuilder;
use std::hash::BuildHasher;

/// Appends `n` as a LEB128 varint (1 byte below 128).
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint at `pos`: (value, position after it).
pub fn get_len(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, pos);
        }
        shift += 7;
    }
}

/// Appends a length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len());
    out.extend_from_slice(s);
}

/// Reads the length-prefixed string at `pos`: (string, position after it).
pub fn get_str(buf: &[u8], pos: usize) -> (&[u8], usize) {
    let (n, p) = get_len(buf, pos);
    (&buf[p..p + n], p + n)
}

/// Entries packed in one exactly-sized allocation: a 4-byte count, then
/// the entries' bytes, whose format the owner defines.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

const HEAD: usize = 4;

impl Default for Packed {
    fn default() -> Self {
        Packed(Box::new([0; HEAD]))
    }
}

impl Packed {
    /// Bytes of its allocation.
    pub fn mem_bytes(&self) -> usize {
        crate::memsize::malloc_size(self.0.len())
    }

    /// Number of entries.
    pub fn count(&self) -> usize {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize
    }

    /// The entries' bytes.
    pub fn body(&self) -> &[u8] {
        &self.0[HEAD..]
    }

    /// Replaces `body[start..end]` with `with` and sets the count.
    pub fn splice(&mut self, start: usize, end: usize, with: &[u8], count: usize) {
        let body = self.body();
        let mut v = Vec::with_capacity(HEAD + body.len() - (end - start) + with.len());
        v.extend_from_slice(&(count as u32).to_le_bytes());
        v.extend_from_slice(&body[..start]);
        v.extend_from_slice(with);
        v.extend_from_slice(&body[end..]);
        self.0 = v.into_boxed_slice();
    }

    /// Appends an entry's bytes.
    pub fn push(&mut self, entry: &[u8]) {
        let end = self.body().len();
        self.splice(end, end, entry, self.count() + 1);
    }

    /// Builds from entries' bytes already concatenated.
    pub fn from_body(body: &[u8], count: usize) -> Packed {
        let mut p = Packed::default();
        p.splice(0, 0, body, count);
        p
    }
}

/// The length-prefixed strings of a packed body, in order, with the
/// offset where each begins.
pub struct Strs<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Strs<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Strs { body, pos: 0 }
    }
}

impl<'a> Iterator for Strs<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.body.len() {
            return None;
        }
        let at = self.pos;
        let (s, next) = get_str(self.body, at);
        self.pos = next;
        Some((at, s))
    }
}

/// A set of integers kept sorted in one allocation, each stored in the
/// narrowest of 2, 4 or 8 bytes that fits them all (first byte: the width).
#[derive(Clone, PartialEq, Eq)]
pub struct IntSet(Box<[u8]>);

impl Default for IntSet {
    fn default() -> Self {
        IntSet(Box::new([2]))
    }
}

fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

impl IntSet {
    /// Bytes of its allocation.
    pub fn mem_bytes(&self) -> usize {
        crate::memsize::malloc_size(self.0.len())
    }

    fn width(&self) -> usize {
        self.0[0] as usize
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        (self.0.len() - 1) / self.width()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th smallest member.
    pub fn get(&self, i: usize) -> i64 {
        let w = self.width();
        let b = &self.0[1 + i * w..1 + (i + 1) * w];
        match w {
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// True when `v` is a member.
    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    fn rebuild(&mut self, w: usize, vals: impl Iterator<Item = i64>, n: usize) {
        let mut out = Vec::with_capacity(1 + n * w);
        out.push(w as u8);
        for v in vals {
            out.extend_from_slice(&v.to_le_bytes()[..w]);
        }
        self.0 = out.into_boxed_slice();
    }

    /// Adds `v`; false when already a member.
    pub fn insert(&mut self, v: i64) -> bool {
        let Err(at) = self.search(v) else {
            return false;
        };
        let n = self.len();
        let w = self.width().max(width_of(v));
        let vals = (0..at)
            .map(|i| self.get(i))
            .chain(std::iter::once(v))
            .chain((at..n).map(|i| self.get(i)))
            .collect::<Vec<_>>();
        self.rebuild(w, vals.into_iter(), n + 1);
        true
    }

    /// Removes `v`; false when not a member. The width never shrinks, as
    /// in Redis.
    pub fn remove(&mut self, v: i64) -> bool {
        let Ok(at) = self.search(v) else {
            return false;
        };
        let w = self.width();
        let mut out = self.0.to_vec();
        out.drain(1 + at * w..1 + (at + 1) * w);
        self.0 = out.into_boxed_slice();
        true
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = i64> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The hasher of the large forms' tables.
pub type Hasher = DefaultHashBuilder;

/// Hash of a member or field under `h`.
pub fn hash_of(h: &Hasher, s: &[u8]) -> u64 {
    h.hash_one(s)
}

/// An integer member's decimal text, without allocating.
pub struct IntText {
    buf: [u8; 20],
    len: u8,
}

impl IntText {
    pub fn new(v: i64) -> Self {
        let mut buf = [0u8; 20];
        let mut n = v.unsigned_abs();
        let mut i = 20;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        buf.copy_within(i.., 0);
        IntText {
            buf,
            len: (20 - i) as u8,
        }
    }
}

impl std::ops::Deref for IntText {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 300, 16383, 16384, 1 << 30, usize::MAX] {
            let mut v = vec![9];
            put_len(&mut v, n);
            assert_eq!(get_len(&v, 1), (n, v.len()));
        }
    }

    #[test]
    fn intset_widens_and_stays_sorted() {
        let mut s = IntSet::default();
        let mut want = std::collections::BTreeSet::new();
        for v in [5, -3, 40000, 5, i64::MIN, i64::MAX, 0, -70000, 12] {
            assert_eq!(s.insert(v), want.insert(v));
            assert_eq!(
                s.iter().collect::<Vec<_>>(),
                want.iter().copied().collect::<Vec<_>>()
            );
        }
        assert_eq!(s.width(), 8);
        assert!(s.remove(40000) && !s.remove(40000));
        assert!(!s.contains(40000) && s.contains(i64::MIN));
        assert_eq!(s.len(), want.len() - 1);
    }

    #[test]
    fn int_text() {
        for v in [0, 7, -1, 123456, i64::MIN, i64::MAX] {
            assert_eq!(&*IntText::new(v), v.to_string().as_bytes());
        }
    }
}
