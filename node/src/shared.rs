//! What all cores share: settings, counters, the client id sequence. Read
//! rarely (at start, on CONFIG SET, by INFO): never on the data path.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};
use std::sync::Mutex;

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
        },
        debug_command: c.debug_command(),
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
    }
}
