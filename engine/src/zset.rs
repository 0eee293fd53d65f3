//! Sorted set: packed while small, else an ordered index of (score,
//! member) entries and a hash index over the same entries.

use crate::packed::{get_str, hash_of, put_str, Hasher, Packed};
use crate::value::EncodingLimits;
use bytes::Bytes;
use hashbrown::HashTable;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ptr::NonNull;

/// A score with a total order (scores are never NaN: commands refuse NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sorted set. Order is by score, then by member bytes, as in Redis.
/// Packed (Redis's `listpack`: entries in order, linear scan) while small,
/// else an ordered index plus a hash index over the same entries
/// (`skiplist`); converted when Redis 7.0 converts, never back.
#[derive(Clone)]
pub struct ZSet(Repr);

#[derive(Clone)]
enum Repr {
    /// Entries `[len member][score]` in (score, member) order; a score is
    /// a tag byte then an i8/i16/i32 when integral, else the f64.
    Packed(Packed),
    Tree(Box<Tree>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Repr::Packed(Packed::default()))
    }
}

fn put_score(out: &mut Vec<u8>, s: f64) {
    let i = s as i32;
    if i as f64 == s && !(s == 0.0 && s.is_sign_negative()) {
        if let Ok(b) = i8::try_from(i) {
            out.push(1);
            out.push(b as u8);
        } else if let Ok(h) = i16::try_from(i) {
            out.push(2);
            out.extend_from_slice(&h.to_le_bytes());
        } else {
            out.push(3);
            out.extend_from_slice(&i.to_le_bytes());
        }
    } else {
        out.push(0);
        out.extend_from_slice(&s.to_le_bytes());
    }
}

fn get_score(b: &[u8], pos: usize) -> (f64, usize) {
    let p = pos + 1;
    match b[pos] {
        1 => (b[p] as i8 as f64, p + 1),
        2 => (i16::from_le_bytes([b[p], b[p + 1]]) as f64, p + 2),
        3 => (
            i32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]) as f64,
            p + 4,
        ),
        _ => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[p..p + 8]);
            (f64::from_le_bytes(a), p + 8)
        }
    }
}

/// One packed entry: its byte range, member and score.
struct PEntry<'a> {
    start: usize,
    end: usize,
    member: &'a [u8],
    score: f64,
}

fn packed_entries(body: &[u8]) -> impl Iterator<Item = PEntry<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let start = pos;
        let (member, p) = get_str(body, pos);
        let (score, end) = get_score(body, p);
        pos = end;
        Some(PEntry {
            start,
            end,
            member,
            score,
        })
    })
}

fn key_cmp(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    Score(a.0).cmp(&Score(b.0)).then_with(|| a.1.cmp(b.1))
}

/// A large sorted set's entry: one allocation `[score f64][member]`, owned
/// by the ordered index; the hash index points at the same bytes.
struct ZEntry(NonNull<[u8]>);

// SAFETY: a ZEntry owns its allocation like a Box<[u8]> and never mutates
// it; the raw pointer only serves to let the hash index share it.
unsafe impl Send for ZEntry {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for ZEntry {}

impl ZEntry {
    fn new(score: f64, member: &[u8]) -> ZEntry {
        let mut v = Vec::with_capacity(8 + member.len());
        v.extend_from_slice(&score.to_le_bytes());
        v.extend_from_slice(member);
        ZEntry(NonNull::from(Box::leak(v.into_boxed_slice())))
    }
}

fn bytes_at<'a>(p: NonNull<[u8]>) -> &'a [u8] {
    // SAFETY: every pointer handed here comes from a live ZEntry of the
    // tree being read (entries and index change together, under &mut).
    unsafe { p.as_ref() }
}

fn member_at<'a>(p: NonNull<[u8]>) -> &'a [u8] {
    &bytes_at(p)[8..]
}

fn score_at(p: NonNull<[u8]>) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes_at(p)[..8]);
    f64::from_le_bytes(a)
}

