//! Differential tests: generic key commands, slotd vs redis-server 7.0.
use tests::assert_same;

#[test]
fn del_exists_type() {
    assert_same(&[
        &["MSET", "{k}a", "1", "{k}b", "2"],
        &["RPUSH", "{k}l", "x"],
        &["SADD", "{k}s", "x"],
        &["HSET", "{k}h", "f", "v"],
        &["ZADD", "{k}z", "1", "m"],
        &["TYPE", "{k}a"],
        &["TYPE", "{k}l"],
        &["TYPE", "{k}s"],
        &["TYPE", "{k}h"],
        &["TYPE", "{k}z"],
        &["TYPE", "{k}none"],
        &["EXISTS", "{k}a", "{k}a", "{k}none", "{k}l"],
        &["EXISTS", "{k}none"],
        &["DEL", "{k}a", "{k}none", "{k}a"],
        &["UNLINK", "{k}b", "{k}l"],
        &["EXISTS", "{k}a", "{k}b", "{k}l"],
        &["DEL", "{k}none"],
        &["TOUCH", "{k}s", "{k}h", "{k}none"],
        &["DBSIZE"],
        &["KEYS", "*"],
        &["KEYS", "{k}?"],
        &["KEYS", "*[sh]"],
        &["FLUSHDB"],
        &["DBSIZE"],
        &["KEYS", "*"],
    ]);
}

#[test]
fn rename_family() {
    assert_same(&[
        &["SET", "{r}a", "1"],
        &["RENAME", "{r}a", "{r}b"],
        &["EXISTS", "{r}a"],
        &["GET", "{r}b"],
        &["RENAME", "{r}none", "{r}c"],
        &["RENAMENX", "{r}none", "{r}c"],
        &["SET", "{r}c", "3"],
        &["RENAMENX", "{r}b", "{r}c"],
        &["RENAMENX", "{r}b", "{r}d"],
        &["GET", "{r}d"],
        &["RENAME", "{r}d", "{r}d"],
        &["RENAMENX", "{r}d", "{r}d"],
        &["RPUSH", "{r}l", "x", "y"],
        &["RENAME", "{r}l", "{r}c"],
        &["TYPE", "{r}c"],
        &["LRANGE", "{r}c", "0", "-1"],
        &["SET", "{r}e", "v", "EXAT", "4000000000"],
        &["RENAME", "{r}e", "{r}f"],
        &["EXPIRETIME", "{r}f"],
        &["SET", "{r}g", "v"],
        &["COPY", "{r}g", "{r}h"],
        &["COPY", "{r}g", "{r}h"],
        &["COPY", "{r}g", "{r}h", "REPLACE"],
        &["GET", "{r}h"],
        &["COPY", "{r}none", "{r}h"],
        &["COPY", "{r}c", "{r}lc"],
        &["LRANGE", "{r}lc", "0", "-1"],
        &["COPY", "{r}g", "{r}h", "BOGUS"],
    ]);
}

