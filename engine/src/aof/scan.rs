//! Reading a RESP-format AOF file record by record, with
//! `redis-check-aof`'s checks (7.0's `processRESP`, `readLong`,
//! `readString`, `consumeNewline`): the same accepted files, the same
//! `ok_up_to`, line count and error texts. A record is a command
//! (`*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument) or an
//! annotation line (`#...\r\n`, e.g. `#TS:<secs>` or slotd's
//! `#D:<core>=<offset>,...`).

use crate::resp::strtol;

/// One item of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A command's arguments (possibly none: `*0\r\n`).
    Command(Vec<&'a [u8]>),
    /// An annotation line, from `#` up to (without) its line end.
    Annotation(&'a [u8]),
}

/// A record and the bytes `[start, end)` it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub start: usize,
    pub end: usize,
    pub item: Item<'a>,
}

/// What stopped a scan before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The file ends where a line was expected (redis-check-aof says
    /// nothing more).
    Eof,
    /// A record starts with neither `#` nor `*` (`AOF <name> format error`).
    Format,
    /// redis-check-aof's `ERROR(...)`: the position of the read that failed
    /// and the text.
    Error(usize, String),
    /// A MULTI inside a MULTI (`Unexpected MULTI in AOF <path>`).
    UnexpectedMulti(usize),
    /// An EXEC without MULTI (`Unexpected EXEC in AOF <path>`).
    UnexpectedExec(usize),
    /// The file ends inside MULTI ... EXEC.
    OpenMulti(usize),
    /// A slotd `#D:`, `#X:` or `#S:` annotation that does not parse.
    BadDeps(usize),
}

/// Where and why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The end of the last record that is whole and outside an unfinished
    /// MULTI: redis-check-aof's `ok_up_to`, where `--fix` truncates.
    pub ok_up_to: usize,
    /// The damage runs to the end of the file (a torn tail, an unfinished
    /// transaction), as opposed to bad bytes followed by more data.
    pub torn: bool,
    pub fault: Fault,
}

impl Failure {
    /// The line redis-check-aof prints for it (`name`: the file's name,
    /// `path`: its path), if any.
    pub fn message(&self, name: &str, path: &str) -> Option<String> {
        let at = |epos: usize, text: &str| format!("0x{epos:16x}: {text}");
        match &self.fault {
            Fault::Eof => None,
            Fault::Format => Some(format!("AOF {name} format error")),
            Fault::Error(e, text) => Some(at(*e, text)),
            Fault::UnexpectedMulti(e) => Some(at(*e, &format!("Unexpected MULTI in AOF {path}"))),
            Fault::UnexpectedExec(e) => Some(at(*e, &format!("Unexpected EXEC in AOF {path}"))),
            Fault::OpenMulti(e) => Some(at(*e, "Reached EOF before reading EXEC for MULTI")),
            Fault::BadDeps(e) => Some(at(*e, "Bad slotd annotation")),
        }
    }
}

/// A cursor over a file's bytes. Iterating yields records, then at most
/// one `Err` (after which it yields nothing).
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Lines consumed, counted as redis-check-aof counts them (one per
    /// `\r\n` of a command; annotations do not count); the tool carries it
    /// from file to file.
    pub lines: u64,
    /// Where the open MULTI started.
    multi: Option<usize>,
    /// redis-check-aof's `epos`: where the last read started.
    epos: usize,
    done: bool,
}

/// A failed read inside a record.
struct Bad {
    torn: bool,
    fault: Fault,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `buf`, with `lines` lines counted so far.
    pub fn new(buf: &'a [u8], lines: u64) -> Scanner<'a> {
        Scanner {
            buf,
            pos: 0,
            lines,
            multi: None,
            epos: 0,
            done: false,
        }
    }

    /// The position of the next record.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// `fgets` with a buffer of `cap`: the line at `at` up to and
    /// including its `\n` (or the end of the file, or `cap - 1` bytes).
    fn line(&self, at: usize, cap: usize) -> &'a [u8] {
        let rest = &self.buf[at..];
        let max = rest.len().min(cap - 1);
        match rest[..max].iter().position(|&b| b == b'\n') {
            Some(i) => &rest[..=i],
            None => &rest[..max],
        }
    }

