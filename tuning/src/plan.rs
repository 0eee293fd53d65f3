//! Turning a [`Host`] into a [`Profile`]: shard cores, bus core, IRQ
//! placement, memory policy and kernel settings.
//!
//! # Algorithm (deterministic: same host and options, same file)
//!
//! 1. The NIC is `--nic`, else the physical NIC with the most IRQs. Its
//!    NUMA node comes first; when unknown, the lowest node with CPUs does.
//! 2. Physical cores (SMT sibling groups) are ordered: NIC-local node
//!    first, then other nodes by number, within a node by lowest CPU.
//! 3. Housekeeping cores (bus core and, where needed, IRQs): with isolated
//!    CPUs, every non-isolated core, and shards go on isolated cores only.
//!    Otherwise the first core in that order, or for plans that keep SMT
//!    siblings away from IRQs (latency, or no SMT) one core in four of
//!    the NIC's node (at least one).
//! 4. Shards take the first thread of the next cores in order: all of them
//!    for `throughput`, the NIC's node only for `latency` and `balanced`
//!    (all nodes if that node has none free), or exactly `--shards N`.
//! 5. The bus core runs on the first thread of the first housekeeping core.
//! 6. IRQs, by IRQ number, go round-robin over: the SMT siblings of shard
//!    cores on the NIC's node then the rest of the bus core (throughput and
//!    balanced on SMT hosts without isolated CPUs), or else the
//!    housekeeping CPUs of the NIC's node other than the bus CPU (the bus
//!    CPU itself if there is no other). Shard CPUs never take NIC IRQs.

use std::collections::BTreeMap;

use crate::cpulist;
use crate::error::TuneError;
use crate::host::{self, Host};
use crate::profile::{
    BusEntry, Fingerprint, IrqEntry, MemoryEntry, Profile, ProfileKind, ShardEntry, SysctlEntry,
};

/// What `slotd-tune plan` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The NIC to plan around (default: the one with the most IRQs).
    pub nic: Option<String>,
    /// Exact number of shard cores (default: depends on the profile).
    pub shards: Option<usize>,
    /// What to optimise for.
    pub kind: ProfileKind,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            nic: None,
            shards: None,
            kind: ProfileKind::Throughput,
        }
    }
}

/// A physical core: its online threads (lowest first) and node.
#[derive(Debug, Clone)]
struct Core {
    cpus: Vec<usize>,
    node: usize,
    isolated: bool,
}

impl Core {
    fn first(&self) -> usize {
        // Cores are built from non-empty sibling lists.
        self.cpus.first().copied().unwrap_or_default()
    }
}

fn cores_of(host: &Host) -> Vec<Core> {
    let mut by_first: BTreeMap<usize, Core> = BTreeMap::new();
    for cpu in &host.cpus {
        let first = cpu.siblings.first().copied().unwrap_or(cpu.id);
        by_first.entry(first).or_insert_with(|| Core {
            cpus: cpu.siblings.clone(),
            node: cpu.node,
            isolated: host.isolated.contains(&first),
        });
    }
    by_first.into_values().collect()
}

