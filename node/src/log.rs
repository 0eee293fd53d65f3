//! Redis-style logging for slotd.
//!
//! Every line has the exact shape redis-server 7.0 writes:
//!
//! ```text
//! <pid>:<role> <dd Mon yyyy HH:MM:SS.mmm> <level char> <message>
//! 12345:M 23 Nov 2026 12:00:00.123 * Ready to accept connections
//! ```
//!
//! Level chars: debug `.`, verbose `-`, notice `*`, warning `#`. The role is
//! always `M`; the time is UTC (computed here without external crates).
//!
//! Usage: call [`init`] once at start-up (before that, lines go to stdout at
//! level `notice`), then from any thread
//! `log::notice(format_args!("Ready to accept connections"))`.
//! [`set_level`] changes the threshold at runtime (`CONFIG SET loglevel`).
//! The threshold is an atomic checked before any formatting, so a filtered
//! line costs one relaxed load. Each line is written with a single
//! `write_all` of the whole line (the file is opened `O_APPEND`; stdout is
//! locked), so lines from different threads never interleave.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A log level, from most to least verbose (Redis's `loglevel` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `debug`: a lot of information, useful for development/testing.
    Debug = 0,
    /// `verbose`: many rarely useful infos, but not a mess like debug.
    Verbose = 1,
    /// `notice`: moderately verbose, what you want in production.
    Notice = 2,
    /// `warning`: only very important / critical messages.
    Warning = 3,
}

impl Level {
    /// Parses a `loglevel` name (`debug`, `verbose`, `notice`, `warning`),
    /// case-insensitively, as Redis does.
    pub fn from_name(name: &str) -> Option<Level> {
        const ALL: [Level; 4] = [Level::Debug, Level::Verbose, Level::Notice, Level::Warning];
        ALL.into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// The `loglevel` name of this level (`"notice"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Verbose => "verbose",
            Level::Notice => "notice",
            Level::Warning => "warning",
        }
    }

    /// The character Redis prints for this level (`.`, `-`, `*`, `#`).
    fn mark(self) -> char {
        match self {
            Level::Debug => '.',
            Level::Verbose => '-',
            Level::Notice => '*',
            Level::Warning => '#',
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Current threshold: lines below it are dropped.
static LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);

/// Where lines go once [`init`] ran; unset means stdout.
static SINK: OnceLock<Option<File>> = OnceLock::new();

/// Initialises logging: sets the level and the destination. An empty
/// `logfile` means stdout; otherwise the file is created if needed and opened
/// in append mode. Fails (with Redis's wording, `Can't open the log file: ...`)
/// when the file cannot be opened, or if called more than once.
pub fn init(level: Level, logfile: &str) -> Result<(), String> {
    let sink = if logfile.is_empty() {
        None
    } else {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
            .map_err(|e| format!("Can't open the log file: {}", io_error_text(&e)))?;
        Some(file)
    };
    SINK.set(sink)
        .map_err(|_| "log::init called more than once".to_string())?;
    set_level(level);
    Ok(())
}

/// Changes the threshold at runtime (e.g. after `CONFIG SET loglevel`).
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when a line at `level` would be written. Use it to skip expensive
/// work that only feeds a log line.
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// The role letter of every line: `M` for a master, `S` for a replica.
static ROLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(b'M');

/// Marks the process a replica (`S`) or a master (`M`) in later lines.
pub fn set_replica(replica: bool) {
    ROLE.store(if replica { b'S' } else { b'M' }, Ordering::Relaxed);
}

/// Writes one line at `level` if the threshold lets it through.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let role = ROLE.load(Ordering::Relaxed) as char;
    let mut line = format_line(std::process::id(), role, now, level, args);
    line.push('\n');
    write_line(line.as_bytes());
}

/// Writes a script's `redis.log` line (level 0 debug … 3 warning).
pub fn script_line(level: u8, line: &str) {
    let level = match level {
        0 => Level::Debug,
        1 => Level::Verbose,
        2 => Level::Notice,
        _ => Level::Warning,
    };
    log(level, format_args!("{line}"));
}

