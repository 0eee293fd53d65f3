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
        // KEYS and ARGV are refilled, not remade: what a longer call left
        // is gone, and a script that replaced them does not leak.
        vec!["EVAL", "return {#KEYS, #ARGV, KEYS[2], ARGV[3]}", "0"],
        vec!["EVAL", "KEYS = {'replaced'}; return KEYS[1]", "0"],
        vec!["EVAL", "return {#KEYS, KEYS[1]}", "1", "fresh"],
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
        vec!["EVAL", "redis.call('xadd', KEYS[1], '1-1', 'f', 'v'); return redis.call('xread', 'streams', KEYS[1], '0')", "1", "strm"],
        vec!["EVAL", "redis.call('geoadd', KEYS[1], 13.361389, 38.115556, 'p'); return redis.call('geopos', KEYS[1], 'p', 'q')", "1", "geo"],
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
        // Redis's pcall gives a table error's `err` field, a string.
        vec!["EVAL", "local ok, e = pcall(redis.call, 'lpush', KEYS[1], 'x'); return {tostring(ok), type(e), string.find(e, 'WRONGTYPE')}", "1", "key"],
        vec!["EVAL", "local ok, e = pcall(redis.call, 'nosuch'); return e", "0"],
        vec!["EVAL", "local ok, e = pcall(error, {err='x'}); return type(e) .. tostring(e)", "0"],
        vec!["EVAL", "local ok, e = pcall(error, {foo=1}); return type(e)", "0"],
        vec!["EVAL", "local ok, e = pcall(error, 'plain'); return e", "0"],
        // TIME moves while a script runs (it was the script's start).
        vec!["EVAL", "local a = redis.call('time'); for i = 1, 200000 do local b = redis.call('time'); if b[1] * 1000000 + b[2] > a[1] * 1000000 + a[2] then return 1 end end return 0", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('set', 'a', 'b')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('config', 'get')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('nosuch')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('config', 'nosuch')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd()", "0"],
        vec!["EVAL", "return redis.call('xread', 'block', '0', 'streams', 's', '$')", "0"],
        vec!["EVAL", "return redis.pcall('XREAD', 'BLOCK', '0', 'STREAMS', 's', '$')", "0"],
        vec!["EVAL", "return redis.call('xread', 'streams', 'block', '0')", "0"],
        vec!["EVAL", "#!lua flags=\nreturn redis.call('set', KEYS[1], '1')", "1", "shebang"],
        vec!["EVAL", "#!lua flags=no-writes,,\nreturn 1", "0"],
        // The read-only tables, as Redis makes them.
        vec!["EVAL", "rawset(_G, 'x', 1); return 1", "0"],
        vec!["EVAL", "setmetatable(_G, nil); return 1", "0"],
        vec!["EVAL", "rawset(string, 'x', 1); return 1", "0"],
        vec!["EVAL", "return type(newproxy)", "0"],
        vec!["EVAL", "local t = {}; rawset(t, 'a', 1); setmetatable(t, {}); return rawget(t, 'a')", "0"],
        vec!["EVAL", "return {type(rawget(_G, 'redis')), type(rawget(string, 'format'))}", "0"],
        // Strings' metatable and methods cannot be changed either.
        vec!["EVAL", "return {('x'):upper(), type(getmetatable(''))}", "0"],
        vec!["EVAL", "getmetatable('').__index.upper = nil; return 1", "0"],
        vec!["EVAL", "getmetatable('').__index = {}; return 1", "0"],
        vec!["EVAL", "return ('y'):upper()", "0"],
        // Numbers past the integers: x86's cast, as redis-server gives.
        vec!["EVAL", "return 2^63", "0"],
        vec!["EVAL", "return {1e20, -1e20, 0/0}", "0"],
        vec!["EVAL", "return {double=3}", "0"],
        vec!["EVAL", "return {double=2.5}", "0"],
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

/// The cjson and cmsgpack libraries, byte for byte.
fn libraries() -> Vec<Vec<&'static str>> {
    let scripts = [
        r#"return cjson.encode({1, 2, 3, 'x', true, false})"#,
        r#"return cjson.encode({a = 1})"#,
        r#"return cjson.encode({})"#,
        r#"return cjson.encode('a"b\\c/d\n\t\1\127')"#,
        r#"return cjson.encode({1.5, -0.25, 1e20, 123456789012345, 0.1, -3})"#,
        r#"return cjson.encode({[1] = 'a', [2] = 'b', [4] = 'd'})"#,
        r#"return cjson.encode({[1] = 'a', [20] = 'b'})"#,
        r#"return cjson.encode({[1.5] = 'a'})"#,
        r#"return cjson.encode({nested = {deeper = {1, {x = 'y'}}}})"#,
        r#"return cjson.encode(cjson.null)"#,
        r#"return cjson.encode(nil)"#,
        r#"return cjson.encode(function() end)"#,
        r#"return cjson.encode({[true] = 1})"#,
        r#"return cjson.encode(0/0)"#,
        r#"return cjson.encode(1/0)"#,
        r#"return cjson.encode()"#,
        r#"local t = cjson.decode('{"a":[1,2,{"b":null}],"c":"s\\u00e9\\n","d":-1.5e3}') return {t.a[1], t.a[2], type(t.a[3].b), t.a[3].b == cjson.null, t.c, t.d}"#,
        r#"return cjson.decode('[1,2,3]')"#,
        r#"return cjson.decode('"str"')"#,
        r#"return cjson.decode('  12  ')"#,
        r#"return cjson.decode('')"#,
        r#"return cjson.decode('[1,2')"#,
        r#"return cjson.decode('{"a" 1}')"#,
        r#"return cjson.decode('{1:2}')"#,
        r#"return cjson.decode('[1 2]')"#,
        r#"return cjson.decode('nul')"#,
        r#"return cjson.decode('0x10')"#,
        r#"return cjson.decode('[1] x')"#,
        r#"return cjson.decode('"\\q"')"#,
        r#"return cjson.decode('"abc')"#,
        r#"return cjson.decode('"\\ud800"')"#,
        r#"return cjson.decode('"\\ud83d\\ude00"')"#,
        r#"return cjson.decode({})"#,
        r#"return cjson.decode(cjson.encode({k = {1, 2}})).k[2]"#,
        r#"return {cjson.encode_max_depth()}"#,
        r#"return cmsgpack.pack({1, 2, 3})"#,
        r#"return cmsgpack.pack({a = 1})"#,
        r#"return cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)"#,
        r#"return cmsgpack.pack(1.5, 0.1, -2.25, 1e300)"#,
        r#"return cmsgpack.pack('short', string.rep('x', 40), string.rep('y', 300), true, false, nil)"#,
        r#"return cmsgpack.pack({})"#,
        r#"return cmsgpack.pack({{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}})"#,
        r#"return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4}, {five = 5}))}"#,
        r#"return cmsgpack.unpack(cmsgpack.pack({a = {b = {c = 'deep'}}})).a.b.c"#,
        r#"return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}"#,
        r#"return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}"#,
        r#"return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}"#,
        r#"return cmsgpack.unpack('\145')"#,
        r#"return cmsgpack.unpack('\193')"#,
        r#"return cmsgpack.pack()"#,
        r#"return {cmsgpack.unpack_one('abc', 9)}"#,
        r#"return struct.pack('>I2<i4bBhHlLTfd', 258, -2, -1, 255, -300, 65535, -5, 7, 9, 1.5, -2.25)"#,
        r#"return struct.pack('!4 b i4 c3 s x d', 1, 2, 'abcdef', 'zz', 3.5)"#,
        r#"return struct.pack('i16', -1)"#,
        r#"return struct.pack('c0', 'whole')"#,
        r#"return {struct.unpack('>I2<i4bBhHlL', struct.pack('>I2<i4bBhHlL', 258, -2, -1, 255, -300, 65535, -5, 7))}"#,
        r#"return {struct.unpack('!4 b i4 c3 s x d', struct.pack('!4 b i4 c3 s x d', 1, 2, 'abcdef', 'zz', 3.5))}"#,
        r#"return {struct.unpack('b c0', struct.pack('b c0', 3, 'xyz'))}"#,
        r#"return {struct.unpack('i', struct.pack('ii', 1, 2), 5)}"#,
        r#"return {struct.unpack('f', struct.pack('f', 0.1))}"#,
        r#"return {struct.size('!8 b d i2 c5 x'), struct.size('')}"#,
        r#"return struct.size('s')"#,
        r#"return struct.size('c0')"#,
        r#"return struct.pack('q', 1)"#,
        r#"return struct.pack('!3', 1)"#,
        r#"return struct.pack('i33', 1)"#,
        r#"return struct.pack('c5', 'abc')"#,
        r#"return struct.unpack('i4', 'ab')"#,
        r#"return struct.unpack('s', 'abc')"#,
        r#"return struct.unpack('b', 'a', 0)"#,
        r#"return struct.unpack('c0', 'abc')"#,
    ];
    scripts.iter().map(|s| vec!["EVAL", s, "0"]).collect()
}

