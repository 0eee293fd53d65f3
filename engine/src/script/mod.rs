//! Lua scripting as Redis 7.0 embeds it: EVAL's scripts and the `redis`
//! API they call, on Lua 5.1 (`mlua`, vendored).
//!
//! A [`Vm`] is one Lua state with the scripts it compiled, kept per
//! thread: a shard core runs the scripts whose keys it owns on its own
//! state, without a hop or a lock. What a script's `redis.call` runs goes
//! through a [`Backend`]: the shard itself on a core, or the node's
//! messages to every core for a script that needs them all (the node's
//! `script` room). The bodies live in one process-wide [`store`], so an
//! EVALSHA finds a script whichever core loaded it.
//!
//! What follows Redis exactly: the sandbox (globals locked, reading an
//! unknown global is an error, no `print`/`dofile`/`loadfile`, `debug`
//! only for the error handler), `redis.call`/`pcall`/`error_reply`/
//! `status_reply`/`sha1hex`/`log`/`setresp`/`set_repl`/
//! `replicate_commands`/`breakpoint`/`debug`, the conversions both ways
//! in RESP2 and RESP3 ([`convert`]), the error texts, with the script and
//! line they came from, and `#!lua` shebang flags.

pub mod convert;
pub mod functions;
mod libs;
pub mod store;

use crate::args::Args;
use crate::cmd::{flags, registry, Spec};
use crate::reply::Reply;
use bytes::Bytes;
use hashbrown::HashMap;
use mlua::{ffi, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// What runs a script's commands.
pub trait Backend {
    /// Runs `spec` (checked: known, arity, allowed in scripts) with `args`
    /// (the name first) in database `db`.
    /// `propagate`: false after `redis.set_repl(redis.REPL_NONE)`, when the
    /// command's effects stay out of the AOF and the replicas.
    fn call(&mut self, spec: &'static Spec, db: usize, args: &Args, propagate: bool) -> Reply;

    /// Whether the last [`Backend::call`]'s error reply was counted in
    /// INFO errorstats where the command ran (a core's run counts the
    /// errors of the commands it runs): the script's reply carrying it on
    /// then does not count it again ([`convert::COUNTED_FIELD`]).
    fn error_counted(&self) -> bool {
        false
    }

    /// Why no command that writes may run here, if none may: a read-only
    /// replica's scripts, but for those its master sends.
    fn write_refusal(&self) -> Option<&'static str> {
        None
    }

    /// Why `spec` with `args` may not run on this node (cluster mode: a
    /// key of a slot it does not serve), if it may not.
    fn key_refusal(&self, _spec: &'static Spec, _args: &Args) -> Option<&'static str> {
        None
    }
}

/// Redis's refusal of a write on a read-only replica.
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";

/// Where `redis.log` lines go: the node's log (level 0 debug … 3
/// warning). Unset, they are dropped.
static LOGGER: std::sync::OnceLock<fn(u8, &str)> = std::sync::OnceLock::new();

/// Sets where `redis.log` writes (once, at start).
pub fn set_logger(f: fn(u8, &str)) {
    let _ = LOGGER.set(f);
}

/// A script's flags from its `#!lua flags=` shebang (Redis's
/// `SCRIPT_FLAG_*`); a script without a shebang is in compatibility mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    pub compat: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot: bool,
}

/// Parses a script's shebang line; returns its flags and the shebang's
/// length (the line feed after it stays, so line numbers do not move).
pub fn shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    let mut f = ScriptFlags {
        compat: true,
        ..Default::default()
    };
    if !body.starts_with(b"#!") {
        return Ok((f, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let Some(parts) = crate::args::split_args(&body[..end]).filter(|p| !p.is_empty()) else {
        return Err("Invalid engine in script shebang".into());
    };
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    f.compat = false;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        };
        // (`flags=` alone declares none, as Redis's split of it is empty.)
        for flag in list.split(|&b| b == b',').filter(|_| !list.is_empty()) {
            match flag {
                b"no-writes" => f.no_writes = true,
                b"allow-oom" => f.allow_oom = true,
                b"allow-stale" => f.allow_stale = true,
                b"no-cluster" => f.no_cluster = true,
                b"allow-cross-slot-keys" => f.allow_cross_slot = true,
                other => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(other)
                    ))
                }
            }
        }
    }
    Ok((f, end))
}

/// The SHA1 of `body` in lowercase hex (the script's name).
pub fn sha1_hex(body: &[u8]) -> [u8; 40] {
    use sha1::{Digest as _, Sha1};
    let d: [u8; 20] = Sha1::digest(body).into();
    let mut out = [0u8; 40];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in d.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// Each Lua state's run state, one cache line each so that a core marking
/// its runs never slows another: idle, running, running after a write,
/// asked to stop (SCRIPT KILL's NOTBUSY, UNKILLABLE and kill request).
#[repr(align(64))]
struct RunSlot(AtomicU8);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DIRTY: u8 = 2;
const KILLED: u8 = 3;

static SLOTS: [RunSlot; 64] = [const { RunSlot(AtomicU8::new(IDLE)) }; 64];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// SCRIPT KILL (`eval`) or FUNCTION KILL: `Ok` when a running script that
/// has not written was asked to stop (at its next check), else Redis's
/// NOTBUSY or UNKILLABLE; the other kind's KILL while a busy run goes on
/// gets that run's BUSY error, as in Redis.
pub fn kill(eval: bool) -> Reply {
    if BUSY_RUNS.load(Ordering::Relaxed) > 0 && BUSY_FUNCTION.load(Ordering::Relaxed) == eval {
        if let Some(e) = busy_error() {
            return Reply::err(e);
        }
    }
    let mut running = false;
    let mut killed = false;
    for s in &SLOTS {
        match s.0.load(Ordering::SeqCst) {
            RUNNING => {
                running = true;
                killed |=
                    s.0.compare_exchange(RUNNING, KILLED, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
            }
            DIRTY | KILLED => running = true,
            _ => {}
        }
    }
    if killed {
        Reply::Ok
    } else if running {
        Reply::err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
    } else {
        Reply::err("NOTBUSY No scripts in execution right now.")
    }
}

const KILLED_TEXT: &str = "Script killed by user with SCRIPT KILL...";

/// `busy-reply-threshold` (`lua-time-limit`) in milliseconds.
static BUSY_THRESHOLD_MS: AtomicU64 = AtomicU64::new(5000);
/// Runs past the threshold now, and whether the last one to pass it is a
/// function (FCALL) or a script (EVAL): written only by such runs, so
/// reading them costs a core nothing.
static BUSY_RUNS: AtomicUsize = AtomicUsize::new(0);
static BUSY_FUNCTION: AtomicBool = AtomicBool::new(false);

/// The function past the threshold (FUNCTION STATS' `running_script`):
/// its name, its command and when it began.
type RunningFunction = (Vec<u8>, Vec<Vec<u8>>, std::time::Instant);
static BUSY_FUNCTION_RUN: std::sync::Mutex<Option<RunningFunction>> = std::sync::Mutex::new(None);

/// A running function as FUNCTION STATS shows it: name, command,
/// milliseconds so far.
pub type Running = (Vec<u8>, Vec<Vec<u8>>, u64);

/// FUNCTION STATS' `running_script` while a function is past
/// `busy-reply-threshold` (Redis's reply shows it only then, when another
/// client can ask): its name, command and milliseconds so far. `Err`
/// while a script (EVAL) is: Redis answers FUNCTION STATS with BUSY then.
pub fn running_function() -> Result<Option<Running>, &'static str> {
    match busy_error() {
        None => Ok(None),
        Some(e) if !BUSY_FUNCTION.load(Ordering::Relaxed) => Err(e),
        Some(_) => Ok(BUSY_FUNCTION_RUN.lock().ok().and_then(|g| {
            g.as_ref()
                .map(|(n, c, t)| (n.clone(), c.clone(), t.elapsed().as_millis() as u64))
        })),
    }
}

/// Sets `busy-reply-threshold`.
pub fn set_busy_threshold(ms: u64) {
    BUSY_THRESHOLD_MS.store(ms, Ordering::Relaxed);
}

/// Redis's BUSY error while a script or function has run longer than
/// `busy-reply-threshold`: every command but those Redis allows then
/// (`allow_busy`) gets it.
pub fn busy_error() -> Option<&'static str> {
    if BUSY_RUNS.load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(if BUSY_FUNCTION.load(Ordering::Relaxed) {
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
    } else {
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    })
}

