//! The bus core's loop: `poll(2)` over the bus port's listeners, the
//! links and the mailbox's eventfd, with the state machine's cron every
//! 100 ms. Everything the protocol decides comes back from the state
//! machine as `Action`s, which this file only carries out.

use super::conf::ConfFile;
use super::{ReplicationView, Settings};
use crate::mesh::{Ask, Bus, Mesh, Msg, Request, Response};
use crate::shared::{now_ms, Shared};
use cluster::state::{Action, Cluster, LinkId, TICK_MS};
use cluster::wire;
use engine::Reply;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One TCP connection of the bus.
struct Link {
    stream: TcpStream,
    /// An outbound connect still in progress.
    connecting: bool,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// What the loop owns.
struct Driver {
    cluster: Cluster,
    file: ConfFile,
    settings: Settings,
    shared: Arc<Shared>,
    mesh: Arc<Mesh>,
    bus: Arc<Bus>,
    listeners: Vec<TcpListener>,
    links: HashMap<LinkId, Link>,
    rng: StdRng,
    was_ok: bool,
    /// (current epoch, config epoch, last vote epoch) last saved durably.
    saved_epochs: (u64, u64, u64),
    /// A save of nodes.conf that changes no epoch, left for the end of the
    /// loop's pass (Redis's `clusterBeforeSleep`): a flood of MEETs or
    /// gossip would otherwise write the file once per message.
    save_due: bool,
    /// When a malformed bus message was last logged.
    bad_frame_log_ms: u64,
    replication: Arc<dyn ReplicationView>,
    /// The manual failover's pause of the writers: its number, and how
    /// many cores have paused.
    pause_gen: u64,
    paused_cores: usize,
    /// Slots that have a core in the slot table (served at some point).
    placed: Vec<bool>,
    /// A re-spread of slots between the cores is under way (see
    /// `mesh::respread`); slots whose keys to drop meanwhile; when to try
    /// again after one that moved nothing (Unix ms).
    respreading: bool,
    drop_later: Vec<u16>,
    respread_retry_ms: u64,
}

/// The most slots one re-spread moves (the cores hold their clients for
/// as long as it takes).
const RESPREAD_MAX: usize = 1024;

/// How long after a re-spread that moved nothing the next is tried.
const RESPREAD_RETRY_MS: u64 = 1000;

/// Starts the bus core: `listeners` are the bus port's sockets (from
/// `io::net::listen_to_port`), `cluster` and `file` what `bus::load` read.
pub fn start(
    loaded: super::Loaded,
    settings: Settings,
    listeners: Vec<i32>,
    shared: Arc<Shared>,
    mesh: Arc<Mesh>,
    bus: Arc<Bus>,
    replication: Arc<dyn ReplicationView>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listeners = listeners
        .into_iter()
        .map(|fd| {
            // SAFETY: `fd` is a listening socket handed over to us.
            let l = unsafe { TcpListener::from_raw_fd(fd) };
            let _ = l.set_nonblocking(true);
            l
        })
        .collect();
    let was_ok = loaded.cluster.state_ok();
    let first = bus.map();
    let placed = first.served_all();
    let saved_epochs = epochs(&loaded.cluster);
    let mut d = Driver {
        cluster: loaded.cluster,
        file: loaded.file,
        settings,
        shared,
        mesh,
        bus,
        listeners,
        links: HashMap::new(),
        rng: StdRng::from_entropy(),
        was_ok,
        saved_epochs,
        save_due: false,
        bad_frame_log_ms: 0,
        replication,
        pause_gen: 0,
        paused_cores: 0,
        placed,
        respreading: false,
        drop_later: Vec::new(),
        respread_retry_ms: 0,
    };
    std::thread::Builder::new()
        .name("cluster-bus".into())
        .spawn(move || {
            if let Some(cpu) = d.settings.cpu {
                crate::shared::pin_to(cpu);
            }
            d.run()
        })
}

impl Driver {
    fn run(&mut self) {
        if !self.settings.shard_ports.is_empty() {
            self.publish();
        }
        let mut next_tick = now_ms() as u64;
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut ids: Vec<LinkId> = Vec::new();
        while !self.shared.shutdown.load(Ordering::Relaxed) {
            self.serve_asks();
            let now = now_ms() as u64;
            if now >= next_tick {
                self.reload_settings();
                let (offset, age) = self.replication.position();
                self.cluster.set_replication(offset, age);
                let actions = self.cluster.tick(now, &mut self.rng);
                self.perform(actions);
                if self.respread_retry_ms != 0 && now >= self.respread_retry_ms {
                    self.respread_retry_ms = 0;
                    let served = self.bus.map().served_all();
                    self.respread(&served);
                }
                self.enforce_sendbuf_limit();
                if let Err(e) = self.file.sync() {
                    self.fatal_save(&e);
                }
                for (id, l) in &self.links {
                    self.cluster.link_buffer(
                        *id,
                        l.output.capacity() as u64,
                        l.output.len() as u64,
                    );
                }
                next_tick = now + TICK_MS;
            }
            if self.save_due {
                self.save_config();
            }
            fds.clear();
            ids.clear();
            fds.push(pollfd(self.bus.eventfd(), libc::POLLIN));
            for l in &self.listeners {
                fds.push(pollfd(l.as_raw_fd(), libc::POLLIN));
            }
            for (id, link) in &self.links {
                let mut ev = libc::POLLIN;
                if link.connecting || !link.output.is_empty() {
                    ev |= libc::POLLOUT;
                }
                ids.push(*id);
                fds.push(pollfd(link.stream.as_raw_fd(), ev));
            }
            // Whether the shard cores' SPUBLISHes need the bus (a node
            // alone in its shard sends them nowhere).
            self.bus.set_shard_alone(!self.cluster.has_shard_peers());
            let wait = next_tick.saturating_sub(now_ms() as u64).min(TICK_MS) as i32;
            if !self.bus.prepare_sleep() {
                continue;
            }
            // SAFETY: `fds` is a valid array of pollfd we own.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
            self.bus.woke();
            if n <= 0 {
                continue;
            }
            let nl = self.listeners.len();
            for i in 0..nl {
                if fds[1 + i].revents & libc::POLLIN != 0 {
                    self.accept(i);
                }
            }
            for (i, id) in ids.iter().enumerate() {
                let re = fds[1 + nl + i].revents;
                if re != 0 {
                    self.link_ready(*id, re);
                }
            }
        }
        if self.save_due {
            self.save_config();
        }
    }

