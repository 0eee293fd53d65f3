//! The profile file: what `slotd-tune plan` writes, `slotd-tune apply`
//! applies and `slotd --tuning-profile` loads. TOML; every choice carries a
//! one-line `reason`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cpulist;
use crate::error::TuneError;
use crate::host::Host;

/// The file format version this crate writes and reads.
pub const FORMAT: u32 = 1;

/// What a profile optimises for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// Shards on every free physical core of every node; SMT siblings take
    /// the NIC IRQs; no busy polling.
    Throughput,
    /// Shards on the NIC's node only; SMT siblings left idle; IRQs on
    /// housekeeping cores; busy polling on; strict memory binding.
    Latency,
    /// Shards on the NIC's node only; SMT siblings take the NIC IRQs.
    Balanced,
}

impl ProfileKind {
    /// Parses `throughput`, `latency` or `balanced`.
    pub fn parse(s: &str) -> Result<Self, TuneError> {
        match s {
            "throughput" => Ok(ProfileKind::Throughput),
            "latency" => Ok(ProfileKind::Latency),
            "balanced" => Ok(ProfileKind::Balanced),
            other => Err(TuneError::Usage(format!(
                "unknown profile {other:?}: use throughput, latency or balanced"
            ))),
        }
    }
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileKind::Throughput => "throughput",
            ProfileKind::Latency => "latency",
            ProfileKind::Balanced => "balanced",
        })
    }
}

/// The host a profile was made for, to refuse it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of online CPUs.
    pub cpu_count: usize,
    /// Number of NUMA nodes.
    pub numa_nodes: usize,
    /// Online CPU list, kernel format.
    pub online: String,
    /// Isolated CPU list, kernel format (empty for none).
    pub isolated: String,
    /// Each node's CPU list.
    pub node_cpus: Vec<NodeCpus>,
}

/// One node's CPUs in a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCpus {
    /// Node number.
    pub node: usize,
    /// CPU list, kernel format.
    pub cpus: String,
}

impl Fingerprint {
    /// The fingerprint of `host`.
    pub fn of(host: &Host) -> Self {
        Fingerprint {
            cpu_count: host.online.len(),
            numa_nodes: host.nodes.len(),
            online: cpulist::format(&host.online),
            isolated: cpulist::format(&host.isolated),
            node_cpus: host
                .nodes
                .iter()
                .map(|n| NodeCpus {
                    node: n.id,
                    cpus: cpulist::format(&n.cpus),
                })
                .collect(),
        }
    }
}

/// A CPU that runs one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Shard index (0-based, as the server numbers its shard cores).
    pub index: usize,
    /// The CPU the shard's thread is pinned to.
    pub cpu: usize,
    /// That CPU's NUMA node; the shard's memory comes from there.
    pub numa_node: usize,
    /// Why this CPU.
    pub reason: String,
}

/// The CPU that runs the bus core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusEntry {
    /// The CPU.
    pub cpu: usize,
    /// Its NUMA node.
    pub numa_node: usize,
    /// Why this CPU.
    pub reason: String,
}

/// Where one NIC IRQ goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqEntry {
    /// IRQ number.
    pub irq: u32,
    /// Its `/proc/interrupts` name, empty when unknown.
    pub name: String,
    /// The one CPU it is pinned to.
    pub cpu: usize,
    /// Why this CPU.
    pub reason: String,
}

/// Memory policy for shard memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// `bind` (only the shard's node) or `preferred` (its node first).
    pub policy: String,
    /// Why.
    pub reason: String,
}

/// One kernel setting to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlEntry {
    /// Its usual name (`net.core.somaxconn`).
    pub name: String,
    /// The file written (absolute host path).
    pub path: String,
    /// The value written.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// A tuning profile. Made by [`crate::plan()`], read by [`crate::load_profile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// File format version ([`FORMAT`]).
    pub format: u32,
    /// What the profile optimises for.
    pub profile: ProfileKind,
    /// The NIC the plan was made around, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic: Option<String>,
    /// That NIC's NUMA node, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_numa_node: Option<usize>,
    /// The host the plan was made for.
    pub fingerprint: Fingerprint,
    /// Bus core placement.
    pub bus: BusEntry,
    /// Shard memory policy.
    pub memory: MemoryEntry,
    /// Shard cores, by index.
    #[serde(default)]
    pub shards: Vec<ShardEntry>,
    /// NIC IRQ placement.
    #[serde(default)]
    pub irqs: Vec<IrqEntry>,
    /// Kernel settings.
    #[serde(default)]
    pub sysctls: Vec<SysctlEntry>,
    /// `shards[i].cpu`, kept so [`Profile::shard_cpus`] can lend a slice.
    #[serde(skip)]
    shard_cpu_list: Vec<usize>,
}

const HEADER: &str = "# slotd tuning profile, written by `slotd-tune plan`.\n\
# Each entry carries a one-line `reason`. Check it against a host with\n\
# `slotd-tune check --profile-file FILE`, apply with `slotd-tune apply FILE`.\n\n";

