//! DEBUG: SLEEP, SET-ACTIVE-EXPIRE, OBJECT, DIGEST, DIGEST-VALUE,
//! POPULATE, RELOAD and LOADAOF (gated by `enable-debug-command` in
//! `dispatch`).
//!
//! RELOAD and LOADAOF run as a task on the asking core: the save is the
//! ordinary fork-less snapshot, the files are read back on a thread
//! (`persist::reload`), then every core replaces its keyspace with the
//! keys of its slots (`Request::Replace`), logging nothing. Unlike Redis,
//! which blocks, slotd serves its other clients meanwhile: a write another
//! client makes between the read and the replace is not in memory
//! afterwards (it is in the files for LOADAOF).

use super::dispatch::{spawn, Next};
use crate::io::{Key, Wait};
use crate::mesh::{AdminQuery, Request, Response, Rpc, TaskDone};
use crate::persist::{self, reload};
use crate::shard::Shard;
use bytes::Bytes;
use engine::digest::{self, Digest};
use engine::{error, Args, Reply};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn ok(shard: &mut Shard, key: Key, r: Reply) -> Next {
    shard.reply(key, &r);
    Next::Continue
}

/// Redis's reply when DEBUG RELOAD cannot read the file back.
const RDB_LOAD_FAILED: &str = "ERR Error trying to load the RDB dump";
/// Redis's (7.2) reply when DEBUG LOADAOF cannot load the files.
const AOF_LOAD_FAILED: &str = "ERR Error trying to load the AOF files, check server logs.";

/// Runs DEBUG.
pub fn debug(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    match sub.as_str() {
        "sleep" if args.len() == 3 => {
            let secs = engine::args::parse_float(args.get(2))
                .unwrap_or(0.0)
                .clamp(0.0, 3600.0);
            // DEBUG SLEEP blocks the server in Redis; here it blocks this core.
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            ok(shard, key, Reply::Ok)
        }
        "set-active-expire" if args.len() == 3 => {
            let on = engine::resp::parse_i64(args.get(2)).is_some_and(|v| v != 0);
            shard.shared.active_expire.store(on, Ordering::Relaxed);
            ok(shard, key, Reply::Ok)
        }
        "object" if args.len() == 3 => object(shard, key, &args),
        "digest" if args.len() == 2 => {
            let rpc = shard.rpc.clone();
            spawn(shard, key, async move {
                let parts: Vec<Vec<Option<Digest>>> = rpc
                    .call_all(|_| Request::Digest)
                    .await
                    .into_iter()
                    .map(|r| match r {
                        Response::Digests(d) => d,
                        _ => Vec::new(),
                    })
                    .collect();
                let d = digest::combine(parts.iter().map(|p| &p[..]));
                TaskDone::reply(key, Reply::status(digest::hex(&d)))
            })
        }
        "digest-value" => digest_value(shard, key, &args),
        "populate" if (3..=5).contains(&args.len()) => populate(shard, key, &args),
        "reload" => reload_rdb(shard, key, &args),
        "loadaof" if args.len() == 2 => load_aof(shard, key),
        _ => {
            let e = error::subcommand_syntax(args.get(1), "debug");
            ok(shard, key, Reply::Error(e.into()))
        }
    }
}

/// DEBUG POPULATE count [prefix] [size]: every core adds its share of the
/// keys (`engine::cmd::server::populate`).
fn populate(shard: &mut Shard, key: Key, args: &Args) -> Next {
    const RANGE: &str = "ERR value is out of range, must be positive";
    let positive = |i: usize| engine::resp::parse_i64(args.get(i)).filter(|v| *v >= 0);
    let Some(count) = positive(2) else {
        return ok(shard, key, Reply::err(RANGE));
    };
    let size = match args.len() {
        5 => match positive(4) {
            Some(s) => s as usize,
            None => return ok(shard, key, Reply::err(RANGE)),
        },
        _ => 0,
    };
    let prefix = match args.len() {
        3 => Bytes::from_static(b"key"),
        _ => Bytes::copy_from_slice(args.get(3)),
    };
    let db = shard.conns.get(key).map_or(0, |c| c.db);
    let rpc = shard.rpc.clone();
    spawn(shard, key, async move {
        rpc.call_all(|_| {
            Request::Admin(AdminQuery::Populate {
                db,
                count: count as u64,
                prefix: prefix.clone(),
                size,
            })
        })
        .await;
        TaskDone::reply(key, Reply::Ok)
    })
}

