//! Listening sockets and socket options. `main` makes one listening socket
//! per bind address for the whole process, before the cores start, and
//! without SO_REUSEPORT: a port another process listens on fails the start
//! as in Redis, and no other process can join ours. Every core accepts on
//! all of them (the kernel wakes one waiting core per connection), and the
//! accepting core hands each connection to the core with the fewest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The address of the socket's peer (`peer`) or of its own end.
pub fn sock_addr(fd: i32, peer: bool) -> Option<SocketAddr> {
    // SAFETY: getpeername/getsockname fill a sockaddr_storage we own; the
    // family says which sockaddr it then holds.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = &mut ss as *mut _ as *mut libc::sockaddr;
        let rc = if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        };
        if rc != 0 {
            return None;
        }
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let a = &*(&ss as *const _ as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
            }
            libc::AF_INET6 => {
                let a = &*(&ss as *const _ as *const libc::sockaddr_in6);
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
            }
            _ => None,
        }
    }
}

/// "ip:port" of the socket's peer (`peer`) or of its own end, as CLIENT
/// LIST shows it ("?:0" when unknown).
pub fn sock_name(fd: i32, peer: bool) -> String {
    match sock_addr(fd, peer) {
        Some(a) => format!("{}:{}", a.ip(), a.port()),
        None => "?:0".into(),
    }
}

/// Resolves a `bind` entry: `*` is every IPv4 address, `::*` every IPv6
/// one; a leading `-` marks an address that may be unavailable.
pub fn bind_addr(entry: &str, port: u16) -> Option<(SocketAddr, bool)> {
    let (optional, a) = match entry.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let ip: IpAddr = match a {
        "*" => "0.0.0.0".parse().ok()?,
        "::*" => "::".parse().ok()?,
        other => other.parse().ok()?,
    };
    Some((SocketAddr::new(ip, port), optional))
}

/// Why a listening socket could not be made: the call that failed and its
/// error, shown as Redis's anet.c words it (`bind: Address already in use`).
#[derive(Debug)]
pub struct ListenError {
    call: &'static str,
    err: std::io::Error,
}

impl ListenError {
    fn last(call: &'static str) -> ListenError {
        ListenError {
            call,
            err: std::io::Error::last_os_error(),
        }
    }

    /// The errno of the failed call.
    pub fn errno(&self) -> i32 {
        self.err.raw_os_error().unwrap_or(0)
    }
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.call == "socket" {
            // anet.c skips an address family it cannot open and then says so.
            write!(f, "unable to bind socket, errno: {}", self.errno())
        } else {
            write!(f, "{}: {}", self.call, crate::log::io_error_text(&self.err))
        }
    }
}

/// Sets an int socket option.
///
/// # Safety
/// `fd` must be a socket the caller owns.
unsafe fn set_int(fd: i32, level: i32, opt: i32, val: libc::c_int) -> std::io::Result<()> {
    let rc = libc::setsockopt(
        fd,
        level,
        opt,
        &val as *const libc::c_int as *const libc::c_void,
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    );
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A listening TCP socket on `addr`, with SO_REUSEADDR (a restart may bind
/// while old connections linger in TIME_WAIT) and, for IPv6, IPV6_V6ONLY.
/// Never SO_REUSEPORT: the port must be this process's alone.
pub fn listen(addr: SocketAddr, backlog: i32) -> Result<i32, ListenError> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket syscalls on a fresh fd we own (closed on every
    // error path); the sockaddr structs are fully initialised before use.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(ListenError::last("socket"));
        }
        let bound = (|| {
            if !addr.is_ipv4() {
                set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).map_err(|err| {
                    ListenError {
                        call: "setsockopt",
                        err,
                    }
                })?;
            }
            set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(|err| ListenError {
                call: "setsockopt SO_REUSEADDR",
                err,
            })?;
            let rc = match addr {
                SocketAddr::V4(a) => {
                    let mut sa: libc::sockaddr_in = std::mem::zeroed();
                    sa.sin_family = libc::AF_INET as u16;
                    sa.sin_port = a.port().to_be();
                    sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                    libc::bind(
                        fd,
                        &sa as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in>() as u32,
                    )
                }
                SocketAddr::V6(a) => {
                    let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                    sa.sin6_family = libc::AF_INET6 as u16;
                    sa.sin6_port = a.port().to_be();
                    sa.sin6_addr.s6_addr = a.ip().octets();
                    libc::bind(
                        fd,
                        &sa as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in6>() as u32,
                    )
                }
            };
            if rc != 0 {
                return Err(ListenError::last("bind"));
            }
            if libc::listen(fd, backlog) != 0 {
                return Err(ListenError::last("listen"));
            }
            Ok(())
        })();
        match bound {
            Ok(()) => Ok(fd),
            Err(e) => {
                libc::close(fd);
                Err(e)
            }
        }
    }
}

