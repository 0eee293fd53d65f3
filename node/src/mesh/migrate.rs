//! MIGRATE: moving keys to another server, atomically for every observer.
//!
//! Redis blocks the whole server while MIGRATE talks to the target; here
//! the task takes the ordered shard locks of the cores that own the keys
//! (as a multi-key command does), copies the values out, and hands them to
//! one I/O thread for the process, which builds the DUMP payloads, talks to
//! the target and answers the task with a `Msg::Resp` ([`Rpc::call_outside`]).
//! The keys the target acknowledged are then deleted (logged as DEL), and
//! only then are the locks released: nobody sees a key in both places or in
//! neither. No core's loop ever waits on the network.
//!
//! The thread keeps Redis's cache of connections to targets (up to 64,
//! closed after 10 s unused), so a reshard's many MIGRATEs reuse one
//! socket, and SELECT is sent only when the socket's last database differs.

use super::flows::Locks;
use super::msg::{Exported, Mesh, Msg, Request, Response};
use super::task::{Rpc, TaskDone};
use crate::io::Key;
use bytes::Bytes;
use engine::cmd::dump::Migrate;
use engine::lazyfree::Why;
use engine::value::Value;
use engine::Reply;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Runs MIGRATE `m` for connection `conn`, whose database is `db`
/// (`cluster`: send RESTORE-ASKING rather than RESTORE).
pub async fn migrate(rpc: Rc<Rpc>, db: usize, m: Migrate, cluster: bool, conn: Key) -> TaskDone {
    let cores = rpc.mesh.cores();
    let mut by_core: Vec<Vec<Bytes>> = vec![Vec::new(); cores];
    let owner: Vec<usize> = m
        .keys
        .iter()
        .map(|k| rpc.mesh.slots.core_of(engine::slot::slot_of(k)))
        .collect();
    for (k, &c) in m.keys.iter().zip(&owner) {
        by_core[c].push(k.clone());
    }
    let involved: Vec<usize> = (0..cores).filter(|&c| !by_core[c].is_empty()).collect();
    if involved.is_empty() {
        return TaskDone::reply(conn, Reply::status("NOKEY"));
    }
    let locks = Locks::take(&rpc, &involved).await;
    if locks.paused {
        locks.release().await;
        return TaskDone::reply(conn, Reply::err(crate::mesh::WRITES_PAUSED));
    }
    let calls: Vec<_> = involved
        .iter()
        .map(|&c| {
            let keys = std::mem::take(&mut by_core[c]);
            rpc.call(c, Request::Export { db, keys, tx: None })
        })
        .collect();
    let mut exported: Vec<std::vec::IntoIter<(Bytes, Exported)>> =
        (0..cores).map(|_| Vec::new().into_iter()).collect();
    for (call, &c) in calls.into_iter().zip(&involved) {
        if let Response::Entries(e) = call.await {
            exported[c] = e.into_iter();
        }
    }
    // Back in the order given, the missing keys left out.
    let items: Vec<Item> = owner
        .iter()
        .filter_map(|&c| match exported[c].next() {
            Some((key, Some((value, expire_at)))) => Some(Item {
                key,
                value,
                expire_at,
            }),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        locks.release().await;
        return TaskDone::reply(conn, Reply::status("NOKEY"));
    }
    let (mesh, me) = (rpc.mesh.clone(), rpc.me);
    let job = |id| Job {
        to: Target {
            host: String::from_utf8_lossy(&m.host).into_owned(),
            port: String::from_utf8_lossy(&m.port).into_owned(),
        },
        timeout: Duration::from_millis(m.timeout_ms as u64),
        db: m.db,
        auth: m.auth.clone(),
        restore: if cluster {
            &b"RESTORE-ASKING"[..]
        } else {
            b"RESTORE"
        },
        replace: m.replace,
        items,
        answer: (mesh, me, id),
    };
    let (reply, moved) = match rpc.call_outside(|id| submit(job(id))).await {
        Response::Migrated { reply, moved } => (reply, moved),
        _ => (
            Reply::err("ERR internal error: no answer from the migration thread"),
            Vec::new(),
        ),
    };
    if !m.copy && !moved.is_empty() && super::flows::notify_on() {
        // Their `del` events in the keys' order, as Redis sends them: one
        // core's run of keys at a time.
        let mut runs: Vec<(usize, Vec<(Bytes, Exported)>)> = Vec::new();
        for k in moved {
            let c = rpc.mesh.slots.core_of(engine::slot::slot_of(&k));
            match runs.last_mut() {
                Some((rc, keys)) if *rc == c => keys.push((k, None)),
                _ => runs.push((c, vec![(k, None)])),
            }
        }
        for (c, entries) in runs {
            let del = Request::Import {
                db,
                entries,
                why: Why::ServerDel,
                del_events: true,
            };
            let _ = rpc.call(c, del).await;
        }
    } else if !m.copy && !moved.is_empty() {
        let mut del: Vec<Vec<(Bytes, Exported)>> = vec![Vec::new(); cores];
        for k in moved {
            del[rpc.mesh.slots.core_of(engine::slot::slot_of(&k))].push((k, None));
        }
        let calls: Vec<_> = del
            .into_iter()
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
            .map(|(c, entries)| {
                rpc.call(
                    c,
                    Request::Import {
                        db,
                        entries,
                        why: Why::ServerDel,
                        del_events: true,
                    },
                )
            })
            .collect();
        for call in calls {
            let _ = call.await;
        }
    }
    locks.release().await;
    TaskDone::reply(conn, reply)
}

/// One key to move: its value and absolute expiry (ms).
struct Item {
    key: Bytes,
    value: Value,
    expire_at: Option<i64>,
}

/// Where to connect, as the client wrote it (also the cache's key).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Target {
    host: String,
    port: String,
}