/// DEBUG OBJECT key.
fn object(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let k = Bytes::copy_from_slice(args.get(2));
    let owner = shard.mesh.slots.core_of(engine::slot::slot_of(&k));
    let db = shard.conns.get(key).map_or(0, |c| c.db);
    let rpc = shard.rpc.clone();
    let limits = shard.settings.encoding;
    if let Some(c) = shard.conns.get_mut(key) {
        c.wait = Wait::No;
    }
    spawn(shard, key, async move {
        let resp = rpc
            .call(
                owner,
                Request::Export {
                    db,
                    keys: vec![k],
                    tx: None,
                },
            )
            .await;
        let reply = match resp {
            Response::Entries(mut e) => match e.pop().and_then(|(_, v)| v) {
                Some((v, _)) => Reply::status(format!(
                    "Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:0 lru_seconds_idle:0",
                    v.encoding_name(&limits),
                    v.len()
                )),
                None => Reply::err("ERR no such key"),
            },
            _ => Reply::err("ERR no such key"),
        };
        TaskDone::reply(key, reply)
    })
}

/// DEBUG DIGEST-VALUE [key ...]: each key's value digest in the
/// connection's database (zeros for a missing key), asked of its owner.
fn digest_value(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let db = shard.conns.get(key).map_or(0, |c| c.db);
    let keys: Vec<Bytes> = args.iter_from(2).map(Bytes::copy_from_slice).collect();
    let mut by_core: Vec<Vec<usize>> = vec![Vec::new(); shard.cores];
    for (i, k) in keys.iter().enumerate() {
        by_core[shard.mesh.slots.core_of(engine::slot::slot_of(k))].push(i);
    }
    let rpc = shard.rpc.clone();
    spawn(shard, key, async move {
        let calls: Vec<_> = by_core
            .into_iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(c, idx)| {
                let ks = idx.iter().map(|&i| keys[i].clone()).collect();
                (idx, rpc.call(c, Request::DigestValues { db, keys: ks }))
            })
            .collect();
        let mut out = vec![[0u8; 20]; keys.len()];
        for (idx, call) in calls {
            if let Response::Digests(d) = call.await {
                for (i, v) in idx.into_iter().zip(d) {
                    out[i] = v.unwrap_or_default();
                }
            }
        }
        let replies = out.iter().map(|d| Reply::status(digest::hex(d))).collect();
        TaskDone::reply(key, Reply::Array(replies))
    })
}

/// What a reload needs from the shard, moved into its task.
struct Ctx {
    shared: Arc<crate::shared::Shared>,
    persist: Arc<persist::State>,
    mesh: Arc<crate::mesh::Mesh>,
    rpc: Rc<Rpc>,
    me: usize,
    databases: usize,
    limits: engine::value::EncodingLimits,
}

impl Ctx {
    fn of(shard: &Shard) -> Ctx {
        Ctx {
            shared: shard.shared.clone(),
            persist: shard.persist.clone(),
            mesh: shard.mesh.clone(),
            rpc: shard.rpc.clone(),
            me: shard.id,
            databases: shard.settings.databases,
            limits: shard.settings.encoding,
        }
    }

    /// Saves the RDB file now (Redis's synchronous `rdbSave`): after the
    /// snapshot or rewrite in progress, if any.
    async fn save(&self) -> Result<(), String> {
        loop {
            match persist::start(
                &self.shared,
                &self.persist,
                &self.mesh,
                crate::config::REDIS_VERSION,
                None,
            ) {
                Ok(job) => return persist::Outcome { job, core: self.me }.await,
                Err(()) => self.finish_job().await?,
            }
        }
    }