/// One script run: what it may do and what it did. It stays in the state's
/// app data between runs (`active` false), so a run allocates nothing here.
struct RunState {
    active: bool,
    /// The last command's error reply was counted where it ran
    /// ([`Backend::error_counted`]).
    error_counted: bool,
    slot: &'static AtomicU8,
    backend: Option<*mut dyn Backend>,
    db: usize,
    databases: usize,
    read_only: bool,
    resp3: bool,
    wrote: bool,
    killed: bool,
    /// When the run began, whether it is a function's, and whether it has
    /// passed `busy-reply-threshold` (counted in [`BUSY_RUNS`]).
    /// The chunk and line a SCRIPT KILL stopped it at.
    killed_at: Option<(String, usize)>,
    started: std::time::Instant,
    function: bool,
    busy: bool,
    /// A function's name and command (FCALL ...), kept for FUNCTION STATS
    /// in case the run passes the threshold; the buffers are reused.
    fname: Vec<u8>,
    fcommand: Vec<Vec<u8>>,
    /// Whether `redis.set_repl` keeps effects for the AOF and replicas.
    repl: u8,
    buf: Vec<u8>,
    spans: Vec<(u32, u32)>,
    /// A reply `redis.call`'s fast path got and left to the slow one to
    /// hand to Lua (an error, a table), and the bytes of a bulk reply it
    /// hands over itself.
    reply: Option<Reply>,
    bulk: Vec<u8>,
}

thread_local! {
    /// The error reply a script just gave on this thread when it carries
    /// on a command's error ([`convert::COUNTED_FIELD`]).
    static COUNTED_ERROR: std::cell::RefCell<Option<std::borrow::Cow<'static, str>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether error reply `err`, just given by a script on this thread,
/// carries on the error of a command the script called, which that
/// command counted in INFO errorstats (Redis counts it once: the script's
/// reply goes with `ERR_REPLY_FLAG_NO_STATS_UPDATE`). Clears the mark.
pub fn error_already_counted(err: &str) -> bool {
    COUNTED_ERROR.with(|c| c.borrow_mut().take().is_some_and(|e| e == err))
}

/// What a run gives back.
pub struct Outcome {
    /// The reply to the caller.
    pub reply: Reply,
    /// The script ran a write command.
    pub wrote: bool,
}

/// KEYS and ARGV of an EVAL or FCALL (`args[3..]`, the first `n` the
/// keys), borrowed from the request: on the stack for the usual few,
/// so a call allocates no list for them.
#[derive(Default)]
pub struct CallArgs<'a> {
    stack: [&'a [u8]; CallArgs::STACK],
    heap: Vec<&'a [u8]>,
}

impl<'a> CallArgs<'a> {
    const STACK: usize = 16;

    /// KEYS (`args[3..3 + n]`) and ARGV (the rest); `n` is at most
    /// `args.len() - 3`.
    pub fn split(&mut self, args: &crate::Args<'a>, n: usize) -> (&[&'a [u8]], &[&'a [u8]]) {
        let rest = args.len().saturating_sub(3);
        let all = if rest <= Self::STACK {
            for (i, a) in self.stack[..rest].iter_mut().enumerate() {
                *a = args.get(3 + i);
            }
            &self.stack[..rest]
        } else {
            self.heap = (3..args.len()).map(|i| args.get(i)).collect();
            &self.heap[..]
        };
        all.split_at(n.min(rest))
    }
}

/// What to run: the script and its arguments.
pub struct Call<'a> {
    /// The script's SHA1 in hex (its name).
    pub sha: [u8; 40],
    /// Its body when the caller has it (EVAL); else the [`store`]'s.
    pub body: Option<&'a [u8]>,
    pub keys: &'a [&'a [u8]],
    pub argv: &'a [&'a [u8]],
    /// The caller's database.
    pub db: usize,
    pub databases: usize,
    /// EVAL_RO / EVALSHA_RO.
    pub read_only: bool,
}

/// A Lua state and the scripts compiled on it.
pub struct Vm {
    lua: Lua,
    scripts: HashMap<[u8; 40], (Function, ScriptFlags)>,
    /// FUNCTION libraries' functions, loaded here at [`functions::generation`]
    /// `fn_generation`.
    functions: HashMap<String, (Function, ScriptFlags)>,
    fn_generation: u64,
    /// The environment of library code; its metatable's `__index` is the
    /// load API while a library loads, the globals otherwise.
    lib_env: Table,
    load_api: Table,
    /// This state's [`RunSlot`].
    slot: &'static AtomicU8,
    /// EVAL's KEYS and ARGV tables, refilled at each run, and their
    /// lengths.
    keys: (Table, usize),
    argv: (Table, usize),
    /// KEYS and ARGV are set as globals (see [`Vm::clear_keys`]).
    keys_set: bool,
    runner: Function,
    /// The store's generation these scripts belong to (SCRIPT FLUSH).
    generation: u64,
    runs: u32,
}

const REPL_AOF: u8 = 1;
const REPL_REPLICA: u8 = 2;

/// The error handler, the `redis.call`/`pcall` wrappers and the globals'
/// protection, in Lua: set up once per state.
const PRELUDE: &str = r#"
local take_pending, register_api = ...
local dbg = debug
local G = _G
local error, type, tostring, setmetatable, xpcall, rawget, rawset, unpack, opcall =
  error, type, tostring, setmetatable, xpcall, rawget, rawset, unpack, pcall