const LIB: &str = "#!lua name=mylib\n\
local function incr(keys, args) return redis.call('incrby', keys[1], args[1] or 1) end\n\
local function get(keys, args) return redis.call('get', keys[1]) end\n\
redis.register_function('my_incr', incr)\n\
redis.register_function{function_name='my_get', callback=get, flags={'no-writes'}, description='reads'}\n";

/// FUNCTION and FCALL.
fn functions() -> Vec<Vec<&'static str>> {
    vec![
        vec!["FUNCTION", "FLUSH"],
        vec!["FUNCTION", "LOAD", LIB],
        vec!["FUNCTION", "LOAD", LIB],
        vec!["FUNCTION", "LOAD", "REPLACE", LIB],
        vec!["FUNCTION", "LOAD", "BOGUS", LIB],
        vec!["FUNCTION", "LOAD"],
        vec!["FCALL", "my_incr", "1", "fk"],
        vec!["FCALL", "my_incr", "1", "fk", "10"],
        vec!["FCALL", "my_get", "1", "fk"],
        vec!["FCALL_RO", "my_get", "1", "fk"],
        vec!["FCALL_RO", "my_incr", "1", "fk"],
        vec!["FCALL", "nosuch", "0"],
        vec!["FCALL", "my_get", "x", "fk"],
        vec!["FCALL", "my_get", "5", "fk"],
        vec!["FCALL", "my_get", "-1", "fk"],
        vec!["FUNCTION", "LIST"],
        vec!["FUNCTION", "LIST", "WITHCODE"],
        vec!["FUNCTION", "LIST", "LIBRARYNAME", "my*"],
        vec!["FUNCTION", "LIST", "LIBRARYNAME", "zz*"],
        vec!["FUNCTION", "LIST", "LIBRARYNAME"],
        vec!["FUNCTION", "LIST", "BAD"],
        vec!["FUNCTION", "STATS"],
        vec!["FUNCTION", "LOAD", "return 1"],
        vec!["FUNCTION", "LOAD", "#!lua\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!lua name=a name=b\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!lua name=x foo=bar\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!lua name=bad-name\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!js name=x\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!lua name=empty\nreturn 1"],
        vec!["FUNCTION", "LOAD", "#!lua name=bad\nreturn +"],
        vec!["FUNCTION", "LOAD", "#!lua name=bad\nerror('boom')"],
        vec!["FUNCTION", "LOAD", "#!lua name=bad\nredis.call('set', 'x', 1)"],
        vec!["FUNCTION", "LOAD", "#!lua name=bad\nlocal s = string.len('x')"],
        vec!["FUNCTION", "LOAD", "#!lua name=dup\nredis.register_function('my_incr', function() end)"],
        vec!["FUNCTION", "LOAD", "#!lua name=dup2\nredis.register_function('f1', function() end) redis.register_function('f1', function() end)"],
        vec!["FUNCTION", "LOAD", "#!lua name=badfn\nredis.register_function('bad-name', function() end)"],
        vec!["FUNCTION", "LOAD", "#!lua name=badargs\nredis.register_function('f')"],
        vec!["FUNCTION", "LOAD", "#!lua name=badargs\nredis.register_function{function_name='f', callback=function() end, flags={'nope'}}"],
        vec!["FUNCTION", "LOAD", "#!lua name=badargs\nredis.register_function{callback=function() end}"],
        vec!["FUNCTION", "LOAD", "#!lua name=badargs\nredis.register_function{function_name='f', what=1}"],
        // A function after an EVAL does not see EVAL's KEYS.
        vec!["EVAL", "return KEYS[1]", "1", "evalkey"],
        vec!["FUNCTION", "LOAD", "#!lua name=seekeys\nredis.register_function('seekeys', function(k, a) return KEYS end)"],
        vec!["FCALL", "seekeys", "1", "k"],
        vec!["FUNCTION", "LOAD", "#!lua name=errs\nredis.register_function('boom', function(k, a) error('in function') end) redis.register_function('wrong', function(k, a) return redis.call('lpush', k[1], 1) end)"],
        vec!["SET", "str", "x"],
        vec!["FCALL", "boom", "0"],
        vec!["FCALL", "wrong", "1", "str"],
        vec!["FUNCTION", "DELETE", "errs"],
        vec!["FUNCTION", "DELETE", "errs"],
        vec!["FCALL", "boom", "0"],
        vec!["FUNCTION", "RESTORE", "garbage"],
        vec!["FUNCTION", "RESTORE", "x", "BADPOLICY"],
        vec!["FUNCTION", "KILL"],
        vec!["FUNCTION", "NOSUCH"],
        vec!["FUNCTION", "DELETE"],
        vec!["FUNCTION", "FLUSH", "BAD"],
        vec!["FUNCTION", "FLUSH", "SYNC"],
        vec!["FCALL", "my_get", "1", "fk"],
        vec!["FUNCTION", "LIST"],
        vec!["FUNCTION", "STATS"],
    ]
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
        vec!["EVAL", "return {double=3}", "0"],
        vec!["EVAL", "return {double=3.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "return {set={a=true}}", "0"],
        vec!["EVAL", "redis.call('xadd', 'st', '1-1', 'f', 'v'); redis.setresp(3); return redis.call('xread', 'streams', 'st', '0')", "0"],
        vec!["EVAL", "redis.call('geoadd', 'g', 13.361389, 38.115556, 'p'); redis.setresp(3); return redis.call('geopos', 'g', 'p')", "0"],
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
    run("1", libraries());
    run("1", functions());
}

