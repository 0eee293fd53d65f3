//! Running one command for a connection: checks (auth, arity, pub/sub
//! context, MULTI queueing), then routing by the command table's key spec:
//! keys all on this core run inline (the fast path); otherwise a task
//! carries the command to the cores that own its keys.

use crate::conn::Wait;
use crate::core::{Core, Origin};
use crate::flows;
use crate::slab::Key;
use bytes::Bytes;
use engine::cmd::{flags, Spec};
use engine::{error, Args, Reply};

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
    /// ([`plan_target`]), as one [`crate::mesh::Request::Pipeline`].
    Remote { to: usize, db: usize, write: bool },
}

/// Where a command's keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No keys: run on the connection's core.
    Here,
    /// Every key on this core.
    One(usize),
    /// Keys on several cores (sorted, deduplicated).
    Many(Vec<usize>),
    /// A fan-out command.
    All,
}

/// Works out which cores `args` touches. `cores` is the number of shard
/// cores; `me` is the asking core.
pub fn route(spec: &Spec, args: &Args, cores: usize) -> Result<Route, Reply> {
    if spec.has(flags::ALL_SHARDS) {
        return Ok(Route::All);
    }
    // The common case, one key at position 1, without allocating (nor
    // hashing, when there is one core).
    if spec.keys.is_none() && spec.first_key == 1 && spec.last_key == 1 {
        if cores == 1 {
            return Ok(Route::One(0));
        }
        let slot = engine::slot::slot_of(args.get(1));
        return Ok(Route::One(engine::slot::core_of(slot, cores)));
    }
    if spec.name == "scan" {
        return Ok(
            match std::str::from_utf8(args.get(1))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(c) if c < engine::slot::SLOTS as u64 => {
                    Route::One(engine::slot::core_of(c as u16, cores))
                }
                _ => Route::Here,
            },
        );
    }
    let mut idx = Vec::new();
    spec.key_indices(args, &mut idx)?;
    let mut list: Vec<usize> = idx
        .iter()
        .map(|&i| engine::slot::core_of(engine::slot::slot_of(args.get(i)), cores))
        .collect();
    list.sort_unstable();
    list.dedup();
    Ok(match list.len() {
        0 => Route::Here,
        1 => Route::One(list[0]),
        _ => Route::Many(list),
    })
}

/// Parses a SELECT-style database index.
pub fn parse_db(raw: &[u8], databases: usize) -> Result<usize, Reply> {
    match engine::resp::parse_i64(raw) {
        Some(n) if n >= 0 && (n as usize) < databases => Ok(n as usize),
        Some(_) => Err(Reply::err("ERR DB index is out of range")),
        None => Err(Reply::err(error::NOT_INT)),
    }
}

