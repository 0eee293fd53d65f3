//! Differential tests: SORT and SORT_RO, slotd vs redis-server 7.0, on one
//! shard and on two (where BY and GET patterns name keys on either core,
//! and STORE's destination is on another core than the source).
use std::time::{Duration, Instant};
use tests::{assert_same_with, show, Server};

fn cases() -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = Vec::new();
    let mut c = |parts: &[&str]| v.push(parts.iter().map(|s| s.to_string()).collect());
    c(&["RPUSH", "nums", "3", "1", "2", "10", "-5", "2.5", "1e3"]);
    c(&["SORT", "nums"]);
    c(&["SORT", "nums", "DESC"]);
    c(&["SORT", "nums", "LIMIT", "1", "3"]);
    c(&["SORT", "nums", "LIMIT", "-5", "2"]);
    c(&["SORT", "nums", "LIMIT", "10", "5"]);
    c(&["SORT", "nums", "LIMIT", "2", "-1"]);
    c(&["SORT", "nums", "LIMIT", "0", "0"]);
    c(&["SORT", "nums", "ALPHA"]);
    c(&["SORT", "nums", "ALPHA", "DESC", "LIMIT", "0", "3"]);
    c(&["SORT_RO", "nums", "DESC"]);
    c(&["RPUSH", "words", "pear", "apple", "fig", "banana", "apple"]);
    c(&["SORT", "words"]);
    c(&["SORT", "words", "ALPHA"]);
    c(&["SORT", "words", "ALPHA", "DESC"]);
    // BY and GET patterns, strings and hash fields, missing ones.
    for (i, w) in [("1", "9"), ("2", "7"), ("3", "8"), ("10", "1")] {
        c(&["SET", &format!("weight_{i}"), w]);
        c(&["SET", &format!("name_{i}"), &format!("item{i}")]);
        c(&[
            "HSET",
            &format!("obj_{i}"),
            "w",
            w,
            "name",
            &format!("h{i}"),
        ]);
    }
    c(&["RPUSH", "ids", "1", "2", "3", "10", "4"]);
    c(&["SORT", "ids", "BY", "weight_*"]);
    c(&["SORT", "ids", "BY", "weight_*", "DESC"]);
    c(&["SORT", "ids", "BY", "weight_*", "GET", "name_*"]);
    c(&[
        "SORT",
        "ids",
        "BY",
        "weight_*",
        "GET",
        "#",
        "GET",
        "name_*",
        "GET",
        "obj_*->name",
    ]);
    c(&["SORT", "ids", "BY", "obj_*->w", "GET", "obj_*->name"]);
    // SORT_RO's patterns reach every core too (it read its own core's).
    c(&["SORT_RO", "ids", "BY", "weight_*", "GET", "name_*"]);
    c(&["SORT_RO", "ids", "GET", "name_*", "GET", "#"]);
    c(&["SORT_RO", "ids", "BY", "obj_*->w", "GET", "obj_*->name"]);
    c(&["SORT", "ids", "BY", "obj_*->nofield"]);
    c(&["SORT", "ids", "BY", "nosort"]);
    c(&["SORT", "ids", "BY", "nosort", "DESC", "LIMIT", "1", "2"]);
    c(&["SORT", "ids", "BY", "nosort", "GET", "name_*"]);
    c(&["SORT", "ids", "BY", "name_*", "ALPHA"]);
    c(&["SORT", "ids", "BY", "name_*"]);
    c(&["SORT", "ids", "GET", "nokey"]);
    c(&["SORT", "ids", "GET", "name_*->x"]);
    c(&[
        "SORT", "ids", "BY", "weight_*", "LIMIT", "1", "2", "GET", "name_*",
    ]);
    c(&["SORT", "ids", "BY", "weight_*", "STORE", "dest"]);
    c(&["LRANGE", "dest", "0", "-1"]);
    c(&[
        "SORT",
        "ids",
        "BY",
        "weight_*",
        "GET",
        "name_*",
        "GET",
        "missing_*",
        "STORE",
        "dest2",
    ]);
    c(&["LRANGE", "dest2", "0", "-1"]);
    c(&["SORT", "missing", "STORE", "dest2"]);
    c(&["EXISTS", "dest2"]);
    c(&["SORT", "nums", "STORE", "nums"]);
    c(&["LRANGE", "nums", "0", "-1"]);
    c(&["SORT", "words", "STORE", "other"]);
    c(&["SORT", "words", "ALPHA", "STORE", "other"]);
    c(&["LRANGE", "other", "0", "-1"]);
    // Sets and sorted sets.
    c(&["SADD", "s", "5", "3", "9", "1"]);
    c(&["SORT", "s"]);
    c(&["SORT", "s", "DESC", "LIMIT", "0", "2"]);
    c(&["SORT", "s", "BY", "nosort", "STORE", "sdest"]);
    c(&["LRANGE", "sdest", "0", "-1"]);
    c(&["ZADD", "z", "1", "c", "2", "a", "3", "b"]);
    c(&["SORT", "z", "ALPHA"]);
    c(&["SORT", "z", "BY", "nosort"]);
    c(&["SORT", "z", "BY", "nosort", "DESC"]);
    c(&["SORT", "z", "BY", "nosort", "LIMIT", "1", "5"]);
    c(&["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "1"]);
    // Errors.
    c(&["SORT", "words"]);
    c(&["SET", "str", "x"]);
    c(&["SORT", "str"]);
    c(&["SORT", "nums", "BOGUS"]);
    c(&["SORT", "nums", "LIMIT", "x", "1"]);
    c(&["SORT", "nums", "LIMIT", "1"]);
    c(&["SORT_RO", "nums", "STORE", "x"]);
    c(&["SORT", "nums", "GET"]);
    c(&["SORT"]);
    c(&["RPUSH", "bad", "1", "x", "2"]);
    c(&["SORT", "bad"]);
    c(&["SORT", "bad", "ALPHA"]);
    c(&["SET", "weight_x", "notanumber"]);
    c(&["RPUSH", "ids2", "1", "x"]);
    c(&["SORT", "ids2", "BY", "weight_*"]);
    // In a transaction and a script.
    c(&["MULTI"]);
    c(&["SORT", "ids", "BY", "weight_*", "GET", "name_*"]);
    c(&["SORT", "ids", "BY", "weight_*", "STORE", "dest3"]);
    c(&["EXEC"]);
    c(&["LRANGE", "dest3", "0", "-1"]);
    c(&[
        "EVAL",
        "return redis.call('sort', KEYS[1], 'BY', 'weight_*', 'GET', 'name_*')",
        "1",
        "ids",
    ]);
    c(&[
        "EVAL",
        "return redis.call('sort', KEYS[1], 'BY', 'weight_*', 'GET', 'name_*')",
        "1",
        "ids",
    ]);
    v
}

fn run(shards: &str) {
    let cmds = cases();
    let owned: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = owned.iter().map(|c| c.as_slice()).collect();
    assert_same_with(&["--shards", shards], &refs);
}

#[test]
fn sort_on_one_shard() {
    run("1");
}

#[test]
fn sort_on_two_shards() {
    run("2");
}

/// In cluster mode Redis refuses BY with a pattern and any GET (their
/// keys could be in any slot); BY without `*` (no sorting) is allowed.
#[test]
fn sort_patterns_are_refused_in_cluster_mode() {
    let slotd = Server::slotd_cluster(&["--shards", "2"]);
    let redis = Server::redis_cluster(&[]);
    let cmds: &[&[&str]] = &[
        &["RPUSH", "l", "3", "1", "2"],
        &["SORT", "l"],
        &["SORT", "l", "BY", "w_*"],
        &["SORT", "l", "BY", "nosort"],
        &["SORT", "l", "GET", "#"],
        &["SORT", "l", "GET", "n_*"],
        &["SORT_RO", "l", "BY", "w_*->f"],
        &["SORT", "l", "LIMIT", "0", "1", "STORE", "l"],
        &["LRANGE", "l", "0", "-1"],
    ];
    let mut replies = Vec::new();
    for s in [&slotd, &redis] {
        let mut c = s.raw();
        c.cmd_str(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster never ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        replies.push(cmds.iter().map(|a| show(&c.cmd_str(a))).collect::<Vec<_>>());
    }
    assert_eq!(replies[0], replies[1]);
    assert!(replies[0][2].contains("BY option of SORT denied in Cluster mode."));
}
