//! The slow path's small async runtime, one per core.
//!
//! Anything that needs other cores (a multi-shard command, MULTI/EXEC,
//! fan-outs, PUBLISH, CLIENT LIST) runs as a task: an `async` block that
//! sends requests and awaits the answers. (Commands whose keys live on
//! another core travel as one request without a task: `flows::Chain`.)
//! Tasks never touch the core's data directly, even their own core's: they
//! message it like any other, so a task is only a sequence of hops and the
//! core stays the single owner of its keyspace. The fast path (every key on
//! this core) never creates a task.

use super::msg::{Mesh, Msg, Request, Response, TxId};
use crate::io::{Key, Slab};
use bytes::Bytes;
use engine::Reply;
use hashbrown::HashMap;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// The client whose task is being polled (0: none): requests its
    /// task sends carry it (`Msg::Req::client`), for tracking's NOLOOP.
    static CLIENT: Cell<u64> = const { Cell::new(0) };
}

fn current_client() -> u64 {
    CLIENT.with(Cell::get)
}

/// What a finished task hands back to its connection.
pub struct TaskDone {
    pub conn: Key,
    pub replies: Vec<Reply>,
    /// Replies already encoded for the connection, sent after `replies`.
    pub encoded: engine::Encoded,
    /// Connection state the task changed.
    pub effects: Vec<Effect>,
}

impl TaskDone {
    /// A task's end with one reply for `conn` and nothing else.
    pub fn reply(conn: Key, reply: Reply) -> TaskDone {
        TaskDone {
            conn,
            replies: vec![reply],
            effects: Vec::new(),
            encoded: engine::Encoded::default(),
        }
    }

    /// A task's end with the reply of command `name`, which it ran itself
    /// since `start` ([`Effect::Ran`]).
    pub fn ran(conn: Key, reply: Reply, name: &'static str, start: std::time::Instant) -> TaskDone {
        let ran = Ran::of(name, &reply, start);
        let mut done = TaskDone::reply(conn, reply);
        done.effects.push(Effect::Ran(ran));
        done
    }
}

/// A command a task ran itself (on its keys' values gathered here, a
/// script over every core, a command of a transaction over several cores
/// that no core runs), which no core's keyspace counted: INFO counts it
/// on the connection's core ([`Effect::Ran`]).
pub struct Ran {
    /// The name commandstats counts it under.
    pub name: &'static str,
    /// How long it ran.
    pub nanos: u64,
    /// It answered an error (`failed_calls`),
    pub failed: bool,
    /// which errorstats count, unless a command a script called counted
    /// it already (`engine::script::error_already_counted`).
    pub error: Option<std::borrow::Cow<'static, str>>,
}

impl Ran {
    /// Command `name` ran since `start` and answered `reply`.
    pub fn of(name: &'static str, reply: &Reply, start: std::time::Instant) -> Ran {
        let error = match reply {
            Reply::Error(e) => Some(e.clone()),
            _ => None,
        };
        Ran {
            name,
            nanos: start.elapsed().as_nanos() as u64,
            failed: error.is_some(),
            error,
        }
    }
}

/// Connection changes a task reports.
pub enum Effect {
    /// SELECT ran inside EXEC.
    Db(usize),
    /// WATCHes registered (core, db, key, version).
    Watched(Vec<(usize, usize, Bytes, u64)>),
    /// The connection became a replica: its socket goes to the
    /// replication thread.
    HandOff,
    /// The connection spoke REPLCONF.
    Replconf,
    /// CLIENT TRACKING ON took effect (after finding the redirection
    /// target or registering BCAST prefixes on every core).
    Tracking(Box<crate::io::Tracking>),
    /// CLIENT TRACKING OFF took effect (after finding the redirection
    /// target it named).
    TrackingOff,
    /// The command waited that many microseconds for data (a blocking
    /// command over keys of several cores): the slow log does not count
    /// the wait, as Redis counts a blocked command's runs only.
    Waited(u64),
    /// With the AOF on: the replies reveal writes of these
    /// cores up to these log offsets (see `Conn::aof_remote`).
    AofNeeds(Vec<(usize, u64)>),
    /// The task ran a command itself, which INFO counts on the
    /// connection's core.
    Ran(Ran),
}

