//! A shard: the keyspace one core owns, with its expiry, statistics, WATCH
//! versions and write log. Everything here runs on the owning core only.

use crate::db::{Ahead, Db, Entry, ExpireStep, Node};
use crate::lazyfree::{Garbage, Why};
use crate::value::{EncodingLimits, Value};
use bytes::Bytes;
use hashbrown::{HashMap, HashSet};

/// One write, as it would be replayed: what the AOF appends and what the
/// replication stream sends. Effects that depend on time or randomness are
/// recorded in their deterministic form (e.g. `PEXPIREAT`, `DEL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The database the write applies to.
    pub db: u16,
    /// The command and its arguments.
    pub argv: Vec<Bytes>,
}

/// Counters reported by INFO stats and INFO keyspace.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// `expired_keys`.
    pub expired_keys: u64,
    /// `keyspace_hits`.
    pub keyspace_hits: u64,
    /// `keyspace_misses`.
    pub keyspace_misses: u64,
    /// `evicted_keys`.
    pub evicted_keys: u64,
}

/// A key of a database, as the WATCH and blocking tables name it.
type DbKey = (u16, Box<[u8]>);

/// Keys whose version WATCH compares at EXEC.
#[derive(Debug, Default)]
struct Watched {
    version: u64,
    watchers: u32,
}

/// The data and bookkeeping one core owns.
pub struct Shard {
    /// Databases 0..`databases`.
    pub dbs: Vec<Db>,
    /// INFO counters.
    pub stats: Stats,
    /// Writes since start (INFO `rdb_changes_since_last_save` is built on it).
    pub dirty: u64,
    /// Encoding thresholds for OBJECT ENCODING.
    pub limits: EncodingLimits,
    /// Write records, collected only while a consumer (AOF, replica) is
    /// attached: `None` costs nothing on the write path.
    log: Option<Box<crate::writelog::WriteLog>>,
    /// WATCHed keys: (db, key) → version bumped on every modification.
    watched: HashMap<(u16, Box<[u8]>), Watched>,
    /// Keys clients are blocked on (BLPOP & co), kept by the node.
    blocked_on: HashSet<(u16, Box<[u8]>)>,
    /// Blocked-on keys that received data since the node last looked.
    ready: Vec<(u16, Box<[u8]>)>,
    /// When `Some`, every modified key is recorded (used to write back the
    /// results of a command run on a scratch shard).
    touched: Option<Vec<(u16, Box<[u8]>)>>,
    rng: u64,
    /// Scratch for the name of a key the expiry cycle deletes.
    expire_key: Vec<u8>,
    /// The eviction directives.
    pub evict: crate::evict::Settings,
    pub(crate) evict_pool: crate::evict::Pool,
    /// Where random eviction looks first (databases in turn).
    pub(crate) evict_next_db: usize,
    /// A snapshot in progress ([`crate::snapshot`]).
    pub(crate) snapshot: Option<Box<crate::snapshot::Snapshot>>,
    /// The `lazyfree-lazy-*` directives.
    pub lazy: crate::lazyfree::Settings,
    /// Values set aside to be freed off the core ([`Shard::take_garbage`]).
    garbage: Vec<Garbage>,
    /// A replica's view of expiry (Redis's `expireIfNeeded` with a master
    /// host set): an expired key reads as absent but stays until its
    /// master's DEL arrives, so the replica never diverges from the stream.
    pub keep_expired: bool,
    /// Scripts run here may not write (a read-only replica's, but for
    /// those its master sends): set by the node before each command.
    pub scripts_read_only: bool,
    /// Cluster mode: the check of each command a script calls.
    pub script_route: Option<ScriptRoute>,
    /// Which hash slots this shard owns, when it is one of several (a
    /// script run here must not reach a key of another); `None`: all.
    pub owns: Option<SlotOwner>,
    /// Cluster mode: commands refuse what Redis refuses there (SORT's BY
    /// and GET patterns).
    pub cluster_mode: bool,
    /// Client-side caching's tables, once some client tracks
    /// ([`crate::tracking`]); `None` costs a write one branch.
    pub tracking: Option<Box<crate::tracking::Tracking>>,
    /// Flushes so far (FLUSHDB, FLUSHALL, DEBUG RELOAD): the node tells
    /// its tracking clients once per flush.
    pub flushes: u64,
    /// While `Some`, the commands scripts run here are noted (database,
    /// arguments): MONITOR shows them.
    pub script_calls: Option<Vec<(usize, crate::OwnedArgs)>>,
    /// While set, the commands scripts run here are noted in
    /// `script_counts` for INFO commandstats and errorstats, which the
    /// node takes after the script (Redis counts each command a script
    /// calls),
    pub script_counting: bool,
    /// and timed, when the node times the script itself (one in several).
    pub script_timing: bool,
    pub script_counts: Vec<ScriptCount>,
    /// The event classes collected for keyspace notifications
    /// (`notify::effective` of `notify-keyspace-events`; 0: off).
    pub notify_flags: u32,
    /// Events collected since the node last took them.
    events: Vec<crate::notify::Event>,
}

