//! # io: the machinery bytes travel through
//!
//! Lowest room of the node (it uses only `log`): a core's io_uring
//! ([`Ring`]: set-up, submission, registered files, the provided-buffer
//! ring receives fill), sockets (listening, options, peer names, protected
//! mode, the open files limit), connection state and buffers ([`Conn`]),
//! and the generational slab connections and tasks are kept in.
//!
//! API: [`Ring`], [`user_data`]/[`split_user_data`], [`Conn`]/[`Wait`]
//! (and [`Moved`], a connection's state on its way to another core),
//! [`Slab`]/[`Key`], and the socket helpers of [`net`]. Nothing here
//! knows about commands, cores or messages.

mod bufring;
mod conn;
pub mod net;
mod ring;
mod slab;

pub use conn::Tracking;
pub use conn::{
    BigArgs, ClientType, Conn, Moved, SendVec, Wait, BUF_KEEP, IDLE_FREE_MS, INPUT_AHEAD_MAX,
    MOVE_AFTER, MOVE_EVERY_MS, RBUF_KEEP, SEND_PIECES,
};
pub use net::adjust_open_files_limit;
pub use ring::{split_user_data, user_data, Ring};
pub use slab::{Key, Slab};
