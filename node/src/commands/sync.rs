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
use crate::replica::{Note, Rdb, NOMASTERLINK};
use crate::shard::Shard;
use engine::{Args, Reply};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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

/// SYNC, PSYNC <replid> <offset>. On a replica whose link is up, its
/// replica gets its master's stream (Redis 4.0+): the link is first held
/// still, so the data stands at one offset of that stream while the
/// barrier decides and a full resynchronization's snapshot starts.
pub fn sync(shard: &mut Shard, key: Key, args: Args) -> Next {
    let mut proxy = shard.shared.replica.load(Ordering::SeqCst);
    let mut argv = owned(&args);
    // `PSYNC <replid> <offset> FAILOVER`, from a master that hands over
    // to this replica (redis-server's `FAILOVER TO`): this node becomes a
    // master first when the replication ID is its own, as Redis's
    // `syncCommand` does, and the PSYNC then goes on as to a master (its
    // old history is the secondary ID). A master refuses it (the master
    // thread's answer); so does a cluster node, whose role the cluster
    // decides.
    let failover = argv.len() > 3
        && args.get(0).eq_ignore_ascii_case(b"psync")
        && args.get(3).eq_ignore_ascii_case(b"failover");
    if failover && proxy && shard.cluster.is_none() {
        crate::log::warning(format_args!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(args.get(1))
        ));
        let repl = shard.replication.clone();
        if !repl
            .status()
            .replid
            .as_bytes()
            .eq_ignore_ascii_case(args.get(1))
        {
            shard.reply(
                key,
                &Reply::err("ERR PSYNC FAILOVER replid must match my replid."),
            );
            return Next::Continue;
        }
        repl.unset_master();
        let client = shard
            .conns
            .get(key)
            .map(|c| c.info_line(shard.now_ms))
            .unwrap_or_default();
        crate::log::notice(format_args!(
            "MASTER MODE enabled (failover request from '{client}')"
        ));
        proxy = false;
        argv.truncate(3);
    }
    if proxy && !shard.shared.master_link_up.load(Ordering::SeqCst) {
        // A Redis replica keeps its cached master and tries again: in
        // cluster mode this node may be about to be promoted, and its old
        // master, now its replica, resumes then.
        shard.reply(key, &Reply::Error(NOMASTERLINK.into()));
        return Next::Continue;
    }
    let Some(c) = shard.conns.get(key) else {
        return Next::Wait;
    };
    let (conn, ip) = (c.id, peer_ip(&c.addr));
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
    let diskless = shard
        .shared
        .config
        .lock()
        .is_ok_and(|c| c.flag("repl-diskless-sync"));
    spawn(shard, key, async move {
        if failover {
            // The promotion ends once the master client has run what the
            // link handed it; the PSYNC then goes on as to a master, unless
            // a REPLICAOF made the node a replica again meanwhile.
            let _ = rpc
                .parked(rpc.call_outside(|id| repl.when_promoted(me, id)))
                .await;
            if shared.replica.load(Ordering::SeqCst) {
                return done(key, vec![Reply::Error(NOMASTERLINK.into())], Vec::new());
            }
        }
        // Tried again when another replica's snapshot started first (two
        // SYNCs at once on two cores): this one waits for it to end, as a
        // Redis replica that cannot join a running BGSAVE waits for the
        // next one.
        loop {
            // A snapshot or rewrite in progress ends first.
            while let Some(job) = persist.job() {
                let _ = crate::persist::Outcome { job, core: me }.await;
            }
            let at = Arc::new(Mutex::new(None));
            if proxy {
                let held = rpc
                    .call_outside(|id| repl.hold_for_sync(me, id, at.clone()))
                    .await;
                if !matches!(held, Response::Count(1)) {
                    return done(key, vec![Reply::Error(NOMASTERLINK.into())], Vec::new());
                }
            }
            let at = at.lock().ok().and_then(|a| a.clone());
            let (rpc2, repl2, persist2) = (rpc.clone(), repl.clone(), persist.clone());
            let (shared, mesh) = (shared.clone(), mesh.clone());
            let (ip, argv, path) = (ip.clone(), argv.clone(), path.clone());
            let verdict = flows::under_all_locks(&rpc, |tx| async move {
                if persist2.job().is_some() {
                    return None;
                }
                let resp = rpc2
                    .call_outside(|id| {
                        repl2.note(Note::Sync {
                            conn,
                            peer_ip: ip,
                            argv,
                            core: me,
                            id,
                            at: at.clone(),
                        })
                    })
                    .await;
                Some(match resp {
                    // An empty RDB, made by the master thread.
                    Response::Count(3) => Ok(()),
                    Response::Count(n @ 1..) => {
                        // 2: the replica reads the diskless EOF framing. A
                        // replica's RDB records where its master's stream
                        // stands (`repl-stream-db` above all).
                        let job = match (diskless && n == 2, path) {
                            (true, _) => pipe().ok().and_then(|(r, w)| {
                                crate::persist::start_stream(&shared, &persist2, &mesh, w, at)
                                    .ok()
                                    .map(|job| (job, Rdb::Pipe(r)))
                            }),
                            (false, Some(path)) => {
                                crate::persist::start_known(&shared, &persist2, &mesh, at)
                                    .ok()
                                    .map(|job| (job, Rdb::File(path)))
                            }
                            (false, None) => None,
                        };
                        // Without a job the replica waits for an RDB that
                        // never comes: its socket is handed over and closed
                        // there.
                        if let Some(job) = job {
                            rpc2.call_all(|_| Request::SnapshotStart { tx }).await;
                            repl2.keep_job(conn, job);
                        }
                        Ok(())
                    }
                    Response::Count(_) => Ok(()),
                    Response::Replies(r) => Err(r),
                    _ => Err(Vec::new()),
                })
            })
            .await;
            if proxy {
                crate::persist::StreamHold::release(&*repl);
            }
            match verdict {
                None => continue,
                Some(Ok(())) => return done(key, Vec::new(), vec![Effect::HandOff]),
                Some(Err(replies)) => return done(key, replies, Vec::new()),
            }
        }
    })
}

