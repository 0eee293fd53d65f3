//! The `hash` command family.

use super::Spec;

/// The hash family's table.
pub static COMMANDS: &[Spec] = &[];
