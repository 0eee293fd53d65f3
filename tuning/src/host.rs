//! Reading a host's topology and settings from `/sys` and `/proc` under a
//! root directory (`/` on a real host, a fixture tree in tests).
//!
//! # Fallbacks
//!
//! What a plan depends on (the online CPU list, topology ids, CPU lists) is
//! an error when present but unreadable or garbage. What may legitimately be
//! absent falls back, and the fallback is recorded in [`Host::notes`]:
//!
//! * `cpu/online` missing: the `cpuN` directories are listed instead.
//! * `cpu/isolated` missing: no isolated CPUs.
//! * `cpuN/topology/*` missing: the CPU is its own physical core on package 0.
//! * `cpuN/cache` missing: no shared-L3 information.
//! * `/sys/devices/system/node` missing: one NUMA node 0 holding every CPU.
//! * `nodeN/meminfo` missing or odd: memory size unknown.
//! * `/sys/class/net` missing, or only virtual interfaces (no `device`
//!   link): no NICs; planning then makes no IRQ entries.
//! * NIC `numa_node` missing, `-1` or garbage: NUMA node unknown.
//! * `/proc/interrupts` or `/proc/irq/N/smp_affinity_list` missing or odd:
//!   IRQ names or affinities unknown.
//! * sysctl / THP files missing or garbage: the setting is unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cpulist;
use crate::error::TuneError;

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Logical CPU number (`cpuN`).
    pub id: usize,
    /// `topology/core_id` (the CPU id itself when unknown).
    pub core_id: usize,
    /// `topology/physical_package_id` (0 when unknown or negative).
    pub package_id: usize,
    /// The NUMA node holding this CPU.
    pub node: usize,
    /// Online SMT siblings including this CPU, sorted.
    pub siblings: Vec<usize>,
    /// CPUs sharing this CPU's L3 cache (empty when unknown).
    pub l3: Vec<usize>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    /// Node number (`nodeN`).
    pub id: usize,
    /// `nodeN/cpulist`.
    pub cpus: Vec<usize>,
    /// `MemTotal` from `nodeN/meminfo`, in kB, when known.
    pub mem_total_kb: Option<u64>,
}

/// One interrupt line of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Irq {
    /// IRQ number.
    pub irq: u32,
    /// The name `/proc/interrupts` gives it (e.g. `eth0-TxRx-0`), if any.
    pub name: Option<String>,
    /// `/proc/irq/N/smp_affinity_list`, when readable.
    pub affinity: Option<Vec<usize>>,
}

/// One physical network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// Interface name.
    pub name: String,
    /// `device/numa_node`, `None` when unknown or `-1`.
    pub numa_node: Option<usize>,
    /// Number of `queues/rx-*` entries.
    pub rx_queues: usize,
    /// Number of `queues/tx-*` entries.
    pub tx_queues: usize,
    /// IRQs from `device/msi_irqs` and `/proc/interrupts`, by number.
    pub irqs: Vec<Irq>,
}

/// Kernel settings slotd cares about; `None` when unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `/proc/sys/net/core/somaxconn`.
    pub somaxconn: Option<u64>,
    /// `/proc/sys/net/ipv4/tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `/proc/sys/vm/overcommit_memory`.
    pub overcommit_memory: Option<i64>,
    /// The selected word of `/sys/kernel/mm/transparent_hugepage/enabled`.
    pub thp_enabled: Option<String>,
    /// `/proc/sys/net/core/busy_poll` (microseconds).
    pub busy_poll: Option<u64>,
}

/// Everything [`crate::read_host`] learns about a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Online CPUs.
    pub online: Vec<usize>,
    /// Isolated CPUs (`isolcpus=`), empty when none or unknown.
    pub isolated: Vec<usize>,
    /// Every online CPU, by id.
    pub cpus: Vec<Cpu>,
    /// NUMA nodes, by id.
    pub nodes: Vec<NumaNode>,
    /// Distinct shared-L3 CPU groups.
    pub l3_groups: Vec<Vec<usize>>,
    /// Physical NICs, by name.
    pub nics: Vec<Nic>,
    /// Kernel settings.
    pub settings: Settings,
    /// Fallbacks taken while reading (see the module docs).
    pub notes: Vec<String>,
}

