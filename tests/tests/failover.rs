//! Automatic failover against real processes (the checklist's T5, and
//! mixed clusters): a master is killed with `kill -9`, a replica wins the
//! election with the other masters' votes and serves the slots with the
//! data it replicated, and the old master comes back as its replica.
//! Elections between slotd and stock redis-server nodes go both ways.
//!
//! Every process started here is stopped by `Drop`, also when an assertion
//! fails.

use tests::cluster::{addr, line_of, myid, tool as cluster_tool, wait_for};
use tests::Server;

/// Node timeout of these tests (ms).
const TIMEOUT: &str = "1000";

fn slotd_node(dir: &str) -> Server {
    Server::slotd_cluster(&[
        "--cluster-node-timeout",
        TIMEOUT,
        "--shards",
        "2",
        "--dir",
        dir,
    ])
}

fn role(s: &Server) -> String {
    tests::info_field(s, "replication", "role")
}

/// The flags field of `id`'s CLUSTER NODES line as `s` sees it.
fn flags(s: &Server, id: &str) -> String {
    line_of(s, id).split(' ').nth(2).unwrap_or("").to_string()
}

/// The slot ranges of `id`'s CLUSTER NODES line as `s` sees it.
fn slots(s: &Server, id: &str) -> String {
    let line = line_of(s, id);
    line.split(' ').skip(8).collect::<Vec<_>>().join(" ")
}

/// A key of a slot `s` serves as master, and sets it there.
fn key_on(s: &Server, prefix: &str) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| s.cli(&["set", k, "before"]).trim() == "OK")
        .expect("a key of one of the node's slots")
}

#[test]
fn a_replica_takes_over_a_killed_master_and_the_master_returns_as_its_replica() {
    let dirs: Vec<String> = (0..6)
        .map(|i| {
            tests::fresh_dir("failover", &i.to_string())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut nodes: Vec<Server> = dirs.iter().map(|d| slotd_node(d)).collect();
    let mut args = vec!["create".to_string()];
    args.extend(nodes.iter().map(addr));
    args.extend(["--cluster-replicas".to_string(), "1".to_string()]);
    let (ok, out) = cluster_tool(&args);
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    wait_for(30, "every replica's link", || {
        nodes.iter().filter(|n| role(n) == "master").count() == 3
            && nodes.iter().all(|n| {
                role(n) == "master"
                    || tests::info_field(n, "replication", "master_link_status") == "up"
            })
    });
    let m = (0..6).find(|&i| role(&nodes[i]) == "master").unwrap();
    let mid = myid(&nodes[m]);
    let r = (0..6)
        .find(|&i| {
            role(&nodes[i]) == "slave"
                && flags(&nodes[i], &myid(&nodes[i])).contains("slave")
                && line_of(&nodes[i], &myid(&nodes[i])).split(' ').nth(3) == Some(mid.as_str())
        })
        .expect("the master's replica");
    let rid = myid(&nodes[r]);
    let m_slots = slots(&nodes[m], &mid);
    // Writes acknowledged by the master, and replicated before the crash.
    let key = key_on(&nodes[m], "k");
    for i in 0..200 {
        nodes[m].cli(&["set", &format!("{{{key}}}:{i}"), &i.to_string()]);
    }
    let keys = nodes[m].cli(&["dbsize"]);
    wait_for(10, "the replica to catch up", || {
        nodes[r].cli(&["dbsize"]) == keys
    });
    let epoch_before: u64 = tests::cluster::info(&nodes[r], "cluster_current_epoch")
        .parse()
        .unwrap();

    nodes[m].kill();
    let others: Vec<usize> = (0..6).filter(|&i| i != m).collect();
    wait_for(30, "the replica promoted everywhere", || {
        others.iter().all(|&i| {
            let f = flags(&nodes[i], &rid);
            f.contains("master") && slots(&nodes[i], &rid) == m_slots
        })
    });
    assert_eq!(role(&nodes[r]), "master");
    // The old master: failed, its slots gone to the replica.
    for &i in &others {
        let f = flags(&nodes[i], &mid);
        assert!(f.contains("master") && f.contains("fail"), "{f}");
        assert_eq!(slots(&nodes[i], &mid), "");
    }
    wait_for(10, "cluster_state:ok", || {
        others
            .iter()
            .all(|&i| tests::cluster::info(&nodes[i], "cluster_state") == "ok")
    });
    // The new epoch, above every earlier one.
    let epoch: u64 = line_of(&nodes[r], &rid)
        .split(' ')
        .nth(6)
        .unwrap()
        .parse()
        .unwrap();
    assert!(epoch > epoch_before, "{epoch} > {epoch_before}");
    // Redis's log lines, in order, on the winner; the votes on masters.
    let log = nodes[r].log();
    let mut at = 0;
    for line in [
        "Marking node",
        "Start of election delayed for ",
        &format!("Starting a failover election for epoch {epoch}."),
        "Failover election won: I'm the new master.",
        &format!("configEpoch set to {epoch} after successful failover"),
        "Setting secondary replication ID to ",
    ] {
        let found = log[at..].find(line).map(|p| p + at);
        if line == "Marking node" {
            // A replica may learn FAIL from a master's message instead.
            continue;
        }
        at = found.unwrap_or_else(|| panic!("no '{line}' after byte {at} of the log:\n{log}"));
    }
    let granted = others
        .iter()
        .filter(|&&i| {
            nodes[i]
                .log()
                .contains(&format!("Failover auth granted to {rid} for epoch {epoch}"))
        })
        .count();
    assert!(granted >= 2, "votes granted: {granted}");
    // Every acknowledged write is there, and the new master takes writes.
    assert_eq!(nodes[r].cli(&["dbsize"]), keys);
    assert_eq!(
        nodes[r].cli(&["get", &format!("{{{key}}}:199")]).trim(),
        "199"
    );
    assert_eq!(nodes[r].cli(&["set", &key, "after"]).trim(), "OK");

    // The old master restarts from its nodes.conf, learns it lost its
    // slots, and follows the new master with a full resync.
    nodes[m] = slotd_node(&dirs[m]);
    wait_for(30, "the old master as the new one's replica", || {
        role(&nodes[m]) == "slave"
            && tests::info_field(&nodes[m], "replication", "master_link_status") == "up"
            && tests::info_field(&nodes[m], "replication", "master_port")
                == nodes[r].port().to_string()
    });
    assert!(nodes[m].log().contains(&format!(
        "Configuration change detected. Reconfiguring myself as a replica of {rid}"
    )));
    wait_for(10, "the write made after the failover", || {
        nodes[m].cli(&["dbsize"]) == nodes[r].cli(&["dbsize"])
    });
    wait_for(20, "everyone to see it as a replica", || {
        others.iter().all(|&i| {
            let l = line_of(&nodes[i], &mid);
            l.split(' ').nth(2) == Some("slave") && l.split(' ').nth(3) == Some(rid.as_str())
        })
    });
    assert!(others.iter().any(|&i| nodes[i].log().contains(&format!(
        "Clear FAIL state for node {mid}: master without slots is reachable again."
    ))));
}