    /// Re-reads the cluster directives CONFIG SET may have changed.
    fn reload_settings(&mut self) {
        let Ok(cfg) = self.shared.config.lock() else {
            return;
        };
        let (port, cport) = self.settings.listen;
        let mut s = Settings::from(&cfg, port, cport);
        drop(cfg);
        s.shard_ports = self.settings.shard_ports.clone();
        s.cpu = self.settings.cpu;
        self.settings.sendbuf_limit = s.sendbuf_limit;
        if s.node_timeout_ms != self.settings.node_timeout_ms
            || s.require_full_coverage != self.settings.require_full_coverage
            || s.announce_ip != self.settings.announce_ip
            || s.port != self.settings.port
            || s.cport != self.settings.cport
            || s.hostname != self.settings.hostname
            || s.endpoint != self.settings.endpoint
            || s.validity_factor != self.settings.validity_factor
            || s.no_failover != self.settings.no_failover
            || s.migration_barrier != self.settings.migration_barrier
            || s.allow_migration != self.settings.allow_migration
            || s.repl_ping_period != self.settings.repl_ping_period
        {
            let endpoint_changed = s.endpoint != self.settings.endpoint;
            self.cluster.set_config(s.protocol());
            self.settings = s;
            if endpoint_changed {
                self.publish();
            }
        }
    }

    /// Answers the CLUSTER commands the shard cores queued, and sends
    /// their PUBLISHes to the other nodes.
    fn serve_asks(&mut self) {
        while let Some(ask) = self.bus.take() {
            match ask {
                Ask::Command {
                    from,
                    id,
                    args,
                    facts,
                } => {
                    let reply = self.command(&args, &facts);
                    // What a command changed is on disk before its reply
                    // leaves (Redis saves in `clusterBeforeSleep`, before
                    // replies are written).
                    if self.save_due {
                        self.save_config();
                    }
                    self.mesh.send(
                        from,
                        Msg::Resp {
                            id,
                            resp: Response::Replies(vec![reply]),
                        },
                    );
                }
                Ask::Publish {
                    channel,
                    message,
                    sharded,
                } => {
                    let actions = self.cluster.publish(&channel, &message, sharded);
                    self.perform(actions);
                }
                Ask::Paused { gen } if gen == self.pause_gen => {
                    self.paused_cores += 1;
                    if self.paused_cores == self.mesh.cores() {
                        // Every core stopped writing: the stream's offset
                        // now is where the writers stopped.
                        if let Some(offset) = self.replication.final_offset() {
                            let now = now_ms() as u64;
                            let actions = self.cluster.writes_paused(now, offset, &mut self.rng);
                            self.perform(actions);
                        }
                    }
                }
                Ask::Paused { .. } => {}
                Ask::Respread { moved } => {
                    self.respreading = false;
                    for slot in std::mem::take(&mut self.drop_later) {
                        self.tell(self.mesh.slots.core_of(slot), Request::DropSlot { slot });
                    }
                    // One that moved nothing (the cores stayed busy, or
                    // clients wait on the slots) is tried again later.
                    self.respread_retry_ms = match moved {
                        0 => now_ms() as u64 + RESPREAD_RETRY_MS,
                        _ => 0,
                    };
                    // The cores' ports and ranges changed; there may be
                    // more to move.
                    self.publish();
                }
            }
        }
    }

