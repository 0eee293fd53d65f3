//! Differential tests: error replies, slotd vs redis-server 7.0.
use tests::{assert_same, Server};

#[test]
fn wrong_arity() {
    assert_same(&[
        &["GET"],
        &["GET", "a", "b"],
        &["SET", "a"],
        &["get"],
        &["LPUSH", "l"],
        &["HSET", "h", "f"],
        &["ZADD", "z"],
        &["DEL"],
        &["EXISTS"],
        &["PING", "a", "b"],
        &["INCR"],
        &["MGET"],
        &["EXPIRE", "k"],
        &["LRANGE", "l", "0"],
        &["SINTERCARD"],
    ]);
}

#[test]
fn exact_arity_message() {
    let s = Server::slotd(&[]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd_str(&["GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        c.cmd_str(&["gEt", "a", "b"]),
        b"-ERR wrong number of arguments for 'get' command\r\n"
    );
}

#[test]
fn unknown_command() {
    assert_same(&[
        &["FOOBAR"],
        &["FOOBAR", "a", "b c", "d"],
        &["foobar", "x"],
        &["NOSUCH", &"a".repeat(200)],
        &["PING"],
    ]);
}

#[test]
fn wrongtype() {
    assert_same(&[
        &["SET", "s", "v"],
        &["RPUSH", "l", "a"],
        &["HSET", "h", "f", "v"],
        &["SADD", "st", "m"],
        &["ZADD", "z", "1", "m"],
        &["LPUSH", "s", "x"],
        &["LLEN", "s"],
        &["GET", "l"],
        &["APPEND", "l", "x"],
        &["STRLEN", "h"],
        &["INCR", "z"],
        &["HGET", "l", "f"],
        &["HGETALL", "st"],
        &["SADD", "h", "x"],
        &["SCARD", "z"],
        &["SMEMBERS", "l"],
        &["ZADD", "st", "1", "x"],
        &["ZRANGE", "h", "0", "-1"],
        &["ZSCORE", "l", "a"],
        &["GETRANGE", "l", "0", "1"],
        &["LRANGE", "z", "0", "-1"],
    ]);
}

#[test]
fn syntax_and_value_errors() {
    assert_same(&[
        &["SET", "k", "v", "XX", "NX"],
        &["SET", "k", "v", "EX", "1", "EX", "2"],
        &["EXPIRE", "k", "10", "NOPE"],
        &["INCRBY", "k", "1.0"],
        &["INCRBY", "k", "99999999999999999999"],
        &["LRANGE", "l", "a", "b"],
        &["ZRANGEBYSCORE", "z", "a", "b"],
        &["ZRANGEBYLEX", "z", "a", "b"],
        &["ZADD", "z", "XX", "NX", "1", "a"],
        &["ZPOPMIN", "z", "x"],
        &["SETEX", "k", "x", "v"],
        &["GETEX", "k", "EX"],
        &["HINCRBY", "h", "f", "1.5"],
        &["LINDEX", "l", "1.5"],
        &["ECHO"],
        &["ECHO", "hello"],
        &["PING", "hello"],
        &["PING"],
    ]);
}

#[test]
fn multi_exec() {
    assert_same(&[
        &["MULTI"],
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["LPUSH", "a", "x"],
        &["GET", "a"],
        &["EXEC"],
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "b", "1"],
        &["DISCARD"],
        &["GET", "b"],
        &["MULTI"],
        &["SET", "b"],
        &["SET", "b", "2"],
        &["EXEC"],
        &["GET", "b"],
        &["WATCH", "w"],
        &["SET", "w", "changed"],
        &["MULTI"],
        &["SET", "w", "tx"],
        &["EXEC"],
        &["GET", "w"],
        &["WATCH", "w"],
        &["UNWATCH"],
        &["MULTI"],
        &["SET", "w", "tx2"],
        &["EXEC"],
        &["GET", "w"],
        // UNWATCH queued in a transaction answers OK (clients queue it).
        &["WATCH", "w"],
        &["MULTI"],
        &["UNWATCH"],
        &["SET", "w", "tx3"],
        &["EXEC"],
        // FLUSHALL and SWAPDB modify only the watched keys that exist
        // (in either database, for SWAPDB).
        &["WATCH", "nokey"],
        &["FLUSHALL"],
        &["MULTI"],
        &["SET", "b", "1"],
        &["EXEC"],
        &["SET", "ex", "1"],
        &["WATCH", "ex"],
        &["FLUSHALL"],
        &["MULTI"],
        &["SET", "b", "2"],
        &["EXEC"],
        &["WATCH", "nokey"],
        &["SWAPDB", "0", "1"],
        &["MULTI"],
        &["SET", "b", "3"],
        &["EXEC"],
        &["SELECT", "1"],
        &["SET", "inone", "1"],
        &["SELECT", "0"],
        &["WATCH", "inone"],
        &["SWAPDB", "0", "1"],
        &["MULTI"],
        &["SET", "b", "4"],
        &["EXEC"],
        // EXEC refused inside a transaction discards it, saying why.
        &["MULTI"],
        &["SET", "b", "5"],
        &["EXEC", "x"],
        &["EXEC"],
        &["GET", "b"],
    ]);
}

/// The differential harness itself must detect a difference: the two
/// servers listen on different ports, so `CONFIG GET port` differs.
#[test]
#[should_panic(expected = "differ between slotd and redis")]
fn harness_detects_differences() {
    tests::panic_expected();
    assert_same(&[&["PING"], &["CONFIG", "GET", "port"]]);
}
