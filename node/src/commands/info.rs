//! INFO: each core reports its counters; this adds them up and formats
//! the sections with Redis 7.0's names.

use crate::mesh::{AdminQuery, CoreStats, Request, Response, Rpc};
use crate::shared::{now_ms, Shared};
use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Collects every core's counters and formats the requested sections.
pub async fn gather(
    rpc: &Rc<Rpc>,
    shared: &Arc<Shared>,
    persist: &crate::persist::State,
    repl: &crate::replica::Status,
    sections: &[String],
) -> String {
    let answers = rpc.call_all(|_| Request::Admin(AdminQuery::Stats)).await;
    let mut total = CoreStats::default();
    let mut cmdstats: Vec<(&'static str, crate::mesh::CmdCount)> = Vec::new();
    let mut errorstats: std::collections::BTreeMap<Box<str>, u64> = Default::default();
    // Each core's connected clients, in core order (slotd's own field).
    let mut per_core: Vec<String> = Vec::with_capacity(answers.len());
    for answer in answers {
        if let Response::Stats(s) = answer {
            per_core.push(s.connected_clients.to_string());
            add(&mut total, &s);
            for (name, c) in &s.cmdstats {
                match cmdstats.iter_mut().find(|(n, _)| n == name) {
                    Some((_, e)) => {
                        e.calls += c.calls;
                        e.nsec += c.nsec;
                        e.rejected += c.rejected;
                        e.failed += c.failed;
                    }
                    None => cmdstats.push((name, *c)),
                }
            }
            for (code, n) in &s.errorstats {
                *errorstats.entry(code.clone()).or_default() += n;
            }
        }
    }
    cmdstats.sort_by_key(|(name, _)| *name);
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let wanted = |name: &str| -> bool {
        if sections.is_empty() || sections.iter().any(|s| s == "default") {
            return DEFAULT.contains(&name);
        }
        if all {
            return true;
        }
        sections.iter().any(|s| s == name)
    };
    let mut out = String::new();
    let mut section = |title: &str, body: String| {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {title}\r\n{body}");
    };
    if wanted("server") {
        section("Server", server(shared));
    }
    if wanted("clients") {
        let settings = shared.settings();
        section(
            "Clients",
            format!(
                "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:{}\r\nslotd_shard_clients:{}\r\n",
                total.connected_clients,
                settings.maxclients,
                total.blocked_clients,
                total.tracking_clients,
                total.timeout_clients,
                per_core.join(",")
            ),
        );
    }
    if wanted("memory") {
        section("Memory", super::memory::info(shared, &total));
    }
    if wanted("persistence") {
        let in_progress = persist.in_progress.load(Ordering::Relaxed);
        let loading = persist.loading.load(Ordering::Relaxed);
        section(
            "Persistence",
            format!(
                "loading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n{}{}",
                loading as u8,
                total.dirty.saturating_sub(persist.saved_dirty.iter().map(|d| d.load(Ordering::Relaxed)).sum()),
                in_progress as u8,
                shared.lastsave_s.load(Ordering::Relaxed),
                if persist.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
                persist.last_time_sec.load(Ordering::Relaxed),
                if in_progress {
                    (crate::shared::now_ms() - persist.current_start_ms.load(Ordering::Relaxed)) / 1000
                } else {
                    -1
                },
                persist.saves.load(Ordering::Relaxed),
                persist.expired_keys.load(Ordering::Relaxed),
                persist.loaded_keys.load(Ordering::Relaxed),
                persist.aof.info(),
                persist.loading_info(loading),
            ),
        );
    }
    if wanted("stats") {
        let syncs = repl.master_view.as_ref().map_or((0, 0, 0), |v| v.syncs);
        section(
            "Stats",
            format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:0\r\ntotal_writes_processed:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\nslotd_input_bytes_parsed:{}\r\nslotd_input_bytes_moved:{}\r\nslotd_connections_moved:{}\r\nslotd_pipelines_reserved:{}\r\nslotd_pipelines_refused:{}\r\n",
                total.total_connections_received,
                total.total_commands_processed,
                total.inst_ops,
                total.net_input_bytes,
                total.net_output_bytes,
                total.inst_input as f64 / 1024.0,
                total.inst_output as f64 / 1024.0,
                total.rejected_connections,
                syncs.0,
                syncs.1,
                syncs.2,
                total.expired_keys,
                total.evicted_keys,
                total.keyspace_hits,
                total.keyspace_misses,
                total.pubsub_channels,
                total.pubsub_patterns,
                total.tracking.0,
                total.tracking.1,
                total.tracking.2,
                total.total_error_replies,
                total.input_bytes_parsed,
                total.input_bytes_moved,
                total.connections_moved,
                total.pipelines_reserved,
                total.pipelines_refused
            ),
        );
    }
    if wanted("replication") {
        let priority = shared
            .config
            .lock()
            .map(|c| c.int("replica-priority"))
            .unwrap_or(100);
        let read_only = shared.settings().replica_read_only;
        section("Replication", replication(repl, priority, read_only));
    }
    if wanted("cpu") {
        section("CPU", cpu());
    }
    if wanted("modules") {
        section("Modules", String::new());
    }
    if wanted("commandstats") {
        let mut body = String::new();
        for (name, c) in &cmdstats {
            let per = if c.calls > 0 {
                c.nsec as f64 / 1000.0 / c.calls as f64
            } else {
                0.0
            };
            let _ = write!(
                body,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                c.calls,
                c.nsec / 1000,
                c.rejected,
                c.failed
            );
        }
        section("Commandstats", body);
    }
    if wanted("errorstats") {
        let mut body = String::new();
        for (code, n) in &errorstats {
            let _ = write!(body, "errorstat_{code}:count={n}\r\n");
        }
        section("Errorstats", body);
    }
    if wanted("latencystats") {
        // (`latency-tracking` is off, and only takes `no`: the section is
        // empty, as Redis prints it then.)
        section("Latencystats", String::new());
    }
    if wanted("cluster") {
        let on = u8::from(cluster_enabled(shared));
        section("Cluster", format!("cluster_enabled:{on}\r\n"));
    }
    if wanted("keyspace") {
        let mut body = String::new();
        for (i, (keys, expires, ttl)) in total.keyspace.iter().enumerate() {
            if *keys > 0 {
                let _ = write!(
                    body,
                    "db{i}:keys={keys},expires={expires},avg_ttl={ttl}\r\n"
                );
            }
        }
        section("Keyspace", body);
    }
    out
}