#[test]
fn scripts_on_two_shards() {
    run("2", basics());
    run("2", across_cores());
    run("2", resp3());
    run("2", functions());
}

/// FUNCTION DUMP's payload restores in the other server, both ways (the
/// bytes differ only in how LZF compressed the code), and a slotd
/// restarted from its RDB or its AOF has its libraries.
#[test]
fn function_dump_restore_and_restart() {
    use tests::Server;
    let slotd = Server::slotd(&["--shards", "2"]);
    let redis = Server::redis(&[]);
    let (mut a, mut b) = (slotd.raw(), redis.raw());
    assert_eq!(a.cmd_str(&["FUNCTION", "LOAD", LIB]), b"$5\r\nmylib\r\n");
    let dump = a.cmd_str(&["FUNCTION", "DUMP"]);
    let (payload, _) = tests::Resp::parse(&dump).expect("a bulk reply");
    let tests::Resp::Bulk(_, Some(payload)) = payload else {
        panic!("{dump:?}");
    };
    assert_eq!(b.cmd(&[b"FUNCTION", b"RESTORE", &payload]), b"+OK\r\n");
    assert_eq!(b.cmd_str(&["FCALL", "my_incr", "1", "k", "2"]), b":2\r\n");
    let dump = b.cmd_str(&["FUNCTION", "DUMP"]);
    let (payload, _) = tests::Resp::parse(&dump).expect("a bulk reply");
    let tests::Resp::Bulk(_, Some(payload)) = payload else {
        panic!("{dump:?}");
    };
    assert!(a
        .cmd(&[b"FUNCTION", b"RESTORE", &payload])
        .starts_with(b"-ERR Library mylib already exists"));
    assert_eq!(
        a.cmd(&[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"]),
        b"+OK\r\n"
    );
    assert_eq!(a.cmd_str(&["FUNCTION", "FLUSH"]), b"+OK\r\n");
    assert_eq!(a.cmd(&[b"FUNCTION", b"RESTORE", &payload]), b"+OK\r\n");
    assert_eq!(a.cmd_str(&["FCALL", "my_incr", "1", "k", "2"]), b":2\r\n");
    drop(a);
    drop(slotd);
    // Durable: a restart from the RDB, and one from the AOF.
    for persistence in [&["--save", "60 1"][..], &["--appendonly", "yes"][..]] {
        let dir = tests::fresh_dir("functions", persistence[0].trim_start_matches('-'));
        let d = dir.to_str().unwrap();
        let args = [&["--dir", d, "--shards", "2"][..], persistence].concat();
        let mut s = Server::slotd(&args);
        let mut c = s.raw();
        assert_eq!(c.cmd_str(&["FUNCTION", "LOAD", LIB]), b"$5\r\nmylib\r\n");
        assert_eq!(c.cmd_str(&["FCALL", "my_incr", "1", "k", "5"]), b":5\r\n");
        if persistence[0] == "--save" {
            assert_eq!(c.cmd_str(&["SAVE"]), b"+OK\r\n");
        }
        drop(c);
        s.stop();
        let s = Server::slotd(&args);
        let mut c = s.raw();
        assert_eq!(
            c.cmd_str(&["FCALL", "my_get", "1", "k"]),
            b"$1\r\n5\r\n",
            "{persistence:?}"
        );
        assert_eq!(c.cmd_str(&["FCALL", "my_incr", "1", "k"]), b":6\r\n");
    }
}

/// Sends `args` on `c` and reads the reply within `secs` (None: none came).
fn ask(c: &mut tests::RawConn, args: &[&str], secs: u64) -> Option<String> {
    c.set_read_timeout(std::time::Duration::from_secs(secs));
    c.send(&tests::encode(
        &args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
    ))
    .ok()?;
    c.read_reply().ok().map(|r| tests::text(&r))
}

/// Reads a reply already asked for (None: none came within `secs`).
fn answer(c: &mut tests::RawConn, secs: u64) -> Option<String> {
    c.set_read_timeout(std::time::Duration::from_secs(secs));
    c.read_reply().ok().map(|r| tests::text(&r))
}

/// `busy-reply-threshold` (`lua-time-limit`): once a script has run longer,
/// other clients get Redis's BUSY error (FUNCTION's text for FCALL), the
/// `allow_busy` commands still run, SCRIPT KILL / FUNCTION KILL stop it and
/// its caller gets Redis's error. A script with no keys holds every core,
/// so every client sees BUSY; compared with redis-server.
#[test]
fn long_scripts_make_other_clients_see_busy() {
    let slotd = tests::Server::slotd(&["--shards", "2", "--busy-reply-threshold", "200"]);
    let redis = tests::Server::redis(&["--lua-time-limit", "200"]);
    let lib = "#!lua name=spin\nredis.register_function('spin', function() local i = 0 while true do i = i + 1 end end)";
    let mut seen = Vec::new();
    for s in [&slotd, &redis] {
        let mut admin = s.raw();
        let mut out = vec![
            ask(&mut admin, &["CONFIG", "GET", "lua-time-limit"], 5),
            ask(&mut admin, &["CONFIG", "GET", "busy-reply-threshold"], 5),
            ask(&mut admin, &["FUNCTION", "LOAD", lib], 5),
        ];
        for (run, kill) in [
            (
                vec!["EVAL", "local i = 0 while true do i = i + 1 end", "0"],
                "SCRIPT",
            ),
            (vec!["FCALL", "spin", "0"], "FUNCTION"),
        ] {
            let mut runner = s.raw();
            runner
                .send(&tests::encode(
                    &run.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
                ))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
            let mut other = s.raw();
            out.push(ask(&mut other, &["PING"], 5));
            out.push(ask(&mut other, &["SET", "k", "v"], 5));
            out.push(ask(&mut other, &["MULTI"], 5));
            out.push(ask(&mut other, &["GET", "k"], 5));
            out.push(ask(&mut other, &["EXEC"], 5));
            // FUNCTION STATS, its running time left out.
            out.push(ask(&mut other, &["FUNCTION", "STATS"], 5).map(|s| {
                match s.split_once("duration_ms\r\n:") {
                    Some((a, b)) => format!("{a}{}", &b[b.find('\r').unwrap_or(0)..]),
                    None => s,
                }
            }));
            // The other kind's KILL gets the running kind's BUSY.
            let wrong = if kill == "SCRIPT" {
                "FUNCTION"
            } else {
                "SCRIPT"
            };
            out.push(ask(&mut other, &[wrong, "KILL"], 5));
            out.push(ask(&mut other, &[kill, "KILL"], 5));
            out.push(answer(&mut runner, 5));
            out.push(ask(&mut other, &["PING"], 5));
        }
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
    assert!(
        seen[0][3].as_deref().is_some_and(|r| r
            .starts_with("-BUSY Redis is busy running a script. You can only call SCRIPT KILL")),
        "{:?}",
        seen[0]
    );
}

/// A script whose declared key keeps it on one core: clients of the other
/// core see BUSY and can kill it; clients of its own core wait for its end
/// (that core is inside the script).
#[test]
fn a_long_script_on_one_core_is_busy_for_the_other() {
    let slotd = tests::Server::slotd(&["--shards", "2", "--busy-reply-threshold", "200"]);
    let mut runner = slotd.raw();
    // Twice: the first run of a script is placed with every core locked;
    // from the second on it stays on its key's core.
    ask(
        &mut runner,
        &["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "k"],
        5,
    );
    ask(
        &mut runner,
        &["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "k"],
        5,
    );
    let body = "if ARGV[1] == 'spin' then local i = 0 while true do i = i + 1 end end return redis.call('get', KEYS[1])";
    assert_eq!(
        ask(&mut runner, &["EVAL", body, "1", "k", "no"], 5).as_deref(),
        Some("$1\r\nx\r\n")
    );
    assert_eq!(
        ask(&mut runner, &["EVAL", body, "1", "k", "no"], 5).as_deref(),
        Some("$1\r\nx\r\n")
    );
    // Connections are spread over both cores (made while both serve: a
    // core inside a long script takes the connections the kernel hands
    // its accept only when the script ends).
    let mut others: Vec<tests::RawConn> = (0..4).map(|_| slotd.raw()).collect();
    for c in others.iter_mut() {
        assert_eq!(ask(c, &["PING"], 5).as_deref(), Some("+PONG\r\n"));
    }
    runner
        .send(&tests::encode(&[
            b"EVAL",
            body.as_bytes(),
            b"1",
            b"k",
            b"spin",
        ]))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut busy = None;
    let mut waiting = Vec::new();
    for (i, c) in others.iter_mut().enumerate() {
        match ask(c, &["PING"], 1) {
            Some(r) => {
                assert!(r.starts_with("-BUSY "), "{r}");
                busy.get_or_insert(i);
            }
            None => waiting.push(i),
        }
    }
    let busy = busy.expect("a connection on the other core sees BUSY");
    assert!(
        !waiting.is_empty(),
        "a connection on the script's core waits"
    );
    assert_eq!(
        ask(&mut others[busy], &["SCRIPT", "KILL"], 5).as_deref(),
        Some("+OK\r\n")
    );
    let killed = answer(&mut runner, 5).unwrap();
    assert!(
        killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."),
        "{killed}"
    );
    for i in waiting {
        assert_eq!(answer(&mut others[i], 5).as_deref(), Some("+PONG\r\n"));
    }
}

/// PUBLISH and SPUBLISH from scripts reach subscribers on every core and
/// count them, as in Redis. A script placed on one core that publishes
/// gets an error once and runs with every core locked from then on.
#[test]
fn scripts_publish_to_every_core() {
    let run = |s: &tests::Server, runs: &[(&str, &str)]| -> Vec<String> {
        let mut subs: Vec<tests::RawConn> = (0..4).map(|_| s.raw()).collect();
        for c in subs.iter_mut() {
            ask(c, &["SUBSCRIBE", "ch"], 5);
        }
        let mut c = s.raw();
        let mut out = Vec::new();
        for (body, key) in runs {
            out.push(ask(&mut c, &["EVAL", body, "1", key], 5).unwrap_or_default());
        }
        for sub in subs.iter_mut() {
            // Every message each subscriber got.
            let mut got = Vec::new();
            while let Some(m) = answer(sub, 1) {
                got.push(m);
            }
            out.push(got.join(""));
        }
        out
    };
    let publish = "redis.call('set', KEYS[1], 'v') return redis.call('publish', 'ch', KEYS[1])";
    let cond = "if redis.call('get', KEYS[1]) then return redis.call('publish', 'ch', 'later') end return 0";
    let runs: &[(&str, &str)] = &[
        (publish, "a"),
        (publish, "b"),
        (cond, "zz"),
        (cond, "zz"),
        (publish, "zz"),
        (cond, "zz"),
        (cond, "zz"),
    ];
    let redis = run(&tests::Server::redis(&[]), runs);
    let two = run(&tests::Server::slotd(&["--shards", "2"]), runs);
    // On two cores the first run of every script locks every core, the
    // conditional one runs on its key's core once it has stayed there,
    // and its first PUBLISH there is refused once.
    let refused = "-ERR PUBLISH from a script that runs on one core is not supported by slotd; slotd runs this script with every core locked from its next call script: ";
    assert_eq!(two[..5], redis[..5], "{two:?}");
    assert!(two[5].starts_with(refused), "{two:?}");
    assert_eq!(two[6], redis[6]);
    assert!(redis[7].contains("later"), "{redis:?}");
    for i in 7..11 {
        // Subscribers got one message less (the refused one).
        assert_eq!(
            two[i].matches("message").count() + 1,
            redis[i].matches("message").count(),
            "{two:?} {redis:?}"
        );
    }
    let one = run(&tests::Server::slotd(&["--shards", "1"]), runs);
    assert!(one[0].starts_with(refused), "{one:?}");
    assert_eq!(one[1..5], redis[1..5], "{one:?}");
}

/// FUNCTION RESTORE of a library that is there (APPEND) and FUNCTION
/// FLUSH with too many arguments answer as redis-server's.
#[test]
fn function_restore_and_flush_errors_match_redis() {
    let lib = "#!lua name=mylib\nredis.register_function('f1', function() return 1 end)";
    let mut seen = Vec::new();
    for s in [
        tests::Server::slotd(&["--shards", "2"]),
        tests::Server::redis(&[]),
    ] {
        let mut c = s.raw();
        c.cmd_str(&["FUNCTION", "LOAD", lib]);
        let dump = c.cmd(&[b"FUNCTION", b"DUMP"]);
        // The payload, from its bulk string.
        let start = dump.iter().position(|&b| b == b'\n').unwrap() + 1;
        let payload = &dump[start..dump.len() - 2];
        seen.push(vec![
            tests::text(&c.cmd(&[b"FUNCTION", b"RESTORE", payload])),
            tests::text(&c.cmd_str(&["FUNCTION", "FLUSH", "a", "b"])),
            tests::text(&c.cmd_str(&["FUNCTION", "FLUSH", "nosuch"])),
        ]);
    }
    assert_eq!(seen[0][0], "-ERR Library mylib already exists\r\n");
    assert_eq!(seen[0], seen[1], "slotd, then redis-server");
}
