//! Differential tests in RESP3 (HELLO 3), slotd vs redis-server 7.0.
//! HELLO's own reply is compared by type only (server name/version differ).
use tests::{assert_same, assert_same_unordered};

#[test]
fn resp3_types() {
    assert_same(&[
        &["HELLO", "3"],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["GET", "missing"],
        &["INCR", "n"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["HGETALL", "h"],
        &["HGETALL", "missing"],
        &["ZADD", "z", "1.5", "a", "2", "b", "-inf", "c"],
        &["ZSCORE", "z", "a"],
        &["ZSCORE", "z", "c"],
        &["ZSCORE", "z", "missing"],
        &["ZMSCORE", "z", "a", "missing"],
        &["ZINCRBY", "z", "1", "a"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZPOPMIN", "z"],
        &["ZPOPMAX", "z", "5"],
        &["SADD", "s", "x", "y", "z"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "missing"],
        &["SISMEMBER", "s", "x"],
        &["SMISMEMBER", "s", "x", "q"],
        &["RPUSH", "l", "a"],
        &["LPOP", "missing"],
        &["LPOP", "missing", "2"],
        &["LRANGE", "l", "0", "-1"],
        &["EXISTS", "k"],
        &["HELLO", "2"],
        &["HGETALL", "h"],
        &["ZSCORE", "z", "b"],
    ]);
}

#[test]
fn resp3_unordered_aggregates() {
    assert_same_unordered(&[
        &["HELLO", "3"],
        &["HSET", "h", "f1", "v1", "f2", "v2", "f3", "v3"],
        &["HGETALL", "h"],
        &["HKEYS", "h"],
        &["SADD", "{s}a", "1", "2", "3"],
        &["SADD", "{s}b", "2", "3", "4"],
        &["SINTER", "{s}a", "{s}b"],
        &["SUNION", "{s}a", "{s}b"],
        &["SDIFF", "{s}a", "{s}b"],
        &["MSET", "k1", "a", "k2", "b"],
        &["KEYS", "k*"],
        &["HELLO", "3", "SETNAME", "tester"],
        &["HELLO", "4"],
        &["HELLO", "x"],
    ]);
}
