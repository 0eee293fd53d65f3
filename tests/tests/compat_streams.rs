//! Differential tests: streams, slotd vs redis-server 7.0: every command
//! and option with its replies and errors (RESP2 and RESP3, one and two
//! shards), the replies that carry times within a tolerance, what writes
//! propagate (the AOF of each, byte for byte but the delivery times),
//! DUMP/RESTORE both ways, DEBUG RELOAD and the AOF rewrite keeping
//! streams and groups, and XREAD/XREADGROUP BLOCK.
use std::time::Duration;
use tests::{assert_same, assert_same_with, show, RawConn, Resp, Server};

fn owned(cmds: &[&str]) -> Vec<Vec<String>> {
    cmds.iter()
        .map(|c| c.split(' ').map(str::to_string).collect())
        .collect()
}

/// `cmds` (space-separated, no argument with spaces) as the harness takes
/// them, run with `slotd_args`.
fn same(slotd_args: &[&str], cmds: &[&str]) {
    let o = owned(cmds);
    let v: Vec<Vec<&str>> = o
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = v.iter().map(|c| c.as_slice()).collect();
    if slotd_args.is_empty() {
        assert_same(&refs);
    } else {
        assert_same_with(slotd_args, &refs);
    }
}

const BASICS: &[&str] = &[
    "XADD s 1-1 a 1 b 2",
    "XADD s 1-2 a 3 b 4",
    "XADD s 2-* a 5 c 6",
    "XADD s 2-* a 5 c 6",
    "XADD s 1-1 a 1",
    "XADD s 0-0 a 1",
    "XADD s 0-* a 1",
    "XADD s a",
    "XADD s 5 a",
    "XADD s 5-1 a 1 b",
    "XADD s 3-x a 1",
    "XADD s -1 a 1",
    "XADD s + a 1",
    "XADD s MAXLEN -1 6 a 1",
    "XADD s MAXLEN x 6 a 1",
    "XADD s MAXLEN 1 MINID 1 6 a 1",
    "XADD s LIMIT 10 6 a 1",
    "XADD s LIMIT -1 6 a 1",
    "XADD s MAXLEN 2 LIMIT 10 6 a 1",
    "XADD s NOMKSTREAM 3-0 x 1 y 2 z 3",
    "XADD nos NOMKSTREAM 3-0 x 1",
    "EXISTS nos",
    "XADD ints 1-1 1 -2 300 70000 99999999999 -9223372036854775808 007 +1",
    "XRANGE ints - +",
    "XRANGE s - +",
    "XREVRANGE s + -",
    "XRANGE s - + COUNT 1",
    "XRANGE s - + COUNT 0",
    "XRANGE s - + COUNT -5",
    "XRANGE s - + COUNT x",
    "XREVRANGE s + - COUNT 2",
    "XRANGE s (1-1 +",
    "XRANGE s - (2-1",
    "XREVRANGE s (3-0 (1-1",
    "XRANGE s (18446744073709551615-18446744073709551615 +",
    "XRANGE s - (0-0",
    "XRANGE s (- +",
    "XRANGE s 1 1",
    "XRANGE s 2 +",
    "XRANGE s - + foo",
    "XRANGE s - + COUNT",
    "XRANGE s x +",
    "XRANGE nokey - +",
    "XLEN s",
    "XLEN nokey",
    "TYPE s",
    "OBJECT ENCODING s",
    "XDEL s 1-2 9-9",
    "XDEL s x",
    "XDEL nokey 1-1",
    "XLEN s",
    "XRANGE s - +",
    "XINFO STREAM s",
    "XTRIM s MAXLEN 1",
    "XRANGE s - +",
    "XTRIM s",
    "XTRIM s FOO 1",
    "XTRIM s MINID ~ 5 LIMIT 2",
    "XTRIM s MAXLEN 1 LIMIT 2",
    "XTRIM s MAXLEN ~ 1 LIMIT x",
    "XTRIM nokey MAXLEN 1",
    "XSETID s 1-0",
    "XSETID s 100-0 ENTRIESADDED 1",
    "XSETID s 100-0 ENTRIESADDED -1",
    "XSETID s 100-0 ENTRIESADDED 10 MAXDELETEDID 50-0",
    "XSETID s 100-0 MAXDELETEDID 200-0",
    "XSETID s 100-0 FOO",
    "XSETID s +",
    "XSETID nokey 1-1",
    "XINFO STREAM s",
    "XINFO STREAM s FULL",
    "XINFO STREAM nokey",
    "XINFO FOO s",
    "XINFO HELP",
    "XINFO HELP x",
    "XINFO STREAM s FULL COUNT",
    "XINFO STREAM s FULL COUNT x",
    "XINFO STREAM s FOO",
    "XINFO STREAM s FULL FOO 1",
    "XADD e MAXLEN 0 1-1 a 1",
    "XINFO STREAM e",
    "XRANGE e - +",
    "XLEN e",
    "SET str x",
    "XADD str * a 1",
    "XRANGE str - +",
    "XLEN str",
    "XREAD STREAMS str 0",
    "XINFO STREAM str",
    "XSETID s 18446744073709551615-18446744073709551615",
    "XADD s * a 1",
    "XADD s 18446744073709551615-* a 1",
    "XADD seqmax 5-18446744073709551615 a 1",
    "XADD seqmax 5-* a 1",
    "XADD seqmax 5-18446744073709551615 a 1",
    "XADD seqmax 6-* a 1",
];

