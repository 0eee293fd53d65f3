//! The `zset` command family.

use super::Spec;

/// The zset family's table.
pub static COMMANDS: &[Spec] = &[];
