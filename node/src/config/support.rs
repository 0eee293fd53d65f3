//! What slotd does with each directive it accepts. slotd never accepts a
//! directive and ignores it silently: every parameter of the table in
//! `config` is listed here, once, in one of four ways.
//!
//! * [`Support::Honoured`]: slotd does what the directive says, and the
//!   named test checks it.
//! * [`Support::Switch`]: the main switch of a feature slotd does not have
//!   yet (AOF, snapshots, cluster mode, replication, memory limits, ...):
//!   accepted only at its off value, which is its default; any other value
//!   stops the start (and fails CONFIG SET) with [`refusal`]'s text.
//! * [`Support::Dormant`]: a setting of such a feature (`appendfsync`,
//!   `dbfilename`, `cluster-node-timeout`, ...), or of a command slotd does
//!   not have yet: any valid value is kept and shown by CONFIG GET, and none
//!   changes anything while the feature is absent, as in Redis with the
//!   feature off.
//! * [`Support::NoEffect`]: tunes Redis internals slotd does not have and
//!   changes neither data, durability, the memory bound nor any reply. Set
//!   to another value than its default, it is logged once at start. The
//!   README lists these.
//!
//! As features land, their switches move to `Honoured` and their dormant
//! settings with them; the unit tests below keep the lists honest (every
//! switch off by default, every dormant setting tied to a switch or to a
//! command that is really absent, every honoured one to a test that
//! exists, every no-effect one in the README).