#[test]
fn basic_commands_replies_and_errors() {
    same(&[], BASICS);
}

#[test]
fn basic_commands_resp3() {
    let mut cmds = vec!["HELLO 3"];
    cmds.extend_from_slice(BASICS);
    same(&[], &cmds);
}

/// Many entries: node splits (100 entries, 4 KiB), deletions, trims
/// exact and approximate, and what XINFO tells of the tree.
fn big_stream() -> Vec<String> {
    let mut v = Vec::new();
    for i in 1..=450 {
        if i % 7 == 0 {
            v.push(format!("XADD big {i}-1 other {i}"));
        } else if i % 50 == 0 {
            v.push(format!(
                "XADD big {i}-1 field1 {} field2 {}",
                "x".repeat(600),
                i
            ));
        } else {
            v.push(format!("XADD big {i}-1 field1 {i} field2 val{i}"));
        }
    }
    for c in [
        "XINFO STREAM big",
        "XDEL big 150-1 151-1 1-1",
        "XINFO STREAM big",
        "XTRIM big MAXLEN ~ 300",
        "XINFO STREAM big",
        "XTRIM big MINID ~ 200",
        "XTRIM big MINID 210-1",
        "XINFO STREAM big",
        "XTRIM big MAXLEN = 150",
        "XTRIM big MAXLEN ~ 10 LIMIT 100",
        "XTRIM big MAXLEN ~ 10 LIMIT 0",
        "XINFO STREAM big",
        "XRANGE big - + COUNT 5",
        "XREVRANGE big + - COUNT 5",
        "XRANGE big 300 310",
        "XLEN big",
        "MEMORY USAGE nokey",
    ] {
        v.push(c.to_string());
    }
    v
}

#[test]
fn many_entries_nodes_trims_and_tree_shape() {
    let v = big_stream();
    let refs: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    same(&[], &refs);
}

#[test]
fn stream_node_settings_cut_nodes_as_redis_does() {
    let mut v = vec![
        "CONFIG SET stream-node-max-entries 7".to_string(),
        "CONFIG SET stream-node-max-bytes 300".to_string(),
    ];
    v.extend(big_stream());
    v.push("CONFIG SET stream-node-max-entries 0".into());
    v.push("CONFIG SET stream-node-max-bytes 0".into());
    for i in 1000..1300 {
        v.push(format!("XADD big {i}-1 f {i}"));
    }
    v.push("XINFO STREAM big".into());
    v.push("XTRIM big MAXLEN ~ 10".into());
    v.push("XINFO STREAM big".into());
    let refs: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    same(&[], &refs);
}