/// `cluster-enabled` (fixed at start).
fn cluster_enabled(shared: &Shared) -> bool {
    shared
        .config
        .lock()
        .is_ok_and(|c| c.flag("cluster-enabled"))
}

pub fn add(t: &mut CoreStats, s: &CoreStats) {
    t.connected_clients += s.connected_clients;
    t.blocked_clients += s.blocked_clients;
    t.timeout_clients += s.timeout_clients;
    t.pubsub_clients += s.pubsub_clients;
    t.total_connections_received += s.total_connections_received;
    t.total_commands_processed += s.total_commands_processed;
    t.inst_ops += s.inst_ops;
    t.inst_input += s.inst_input;
    t.inst_output += s.inst_output;
    t.rejected_connections += s.rejected_connections;
    t.net_input_bytes += s.net_input_bytes;
    t.input_bytes_parsed += s.input_bytes_parsed;
    t.input_bytes_moved += s.input_bytes_moved;
    t.connections_moved += s.connections_moved;
    t.pipelines_reserved += s.pipelines_reserved;
    t.pipelines_refused += s.pipelines_refused;
    t.net_output_bytes += s.net_output_bytes;
    t.expired_keys += s.expired_keys;
    t.evicted_keys += s.evicted_keys;
    t.clients_memory += s.clients_memory;
    t.keyspace_hits += s.keyspace_hits;
    t.keyspace_misses += s.keyspace_misses;
    t.dirty += s.dirty;
    t.pubsub_channels += s.pubsub_channels;
    t.pubsub_patterns += s.pubsub_patterns;
    t.tracking_clients += s.tracking_clients;
    t.tracking.0 += s.tracking.0;
    t.tracking.1 += s.tracking.1;
    // Every core holds every BCAST prefix.
    t.tracking.2 = t.tracking.2.max(s.tracking.2);
    t.total_error_replies += s.total_error_replies;
    if t.keyspace.len() < s.keyspace.len() {
        t.keyspace.resize(s.keyspace.len(), (0, 0, 0));
    }
    for (i, &(k, e, ttl)) in s.keyspace.iter().enumerate() {
        let d = &mut t.keyspace[i];
        // (The node's `avg_ttl`: the cores' estimates weighed by their
        // keys with a TTL.)
        if d.1 + e > 0 {
            let weighed = d.2 as i128 * d.1 as i128 + ttl as i128 * e as i128;
            d.2 = (weighed / (d.1 + e) as i128) as i64;
        }
        d.0 += k;
        d.1 += e;
    }
}

