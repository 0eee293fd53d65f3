//! # mesh: how cores work together
//!
//! Above `io`. Messages between cores and the inboxes and futex wake-ups
//! that carry them ([`Mesh`], [`Msg`], [`Request`], [`Response`]); each
//! core's small task executor and request/answer futures ([`Executor`],
//! [`Rpc`], a finished task's [`TaskDone`]); where a command's keys live
//! ([`route`]); and the slow paths written as tasks ([`flows`]: a command
//! on another core, multi-key commands under ordered shard locks, fan-outs,
//! pipelines that cross cores, WATCH, MULTI/EXEC, PUBLISH; [`migrate`]:
//! MIGRATE, its network I/O on a thread of its own; [`script`]: scripts
//! that may reach any core, under every core's lock, their Lua on a thread
//! of its own; [`respread`]: cluster mode's moves of slots between cores).
//!
//! Nothing here touches a core's keyspace or connections: a task only
//! sends requests and awaits answers; the `shard` room serves them.

mod bus;
pub mod flows;
pub mod migrate;
mod msg;
pub mod respread;
mod route;
pub mod script;
mod slots;
mod task;

pub use bus::{Ask, Bus};

/// The answer to a write that reached a core after it paused its writers
/// for a manual failover (it was sent before the pause). Cluster clients
/// retry on TRYAGAIN, and find the slot moved by then.
pub const WRITES_PAUSED: &str = "TRYAGAIN Writes are paused for a manual failover";
pub use crate::io::ClientType;
pub use msg::{
    add_need, counted, AdminQuery, CmdCount, CoreStats, KillFilter, Mesh, Msg, Pipeline, Request,
    Response, Seg, Track, TxId, NOT_PARSED, STAT_TIMED_EVERY,
};
pub use route::{parse_db, route, Route};
pub use slots::SlotTable;
pub use task::{Effect, Executor, Rpc, TaskDone};