const GROUPS: &[&str] = &[
    "XADD s 1-1 a 1 b 2",
    "XADD s 1-2 a 3 b 4",
    "XADD s 2-1 a 5 c 6",
    "XADD s 3-1 f v",
    "XGROUP CREATE s g 0",
    "XGROUP CREATE s g 0",
    "XGROUP CREATE s g2 $ ENTRIESREAD 3",
    "XGROUP CREATE s g3 0 ENTRIESREAD -2",
    "XGROUP CREATE s g3 0 ENTRIESREAD x",
    "XGROUP CREATE s g3 0 FOO",
    "XGROUP CREATE s g3 x",
    "XGROUP CREATE s g3 +",
    "XGROUP CREATE nokey g 0",
    "XGROUP CREATE newkey g $ MKSTREAM",
    "XINFO STREAM newkey",
    "XGROUP CREATE s g4",
    "XGROUP FOO s g",
    "XGROUP",
    "XGROUP HELP",
    "XGROUP HELP x",
    "XGROUP SETID s nog 0",
    "XGROUP SETID nokey g 0",
    "XGROUP SETID s g 1-1",
    "XGROUP SETID s g $ ENTRIESREAD 2",
    "XGROUP SETID s g x",
    "XGROUP SETID s g - ENTRIESREAD 1 MKSTREAM",
    "XGROUP SETID s g 0",
    "XGROUP CREATECONSUMER s g alice",
    "XGROUP CREATECONSUMER s g alice",
    "XGROUP CREATECONSUMER s nog alice",
    "XGROUP CREATECONSUMER s g",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
    "XREADGROUP GROUP g bob STREAMS s >",
    "XREADGROUP GROUP g bob STREAMS s >",
    "XREADGROUP GROUP g alice STREAMS s 0",
    "XREADGROUP GROUP g bob STREAMS s 0-0",
    "XREADGROUP GROUP g bob COUNT 1 STREAMS s 1-2",
    "XREADGROUP GROUP g bob STREAMS s $",
    "XREADGROUP GROUP nog bob STREAMS s >",
    "XREADGROUP GROUP g bob STREAMS s nokey > >",
    "XREADGROUP GROUP g bob STREAMS s",
    "XREADGROUP GROUP g bob STREAMS s > x",
    "XREADGROUP STREAMS s > x y",
    "XREADGROUP GROUP g bob NOACK STREAMS s >",
    "XREADGROUP GROUP g carol NOACK STREAMS s 0",
    "XREAD GROUP g bob STREAMS s 0",
    "XREAD NOACK STREAMS s 0",
    "XREAD STREAMS s 0",
    "XREAD COUNT 1 STREAMS s 0",
    "XREAD COUNT -1 STREAMS s 0",
    "XREAD COUNT x STREAMS s 0",
    "XREAD STREAMS s $",
    "XREAD STREAMS s >",
    "XREAD STREAMS s nokey 0 0",
    "XREAD STREAMS s 1-1 nokey 0",
    "XREAD STREAMS s x",
    "XREAD FOO STREAMS s 0",
    "XREAD BLOCK -1 STREAMS s 0",
    "XREAD BLOCK x STREAMS s 0",
    "XREAD STREAMS s",
    "XREAD COUNT 1",
    "XPENDING s g",
    "XPENDING s g - + 10 nobody",
    "XPENDING s g - + x",
    "XPENDING s g - +",
    "XPENDING s g IDLE 99999999 - + 10",
    "XPENDING s g IDLE x - + 10",
    "XPENDING s g IDLE 1 - +",
    "XPENDING s g (18446744073709551615-18446744073709551615 + 10",
    "XPENDING s g x + 10",
    "XPENDING s nog",
    "XPENDING nokey g",
    "XPENDING nokey g - + 10",
    "XACK s g 1-1 1-2",
    "XACK s g 1-1",
    "XACK s nog 1-1",
    "XACK s g bad",
    "XACK nokey g bad",
    "XPENDING s g",
    "XINFO GROUPS s",
    "XINFO GROUPS nokey",
    "XINFO CONSUMERS s nog",
    "XINFO CONSUMERS nokey g",
    "XGROUP DELCONSUMER s g bob",
    "XGROUP DELCONSUMER s g bob",
    "XGROUP DELCONSUMER s nog bob",
    "XINFO GROUPS s",
    "XGROUP DESTROY s g2",
    "XGROUP DESTROY s g2",
    "XGROUP DESTROY nokey g2",
    "XINFO STREAM s",
    "XDEL s 2-1",
    "XINFO GROUPS s",
    "XGROUP SETID s g 0",
    "XINFO GROUPS s",
    "XADD s 9-1 z 1",
    "XINFO GROUPS s",
    "XCLAIM s g dave x 1-1",
    "XCLAIM s nog dave 0 1-1",
    "XCLAIM nokey g dave 0 1-1",
    "XCLAIM s g dave 0 1-1 IDLE x",
    "XCLAIM s g dave 0 1-1 TIME x",
    "XCLAIM s g dave 0 1-1 RETRYCOUNT x",
    "XCLAIM s g dave 0 1-1 LASTID x",
    "XCLAIM s g dave 0 1-1 FOO",
    "XCLAIM s g dave 0 bad-id",
    "XCLAIM s g dave 0 2-1 FORCE JUSTID",
    "XCLAIM s g dave 0 3-1 FORCE JUSTID RETRYCOUNT 7 TIME 1000",
    "XCLAIM s g dave 0 3-1 1-1 JUSTID LASTID 50-0",
    "XCLAIM s g erin 3600000 3-1 JUSTID",
    "XINFO GROUPS s",
    "XAUTOCLAIM s g frank 0 0 COUNT 0",
    "XAUTOCLAIM s g frank 0 0 COUNT x",
    "XAUTOCLAIM s g frank x 0",
    "XAUTOCLAIM s g frank 0 x",
    "XAUTOCLAIM s g frank 0 0 FOO",
    "XAUTOCLAIM s nog frank 0 0",
    "XAUTOCLAIM nokey g frank 0 0",
    "XAUTOCLAIM s g frank 3600000 0",
    "XAUTOCLAIM s g frank 0 0 COUNT 1 JUSTID",
    "XDEL s 3-1",
    "XAUTOCLAIM s g frank 0 0 JUSTID",
    "XAUTOCLAIM s g frank 0 (1-1",
    "XPENDING s g",
    "XINFO GROUPS s",
    "XGROUP CREATE s2 g $ MKSTREAM",
    "XADD s2 1-1 a 1",
    "XADD s2 2-1 a 2",
    "XREADGROUP GROUP g c COUNT 1 STREAMS s2 >",
    "XADD s2 3-1 a 3",
    "XDEL s2 2-1",
    "XINFO GROUPS s2",
    "XREADGROUP GROUP g c STREAMS s2 >",
    "XINFO GROUPS s2",
];

#[test]
fn consumer_groups_replies_and_errors() {
    same(&[], GROUPS);
    let mut cmds = vec!["HELLO 3"];
    cmds.extend_from_slice(GROUPS);
    same(&[], &cmds);
}

