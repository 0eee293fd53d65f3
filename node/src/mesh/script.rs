//! Commands that may reach any core (standalone, more than one core):
//! SORT whose BY/GET patterns name other keys (gathered into a scratch
//! keyspace: `flows::sort_gathered`), and scripts. A
//! script whose declared keys span cores, one with no declared keys, or
//! one whose earlier runs touched keys it did not declare
//! (`engine::script::store::Placement`).
//!
//! The task takes every core's lock (ordered, as for MULTI/EXEC), so the
//! run is atomic however its commands spread. The Lua state runs on one
//! thread of its own, the script thread, because a core's thread cannot
//! wait for another core's answer in the middle of a Lua call: each
//! `redis.call` goes from the thread to the task (as the answer to the
//! task's last `Rpc::call_outside`), the task runs it on the core that
//! owns its keys under the locks and hands the reply back. The cores keep
//! serving the locked transaction's requests meanwhile, as for EXEC.
//!
//! A run that touched only keys on its declared keys' core marks the
//! script local: its later runs go straight to that core (`engine::cmd::
//! script`), with no lock and no hop beyond the usual one.

use super::flows::{self, FormSink};
use super::msg::{Msg, Response, TxId};
use super::route::{route, Route};
use super::task::Rpc;
use super::Mesh;
use engine::cmd::{flags, script as cmd_script, Spec};
use engine::script::{store, Backend};
use engine::{Args, OwnedArgs, Reply};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// What the task sends the script thread.
enum Step {
    /// Run this script; answer core `core`'s request `id`.
    Start {
        job: Job,
        mesh: Arc<Mesh>,
        core: usize,
        id: u64,
    },
    /// The reply to the thread's last command (`counted`: its error was
    /// counted where it ran); answer request `id` next.
    Reply {
        reply: Reply,
        counted: bool,
        id: u64,
    },
}

/// A script to run on the thread.
struct Job {
    /// The command (`eval`, `fcall_ro`, ...).
    name: &'static str,
    args: OwnedArgs,
    db: usize,
    databases: usize,
    /// It may not write (a read-only replica's script).
    read_only: bool,
    /// Cluster mode: the check of each command it calls ([`cluster_route`]).
    route: Option<engine::shard::ScriptRoute>,
}

fn thread() -> &'static Mutex<Sender<Step>> {
    static T: OnceLock<Mutex<Sender<Step>>> = OnceLock::new();
    T.get_or_init(|| {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("script".into())
            .spawn(move || serve(rx))
            .expect("spawn the script thread");
        Mutex::new(tx)
    })
}

fn send(step: Step) {
    if let Ok(tx) = thread().lock() {
        let _ = tx.send(step);
    }
}

/// The script thread: one script at a time (every core is locked while
/// one runs).
fn serve(rx: Receiver<Step>) {
    while let Ok(step) = rx.recv() {
        let Step::Start {
            job,
            mesh,
            core,
            id,
        } = step
        else {
            continue;
        };
        let mut backend = Remote {
            counted: false,
            rx: &rx,
            mesh: &mesh,
            core,
            id,
            read_only: job.read_only,
            route: job.route.clone(),
        };
        let a = job.args.as_args();
        let reply = cmd_script::run_call(job.name, &a, job.db, job.databases, &mut backend);
        let counted = match &reply {
            Reply::Error(e) => engine::script::error_already_counted(e),
            _ => false,
        };
        let id = backend.id;
        mesh.send(
            core,
            Msg::Resp {
                id,
                resp: Response::ScriptDone(reply, counted),
            },
        );
    }
}

/// A script's commands, carried to the task one at a time.
struct Remote<'a> {
    /// The last command's error was counted where it ran.
    counted: bool,
    rx: &'a Receiver<Step>,
    mesh: &'a Mesh,
    core: usize,
    id: u64,
    read_only: bool,
    route: Option<engine::shard::ScriptRoute>,
}

