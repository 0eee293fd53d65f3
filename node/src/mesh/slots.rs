//! Which shard core owns each hash slot: one table for the whole node,
//! read by every core to route a key (a relaxed load), written only where
//! no key can be in flight for the slots it changes.
//!
//! Standalone, slot `s` belongs to core `s × cores / 16384` (contiguous
//! ranges). In cluster mode a node owns whatever slots the cluster gave
//! it, so they are spread instead: at start, the slots it serves (owned or
//! being imported, from `nodes.conf`) are cut into one contiguous run per
//! core of near-equal size; afterwards slots that arrive are placed in runs
//! on the cores that serve the fewest ([`SlotTable::place_arrivals`]), and
//! slots that leave keep their core (they hold no keys here). When slots
//! leaving make the cores uneven, a re-spread moves served slots, keys
//! and all, from the fullest cores to the emptiest
//! ([`SlotTable::respread_plan`], carried out by [`super::respread`]
//! while the cores hold their clients' commands).

use engine::slot::SLOTS;
use std::sync::atomic::{AtomicU16, Ordering};

/// The slot → core table.
pub struct SlotTable {
    cores: usize,
    core: Box<[AtomicU16]>,
}

impl SlotTable {
    /// The standalone table for `cores` cores.
    pub fn new(cores: usize) -> SlotTable {
        let core = (0..SLOTS)
            .map(|s| AtomicU16::new(engine::slot::core_of(s as u16, cores) as u16))
            .collect();
        SlotTable { cores, core }
    }

    /// Number of shard cores.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// The core that owns `slot`.
    #[inline]
    pub fn core_of(&self, slot: u16) -> usize {
        self.core[slot as usize % SLOTS].load(Ordering::Relaxed) as usize
    }

    /// The end of the run of slots from `slot` that belong to the same
    /// core (SCAN walks one run per call, its cursor being a slot).
    pub fn run_end(&self, slot: u16) -> usize {
        let c = self.core_of(slot);
        (slot as usize..SLOTS)
            .find(|&s| self.core_of(s as u16) != c)
            .unwrap_or(SLOTS)
    }

    /// Cluster mode at start: the `served` slots (ascending) cut into one
    /// contiguous run per core, as even as can be.
    pub fn spread(&self, served: &[u16]) {
        let n = served.len();
        for (i, &s) in served.iter().enumerate() {
            let c = i * self.cores / n.max(1);
            self.core[s as usize % SLOTS].store(c as u16, Ordering::Relaxed);
        }
    }

    /// Cluster mode, when the slots served become `after` (one flag per
    /// slot): each served slot not `placed` before gets a core, and is
    /// marked placed. A slot goes where the slot before it went while that
    /// core holds less than its even share (the served slots over the
    /// cores, rounded up; plus a sixteenth when the slot before was placed
    /// by an earlier call), else to the core serving the fewest; so slots
    /// that arrive together, or one after another in a reshard, stay in
    /// runs (a client routing by CLUSTER SLOTS gets one range per run and
    /// core, with `shard-port-base`). A placed slot keeps its core (a
    /// re-spread aside, which moves its keys too), also when it leaves
    /// and comes back (it may still hold keys: DELSLOTS keeps them, as
    /// Redis does). Call before
    /// publishing the slot map that serves the new slots, so no core routes
    /// a key of theirs yet.
    pub fn place_arrivals(&self, placed: &mut [bool], after: &[bool]) {
        let mut load = vec![0usize; self.cores];
        let mut served = 0;
        // Without branches: a slot arrives at a time during a reshard.
        for ((&on, &was), core) in after.iter().zip(placed.iter()).zip(self.core.iter()) {
            load[core.load(Ordering::Relaxed) as usize % self.cores] += (on && was) as usize;
            served += on as usize;
        }
        let share = served.div_ceil(self.cores);
        let mut before_new = false;
        for (s, &on) in after.iter().enumerate() {
            let new = on && !placed.get(s).copied().unwrap_or(true);
            if new {
                let limit = match before_new {
                    true => share,
                    false => share + share / 16,
                };
                let before = s.checked_sub(1).filter(|&p| after[p]);
                let c = match before.map(|p| self.core_of(p as u16)) {
                    Some(c) if load[c] < limit => c,
                    _ => {
                        load.iter()
                            .enumerate()
                            .min_by_key(|(_, l)| **l)
                            .unwrap_or((0, &0))
                            .0
                    }
                };
                load[c] += 1;
                self.core[s % SLOTS].store(c as u16, Ordering::Relaxed);
                placed[s] = true;
            }
            before_new = new;
        }
    }

