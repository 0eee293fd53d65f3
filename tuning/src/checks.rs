//! Startup warnings: Redis 7.0's host checks (same wording, so operators'
//! runbooks and log alerts keep working) plus slotd's own placement checks.

use crate::cpulist;
use crate::host::Host;

/// Inputs of the checks that are not in `/sys` or `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckParams {
    /// The listen backlog the server asks for (Redis `tcp-backlog`, 511).
    pub tcp_backlog: u64,
    /// Maximum clients the server wants to serve (Redis `maxclients`, 10000).
    pub maxclients: u64,
    /// The soft `RLIMIT_NOFILE`; `None` skips the open-files check.
    pub open_files_limit: Option<u64>,
    /// The NIC whose IRQs and node to check; default [`Host::default_nic`].
    pub nic: Option<String>,
    /// Whether to give Redis's `vm.overcommit_memory` warning, which is
    /// about fork()ed background saves and replication (slotd never forks).
    pub overcommit: bool,
    /// Whether to give Redis's THP warning (not when the server turned THP
    /// off for itself, as Redis does with `disable-thp yes`).
    pub thp: bool,
}

impl Default for CheckParams {
    fn default() -> Self {
        CheckParams {
            tcp_backlog: DEFAULT_TCP_BACKLOG,
            maxclients: DEFAULT_MAXCLIENTS,
            open_files_limit: None,
            nic: None,
            overcommit: true,
            thp: true,
        }
    }
}

impl CheckParams {
    /// Defaults, with the open-files limit of the calling process.
    pub fn for_this_process() -> Self {
        CheckParams {
            open_files_limit: open_files_limit(),
            ..CheckParams::default()
        }
    }
}

/// Redis's default `tcp-backlog`.
pub const DEFAULT_TCP_BACKLOG: u64 = 511;
/// Redis's default `maxclients`.
pub const DEFAULT_MAXCLIENTS: u64 = 10_000;
/// File descriptors Redis keeps for itself beyond clients.
pub const RESERVED_FDS: u64 = 32;

/// The soft `RLIMIT_NOFILE` of this process (`u64::MAX` when unlimited).
pub fn open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which outlives the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return None;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        Some(u64::MAX)
    } else {
        // rlim_t is u64 on 64-bit Linux but narrower on some 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        Some(lim.rlim_cur as u64)
    }
}

/// Redis 7.0's overcommit warning.
pub const OVERCOMMIT_WARNING: &str = "WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.";

/// Redis 7.0's THP warning (given only when THP is `always`).
pub const THP_WARNING: &str = "WARNING You have Transparent Huge Pages (THP) support enabled in your kernel. This will create latency and memory usage issues with Redis. To fix this issue run the command 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your /etc/rc.local in order to retain the setting after a reboot. Redis must be restarted after THP is disabled (set to 'madvise' or 'never').";

/// Whether transparent huge pages are on for every process (`always`).
pub fn thp_always(host: &Host) -> bool {
    host.settings.thp_enabled.as_deref() == Some("always")
}

/// Warning lines for `host` running shards on `shard_cpus`, empty when all
/// is well. Unknown settings (unreadable files) give no warning.
pub fn startup_checks_with(host: &Host, shard_cpus: &[usize], p: &CheckParams) -> Vec<String> {
    let mut out = Vec::new();
    let s = &host.settings;

    if let Some(limit) = p.open_files_limit {
        let wanted = p.maxclients.saturating_add(RESERVED_FDS);
        if limit < wanted {
            out.push(format!(
                "You requested maxclients of {} requiring at least {} max file descriptors.",
                p.maxclients, wanted
            ));
            if limit <= RESERVED_FDS {
                out.push(format!(
                    "Your current 'ulimit -n' of {limit} is not enough for the server to start. Please increase your open file limit to at least {}. Exiting.",
                    RESERVED_FDS + 1
                ));
            } else {
                out.push(format!(
                    "Current maximum open files is {limit}. maxclients has been reduced to {} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
                    limit - RESERVED_FDS
                ));
            }
        }
    }
    if let Some(somaxconn) = s.somaxconn {
        if somaxconn < p.tcp_backlog {
            out.push(format!(
                "WARNING: The TCP backlog setting of {} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {somaxconn}.",
                p.tcp_backlog
            ));
        }
    }
    if p.overcommit && matches!(s.overcommit_memory, Some(v) if v != 1) {
        out.push(OVERCOMMIT_WARNING.to_string());
    }
    if p.thp && thp_always(host) {
        out.push(THP_WARNING.to_string());
    }

    for &c in shard_cpus {
        if host.cpu(c).is_none() {
            out.push(format!(
                "WARNING slotd: shard CPU {c} is not online on this host."
            ));
        }
    }
    let nic = match &p.nic {
        Some(name) => match host.nic(name) {
            Some(n) => Some(n),
            None => {
                out.push(format!(
                    "WARNING slotd: NIC {name} not found; IRQ and NUMA checks skipped."
                ));
                None
            }
        },
        None => host.default_nic(),
    };
    if let Some(nic) = nic {
        let on_shards: Vec<String> = nic
            .irqs
            .iter()
            .filter_map(|irq| {
                let aff = irq.affinity.as_ref()?;
                let hit: Vec<usize> = aff
                    .iter()
                    .copied()
                    .filter(|c| shard_cpus.contains(c))
                    .collect();
                if hit.is_empty() {
                    None
                } else {
                    Some(format!("{}->{}", irq.irq, cpulist::format(&hit)))
                }
            })
            .collect();
        if !on_shards.is_empty() {
            out.push(format!(
                "WARNING slotd: {} of {} IRQs of NIC {} can land on shard cores (IRQ->shard CPUs: {}). Interrupts steal time from shards; pin them elsewhere with 'slotd-tune plan' and 'slotd-tune apply'.",
                on_shards.len(),
                nic.irqs.len(),
                nic.name,
                on_shards.join(" ")
            ));
        }
        if let Some(nic_node) = nic.numa_node {
            for &c in shard_cpus {
                if let Some(cpu) = host.cpu(c) {
                    if cpu.node != nic_node {
                        out.push(format!(
                            "WARNING slotd: shard CPU {c} is on NUMA node {} but NIC {} is on node {nic_node}; its packets and memory cross the interconnect.",
                            cpu.node, nic.name
                        ));
                    }
                }
            }
        }
    }
    out
}
