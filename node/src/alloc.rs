//! # alloc: the counting allocator
//!
//! The lowest room. mimalloc, wrapped so that every allocation's usable
//! size is counted: `used_memory` in INFO, and what `maxmemory` bounds.
//!
//! Each thread adds its allocations and frees to a thread-local delta and
//! moves it into one process-wide counter only once it passes
//! [`FLUSH_BYTES`] either way, so cores allocating on the hot path never
//! write a shared cache line. [`used_memory`] is the shared counter plus
//! the calling thread's own delta: exact for this thread, within
//! `FLUSH_BYTES` per other thread.
//!
//! API: [`Counting`] (the `#[global_allocator]` in main.rs),
//! [`used_memory`], [`FLUSH_BYTES`].

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// A thread's delta moves into the shared counter once it passes this.
pub const FLUSH_BYTES: isize = 64 * 1024;

static USED: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static DELTA: Cell<isize> = const { Cell::new(0) };
}

#[inline(always)]
fn count(bytes: isize) {
    DELTA.with(|d| {
        let v = d.get() + bytes;
        if v.unsigned_abs() > FLUSH_BYTES as usize {
            USED.fetch_add(v, Ordering::Relaxed);
            d.set(0);
        } else {
            d.set(v);
        }
    });
}

#[inline(always)]
fn usable(p: *mut u8) -> isize {
    // SAFETY: `p` is a live block mimalloc returned.
    unsafe { libmimalloc_sys::mi_usable_size(p as *const _) as isize }
}

/// Bytes allocated by the process (usable sizes of live blocks).
pub fn used_memory() -> u64 {
    let mine = DELTA.with(|d| d.get());
    (USED.load(Ordering::Relaxed) + mine).max(0) as u64
}

/// mimalloc, counting.
pub struct Counting;

// SAFETY: every call is forwarded to mimalloc unchanged; only counters
// are updated around it.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = mimalloc::MiMalloc.alloc(layout);
        if !p.is_null() {
            count(usable(p));
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = mimalloc::MiMalloc.alloc_zeroed(layout);
        if !p.is_null() {
            count(usable(p));
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-usable(ptr));
        mimalloc::MiMalloc.dealloc(ptr, layout);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = usable(ptr);
        let p = mimalloc::MiMalloc.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(usable(p) - old);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_threads_allocations() {
        // Other test threads flush into the shared counter meanwhile:
        // check this thread's delta, starting from zero.
        let a = Counting;
        let delta = || DELTA.with(|d| d.get());
        DELTA.with(|d| d.set(0));
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: allocate, grow and free one block with matching layouts;
        // nothing else allocates on this thread meanwhile.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(delta(), usable(p));
            assert!(usable(p) >= 1000);
            let q = a.realloc(p, layout, 5000);
            assert_eq!(delta(), usable(q));
            assert!(usable(q) >= 5000);
            a.dealloc(q, Layout::from_size_align(5000, 8).unwrap());
        }
        assert_eq!(delta(), 0);
    }
}
