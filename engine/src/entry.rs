//! A key's entry: one allocation holding the value, the key's metadata,
//! the TTL (only for keys that have one) and the key's bytes.
//!
//! ```text
//! [ value: Value | meta: u32 | lru: u32 ][ expire_at_ms: i64 | vidx: u32 ]?[ key len: u64 ]?[ key bytes ]
//!   header (Entry, 8-aligned)                   only with a TTL                  only for keys ≥ 1 GiB
//! ```
//!
//! A key without a TTL pays the header and its bytes, nothing else: with
//! a 16-byte `Value`, a 16-byte key fits mimalloc's 40-byte class. The
//! dictionary holds one pointer per entry ([`crate::dict`]), so an entry
//! never moves while it is in the table, except when a TTL is added or
//! removed (the entry is reallocated with or without its TTL part and the
//! table's pointer replaced).

use crate::value::Value;
use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// `meta` bit set for strings Redis would report as `raw` (changed in
/// place by APPEND, SETRANGE, SETBIT, ...).
const RAW_BIT: u32 = 1 << 31;
/// `meta` bit set when the entry has its TTL part.
const TTL_BIT: u32 = 1 << 30;
/// The rest of `meta` is the key's length; this value means the length
/// is stored as a `u64` in front of the key's bytes instead.
const KLEN_BIG: u32 = TTL_BIT - 1;

/// A key's value and metadata, at the start of its allocation.
#[repr(C)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// `RAW_BIT`, `TTL_BIT` and the key's length.
    meta: u32,
    /// Last access in Unix seconds (OBJECT IDLETIME, LRU eviction), or
    /// under an LFU policy the access frequency (see [`crate::evict`]).
    pub lru: u32,
}

const HEADER: usize = std::mem::size_of::<Entry>();
const TTL_PART: usize = 12;
const _: () = assert!(HEADER.is_multiple_of(8));

impl Entry {
    fn base(&self) -> *const u8 {
        self as *const Entry as *const u8
    }

    fn has_ttl(&self) -> bool {
        self.meta & TTL_BIT != 0
    }

    fn key_offset(&self) -> usize {
        HEADER + if self.has_ttl() { TTL_PART } else { 0 }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        let off = self.key_offset();
        let field = self.meta & KLEN_BIG;
        // SAFETY: the allocation was laid out by `Node::alloc` from these
        // same `meta` bits: the length (inline or as a u64 in front of the
        // bytes) and then exactly that many key bytes.
        unsafe {
            if field == KLEN_BIG {
                let len = std::ptr::read_unaligned(self.base().add(off) as *const u64) as usize;
                std::slice::from_raw_parts(self.base().add(off + 8), len)
            } else {
                std::slice::from_raw_parts(self.base().add(off), field as usize)
            }
        }
    }

    /// Absolute expiry in Unix milliseconds, if the key has a TTL.
    pub fn expire_at(&self) -> Option<i64> {
        // SAFETY: the TTL part exists when TTL_BIT is set; it starts at an
        // 8-aligned offset of an 8-aligned allocation.
        self.has_ttl()
            .then(|| unsafe { *(self.base().add(HEADER) as *const i64) })
    }

    /// True when the key's TTL has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at().is_some_and(|at| at <= now_ms)
    }

    /// Changes the expiry of an entry that has a TTL part.
    pub(crate) fn set_expire_at(&mut self, at_ms: i64) {
        assert!(self.has_ttl());
        // SAFETY: as in `expire_at`; `&mut self` covers the allocation.
        unsafe { *(self as *mut Entry as *mut u8).add(HEADER).cast::<i64>() = at_ms }
    }

    /// The entry's position in its database's list of keys with a TTL.
    pub(crate) fn vidx(&self) -> Option<u32> {
        // SAFETY: as in `expire_at`, 4-aligned after the i64.
        self.has_ttl()
            .then(|| unsafe { *(self.base().add(HEADER + 8) as *const u32) })
    }

    pub(crate) fn set_vidx(&mut self, i: u32) {
        assert!(self.has_ttl());
        // SAFETY: as in `vidx`.
        unsafe {
            *(self as *mut Entry as *mut u8)
                .add(HEADER + 8)
                .cast::<u32>() = i
        }
    }

    /// Marks a string changed in place: OBJECT ENCODING then says `raw`,
    /// as Redis does once it has unshared a string to modify it.
    pub fn set_raw(&mut self) {
        self.meta |= RAW_BIT;
    }

    pub(crate) fn clear_raw(&mut self) {
        self.meta &= !RAW_BIT;
    }

    /// The encoding Redis 7.0 would report for this entry's value.
    pub fn encoding_name(&self, lim: &crate::value::EncodingLimits) -> &'static str {
        match self.value {
            Value::Str(_) if self.meta & RAW_BIT != 0 => "raw",
            _ => self.value.encoding_name(lim),
        }
    }

    /// Bytes of the allocation (what the allocator is asked for).
    pub fn alloc_size(&self) -> usize {
        let klen = self.key().len();
        self.key_offset()
            + klen
            + if self.meta & KLEN_BIG == KLEN_BIG {
                8
            } else {
                0
            }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value)
            .field("expire_at", &self.expire_at())
            .finish()
    }
}

/// An entry that owns its allocation: what the dictionary stores (as a
/// pointer) and what a removal hands back.
pub struct Node(NonNull<Entry>);

// SAFETY: a `Node` owns its allocation exclusively; the value in it is
// `Send`.
unsafe impl Send for Node {}

