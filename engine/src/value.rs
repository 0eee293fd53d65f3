//! The value types a key can hold, and how Redis would name their encodings.

use crate::hashval::HashVal;
use crate::list::PackedList;
use crate::setval::SetVal;
use crate::stream::Stream;
use crate::zset::ZSet;
use bytes::Bytes;
use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// A key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also integers and bitmaps).
    Str(StrData),
    /// A list, head at the front (boxed: a pointer in the entry).
    List(Box<PackedList>),
    /// A hash of field → value (boxed, as the other collections: a
    /// pointer in the entry, the small forms packed behind it).
    Hash(Box<HashVal>),
    /// A set of members.
    Set(Box<SetVal>),
    /// A sorted set.
    ZSet(Box<ZSet>),
    /// A stream.
    Stream(Box<Stream>),
}

/// Longest string kept inline in its entry.
pub const INLINE_MAX: usize = 14;
/// Shortest string kept as a shared `Bytes` (replies and other cores take
/// it without a copy; Redis's threshold for big bulk arguments is 32 KiB).
pub const SHARED_MIN: usize = 16 * 1024;

/// A string value's bytes, in the 16 bytes of a `Value`:
/// - up to [`INLINE_MAX`] bytes inline (integers, short strings: no
///   allocation, and a lookup finds them in the entry it already read);
/// - up to [`SHARED_MIN`] in one allocation of exactly their size, the
///   length kept beside the pointer (a 32-byte value costs mimalloc's
///   32-byte class, where a length prefix would take it to 48);
/// - longer ones as a shared `Bytes`, which replies send and other cores
///   receive without copying.
pub enum StrData {
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    Thin { len: u32, ptr: NonNull<u8> },
    Shared(Box<Bytes>),
}

// SAFETY: a `Thin` string owns its allocation exclusively, like a
// `Box<[u8]>`; shared access only reads.
unsafe impl Send for StrData {}
// SAFETY: as above.
unsafe impl Sync for StrData {}

fn thin_layout(len: usize) -> Layout {
    Layout::from_size_align(len, 1).expect("string layout")
}

/// A `Thin` string holding a copy of `s` (`INLINE_MAX < s.len() < SHARED_MIN`).
fn thin(s: &[u8]) -> StrData {
    debug_assert!(s.len() > INLINE_MAX && s.len() < SHARED_MIN);
    let layout = thin_layout(s.len());
    // SAFETY: the layout is non-empty (longer than INLINE_MAX).
    let p = unsafe { alloc(layout) };
    let Some(ptr) = NonNull::new(p) else {
        std::alloc::handle_alloc_error(layout)
    };
    // SAFETY: `ptr` has room for exactly `s.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), ptr.as_ptr(), s.len()) };
    StrData::Thin {
        len: s.len() as u32,
        ptr,
    }
}

impl Drop for StrData {
    fn drop(&mut self) {
        if let StrData::Thin { len, ptr } = self {
            // SAFETY: allocated by `thin` with this layout, owned by `self`.
            unsafe { dealloc(ptr.as_ptr(), thin_layout(*len as usize)) }
        }
    }
}

impl Clone for StrData {
    fn clone(&self) -> Self {
        match self {
            StrData::Inline { len, buf } => StrData::Inline {
                len: *len,
                buf: *buf,
            },
            StrData::Thin { .. } => thin(self),
            StrData::Shared(b) => StrData::Shared(b.clone()),
        }
    }
}

impl Value {
    /// Starts loading what the value points to, if anything (see
    /// [`crate::dict::SlotDict::prefetch_walk`]).
    pub fn prefetch_heap(&self) {
        let p: *const u8 = match self {
            Value::Str(StrData::Inline { .. }) => return,
            Value::Str(StrData::Thin { ptr, .. }) => ptr.as_ptr(),
            Value::Str(StrData::Shared(b)) => &**b as *const Bytes as *const u8,
            Value::List(b) => &**b as *const PackedList as *const u8,
            Value::Hash(b) => &**b as *const HashVal as *const u8,
            Value::Set(b) => &**b as *const SetVal as *const u8,
            Value::ZSet(b) => &**b as *const ZSet as *const u8,
            Value::Stream(b) => &**b as *const Stream as *const u8,
        };
        crate::dict::prefetch_read(p);
    }
}

