//! # tools: `slotd check-aof` and `slotd check-rdb`
//!
//! Above `persist`. Redis 7.0's `redis-check-aof` and `redis-check-rdb`,
//! with their output and exit codes: `slotd check-aof [--fix] <file>`
//! checks a manifest and every file it lists, or one AOF file (RDB
//! preamble included), and with `--fix` truncates the damaged last file
//! after asking; `--truncate-to-timestamp <ts>` cuts each log's last file
//! at its first `#TS` annotation later than `ts`; for a manifest whose
//! files are sane it also runs the loader, which reports what the cut
//! across cores keeps. `slotd
//! check-rdb <file>` checks an RDB file.
//!
//! API: [`check_aof`], [`check_rdb`] (each returns the exit code).

use crate::persist;
use engine::aof::manifest::{Kind, Manifest};
use engine::aof::scan::Scanner;
use engine::rdb::read::Item;
use engine::value::EncodingLimits;
use std::io::{BufRead, Write};
use std::path::Path;

/// How a file's check ended (redis-check-aof's `AOF_CHECK_*`).
enum Checked {
    Ok,
    Empty,
    Truncated,
    /// Cut at a timestamp (`AOF_CHECK_TIMESTAMP_TRUNCATED`).
    TimestampTruncated,
}

/// What to repair: `--fix` (a damaged tail) or `--truncate-to-timestamp`.
#[derive(Clone, Copy)]
struct Mode {
    fix: bool,
    /// Redis's `to_timestamp` (0: not asked).
    to_ts: i64,
}

/// C's `strtol(text, &end, 10)` where `end` must reach the end of `text`
/// (`--truncate-to-timestamp`'s argument); `None` otherwise.
fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() {
        return Some(0);
    }
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// An exit requested in the middle of a check.
struct Exit(i32);

/// `slotd check-rdb <file>`: redis-check-rdb's report; 0 when sane.
pub fn check_rdb(args: &[String]) -> i32 {
    let [path] = args else {
        eprintln!("Usage: slotd check-rdb <rdb-file-name>");
        return 1;
    };
    match std::fs::read(path) {
        Ok(buf) => {
            if rdb_report(path, &buf).is_some() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            println!("[offset 0] Checking RDB file {path}");
            println!("--- RDB ERROR DETECTED ---");
            println!(
                "[offset 0] Can't open the file: {}",
                crate::log::io_error_text(&e)
            );
            1
        }
    }
}

/// Checks an RDB image at the start of `buf`, printing redis-check-rdb's
/// lines; the offset past it when sane.
fn rdb_report(name: &str, buf: &[u8]) -> Option<usize> {
    println!("[offset 0] Checking RDB file {name}");
    let now = crate::shared::now_ms();
    let (mut keys, mut expires, mut already) = (0u64, 0u64, 0u64);
    let r = engine::rdb::read::file_at(buf, &EncodingLimits::default(), |at, item| match item {
        Item::Aux(k, v) => println!(
            "[offset {at}] AUX FIELD {} = '{}'",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        ),
        Item::Db(d) => println!("[offset {at}] Selecting DB ID {d}"),
        Item::Function(_) => println!("[offset {at}] Loading function library"),
        Item::Entry(e) => {
            keys += 1;
            if let Some(t) = e.expire_ms {
                expires += 1;
                if t < now {
                    already += 1;
                }
            }
        }
        Item::EmptyKey(_) => keys += 1,
    });
    let info = || {
        println!("[info] {keys} keys read");
        println!("[info] {expires} expires");
        println!("[info] {already} already expired");
    };
    match r {
        Ok(end) => {
            let version: u32 = std::str::from_utf8(&buf[5..9])
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if version >= 5 {
                if buf[end - 8..end] == [0u8; 8] {
                    println!("[offset {end}] RDB file was saved with checksum disabled: no check performed.");
                } else {
                    println!("[offset {end}] Checksum OK");
                }
            }
            println!("[offset {end}] \\o/ RDB looks OK! \\o/");
            info();
            Some(end)
        }
        Err(e) => {
            let msg = if e.msg == engine::rdb::SHORT_READ {
                "Unexpected EOF reading RDB file".to_string()
            } else if e.msg == "wrong RDB checksum" {
                "RDB CRC error".to_string()
            } else if e.msg.starts_with("wrong signature") {
                "Wrong signature trying to load DB from file".to_string()
            } else {
                e.msg.clone()
            };
            println!("--- RDB ERROR DETECTED ---");
            println!("[offset {}] {msg}", e.offset);
            info();
            None
        }
    }
}

