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
        // The index orders (score, member) and the empty member sorts first,
        // so every bound becomes "(score, empty)" on a neighbouring float.
        let key = |s: f64| (Score(if s == 0.0 { 0.0 } else { s }), Bytes::new());
        let lo = match min {
            Included(s) => Included(key(s)),
            Excluded(s) if s == f64::INFINITY => Excluded(key(s)),
            Excluded(s) => Included(key(s.next_up())),
            Unbounded => Unbounded,
        };
        let hi = match max {
            Included(s) if s == f64::INFINITY => Unbounded,
            Included(s) => Excluded(key(s.next_up())),
            Excluded(s) => Excluded(key(s)),
            Unbounded => Unbounded,
        };
        let empty = match (&lo, &hi) {
            (Included(a) | Excluded(a), Included(b) | Excluded(b)) => {
                a > b || (a == b && !matches!((&lo, &hi), (Included(_), Included(_))))
            }
            _ => false,
        };
        let range = if empty {
            self.order.range((Included(key(0.0)), Excluded(key(0.0))))
        } else {
            self.order.range((lo, hi))
        };
        range.map(|(s, m)| (m, s.0))
    }

    /// 0-based rank of `member` in ascending order. O(rank).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        Some(
            self.order
                .range(..(Score(s), Bytes::copy_from_slice(member)))
                .count(),
        )
    }
}