/// WAIT numreplicas timeout, once replicas follow this node: every write
/// acknowledged before it (on any core) is in the stream at a ticket below
/// the one taken now; the master thread answers when that many replicas
/// acknowledged the offset it reached, or at the timeout.
pub fn wait(shard: &mut Shard, key: Key, args: Args) -> Next {
    if shard.shared.replica.load(Ordering::SeqCst) {
        shard.reply(key, &Reply::err(WAIT_ON_REPLICA));
        return Next::Continue;
    }
    let replicas = match args.int(1) {
        Ok(n) => n,
        Err(e) => {
            shard.reply(key, &e);
            return Next::Continue;
        }
    };
    let timeout_ms = match args.int(2) {
        Ok(t) if t < 0 => {
            shard.reply(key, &Reply::err("ERR timeout is negative"));
            return Next::Continue;
        }
        Ok(t) => t,
        Err(_) => {
            let e = Reply::err("ERR timeout is not an integer or out of range");
            shard.reply(key, &e);
            return Next::Continue;
        }
    };
    shard.take_log();
    let ticket = shard.replication.stream().next_ticket();
    let (repl, rpc, me) = (shard.replication.clone(), shard.rpc.clone(), shard.id);
    spawn(shard, key, async move {
        let call = rpc.call_outside(|id| {
            repl.note(Note::Wait {
                ticket,
                replicas,
                timeout_ms,
                core: me,
                id,
                conn: key,
            })
        });
        let resp = rpc.parked(call).await;
        let reply = match resp {
            Response::Count(n) => Reply::Int(n),
            // CLIENT UNBLOCK ... ERROR.
            Response::Replies(mut r) if !r.is_empty() => r.swap_remove(0),
            _ => Reply::Int(0),
        };
        done(key, vec![reply], Vec::new())
    })
}

/// Redis 7.0's refusal of WAIT on a replica.
const WAIT_ON_REPLICA: &str = "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.";

/// A pipe: (read end, write end as a file for the snapshot writer).
fn pipe() -> std::io::Result<(OwnedFd, std::fs::File)> {
    let mut fds = [0i32; 2];
    // SAFETY: plain syscall filling two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here only.
    Ok(unsafe {
        (
            OwnedFd::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}
