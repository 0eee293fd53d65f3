//! Redis 7.0 functions: libraries loaded with FUNCTION LOAD (`#!lua
//! name=<lib>`), each registering functions with `redis.register_function`,
//! called by FCALL / FCALL_RO.
//!
//! The libraries are one process-wide registry (their code, and what each
//! registered); every Lua state loads them itself, at its first FCALL
//! after a change (the registry's generation moved). Loading runs the
//! library's code with only the load API visible (`redis.register_function`,
//! `redis.log`, the version fields), as Redis does by switching the
//! globals' `__index`; the functions it defines see the whole API when they
//! run.

use super::{convert, raise, ApiResult, ScriptFlags, Vm};
use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

/// One function a library registered.
#[derive(Debug, Clone)]
pub struct FuncInfo {
    pub name: String,
    pub desc: Option<String>,
    pub flags: ScriptFlags,
}

/// One library.
#[derive(Debug, Clone)]
pub struct Library {
    /// The whole FUNCTION LOAD payload, shebang included.
    pub code: Bytes,
    pub functions: Vec<FuncInfo>,
}

struct Registry {
    libs: RwLock<BTreeMap<String, Library>>,
    generation: AtomicU64,
    /// Functions whose runs stayed on their declared keys' core (as
    /// [`super::store::Placement`] for scripts); forgotten at any change.
    local: RwLock<(u64, std::collections::HashSet<String>)>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        libs: RwLock::new(BTreeMap::new()),
        generation: AtomicU64::new(1),
        local: RwLock::new((0, Default::default())),
    })
}

/// Where function `name` may run (see [`super::store::Placement`]).
pub fn placement(name: &[u8]) -> super::store::Placement {
    let l = registry().local.read().unwrap_or_else(|e| e.into_inner());
    let known = l.0 == generation() && std::str::from_utf8(name).is_ok_and(|n| l.1.contains(n));
    if known {
        super::store::Placement::Local
    } else {
        super::store::Placement::Everywhere
    }
}

/// Records where function `name`'s run went.
pub fn set_placement(name: &[u8], p: super::store::Placement) {
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let mut l = registry().local.write().unwrap_or_else(|e| e.into_inner());
    let g = generation();
    if l.0 != g {
        *l = (g, Default::default());
    }
    match p {
        super::store::Placement::Local => {
            l.1.insert(name.to_string());
        }
        super::store::Placement::Everywhere => {
            l.1.remove(name);
        }
    }
}

/// Changes whenever a library is loaded, replaced or deleted.
pub fn generation() -> u64 {
    registry().generation.load(Ordering::SeqCst)
}

/// Every library, by name.
pub fn libraries() -> BTreeMap<String, Library> {
    registry()
        .libs
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// FUNCTION DELETE: `false` when there is no such library.
pub fn delete(lib: &str) -> bool {
    let mut libs = registry().libs.write().unwrap_or_else(|e| e.into_inner());
    let gone = libs.remove(lib).is_some();
    if gone {
        registry().generation.fetch_add(1, Ordering::SeqCst);
    }
    gone
}

/// FUNCTION FLUSH.
pub fn flush() {
    let mut libs = registry().libs.write().unwrap_or_else(|e| e.into_inner());
    libs.clear();
    registry().generation.fetch_add(1, Ordering::SeqCst);
}

/// Number of libraries and functions (FUNCTION STATS, INFO).
pub fn counts() -> (usize, usize) {
    let libs = registry().libs.read().unwrap_or_else(|e| e.into_inner());
    (libs.len(), libs.values().map(|l| l.functions.len()).sum())
}

/// A library's name, engine and code from its `#!<engine> name=<lib>`
/// first line (Redis's `functionExtractLibMetaData`).
/// The name a library's code declares in its shebang, if it is well formed.
pub fn library_name(code: &[u8]) -> Option<String> {
    metadata(code).ok().map(|(name, _, _)| name)
}

fn metadata(payload: &[u8]) -> Result<(String, String, usize), String> {
    if !payload.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = payload.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = crate::args::split_args(&payload[..end])
        .filter(|p| !p.is_empty())
        .ok_or("Invalid library metadata")?;
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(p)
        ));
    }
    let name = name.ok_or("Library name was not given")?;
    Ok((name, engine, end))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// What a library's code registered while it loaded (app data).
struct LoadCtx {
    functions: Vec<(FuncInfo, Function)>,
}