-- An error raised by the Rust side of the API is a userdata; the table
-- it stands for waits in the state (`take_pending`).
local function unwrap(err)
  if type(err) == 'userdata' then
    local t = take_pending()
    if t then return t end
  end
  return err
end
local function handler(err)
  err = unwrap(err)
  local src, line
  for level = 2, 64 do
    local i = dbg.getinfo(level, 'Sl')
    if not i then break end
    if i.source == '@user_script' or i.source == '@user_function' then
      src, line = i.source, i.currentline
      break
    end
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if src then
    err['source'] = src
    err['line'] = line
  end
  return err
end
-- Redis's `pcall` (`luaRedisPcall`): an error that is a table with an
-- `err` field comes back as that field (redis.call's errors, error({err=...})).
local function repcall(ok, ...)
  if ok then return ok, ... end
  local e = unwrap(...)
  if type(e) == 'table' then
    local m = e.err
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end
G.pcall = function(f, ...)
  return repcall(opcall(f, ...))
end
local function readonly() error('Attempt to modify a readonly table', 2) end
-- The tables Redis makes read-only (here proxies of the real ones, each
-- mapped to what it stands for): rawset and setmetatable on them fail
-- as Redis's do, and rawget reads the real table.
local protected = setmetatable({}, {__mode = 'k'})
local function locked(t)
  local p = setmetatable({}, {__index = t, __newindex = readonly, __metatable = false})
  protected[p] = t
  return p
end
local function refused() error('Attempt to modify a readonly table', 0) end
G.rawset = function(t, k, v)
  if protected[t] then refused() end
  return rawset(t, k, v)
end
G.setmetatable = function(t, m)
  if protected[t] then refused() end
  return setmetatable(t, m)
end
G.rawget = function(t, k)
  local real = protected[t]
  if type(real) == 'table' then return rawget(real, k) end
  return rawget(t, k)
end
for _, name in ipairs({'redis', 'string', 'math', 'table', 'coroutine', 'bit', 'cjson', 'cmsgpack', 'struct'}) do
  if rawget(G, name) then G[name] = locked(G[name]) end
end
-- Strings' methods come from the locked `string`, and getmetatable('')
-- gives a locked view of their metatable: a script cannot change either
-- for the scripts after it (Redis protects both).
local smt = getmetatable('')
if smt then
  smt.__index = G.string
  smt.__metatable = locked(smt)
end
G.debug = nil
G.print = nil
G.dofile = nil
G.loadfile = nil
G.module = nil
G.require = nil
G.package = nil
G.newproxy = nil
local env = setmetatable({}, {__index = G, __newindex = readonly, __metatable = false})
protected[env] = G
protected[G] = true
G._G = env
setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end, __newindex = function(t, k, v)
  if k == 'KEYS' or k == 'ARGV' then rawset(t, k, v) else readonly() end
end, __metatable = false})
local lib_env = setmetatable({}, {__index = G, __newindex = readonly})
protected[lib_env] = G
local function nonexistent(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local load_redis = setmetatable({}, {__index = nonexistent})
for k, v in pairs(register_api) do rawset(load_redis, k, v) end
for _, k in ipairs({'log', 'LOG_DEBUG', 'LOG_VERBOSE', 'LOG_NOTICE', 'LOG_WARNING', 'REDIS_VERSION', 'REDIS_VERSION_NUM'}) do
  rawset(load_redis, k, G.redis[k])
end
local load_api = setmetatable({redis = locked(load_redis)}, {__index = nonexistent})
return function(f, a, b)
  if a == nil then return xpcall(f, handler) end
  return xpcall(function() return f(a, b) end, handler)
end, env, lib_env, load_api
"#;

impl Vm {
    /// A fresh state with Redis's libraries and `redis` API.
    pub fn new() -> mlua::Result<Vm> {
        // SAFETY: the debug library is loaded only for the error handler,
        // which keeps a private reference; the prelude removes the global.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::new(),
            )
        };
        let redis = lua.create_table()?;
        redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
        redis.raw_set("REDIS_VERSION_NUM", 0x0007000f)?;
        for (k, v) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
            ("REPL_NONE", 0),
            ("REPL_AOF", REPL_AOF as i64),
            ("REPL_SLAVE", REPL_REPLICA as i64),
            ("REPL_REPLICA", REPL_REPLICA as i64),
            ("REPL_ALL", (REPL_AOF | REPL_REPLICA) as i64),
        ] {
            redis.raw_set(k, v)?;
        }
        redis.raw_set("sha1hex", lua.create_function(sha1hex)?)?;
        redis.raw_set("acl_check_cmd", lua.create_function(acl_check_cmd)?)?;
        redis.raw_set("error_reply", lua.create_function(error_reply)?)?;
        redis.raw_set("status_reply", lua.create_function(status_reply)?)?;
        redis.raw_set("log", lua.create_function(log)?)?;
        redis.raw_set("setresp", lua.create_function(setresp)?)?;
        redis.raw_set("set_repl", lua.create_function(set_repl)?)?;
        redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
        redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
        redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
        lua.globals().raw_set("redis", redis)?;
        lua.globals().raw_set("bit", bitlib(&lua)?)?;
        for (name, t) in [
            ("cjson", libs::cjson(&lua)?),
            ("cmsgpack", libs::cmsgpack(&lua)?),
            ("struct", libs::structlib(&lua)?),
        ] {
            wrap_errors(&lua, &t)?;
            lua.globals().raw_set(name, t)?;
        }
        let redis: Table = lua.globals().raw_get("redis")?;
        let call = lua.create_function(|lua, a: MultiValue| command(lua, a, true))?;
        let pcall = lua.create_function(|lua, a: MultiValue| command(lua, a, false))?;
        // SAFETY: `exec_raw` gives the state with the function on the stack;
        // the closure takes it as its upvalue.
        let (call, pcall): (Function, Function) = unsafe {
            (
                lua.exec_raw(call, |state| ffi::lua_pushcclosure(state, fast_call, 1))?,
                lua.exec_raw(pcall, |state| ffi::lua_pushcclosure(state, fast_call, 1))?,
            )
        };
        redis.raw_set("call", call)?;
        redis.raw_set("pcall", pcall)?;
        let take_pending =
            lua.create_function(|lua, ()| Ok(lua.remove_app_data::<Pending>().and_then(|p| p.0)))?;
        let (runner, _env, lib_env, load_api): (Function, Table, Table, Table) = lua
            .load(PRELUDE)
            .set_name("=slotd")
            .call((take_pending, functions::load_api(&lua)?))?;
        let slot = &SLOTS[NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS.len()].0;
        lua.set_app_data(RunState {
            active: false,
            error_counted: false,
            slot,
            backend: None,
            db: 0,
            databases: 0,
            read_only: false,
            resp3: false,
            wrote: false,
            killed: false,
            killed_at: None,
            started: std::time::Instant::now(),
            function: false,
            busy: false,
            fname: Vec::new(),
            fcommand: Vec::new(),
            repl: REPL_AOF | REPL_REPLICA,
            buf: Vec::new(),
            spans: Vec::new(),
            reply: None,
            bulk: Vec::new(),
        });
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            move |lua, debug| {
                if slot.load(Ordering::Relaxed) == KILLED {
                    if let Some(mut st) = lua.app_data_mut::<RunState>() {
                        st.killed = true;
                        // Where it stopped, for the error as Redis words it.
                        let src = debug.source().source.map(|s| s.into_owned());
                        st.killed_at = src
                            .filter(|s| s.starts_with("@user_"))
                            .zip(debug.current_line());
                    }
                    return Err(mlua::Error::RuntimeError(KILLED_TEXT.into()));
                }
                if let Some(mut st) = lua.app_data_mut::<RunState>() {
                    let limit = BUSY_THRESHOLD_MS.load(Ordering::Relaxed) as u128;
                    if !st.busy && st.started.elapsed().as_millis() >= limit {
                        st.busy = true;
                        if st.function {
                            if let Ok(mut g) = BUSY_FUNCTION_RUN.lock() {
                                *g = Some((st.fname.clone(), st.fcommand.clone(), st.started));
                            }
                        }
                        BUSY_FUNCTION.store(st.function, Ordering::Relaxed);
                        BUSY_RUNS.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(mlua::VmState::Continue)
            },
        )?;
        let (keys, argv) = (lua.create_table()?, lua.create_table()?);
        Ok(Vm {
            lua,
            scripts: HashMap::new(),
            functions: HashMap::new(),
            fn_generation: 0,
            lib_env,
            load_api,
            slot,
            keys: (keys, 0),
            argv: (argv, 0),
            keys_set: false,
            runner,
            generation: store::generation(),
            runs: 0,
        })
    }

    /// Compiles `body` (whose SHA1 is `sha`) unless already compiled.
    fn compile(&mut self, sha: [u8; 40], body: &[u8]) -> Result<ScriptFlags, Reply> {
        if let Some((_, f)) = self.scripts.get(&sha) {
            return Ok(*f);
        }
        let (flags, skip) = shebang(body).map_err(|e| Reply::Error(format!("ERR {e}").into()))?;
        let env: Table = self
            .lua
            .globals()
            .raw_get("_G")
            .map_err(|e| Reply::Error(format!("ERR {e}").into()))?;
        let f = self
            .lua
            .load(&body[skip..])
            .set_name("@user_script")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(env)
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                Reply::Error(format!("ERR Error compiling script (new function): {msg}").into())
            })?;
        self.scripts.insert(sha, (f, flags));
        Ok(flags)
    }

    /// SCRIPT LOAD's check: compiles `body` on this state (Redis compiles
    /// at load), returning its SHA1.
    pub fn load(&mut self, body: &[u8]) -> Result<[u8; 40], Reply> {
        self.sync_generation();
        let sha = sha1_hex(body);
        self.compile(sha, body)?;
        store::insert(sha, Bytes::copy_from_slice(body));
        Ok(sha)
    }

    fn sync_generation(&mut self) {
        let g = store::generation();
        if g != self.generation {
            self.scripts.clear();
            self.generation = g;
            let _ = self.lua.gc_collect();
        }
    }

    /// The flags of script `sha` (compiled here or in the store), for the
    /// checks before a run.
    pub fn flags_of(&mut self, sha: &[u8; 40], body: Option<&[u8]>) -> Result<ScriptFlags, Reply> {
        self.sync_generation();
        if let Some((_, f)) = self.scripts.get(sha) {
            return Ok(*f);
        }
        let body = match body {
            Some(b) => Bytes::copy_from_slice(b),
            None => store::get(sha).ok_or_else(noscript)?,
        };
        let f = self.compile(*sha, &body)?;
        store::insert(*sha, body);
        Ok(f)
    }

    /// Runs a script: compiles it first if needed (EVAL's body is stored
    /// for later EVALSHAs), then calls it with KEYS and ARGV set.
    pub fn run(&mut self, call: &Call, backend: &mut dyn Backend) -> Outcome {
        let flags = match self.flags_of(&call.sha, call.body) {
            Ok(f) => f,
            Err(reply) => {
                return Outcome {
                    reply,
                    wrote: false,
                }
            }
        };
        if !flags.compat && !flags.no_writes {
            // A script that declares it may write does not start where
            // writes are refused (Redis's `scriptPrepareForRun`).
            if let Some(e) = backend.write_refusal() {
                return Outcome {
                    reply: Reply::err(e),
                    wrote: false,
                };
            }
        }
        if call.read_only && !flags.compat && !flags.no_writes {
            return Outcome {
                reply: Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                ),
                wrote: false,
            };
        }
        if !self.scripts.contains_key(&call.sha) {
            return Outcome {
                reply: noscript(),
                wrote: false,
            };
        };
        let read_only = call.read_only || (!flags.compat && flags.no_writes);
        let (nk, na) = (self.keys.1, self.argv.1);
        // KEYS and ARGV are set and the script called in one protected
        // call, with Lua's own API: through mlua, each string was a handle
        // made and dropped (a sixth of a small script's run), and each
        // call through mlua costs a protected call of its own.
        let out = self.invoke(
            |vm| {
                let Some((f, _)) = vm.scripts.get(&call.sha) else {
                    return Err(mlua::Error::RuntimeError("the script is gone".into()));
                };
                // SAFETY: `exec_raw` gives the state with the two tables,
                // the runner and the script at stack indices 1 to 4. The
                // closure pushes strings, sets table entries and globals,
                // and calls the runner in a protected call of its own
                // (which leaves `false` and the error if it fails); a
                // memory error unwinds through `exec_raw`'s protected call,
                // and the closure owns nothing to drop.
                unsafe {
                    vm.lua.exec_raw::<(bool, Value)>(
                        (&vm.keys.0, &vm.argv.0, &vm.runner, f),
                        |state| {
                            fill(state, 1, call.keys, nk);
                            fill(state, 2, call.argv, na);
                            set_global(state, c"KEYS", 1);
                            set_global(state, c"ARGV", 2);
                            ffi::lua_remove(state, 1);
                            ffi::lua_remove(state, 1);
                            if ffi::lua_pcall(state, 1, 2, 0) != 0 {
                                ffi::lua_pushboolean(state, 0);
                                ffi::lua_insert(state, -2);
                            }
                        },
                    )
                }
            },
            false,
            &call.sha,
            (call.db, call.databases, read_only),
            backend,
        );
        // (Entries past the shorter run are cleared by the next one.)
        self.keys_set = true;
        self.keys.1 = call.keys.len().max(nk);
        self.argv.1 = call.argv.len().max(na);
        out
    }

    /// FCALL / FCALL_RO (`ro`) with their arguments `args` (the command
    /// name first), in Redis's order of checks.
    pub fn fcall(
        &mut self,
        args: &Args,
        (db, databases, ro): (usize, usize, bool),
        backend: &mut dyn Backend,
    ) -> Outcome {
        self.sync_functions();
        self.clear_keys();
        let name = String::from_utf8_lossy(args.get(1)).into_owned();
        let Some((f, flags)) = self.functions.get(&name) else {
            return Outcome {
                reply: Reply::err("ERR Function not found"),
                wrote: false,
            };
        };
        let n = match crate::resp::parse_i64(args.get(2)) {
            None => {
                return Outcome {
                    reply: Reply::err("ERR Bad number of keys provided"),
                    wrote: false,
                }
            }
            Some(n) if n > args.len() as i64 - 3 => {
                return Outcome {
                    reply: Reply::err("ERR Number of keys can't be greater than number of args"),
                    wrote: false,
                }
            }
            Some(n) if n < 0 => {
                return Outcome {
                    reply: Reply::err("ERR Number of keys can't be negative"),
                    wrote: false,
                }
            }
            Some(n) => n as usize,
        };
        let mut stack = CallArgs::default();
        let (keys, argv) = stack.split(args, n);
        let name = &name[..];
        let (f, flags) = (f.clone(), *flags);
        if !flags.no_writes {
            // A function that may write does not start where writes are
            // refused (a read-only replica).
            if let Some(e) = backend.write_refusal() {
                return Outcome {
                    reply: Reply::err(e),
                    wrote: false,
                };
            }
        }
        if ro && !flags.no_writes {
            return Outcome {
                reply: Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                ),
                wrote: false,
            };
        }
        if let Some(mut st) = self.lua.app_data_mut::<RunState>() {
            st.fname.clear();
            st.fname.extend_from_slice(name.as_bytes());
            st.fcommand.resize_with(args.len(), Vec::new);
            for (i, a) in st.fcommand.iter_mut().enumerate() {
                a.clear();
                a.extend_from_slice(args.get(i));
            }
        }
        let args =
            (|| -> mlua::Result<(Table, Table)> { Ok((self.array(keys)?, self.array(argv)?)) })();
        match args {
            Ok((k, a)) => self.invoke(
                |vm| vm.runner.call::<(bool, Value)>((f, k, a)),
                true,
                name.as_bytes(),
                (db, databases, ro || flags.no_writes),
                backend,
            ),
            Err(e) => Outcome {
                reply: Reply::Error(format!("ERR Error running script {name}, {e}").into()),
                wrote: false,
            },
        }
    }

    /// Runs `call` (which calls a script, or a `function`, through the
    /// runner's error handler) with its commands going to `backend`.
    fn invoke(
        &mut self,
        call: impl FnOnce(&Vm) -> mlua::Result<(bool, Value)>,
        function: bool,
        name: &[u8],
        (db, databases, read_only): (usize, usize, bool),
        backend: &mut dyn Backend,
    ) -> Outcome {
        // SAFETY: the pointer is in the app data only for this call (it is
        // taken out below), during which `backend` is borrowed here and
        // nowhere else; `run_command` is its only user.
        let backend: *mut (dyn Backend + '_) = backend;
        let backend: *mut dyn Backend = unsafe { std::mem::transmute(backend) };
        if let Some(mut st) = self.lua.app_data_mut::<RunState>() {
            st.active = true;
            st.backend = Some(backend);
            st.db = db;
            st.databases = databases;
            st.read_only = read_only;
            st.resp3 = false;
            st.wrote = false;
            st.killed = false;
            st.killed_at = None;
            st.started = std::time::Instant::now();
            st.function = function;
            st.busy = false;
            st.repl = REPL_AOF | REPL_REPLICA;
        }
        self.slot.store(RUNNING, Ordering::SeqCst);
        // (A mark an earlier run left, its reply not counted here.)
        COUNTED_ERROR.with(|c| c.borrow_mut().take());
        let result = call(self);
        self.slot.store(IDLE, Ordering::SeqCst);
        let (wrote, resp3, killed) = match self.lua.app_data_mut::<RunState>() {
            Some(mut st) => {
                st.active = false;
                st.backend = None;
                if std::mem::take(&mut st.busy) {
                    BUSY_RUNS.fetch_sub(1, Ordering::SeqCst);
                }
                let killed = st.killed.then(|| st.killed_at.take());
                (st.wrote, st.resp3, killed)
            }
            None => (false, false, None),
        };
        let counted = killed.is_none()
            && match &result {
                Ok((_, v)) => convert::error_counted(v),
                Err(_) => false,
            };
        let reply = match result {
            Ok((true, v)) => convert::lua_to_reply(&v, resp3),
            Ok((false, e)) => script_error(&e, &String::from_utf8_lossy(name), killed),
            Err(e) => Reply::Error(
                format!(
                    "ERR Error running script {}, {e}",
                    String::from_utf8_lossy(name)
                )
                .into(),
            ),
        };
        if let (true, Reply::Error(e)) = (counted, &reply) {
            COUNTED_ERROR.with(|c| *c.borrow_mut() = Some(e.clone()));
        }
        self.runs += 1;
        if self.runs.is_multiple_of(50) {
            let _ = self.lua.gc_step();
        }
        Outcome { reply, wrote }
    }

    /// KEYS and ARGV are EVAL's: they stay set after a script (the next
    /// one sets them again) and are cleared before a function runs, which
    /// gets Redis's nonexistent-global error for them.
    fn clear_keys(&mut self) {
        if !self.keys_set {
            return;
        }
        // SAFETY: as in `run`; only nils are set.
        let cleared = unsafe {
            self.lua.exec_raw::<()>((), |state| {
                ffi::lua_pushnil(state);
                set_global(state, c"KEYS", -1);
                set_global(state, c"ARGV", -1);
            })
        };
        self.keys_set = cleared.is_err();
    }

    fn array(&self, items: &[&[u8]]) -> mlua::Result<Table> {
        let t = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, it) in items.iter().enumerate() {
            t.raw_set(i + 1, self.lua.create_string(it)?)?;
        }
        Ok(t)
    }
}

