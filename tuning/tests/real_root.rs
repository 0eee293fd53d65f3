//! `inspect` on this machine's real `/`. The sandbox may lack NUMA or NIC
//! information; that must fall back (see the `host` module docs), not fail.

use std::path::Path;
use std::process::Command;

#[test]
fn inspect_real_root_does_not_error() {
    let host = tuning::read_host(Path::new("/")).expect("real root reads");
    assert!(!host.online.is_empty());
    assert!(!host.nodes.is_empty());
    let _ = host.summary();

    let o = Command::new(env!("CARGO_BIN_EXE_slotd-tune"))
        .args(["inspect", "--json"])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
}