impl Backend for Remote<'_> {
    fn error_counted(&self) -> bool {
        self.counted
    }

    fn write_refusal(&self) -> Option<&'static str> {
        self.read_only.then_some(engine::script::READONLY_REPLICA)
    }

    fn key_refusal(&self, spec: &'static Spec, args: &engine::Args) -> Option<&'static str> {
        self.route.as_ref().and_then(|f| f(spec, args))
    }

    fn call(&mut self, spec: &'static Spec, db: usize, args: &Args, propagate: bool) -> Reply {
        self.counted = false;
        if !propagate {
            return Reply::err(NO_REPL_NONE);
        }
        let _ = spec;
        self.mesh.send(
            self.core,
            Msg::Resp {
                id: self.id,
                resp: Response::ScriptCall {
                    db,
                    args: args.to_owned(),
                },
            },
        );
        loop {
            match self.rx.recv() {
                Ok(Step::Reply { reply, counted, id }) => {
                    self.id = id;
                    self.counted = counted;
                    return reply;
                }
                Ok(Step::Start { .. }) => continue,
                Err(_) => return Reply::err("ERR the script thread lost its task"),
            }
        }
    }
}

/// Cluster mode: Redis's `scriptVerifyClusterState` for each command a
/// script calls: a key of a slot this node neither serves nor imports is
/// refused (a script wrote into slots of other nodes), and while the
/// cluster is down a command with keys is refused, or a write only under
/// `cluster-allow-reads-when-down` (`reads_when_down`).
pub fn cluster_route(
    map: impl Fn() -> std::sync::Arc<cluster::slotmap::SlotMap> + Send + Sync + 'static,
    reads_when_down: impl Fn() -> bool + Send + Sync + 'static,
) -> engine::shard::ScriptRoute {
    use cluster::slotmap::{Verdict, DOWN_RO_STATE, DOWN_STATE};
    std::sync::Arc::new(move |spec, args| {
        let mut idx = Vec::new();
        if spec.key_indices(args, &mut idx).is_err() || idx.is_empty() {
            return None;
        }
        let map = map();
        let write = spec.has(flags::WRITE);
        idx.iter().find_map(|&i| {
            let slot = engine::slot::slot_of(args.get(i));
            match map.route(slot, write, true, !write, false) {
                Verdict::Serve => None,
                Verdict::Refuse(e) if e == DOWN_STATE && reads_when_down() => {
                    match map.route(slot, write, true, !write, true) {
                        Verdict::Serve => None,
                        Verdict::Refuse(e) if e == DOWN_RO_STATE => Some(
                            "ERR Script attempted to execute a write command while the cluster is down and readonly",
                        ),
                        Verdict::Refuse(_) => Some(NON_LOCAL),
                    }
                }
                Verdict::Refuse(e) if e == DOWN_STATE => {
                    Some("ERR Script attempted to execute a command while the cluster is down")
                }
                Verdict::Refuse(_) => Some(NON_LOCAL),
            }
        })
    })
}

const NON_LOCAL: &str = "ERR Script attempted to access a non local key in a cluster node";

const NO_REPL_NONE: &str = "ERR redis.set_repl(redis.REPL_NONE) is not supported by slotd in a script that runs with every core locked";

/// Runs a script with every core locked; standalone entry (the task
/// takes and releases the locks).
#[allow(clippy::too_many_arguments)]
pub async fn everywhere(
    rpc: Rc<Rpc>,
    spec: &'static Spec,
    (db, databases, read_only): (usize, usize, bool),
    args: OwnedArgs,
    conn: crate::io::Key,
    form: Option<FormSink>,
    bus: Option<std::sync::Arc<super::Bus>>,
) -> super::TaskDone {
    let cores: Vec<usize> = (0..rpc.mesh.cores()).collect();
    let locks = flows::Locks::take_with(&rpc, &cores, form.is_some()).await;
    if locks.paused && !spec.has(flags::READONLY) {
        flows::push_form(form.as_ref(), &locks, Vec::new());
        locks.release().await;
        return super::TaskDone::reply(conn, Reply::err(super::WRITES_PAUSED));
    }
    let mut logged = Vec::new();
    let start = std::time::Instant::now();
    let (reply, counted) = run(
        &rpc,
        locks.tx,
        spec,
        (db, databases, read_only),
        &args,
        (form.is_some(), bus.as_deref()),
        &mut logged,
    )
    .await;
    flows::push_form(form.as_ref(), &locks, logged);
    locks.release().await;
    let mut done = super::TaskDone::ran(conn, reply, spec.name, start);
    if let (Some(super::task::Effect::Ran(ran)), true) = (done.effects.last_mut(), counted) {
        ran.error = None;
    }
    done
}

