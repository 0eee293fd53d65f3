//! What a core shows of the commands it runs: its slow log (SLOWLOG asks
//! every core's and merges them) and the lines of MONITOR clients. Both
//! cost one branch per command while off: the slow log is off with a
//! negative `slowlog-log-slower-than`, MONITOR lines are made only while
//! `Shared::monitors` is not zero.

use super::Shard;
use crate::io::Key;
use crate::mesh::{CmdCount, Msg};
use bytes::Bytes;
use engine::cmd::{flags, Spec};
use engine::slowlog::Entry;
use engine::Args;
use std::sync::atomic::Ordering;

/// How many error codes a core tells apart in INFO errorstats; errors of
/// codes past these count in `total_error_replies` only. (Redis 7.0 keeps
/// them all, and a script can make up codes without end: this bounds a
/// core's table. Redis 7.2 turns errorstats off past the same number.)
const ERROR_CODES_MAX: usize = 128;

/// The code INFO errorstats files error `e` under (without its `-`), as
/// Redis's `afterErrorReply`: its first word when a space ends it within
/// the reply's first 32 bytes (the `-` counted), else `ERR`.
pub fn error_code(e: &str) -> &str {
    match e.as_bytes().iter().take(31).position(|&b| b == b' ') {
        Some(end) => &e[..end],
        None => "ERR",
    }
}

/// A rate sampled every 100 ms, the mean of the last 16 samples (Redis's
/// `trackInstantaneousMetric`).
#[derive(Debug, Default)]
pub struct Rate {
    last_ms: i64,
    last: u64,
    samples: [u64; 16],
    next: usize,
}

impl Rate {
    /// Takes a sample of counter `value` at `now_ms`, 100 ms or more after
    /// the last one.
    pub fn sample(&mut self, now_ms: i64, value: u64) {
        let dt = now_ms - self.last_ms;
        if self.last_ms != 0 && dt < 100 {
            return;
        }
        if self.last_ms != 0 {
            self.samples[self.next] = value.saturating_sub(self.last) * 1000 / dt as u64;
            self.next = (self.next + 1) % self.samples.len();
        }
        (self.last_ms, self.last) = (now_ms, value);
    }

    /// Per second.
    pub fn get(&self) -> u64 {
        self.samples.iter().sum::<u64>() / self.samples.len() as u64
    }
}

/// Subcommands with Redis 7.0's `admin` flag, of commands whose other
/// subcommands lack it: MONITOR does not show them.
fn admin_sub(name: &str, args: &Args) -> bool {
    let sub = args.get(1);
    let is = |list: &[&str]| list.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(sub));
    match name {
        "config" | "slowlog" | "latency" => !is(&["help"]),
        "client" => is(&["kill", "list", "no-evict", "pause", "unblock", "unpause"]),
        "cluster" => is(&[
            "addslots",
            "addslotsrange",
            "bumpepoch",
            "count-failure-reports",
            "delslots",
            "delslotsrange",
            "failover",
            "flushslots",
            "forget",
            "meet",
            "replicas",
            "replicate",
            "reset",
            "saveconfig",
            "set-config-epoch",
            "setslot",
            "slaves",
        ]),
        _ => false,
    }
}

/// Whether MONITOR shows a command: Redis hides administrative commands
/// and those with `skip_monitor` (scripts show themselves as they start).
pub fn monitored(spec: &Spec, args: &Args) -> bool {
    match spec.name {
        "config" | "slowlog" | "latency" | "client" | "cluster" => !admin_sub(spec.name, args),
        _ => !spec.has(flags::ADMIN),
    }
}

/// Redis's `skip_slowlog`: EXEC (its commands are logged one by one).
fn slow_skipped(spec: &Spec) -> bool {
    spec.name == "exec"
}

/// The time now, in Unix seconds and microseconds.
fn unix_now() -> (i64, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() as i64, now.subsec_micros())
}

impl Shard {
    /// Counts an error reply to a client: INFO's `total_error_replies` and
    /// errorstats.
    pub fn count_error(&mut self, e: &str) {
        self.stats.total_error_replies += 1;
        let code = error_code(e);
        if let Some(n) = self.errorstats.get_mut(code) {
            *n += 1;
        } else if self.errorstats.len() < ERROR_CODES_MAX {
            self.errorstats.insert(code.into(), 1);
        }
    }

    /// Command `name` was refused before it ran (its error is counted
    /// where it is answered).
    pub fn count_rejected(&mut self, name: &'static str) {
        self.cmdstats.entry(name).or_default().rejected += 1;
    }

    /// Counts the commands a script called on this core ([`engine::Shard::script_counts`]),
    /// as Redis counts each: calls, time, failures and their errors (the
    /// script's reply carrying one on does not count it again:
    /// `engine::script::error_already_counted`).
    pub(super) fn count_script_calls(&mut self) {
        // (Its buffer goes back for the next script, unless a script with
        // many calls made it big.)
        let mut counts = std::mem::take(&mut self.engine.script_counts);
        for c in counts.drain(..) {
            let e = self.cmdstats.entry(c.name).or_default();
            e.calls += 1;
            e.nsec += crate::mesh::STAT_TIMED_EVERY * c.nanos;
            e.failed += u64::from(c.error.is_some());
            self.stats.total_commands_processed += 1;
            if let Some(err) = &c.error {
                self.count_error(err);
            }
        }
        if counts.capacity() <= 1024 {
            self.engine.script_counts = counts;
        }
    }

