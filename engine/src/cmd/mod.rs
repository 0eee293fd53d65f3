//! The command table and dispatch.
//!
//! Each family lives in its own file and exports `COMMANDS: &[Spec]`, a
//! declarative table in the spirit of Redis's command table: name, arity,
//! flags and key positions. The node derives a command's keys, slots and
//! owning cores from this table alone, so there is no per-command routing
//! code. A handler is a plain function `fn(&mut Ctx) -> Reply`: synchronous,
//! free of I/O, clocks and randomness other than what `Ctx` hands it.
//!
//! Commands that need the node (connection state, pub/sub, transactions,
//! server-wide info) are in the table with the [`flags::NODE`] flag and no
//! handler, so COMMAND INFO/COUNT/DOCS still see one complete table.

pub mod connection;
pub mod dump;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod lolwut;
pub mod meta;
pub mod script;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod unbuilt;
pub mod zset;

use crate::args::Args;
use crate::error;
use crate::reply::Reply;
use crate::shard::Shard;
use crate::value::Typed;
use bytes::Bytes;
use hashbrown::HashMap;
use std::cell::Cell;
use std::sync::OnceLock;

/// Command flags. The first group mirrors Redis's (COMMAND INFO shows them);
/// the second tells the node where a command runs.
pub mod flags {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/sub related.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed from scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 6;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 8;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 9;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 10;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 11;
    /// Allowed while the client is in RESP2 subscribed mode.
    pub const PUBSUB_OK: u32 = 1 << 12;

    /// Handled by the node (connection, server or cluster state); no handler.
    pub const NODE: u32 = 1 << 20;
    /// Runs on every shard; the node merges the replies per [`super::Merge`].
    pub const ALL_SHARDS: u32 = 1 << 21;
    /// Logs its own effects (scripts log the commands they ran), never its
    /// arguments.
    pub const SELF_LOGGED: u32 = 1 << 22;
    /// A container (CLIENT, CONFIG, ...): its subcommand and that
    /// subcommand's arity are checked before it runs, as Redis's
    /// `processCommand` does (`Spec::check_args`).
    pub const SUBCOMMANDS: u32 = 1 << 23;
}

/// How the node combines the replies of an [`flags::ALL_SHARDS`] command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Not a fan-out command.
    None,
    /// Add up integer replies (DBSIZE).
    SumInt,
    /// Concatenate array replies (KEYS).
    Concat,
    /// Every shard answers OK; the first error wins (FLUSHALL).
    AllOk,
    /// One random non-nil reply (RANDOMKEY).
    AnyNonNil,
}

/// A handler: runs a command against one shard.
pub type Handler = fn(&mut Ctx) -> Reply;
/// Finds the key positions of a command whose keys move (ZUNIONSTORE's
/// numkeys, ...). Returns argument indices, or the error to reply.
pub type KeysFn = fn(&Args) -> Result<Vec<usize>, Reply>;

/// One command's entry in the table.
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments (name included), -N at
    /// least N.
    pub arity: i32,
    /// [`flags`].
    pub flags: u32,
    /// First key position (0: no keys).
    pub first_key: i32,
    /// Last key position; negative counts from the end (-1 = last).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// For commands with movable keys.
    pub keys: Option<KeysFn>,
    /// The implementation (None for [`flags::NODE`] commands).
    pub handler: Option<Handler>,
    /// Merge rule for [`flags::ALL_SHARDS`] commands.
    pub merge: Merge,
}

impl Spec {
    /// Writes, or may add to the replication stream (Redis's
    /// `may_replicate`: PUBLISH, SPUBLISH, PFCOUNT's cache, scripts and
    /// functions that may write), itself or through its subcommand
    /// (FUNCTION FLUSH): what CLIENT PAUSE WRITE and a manual failover's
    /// pause hold.
    pub fn may_replicate(&self, args: &Args) -> bool {
        matches!(
            self.name,
            "publish" | "spublish" | "pfcount" | "eval" | "evalsha" | "fcall"
        ) || self.writes(args)
    }

