//! Startup warnings: Redis 7.0's wording and slotd's own.

mod common;

use common::{standard_host, HostSpec};
use tuning::checks::{OVERCOMMIT_WARNING, THP_WARNING};
use tuning::{plan, read_host, startup_checks, startup_checks_with, CheckParams, PlanOptions};

fn params() -> CheckParams {
    CheckParams::default()
}

#[test]
fn redis_warnings_have_redis_wording() {
    let mut spec = HostSpec::new(1, 4, 1);
    spec.somaxconn = 128;
    spec.overcommit = 0;
    spec.thp = "[always] madvise never";
    spec.nic = None;
    let fx = spec.build("redis-warnings");
    let host = read_host(&fx.root).expect("reads");
    let w = startup_checks_with(&host, &[1, 2, 3], &params());
    assert_eq!(
        w,
        vec![
            "WARNING: The TCP backlog setting of 511 cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of 128.".to_string(),
            "WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.".to_string(),
            "WARNING You have Transparent Huge Pages (THP) support enabled in your kernel. This will create latency and memory usage issues with Redis. To fix this issue run the command 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your /etc/rc.local in order to retain the setting after a reboot. Redis must be restarted after THP is disabled (set to 'madvise' or 'never').".to_string(),
        ]
    );
    assert_eq!(w[1], OVERCOMMIT_WARNING);
    assert_eq!(w[2], THP_WARNING);

    // The server's entry point never gives the overcommit warning (it is
    // about fork()ed saves; slotd never forks), and gives the THP one only
    // when the server could not turn THP off for itself.
    let w = startup_checks(&host, &[1, 2, 3], 511, false);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[1], THP_WARNING);
    let w = startup_checks(&host, &[1, 2, 3], 511, true);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("TCP backlog"));

    // The backlog is a parameter.
    let w = startup_checks_with(
        &host,
        &[1],
        &CheckParams {
            tcp_backlog: 100,
            ..params()
        },
    );
    assert!(!w.iter().any(|l| l.contains("TCP backlog")));
    let w = startup_checks_with(
        &host,
        &[1],
        &CheckParams {
            tcp_backlog: 1024,
            ..params()
        },
    );
    assert!(w.iter().any(|l| l.contains("TCP backlog setting of 1024")));
}

#[test]
fn thp_madvise_and_never_do_not_warn() {
    for thp in ["always [madvise] never", "always madvise [never]"] {
        let mut spec = HostSpec::new(1, 2, 1);
        spec.thp = thp;
        spec.nic = None;
        let fx = spec.build("thp");
        let host = read_host(&fx.root).expect("reads");
        assert!(
            startup_checks_with(&host, &[1], &params()).is_empty(),
            "{thp}"
        );
    }
}

#[test]
fn open_files_warning_follows_the_limit() {
    let mut spec = HostSpec::new(1, 2, 1);
    spec.nic = None;
    let fx = spec.build("nofile");
    let host = read_host(&fx.root).expect("reads");
    let w = startup_checks_with(
        &host,
        &[1],
        &CheckParams {
            open_files_limit: Some(1024),
            ..params()
        },
    );
    assert_eq!(
        w,
        vec![
            "You requested maxclients of 10000 requiring at least 10032 max file descriptors.".to_string(),
            "Current maximum open files is 1024. maxclients has been reduced to 992 to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.".to_string(),
        ]
    );
    let w = startup_checks_with(
        &host,
        &[1],
        &CheckParams {
            open_files_limit: Some(16),
            ..params()
        },
    );
    assert!(
        w[1].contains("is not enough for the server to start"),
        "{w:?}"
    );
    for ok in [Some(10032), Some(u64::MAX), None] {
        let w = startup_checks_with(
            &host,
            &[1],
            &CheckParams {
                open_files_limit: ok,
                ..params()
            },
        );
        assert!(w.is_empty(), "{ok:?}: {w:?}");
    }
}

#[test]
fn irqs_on_shard_cores_and_remote_nodes_warn() {
    let name = "two_socket_nic_node1";
    let fx = standard_host(name).build(name);
    let host = read_host(&fx.root).expect("reads");
    // Untuned: every IRQ may land anywhere, shards on both nodes.
    let w = startup_checks_with(&host, &[0, 5], &params());
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with("WARNING slotd: 8 of 8 IRQs of NIC eth0 can land on shard cores (IRQ->shard CPUs: 64->0,5 65->0,5"),
        "{}",
        w[0]
    );
    assert_eq!(
        w[1],
        "WARNING slotd: shard CPU 0 is on NUMA node 0 but NIC eth0 is on node 1; its packets and memory cross the interconnect."
    );
    // A shard CPU that is not online.
    let w = startup_checks_with(&host, &[42], &params());
    assert!(w.iter().any(|l| l.contains("shard CPU 42 is not online")));
    // An unknown NIC is reported, not an error.
    let w = startup_checks_with(
        &host,
        &[5],
        &CheckParams {
            nic: Some("eth7".to_string()),
            ..params()
        },
    );
    assert_eq!(
        w,
        vec!["WARNING slotd: NIC eth7 not found; IRQ and NUMA checks skipped.".to_string()]
    );
}

#[test]
fn planned_irqs_do_not_warn() {
    let name = "two_socket_nic_node1";
    let fx = standard_host(name).build(name);
    let host = read_host(&fx.root).expect("reads");
    let p = plan(&host, &PlanOptions::default()).expect("plans");
    for irq in &p.irqs {
        fx.file(
            &format!("proc/irq/{}/smp_affinity_list", irq.irq),
            &format!("{}\n", irq.cpu),
        );
    }
    let host = read_host(&fx.root).expect("reads");
    let node1: Vec<usize> = p.shard_cpus().iter().copied().take(3).collect();
    assert!(startup_checks_with(&host, &node1, &params()).is_empty());
    // The server's entry point leaves the open-files check to the server.
    let low_limit = CheckParams {
        open_files_limit: Some(64),
        ..params()
    };
    assert!(!startup_checks_with(&host, &node1, &low_limit).is_empty());
    assert!(startup_checks(&host, &node1, params().tcp_backlog, false).is_empty());
}
