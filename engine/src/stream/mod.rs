//! The stream type (Redis 7.0's `t_stream.c`): entries in nodes keyed by
//! their master ID, each node a Redis listpack laid out exactly as Redis
//! lays it out (a master entry with the first entry's field names, then
//! each entry as flags, ID deltas from the master, its values (or fields
//! and values when they differ from the master's) and its element count),
//! so RDB/DUMP carry the nodes byte for byte; consumer groups with their
//! pending entries lists and consumers.
//!
//! Nodes live in an ordered map rather than Redis's radix tree; XINFO's
//! `radix-tree-nodes` is computed as the tree Redis would build for the
//! same node keys ([`Stream::rax_nodes`]).

pub mod lp;

use bytes::Bytes;
use lp::Ele;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// An entry ID: milliseconds and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id {
    pub ms: u64,
    pub seq: u64,
}

impl Id {
    pub const MIN: Id = Id { ms: 0, seq: 0 };
    pub const MAX: Id = Id {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Id {
        Id { ms, seq }
    }

    /// The next ID (`streamIncrID`), `None` after the last one.
    pub fn incr(self) -> Option<Id> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(Id::new(self.ms + 1, 0))
            }
        } else {
            Some(Id::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`), `None` before the first one.
    pub fn decr(self) -> Option<Id> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(Id::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(Id::new(self.ms, self.seq - 1))
        }
    }

    /// The 16 big-endian bytes Redis keys its trees with.
    pub fn to_be(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// The ID of 16 big-endian bytes.
    pub fn from_be(b: &[u8; 16]) -> Id {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        Id::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
    }

    /// `<ms>-<seq>`.
    pub fn text(self) -> Bytes {
        Bytes::from(format!("{}-{}", self.ms, self.seq))
    }

    pub fn is_zero(self) -> bool {
        self == Id::MIN
    }
}

/// Entry flags in a node.
pub const FLAG_DELETED: i64 = 1;
pub const FLAG_SAMEFIELDS: i64 = 2;

/// `entries_read` when unknown.
pub const ENTRIES_READ_INVALID: i64 = -1;

/// A delivered, not yet acknowledged entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    pub delivery_time: i64,
    pub delivery_count: u64,
    /// The consumer it was last delivered to.
    pub consumer: Box<[u8]>,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consumer {
    pub seen_time: i64,
    /// The IDs of its pending entries (their NACKs are in the group's PEL).
    pub pel: BTreeSet<Id>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_id: Id,
    pub entries_read: i64,
    pub pel: BTreeMap<Id, Nack>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: Id, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Creates consumer `name` (seen now) unless it exists; true if created.
    pub fn create_consumer(&mut self, name: &[u8], now_ms: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.into(),
            Consumer {
                seen_time: now_ms,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// Deletes consumer `name` and its pending entries; how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Gives pending entry `id` to `consumer` (moving it from its owner),
    /// or creates it; returns the NACK.
    pub fn assign(&mut self, id: Id, consumer: &[u8], now_ms: i64, reset: bool) -> &mut Nack {
        if let Some(old) = self.pel.get(&id).map(|n| n.consumer.clone()) {
            if let Some(c) = self.consumers.get_mut(&old) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        let nack = self.pel.entry(id).or_insert_with(|| Nack {
            delivery_time: now_ms,
            delivery_count: 1,
            consumer: consumer.into(),
        });
        if &*nack.consumer != consumer {
            nack.consumer = consumer.into();
        }
        if reset {
            nack.delivery_time = now_ms;
            nack.delivery_count = 1;
        }
        nack
    }

    /// Removes pending entry `id` (from its consumer too); true if it was.
    pub fn ack(&mut self, id: Id) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }
}

/// One entry as a node holds it, located.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Position of its flags element.
    pub flags_at: usize,
    pub flags: i64,
    pub id: Id,
    /// Position of the element after the ID deltas.
    pub rest_at: Option<usize>,
}

/// A node's layout: its counters, master fields and entries.
pub struct NodeView {
    pub live: i64,
    pub deleted: i64,
    pub master_fields: Vec<usize>,
    pub entries: Vec<Slot>,
}

/// The positions of node `lp`'s master field names.
fn master_fields(lp: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = lp::first(lp)
        .and_then(|p| lp::next(lp, p))
        .and_then(|p| lp::next(lp, p));
    let nf = p.map_or(0, |q| lp::get_int(lp, q).max(0));
    for _ in 0..nf {
        p = p.and_then(|q| lp::next(lp, q));
        match p {
            Some(q) => out.push(q),
            None => break,
        }
    }
    out
}

/// Walks node `lp` (master ID `master`).
pub fn view(master: Id, lp: &[u8]) -> NodeView {
    view_while(master, lp, |_| true)
}

/// [`view`], stopping after the first entry `more` says no to.
pub fn view_while(master: Id, lp: &[u8], mut more: impl FnMut(&Slot) -> bool) -> NodeView {
    let mut v = NodeView {
        live: 0,
        deleted: 0,
        master_fields: Vec::new(),
        entries: Vec::new(),
    };
    let Some(mut p) = lp::first(lp) else {
        return v;
    };
    v.live = lp::get_int(lp, p);
    let step = |p: usize| lp::next(lp, p);
    let Some(q) = step(p) else { return v };
    v.deleted = lp::get_int(lp, q);
    let Some(q) = step(q) else { return v };
    let nf = lp::get_int(lp, q).max(0);
    p = q;
    for _ in 0..nf {
        let Some(q) = step(p) else { return v };
        v.master_fields.push(q);
        p = q;
    }
    // The master entry's terminator.
    let Some(q) = step(p) else { return v };
    let mut cur = step(q);
    while let Some(fp) = cur {
        let flags = lp::get_int(lp, fp);
        let Some(msp) = step(fp) else { break };
        let Some(seqp) = step(msp) else { break };
        let id = Id::new(
            master.ms.wrapping_add(lp::get_int(lp, msp) as u64),
            master.seq.wrapping_add(lp::get_int(lp, seqp) as u64),
        );
        let rest = step(seqp);
        let elements = if flags & FLAG_SAMEFIELDS != 0 {
            nf as usize
        } else {
            1 + 2 * rest.map_or(0, |r| lp::get_int(lp, r).max(0) as usize)
        };
        let slot = Slot {
            flags_at: fp,
            flags,
            id,
            rest_at: rest,
        };
        v.entries.push(slot);
        if !more(&slot) {
            break;
        }
        // Skip the entry's elements and its lp-count.
        let mut p = Some(seqp);
        for _ in 0..=elements {
            p = p.and_then(step);
        }
        cur = p.and_then(step);
    }
    v
}

/// [`view_while`] from the last entry to the first (walking back by each
/// entry's element count, as Redis's reverse iterator does): entries in
/// reverse order.
pub fn view_rev_while(master: Id, lp: &[u8], mut more: impl FnMut(&Slot) -> bool) -> NodeView {
    let mut v = NodeView {
        live: 0,
        deleted: 0,
        master_fields: master_fields(lp),
        entries: Vec::new(),
    };
    let mut p = lp::last(lp);
    while let Some(cp) = p {
        let count = lp::get_int(lp, cp);
        if count <= 0 {
            // The master entry's terminator.
            break;
        }
        let mut fp = Some(cp);
        for _ in 0..count {
            fp = fp.and_then(|q| lp::prev(lp, q));
        }
        let Some(fp) = fp else { break };
        let flags = lp::get_int(lp, fp);
        let Some(msp) = lp::next(lp, fp) else { break };
        let Some(seqp) = lp::next(lp, msp) else { break };
        let slot = Slot {
            flags_at: fp,
            flags,
            id: Id::new(
                master.ms.wrapping_add(lp::get_int(lp, msp) as u64),
                master.seq.wrapping_add(lp::get_int(lp, seqp) as u64),
            ),
            rest_at: lp::next(lp, seqp),
        };
        v.entries.push(slot);
        if !more(&slot) {
            break;
        }
        p = lp::prev(lp, fp);
    }
    v
}

impl NodeView {
    /// The field/value pairs of entry `e`, flat.
    pub fn fields<'a>(&self, lp: &'a [u8], e: &Slot) -> Vec<Ele<'a>> {
        let mut out = Vec::new();
        let mut p = e.rest_at;
        if e.flags & FLAG_SAMEFIELDS != 0 {
            for &f in &self.master_fields {
                let Some(q) = p else { break };
                out.push(lp::get(lp, f));
                out.push(lp::get(lp, q));
                p = lp::next(lp, q);
            }
        } else {
            let n = p.map_or(0, |q| lp::get_int(lp, q).max(0));
            p = p.and_then(|q| lp::next(lp, q));
            for _ in 0..2 * n {
                let Some(q) = p else { break };
                out.push(lp::get(lp, q));
                p = lp::next(lp, q);
            }
        }
        out
    }
}

/// An entry read out: its ID and flat field/value pairs.
pub type Entry = (Id, Vec<Bytes>);

/// How XADD/XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    None,
    MaxLen(u64),
    MinId(Id),
}

/// A stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    nodes: BTreeMap<Id, Vec<u8>>,
    pub length: u64,
    pub last_id: Id,
    pub first_id: Id,
    pub max_deleted: Id,
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

/// Largest listpack a node may grow to (`STREAM_LISTPACK_MAX_SIZE`).
pub const LISTPACK_MAX_SIZE: usize = 1 << 30;

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Nodes, by master ID.
    pub fn nodes(&self) -> impl Iterator<Item = (&Id, &Vec<u8>)> {
        self.nodes.iter()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Adds a node read from a file; false if its key is taken.
    pub fn insert_node(&mut self, master: Id, lp: Vec<u8>) -> bool {
        if self.nodes.contains_key(&master) {
            return false;
        }
        self.nodes.insert(master, lp);
        true
    }

    /// Appends an entry with ID `id` (greater than `last_id`) and flat
    /// `fv` pairs, as `streamAppendItem` lays it out. `max_bytes`/
    /// `max_entries` are `stream-node-max-bytes`/`-entries`.
    pub fn append(&mut self, id: Id, fv: &[&[u8]], max_bytes: usize, max_entries: i64) {
        let numfields = fv.len() / 2;
        let total: usize = fv.iter().map(|s| s.len()).sum();
        let node_max = if max_bytes == 0 || max_bytes > LISTPACK_MAX_SIZE {
            LISTPACK_MAX_SIZE
        } else {
            max_bytes
        };
        let mut tail = self.nodes.last_key_value().map(|(k, _)| *k);
        if let Some(k) = tail {
            let lpb = &self.nodes[&k];
            let mut full = lpb.len() + total >= node_max;
            if !full && max_entries > 0 {
                let v0 = lp::first(lpb).map_or(0, |p| lp::get_int(lpb, p));
                let v1 = lp::first(lpb)
                    .and_then(|p| lp::next(lpb, p))
                    .map_or(0, |p| lp::get_int(lpb, p));
                full = v0 + v1 >= max_entries;
            }
            if full {
                // A closed node keeps exactly its bytes (`lpShrinkToFit`).
                // A copy: mimalloc keeps a block shrunk by less than half.
                if let Some(n) = self.nodes.get_mut(&k) {
                    *n = n.as_slice().to_vec();
                }
                tail = None;
            }
        }
        let mut flags = 0i64;
        let master;
        let mut enc = Vec::with_capacity(total + 16 + 3 * fv.len());
        match tail {
            None => {
                master = id;
                let mut node = lp::new();
                lp::enc_int(&mut enc, 1);
                lp::enc_int(&mut enc, 0);
                lp::enc_int(&mut enc, numfields as i64);
                for f in fv.iter().step_by(2) {
                    lp::enc_str(&mut enc, f);
                }
                lp::enc_int(&mut enc, 0);
                lp::append(&mut node, &enc, 4 + numfields);
                enc.clear();
                self.nodes.insert(id, node);
                flags |= FLAG_SAMEFIELDS;
            }
            Some(k) => {
                master = k;
                let node = self.nodes.get_mut(&k).expect("tail node");
                let count = lp::get_int(node, lp::HDR);
                lp::replace_int(node, lp::HDR, count + 1);
                let master_fields = master_fields(node);
                if master_fields.len() == numfields
                    && master_fields
                        .iter()
                        .zip(fv.iter().step_by(2))
                        .all(|(&p, f)| lp::get(node, p).eq_bytes(f))
                {
                    flags |= FLAG_SAMEFIELDS;
                }
            }
        }
        let same = flags & FLAG_SAMEFIELDS != 0;
        lp::enc_int(&mut enc, flags);
        lp::enc_int(&mut enc, id.ms.wrapping_sub(master.ms) as i64);
        lp::enc_int(&mut enc, id.seq.wrapping_sub(master.seq) as i64);
        let mut n = 3;
        if !same {
            lp::enc_int(&mut enc, numfields as i64);
            n += 1;
        }
        for pair in fv.chunks_exact(2) {
            if !same {
                lp::enc_str(&mut enc, pair[0]);
                n += 1;
            }
            lp::enc_str(&mut enc, pair[1]);
            n += 1;
        }
        let mut lp_count = numfields as i64 + 3;
        if !same {
            lp_count += numfields as i64 + 1;
        }
        lp::enc_int(&mut enc, lp_count);
        n += 1;
        let node = self.nodes.get_mut(&master).expect("node");
        lp::append(node, &enc, n);
        self.length = self.length.wrapping_add(1);
        self.entries_added = self.entries_added.wrapping_add(1);
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// Live entries from `start` to `end` inclusive, in order (reversed
    /// with `rev`), at most `count` (0: all); fields only `with_fields`.
    pub fn range(
        &self,
        start: Id,
        end: Id,
        rev: bool,
        count: usize,
        with_fields: bool,
    ) -> Vec<Entry> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let first_node = self.nodes.range(..=start).next_back().map(|(k, _)| *k);
        let lo = first_node.unwrap_or(start);
        let nodes = self
            .nodes
            .range((Bound::Included(lo), Bound::Included(end)));
        let mut visit = |k: &Id, node: &Vec<u8>| -> bool {
            // Forward, the node is read only as far as it is needed.
            // The node is read only as far as it is needed.
            let mut need = if count == 0 {
                usize::MAX
            } else {
                count - out.len()
            };
            let mut counted = |e: &Slot| {
                if e.flags & FLAG_DELETED == 0 && e.id >= start && e.id <= end {
                    need -= 1;
                }
                need > 0
            };
            let v = if rev {
                view_rev_while(*k, node, |e| counted(e) && e.id > start)
            } else {
                view_while(*k, node, |e| counted(e) && e.id < end)
            };
            let mut each = |e: &Slot| -> bool {
                if e.flags & FLAG_DELETED != 0 || e.id < start || e.id > end {
                    return true;
                }
                let fields = if with_fields {
                    v.fields(node, e)
                        .into_iter()
                        .map(|x| Bytes::from(x.to_vec()))
                        .collect()
                } else {
                    Vec::new()
                };
                out.push((e.id, fields));
                count == 0 || out.len() < count
            };
            v.entries.iter().all(&mut each)
        };
        if rev {
            for (k, node) in nodes.rev() {
                if !visit(k, node) {
                    break;
                }
            }
        } else {
            for (k, node) in nodes {
                if !visit(k, node) {
                    break;
                }
            }
        }
        out
    }

    /// The first (or last) entry's ID, tombstones included or not
    /// (`streamGetEdgeID`): `None` when there is none.
    pub fn edge(&self, first: bool, skip_tombstones: bool) -> Option<Id> {
        let ok = |e: &Slot| !skip_tombstones || e.flags & FLAG_DELETED == 0;
        let pick = |(k, node): (&Id, &Vec<u8>)| {
            // Read until the first entry that qualifies.
            let v = if first {
                view_while(*k, node, |e| !ok(e))
            } else {
                view_rev_while(*k, node, |e| !ok(e))
            };
            v.entries.iter().find(|e| ok(e)).map(|e| e.id)
        };
        if first {
            self.nodes.iter().find_map(pick)
        } else {
            self.nodes.iter().rev().find_map(pick)
        }
    }

    /// True if live entry `id` exists.
    pub fn exists(&self, id: Id) -> bool {
        !self.range(id, id, false, 1, false).is_empty()
    }

    /// Deletes entry `id` (`streamDeleteItem`); true if it was there.
    pub fn delete(&mut self, id: Id) -> bool {
        let Some((&k, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let v = view(k, node);
        let Some(e) = v
            .entries
            .iter()
            .find(|e| e.id == id && e.flags & FLAG_DELETED == 0)
        else {
            return false;
        };
        lp::replace_int(node, e.flags_at, e.flags | FLAG_DELETED);
        if v.live == 1 {
            self.nodes.remove(&k);
        } else {
            lp::replace_int(node, lp::HDR, v.live - 1);
            if let Some(p) = lp::next(node, lp::HDR) {
                lp::replace_int(node, p, v.deleted + 1);
            }
        }
        self.length = self.length.saturating_sub(1);
        true
    }

    /// Trims (`streamTrim`); `limit` 0 for none. Returns entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: i64) -> i64 {
        if how == Trim::None {
            return 0;
        }
        let mut deleted = 0i64;
        while let Some((&k, node)) = self.nodes.iter_mut().next() {
            if let Trim::MaxLen(max) = how {
                if self.length <= max {
                    break;
                }
            }
            let v = view(k, node);
            let entries = v.live;
            if limit > 0 && deleted + entries > limit {
                break;
            }
            let remove = match how {
                Trim::MaxLen(max) => self.length.saturating_sub(entries as u64) >= max,
                Trim::MinId(min) => v.entries.last().is_some_and(|e| e.id < min),
                Trim::None => false,
            };
            if remove {
                self.nodes.remove(&k);
                self.length = self.length.saturating_sub(entries as u64);
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let mut from_node = 0i64;
            // Marking an entry rewrites its flags element in place (the same
            // width: 0/2 to 1/3), so positions stay valid.
            for e in &v.entries {
                let stop = match how {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => e.id >= min,
                    Trim::None => true,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    lp::replace_int(node, e.flags_at, e.flags | FLAG_DELETED);
                    from_node += 1;
                    self.length = self.length.saturating_sub(1);
                }
            }
            deleted += from_node;
            lp::replace_int(node, lp::HDR, entries - from_node);
            if let Some(p) = lp::next(node, lp::HDR) {
                lp::replace_int(node, p, v.deleted + from_node);
            }
            break;
        }
        if self.length == 0 {
            self.first_id = Id::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge(true, true).unwrap_or(Id::MAX);
        }
        deleted
    }

    /// `streamEstimateDistanceFromFirstEverEntry`.
    pub fn estimate_distance(&self, id: Id) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return ENTRIES_READ_INVALID;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            if id < self.first_id {
                return self.entries_added.wrapping_sub(self.length) as i64;
            } else if id == self.first_id {
                return self.entries_added.wrapping_sub(self.length).wrapping_add(1) as i64;
            }
        }
        ENTRIES_READ_INVALID
    }

    /// `streamRangeHasTombstones` from `start` to the end.
    pub fn has_tombstones_from(&self, start: Id) -> bool {
        if self.length == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// A group's lag (`streamReplyWithCGLag`), `None` when unknown.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_INVALID && !self.has_tombstones_from(g.last_id) {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        let read = self.estimate_distance(g.last_id);
        (read != ENTRIES_READ_INVALID).then(|| (self.entries_added as i64).wrapping_sub(read))
    }

    /// Number of nodes of the radix tree Redis would hold for these node
    /// keys (`rax->numnodes`): the root, every key's leaf, and every point
    /// where keys branch or follow a branch.
    pub fn rax_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.to_be()).collect();
        rax_nodes(&keys)
    }

    /// Bytes allocated (MEMORY USAGE).
    pub fn mem_bytes(&self) -> usize {
        use crate::memsize::malloc_size;
        // A B-tree leaf holds up to 11 keys and values.
        let per_node = (16 + 24) * 12 / 11;
        let mut n: usize = self
            .nodes
            .values()
            .map(|lp| malloc_size(lp.capacity()) + per_node)
            .sum();
        for (name, g) in &self.groups {
            n += malloc_size(name.len()) + 160;
            n += g
                .pel
                .values()
                .map(|nk| 16 + 40 + malloc_size(nk.consumer.len()) + 16)
                .sum::<usize>();
            n += g
                .consumers
                .keys()
                .map(|c| malloc_size(c.len()) + 40 + 24)
                .sum::<usize>();
        }
        n
    }
}

fn rax_nodes(keys: &[[u8; 16]]) -> usize {
    fn groups(keys: &[[u8; 16]], d: usize) -> Vec<&[[u8; 16]]> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let mut j = i + 1;
            while j < keys.len() && keys[j][d] == keys[i][d] {
                j += 1;
            }
            out.push(&keys[i..j]);
            i = j;
        }
        out
    }
    fn below(keys: &[[u8; 16]], d: usize, branches: bool) -> usize {
        if d == 16 {
            return 0;
        }
        groups(keys, d)
            .into_iter()
            .map(|g| {
                let cd = d + 1;
                let child_branches = cd < 16 && groups(g, cd).len() >= 2;
                let counted = branches || cd == 16 || child_branches;
                counted as usize + below(g, cd, child_branches)
            })
            .sum()
    }
    if keys.is_empty() {
        return 1;
    }
    1 + below(keys, 0, groups(keys, 0).len() >= 2)
}

/// Checks node `lp` deeply (`streamValidateListpackIntegrity`):
/// framing, master entry, every entry's layout and lp-count, the counters.
/// Returns its live entries.
pub fn validate_node(lp: &[u8]) -> Option<i64> {
    let total = lp::valid(lp)?;
    let mut p = lp::first(lp)?;
    let ints = |p: usize| match lp::get(lp, p) {
        Ele::Int(v) => Some(v),
        Ele::Str(_) => None,
    };
    let live = ints(p)?;
    p = lp::next(lp, p)?;
    let deleted = ints(p)?;
    p = lp::next(lp, p)?;
    let nf = ints(p)?;
    if nf < 0 || nf as usize > total {
        return None;
    }
    for _ in 0..nf {
        p = lp::next(lp, p)?;
    }
    p = lp::next(lp, p)?;
    if ints(p)? != 0 {
        return None;
    }
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    let mut cur = lp::next(lp, p);
    while let Some(fp) = cur {
        let flags = ints(fp)?;
        let mut q = lp::next(lp, fp)?;
        ints(q)?;
        q = lp::next(lp, q)?;
        ints(q)?;
        let elements = if flags & FLAG_SAMEFIELDS != 0 {
            nf
        } else {
            q = lp::next(lp, q)?;
            let n = ints(q)?;
            if n < 0 || n as usize > total {
                return None;
            }
            2 * n
        };
        for _ in 0..elements {
            q = lp::next(lp, q)?;
        }
        q = lp::next(lp, q)?;
        let expect = if flags & FLAG_SAMEFIELDS != 0 {
            nf + 3
        } else {
            elements + 4
        };
        if ints(q)? != expect {
            return None;
        }
        if flags & FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            seen_live += 1;
        }
        cur = lp::next(lp, q);
    }
    (seen_live == live && seen_deleted == deleted).then_some(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut Stream, ms: u64, fv: &[&str]) {
        let fv: Vec<&[u8]> = fv.iter().map(|x| x.as_bytes()).collect();
        s.append(Id::new(ms, 0), &fv, 4096, 100);
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        for i in 1..=250 {
            if i % 3 == 0 {
                add(&mut s, i, &["a", "1", "c", "x"]);
            } else {
                add(&mut s, i, &["a", "1", "b", &i.to_string()]);
            }
        }
        assert_eq!(s.length, 250);
        assert_eq!(s.node_count(), 3);
        for (_, n) in s.nodes() {
            assert!(validate_node(n).is_some());
        }
        let r = s.range(Id::new(99, 0), Id::new(101, 0), false, 0, true);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1, vec!["a", "1", "c", "x"]);
        assert_eq!(r[1].1, vec!["a", "1", "b", "100"]);
        let r = s.range(Id::MIN, Id::MAX, true, 2, false);
        assert_eq!(r[0].0, Id::new(250, 0));
        assert!(s.delete(Id::new(100, 0)));
        assert!(!s.delete(Id::new(100, 0)));
        assert!(!s.exists(Id::new(100, 0)));
        assert_eq!(s.length, 249);
        assert_eq!(s.trim(Trim::MaxLen(200), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(100), true, 0), 99);
        assert_eq!(s.trim(Trim::MaxLen(60), false, 0), 90);
        assert_eq!(s.length, 60);
        assert_eq!(s.first_id, Id::new(191, 0));
        assert_eq!(s.trim(Trim::MinId(Id::new(200, 0)), false, 0), 9);
        for (_, n) in s.nodes() {
            assert!(validate_node(n).is_some());
        }
    }

    /// Damaged DUMP payloads (with a valid checksum) load as an error or
    /// as a stream every command can use, never a panic.
    #[test]
    fn damaged_payloads_never_panic() {
        use crate::cmd::run;
        use crate::shard::Shard;
        let mut sh = Shard::new(1, 1);
        let script: &[&[&str]] = &[
            &["XADD", "s", "1-1", "a", "1", "b", "x"],
            &["XADD", "s", "1-2", "a", "2", "b", "-300"],
            &["XADD", "s", "2-1", "c", "3"],
            &["XDEL", "s", "1-2"],
            &["XGROUP", "CREATE", "s", "g", "0"],
            &["XREADGROUP", "GROUP", "g", "al", "STREAMS", "s", ">"],
            &["XGROUP", "CREATECONSUMER", "s", "g", "bo"],
        ];
        for c in script {
            let argv: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            run(&mut sh, 0, 1000, &argv);
        }
        let v = sh.dbs[0].get(b"s").unwrap().value.clone();
        let good = crate::rdb::dump(&v, false);
        let body = &good[..good.len() - 10];
        let lim = crate::value::EncodingLimits::default();
        let probe: &[&[&str]] = &[
            &["XRANGE", "t", "-", "+"],
            &["XREVRANGE", "t", "+", "-"],
            &["XINFO", "STREAM", "t", "FULL"],
            &["XINFO", "GROUPS", "t"],
            &["XPENDING", "t", "g", "-", "+", "10"],
            &["XADD", "t", "*", "a", "1"],
            &["XDEL", "t", "1-1", "2-1"],
            &["XREADGROUP", "GROUP", "g", "al", "STREAMS", "t", "0"],
            &["XAUTOCLAIM", "t", "g", "zz", "0", "0"],
            &["XTRIM", "t", "MAXLEN", "1"],
            &["DEBUG", "DIGEST-VALUE", "t"],
        ];
        let mut loaded = 0;
        for i in 0..body.len() {
            for delta in [1u8, 0x80, 0xFF, 0x3F] {
                let mut b = body.to_vec();
                b[i] = b[i].wrapping_add(delta);
                b.extend_from_slice(&crate::rdb::VERSION.to_le_bytes());
                let mut crc = crate::rdb::crc64();
                crc.update(&b);
                b.extend_from_slice(&crc.finalize().to_le_bytes());
                let Some(Ok(val)) = crate::rdb::undump(&b, &lim) else {
                    continue;
                };
                loaded += 1;
                sh.set(0, b"t", val, 2000);
                for c in probe {
                    let argv: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
                    run(&mut sh, 0, 2000, &argv);
                }
                let v = sh.dbs[0].get(b"t").map(|e| e.value.clone());
                if let Some(v) = v {
                    let _ = crate::rdb::dump(&v, true);
                    let _ = crate::rewrite::rebuild(b"t", &v, None);
                }
            }
        }
        assert!(loaded > 0);
    }

    /// Redis 6's `RDB_TYPE_STREAM_LISTPACKS` loads: no first ID, maximal
    /// deleted ID, entries added nor read counters; they are derived as
    /// Redis 7.0 derives them.
    #[test]
    fn streams_of_redis_6_load() {
        use crate::rdb::write::{len, string};
        let mut st = Stream::new();
        for ms in 1..=5u64 {
            st.append(Id::new(ms, 0), &[b"f", b"v"], 4096, 100);
        }
        let mut out = vec![crate::rdb::TYPE_STREAM_LISTPACKS];
        len(&mut out, st.node_count() as u64);
        for (k, lp) in st.nodes() {
            string(&mut out, &k.to_be(), false);
            string(&mut out, lp, false);
        }
        for n in [st.length, st.last_id.ms, st.last_id.seq, 1] {
            len(&mut out, n);
        }
        string(&mut out, b"g", false);
        len(&mut out, 0);
        len(&mut out, 0);
        len(&mut out, 1);
        out.extend_from_slice(&Id::new(2, 0).to_be());
        out.extend_from_slice(&77i64.to_le_bytes());
        len(&mut out, 3);
        len(&mut out, 1);
        string(&mut out, b"alice", false);
        out.extend_from_slice(&99i64.to_le_bytes());
        len(&mut out, 1);
        out.extend_from_slice(&Id::new(2, 0).to_be());
        out.extend_from_slice(&crate::rdb::VERSION.to_le_bytes());
        let mut crc = crate::rdb::crc64();
        crc.update(&out);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        let lim = crate::value::EncodingLimits::default();
        let Some(Ok(crate::value::Value::Stream(got))) = crate::rdb::undump(&out, &lim) else {
            panic!("a version 1 stream did not load");
        };
        assert_eq!(got.length, 5);
        assert_eq!(got.entries_added, 5);
        assert_eq!(got.first_id, Id::new(1, 0));
        assert_eq!(got.max_deleted, Id::MIN);
        let g = &got.groups[&b"g"[..]];
        // Before the first entry, nothing deleted: none read.
        assert_eq!(g.entries_read, 0);
        assert_eq!(g.pel[&Id::new(2, 0)].delivery_count, 3);
        assert_eq!(&*g.pel[&Id::new(2, 0)].consumer, b"alice");
        assert_eq!(g.consumers[&b"alice"[..]].seen_time, 99);
    }

    #[test]
    fn rax_node_counts() {
        assert_eq!(rax_nodes(&[]), 1);
        let k = |ms: u64| Id::new(ms, 0).to_be();
        assert_eq!(rax_nodes(&[k(1)]), 2);
        assert_eq!(rax_nodes(&[k(1), k(2)]), 6);
        assert_eq!(rax_nodes(&[k(1), k(2), k(3)]), 8);
    }
}