#[test]
fn two_shards() {
    same(&["--shards", "2"], BASICS);
    same(&["--shards", "2"], GROUPS);
    same(
        &["--shards", "2"],
        &[
            "XADD a 1-1 f 1",
            "XADD b 1-1 f 2",
            "XADD c 1-1 f 3",
            "XREAD STREAMS a b c d 0 0 0 0",
            "XREAD COUNT 1 STREAMS c b a 0 0 0",
            "XGROUP CREATE a g 0",
            "XGROUP CREATE b g 0",
            "XREADGROUP GROUP g x STREAMS a b > >",
            "XREADGROUP GROUP g x STREAMS a c > >",
            "XREAD STREAMS a b $ $",
        ],
    );
}

/// Integers equal, or both times (a tolerance for idle times and
/// timestamps of two servers a few ms apart).
fn close(a: &Resp, b: &Resp) -> bool {
    match (a, b) {
        (Resp::Line(b':', x), Resp::Line(b':', y)) => {
            let p = |v: &[u8]| std::str::from_utf8(v).unwrap().parse::<i64>().unwrap();
            (p(x) - p(y)).abs() <= 3000
        }
        (Resp::Agg(t, Some(x)), Resp::Agg(u, Some(y))) => {
            t == u && x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b))
        }
        _ => a == b,
    }
}

#[test]
fn replies_with_times_match_within_a_tolerance() {
    let slotd = Server::slotd(&[]);
    let redis = Server::redis(&[]);
    let (mut a, mut b) = (slotd.raw(), redis.raw());
    for resp3 in [false, true] {
        if resp3 {
            a.cmd_str(&["HELLO", "3"]);
            b.cmd_str(&["HELLO", "3"]);
        }
        for c in [
            "FLUSHALL",
            "XADD s 1-1 a 1 b 2",
            "XADD s 1-2 a 3 b 4",
            "XADD s 2-1 a 5 c 6",
            "XGROUP CREATE s g 0",
            "XGROUP CREATECONSUMER s g idle",
            "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g bob STREAMS s >",
            "XPENDING s g - + 10",
            "XPENDING s g - + 10 alice",
            "XPENDING s g IDLE 0 - + 10",
            "XPENDING s g (1-1 + 1",
            "XINFO CONSUMERS s g",
            "XINFO STREAM s FULL",
            "XINFO STREAM s FULL COUNT 1",
            "XINFO STREAM s FULL COUNT 0",
            "XCLAIM s g carol 0 1-1 1-2",
            "XCLAIM s g carol 0 2-1 IDLE 5000 RETRYCOUNT 3",
            "XPENDING s g - + 10",
            "XAUTOCLAIM s g dan 0 0 COUNT 2",
            "XAUTOCLAIM s g dan 0 0",
            "XREADGROUP GROUP g dan STREAMS s 0",
            "XINFO STREAM s FULL",
        ] {
            let args: Vec<&str> = c.split(' ').collect();
            let (ra, rb) = (a.cmd_str(&args), b.cmd_str(&args));
            let (x, y) = (Resp::parse(&ra).unwrap().0, Resp::parse(&rb).unwrap().0);
            assert!(
                close(&x, &y),
                "`{c}` (resp3 {resp3})\n  slotd: {}\n  redis: {}",
                show(&ra),
                show(&rb)
            );
        }
    }
}

/// The RESP commands of a file, `#` annotations skipped.
fn commands_of(b: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    let line = |i: &mut usize| {
        let j = *i + b[*i..].windows(2).position(|w| w == b"\r\n").unwrap();
        let l = String::from_utf8_lossy(&b[*i..j]).into_owned();
        *i = j + 2;
        l
    };
    while i < b.len() {
        let l = line(&mut i);
        if l.starts_with('#') {
            continue;
        }
        let n: usize = l[1..].parse().unwrap();
        let mut argv = Vec::new();
        for _ in 0..n {
            let len: usize = line(&mut i)[1..].parse().unwrap();
            argv.push(String::from_utf8_lossy(&b[i..i + len]).into_owned());
            i += len + 2;
        }
        out.push(argv);
    }
    out
}

/// Every command the incr files of `dir`'s AOF hold, delivery times and
/// SELECTs left out.
fn aof_commands(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for mut c in commands_of(&std::fs::read(f).unwrap()) {
            if c[0].eq_ignore_ascii_case("select") {
                continue;
            }
            for i in 1..c.len() {
                if c[i - 1] == "TIME" {
                    c[i] = "T".into();
                }
            }
            out.push(c);
        }
    }
    out
}

