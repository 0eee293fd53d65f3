//! The cores' write streams on their way to the master thread
//! (`repl::merge`'s tickets): once a replica has asked for the stream,
//! every core pushes what its write log recorded as a chunk under a ticket
//! from one counter, before it sends the replies (or the messages to
//! other cores) that reveal those writes.
//!
//! A replica hands its own replicas its master's stream instead, as Redis
//! 4.0+ does: the link thread pushes the bytes it hands to the master
//! client ([`Proxied`]) while the master thread asks for them.

use crossbeam_queue::SegQueue;
use repl::merge::{Chunk, TxnPart};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The chunks in flight from the cores to the master thread.
pub struct Stream {
    /// Set once, by the first SYNC/PSYNC: from then on cores log their
    /// writes and push them.
    active: AtomicBool,
    tickets: AtomicU64,
    queue: SegQueue<Chunk>,
    /// The master thread sleeps in `poll`: a push writes the eventfd.
    sleeping: AtomicBool,
    eventfd: i32,
    /// Every ticket below it is in the replicas' output (set by the master
    /// thread after each round of socket writes).
    sent: AtomicU64,
    /// A replica takes the stream: a core holds the replies of a turn
    /// until `sent` covers every ticket taken by then, so a write is on
    /// its way to the replicas before a client hears it was done (Redis
    /// writes its replicas' buffers before its clients' replies).
    guarded: AtomicBool,
    /// Cores holding replies, to wake when `sent` moves.
    waiting: SegQueue<usize>,
    /// The master thread serves replicas of this replica: the link pushes
    /// its master's stream.
    proxying: AtomicBool,
    /// A promotion has the master thread about to turn the stream on
    /// (`Note::Mode`): cores keep what they write for it meanwhile.
    starting: AtomicBool,
    proxied: SegQueue<Proxied>,
}

/// What a replica's link hands on to the master thread.
pub enum Proxied {
    /// The link's stream goes on from `offset` of history `replid` (`None`:
    /// a master without PSYNC, whose stream cannot be resumed): after the
    /// load of a full resynchronization (`full`), after a partial one, or
    /// when the master thread starts asking.
    At {
        replid: Option<String>,
        offset: i64,
        full: bool,
    },
    /// The master's stream, as it came, up to the link's offset.
    Bytes(Vec<u8>),
}

impl Stream {
    pub fn new() -> std::io::Result<Stream> {
        // SAFETY: plain syscall; the fd lives as long as the process.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Stream {
            active: AtomicBool::new(false),
            tickets: AtomicU64::new(0),
            queue: SegQueue::new(),
            sleeping: AtomicBool::new(false),
            eventfd: fd,
            sent: AtomicU64::new(0),
            guarded: AtomicBool::new(false),
            waiting: SegQueue::new(),
            proxying: AtomicBool::new(false),
            starting: AtomicBool::new(false),
            proxied: SegQueue::new(),
        })
    }

    /// Whether cores push their writes.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// [`Stream::active`], ordered with [`Stream::starting`].
    pub fn active_ordered(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Cores push their writes (`true`: this node is a master with
    /// replicas), or not (a replica: its replicas get its master's stream).
    pub(super) fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::SeqCst);
    }

    /// Whether the stream is about to start ([`Stream::set_starting`]).
    #[inline]
    pub fn starting(&self) -> bool {
        self.starting.load(Ordering::SeqCst)
    }

    /// Set by a promotion before the node takes writes of its own, cleared
    /// once the master thread turned the stream on.
    pub(super) fn set_starting(&self, on: bool) {
        self.starting.store(on, Ordering::SeqCst);
    }

    /// Whether the link hands its master's stream on.
    pub(super) fn proxying(&self) -> bool {
        self.proxying.load(Ordering::SeqCst)
    }

    pub(super) fn set_proxying(&self, on: bool) {
        self.proxying.store(on, Ordering::SeqCst);
    }

    /// The link hands `p` on to the master thread.
    pub(super) fn proxy(&self, p: Proxied) {
        self.proxied.push(p);
        self.wake();
    }

    pub(super) fn pop_proxied(&self) -> Option<Proxied> {
        self.proxied.pop()
    }

    /// The next ticket to be taken: every smaller one is pushed or about
    /// to be (a core pushes right after taking one).
    pub fn next_ticket(&self) -> u64 {
        self.tickets.load(Ordering::SeqCst)
    }

    /// Pushes `bytes` (a part of a transaction across cores with `txn`)
    /// under the next ticket.
    pub fn push(&self, bytes: Vec<u8>, txn: Option<TxnPart>) {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
        self.queue.push(Chunk { ticket, txn, bytes });
        self.wake();
    }

    /// Whether replies wait for [`Stream::sent`] (a replica takes the
    /// stream).
    #[inline]
    pub fn guarded(&self) -> bool {
        self.guarded.load(Ordering::SeqCst)
    }

    /// Every ticket below this one is in the replicas' output.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Core `core` holds replies: woken when [`Stream::sent`] moves (or
    /// the guard drops). Check `sent` again after this call.
    pub fn wait_sent(&self, core: usize) {
        self.waiting.push(core);
    }

    /// The master thread wrote its round: every ticket below `sent` is in
    /// the replicas' output; `guarded` whether a replica takes the stream.
    /// Wakes the cores that wait.
    pub(super) fn publish_sent(&self, sent: u64, guarded: bool, mesh: &crate::mesh::Mesh) {
        self.guarded.store(guarded, Ordering::SeqCst);
        self.sent.store(sent, Ordering::SeqCst);
        if self.waiting.is_empty() {
            return;
        }
        let mut cores = Vec::new();
        while let Some(core) = self.waiting.pop() {
            cores.push(core);
        }
        cores.sort_unstable();
        cores.dedup();
        for core in cores {
            mesh.send(core, crate::mesh::Msg::Wake);
        }
    }

    /// Wakes the master thread if it sleeps.
    pub(super) fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe {
                libc::write(self.eventfd, &one as *const u64 as *const libc::c_void, 8);
            }
        }
    }

    pub(super) fn pop(&self) -> Option<Chunk> {
        self.queue.pop()
    }

    pub(super) fn eventfd(&self) -> i32 {
        self.eventfd
    }

    /// The master thread is about to sleep: false when chunks arrived
    /// meanwhile.
    pub(super) fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.queue.is_empty() || !self.proxied.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub(super) fn woke(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
        let mut buf = 0u64;
        // SAFETY: reads 8 bytes into a valid u64 from our nonblocking eventfd.
        unsafe {
            libc::read(self.eventfd, &mut buf as *mut u64 as *mut libc::c_void, 8);
        }
    }
}
