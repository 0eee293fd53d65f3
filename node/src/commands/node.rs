//! Commands the node implements: connection state, transactions, pub/sub,
//! and questions about the whole server (INFO, CONFIG, CLIENT, COMMAND).

use super::dispatch::{spawn, Next};
use crate::io::Key;
use crate::mesh::{
    flows, parse_db, AdminQuery, ClientType, KillFilter, Request, Response, TaskDone,
};
use crate::shard::pubsub::{self, Kind};
use crate::shard::Shard;
use bytes::Bytes;
use engine::cmd::Spec;
use engine::{error, Args, Reply};
use std::sync::atomic::Ordering;

/// The Redis version slotd reports, for tools that check it.
pub const REDIS_VERSION: &str = "7.0.15";

fn ok(shard: &mut Shard, key: Key, r: Reply) -> Next {
    shard.reply(key, &r);
    Next::Continue
}

fn bulks(args: &Args, from: usize) -> Vec<Bytes> {
    args.iter_from(from).map(Bytes::copy_from_slice).collect()
}

/// Runs a NODE command.
pub fn run(shard: &mut Shard, key: Key, spec: &'static Spec, args: Args) -> Next {
    let Some(conn) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    let db = conn.db;
    match spec.name {
        "select" => match parse_db(args.get(1), shard.settings.databases) {
            Ok(d) if d != 0 && shard.cluster.is_some() => ok(
                shard,
                key,
                Reply::err("ERR SELECT is not allowed in cluster mode"),
            ),
            Ok(d) => {
                conn.db = d;
                ok(shard, key, Reply::Ok)
            }
            Err(e) => ok(shard, key, e),
        },
        "quit" => {
            conn.close_after_flush = true;
            ok(shard, key, Reply::Ok)
        }
        "auth" => {
            let (user, pass) = if args.len() == 2 {
                // The old form's error when the default user needs no
                // password, as Redis keeps it.
                if shard.settings.requirepass.is_none() {
                    return ok(shard, key, Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
                }
                (&b"default"[..], args.get(1))
            } else if args.len() == 3 {
                (args.get(1), args.get(2))
            } else {
                return ok(shard, key, Reply::err(error::SYNTAX));
            };
            let r = auth(shard, key, user, pass);
            ok(shard, key, r)
        }
        "hello" => hello(shard, key, args),
        "reset" => {
            let watches = std::mem::take(&mut conn.watches);
            conn.multi = None;
            conn.multi_failed = false;
            conn.db = 0;
            conn.resp3 = false;
            conn.name = None;
            conn.authed = shard.settings.requirepass.is_none();
            conn.asking = false;
            conn.readonly = false;
            conn.reply_off = false;
            conn.skip_next = false;
            conn.mute = false;
            shard.unwatch_all(watches);
            shard.tracking_off(key);
            shard.monitor_stop(key);
            for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
                silent_unsubscribe(shard, key, kind);
            }
            ok(shard, key, Reply::status("RESET"))
        }
        "multi" => {
            if conn.multi.is_some() {
                return ok(shard, key, Reply::err("ERR MULTI calls can not be nested"));
            }
            conn.multi = Some(Vec::new());
            conn.multi_failed = false;
            ok(shard, key, Reply::Ok)
        }
        "discard" => {
            if conn.multi.take().is_none() {
                return ok(shard, key, Reply::err("ERR DISCARD without MULTI"));
            }
            let watches = std::mem::take(&mut conn.watches);
            shard.unwatch_all(watches);
            ok(shard, key, Reply::Ok)
        }
        "exec" => {
            let Some(cmds) = conn.multi.take() else {
                return ok(shard, key, Reply::err("ERR EXEC without MULTI"));
            };
            let failed = std::mem::take(&mut conn.multi_failed);
            let watches = std::mem::take(&mut conn.watches);
            if failed {
                shard.unwatch_all(watches);
                return ok(
                    shard,
                    key,
                    Reply::err("EXECABORT Transaction discarded because of previous errors."),
                );
            }
            let rpc = shard.rpc.clone();
            let bus = shard.bus.clone();
            let at = (shard.settings.databases, shard.scripts_read_only());
            let form = super::dispatch::form_sink(shard);
            spawn(shard, key, async move {
                flows::exec(rpc, bus, db, cmds, watches, at, key, form).await
            })
        }
        "watch" => {
            if conn.multi.is_some() {
                return ok(
                    shard,
                    key,
                    Reply::err("ERR WATCH inside MULTI is not allowed"),
                );
            }
            let rpc = shard.rpc.clone();
            let keys = bulks(&args, 1);
            spawn(
                shard,
                key,
                async move { flows::watch(rpc, db, keys, key).await },
            )
        }
        "unwatch" => {
            let watches = std::mem::take(&mut conn.watches);
            shard.unwatch_all(watches);
            ok(shard, key, Reply::Ok)
        }
        "subscribe" => sub(shard, key, Kind::Channel, &args, true),
        "psubscribe" => sub(shard, key, Kind::Pattern, &args, true),
        "ssubscribe" => sub(shard, key, Kind::Shard, &args, true),
        "unsubscribe" => sub(shard, key, Kind::Channel, &args, false),
        "punsubscribe" => sub(shard, key, Kind::Pattern, &args, false),
        "sunsubscribe" => sub(shard, key, Kind::Shard, &args, false),
        "publish" | "spublish" => {
            let rpc = shard.rpc.clone();
            let (ch, msg) = (
                Bytes::copy_from_slice(args.get(1)),
                Bytes::copy_from_slice(args.get(2)),
            );
            let sharded = spec.name == "spublish";
            if let Some(bus) = &shard.bus {
                bus.forward_publish(&ch, &msg, sharded);
            }
            // Standalone, Redis propagates it to the replicas (not to the
            // AOF): their subscribers get the message too.
            if shard.cluster.is_none() && shard.replication.stream().active() {
                shard.take_log();
                let mut bytes = Vec::new();
                let n = db.to_string();
                engine::writelog::encode(&mut bytes, [&b"SELECT"[..], n.as_bytes()].into_iter());
                engine::writelog::encode(&mut bytes, args.iter());
                shard.replication.stream().push(bytes, None);
            }
            spawn(shard, key, async move {
                flows::publish(rpc, ch, msg, sharded, key).await
            })
        }
        "pubsub" => pubsub_cmd(shard, key, args),
        "time" => ok(shard, key, crate::shared::time_reply()),
        "lastsave" => {
            let t = shard.shared.lastsave_s.load(Ordering::Relaxed);
            ok(shard, key, Reply::Int(t))
        }
        "save" | "bgsave" => save(shard, key, args),
        "bgrewriteaof" => {
            let r =
                crate::persist::start_rewrite(&shard.shared, &shard.persist, &shard.mesh, false);
            let reply = match r {
                Ok(Some(_)) => {
                    Reply::Status("Background append only file rewriting started".into())
                }
                Ok(None) => Reply::Status("Background append only file rewriting scheduled".into()),
                Err(e) => Reply::err(e),
            };
            ok(shard, key, reply)
        }
        "client" => client(shard, key, args),
        "replicaof" | "slaveof" => replicaof(shard, key, &args),
        "replconf" => super::sync::replconf(shard, key, args),
        "sync" | "psync" => super::sync::sync(shard, key, args),
        "role" => {
            let r = role(&shard.replication.status());
            ok(shard, key, r)
        }
        "command" => ok(shard, key, command(&args)),
        "slowlog" => super::observe::slowlog(shard, key, args),
        "monitor" => super::observe::monitor(shard, key),
        "config" => config(shard, key, args),
        "info" => {
            let rpc = shard.rpc.clone();
            let shared = shard.shared.clone();
            let persist = shard.persist.clone();
            let repl = shard.replication.status();
            let sections: Vec<String> = args
                .iter_from(1)
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect();
            spawn(shard, key, async move {
                let text = super::info::gather(&rpc, &shared, &persist, &repl, &sections).await;
                TaskDone {
                    conn: key,
                    replies: vec![Reply::Verbatim(Bytes::from(text))],
                    effects: Vec::new(),
                    encoded: engine::Encoded::default(),
                }
            })
        }
        "shutdown" => {
            let save = match shutdown_flags(&args) {
                Ok(s) => s,
                Err(e) => return ok(shard, key, e),
            };
            crate::log::warning(format_args!("User requested shutdown..."));
            // Redis 7.0: SAVE saves, NOSAVE does not, neither saves when
            // save rules exist.
            let save = save.unwrap_or_else(|| !shard.save_rules().0.is_empty());
            if save {
                crate::log::notice(format_args!(
                    "Saving the final RDB snapshot before exiting."
                ));
                let (rpc, cores, me) = (shard.rpc.clone(), shard.cores, shard.id);
                let (shared, persist, mesh) = (
                    shard.shared.clone(),
                    shard.persist.clone(),
                    shard.mesh.clone(),
                );
                let (repl, repl2) = (shard.replication.clone(), shard.replication.clone());
                // A replica first runs what its master sent (off the core:
                // its master client may be this core's), so the file records
                // where it got in the master's stream.
                let ended = crate::persist::reload::off_core(&mesh, me, "replica-end", move || {
                    repl.end_for_shutdown()
                });
                if let Ok(ended) = ended {
                    return spawn(shard, key, async move {
                        let from = ended.await.flatten();
                        let job = match crate::persist::start_known(&shared, &persist, &mesh, from)
                        {
                            Ok(j) => {
                                crate::log::notice(format_args!("Background saving started"));
                                Some(j)
                            }
                            Err(()) => persist.job(),
                        };
                        let r = match job {
                            Some(job) => crate::persist::Outcome { job, core: me }.await,
                            None => Err(String::new()),
                        };
                        let mut replies = Vec::new();
                        match r {
                            Ok(()) => {
                                shared.shutdown.store(true, Ordering::SeqCst);
                                for c in 0..cores {
                                    rpc.tell(c, Request::Admin(AdminQuery::Shutdown));
                                }
                            }
                            Err(_) => {
                                crate::log::warning(format_args!(
                                    "Error trying to save the DB, can't exit."
                                ));
                                repl2.shutdown_failed();
                                replies
                                    .push(Reply::err("ERR Errors trying to SHUTDOWN. Check logs."));
                            }
                        }
                        TaskDone {
                            conn: key,
                            replies,
                            effects: Vec::new(),
                            encoded: Default::default(),
                        }
                    });
                }
            }
            shard.shared.shutdown.store(true, Ordering::SeqCst);
            for c in 0..shard.cores {
                shard.rpc.tell(c, Request::Admin(AdminQuery::Shutdown));
            }
            Next::Wait
        }
        "debug" => super::debug::debug(shard, key, args),
        "cluster" | "readonly" | "readwrite" | "asking" if shard.cluster.is_none() => ok(
            shard,
            key,
            Reply::err("ERR This instance has cluster support disabled"),
        ),
        "readonly" | "readwrite" => {
            conn.readonly = spec.name == "readonly";
            ok(shard, key, Reply::Ok)
        }
        "asking" => {
            conn.asking = true;
            ok(shard, key, Reply::Ok)
        }
        "cluster" => super::cluster::run(shard, key, args),
        "migrate" => match engine::cmd::dump::Migrate::parse(&args) {
            Err(e) => ok(shard, key, e),
            Ok(m) => {
                let rpc = shard.rpc.clone();
                let cluster = shard.cluster.is_some();
                super::dispatch::spawn_detached(shard, key, async move {
                    crate::mesh::migrate::migrate(rpc, db, m, cluster, key).await
                })
            }
        },
        _ => ok(
            shard,
            key,
            Reply::Error(error::unknown_command(args.get(0), args.iter_from(1)).into()),
        ),
    }
}