const PROPAGATED: &[&str] = &[
    "XADD s 1-1 a 1 b 2",
    "XADD s 1-* a 3 b 4",
    "XADD s MAXLEN ~ 1 2-1 a 5 c 6",
    "XADD s MINID ~ 1-5 LIMIT 10 2-* a 5 c 6",
    "XADD s MAXLEN = 10 2-* a 5 c 6",
    "XADD s MAXLEN 1 3-* a 5 c 6",
    "XTRIM s MAXLEN ~ 0",
    "XTRIM s MINID = 2",
    "XTRIM s MAXLEN 100",
    "XADD s 4-1 x 1",
    "XGROUP CREATE s g 0",
    "XADD s 5-1 f v",
    "XADD s 6-1 f v",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
    "XREADGROUP GROUP g bob NOACK STREAMS s >",
    "XREADGROUP GROUP g bob STREAMS s >",
    "XREADGROUP GROUP g alice STREAMS s 0",
    "XGROUP SETID s g 0",
    "XREADGROUP GROUP g carol STREAMS s >",
    "XCLAIM s g dave 0 5-1 TIME 1000 RETRYCOUNT 3",
    "XCLAIM s g dave 0 5 9-9 FORCE JUSTID LASTID 20-0",
    "XCLAIM s g dave 0 9-9 LASTID 30-0",
    "XCLAIM s g dave 0 9-9",
    "XAUTOCLAIM s g erin 0 0 COUNT 10 JUSTID",
    "XDEL s 6-1",
    "XAUTOCLAIM s g erin 0 0",
    "XACK s g 5-1",
    "XACK s g 5-1",
    "XGROUP CREATECONSUMER s g zed",
    "XGROUP CREATECONSUMER s g zed",
    "XGROUP DELCONSUMER s g zed",
    "XGROUP DESTROY s g",
    "XSETID s 100-0 ENTRIESADDED 50 MAXDELETEDID 6-1",
    "XGROUP CREATE t g $ MKSTREAM",
    "XADD t * a 1",
];

#[test]
fn writes_propagate_as_redis_propagates_them() {
    let mut got = Vec::new();
    for slotd in [true, false] {
        let dir = tests::fresh_dir("streams", if slotd { "prop-slotd" } else { "prop-redis" });
        let d = dir.to_str().unwrap();
        let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", d];
        let mut s = if slotd {
            Server::slotd(&args)
        } else {
            Server::redis(&args)
        };
        let mut r = s.raw();
        for c in PROPAGATED {
            r.cmd_str(&c.split(' ').collect::<Vec<_>>());
        }
        drop(r);
        s.stop();
        let mut cmds = aof_commands(&dir);
        // `XADD t *`'s ID is the time of each server.
        let last = cmds.last_mut().unwrap();
        assert!(last[2].ends_with("-0"), "{last:?}");
        last[2] = "ID".into();
        got.push(cmds);
    }
    assert_eq!(got[0], got[1]);
}

/// A stream with every part: nodes, a tombstone, groups, consumers with
/// and without pending entries (delivery times set by XCLAIM TIME).
const FULL: &[&str] = &[
    "XADD k 1-1 a 1 b 2",
    "XADD k 1-2 a 3 b 4",
    "XADD k 2-1 a 5 c 6",
    "XADD k 3-1 f vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
    "XDEL k 1-2",
    "XGROUP CREATE k g 0",
    "XGROUP CREATE k g2 $ ENTRIESREAD 3",
    "XCLAIM k g alice 0 1-1 2-1 FORCE JUSTID TIME 1000 RETRYCOUNT 2",
    "XGROUP CREATECONSUMER k g bob",
    "XADD empty MAXLEN 0 7-7 x y",
    "XGROUP CREATE empty eg $",
];

fn build(r: &mut RawConn, cmds: &[&str]) {
    for c in cmds {
        let reply = r.cmd_str(&c.split(' ').collect::<Vec<_>>());
        assert!(!reply.starts_with(b"-"), "{c}: {}", show(&reply));
    }
}

/// What a stream holds, its times left out (consumers' seen-time).
fn state(r: &mut RawConn, key: &str) -> Resp {
    let mut v = Resp::parse(&r.cmd_str(&["XINFO", "STREAM", key, "FULL"]))
        .unwrap()
        .0;
    fn mask(v: &mut Resp) {
        if let Resp::Agg(_, Some(items)) = v {
            for i in 0..items.len() {
                if matches!(&items[i], Resp::Bulk(_, Some(b)) if b == b"seen-time")
                    && i + 1 < items.len()
                {
                    items[i + 1] = Resp::Line(b':', b"T".to_vec());
                }
                mask(&mut items[i]);
            }
        }
    }
    mask(&mut v);
    v
}

