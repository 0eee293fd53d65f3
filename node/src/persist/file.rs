//! The RDB file: writing a job's records (on the writer thread) and
//! reading one at start; also an AOF base written as commands
//! (`aof-use-rdb-preamble no`), which is a job's records alone.

use super::{Job, State};
use crate::mesh::Mesh;
use crate::shared::{now_ms, Shared};
use engine::rdb;
use engine::snapshot::Form;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Writes `job`'s image to `dir/temp-<pid>.rdb`, then renames it to
/// `dir/dbfilename`, with Redis's fsyncs (and with `autosync`, every so
/// many bytes as they are written: see [`AutoSync`]). An image of
/// commands is written as it comes (no header, footer or checksum), after
/// the job's prelude.
pub fn write(
    job: &Job,
    mesh: &Mesh,
    shared: &Shared,
    (dir, dbfilename): (&Path, &str),
    (checksum, autosync): (bool, Option<u64>),
    redis_ver: &str,
) -> Result<(), String> {
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let r = write_to(job, mesh, shared, &tmp, (checksum, autosync), redis_ver);
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        // Cores still walking stop at their next turn (the job is over).
        return Err(format!(
            "Failed opening or writing the .rdb file {} (in server root dir {}): {e}",
            tmp.display(),
            dir.display()
        ));
    }
    let dst = dir.join(dbfilename);
    std::fs::rename(&tmp, &dst).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            tmp.display(),
            dst.display(),
            dir.display(),
            crate::log::io_error_text(&e)
        )
    })?;
    // The rename is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_to(
    job: &Job,
    mesh: &Mesh,
    shared: &Shared,
    tmp: &Path,
    (checksum, autosync): (bool, Option<u64>),
    redis_ver: &str,
) -> std::io::Result<()> {
    let f = AutoSync::new(std::fs::File::create(tmp)?, autosync);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let tail = write_body(job, mesh, shared, &mut w, checksum, redis_ver)?;
    finish(w, &tail)
}

/// Redis's `REDIS_AUTOSYNC_BYTES`: with `rdb-save-incremental-fsync` (a
/// snapshot) or `aof-rewrite-incremental-fsync` (a rewrite's base), the
/// file is flushed to the disk every 4 MB as it is written.
pub const AUTOSYNC_BYTES: u64 = 4 << 20;

/// A file written from start to end that, given a step, starts the
/// writeback of each step's bytes as soon as they are written and waits
/// for the step before it, as Redis 7.0's `rioFileWrite` does with
/// `sync_file_range`: the page cache never holds much more than two steps
/// of the file dirty, so the fsync at its end is short and the disk is not
/// flooded at once (the cores' AOF writes and fsyncs share it).
struct AutoSync {
    file: std::fs::File,
    step: Option<u64>,
    /// Bytes written, and how many of them were handed to the writeback.
    written: u64,
    started: u64,
}

impl AutoSync {
    fn new(file: std::fs::File, step: Option<u64>) -> AutoSync {
        AutoSync {
            file,
            step: step.filter(|&s| s > 0),
            written: 0,
            started: 0,
        }
    }

