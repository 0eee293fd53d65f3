//! A provided-buffer ring: memory the kernel picks from for multishot
//! receives, so a socket's receive is armed once, not once per request.
//!
//! The ring is registered for incremental consumption where the kernel
//! has it (`IOU_PBUF_RING_INC`, Linux 6.12): a receive takes only the
//! bytes it needs from the current buffer and the next one goes on from
//! there, so fifty clients' small requests share one buffer instead of
//! taking fifty. The kernel says whether it still holds the buffer
//! (`IORING_CQE_F_BUF_MORE`); the offset of each receive in its buffer is
//! tracked here.
//!
//! The kernel takes buffers in ring order, so every buffer in the ring is
//! touched sooner or later. The ring therefore starts with a few buffers
//! and gets more only when the kernel found none ([`BufRing::starved`]):
//! the memory a core's receives keep resident follows the most it ever
//! needed at once, not the most it may use.
//!
//! Layout is the kernel's `io_uring_buf` array: 16-byte entries
//! `{addr: u64, len: u32, bid: u16, resv: u16}`, where the `resv` field of
//! entry 0 doubles as the ring's tail, written by us with release order.

use std::sync::atomic::{AtomicU16, Ordering};

/// Buffers handed to the kernel at first.
const FIRST_LENT: u16 = 8;
/// `IOU_PBUF_RING_INC` (linux/io_uring.h): buffers consumed incrementally.
const PBUF_RING_INC: u16 = 2;

/// Buffers the kernel fills on one core.
pub struct BufRing {
    ring: *mut u8,
    ring_bytes: usize,
    bufs: Vec<u8>,
    entries: u16,
    /// Buffers `0..lent` are in circulation; the rest are untouched.
    lent: u16,
    /// Incremental consumption: where the next receive into each buffer
    /// starts.
    inc: bool,
    offsets: Vec<u32>,
    buf_bytes: usize,
    /// Distance between buffer starts: `buf_bytes` plus a cache line, so
    /// the buffers' first lines fall in different cache sets instead of
    /// all aliasing to the same few (`buf_bytes` is a power of two).
    stride: usize,
    tail: u16,
    pub group: u16,
}

impl BufRing {
    /// Up to `entries` buffers (a power of two) of `buf_bytes` each,
    /// registered as buffer group `group` with `submitter`'s ring; the
    /// first [`FIRST_LENT`] are handed to the kernel.
    pub fn new(
        submitter: &io_uring::Submitter<'_>,
        group: u16,
        entries: u16,
        buf_bytes: usize,
    ) -> std::io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_bytes = entries as usize * 16;
        // SAFETY: an anonymous private mapping, page aligned as the kernel
        // requires for a buffer ring; unmapped in Drop.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stride = buf_bytes + 64;
        let mut br = BufRing {
            ring: ring as *mut u8,
            ring_bytes,
            bufs: vec![0u8; entries as usize * stride],
            entries,
            lent: 0,
            inc: true,
            offsets: vec![0; entries as usize],
            buf_bytes,
            stride,
            tail: 0,
            group,
        };
        let (ring, inc) = (br.ring as u64, PBUF_RING_INC);
        // SAFETY: the ring memory stays mapped until Drop, which also
        // unregisters it first.
        let registered =
            unsafe { submitter.register_buf_ring_with_flags(ring, entries, group, inc) };
        if registered.is_err() {
            // A kernel without incremental consumption (before 6.12).
            br.inc = false;
            // SAFETY: as above.
            unsafe { submitter.register_buf_ring_with_flags(ring, entries, group, 0)? };
        }
        br.lend(FIRST_LENT.min(entries));
        Ok(br)
    }

    /// Hands `n` more untouched buffers to the kernel (as many as there
    /// are left at most).
    fn lend(&mut self, n: u16) {
        let end = self.lent.saturating_add(n).min(self.entries);
        for bid in self.lent..end {
            self.push(bid);
        }
        self.lent = end;
        self.publish();
    }

    /// A receive found no buffer (`ENOBUFS`): doubles the buffers in
    /// circulation, up to all of them.
    pub fn starved(&mut self) {
        self.lend(self.lent.max(1));
    }

    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * self.stride as u64;
        // SAFETY: idx < entries, so the 16-byte entry lies in the mapping.
        // Only addr/len/bid are written: `resv` of entry 0 is the tail.
        unsafe {
            let e = self.ring.add(idx * 16);
            (e as *mut u64).write(addr);
            (e.add(8) as *mut u32).write(self.buf_bytes as u32);
            (e.add(12) as *mut u16).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: offset 14 is entry 0's `resv`, the ring tail; the kernel
        // reads it with acquire order.
        let tail = unsafe { &*(self.ring.add(14) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The `len` bytes a receive completion put in buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let off = self.offsets.get(bid as usize).map_or(0, |&o| o as usize);
        let start = bid as usize * self.stride + off.min(self.buf_bytes);
        let end = bid as usize * self.stride + (off + len).min(self.buf_bytes);
        self.bufs.get(start..end).unwrap_or(&[])
    }

    /// Done with a receive completion's `len` bytes in buffer `bid`
    /// (`flags`: the completion's): the next receive into the buffer goes
    /// on after them, or the buffer goes back to the kernel once the
    /// kernel is done with it.
    pub fn consumed(&mut self, bid: u16, len: usize, flags: u32) {
        let Some(off) = self.offsets.get_mut(bid as usize) else {
            return;
        };
        if self.inc && io_uring::cqueue::buffer_more(flags) {
            *off += len as u32;
        } else if bid < self.lent {
            *off = 0;
            self.push(bid);
            self.publish();
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; the ring is only dropped with
        // its io_uring, after which the kernel no longer reads it.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_bytes);
        }
    }
}