/// Checks SHUTDOWN's flags as Redis 7.0 does: `Some(true)` for SAVE,
/// `Some(false)` for NOSAVE (NOW and FORCE are honoured by nature: no
/// replicas to wait for); ABORT finds no shutdown to abort (slotd's
/// shutdown does not wait).
fn shutdown_flags(args: &Args) -> Result<Option<bool>, Reply> {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for a in args.iter_from(1) {
        match String::from_utf8_lossy(a).to_ascii_lowercase().as_str() {
            "nosave" => nosave = true,
            "save" => save = true,
            "abort" => abort = true,
            "now" | "force" => other = true,
            _ => return Err(Reply::err(error::SYNTAX)),
        }
    }
    if (abort && (save || nosave || other)) || (save && nosave) {
        return Err(Reply::err(error::SYNTAX));
    }
    if abort {
        return Err(Reply::err("ERR No shutdown in progress."));
    }
    Ok(if save {
        Some(true)
    } else if nosave {
        Some(false)
    } else {
        None
    })
}

/// Applies the AOF's directives after a CONFIG SET (`appendfsync`,
/// `aof-timestamp-enabled`, `no-appendfsync-on-rewrite`) and `appendonly`:
/// turning the AOF on starts a rewrite that writes the base and opens
/// every core's file (as Redis's `startAppendOnly`); turning it off makes
/// every core write, fsync and close its file at its next cron.
fn aof_switch(shard: &mut Shard) -> Result<(), String> {
    let aof = &shard.persist.aof;
    let want = match shard.shared.config.lock() {
        Ok(c) => {
            aof.configure(&c);
            c.flag("appendonly")
        }
        Err(_) => return Ok(()),
    };
    let on = aof.on.load(Ordering::SeqCst) || aof.rewrite.in_progress.load(Ordering::SeqCst);
    if want && !on {
        crate::persist::start_rewrite(&shard.shared, &shard.persist, &shard.mesh, true)
            .map(|_| ())
            .inspect_err(|_| {
                crate::log::warning(format_args!(
                    "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error."
                ));
            })?;
    } else if !want && on {
        if aof.rewrite.in_progress.load(Ordering::SeqCst) {
            return Err(
                "ERR a background AOF rewrite is in progress: turn appendonly off once it ends"
                    .into(),
            );
        }
        aof.on.store(false, Ordering::SeqCst);
    }
    Ok(())
}

