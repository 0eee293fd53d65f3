//! The AOF manifest: one line per file, key/value pairs
//! (`file <name> seq <n> type <b|i|h>`), names quoted as sds quotes them,
//! `#` lines skipped, unknown keys ignored (Redis 7.0's
//! `aofLoadManifestFromFile`, with its error texts). slotd adds `core c`,
//! `cores n` and `offset o` to each line: which writer core the file
//! belongs to, of how many, and the core's logical log offset where the
//! file starts (`slots a-b`, the core's slot range, written by earlier
//! builds, is still read; a core's slots need not be one range), and to
//! a core's incr file a rewrite opened `based <id>,...`: the transactions
//! across cores whose part on that core is in the base (see `cut`). A
//! manifest without `core` keys is a plain Redis manifest: one log.

use crate::args::split_args;

/// `MANIFEST_MAX_LINE` in Redis.
const MAX_LINE: usize = 1024;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `b`: the image (RDB, or RESP commands) the log starts from.
    Base,
    /// `i`: commands appended after the base.
    Incr,
    /// `h`: left over from before a rewrite; not loaded.
    History,
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's name in the AOF directory.
    pub name: String,
    pub seq: i64,
    pub kind: Kind,
    /// slotd: the writer core, and how many cores wrote the directory.
    pub core: Option<usize>,
    pub cores: Option<usize>,
    /// slotd: the slot range of the writer core.
    pub slots: Option<(u16, u16)>,
    /// slotd: the writer core's logical log offset where this file starts
    /// (for a base, the offset its image corresponds to). An incr file a
    /// rewrite opened has none until the rewrite ends: it starts where the
    /// core's previous incr file ends.
    pub offset: Option<u64>,
    /// slotd, an incr file a rewrite opened: the transactions across
    /// cores whose part on this core went into the base (the core's part
    /// ended before it switched to this file, while another core's part
    /// may be in that core's new incr file; see `cut`).
    pub based: Vec<String>,
}

/// A parsed manifest, its lines in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<FileInfo>,
}

/// The files of one writer core: its base, then its incr files in
/// sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles<'a> {
    pub core: usize,
    pub base: Option<&'a FileInfo>,
    pub incrs: Vec<&'a FileInfo>,
}

/// Why a manifest was refused: Redis's message, and the line (number and
/// trimmed text) it was found on, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub msg: &'static str,
    pub line: Option<(usize, String)>,
}

impl Error {
    /// Redis's log lines for the error, in order.
    pub fn log_lines(&self) -> Vec<String> {
        let mut out = vec!["\n*** FATAL AOF MANIFEST FILE ERROR ***\n".to_string()];
        if let Some((n, text)) = &self.line {
            out.push(format!("Reading the manifest file, at line {n}\n"));
            out.push(format!(">>> '{text}'\n"));
        }
        out.push(format!("{}\n", self.msg));
        out
    }
}

const INVALID: &str = "Invalid AOF manifest file format";

impl Manifest {
    /// True when the lines carry slotd's `core` keys.
    pub fn is_sharded(&self) -> bool {
        self.files.iter().any(|f| f.core.is_some())
    }

    /// The highest sequence number of any file (0 for none).
    pub fn max_seq(&self) -> i64 {
        self.files.iter().map(|f| f.seq).max().unwrap_or(0)
    }

