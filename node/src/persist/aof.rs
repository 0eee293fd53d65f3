//! The append-only file: one log per core, written through the core's own
//! ring, and the node's manifest that lists them (docs/persistence.md).
//!
//! [`Aof`] is the node-wide part: the policy, each core's published
//! offsets (recorded, written, fsynced: what a core reads to write its
//! dependencies and what INFO shows), the manifest. [`CoreAof`] is one
//! core's writer: the bytes taken from its write log, the write and fsync
//! in flight, and under `appendfsync always` the replies and messages held
//! until an fsync covers what they may reveal. The event loop (`core.rs`)
//! submits what [`CoreAof`] asks for and reports completions back.

use crate::io::Key;
use crate::mesh::Msg;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// `appendfsync` values.
pub const FSYNC_NO: u8 = 0;
pub const FSYNC_EVERYSEC: u8 = 1;
pub const FSYNC_ALWAYS: u8 = 2;

/// Under `everysec` and `no`, how long records may wait in memory before
/// their write is submitted (the turn's millisecond clock: 1 to 2 ms),
/// and how many bytes make a write due sooner.
pub const LAG_MS: i64 = 2;
pub const LAG_BYTES: usize = 256 << 10;
/// The largest direct write under `everysec` and `no` (a longer queue
/// goes in several, see [`super::direct`]).
const LAG_DIRECT_MAX: usize = 4 << 20;

/// Under `always`, a core keeps at least [`ZERO_AHEAD`] bytes of zeros
/// written past its records in its file, [`ZERO_CHUNK`] bytes at a time:
/// overwriting blocks that exist leaves the file's size and extents as
/// they are, so each group commit's fdatasync flushes data alone, without
/// a journal commit (measured here: 0.10-0.14 ms against 0.18-0.20 ms
/// per fdatasync; 1 shard, SET at -P 1, about 20% more SET/s). The zeros past the
/// records are cut when the core leaves the file and skipped by loading
/// after a crash (docs/persistence.md).
const ZERO_CHUNK: usize = 256 << 10;
const ZERO_AHEAD: u64 = 128 << 10;

/// The zeros the writes of [`ZERO_CHUNK`] take their bytes from: one
/// block-aligned allocation for the process (direct writes take their
/// zeros from it too), never freed (a write in flight may read it
/// whatever becomes of its core's writer).
fn zeros() -> &'static [u8] {
    static ZEROS: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    ZEROS.get_or_init(|| super::direct::Aligned::zeroed(ZERO_CHUNK).leak())
}

/// Parses an `appendfsync` value.
pub fn fsync_policy(text: &str) -> u8 {
    match text {
        "always" => FSYNC_ALWAYS,
        "no" => FSYNC_NO,
        _ => FSYNC_EVERYSEC,
    }
}

/// The offset of an incr file that starts where the core's previous one
/// ended (written without `offset` in the manifest).
pub const FOLLOWS: u64 = u64::MAX;

/// What [`Aof::continuable`] finds: the files, per core (kept length of
/// its last file, log end), and per core the zeros past that file's
/// records.
pub type Continued = (Files, Vec<(u64, u64)>, Vec<u64>);

/// One file of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub seq: u64,
    /// `b` base, `i` incr.
    pub kind: char,
    /// The writer core, for a core's incr file (a base holds every core).
    pub core: Option<usize>,
    /// The core's logical log offset where the file starts.
    pub offset: u64,
    /// For a core's first incr file after a base: the transactions across
    /// cores whose part on this core is in the base while another core's
    /// may be in its incr file (the manifest's `based`, see
    /// [`Aof::set_based`]).
    pub based: Vec<String>,
}

/// The files of the current generation.
#[derive(Clone, Debug, Default)]
pub struct Files {
    pub seq: u64,
    pub cores: usize,
    pub list: Vec<FileEntry>,
}

impl Files {
    /// The manifest's text: Redis 7.0's lines, with slotd's keys after
    /// Redis's (which Redis's loader ignores).
    pub fn manifest(&self) -> Vec<u8> {
        let mut out = String::new();
        for f in &self.list {
            out.push_str(&format!("file {} seq {} type {}", f.name, f.seq, f.kind));
            if let Some(c) = f.core {
                out.push_str(&format!(" core {c} cores {}", self.cores));
                // A file a rewrite opened has no offset until the rewrite
                // ends: it continues the core's previous file.
                if f.offset != FOLLOWS {
                    out.push_str(&format!(" offset {}", f.offset));
                }
                if !f.based.is_empty() {
                    out.push_str(&format!(" based {}", f.based.join(",")));
                }
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Core `core`'s current (last) incr file.
    pub fn incr_of(&self, core: usize) -> Option<&FileEntry> {
        self.list
            .iter()
            .rev()
            .find(|f| f.kind == 'i' && f.core == Some(core))
    }
}

/// BGREWRITEAOF's state, for INFO.
pub struct RewriteState {
    pub in_progress: AtomicBool,
    pub scheduled: AtomicBool,
    pub last_ok: AtomicBool,
    pub last_time_sec: std::sync::atomic::AtomicI64,
    pub start_ms: std::sync::atomic::AtomicI64,
    pub count: AtomicU64,
    pub failures: AtomicU64,
    /// The rewrite in progress writes its base as commands
    /// (`aof-use-rdb-preamble no` when it started).
    commands: AtomicBool,
}

/// Node-wide AOF state.
pub struct Aof {
    /// `appendonly` in force (files open, cores logging).
    pub on: AtomicBool,
    policy: AtomicU8,
    /// The append-only directory and the manifest's file name prefix.
    pub dir: PathBuf,
    pub filename: String,
    /// Per core: logical offsets recorded in its log, written to its file,
    /// and covered by a completed fsync.
    pub logged: Vec<AtomicU64>,
    pub written: Vec<AtomicU64>,
    pub synced: Vec<AtomicU64>,
    /// Per core: the zeros written past the records of its file (see
    /// [`ZERO_CHUNK`]), which the files' sizes leave out.
    zero_tail: Vec<AtomicU64>,
    /// Per core: what replies may reveal, the fsynced offset under
    /// `always` (the written one otherwise) capped where the log depends
    /// on another core's records that are not effective yet (see
    /// [`CoreAof::depend`]); and whether the
    /// core waits for other cores' effective offsets to move (they wake
    /// it when theirs does; a core sets its flag, then looks at the
    /// offsets once more, before it sleeps).
    pub effective: Vec<AtomicU64>,
    /// Write pipelines over two cores fanned out under `everysec` or `no`
    /// whose requester's part is not yet taken from its log (see
    /// [`OpenParts`]).
    pub lag_parts: AtomicU64,
    /// Per core: its pending dependencies and what its policy let it
    /// reveal when it last looked ([`CoreAof::refresh`]), so that another
    /// core can settle chains of dependencies between them in one look
    /// instead of one step per look of each ([`CoreAof::joint`]).
    views: Vec<Mutex<View>>,
    /// Per core: how many times its view was written, counted after each
    /// write (a core's [`CoreAof::joint`] is computed again only when a
    /// count or an effective offset moved).
    view_seqs: Vec<AtomicU64>,
    pub waits: Vec<AtomicBool>,
    /// How many cores hold something (replies, messages, stalled clients)
    /// until other cores' offsets move. Under `everysec` and `no` a core
    /// with pending dependencies asks to be woken when other cores' offsets
    /// move only while some core does: no reply waits for them otherwise,
    /// and each wake-up cut a batching core's wait short (at -P 1 with 2
    /// shards, 2.4k wake-ups a second).
    pub blocked: AtomicUsize,
    /// False while a core's last write or fsync failed (INFO
    /// `aof_last_write_status`; writes get -MISCONF while the AOF is
    /// on), which cores' did: one core's write succeeding does not clear
    /// another's error.
    pub write_ok: AtomicBool,
    write_failed: Vec<AtomicBool>,
    /// The last write error's text (for -MISCONF).
    pub write_error: Mutex<String>,
    pub files: Mutex<Files>,
    pub rewrite: RewriteState,
    /// Per core: the open incr file handed over at start.
    handoff: Mutex<Vec<Option<(i32, u64)>>>,
    /// Per core: the incr file a rewrite opened, taken by the core when
    /// its image starts; and 1 + the offset where it switched to it.
    rotations: Mutex<Vec<Option<i32>>>,
    pub rotated: Vec<AtomicU64>,
    /// Every core fsyncs at its next cron, whatever the policy.
    pub force_sync: AtomicBool,
    /// Stopping cores whose AOF is written and fsynced: clients'
    /// connections close once every core's is (`Core::run`).
    pub flushed_to_stop: AtomicUsize,
    /// `aof-timestamp-enabled`: cores stamp their logs with `#TS`, and a
    /// base written as commands starts with one ([`Aof::base_timestamp`];
    /// an RDB base has none).
    pub timestamps: AtomicBool,
    /// `no-appendfsync-on-rewrite`.
    pub no_fsync_on_rewrite: AtomicBool,
    /// A snapshot or rewrite job runs and `no-appendfsync-on-rewrite`
    /// was on when it started: cores write but do not fsync (see
    /// [`Aof::fsync_paused`]) until [`Aof::resume_fsync`].
    pausing: AtomicBool,
    /// A rewrite is turning the AOF on (`CONFIG SET appendonly yes`).
    enabling: AtomicBool,
    /// The files' size after the last rewrite or at start (Redis's
    /// `aof_rewrite_base_size`, for `auto-aof-rewrite-percentage`).
    pub base_size: AtomicU64,
    /// Per core, set when it switches to a rewrite's incr file: the
    /// transactions across cores whose part there ended in the file
    /// before ([`Aof::set_based`]).
    based: Vec<Mutex<Vec<String>>>,
}

impl Aof {
    /// The state for `cores` cores, with AOF off (the policy and
    /// switches come with [`Aof::configure`]).
    pub fn new(cores: usize, dir: PathBuf, filename: String) -> Aof {
        let atomics = || (0..cores).map(|_| AtomicU64::new(0)).collect();
        Aof {
            on: AtomicBool::new(false),
            policy: AtomicU8::new(FSYNC_EVERYSEC),
            dir,
            filename,
            logged: atomics(),
            written: atomics(),
            synced: atomics(),
            zero_tail: atomics(),
            effective: atomics(),
            lag_parts: AtomicU64::new(0),
            views: (0..cores).map(|_| Mutex::new(View::default())).collect(),
            view_seqs: atomics(),
            waits: (0..cores).map(|_| AtomicBool::new(false)).collect(),
            blocked: AtomicUsize::new(0),
            write_ok: AtomicBool::new(true),
            write_failed: (0..cores).map(|_| AtomicBool::new(false)).collect(),
            write_error: Mutex::new(String::new()),
            files: Mutex::new(Files::default()),
            rewrite: RewriteState {
                in_progress: AtomicBool::new(false),
                scheduled: AtomicBool::new(false),
                last_ok: AtomicBool::new(true),
                last_time_sec: (-1).into(),
                start_ms: 0.into(),
                count: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                commands: AtomicBool::new(false),
            },
            handoff: Mutex::new((0..cores).map(|_| None).collect()),
            rotations: Mutex::new((0..cores).map(|_| None).collect()),
            rotated: atomics(),
            force_sync: AtomicBool::new(false),
            flushed_to_stop: AtomicUsize::new(0),
            timestamps: AtomicBool::new(false),
            no_fsync_on_rewrite: AtomicBool::new(false),
            pausing: AtomicBool::new(false),
            enabling: AtomicBool::new(false),
            base_size: AtomicU64::new(0),
            based: (0..cores).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Core `core` switched to the rewrite's incr file; `ids` are the
    /// transactions across cores it took part in between the rewrite's
    /// start and its switch. Another core that switched before may hold
    /// its part of one of them in its new incr file while this core's is
    /// in the old file, which the rewrite folds into the base: the
    /// manifest names them with this core's file (`based`), so a load
    /// keeps the other part (`engine::aof::cut`).
    pub fn set_based(&self, core: usize, ids: Vec<String>) {
        if let Some(b) = self.based.get(core) {
            if let Ok(mut b) = b.lock() {
                *b = ids;
            }
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.filename))
    }

    /// Writes `files` as the manifest: a temporary file, fsynced, renamed
    /// over the old one, then the directory fsynced.
    pub fn write_manifest(&self, files: &Files) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("temp-{}.manifest", self.filename));
        std::fs::write(&tmp, files.manifest())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.manifest_path())?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Starts generation `seq` at start-up: a base file holding `entries`
    /// (what was loaded, maybe nothing) in `form`, an empty incr file per core from
    /// offset 0, the manifest; then removes the files of older
    /// generations and opens the new ones for the cores.
    pub fn new_generation(
        &self,
        cores: usize,
        seq: u64,
        entries: &[Vec<(usize, engine::rdb::read::Entry)>],
        checksum: bool,
        form: engine::snapshot::Form,
    ) -> Result<(), String> {
        self.create_dir()?;
        let base = self.base_file(seq, form);
        super::file::write_entries(
            &self.dir.join(&base),
            entries,
            checksum,
            form,
            crate::config::REDIS_VERSION,
            &self.base_timestamp(),
        )
        .map_err(|e| {
            format!(
                "Can't write the AOF base file {base}: {}",
                crate::log::io_error_text(&e)
            )
        })?;
        crate::log::notice(format_args!(
            "Creating AOF base file {base} on server start"
        ));
        let mut list = vec![FileEntry {
            name: base,
            seq,
            kind: 'b',
            core: None,
            offset: 0,
            based: Vec::new(),
        }];
        for c in 0..cores {
            let name = format!("{}.{seq}.c{c}.incr.aof", self.filename);
            crate::log::notice(format_args!(
                "Creating AOF incr file {name} on server start"
            ));
            list.push(FileEntry {
                name,
                seq,
                kind: 'i',
                core: Some(c),
                offset: 0,
                based: Vec::new(),
            });
        }
        let files = Files { seq, cores, list };
        self.open_files(&files, &vec![(0, 0); cores])?;
        self.install(files)?;
        Ok(())
    }

    /// The manifest's files, each core's (kept length of its last file,
    /// log end) and the zeros past that file's records, when this process
    /// can go on appending to them:
    /// slotd's manifest for `cores` cores, every core's log ending in its
    /// last incr file.
    pub fn continuable(&self, cores: usize, logs: &[super::aofload::LogEnd]) -> Option<Continued> {
        let text = std::fs::read(self.manifest_path()).ok()?;
        let m = engine::aof::manifest::Manifest::parse(&text).ok()?;
        let mut files = Files {
            seq: m.max_seq().max(0) as u64,
            cores,
            list: Vec::new(),
        };
        for f in &m.files {
            let kind = match f.kind {
                engine::aof::manifest::Kind::Base => 'b',
                engine::aof::manifest::Kind::Incr => 'i',
                engine::aof::manifest::Kind::History => continue,
            };
            if kind == 'i' && f.cores != Some(cores) {
                return None;
            }
            files.list.push(FileEntry {
                name: f.name.clone(),
                seq: f.seq.max(0) as u64,
                kind,
                core: f.core,
                offset: if kind == 'b' {
                    0
                } else {
                    f.offset.unwrap_or(FOLLOWS)
                },
                based: f.based.clone(),
            });
        }
        let mut ends = Vec::with_capacity(cores);
        let mut zeros = Vec::with_capacity(cores);
        for c in 0..cores {
            let last = files.incr_of(c)?;
            let log = logs.iter().find(|l| l.core == c)?;
            if log.file.as_deref() != Some(last.name.as_str()) {
                return None;
            }
            ends.push((log.valid_len, log.end_offset));
            zeros.push(log.zeros);
        }
        Some((files, ends, zeros))
    }

    /// Goes on appending to the files of a loaded directory, each core's
    /// last file cut to where its kept log ends (`zeros`: per core, the
    /// zeros past the records of that file, which go without a warning).
    pub fn resume(&self, files: Files, ends: &[(u64, u64)], zeros: &[u64]) -> Result<(), String> {
        for (c, &(len, _)) in ends.iter().enumerate() {
            if let Some(f) = files.incr_of(c) {
                crate::log::notice(format_args!(
                    "Opening AOF incr file {} on server start",
                    f.name
                ));
                let size = std::fs::metadata(self.dir.join(&f.name))
                    .map_or(0, |m| m.len())
                    .saturating_sub(zeros.get(c).copied().unwrap_or(0));
                if size > len {
                    crate::log::warning(format_args!(
                        "AOF {} truncated to {len} bytes ({} bytes removed)",
                        f.name,
                        size - len
                    ));
                }
            }
        }
        self.open_files(&files, ends)?;
        if let Ok(mut f) = self.files.lock() {
            *f = files;
        }
        self.note_base_size();
        Ok(())
    }

    /// Makes `files` the node's: the manifest names them (durably), the
    /// files it does not name go, and the automatic rewrite measures
    /// growth from here.
    fn install(&self, files: Files) -> Result<(), String> {
        self.persist_manifest(&files)?;
        self.remove_others(&files);
        if let Ok(mut f) = self.files.lock() {
            *f = files;
        }
        self.note_base_size();
        Ok(())
    }

    /// [`Aof::write_manifest`] with Redis's error text.
    fn persist_manifest(&self, files: &Files) -> Result<(), String> {
        self.write_manifest(files).map_err(|e| {
            format!(
                "Can't persist AOF manifest: {}",
                crate::log::io_error_text(&e)
            )
        })
    }

    /// Creates the append-only directory if it is missing (Redis's error).
    fn create_dir(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            format!(
                "Can't open or create append-only dir {}: {}",
                self.dir.display(),
                crate::log::io_error_text(&e)
            )
        })
    }