#[test]
fn expire_family() {
    assert_same(&[
        &["SET", "k", "v"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["TTL", "missing"],
        &["PTTL", "missing"],
        &["EXPIRETIME", "k"],
        &["EXPIRETIME", "missing"],
        &["EXPIRE", "k", "100"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["TTL", "k"],
        &["EXPIRE", "missing", "100"],
        &["EXPIREAT", "k", "4000000000"],
        &["EXPIRETIME", "k"],
        &["PEXPIRETIME", "k"],
        &["PEXPIREAT", "k", "4000000000500"],
        &["PEXPIRETIME", "k"],
        &["EXPIRETIME", "k"],
        // NX / XX / GT / LT
        &["SET", "o", "v"],
        &["EXPIREAT", "o", "4000000000", "XX"],
        &["EXPIREAT", "o", "4000000000", "GT"],
        &["EXPIREAT", "o", "4000000000", "LT"],
        &["EXPIRETIME", "o"],
        &["EXPIREAT", "o", "4000000000", "NX"],
        &["EXPIREAT", "o", "4000000100", "NX"],
        &["EXPIREAT", "o", "4000000100", "XX"],
        &["EXPIREAT", "o", "4000000050", "GT"],
        &["EXPIREAT", "o", "4000000200", "GT"],
        &["EXPIREAT", "o", "4000000300", "LT"],
        &["EXPIREAT", "o", "4000000150", "LT"],
        &["EXPIRETIME", "o"],
        &["PEXPIREAT", "o", "4000000000000", "LT"],
        &["PEXPIRETIME", "o"],
        &["EXPIREAT", "o", "4000000000", "NX", "XX"],
        &["EXPIREAT", "o", "4000000000", "GT", "LT"],
        &["EXPIREAT", "o", "4000000000", "NX", "GT"],
        &["EXPIREAT", "o", "4000000000", "BOGUS"],
        &["EXPIRE", "o", "100", "XX"],
        &["EXPIRE", "o", "abc"],
        &["EXPIRE", "o", "9223372036854775807"],
        &["PEXPIRE", "o", "9223372036854775807"],
        &["EXPIRETIME", "o"],
        &["PERSIST", "o"],
        &["EXPIRE", "o", "100", "GT"],
        &["EXPIRE", "o", "100", "LT"],
        &["TTL", "o"],
        &["PERSIST", "o"],
        // Expiring in the past deletes.
        &["SET", "gone", "v"],
        &["EXPIRE", "gone", "-1"],
        &["EXISTS", "gone"],
        &["SET", "gone", "v"],
        &["EXPIREAT", "gone", "1"],
        &["GET", "gone"],
        &["SET", "gone", "v"],
        &["PEXPIRE", "gone", "0"],
        &["TTL", "gone"],
        // Overwrite clears the TTL; APPEND keeps it.
        &["SET", "t", "v", "EX", "100"],
        &["SET", "t", "w"],
        &["TTL", "t"],
        &["SET", "t", "v", "EXAT", "4000000000"],
        &["APPEND", "t", "x"],
        &["EXPIRETIME", "t"],
        &["INCR", "cnt"],
        &["EXPIREAT", "cnt", "4000000000"],
        &["INCR", "cnt"],
        &["EXPIRETIME", "cnt"],
    ]);
}

#[test]
fn short_expiry_really_expires() {
    // Only TTL-independent facts: after the key expired, it is gone.
    let cmds: &[&[&str]] = &[
        &["SET", "a", "v", "PX", "1"],
        &["SET", "b", "v"],
        &["PEXPIRE", "b", "1"],
        &["RPUSH", "l", "x"],
        &["PEXPIRE", "l", "1"],
    ];
    for srv in [tests::Server::slotd(&[]), tests::Server::redis(&[])] {
        let mut c = srv.raw();
        for cmd in cmds {
            c.cmd_str(cmd);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(c.cmd_str(&["GET", "a"]), b"$-1\r\n");
        assert_eq!(c.cmd_str(&["EXISTS", "a", "b", "l"]), b":0\r\n");
        assert_eq!(c.cmd_str(&["TTL", "b"]), b":-2\r\n");
        assert_eq!(c.cmd_str(&["LLEN", "l"]), b":0\r\n");
        assert_eq!(c.cmd_str(&["DBSIZE"]), b":0\r\n");
    }
}

#[test]
fn select_and_databases() {
    assert_same(&[
        &["SET", "k", "db0"],
        &["SELECT", "1"],
        &["GET", "k"],
        &["SET", "k", "db1"],
        &["DBSIZE"],
        &["SELECT", "0"],
        &["GET", "k"],
        &["SELECT", "16"],
        &["SELECT", "-1"],
        &["SELECT", "x"],
        &["MOVE", "k", "2"],
        &["SELECT", "2"],
        &["GET", "k"],
        &["SELECT", "0"],
        &["EXISTS", "k"],
        &["SWAPDB", "0", "1"],
        &["GET", "k"],
        &["FLUSHALL"],
        &["SELECT", "1"],
        &["DBSIZE"],
    ]);
}

#[test]
fn object_encoding() {
    assert_same(&[
        &["RPUSH", "l", "a", "b"],
        &["OBJECT", "ENCODING", "l"],
        &["SADD", "si", "1", "2", "3"],
        &["OBJECT", "ENCODING", "si"],
        &["SADD", "ss", "a", "b"],
        &["OBJECT", "ENCODING", "ss"],
        &["HSET", "h", "f", "v"],
        &["OBJECT", "ENCODING", "h"],
        &["ZADD", "z", "1", "a"],
        &["OBJECT", "ENCODING", "z"],
        &["SET", "s", "1"],
        &["OBJECT", "ENCODING", "s"],
        &["OBJECT", "ENCODING", "none"],
        &["OBJECT", "BOGUS", "s"],
    ]);
}