/// Sets `items` as entries 1..n of the table at stack index `t`, and
/// clears what a longer earlier run (`was` entries) left beyond them.
///
/// # Safety
/// `state` is a Lua state inside `exec_raw`, with a table at `t`.
unsafe fn fill(state: *mut ffi::lua_State, t: i32, items: &[&[u8]], was: usize) {
    for (i, it) in items.iter().enumerate() {
        ffi::lua_pushlstring(state, it.as_ptr().cast(), it.len());
        ffi::lua_rawseti(state, t, i as ffi::lua_Integer + 1);
    }
    for i in items.len()..was {
        ffi::lua_pushnil(state);
        ffi::lua_rawseti(state, t, i as ffi::lua_Integer + 1);
    }
}

/// Sets global `name` to the value at stack index `v`, past the globals'
/// guard (which refuses new globals).
///
/// # Safety
/// `state` is a Lua state inside `exec_raw`, with a value at `v`.
unsafe fn set_global(state: *mut ffi::lua_State, name: &std::ffi::CStr, v: i32) {
    let v = if v < 0 {
        ffi::lua_gettop(state) + v + 1
    } else {
        v
    };
    ffi::lua_pushstring(state, name.as_ptr());
    ffi::lua_pushvalue(state, v);
    ffi::lua_rawset(state, ffi::LUA_GLOBALSINDEX);
}

