//! Differential tests: OBJECT ENCODING of hashes, sets and sorted sets
//! across every conversion threshold, with the defaults and after CONFIG
//! SET of each directive (and its `ziplist` alias), slotd vs redis-server
//! 7.0.
use tests::assert_same;

/// Runs generated commands through `assert_same`.
fn same(cmds: Vec<Vec<String>>) {
    let v: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = v.iter().map(|c| &c[..]).collect();
    assert_same(&refs);
}

fn c(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn enc(key: &str) -> Vec<String> {
    c(&["OBJECT", "ENCODING", key])
}

/// `n` commands adding one element each, checking the encoding after each
/// of the last few.
fn grow(out: &mut Vec<Vec<String>>, key: &str, n: usize, add: impl Fn(usize) -> Vec<String>) {
    for i in 0..n {
        out.push(add(i));
        if i + 3 >= n {
            out.push(enc(key));
        }
    }
}

#[test]
fn hash_thresholds() {
    let mut v = Vec::new();
    // Entries: 512 by default.
    grow(&mut v, "h", 514, |i| {
        c(&["HSET", "h", &format!("f{i}"), "v"])
    });
    v.push(c(&["HDEL", "h", "f0", "f1", "f2", "f3"]));
    v.push(enc("h"));
    // Value and field lengths: 64 by default.
    v.push(c(&["HSET", "v", "f", &"x".repeat(64)]));
    v.push(enc("v"));
    v.push(c(&["HSET", "v", "g", &"x".repeat(65)]));
    v.push(enc("v"));
    v.push(c(&["HSET", "f", &"x".repeat(65), "1"]));
    v.push(enc("f"));
    v.push(c(&["HSETNX", "n", "a", "1"]));
    v.push(c(&["HSETNX", "n", "a", &"x".repeat(65)]));
    v.push(enc("n"));
    v.push(c(&["HSETNX", "n", "b", &"x".repeat(65)]));
    v.push(enc("n"));
    v.push(c(&["HINCRBY", "i", &"k".repeat(65), "1"]));
    v.push(enc("i"));
    v.push(c(&["HINCRBYFLOAT", "j", "k", "1e300"]));
    v.push(enc("j"));
    v.push(c(&["HGETALL", "v"]));
    // CONFIG SET takes effect for later writes; existing hashes keep
    // their encoding until written.
    v.push(c(&["CONFIG", "SET", "hash-max-listpack-entries", "3"]));
    v.push(c(&["HSET", "s", "a", "1", "b", "2", "c", "3"]));
    v.push(enc("s"));
    v.push(c(&["HSET", "s", "d", "4"]));
    v.push(enc("s"));
    v.push(c(&["HSET", "t", "a", "1", "b", "2", "c", "3", "d", "4"]));
    v.push(enc("t"));
    v.push(c(&["CONFIG", "SET", "hash-max-ziplist-value", "2"]));
    v.push(c(&["HSET", "u", "a", "12"]));
    v.push(enc("u"));
    v.push(c(&["HSET", "u", "a", "123"]));
    v.push(enc("u"));
    v.push(c(&["CONFIG", "SET", "hash-max-ziplist-entries", "0"]));
    v.push(c(&["HSET", "w", "a", "1"]));
    v.push(enc("w"));
    v.push(c(&["COPY", "s", "s2"]));
    v.push(enc("s2"));
    v.push(c(&["CONFIG", "SET", "hash-max-listpack-entries", "512"]));
    v.push(c(&["CONFIG", "SET", "hash-max-listpack-value", "64"]));
    same(v);
}

#[test]
fn set_thresholds() {
    let mut v = Vec::new();
    // Integers: intset up to 512 members.
    grow(&mut v, "i", 514, |i| c(&["SADD", "i", &i.to_string()]));
    v.push(c(&["SREM", "i", "0", "1", "2", "3", "4"]));
    v.push(enc("i"));
    // A string member leaves the intset; strings never come back to it.
    v.push(c(&["SADD", "j", "1", "2", "-3"]));
    v.push(enc("j"));
    v.push(c(&["SADD", "j", "x"]));
    v.push(enc("j"));
    v.push(c(&["SREM", "j", "x"]));
    v.push(enc("j"));
    v.push(c(&["SADD", "k", "01"]));
    v.push(enc("k"));
    v.push(c(&[
        "SADD",
        "l",
        "9223372036854775807",
        "-9223372036854775808",
    ]));
    v.push(enc("l"));
    v.push(c(&["SMEMBERS", "l"]));
    v.push(c(&["SADD", "l", "9223372036854775808"]));
    v.push(enc("l"));
    // Small and large string sets are both `hashtable` to Redis 7.0.
    grow(&mut v, "s", 200, |i| {
        c(&["SADD", "s", &format!("member{i:03}")])
    });
    v.push(c(&["SADD", "t", &"y".repeat(100)]));
    v.push(enc("t"));
    // Results of the algebra, SMOVE and SPOP pick afresh.
    v.push(c(&["SADD", "{a}1", "1", "2", "3", "x"]));
    v.push(c(&["SADD", "{a}2", "2", "3", "4"]));
    v.push(c(&["SINTERSTORE", "{a}3", "{a}1", "{a}2"]));
    v.push(enc("{a}3"));
    v.push(c(&["SUNIONSTORE", "{a}4", "{a}1", "{a}2"]));
    v.push(enc("{a}4"));
    v.push(c(&["SDIFFSTORE", "{a}5", "{a}1", "{a}2"]));
    v.push(enc("{a}5"));
    v.push(c(&["SMOVE", "{a}1", "{a}6", "x"]));
    v.push(enc("{a}6"));
    v.push(c(&["SMOVE", "{a}1", "{a}7", "1"]));
    v.push(enc("{a}7"));
    v.push(c(&["CONFIG", "SET", "set-max-intset-entries", "2"]));
    v.push(c(&["SADD", "m", "1", "2"]));
    v.push(enc("m"));
    v.push(c(&["SADD", "m", "3"]));
    v.push(enc("m"));
    v.push(c(&["SINTERSTORE", "{a}8", "{a}2", "{a}2"]));
    v.push(enc("{a}8"));
    v.push(c(&["CONFIG", "SET", "set-max-intset-entries", "0"]));
    v.push(c(&["SADD", "n", "1"]));
    v.push(enc("n"));
    v.push(c(&["CONFIG", "SET", "set-max-intset-entries", "512"]));
    same(v);
}

#[test]
fn zset_thresholds() {
    let mut v = Vec::new();
    grow(&mut v, "z", 130, |i| {
        c(&["ZADD", "z", &i.to_string(), &format!("m{i}")])
    });
    v.push(c(&["ZREM", "z", "m0", "m1", "m2", "m3"]));
    v.push(enc("z"));
    v.push(c(&["ZADD", "a", "1", &"x".repeat(64)]));
    v.push(enc("a"));
    v.push(c(&["ZADD", "a", "2", &"x".repeat(65)]));
    v.push(enc("a"));
    v.push(c(&["ZADD", "b", "1", &"x".repeat(65)]));
    v.push(enc("b"));
    v.push(c(&["ZINCRBY", "c", "1.5", "m"]));
    v.push(enc("c"));
    v.push(c(&[
        "ZADD", "d", "1.5", "a", "-2", "b", "3e10", "c", "inf", "d", "-inf", "e", "0", "f",
    ]));
    v.push(enc("d"));
    v.push(c(&["ZRANGE", "d", "0", "-1", "WITHSCORES"]));
    v.push(c(&["ZRANGEBYSCORE", "d", "(-2", "3e10", "WITHSCORES"]));
    v.push(c(&["ZRANK", "d", "c"]));
    v.push(c(&["ZREVRANK", "d", "e"]));
    // Stores pick the listpack when the result fits.
    v.push(c(&["ZUNIONSTORE", "u", "2", "z", "d"]));
    v.push(enc("u"));
    v.push(c(&["ZINTERSTORE", "u", "2", "z", "d"]));
    v.push(enc("u"));
    v.push(c(&["ZUNIONSTORE", "u", "1", "z"]));
    v.push(enc("u"));
    v.push(c(&["ZRANGESTORE", "r", "z", "0", "9"]));
    v.push(enc("r"));
    v.push(c(&["ZRANGESTORE", "r", "z", "0", "-1"]));
    v.push(enc("r"));
    v.push(c(&["ZDIFFSTORE", "r", "2", "z", "d"]));
    v.push(enc("r"));
    v.push(c(&["CONFIG", "SET", "zset-max-listpack-entries", "3"]));
    v.push(c(&["ZADD", "e", "1", "a", "2", "b", "3", "c"]));
    v.push(enc("e"));
    v.push(c(&["ZADD", "e", "4", "d"]));
    v.push(enc("e"));
    v.push(c(&["ZRANGESTORE", "r", "e", "0", "1"]));
    v.push(enc("r"));
    v.push(c(&["ZRANGESTORE", "r", "e", "0", "-1"]));
    v.push(enc("r"));
    v.push(c(&["CONFIG", "SET", "zset-max-ziplist-entries", "0"]));
    v.push(c(&["ZADD", "f", "1", "a"]));
    v.push(enc("f"));
    v.push(c(&["CONFIG", "SET", "zset-max-ziplist-entries", "128"]));
    v.push(c(&["CONFIG", "SET", "zset-max-ziplist-value", "1"]));
    v.push(c(&["ZADD", "g", "1", "a", "2", "bb"]));
    v.push(enc("g"));
    v.push(c(&["ZUNIONSTORE", "u", "1", "e"]));
    v.push(enc("u"));
    v.push(c(&["CONFIG", "SET", "zset-max-listpack-value", "64"]));
    same(v);
}