enum Pending {
    Waiting(Option<Waker>),
    Done(Response),
}

/// Requests from this core's tasks to any core, and their answers.
pub struct Rpc {
    pub mesh: Arc<Mesh>,
    pub me: usize,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending>>,
    /// Tasks that now only await something that may take long and, when
    /// it comes, make them answer their client without routing a key: a
    /// blocking command parked on a core, WAIT (see [`Rpc::parked`]).
    pub parked_now: Cell<usize>,
}

impl Rpc {
    /// The RPC endpoint of core `me`.
    pub fn new(mesh: Arc<Mesh>, me: usize) -> Rc<Rpc> {
        Rc::new(Rpc {
            mesh,
            me,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            parked_now: Cell::new(0),
        })
    }

    fn next(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Sends `req` to core `to`; the returned future yields the answer.
    /// Dropping it early forgets the answer (and, for `cancel_blocked`
    /// calls, tells `to` to forget the parked request).
    /// Sends `req(core)` to every core at once; the answers in core order.
    pub async fn call_all(self: &Rc<Self>, req: impl Fn(usize) -> Request) -> Vec<Response> {
        let calls: Vec<Call> = (0..self.mesh.cores())
            .map(|c| self.call(c, req(c)))
            .collect();
        let mut out = Vec::with_capacity(calls.len());
        for call in calls {
            out.push(call.await);
        }
        out
    }

    pub fn call(self: &Rc<Self>, to: usize, req: Request) -> Call {
        let cancel_blocked = matches!(
            req,
            Request::Exec {
                may_block: true,
                ..
            } | Request::Probe { .. }
        );
        let id = self.next();
        self.pending.borrow_mut().insert(id, Pending::Waiting(None));
        self.mesh.send(
            to,
            Msg::Req {
                from: self.me,
                id,
                client: current_client(),
                req,
            },
        );
        Call {
            rpc: self.clone(),
            id,
            to,
            done: false,
            cancel_blocked,
        }
    }

    /// Awaits `fut`, which may take long and, once done, leaves its task
    /// only to answer its client (a blocking command parked on a core,
    /// WAIT): counted in [`Rpc::parked_now`], so a re-spread does not wait
    /// for such tasks (`mesh::respread`).
    pub async fn parked<T>(&self, fut: impl Future<Output = T>) -> T {
        struct Awaited<'a>(&'a Cell<usize>);
        impl Drop for Awaited<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.parked_now.set(self.parked_now.get() + 1);
        let _awaited = Awaited(&self.parked_now);
        fut.await
    }

    /// Sends a CLUSTER command to the bus core; the returned future yields
    /// its reply (`Response::Replies`).
    pub fn call_bus(
        self: &Rc<Self>,
        bus: &super::bus::Bus,
        args: Vec<Bytes>,
        facts: cluster::command::Facts,
    ) -> Call {
        let from = self.me;
        self.call_outside(|id| {
            bus.ask(super::bus::Ask::Command {
                from,
                id,
                args,
                facts,
            })
        })
    }

    /// Awaits an answer that comes from outside the cores: `start` gets the
    /// request id and hands it to whatever will answer (a thread), which
    /// sends `Msg::Resp { id, resp }` to this core (`self.me`).
    pub fn call_outside(self: &Rc<Self>, start: impl FnOnce(u64)) -> Call {
        let id = self.next();
        self.pending.borrow_mut().insert(id, Pending::Waiting(None));
        start(id);
        Call {
            rpc: self.clone(),
            id,
            to: self.me,
            done: false,
            cancel_blocked: false,
        }
    }

