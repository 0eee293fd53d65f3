use super::*;
use crate::cmd::script::ShardBackend;
use crate::shard::Shard;

fn eval(shard: &mut Shard, body: &str, keys: &[&str], argv: &[&str]) -> Reply {
    let mut vm = Vm::new().unwrap();
    eval_on(&mut vm, shard, body, keys, argv, false)
}

fn eval_on(
    vm: &mut Vm,
    shard: &mut Shard,
    body: &str,
    keys: &[&str],
    argv: &[&str],
    read_only: bool,
) -> Reply {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let argv: Vec<&[u8]> = argv.iter().map(|k| k.as_bytes()).collect();
    let call = Call {
        sha: sha1_hex(body.as_bytes()),
        body: Some(body.as_bytes()),
        keys: &keys,
        argv: &argv,
        db: 0,
        databases: 16,
        read_only,
    };
    let mut b = ShardBackend {
        shard,
        now_ms: 1_000,
        off_core: false,
        counted: false,
    };
    vm.run(&call, &mut b).reply
}

fn name(body: &str) -> String {
    String::from_utf8_lossy(&sha1_hex(body.as_bytes())).into_owned()
}

#[test]
fn values_go_both_ways() {
    let mut s = Shard::new(16, 1);
    assert_eq!(eval(&mut s, "return 1", &[], &[]), Reply::Int(1));
    assert_eq!(eval(&mut s, "return 3.99", &[], &[]), Reply::Int(3));
    assert_eq!(eval(&mut s, "return 'x'", &[], &[]), Reply::bulk(b"x"));
    assert_eq!(eval(&mut s, "return true", &[], &[]), Reply::Int(1));
    assert_eq!(eval(&mut s, "return false", &[], &[]), Reply::Nil);
    assert_eq!(eval(&mut s, "return nil", &[], &[]), Reply::Nil);
    assert_eq!(
        eval(&mut s, "return {1, 2, nil, 4}", &[], &[]),
        Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
    );
    assert_eq!(
        eval(
            &mut s,
            "return {KEYS[1], ARGV[1], ARGV[2]}",
            &["k"],
            &["a", "b"]
        ),
        Reply::Array(vec![
            Reply::bulk(b"k"),
            Reply::bulk(b"a"),
            Reply::bulk(b"b")
        ])
    );
    assert_eq!(
        eval(&mut s, "return redis.status_reply('FINE')", &[], &[]),
        Reply::status("FINE")
    );
    assert_eq!(
        eval(&mut s, "return redis.error_reply('My Error')", &[], &[]),
        Reply::err("My Error")
    );
    assert_eq!(
        eval(&mut s, "return redis.error_reply('x')", &[], &[]),
        Reply::err("ERR x")
    );
    assert_eq!(
        eval(&mut s, "return {err='plain'}", &[], &[]),
        Reply::err("plain")
    );
}

#[test]
fn commands_run_on_the_shard() {
    let mut s = Shard::new(16, 1);
    let body = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])";
    assert_eq!(eval(&mut s, body, &["k"], &["v"]), Reply::bulk(b"v"));
    assert_eq!(
        eval(&mut s, "return redis.call('incrby', 'n', 5)", &[], &[]),
        Reply::Int(5)
    );
    // A number argument goes as %.17g.
    assert_eq!(
        eval(
            &mut s,
            "redis.call('set', 'f', 1.5); return redis.call('get', 'f')",
            &[],
            &[]
        ),
        Reply::bulk(b"1.5")
    );
    assert_eq!(
        eval(&mut s, "return redis.call('get', 'missing')", &[], &[]),
        Reply::Nil
    );
    assert_eq!(
        eval(
            &mut s,
            "return type(redis.call('get', 'missing'))",
            &[],
            &[]
        ),
        Reply::bulk(b"boolean")
    );
    assert_eq!(
        eval(&mut s, "return redis.call('set', 'a', 'b')", &[], &[]),
        Reply::status("OK")
    );
    // SELECT changes the script's database only.
    assert_eq!(
        eval(
            &mut s,
            "redis.call('select', 3); redis.call('set', 'x', 'in3'); return redis.call('get', 'x')",
            &[],
            &[]
        ),
        Reply::bulk(b"in3")
    );
    assert!(s.dbs[3].get(b"x").is_some());
    assert!(s.dbs[0].get(b"x").is_none());
}

