//! Differential tests: HyperLogLog, slotd vs redis-server 7.0: replies,
//! errors, and the very bytes PFADD, PFMERGE, PFCOUNT's cache and PFDEBUG
//! leave in the string (GET), sparse, dense and in between.
use tests::{assert_same, assert_same_with};

/// `cmds` as the harness takes them.
fn run(slotd_args: &[&str], cmds: &[Vec<String>]) {
    let owned: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = owned.iter().map(|c| c.as_slice()).collect();
    assert_same_with(slotd_args, &refs);
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// PFADD `key` with elements `prefix0..prefixN` in batches of `batch`.
fn adds(key: &str, prefix: &str, n: usize, batch: usize) -> Vec<Vec<String>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| {
            let mut v = cmd(&["PFADD", key]);
            v.extend(c.iter().map(|i| format!("{prefix}{i}")));
            v
        })
        .collect()
}

#[test]
fn pfadd_pfcount_and_their_bytes() {
    assert_same(&[
        &["PFADD", "h", "a", "b", "c"],
        &["PFADD", "h", "a"],
        &["GET", "h"],
        &["PFCOUNT", "h"],
        &["GET", "h"],
        &["PFADD", "h", "d"],
        &["GET", "h"],
        &["PFCOUNT", "missing"],
        &["PFADD", "empty"],
        &["PFADD", "empty"],
        &["GET", "empty"],
        &["PFCOUNT", "empty"],
        &["OBJECT", "ENCODING", "h"],
        &["PFDEBUG", "ENCODING", "h"],
        &["PFDEBUG", "DECODE", "h"],
        &["PFDEBUG", "TODENSE", "h"],
        &["PFDEBUG", "TODENSE", "h"],
        &["PFDEBUG", "ENCODING", "h"],
        &["PFDEBUG", "DECODE", "h"],
        &["GET", "h"],
        &["PFCOUNT", "h"],
        &["PFADD", "h2", "x", "y"],
        &["PFDEBUG", "GETREG", "h2"],
        &["PFDEBUG", "ENCODING", "h2"],
        &["GET", "h2"],
        &["PFDEBUG", "NOSUCH", "h2"],
        &["PFDEBUG", "ENCODING", "missing"],
        &["TYPE", "h2"],
        &["STRLEN", "h2"],
    ]);
}

#[test]
fn hll_errors() {
    assert_same(&[
        &["SET", "s", "not an hll"],
        &["PFADD", "s", "x"],
        &["PFCOUNT", "s"],
        &["PFCOUNT", "s", "other"],
        &["PFMERGE", "d", "s"],
        &["PFDEBUG", "ENCODING", "s"],
        &["LPUSH", "l", "a"],
        &["PFADD", "l", "x"],
        &["PFCOUNT", "l"],
        &["PFMERGE", "l", "missing"],
        // A sparse header over opcodes that do not cover the registers.
        &[
            "SET",
            "bad",
            "HYLL\u{1}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{1}\u{1}",
        ],
        &["PFCOUNT", "bad"],
        &["PFADD", "bad", "x", "y", "z"],
        &["PFCOUNT", "bad", "s"],
        // A dense header of the wrong length.
        &[
            "SET",
            "short",
            "HYLL\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        ],
        &["PFCOUNT", "short"],
        &["PFADD"],
        &["PFCOUNT"],
        &["PFMERGE"],
        &["PFDEBUG", "ENCODING"],
    ]);
}

/// From a few registers to thousands: the sparse form as it grows, the
/// switch to dense past `hll-sparse-max-bytes` (3000), counts along the
/// way, and merges and counts of several keys, on 2 cores (keys spread
/// over both).
#[test]
fn growing_merging_and_counting_many() {
    let mut cmds = Vec::new();
    for (i, batch) in adds("big", "e", 6000, 150).into_iter().enumerate() {
        cmds.push(batch);
        if i % 4 == 0 {
            cmds.push(cmd(&["GET", "big"]));
            cmds.push(cmd(&["PFCOUNT", "big"]));
            cmds.push(cmd(&["PFDEBUG", "ENCODING", "big"]));
        }
    }
    cmds.extend(adds("other", "e", 300, 50));
    cmds.extend(adds("third", "x", 40, 7));
    cmds.push(cmd(&["PFCOUNT", "big", "other", "third", "missing"]));
    cmds.push(cmd(&["PFMERGE", "dest", "third", "other"]));
    cmds.push(cmd(&["GET", "dest"]));
    cmds.push(cmd(&["PFCOUNT", "dest"]));
    cmds.push(cmd(&["PFMERGE", "dest", "big"]));
    cmds.push(cmd(&["GET", "dest"]));
    cmds.push(cmd(&["PFMERGE", "fresh", "missing"]));
    cmds.push(cmd(&["GET", "fresh"]));
    cmds.push(cmd(&["PFMERGE", "third"]));
    cmds.push(cmd(&["GET", "third"]));
    cmds.push(cmd(&["GET", "big"]));
    run(&["--shards", "2"], &cmds);
}

#[test]
fn hll_sparse_max_bytes_decides_when_an_hll_turns_dense() {
    let mut cmds = vec![
        cmd(&["CONFIG", "SET", "hll-sparse-max-bytes", "60"]),
        cmd(&["CONFIG", "GET", "hll-sparse-max-bytes"]),
    ];
    for batch in adds("h", "m", 40, 2) {
        cmds.push(batch);
        cmds.push(cmd(&["PFDEBUG", "ENCODING", "h"]));
        cmds.push(cmd(&["GET", "h"]));
    }
    cmds.push(cmd(&["CONFIG", "SET", "hll-sparse-max-bytes", "3000"]));
    cmds.extend(adds("h2", "m", 40, 2));
    cmds.push(cmd(&["PFDEBUG", "ENCODING", "h2"]));
    run(&[], &cmds);
}

#[test]
fn pfselftest_passes() {
    assert_same(&[&["PFSELFTEST"], &["PFSELFTEST", "extra"]]);
}