#[test]
fn dump_and_restore_both_ways() {
    let slotd = Server::slotd(&[]);
    let redis = Server::redis(&[]);
    let (mut a, mut b) = (slotd.raw(), redis.raw());
    build(&mut a, FULL);
    build(&mut b, FULL);
    let mut big = Vec::new();
    for i in 1..=300 {
        big.push(format!("XADD big {i}-1 field1 {i} field2 val{i}"));
    }
    big.push("XDEL big 150-1".into());
    big.push("XTRIM big MAXLEN ~ 120".into());
    let big: Vec<&str> = big.iter().map(|s| s.as_str()).collect();
    build(&mut a, &big);
    build(&mut b, &big);
    for key in ["k", "empty", "big"] {
        let da = a.cmd_str(&["DUMP", key]);
        let db = b.cmd_str(&["DUMP", key]);
        let payload = |r: &[u8]| match Resp::parse(r).unwrap().0 {
            Resp::Bulk(_, Some(p)) => p,
            other => panic!("{other:?}"),
        };
        let (pa, pb) = (payload(&da), payload(&db));
        // Each restores in the other, equal to the original.
        let r1 = b.cmd(&[b"RESTORE", b"from-slotd", b"0", &pa]);
        assert_eq!(r1, b"+OK\r\n", "{key}: {}", show(&r1));
        let r2 = a.cmd(&[b"RESTORE", b"from-redis", b"0", &pb]);
        assert_eq!(r2, b"+OK\r\n", "{key}: {}", show(&r2));
        assert_eq!(state(&mut b, "from-slotd"), state(&mut b, key), "{key}");
        assert_eq!(state(&mut a, "from-redis"), state(&mut a, key), "{key}");
        assert_eq!(state(&mut a, key), state(&mut b, key), "{key}");
        if key != "k" {
            // Without consumers (whose seen-time is each server's clock),
            // redis-server dumps slotd's value as it dumps its own.
            assert_eq!(b.cmd_str(&["DUMP", "from-slotd"]), db, "{key}");
        }
        for r in [&mut a, &mut b] {
            r.cmd_str(&["DEL", "from-slotd", "from-redis"]);
        }
    }
    // A damaged payload is an error, never a crash.
    let good = match Resp::parse(&b.cmd_str(&["DUMP", "k"])).unwrap().0 {
        Resp::Bulk(_, Some(p)) => p,
        _ => unreachable!(),
    };
    for cut in [5, 20, good.len() / 2] {
        let reply = a.cmd(&[b"RESTORE", b"bad", b"0", &good[..cut]]);
        assert!(reply.starts_with(b"-"), "{}", show(&reply));
    }
    assert_eq!(a.cmd_str(&["PING"]), b"+PONG\r\n");
}

#[test]
fn reload_and_aof_rewrite_keep_streams_and_groups() {
    for shards in ["1", "2"] {
        let dir = tests::fresh_dir("streams", &format!("reload-{shards}"));
        let d = dir.to_str().unwrap();
        let s = Server::slotd(&[
            "--shards",
            shards,
            "--dir",
            d,
            "--enable-debug-command",
            "yes",
        ]);
        let mut r = s.raw();
        build(&mut r, FULL);
        let keys = ["k", "empty"];
        let before: Vec<Resp> = keys.iter().map(|k| state(&mut r, k)).collect();
        let digest = r.cmd_str(&["DEBUG", "DIGEST"]);
        assert_eq!(r.cmd_str(&["DEBUG", "RELOAD"]), b"+OK\r\n");
        let after: Vec<Resp> = keys.iter().map(|k| state(&mut r, k)).collect();
        assert_eq!(before, after, "DEBUG RELOAD, {shards} shards");
        assert_eq!(r.cmd_str(&["DEBUG", "DIGEST"]), digest);
        // The AOF rewrite's commands rebuild the same streams.
        for c in [
            "CONFIG SET aof-use-rdb-preamble no",
            "CONFIG SET appendonly yes",
        ] {
            r.cmd_str(&c.split(' ').collect::<Vec<_>>());
        }
        std::thread::sleep(Duration::from_millis(1500));
        let l = r.cmd_str(&["DEBUG", "LOADAOF"]);
        assert_eq!(l, b"+OK\r\n", "{}", show(&l));
        let after: Vec<Resp> = keys.iter().map(|k| state(&mut r, k)).collect();
        assert_eq!(before, after, "DEBUG LOADAOF, {shards} shards");
        assert_eq!(r.cmd_str(&["DEBUG", "DIGEST"]), digest);
    }
}

/// Reads one reply within `ms`, or `None`.
fn reply_within(r: &mut RawConn, ms: u64) -> Option<Vec<u8>> {
    r.set_read_timeout(Duration::from_millis(ms));
    let out = r.read_reply().ok();
    r.set_read_timeout(Duration::from_secs(10));
    out
}

