//! One shard core: a pinned thread running an io_uring event loop.
//!
//! The loop owns the core's keyspace (`engine::Shard`), its connections and
//! its inbox. Every core arms an accept on each of the process's listening
//! sockets (made once by `main`); the kernel wakes one waiting core per
//! connection, which admits it (maxclients, protected mode) and hands it to
//! the core with the fewest connections, itself on a tie, through the mesh
//! (`Msg::Adopt`); a connection whose commands keep going to another core
//! later moves there (`Msg::Moved`, `Core::finish_move`). Each turn it
//! reaps completions (accepts, receives, sends, the inbox eventfd), runs
//! the commands that arrived, serves other cores' requests, polls woken
//! tasks, then submits all sends with the next wait in one
//! `io_uring_enter`.
//!
//! Sockets are driven by io_uring directly rather than through glommio's
//! streams: the measurements put glommio's per-operation send, recv
//! and re-armed poll at 0.7x redis-server's throughput, while a plain
//! io_uring loop with batched submission matched it.
//!
//! Everything the loop does not do itself lives in the rooms below it:
//! the ring and sockets in `io`, messages and tasks in `mesh`, the core's
//! state and command running in `shard`, a request's path in `commands`.

use crate::commands;
use crate::io::{
    net, split_user_data, user_data, Conn, Key, Moved, Ring, SendVec, Wait, INPUT_AHEAD_MAX,
    SEND_PIECES,
};
use crate::log;
use crate::mesh::{Mesh, Msg};
use crate::persist::aof::Submit;
use crate::shard::{first_key, Shard};
use crate::shared::{now_ms, Shared};
use io_uring::{cqueue, opcode, squeue, types};
use std::os::fd::FromRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_WAKE: u64 = 4;
const KIND_CRON: u64 = 5;
const KIND_AOF_WRITE: u64 = 6;
const KIND_AOF_FSYNC: u64 = 7;
/// The AOF's zeros written ahead, and the cut of those left when a file
/// is left.
const KIND_AOF_ZERO: u64 = 8;
const KIND_AOF_CUT: u64 = 9;
const KIND_CANCEL: u64 = 8;

/// Sleep batching (see `Core::run`): at most one request waited for per
/// this many clients active in the last cron period,
const BATCH_CLIENTS_PER_WAIT: u64 = 4;
/// and at most this many,
const BATCH_MAX: u64 = 16;
/// and no more than the last period's receive rate brings in half of
/// this, the longest a batching core sleeps before it looks anyway.
const BATCH_WAIT_NS: u64 = 200_000;

/// Runs `$body` with `$f` naming connection `$c` (slab key `$key`) as an
/// io_uring target: its registered slot when it has one, else its fd.
macro_rules! with_target {
    ($c:expr, $key:expr, |$f:ident| $body:expr) => {
        if $c.fixed {
            let $f = types::Fixed($key.index);
            $body
        } else {
            let $f = types::Fd($c.fd);
            $body
        }
    };
}

/// A shard core: its state and the loop that serves it.
pub struct Core {
    shard: Shard,
    ring: Ring,
    /// The process's listening sockets: `main` owns and closes them; this
    /// core accepts on them until it stops. From `own_from` on, this
    /// core's own port (`shard-port-base`): what it accepts there stays.
    listeners: Vec<i32>,
    own_from: usize,
    eventfd_buf: Box<u64>,
    /// The cron timer's period, read by the kernel when the timer is
    /// submitted.
    cron_ts: Box<types::Timespec>,
    /// Reused buffer for a turn's completions.
    cqes: Vec<(u64, i32, u32)>,
    /// Keys of this batch whose slot headers are being prefetched.
    ahead: Vec<(usize, engine::db::Ahead)>,
    /// Connections whose receiving stopped (`Conn::recv_paused`).
    paused: Vec<Key>,
    /// Cron periods, numbered, for counting active clients.
    period: u32,
    /// This period's clients that sent something, receives, and the
    /// command count when it began.
    active: u64,
    recvs: u64,
    period_cmds_from: u64,
    /// Requests to wait for when sleeping, from the last period's traffic
    /// (1: wake on the first completion).
    batch: u32,
    /// Reused list of the AOF writer's submissions.
    aof_out: Vec<Submit>,
    /// Connections whose output waits for other cores' effective AOF
    /// offsets (`Conn::aof_remote`).
    aof_remote: Vec<Key>,
    /// What this core last published in `Aof::waits`.
    aof_waiting: bool,
    /// This core holds something until other cores' offsets move (counted
    /// in `Aof::blocked`).
    aof_blocked: bool,
    /// Stopping, this core's AOF is flushed (counted in
    /// `Aof::flushed_to_stop`).
    stop_flushed: bool,
    /// Messages taken from the inbox, handled in batches (`drain_inbox`).
    inbox: Vec<Msg>,
    /// Replies held for the replicas (`replica::Stream::guarded`): this
    /// turn's, then each with the ticket the replicas' output must reach,
    /// and the mark of the output it covers (`Conn::out_base`), and when
    /// the oldest began waiting (or the last was released).
    repl_turn: Vec<(Key, u64)>,
    repl_held: std::collections::VecDeque<(u64, Key, u64)>,
    repl_held_at: i64,
}

impl Core {
    /// Sets up core `id`: its ring, accepting on `listeners`.
    pub fn new(
        id: usize,
        cores: usize,
        shared: Arc<Shared>,
        mesh: Arc<Mesh>,
        services: crate::shard::Services,
        mut listeners: Vec<i32>,
        own: Vec<i32>,
    ) -> std::io::Result<Core> {
        let own_from = listeners.len();
        listeners.extend(own);
        let ring = Ring::new()?;
        let shard = Shard::new(id, cores, shared, mesh, services);
        Ok(Core {
            shard,
            ring,
            listeners,
            own_from,
            eventfd_buf: Box::new(0),
            cron_ts: Box::new(types::Timespec::new()),
            cqes: Vec::with_capacity(256),
            ahead: Vec::new(),
            paused: Vec::new(),
            period: 1,
            active: 0,
            recvs: 0,
            period_cmds_from: 0,
            batch: 1,
            aof_out: Vec::new(),
            aof_remote: Vec::new(),
            aof_waiting: false,
            aof_blocked: false,
            stop_flushed: false,
            inbox: Vec::with_capacity(16),
            repl_turn: Vec::new(),
            repl_held: std::collections::VecDeque::new(),
            repl_held_at: 0,
        })
    }

    fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an entry points at (a connection's receive
        // or send buffer, its send vector and the big bulks it names, the
        // eventfd word, the cron timespec) stays
        // allocated and unmoved until its completion is reaped:
        // connections are only freed once nothing is in flight for them.
        unsafe { self.ring.push(e) };
    }

