//! Builds fake `/sys` + `/proc` trees in a temp dir for the tests.
#![allow(dead_code)] // each test binary uses a different part of this file

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temp directory removed on drop.
pub struct Fixture {
    pub root: PathBuf,
}

impl Fixture {
    pub fn empty(name: &str) -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("slotd-tune-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create fixture root");
        Fixture { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Writes `content` to `rel`, creating parents.
    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create fixture dir");
        }
        fs::write(&p, content).expect("write fixture file");
        self
    }

    pub fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.path(rel)).expect("create fixture dir");
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(&p).expect("remove fixture dir");
        } else {
            fs::remove_file(&p).expect("remove fixture file");
        }
        self
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).expect("read fixture file")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A NIC in a [`HostSpec`].
#[derive(Clone)]
pub struct NicSpec {
    pub name: &'static str,
    /// Written to `device/numa_node` as is (`-1` for unknown).
    pub numa_node: i64,
    pub queues: usize,
    pub first_irq: u32,
}

/// The shape of a fake host. CPUs are numbered as Linux does on x86:
/// first threads of every core of every socket, then the second threads.
#[derive(Clone)]
pub struct HostSpec {
    pub sockets: usize,
    pub cores_per_socket: usize,
    pub threads_per_core: usize,
    pub isolated: &'static str,
    pub nic: Option<NicSpec>,
    pub somaxconn: u64,
    pub overcommit: u64,
    pub thp: &'static str,
}

impl HostSpec {
    pub fn new(sockets: usize, cores_per_socket: usize, threads_per_core: usize) -> HostSpec {
        HostSpec {
            sockets,
            cores_per_socket,
            threads_per_core,
            isolated: "",
            nic: Some(NicSpec {
                name: "eth0",
                numa_node: 0,
                queues: 4,
                first_irq: 40,
            }),
            somaxconn: 4096,
            overcommit: 1,
            thp: "always madvise [never]",
        }
    }

    pub fn cpu_count(&self) -> usize {
        self.sockets * self.cores_per_socket * self.threads_per_core
    }

    /// (socket, core within socket, thread) of a CPU.
    fn place(&self, cpu: usize) -> (usize, usize, usize) {
        let per_thread = self.sockets * self.cores_per_socket;
        let thread = cpu / per_thread;
        let rest = cpu % per_thread;
        (
            rest / self.cores_per_socket,
            rest % self.cores_per_socket,
            thread,
        )
    }

    fn cpus_where(&self, f: impl Fn(usize, usize, usize) -> bool) -> Vec<usize> {
        (0..self.cpu_count())
            .filter(|&c| {
                let (s, k, t) = self.place(c);
                f(s, k, t)
            })
            .collect()
    }

