//! Differential tests: list commands, slotd vs redis-server 7.0.
use tests::assert_same;

#[test]
fn push_pop_range() {
    assert_same(&[
        &["LPUSH", "l", "a", "b", "c"],
        &["RPUSH", "l", "d", "e"],
        &["LRANGE", "l", "0", "-1"],
        &["LRANGE", "l", "1", "2"],
        &["LRANGE", "l", "-2", "-1"],
        &["LRANGE", "l", "-100", "100"],
        &["LRANGE", "l", "3", "1"],
        &["LRANGE", "l", "10", "20"],
        &["LRANGE", "missing", "0", "-1"],
        &["LLEN", "l"],
        &["LLEN", "missing"],
        &["LINDEX", "l", "0"],
        &["LINDEX", "l", "-1"],
        &["LINDEX", "l", "100"],
        &["LINDEX", "l", "x"],
        &["LPUSHX", "l", "z"],
        &["RPUSHX", "l", "y"],
        &["LPUSHX", "missing", "z"],
        &["RPUSHX", "missing", "z"],
        &["EXISTS", "missing"],
        &["LPOP", "l"],
        &["RPOP", "l"],
        &["LPOP", "l", "2"],
        &["RPOP", "l", "2"],
        &["LPOP", "l", "0"],
        &["LPOP", "l", "-1"],
        &["LRANGE", "l", "0", "-1"],
        &["LPOP", "l", "100"],
        &["EXISTS", "l"],
        &["LPOP", "l"],
        &["LPOP", "l", "2"],
        &["RPOP", "l", "2"],
        &["LSET", "l", "0", "x"],
        &["RPUSH", "l", "a", "b", "c"],
        &["LSET", "l", "1", "B"],
        &["LSET", "l", "-1", "C"],
        &["LSET", "l", "3", "x"],
        &["LRANGE", "l", "0", "-1"],
        &["SET", "s", "v"],
        &["LPUSH", "s", "x"],
        &["LRANGE", "s", "0", "-1"],
        &["LPOP", "s"],
        &["LLEN", "s"],
    ]);
}

#[test]
fn lpos() {
    assert_same(&[
        &["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"],
        &["LPOS", "l", "c"],
        &["LPOS", "l", "c", "RANK", "2"],
        &["LPOS", "l", "c", "RANK", "-1"],
        &["LPOS", "l", "c", "RANK", "-2"],
        &["LPOS", "l", "c", "COUNT", "0"],
        &["LPOS", "l", "c", "COUNT", "2"],
        &["LPOS", "l", "c", "COUNT", "2", "RANK", "-1"],
        &["LPOS", "l", "c", "COUNT", "0", "MAXLEN", "7"],
        &["LPOS", "l", "c", "MAXLEN", "2"],
        &["LPOS", "l", "x"],
        &["LPOS", "l", "x", "COUNT", "5"],
        &["LPOS", "l", "c", "RANK", "0"],
        &["LPOS", "l", "c", "COUNT", "-1"],
        &["LPOS", "l", "c", "MAXLEN", "-1"],
        &["LPOS", "l", "c", "BOGUS", "1"],
        &["LPOS", "missing", "c"],
        &["LPOS", "missing", "c", "COUNT", "1"],
    ]);
}