    /// The start of a command to time for INFO commandstats, one in
    /// [`crate::mesh::STAT_TIMED_EVERY`].
    pub fn stat_clock(&mut self) -> Option<std::time::Instant> {
        self.cmd_serial = self.cmd_serial.wrapping_add(1);
        self.cmd_serial
            .is_multiple_of(crate::mesh::STAT_TIMED_EVERY)
            .then(std::time::Instant::now)
    }

    /// Command `name` ran, for `nsec` (of a command timed one in
    /// [`crate::mesh::STAT_TIMED_EVERY`], scaled by it; 0 untimed); the
    /// caller counts it in `total_commands_processed`.
    pub fn count_call(&mut self, name: &'static str, nsec: u64) {
        let e = self.cmdstats.entry(name).or_default();
        e.calls += 1;
        e.nsec += nsec;
    }

    /// Command `name` answered an error (one of the node's commands; a
    /// command on the keyspace is counted as it runs).
    pub fn count_failed(&mut self, name: &'static str) {
        self.cmdstats.entry(name).or_default().failed += 1;
    }

    /// This core's commandstats, for INFO.
    pub fn command_counts(&self) -> Vec<(&'static str, CmdCount)> {
        self.cmdstats.iter().map(|(n, c)| (*n, *c)).collect()
    }

    /// This core's errorstats, for INFO.
    pub fn error_counts(&self) -> Vec<(Box<str>, u64)> {
        self.errorstats
            .iter()
            .map(|(e, n)| (e.clone(), *n))
            .collect()
    }

    /// CONFIG RESETSTAT: the command and error counts start again.
    pub fn reset_command_counts(&mut self) {
        self.cmdstats.clear();
        self.errorstats.clear();
    }

    /// The slow log is on: commands are timed.
    #[inline]
    pub fn slow_on(&self) -> bool {
        self.settings.slowlog_slower_than >= 0
    }

    /// A command of connection `key` on this core took `micros`: logged
    /// if that is slow.
    pub fn slow_check(&mut self, key: Key, spec: &Spec, args: &Args, micros: u64) {
        if slow_skipped(spec) || (micros as i64) < self.settings.slowlog_slower_than {
            return;
        }
        let argv = engine::slowlog::entry_argv(spec.name, args);
        self.slow_push(Some(key), argv, micros);
    }

    /// A command another core's connection had run here took `micros`:
    /// the entry goes to that core, which knows the client.
    pub(super) fn slow_check_remote(&mut self, spec: &Spec, args: &Args, micros: u64) {
        let Some((from, conn)) = self.serving else {
            return;
        };
        if slow_skipped(spec) || (micros as i64) < self.settings.slowlog_slower_than {
            return;
        }
        let argv = engine::slowlog::entry_argv(spec.name, args);
        let entry = self.slow_entry(None, argv, micros);
        if from == self.id {
            self.slow_arrived(conn, entry);
        } else {
            let entry = Box::new(entry);
            self.mesh.send(from, Msg::Slow { conn, entry });
        }
    }

    /// Connection `key`'s command, which took `micros`, parked on this
    /// core: the slow log looks at it again once it is served.
    pub fn slow_parked(&mut self, key: Key, spec: &Spec, args: &Args, micros: u64) {
        if slow_skipped(spec) {
            return;
        }
        let origin = super::Origin::Local(key);
        if let Some(w) = self.waiters.iter_mut().rev().find(|w| w.origin == origin) {
            let argv = engine::slowlog::entry_argv(spec.name, args);
            w.slow = Some(Box::new((micros, argv)));
        }
    }

    /// A parked command was served: its runs took `micros` in all; logged
    /// for its client (on whichever core serves it) if that is slow.
    pub(super) fn slow_served(&mut self, w: &super::run::Waiter, argv: Vec<Bytes>, micros: u64) {
        if !self.slow_on() || (micros as i64) < self.settings.slowlog_slower_than {
            return;
        }
        match w.client {
            Some((core, conn)) if core == self.id => self.slow_push(Some(conn), argv, micros),
            Some((core, conn)) => {
                let entry = Box::new(self.slow_entry(None, argv, micros));
                self.mesh.send(core, Msg::Slow { conn, entry });
            }
            None => self.slow_push(None, argv, micros),
        }
    }

    /// Another core ran a slow command for connection `conn` of this one.
    pub fn slow_arrived(&mut self, conn: Key, mut entry: Entry) {
        if let Some(c) = self.conns.get(conn) {
            entry.peer = c.addr.clone();
            entry.name = c.name.clone().unwrap_or_default();
        }
        let max = self.settings.slowlog_max_len;
        self.slowlog.push(entry, max);
    }