impl Profile {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        profile: ProfileKind,
        nic: Option<String>,
        nic_numa_node: Option<usize>,
        fingerprint: Fingerprint,
        bus: BusEntry,
        memory: MemoryEntry,
        shards: Vec<ShardEntry>,
        irqs: Vec<IrqEntry>,
        sysctls: Vec<SysctlEntry>,
    ) -> Self {
        let shard_cpu_list = shards.iter().map(|s| s.cpu).collect();
        Profile {
            format: FORMAT,
            profile,
            nic,
            nic_numa_node,
            fingerprint,
            bus,
            memory,
            shards,
            irqs,
            sysctls,
            shard_cpu_list,
        }
    }

    /// The CPUs that run shard cores, shard 0 first.
    pub fn shard_cpus(&self) -> &[usize] {
        &self.shard_cpu_list
    }

    /// The CPU that runs the bus core.
    pub fn bus_cpu(&self) -> usize {
        self.bus.cpu
    }

    /// The NUMA node of shard `i`, `None` when there is no shard `i`.
    pub fn numa_node_of_shard(&self, i: usize) -> Option<usize> {
        self.shards.get(i).map(|s| s.numa_node)
    }

    /// The profile as TOML text, with a header comment.
    pub fn to_toml(&self) -> Result<String, TuneError> {
        let body = toml::to_string(self)
            .map_err(|e| TuneError::Plan(format!("cannot encode the profile as TOML: {e}")))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Parses profile text; `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, TuneError> {
        let mut p: Profile = toml::from_str(text)
            .map_err(|e| TuneError::parse(path, format!("not a valid profile: {e}")))?;
        p.shard_cpu_list = p.shards.iter().map(|s| s.cpu).collect();
        p.validate().map_err(|d| TuneError::parse(path, d))?;
        Ok(p)
    }

    /// Checks the profile is consistent in itself.
    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "profile format {} is not supported (this slotd-tune reads format {FORMAT})",
                self.format
            ));
        }
        if self.shards.is_empty() {
            return Err("profile has no shards".to_string());
        }
        let mut seen = BTreeSet::new();
        for (i, s) in self.shards.iter().enumerate() {
            if s.index != i {
                return Err(format!("shard entry {i} has index {}", s.index));
            }
            if !seen.insert(s.cpu) {
                return Err(format!("CPU {} is given to two shards", s.cpu));
            }
        }
        if seen.contains(&self.bus.cpu) {
            return Err(format!("bus CPU {} is also a shard CPU", self.bus.cpu));
        }
        for s in &self.sysctls {
            if !s.path.starts_with('/') || s.path.split('/').any(|c| c == "..") {
                return Err(format!(
                    "setting {} has path {:?}: must be absolute, without '..'",
                    s.name, s.path
                ));
            }
            if !(s.path.starts_with("/proc/sys/") || s.path.starts_with("/sys/")) {
                return Err(format!(
                    "setting {} writes {:?}: only /proc/sys and /sys are allowed",
                    s.name, s.path
                ));
            }
        }
        Ok(())
    }

    /// Refuses a profile that does not fit `host`, giving every reason.
    pub fn check_matches(&self, host: &Host) -> Result<(), TuneError> {
        let mut why = Vec::new();
        let fp = &self.fingerprint;
        if fp.cpu_count != host.online.len() {
            why.push(format!(
                "profile expects {} CPUs, host has {}",
                fp.cpu_count,
                host.online.len()
            ));
        }
        if fp.numa_nodes != host.nodes.len() {
            why.push(format!(
                "profile expects {} NUMA nodes, host has {}",
                fp.numa_nodes,
                host.nodes.len()
            ));
        }
        let mut cpus: Vec<usize> = self.shard_cpus().to_vec();
        cpus.push(self.bus.cpu);
        cpus.extend(self.irqs.iter().map(|i| i.cpu));
        cpus.sort_unstable();
        cpus.dedup();
        for c in cpus {
            if !host.online.contains(&c) {
                why.push(format!("CPU {c} in profile is not online on this host"));
            }
        }
        let online = cpulist::format(&host.online);
        if fp.cpu_count == host.online.len() && fp.online != online {
            why.push(format!(
                "profile expects online CPUs {}, host has {}",
                fp.online, online
            ));
        }
        for nc in &fp.node_cpus {
            match host.nodes.iter().find(|n| n.id == nc.node) {
                None => why.push(format!(
                    "NUMA node {} in profile is not on this host",
                    nc.node
                )),
                Some(n) => {
                    let have = cpulist::format(&n.cpus);
                    if have != nc.cpus {
                        why.push(format!(
                            "NUMA node {} has CPUs {} in profile but {} on this host",
                            nc.node, nc.cpus, have
                        ));
                    }
                }
            }
        }
        for s in &self.shards {
            if let Some(cpu) = host.cpu(s.cpu) {
                if cpu.node != s.numa_node {
                    why.push(format!(
                        "shard {} on CPU {} is planned for NUMA node {} but that CPU is on node {} on this host",
                        s.index, s.cpu, s.numa_node, cpu.node
                    ));
                }
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(TuneError::Mismatch(why.join("; ")))
        }
    }
}

/// Reads and validates a profile file.
pub(crate) fn load(path: &Path) -> Result<Profile, TuneError> {
    let text = fs::read_to_string(path).map_err(|e| TuneError::io(path, e))?;
    Profile::from_toml(&text, path)
}
