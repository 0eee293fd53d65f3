//! What SLOWLOG keeps and MONITOR shows of a command, as Redis 7.0 does:
//! the argument vector trimmed for the slow log (`slowlogCreateEntry`), the
//! arguments Redis redacts (`redactClientCommandArgument`: passwords of
//! AUTH, HELLO AUTH, MIGRATE AUTH/AUTH2 and CONFIG SET of a sensitive
//! directive), a log of entries, and MONITOR's line with Redis's quoting
//! (`sdscatrepr`). No clock: times are inputs.

use crate::args::Args;
use bytes::Bytes;
use std::collections::VecDeque;

/// Arguments an entry keeps at most (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
pub const MAX_ARGC: usize = 32;
/// Bytes of an argument an entry keeps (`SLOWLOG_ENTRY_MAX_STRING`).
pub const MAX_STRING: usize = 128;
/// What a redacted argument shows.
pub const REDACTED: &[u8] = b"(redacted)";

/// One slow log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    /// Unix time (seconds) when it was logged.
    pub time_s: i64,
    /// How long the command ran, in microseconds.
    pub micros: u64,
    pub argv: Vec<Bytes>,
    /// The client's `ip:port` and name (empty when it has none).
    pub peer: String,
    pub name: Bytes,
}

impl Entry {
    /// SLOWLOG GET's form of the entry.
    pub fn reply(&self) -> crate::Reply {
        use crate::Reply;
        Reply::Array(vec![
            Reply::Int(self.id as i64),
            Reply::Int(self.time_s),
            Reply::Int(self.micros.min(i64::MAX as u64) as i64),
            Reply::Array(self.argv.iter().cloned().map(Reply::Bulk).collect()),
            Reply::bulk(self.peer.as_bytes()),
            Reply::Bulk(self.name.clone()),
        ])
    }
}

/// The sensitive directives whose CONFIG SET value Redis redacts.
const SENSITIVE: &[&str] = &["masteruser", "masterauth", "requirepass"];

/// Which arguments of `args` Redis redacts, given the command's table name
/// (`name`, lowercase).
pub fn redacted(name: &str, args: &Args) -> Vec<usize> {
    let n = args.len();
    let mut out = Vec::new();
    match name {
        "auth" if n <= 3 => out.extend(1..n),
        "hello" if n >= 2 => {
            let ok = crate::resp::parse_i64(args.get(1)).is_some_and(|v| (2..=3).contains(&v));
            let mut j = 2;
            while ok && j < n {
                let more = n - 1 - j;
                if args.is(j, "auth") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else if args.is(j, "setname") && more >= 1 {
                    j += 2;
                } else {
                    break;
                }
            }
        }
        "migrate" => {
            let mut j = 6;
            while j < n {
                let more = n - 1 - j;
                if args.is(j, "copy") || args.is(j, "replace") {
                    j += 1;
                } else if args.is(j, "auth") && more >= 1 {
                    out.push(j + 1);
                    j += 2;
                } else if args.is(j, "auth2") && more >= 2 {
                    out.extend([j + 1, j + 2]);
                    j += 3;
                } else {
                    break;
                }
            }
        }
        "config" if n >= 4 && args.is(1, "set") => {
            for j in (2..n - 1).step_by(2) {
                if SENSITIVE.iter().any(|s| args.is(j, s)) {
                    out.push(j + 1);
                }
            }
        }
        _ => {}
    }
    out
}

/// The argument vector an entry keeps: redactions applied, at most
/// [`MAX_ARGC`] arguments (the last one then says how many more there
/// were), each cut at [`MAX_STRING`] bytes.
pub fn entry_argv(name: &str, args: &Args) -> Vec<Bytes> {
    let hidden = redacted(name, args);
    let argc = args.len();
    let kept = argc.min(MAX_ARGC);
    let mut argv = Vec::with_capacity(kept);
    for j in 0..kept {
        if kept != argc && j == kept - 1 {
            argv.push(Bytes::from(format!(
                "... ({} more arguments)",
                argc - kept + 1
            )));
            break;
        }
        let a: &[u8] = if hidden.contains(&j) {
            REDACTED
        } else {
            args.get(j)
        };
        if a.len() > MAX_STRING {
            let mut s = a[..MAX_STRING].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
            argv.push(Bytes::from(s));
        } else {
            argv.push(Bytes::copy_from_slice(a));
        }
    }
    argv
}

/// One core's slow log: newest first, at most `max` entries.
#[derive(Debug, Default)]
pub struct SlowLog {
    entries: VecDeque<Entry>,
}

