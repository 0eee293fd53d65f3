//! Packed lists: a deque of chunks, each chunk one allocation holding its
//! items back to back (Redis's quicklist of listpacks, without the
//! compression).
//!
//! An item is stored as `header bytes trailer`: the header is the item's
//! length as a LEB128 varint (7 bits a byte, high bit = more follows) and the
//! trailer is the same bytes in reverse order, so a chunk can be walked from
//! either end. An item of up to 127 bytes costs 2 bytes on top of its own.
//! A chunk's size is bounded by `list-max-listpack-size` ([`Fill`]); an item
//! that does not fit in any chunk gets a chunk of its own. A list of one
//! chunk is just that chunk (32 bytes behind `Value::List`'s box, plus the
//! chunk's bytes); longer ones keep a deque of chunks.

use bytes::Bytes;
use std::collections::VecDeque;

/// `list-max-listpack-size`: negative -1..-5 bound a chunk's bytes to
/// 4, 8, 16, 32 or 64 KiB; positive bounds its number of items (while it
/// stays within 8 KiB); anything else puts every item in its own chunk, as
/// Redis 7.0's quicklist does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill(pub i64);

impl Default for Fill {
    fn default() -> Self {
        Fill(-2)
    }
}

/// Chunk byte limits of the negative fills -1..-5.
const SIZE_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Largest chunk a positive (count) fill allows.
const SIZE_SAFETY_LIMIT: usize = 8192;

impl Fill {
    /// Whether a chunk of `bytes` bytes and `count` items may be that big.
    fn allows(self, bytes: usize, count: usize) -> bool {
        if self.0 < 0 {
            if let Some(&max) = usize::try_from(-(self.0 + 1))
                .ok()
                .and_then(|i| SIZE_LEVELS.get(i))
            {
                return bytes <= max;
            }
        }
        bytes <= SIZE_SAFETY_LIMIT && (count as i64) <= self.0
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    n >>= 7;
    while n > 0 {
        k += 1;
        n >>= 7;
    }
    k
}

/// Bytes an item of `n` bytes takes in a chunk.
fn entry_size(n: usize) -> usize {
    2 * varint_len(n) + n
}

/// Writes `item` as an entry into `out` (exactly `entry_size` bytes).
fn write_entry(out: &mut [u8], item: &[u8]) {
    let h = varint_len(item.len());
    let mut n = item.len();
    for i in 0..h {
        let more = if i + 1 < h { 0x80 } else { 0 };
        let b = (n & 0x7f) as u8 | more;
        out[i] = b;
        out[2 * h + item.len() - 1 - i] = b;
        n >>= 7;
    }
    out[h..h + item.len()].copy_from_slice(item);
}

/// The entry starting at `off`: (item start, item length, entry end).
fn read_fwd(data: &[u8], off: usize) -> (usize, usize, usize) {
    let (mut n, mut i) = (0usize, 0);
    loop {
        let b = data[off + i];
        n |= ((b & 0x7f) as usize) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    (off + i, n, off + 2 * i + n)
}

/// The entry ending at `end`: (item start, item length, entry start).
fn read_back(data: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut n, mut i) = (0usize, 0);
    loop {
        let b = data[end - 1 - i];
        n |= ((b & 0x7f) as usize) << (7 * i);
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let start = end - i - n;
    (start, n, start - i)
}

/// One allocation of entries, in one of two encodings:
/// - fixed: every item has the same length, `width`, and the entries are
///   the items' bytes back to back with no header or trailer (lists of
///   IDs, hashes, timestamps or other fixed-size tokens: 2 bytes less per
///   item, and item `i` is at `i × width`);
/// - variable (`width == VAR`): each entry carries its length at both ends.
///
/// A chunk starts fixed at the length of its first item and turns variable,
/// once, when an item of another length joins it.
#[derive(Clone)]
struct Chunk {
    data: Vec<u8>,
    count: u32,
    /// Every item's length, or [`VAR`]; meaningless while `count == 0`.
    width: u32,
}

/// `Chunk::width` of a chunk in the variable encoding.
const VAR: u32 = u32::MAX;

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            data: Vec::new(),
            count: 0,
            width: VAR,
        }
    }
}

/// A chunk of `bytes` bytes, `count` items and `width` after one more
/// item of `len` bytes: its bytes and width then.
fn grown(bytes: usize, count: usize, width: u32, len: usize) -> (usize, u32) {
    if count == 0 {
        // Items are at most proto-max-bulk-len (512 MB): below VAR.
        (len, len as u32)
    } else if width != VAR && width as usize == len {
        (bytes + len, width)
    } else if width != VAR {
        (count * entry_size(width as usize) + entry_size(len), VAR)
    } else {
        (bytes + entry_size(len), VAR)
    }
}

