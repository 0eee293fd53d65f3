//! A hash's fields and values: packed (Redis's `listpack`: insertion
//! order, linear scan) while small, a hash table (`hashtable`) past
//! `hash-max-listpack-entries` / `-value`, converted exactly when Redis
//! 7.0 converts and never back.

use crate::packed::{get_len, get_str, hash_of, put_len, put_str, Hasher, Packed};
use crate::value::EncodingLimits;
use hashbrown::HashTable;

/// A hash value.
#[derive(Clone)]
pub enum HashVal {
    /// Entries `[len field][len value]`, in insertion order.
    Packed(Packed),
    /// One allocation per field: `[len field][field][value]`.
    Table(Box<Table>),
}

#[derive(Clone, Default)]
pub struct Table {
    t: HashTable<Box<[u8]>>,
    hasher: Hasher,
}

fn split(e: &[u8]) -> (&[u8], &[u8]) {
    let (n, p) = get_len(e, 0);
    (&e[p..p + n], &e[p + n..])
}

fn entry(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(field.len() + value.len() + 2);
    put_len(&mut v, field.len());
    v.extend_from_slice(field);
    v.extend_from_slice(value);
    v.into_boxed_slice()
}

impl Table {
    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let h = hash_of(&self.hasher, field);
        self.t.find(h, |e| split(e).0 == field).map(|e| split(e).1)
    }

    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let h = hash_of(&self.hasher, field);
        let hasher = &self.hasher;
        match self
            .t
            .entry(h, |e| split(e).0 == field, |e| hash_of(hasher, split(e).0))
        {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                *o.get_mut() = entry(field, value);
                false
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(entry(field, value));
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        let h = hash_of(&self.hasher, field);
        match self.t.find_entry(h, |e| split(e).0 == field) {
            Ok(o) => {
                o.remove();
                true
            }
            Err(_) => false,
        }
    }
}

impl Default for HashVal {
    fn default() -> Self {
        HashVal::Packed(Packed::default())
    }
}

/// Position of `field`'s entry in a packed body: (start, value start, end).
fn find_packed(body: &[u8], field: &[u8]) -> Option<(usize, usize, usize)> {
    let mut pos = 0;
    while pos < body.len() {
        let (f, vp) = get_str(body, pos);
        let (_, end) = get_str(body, vp);
        if f == field {
            return Some((pos, vp, end));
        }
        pos = end;
    }
    None
}

/// Fields and values of a hash.
pub enum Iter<'a> {
    Packed(&'a [u8], usize),
    Table(hashbrown::hash_table::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(body, pos) => {
                if *pos >= body.len() {
                    return None;
                }
                let (f, p) = get_str(body, *pos);
                let (v, p) = get_str(body, p);
                *pos = p;
                Some((f, v))
            }
            Iter::Table(it) => it.next().map(|e| split(e)),
        }
    }
}

impl HashVal {
    /// Bytes of its allocations (the box excluded), sampling `samples`
    /// fields of a table (0: all).
    pub fn mem_bytes(&self, samples: usize) -> usize {
        use crate::memsize::{malloc_size, sampled, table_size};
        match self {
            HashVal::Packed(p) => p.mem_bytes(),
            HashVal::Table(t) => {
                malloc_size(std::mem::size_of::<Table>())
                    + table_size(t.t.capacity())
                    + sampled(t.t.len(), samples, t.t.iter().map(|e| malloc_size(e.len())))
            }
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            HashVal::Packed(p) => p.count(),
            HashVal::Table(t) => t.t.len(),
        }
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while packed (Redis's `listpack`).
    pub fn is_packed(&self) -> bool {
        matches!(self, HashVal::Packed(_))
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashVal::Packed(p) => {
                let body = p.body();
                find_packed(body, field).map(|(_, vp, _)| get_str(body, vp).0)
            }
            HashVal::Table(t) => t.get(field),
        }
    }

    /// True when `field` exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert_to_table(&mut self) {
        if let HashVal::Packed(p) = self {
            let mut t = Table::default();
            t.t.reserve(p.count(), |e| hash_of(&t.hasher, split(e).0));
            for (f, v) in (Iter::Packed(p.body(), 0)).collect::<Vec<_>>() {
                t.set(f, v);
            }
            *self = HashVal::Table(Box::new(t));
        }
    }

