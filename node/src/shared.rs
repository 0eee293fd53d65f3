//! What all cores share: settings, counters, the client id sequence. Read
//! rarely (at start, on CONFIG SET, by INFO): never on the data path. And
//! the lazy free thread, which frees what the cores hand it
//! ([`free_later`]).

use crossbeam_queue::SegQueue;
use engine::lazyfree::Garbage;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Values each core copies for its hot path; refreshed after CONFIG SET.
#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: engine::resp::Limits,
    /// `client-query-buffer-limit`.
    pub query_buf_max: usize,
    pub requirepass: Option<String>,
    pub databases: usize,
    /// `timeout`: idle seconds before closing a client (0 = never).
    pub timeout_s: u64,
    pub hz: u32,
    pub maxclients: usize,
    /// `tcp-keepalive`: seconds before the first keepalive probe on a new
    /// connection (0 = no keepalive).
    pub tcp_keepalive_s: i32,
    /// `protected-mode`: without a password, only 127.0.0.1 and ::1 may
    /// connect.
    pub protected_mode: bool,
    pub encoding: engine::value::EncodingLimits,
    /// `enable-debug-command`: `no`, `yes` or `local`.
    pub debug_command: &'static str,
    /// `busy-reply-threshold` (`lua-time-limit`), in milliseconds.
    pub busy_reply_threshold_ms: u64,
    /// `client-output-buffer-limit` for the normal, replica and pubsub
    /// classes.
    pub obuf: [crate::config::ObufLimit; 3],
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`, `maxmemory-samples`, `lfu-log-factor`,
    /// `lfu-decay-time`.
    pub evict: engine::evict::Settings,
    /// `maxmemory-eviction-tenacity` (0-100).
    pub eviction_tenacity: u32,
    /// The `lazyfree-lazy-*` directives.
    pub lazyfree: engine::lazyfree::Settings,
    /// `cluster-allow-reads-when-down`, `cluster-allow-pubsubshard-when-down`.
    pub cluster_reads_when_down: bool,
    pub cluster_pubsubshard_when_down: bool,
    /// `replica-read-only`, `replica-serve-stale-data`.
    pub replica_read_only: bool,
    pub replica_serve_stale: bool,
    /// `min-replicas-to-write`, `min-replicas-max-lag` (seconds).
    pub min_replicas_to_write: u32,
    pub min_replicas_max_lag: u64,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_max_keys: u64,
    /// `slowlog-log-slower-than` (µs; negative: the slow log is off) and
    /// `slowlog-max-len`.
    pub slowlog_slower_than: i64,
    pub slowlog_max_len: usize,
    /// `notify-keyspace-events`: the event classes shards collect
    /// (`engine::notify::effective`; 0: off).
    pub notify: u32,
}

/// Process-wide state.
pub struct Shared {
    pub config: Mutex<crate::config::Config>,
    pub settings: Mutex<Settings>,
    pub next_client_id: AtomicU64,
    pub clients: AtomicUsize,
    /// Per core: the connections it serves, counting those handed to it
    /// and not yet set up. Read (Relaxed) by the accepting core to place a
    /// new connection; changed only when one is placed or freed.
    pub core_clients: Vec<AtomicUsize>,
    pub shutdown: AtomicBool,
    pub start_ms: i64,
    pub run_id: String,
    pub port: u16,
    pub shards: usize,
    /// Descriptors kept aside from clients when sizing the open files
    /// limit for `maxclients`.
    pub reserved_fds: u64,
    pub config_file: Option<String>,
    pub executable: String,
    /// Unix time of the last save (LASTSAVE); slotd has no persistence yet.
    pub lastsave_s: AtomicI64,
    /// Peak of `used_memory` (sampled by the cron and INFO).
    pub peak_memory: AtomicU64,
    /// `used_memory` once every core was up (INFO `used_memory_startup`).
    pub startup_memory: AtomicU64,
    /// Cores that finished starting.
    pub cores_up: AtomicUsize,
    /// Per core: the keys its eviction policy could take, published by
    /// the core in its cron and after evicting. A core over `maxmemory`
    /// with nothing to evict itself lets writes through while another
    /// core has some, and asks that core to evict.
    pub evictable: Vec<AtomicU64>,
    /// Per core: an eviction request is on its way to it (one at a time).
    pub evict_asked: Vec<AtomicBool>,
    /// The active expiry cycle runs (DEBUG SET-ACTIVE-EXPIRE turns it off).
    pub active_expire: AtomicBool,
    /// This node replicates a master (REPLICAOF): writes are refused under
    /// `replica-read-only`, and keys expire only by the master's DELs.
    pub replica: AtomicBool,
    /// A replica's link carries the command stream (Redis's
    /// `REPL_STATE_CONNECTED`); `replica-serve-stale-data no` refuses
    /// commands while it does not.
    pub master_link_up: AtomicBool,
    /// How far the master client has applied the stream: its feed's number
    /// in the top 24 bits, the bytes of its input whose commands completed
    /// below ([`applied_pack`]).
    pub master_applied: AtomicU64,
    /// How far the link has handed the stream to the master client, in
    /// the same form: a promotion waits until `master_applied` gets there.
    pub master_fed: AtomicU64,
    /// The newest feed whose master client closed.
    pub master_closed: AtomicU64,
    /// The client id of the newest master client (0: none). What it
    /// writes, on any core, is the master's history, which its link counts
    /// and hands on: never this node's own stream, even when it runs after
    /// a promotion (`Shard::for_client`).
    pub master_client: AtomicU64,
    /// The number of the feed whose master client failed to load the
    /// master's RDB (0: none): its link starts over.
    pub master_load_failed: AtomicU64,
    /// Replicas online whose last ACK is at most `min-replicas-max-lag`
    /// old, as the master thread last counted them (0 before any).
    pub good_replicas: std::sync::atomic::AtomicU32,
    /// A manual failover has this master's writers paused (set by the bus
    /// before it asks the cores): the replication PINGs wait.
    pub failover_pause: AtomicBool,
    /// CLIENT PAUSE: until when (Unix ms; 0: no pause), and whether every
    /// command waits (`ALL`) or only those that write or replicate
    /// (`WRITE`). Expiry and eviction wait too.
    pub client_pause_until_ms: AtomicI64,
    /// Cluster mode: the cores hold their clients' commands while slots
    /// move between them (`mesh::respread`).
    pub respread: AtomicBool,
    pub client_pause_all: AtomicBool,
    /// The next slow log entry's id (one sequence for every core's log).
    pub slowlog_next_id: AtomicU64,
    /// MONITOR clients per core ([`MONITORS`] counts them all).
    pub core_monitors: Vec<AtomicUsize>,
    /// Some client turned on CLIENT TRACKING with REDIRECT: its core
    /// remembers where the target is, so connections stop moving between
    /// cores (`Shard::want_move`).
    pub tracking_redirects: AtomicBool,
}

/// MONITOR clients in all. Every command run checks it (one load) and
/// formats its line only when some exist. Process-wide, so a script's
/// task sees it without the shard.
pub static MONITORS: AtomicUsize = AtomicUsize::new(0);

/// Whether some client is in MONITOR mode.
#[inline]
pub fn monitoring() -> bool {
    MONITORS.load(Ordering::Relaxed) > 0
}

/// [`Shared::master_applied`]'s form.
pub fn applied_pack(feed: u64, bytes: u64) -> u64 {
    (feed << 40) | (bytes & ((1 << 40) - 1))
}

impl Shared {
    /// A snapshot of the hot settings.
    pub fn settings(&self) -> Settings {
        match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The hot settings derived from the configuration.
impl Shared {
    /// Whether CLIENT PAUSE holds clients now, and then whether it holds
    /// every command (`ALL`).
    pub fn client_pause(&self) -> Option<bool> {
        let until = self.client_pause_until_ms.load(Ordering::Relaxed);
        (until != 0 && now_ms() <= until).then(|| self.client_pause_all.load(Ordering::Relaxed))
    }
}

pub fn settings_from(c: &crate::config::Config) -> Settings {
    let e = c.encoding_limits();
    Settings {
        limits: engine::resp::Limits {
            bulk_bytes_max: c.proto_max_bulk_len() as usize,
            ..engine::resp::Limits::default()
        },
        query_buf_max: c.client_query_buffer_limit() as usize,
        requirepass: c.requirepass(),
        databases: c.databases(),
        timeout_s: c.timeout(),
        hz: c.hz(),
        maxclients: c.maxclients() as usize,
        tcp_keepalive_s: c.int("tcp-keepalive").clamp(0, i32::MAX as i64) as i32,
        protected_mode: c.flag("protected-mode"),
        encoding: engine::value::EncodingLimits {
            hash_entries_max: e.hash_max_listpack_entries as usize,
            hash_value_bytes_max: e.hash_max_listpack_value as usize,
            set_intset_entries_max: e.set_max_intset_entries as usize,
            zset_entries_max: e.zset_max_listpack_entries as usize,
            zset_value_bytes_max: e.zset_max_listpack_value as usize,
            list_listpack_size: e.list_max_listpack_size,
            hll_sparse_max_bytes: c.int("hll-sparse-max-bytes").max(0) as usize,
            stream_node_max_bytes: c.int("stream-node-max-bytes").max(0) as usize,
            stream_node_max_entries: c.int("stream-node-max-entries").max(0),
        },
        debug_command: c.debug_command(),
        busy_reply_threshold_ms: c.int("busy-reply-threshold").max(0) as u64,
        obuf: c.obuf_limits(),
        maxmemory: c.int("maxmemory").max(0) as u64,
        evict: engine::evict::Settings {
            policy: c
                .text("maxmemory-policy")
                .and_then(|p| engine::evict::Policy::parse(&p))
                .unwrap_or(engine::evict::Policy::NoEviction),
            samples: c.int("maxmemory-samples").max(1) as usize,
            lfu_log_factor: c.int("lfu-log-factor").clamp(0, u32::MAX as i64) as u32,
            lfu_decay_time: c.int("lfu-decay-time").clamp(0, u32::MAX as i64) as u32,
        },
        eviction_tenacity: c.int("maxmemory-eviction-tenacity").clamp(0, 100) as u32,
        lazyfree: engine::lazyfree::Settings {
            eviction: c.flag("lazyfree-lazy-eviction"),
            expire: c.flag("lazyfree-lazy-expire"),
            server_del: c.flag("lazyfree-lazy-server-del"),
            user_del: c.flag("lazyfree-lazy-user-del"),
            user_flush: c.flag("lazyfree-lazy-user-flush"),
        },
        cluster_reads_when_down: c.flag("cluster-allow-reads-when-down"),
        cluster_pubsubshard_when_down: c.flag("cluster-allow-pubsubshard-when-down"),
        replica_read_only: c.flag("replica-read-only"),
        replica_serve_stale: c.flag("replica-serve-stale-data"),
        min_replicas_to_write: c.int("min-replicas-to-write").max(0) as u32,
        min_replicas_max_lag: c.int("min-replicas-max-lag").max(0) as u64,
        tracking_max_keys: c.int("tracking-table-max-keys").max(0) as u64,
        slowlog_slower_than: c.int("slowlog-log-slower-than"),
        slowlog_max_len: c.int("slowlog-max-len").max(0) as usize,
        notify: engine::notify::effective(c.keyspace_events()),
    }
}

/// The lazy free thread's queue and counters, one per process as Redis's
/// `bio` lazyfree thread. Cores push big values (a 1M-element hash, a
/// flushed database) and wake it; it frees them, so no core pauses for
/// that. mimalloc takes frees from any thread: each block goes back to
/// the page of the core that allocated it.
struct LazyFree {
    queue: SegQueue<Garbage>,
    /// INFO `lazyfree_pending_objects`.
    pending: AtomicU64,
    /// INFO `lazyfreed_objects` (CONFIG RESETSTAT zeroes it).
    freed: AtomicU64,
    /// The thread, started on first use (`None` if it could not start:
    /// then the caller frees).
    thread: OnceLock<Option<std::thread::Thread>>,
}

static LAZYFREE: LazyFree = LazyFree {
    queue: SegQueue::new(),
    pending: AtomicU64::new(0),
    freed: AtomicU64::new(0),
    thread: OnceLock::new(),
};

/// Hands `garbage` to the lazy free thread.
pub fn free_later(garbage: Vec<Garbage>) {
    if garbage.is_empty() {
        return;
    }
    for g in garbage {
        LAZYFREE.pending.fetch_add(g.objects, Ordering::Relaxed);
        LAZYFREE.queue.push(g);
    }
    match LAZYFREE.thread.get_or_init(start_lazyfree) {
        Some(t) => t.unpark(),
        None => free_queued(),
    }
}

fn start_lazyfree() -> Option<std::thread::Thread> {
    let spawned = std::thread::Builder::new()
        .name("lazyfree".into())
        .spawn(|| {
            // The lowest priority: where no CPU is idle the shard cores,
            // pinned, go first, and the freeing waits (Linux nice values
            // are per thread; who = 0 is the calling thread).
            // SAFETY: plain system call on this thread.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
            loop {
                free_queued();
                std::thread::park();
            }
        });
    match spawned {
        Ok(h) => Some(h.thread().clone()),
        Err(e) => {
            crate::log::warning(format_args!(
                "Can't start the lazy free thread ({e}): values are freed by the cores"
            ));
            None
        }
    }
}

fn free_queued() {
    while let Some(g) = LAZYFREE.queue.pop() {
        let n = g.free();
        LAZYFREE.freed.fetch_add(n, Ordering::Relaxed);
        // Release: whoever sees the pending count drop sees the count of
        // freed objects that includes these.
        LAZYFREE.pending.fetch_sub(n, Ordering::Release);
    }
}

/// INFO `lazyfree_pending_objects` and `lazyfreed_objects`.
pub fn lazyfree_counts() -> (u64, u64) {
    let pending = LAZYFREE.pending.load(Ordering::Acquire);
    (pending, LAZYFREE.freed.load(Ordering::Relaxed))
}

/// CONFIG RESETSTAT: zeroes `lazyfreed_objects`.
pub fn lazyfree_reset_stats() {
    LAZYFREE.freed.store(0, Ordering::Relaxed);
}

/// A clock for timing every command for the slow log, cheaper than
/// `Instant` (two `clock_gettime` calls cost about 80 ns a command here):
/// the x86-64 time stamp counter when it runs at a constant rate
/// (`constant_tsc` and `nonstop_tsc`), else `Instant`'s nanoseconds.
struct Ticks {
    tsc: bool,
    per_us: f64,
    /// Microseconds per tick, in 32.32 fixed point (a multiplication
    /// instead of a division for each command).
    us_per_tick: u64,
    epoch: std::time::Instant,
}

static TICKS: OnceLock<Ticks> = OnceLock::new();

/// Sets the command clock up (once, at start: about 10 ms to measure the
/// counter's rate).
pub fn ticks_init() {
    TICKS.get_or_init(|| {
        let epoch = std::time::Instant::now();
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let tsc = cfg!(target_arch = "x86_64")
            && flags.contains(" constant_tsc")
            && flags.contains(" nonstop_tsc");
        if !tsc {
            return Ticks {
                tsc,
                per_us: 1000.0,
                us_per_tick: fixed_us_per_tick(1000.0),
                epoch,
            };
        }
        let (i0, t0) = (std::time::Instant::now(), tsc_now());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (i1, t1) = (std::time::Instant::now(), tsc_now());
        let us = (i1 - i0).as_secs_f64() * 1e6;
        let per_us = (t1.wrapping_sub(t0) as f64 / us).max(1.0);
        Ticks {
            tsc,
            per_us,
            us_per_tick: fixed_us_per_tick(per_us),
            epoch,
        }
    });
}

/// [`Ticks::us_per_tick`] for `per_us` ticks a microsecond.
fn fixed_us_per_tick(per_us: f64) -> u64 {
    ((1u64 << 32) as f64 / per_us) as u64
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tsc_now() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc_now() -> u64 {
    0
}

/// Now, on the command clock ([`ticks_init`] first; before it, 0).
#[inline]
pub fn ticks() -> u64 {
    match TICKS.get() {
        Some(t) if t.tsc => tsc_now(),
        Some(t) => t.epoch.elapsed().as_nanos() as u64,
        None => 0,
    }
}

/// `us` microseconds in [`ticks`].
pub fn ticks_of_micros(us: u64) -> u64 {
    let per_us = TICKS.get().map_or(1000.0, |t| t.per_us);
    (us as f64 * per_us) as u64
}

/// Microseconds since `start` (a [`ticks`] reading).
pub fn micros_since(start: u64) -> u64 {
    micros_between(start, ticks())
}

/// Microseconds from `start` to `end` (two [`ticks`] readings).
#[inline]
pub fn micros_between(start: u64, end: u64) -> u64 {
    let mul = TICKS
        .get()
        .map_or_else(|| fixed_us_per_tick(1000.0), |t| t.us_per_tick);
    ((end.saturating_sub(start) as u128 * mul as u128) >> 32) as u64
}

/// Pins the calling thread to `cpu` (a shard core's or the bus core's).
pub fn pin_to(cpu: usize) {
    // SAFETY: sched_setaffinity with a cpu_set_t we built.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Puts the calling thread (a shard core's) under SCHED_BATCH: the same
/// CPU share as SCHED_OTHER, but a wake-up of it does not preempt the
/// thread running on its CPU, which runs on until it sleeps or its slice
/// ends. So a core woken by another core's message, or by a client's
/// packet while a client process runs on its CPU, does not cut that
/// thread's turn short (measured in bench/results/cores-*: fewer context
/// switches, and -P 1 throughput up by a sixth when the benchmark shares
/// the CPUs). Fails silently where the policy is refused: it changes
/// speed, not behaviour.
pub fn batch_policy() {
    // SAFETY: sched_setscheduler on the calling thread (0) with a
    // sched_param we built; priority 0 is the only valid one for
    // SCHED_BATCH.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

/// TIME's reply: the Unix time in seconds and microseconds, as two bulks.
pub fn time_reply() -> engine::Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    engine::Reply::Array(vec![
        engine::Reply::bulk(now.as_secs().to_string().as_bytes()),
        engine::Reply::bulk(now.subsec_micros().to_string().as_bytes()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::lazyfree::Garbage;
    use engine::value::{StrData, Value};

    /// A CONFIG SET value: a number at an edge, with or without a unit,
    /// a word the parameter takes, a list, or anything.
    fn config_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let edges = prop_oneof![
            Just(0i128),
            Just(-1),
            Just(1),
            Just(i64::MAX as i128),
            Just(i64::MIN as i128),
            Just(u64::MAX as i128),
            Just(u64::MAX as i128 + 1),
            any::<i64>().prop_map(|n| n as i128),
        ];
        let units = prop::sample::select(vec!["", "k", "kb", "m", "mb", "g", "gb", "%", "x"]);
        let words = prop::sample::select(vec![
            "yes",
            "no",
            "everysec",
            "always",
            "allkeys-lru",
            "noeviction",
            "normal",
            "replica",
            "pubsub",
            "slave",
            "no one",
            "\"",
            "'",
            "\"\"",
            "",
        ]);
        prop_oneof![
            (edges.clone(), units).prop_map(|(n, u)| format!("{n}{u}")),
            words.prop_map(str::to_string),
            prop::collection::vec((edges, any::<bool>()), 0..9).prop_map(|v| {
                v.iter()
                    .map(|(n, w)| {
                        if *w {
                            n.to_string()
                        } else {
                            "normal".to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            ".{0,12}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000,
            failure_persistence: None,
            ..Default::default()
        })]

        /// CONFIG SET of any value to any parameter is refused or taken,
        /// never a panic; what is taken reads back, and every setting the
        /// node derives from the config can still be computed.
        #[test]
        fn config_set_of_any_value_never_panics(
            which in proptest::prelude::any::<proptest::sample::Index>(),
            value in config_value(),
        ) {
            let mut cfg = crate::config::Config::new();
            let names = cfg.get(&[b"*"]);
            let name = names[which.index(names.len())].0.clone();
            if cfg.set(&[(name.as_bytes(), value.as_bytes())]).is_ok() {
                proptest::prop_assert_eq!(cfg.get(&[name.as_bytes()]).len(), 1);
            }
            let _ = settings_from(&cfg);
            let _ = (cfg.hz(), cfg.timeout(), cfg.maxclients(), cfg.databases(), cfg.shards());
            let _ = (cfg.obuf_limits(), cfg.encoding_limits(), cfg.without_effect(), cfg.dir());
        }
    }

    #[test]
    fn the_lazy_free_thread_frees_and_counts() {
        let (_, freed_before) = lazyfree_counts();
        let v = || Value::Str(StrData::from(vec![1u8; 1 << 20]));
        free_later(vec![
            Garbage::value(v()),
            Garbage::value(v()),
            Garbage::uncounted(vec![0u8; 10]),
        ]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lazyfree_counts().1 < freed_before + 2 {
            assert!(std::time::Instant::now() < deadline, "never freed");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(lazyfree_counts().1, freed_before + 2);
    }
}