/// Drops every WATCH in `watches` (fire and forget).
pub fn unwatch_all(core: &mut Core, watches: Vec<(usize, usize, Bytes, u64)>) {
    for (c, db, key, _) in watches {
        if c == core.id {
            core.engine.unwatch(db, &key);
        } else {
            core.rpc.tell(
                c,
                crate::mesh::Request::Unwatch {
                    db,
                    keys: vec![key],
                },
            );
        }
    }
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

/// Queues `reply` for `key`.
fn answer(core: &mut Core, key: Key, reply: Reply) -> Next {
    core.reply(key, &reply);
    Next::Continue
}

/// Runs one parsed command for connection `key`.
pub fn command(core: &mut Core, key: Key, args: Args) -> Next {
    let Some(conn) = core.conns.get_mut(key) else {
        return Next::Wait;
    };
    let name = args.get(0);
    let last = conn
        .last_cmd
        .filter(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name));
    let Some(spec) = last.or_else(|| engine::cmd::registry().lookup(name)) else {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        let e = engine::cmd::unbuilt::error_for(name)
            .unwrap_or_else(|| error::unknown_command(name, args.iter_from(1)));
        return answer(core, key, Reply::Error(e.into()));
    };
    conn.last_cmd = Some(spec);
    if !conn.authed && !spec.has(flags::NO_AUTH) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return answer(core, key, Reply::err("NOAUTH Authentication required."));
    }
    if let Err(e) = spec.check_arity(args.len()) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return answer(core, key, e);
    }
    if spec.name == "debug" && !debug_allowed(core.settings.debug_command, &conn.addr) {
        if conn.multi.is_some() {
            conn.multi_failed = true;
        }
        return answer(core, key, Reply::err(DEBUG_NOT_ALLOWED));
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
        return answer(core, key, Reply::Error(e.into()));
    }
    if conn.multi.is_some()
        && !matches!(
            spec.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        if spec.has(flags::NO_MULTI) {
            conn.multi_failed = true;
            return answer(
                core,
                key,
                Reply::err("ERR Command not allowed inside a transaction"),
            );
        }
        if let Err(e) = route(spec, &args, core.cores) {
            conn.multi_failed = true;
            return answer(core, key, e);
        }
        if let Some(q) = conn.multi.as_mut() {
            q.push(args.to_owned());
        }
        return answer(core, key, Reply::status("QUEUED"));
    }
    if spec.has(flags::NODE) {
        return crate::nodecmd::run(core, key, spec, args);
    }
    let db = conn.db;
    let route = match route(spec, &args, core.cores) {
        Ok(r) => r,
        Err(e) => return answer(core, key, e),
    };
    match route {
        Route::Here => run_here(core, key, spec, db, args),
        Route::One(c) if c == core.id => run_here(core, key, spec, db, args),
        Route::One(c) if !spec.has(flags::BLOCKING) => Next::Remote {
            to: c,
            db,
            write: spec.has(flags::WRITE),
        },
        Route::One(c) => {
            let rpc = core.rpc.clone();
            let owned = args.to_owned();
            spawn(core, key, async move {
                flows::remote(rpc, c, db, vec![owned], true, key).await
            })
        }
        Route::Many(cores) => {
            let rpc = core.rpc.clone();
            let owned = args.to_owned();
            let databases = core.settings.databases;
            spawn(core, key, async move {
                flows::multi_key(rpc, cores, spec, db, owned, databases, key).await
            })
        }
        Route::All => {
            let rpc = core.rpc.clone();
            let owned = args.to_owned();
            let cores = core.cores;
            spawn(core, key, async move {
                flows::fanout(rpc, cores, spec, db, owned, key).await
            })
        }
    }
}

fn run_here(core: &mut Core, key: Key, spec: &'static Spec, db: usize, args: Args) -> Next {
    if core.lock.is_some() {
        if let Some(c) = core.conns.get_mut(key) {
            c.wait = Wait::Stalled;
        }
        core.stalled.push(key);
        return Next::Retry;
    }
    let out = core.run_local(spec, db, args, false, Some(Origin::Local(key)));
    core.serve_ready();
    match out {
        Some(reply) => {
            core.reply(key, &reply);
            Next::Continue
        }
        None => {
            if let Some(c) = core.conns.get_mut(key) {
                c.wait = Wait::Blocked;
            }
            Next::Wait
        }
    }
}

/// Where a pipelined command may join a pipeline that is crossing cores,
/// without running any check with side effects: `Some((core, write))` only
/// for a plain, known, well-formed, non-blocking command whose keys all
/// live on one core (this one included) and a connection that is
/// authenticated, not in MULTI and not in RESP2 subscribed mode. Anything
/// else (keyless, multi-key, blocking, node commands) is a barrier: it ends
/// the pipeline and runs normally once the pipeline's replies are in.
pub fn plan_target(core: &Core, key: Key, args: &Args) -> Option<(usize, bool)> {
    let conn = core.conns.get(key)?;
    let spec = engine::cmd::registry().lookup(args.get(0))?;
    let plain = conn.authed
        && conn.multi.is_none()
        && (conn.sub_count() == 0 || conn.resp3)
        && spec.check_arity(args.len()).is_ok()
        && !spec.has(flags::NODE | flags::ALL_SHARDS | flags::BLOCKING);
    if !plain {
        return None;
    }
    match route(spec, args, core.cores) {
        Ok(Route::One(c)) => Some((c, spec.has(flags::WRITE))),
        _ => None,
    }
}

/// Starts a task for connection `key` and parks the connection on it.
pub fn spawn(
    core: &mut Core,
    key: Key,
    fut: impl std::future::Future<Output = crate::core::TaskDone> + 'static,
) -> Next {
    let t = core.exec.spawn(fut);
    if let Some(c) = core.conns.get_mut(key) {
        c.wait = Wait::Task(t);
    }
    Next::Wait
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