/// SAVE and BGSAVE [SCHEDULE]. Both take the same fork-less snapshot
/// (every core serialises its slots while serving; a writer thread writes
/// the file). SAVE answers once the file is in place; it blocks only its
/// client, not the server (docs/persistence.md).
fn save(shard: &mut Shard, key: Key, args: Args) -> Next {
    let bg = spec_is(&args, "bgsave");
    let schedule = match (bg, args.len()) {
        (_, 1) => false,
        (true, 2) if args.get(1).eq_ignore_ascii_case(b"schedule") => true,
        _ => return ok(shard, key, Reply::err(error::SYNTAX)),
    };
    match shard.background_save() {
        Ok(job) if !bg => {
            let me = shard.id;
            spawn(shard, key, async move {
                let reply = match (crate::persist::Outcome { job, core: me }).await {
                    Ok(()) => Reply::Ok,
                    Err(_) => Reply::err("ERR"),
                };
                TaskDone::reply(key, reply)
            })
        }
        Ok(_) => ok(
            shard,
            key,
            Reply::Status("Background saving started".into()),
        ),
        Err(()) if !bg => ok(
            shard,
            key,
            Reply::err("ERR Background save already in progress"),
        ),
        Err(()) if schedule => {
            shard.persist.scheduled.store(true, Ordering::Relaxed);
            ok(
                shard,
                key,
                Reply::Status("Background saving scheduled".into()),
            )
        }
        Err(()) => ok(shard, key, Reply::err(crate::persist::IN_PROGRESS)),
    }
}