    /// Sends a request that has no answer.
    pub fn tell(&self, to: usize, req: Request) {
        self.mesh.send(
            to,
            Msg::Req {
                from: self.me,
                id: 0,
                client: current_client(),
                req,
            },
        );
    }

    /// Delivers the answer to request `id` (called by the core loop).
    pub fn complete(&self, id: u64, resp: Response) {
        let mut pending = self.pending.borrow_mut();
        if let Some(p) = pending.get_mut(&id) {
            if let Pending::Waiting(Some(w)) = std::mem::replace(p, Pending::Done(resp)) {
                w.wake();
            }
        }
    }

    /// Fresh transaction id for shard locking.
    pub fn new_tx(&self) -> TxId {
        TxId(self.me, self.next())
    }
}

/// An answer being awaited.
pub struct Call {
    rpc: Rc<Rpc>,
    id: u64,
    to: usize,
    done: bool,
    cancel_blocked: bool,
}

impl Future for Call {
    type Output = Response;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut pending = self.rpc.pending.borrow_mut();
        match pending.remove(&self.id) {
            Some(Pending::Done(r)) => {
                drop(pending);
                self.done = true;
                Poll::Ready(r)
            }
            Some(Pending::Waiting(_)) | None => {
                pending.insert(self.id, Pending::Waiting(Some(cx.waker().clone())));
                Poll::Pending
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.rpc.pending.borrow_mut().remove(&self.id);
            if self.cancel_blocked {
                self.rpc
                    .tell(self.to, Request::CancelBlocked { id: self.id });
            }
        }
    }
}

/// Woken tasks, with a flag the loop can check without taking the lock.
#[derive(Default)]
struct Ready {
    any: AtomicBool,
    keys: Mutex<Vec<Key>>,
}

impl Ready {
    fn push(&self, key: Key) {
        if let Ok(mut r) = self.keys.lock() {
            r.push(key);
        }
        self.any.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<Key> {
        // Look before swapping: most turns find nothing, and a plain load
        // costs no barrier.
        if !self.any.load(Ordering::Acquire) || !self.any.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.keys
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

struct TaskWaker {
    task: Key,
    ready: Arc<Ready>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.task);
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs this core's tasks.
pub struct Executor<T> {
    /// Each task with the client it works for (0: none).
    tasks: Slab<(u64, BoxFuture<T>)>,
    ready: Arc<Ready>,
}

impl<T> Default for Executor<T> {
    fn default() -> Self {
        Executor {
            tasks: Slab::default(),
            ready: Arc::default(),
        }
    }
}

impl<T> Executor<T> {
    /// Starts `fut`, a task working for client `client` (0: none); it is
    /// first polled by the next [`Executor::run`].
    pub fn spawn_for(&mut self, client: u64, fut: impl Future<Output = T> + 'static) -> Key {
        let key = self.tasks.insert((client, Box::pin(fut)));
        self.ready.push(key);
        key
    }

    /// Drops a task (its client went away).
    pub fn cancel(&mut self, key: Key) {
        self.tasks.remove(key);
    }

    /// Number of tasks not finished.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when some task was woken.
    pub fn has_ready(&self) -> bool {
        self.ready.any.load(Ordering::Acquire)
    }

    /// Polls every woken task; returns the outputs of those that finished.
    pub fn run(&mut self) -> Vec<(Key, T)> {
        let mut done = Vec::new();
        loop {
            let batch = self.ready.take();
            if batch.is_empty() {
                return done;
            }
            for key in batch {
                let Some((client, fut)) = self.tasks.get_mut(key) else {
                    continue;
                };
                let waker = Waker::from(Arc::new(TaskWaker {
                    task: key,
                    ready: self.ready.clone(),
                }));
                let mut cx = Context::from_waker(&waker);
                CLIENT.with(|c| c.set(*client));
                let polled = fut.as_mut().poll(&mut cx);
                CLIENT.with(|c| c.set(0));
                if let Poll::Ready(out) = polled {
                    self.tasks.remove(key);
                    done.push((key, out));
                }
            }
        }
    }
}
