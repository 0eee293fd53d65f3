//! A provided-buffer ring: memory the kernel picks from for multishot
//! receives, so a socket's receive is armed once, not once per request.
//!
//! Layout is the kernel's `io_uring_buf` array: 16-byte entries
//! `{addr: u64, len: u32, bid: u16, resv: u16}`, where the `resv` field of
//! entry 0 doubles as the ring's tail, written by us with release order.

use std::sync::atomic::{AtomicU16, Ordering};

/// Buffers the kernel fills on one core.
pub struct BufRing {
    ring: *mut u8,
    ring_bytes: usize,
    bufs: Vec<u8>,
    entries: u16,
    buf_bytes: usize,
    /// Distance between buffer starts: `buf_bytes` plus a cache line, so
    /// the buffers' first lines fall in different cache sets instead of
    /// all aliasing to the same few (`buf_bytes` is a power of two).
    stride: usize,
    tail: u16,
    pub group: u16,
}

impl BufRing {
    /// `entries` buffers (a power of two) of `buf_bytes` each, registered as
    /// buffer group `group` with `submitter`'s ring.
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
            buf_bytes,
            stride,
            tail: 0,
            group,
        };
        // SAFETY: the ring memory stays mapped until Drop, which also
        // unregisters it first.
        unsafe { submitter.register_buf_ring_with_flags(br.ring as u64, entries, group, 0)? };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
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

    /// The first `len` bytes of buffer `bid`, as the kernel filled them.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.stride;
        let end = start + len.min(self.buf_bytes);
        self.bufs.get(start..end).unwrap_or(&[])
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        if bid < self.entries {
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
