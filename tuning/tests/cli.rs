//! The `slotd-tune` binary end to end against fixture roots.

mod common;

use std::process::{Command, Output};

use common::{standard_host, Fixture};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slotd-tune"))
        .args(args)
        .output()
        .expect("runs slotd-tune")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inspect_prints_summary_and_json() {
    let fx = standard_host("two_socket_nic_node1").build("cli-inspect");
    let root = fx.root.to_string_lossy().into_owned();
    let o = run(&["inspect", "--root", &root]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("CPUs: 16 online (0-15), 8 physical cores, SMT on"),
        "{out}"
    );
    assert!(
        out.contains("NUMA node 1: CPUs 4-7,12-15, 16000 MiB"),
        "{out}"
    );
    assert!(
        out.contains("NIC eth0: NUMA node 1, 8 rx / 8 tx queues, 8 IRQs"),
        "{out}"
    );
    assert!(out.contains("IRQ 64 eth0-TxRx-0 -> CPUs 0-15"), "{out}");

    let o = run(&["inspect", "--root", &root, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["nics"][0]["numa_node"], 1);
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["settings"]["thp_enabled"], "never");
}

#[test]
fn plan_apply_dry_run_apply_revert() {
    let fx = standard_host("one_socket_smt").build("cli-flow");
    let root = fx.root.to_string_lossy().into_owned();
    let profile = fx.path("profile.toml");
    let profile_s = profile.to_string_lossy().into_owned();

    let o = run(&[
        "plan",
        "--root",
        &root,
        "--nic",
        "eth0",
        "--shards",
        "2",
        "--profile",
        "balanced",
        "--out",
        &profile_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = fx.read("profile.toml");
    assert!(text.contains("profile = \"balanced\""), "{text}");

    let o = run(&["apply", &profile_s, "--dry-run", "--root", &root]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "write /proc/irq/40/smp_affinity_list 5\n\
         write /proc/irq/41/smp_affinity_list 6\n\
         write /proc/irq/42/smp_affinity_list 4\n\
         write /proc/irq/43/smp_affinity_list 5\n\
         write /proc/sys/net/core/somaxconn 65535\n\
         write /proc/sys/net/ipv4/tcp_max_syn_backlog 65535\n\
         write /proc/sys/vm/overcommit_memory 1\n\
         write /sys/kernel/mm/transparent_hugepage/enabled madvise\n\
         write /proc/sys/net/core/busy_poll 0\n"
    );
    // Dry run writes nothing.
    assert_eq!(fx.read("proc/sys/net/core/somaxconn"), "4096\n");

    let o = run(&[
        "check",
        "--root",
        &root,
        "--profile-file",
        &profile_s,
        "--nofile",
        "65536",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("IRQs of NIC eth0 can land on shard cores"));

    let o = run(&["apply", &profile_s, "--root", &root]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("slotd-tune revert"), "{}", stdout(&o));
    assert_eq!(fx.read("proc/irq/41/smp_affinity_list"), "6\n");
    assert_eq!(fx.read("proc/sys/net/core/somaxconn"), "65535\n");

    let o = run(&[
        "check",
        "--root",
        &root,
        "--profile-file",
        &profile_s,
        "--nofile",
        "65536",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "no warnings\n");

    // Revert defaults to the root recorded in the undo file.
    let undo = format!("{profile_s}.undo");
    let o = run(&["revert", &undo]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fx.read("proc/irq/41/smp_affinity_list"), "0-7\n");
    assert_eq!(fx.read("proc/sys/net/core/somaxconn"), "4096\n");
}

#[test]
fn apply_refuses_a_profile_for_another_host() {
    let big = standard_host("two_socket_nic_node1").build("cli-big");
    let small = standard_host("one_socket_no_smt").build("cli-small");
    let profile = big.path("p.toml");
    let o = run(&[
        "plan",
        "--root",
        &big.root.to_string_lossy(),
        "--out",
        &profile.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "apply",
        &profile.to_string_lossy(),
        "--dry-run",
        "--root",
        &small.root.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("profile expects 16 CPUs, host has 4"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["plan", "--profile", "fastest"],
        vec!["plan", "--shards", "many"],
        vec!["inspect", "--bogus"],
        vec!["apply"],
        vec!["plan", "--out"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = run(&["help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("slotd-tune inspect"));
}

#[test]
fn broken_root_is_an_error_not_a_panic() {
    let fx = Fixture::empty("cli-broken");
    fx.file("sys/devices/system/cpu/online", "0-\n");
    let o = run(&["inspect", "--root", &fx.root.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("sys/devices/system/cpu/online"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}
