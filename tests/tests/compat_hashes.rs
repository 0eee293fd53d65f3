//! Differential tests: hash commands, slotd vs redis-server 7.0.
use tests::{assert_same, assert_same_unordered};

#[test]
fn hash_basics() {
    assert_same(&[
        &["HSET", "h", "a", "1", "b", "2"],
        &["HSET", "h", "a", "10", "c", "3"],
        &["HGET", "h", "a"],
        &["HGET", "h", "none"],
        &["HGET", "missing", "a"],
        &["HMGET", "h", "a", "none", "c"],
        &["HMGET", "missing", "a"],
        &["HMSET", "h", "d", "4"],
        &["HLEN", "h"],
        &["HLEN", "missing"],
        &["HEXISTS", "h", "a"],
        &["HEXISTS", "h", "zz"],
        &["HSTRLEN", "h", "a"],
        &["HSTRLEN", "h", "zz"],
        &["HSETNX", "h", "a", "x"],
        &["HSETNX", "h", "e", "5"],
        &["HGETALL", "h"],
        &["HKEYS", "h"],
        &["HVALS", "h"],
        &["HGETALL", "missing"],
        &["HDEL", "h", "a", "b", "none"],
        &["HDEL", "h", "none"],
        &["HLEN", "h"],
        &["HDEL", "h", "c", "d", "e"],
        &["EXISTS", "h"],
        &["HSET", "h", "a"],
        &["HSET", "h"],
        &["HMSET", "h", "a", "1", "b"],
        &["SET", "s", "v"],
        &["HSET", "s", "a", "1"],
        &["HGET", "s", "a"],
        &["HGETALL", "s"],
    ]);
}

#[test]
fn hash_incr() {
    assert_same(&[
        &["HINCRBY", "h", "n", "5"],
        &["HINCRBY", "h", "n", "-10"],
        &["HINCRBY", "h", "n", "x"],
        &["HSET", "h", "s", "abc"],
        &["HINCRBY", "h", "s", "1"],
        &["HSET", "h", "big", "9223372036854775807"],
        &["HINCRBY", "h", "big", "1"],
        &["HINCRBYFLOAT", "h", "f", "1.5"],
        &["HINCRBYFLOAT", "h", "f", "0.25"],
        &["HINCRBYFLOAT", "h", "n", "1"],
        &["HINCRBYFLOAT", "h", "s", "1"],
        &["HINCRBYFLOAT", "h", "f", "abc"],
        &["HSET", "h", "e", "5.0e3"],
        &["HINCRBYFLOAT", "h", "e", "1"],
        &["HGET", "h", "n"],
        &["HGET", "h", "f"],
    ]);
}

#[test]
fn hash_unordered_large() {
    let mut hset = vec!["HSET".to_string(), "big".to_string()];
    for i in 0..200 {
        hset.push(format!("field{i}"));
        hset.push(format!("value{i}"));
    }
    let hset: Vec<&str> = hset.iter().map(|s| s.as_str()).collect();
    assert_same_unordered(&[
        &hset,
        &["HLEN", "big"],
        &["OBJECT", "ENCODING", "big"],
        &["HGET", "big", "field150"],
        &["HKEYS", "big"],
        &["HVALS", "big"],
        &["HGETALL", "big"],
        &["HSET", "small", "a", "1"],
        &["OBJECT", "ENCODING", "small"],
        &["HSET", "small", "long", &"x".repeat(65)],
        &["OBJECT", "ENCODING", "small"],
    ]);
}