/// Bytes an item of `len` bytes takes in a chunk of `width`.
fn entry_len(width: u32, len: usize) -> usize {
    if width == VAR {
        entry_size(len)
    } else {
        len
    }
}

/// Writes `item` as an entry of a chunk of `width` into `out` (exactly
/// `entry_len` bytes).
fn encode(width: u32, item: &[u8], out: &mut [u8]) {
    if width == VAR {
        write_entry(out, item);
    } else {
        out.copy_from_slice(item);
    }
}

/// The entry starting at `off` in a chunk of `width`: (item start, item
/// length, entry end).
fn fwd(data: &[u8], width: u32, off: usize) -> (usize, usize, usize) {
    if width == VAR {
        read_fwd(data, off)
    } else {
        (off, width as usize, off + width as usize)
    }
}

/// The entry ending at `end` in a chunk of `width`: (item start, item
/// length, entry start).
fn back(data: &[u8], width: u32, end: usize) -> (usize, usize, usize) {
    if width == VAR {
        read_back(data, end)
    } else {
        let w = width as usize;
        (end - w, w, end - w)
    }
}

impl Chunk {
    fn with_item(item: &[u8]) -> Chunk {
        let mut c = Chunk::default();
        c.add_run(&[item], false);
        c
    }

    fn len(&self) -> usize {
        self.count as usize
    }

    fn is_fixed(&self) -> bool {
        self.width != VAR
    }

    fn can_take(&self, item: &[u8], fill: Fill) -> bool {
        self.count == 0
            || fill.allows(
                grown(self.data.len(), self.len(), self.width, item.len()).0,
                self.len() + 1,
            )
    }

    fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            data: &self.data,
            width: self.width,
            front: 0,
            back: self.data.len(),
            left: self.len(),
        }
    }

    /// Byte offset of entry `i` (`i == len`: the end), walking from the
    /// nearer end in the variable encoding.
    fn offset_of(&self, i: usize) -> usize {
        if self.is_fixed() {
            return i * self.width as usize;
        }
        if i <= self.len() / 2 {
            let mut off = 0;
            for _ in 0..i {
                off = read_fwd(&self.data, off).2;
            }
            off
        } else {
            let mut off = self.data.len();
            for _ in i..self.len() {
                off = read_back(&self.data, off).2;
            }
            off
        }
    }

    /// Item `i < len`.
    fn item(&self, i: usize) -> &[u8] {
        let (start, n, _) = fwd(&self.data, self.width, self.offset_of(i));
        &self.data[start..start + n]
    }

    /// Bytes in the variable encoding.
    fn variable_bytes(&self) -> usize {
        if self.is_fixed() {
            self.len() * entry_size(self.width as usize)
        } else {
            self.data.len()
        }
    }

    /// Rewrites a fixed chunk in the variable encoding.
    fn make_variable(&mut self) {
        if !self.is_fixed() {
            return;
        }
        let w = self.width as usize;
        let es = entry_size(w);
        let mut data = vec![0; self.len() * es];
        for k in 0..self.len() {
            write_entry(
                &mut data[k * es..(k + 1) * es],
                &self.data[k * w..(k + 1) * w],
            );
        }
        self.data = data;
        self.width = VAR;
    }

    /// Makes the encoding able to hold an item of `len` bytes: an empty
    /// chunk takes that width, a fixed chunk of another width turns
    /// variable.
    fn make_room_for(&mut self, len: usize) {
        if self.count == 0 {
            self.data.clear();
            self.width = len as u32;
        } else if self.is_fixed() && self.width as usize != len {
            self.make_variable();
        }
    }

    /// Inserts `item` as item `i` (`i <= len`).
    fn insert_item(&mut self, i: usize, item: &[u8]) {
        self.make_room_for(item.len());
        let off = self.offset_of(i);
        let es = entry_len(self.width, item.len());
        let old = self.data.len();
        // Exact growth: the allocator grows in place within its size class.
        self.data.reserve_exact(es);
        self.data.resize(old + es, 0);
        self.data.copy_within(off..old, off + es);
        encode(self.width, item, &mut self.data[off..off + es]);
        self.count += 1;
    }

    /// Bytes of the chunk once item `i` is replaced by one of `len` bytes.
    fn bytes_replacing(&self, i: usize, len: usize) -> usize {
        if self.count == 1 {
            len
        } else if self.is_fixed() && self.width as usize == len {
            self.data.len()
        } else if self.is_fixed() {
            (self.len() - 1) * entry_size(self.width as usize) + entry_size(len)
        } else {
            let off = self.offset_of(i);
            let end = read_fwd(&self.data, off).2;
            self.data.len() - (end - off) + entry_size(len)
        }
    }

    /// Replaces item `i < len` by `item`.
    fn replace_item(&mut self, i: usize, item: &[u8]) {
        if self.count == 1 {
            self.data.clear();
            self.data.extend_from_slice(item);
            self.width = item.len() as u32;
            return;
        }
        self.make_room_for(item.len());
        let off = self.offset_of(i);
        let end = fwd(&self.data, self.width, off).2;
        let mut e = vec![0; entry_len(self.width, item.len())];
        encode(self.width, item, &mut e);
        self.data.splice(off..end, e);
    }

    /// How many of `items`, pushed one by one at either end, this chunk
    /// takes before one would not fit (an empty chunk takes at least one).
    fn run_fitting(&self, items: &[&[u8]], fill: Fill) -> usize {
        let (mut bytes, mut count, mut width) = (self.data.len(), self.len(), self.width);
        for (k, item) in items.iter().enumerate() {
            let (b, w) = grown(bytes, count, width, item.len());
            if count > 0 && !fill.allows(b, count + 1) {
                return k;
            }
            (bytes, width) = (b, w);
            count += 1;
        }
        items.len()
    }

    /// Adds `run` as pushing each at the back, or at the front (the last
    /// item first), would, in one allocation.
    fn add_run(&mut self, run: &[&[u8]], front: bool) {
        let (mut bytes, mut width) = (self.data.len(), self.width);
        for (k, item) in run.iter().enumerate() {
            (bytes, width) = grown(bytes, self.len() + k, width, item.len());
        }
        if self.count == 0 {
            self.data.clear();
            self.width = width;
        } else if width == VAR {
            self.make_variable();
        }
        let append = |data: &mut Vec<u8>, item: &[u8]| {
            let old = data.len();
            data.resize(old + entry_len(width, item.len()), 0);
            encode(width, item, &mut data[old..]);
        };
        if front {
            let mut data = Vec::with_capacity(bytes);
            for item in run.iter().rev() {
                append(&mut data, item);
            }
            data.extend_from_slice(&self.data);
            self.data = data;
        } else {
            self.data.reserve_exact(bytes - self.data.len());
            for item in run {
                append(&mut self.data, item);
            }
        }
        self.count += run.len() as u32;
    }

    /// Removes item `i < len`, returning it.
    fn remove_item(&mut self, i: usize) -> Bytes {
        let off = self.offset_of(i);
        let (start, n, end) = fwd(&self.data, self.width, off);
        let item = Bytes::copy_from_slice(&self.data[start..start + n]);
        self.data.drain(off..end);
        self.count -= 1;
        self.shrink();
        item
    }

    /// Cuts the chunk after its first `n` items (`0 < n < len`), returning
    /// the rest as a chunk of its own.
    fn split_off(&mut self, n: usize) -> Chunk {
        let off = self.offset_of(n);
        let tail = Chunk {
            data: self.data[off..].to_vec(),
            count: self.count - n as u32,
            width: self.width,
        };
        self.data.truncate(off);
        self.count = n as u32;
        self.shrink();
        tail
    }

    /// Removes the first `n` items (`n < len`).
    fn drop_front(&mut self, n: usize) {
        let off = self.offset_of(n);
        self.data.drain(..off);
        self.count -= n as u32;
        self.shrink();
    }

    /// Bytes of this chunk followed by `next` as one chunk.
    fn bytes_joined(&self, next: &Chunk) -> usize {
        if self.is_fixed() && self.width == next.width {
            self.data.len() + next.data.len()
        } else {
            self.variable_bytes() + next.variable_bytes()
        }
    }

    /// Appends the items of `next` (both chunks non-empty).
    fn append(&mut self, mut next: Chunk) {
        if !(self.is_fixed() && self.width == next.width) {
            self.make_variable();
            next.make_variable();
        }
        self.data.extend_from_slice(&next.data);
        self.count += next.count;
    }

    /// Keeps the items for which `keep` is true.
    fn retain(&mut self, keep: &mut impl FnMut(&[u8]) -> bool) {
        let (mut read, mut write) = (0, 0);
        let mut kept = 0u32;
        for _ in 0..self.count {
            let (start, n, end) = fwd(&self.data, self.width, read);
            if keep(&self.data[start..start + n]) {
                if write != read {
                    self.data.copy_within(read..end, write);
                }
                write += end - read;
                kept += 1;
            }
            read = end;
        }
        self.count = kept;
        self.data.truncate(write);
    }

    /// Gives memory back once most of the allocation is unused.
    fn shrink(&mut self) {
        if self.data.capacity() > 64 && self.data.capacity() > 2 * self.data.len() {
            self.data.shrink_to_fit();
        }
    }
}

