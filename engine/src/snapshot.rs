//! A point-in-time image of one shard, serialised slot by slot while the
//! shard keeps serving (fork-less snapshots, see docs/persistence.md).
//!
//! The image is the shard's state when [`Shard::snapshot_begin`] ran. The
//! owner serialises a few slots at a time ([`Shard::snapshot_step`]); a
//! write to a key whose slot is not serialised yet first serialises that
//! key as it was, in every database, and marks it so the walk passes it
//! by ([`Shard::before_write`]): copy-on-write at key granularity, so no
//! copy of the dataset is ever made, and a write pays for its own key
//! only, never for the rest of its slot. The output is RDB records only (SELECTDB
//! and entries), without header, footer or checksum: the writer of the
//! file adds those around every shard's bytes; or, for an AOF base with
//! `aof-use-rdb-preamble no`, RESP commands (SELECT, then each key's
//! rebuilding commands, see `rewrite.rs`).

use crate::db::Db;
use crate::rdb::write;
use crate::shard::Shard;
use crate::slot::SLOTS;

/// How a snapshot encodes its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// RDB records, strings LZF-compressed with `compress`.
    Rdb { compress: bool },
    /// The commands that rebuild each key (an AOF base as commands).
    Commands,
}

/// A snapshot in progress on one shard.
pub struct Snapshot {
    /// The next slot the background walk looks at, and the end of the
    /// shard's range.
    next: usize,
    end: usize,
    /// Slots already serialised (one bit each).
    done: Box<[u64; SLOTS / 64]>,
    /// Records not yet taken by the writer.
    out: Vec<u8>,
    /// The database the last record in `out` belongs to.
    cur_db: Option<usize>,
    form: Form,
    /// Keys serialised so far.
    keys: u64,
    /// Keys serialised (or found absent) before a write, ahead of the
    /// walk, which passes them by in every database; and the slots that
    /// hold any (one bit each), so the walk looks them up only there.
    marked: hashbrown::HashSet<Box<[u8]>>,
    marked_slots: Box<[u64; SLOTS / 64]>,
    /// The slot at `next` when it is too big for one go, part way.
    part: Option<Part>,
}

/// How many entries ahead of the one it writes a snapshot's walk loads.
const AHEAD: usize = 4;

/// A slot with more keys than this in a database is walked in parts (a
/// million keys under one hash tag held their core for a quarter of a
/// second). Smaller ones go in one go, with the walk's prefetching, about
/// a millisecond at most; evenly spread, a node reaches this at 67M keys.
const PART_MIN: usize = 4096;
/// Table words a part covers: about 200 entries at the tables' load.
const PART_WORDS: usize = 256;

/// A big slot part way through its walk: the databases before `db` are
/// done, and in `db` the entries whose home position, in a table of the
/// capacity each stage names, is below that stage's end. A stage starts
/// whenever the table is found at a new capacity, since homes move with
/// it (`SlotDict::home_in`); an entry any stage covers is done. Nothing
/// is held across steps but these numbers: the table may grow, shrink
/// and lose entries in between (each write serialises its key first,
/// [`Shard::before_write`]).
struct Part {
    db: usize,
    stages: Vec<(usize, usize)>,
}

impl Part {
    /// Whether the entry of hash `h` in database `db` is done.
    fn covers(&self, db: usize, h: u64) -> bool {
        db < self.db || (db == self.db && staged(&self.stages, h))
    }
}

/// Whether one of `stages` covered the entry of hash `h`.
fn staged(stages: &[(usize, usize)], h: u64) -> bool {
    stages
        .iter()
        .any(|&(cap, end)| crate::dict::SlotDict::home_in(cap, h) < end)
}