impl Node {
    /// A new entry for `key` holding `value`, with a TTL part when `ttl`
    /// is given (its list position is set by the database).
    pub fn new(key: &[u8], value: Value, lru: u32, ttl: Option<i64>) -> Node {
        let node = Node::alloc(key, ttl.is_some(), 0);
        // SAFETY: `alloc` returned an uninitialised header and TTL part;
        // they are written here before any read.
        unsafe {
            std::ptr::write(&mut (*node.0.as_ptr()).value, value);
            (*node.0.as_ptr()).lru = lru;
        }
        let mut node = node;
        if let Some(at) = ttl {
            node.set_expire_at(at);
            node.set_vidx(u32::MAX);
        }
        node
    }

    fn layout(key_len: usize, ttl: bool) -> Layout {
        let big = key_len >= KLEN_BIG as usize;
        let size = HEADER + if ttl { TTL_PART } else { 0 } + if big { 8 } else { 0 } + key_len;
        Layout::from_size_align(size, 8).expect("entry layout")
    }

    /// Allocates an entry for `key` and writes `meta` (with `extra` bits)
    /// and the key; the value, access time and TTL part are the caller's.
    fn alloc(key: &[u8], ttl: bool, extra: u32) -> Node {
        let layout = Node::layout(key.len(), ttl);
        // SAFETY: the layout has a non-zero size (the header).
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p as *mut Entry) else {
            std::alloc::handle_alloc_error(layout)
        };
        let big = key.len() >= KLEN_BIG as usize;
        let meta =
            extra | if ttl { TTL_BIT } else { 0 } | if big { KLEN_BIG } else { key.len() as u32 };
        // SAFETY: `p` is a fresh allocation of `layout`, large enough for
        // the header, the TTL part, the length and the key.
        unsafe {
            std::ptr::addr_of_mut!((*p.as_ptr()).meta).write(meta);
            let mut off = HEADER + if ttl { TTL_PART } else { 0 };
            let base = p.as_ptr() as *mut u8;
            if big {
                std::ptr::write_unaligned(base.add(off) as *mut u64, key.len() as u64);
                off += 8;
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), base.add(off), key.len());
        }
        Node(p)
    }

    /// The same entry with a TTL part (`ttl`) or without one: a new
    /// allocation when that changes, the value moved, not copied.
    pub(crate) fn with_ttl(self, ttl: bool) -> Node {
        if self.has_ttl() == ttl {
            return self;
        }
        let keep = self.meta & RAW_BIT;
        let new = Node::alloc(self.key(), ttl, keep);
        let old = std::mem::ManuallyDrop::new(self);
        // SAFETY: the value is moved bitwise into the new header and the
        // old allocation freed without dropping it.
        unsafe {
            let src = old.0.as_ptr();
            let dst = new.0.as_ptr();
            std::ptr::write(&mut (*dst).value, std::ptr::read(&(*src).value));
            (*dst).lru = (*src).lru;
            dealloc(
                src as *mut u8,
                Node::layout((*src).key().len(), (*src).has_ttl()),
            );
        }
        let mut new = new;
        if ttl {
            new.set_expire_at(i64::MAX);
            new.set_vidx(u32::MAX);
        }
        new
    }

    /// The value, freeing the rest of the entry.
    pub fn into_value(self) -> Value {
        let node = std::mem::ManuallyDrop::new(self);
        // SAFETY: the value is read out once and the allocation freed
        // without dropping it again.
        unsafe {
            let p = node.0.as_ptr();
            let v = std::ptr::read(&(*p).value);
            dealloc(p as *mut u8, Node::layout((*p).key().len(), (*p).has_ttl()));
            v
        }
    }

    /// The raw pointer the dictionary stores; ownership goes with it.
    pub(crate) fn into_raw(self) -> NonNull<Entry> {
        std::mem::ManuallyDrop::new(self).0
    }

    /// Takes back ownership of a pointer from [`Node::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and is not owned by anything else.
    pub(crate) unsafe fn from_raw(p: NonNull<Entry>) -> Node {
        Node(p)
    }
}

impl std::ops::Deref for Node {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        // SAFETY: the node owns a live, initialised entry.
        unsafe { self.0.as_ref() }
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Entry {
        // SAFETY: as in `deref`, and `&mut self` makes it exclusive.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let layout = Node::layout(self.key().len(), self.has_ttl());
        // SAFETY: the node owns the entry; the value is dropped once and
        // the allocation freed with the layout it was made with.
        unsafe {
            std::ptr::drop_in_place(&mut (*self.0.as_ptr()).value);
            dealloc(self.0.as_ptr() as *mut u8, layout);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::StrData;

    fn s(v: &[u8]) -> Value {
        Value::Str(StrData::copy_from_slice(v))
    }

    #[test]
    fn keys_values_and_ttls_round_trip() {
        for klen in [0usize, 1, 16, 300, 70_000] {
            let key: Vec<u8> = (0..klen).map(|i| (i * 7) as u8).collect();
            let mut n = Node::new(&key, s(b"value"), 9, None);
            assert_eq!(n.key(), &key[..]);
            assert_eq!(n.expire_at(), None);
            assert_eq!(n.alloc_size(), HEADER + klen);
            n.set_raw();
            n = n.with_ttl(true);
            n.set_expire_at(1234);
            n.set_vidx(7);
            assert_eq!(
                (n.key(), n.expire_at(), n.vidx()),
                (&key[..], Some(1234), Some(7))
            );
            assert!(n.is_expired(1234) && !n.is_expired(1233));
            assert_eq!(n.lru, 9);
            assert_eq!(n.encoding_name(&Default::default()), "raw");
            n = n.with_ttl(false);
            assert_eq!((n.key(), n.expire_at(), n.vidx()), (&key[..], None, None));
            assert_eq!(n.into_value(), s(b"value"));
        }
        let n = Node::new(b"k", s(b"v"), 0, Some(5));
        assert_eq!(
            (n.expire_at(), n.alloc_size()),
            (Some(5), HEADER + TTL_PART + 1)
        );
    }
}
