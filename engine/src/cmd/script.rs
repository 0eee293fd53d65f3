//! Scripting: EVAL, EVALSHA, their `_RO` forms and SCRIPT, run on the
//! shard that owns the script's declared keys ([`crate::script`]).
//!
//! A script runs here when every key it declared lives on this shard and
//! its earlier runs touched nothing elsewhere ([`store::Placement`]); the
//! node sends the others to a run with every core locked. If a script run
//! here reaches for a key another core owns, that command fails with an
//! error (the script may catch it with `redis.pcall`) and the script's
//! later runs go to every core.

use super::{flags::*, Ctx, Spec};
use crate::args::Args;
use crate::reply::Reply;
use crate::script::{self, store, Backend, Call, Vm};
use crate::shard::Shard;
use crate::{error, slot};
use std::cell::RefCell;

pub static COMMANDS: &[Spec] = &[
    Spec::new("eval", -3, NOSCRIPT | STALE | SELF_LOGGED, (0, 0, 0), eval).movable(eval_keys),
    Spec::new("evalsha", -3, NOSCRIPT | STALE, (0, 0, 0), evalsha).movable(eval_keys),
    Spec::new(
        "eval_ro",
        -3,
        NOSCRIPT | STALE | READONLY | SELF_LOGGED,
        (0, 0, 0),
        eval_ro,
    )
    .movable(eval_keys),
    Spec::new(
        "evalsha_ro",
        -3,
        NOSCRIPT | STALE | READONLY | SELF_LOGGED,
        (0, 0, 0),
        evalsha_ro,
    )
    .movable(eval_keys),
    Spec::new("script", -2, NOSCRIPT, (0, 0, 0), script_cmd).subcommands(),
    Spec::new(
        "fcall",
        -3,
        NOSCRIPT | STALE | SELF_LOGGED,
        (0, 0, 0),
        fcall,
    )
    .movable(eval_keys),
    Spec::new(
        "fcall_ro",
        -3,
        NOSCRIPT | STALE | READONLY | SELF_LOGGED,
        (0, 0, 0),
        fcall_ro,
    )
    .movable(eval_keys),
    Spec::new("function", -2, NOSCRIPT, (0, 0, 0), function_cmd).subcommands(),
];

/// Runs an EVAL-family or FCALL-family command (`name`, lowercase) with
/// `args` on `backend`.
pub fn run_call(
    name: &str,
    args: &Args,
    db: usize,
    databases: usize,
    backend: &mut dyn Backend,
) -> Reply {
    let ro = name.ends_with("_ro");
    if name.starts_with("fcall") {
        return with_vm(|vm| vm.fcall(args, (db, databases, ro), backend).reply)
            .unwrap_or_else(|e| e);
    }
    run_eval(
        args,
        name.starts_with("evalsha"),
        (db, databases, ro),
        backend,
    )
}

/// Loads a library from a file (RDB, AOF preamble), replacing one of the
/// same name.
pub fn load_library(code: &[u8]) -> Result<String, String> {
    with_vm(|vm| vm.load_library(code, true)).unwrap_or_else(|e| Err(format!("{e:?}")))
}

/// Where a script or function call may run ([`store::Placement`]).
pub fn placement(name: &str, args: &Args) -> store::Placement {
    match name {
        "fcall" | "fcall_ro" => script::functions::placement(args.get(1)),
        _ => match sha_of(name, args) {
            Some(sha) => store::placement(&sha),
            None => store::Placement::Everywhere,
        },
    }
}

/// Records where a script or function call's run went.
pub fn set_placement(name: &str, args: &Args, p: store::Placement) {
    match name {
        "fcall" | "fcall_ro" => script::functions::set_placement(args.get(1), p),
        _ => {
            if let Some(sha) = sha_of(name, args) {
                store::set_placement(&sha, p);
            }
        }
    }
}

