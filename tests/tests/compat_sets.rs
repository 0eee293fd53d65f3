//! Differential tests: set commands, slotd vs redis-server 7.0.
use tests::{assert_same, assert_same_unordered};

#[test]
fn set_basics() {
    assert_same(&[
        &["SADD", "s", "a", "b", "c", "a"],
        &["SADD", "s", "a"],
        &["SCARD", "s"],
        &["SCARD", "missing"],
        &["SISMEMBER", "s", "a"],
        &["SISMEMBER", "s", "z"],
        &["SISMEMBER", "missing", "a"],
        &["SMISMEMBER", "s", "a", "z", "c"],
        &["SMISMEMBER", "missing", "a", "b"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "missing"],
        &["SREM", "s", "a", "z"],
        &["SREM", "s", "z"],
        &["SREM", "missing", "a"],
        &["SMEMBERS", "s"],
        &["SREM", "s", "b", "c"],
        &["EXISTS", "s"],
        &["SET", "str", "v"],
        &["SADD", "str", "a"],
        &["SMEMBERS", "str"],
        &["SISMEMBER", "str", "a"],
        &["SADD", "s"],
        &["SMISMEMBER", "s"],
    ]);
}

#[test]
fn set_algebra() {
    assert_same_unordered(&[
        &["SADD", "{s}a", "1", "2", "3", "4", "x"],
        &["SADD", "{s}b", "3", "4", "5", "x", "y"],
        &["SADD", "{s}c", "4", "x", "z"],
        &["SINTER", "{s}a", "{s}b"],
        &["SINTER", "{s}a", "{s}b", "{s}c"],
        &["SINTER", "{s}a", "{s}none"],
        &["SUNION", "{s}a", "{s}b", "{s}none"],
        &["SDIFF", "{s}a", "{s}b"],
        &["SDIFF", "{s}a", "{s}b", "{s}c"],
        &["SDIFF", "{s}none", "{s}a"],
        &["SINTERCARD", "2", "{s}a", "{s}b"],
        &["SINTERCARD", "3", "{s}a", "{s}b", "{s}c"],
        &["SINTERCARD", "2", "{s}a", "{s}b", "LIMIT", "1"],
        &["SINTERCARD", "2", "{s}a", "{s}b", "LIMIT", "0"],
        &["SINTERCARD", "2", "{s}a", "{s}none"],
        &["SINTERCARD", "0", "{s}a"],
        &["SINTERCARD", "3", "{s}a", "{s}b"],
        &["SINTERCARD", "2", "{s}a", "{s}b", "LIMIT", "-1"],
        &["SINTERCARD", "2", "{s}a", "{s}b", "BOGUS", "1"],
        &["SINTERSTORE", "{s}d", "{s}a", "{s}b"],
        &["SMEMBERS", "{s}d"],
        &["SUNIONSTORE", "{s}d", "{s}a", "{s}c"],
        &["SMEMBERS", "{s}d"],
        &["SDIFFSTORE", "{s}d", "{s}a", "{s}b"],
        &["SMEMBERS", "{s}d"],
        &["SINTERSTORE", "{s}d", "{s}a", "{s}none"],
        &["EXISTS", "{s}d"],
        &["SINTERSTORE", "{s}a", "{s}a", "{s}b"],
        &["SMEMBERS", "{s}a"],
        &["SET", "{s}str", "v"],
        &["SINTER", "{s}a", "{s}str"],
        &["SUNIONSTORE", "{s}str", "{s}a"],
        &["TYPE", "{s}str"],
        &["SMOVE", "{s}b", "{s}c", "5"],
        &["SMOVE", "{s}b", "{s}c", "nope"],
        &["SMOVE", "{s}none", "{s}c", "5"],
        &["SMEMBERS", "{s}b"],
        &["SMEMBERS", "{s}c"],
        &["SMOVE", "{s}c", "{s}str2", "5"],
        &["SET", "{s}str2", "x"],
        &["SMOVE", "{s}c", "{s}str2", "4"],
    ]);
}

#[test]
fn set_encodings() {
    let mut many_ints = vec!["SADD".to_string(), "ints".to_string()];
    for i in 0..600 {
        many_ints.push(i.to_string());
    }
    let many_ints: Vec<&str> = many_ints.iter().map(|s| s.as_str()).collect();
    assert_same(&[
        &["SADD", "i", "1", "2", "3"],
        &["OBJECT", "ENCODING", "i"],
        &["SADD", "i", "a"],
        &["OBJECT", "ENCODING", "i"],
        &many_ints,
        &["SCARD", "ints"],
        &["OBJECT", "ENCODING", "ints"],
        &["SISMEMBER", "ints", "599"],
        &["SISMEMBER", "ints", "600"],
        &["SADD", "m", "x", "y"],
        &["OBJECT", "ENCODING", "m"],
    ]);
}

/// SINTER, SUNION and SDIFF of integer sets come in ascending order, as
/// Redis 7.0 replies from the intset it builds (keys on either core).
/// (The differential harness compares these replies in any order: this
/// test compares the bytes.)
#[test]
fn set_algebra_of_integers_is_ordered() {
    let cmds: &[&[&str]] = &[
        &[
            "SADD", "a", "90", "3", "71", "1", "-5", "44", "13", "1000", "27", "600", "18", "5",
        ],
        &[
            "SADD", "b", "8", "2", "66", "4", "3", "501", "77", "12", "900", "31", "44",
        ],
        &[
            "SADD", "{a}c", "3", "90", "100", "1000", "13", "27", "5", "-5", "44",
        ],
        &["SUNION", "a", "b"],
        &["SDIFF", "a", "b"],
        &["SINTER", "a", "{a}c"],
        &["SUNION", "a", "{a}c"],
        &["SDIFF", "{a}c", "a"],
    ];
    let mut seen = Vec::new();
    for s in [
        tests::Server::slotd(&["--shards", "2"]),
        tests::Server::redis(&[]),
    ] {
        let mut c = s.raw();
        seen.push(cmds.iter().map(|a| c.cmd_str(a)).collect::<Vec<_>>());
    }
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}
