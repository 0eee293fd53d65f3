//! SLOWLOG and MONITOR, CLIENT REPLY, and the HELP texts of CLIENT,
//! CONFIG and COMMAND, with Redis 7.0.15's replies. Each core keeps its
//! own slow log (`shard::observe`); SLOWLOG asks every core and merges.

use super::dispatch::{spawn, Next};
use crate::io::Key;
use crate::mesh::{AdminQuery, Request, Response, TaskDone};
use crate::shard::Shard;
use engine::{error, Args, Reply};

fn ok(shard: &mut Shard, key: Key, r: Reply) -> Next {
    shard.reply(key, &r);
    Next::Continue
}

/// Redis's `addReplyHelp`: a header naming the command as the client
/// typed it, the lines, and HELP's own.
pub fn help(args: &Args, lines: &[&'static str]) -> Reply {
    let cmd = String::from_utf8_lossy(args.get(0)).to_ascii_uppercase();
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(
        format!("{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").into(),
    ));
    out.extend(lines.iter().map(|l| Reply::status(*l)));
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Prints this help."));
    Reply::Array(out)
}

const SLOWLOG_HELP: &[&str] = &[
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
];

pub const CLIENT_HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
];

pub const CONFIG_HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
];

pub const COMMAND_HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
];

/// SLOWLOG GET [count] | LEN | RESET | HELP, over every core's log.
pub fn slowlog(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let max = shard.settings.slowlog_max_len;
    let n = args.len();
    let count = match (sub.as_str(), n) {
        ("help", 2) => return ok(shard, key, help(&args, SLOWLOG_HELP)),
        ("reset", 2) => None,
        ("len", 2) => Some(None),
        ("get", 2) => Some(Some(10)),
        ("get", 3) => match engine::resp::parse_i64(args.get(2)) {
            Some(-1) => Some(Some(usize::MAX)),
            Some(c) if c >= 0 => Some(Some(c as usize)),
            _ => {
                let e = Reply::err("ERR count should be greater than or equal to -1");
                return ok(shard, key, e);
            }
        },
        ("help" | "reset" | "len", _) => {
            let e = error::wrong_arity(&format!("slowlog|{sub}"));
            return ok(shard, key, Reply::Error(e.into()));
        }
        ("get", _) => {
            let e = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(&args.get(1)[..args.get(1).len().min(128)])
            );
            return ok(shard, key, Reply::Error(e.into()));
        }
        _ => {
            let e = error::unknown_subcommand(args.get(1), "slowlog");
            return ok(shard, key, Reply::Error(e.into()));
        }
    };
    let rpc = shard.rpc.clone();
    spawn(shard, key, async move {
        let reply = match count {
            None => {
                rpc.call_all(|_| Request::Admin(AdminQuery::SlowlogReset))
                    .await;
                Reply::Ok
            }
            Some(None) => {
                let answers = rpc
                    .call_all(|_| Request::Admin(AdminQuery::SlowlogGet(None)))
                    .await;
                let total: i64 = answers
                    .iter()
                    .map(|a| match a {
                        Response::Count(n) => *n,
                        _ => 0,
                    })
                    .sum();
                Reply::Int(total.min(max as i64))
            }
            Some(Some(count)) => {
                let count = count.min(max);
                let answers = rpc
                    .call_all(|_| Request::Admin(AdminQuery::SlowlogGet(Some(count))))
                    .await;
                let mut all = Vec::new();
                for a in answers {
                    if let Response::Slow(v) = a {
                        all.extend(v);
                    }
                }
                let merged = engine::slowlog::merge(all, count);
                Reply::Array(merged.iter().map(|e| e.reply()).collect())
            }
        };
        TaskDone::reply(key, reply)
    })
}

/// MONITOR: from now on, every command any client runs on any core is
/// shown to this connection.
pub fn monitor(shard: &mut Shard, key: Key) -> Next {
    if shard.monitor_start(key) {
        return ok(shard, key, Reply::Ok);
    }
    // Already a monitor: Redis ignores it, without a reply.
    Next::Continue
}

/// EXEC's MONITOR lines: the queued commands, as they will run, then
/// EXEC (only EXEC when the transaction is refused).
pub fn monitor_exec(shard: &mut Shard, key: Key, spec: &engine::cmd::Spec, args: &Args) {
    if !crate::shared::monitoring() {
        return;
    }
    let Some(c) = shard.conns.get(key) else {
        return;
    };
    let mut db = c.db;
    let queued = match (&c.multi, c.multi_failed) {
        (Some(q), false) => q.clone(),
        _ => Vec::new(),
    };
    for cmd in &queued {
        let a = cmd.as_args();
        let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
            continue;
        };
        db = db_after(shard, spec, &a, db);
        shard.monitor_feed(key, spec, db, &a);
    }
    shard.monitor_feed(key, spec, db, args);
}

/// The database a connection is in after `spec` ran in `db`: Redis shows
/// a command to monitors once it ran.
pub fn db_after(shard: &Shard, spec: &engine::cmd::Spec, args: &Args, db: usize) -> usize {
    match spec.name {
        "select" => crate::mesh::parse_db(args.get(1), shard.settings.databases).unwrap_or(db),
        "reset" => 0,
        _ => db,
    }
}

/// CLIENT REPLY ON|OFF|SKIP: OFF and SKIP answer nothing.
pub fn client_reply(shard: &mut Shard, key: Key, mode: &[u8]) -> Next {
    let Some(c) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    if mode.eq_ignore_ascii_case(b"on") {
        c.reply_off = false;
        c.skip_next = false;
        c.mute = false;
        ok(shard, key, Reply::Ok)
    } else if mode.eq_ignore_ascii_case(b"off") {
        c.reply_off = true;
        Next::Continue
    } else if mode.eq_ignore_ascii_case(b"skip") {
        if !c.reply_off {
            c.skip_next = true;
        }
        Next::Continue
    } else {
        ok(shard, key, Reply::err(error::SYNTAX))
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the command client `id` is blocked
/// in, on whichever core it is parked, answers its timeout reply or
/// `-UNBLOCKED`; 1 if there was one, else 0.
pub fn client_unblock(shard: &mut Shard, key: Key, args: Args) -> Next {
    let error = match args.len() {
        4 if args.is(3, "timeout") => false,
        4 if args.is(3, "error") => true,
        4 => {
            let e = Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
            return ok(shard, key, e);
        }
        _ => false,
    };
    let Some(id) = engine::resp::parse_i64(args.get(2)) else {
        return ok(shard, key, Reply::err(error::NOT_INT));
    };
    let rpc = shard.rpc.clone();
    spawn(shard, key, async move {
        let found = rpc
            .call_all(|_| Request::Admin(AdminQuery::ClientKey { id: id as u64 }))
            .await
            .into_iter()
            .enumerate()
            .find_map(|(core, a)| match a {
                Response::Count(k) if k >= 0 => Some((core, k)),
                _ => None,
            });
        let mut n = 0;
        if let Some((core, k)) = found {
            let target = Key {
                index: (k >> 32) as u32,
                gen: k as u32,
            };
            for a in rpc
                .call_all(|_| {
                    Request::Admin(AdminQuery::Unblock {
                        core,
                        key: target,
                        error,
                    })
                })
                .await
            {
                if let Response::Count(c) = a {
                    n += c;
                }
            }
        }
        TaskDone::reply(key, Reply::Int(n.min(1)))
    })
}