/// The SHA1 an EVAL-family call names (None: EVALSHA of a malformed name).
pub fn sha_of(name: &str, args: &Args) -> Option<[u8; 40]> {
    if name.starts_with("evalsha") {
        let mut sha = <[u8; 40]>::try_from(args.get(1)).ok()?;
        sha.make_ascii_lowercase();
        Some(sha)
    } else {
        Some(script::sha1_hex(args.get(1)))
    }
}

/// True for the commands that run scripts or functions.
pub fn is_script(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// The declared keys: `numkeys` at 2, the keys after it. A bad count gives
/// no keys here and its error when the command runs, as Redis does.
pub fn eval_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    Ok(key_range(args).collect())
}

/// Where an EVAL-family or FCALL call's keys are among its arguments
/// (none when its key count is not valid).
pub fn key_range(args: &Args) -> std::ops::Range<usize> {
    match numkeys(args) {
        Ok(n) => 3..3 + n,
        Err(_) => 0..0,
    }
}

fn numkeys(args: &Args) -> Result<usize, Reply> {
    let n = args.int(2)?;
    if n > args.len() as i64 - 3 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    Ok(n as usize)
}

thread_local! {
    /// This thread's Lua state, made at its first script.
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's Lua state.
pub fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> Result<R, Reply> {
    VM.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| Reply::err("ERR a script is already running on this thread"))?;
        if slot.is_none() {
            *slot = Some(Vm::new().map_err(|e| {
                Reply::Error(format!("ERR cannot start the Lua interpreter: {e}").into())
            })?);
        }
        Ok(f(slot.as_mut().expect("made above")))
    })
}

/// Runs EVAL / EVALSHA (`by_sha`) or their `_RO` forms (`ro`) on
/// `backend`, at database `db`.
fn run_eval(
    args: &Args,
    by_sha: bool,
    (db, databases, ro): (usize, usize, bool),
    backend: &mut dyn Backend,
) -> Reply {
    let n = match numkeys(args) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let first = args.get(1);
    let (sha, body) = if by_sha {
        let Ok(mut sha) = <[u8; 40]>::try_from(first) else {
            return Reply::err("NOSCRIPT No matching script. Please use EVAL.");
        };
        sha.make_ascii_lowercase();
        (sha, None)
    } else {
        (script::sha1_hex(first), Some(first))
    };
    let mut stack = script::CallArgs::default();
    let (keys, argv) = stack.split(args, n);
    let call = Call {
        sha,
        body,
        keys,
        argv,
        db,
        databases,
        read_only: ro,
    };
    with_vm(|vm| vm.run(&call, backend).reply).unwrap_or_else(|e| e)
}

fn eval(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "eval")
}

fn evalsha(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "evalsha")
}

fn eval_ro(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "eval_ro")
}

fn evalsha_ro(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "evalsha_ro")
}

fn fcall(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "fcall")
}

fn fcall_ro(ctx: &mut Ctx) -> Reply {
    run_here(ctx, "fcall_ro")
}

/// Runs the script on this shard, its effects wrapped as one MULTI/EXEC
/// in the write log when they are more than one command (Redis 7.0's
/// `propagatePendingCommands`).
fn run_here(ctx: &mut Ctx, name: &str) -> Reply {
    let args = ctx.args;
    let databases = ctx.shard.dbs.len();
    let mark = ctx
        .shard
        .write_log()
        .filter(|l| !l.in_block())
        .map(|l| l.begin_multi(None));
    let mut backend = ShardBackend {
        shard: ctx.shard,
        now_ms: ctx.now_ms,
        off_core: false,
        counted: false,
    };
    let reply = run_call(name, &args, ctx.db, databases, &mut backend);
    if backend.off_core {
        set_placement(name, &args, store::Placement::Everywhere);
    }
    if let (Some(m), Some(log)) = (mark, ctx.shard.write_log()) {
        log.end_multi(m, true);
    }
    reply
}