/// The reply for a script that failed with error value `e` (a table from
/// the handler, with the line it came from).
/// The error reply of a failed run; `killed`: SCRIPT KILL stopped it (at
/// this chunk and line when known).
fn script_error(e: &Value, name: &str, killed: Option<Option<(String, usize)>>) -> Reply {
    match killed {
        Some(Some((src, line))) => {
            return Reply::Error(
                format!("ERR {KILLED_TEXT} script: {name}, on {src}:{line}.").into(),
            )
        }
        Some(None) => return Reply::Error(format!("ERR {KILLED_TEXT}").into()),
        None => {}
    }
    let Value::Table(t) = e else {
        let msg = convert::error_value_text(e).unwrap_or_else(|| "execution failure".into());
        return Reply::Error(format!("ERR Error running script {name}, {msg:.100}").into());
    };
    let msg = convert::error_value_text(e).unwrap_or_default();
    let source = t.raw_get::<Option<String>>("source").ok().flatten();
    let line = t.raw_get::<Value>("line").ok();
    let mut out = msg;
    if let (Some(src), Some(line)) = (source, line.as_ref().and_then(line_text)) {
        out.push_str(&format!(" script: {name}, on {src}:{line}."));
    }
    Reply::Error(out.replace(['\r', '\n'], " ").into())
}

