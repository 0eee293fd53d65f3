//! A core's io_uring: set up for one thread (`DEFER_TASKRUN`), its fd
//! registered with itself, a sparse table of registered files for
//! connections' sockets, and the provided-buffer ring receives fill.
//!
//! An entry's `user_data` carries what it is for: a kind (the event
//! loop's own numbering) and a slab handle ([`user_data`]).

use super::bufring::BufRing;
use super::slab::Key;
use io_uring::{squeue, types, IoUring};
use std::os::fd::AsRawFd;

/// Receive buffers per core, and their size: the kernel copies incoming
/// bytes into one of these, the core appends them to the connection's
/// buffer and hands the buffer back at once.
const RECV_BUFS: u16 = 64;
const RECV_BUF_BYTES: usize = 16 * 1024;
/// Registered file table entries per core (connections beyond use plain
/// descriptors).
const FIXED_FILES_MAX: u32 = 16 * 1024;

/// `io_uring_enter` flags (linux/io_uring.h).
const ENTER_GETEVENTS: u32 = 1;
const ENTER_EXT_ARG: u32 = 8;
const ENTER_REGISTERED_RING: u32 = 16;

/// Packs an entry's kind and slab handle into its `user_data`.
pub fn user_data(kind: u64, key: Key) -> u64 {
    (kind << 56) | ((key.gen as u64 & 0xff_ffff) << 32) | key.index as u64
}

/// The kind and handle [`user_data`] packed.
pub fn split_user_data(ud: u64) -> (u64, Key) {
    (
        ud >> 56,
        Key {
            index: ud as u32,
            gen: ((ud >> 32) & 0xff_ffff) as u32,
        },
    )
}

/// One core's ring.
pub struct Ring {
    ring: IoUring,
    /// Declared after `ring` so the ring is closed before this is unmapped.
    pub bufring: BufRing,
    /// Size of the ring's registered file table (0: none could be made).
    fixed_files: u32,
    /// What `io_uring_enter` is given for this ring: its registered index
    /// with `ENTER_REGISTERED_RING` (no file lookup per call), else its fd.
    enter_fd: i32,
    enter_flags: u32,
}

impl Ring {
    /// Sets up the ring of the calling thread's core.
    pub fn new() -> std::io::Result<Ring> {
        // Completions are posted only when this thread enters the kernel
        // (DEFER_TASKRUN): no interrupts of user work to run task work.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4096)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(4096))
            .or_else(|_| IoUring::new(4096))?;
        let bufring = BufRing::new(&ring.submitter(), 0, RECV_BUFS, RECV_BUF_BYTES)?;
        let (enter_fd, enter_flags) = match register_ring_fd(ring.as_raw_fd()) {
            Some(i) => (i, ENTER_REGISTERED_RING),
            None => (ring.as_raw_fd(), 0),
        };
        // A sparse table for connections' sockets; smaller if the file
        // limit refuses this size, none if the kernel has no such table.
        // io_uring's workers (which run the AOF's writes and fsyncs) stay
        // on the CPUs this core's thread may use, like the core itself.
        // SAFETY: a zeroed cpu_set_t is empty; sched_getaffinity fills it.
        let mut cpus: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&cpus), &mut cpus) } == 0 {
            let _ = ring.submitter().register_iowq_aff(&cpus);
        }
        let mut fixed_files = FIXED_FILES_MAX;
        while fixed_files > 0 && ring.submitter().register_files_sparse(fixed_files).is_err() {
            fixed_files /= 4;
        }
        Ok(Ring {
            ring,
            bufring,
            fixed_files,
            enter_fd,
            enter_flags,
        })
    }

    /// Makes room for `n` entries in the submission queue (linked entries
    /// must be submitted together), submitting what is queued if needed.
    pub fn reserve(&mut self, n: usize) {
        loop {
            let sq = self.ring.submission();
            if sq.capacity() - sq.len() >= n {
                return;
            }
            drop(sq);
            self.enter(None, None);
        }
    }

    /// Queues `e`, submitting what is queued first when the queue is full.
    ///
    /// # Safety
    /// Every buffer `e` points at must stay allocated and unmoved until its
    /// completion is reaped.
    pub unsafe fn push(&mut self, e: squeue::Entry) {
        while self.ring.submission().push(&e).is_err() {
            self.enter(None, None);
        }
    }

    /// Whether no entry waits to be submitted.
    pub fn nothing_to_submit(&mut self) -> bool {
        self.ring.submission().is_empty()
    }

    /// Completions posted and not yet taken.
    pub fn completions_ready(&mut self) -> usize {
        self.ring.completion().len()
    }

    /// Moves up to 256 posted completions into `batch`, as (user_data,
    /// result, flags).
    pub fn take_completions(&mut self, batch: &mut Vec<(u64, i32, u32)>) {
        batch.extend(
            self.ring
                .completion()
                .take(256)
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
    }

    /// Puts socket `fd` in the registered file table at slot `index` (a
    /// connection's slab index); false when it cannot be (no table, index
    /// beyond it, kernel refusal): the connection then uses its fd.
    pub fn register_file(&mut self, index: u32, fd: i32) -> bool {
        index < self.fixed_files
            && matches!(
                self.ring.submitter().register_files_update(index, &[fd]),
                Ok(1)
            )
    }

    /// Empties slot `index` of the registered file table (the table holds
    /// the socket open too).
    pub fn unregister_file(&mut self, index: u32) {
        let _ = self.ring.submitter().register_files_update(index, &[-1]);
    }

    /// Submits queued entries; with `want` also posts finished work's
    /// completions and waits until there are `want` of them, or until
    /// `timeout`.
    pub fn enter(&mut self, want: Option<u32>, timeout: Option<&types::Timespec>) {
        let to_submit = self.ring.submission().len() as u32;
        let mut flags = self.enter_flags;
        if want.is_some() {
            flags |= ENTER_GETEVENTS;
        }
        let args = timeout.map(|ts| types::SubmitArgs::new().timespec(ts));
        let (argp, argsz) = match &args {
            Some(a) => {
                flags |= ENTER_EXT_ARG;
                (
                    a as *const types::SubmitArgs as *const libc::c_void,
                    std::mem::size_of::<types::SubmitArgs>(),
                )
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `enter_fd` names this ring (by fd or registered index, as
        // `enter_flags` says); `argp` is null or points at a getevents
        // argument (`SubmitArgs` is its transparent wrapper) that outlives
        // the call. Errors (EINTR, ETIME, EBUSY) leave the loop to go on.
        unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.enter_fd,
                to_submit,
                want.unwrap_or(0),
                flags,
                argp,
                argsz,
            );
        }
    }
}

/// Registers `ring_fd` with its own ring (IORING_REGISTER_RING_FDS, Linux
/// 5.18); returns the index to enter with, or None where unsupported. The
/// index is valid only on the calling thread: `Ring::new` runs on the
/// core's own thread.
fn register_ring_fd(ring_fd: i32) -> Option<i32> {
    const IORING_REGISTER_RING_FDS: libc::c_long = 20;
    // struct io_uring_rsrc_update { u32 offset; u32 resv; u64 data; }
    let mut up: [u32; 4] = [u32::MAX, 0, ring_fd as u32, 0];
    // SAFETY: `up` is a valid io_uring_rsrc_update the kernel reads and
    // fills in (offset u32::MAX: pick a free index).
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_REGISTER_RING_FDS,
            up.as_mut_ptr(),
            1,
        )
    };
    (r == 1 && up[0] != u32::MAX).then_some(up[0] as i32)
}
