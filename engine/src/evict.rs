//! Eviction: which key goes when memory is over `maxmemory`, with Redis
//! 7.0's policies and its sampled approximations (an eviction pool fed by
//! `maxmemory-samples` keys at a time), and the LRU/LFU bookkeeping each
//! entry carries in its 32-bit `lru` field.
//!
//! How much memory is in use, and when to evict, is the node's business
//! (it counts allocations); this module only chooses victims.

/// A `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

const NAMES: [(&str, Policy); 8] = [
    ("volatile-lru", Policy::VolatileLru),
    ("volatile-lfu", Policy::VolatileLfu),
    ("volatile-random", Policy::VolatileRandom),
    ("volatile-ttl", Policy::VolatileTtl),
    ("allkeys-lru", Policy::AllKeysLru),
    ("allkeys-lfu", Policy::AllKeysLfu),
    ("allkeys-random", Policy::AllKeysRandom),
    ("noeviction", Policy::NoEviction),
];

impl Policy {
    /// The policy named `name` (any case), as CONFIG SET accepts it.
    pub fn parse(name: &str) -> Option<Policy> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, p)| p)
    }

    /// The name CONFIG GET and INFO report.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(n, _)| n)
    }

    /// True for the LFU policies: entries then track access frequency.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// The eviction directives.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `maxmemory-policy`.
    pub policy: Policy,
    /// `maxmemory-samples`.
    pub samples: usize,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` (minutes).
    pub lfu_decay_time: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

/// The counter a new key starts with, so it is not evicted at once.
const LFU_INIT_VAL: u32 = 5;

fn minutes(now_ms: i64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

impl Settings {
    /// The `lru` field of a new entry: its access time in seconds, or
    /// under an LFU policy the time in minutes (16 bits) and a log counter
    /// (8 bits), as Redis keeps them.
    pub fn new_lru(&self, now_ms: i64) -> u32 {
        if self.policy.is_lfu() {
            minutes(now_ms) << 8 | LFU_INIT_VAL
        } else {
            (now_ms / 1000) as u32
        }
    }

    /// The `lru` field after an access; `r` is a random number.
    pub fn touched(&self, lru: u32, now_ms: i64, r: u64) -> u32 {
        if !self.policy.is_lfu() {
            return (now_ms / 1000) as u32;
        }
        let mut counter = self.lfu_count(lru, now_ms);
        if counter < 255 {
            let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
            let p = 1.0 / (base * self.lfu_log_factor as f64 + 1.0);
            if ((r >> 11) as f64 / (1u64 << 53) as f64) < p {
                counter += 1;
            }
        }
        minutes(now_ms) << 8 | counter
    }

    /// The access frequency of an LFU `lru` field, decayed by the minutes
    /// since its last access (OBJECT FREQ).
    pub fn lfu_count(&self, lru: u32, now_ms: i64) -> u32 {
        let (then, counter) = (lru >> 8, lru & 0xff);
        let now = minutes(now_ms);
        let elapsed = if now >= then {
            now - then
        } else {
            65_535 - then + now
        };
        let periods = elapsed.checked_div(self.lfu_decay_time).unwrap_or(0);
        counter.saturating_sub(periods)
    }
}

/// One candidate of the eviction pool.
struct Candidate {
    /// Higher is a better victim.
    score: u64,
    db: usize,
    key: Box<[u8]>,
}

/// Redis's eviction pool: the best victims seen in recent samples, kept
/// across evictions so each sample improves the choice.
#[derive(Default)]
pub struct Pool {
    best: Vec<Candidate>,
}

/// Candidates the pool keeps (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

impl Pool {
    fn offer(&mut self, score: u64, db: usize, key: &[u8]) {
        if self.best.iter().any(|c| c.db == db && *c.key == *key) {
            return;
        }
        if self.best.len() == POOL_SIZE {
            if self.best[0].score >= score {
                return;
            }
            self.best.remove(0);
        }
        let at = self.best.partition_point(|c| c.score < score);
        self.best.insert(
            at,
            Candidate {
                score,
                db,
                key: key.into(),
            },
        );
    }
}

impl crate::shard::Shard {
    /// Deletes one key chosen by the eviction policy; returns false when
    /// the policy allows no victim (`noeviction`, or nothing evictable).
    pub fn evict_one(&mut self, now_ms: i64) -> bool {
        let Some((db, key)) = self.choose_victim(now_ms) else {
            return false;
        };
        self.delete(db, &key, crate::lazyfree::Why::Eviction);
        self.stats.evicted_keys += 1;
        self.notify(crate::notify::EVICTED, "evicted", db, &key);
        self.log_write(db, || {
            vec![
                bytes::Bytes::from_static(b"DEL"),
                bytes::Bytes::copy_from_slice(&key),
            ]
        });
        true
    }

    fn choose_victim(&mut self, now_ms: i64) -> Option<(usize, Box<[u8]>)> {
        let s = self.evict;
        let volatile = s.policy.volatile_only();
        let has_keys = |db: &crate::db::Db| {
            if volatile {
                db.volatile_len() > 0
            } else {
                !db.is_empty()
            }
        };
        match s.policy {
            Policy::NoEviction => None,
            Policy::AllKeysRandom | Policy::VolatileRandom => {
                // Databases in turn from a rotating start, as Redis does.
                let n = self.dbs.len();
                for i in 0..n {
                    let db = (self.evict_next_db + i) % n;
                    if !has_keys(&self.dbs[db]) {
                        continue;
                    }
                    self.evict_next_db = db + 1;
                    let r = self.random();
                    let d = &self.dbs[db];
                    let mut key: Option<Box<[u8]>> = None;
                    if volatile {
                        key = d
                            .volatile_key((r % d.volatile_len() as u64) as usize)
                            .map(Box::from);
                    } else {
                        d.sample(r, 1, |k, _| key = Some(k.into()));
                    }
                    return key.map(|k| (db, k));
                }
                None
            }
            _ => {
                let mut pool = std::mem::take(&mut self.evict_pool);
                let victim = loop {
                    let mut any = false;
                    for db in 0..self.dbs.len() {
                        if !has_keys(&self.dbs[db]) {
                            continue;
                        }
                        any = true;
                        let r = self.random();
                        let d = &self.dbs[db];
                        let mut offer = |k: &[u8], e: &crate::db::Entry| {
                            let score = match s.policy {
                                Policy::VolatileTtl => {
                                    u64::MAX - e.expire_at().unwrap_or(i64::MAX).max(0) as u64
                                }
                                p if p.is_lfu() => 255 - s.lfu_count(e.lru, now_ms) as u64,
                                _ => ((now_ms / 1000) as u64).saturating_sub(e.lru as u64),
                            };
                            pool.offer(score, db, k);
                        };
                        if volatile {
                            for i in 0..s.samples.max(1) {
                                let j = (r.wrapping_add(i as u64 * 0x9E37_79B9)
                                    % d.volatile_len() as u64)
                                    as usize;
                                if let Some(e) = d.volatile_entry(j) {
                                    offer(e.key(), e);
                                }
                            }
                        } else {
                            d.sample(r, s.samples.max(1), &mut offer);
                        }
                    }
                    if !any {
                        break None;
                    }
                    // The best candidate still present wins; stale ones go.
                    let mut found = None;
                    while let Some(c) = pool.best.pop() {
                        let live = self.dbs[c.db]
                            .get(&c.key)
                            .is_some_and(|e| !volatile || e.expire_at().is_some());
                        if live {
                            found = Some((c.db, c.key));
                            break;
                        }
                    }
                    if found.is_some() {
                        break found;
                    }
                };
                self.evict_pool = pool;
                victim
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Shard;
    use crate::value::{StrData, Value};

    fn fill(s: &mut Shard, n: usize, now_ms: i64) {
        for i in 0..n {
            let k = format!("k{i}");
            let lru = s.evict.new_lru(now_ms);
            s.dbs[0].insert(
                k.as_bytes(),
                Value::Str(StrData::copy_from_slice(b"v")),
                lru,
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for (n, p) in NAMES {
            assert_eq!(Policy::parse(&n.to_uppercase()), Some(p));
            assert_eq!(p.name(), n);
        }
        assert_eq!(Policy::parse("lru"), None);
    }

    #[test]
    fn noeviction_and_volatile_without_ttls_evict_nothing() {
        let mut s = Shard::new(1, 7);
        fill(&mut s, 100, 0);
        assert!(!s.evict_one(0));
        s.evict.policy = Policy::VolatileLru;
        assert!(!s.evict_one(0));
        s.evict.policy = Policy::AllKeysRandom;
        assert!(s.evict_one(0));
        assert_eq!((s.dbs[0].len(), s.stats.evicted_keys), (99, 1));
    }

    /// allkeys-lru evicts mostly the keys idle longest: with half the keys
    /// touched recently, the first half evicted is almost all old ones.
    #[test]
    fn lru_prefers_idle_keys() {
        let mut s = Shard::new(1, 9);
        s.evict.policy = Policy::AllKeysLru;
        s.evict.samples = 10;
        fill(&mut s, 2000, 0);
        for i in (0..2000).step_by(2) {
            s.dbs[0].get_mut(format!("k{i}").as_bytes()).unwrap().lru = 1000;
        }
        for _ in 0..1000 {
            assert!(s.evict_one(1_000_000));
        }
        let old_left = (1..2000)
            .step_by(2)
            .filter(|i| s.dbs[0].get(format!("k{i}").as_bytes()).is_some())
            .count();
        assert!(old_left < 100, "{old_left} of 1000 idle keys survived");
        s.dbs[0].invariants();
    }

    /// volatile-ttl evicts the keys closest to expiring, and only keys with
    /// a TTL.
    #[test]
    fn volatile_ttl_takes_nearest_expiry_first() {
        let mut s = Shard::new(1, 3);
        s.evict.policy = Policy::VolatileTtl;
        fill(&mut s, 1000, 0);
        for i in 0..500 {
            s.dbs[0].set_expire(format!("k{i}").as_bytes(), Some(10_000 + i as i64));
        }
        for _ in 0..250 {
            assert!(s.evict_one(0));
        }
        let near_left = (0..250)
            .filter(|i| s.dbs[0].get(format!("k{i}").as_bytes()).is_some())
            .count();
        assert!(near_left < 50, "{near_left} of the 250 nearest survived");
        assert_eq!(s.dbs[0].len(), 750);
        while s.evict_one(0) {}
        assert_eq!((s.dbs[0].len(), s.dbs[0].volatile_len()), (500, 0));
    }

    #[test]
    fn lfu_counts_grow_logarithmically_and_decay() {
        let s = Settings {
            policy: Policy::AllKeysLfu,
            ..Settings::default()
        };
        let mut lru = s.new_lru(0);
        assert_eq!(s.lfu_count(lru, 0), LFU_INIT_VAL);
        let mut r = 1u64;
        for _ in 0..100_000 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lru = s.touched(lru, 0, r);
        }
        let hot = s.lfu_count(lru, 0);
        // Redis's table for lfu-log-factor 10: ~100k hits give about 142.
        assert!((100..200).contains(&hot), "{hot}");
        // One point per minute of decay time.
        assert_eq!(s.lfu_count(lru, 60_000 * 30), hot - 30);
        assert_eq!(s.lfu_count(lru, 60_000 * 1000), 0);
    }
}