    /// `consumeNewline`: the two bytes at `at` of `line` (zeros past it);
    /// `torn` says whether a mismatch means the file ended there.
    fn newline(&mut self, line: &[u8], at: usize, torn: bool) -> Result<(), Bad> {
        let b0 = line.get(at).copied().unwrap_or(0);
        let b1 = line.get(at + 1).copied().unwrap_or(0);
        if (b0, b1) == (b'\r', b'\n') {
            self.lines += 1;
            return Ok(());
        }
        // `%02x` of a (signed) char, as C prints it.
        let hex = |b: u8| format!("{:02x}", b as i8 as i32 as u32);
        Err(Bad {
            torn,
            fault: Fault::Error(
                self.epos,
                format!("Expected \\r\\n, got: {}{}", hex(b0), hex(b1)),
            ),
        })
    }

    /// `readLong`: `<prefix><number>\r\n`.
    fn long(&mut self, prefix: u8) -> Result<i64, Bad> {
        self.epos = self.pos;
        if self.pos >= self.buf.len() {
            return Err(Bad {
                torn: true,
                fault: Fault::Eof,
            });
        }
        let line = self.line(self.pos, 128);
        if line[0] != prefix {
            return Err(Bad {
                torn: false,
                fault: Fault::Error(
                    self.epos,
                    format!(
                        "Expected prefix '{}', got: '{}'",
                        prefix as char, line[0] as char
                    ),
                ),
            });
        }
        let (n, end) = strtol(line, 1);
        self.pos += line.len();
        let torn = line.last() != Some(&b'\n') && self.pos == self.buf.len();
        self.newline(line, end, torn)?;
        Ok(n)
    }

    /// `readString`: `$<len>\r\n<bytes>\r\n`.
    fn string(&mut self) -> Result<&'a [u8], Bad> {
        let len = self.long(b'$')?;
        if !(0..=i64::MAX - 2).contains(&len) {
            return Err(Bad {
                torn: false,
                fault: Fault::Error(
                    self.epos,
                    format!(
                        "Expected to read string of {len} bytes, which is not in the suitable range"
                    ),
                ),
            });
        }
        self.epos = self.pos;
        let want = len as u64 + 2;
        let left = (self.buf.len() - self.pos) as u64;
        if left < want {
            self.pos = self.buf.len();
            return Err(Bad {
                torn: true,
                fault: Fault::Error(
                    self.epos,
                    format!("Expected to read {want} bytes, got {left} bytes"),
                ),
            });
        }
        let start = self.pos;
        let data = &self.buf[start..start + len as usize];
        self.pos += want as usize;
        let tail = &self.buf[start + len as usize..self.pos];
        self.newline(tail, 0, false)?;
        Ok(data)
    }

    /// One command after its `*` (at `start`).
    fn command(&mut self, start: usize) -> Result<Vec<&'a [u8]>, Bad> {
        let argc = self.long(b'*')?;
        let mut argv = Vec::with_capacity(argc.clamp(0, 64) as usize);
        for i in 0..argc.max(0) {
            let s = self.string()?;
            if i == 0 {
                if s.eq_ignore_ascii_case(b"multi") {
                    if self.multi.is_some() {
                        return Err(Bad {
                            torn: false,
                            fault: Fault::UnexpectedMulti(self.epos),
                        });
                    }
                    self.multi = Some(start);
                } else if s.eq_ignore_ascii_case(b"exec") && self.multi.take().is_none() {
                    return Err(Bad {
                        torn: false,
                        fault: Fault::UnexpectedExec(self.epos),
                    });
                }
            }
            argv.push(s);
        }
        Ok(argv)
    }

    fn fail(&mut self, start: usize, bad: Bad) -> Failure {
        self.done = true;
        Failure {
            ok_up_to: self.multi.unwrap_or(start),
            torn: bad.torn,
            fault: bad.fault,
        }
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Result<Record<'a>, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.pos;
        if start >= self.buf.len() {
            self.done = true;
            return self.multi.map(|m| {
                Err(Failure {
                    ok_up_to: m,
                    torn: true,
                    fault: Fault::OpenMulti(self.epos),
                })
            });
        }
        match self.buf[start] {
            b'#' => {
                self.epos = start;
                // AOF_ANNOTATION_LINE_MAX_LEN is 1024.
                let line = self.line(start, 1024);
                if line.last() != Some(&b'\n') {
                    // A torn annotation: slotd's dependencies must be
                    // whole, so it is cut like any torn record.
                    let bad = Bad {
                        torn: start + line.len() == self.buf.len(),
                        fault: Fault::Eof,
                    };
                    return Some(Err(self.fail(start, bad)));
                }
                self.pos += line.len();
                let text = line.strip_suffix(b"\n").unwrap_or(line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                Some(Ok(Record {
                    start,
                    end: self.pos,
                    item: Item::Annotation(text),
                }))
            }
            b'*' => match self.command(start) {
                Ok(argv) => Some(Ok(Record {
                    start,
                    end: self.pos,
                    item: Item::Command(argv),
                })),
                Err(bad) => Some(Err(self.fail(start, bad))),
            },
            _ => {
                let bad = Bad {
                    torn: false,
                    fault: Fault::Format,
                };
                Some(Err(self.fail(start, bad)))
            }
        }
    }
}