/// How slotd treats one directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented; `test` is the name of a test function that checks it.
    Honoured { test: &'static str },
    /// A feature's main switch, accepted only at `off` (its default).
    Switch {
        off: &'static str,
        feature: &'static str,
    },
    /// A setting of a feature that is absent: waits for `until`.
    Dormant { until: Until },
    /// Accepted without effect, for the reason given.
    NoEffect { why: &'static str },
}

/// What a dormant setting waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// This switch directive (a [`Support::Switch`]) to be turned on.
    Switch(&'static str),
    /// This command, which slotd does not have yet.
    Command(&'static str),
}

use Support::{Dormant, Honoured, NoEffect, Switch};

const fn test(name: &'static str) -> Support {
    Honoured { test: name }
}

const fn off(off: &'static str, feature: &'static str) -> Support {
    Switch { off, feature }
}

const fn of_switch(name: &'static str) -> Support {
    Dormant {
        until: Until::Switch(name),
    }
}

const fn of_command(name: &'static str) -> Support {
    Dormant {
        until: Until::Command(name),
    }
}

/// Every directive slotd knows, with how it treats it. The directives of
/// `config::PARAMS` and the file-only ones (`include`).
pub static SUPPORT: &[(&str, Support)] = &[
    // Network.
    (
        "port",
        test("a_second_server_on_a_taken_port_exits_as_redis_does"),
    ),
    ("bind", test("bind_limits_the_listening_addresses")),
    (
        "protected-mode",
        test("protected_mode_refuses_peers_other_than_127_0_0_1_and_1"),
    ),
    ("tcp-backlog", test("tcp_backlog_sizes_the_accept_queue")),
    ("timeout", test("timeout_closes_idle_clients")),
    (
        "tcp-keepalive",
        test("tcp_keepalive_arms_a_keepalive_timer_on_accepted_connections"),
    ),
    // General.
    (
        "daemonize",
        off("no", "slotd runs in the foreground, under a supervisor"),
    ),
    ("pidfile", test("pidfile_and_dir")),
    ("loglevel", test("loglevel_and_logfile")),
    ("logfile", test("loglevel_and_logfile")),
    ("databases", test("databases_bounds_select")),
    (
        "io-threads",
        NoEffect {
            why: "slotd runs one event loop per shard core, each doing its own I/O; \
                  `shards` sets how many",
        },
    ),
    (
        "enable-debug-command",
        test("enable_debug_command_guards_debug"),
    ),
    (
        "always-show-logo",
        NoEffect {
            why: "slotd never prints the ASCII logo",
        },
    ),
    (
        "set-proc-title",
        NoEffect {
            why: "slotd keeps its command line as its process title",
        },
    ),
    (
        "proc-title-template",
        NoEffect {
            why: "slotd keeps its command line as its process title",
        },
    ),
    ("disable-thp", test("disable_thp_turns_off_huge_pages")),
    (
        "oom-score-adj",
        off("no", "slotd does not adjust its OOM score yet"),
    ),
    ("oom-score-adj-values", of_switch("oom-score-adj")),
    // Security and limits.
    (
        "requirepass",
        test("requirepass_gates_every_command_but_auth"),
    ),
    ("maxclients", test("maxclients_refuses_extra_clients")),
    ("maxmemory", test("maxmemory_bounds_memory_under_a_6x_load")),
    (
        "maxmemory-policy",
        test("each_policy_evicts_its_own_victims"),
    ),
    (
        "maxmemory-samples",
        test("each_policy_evicts_its_own_victims"),
    ),
    (
        "maxmemory-eviction-tenacity",
        test("each_policy_evicts_its_own_victims"),
    ),
    (
        "lfu-log-factor",
        test("lfu_log_factor_and_decay_time_shape_object_freq"),
    ),
    (
        "lfu-decay-time",
        test("lfu_log_factor_and_decay_time_shape_object_freq"),
    ),
    ("hz", test("hz_sets_the_cron_frequency")),
    (
        "busy-reply-threshold",
        test("long_scripts_make_other_clients_see_busy"),
    ),
    (
        "tracking-table-max-keys",
        test("tracking_table_max_keys_forgets_keys"),
    ),
    (
        "dynamic-hz",
        NoEffect {
            why: "slotd's cron work per tick is bounded per core whatever the client \
                  count; dynamic-hz only raises how often Redis runs it",
        },
    ),
    (
        "proto-max-bulk-len",
        test("proto_max_bulk_len_refuses_big_bulks"),
    ),
    (
        "client-query-buffer-limit",
        test("client_query_buffer_limit_closes_the_client"),
    ),
    (
        "client-output-buffer-limit",
        test("client_output_buffer_limit_closes_slow_subscribers"),
    ),
    (
        "slowlog-log-slower-than",
        test("slowlog_keeps_what_its_directives_say"),
    ),
    (
        "slowlog-max-len",
        test("slowlog_keeps_what_its_directives_say"),
    ),
    (
        "latency-tracking",
        off("no", "INFO latencystats is not built yet"),
    ),
    (
        "latency-monitor-threshold",
        off("0", "the latency monitor is not built yet"),
    ),
    (
        "maxmemory-clients",
        off("0", "client eviction is not built yet"),
    ),
    (
        "notify-keyspace-events",
        test("keyspace_events_match_redis"),
    ),
    (
        "activerehashing",
        NoEffect {
            why: "slotd's dictionaries have no incremental rehashing for a cron to pace",
        },
    ),
    (
        "jemalloc-bg-thread",
        NoEffect {
            why: "slotd allocates with mimalloc, not jemalloc",
        },
    ),
    ("acllog-max-len", of_command("acl")),
    // Persistence: snapshots.
    (
        "save",
        test("slotd_snapshot_loads_in_redis_with_every_type_and_ttl"),
    ),
    (
        "stop-writes-on-bgsave-error",
        test("a_failed_bgsave_stops_writes_with_misconf"),
    ),
    (
        "rdbcompression",
        test("slotd_snapshot_loads_in_redis_with_every_type_and_ttl"),
    ),
    (
        "rdbchecksum",
        test("slotd_snapshot_loads_in_redis_with_every_type_and_ttl"),
    ),
    (
        "rdb-del-sync-files",
        test("replica_authenticates_and_follows_settings"),
    ),
    (
        "rdb-save-incremental-fsync",
        test("incremental_fsync_keeps_a_snapshot_off_the_page_cache"),
    ),
    (
        "dbfilename",
        test("redis_snapshot_loads_in_slotd_on_two_shards"),
    ),
    ("dir", test("pidfile_and_dir")),
    // Persistence: the append-only file.
    (
        "appendonly",
        test("appendfsync_always_loses_no_acknowledged_write"),
    ),
    (
        "appendfilename",
        test("aof_files_follow_appenddirname_and_appendfilename"),
    ),
    (
        "appenddirname",
        test("aof_files_follow_appenddirname_and_appendfilename"),
    ),
    (
        "appendfsync",
        test("appendfsync_always_loses_no_acknowledged_write"),
    ),
    (
        "no-appendfsync-on-rewrite",
        test("no_appendfsync_on_rewrite_lets_fsync_lag_during_a_bgsave"),
    ),
    (
        "auto-aof-rewrite-percentage",
        test("auto_aof_rewrite_starts_when_the_files_grow"),
    ),
    (
        "auto-aof-rewrite-min-size",
        test("auto_aof_rewrite_starts_when_the_files_grow"),
    ),
    ("aof-load-truncated", test("torn_tail_is_reported_and_fixed_like_redis")),
    (
        "aof-use-rdb-preamble",
        test("a_command_base_loads_into_slotd_and_redis_both_ways"),
    ),
    (
        "aof-timestamp-enabled",
        test("aof_timestamps_mark_each_second_outside_multi_and_load"),
    ),
    (
        "aof-rewrite-incremental-fsync",
        test("incremental_fsync_keeps_a_snapshot_off_the_page_cache"),
    ),
    // Cluster.
    ("cluster-enabled", test("cluster_mode_serves_a_three_node_cluster")),
    ("cluster-config-file", test("nodes_conf_keeps_identity_across_restart")),
    ("cluster-node-timeout", test("a_stopped_node_is_flagged_fail_and_rejoins")),
    (
        "cluster-require-full-coverage",
        test("cluster_directives_are_honoured"),
    ),
    (
        "cluster-replica-validity-factor",
        test("t7_a_master_and_its_replica_down_take_the_cluster_down_until_they_return"),
    ),
    (
        "cluster-migration-barrier",
        test("t9_a_replica_migrates_to_an_orphaned_master"),
    ),
    (
        "cluster-allow-replica-migration",
        test("t9_a_replica_migrates_to_an_orphaned_master"),
    ),
    (
        "cluster-replica-no-failover",
        test("replica_no_failover_waits_for_force_and_takeover_needs_no_votes"),
    ),
    (
        "cluster-allow-reads-when-down",
        test("cluster_directives_are_honoured"),
    ),
    (
        "cluster-allow-pubsubshard-when-down",
        test("cluster_directives_are_honoured"),
    ),
    ("cluster-announce-ip", test("cluster_directives_are_honoured")),
    ("cluster-announce-port", test("cluster_directives_are_honoured")),
    ("cluster-announce-bus-port", test("cluster_directives_are_honoured")),
    ("cluster-announce-hostname", test("cluster_directives_are_honoured")),
    (
        "cluster-preferred-endpoint-type",
        test("cluster_directives_are_honoured"),
    ),
    ("cluster-link-sendbuf-limit", test("cluster_directives_are_honoured")),
    ("cluster-port", test("cluster_directives_are_honoured")),
    // Replication: the replica side is built (slotd follows a master);
    // the master side (serving SYNC/PSYNC) is not yet.
    ("replicaof", test("slotd_replicates_a_redis_master")),
    ("masterauth", test("replica_authenticates_and_follows_settings")),
    ("masteruser", test("replica_authenticates_and_follows_settings")),
    ("repl-timeout", test("replica_authenticates_and_follows_settings")),
    (
        "min-replicas-to-write",
        test("min_replicas_to_write_refuses_writes_without_good_replicas"),
    ),
    (
        "min-replicas-max-lag",
        test("min_replicas_to_write_refuses_writes_without_good_replicas"),
    ),
    ("replica-announce-ip", test("replica_authenticates_and_follows_settings")),
    ("replica-announce-port", test("replica_authenticates_and_follows_settings")),
    ("replica-read-only", test("slotd_replicates_a_redis_master")),
    (
        "replica-serve-stale-data",
        test("replica_authenticates_and_follows_settings"),
    ),
    ("replica-priority", test("slotd_replicates_a_redis_master")),
    (
        "replica-lazy-flush",
        test("replica_authenticates_and_follows_settings"),
    ),
    (
        "repl-diskless-load",
        test("a_diskless_load_keeps_the_masters_rdb_off_the_disk"),
    ),
    // The master side.
    ("repl-backlog-size", test("a_redis_replica_follows_slotd")),
    ("repl-ping-replica-period", test("a_redis_replica_follows_slotd")),
    ("repl-disable-tcp-nodelay", test("a_redis_replica_follows_slotd")),
    ("repl-diskless-sync", test("a_redis_replica_follows_slotd")),
    (
        "repl-diskless-sync-delay",
        NoEffect {
            why: "each full resynchronization takes its own fork-less snapshot, at once or right after the one running: there is no child process for replicas to share",
        },
    ),
    (
        "repl-diskless-sync-max-replicas",
        NoEffect {
            why: "each full resynchronization takes its own fork-less snapshot, at once or right after the one running: there is no child process for replicas to share",
        },
    ),
    // Encodings.
    (
        "list-max-listpack-size",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "list-compress-depth",
        off("0", "list compression is not built yet"),
    ),
    (
        "hash-max-listpack-entries",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "hash-max-listpack-value",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "set-max-intset-entries",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "zset-max-listpack-entries",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "zset-max-listpack-value",
        test("encoding_thresholds_follow_the_directives"),
    ),
    (
        "hll-sparse-max-bytes",
        test("hll_sparse_max_bytes_decides_when_an_hll_turns_dense"),
    ),
    (
        "stream-node-max-bytes",
        test("stream_node_settings_cut_nodes_as_redis_does"),
    ),
    (
        "stream-node-max-entries",
        test("stream_node_settings_cut_nodes_as_redis_does"),
    ),
    // Lazy freeing.
    // The engine routes evictions through it already; the node evicts
    // once `maxmemory` is built.
    (
        "lazyfree-lazy-eviction",
        test("lazyfree_lazy_eviction_frees_evicted_big_values_off_the_core"),
    ),
    (
        "lazyfree-lazy-expire",
        test("lazyfree_directives_choose_what_is_freed_lazily"),
    ),
    (
        "lazyfree-lazy-server-del",
        test("lazyfree_directives_choose_what_is_freed_lazily"),
    ),
    (
        "lazyfree-lazy-user-del",
        test("unlink_and_del_free_big_keys_as_redis"),
    ),
    (
        "lazyfree-lazy-user-flush",
        test("lazyfree_directives_choose_what_is_freed_lazily"),
    ),
    // slotd's own.
    ("shards", test("shards_sets_the_shard_threads")),
    (
        "shard-port-base",
        test("shard_ports_route_clients_to_the_owning_core"),
    ),
    (
        "tuning-profile",
        test("a_profile_for_another_host_is_refused"),
    ),
    // File-only directives.
    ("include", test("config_file_parsing")),
];

/// How slotd treats directive `name` (canonical name, lower case).
pub fn support(name: &str) -> Option<Support> {
    SUPPORT.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The error for a switch turned on: names the directive and the value
/// and says what slotd accepts instead.
pub fn refusal(name: &str, value: &str, off: &str, feature: &str) -> String {
    format!(
        "'{name} {value}' is not supported by slotd yet ({feature}): only '{name} {off}' is accepted"
    )
}

#[cfg(test)]
mod tests {
    use super::super::{default_value, display, lookup, Config, Kind, Value, PARAMS};
    use super::*;
    use std::path::PathBuf;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: PathBuf, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }

    /// A valid value other than the default, by the parameter's kind.
    fn other_value(name: &str, kind: Kind, default: &Value) -> String {
        match (name, kind) {
            ("dir", _) => std::env::temp_dir().to_string_lossy().into_owned(),
            ("notify-keyspace-events", _) => "KEA".into(),
            (_, Kind::Bool) => if *default == Value::Bool(true) {
                "no"
            } else {
                "yes"
            }
            .into(),
            (_, Kind::Int { min, max }) => {
                let v = if *default == Value::Int(min) {
                    min + 1
                } else {
                    min
                };
                assert!(v <= max, "{name}");
                v.to_string()
            }
            (_, Kind::Mem { min, .. }) => if *default == Value::Mem(min) {
                min + 1
            } else {
                min
            }
            .to_string(),
            (_, Kind::Enum(words)) => words
                .iter()
                .find(|w| Value::Enum(w) != *default)
                .expect("an enum with one word")
                .to_string(),
            (_, Kind::Str) => "slotd-test-value".into(),
            (_, Kind::Bind) => "127.0.0.2".into(),
            (_, Kind::Save) => "900 1".into(),
            (_, Kind::ReplicaOf) => "127.0.0.1 6390".into(),
            (_, Kind::IntList { count, min, .. }) => vec![min.to_string(); count].join(" "),
            (_, Kind::Obuf) => "pubsub 1mb 0 0".into(),
        }
    }

    #[test]
    fn every_directive_is_classified_once() {
        for p in PARAMS {
            let n = SUPPORT.iter().filter(|(name, _)| *name == p.name).count();
            assert_eq!(n, 1, "{} must be listed once in SUPPORT", p.name);
        }
        for (name, _) in SUPPORT {
            assert!(
                lookup(name.as_bytes()).is_some() || *name == "include",
                "{name} is listed in SUPPORT but the parser does not know it"
            );
        }
    }

    #[test]
    fn classifications_hold() {
        let mut code = Vec::new();
        for dir in ["tests/tests", "node/src", "tuning/src", "tuning/tests"] {
            sources(root().join(dir), &mut code);
        }
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        for (name, kind) in SUPPORT {
            match *kind {
                Honoured { test } => {
                    let decl = format!("fn {test}(");
                    assert!(
                        code.iter().any(|c| c.contains(&decl)),
                        "{name} is honoured by test {test}, which does not exist"
                    );
                }
                Switch { off, .. } => {
                    let p = &PARAMS[lookup(name.as_bytes()).unwrap()];
                    let off_args = super::super::split_args(off).unwrap();
                    let off_value = super::super::parse_value(p, &off_args);
                    assert_eq!(
                        off_value.ok(),
                        default_value(p),
                        "{name}: off is the default"
                    );
                }
                Dormant {
                    until: Until::Switch(s),
                } => assert!(
                    matches!(support(s), Some(Switch { .. })),
                    "{name} waits for {s}, which is not a switch"
                ),
                Dormant {
                    until: Until::Command(c),
                } => assert!(
                    engine::cmd::registry().lookup(c.as_bytes()).is_none(),
                    "{name} waits for command {c}, which exists now: classify it anew"
                ),
                NoEffect { why } => {
                    assert!(!why.is_empty());
                    let row = format!("| `{name}` |");
                    assert!(
                        readme.contains(&row),
                        "README must list {name} as accepted without effect"
                    );
                }
            }
        }
    }

    /// The walk: each directive at a value other than its default, from the
    /// command line and through CONFIG SET, is refused exactly when it is a
    /// switch, and otherwise taken (CONFIG GET shows it).
    #[test]
    fn every_directive_off_its_default_is_refused_or_taken() {
        for p in PARAMS {
            let default = default_value(p).unwrap();
            let value = other_value(p.name, p.kind, &default);
            let support = support(p.name).unwrap();
            let from_cli = Config::from_cli(&[format!("--{}", p.name), value.clone()]);
            let mut cfg = Config::new();
            let from_set = cfg.set(&[(p.name.as_bytes(), value.as_bytes())]);
            match support {
                Switch { .. } => {
                    let e = from_cli.expect_err(p.name);
                    assert!(e.starts_with("*** FATAL CONFIG FILE ERROR"), "{e}");
                    assert!(e.contains("is not supported by slotd yet"), "{e}");
                    assert!(e.contains(&format!("'{} ", p.name)), "{e}");
                    let e = from_set.expect_err(p.name);
                    assert!(
                        e.contains("is not supported by slotd yet")
                            || e.contains("can't set immutable config"),
                        "{e}"
                    );
                }
                _ => {
                    let c = from_cli.unwrap_or_else(|e| panic!("{}: {e}", p.name));
                    let idx = lookup(p.name.as_bytes()).unwrap();
                    assert_ne!(
                        display(p, &c.values[idx]),
                        display(p, &default),
                        "{} {value} must change what CONFIG GET shows",
                        p.name
                    );
                    if let Err(e) = from_set {
                        assert!(
                            e.contains("can't set immutable config")
                                || e.contains("can't set protected config"),
                            "{}: {e}",
                            p.name
                        );
                    }
                }
            }
        }
        // File-only directives: `include` is honoured; Redis's others are
        // refused by the parser until they are built.
        for (name, arg) in [
            ("rename-command", "flushall \"\""),
            ("user", "alice on >pw ~* +@all"),
            ("loadmodule", "/tmp/m.so"),
        ] {
            let e = Config::from_cli(&[format!("--{name}"), arg.to_string()]).unwrap_err();
            assert!(
                e.ends_with("Bad directive or wrong number of arguments"),
                "{e}"
            );
        }
    }

    #[test]
    fn without_effect_lists_what_was_set() {
        let c = Config::from_cli(&["--io-threads".into(), "4".into()]).unwrap();
        let w = c.without_effect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].0, w[0].1.as_str()), ("io-threads", "4"));
        assert!(Config::new().without_effect().is_empty());
    }
}