/// Runs a script under transaction `tx`, which holds every core's lock;
/// what the cores logged is appended to `logged` in the order it ran.
/// Gives its reply, and whether that is an error a command it called
/// counted already (`engine::script::error_already_counted`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    rpc: &Rc<Rpc>,
    tx: TxId,
    spec: &'static Spec,
    (db, databases, read_only): (usize, usize, bool),
    args: &OwnedArgs,
    (form, bus): (bool, Option<&super::Bus>),
    logged: &mut Vec<u8>,
) -> (Reply, bool) {
    if spec.name.starts_with("sort") {
        // SORT whose patterns may name keys on any core.
        let (reply, bytes) = flows::sort_gathered(rpc, spec, db, args, databases, form).await;
        logged.extend(bytes);
        return (reply, false);
    }
    let a = args.as_args();
    let cores = rpc.mesh.cores();
    // The core of the declared keys, if they are on one.
    let mut declared = Vec::new();
    if spec.key_indices(&a, &mut declared).is_err() {
        declared.clear();
    }
    let mut home: Option<usize> = None;
    let mut one_home = !declared.is_empty();
    for &i in &declared {
        let c = rpc.mesh.slots.core_of(engine::slot::slot_of(a.get(i)));
        match home {
            None => home = Some(c),
            Some(h) if h != c => one_home = false,
            Some(_) => {}
        }
    }
    let mut stayed = one_home;
    let job = Job {
        name: spec.name,
        args: args.clone(),
        db,
        databases,
        read_only,
        route: bus.map(|b| {
            // (Every core is locked while it runs: the map of its start.)
            let map = b.map();
            let reads_when_down = b.reads_when_down();
            cluster_route(move || map.clone(), move || reads_when_down)
        }),
    };
    let mesh = rpc.mesh.clone();
    let me = rpc.me;
    let mut step = Some(Step::Start {
        job,
        mesh,
        core: me,
        id: 0,
    });
    let reply = loop {
        let Some(s) = step.take() else {
            break (Reply::err("ERR internal error: script step lost"), false);
        };
        let resp = rpc
            .call_outside(move |id| {
                send(match s {
                    Step::Start {
                        job, mesh, core, ..
                    } => Step::Start {
                        job,
                        mesh,
                        core,
                        id,
                    },
                    Step::Reply { reply, counted, .. } => Step::Reply { reply, counted, id },
                })
            })
            .await;
        match resp {
            Response::ScriptCall { db, args } => {
                if crate::shared::monitoring() {
                    monitor_call(rpc, db, &args);
                }
                let mut counted = false;
                let facts = (databases, cores, form, bus);
                let (reply, went) = command(rpc, tx, db, &args, facts, logged, &mut counted).await;
                match went {
                    None => stayed = false,
                    Some(Some(c)) if Some(c) != home => stayed = false,
                    Some(_) => {}
                }
                step = Some(Step::Reply {
                    reply,
                    counted,
                    id: 0,
                });
            }
            Response::ScriptDone(reply, counted) => break (reply, counted),
            _ => {
                let e = "ERR internal error: unexpected answer from the script thread";
                break (Reply::err(e), false);
            }
        }
    };
    if stayed {
        cmd_script::set_placement(spec.name, &a, store::Placement::Local);
    }
    reply
}

