//! # commands: what a client's request does
//!
//! Above `shard`. A request read top to bottom: [`process`] parses the
//! commands buffered on a connection, `dispatch` checks each one (auth,
//! arity, pub/sub context, MULTI queueing) and routes it by its keys:
//! inline on this core's shard (the fast path), or as a task of the `mesh`
//! room (another core, several cores, every core, or a pipeline that
//! crosses cores). Commands the node itself implements (connection state,
//! transactions, pub/sub, CLIENT, CONFIG, COMMAND, DEBUG, INFO) are in
//! `node` and `info`.
//!
//! API: [`process`] and [`REDIS_VERSION`].

mod cluster;
mod debug;
mod dispatch;
mod info;
mod memory;
mod node;
mod observe;
mod request;
mod sync;
mod tracking;

pub use node::REDIS_VERSION;
pub use request::process;
