//! Loading the append-only directory at start: the manifest, every base
//! (RDB files parsed in parallel, one thread each), the incr files of
//! every writer core cut consistently (`engine::aof::cut`) and replayed in
//! dependency order into one scratch keyspace, then the keys handed to the
//! cores of this process by slot, as the RDB loader hands them. Redis
//! 7.0's `loadAppendOnlyFiles` rules and log lines.

use super::State;
use crate::shared::now_ms;
use engine::aof::cut::{self, CoreLog};
use engine::aof::manifest::{FileInfo, Manifest};
use engine::aof::scan::{self, FileIndex, Item, Scanner};
use engine::rdb::read::Entry;
use engine::value::EncodingLimits;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
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
    ix: FileIndex,
    /// Time spent replaying it.
    took: f64,
}

/// One writer core's files.
struct Log {
    core: usize,
    base: Option<(String, Vec<u8>)>,
    /// The base's offset (its image's end in the core's log).
    start: u64,
    incrs: Vec<File>,
}

/// Loads `dir/dirname/filename.manifest` and its files. `Ok(None)` when
/// there is no manifest; `Err` is the message to stop the start with (the
/// lines before it are logged).
pub fn load_aof(
    dir: &Path,
    dirname: &str,
    filename: &str,
    cores: &crate::mesh::SlotTable,
    databases: usize,
    limits: &EncodingLimits,
    load_truncated: bool,
) -> Result<Option<Loaded>, String> {
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
    replay(&mut logs, &plan, &mut scratch, now)?;
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
    let (per_core, keys) = split(&mut scratch, cores, now, &mut expired);
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
            let buf = read(f)?;
            let offset = match f.offset {
                Some(o) if sharded => o,
                _ => next,
            };
            next = offset + buf.len() as u64;
            let ix = scan::index(&buf);
            incrs.push(File {
                name: f.name.clone(),
                offset,
                buf,
                ix,
                took: 0.0,
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
                let mut db = 0;
                for r in Scanner::new(&buf[..ix.valid], 1) {
                    match r {
                        Ok(rec) => apply(scratch, &mut db, rec.item, name, now)?,
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
/// order anyway, annotations are skipped, replies are dropped.
fn apply(
    shard: &mut engine::Shard,
    db: &mut usize,
    item: Item,
    file: &str,
    now: i64,
) -> Result<(), String> {
    let Item::Command(argv) = item else {
        return Ok(());
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

/// Replays the incr files in the plan's order.
fn replay(
    logs: &mut [Log],
    plan: &cut::Plan,
    scratch: &mut engine::Shard,
    now: i64,
) -> Result<(), String> {
    struct Cursor<'a> {
        file: usize,
        scanner: Option<Scanner<'a>>,
        db: usize,
    }
    // Split the borrows: file bytes (shared) and timings (written).
    let views: Vec<Vec<(&str, u64, &[u8])>> = logs
        .iter()
        .map(|l| {
            l.incrs
                .iter()
                .map(|f| (f.name.as_str(), f.offset, &f.buf[..f.ix.valid]))
                .collect()
        })
        .collect();
    let mut took: Vec<Vec<f64>> = logs.iter().map(|l| vec![0.0; l.incrs.len()]).collect();
    let mut cursors: Vec<Cursor> = views
        .iter()
        .map(|_| Cursor {
            file: 0,
            scanner: None,
            db: 0,
        })
        .collect();
    let (mut records, mut last_report) = (0u64, Instant::now());
    for step in &plan.steps {
        let files = &views[step.log];
        let cur = &mut cursors[step.log];
        let t = Instant::now();
        'step: while cur.file < files.len() {
            let (name, off, buf) = files[cur.file];
            if off >= step.to {
                break;
            }
            let sc = cur.scanner.get_or_insert_with(|| Scanner::new(buf, 1));
            while off + (sc.pos() as u64) < step.to {
                let Some(Ok(rec)) = sc.next() else {
                    break;
                };
                apply(scratch, &mut cur.db, rec.item, name, now)?;
                records += 1;
                if records % 4096 == 0 && last_report.elapsed().as_secs() >= 1 {
                    last_report = Instant::now();
                    crate::log::notice(format_args!("Loading AOF: {records} records replayed"));
                }
                if off + (sc.pos() as u64) >= step.to {
                    break 'step;
                }
            }
            // This file is done: the next starts in db 0.
            took[step.log][cur.file] += t.elapsed().as_secs_f64();
            cur.file += 1;
            cur.scanner = None;
            cur.db = 0;
        }
        if cur.file < files.len() {
            took[step.log][cur.file] += t.elapsed().as_secs_f64();
        }
    }
    for (log, t) in logs.iter_mut().zip(took) {
        for (f, t) in log.incrs.iter_mut().zip(t) {
            f.took = t;
        }
    }
    Ok(())
}

/// Moves the scratch keyspace's keys to the cores that own their slots,
/// skipping expired ones. Returns the per-core lists and the count.
fn split(
    scratch: &mut engine::Shard,
    cores: &crate::mesh::SlotTable,
    now: i64,
    expired: &mut u64,
) -> (Vec<Vec<(usize, Entry)>>, u64) {
    let mut per_core: Vec<Vec<(usize, Entry)>> = (0..cores.cores()).map(|_| Vec::new()).collect();
    let mut loaded = 0;
    for (dbi, db) in scratch.dbs.iter_mut().enumerate() {
        let keys: Vec<Vec<u8>> = db.iter().map(|(k, _)| k.to_vec()).collect();
        for key in keys {
            let Some(node) = db.remove(&key) else {
                continue;
            };
            let expire_ms = node.expire_at();
            if expire_ms.is_some_and(|at| at <= now) {
                *expired += 1;
                continue;
            }
            let core = cores.core_of(engine::slot::slot_of(&key));
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
    (per_core, loaded)
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
            &crate::mesh::SlotTable::new(3),
            16,
            &lim,
            false,
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

    /// A directory with `files` (name, bytes) and `manifest`.
    fn dir_with(tag: &str, manifest: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slotd-aofload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
        std::fs::write(dir.join("appendonlydir/appendonly.aof.manifest"), manifest).unwrap();
        for (n, b) in files {
            std::fs::write(dir.join("appendonlydir").join(n), b).unwrap();
        }
        dir
    }

    fn load(dir: &Path, cores: usize, truncated: bool) -> Result<Option<Loaded>, String> {
        load_aof(
            dir,
            "appendonlydir",
            "appendonly.aof",
            &crate::mesh::SlotTable::new(cores),
            16,
            &EncodingLimits::default(),
            truncated,
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
                    end_offset: 100 + cut_at as u64,
                    cut: true
                }
            );
            assert!(!l.logs[1].cut);
        }
        assert!(dep_at < cut_at);
    }
}
