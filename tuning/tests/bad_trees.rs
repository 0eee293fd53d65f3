//! Partial, odd and garbage trees: a clear error naming the file, or the
//! documented fallback with a note. Never a panic.

mod common;

use common::{Fixture, HostSpec};
use tuning::{load_profile, plan, read_host, PlanOptions, TuneError};

fn spec() -> HostSpec {
    HostSpec::new(2, 2, 2)
}

fn err_of(fx: &Fixture) -> String {
    match read_host(&fx.root) {
        Ok(h) => panic!("expected an error, got {h:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_tree_is_a_clear_error() {
    let fx = Fixture::empty("empty");
    let e = err_of(&fx);
    assert!(e.contains("sys/devices/system/cpu/online"), "{e}");
    assert!(e.contains("no online CPUs"), "{e}");
}

#[test]
fn garbage_online_names_the_file() {
    let fx = spec().build("garbage-online");
    fx.file("sys/devices/system/cpu/online", "zero-to-three\n");
    let e = err_of(&fx);
    assert!(e.contains("sys/devices/system/cpu/online"), "{e}");
    assert!(e.contains("not a CPU number"), "{e}");
}

#[test]
fn reversed_and_huge_ranges_are_errors() {
    for bad in ["3-0", "0-99999999", "0-3,,5", "\u{0}\u{1}binary"] {
        let fx = spec().build("odd-online");
        fx.file("sys/devices/system/cpu/online", bad);
        let e = err_of(&fx);
        assert!(e.contains("online"), "{bad:?}: {e}");
    }
}

#[test]
fn missing_online_falls_back_to_cpu_dirs() {
    let fx = spec().build("no-online");
    fx.remove("sys/devices/system/cpu/online");
    let h = read_host(&fx.root).expect("fallback");
    assert_eq!(h.online, (0..8).collect::<Vec<_>>());
    assert!(h
        .notes
        .iter()
        .any(|n| n.contains("using the cpuN directories")));
}

#[test]
fn odd_cpu_lists_parse() {
    // Two sockets: node 0 is 0-1,4-5, node 1 is 2-3,6-7.
    let fx = spec().build("odd-lists");
    let h = read_host(&fx.root).expect("reads");
    assert_eq!(h.nodes[0].cpus, vec![0, 1, 4, 5]);
    assert_eq!(h.nodes[1].cpus, vec![2, 3, 6, 7]);
    assert_eq!(h.l3_groups, vec![vec![0, 1, 4, 5], vec![2, 3, 6, 7]]);
    // Offline CPU 3: online list with a hole.
    fx.file("sys/devices/system/cpu/online", "0-2,4-7\n");
    let h = read_host(&fx.root).expect("reads with a hole");
    assert_eq!(h.online, vec![0, 1, 2, 4, 5, 6, 7]);
    assert_eq!(h.cpu(7).map(|c| c.siblings.clone()), Some(vec![7]));
}

#[test]
fn garbage_topology_names_the_file() {
    let fx = spec().build("garbage-core");
    fx.file("sys/devices/system/cpu/cpu3/topology/core_id", "lots\n");
    let e = err_of(&fx);
    assert!(e.contains("cpu3/topology/core_id"), "{e}");
    assert!(e.contains("expected a number"), "{e}");

    let fx = spec().build("empty-core");
    fx.file("sys/devices/system/cpu/cpu1/topology/core_id", "");
    assert!(err_of(&fx).contains("cpu1/topology/core_id"));

    let fx = spec().build("garbage-siblings");
    fx.file(
        "sys/devices/system/cpu/cpu2/topology/thread_siblings_list",
        "2,x\n",
    );
    assert!(err_of(&fx).contains("cpu2/topology/thread_siblings_list"));

    let fx = spec().build("garbage-l3");
    fx.file(
        "sys/devices/system/cpu/cpu0/cache/index3/shared_cpu_list",
        "?\n",
    );
    assert!(err_of(&fx).contains("cpu0/cache/index3/shared_cpu_list"));

    let fx = spec().build("garbage-node");
    fx.file("sys/devices/system/node/node1/cpulist", "2-3,6-\n");
    assert!(err_of(&fx).contains("node1/cpulist"));
}

#[test]
fn missing_topology_falls_back_to_one_core_per_cpu() {
    let fx = spec().build("no-topology");
    for c in 0..8 {
        fx.remove(&format!("sys/devices/system/cpu/cpu{c}/topology"));
        fx.remove(&format!("sys/devices/system/cpu/cpu{c}/cache"));
    }
    let h = read_host(&fx.root).expect("fallback");
    assert!(!h.has_smt());
    assert!(h.l3_groups.is_empty());
    assert!(h.notes.iter().any(|n| n.contains("own physical core")));
    plan(&h, &PlanOptions::default()).expect("still plans");
}

#[test]
fn missing_siblings_file_uses_core_and_package_ids() {
    let fx = spec().build("no-siblings");
    for c in 0..8 {
        fx.remove(&format!(
            "sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list"
        ));
    }
    let h = read_host(&fx.root).expect("fallback");
    assert_eq!(h.cpu(0).map(|c| c.siblings.clone()), Some(vec![0, 4]));
    assert_eq!(h.cpu(6).map(|c| c.siblings.clone()), Some(vec![2, 6]));
}

#[test]
fn missing_numa_falls_back_to_one_node() {
    let fx = spec().build("no-numa");
    fx.remove("sys/devices/system/node");
    let h = read_host(&fx.root).expect("fallback");
    assert_eq!(h.nodes.len(), 1);
    assert_eq!(h.nodes[0].cpus, h.online);
    assert_eq!(h.nodes[0].mem_total_kb, None);
    assert!(h.notes.iter().any(|n| n.contains("one node 0")));
}

#[test]
fn odd_meminfo_and_missing_cpulist_fall_back() {
    let fx = spec().build("odd-meminfo");
    fx.file("sys/devices/system/node/node0/meminfo", "who knows\n");
    fx.remove("sys/devices/system/node/node1/cpulist");
    let h = read_host(&fx.root).expect("fallback");
    assert_eq!(h.nodes[0].mem_total_kb, None);
    assert_eq!(h.nodes[1].mem_total_kb, Some(16_384_000));
    assert!(h.nodes[1].cpus.is_empty());
    // CPUs of the CPU-less node land on the first node, with a note.
    assert_eq!(h.cpu(2).map(|c| c.node), Some(0));
    assert!(h.notes.iter().any(|n| n.contains("in no NUMA node")));
}

#[test]
fn missing_isolated_means_none() {
    let fx = spec().build("no-isolated");
    fx.remove("sys/devices/system/cpu/isolated");
    assert!(read_host(&fx.root).expect("reads").isolated.is_empty());
}

#[test]
fn nic_fallbacks() {
    let fx = spec().build("nic-garbage");
    fx.file("sys/class/net/eth0/device/numa_node", "elsewhere\n");
    fx.file("proc/irq/41/smp_affinity_list", "all of them\n");
    fx.file("proc/interrupts", "garbage\n no colon here\n x: y\n 40:\n");
    let h = read_host(&fx.root).expect("fallbacks");
    let nic = h.nic("eth0").expect("eth0");
    assert_eq!(nic.numa_node, None);
    assert_eq!(nic.irqs.len(), 4);
    assert_eq!(nic.irqs[0].name, None);
    assert_eq!(nic.irqs[1].affinity, None);
    assert!(h.notes.iter().any(|n| n.contains("numa_node")));
    assert!(h.notes.iter().any(|n| n.contains("smp_affinity_list")));
    plan(&h, &PlanOptions::default()).expect("still plans");

    let fx = spec().build("no-net");
    fx.remove("sys/class/net");
    fx.remove("proc/interrupts");
    let h = read_host(&fx.root).expect("no NICs");
    assert!(h.nics.is_empty());
    assert!(h.notes.iter().any(|n| n.contains("no NICs")));
    let p = plan(&h, &PlanOptions::default()).expect("plans without NIC");
    assert!(p.irqs.is_empty());
}

#[test]
fn irqs_from_proc_interrupts_alone() {
    let fx = spec().build("no-msi");
    fx.remove("sys/class/net/eth0/device/msi_irqs");
    let h = read_host(&fx.root).expect("reads");
    let nic = h.nic("eth0").expect("eth0");
    let names: Vec<_> = nic.irqs.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(
        names,
        ["eth0-TxRx-0", "eth0-TxRx-1", "eth0-TxRx-2", "eth0-TxRx-3"]
    );
}

#[test]
fn garbage_settings_are_unknown() {
    let fx = spec().build("garbage-settings");
    fx.file("proc/sys/net/core/somaxconn", "big\n");
    fx.file("proc/sys/vm/overcommit_memory", "");
    fx.file(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise never\n",
    );
    fx.remove("proc/sys/net/core/busy_poll");
    let h = read_host(&fx.root).expect("reads");
    assert_eq!(h.settings.somaxconn, None);
    assert_eq!(h.settings.overcommit_memory, None);
    assert_eq!(h.settings.thp_enabled, None);
    assert_eq!(h.settings.busy_poll, None);
    assert_eq!(h.settings.tcp_max_syn_backlog, Some(2048));
    assert!(tuning::startup_checks_with(&h, &[], &Default::default()).is_empty());
}

#[test]
fn bad_profiles_are_clear_errors() {
    let fx = Fixture::empty("bad-profile");
    let missing = fx.path("nope.toml");
    match load_profile(&missing) {
        Err(TuneError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io error, got {other:?}"),
    }
    fx.file("garbage.toml", "this is = = not toml");
    let e = load_profile(&fx.path("garbage.toml")).expect_err("garbage");
    assert!(e.to_string().contains("garbage.toml"), "{e}");

    // A valid plan, then broken in several ways.
    let host_fx = spec().build("bad-profile-host");
    let host = read_host(&host_fx.root).expect("reads");
    let good = plan(&host, &PlanOptions::default())
        .expect("plans")
        .to_toml()
        .expect("encodes");
    let cases = [
        ("format = 1", "format = 7", "format 7 is not supported"),
        ("cpu = 1\n", "cpu = 3\n", "given to two shards"),
        (
            "/proc/sys/vm/overcommit_memory",
            "/etc/passwd",
            "only /proc/sys and /sys",
        ),
        ("index = 1", "index = 5", "has index 5"),
    ];
    for (from, to, want) in cases {
        assert!(good.contains(from), "plan text lacks {from:?}:\n{good}");
        fx.file("broken.toml", &good.replacen(from, to, 1));
        let e = load_profile(&fx.path("broken.toml")).expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
        assert!(e.to_string().contains("broken.toml"), "{e}");
    }
    fx.file("ok.toml", &good);
    load_profile(&fx.path("ok.toml")).expect("unbroken profile loads");
}