impl Vm {
    /// FUNCTION LOAD [REPLACE]: checks and runs the library on this state,
    /// then puts it in the registry. Returns the library's name.
    pub fn load_library(&mut self, payload: &[u8], replace: bool) -> Result<String, String> {
        let (name, engine, end) = metadata(payload)?;
        if !valid_name(&name) {
            return Err(BAD_NAME.into());
        }
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(format!("Engine '{engine}' not found"));
        }
        if !replace && find_lib(&name) {
            return Err(format!("Library '{name}' already exists"));
        }
        let registered = self.run_library(&payload[end..])?;
        if registered.is_empty() {
            return Err("No functions registered".into());
        }
        let mut libs = registry().libs.write().unwrap_or_else(|e| e.into_inner());
        if !replace && libs.contains_key(&name) {
            return Err(format!("Library '{name}' already exists"));
        }
        for (f, _) in &registered {
            let taken = libs
                .iter()
                .any(|(l, lib)| *l != name && lib.functions.iter().any(|g| g.name == f.name));
            if taken {
                return Err(format!("Function {} already exists", f.name));
            }
        }
        libs.insert(
            name.clone(),
            Library {
                code: Bytes::copy_from_slice(payload),
                functions: registered.iter().map(|(f, _)| f.clone()).collect(),
            },
        );
        registry().generation.fetch_add(1, Ordering::SeqCst);
        Ok(name)
    }

    /// Runs a library's code (after its first line) with the load API,
    /// returning what it registered.
    fn run_library(&mut self, code: &[u8]) -> Result<Vec<(FuncInfo, Function)>, String> {
        let f = self
            .lua
            .load(code)
            .set_name("@user_function")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.lib_env.clone())
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                format!("Error compiling function: {msg}")
            })?;
        let meta = self
            .lib_env
            .metatable()
            .ok_or_else(|| "the library environment lost its metatable".to_string())?;
        let set_index = |v: &Table| meta.raw_set("__index", v.clone());
        set_index(&self.load_api).map_err(|e| e.to_string())?;
        self.lua.set_app_data(LoadCtx {
            functions: Vec::new(),
        });
        let r = f.call::<()>(());
        let ctx = self.lua.remove_app_data::<LoadCtx>();
        let pending = self
            .lua
            .remove_app_data::<super::Pending>()
            .and_then(|p| p.0);
        set_index(&self.lua.globals()).map_err(|e| e.to_string())?;
        if let Err(e) = r {
            let msg = match pending {
                Some(v) => convert::error_value_text(&v).unwrap_or_default(),
                None => {
                    let m = match super::unwrap_callback(e) {
                        mlua::Error::RuntimeError(m) => m,
                        other => other.to_string(),
                    };
                    // mlua appends Lua's traceback; Redis's text ends before.
                    let m = m.split("\nstack traceback:").next().unwrap_or_default();
                    format!("ERR {m}")
                }
            };
            return Err(format!("Error registering functions: {msg}"));
        }
        Ok(ctx.map(|c| c.functions).unwrap_or_default())
    }

    /// Makes this state's functions match the registry (after a load,
    /// replace, delete or flush anywhere).
    pub(super) fn sync_functions(&mut self) {
        let g = generation();
        if g == self.fn_generation {
            return;
        }
        self.functions.clear();
        for (_, lib) in libraries() {
            let end = lib
                .code
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(lib.code.len());
            if let Ok(registered) = self.run_library(&lib.code[end..]) {
                for (info, f) in registered {
                    self.functions.insert(info.name.clone(), (f, info.flags));
                }
            }
        }
        self.fn_generation = g;
    }
}

fn find_lib(name: &str) -> bool {
    registry()
        .libs
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(name)
}

/// The load API's `redis` table.
pub(super) fn load_api(lua: &Lua) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    redis.raw_set("register_function", lua.create_function(register)?)?;
    Ok(redis)
}

