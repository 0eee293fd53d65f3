//! Redis 7.0 commands slotd leaves out (ARCHITECTURE.md, "Commands left
//! out"), and the error each answers instead of `unknown command`: a
//! client learns plainly that it did not happen. They are not in the
//! command table (COMMAND does not list them).

/// (command, why slotd does not have it).
static UNBUILT: &[(&str, &str)] = &[
    (
        "acl",
        "users and permissions beyond the default user are not built",
    ),
    ("module", "Redis modules cannot be loaded into slotd"),
    (
        "failover",
        "coordinated failover is not built; use REPLICAOF, or CLUSTER FAILOVER in cluster mode",
    ),
];

/// The error for command `name` when slotd knows it but does not have it
/// (`None` for a name it does not know at all).
pub fn error_for(name: &[u8]) -> Option<String> {
    let is = |n: &str| n.as_bytes().eq_ignore_ascii_case(name);
    UNBUILT.iter().find(|(n, _)| is(n)).map(|(n, why)| {
        format!(
            "ERR {} is not supported by slotd: {why}",
            n.to_ascii_uppercase()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbuilt_commands_say_so() {
        assert_eq!(
            error_for(b"Module").unwrap(),
            "ERR MODULE is not supported by slotd: Redis modules cannot be loaded into slotd"
        );
        assert_eq!(error_for(b"nosuch"), None);
        // Nothing here is in the command table.
        for (name, _) in UNBUILT {
            assert!(super::super::registry().lookup(name.as_bytes()).is_none());
        }
    }
}