    /// Writes, itself or through its subcommand (FUNCTION FLUSH).
    pub fn writes(&self, args: &Args) -> bool {
        self.has(flags::WRITE)
            || (args.len() > 1 && meta::subcommand_writes(self.name, args.get(1)))
    }

    /// A command with a handler and fixed key positions.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: (i32, i32, i32),
        handler: Handler,
    ) -> Spec {
        Spec {
            name,
            arity,
            flags,
            first_key: keys.0,
            last_key: keys.1,
            step: keys.2,
            keys: None,
            handler: Some(handler),
            merge: Merge::None,
        }
    }

    /// A command the node implements.
    pub const fn node(name: &'static str, arity: i32, flags: u32, keys: (i32, i32, i32)) -> Spec {
        Spec {
            name,
            arity,
            flags: flags | flags::NODE,
            first_key: keys.0,
            last_key: keys.1,
            step: keys.2,
            keys: None,
            handler: None,
            merge: Merge::None,
        }
    }

    /// Sets a movable-keys function.
    pub const fn movable(mut self, f: KeysFn) -> Spec {
        self.keys = Some(f);
        self
    }

    /// Marks a container command ([`flags::SUBCOMMANDS`]).
    pub const fn subcommands(mut self) -> Spec {
        self.flags |= flags::SUBCOMMANDS;
        self
    }

    /// Makes this a fan-out command merged by `m`.
    pub const fn all_shards(mut self, m: Merge) -> Spec {
        self.flags |= flags::ALL_SHARDS;
        self.merge = m;
        self
    }

    /// True when `flag` is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// True when this call is refused while memory is full: the command,
    /// or its subcommand (XGROUP CREATE), is flagged `denyoom`.
    pub fn denies_oom(&self, args: &Args) -> bool {
        self.has(flags::DENYOOM)
            || (args.len() > 1 && meta::subcommand_denies_oom(self.name, args.get(1)))
    }

    /// True when this call may block its client: a [`flags::BLOCKING`]
    /// command, except XREAD and XREADGROUP without BLOCK.
    pub fn may_block(&self, args: &Args) -> bool {
        self.has(flags::BLOCKING)
            && (!matches!(self.name, "xread" | "xreadgroup") || stream::read_may_block(args))
    }

    /// Checks the argument count.
    pub fn check_arity(&self, argc: usize) -> Result<(), Reply> {
        let ok = if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= (-self.arity) as usize
        };
        if ok {
            Ok(())
        } else {
            Err(Reply::Error(error::wrong_arity(self.name).into()))
        }
    }

    /// Checks the argument count and, for a container, that its
    /// subcommand exists and has the right count, with Redis's errors:
    /// `unknown subcommand 'x'. Try CONFIG HELP.` and `wrong number of
    /// arguments for 'config|get' command`.
    pub fn check_args(&self, args: &Args) -> Result<(), Reply> {
        self.check_arity(args.len())?;
        if !self.has(flags::SUBCOMMANDS) || args.len() < 2 {
            return Ok(());
        }
        let sub = args.get(1);
        match meta::subcommand_arity(self.name, sub) {
            None => Err(Reply::Error(
                error::unknown_subcommand(sub, self.name).into(),
            )),
            Some(arity) => {
                let argc = args.len() as i64;
                if (arity > 0 && arity != argc) || argc < -arity {
                    let full = format!(
                        "{}|{}",
                        self.name,
                        String::from_utf8_lossy(sub).to_ascii_lowercase()
                    );
                    Err(Reply::Error(error::wrong_arity(&full).into()))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Appends the argument indices of this command's keys to `out`.
    pub fn key_indices(&self, args: &Args, out: &mut Vec<usize>) -> Result<(), Reply> {
        if let Some(f) = self.keys {
            out.extend(f(args)?);
            return Ok(());
        }
        if self.first_key <= 0 {
            return Ok(());
        }
        let argc = args.len() as i32;
        let last = if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        let step = self.step.max(1);
        let mut i = self.first_key;
        while i <= last {
            out.push(i as usize);
            i += step;
        }
        Ok(())
    }
}

/// What a blocking command waits for when it found nothing to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Keys to wait on (any of them).
    pub keys: Vec<Bytes>,
    /// Absolute deadline in Unix ms, or None to wait forever.
    pub deadline_ms: Option<i64>,
    /// The command to run when a key is signalled, if not this one
    /// (XREAD's `$` resolved to the stream's last ID at block time).
    pub rerun: Option<Vec<Bytes>>,
}

/// Everything a handler may use: the shard, the selected database, the
/// current time, the arguments. Handlers report side channels through it.
pub struct Ctx<'a> {
    /// The shard that owns every key of this command.
    pub shard: &'a mut Shard,
    /// Selected database.
    pub db: usize,
    /// Current Unix time in milliseconds (an input, never read from a clock).
    pub now_ms: i64,
    /// The arguments, `args.get(0)` being the command name.
    pub args: Args<'a>,
    /// The hash slots this shard owns (SCAN walks slots and stops at the
    /// end of this range; the node continues on the next shard).
    pub slots: std::ops::Range<usize>,
    /// True inside MULTI/EXEC, where blocking commands must not block.
    pub in_multi: bool,
    /// Set by a blocking command that found nothing: the node parks the
    /// client instead of sending the reply (unless `in_multi`).
    pub block: Option<Block>,
    /// The key whose signal re-runs this parked command (XREAD and
    /// XREADGROUP then serve that stream only, and answer Redis's errors
    /// for a stream or group gone meanwhile).
    pub woken: Option<&'a [u8]>,
    /// Set by a write whose effect must be logged in another form than its
    /// arguments (e.g. relative TTLs as absolute `PEXPIREAT`).
    pub rewrite: Option<Vec<Vec<Bytes>>>,
    /// The rewritten commands replay all or none: more than one is logged
    /// inside MULTI/EXEC (Redis 7.0's `propagatePendingCommands`).
    pub rewrite_atomic: bool,
}

impl<'a> Ctx<'a> {
    /// A context for running one command.
    pub fn new(shard: &'a mut Shard, db: usize, now_ms: i64, args: Args<'a>) -> Self {
        Ctx {
            shard,
            db,
            now_ms,
            args,
            slots: 0..crate::slot::SLOTS,
            in_multi: false,
            block: None,
            woken: None,
            rewrite: None,
            rewrite_atomic: false,
        }
    }

    /// Records that this command wrote `n` changes.
    pub fn dirty(&mut self, n: u64) {
        self.shard.dirty += n;
    }

    /// Records a keyspace event of `class` on `key` in the selected
    /// database (Redis's `notifyKeyspaceEvent`).
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.shard.notify(class, event, self.db, key);
    }

    /// Logs this write as the given commands instead of its own arguments.
    pub fn propagate_as(&mut self, cmds: Vec<Vec<Bytes>>) {
        self.rewrite = Some(cmds);
    }

    /// [`Ctx::propagate_as`], several commands wrapped in MULTI/EXEC.
    pub fn propagate_atomic(&mut self, cmds: Vec<Vec<Bytes>>) {
        self.rewrite = Some(cmds);
        self.rewrite_atomic = true;
    }
}

