//! A set's members in one of three forms: an intset (Redis's `intset`:
//! sorted integers) while every member is an integer and there are at most
//! `set-max-intset-entries`, packed strings while small (slotd's own form;
//! Redis 7.0 keeps these in a `hashtable`, which is what OBJECT ENCODING
//! says), else a hash table. Conversions happen when Redis 7.0's would and
//! never go back.

use crate::packed::{get_str, hash_of, put_str, Hasher, IntSet, IntText, Packed, Strs};
use crate::resp::parse_i64;
use crate::value::EncodingLimits;
use hashbrown::HashTable;

/// Most members a packed string set holds.
pub const PACKED_ENTRIES_MAX: usize = 128;
/// Longest member a packed string set holds.
pub const PACKED_VALUE_MAX: usize = 64;

/// A set value.
#[derive(Clone)]
pub enum SetVal {
    Ints(IntSet),
    Packed(Packed),
    Table(Box<Table>),
}

#[derive(Clone, Default)]
pub struct Table {
    t: HashTable<Box<[u8]>>,
    hasher: Hasher,
}

impl Table {
    fn contains(&self, m: &[u8]) -> bool {
        self.t
            .find(hash_of(&self.hasher, m), |e| &e[..] == m)
            .is_some()
    }

    fn insert(&mut self, m: &[u8]) -> bool {
        let hasher = &self.hasher;
        match self
            .t
            .entry(hash_of(hasher, m), |e| &e[..] == m, |e| hash_of(hasher, e))
        {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(m.into());
                true
            }
        }
    }

    fn remove(&mut self, m: &[u8]) -> bool {
        match self.t.find_entry(hash_of(&self.hasher, m), |e| &e[..] == m) {
            Ok(o) => {
                o.remove();
                true
            }
            Err(_) => false,
        }
    }
}

/// A member as bytes: borrowed, or an intset member's text.
pub enum Member<'a> {
    Int(IntText),
    Ref(&'a [u8]),
}

impl std::ops::Deref for Member<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Member::Int(t) => t,
            Member::Ref(r) => r,
        }
    }
}

/// The members of a set.
pub enum Iter<'a> {
    Ints(&'a IntSet, std::ops::Range<usize>),
    Packed(Strs<'a>),
    Table(hashbrown::hash_table::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            Iter::Ints(s, r) => r.next().map(|i| Member::Int(IntText::new(s.get(i)))),
            Iter::Packed(it) => it.next().map(|(_, m)| Member::Ref(m)),
            Iter::Table(it) => it.next().map(|m| Member::Ref(m)),
        }
    }
}

fn find_packed(p: &Packed, m: &[u8]) -> Option<(usize, usize)> {
    Strs::new(p.body())
        .find(|(_, x)| *x == m)
        .map(|(at, _)| (at, get_str(p.body(), at).1))
}

fn fits_packed(m: &[u8]) -> bool {
    m.len() <= PACKED_VALUE_MAX
}

impl SetVal {
    /// Bytes of its allocations (the box excluded), sampling `samples`
    /// members of a table (0: all).
    pub fn mem_bytes(&self, samples: usize) -> usize {
        use crate::memsize::{malloc_size, sampled, table_size};
        match self {
            SetVal::Ints(i) => i.mem_bytes(),
            SetVal::Packed(p) => p.mem_bytes(),
            SetVal::Table(t) => {
                malloc_size(std::mem::size_of::<Table>())
                    + table_size(t.t.capacity())
                    + sampled(t.t.len(), samples, t.t.iter().map(|e| malloc_size(e.len())))
            }
        }
    }

    /// An empty set in the form Redis's `setTypeCreate(first)` picks.
    pub fn for_first(first: &[u8]) -> SetVal {
        if parse_i64(first).is_some() {
            SetVal::Ints(IntSet::default())
        } else {
            SetVal::Packed(Packed::default())
        }
    }

