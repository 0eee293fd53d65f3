//! Real client software against slotd: the `redis` crate, redis-cli and
//! redis-benchmark.
use std::process::{Command, Stdio};
use std::time::Duration;
use tests::Server;

#[test]
fn redis_crate_client() {
    let s = Server::slotd(&["--shards", "2"]);
    let mut con = s.client();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(v, "1");
    let missing: Option<String> = redis::cmd("GET").arg("nope").query(&mut con).unwrap();
    assert_eq!(missing, None);
    let n: i64 = redis::cmd("INCRBY")
        .arg("a")
        .arg(41)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 42);

    // Pipeline.
    let (x, y, len): (String, i64, i64) = redis::pipe()
        .cmd("SET")
        .arg("p1")
        .arg("x")
        .ignore()
        .cmd("GET")
        .arg("p1")
        .cmd("INCR")
        .arg("p2")
        .cmd("RPUSH")
        .arg("pl")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut con)
        .unwrap();
    assert_eq!((x.as_str(), y, len), ("x", 1, 3));
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("pl")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(items, ["a", "b", "c"]);

    // MULTI/EXEC via an atomic pipeline.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{m}c")
        .cmd("INCRBY")
        .arg("{m}c")
        .arg(10)
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b), (1, 11));

    // Errors surface as errors, and the connection stays usable.
    let err = redis::cmd("LPUSH")
        .arg("a")
        .arg("x")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let h: std::collections::HashMap<String, String> = {
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("f1")
            .arg("v1")
            .arg("f2")
            .arg("v2")
            .query(&mut con)
            .unwrap();
        redis::cmd("HGETALL").arg("h").query(&mut con).unwrap()
    };
    assert_eq!(h.len(), 2);
    assert_eq!(h["f2"], "v2");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn redis_cli_commands() {
    let s = Server::slotd(&[]);
    assert_eq!(s.cli(&["set", "a", "b"]).trim(), "OK");
    assert_eq!(s.cli(&["get", "a"]).trim(), "b");
    assert_eq!(s.cli(&["ping"]).trim(), "PONG");
    assert_eq!(s.cli(&["rpush", "l", "x", "y"]).trim(), "2");
    assert_eq!(s.cli(&["lrange", "l", "0", "-1"]), "x\ny\n");
    assert_eq!(s.cli(&["get", "missing"]).trim(), "");
    assert!(s.cli(&["lpush", "a", "x"]).contains("WRONGTYPE"));
}

#[test]
fn redis_cli_pipe_mode() {
    let s = Server::slotd(&[]);
    let mut input = String::new();
    for i in 0..2000 {
        input.push_str(&format!("SET pipe:{i} {i}\r\n"));
    }
    let (ok, out) = tests::redis_cli_pipe(&s, input.into_bytes());
    assert!(ok, "redis-cli --pipe failed: {out}");
    assert!(
        out.contains("errors: 0, replies: 2000"),
        "redis-cli --pipe output: {out}"
    );
    assert_eq!(s.cli(&["get", "pipe:1999"]).trim(), "1999");
    assert_eq!(s.cli(&["dbsize"]).trim(), "2000");
}

/// Waits for `child` (killing it after `timeout`); returns (success, stdout+stderr).
fn wait_output(mut child: std::process::Child, timeout: Duration) -> (bool, String) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn redis_benchmark_short_run() {
    let s = Server::slotd(&["--shards", "2"]);
    let tests = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset";
    let child = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &s.port().to_string()])
        .args(["-n", "10000", "-q", "-t", tests])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-benchmark");
    let (ok, out) = wait_output(child, Duration::from_secs(240));
    // -q rewrites progress lines with \r: keep the final text of each line.
    let out = out.replace('\r', "\n");
    assert!(ok, "redis-benchmark exited with an error:\n{out}");
    let lower = out.to_lowercase();
    assert!(
        !lower.contains("error"),
        "redis-benchmark reported errors:\n{out}"
    );
    // -t lrange runs the LRANGE_100/300/500/600 variants.
    for name in [
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_100",
        "LRANGE_600",
        "MSET",
    ] {
        let found = out.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(name) && l.contains("requests per second")
        });
        assert!(found, "no requests-per-second line for {name}:\n{out}");
    }
}