fn line_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(format!("{}", *n as i64)),
        Value::Integer(n) => Some(n.to_string()),
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    }
}

fn noscript() -> Reply {
    Reply::err("NOSCRIPT No matching script. Please use EVAL.")
}

/// `redis.call` (`raise`: an error reply is raised) and `redis.pcall`
/// (returned as a `{err=...}` table).
fn command(lua: &Lua, args: MultiValue, raise: bool) -> ApiResult {
    let ran = lua
        .app_data_mut::<RunState>()
        .and_then(|mut st| st.reply.take().map(|r| (r, st.resp3)));
    let ran = match ran {
        Some(r) => Ok(r),
        None => run_command(lua, &args),
    };
    let (reply, resp3) = match ran {
        Ok(r) => r,
        Err(msg) => {
            let t = convert::error_table(lua, msg)?;
            return if raise {
                raise_table(lua, t)
            } else {
                Ok(Value::Table(t))
            };
        }
    };
    let counted = reply.is_error()
        && lua
            .app_data_ref::<RunState>()
            .is_some_and(|st| st.error_counted);
    match convert::reply_to_lua(lua, &reply, resp3)? {
        Value::Table(t) if reply.is_error() => {
            if counted {
                t.raw_set(convert::COUNTED_FIELD, true)?;
            }
            match raise {
                true => raise_table(lua, t),
                false => Ok(Value::Table(t)),
            }
        }
        v => Ok(v),
    }
}

/// What `redis.call`'s fast path leaves to push.
enum Fast {
    Number(f64),
    /// The bytes are in `RunState::bulk`.
    Bulk(*const u8, usize),
    False,
    /// For [`command`]: anything else (a refusal, an error reply, a reply
    /// that is a table, an argument that is neither string nor number).
    Slow,
}

/// `redis.call` and `redis.pcall` (their [`command`] as upvalue 1): the
/// usual call (string and number arguments, a command the script may run,
/// a reply that is a number, a string or nil) is run and answered here
/// without mlua's conversions, which made a handle for every argument;
/// everything else goes to [`command`], with the reply when the command
/// has run already.
unsafe extern "C-unwind" fn fast_call(state: *mut ffi::lua_State) -> std::ffi::c_int {
    // Nothing with a destructor lives in this frame: a Lua error (memory,
    // or raised by `command`) unwinds through it by longjmp.
    match fast_run(state) {
        Fast::Number(n) => {
            ffi::lua_pushnumber(state, n);
            1
        }
        Fast::Bulk(p, len) => {
            ffi::lua_pushlstring(state, p.cast(), len);
            1
        }
        Fast::False => {
            ffi::lua_pushboolean(state, 0);
            1
        }
        Fast::Slow => {
            let n = ffi::lua_gettop(state);
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
            ffi::lua_insert(state, 1);
            ffi::lua_call(state, n, ffi::LUA_MULTRET);
            ffi::lua_gettop(state)
        }
    }
}

/// The Rust part of [`fast_call`] (every value with a destructor is
/// dropped when it returns).
///
/// # Safety
/// `state` is the Vm's state, in a call of `redis.call`/`pcall`.
unsafe fn fast_run(state: *mut ffi::lua_State) -> Fast {
    let lua = Lua::get_or_init_from_ptr(state);
    let Some(mut guard) = lua.app_data_mut::<RunState>() else {
        return Fast::Slow;
    };
    let st = &mut *guard;
    // A reply left by a call whose slow path never ran (an error raised
    // before `command` was entered) is not this call's.
    st.reply = None;
    let n = ffi::lua_gettop(state);
    if !st.active || n == 0 {
        return Fast::Slow;
    }
    st.buf.clear();
    st.spans.clear();
    for i in 1..=n {
        let start = st.buf.len() as u32;
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let p = ffi::lua_tolstring(state, i, &mut len);
                st.buf
                    .extend_from_slice(std::slice::from_raw_parts(p.cast::<u8>(), len));
            }
            ffi::LUA_TNUMBER => push_number(&mut st.buf, ffi::lua_tonumber(state, i)),
            _ => return Fast::Slow,
        }
        st.spans.push((start, st.buf.len() as u32));
    }
    // A refusal is worded by `run_command`, which checks again.
    let Ok(reply) = call_checked(st) else {
        return Fast::Slow;
    };
    match reply {
        Reply::Int(n) => Fast::Number(n as f64),
        Reply::Bulk(b) => {
            st.bulk.clear();
            st.bulk.extend_from_slice(&b);
            Fast::Bulk(st.bulk.as_ptr(), st.bulk.len())
        }
        Reply::Nil if !st.resp3 => Fast::False,
        r => {
            st.reply = Some(r);
            Fast::Slow
        }
    }
}

/// A number argument as `redis.call` gives it to the command: an integral
/// value as an integer, any other with `%.17g` (as mlua's conversion and
/// [`run_command`] make it).
fn push_number(buf: &mut Vec<u8>, n: f64) {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&n) && ((n as i64) as f64).to_bits() == n.to_bits() {
        use std::io::Write as _;
        let _ = write!(buf, "{}", n as i64);
    } else {
        buf.extend_from_slice(crate::reply::fmt_g17(n).as_bytes());
    }
}

