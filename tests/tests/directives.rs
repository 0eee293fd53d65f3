//! Directives: every one slotd accepts is honoured, refused, or listed as
//! without effect (node/src/config/support.rs walks the whole table; the
//! tests here check the honoured ones against the real binary, and the
//! refusals as a new user meets them).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tests::{free_port, slotd_bin, RawConn, Server};

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// Runs slotd with `args` and waits for it to exit (it must, within 10 s).
fn run_to_exit(args: &[&str]) -> Output {
    let port = free_port().to_string();
    let mut child = Command::new(slotd_bin())
        .args(args)
        .args(["--port", &port, "--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slotd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slotd {args:?} kept running: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("slotd-directives-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn unbuilt_features_fail_loudly_at_start() {
    for args in [
        &["--latency-tracking", "yes", "--appendfsync", "always"][..],
        &["--list-compress-depth", "1"],
        &["--daemonize", "yes"],
        &["--maxmemory-clients", "5%"],
    ] {
        let out = run_to_exit(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***"),
            "{err}"
        );
        assert!(
            err.contains("is not supported by slotd yet"),
            "{args:?}: {err}"
        );
        let name = args[0].trim_start_matches("--");
        assert!(err.contains(&format!("only '{name} ")), "{args:?}: {err}");
    }
    // The same from a config file names its line.
    let d = tmpdir("fatal");
    let conf = d.join("slotd.conf");
    std::fs::write(&conf, "port 7000\ndaemonize yes\n").unwrap();
    let out = run_to_exit(&[conf.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Reading the configuration file, at line 2\n>>> 'daemonize yes'\n'daemonize yes' is not supported by slotd yet"), "{err}");
    let _ = std::fs::remove_dir_all(&d);

    // Their settings keep any valid value while the switch is off, and the
    // tuning knobs without effect are logged once.
    let s = Server::slotd(&["--masterauth", "secret", "--io-threads", "4"]);
    assert!(s
        .log()
        .contains("io-threads 4: accepted for compatibility, without effect in slotd"));
    assert_eq!(
        s.cli(&["config", "get", "masterauth"]),
        "masterauth\nsecret\n"
    );
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "SET", "list-compress-depth", "1"])),
        "-ERR CONFIG SET failed (possibly related to argument 'list-compress-depth') - 'list-compress-depth 1' is not supported by slotd yet (list compression is not built yet): only 'list-compress-depth 0' is accepted\r\n"
    );
    assert_eq!(
        s.cli(&["config", "get", "list-compress-depth"]),
        "list-compress-depth\n0\n"
    );
    assert_eq!(
        text(c.cmd_str(&["CONFIG", "SET", "list-compress-depth", "0"])),
        "+OK\r\n"
    );
}

#[test]
fn the_stock_redis_conf_loads() {
    let Ok(stock) = std::fs::read_to_string("/etc/redis/redis.conf") else {
        println!("skipped: no /etc/redis/redis.conf (Debian's redis-server package)");
        return;
    };
    // The lines a Debian install changes for its service manager.
    let d = tmpdir("stock");
    let conf: String = stock
        .lines()
        .map(|l| match l.split_whitespace().next() {
            Some("daemonize") => "daemonize no".to_string(),
            Some("pidfile" | "logfile" | "dir") => String::new(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = d.join("redis.conf");
    std::fs::write(&path, conf).unwrap();
    let s = Server::slotd_with_config(&path, &[]);
    assert_eq!(s.cli(&["set", "k", "v"]), "OK\n");
    assert_eq!(s.cli(&["config", "get", "save"]), "save\n\n");
    assert_eq!(
        s.cli(&["config", "get", "client-output-buffer-limit"]),
        "client-output-buffer-limit\nnormal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60\n"
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unbuilt_commands_answer_clear_errors() {
    let s = Server::slotd(&[]);
    let r = Server::redis(&[]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["FAILOVER"])),
        "-ERR FAILOVER is not supported by slotd: coordinated failover is not built; use REPLICAOF, or CLUSTER FAILOVER in cluster mode\r\n"
    );
    assert_eq!(
        text(c.cmd_str(&["ACL", "WHOAMI"])),
        "-ERR ACL is not supported by slotd: users and permissions beyond the default user are not built\r\n"
    );
    // What standalone redis-server answers, slotd answers too.
    let mut rc = r.raw();
    for cmd in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "SLOTS"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["SHUTDOWN", "ABORT"],
        &["SHUTDOWN", "BOGUS"],
        &["SHUTDOWN", "SAVE", "NOSAVE"],
    ] {
        assert_eq!(text(c.cmd_str(cmd)), text(rc.cmd_str(cmd)), "{cmd:?}");
    }
    assert!(s.cli(&["ping"]).contains("PONG"), "still serving");
}

#[test]
fn debug_set_active_expire_stops_the_cycle() {
    let s = Server::slotd(&["--enable-debug-command", "yes", "--shards", "2"]);
    let mut c = s.raw();
    assert_eq!(
        text(c.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"])),
        "+OK\r\n"
    );
    for i in 0..50 {
        c.cmd_str(&["SET", &format!("k{i}"), "v", "PX", "50"]);
    }
    std::thread::sleep(Duration::from_millis(1500));
    // DBSIZE does not expire keys: only the cycle would have.
    assert_eq!(text(c.cmd_str(&["DBSIZE"])), ":50\r\n");
    assert_eq!(
        text(c.cmd_str(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"])),
        "+OK\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while text(c.cmd_str(&["DBSIZE"])) != ":0\r\n" {
        assert!(Instant::now() < deadline, "the cycle did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bind_limits_the_listening_addresses() {
    let s = Server::slotd(&[]);
    let other = std::net::SocketAddr::from(([127, 0, 0, 2], s.port()));
    assert!(std::net::TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err());
    let s = Server::slotd(&["--bind", "127.0.0.1 127.0.0.2"]);
    let other = std::net::SocketAddr::from(([127, 0, 0, 2], s.port()));
    let mut conn = std::net::TcpStream::connect_timeout(&other, Duration::from_secs(2)).unwrap();
    use std::io::{Read, Write};
    conn.write_all(b"PING\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 7];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn tcp_backlog_sizes_the_accept_queue() {
    if Command::new("ss").arg("-V").output().is_err() {
        println!("skipped: no ss (iproute2)");
        return;
    }
    let s = Server::slotd(&["--tcp-backlog", "7"]);
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", s.port())])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    // State Recv-Q Send-Q (the backlog of a listening socket) Local Peer.
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty(), "no listening socket: {out}");
    for l in lines {
        assert_eq!(l.split_whitespace().nth(2), Some("7"), "{l}");
    }
}

#[test]
fn timeout_closes_idle_clients() {
    let s = Server::slotd(&["--timeout", "1"]);
    let mut idle = s.raw();
    assert_eq!(text(idle.cmd_str(&["PING"])), "+PONG\r\n");
    assert!(
        idle.is_closed(Duration::from_secs(5)),
        "an idle client outlived timeout 1"
    );
    let s = Server::slotd(&[]);
    let mut idle = s.raw();
    assert_eq!(text(idle.cmd_str(&["PING"])), "+PONG\r\n");
    assert!(!idle.is_closed(Duration::from_millis(2500)));
}

#[test]
fn pidfile_and_dir() {
    let d = tmpdir("pid");
    let canonical = std::fs::canonicalize(&d).unwrap();
    let mut s = Server::slotd(&["--dir", d.to_str().unwrap(), "--pidfile", "slotd.pid"]);
    let pid = std::fs::read_to_string(d.join("slotd.pid")).unwrap();
    assert_eq!(pid.trim(), s.pid().to_string());
    assert_eq!(
        s.cli(&["config", "get", "dir"]),
        format!("dir\n{}\n", canonical.display())
    );
    s.stop();
    assert!(
        !d.join("slotd.pid").exists(),
        "the pid file outlived the server"
    );
    let out = run_to_exit(&["--dir", "/nonexistent-slotd-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("No such file or directory\n"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn loglevel_and_logfile() {
    let d = tmpdir("log");
    let file = d.join("slotd.log");
    let s = Server::slotd(&["--logfile", file.to_str().unwrap(), "--loglevel", "warning"]);
    assert!(s.cli(&["ping"]).contains("PONG"));
    let logged = std::fs::read_to_string(&file).unwrap();
    assert!(!logged.contains("Ready to accept connections"), "{logged}");
    assert!(
        s.log().is_empty(),
        "logfile set, yet stdout got: {}",
        s.log()
    );
    drop(s);
    let s = Server::slotd(&["--logfile", file.to_str().unwrap(), "--loglevel", "notice"]);
    assert!(s.cli(&["ping"]).contains("PONG"));
    let logged = std::fs::read_to_string(&file).unwrap();
    assert!(
        logged.contains(" * Ready to accept connections"),
        "{logged}"
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn databases_bounds_select() {
    let s = Server::slotd(&["--databases", "4"]);
    let mut c = s.raw();
    assert_eq!(text(c.cmd_str(&["SELECT", "3"])), "+OK\r\n");
    assert_eq!(
        text(c.cmd_str(&["SELECT", "4"])),
        "-ERR DB index is out of range\r\n"
    );
}

#[test]
fn enable_debug_command_guards_debug() {
    let r = Server::redis(&[]);
    let s = Server::slotd(&[]);
    let refused = text(r.raw().cmd_str(&["DEBUG", "SLEEP", "0"]));
    assert!(
        refused.starts_with("-ERR DEBUG command not allowed."),
        "{refused}"
    );
    assert_eq!(text(s.raw().cmd_str(&["DEBUG", "SLEEP", "0"])), refused);
    for setting in ["yes", "local"] {
        let s = Server::slotd(&["--enable-debug-command", setting]);
        assert_eq!(text(s.raw().cmd_str(&["DEBUG", "SLEEP", "0"])), "+OK\r\n");
    }
}

#[test]
fn disable_thp_turns_off_huge_pages() {
    let thp = |s: &Server| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    let s = Server::slotd(&[]);
    let Some(on) = thp(&s) else {
        println!("skipped: this kernel shows no THP_enabled in /proc/PID/status");
        return;
    };
    assert_eq!(on, "0", "disable-thp yes (the default) leaves THP on");
    let s = Server::slotd(&["--disable-thp", "no"]);
    assert_eq!(thp(&s).as_deref(), Some("1"));
}

#[test]
fn maxclients_refuses_extra_clients() {
    let s = Server::slotd(&["--maxclients", "3", "--shards", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut c = s.raw();
        assert_eq!(text(c.cmd_str(&["PING"])), "+PONG\r\n");
        kept.push(c);
    }
    let mut extra = RawConn::connect(s.port()).unwrap();
    assert_eq!(
        text(extra.read_reply().unwrap()),
        "-ERR max number of clients reached\r\n"
    );
}

#[test]
fn hz_sets_the_cron_frequency() {
    let s = Server::slotd(&["--hz", "50"]);
    let info = s.cli(&["info", "server"]);
    assert!(
        info.contains("\nhz:50") && info.contains("\nconfigured_hz:50"),
        "{info}"
    );
    let mut c = s.raw();
    assert_eq!(text(c.cmd_str(&["CONFIG", "SET", "hz", "7"])), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.cli(&["info", "server"]).contains("\nhz:7"));
}

#[test]
fn proto_max_bulk_len_refuses_big_bulks() {
    let r = Server::redis(&["--proto-max-bulk-len", "1mb"]);
    let s = Server::slotd(&["--proto-max-bulk-len", "1mb"]);
    let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n";
    let want = text(r.raw().raw_cmd(req).unwrap());
    assert!(want.starts_with("-ERR Protocol error"), "{want}");
    assert_eq!(text(s.raw().raw_cmd(req).unwrap()), want);
    // Below the limit is fine.
    let big = "x".repeat(900_000);
    assert_eq!(text(s.raw().cmd_str(&["SET", "k", &big])), "+OK\r\n");
}

#[test]
fn client_query_buffer_limit_closes_the_client() {
    let s = Server::slotd(&["--client-query-buffer-limit", "1mb"]);
    let mut c = s.raw();
    // One unfinished bulk, announced at 10 MB, sent past 1 MB.
    let _ = c.send(b"*2\r\n$3\r\nGET\r\n$10000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..24 {
        if c.send(&chunk).is_err() {
            break;
        }
    }
    assert!(c.is_closed(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s
        .log()
        .contains("Closing client that reached max query buffer length")
    {
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_output_buffer_limit_closes_slow_subscribers() {
    // A normal client whose reply alone passes the hard limit is closed,
    // as in Redis.
    let big = "x".repeat(2 << 20);
    for mut srv in [
        Server::redis(&["--client-output-buffer-limit", "normal 1mb 0 0"]),
        Server::slotd(&["--client-output-buffer-limit", "normal 1mb 0 0"]),
    ] {
        let mut c = srv.raw();
        assert_eq!(text(c.cmd_str(&["SET", "big", &big])), "+OK\r\n");
        c.send(&tests::encode(&[b"GET", b"big"])).unwrap();
        assert!(c.read_reply().is_err(), "{}: the reply was sent", srv.log());
        assert!(srv.is_alive());
        srv.stop();
    }
    // A subscriber that does not read is closed once its backlog passes
    // the pubsub limit; the others are not.
    let s = Server::slotd(&[
        "--client-output-buffer-limit",
        "pubsub 256kb 0 0",
        "--shards",
        "2",
    ]);
    let mut slow = s.raw();
    slow.cmd_str(&["SUBSCRIBE", "news"]);
    let mut publisher = s.raw();
    let message = "m".repeat(10_000);
    let mut receivers = Vec::new();
    for _ in 0..3000 {
        let r = text(publisher.cmd_str(&["PUBLISH", "news", &message]));
        receivers.push(r.clone());
        if r == ":0\r\n" {
            break;
        }
    }
    assert_eq!(
        receivers.last().map(String::as_str),
        Some(":0\r\n"),
        "never closed"
    );
    assert!(
        s.log()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits"),
        "{}",
        s.log()
    );
    assert_eq!(text(publisher.cmd_str(&["PING"])), "+PONG\r\n");
}

#[test]
fn encoding_thresholds_follow_the_directives() {
    let args = [
        "--hash-max-listpack-entries",
        "2",
        "--zset-max-listpack-value",
        "3",
    ];
    tests::assert_same_with(
        &args,
        &[
            &["CONFIG", "SET", "hash-max-listpack-entries", "2"],
            &["CONFIG", "SET", "zset-max-listpack-value", "3"],
            &["HSET", "h", "a", "1", "b", "2"],
            &["OBJECT", "ENCODING", "h"],
            &["HSET", "h", "c", "3"],
            &["OBJECT", "ENCODING", "h"],
            &["ZADD", "z", "1", "abcd"],
            &["OBJECT", "ENCODING", "z"],
            &["CONFIG", "SET", "set-max-intset-entries", "2"],
            &["SADD", "s", "1", "2", "3"],
            &["OBJECT", "ENCODING", "s"],
            &["CONFIG", "SET", "list-max-listpack-size", "2"],
            &["RPUSH", "l", "a", "b", "c"],
            &["OBJECT", "ENCODING", "l"],
            &["CONFIG", "SET", "hash-max-listpack-value", "1"],
            &["HSET", "h2", "f", "vv"],
            &["OBJECT", "ENCODING", "h2"],
            &["CONFIG", "SET", "zset-max-listpack-entries", "1"],
            &["ZADD", "z2", "1", "a", "2", "b"],
            &["OBJECT", "ENCODING", "z2"],
        ],
    );
}

/// The scheduling policy of a thread (`/proc/.../stat` field 41).
fn policy(task: &std::path::Path) -> i32 {
    let stat = std::fs::read_to_string(task.join("stat")).unwrap();
    // The fields after the command name, which may hold spaces, start
    // with field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(41 - 3).unwrap().parse().unwrap()
}

/// `--shards` sets the number of shard threads, and each runs under
/// SCHED_BATCH (a wake-up does not preempt its CPU's running thread),
/// the main thread under the default policy.
#[test]
fn shards_sets_the_shard_threads() {
    let s = Server::slotd(&["--shards", "3"]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap();
    let mut shards = 0;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("shard-") {
            shards += 1;
            assert_eq!(policy(&t.path()), libc::SCHED_BATCH, "{comm}");
        } else if comm.trim() == "slotd" {
            assert_eq!(policy(&t.path()), libc::SCHED_OTHER, "{comm}");
        }
    }
    assert_eq!(shards, 3);
    assert!(s.cli(&["info", "server"]).contains("slotd_shards:3"));
}

#[test]
fn a_profile_for_another_host_is_refused() {
    let profile = tests::workspace_root().join("tuning/tests/expected/two_socket_nic_node1.toml");
    let out = run_to_exit(&["--tuning-profile", profile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Refusing tuning profile"), "{log}");
}

/// The CPUs a thread of `pid` named `comm` may run on
/// (`Cpus_allowed_list`), once that thread exists. A thread names itself
/// (and pins itself) when it starts, which can be after the server
/// answers: the bus thread was once not there yet (a CI failure), so
/// this waits up to 5 s for the thread, then for `want` if given.
fn thread_cpus(pid: u32, comm: &str, want: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .find(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == comm)
            })
            .and_then(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|l| l.trim().to_string())
            });
        let late = Instant::now() > deadline;
        match found {
            Some(cpus) if late || want.is_none_or(|w| w == cpus) => return cpus,
            None if late => panic!("no thread {comm}"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A profile `slotd-tune plan` makes for this host pins each shard core
/// to its CPU and, in cluster mode, the bus core to the profile's bus CPU
/// (the bus runs unpinned without a profile).
#[test]
fn a_profile_for_this_host_pins_the_shards_and_the_bus() {
    let host = tuning::read_host(std::path::Path::new("/")).expect("read this host");
    let profile = match tuning::plan(&host, &tuning::PlanOptions::default()) {
        Ok(p) => p,
        // A host with a single CPU has none to spare for the bus.
        Err(e) if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 => {
            eprintln!("skipped on a single CPU: {e}");
            return;
        }
        Err(e) => panic!("slotd-tune plan failed on this host: {e}"),
    };
    let dir = tests::fresh_dir("directives", "profile");
    let path = dir.join("profile.toml");
    std::fs::write(&path, profile.to_toml().unwrap()).unwrap();
    let s = Server::slotd_cluster(&["--tuning-profile", path.to_str().unwrap()]);
    let bus = profile.bus_cpu().to_string();
    assert!(s.log().contains(&format!("bus CPU {bus}")), "{}", s.log());
    for (i, cpu) in profile.shard_cpus().iter().enumerate() {
        let cpu = cpu.to_string();
        assert_eq!(thread_cpus(s.pid(), &format!("shard-{i}"), Some(&cpu)), cpu);
    }
    assert_eq!(thread_cpus(s.pid(), "cluster-bus", Some(&bus)), bus);
    // Without a profile the bus may run anywhere this process may.
    let free = Server::slotd_cluster(&[]);
    let ours = our_cpus().1;
    assert_eq!(thread_cpus(free.pid(), "cluster-bus", Some(&ours)), ours);
}

/// The CPUs this test process may run on (`Cpus_allowed_list`), as a
/// list and as the kernel prints it.
fn our_cpus() -> (Vec<usize>, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    (cpus, list)
}

/// Without a profile, shard threads as many as the CPUs run where the
/// kernel puts them (a pinned core could not leave a CPU another process
/// keeps busy); fewer shards than CPUs are pinned, one CPU each.
#[test]
fn shards_are_pinned_only_when_they_leave_cpus_spare() {
    let (cpus, list) = our_cpus();
    let all = Server::slotd(&["--shards", &cpus.len().to_string()]);
    for i in 0..cpus.len() {
        assert_eq!(thread_cpus(all.pid(), &format!("shard-{i}"), None), list);
    }
    assert!(
        all.log().contains("Shard threads not pinned"),
        "{}",
        all.log()
    );
    if cpus.len() < 2 {
        eprintln!("fewer shards than CPUs: skipped on a single CPU");
        return;
    }
    let fewer = Server::slotd(&["--shards", &(cpus.len() - 1).to_string()]);
    for (i, cpu) in cpus.iter().take(cpus.len() - 1).enumerate() {
        let cpu = cpu.to_string();
        assert_eq!(
            thread_cpus(fewer.pid(), &format!("shard-{i}"), Some(&cpu)),
            cpu
        );
    }
    assert!(
        fewer.log().contains("Shard threads pinned to CPUs"),
        "{}",
        fewer.log()
    );
}

#[test]
fn wait_answers_zero_replicas_as_standalone_redis() {
    tests::assert_same(&[
        &["SET", "k", "v"],
        &["WAIT", "0", "0"],
        &["WAIT", "-1", "0"],
        &["WAIT", "1", "100"],
        &["WAIT", "x", "0"],
        &["WAIT", "1", "x"],
        &["WAIT", "1", "-1"],
        &["MULTI"],
        &["WAIT", "1", "0"],
        &["EXEC"],
    ]);
    // With replicas asked for, it waits out its timeout, as Redis does.
    let s = Server::slotd(&["--shards", "2"]);
    let mut c = s.raw();
    let t = Instant::now();
    assert_eq!(text(c.cmd_str(&["WAIT", "1", "300"])), ":0\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );
    // Timeout 0 waits until the client goes.
    c.send(&tests::encode(&[b"WAIT", b"1", b"0"])).unwrap();
    c.set_read_timeout(Duration::from_millis(500));
    assert!(c.read_reply().is_err(), "WAIT 1 0 answered");
}
