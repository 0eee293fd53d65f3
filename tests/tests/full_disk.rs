//! A full disk, for real: a small tmpfs the test mounts (root only; the
//! tests print a message and pass elsewhere). The AOF's writes fail with
//! Redis's `-MISCONF` and recover once space returns, keeping every
//! acknowledged write; a BGSAVE that cannot write refuses writes under
//! `stop-writes-on-bgsave-error`, with redis-server's exact replies. And a
//! power loss (dm-flakey dropping writes on a loop device) where
//! device-mapper exists.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tests::{RawConn, Server};

/// A tmpfs mounted for one test, unmounted (and its mount point removed)
/// on drop, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "2m"); `None` (after a message)
    /// when this host does not let the test mount (not root).
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("slotd-full-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (the full-disk tests need root)");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !umounted {
            // Still busy (a server being stopped): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

use tests::text;

fn info_field(r: &mut RawConn, field: &str) -> String {
    let info = text(&r.cmd_str(&["INFO", "persistence"]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

/// Fills a file of `bytes` bytes on the disk (room the test frees later).
fn filler(dir: &Path, bytes: usize) -> PathBuf {
    let p = dir.join("filler");
    std::fs::write(&p, vec![b'f'; bytes]).unwrap();
    p
}

fn value(i: usize) -> String {
    format!("{i:08}-{}", "v".repeat(1000))
}

/// SETs `prefix{i}` until a write is refused; returns the keys
/// acknowledged and the refusal.
fn write_until_refused(r: &mut RawConn, prefix: &str) -> (Vec<usize>, String) {
    let mut acked = Vec::new();
    for i in 0..20_000 {
        let reply = text(&r.cmd_str(&["SET", &format!("{prefix}{i}"), &value(i)]));
        if reply == "+OK\r\n" {
            acked.push(i);
            continue;
        }
        return (acked, reply);
    }
    panic!("20000 writes of 1 KB were all accepted on a small tmpfs");
}

const AOF_MISCONF: &str = "-MISCONF Errors writing to the AOF file: No space left on device\r\n";

/// The AOF's writes fail on a full disk: writes and PING get Redis's
/// -MISCONF (the text redis-server gives on the same disk), INFO says
/// `aof_last_write_status:err`; once a file is deleted, writes succeed
/// again within 2 s, the log says so, and after a restart every
/// acknowledged write is there.
#[test]
fn aof_on_a_full_disk_refuses_writes_then_recovers() {
    let Some(rdisk) = Tmpfs::mount("aof-redis", "2m") else {
        return;
    };
    let redis = Server::redis(&["--dir", rdisk.path(), "--appendonly", "yes"]);
    let mut rr = redis.raw();
    let (_, redis_refusal) = write_until_refused(&mut rr, "k");
    assert_eq!(redis_refusal, AOF_MISCONF);
    let redis_ping = text(&rr.cmd_str(&["PING"]));
    drop(rr);
    drop(redis);
    drop(rdisk);

    let Some(disk) = Tmpfs::mount("aof", "2m") else {
        return;
    };
    let room = filler(&disk.dir, 512 << 10);
    let mut s = Server::slotd(&["--shards", "2", "--dir", disk.path(), "--appendonly", "yes"]);
    let mut r = s.raw();
    let (mut acked, refusal) = write_until_refused(&mut r, "k");
    assert_eq!(refusal, AOF_MISCONF, "after {} writes", acked.len());
    assert!(
        acked.len() > 100,
        "only {} writes before the disk filled",
        acked.len()
    );
    assert_eq!(text(&r.cmd_str(&["PING"])), redis_ping);
    assert_eq!(info_field(&mut r, "aof_last_write_status"), "err");
    // Reads still work.
    assert_eq!(text(&r.cmd_str(&["EXISTS", "k0"])), ":1\r\n");
    assert!(s
        .log()
        .contains("Error writing to the AOF file: No space left on device"));

    std::fs::remove_file(&room).unwrap();
    let t = Instant::now();
    loop {
        if text(&r.cmd_str(&["PING"])) == "+PONG\r\n" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "still refused 2 s after space returned"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "writes accepted again {:?} after space returned",
        t.elapsed()
    );
    assert_eq!(info_field(&mut r, "aof_last_write_status"), "ok");
    assert!(s
        .log()
        .contains("AOF write error looks solved, Redis can write again."));
    let next = acked.last().map_or(0, |l| l + 1);
    for i in next..next + 50 {
        assert_eq!(
            text(&r.cmd_str(&["SET", &format!("k{i}"), &value(i)])),
            "+OK\r\n"
        );
        acked.push(i);
    }
    drop(r);
    s.stop();
    drop(s);

    let s = Server::slotd(&["--shards", "2", "--dir", disk.path(), "--appendonly", "yes"]);
    let mut r = s.raw();
    for &i in &acked {
        let got = text(&r.cmd_str(&["GET", &format!("k{i}")]));
        assert_eq!(
            got,
            format!("$1009\r\n{}\r\n", value(i)),
            "k{i} after restart"
        );
    }
}

/// Turning the AOF off while its writes fail lifts the -MISCONF refusal
/// (Redis refuses for the AOF only while it is on), and INFO keeps the
/// last write's status, in slotd as in redis-server.
#[test]
fn turning_the_aof_off_lifts_its_misconf() {
    let mut seen = Vec::new();
    for name in ["redis", "slotd"] {
        let Some(disk) = Tmpfs::mount(&format!("aof-off-{name}"), "2m") else {
            return;
        };
        let args = ["--dir", disk.path(), "--appendonly", "yes"];
        let s = if name == "redis" {
            Server::redis(&args)
        } else {
            Server::slotd(&[&["--shards", "2"][..], &args].concat())
        };
        let mut r = s.raw();
        let (_, refusal) = write_until_refused(&mut r, "k");
        assert_eq!(refusal, AOF_MISCONF, "{name}");
        let off = text(&r.cmd_str(&["CONFIG", "SET", "appendonly", "no"]));
        let set = text(&r.cmd_str(&["SET", "after", "1"]));
        let status = info_field(&mut r, "aof_last_write_status");
        seen.push((off, set, status));
    }
    assert_eq!(seen[1].1, "+OK\r\n", "slotd still refuses: {:?}", seen[1]);
    assert_eq!(seen[0], seen[1], "redis-server, then slotd");
}

const RDB_MISCONF: &str = "-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.\r\n";

/// Runs a BGSAVE that fails for want of space; returns the refusal a
/// write then gets and INFO's `rdb_last_bgsave_status`.
fn failed_bgsave(r: &mut RawConn) -> (String, String) {
    for i in 0..300 {
        assert_eq!(
            text(&r.cmd_str(&["SET", &format!("big{i}"), &value(i)])),
            "+OK\r\n"
        );
    }
    assert_eq!(
        text(&r.cmd_str(&["BGSAVE"])),
        "+Background saving started\r\n"
    );
    let t = Instant::now();
    while info_field(r, "rdb_bgsave_in_progress") != "0" {
        assert!(t.elapsed() < Duration::from_secs(10), "BGSAVE did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = info_field(r, "rdb_last_bgsave_status");
    (text(&r.cmd_str(&["SET", "after", "1"])), status)
}

/// A BGSAVE on a full disk: `rdb_last_bgsave_status:err` and writes
/// refused with the RDB -MISCONF (`stop-writes-on-bgsave-error yes`, save
/// rules set), as redis-server does on the same disk; no temporary file
/// left; once space returns a BGSAVE succeeds and writes are accepted.
#[test]
fn bgsave_on_a_full_disk_refuses_writes() {
    let common = ["--save", "3600 1", "--rdbcompression", "no"];
    let Some(rdisk) = Tmpfs::mount("rdb-redis", "256k") else {
        return;
    };
    let mut args = vec!["--dir", rdisk.path()];
    args.extend_from_slice(&common);
    let redis = Server::redis(&args);
    let want = failed_bgsave(&mut redis.raw());
    assert_eq!(want, (RDB_MISCONF.to_string(), "err".to_string()));
    drop(redis);
    drop(rdisk);

    let Some(disk) = Tmpfs::mount("rdb", "512k") else {
        return;
    };
    let room = filler(&disk.dir, 256 << 10);
    let mut args = vec!["--shards", "2", "--dir", disk.path()];
    args.extend_from_slice(&common);
    let s = Server::slotd(&args);
    let mut r = s.raw();
    assert_eq!(failed_bgsave(&mut r), want);
    assert_eq!(text(&r.cmd_str(&["PING"])), RDB_MISCONF);
    let left: Vec<String> = std::fs::read_dir(&disk.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect();
    assert!(
        left.is_empty(),
        "files left after the failed save: {left:?}"
    );

    std::fs::remove_file(&room).unwrap();
    assert_eq!(
        text(&r.cmd_str(&["BGSAVE"])),
        "+Background saving started\r\n"
    );
    let t = Instant::now();
    while info_field(&mut r, "rdb_bgsave_in_progress") != "0" {
        assert!(t.elapsed() < Duration::from_secs(10), "BGSAVE did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut r, "rdb_last_bgsave_status"), "ok");
    assert_eq!(text(&r.cmd_str(&["SET", "after", "1"])), "+OK\r\n");
    assert!(disk.dir.join("dump.rdb").exists());
}

/// Whether device-mapper with the flakey target can be used here.
fn dm_flakey_available() -> bool {
    Path::new("/dev/mapper/control").exists()
        && Command::new("dmsetup")
            .arg("targets")
            .output()
            .is_ok_and(|o| o.status.success() && text(&o.stdout).contains("flakey"))
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

/// The loop device, dm-flakey device and mount of the power-loss test,
/// torn down in reverse order on drop.
struct Flakey {
    image: PathBuf,
    loopdev: Option<String>,
    name: String,
    mnt: PathBuf,
    mounted: bool,
}

impl Flakey {
    fn sectors(&self) -> String {
        run("blockdev", &["--getsz", self.loopdev.as_deref().unwrap()])
    }

    /// Loads the flakey table: writes pass, or are all dropped.
    fn table(&self, drop_writes: bool) -> String {
        let dev = self.loopdev.as_deref().unwrap();
        if drop_writes {
            format!("0 {} flakey {dev} 0 0 3600 1 drop_writes", self.sectors())
        } else {
            format!("0 {} flakey {dev} 0 3600 0", self.sectors())
        }
    }

    fn mapper(&self) -> String {
        format!("/dev/mapper/{}", self.name)
    }

    fn mount(&mut self) {
        run("mount", &[&self.mapper(), self.mnt.to_str().unwrap()]);
        self.mounted = true;
    }

    fn umount(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
            self.mounted = false;
        }
    }
}

impl Drop for Flakey {
    fn drop(&mut self) {
        self.umount();
        let _ = Command::new("dmsetup")
            .args(["remove", &self.name])
            .status();
        if let Some(l) = &self.loopdev {
            let _ = Command::new("losetup").args(["-d", l]).status();
        }
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.mnt);
    }
}

/// A power loss under `appendfsync always`: the device drops every write
/// from some instant (dm-flakey), slotd is killed, the page cache is lost
/// with the unmount; every write acknowledged before is on the device.
/// Not run on this project's build host, which has no device-mapper.
#[test]
fn power_loss_keeps_every_acknowledged_write() {
    if !dm_flakey_available() {
        eprintln!("skipped: device-mapper is not available on this host");
        return;
    }
    let tmp = std::env::temp_dir();
    let id = std::process::id();
    let mut dev = Flakey {
        image: tmp.join(format!("slotd-flakey-{id}.img")),
        loopdev: None,
        name: format!("slotd-flakey-{id}"),
        mnt: tmp.join(format!("slotd-flakey-{id}")),
        mounted: false,
    };
    std::fs::create_dir_all(&dev.mnt).unwrap();
    run("truncate", &["-s", "64M", dev.image.to_str().unwrap()]);
    dev.loopdev = Some(run(
        "losetup",
        &["--find", "--show", dev.image.to_str().unwrap()],
    ));
    run(
        "dmsetup",
        &["create", &dev.name, "--table", &dev.table(false)],
    );
    run("mkfs.ext4", &["-q", &dev.mapper()]);
    dev.mount();
    let dir = dev.mnt.to_str().unwrap().to_string();
    let args = [
        "--shards",
        "2",
        "--dir",
        &dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let mut s = Server::slotd(&args);
    let mut r = s.raw();
    let mut acked = 0;
    for i in 0..2000 {
        if text(&r.cmd_str(&["SET", &format!("k{i}"), &value(i)])) == "+OK\r\n" {
            acked = i + 1;
        }
    }
    // From now on nothing reaches the device; the server dies.
    run("dmsetup", &["suspend", &dev.name]);
    run("dmsetup", &["load", &dev.name, "--table", &dev.table(true)]);
    run("dmsetup", &["resume", &dev.name]);
    for i in 2000..2100 {
        let _ = r.try_cmd(&[b"SET", format!("k{i}").as_bytes(), b"lost"]);
    }
    run("kill", &["-KILL", &s.pid().to_string()]);
    s.stop();
    drop(s);
    dev.umount();
    run("dmsetup", &["suspend", &dev.name]);
    run(
        "dmsetup",
        &["load", &dev.name, "--table", &dev.table(false)],
    );
    run("dmsetup", &["resume", &dev.name]);
    dev.mount();
    let s = Server::slotd(&args);
    let mut r = s.raw();
    for i in 0..acked {
        let got = text(&r.cmd_str(&["GET", &format!("k{i}")]));
        assert_eq!(
            got,
            format!("$1009\r\n{}\r\n", value(i)),
            "k{i} after the power loss"
        );
    }
}