/// `slotd check-aof [--fix|--truncate-to-timestamp $timestamp]
/// <file.manifest|file.aof|file.rdb>`.
pub fn check_aof(args: &[String]) -> i32 {
    let no = Mode {
        fix: false,
        to_ts: 0,
    };
    let (mode, path) = match args {
        [p] => (no, p),
        [f, p] if f == "--fix" => (
            Mode {
                fix: true,
                to_ts: 0,
            },
            p,
        ),
        [f, ts, p] if f == "--truncate-to-timestamp" => match parse_timestamp(ts) {
            Some(to_ts) => (Mode { to_ts, ..no }, p),
            None => {
                println!("Invalid timestamp, aborting...");
                return 1;
            }
        },
        _ => {
            println!(
                "Usage: slotd check-aof [--fix|--truncate-to-timestamp $timestamp] <file.manifest|file.aof>"
            );
            return 1;
        }
    };
    let r = match std::fs::read(path) {
        Ok(text) if is_manifest(&text) => check_multi_part(path, &text, mode),
        Ok(_) => {
            println!("Start checking Old-Style AOF");
            let mut lines = 1;
            check_single(path, path, true, mode, &mut lines).map(|c| {
                match c {
                    Checked::Ok => println!("AOF {path} is valid"),
                    Checked::Empty => println!("AOF {path} is empty"),
                    Checked::Truncated => println!("Successfully truncated AOF {path}"),
                    Checked::TimestampTruncated => println!(
                        "Successfully truncated AOF {path} to timestamp {}",
                        mode.to_ts
                    ),
                }
                0
            })
        }
        Err(e) => {
            println!("Cannot open file {path}: {}", crate::log::io_error_text(&e));
            Err(Exit(1))
        }
    };
    r.unwrap_or_else(|Exit(code)| code)
}

/// redis-check-aof's `fileIsManifest`: a non-comment line starting with
/// `file`.
fn is_manifest(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|l| !l.starts_with(b"#") && l.starts_with(b"file"))
}

