//! Running one command for a connection: checks (auth, arity, pub/sub
//! context, MULTI queueing), then routing by the command table's key spec:
//! keys all on this core run inline (the fast path); otherwise a task
//! carries the command to the cores that own its keys.

use crate::io::{Key, Wait};
use crate::mesh::{flows, route, Route, TaskDone};
use crate::shard::{Origin, Shard};
use engine::cmd::{flags, Spec};
use engine::{error, Args, Reply};
use std::sync::atomic::Ordering;

/// What the parse loop does after a command.
pub enum Next {
    /// The command is done (its reply is queued): go on.
    Continue,
    /// The command was consumed but its reply comes later: stop for now.
    Wait,
    /// The command could not start (this core is locked): leave it in the
    /// buffer and retry it when the connection is resumed.
    Retry,
    /// The command was consumed and belongs to core `to` (`write`: it may
    /// modify data): the caller sends it there, together with the
    /// pipelined commands right after it that can travel with it
    /// ([`plan_target`]), as one `mesh::Request::Pipeline`.
    Remote { to: usize, db: usize, write: bool },
}

/// Redis 7.0's refusal of DEBUG under `enable-debug-command`.
const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Whether `enable-debug-command` (`yes`, `no` or `local`) lets a client
/// at `addr` (`ip:port`) run DEBUG: `local` means from 127.0.0.1 or ::1.
fn debug_allowed(setting: &str, addr: &str) -> bool {
    match setting {
        "yes" => true,
        "local" => matches!(addr.rsplit_once(':'), Some(("127.0.0.1" | "::1", _))),
        _ => false,
    }
}

/// Redis 7.0's `allow_busy` commands: what a client may still run while a
/// script is past `busy-reply-threshold`.
fn allowed_while_busy(spec: &Spec, args: &Args) -> bool {
    match spec.name {
        "discard" | "watch" | "auth" | "hello" | "multi" | "shutdown" | "unwatch" | "quit"
        | "replconf" | "reset" => true,
        "script" => args.is(1, "kill"),
        "function" => args.is(1, "kill") || args.is(1, "stats"),
        _ => false,
    }
}

/// Queues `reply` for `key`.
fn answer(shard: &mut Shard, key: Key, reply: Reply) -> Next {
    shard.reply(key, &reply);
    Next::Continue
}

/// Answers command `spec`'s refusal before it ran, counted as Redis
/// counts it (`rejected_calls`).
fn reject(shard: &mut Shard, key: Key, spec: &Spec, e: Reply) -> Next {
    // (An unknown subcommand is no command: its error counts alone.)
    if !shard.conns.get(key).is_some_and(|c| c.sub_unknown) {
        shard.count_rejected(stats_name(shard, key, spec));
    }
    // A refused EXEC discards the transaction, if any, and says why
    // (Redis's `rejectCommand` calls `execCommandAbort`; the memory and
    // busy-script checks word theirs already).
    let worded = matches!(&e, Reply::Error(why) if why.starts_with("EXECABORT"));
    if let (true, false, Reply::Error(why)) = (spec.name == "exec", worded, &e) {
        if let Some(c) = shard.conns.get_mut(key).filter(|c| c.multi.is_some()) {
            c.multi = None;
            c.multi_failed = false;
            let watches = std::mem::take(&mut c.watches);
            shard.unwatch_all(watches);
        }
        let why = why.strip_prefix("ERR ").unwrap_or(why);
        let e = format!("EXECABORT Transaction discarded because of: {why}");
        return answer(shard, key, Reply::Error(e.into()));
    }
    answer(shard, key, e)
}

/// The name INFO commandstats counts connection `key`'s command `spec`
/// under: with its subcommand (`config|set`), as Redis 7.0.
fn stats_name(shard: &Shard, key: Key, spec: &Spec) -> &'static str {
    shard
        .conns
        .get(key)
        .and_then(|c| c.last_sub)
        .unwrap_or(spec.name)
}

/// Runs one parsed command for connection `key`.
pub fn command(shard: &mut Shard, key: Key, args: Args) -> Next {
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    // CLIENT REPLY: this command's reply is dropped under OFF, or after
    // SKIP.
    conn.mute = conn.reply_off || std::mem::take(&mut conn.skip_next);
    let clock = shard.cmd_clock.take();
    let next = checked(shard, key, args, clock);
    if let Next::Retry = next {
        // Not run: it comes again, and the SKIP with it.
        if let Some(c) = shard.conns.get_mut(key) {
            c.skip_next = c.mute && !c.reply_off;
        }
    }
    next
}