#[test]
fn lmove_linsert_lrem_ltrim() {
    assert_same(&[
        &["RPUSH", "{l}a", "1", "2", "3"],
        &["LMOVE", "{l}a", "{l}b", "LEFT", "RIGHT"],
        &["LMOVE", "{l}a", "{l}b", "RIGHT", "LEFT"],
        &["LRANGE", "{l}a", "0", "-1"],
        &["LRANGE", "{l}b", "0", "-1"],
        &["LMOVE", "{l}b", "{l}b", "LEFT", "RIGHT"],
        &["LRANGE", "{l}b", "0", "-1"],
        &["LMOVE", "{l}none", "{l}b", "LEFT", "LEFT"],
        &["LMOVE", "{l}a", "{l}b", "UP", "LEFT"],
        &["RPOPLPUSH", "{l}b", "{l}a"],
        &["RPOPLPUSH", "{l}none", "{l}a"],
        &["LRANGE", "{l}a", "0", "-1"],
        &["LMOVE", "{l}a", "{l}a2", "LEFT", "LEFT"],
        &["LMOVE", "{l}a", "{l}a2", "LEFT", "LEFT"],
        &["EXISTS", "{l}a"],
        &["SET", "{l}s", "x"],
        &["LMOVE", "{l}a2", "{l}s", "LEFT", "LEFT"],
        &["LRANGE", "{l}a2", "0", "-1"],
        &["DEL", "{l}a", "{l}b", "{l}a2"],
        &["RPUSH", "l", "a", "b", "c", "b", "a"],
        &["LINSERT", "l", "BEFORE", "b", "X"],
        &["LINSERT", "l", "AFTER", "b", "Y"],
        &["LINSERT", "l", "after", "a", "Z"],
        &["LINSERT", "l", "BEFORE", "nope", "X"],
        &["LINSERT", "l", "MIDDLE", "b", "X"],
        &["LINSERT", "missing", "BEFORE", "b", "X"],
        &["LRANGE", "l", "0", "-1"],
        &["LREM", "l", "1", "b"],
        &["LRANGE", "l", "0", "-1"],
        &["LREM", "l", "-1", "a"],
        &["LRANGE", "l", "0", "-1"],
        &["RPUSH", "l", "a", "a", "a"],
        &["LREM", "l", "0", "a"],
        &["LRANGE", "l", "0", "-1"],
        &["LREM", "l", "0", "nope"],
        &["LREM", "missing", "0", "a"],
        &["LREM", "l", "x", "a"],
        &["DEL", "l"],
        &[
            "RPUSH", "l", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
        ],
        &["LTRIM", "l", "1", "-2"],
        &["LRANGE", "l", "0", "-1"],
        &["LTRIM", "l", "-3", "100"],
        &["LRANGE", "l", "0", "-1"],
        &["LTRIM", "l", "2", "1"],
        &["EXISTS", "l"],
        &["LTRIM", "missing", "0", "1"],
        &["LTRIM", "l", "a", "1"],
    ]);
}

#[test]
fn blocking_pops_with_data_present() {
    // Only the non-blocking path (data present or timeout zero-length).
    assert_same(&[
        &["RPUSH", "{b}a", "1", "2"],
        &["BLPOP", "{b}none", "{b}a", "1"],
        &["BRPOP", "{b}a", "1"],
        &["BLPOP", "{b}none", "0.01"],
        &["RPUSH", "{b}a", "x", "y"],
        &["BLMOVE", "{b}a", "{b}c", "LEFT", "RIGHT", "1"],
        &["BRPOPLPUSH", "{b}a", "{b}c", "1"],
        &["LRANGE", "{b}c", "0", "-1"],
        &["BLPOP", "{b}a", "-1"],
        &["BLPOP", "{b}a", "abc"],
        &["LMPOP", "2", "{b}none", "{b}c", "LEFT"],
        &["RPUSH", "{b}c", "1", "2", "3"],
        &["LMPOP", "1", "{b}c", "RIGHT", "COUNT", "2"],
        &["LMPOP", "1", "{b}none", "RIGHT"],
        &["LMPOP", "0", "{b}c", "RIGHT"],
        &["LMPOP", "1", "{b}c", "UP"],
        &["BLMPOP", "1", "1", "{b}c", "LEFT", "COUNT", "10"],
    ]);
}

#[test]
fn big_list_encoding() {
    let mut cmds: Vec<Vec<String>> = vec![];
    let mut push = vec!["RPUSH".to_string(), "big".to_string()];
    for i in 0..300 {
        push.push(format!("element-{i}"));
    }
    cmds.push(push);
    for c in [
        "OBJECT ENCODING big",
        "LLEN big",
        "LINDEX big 150",
        "LRANGE big 140 160",
        "LPOS big element-299",
        "LTRIM big 0 9",
        "LRANGE big 0 -1",
    ] {
        cmds.push(c.split(' ').map(String::from).collect());
    }
    cmds.push(vec!["RPUSH".into(), "long".into(), "x".repeat(100)]);
    cmds.push(vec!["OBJECT".into(), "ENCODING".into(), "long".into()]);
    let v: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = v.iter().map(|c| c.as_slice()).collect();
    assert_same(&refs);
}