/// Makes a profile for `host`. Errors name what is missing (an unknown
/// NIC, more shards than free physical cores, a host with one core).
pub fn plan(host: &Host, opts: &PlanOptions) -> Result<Profile, TuneError> {
    let nic = match &opts.nic {
        Some(name) => Some(host.nic(name).ok_or_else(|| {
            let known: Vec<&str> = host.nics.iter().map(|n| n.name.as_str()).collect();
            TuneError::Plan(format!(
                "NIC {name} not found; physical NICs on this host: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?),
        None => host.default_nic(),
    };
    let first_node = host
        .nodes
        .iter()
        .find(|n| !n.cpus.is_empty())
        .map_or(0, |n| n.id);
    let nic_node = nic.and_then(|n| n.numa_node).unwrap_or(first_node);
    let node_note = match nic {
        Some(n) if n.numa_node.is_some() => format!("the NIC's node {nic_node}"),
        Some(n) => format!("node {nic_node} (NUMA node of {} unknown)", n.name),
        None => format!("node {nic_node} (no NIC found)"),
    };

    let mut cores = cores_of(host);
    cores.sort_by_key(|c| (c.node != nic_node, c.node, c.first()));
    let has_isolated = cores.iter().any(|c| c.isolated);
    let siblings_take_irqs = opts.kind != ProfileKind::Latency && host.has_smt() && !has_isolated;

    let (housekeeping, pool): (Vec<Core>, Vec<Core>) = if has_isolated {
        let (iso, rest): (Vec<Core>, Vec<Core>) = cores.into_iter().partition(|c| c.isolated);
        if rest.is_empty() {
            return Err(TuneError::Plan(
                "every CPU is isolated: no CPU left for the bus core and IRQs".to_string(),
            ));
        }
        (rest, iso)
    } else {
        let local = cores.iter().filter(|c| c.node == nic_node).count();
        let h = if siblings_take_irqs {
            1
        } else {
            (local / 4).max(1)
        };
        if cores.len() <= h {
            return Err(TuneError::Plan(format!(
                "host has {} physical core(s); slotd needs at least {} (shard cores plus {h} for the bus core and IRQs)",
                cores.len(),
                h + 1
            )));
        }
        let pool = cores.split_off(h);
        (cores, pool)
    };

    let shard_cores: Vec<Core> = match opts.shards {
        Some(0) => return Err(TuneError::Plan("--shards must be at least 1".to_string())),
        Some(n) if n > pool.len() => {
            return Err(TuneError::Plan(format!(
                "asked for {n} shards but only {} physical cores are free for shard cores (one shard per physical core)",
                pool.len()
            )))
        }
        Some(n) => pool.into_iter().take(n).collect(),
        None if opts.kind == ProfileKind::Throughput => pool,
        None => {
            let local: Vec<Core> = pool.iter().filter(|c| c.node == nic_node).cloned().collect();
            if local.is_empty() {
                pool
            } else {
                local
            }
        }
    };

    let bus_core = housekeeping
        .first()
        .ok_or_else(|| TuneError::Plan("no CPU left for the bus core".to_string()))?;
    let bus_cpu = bus_core.first();

    // IRQ CPUs, each with the reason it was picked.
    let mut irq_pool: Vec<(usize, String)> = Vec::new();
    if siblings_take_irqs {
        for c in shard_cores.iter().filter(|c| c.node == nic_node) {
            for &t in c.cpus.iter().skip(1) {
                irq_pool.push((
                    t,
                    format!("SMT sibling of shard CPU {} on {node_note}", c.first()),
                ));
            }
        }
        for &t in bus_core.cpus.iter().skip(1) {
            irq_pool.push((t, format!("SMT sibling of bus CPU {bus_cpu}")));
        }
    } else {
        let local_hk: Vec<&Core> = housekeeping.iter().filter(|c| c.node == nic_node).collect();
        let hk: Vec<&Core> = if local_hk.is_empty() {
            housekeeping.iter().collect()
        } else {
            local_hk
        };
        for c in hk {
            for &t in &c.cpus {
                if t != bus_cpu {
                    irq_pool.push((
                        t,
                        format!("housekeeping CPU on node {}, off the shard cores", c.node),
                    ));
                }
            }
        }
    }
    if irq_pool.is_empty() {
        irq_pool.push((
            bus_cpu,
            "the bus CPU: no other housekeeping CPU, and shard CPUs stay IRQ-free".to_string(),
        ));
    }

    let sibling_fate = |c: &Core| -> String {
        if c.cpus.len() < 2 {
            return String::new();
        }
        let rest = cpulist::format(&c.cpus[1..]);
        if siblings_take_irqs && c.node == nic_node {
            format!("; SMT sibling {rest} takes NIC IRQs")
        } else {
            format!("; SMT sibling {rest} left idle")
        }
    };
    let shards: Vec<ShardEntry> = shard_cores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let place = if c.node == nic_node {
                node_note.clone()
            } else {
                format!("node {} (node {nic_node} has no free core left)", c.node)
            };
            let iso = if c.isolated { "isolated " } else { "" };
            ShardEntry {
                index: i,
                cpu: c.first(),
                numa_node: c.node,
                reason: format!(
                    "first thread of {iso}physical core {} on {place}{}",
                    cpulist::format(&c.cpus),
                    sibling_fate(c)
                ),
            }
        })
        .collect();

    let bus = BusEntry {
        cpu: bus_cpu,
        numa_node: bus_core.node,
        reason: format!(
            "first housekeeping CPU{}; kept apart from the shard cores",
            if bus_core.node == nic_node {
                format!(" on {node_note}")
            } else {
                format!(" (node {})", bus_core.node)
            }
        ),
    };

    let mut irqs = Vec::new();
    if let Some(n) = nic {
        let shared = n.irqs.len() > irq_pool.len();
        for (i, irq) in n.irqs.iter().enumerate() {
            let (cpu, why) = &irq_pool[i % irq_pool.len()];
            let name = irq.name.clone().unwrap_or_default();
            let mut reason = format!("{} queue IRQ to CPU {cpu}: {why}", n.name);
            if shared {
                reason.push_str(&format!(
                    "; {} IRQs share {} CPU(s)",
                    n.irqs.len(),
                    irq_pool.len()
                ));
            }
            irqs.push(IrqEntry {
                irq: irq.irq,
                name,
                cpu: *cpu,
                reason,
            });
        }
    }

    let memory = if opts.kind == ProfileKind::Latency {
        MemoryEntry {
            policy: "bind".to_string(),
            reason: "each shard allocates only from its own NUMA node: no remote-memory latency"
                .to_string(),
        }
    } else {
        MemoryEntry {
            policy: "preferred".to_string(),
            reason: "each shard allocates from its own NUMA node first, spilling over rather than failing"
                .to_string(),
        }
    };

    Ok(Profile::new(
        opts.kind,
        nic.map(|n| n.name.clone()),
        nic.and_then(|n| n.numa_node),
        Fingerprint::of(host),
        bus,
        memory,
        shards,
        irqs,
        sysctls(opts.kind),
    ))
}

fn sysctls(kind: ProfileKind) -> Vec<SysctlEntry> {
    let entry = |name: &str, path: &str, value: &str, reason: &str| SysctlEntry {
        name: name.to_string(),
        path: path.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let latency = kind == ProfileKind::Latency;
    vec![
        entry(
            "net.core.somaxconn",
            host::SOMAXCONN_PATH,
            "65535",
            "accept queues deep enough for reconnect storms; caps the listen backlog",
        ),
        entry(
            "net.ipv4.tcp_max_syn_backlog",
            host::SYN_BACKLOG_PATH,
            "65535",
            "keeps half-open connections during bursts of new clients",
        ),
        entry(
            "vm.overcommit_memory",
            host::OVERCOMMIT_PATH,
            "1",
            "snapshots fork; without overcommit the fork can fail under memory pressure",
        ),
        if latency {
            entry(
                "transparent_hugepage.enabled",
                host::THP_PATH,
                "never",
                "no THP at all: no compaction stalls or fork copy-on-write bloat on the latency path",
            )
        } else {
            entry(
                "transparent_hugepage.enabled",
                host::THP_PATH,
                "madvise",
                "THP only where asked for: 'always' adds latency spikes and fork copy-on-write bloat",
            )
        },
        if latency {
            entry(
                "net.core.busy_poll",
                host::BUSY_POLL_PATH,
                "50",
                "poll NIC queues up to 50 us before sleeping: lower latency for more CPU",
            )
        } else {
            entry(
                "net.core.busy_poll",
                host::BUSY_POLL_PATH,
                "0",
                "no busy polling: CPU time goes to serving requests",
            )
        },
    ]
}
