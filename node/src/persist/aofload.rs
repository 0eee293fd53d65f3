//! Loading the append-only directory at start: the manifest, every base
//! (RDB files parsed in parallel, one thread each), the incr files of
//! every writer core cut consistently (`engine::aof::cut`) and replayed,
//! one thread per log when no two logs write the same slot, else in
//! dependency order into one scratch keyspace; then the keys handed to
//! the cores of this process by slot, as the RDB loader hands them. Redis
//! 7.0's `loadAppendOnlyFiles` rules and log lines.

use super::State;
use crate::shared::now_ms;
use engine::aof::cut::{self, CoreLog};
use engine::aof::manifest::{FileInfo, Manifest};
use engine::aof::scan::{self, FileIndex, Item, Scanner};
use engine::rdb::read::Entry;
use engine::value::EncodingLimits;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Where one writer core's log ends after loading: what the write side
/// needs to keep appending, or to start a fresh rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEnd {
    /// The writer core (from the manifest; 0 for a plain Redis manifest).
    pub core: usize,
    /// The incr file the kept records end in (`None`: the core has no
    /// incr file, or none of its incr files kept anything).
    pub file: Option<String>,
    /// Valid bytes of that file at the cut.
    pub valid_len: u64,
    /// Zeros past the records of that file (see [`scan::zero_tail`]).
    pub zeros: u64,
    /// The core's logical log offset at the cut.
    pub end_offset: u64,
    /// True when the cut left bytes on disk unused (a torn tail, an
    /// unfinished transaction, records depending on writes lost on other
    /// cores, or whole later files).
    pub cut: bool,
}

/// What [`load_aof`] read.
#[derive(Debug)]
pub struct Loaded {
    /// Per core of this process: the keys it owns (db, entry).
    pub per_core: Vec<Vec<(usize, Entry)>>,
    /// Per writer core of the manifest, in core order.
    pub logs: Vec<LogEnd>,
    /// The manifest's highest sequence number.
    pub max_seq: i64,
    /// Keys loaded, and keys skipped because they had expired.
    pub keys: u64,
    pub expired: u64,
}

impl Loaded {
    /// Hands the keys to the cores (each inserts its own as it starts, as
    /// after an RDB load) and records the counts for INFO.
    pub fn preload(&mut self, state: &State) {
        if let Ok(mut p) = state.preload.lock() {
            *p = std::mem::take(&mut self.per_core);
        }
        state.loaded_keys.store(self.keys, Ordering::Relaxed);
        state.expired_keys.store(self.expired, Ordering::Relaxed);
    }
}

const FIX_HINT: &str = "slotd check-aof --fix <filename.manifest>";

/// One file of a log, read.
struct File {
    name: String,
    /// The core's logical offset where the file starts.
    offset: u64,
    buf: Vec<u8>,
    /// The zeros that ended it, cut from `buf`.
    zeros: u64,
    ix: FileIndex,
    /// Time spent replaying it.
    took: f64,
    /// The manifest's `based` for it (see `engine::aof::cut::CoreLog`).
    based: Vec<String>,
}

/// One writer core's files.
struct Log {
    core: usize,
    base: Option<(String, Vec<u8>)>,
    /// The base's offset (its image's end in the core's log).
    start: u64,
    incrs: Vec<File>,
}

/// How [`load_aof`] loads: into `cores` cores, `databases` databases,
/// with `limits` for the values' encodings, Redis's `aof-load-truncated`,
/// and the progress published for INFO in `progress`.
#[derive(Clone, Copy)]
pub struct Loading<'a> {
    pub cores: &'a crate::mesh::SlotTable,
    pub databases: usize,
    pub limits: &'a EncodingLimits,
    pub load_truncated: bool,
    pub progress: Option<&'a State>,
}

/// Loads `dir/dirname/filename.manifest` and its files. `Ok(None)` when
/// there is no manifest; `Err` is the message to stop the start with (the
/// lines before it are logged).
pub fn load_aof(
    dir: &Path,
    dirname: &str,
    filename: &str,
    how: &Loading,
) -> Result<Option<Loaded>, String> {
    let Loading {
        cores,
        databases,
        limits,
        load_truncated,
        progress,
    } = *how;
    let aofdir = dir.join(dirname);
    let manifest_path = aofdir.join(format!("{filename}.manifest"));
    let text = match std::fs::read(&manifest_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "Fatal error: can't open the AOF manifest file {} for reading: {}",
                manifest_path.display(),
                crate::log::io_error_text(&e)
            ))
        }
    };
    let manifest = Manifest::parse(&text).map_err(|e| e.log_lines().concat())?;
    let start = Instant::now();
    let mut logs = read_logs(&aofdir, &manifest)?;
    let base_bytes: usize = logs
        .iter()
        .filter_map(|l| l.base.as_ref().map(|b| b.1.len()))
        .sum();
    let incr_bytes: usize = logs
        .iter()
        .flat_map(|l| &l.incrs)
        .map(|f| f.buf.len())
        .sum();
    if let Some(s) = progress {
        s.loading_total_bytes
            .store((base_bytes + incr_bytes) as u64, Ordering::Relaxed);
        s.loading_loaded_bytes.store(0, Ordering::Relaxed);
    }
    let now = now_ms();
    let mut scratch = engine::Shard::new(databases, now as u64);
    scratch.limits = *limits;
    let mut expired = 0u64;
    let base = Bases {
        databases,
        limits,
        now,
        load_truncated,
    };
    load_bases(&logs, &mut scratch, &base, &mut expired)?;
    if let Some(s) = progress {
        s.loading_loaded_bytes
            .store(base_bytes as u64, Ordering::Relaxed);
    }

    // The cut: each log's valid end, then the dependency fixpoint.
    let mut core_logs = Vec::with_capacity(logs.len());
    for log in &logs {
        core_logs.push(core_log(log, load_truncated)?);
    }
    let plan = cut::plan(&core_logs)?;
    for (i, log) in logs.iter().enumerate() {
        if plan.cut[i] > 0 {
            crate::log::notice(format_args!(
                "AOF of core {} cut at offset {}: {} bytes depend on writes lost on other cores",
                log.core, plan.ends[i], plan.cut[i]
            ));
        }
    }
    let progress = Progress {
        records: AtomicU64::new(0),
        reported: std::sync::Mutex::new(Instant::now()),
        state: progress,
    };
    let parts = match replay_parallel(&mut logs, &plan, scratch, (cores, now), &progress) {
        Parallel::Done(parts) => {
            crate::log::notice(format_args!(
                "AOF incr files of {} cores replayed in parallel",
                parts.len()
            ));
            parts
        }
        Parallel::Failed(e) => return Err(e),
        Parallel::Unsuited(mut scratch) => {
            replay(&mut logs, &plan, &mut scratch, now, &progress)?;
            vec![split(&mut scratch, cores, now)]
        }
    };
    for (i, log) in logs.iter().enumerate() {
        for f in log.incrs.iter().filter(|f| f.offset <= plan.ends[i]) {
            crate::log::notice(format_args!(
                "DB loaded from incr file {}: {:.3} seconds",
                f.name, f.took
            ));
        }
    }
    let ends = logs
        .iter()
        .enumerate()
        .map(|(i, log)| log_end(log, plan.ends[i]))
        .collect();
    let mut per_core: Vec<Vec<(usize, Entry)>> = (0..cores.cores()).map(|_| Vec::new()).collect();
    let mut keys = 0;
    for part in parts {
        for (all, mut mine) in per_core.iter_mut().zip(part.per_core) {
            if all.is_empty() {
                *all = mine;
            } else {
                all.append(&mut mine);
            }
        }
        keys += part.keys;
        expired += part.expired;
    }
    crate::log::notice(format_args!(
        "DB loaded from append only file: {:.3} seconds",
        start.elapsed().as_secs_f64()
    ));
    Ok(Some(Loaded {
        per_core,
        logs: ends,
        max_seq: manifest.max_seq(),
        keys,
        expired,
    }))
}