/// Checks and runs one command of the script: its reply and the script's
/// RESP mode, or the text of a refusal.
fn run_command(lua: &Lua, args: &MultiValue) -> Result<(Reply, bool), &'static str> {
    let Some(mut guard) = lua.app_data_mut::<RunState>().filter(|s| s.active) else {
        return Err("ERR redis.call/pcall can only be called inside a script invocation");
    };
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    let st = &mut *guard;
    st.buf.clear();
    st.spans.clear();
    for a in args.iter() {
        let start = st.buf.len() as u32;
        match a {
            Value::String(s) => st.buf.extend_from_slice(&s.as_bytes()),
            Value::Number(n) => st
                .buf
                .extend_from_slice(crate::reply::fmt_g17(*n).as_bytes()),
            Value::Integer(n) => st.buf.extend_from_slice(n.to_string().as_bytes()),
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
        st.spans.push((start, st.buf.len() as u32));
    }
    let reply = call_checked(st)?;
    Ok((reply, st.resp3))
}

/// Whether XREAD or XREADGROUP `args` ask to block: a BLOCK option
/// before STREAMS, the options' values stepped over as `xreadCommand`
/// reads them (GROUP takes two, COUNT and BLOCK one).
fn blocks(args: &Args) -> bool {
    let mut i = 1;
    while i < args.len() {
        let a = args.get(i);
        if a.eq_ignore_ascii_case(b"streams") {
            return false;
        }
        if a.eq_ignore_ascii_case(b"block") {
            return true;
        }
        i += if a.eq_ignore_ascii_case(b"group") {
            3
        } else if a.eq_ignore_ascii_case(b"count") {
            2
        } else {
            1
        };
    }
    false
}

/// Checks and runs the command whose arguments are in `st.buf` and
/// `st.spans`: its reply, or the text of a refusal.
fn call_checked(st: &mut RunState) -> Result<Reply, &'static str> {
    st.error_counted = false;
    let args = Args::new(&st.buf, &st.spans);
    let Some(spec) = registry().lookup(args.get(0)) else {
        return Err("ERR Unknown Redis command called from script");
    };
    if spec.check_arity(args.len()).is_err() {
        return Err("ERR Wrong number of args calling Redis command from script");
    }
    if spec.has(flags::NOSCRIPT) {
        return Err("ERR This Redis command is not allowed from script");
    }
    if st.read_only && spec.may_replicate(&args) {
        return Err("ERR Write commands are not allowed from read-only scripts.");
    }
    if matches!(spec.name, "xread" | "xreadgroup") && blocks(&args) {
        // (Redis's `xreadCommand`, naming the command as the script did.)
        let e = format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            String::from_utf8_lossy(args.get(0))
        );
        return Ok(Reply::Error(e.into()));
    }
    if let Some(backend) = st.backend {
        // SAFETY: set by `Vm::invoke` for this call only (see there).
        let backend = unsafe { &*backend };
        // (Writes only: PUBLISH and PFCOUNT run on a replica.)
        if spec.writes(&args) {
            if let Some(e) = backend.write_refusal() {
                return Err(e);
            }
        }
        if let Some(e) = backend.key_refusal(spec, &args) {
            return Err(e);
        }
    }
    Ok(if spec.name == "select" {
        match crate::resp::parse_i64(args.get(1)) {
            Some(n) if n >= 0 && (n as usize) < st.databases => {
                st.db = n as usize;
                Reply::Ok
            }
            Some(_) => Reply::err("ERR DB index is out of range"),
            None => Reply::err(crate::error::NOT_INT),
        }
    } else {
        if spec.has(flags::WRITE) && !st.wrote {
            // SCRIPT KILL may stop a script only before its first write.
            match st
                .slot
                .compare_exchange(RUNNING, DIRTY, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => st.wrote = true,
                Err(_) => {
                    st.killed = true;
                    return Err("ERR Script killed by user with SCRIPT KILL...");
                }
            }
        }
        let Some(backend) = st.backend else {
            return Err("ERR redis.call/pcall can only be called inside a script invocation");
        };
        // SAFETY: set by `Vm::invoke` for this call only (see there).
        let backend = unsafe { &mut *backend };
        let reply = backend.call(spec, st.db, &args, st.repl != 0);
        st.error_counted = reply.is_error() && backend.error_counted();
        reply
    })
}

/// `redis.acl_check_cmd(command, ...)`: whether the script's user may run
/// the command. slotd's one user, `default`, may run every command: true
/// for a command (or subcommand) that exists, else Redis's error.
fn acl_check_cmd(lua: &Lua, args: MultiValue) -> ApiResult {
    let mut argv = Vec::with_capacity(2);
    for a in args.iter().take(2) {
        match a {
            Value::String(s) => argv.push(s.as_bytes().to_vec()),
            Value::Number(n) => argv.push(crate::reply::fmt_g17(*n).into_bytes()),
            Value::Integer(n) => argv.push(n.to_string().into_bytes()),
            _ => {
                return raise(
                    lua,
                    "Lua redis lib command arguments must be strings or integers",
                )
            }
        }
    }
    let Some(name) = argv.first() else {
        return raise(
            lua,
            "Please specify at least one argument for this redis lib call",
        );
    };
    let known = registry().lookup(name).is_some_and(|spec| {
        !spec.has(flags::SUBCOMMANDS)
            || argv.len() < 2
            || crate::cmd::meta::full_name(spec.name, &argv[1]).is_some()
    });
    if !known {
        return raise(lua, "Invalid command passed to redis.acl_check_cmd()");
    }
    ok(Value::Boolean(true))
}

fn sha1hex(lua: &Lua, args: MultiValue) -> ApiResult {
    if args.len() != 1 {
        return raise(lua, "wrong number of arguments");
    }
    let bytes = match &args[0] {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) => convert::fmt_lua_number(*n).into_bytes(),
        Value::Integer(n) => n.to_string().into_bytes(),
        _ => Vec::new(),
    };
    ok(Value::String(lua.create_string(sha1_hex(&bytes))?))
}

fn error_reply(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    match args.front() {
        Some(Value::String(s)) if args.len() == 1 => {
            let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
            let line = if text.starts_with('-') {
                text
            } else {
                format!("-{text}")
            };
            Ok(Value::Table(convert::error_table(lua, &line)?))
        }
        _ => Ok(Value::Table(convert::error_table(
            lua,
            "ERR wrong number or type of arguments",
        )?)),
    }
}

fn status_reply(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    match args.front() {
        Some(Value::String(s)) if args.len() == 1 => {
            let t = lua.create_table_with_capacity(0, 1)?;
            t.raw_set("ok", s.clone())?;
            Ok(Value::Table(t))
        }
        _ => Ok(Value::Table(convert::error_table(
            lua,
            "ERR wrong number or type of arguments",
        )?)),
    }
}

/// What the API functions return.
type ApiResult = mlua::Result<Value>;

fn ok(v: Value) -> ApiResult {
    Ok(v)
}

/// The error value a Rust function of the API raises, waiting for the
/// prelude's `unwrap` (mlua raises Rust errors as userdata).
struct Pending(Option<Value>);