    /// Starts the writeback of every whole step written and not started,
    /// each after waiting for the step before it.
    fn sync_steps(&mut self) -> std::io::Result<()> {
        let Some(step) = self.step else {
            return Ok(());
        };
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        while self.written - self.started >= step {
            let range = |at: u64, flags: u32| {
                // SAFETY: sync_file_range on a file this struct owns, with
                // a range inside what was written.
                let r = unsafe { libc::sync_file_range(fd, at as i64, step as i64, flags) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            range(self.started, libc::SYNC_FILE_RANGE_WRITE)?;
            if self.started >= step {
                range(
                    self.started - step,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )?;
            }
            self.started += step;
        }
        Ok(())
    }
}

impl Write for AutoSync {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Never past the next step's end, so each step is started whole.
        let room = self
            .step
            .map_or(buf.len() as u64, |s| s - (self.written - self.started));
        let n = self.file.write(&buf[..buf.len().min(room as usize)])?;
        self.written += n as u64;
        self.sync_steps()?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A diskless replication's snapshot: the RDB goes to `out` (a pipe the
/// replication thread reads), never to a file.
pub fn write_stream(
    job: &Job,
    mesh: &Mesh,
    shared: &Shared,
    out: std::fs::File,
    checksum: bool,
    redis_ver: &str,
) -> Result<(), String> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
    write_body(job, mesh, shared, &mut w, checksum, redis_ver)
        .and_then(|tail| w.write_all(&tail))
        .and_then(|()| w.flush())
        .map_err(|e| {
            format!(
                "Diskless replication write error: {}",
                crate::log::io_error_text(&e)
            )
        })
}

/// Writes the job's image to `w`; returns what must end it (an RDB's
/// footer).
fn write_body<W: Write>(
    job: &Job,
    mesh: &Mesh,
    shared: &Shared,
    w: &mut W,
    checksum: bool,
    redis_ver: &str,
) -> std::io::Result<Vec<u8>> {
    if job.form == Form::Commands {
        w.write_all(&job.prelude)?;
        for core in 0..mesh.cores() {
            while let Some(chunk) = job.next(core, mesh) {
                w.write_all(&chunk)?;
            }
        }
        return Ok(Vec::new());
    }
    // Redis's CRC64 of every byte before the checksum (computed even with
    // `rdbchecksum no`, which then writes zeros: cheap next to the I/O).
    let mut crc = rdb::crc64();
    let mut put = |w: &mut W, b: &[u8]| {
        crc.update(b);
        w.write_all(b)
    };
    put(w, &head(shared, redis_ver, job.repl.get()))?;
    for core in 0..mesh.cores() {
        while let Some(chunk) = job.next(core, mesh) {
            put(w, &chunk)?;
        }
    }
    let mut tail = Vec::new();
    rdb::write::footer(&mut tail, crc, checksum);
    Ok(tail)
}

/// An RDB file's header and aux fields (with the replication position
/// `repl`, when known).
fn head(shared: &Shared, redis_ver: &str, repl: Option<&repl::Resume>) -> Vec<u8> {
    let mut head = Vec::new();
    rdb::write::header(&mut head);
    let now_s = now_ms() / 1000;
    rdb::write::aux(&mut head, "redis-ver", redis_ver.as_bytes());
    rdb::write::aux(&mut head, "redis-bits", b"64");
    rdb::write::aux(&mut head, "ctime", now_s.to_string().as_bytes());
    rdb::write::aux(
        &mut head,
        "used-mem",
        shared
            .peak_memory
            .load(Ordering::Relaxed)
            .to_string()
            .as_bytes(),
    );
    if let Some(r) = repl {
        rdb::write::aux(&mut head, "repl-stream-db", r.db.to_string().as_bytes());
        rdb::write::aux(&mut head, "repl-id", r.replid.as_bytes());
        rdb::write::aux(&mut head, "repl-offset", r.offset.to_string().as_bytes());
    }
    rdb::write::aux(&mut head, "aof-base", b"0");
    engine::script::functions::write_rdb(&mut head);
    head
}

/// An RDB without keys (what `REPLCONF rdb-filter-only` asks for).
pub fn empty_rdb(shared: &Shared, repl: Option<&repl::Resume>) -> Vec<u8> {
    let mut out = head(shared, crate::config::REDIS_VERSION, repl);
    let mut crc = rdb::crc64();
    crc.update(&out);
    let checksum = shared.config.lock().is_ok_and(|c| c.flag("rdbchecksum"));
    rdb::write::footer(&mut out, crc, checksum);
    out
}

/// Reads `dir/dbfilename` if it exists and queues each key for the core
/// that owns its slot (they insert them as they start). Keys already
/// expired are skipped, as a Redis master does. `Err` is the message to
/// stop the start with.
pub fn load(
    state: &State,
    path: &Path,
    cores: &crate::mesh::SlotTable,
    databases: usize,
    lim: &engine::value::EncodingLimits,
) -> Result<(), String> {
    let Some(p) = parse(path, cores, databases, lim, Some(state))? else {
        return Ok(());
    };
    if let Ok(mut q) = state.preload.lock() {
        *q = p.per_core;
    }
    if let Ok(mut r) = state.loaded_repl.lock() {
        *r = p.repl;
    }
    state.loaded_keys.store(p.loaded, Ordering::Relaxed);
    state.expired_keys.store(p.expired, Ordering::Relaxed);
    Ok(())
}

/// An RDB file's keys, by owner core.
pub struct Parsed {
    /// Per core: (db, entry) of the keys in its slots.
    pub per_core: Vec<Vec<(usize, rdb::read::Entry)>>,
    /// Keys kept, and keys skipped because their TTL had passed.
    pub loaded: u64,
    pub expired: u64,
    /// The replication position recorded (`repl-id`, `repl-offset` and
    /// `repl-stream-db` all present and valid).
    pub repl: Option<repl::Resume>,
}

/// Reads and parses the RDB file at `path` (`None` when there is none),
/// logging as Redis does once it is loaded, and reporting its progress to
/// `progress` (INFO's loading fields at start). `Err` has Redis's wording.
pub fn parse(
    path: &Path,
    cores: &crate::mesh::SlotTable,
    databases: usize,
    lim: &engine::value::EncodingLimits,
    progress: Option<&State>,
) -> Result<Option<Parsed>, String> {
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "Fatal error loading the DB {}: {}. Exiting.",
                path.display(),
                crate::log::io_error_text(&e)
            ))
        }
    };
    let start = std::time::Instant::now();
    let now = now_ms();
    let mut per_core: Vec<Vec<(usize, rdb::read::Entry)>> =
        (0..cores.cores()).map(|_| Vec::new()).collect();
    let (mut loaded, mut expired, mut db) = (0u64, 0u64, 0usize);
    let mut bad_db = None;
    if let Some(s) = progress {
        s.loading_total_bytes
            .store(buf.len() as u64, Ordering::Relaxed);
    }
    let mut next_report = 0usize;
    let (mut repl_id, mut repl_offset, mut repl_db) = (None, None, None);
    let mut fn_err = None;
    let r = rdb::read::file_at(&buf, lim, |at, item| {
        if let Some(s) = progress.filter(|_| at >= next_report) {
            s.loading_loaded_bytes.store(at as u64, Ordering::Relaxed);
            next_report = at + (1 << 20);
        }
        match item {
            rdb::read::Item::Db(d) => {
                if d >= databases && bad_db.is_none() {
                    bad_db = Some(d);
                }
                db = d;
            }
            rdb::read::Item::Entry(e) => {
                if e.expire_ms.is_some_and(|t| t < now) {
                    expired += 1;
                    return;
                }
                if db < databases {
                    let core = cores.core_of(engine::slot::slot_of(&e.key));
                    per_core[core].push((db, e));
                    loaded += 1;
                }
            }
            rdb::read::Item::EmptyKey(k) => crate::log::warning(format_args!(
                "rdbLoadObject skipping empty key: {}",
                String::from_utf8_lossy(&k)
            )),
            rdb::read::Item::Function(code) => {
                if let Err(e) = engine::cmd::script::load_library(&code) {
                    fn_err.get_or_insert(e);
                }
            }
            rdb::read::Item::Aux(k, v) => {
                let text = || String::from_utf8(v.clone()).ok();
                match k.as_slice() {
                    b"repl-id" => repl_id = text().filter(|t| t.len() == 40),
                    b"repl-offset" => repl_offset = text().and_then(|t| t.parse::<i64>().ok()),
                    b"repl-stream-db" => repl_db = text().and_then(|t| t.parse::<i64>().ok()),
                    _ => {}
                }
            }
        }
    })
    .map(|_| ());
    if bad_db.is_some() {
        return Err(format!(
            "FATAL: Data file {} was created with a Redis server configured to handle more than {databases} databases. Exiting",
            path.display()
        ));
    }
    if let Some(e) = fn_err {
        return Err(format!("Failed loading library: {e}"));
    }
    if let Err(e) = r {
        let what = if e.msg == engine::rdb::SHORT_READ {
            "Short read or OOM loading DB. Unrecoverable error, aborting now.".to_string()
        } else if e.msg == "wrong RDB checksum" {
            "Wrong RDB checksum. Aborting now.".to_string()
        } else {
            "Unrecoverable error, aborting now.".to_string()
        };
        return Err(format!(
            "Internal error in RDB reading offset {} of {}: {}\n{what}",
            e.offset,
            path.display(),
            e.msg
        ));
    }
    crate::log::notice(format_args!(
        "Done loading RDB, keys loaded: {loaded}, keys expired: {expired}."
    ));
    crate::log::notice(format_args!(
        "DB loaded from disk: {:.3} seconds",
        start.elapsed().as_secs_f64()
    ));
    // As Redis: an offset of -1 or a stream database of -1 (older
    // versions' way of saying none) records nothing.
    let repl = match (repl_id, repl_offset, repl_db) {
        (Some(replid), Some(offset), Some(db))
            if offset >= 0 && (0..databases as i64).contains(&db) =>
        {
            Some(repl::Resume {
                replid,
                offset,
                db: db as usize,
            })
        }
        _ => None,
    };
    Ok(Some(Parsed {
        per_core,
        loaded,
        expired,
        repl,
    }))
}