    /// Gives `slot` to `core` (a re-spread has moved its keys there).
    pub fn set(&self, slot: u16, core: usize) {
        self.core[slot as usize % SLOTS].store(core as u16, Ordering::Relaxed);
    }

    /// The number of `served` slots each core holds, when the fullest
    /// holds more than a sixteenth of the even share (and more than one
    /// slot) above the emptiest; `None` when they are even enough (or
    /// there is one core).
    pub fn uneven(&self, served: &[bool]) -> Option<Vec<usize>> {
        if self.cores < 2 {
            return None;
        }
        let mut load = vec![0usize; self.cores];
        for (s, _) in served.iter().enumerate().filter(|(_, &on)| on) {
            load[self.core_of(s as u16) % self.cores] += 1;
        }
        let share = load.iter().sum::<usize>() / self.cores;
        let lo = load.iter().copied().min().unwrap_or(0);
        let hi = load.iter().copied().max().unwrap_or(0);
        (hi - lo > (share / 16).max(1)).then_some(load)
    }

    /// Cluster mode, once slots have left: moves (slot, core) that even
    /// the `served` slots (one flag per slot) out over the cores again,
    /// when the core serving the most serves more than a sixteenth of the
    /// share (and more than one slot) above the one serving the fewest.
    /// Only `movable` slots move, taken from the top of the fullest cores'
    /// slots down (so they leave the end of a run and arrive as one), to
    /// the emptiest cores first; at most `max` of them.
    pub fn respread_plan(
        &self,
        served: &[bool],
        movable: &[bool],
        max: usize,
    ) -> Vec<(u16, usize)> {
        let Some(mut load) = self.uneven(served) else {
            return Vec::new();
        };
        let total: usize = load.iter().sum();
        let share = total / self.cores;
        // Each core's share; the remainder goes to the fullest cores.
        let mut order: Vec<usize> = (0..self.cores).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(load[c]), c));
        let mut target = vec![share; self.cores];
        for &c in order.iter().take(total % self.cores) {
            target[c] += 1;
        }
        let mut takers: Vec<usize> = (0..self.cores).filter(|&c| load[c] < target[c]).collect();
        takers.sort_by_key(|&c| (load[c], c));
        let mut takers = takers.into_iter().peekable();
        let mut moves = Vec::new();
        for s in (0..served.len().min(SLOTS)).rev() {
            let Some(&to) = takers.peek() else {
                break;
            };
            if moves.len() >= max {
                break;
            }
            let from = self.core_of(s as u16);
            if !served[s] || !movable.get(s).copied().unwrap_or(false) || load[from] <= target[from]
            {
                continue;
            }
            moves.push((s as u16, to));
            load[from] -= 1;
            load[to] += 1;
            if load[to] >= target[to] {
                takers.next();
            }
        }
        moves
    }

    /// Number of runs of consecutive slots on one core among `slots`.
    #[cfg(test)]
    fn runs(&self, slots: std::ops::Range<u16>) -> usize {
        slots
            .clone()
            .filter(|&s| s == slots.start || self.core_of(s) != self.core_of(s - 1))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_is_the_formula() {
        let t = SlotTable::new(3);
        for s in [0u16, 5461, 5462, 10922, 10923, 16383] {
            assert_eq!(t.core_of(s), engine::slot::core_of(s, 3));
        }
        assert_eq!(t.run_end(0), engine::slot::core_first_slot(1, 3));
        assert_eq!(t.run_end(16000), SLOTS);
    }

    #[test]
    fn a_third_of_the_slots_spreads_over_every_core() {
        let t = SlotTable::new(2);
        let served: Vec<u16> = (0..=5460).collect();
        t.spread(&served);
        let on0 = served.iter().filter(|&&s| t.core_of(s) == 0).count();
        assert!((2730..=2731).contains(&on0), "{on0}");
        assert_eq!(t.core_of(0), 0);
        assert_eq!(t.core_of(5460), 1);
        // Arrivals go to the lighter core; placed slots keep theirs.
        let mut placed = vec![false; SLOTS];
        served.iter().for_each(|&s| placed[s as usize] = true);
        let mut after = placed.clone();
        after[10000..10100].fill(true);
        after[1] = false; // slot 1 leaves
        let keep = t.core_of(100);
        t.place_arrivals(&mut placed, &after);
        assert_eq!(t.core_of(100), keep);
        let arrivals0 = (10000..10100u16).filter(|&s| t.core_of(s) == 0).count();
        // Core 0 lost slot 1, so it takes one more than core 1.
        assert!((50..=51).contains(&arrivals0), "{arrivals0}");
        assert!(placed[10050]);
        // Slot 1 comes back to the core that may still hold its keys.
        after[1] = true;
        let was = t.core_of(1);
        t.place_arrivals(&mut placed, &after);
        assert_eq!(t.core_of(1), was);
    }

    #[test]
    fn a_plan_evens_out_what_is_left_after_slots_leave() {
        let t = SlotTable::new(2);
        let mut served = vec![false; SLOTS];
        served[..=5460].fill(true);
        let list: Vec<u16> = (0..=5460).collect();
        t.spread(&list);
        let movable = vec![true; SLOTS];
        assert!(t.respread_plan(&served, &movable, 10_000).is_empty());
        // Core 0's slots (0-2730) leave, but for 100 of them.
        served[100..=2730].fill(false);
        let plan = t.respread_plan(&served, &movable, 10_000);
        // 2830 slots: 1415 each, so 1315 move from core 1 to core 0, the
        // top ones, as one run.
        assert_eq!(plan.len(), 1315);
        assert!(plan.iter().all(|&(s, c)| c == 0 && t.core_of(s) == 1));
        assert_eq!(plan.first().map(|m| m.0), Some(5460));
        assert_eq!(plan.last().map(|m| m.0), Some(5460 - 1314));
        // Slots that may not move are passed over; `max` caps the plan.
        let mut movable = movable;
        movable[5000..=5460].fill(false);
        let plan = t.respread_plan(&served, &movable, 500);
        assert_eq!(plan.len(), 500);
        assert_eq!(plan[0].0, 4999);
        for (s, c) in t.respread_plan(&served, &vec![true; SLOTS], 10_000) {
            t.set(s, c);
        }
        let on0 = (0..SLOTS as u16)
            .filter(|&s| served[s as usize] && t.core_of(s) == 0)
            .count();
        assert_eq!(on0, 1415);
        // Within a sixteenth of the share: nothing to do.
        assert!(t
            .respread_plan(&served, &vec![true; SLOTS], 10_000)
            .is_empty());
        served[0..50].fill(false);
        assert!(t
            .respread_plan(&served, &vec![true; SLOTS], 10_000)
            .is_empty());
        // Three cores, one of them emptied.
        let t = SlotTable::new(3);
        let list: Vec<u16> = (0..3000).collect();
        t.spread(&list);
        let mut served = vec![false; SLOTS];
        served[1000..3000].fill(true);
        let plan = t.respread_plan(&served, &vec![true; SLOTS], 10_000);
        assert_eq!(plan.len(), 666);
        assert!(plan.iter().all(|&(_, c)| c == 0));
    }

    #[test]
    fn arrivals_stay_in_runs_and_even() {
        // `redis-cli --cluster create`: a third of the slots at once.
        let t = SlotTable::new(2);
        t.spread(&[]);
        let mut placed = vec![false; SLOTS];
        let mut after = vec![false; SLOTS];
        after[..=5460].fill(true);
        t.place_arrivals(&mut placed, &after);
        assert_eq!(t.runs(0..5461), 2);
        let on0 = (0..5461u16).filter(|&s| t.core_of(s) == 0).count();
        assert_eq!(on0, 2731);
        // A reshard: 2000 slots arrive one at a time, in order.
        for s in 8000..10000 {
            after[s] = true;
            t.place_arrivals(&mut placed, &after);
        }
        assert!(t.runs(8000..10000) <= 8, "{}", t.runs(8000..10000));
        let on0 = (0..SLOTS as u16)
            .filter(|&s| after[s as usize] && t.core_of(s) == 0)
            .count();
        // Even within a sixteenth of the share (7461 slots, 3731 each).
        assert!(on0.abs_diff(3731) <= 3731 / 16, "{on0}");
        // Four cores, slots arriving in three separate ranges at once.
        let t = SlotTable::new(4);
        t.spread(&[]);
        let mut placed = vec![false; SLOTS];
        let mut after = vec![false; SLOTS];
        after[0..1000].fill(true);
        after[5000..6000].fill(true);
        after[9000..11000].fill(true);
        t.place_arrivals(&mut placed, &after);
        let mut per = [0; 4];
        (0..SLOTS as u16)
            .filter(|&s| after[s as usize])
            .for_each(|s| per[t.core_of(s)] += 1);
        assert_eq!(per, [1000; 4]);
        assert!(t.runs(0..1000) + t.runs(5000..6000) + t.runs(9000..11000) <= 6);
    }
}