/// Logs at `verbose` (`-`).
pub fn verbose(args: fmt::Arguments<'_>) {
    log(Level::Verbose, args)
}

/// Logs at `notice` (`*`).
pub fn notice(args: fmt::Arguments<'_>) {
    log(Level::Notice, args)
}

/// Logs at `warning` (`#`).
pub fn warning(args: fmt::Arguments<'_>) {
    log(Level::Warning, args)
}

/// Formats one line, without the trailing newline:
/// `<pid>:<role> <dd Mon yyyy HH:MM:SS.mmm> <level char> <message>`, with the
/// time given as milliseconds since the Unix epoch, rendered in UTC.
pub fn format_line(
    pid: u32,
    role: char,
    unix_millis: u64,
    level: Level,
    msg: fmt::Arguments<'_>,
) -> String {
    use fmt::Write as _;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let millis = unix_millis % 1000;
    let secs = unix_millis / 1000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let mut out = String::with_capacity(64);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{}:{} {:02} {} {} {:02}:{:02}:{:02}.{:03} {} {}",
        pid,
        role,
        day,
        MONTHS[(month as usize).saturating_sub(1) % 12],
        year,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        millis,
        level.mark(),
        msg
    );
    out
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One write of a whole line to the configured sink. Errors are ignored:
/// there is nowhere left to report them.
fn write_line(bytes: &[u8]) {
    match SINK.get() {
        Some(Some(file)) => {
            let mut f: &File = file;
            let _ = f.write_all(bytes);
        }
        _ => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
    }
}

/// `strerror`-like text of an I/O error (without Rust's " (os error N)").
pub fn io_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_redis() {
        // 2026-11-23 12:00:00.123 UTC
        let t = 1_795_435_200_123;
        let line = format_line(
            12345,
            'M',
            t,
            Level::Notice,
            format_args!("Ready to accept connections"),
        );
        assert_eq!(
            line,
            "12345:M 23 Nov 2026 12:00:00.123 * Ready to accept connections"
        );
        let line = format_line(1, 'M', 0, Level::Warning, format_args!("x={}", 5));
        assert_eq!(line, "1:M 01 Jan 1970 00:00:00.000 # x=5");
        let line = format_line(7, 'M', 951_827_696_007, Level::Debug, format_args!("d"));
        assert_eq!(line, "7:M 29 Feb 2000 12:34:56.007 . d");
        let line = format_line(7, 'M', 4_102_444_799_999, Level::Verbose, format_args!("v"));
        assert_eq!(line, "7:M 31 Dec 2099 23:59:59.999 - v");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_417), (2023, 3, 1));
        // Huge input: no panic.
        let _ = format_line(1, 'M', u64::MAX, Level::Notice, format_args!("x"));
    }

    #[test]
    fn level_names_and_filtering() {
        for l in [Level::Debug, Level::Verbose, Level::Notice, Level::Warning] {
            assert_eq!(Level::from_name(l.name()), Some(l));
            assert_eq!(Level::from_name(&l.name().to_uppercase()), Some(l));
        }
        assert_eq!(Level::from_name("info"), None);
        set_level(Level::Warning);
        assert!(!enabled(Level::Notice));
        assert!(enabled(Level::Warning));
        set_level(Level::Debug);
        assert!(enabled(Level::Debug));
        set_level(Level::Notice);
        assert!(!enabled(Level::Verbose));
        assert!(enabled(Level::Notice));
        // Filtered lines do nothing; enabled ones go to stdout.
        verbose(format_args!("filtered"));
        notice(format_args!("log test line"));
    }

    #[test]
    fn init_errors_are_clear() {
        let e = OpenOptions::new()
            .read(true)
            .open("/nonexistent-dir/x")
            .unwrap_err();
        assert_eq!(io_error_text(&e), "No such file or directory");
    }
}
