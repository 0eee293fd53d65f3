//! Redis 7.0 commands slotd does not have yet, and the error each answers
//! instead of `unknown command`: a client that asks for a save, a
//! replication link or a cluster operation learns plainly that it did not
//! happen. They are not in the command table (COMMAND does not list them),
//! and each leaves this list when its feature is built.

const REPLICATION: &str = "coordinated failover is not built yet";

/// (command, why it is not there yet).
static UNBUILT: &[(&str, &str)] = &[("failover", REPLICATION)];

/// The error for command `name` when slotd knows it but does not have it
/// (`None` for a name it does not know at all).
pub fn error_for(name: &[u8]) -> Option<String> {
    let is = |n: &str| n.as_bytes().eq_ignore_ascii_case(name);
    UNBUILT.iter().find(|(n, _)| is(n)).map(|(n, why)| {
        format!(
            "ERR {} is not supported by slotd yet: {why}",
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
            error_for(b"Failover").unwrap(),
            "ERR FAILOVER is not supported by slotd yet: coordinated failover is not built yet"
        );
        assert_eq!(error_for(b"nosuch"), None);
        // Nothing here is in the command table: each leaves the list when
        // it is built.
        for (name, _) in UNBUILT {
            assert!(super::super::registry().lookup(name.as_bytes()).is_none());
        }
    }
}