fn assert_same_owned(cmds: &[Vec<String>]) {
    let v: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = v.iter().map(|c| c.as_slice()).collect();
    assert_same(&refs);
}

fn words(c: &str) -> Vec<String> {
    c.split(' ').map(String::from).collect()
}

/// Item `i` of the long lists: mostly short, with repeats (for LREM and
/// LPOS), some of 200 bytes and a few larger than a whole 8 KiB chunk.
fn item(i: usize) -> String {
    match i % 1000 {
        999 => format!("huge-{i}-{}", "h".repeat(9000)),
        _ if i.is_multiple_of(97) => "dup".to_string(),
        _ if i.is_multiple_of(31) => format!("mid-{i}-{}", "m".repeat(200)),
        _ => format!("item-{i}"),
    }
}

/// 10k-element lists, edited in the middle (LINSERT, LSET, LREM, LTRIM)
/// and read back in windows that cross chunk boundaries, at several
/// `list-max-listpack-size` settings (small ones make many chunks).
#[test]
fn long_lists_edited_in_the_middle() {
    for fill in ["-2", "-1", "5", "1"] {
        let mut cmds = vec![words(&format!("CONFIG SET list-max-listpack-size {fill}"))];
        for batch in 0..10 {
            let mut c = words("RPUSH l");
            c.extend((batch * 1000..(batch + 1) * 1000).map(item));
            cmds.push(c);
        }
        let mut c = words("LPUSH l");
        c.extend((0..200).map(|i| format!("front-{i}")));
        cmds.push(c);
        for c in [
            "LLEN l",
            "OBJECT ENCODING l",
            "LINDEX l 0",
            "LINDEX l 5000",
            "LINDEX l -1",
            "LINDEX l -4321",
            "LRANGE l 4990 5010",
            "LRANGE l -1500 -1490",
            "LINSERT l BEFORE item-5000 before-5000",
            "LINSERT l AFTER item-5000 after-5000",
            "LINSERT l AFTER item-7998 after-7998",
            "LINSERT l BEFORE front-199 new-head",
            "LINSERT l AFTER huge-9999-x nothing",
            "LRANGE l 5190 5215",
            "LSET l 5100 set-5100",
            "LSET l -3000 set-minus-3000",
            "LSET l 0 set-head",
            "LSET l -1 set-tail",
            "LRANGE l 5095 5105",
            "LRANGE l -3005 -2995",
            "LPOS l dup",
            "LPOS l dup RANK 40",
            "LPOS l dup RANK -7",
            "LPOS l dup COUNT 5 RANK 30",
            "LPOS l dup COUNT 0 MAXLEN 3000",
            "LPOS l item-6543",
            "LREM l 3 dup",
            "LREM l -4 dup",
            "LPOS l dup COUNT 0",
            "LREM l 0 dup",
            "LLEN l",
            "LRANGE l 1000 1100",
            "LTRIM l 150 -150",
            "LLEN l",
            "LRANGE l 0 20",
            "LRANGE l -20 -1",
            "LPOP l 300",
            "RPOP l 300",
            "LMOVE l l2 LEFT RIGHT",
            "LMOVE l l RIGHT LEFT",
            "RPOPLPUSH l l",
            "LRANGE l 0 5",
            "LRANGE l2 0 -1",
            "LLEN l",
        ] {
            cmds.push(words(c));
        }
        // The whole list, and a set of an element larger than a chunk.
        cmds.push(words("LRANGE l 0 -1"));
        cmds.push(vec![
            "LSET".into(),
            "l".into(),
            "4000".into(),
            "x".repeat(20_000),
        ]);
        cmds.push(vec![
            "LINSERT".into(),
            "l".into(),
            "BEFORE".into(),
            "item-6001".into(),
            "y".repeat(10_000),
        ]);
        cmds.push(words("LRANGE l 3990 4010"));
        cmds.push(words("LRANGE l 0 -1"));
        cmds.push(words("DEL l l2"));
        assert_same_owned(&cmds);
    }
}