/// Set once a script run on one core called PUBLISH: from then on, scripts
/// are placed by their runs even with a single core (see
/// [`node_calls_seen`]).
static NODE_CALLS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether some script has called PUBLISH or SPUBLISH from a run on one
/// core: with a single core the node then routes scripts by their
/// placement too, so those that publish run with the core locked, where
/// the node delivers to subscribers.
pub fn node_calls_seen() -> bool {
    NODE_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A script's commands on one shard.
pub struct ShardBackend<'a> {
    pub shard: &'a mut Shard,
    pub now_ms: i64,
    /// A command reached for a key this shard does not own.
    pub off_core: bool,
    /// The last command's error was noted for INFO
    /// ([`Shard::script_counts`]).
    pub counted: bool,
}

impl Backend for ShardBackend<'_> {
    fn write_refusal(&self) -> Option<&'static str> {
        self.shard
            .scripts_read_only
            .then_some(script::READONLY_REPLICA)
    }

    fn key_refusal(&self, spec: &'static Spec, args: &Args) -> Option<&'static str> {
        self.shard.script_route.as_ref().and_then(|f| f(spec, args))
    }

    fn call(&mut self, spec: &'static Spec, db: usize, args: &Args, propagate: bool) -> Reply {
        self.counted = false;
        if let Some(owns) = &self.shard.owns {
            let away = if spec.has(ALL_SHARDS)
                || (spec.name.starts_with("sort") && super::sort::uses_patterns(args))
            {
                true
            } else if spec.keys.is_none() && spec.first_key == 1 && spec.last_key == 1 {
                // The common case, one key at 1, without allocating.
                args.len() > 1 && !owns(slot::slot_of(args.get(1)))
            } else {
                let mut idx = Vec::new();
                if let Err(e) = spec.key_indices(args, &mut idx) {
                    return e;
                }
                idx.iter()
                    .any(|&i| i < args.len() && !owns(slot::slot_of(args.get(i))))
            };
            if away {
                self.off_core = true;
                return Reply::err(OFF_CORE);
            }
        }
        if spec.handler.is_none() {
            return match spec.name {
                "publish" | "spublish" => {
                    // Other cores' subscribers are out of reach here: the
                    // script runs with every core locked from its next run.
                    self.off_core = true;
                    NODE_CALLS.store(true, std::sync::atomic::Ordering::Relaxed);
                    Reply::Error(
                        format!(
                            "ERR {} from a script that runs on one core is not supported by slotd; slotd runs this script with every core locked from its next call",
                            spec.name.to_ascii_uppercase()
                        )
                        .into(),
                    )
                }
                "time" => {
                    // The clock as it is (keys expire by the script's
                    // start time, but TIME moves, as in Redis).
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    Reply::Array(vec![
                        Reply::bulk_int(now.as_secs() as i64),
                        Reply::bulk_int(now.subsec_micros() as i64),
                    ])
                }
                _ => not_in_scripts(spec),
            };
        }
        if let Some(calls) = &mut self.shard.script_calls {
            calls.push((db, args.to_owned()));
        }
        let log = (!propagate).then(|| self.shard.pause_log()).flatten();
        let start =
            (self.shard.script_counting && self.shard.script_timing).then(std::time::Instant::now);
        let mut c = Ctx::new(self.shard, db, self.now_ms, *args);
        c.in_multi = true;
        let reply = super::execute(spec, &mut c);
        if let Some(log) = log {
            self.shard.resume_log(log);
        }
        if self.shard.script_counting {
            let error = match &reply {
                Reply::Error(e) => Some(e.clone()),
                _ => None,
            };
            self.counted = error.is_some();
            self.shard.script_counts.push(crate::shard::ScriptCount {
                name: super::meta::stats_name(spec, args),
                nanos: start.map_or(0, |t| t.elapsed().as_nanos() as u64),
                error,
            });
        }
        reply
    }

    fn error_counted(&self) -> bool {
        self.counted
    }
}

/// The answer to a command the node serves (no handler) that scripts
/// cannot run yet.
pub fn not_in_scripts(spec: &Spec) -> Reply {
    Reply::Error(
        format!(
            "ERR {} is not supported by slotd inside scripts yet",
            spec.name.to_ascii_uppercase()
        )
        .into(),
    )
}

