//! The way from the shard cores to the cluster bus core, and back.
//!
//! In cluster mode one more thread, the bus core, owns the cluster state
//! (`crate::bus`). Shard cores never lock it: they put CLUSTER commands in
//! its queue ([`Bus::ask`]: one lock-free push and, only when the bus core
//! sleeps, one eventfd write) and get the answer as an ordinary
//! [`super::Msg::Resp`] in their inbox; the bus core hands them each new
//! slot map by publishing it here ([`Bus::publish`]) and sending every core
//! a [`super::Msg::SlotMap`], on which a core takes the latest map
//! ([`Bus::map`]). Taking the latest rather than the one a message carried
//! means a core can never go back to an older map.

use super::msg::{Mesh, Msg};
use bytes::Bytes;
use cluster::command::Facts;
use cluster::slotmap::SlotMap;
use crossbeam_queue::SegQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a shard core asks of the bus core.
pub enum Ask {
    /// A CLUSTER command, from core `from`'s request `id`.
    Command {
        from: usize,
        id: u64,
        args: Vec<Bytes>,
        facts: Facts,
    },
    /// A PUBLISH on this node, for every other node (no answer).
    /// `sharded`: an SPUBLISH, for the nodes of this node's shard.
    Publish {
        channel: Bytes,
        message: Bytes,
        sharded: bool,
    },
    /// A core paused its writers for the pause `gen`, after handing what
    /// it wrote before to the replication stream.
    Paused { gen: u64 },
    /// A re-spread (`Request::Respread`) ended, having moved `moved` slots.
    Respread { moved: usize },
}

/// The bus core's mailbox and the slot map it publishes.
pub struct Bus {
    queue: SegQueue<Ask>,
    /// Set while the bus core waits in `poll`: only then is the eventfd
    /// written.
    sleeping: AtomicBool,
    eventfd: i32,
    map: Mutex<Arc<SlotMap>>,
    /// This node's shard has no other node (set by the bus core).
    shard_alone: AtomicBool,
    /// `cluster-allow-reads-when-down`, for the checks of the commands a
    /// script calls (set by the cores as they take the settings).
    reads_when_down: AtomicBool,
}

impl Bus {
    /// A mailbox whose first slot map is `map`.
    pub fn new(map: SlotMap) -> std::io::Result<Bus> {
        // SAFETY: plain syscall; the fd lives as long as the process.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Bus {
            queue: SegQueue::new(),
            sleeping: AtomicBool::new(false),
            eventfd: fd,
            shard_alone: AtomicBool::new(false),
            reads_when_down: AtomicBool::new(false),
            map: Mutex::new(Arc::new(map)),
        })
    }

    /// Whether this node is alone in its shard (the bus core says).
    pub fn set_shard_alone(&self, alone: bool) {
        self.shard_alone.store(alone, Ordering::Relaxed);
    }

    /// `cluster-allow-reads-when-down` changed (or was read at start).
    pub fn set_reads_when_down(&self, on: bool) {
        self.reads_when_down.store(on, Ordering::Relaxed);
    }

    /// `cluster-allow-reads-when-down`.
    pub fn reads_when_down(&self) -> bool {
        self.reads_when_down.load(Ordering::Relaxed)
    }

    /// The eventfd the bus core polls.
    pub fn eventfd(&self) -> i32 {
        self.eventfd
    }

    /// Cluster mode: hands a PUBLISH to the bus so that every other node
    /// delivers it too, or an SPUBLISH so that the other nodes of this
    /// node's shard do. An SPUBLISH of a node alone in its shard goes nowhere: the bus is
    /// not woken for it.
    pub fn forward_publish(&self, channel: &bytes::Bytes, message: &bytes::Bytes, sharded: bool) {
        if sharded && self.shard_alone.load(Ordering::Relaxed) {
            return;
        }
        self.ask(Ask::Publish {
            channel: channel.clone(),
            message: message.clone(),
            sharded,
        });
    }

    /// Queues a CLUSTER command or a PUBLISH and wakes the bus core if it
    /// sleeps.
    pub fn ask(&self, ask: Ask) {
        self.queue.push(ask);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe {
                libc::write(self.eventfd, &one as *const u64 as *const libc::c_void, 8);
            }
        }
    }

    /// The next queued command (bus core only).
    pub fn take(&self) -> Option<Ask> {
        self.queue.pop()
    }

    /// Marks the bus core as about to sleep; false if commands arrived
    /// meanwhile (then it must not sleep).
    pub fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Marks the bus core awake and drains its eventfd.
    pub fn woke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking
        // eventfd; EAGAIN when it was not written is fine.
        unsafe {
            libc::read(self.eventfd, &mut v as *mut u64 as *mut libc::c_void, 8);
        }
    }

    /// The latest slot map.
    pub fn map(&self) -> Arc<SlotMap> {
        self.map
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Makes `map` the latest and tells every shard core.
    pub fn publish(&self, map: SlotMap, mesh: &Mesh) {
        let map = Arc::new(map);
        match self.map.lock() {
            Ok(mut m) => *m = map,
            Err(p) => *p.into_inner() = map,
        }
        for core in 0..mesh.cores() {
            mesh.send(core, Msg::SlotMap);
        }
    }
}