/// A chunk's items, from both ends.
#[derive(Clone)]
struct ChunkIter<'a> {
    data: &'a [u8],
    width: u32,
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> ChunkIter<'a> {
    fn empty() -> ChunkIter<'a> {
        ChunkIter {
            data: &[],
            width: VAR,
            front: 0,
            back: 0,
            left: 0,
        }
    }
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (start, n, end) = fwd(self.data, self.width, self.front);
        self.front = end;
        Some(&self.data[start..start + n])
    }
}

impl<'a> DoubleEndedIterator for ChunkIter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (start, n, begin) = back(self.data, self.width, self.back);
        self.back = begin;
        Some(&self.data[start..start + n])
    }
}

/// A list of byte strings, head at the front.
#[derive(Clone, Default)]
pub struct PackedList(Repr);

/// Most lists fit in one chunk: such a list is that chunk, and only longer
/// lists pay for a deque of chunks.
#[derive(Clone)]
enum Repr {
    /// No chunk (count 0: the empty list) or one.
    One(Chunk),
    /// Two chunks or more.
    Many(Box<Many>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::One(Chunk::default())
    }
}

#[derive(Clone)]
struct Many {
    chunks: VecDeque<Chunk>,
    /// Items in all chunks.
    len: usize,
}

impl PackedList {
    /// Bytes of its allocations (the box excluded), sampling `samples`
    /// chunks (0: all).
    pub fn mem_bytes(&self, samples: usize) -> usize {
        use crate::memsize::{malloc_size, sampled};
        match &self.0 {
            Repr::One(c) => malloc_size(c.data.capacity()),
            Repr::Many(m) => {
                malloc_size(std::mem::size_of::<Many>())
                    + malloc_size(m.chunks.capacity() * std::mem::size_of::<Chunk>())
                    + sampled(
                        m.chunks.len(),
                        samples,
                        m.chunks.iter().map(|c| malloc_size(c.data.capacity())),
                    )
            }
        }
    }

    /// An empty list.
    pub fn new() -> PackedList {
        PackedList::default()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(c) => c.len(),
            Repr::Many(m) => m.len,
        }
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of chunks (the list's shape, for tests of the fill).
    pub(crate) fn chunk_count(&self) -> usize {
        match &self.0 {
            Repr::One(c) => usize::from(c.count > 0),
            Repr::Many(m) => m.chunks.len(),
        }
    }

    fn chunk(&self, i: usize) -> &Chunk {
        match &self.0 {
            Repr::One(c) => c,
            Repr::Many(m) => &m.chunks[i],
        }
    }

    /// Runs `f` on chunk `i`, keeping the length in step with the chunk's
    /// count; a chunk left empty is removed.
    fn edit<R>(&mut self, i: usize, f: impl FnOnce(&mut Chunk) -> R) -> R {
        let (r, emptied) = match &mut self.0 {
            Repr::One(c) => {
                let r = f(c);
                (r, c.count == 0)
            }
            Repr::Many(m) => {
                let c = &mut m.chunks[i];
                let before = c.len();
                let r = f(c);
                m.len = m.len - before + c.len();
                (r, c.count == 0)
            }
        };
        if emptied {
            self.remove_chunk(i);
        }
        r
    }

    /// Adds chunk `c` at chunk position `at`.
    fn insert_chunk(&mut self, at: usize, c: Chunk) {
        match &mut self.0 {
            Repr::One(first) if first.count == 0 => *first = c,
            Repr::One(first) => {
                let first = std::mem::take(first);
                let len = first.len() + c.len();
                let mut chunks = VecDeque::with_capacity(2);
                chunks.push_back(first);
                chunks.insert(at, c);
                self.0 = Repr::Many(Box::new(Many { chunks, len }));
            }
            Repr::Many(m) => {
                m.len += c.len();
                m.chunks.insert(at, c);
            }
        }
    }

    /// Takes chunk `at` out of the list.
    fn remove_chunk(&mut self, at: usize) -> Chunk {
        match &mut self.0 {
            Repr::One(c) => std::mem::take(c),
            Repr::Many(m) => {
                let c = m.chunks.remove(at).unwrap_or_default();
                m.len -= c.len();
                if m.chunks.len() == 1 {
                    let last = m.chunks.pop_front().unwrap_or_default();
                    self.0 = Repr::One(last);
                }
                c
            }
        }
    }

    /// Appends `item`.
    pub fn push_back(&mut self, item: &[u8], fill: Fill) {
        let n = self.chunk_count();
        if n > 0 && self.chunk(n - 1).can_take(item, fill) {
            self.edit(n - 1, |c| c.insert_item(c.len(), item));
        } else {
            self.insert_chunk(n, Chunk::with_item(item));
        }
    }

    /// Prepends `item`.
    pub fn push_front(&mut self, item: &[u8], fill: Fill) {
        if self.chunk_count() > 0 && self.chunk(0).can_take(item, fill) {
            self.edit(0, |c| c.insert_item(0, item));
        } else {
            self.insert_chunk(0, Chunk::with_item(item));
        }
    }

    /// Pushes `items` one after another at the back (RPUSH) or at the
    /// front (LPUSH: the last item ends up first), into the chunks
    /// `push_back`/`push_front` would put them in, but with each chunk's
    /// bytes allocated once for the run of items it takes: grown item by
    /// item, a chunk passes through every allocator size class up to its
    /// own, and the blocks it leaves behind cost RSS.
    pub fn push_all(&mut self, items: &[&[u8]], front: bool, fill: Fill) {
        let mut rest = items;
        while !rest.is_empty() {
            let n = self.chunk_count();
            let end = if front { 0 } else { n.saturating_sub(1) };
            let into_end = if n > 0 {
                self.chunk(end).run_fitting(rest, fill)
            } else {
                0
            };
            let k = if into_end > 0 {
                into_end
            } else {
                Chunk::default().run_fitting(rest, fill)
            };
            let (run, after) = rest.split_at(k);
            rest = after;
            if into_end > 0 {
                self.edit(end, |c| c.add_run(run, front));
            } else {
                let mut c = Chunk::default();
                c.add_run(run, front);
                self.insert_chunk(if front { 0 } else { n }, c);
            }
        }
    }

    /// Removes and returns the first item.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        Some(self.edit(0, |c| c.remove_item(0)))
    }

