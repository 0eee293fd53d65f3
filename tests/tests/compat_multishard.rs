//! Differential tests with slotd running several shards: multi-key commands
//! whose keys (no hash tags) land on different shards must behave exactly
//! like standalone redis-server.
use tests::assert_same_with;

const SHARDS: &[&str] = &["--shards", "2"];

#[test]
fn cross_shard_strings_and_keys() {
    assert_same_with(
        SHARDS,
        &[
            &[
                "MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6",
            ],
            &["MGET", "a", "b", "c", "d", "e", "f", "nope"],
            &["EXISTS", "a", "b", "c", "d", "nope", "a"],
            &["DBSIZE"],
            &["MSETNX", "x", "1", "y", "2", "a", "9"],
            &["MSETNX", "x", "1", "y", "2", "z", "3"],
            &["MGET", "x", "y", "z", "a"],
            &["DEL", "a", "b", "nope", "c"],
            &["UNLINK", "d", "e"],
            &["MGET", "a", "b", "c", "d", "e", "f"],
            &["KEYS", "*"],
            &["RENAME", "f", "g"],
            &["RENAMENX", "g", "x"],
            &["RENAMENX", "g", "h"],
            &["COPY", "h", "i"],
            &["MGET", "f", "g", "h", "i"],
            &["TOUCH", "h", "i", "x", "nope"],
            &["DBSIZE"],
            &["FLUSHALL"],
            &["DBSIZE"],
            &["MGET", "h", "i"],
        ],
    );
}

#[test]
fn cross_shard_collections() {
    assert_same_with(
        SHARDS,
        &[
            &["SADD", "s1", "a", "b", "c"],
            &["SADD", "s2", "b", "c", "d"],
            &["SADD", "s3", "c", "d", "e"],
            &["SINTERCARD", "3", "s1", "s2", "s3"],
            &["SINTERSTORE", "out1", "s1", "s2"],
            &["SUNIONSTORE", "out2", "s1", "s3"],
            &["SDIFFSTORE", "out3", "s1", "s2"],
            &["SCARD", "out1"],
            &["SCARD", "out2"],
            &["SMEMBERS", "out3"],
            &["SMOVE", "s1", "s3", "a"],
            &["SISMEMBER", "s3", "a"],
            &["RPUSH", "l1", "1", "2", "3"],
            &["LMOVE", "l1", "l2", "LEFT", "RIGHT"],
            &["RPOPLPUSH", "l1", "l3"],
            &["LRANGE", "l1", "0", "-1"],
            &["LRANGE", "l2", "0", "-1"],
            &["LRANGE", "l3", "0", "-1"],
            &["LMPOP", "3", "nope", "l2", "l3", "LEFT"],
            &["ZADD", "z1", "1", "a", "2", "b"],
            &["ZADD", "z2", "3", "b", "4", "c"],
            &["ZUNIONSTORE", "zo", "2", "z1", "z2"],
            &["ZRANGE", "zo", "0", "-1", "WITHSCORES"],
            &["ZINTER", "2", "z1", "z2", "WITHSCORES"],
            &["ZRANGESTORE", "zr", "zo", "0", "1"],
            &["ZRANGE", "zr", "0", "-1", "WITHSCORES"],
            &["BITOP", "OR", "bo", "a1", "a2"],
            &["SET", "a1", "x"],
            &["SET", "a2", "y"],
            &["BITOP", "OR", "bo", "a1", "a2"],
            &["GET", "bo"],
        ],
    );
}

#[test]
fn cross_shard_transactions() {
    assert_same_with(
        SHARDS,
        &[
            &["MULTI"],
            &["SET", "a", "1"],
            &["SET", "b", "2"],
            &["INCR", "c"],
            &["MGET", "a", "b", "c"],
            &["DEL", "a", "b"],
            &["EXEC"],
            &["MGET", "a", "b", "c"],
            &["WATCH", "x", "y"],
            &["SET", "y", "changed"],
            &["MULTI"],
            &["SET", "x", "1"],
            &["EXEC"],
            &["MGET", "x", "y"],
        ],
    );
}

/// Blocking sorted-set pops with a timeout under a millisecond time out
/// (they blocked for good), out-of-range timeouts are "negative", and PING
/// in RESP2 subscribed mode answers as a message.
#[test]
fn short_zset_timeouts_and_subscribed_ping() {
    assert_same_with(
        SHARDS,
        &[
            &["BZPOPMIN", "z", "0.0005"],
            &["BZPOPMAX", "z", "1e-9"],
            &["BZMPOP", "0.0005", "1", "z", "MIN"],
            &["BZPOPMIN", "z", "inf"],
            &["BZMPOP", "1e1000", "1", "z", "MIN"],
            &["SUBSCRIBE", "c"],
            &["PING"],
            &["PING", "x"],
            &["UNSUBSCRIBE", "c"],
            &["PING"],
        ],
    );
}