/// Checks one file (`name` as printed, `path` to open); `last` when it may
/// be truncated by `--fix` or `--truncate-to-timestamp`. `lines` carries
/// the line count across files, as redis-check-aof does.
fn check_single(
    name: &str,
    path: &str,
    last: bool,
    mode: Mode,
    lines: &mut u64,
) -> Result<Checked, Exit> {
    let fix = mode.fix;
    let buf = std::fs::read(path).map_err(|e| {
        println!(
            "Cannot open file {path}: {}, aborting...",
            crate::log::io_error_text(&e)
        );
        Exit(1)
    })?;
    if buf.is_empty() {
        return Ok(Checked::Empty);
    }
    let mut start = 0;
    if buf.len() >= 8 && buf.starts_with(b"REDIS") {
        match rdb_report(name, &buf) {
            Some(end) => {
                println!("RDB preamble is OK, proceeding with AOF tail...");
                start = end;
            }
            None => {
                println!("RDB preamble of AOF file is not sane, aborting.");
                return Err(Exit(1));
            }
        }
    }
    // Zeros slotd wrote ahead of its records (`appendfsync always`) and
    // a crash left: no damage; --fix cuts them with the rest.
    let zeros = engine::aof::scan::zero_tail(&buf[start..]);
    let data = buf.len() - zeros;
    if zeros > 0 {
        println!("AOF {name} ends with {zeros} zero bytes written ahead of its records by slotd: skipped");
    }
    let mut sc = Scanner::new(&buf[start..data], *lines);
    let mut pos = data;
    for r in sc.by_ref() {
        match r {
            Ok(rec) if mode.to_ts != 0 => {
                let epos = start + rec.start;
                if cut_at_timestamp(&buf[epos..start + rec.end], epos, path, last, mode)? {
                    *lines = sc.lines;
                    return Ok(Checked::TimestampTruncated);
                }
            }
            Ok(_) => {}
            Err(f) => {
                if let Some(m) = f.message(name, path) {
                    println!("{m}");
                }
                pos = start + f.ok_up_to;
            }
        }
    }
    *lines = sc.lines;
    let size = data;
    let diff = size - pos;
    if diff == 0 && mode.to_ts != 0 {
        println!("Truncate nothing in AOF {name} to timestamp {}", mode.to_ts);
        return Ok(Checked::Ok);
    }
    println!(
        "AOF analyzed: filename={name}, size={size}, ok_up_to={pos}, ok_up_to_line={lines}, diff={diff}"
    );
    if diff == 0 {
        if zeros > 0 && fix && last {
            if !cut_file(path, pos) {
                println!("Failed to truncate AOF {name}");
                return Err(Exit(1));
            }
            return Ok(Checked::Truncated);
        }
        return Ok(if data == 0 {
            Checked::Empty
        } else {
            Checked::Ok
        });
    }
    if !fix {
        println!("AOF {name} is not valid. Use the --fix option to try fixing it.");
        return Err(Exit(1));
    }
    if !last {
        println!("Failed to truncate AOF {name} because it is not the last file");
        return Err(Exit(1));
    }
    println!(
        "This will shrink the AOF {name} from {size} bytes, with {diff} bytes, to {pos} bytes"
    );
    print!("Continue? [y/N]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let yes =
        std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.starts_with(['y', 'Y']);
    if !yes {
        println!("Aborting...");
        return Err(Exit(1));
    }
    if !cut_file(path, pos) {
        println!("Failed to truncate AOF {name}");
        return Err(Exit(1));
    }
    Ok(Checked::Truncated)
}

/// Cuts the file at `path` to `len` bytes.
fn cut_file(path: &str, len: usize) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len as u64))
        .is_ok()
}

/// redis-check-aof's `processAnnotations` for the record `rec` at file
/// offset `epos` of `path`: a `#TS` annotation later than the timestamp
/// asked for truncates the file there (true), if it is a last file.
fn cut_at_timestamp(
    rec: &[u8],
    epos: usize,
    path: &str,
    last: bool,
    mode: Mode,
) -> Result<bool, Exit> {
    let Some(ts) = rec.strip_prefix(b"#TS:") else {
        return Ok(false);
    };
    // strtol up to the line's '\r' (a leading sign or blanks allowed).
    let digits = ts.split(|&b| b == b'\r').next().unwrap_or(ts);
    let ts = match (
        ts.len() > digits.len(),
        std::str::from_utf8(digits).ok().and_then(parse_timestamp),
    ) {
        (true, Some(t)) => t,
        _ => {
            println!("Invalid timestamp annotation");
            return Err(Exit(1));
        }
    };
    let to = mode.to_ts;
    if ts <= to {
        return Ok(false);
    }
    if epos == 0 {
        println!("AOF {path} has nothing before timestamp {to}, aborting...");
        return Err(Exit(1));
    }
    if !last {
        println!(
            "Failed to truncate AOF {path} to timestamp {to} to offset {epos} because it is not the last file."
        );
        println!("If you insist, please delete all files after this file according to the manifest file and delete the corresponding records in manifest file manually. Then re-run redis-check-aof.");
        return Err(Exit(1));
    }
    let truncated = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(epos as u64));
    if truncated.is_err() {
        println!("Failed to truncate AOF {path} to timestamp {to}");
        return Err(Exit(1));
    }
    Ok(true)
}