impl Drop for ZEntry {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::leak in `new` and is freed once.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl ZEntry {
    fn member(&self) -> &[u8] {
        member_at(self.0)
    }
    fn score(&self) -> f64 {
        score_at(self.0)
    }
}

impl PartialEq for ZEntry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for ZEntry {}
impl PartialOrd for ZEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ZEntry {
    fn cmp(&self, o: &Self) -> Ordering {
        key_cmp((self.score(), self.member()), (o.score(), o.member()))
    }
}

#[derive(Default)]
struct Tree {
    order: BTreeSet<ZEntry>,
    index: HashTable<NonNull<[u8]>>,
    hasher: Hasher,
}

// SAFETY: the index's pointers refer to entries the tree owns (see ZEntry).
unsafe impl Send for Tree {}
// SAFETY: as above.
unsafe impl Sync for Tree {}

impl Clone for Tree {
    fn clone(&self) -> Self {
        let mut t = Tree::default();
        for e in &self.order {
            t.insert(e.member(), e.score());
        }
        t
    }
}

impl Tree {
    fn find(&self, member: &[u8]) -> Option<NonNull<[u8]>> {
        self.index
            .find(hash_of(&self.hasher, member), |p| member_at(*p) == member)
            .copied()
    }

    /// Unlinks and frees the entry at `p`.
    fn unlink(&mut self, p: NonNull<[u8]>) {
        let member = member_at(p);
        if let Ok(o) = self.index.find_entry(hash_of(&self.hasher, member), |q| {
            std::ptr::addr_eq(q.as_ptr(), p.as_ptr())
        }) {
            o.remove();
        }
        let probe = std::mem::ManuallyDrop::new(ZEntry(p));
        // Dropping the taken entry frees the bytes `probe` points to.
        drop(self.order.take(&*probe));
    }

    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.find(member);
        let old_score = old.map(score_at);
        if let Some(p) = old {
            if old_score == Some(score) {
                return old_score;
            }
            self.unlink(p);
        }
        let e = ZEntry::new(score, member);
        let p = e.0;
        self.order.insert(e);
        let hasher = &self.hasher;
        self.index.insert_unique(hash_of(hasher, member), p, |q| {
            hash_of(hasher, member_at(*q))
        });
        old_score
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let p = self.find(member)?;
        let s = score_at(p);
        self.unlink(p);
        Some(s)
    }

    fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        let e = if max {
            self.order.last()
        } else {
            self.order.first()
        }?;
        let (m, s, p) = (Bytes::copy_from_slice(e.member()), e.score(), e.0);
        self.unlink(p);
        Some((m, s))
    }
}