/// [`command`] once its reply's fate is known: the checks, then the run.
/// `clock`: when the command before it in the same read ended (see
/// [`Shard::cmd_clock`]).
fn checked(shard: &mut Shard, key: Key, args: Args, clock: Option<u64>) -> Next {
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if shard.shared.respread.load(Ordering::Acquire) {
        // Slots move between cores (`mesh::respread`): every command
        // waits, the master's too, and runs when the cores resume
        // (`Shard::resume_paused`).
        conn.wait = Wait::Stalled;
        shard.paused_conns.push(key);
        return Next::Retry;
    }
    let name = args.get(0);
    if conn.master && name.eq_ignore_ascii_case(crate::replica::LOAD_COMMAND) {
        return super::debug::replica_load(shard, key, &args);
    }
    let last = conn
        .last_cmd
        .filter(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name));
    let Some(spec) = last.or_else(|| engine::cmd::registry().lookup(name)) else {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        let e = engine::cmd::unbuilt::error_for(name)
            .unwrap_or_else(|| error::unknown_command(name, args.iter_from(1)));
        return answer(shard, key, Reply::Error(e.into()));
    };
    conn.last_cmd = Some(spec);
    conn.last_sub = (spec.has(flags::SUBCOMMANDS) && args.len() > 1)
        .then(|| engine::cmd::meta::full_name(spec.name, args.get(1)))
        .flatten();
    conn.sub_unknown = spec.has(flags::SUBCOMMANDS) && args.len() > 1 && conn.last_sub.is_none();
    if !conn.authed && !spec.has(flags::NO_AUTH) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return reject(
            shard,
            key,
            spec,
            Reply::err("NOAUTH Authentication required."),
        );
    }
    if !shard
        .persist
        .last_ok
        .load(std::sync::atomic::Ordering::Relaxed)
        && (spec.has(flags::WRITE) || spec.name == "ping")
        && refuse_writes(&shard.shared)
    {
        return reject(shard, key, spec, Reply::err(MISCONF));
    }
    if shard.loading && !ALLOWED_WHILE_LOADING.contains(&spec.name) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return reject(
            shard,
            key,
            spec,
            Reply::err("LOADING Redis is loading the dataset in memory"),
        );
    }
    // (As Redis: only while the AOF is on; turning it off lifts the
    // refusal, though INFO keeps the last write's status.)
    let aof = &shard.persist.aof;
    if !aof.write_ok.load(std::sync::atomic::Ordering::Relaxed)
        && aof.on.load(std::sync::atomic::Ordering::Relaxed)
        && (spec.has(flags::WRITE) || spec.name == "ping")
    {
        let why = aof
            .write_error
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        return reject(
            shard,
            key,
            spec,
            Reply::err(format!("MISCONF Errors writing to the AOF file: {why}")),
        );
    }
    if let Err(e) = spec.check_args(&args) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return reject(shard, key, spec, e);
    }
    if let Some(busy) = engine::script::busy_error() {
        // A script has run past `busy-reply-threshold`: Redis answers
        // everything but its `allow_busy` commands with BUSY (the master
        // link's commands wait instead, as Redis stops reading them).
        if !conn.master && !allowed_while_busy(spec, &args) {
            if spec.name == "exec" && conn.multi.is_some() {
                // Redis's `execCommandAbort`: the transaction is dropped.
                conn.multi = None;
                conn.multi_failed = false;
                let watches = std::mem::take(&mut conn.watches);
                shard.unwatch_all(watches);
                let e = format!("EXECABORT Transaction discarded because of: {busy}");
                return reject(shard, key, spec, Reply::err(e));
            }
            if conn.multi.is_some() {
                conn.multi_failed = true;
            }
            return reject(shard, key, spec, Reply::err(busy));
        }
    }
    // (A command that waits and runs later keeps its ASKING.)
    let asking_was = conn.asking;
    if shard.cluster.is_some() {
        // ASKING lasts one command, or a whole transaction when MULTI
        // follows it (Redis's `resetClient` keeps the flag while the
        // client is in MULTI).
        let keep = spec.name == "asking"
            || (spec.name != "exec" && spec.name != "discard")
                && (conn.multi.is_some() || spec.name == "multi");
        let asking = spec.name != "asking" && conn.asking;
        if !keep {
            conn.asking = false;
        }
        // RESTORE-ASKING counts as sent after ASKING; MIGRATE is served
        // on a slot being imported (Redis's `getNodeByQuery`).
        let asking = asking || matches!(spec.name, "restore-asking" | "migrate");
        if let Err(e) = cluster_check(shard, key, spec, &args, asking) {
            if let Some(c) = shard.conns.get_mut(key) {
                if spec.name == "exec" {
                    c.multi = None;
                    c.multi_failed = false;
                } else if c.multi.is_some() {
                    c.multi_failed = true;
                }
            }
            return reject(shard, key, spec, e);
        }
    }
    if let Some(refused) = refuse_for_memory(shard, key, spec, &args) {
        return refused;
    }
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if !conn.master
        && shard
            .shared
            .replica
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        if let Some(e) = replica_refusal(shard, spec) {
            if let Some(c) = shard.conns.get_mut(key) {
                if c.multi.is_some() {
                    c.multi_failed = true;
                }
            }
            return reject(shard, key, spec, Reply::err(e));
        }
    }
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    let master = conn.master;
    if spec.has(flags::WRITE) && !master && !enough_replicas(shard) {
        // `min-replicas-to-write` (Redis's `checkGoodReplicasStatus`).
        if let Some(c) = shard.conns.get_mut(key) {
            if c.multi.is_some() {
                c.multi_failed = true;
            }
        }
        return reject(shard, key, spec, Reply::err(NOREPLICAS));
    }
    let pause = shard.shared.client_pause();
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if (shard.writes_paused && may_write(spec, &args, conn))
        || client_paused(pause, spec, &args, conn)
    {
        // A manual failover paused the writers, or CLIENT PAUSE holds the
        // command: it waits, and is checked again (for a failover most
        // likely MOVED) when they resume (`Shard::resume_paused`).
        conn.asking = asking_was;
        conn.wait = Wait::Stalled;
        shard.paused_conns.push(key);
        return Next::Retry;
    }
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if spec.name == "debug" && !debug_allowed(shard.settings.debug_command, &conn.addr) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return reject(shard, key, spec, Reply::err(DEBUG_NOT_ALLOWED));
    }
    if conn.sub_count() > 0
        && !conn.resp3
        && !spec.has(flags::PUBSUB_OK)
        && !matches!(spec.name, "ping" | "quit" | "reset")
    {
        let e = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        );
        return reject(shard, key, spec, Reply::Error(e.into()));
    }
    if conn.sub_count() > 0 && !conn.resp3 && spec.name == "ping" && args.len() <= 2 {
        // In RESP2 subscribed mode PING answers as a message would.
        let msg = if args.len() == 2 { args.get(1) } else { b"" };
        let pong = Reply::Array(vec![Reply::bulk(b"pong"), Reply::bulk(msg)]);
        shard.counted(spec.name);
        return answer(shard, key, pong);
    }
    if conn.multi.is_some()
        && !matches!(
            spec.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        if spec.has(flags::NO_MULTI) {
            conn.multi_failed = true;
            return reject(
                shard,
                key,
                spec,
                Reply::err("ERR Command not allowed inside a transaction"),
            );
        }
        if let Err(e) = route(spec, &args, shard.cores, &shard.mesh.slots) {
            conn.multi_failed = true;
            return reject(shard, key, spec, e);
        }
        if let Some(q) = conn.multi.as_mut() {
            q.push(args.to_owned());
        }
        return answer(shard, key, Reply::status("QUEUED"));
    }
    let db = conn.db;
    if conn.tracking.is_some() {
        track_reads(shard, key, spec, &args);
    }
    let shown_to = shard.monitor_out.len();
    if crate::shared::monitoring() {
        if spec.name == "exec" {
            super::observe::monitor_exec(shard, key, spec, &args);
        } else {
            let shown = super::observe::db_after(shard, spec, &args, db);
            shard.monitor_feed(key, spec, shown, &args);
        }
    }
    let start = shard
        .slow_on()
        .then(|| clock.unwrap_or_else(crate::shared::ticks));
    let next = run(shard, key, spec, db, args, start);
    match (start, &next) {
        (Some(t), Next::Continue) => {
            let end = crate::shared::ticks();
            shard.slow_check(key, spec, &args, crate::shared::micros_between(t, end));
            shard.cmd_clock = Some(end);
        }
        (Some(t), Next::Wait) => {
            shard.slow_parked(key, spec, &args, crate::shared::micros_since(t));
        }
        // It runs later: its MONITOR line with it, and its ASKING.
        (_, Next::Retry) => {
            shard.monitor_out.truncate(shown_to);
            if let Some(c) = shard.conns.get_mut(key) {
                c.asking = asking_was;
            }
        }
        _ => {}
    }
    next
}