    /// A set of `members` (distinct or not) in the form Redis 7.0 ends up
    /// with when it adds them one by one to a new set.
    pub fn from_members<'m>(
        members: impl IntoIterator<Item = &'m [u8]>,
        lim: &EncodingLimits,
    ) -> SetVal {
        let mut s: Option<SetVal> = None;
        for m in members {
            s.get_or_insert_with(|| SetVal::for_first(m)).insert(m, lim);
        }
        s.unwrap_or_else(|| SetVal::Packed(Packed::default()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            SetVal::Ints(s) => s.len(),
            SetVal::Packed(p) => p.count(),
            SetVal::Table(t) => t.t.len(),
        }
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name Redis 7.0 gives the encoding.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            SetVal::Ints(_) => "intset",
            _ => "hashtable",
        }
    }

    /// True when `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            SetVal::Ints(s) => parse_i64(m).is_some_and(|v| s.contains(v)),
            SetVal::Packed(p) => find_packed(p, m).is_some(),
            SetVal::Table(t) => t.contains(m),
        }
    }

    /// Leaves the intset (or packed) form for one that can hold `len`
    /// members, the longest `longest` bytes.
    fn widen(&mut self, len: usize, longest: usize) {
        let packed_ok = len <= PACKED_ENTRIES_MAX && longest <= PACKED_VALUE_MAX;
        let next = match self {
            SetVal::Ints(s) if packed_ok => {
                let mut body = Vec::new();
                for v in s.iter() {
                    put_str(&mut body, &IntText::new(v));
                }
                SetVal::Packed(Packed::from_body(&body, s.len()))
            }
            SetVal::Table(_) => return,
            SetVal::Packed(_) if packed_ok => return,
            _ => {
                let mut t = Table::default();
                t.t.reserve(self.len(), |e| hash_of(&t.hasher, e));
                for m in self.iter() {
                    t.insert(&m);
                }
                SetVal::Table(Box::new(t))
            }
        };
        *self = next;
    }

    /// Adds `m`; false when already a member.
    pub fn insert(&mut self, m: &[u8], lim: &EncodingLimits) -> bool {
        if let SetVal::Ints(s) = self {
            match parse_i64(m) {
                Some(v) => {
                    if !s.insert(v) {
                        return false;
                    }
                    let n = s.len();
                    if n > lim.set_intset_entries_max.min(1 << 30) {
                        self.widen(n, 20);
                    }
                    return true;
                }
                None => self.widen(self.len() + 1, m.len().max(20)),
            }
        }
        if let SetVal::Packed(p) = self {
            if find_packed(p, m).is_some() {
                return false;
            }
            if fits_packed(m) && p.count() < PACKED_ENTRIES_MAX {
                let mut e = Vec::with_capacity(m.len() + 1);
                put_str(&mut e, m);
                p.push(&e);
                return true;
            }
            self.widen(usize::MAX, usize::MAX);
        }
        match self {
            SetVal::Table(t) => t.insert(m),
            _ => unreachable!("widened to a table above"),
        }
    }

    /// Removes `m`; false when not a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            SetVal::Ints(s) => parse_i64(m).is_some_and(|v| s.remove(v)),
            SetVal::Packed(p) => match find_packed(p, m) {
                Some((a, b)) => {
                    p.splice(a, b, &[], p.count() - 1);
                    true
                }
                None => false,
            },
            SetVal::Table(t) => t.remove(m),
        }
    }

    /// The members: ascending for an intset, else in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            SetVal::Ints(s) => Iter::Ints(s, 0..s.len()),
            SetVal::Packed(p) => Iter::Packed(Strs::new(p.body())),
            SetVal::Table(t) => Iter::Table(t.t.iter()),
        }
    }
}

impl PartialEq for SetVal {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(&m))
    }
}

impl std::fmt::Debug for SetVal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(
                self.iter()
                    .map(|m| String::from_utf8_lossy(&m).into_owned()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;

    fn form(s: &SetVal) -> u8 {
        match s {
            SetVal::Ints(_) => 0,
            SetVal::Packed(_) => 1,
            SetVal::Table(_) => 2,
        }
    }

    /// Random operations agree with a std set; forms only move forward and
    /// match Redis's rules.
    #[test]
    fn matches_a_reference_set() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..60 {
            let lim = EncodingLimits {
                set_intset_entries_max: rng.gen_range(0..200),
                ..EncodingLimits::default()
            };
            let strings = rng.gen_bool(0.5);
            let mut s: Option<SetVal> = None;
            let mut r: HashSet<Vec<u8>> = HashSet::new();
            let mut was_ints = true;
            for _ in 0..400 {
                let m = if strings && rng.gen_bool(0.05) {
                    vec![b'x'; rng.gen_range(1..80)]
                } else {
                    rng.gen_range(-300i64..300).to_string().into_bytes()
                };
                let del = rng.gen_bool(0.3);
                if del && s.is_none() {
                    continue;
                }
                let set = s.get_or_insert_with(|| SetVal::for_first(&m));
                let before = form(set);
                if del {
                    assert_eq!(set.remove(&m), r.remove(&m));
                } else {
                    assert_eq!(set.insert(&m, &lim), r.insert(m.clone()));
                    let all_int = r.iter().all(|x| parse_i64(x).is_some());
                    was_ints &= all_int && r.len() <= lim.set_intset_entries_max;
                }
                assert!(form(set) >= before);
                assert_eq!(form(set) == 0, was_ints);
                assert_eq!(set.len(), r.len());
                for x in &r {
                    assert!(set.contains(x));
                }
                let got: HashSet<Vec<u8>> = set.iter().map(|m| m.to_vec()).collect();
                assert_eq!(got, r);
            }
        }
    }
}