    fn slow_entry(&self, key: Option<Key>, argv: Vec<Bytes>, micros: u64) -> Entry {
        let c = key.and_then(|k| self.conns.get(k));
        Entry {
            id: self.shared.slowlog_next_id.fetch_add(1, Ordering::Relaxed),
            time_s: crate::shared::now_ms() / 1000,
            micros,
            argv,
            peer: c.map(|c| c.addr.clone()).unwrap_or_default(),
            name: c.and_then(|c| c.name.clone()).unwrap_or_default(),
        }
    }

    fn slow_push(&mut self, key: Option<Key>, argv: Vec<Bytes>, micros: u64) {
        let e = self.slow_entry(key, argv, micros);
        let max = self.settings.slowlog_max_len;
        self.slowlog.push(e, max);
    }

    /// Connection `key`'s command went to a task: remember when it began.
    pub fn slow_defer(&mut self, key: Key, spec: &Spec, args: &Args, start: u64) {
        if slow_skipped(spec) {
            return;
        }
        let argv = engine::slowlog::entry_argv(spec.name, args);
        if let Some(c) = self.conns.get_mut(key) {
            c.slow_pending = Some(Box::new((start, argv)));
        }
    }

    /// Connection `key`'s task is done: log its command if it was slow.
    pub(super) fn slow_task_done(&mut self, key: Key) {
        let Some(p) = self.conns.get_mut(key).and_then(|c| c.slow_pending.take()) else {
            return;
        };
        let (start, argv) = *p;
        let micros = crate::shared::micros_since(start);
        if self.slow_on() && micros as i64 >= self.settings.slowlog_slower_than {
            self.slow_push(Some(key), argv, micros);
        }
    }

    /// Shows connection `key`'s command to every MONITOR (if any).
    #[inline]
    pub fn monitor_feed(&mut self, key: Key, spec: &Spec, db: usize, args: &Args) {
        if !crate::shared::monitoring() || self.loading {
            return;
        }
        self.monitor_line(key, spec, db, args);
    }

    fn monitor_line(&mut self, key: Key, spec: &Spec, db: usize, args: &Args) {
        if !monitored(spec, args) {
            return;
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let at = unix_now();
        engine::slowlog::monitor_line(&mut self.monitor_out, at, db, &c.addr, spec.name, args);
    }

    /// MONITOR lines for the commands a script just ran here (`[db lua]`).
    pub(super) fn monitor_script_calls(&mut self) {
        let Some(calls) = self.engine.script_calls.take() else {
            return;
        };
        let at = unix_now();
        for (db, owned) in calls {
            let a = owned.as_args();
            let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
                continue;
            };
            if monitored(spec, &a) {
                engine::slowlog::monitor_line(&mut self.monitor_out, at, db, "lua", spec.name, &a);
            }
        }
    }

    /// Makes connection `key` a monitor (MONITOR): false if it is one
    /// already.
    pub fn monitor_start(&mut self, key: Key) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if c.monitor {
            return false;
        }
        c.monitor = true;
        self.monitors.push(key);
        self.shared.core_monitors[self.id].fetch_add(1, Ordering::Relaxed);
        crate::shared::MONITORS.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Connection `key` stops monitoring (RESET, or it closes).
    pub fn monitor_stop(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !std::mem::take(&mut c.monitor) {
            return;
        }
        self.monitors.retain(|k| *k != key);
        self.shared.core_monitors[self.id].fetch_sub(1, Ordering::Relaxed);
        crate::shared::MONITORS.fetch_sub(1, Ordering::Relaxed);
    }

    /// End of a turn: this turn's MONITOR lines go to this core's monitors
    /// and, in one message each, to the other cores that have some.
    pub fn monitor_flush(&mut self) {
        if self.monitor_out.is_empty() {
            return;
        }
        let lines = Bytes::from(std::mem::take(&mut self.monitor_out));
        for to in 0..self.cores {
            if to != self.id && self.shared.core_monitors[to].load(Ordering::Relaxed) > 0 {
                let lines = lines.clone();
                self.mesh.send(
                    to,
                    Msg::Monitor {
                        lines,
                        relay: false,
                    },
                );
            }
        }
        self.monitor_deliver(&lines);
    }

    /// Appends MONITOR lines to every monitor of this core.
    pub fn monitor_deliver(&mut self, lines: &[u8]) {
        for i in 0..self.monitors.len() {
            let key = self.monitors[i];
            if let Some(c) = self.conns.get_mut(key) {
                c.out.extend_from_slice(lines);
                self.want_flush(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_code;

    #[test]
    fn an_error_is_filed_under_its_first_word_as_redis_does() {
        assert_eq!(error_code("ERR unknown command"), "ERR");
        assert_eq!(error_code("WRONGTYPE Operation against a key"), "WRONGTYPE");
        assert_eq!(error_code("MOVED 3999 127.0.0.1:6381"), "MOVED");
        // No space within the reply's first 32 bytes (its `-` counted).
        assert_eq!(error_code("NOSPACE"), "ERR");
        assert_eq!(
            error_code(&format!("{} x", "A".repeat(30))),
            &"A".repeat(30)[..]
        );
        assert_eq!(error_code(&format!("{} x", "A".repeat(31))), "ERR");
    }
}