    /// Sets `field` to `value`; true when the field is new. Converts to a
    /// table when Redis's `hashTypeSet` would: a field or value longer
    /// than `hash-max-listpack-value`, or more than
    /// `hash-max-listpack-entries` fields afterwards.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: &EncodingLimits) -> bool {
        if self.is_packed()
            && (field.len() > lim.hash_value_bytes_max || value.len() > lim.hash_value_bytes_max)
        {
            self.convert_to_table();
        }
        let new = match self {
            HashVal::Packed(p) => {
                let mut e = Vec::with_capacity(value.len() + 2);
                match find_packed(p.body(), field) {
                    Some((_, vp, end)) => {
                        put_str(&mut e, value);
                        p.splice(vp, end, &e, p.count());
                        false
                    }
                    None => {
                        put_str(&mut e, field);
                        put_str(&mut e, value);
                        p.push(&e);
                        true
                    }
                }
            }
            HashVal::Table(t) => t.set(field, value),
        };
        if self.len() > lim.hash_entries_max {
            self.convert_to_table();
        }
        new
    }

    /// Removes `field`; true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashVal::Packed(p) => match find_packed(p.body(), field) {
                Some((start, _, end)) => {
                    p.splice(start, end, &[], p.count() - 1);
                    true
                }
                None => false,
            },
            HashVal::Table(t) => t.remove(field),
        }
    }

    /// Fields and values: insertion order while packed.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            HashVal::Packed(p) => Iter::Packed(p.body(), 0),
            HashVal::Table(t) => Iter::Table(t.t.iter()),
        }
    }

    /// The hash of `field` under the table's hasher (stable while the
    /// value lives; HSCAN's cursor), None while packed.
    pub fn scan_hash(&self, field: &[u8]) -> Option<u64> {
        match self {
            HashVal::Packed(_) => None,
            HashVal::Table(t) => Some(hash_of(&t.hasher, field)),
        }
    }
}

impl PartialEq for HashVal {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl std::fmt::Debug for HashVal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    /// Random operations agree with a std map, through the conversion.
    #[test]
    fn matches_a_reference_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..40 {
            let lim = EncodingLimits {
                hash_entries_max: rng.gen_range(0..40),
                hash_value_bytes_max: rng.gen_range(0..20),
                ..EncodingLimits::default()
            };
            let mut h = HashVal::default();
            let mut r: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut must_table = false;
            for _ in 0..300 {
                let f = format!("f{}", rng.gen_range(0..60)).into_bytes();
                if rng.gen_bool(0.3) {
                    assert_eq!(h.remove(&f), r.remove(&f).is_some());
                    order.retain(|x| *x != f);
                } else {
                    let v = vec![b'v'; rng.gen_range(0..24)];
                    must_table |=
                        f.len() > lim.hash_value_bytes_max || v.len() > lim.hash_value_bytes_max;
                    let new = r.insert(f.clone(), v.clone()).is_none();
                    if new {
                        order.push(f.clone());
                    }
                    must_table |= r.len() > lim.hash_entries_max;
                    assert_eq!(h.set(&f, &v, &lim), new);
                }
                assert_eq!(h.len(), r.len());
                assert_eq!(h.is_packed(), !must_table, "round {round}");
                for (f, v) in &r {
                    assert_eq!(h.get(f), Some(&v[..]));
                }
                if h.is_packed() {
                    let got: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
                    assert_eq!(got, order.iter().map(|x| &x[..]).collect::<Vec<_>>());
                }
            }
            assert_eq!(h.iter().count(), r.len());
        }
    }
}
