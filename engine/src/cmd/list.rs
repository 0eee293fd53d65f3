//! The `list` command family.

use super::Spec;

/// The list family's table.
pub static COMMANDS: &[Spec] = &[];