impl Snapshot {
    /// Serialises `slot` of every database unless already done, but for
    /// the keys [`Shard::before_write`] serialised already.
    fn slot(&mut self, dbs: &[Db], slot: usize) {
        let (w, b) = (slot / 64, 1u64 << (slot % 64));
        if self.done[w] & b != 0 {
            return;
        }
        self.done[w] |= b;
        let marks = self.marked_slots[w] & b != 0;
        for (i, db) in dbs.iter().enumerate() {
            if db.slot_len(slot as u16) == 0 {
                continue;
            }
            // Each entry is written while the value four entries ahead is
            // being loaded (a value is a cache miss of its own): a ring of
            // the next four, so a slot of any size costs no more memory.
            let mut it = db.slot_entries(slot as u16);
            let mut ring: [Option<(&[u8], &crate::entry::Entry)>; AHEAD] = [None; AHEAD];
            for r in ring.iter_mut() {
                *r = it.next();
                if let Some((_, e)) = r {
                    e.value.prefetch_heap();
                }
            }
            let mut k = 0;
            while let Some((key, e)) = ring[k % AHEAD].take() {
                let next = it.next();
                if let Some((_, n)) = next {
                    n.value.prefetch_heap();
                }
                ring[k % AHEAD] = next;
                k += 1;
                if marks && self.marked.contains(key) {
                    continue;
                }
                self.record(i, key, e);
            }
        }
    }

    /// Serialises the next part of big `slot` (the one at `next`), and
    /// returns true once all of it is done.
    fn slot_part(&mut self, dbs: &[Db], slot: usize) -> bool {
        let mut p = self.part.take().unwrap_or(Part {
            db: 0,
            stages: Vec::new(),
        });
        let (w, b) = (slot / 64, 1u64 << (slot % 64));
        let marks = self.marked_slots[w] & b != 0;
        while let Some(db) = dbs.get(p.db) {
            let Some((dict, seed)) = db.slot_dict(slot as u16) else {
                p.db += 1;
                p.stages.clear();
                continue;
            };
            let cap = dict.capacity();
            if p.stages.last().is_none_or(|&(c, _)| c != cap) {
                p.stages.push((cap, 0));
            }
            let n = p.stages.len();
            let (earlier, now) = p.stages.split_at_mut(n - 1);
            let lo = now[0].1;
            if lo >= cap {
                p.db += 1;
                p.stages.clear();
                continue;
            }
            let hi = (lo + PART_WORDS).min(cap);
            for (h, e) in dict.homed_in(seed, lo, hi) {
                if staged(earlier, h) || (marks && self.marked.contains(e.key())) {
                    continue;
                }
                self.record(p.db, e.key(), e);
            }
            now[0].1 = hi;
            self.part = Some(p);
            return false;
        }
        self.done[w] |= b;
        true
    }

    /// Serialises `key`'s entry `e` of database `db`.
    fn record(&mut self, db: usize, key: &[u8], e: &crate::entry::Entry) {
        let select = self.cur_db != Some(db);
        self.cur_db = Some(db);
        match self.form {
            Form::Rdb { compress } => {
                if select {
                    write::select(&mut self.out, db);
                }
                write::entry(&mut self.out, key, &e.value, e.expire_at(), compress);
            }
            Form::Commands => {
                if select {
                    crate::rewrite::write_select(&mut self.out, db);
                }
                crate::rewrite::write_commands(&mut self.out, key, &e.value, e.expire_at());
            }
        }
        self.keys += 1;
    }

    /// Serialises `key` of `slot` in every database, ahead of the walk,
    /// unless its slot or the key itself is done already.
    fn key(&mut self, dbs: &[Db], slot: usize, key: &[u8]) {
        let (w, b) = (slot / 64, 1u64 << (slot % 64));
        if self.done[w] & b != 0 || (self.marked_slots[w] & b != 0 && self.marked.contains(key)) {
            return;
        }
        // (The slot at `next` may be part way: what its walk did is done.)
        let part = self.part.take();
        let walked = part.as_ref().filter(|_| slot == self.next);
        for (i, db) in dbs.iter().enumerate() {
            if db.slot_len(slot as u16) == 0 || walked.is_some_and(|p| p.covers(i, db.hash_of(key)))
            {
                continue;
            }
            if let Some(e) = db.get(key) {
                self.record(i, key, e);
            }
        }
        self.part = part;
        self.marked.insert(key.into());
        self.marked_slots[w] |= b;
    }

    /// The writer took the bytes: the next record starts a new chunk, so it
    /// names its database again.
    fn taken(&mut self) {
        self.cur_db = None;
    }
}