/// Errors that mean this kind of address cannot be used on this host: Redis
/// skips such a bind entry, whether or not it is optional.
fn unsupported(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOPROTOOPT
            | libc::EPROTONOSUPPORT
            | libc::ESOCKTNOSUPPORT
            | libc::EPFNOSUPPORT
            | libc::EAFNOSUPPORT
    )
}

/// Listens on `port` at every `bind` entry, as Redis 7.0's `listenToPort`:
/// a failure is logged with the entry as configured (without its `-`); an
/// optional entry whose address is not available, or an address family the
/// host does not support, is skipped; any other failure closes what was
/// opened and returns Err (the caller aborts). Port 0 listens nowhere.
pub fn listen_to_port(binds: &[String], port: u16, backlog: i32) -> Result<Vec<i32>, ()> {
    let mut fds = Vec::new();
    if port == 0 {
        return Ok(fds);
    }
    for entry in binds {
        let shown = entry.strip_prefix('-').unwrap_or(entry);
        let opened = match bind_addr(entry, port) {
            Some((addr, optional)) => listen(addr, backlog).map_err(|e| {
                let skip = (e.errno() == libc::EADDRNOTAVAIL && optional) || unsupported(e.errno());
                (e.to_string(), skip)
            }),
            None => Err(("not a numeric IPv4 or IPv6 address".to_string(), false)),
        };
        match opened {
            Ok(fd) => fds.push(fd),
            Err((why, skip)) => {
                crate::log::warning(format_args!(
                    "Warning: Could not create server TCP listening socket {shown}:{port}: {why}"
                ));
                if !skip {
                    for fd in fds {
                        // SAFETY: closing the sockets this call opened.
                        unsafe { libc::close(fd) };
                    }
                    return Err(());
                }
            }
        }
    }
    Ok(fds)
}

/// Turns on TCP keepalive as Redis's `anetKeepAlive` does for
/// `tcp-keepalive`: the first probe after `interval` idle seconds, then
/// every third of it, and the peer is dropped after 3 unanswered probes.
/// Best effort, like Redis: a refused option changes nothing else.
pub fn keepalive(fd: i32, interval: i32) {
    // SAFETY: setting options on an accepted socket the caller owns.
    unsafe {
        let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        let _ = set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, interval);
        let _ = set_int(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_KEEPINTVL,
            (interval / 3).max(1),
        );
        let _ = set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    }
}

/// Turns off Nagle's algorithm: replies leave at once.
pub fn nodelay(fd: i32) {
    set_nodelay(fd, true);
}

/// Turns `TCP_NODELAY` on or off.
pub fn set_nodelay(fd: i32, on: bool) {
    // SAFETY: setting an option on a socket the caller owns.
    let _ = unsafe { set_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on as i32) };
}

