//! While slotd loads its files at start it answers, as Redis does,
//! `-LOADING` to the commands Redis refuses then, serves the others (INFO
//! shows `loading:1` and the progress, of an RDB file or of an
//! append-only directory's replay), and serves everything once loaded.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{free_port, slotd_bin, RawConn};

/// An RDB (version 10, no checksum) with `n` string keys `key:<i>` of
/// value `v<i>`, in database 0.
fn big_rdb(n: usize) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 64 {
            out.push(l as u8);
        } else {
            out.push(0x40 | (l >> 8) as u8);
            out.push(l as u8);
        }
    }
    let mut out = b"REDIS0010".to_vec();
    out.extend([0xFE, 0x00]);
    for i in 0..n {
        out.push(0x00);
        let k = format!("key:{i}");
        len(&mut out, k.len());
        out.extend(k.as_bytes());
        let v = format!("v{i}");
        len(&mut out, v.len());
        out.extend(v.as_bytes());
    }
    out.push(0xFF);
    out.extend([0u8; 8]);
    out
}

/// Starts slotd (`--save ""` and `args`), stopped when the guard drops
/// however the test ends, and connects as soon as it listens.
fn start(args: &[&str]) -> (Kill, RawConn) {
    let port = free_port();
    let child = Command::new(slotd_bin())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Kill(child);
    let t = Instant::now();
    let c = loop {
        if let Ok(c) = RawConn::connect(port) {
            break c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "slotd never listened"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    c.set_read_timeout(Duration::from_secs(30));
    (guard, c)
}

#[test]
fn commands_get_loading_until_the_dataset_is_in() {
    let dir = std::env::temp_dir().join(format!("slotd-loading-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = 3_000_000;
    std::fs::File::create(dir.join("dump.rdb"))
        .unwrap()
        .write_all(&big_rdb(n))
        .unwrap();
    let (_guard, mut c) = start(&["--shards", "2", "--dir", dir.to_str().unwrap()]);
    let t = Instant::now();
    let (mut saw_loading, mut saw_info) = (false, false);
    loop {
        let r = c.cmd(&[b"GET", b"key:7"]);
        if r == b"$2\r\nv7\r\n" {
            break;
        }
        assert_eq!(
            String::from_utf8_lossy(&r),
            "-LOADING Redis is loading the dataset in memory\r\n"
        );
        saw_loading = true;
        // Refused too, as in Redis (unless loading ended meanwhile); INFO
        // and ECHO are served.
        let ping = c.cmd(&[b"PING"]);
        if ping == b"+PONG\r\n" {
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&ping),
            "-LOADING Redis is loading the dataset in memory\r\n"
        );
        assert_eq!(c.cmd(&[b"ECHO", b"x"]), b"$1\r\nx\r\n");
        let info = String::from_utf8_lossy(&c.cmd(&[b"INFO", b"persistence"])).into_owned();
        if info.contains("loading:1\r\n") {
            assert!(info.contains("loading_total_bytes:"), "{info}");
            assert!(info.contains("loading_loaded_perc:"), "{info}");
            saw_info = true;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never loaded");
    }
    assert!(
        saw_loading,
        "the load ended before the first command: make the file bigger"
    );
    assert!(saw_info, "INFO never showed loading:1");
    let info = String::from_utf8_lossy(&c.cmd(&[b"INFO", b"persistence"])).into_owned();
    assert!(info.contains("loading:0\r\n"), "{info}");
    assert!(!info.contains("loading_start_time"), "{info}");
    assert_eq!(c.cmd(&[b"DBSIZE"]), format!(":{n}\r\n").as_bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One incr file of `n` SETs of keys `{tag}:<i>` (one slot per tag).
fn incr_file(tag: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 40);
    for i in 0..n {
        let k = format!("{{{tag}}}:{i}");
        out.extend(format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n", k.len()).as_bytes());
    }
    out
}

/// A field of an INFO reply.
fn field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

#[test]
fn info_shows_the_progress_of_an_append_only_directory() {
    let dir = std::env::temp_dir().join(format!("slotd-loading-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let aofdir = dir.join("appendonlydir");
    std::fs::create_dir_all(&aofdir).unwrap();
    let n = 1_500_000;
    let (c0, c1) = (incr_file("a", n), incr_file("b", n));
    let total = (c0.len() + c1.len()) as u64;
    std::fs::write(aofdir.join("appendonly.aof.1.c0.incr.aof"), c0).unwrap();
    std::fs::write(aofdir.join("appendonly.aof.1.c1.incr.aof"), c1).unwrap();
    std::fs::write(
        aofdir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.c0.incr.aof seq 1 type i core 0 cores 2 offset 0\n\
         file appendonly.aof.1.c1.incr.aof seq 1 type i core 1 cores 2 offset 0\n",
    )
    .unwrap();
    let (_guard, mut c) = start(&[
        "--shards",
        "2",
        "--appendonly",
        "yes",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let t = Instant::now();
    let (mut seen, mut midway) = (0, false);
    loop {
        let info = String::from_utf8_lossy(&c.cmd(&[b"INFO", b"persistence"])).into_owned();
        // (Not `async_loading:0`.)
        if info.contains("\r\nloading:0\r\n") {
            break;
        }
        assert!(info.contains("\r\nloading:1\r\n"), "{info}");
        if field(&info, "loading_total_bytes") == Some(total) {
            let done = field(&info, "loading_loaded_bytes").unwrap();
            assert!(done >= seen && done <= total, "{info}");
            midway |= done > 0 && done < total;
            seen = done;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never loaded");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        midway,
        "INFO never showed the load between its start and its end"
    );
    assert_eq!(c.cmd(&[b"DBSIZE"]), format!(":{}\r\n", 2 * n).as_bytes());
    assert_eq!(c.cmd(&[b"GET", b"{b}:1499999"]), b"$1\r\nv\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}