impl Shard {
    /// Starts a snapshot of `slots` (this shard's range): the image is the
    /// state now, encoded as `form`. Replaces a snapshot left unfinished.
    pub fn snapshot_begin(&mut self, slots: std::ops::Range<usize>, form: Form) {
        self.snapshot = Some(Box::new(Snapshot {
            next: slots.start,
            end: slots.end.min(SLOTS),
            done: Box::new([0; SLOTS / 64]),
            out: Vec::new(),
            cur_db: None,
            form,
            keys: 0,
            marked: hashbrown::HashSet::new(),
            marked_slots: Box::new([0; SLOTS / 64]),
            part: None,
        }));
    }

    /// True while a snapshot is in progress.
    pub fn snapshot_active(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Serialises slots until at least `keys` keys (or `bytes` bytes of
    /// records wait for the writer) or the range ends; returns true once
    /// every slot is done.
    pub fn snapshot_step(&mut self, keys: u64, bytes: usize) -> bool {
        let Some(s) = &mut self.snapshot else {
            return true;
        };
        let until = s.keys.saturating_add(keys);
        while s.next < s.end && s.keys < until && s.out.len() < bytes {
            let slot = s.next;
            if s.part.is_some() || self.dbs.iter().any(|d| d.slot_len(slot as u16) > PART_MIN) {
                if s.slot_part(&self.dbs, slot) {
                    s.next += 1;
                }
                continue;
            }
            s.next += 1;
            // Each key is a chain of cache misses (table, entry, value):
            // start loading the next slots' while this one is written.
            for db in self.dbs.iter() {
                db.prefetch_walk(slot + 3, 0);
                db.prefetch_walk(slot + 2, 1);
                db.prefetch_walk(slot + 1, 2);
            }
            s.slot(&self.dbs, slot);
        }
        s.next >= s.end
    }

    /// Serialises every slot left (before a write that touches them all:
    /// FLUSHALL, FLUSHDB, SWAPDB).
    pub fn snapshot_all(&mut self) {
        self.snapshot_step(u64::MAX, usize::MAX);
    }

    /// Bytes of records waiting for the writer.
    pub fn snapshot_pending(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.out.len())
    }

    /// Takes the records serialised so far.
    pub fn snapshot_take(&mut self) -> Vec<u8> {
        match &mut self.snapshot {
            Some(s) => {
                s.taken();
                std::mem::take(&mut s.out)
            }
            None => Vec::new(),
        }
    }

    /// Ends the snapshot (done or abandoned).
    pub fn snapshot_end(&mut self) {
        self.snapshot = None;
    }

    /// `slot`'s keys just came from another shard, whose image, if it has
    /// one, does not hold them (it began after they left: a shard gives a
    /// slot up only without a snapshot): this shard's image takes them,
    /// whether or not its walk has been there.
    pub(crate) fn snapshot_moved_in(&mut self, slot: u16) {
        if let Some(s) = &mut self.snapshot {
            let slot = slot as usize % SLOTS;
            s.done[slot / 64] &= !(1u64 << (slot % 64));
            s.slot(&self.dbs, slot);
        }
    }

    /// Called before `key` is modified (in any database): when a snapshot
    /// has not reached its slot yet, serialises the key first as it is in
    /// every database (or notes it absent), so the image keeps the old
    /// value and the walk passes it by.
    #[inline]
    pub fn before_write(&mut self, key: &[u8]) {
        if let Some(s) = &mut self.snapshot {
            let slot = crate::slot::slot_of(key) as usize;
            if slot < s.end && slot >= s.next {
                s.key(&self.dbs, slot, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::run;
    use crate::rdb::read::{self, Item};
    use crate::value::EncodingLimits;

    /// The keys and values in a stream of records, read back as a file.
    fn image(records: &[u8]) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
        let mut file = Vec::new();
        write::header(&mut file);
        file.extend_from_slice(records);
        file.push(255);
        file.extend_from_slice(&[0; 8]);
        let mut db = 0;
        let mut out = Vec::new();
        read::file(&file, &EncodingLimits::default(), |it| match it {
            Item::Db(d) => db = d,
            Item::Entry(e) => {
                let v = match e.value {
                    crate::value::Value::Str(s) => s.to_vec(),
                    _ => b"?".to_vec(),
                };
                out.push((db, e.key, v))
            }
            _ => {}
        })
        .unwrap();
        out.sort();
        out
    }

    #[test]
    fn a_snapshot_is_the_state_at_its_start_whatever_is_written_meanwhile() {
        let mut s = Shard::new(2, 1);
        for i in 0..2000 {
            let k = format!("k{i}");
            run(&mut s, i % 2, 0, &[b"SET", k.as_bytes(), b"old"]);
        }
        s.snapshot_begin(0..SLOTS, Form::Rdb { compress: true });
        let mut bytes = Vec::new();
        let mut i = 0;
        while !s.snapshot_step(50, usize::MAX) {
            // Writes in between: overwrite, delete, add, flush-free.
            for j in 0..20 {
                let k = format!("k{}", (i * 37 + j * 101) % 2000);
                let db = (i + j) % 2;
                run(&mut s, db, 0, &[b"SET", k.as_bytes(), b"new"]);
                run(&mut s, 1 - db, 0, &[b"DEL", k.as_bytes()]);
                let n = format!("n{i}-{j}");
                run(&mut s, db, 0, &[b"SET", n.as_bytes(), b"new"]);
            }
            bytes.extend(s.snapshot_take());
            i += 1;
        }
        bytes.extend(s.snapshot_take());
        s.snapshot_end();
        let got = image(&bytes);
        let want: Vec<_> = {
            let mut v: Vec<_> = (0..2000)
                .map(|i| (i % 2, format!("k{i}").into_bytes(), b"old".to_vec()))
                .collect();
            v.sort();
            v
        };
        assert!(i > 5, "the walk took several steps");
        assert_eq!(got, want);
    }

    #[test]
    fn a_write_ahead_of_the_walk_serialises_its_own_key_only() {
        let mut s = Shard::new(2, 1);
        // One slot (a hash tag), in both databases.
        for i in 0..100 {
            let k = format!("{{t}}{i}");
            run(&mut s, i % 2, 0, &[b"SET", k.as_bytes(), b"old"]);
        }
        s.snapshot_begin(0..SLOTS, Form::Rdb { compress: false });
        run(&mut s, 1, 0, &[b"SET", b"{t}5", b"new"]);
        run(&mut s, 0, 0, &[b"SET", b"{t}5", b"newer"]);
        run(&mut s, 0, 0, &[b"DEL", b"{t}6"]);
        run(&mut s, 0, 0, &[b"SET", b"{t}new", b"new"]);
        let early = s.snapshot_take();
        assert_eq!(
            image(&early),
            vec![
                (0, b"{t}6".to_vec(), b"old".to_vec()),
                (1, b"{t}5".to_vec(), b"old".to_vec()),
            ]
        );
        assert!(s.snapshot_step(u64::MAX, usize::MAX));
        let mut all = early;
        all.extend(s.snapshot_take());
        let want: Vec<_> = {
            let mut v: Vec<_> = (0..100)
                .map(|i| (i % 2, format!("{{t}}{i}").into_bytes(), b"old".to_vec()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(image(&all), want);
    }

    /// A slot too big for one step is walked in parts, and the image is
    /// still the state at the start while writes in between grow the
    /// slot's table, shrink it, delete, overwrite and add keys.
    #[test]
    fn a_big_slot_is_walked_in_parts_whatever_its_table_does_meanwhile() {
        const N: usize = 12000;
        let mut s = Shard::new(2, 1);
        for i in 0..N {
            let k = format!("{{t}}{i}");
            run(&mut s, i % 2, 0, &[b"SET", k.as_bytes(), b"old"]);
        }
        s.snapshot_begin(0..SLOTS, Form::Rdb { compress: false });
        let mut bytes = Vec::new();
        let (mut steps, mut caps) = (0, std::collections::HashSet::new());
        while !s.snapshot_step(1, usize::MAX) {
            steps += 1;
            let db = steps % 2;
            if steps < 6 {
                // Grow: new keys (the table grows by half at 4/5 full).
                for j in 0..1000 {
                    let k = format!("{{t}}new{steps}-{j}");
                    run(&mut s, db, 0, &[b"SET", k.as_bytes(), b"new"]);
                }
            } else if steps < 21 {
                // Shrink: delete most keys (a fifth full shrinks it).
                for j in 0..800 {
                    let k = format!("{{t}}{}", (steps - 6) * 800 + j);
                    run(&mut s, 0, 0, &[b"DEL", k.as_bytes()]);
                    run(&mut s, 1, 0, &[b"DEL", k.as_bytes()]);
                    let k = format!("{{t}}new{}-{}", (steps - 6) / 3, j + (steps % 3) * 200);
                    run(&mut s, 0, 0, &[b"DEL", k.as_bytes()]);
                    run(&mut s, 1, 0, &[b"DEL", k.as_bytes()]);
                }
            }
            let k = format!("{{t}}{}", (steps * 31) % N);
            run(&mut s, db, 0, &[b"SET", k.as_bytes(), b"over"]);
            let slot = crate::slot::slot_of(b"{t}") as usize;
            caps.insert(
                s.dbs[0]
                    .slot_dict(slot as u16)
                    .map_or(0, |d| d.0.capacity()),
            );
            bytes.extend(s.snapshot_take());
        }
        bytes.extend(s.snapshot_take());
        s.snapshot_end();
        let want: Vec<_> = {
            let mut v: Vec<_> = (0..N)
                .map(|i| (i % 2, format!("{{t}}{i}").into_bytes(), b"old".to_vec()))
                .collect();
            v.sort();
            v
        };
        assert!(steps > 10, "the slot took {steps} steps");
        assert!(caps.len() > 3, "the table changed size: {caps:?}");
        assert_eq!(image(&bytes), want);
    }

    #[test]
    fn flushall_during_a_snapshot_serialises_the_rest_first() {
        let mut s = Shard::new(1, 1);
        for i in 0..500 {
            let k = format!("k{i}");
            run(&mut s, 0, 0, &[b"SET", k.as_bytes(), b"v"]);
        }
        s.snapshot_begin(0..SLOTS, Form::Rdb { compress: false });
        s.snapshot_step(10, usize::MAX);
        run(&mut s, 0, 0, &[b"FLUSHALL"]);
        assert!(s.snapshot_step(10, usize::MAX));
        assert_eq!(image(&s.snapshot_take()).len(), 500);
    }

    /// The commands form replays into an equal keyspace, databases and
    /// TTLs included, even when the chunks are cut anywhere.
    #[test]
    fn a_commands_image_replays_into_the_same_keyspace() {
        let mut a = Shard::new(2, 1);
        for i in 0..300 {
            let k = format!("k{i}");
            let db = i % 2;
            match i % 5 {
                0 => run(&mut a, db, 0, &[b"SET", k.as_bytes(), b"v"]),
                1 => run(&mut a, db, 0, &[b"RPUSH", k.as_bytes(), b"a", b"b"]),
                2 => run(&mut a, db, 0, &[b"HSET", k.as_bytes(), b"f", b"1"]),
                3 => run(&mut a, db, 0, &[b"SADD", k.as_bytes(), b"1", b"x"]),
                _ => run(&mut a, db, 0, &[b"ZADD", k.as_bytes(), b"2.5", b"m"]),
            };
            if i % 3 == 0 {
                run(&mut a, db, 0, &[b"PEXPIREAT", k.as_bytes(), b"99999999999"]);
            }
        }
        a.snapshot_begin(0..SLOTS, Form::Commands);
        let mut bytes = Vec::new();
        while !a.snapshot_step(7, usize::MAX) {
            bytes.extend(a.snapshot_take());
        }
        bytes.extend(a.snapshot_take());
        assert!(bytes.starts_with(b"*2\r\n$6\r\nSELECT\r\n"));
        let mut b = Shard::new(2, 2);
        let mut db = 0;
        for r in crate::aof::scan::Scanner::new(&bytes, 1) {
            let crate::aof::scan::Item::Command(argv) = r.unwrap().item else {
                panic!("an annotation in a commands image");
            };
            if argv[0] == b"SELECT" {
                db = std::str::from_utf8(argv[1]).unwrap().parse().unwrap();
                continue;
            }
            assert!(!run(&mut b, db, 0, &argv).is_error(), "{argv:?}");
        }
        for d in 0..2 {
            assert_eq!(a.dbs[d].len(), 150);
            for (k, e) in a.dbs[d].iter() {
                let f = b.dbs[d].get(k).unwrap();
                assert_eq!(e.value, f.value);
                assert_eq!(e.expire_at(), f.expire_at());
            }
            assert_eq!(b.dbs[d].len(), 150);
        }
    }
}