/// Reads every file the manifest lists (bases and incrs, per core).
fn read_logs(aofdir: &Path, manifest: &Manifest) -> Result<Vec<Log>, String> {
    let read = |f: &FileInfo| -> Result<Vec<u8>, String> {
        let path: PathBuf = aofdir.join(&f.name);
        std::fs::read(&path).map_err(|e| {
            let text = crate::log::io_error_text(&e);
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("The append log file {} doesn't exist: {text}", f.name)
            } else {
                format!(
                    "Fatal error: can't open the append log file {} for reading: {text}",
                    f.name
                )
            }
        })
    };
    let sharded = manifest.is_sharded();
    let mut out = Vec::new();
    for lf in manifest.logs() {
        let base = match lf.base {
            Some(b) => Some((b.name.clone(), read(b)?)),
            None => None,
        };
        let mut incrs = Vec::with_capacity(lf.incrs.len());
        // A plain Redis manifest has no offsets: one log, files in turn.
        let mut next = 0u64;
        for f in &lf.incrs {
            let mut buf = read(f)?;
            let zeros = scan::zero_tail(&buf);
            buf.truncate(buf.len() - zeros);
            let offset = match f.offset {
                Some(o) if sharded => o,
                _ => next,
            };
            next = offset.checked_add(buf.len() as u64).ok_or_else(|| {
                format!(
                    "AOF file {} of the manifest starts at offset {offset}, out of range",
                    f.name
                )
            })?;
            let ix = scan::index(&buf);
            incrs.push(File {
                name: f.name.clone(),
                offset,
                buf,
                zeros: zeros as u64,
                ix,
                took: 0.0,
                based: f.based.clone(),
            });
        }
        // A core's log starts where its first incr file does (a base's
        // image ends there).
        let start = match (sharded, lf.base, incrs.first()) {
            (true, _, Some(f)) => f.offset,
            (true, Some(b), None) => b.offset.unwrap_or(0),
            _ => 0,
        };
        out.push(Log {
            core: lf.core,
            base,
            start,
            incrs,
        });
    }
    Ok(out)
}

/// Applies Redis's rules to a file's damage: `Ok` to load its valid part.
fn judge(name: &str, ix: &FileIndex, last: bool, load_truncated: bool) -> Result<(), String> {
    let Some(f) = &ix.failure else {
        return Ok(());
    };
    if !f.torn {
        crate::log::warning(format_args!(
            "Bad record at offset {} of the append only file {name}",
            f.ok_up_to
        ));
        return Err(format!(
            "Bad file format reading the append only file {name}: make a backup of your AOF file, then use {FIX_HINT}"
        ));
    }
    if matches!(f.fault, scan::Fault::OpenMulti(_)) {
        crate::log::warning(format_args!(
            "Revert incomplete MULTI/EXEC transaction in AOF file {name}"
        ));
    }
    if load_truncated {
        crate::log::warning(format_args!(
            "!!! Warning: short read while loading the AOF file {name}!!!"
        ));
        if !last {
            return Err("Fatal error: the truncated file is not the last file".into());
        }
        crate::log::warning(format_args!(
            "AOF {name} loaded anyway because aof-load-truncated is enabled"
        ));
        return Ok(());
    }
    Err(format!(
        "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use {FIX_HINT}. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
    ))
}

/// A log in logical offsets, its files' damage judged.
fn core_log(log: &Log, load_truncated: bool) -> Result<CoreLog, String> {
    let mut cl = CoreLog {
        core: log.core,
        start: log.start,
        end: log.start,
        ..CoreLog::default()
    };
    let n = log.incrs.len();
    for (k, f) in log.incrs.iter().enumerate() {
        judge(&f.name, &f.ix, k + 1 == n, load_truncated)?;
        if f.offset != cl.end {
            return Err(format!(
                "AOF file {} of core {} starts at offset {} but its log before it ends at {}",
                f.name, log.core, f.offset, cl.end
            ));
        }
        let off = f.offset;
        cl.deps
            .extend(f.ix.deps.iter().map(|(p, d)| (off + *p as u64, d.clone())));
        cl.txns.extend(
            f.ix.txns
                .iter()
                .map(|&(s, e)| (off + s as u64, off + e as u64)),
        );
        cl.parts
            .extend(f.ix.parts.iter().map(|(p, x)| (off + *p as u64, x.clone())));
        cl.end = off + f.ix.valid as u64;
        cl.based.extend(f.based.iter().cloned());
    }
    Ok(cl)
}

/// Where a log's kept records end, for the write side.
fn log_end(log: &Log, end: u64) -> LogEnd {
    let on_disk = log
        .incrs
        .last()
        .map_or(log.start, |f| f.offset + f.buf.len() as u64);
    let last = log
        .incrs
        .iter()
        .rev()
        .find(|f| f.offset <= end && (f.offset < end || f.offset == log.start));
    LogEnd {
        core: log.core,
        file: last.map(|f| f.name.clone()),
        valid_len: last.map_or(0, |f| end - f.offset),
        zeros: last.map_or(0, |f| f.zeros),
        end_offset: end,
        cut: end < on_disk,
    }
}