/// MONITOR's line for a command of a script (`[db lua]`), made by the
/// task: its core shows it to every core's monitors.
fn monitor_call(rpc: &Rc<Rpc>, db: usize, args: &OwnedArgs) {
    let a = args.as_args();
    let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
        return;
    };
    if spec.has(flags::ADMIN) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let at = (now.as_secs() as i64, now.subsec_micros());
    let mut lines = Vec::new();
    engine::slowlog::monitor_line(&mut lines, at, db, "lua", spec.name, &a);
    let lines = bytes::Bytes::from(lines);
    rpc.mesh
        .send(rpc.me, super::Msg::Monitor { lines, relay: true });
}

/// One command of a script, under the locks: its reply, and the one core
/// its keys were on (`None`: several, or every core). Keyless commands
/// count as on the script's home. `by_core` is set when cores ran it,
/// which count it and its error (`Shard::run_local`).
async fn command(
    rpc: &Rc<Rpc>,
    tx: TxId,
    db: usize,
    args: &OwnedArgs,
    (databases, cores, form, bus): (usize, usize, bool, Option<&super::Bus>),
    logged: &mut Vec<u8>,
    by_core: &mut bool,
) -> (Reply, Option<Option<usize>>) {
    *by_core = false;
    let a = args.as_args();
    let Some(spec) = engine::cmd::registry().lookup(a.get(0)) else {
        return (
            Reply::err("ERR Unknown Redis command called from script"),
            None,
        );
    };
    if matches!(spec.name, "publish" | "spublish") {
        if spec.check_arity(a.len()).is_err() {
            return (
                Reply::err("ERR Wrong number of args calling Redis command from script"),
                Some(None),
            );
        }
        // Every core delivers to its own subscribers (they serve the
        // request under this transaction's locks); the bus carries it to
        // the cluster. A script that publishes keeps running everywhere.
        let (ch, msg) = (
            bytes::Bytes::copy_from_slice(a.get(1)),
            bytes::Bytes::copy_from_slice(a.get(2)),
        );
        let sharded = spec.name == "spublish";
        match bus {
            Some(bus) => bus.forward_publish(&ch, &msg, sharded),
            // Standalone, Redis propagates it to the replicas (in the
            // script's effects), not to the AOF: the form goes to the
            // replication stream only.
            None if form => {
                let n = db.to_string();
                engine::writelog::encode(logged, [&b"SELECT"[..], n.as_bytes()].into_iter());
                engine::writelog::encode(logged, a.iter());
            }
            None => {}
        }
        let n = flows::publish_count(rpc, ch, msg, sharded).await;
        return (Reply::Int(n), None);
    }
    if spec.has(flags::NODE) {
        let reply = match spec.name {
            "time" => {
                let us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or(0);
                Reply::Array(vec![
                    Reply::bulk_int(us / 1_000_000),
                    Reply::bulk_int(us % 1_000_000),
                ])
            }
            _ => cmd_script::not_in_scripts(spec),
        };
        return (reply, Some(None));
    }
    let route = route(spec, &a, cores, &rpc.mesh.slots);
    *by_core = matches!(route, Ok(Route::All | Route::One(_) | Route::Here));
    match route {
        Err(e) => (e, Some(None)),
        Ok(Route::All) => (
            flows::fanout_reply(rpc, cores, spec, db, args, Some(tx), Some(logged)).await,
            None,
        ),
        Ok(Route::Many(_)) => {
            let (reply, bytes) =
                flows::gather_run_scatter(rpc, spec, db, args, databases, form).await;
            logged.extend(bytes);
            (reply, None)
        }
        Ok(Route::One(to)) => (
            flows::first_reply(
                rpc.call(to, flows::exec_req(db, vec![args.clone()], Some(tx), true))
                    .await
                    .unlog(logged),
            ),
            Some(Some(to)),
        ),
        Ok(Route::Everywhere) => {
            let (reply, bytes) = flows::sort_gathered(rpc, spec, db, args, databases, form).await;
            logged.extend(bytes);
            (reply, None)
        }
        Ok(Route::Here) => (
            flows::first_reply(
                rpc.call(
                    rpc.me,
                    flows::exec_req(db, vec![args.clone()], Some(tx), true),
                )
                .await
                .unlog(logged),
            ),
            Some(None),
        ),
    }
}
