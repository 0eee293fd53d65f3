//! Direct I/O for the AOF: a second descriptor of a core's incr file
//! opened with `O_DIRECT`, through which each write of records rewrites
//! whole 4 KiB blocks (the partial block the records ended in, the new
//! records, zeros up to the next block).
//!
//! Under `appendfsync always`, each group commit is one such write with
//! `RWF_DSYNC`, over the zeros written ahead ([`super::aof`]). Why: a
//! buffered write, `RWF_DSYNC` or not, cannot complete inside io_uring's
//! submission on ext4, so every commit was a trip to io_uring's worker
//! thread, which shares the core's CPU and ran only once the core slept.
//! A direct overwrite of allocated, written blocks is issued from the
//! submission itself (the core's own syscall) and completes from the
//! disk's interrupt, with its cache flush on a kernel workqueue.
//!
//! The kernel issues a direct write inline only when it needs nothing
//! that could block: the blocks allocated and written (the zeros ahead
//! are written through this descriptor too, with `RWF_DSYNC`, so no
//! delayed allocation is left under the records), and no page of the
//! range in the page cache.
//!
//! Under `everysec` and `no`, the records' writes (one every 2 ms or
//! 256 KiB, up to 4 MiB each) go direct too, past the file's end with no
//! zeros ahead: each is still a trip to io_uring's worker (a write that
//! extends the file waits there), but the kernel neither copies the
//! records into the page cache nor writes them back later, and the AOF
//! leaves nothing cached.

/// The block size direct writes are aligned to (ext4's block: a write
/// not aligned to it takes the inode's lock exclusively and waits).
pub const BLOCK: usize = 4096;

/// The largest `always` commit written in one direct write (bytes, with
/// its partial block and padding); a bigger one (a big MSET's) goes in
/// several. 1 shard, 50 clients, SET at -P 16 (commits of
/// tens of KB), alternating: 498-575k SET/s against 430-497k with a
/// limit of 16 KiB (8 of 8 rounds).
pub const DIRECT_MAX: usize = 256 << 10;

/// A heap buffer aligned to [`BLOCK`], as `O_DIRECT` wants its memory.
pub struct Aligned {
    ptr: *mut u8,
    cap: usize,
}

impl Aligned {
    /// `cap` bytes (a multiple of [`BLOCK`]), zeroed.
    pub fn zeroed(cap: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(cap.max(BLOCK), BLOCK)
            .expect("block-aligned layout");
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Aligned {
            ptr,
            cap: cap.max(BLOCK),
        }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `cap` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.cap) }
    }

    /// Leaks the buffer: its memory stays valid for the process.
    pub fn leak(self) -> &'static [u8] {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: never freed from here on.
        unsafe { std::slice::from_raw_parts(me.ptr, me.cap) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.cap, BLOCK).expect("layout");
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

pub fn align_down(x: u64) -> u64 {
    x & !(BLOCK as u64 - 1)
}

pub fn align_up(x: u64) -> u64 {
    align_down(x + BLOCK as u64 - 1)
}

/// A core's direct descriptor of its current incr file, and what a
/// commit needs besides its records: the bytes of the partial block the
/// file's records end in.
pub struct Direct {
    /// The `O_DIRECT` descriptor: -1 not opened yet, -2 not available for
    /// this file (`O_DIRECT` refused, as on tmpfs, or no /proc).
    fd: i32,
    /// The bytes from the last block boundary up to the records' end,
    /// when known (after a write through this writer, or read back).
    tail: Vec<u8>,
    tail_known: bool,
    /// The block-aligned copy a write is made from (at least
    /// [`DIRECT_MAX`] bytes, allocated at the first write, grown to the
    /// largest write's power of two).
    buf: Option<Aligned>,
}

impl Direct {
    /// For a file whose records end at `file_len`.
    pub fn new(file_len: u64) -> Direct {
        Direct {
            fd: -1,
            tail: Vec::new(),
            tail_known: file_len.is_multiple_of(BLOCK as u64),
            buf: None,
        }
    }