/// Joins an absolute host path (`/proc/...`) onto `root`.
pub(crate) fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, TuneError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TuneError::io(path, e)),
    }
}

/// Lists directory entry names, sorted; `Ok(None)` when the directory does
/// not exist.
fn list_dir(path: &Path) -> Result<Option<Vec<String>>, TuneError> {
    let rd = match fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TuneError::io(path, e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| TuneError::io(path, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(Some(names))
}

/// Entries named `<prefix><number>`, as sorted numbers.
fn numbered(names: &[String], prefix: &str) -> Vec<usize> {
    let mut out: Vec<usize> = names
        .iter()
        .filter_map(|n| n.strip_prefix(prefix))
        .filter_map(|rest| rest.parse::<usize>().ok())
        .collect();
    out.sort_unstable();
    out
}

fn parse_cpulist_file(path: &Path, text: &str) -> Result<Vec<usize>, TuneError> {
    cpulist::parse(text).map_err(|d| TuneError::parse(path, d))
}

fn parse_int_file<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T, TuneError> {
    let t = text.trim();
    t.parse::<T>()
        .map_err(|_| TuneError::parse(path, format!("expected a number, found {t:?}")))
}

/// Reads the host below `root`. See the module docs for what is an error
/// and what falls back.
pub(crate) fn read(root: &Path) -> Result<Host, TuneError> {
    let mut notes = Vec::new();
    let cpu_dir = under(root, "/sys/devices/system/cpu");

    let online_path = cpu_dir.join("online");
    let online = match read_opt(&online_path)? {
        Some(text) => parse_cpulist_file(&online_path, &text)?,
        None => {
            let names = list_dir(&cpu_dir)?.unwrap_or_default();
            let found = numbered(&names, "cpu");
            notes.push(format!(
                "{} missing: using the cpuN directories ({})",
                online_path.display(),
                cpulist::format(&found)
            ));
            found
        }
    };
    if online.is_empty() {
        return Err(TuneError::parse(&online_path, "no online CPUs found"));
    }

    let isolated_path = cpu_dir.join("isolated");
    let isolated = match read_opt(&isolated_path)? {
        Some(text) => parse_cpulist_file(&isolated_path, &text)?
            .into_iter()
            .filter(|c| online.contains(c))
            .collect(),
        None => Vec::new(),
    };

    // Raw topology first; siblings may need (package, core) of others.
    struct Raw {
        id: usize,
        core_id: usize,
        package_id: usize,
        siblings: Option<Vec<usize>>,
        l3: Vec<usize>,
    }
    let mut raws = Vec::new();
    let mut no_topology = Vec::new();
    for &id in &online {
        let topo = cpu_dir.join(format!("cpu{id}/topology"));
        let core_path = topo.join("core_id");
        let core_id = match read_opt(&core_path)? {
            Some(t) => parse_int_file::<usize>(&core_path, &t)?,
            None => {
                no_topology.push(id);
                id
            }
        };
        let pkg_path = topo.join("physical_package_id");
        let package_id = match read_opt(&pkg_path)? {
            Some(t) => usize::try_from(parse_int_file::<i64>(&pkg_path, &t)?).unwrap_or(0),
            None => 0,
        };
        let sib_path = topo.join("thread_siblings_list");
        let siblings = match read_opt(&sib_path)? {
            Some(t) => Some(parse_cpulist_file(&sib_path, &t)?),
            None => None,
        };
        let l3 = read_l3(&cpu_dir.join(format!("cpu{id}/cache")), &mut notes)?;
        raws.push(Raw {
            id,
            core_id,
            package_id,
            siblings,
            l3,
        });
    }
    if !no_topology.is_empty() {
        notes.push(format!(
            "topology missing for CPUs {}: each is taken as its own physical core",
            cpulist::format(&no_topology)
        ));
    }

    let nodes = read_nodes(root, &online, &mut notes)?;

    let mut cpus = Vec::new();
    let mut nodeless = Vec::new();
    for r in &raws {
        let mut siblings: Vec<usize> = match &r.siblings {
            Some(s) => s.iter().copied().filter(|c| online.contains(c)).collect(),
            None if no_topology.contains(&r.id) => vec![r.id],
            None => raws
                .iter()
                .filter(|o| o.package_id == r.package_id && o.core_id == r.core_id)
                .map(|o| o.id)
                .collect(),
        };
        if !siblings.contains(&r.id) {
            siblings.push(r.id);
            siblings.sort_unstable();
        }
        let node = match nodes.iter().find(|n| n.cpus.contains(&r.id)) {
            Some(n) => n.id,
            None => {
                nodeless.push(r.id);
                nodes.first().map_or(0, |n| n.id)
            }
        };
        cpus.push(Cpu {
            id: r.id,
            core_id: r.core_id,
            package_id: r.package_id,
            node,
            siblings,
            l3: r.l3.clone(),
        });
    }
    if !nodeless.is_empty() {
        notes.push(format!(
            "CPUs {} are in no NUMA node's cpulist: taken as node {}",
            cpulist::format(&nodeless),
            nodes.first().map_or(0, |n| n.id)
        ));
    }

    let l3_groups: Vec<Vec<usize>> = cpus
        .iter()
        .filter(|c| !c.l3.is_empty())
        .map(|c| c.l3.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let nics = read_nics(root, &mut notes)?;
    let settings = read_settings(root, &mut notes)?;

    Ok(Host {
        online,
        isolated,
        cpus,
        nodes,
        l3_groups,
        nics,
        settings,
        notes,
    })
}

fn read_l3(cache_dir: &Path, notes: &mut Vec<String>) -> Result<Vec<usize>, TuneError> {
    let Some(names) = list_dir(cache_dir)? else {
        return Ok(Vec::new());
    };
    for idx in numbered(&names, "index") {
        let dir = cache_dir.join(format!("index{idx}"));
        let level_path = dir.join("level");
        let Some(level) = read_opt(&level_path)? else {
            continue;
        };
        if level.trim() != "3" {
            if level.trim().parse::<u32>().is_err() {
                notes.push(format!(
                    "{}: ignoring odd cache level {:?}",
                    level_path.display(),
                    level.trim()
                ));
            }
            continue;
        }
        let list_path = dir.join("shared_cpu_list");
        if let Some(t) = read_opt(&list_path)? {
            return parse_cpulist_file(&list_path, &t);
        }
    }
    Ok(Vec::new())
}

fn read_nodes(
    root: &Path,
    online: &[usize],
    notes: &mut Vec<String>,
) -> Result<Vec<NumaNode>, TuneError> {
    let node_dir = under(root, "/sys/devices/system/node");
    let ids = numbered(&list_dir(&node_dir)?.unwrap_or_default(), "node");
    if ids.is_empty() {
        notes.push(format!(
            "no NUMA nodes under {}: one node 0 holding every CPU",
            node_dir.display()
        ));
        return Ok(vec![NumaNode {
            id: 0,
            cpus: online.to_vec(),
            mem_total_kb: None,
        }]);
    }
    let mut nodes = Vec::new();
    for id in ids {
        let dir = node_dir.join(format!("node{id}"));
        let cpulist_path = dir.join("cpulist");
        let cpus = match read_opt(&cpulist_path)? {
            Some(t) => parse_cpulist_file(&cpulist_path, &t)?,
            None => {
                notes.push(format!(
                    "{} missing: node {id} taken as CPU-less",
                    cpulist_path.display()
                ));
                Vec::new()
            }
        };
        let meminfo_path = dir.join("meminfo");
        let mem_total_kb = match read_opt(&meminfo_path)? {
            Some(t) => {
                let v = parse_memtotal(&t);
                if v.is_none() {
                    notes.push(format!(
                        "{}: no readable MemTotal line, memory size unknown",
                        meminfo_path.display()
                    ));
                }
                v
            }
            None => None,
        };
        nodes.push(NumaNode {
            id,
            cpus,
            mem_total_kb,
        });
    }
    Ok(nodes)
}

/// `Node 0 MemTotal:       32768000 kB` → 32768000.
fn parse_memtotal(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `(irq, name)` for every numbered line of `/proc/interrupts`.
fn read_interrupts(root: &Path, notes: &mut Vec<String>) -> Result<Vec<(u32, String)>, TuneError> {
    let path = under(root, "/proc/interrupts");
    let Some(text) = read_opt(&path)? else {
        notes.push(format!("{} missing: IRQ names unknown", path.display()));
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let Some((num, rest)) = line.split_once(':') else {
            continue;
        };
        let Ok(irq) = num.trim().parse::<u32>() else {
            continue;
        };
        if let Some(name) = rest.split_whitespace().last() {
            out.push((irq, name.to_string()));
        }
    }
    Ok(out)
}

/// Whether an interrupt name belongs to `iface`: `eth0`, `eth0-TxRx-3`,
/// `eth0@pci...`, but not `eth01`.
fn names_iface(name: &str, iface: &str) -> bool {
    match name.strip_prefix(iface) {
        Some(rest) => rest
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric()),
        None => false,
    }
}

fn read_nics(root: &Path, notes: &mut Vec<String>) -> Result<Vec<Nic>, TuneError> {
    let net_dir = under(root, "/sys/class/net");
    let Some(names) = list_dir(&net_dir)? else {
        notes.push(format!("{} missing: no NICs", net_dir.display()));
        return Ok(Vec::new());
    };
    let interrupts = read_interrupts(root, notes)?;
    let mut nics = Vec::new();
    let mut virtual_ifaces = Vec::new();
    for name in names {
        let dir = net_dir.join(&name);
        let device = dir.join("device");
        if !device.exists() {
            virtual_ifaces.push(name);
            continue;
        }
        let numa_path = device.join("numa_node");
        let numa_node = match read_opt(&numa_path)? {
            Some(t) => match t.trim().parse::<i64>() {
                Ok(n) => usize::try_from(n).ok(),
                Err(_) => {
                    notes.push(format!(
                        "{}: {:?} is not a node number, NUMA node unknown",
                        numa_path.display(),
                        t.trim()
                    ));
                    None
                }
            },
            None => None,
        };
        let queue_names = list_dir(&dir.join("queues"))?.unwrap_or_default();
        let rx_queues = queue_names.iter().filter(|q| q.starts_with("rx-")).count();
        let tx_queues = queue_names.iter().filter(|q| q.starts_with("tx-")).count();

        let mut irq_names: BTreeMap<u32, Option<String>> = BTreeMap::new();
        for n in list_dir(&device.join("msi_irqs"))?.unwrap_or_default() {
            if let Ok(irq) = n.parse::<u32>() {
                irq_names.insert(irq, None);
            }
        }
        for (irq, iname) in &interrupts {
            if let Some(slot) = irq_names.get_mut(irq) {
                *slot = Some(iname.clone());
            } else if names_iface(iname, &name) {
                irq_names.insert(*irq, Some(iname.clone()));
            }
        }
        let mut irqs = Vec::new();
        for (irq, iname) in irq_names {
            let aff_path = under(root, &format!("/proc/irq/{irq}/smp_affinity_list"));
            let affinity = match read_opt(&aff_path) {
                Ok(Some(t)) => match cpulist::parse(&t) {
                    Ok(l) => Some(l),
                    Err(d) => {
                        notes.push(format!("{}: {d}", aff_path.display()));
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    notes.push(e.to_string());
                    None
                }
            };
            irqs.push(Irq {
                irq,
                name: iname,
                affinity,
            });
        }
        nics.push(Nic {
            name,
            numa_node,
            rx_queues,
            tx_queues,
            irqs,
        });
    }
    if !virtual_ifaces.is_empty() {
        notes.push(format!(
            "virtual interfaces skipped (no device): {}",
            virtual_ifaces.join(", ")
        ));
    }
    if nics.is_empty() {
        notes.push("no physical NIC found: plans carry no IRQ entries".to_string());
    }
    Ok(nics)
}

fn read_setting<T: std::str::FromStr>(
    root: &Path,
    path: &str,
    notes: &mut Vec<String>,
) -> Result<Option<T>, TuneError> {
    let full = under(root, path);
    let Some(text) = read_opt(&full)? else {
        return Ok(None);
    };
    match text.trim().parse::<T>() {
        Ok(v) => Ok(Some(v)),
        Err(_) => {
            notes.push(format!(
                "{}: {:?} is not a number, setting unknown",
                full.display(),
                text.trim()
            ));
            Ok(None)
        }
    }
}

/// The selected word of a `always [madvise] never` style file; a file
/// holding a single word (as after a write to a fixture) is that word.
pub(crate) fn selected_word(text: &str) -> Option<String> {
    let t = text.trim();
    if let (Some(a), Some(b)) = (t.find('['), t.find(']')) {
        if a < b {
            return Some(t[a + 1..b].to_string());
        }
        return None;
    }
    let mut words = t.split_whitespace();
    match (words.next(), words.next()) {
        (Some(w), None) => Some(w.to_string()),
        _ => None,
    }
}

fn read_settings(root: &Path, notes: &mut Vec<String>) -> Result<Settings, TuneError> {
    let thp_path = under(root, THP_PATH);
    let thp_enabled = match read_opt(&thp_path)? {
        Some(t) => {
            let w = selected_word(&t);
            if w.is_none() {
                notes.push(format!(
                    "{}: no selected mode in {:?}, THP mode unknown",
                    thp_path.display(),
                    t.trim()
                ));
            }
            w
        }
        None => None,
    };
    Ok(Settings {
        somaxconn: read_setting(root, SOMAXCONN_PATH, notes)?,
        tcp_max_syn_backlog: read_setting(root, SYN_BACKLOG_PATH, notes)?,
        overcommit_memory: read_setting(root, OVERCOMMIT_PATH, notes)?,
        thp_enabled,
        busy_poll: read_setting(root, BUSY_POLL_PATH, notes)?,
    })
}

/// `net.core.somaxconn`.
pub const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";
/// `net.ipv4.tcp_max_syn_backlog`.
pub const SYN_BACKLOG_PATH: &str = "/proc/sys/net/ipv4/tcp_max_syn_backlog";
/// `vm.overcommit_memory`.
pub const OVERCOMMIT_PATH: &str = "/proc/sys/vm/overcommit_memory";
/// Transparent huge pages mode.
pub const THP_PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
/// `net.core.busy_poll`.
pub const BUSY_POLL_PATH: &str = "/proc/sys/net/core/busy_poll";

impl Host {
    /// The CPU with this id, if online.
    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus.iter().find(|c| c.id == id)
    }

    /// The NIC with this name.
    pub fn nic(&self, name: &str) -> Option<&Nic> {
        self.nics.iter().find(|n| n.name == name)
    }

    /// The NIC slotd most likely serves from: the one with the most IRQs,
    /// then the most RX queues, then the first by name.
    pub fn default_nic(&self) -> Option<&Nic> {
        self.nics
            .iter()
            .fold(None, |best: Option<&Nic>, n| match best {
                Some(b) if (b.irqs.len(), b.rx_queues) >= (n.irqs.len(), n.rx_queues) => Some(b),
                _ => Some(n),
            })
    }

    /// Whether any physical core runs more than one hardware thread.
    pub fn has_smt(&self) -> bool {
        self.cpus.iter().any(|c| c.siblings.len() > 1)
    }

    /// A readable multi-line summary, as `slotd-tune inspect` prints it.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let cores: BTreeSet<&[usize]> = self.cpus.iter().map(|c| c.siblings.as_slice()).collect();
        s.push_str(&format!(
            "CPUs: {} online ({}), {} physical cores, SMT {}\n",
            self.online.len(),
            cpulist::format(&self.online),
            cores.len(),
            if self.has_smt() { "on" } else { "off" }
        ));
        s.push_str(&format!(
            "Isolated CPUs: {}\n",
            if self.isolated.is_empty() {
                "none".to_string()
            } else {
                cpulist::format(&self.isolated)
            }
        ));
        for n in &self.nodes {
            let mem = n.mem_total_kb.map_or("memory unknown".to_string(), |kb| {
                format!("{} MiB", kb / 1024)
            });
            s.push_str(&format!(
                "NUMA node {}: CPUs {}, {}\n",
                n.id,
                if n.cpus.is_empty() {
                    "none".to_string()
                } else {
                    cpulist::format(&n.cpus)
                },
                mem
            ));
        }
        let sib_groups: Vec<String> = cores
            .iter()
            .filter(|c| c.len() > 1)
            .map(|c| cpulist::format(c))
            .collect();
        if !sib_groups.is_empty() {
            s.push_str(&format!("SMT siblings: {}\n", sib_groups.join(" ")));
        }
        if self.l3_groups.is_empty() {
            s.push_str("L3 groups: unknown\n");
        } else {
            let g: Vec<String> = self.l3_groups.iter().map(|g| cpulist::format(g)).collect();
            s.push_str(&format!("L3 groups: {}\n", g.join(" ")));
        }
        if self.nics.is_empty() {
            s.push_str("NICs: none found\n");
        }
        for nic in &self.nics {
            s.push_str(&format!(
                "NIC {}: NUMA node {}, {} rx / {} tx queues, {} IRQs\n",
                nic.name,
                nic.numa_node
                    .map_or("unknown".to_string(), |n| n.to_string()),
                nic.rx_queues,
                nic.tx_queues,
                nic.irqs.len()
            ));
            for irq in &nic.irqs {
                s.push_str(&format!(
                    "  IRQ {} {} -> CPUs {}\n",
                    irq.irq,
                    irq.name.as_deref().unwrap_or("(unnamed)"),
                    irq.affinity
                        .as_ref()
                        .map_or("unknown".to_string(), |a| cpulist::format(a))
                ));
            }
        }
        let st = &self.settings;
        let show = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_string());
        s.push_str(&format!(
            "net.core.somaxconn = {}\n",
            show(st.somaxconn.map(|v| v.to_string()))
        ));
        s.push_str(&format!(
            "net.ipv4.tcp_max_syn_backlog = {}\n",
            show(st.tcp_max_syn_backlog.map(|v| v.to_string()))
        ));
        s.push_str(&format!(
            "vm.overcommit_memory = {}\n",
            show(st.overcommit_memory.map(|v| v.to_string()))
        ));
        s.push_str(&format!(
            "transparent_hugepage = {}\n",
            show(st.thp_enabled.clone())
        ));
        s.push_str(&format!(
            "net.core.busy_poll = {}\n",
            show(st.busy_poll.map(|v| v.to_string()))
        ));
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_names() {
        assert!(names_iface("eth0-TxRx-0", "eth0"));
        assert!(names_iface("eth0", "eth0"));
        assert!(!names_iface("eth01", "eth0"));
        assert!(!names_iface("xeth0", "eth0"));
    }

    #[test]
    fn thp_word() {
        assert_eq!(
            selected_word("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(selected_word("never").as_deref(), Some("never"));
        assert_eq!(selected_word("garbage words here"), None);
        assert_eq!(selected_word("] ["), None);
    }

    #[test]
    fn memtotal() {
        assert_eq!(
            parse_memtotal("Node 0 MemTotal:       32768000 kB\n"),
            Some(32768000)
        );
        assert_eq!(parse_memtotal("nothing"), None);
        assert_eq!(parse_memtotal("Node 0 MemTotal: lots kB"), None);
    }
}