impl SlowLog {
    /// Adds `e` as the newest entry and drops the oldest beyond `max`.
    pub fn push(&mut self, e: Entry, max: usize) {
        self.entries.push_front(e);
        self.entries.truncate(max);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.iter().take(count).cloned().collect()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// Merges several cores' entries (each newest first) into the newest
/// `count` overall, by id.
pub fn merge(mut parts: Vec<Entry>, count: usize) -> Vec<Entry> {
    parts.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    parts.truncate(count);
    parts
}

/// Appends `s` quoted as Redis's `sdscatrepr` does.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Appends MONITOR's status line for a command: `+<sec>.<usec> [<db>
/// <who>] "arg" ...\r\n`, `who` being the client's `ip:port` or `lua`,
/// with the arguments Redis redacts shown as `(redacted)`.
pub fn monitor_line(
    out: &mut Vec<u8>,
    (sec, usec): (i64, u32),
    db: usize,
    who: &str,
    name: &str,
    args: &Args,
) {
    let hidden = redacted(name, args);
    out.extend_from_slice(format!("+{sec}.{usec:06} [{db} {who}] ").as_bytes());
    for j in 0..args.len() {
        if j > 0 {
            out.push(b' ');
        }
        let a: &[u8] = if hidden.contains(&j) {
            REDACTED
        } else {
            args.get(j)
        };
        repr(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OwnedArgs;

    fn owned(a: &[&[u8]]) -> OwnedArgs {
        OwnedArgs::from_iter(a.iter().copied())
    }

    #[test]
    fn entries_trim_arguments_and_strings() {
        let long = vec![b'x'; 130];
        let a = owned(&[b"set", b"k", &long]);
        let argv = entry_argv("set", &a.as_args());
        assert_eq!(argv[2].len(), 128 + "... (2 more bytes)".len());
        assert!(argv[2].ends_with(b"x... (2 more bytes)"));
        let many: Vec<Vec<u8>> = (0..40).map(|i| i.to_string().into_bytes()).collect();
        let refs: Vec<&[u8]> = many.iter().map(|v| &v[..]).collect();
        let a = owned(&refs);
        let argv = entry_argv("rpush", &a.as_args());
        assert_eq!(argv.len(), 32);
        assert_eq!(&argv[31][..], b"... (9 more arguments)");
        assert_eq!(&argv[30][..], b"30");
    }

    #[test]
    fn passwords_are_redacted() {
        let a = owned(&[b"auth", b"u", b"p"]);
        assert_eq!(redacted("auth", &a.as_args()), vec![1, 2]);
        let a = owned(&[b"auth", b"u", b"p", b"q"]);
        assert!(redacted("auth", &a.as_args()).is_empty());
        let a = owned(&[b"hello", b"3", b"SETNAME", b"n", b"AUTH", b"u", b"p"]);
        assert_eq!(redacted("hello", &a.as_args()), vec![5, 6]);
        let a = owned(&[
            b"migrate", b"h", b"1", b"", b"0", b"10", b"COPY", b"AUTH2", b"u", b"p", b"KEYS", b"a",
        ]);
        assert_eq!(redacted("migrate", &a.as_args()), vec![8, 9]);
        let a = owned(&[b"config", b"set", b"maxmemory", b"1", b"RequirePass", b"s"]);
        assert_eq!(redacted("config", &a.as_args()), vec![5]);
    }

    #[test]
    fn monitor_quotes_as_sdscatrepr() {
        let a = owned(&[b"set", b"k\"\\", b"\n\r\t\x07\x08\x00\xff ~"]);
        let mut out = Vec::new();
        monitor_line(&mut out, (12, 34), 3, "127.0.0.1:5", "set", &a.as_args());
        assert_eq!(
            out,
            b"+12.000034 [3 127.0.0.1:5] \"set\" \"k\\\"\\\\\" \"\\n\\r\\t\\a\\b\\x00\\xff ~\"\r\n"
        );
    }

    #[test]
    fn the_log_keeps_the_newest() {
        let mut log = SlowLog::default();
        for id in 0..5 {
            let e = Entry {
                id,
                time_s: 0,
                micros: 0,
                argv: Vec::new(),
                peer: String::new(),
                name: Bytes::new(),
            };
            log.push(e, 3);
        }
        assert_eq!(log.len(), 3);
        let ids: Vec<u64> = log.newest(10).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![4, 3, 2]);
        let merged = merge(log.newest(2).into_iter().chain(log.newest(3)).collect(), 2);
        assert_eq!(merged.len(), 2);
        log.reset();
        assert!(log.is_empty());
    }
}
