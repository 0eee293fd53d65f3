//! apply writes into a fixture root, saves an undo file; revert puts the
//! files back. check_matches refuses profiles for other hosts.

mod common;

use common::{standard_host, Fixture, HostSpec};
use tuning::{apply, plan, planned_writes, read_host, revert, PlanOptions, ProfileKind, TuneError};

const TOUCHED: &[&str] = &[
    "proc/sys/net/core/somaxconn",
    "proc/sys/net/ipv4/tcp_max_syn_backlog",
    "proc/sys/vm/overcommit_memory",
    "proc/sys/net/core/busy_poll",
];

#[test]
fn apply_then_revert_restores_the_tree() {
    let name = "two_socket_nic_node1";
    let mut spec = standard_host(name);
    spec.somaxconn = 128;
    spec.overcommit = 0;
    spec.thp = "[always] madvise never";
    let fx = spec.build("apply");
    let host = read_host(&fx.root).expect("reads");
    let profile = plan(
        &host,
        &PlanOptions {
            kind: ProfileKind::Latency,
            ..PlanOptions::default()
        },
    )
    .expect("plans");

    let mut before: Vec<(String, String)> = TOUCHED
        .iter()
        .map(|p| (p.to_string(), fx.read(p)))
        .collect();
    for irq in 64..72 {
        let p = format!("proc/irq/{irq}/smp_affinity_list");
        before.push((p.clone(), fx.read(&p)));
    }

    let undo = fx.path("undo.toml");
    let writes = apply(&profile, &fx.root, &undo).expect("applies");
    assert_eq!(writes, planned_writes(&profile));
    assert_eq!(writes.len(), 8 + 5);
    assert_eq!(
        writes[0].to_string(),
        "write /proc/irq/64/smp_affinity_list 12"
    );
    assert_eq!(fx.read("proc/irq/64/smp_affinity_list"), "12\n");
    assert_eq!(fx.read("proc/sys/net/core/somaxconn"), "65535\n");
    assert_eq!(fx.read("proc/sys/net/core/busy_poll"), "50\n");
    assert_eq!(
        fx.read("sys/kernel/mm/transparent_hugepage/enabled"),
        "never\n"
    );
    let after = read_host(&fx.root).expect("reads after apply");
    assert_eq!(after.settings.thp_enabled.as_deref(), Some("never"));
    assert!(
        tuning::startup_checks_with(&after, profile.shard_cpus(), &Default::default()).is_empty()
    );
    assert!(fx
        .read("undo.toml")
        .contains("/proc/irq/64/smp_affinity_list"));

    let reverted = revert(&undo, &fx.root).expect("reverts");
    assert_eq!(reverted.len(), writes.len());
    for (p, content) in &before {
        assert_eq!(&fx.read(p), content, "{p} not restored");
    }
    // The kernel takes one word for THP: the selected mode is back.
    assert_eq!(
        fx.read("sys/kernel/mm/transparent_hugepage/enabled"),
        "always\n"
    );
    let back = read_host(&fx.root).expect("reads after revert");
    assert_eq!(back.settings, host.settings);
}

#[test]
fn apply_stops_before_writing_when_a_target_is_missing() {
    let fx = standard_host("one_socket_smt").build("apply-missing");
    let host = read_host(&fx.root).expect("reads");
    let profile = plan(&host, &PlanOptions::default()).expect("plans");
    fx.remove("proc/sys/net/core/busy_poll");
    let before = fx.read("proc/irq/40/smp_affinity_list");
    let e = apply(&profile, &fx.root, &fx.path("undo.toml")).expect_err("missing file");
    assert!(e.to_string().contains("proc/sys/net/core/busy_poll"), "{e}");
    assert_eq!(fx.read("proc/irq/40/smp_affinity_list"), before);
    assert!(!fx.path("undo.toml").exists());
}

#[test]
fn revert_refuses_paths_outside_proc_and_sys() {
    let fx = Fixture::empty("evil-undo");
    fx.file(
        "undo.toml",
        "format = 1\nroot = \"/\"\n[[writes]]\npath = \"/etc/passwd\"\nvalue = \"x\"\n",
    );
    let e = revert(&fx.path("undo.toml"), &fx.root).expect_err("refused");
    assert!(e.to_string().contains("only /proc and /sys"), "{e}");
    fx.file("bad.toml", "not an undo file");
    assert!(revert(&fx.path("bad.toml"), &fx.root).is_err());
}

#[test]
fn check_matches_refuses_another_host() {
    let big = standard_host("two_socket_nic_node1").build("big");
    let big_host = read_host(&big.root).expect("reads");
    let profile = plan(&big_host, &PlanOptions::default()).expect("plans");

    let small = HostSpec::new(1, 2, 1).build("small");
    let small_host = read_host(&small.root).expect("reads");
    let e = profile.check_matches(&small_host).expect_err("too small");
    let msg = e.to_string();
    assert!(matches!(e, TuneError::Mismatch(_)));
    assert!(msg.contains("profile expects 16 CPUs, host has 2"), "{msg}");
    assert!(
        msg.contains("profile expects 2 NUMA nodes, host has 1"),
        "{msg}"
    );
    assert!(
        msg.contains("CPU 5 in profile is not online on this host"),
        "{msg}"
    );

    // Same CPU count, different layout.
    let mut other = HostSpec::new(2, 8, 1);
    other.nic = None;
    let other = other.build("other");
    let other_host = read_host(&other.root).expect("reads");
    let msg = profile
        .check_matches(&other_host)
        .expect_err("layout differs")
        .to_string();
    assert!(
        msg.contains("NUMA node 0 has CPUs 0-3,8-11 in profile but 0-7 on this host"),
        "{msg}"
    );
    assert!(
        msg.contains("shard 0 on CPU 5 is planned for NUMA node 1"),
        "{msg}"
    );
}