/// Raises `t` as the Lua error (Redis's `luaError` on a `{err=...}`).
fn raise_table(lua: &Lua, t: Table) -> ApiResult {
    let text = convert::error_value_text(&Value::Table(t.clone())).unwrap_or_default();
    lua.set_app_data(Pending(Some(Value::Table(t))));
    Err(mlua::Error::RuntimeError(text))
}

/// The error a library function raises with `luaL_error(msg)`: the
/// string itself (a C function adds no position).
fn raise_text(lua: &Lua, e: mlua::Error) -> mlua::Error {
    let msg = match &e {
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    };
    // `luaL_error`'s position: the Lua code that called the function.
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line()?;
            let src = d.source().short_src?.into_owned();
            Some(format!("{src}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    let msg = format!("{at}{msg}");
    if let Ok(s) = lua.create_string(&msg) {
        lua.set_app_data(Pending(Some(Value::String(s))));
    }
    e
}

/// Wraps a library table's functions so their errors reach scripts as
/// Lua's own would.
fn wrap_errors(lua: &Lua, t: &Table) -> mlua::Result<()> {
    let funcs: Vec<(Value, Function)> = t
        .pairs::<Value, Value>()
        .flatten()
        .filter_map(|(k, v)| match v {
            Value::Function(f) => Some((k, f)),
            _ => None,
        })
        .collect();
    for (k, f) in funcs {
        let wrapped = lua.create_function(move |lua, a: MultiValue| {
            f.call::<MultiValue>(a)
                .map_err(|e| raise_text(lua, unwrap_callback(e)))
        })?;
        t.raw_set(k, wrapped)?;
    }
    Ok(())
}

/// The error a Rust callback returned, out of mlua's wrapping.
fn unwrap_callback(e: mlua::Error) -> mlua::Error {
    match e {
        mlua::Error::CallbackError { cause, .. } => unwrap_callback((*cause).clone()),
        other => other,
    }
}

fn raise(lua: &Lua, msg: &str) -> ApiResult {
    raise_table(lua, convert::error_table(lua, &format!("ERR {msg}"))?)
}

fn log(lua: &Lua, args: MultiValue) -> ApiResult {
    if args.len() < 2 {
        return raise(lua, "redis.log() requires two arguments or more.");
    }
    let level = match &args[0] {
        Value::Number(n) => *n as i64,
        Value::Integer(n) => *n,
        _ => return raise(lua, "First argument must be a number (log level)."),
    };
    if !(0..=3).contains(&level) {
        return raise(lua, "Invalid debug level.");
    }
    let mut line = String::new();
    for (i, a) in args.iter().skip(1).enumerate() {
        if i > 0 {
            line.push(' ');
        }
        match a {
            Value::String(s) => line.push_str(&String::from_utf8_lossy(&s.as_bytes())),
            Value::Number(n) => line.push_str(&convert::fmt_lua_number(*n)),
            Value::Integer(n) => line.push_str(&n.to_string()),
            _ => {}
        }
    }
    if let Some(f) = LOGGER.get() {
        f(level as u8, &line);
    }
    ok(Value::Nil)
}

fn setresp(lua: &Lua, args: MultiValue) -> ApiResult {
    if lua.app_data_ref::<RunState>().is_none() {
        return raise(
            lua,
            "redis.setresp can only be called inside a script invocation",
        );
    }
    if args.len() != 1 {
        return raise(lua, "redis.setresp() requires one argument.");
    }
    let resp3 = match &args[0] {
        Value::Number(n) if *n == 2.0 || *n == 3.0 => *n == 3.0,
        Value::Integer(n) if *n == 2 || *n == 3 => *n == 3,
        _ => return raise(lua, "RESP version must be 2 or 3."),
    };
    if let Some(mut st) = lua.app_data_mut::<RunState>() {
        st.resp3 = resp3;
    }
    ok(Value::Nil)
}

fn set_repl(lua: &Lua, args: MultiValue) -> ApiResult {
    if lua.app_data_ref::<RunState>().is_none() {
        return raise(
            lua,
            "redis.set_repl can only be called inside a script invocation",
        );
    }
    if args.len() != 1 {
        return raise(lua, "redis.set_repl() requires two arguments.");
    }
    let v = match &args[0] {
        Value::Number(n) => *n as i64,
        Value::Integer(n) => *n,
        _ => -1,
    };
    if !(0..=3).contains(&v) {
        return raise(
            lua,
            "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
        );
    }
    if v == 1 || v == 2 {
        // One write log feeds both the AOF and the replicas.
        return raise(
            lua,
            "slotd cannot propagate to the AOF and the replicas apart yet: use REPL_ALL or REPL_NONE.",
        );
    }
    if let Some(mut st) = lua.app_data_mut::<RunState>() {
        st.repl = v as u8;
    }
    ok(Value::Nil)
}

/// The `bit` library (LuaJIT's BitOp, which Redis embeds): 32-bit
/// operations on Lua numbers.
fn bitlib(lua: &Lua) -> mlua::Result<Table> {
    fn tobit(v: f64) -> i32 {
        // BitOp's normalisation: the number modulo 2^32, as a signed int.
        (v.rem_euclid(4294967296.0) as u64 as u32) as i32
    }
    let t = lua.create_table()?;
    t.raw_set(
        "tobit",
        lua.create_function(|_, x: f64| Ok(tobit(x) as f64))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|_, x: f64| Ok(!tobit(x) as f64))?,
    )?;
    macro_rules! fold {
        ($name:literal, $op:tt) => {
            #[allow(clippy::assign_op_pattern)]
            t.raw_set(
                $name,
                lua.create_function(|_, (x, rest): (f64, mlua::Variadic<f64>)| {
                    let mut acc = tobit(x);
                    for y in rest.iter() {
                        acc = acc $op tobit(*y);
                    }
                    Ok(acc as f64)
                })?,
            )?;
        };
    }
    fold!("band", &);
    fold!("bor", |);
    fold!("bxor", ^);
    t.raw_set(
        "lshift",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok(((tobit(x) as u32).wrapping_shl(tobit(n) as u32 & 31)) as i32 as f64)
        })?,
    )?;
    t.raw_set(
        "rshift",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok(((tobit(x) as u32).wrapping_shr(tobit(n) as u32 & 31)) as i32 as f64)
        })?,
    )?;
    t.raw_set(
        "arshift",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok(tobit(x).wrapping_shr(tobit(n) as u32 & 31) as f64)
        })?,
    )?;
    t.raw_set(
        "rol",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok((tobit(x) as u32).rotate_left(tobit(n) as u32 & 31) as i32 as f64)
        })?,
    )?;
    t.raw_set(
        "ror",
        lua.create_function(|_, (x, n): (f64, f64)| {
            Ok((tobit(x) as u32).rotate_right(tobit(n) as u32 & 31) as i32 as f64)
        })?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, x: f64| Ok((tobit(x) as u32).swap_bytes() as i32 as f64))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let mut n = n.map_or(8, tobit);
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let v = tobit(x) as u32 as u64;
            let s = if upper {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests;
