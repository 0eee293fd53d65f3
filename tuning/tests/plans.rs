//! Plans for the five standard fixture hosts, compared with the checked-in
//! files in tests/expected, plus invariants every plan must keep.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{assert_expected, standard_host, standard_hosts};
use tuning::{plan, read_host, PlanOptions, Profile, ProfileKind};

fn plan_for(name: &str, opts: &PlanOptions) -> Profile {
    let fx = standard_host(name).build(name);
    let host = read_host(&fx.root).expect("fixture host reads");
    plan(&host, opts).expect("fixture host plans")
}

fn golden(name: &str, kind: ProfileKind, file: &str) {
    let opts = PlanOptions {
        kind,
        ..PlanOptions::default()
    };
    let p = plan_for(name, &opts);
    assert_expected(file, &p.to_toml().expect("encodes"));
    // Generation is deterministic.
    assert_eq!(p, plan_for(name, &opts));
}

#[test]
fn golden_one_socket_no_smt() {
    golden(
        "one_socket_no_smt",
        ProfileKind::Throughput,
        "one_socket_no_smt.toml",
    );
}

#[test]
fn golden_one_socket_smt() {
    golden(
        "one_socket_smt",
        ProfileKind::Throughput,
        "one_socket_smt.toml",
    );
}

#[test]
fn golden_two_socket_nic_node1() {
    golden(
        "two_socket_nic_node1",
        ProfileKind::Throughput,
        "two_socket_nic_node1.toml",
    );
    golden(
        "two_socket_nic_node1",
        ProfileKind::Latency,
        "two_socket_nic_node1_latency.toml",
    );
    golden(
        "two_socket_nic_node1",
        ProfileKind::Balanced,
        "two_socket_nic_node1_balanced.toml",
    );
}

#[test]
fn golden_isolated_cpus() {
    golden(
        "isolated_cpus",
        ProfileKind::Throughput,
        "isolated_cpus.toml",
    );
}

#[test]
fn golden_nic_more_queues_than_cores() {
    golden(
        "nic_more_queues_than_cores",
        ProfileKind::Throughput,
        "nic_more_queues_than_cores.toml",
    );
}

#[test]
fn every_plan_keeps_the_rules() {
    for (name, spec) in standard_hosts() {
        let fx = spec.build(name);
        let host = read_host(&fx.root).expect("reads");
        for kind in [
            ProfileKind::Throughput,
            ProfileKind::Latency,
            ProfileKind::Balanced,
        ] {
            let opts = PlanOptions {
                kind,
                ..PlanOptions::default()
            };
            let p = plan(&host, &opts).expect("plans");
            let ctx = format!("{name}/{kind}");
            let shards = p.shard_cpus();
            assert!(!shards.is_empty(), "{ctx}: no shards");
            // One shard per physical core.
            let cores: BTreeSet<Vec<usize>> = shards
                .iter()
                .map(|&c| host.cpu(c).expect("online").siblings.clone())
                .collect();
            assert_eq!(cores.len(), shards.len(), "{ctx}: two shards share a core");
            // The bus core and IRQs stay off shard CPUs.
            assert!(!shards.contains(&p.bus_cpu()), "{ctx}: bus on a shard CPU");
            for irq in &p.irqs {
                assert!(
                    !shards.contains(&irq.cpu),
                    "{ctx}: IRQ {} on a shard",
                    irq.irq
                );
            }
            // Every NIC IRQ is placed.
            let nic = host.default_nic().expect("fixture NIC");
            assert_eq!(p.irqs.len(), nic.irqs.len(), "{ctx}: IRQ count");
            // NIC-local node first: nodes never go back to the NIC's node.
            let nic_node = nic.numa_node.unwrap_or(0);
            let mut left_local = false;
            for (i, &cpu) in shards.iter().enumerate() {
                let n = p.numa_node_of_shard(i).expect("shard node");
                assert_eq!(Some(n), host.cpu(cpu).map(|c| c.node));
                if n != nic_node {
                    left_local = true;
                } else {
                    assert!(!left_local, "{ctx}: NIC-local shard after a remote one");
                }
            }
            assert_eq!(p.numa_node_of_shard(shards.len()), None);
            // Isolated CPUs carry the shards when there are any.
            if !host.isolated.is_empty() {
                for c in shards {
                    assert!(host.isolated.contains(c), "{ctx}: shard {c} not isolated");
                }
                assert!(!host.isolated.contains(&p.bus_cpu()));
            }
            // Every entry says why.
            assert!(!p.bus.reason.is_empty() && !p.memory.reason.is_empty());
            assert!(p.shards.iter().all(|s| !s.reason.is_empty()));
            assert!(p.irqs.iter().all(|s| !s.reason.is_empty()));
            assert!(p.sysctls.iter().all(|s| !s.reason.is_empty()));
            // The profile fits the host it was made on and survives a round trip.
            p.check_matches(&host).expect("fits its own host");
            let text = p.to_toml().expect("encodes");
            let back = Profile::from_toml(&text, Path::new("mem.toml")).expect("decodes");
            assert_eq!(back, p, "{ctx}: round trip");
        }
    }
}