/// Loads every base into the scratch keyspace: RDB bases parsed in
/// parallel, RESP bases replayed (they must be whole unless they are
/// their log's only file).
/// What loading the bases needs to know.
struct Bases<'a> {
    databases: usize,
    limits: &'a EncodingLimits,
    now: i64,
    load_truncated: bool,
}

fn load_bases(
    logs: &[Log],
    scratch: &mut engine::Shard,
    how: &Bases,
    expired: &mut u64,
) -> Result<(), String> {
    let (databases, limits, now) = (how.databases, how.limits, how.now);
    type Parsed = Result<(Vec<(usize, Entry)>, f64), String>;
    let parsed: Vec<Option<Parsed>> = std::thread::scope(|s| {
        let handles: Vec<_> = logs
            .iter()
            .map(|log| match &log.base {
                Some((name, buf)) if buf.starts_with(b"REDIS") => {
                    crate::log::notice(format_args!("Reading RDB base file on AOF loading..."));
                    Some(s.spawn(move || parse_rdb(name, buf, databases, limits)))
                }
                _ => None,
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("RDB base reader thread failed".into()))
                })
            })
            .collect()
    });
    for (log, p) in logs.iter().zip(parsed) {
        let Some((name, buf)) = &log.base else {
            continue;
        };
        let t = Instant::now();
        let took = match p {
            Some(r) => {
                let (entries, secs) = r?;
                for (db, e) in entries {
                    if e.expire_ms.is_some_and(|at| at < now) {
                        *expired += 1;
                        continue;
                    }
                    let d = &mut scratch.dbs[db];
                    d.insert(&e.key, e.value, 0);
                    if e.expire_ms.is_some() {
                        d.set_expire(&e.key, e.expire_ms);
                    }
                }
                secs + t.elapsed().as_secs_f64()
            }
            None => {
                let ix = scan::index(buf);
                judge(name, &ix, log.incrs.is_empty(), how.load_truncated)?;
                let (mut db, mut own) = (0, None);
                for r in Scanner::new(&buf[..ix.valid], 1) {
                    match r {
                        Ok(rec) => apply(scratch, (&mut db, &mut own), rec.item, name, now)?,
                        Err(_) => break,
                    }
                }
                t.elapsed().as_secs_f64()
            }
        };
        crate::log::notice(format_args!(
            "DB loaded from base file {name}: {took:.3} seconds"
        ));
    }
    Ok(())
}

/// Parses an RDB base file; `Err` with Redis's messages.
fn parse_rdb(
    name: &str,
    buf: &[u8],
    databases: usize,
    limits: &EncodingLimits,
) -> Result<(Vec<(usize, Entry)>, f64), String> {
    let t = Instant::now();
    let mut out = Vec::new();
    let (mut db, mut bad_db) = (0usize, None);
    let r = engine::rdb::read::file(buf, limits, |item| match item {
        engine::rdb::read::Item::Db(d) => {
            if d >= databases && bad_db.is_none() {
                bad_db = Some(d);
            }
            db = d;
        }
        engine::rdb::read::Item::Entry(e) => {
            if db < databases {
                out.push((db, e));
            }
        }
        engine::rdb::read::Item::EmptyKey(k) => crate::log::warning(format_args!(
            "rdbLoadObject skipping empty key: {}",
            String::from_utf8_lossy(&k)
        )),
        engine::rdb::read::Item::Aux(..) => {}
        engine::rdb::read::Item::Function(code) => {
            if let Err(e) = engine::cmd::script::load_library(&code) {
                crate::log::warning(format_args!("Failed loading library: {e}"));
            }
        }
    });
    if bad_db.is_some() {
        return Err(format!(
            "FATAL: Data file {name} was created with a Redis server configured to handle more than {databases} databases. Exiting"
        ));
    }
    if let Err(e) = r {
        crate::log::warning(format_args!(
            "Internal error in RDB reading offset {} of {name}: {}",
            e.offset, e.msg
        ));
        return Err(format!(
            "Error reading the RDB base file {name}, AOF loading aborted"
        ));
    }
    Ok((out, t.elapsed().as_secs_f64()))
}

/// Runs one record on the scratch keyspace, as Redis's AOF client does:
/// SELECT changes the database, MULTI and EXEC frame commands that run in
/// order anyway, annotations are skipped, replies are dropped. One
/// exception: a FLUSHALL, FLUSHDB or SWAPDB that a `#S:` annotation (kept
/// in `own` until the next command) says its core logged for its own
/// slots changes those slots only, as it did on that core.
fn apply(
    shard: &mut engine::Shard,
    (db, own): (&mut usize, &mut Option<Vec<(u16, u16)>>),
    item: Item,
    file: &str,
    now: i64,
) -> Result<(), String> {
    let argv = match item {
        Item::Command(argv) => argv,
        Item::Annotation(text) => {
            if let Some(slots) = scan::parse_slots(text) {
                own.get_or_insert_with(Vec::new).extend(slots);
            }
            return Ok(());
        }
    };
    let Some(&name) = argv.first() else {
        return Err(format!(
            "Bad file format reading the append only file {file}: make a backup of your AOF file, then use {FIX_HINT}"
        ));
    };
    if name.eq_ignore_ascii_case(b"select") {
        if let Some(n) = argv
            .get(1)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| a.parse::<usize>().ok())
            .filter(|&n| n < shard.dbs.len())
        {
            *db = n;
        }
        return Ok(());
    }
    if name.eq_ignore_ascii_case(b"multi") || name.eq_ignore_ascii_case(b"exec") {
        return Ok(());
    }
    if let Some(slots) = own.take() {
        let int = |i: usize| {
            argv.get(i)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|a| a.parse::<usize>().ok())
        };
        if name.eq_ignore_ascii_case(b"flushall") {
            shard.flush_slots(None, &slots);
            return Ok(());
        } else if name.eq_ignore_ascii_case(b"flushdb") {
            shard.flush_slots(Some(*db), &slots);
            return Ok(());
        } else if name.eq_ignore_ascii_case(b"swapdb") {
            if let (Some(a), Some(b)) = (int(1), int(2)) {
                shard.swap_slots(a, b, &slots);
            }
            return Ok(());
        }
    }
    match engine::cmd::registry().lookup(name) {
        None => Err(format!(
            "Unknown command '{}' reading the append only file {file}",
            String::from_utf8_lossy(name)
        )),
        // Node-level commands (INFO, PUBLISH, ...) change no key.
        Some(spec) if spec.handler.is_none() => Ok(()),
        Some(_) => {
            engine::cmd::run(shard, *db, now, &argv);
            Ok(())
        }
    }
}