    /// The loadable files (bases and incrs) grouped per writer core, in
    /// core order; a plain manifest is one log, core 0.
    pub fn logs(&self) -> Vec<LogFiles<'_>> {
        let mut logs: Vec<LogFiles> = Vec::new();
        for f in &self.files {
            let core = f.core.unwrap_or(0);
            let i = match logs.iter().position(|l| l.core == core) {
                Some(i) => i,
                None => {
                    logs.push(LogFiles {
                        core,
                        base: None,
                        incrs: Vec::new(),
                    });
                    logs.len() - 1
                }
            };
            match f.kind {
                Kind::Base => logs[i].base = Some(f),
                Kind::Incr => logs[i].incrs.push(f),
                Kind::History => {}
            }
        }
        logs.retain(|l| l.base.is_some() || !l.incrs.is_empty());
        logs.sort_by_key(|l| l.core);
        logs
    }

    /// Parses a manifest's bytes with Redis's checks: at most one base
    /// (per core), incr sequence numbers increasing (per core).
    pub fn parse(text: &[u8]) -> Result<Manifest, Error> {
        let mut m = Manifest::default();
        // Per core: whether it has a base, and its highest incr seq.
        let mut seen: Vec<(usize, bool, i64)> = Vec::new();
        let mut rest = text;
        let mut linenum = 0;
        if text.is_empty() {
            return Err(Error {
                msg: "Found an empty AOF manifest",
                line: None,
            });
        }
        while !rest.is_empty() {
            // fgets with a buffer of MAX_LINE + 1: at most MAX_LINE bytes.
            let take = match rest.iter().take(MAX_LINE).position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest.len().min(MAX_LINE),
            };
            let raw = &rest[..take];
            rest = &rest[take..];
            linenum += 1;
            if raw[0] == b'#' {
                continue;
            }
            let trimmed = trim(raw);
            let shown = String::from_utf8_lossy(trimmed).into_owned();
            let fail = |msg: &'static str| Error {
                msg,
                line: Some((linenum, shown.clone())),
            };
            if raw.last() != Some(&b'\n') {
                return Err(fail("The AOF manifest file contains too long line"));
            }
            if trimmed.is_empty() {
                return Err(fail(INVALID));
            }
            let argv = split_args(trimmed).ok_or_else(|| fail(INVALID))?;
            if argv.len() < 6 || argv.len() % 2 != 0 {
                return Err(fail(INVALID));
            }
            let (mut name, mut seq, mut kind) = (None, 0i64, 0u8);
            let mut info = FileInfo {
                name: String::new(),
                seq: 0,
                kind: Kind::Base,
                core: None,
                cores: None,
                slots: None,
                offset: None,
                based: Vec::new(),
            };
            for kv in argv.chunks(2) {
                let (k, v) = (&kv[0], &kv[1]);
                match k.to_ascii_lowercase().as_slice() {
                    b"file" => {
                        if v.contains(&b'/') || v.contains(&b'\\') {
                            return Err(fail("File can't be a path, just a filename"));
                        }
                        name = Some(String::from_utf8(v.clone()).map_err(|_| fail(INVALID))?);
                    }
                    b"seq" => seq = atoll(v),
                    b"type" => kind = v.first().copied().unwrap_or(0),
                    b"core" => info.core = Some(number(v).ok_or_else(|| fail(INVALID))? as usize),
                    b"cores" => info.cores = Some(number(v).ok_or_else(|| fail(INVALID))? as usize),
                    b"slots" => info.slots = Some(slot_range(v).ok_or_else(|| fail(INVALID))?),
                    b"offset" => info.offset = Some(number(v).ok_or_else(|| fail(INVALID))?),
                    b"based" => {
                        let text = std::str::from_utf8(v).map_err(|_| fail(INVALID))?;
                        info.based = text.split(',').map(str::to_owned).collect();
                        if info.based.iter().any(|id| id.is_empty()) {
                            return Err(fail(INVALID));
                        }
                    }
                    _ => {}
                }
            }
            let Some(name) = name.filter(|_| seq != 0 && kind != 0) else {
                return Err(fail(INVALID));
            };
            info.name = name;
            info.seq = seq;
            let core = info.core.unwrap_or(0);
            let slot = match seen.iter().position(|s| s.0 == core) {
                Some(i) => i,
                None => {
                    seen.push((core, false, 0));
                    seen.len() - 1
                }
            };
            info.kind = match kind {
                b'b' => {
                    if seen[slot].1 {
                        return Err(fail("Found duplicate base file information"));
                    }
                    seen[slot].1 = true;
                    Kind::Base
                }
                b'h' => Kind::History,
                b'i' => {
                    if seq <= seen[slot].2 {
                        return Err(fail("Found a non-monotonic sequence number"));
                    }
                    seen[slot].2 = seq;
                    Kind::Incr
                }
                _ => return Err(fail("Unknown AOF file type")),
            };
            m.files.push(info);
        }
        if linenum == 0 {
            return Err(Error {
                msg: "Found an empty AOF manifest",
                line: None,
            });
        }
        // slotd writes one base for the node (no `core`) and incr files
        // per core; every incr file of a sharded manifest names its core.
        let incrs = m.files.iter().filter(|f| f.kind != Kind::Base);
        let sharded = incrs.clone().filter(|f| f.core.is_some()).count();
        if sharded != 0 && sharded != incrs.count() {
            return Err(Error {
                msg: INVALID,
                line: None,
            });
        }
        Ok(m)
    }
}

