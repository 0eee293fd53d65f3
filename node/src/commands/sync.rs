//! A replica's commands on its master: REPLCONF, and SYNC / PSYNC (Redis
//! 7.0's `replconfCommand` and `syncCommand`), answered by the master
//! thread (`replica::Note`). SYNC/PSYNC run as a replication barrier: a
//! task takes every core's lock, so the thread decides at an offset that
//! covers every write acknowledged so far and nothing else, and a full
//! resynchronization's snapshot starts on every core before the locks go;
//! then the connection's socket goes to the master thread.

use super::dispatch::{spawn, Next};
use crate::io::Key;
use crate::mesh::{flows, Effect, Request, Response, TaskDone};
use crate::replica::Note;
use crate::shard::Shard;
use engine::{Args, Reply};

/// The peer's IP of a connection's `ip:port` address.
fn peer_ip(addr: &str) -> String {
    addr.rsplit_once(':')
        .map(|(ip, _)| ip.trim_matches(|c| c == '[' || c == ']').to_string())
        .unwrap_or_default()
}

fn owned(args: &Args) -> Vec<Vec<u8>> {
    args.iter_from(0).map(|a| a.to_vec()).collect()
}

fn done(key: Key, replies: Vec<Reply>, effects: Vec<Effect>) -> TaskDone {
    TaskDone {
        conn: key,
        replies,
        effects,
        encoded: engine::Encoded::default(),
    }
}

/// REPLCONF <option> <value> ...
pub fn replconf(shard: &mut Shard, key: Key, args: Args) -> Next {
    let Some(c) = shard.conns.get(key) else {
        return Next::Wait;
    };
    let (conn, ip) = (c.id, peer_ip(&c.addr));
    let argv = owned(&args);
    let (repl, rpc, me) = (shard.replication.clone(), shard.rpc.clone(), shard.id);
    spawn(shard, key, async move {
        let resp = rpc
            .call_outside(|id| {
                repl.note(Note::Replconf {
                    conn,
                    peer_ip: ip,
                    argv,
                    core: me,
                    id,
                })
            })
            .await;
        let replies = match resp {
            Response::Replies(r) => r,
            _ => Vec::new(),
        };
        done(key, replies, vec![Effect::Replconf])
    })
}

/// SYNC, PSYNC <replid> <offset>.
pub fn sync(shard: &mut Shard, key: Key, args: Args) -> Next {
    if shard
        .shared
        .replica
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let e = format!(
            "ERR {} is not supported by slotd yet on a replica: chained replication is not built yet",
            String::from_utf8_lossy(args.get(0)).to_ascii_uppercase()
        );
        shard.reply(key, &Reply::Error(e.into()));
        return Next::Continue;
    }
    let Some(c) = shard.conns.get(key) else {
        return Next::Wait;
    };
    let (conn, ip) = (c.id, peer_ip(&c.addr));
    let argv = owned(&args);
    let (repl, rpc, me) = (shard.replication.clone(), shard.rpc.clone(), shard.id);
    let (shared, persist, mesh) = (
        shard.shared.clone(),
        shard.persist.clone(),
        shard.mesh.clone(),
    );
    let path = shard.shared.config.lock().ok().map(|c| {
        std::path::Path::new(&c.dir())
            .join(c.text("dbfilename").unwrap_or_else(|| "dump.rdb".into()))
    });
    spawn(shard, key, async move {
        // A snapshot or rewrite in progress ends first.
        while let Some(job) = persist.job() {
            let _ = crate::persist::Outcome { job, core: me }.await;
        }
        let rpc2 = rpc.clone();
        let verdict = flows::under_all_locks(&rpc, |tx| async move {
            let resp = rpc2
                .call_outside(|id| {
                    repl.note(Note::Sync {
                        conn,
                        peer_ip: ip,
                        argv,
                        core: me,
                        id,
                    })
                })
                .await;
            match resp {
                Response::Count(1) => {
                    let started = crate::persist::start(
                        &shared,
                        &persist,
                        &mesh,
                        crate::config::REDIS_VERSION,
                    );
                    match (started, path) {
                        (Ok(job), Some(path)) => {
                            rpc2.call_all(|_| Request::SnapshotStart { tx }).await;
                            repl.keep_job(conn, job, path);
                            Ok(())
                        }
                        // The replica waits for an RDB that never comes:
                        // its socket is handed over and closed there.
                        _ => Ok(()),
                    }
                }
                Response::Count(_) => Ok(()),
                Response::Replies(r) => Err(r),
                _ => Err(Vec::new()),
            }
        })
        .await;
        match verdict {
            Ok(()) => done(key, Vec::new(), vec![Effect::HandOff]),
            Err(replies) => done(key, replies, Vec::new()),
        }
    })
}
