//! Sorted set: member → score plus an ordered index of (score, member).

use bytes::Bytes;
use hashbrown::HashMap;
use std::cmp::Ordering;
use std::collections::BTreeSet;

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    scores: HashMap<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        // -0.0 and 0.0 compare equal in Redis; store one of them.
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.clone(), score);
        if let Some(o) = old {
            self.order.remove(&(Score(o), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.order.remove(&(Score(s), m));
        Some(s)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Members with score in the given bounds, ascending.
    pub fn range_by_score(
        &self,
        min: std::ops::Bound<f64>,
        max: std::ops::Bound<f64>,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        use std::ops::Bound::*;
        fn flip(e: &(Score, Bytes)) -> (&Bytes, f64) {
            (&e.1, e.0 .0)
        }
        // The index orders (score, member) and the empty member sorts first,
        // so every bound becomes "(score, empty)" on a neighbouring float.
        let key = |s: f64| (Score(if s == 0.0 { 0.0 } else { s }), Bytes::new());
        let nothing = (Included(key(0.0)), Excluded(key(0.0)));
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
            (None, _) => nothing,
            (Some(Included(a)), Excluded(b)) if a >= b => nothing,
            (Some(l), h) => (l, h),
        };
        self.order
            .range(bounds)
            .map(flip as fn(&(Score, Bytes)) -> (&Bytes, f64))
    }

    /// 0-based rank of `member` in ascending order. Walks from the nearer
    /// end: O(min(rank, len - rank)).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        let key = (Score(s), Bytes::copy_from_slice(member));
        // Count both sides in lockstep; the shorter one ends first.
        let mut below = self.order.range(..&key);
        let mut above = self.order.range(&key..);
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
    pub fn members(&self) -> impl ExactSizeIterator<Item = (&Bytes, f64)> {
        self.scores.iter().map(|(m, s)| (m, *s))
    }

    /// Removes and returns the member with the lowest (score, member).
    pub fn pop_min(&mut self) -> Option<(Bytes, f64)> {
        let (s, m) = self.order.pop_first()?;
        self.scores.remove(&m);
        Some((m, s.0))
    }

    /// Removes and returns the member with the highest (score, member).
    pub fn pop_max(&mut self) -> Option<(Bytes, f64)> {
        let (s, m) = self.order.pop_last()?;
        self.scores.remove(&m);
        Some((m, s.0))
    }

    /// The members of ranks `start..=end` (0-based, `start <= end < len`),
    /// ascending; with `rev`, ranks count from the highest member and the
    /// result is descending. Walks from the nearer end of the index.
    pub fn rank_range(&self, start: usize, end: usize, rev: bool) -> Vec<(&Bytes, f64)> {
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
        let mut out: Vec<(&Bytes, f64)> = if a <= len - 1 - b {
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
    ) -> Box<dyn DoubleEndedIterator<Item = (&'s Bytes, f64)> + 's> {
        use std::ops::Bound::*;
        if LexBound::empty_range(min, max) {
            return Box::new(std::iter::empty());
        }
        let (Some(first), Some(last)) = (self.order.first(), self.order.last()) else {
            return Box::new(std::iter::empty());
        };
        if first.0 == last.0 {
            let s0 = first.0;
            let lo = match min {
                LexBound::Incl(m) => Included((s0, m.clone())),
                LexBound::Excl(m) => Excluded((s0, m.clone())),
                _ => Unbounded,
            };
            let hi = match max {
                LexBound::Incl(m) => Included((s0, m.clone())),
                LexBound::Excl(m) => Excluded((s0, m.clone())),
                _ => Unbounded,
            };
            return Box::new(self.order.range((lo, hi)).map(|(s, m)| (m, s.0)));
        }
        let (min, max) = (min.clone(), max.clone());
        Box::new(
            self.iter()
                .filter(move |(m, _)| min.below_ok(m) && max.above_ok(m)),
        )
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

    fn z(n: usize) -> ZSet {
        let mut z = ZSet::new();
        for i in 0..n {
            z.insert(Bytes::from(format!("m{i:03}")), (i / 2) as f64);
        }
        z
    }

    #[test]
    fn ranks_from_both_ends() {
        let z = z(101);
        for i in 0..101 {
            assert_eq!(z.rank(format!("m{i:03}").as_bytes()), Some(i));
        }
        assert_eq!(z.rank(b"nope"), None);
        let names =
            |v: Vec<(&Bytes, f64)>| v.into_iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
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
        let mut s = ZSet::new();
        s.insert(Bytes::from("a"), f64::INFINITY);
        s.insert(Bytes::from("b"), 1.0);
        s.insert(Bytes::from("c"), f64::NEG_INFINITY);
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
        let l = z(1);
        let p = |x: &str| LexBound::parse(x.as_bytes()).unwrap();
        assert_eq!(l.range_by_lex(&p("[m000"), &p("[m000")).count(), 1);
        assert_eq!(l.range_by_lex(&p("(m000"), &p("[m000")).count(), 0);
        assert_eq!(l.range_by_lex(&p("+"), &p("-")).count(), 0);
        assert_eq!(l.range_by_lex(&p("-"), &p("+")).count(), 1);
        assert!(LexBound::parse(b"x").is_none());
        assert!(LexBound::parse(b"").is_none());
    }
}