/// Redis's memory check before a command (`processCommand`): while the
/// process is over `maxmemory` with nothing left to evict, a `denyoom`
/// command gets `-OOM`, and so does anything a transaction would queue
/// (all but EXEC, DISCARD, QUIT and RESET), and EXEC of a transaction
/// holding a `denyoom` command, which is then discarded (`-EXECABORT`).
/// Made on the client's core before the command goes anywhere, so a
/// command whose keys are on several cores is refused whole. The master's
/// stream is never refused.
fn refuse_for_memory(shard: &mut Shard, key: Key, spec: &Spec, args: &Args) -> Option<Next> {
    // (A replica leaves eviction to its master, as Redis's default
    // `replica-ignore-maxmemory yes`.)
    if shard.settings.maxmemory == 0
        || shard
            .shared
            .replica
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return None;
    }
    let conn = shard.conns.get(key)?;
    if conn.master {
        return None;
    }
    let queued_denies = || {
        conn.multi.iter().flatten().any(|q| {
            let q = q.as_args();
            engine::cmd::registry()
                .lookup(q.get(0))
                .is_some_and(|s| s.denies_oom(&q))
        })
    };
    let refuse = spec.denies_oom(args)
        || match spec.name {
            "exec" => queued_denies(),
            "discard" | "quit" | "reset" => false,
            _ => conn.multi.is_some(),
        };
    if !refuse || !shard.memory_full() {
        return None;
    }
    let conn = shard.conns.get_mut(key)?;
    if spec.name == "exec" && conn.multi.is_some() {
        conn.multi = None;
        conn.multi_failed = false;
        let watches = std::mem::take(&mut conn.watches);
        shard.unwatch_all(watches);
        let e = format!(
            "EXECABORT Transaction discarded because of: {}",
            crate::shard::OOM
        );
        return Some(reject(shard, key, spec, Reply::err(e)));
    }
    if conn.multi.is_some() {
        conn.multi_failed = true;
    }
    Some(reject(shard, key, spec, Reply::err(crate::shard::OOM)))
}