/// Looks `key` up for a read that needs a `T`: `Ok(true)` when it exists,
/// `Ok(false)` when missing, WRONGTYPE otherwise (counts a hit or miss).
pub fn check<T: Typed>(ctx: &mut Ctx, key: &[u8]) -> Result<bool, Reply> {
    match ctx.shard.lookup_read(ctx.db, key, ctx.now_ms) {
        None => Ok(false),
        Some(e) if T::of(&e.value).is_some() => Ok(true),
        Some(_) => Err(Reply::err(error::WRONGTYPE)),
    }
}

/// The `T` at `key`, after [`check`] has run (no expiry check, no stats).
pub fn peek<'a, T: Typed>(ctx: &'a Ctx, key: &[u8]) -> Option<&'a T> {
    T::of(&ctx.shard.dbs[ctx.db].get(key)?.value)
}

/// Looks `key` up for a write: `Ok(None)` when missing, WRONGTYPE when it
/// holds another type.
pub fn write<'a, T: Typed>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut T>, Reply> {
    match ctx.shard.lookup_write(ctx.db, key, ctx.now_ms) {
        None => Ok(None),
        Some(e) => match T::of_mut(&mut e.value) {
            Some(v) => Ok(Some(v)),
            None => Err(Reply::err(error::WRONGTYPE)),
        },
    }
}

