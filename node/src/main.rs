//! # slotd
//!
//! A Redis-compatible server built thread-per-core: each shard core owns a
//! contiguous range of the 16384 hash slots and the keys in them.
//!
//! # Layout: rooms, lowest first
//! Each room may use only the rooms listed before it
//! (`scripts/check-rooms.sh` enforces it; ARCHITECTURE.md describes them).
//! - `log`, `config`, `shared`: Redis log lines, redis.conf-style
//!   configuration, what all cores share (settings, counters).
//! - `io`: the io_uring ring, sockets, connection buffers, the slab.
//! - `mesh`: messages between cores, the task executor, routing by key,
//!   the slow paths as tasks (remote, multi-key, fan-out, pipelines, EXEC).
//! - `shard`: one core's state; runs commands on its keyspace, serves
//!   blocked clients and other cores' requests, pub/sub delivery.
//! - `commands`: a request top to bottom: parse, check, route, node-level
//!   commands (CLIENT, CONFIG, INFO, MULTI, SUBSCRIBE, ...).
//! - `tools`: `slotd check-aof` and `slotd check-rdb`.
//! - `core`: the event loop: owns the ring, turns completions into calls.
//! - `main`: configuration, listeners, one pinned thread per shard core,
//!   signals and shutdown.

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

mod alloc;
mod bus;
mod commands;
mod config;
mod core;
mod io;
mod log;
mod mesh;
mod persist;
mod replica;
mod shard;
mod shared;
mod tools;

use io::{adjust_open_files_limit, net};
use shared::{settings_from, Shared};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Set by SIGTERM/SIGINT; the main thread turns it into a shutdown.
static SIGNALED: AtomicI64 = AtomicI64::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALED.store(sig as i64, Ordering::SeqCst);
}

/// CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the cpu_set_t we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&i| libc::CPU_ISSET(i, &set))
            .collect();
        if cpus.is_empty() {
            vec![0]
        } else {
            cpus
        }
    }
}

/// Placement from a tuning profile beyond the shard CPUs: each shard's
/// NUMA node, whether its memory must come only from there (`bind`) or
/// preferably (`preferred`), and the bus core's CPU.
struct Numa {
    nodes: Vec<Option<usize>>,
    strict: bool,
    bus_cpu: usize,
}