/// Runs a command that passed the checks: here, or in a task. `start`:
/// when it began, while the slow log is on (a command that goes to a task
/// is logged when the task is done).
fn run(
    shard: &mut Shard,
    key: Key,
    spec: &'static Spec,
    db: usize,
    args: Args,
    start: Option<u64>,
) -> Next {
    let defer = |shard: &mut Shard, next: Next| {
        if let Some(t) = start {
            let tasked = shard.conns.get(key).is_some_and(|c| c.wait.in_flight());
            if tasked {
                shard.slow_defer(key, spec, &args, t);
            }
        }
        next
    };
    if spec.has(flags::NODE) {
        // (EXEC among them: its transaction may cross cores.)
        if shard.stall_for_earlier(key) {
            return Next::Retry;
        }
        // Counted once it ran (it may go on in a task, which counts its
        // error then: `Shard::task_done`), not when it waits to run
        // again; failed when it answered an error.
        let name = stats_name(shard, key, spec);
        let errors = shard.stats.total_error_replies;
        let clock = shard.stat_clock();
        let next = super::node::run(shard, key, spec, args);
        if !matches!(next, Next::Retry) {
            let every = crate::mesh::STAT_TIMED_EVERY;
            let nsec = clock.map_or(0, |t| every * t.elapsed().as_nanos() as u64);
            shard.count_call(name, nsec);
            shard.stats.total_commands_processed += 1;
        }
        if shard.stats.total_error_replies > errors {
            shard.count_failed(name);
        } else if let Some(c) = shard.conns.get_mut(key) {
            if c.wait.in_flight() {
                c.task_stats = Some(name);
            }
        }
        return defer(shard, next);
    }
    if spec.name == "wait"
        && (shard.replication.stream().active()
            || shard
                .shared
                .replica
                .load(std::sync::atomic::Ordering::Relaxed))
    {
        return super::sync::wait(shard, key, args);
    }
    if matches!(spec.name, "script" | "function") && args.len() == 2 && args.is(1, "kill") {
        // Served even while a script holds this core's lock.
        return answer(shard, key, engine::script::kill(spec.name == "script"));
    }
    if spec.name == "function" && args.len() == 2 && args.is(1, "stats") {
        // Process-wide facts, served even while a script holds this
        // core's lock (as KILL).
        let now = crate::shared::now_ms();
        let r = engine::cmd::run(&mut shard.engine, 0, now, &[b"function", b"stats"]);
        return answer(shard, key, r);
    }
    if spec.name == "memory" && super::memory::is_node(&args) {
        return super::memory::run(shard, key, args);
    }
    let muted = shard.conns.get(key).is_some_and(|c| c.mute);
    let route = match route(spec, &args, shard.cores, &shard.mesh.slots) {
        Ok(r) => r,
        Err(e) => return reject(shard, key, spec, e),
    };
    match route {
        Route::Here => run_here(shard, key, spec, db, args),
        Route::One(c) if c == shard.id => {
            // Affinity: a command for this core ends a run for another.
            shard.note_target(key, c, 1);
            run_here(shard, key, spec, db, args)
        }
        // A reply to drop comes back through a task (the pipeline's
        // replies may be sent by the core that answers it).
        Route::One(c) if !spec.may_block(&args) && !muted => Next::Remote {
            to: c,
            db,
            write: spec.has(flags::WRITE),
        },
        Route::One(_) | Route::Many(_) | Route::All | Route::Everywhere
            if shard.stall_for_earlier(key) =>
        {
            Next::Retry
        }
        Route::One(c) => {
            // Affinity counts blocking commands too (a job queue's
            // consumer may move to its queue's core).
            shard.note_target(key, c, 1);
            let rpc = shard.rpc.clone();
            let owned = args.to_owned();
            spawn(shard, key, async move {
                flows::remote(rpc, c, db, vec![owned], true, key).await
            })
        }
        Route::Many(cores) => {
            let rpc = shard.rpc.clone();
            let owned = args.to_owned();
            let databases = shard.settings.databases;
            let form = form_sink(shard);
            // A write split over the cores could be refused for memory on
            // one and done on another: split only without `maxmemory`.
            let split_writes = shard.settings.maxmemory == 0;
            // A command that may run a joint for others runs to its end.
            let spawn = if flows::joins(spec) {
                spawn_detached
            } else {
                spawn
            };
            let next = spawn(shard, key, async move {
                flows::multi_key(
                    rpc,
                    cores,
                    spec,
                    db,
                    owned,
                    databases,
                    key,
                    form,
                    split_writes,
                )
                .await
            });
            defer(shard, next)
        }
        Route::All => {
            let rpc = shard.rpc.clone();
            let owned = args.to_owned();
            let cores = shard.cores;
            let next = spawn(shard, key, async move {
                flows::fanout(rpc, cores, spec, db, owned, key).await
            });
            defer(shard, next)
        }
        Route::Everywhere => {
            // Runs to its end even if the client leaves, as Redis runs a
            // script to its end.
            let rpc = shard.rpc.clone();
            let owned = args.to_owned();
            let at = (db, shard.settings.databases, shard.scripts_read_only());
            let form = form_sink(shard);
            let bus = shard.bus.clone();
            let next = spawn_detached(shard, key, async move {
                crate::mesh::script::everywhere(rpc, spec, at, owned, key, form, bus).await
            });
            defer(shard, next)
        }
    }
}