fn spec_is(args: &Args, name: &str) -> bool {
    args.get(0).eq_ignore_ascii_case(name.as_bytes())
}

/// Authenticates `user` with `pass`: the one user is `default`, which
/// takes any password while `requirepass` is unset (Redis's `nopass`).
fn auth(shard: &mut Shard, key: Key, user: &[u8], pass: &[u8]) -> Reply {
    let expected = shard.settings.requirepass.as_deref();
    if user == b"default" && expected.is_none_or(|p| pass == p.as_bytes()) {
        if let Some(c) = shard.conns.get_mut(key) {
            c.authed = true;
        }
        Reply::Ok
    } else {
        Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn hello(shard: &mut Shard, key: Key, args: Args) -> Next {
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        match engine::resp::parse_i64(args.get(1)) {
            Some(v @ 2..=3) => proto = Some(v),
            Some(_) => {
                return ok(
                    shard,
                    key,
                    Reply::err("NOPROTO unsupported protocol version"),
                )
            }
            None => {
                return ok(
                    shard,
                    key,
                    Reply::err("ERR Protocol version is not an integer or out of range"),
                )
            }
        }
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        if args.is(i, "auth") && i + 2 < args.len() {
            let r = auth(shard, key, args.get(i + 1), args.get(i + 2));
            if r.is_error() {
                return ok(shard, key, r);
            }
            i += 3;
        } else if args.is(i, "setname") && i + 1 < args.len() {
            if !valid_name(args.get(i + 1)) {
                return ok(shard, key, Reply::err(BAD_NAME));
            }
            setname = Some(Bytes::copy_from_slice(args.get(i + 1)));
            i += 2;
        } else {
            let e = format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args.get(i))
            );
            return ok(shard, key, Reply::Error(e.into()));
        }
    }
    let Some(c) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if !c.authed {
        return ok(shard, key, Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
    }
    if let Some(p) = proto {
        c.resp3 = p == 3;
    }
    if setname.is_some() {
        c.name = setname;
    }
    let r = Reply::Map(vec![
        (Reply::bulk(b"server"), Reply::bulk(b"redis")),
        (
            Reply::bulk(b"version"),
            Reply::bulk(REDIS_VERSION.as_bytes()),
        ),
        (
            Reply::bulk(b"proto"),
            Reply::Int(if c.resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk(b"id"), Reply::Int(c.id as i64)),
        (Reply::bulk(b"mode"), Reply::bulk(b"standalone")),
        (Reply::bulk(b"role"), Reply::bulk(b"master")),
        (Reply::bulk(b"modules"), Reply::Array(Vec::new())),
    ]);
    ok(shard, key, r)
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn silent_unsubscribe(shard: &mut Shard, key: Key, kind: Kind) {
    let had = shard.conns.get(key).map_or(0, |c| match kind {
        Kind::Channel => c.subs.len(),
        Kind::Pattern => c.psubs.len(),
        Kind::Shard => c.ssubs.len(),
    });
    if had > 0 {
        let before = shard.conns.get(key).map_or(0, |c| c.out.len());
        pubsub::unsubscribe(shard, key, kind, Vec::new());
        if let Some(c) = shard.conns.get_mut(key) {
            c.out.truncate(before);
            c.out_big.retain(|&(at, _)| at < before);
        }
    }
}

fn sub(shard: &mut Shard, key: Key, kind: Kind, args: &Args, subscribe: bool) -> Next {
    if shard.conns.get(key).is_some_and(|c| c.multi.is_some()) {
        return ok(
            shard,
            key,
            Reply::err("ERR Command not allowed inside a transaction"),
        );
    }
    let names = bulks(args, 1);
    if subscribe {
        pubsub::subscribe(shard, key, kind, names);
    } else {
        pubsub::unsubscribe(shard, key, kind, names);
    }
    Next::Continue
}

fn pubsub_cmd(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let valid = match sub.as_str() {
        "channels" | "shardchannels" => args.len() <= 3,
        "numsub" | "shardnumsub" => true,
        "numpat" => args.len() == 2,
        "help" => {
            let lines = [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ];
            return ok(
                shard,
                key,
                Reply::Array(lines.iter().map(|l| Reply::status(*l)).collect()),
            );
        }
        _ => false,
    };
    if !valid {
        let e = error::subcommand_syntax(args.get(1), "pubsub");
        return ok(shard, key, Reply::Error(e.into()));
    }
    let rpc = shard.rpc.clone();
    let rest = bulks(&args, 2);
    spawn(shard, key, async move {
        let answers = rpc
            .call_all(|_| Request::PubsubQuery {
                sub: sub.clone(),
                args: rest.clone(),
            })
            .await;
        let mut parts = Vec::new();
        for answer in answers {
            if let Response::Replies(mut r) = answer {
                if let Some(Reply::Array(v)) = r.pop() {
                    parts.push(v);
                }
            }
        }
        let reply = match sub.as_str() {
            "numsub" | "shardnumsub" => {
                let mut out = Vec::new();
                for (i, ch) in rest.iter().enumerate() {
                    let n: i64 = parts
                        .iter()
                        .map(|p| {
                            if let Some(Reply::Int(n)) = p.get(i) {
                                *n
                            } else {
                                0
                            }
                        })
                        .sum();
                    out.push(Reply::Bulk(ch.clone()));
                    out.push(Reply::Int(n));
                }
                Reply::Array(out)
            }
            _ => {
                let mut all: Vec<Reply> = parts.into_iter().flatten().collect();
                all.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                all.dedup();
                if sub == "numpat" {
                    Reply::Int(all.len() as i64)
                } else {
                    Reply::Array(all)
                }
            }
        };
        TaskDone::reply(key, reply)
    })
}

fn client(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let Some(c) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    let id = c.id;
    match (sub.as_str(), args.len()) {
        ("id", 2) => ok(shard, key, Reply::Int(id as i64)),
        ("getname", 2) => {
            let r = c.name.clone().map_or(Reply::Nil, Reply::Bulk);
            ok(shard, key, r)
        }
        ("setname", 3) => {
            let n = args.get(2);
            if !valid_name(n) {
                return ok(shard, key, Reply::err(BAD_NAME));
            }
            c.name = (!n.is_empty()).then(|| Bytes::copy_from_slice(n));
            ok(shard, key, Reply::Ok)
        }
        ("info", 2) => {
            let line = c.info_line(crate::shared::now_ms());
            ok(shard, key, Reply::Verbatim(Bytes::from(line + "\n")))
        }
        ("help", 2) => ok(
            shard,
            key,
            super::observe::help(&args, super::observe::CLIENT_HELP),
        ),
        ("reply", 3) => super::observe::client_reply(shard, key, args.get(2)),
        ("unblock", 3 | 4) => super::observe::client_unblock(shard, key, args),
        ("unblock", n) if n > 4 => {
            let e = "ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP.";
            ok(shard, key, Reply::err(e))
        }
        ("no-evict", 3) if args.is(2, "on") || args.is(2, "off") => {
            c.no_evict = args.is(2, "on");
            ok(shard, key, Reply::Ok)
        }
        ("no-evict", 3) | ("no-touch", 3) => {
            if args.is(2, "on") || args.is(2, "off") {
                ok(shard, key, Reply::Ok)
            } else {
                ok(shard, key, Reply::err(error::SYNTAX))
            }
        }
        ("setinfo", 4) => ok(shard, key, Reply::Ok),
        ("tracking", n) if n >= 3 => super::tracking::tracking(shard, key, &args),
        ("caching", 3) => super::tracking::caching(shard, key, &args),
        ("getredir", 2) => super::tracking::getredir(shard, key),
        ("trackinginfo", 2) => super::tracking::trackinginfo(shard, key),
        ("pause", 3 | 4) => {
            let all = match args.len() {
                4 if args.is(3, "write") => false,
                4 if !args.is(3, "all") => {
                    let e = Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL");
                    return ok(shard, key, e);
                }
                _ => true,
            };
            let ms = match engine::resp::parse_i64(args.get(2)) {
                Some(t) if t < 0 => return ok(shard, key, Reply::err("ERR timeout is negative")),
                Some(t) => t,
                None => {
                    let e = Reply::err("ERR timeout is not an integer or out of range");
                    return ok(shard, key, e);
                }
            };
            // As Redis's `pauseClients`: the later end and the stricter
            // mode of this pause and one in force.
            let s = &shard.shared;
            // 0: no time to wait (Redis's timeout 0 leaves the end as it is).
            let end = match ms {
                0 => 0,
                _ => crate::shared::now_ms().saturating_add(ms),
            };
            let was = s.client_pause();
            s.client_pause_all
                .store(all || was == Some(true), Ordering::SeqCst);
            s.client_pause_until_ms.fetch_max(end, Ordering::SeqCst);
            ok(shard, key, Reply::Ok)
        }
        ("unpause", 2) => {
            shard
                .shared
                .client_pause_until_ms
                .store(0, Ordering::SeqCst);
            shard.shared.client_pause_all.store(false, Ordering::SeqCst);
            let rpc = shard.rpc.clone();
            spawn(shard, key, async move {
                rpc.call_all(|_| Request::Admin(AdminQuery::Unpause)).await;
                TaskDone::reply(key, Reply::Ok)
            })
        }
        ("list", n) if n >= 2 => {
            let mut ids = Vec::new();
            let mut kind = None;
            let mut i = 2;
            while i < n {
                if args.is(i, "id") {
                    for a in args.iter_from(i + 1) {
                        match engine::resp::parse_i64(a) {
                            Some(v) if v > 0 => ids.push(v as u64),
                            _ => return ok(shard, key, Reply::err("ERR Invalid client ID")),
                        }
                    }
                    break;
                } else if args.is(i, "type") && i + 1 < n {
                    match client_type(args.get(i + 1)) {
                        Ok(k) => kind = Some(k),
                        Err(e) => return ok(shard, key, e),
                    }
                    i += 2;
                } else {
                    return ok(shard, key, Reply::err(error::SYNTAX));
                }
            }
            let rpc = shard.rpc.clone();
            spawn(shard, key, async move {
                let answers = rpc
                    .call_all(|_| {
                        Request::Admin(AdminQuery::ClientList {
                            ids: ids.clone(),
                            kind,
                        })
                    })
                    .await;
                // In id order, as Redis lists its clients (a connection
                // that moved between cores keeps its place).
                let mut lines: Vec<(u64, &str)> = answers
                    .iter()
                    .filter_map(|a| match a {
                        Response::Lines(l) => Some(l.split_inclusive('\n')),
                        _ => None,
                    })
                    .flatten()
                    .map(|l| (client_line_id(l), l))
                    .collect();
                lines.sort_by_key(|&(id, _)| id);
                let s: String = lines.into_iter().map(|(_, l)| l).collect();
                TaskDone {
                    conn: key,
                    replies: vec![Reply::Verbatim(Bytes::from(s))],
                    effects: Vec::new(),
                    encoded: engine::Encoded::default(),
                }
            })
        }
        ("kill", n) if n >= 3 => {
            let mut f = KillFilter {
                caller: id,
                ..KillFilter::default()
            };
            let old_style = n == 3;
            if old_style {
                f.addr = Some(String::from_utf8_lossy(args.get(2)).into_owned());
            } else {
                f.skipme_id = Some(id);
                let mut i = 2;
                while i + 1 < n {
                    let v = String::from_utf8_lossy(args.get(i + 1)).into_owned();
                    if args.is(i, "id") {
                        match v.parse::<u64>() {
                            Ok(x) if x > 0 => f.id = Some(x),
                            _ => {
                                return ok(
                                    shard,
                                    key,
                                    Reply::err("ERR client-id should be greater than 0"),
                                )
                            }
                        }
                    } else if args.is(i, "addr") {
                        f.addr = Some(v);
                    } else if args.is(i, "laddr") {
                        f.laddr = Some(v);
                    } else if args.is(i, "skipme") {
                        if v.eq_ignore_ascii_case("no") {
                            f.skipme_id = None;
                        } else if !v.eq_ignore_ascii_case("yes") {
                            return ok(shard, key, Reply::err(error::SYNTAX));
                        }
                    } else if args.is(i, "type") {
                        match client_type(args.get(i + 1)) {
                            Ok(k) => f.kind = Some(k),
                            Err(e) => return ok(shard, key, e),
                        }
                    } else if args.is(i, "user") {
                        // Every client is `default`'s (the one ACL user).
                        if !args.is(i + 1, "default") {
                            let e = format!("ERR No such user '{v}'");
                            return ok(shard, key, Reply::Error(e.into()));
                        }
                    } else {
                        return ok(shard, key, Reply::err(error::SYNTAX));
                    }
                    i += 2;
                }
                if i != n {
                    return ok(shard, key, Reply::err(error::SYNTAX));
                }
            }
            let (rpc, repl, me) = (shard.rpc.clone(), shard.replication.clone(), shard.id);
            spawn(shard, key, async move {
                let answers = rpc
                    .call_all(|_| Request::Admin(AdminQuery::ClientKill { filter: f.clone() }))
                    .await;
                let mut total = 0;
                for answer in answers {
                    if let Response::Count(k) = answer {
                        total += k;
                    }
                }
                // The replicas' sockets are the master thread's.
                if repl.has_replicas_thread() && f.kind.is_none_or(|k| k == ClientType::Replica) {
                    let f = f.clone();
                    let resp = rpc
                        .call_outside(|id| {
                            repl.note(crate::replica::Note::Kill {
                                filter: f,
                                core: me,
                                id,
                            })
                        })
                        .await;
                    if let Response::Count(k) = resp {
                        total += k;
                    }
                }
                let reply = if old_style {
                    if total > 0 {
                        Reply::Ok
                    } else {
                        Reply::err("ERR No such client")
                    }
                } else {
                    Reply::Int(total)
                };
                TaskDone::reply(key, reply)
            })
        }
        // A subcommand slotd has, with a wrong number of arguments.
        (
            "pause" | "unpause" | "id" | "getname" | "setname" | "info" | "list" | "kill"
            | "tracking" | "caching" | "getredir" | "trackinginfo" | "help" | "reply" | "no-evict"
            | "unblock",
            _,
        ) => {
            let e = error::wrong_arity(&format!("client|{sub}"));
            ok(shard, key, Reply::Error(e.into()))
        }
        _ => {
            let e = error::unknown_subcommand(args.get(1), "client");
            ok(shard, key, Reply::Error(e.into()))
        }
    }
}

/// COMMAND [COUNT | INFO [name...] | LIST [FILTERBY ...] | DOCS [name...] |
/// GETKEYS cmd... | GETKEYSANDFLAGS cmd...], from Redis 7.0.15's command
/// metadata (`engine::cmd::meta`).
fn command(args: &Args) -> Reply {
    use engine::cmd::meta;
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let wrong = |n: &str| Reply::Error(error::wrong_arity(&format!("command|{n}")).into());
    match sub.as_str() {
        "" => meta::info_all(),
        "count" if args.len() != 2 => wrong("count"),
        "getkeys" | "getkeysandflags" if args.len() < 3 => wrong(&sub),
        "count" => Reply::Int(meta::count() as i64),
        "help" if args.len() == 2 => super::observe::help(args, super::observe::COMMAND_HELP),
        "list" => {
            let filter = match args.len() {
                2 => meta::Filter::None,
                5 if args.is(2, "filterby") => {
                    let arg = args.get(4);
                    if args.is(3, "module") {
                        meta::Filter::Module
                    } else if args.is(3, "aclcat") {
                        meta::Filter::AclCat(arg)
                    } else if args.is(3, "pattern") {
                        meta::Filter::Pattern(arg)
                    } else {
                        return Reply::err(error::SYNTAX);
                    }
                }
                _ => return Reply::err(error::SYNTAX),
            };
            meta::list(filter)
        }
        "info" if args.len() == 2 => meta::info_all(),
        "info" => meta::info(args.iter_from(2)),
        "docs" if args.len() == 2 => meta::docs(None::<std::iter::Empty<&[u8]>>),
        "docs" => meta::docs(Some(args.iter_from(2))),
        "getkeys" | "getkeysandflags" => {
            let rest = engine::OwnedArgs::from_iter(args.iter_from(2));
            meta::getkeys(&rest.as_args(), sub == "getkeysandflags")
        }
        _ => Reply::Error(error::unknown_subcommand(args.get(1), "command").into()),
    }
}

fn config(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    match sub.as_str() {
        "help" if args.len() == 2 => ok(
            shard,
            key,
            super::observe::help(&args, super::observe::CONFIG_HELP),
        ),
        "get" if args.len() >= 3 => {
            let pats: Vec<&[u8]> = args.iter_from(2).collect();
            let pairs = match shard.shared.config.lock() {
                Ok(c) => c.get(&pats),
                Err(_) => Vec::new(),
            };
            let r = Reply::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk(k.as_bytes()), Reply::bulk(v.as_bytes())))
                    .collect(),
            );
            ok(shard, key, r)
        }
        "set" if args.len() >= 5 && !args.len().is_multiple_of(2) => {
            ok(shard, key, Reply::err(error::SYNTAX))
        }
        "set" if args.len() >= 4 => {
            let pairs: Vec<(&[u8], &[u8])> = (2..args.len())
                .step_by(2)
                .map(|i| (args.get(i), args.get(i + 1)))
                .collect();
            let reserved = shard.shared.reserved_fds;
            let result = match shard.shared.config.lock() {
                Ok(mut c) => {
                    let before = c.clone();
                    let r = c.set(&pairs).and_then(|_| {
                        raise_files_limit(c.maxclients(), before.maxclients(), reserved)?;
                        Ok(crate::shared::settings_from(&c))
                    });
                    if r.is_err() {
                        // A failed CONFIG SET changes nothing.
                        *c = before;
                    }
                    r
                }
                Err(_) => Err("ERR config unavailable".to_string()),
            };
            match result {
                Ok(settings) => {
                    if let Ok(mut s) = shard.shared.settings.lock() {
                        *s = settings;
                    }
                    for c in 0..shard.cores {
                        shard.rpc.tell(c, Request::Admin(AdminQuery::Reload));
                    }
                    let reply = match aof_switch(shard) {
                        Ok(()) => Reply::Ok,
                        Err(e) => Reply::Error(e.into()),
                    };
                    ok(shard, key, reply)
                }
                Err(e) => ok(shard, key, Reply::Error(e.into())),
            }
        }
        "resetstat" if args.len() == 2 => {
            crate::shared::lazyfree_reset_stats();
            for c in 0..shard.cores {
                shard.rpc.tell(c, Request::Admin(AdminQuery::ResetStats));
            }
            ok(shard, key, Reply::Ok)
        }
        "rewrite" if args.len() == 2 => {
            let r = match shard.shared.config.lock() {
                Ok(c) => c.rewrite(),
                Err(_) => Err("ERR config unavailable".to_string()),
            };
            match r {
                Ok(()) => {
                    crate::log::notice(format_args!("CONFIG REWRITE executed with success."));
                    ok(shard, key, Reply::Ok)
                }
                Err(e) => ok(shard, key, Reply::Error(e.into())),
            }
        }
        "get" | "set" | "resetstat" | "rewrite" => {
            let e = error::wrong_arity(&format!("config|{sub}"));
            ok(shard, key, Reply::Error(e.into()))
        }
        _ => {
            let e = error::unknown_subcommand(args.get(1), "config");
            ok(shard, key, Reply::Error(e.into()))
        }
    }
}

