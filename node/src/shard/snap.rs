//! This core's part of a snapshot: its image, serialised a few slots per
//! loop turn and handed to the writer; the save rules (checked by core 0);
//! the keys loaded from the file at start.

use super::Shard;
use crate::persist::{self, CORE_BUDGET};
use std::sync::atomic::Ordering;

/// Keys serialised between two looks at the clock, and the time a loop
/// turn gives the walk: the clients of the turn wait at most about that
/// much longer (a p99 during BGSAVE close to the one without).
const STEP_KEYS: u64 = 128;
const STEP_TIME: std::time::Duration = std::time::Duration::from_micros(100);

/// Transaction `tx`'s name in the logs' `#X:` annotations and the
/// manifest's `based` (the node's start time makes it unique across
/// restarts).
pub(super) fn part_id(start_ms: i64, tx: crate::mesh::TxId) -> String {
    let mut id = Vec::new();
    push_part_id(&mut id, start_ms, tx);
    String::from_utf8(id).unwrap_or_default()
}

/// Appends [`part_id`] to `out` (no allocation beyond its growth).
pub(super) fn push_part_id(out: &mut Vec<u8>, start_ms: i64, tx: crate::mesh::TxId) {
    engine::writelog::push_decimal(out, start_ms.max(0) as u64);
    out.push(b'.');
    engine::writelog::push_decimal(out, tx.0 as u64);
    out.push(b'.');
    engine::writelog::push_decimal(out, tx.1);
}

impl Shard {
    /// Starts this core's image when a new job appeared, serialises its
    /// next slots while the writer keeps up, and hands the records over.
    /// Returns true when more work waits (the loop must not sleep).
    pub fn snapshot_turn(&mut self) -> bool {
        let epoch = self.persist.epoch.load(Ordering::Relaxed);
        // A rewrite's image starts where this core's log switches files:
        // never inside a transaction's part (it waits for the unlock).
        // Nor between a reserved pipeline's start and its part here
        // (`Shard::aof_part`).
        let in_part = (self.lock.is_some() || self.parts_pending()) && self.aof.is_some();
        // Cores switch on their own turns, so a transaction across cores
        // can have its part on a core that switched already (in the new
        // incr file) and its part here in the file before, which the
        // rewrite folds into the base. Every transaction that held this
        // core at some moment since the job appeared is such a candidate:
        // it wrote a part here since the last look, or held the core at
        // it. They go to the manifest with this core's new file
        // (`Aof::set_based`), so a load keeps the other parts.
        if epoch != self.snap_epoch {
            self.note_straddling();
        }
        self.recent_parts.clear();
        if let Some(tx) = self.lock.filter(|_| in_part) {
            self.recent_parts.push(tx);
        }
        if epoch != self.snap_epoch && in_part {
            return true;
        }
        self.snapshot_start();
        let Some(job) = &self.snap_job else {
            return false;
        };
        if job.is_over() {
            // The writer failed: drop the image.
            self.engine.snapshot_end();
            self.snap_job = None;
            return false;
        }
        let room = job.pending(self.id) < CORE_BUDGET;
        let mut done = false;
        if room {
            let start = std::time::Instant::now();
            loop {
                done = self.engine.snapshot_step(STEP_KEYS, 1 << 20);
                if done || start.elapsed() >= STEP_TIME {
                    break;
                }
            }
        }
        let bytes = self.engine.snapshot_take();
        job.push(self.id, bytes, done);
        if done {
            self.engine.snapshot_end();
            self.snap_job = None;
            return false;
        }
        room
    }

    /// Before this core takes a transaction's lock: a job that appeared
    /// and this core has not started starts now, so a rewrite's switch of
    /// files comes before the transaction's part here; and a core that
    /// one transaction after another keeps locked at every turn's look
    /// still switches, between two of them (a client looping on MSET
    /// across cores starved BGREWRITEAOF).
    pub fn start_pending_job(&mut self) {
        if !self.job_unstarted() {
            return;
        }
        // Unlocked here: the parts since the last look are all ended.
        self.note_straddling();
        self.snapshot_start();
    }

    /// Moves the parts seen since the last look to those that may
    /// straddle the switch, once each (a transaction holding the core
    /// across several looks is seen at each).
    fn note_straddling(&mut self) {
        for tx in self.recent_parts.drain(..) {
            if !self.straddling.contains(&tx) {
                self.straddling.push(tx);
            }
        }
    }

    /// A snapshot job runs here, or one appeared that this core has not
    /// started yet.
    pub fn snapshot_due(&self) -> bool {
        self.snap_job.is_some() || self.job_unstarted()
    }

    /// A job appeared that this core has not started yet.
    pub fn job_unstarted(&self) -> bool {
        self.persist.epoch.load(Ordering::Relaxed) != self.snap_epoch
    }