/// `sdstrim(line, " \t\r\n")`.
fn trim(s: &[u8]) -> &[u8] {
    let cut = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|b| !cut(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !cut(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// C's `atoll`: optional blanks and sign, then digits; 0 when none.
fn atoll(s: &[u8]) -> i64 {
    let s = &s[s.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &b in s.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// A whole unsigned decimal number.
fn number(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// `a-b`, both slots, `a <= b`.
fn slot_range(s: &[u8]) -> Option<(u16, u16)> {
    let text = std::str::from_utf8(s).ok()?;
    let (a, b) = text.split_once('-')?;
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b < 16384).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_redis_manifest() {
        let m = Manifest::parse(
            b"file appendonly.aof.2.base.rdb seq 2 type b\n\
              file appendonly.aof.1.incr.aof seq 1 type h\n\
              file appendonly.aof.3.incr.aof seq 3 type i\n\
              file \"app only.aof.4.incr.aof\" seq 4 type i\n",
        )
        .unwrap();
        assert!(!m.is_sharded());
        assert_eq!(m.max_seq(), 4);
        let logs = m.logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].base.unwrap().name, "appendonly.aof.2.base.rdb");
        assert_eq!(logs[0].incrs.len(), 2);
        assert_eq!(logs[0].incrs[1].name, "app only.aof.4.incr.aof");
    }

    #[test]
    fn slotd_manifest_groups_per_core() {
        let m = Manifest::parse(
            b"# written by slotd\n\
              file appendonly.aof.3.c0.base.rdb seq 3 type b core 0 cores 2 slots 0-8191 offset 0\n\
              file appendonly.aof.3.c0.incr.aof seq 3 type i core 0 cores 2 slots 0-8191 offset 52311\n\
              file appendonly.aof.3.c1.base.rdb seq 3 type b core 1 cores 2 slots 8192-16383 offset 0\n\
              file appendonly.aof.3.c1.incr.aof seq 3 type i core 1 cores 2 slots 8192-16383 offset 0\n\
              file appendonly.aof.4.c1.incr.aof seq 4 type i core 1 cores 2 slots 8192-16383 offset 10 based 17.0.5,17.1.9 future x\n",
        )
        .unwrap();
        assert_eq!(m.files[4].based, vec!["17.0.5", "17.1.9"]);
        assert!(m.files[3].based.is_empty());
        let bad = b"file a.1.c0.incr.aof seq 1 type i core 0 cores 1 based 17.0.5,\n";
        assert_eq!(Manifest::parse(bad).unwrap_err().msg, INVALID);
        assert!(m.is_sharded());
        let logs = m.logs();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].incrs[0].offset, Some(52311));
        assert_eq!(logs[1].incrs.len(), 2);
        assert_eq!(logs[1].base.unwrap().slots, Some((8192, 16383)));
    }

    #[test]
    fn redis_errors() {
        let err = |t: &[u8]| Manifest::parse(t).unwrap_err().msg;
        assert_eq!(err(b""), "Found an empty AOF manifest");
        assert_eq!(
            err(b"file a seq 1 type b"),
            "The AOF manifest file contains too long line"
        );
        assert_eq!(err(b"\n"), INVALID);
        assert_eq!(err(b"file a seq 1\n"), INVALID);
        assert_eq!(err(b"file a seq 0 type b\n"), INVALID);
        assert_eq!(err(b"file \"a seq 1 type b\n"), INVALID);
        assert_eq!(
            err(b"file x/a seq 1 type b\n"),
            "File can't be a path, just a filename"
        );
        assert_eq!(
            err(b"file a seq 1 type b\nfile b seq 2 type b\n"),
            "Found duplicate base file information"
        );
        assert_eq!(
            err(b"file a seq 2 type i\nfile b seq 2 type i\n"),
            "Found a non-monotonic sequence number"
        );
        assert_eq!(err(b"file a seq 1 type x\n"), "Unknown AOF file type");
        let e = Manifest::parse(b"#c\nfile a seq 1 type x\n").unwrap_err();
        assert_eq!(e.line, Some((2, "file a seq 1 type x".into())));
        assert_eq!(err(b"file a seq 1 type i core z\n"), INVALID);
    }

    #[test]
    fn sds_quoting() {
        assert_eq!(
            split_args(b"a \"b\\x41\\n\" 'c\\'d'").unwrap(),
            vec![b"a".to_vec(), b"bA\n".to_vec(), b"c'd".to_vec()]
        );
        assert!(split_args(b"\"ab\"c").is_none());
        assert!(split_args(b"'ab").is_none());
    }
}