    fn arm_accept(&mut self, idx: usize) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listeners[idx]))
            .build()
            .user_data(user_data(
                KIND_ACCEPT,
                Key {
                    index: idx as u32,
                    gen: 0,
                },
            ));
        self.push_sqe(e);
    }

    /// Arms what wakes this core when another core sends it a message:
    /// a wait on its futex word, reset first, or else a read of its eventfd.
    fn arm_wake(&mut self) {
        if self.shard.mesh.futex() {
            let word = self.shard.mesh.futex_word(self.shard.id);
            word.store(0, Ordering::SeqCst);
            const FUTEX2_SIZE_U32: u32 = 0x02;
            const FUTEX2_PRIVATE: u32 = 128;
            let e = opcode::FutexWait::new(
                word.as_ptr(),
                0,
                u32::MAX as u64,
                FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            )
            .build()
            .user_data(user_data(KIND_WAKE, Key { index: 0, gen: 0 }));
            self.push_sqe(e);
            return;
        }
        let fd = self.shard.mesh.eventfd(self.shard.id);
        let ptr = &mut *self.eventfd_buf as *mut u64 as *mut u8;
        let e = opcode::Read::new(types::Fd(fd), ptr, 8)
            .build()
            .user_data(user_data(KIND_WAKE, Key { index: 0, gen: 0 }));
        self.push_sqe(e);
    }

    /// Arms the cron timer: a timeout entry that completes after one
    /// period (`hz`), so a sleeping core needs no timeout of its own.
    fn arm_cron(&mut self) {
        let ms = 1000 / self.shard.settings.hz.clamp(1, 500) as u64;
        *self.cron_ts = types::Timespec::new().nsec((ms * 1_000_000) as u32);
        let e = opcode::Timeout::new(&*self.cron_ts)
            .build()
            .user_data(user_data(KIND_CRON, Key { index: 0, gen: 0 }));
        self.push_sqe(e);
    }

    /// Arms a multishot receive: the kernel keeps delivering data into
    /// buffers from the core's buffer ring until the socket closes or the
    /// ring runs dry (then this is called again).
    fn arm_recv(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if c.recv_inflight || c.closing || c.recv_paused || c.moving {
            return;
        }
        c.recv_inflight = true;
        c.recv_switching = false;
        // The rest of a big argument goes straight into its buffer, as
        // Redis reads it into a query buffer of its size: one copy, the
        // kernel's, instead of a second one out of the shared buffers.
        let e = if let Some((ptr, len)) = c.big_spare() {
            c.recv_into_big = true;
            with_target!(c, key, |f| opcode::Recv::new(f, ptr, len).build())
        } else {
            let group = self.ring.bufring.group;
            with_target!(c, key, |f| opcode::RecvMulti::new(f, group).build())
        };
        self.push_sqe(e.user_data(user_data(KIND_RECV, key)));
    }

    /// Once a big argument starts arriving, ends the multishot receive so
    /// that [`Core::arm_recv`] receives the rest straight into its buffer.
    fn switch_to_big_recv(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if !c.recv_inflight || c.recv_into_big || c.recv_switching || c.big_spare().is_none() {
            return;
        }
        c.recv_switching = true;
        self.cancel_recv(key);
    }

    /// Cancels connection `key`'s receive (multishot or single): its last
    /// completion comes with `ECANCELED`, or with data if it was ending.
    fn cancel_recv(&mut self, key: Key) {
        let recv = user_data(KIND_RECV, key);
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(recv))
            .build()
            .user_data(user_data(KIND_CANCEL, key));
        self.push_sqe(e);
    }

    fn start_send(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        // (A moving connection's output leaves from its new core.)
        if c.send_inflight || c.closing || c.moving {
            return;
        }
        if c.unsent().next().is_none() {
            // Replies that may reveal a write not yet on disk wait.
            if self
                .shard
                .aof
                .as_ref()
                .is_some_and(|a| c.aof_need > a.durable(&self.shard.persist.aof))
                || (!c.aof_remote.is_empty() && !self.shard.persist.aof.lags())
            {
                return;
            }
            c.sent_all();
            if c.out.is_empty() && c.out_big.is_empty() {
                return;
            }
            let mut m = c.out.len();
            if c.flush_queued {
                // Output came after the send pass last looked (a command
                // run while receiving): only what that look's wait covered
                // goes now, the rest once the pass has looked at it.
                // Sent whole, a release of the earlier wait let a SET's
                // reply go before its write under `always`
                // (`appendfsync_always_loses_no_acknowledged_write` lost an
                // acknowledged write so in a few of about a hundred runs).
                m = m.min(c.hold_mark);
            }
            if c.repl_holds > 0 {
                // Turns of output still wait for the replicas': only what
                // the released ones cover goes.
                m = m.min(c.repl_sendable.saturating_sub(c.out_base) as usize);
            }
            if m == 0 {
                return;
            }
            if m < c.out.len() {
                let rest = c.out.split_off(m);
                let n = c.out_big.partition_point(|(at, _)| *at < m);
                let mut rest_big = c.out_big.split_off(n);
                for (at, _) in &mut rest_big {
                    *at -= m;
                }
                c.sending = std::mem::replace(&mut c.out, rest);
                c.sending_big = std::mem::replace(&mut c.out_big, rest_big);
            } else {
                std::mem::swap(&mut c.sending, &mut c.out);
                std::mem::swap(&mut c.sending_big, &mut c.out_big);
            }
            c.out_base += m as u64;
            c.hold_mark = c.hold_mark.saturating_sub(m);
        }
        if c.sending_big.is_empty() {
            c.send_vec = None;
            let rest = &c.sending[c.send_off..];
            let (ptr, len) = (rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32);
            c.send_inflight = true;
            let e = with_target!(c, key, |f| opcode::Send::new(f, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build())
            .user_data(user_data(KIND_SEND, key));
            self.push_sqe(e);
            return;
        }
        // Big bulks go out from the values themselves, with the output
        // around them, in one sendmsg.
        let mut v = c.send_vec.take().unwrap_or_else(|| {
            Box::new(SendVec {
                // SAFETY: msghdr and iovec are plain C structs; all zeroes
                // is a valid (empty) value of each.
                msg: unsafe { std::mem::zeroed() },
                iov: unsafe { std::mem::zeroed() },
            })
        });
        let mut n = 0;
        for part in c.unsent().take(SEND_PIECES) {
            v.iov[n] = libc::iovec {
                iov_base: part.as_ptr() as *mut libc::c_void,
                iov_len: part.len(),
            };
            n += 1;
        }
        if n == 0 {
            c.send_vec = Some(v);
            return;
        }
        v.msg.msg_iov = v.iov.as_mut_ptr();
        v.msg.msg_iovlen = n as _;
        let msg: *const libc::msghdr = &v.msg;
        c.send_vec = Some(v);
        c.send_inflight = true;
        let e = with_target!(c, key, |f| opcode::SendMsg::new(f, msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build())
        .user_data(user_data(KIND_SEND, key));
        self.push_sqe(e);
    }

    /// Runs the loop until shutdown.
    pub fn run(&mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.arm_wake();
        self.arm_cron();
        self.shard.mesh.batch_wakes();
        let shared = &self.shard.shared;
        if shared.cores_up.fetch_add(1, Ordering::AcqRel) + 1 == self.shard.cores {
            // INFO's used_memory_startup: the process with its cores up
            // and no data, taken by the last core up before it serves.
            let used = crate::alloc::used_memory();
            shared.startup_memory.store(used, Ordering::Relaxed);
            shared.peak_memory.fetch_max(used, Ordering::Relaxed);
        }
        loop {
            // One clock read a turn: commands, cron and the wait all use it.
            let now = now_ms();
            self.shard.now_ms = now;
            if self.shard.loading && !self.shard.persist.loading.load(Ordering::Acquire) {
                self.shard.finish_loading();
            }
            self.aof_deps();
            self.reap();
            self.aof_effective();
            self.aof_deps();
            self.drain_inbox();
            // The pipelines' replies this core sends on other cores'
            // sockets go together.
            self.shard.flush_direct();
            self.repl_release();
            // Invalidations for tracking clients (BCAST's once a turn),
            // before the send pass.
            self.shard.track_after(true);
            self.turn();
            self.aof_pump();
            self.repl_hold();
            self.shard.expire_waiters(now);
            // Big values the turn deleted go to the lazy free thread.
            if self.shard.engine.has_garbage() {
                crate::shared::free_later(self.shard.engine.take_garbage());
            }
            // (Pipelines the turn's unlocks served.)
            self.shard.flush_direct();
            // The cores this turn sent to are woken once, now.
            self.shard.mesh.flush_wakes();
            // A snapshot's walk comes after the turn's replies have left:
            // submitted first, they do not wait for the walk's step.
            if self.shard.snapshot_due() && !self.ring.nothing_to_submit() {
                self.ring.enter(None, None);
            }
            let snapshot_work = self.shard.snapshot_turn();
            // (Not while a reserved pipeline's part may still be logged
            // here: `Shard::aof_part`.)
            if self.shard.stopping && !self.shard.parts_pending() && self.aof_finished() {
                if !self.stop_flushed {
                    // A client's acknowledged writes may be on any core:
                    // connections close once every core's AOF is flushed.
                    self.stop_flushed = true;
                    let flushed = &self.shard.persist.aof.flushed_to_stop;
                    flushed.fetch_add(1, Ordering::SeqCst);
                    self.wake_others();
                }
                let flushed = &self.shard.persist.aof.flushed_to_stop;
                if flushed.load(Ordering::SeqCst) >= self.shard.cores {
                    if self.shard.conns.len() == 0 {
                        return;
                    }
                    self.shard.close_all();
                    self.free_closed();
                }
            }
            // Work in hand, or entries to submit (the sends of this turn,
            // which complete as they are submitted): submit, collect what
            // is done, and come back without sleeping. Only an idle core
            // marks itself asleep, so a turn costs no barrier.
            // Invalidations the turn's commands left (BCAST keys) go at
            // the top of the next turn, before any sleep.
            // With the AOF on, waiting for other cores'
            // effective AOF offsets: flagged (they wake this core when
            // theirs moves), then looked at once more.
            // Under `everysec` and `no` dependencies alone wait for
            // nothing unless some core holds something (`Aof::blocked`);
            // the first to hold something wakes the others, so that those
            // with dependencies ask to be woken too (the offsets it waits
            // for may wait for theirs).
            let blocked = self.shard.aof.as_deref().is_some_and(|a| a.holds())
                || !self.aof_remote.is_empty()
                || !self.shard.aof_stalled.is_empty()
                || self.shard.direct_waiting();
            if blocked != self.aof_blocked {
                self.aof_blocked = blocked;
                let count = &self.shard.persist.aof.blocked;
                if !blocked {
                    count.fetch_sub(1, Ordering::SeqCst);
                } else if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    self.wake_others();
                }
            }
            let aof = &self.shard.persist.aof;
            let waiting = blocked
                || self.shard.aof.as_deref().is_some_and(|a| {
                    a.depends() && (!aof.lags() || aof.blocked.load(Ordering::SeqCst) > 0)
                });
            if waiting != self.aof_waiting {
                self.aof_waiting = waiting;
                aof.waits[self.shard.id].store(waiting, Ordering::SeqCst);
            }
            let moved = waiting && self.aof_effective();
            let busy = moved
                || !self.shard.resume.is_empty()
                || self.shard.exec.has_ready()
                || snapshot_work
                || self
                    .shard
                    .engine
                    .tracking
                    .as_deref()
                    .is_some_and(|t| t.has_pending());
            // The cron timer wakes an idle core; only a blocked client's
            // deadline needs a timeout on the wait.
            let mut deadline = (!busy).then(|| self.shard.next_deadline()).flatten();
            if !busy && self.batch > 1 && deadline.is_none() {
                self.shard.mesh.batch_sleep(self.shard.id);
            } else if !busy {
                // A sleep that may be long ends when the AOF records that
                // wait for their write are due (a batch wait is short).
                let aof = &self.shard.persist.aof;
                let due = self.shard.aof.as_deref().and_then(|a| a.due_ms(aof));
                deadline = match (deadline, due) {
                    (Some(d), Some(w)) => Some(d.min(w)),
                    (d, w) => d.or(w),
                };
            }
            if busy
                || !self.ring.nothing_to_submit()
                || !self.shard.mesh.prepare_sleep(self.shard.id)
            {
                self.shard.mesh.woke(self.shard.id);
                self.ring.enter(Some(0), None);
                continue;
            }
            let ts = deadline.map(|d| {
                let wait_ms = (d - now).clamp(0, 1000);
                types::Timespec::new()
                    .sec((wait_ms / 1000) as u64)
                    .nsec(((wait_ms % 1000) * 1_000_000) as u32)
            });
            // A sleep and its wake-up cost about as much CPU as serving a
            // request. With many active clients each sending one request
            // at a time, a core sleeps until several requests are in
            // (`batch_size`): with DEFER_TASKRUN the kernel wakes it only
            // then, and the replies go out together, while the other
            // clients keep their sender busy. A wait that times out means
            // the load fell: then every completion wakes the core until
            // the next cron period. Few clients, pipelines, or messages
            // from other cores: wake on the first completion. (Measured
            // and not kept: io_uring's min-wait, which wakes at the first
            // completion and sleeps again, and a short busy poll before
            // sleeping, which costs more CPU than the sleep it saves.)
            let want = if ts.is_none() { self.batch } else { 1 };
            if want > 1 {
                let ts = types::Timespec::new().nsec(BATCH_WAIT_NS as u32);
                self.ring.enter(Some(want), Some(&ts));
                // (What other cores sent meanwhile counts: their requests
                // did not wake it, and their answers are work too.)
                let came = self.ring.completions_ready() + self.shard.mesh.waiting(self.shard.id);
                if (came as u32) < want {
                    self.batch = 1;
                }
            } else {
                self.ring.enter(Some(1), ts.as_ref());
            }
            self.shard.mesh.woke(self.shard.id);
        }
    }

    /// Runs queued work: resumed connections, tasks, sends.
    fn turn(&mut self) {
        for _ in 0..64 {
            let resume = std::mem::take(&mut self.shard.resume);
            for key in resume {
                commands::process(&mut self.shard, key);
            }
            for (_, done) in self.shard.exec.run() {
                self.shard.task_done(done);
            }
            if self.shard.resume.is_empty() && !self.shard.exec.has_ready() {
                break;
            }
        }
        // This turn's MONITOR lines, to every core's monitors.
        if !self.shard.monitor_out.is_empty() {
            self.shard.monitor_flush();
        }
        if !self.shard.moving.is_empty() {
            for key in std::mem::take(&mut self.shard.moving) {
                self.start_move(key);
            }
        }
        self.resume_recvs();
        // A task may have handed a replica's connection over.
        if !self.shard.closed.is_empty() {
            self.free_closed();
        }
        // The turn's keyspace events, before its output leaves.
        if self.shard.engine.has_events() {
            self.shard.publish_events();
        }
        let flush = std::mem::take(&mut self.shard.flush);
        for key in flush {
            if self.aof_hold(key) {
                // The turn waits for the replicas' output too (each hold
                // caps what `start_send` sends, whichever ends first).
                let stream = self.shard.replication.stream();
                if stream.active() && stream.guarded() {
                    self.repl_look(key);
                }
                continue;
            }
            // Looked at: its output may go (see `start_send`).
            if let Some(c) = self.shard.conns.get_mut(key) {
                c.flush_queued = false;
            }
            if self.over_output_limit(key) {
                if let Some(c) = self.shard.conns.get(key) {
                    log::warning(format_args!(
                        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                        c.info_line(self.shard.now_ms)
                    ));
                }
                self.close(key);
                continue;
            }
            let stream = self.shard.replication.stream();
            if stream.active() && stream.guarded() {
                // Sent once this turn's writes are in the replicas'
                // output (`repl_hold`, after the turn's log is pushed).
                if let Some(c) = self.shard.conns.get_mut(key) {
                    c.hold_mark = c.out.len();
                }
                self.repl_look(key);
                continue;
            }
            self.start_send(key);
        }
    }

    /// `key`'s output that the last look covered (`Conn::hold_mark`)
    /// waits for the replicas' output to cover this turn's writes
    /// ([`Core::repl_hold`]).
    fn repl_look(&mut self, key: Key) {
        if let Some(c) = self.shard.conns.get_mut(key) {
            c.repl_holds += 1;
            let mark = c.out_base + c.hold_mark.min(c.out.len()) as u64;
            self.repl_turn.push((key, mark));
        }
    }

    /// A held turn of `key`'s output may go (up to `mark`).
    fn repl_unhold(&mut self, key: Key, mark: u64) {
        if let Some(c) = self.shard.conns.get_mut(key) {
            c.repl_holds = c.repl_holds.saturating_sub(1);
            c.repl_sendable = c.repl_sendable.max(mark);
        }
        self.start_send(key);
    }

    /// This turn's held replies wait for every ticket taken so far (this
    /// core's chunk was just pushed; a remote write's before its answer).
    fn repl_hold(&mut self) {
        if self.repl_turn.is_empty() {
            return;
        }
        let need = self.shard.replication.stream().next_ticket();
        if self.repl_held.is_empty() {
            self.repl_held_at = self.shard.now_ms;
        }
        for (key, mark) in std::mem::take(&mut self.repl_turn) {
            self.repl_held.push_back((need, key, mark));
        }
        self.repl_release();
    }

    /// Sends the held replies the replicas' output covers (all of them
    /// once no replica takes the stream); asks to be woken for the rest.
    fn repl_release(&mut self) {
        for pass in 0..2 {
            let stream = self.shard.replication.stream();
            let (sent, guarded) = (stream.sent(), stream.guarded());
            let mut released = false;
            while let Some(&(need, key, mark)) = self.repl_held.front() {
                if guarded && need > sent {
                    break;
                }
                self.repl_held.pop_front();
                self.repl_unhold(key, mark);
                released = true;
            }
            if released {
                self.repl_held_at = self.shard.now_ms;
            }
            if self.repl_held.is_empty() || pass == 1 {
                return;
            }
            // Registered first, then `sent` read again: a round that
            // ended in between is not missed.
            self.shard.replication.stream().wait_sent(self.shard.id);
        }
    }

    /// `client-output-buffer-limit`, checked when output was added, as
    /// Redis does: the client's unsent bytes reached its class's hard limit,
    /// or have stayed at or above the soft limit for longer than its
    /// seconds (tracked from the first time they were seen there).
    fn over_output_limit(&mut self, key: Key) -> bool {
        let now_s = self.shard.now_ms / 1000;
        let Some(c) = self.shard.conns.get_mut(key) else {
            return false;
        };
        let pending = c.pending_out();
        let limit = self.shard.settings.obuf[if c.sub_count() > 0 { 2 } else { 0 }];
        let hard = limit.hard > 0 && pending as u64 >= limit.hard;
        let mut soft = limit.soft > 0 && pending as u64 >= limit.soft;
        if soft {
            if c.obuf_soft_since == 0 {
                c.obuf_soft_since = now_s;
                soft = false;
            } else if now_s - c.obuf_soft_since <= limit.soft_seconds as i64 {
                soft = false;
            }
        } else {
            c.obuf_soft_since = 0;
        }
        hard || soft
    }

    /// Handles every posted completion.
    fn reap(&mut self) {
        let mut batch = std::mem::take(&mut self.cqes);
        loop {
            batch.clear();
            self.ring.take_completions(&mut batch);
            if batch.is_empty() {
                self.cqes = batch;
                return;
            }
            // First take in every received buffer and prefetch what each
            // connection will look up, in three steps (every key's slot
            // header, table word, then entry), then run them: the lookups'
            // cache misses overlap instead of following one another. (With
            // a single receive there is nothing to overlap.)
            let recvs = batch
                .iter()
                .filter(|&&(ud, _, _)| split_user_data(ud).0 == KIND_RECV)
                .count();
            for &(ud, res, flags) in &batch {
                let (kind, key) = split_user_data(ud);
                if kind == KIND_RECV {
                    self.ingest(key, res, flags, recvs > 1);
                }
            }
            for &ahead in &self.ahead {
                self.shard.engine.prefetch_entry(ahead);
            }
            for ahead in self.ahead.drain(..) {
                self.shard.engine.prefetch_node(ahead);
            }
            for &(ud, res, flags) in &batch {
                let (kind, key) = split_user_data(ud);
                match kind {
                    KIND_ACCEPT => self.on_accept(key.index as usize, res, flags),
                    KIND_RECV => self.on_recv(key, res, flags),
                    KIND_SEND => self.on_send(key, res),
                    KIND_WAKE => self.arm_wake(),
                    KIND_CRON => {
                        self.cron(self.shard.now_ms);
                        self.arm_cron();
                    }
                    KIND_AOF_WRITE | KIND_AOF_FSYNC | KIND_AOF_ZERO | KIND_AOF_CUT => {
                        self.aof_done(kind, res)
                    }
                    _ => {}
                }
            }
        }
    }

    fn on_accept(&mut self, idx: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.shard.stopping {
            self.arm_accept(idx);
        }
        if res < 0 {
            // (A shutdown shuts the listening sockets down before every
            // core has heard of it: their accepts end with EINVAL then.)
            let stopping =
                self.shard.stopping || self.shard.shared.shutdown.load(Ordering::Relaxed);
            if !stopping && res != -libc::EAGAIN && res != -libc::EINTR {
                log::warning(format_args!(
                    "Accepting client connection: accept: {}",
                    log::io_error_text(&std::io::Error::from_raw_os_error(-res))
                ));
            }
            return;
        }
        let fd = res;
        // (A core told to stop may be gone already: hand it nothing.)
        if self.shard.stopping || self.shard.shared.shutdown.load(Ordering::Relaxed) {
            // SAFETY: we own the accepted fd.
            unsafe { libc::close(fd) };
            return;
        }
        if !self.admit(fd) {
            return;
        }
        // The node's port spreads connections; a core's own port keeps them.
        let to = match idx < self.own_from {
            true => least_loaded(self.shard.id, &self.shard.shared.core_clients),
            false => self.shard.id,
        };
        // Counted now, so the next accept (on any core) sees it placed.
        self.shard.shared.core_clients[to].fetch_add(1, Ordering::Relaxed);
        if to == self.shard.id {
            self.adopt(fd, None);
        } else {
            self.shard.mesh.send(to, Msg::Adopt { fd, master: None });
        }
    }

    /// Redis's admission of a new connection: `maxclients`, then protected
    /// mode. A refused client gets Redis's error line, is closed and counts
    /// as rejected; an admitted one counts as received.
    fn admit(&mut self, fd: i32) -> bool {
        let clients = self.shard.shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let refusal: Option<&[u8]> = if clients > self.shard.settings.maxclients {
            Some(b"-ERR max number of clients reached\r\n")
        } else if net::protected_mode_denies(
            net::sock_addr(fd, true).map(|a| a.ip()),
            self.shard.settings.protected_mode,
            self.shard.settings.requirepass.is_some(),
        ) {
            Some(net::PROTECTED_MODE_DENIED)
        } else {
            None
        };
        let Some(msg) = refusal else {
            self.shard.stats.total_connections_received += 1;
            return true;
        };
        self.shard.shared.clients.fetch_sub(1, Ordering::Relaxed);
        self.shard.stats.rejected_connections += 1;
        // SAFETY: best-effort write then close of our own fd.
        unsafe {
            libc::send(
                fd,
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
            libc::close(fd);
        }
        false
    }

    /// Takes on an admitted connection, accepted here or handed over by the
    /// core that accepted it (already counted in `core_clients`): socket
    /// options, names, the registered file slot, the first receive. A
    /// stopping core closes it instead.
    fn adopt(&mut self, fd: i32, master: Option<(String, u64)>) {
        if self.shard.stopping {
            // SAFETY: the handed-over fd is ours; nothing uses it.
            unsafe { libc::close(fd) };
            self.shard.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shard.shared.core_clients[self.shard.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        net::nodelay(fd);
        if self.shard.settings.tcp_keepalive_s > 0 {
            net::keepalive(fd, self.shard.settings.tcp_keepalive_s);
        }
        let is_master = master.is_some();
        let feed = master.as_ref().map_or(0, |m| m.1);
        let addr = master.map_or_else(|| net::sock_name(fd, true), |m| m.0);
        let laddr = net::sock_name(fd, false);
        let id = self
            .shard
            .shared
            .next_client_id
            .fetch_add(1, Ordering::Relaxed);
        let authed = is_master || self.shard.settings.requirepass.is_none();
        if is_master {
            self.shard.shared.master_client.store(id, Ordering::SeqCst);
        }
        let mut conn = Conn::new(fd, id, addr, laddr, now_ms(), authed);
        conn.master = is_master;
        conn.feed = feed;
        self.install(conn);
    }

    /// Serves `conn` (socket `conn.fd`) on this core: its slab entry, its
    /// registered file slot and its receive.
    fn install(&mut self, conn: Conn) -> Key {
        let fd = conn.fd;
        let key = self.shard.conns.insert(conn);
        self.shard.stats.connected_clients += 1;
        if self.ring.register_file(key.index, fd) {
            if let Some(c) = self.shard.conns.get_mut(key) {
                c.fixed = true;
            }
        }
        self.arm_recv(key);
        key
    }

    /// Copies a receive's bytes into the connection's buffer and hands
    /// the ring buffer back; with `prefetch`, starts prefetching the first
    /// request's key (its slot header; `reap` then asks for the entry).
    fn ingest(&mut self, key: Key, res: i32, flags: u32, prefetch: bool) {
        if let Some(c) = self.shard.conns.get_mut(key) {
            if std::mem::take(&mut c.recv_into_big) && res > 0 {
                c.big_received(res as usize);
            }
        }
        let bid = cqueue::buffer_select(flags);
        if res > 0 {
            if let (Some(bid), Some(c)) = (bid, self.shard.conns.get_mut(key)) {
                if !c.closing {
                    c.take_in(self.ring.bufring.data(bid, res as usize));
                }
            }
        }
        if let Some(bid) = bid {
            self.ring.bufring.consumed(bid, res.max(0) as usize, flags);
        }
        // A growing input buffer counts against maxmemory too.
        if self.shard.settings.maxmemory > 0 {
            self.shard.perform_evictions();
        }
        if let Some(c) = self.shard.conns.get(key) {
            if prefetch && res > 0 && c.wait == Wait::No && c.rpos < c.rbuf.len() {
                let limits = self.shard.settings.limits;
                let rest = &c.rbuf[c.rpos..];
                if let Some((Some(k), _)) = first_key(
                    &mut self.shard.stats,
                    &mut self.shard.ahead_spans,
                    rest,
                    &limits,
                ) {
                    self.ahead.extend(self.shard.engine.prefetch_slot(c.db, k));
                }
            }
        }
    }

    /// Handles a receive completion after [`Core::ingest`] took its bytes.
    fn on_recv(&mut self, key: Key, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if c.direct && !c.direct_input {
            self.shard.direct_received(key);
        }
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if !more {
            c.recv_inflight = false;
        }
        if c.closing {
            self.try_free(key);
            return;
        }
        if res <= 0 {
            // ECANCELED: paused (`pause_recv_if_ahead`), and perhaps
            // already resumed while the cancel was on its way; or moving.
            if res == -libc::EINTR
                || res == -libc::EAGAIN
                || res == -libc::ENOBUFS
                || res == -libc::ECANCELED
            {
                if res == -libc::ENOBUFS {
                    self.ring.bufring.starved();
                }
                let Some(c) = self.shard.conns.get_mut(key) else {
                    return;
                };
                if c.moving {
                    self.finish_move(key);
                } else {
                    self.arm_recv(key);
                }
                return;
            }
            if res == 0 && c.master {
                // The feed closed: what it sent still runs, in order.
                c.eof = true;
                commands::process(&mut self.shard, key);
                return;
            }
            self.close(key);
            return;
        }
        c.last_ms = self.shard.now_ms;
        self.recvs += 1;
        if c.active_in != self.period {
            c.active_in = self.period;
            self.active += 1;
        }
        self.shard.stats.net_input_bytes += res as u64;
        if c.moving {
            // What came before the cancel travels with it (`ingest` took
            // it in); the client limits are checked on the new core.
            self.finish_move(key);
            return;
        }
        // (Not the master client's, as in Redis: its stream is bounded by
        // the link, and what it drops the offset counts.)
        if !c.master && c.query_len() > self.shard.settings.query_buf_max {
            log::warning(format_args!(
                "Closing client that reached max query buffer length: id={} addr={} (qbuf initial bytes: {:?})",
                c.id,
                c.addr,
                String::from_utf8_lossy(&c.rbuf[c.rpos..c.rpos + 64.min(c.rbuf.len() - c.rpos)])
            ));
            self.close(key);
            return;
        }
        commands::process(&mut self.shard, key);
        self.pause_recv_if_ahead(key);
        self.switch_to_big_recv(key);
        self.arm_recv(key);
    }

    /// Starts moving connection `key`, which `Shard::want_move` chose at a
    /// request boundary: its multishot receive is cancelled, and once its
    /// last completion is in ([`Core::finish_move`]) it goes.
    fn start_move(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if !c.moving || c.closing {
            return;
        }
        if !c.recv_inflight {
            self.finish_move(key);
            return;
        }
        if !c.cancel_sent {
            c.cancel_sent = true;
            self.cancel_recv(key);
        }
    }

    /// Hands a moving connection to the core its commands go to once its
    /// receive has ended: it leaves this core's slab, registered files and
    /// count, and its socket and state (unread input and unsent replies
    /// included) travel as `Msg::Moved`. Nothing is in flight on the
    /// socket meanwhile (no receive, no send: none was when it chose to
    /// move, and none starts after; no task), and whatever the client
    /// sends next waits in the kernel for the new core's receive; the new
    /// core sends the replies it brought first.
    fn finish_move(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get(key) else {
            return;
        };
        if !c.moving || c.closing || c.recv_inflight || c.send_inflight {
            return;
        }
        let to = c.aff_core;
        let Some(c) = self.shard.conns.remove(key) else {
            return;
        };
        if c.fixed {
            self.ring.unregister_file(key.index);
        }
        let shared = &self.shard.shared;
        shared.core_clients[to].fetch_add(1, Ordering::Relaxed);
        shared.core_clients[self.shard.id].fetch_sub(1, Ordering::Relaxed);
        self.shard.stats.connected_clients = self.shard.stats.connected_clients.saturating_sub(1);
        self.shard.stats.connections_moved += 1;
        let mut m = c.departing();
        m.moved_ms = self.shard.now_ms;
        self.shard.mesh.send(to, Msg::Moved(Box::new(m)));
    }

    /// Takes on a connection another core moved here (already counted in
    /// `core_clients`): its registered file slot and receive, and its
    /// unread input runs this turn. A stopping core closes it instead.
    fn arrive(&mut self, m: Moved) {
        if self.shard.stopping {
            // SAFETY: the handed-over fd is ours; nothing uses it.
            unsafe { libc::close(m.fd) };
            self.shard.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shard.shared.core_clients[self.shard.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut conn = Conn::arrived(m);
        conn.aff_core = self.shard.id;
        let input = !conn.rbuf.is_empty();
        let output = conn.pending_out() > 0;
        let key = self.install(conn);
        if output {
            self.shard.want_flush(key);
        }
        if input {
            self.shard.resume.push(key);
        }
    }

    /// Stops receiving on a connection that holds more than
    /// [`INPUT_AHEAD_MAX`] of unread input while a task runs its earlier
    /// commands (its multishot receive is cancelled; what the kernel
    /// already delivered is still taken in). [`Core::resume_recvs`]
    /// starts it again.
    fn pause_recv_if_ahead(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if c.recv_paused || c.wait == Wait::No || c.query_len() <= INPUT_AHEAD_MAX {
            return;
        }
        c.recv_paused = true;
        self.paused.push(key);
        if c.recv_inflight {
            self.cancel_recv(key);
        }
    }

    /// Receives again on the paused connections that took their input
    /// down to half of [`INPUT_AHEAD_MAX`], or that wait for nothing (what
    /// is left is the start of a command whose rest is still to come).
    fn resume_recvs(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        let paused = std::mem::take(&mut self.paused);
        for key in paused {
            let Some(c) = self.shard.conns.get_mut(key) else {
                continue;
            };
            if c.closing {
                continue;
            }
            if c.wait == Wait::No || c.query_len() <= INPUT_AHEAD_MAX / 2 {
                c.recv_paused = false;
                self.arm_recv(key);
            } else {
                self.paused.push(key);
            }
        }
    }

    fn on_send(&mut self, key: Key, res: i32) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        c.send_inflight = false;
        if c.closing {
            self.try_free(key);
            return;
        }
        if res < 0 {
            if res == -libc::EINTR || res == -libc::EAGAIN {
                self.shard.want_flush(key);
                return;
            }
            self.close(key);
            return;
        }
        c.sent(res as usize);
        self.shard.stats.net_output_bytes += res as u64;
        if c.unsent().next().is_none() {
            c.sent_all();
        }
        let pending = c.pending_out() > 0;
        if pending {
            self.shard.want_flush(key);
        } else if c.close_after_flush {
            self.close(key);
        }
    }

    /// Starts closing a connection ([`Shard::close`]) and frees it at
    /// once if nothing is in flight for it.
    fn close(&mut self, key: Key) {
        self.shard.close(key);
        self.free_closed();
    }

    /// Frees the connections the shard closed, those with nothing in
    /// flight at once (the others when their last completion arrives).
    fn free_closed(&mut self) {
        let closed = std::mem::take(&mut self.shard.closed);
        for key in closed {
            self.try_free(key);
        }
    }

    fn try_free(&mut self, key: Key) {
        let Some(c) = self.shard.conns.get_mut(key) else {
            return;
        };
        if c.handoff && c.recv_inflight && !c.cancel_sent {
            // A replica's socket stays open: its receive is cancelled.
            // Every request on the socket, whatever its user data.
            c.cancel_sent = true;
            let e = with_target!(c, key, |f| opcode::AsyncCancel2::new(
                types::CancelBuilder::fd(f).all()
            )
            .build())
            .user_data(user_data(KIND_CANCEL, key));
            self.push_sqe(e);
            return;
        }
        // (A connection whose replies another core may be sending keeps
        // its socket until that core answers; at shutdown it may not.)
        if c.recv_inflight || c.send_inflight || (c.direct && !self.shard.stopping) {
            return;
        }
        self.shard.monitor_stop(key);
        if let Some(mut c) = self.shard.conns.remove(key) {
            free_big_buffers(&mut c);
            if c.fixed {
                // The table holds the socket open too: drop that hold.
                self.ring.unregister_file(key.index);
            }
            if c.handoff {
                // SAFETY: nothing is in flight on this fd any more, and
                // nothing here uses it after this.
                let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(c.fd) };
                let out = c.sending[c.send_off..]
                    .iter()
                    .chain(c.out.iter())
                    .copied()
                    .collect();
                let input = c.rbuf.get(c.rpos..).unwrap_or_default().to_vec();
                let job = self.shard.replication.take_job(c.id);
                // `repl-disable-tcp-nodelay`: fewer, bigger packets to the
                // replica.
                let nodelay_off = self
                    .shard
                    .shared
                    .config
                    .lock()
                    .is_ok_and(|cfg| cfg.flag("repl-disable-tcp-nodelay"));
                if nodelay_off {
                    net::set_nodelay(c.fd, false);
                }
                self.shard.replication.note(crate::replica::Note::Socket {
                    conn: c.id,
                    addr: c.addr.clone(),
                    laddr: c.laddr.clone(),
                    fd,
                    out,
                    input,
                    job,
                });
            } else {
                if c.replconf {
                    self.shard
                        .replication
                        .note(crate::replica::Note::Gone { conn: c.id });
                }
                // SAFETY: nothing is in flight on this fd any more.
                unsafe { libc::close(c.fd) };
            }
            self.shard.shared.clients.fetch_sub(1, Ordering::Relaxed);
            self.shard.shared.core_clients[self.shard.id].fetch_sub(1, Ordering::Relaxed);
            self.shard.stats.connected_clients =
                self.shard.stats.connected_clients.saturating_sub(1);
        }
    }

    fn cron(&mut self, now: i64) {
        self.plan_batch();
        let s = &self.shard.stats;
        let counts = [
            s.total_commands_processed,
            s.net_input_bytes,
            s.net_output_bytes,
        ];
        for (rate, n) in self.shard.rates.iter_mut().zip(counts) {
            rate.sample(now, n);
        }
        self.shard.unstall_if_busy();
        // A replication thread that stopped making progress holds no
        // reply for long.
        if !self.repl_held.is_empty() && now - self.repl_held_at > 1000 {
            for (_, key, mark) in std::mem::take(&mut self.repl_held) {
                self.repl_unhold(key, mark);
            }
        }
        if let Some(a) = self.shard.aof.as_deref_mut() {
            a.cron(now, &self.shard.persist.aof, &mut self.aof_out);
            self.aof_push();
            if self.shard.persist.aof.closing() && self.aof_finished() {
                // Everything is on disk: whatever was held may go.
                if let Some(mut a) = self.shard.aof.take() {
                    let (mut msgs, mut conns) = (Vec::new(), Vec::new());
                    a.released(&self.shard.persist.aof, &mut msgs, &mut conns);
                    a.drain_all(&mut msgs, &mut conns);
                    for (to, m) in msgs {
                        self.shard.mesh.send(to, m);
                    }
                    // Every connection forgets the offsets it waited for
                    // or depended on: a log turned on again restarts from
                    // offset 0.
                    for key in self.shard.conns.keys() {
                        if let Some(c) = self.shard.conns.get_mut(key) {
                            c.aof_need = 0;
                            c.aof_remote.clear();
                        }
                    }
                    for key in conns {
                        self.start_send(key);
                    }
                    // Those that waited for other cores' logs too (only
                    // an AOF's progress looked at them again).
                    for key in std::mem::take(&mut self.aof_remote) {
                        self.shard.want_flush(key);
                    }
                }
                if !self.shard.replication.stream().active() {
                    self.shard.engine.disable_log();
                }
            }
        }
        self.shard.persist_cron(now);
        self.shard.keep_log();
        // (A promotion may have missed core 0's last look.)
        self.shard.replication.finish_promotion();
        // Active expiry: Redis's adaptive cycle, bounded to a quarter of a
        // tick's time.
        let budget =
            std::time::Duration::from_micros(250_000 / self.shard.settings.hz.clamp(1, 500) as u64);
        let start = std::time::Instant::now();
        // A replica leaves expiry to its master's DELs (Redis's
        // `expireIfNeeded` and `activeExpireCycle` with a master host).
        let replica = self.shard.shared.replica.load(Ordering::Relaxed);
        // CLIENT PAUSE holds expiry and eviction too (nothing may change
        // the dataset); when it ends, the connections it held go on.
        let paused = self.shard.shared.client_pause().is_some();
        if !paused && !self.shard.writes_paused && !self.shard.paused_conns.is_empty() {
            self.shard.resume_paused();
        }
        self.shard.engine.keep_expired = replica || paused;
        let active_expire =
            self.shard.shared.active_expire.load(Ordering::Relaxed) && !replica && !paused;
        for db in (0..self.shard.engine.dbs.len()).filter(|_| active_expire) {
            loop {
                let (sampled, expired) = self.shard.engine.active_expire(db, 20, now);
                if sampled == 0 || expired * 10 <= sampled || start.elapsed() > budget {
                    break;
                }
            }
        }
        // maxmemory: evict when over, as Redis's cron does; publish what
        // this core could evict for the others, and the peak.
        if self.shard.settings.maxmemory > 0 {
            self.shard.perform_evictions();
            self.shard.publish_evictable();
        }
        if self.shard.engine.has_events() {
            self.shard.publish_events();
        }
        self.shard
            .shared
            .peak_memory
            .fetch_max(crate::alloc::used_memory(), Ordering::Relaxed);
        // Idle connections give back a long pipeline's input buffer.
        for key in self.shard.conns.keys() {
            if let Some(c) = self.shard.conns.get_mut(key) {
                if c.rbuf.is_empty()
                    && c.rbuf.capacity() > crate::io::BUF_KEEP
                    && now - c.last_ms >= crate::io::IDLE_FREE_MS
                {
                    c.rbuf = Vec::new();
                }
            }
        }
        // Idle clients (`timeout`).
        if self.shard.settings.timeout_s > 0 {
            let limit = self.shard.settings.timeout_s as i64 * 1000;
            for key in self.shard.conns.keys() {
                let idle = self.shard.conns.get(key).is_some_and(|c| {
                    now - c.last_ms > limit
                        && c.wait != Wait::Blocked
                        && c.sub_count() == 0
                        && !c.master
                });
                if idle {
                    self.close(key);
                }
            }
        }
        if self.shard.shared.shutdown.load(Ordering::Relaxed) && !self.shard.stopping {
            self.stop();
        }
    }

    /// Closes a cron period: sets how many requests a sleep waits for
    /// from the traffic it saw. Batching is for many clients each sending
    /// one request at a time; pipelined traffic already brings many
    /// requests per wake-up.
    fn plan_batch(&mut self) {
        // (CONFIG RESETSTAT may have zeroed the count meanwhile.)
        let cmds = self
            .shard
            .stats
            .total_commands_processed
            .saturating_sub(self.period_cmds_from);
        let period_ns = 1_000_000_000 / self.shard.settings.hz.clamp(1, 500) as u64;
        // A message wakes a core sleeping on its futex at once, so messages
        // need not keep it from batching; on an eventfd they would wait.
        let msgs = if self.shard.mesh.futex() {
            0
        } else {
            self.shard.msgs
        };
        self.batch = batch_size(self.active, self.recvs, cmds, msgs, period_ns);
        self.period = self.period.wrapping_add(1);
        self.active = 0;
        self.recvs = 0;
        self.shard.msgs = 0;
        self.period_cmds_from = self.shard.stats.total_commands_processed;
    }

    /// Stops accepting and closes every connection.
    fn stop(&mut self) {
        self.shard.stop();
        self.shut_listeners();
        self.free_closed();
    }

    /// Shuts, not closes, the listening sockets: `main` closes them once
    /// every core is gone. Shutting a listening socket ends every core's
    /// pending accept and refuses new connections; a second shutdown is
    /// harmless.
    fn shut_listeners(&mut self) {
        for fd in std::mem::take(&mut self.listeners) {
            // SAFETY: the sockets stay open until every core has returned.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// Writes the dependency annotation before this turn's records when
    /// other cores' logs moved (see `persist::aof`), and with
    /// `aof-timestamp-enabled` the turn's second when it moved (the
    /// turn's cached clock: no clock read per write).
    fn aof_deps(&mut self) {
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return;
        };
        let aof = &self.shard.persist.aof;
        let deps = a.deps(aof);
        let Some(log) = self.shard.engine.write_log() else {
            return;
        };
        let stamps = aof.timestamps.load(Ordering::Relaxed);
        log.stamp(stamps.then_some((self.shard.now_ms / 1000) as u64));
        if deps {
            log.set_prelude(a.line());
        }
    }

    /// Hands this turn's log records to the AOF writer and submits what
    /// it asks for.
    fn aof_pump(&mut self) {
        self.shard.take_log();
        self.shard.parts_taken();
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return;
        };
        // (The turn's clock, whether or not it took records: the ones
        // waiting may be due.)
        a.clock(self.shard.now_ms);
        a.submit(&self.shard.persist.aof, &mut self.aof_out);
        self.aof_push();
    }

    /// Holds `key`'s output while what it may reveal is not on disk
    /// (`appendfsync always`); true when held.
    fn aof_hold(&mut self, key: Key) -> bool {
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return false;
        };
        let aof = &self.shard.persist.aof;
        if let Some(c) = self.shard.conns.get_mut(key) {
            if !c.aof_remote.is_empty() {
                c.aof_remote.retain(|&(d, x)| !aof.is_effective(d, x));
                // (Under `everysec` and `no` they stay for what the
                // client runs next to depend on; its replies go.)
                if !c.aof_remote.is_empty() && !aof.lags() {
                    c.hold_mark = c.out.len();
                    c.flush_queued = false;
                    self.aof_remote.push(key);
                    return true;
                }
            }
        }
        let at = self.shard.engine.write_log().map_or(0, |l| l.offset());
        let Some(need) = a.gate(at, &self.shard.persist.aof) else {
            return false;
        };
        if let Some(c) = self.shard.conns.get_mut(key) {
            c.aof_need = need;
            c.hold_mark = c.out.len();
            c.flush_queued = false;
        }
        a.held_flush.push_back((need, key));
        true
    }

    /// A write or fsync of the AOF completed.
    fn aof_done(&mut self, kind: u64, res: i32) {
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return;
        };
        let aof = &self.shard.persist.aof;
        let eff = aof.effective[self.shard.id].load(Ordering::Relaxed);
        let out = &mut self.aof_out;
        match kind {
            KIND_AOF_WRITE => a.wrote(res, aof, out),
            KIND_AOF_FSYNC => a.fsynced(res, self.shard.now_ms, aof, out),
            KIND_AOF_ZERO => a.zeroed(res, aof, out),
            _ => a.cut(aof, out),
        }
        self.aof_push();
        self.aof_release();
        if self.shard.persist.aof.effective[self.shard.id].load(Ordering::Relaxed) != eff {
            self.wake_aof_waiters();
        }
    }

    /// With the AOF on: takes the other cores' effective
    /// offsets, releases what waited for them, and has the connections
    /// held for them looked at again. True when anything moved.
    fn aof_effective(&mut self) -> bool {
        let resumed = !self.shard.aof_stalled.is_empty() && self.resume_aof_stalled();
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return resumed;
        };
        let moved = a.refresh(&self.shard.persist.aof);
        // (An unlock's answer may wait for other cores' offsets alone.)
        if moved || a.depends() {
            self.aof_release();
        }
        if moved {
            self.wake_aof_waiters();
        }
        let mut ready = false;
        for key in std::mem::take(&mut self.aof_remote) {
            let aof = &self.shard.persist.aof;
            ready |= self
                .shard
                .conns
                .get(key)
                .is_some_and(|c| c.aof_remote.iter().all(|&(d, x)| aof.is_effective(d, x)));
            self.shard.want_flush(key);
        }
        moved || ready || resumed
    }

    /// Resumes the connections that waited to cross cores until their
    /// earlier pipelines' parts were effective (all of them once the AOF
    /// is off); true when one was.
    fn resume_aof_stalled(&mut self) -> bool {
        let mut any = false;
        for key in std::mem::take(&mut self.shard.aof_stalled) {
            if self.shard.earlier_pending(key) {
                self.shard.aof_stalled.push(key);
            } else if let Some(c) = self.shard.conns.get_mut(key) {
                if c.wait == Wait::Stalled {
                    c.wait = Wait::No;
                }
                self.shard.resume.push(key);
                any = true;
            }
        }
        any
    }

    /// Sends the messages and connections' output whose wait for the AOF
    /// is over.
    fn aof_release(&mut self) {
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return;
        };
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&self.shard.persist.aof, &mut msgs, &mut conns);
        for (to, m) in msgs {
            self.shard.mesh.send(to, m);
        }
        for key in conns {
            self.start_send(key);
        }
    }

    /// Wakes every other core now.
    fn wake_others(&mut self) {
        for c in 0..self.shard.cores {
            if c != self.shard.id {
                self.shard.mesh.send(c, Msg::Wake);
            }
        }
        self.shard.mesh.flush_wakes();
    }

    /// This core's effective AOF offset moved: the cores that wait for
    /// it are woken.
    fn wake_aof_waiters(&mut self) {
        let aof = &self.shard.persist.aof;
        for c in 0..aof.waits.len() {
            if c != self.shard.id && aof.waits[c].load(Ordering::SeqCst) {
                self.shard.mesh.send(c, Msg::Wake);
            }
        }
    }

    /// At shutdown: true once the AOF has nothing left to write or sync.
    fn aof_finished(&mut self) -> bool {
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return true;
        };
        if a.idle() {
            return true;
        }
        self.shard.take_log();
        let Some(a) = self.shard.aof.as_deref_mut() else {
            return true;
        };
        a.finish(&self.shard.persist.aof, &mut self.aof_out);
        self.aof_push();
        false
    }

    /// Submits the AOF writer's entries.
    fn aof_push(&mut self) {
        let subs = std::mem::take(&mut self.aof_out);
        self.ring.reserve(subs.len());
        for s in &subs {
            let e = match *s {
                Submit::Write {
                    fd,
                    ptr,
                    len,
                    at,
                    sync,
                    ..
                } => opcode::Write::new(types::Fd(fd), ptr, len)
                    .offset(at)
                    .rw_flags(if sync { libc::RWF_DSYNC } else { 0 })
                    .build()
                    .user_data(user_data(KIND_AOF_WRITE, Key { index: 0, gen: 0 })),
                Submit::Fsync { fd } => opcode::Fsync::new(types::Fd(fd))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(user_data(KIND_AOF_FSYNC, Key { index: 0, gen: 0 })),
                Submit::Zero { fd, ptr, len, at } => opcode::Write::new(types::Fd(fd), ptr, len)
                    .offset(at)
                    .rw_flags(libc::RWF_DSYNC)
                    .build()
                    .user_data(user_data(KIND_AOF_ZERO, Key { index: 0, gen: 0 })),
                Submit::Truncate { fd, len } => opcode::Ftruncate::new(types::Fd(fd), len)
                    .build()
                    .user_data(user_data(KIND_AOF_CUT, Key { index: 0, gen: 0 })),
            };
            self.push_sqe(e);
        }
        // A group commit goes to the disk now, in a submission of its own:
        // submitted with the turn's sends, a direct write would wait in
        // the submission's block plug until every send had run.
        if subs
            .iter()
            .any(|s| matches!(s, Submit::Write { direct: true, .. }))
        {
            self.ring.enter(None, None);
        }
        self.aof_out = subs;
        self.aof_out.clear();
    }

    /// Handles the messages other cores sent, up to 4096, taken 16 at a
    /// time so that the keys of their requests are prefetched together.
    fn drain_inbox(&mut self) {
        let mut msgs = std::mem::take(&mut self.inbox);
        for _ in 0..256 {
            while msgs.len() < 16 {
                match self.shard.mesh.recv(self.shard.id) {
                    Some(m) => msgs.push(m),
                    None => break,
                }
            }
            if msgs.is_empty() {
                break;
            }
            let full = msgs.len() == 16;
            self.shard.prefetch_requests(&msgs);
            for msg in msgs.drain(..) {
                self.handle_msg(msg);
            }
            if !full {
                break;
            }
        }
        self.inbox = msgs;
    }

    fn handle_msg(&mut self, msg: Msg) {
        self.shard.msgs += 1;
        self.shard.reqs_taken += crate::mesh::counted(&msg) as u64;
        match msg {
            Msg::Resp { id, resp } => match crate::mesh::flows::chain_key(id) {
                Some(chain) => self.shard.chain_done(chain, resp),
                None => self.shard.rpc.complete(id, resp),
            },
            Msg::Adopt { fd, master } => self.adopt(fd, master),
            Msg::Moved(m) => self.arrive(*m),
            Msg::Wake => {}
            Msg::SlotMap => self.shard.take_slot_map(),
            Msg::Track(m) => self.shard.track_msg(m),
            Msg::Monitor {
                lines,
                relay: false,
            } => self.shard.monitor_deliver(&lines),
            Msg::Monitor { lines, relay: true } => self.shard.monitor_out.extend_from_slice(&lines),
            Msg::Slow { conn, entry } => self.shard.slow_arrived(conn, *entry),
            Msg::Req {
                from,
                id,
                client,
                req,
            } => {
                // Whose writes these are, for tracking's NOLOOP.
                self.shard.set_req_client(client);
                self.shard.request(from, id, req);
                self.shard.set_req_client(0);
                // The request may have closed connections (CLIENT KILL) or
                // stopped the shard (SHUTDOWN).
                if self.shard.stopping {
                    self.shut_listeners();
                }
                self.free_closed();
            }
        }
    }
}