    /// Waits for the snapshot or rewrite in progress to end.
    async fn finish_job(&self) -> Result<(), String> {
        let Some(job) = self.persist.job() else {
            return Err("a snapshot is starting".into());
        };
        let _ = persist::Outcome { job, core: self.me }.await;
        Ok(())
    }

    /// Runs `read` on a thread, then hands every core its keys.
    async fn read_and_replace(
        &self,
        name: &str,
        flush: bool,
        lazy: bool,
        read: impl FnOnce() -> Result<reload::PerCore, ()> + Send + 'static,
    ) -> bool {
        let per_core = match reload::off_core(&self.mesh, self.me, name, read) {
            Ok(f) => f.await,
            Err(e) => {
                crate::log::warning(format_args!("{e}"));
                None
            }
        };
        let Some(Ok(per_core)) = per_core else {
            return false;
        };
        let calls: Vec<_> = per_core
            .into_iter()
            .enumerate()
            .map(|(c, entries)| {
                self.rpc.call(
                    c,
                    Request::Replace {
                        entries,
                        flush,
                        lazy,
                    },
                )
            })
            .collect();
        for call in calls {
            call.await;
        }
        true
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE] (Redis 7.0): saves the RDB
/// file, empties the keyspace and loads the file back. A key of the file
/// replaces the one held under NOFLUSH, MERGE or not (Redis 7.0 stops on
/// such a duplicate without MERGE).
fn reload_rdb(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let (mut save, mut flush) = (true, true);
    for opt in args.iter_from(2) {
        if opt.eq_ignore_ascii_case(b"merge") {
            // Duplicates replace the key held in every case here.
        } else if opt.eq_ignore_ascii_case(b"noflush") {
            flush = false;
        } else if opt.eq_ignore_ascii_case(b"nosave") {
            save = false;
        } else {
            return ok(
                shard,
                key,
                Reply::err("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options."),
            );
        }
    }
    let path = shard.shared.config.lock().ok().map(|c| {
        std::path::Path::new(&c.dir())
            .join(c.text("dbfilename").unwrap_or_else(|| "dump.rdb".into()))
    });
    let Some(path) = path else {
        return ok(shard, key, Reply::err("ERR config unavailable"));
    };
    let cx = Ctx::of(shard);
    spawn(shard, key, async move {
        if save {
            if let Err(e) = cx.save().await {
                crate::log::warning(format_args!("DEBUG RELOAD: {e}"));
                // Redis answers its shared "-ERR" when rdbSave fails.
                return TaskDone::reply(key, Reply::err("ERR"));
            }
        }
        let (mesh, dbs, lim) = (cx.mesh.clone(), cx.databases, cx.limits);
        let read = move || reload::read_rdb(&path, &mesh.slots, dbs, &lim);
        if !cx
            .read_and_replace("debug-reload", flush, false, read)
            .await
        {
            return TaskDone::reply(key, Reply::err(RDB_LOAD_FAILED));
        }
        crate::log::warning(format_args!("DB reloaded by DEBUG RELOAD"));
        TaskDone::reply(key, Reply::Ok)
    })
}

/// A replica's full resynchronization, sent by the link on the master
/// client once the master's RDB is on disk (`replica::LOAD_COMMAND
/// <path>`): the keyspace is replaced by the file's keys, after every
/// command received before it and before any after it. With the AOF on,
/// a rewrite follows, so the files hold the new data (Redis restarts its
/// AOF the same way).
pub fn replica_load(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let feed = shard.conns.get(key).map_or(0, |c| c.feed);
    let repl = shard.replication.clone();
    if !repl.start_load(feed) {
        // A promotion or another link came first: the node keeps its data
        // and history.
        crate::log::warning(format_args!(
            "MASTER <-> REPLICA sync: the link ended before the master's RDB was loaded: not loaded"
        ));
        shard.reply(key, &Reply::Ok);
        return Next::Continue;
    }
    let path = std::path::PathBuf::from(String::from_utf8_lossy(args.get(1)).into_owned());
    crate::log::notice(format_args!("MASTER <-> REPLICA sync: Flushing old data"));
    let cx = Ctx::of(shard);
    let path2 = path.clone();
    // (Ended however the task ends, cancelled with its client too, before
    // its first poll as well.)
    struct Running(std::sync::Arc<crate::replica::Replication>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.end_load();
        }
    }
    let running = Running(repl);
    spawn(shard, key, async move {
        let _running = running;
        crate::log::notice(format_args!(
            "MASTER <-> REPLICA sync: Loading DB in memory"
        ));
        let (mesh, dbs, lim) = (cx.mesh.clone(), cx.databases, cx.limits);
        let read = move || reload::read_rdb(&path, &mesh.slots, dbs, &lim);
        let lazy = cx
            .shared
            .config
            .lock()
            .is_ok_and(|c| c.flag("replica-lazy-flush"));
        if !cx.read_and_replace("replica-load", true, lazy, read).await {
            crate::log::warning(format_args!(
                "Failed trying to load the MASTER synchronization DB from disk"
            ));
            // The link waits for this load and starts over.
            cx.shared
                .master_load_failed
                .store(feed, std::sync::atomic::Ordering::Release);
            return TaskDone::reply(key, Reply::err(RDB_LOAD_FAILED));
        }
        crate::log::notice(format_args!(
            "MASTER <-> REPLICA sync: Finished with success"
        ));
        // `rdb-del-sync-files`: without persistence the file was only the
        // transfer's (Redis's `bg_unlink` of it).
        // (A diskless load's file is in memory.)
        let on_disk = !path2.starts_with("/proc/self/fd");
        let del = on_disk
            && cx.shared.config.lock().is_ok_and(|c| {
                c.flag("rdb-del-sync-files")
                    && !c.flag("appendonly")
                    && c.text("save")
                        .is_some_and(|t| persist::Rules::parse(&t).0.is_empty())
            });
        if del {
            crate::log::notice(format_args!(
                "Removing the RDB file obtained from the master. This replica has persistence disabled"
            ));
            let _ = std::fs::remove_file(&path2);
        }
        if cx.persist.aof.on.load(Ordering::SeqCst) {
            if let Err(e) = persist::start_rewrite(&cx.shared, &cx.persist, &cx.mesh, false) {
                crate::log::warning(format_args!(
                    "Failed enabling the AOF after successful master synchronization! {e}"
                ));
            }
        }
        TaskDone::reply(key, Reply::Ok)
    })
}