#[test]
fn xread_and_xreadgroup_block() {
    for shards in ["1", "2"] {
        let slotd = Server::slotd(&["--shards", shards]);
        let redis = Server::redis(&[]);
        let mut got = Vec::new();
        for s in [&slotd, &redis] {
            let mut w = s.raw();
            let mut out = Vec::new();
            w.cmd_str(&["XADD", "s", "1-1", "a", "1"]);
            w.cmd_str(&["XGROUP", "CREATE", "s", "g", "$"]);
            w.cmd_str(&["XGROUP", "CREATE", "s", "g2", "$"]);
            // `$` is the last ID when blocking: 1-1 is not served. (Both
            // keys in one slot: slotd blocks on keys of one core.)
            let mut r1 = s.raw();
            r1.send(&tests::encode(&[
                b"XREAD", b"BLOCK", b"0", b"STREAMS", b"{s}o", b"s", b"$", b"$",
            ]))
            .unwrap();
            let mut r2 = s.raw();
            r2.send(&tests::encode(&[
                b"XREADGROUP",
                b"GROUP",
                b"g",
                b"c1",
                b"BLOCK",
                b"0",
                b"STREAMS",
                b"s",
                b">",
            ]))
            .unwrap();
            let mut r3 = s.raw();
            r3.cmd_str(&["HELLO", "3"]);
            r3.send(&tests::encode(&[
                b"XREAD", b"BLOCK", b"100", b"STREAMS", b"s", b"$",
            ]))
            .unwrap();
            let mut r4 = s.raw();
            r4.send(&tests::encode(&[
                b"XREADGROUP",
                b"GROUP",
                b"g2",
                b"c2",
                b"BLOCK",
                b"0",
                b"STREAMS",
                b"s",
                b">",
            ]))
            .unwrap();
            let mut r5 = s.raw();
            r5.send(&tests::encode(&[
                b"XREAD", b"BLOCK", b"50", b"STREAMS", b"s", b"$",
            ]))
            .unwrap();
            // Timeouts: nil (RESP3 `_`).
            out.push(reply_within(&mut r5, 2000));
            out.push(reply_within(&mut r3, 2000));
            assert_eq!(reply_within(&mut r1, 100), None);
            w.cmd_str(&["XADD", "s", "2-1", "b", "2"]);
            out.push(reply_within(&mut r1, 2000));
            out.push(reply_within(&mut r2, 2000));
            out.push(Some(w.cmd_str(&["XPENDING", "s", "g"])));
            // A destroyed group wakes its readers with an error.
            w.cmd_str(&["XGROUP", "DESTROY", "s", "g2"]);
            out.push(reply_within(&mut r4, 2000));
            // A deleted stream wakes nobody; one made again without the
            // group wakes its reader with the error.
            w.cmd_str(&["XGROUP", "CREATE", "s", "g3", "$"]);
            let mut r6 = s.raw();
            r6.send(&tests::encode(&[
                b"XREADGROUP",
                b"GROUP",
                b"g3",
                b"c3",
                b"BLOCK",
                b"0",
                b"STREAMS",
                b"s",
                b">",
            ]))
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            w.cmd_str(&["DEL", "s"]);
            out.push(reply_within(&mut r6, 200));
            w.cmd_str(&["XADD", "s", "9-1", "c", "3"]);
            out.push(reply_within(&mut r6, 2000));
            // Woken, a reader of several streams gets the first one
            // signalled, alone.
            let mut r7 = s.raw();
            r7.send(&tests::encode(&[
                b"XREAD", b"BLOCK", b"0", b"STREAMS", b"{s}x", b"{s}y", b"$", b"$",
            ]))
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            w.cmd_str(&["MULTI"]);
            w.cmd_str(&["XADD", "{s}y", "1-1", "y", "1"]);
            w.cmd_str(&["XADD", "{s}x", "1-1", "x", "1"]);
            w.cmd_str(&["EXEC"]);
            out.push(reply_within(&mut r7, 2000));
            // Woken by an entry deleted before the reader runs: Redis
            // compares with the last ID and serves an empty list.
            let mut r8 = s.raw();
            r8.send(&tests::encode(&[
                b"XREAD", b"BLOCK", b"0", b"STREAMS", b"{s}x", b"$",
            ]))
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            w.cmd_str(&["MULTI"]);
            w.cmd_str(&["XADD", "{s}x", "5-1", "x", "1"]);
            w.cmd_str(&["XDEL", "{s}x", "5-1"]);
            w.cmd_str(&["EXEC"]);
            out.push(reply_within(&mut r8, 2000));
            // In MULTI, BLOCK does not block.
            w.cmd_str(&["MULTI"]);
            w.cmd_str(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
            out.push(Some(w.cmd_str(&["EXEC"])));
            got.push(out);
        }
        let show_all = |v: &Vec<Option<Vec<u8>>>| {
            v.iter()
                .map(|r| r.as_deref().map(show).unwrap_or_else(|| "<none>".into()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            show_all(&got[0]),
            show_all(&got[1]),
            "{shards} shards (slotd first)"
        );
    }
}

#[test]
fn memory_per_entry_is_at_most_redis() {
    let slotd = Server::slotd(&[]);
    let redis = Server::redis(&[]);
    let mut used = Vec::new();
    for s in [&slotd, &redis] {
        let mut r = s.raw();
        let before = tests::info_field(s, "memory", "used_memory");
        let mut batch = Vec::new();
        for i in 0..100_000u64 {
            batch.extend(tests::encode(&[
                b"XADD",
                b"m",
                format!("{}-0", i + 1).as_bytes(),
                b"name",
                format!("user{i}").as_bytes(),
                b"score",
                (i % 1000).to_string().as_bytes(),
            ]));
            if i % 1000 == 999 {
                r.send(&batch).unwrap();
                for _ in 0..1000 {
                    r.read_reply().unwrap();
                }
                batch.clear();
            }
        }
        let after = tests::info_field(s, "memory", "used_memory");
        let n = |x: String| x.trim().parse::<i64>().unwrap();
        used.push(n(after) - n(before));
    }
    eprintln!(
        "100k entries: slotd {} bytes, redis {} bytes",
        used[0], used[1]
    );
    assert!(
        used[0] <= used[1] * 11 / 10,
        "slotd {} vs redis {}",
        used[0],
        used[1]
    );
}

/// Writes on a master that exercise every propagated form.
const REPLICATED: &[&str] = &[
    "XADD r 1-1 a 1 b 2",
    "XADD r 1-* a 3 b 4",
    "XADD r MAXLEN ~ 1 2-1 a 5 c 6",
    "XADD r MINID ~ 1-5 LIMIT 10 2-* a 5 c 6",
    "XADD r MAXLEN = 10 3-* a 5 c 6",
    "XTRIM r MAXLEN ~ 0",
    "XADD r 5000-1 f v",
    "XADD r 6000-1 f v",
    "XADD r 7000-1 f v",
    "XGROUP CREATE r g 0",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS r >",
    "XREADGROUP GROUP g bob NOACK COUNT 1 STREAMS r >",
    "XREADGROUP GROUP g carol STREAMS r >",
    "XCLAIM r g dave 0 5000-1 TIME 1000 RETRYCOUNT 3",
    "XCLAIM r g dave 0 9-9 LASTID 90000-0",
    "XDEL r 7000-1",
    "XAUTOCLAIM r g erin 0 0",
    "XACK r g 5000-1",
    "XGROUP CREATECONSUMER r g zed",
    "XGROUP DELCONSUMER r g carol",
    "XGROUP CREATE r g2 $ ENTRIESREAD 9",
    "XSETID r 100000-0 ENTRIESADDED 50 MAXDELETEDID 7000-1",
    "XGROUP CREATE r2 g $ MKSTREAM",
    "XADD r2 MAXLEN ~ 5 * a 1",
    // `r` and `r2` are on different cores with 2 shards.
    "XREADGROUP GROUP g cross STREAMS r r2 > >",
    "XADD r 200000-1 z 1",
    "XADD r2 MAXLEN 10 * z 1",
    "XREADGROUP GROUP g cross2 NOACK STREAMS r r2 > >",
];

/// Waits until `a` and `b` hold the same `keys`.
fn converge(a: &Server, b: &Server, keys: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (mut x, mut y) = (a.raw(), b.raw());
        let sa: Vec<Resp> = keys.iter().map(|k| state(&mut x, k)).collect();
        let sb: Vec<Resp> = keys.iter().map(|k| state(&mut y, k)).collect();
        if sa == sb {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never converged:\n{sa:?}\n{sb:?}\n--- log ---\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replication_both_ways() {
    let debug = ["--enable-debug-command", "yes"];
    for slotd_master in [false, true] {
        let slotd_args = ["--enable-debug-command", "yes", "--shards", "2"];
        let master = if slotd_master {
            Server::slotd(&slotd_args)
        } else {
            Server::redis(&debug)
        };
        let replica = if slotd_master {
            Server::redis(&debug)
        } else {
            Server::slotd(&slotd_args)
        };
        let mut m = master.raw();
        // Some data before the link: it goes in the full resynchronization.
        build(&mut m, FULL);
        let port = master.port().to_string();
        replica.cli(&["REPLICAOF", "127.0.0.1", &port]);
        build(&mut m, REPLICATED);
        converge(&master, &replica, &["k", "empty", "r", "r2"]);
        let d = |s: &Server| s.cli(&["DEBUG", "DIGEST"]);
        assert_eq!(d(&master), d(&replica), "slotd master: {slotd_master}");
    }
}

#[test]
fn snapshot_files_load_both_ways() {
    let dir = tests::fresh_dir("streams", "rdb-from-redis");
    let d = dir.to_str().unwrap();
    let mut redis = Server::redis(&["--dir", d]);
    let mut r = redis.raw();
    build(&mut r, FULL);
    build(&mut r, REPLICATED);
    let want: Vec<Resp> = ["k", "empty", "r", "r2"]
        .iter()
        .map(|k| state(&mut r, k))
        .collect();
    assert_eq!(r.cmd_str(&["SAVE"]), b"+OK\r\n");
    drop(r);
    redis.stop();
    for shards in ["1", "2"] {
        let mut s = Server::slotd(&["--dir", d, "--shards", shards]);
        let mut r = s.raw();
        let got: Vec<Resp> = ["k", "empty", "r", "r2"]
            .iter()
            .map(|k| state(&mut r, k))
            .collect();
        assert_eq!(
            got, want,
            "slotd ({shards} shards) loading redis-server's file"
        );
        assert_eq!(r.cmd_str(&["SAVE"]), b"+OK\r\n");
        drop(r);
        s.stop();
        let redis = Server::redis(&["--dir", d]);
        let mut r = redis.raw();
        let got: Vec<Resp> = ["k", "empty", "r", "r2"]
            .iter()
            .map(|k| state(&mut r, k))
            .collect();
        assert_eq!(
            got, want,
            "redis-server loading slotd's file ({shards} shards)"
        );
    }
}