/// A replica's refusals of a client's command, as Redis 7.0's
/// `processCommand`: writes under `replica-read-only`, and every command
/// without the `stale` flag while the link is down under
/// `replica-serve-stale-data no`.
const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// `min-replicas-to-write` is met (or off).
fn enough_replicas(shard: &Shard) -> bool {
    let s = &shard.settings;
    s.min_replicas_to_write == 0
        || s.min_replicas_max_lag == 0
        || shard
            .shared
            .good_replicas
            .load(std::sync::atomic::Ordering::Relaxed)
            >= s.min_replicas_to_write
}

/// Whether a command may write (Redis's `is_may_replicate_command`): a
/// write, or EXEC of a transaction holding one.
/// The command (or the transaction EXEC runs) writes or replicates
/// (Redis's `is_may_replicate_command`).
fn may_write(spec: &Spec, args: &Args, conn: &crate::io::Conn) -> bool {
    spec.may_replicate(args)
        || (spec.name == "exec"
            && conn.multi.as_ref().is_some_and(|q| {
                q.iter().any(|a| {
                    let a = a.as_args();
                    engine::cmd::registry()
                        .lookup(a.get(0))
                        .is_some_and(|s| s.may_replicate(&a))
                })
            }))
}

/// CLIENT PAUSE (`pause`: `Shared::client_pause`) holds this command
/// (Redis's `processCommand`: every command with `ALL`, those that write
/// or replicate with `WRITE`; never the master's).
fn client_paused(pause: Option<bool>, spec: &Spec, args: &Args, conn: &crate::io::Conn) -> bool {
    !conn.master && pause.is_some_and(|all| all || may_write(spec, args, conn))
}

fn replica_refusal(shard: &Shard, spec: &Spec) -> Option<&'static str> {
    if spec.has(flags::WRITE) && shard.settings.replica_read_only {
        return Some("READONLY You can't write against a read only replica.");
    }
    if !spec.has(flags::STALE)
        && !shard.settings.replica_serve_stale
        && !shard
            .shared
            .master_link_up
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        );
    }
    None
}

/// Client-side caching, for a tracking client's command: CLIENT CACHING
/// holds for this command only (or the transaction), and the keys of a
/// read are remembered on their cores, before the read runs (Redis's
/// `trackingRememberKeys`, with its OPTIN/OPTOUT rule; EXEC remembers
/// those of the reads it queued).
fn track_reads(shard: &mut Shard, key: Key, spec: &'static Spec, args: &Args) {
    let Some(c) = shard.conns.get_mut(key) else {
        return;
    };
    let in_multi = c.multi.is_some();
    let Some(t) = c.tracking.as_deref_mut() else {
        return;
    };
    let caching = t.caching;
    // Redis's `resetClient`: the flag goes after any command but CLIENT
    // itself, unless in a transaction.
    let ends_multi = matches!(spec.name, "exec" | "discard");
    if (ends_multi || !in_multi) && spec.name != "multi" && spec.name != "client" {
        t.caching = false;
    }
    if t.bcast || (t.optin && !caching) || (t.optout && caching) {
        return;
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut idx = Vec::new();
    let mut collect = |s: &'static Spec, a: &Args| {
        // A script's declared keys are remembered as Redis remembers them
        // once the script runs a read; slotd remembers them before any
        // script runs (it cannot know its reads before they run, and a
        // key remembered after its read could miss a write between the
        // two): a script that only writes registers its keys too.
        let script = matches!(
            s.name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        );
        if !script && (!s.has(flags::READONLY) || s.has(flags::PUBSUB)) {
            return;
        }
        idx.clear();
        if s.key_indices(a, &mut idx).is_ok() {
            keys.extend(idx.iter().map(|&i| a.get(i).to_vec()));
        }
    };
    if spec.name == "exec" {
        if c.multi_failed {
            return;
        }
        for q in c.multi.iter().flatten() {
            let a = q.as_args();
            if let Some(s) = engine::cmd::registry().lookup(a.get(0)) {
                collect(s, &a);
            }
        }
    } else {
        collect(spec, args);
    }
    if !keys.is_empty() {
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        shard.track_keys(key, &refs);
    }
}