    /// The direct descriptor of `fd` (opening it the first time), or
    /// `None` when this file cannot have one.
    pub fn fd(&mut self, fd: i32, file_len: u64) -> Option<i32> {
        if self.fd == -1 {
            self.fd = reopen_direct(fd).unwrap_or(-2);
            if self.fd >= 0 && !self.tail_known {
                self.read_tail(file_len);
            }
        }
        (self.fd >= 0).then_some(self.fd)
    }

    /// Reads the partial block the records end in back from the file
    /// (once, for a file this process goes on appending to).
    fn read_tail(&mut self, file_len: u64) {
        let start = align_down(file_len);
        let want = (file_len - start) as usize;
        let buf = self
            .buf
            .get_or_insert_with(|| Aligned::zeroed(DIRECT_MAX))
            .bytes();
        // SAFETY: the buffer holds at least BLOCK bytes, aligned.
        let n = unsafe {
            libc::pread(
                self.fd,
                buf.as_mut_ptr().cast(),
                BLOCK,
                start as libc::off_t,
            )
        };
        if n >= want as isize {
            self.tail.clear();
            self.tail.extend_from_slice(&buf[..want]);
            self.tail_known = true;
        }
    }

    /// Stages the first bytes of `records`, to go at `file_len` in a file
    /// whose zeros reach `zeroed`: (offset, length) of the block-aligned
    /// write from [`Direct::ptr`] and how many of the records it carries
    /// (as many as fit in `max` bytes and below `zeroed`), or `None`
    /// when they must go as a buffered write (no direct descriptor, the
    /// tail unknown, or no zeros past the records).
    pub fn stage(
        &mut self,
        records: &[u8],
        file_len: u64,
        zeroed: u64,
        max: usize,
    ) -> Option<(u64, usize, usize)> {
        if self.fd < 0 || !self.tail_known {
            return None;
        }
        let at = align_down(file_len);
        let head = self.tail.len();
        if head as u64 != file_len - at {
            // The records would land away from the file's end: written
            // buffered, at the end; direct writes resume once a write has
            // carried the block's bytes again (`Direct::wrote`).
            crate::log::warning(format_args!(
                "AOF direct write: the last block's {head} bytes known do not end at the records' end ({file_len})"
            ));
            self.tail_known = false;
            return None;
        }
        let room = (max - head).min(align_down(zeroed).saturating_sub(file_len) as usize);
        let take = records.len().min(room);
        if take == 0 {
            return None;
        }
        let len = align_up((head + take) as u64) as usize;
        if self.buf.as_ref().is_none_or(|b| b.cap < len) {
            self.buf = Some(Aligned::zeroed(len.next_power_of_two().max(DIRECT_MAX)));
        }
        let buf = self.buf.as_mut().expect("staged buffer").bytes();
        buf[..head].copy_from_slice(&self.tail);
        buf[head..head + take].copy_from_slice(&records[..take]);
        buf[head + take..len].fill(0);
        Some((at, len, take))
    }

    /// Where the staged commit's bytes are (valid after [`Direct::stage`]
    /// returned `Some`, until the next stage).
    pub fn ptr(&self) -> *const u8 {
        self.buf.as_ref().map_or(std::ptr::null(), Aligned::as_ptr)
    }

    /// How many bytes of a direct write at the head of a commit were the
    /// partial block's bytes written again.
    pub fn head(&self) -> usize {
        self.tail.len()
    }

    /// `bytes` were written at the records' end, which is now `file_len`.
    pub fn wrote(&mut self, bytes: &[u8], file_len: u64) {
        let k = (file_len - align_down(file_len)) as usize;
        if bytes.len() >= k {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - k..]);
            self.tail_known = true;
        } else if self.tail_known {
            // Still in the same block: the bytes follow the tail.
            self.tail.extend_from_slice(bytes);
            debug_assert_eq!(self.tail.len(), k);
        }
    }

    /// The writer moves to a new, empty file.
    pub fn switch(&mut self) {
        self.close();
        self.tail.clear();
        self.tail_known = true;
    }

    /// The file refused a direct write: buffered writes from now on.
    pub fn disable(&mut self) {
        self.close();
        self.fd = -2;
    }

    fn close(&mut self) {
        if self.fd >= 0 {
            // SAFETY: the descriptor is ours; nothing is in flight on it
            // when the writer leaves its file.
            unsafe { libc::close(self.fd) };
        }
        self.fd = -1;
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        self.close();
    }
}