/// Members and scores of a sorted set, ascending (reversible).
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Vec(std::vec::IntoIter<(&'a [u8], f64)>),
    Tree(std::collections::btree_set::Iter<'a, ZEntry>),
    Range(std::collections::btree_set::Range<'a, ZEntry>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Vec(v) => v.next(),
            IterRepr::Tree(t) => t.next().map(|e| (e.member(), e.score())),
            IterRepr::Range(t) => t.next().map(|e| (e.member(), e.score())),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Vec(v) => v.next_back(),
            IterRepr::Tree(t) => t.next_back().map(|e| (e.member(), e.score())),
            IterRepr::Range(t) => t.next_back().map(|e| (e.member(), e.score())),
        }
    }
}

impl ZSet {
    /// Bytes of its allocations (the box excluded), sampling `samples`
    /// entries of a tree (0: all). A B-tree leaf holds up to 11 entry
    /// pointers and is about two thirds full: some 12 bytes per entry.
    pub fn mem_bytes(&self, samples: usize) -> usize {
        use crate::memsize::{malloc_size, sampled, table_size};
        match &self.0 {
            Repr::Packed(p) => p.mem_bytes(),
            Repr::Tree(t) => {
                let n = t.order.len();
                malloc_size(std::mem::size_of::<Tree>())
                    + table_size(t.index.capacity())
                    + n * 12
                    + sampled(
                        n,
                        samples,
                        t.order.iter().map(|e| malloc_size(bytes_at(e.0).len())),
                    )
            }
        }
    }

    /// An empty sorted set, packed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sorted set in the large form: for building a result of
    /// unknown size, then [`ZSet::fit`].
    pub fn new_large() -> Self {
        ZSet(Repr::Tree(Box::default()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.count(),
            Repr::Tree(t) => t.order.len(),
        }
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while packed (Redis's `listpack`).
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Packed(p) => packed_entries(p.body())
                .find(|e| e.member == member)
                .map(|e| e.score),
            Repr::Tree(t) => t.find(member).map(score_at),
        }
    }

    fn convert_to_tree(&mut self) {
        if let Repr::Packed(p) = &self.0 {
            let mut t = Tree::default();
            for e in packed_entries(p.body()) {
                t.insert(e.member, e.score);
            }
            self.0 = Repr::Tree(Box::new(t));
        }
    }

    /// Converts a large set built with [`ZSet::new_large`] to the packed
    /// form when Redis's `zsetConvertToListpackIfNeeded` would: at most
    /// `zset-max-listpack-entries` members, none longer than
    /// `zset-max-listpack-value`.
    pub fn fit(&mut self, lim: &EncodingLimits) {
        let Repr::Tree(t) = &self.0 else {
            return;
        };
        if t.order.len() > lim.zset_entries_max
            || t.order
                .iter()
                .any(|e| e.member().len() > lim.zset_value_bytes_max)
        {
            return;
        }
        let mut body = Vec::new();
        for e in &t.order {
            put_str(&mut body, e.member());
            put_score(&mut body, e.score());
        }
        self.0 = Repr::Packed(Packed::from_body(&body, t.order.len()));
    }

    /// Sets `member`'s score; returns the previous score. A new member
    /// converts a packed set first when Redis's `zsetAdd` would: beyond
    /// `zset-max-listpack-entries` members, or a member longer than
    /// `zset-max-listpack-value`.
    pub fn insert(&mut self, member: &[u8], score: f64, lim: &EncodingLimits) -> Option<f64> {
        debug_assert!(!score.is_nan());
        // -0.0 and 0.0 compare equal in Redis; store one of them.
        let score = if score == 0.0 { 0.0 } else { score };
        if let Repr::Packed(p) = &self.0 {
            let old = packed_entries(p.body()).find(|e| e.member == member);
            if old.is_none()
                && (p.count() + 1 > lim.zset_entries_max || member.len() > lim.zset_value_bytes_max)
            {
                self.convert_to_tree();
            }
        }
        match &mut self.0 {
            Repr::Packed(p) => {
                let mut count = p.count();
                let mut old = None;
                let found = packed_entries(p.body())
                    .find(|e| e.member == member)
                    .map(|e| (e.start, e.end, e.score));
                if let Some((a, b, s)) = found {
                    if s == score {
                        return Some(score);
                    }
                    old = Some(s);
                    count -= 1;
                    p.splice(a, b, &[], count);
                }
                let at = packed_entries(p.body())
                    .find(|e| key_cmp((e.score, e.member), (score, member)) == Ordering::Greater)
                    .map_or(p.body().len(), |e| e.start);
                let mut e = Vec::with_capacity(member.len() + 10);
                put_str(&mut e, member);
                put_score(&mut e, score);
                p.splice(at, at, &e, count + 1);
                old
            }
            Repr::Tree(t) => t.insert(member, score),
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.0 {
            Repr::Packed(p) => {
                let e = packed_entries(p.body()).find(|e| e.member == member)?;
                let (a, b, s) = (e.start, e.end, e.score);
                p.splice(a, b, &[], p.count() - 1);
                Some(s)
            }
            Repr::Tree(t) => t.remove(member),
        }
    }

    fn packed_vec(p: &Packed) -> Vec<(&[u8], f64)> {
        packed_entries(p.body())
            .map(|e| (e.member, e.score))
            .collect()
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(p) => Iter(IterRepr::Vec(Self::packed_vec(p).into_iter())),
            Repr::Tree(t) => Iter(IterRepr::Tree(t.order.iter())),
        }
    }

    /// Members with score in the given bounds, ascending.
    pub fn range_by_score(&self, min: std::ops::Bound<f64>, max: std::ops::Bound<f64>) -> Iter<'_> {
        use std::ops::Bound::*;
        let t = match &self.0 {
            Repr::Packed(p) => {
                let ok_lo = |s: f64| match min {
                    Included(a) => s >= a,
                    Excluded(a) => s > a,
                    Unbounded => true,
                };
                let ok_hi = |s: f64| match max {
                    Included(a) => s <= a,
                    Excluded(a) => s < a,
                    Unbounded => true,
                };
                let v: Vec<_> = packed_entries(p.body())
                    .filter(|e| ok_lo(e.score) && ok_hi(e.score))
                    .map(|e| (e.member, e.score))
                    .collect();
                return Iter(IterRepr::Vec(v.into_iter()));
            }
            Repr::Tree(t) => t,
        };
        // The index orders (score, member) and the empty member sorts first,
        // so every bound becomes "(score, empty)" on a neighbouring float.
        let key = |s: f64| ZEntry::new(if s == 0.0 { 0.0 } else { s }, b"");
        let lo = match min {
            Included(s) => Some(Included(key(s))),
            // Nothing lies above +inf.
            Excluded(s) if s == f64::INFINITY => None,
            Excluded(s) => Some(Included(key(s.next_up()))),
            Unbounded => Some(Unbounded),
        };
        let hi = match max {
            Included(s) if s == f64::INFINITY => Unbounded,
            Included(s) => Excluded(key(s.next_up())),
            Excluded(s) => Excluded(key(s)),
            Unbounded => Unbounded,
        };
        // `lo` is never Excluded and `hi` never Included: the range is
        // empty when lo >= hi, and BTreeSet::range must not see that.
        let bounds = match (lo, hi) {
            (None, _) => (Included(key(0.0)), Excluded(key(0.0))),
            (Some(Included(a)), Excluded(b)) if a >= b => (Included(key(0.0)), Excluded(key(0.0))),
            (Some(l), h) => (l, h),
        };
        Iter(IterRepr::Range(t.order.range(bounds)))
    }

    /// 0-based rank of `member` in ascending order. Walks from the nearer
    /// end: O(min(rank, len - rank)).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let t = match &self.0 {
            Repr::Packed(p) => return packed_entries(p.body()).position(|e| e.member == member),
            Repr::Tree(t) => t,
        };
        let p = t.find(member)?;
        let key = std::mem::ManuallyDrop::new(ZEntry(p));
        // Count both sides in lockstep; the shorter one ends first.
        let mut below = t.order.range(..&*key);
        let mut above = t.order.range(&*key..);
        let mut n = 0;
        loop {
            if below.next().is_none() {
                return Some(n);
            }
            if above.next().is_none() {
                return Some(self.len() - n);
            }
            n += 1;
        }
    }

    /// Every member with its score, in no particular order (O(1) per step;
    /// SCAN uses it).
    pub fn members(&self) -> Iter<'_> {
        self.iter()
    }

    /// Removes and returns the member with the lowest (score, member).
    pub fn pop_min(&mut self) -> Option<(Bytes, f64)> {
        self.pop(false)
    }

    /// Removes and returns the member with the highest (score, member).
    pub fn pop_max(&mut self) -> Option<(Bytes, f64)> {
        self.pop(true)
    }

    fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        match &mut self.0 {
            Repr::Packed(p) => {
                let e = if max {
                    packed_entries(p.body()).last()
                } else {
                    packed_entries(p.body()).next()
                }?;
                let out = (Bytes::copy_from_slice(e.member), e.score);
                let (a, b) = (e.start, e.end);
                p.splice(a, b, &[], p.count() - 1);
                Some(out)
            }
            Repr::Tree(t) => t.pop(max),
        }
    }

    /// The members of ranks `start..=end` (0-based, `start <= end < len`),
    /// ascending; with `rev`, ranks count from the highest member and the
    /// result is descending. Walks from the nearer end of the index.
    pub fn rank_range(&self, start: usize, end: usize, rev: bool) -> Vec<(&[u8], f64)> {
        let len = self.len();
        if start > end || start >= len {
            return Vec::new();
        }
        let end = end.min(len - 1);
        let n = end - start + 1;
        // Ascending ranks [a, b] of the requested window.
        let (a, b) = if rev {
            (len - 1 - end, len - 1 - start)
        } else {
            (start, end)
        };
        let mut out: Vec<(&[u8], f64)> = if a <= len - 1 - b {
            self.iter().skip(a).take(n).collect()
        } else {
            let mut v: Vec<_> = self.iter().rev().skip(len - 1 - b).take(n).collect();
            v.reverse();
            v
        };
        if rev {
            out.reverse();
        }
        out
    }

    /// Members within the lexicographic bounds, ascending. Meaningful when
    /// every score is equal, as in Redis; then it is an O(log n) seek.
    pub fn range_by_lex<'s>(
        &'s self,
        min: &LexBound,
        max: &LexBound,
    ) -> Box<dyn DoubleEndedIterator<Item = (&'s [u8], f64)> + 's> {
        use std::ops::Bound::*;
        if LexBound::empty_range(min, max) {
            return Box::new(std::iter::empty());
        }
        if let Repr::Tree(t) = &self.0 {
            let (Some(first), Some(last)) = (t.order.first(), t.order.last()) else {
                return Box::new(std::iter::empty());
            };
            let s0 = first.score();
            if s0 == last.score() {
                let lo = match min {
                    LexBound::Incl(m) => Included(ZEntry::new(s0, m)),
                    LexBound::Excl(m) => Excluded(ZEntry::new(s0, m)),
                    _ => Unbounded,
                };
                let hi = match max {
                    LexBound::Incl(m) => Included(ZEntry::new(s0, m)),
                    LexBound::Excl(m) => Excluded(ZEntry::new(s0, m)),
                    _ => Unbounded,
                };
                return Box::new(Iter(IterRepr::Range(t.order.range((lo, hi)))));
            }
        }
        let (min, max) = (min.clone(), max.clone());
        Box::new(
            self.iter()
                .filter(move |(m, _)| min.below_ok(m) && max.above_ok(m)),
        )
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s)),
            )
            .finish()
    }
}

