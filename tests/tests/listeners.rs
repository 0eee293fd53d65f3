//! Listening sockets and accepted connections: one listening socket per
//! bind address for the whole process (no SO_REUSEPORT, so a second server
//! on a taken port fails as Redis does), connections spread over the
//! cores, `tcp-keepalive` and `protected-mode`.

use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tests::{RawConn, Server};

/// How long a server that cannot listen may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// Runs slotd with `args` and returns its exit status (None if it was
/// still running after [`EXIT_TIMEOUT`]: then it is killed) and its
/// output (stdout and stderr).
fn run_until_exit(args: &[&str]) -> (Option<ExitStatus>, String) {
    let mut child = Command::new(tests::slotd_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slotd");
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
    .collect();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("");
    (status, out)
}

/// Asserts that slotd on `port` with `bind` refuses to start with Redis's
/// two log lines and exit status 1.
fn assert_refuses(port: u16, bind: &str) {
    let p = port.to_string();
    let (status, out) = run_until_exit(&[
        "--port",
        &p,
        "--bind",
        bind,
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "slotd on a taken port: {status:?}\n{out}"
    );
    let shown = bind.strip_prefix('-').unwrap_or(bind);
    for line in [
        format!("Warning: Could not create server TCP listening socket {shown}:{port}: bind: Address already in use"),
        format!("Failed listening on port {port} (TCP), aborting."),
    ] {
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
}

/// A socket of this test process; closed on drop.
struct Sock(i32);

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: closing a socket this test owns.
        unsafe { libc::close(self.0) };
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from(ip).to_be();
    sa
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP socket bound to `ip:port`, with SO_REUSEADDR and SO_REUSEPORT set
/// first, as a process hoping to share the port would make it.
fn reuseport_socket(ip: Ipv4Addr, port: u16) -> io::Result<Sock> {
    // SAFETY: plain socket calls on a descriptor this test owns (closed by
    // `Sock`'s drop); the option and address point at live values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Sock(fd);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            check(libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ))?;
        }
        let sa = sockaddr(ip, port);
        check(libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ))?;
        Ok(s)
    }
}

/// A connection to 127.0.0.1:`port` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    // SAFETY: as in `reuseport_socket`; on success the descriptor moves
    // into the TcpStream, which then owns it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Sock(fd);
        let local = sockaddr(from, 0);
        check(libc::bind(
            fd,
            &local as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ))?;
        let remote = sockaddr(Ipv4Addr::LOCALHOST, port);
        check(libc::connect(
            fd,
            &remote as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ))?;
        std::mem::forget(s);
        let stream = TcpStream::from_raw_fd(fd);
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }
}

/// Everything the server sends until it closes the connection.
fn read_to_close(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends PING and returns the first reply line.
fn ping(s: &mut TcpStream) -> String {
    use std::io::Write;
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A field of an INFO reply.
fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in\n{info}"))
        .trim()
        .to_string()
}

fn info_of(c: &mut RawConn, section: &str) -> String {
    text(c.cmd_str(&["INFO", section]))
}

#[test]
fn a_second_server_on_a_taken_port_exits_as_redis_does() {
    let first = Server::slotd(&["--shards", "2"]);
    let mut c = first.raw();
    assert_eq!(text(c.cmd_str(&["SET", "k", "first"])), "+OK\r\n");
    // The same address, then every IPv4 address (`*`).
    assert_refuses(first.port(), "127.0.0.1");
    assert_refuses(first.port(), "*");
    // The first server still has every connection, on every core.
    for _ in 0..10 {
        let mut d = first.raw();
        assert_eq!(text(d.cmd_str(&["GET", "k"])), "$5\r\nfirst\r\n");
    }
}

#[test]
fn a_port_shared_with_so_reuseport_by_another_process_is_refused() {
    // (Tests running alongside may take a free port first: try another.)
    let (port, other) = (0..20)
        .find_map(|_| {
            let port = tests::free_port();
            reuseport_socket(Ipv4Addr::LOCALHOST, port)
                .ok()
                .map(|s| (port, s))
        })
        .expect("bind the test's socket");
    // SAFETY: listen on the socket `other` owns.
    check(unsafe { libc::listen(other.0, 16) }).expect("listen");
    assert_refuses(port, "127.0.0.1");
}

#[test]
fn no_other_socket_can_join_the_servers_port() {
    let s = Server::slotd(&["--shards", "2"]);
    match reuseport_socket(Ipv4Addr::LOCALHOST, s.port()) {
        Ok(_) => panic!("a SO_REUSEPORT socket could bind slotd's address"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}"),
    }
    let mut c = s.raw();
    assert_eq!(text(c.cmd_str(&["PING"])), "+PONG\r\n");
}

#[test]
fn connections_are_spread_over_the_cores() {
    let s = Server::slotd(&["--shards", "2"]);
    let port = s.port();
    // 40 connections opened at once from 4 threads.
    let openers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        let mut c = RawConn::connect(port).expect("connect");
                        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
                        c
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut conns: Vec<RawConn> = openers
        .into_iter()
        .flat_map(|t| t.join().expect("opener thread"))
        .collect();
    assert_eq!(conns.len(), 40);
    let info = info_of(&mut conns[0], "clients");
    assert_eq!(info_field(&info, "connected_clients"), "40", "{info}");
    let per_core: Vec<u64> = info_field(&info, "slotd_shard_clients")
        .split(',')
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(per_core.len(), 2, "{info}");
    assert_eq!(per_core.iter().sum::<u64>(), 40, "{info}");
    assert!(per_core.iter().all(|&n| n >= 15), "{per_core:?}");
    // Closed connections leave their core's count.
    conns.truncate(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = info_of(&mut conns[0], "clients");
        if info_field(&info, "connected_clients") == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `ss -to` line of the server's end of the connection whose client
/// port is `client_port`, or None when `ss` is missing.
fn server_socket_line(server_port: u16, client_port: u16) -> Option<String> {
    let out = match Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{server_port} )"))
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: ss is not available ({e})");
            return None;
        }
    };
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let peer = format!("127.0.0.1:{client_port}");
    // Columns: Recv-Q Send-Q Local Peer [timer].
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(peer.as_str()))
        .unwrap_or_else(|| panic!("no server socket for client port {client_port} in\n{out}"));
    Some(line.to_string())
}