/// After CONFIG SET raised `maxclients` from `before` to `wanted`, raises
/// the open files limit to match, as Redis does; fails with Redis's error
/// when the system refuses.
fn raise_files_limit(wanted: u32, before: u32, reserved: u64) -> Result<(), String> {
    if wanted <= before {
        return Ok(());
    }
    let allowed = crate::io::adjust_open_files_limit(wanted, reserved);
    if allowed >= wanted {
        return Ok(());
    }
    Err(format!(
        "ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with {allowed}"
    ))
}

/// REPLICAOF / SLAVEOF `<host> <port>` | `NO ONE` (Redis 7.0's
/// `replicaofCommand`).
fn replicaof(shard: &mut Shard, key: Key, args: &Args) -> Next {
    if shard.cluster.is_some() {
        return ok(
            shard,
            key,
            Reply::err("ERR REPLICAOF not allowed in cluster mode."),
        );
    }
    let client = shard
        .conns
        .get(key)
        .map(|c| c.info_line(shard.now_ms))
        .unwrap_or_default();
    let repl = shard.replication.clone();
    if args.get(1).eq_ignore_ascii_case(b"no") && args.get(2).eq_ignore_ascii_case(b"one") {
        if repl.master_of().is_some() {
            repl.unset_master();
            crate::log::notice(format_args!(
                "MASTER MODE enabled (user request from '{client}')"
            ));
        }
        if !repl.promoting() {
            return ok(shard, key, Reply::Ok);
        }
        // Answered once the master client has run what the link handed it
        // (the node takes writes from then on).
        let (rpc, me) = (shard.rpc.clone(), shard.id);
        return spawn(shard, key, async move {
            let call = rpc.call_outside(|id| repl.when_promoted(me, id));
            rpc.parked(call).await;
            TaskDone::reply(key, Reply::Ok)
        });
    }
    let port = match engine::resp::parse_i64(args.get(2)) {
        Some(p @ 0..=65535) => p as u16,
        _ => return ok(shard, key, Reply::err("ERR Invalid master port")),
    };
    let host = String::from_utf8_lossy(args.get(1)).into_owned();
    if repl
        .master_of()
        .is_some_and(|(h, p)| h.eq_ignore_ascii_case(&host) && p == port)
    {
        crate::log::notice(format_args!(
            "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
        ));
        return ok(
            shard,
            key,
            Reply::Status("OK Already connected to specified master".into()),
        );
    }
    if !repl.set_master(&host, port) {
        return ok(
            shard,
            key,
            Reply::err("ERR can't start the replication link"),
        );
    }
    crate::log::notice(format_args!(
        "REPLICAOF {host}:{port} enabled (user request from '{client}')"
    ));
    ok(shard, key, Reply::Ok)
}

