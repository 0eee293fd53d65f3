//! The `keys` command family.

use super::Spec;

/// The keys family's table.
pub static COMMANDS: &[Spec] = &[];