/// A MIGRATE for the I/O thread.
struct Job {
    to: Target,
    timeout: Duration,
    db: i64,
    auth: Option<(Option<Bytes>, Bytes)>,
    restore: &'static [u8],
    replace: bool,
    items: Vec<Item>,
    /// Who waits for the outcome: (mesh, core, request id).
    answer: (Arc<Mesh>, usize, u64),
}

/// Hands `job` to the I/O thread, started on first use.
fn submit(job: Job) {
    static THREAD: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let tx = THREAD.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .name("migrate".into())
            .spawn(move || serve(rx));
        if let Err(e) = started {
            crate::log::warning(format_args!("Can't start the MIGRATE thread: {e}"));
        }
        Mutex::new(tx)
    });
    let sent = match tx.lock() {
        Ok(tx) => tx.send(job),
        Err(p) => p.into_inner().send(job),
    };
    if let Err(std::sync::mpsc::SendError(job)) = sent {
        let (mesh, core, id) = job.answer.clone();
        let reply = Reply::err("IOERR error or timeout connecting to the client");
        let moved = Vec::new();
        mesh.send(
            core,
            Msg::Resp {
                id,
                resp: Response::Migrated { reply, moved },
            },
        );
    }
}

/// Redis keeps at most this many connections to targets...
const CACHE_ITEMS: usize = 64;
/// ...and closes those unused for longer than this.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// A cached connection to a target.
struct Cached {
    stream: TcpStream,
    /// Bytes read past the last reply line.
    buf: Vec<u8>,
    /// The database the last successful MIGRATE selected (-1: unknown).
    last_db: i64,
    last_use: Instant,
    /// The read and write timeouts the socket has (set only when a job's
    /// differs: two syscalls per reply line add up over a reshard).
    timeout: Option<Duration>,
}

impl Cached {
    fn set_timeout(&mut self, timeout: Duration) -> Result<(), Fail> {
        if self.timeout != Some(timeout) {
            self.stream.set_read_timeout(Some(timeout)).map_err(fail)?;
            self.stream.set_write_timeout(Some(timeout)).map_err(fail)?;
            self.timeout = Some(timeout);
        }
        Ok(())
    }
}

/// The I/O thread: runs jobs one at a time (as Redis does, which blocks),
/// and closes idle cached connections.
fn serve(rx: Receiver<Job>) {
    let mut cache: HashMap<Target, Cached> = HashMap::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => {
                let (mesh, core, id) = job.answer.clone();
                let (reply, moved) = run(job, &mut cache);
                mesh.send(
                    core,
                    Msg::Resp {
                        id,
                        resp: Response::Migrated { reply, moved },
                    },
                );
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        cache.retain(|_, c| c.last_use.elapsed() <= CACHE_TTL);
    }
}