    /// Runs one CLUSTER command on the state machine.
    fn command(&mut self, args: &[bytes::Bytes], facts: &cluster::command::Facts) -> Reply {
        let argv: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        let now = now_ms() as u64;
        let (mut reply, actions) =
            cluster::command::execute(&mut self.cluster, &argv, facts, now, &mut self.rng);
        let saveconfig = argv
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"saveconfig"));
        if saveconfig {
            if let Err(e) = self.file.save(&self.cluster, true) {
                reply = Reply::err(format!(
                    "ERR error saving the cluster node config: {}",
                    crate::log::io_error_text(&e)
                ));
            }
        }
        // The map is compared below, once: a SlotMapChanged needs no
        // second build. Writers resume after it.
        let (actions, resume) = cluster::state::resume_last(
            actions
                .into_iter()
                .filter(|a| {
                    *a != Action::SlotMapChanged && !(saveconfig && *a == Action::SaveConfig)
                })
                .collect(),
        );
        self.perform(actions);
        // Commands change the map without always saying so (a new
        // migration, a reset): publish whenever it differs.
        let map = self.cluster.slot_map(self.settings.endpoint);
        if *self.bus.map() != map {
            self.publish_map(map);
        }
        self.perform(resume);
        reply
    }

    /// Hands the shard cores the current slot map, after placing the
    /// slots that arrive on the cores serving the fewest.
    fn publish(&mut self) {
        let map = self.cluster.slot_map(self.settings.endpoint);
        self.publish_map(map);
    }

    fn publish_map(&mut self, map: cluster::slotmap::SlotMap) {
        let served = map.served_all();
        // Most maps serve no slot that has never been placed.
        let fresh = served
            .iter()
            .zip(&self.placed)
            .fold(false, |f, (s, p)| f | (*s & !*p));
        if fresh {
            self.mesh.slots.place_arrivals(&mut self.placed, &served);
        }
        let map = if self.announce_cores(&served) {
            // MOVED to this node's own slots names their cores' ports.
            self.cluster.slot_map(self.settings.endpoint)
        } else {
            map
        };
        self.bus.publish(map, &self.mesh);
        self.respread(&served);
    }

    /// Starts a re-spread of the `served` slots over the cores when slots
    /// that left made them uneven (`SlotTable::respread_plan`): core 0
    /// carries it out (`mesh::respread`) and says when it is done
    /// (`Ask::Respread`). Slots being migrated or imported stay.
    fn respread(&mut self, served: &[bool]) {
        // Most maps change nothing here: a cheap look first (a reshard
        // publishes one per slot).
        if self.respreading
            || (now_ms() as u64) < self.respread_retry_ms
            || self.mesh.slots.uneven(served).is_none()
        {
            return;
        }
        let movable: Vec<bool> = served
            .iter()
            .enumerate()
            .map(|(s, &on)| {
                on && self.cluster.migrating_to(s as u16).is_none()
                    && self.cluster.importing_from(s as u16).is_none()
            })
            .collect();
        let moves = self
            .mesh
            .slots
            .respread_plan(served, &movable, RESPREAD_MAX);
        if !moves.is_empty() {
            self.respreading = true;
            self.tell(0, Request::Respread { moves });
        }
    }

    /// With `shard-port-base`, tells the state machine which core holds
    /// each slot this node serves; whether that changed.
    fn announce_cores(&mut self, served: &[bool]) -> bool {
        if self.settings.shard_ports.is_empty() {
            return false;
        }
        let core = served
            .iter()
            .enumerate()
            .map(|(s, &on)| match on {
                true => self.mesh.slots.core_of(s as u16) as u16,
                false => cluster::cores::NO_CORE,
            })
            .collect();
        self.cluster.set_my_cores(Some(cluster::cores::CorePorts {
            ports: self.settings.shard_ports.clone(),
            core,
        }))
    }

    /// Sends `req` to shard core `core`, expecting no answer (id 0).
    fn tell(&self, core: usize, req: Request) {
        self.mesh.send(
            core,
            Msg::Req {
                from: 0,
                id: 0,
                client: 0,
                req,
            },
        );
    }

    /// Writes nodes.conf (and fsyncs it when an epoch changed).
    fn save_config(&mut self) {
        let epochs = epochs(&self.cluster);
        let durable = epochs != self.saved_epochs;
        if let Err(e) = self.file.save(&self.cluster, durable) {
            self.fatal_save(&e);
        }
        self.saved_epochs = epochs;
        self.save_due = false;
    }

    /// Carries out what the state machine asked, in order.
    fn perform(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SaveConfig => {
                    // An epoch (a vote, a config epoch) is on disk before
                    // anything that follows it is sent; the rest waits.
                    if epochs(&self.cluster) != self.saved_epochs {
                        self.save_config();
                    } else {
                        self.save_due = true;
                    }
                }
                Action::Connect { link, ip, cport } => self.connect(link, &ip, cport),
                Action::Send { link, msg } => self.send(link, &msg),
                Action::Close { link } => {
                    self.links.remove(&link);
                }
                Action::Failing { node } => crate::log::notice(format_args!(
                    "Marking node {node} as failing (quorum reached)."
                )),
                Action::Log { warning, line } => {
                    if warning {
                        crate::log::warning(format_args!("{line}"));
                    } else {
                        crate::log::notice(format_args!("{line}"));
                    }
                }
                Action::PauseWrites { until_ms } => {
                    self.shared
                        .failover_pause
                        .store(until_ms != 0, Ordering::SeqCst);
                    self.pause_gen += 1;
                    self.paused_cores = 0;
                    for core in 0..self.mesh.cores() {
                        let req = Request::PauseWrites {
                            on: until_ms != 0,
                            gen: self.pause_gen,
                        };
                        self.tell(core, req);
                    }
                }
                Action::SlotMapChanged => self.publish(),
                Action::DropSlotKeys { slots } if self.respreading => {
                    // The slot may be on its way between cores.
                    self.drop_later.extend(slots);
                }
                Action::DropSlotKeys { slots } => {
                    for slot in slots {
                        self.tell(self.mesh.slots.core_of(slot), Request::DropSlot { slot });
                    }
                }
                Action::Deliver {
                    channel,
                    message,
                    shard,
                } => {
                    let (channel, message) = (channel.into(), message.into());
                    for core in 0..self.mesh.cores() {
                        let req = Request::Publish {
                            channel: bytes::Bytes::clone(&channel),
                            message: bytes::Bytes::clone(&message),
                            sharded: shard,
                        };
                        self.tell(core, req);
                    }
                }
            }
        }
        let ok = self.cluster.state_ok();
        if ok != self.was_ok {
            self.was_ok = ok;
            crate::log::warning(format_args!(
                "Cluster state changed: {}",
                if ok { "ok" } else { "fail" }
            ));
        }
    }

    /// Redis stops when it cannot write its cluster config.
    fn fatal_save(&self, e: &std::io::Error) -> ! {
        crate::log::warning(format_args!(
            "Fatal: can't update cluster config file: {}",
            crate::log::io_error_text(e)
        ));
        std::process::exit(1);
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (stream, peer) = match self.listeners[i].accept() {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let _ = stream.set_nonblocking(true);
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let id = self
                .cluster
                .accept(now_ms() as u64, &peer.ip().to_string(), &local);
            crate::log::verbose(format_args!(
                "Accepting cluster node connection from {}:{}",
                peer.ip(),
                peer.port()
            ));
            self.links.insert(
                id,
                Link {
                    stream,
                    connecting: false,
                    input: Vec::new(),
                    output: Vec::new(),
                },
            );
        }
    }

    /// Starts a non-blocking connect for `link`; a failure is reported
    /// to the state machine at once.
    fn connect(&mut self, link: LinkId, ip: &str, cport: u16) {
        let started = ip
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| connect_nonblocking(SocketAddr::new(ip, cport)).ok());
        match started {
            Some(stream) => {
                self.links.insert(
                    link,
                    Link {
                        stream,
                        connecting: true,
                        input: Vec::new(),
                        output: Vec::new(),
                    },
                );
            }
            None => {
                let actions = self.cluster.closed(now_ms() as u64, link);
                self.perform(actions);
            }
        }
    }

    fn send(&mut self, link: LinkId, msg: &wire::Msg) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        // Written when poll says the socket takes it, as Redis's write
        // handler: what a cron queues is still there for its send buffer
        // check.
        l.output.extend_from_slice(&wire::encode(msg));
    }

    /// Writes what `link` can take now.
    fn flush(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        while !l.output.is_empty() {
            match l.stream.write(&l.output) {
                Ok(0) => break,
                Ok(n) => {
                    l.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.broken(link);
                    return;
                }
            }
        }
        if l.output.capacity() > 64 * 1024 && l.output.is_empty() {
            l.output = Vec::new();
        }
    }

    /// Links whose unsent output is over `cluster-link-sendbuf-limit`
    /// are freed, as Redis does in its cron.
    fn enforce_sendbuf_limit(&mut self) {
        let limit = self.settings.sendbuf_limit;
        if limit == 0 {
            return;
        }
        let over: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.output.len() as u64 > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            crate::log::verbose(format_args!(
                "Freeing cluster link due to exceeding send buffer memory limit."
            ));
            self.cluster.link_buffer_limit_exceeded();
            self.broken(id);
        }
    }

    /// The link failed or the peer closed it.
    fn broken(&mut self, link: LinkId) {
        self.links.remove(&link);
        let actions = self.cluster.closed(now_ms() as u64, link);
        self.perform(actions);
    }

    fn link_ready(&mut self, id: LinkId, revents: i16) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if l.connecting {
            if revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) == 0 {
                return;
            }
            let failed = revents & (libc::POLLERR | libc::POLLHUP) != 0
                || !matches!(l.stream.take_error(), Ok(None));
            if failed {
                return self.broken(id);
            }
            l.connecting = false;
            let _ = l.stream.set_nodelay(true);
            let local = l
                .stream
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let actions = self
                .cluster
                .connected(now_ms() as u64, id, &local, &mut self.rng);
            self.perform(actions);
            self.flush(id);
            return;
        }
        if revents & libc::POLLOUT != 0 {
            self.flush(id);
        }
        if revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
            self.read(id);
        }
    }

    /// Reads what arrived on `id` and handles every whole frame in it.
    fn read(&mut self, id: LinkId) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(l) = self.links.get_mut(&id) else {
                return;
            };
            match l.stream.read(&mut buf) {
                Ok(0) => return self.broken(id),
                Ok(n) => l.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.broken(id),
            }
            if !self.frames(id) {
                return;
            }
        }
    }

    /// Handles the whole frames buffered on `id`; false if the link went.
    fn frames(&mut self, id: LinkId) -> bool {
        loop {
            let Some(l) = self.links.get_mut(&id) else {
                return false;
            };
            let Some(first8) = l.input.first_chunk::<8>() else {
                return true;
            };
            let len = match wire::frame_len(first8) {
                Ok(n) => n,
                Err(e) => {
                    self.cluster.note_dropped();
                    crate::log::warning(format_args!(
                        "Bad message length or signature received on the Cluster bus ({e})."
                    ));
                    self.broken(id);
                    return false;
                }
            };
            if l.input.len() < len {
                return true;
            }
            let frame: Vec<u8> = l.input.drain(..len).collect();
            if l.input.is_empty() && l.input.capacity() > 256 * 1024 {
                l.input = Vec::new();
            }
            match wire::decode(&frame) {
                Ok(msg) => {
                    let actions = self.cluster.handle(now_ms() as u64, id, msg, &mut self.rng);
                    self.perform(actions);
                }
                Err(e) => {
                    self.cluster.note_dropped();
                    // At most one line a second: a peer sending garbage
                    // must not flood the log.
                    let now = now_ms() as u64;
                    if now >= self.bad_frame_log_ms + 1000 {
                        self.bad_frame_log_ms = now;
                        crate::log::warning(format_args!("Dropped a cluster bus message: {e}"));
                    }
                }
            }
        }
    }
}

/// The epochs whose change must reach the disk before any message says it.
fn epochs(c: &Cluster) -> (u64, u64, u64) {
    (c.current_epoch(), c.config_epoch(), c.last_vote_epoch())
}

fn pollfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// A TCP socket connecting to `addr` without waiting for it.
fn connect_nonblocking(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: we own `fd`; the TcpStream closes it on drop.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: connect with a sockaddr_in of the right length.
            unsafe {
                libc::connect(
                    fd,
                    &sin as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: connect with a sockaddr_in6 of the right length.
            unsafe {
                libc::connect(
                    fd,
                    &sin6 as *const libc::sockaddr_in6 as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(stream)
}