/// Where one log's replay stands: the file, the scanner in it, the
/// selected database.
#[derive(Default)]
struct Cursor<'a> {
    file: usize,
    scanner: Option<Scanner<'a>>,
    db: usize,
    /// The slots of a `#S:` annotation, for the command after it.
    own: Option<Vec<(u16, u16)>>,
}

/// One log's files as the replay reads them: name, offset, valid bytes.
type View<'a> = Vec<(&'a str, u64, &'a [u8])>;

fn views(logs: &[Log]) -> Vec<View<'_>> {
    logs.iter()
        .map(|l| {
            l.incrs
                .iter()
                .map(|f| (f.name.as_str(), f.offset, &f.buf[..f.ix.valid]))
                .collect()
        })
        .collect()
}

/// Replay progress, shared by the threads replaying: the records logged
/// every second, the bytes published for INFO's `loading_loaded_bytes`.
struct Progress<'a> {
    records: AtomicU64,
    reported: std::sync::Mutex<Instant>,
    state: Option<&'a State>,
}

impl Progress<'_> {
    /// Counts `records` replayed in `bytes`.
    fn add(&self, records: u64, bytes: u64) {
        let all = self.records.fetch_add(records, Ordering::Relaxed) + records;
        if let Some(s) = self.state {
            s.loading_loaded_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Ok(mut at) = self.reported.try_lock() {
            if at.elapsed().as_secs() >= 1 {
                *at = Instant::now();
                crate::log::notice(format_args!("Loading AOF: {all} records replayed"));
            }
        }
    }
}

impl<'a> Cursor<'a> {
    /// Replays `files` (one log's) from here up to the log offset `to`,
    /// adding the time spent to `took` (per file).
    fn advance(
        &mut self,
        files: &[(&'a str, u64, &'a [u8])],
        to: u64,
        scratch: &mut engine::Shard,
        now: i64,
        took: &mut [f64],
        progress: &Progress,
    ) -> Result<(), String> {
        let t = Instant::now();
        let (mut records, mut bytes) = (0u64, 0u64);
        'step: while self.file < files.len() {
            let (name, off, buf) = files[self.file];
            if off >= to {
                break;
            }
            let sc = self.scanner.get_or_insert_with(|| Scanner::new(buf, 1));
            while off + (sc.pos() as u64) < to {
                let at = sc.pos();
                let Some(Ok(rec)) = sc.next() else {
                    break;
                };
                apply(scratch, (&mut self.db, &mut self.own), rec.item, name, now)?;
                records += 1;
                bytes += (sc.pos() - at) as u64;
                if records == 4096 {
                    progress.add(records, bytes);
                    (records, bytes) = (0, 0);
                }
                if off + (sc.pos() as u64) >= to {
                    break 'step;
                }
            }
            // This file is done: the next starts in db 0.
            took[self.file] += t.elapsed().as_secs_f64();
            self.file += 1;
            self.scanner = None;
            self.db = 0;
            self.own = None;
        }
        if self.file < files.len() {
            took[self.file] += t.elapsed().as_secs_f64();
        }
        progress.add(records, bytes);
        Ok(())
    }
}

/// Replays the incr files in the plan's order, into one keyspace.
fn replay(
    logs: &mut [Log],
    plan: &cut::Plan,
    scratch: &mut engine::Shard,
    now: i64,
    progress: &Progress,
) -> Result<(), String> {
    let views = views(logs);
    let mut took: Vec<Vec<f64>> = logs.iter().map(|l| vec![0.0; l.incrs.len()]).collect();
    let mut cursors: Vec<Cursor> = views.iter().map(|_| Cursor::default()).collect();
    for step in &plan.steps {
        cursors[step.log].advance(
            &views[step.log],
            step.to,
            scratch,
            now,
            &mut took[step.log],
            progress,
        )?;
    }
    set_took(logs, took);
    Ok(())
}

fn set_took(logs: &mut [Log], took: Vec<Vec<f64>>) {
    for (log, t) in logs.iter_mut().zip(took) {
        for (f, t) in log.incrs.iter_mut().zip(t) {
            f.took = t;
        }
    }
}

/// The hash slots a log's kept records (up to `end`) write, one bit per
/// slot; `None` when a record may change more than keys of its own slots
/// (an unknown command, FUNCTION, keys given in a form not understood),
/// so that only the one-keyspace replay is right for it. FLUSHALL,
/// FLUSHDB and SWAPDB write the slots their `#S:` annotation names (every
/// core logs them for its own keys), so the bases' keys of those slots
/// go to that log's keyspace; without one they count as reaching further.
fn log_slots(log: &Log, end: u64) -> Option<Vec<u64>> {
    let mut bits = vec![0u64; engine::slot::SLOTS / 64];
    let (mut keys, mut owned) = (Vec::new(), engine::OwnedArgs::default());
    for f in log.incrs.iter().filter(|f| f.offset < end) {
        let mut sc = Scanner::new(&f.buf[..f.ix.valid], 1);
        // The slots of a `#S:` annotation, for the command after it.
        let mut own: Option<Vec<(u16, u16)>> = None;
        while f.offset + (sc.pos() as u64) < end {
            let Some(Ok(rec)) = sc.next() else {
                break;
            };
            let argv = match rec.item {
                Item::Command(argv) => argv,
                Item::Annotation(text) => {
                    if let Some(slots) = scan::parse_slots(text) {
                        own.get_or_insert_with(Vec::new).extend(slots);
                    }
                    continue;
                }
            };
            let name = argv.first()?;
            if [&b"select"[..], b"multi", b"exec"]
                .iter()
                .any(|w| name.eq_ignore_ascii_case(w))
            {
                continue;
            }
            let slots = own.take();
            let spec = engine::cmd::registry().lookup(name)?;
            if spec.handler.is_none() {
                continue;
            }
            owned.clear();
            for a in &argv {
                owned.push(a);
            }
            let args = owned.as_args();
            if spec.check_args(&args).is_err() {
                // Refused with an error: it changes nothing.
                continue;
            }
            keys.clear();
            spec.key_indices(&args, &mut keys).ok()?;
            if keys.is_empty() {
                // A flush or swap counts for the slots its core logged
                // it for; one logged without them (before 2026-12-07)
                // applies to every key, in the one-keyspace replay.
                let flush = [&b"flushall"[..], b"flushdb", b"swapdb"]
                    .iter()
                    .any(|w| name.eq_ignore_ascii_case(w));
                for (a, b) in slots.filter(|_| flush)? {
                    for s in a as usize..=b as usize {
                        bits[s / 64] |= 1 << (s % 64);
                    }
                }
            }
            for &i in &keys {
                let s = engine::slot::slot_of(args.get(i)) as usize;
                bits[s / 64] |= 1 << (s % 64);
            }
        }
    }
    Some(bits)
}

