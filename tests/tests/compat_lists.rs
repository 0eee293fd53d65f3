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
