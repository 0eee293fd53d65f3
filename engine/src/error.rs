//! Redis 7.0's error texts, shared by every command family.

/// A key holds another type than the command works on.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Generic syntax error.
pub const SYNTAX: &str = "ERR syntax error";
/// An argument that must be an integer is not.
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
/// An argument that must be a float is not.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// INCR-family overflow.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
/// The key does not exist (RENAME, LSET, ...).
pub const NO_KEY: &str = "ERR no such key";
/// LSET / index out of range.
pub const OUT_OF_RANGE: &str = "ERR index out of range";
/// A count or index must be positive.
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
/// Bad TTL in SET / EXPIRE family.
pub const INVALID_EXPIRE: &str = "ERR invalid expire time in 'set' command";
/// A timeout argument is not a number.
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
/// A negative timeout.
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// `ERR wrong number of arguments for '<cmd>' command`.
pub fn wrong_arity(cmd: &str) -> String {
    format!("ERR wrong number of arguments for '{cmd}' command")
}

/// Redis 7.0's unknown-command error, quoting the first arguments.
pub fn unknown_command<'a>(name: &[u8], args: impl Iterator<Item = &'a [u8]>) -> String {
    let mut s = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    let mut room = 128usize;
    for a in args {
        if room == 0 {
            break;
        }
        let take = a.len().min(room);
        s.push('\'');
        s.push_str(&String::from_utf8_lossy(&a[..take]));
        s.push_str("' ");
        room -= take;
    }
    s
}

/// Redis 7.0's unknown-subcommand error.
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        cmd.to_ascii_uppercase()
    )
}

/// Redis's `addReplySubcommandSyntaxError` (DEBUG and others whose
/// subcommands check their own arity).
pub fn subcommand_syntax(sub: &[u8], cmd: &str) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        cmd.to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn texts() {
        assert_eq!(
            super::unknown_command(b"foo", [&b"a"[..], b"b"].into_iter()),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            super::wrong_arity("get"),
            "ERR wrong number of arguments for 'get' command"
        );
    }
}