/// Replays every log in a thread of its own, each into a keyspace of its
/// own, when no two logs write the same slot (the usual case: each core
/// logs only the keys it owns, and a key changes core only in a cluster's
/// re-spread): the result is then the one-keyspace replay's whatever the
/// order between logs. `scratch` holds the bases' keys; those of slots a
/// log writes go to that log's keyspace.
fn replay_parallel(
    logs: &mut [Log],
    plan: &cut::Plan,
    scratch: engine::Shard,
    (cores, now): (&crate::mesh::SlotTable, i64),
    progress: &Progress,
) -> Parallel {
    if logs.len() < 2 {
        return Parallel::Unsuited(Box::new(scratch));
    }
    let slots: Vec<Option<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = logs
            .iter()
            .zip(&plan.ends)
            .map(|(log, &end)| s.spawn(move || log_slots(log, end)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let Some(slots) = slots.into_iter().collect::<Option<Vec<_>>>() else {
        return Parallel::Unsuited(Box::new(scratch));
    };
    let mut seen = vec![0u64; engine::slot::SLOTS / 64];
    for bits in &slots {
        for (w, b) in seen.iter_mut().zip(bits) {
            if *w & b != 0 {
                return Parallel::Unsuited(Box::new(scratch));
            }
            *w |= b;
        }
    }
    let limits = scratch.limits;
    let mut shards = vec![scratch];
    for bits in &slots[1..] {
        let mut own = engine::Shard::new(shards[0].dbs.len(), now as u64);
        own.limits = limits;
        for s in (0..engine::slot::SLOTS).filter(|s| bits[s / 64] & (1 << (s % 64)) != 0) {
            if let Some(m) = shards[0].take_slot(s as u16) {
                own.put_slot(m);
            }
        }
        shards.push(own);
    }
    let views = views(logs);
    type Done = (Vec<f64>, Split);
    let results: Vec<Result<Done, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = views
            .iter()
            .zip(shards)
            .zip(&plan.ends)
            .map(|((files, mut shard), &end)| {
                s.spawn(move || {
                    let mut took = vec![0.0; files.len()];
                    Cursor::default().advance(files, end, &mut shard, now, &mut took, progress)?;
                    Ok((took, split(&mut shard, cores, now)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("AOF replay thread failed".into()))
            })
            .collect()
    });
    match results.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(done) => {
            let (took, parts) = done.into_iter().unzip();
            set_took(logs, took);
            Parallel::Done(parts)
        }
        Err(e) => Parallel::Failed(e),
    }
}

/// What [`replay_parallel`] did.
enum Parallel {
    /// The logs were replayed, each into a keyspace of its own, whose
    /// keys are given back split by core.
    Done(Vec<Split>),
    /// A record stopped the replay (the message to stop the start with).
    Failed(String),
    /// The logs cannot replay apart: the bases' keyspace back.
    Unsuited(Box<engine::Shard>),
}

/// A keyspace's keys split by the core that owns their slot.
struct Split {
    per_core: Vec<Vec<(usize, Entry)>>,
    /// Keys kept, and keys skipped because they had expired.
    keys: u64,
    expired: u64,
}

/// Moves the scratch keyspace's keys to the cores that own their slots,
/// skipping expired ones.
fn split(scratch: &mut engine::Shard, cores: &crate::mesh::SlotTable, now: i64) -> Split {
    let mut per_core: Vec<Vec<(usize, Entry)>> = (0..cores.cores()).map(|_| Vec::new()).collect();
    let (mut loaded, mut expired) = (0, 0);
    for (dbi, db) in scratch.dbs.iter_mut().enumerate() {
        // Whole slots at a time: no lookup, removal or shrink per key.
        for slot in 0..engine::slot::SLOTS as u16 {
            if db.slot_len(slot) == 0 {
                continue;
            }
            let core = cores.core_of(slot);
            for node in db.take_slot(slot) {
                let expire_ms = node.expire_at();
                if expire_ms.is_some_and(|at| at <= now) {
                    expired += 1;
                    continue;
                }
                let key = node.key().to_vec();
                per_core[core].push((
                    dbi,
                    Entry {
                        key,
                        value: node.into_value(),
                        expire_ms,
                        idle_s: None,
                        freq: None,
                    },
                ));
                loaded += 1;
            }
        }
    }
    Split {
        per_core,
        keys: loaded,
        expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::value::Value;
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};

    /// Sends `script` (one command a line) to the redis-server on `port`.
    fn cli(port: u16, script: &str) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    use std::io::Write;

    /// A value as comparable text: order kept for lists, sorted for the
    /// unordered types.
    fn canonical(v: &Value, expire: Option<i64>) -> String {
        let mut cmds = engine::rewrite::rebuild(b"k", v, None);
        let ty = String::from_utf8_lossy(&cmds[0][0]).into_owned();
        let mut items: Vec<Vec<u8>> = Vec::new();
        for c in cmds.iter_mut() {
            let args: Vec<Vec<u8>> = c[2..].iter().map(|b| b.to_vec()).collect();
            match ty.as_str() {
                "HMSET" | "ZADD" => items.extend(
                    args.chunks(2)
                        .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat()),
                ),
                _ => items.extend(args),
            }
        }
        if ty != "RPUSH" {
            items.sort();
        }
        let body: Vec<String> = items
            .iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect();
        format!("{ty} {} ttl={expire:?}", body.join(","))
    }

    /// A Redis-written appendonlydir (RDB base after BGREWRITEAOF, then an
    /// incr file with every type, TTLs, MULTI/EXEC and SELECT) loads into
    /// exactly what redis-server itself saves with SAVE.
    #[test]
    fn redis_written_dir_loads_like_redis_rdb() {
        let dir = std::env::temp_dir().join(format!("slotd-aofload-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut server = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--appendonly",
                "yes",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !cli(port, "PING\n").contains("PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut before = String::new();
        for i in 0..200 {
            before.push_str(&format!(
                "SET s{i} v{i}\nRPUSH l{} {i}\nHSET h{} f{i} {i}\nSADD set{} {i}\nZADD z{} {i}.5 m{i}\n",
                i % 5,
                i % 3,
                i % 4,
                i % 2
            ));
        }
        before.push_str("SET ttl1 x EX 100000\nHSET hbig f ");
        before.push_str(&"y".repeat(100));
        before.push_str("\nSADD sbig a b c\n");
        cli(port, &before);
        cli(port, "BGREWRITEAOF\n");
        while !cli(port, "INFO persistence\n").contains("aof_rewrite_in_progress:0") {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let after = "SET s1 changed\nAPPEND s2 more\nINCRBYFLOAT f 1.5\nLPOP l0\nRPUSH l1 new\n\
                     HDEL h0 f3\nSREM set1 1\nZINCRBY z0 10 m2\nEXPIRE s3 5000\nSET gone x PX 1\n\
                     MULTI\nSET t1 a\nINCR t2\nEXEC\nSELECT 3\nSET three 3\nRPUSH l3 a b\nSELECT 0\n\
                     DEL s4\nSET ttl2 y PX 90000000\nPERSIST ttl1\n";
        cli(port, after);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cli(port, "GET gone\nSAVE\n");
        cli(port, "SHUTDOWN NOSAVE\n");
        let _ = server.wait();
        let aofdir = dir.join("appendonlydir");
        let names: Vec<String> = std::fs::read_dir(&aofdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.ends_with(".base.rdb")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with(".incr.aof")), "{names:?}");

        let lim = EncodingLimits::default();
        let loaded = load_aof(
            &dir,
            "appendonlydir",
            "appendonly.aof",
            &Loading {
                cores: &crate::mesh::SlotTable::new(3),
                databases: 16,
                limits: &lim,
                load_truncated: false,
                progress: None,
            },
        )
        .unwrap()
        .unwrap();
        let mut ours = BTreeMap::new();
        for (core, keys) in loaded.per_core.iter().enumerate() {
            for (db, e) in keys {
                let slot = engine::slot::slot_of(&e.key);
                assert_eq!(engine::slot::core_of(slot, 3), core);
                ours.insert((*db, e.key.clone()), canonical(&e.value, e.expire_ms));
            }
        }
        let rdb = std::fs::read(dir.join("dump.rdb")).unwrap();
        let mut theirs = BTreeMap::new();
        let mut db = 0;
        engine::rdb::read::file(&rdb, &lim, |item| match item {
            engine::rdb::read::Item::Db(d) => db = d,
            engine::rdb::read::Item::Entry(e) => {
                theirs.insert((db, e.key.clone()), canonical(&e.value, e.expire_ms));
            }
            _ => {}
        })
        .unwrap();
        assert_eq!(loaded.keys as usize, ours.len());
        assert!(theirs.len() > 200 && theirs.contains_key(&(3, b"three".to_vec())));
        assert_eq!(ours, theirs);
        assert_eq!(loaded.logs.len(), 1);
        assert!(!loaded.logs[0].cut);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
        out
    }

    /// A test's directory, removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A directory with `files` (name, bytes) and `manifest`.
    fn dir_with(tag: &str, manifest: &str, files: &[(&str, Vec<u8>)]) -> Scratch {
        let dir = std::env::temp_dir().join(format!("slotd-aofload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
        std::fs::write(dir.join("appendonlydir/appendonly.aof.manifest"), manifest).unwrap();
        for (n, b) in files {
            std::fs::write(dir.join("appendonlydir").join(n), b).unwrap();
        }
        Scratch(dir)
    }

    fn load(dir: &Path, cores: usize, truncated: bool) -> Result<Option<Loaded>, String> {
        load_aof(
            dir,
            "appendonlydir",
            "appendonly.aof",
            &Loading {
                cores: &crate::mesh::SlotTable::new(cores),
                databases: 16,
                limits: &EncodingLimits::default(),
                load_truncated: truncated,
                progress: None,
            },
        )
    }

    fn keys(l: &Loaded) -> Vec<String> {
        let mut k: Vec<String> = l
            .per_core
            .iter()
            .flatten()
            .map(|(db, e)| format!("{db}:{}", String::from_utf8_lossy(&e.key)))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn torn_tail_garbage_and_missing_manifest() {
        assert!(load(Path::new("/nonexistent-slotd"), 1, true)
            .unwrap()
            .is_none());
        let mut incr = resp(&["SET", "a", "1"]);
        let whole = incr.len();
        incr.extend(resp(&["MULTI"]));
        incr.extend(resp(&["SET", "b", "2"]));
        incr.extend(&resp(&["EXEC"])[..6]);
        let m = "file appendonly.aof.1.incr.aof seq 1 type i\n";
        let dir = dir_with("torn", m, &[("appendonly.aof.1.incr.aof", incr.clone())]);
        let e = load(&dir, 1, false).unwrap_err();
        assert!(e.starts_with("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof. You can: 1) Make a backup of your AOF file, then use slotd check-aof --fix"), "{e}");
        let l = load(&dir, 1, true).unwrap().unwrap();
        assert_eq!(keys(&l), vec!["0:a"]);
        assert_eq!(l.logs[0].valid_len, whole as u64);
        assert!(l.logs[0].cut);
        // Garbage followed by good records is not a torn tail.
        let mut bad = resp(&["SET", "a", "1"]);
        bad.extend(b"garbage\r\n");
        bad.extend(resp(&["SET", "b", "2"]));
        let dir = dir_with("garbage", m, &[("appendonly.aof.1.incr.aof", bad)]);
        let e = load(&dir, 1, true).unwrap_err();
        assert!(
            e.starts_with("Bad file format reading the append only file appendonly.aof.1.incr.aof"),
            "{e}"
        );
        // A torn file that is not the last one.
        let m2 = "file appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let dir = dir_with(
            "notlast",
            m2,
            &[
                ("appendonly.aof.1.incr.aof", incr),
                ("appendonly.aof.2.incr.aof", resp(&["SET", "c", "3"])),
            ],
        );
        assert_eq!(
            load(&dir, 1, true).unwrap_err(),
            "Fatal error: the truncated file is not the last file"
        );
        // An offset so large that the file would end past 2^64: refused,
        // not wrapped round (which read it as empty and cut it at start).
        let m3 = "file appendonly.aof.1.c0.incr.aof seq 1 type i core 0 cores 1 offset 18446744073709551615\n";
        let dir = dir_with(
            "overflow",
            m3,
            &[("appendonly.aof.1.c0.incr.aof", resp(&["SET", "c", "3"]))],
        );
        let e = load(&dir, 1, true).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let dir = dir_with(
            "unknown",
            m,
            &[("appendonly.aof.1.incr.aof", resp(&["NOSUCH", "x"]))],
        );
        assert_eq!(
            load(&dir, 1, true).unwrap_err(),
            "Unknown command 'NOSUCH' reading the append only file appendonly.aof.1.incr.aof"
        );
    }

    /// Two writer cores; core 0's later records depend on core 1's log up
    /// to an offset core 1 never made durable: they are cut. Loaded by 1
    /// and by 3 cores, keys go to their owners.
    #[test]
    fn dependency_cut_across_writer_cores() {
        let mut c1 = resp(&["SET", "c1", "x"]);
        let c1_whole = c1.len() as u64;
        c1.extend(resp(&["SELECT", "2"]));
        c1.extend(resp(&["SET", "c1b", "y"]));
        let mut c0 = resp(&["SET", "a", "1"]);
        let dep_at = c0.len();
        c0.extend(format!("#D:1={}\r\n", c1_whole).bytes());
        c0.extend(resp(&["SET", "b", "2"]));
        let cut_at = c0.len();
        c0.extend(format!("#D:1={}\r\n", c1.len() + 10).bytes());
        c0.extend(resp(&["MULTI"]));
        c0.extend(resp(&["SET", "lost", "3"]));
        c0.extend(resp(&["EXEC"]));
        let m = "file appendonly.aof.1.c0.incr.aof seq 1 type i core 0 cores 2 slots 0-8191 offset 100\n\
             file appendonly.aof.1.c1.incr.aof seq 1 type i core 1 cores 2 slots 8192-16383 offset 0\n";
        let dir = dir_with(
            "deps",
            m,
            &[
                ("appendonly.aof.1.c0.incr.aof", c0.clone()),
                ("appendonly.aof.1.c1.incr.aof", c1),
            ],
        );
        for cores in [1, 3] {
            let l = load(&dir, cores, false).unwrap().unwrap();
            assert_eq!(keys(&l), vec!["0:a", "0:b", "0:c1", "2:c1b"]);
            assert_eq!(l.per_core.len(), cores);
            assert_eq!(
                l.logs[0],
                LogEnd {
                    core: 0,
                    file: Some("appendonly.aof.1.c0.incr.aof".into()),
                    valid_len: cut_at as u64,
                    zeros: 0,
                    end_offset: 100 + cut_at as u64,
                    cut: true
                }
            );
            assert!(!l.logs[1].cut);
        }
        assert!(dep_at < cut_at);
    }

    /// Every entry of `key` (db 0) over the cores, canonical.
    fn values(l: &Loaded, key: &str) -> Vec<String> {
        l.per_core
            .iter()
            .flatten()
            .filter(|(db, e)| *db == 0 && e.key == key.as_bytes())
            .map(|(_, e)| canonical(&e.value, e.expire_ms))
            .collect()
    }

    /// A manifest: one base (no core), and the incr files of two cores.
    const SHARED_BASE_TWO_LOGS: &str = "file appendonly.aof.1.base.aof seq 1 type b\n\
             file appendonly.aof.1.c0.incr.aof seq 1 type i core 0 cores 2 offset 0\n\
             file appendonly.aof.1.c1.incr.aof seq 1 type i core 1 cores 2 offset 0\n";

    #[test]
    fn logs_replay_in_parallel_only_when_no_two_write_a_slot() {
        let m = SHARED_BASE_TWO_LOGS;
        // The base holds keys both logs go on writing.
        let mut base = resp(&["SET", "a", "10"]);
        base.extend(resp(&["SET", "b", "20"]));
        base.extend(resp(&["SET", "untouched", "1"]));
        // Disjoint: each log writes its own keys; both log the keyless
        // FLUSHDB of database 3 (each core logs it for its own keys,
        // named by `#S:`: here the slot of the key it flushes).
        let own = |k: &str| format!("#S:{}\r\n", engine::slot::slot_of(k.as_bytes())).into_bytes();
        let mut c0 = resp(&["INCR", "a"]);
        c0.extend(resp(&["SELECT", "3"]));
        c0.extend(resp(&["SET", "gone0", "x"]));
        c0.extend(own("gone0"));
        c0.extend(resp(&["FLUSHDB"]));
        c0.extend(resp(&["SET", "kept0", "x"]));
        let mut c1 = resp(&["INCRBY", "b", "5"]);
        c1.extend(resp(&["MSET", "c", "1", "d", "2"]));
        c1.extend(resp(&["SELECT", "3"]));
        c1.extend(resp(&["SET", "gone1", "x"]));
        c1.extend(own("gone1"));
        c1.extend(resp(&["FLUSHDB"]));
        let files = |c0: &[u8], c1: &[u8]| {
            [
                ("appendonly.aof.1.base.aof", base.clone()),
                ("appendonly.aof.1.c0.incr.aof", c0.to_vec()),
                ("appendonly.aof.1.c1.incr.aof", c1.to_vec()),
            ]
        };
        let dir = dir_with("par", m, &files(&c0, &c1));
        let manifest = Manifest::parse(
            &std::fs::read(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap(),
        )
        .unwrap();
        let logs = read_logs(&dir.join("appendonlydir"), &manifest).unwrap();
        let (s0, s1) = (
            log_slots(&logs[0], u64::MAX).unwrap(),
            log_slots(&logs[1], u64::MAX).unwrap(),
        );
        assert!(s0.iter().zip(&s1).all(|(a, b)| a & b == 0));
        let bit = |bits: &[u64], k: &str| {
            let s = engine::slot::slot_of(k.as_bytes()) as usize;
            bits[s / 64] & (1 << (s % 64)) != 0
        };
        assert!(bit(&s0, "a") && bit(&s1, "b") && bit(&s1, "d") && !bit(&s0, "b"));
        for cores in [1, 2, 3] {
            let l = load(&dir, cores, false).unwrap().unwrap();
            assert_eq!(
                keys(&l),
                vec!["0:a", "0:b", "0:c", "0:d", "0:untouched", "3:kept0"]
            );
            assert_eq!(values(&l, "a"), vec!["SET 11 ttl=None"]);
            assert_eq!(values(&l, "b"), vec!["SET 25 ttl=None"]);
            assert_eq!(l.keys, 6);
        }

        // A slot both logs write (a cluster's re-spread moved it from core
        // 0 to core 1): the writes apply in the dependency order, in one
        // keyspace.
        let mut c0 = resp(&["INCR", "a"]);
        let moved_at = c0.len();
        c0.extend(resp(&["SET", "kept0", "x"]));
        let mut c1 = format!("#D:0={moved_at}\r\n").into_bytes();
        c1.extend(resp(&["INCRBY", "a", "100"]));
        let dir = dir_with("par-shared", m, &files(&c0, &c1));
        let logs = read_logs(&dir.join("appendonlydir"), &manifest).unwrap();
        let (s0, s1) = (
            log_slots(&logs[0], u64::MAX).unwrap(),
            log_slots(&logs[1], u64::MAX).unwrap(),
        );
        assert!(bit(&s0, "a") && bit(&s1, "a"));
        for cores in [1, 2] {
            let l = load(&dir, cores, false).unwrap().unwrap();
            assert_eq!(values(&l, "a"), vec!["SET 111 ttl=None"]);
            assert_eq!(keys(&l), vec!["0:a", "0:b", "0:kept0", "0:untouched"]);
        }

        // A record that may change more than its own keys: not parallel.
        // (Also below, in `a_cores_flush_changes_its_own_slots_only`.)
        let mut c0 = resp(&["SET", "x", "1"]);
        c0.extend(resp(&["FUNCTION", "FLUSH"]));
        let dir = dir_with("par-fn", m, &files(&c0, &resp(&["SET", "y", "1"])));
        let logs = read_logs(&dir.join("appendonlydir"), &manifest).unwrap();
        assert!(log_slots(&logs[0], u64::MAX).is_none());
        assert!(log_slots(&logs[1], u64::MAX).is_some());
    }

    /// A key whose slot core `core` of 2 owns.
    fn key_of_core(core: usize, tag: &str) -> String {
        (0..)
            .map(|i| format!("{tag}{i}"))
            .find(|k| engine::slot::core_of(engine::slot::slot_of(k.as_bytes()), 2) == core)
            .unwrap()
    }

    /// FLUSHALL, FLUSHDB and SWAPDB that a core logged for its own slots
    /// (`#S:`) change those slots only, in the parallel replay (where the
    /// keys of the other core's base stay in the first log's keyspace
    /// when that core wrote nothing) and in the one-keyspace replay.
    #[test]
    fn a_cores_flush_changes_its_own_slots_only() {
        let m = SHARED_BASE_TWO_LOGS;
        let (k0, k1, n1) = (
            key_of_core(0, "a"),
            key_of_core(1, "b"),
            key_of_core(1, "n"),
        );
        let mut base = resp(&["SET", &k0, "1"]);
        base.extend(resp(&["SET", &k1, "1"]));
        // Core 0's FLUSHALL is kept, core 1's was lost with its tail.
        let mut c1 = resp(&["SET", &n1, "1"]);
        let mut flush = b"#S:0-8191\r\n".to_vec();
        flush.extend(resp(&["FLUSHALL"]));
        // One keyspace: a keyless record of core 0 makes it so; the
        // FLUSHALL comes after core 1's SET.
        let mut c0_one = resp(&["FUNCTION", "FLUSH"]);
        c0_one.extend(format!("#D:1={}\r\n", c1.len()).bytes());
        c0_one.extend(&flush);
        // Each core flushes its own base keys, in the parallel replay too
        // (the second core's base keys sit in the first log's keyspace
        // unless its `#S:` slots take them to its own).
        let mut flush1 = b"#S:8192-16383\r\n".to_vec();
        flush1.extend(resp(&["FLUSHALL"]));
        for (c0, c1, want) in [
            (flush.clone(), flush1.clone(), vec![]),
            (Vec::new(), flush1, vec![format!("0:{k0}")]),
        ] {
            let files = [
                ("appendonly.aof.1.base.aof", base.clone()),
                ("appendonly.aof.1.c0.incr.aof", c0),
                ("appendonly.aof.1.c1.incr.aof", c1),
            ];
            let dir = dir_with("own-both", m, &files);
            for cores in [1, 2] {
                let l = load(&dir, cores, false).unwrap().unwrap();
                assert_eq!(keys(&l), want, "{cores} cores");
            }
        }
        // A flush logged without `#S:` (before it existed) reaches every
        // key: the one-keyspace replay.
        let files = [
            ("appendonly.aof.1.base.aof", base.clone()),
            ("appendonly.aof.1.c0.incr.aof", resp(&["FLUSHALL"])),
            ("appendonly.aof.1.c1.incr.aof", Vec::new()),
        ];
        let dir = dir_with("own-old", m, &files);
        let logs = read_logs(
            &dir.join("appendonlydir"),
            &Manifest::parse(m.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(log_slots(&logs[0], u64::MAX).is_none());
        assert_eq!(
            keys(&load(&dir, 2, false).unwrap().unwrap()),
            Vec::<String>::new()
        );
        for (name, c0) in [("own-par", flush.clone()), ("own-one", c0_one)] {
            let files = [
                ("appendonly.aof.1.base.aof", base.clone()),
                ("appendonly.aof.1.c0.incr.aof", c0),
                ("appendonly.aof.1.c1.incr.aof", c1.clone()),
            ];
            let dir = dir_with(name, m, &files);
            for cores in [1, 2] {
                let l = load(&dir, cores, false).unwrap().unwrap();
                let mut want = vec![format!("0:{k1}"), format!("0:{n1}")];
                want.sort();
                assert_eq!(keys(&l), want, "{name}, {cores} cores");
            }
        }
        // FLUSHDB and SWAPDB likewise; the annotation covers the next
        // command alone (SELECT aside), not a later FLUSHDB.
        c1.extend(resp(&["SELECT", "1"]));
        c1.extend(resp(&["SET", &n1, "2"]));
        let mut c0 = resp(&["SELECT", "1"]);
        c0.extend(resp(&["SET", &k0, "3"]));
        c0.extend(b"#S:0-8191\r\n");
        c0.extend(resp(&["SELECT", "0"]));
        c0.extend(resp(&["SWAPDB", "0", "1"]));
        c0.extend(b"#S:0-8191\r\n");
        c0.extend(resp(&["SET", &k0, "4"]));
        c0.extend(resp(&["SELECT", "2"]));
        c0.extend(resp(&["SET", &k0, "5"]));
        c0.extend(resp(&["FLUSHDB"]));
        let files = [
            ("appendonly.aof.1.base.aof", base.clone()),
            ("appendonly.aof.1.c0.incr.aof", c0),
            ("appendonly.aof.1.c1.incr.aof", c1),
        ];
        let dir = dir_with("own-swap", m, &files);
        let l = load(&dir, 2, false).unwrap().unwrap();
        let mut want = vec![
            format!("0:{k0}"),
            format!("0:{k1}"),
            format!("0:{n1}"),
            format!("1:{k0}"),
            format!("1:{n1}"),
        ];
        want.sort();
        assert_eq!(keys(&l), want);
        // Core 0's db 1 (k0 = 3) became its db 0; k0 = 4 then replaced it.
        assert_eq!(values(&l, &k0), vec!["SET 4 ttl=None"]);
        assert_eq!(values(&l, &k1), vec!["SET 1 ttl=None"]);
    }
}