/// How connecting went.
enum Connect {
    Up(TcpStream),
    /// The target refused: Redis's non-blocking connect reports it as
    /// done (the socket turns writable), so its first write fails.
    Refused,
    Failed,
}

/// Connects to `to` within `timeout` (any of its addresses).
fn connect(to: &Target, timeout: Duration) -> Connect {
    // Redis reads the port with atoi().
    let digits: String = to
        .port
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let port = match digits.parse::<u16>() {
        // The kernel refuses port 0 (Rust's connect does not try).
        Ok(0) | Err(_) if digits.chars().all(|c| c == '0') => return Connect::Refused,
        Ok(p) => p,
        Err(_) => return Connect::Failed,
    };
    let Ok(addrs) = (to.host.as_str(), port).to_socket_addrs() else {
        return Connect::Failed;
    };
    let mut refused = false;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Connect::Up(s);
            }
            Err(e) => refused |= e.kind() == ErrorKind::ConnectionRefused,
        }
    }
    if refused {
        Connect::Refused
    } else {
        Connect::Failed
    }
}

/// Appends a RESP bulk string.
fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends a RESP array header.
fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How a socket operation failed.
enum Fail {
    /// The timeout passed (Redis does not retry then).
    Timeout,
    /// Closed, reset, or anything else.
    Other,
}

fn fail(e: std::io::Error) -> Fail {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Fail::Timeout,
        _ => Fail::Other,
    }
}

