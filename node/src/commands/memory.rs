//! What the process holds in memory: INFO memory and MEMORY STATS, DOCTOR,
//! MALLOC-STATS, PURGE and HELP (MEMORY USAGE runs on the key's core, in
//! the engine).
//!
//! `used_memory` is the counting allocator's figure (usable sizes of live
//! blocks); `used_memory_rss` is the process's resident set
//! (/proc/self/statm); the allocator's committed and resident bytes come
//! from mimalloc. The overhead is the memory at start-up plus the
//! connections' buffers; the dataset is the rest.

use super::dispatch::{spawn, Next};
use super::info::{add, human, total_system_memory};
use crate::alloc::used_memory;
use crate::io::Key;
use crate::mesh::{AdminQuery, CoreStats, Request, Response, Rpc, TaskDone};
use crate::shard::Shard;
use crate::shared::Shared;
use bytes::Bytes;
use engine::{error, Args, Reply};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The process's memory, in bytes, as INFO and MEMORY STATS report it.
struct Figures {
    used: u64,
    rss: u64,
    peak: u64,
    startup: u64,
    clients: u64,
    overhead: u64,
    dataset: u64,
    /// mimalloc's committed bytes (Redis's `allocator_active`).
    active: u64,
    /// mimalloc's resident bytes.
    resident: u64,
    keys: u64,
    maxmemory: u64,
    policy: &'static str,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Resident set size of the process.
fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}

/// (committed, resident) bytes according to mimalloc.
fn allocator() -> (u64, u64) {
    let (mut elapsed, mut user, mut sys) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: mimalloc fills the integers we pass pointers to.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut sys,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    (commit as u64, rss as u64)
}

fn figures(shared: &Shared, total: &CoreStats) -> Figures {
    let used = used_memory();
    let peak = shared
        .peak_memory
        .fetch_max(used, Ordering::Relaxed)
        .max(used);
    let startup = shared.startup_memory.load(Ordering::Relaxed);
    let overhead = startup + total.clients_memory;
    let (active, resident) = allocator();
    let settings = shared.settings();
    Figures {
        used,
        rss: rss(),
        peak,
        startup,
        clients: total.clients_memory,
        overhead,
        dataset: used.saturating_sub(overhead),
        active,
        resident,
        keys: total.keyspace.iter().map(|(k, _, _)| k).sum(),
        maxmemory: settings.maxmemory,
        policy: settings.evict.policy.name(),
    }
}

/// Every core's counters, added up.
async fn totals(rpc: &Rc<Rpc>) -> CoreStats {
    let mut total = CoreStats::default();
    for answer in rpc.call_all(|_| Request::Admin(AdminQuery::Stats)).await {
        if let Response::Stats(s) = answer {
            add(&mut total, &s);
        }
    }
    total
}

/// INFO memory, with Redis 7.0's fields in its order (slotd has no Lua,
/// functions, replication or AOF buffers: those are 0).
pub fn info(shared: &Shared, total: &CoreStats) -> String {
    let f = figures(shared, total);
    let net = f.used.saturating_sub(f.startup);
    let system = total_system_memory();
    let (lazy_pending, lazy_freed) = crate::shared::lazyfree_counts();
    format!(
        "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{used}\r\nallocator_active:{active}\r\nallocator_resident:{resident}\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:0\r\nused_memory_vm_eval:0\r\nused_memory_lua_human:0B\r\nused_memory_scripts_eval:0\r\nnumber_of_cached_scripts:0\r\nnumber_of_functions:0\r\nnumber_of_libraries:0\r\nused_memory_vm_functions:0\r\nused_memory_vm_total:0\r\nused_memory_vm_total_human:0B\r\nused_memory_functions:0\r\nused_memory_scripts:0\r\nused_memory_scripts_human:0B\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\nmem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\nmem_clients_normal:{clients}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:mimalloc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{lazy_pending}\r\nlazyfreed_objects:{lazy_freed}\r\n",
        human(f.used),
        human(f.rss),
        human(f.peak),
        ratio(f.used * 100, f.peak),
        ratio(f.dataset * 100, net),
        human(system),
        human(f.maxmemory),
        f.policy,
        ratio(f.active, f.used),
        f.active as i64 - f.used as i64,
        ratio(f.resident, f.active),
        f.resident as i64 - f.active as i64,
        ratio(f.rss, f.resident),
        f.rss as i64 - f.resident as i64,
        ratio(f.rss, f.used),
        f.rss as i64 - f.used as i64,
        used = f.used,
        rss = f.rss,
        peak = f.peak,
        overhead = f.overhead,
        startup = f.startup,
        dataset = f.dataset,
        active = f.active,
        resident = f.resident,
        max = f.maxmemory,
        clients = f.clients,
    )
}

const HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

pub use crate::mesh::flows::memory_is_node as is_node;

/// MEMORY STATS, DOCTOR, MALLOC-STATS, PURGE, HELP.
pub fn run(shard: &mut Shard, key: Key, args: Args) -> Next {
    shard.stats.total_commands_processed += 1;
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let known = ["doctor", "malloc-stats", "purge", "stats", "help"].contains(&sub.as_str());
    let reply = if !known {
        Some(Reply::Error(
            error::unknown_subcommand(args.get(1), "memory").into(),
        ))
    } else if args.len() != 2 {
        Some(Reply::Error(
            error::wrong_arity(&format!("memory|{sub}")).into(),
        ))
    } else if sub == "help" {
        Some(Reply::Array(
            HELP.iter().map(|l| Reply::status(*l)).collect(),
        ))
    } else if sub == "malloc-stats" {
        Some(Reply::Verbatim(Bytes::from(malloc_stats())))
    } else {
        None
    };
    if let Some(r) = reply {
        shard.reply(key, &r);
        return Next::Continue;
    }
    let rpc = shard.rpc.clone();
    let shared = shard.shared.clone();
    spawn(shard, key, async move {
        let reply = match sub.as_str() {
            "purge" => {
                rpc.call_all(|_| Request::Admin(AdminQuery::Purge)).await;
                Reply::Ok
            }
            "doctor" => {
                let total = totals(&rpc).await;
                Reply::Verbatim(Bytes::from(doctor(&figures(&shared, &total), &total)))
            }
            _ => stats(&shared, &totals(&rpc).await),
        };
        TaskDone::reply(key, reply)
    })
}

