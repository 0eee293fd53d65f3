//! The master's replication backlog: the last `repl-backlog-size` bytes of
//! the replication stream, for partial resynchronizations.
//!
//! The numbers are those of Redis 7.0's INFO: `master_repl_offset` is the
//! offset of the last byte fed, `repl_backlog_first_byte_offset` the offset
//! of the oldest byte held (`master_repl_offset + 1` while nothing is held)
//! and `repl_backlog_histlen` how many bytes are held. A ring buffer, where
//! Redis 7.0 keeps a list of 16 KiB blocks shared with the replicas' output
//! buffers and trims whole blocks: Redis's `histlen` may exceed the size by
//! up to a block, this one never does.
//!
//! Offsets saturate at `i64::MAX` instead of overflowing: only a history
//! started next to it (an offset from a file or a peer) gets there.

use std::collections::VecDeque;

/// `repl-backlog-size`'s default (1 MiB).
pub const DEFAULT_SIZE: usize = 1024 * 1024;
/// The smallest backlog Redis accepts (`CONFIG_REPL_BACKLOG_MIN_SIZE`):
/// smaller sizes are raised to this.
pub const MIN_SIZE: usize = 16 * 1024;

/// The last bytes of the replication stream.
#[derive(Debug)]
pub struct Backlog {
    buf: VecDeque<u8>,
    size: usize,
    /// Offset of the last byte fed.
    master_off: i64,
}

impl Backlog {
    /// An empty backlog of `size` bytes (at least [`MIN_SIZE`]) whose next
    /// byte is at `master_repl_offset + 1`, as `createReplicationBacklog`.
    pub fn new(size: usize, master_repl_offset: i64) -> Backlog {
        Backlog {
            buf: VecDeque::new(),
            size: size.max(MIN_SIZE),
            master_off: master_repl_offset,
        }
    }

    /// `repl-backlog-size`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `CONFIG SET repl-backlog-size`: the most recent bytes are kept.
    pub fn resize(&mut self, size: usize) {
        self.size = size.max(MIN_SIZE);
        self.trim();
        self.buf.shrink_to(self.size);
    }

    /// `master_repl_offset`: the offset of the last byte fed.
    pub fn master_repl_offset(&self) -> i64 {
        self.master_off
    }

    /// `repl_backlog_first_byte_offset`.
    pub fn first_byte_offset(&self) -> i64 {
        (self.master_off - self.histlen()).saturating_add(1)
    }

    /// `repl_backlog_histlen`.
    pub fn histlen(&self) -> i64 {
        self.buf.len() as i64
    }

    /// Appends stream bytes; the offset moves on by their length.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.master_off = self.master_off.saturating_add(bytes.len() as i64);
        let keep = bytes.len().min(self.size);
        self.buf.extend(&bytes[bytes.len() - keep..]);
        self.trim();
    }

    fn trim(&mut self) {
        if self.buf.len() > self.size {
            let excess = self.buf.len() - self.size;
            self.buf.drain(..excess);
        }
    }

    /// Whether a replica asking for the stream from `offset` (the first byte
    /// it lacks, as PSYNC gives it) can be served: the range check of
    /// `masterTryPartialResynchronization`.
    pub fn covers(&self, offset: i64) -> bool {
        let first = self.first_byte_offset();
        offset >= first && offset <= first.saturating_add(self.histlen())
    }

    /// The bytes from `offset` to the end, in two pieces (the ring may
    /// wrap), or `None` when `offset` is not [`covered`](Backlog::covers).
    pub fn read_from(&self, offset: i64) -> Option<(&[u8], &[u8])> {
        if !self.covers(offset) {
            return None;
        }
        let skip = (offset - self.first_byte_offset()) as usize;
        let (a, b) = self.buf.as_slices();
        Some(if skip <= a.len() {
            (&a[skip..], b)
        } else {
            (&b[skip - a.len()..], &[][..])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(b: &Backlog, off: i64) -> Option<Vec<u8>> {
        b.read_from(off).map(|(x, y)| [x, y].concat())
    }

    #[test]
    fn offsets_as_info_reports_them() {
        // Figures checked against redis-server 7.0.15: a backlog created
        // at offset 0, then SELECT 0 (23 bytes) + SET a 1 (27 bytes).
        let mut b = Backlog::new(DEFAULT_SIZE, 0);
        assert_eq!(
            (b.master_repl_offset(), b.first_byte_offset(), b.histlen()),
            (0, 1, 0)
        );
        assert!(b.covers(1) && !b.covers(2) && !b.covers(0));
        b.feed(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n");
        b.feed(b"*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(
            (b.master_repl_offset(), b.first_byte_offset(), b.histlen()),
            (50, 1, 50)
        );
        assert_eq!(
            joined(&b, 24).unwrap(),
            b"*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(joined(&b, 51).unwrap(), b"");
        assert_eq!(joined(&b, 52), None);
    }

    #[test]
    fn ring_keeps_the_last_size_bytes_and_resizes() {
        let mut b = Backlog::new(10, 100);
        assert_eq!(b.size(), MIN_SIZE, "raised to the minimum");
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(7_000) {
            b.feed(piece);
        }
        assert_eq!(b.master_repl_offset(), 100 + 40_000);
        assert_eq!(b.histlen(), MIN_SIZE as i64);
        let first = b.first_byte_offset();
        assert_eq!(first, 100 + 40_000 - MIN_SIZE as i64 + 1);
        assert!(joined(&b, first - 1).is_none());
        // Offset o is data[o - 101].
        assert_eq!(joined(&b, first).unwrap(), &data[(first - 101) as usize..]);
        let mid = first + 5_000;
        assert_eq!(joined(&b, mid).unwrap(), &data[(mid - 101) as usize..]);
        b.resize(20_000);
        b.feed(&data[..5_000]);
        assert_eq!(b.histlen(), 20_000);
        let tail = joined(&b, b.first_byte_offset()).unwrap();
        assert_eq!(&tail[tail.len() - 5_000..], &data[..5_000]);
        b.resize(MIN_SIZE);
        assert_eq!(b.histlen(), MIN_SIZE as i64);
        assert_eq!(
            joined(&b, b.first_byte_offset()).unwrap(),
            &tail[20_000 - MIN_SIZE..]
        );
        // One feed larger than the whole backlog.
        b.feed(&data);
        assert_eq!(
            joined(&b, b.first_byte_offset()).unwrap(),
            &data[40_000 - MIN_SIZE..]
        );
    }

    /// Found by `fuzz_tests::backlog_from_any_offset`: a backlog created at
    /// `i64::MAX` overflowed computing its first byte's offset, and feeding
    /// past it overflowed (panics in debug builds).
    #[test]
    fn offsets_saturate_at_i64_max() {
        let b = Backlog::new(0, i64::MAX);
        assert_eq!(b.first_byte_offset(), i64::MAX);
        assert!(b.covers(i64::MAX));
        assert_eq!(joined(&b, i64::MAX).unwrap(), b"");
        let mut b = Backlog::new(0, i64::MAX - 2);
        b.feed(b"abcde");
        assert_eq!(b.master_repl_offset(), i64::MAX);
        assert_eq!(b.first_byte_offset(), i64::MAX - 4);
        assert!(!b.covers(i64::MIN));
        assert_eq!(joined(&b, i64::MAX).unwrap(), b"e");
    }
}