impl StrData {
    /// A copy of `s`.
    pub fn copy_from_slice(s: &[u8]) -> StrData {
        if s.len() <= INLINE_MAX {
            let mut buf = [0u8; INLINE_MAX];
            buf[..s.len()].copy_from_slice(s);
            StrData::Inline {
                len: s.len() as u8,
                buf,
            }
        } else if s.len() < SHARED_MIN {
            thin(s)
        } else {
            StrData::Shared(Box::new(Bytes::copy_from_slice(s)))
        }
    }

    /// The bytes as a `Bytes`: shared when stored so, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            StrData::Shared(b) => (**b).clone(),
            _ => Bytes::copy_from_slice(self),
        }
    }

    /// Takes the bytes out for in-place modification, leaving the value
    /// empty: no copy when stored unshared as a `Bytes`, else a copy with
    /// room for `want` bytes. Put them back with `StrData::from`.
    pub fn take_mut(&mut self, want: usize) -> bytes::BytesMut {
        let m = match &mut *self {
            StrData::Shared(b) => match std::mem::take(&mut **b).try_into_mut() {
                Ok(m) => m,
                Err(b) => copy_with_room(&b, want),
            },
            other => copy_with_room(other, want),
        };
        *self = StrData::default();
        m
    }
}

fn copy_with_room(s: &[u8], want: usize) -> bytes::BytesMut {
    let mut m = bytes::BytesMut::with_capacity(want.max(s.len()));
    m.extend_from_slice(s);
    m
}

impl Default for StrData {
    fn default() -> Self {
        StrData::Inline {
            len: 0,
            buf: [0; INLINE_MAX],
        }
    }
}

impl std::ops::Deref for StrData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            StrData::Inline { len, buf } => &buf[..*len as usize],
            // SAFETY: `ptr` holds `len` initialised bytes (see `thin`).
            StrData::Thin { len, ptr } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len as usize)
            },
            StrData::Shared(b) => b,
        }
    }
}

impl From<Bytes> for StrData {
    /// Long strings keep their buffer; shorter ones are copied into place.
    fn from(b: Bytes) -> Self {
        if b.len() < SHARED_MIN {
            StrData::copy_from_slice(&b)
        } else {
            StrData::Shared(Box::new(b))
        }
    }
}

impl From<Vec<u8>> for StrData {
    fn from(v: Vec<u8>) -> Self {
        if v.len() < SHARED_MIN {
            StrData::copy_from_slice(&v)
        } else {
            StrData::Shared(Box::new(Bytes::from(v)))
        }
    }
}

impl PartialEq for StrData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for StrData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self))
    }
}

/// Thresholds that decide which encoding OBJECT ENCODING reports; they are
/// the CONFIG parameters of the same names, with Redis 7.0's defaults.
#[derive(Debug, Clone, Copy)]
pub struct EncodingLimits {
    /// `hash-max-listpack-entries`.
    pub hash_entries_max: usize,
    /// `hash-max-listpack-value`.
    pub hash_value_bytes_max: usize,
    /// `set-max-intset-entries`.
    pub set_intset_entries_max: usize,
    /// `zset-max-listpack-entries`.
    pub zset_entries_max: usize,
    /// `zset-max-listpack-value`.
    pub zset_value_bytes_max: usize,
    /// `list-max-listpack-size` (negative: a size class, -2 = 8 KiB).
    pub list_listpack_size: i64,
    /// `hll-sparse-max-bytes`.
    pub hll_sparse_max_bytes: usize,
    /// `stream-node-max-bytes`.
    pub stream_node_max_bytes: usize,
    /// `stream-node-max-entries`.
    pub stream_node_max_entries: i64,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_entries_max: 512,
            hash_value_bytes_max: 64,
            set_intset_entries_max: 512,
            zset_entries_max: 128,
            zset_value_bytes_max: 64,
            list_listpack_size: -2,
            hll_sparse_max_bytes: crate::hll::SPARSE_MAX_BYTES,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

impl Value {
    /// Bytes allocated for this value outside its entry (MEMORY USAGE),
    /// sampling `samples` elements of large collections (0: all).
    pub fn mem_bytes(&self, samples: usize) -> usize {
        use crate::memsize::malloc_size;
        fn boxed<T>(inner: usize) -> usize {
            malloc_size(std::mem::size_of::<T>()) + inner
        }
        match self {
            Value::Str(StrData::Inline { .. }) => 0,
            Value::Str(StrData::Thin { len, .. }) => malloc_size(*len as usize),
            // The box, the `Bytes` storage and its shared header.
            Value::Str(StrData::Shared(b)) => {
                boxed::<Bytes>(malloc_size(b.len()) + malloc_size(32))
            }
            Value::List(l) => boxed::<PackedList>(l.mem_bytes(samples)),
            Value::Hash(h) => boxed::<HashVal>(h.mem_bytes(samples)),
            Value::Set(s) => boxed::<SetVal>(s.mem_bytes(samples)),
            Value::ZSet(z) => boxed::<ZSet>(z.mem_bytes(samples)),
            Value::Stream(s) => boxed::<Stream>(s.mem_bytes()),
        }
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The encoding Redis 7.0 would use for this value: for collections
    /// the one in use (a small set of strings, packed by slotd, is what
    /// Redis 7.0 keeps in a `hashtable`). The thresholds already decided
    /// the collections' forms as they were written.
    pub fn encoding_name(&self, _lim: &EncodingLimits) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && crate::resp::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            // Redis 7.0 stores every list as a quicklist (of listpack
            // nodes); the listpack encoding for small lists came in 7.2.
            Value::List(_) => "quicklist",
            Value::Hash(h) if h.is_packed() => "listpack",
            Value::Hash(_) => "hashtable",
            Value::Set(s) => s.encoding_name(),
            Value::ZSet(z) if z.is_packed() => "listpack",
            Value::ZSet(_) => "skiplist",
            Value::Stream(_) => "stream",
        }
    }