/// MEMORY STATS, with Redis 7.0's keys in its order.
fn stats(shared: &Arc<Shared>, total: &CoreStats) -> Reply {
    let f = figures(shared, total);
    let net = f.used.saturating_sub(f.startup);
    let int = |name: &str, v: u64| (Reply::bulk(name.as_bytes()), Reply::Int(v as i64));
    let sint = |name: &str, v: i64| (Reply::bulk(name.as_bytes()), Reply::Int(v));
    let dbl = |name: &str, v: f64| (Reply::bulk(name.as_bytes()), Reply::Double(v));
    let mut m = vec![
        int("peak.allocated", f.peak),
        int("total.allocated", f.used),
        int("startup.allocated", f.startup),
        int("replication.backlog", 0),
        int("clients.slaves", 0),
        int("clients.normal", f.clients),
        int("cluster.links", 0),
        int("aof.buffer", 0),
        int("lua.caches", 0),
        int("functions.caches", 0),
    ];
    for (i, (keys, expires, _)) in total.keyspace.iter().enumerate() {
        if *keys == 0 {
            continue;
        }
        // A dictionary slot is one pointer per key; a key with a TTL also
        // has a place in its database's TTL list (a key pointer).
        let ptr = std::mem::size_of::<usize>() as u64;
        m.push((
            Reply::bulk(format!("db.{i}").as_bytes()),
            Reply::Map(vec![
                int("overhead.hashtable.main", keys * ptr),
                int("overhead.hashtable.expires", expires * ptr),
                int("overhead.hashtable.slot-to-keys", 0),
            ]),
        ));
    }
    m.extend([
        int("overhead.total", f.overhead),
        int("keys.count", f.keys),
        int("keys.bytes-per-key", net.checked_div(f.keys).unwrap_or(0)),
        int("dataset.bytes", f.dataset),
        dbl("dataset.percentage", ratio(f.dataset * 100, net)),
        dbl("peak.percentage", ratio(f.used * 100, f.peak)),
        int("allocator.allocated", f.used),
        int("allocator.active", f.active),
        int("allocator.resident", f.resident),
        dbl("allocator-fragmentation.ratio", ratio(f.active, f.used)),
        sint(
            "allocator-fragmentation.bytes",
            f.active as i64 - f.used as i64,
        ),
        dbl("allocator-rss.ratio", ratio(f.resident, f.active)),
        sint("allocator-rss.bytes", f.resident as i64 - f.active as i64),
        dbl("rss-overhead.ratio", ratio(f.rss, f.resident)),
        sint("rss-overhead.bytes", f.rss as i64 - f.resident as i64),
        dbl("fragmentation", ratio(f.rss, f.used)),
        sint("fragmentation.bytes", f.rss as i64 - f.used as i64),
    ]);
    Reply::Map(m)
}

/// Redis's `getMemoryDoctorReport`, on slotd's figures (no replicas, no
/// scripts: those checks never fire).
fn doctor(f: &Figures, total: &CoreStats) -> String {
    const MB10: i64 = 10 << 20;
    if f.used < 5 * 1024 * 1024 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    let (used, rss, active, resident) = (
        f.used as i64,
        f.rss as i64,
        f.active as i64,
        f.resident as i64,
    );
    let mut s = String::new();
    if ratio(f.peak, f.used) > 1.5 {
        s.push_str(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
    }
    if ratio(f.rss, f.used) > 1.4 && rss - used > MB10 {
        s.push_str(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"mimalloc\".\n\n");
    }
    if ratio(f.active, f.used) > 1.1 && active - used > MB10 {
        s.push_str(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n");
    }
    if ratio(f.resident, f.active) > 1.1 && resident - active > MB10 {
        s.push_str(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n");
    }
    if ratio(f.rss, f.resident) > 1.1 && rss - resident > MB10 {
        s.push_str(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n");
    }
    if total.connected_clients > 0 && f.clients / total.connected_clients > 200 * 1024 {
        s.push_str(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n");
    }
    if s.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    format!("Sam, I detected a few issues in this Redis instance memory implants:\n\n{s}I'm here to keep you safe, Sam. I want to help you.\n")
}

/// mimalloc's statistics report.
fn malloc_stats() -> String {
    unsafe extern "C" fn out(msg: *const libc::c_char, arg: *mut libc::c_void) {
        // SAFETY: `arg` is the String passed below and `msg` a C string
        // mimalloc owns for the call.
        unsafe {
            let s = &mut *(arg as *mut String);
            s.push_str(&std::ffi::CStr::from_ptr(msg).to_string_lossy());
        }
    }
    let mut s = String::new();
    // SAFETY: the callback only appends to `s`, which outlives the call.
    unsafe {
        libmimalloc_sys::mi_stats_print_out(Some(out), &mut s as *mut String as *mut libc::c_void)
    };
    s
}