    /// Before the rewrite that turns the AOF on at run time: an empty file
    /// list for every core, numbered after any generation left in the
    /// directory (whose files the rewrite's end deletes).
    pub fn prepare_enable(&self) -> Result<(), String> {
        self.create_dir()?;
        let prefix = format!("{}.", self.filename);
        let last = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_prefix(&prefix)?
                            .split('.')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        for a in self
            .logged
            .iter()
            .chain(&self.written)
            .chain(&self.synced)
            .chain(&self.effective)
        {
            a.store(0, Ordering::SeqCst);
        }
        self.forget_views();
        if let Ok(mut f) = self.files.lock() {
            *f = Files {
                seq: last,
                cores: self.logged.len(),
                list: Vec::new(),
            };
        }
        self.enabling.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True when cores must close their files (`CONFIG SET appendonly no`,
    /// or a rewrite that was turning the AOF on failed).
    pub fn closing(&self) -> bool {
        !self.on.load(Ordering::SeqCst)
            && !self.enabling.load(Ordering::SeqCst)
            && !self.rewrite.in_progress.load(Ordering::SeqCst)
    }

    /// The name of the base file of generation `seq` written in `form`:
    /// Redis 7.0's `.base.rdb`, or `.base.aof` for commands.
    fn base_file(&self, seq: u64, form: engine::snapshot::Form) -> String {
        let ext = match form {
            engine::snapshot::Form::Rdb { .. } => "rdb",
            engine::snapshot::Form::Commands => "aof",
        };
        format!("{}.{seq}.base.{ext}", self.filename)
    }

    /// The name of the base file of generation `seq`, the rewrite in
    /// progress's.
    pub fn base_name(&self, seq: u64) -> String {
        let form = if self.rewrite.commands.load(Ordering::SeqCst) {
            engine::snapshot::Form::Commands
        } else {
            engine::snapshot::Form::Rdb { compress: false }
        };
        self.base_file(seq, form)
    }

    /// BGREWRITEAOF, first step: opens generation `seq`'s incr files (one
    /// per core) and lists them in the manifest after the current files,
    /// so whatever a core writes there once its image starts is loaded
    /// even if the rewrite never ends. The base will be written in `form`.
    /// Returns `seq`.
    pub fn begin_rewrite(&self, form: engine::snapshot::Form) -> Result<u64, String> {
        let mut files = self.files.lock().map_err(|_| "poisoned")?.clone();
        let seq = files.seq + 1;
        let mut fds = Vec::new();
        let opened: Result<(), String> = (0..files.cores).try_for_each(|c| {
            let name = format!("{}.{seq}.c{c}.incr.aof", self.filename);
            let f = std::fs::File::create(self.dir.join(&name)).map_err(|e| {
                format!(
                    "Can't open the append-only file {name}: {}",
                    crate::log::io_error_text(&e)
                )
            })?;
            use std::os::fd::IntoRawFd;
            fds.push(f.into_raw_fd());
            files.list.push(FileEntry {
                name,
                seq,
                kind: 'i',
                core: Some(c),
                offset: FOLLOWS,
                based: Vec::new(),
            });
            Ok(())
        });
        // Turning the AOF on: the manifest names the files once the base
        // exists (before that, the directory is not a dataset yet).
        let enabling = self.enabling.load(Ordering::SeqCst);
        let written = opened.and_then(|()| {
            if enabling {
                return Ok(());
            }
            self.persist_manifest(&files)
        });
        if let Err(e) = written {
            for fd in fds {
                // SAFETY: closing descriptors opened above, used nowhere.
                unsafe { libc::close(fd) };
            }
            return Err(e);
        }
        files.seq = seq;
        if let Ok(mut r) = self.rotations.lock() {
            for (slot, fd) in r.iter_mut().zip(fds) {
                *slot = Some(fd);
            }
        }
        for a in &self.rotated {
            a.store(0, Ordering::SeqCst);
        }
        if let Ok(mut f) = self.files.lock() {
            *f = files;
        }
        self.rewrite
            .start_ms
            .store(crate::shared::now_ms(), Ordering::Relaxed);
        self.rewrite
            .commands
            .store(form == engine::snapshot::Form::Commands, Ordering::SeqCst);
        self.rewrite.in_progress.store(true, Ordering::SeqCst);
        self.rewrite.scheduled.store(false, Ordering::SeqCst);
        crate::log::notice(format_args!(
            "Background append only file rewriting started"
        ));
        Ok(seq)
    }

    /// The incr file core `core` switches to when its image starts.
    pub fn take_rotation(&self, core: usize) -> Option<i32> {
        self.rotations.lock().ok()?.get_mut(core)?.take()
    }

    /// BGREWRITEAOF, last step (on the writer thread, once the base file
    /// is in place): waits for every core to have switched files and for
    /// everything recorded so far to be on disk (the base may hold writes
    /// that depend on them), then makes the manifest list the new base and
    /// incr files only, and deletes the old ones.
    pub fn commit_rewrite(&self, seq: u64) -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let wait = |done: &dyn Fn() -> bool| -> bool {
            while !done() {
                if std::time::Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            true
        };
        if !wait(&|| self.rotated.iter().all(|a| a.load(Ordering::SeqCst) > 0)) {
            return Err("a core did not switch to its new incr file".into());
        }
        let target: Vec<u64> = self
            .logged
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect();
        self.force_sync.store(true, Ordering::SeqCst);
        let synced = wait(&|| {
            self.synced
                .iter()
                .zip(&target)
                .all(|(s, t)| s.load(Ordering::SeqCst) >= *t)
        });
        self.force_sync.store(false, Ordering::SeqCst);
        if !synced {
            return Err("the incr files could not be fsynced".into());
        }
        let mut files = self.files.lock().map_err(|_| "poisoned")?.clone();
        let mut list = vec![FileEntry {
            name: self.base_name(seq),
            seq,
            kind: 'b',
            core: None,
            offset: 0,
            based: Vec::new(),
        }];
        for c in 0..files.cores {
            let based = self
                .based
                .get(c)
                .and_then(|b| b.lock().ok().map(|mut b| std::mem::take(&mut *b)))
                .unwrap_or_default();
            // (A manifest line holds at most 1023 bytes.)
            if based.len() > BASED_MAX {
                return Err(format!(
                    "core {c} took part in {} transactions across cores while switching files",
                    based.len()
                ));
            }
            list.push(FileEntry {
                name: format!("{}.{seq}.c{c}.incr.aof", self.filename),
                seq,
                kind: 'i',
                core: Some(c),
                offset: self.rotated[c].load(Ordering::SeqCst) - 1,
                based,
            });
        }
        files.list = list;
        self.install(files)?;
        if self.enabling.swap(false, Ordering::SeqCst) {
            self.on.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// A failed rewrite: the manifest keeps listing the old files and the
    /// new incr files after them, which stays loadable; incr files no core
    /// took yet are closed (they stay empty).
    pub fn abandon_rewrite(&self) {
        self.enabling.store(false, Ordering::SeqCst);
        if let Ok(mut r) = self.rotations.lock() {
            for fd in r.iter_mut().filter_map(Option::take) {
                // SAFETY: a descriptor no core took; nothing else uses it.
                unsafe { libc::close(fd) };
            }
        }
        let _ = std::fs::remove_file(
            self.dir
                .join(self.base_name(self.files.lock().map_or(0, |f| f.seq))),
        );
    }

    /// Deletes the directory's AOF files that `files` does not list (an
    /// older generation, or a failed rewrite's leftovers).
    pub fn remove_others(&self, files: &Files) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let manifest = format!("{}.manifest", self.filename);
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(&format!("{}.", self.filename))
                || name.starts_with(&format!("temp-{}", self.filename));
            if ours && name != manifest && !files.list.iter().any(|f| f.name == name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Opens every core's incr file of `files` for appending, each cut to
    /// `ends[core].0` bytes (a torn or cut tail goes), the core's log then
    /// ending at logical offset `ends[core].1`, and hands them over.
    pub fn open_files(&self, files: &Files, ends: &[(u64, u64)]) -> Result<(), String> {
        let mut handoff = self.handoff.lock().map_err(|_| "poisoned".to_string())?;
        for c in 0..files.cores {
            let Some(f) = files.incr_of(c) else {
                return Err(format!("The manifest lists no incr file for core {c}"));
            };
            let path = self.dir.join(&f.name);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| {
                    format!(
                        "Can't open the append-only file {}: {}",
                        f.name,
                        crate::log::io_error_text(&e)
                    )
                })?;
            let (len, end) = ends.get(c).copied().unwrap_or((0, 0));
            file.set_len(len)
                .and_then(|_| file.sync_all())
                .map_err(|e| {
                    format!(
                        "Can't truncate the append-only file {}: {}",
                        f.name,
                        crate::log::io_error_text(&e)
                    )
                })?;
            for a in [
                &self.logged[c],
                &self.written[c],
                &self.synced[c],
                &self.effective[c],
            ] {
                a.store(end, Ordering::Relaxed);
            }
            self.zero_tail[c].store(0, Ordering::Relaxed);
            self.forget_view(c);
            use std::os::fd::IntoRawFd;
            handoff[c] = Some((file.into_raw_fd(), len));
        }
        self.on.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Core `core`'s writer, if AOF is on.
    pub fn take_core(&self, core: usize) -> Option<CoreAof> {
        let (fd, len) = self.handoff.lock().ok()?.get_mut(core)?.take()?;
        let end = self.written[core].load(Ordering::Relaxed);
        Some(CoreAof::new(core, fd, len, end))
    }

    /// INFO persistence's AOF fields (from `aof_enabled` on), with each
    /// core's recorded, written and fsynced log offsets.
    pub fn info(&self) -> String {
        let on = self.on.load(Ordering::Relaxed);
        let r = &self.rewrite;
        let running = r.in_progress.load(Ordering::Relaxed);
        let mut s = format!(
            "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
            on as u8,
            running as u8,
            r.scheduled.load(Ordering::Relaxed) as u8,
            r.last_time_sec.load(Ordering::Relaxed),
            if running {
                (crate::shared::now_ms() - r.start_ms.load(Ordering::Relaxed)) / 1000
            } else {
                -1
            },
            if r.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
            r.count.load(Ordering::Relaxed),
            r.failures.load(Ordering::Relaxed),
            if self.write_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
        );
        if !on {
            return s;
        }
        let sum = |v: &[AtomicU64]| v.iter().map(|a| a.load(Ordering::Relaxed)).sum::<u64>();
        let buffered = sum(&self.logged).saturating_sub(sum(&self.written));
        let unsynced = sum(&self.written).saturating_sub(sum(&self.synced));
        let (base, all) = self.sizes();
        s.push_str(&format!(
            "aof_current_size:{all}\r\naof_base_size:{base}\r\naof_pending_rewrite:0\r\naof_buffer_length:{buffered}\r\naof_pending_bio_fsync:{}\r\naof_delayed_fsync:0\r\n",
            (unsynced > 0) as u8
        ));
        for c in 0..self.logged.len() {
            s.push_str(&format!(
                "slotd_aof_core{c}:recorded={},written={},fsynced={}\r\n",
                self.logged[c].load(Ordering::Relaxed),
                self.written[c].load(Ordering::Relaxed),
                self.synced[c].load(Ordering::Relaxed)
            ));
        }
        s
    }

    /// Bytes of the current base file, and of every file listed (without
    /// the zeros written past the cores' records).
    pub fn sizes(&self) -> (u64, u64) {
        let files = self.files.lock().map(|f| f.clone()).unwrap_or_default();
        let size = |f: &FileEntry| std::fs::metadata(self.dir.join(&f.name)).map_or(0, |m| m.len());
        let base = files.list.iter().filter(|f| f.kind == 'b').map(size).sum();
        let zeros: u64 = self
            .zero_tail
            .iter()
            .map(|z| z.load(Ordering::Relaxed))
            .sum();
        let all: u64 = files.list.iter().map(size).sum();
        (base, all.saturating_sub(zeros))
    }

    /// Records the files' size as the base for automatic rewrites.
    fn note_base_size(&self) {
        self.base_size.store(self.sizes().1, Ordering::Relaxed);
    }

    /// Whether `auto-aof-rewrite-percentage` and `-min-size` call for a
    /// rewrite now (Redis's rule: the files are larger than the minimum and
    /// have grown by the percentage since the last rewrite).
    pub fn rewrite_due(&self, percentage: u64, min_size: u64) -> bool {
        if percentage == 0 || !self.on.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.sizes().1;
        let base = self.base_size.load(Ordering::Relaxed).max(1);
        now > min_size && (now * 100 / base).saturating_sub(100) >= percentage
    }

    /// Drops what the cores published of their dependencies (their logs
    /// start again: [`View`]s name offsets of the logs before).
    fn forget_views(&self) {
        for c in 0..self.views.len() {
            self.forget_view(c);
        }
    }

    fn forget_view(&self, c: usize) {
        if let Some(Ok(mut v)) = self.views.get(c).map(|v| v.lock()) {
            *v = View::default();
        }
        if let Some(n) = self.view_seqs.get(c) {
            n.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether core `d`'s log is effective up to offset `x`: what a reply
    /// revealing its records up to there waits for under `always`.
    pub fn is_effective(&self, d: usize, x: u64) -> bool {
        self.effective[d].load(Ordering::SeqCst) >= x
    }

    /// Whether replies leave without waiting for the log: under
    /// `everysec` and `no`, where the records reach the file at most
    /// [`LAG_MS`] later (see [`CoreAof::submit`]). Effective offsets
    /// (written ones there) still order what crosses cores: a client's
    /// earlier parts on other cores are depended on until they are, and
    /// commands that cross cores other than as a pipeline wait for them.
    pub fn lags(&self) -> bool {
        self.policy() != FSYNC_ALWAYS
    }

    /// The policy in force.
    pub fn policy(&self) -> u8 {
        self.policy.load(Ordering::Relaxed)
    }

    /// Takes `appendfsync`, `aof-timestamp-enabled` and
    /// `no-appendfsync-on-rewrite` from the configuration (at start and
    /// after each CONFIG SET).
    pub fn configure(&self, c: &crate::config::Config) {
        self.policy.store(
            fsync_policy(&c.text("appendfsync").unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.timestamps
            .store(c.flag("aof-timestamp-enabled"), Ordering::Relaxed);
        // Turned off during a job, fsyncs resume at once (and replies
        // under `always` wait for them again); turned on, it applies
        // from the next job.
        self.no_fsync_on_rewrite
            .store(c.flag("no-appendfsync-on-rewrite"), Ordering::SeqCst);
    }

    /// What a base written as commands starts with (Redis's
    /// `genAofTimestampAnnotationIfNeeded(1)` in `rewriteAppendOnlyFileRio`):
    /// `#TS:<now>` with `aof-timestamp-enabled`, else nothing.
    pub fn base_timestamp(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.timestamps.load(Ordering::Relaxed) {
            engine::writelog::timestamp(&mut out, (crate::shared::now_ms() / 1000) as u64);
        }
        out
    }

    /// A snapshot or rewrite job starts (on its writer thread): with
    /// `no-appendfsync-on-rewrite yes` and the AOF on, cores stop
    /// fsyncing until [`Aof::resume_fsync`], as Redis does while a child
    /// process runs.
    pub fn job_started(&self) {
        if self.no_fsync_on_rewrite.load(Ordering::SeqCst) && self.on.load(Ordering::SeqCst) {
            self.pausing.store(true, Ordering::SeqCst);
        }
    }

    /// The job's writing is over: fsyncs resume. Under `always`, replies
    /// sent meanwhile revealed writes that were only written, and the
    /// dependency annotations of other cores counted on them; before the
    /// annotations go back to fsynced offsets, every core fsyncs what it
    /// recorded up to now (at its next cron, bounded to 30 s).
    pub fn resume_fsync(&self) {
        if !self.pausing.load(Ordering::SeqCst) {
            return;
        }
        self.force_sync.store(true, Ordering::SeqCst);
        let target: Vec<u64> = self
            .logged
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.on.load(Ordering::SeqCst)
            && std::time::Instant::now() < deadline
            && !self
                .synced
                .iter()
                .zip(&target)
                .all(|(s, t)| s.load(Ordering::SeqCst) >= *t)
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        self.pausing.store(false, Ordering::SeqCst);
        self.force_sync.store(false, Ordering::SeqCst);
    }

    /// No fsync now: `no-appendfsync-on-rewrite` during a job (except the
    /// fsyncs [`Aof::resume_fsync`] and a rewrite's end force).
    pub fn fsync_paused(&self) -> bool {
        self.pausing.load(Ordering::Relaxed)
            && self.no_fsync_on_rewrite.load(Ordering::Relaxed)
            && !self.force_sync.load(Ordering::Relaxed)
    }
}

/// fsyncs a directory so renames and new files in it are durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What a core's writer asks the loop to submit.
pub enum Submit {
    /// Write `len` bytes at `ptr` to `fd` at file offset `at`; with
    /// `sync`, as `pwritev2(RWF_DSYNC)`: the write is durable once it
    /// completes (an fdatasync of its range).
    Write {
        fd: i32,
        ptr: *const u8,
        len: u32,
        at: u64,
        sync: bool,
        /// A direct write ([`super::direct`]): submitted at once.
        direct: bool,
    },
    /// fdatasync `fd`.
    Fsync { fd: i32 },
    /// Write `len` zeros from `ptr` to `fd` at `at` with `RWF_DSYNC`: the
    /// space [`CoreAof`] prepares ahead of its records.
    Zero {
        fd: i32,
        ptr: *const u8,
        len: u32,
        at: u64,
    },
    /// Cut `fd` to `len` bytes (the zeros past the records go).
    Truncate { fd: i32, len: u64 },
}

/// The most transactions a manifest line names in `based` (each id
/// about 25 bytes; a line holds at most 1023).
const BASED_MAX: usize = 24;

/// The longest dependency annotation line written, its line end
/// included: loaders read at most 1023 bytes of one.
const DEPS_LINE_MAX: usize = 1000;

/// In [`CoreAof`]'s pending dependencies, in place of a core: a
/// transaction's part awaiting its coordinator's word that every part is
/// durable ([`CoreAof::hold_until_settled`]), and once that came.
const UNSETTLED: usize = usize::MAX;
const SETTLED: usize = usize::MAX - 1;

/// A core's dependencies as it published them: its durable base then
/// (fsynced under `always`, see [`CoreAof::durable_base`]) and its
/// pending entries then, those starting below that base (the others
/// cannot cap it below the base). Entries it adds later start past every
/// byte that base covers (they start where its log is, which no write or
/// fsync has reached), so `base` capped at the first entry not met is
/// never more than the core would find itself.
#[derive(Default)]
struct View {
    base: u64,
    pending: Vec<(u64, usize, u64)>,
}

/// One core's AOF writer.
pub struct CoreAof {
    core: usize,
    fd: i32,
    /// Bytes in the file (the next write's offset).
    file_len: u64,
    /// The file's size as zero writes made it (the bytes from `file_len`
    /// up to it are zeros: see [`ZERO_CHUNK`]); where the zero write in
    /// flight starts; a zero write that fell short (a full disk) stops
    /// them until the next file; and whether the cut of the zeros is in
    /// flight.
    zeroed: u64,
    zeroing: Option<u64>,
    zero_off: bool,
    cutting: bool,
    /// The file is being closed (shutdown, `appendonly no`): no more
    /// zeros are written.
    leaving: bool,
    /// Bytes taken from the write log and not submitted yet, and the
    /// turn's clock when the first of them was taken.
    queue: Vec<u8>,
    queued_ms: i64,
    /// The clock of the turn that last took records.
    now_ms: i64,
    /// The bytes of the write in flight, and how many of them are done.
    inflight: Vec<u8>,
    inflight_done: usize,
    write_busy: bool,
    /// The write in flight is durable by itself (`RWF_DSYNC`, under
    /// `always`): its completion completes `fsync_busy`.
    inflight_sync: bool,
    /// Records go as direct writes of whole blocks when the file allows
    /// ([`super::direct`]); the write in flight is one when this holds
    /// how many bytes of the last block it writes again ahead of the
    /// records, and how many records it carries.
    direct: super::direct::Direct,
    inflight_direct: Option<(usize, usize)>,
    /// The logical offset the fsync in flight covers.
    fsync_busy: Option<u64>,
    /// Logical offsets: everything before `written` is in the file,
    /// before `synced` on disk.
    written: u64,
    synced: u64,
    /// The offset replies may reveal (see [`CoreAof::durable`]; published
    /// as [`Aof::effective`]), and the dependencies on other cores'
    /// records not effective yet: (this log's offset where they start to
    /// count, core, that core's offset), or ([`UNSETTLED`], transaction)
    /// for a transaction's part not known durable on every core.
    eff: u64,
    pending: VecDeque<(u64, usize, u64)>,
    /// What the last [`View`] this core published was of: its base, how
    /// many entries start below it, and how many entries were met and
    /// dropped before (a transaction settled since reads as not settled
    /// there, which only holds more).
    viewed: (u64, usize, u64),
    /// Entries met and dropped from the front of `pending` so far, and
    /// whether one was ever added starting before the one ahead of it
    /// (each starts where the log is, so never: if so the views carry
    /// every entry).
    dropped: u64,
    unordered: bool,
    /// [`CoreAof::joint`]'s offsets, kept for the next call, and its
    /// last result with what it was computed from.
    joint_offs: Vec<u64>,
    joint_memo: JointMemo,
    /// Transactions settled so far ([`CoreAof::settled`] changes an entry
    /// in place), and where the entries below the base ended at the last
    /// look: (base, dropped) -> how many.
    settles: u64,
    below_memo: (u64, u64, usize),
    /// Answers to transactions' unlocks, each sent once its part (ending
    /// at the offset) is written (fsynced under `always`); and answers
    /// sent once the effective offset reaches theirs.
    closing: Vec<(u64, usize, Msg)>,
    settling: Vec<(u64, usize, Msg)>,
    last_fsync_ms: i64,
    /// Connections whose output waits for the write (or under `always`
    /// the fsync) of what it may reveal, and messages to other cores
    /// likewise, each with the offset it waits for.
    pub held_flush: VecDeque<(u64, Key)>,
    /// (need, to, message, sent under a lock, a reserved part's answer:
    /// see [`CoreAof::hold_part_answer`])
    held_msgs: VecDeque<(u64, usize, Msg, bool, bool)>,
    /// The last dependency annotation written (other cores' offsets),
    /// and its text.
    deps: Vec<u64>,
    line: Vec<u8>,
    /// A write or fsync failed: retried from the cron.
    failed: bool,
    /// The write in flight failed and waits for the cron's retry (a
    /// failure of the fsync leaves a write in flight alone).
    write_retry: bool,
    /// An fsync failed: writes are refused (`-MISCONF`, as Redis's
    /// `aof_bio_fsync_status`) until one succeeds.
    fsync_failed: bool,
    /// A switch to a new incr file at logical offset `.1` (the bytes
    /// before it go to the current file, fsynced before the switch), and
    /// the bytes recorded after that point meanwhile.
    rotating: Option<(i32, u64)>,
    after: Vec<u8>,
    /// Parts of write pipelines over two cores that this core ran first
    /// under `everysec` or `no`: see [`OpenParts`].
    open_parts: Option<OpenParts>,
}

/// A write pipeline fanned out over two cores under `everysec` or `no`
/// logs a part on each (kept both or neither at load), and the other
/// core's part runs first, with nothing waiting for either part's
/// write. Under `always` (after a switch) a record of this core that
/// follows such a part here and is acknowledged would be cut with it at
/// load if the requester's part were lost. So while a part this core ran
/// first may lack its pair on disk, its effective offset under `always`
/// stays at most `start`, the earliest such part's, until no fanned-out
/// pipeline is left unlogged ([`Aof::lag_parts`]) and every core has
/// fsynced what it had recorded then (`seen`, once `looked`). (Under
/// `everysec` and `no` nothing acknowledged waits for it; `always` fans
/// out no pipeline.)
struct OpenParts {
    start: u64,
    looked: bool,
    seen: Vec<u64>,
}

impl CoreAof {
    /// The writer of core `core` appending to `fd`, which holds `file_len`
    /// bytes, the log being at logical offset `end`.
    pub fn new(core: usize, fd: i32, file_len: u64, end: u64) -> CoreAof {
        CoreAof {
            core,
            fd,
            file_len,
            zeroed: file_len,
            zeroing: None,
            zero_off: false,
            cutting: false,
            leaving: false,
            queue: Vec::new(),
            queued_ms: 0,
            now_ms: 0,
            inflight: Vec::new(),
            inflight_done: 0,
            write_busy: false,
            inflight_sync: false,
            direct: super::direct::Direct::new(file_len),
            inflight_direct: None,
            fsync_busy: None,
            written: end,
            synced: end,
            eff: end,
            pending: VecDeque::new(),
            viewed: (u64::MAX, usize::MAX, u64::MAX),
            dropped: 0,
            unordered: false,
            joint_offs: Vec::new(),
            joint_memo: JointMemo::default(),
            settles: 0,
            below_memo: (u64::MAX, u64::MAX, 0),
            closing: Vec::new(),
            settling: Vec::new(),
            last_fsync_ms: 0,
            held_flush: VecDeque::new(),
            held_msgs: VecDeque::new(),
            deps: Vec::new(),
            line: Vec::new(),
            failed: false,
            write_retry: false,
            fsync_failed: false,
            rotating: None,
            after: Vec::new(),
            open_parts: None,
        }
    }

    /// The offset up to which replies to this core's clients may reveal
    /// writes: what an fsync covered under `always`, capped where this
    /// log starts to depend on another core's part of a pipeline not
    /// effective there yet (see [`CoreAof::depend`]). Under `always`
    /// while fsyncs are paused (`no-appendfsync-on-rewrite`), what is
    /// written, with the same cap: Redis answers after the write then.
    /// Under `everysec` and `no`, everything: replies do not wait for the
    /// log ([`Aof::lags`]).
    pub fn durable(&self, aof: &Aof) -> u64 {
        if aof.lags() {
            u64::MAX
        } else {
            self.durable_msgs(aof)
        }
    }

    /// The offset up to which messages to other cores may reveal writes
    /// (but a pipeline's, which carries its dependencies instead): as
    /// [`CoreAof::durable`] under `always`, and under `everysec` and `no`
    /// what is written (capped likewise). A crash of the process then
    /// keeps every write another core has seen; a message held makes the
    /// write due at once ([`CoreAof::submit`]).
    ///
    /// While writes fail (a full disk) under `everysec` or `no`, or under
    /// `always` with fsyncs paused, messages go out as Redis's replies
    /// do: the writes stay queued and are retried, and new writes are
    /// refused with -MISCONF meanwhile.
    pub fn durable_msgs(&self, aof: &Aof) -> u64 {
        self.durable_msgs_in(false, aof)
    }

    /// [`CoreAof::durable_msgs`] for a message sent while a transaction
    /// holds this core (`locked`): to its coordinator, once written (under
    /// `always`, fsynced), regardless of holds and dependencies (see
    /// [`CoreAof::hold_until_settled`]), or transactions would wait for
    /// each other. The client's reply waits for the settled parts to be
    /// effective.
    fn durable_msgs_in(&self, locked: bool, aof: &Aof) -> u64 {
        if self.failed && (aof.lags() || aof.fsync_paused()) {
            u64::MAX
        } else if locked {
            self.durable_base(aof)
        } else {
            self.eff
        }
    }

    /// Takes what the write log recorded since the last call, in the
    /// turn whose clock is `now_ms`, and publishes the new offset.
    pub fn take(&mut self, log: &mut engine::writelog::WriteLog, now_ms: i64, aof: &Aof) {
        self.now_ms = now_ms;
        if log.is_empty() {
            return;
        }
        let to = if self.rotating.is_some() {
            &mut self.after
        } else {
            &mut self.queue
        };
        if to.is_empty() {
            self.queued_ms = self.now_ms;
            log.take(to);
        } else {
            // (A write is in flight, or the records wait for the next
            // one: the bytes join those waiting.)
            log.take_onto(to);
        }
        aof.logged[self.core].store(log.offset(), Ordering::Release);
    }

    /// Sets the turn's clock, which says when the records waiting are due.
    pub fn clock(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Like [`CoreAof::take`] for bytes already taken from the log (whose
    /// offset is now `log_offset`) by the replication stream.
    pub fn append(&mut self, bytes: &[u8], log_offset: u64, now_ms: i64, aof: &Aof) {
        self.now_ms = now_ms;
        if bytes.is_empty() {
            return;
        }
        let to = if self.rotating.is_some() {
            &mut self.after
        } else {
            &mut self.queue
        };
        if to.is_empty() {
            self.queued_ms = self.now_ms;
        }
        to.extend_from_slice(bytes);
        aof.logged[self.core].store(log_offset, Ordering::Release);
    }

    /// Switches to the incr file `fd` at the log's current offset (a
    /// rewrite's image starts now): what was recorded before goes to the
    /// current file, what comes after to the new one.
    pub fn rotate(
        &mut self,
        fd: i32,
        log: &mut engine::writelog::WriteLog,
        now_ms: i64,
        aof: &Aof,
    ) {
        self.take(log, now_ms, aof);
        log.reset_db();
        self.rotating = Some((fd, log.offset()));
    }

    /// Whether messages to other cores wait here for the log to be
    /// durable.
    pub fn holds_messages(&self) -> bool {
        !self.held_msgs.is_empty()
    }

    /// The offset a reply sent now must wait for (`None`: everything
    /// recorded is durable already, see [`CoreAof::durable`]).
    pub fn gate(&self, log_offset: u64, aof: &Aof) -> Option<u64> {
        (log_offset > self.durable(aof)).then_some(log_offset)
    }

    /// Likewise for a message to another core ([`CoreAof::durable_msgs`]).
    /// `locked`: sent while a transaction holds this core (see
    /// [`CoreAof::durable_msgs_in`]).
    pub fn gate_msg(&self, log_offset: u64, locked: bool, aof: &Aof) -> Option<u64> {
        (log_offset > self.durable_msgs_in(locked, aof)).then_some(log_offset)
    }

    /// Holds a message for another core (an answer, an invalidation, a
    /// pipeline's hop, a blocked client's reply; requests go unheld)
    /// until `need` is on disk; a message behind a held one waits too, so
    /// the held messages keep their order, except that one sent while a
    /// transaction's lock holds this core (`locked`, as for
    /// [`CoreAof::gate_msg`]) waits only behind others sent so. Such a
    /// message (a lock's grant, a part's answer) must not wait behind one
    /// held from before the lock: this core's effective offset may be
    /// capped by a dependency on another core's part of that same
    /// transaction (read from that core's recorded offset once its lock
    /// was granted), which settles only once this message has gone, and
    /// the two cores then waited for each other for good (a BGREWRITEAOF
    /// test with MSETs across cores hung so in 7 of 23 runs of the `aof`
    /// binary). It reveals only what the written offset covers, and an
    /// answer is matched to its request by id. The price: an invalidation
    /// held from before the lock may now reach its client's core after a
    /// transaction's answer that shows the new value.
    pub fn hold_msg(
        &mut self,
        need: Option<u64>,
        locked: bool,
        to: usize,
        msg: Msg,
    ) -> Option<(usize, Msg)> {
        // (One that needs nothing itself waits for its turn only.)
        let behind = match locked {
            true => self.held_msgs.iter().any(|h| h.3),
            false => !self.held_msgs.is_empty(),
        };
        let held = match need {
            Some(n) => Some((n, locked)),
            None => behind.then_some((0, locked)),
        };
        match held {
            Some((n, locked)) => {
                self.held_msgs.push_back((n, to, msg, locked, false));
                None
            }
            None => Some((to, msg)),
        }
    }

    /// Holds the answer to a reserved part of a pipeline fanned out under
    /// `everysec` or `no` (`msg::Pipeline::part`) in order behind the
    /// messages held already (an invalidation must reach its client's
    /// core before a reply that shows the new value), unless the policy
    /// is now `always`: then it goes at once. It reveals the part to its
    /// requester only, whose client's reply waits for this core's
    /// effective offset; and under `always` this core's offsets may wait
    /// for the requester's part ([`OpenParts`]), which waits for this
    /// answer.
    pub fn hold_part_answer(&mut self, to: usize, msg: Msg, aof: &Aof) -> Option<(usize, Msg)> {
        if self.held_msgs.is_empty() || !aof.lags() {
            return Some((to, msg));
        }
        self.held_msgs.push_back((0, to, msg, false, true));
        None
    }

    /// What this core records from now on depends on core `d`'s log up
    /// to `x` (a pipeline's earlier writes, run there and not effective
    /// yet: fsynced under `always`, written otherwise): the next record
    /// carries the dependency, and replies revealing anything from here
    /// wait until it is effective.
    pub fn depend(&mut self, d: usize, x: u64, log: &mut engine::writelog::WriteLog, aof: &Aof) {
        if d == self.core || d >= aof.effective.len() {
            return;
        }
        if aof.is_effective(d, x) {
            return;
        }
        self.deps.resize(aof.effective.len(), 0);
        if x > self.deps[d] {
            self.deps[d] = x;
            if self.deps_line() {
                log.set_prelude(&self.line);
            }
        }
        self.push_pending((log.offset(), d, x));
    }

    fn push_pending(&mut self, p: (u64, usize, u64)) {
        self.unordered |= self.pending.back().is_some_and(|b| b.0 > p.0);
        self.pending.push_back(p);
    }

    /// A transaction across cores starts its part here, at log offset
    /// `at`: nothing recorded from there on is effective before every
    /// part is durable, which its coordinator says ([`CoreAof::settled`]).
    /// A load keeps a part only with the others, and the records after it
    /// in this log only with it: without the hold, another client's
    /// write here, acknowledged under `always`, could be cut with a part
    /// whose sibling on another core was not yet on disk, and so could
    /// another core's records that depend on this one's effective offset.
    pub fn hold_until_settled(&mut self, tx: u64, at: u64) {
        self.push_pending((at, UNSETTLED, tx));
    }

    /// A transaction's part here ended at log offset `end`: `answer`
    /// goes to core `to` once the part is written (under `always`,
    /// fsynced), whatever holds and dependencies cap the effective offset
    /// ([`CoreAof::released`]; the write is due at once). Its coordinator
    /// then settles the transaction on every core and waits until each
    /// is effective past its part ([`CoreAof::answer_when_effective`]),
    /// so no wait here depends on another transaction.
    pub fn close_part(&mut self, end: u64, to: usize, answer: Msg) {
        self.closing.push((end, to, answer));
    }

    /// `answer` goes to core `to` once this core is effective up to
    /// `need` (held apart from other messages: see
    /// [`CoreAof::close_part`]).
    pub fn answer_when_effective(&mut self, need: u64, to: usize, answer: Msg) {
        self.settling.push((need, to, answer));
    }

    /// Whether an entry of `pending` is met.
    fn met(p: &(u64, usize, u64), aof: &Aof) -> bool {
        met_by(p, |d, x| aof.is_effective(d, x))
    }

    /// What the policy lets replies reveal of this log before the pending
    /// dependencies cap it: fsynced under `always`, written otherwise
    /// (everything while writes fail outside `always`).
    fn durable_base(&self, aof: &Aof) -> u64 {
        let always = aof.policy() == FSYNC_ALWAYS;
        // (Under `always`, fsyncs paused or not: see [`OpenParts`].)
        let open = match always {
            true => self.open_parts.as_ref().map_or(u64::MAX, |o| o.start),
            false => u64::MAX,
        };
        if always && !aof.fsync_paused() {
            self.synced.min(open)
        } else if self.failed {
            u64::MAX
        } else {
            self.written.min(open)
        }
    }

    /// Transaction `tx` is durable on every core (see
    /// [`CoreAof::hold_until_settled`]).
    pub fn settled(&mut self, tx: u64) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.1 == UNSETTLED && p.2 == tx)
        {
            p.1 = SETTLED;
            self.settles += 1;
        }
    }

    /// Drops the dependencies now effective and moves this core's
    /// effective offset on; true when it moved.
    pub fn refresh(&mut self, aof: &Aof) -> bool {
        self.settle_open_parts(aof);
        while self.pending.front().is_some_and(|p| Self::met(p, aof)) {
            self.pending.pop_front();
            self.dropped += 1;
        }
        let cap = self.pending.front().map_or(u64::MAX, |p| p.0);
        // (While writes fail outside `always`, replies go out as Redis's
        // do, and so may other cores' that depend on this one's.)
        let base = self.durable_base(aof);
        let mut eff = base.min(cap);
        if aof.views.len() > 1 {
            // Only the entries starting below the base can cap what is
            // found for this core (see [`View`]); the ones added since
            // start where the log is, past it. So the view is published
            // again when the base moves or entries below it are dropped,
            // not for every entry a pipeline's hop adds (measured: about
            // 370 entries per core and look, every look, under
            // `everysec` with 2 shards at -P 16).
            // (Entries added while the base stays start past it: the
            // count changes only when the base moves or entries go.)
            let below = match self.unordered {
                false if self.below_memo.0 == base && self.below_memo.1 == self.dropped => {
                    self.below_memo.2
                }
                false => {
                    let b = self.pending.partition_point(|p| p.0 < base);
                    self.below_memo = (base, self.dropped, b);
                    b
                }
                true => self.pending.len(),
            };
            let seen = (base, below, self.dropped);
            if seen != self.viewed {
                if let Ok(mut v) = aof.views[self.core].try_lock() {
                    v.base = base;
                    v.pending.clear();
                    v.pending.extend(self.pending.range(..below).copied());
                    self.viewed = seen;
                    drop(v);
                    aof.view_seqs[self.core].fetch_add(1, Ordering::SeqCst);
                }
            }
            if eff < base {
                eff = self.joint_memoized(base, below, eff, aof);
            }
        }
        if eff == self.eff {
            return false;
        }
        self.eff = eff;
        aof.effective[self.core].store(eff, Ordering::SeqCst);
        true
    }

    /// This core ran first a part of a write pipeline fanned out under
    /// `everysec` or `no`, starting at log offset `start` ([`OpenParts`]).
    pub fn ran_part(&mut self, start: u64) {
        match &mut self.open_parts {
            None => {
                self.open_parts = Some(OpenParts {
                    start,
                    looked: false,
                    seen: Vec::new(),
                })
            }
            // (What every core had recorded before may not cover it.)
            Some(o) => o.looked = false,
        }
    }

    /// Forgets the parts this core ran first once both parts of each are
    /// on disk ([`OpenParts`]).
    fn settle_open_parts(&mut self, aof: &Aof) {
        let Some(o) = &mut self.open_parts else {
            return;
        };
        if !o.looked {
            if aof.lag_parts.load(Ordering::SeqCst) != 0 {
                return;
            }
            o.seen.clear();
            o.seen
                .extend(aof.logged.iter().map(|l| l.load(Ordering::SeqCst)));
            o.looked = true;
        }
        // (A core whose log started again, its AOF turned off and on,
        // has nothing of then left to sync.)
        // (While fsyncs pause during a job, replies under `always` wait
        // for the write only, and so does this.)
        let paused = aof.fsync_paused();
        let done = o.seen.iter().enumerate().all(|(c, &x)| {
            aof.synced[c].load(Ordering::SeqCst) >= x
                || paused && aof.written[c].load(Ordering::SeqCst) >= x
                || aof.logged[c].load(Ordering::SeqCst) < x
        });
        if done {
            self.open_parts = None;
        }
    }

    /// [`CoreAof::joint`], computed again only when what it reads moved:
    /// this core's base, entries and starting offset, another core's
    /// published offset or view. (At -P 1 with 2 shards under `everysec`
    /// a core's offset stays capped between writes, 2 ms apart, while its
    /// loop turns every few microseconds: joint was 1.3% of the CPU.)
    fn joint_memoized(&mut self, base: u64, below: usize, eff: u64, aof: &Aof) -> u64 {
        let own = [base, below as u64, eff, self.dropped, self.settles];
        // Read before the computation: whatever moves meanwhile makes the
        // next look compute again.
        let mut seen = std::mem::take(&mut self.joint_memo.scratch);
        seen.clear();
        seen.extend(aof.effective.iter().map(|e| e.load(Ordering::SeqCst)));
        seen.extend(aof.view_seqs.iter().map(|n| n.load(Ordering::SeqCst)));
        seen[self.core] = 0;
        let m = &mut self.joint_memo;
        if m.valid && m.own == own && m.seen == seen {
            m.scratch = seen;
            return m.result;
        }
        let mut offs = std::mem::take(&mut self.joint_offs);
        let (r, whole) = self.joint(base, below, eff, aof, &mut offs);
        self.joint_offs = offs;
        // (A view another core held at that moment was left out: no
        // memo then, the next look computes again.)
        let m = &mut self.joint_memo;
        m.scratch = std::mem::replace(&mut m.seen, seen);
        m.valid = whole;
        m.own = own;
        m.result = r;
        r
    }

    /// This core's effective offset with the other cores' published
    /// dependencies taken into account together (`base`: this core's
    /// durable base, `below`: how many of its entries start below it;
    /// `eff`: its effective offset by its own look, where
    /// it starts: what it published before may be higher only while its
    /// writes failed, and no longer holds). Each core alone moves only as far as the others'
    /// published effective offsets allow, so a pipeline that went back
    /// and forth between two cores settled one step per look of each
    /// (measured under `always`, 2 shards, -P 16: 97% of looks capped by
    /// a dependency, about 10 KB behind what was fsynced). Here every
    /// other core's offset starts from what it published (this one's from
    /// `eff`), and each is moved on
    /// to its base capped at its first entry not met by the others'
    /// offsets so far, until nothing moves. Every value found is at most
    /// what that core would find itself (see [`View`]), so a dependency
    /// met here is met. Cores whose view is being written are taken at
    /// their published offset.
    fn joint(
        &self,
        base: u64,
        below: usize,
        eff: u64,
        aof: &Aof,
        offs: &mut Vec<u64>,
    ) -> (u64, bool) {
        let n = aof.views.len();
        offs.clear();
        offs.extend(aof.effective.iter().map(|e| e.load(Ordering::SeqCst)));
        offs[self.core] = eff;
        let views: Vec<Option<std::sync::MutexGuard<View>>> = (0..n)
            .map(|c| match c == self.core {
                true => None,
                false => aof.views[c].try_lock().ok(),
            })
            .collect();
        for _ in 0..4 * n {
            let mut moved = false;
            for c in 0..n {
                let off = if c == self.core {
                    base.min(first_unmet(self.pending.range(..below), offs))
                } else if let Some(v) = &views[c] {
                    v.base.min(first_unmet(&v.pending, offs))
                } else {
                    continue;
                };
                if off > offs[c] {
                    offs[c] = off;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        let whole = views
            .iter()
            .enumerate()
            .all(|(c, v)| c == self.core || v.is_some());
        (offs[self.core], whole)
    }

    /// Whether dependencies on other cores wait (or unlocks' answers).
    pub fn depends(&self) -> bool {
        !self.pending.is_empty() || self.holds()
    }

    /// Whether answers or messages are held here until offsets move.
    pub fn holds(&self) -> bool {
        !self.closing.is_empty() || !self.settling.is_empty() || !self.held_msgs.is_empty()
    }

    /// Everything still held, all at once (the AOF is being turned off:
    /// nothing waits for it any more): the transactions' answers, the
    /// messages to other cores in their order, and the connections whose
    /// replies waited. [`CoreAof::released`] lets go only what the
    /// effective offset covers, which a dependency on another core or an
    /// unsettled transaction can keep below what is on disk: those were
    /// dropped with the log before 2026-12-07 (a client that waits for
    /// its reply, or another core's pipeline waiting for its answer, hung).
    pub fn drain_all(&mut self, msgs: &mut Vec<(usize, Msg)>, conns: &mut Vec<Key>) {
        msgs.extend(self.closing.drain(..).map(|(_, to, m)| (to, m)));
        msgs.extend(self.settling.drain(..).map(|(_, to, m)| (to, m)));
        msgs.extend(self.held_msgs.drain(..).map(|(_, to, m, ..)| (to, m)));
        conns.extend(self.held_flush.drain(..).map(|(_, key)| key));
    }

    /// The dependency annotation for the records this core writes next:
    /// the other cores' offsets (recorded ones, or fsynced ones under
    /// `always`, where nothing unsynced can have been revealed), when they
    /// changed since the last one written.
    /// Its text is then [`CoreAof::line`].
    pub fn deps(&mut self, aof: &Aof) -> bool {
        // While fsyncs pause (and until `resume_fsync` has them catch up),
        // replies reveal unsynced writes even under `always`.
        let always = aof.policy() == FSYNC_ALWAYS && !aof.pausing.load(Ordering::SeqCst);
        let src = if always { &aof.effective } else { &aof.logged };
        let n = src.len();
        if n < 2 {
            return false;
        }
        self.deps.resize(n, 0);
        let mut changed = false;
        for (c, a) in src.iter().enumerate() {
            if c == self.core {
                continue;
            }
            let v = a.load(Ordering::Acquire);
            // (Never lowered: a pipeline's dependency may lie ahead of
            // the other core's offset, see `depend`.)
            if v > self.deps[c] {
                self.deps[c] = v;
                changed = true;
            }
        }
        changed && self.deps_line()
    }

    /// The last dependency annotation made.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// Makes the dependency annotation naming every other core's offset
    /// in `deps` (in [`CoreAof::line`], no allocation: once per turn and
    /// per pipeline that arrives); false when none is set.
    fn deps_line(&mut self) -> bool {
        self.line.clear();
        self.line.extend_from_slice(b"#D:");
        let mut first = true;
        let mut line_start = 0;
        for (c, &v) in self.deps.iter().enumerate() {
            if c == self.core || v == 0 {
                continue;
            }
            // Loaders read an annotation line of at most 1023 bytes
            // (Redis's AOF_ANNOTATION_LINE_MAX_LEN): with many cores the
            // dependencies go on several lines.
            if !first && self.line.len() - line_start > DEPS_LINE_MAX - 48 {
                self.line.extend_from_slice(b"\r\n");
                line_start = self.line.len();
                self.line.extend_from_slice(b"#D:");
                first = true;
            }
            if !first {
                self.line.push(b',');
            }
            first = false;
            engine::writelog::push_decimal(&mut self.line, c as u64);
            self.line.push(b'=');
            engine::writelog::push_decimal(&mut self.line, v);
        }
        !first
    }

    /// What to submit now: the next write when none is in flight (under
    /// `always`: and no fsync either, the write then durable by itself,
    /// `RWF_DSYNC`), and under `always` an fsync once written data is not
    /// covered (unless fsyncs are paused: `no-appendfsync-on-rewrite`).
    ///
    /// Under `everysec` and `no` replies do not wait for the write
    /// ([`Aof::lags`]), and the records wait until the first of them is
    /// [`LAG_MS`] old (a sleeping core wakes then: [`CoreAof::due_ms`])
    /// or they make [`LAG_BYTES`] (or a rewrite switches files, the cron
    /// runs, the server stops: [`CoreAof::flush`]): each write is a trip
    /// to io_uring's worker, paid once per turn when replies waited for
    /// it.
    pub fn submit(&mut self, aof: &Aof, out: &mut Vec<Submit>) {
        let due = !aof.lags()
            || self.now_ms - self.queued_ms >= LAG_MS
            || self.queue.len() >= LAG_BYTES
            || !self.held_msgs.is_empty()
            || !self.closing.is_empty()
            || !self.settling.is_empty();
        self.submit_if(due, aof, out);
    }

    /// Like [`CoreAof::submit`], with the records written now whatever
    /// their age.
    pub fn flush(&mut self, aof: &Aof, out: &mut Vec<Submit>) {
        self.submit_if(true, aof, out);
    }

    /// When the records that wait for their write are due (the turn's
    /// clock), if any wait.
    pub fn due_ms(&self, aof: &Aof) -> Option<i64> {
        (aof.lags() && !self.write_busy && !self.queue.is_empty() && !self.failed)
            .then_some(self.queued_ms + LAG_MS)
    }

    fn submit_if(&mut self, due: bool, aof: &Aof, out: &mut Vec<Submit>) {
        if self.failed {
            return;
        }
        if let Some((fd, at)) = self.rotating {
            if !self.write_busy && self.queue.is_empty() && self.written >= at {
                // The zeros past the records go before the last fsync.
                if self.cut_zeros(aof, out) {
                    return;
                }
                if self.synced < at {
                    if self.fsync_busy.is_none() {
                        self.fsync_busy = Some(self.written);
                        out.push(Submit::Fsync { fd: self.fd });
                    }
                    return;
                }
                if self.fsync_busy.is_some() {
                    return;
                }
                // SAFETY: nothing is in flight on the old file any more.
                unsafe { libc::close(self.fd) };
                self.fd = fd;
                self.direct.switch();
                self.file_len = 0;
                self.zeroed = 0;
                self.zero_off = false;
                self.rotating = None;
                std::mem::swap(&mut self.queue, &mut self.after);
                aof.rotated[self.core].store(at + 1, Ordering::SeqCst);
            }
        }
        let sync = aof.policy() == FSYNC_ALWAYS && !aof.fsync_paused();
        if sync {
            self.prepare_zeros(out);
        }
        if sync && self.fsync_busy.is_some() {
            // Under `always` the records wait for the fsync in flight and
            // then go in one durable write: a write now
            // would need an fsync of its own anyway, and each write is a
            // trip to io_uring's worker (measured: 1 shard, -P 1, CPU per
            // SET 19 -> 14 us; 2 shards 33 -> 30 us).
            return;
        }
        if sync && !self.write_busy && self.written > self.synced && !self.queue.is_empty() {
            // Bytes written unsynced (fsyncs were paused, or the policy
            // was not `always`): a durable write syncs its own range only,
            // so an fsync covers them first and the records wait for it.
            self.fsync_busy = Some(self.written);
            out.push(Submit::Fsync { fd: self.fd });
            return;
        }
        // Records never go where a zero write in flight may land after
        // them (it started past every record then).
        // Nor while the zeros past them are being cut: the cut, run by a
        // worker, could land after the write and take its records.
        let clear = !self.cutting
            && self
                .zeroing
                .is_none_or(|at| self.file_len + self.queue.len() as u64 <= at);
        if !self.write_busy && !self.queue.is_empty() && (due || self.rotating.is_some()) && clear {
            std::mem::swap(&mut self.inflight, &mut self.queue);
            self.queue.clear();
            self.inflight_done = 0;
            self.write_busy = true;
            self.inflight_sync = sync;
            if sync {
                // (No fsync is in flight: see above.) Group commit in one
                // entry, a write with `RWF_DSYNC`: one trip to io_uring's
                // worker, where a write linked to an fsync made two, each
                // through this core's turn (with DEFER_TASKRUN the link's
                // next entry is queued from the submitter's task work),
                // and its sync covers its own range only, not the zeros
                // written ahead meanwhile.
                self.fsync_busy = Some(self.written + self.inflight.len() as u64);
            }
            let direct = self.direct_entry();
            out.push(direct.unwrap_or_else(|| self.write_entry()));
        }
        if aof.policy() == FSYNC_ALWAYS
            && !aof.fsync_paused()
            && self.fsync_busy.is_none()
            && self.written > self.synced
        {
            self.fsync_busy = Some(self.written);
            out.push(Submit::Fsync { fd: self.fd });
        }
    }

    /// Under `always`: writes the next [`ZERO_CHUNK`] of zeros once fewer
    /// than [`ZERO_AHEAD`] bytes of them lie past the records written,
    /// in flight and waiting.
    fn prepare_zeros(&mut self, out: &mut Vec<Submit>) {
        if self.zeroing.is_some()
            || self.zero_off
            || self.leaving
            || self.cutting
            || self.rotating.is_some()
        {
            return;
        }
        let in_flight = if self.write_busy {
            self.inflight.len() - self.inflight_done
        } else {
            0
        };
        let end = self.file_len + (in_flight + self.queue.len()) as u64;
        if self.zeroed >= end + ZERO_AHEAD {
            return;
        }
        // Through the direct descriptor where there is one, from a block
        // boundary: the blocks are then allocated and written, and no
        // page of them is cached, as direct commits over them need.
        let (fd, at) = match self.direct.fd(self.fd, self.file_len) {
            Some(d) => (d, super::direct::align_up(self.zeroed.max(end))),
            None => (self.fd, self.zeroed.max(end)),
        };
        self.zeroing = Some(at);
        out.push(Submit::Zero {
            fd,
            ptr: zeros().as_ptr(),
            len: ZERO_CHUNK as u32,
            at,
        });
    }

    /// The zero write completed with `res`.
    pub fn zeroed(&mut self, res: i32, aof: &Aof, out: &mut Vec<Submit>) {
        if let Some(at) = self.zeroing.take() {
            if res > 0 {
                self.zeroed = self.zeroed.max(at + res as u64);
            }
            // A short one (the disk is full) is not retried: the records
            // are written past the end as before.
            self.zero_off |= res != ZERO_CHUNK as i32;
            self.publish_zeros(aof);
        }
        self.submit(aof, out);
    }

    /// Cuts the zeros past the records before the file is left (its last
    /// fsync then covers the cut); true while that waits.
    fn cut_zeros(&mut self, aof: &Aof, out: &mut Vec<Submit>) -> bool {
        if self.zeroing.is_some() || self.cutting {
            return true;
        }
        if self.zeroed <= self.file_len {
            return false;
        }
        self.cutting = true;
        out.push(Submit::Truncate {
            fd: self.fd,
            len: self.file_len,
        });
        self.publish_zeros(aof);
        true
    }

    /// The cut completed. One that failed leaves zeros past the records,
    /// which loading skips.
    pub fn cut(&mut self, aof: &Aof, out: &mut Vec<Submit>) {
        self.cutting = false;
        self.zeroed = self.file_len;
        self.publish_zeros(aof);
        self.submit(aof, out);
    }

    /// Publishes how many zeros lie past the records (INFO's file sizes
    /// and the automatic rewrite count records only).
    fn publish_zeros(&self, aof: &Aof) {
        let zeros = self.zeroed.saturating_sub(self.file_len);
        aof.zero_tail[self.core].store(zeros, Ordering::Relaxed);
    }

    /// The write of the commit staged in `inflight` as a direct write of
    /// whole blocks, when the file allows.
    fn direct_entry(&mut self) -> Option<Submit> {
        let fd = self.direct.fd(self.fd, self.file_len)?;
        let (within, max) = if self.inflight_sync {
            (self.zeroed, super::direct::DIRECT_MAX)
        } else {
            (u64::MAX, LAG_DIRECT_MAX)
        };
        let (at, len, take) = self.direct.stage(
            &self.inflight[self.inflight_done..],
            self.file_len,
            within,
            max,
        )?;
        self.inflight_direct = Some((self.direct.head(), take));
        Some(Submit::Write {
            fd,
            ptr: self.direct.ptr(),
            len: len as u32,
            at,
            sync: self.inflight_sync,
            direct: true,
        })
    }

    fn write_entry(&self) -> Submit {
        let rest = &self.inflight[self.inflight_done..];
        Submit::Write {
            fd: self.fd,
            ptr: rest.as_ptr(),
            len: rest.len().min(1 << 30) as u32,
            at: self.file_len,
            sync: self.inflight_sync,
            direct: false,
        }
    }

    /// A write completed with `res`; may ask for the rest of a short one.
    pub fn wrote(&mut self, res: i32, aof: &Aof, out: &mut Vec<Submit>) {
        let direct = self.inflight_direct.take();
        // (Other errors, a full disk say, fail as a buffered write would,
        // and the cron's retry goes direct again.)
        let refused = -res == libc::EINVAL || -res == libc::EOPNOTSUPP;
        if refused && direct.is_some() {
            // The file refuses direct writes after all: buffered from now.
            crate::log::warning(format_args!(
                "AOF direct write failed (core {}, at {}, len {}): {}",
                self.core,
                self.file_len,
                self.inflight.len(),
                std::io::Error::from_raw_os_error(-res)
            ));
            self.direct.disable();
            out.push(self.write_entry());
            return;
        }
        if res < 0 {
            self.write_retry = true;
            self.fail(res, aof, false);
            return;
        }
        let n = match direct {
            Some((head, take)) => {
                // The block's zeros past the records are zeros past the
                // file's records too, cut as those ahead are.
                let start = super::direct::align_down(self.file_len);
                self.zeroed = self.zeroed.max(start + res as u64);
                (res as usize).saturating_sub(head).min(take)
            }
            None => res as usize,
        };
        let done = self.inflight_done;
        self.direct
            .wrote(&self.inflight[done..done + n], self.file_len + n as u64);
        self.inflight_done += n;
        self.file_len += n as u64;
        self.written += n as u64;
        aof.written[self.core].store(self.written, Ordering::Release);
        self.publish_zeros(aof);
        if self.inflight_done < self.inflight.len() {
            if n == 0 {
                self.write_retry = true;
                self.fail(-libc::ENOSPC, aof, false);
                return;
            }
            let next = self.direct_entry();
            out.push(next.unwrap_or_else(|| self.write_entry()));
            return;
        }
        self.write_busy = false;
        self.inflight.clear();
        if !self.fsync_failed {
            self.recovered(aof);
        }
        if std::mem::take(&mut self.inflight_sync) {
            // Its `RWF_DSYNC` synced it: the fsync it stands for is done.
            if let Some(covered) = self.fsync_busy.take() {
                self.synced_to(covered, self.now_ms, aof);
            }
        }
        self.refresh(aof);
        self.submit(aof, out);
    }

    /// An fsync completed with `res`.
    pub fn fsynced(&mut self, res: i32, now_ms: i64, aof: &Aof, out: &mut Vec<Submit>) {
        let Some(covered) = self.fsync_busy.take() else {
            return;
        };
        if res < 0 {
            self.fsync_failed = true;
            self.fail(res, aof, true);
            return;
        }
        if std::mem::take(&mut self.fsync_failed) {
            self.recovered(aof);
        }
        self.synced_to(covered, now_ms, aof);
        self.refresh(aof);
        self.submit(aof, out);
    }

    fn synced_to(&mut self, covered: u64, now_ms: i64, aof: &Aof) {
        self.last_fsync_ms = now_ms;
        self.synced = self.synced.max(covered);
        aof.synced[self.core].store(self.synced, Ordering::Release);
    }

    /// The `everysec` fsync and the retry after an error, once per cron
    /// (which also writes the records waiting, see [`CoreAof::submit`]).
    pub fn cron(&mut self, now_ms: i64, aof: &Aof, out: &mut Vec<Submit>) {
        self.flush(aof, out);
        if aof.force_sync.load(Ordering::Relaxed)
            && !self.failed
            && self.fsync_busy.is_none()
            && self.written > self.synced
        {
            self.fsync_busy = Some(self.written);
            out.push(Submit::Fsync { fd: self.fd });
            return;
        }
        if self.failed {
            // Retry the failed write or fsync (Redis retries every second
            // too). A write still in flight when an fsync failed is not
            // sent again: its completion goes on as usual.
            self.failed = false;
            self.refresh(aof);
            if std::mem::take(&mut self.write_retry) {
                let direct = self.direct_entry();
                out.push(direct.unwrap_or_else(|| self.write_entry()));
            } else if !self.write_busy {
                self.submit(aof, out);
            }
            if self.fsync_failed && self.fsync_busy.is_none() {
                self.fsync_busy = Some(self.written);
                out.push(Submit::Fsync { fd: self.fd });
            }
            return;
        }
        if aof.policy() == FSYNC_EVERYSEC
            && !aof.fsync_paused()
            && self.fsync_busy.is_none()
            && self.written > self.synced
            && now_ms - self.last_fsync_ms >= 1000
        {
            self.fsync_busy = Some(self.written);
            out.push(Submit::Fsync { fd: self.fd });
        }
    }

    /// At shutdown: writes what is left and fsyncs it, whatever the policy.
    pub fn finish(&mut self, aof: &Aof, out: &mut Vec<Submit>) {
        self.leaving = true;
        self.flush(aof, out);
        if !self.failed && !self.write_busy && self.queue.is_empty() && self.cut_zeros(aof, out) {
            return;
        }
        if !self.failed && self.fsync_busy.is_none() && self.written > self.synced {
            self.fsync_busy = Some(self.written);
            out.push(Submit::Fsync { fd: self.fd });
        }
    }

    /// True when nothing is queued or in flight and all is on disk (or
    /// the disk refuses it).
    pub fn idle(&self) -> bool {
        self.failed
            || (!self.write_busy
                && self.fsync_busy.is_none()
                && self.queue.is_empty()
                && self.after.is_empty()
                && self.rotating.is_none()
                && self.zeroing.is_none()
                && !self.cutting
                && self.zeroed <= self.file_len
                && self.written == self.synced)
    }

    /// Messages and connections whose wait is over: `synced` covers them.
    pub fn released(&mut self, aof: &Aof, msgs: &mut Vec<(usize, Msg)>, conns: &mut Vec<Key>) {
        let (written, effective) = (self.durable_base(aof), self.durable_msgs(aof));
        take_due(&mut self.closing, written, msgs);
        take_due(&mut self.settling, effective, msgs);
        // A reserved part's answer goes at once under `always`, wherever
        // it waits (see `hold_part_answer`).
        if !aof.lags() && self.held_msgs.iter().any(|h| h.4) {
            let mut i = 0;
            while i < self.held_msgs.len() {
                match self.held_msgs[i].4 {
                    true => {
                        if let Some((_, to, m, ..)) = self.held_msgs.remove(i) {
                            msgs.push((to, m));
                        }
                    }
                    false => i += 1,
                }
            }
        }
        // The rest in order; a message sent under a lock waits only
        // behind those sent so (see `hold_msg`).
        let (mut held, mut held_locked) = (false, false);
        let mut i = 0;
        while i < self.held_msgs.len() {
            let (need, locked) = (self.held_msgs[i].0, self.held_msgs[i].3);
            let waits = if locked { held_locked } else { held };
            if !waits && need <= self.durable_msgs_in(locked, aof) {
                if let Some((_, to, m, ..)) = self.held_msgs.remove(i) {
                    msgs.push((to, m));
                }
                continue;
            }
            held = true;
            held_locked |= locked;
            if held_locked {
                break;
            }
            i += 1;
        }
        let durable = self.durable(aof);
        while self.held_flush.front().is_some_and(|h| h.0 <= durable) {
            if let Some((_, k)) = self.held_flush.pop_front() {
                conns.push(k);
            }
        }
    }

    fn fail(&mut self, res: i32, aof: &Aof, fsync: bool) {
        let e = std::io::Error::from_raw_os_error(-res);
        if aof.policy() == FSYNC_ALWAYS {
            // As Redis: under `always` an acknowledged write could be
            // missing from the file; it stops rather than go on.
            if fsync {
                crate::log::warning(format_args!(
                    "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...",
                    crate::log::io_error_text(&e)
                ));
            } else {
                crate::log::warning(format_args!(
                    "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
                ));
            }
            std::process::exit(1);
        }
        if let Ok(mut t) = aof.write_error.lock() {
            *t = crate::log::io_error_text(&e);
        }
        self.failed = true;
        self.refresh(aof);
        aof.write_failed[self.core].store(true, Ordering::SeqCst);
        if aof.write_ok.swap(false, Ordering::SeqCst) {
            crate::log::warning(format_args!(
                "Error writing to the AOF file: {}",
                crate::log::io_error_text(&e)
            ));
        }
    }

    fn recovered(&mut self, aof: &Aof) {
        if !aof.write_failed[self.core].swap(false, Ordering::SeqCst) {
            return;
        }
        let others = aof.write_failed.iter().any(|f| f.load(Ordering::SeqCst));
        if !others && !aof.write_ok.swap(true, Ordering::SeqCst) {
            crate::log::warning(format_args!(
                "AOF write error looks solved, Redis can write again."
            ));
        }
    }
}

/// [`CoreAof::joint`]'s last result and what it read: this core's base,
/// entries below it, starting offset, entries dropped and transactions
/// settled; the cores' effective offsets and view counts (this core's
/// offset as 0). Valid when every other core's view was read.
#[derive(Default)]
struct JointMemo {
    valid: bool,
    own: [u64; 5],
    seen: Vec<u64>,
    result: u64,
    /// The next look's reading, kept between looks.
    scratch: Vec<u64>,
}

/// Whether an entry of a pending list is met, core `d` being effective
/// up to `x` when `effective(d, x)`.
fn met_by(p: &(u64, usize, u64), effective: impl Fn(usize, u64) -> bool) -> bool {
    match p.1 {
        SETTLED => true,
        UNSETTLED => false,
        d => effective(d, p.2),
    }
}

/// Where the first entry of `pending` not met by the cores' offsets
/// `offs` starts (`u64::MAX`: all are met).
fn first_unmet<'a>(pending: impl IntoIterator<Item = &'a (u64, usize, u64)>, offs: &[u64]) -> u64 {
    pending
        .into_iter()
        .find(|p| !met_by(p, |d, x| offs.get(d).is_some_and(|&o| o >= x)))
        .map_or(u64::MAX, |p| p.0)
}

/// Moves the answers of `held` whose offset is at most `upto` to `msgs`.
fn take_due(held: &mut Vec<(u64, usize, Msg)>, upto: u64, msgs: &mut Vec<(usize, Msg)>) {
    let mut i = 0;
    while i < held.len() {
        if held[i].0 <= upto {
            let (_, to, m) = held.swap_remove(i);
            msgs.push((to, m));
        } else {
            i += 1;
        }
    }
}

impl Drop for CoreAof {
    fn drop(&mut self) {
        // SAFETY: the writer owns its file descriptors; the loop drops it
        // only after nothing is in flight.
        unsafe { libc::close(self.fd) };
        if let Some((fd, _)) = self.rotating {
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::writelog::WriteLog;

    /// Two cores' AOF under `policy`, core `core`'s writer (no file) and
    /// an empty write log.
    fn writer(policy: u8, core: usize) -> (Aof, CoreAof, engine::writelog::WriteLog) {
        let aof = Aof::new(2, std::env::temp_dir(), "t".into());
        aof.policy.store(policy, Ordering::SeqCst);
        let log = engine::writelog::WriteLog::new(0);
        (aof, CoreAof::new(core, -1, 0, 0), log)
    }

    /// Two cores' AOF under `always`, both cores' writers and their logs.
    fn two_cores() -> (Aof, [CoreAof; 2], [WriteLog; 2]) {
        let aof = Aof::new(2, std::env::temp_dir(), "t".into());
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        let cores = [CoreAof::new(0, -1, 0, 0), CoreAof::new(1, -1, 0, 0)];
        (aof, cores, [WriteLog::new(0), WriteLog::new(0)])
    }

    /// Records a SET of `key` in `log` and hands it to writer `c`.
    fn record(c: &mut CoreAof, log: &mut WriteLog, key: &[u8], aof: &Aof) {
        log.record(0, [&b"SET"[..], key, b"1"].into_iter());
        c.take(log, 0, aof);
    }

    /// Runs the writer's submissions as if the disk took them whole.
    fn complete(a: &mut CoreAof, aof: &Aof) {
        let mut out = Vec::new();
        a.flush(aof, &mut out);
        drain(a, aof, out);
    }

    /// Runs `out` and what follows from it as if the disk took it whole.
    fn drain(a: &mut CoreAof, aof: &Aof, mut out: Vec<Submit>) {
        while !out.is_empty() {
            for s in std::mem::take(&mut out) {
                match s {
                    Submit::Write { len, .. } => a.wrote(len as i32, aof, &mut out),
                    Submit::Fsync { .. } => a.fsynced(0, 0, aof, &mut out),
                    Submit::Zero { len, .. } => a.zeroed(len as i32, aof, &mut out),
                    Submit::Truncate { .. } => a.cut(aof, &mut out),
                }
            }
        }
    }

    /// Runs `out` and what follows from it on the real files it names.
    /// Returns how many of the writes were direct.
    fn run_on_disk(a: &mut CoreAof, aof: &Aof, mut out: Vec<Submit>) -> usize {
        let err = || {
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        let mut direct_writes = 0;
        while !out.is_empty() {
            for s in std::mem::take(&mut out) {
                // SAFETY: the writer's own descriptors and buffers, which
                // stay valid until it hears of the completion.
                unsafe {
                    match s {
                        Submit::Write {
                            fd,
                            ptr,
                            len,
                            at,
                            sync,
                            direct,
                        } => {
                            direct_writes += direct as usize;
                            let n = libc::pwrite(fd, ptr.cast(), len as usize, at as libc::off_t);
                            let res = if n < 0 { err() } else { n as i32 };
                            if sync && n >= 0 {
                                libc::fdatasync(fd);
                            }
                            a.wrote(res, aof, &mut out);
                        }
                        Submit::Fsync { fd } => {
                            let r = if libc::fdatasync(fd) < 0 { err() } else { 0 };
                            a.fsynced(r, 0, aof, &mut out);
                        }
                        Submit::Zero {
                            fd, ptr, len, at, ..
                        } => {
                            let n = libc::pwrite(fd, ptr.cast(), len as usize, at as libc::off_t);
                            a.zeroed(if n < 0 { err() } else { n as i32 }, aof, &mut out);
                        }
                        Submit::Truncate { fd, len } => {
                            libc::ftruncate(fd, len as libc::off_t);
                            a.cut(aof, &mut out);
                        }
                    }
                }
            }
        }
        direct_writes
    }

    /// A writer under `everysec` on a scratch file named after `name`,
    /// with the log it takes from and a mirror of what it is given.
    fn everysec_on_disk(name: &str) -> (std::path::PathBuf, Aof, CoreAof, WriteLog, WriteLog) {
        use std::os::fd::IntoRawFd;
        let (path, file) = super::super::direct::tests::scratch_file(name);
        let aof = Aof::new(1, std::env::temp_dir(), "t".into());
        aof.policy.store(FSYNC_EVERYSEC, Ordering::SeqCst);
        let a = CoreAof::new(0, file.into_raw_fd(), 0, 0);
        (path, aof, a, WriteLog::new(0), WriteLog::new(0))
    }

    /// Finishes `a` as at shutdown (the cut, then the fsync) and checks
    /// that the file at `path` holds exactly what `mirror` recorded.
    fn finished_holds_the_records(a: &mut CoreAof, aof: &Aof, path: &Path, mirror: &mut WriteLog) {
        for _ in 0..4 {
            let mut out = Vec::new();
            a.finish(aof, &mut out);
            run_on_disk(a, aof, out);
        }
        assert!(a.idle());
        let mut want = Vec::new();
        mirror.take(&mut want);
        let got = std::fs::read(path).unwrap();
        let _ = std::fs::remove_file(path);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the file differs from the records");
    }

    #[test]
    fn everysec_writes_directly_in_parts_and_leaves_exactly_the_records() {
        let (path, aof, mut a, mut log, mut mirror) = everysec_on_disk("aof-direct");
        let value = vec![b'v'; 1000];
        let mut round = |a: &mut CoreAof, from: usize, to: usize| {
            for i in from..to {
                let key = format!("key:{i}");
                for l in [&mut log, &mut mirror] {
                    l.record(
                        0,
                        [&b"SET"[..], key.as_bytes(), &value[..i % 1000]].into_iter(),
                    );
                }
            }
            a.take(&mut log, 0, &aof);
            let mut out = Vec::new();
            a.flush(&aof, &mut out);
            run_on_disk(a, &aof, out)
        };
        // About 6 MB: more than one direct write takes (4 MiB). Then a few
        // records, which start in the block the others ended in.
        let first = round(&mut a, 0, 12000);
        let second = round(&mut a, 12000, 12003);
        let len = std::fs::metadata(&path).unwrap().len();
        if first + second > 0 {
            assert!(first >= 2, "{first} direct writes for 6 MB");
            assert_eq!(second, 1);
            // Whole blocks: zeros past the records until the writer leaves.
            assert!(len.is_multiple_of(super::super::direct::BLOCK as u64) && len > log.offset());
        } else {
            eprintln!("direct writes not available in {}", path.display());
        }
        finished_holds_the_records(&mut a, &aof, &path, &mut mirror);
    }

    #[test]
    fn a_direct_write_refused_for_want_of_space_is_retried_direct() {
        // A full disk fails a direct write as it fails a buffered one: the
        // cron's retry goes direct again (until 2026-12-07 any failure
        // turned direct writes off for the file until the next rewrite).
        let (path, aof, mut a, mut log, mut mirror) = everysec_on_disk("aof-enospc");
        for l in [&mut log, &mut mirror] {
            l.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        }
        a.take(&mut log, 0, &aof);
        let mut out = Vec::new();
        a.flush(&aof, &mut out);
        let Some(Submit::Write { direct: true, .. }) = out.pop() else {
            let _ = std::fs::remove_file(&path);
            eprintln!("direct writes not available in {}", path.display());
            return;
        };
        a.wrote(-libc::ENOSPC, &aof, &mut out);
        assert!(out.is_empty() && a.failed);
        a.cron(1000, &aof, &mut out);
        assert_eq!(run_on_disk(&mut a, &aof, out), 1);
        finished_holds_the_records(&mut a, &aof, &path, &mut mirror);
    }

    #[test]
    fn under_always_zeros_go_ahead_of_the_records_never_over_them_and_are_cut_at_the_end() {
        let (aof, mut a, mut log) = writer(FSYNC_ALWAYS, 0);
        record(&mut a, &mut log, b"a", &aof);
        let first = log.offset();
        let mut out = Vec::new();
        a.flush(&aof, &mut out);
        // The zeros start past the records submitted with them.
        let zero_at = out.iter().find_map(|s| match s {
            Submit::Zero { at, len, .. } => Some((*at, *len)),
            _ => None,
        });
        assert_eq!(zero_at, Some((first, ZERO_CHUNK as u32)));
        a.wrote(first as i32, &aof, &mut out);
        a.fsynced(0, 0, &aof, &mut out);
        // More records while the zero write is in flight: they would land
        // where it may write after them, so they wait for it.
        out.clear();
        record(&mut a, &mut log, b"b", &aof);
        a.flush(&aof, &mut out);
        assert!(
            !out.iter().any(|s| matches!(s, Submit::Write { .. })),
            "a write under the zeros in flight"
        );
        a.zeroed(ZERO_CHUNK as i32, &aof, &mut out);
        let w = out.iter().find_map(|s| match s {
            Submit::Write { at, len, .. } => Some((*at, *len)),
            _ => None,
        });
        assert_eq!(w, Some((first, (log.offset() - first) as u32)));
        drain(&mut a, &aof, out);
        assert_eq!(
            aof.zero_tail[0].load(Ordering::Relaxed),
            first + ZERO_CHUNK as u64 - log.offset()
        );
        // Closing: the zeros are cut before the writer is idle.
        let mut out = Vec::new();
        a.finish(&aof, &mut out);
        assert!(!a.idle());
        assert!(out
            .iter()
            .any(|s| matches!(s, Submit::Truncate { len, .. } if *len == log.offset())));
        drain(&mut a, &aof, out);
        assert!(a.idle());
        assert_eq!(aof.zero_tail[0].load(Ordering::Relaxed), 0);
        // Under `everysec` no zeros are written.
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 0);
        record(&mut a, &mut log, b"a", &aof);
        let mut out = Vec::new();
        a.flush(&aof, &mut out);
        assert!(!out.iter().any(|s| matches!(s, Submit::Zero { .. })));
    }

    #[test]
    fn a_dependency_holds_replies_until_the_other_core_has_it_effective() {
        let (aof, mut a, mut log) = writer(FSYNC_ALWAYS, 1);
        log.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        a.take(&mut log, 0, &aof);
        complete(&mut a, &aof);
        let first = log.offset();
        assert_eq!(a.durable(&aof), first);
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), first);

        // Core 0's records up to 100 are not effective: what this core
        // records next depends on them, and says so in its log.
        a.depend(0, 100, &mut log, &aof);
        assert!(a.depends());
        log.record(0, [&b"SET"[..], b"b", b"2"].into_iter());
        let mut bytes = Vec::new();
        log.take(&mut bytes);
        assert!(bytes.starts_with(b"#D:0=100\r\n"), "{bytes:?}");
        a.append(&bytes, log.offset(), 0, &aof);
        complete(&mut a, &aof);
        // On disk, but what replies may reveal stops where it began.
        assert_eq!(a.synced, log.offset());
        assert_eq!(a.durable(&aof), first);
        assert!(!a.refresh(&aof));

        aof.effective[0].store(100, Ordering::SeqCst);
        assert!(a.refresh(&aof));
        assert_eq!(a.durable(&aof), log.offset());
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), log.offset());
        assert!(!a.depends());

        // A dependency already effective holds nothing.
        a.depend(0, 90, &mut log, &aof);
        assert!(!a.depends());
    }

    #[test]
    fn turning_off_lets_go_what_a_dependency_still_held_on_disk() {
        let (aof, mut a, mut log) = writer(FSYNC_ALWAYS, 1);
        a.depend(0, 100, &mut log, &aof);
        log.record(0, [&b"SET"[..], b"b", b"2"].into_iter());
        a.take(&mut log, 0, &aof);
        complete(&mut a, &aof);
        let end = log.offset();
        assert_eq!(a.synced, end, "on disk");
        // A reply and a message revealing the record wait for core 0.
        a.held_flush.push_back((end, Key { index: 7, gen: 1 }));
        let msg = Msg::Resp {
            id: 9,
            resp: crate::mesh::Response::Done,
        };
        assert!(a.hold_msg(Some(end), false, 0, msg).is_none());
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&aof, &mut msgs, &mut conns);
        assert!(msgs.is_empty() && conns.is_empty(), "still capped");
        a.drain_all(&mut msgs, &mut conns);
        assert_eq!(conns, vec![Key { index: 7, gen: 1 }]);
        assert!(matches!(msgs[..], [(0, Msg::Resp { id: 9, .. })]));
        assert!(!a.holds() && a.held_flush.is_empty());
    }

    #[test]
    fn a_chain_of_dependencies_between_two_cores_settles_in_one_look_of_each() {
        let (aof, [mut a, mut b], [mut la, mut lb]) = two_cores();
        let rec = |c: &mut CoreAof, l: &mut WriteLog, key: &[u8]| record(c, l, key, &aof);
        // A pipeline that goes back and forth between the cores, each part
        // depending on the one before it on the other core.
        rec(&mut a, &mut la, b"k0");
        let first_dep = la.offset();
        for i in 1..4u8 {
            b.depend(0, la.offset(), &mut lb, &aof);
            rec(&mut b, &mut lb, &[b'b', i]);
            a.depend(1, lb.offset(), &mut la, &aof);
            rec(&mut a, &mut la, &[b'a', i]);
        }
        // Core 1's parts are not on disk: core 0 reveals nothing past its
        // first dependency, whatever it knows of core 1's.
        complete(&mut a, &aof);
        b.refresh(&aof);
        assert_eq!(a.synced, la.offset());
        assert_eq!(a.durable(&aof), first_dep);
        // Core 1's on disk too: one look of each settles the whole chain
        // (looking only at each other's effective offsets, core 0 would
        // have moved one part per look of core 1's).
        complete(&mut b, &aof);
        assert_eq!(b.durable(&aof), lb.offset());
        a.refresh(&aof);
        assert_eq!(a.durable(&aof), la.offset());
        assert!(!a.depends());
        // (Core 1 drops its entries once it sees core 0's offset move.)
        b.refresh(&aof);
        assert!(!b.depends());
    }

    #[test]
    fn a_capped_core_looks_again_when_another_cores_offset_moves() {
        // Core 0 depends on core 1's records, which are on disk but wait
        // for core 2's. Core 0 looks (and keeps what it found), then core
        // 2's records reach the disk; core 1 has not looked since. Core
        // 0's next look must see the chain settled through core 1's view,
        // though nothing of its own changed.
        let aof = Aof::new(3, std::env::temp_dir(), "t".into());
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        let [mut a, mut b, mut c] = [0, 1, 2].map(|i| CoreAof::new(i, -1, 0, 0));
        let [mut la, mut lb, mut lc] = [0, 1, 2].map(|_| WriteLog::new(0));
        record(&mut c, &mut lc, b"c1", &aof);
        b.depend(2, lc.offset(), &mut lb, &aof);
        record(&mut b, &mut lb, b"b1", &aof);
        complete(&mut b, &aof);
        assert_eq!(b.durable(&aof), 0);
        record(&mut a, &mut la, b"a0", &aof);
        let a_at = la.offset();
        a.depend(1, lb.offset(), &mut la, &aof);
        record(&mut a, &mut la, b"a1", &aof);
        complete(&mut a, &aof);
        a.refresh(&aof);
        assert_eq!(a.durable(&aof), a_at);
        complete(&mut c, &aof);
        assert_eq!(aof.effective[2].load(Ordering::SeqCst), lc.offset());
        assert_eq!(
            aof.effective[1].load(Ordering::SeqCst),
            0,
            "core 1 has not looked"
        );
        a.refresh(&aof);
        assert_eq!(a.durable(&aof), la.offset());
    }

    #[test]
    fn a_view_caps_its_core_at_an_unmet_entry_below_its_base() {
        // Core 1's records are on disk past a dependency on core 0 that
        // nothing meets; core 0's later records depend on all of core 1's.
        // Core 0 must not find core 1 effective past that entry (its view
        // carries the entries below its base, not only the base).
        let (aof, [mut a, mut b], [mut la, mut lb]) = two_cores();
        let rec = |c: &mut CoreAof, l: &mut WriteLog, key: &[u8]| record(c, l, key, &aof);
        rec(&mut b, &mut lb, b"b1");
        let b_at = lb.offset();
        b.depend(0, 1 << 40, &mut lb, &aof);
        rec(&mut b, &mut lb, b"b2");
        complete(&mut b, &aof);
        assert_eq!(b.synced, lb.offset());
        assert_eq!(b.durable(&aof), b_at);

        rec(&mut a, &mut la, b"a1");
        let a_at = la.offset();
        a.depend(1, lb.offset(), &mut la, &aof);
        rec(&mut a, &mut la, b"a2");
        complete(&mut a, &aof);
        assert_eq!(a.synced, la.offset());
        assert_eq!(a.durable(&aof), a_at);
        // Entries added after the view was published start past its base
        // and change nothing.
        b.depend(0, 1 << 41, &mut lb, &aof);
        rec(&mut b, &mut lb, b"b3");
        a.refresh(&aof);
        assert_eq!(a.durable(&aof), a_at);
    }

    #[test]
    fn after_writes_fail_and_recover_a_dependency_holds_again() {
        // While writes fail under `everysec` a core reveals everything
        // (Redis's replies go out too); once they work again, what it
        // records after a dependency waits for it as before.
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 1);
        a.failed = true;
        a.refresh(&aof);
        assert_eq!(a.durable_msgs(&aof), u64::MAX);
        a.failed = false;
        a.depend(0, 100, &mut log, &aof);
        let at = log.offset();
        log.record(0, [&b"SET"[..], b"b", b"2"].into_iter());
        a.take(&mut log, 0, &aof);
        complete(&mut a, &aof);
        assert_eq!(a.durable_msgs(&aof), at);
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), at);
    }

    #[test]
    fn a_part_answer_keeps_its_order_under_everysec_and_goes_at_once_under_always() {
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 1);
        // Nothing held: at once.
        assert!(a.hold_part_answer(0, Msg::Wake, &aof).is_some());
        // Behind held messages (an invalidation, a message sent under a
        // lock) until they go.
        log.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        let need = a.gate_msg(log.offset(), false, &aof);
        assert!(need.is_some(), "not written yet");
        assert!(a.hold_msg(need, true, 0, Msg::Wake).is_none());
        assert!(a.hold_msg(need, false, 0, Msg::Wake).is_none());
        assert!(a.hold_part_answer(0, Msg::Wake, &aof).is_none());
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&aof, &mut msgs, &mut conns);
        assert!(msgs.is_empty(), "in order behind the others");
        // The policy turns to `always`: the answer goes, the others stay.
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!((msgs.len(), a.held_msgs.len()), (1, 2));
        assert!(a.hold_part_answer(0, Msg::Wake, &aof).is_some());
    }

    #[test]
    fn under_always_a_part_run_first_caps_the_offset_until_both_parts_are_synced() {
        // Core 1 ran a part under `everysec` at offset `start`; the
        // requester (core 0) has not logged its own yet. After a switch
        // to `always` core 1's records past `start` are not effective,
        // however far it fsyncs, until no part is unlogged and every
        // core has fsynced what it had recorded then.
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 1);
        aof.lag_parts.store(1, Ordering::SeqCst);
        log.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        let start = log.offset();
        a.ran_part(start);
        log.record(0, [&b"SET"[..], b"b", b"1"].into_iter());
        a.take(&mut log, 0, &aof);
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        complete(&mut a, &aof);
        assert_eq!(a.synced, log.offset());
        a.refresh(&aof);
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), start);
        // The requester's part is logged (and taken): 0 to go. Core 0 had
        // recorded 50 bytes then, and has not fsynced them.
        aof.logged[0].store(50, Ordering::SeqCst);
        aof.lag_parts.store(0, Ordering::SeqCst);
        a.refresh(&aof);
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), start);
        aof.synced[0].store(50, Ordering::SeqCst);
        a.refresh(&aof);
        assert_eq!(aof.effective[1].load(Ordering::SeqCst), log.offset());
        assert!(a.open_parts.is_none());
    }

    #[test]
    fn a_message_sent_under_a_lock_does_not_wait_behind_one_sent_before() {
        // A message sent before the lock waits for a dependency on another
        // core (its part of the same transaction, say); the lock's grant,
        // sent next, goes once written, and one sent after it under the
        // lock keeps its order behind it; a message sent outside a lock
        // keeps waiting behind the first.
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 1);
        a.depend(0, 100, &mut log, &aof);
        log.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        a.take(&mut log, 0, &aof);
        complete(&mut a, &aof);
        let at = log.offset();
        let before = a.gate_msg(at, false, &aof);
        assert!(before.is_some(), "capped by the dependency");
        assert!(a.hold_msg(before, false, 0, Msg::Wake).is_none());
        log.record(0, [&b"SET"[..], b"b", b"1"].into_iter());
        let locked_at = log.offset();
        let need = a.gate_msg(locked_at, true, &aof);
        assert!(need.is_some(), "not written yet");
        assert!(a.hold_msg(need, true, 0, Msg::Wake).is_none());
        assert!(a.hold_msg(None, true, 0, Msg::Wake).is_none(), "behind it");
        assert!(a.hold_msg(None, false, 0, Msg::Wake).is_none());
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&aof, &mut msgs, &mut conns);
        assert!(msgs.is_empty(), "nothing written yet");
        a.take(&mut log, 0, &aof);
        complete(&mut a, &aof);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 2, "both messages sent under the lock");
        assert_eq!(a.held_msgs.len(), 2);
        // Sent under the lock with nothing of the kind held: at once.
        assert!(a.hold_msg(None, true, 0, Msg::Wake).is_some());
        aof.effective[0].store(100, Ordering::SeqCst);
        a.refresh(&aof);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 4);
        assert!(a.held_msgs.is_empty());
    }

    #[test]
    fn a_transaction_part_reveals_nothing_after_its_start_until_settled() {
        let (aof, mut a, mut log) = writer(FSYNC_ALWAYS, 1);
        let mut record = |a: &mut CoreAof, key: &[u8]| {
            log.record(0, [&b"SET"[..], key, b"1"].into_iter());
            a.take(&mut log, 0, &aof);
            complete(a, &aof);
            log.offset()
        };
        let before = record(&mut a, b"a");
        // The lock: the part starts here.
        a.hold_until_settled(7, before);
        let end = record(&mut a, b"in-part");
        let (unlock, settle) = (Msg::Wake, Msg::Wake);
        a.close_part(end, 0, unlock);
        // Another client's write after the part, on disk.
        let after = record(&mut a, b"later");
        assert_eq!(a.synced, after);
        // Nothing from the part's start on is effective, and a message
        // sent outside the lock waits; the unlock's answer goes (written).
        assert_eq!(a.durable(&aof), before);
        assert_eq!(a.gate_msg(after, false, &aof), Some(after));
        assert_eq!(a.gate_msg(end, true, &aof), None);
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 1, "the unlock's answer");
        a.answer_when_effective(after, 0, settle);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 1, "the settled answer waits");
        // Settled: all is effective, and the answer goes.
        a.settled(7);
        assert!(a.refresh(&aof));
        assert_eq!(a.durable(&aof), after);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 2);
        assert!(!a.depends());
    }

    #[test]
    fn under_everysec_records_wait_for_their_write_until_old_big_or_flushed() {
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 0);
        let writes = |a: &mut CoreAof| {
            let mut out = Vec::new();
            a.submit(&aof, &mut out);
            out.iter()
                .filter(|s| matches!(s, Submit::Write { .. }))
                .count()
        };
        log.record(0, [&b"SET"[..], b"a", b"1"].into_iter());
        a.take(&mut log, 10, &aof);
        // Replies do not wait for it.
        assert_eq!(a.durable(&aof), u64::MAX);
        assert_eq!(writes(&mut a), 0);
        assert_eq!(a.due_ms(&aof), Some(10 + LAG_MS));
        log.record(0, [&b"SET"[..], b"b", b"2"].into_iter());
        a.take(&mut log, 11, &aof);
        assert_eq!(writes(&mut a), 0, "the first record is 1 ms old");
        a.take(&mut log, 10 + LAG_MS, &aof);
        assert_eq!(writes(&mut a), 1, "the first record is LAG_MS old");
        assert_eq!(a.due_ms(&aof), None);

        // Enough bytes make the next write due at once (once the one in
        // flight is done), and a flush writes whatever waits.
        let big = vec![b'x'; LAG_BYTES];
        log.record(0, [&b"SET"[..], b"c", &big[..]].into_iter());
        a.take(&mut log, 20, &aof);
        assert_eq!(writes(&mut a), 0, "a write is in flight");
        let mut out = Vec::new();
        a.wrote(a.inflight.len() as i32, &aof, &mut out);
        assert_eq!(out.len(), 1, "the big records go at once: {}", out.len());
        out.clear();
        a.wrote(a.inflight.len() as i32, &aof, &mut out);
        assert!(out.is_empty());
        log.record(0, [&b"SET"[..], b"d", b"4"].into_iter());
        a.take(&mut log, 30, &aof);
        assert_eq!(writes(&mut a), 0);
        complete(&mut a, &aof);
        assert_eq!(a.written, log.offset());

        // A message to another core (not a pipeline's) waits for the
        // write of what it may reveal, which is then due at once.
        log.record(0, [&b"SET"[..], b"m", b"1"].into_iter());
        a.take(&mut log, 40, &aof);
        assert_eq!(a.gate(log.offset(), &aof), None);
        let need = a.gate_msg(log.offset(), false, &aof);
        assert_eq!(need, Some(log.offset()));
        assert!(a.hold_msg(need, false, 1, Msg::Wake).is_none());
        let mut out = Vec::new();
        a.submit(&aof, &mut out);
        assert_eq!(out.len(), 1, "a held message makes the write due");
        let (mut msgs, mut conns) = (Vec::new(), Vec::new());
        a.released(&aof, &mut msgs, &mut conns);
        assert!(msgs.is_empty(), "released before its write");
        out.clear();
        a.wrote(a.inflight.len() as i32, &aof, &mut out);
        a.released(&aof, &mut msgs, &mut conns);
        assert_eq!(msgs.len(), 1);

        // A dependency on another core's part is written down and caps
        // this core's effective offset (what orders records across
        // cores), without holding any reply.
        a.depend(1, 500, &mut log, &aof);
        assert!(a.depends());
        assert_eq!(a.durable(&aof), u64::MAX);
        log.record(0, [&b"SET"[..], b"e", b"5"].into_iter());
        let mut bytes = Vec::new();
        log.take(&mut bytes);
        assert!(bytes.starts_with(b"#D:1=500\r\n"), "{bytes:?}");

        // Under `always` every record is written (with its fsync) at once,
        // once an fsync covers what was written unsynced before.
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        a.append(&bytes, log.offset(), 30, &aof);
        assert_eq!(writes(&mut a), 0);
        let mut out = Vec::new();
        a.fsynced(0, 30, &aof, &mut out);
        assert_eq!(writes_in(&out), 1);
    }

    /// With many cores the dependency annotation goes on several lines,
    /// each short enough for loaders (1023 bytes), naming every core.
    #[test]
    fn dependencies_on_many_cores_go_on_lines_loaders_read() {
        let cores = 300;
        let aof = Aof::new(cores, std::env::temp_dir(), "t".into());
        for (c, l) in aof.logged.iter().enumerate() {
            l.store(10_000_000_000_000_000 + c as u64, Ordering::SeqCst);
        }
        let mut a = CoreAof::new(7, -1, 0, 0);
        assert!(a.deps(&aof));
        let text = String::from_utf8(a.line().to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines.len() > 1);
        let mut named = Vec::new();
        for l in &lines {
            assert!(l.len() + 2 <= 1023, "{} bytes", l.len());
            named.extend(engine::aof::scan::parse_deps(l.as_bytes()).expect(l));
        }
        let want: Vec<_> = (0..cores as u64)
            .filter(|&c| c != 7)
            .map(|c| (c as usize, 10_000_000_000_000_000 + c))
            .collect();
        assert_eq!(named, want);
    }

    /// The manifest names, with a core's incr file, the transactions
    /// whose part there is in the base, and reads them back.
    #[test]
    fn the_manifest_carries_the_transactions_a_switch_fell_between() {
        let entry = |name: &str, core: Option<usize>, based: Vec<String>| FileEntry {
            name: name.into(),
            seq: 3,
            kind: if core.is_some() { 'i' } else { 'b' },
            core,
            offset: 0,
            based,
        };
        let files = Files {
            seq: 3,
            cores: 2,
            list: vec![
                entry("a.3.base.rdb", None, Vec::new()),
                entry("a.3.c0.incr.aof", Some(0), Vec::new()),
                entry(
                    "a.3.c1.incr.aof",
                    Some(1),
                    vec!["9.0.4".into(), "9.0.5".into()],
                ),
            ],
        };
        let text = files.manifest();
        let m = engine::aof::manifest::Manifest::parse(&text).unwrap();
        assert!(m.files[1].based.is_empty());
        assert_eq!(m.files[2].based, vec!["9.0.4", "9.0.5"]);
    }

    fn writes_in(out: &[Submit]) -> usize {
        out.iter()
            .filter(|s| matches!(s, Submit::Write { .. }))
            .count()
    }

    fn fsyncs_in(out: &[Submit]) -> usize {
        out.iter()
            .filter(|s| matches!(s, Submit::Fsync { .. }))
            .count()
    }

    /// Records written while the zeros past the file's records are being
    /// cut (leaving the file: shutdown, `appendonly no`) wait for the cut:
    /// run by a worker, it could land after their write and take them.
    #[test]
    fn records_wait_while_the_zeros_past_them_are_cut() {
        let (aof, mut a, mut log) = writer(FSYNC_ALWAYS, 0);
        record(&mut a, &mut log, b"a", &aof);
        complete(&mut a, &aof);
        assert!(a.zeroed > a.file_len, "zeros lie ahead under always");
        let mut out = Vec::new();
        a.finish(&aof, &mut out);
        assert!(
            matches!(out[..], [Submit::Truncate { .. }]),
            "the cut goes first"
        );
        record(&mut a, &mut log, b"b", &aof);
        out.clear();
        a.submit(&aof, &mut out);
        assert_eq!(writes_in(&out), 0, "no write while the cut is in flight");
        a.cut(&aof, &mut out);
        assert_eq!(writes_in(&out), 1, "the records go once it is done");
        drain(&mut a, &aof, out);
        assert_eq!(a.written, log.offset());
    }

    /// Under `everysec` an fsync that fails while a write is in flight
    /// leaves that write alone: the cron retries the fsync, not the write
    /// (sent twice, its bytes were counted twice). Writes stay refused
    /// (`aof.write_failed`) until an fsync succeeds.
    #[test]
    fn a_failed_fsync_retries_the_fsync_and_never_a_write_in_flight() {
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 0);
        record(&mut a, &mut log, b"a", &aof);
        complete(&mut a, &aof);
        record(&mut a, &mut log, b"b", &aof);
        let mut out = Vec::new();
        a.flush(&aof, &mut out);
        assert_eq!(writes_in(&out), 1);
        let in_flight = a.inflight.len() as i32;
        out.clear();
        a.cron(5000, &aof, &mut out);
        assert_eq!(fsyncs_in(&out), 1, "the everysec fsync");
        out.clear();
        a.fsynced(-libc::EIO, 5000, &aof, &mut out);
        assert!(aof.write_failed[0].load(Ordering::SeqCst));
        a.cron(6000, &aof, &mut out);
        assert_eq!(writes_in(&out), 0, "the write in flight is not sent again");
        assert_eq!(fsyncs_in(&out), 1, "the fsync is retried");
        out.clear();
        a.wrote(in_flight, &aof, &mut out);
        assert_eq!(a.written, log.offset(), "each byte counted once");
        assert!(
            aof.write_failed[0].load(Ordering::SeqCst),
            "a write done does not lift an fsync's error"
        );
        a.fsynced(0, 6000, &aof, &mut out);
        assert!(!aof.write_failed[0].load(Ordering::SeqCst));
    }

    /// Bytes written without an fsync (under `everysec` before a switch to
    /// `always`, or while fsyncs were paused) get one before the next
    /// durable write: an `RWF_DSYNC` write syncs its own range only, so
    /// counting it as covering them would reveal writes not on disk.
    #[test]
    fn under_always_unsynced_bytes_get_an_fsync_before_the_next_durable_write() {
        let (aof, mut a, mut log) = writer(FSYNC_EVERYSEC, 0);
        record(&mut a, &mut log, b"a", &aof);
        complete(&mut a, &aof);
        let unsynced = a.written;
        assert!(unsynced > a.synced);
        aof.policy.store(FSYNC_ALWAYS, Ordering::SeqCst);
        record(&mut a, &mut log, b"b", &aof);
        let mut out = Vec::new();
        a.submit(&aof, &mut out);
        assert_eq!(
            (writes_in(&out), fsyncs_in(&out)),
            (0, 1),
            "the fsync first"
        );
        out.clear();
        a.fsynced(0, 0, &aof, &mut out);
        assert_eq!(a.synced, unsynced);
        assert!(out
            .iter()
            .any(|s| matches!(s, Submit::Write { sync: true, .. })));
        drain(&mut a, &aof, out);
        assert_eq!(a.synced, log.offset());
    }
}
