//! Differential tests: sorted-set commands, slotd vs redis-server 7.0.
use tests::assert_same;

#[test]
fn zadd_options() {
    assert_same(&[
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["ZADD", "z", "1", "a"],
        &["ZADD", "z", "CH", "10", "a", "4", "d"],
        &["ZADD", "z", "NX", "100", "a", "5", "e"],
        &["ZADD", "z", "XX", "20", "a", "6", "f"],
        &["ZADD", "z", "XX", "CH", "21", "a"],
        &["ZADD", "z", "GT", "1", "a"],
        &["ZADD", "z", "GT", "CH", "30", "a"],
        &["ZADD", "z", "LT", "40", "a"],
        &["ZADD", "z", "LT", "CH", "0.5", "a"],
        &["ZADD", "z", "INCR", "2", "a"],
        &["ZADD", "z", "NX", "INCR", "2", "a"],
        &["ZADD", "z", "XX", "INCR", "2", "nope"],
        &["ZADD", "z", "INCR", "1", "a", "2", "b"],
        &["ZADD", "z", "NX", "XX", "1", "a"],
        &["ZADD", "z", "GT", "LT", "1", "a"],
        &["ZADD", "z", "NX", "GT", "1", "a"],
        &["ZADD", "z", "nan", "a"],
        &["ZADD", "z", "abc", "a"],
        &["ZADD", "z", "1"],
        &["ZADD", "z", "1", "a", "2"],
        &["ZADD", "z", "-inf", "lo", "+inf", "hi"],
        &["ZADD", "z", "1.5e1", "sci", "-0", "negzero", "0.1", "tenth"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZCARD", "z"],
        &["ZCARD", "missing"],
        &["ZSCORE", "z", "a"],
        &["ZSCORE", "z", "tenth"],
        &["ZSCORE", "z", "hi"],
        &["ZSCORE", "z", "nope"],
        &["ZMSCORE", "z", "a", "nope", "lo"],
        &["ZMSCORE", "missing", "a"],
        &["ZINCRBY", "z", "2.5", "b"],
        &["ZINCRBY", "z", "1", "new"],
        &["ZINCRBY", "z", "x", "b"],
        &["ZINCRBY", "z", "+inf", "lo"],
        &["ZRANK", "z", "b"],
        &["ZREVRANK", "z", "b"],
        &["ZRANK", "z", "nope"],
        &["ZCOUNT", "z", "1", "3"],
        &["ZCOUNT", "z", "(1", "3"],
        &["ZCOUNT", "z", "-inf", "+inf"],
        &["ZCOUNT", "z", "x", "3"],
        &["ZREM", "z", "a", "b", "nope"],
        &["ZREM", "z", "nope"],
        &["SET", "s", "v"],
        &["ZADD", "s", "1", "a"],
        &["ZSCORE", "s", "a"],
    ]);
}

#[test]
fn zrange_forms() {
    assert_same(&[
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
        &[
            "ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f",
        ],
        &["ZRANGE", "z", "0", "-1"],
        &["ZRANGE", "z", "1", "3", "WITHSCORES"],
        &["ZRANGE", "z", "-2", "-1"],
        &["ZRANGE", "z", "3", "1"],
        &["ZRANGE", "z", "0", "-1", "REV"],
        &["ZRANGE", "z", "0", "1", "REV", "WITHSCORES"],
        &["ZRANGE", "z", "2", "4", "BYSCORE"],
        &["ZRANGE", "z", "(2", "4", "BYSCORE", "WITHSCORES"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"],
        &[
            "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "0", "2",
        ],
        &["ZRANGE", "z", "4", "(2", "BYSCORE", "REV"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "-1"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "10", "1"],
        &["ZRANGE", "z", "x", "4", "BYSCORE"],
        &["ZRANGE", "lex", "[b", "(e", "BYLEX"],
        &["ZRANGE", "lex", "-", "+", "BYLEX", "LIMIT", "2", "2"],
        &["ZRANGE", "lex", "+", "-", "BYLEX", "REV"],
        &[
            "ZRANGE", "lex", "(e", "[b", "BYLEX", "REV", "LIMIT", "0", "2",
        ],
        &["ZRANGE", "lex", "b", "e", "BYLEX"],
        &["ZRANGE", "lex", "-", "+", "BYLEX", "WITHSCORES"],
        &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"],
        &["ZRANGE", "z", "0", "-1", "BOGUS"],
        &["ZRANGE", "missing", "0", "-1"],
        &["ZRANGEBYSCORE", "z", "2", "4"],
        &[
            "ZRANGEBYSCORE",
            "z",
            "-inf",
            "(3",
            "WITHSCORES",
            "LIMIT",
            "0",
            "1",
        ],
        &["ZREVRANGEBYSCORE", "z", "4", "2"],
        &["ZREVRANGE", "z", "0", "1", "WITHSCORES"],
        &["ZRANGEBYLEX", "lex", "[c", "+"],
        &["ZREVRANGEBYLEX", "lex", "+", "[c", "LIMIT", "1", "2"],
        &["ZLEXCOUNT", "lex", "[b", "[d"],
        &["ZLEXCOUNT", "lex", "-", "+"],
        &["ZLEXCOUNT", "lex", "x", "+"],
        &["ZRANGESTORE", "{x}dst", "{x}src", "0", "-1"],
        &["ZADD", "{x}src", "1", "a", "2", "b", "3", "c"],
        &["ZRANGESTORE", "{x}dst", "{x}src", "1", "-1"],
        &["ZRANGE", "{x}dst", "0", "-1", "WITHSCORES"],
        &[
            "ZRANGESTORE",
            "{x}dst",
            "{x}src",
            "(1",
            "+inf",
            "BYSCORE",
            "REV",
        ],
        &[
            "ZRANGESTORE",
            "{x}dst",
            "{x}src",
            "+inf",
            "(1",
            "BYSCORE",
            "REV",
            "LIMIT",
            "0",
            "1",
        ],
        &["ZRANGE", "{x}dst", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "{x}dst", "{x}src", "5", "10"],
        &["EXISTS", "{x}dst"],
    ]);
}

#[test]
fn zpop_and_remrange() {
    assert_same(&[
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f",
        ],
        &["ZPOPMIN", "z"],
        &["ZPOPMAX", "z"],
        &["ZPOPMIN", "z", "2"],
        &["ZPOPMAX", "z", "0"],
        &["ZPOPMIN", "z", "-1"],
        &["ZPOPMAX", "z", "10"],
        &["EXISTS", "z"],
        &["ZPOPMIN", "missing"],
        &["ZPOPMIN", "missing", "2"],
        &["ZADD", "{p}a", "1", "x", "2", "y"],
        &["ZMPOP", "2", "{p}none", "{p}a", "MIN"],
        &["ZMPOP", "1", "{p}a", "MAX", "COUNT", "5"],
        &["ZMPOP", "1", "{p}a", "MAX"],
        &["BZPOPMIN", "{p}none", "0.01"],
        &["ZADD", "{p}a", "1", "x", "2", "y"],
        &["BZPOPMIN", "{p}none", "{p}a", "1"],
        &["BZPOPMAX", "{p}a", "1"],
        &[
            "ZADD", "r", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
        &["ZREMRANGEBYRANK", "r", "0", "0"],
        &["ZREMRANGEBYSCORE", "r", "(4", "+inf"],
        &["ZADD", "rl", "0", "a", "0", "b", "0", "c", "0", "d"],
        &["ZREMRANGEBYLEX", "rl", "[b", "(d"],
        &["ZRANGE", "rl", "0", "-1"],
        &["ZRANGE", "r", "0", "-1", "WITHSCORES"],
        &["ZREMRANGEBYRANK", "r", "0", "-1"],
        &["EXISTS", "r"],
    ]);
}

#[test]
fn zset_store_forms() {
    assert_same(&[
        &["ZADD", "{z}a", "1", "x", "2", "y", "3", "z"],
        &["ZADD", "{z}b", "10", "y", "20", "z", "30", "w"],
        &["SADD", "{z}s", "x", "w"],
        &["ZUNIONSTORE", "{z}o", "2", "{z}a", "{z}b"],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &[
            "ZUNIONSTORE",
            "{z}o",
            "2",
            "{z}a",
            "{z}b",
            "WEIGHTS",
            "2",
            "0.5",
        ],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &[
            "ZUNIONSTORE",
            "{z}o",
            "2",
            "{z}a",
            "{z}b",
            "AGGREGATE",
            "MAX",
        ],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &[
            "ZINTERSTORE",
            "{z}o",
            "2",
            "{z}a",
            "{z}b",
            "AGGREGATE",
            "MIN",
        ],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &["ZINTERSTORE", "{z}o", "2", "{z}a", "{z}s"],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &["ZDIFFSTORE", "{z}o", "2", "{z}a", "{z}b"],
        &["ZRANGE", "{z}o", "0", "-1", "WITHSCORES"],
        &["ZUNION", "2", "{z}a", "{z}b", "WITHSCORES"],
        &["ZINTER", "2", "{z}a", "{z}b", "WITHSCORES"],
        &["ZINTERCARD", "2", "{z}a", "{z}b"],
        &["ZINTERCARD", "2", "{z}a", "{z}b", "LIMIT", "1"],
        &["ZDIFF", "2", "{z}a", "{z}b", "WITHSCORES"],
        &["ZINTERSTORE", "{z}o", "2", "{z}a", "{z}none"],
        &["EXISTS", "{z}o"],
        &["ZUNIONSTORE", "{z}o", "0", "{z}a"],
        &["ZUNIONSTORE", "{z}o", "3", "{z}a", "{z}b"],
        &["ZUNIONSTORE", "{z}o", "2", "{z}a", "{z}b", "WEIGHTS", "1"],
        &[
            "ZUNIONSTORE",
            "{z}o",
            "2",
            "{z}a",
            "{z}b",
            "AGGREGATE",
            "AVG",
        ],
        &["SET", "{z}str", "v"],
        &["ZUNIONSTORE", "{z}o", "2", "{z}a", "{z}str"],
    ]);
}

#[test]
fn zset_encodings() {
    let mut big = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..200 {
        big.push(i.to_string());
        big.push(format!("m{i}"));
    }
    let big: Vec<&str> = big.iter().map(|s| s.as_str()).collect();
    assert_same(&[
        &["ZADD", "small", "1", "a"],
        &["OBJECT", "ENCODING", "small"],
        &big,
        &["OBJECT", "ENCODING", "big"],
        &["ZRANGE", "big", "100", "110", "WITHSCORES"],
        &["ZRANK", "big", "m150"],
        &["ZRANGE", "big", "(50", "60", "BYSCORE", "LIMIT", "2", "3"],
        &["ZREMRANGEBYSCORE", "big", "10", "189"],
        &["ZRANGE", "big", "0", "-1", "WITHSCORES"],
    ]);
}

/// Scores, weights and range ends read as C's `strtod` reads them:
/// hexadecimal accepted; a score or weight out of a double's range
/// refused (Redis's `getDoubleFromObject`), a range end taken as its
/// rounding; a tiny blocking timeout waits a millisecond, not forever.
#[test]
fn scores_parse_as_strtod() {
    assert_same(&[
        &["ZADD", "zf", "0x10", "a"],
        &["ZADD", "zf", "1e500", "b"],
        &["ZADD", "zf", "1e-400", "c"],
        &["ZADD", "zf", "4.9e-325", "c"],
        &["ZADD", "zf", "4.9e-324", "d"],
        &["ZADD", "zf", "-0x1.8p1", "e"],
        &["ZADD", "zf", "0x", "z"],
        &["ZINCRBY", "zf", "0x1p4", "a"],
        &["ZINCRBY", "zf", "1e500", "a"],
        &["ZRANGEBYSCORE", "zf", "0x1", "+inf", "WITHSCORES"],
        &["ZRANGEBYSCORE", "zf", "-1e500", "(0x20", "WITHSCORES"],
        &["ZCOUNT", "zf", "(-0x10", "1e500"],
        &["ZUNION", "1", "zf", "WEIGHTS", "0x2", "WITHSCORES"],
        &["ZUNION", "1", "zf", "WEIGHTS", "1e500"],
        &["BLPOP", "nokey", "1e-400"],
    ]);
}