/// Redis 7.0's reply to a client refused by protected mode.
pub const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether protected mode refuses a client from `peer` (None: its address
/// could not be read), as Redis 7.0's `clientAcceptHandler` decides: with
/// `protected-mode yes` and no password for the default user, only peers
/// 127.0.0.1 and ::1 are let in (exactly those: Redis compares the address
/// text, so other 127/8 addresses are refused too).
pub fn protected_mode_denies(
    peer: Option<IpAddr>,
    protected_mode: bool,
    has_password: bool,
) -> bool {
    if !protected_mode || has_password {
        return false;
    }
    !matches!(peer, Some(ip) if ip == Ipv4Addr::LOCALHOST || ip == Ipv6Addr::LOCALHOST)
}

/// Raises the open files limit to what `maxclients` clients plus `reserved`
/// other descriptors need, as Redis does at start, with its log lines.
/// Returns the maxclients the limit allows (lower when it could not be
/// raised enough); exits when not even the reserve fits.
pub fn adjust_open_files_limit(maxclients: u32, reserved: u64) -> u32 {
    let maxfiles = maxclients as u64 + reserved;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == -1 {
        crate::log::warning(format_args!(
            "Unable to obtain the current NOFILE limit ({}), assuming 1024 and setting the max clients configuration accordingly.",
            crate::log::io_error_text(&std::io::Error::last_os_error())
        ));
        return 1024u64.saturating_sub(reserved).max(1) as u32;
    }
    let old = lim.rlim_cur;
    if old >= maxfiles {
        return maxclients;
    }
    // Try `maxfiles`, then less: at most the hard limit, which only a
    // privileged process can raise.
    let mut best = maxfiles;
    let mut error = None;
    while best > old {
        let want = libc::rlimit {
            rlim_cur: best,
            rlim_max: best.max(lim.rlim_max),
        };
        // SAFETY: setrlimit reads the rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            break;
        }
        error = Some(std::io::Error::last_os_error());
        best = if best > lim.rlim_max {
            lim.rlim_max
        } else {
            best.saturating_sub(16)
        };
    }
    let best = best.max(old);
    if best >= maxfiles {
        crate::log::notice(format_args!(
            "Increased maximum number of open files to {maxfiles} (it was originally set to {old})."
        ));
        return maxclients;
    }
    if best <= reserved {
        crate::log::warning(format_args!(
            "Your current 'ulimit -n' of {old} is not enough for the server to start. Please increase your open file limit to at least {maxfiles}. Exiting."
        ));
        std::process::exit(1);
    }
    let reduced = (best - reserved).min(u32::MAX as u64) as u32;
    crate::log::warning(format_args!(
        "You requested maxclients of {maxclients} requiring at least {maxfiles} max file descriptors."
    ));
    crate::log::warning(format_args!(
        "Server can't set maximum open files to {maxfiles} because of OS error: {}.",
        error
            .as_ref()
            .map(crate::log::io_error_text)
            .unwrap_or_default()
    ));
    crate::log::warning(format_args!(
        "Current maximum open files is {best}. maxclients has been reduced to {reduced} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
    ));
    reduced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn protected_mode_lets_in_only_127_0_0_1_and_1_without_a_password() {
        for local in ["127.0.0.1", "::1"] {
            assert!(!protected_mode_denies(ip(local), true, false), "{local}");
        }
        for other in [
            "127.0.0.2",
            "10.1.2.3",
            "192.168.0.1",
            "::ffff:127.0.0.1",
            "fe80::1",
        ] {
            assert!(protected_mode_denies(ip(other), true, false), "{other}");
        }
        // A peer whose address cannot be read is not known to be local.
        assert!(protected_mode_denies(None, true, false));
    }

    #[test]
    fn protected_mode_off_or_a_password_lets_everyone_in() {
        for peer in [ip("10.1.2.3"), ip("2001:db8::1"), None] {
            assert!(!protected_mode_denies(peer, false, false));
            assert!(!protected_mode_denies(peer, true, true));
            assert!(!protected_mode_denies(peer, false, true));
        }
    }

    #[test]
    fn a_taken_address_fails_with_redis_words_and_no_reuseport_sharing() {
        let first = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = local_port(first);
        let e = listen(SocketAddr::from(([127, 0, 0, 1], port)), 16).unwrap_err();
        assert_eq!(e.errno(), libc::EADDRINUSE);
        assert_eq!(e.to_string(), "bind: Address already in use");
        // SAFETY: closing the socket this test opened.
        unsafe { libc::close(first) };
        // Closed, the address can be listened on again at once.
        let again = listen(SocketAddr::from(([127, 0, 0, 1], port)), 16).unwrap();
        // SAFETY: as above.
        unsafe { libc::close(again) };
    }

    #[test]
    fn listen_to_port_skips_only_what_redis_skips() {
        let first = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = local_port(first);
        // Taken: fatal, even when optional (only EADDRNOTAVAIL is skipped
        // for those).
        assert!(listen_to_port(&["127.0.0.1".into()], port, 16).is_err());
        assert!(listen_to_port(&["-127.0.0.1".into()], port, 16).is_err());
        // SAFETY: closing the socket this test opened.
        unsafe { libc::close(first) };
        // An address this host does not have: skipped only when optional.
        let absent = "-192.0.2.1".to_string();
        let fds = listen_to_port(&[absent.clone(), "127.0.0.1".into()], port, 16).unwrap();
        assert_eq!(fds.len(), 1);
        for fd in fds {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
        assert!(listen_to_port(&[absent[1..].to_string()], port, 16).is_err());
        assert_eq!(listen_to_port(&["127.0.0.1".into()], 0, 16), Ok(Vec::new()));
    }

    fn local_port(fd: i32) -> u16 {
        // SAFETY: getsockname fills a sockaddr_in we own (an IPv4 socket).
        unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len);
            u16::from_be(sa.sin_port)
        }
    }
}