    /// Starts this core's image of the job that appeared since the last
    /// look, if any (also asked directly, under the locks of a
    /// replication barrier, so every core's image is of one instant).
    pub fn snapshot_start(&mut self) {
        let epoch = self.persist.epoch.load(Ordering::Relaxed);
        if epoch == self.snap_epoch {
            return;
        }
        self.snap_epoch = epoch;
        // (Only a rewrite's switch needs them; see `snapshot_turn`.)
        let straddling = std::mem::take(&mut self.straddling);
        if let Some(job) = self.persist.job() {
            self.engine.snapshot_begin(0..engine::slot::SLOTS, job.form);
            job.started(self.id, self.engine.dirty);
            if job.aof_seq.is_some() {
                self.aof_rotate(straddling);
            }
            self.snap_job = Some(job);
        }
    }

    /// An AOF rewrite's image starts on this core: the records from now on
    /// go to the new incr file the rewrite opened.
    fn aof_rotate(&mut self, straddling: Vec<crate::mesh::TxId>) {
        let Some(fd) = self.persist.aof.take_rotation(self.id) else {
            return;
        };
        let start_ms = self.shared.start_ms;
        let ids = straddling.iter().map(|&tx| part_id(start_ms, tx)).collect();
        self.persist.aof.set_based(self.id, ids);
        // What the old file gets, the replication stream gets too.
        if self.replication.stream().active() {
            self.take_log();
        }
        match (self.aof.as_deref_mut(), self.engine.write_log()) {
            (Some(a), Some(log)) => a.rotate(fd, log, self.now_ms, &self.persist.aof),
            _ => {
                // `CONFIG SET appendonly yes`: the log starts with the image.
                self.aof = Some(Box::new(persist::aof::CoreAof::new(self.id, fd, 0, 0)));
                self.engine.enable_log_at(0);
                self.persist.aof.rotated[self.id].store(1, Ordering::SeqCst);
            }
        }
    }

    /// Once a cron tick: publishes this core's change count; core 0 also
    /// starts a snapshot when a `save` rule is due or one was scheduled.
    pub fn persist_cron(&mut self, now_ms: i64) {
        self.persist.core_dirty[self.id].store(self.engine.dirty, Ordering::Relaxed);
        if self.id != 0 || self.persist.in_progress.load(Ordering::Relaxed) {
            return;
        }
        let (pct, min) = self
            .shared
            .config
            .lock()
            .map(|c| {
                (
                    c.int("auto-aof-rewrite-percentage").max(0) as u64,
                    c.int("auto-aof-rewrite-min-size").max(0) as u64,
                )
            })
            .unwrap_or((0, 0));
        let aof = &self.persist.aof;
        let due = aof.rewrite_due(pct, min);
        if due {
            crate::log::notice(format_args!(
                "Starting automatic rewriting of AOF on {}% growth",
                (aof.sizes().1 * 100 / aof.base_size.load(Ordering::Relaxed).max(1))
                    .saturating_sub(100)
            ));
        }
        if due || aof.rewrite.scheduled.load(Ordering::Relaxed) {
            let _ = persist::start_rewrite(&self.shared, &self.persist, &self.mesh, false);
            return;
        }
        let scheduled = self.persist.scheduled.swap(false, Ordering::Relaxed);
        let rules = self.save_rules();
        let lastsave = self.shared.lastsave_s.load(Ordering::Relaxed);
        if scheduled || rules.due(&self.persist, now_ms / 1000, lastsave) {
            if !scheduled {
                crate::log::notice(format_args!(
                    "{} changes in {} seconds. Saving...",
                    self.persist.changes(),
                    now_ms / 1000 - lastsave
                ));
            }
            let _ = self.background_save();
        }
    }

    /// The `save` rules in force.
    pub fn save_rules(&self) -> persist::Rules {
        let text = self
            .shared
            .config
            .lock()
            .ok()
            .and_then(|c| c.text("save"))
            .unwrap_or_default();
        persist::Rules::parse(&text)
    }

    /// Starts a background save (`Err` when one runs). On a replica the
    /// link holds still while the cores start their images, so the file
    /// records where the master's stream was.
    pub fn background_save(&mut self) -> Result<std::sync::Arc<persist::Job>, ()> {
        let hold = self
            .replication
            .master_of()
            .map(|_| self.replication.clone() as std::sync::Arc<dyn persist::StreamHold>);
        let r = persist::start(
            &self.shared,
            &self.persist,
            &self.mesh,
            crate::config::REDIS_VERSION,
            hold,
        );
        if r.is_ok() {
            crate::log::notice(format_args!("Background saving started"));
        }
        r
    }

    /// Inserts the keys the file at start gave this core.
    pub fn load_preloaded(&mut self) {
        let now = self.now_ms;
        for (db, e) in self.persist.take_preload(self.id) {
            let lru = self.engine.evict.new_lru(now);
            let d = &mut self.engine.dbs[db];
            d.insert(&e.key, e.value, lru);
            if e.expire_ms.is_some() {
                d.set_expire(&e.key, e.expire_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_part_id_is_the_start_time_core_and_number() {
        let tx = crate::mesh::TxId(3, 1234567);
        assert_eq!(super::part_id(1796691551315, tx), "1796691551315.3.1234567");
        let mut line = b"#X:".to_vec();
        super::push_part_id(&mut line, 0, crate::mesh::TxId(0, 0));
        assert_eq!(line, b"#X:0.0.0");
    }
}
