//! Integration-test harness for slotd.
//!
//! Integration tests live in `tests/tests/*.rs`. They start real server
//! processes on free loopback ports:
//!
//! - [`Server::slotd`] starts the slotd binary: `$SLOTD_BIN` if set, otherwise
//!   `<workspace>/target/release/slotd`. `SLOTD_BIN` may point at any
//!   Redis-compatible binary that accepts `--port` (e.g. `redis-server`, to
//!   validate the tests themselves); when it is a `redis-server`, the
//!   slotd-only `--shards N` option is dropped.
//! - [`Server::redis`] starts the stock `redis-server` (`$REDIS_SERVER_BIN` or
//!   `redis-server` from `PATH`).
//!
//! Both wait until the server answers `PING` (10 s timeout), capture its
//! stdout/stderr in a log file (printed when the test panics, removed
//! otherwise unless `KEEP_SERVER_LOGS` is set, and so is the fresh `dir`
//! each server gets), and are stopped (SIGTERM, then SIGKILL) on drop.
//!
//! [`assert_same`] / [`assert_same_unordered`] run one command sequence
//! against a fresh slotd and a fresh redis-server and compare the raw RESP
//! replies.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of [`RawConn`] and of [`Server::client`] connections.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// The slotd binary the tests use: `$SLOTD_BIN` or `<workspace>/target/release/slotd`.
pub fn slotd_bin() -> PathBuf {
    match std::env::var_os("SLOTD_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("target/release/slotd"),
    }
}

/// The stock Redis binary: `$REDIS_SERVER_BIN` or `redis-server`.
pub fn redis_bin() -> PathBuf {
    match std::env::var_os("REDIS_SERVER_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("redis-server"),
    }
}

fn is_redis_binary(bin: &Path) -> bool {
    bin.file_name()
        .map(|n| n.to_string_lossy().starts_with("redis-server"))
        .unwrap_or(false)
}

/// Picks a free loopback port by binding port 0. Never returns 6379 or the
/// smoke-test port 7399.
/// An empty directory for one test, `slotd-<kind>-<name>-<pid>` under the
/// system's temporary directory (emptied first if a previous run left it),
/// removed when the test process exits (kept with `KEEP_SERVER_LOGS`).
pub fn fresh_dir(kind: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("slotd-{kind}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    if std::env::var_os("KEEP_SERVER_LOGS").is_none() {
        let mut dirs = FRESH_DIRS.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.is_empty() {
            // SAFETY: registers a plain function to run at exit.
            unsafe { libc::atexit(remove_fresh_dirs) };
        }
        dirs.push(d.clone());
    }
    d
}