#[test]
fn errors_carry_the_script_and_line() {
    let mut s = Shard::new(16, 1);
    let body = "redis.call('set', 'k', 'v')\nreturn redis.call('lpush', 'k', 'x')";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::Error(
            format!(
                "WRONGTYPE Operation against a key holding the wrong kind of value script: {}, on @user_script:2.",
                name(body)
            )
            .into()
        )
    );
    let body = "local r = redis.pcall('lpush', 'k', 'x'); return r['err']";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::bulk(b"WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    let body = "return redis.call('nosuch')";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::Error(
            format!(
                "ERR Unknown Redis command called from script script: {}, on @user_script:1.",
                name(body)
            )
            .into()
        )
    );
    let body = "return redis.call('get')";
    assert!(
        matches!(eval(&mut s, body, &[], &[]), Reply::Error(e) if e.starts_with("ERR Wrong number of args calling Redis command from script"))
    );
    let body = "return redis.call()";
    assert!(
        matches!(eval(&mut s, body, &[], &[]), Reply::Error(e) if e.starts_with("ERR Please specify at least one argument for this redis lib call"))
    );
    let body = "return redis.call('get', {})";
    assert!(
        matches!(eval(&mut s, body, &[], &[]), Reply::Error(e) if e.starts_with("ERR Lua redis lib command arguments must be strings or integers"))
    );
    let body = "error('boom')";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::Error(
            format!(
                "ERR user_script:1: boom script: {}, on @user_script:1.",
                name(body)
            )
            .into()
        )
    );
    let body = "return 1 +";
    assert!(
        matches!(eval(&mut s, body, &[], &[]), Reply::Error(e) if e.starts_with("ERR Error compiling script (new function): user_script:1:"))
    );
    let body = "return redis.call('eval', 'return 1', 0)";
    assert!(
        matches!(eval(&mut s, body, &[], &[]), Reply::Error(e) if e.starts_with("ERR This Redis command is not allowed from script"))
    );
}