/// Deletes `key` when its collection became empty (an empty collection
/// never stays in the keyspace).
pub fn drop_if_empty(ctx: &mut Ctx, key: &[u8]) -> bool {
    if ctx.shard.dbs[ctx.db]
        .get(key)
        .is_some_and(|e| e.value.is_empty())
    {
        ctx.shard.remove(ctx.db, key);
        return true;
    }
    false
}

/// [`drop_if_empty`], and Redis's `del` event when it dropped the key.
pub fn drop_if_empty_notify(ctx: &mut Ctx, key: &[u8]) {
    if drop_if_empty(ctx, key) {
        ctx.notify(crate::notify::GENERIC, "del", key);
    }
}

/// The whole command table, indexed by lowercase name.
pub struct Registry {
    by_name: HashMap<&'static str, &'static Spec>,
    all: Vec<&'static Spec>,
}

impl Registry {
    fn build() -> Registry {
        let families: &[&'static [Spec]] = &[
            string::COMMANDS,
            keys::COMMANDS,
            dump::COMMANDS,
            list::COMMANDS,
            hash::COMMANDS,
            hll::COMMANDS,
            set::COMMANDS,
            sort::COMMANDS,
            lolwut::COMMANDS,
            zset::COMMANDS,
            script::COMMANDS,
            geo::COMMANDS,
            stream::COMMANDS,
            server::COMMANDS,
            connection::COMMANDS,
        ];
        let mut by_name = HashMap::new();
        let mut all = Vec::new();
        for fam in families {
            for spec in fam.iter() {
                let dup = by_name.insert(spec.name, spec);
                assert!(dup.is_none(), "command {} registered twice", spec.name);
                assert_eq!(spec.name, spec.name.to_ascii_lowercase());
                assert!(
                    spec.has(flags::NODE) || spec.handler.is_some(),
                    "{}",
                    spec.name
                );
                all.push(spec);
            }
        }
        all.sort_by_key(|s| s.name);
        Registry { by_name, all }
    }

    /// Finds a command by name, any case, without allocating. The
    /// thread's last find is tried first: a pipeline mostly repeats one
    /// command, and a command crossing cores is looked up where it is
    /// routed and where it runs.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Spec> {
        thread_local! {
            static LAST: Cell<Option<&'static Spec>> = const { Cell::new(None) };
        }
        if let Some(s) = LAST.with(Cell::get) {
            if s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name) {
                return Some(s);
            }
        }
        let mut buf = [0u8; 32];
        if name.len() > buf.len() {
            return None;
        }
        for (d, s) in buf.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        let lower = std::str::from_utf8(&buf[..name.len()]).ok()?;
        let found = self.by_name.get(lower).copied();
        if found.is_some() {
            LAST.with(|l| l.set(found));
        }
        found
    }

    /// Every command, sorted by name.
    pub fn all(&self) -> &[&'static Spec] {
        &self.all
    }
}

/// The process-wide command table.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(Registry::build)
}