    /// Removes and returns the last item.
    pub fn pop_back(&mut self) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        Some(self.edit(self.chunk_count() - 1, |c| c.remove_item(c.len() - 1)))
    }

    /// (chunk, index in it) of item `i < len`, walking from the nearer end.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        let (len, n) = (self.len(), self.chunk_count());
        if i < len / 2 {
            for ci in 0..n {
                let c = self.chunk(ci);
                if i < c.len() || ci + 1 == n {
                    return (ci, i);
                }
                i -= c.len();
            }
        } else {
            let mut from_end = len.saturating_sub(i);
            for ci in (0..n).rev() {
                let c = self.chunk(ci);
                if from_end <= c.len() || ci == 0 {
                    return (ci, c.len().saturating_sub(from_end));
                }
                from_end -= c.len();
            }
        }
        (0, 0)
    }

    /// Item `i`, if `i < len`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let (ci, ii) = self.locate(i);
        Some(self.chunk(ci).item(ii))
    }

    /// Replaces item `i`; false when `i >= len`.
    pub fn set(&mut self, i: usize, item: &[u8], fill: Fill) -> bool {
        if i >= self.len() {
            return false;
        }
        let (ci, ii) = self.locate(i);
        let c = self.chunk(ci);
        if c.count == 1 || fill.allows(c.bytes_replacing(ii, item.len()), c.len()) {
            self.edit(ci, |c| c.replace_item(ii, item));
        } else {
            self.edit(ci, |c| c.remove_item(ii));
            self.insert(i, item, fill);
        }
        true
    }

    /// Inserts `item` so it becomes item `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, item: &[u8], fill: Fill) {
        if i == 0 {
            return self.push_front(item, fill);
        }
        if i >= self.len() {
            return self.push_back(item, fill);
        }
        let (ci, ii) = self.locate(i);
        if self.chunk(ci).can_take(item, fill) {
            self.edit(ci, |c| c.insert_item(ii, item));
            return;
        }
        if ii == 0 {
            // At a chunk's head: the end of the previous chunk, else a
            // chunk of its own.
            if ci > 0 && self.chunk(ci - 1).can_take(item, fill) {
                self.edit(ci - 1, |p| p.insert_item(p.len(), item));
            } else {
                self.insert_chunk(ci, Chunk::with_item(item));
            }
            return;
        }
        // Split the full chunk at the insertion point (both halves keep
        // items), then add the item to whichever half takes it, or between.
        let mut tail = self.edit(ci, |c| c.split_off(ii));
        if self.chunk(ci).can_take(item, fill) {
            self.edit(ci, |c| c.insert_item(c.len(), item));
        } else if tail.can_take(item, fill) {
            tail.insert_item(0, item);
        } else {
            self.insert_chunk(ci + 1, Chunk::with_item(item));
            self.insert_chunk(ci + 2, tail);
            return;
        }
        self.insert_chunk(ci + 1, tail);
    }

    /// Keeps items `start..end` (`start < end <= len`), dropping the rest.
    pub fn trim(&mut self, start: usize, end: usize) {
        // The tail first, then the head.
        while self.len() > end {
            let last = self.chunk_count() - 1;
            let cut = self.len() - end;
            let n = self.chunk(last).len();
            if n <= cut {
                self.remove_chunk(last);
            } else {
                self.edit(last, |c| drop(c.split_off(n - cut)));
            }
        }
        let mut drop_n = start;
        while drop_n > 0 {
            let n = self.chunk(0).len();
            if n <= drop_n {
                self.remove_chunk(0);
                drop_n -= n;
            } else {
                self.edit(0, |c| c.drop_front(drop_n));
                drop_n = 0;
            }
        }
    }

    /// Keeps the items for which `keep` is true (called once per item, in
    /// order); returns how many were removed. Neighbouring chunks that fit
    /// together afterwards are merged.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool, fill: Fill) -> usize {
        let before = self.len();
        let mut i = 0;
        while i < self.chunk_count() {
            let n = self.chunk_count();
            self.edit(i, |c| c.retain(&mut keep));
            if self.chunk_count() == n {
                i += 1;
            }
        }
        let removed = before - self.len();
        if removed > 0 {
            let mut i = 0;
            while i + 1 < self.chunk_count() {
                let (a, b) = (self.chunk(i), self.chunk(i + 1));
                if fill.allows(a.bytes_joined(b), a.len() + b.len()) {
                    let b = self.remove_chunk(i + 1);
                    self.edit(i, |a| a.append(b));
                } else {
                    self.edit(i, Chunk::shrink);
                    i += 1;
                }
            }
            if let Some(last) = self.chunk_count().checked_sub(1) {
                self.edit(last, Chunk::shrink);
            }
        }
        removed
    }

    /// The items from the head.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The items from item `i` on.
    pub fn iter_from(&self, i: usize) -> Iter<'_> {
        if i >= self.len() {
            return Iter {
                list: self,
                next: 0,
                end: 0,
                front: ChunkIter::empty(),
                back: ChunkIter::empty(),
                left: 0,
            };
        }
        let (ci, ii) = self.locate(i);
        let c = self.chunk(ci);
        let mut front = c.iter();
        front.front = c.offset_of(ii);
        front.left = c.len() - ii;
        Iter {
            list: self,
            next: ci + 1,
            end: self.chunk_count(),
            front,
            back: ChunkIter::empty(),
            left: self.len() - i,
        }
    }
}