/// What a script run on one core gets for a key another core owns.
pub const OFF_CORE: &str = "ERR Script attempted to access a key of another core without declaring it in KEYS; slotd runs this script with every core locked from its next call";

/// SCRIPT's subcommands.
fn script_cmd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = args.get(1).to_ascii_lowercase();
    let arity: i32 = match sub.as_slice() {
        b"help" | b"kill" => 2,
        b"load" | b"debug" => 3,
        b"exists" => -3,
        b"flush" => -2,
        _ => return Reply::Error(error::unknown_subcommand(args.get(1), "SCRIPT").into()),
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        let name = format!("script|{}", String::from_utf8_lossy(&sub));
        return Reply::Error(error::wrong_arity(&name).into());
    }
    match (sub.as_slice(), args.len()) {
        (b"help", 2) => Reply::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        ),
        (b"flush", 2) => {
            store::flush();
            Reply::Ok
        }
        (b"flush", 3) if args.is(2, "sync") || args.is(2, "async") => {
            store::flush();
            Reply::Ok
        }
        (b"flush", _) => Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
        (b"exists", n) if n >= 3 => Reply::Array(
            args.iter_from(2)
                .map(|s| Reply::Int(store::exists(s) as i64))
                .collect(),
        ),
        (b"load", 3) => match with_vm(|vm| vm.load(args.get(2))) {
            Ok(Ok(sha)) => Reply::bulk(&sha),
            Ok(Err(e)) | Err(e) => e,
        },
        (b"kill", 2) => script::kill(true),
        // Debugging off is what every script gets; the Lua debugger itself
        // (YES, SYNC) is not built.
        (b"debug", 3) if args.is(2, "no") => Reply::Ok,
        (b"debug", 3) if args.is(2, "yes") || args.is(2, "sync") => Reply::err("ERR SCRIPT DEBUG YES and SYNC are not supported by slotd: its Lua debugger needs the server to stop for one client"),
        (b"debug", 3) => Reply::err("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
        _ => Reply::Error(error::subcommand_syntax(args.get(1), "SCRIPT").into()),
    }
}

