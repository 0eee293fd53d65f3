//! The append-only file as bytes: Redis 7.0's multi-part AOF with slotd's
//! per-core extensions. Pure functions, no I/O: the node reads the files
//! and hands their bytes here.
//!
//! - [`manifest`]: the manifest's grammar (Redis's `aofLoadManifestFromFile`
//!   plus the `core`, `cores`, `slots` and `offset` keys slotd adds).
//! - [`scan`]: RESP commands and `#` annotations of a base or incr file,
//!   read the way `redis-check-aof` reads them (same checks, same error
//!   texts); [`scan::index`] also collects slotd's `#D:` dependencies and
//!   the MULTI/EXEC blocks.
//! - [`cut`]: the consistent cut across cores after a crash and the order
//!   in which the kept records replay.

pub mod cut;
pub mod manifest;
pub mod scan;