/// DEBUG LOADAOF: every core's AOF fsynced, the keyspace emptied and the
/// append-only directory loaded back. With `appendonly no` redis-server
/// 7.0 empties its data and exits; slotd keeps its data and answers
/// later Redis versions' error.
fn load_aof(shard: &mut Shard, key: Key) -> Next {
    if !shard.persist.aof.on.load(Ordering::SeqCst) {
        crate::log::warning(format_args!(
            "DEBUG LOADAOF: there is no AOF to load (appendonly is no)"
        ));
        return ok(shard, key, Reply::err(AOF_LOAD_FAILED));
    }
    let cx = Ctx::of(shard);
    spawn(shard, key, async move {
        // A rewrite changes the manifest and deletes files: let it end.
        while cx.persist.aof.rewrite.in_progress.load(Ordering::SeqCst) {
            if cx.finish_job().await.is_err() {
                break;
            }
        }
        let offsets: Vec<i64> = cx
            .rpc
            .call_all(|_| Request::Admin(AdminQuery::LogOffset))
            .await
            .into_iter()
            .map(|r| match r {
                Response::Count(n) => n,
                _ => -1,
            })
            .collect();
        let (mesh, dbs, lim) = (cx.mesh.clone(), cx.databases, cx.limits);
        let state = cx.persist.clone();
        let read = move || reload::read_aof(&state.aof, &offsets, &mesh.slots, dbs, &lim);
        if !cx
            .read_and_replace("debug-loadaof", true, false, read)
            .await
        {
            return TaskDone::reply(key, Reply::err(AOF_LOAD_FAILED));
        }
        crate::log::warning(format_args!("Append Only File loaded by DEBUG LOADAOF"));
        TaskDone::reply(key, Reply::Ok)
    })
}
