//! The write log: every write a shard makes, as the RESP commands that
//! replay it (what Redis appends to its AOF and sends to replicas), encoded
//! straight into one byte buffer that the node takes each loop turn.
//!
//! A `SELECT` is written whenever the database changes (and before the
//! first record after [`WriteLog::reset_db`], e.g. at the start of a new
//! file). The log counts its bytes from a logical offset the node sets, so
//! positions stay comparable across buffers and files. An annotation set
//! with [`WriteLog::set_prelude`] (a `#...` line, which Redis's loader
//! skips) is written once, before the next record. With
//! `aof-timestamp-enabled`, [`WriteLog::stamp`] makes the next record
//! start with Redis's `#TS:<unix seconds>` whenever the second moved on
//! since the last stamp (never inside a MULTI block).

use bytes::Bytes;

/// Records waiting for the node, and where they sit in the log.
#[derive(Debug, Default)]
pub struct WriteLog {
    buf: Vec<u8>,
    /// Logical offset of `buf[0]`.
    base: u64,
    /// The database the last record applied to (`None`: write a SELECT).
    db: Option<u16>,
    /// An annotation to write before the next record.
    prelude: Vec<u8>,
    /// Inside a MULTI block: annotations wait for its EXEC.
    in_multi: bool,
    /// A block of one core's transaction (no annotation), while its bytes
    /// are not taken: where its MULTI starts and how many commands it
    /// holds. Redis 7.0 wraps what one call propagates only when it is
    /// more than one command, with the first command's SELECT before the
    /// MULTI (`propagatePendingCommands`).
    plain_multi: Option<(usize, u32)>,
    /// The second of the last `#TS` annotation set (0: none), and whether
    /// it still waits for a record.
    stamped: u64,
    stamp_due: bool,
}

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// `c`, `n` in decimal, CRLF: one call per argument and two per command,
/// so lengths under 100 (nearly all) take no digit loop.
#[inline]
fn header(out: &mut Vec<u8>, c: u8, n: usize) {
    if n < 10 {
        out.extend_from_slice(&[c, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        out.extend_from_slice(&[
            c,
            b'0' + (n / 10) as u8,
            b'0' + (n % 10) as u8,
            b'\r',
            b'\n',
        ]);
    } else {
        out.push(c);
        out.extend_from_slice(itoa_buf(n as u64).as_slice());
        out.extend_from_slice(b"\r\n");
    }
}

struct Digits {
    d: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.d[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut d = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { d, start: i }
}

/// Appends `n` in decimal (annotations' offsets, with no allocation).
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa_buf(n).as_slice());
}

/// Appends Redis's timestamp annotation `#TS:<secs>\r\n` (what a
/// rewrite's base written as commands starts with, and the stamps of
/// [`WriteLog::stamp`]).
pub fn timestamp(out: &mut Vec<u8>, secs: u64) {
    out.extend_from_slice(b"#TS:");
    push_decimal(out, secs);
    out.extend_from_slice(b"\r\n");
}

/// Appends `argv` as one RESP multibulk command.
pub fn encode<'a>(out: &mut Vec<u8>, argv: impl ExactSizeIterator<Item = &'a [u8]>) {
    header(out, b'*', argv.len());
    for a in argv {
        header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl WriteLog {
    /// An empty log whose next byte is at logical offset `base`.
    pub fn new(base: u64) -> WriteLog {
        WriteLog {
            base,
            ..Default::default()
        }
    }

    /// The logical offset just past the last byte recorded.
    pub fn offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// True when nothing waits to be taken.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Makes the next record start with a SELECT (a new file starts in
    /// database 0 for the loader).
    pub fn reset_db(&mut self) {
        self.db = None;
    }

    /// Writes `line` (an annotation, without its CRLF) before the next
    /// record, replacing one set before and not written yet.
    pub fn set_prelude(&mut self, line: &[u8]) {
        self.prelude.clear();
        self.prelude.extend_from_slice(line);
    }

    /// Writes the annotation `line` (without its CRLF) now, ahead of the
    /// next record, inside a MULTI block too.
    pub fn annotate(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// True inside a MULTI block.
    pub fn in_multi(&self) -> bool {
        self.in_multi
    }

    /// Opens a MULTI block (after `annotation`, if any: a `#X:` line that
    /// names a transaction across cores): what is recorded until
    /// [`WriteLog::end_multi`] is replayed all or nothing. Returns a mark
    /// for `end_multi`.
    pub fn begin_multi(&mut self, annotation: Option<&[u8]>) -> usize {
        self.flush_prelude();
        if let Some(a) = annotation {
            self.buf.extend_from_slice(a);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.plain_multi = annotation.is_none().then_some((self.buf.len(), 0));
        self.buf.extend_from_slice(MULTI);
        self.in_multi = true;
        self.buf.len()
    }

    /// True inside a MULTI block (a script's effects then join it).
    pub fn in_block(&self) -> bool {
        self.in_multi
    }

    /// Closes the MULTI block. With `drop_empty`, a block in which nothing
    /// was recorded (`mark` from `begin_multi`, the buffer not taken
    /// meanwhile) is removed instead.
    pub fn end_multi(&mut self, mark: usize, drop_empty: bool) {
        // A log turned on inside the block (the replication stream starts
        // under a full resynchronization's locks) has no MULTI to close.
        if !std::mem::replace(&mut self.in_multi, false) {
            return;
        }
        match self.plain_multi.take() {
            // One command: no wrapper (nor for none, with `drop_empty`).
            Some((at, n)) if n == 1 || (n == 0 && drop_empty) => {
                self.buf.drain(at..at + MULTI.len());
                return;
            }
            Some(_) => {}
            None if drop_empty && self.buf.len() == mark && mark >= MULTI.len() => {
                self.buf.truncate(mark - MULTI.len());
                return;
            }
            None => {}
        }
        self.buf.extend_from_slice(EXEC);
    }

    /// `aof-timestamp-enabled`: with `Some(now)` (Unix seconds, the
    /// caller's cached clock), the next record is preceded by `#TS:<now>`
    /// if `now` is later than the last stamp (Redis's
    /// `genAofTimestampAnnotationIfNeeded(0)`); `None` drops a pending
    /// stamp.
    pub fn stamp(&mut self, now: Option<u64>) {
        match now {
            Some(s) if s > self.stamped => {
                self.stamped = s;
                self.stamp_due = true;
            }
            Some(_) => {}
            None => {
                self.stamped = 0;
                self.stamp_due = false;
            }
        }
    }

    /// Writes the annotations that wait for the next record: the
    /// timestamp, then the prelude.
    fn flush_prelude(&mut self) {
        if self.stamp_due {
            self.stamp_due = false;
            timestamp(&mut self.buf, self.stamped);
        }
        if !self.prelude.is_empty() {
            self.buf.extend_from_slice(&self.prelude);
            self.buf.extend_from_slice(b"\r\n");
            self.prelude.clear();
        }
    }

    fn begin(&mut self, db: u16) {
        if !self.in_multi {
            self.flush_prelude();
        }
        if self.db != Some(db) {
            let n = itoa_buf(db as u64);
            let end = self.buf.len();
            encode(&mut self.buf, [&b"SELECT"[..], n.as_slice()].into_iter());
            // The block's first command: its SELECT goes before the MULTI.
            let len = self.buf.len() - end;
            if let Some((at, 0)) = &mut self.plain_multi {
                self.buf[*at..].rotate_right(len);
                *at += len;
            }
            self.db = Some(db);
        }
        if let Some((_, n)) = &mut self.plain_multi {
            *n += 1;
        }
    }

    /// Records one command applied to database `db`.
    pub fn record<'a>(&mut self, db: u16, argv: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.begin(db);
        encode(&mut self.buf, argv);
    }

    /// Records one command already encoded as one RESP multibulk
    /// command (what [`encode`] would write for it).
    pub fn record_encoded(&mut self, db: u16, command: &[u8]) {
        self.begin(db);
        self.buf.extend_from_slice(command);
    }

    /// Records one command given as owned arguments.
    pub fn record_owned(&mut self, db: u16, argv: &[Bytes]) {
        self.record(db, argv.iter().map(|b| &b[..]));
    }

    /// Hands the recorded bytes over, swapping in `spare` (cleared) so the
    /// buffers are reused; the offset moves on by what was taken.
    pub fn take(&mut self, spare: &mut Vec<u8>) {
        // A block taken before its end keeps its MULTI.
        self.plain_multi = None;
        spare.clear();
        std::mem::swap(&mut self.buf, spare);
        self.base += spare.len() as u64;
    }

    /// Drops the recorded bytes (nobody takes them), keeping the buffer's
    /// capacity; the offset moves on by what was dropped.
    pub fn discard(&mut self) {
        self.plain_multi = None;
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.reset_db();
    }

    /// Hands the recorded bytes over appended to `out`, keeping this
    /// log's buffer (and its capacity) for the next records.
    pub fn take_onto(&mut self, out: &mut Vec<u8>) {
        self.plain_multi = None;
        out.extend_from_slice(&self.buf);
        self.base += self.buf.len() as u64;
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_writes_every_length_as_resp() {
        for len in [0usize, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345] {
            let arg = vec![b'x'; len];
            let argv: Vec<&[u8]> = vec![&arg; len % 13 + 1];
            let mut out = Vec::new();
            encode(&mut out, argv.iter().copied());
            let mut want = format!("*{}\r\n", argv.len()).into_bytes();
            for a in &argv {
                want.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                want.extend_from_slice(a);
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(out, want, "{len}");
        }
    }

    #[test]
    fn records_select_and_offsets() {
        let mut l = WriteLog::new(100);
        l.record(0, [&b"SET"[..], b"k", b"v"].into_iter());
        l.record(0, [&b"DEL"[..], b"k"].into_iter());
        l.set_prelude(b"#D:1=5");
        l.record(3, [&b"INCR"[..], b"n"].into_iter());
        let mut out = Vec::new();
        l.take(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
             *2\r\n$3\r\nDEL\r\n$1\r\nk\r\n#D:1=5\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n\
             *2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
        );
        assert_eq!(l.offset(), 100 + out.len() as u64);
        assert!(l.is_empty());
        l.reset_db();
        l.record(3, [&b"DEL"[..], b"n"].into_iter());
        let mut out2 = Vec::new();
        l.take(&mut out2);
        assert!(out2.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
    }

    #[test]
    fn take_onto_appends_and_keeps_the_buffer() {
        let mut l = WriteLog::new(7);
        l.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        let mut whole = Vec::new();
        l.take(&mut whole);
        let mut out = b"queued".to_vec();
        l.record(0, [&b"SET"[..], b"b", b"2"].into_iter());
        let cap = l.buf.capacity();
        l.take_onto(&mut out);
        assert_eq!(
            &out[..],
            &b"queued*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n"[..]
        );
        assert_eq!(l.offset(), 7 + whole.len() as u64 + out.len() as u64 - 6);
        assert!(l.is_empty());
        assert_eq!(l.buf.capacity(), cap);
    }

    #[test]
    fn multi_blocks_hold_annotations_and_drop_when_empty() {
        let mut l = WriteLog::new(0);
        l.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        let before = l.offset();
        let m = l.begin_multi(None);
        l.end_multi(m, true);
        // Closing a block that was never opened records nothing.
        l.end_multi(0, false);
        assert_eq!(l.offset(), before, "an empty block leaves nothing");
        l.set_prelude(b"#D:1=9");
        let m = l.begin_multi(Some(b"#X:5.1:0,1"));
        l.set_prelude(b"#D:1=12");
        l.record(0, [&b"DEL"[..], b"a"].into_iter());
        l.end_multi(m, true);
        l.record(0, [&b"DEL"[..], b"b"].into_iter());
        let mut out = Vec::new();
        l.take(&mut out);
        let text = String::from_utf8(out).unwrap();
        let tail = &text[text.find("#D:1=9").unwrap()..];
        assert!(tail.starts_with("#D:1=9\r\n#X:5.1:0,1\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nDEL"));
        assert!(tail.contains("EXEC\r\n#D:1=12\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb"));
    }

    /// Redis 7.0's `propagatePendingCommands`: a transaction of one core
    /// is wrapped only with more than one command, its first SELECT goes
    /// before its MULTI; a part of a transaction across cores (annotated)
    /// keeps its wrapper whatever it holds.
    #[test]
    fn one_command_is_not_wrapped_and_select_goes_first() {
        let text = |f: &dyn Fn(&mut WriteLog)| {
            let mut l = WriteLog::new(0);
            l.record(0, [&b"SET"[..], b"z", b"1"].into_iter());
            f(&mut l);
            let mut out = Vec::new();
            l.take(&mut out);
            String::from_utf8(out).unwrap().replace("\r\n", " ")
        };
        let one = text(&|l| {
            let m = l.begin_multi(None);
            l.record(3, [&b"INCR"[..], b"n"].into_iter());
            l.end_multi(m, true);
        });
        assert!(
            one.ends_with("1 *2 $6 SELECT $1 3 *2 $4 INCR $1 n "),
            "{one}"
        );
        let two = text(&|l| {
            let m = l.begin_multi(None);
            l.record(3, [&b"INCR"[..], b"n"].into_iter());
            l.record(4, [&b"INCR"[..], b"m"].into_iter());
            l.end_multi(m, true);
        });
        assert!(
            two.ends_with("1 *2 $6 SELECT $1 3 *1 $5 MULTI *2 $4 INCR $1 n *2 $6 SELECT $1 4 *2 $4 INCR $1 m *1 $4 EXEC "),
            "{two}"
        );
        let none = text(&|l| {
            let m = l.begin_multi(None);
            l.end_multi(m, true);
        });
        assert!(none.ends_with("$1 z $1 1 "), "{none}");
        let part = text(&|l| {
            let m = l.begin_multi(Some(b"#X:1"));
            l.record(3, [&b"INCR"[..], b"n"].into_iter());
            l.end_multi(m, false);
        });
        assert!(
            part.ends_with("#X:1 *1 $5 MULTI *2 $6 SELECT $1 3 *2 $4 INCR $1 n *1 $4 EXEC "),
            "{part}"
        );
    }

    #[test]
    fn timestamps_when_the_second_moves_and_never_inside_multi() {
        let mut l = WriteLog::new(0);
        l.stamp(Some(100));
        l.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        l.stamp(Some(100));
        l.record(0, [&b"SET"[..], b"b", b"1"].into_iter());
        // A second with no write leaves no stamp; the next write gets
        // the second it happened in.
        l.stamp(Some(101));
        l.stamp(Some(102));
        l.set_prelude(b"#D:1=7");
        let m = l.begin_multi(None);
        l.stamp(Some(103));
        l.record(0, [&b"DEL"[..], b"a"].into_iter());
        l.record(0, [&b"DEL"[..], b"a2"].into_iter());
        l.end_multi(m, true);
        l.record(0, [&b"DEL"[..], b"b"].into_iter());
        l.stamp(None);
        l.record(0, [&b"DEL"[..], b"c"].into_iter());
        let mut out = Vec::new();
        l.take(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|x| x.starts_with('#')).collect();
        assert_eq!(lines, ["#TS:100", "#TS:102", "#D:1=7", "#TS:103"]);
        assert!(text.starts_with("#TS:100\r\n*2\r\n$6\r\nSELECT"));
        assert!(text.contains("#TS:102\r\n#D:1=7\r\n*1\r\n$5\r\nMULTI\r\n"));
        assert!(text.contains("EXEC\r\n#TS:103\r\n*2\r\n$3\r\nDEL\r\n$1\r\nb\r\n"));
        assert!(text.ends_with("b\r\n*2\r\n$3\r\nDEL\r\n$1\r\nc\r\n"));
    }
}