fn run_here(shard: &mut Shard, key: Key, spec: &'static Spec, db: usize, args: Args) -> Next {
    if shard.stall_if_locked(key) || shard.stall_if_held(key, db, &args) {
        return Next::Retry;
    }
    if let Some(t) = shard.engine.tracking.as_deref_mut() {
        t.writer = shard.conns.get(key).map_or(0, |c| c.id);
    }
    let out = shard.run_local(spec, db, args, false, Some(Origin::Local(key)));
    if let Some(t) = shard.engine.tracking.as_deref_mut() {
        t.writer = 0;
    }
    shard.serve_ready();
    match out {
        Some(reply) => {
            // (Its error, if any, was counted as it ran.)
            shard.reply_counted(key, &reply);
            // Invalidations this command caused come after its reply.
            shard.track_after(false);
            Next::Continue
        }
        None => {
            if let Some(c) = shard.conns.get_mut(key) {
                c.wait = Wait::Blocked;
            }
            Next::Wait
        }
    }
}

/// Commands whose channels route like keys in cluster mode (sharded
/// pub/sub), and whether the cluster being down refuses them.
fn shard_channels(spec: &Spec) -> bool {
    matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe")
}

/// The slot of `args`'s keys (channels for sharded pub/sub): `Ok(None)`
/// without keys, `Err` CROSSSLOT when they are in several slots.
fn slot_of_keys(spec: &'static Spec, args: &Args) -> Result<Option<u16>, Reply> {
    let mut idx = Vec::new();
    if shard_channels(spec) {
        let last = if spec.name == "spublish" {
            1
        } else {
            args.len() - 1
        };
        idx.extend(1..=last.min(args.len() - 1));
    } else if spec.key_indices(args, &mut idx).is_err() {
        // The command reports its own argument error when it runs.
        return Ok(None);
    }
    let mut slot = None;
    for i in idx {
        let s = engine::slot::slot_of(args.get(i));
        match slot {
            Some(prev) if prev != s => {
                return Err(Reply::err(cluster::slotmap::CROSSSLOT));
            }
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

/// Redis Cluster's redirections for a command (`getNodeByQuery`'s checks
/// that need no data): CROSSSLOT, CLUSTERDOWN, MOVED, and ASKING on an
/// importing slot. EXEC is checked over the commands it queued. Whether
/// the keys exist (ASK and TRYAGAIN during a migration) is checked on the
/// core that owns them, as the command runs (`Shard::run_local`).
fn cluster_check(
    shard: &Shard,
    key: Key,
    spec: &'static Spec,
    args: &Args,
    asking: bool,
) -> Result<(), Reply> {
    let Some(map) = shard.cluster.as_deref() else {
        return Ok(());
    };
    // The replication stream from this node's master is never redirected.
    let conn = shard.conns.get(key);
    if conn.is_some_and(|c| c.master) {
        return Ok(());
    }
    let readonly = conn.is_some_and(|c| c.readonly);
    let mut write = spec.has(flags::WRITE);
    let mut slot = slot_of_keys(spec, args)?;
    if spec.name == "exec" {
        let queued = shard.conns.get(key).and_then(|c| c.multi.as_ref());
        for cmd in queued.into_iter().flatten() {
            let a = cmd.as_args();
            let Some(s) = engine::cmd::registry().lookup(a.get(0)) else {
                continue;
            };
            write |= s.has(flags::WRITE);
            if let Some(k) = slot_of_keys(s, &a)? {
                if slot.is_some_and(|prev| prev != k) {
                    return Err(Reply::err(cluster::slotmap::CROSSSLOT));
                }
                slot = Some(k);
            }
        }
    }
    let Some(slot) = slot else {
        return Ok(());
    };
    let when_down = if shard_channels(spec) {
        write = false;
        shard.settings.cluster_pubsubshard_when_down
    } else {
        shard.settings.cluster_reads_when_down
    };
    // A replica serves its master's shard channels as it serves reads
    // after READONLY (Redis's `is_pubsubshard`).
    let readonly = readonly || shard_channels(spec);
    match map.route(slot, write, asking, readonly, when_down) {
        cluster::slotmap::Verdict::Serve => Ok(()),
        cluster::slotmap::Verdict::Refuse(e) => Err(Reply::Error(e.into())),
    }
}

/// Where a pipelined command may join a pipeline that is crossing cores,
/// without running any check with side effects: `Some((core, write))` only
/// for a plain, known, well-formed, non-blocking command whose keys all
/// live on one core (this one included) and a connection that is
/// authenticated, not in MULTI and not in RESP2 subscribed mode. Anything
/// else (keyless, multi-key, blocking, node commands) is a barrier: it ends
/// the pipeline and runs normally once the pipeline's replies are in.
pub fn plan_target(shard: &Shard, key: Key, args: &Args) -> Option<(usize, bool)> {
    let conn = shard.conns.get(key)?;
    let spec = engine::cmd::registry().lookup(args.get(0))?;
    // A tracking client's reads are remembered as each is dispatched.
    let plain = conn.authed
        && conn.tracking.is_none()
        && !conn.reply_off
        && !conn.skip_next
        && !conn.asking
        && conn.multi.is_none()
        && (conn.sub_count() == 0 || conn.resp3)
        && spec.check_arity(args.len()).is_ok()
        && !spec.has(flags::NODE | flags::ALL_SHARDS)
        && !spec.may_block(args);
    if !plain {
        return None;
    }
    if shard.cluster.is_some() && cluster_check(shard, key, spec, args, false).is_err() {
        return None;
    }
    if !conn.master
        && shard
            .shared
            .replica
            .load(std::sync::atomic::Ordering::Relaxed)
        && replica_refusal(shard, spec).is_some()
    {
        return None;
    }
    if spec.has(flags::WRITE) && (shard.writes_paused || !enough_replicas(shard)) {
        return None;
    }
    if shard.shared.client_pause().is_some() || shard.shared.respread.load(Ordering::Acquire) {
        return None;
    }
    // Every command a MONITOR sees passes `command`.
    if crate::shared::monitoring() {
        return None;
    }
    match route(spec, args, shard.cores, &shard.mesh.slots) {
        Ok(Route::One(c)) => Some((c, spec.has(flags::WRITE))),
        _ => None,
    }
}

/// Starts a task for connection `key` and parks the connection on it.
pub fn spawn(
    shard: &mut Shard,
    key: Key,
    fut: impl std::future::Future<Output = TaskDone> + 'static,
) -> Next {
    let client = shard.conns.get(key).map_or(0, |c| c.id);
    shard.publish_recorded();
    let t = shard.exec.spawn_for(client, fut);
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::Task(t);
    }
    Next::Wait
}

/// Sends chained pipeline `p` of connection `key` (see
/// [`flows::Chain`]) and parks the connection until its answer.
pub fn send_chain(
    shard: &mut Shard,
    key: Key,
    (db, resp3): (usize, bool),
    p: flows::PipelineIn,
    to: flows::PipelineTo,
) {
    shard.publish_recorded();
    let (core, req, chain) = flows::Chain::start(db, resp3, p, to);
    let h = send_for_chain(shard, key, core, req, chain);
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::Chain(h);
    }
}

/// Enters `chain` in the core's table of chains in flight and sends
/// `req`, whose answer names it, to `core` for connection `key`'s client.
fn send_for_chain(
    shard: &mut Shard,
    key: Key,
    core: usize,
    req: crate::mesh::Request,
    chain: flows::Chain,
) -> Key {
    let client = shard.conns.get(key).map_or(0, |c| c.id);
    let h = shard.chains.insert(chain);
    let from = shard.id;
    shard.mesh.send(
        core,
        crate::mesh::Msg::Req {
            from,
            id: flows::chain_id(h),
            client,
            req,
        },
    );
    h
}

/// Whether read pipeline `p` may run as a fan-out without a task
/// ([`fan_out`]): it is for this core and one other, and this core's state
/// allows it (no AOF, whose replies wait for what they reveal, and no
/// transaction holding this core).
pub fn may_fan_out(shard: &mut Shard, db: usize, p: &flows::PipelineIn) -> bool {
    shard.aof.is_none()
        && !shard.locked()
        && flows::fans_out(p, shard.id)
        && !shard.pipeline_held(db, p)
}

/// Runs write pipeline `p` of connection `key` over this core and one
/// other without a task, when this core's state allows it (no AOF or
/// one whose parts may be logged, [`Shard::aof_may_reserve`], no
/// replicas, no keyspace events, which go out as each core runs its part,
/// no transaction holding it, nothing waiting, writers not paused) and
/// its keys here could be reserved ([`Shard::reserve`]): the
/// other core gets its segments and runs them at once, this core runs
/// its own once that answer is in ([`flows::Chain::reserved`]). Gives the
/// pipeline back when it cannot.
pub fn fan_out_writes(
    shard: &mut Shard,
    key: Key,
    (db, resp3): (usize, bool),
    p: flows::PipelineIn,
    to: flows::PipelineTo,
) -> Option<(flows::PipelineIn, flows::PipelineTo)> {
    let may = p.writes
        && (shard.aof.is_none() || shard.aof_may_reserve())
        && !shard.locked()
        && !shard.writes_paused
        && !shard.waiting()
        && !shard.replication.stream().active()
        && shard.engine.notify_flags == 0
        && flows::over_two(&p, shard.id)
        && p.segs.iter().any(|s| s.core == shard.id);
    let holds = match may {
        true => shard.reserve(db, &p),
        false => None,
    };
    let Some(holds) = holds else {
        return Some((p, to));
    };
    let part = shard.aof_part();
    let (core, req, chain) = flows::Chain::reserved(db, resp3, p, to, shard.id, (holds, part));
    let h = send_for_chain(shard, key, core, req, chain);
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::Chain(h);
    }
    None
}