fn server(shared: &Shared) -> String {
    let now = now_ms();
    let up = (now - shared.start_ms) / 1000;
    let settings = shared.settings();
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "redis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:Linux {} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:io_uring\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nslotd_version:{}\r\nslotd_shards:{}\r\n",
        super::node::REDIS_VERSION,
        if cluster_enabled(shared) {
            "cluster"
        } else {
            "standalone"
        },
        uname.trim(),
        std::env::consts::ARCH,
        std::process::id(),
        shared.run_id,
        shared.port,
        now * 1000,
        up,
        up / 86400,
        settings.hz,
        settings.hz,
        (now / 1000) & 0xff_ffff,
        shared.executable,
        shared.config_file.clone().unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
        shared.shards,
    )
}

/// Redis's human-readable byte counts (`1.50M`).
pub fn human(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

pub fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map_or(0, |kb| kb * 1024)
}

fn cpu() -> String {
    // SAFETY: getrusage fills the struct we own.
    let (user, sys) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        (
            ru.ru_utime.tv_sec as f64 + ru.ru_utime.tv_usec as f64 / 1e6,
            ru.ru_stime.tv_sec as f64 + ru.ru_stime.tv_usec as f64 / 1e6,
        )
    };
    format!(
        "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{sys:.6}\r\nused_cpu_user_main_thread:{user:.6}\r\n"
    )
}

/// INFO's replication section, as Redis 7.0's `genRedisInfoString`.
fn replication(r: &crate::replica::Status, priority: i64, read_only: bool) -> String {
    // The master thread's lines: a master's, or a replica's once its
    // replicas follow its master's stream from a known point.
    let view = r.master_view.as_ref().filter(|v| !v.text.is_empty());
    if let (None, Some(v)) = (&r.master, view) {
        return v.text.clone();
    }
    let mut out = String::new();
    let now = now_ms();
    let secs = |ms: i64| (now - ms) / 1000;
    match &r.master {
        None => out.push_str("role:master\r\n"),
        Some((host, port)) => {
            let up = r.state == crate::replica::LinkState::Connected;
            let sync = r.state == crate::replica::LinkState::Sync;
            // Redis shows 1 before any link, as its offsets start there.
            let (read_off, off) = if r.has_master_client || r.offset >= 0 {
                (r.read_offset, r.offset)
            } else {
                (1, 1)
            };
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{read_off}\r\nslave_repl_offset:{off}\r\n",
                if up { "up" } else { "down" },
                if r.last_io_ms > 0 { secs(r.last_io_ms) } else { -1 },
                sync as u8,
            );
            if sync {
                let perc = if r.transfer_size > 0 {
                    r.transfer_read as f64 / r.transfer_size as f64 * 100.0
                } else {
                    0.0
                };
                let _ = write!(
                    out,
                    "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                    r.transfer_size,
                    r.transfer_read,
                    r.transfer_size - r.transfer_read,
                    secs(r.transfer_last_io_ms),
                );
            }
            if !up {
                let _ = write!(
                    out,
                    "master_link_down_since_seconds:{}\r\n",
                    if r.down_since_ms > 0 {
                        secs(r.down_since_ms)
                    } else {
                        -1
                    }
                );
            }
            let _ = write!(
                out,
                "slave_priority:{priority}\r\nslave_read_only:{}\r\nreplica_announced:1\r\n",
                read_only as u8
            );
        }
    }
    if let Some(v) = view {
        out.push_str(v.text.strip_prefix("role:master\r\n").unwrap_or(&v.text));
        return out;
    }
    let _ = write!(
        out,
        "connected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
        r.replid,
        r.replid2,
        r.repl_offset.max(0),
        r.second_offset,
    );
    out
}