/// How many requests a sleeping core waits for, after a cron period of
/// `period_ns` in which `active` clients sent `cmds` commands in `recvs`
/// receives and other cores sent `msgs` messages (see `Core::plan_batch`).
fn batch_size(active: u64, recvs: u64, cmds: u64, msgs: u64, period_ns: u64) -> u32 {
    // Pipelines bring many requests per wake-up already; and a message
    // from another core wakes a sleeping core only as one completion
    // among those it waits for, so cores that talk do not batch.
    if cmds > 2 * recvs || msgs * 16 > recvs {
        return 1;
    }
    let in_half_wait = recvs * (BATCH_WAIT_NS / 2) / period_ns.max(1);
    (active / BATCH_CLIENTS_PER_WAIT)
        .min(in_half_wait)
        .clamp(1, BATCH_MAX) as u32
}

/// The core to give a new connection: the one with the fewest, `me` when
/// it ties for fewest.
fn least_loaded(me: usize, loads: &[std::sync::atomic::AtomicUsize]) -> usize {
    let load = |c: usize| loads[c].load(Ordering::Relaxed);
    let mut best = (me, load(me));
    for c in 0..loads.len() {
        let n = load(c);
        if n < best.1 {
            best = (c, n);
        }
    }
    best.0
}

/// Hands a freed connection's buffers of 1 MiB and more (a slow reader's
/// output, a big request) to the lazy free thread: returning their pages
/// costs a core about 0.1 ms per MiB. Not counted by INFO, as Redis does
/// not count client buffers.
fn free_big_buffers(c: &mut Conn) {
    const BIG: usize = engine::lazyfree::THRESHOLD * engine::lazyfree::STRING_STEP;
    let big = [&mut c.rbuf, &mut c.out, &mut c.sending]
        .into_iter()
        .filter(|b| b.capacity() >= BIG)
        .map(|b| engine::lazyfree::Garbage::uncounted(std::mem::take(b)))
        .collect();
    crate::shared::free_later(big);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD_NS: u64 = 100_000_000;

    #[test]
    fn a_new_connection_goes_to_the_core_with_fewest_preferring_the_acceptor() {
        use std::sync::atomic::AtomicUsize;
        let loads = |v: &[usize]| v.iter().map(|&n| AtomicUsize::new(n)).collect::<Vec<_>>();
        assert_eq!(least_loaded(0, &loads(&[3, 1, 2])), 1);
        assert_eq!(least_loaded(2, &loads(&[3, 1, 2])), 1);
        // Ties: the accepting core keeps it, else the lowest-numbered.
        assert_eq!(least_loaded(2, &loads(&[1, 1, 1])), 2);
        assert_eq!(least_loaded(2, &loads(&[0, 0, 1])), 0);
        assert_eq!(least_loaded(0, &loads(&[5])), 0);
        // A burst accepted on one core alternates once counts are bumped.
        let l = loads(&[0, 0]);
        let mut placed = [0; 2];
        for _ in 0..40 {
            let to = least_loaded(0, &l);
            l[to].fetch_add(1, Ordering::Relaxed);
            placed[to] += 1;
        }
        assert_eq!(placed, [20, 20]);
    }

    #[test]
    fn many_clients_one_request_each_batch_their_wakeups() {
        // 50 clients at 100k requests/s: 10 arrive in half the wait.
        assert_eq!(batch_size(50, 10_000, 10_000, 0, PERIOD_NS), 10);
        // 200 clients at 400k/s: capped.
        assert_eq!(
            batch_size(200, 40_000, 40_000, 0, PERIOD_NS) as u64,
            BATCH_MAX
        );
        // Slower arrivals: fewer waited for, so the wait rarely times out.
        assert_eq!(batch_size(50, 4_000, 4_000, 0, PERIOD_NS), 4);
        // An occasional message from another core (INFO) changes nothing.
        assert_eq!(batch_size(50, 10_000, 10_000, 3, PERIOD_NS), 10);
    }

    #[test]
    fn few_clients_pipelines_cross_core_traffic_and_quiet_periods_wake_at_once() {
        // A handful of clients would wait on each other.
        assert_eq!(batch_size(4, 20_000, 20_000, 0, PERIOD_NS), 1);
        assert_eq!(batch_size(7, 20_000, 20_000, 0, PERIOD_NS), 1);
        // Pipelines (16 commands a receive) bring many requests per wake.
        assert_eq!(batch_size(50, 6_000, 96_000, 0, PERIOD_NS), 1);
        // Idle connections that sent one request each in the period.
        assert_eq!(batch_size(1000, 1000, 1000, 0, PERIOD_NS), 1);
        assert_eq!(batch_size(0, 0, 0, 0, PERIOD_NS), 1);
        // Keys on other cores: their requests and answers must not wait.
        assert_eq!(batch_size(50, 10_000, 10_000, 5_000, PERIOD_NS), 1);
    }
}