/// One end of a lexicographic range (ZRANGEBYLEX): `-`, `+`, `[x`, `(x`.
#[derive(Debug, Clone, PartialEq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    /// `[x`: inclusive.
    Incl(Bytes),
    /// `(x`: exclusive.
    Excl(Bytes),
}

impl LexBound {
    /// Parses Redis's syntax; None when invalid.
    pub fn parse(s: &[u8]) -> Option<LexBound> {
        match s.first()? {
            b'-' if s.len() == 1 => Some(LexBound::Min),
            b'+' if s.len() == 1 => Some(LexBound::Max),
            b'[' => Some(LexBound::Incl(Bytes::copy_from_slice(&s[1..]))),
            b'(' => Some(LexBound::Excl(Bytes::copy_from_slice(&s[1..]))),
            _ => None,
        }
    }

    /// True when no member can lie between `min` and `max`.
    pub fn empty_range(min: &LexBound, max: &LexBound) -> bool {
        use LexBound::*;
        match (min, max) {
            (Max, _) | (_, Min) => true,
            (Min, _) | (_, Max) => false,
            (Incl(a), Incl(b)) => a > b,
            (Incl(a) | Excl(a), Incl(b) | Excl(b)) => a >= b,
        }
    }

    /// As a lower bound: does `m` satisfy it?
    pub fn below_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => m >= &b[..],
            LexBound::Excl(b) => m > &b[..],
        }
    }

    /// As an upper bound: does `m` satisfy it?
    pub fn above_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound::*;

    const LIM: EncodingLimits = EncodingLimits {
        hash_entries_max: 512,
        hash_value_bytes_max: 64,
        set_intset_entries_max: 512,
        zset_entries_max: 128,
        zset_value_bytes_max: 64,
        list_listpack_size: -2,
        hll_sparse_max_bytes: crate::hll::SPARSE_MAX_BYTES,
        stream_node_max_bytes: 4096,
        stream_node_max_entries: 100,
    };

    fn z(n: usize, large: bool) -> ZSet {
        let mut z = if large {
            ZSet::new_large()
        } else {
            ZSet::new()
        };
        for i in 0..n {
            z.insert(format!("m{i:03}").as_bytes(), (i / 2) as f64, &LIM);
        }
        assert_eq!(z.is_packed(), !large);
        z
    }

    #[test]
    fn ranks_from_both_ends() {
        for large in [false, true] {
            ranks(large);
        }
    }

    fn ranks(large: bool) {
        let z = z(101, large);
        for i in 0..101 {
            assert_eq!(z.rank(format!("m{i:03}").as_bytes()), Some(i));
        }
        assert_eq!(z.rank(b"nope"), None);
        let names = |v: Vec<(&[u8], f64)>| {
            v.into_iter()
                .map(|(m, _)| Bytes::copy_from_slice(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(z.rank_range(0, 1, false)),
            [Bytes::from("m000"), Bytes::from("m001")]
        );
        assert_eq!(
            names(z.rank_range(99, 200, false)),
            [Bytes::from("m099"), Bytes::from("m100")]
        );
        assert_eq!(
            names(z.rank_range(0, 1, true)),
            [Bytes::from("m100"), Bytes::from("m099")]
        );
        assert_eq!(
            names(z.rank_range(99, 100, true)),
            [Bytes::from("m001"), Bytes::from("m000")]
        );
        assert!(z.rank_range(5, 4, false).is_empty());
        assert!(z.rank_range(101, 200, false).is_empty());
    }

    #[test]
    fn score_and_lex_ranges() {
        for large in [false, true] {
            ranges(large);
        }
    }

    fn ranges(large: bool) {
        let mut s = if large {
            ZSet::new_large()
        } else {
            ZSet::new()
        };
        s.insert(b"a", f64::INFINITY, &LIM);
        s.insert(b"b", 1.0, &LIM);
        s.insert(b"c", f64::NEG_INFINITY, &LIM);
        assert_eq!(
            s.range_by_score(Excluded(f64::INFINITY), Unbounded).count(),
            0
        );
        assert_eq!(
            s.range_by_score(Included(f64::INFINITY), Included(f64::INFINITY))
                .count(),
            1
        );
        assert_eq!(
            s.range_by_score(Unbounded, Excluded(f64::NEG_INFINITY))
                .count(),
            0
        );
        assert_eq!(s.range_by_score(Excluded(1.0), Excluded(1.0)).count(), 0);
        assert_eq!(s.range_by_score(Included(1.0), Included(1.0)).count(), 1);
        assert_eq!(s.range_by_score(Included(2.0), Included(1.0)).count(), 0);
        assert_eq!(s.pop_min().map(|p| p.0), Some(Bytes::from("c")));
        assert_eq!(s.pop_max().map(|p| p.0), Some(Bytes::from("a")));
        assert_eq!(s.len(), 1);
        let l = z(1, large);
        let p = |x: &str| LexBound::parse(x.as_bytes()).unwrap();
        assert_eq!(l.range_by_lex(&p("[m000"), &p("[m000")).count(), 1);
        assert_eq!(l.range_by_lex(&p("(m000"), &p("[m000")).count(), 0);
        assert_eq!(l.range_by_lex(&p("+"), &p("-")).count(), 0);
        assert_eq!(l.range_by_lex(&p("-"), &p("+")).count(), 1);
        assert!(LexBound::parse(b"x").is_none());
        assert!(LexBound::parse(b"").is_none());
    }

    /// Random operations agree with a reference map through the
    /// conversion, which happens exactly when Redis's zsetAdd converts.
    #[test]
    fn matches_a_reference_map() {
        use rand::{Rng, SeedableRng};
        use std::collections::HashMap;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..40 {
            let lim = EncodingLimits {
                zset_entries_max: rng.gen_range(0..40),
                zset_value_bytes_max: rng.gen_range(2..10),
                ..LIM
            };
            let mut z = ZSet::new();
            let mut r: HashMap<Vec<u8>, f64> = HashMap::new();
            let mut packed = true;
            for _ in 0..300 {
                let far = rng.gen_range(0..2) * 100000;
                let m = format!("m{}", rng.gen_range(0..60 + far)).into_bytes();
                match rng.gen_range(0..10) {
                    0..=2 => assert_eq!(z.remove(&m), r.remove(&m)),
                    3 => {
                        let want = r
                            .iter()
                            .min_by(|a, b| key_cmp((*a.1, a.0), (*b.1, b.0)))
                            .map(|(m, s)| (Bytes::from(m.clone()), *s));
                        if let Some((m, _)) = &want {
                            r.remove(&m[..]);
                        }
                        assert_eq!(z.pop_min(), want);
                    }
                    _ => {
                        let s = match rng.gen_range(0..4) {
                            0 => rng.gen_range(-5..5) as f64,
                            1 => rng.gen_range(-1e6..1e6),
                            2 => rng.gen_range(-100000..100000) as f64,
                            _ => f64::NEG_INFINITY,
                        };
                        if !r.contains_key(&m) {
                            packed &= r.len() < lim.zset_entries_max
                                && m.len() <= lim.zset_value_bytes_max;
                        }
                        assert_eq!(z.insert(&m, s, &lim), r.insert(m.clone(), s));
                    }
                }
                assert_eq!(z.is_packed(), packed);
                assert_eq!(z.len(), r.len());
                let mut want: Vec<(&[u8], f64)> = r.iter().map(|(m, s)| (&m[..], *s)).collect();
                want.sort_by(|a, b| key_cmp((a.1, a.0), (b.1, b.0)));
                assert_eq!(z.iter().collect::<Vec<_>>(), want);
                assert_eq!(z.iter().rev().count(), want.len());
                for (i, (m, s)) in want.iter().enumerate() {
                    assert_eq!(z.score(m), Some(*s));
                    assert_eq!(z.rank(m), Some(i));
                }
                let lo = rng.gen_range(-6.0..6.0);
                let n = z.range_by_score(Included(lo), Excluded(lo + 3.0)).count();
                assert_eq!(
                    n,
                    want.iter()
                        .filter(|(_, s)| *s >= lo && *s < lo + 3.0)
                        .count()
                );
            }
            let mut c = z.clone();
            assert_eq!(c, z);
            c.fit(&lim);
            assert_eq!(c, z);
        }
    }
}