    /// Elements in a collection (1 for strings): sizes the cost of freeing.
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => s.length as usize,
        }
    }

    /// True for an empty collection, which must not stay in the keyspace.
    pub fn is_empty(&self) -> bool {
        match self {
            // An empty stream is a value (XADD MAXLEN 0, XGROUP MKSTREAM).
            Value::Str(_) | Value::Stream(_) => false,
            _ => self.len() == 0,
        }
    }
}

/// A collection type a command family works on, so the typed lookups
/// (exists-or-WRONGTYPE, read, write) are written once in `cmd`.
pub trait Typed {
    /// The value as this type, if it is one.
    fn of(v: &Value) -> Option<&Self>;
    /// The value as this type, for update.
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
}

impl Typed for SetVal {
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
}

impl Typed for ZSet {
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_up_to_inline_max_live_in_the_entry() {
        for n in [
            0,
            1,
            INLINE_MAX - 1,
            INLINE_MAX,
            INLINE_MAX + 1,
            1000,
            SHARED_MIN - 1,
            SHARED_MIN,
            100_000,
        ] {
            let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
            for s in [
                StrData::copy_from_slice(&v),
                StrData::from(v.clone()),
                StrData::from(Bytes::from(v.clone())),
            ] {
                assert_eq!(&*s, &v[..]);
                assert_eq!(&s.to_bytes()[..], &v[..]);
                assert_eq!(matches!(s, StrData::Inline { .. }), n <= INLINE_MAX, "{n}");
                assert_eq!(matches!(s, StrData::Shared(_)), n >= SHARED_MIN, "{n}");
                assert_eq!(s.clone(), s);
            }
        }
        assert_eq!(std::mem::size_of::<StrData>(), 16);
        // A value is 16 bytes in its entry: a string's bytes or one pointer.
        assert_eq!(std::mem::size_of::<Value>(), 16);
        // Collections take one pointer in the entry.
        assert_eq!(std::mem::size_of::<Box<HashVal>>(), 8);
        assert_eq!(std::mem::size_of::<HashVal>(), 16);
        assert_eq!(std::mem::size_of::<SetVal>(), 24);
        assert_eq!(std::mem::size_of::<ZSet>(), 16);
    }

    #[test]
    fn take_mut_hands_out_the_bytes_and_leaves_an_empty_string() {
        for n in [3, INLINE_MAX + 10, SHARED_MIN + 10] {
            let v = vec![b'x'; n];
            let mut s = StrData::copy_from_slice(&v);
            let shared = s.to_bytes();
            let mut m = s.take_mut(n + 5);
            assert!(s.is_empty());
            assert!(m.capacity() >= n);
            m.extend_from_slice(b"yz");
            let s = StrData::from(m.freeze());
            assert_eq!(s.len(), n + 2);
            assert_eq!(matches!(s, StrData::Inline { .. }), n + 2 <= INLINE_MAX);
            // A reply still holding the old bytes is not disturbed.
            assert_eq!(&shared[..], &v[..]);
        }
    }
}