/// Runs read pipeline `p` of connection `key` ([`may_fan_out`]) without a
/// task: sends the other core its segments, runs this core's at once, and
/// parks the connection until the answer ([`flows::Chain::fan_out`]).
pub fn fan_out(
    shard: &mut Shard,
    key: Key,
    (db, resp3): (usize, bool),
    p: flows::PipelineIn,
    to: flows::PipelineTo,
) {
    let (core, req, chain) = flows::Chain::fan_out(db, resp3, &p, to, shard.id);
    let h = send_for_chain(shard, key, core, req, chain);
    let (out, ends) = shard.run_here(key, (db, resp3), &p);
    if let Some(chain) = shard.chains.get_mut(h) {
        chain.ran_here(out, ends);
    }
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::Chain(h);
    }
}

/// Starts a task for connection `key` that runs to its end even if the
/// client goes away, and parks the connection on it.
pub fn spawn_detached(
    shard: &mut Shard,
    key: Key,
    fut: impl std::future::Future<Output = TaskDone> + 'static,
) -> Next {
    let client = shard.conns.get(key).map_or(0, |c| c.id);
    shard.publish_recorded();
    shard.exec.spawn_for(client, fut);
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::Detached;
    }
    Next::Wait
}

/// Commands Redis 7.0 serves while it loads its files (the `LOADING`
/// flag of its command table), by the names slotd's table gives them.
const ALLOWED_WHILE_LOADING: &[&str] = &[
    "auth",
    "client",
    "command",
    "config",
    "debug",
    "discard",
    "echo",
    "exec",
    "hello",
    "info",
    "lastsave",
    "latency",
    "memory",
    "module",
    "monitor",
    "multi",
    "psubscribe",
    "publish",
    "pubsub",
    "punsubscribe",
    "quit",
    "readonly",
    "readwrite",
    "reset",
    "role",
    "select",
    "shutdown",
    "slowlog",
    "spublish",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "time",
    "unsubscribe",
    "unwatch",
    "watch",
];