#[test]
fn two_socket_throughput_puts_node1_first_and_siblings_on_irqs() {
    let p = plan_for("two_socket_nic_node1", &PlanOptions::default());
    // Node 1 holds CPUs 4-7 and 12-15; core 4 (4,12) is housekeeping.
    assert_eq!(p.bus_cpu(), 4);
    assert_eq!(p.shard_cpus(), &[5, 6, 7, 0, 1, 2, 3]);
    let irq_cpus: Vec<usize> = p.irqs.iter().map(|i| i.cpu).collect();
    assert_eq!(irq_cpus, vec![13, 14, 15, 12, 13, 14, 15, 12]);
    assert_eq!(p.nic.as_deref(), Some("eth0"));
    assert_eq!(p.nic_numa_node, Some(1));
    assert_eq!(p.fingerprint.node_cpus[0].cpus, "0-3,8-11");
}

#[test]
fn latency_leaves_siblings_idle_and_stays_on_the_nic_node() {
    let p = plan_for(
        "two_socket_nic_node1",
        &PlanOptions {
            kind: ProfileKind::Latency,
            ..PlanOptions::default()
        },
    );
    assert_eq!(p.shard_cpus(), &[5, 6, 7]);
    assert!(p.shards.iter().all(|s| s.numa_node == 1));
    // IRQs on the housekeeping core's other thread, never on shard siblings.
    assert!(p.irqs.iter().all(|i| i.cpu == 12));
    assert_eq!(p.memory.policy, "bind");
    let busy = p.sysctls.iter().find(|s| s.name == "net.core.busy_poll");
    assert_eq!(busy.map(|s| s.value.as_str()), Some("50"));
}

#[test]
fn shard_count_is_honoured_and_bounded() {
    let name = "two_socket_nic_node1";
    let p = plan_for(
        name,
        &PlanOptions {
            shards: Some(2),
            ..PlanOptions::default()
        },
    );
    assert_eq!(p.shard_cpus(), &[5, 6]);

    let fx = standard_host(name).build(name);
    let host = read_host(&fx.root).expect("reads");
    let err = plan(
        &host,
        &PlanOptions {
            shards: Some(99),
            ..PlanOptions::default()
        },
    )
    .expect_err("too many shards");
    assert!(
        err.to_string()
            .contains("asked for 99 shards but only 7 physical cores"),
        "{err}"
    );
    let err = plan(
        &host,
        &PlanOptions {
            shards: Some(0),
            ..PlanOptions::default()
        },
    )
    .expect_err("zero shards");
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = plan(
        &host,
        &PlanOptions {
            nic: Some("eth9".to_string()),
            ..PlanOptions::default()
        },
    )
    .expect_err("unknown NIC");
    assert!(err.to_string().contains("NIC eth9 not found"), "{err}");
    assert!(err.to_string().contains("eth0"), "{err}");
}

#[test]
fn many_queues_wrap_round_robin() {
    let p = plan_for("nic_more_queues_than_cores", &PlanOptions::default());
    assert_eq!(p.irqs.len(), 16);
    let cpus: BTreeSet<usize> = p.irqs.iter().map(|i| i.cpu).collect();
    assert_eq!(cpus, BTreeSet::from([4, 5, 6, 7]));
    assert!(p.irqs[0].reason.contains("16 IRQs share 4 CPU(s)"));
}

#[test]
fn unknown_nic_node_falls_back_to_first_node() {
    let p = plan_for("one_socket_no_smt", &PlanOptions::default());
    assert_eq!(p.nic_numa_node, None);
    assert!(p.bus.reason.contains("NUMA node of eth0 unknown"));
    assert_eq!(p.bus_cpu(), 0);
    assert_eq!(p.shard_cpus(), &[1, 2, 3]);
    assert!(p.irqs.iter().all(|i| i.cpu == 0));
}

#[test]
fn single_core_host_is_refused() {
    let fx = common::HostSpec::new(1, 1, 1).build("single");
    let host = read_host(&fx.root).expect("reads");
    let err = plan(&host, &PlanOptions::default()).expect_err("one core");
    assert!(err.to_string().contains("1 physical core"), "{err}");
}

#[test]
fn host_without_nic_plans_without_irqs() {
    let mut spec = common::HostSpec::new(1, 4, 2);
    spec.nic = None;
    let fx = spec.build("nonic");
    let host = read_host(&fx.root).expect("reads");
    let p = plan(&host, &PlanOptions::default()).expect("plans");
    assert!(p.irqs.is_empty());
    assert_eq!(p.nic, None);
    assert!(p.bus.reason.contains("no NIC found"));
}
