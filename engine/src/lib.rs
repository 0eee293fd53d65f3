//! # slotd engine
//!
//! The data plane as a library: synchronous, and free of sockets, files,
//! clocks, threads and runtimes. Time and randomness come in as arguments.
//!
//! # Layout
//! - [`resp`]: request parsing (RESP multibulk and inline), with limits.
//! - [`reply`]: reply values and their RESP2/RESP3 encoding.
//! - [`aof`]: the append-only file's manifest, records and the cut across
//!   cores after a crash.
//! - [`args`]: argument views ([`args::Args`]) and their owned form.
//! - [`slot`]: CRC16 hash slots and the slot → core rule.
//! - [`value`], [`list`], [`hashval`], [`setval`], [`zset`], [`packed`]:
//!   value types and their packed forms.
//! - [`db`]: one database: a dictionary per slot, TTL bookkeeping;
//!   [`entry`]: a key's allocation.
//! - [`dict`]: the per-slot dictionary (tagged pointers, prefetchable).
//! - [`digest`]: Redis's SHA1 dataset digest (DEBUG DIGEST, DIGEST-VALUE).
//! - [`evict`]: eviction policies and LRU/LFU bookkeeping.
//! - [`notify`]: keyspace notifications' classes and events.
//! - [`shard`]: what one core owns: databases, expiry, WATCH versions, the
//!   write log.
//! - [`snapshot`]: a point-in-time image of a shard, slot by slot.
//! - [`cmd`]: the command table and one module per command family.
//! - [`error`]: Redis 7.0's error texts.
//! - [`script`]: Lua scripts as Redis embeds them (`mlua`, Lua 5.1).
//! - [`rewrite`]: a value as the commands that rebuild it (write log).
//! - [`ldouble`]: Redis's `long double` INCRBYFLOAT arithmetic (a tiny C
//!   file, `csrc/ldouble.c`: x87 80-bit precision Rust has no type for).

pub mod aof;
pub mod args;
pub mod cmd;
pub mod db;
pub mod dict;
pub mod digest;
pub mod entry;
pub mod error;
pub mod evict;
pub mod geo;
pub mod glob;
pub mod hashval;
pub mod hll;
pub mod lazyfree;
pub mod ldouble;
pub mod list;
pub mod memsize;
pub mod notify;
pub mod packed;
pub mod rdb;
pub mod reply;
pub mod resp;
pub mod rewrite;
pub mod script;
pub mod setval;
pub mod shard;
pub mod slot;
pub mod slowlog;
pub mod snapshot;
pub mod stream;
pub mod tracking;
pub mod value;
pub mod writelog;
pub mod zset;

pub use args::{Args, OwnedArgs};
pub use reply::{Encoded, Reply};
pub use shard::Shard;

/// The Redis version slotd answers as (INFO, HELLO, Lua's `redis.REDIS_VERSION`).
pub const REDIS_VERSION: &str = "7.0.15";

#[cfg(test)]
mod fuzz_tests;