/// Redis's `-MISCONF` error, for writes while the last background save
/// failed (`stop-writes-on-bgsave-error`).
const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Whether writes are refused after a failed save: save rules exist and
/// `stop-writes-on-bgsave-error` is on (read only once a save failed).
fn refuse_writes(shared: &crate::shared::Shared) -> bool {
    shared.config.lock().is_ok_and(|c| {
        c.flag("stop-writes-on-bgsave-error")
            && !crate::persist::Rules::parse(&c.text("save").unwrap_or_default())
                .0
                .is_empty()
    })
}

/// Where a transaction across cores puts its form in the replication
/// stream, while replicas take it (`flows::FormSink`).
pub fn form_sink(shard: &Shard) -> Option<flows::FormSink> {
    // (Not for the master client's: `Shard::for_client`.)
    (shard.replication.stream().active() && !shard.unstreamed).then(|| {
        let repl = shard.replication.clone();
        Box::new(move |bytes, part| repl.stream().push(bytes, Some(part))) as flows::FormSink
    })
}

#[cfg(test)]
mod tests {
    use super::debug_allowed;

    #[test]
    fn debug_is_allowed_as_configured() {
        assert!(debug_allowed("yes", "10.0.0.1:5000"));
        assert!(!debug_allowed("no", "127.0.0.1:5000"));
        assert!(debug_allowed("local", "127.0.0.1:5000"));
        assert!(debug_allowed("local", "::1:5000"));
        assert!(!debug_allowed("local", "127.0.0.2:5000"));
        assert!(!debug_allowed("local", "10.0.0.1:5000"));
    }
}
