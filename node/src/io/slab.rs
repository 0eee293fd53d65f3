//! A vector of slots with a free list and generations, so a stale handle
//! (an io_uring completion for a closed connection, a reply for a finished
//! task) is recognised instead of hitting whoever reused the slot.

/// A handle: slot index plus the generation it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub index: u32,
    pub gen: u32,
}

/// Slots holding `T`s.
pub struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; returns its handle.
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.0 = slot.0.wrapping_add(1);
            slot.1 = Some(value);
            return Key { index, gen: slot.0 };
        }
        self.slots.push((0, Some(value)));
        Key {
            index: (self.slots.len() - 1) as u32,
            gen: 0,
        }
    }

    /// The value behind `key`, if it is still the one the key was issued for.
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some((g, Some(v))) if *g == key.gen => Some(v),
            _ => None,
        }
    }

    /// Mutable access, as [`Slab::get`].
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some((g, Some(v))) if *g == key.gen => Some(v),
            _ => None,
        }
    }

    /// Removes and returns the value behind `key`.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        match self.slots.get_mut(key.index as usize) {
            Some((g, v @ Some(_))) if *g == key.gen => {
                self.free.push(key.index);
                self.len -= 1;
                v.take()
            }
            _ => None,
        }
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Handles of all stored values.
    pub fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_some())
            .map(|(i, (g, _))| Key {
                index: i as u32,
                gen: *g,
            })
            .collect()
    }

    /// All stored values.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss() {
        let mut s = Slab::default();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(a.index, b.index);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys(), vec![b]);
    }
}