fn flags_of(t: &Table) -> Option<ScriptFlags> {
    let mut f = ScriptFlags::default();
    for v in t.sequence_values::<Value>() {
        let Ok(Value::String(s)) = v else {
            return None;
        };
        match s.as_bytes().to_ascii_lowercase().as_slice() {
            b"no-writes" => f.no_writes = true,
            b"allow-oom" => f.allow_oom = true,
            b"allow-stale" => f.allow_stale = true,
            b"no-cluster" => f.no_cluster = true,
            b"allow-cross-slot-keys" => f.allow_cross_slot = true,
            _ => return None,
        }
    }
    Some(f)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Number(n) => Some(convert::fmt_lua_number(*n)),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=..., callback=..., flags=...,
/// description=...}`.
fn register(lua: &Lua, args: MultiValue) -> ApiResult {
    if lua.app_data_ref::<LoadCtx>().is_none() {
        return raise(
            lua,
            "redis.register_function can only be called on FUNCTION LOAD command",
        );
    }
    let (name, desc, callback, flags) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return raise(lua, "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let (mut name, mut desc, mut cb, mut flags) =
                (None, None, None, ScriptFlags::default());
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Some(key) = text(&k) else {
                    return raise(
                        lua,
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                match key.to_ascii_lowercase().as_str() {
                    "function_name" => match text(&v) {
                        Some(n) => name = Some(n),
                        None => return raise(lua, "function_name argument given to redis.register_function must be a string"),
                    },
                    "description" => match text(&v) {
                        Some(d) => desc = Some(d),
                        None => return raise(lua, "description argument given to redis.register_function must be a string"),
                    },
                    "callback" => match v {
                        Value::Function(f) => cb = Some(f),
                        _ => return raise(lua, "callback argument given to redis.register_function must be a function"),
                    },
                    "flags" => match &v {
                        Value::Table(ft) => match flags_of(ft) {
                            Some(f) => flags = f,
                            None => return raise(lua, "unknown flag given"),
                        },
                        _ => return raise(lua, "flags argument to redis.register_function must be a table representing function flags"),
                    },
                    _ => return raise(lua, "unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return raise(
                    lua,
                    "redis.register_function must get a function name argument",
                );
            };
            let Some(cb) = cb else {
                return raise(lua, "redis.register_function must get a callback argument");
            };
            (name, desc, cb, flags)
        }
        2 => {
            let Some(name) = text(&args[0]) else {
                return raise(
                    lua,
                    "first argument to redis.register_function must be a string",
                );
            };
            let Value::Function(cb) = &args[1] else {
                return raise(
                    lua,
                    "second argument to redis.register_function must be a function",
                );
            };
            (name, None, cb.clone(), ScriptFlags::default())
        }
        _ => return raise(lua, "wrong number of arguments to redis.register_function"),
    };
    if !valid_name(&name) {
        return raise(lua, BAD_NAME);
    }
    let mut ctx = lua
        .app_data_mut::<LoadCtx>()
        .ok_or_else(|| mlua::Error::RuntimeError("no load context".into()))?;
    if ctx.functions.iter().any(|(f, _)| f.name == name) {
        drop(ctx);
        return raise(lua, "Function already exists in the library");
    }
    ctx.functions
        .push((FuncInfo { name, desc, flags }, callback));
    Ok(Value::Nil)
}

/// Every library as an RDB file holds it (after the aux fields, before
/// the databases, as Redis's `rdbSaveFunctions`).
pub fn write_rdb(out: &mut Vec<u8>) {
    for lib in libraries().values() {
        out.push(crate::rdb::OP_FUNCTION2);
        crate::rdb::write::string(out, &lib.code, true);
    }
}

/// FUNCTION DUMP's payload: each library's code under RDB's function
/// opcode, then the RDB version and a CRC64, as DUMP payloads end.
pub fn dump() -> Vec<u8> {
    let mut out = Vec::new();
    write_rdb(&mut out);
    crate::rdb::seal_dump(&mut out);
    out
}

/// FUNCTION RESTORE's payload: the libraries' codes, or Redis's error.
pub fn parse_dump(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let body = crate::rdb::open_dump(payload)
        .ok_or_else(|| "DUMP payload version or checksum are wrong".to_string())?;
    let mut r = crate::rdb::read::Reader::new(body);
    let mut codes = Vec::new();
    while !r.is_at_end() {
        match r.u8() {
            Ok(crate::rdb::OP_FUNCTION2) => {}
            Ok(_) => return Err("given type is not a function".into()),
            Err(_) => return Err("can not read data type".into()),
        }
        codes.push(
            r.string()
                .map_err(|_| "failed loading the given functions payload".to_string())?,
        );
    }
    Ok(codes)
}

/// The reply to FUNCTION LIST (`pattern`: LIBRARYNAME's glob).
pub fn list_reply(pattern: Option<&[u8]>, with_code: bool) -> crate::reply::Reply {
    use crate::reply::Reply;
    let mut out = Vec::new();
    for (name, lib) in libraries() {
        if pattern.is_some_and(|p| !crate::glob::stringmatchlen(p, name.as_bytes(), true)) {
            continue;
        }
        let funcs = lib
            .functions
            .iter()
            .map(|f| {
                Reply::Map(vec![
                    (Reply::bulk(b"name"), Reply::bulk(f.name.as_bytes())),
                    (
                        Reply::bulk(b"description"),
                        f.desc
                            .as_ref()
                            .map_or(Reply::Nil, |d| Reply::bulk(d.as_bytes())),
                    ),
                    (Reply::bulk(b"flags"), Reply::Set(flag_names(&f.flags))),
                ])
            })
            .collect();
        let mut m = vec![
            (Reply::bulk(b"library_name"), Reply::bulk(name.as_bytes())),
            (Reply::bulk(b"engine"), Reply::bulk(b"LUA")),
            (Reply::bulk(b"functions"), Reply::Array(funcs)),
        ];
        if with_code {
            m.push((Reply::bulk(b"library_code"), Reply::Bulk(lib.code.clone())));
        }
        out.push(Reply::Map(m));
    }
    Reply::Array(out)
}

fn flag_names(f: &ScriptFlags) -> Vec<crate::reply::Reply> {
    [
        (f.no_writes, "no-writes"),
        (f.allow_oom, "allow-oom"),
        (f.allow_stale, "allow-stale"),
        (f.no_cluster, "no-cluster"),
        (f.allow_cross_slot, "allow-cross-slot-keys"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| crate::reply::Reply::status(*n))
    .collect()
}