static FRESH_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// At exit: removes the test process's [`fresh_dir`]s (every server is
/// stopped by then: each stops when dropped).
extern "C" fn remove_fresh_dirs() {
    let dirs = std::mem::take(&mut *FRESH_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A field of an INFO section of `s` (empty when absent).
pub fn info_field(s: &Server, section: &str, field: &str) -> String {
    s.cli(&["info", section])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Runs `bin args` with `input` on stdin (a tool such as `slotd
/// check-aof` or `redis-check-aof`): (exit code, stdout).
pub fn run_tool(bin: &Path, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `redis-cli --pipe` into `s`, `input` fed from another thread (a pipe
/// holds less than a bulk load); returns (success, stdout + stderr). The
/// tool is killed after 120 s.
pub fn redis_cli_pipe(s: &Server, input: Vec<u8>) -> (bool, String) {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &s.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(child.try_wait(), Ok(Some(_))) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-cli --pipe timed out after 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs `args` on a `redis` crate connection; panics with the command on
/// an error reply.
pub fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(conn).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A raw reply as text (lossy).
pub fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let p = l.local_addr().unwrap().port();
        if p != 6379 && p != 7399 {
            return p;
        }
    }
}

/// A free loopback port `p` whose bus port `p + 10000` is free too (a node
/// of a Redis Cluster listens on both).
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p <= 55535 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// A running server process.
pub struct Server {
    child: Child,
    port: u16,
    name: String,
    log_path: PathBuf,
    dir: PathBuf,
}

impl Server {
    /// Starts slotd with the standard options (`--port P --bind 127.0.0.1
    /// --save "" --appendonly no`) followed by `args`.
    pub fn slotd(args: &[&str]) -> Server {
        Server::slotd_limited(None, args)
    }

    /// Like [`Server::slotd`], with the open files limit (soft and hard)
    /// set to `nofile` first, through util-linux's `prlimit`.
    pub fn slotd_limited(nofile: Option<u64>, args: &[&str]) -> Server {
        let bin = slotd_bin();
        if bin.components().count() > 1 && !bin.exists() {
            panic!(
                "slotd binary not found at {}: build it with `cargo build --release -p node` \
                 or set SLOTD_BIN to a Redis-compatible server binary",
                bin.display()
            );
        }
        let mut extra: Vec<&str> = Vec::new();
        let redis = is_redis_binary(&bin);
        let mut i = 0;
        while i < args.len() {
            // `--shards N` is slotd-only; drop it when validating against redis.
            if redis && args[i] == "--shards" {
                i += 2;
                continue;
            }
            extra.push(args[i]);
            i += 1;
        }
        Server::start("slotd", &bin, nofile, None, &extra)
    }

    /// Starts slotd with the config file `conf` (given first, as slotd and
    /// redis-server expect it), then the standard options and `args`.
    pub fn slotd_with_config(conf: &Path, args: &[&str]) -> Server {
        Server::start("slotd", &slotd_bin(), None, Some(conf), args)
    }

    /// Starts slotd as a cluster node (`--cluster-enabled yes`, on a port
    /// whose bus port is free) with `args`.
    pub fn slotd_cluster(args: &[&str]) -> Server {
        let mut all = vec!["--cluster-enabled", "yes"];
        all.extend_from_slice(args);
        Server::start("slotd", &slotd_bin(), None, None, &all)
    }

    /// Starts redis-server as a cluster node, as [`Server::slotd_cluster`].
    pub fn redis_cluster(args: &[&str]) -> Server {
        let mut all = vec!["--cluster-enabled", "yes"];
        all.extend_from_slice(args);
        Server::start("redis", &redis_bin(), None, None, &all)
    }

    /// Starts the stock redis-server with `--save "" --appendonly no` and `args`.
    pub fn redis(args: &[&str]) -> Server {
        Server::start("redis", &redis_bin(), None, None, args)
    }

    fn start(
        name: &str,
        bin: &Path,
        nofile: Option<u64>,
        conf: Option<&Path>,
        args: &[&str],
    ) -> Server {
        Server::start_at(None, name, bin, nofile, conf, args)
    }

    /// Starts slotd on `port` (restarted where it was), with `args`.
    pub fn slotd_at(port: u16, args: &[&str]) -> Server {
        Server::start_at(Some(port), "slotd", &slotd_bin(), None, None, args)
    }

    /// Starts slotd as a cluster node on `port` (a node restarted where
    /// it was, as an operator restarts it), with `args`.
    pub fn slotd_cluster_at(port: u16, args: &[&str]) -> Server {
        let mut all = vec!["--cluster-enabled", "yes"];
        all.extend_from_slice(args);
        Server::start_at(Some(port), "slotd", &slotd_bin(), None, None, &all)
    }

    fn start_at(
        fixed: Option<u16>,
        name: &str,
        bin: &Path,
        nofile: Option<u64>,
        conf: Option<&Path>,
        args: &[&str],
    ) -> Server {
        let mut last_err = String::new();
        let cluster = args.windows(2).any(|w| w == ["--cluster-enabled", "yes"]);
        for _attempt in 0..5 {
            let port = if let Some(p) = fixed {
                p
            } else if cluster {
                free_port_pair()
            } else {
                free_port()
            };
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let log_path = std::env::temp_dir().join(format!(
                "slotd-test-{}-{}-{}-{}.log",
                name,
                std::process::id(),
                seq,
                port
            ));
            let log = std::fs::File::create(&log_path).expect("create server log file");
            let log2 = log.try_clone().expect("clone log file handle");
            let port_s = port.to_string();
            // A fresh `dir` per server: no dump.rdb left behind in the
            // cwd, none loaded from an earlier run (tests may override).
            // Emptied first: an earlier run whose process had the same
            // pid left its files there (a stock redis-server crashed
            // loading one).
            let dir = std::env::temp_dir().join(format!(
                "slotd-test-dir-{}-{}-{}",
                name,
                std::process::id(),
                seq
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::create_dir_all(&dir);
            let dir_s = dir.to_string_lossy().into_owned();
            let mut cmd = match nofile {
                Some(n) => {
                    let mut c = Command::new("prlimit");
                    c.arg(format!("--nofile={n}:{n}")).arg(bin);
                    c
                }
                None => Command::new(bin),
            };
            cmd.args(conf)
                .args(["--port", &port_s, "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir", &dir_s])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log2));
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot start {} ({}): {}", name, bin.display(), e),
            };
            let mut srv = Server {
                child,
                port,
                name: name.to_string(),
                log_path,
                dir,
            };
            match srv.wait_ready() {
                Ok(()) => return srv,
                Err(e) => {
                    last_err = format!("{}\n--- log ---\n{}", e, srv.log());
                    // Drop stops it; on a port collision, retry with another port.
                    let collided = last_err.contains("in use") || last_err.contains("EADDRINUSE");
                    let _ = std::fs::remove_file(&srv.log_path);
                    srv.stop();
                    if !collided {
                        break;
                    }
                }
            }
        }
        panic!("{} ({}) did not start: {}", name, bin.display(), last_err);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early with {}", status));
            }
            if let Ok(mut c) = RawConn::connect_timeout(self.port, Duration::from_millis(500)) {
                if let Ok(r) = c.try_cmd(&[b"PING"]) {
                    // A server with requirepass answers NOAUTH: it is up too.
                    if r == b"+PONG\r\n" || r.starts_with(b"-NOAUTH") {
                        // The process we started must still be the one listening.
                        if let Ok(Some(status)) = self.child.try_wait() {
                            return Err(format!("exited early with {}", status));
                        }
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no PONG on port {} within {:?}",
                    self.port, START_TIMEOUT
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (`--dir`, made fresh for it; a later
    /// `--dir` in the arguments overrides it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the captured stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The captured log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A `redis` crate connection (RESP2).
    pub fn client(&self) -> redis::Connection {
        let c =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("redis client");
        let conn = c
            .get_connection_with_timeout(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {} on {}: {}", self.name, self.port, e));
        conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        conn
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
            .unwrap_or_else(|e| panic!("connect to {} on {}: {}", self.name, self.port, e))
    }

    /// Runs `redis-cli -p PORT args...` and returns its stdout (killed and
    /// panicking after 30 s).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli {:?} on port {} timed out", args, self.port);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned()
    }

    /// `kill -9`: the process dies at once, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

thread_local! {
    static PANIC_EXPECTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For a test that is meant to panic (`#[should_panic]`): the servers its
/// thread drops go as after a pass (log and fresh `dir` removed, the log
/// not printed).
pub fn panic_expected() {
    PANIC_EXPECTED.with(|p| p.set(true));
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() && !PANIC_EXPECTED.with(|p| p.get()) {
            let log = self.log();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(200);
                lines[from..].join("\n")
            };
            eprintln!(
                "===== {} (port {}) log: {} =====\n{}\n===== end of {} log =====",
                self.name,
                self.port,
                self.log_path.display(),
                tail,
                self.name
            );
        } else if std::env::var_os("KEEP_SERVER_LOGS").is_none() {
            // The fresh `dir` goes with the log (a `--dir` the test gave
            // is the test's to remove).
            let _ = std::fs::remove_file(&self.log_path);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Encodes a command as a RESP multibulk request.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A plain TCP client: sends commands (RESP multibulk or raw bytes), reads
/// back exactly one RESP reply at a time as raw bytes.
pub struct RawConn {
    reader: BufReader<TcpStream>,
}

impl RawConn {
    pub fn connect(port: u16) -> io::Result<RawConn> {
        Self::connect_timeout(port, IO_TIMEOUT)
    }

    pub fn connect_timeout(port: u16, timeout: Duration) -> io::Result<RawConn> {
        let addr = ([127, 0, 0, 1], port).into();
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(RawConn {
            reader: BufReader::with_capacity(64 * 1024, s),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream().set_read_timeout(Some(t)).unwrap();
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Sends one command as multibulk and reads its reply.
    pub fn try_cmd(&mut self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        self.send(&encode(args))?;
        self.read_reply()
    }

    /// Like [`RawConn::try_cmd`], panicking on I/O errors.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("command {:?}: {}", show_args(args), e))
    }

    /// String-argument convenience for [`RawConn::cmd`].
    pub fn cmd_str(&mut self, args: &[&str]) -> Vec<u8> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.cmd(&a)
    }

    /// Sends raw bytes and reads one reply.
    pub fn raw_cmd(&mut self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        self.send(bytes)?;
        self.read_reply()
    }

    /// Reads exactly one RESP2/RESP3 reply and returns its raw bytes.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_value(&mut out)?;
        Ok(out)
    }

    /// True if the server has closed the connection (EOF or reset) within
    /// `wait`. Any data received instead means "not closed".
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        self.set_read_timeout(wait);
        let mut b = [0u8; 1];
        let r = self.reader.get_mut().read(&mut b);
        self.set_read_timeout(IO_TIMEOUT);
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream().shutdown(Shutdown::Both);
    }

    fn read_line(&mut self, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed (partial reply: {:?})",
                    String::from_utf8_lossy(out)
                ),
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad reply line {:?}", String::from_utf8_lossy(&line)),
            ));
        }
        out.extend_from_slice(&line);
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read_value(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let line = self.read_line(out)?;
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {:?}", what, String::from_utf8_lossy(&line)),
            )
        };
        let Some(&ty) = line.first() else {
            return Err(bad("empty reply line"));
        };
        let num = || -> io::Result<i64> {
            std::str::from_utf8(&line[1..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad length"))
        };
        match ty {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(()),
            b'$' | b'!' | b'=' => {
                let n = num()?;
                if n < 0 {
                    return Ok(());
                }
                let mut body = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut body)?;
                out.extend_from_slice(&body);
                Ok(())
            }
            b'*' | b'~' | b'>' => {
                let n = num()?;
                for _ in 0..n.max(0) {
                    self.read_value(out)?;
                }
                Ok(())
            }
            b'%' => {
                let n = num()?;
                for _ in 0..n.max(0) * 2 {
                    self.read_value(out)?;
                }
                Ok(())
            }
            b'|' => {
                // Attribute: a map, then the actual reply.
                let n = num()?;
                for _ in 0..n.max(0) * 2 {
                    self.read_value(out)?;
                }
                self.read_value(out)
            }
            _ => Err(bad("unknown reply type")),
        }
    }
}

/// A parsed RESP reply, used for order-insensitive comparison and display.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    /// A line-type reply (`+`, `-`, `:`, `_`, `,`, `#`, `(`): type byte and text.
    Line(u8, Vec<u8>),
    /// A bulk-type reply (`$`, `!`, `=`); `None` for a null bulk.
    Bulk(u8, Option<Vec<u8>>),
    /// An aggregate (`*`, `~`, `>`, `%`, `|`); `None` for a null array.
    /// Maps hold `[key, value]` pairs as 2-element `Agg`s.
    Agg(u8, Option<Vec<Resp>>),
}

impl Resp {
    /// Parses one reply from the start of `buf`; returns it and bytes used.
    pub fn parse(buf: &[u8]) -> Option<(Resp, usize)> {
        let eol = buf.windows(2).position(|w| w == b"\r\n")?;
        let ty = *buf.first()?;
        let body = &buf[1..eol];
        let mut pos = eol + 2;
        let num = || -> Option<i64> { std::str::from_utf8(body).ok()?.parse().ok() };
        match ty {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                Some((Resp::Line(ty, body.to_vec()), pos))
            }
            b'$' | b'!' | b'=' => {
                let n = num()?;
                if n < 0 {
                    return Some((Resp::Bulk(ty, None), pos));
                }
                let end = pos + n as usize;
                let data = buf.get(pos..end)?.to_vec();
                Some((Resp::Bulk(ty, Some(data)), end + 2))
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = num()?;
                if n < 0 {
                    return Some((Resp::Agg(ty, None), pos));
                }
                let pair = ty == b'%' || ty == b'|';
                let mut items = Vec::new();
                for _ in 0..n {
                    if pair {
                        let (k, a) = Resp::parse(&buf[pos..])?;
                        pos += a;
                        let (v, b) = Resp::parse(&buf[pos..])?;
                        pos += b;
                        items.push(Resp::Agg(b'*', Some(vec![k, v])));
                    } else {
                        let (v, a) = Resp::parse(&buf[pos..])?;
                        pos += a;
                        items.push(v);
                    }
                }
                Some((Resp::Agg(ty, Some(items)), pos))
            }
            _ => None,
        }
    }

    /// Sorts every aggregate's elements (recursively), making the value
    /// independent of set/hash iteration order.
    pub fn sorted(mut self) -> Resp {
        if let Resp::Agg(_, Some(items)) = &mut self {
            let taken = std::mem::take(items);
            let mut v: Vec<Resp> = taken.into_iter().map(Resp::sorted).collect();
            v.sort();
            *items = v;
        }
        self
    }
}

/// Printable form of a command (long commands are abbreviated).
pub fn show_args(args: &[&[u8]]) -> String {
    let full = args
        .iter()
        .map(|a| {
            let s = String::from_utf8_lossy(a);
            if s.is_empty() || s.contains(' ') {
                format!("{:?}", s)
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    abbreviate(full, 300)
}

fn abbreviate(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &s[..cut], s.len())
}

/// Printable form of a raw reply (escapes CR/LF and non-printables),
/// abbreviated after 2000 characters.
pub fn show(reply: &[u8]) -> String {
    abbreviate(show_full(reply), 2000)
}

/// Printable form of a raw reply, never abbreviated.
pub fn show_full(reply: &[u8]) -> String {
    let mut s = String::new();
    for &b in reply {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{:02x}", b);
            }
        }
    }
    s
}

/// Commands whose reply content legitimately differs between servers (server
/// name, version, client id): only the reply type byte is compared.
fn compare_type_only(cmd: &[&str]) -> bool {
    cmd.first()
        .map(|c| c.eq_ignore_ascii_case("HELLO"))
        .unwrap_or(false)
}

/// Order-insensitive commands: for these, [`assert_same`] sorts aggregate
/// replies before comparing.
fn unordered_by_nature(cmd: &[&str]) -> bool {
    const UNORDERED: &[&str] = &[
        "SMEMBERS", "HKEYS", "HVALS", "HGETALL", "KEYS", "SINTER", "SUNION", "SDIFF",
        // FUNCTION LIST: libraries and functions in Redis's dict order.
        "FUNCTION",
    ];
    cmd.first()
        .map(|c| UNORDERED.iter().any(|u| c.eq_ignore_ascii_case(u)))
        .unwrap_or(false)
}

fn run_diff(cmds: &[&[&str]], unordered_all: bool, slotd_args: &[&str]) {
    let slotd = Server::slotd(slotd_args);
    let redis = Server::redis(&[]);
    let mut a = slotd.raw();
    let mut b = redis.raw();
    assert_eq!(a.cmd_str(&["FLUSHALL"]), b"+OK\r\n", "FLUSHALL on slotd");
    assert_eq!(b.cmd_str(&["FLUSHALL"]), b"+OK\r\n", "FLUSHALL on redis");
    let mut failures = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let ra = a
            .try_cmd(&args)
            .unwrap_or_else(|e| panic!("#{} `{}`: slotd: {}", i, show_args(&args), e));
        let rb = b
            .try_cmd(&args)
            .unwrap_or_else(|e| panic!("#{} `{}`: redis: {}", i, show_args(&args), e));
        let same = if compare_type_only(cmd) {
            ra.first() == rb.first()
        } else if unordered_all || unordered_by_nature(cmd) {
            match (Resp::parse(&ra), Resp::parse(&rb)) {
                (Some((x, _)), Some((y, _))) => x.sorted() == y.sorted(),
                _ => ra == rb,
            }
        } else {
            ra == rb
        };
        if !same {
            failures.push(format!(
                "#{} `{}`\n    slotd: {}\n    redis: {}",
                i,
                show_args(&args),
                show(&ra),
                show(&rb)
            ));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} replies differ between slotd and redis:\n{}",
            failures.len(),
            cmds.len(),
            failures.join("\n")
        );
    }
}

/// Runs `cmds` in order on one connection to a fresh slotd and one to a
/// fresh redis-server (both FLUSHALL'd first) and asserts the raw RESP
/// replies are identical, except: replies to commands whose result order is
/// unspecified (SMEMBERS, HKEYS, HVALS, HGETALL, KEYS, SINTER, SUNION, SDIFF,
/// FUNCTION)
/// are compared order-insensitively, and HELLO replies by type only.
/// On mismatch, panics listing every differing command with both replies.
pub fn assert_same(cmds: &[&[&str]]) {
    run_diff(cmds, false, &[]);
}

/// Like [`assert_same`], but every aggregate reply is compared
/// order-insensitively (recursively sorted).
pub fn assert_same_unordered(cmds: &[&[&str]]) {
    run_diff(cmds, true, &[]);
}

/// Like [`assert_same`], with extra slotd arguments (e.g. `--shards 2`).
pub fn assert_same_with(slotd_args: &[&str], cmds: &[&[&str]]) {
    run_diff(cmds, false, slotd_args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_sorting() {
        let a = b"*3\r\n$1\r\nb\r\n$1\r\na\r\n:1\r\n";
        let b = b"*3\r\n:1\r\n$1\r\na\r\n$1\r\nb\r\n";
        let (x, n) = Resp::parse(a).unwrap();
        assert_eq!(n, a.len());
        let (y, _) = Resp::parse(b).unwrap();
        assert_ne!(x, y);
        assert_eq!(x.sorted(), y.sorted());
        let m = b"%2\r\n$1\r\nf\r\n:1\r\n$1\r\ng\r\n:2\r\n";
        let m2 = b"%2\r\n$1\r\ng\r\n:2\r\n$1\r\nf\r\n:1\r\n";
        let m3 = b"%2\r\n$1\r\ng\r\n:1\r\n$1\r\nf\r\n:2\r\n";
        let p = |b: &[u8]| Resp::parse(b).unwrap().0.sorted();
        assert_eq!(p(m), p(m2));
        assert_ne!(p(m), p(m3));
    }

    #[test]
    fn encode_multibulk() {
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}

/// Helpers of the cluster tests (`tests/cluster*.rs`).
pub mod cluster {
    use super::Server;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// `127.0.0.1:<port>` of a server.
    pub fn addr(s: &Server) -> String {
        format!("127.0.0.1:{}", s.port())
    }

    /// `redis-cli --cluster <args> --cluster-yes`, bounded to 60 s: whether
    /// it succeeded, and its output without colour escapes.
    pub fn tool(args: &[String]) -> (bool, String) {
        let out = Command::new("timeout")
            .arg("60")
            .arg("redis-cli")
            .arg("--cluster")
            .args(args)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster");
        let mut text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for esc in [
            "\u{1b}[0m",
            "\u{1b}[29;1m",
            "\u{1b}[31;1m",
            "\u{1b}[32;1m",
            "\u{1b}[33;1m",
        ] {
            text = text.replace(esc, "");
        }
        (out.status.success(), text)
    }

    /// A field of CLUSTER INFO.
    pub fn info(s: &Server, field: &str) -> String {
        s.cli(&["cluster", "info"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Waits until `cond` holds, for at most `secs` seconds.
    pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CLUSTER MYID.
    pub fn myid(s: &Server) -> String {
        s.cli(&["cluster", "myid"]).trim().to_string()
    }

    /// The CLUSTER NODES line of node `id` as `s` sees it ("" if none).
    pub fn line_of(s: &Server, id: &str) -> String {
        s.cli(&["cluster", "nodes"])
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or("")
            .to_string()
    }
}