#[test]
fn the_sandbox_holds() {
    let mut s = Shard::new(16, 1);
    let body = "x = 1";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::Error(
            format!(
                "ERR user_script:1: Attempt to modify a readonly table script: {}, on @user_script:1.",
                name(body)
            )
            .into()
        )
    );
    let body = "return y";
    assert_eq!(
        eval(&mut s, body, &[], &[]),
        Reply::Error(
            format!(
                "ERR user_script:1: Script attempted to access nonexistent global variable 'y' script: {}, on @user_script:1.",
                name(body)
            )
            .into()
        )
    );
    for banned in [
        "print", "dofile", "loadfile", "os", "io", "debug", "require",
    ] {
        let body = format!("return {banned} == nil");
        assert!(
            matches!(eval(&mut s, &body, &[], &[]), Reply::Error(e) if e.contains("nonexistent global")),
            "{banned}"
        );
    }
    assert!(matches!(
        eval(&mut s, "redis.call = nil", &[], &[]),
        Reply::Error(e) if e.contains("Attempt to modify a readonly table")
    ));
    assert_eq!(
        eval(&mut s, "local t = {} t.x = 1 return t.x", &[], &[]),
        Reply::Int(1)
    );
    assert_eq!(
        eval(&mut s, "return bit.band(0xff, 0x0f)", &[], &[]),
        Reply::Int(15)
    );
    assert_eq!(
        eval(&mut s, "return bit.tohex(65535, -4)", &[], &[]),
        Reply::bulk(b"FFFF")
    );
    assert_eq!(
        eval(&mut s, "return redis.sha1hex('')", &[], &[]),
        Reply::bulk(b"da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
}

#[test]
fn read_only_runs_refuse_writes() {
    let mut s = Shard::new(16, 1);
    let mut vm = Vm::new().unwrap();
    let body = "return redis.call('set', 'k', 'v')";
    assert!(matches!(
        eval_on(&mut vm, &mut s, body, &[], &[], true),
        Reply::Error(e) if e.starts_with("ERR Write commands are not allowed from read-only scripts.")
    ));
    let body = "#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')";
    assert!(matches!(
        eval_on(&mut vm, &mut s, body, &[], &[], false),
        Reply::Error(e) if e.starts_with("ERR Write commands are not allowed from read-only scripts.")
    ));
    let body = "#!lua\nreturn 1";
    assert_eq!(
        eval_on(&mut vm, &mut s, body, &[], &[], true),
        Reply::err("ERR Can not execute a script with write flag using *_ro command.")
    );
    assert_eq!(
        eval_on(
            &mut vm,
            &mut s,
            "#!lua flags=bad\nreturn 1",
            &[],
            &[],
            false
        ),
        Reply::err("ERR Unexpected flag in script shebang: bad")
    );
    assert_eq!(
        eval_on(&mut vm, &mut s, "#!python\nreturn 1", &[], &[], false),
        Reply::err("ERR Unexpected engine in script shebang: #!python")
    );
    assert!(s.dbs[0].get(b"k").is_none());
}

#[test]
fn resp3_mode_changes_the_conversions() {
    let mut s = Shard::new(16, 1);
    assert_eq!(
        eval(
            &mut s,
            "redis.setresp(3); return redis.call('get', 'nope') == nil",
            &[],
            &[]
        ),
        Reply::Bool(true)
    );
    assert_eq!(
        eval(&mut s, "redis.setresp(3); return true", &[], &[]),
        Reply::Bool(true)
    );
    assert!(matches!(
        eval(&mut s, "redis.setresp(4)", &[], &[]),
        Reply::Error(e) if e.starts_with("ERR RESP version must be 2 or 3.")
    ));
}

#[test]
fn shebangs_parse() {
    assert_eq!(shebang(b"return 1").unwrap().1, 0);
    let (f, n) = shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
    assert!(f.no_writes && f.allow_oom && !f.compat);
    assert_eq!(n, 31);
    assert_eq!(shebang(b"#!lua").unwrap_err(), "Invalid script shebang");
    assert_eq!(
        shebang(b"#!lua x=1\n").unwrap_err(),
        "Unknown lua shebang option: x=1"
    );
}

#[test]
fn redis_call_fast_and_slow_paths_agree() {
    let mut s = Shard::new(16, 1);
    // Numbers as arguments: integral ones as integers, others with %.17g.
    for (num, text) in [
        ("42", "42"),
        ("-7", "-7"),
        ("2^53", "9007199254740992"),
        ("0.1", "0.10000000000000001"),
        ("-0.0", "-0"),
        ("1e20", "1e+20"),
        ("2^63", "9.2233720368547758e+18"),
    ] {
        let body = format!("redis.call('set', KEYS[1], {num}); return redis.call('get', KEYS[1])");
        assert_eq!(
            eval(&mut s, &body, &["n"], &[]),
            Reply::bulk(text.as_bytes()),
            "{num}"
        );
    }
    // Replies the fast path hands over: integers, strings, nil (false).
    assert_eq!(
        eval(
            &mut s,
            "return {redis.call('incr', KEYS[1]), redis.call('get', 'missing') == false}",
            &["c"],
            &[]
        ),
        Reply::Array(vec![Reply::Int(1), Reply::Int(1)])
    );
    // An error reply after the command ran: raised by call, returned by
    // pcall, and the write happened once.
    let r = eval(
        &mut s,
        "redis.call('incr', 'once'); return redis.pcall('incr', KEYS[1])",
        &["n"],
        &[],
    );
    assert_eq!(
        r,
        Reply::Error("ERR value is not an integer or out of range".into())
    );
    let r = eval(&mut s, "return redis.call('incr', KEYS[1])", &["n"], &[]);
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("ERR value is not an integer or out of range script:")),
        "{r:?}"
    );
    assert_eq!(
        eval(&mut s, "return redis.call('get', 'once')", &[], &[]),
        Reply::bulk(b"1")
    );
    // A reply that is a table, a refusal and an argument of another type
    // go the slow way.
    assert_eq!(
        eval(
            &mut s,
            "return redis.call('set', KEYS[1], 'v')",
            &["t"],
            &[]
        ),
        Reply::Status("OK".into())
    );
    let r = eval(&mut s, "return redis.pcall('nosuch')", &[], &[]);
    assert_eq!(
        r,
        Reply::Error("ERR Unknown Redis command called from script".into())
    );
    let r = eval(
        &mut s,
        "return redis.pcall('set', KEYS[1], {})",
        &["t"],
        &[],
    );
    assert_eq!(
        r,
        Reply::Error("ERR Lua redis lib command arguments must be strings or integers".into())
    );
    assert_eq!(
        eval(&mut s, "return redis.call('get', KEYS[1])", &["t"], &[]),
        Reply::bulk(b"v")
    );
}

#[test]
fn a_call_whose_slow_path_never_ran_leaves_no_reply_behind() {
    let mut s = Shard::new(16, 1);
    // At some depth of C calls, `redis.call` runs the command (an error
    // reply: the slow path's) and then cannot enter the slow path ("C
    // stack overflow"). The next call refused before it runs must get its
    // own reply.
    let body = "
        redis.call('set', 'str', 'abc')
        local function f(n)
            if n == 0 then return redis.pcall('incr', 'str') end
            return select(2, pcall(f, n - 1))
        end
        local got = {}
        for d = 150, 230 do
            pcall(f, d)
            local r = redis.pcall('nosuch')
            if r.err ~= 'ERR Unknown Redis command called from script' then
                table.insert(got, d .. '=' .. tostring(r.err))
            end
        end
        return got
    ";
    assert_eq!(eval(&mut s, body, &[], &[]), Reply::Array(vec![]));
}