    /// Builds the tree.
    pub fn build(&self, name: &str) -> Fixture {
        let fx = Fixture::empty(name);
        let all: Vec<usize> = (0..self.cpu_count()).collect();
        let cpu = "sys/devices/system/cpu";
        fx.file(&format!("{cpu}/online"), &format!("{}\n", list(&all)));
        fx.file(&format!("{cpu}/possible"), &format!("{}\n", list(&all)));
        fx.file(&format!("{cpu}/isolated"), &format!("{}\n", self.isolated));
        for c in &all {
            let (s, k, _) = self.place(*c);
            let sib = self.cpus_where(|s2, k2, _| s2 == s && k2 == k);
            let socket = self.cpus_where(|s2, _, _| s2 == s);
            let d = format!("{cpu}/cpu{c}");
            fx.file(&format!("{d}/topology/core_id"), &format!("{k}\n"));
            fx.file(
                &format!("{d}/topology/physical_package_id"),
                &format!("{s}\n"),
            );
            fx.file(
                &format!("{d}/topology/thread_siblings_list"),
                &format!("{}\n", list(&sib)),
            );
            fx.file(&format!("{d}/cache/index0/level"), "1\n");
            fx.file(
                &format!("{d}/cache/index0/shared_cpu_list"),
                &format!("{}\n", list(&sib)),
            );
            fx.file(&format!("{d}/cache/index3/level"), "3\n");
            fx.file(
                &format!("{d}/cache/index3/shared_cpu_list"),
                &format!("{}\n", list(&socket)),
            );
        }
        for s in 0..self.sockets {
            let cpus = self.cpus_where(|s2, _, _| s2 == s);
            let d = format!("sys/devices/system/node/node{s}");
            fx.file(&format!("{d}/cpulist"), &format!("{}\n", list(&cpus)));
            fx.file(
                &format!("{d}/meminfo"),
                &format!(
                    "Node {s} MemTotal:       16384000 kB\nNode {s} MemFree:        8000000 kB\n"
                ),
            );
        }
        fx.file(
            "sys/devices/system/node/online",
            &format!("0-{}\n", self.sockets - 1),
        );

        let mut interrupts = String::from("           ");
        for c in &all {
            interrupts.push_str(&format!("CPU{c:<8}"));
        }
        interrupts.push('\n');
        let zeros: String = all.iter().map(|_| "         0").collect();
        interrupts.push_str(&format!("  0:{zeros}  IO-APIC   2-edge      timer\n"));
        fx.dir("sys/class/net/lo");
        fx.file("sys/class/net/lo/mtu", "65536\n");
        if let Some(nic) = &self.nic {
            let d = format!("sys/class/net/{}", nic.name);
            fx.file(
                &format!("{d}/device/numa_node"),
                &format!("{}\n", nic.numa_node),
            );
            for q in 0..nic.queues {
                let irq = nic.first_irq + q as u32;
                fx.dir(&format!("{d}/queues/rx-{q}"));
                fx.dir(&format!("{d}/queues/tx-{q}"));
                fx.file(&format!("{d}/device/msi_irqs/{irq}"), "msix\n");
                fx.file(
                    &format!("proc/irq/{irq}/smp_affinity_list"),
                    &format!("{}\n", list(&all)),
                );
                interrupts.push_str(&format!(
                    " {irq}:{zeros}  IR-PCI-MSI 52428{q}-edge      {}-TxRx-{q}\n",
                    nic.name
                ));
            }
        }
        interrupts.push_str(&format!("NMI:{zeros}   Non-maskable interrupts\n"));
        fx.file("proc/interrupts", &interrupts);
        fx.file(
            "proc/sys/net/core/somaxconn",
            &format!("{}\n", self.somaxconn),
        );
        fx.file("proc/sys/net/ipv4/tcp_max_syn_backlog", "2048\n");
        fx.file(
            "proc/sys/vm/overcommit_memory",
            &format!("{}\n", self.overcommit),
        );
        fx.file("proc/sys/net/core/busy_poll", "0\n");
        fx.file(
            "sys/kernel/mm/transparent_hugepage/enabled",
            &format!("{}\n", self.thp),
        );
        fx
    }
}

/// Kernel-style CPU list (ranges folded).
pub fn list(cpus: &[usize]) -> String {
    tuning::cpulist::format(cpus)
}

/// The five fixtures of the issue: (name, spec).
pub fn standard_hosts() -> Vec<(&'static str, HostSpec)> {
    let mut one_socket_no_smt = HostSpec::new(1, 4, 1);
    if let Some(n) = one_socket_no_smt.nic.as_mut() {
        n.numa_node = -1; // single-socket boxes often report no node
    }
    let one_socket_smt = HostSpec::new(1, 4, 2);
    let mut two_socket = HostSpec::new(2, 4, 2);
    if let Some(n) = two_socket.nic.as_mut() {
        n.numa_node = 1;
        n.queues = 8;
        n.first_irq = 64;
    }
    let mut isolated = HostSpec::new(1, 6, 2);
    isolated.isolated = "2-5,8-11";
    let mut many_queues = HostSpec::new(1, 4, 2);
    if let Some(n) = many_queues.nic.as_mut() {
        n.queues = 16;
        n.first_irq = 100;
    }
    vec![
        ("one_socket_no_smt", one_socket_no_smt),
        ("one_socket_smt", one_socket_smt),
        ("two_socket_nic_node1", two_socket),
        ("isolated_cpus", isolated),
        ("nic_more_queues_than_cores", many_queues),
    ]
}

pub fn standard_host(name: &str) -> HostSpec {
    standard_hosts()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .expect("known fixture name")
}

/// Compares `actual` with `tests/expected/<file>`; with
/// `SLOTD_TUNE_BLESS=1` rewrites the file instead.
pub fn assert_expected(file: &str, actual: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(file);
    if std::env::var_os("SLOTD_TUNE_BLESS").is_some() {
        fs::create_dir_all(path.parent().expect("expected dir")).expect("mkdir expected");
        fs::write(&path, actual).expect("bless expected file");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SLOTD_TUNE_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "generated plan differs from {} (SLOTD_TUNE_BLESS=1 rewrites it)",
        path.display()
    );
}
