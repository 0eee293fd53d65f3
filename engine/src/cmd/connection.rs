//! Connection commands. Most change the client's own state (database,
//! protocol, name, transaction, subscriptions), which lives in the node, so
//! they are listed here with the NODE flag and implemented there.

use super::{flags::*, Ctx, Spec};
use crate::reply::Reply;

/// The connection family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("ping", -1, FAST | STALE, (0, 0, 0), ping, "connection"),
    Spec::new("echo", 2, FAST, (0, 0, 0), echo, "connection"),
    Spec::node(
        "hello",
        -1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
    ),
    Spec::node(
        "auth",
        -2,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
    ),
    Spec::node("select", 2, FAST | LOADING | STALE, (0, 0, 0), "connection"),
    Spec::node(
        "quit",
        -1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
    ),
    Spec::node(
        "reset",
        1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
    ),
    Spec::node(
        "client",
        -2,
        NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
    ),
    // Redis Cluster's commands: the node answers them (a standalone node
    // with Redis's "cluster support disabled" error).
    Spec::node("cluster", -2, 0, (0, 0, 0), "cluster"),
    Spec::node("readonly", 1, FAST | LOADING | STALE, (0, 0, 0), "cluster"),
    Spec::node("readwrite", 1, FAST | LOADING | STALE, (0, 0, 0), "cluster"),
    Spec::node("asking", 1, FAST, (0, 0, 0), "cluster"),
    Spec::node(
        "multi",
        1,
        FAST | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "transactions",
    ),
    Spec::node(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "transactions",
    ),
    Spec::node(
        "discard",
        1,
        FAST | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "transactions",
    ),
    Spec::node(
        "watch",
        -2,
        FAST | NOSCRIPT | LOADING | STALE | NO_MULTI,
        (1, -1, 1),
        "transactions",
    ),
    Spec::node(
        "unwatch",
        1,
        FAST | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "transactions",
    ),
    Spec::node(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
        "pubsub",
    ),
    Spec::node(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
        "pubsub",
    ),
    Spec::node(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
        "pubsub",
    ),
    Spec::node(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
        "pubsub",
    ),
    Spec::node(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (1, -1, 1),
        "pubsub",
    ),
    Spec::node(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (1, -1, 1),
        "pubsub",
    ),
    Spec::node(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        (0, 0, 0),
        "pubsub",
    ),
    Spec::node(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        (1, 1, 1),
        "pubsub",
    ),
    Spec::node("pubsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), "pubsub"),
];

/// ```text
/// PING [message]
/// ```
/// Ping the server.
fn ping(ctx: &mut Ctx) -> Reply {
    match ctx.args.len() {
        1 => Reply::status("PONG"),
        2 => Reply::bulk(ctx.args.get(1)),
        _ => Reply::Error(crate::error::wrong_arity("ping").into()),
    }
}

/// ```text
/// ECHO message
/// ```
/// Echo the given string.
fn echo(ctx: &mut Ctx) -> Reply {
    Reply::bulk(ctx.args.get(1))
}