/// Reads one reply line (without its CRLF) within `timeout` per read.
fn read_line(c: &mut Cached, timeout: Duration) -> Result<Vec<u8>, Fail> {
    c.set_timeout(timeout)?;
    loop {
        if let Some(n) = c.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = c.buf.drain(..=n).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return if line.is_empty() {
                Err(Fail::Other)
            } else {
                Ok(line)
            };
        }
        let mut chunk = [0u8; 4096];
        match c.stream.read(&mut chunk) {
            Ok(0) => return Err(Fail::Other),
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Writes all of `buf` in 64 KiB chunks, each within `timeout`.
fn write_all(c: &mut Cached, buf: &[u8], timeout: Duration) -> Result<(), Fail> {
    c.set_timeout(timeout)?;
    for chunk in buf.chunks(64 * 1024) {
        c.stream.write_all(chunk).map_err(fail)?;
    }
    Ok(())
}

/// Runs one MIGRATE against the target as Redis's `migrateCommand` does
/// (one retry on a fresh connection when a cached one turns out closed):
/// the reply for the client and the keys the target acknowledged.
fn run(job: Job, cache: &mut HashMap<Target, Cached>) -> (Reply, Vec<Bytes>) {
    let now = crate::shared::now_ms();
    // TTLs as Redis computes them: a key that expired meanwhile is skipped
    // (neither sent nor deleted), a remaining TTL is at least 1 ms.
    let mut keys = Vec::with_capacity(job.items.len());
    let mut restores = Vec::new();
    for it in &job.items {
        let ttl = match it.expire_at {
            Some(at) if at - now < 0 => continue,
            Some(at) => (at - now).max(1),
            None => 0,
        };
        array(&mut restores, if job.replace { 5 } else { 4 });
        bulk(&mut restores, job.restore);
        bulk(&mut restores, &it.key);
        bulk(&mut restores, ttl.to_string().as_bytes());
        bulk(&mut restores, &engine::rdb::dump(&it.value, true));
        if job.replace {
            bulk(&mut restores, b"REPLACE");
        }
        keys.push(it.key.clone());
    }
    // The copies are freed here, off the cores.
    drop(job.items);
    let timeout = job.timeout;
    let mut may_retry = true;
    loop {
        if !cache.contains_key(&job.to) {
            if cache.len() >= CACHE_ITEMS {
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
            let stream = match connect(&job.to, timeout) {
                Connect::Up(s) => s,
                Connect::Refused if may_retry => {
                    may_retry = false;
                    continue;
                }
                Connect::Refused => return (io_error(true), Vec::new()),
                Connect::Failed => {
                    return (
                        Reply::err("IOERR error or timeout connecting to the client"),
                        Vec::new(),
                    )
                }
            };
            let cached = Cached {
                stream,
                buf: Vec::new(),
                last_db: -1,
                last_use: Instant::now(),
                timeout: None,
            };
            cache.insert(job.to.clone(), cached);
        }
        let Some(c) = cache.get_mut(&job.to) else {
            continue;
        };
        c.last_use = Instant::now();
        let mut out = Vec::with_capacity(restores.len() + 128);
        if let Some((user, pass)) = &job.auth {
            array(&mut out, if user.is_some() { 3 } else { 2 });
            bulk(&mut out, b"AUTH");
            if let Some(u) = user {
                bulk(&mut out, u);
            }
            bulk(&mut out, pass);
        }
        let select = c.last_db != job.db;
        if select {
            array(&mut out, 2);
            bulk(&mut out, b"SELECT");
            bulk(&mut out, job.db.to_string().as_bytes());
        }
        out.extend_from_slice(&restores);
        let attempt = exchange(c, &out, job.auth.is_some(), select, &keys, timeout);
        drop(out);
        match attempt {
            Attempt::Done {
                error,
                moved,
                socket_error,
            } => {
                if socket_error.is_some() {
                    cache.remove(&job.to);
                }
                match (error, socket_error) {
                    (Some(e), _) => {
                        if let Some(c) = cache.get_mut(&job.to) {
                            c.last_db = -1;
                        }
                        return (e, moved);
                    }
                    (None, Some(_)) => {
                        return (
                            Reply::err("IOERR error or timeout reading to target instance"),
                            moved,
                        )
                    }
                    (None, None) => {
                        if let Some(c) = cache.get_mut(&job.to) {
                            c.last_db = job.db;
                        }
                        return (Reply::Ok, moved);
                    }
                }
            }
            Attempt::Failed { writing, how } => {
                cache.remove(&job.to);
                if matches!(how, Fail::Other) && may_retry {
                    may_retry = false;
                    continue;
                }
                return (io_error(writing), Vec::new());
            }
        }
    }
}

/// MIGRATE's error for a socket that failed while writing or reading.
fn io_error(writing: bool) -> Reply {
    let what = if writing { "writing" } else { "reading" };
    Reply::Error(format!("IOERR error or timeout {what} to target instance").into())
}

/// What one exchange with the target came to.
enum Attempt {
    /// Nothing reached the target's RESTOREs (writing, or reading the
    /// AUTH/SELECT replies, or the first RESTORE reply, failed): retry.
    Failed { writing: bool, how: Fail },
    /// The replies read: the target's first error as the client's reply,
    /// the keys it acknowledged, and a socket error met after the first.
    Done {
        error: Option<Reply>,
        moved: Vec<Bytes>,
        socket_error: Option<Fail>,
    },
}

/// Sends `out` and reads the AUTH, SELECT and RESTORE replies.
fn exchange(
    c: &mut Cached,
    out: &[u8],
    auth: bool,
    select: bool,
    keys: &[Bytes],
    timeout: Duration,
) -> Attempt {
    if let Err(how) = write_all(c, out, timeout) {
        return Attempt::Failed { writing: true, how };
    }
    let mut auth_line = Vec::new();
    let mut select_line = Vec::new();
    if auth {
        match read_line(c, timeout) {
            Ok(l) => auth_line = l,
            Err(how) => {
                return Attempt::Failed {
                    writing: false,
                    how,
                }
            }
        }
    }
    if select {
        match read_line(c, timeout) {
            Ok(l) => select_line = l,
            Err(how) => {
                return Attempt::Failed {
                    writing: false,
                    how,
                }
            }
        }
    }
    let mut error = None;
    let mut moved = Vec::new();
    for (j, key) in keys.iter().enumerate() {
        let line = match read_line(c, timeout) {
            Ok(l) => l,
            Err(how) if j == 0 && error.is_none() && matches!(how, Fail::Other) => {
                return Attempt::Failed {
                    writing: false,
                    how,
                }
            }
            Err(how) => {
                return Attempt::Done {
                    error,
                    moved,
                    socket_error: Some(how),
                }
            }
        };
        let err = [&auth_line, &select_line, &line]
            .into_iter()
            .find(|l| l.first() == Some(&b'-'));
        match err {
            Some(e) => {
                if error.is_none() {
                    let text = String::from_utf8_lossy(&e[1..]);
                    error = Some(Reply::Error(
                        format!("ERR Target instance replied with error: {text}").into(),
                    ));
                }
            }
            None => moved.push(key.clone()),
        }
    }
    Attempt::Done {
        error,
        moved,
        socket_error: None,
    }
}
