//! Differential tests: Lua scripts (EVAL, EVALSHA, their `_RO` forms,
//! SCRIPT), slotd vs redis-server 7.0, RESP2 and RESP3, on one shard and
//! on two (where a script's keys, declared or not, may live on either
//! core).
use tests::assert_same_with;

const SET_GET: &str = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])";

/// Replies, conversions and errors.
fn basics() -> Vec<Vec<&'static str>> {
    vec![
        vec!["EVAL", "return 1", "0"],
        vec!["EVAL", "return -7.9", "0"],
        vec!["EVAL", "return 'str'", "0"],
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return false", "0"],
        vec!["EVAL", "return nil", "0"],
        vec!["EVAL", "return {1, 'two', {3, {4}}, nil, 5}", "0"],
        vec!["EVAL", "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}", "2", "k1", "k2", "a1", "a2"],
        vec!["EVAL", "return #KEYS + #ARGV", "1", "k", "a", "b"],
        vec!["EVAL", "return redis.status_reply('FINE')", "0"],
        vec!["EVAL", "return redis.error_reply('My Error')", "0"],
        vec!["EVAL", "return redis.error_reply('-CODE with code')", "0"],
        vec!["EVAL", "return redis.error_reply('x')", "0"],
        vec!["EVAL", "return {err='plain table error'}", "0"],
        vec!["EVAL", "return {ok='plain status'}", "0"],
        vec!["EVAL", SET_GET, "1", "key", "value"],
        vec!["EVAL", "return redis.call('get', KEYS[1])", "1", "missing"],
        vec!["EVAL", "return type(redis.call('get', KEYS[1]))", "1", "missing"],
        vec!["EVAL", "return redis.call('incrby', KEYS[1], 5)", "1", "counter"],
        vec!["EVAL", "return redis.call('incrbyfloat', KEYS[1], 1.5)", "1", "float"],
        vec!["EVAL", "redis.call('set', KEYS[1], 3.25); return redis.call('get', KEYS[1])", "1", "num"],
        vec!["EVAL", "return redis.call('hset', KEYS[1], 'a', 1, 'b', 2)", "1", "h"],
        vec!["EVAL", "return redis.call('hgetall', KEYS[1])", "1", "h"],
        vec!["EVAL", "return redis.call('zadd', KEYS[1], 1.5, 'x', 2, 'y')", "1", "z"],
        vec!["EVAL", "return redis.call('zrange', KEYS[1], 0, -1, 'withscores')", "1", "z"],
        vec!["EVAL", "return redis.call('zscore', KEYS[1], 'x')", "1", "z"],
        vec!["EVAL", "return redis.call('set', KEYS[1], 'v')", "1", "s"],
        vec!["EVAL", "return redis.call('ping')", "0"],
        vec!["EVAL", "return redis.call('lpush', KEYS[1], 'x')", "1", "key"],
        vec!["EVAL", "return redis.pcall('lpush', KEYS[1], 'x')", "1", "key"],
        vec!["EVAL", "local r = redis.pcall('lpush', KEYS[1], 'x'); return r['err']", "1", "key"],
        vec!["EVAL", "return redis.call('nosuchcommand')", "0"],
        vec!["EVAL", "return redis.call('get')", "0"],
        vec!["EVAL", "return redis.call()", "0"],
        vec!["EVAL", "return redis.call('get', {})", "0"],
        vec!["EVAL", "return redis.call('eval', 'return 1', '0')", "0"],
        vec!["EVAL", "return redis.call('blpop', KEYS[1], 0)", "1", "emptylist"],
        vec!["EVAL", "error('boom')", "0"],
        vec!["EVAL", "error({err='TABLE raised'})", "0"],
        vec!["EVAL", "local x = nil; return x.field", "0"],
        vec!["EVAL", "\n\nreturn redis.call('lpush', KEYS[1], 1)", "1", "key"],
        vec!["EVAL", "return 1 +", "0"],
        vec!["EVAL", "x = 1", "0"],
        vec!["EVAL", "return undefined_global", "0"],
        vec!["EVAL", "redis.call = nil", "0"],
        vec!["EVAL", "return print", "0"],
        vec!["EVAL", "return os", "0"],
        vec!["EVAL", "return loadfile", "0"],
        vec!["EVAL", "local t = {} t.x = 1 return t.x", "0"],
        vec!["EVAL", "return redis.sha1hex('abc')", "0"],
        vec!["EVAL", "return redis.sha1hex()", "0"],
        vec!["EVAL", "return bit.band(0xff, 0x0f, 0x3)", "0"],
        vec!["EVAL", "return {bit.tohex(65535), bit.tohex(-1, -4), bit.bxor(5, 3), bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.bnot(0)}", "0"],
        vec!["EVAL", "return {string.format('%d-%s', 7, 'x'), math.floor(3.7), table.concat({'a','b'}, ',')}", "0"],
        vec!["EVAL", "return tostring(tonumber('12') + 1)", "0"],
        vec!["EVAL", "return {pcall(error, 'inner')}", "0"],
        vec!["EVAL", "return redis.REDIS_VERSION", "0"],
        vec!["EVAL", "return redis.log(redis.LOG_WARNING, 'from a script')", "0"],
        vec!["EVAL", "return redis.log()", "0"],
        vec!["EVAL", "return redis.setresp(4)", "0"],
        vec!["EVAL", "return redis.set_repl(99)", "0"],
        vec!["EVAL", "return redis.replicate_commands()", "0"],
        vec!["EVAL", "return redis.breakpoint()", "0"],
        vec!["EVAL", "return 1", "-1"],
        vec!["EVAL", "return 1", "2", "onlyone"],
        vec!["EVAL", "return 1", "notanumber"],
        vec!["EVAL", "return redis.call('select', 5)", "0"],
        vec!["EVAL", "redis.call('select', 2); redis.call('set', KEYS[1], 'db2'); return redis.call('get', KEYS[1])", "1", "seldb"],
        vec!["GET", "seldb"],
        vec!["SELECT", "2"],
        vec!["GET", "seldb"],
        vec!["SELECT", "0"],
        vec!["EVAL", "return redis.call('select', 99)", "0"],
        // Shebangs and read-only forms.
        vec!["EVAL", "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])", "1", "key"],
        vec!["EVAL", "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'x')", "1", "key"],
        vec!["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        vec!["EVAL", "#!notlua\nreturn 1", "0"],
        vec!["EVAL", "#!lua name=x\nreturn 1", "0"],
        vec!["EVAL", "#!lua", "0"],
        vec!["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "s"],
        vec!["EVAL_RO", "return redis.call('set', KEYS[1], 'x')", "1", "s"],
        vec!["EVAL_RO", "#!lua\nreturn 1", "0"],
        vec!["EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0"],
        // The cache.
        vec!["SCRIPT", "LOAD", "return 'loaded'"],
        vec!["EVALSHA", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68", "0"],
        vec!["EVALSHA", "D0FF6A7E9ADAE4A9E5C5BB44FE1E8BA7E44BEE68", "0"],
        vec!["EVALSHA_RO", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68", "0"],
        vec!["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
        vec!["EVALSHA", "short", "0"],
        vec!["SCRIPT", "EXISTS", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68", "nope"],
        vec!["SCRIPT", "LOAD", "return +"],
        vec!["SCRIPT", "FLUSH"],
        vec!["SCRIPT", "EXISTS", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68"],
        vec!["EVALSHA", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68", "0"],
        vec!["EVAL", "return 'loaded'", "0"],
        vec!["EVALSHA", "d0ff6a7e9adae4a9e5c5bb44fe1e8ba7e44bee68", "0"],
        vec!["SCRIPT", "FLUSH", "ASYNC"],
        vec!["SCRIPT", "FLUSH", "BAD"],
        vec!["SCRIPT", "KILL"],
        vec!["SCRIPT", "NOSUCH"],
        vec!["SCRIPT", "HELP"],
        vec!["SCRIPT", "LOAD"],
        vec!["SCRIPT", "EXISTS"],
        vec!["SCRIPT", "KILL", "x"],
        vec!["SCRIPT", "HELP", "x"],
        vec!["SCRIPT"],
        // Inside MULTI.
        vec!["MULTI"],
        vec!["EVAL", SET_GET, "1", "inmulti", "v1"],
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", "counter"],
        vec!["EXEC"],
        vec!["GET", "inmulti"],
    ]
}

/// Keys on any core: declared on several, undeclared, multi-key commands
/// and fan-outs inside the script.
fn across_cores() -> Vec<Vec<&'static str>> {
    let mut v = vec![
        vec!["EVAL", "for i = 1, 20 do redis.call('set', 'k' .. i, i) end return redis.call('dbsize')", "0"],
        vec!["EVAL", "local t = {} for i = 1, 20 do t[i] = redis.call('get', 'k' .. i) end return t", "0"],
        vec!["EVAL", "return redis.call('mget', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6')", "0"],
        vec!["EVAL", "return redis.call('mset', KEYS[1], ARGV[1], KEYS[2], ARGV[2])", "2", "a", "b", "1", "2"],
        vec!["EVAL", "return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}", "2", "a", "b"],
        vec!["EVAL", "return redis.call('del', 'k1', 'k2', 'k3', 'k4', 'nope')", "0"],
        vec!["EVAL", "return redis.call('exists', 'k5', 'k6', 'k7')", "0"],
        vec!["EVAL", "redis.call('rpush', 'src', 'a', 'b', 'c'); return redis.call('lmove', 'src', 'dst', 'left', 'right')", "0"],
        vec!["EVAL", "return {redis.call('lrange', 'src', 0, -1), redis.call('lrange', 'dst', 0, -1)}", "0"],
        vec!["EVAL", "redis.call('sadd', 's1', 'a', 'b'); redis.call('sadd', 's2', 'b', 'c'); return redis.call('sunionstore', 'dest', 's1', 's2')", "0"],
        vec!["SCARD", "dest"],
        vec!["EVAL", "return redis.call('rename', KEYS[1], KEYS[2])", "2", "a", "renamed"],
        vec!["MGET", "a", "renamed", "b"],
        vec!["EVAL", "return #redis.call('keys', 'k*')", "0"],
        vec!["EVAL", "return redis.call('dbsize')", "0"],
        vec!["EVAL", "redis.call('flushdb'); return redis.call('dbsize')", "0"],
    ];
    // The same script several times: later runs may go to one core.
    for _ in 0..4 {
        v.push(vec![
            "EVAL",
            "local n = redis.call('incr', KEYS[1]); redis.call('set', KEYS[1] .. ':copy', n); return {n, redis.call('get', 'other')}",
            "1",
            "counter",
        ]);
        v.push(vec![
            "EVAL",
            "return redis.call('incr', KEYS[1])",
            "1",
            "solo",
        ]);
        v.push(vec!["SET", "other", "x"]);
    }
    v.push(vec!["MGET", "counter", "counter:copy", "solo", "other"]);
    v
}

fn resp3() -> Vec<Vec<&'static str>> {
    vec![
        vec!["HELLO", "3"],
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return nil", "0"],
        vec!["EVAL", "redis.setresp(3); return true", "0"],
        vec!["EVAL", "redis.setresp(3); return false", "0"],
        vec!["EVAL", "redis.setresp(3); return redis.call('get', 'missing') == nil", "0"],
        vec!["EVAL", "redis.call('hset', 'h', 'f', 'v'); redis.setresp(3); return redis.call('hgetall', 'h')", "0"],
        vec!["EVAL", "redis.setresp(3); return redis.call('hgetall', 'h')['map']['f']", "0"],
        vec!["EVAL", "redis.call('sadd', 'set', 'm'); redis.setresp(3); return redis.call('smembers', 'set')", "0"],
        vec!["EVAL", "redis.call('zadd', 'z', 2.5, 'm'); redis.setresp(3); return redis.call('zscore', 'z', 'm')", "0"],
        vec!["EVAL", "redis.setresp(3); return redis.call('zscore', 'z', 'm')['double']", "0"],
        vec!["EVAL", "return {double=3.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "return {set={a=true}}", "0"],
        vec!["EVAL", "redis.setresp(2); return redis.call('hgetall', 'h')", "0"],
        vec!["HELLO", "2"],
        vec!["EVAL", "return {double=3.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "redis.setresp(3); return true", "0"],
    ]
}

fn run(shards: &str, cmds: Vec<Vec<&'static str>>) {
    let refs: Vec<&[&str]> = cmds.iter().map(|c| c.as_slice()).collect();
    assert_same_with(&["--shards", shards], &refs);
}

#[test]
fn scripts_on_one_shard() {
    run("1", basics());
    run("1", across_cores());
    run("1", resp3());
}

#[test]
fn scripts_on_two_shards() {
    run("2", basics());
    run("2", across_cores());
    run("2", resp3());
}