/// FUNCTION's subcommands.
fn function_cmd(ctx: &mut Ctx) -> Reply {
    use script::functions;
    let args = ctx.args;
    let sub = args.get(1).to_ascii_lowercase();
    let arity: i32 = match sub.as_slice() {
        b"help" | b"dump" | b"kill" | b"stats" => 2,
        b"delete" => 3,
        b"load" | b"restore" => -3,
        b"flush" | b"list" => -2,
        _ => return Reply::Error(error::unknown_subcommand(args.get(1), "FUNCTION").into()),
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        let name = format!("function|{}", String::from_utf8_lossy(&sub));
        return Reply::Error(error::wrong_arity(&name).into());
    }
    let changed = |ctx: &mut Ctx, reply: Reply| {
        // Propagated as sent, as Redis does (`server.dirty++`).
        ctx.dirty(1);
        reply
    };
    match sub.as_slice() {
        b"help" => Reply::Array(FUNCTION_HELP.iter().map(|s| Reply::status(*s)).collect()),
        b"load" => {
            let mut replace = false;
            let mut i = 2;
            while i < args.len() - 1 {
                if args.is(i, "replace") {
                    replace = true;
                    i += 1;
                    continue;
                }
                return Reply::Error(
                    format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(args.get(i))
                    )
                    .into(),
                );
            }
            match with_vm(|vm| vm.load_library(args.get(args.len() - 1), replace)) {
                Ok(Ok(name)) => changed(ctx, Reply::bulk(name.as_bytes())),
                Ok(Err(e)) => Reply::Error(format!("ERR {e}").into()),
                Err(e) => e,
            }
        }
        b"delete" => {
            if functions::delete(&String::from_utf8_lossy(args.get(2))) {
                changed(ctx, Reply::Ok)
            } else {
                Reply::err("ERR Library not found")
            }
        }
        b"flush" => {
            if args.len() > 3 {
                return Reply::Error(error::subcommand_syntax(args.get(1), "function").into());
            }
            if args.len() == 3 && !args.is(2, "sync") && !args.is(2, "async") {
                return Reply::err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
            }
            functions::flush();
            changed(ctx, Reply::Ok)
        }
        b"list" => {
            let (mut with_code, mut pattern) = (false, None);
            let mut i = 2;
            while i < args.len() {
                if !with_code && args.is(i, "withcode") {
                    with_code = true;
                } else if pattern.is_none() && args.is(i, "libraryname") {
                    if i + 1 >= args.len() {
                        return Reply::err("ERR library name argument was not given");
                    }
                    i += 1;
                    pattern = Some(args.get(i));
                } else {
                    return Reply::Error(
                        format!(
                            "ERR Unknown argument {}",
                            String::from_utf8_lossy(args.get(i))
                        )
                        .into(),
                    );
                }
                i += 1;
            }
            functions::list_reply(pattern, with_code)
        }
        b"dump" => Reply::Bulk(functions::dump().into()),
        b"restore" => {
            let policy = if args.len() == 4 {
                args.get(3).to_ascii_lowercase()
            } else if args.len() > 4 {
                return Reply::Error(error::wrong_arity("function|restore").into());
            } else {
                b"append".to_vec()
            };
            if !matches!(policy.as_slice(), b"flush" | b"append" | b"replace") {
                return Reply::err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
            }
            let codes = match functions::parse_dump(args.get(2)) {
                Ok(c) => c,
                Err(e) => return Reply::Error(format!("ERR {e}").into()),
            };
            let before = functions::libraries();
            if policy == b"flush" {
                functions::flush();
            }
            let replace = policy != b"append";
            if !replace {
                // (Redis's `libraryJoin` names a library that is there
                // already without quotes, unlike FUNCTION LOAD.)
                let taken = codes
                    .iter()
                    .filter_map(|code| functions::library_name(code))
                    .find(|name| before.contains_key(name));
                if let Some(name) = taken {
                    return Reply::Error(format!("ERR Library {name} already exists").into());
                }
            }
            let r = with_vm(|vm| {
                for code in &codes {
                    vm.load_library(code, replace)?;
                }
                Ok::<(), String>(())
            });
            match r {
                Ok(Ok(())) => changed(ctx, Reply::Ok),
                Ok(Err(e)) => {
                    // All or nothing: the libraries as they were.
                    functions::flush();
                    let _ = with_vm(|vm| {
                        for lib in before.values() {
                            let _ = vm.load_library(&lib.code, true);
                        }
                    });
                    Reply::Error(format!("ERR {e}").into())
                }
                Err(e) => e,
            }
        }
        b"stats" => {
            let running = match script::running_function() {
                Err(busy) => return Reply::err(busy),
                Ok(None) => Reply::Nil,
                Ok(Some((name, command, ms))) => Reply::Map(vec![
                    (Reply::bulk(b"name"), Reply::bulk(&name)),
                    (
                        Reply::bulk(b"command"),
                        Reply::Array(command.iter().map(|a| Reply::bulk(a)).collect()),
                    ),
                    (Reply::bulk(b"duration_ms"), Reply::Int(ms as i64)),
                ]),
            };
            let (libs, funcs) = functions::counts();
            Reply::Map(vec![
                (Reply::bulk(b"running_script"), running),
                (
                    Reply::bulk(b"engines"),
                    Reply::Map(vec![(
                        Reply::bulk(b"LUA"),
                        Reply::Map(vec![
                            (Reply::bulk(b"libraries_count"), Reply::Int(libs as i64)),
                            (Reply::bulk(b"functions_count"), Reply::Int(funcs as i64)),
                        ]),
                    )]),
                ),
            ])
        }
        b"kill" => script::kill(false),
        _ => Reply::Error(error::subcommand_syntax(args.get(1), "FUNCTION").into()),
    }
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