/// A slotd dependency: records after it wait for core `.0`'s log to be
/// applied up to logical offset `.1`.
pub type Dep = (usize, u64);

/// What a whole file holds, for the cut and the loader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileIndex {
    /// Bytes of whole records outside an unfinished MULTI (the file's
    /// valid length).
    pub valid: usize,
    /// Why the scan stopped before the end, if it did.
    pub failure: Option<Failure>,
    /// `#D:` annotations: their position in the file and dependencies.
    pub deps: Vec<(usize, Vec<Dep>)>,
    /// MULTI ... EXEC blocks: `[MULTI's start, EXEC's end)`.
    pub txns: Vec<(usize, usize)>,
    /// `#X:` annotations (one core's part of a transaction that spans
    /// cores): their position, the transaction's id and its cores.
    pub parts: Vec<(usize, Part)>,
    /// Commands in the valid part (MULTI and EXEC included).
    pub commands: u64,
}

/// A transaction across cores, as one core's `#X:<id>:<core>,<core>...`
/// annotation names it (before that core's MULTI ... EXEC block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub id: String,
    pub cores: Vec<usize>,
}

/// Parses `#X:<id>:<core>,...` (the annotation without its line end).
pub fn parse_part(text: &[u8]) -> Option<Part> {
    let body = std::str::from_utf8(text.strip_prefix(b"#X:")?).ok()?;
    let (id, cores) = body.rsplit_once(':')?;
    let cores = cores
        .split(',')
        .map(|c| c.parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    (!id.is_empty()).then(|| Part {
        id: id.to_string(),
        cores,
    })
}

/// Parses `#D:<core>=<offset>,...` (the annotation without its line end).
pub fn parse_deps(text: &[u8]) -> Option<Vec<Dep>> {
    let body = std::str::from_utf8(text.strip_prefix(b"#D:")?).ok()?;
    body.split(',')
        .map(|p| {
            let (c, o) = p.split_once('=')?;
            Some((c.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

/// Parses `#S:<slot>-<slot>,...` (the annotation without its line end;
/// a range may be one slot, the list may be empty): the hash slots the writer core owned when it
/// logged the FLUSHALL, FLUSHDB or SWAPDB that follows, which changed its
/// keys only (engine's `cmd::server`). Slots out of range do not parse.
pub fn parse_slots(text: &[u8]) -> Option<Vec<(u16, u16)>> {
    let body = std::str::from_utf8(text.strip_prefix(b"#S:")?).ok()?;
    if body.is_empty() {
        // (A cluster node's core serving no slot.)
        return Some(Vec::new());
    }
    body.split(',')
        .map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b && (b as usize) < crate::slot::SLOTS).then_some((a, b))
        })
        .collect()
}

/// How many zero bytes end `buf`: under `appendfsync always` slotd's
/// writer keeps zeros written past its records (node's `persist::aof`),
/// which a crash leaves in the file. A record never ends with a zero byte
/// (its last byte is `\n`), so cutting them never cuts into one.
pub fn zero_tail(buf: &[u8]) -> usize {
    buf.iter().rev().take_while(|&&b| b == 0).count()
}

/// Scans a whole RESP file: its valid length, its damage, its `#D:`
/// dependencies and transactions.
pub fn index(buf: &[u8]) -> FileIndex {
    let mut ix = FileIndex::default();
    let mut multi = None;
    let mut pending = 0u64;
    for r in Scanner::new(buf, 1) {
        match r {
            Ok(rec) => match rec.item {
                Item::Annotation(text) => {
                    // slotd's annotations must parse; others are skipped.
                    let bad = if text.starts_with(b"#X:") {
                        parse_part(text)
                            .map(|p| ix.parts.push((rec.start, p)))
                            .is_none()
                    } else if text.starts_with(b"#D:") {
                        parse_deps(text)
                            .map(|d| ix.deps.push((rec.start, d)))
                            .is_none()
                    } else if text.starts_with(b"#S:") {
                        parse_slots(text).is_none()
                    } else {
                        false
                    };
                    if bad {
                        ix.failure = Some(Failure {
                            ok_up_to: multi.unwrap_or(rec.start),
                            torn: false,
                            fault: Fault::BadDeps(rec.start),
                        });
                        break;
                    }
                    if multi.is_none() {
                        ix.valid = rec.end;
                    }
                }
                Item::Command(argv) => {
                    pending += 1;
                    let name = argv.first().copied().unwrap_or(b"");
                    if name.eq_ignore_ascii_case(b"multi") {
                        multi = Some(rec.start);
                    } else if name.eq_ignore_ascii_case(b"exec") {
                        if let Some(m) = multi.take() {
                            ix.txns.push((m, rec.end));
                        }
                    }
                    if multi.is_none() {
                        ix.valid = rec.end;
                        ix.commands += pending;
                        pending = 0;
                    }
                }
            },
            Err(f) => {
                ix.failure = Some(f);
                break;
            }
        }
    }
    // Dependencies past the valid part do not count.
    let valid = ix.valid;
    ix.deps.retain(|(p, _)| *p < valid);
    ix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
        out
    }

    #[test]
    fn records_and_annotations() {
        let mut f = b"#TS:1700000000\r\n".to_vec();
        f.extend(cmd(&["SELECT", "0"]));
        f.extend(b"#D:1=40,2=0\r\n");
        f.extend(cmd(&["SET", "k", "v"]));
        let recs: Vec<_> = Scanner::new(&f, 1).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].item, Item::Annotation(b"#TS:1700000000"));
        assert_eq!(recs[3].item, Item::Command(vec![b"SET", b"k", b"v"]));
        assert_eq!(recs[3].end, f.len());
        let ix = index(&f);
        assert_eq!(ix.valid, f.len());
        assert_eq!(ix.failure, None);
        assert_eq!(ix.deps, vec![(recs[2].start, vec![(1, 40), (2, 0)])]);
        assert_eq!(ix.commands, 2);
    }

    #[test]
    fn torn_tail_at_every_byte() {
        let mut f = cmd(&["SET", "a", "1"]);
        let first = f.len();
        f.extend(cmd(&["SET", "bb", "22"]));
        for cut in first + 1..f.len() {
            let ix = index(&f[..cut]);
            assert_eq!(ix.valid, first, "cut at {cut}");
            let fail = ix.failure.unwrap();
            assert!(fail.torn, "cut at {cut}: {fail:?}");
            assert_eq!(fail.ok_up_to, first);
        }
    }

    #[test]
    fn unfinished_multi_and_garbage() {
        let mut f = cmd(&["SET", "a", "1"]);
        let before = f.len();
        f.extend(cmd(&["MULTI"]));
        f.extend(cmd(&["INCR", "a"]));
        let ix = index(&f);
        assert_eq!(ix.valid, before);
        let fail = ix.failure.unwrap();
        assert!(fail.torn);
        assert!(matches!(fail.fault, Fault::OpenMulti(_)));
        f.extend(cmd(&["EXEC"]));
        let ix = index(&f);
        assert_eq!(
            (ix.valid, ix.failure, ix.txns),
            (f.len(), None, vec![(before, f.len())])
        );
        // Garbage followed by good data: not a torn tail.
        let mut g = cmd(&["SET", "a", "1"]);
        g.extend(b"xyz\r\n");
        g.extend(cmd(&["SET", "a", "2"]));
        let ix = index(&g);
        assert_eq!(ix.valid, before);
        let fail = ix.failure.unwrap();
        assert!(!fail.torn);
        assert_eq!(fail.fault, Fault::Format);
        assert_eq!(fail.message("f", "p").unwrap(), "AOF f format error");
        // A wrong length: the bulk's end is not \r\n.
        let mut h = cmd(&["SET", "a", "1"]);
        h.extend(b"*1\r\n$2\r\nabc\r\n");
        let fail = index(&h).failure.unwrap();
        assert!(!fail.torn);
        assert_eq!(
            fail.message("f", "p").unwrap(),
            format!("0x{:16x}: Expected \\r\\n, got: 630d", before + 8)
        );
    }

    #[test]
    fn deps_parse() {
        assert_eq!(parse_deps(b"#D:0=5"), Some(vec![(0, 5)]));
        assert_eq!(
            parse_part(b"#X:17.3:0,2"),
            Some(Part {
                id: "17.3".into(),
                cores: vec![0, 2]
            })
        );
        assert_eq!(parse_part(b"#X:17:0,z"), None);
        assert_eq!(parse_deps(b"#D:0=5,x=1"), None);
        assert_eq!(parse_deps(b"#TS:5"), None);
        let mut f = cmd(&["SET", "a", "1"]);
        f.extend(b"#D:0=q\r\n");
        let ix = index(&f);
        assert!(matches!(ix.failure.unwrap().fault, Fault::BadDeps(_)));
    }

    #[test]
    fn slots_parse() {
        assert_eq!(
            parse_slots(b"#S:0-8191,9000,16383-16383"),
            Some(vec![(0, 8191), (9000, 9000), (16383, 16383)])
        );
        assert_eq!(parse_slots(b"#S:"), Some(vec![]));
        for bad in [&b"#S:,"[..], b"#S:5-3", b"#S:0-16384", b"#S:a", b"#S:1,,2"] {
            assert_eq!(parse_slots(bad), None, "{bad:?}");
        }
        let mut f = cmd(&["SET", "a", "1"]);
        let ok = f.len();
        f.extend(b"#S:0-8191\r\n");
        f.extend(cmd(&["FLUSHALL"]));
        assert!(index(&f).failure.is_none());
        f.truncate(ok);
        f.extend(b"#S:0-99999\r\n");
        f.extend(cmd(&["FLUSHALL"]));
        let fail = index(&f).failure.unwrap();
        assert!(matches!(fail.fault, Fault::BadDeps(at) if at == ok));
        assert_eq!(fail.ok_up_to, ok);
    }
}