/// Items of a [`PackedList`] in order, from either end.
pub struct Iter<'a> {
    list: &'a PackedList,
    /// Chunks `next..end` are not started yet.
    next: usize,
    end: usize,
    front: ChunkIter<'a>,
    back: ChunkIter<'a>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(x) = self.front.next() {
                self.left -= 1;
                return Some(x);
            }
            if self.next < self.end {
                self.front = self.list.chunk(self.next).iter();
                self.next += 1;
            } else {
                let x = self.back.next();
                self.left -= usize::from(x.is_some());
                return x;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(x) = self.back.next_back() {
                self.left -= 1;
                return Some(x);
            }
            if self.next < self.end {
                self.end -= 1;
                self.back = self.list.chunk(self.end).iter();
            } else {
                let x = self.front.next_back();
                self.left -= usize::from(x.is_some());
                return x;
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for PackedList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for PackedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Bytes::copy_from_slice))
            .finish()
    }
}

/// A boxed list of the items, with the default fill (what `Value::List`
/// holds).
impl<T: AsRef<[u8]>> FromIterator<T> for Box<PackedList> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut l = Box::new(PackedList::new());
        for item in items {
            l.push_back(item.as_ref(), Fill::default());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The list's chunks are well formed: counts match the entries, no
    /// chunk is empty, the length is their sum, and every chunk with more
    /// than one item is within the fill.
    fn check(l: &PackedList, fill: Fill) {
        let mut total = 0;
        for c in (0..l.chunk_count()).map(|i| l.chunk(i)) {
            assert!(c.count > 0, "empty chunk");
            let mut off = 0;
            for _ in 0..c.count {
                off = fwd(&c.data, c.width, off).2;
            }
            assert_eq!(off, c.data.len(), "entries fill the chunk exactly");
            if c.count > 1 {
                assert!(
                    fill.allows(c.data.len(), c.len()),
                    "chunk of {} B, {} items over {fill:?}",
                    c.data.len(),
                    c.count
                );
            }
            total += c.len();
        }
        assert_eq!(total, l.len());
        assert_eq!(
            matches!(l.0, Repr::Many(_)),
            l.chunk_count() > 1,
            "a deque only for two chunks or more"
        );
    }

    fn items(l: &PackedList) -> Vec<Vec<u8>> {
        l.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn entries_round_trip_at_every_header_size() {
        for n in [0, 1, 127, 128, 300, 16383, 16384, 70000] {
            let item: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut buf = vec![0; entry_size(n)];
            write_entry(&mut buf, &item);
            assert_eq!(read_fwd(&buf, 0), (varint_len(n), n, buf.len()), "{n}");
            assert_eq!(read_back(&buf, buf.len()), (varint_len(n), n, 0), "{n}");
            assert_eq!(&buf[varint_len(n)..varint_len(n) + n], &item[..]);
        }
        assert_eq!(entry_size(10), 12, "small items cost 2 bytes");
    }

    #[test]
    fn pushing_many_at_once_builds_the_list_item_by_item_pushes_build() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for fill in [Fill(-2), Fill(-1), Fill(5), Fill(1), Fill(0)] {
            for round in 0..40 {
                let pushed: Vec<Vec<u8>> = (0..rng.gen_range(1..1500))
                    .map(|i| {
                        let n = if round % 5 == 0 {
                            rng.gen_range(0..3000)
                        } else {
                            10
                        };
                        (0..n).map(|j| (i + j) as u8).collect()
                    })
                    .collect();
                let refs: Vec<&[u8]> = pushed.iter().map(Vec::as_slice).collect();
                let start: Vec<Vec<u8>> = (0..rng.gen_range(0..800))
                    .map(|i| format!("s{i}").into_bytes())
                    .collect();
                for front in [false, true] {
                    let (mut one, mut all) = (PackedList::new(), PackedList::new());
                    for s in &start {
                        one.push_back(s, fill);
                        all.push_back(s, fill);
                    }
                    for i in &refs {
                        if front {
                            one.push_front(i, fill);
                        } else {
                            one.push_back(i, fill);
                        }
                    }
                    all.push_all(&refs, front, fill);
                    check(&all, fill);
                    assert_eq!(items(&all), items(&one), "{fill:?} front {front}");
                    let shape = |l: &PackedList| -> Vec<usize> {
                        (0..l.chunk_count()).map(|i| l.chunk(i).len()).collect()
                    };
                    assert_eq!(shape(&all), shape(&one), "{fill:?} front {front}");
                    // One allocation per chunk, of exactly its entries.
                    let tail = if front { 0 } else { all.chunk_count() - 1 };
                    let c = all.chunk(tail);
                    assert_eq!(c.data.capacity(), c.data.len());
                }
            }
        }
    }

    #[test]
    fn a_small_list_is_one_allocation_behind_its_box() {
        // Box<PackedList> is what Value::List holds: 32 B (mimalloc's 32
        // class) plus the chunk's bytes.
        assert_eq!(std::mem::size_of::<PackedList>(), 32);
        let l: Box<PackedList> = (0..10).map(|i| format!("member{i:03}")).collect();
        assert!(matches!(l.0, Repr::One(_)));
        assert_eq!(l.chunk(0).data.capacity(), 90, "fixed width, exact growth");
    }

    #[test]
    fn fill_follows_redis_rules() {
        assert!(Fill(-2).allows(8192, 100_000));
        assert!(!Fill(-2).allows(8193, 1));
        assert!(Fill(-1).allows(4096, 1) && !Fill(-1).allows(4097, 1));
        assert!(Fill(-5).allows(65536, 1) && !Fill(-5).allows(65537, 1));
        assert!(Fill(5).allows(100, 5) && !Fill(5).allows(100, 6));
        assert!(!Fill(1000).allows(8193, 2), "8 KiB safety limit");
        for f in [0, -6, i64::MIN] {
            assert!(!Fill(f).allows(10, 1), "{f}: one item per chunk");
        }
    }

    #[test]
    fn chunks_split_at_the_fill() {
        let fill = Fill(-1);
        let mut l = PackedList::new();
        for i in 0..10_000 {
            l.push_back(format!("member{i:04}").as_bytes(), fill);
        }
        check(&l, fill);
        // Fixed width: 10 B per entry, 4096 B per chunk.
        assert_eq!(l.chunk_count(), 10_000usize.div_ceil(4096 / 10));
        assert_eq!(l.get(5000), Some(&b"member5000"[..]));
        // Items of 9 and 10 bytes in turn: variable, 11.5 B per entry.
        let mut l = PackedList::new();
        for i in 0..10_000 {
            let item = format!("member{i:04}");
            l.push_back(&item.as_bytes()[..9 + i % 2], fill);
        }
        check(&l, fill);
        assert_eq!(l.chunk_count(), 10_000usize.div_ceil(4096 * 2 / 23));
        assert!((0..l.chunk_count()).all(|i| !l.chunk(i).is_fixed()));
        assert_eq!(l.get(5001), Some(&b"member5001"[..]));
        let mut l = PackedList::new();
        for i in 0..10 {
            l.push_front(&[i], Fill(3));
        }
        check(&l, Fill(3));
        assert_eq!(l.chunk_count(), 4);
        // A big item gets a chunk of its own.
        l.insert(5, &vec![7; 20_000], Fill(3));
        check(&l, Fill(3));
        assert_eq!(l.get(5).map(<[u8]>::len), Some(20_000));
    }

    /// Random operations on a list and on a VecDeque reference give the
    /// same items, for several fills (small ones cross chunks often).
    #[test]
    fn behaves_like_a_vecdeque() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Items of random lengths, then mostly of one length (fixed-width
        // chunks that turn variable now and then).
        let cases = [
            (-2, false),
            (-1, false),
            (1, false),
            (3, false),
            (0, false),
            (40, false),
        ]
        .into_iter()
        .chain([(-2, true), (-1, true), (3, true)]);
        for (fill, same) in cases {
            let fill = Fill(fill);
            let mut l = PackedList::new();
            let mut r: VecDeque<Vec<u8>> = VecDeque::new();
            let mut longest = 0;
            for step in 0..20_000 {
                let item: Vec<u8> = {
                    let n = match rng.gen_range(0..20) {
                        _ if same && rng.gen_range(0..30) > 0 => 10,
                        0 => rng.gen_range(128..300),
                        1 => rng.gen_range(1000..3500),
                        2 if step % 50 == 0 => rng.gen_range(5000..9000),
                        _ => rng.gen_range(0..12),
                    };
                    (0..n).map(|_| rng.gen_range(b'a'..b'e')).collect()
                };
                let len = r.len();
                match rng.gen_range(0..18) {
                    0 | 1 | 14 | 15 => {
                        l.push_back(&item, fill);
                        r.push_back(item);
                    }
                    2 | 3 | 16 | 17 => {
                        l.push_front(&item, fill);
                        r.push_front(item);
                    }
                    4 => assert_eq!(l.pop_front().map(|b| b.to_vec()), r.pop_front()),
                    5 => assert_eq!(l.pop_back().map(|b| b.to_vec()), r.pop_back()),
                    6 => {
                        let i = rng.gen_range(0..=len);
                        l.insert(i, &item, fill);
                        r.insert(i, item);
                    }
                    7 => {
                        let i = rng.gen_range(0..len + 2);
                        assert_eq!(l.set(i, &item, fill), i < len);
                        if i < len {
                            r[i] = item;
                        }
                    }
                    8 => {
                        let i = rng.gen_range(0..len + 2);
                        assert_eq!(l.get(i), r.get(i).map(|v| &v[..]));
                    }
                    9 if len > 0 => {
                        // Mostly a few items off each end, so the list
                        // still grows over many chunks.
                        let cut = if rng.gen_range(0..200) == 0 { len } else { 3 };
                        let a = rng.gen_range(0..len.min(cut));
                        let b = rng.gen_range(a.max(len - len.min(cut)) + 1..=len);
                        l.trim(a, b);
                        r.truncate(b);
                        r.drain(..a);
                    }
                    10 => {
                        let first = item.first().copied().unwrap_or(b'a');
                        let mut budget = rng.gen_range(0..4);
                        let gone = l.retain(
                            |e| {
                                let drop = e.first() == Some(&first) && budget > 0;
                                budget -= usize::from(drop);
                                !drop
                            },
                            fill,
                        );
                        let mut budget2 = gone;
                        r.retain(|e| {
                            let drop = e.first() == Some(&first) && budget2 > 0;
                            budget2 -= usize::from(drop);
                            !drop
                        });
                        assert_eq!(budget2, 0);
                    }
                    11 => {
                        let i = rng.gen_range(0..len + 2);
                        let got: Vec<&[u8]> = l.iter_from(i).take(5).collect();
                        let want: Vec<&[u8]> = r.iter().skip(i).take(5).map(|v| &v[..]).collect();
                        assert_eq!(got, want);
                    }
                    12 => {
                        let got: Vec<&[u8]> = l.iter().rev().take(7).collect();
                        let want: Vec<&[u8]> = r.iter().rev().take(7).map(|v| &v[..]).collect();
                        assert_eq!(got, want);
                    }
                    _ => {
                        // Both ends at once, until they meet.
                        let (mut it, mut want) = (l.iter(), r.iter());
                        loop {
                            let (got, w) = if rng.gen_bool(0.5) {
                                (it.next(), want.next())
                            } else {
                                (it.next_back(), want.next_back())
                            };
                            assert_eq!(got, w.map(|v| &v[..]));
                            if w.is_none() {
                                break;
                            }
                        }
                    }
                }
                assert_eq!(l.len(), r.len());
                longest = longest.max(l.len());
                if step % 500 == 0 {
                    check(&l, fill);
                    assert_eq!(
                        items(&l),
                        r.iter().cloned().collect::<Vec<_>>(),
                        "{fill:?} step {step}"
                    );
                }
            }
            check(&l, fill);
            assert_eq!(items(&l), r.iter().cloned().collect::<Vec<_>>());
            assert!(longest > 1000, "{fill:?}: the list grew to {longest} items");
        }
    }
}