/// A second descriptor of the file behind `fd`, opened `O_DIRECT`.
fn reopen_direct(fd: i32) -> Option<i32> {
    if fd < 0 {
        return None;
    }
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    // SAFETY: a path we own; the flags ask for a new descriptor.
    let d = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_DIRECT | libc::O_CLOEXEC,
        )
    };
    (d >= 0).then_some(d)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// Writes what `d` staged, as the ring would.
    fn put(d: &Direct, fd: i32, (at, len): (u64, usize)) {
        // SAFETY: the staged buffer holds `len` bytes.
        let n = unsafe { libc::pwrite(fd, d.ptr().cast(), len, at as libc::off_t) };
        assert_eq!(n, len as isize, "{}", std::io::Error::last_os_error());
    }

    /// A new empty file `slotd-<tag>-<pid>` in the temporary directory
    /// (ext4 here: direct writes are real), and its path.
    pub(in crate::persist) fn scratch_file(tag: &str) -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("slotd-{tag}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn commits_rewrite_whole_blocks_carrying_the_records_before_them() {
        let (path, mut f) = scratch_file("direct");
        // A file this process goes on appending to: 3000 bytes of records,
        // then zeros written ahead.
        f.write_all(&[b'a'; 3000]).unwrap();
        f.write_all(&vec![0; 65536 - 3000]).unwrap();
        f.sync_all().unwrap();
        let mut d = Direct::new(3000);
        let Some(dfd) = d.fd(f.as_raw_fd(), 3000) else {
            eprintln!("skipped: O_DIRECT is not available in {}", path.display());
            let _ = std::fs::remove_file(&path);
            return;
        };
        assert_eq!(d.head(), 3000, "the partial block was read back");
        let mut want = vec![b'a'; 3000];
        let mut len = 3000u64;
        for (byte, n) in [
            (b'b', 2000),
            (b'c', 6000),
            (b'd', 10),
            (b'e', 96),
            (b'f', 4000),
        ] {
            let recs = vec![byte; n];
            let (at, wlen, take) = d.stage(&recs, len, 65536, DIRECT_MAX).expect("fits");
            assert_eq!(take, n);
            assert_eq!(at % BLOCK as u64, 0);
            assert_eq!(wlen % BLOCK, 0);
            assert_eq!(at, len & !(BLOCK as u64 - 1));
            put(&d, dfd, (at, wlen));
            len += n as u64;
            d.wrote(&recs, len);
            want.extend_from_slice(&recs);
        }
        // Too big for one direct write: the first part, up to the limit;
        // past the zeros: as far as they go, and none beyond them.
        let big = vec![b'x'; DIRECT_MAX];
        let (_, wlen, take) = d.stage(&big, len, 1 << 20, DIRECT_MAX).unwrap();
        assert_eq!((wlen, take), (DIRECT_MAX, DIRECT_MAX - d.head()));
        let (_, wlen, take) = d.stage(&big, len, len + 5000, DIRECT_MAX).unwrap();
        assert_eq!(wlen % BLOCK, 0);
        assert!(take <= 5000 && (len + take as u64).is_multiple_of(BLOCK as u64));
        assert!(d.stage(&[b'x'; 10], len, len, DIRECT_MAX).is_none());
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 65536);
        assert_eq!(&got[..want.len()], &want[..]);
        assert!(got[want.len()..].iter().all(|&b| b == 0));
        // A new file: nothing before the first records.
        d.switch();
        assert_eq!(d.head(), 0);
        let _ = std::fs::remove_file(&path);
    }
}