/// Checks a manifest and its files (Redis's `checkMultiPartAof`: bases
/// first, then incr files; in a slotd manifest, each core's last file may
/// be truncated), then runs the loader to report the cut.
fn check_multi_part(path: &str, text: &[u8], mode: Mode) -> Result<i32, Exit> {
    println!("Start checking Multi Part AOF");
    let manifest = Manifest::parse(text).map_err(|e| {
        for l in e.log_lines() {
            println!("{l}");
        }
        Exit(1)
    })?;
    let dir = Path::new(path).parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let logs = manifest.logs();
    // The last file of each log may be cut (one log in a Redis manifest).
    let lasts: Vec<&str> = logs
        .iter()
        .filter_map(|l| l.incrs.last().copied().or(l.base).map(|f| f.name.as_str()))
        .collect();
    let report = |kind: &str, name: &str, c: Checked| match c {
        Checked::Ok => println!("{kind} AOF {name} is valid"),
        Checked::Empty => println!("{kind} AOF {name} is empty"),
        Checked::Truncated => println!("Successfully truncated AOF {name}"),
        Checked::TimestampTruncated => println!(
            "Successfully truncated AOF {name} to timestamp {}",
            mode.to_ts
        ),
    };
    let mut lines = 1;
    for f in manifest.files.iter().filter(|f| f.kind == Kind::Base) {
        let fp = dir.join(&f.name).to_string_lossy().into_owned();
        let rdb = std::fs::read(&fp).is_ok_and(|b| b.len() >= 8 && b.starts_with(b"REDIS"));
        println!(
            "Start to check BASE AOF ({} format).",
            if rdb { "RDB" } else { "RESP" }
        );
        let c = check_single(
            &f.name,
            &fp,
            lasts.contains(&f.name.as_str()),
            mode,
            &mut lines,
        )?;
        report("BASE", &f.name, c);
    }
    let incrs: Vec<_> = manifest
        .files
        .iter()
        .filter(|f| f.kind == Kind::Incr)
        .collect();
    if !incrs.is_empty() {
        println!("Start to check INCR files.");
    }
    for f in incrs {
        let fp = dir.join(&f.name).to_string_lossy().into_owned();
        let c = check_single(
            &f.name,
            &fp,
            lasts.contains(&f.name.as_str()),
            mode,
            &mut lines,
        )?;
        report("INCR", &f.name, c);
    }
    println!("All AOF files and manifest are valid");
    // What loading keeps (the cut across cores for a slotd manifest).
    let (Some(aofdir), Some(file)) = (
        dir.file_name().and_then(|d| d.to_str()),
        Path::new(path)
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".manifest")),
    ) else {
        return Ok(0);
    };
    let root = dir.parent().unwrap_or(Path::new("."));
    let limits = EncodingLimits::default();
    match persist::load_aof(
        root,
        aofdir,
        file,
        &persist::aofload::Loading {
            cores: &crate::mesh::SlotTable::new(1),
            databases: 16,
            limits: &limits,
            load_truncated: true,
            progress: None,
        },
    ) {
        Ok(Some(l)) => {
            println!(
                "AOF loads: keys={}, expired={}, max_seq={}",
                l.keys, l.expired, l.max_seq
            );
            for e in &l.logs {
                println!(
                    "core {}: keeps {} bytes of {} (log offset {}){}",
                    e.core,
                    e.valid_len,
                    e.file.as_deref().unwrap_or("no incr file"),
                    e.end_offset,
                    if e.cut { ", cut" } else { "" }
                );
            }
            Ok(0)
        }
        Ok(None) => Ok(0),
        Err(e) => {
            println!("AOF can't be loaded: {e}");
            Err(Exit(1))
        }
    }
}