/// `disable-thp yes`: turns transparent huge pages off for this process
/// (Redis does it when THP is `always`; slotd does it whatever the mode, so
/// the setting means one thing). Returns whether THP is off.
fn disable_thp(cfg: &config::Config) -> bool {
    if !cfg.flag("disable-thp") {
        return false;
    }
    // SAFETY: a prctl that only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// The CPUs to pin shard cores to, from `tuning-profile` when one is given
/// (refused if it does not fit this host), else the CPUs this process may
/// use. Also logs the host checks Redis prints at start, plus slotd's own
/// (`thp_off`: THP is off for this process, so no THP warning).
fn placement(cfg: &config::Config, thp_off: bool) -> Result<(Vec<usize>, Option<Numa>), String> {
    let path = cfg.tuning_profile();
    let host = tuning::read_host(std::path::Path::new("/"));
    if path.is_empty() {
        let cpus = allowed_cpus();
        match &host {
            Ok(h) => {
                for line in tuning::startup_checks(h, &cpus, cfg.tcp_backlog() as u64, thp_off) {
                    log::warning(format_args!("{line}"));
                }
            }
            Err(e) => log::verbose(format_args!("Host checks skipped: {e}")),
        }
        return Ok((cpus, None));
    }
    let refuse = |e: tuning::TuneError| format!("Refusing tuning profile {path}: {e}");
    let profile = tuning::load_profile(std::path::Path::new(&path)).map_err(refuse)?;
    let host = host.map_err(refuse)?;
    profile.check_matches(&host).map_err(refuse)?;
    let backlog = cfg.tcp_backlog() as u64;
    for line in tuning::startup_checks(&host, profile.shard_cpus(), backlog, thp_off) {
        log::warning(format_args!("{line}"));
    }
    let cpus = profile.shard_cpus().to_vec();
    let nodes = (0..cpus.len())
        .map(|i| profile.numa_node_of_shard(i))
        .collect();
    log::notice(format_args!(
        "Tuning profile {path} loaded: shard CPUs {cpus:?}, bus CPU {}",
        profile.bus_cpu()
    ));
    Ok((
        cpus,
        Some(Numa {
            nodes,
            strict: profile.memory.policy == "bind",
            bus_cpu: profile.bus_cpu(),
        }),
    ))
}

/// Whether each shard thread is pinned to its CPU: always under a tuning
/// profile; without one, only when the shards leave some of the process's
/// CPUs to everything else (clients, the kernel's network work, other
/// processes). When the shards are as many as the CPUs (the default), a
/// pinned core could not move off a CPU another process keeps busy while
/// another CPU idles, so the kernel places them: with 2 shards on 2 CPUs
/// and redis-benchmark beside them, 65k SET/s at `-P 1` pinned against
/// 83-96k not (bench/results/cores-*).
fn pin_shards(profile: bool, shards: usize, cpus: usize) -> bool {
    profile || shards < cpus
}

/// Makes this thread's future allocations come from NUMA node `node`.
fn bind_memory(node: usize, strict: bool) {
    const MPOL_PREFERRED: libc::c_long = 1;
    const MPOL_BIND: libc::c_long = 2;
    let mut mask = [0u64; 16];
    if node >= mask.len() * 64 {
        return;
    }
    mask[node / 64] |= 1 << (node % 64);
    let mode = if strict { MPOL_BIND } else { MPOL_PREFERRED };
    // SAFETY: set_mempolicy reads `maxnode` bits from the mask we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            mask.as_ptr(),
            (mask.len() * 64) as libc::c_ulong,
        )
    };
    if rc != 0 {
        log::warning(format_args!(
            "Could not bind shard memory to NUMA node {node}: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// Descriptors Redis keeps aside from `maxclients` (CONFIG_MIN_RESERVED_FDS).
const MIN_RESERVED_FDS: u64 = 32;

fn run_id() -> String {
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// mimalloc's `mi_option_purge_delay` (its option enum's 16th entry in the
/// v2 and v3 headers the `libmimalloc-sys` crate builds).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells every core to stop.
fn stop_cores(shared: &Shared, mesh: &mesh::Mesh, shards: usize) {
    shared.shutdown.store(true, Ordering::SeqCst);
    for c in 0..shards {
        mesh.send(
            c,
            mesh::Msg::Req {
                from: 0,
                id: 0,
                client: 0,
                req: mesh::Request::Admin(mesh::AdminQuery::Shutdown),
            },
        );
    }
}

/// Cluster mode's start: the bus port, `nodes.conf` and the directives.
/// Exits with Redis's messages when the port is too high, the bus port is
/// taken, or the file is corrupt or locked by another node.
fn cluster_setup(
    cfg: &config::Config,
    port: u16,
    binds: &[String],
    backlog: i32,
    shard_ports: &[u16],
) -> (bus::Loaded, bus::Settings, Vec<i32>) {
    let cport = match cfg.int("cluster-port") {
        0 => {
            if port > 55535 {
                log::warning(format_args!(
                    "Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less."
                ));
                std::process::exit(1);
            }
            port + 10000
        }
        p => p as u16,
    };
    let Ok(fds) = net::listen_to_port(binds, cport, backlog) else {
        log::warning(format_args!(
            "Failed listening on port {cport} (cluster), aborting."
        ));
        std::process::exit(1);
    };
    let mut settings = bus::Settings::from(cfg, port, cport);
    settings.shard_ports = shard_ports.to_vec();
    let path = cfg
        .text("cluster-config-file")
        .unwrap_or_else(|| "nodes.conf".into());
    match bus::load(
        std::path::Path::new(&path),
        settings.protocol(),
        shared::now_ms() as u64,
    ) {
        Ok(l) => (l, settings, fds),
        Err(e) => {
            log::warning(format_args!("{e}"));
            std::process::exit(1);
        }
    }
}

fn main() {
    engine::script::set_logger(log::script_line);
    // Pages freed go back to the system at once rather than after a delay
    // measured on later allocations: a core that goes idle after FLUSHALL
    // or a mass expiry would otherwise keep them all (measured: 142 MB
    // kept after FLUSHALL of 1M keys, 1.6 MB with this).
    // SAFETY: sets a process-wide allocator option before any thread runs.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-aof") => std::process::exit(tools::check_aof(&args[1..])),
        Some("check-rdb") => std::process::exit(tools::check_rdb(&args[1..])),
        _ => {}
    }
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "slotd v={} (Redis-compatible {}) bits=64",
            env!("CARGO_PKG_VERSION"),
            commands::REDIS_VERSION
        );
        return;
    }
    let mut cfg = match config::Config::from_cli(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    // Like Redis, which enters `dir` as it reads the directive: files named
    // by relative paths (logfile, pidfile) are found from there.
    if let Err(e) = std::env::set_current_dir(cfg.dir()) {
        eprintln!("Can't chdir to '{}': {}", cfg.dir(), log::io_error_text(&e));
        std::process::exit(1);
    }
    if let Err(e) = log::init(cfg.loglevel(), &cfg.logfile()) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let pid = std::process::id();
    log::notice(format_args!(
        "oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"
    ));
    log::notice(format_args!(
        "Redis version={}, bits=64, commit=00000000, modified=0, pid={pid}, just started",
        commands::REDIS_VERSION
    ));
    log::notice(format_args!("slotd version={}", env!("CARGO_PKG_VERSION")));
    if cfg.config_file().is_some() {
        log::notice(format_args!("Configuration loaded"));
    } else {
        log::warning(format_args!(
            "Warning: no config file specified, using the default config. In order to specify a config file use slotd /path/to/slotd.conf"
        ));
    }
    for (name, value, why) in cfg.without_effect() {
        log::notice(format_args!(
            "{name} {value}: accepted for compatibility, without effect in slotd ({why})"
        ));
    }
    let thp_off = disable_thp(&cfg);
    let (cpus, numa) = match placement(&cfg, thp_off) {
        Ok(p) => p,
        Err(e) => {
            log::warning(format_args!("{e}"));
            std::process::exit(1);
        }
    };
    let shards = match cfg.shards() {
        0 => cpus.len(),
        n => n,
    }
    .clamp(1, 1024);
    if numa.is_some() && shards != cpus.len() {
        log::warning(format_args!(
            "Refusing to start: the tuning profile places {} shards but shards is {shards}",
            cpus.len()
        ));
        std::process::exit(1);
    }
    // Shard i's CPU when pinned.
    let shard_cpus: Vec<usize> = (0..shards).map(|i| cpus[i % cpus.len()]).collect();
    let pinned = pin_shards(numa.is_some(), shards, cpus.len());
    if pinned {
        log::notice(format_args!("Shard threads pinned to CPUs {shard_cpus:?}"));
    } else {
        log::notice(format_args!(
            "Shard threads not pinned: {shards} shards for {} CPUs (fewer shards, or a tuning profile, pin them)",
            cpus.len()
        ));
    }
    let port = cfg.port();
    let backlog = cfg.tcp_backlog() as i32;
    let binds = cfg.bind();
    // Descriptors besides clients: Redis's 32, plus each core's ring and
    // eventfd, plus the listening sockets.
    // `shard-port-base`: one more client port per core (0: none).
    let shard_ports: Vec<u16> = match cfg.int("shard-port-base") {
        0 => Vec::new(),
        base if base as usize + shards - 1 > 65535 => {
            log::warning(format_args!(
                "shard-port-base {base}: with {shards} shards the last port would be above 65535"
            ));
            std::process::exit(1);
        }
        base => (0..shards).map(|i| (base as usize + i) as u16).collect(),
    };
    // Core ports are announced as they listen: behind a port mapping they
    // would name ports nobody can reach.
    let announced = cfg.int("cluster-announce-port");
    if !shard_ports.is_empty() && announced != 0 && announced != i64::from(cfg.port()) {
        log::warning(format_args!(
            "shard-port-base cannot be used with a cluster-announce-port other than port: the core ports are announced as they listen"
        ));
        std::process::exit(1);
    }
    let reserved = MIN_RESERVED_FDS + (shards * 2 + binds.len() * (1 + shard_ports.len())) as u64;
    let maxclients = adjust_open_files_limit(cfg.maxclients(), reserved);
    if maxclients != cfg.maxclients() {
        let v = maxclients.to_string();
        if let Err(e) = cfg.set(&[(b"maxclients".as_slice(), v.as_bytes())]) {
            log::warning(format_args!("{e}"));
            std::process::exit(1);
        }
    }
    let settings = settings_from(&cfg);
    shared::ticks_init();
    let aof = persist::aof::Aof::new(
        shards,
        std::path::Path::new(&cfg.dir()).join(
            cfg.text("appenddirname")
                .unwrap_or_else(|| "appendonlydir".into()),
        ),
        cfg.text("appendfilename")
            .unwrap_or_else(|| "appendonly.aof".into()),
    );
    aof.configure(&cfg);
    let aof_on = cfg.flag("appendonly");
    let replicaof = cfg.replicaof();
    if replicaof.is_some() && cfg.flag("cluster-enabled") {
        eprintln!(
            "\n*** FATAL CONFIG FILE ERROR (Redis {}) ***\nreplicaof directive not allowed in cluster mode",
            commands::REDIS_VERSION
        );
        std::process::exit(1);
    }
    let (rdb_checksum, rdb_compress) = (cfg.flag("rdbchecksum"), cfg.flag("rdbcompression"));
    let aof_base_form = if cfg.flag("aof-use-rdb-preamble") {
        engine::snapshot::Form::Rdb {
            compress: rdb_compress,
        }
    } else {
        engine::snapshot::Form::Commands
    };
    let aof_load_truncated = cfg.flag("aof-load-truncated");
    let persist = Arc::new(persist::State::new(shards, aof));
    let rdb_path = std::path::Path::new(&cfg.dir())
        .join(cfg.text("dbfilename").unwrap_or_else(|| "dump.rdb".into()));
    let databases = settings.databases;
    let encoding = settings.encoding;
    let pidfile = cfg.text("pidfile").filter(|p| !p.is_empty());
    let shared = Arc::new(Shared {
        config_file: cfg.config_file().map(|p| p.display().to_string()),
        config: Mutex::new(cfg),
        settings: Mutex::new(settings),
        next_client_id: AtomicU64::new(1),
        clients: AtomicUsize::new(0),
        core_clients: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        shutdown: AtomicBool::new(false),
        start_ms: shared::now_ms(),
        run_id: run_id(),
        port,
        shards,
        reserved_fds: reserved,
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        lastsave_s: AtomicI64::new(shared::now_ms() / 1000),
        peak_memory: AtomicU64::new(0),
        startup_memory: AtomicU64::new(0),
        cores_up: AtomicUsize::new(0),
        evictable: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        evict_asked: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        active_expire: AtomicBool::new(true),
        replica: AtomicBool::new(false),
        master_link_up: AtomicBool::new(false),
        master_applied: AtomicU64::new(0),
        master_fed: AtomicU64::new(0),
        master_closed: AtomicU64::new(0),
        master_client: AtomicU64::new(0),
        master_load_failed: AtomicU64::new(0),
        good_replicas: std::sync::atomic::AtomicU32::new(0),
        failover_pause: AtomicBool::new(false),
        client_pause_until_ms: std::sync::atomic::AtomicI64::new(0),
        client_pause_all: AtomicBool::new(false),
        respread: AtomicBool::new(false),
        slowlog_next_id: AtomicU64::new(0),
        core_monitors: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        tracking_redirects: AtomicBool::new(false),
    });
    log::notice(format_args!("monotonic clock: POSIX clock_gettime"));
    let cluster = shared
        .config
        .lock()
        .ok()
        .filter(|c| c.flag("cluster-enabled"))
        .map(|c| cluster_setup(&c, port, &binds, backlog, &shard_ports));
    let mode = if cluster.is_some() {
        "cluster"
    } else {
        "standalone"
    };
    log::notice(format_args!("Running mode={mode}, port={port}."));

    // Listening sockets first, so a taken port fails the start cleanly:
    // one per address for the whole process, every core accepts on all.
    let Ok(listeners) = net::listen_to_port(&binds, port, backlog) else {
        log::warning(format_args!(
            "Failed listening on port {port} (TCP), aborting."
        ));
        std::process::exit(1);
    };
    if listeners.is_empty() {
        log::warning(format_args!("Configured to not listen anywhere, exiting."));
        std::process::exit(1);
    }
    // Each core's own port: accepted only by that core.
    let mut core_listeners: Vec<Vec<i32>> = Vec::with_capacity(shard_ports.len());
    for (core, &p) in shard_ports.iter().enumerate() {
        let Ok(fds) = net::listen_to_port(&binds, p, backlog) else {
            log::warning(format_args!(
                "Failed listening on port {p} (TCP), aborting."
            ));
            std::process::exit(1);
        };
        log::notice(format_args!("Shard {core} accepts clients on port {p}."));
        core_listeners.push(fds);
    }
    let mesh = match mesh::Mesh::new(shards) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            log::warning(format_args!("Failed creating the core mailboxes: {e}"));
            std::process::exit(1);
        }
    };
    // SAFETY: installing async-signal-safe handlers (they store an atomic)
    // and ignoring SIGPIPE (a closed peer surfaces as a send error).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    log::notice(format_args!("Server initialized"));
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::write(path, format!("{pid}\n")) {
            log::warning(format_args!(
                "Failed to write PID file: {}",
                log::io_error_text(&e)
            ));
        }
    }
    let replication = match replica::Replication::new(shared.clone(), mesh.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            log::warning(format_args!("Failed creating the replication stream: {e}"));
            std::process::exit(1);
        }
    };
    let mut threads = Vec::new();
    // Whether this node starts as a replica (of `replicaof`, or as
    // nodes.conf says), for the replication position the RDB recorded.
    let starts_replica = replicaof.is_some()
        || cluster
            .as_ref()
            .is_some_and(|(loaded, _, _)| loaded.cluster.is_replica());
    let bus = cluster.map(|(loaded, mut settings, fds)| {
        settings.cpu = numa.as_ref().map(|n| n.bus_cpu);
        let map = loaded.cluster.slot_map(settings.endpoint);
        // The slots this node serves (a replica: its master's), spread
        // over its cores before any core starts or any key is loaded.
        let all = map.served_all();
        let served: Vec<u16> = (0..cluster::SLOTS as u16)
            .filter(|&s| all[s as usize])
            .collect();
        mesh.slots.spread(&served);
        let bus = match mesh::Bus::new(map) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                log::warning(format_args!("Failed creating the cluster bus mailbox: {e}"));
                std::process::exit(1);
            }
        };
        match bus::start(
            loaded,
            settings,
            fds,
            shared.clone(),
            mesh.clone(),
            bus.clone(),
            replication.clone(),
        ) {
            Ok(t) => threads.push(t),
            Err(e) => {
                log::warning(format_args!("Could not start the cluster bus thread: {e}"));
                std::process::exit(1);
            }
        }
        bus
    });
    let services = shard::Services {
        persist: persist.clone(),
        bus,
        replication: replication.clone(),
    };
    for (id, &cpu) in shard_cpus.iter().enumerate() {
        let node = numa
            .as_ref()
            .and_then(|n| n.nodes.get(id).copied().flatten());
        let strict = numa.as_ref().is_some_and(|n| n.strict);
        let shared = shared.clone();
        let mesh = mesh.clone();
        let listeners = listeners.clone();
        let own = core_listeners.get(id).cloned().unwrap_or_default();
        let services = services.clone();
        let t = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || {
                if pinned {
                    shared::pin_to(cpu);
                }
                shared::batch_policy();
                if let Some(node) = node {
                    bind_memory(node, strict);
                }
                match core::Core::new(id, shards, shared, mesh, services, listeners, own) {
                    Ok(mut c) => c.run(),
                    Err(e) => {
                        log::warning(format_args!("Shard {id} could not start its io_uring: {e}"));
                        std::process::exit(1);
                    }
                }
            });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                log::warning(format_args!("Could not start shard thread {id}: {e}"));
                std::process::exit(1);
            }
        }
    }
    let loaded = if aof_on {
        persist::aof_start(
            &persist,
            &mesh.slots,
            databases,
            &encoding,
            aof_load_truncated,
            (rdb_checksum, aof_base_form),
        )
    } else {
        persist::load(&persist, &rdb_path, &mesh.slots, databases, &encoding)
    };
    if let Err(e) = loaded {
        for line in e.lines() {
            log::warning(format_args!("{line}"));
        }
        std::process::exit(1);
    }
    if let Some(from) = persist.take_loaded_repl() {
        replication.restore(from, starts_replica);
    }
    persist.finish_loading(&mesh);
    log::notice(format_args!("Ready to accept connections tcp"));
    if let Some((host, port)) = replicaof {
        replication.set_master(&host, port);
    }
    // A SIGTERM with save rules waits for the final snapshot.
    let mut saving_to_exit = false;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let sig = SIGNALED.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let name = if sig == libc::SIGINT as i64 {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            log::warning(format_args!("Received {name} scheduling shutdown..."));
            log::warning(format_args!("User requested shutdown..."));
            // As Redis: with save rules, save the final snapshot first.
            let rules = shared
                .config
                .lock()
                .ok()
                .and_then(|c| c.text("save"))
                .map(|t| !persist::Rules::parse(&t).0.is_empty())
                .unwrap_or(false);
            if rules && !saving_to_exit {
                log::notice(format_args!(
                    "Saving the final RDB snapshot before exiting."
                ));
                // A replica first runs what its master sent, so the file
                // records where it got in the master's stream.
                let repl = replication.end_for_shutdown();
                // A save already running counts: its end is awaited.
                let _ = persist::start_known(&shared, &persist, &mesh, repl);
                saving_to_exit = true;
            } else if !rules {
                stop_cores(&shared, &mesh, shards);
            }
        }
        if saving_to_exit && !persist.in_progress.load(Ordering::SeqCst) {
            saving_to_exit = false;
            if persist.last_ok.load(Ordering::Relaxed) {
                stop_cores(&shared, &mesh, shards);
            } else {
                log::warning(format_args!("Error trying to save the DB, can't exit."));
                replication.shutdown_failed();
                log::warning(format_args!(
                    "Errors trying to shut down the server. Check the logs for more information."
                ));
            }
        }
        if threads.iter().all(|t| t.is_finished()) {
            break;
        }
    }
    for t in threads {
        let _ = t.join();
    }
    for fd in listeners
        .into_iter()
        .chain(core_listeners.into_iter().flatten())
    {
        // SAFETY: the cores are gone; nothing uses these sockets any more.
        unsafe { libc::close(fd) };
    }
    if let Some(path) = &pidfile {
        log::notice(format_args!("Removing the pid file."));
        let _ = std::fs::remove_file(path);
    }
    log::warning(format_args!("Redis is now ready to exit, bye bye..."));
}