/// Seconds until the keepalive timer in an `ss -o` line fires (`ss` shows
/// e.g. `timer:(keepalive,1min39sec,0)`), or None without one.
fn keepalive_due_s(line: &str) -> Option<f64> {
    let rest = line.split("timer:(keepalive,").nth(1)?;
    let mut t = rest.split(',').next()?;
    let mut secs = 0.0;
    for (unit, scale) in [("min", 60.0), ("sec", 1.0), ("ms", 0.001)] {
        if let Some((n, after)) = t.split_once(unit) {
            secs += n.parse::<f64>().ok()? * scale;
            t = after;
        }
    }
    Some(secs)
}

fn client_port(c: &RawConn) -> u16 {
    c.stream().local_addr().unwrap().port()
}

#[test]
fn tcp_keepalive_arms_a_keepalive_timer_on_accepted_connections() {
    // One core, so CONFIG SET's reload is done before the next accept.
    let s = Server::slotd(&["--shards", "1", "--tcp-keepalive", "100"]);
    let mut a = s.raw();
    assert_eq!(a.cmd_str(&["PING"]), b"+PONG\r\n");
    let Some(line) = server_socket_line(s.port(), client_port(&a)) else {
        return;
    };
    // The first probe is due after the 100 s interval.
    let due = keepalive_due_s(&line);
    assert!(due.is_some_and(|t| t > 60.0 && t <= 100.0), "{line}");
    // CONFIG SET applies to new connections.
    assert_eq!(
        text(a.cmd_str(&["CONFIG", "SET", "tcp-keepalive", "0"])),
        "+OK\r\n"
    );
    let mut b = s.raw();
    assert_eq!(b.cmd_str(&["PING"]), b"+PONG\r\n");
    let line = server_socket_line(s.port(), client_port(&b)).unwrap();
    assert_eq!(keepalive_due_s(&line), None, "{line}");

    let off = Server::slotd(&["--shards", "2", "--tcp-keepalive", "0"]);
    for _ in 0..4 {
        let mut c = off.raw();
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        let line = server_socket_line(off.port(), client_port(&c)).unwrap();
        assert_eq!(keepalive_due_s(&line), None, "{line}");
    }
    let on = Server::slotd(&["--shards", "2"]);
    for _ in 0..4 {
        let mut c = on.raw();
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        let line = server_socket_line(on.port(), client_port(&c)).unwrap();
        // The default, 300 s.
        let due = keepalive_due_s(&line);
        assert!(due.is_some_and(|t| t > 240.0 && t <= 300.0), "{line}");
    }
}

/// Redis 7.0's reply to a client refused by protected mode.
const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

#[test]
fn protected_mode_refuses_peers_other_than_127_0_0_1_and_1() {
    // Redis 7.0 lets in only peers 127.0.0.1 and ::1; 127.0.0.2 is another
    // loopback address, so it stands in for a remote client here. One core,
    // so CONFIG SET's reload is done before the next accept.
    let s = Server::slotd(&["--shards", "1"]);
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let mut c = s.raw();
    let before = info_of(&mut c, "stats");
    let denied = connect_from(other, s.port()).expect("connect from 127.0.0.2");
    assert_eq!(read_to_close(denied), DENIED);
    // Rejected, and (as in Redis 7.0) not counted as received.
    let after = info_of(&mut c, "stats");
    assert_eq!(info_field(&after, "rejected_connections"), "1", "{after}");
    assert_eq!(
        info_field(&after, "total_connections_received"),
        info_field(&before, "total_connections_received"),
        "{after}"
    );
    assert!(
        !s.log().contains("DENIED"),
        "a denied client is not logged:\n{}",
        s.log()
    );

    assert_eq!(
        text(c.cmd_str(&["CONFIG", "SET", "protected-mode", "no"])),
        "+OK\r\n"
    );
    let mut open = connect_from(other, s.port()).unwrap();
    assert_eq!(ping(&mut open), "+PONG\r\n");

    // With a password, protected mode lets every peer reach AUTH.
    assert_eq!(
        text(c.cmd_str(&[
            "CONFIG",
            "SET",
            "protected-mode",
            "yes",
            "requirepass",
            "pw"
        ])),
        "+OK\r\n"
    );
    let mut guarded = connect_from(other, s.port()).unwrap();
    assert_eq!(ping(&mut guarded), "-NOAUTH Authentication required.\r\n");
}
