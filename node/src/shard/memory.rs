//! `maxmemory` on this core: Redis's `performEvictions` before a command,
//! in the cron, and when another core asks.
//!
//! The budget is one number for the whole process (the counting
//! allocator's `used_memory`), so the cores share it without talking:
//! each one, finding the process over the limit, evicts its own keys by
//! the policy until it is under again or its time is up (Redis's
//! `maxmemory-eviction-tenacity`: 500 µs at the default 10).
//!
//! The counter is exact for the calling thread and within
//! `alloc::FLUSH_BYTES` for each other thread, so a core evicts down to
//! `maxmemory` less that slack for every thread (the cores and main): the
//! process then stays under `maxmemory` whoever reads the counter.
//!
//! A core with nothing left to evict (its keys skewed onto another core
//! by hash tags, or none with a TTL under a `volatile-*` policy) asks
//! every core that has evictable keys to evict (one message per core at a
//! time, never waiting for the answer). Meanwhile its writes go through
//! when another core still has evictable keys (the process goes over the
//! limit only until that core reads its message, a few microseconds);
//! only when no core has anything to evict are `DENYOOM` commands refused
//! with Redis's `-OOM` error.

use super::Shard;
use crate::alloc::{used_memory, FLUSH_BYTES};
use crate::mesh::{AdminQuery, Request};
use engine::Reply;
use std::sync::atomic::Ordering;

/// Redis's reply to a `DENYOOM` command over `maxmemory`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// What [`Shard::perform_evictions`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Under the limit (or no limit).
    Ok,
    /// Still over, but evictions are under way (here or on other cores).
    Evicting,
    /// Over, and no core has anything to evict.
    Full,
}

/// Redis's `evictionTimeLimitUs`: how long one call may evict.
fn time_limit_us(tenacity: u32) -> u64 {
    if tenacity <= 10 {
        50 * tenacity as u64
    } else if tenacity < 100 {
        (500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64
    } else {
        u64::MAX
    }
}

impl Shard {
    /// Evicts this core's keys while the process is over `maxmemory`.
    pub fn perform_evictions(&mut self) -> Memory {
        self.make_room(0)
    }

    /// [`Shard::perform_evictions`] leaving `room` bytes free below the
    /// limit for an allocation about to happen (the copy of a pipeline
    /// that crosses cores, made before any of its commands runs).
    pub fn make_room(&mut self, room: u64) -> Memory {
        // CLIENT PAUSE keeps the dataset still: no eviction meanwhile.
        if self.settings.maxmemory == 0 || self.shared.client_pause().is_some() {
            return Memory::Ok;
        }
        let slack = FLUSH_BYTES as u64 * (self.cores as u64 + 1) + room;
        let max = self.settings.maxmemory.saturating_sub(slack).max(1);
        if used_memory() <= max {
            return Memory::Ok;
        }
        if room == 0 && self.ask_richer_cores() {
            return Memory::Evicting;
        }
        let start = std::time::Instant::now();
        let limit = time_limit_us(self.settings.eviction_tenacity);
        let mut evicted = 0u64;
        let mut none_here = false;
        while used_memory() > max {
            if !self.engine.evict_one(self.now_ms) {
                none_here = true;
                break;
            }
            evicted += 1;
            if evicted.is_multiple_of(16) && start.elapsed().as_micros() as u64 >= limit {
                break;
            }
        }
        self.publish_evictable();
        if used_memory() <= max {
            return Memory::Ok;
        }
        if !none_here {
            return Memory::Evicting;
        }
        // Nothing left here: ask the cores that have something.
        let mut others = false;
        for c in (0..self.cores).filter(|&c| c != self.id) {
            if self.shared.evictable[c].load(Ordering::Relaxed) == 0 {
                continue;
            }
            others = true;
            if !self.shared.evict_asked[c].swap(true, Ordering::AcqRel) {
                self.rpc.tell(c, Request::Admin(AdminQuery::Evict));
            }
        }
        if others {
            Memory::Evicting
        } else {
            Memory::Full
        }
    }

    /// Before running `spec`: evicts if over `maxmemory`, and answers the
    /// `-OOM` error when the command may grow memory and nothing can be
    /// evicted.
    pub(super) fn refuse_for_memory(
        &mut self,
        spec: &engine::cmd::Spec,
        args: &engine::Args,
    ) -> Option<Reply> {
        let full = self.perform_evictions() == Memory::Full;
        (full && spec.denies_oom(args)).then(|| Reply::err(OOM))
    }

    /// True when the process is over `maxmemory` and no core has anything
    /// left to evict (evicting here first, as [`Shard::perform_evictions`]).
    pub fn memory_full(&mut self) -> bool {
        self.perform_evictions() == Memory::Full
    }

    /// Keeps the cores' datasets level: a core holding clearly fewer
    /// evictable keys than the mean (under 15/16 of it) leaves the eviction
    /// to the cores above the mean, asking each of them once, and answers
    /// whether it did. Without this rule the core that happens to check
    /// first evicts its own keys every time, one core's dataset shrinks as
    /// another's grows, and the shrinking core's heap keeps the pages its
    /// evictions emptied only in part: RSS crept 27% above `used_memory`
    /// after 20x maxmemory was written over 2 cores. A room for a copy
    /// (see [`Shard::make_room`]) is always made here, at once.
    fn ask_richer_cores(&self) -> bool {
        self.publish_evictable();
        let counts: Vec<u64> = (0..self.cores)
            .map(|c| self.shared.evictable[c].load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let cores = self.cores as u64;
        if counts[self.id] * cores * 16 >= total * 15 {
            return false;
        }
        for (c, &n) in counts.iter().enumerate() {
            if n * cores > total && !self.shared.evict_asked[c].swap(true, Ordering::AcqRel) {
                self.rpc.tell(c, Request::Admin(AdminQuery::Evict));
            }
        }
        true
    }

    /// Another core asked this one to evict.
    pub(super) fn evict_asked(&mut self) {
        self.shared.evict_asked[self.id].store(false, Ordering::Release);
        self.perform_evictions();
    }

    /// Tells the other cores how many keys this one could evict under the
    /// current policy.
    pub fn publish_evictable(&self) {
        use engine::evict::Policy;
        let n: usize = match self.settings.evict.policy {
            Policy::NoEviction => 0,
            Policy::VolatileLru
            | Policy::VolatileLfu
            | Policy::VolatileRandom
            | Policy::VolatileTtl => self.engine.dbs.iter().map(|d| d.volatile_len()).sum(),
            _ => self.engine.key_count(),
        };
        self.shared.evictable[self.id].store(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::time_limit_us;

    #[test]
    fn tenacity_sets_the_time_limit_as_in_redis() {
        assert_eq!(time_limit_us(0), 0);
        assert_eq!(time_limit_us(10), 500);
        assert_eq!(time_limit_us(11), 575);
        assert_eq!(time_limit_us(100), u64::MAX);
    }
}