/// A hash slot's keys and bookkeeping, on their way to the shard that
/// takes the slot over ([`Shard::take_slot`], [`Shard::put_slot`]).
pub struct SlotMove {
    pub slot: u16,
    /// Per database, its entries of the slot.
    dbs: Vec<(usize, Vec<Node>)>,
    /// WATCH versions of the slot's keys, so a transaction that watched
    /// one before the move is judged as if nothing had moved.
    watched: Vec<(DbKey, Watched)>,
}

impl std::fmt::Debug for SlotMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SlotMove {{ slot: {}, keys: {} }}",
            self.slot,
            self.keys()
        )
    }
}

impl SlotMove {
    /// Number of keys moving.
    pub fn keys(&self) -> usize {
        self.dbs.iter().map(|(_, n)| n.len()).sum()
    }
}

/// Tells whether a hash slot belongs to a shard.
pub type SlotOwner = std::sync::Arc<dyn Fn(u16) -> bool + Send + Sync>;

/// Cluster mode: why a command a script calls may not run on this node
/// (a key of a slot it does not serve), if it may not.
pub type ScriptRoute = std::sync::Arc<
    dyn Fn(&'static crate::cmd::Spec, &crate::args::Args) -> Option<&'static str> + Send + Sync,
>;

/// A command a script ran ([`Shard::script_counts`]): the name INFO
/// commandstats counts it under (with its subcommand), how long it took
/// (ns, 0 untimed), and its error reply if it answered one.
#[derive(Debug)]
pub struct ScriptCount {
    pub name: &'static str,
    pub nanos: u64,
    pub error: Option<std::borrow::Cow<'static, str>>,
}

impl Shard {
    /// A shard with `databases` empty databases and a seed for its random
    /// choices (RANDOMKEY, SPOP, expiry sampling).
    pub fn new(databases: usize, seed: u64) -> Self {
        Shard {
            dbs: (0..databases.max(1))
                .map(|i| Db::with_seed(seed.rotate_left(i as u32) ^ 0x5851_F42D_4C95_7F2D))
                .collect(),
            stats: Stats::default(),
            dirty: 0,
            limits: EncodingLimits::default(),
            log: None,
            watched: HashMap::new(),
            blocked_on: HashSet::new(),
            ready: Vec::new(),
            touched: None,
            rng: seed | 1,
            expire_key: Vec::new(),
            evict: Default::default(),
            evict_pool: Default::default(),
            evict_next_db: 0,
            snapshot: None,
            lazy: Default::default(),
            garbage: Vec::new(),
            keep_expired: false,
            scripts_read_only: false,
            script_route: None,
            owns: None,
            cluster_mode: false,
            tracking: None,
            flushes: 0,
            script_calls: None,
            script_counting: false,
            script_timing: false,
            script_counts: Vec::new(),
            notify_flags: 0,
            events: Vec::new(),
        }
    }

    /// A pseudo-random number (xorshift64*; not for cryptography).
    pub fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Starts collecting write records (at logical offset 0 unless a log
    /// exists already).
    pub fn enable_log(&mut self) {
        self.log.get_or_insert_with(Default::default);
    }

    /// Starts collecting write records at logical offset `offset`.
    pub fn enable_log_at(&mut self, offset: u64) {
        self.log = Some(Box::new(crate::writelog::WriteLog::new(offset)));
    }

    /// Stops collecting write records, dropping any not taken.
    pub fn disable_log(&mut self) {
        self.log = None;
    }

    /// Takes the write log away for a while (a script's `REPL_NONE`
    /// commands); [`Shard::resume_log`] puts it back.
    pub fn pause_log(&mut self) -> Option<Box<crate::writelog::WriteLog>> {
        self.log.take()
    }

    /// Puts back a log [`Shard::pause_log`] took.
    pub fn resume_log(&mut self, log: Box<crate::writelog::WriteLog>) {
        self.log = Some(log);
    }

    /// True while write records are collected.
    pub fn log_enabled(&self) -> bool {
        self.log.is_some()
    }

    /// The write log, while one is collected.
    pub fn write_log(&mut self) -> Option<&mut crate::writelog::WriteLog> {
        self.log.as_deref_mut()
    }

    /// Takes the write records collected so far, decoded (tests).
    #[cfg(test)]
    pub fn take_log(&mut self) -> Vec<LogRecord> {
        let mut bytes = Vec::new();
        if let Some(l) = &mut self.log {
            l.take(&mut bytes);
        }
        let mut out: Vec<LogRecord> = Vec::new();
        let mut db = 0u16;
        let mut rest = &bytes[..];
        let limits = crate::resp::Limits::default();
        let mut spans = Vec::new();
        while !rest.is_empty() {
            let consumed = match crate::resp::parse(rest, &limits, &mut spans, &mut Vec::new()) {
                Ok(crate::resp::Parsed::Command { consumed, .. }) => consumed,
                other => panic!("bad log bytes: {other:?}"),
            };
            let argv: Vec<Bytes> = spans
                .iter()
                .map(|&(s, e)| Bytes::copy_from_slice(&rest[s as usize..e as usize]))
                .collect();
            if argv[0].eq_ignore_ascii_case(b"SELECT") {
                db = std::str::from_utf8(&argv[1]).unwrap().parse().unwrap();
            } else {
                out.push(LogRecord { db, argv });
            }
            rest = &rest[consumed..];
        }
        out
    }

    /// Records one write (no-op unless a consumer is attached).
    pub fn log_write(&mut self, db: usize, argv: impl FnOnce() -> Vec<Bytes>) {
        if let Some(log) = &mut self.log {
            log.record_owned(db as u16, &argv());
        }
    }

    /// Logs, ahead of a keyless write that changes this shard's keys only
    /// (FLUSHALL, FLUSHDB, SWAPDB), the slots it owns as `#S:` lines, when
    /// it is one of several: each core logs that write for its own keys,
    /// and a load that replays several cores' logs into one keyspace
    /// applies it to those slots only (node's `persist::aofload`).
    pub fn log_own_slots(&mut self) {
        let (Some(log), Some(owns)) = (&mut self.log, &self.owns) else {
            return;
        };
        let mut line = Vec::new();
        let mut s = 0;
        while s < crate::slot::SLOTS {
            if !owns(s as u16) {
                s += 1;
                continue;
            }
            let start = s;
            while s + 1 < crate::slot::SLOTS && owns(s as u16 + 1) {
                s += 1;
            }
            // Lines loaders read whole (1023 bytes at most, as `#D:`).
            if line.len() > 960 {
                log.annotate(&line);
                line.clear();
            }
            line.extend_from_slice(if line.is_empty() { b"#S:" } else { b"," });
            crate::writelog::push_decimal(&mut line, start as u64);
            if s > start {
                line.push(b'-');
                crate::writelog::push_decimal(&mut line, s as u64);
            }
            s += 1;
        }
        if line.is_empty() {
            // (No slot at all: a cluster node's core that serves none.)
            line.extend_from_slice(b"#S:");
        }
        log.annotate(&line);
    }

    /// The part of FLUSHALL (`db` None) or FLUSHDB that falls in `slots`,
    /// for a load replaying several cores' logs into one keyspace: every
    /// key of those slots goes, with its TTL, and nothing else changes.
    pub fn flush_slots(&mut self, db: Option<usize>, slots: &[(u16, u16)]) {
        for (i, d) in self.dbs.iter_mut().enumerate() {
            if db.is_none_or(|x| x == i) {
                for &(a, b) in slots {
                    for s in a..=b {
                        if d.slot_len(s) > 0 {
                            d.take_slot(s);
                        }
                    }
                }
            }
        }
    }

    /// The part of SWAPDB `a` `b` that falls in `slots` (as
    /// [`Shard::flush_slots`]): those slots' keys change database.
    pub fn swap_slots(&mut self, a: usize, b: usize, slots: &[(u16, u16)]) {
        if a == b || a >= self.dbs.len() || b >= self.dbs.len() {
            return;
        }
        for &(x, y) in slots {
            for s in x..=y {
                let (na, nb) = (self.dbs[a].take_slot(s), self.dbs[b].take_slot(s));
                self.dbs[a].put_nodes(nb);
                self.dbs[b].put_nodes(na);
            }
        }
    }

    /// Records one write given as the command's own arguments: the
    /// request's bytes themselves when it came whole from a client (see
    /// [`crate::Args::wire_bytes`]), else encoded again.
    pub fn log_args(&mut self, db: usize, args: &crate::Args) {
        if let Some(log) = &mut self.log {
            match args.wire_bytes() {
                Some(request) => {
                    debug_assert!({
                        let mut again = Vec::new();
                        crate::writelog::encode(&mut again, args.iter());
                        again == request
                    });
                    log.record_encoded(db as u16, request);
                }
                None => log.record(db as u16, args.iter()),
            }
        }
    }

    /// Records a keyspace event of `class` (Redis's `notifyKeyspaceEvent`):
    /// one test of a flag word while notifications are off.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, db: usize, key: &[u8]) {
        if self.notify_flags & class != 0 {
            self.push_event(event, db, key);
        }
    }

    #[cold]
    fn push_event(&mut self, event: &'static str, db: usize, key: &[u8]) {
        self.events.push(crate::notify::Event {
            event,
            db: db as u16,
            key: Bytes::copy_from_slice(key),
        });
    }

    /// True when events wait in [`Shard::take_events`].
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the keyspace events collected so far.
    pub fn take_events(&mut self) -> Vec<crate::notify::Event> {
        std::mem::take(&mut self.events)
    }

    /// Looks `key` up, deleting it first if its TTL has passed (lazy
    /// expiry). Does not count as a keyspace hit or miss.
    pub fn lookup(&mut self, db: usize, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let e: *mut Entry = self.dbs[db].get_mut(key)?;
        // SAFETY: `e` points into the dictionary, which nothing changes
        // between here and the return in the live case; in the expired case
        // it is not used after the key is removed. (A plain `match` is
        // rejected by today's borrow checker, NLL problem case 3; the raw
        // pointer keeps this to one hash probe.)
        if unsafe { &*e }.is_expired(now_ms) {
            if !self.keep_expired {
                self.delete_expired(db, key);
            }
            return None;
        }
        Some(unsafe { &mut *e })
    }

    /// Like [`Shard::lookup`] for a read: counts a hit or a miss.
    pub fn lookup_read(&mut self, db: usize, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let Some(e) = self.lookup(db, key, now_ms) else {
            self.stats.keyspace_misses += 1;
            self.notify(crate::notify::KEY_MISS, "keymiss", db, key);
            return None;
        };
        let e: *mut Entry = e;
        self.stats.keyspace_hits += 1;
        // SAFETY: counting a hit touches `stats` only, not the dictionary
        // `e` points into.
        let e = unsafe { &mut *e };
        let r = if self.evict.policy.is_lfu() {
            self.random()
        } else {
            0
        };
        e.lru = self.evict.touched(e.lru, now_ms, r);
        Some(e)
    }

    /// Like [`Shard::lookup`] for a write (Redis's `lookupKeyWrite`): no
    /// hit or miss is counted, but the access touches the key's LRU clock
    /// or LFU counter, so keys being written are not the first evicted.
    pub fn lookup_write(&mut self, db: usize, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let r = if self.evict.policy.is_lfu() {
            self.random()
        } else {
            0
        };
        let e: *mut Entry = self.lookup(db, key, now_ms)?;
        // SAFETY: touching reads `evict` only, not the dictionary `e`
        // points into.
        let e = unsafe { &mut *e };
        e.lru = self.evict.touched(e.lru, now_ms, r);
        Some(e)
    }

    /// Deletes `key` if it has expired at `now_ms` (unless
    /// [`Shard::keep_expired`]); returns true if it has expired.
    pub fn expire_if_due(&mut self, db: usize, key: &[u8], now_ms: i64) -> bool {
        match self.dbs[db].get(key) {
            Some(e) if e.is_expired(now_ms) => {
                if !self.keep_expired {
                    self.delete_expired(db, key);
                }
                true
            }
            _ => false,
        }
    }

    fn delete_expired(&mut self, db: usize, key: &[u8]) {
        self.before_write(key);
        if let Some(e) = self.dbs[db].remove(key) {
            self.stream_gone(db, key, &e.value);
            self.free_entry(e, Why::Expire);
        }
        self.stats.expired_keys += 1;
        self.touch(db, key);
        self.log_write(db, || {
            vec![Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)]
        });
        self.notify(crate::notify::EXPIRED, "expired", db, key);
    }

    /// Stores a value, dropping any TTL, and marks the key modified.
    pub fn set(&mut self, db: usize, key: &[u8], value: Value, now_ms: i64) {
        self.before_write(key);
        // An overwrite keeps the key's LFU counter, touched by the write
        // (Redis's `lookupKeyWrite`, then `dbSetValue`).
        let old_lru = self
            .evict
            .policy
            .is_lfu()
            .then(|| self.dbs[db].get(key).map(|e| e.lru))
            .flatten();
        let lru = match old_lru {
            Some(lru) => {
                let r = self.random();
                self.evict.touched(lru, now_ms, r)
            }
            None => self.evict.new_lru(now_ms),
        };
        let old = self.dbs[db].insert(key, value, lru);
        match &old {
            Some(v) => self.stream_gone(db, key, v),
            None => self.notify(crate::notify::NEW, "new", db, key),
        }
        self.free_overwritten(old);
        self.touch(db, key);
    }

    /// A stream deleted or overwritten signals its key ready, as Redis 7.0
    /// does, so XREADGROUP readers blocked on it are told it is gone.
    fn stream_gone(&mut self, db: usize, key: &[u8], old: &Value) {
        if matches!(old, Value::Stream(_)) {
            self.signal_ready(db, key);
        }
    }

    /// Frees a value a write replaced (`lazyfree-lazy-server-del`).
    pub fn free_overwritten(&mut self, old: Option<Value>) {
        if let Some(v) = old {
            self.free_value(v, Why::ServerDel);
        }
    }

    /// Frees `v` now, or sets it aside for another thread when the
    /// deletion may be lazy and freeing it takes more than
    /// [`crate::lazyfree::THRESHOLD`] steps (Redis's `freeObjAsync`).
    pub fn free_value(&mut self, v: Value, why: Why) {
        if self.lazy.lazy(why) && crate::lazyfree::effort(&v) > crate::lazyfree::THRESHOLD {
            self.garbage.push(Garbage::value(v));
        }
    }

    /// [`Shard::free_value`] for a removed entry.
    pub fn free_entry(&mut self, e: Node, why: Why) {
        if self.lazy.lazy(why) && crate::lazyfree::effort(&e.value) > crate::lazyfree::THRESHOLD {
            self.garbage.push(Garbage::entry(e));
        }
    }

    /// Empties database `db` (all of them for `None`), handing the old
    /// contents off whole when `lazy` (FLUSHDB/FLUSHALL ASYNC); returns
    /// how many keys there were.
    pub fn flush(&mut self, db: Option<usize>, lazy: bool) -> usize {
        let range = match db {
            Some(d) => d..d + 1,
            None => 0..self.dbs.len(),
        };
        // Streams readers are blocked on are gone (Redis's
        // `scanDatabaseForDeletedStreams`).
        let gone: Vec<(usize, Box<[u8]>)> = self
            .blocked_on
            .iter()
            .filter(|(d, k)| {
                range.contains(&(*d as usize))
                    && self.dbs[*d as usize]
                        .get(k)
                        .is_some_and(|e| matches!(e.value, Value::Stream(_)))
            })
            .map(|(d, k)| (*d as usize, k.clone()))
            .collect();
        for (d, k) in gone {
            self.signal_ready(d, &k);
        }
        // (Before the keys go: only those that exist are modified.)
        self.touch_all(db);
        let mut n = 0;
        if lazy {
            let old: Vec<Db> = self.dbs[range].iter_mut().map(Db::take).collect();
            n = old.iter().map(Db::len).sum();
            self.garbage.push(Garbage::dbs(old));
        } else {
            for d in &mut self.dbs[range] {
                n += d.clear();
            }
        }
        self.flushes += 1;
        if let Some(t) = &mut self.tracking {
            t.flushed();
        }
        n
    }

    /// Puts back the keys read from this node's RDB or AOF files (`(db,
    /// entry)` pairs for keys this shard owns), as DEBUG RELOAD and DEBUG
    /// LOADAOF do: every database is emptied first when `flush`, else a
    /// key read replaces the one held. Nothing is logged (the files hold
    /// these keys already); WATCHes see every key modified, and a snapshot
    /// in progress keeps the contents it started with.
    pub fn replace_all(
        &mut self,
        entries: Vec<(usize, crate::rdb::read::Entry)>,
        flush: bool,
        lazy: bool,
        now_ms: i64,
    ) {
        self.snapshot_all();
        if flush {
            self.flush(None, lazy);
        } else {
            self.touch_all(None);
        }
        for (db, e) in entries {
            let lru = self.evict.new_lru(now_ms);
            let Some(d) = self.dbs.get_mut(db) else {
                continue;
            };
            let old = d.insert(&e.key, e.value, lru);
            if e.expire_ms.is_some() {
                d.set_expire(&e.key, e.expire_ms);
            }
            self.free_overwritten(old);
        }
    }

    /// Takes what was set aside to free, for the node to hand off.
    pub fn take_garbage(&mut self) -> Vec<Garbage> {
        std::mem::take(&mut self.garbage)
    }

    /// True when something waits in [`Shard::take_garbage`].
    pub fn has_garbage(&self) -> bool {
        !self.garbage.is_empty()
    }

    /// Removes `key` and marks it modified; returns its entry (to move it:
    /// RENAME, MOVE).
    pub fn take(&mut self, db: usize, key: &[u8]) -> Option<Node> {
        self.before_write(key);
        let e = self.dbs[db].remove(key)?;
        self.stream_gone(db, key, &e.value);
        self.touch(db, key);
        Some(e)
    }

    /// Deletes `key` (freeing its value as `why` allows) and marks it
    /// modified; returns whether it existed.
    pub fn delete(&mut self, db: usize, key: &[u8], why: Why) -> bool {
        match self.take(db, key) {
            Some(e) => {
                self.free_entry(e, why);
                true
            }
            None => false,
        }
    }

    /// [`Shard::delete`] of an implicit delete (`lazyfree-lazy-server-del`).
    pub fn remove(&mut self, db: usize, key: &[u8]) -> bool {
        self.delete(db, key, Why::ServerDel)
    }

    /// Marks `key` modified: bumps its WATCH version and records it when a
    /// write-back is being tracked. Every write path calls this (Redis's
    /// `signalModifiedKey`).
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some(w) = self.watched.get_mut(&(db as u16, Box::from(key))) {
                w.version += 1;
            }
        }
        if let Some(t) = &mut self.touched {
            t.push((db as u16, key.into()));
        }
        if let Some(t) = &mut self.tracking {
            t.modified(key);
        }
    }

    /// The tracking tables, made on first use.
    pub fn tracking(&mut self) -> &mut crate::tracking::Tracking {
        self.tracking.get_or_insert_with(Default::default)
    }

    /// Records `key` as written for a write-back being tracked, without
    /// touching WATCH: for writes Redis does not signal (a consumer
    /// group's changes: XREADGROUP, XACK, XCLAIM, XGROUP SETID ...).
    pub fn written(&mut self, db: usize, key: &[u8]) {
        if let Some(t) = &mut self.touched {
            t.push((db as u16, key.into()));
        }
    }

    /// Marks every watched key of `db` (or of all databases) that exists
    /// modified, before FLUSHDB or FLUSHALL empties it: a watched key that
    /// did not exist stays unmodified (Redis 7.0's
    /// `touchAllWatchedKeysInDb`).
    pub fn touch_all(&mut self, db: Option<usize>) {
        let dbs = &self.dbs;
        for ((d, k), w) in self.watched.iter_mut() {
            let here = dbs.get(*d as usize).is_some_and(|x| x.get(k).is_some());
            if db.is_none_or(|x| x as u16 == *d) && here {
                w.version += 1;
            }
        }
    }

    /// SWAPDB `a` `b`, before the swap: a watched key of either database
    /// is modified when it exists in one of the two.
    pub fn touch_swapped(&mut self, a: usize, b: usize) {
        let dbs = &self.dbs;
        let exists = |d: usize, k: &[u8]| dbs.get(d).is_some_and(|x| x.get(k).is_some());
        for ((d, k), w) in self.watched.iter_mut() {
            let d = *d as usize;
            if (d == a || d == b) && (exists(a, k) || exists(b, k)) {
                w.version += 1;
            }
        }
    }

    /// Takes `slot` out of this shard, every database's keys with their
    /// TTLs and WATCH versions, for another shard to take over; clients
    /// that read its keys (existing or not) get invalidations (the keys'
    /// new shard has not seen their reads). `None`, and nothing changes, when a client is
    /// blocked on one of its keys or a snapshot is walking the shard.
    pub fn take_slot(&mut self, slot: u16) -> Option<SlotMove> {
        let ours = |k: &DbKey| crate::slot::slot_of(&k.1) == slot;
        if self.snapshot.is_some()
            || self.blocked_on.iter().any(ours)
            || self.ready.iter().any(ours)
        {
            return None;
        }
        let mut dbs = Vec::new();
        for (i, db) in self.dbs.iter_mut().enumerate() {
            if db.slot_len(slot) > 0 {
                dbs.push((i, db.take_slot(slot)));
            }
        }
        if let Some(t) = &mut self.tracking {
            t.invalidate_slot(slot);
        }
        let mut watched = Vec::new();
        if !self.watched.is_empty() {
            let keys: Vec<_> = self.watched.keys().filter(|k| ours(k)).cloned().collect();
            for k in keys {
                if let Some(w) = self.watched.remove(&k) {
                    watched.push((k, w));
                }
            }
        }
        Some(SlotMove { slot, dbs, watched })
    }

    /// Takes over a slot another shard gave up ([`Shard::take_slot`]).
    pub fn put_slot(&mut self, m: SlotMove) {
        for (i, nodes) in m.dbs {
            if let Some(db) = self.dbs.get_mut(i) {
                db.put_nodes(nodes);
            }
        }
        self.snapshot_moved_in(m.slot);
        for (k, w) in m.watched {
            match self.watched.entry(k) {
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(w);
                }
                hashbrown::hash_map::Entry::Occupied(mut o) => {
                    // Watches of both sides: neither version may match.
                    let here = o.get_mut();
                    here.version = here.version.max(w.version) + 1;
                    here.watchers += w.watchers;
                }
            }
        }
    }

    /// Registers a WATCH of `key`; returns its current version.
    pub fn watch(&mut self, db: usize, key: &[u8]) -> u64 {
        let w = self.watched.entry((db as u16, key.into())).or_default();
        w.watchers += 1;
        w.version
    }

    /// The current WATCH version of `key` (0 when nobody watches it).
    pub fn watch_version(&self, db: usize, key: &[u8]) -> u64 {
        self.watched
            .get(&(db as u16, Box::from(key)))
            .map_or(0, |w| w.version)
    }

    /// Drops one WATCH of `key`.
    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        let k = (db as u16, Box::from(key));
        if let Some(w) = self.watched.get_mut(&k) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.watched.remove(&k);
            }
        }
    }

    /// Starts or stops recording modified keys.
    pub fn track_touched(&mut self, on: bool) {
        self.touched = on.then(Vec::new);
    }

    /// Takes the keys modified since tracking started.
    pub fn take_touched(&mut self) -> Vec<(u16, Box<[u8]>)> {
        self.touched
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The node tells the shard a client waits for data on `key`.
    pub fn set_blocked_on(&mut self, db: usize, key: &[u8], on: bool) {
        if on {
            self.blocked_on.insert((db as u16, key.into()));
        } else {
            self.blocked_on.remove(&(db as u16, Box::from(key)));
        }
    }

    /// Commands that add elements a blocked client could take call this
    /// (Redis's `signalKeyAsReady`).
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if !self.blocked_on.is_empty() {
            let k = (db as u16, Box::from(key));
            if self.blocked_on.contains(&k) && !self.ready.contains(&k) {
                self.ready.push(k);
            }
        }
    }

    /// Takes the blocked-on keys that received data.
    pub fn take_ready(&mut self) -> Vec<(u16, Box<[u8]>)> {
        std::mem::take(&mut self.ready)
    }

    /// One step of active expiry in `db`: looks at up to `samples` keys
    /// with a TTL and deletes the expired ones. Returns (sampled, expired)
    /// so the caller can repeat while more than a tenth of the sample had
    /// expired, as Redis's adaptive cycle does, within its own time budget.
    pub fn active_expire(&mut self, db: usize, samples: usize, now_ms: i64) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired = 0;
        // (In 128 bits: a TTL may be up to i64::MAX ms.)
        let (mut ttl_sum, mut ttl_samples) = (0i128, 0i128);
        let mut key = std::mem::take(&mut self.expire_key);
        for _ in 0..samples {
            match self.dbs[db].expire_step(now_ms, &mut key) {
                None => break,
                Some(ExpireStep::Alive(ttl)) => {
                    if ttl > 0 {
                        ttl_sum += ttl as i128;
                        ttl_samples += 1;
                    }
                }
                Some(ExpireStep::Expired) => {
                    self.delete_expired(db, &key);
                    expired += 1;
                }
            }
            sampled += 1;
        }
        self.expire_key = key;
        self.dbs[db].note_ttls(ttl_sum, ttl_samples);
        (sampled, expired)
    }

    /// [`Db::prefetch_slot`] in `db`: the first step of prefetching a
    /// batch of keys, whose header misses then overlap.
    pub fn prefetch_slot(&self, db: usize, key: &[u8]) -> Option<(usize, Ahead)> {
        Some((db, self.dbs.get(db)?.prefetch_slot(key)?))
    }

    /// [`Db::prefetch_entry`]: the second step.
    pub fn prefetch_entry(&self, (db, ahead): (usize, Ahead)) {
        if let Some(d) = self.dbs.get(db) {
            d.prefetch_entry(ahead);
        }
    }

    /// [`Db::prefetch_node`]: the third step.
    pub fn prefetch_node(&self, (db, ahead): (usize, Ahead)) {
        if let Some(d) = self.dbs.get(db) {
            d.prefetch_node(ahead);
        }
    }

    /// Number of keys in all databases.
    pub fn key_count(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_and_active_expiry() {
        let mut s = Shard::new(16, 42);
        s.enable_log();
        for i in 0..1000 {
            let k = format!("k{i}");
            s.set(
                0,
                k.as_bytes(),
                Value::Str(crate::value::StrData::copy_from_slice(b"v")),
                0,
            );
            s.dbs[0].set_expire(k.as_bytes(), Some(if i < 500 { 100 } else { 10_000 }));
        }
        assert!(s.lookup(0, b"k1", 50).is_some());
        assert!(s.lookup(0, b"k1", 100).is_none());
        assert_eq!(s.stats.expired_keys, 1);
        let log = s.take_log();
        assert_eq!(log.len(), 1);
        assert_eq!(
            log[0].argv,
            vec![Bytes::from_static(b"DEL"), Bytes::from_static(b"k1")]
        );
        // Ticks as the node runs them: each repeats while over a tenth of
        // its sample had expired.
        for _ in 0..50 {
            loop {
                let (sampled, expired) = s.active_expire(0, 20, 200);
                if sampled == 0 || expired * 10 <= sampled {
                    break;
                }
            }
        }
        assert!(s.dbs[0].len() < 560, "left {}", s.dbs[0].len());
        s.dbs[0].invariants();
        while s.active_expire(0, 100, 200).1 > 0 {}
        // Whatever sampling left behind is still never returned.
        for i in 0..500 {
            assert!(s.lookup(0, format!("k{i}").as_bytes(), 200).is_none());
        }
        assert_eq!(s.dbs[0].len(), 500);
    }

    #[test]
    fn keyspace_events_only_when_on() {
        use crate::cmd::t;
        let mut s = Shard::new(1, 1);
        t(&mut s, 0, "SET a 1");
        t(&mut s, 0, "GET nokey");
        assert!(!s.has_events());
        s.notify_flags = crate::notify::parse("KEAnm").unwrap();
        t(&mut s, 0, "SET a 2");
        t(&mut s, 0, "SET b 1 PX 10");
        t(&mut s, 0, "GET nokey");
        t(&mut s, 20, "GET b");
        let got: Vec<(&str, Bytes)> = s
            .take_events()
            .into_iter()
            .map(|e| (e.event, e.key))
            .collect();
        let k = |x: &'static str| Bytes::from_static(x.as_bytes());
        assert_eq!(
            got,
            vec![
                ("set", k("a")),
                ("new", k("b")),
                ("set", k("b")),
                ("expire", k("b")),
                ("keymiss", k("nokey")),
                ("expired", k("b")),
                ("keymiss", k("b")),
            ]
        );
        assert!(!s.has_events());
    }

    #[test]
    fn watch_versions() {
        let mut s = Shard::new(1, 1);
        let v = s.watch(0, b"a");
        s.touch(0, b"b");
        assert_eq!(s.watch_version(0, b"a"), v);
        s.touch(0, b"a");
        assert_ne!(s.watch_version(0, b"a"), v);
        s.unwatch(0, b"a");
        assert_eq!(s.watch_version(0, b"a"), 0);
    }

    #[test]
    fn a_slot_moves_with_its_watches_unless_a_client_waits_on_it() {
        let mut a = Shard::new(2, 1);
        let mut b = Shard::new(2, 2);
        let set = |s: &mut Shard, db: usize, k: &[u8]| {
            s.dbs[db].insert(k, Value::Str(crate::value::StrData::copy_from_slice(k)), 0);
        };
        set(&mut a, 0, b"{t}1");
        set(&mut a, 1, b"{t}2");
        set(&mut a, 0, b"other");
        a.touch(0, b"{t}1");
        let v = a.watch(0, b"{t}1");
        let slot = crate::slot::slot_of(b"{t}");
        a.set_blocked_on(1, b"{t}3", true);
        assert!(a.take_slot(slot).is_none(), "a client waits on {{t}}3");
        assert_eq!(a.dbs[0].len(), 2);
        a.set_blocked_on(1, b"{t}3", false);
        let m = a.take_slot(slot).expect("nobody waits");
        assert_eq!(m.keys(), 2);
        assert_eq!((a.dbs[0].len(), a.dbs[1].len()), (1, 0));
        assert_eq!(a.watch_version(0, b"{t}1"), 0);
        b.put_slot(m);
        assert!(b.dbs[0].get(b"{t}1").is_some() && b.dbs[1].get(b"{t}2").is_some());
        // The watch goes on on the new shard: same version, same watcher.
        assert_eq!(b.watch_version(0, b"{t}1"), v);
        b.touch(0, b"{t}1");
        assert_ne!(b.watch_version(0, b"{t}1"), v);
        b.unwatch(0, b"{t}1");
        assert_eq!(b.watch_version(0, b"{t}1"), 0);
    }
}