/// Writes a file holding `entries` (each core's `(db, entry)` list) to
/// `path` through a temporary file, fsynced and renamed: the base of a
/// new append-only generation written at start, as RDB or as commands
/// (`form`; then after `prelude`, its `#TS` annotation if any).
pub fn write_entries(
    path: &Path,
    entries: &[Vec<(usize, rdb::read::Entry)>],
    checksum: bool,
    form: Form,
    redis_ver: &str,
    prelude: &[u8],
) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let f = AutoSync::new(std::fs::File::create(&tmp)?, None);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut crc = rdb::crc64();
    let mut buf = Vec::new();
    if form == Form::Commands {
        buf.extend_from_slice(prelude);
        // Redis's `rewriteFunctions`: each library as FUNCTION LOAD.
        for lib in engine::script::functions::libraries().values() {
            engine::writelog::encode(&mut buf, [&b"FUNCTION"[..], b"LOAD", &lib.code].into_iter());
        }
    }
    if let Form::Rdb { .. } = form {
        rdb::write::header(&mut buf);
        rdb::write::aux(&mut buf, "redis-ver", redis_ver.as_bytes());
        rdb::write::aux(&mut buf, "redis-bits", b"64");
        rdb::write::aux(&mut buf, "ctime", (now_ms() / 1000).to_string().as_bytes());
        rdb::write::aux(&mut buf, "aof-base", b"1");
        engine::script::functions::write_rdb(&mut buf);
    }
    let dbs = entries
        .iter()
        .flat_map(|c| c.iter().map(|(d, _)| *d))
        .max()
        .map_or(0, |d| d + 1);
    for db in 0..dbs {
        let mut selected = false;
        for (d, e) in entries.iter().flatten() {
            if *d != db {
                continue;
            }
            match form {
                Form::Rdb { compress } => {
                    if !selected {
                        rdb::write::select(&mut buf, db);
                    }
                    rdb::write::entry(&mut buf, &e.key, &e.value, e.expire_ms, compress);
                }
                Form::Commands => {
                    if !selected {
                        engine::rewrite::write_select(&mut buf, db);
                    }
                    engine::rewrite::write_commands(&mut buf, &e.key, &e.value, e.expire_ms);
                }
            }
            selected = true;
            if buf.len() >= 1 << 20 {
                crc.update(&buf);
                w.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    w.write_all(&buf)?;
    let mut tail = Vec::new();
    if let Form::Rdb { .. } = form {
        crc.update(&buf);
        rdb::write::footer(&mut tail, crc, checksum);
    }
    finish(w, &tail)?;
    std::fs::rename(&tmp, path)
}

/// Ends an RDB file with `tail` (its footer), then fsyncs it.
fn finish(mut w: std::io::BufWriter<AutoSync>, tail: &[u8]) -> std::io::Result<()> {
    w.write_all(tail)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.file.sync_all()
}
