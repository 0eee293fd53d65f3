//! The `set` command family.

use super::Spec;

/// The set family's table.
pub static COMMANDS: &[Spec] = &[];
