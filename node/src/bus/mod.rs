//! # bus: the cluster bus core (cluster mode only)
//!
//! Above `mesh`. One thread, not a shard: it owns the cluster state
//! (`cluster::state::Cluster`, a state machine free of I/O) and is its thin
//! driver: the bus port's sockets, the 100 ms cron, `nodes.conf`, and the
//! CLUSTER commands shard cores queue to it (`mesh::Bus`). Each time the
//! slot map changes it publishes a new immutable one to the shard cores.
//! It sleeps in `poll(2)` and costs next to nothing when idle; it runs
//! unpinned unless a tuning profile gives it a CPU ([`Settings::cpu`]).
//!
//! API: [`Settings`], [`load`] (the node's identity and view from
//! `nodes.conf`, created when missing), [`start`] (the thread).

mod conf;
mod driver;

pub use conf::{load, Loaded};
pub use driver::start;

use cluster::slotmap::EndpointType;

/// The cluster directives, as the bus reads them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_timeout_ms: u64,
    pub announce_ip: String,
    /// Client port and bus port announced (after `cluster-announce-port`
    /// and `cluster-announce-bus-port`).
    pub port: u16,
    pub cport: u16,
    /// The client port and bus port this node listens on (what a
    /// directive set back to 0 announces again).
    pub listen: (u16, u16),
    pub hostname: String,
    pub require_full_coverage: bool,
    pub endpoint: EndpointType,
    /// `cluster-link-sendbuf-limit` (0: none).
    pub sendbuf_limit: u64,
    /// `cluster-replica-validity-factor`, `cluster-replica-no-failover`,
    /// `cluster-migration-barrier`, `cluster-allow-replica-migration`,
    /// `repl-ping-replica-period` (seconds).
    pub validity_factor: u64,
    pub no_failover: bool,
    pub migration_barrier: u64,
    pub allow_migration: bool,
    pub repl_ping_period: u64,
    /// `shard-port-base`: each shard core's own client port, announced to
    /// the other nodes (empty: off).
    pub shard_ports: Vec<u16>,
    /// The CPU a tuning profile gives the bus core (`None`: unpinned).
    pub cpu: Option<usize>,
}

/// What the bus reads of the node's replication. The `replica` room, which
/// comes after this one, implements it.
pub trait ReplicationView: Send + Sync {
    /// This node's replication offset (applied, as a replica; produced, as
    /// a master) and, as a replica, how many ms its data lags its master
    /// (see `cluster::state::Cluster::set_replication`).
    fn position(&self) -> (i64, u64);
    /// The replication offset once every write made so far is in the
    /// stream (the cores have paused their writers); `None` if it could
    /// not be known.
    fn final_offset(&self) -> Option<i64>;
}

impl Settings {
    /// From the configuration: `port` the client port, `cport` the bus
    /// port this node listens on.
    pub fn from(cfg: &crate::config::Config, port: u16, cport: u16) -> Settings {
        let announced = |name: &str, actual: u16| match cfg.int(name) {
            0 => actual,
            p => p as u16,
        };
        Settings {
            node_timeout_ms: cfg.int("cluster-node-timeout").max(1) as u64,
            announce_ip: cfg.text("cluster-announce-ip").unwrap_or_default(),
            port: announced("cluster-announce-port", port),
            cport: announced("cluster-announce-bus-port", cport),
            listen: (port, cport),
            hostname: cfg.text("cluster-announce-hostname").unwrap_or_default(),
            require_full_coverage: cfg.flag("cluster-require-full-coverage"),
            endpoint: cfg
                .text("cluster-preferred-endpoint-type")
                .and_then(|t| EndpointType::parse(&t))
                .unwrap_or_default(),
            sendbuf_limit: cfg.int("cluster-link-sendbuf-limit").max(0) as u64,
            validity_factor: cfg.int("cluster-replica-validity-factor").max(0) as u64,
            no_failover: cfg.flag("cluster-replica-no-failover"),
            migration_barrier: cfg.int("cluster-migration-barrier").max(0) as u64,
            allow_migration: cfg.flag("cluster-allow-replica-migration"),
            repl_ping_period: cfg.int("repl-ping-replica-period").max(1) as u64,
            shard_ports: Vec::new(),
            cpu: None,
        }
    }

    /// What the state machine reads of them.
    pub fn protocol(&self) -> cluster::state::Config {
        let mut c = cluster::state::Config::new(self.port);
        c.node_timeout_ms = self.node_timeout_ms;
        c.announce_ip = self.announce_ip.clone();
        c.cport = self.cport;
        c.hostname = self.hostname.clone();
        c.require_full_coverage = self.require_full_coverage;
        c.preferred_endpoint = self.endpoint;
        c.replica_validity_factor = self.validity_factor;
        c.replica_no_failover = self.no_failover;
        c.migration_barrier = self.migration_barrier;
        c.allow_replica_migration = self.allow_migration;
        c.repl_ping_period_ms = self.repl_ping_period * 1000;
        c
    }
}