/// Runs `spec` on the shard in `ctx` and logs the write it made, if any.
/// Arity has been checked by the caller.
pub fn execute(spec: &Spec, ctx: &mut Ctx) -> Reply {
    let Some(handler) = spec.handler else {
        return Reply::err("ERR this command is handled by the node");
    };
    if spec.has(flags::WRITE) && ctx.shard.snapshot_active() {
        // Copy-on-write for a snapshot in progress: the slots this write
        // touches are serialised first; a keyless write (FLUSHALL,
        // FLUSHDB, SWAPDB) finishes the snapshot first.
        let mut idx = Vec::new();
        if spec.key_indices(&ctx.args, &mut idx).is_ok() && !idx.is_empty() {
            for i in idx {
                if i < ctx.args.len() {
                    ctx.shard.before_write(ctx.args.get(i));
                }
            }
        } else {
            ctx.shard.snapshot_all();
        }
    }
    let dirty_before = ctx.shard.dirty;
    let reply = handler(ctx);
    if ctx.shard.dirty != dirty_before && ctx.shard.log_enabled() && !spec.has(flags::SELF_LOGGED) {
        let db = ctx.db;
        match ctx.rewrite.take() {
            Some(cmds) => {
                // Several commands from one call replay all or none, as
                // Redis 7.0 wraps them (`propagatePendingCommands`).
                let wrap = ctx.rewrite_atomic
                    && cmds.len() > 1
                    && ctx.shard.write_log().is_some_and(|l| !l.in_multi());
                let mark = match ctx.shard.write_log() {
                    Some(l) if wrap => Some(l.begin_multi(None)),
                    _ => None,
                };
                for argv in cmds {
                    ctx.shard.log_write(db, || argv);
                }
                if let (Some(mark), Some(l)) = (mark, ctx.shard.write_log()) {
                    l.end_multi(mark, false);
                }
            }
            None => {
                let args = ctx.args;
                ctx.shard.log_args(db, &args);
            }
        }
    }
    reply
}

/// Runs a command given as separate arguments (tests, tools): looks it up,
/// checks arity, executes.
pub fn run(shard: &mut Shard, db: usize, now_ms: i64, argv: &[&[u8]]) -> Reply {
    let owned = crate::args::OwnedArgs::from_iter(argv.iter().copied());
    let args = owned.as_args();
    let Some(spec) = registry().lookup(args.get(0)) else {
        return Reply::Error(error::unknown_command(args.get(0), args.iter_from(1)).into());
    };
    if let Err(e) = spec.check_args(&args) {
        return e;
    }
    let mut ctx = Ctx::new(shard, db, now_ms, args);
    execute(spec, &mut ctx)
}

/// Test helper: runs a command written as one space-separated string.
#[cfg(test)]
pub fn t(shard: &mut Shard, now_ms: i64, cmd: &str) -> Reply {
    let parts: Vec<&[u8]> = cmd.split(' ').map(|p| p.as_bytes()).collect();
    run(shard, 0, now_ms, &parts)
}

/// Test helper: a bulk-string reply.
#[cfg(test)]
pub fn bulk(s: &str) -> Reply {
    Reply::bulk(s.as_bytes())
}

/// Test helper: an error reply.
#[cfg(test)]
pub fn err(s: &str) -> Reply {
    Reply::err(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_after_a_name_of_the_same_length_finds_its_own() {
        let reg = registry();
        let name = |n: &[u8]| reg.lookup(n).map(|s| s.name);
        assert_eq!(name(b"get"), Some("get"));
        assert_eq!(name(b"SET"), Some("set"));
        assert_eq!(name(b"sEt"), Some("set"));
        assert_eq!(name(b"gex"), None);
        assert_eq!(name(b"set"), Some("set"));
        assert_eq!(name(b"se"), None);
        assert_eq!(name(b"setx"), None);
        assert_eq!(name(b"GET"), Some("get"));
    }

    #[test]
    fn table_is_consistent() {
        let reg = registry();
        assert!(reg.lookup(b"GET").is_some());
        assert!(reg.lookup(b"nosuchcommand").is_none());
        for spec in reg.all() {
            assert!(spec.arity != 0, "{}", spec.name);
            if spec.first_key > 0 {
                assert!(spec.step > 0, "{}", spec.name);
            }
        }
    }
}