/// ROLE (Redis 7.0's `roleCommand`).
fn role(r: &crate::replica::Status) -> Reply {
    match &r.master {
        None => {
            let (offset, text) = match &r.master_view {
                Some(v) => (v.offset, v.text.as_str()),
                None => (r.repl_offset.max(0), ""),
            };
            // The online replicas, from INFO's `slaveN:` lines.
            let replicas = text
                .lines()
                .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                .filter_map(|l| {
                    let field = |name: &str| {
                        l.split([':', ','])
                            .find_map(|f| f.strip_prefix(name))
                            .map(|v| v.to_string())
                    };
                    Some(Reply::Array(vec![
                        Reply::bulk(field("ip=")?.as_bytes()),
                        Reply::bulk(field("port=")?.as_bytes()),
                        Reply::bulk(field("offset=")?.as_bytes()),
                    ]))
                })
                .collect();
            Reply::Array(vec![
                Reply::bulk(b"master"),
                Reply::Int(offset),
                Reply::Array(replicas),
            ])
        }
        Some((host, port)) => Reply::Array(vec![
            Reply::bulk(b"slave"),
            Reply::bulk(host.as_bytes()),
            Reply::Int(*port as i64),
            Reply::bulk(r.state.name().as_bytes()),
            Reply::Int(if r.has_master_client { r.offset } else { -1 }),
        ]),
    }
}

/// CLIENT LIST/KILL's `TYPE` argument, or Redis's error.
fn client_type(name: &[u8]) -> Result<ClientType, Reply> {
    ClientType::parse(name).ok_or_else(|| {
        let e = format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        );
        Reply::Error(e.into())
    })
}

/// The id of a CLIENT LIST line (`id=N ...`; 0 if none).
fn client_line_id(line: &str) -> u64 {
    line.strip_prefix("id=")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
