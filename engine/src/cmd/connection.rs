//! Connection commands. Most change the client's own state (database,
//! protocol, name, transaction, subscriptions), which lives in the node, so
//! they are listed here with the NODE flag and implemented there.

use super::{flags::*, Ctx, Spec};
use crate::reply::Reply;

/// The connection family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("ping", -1, FAST | STALE, (0, 0, 0), ping),
    Spec::new("echo", 2, FAST, (0, 0, 0), echo),
    Spec::node(
        "hello",
        -1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
    ),
    Spec::node(
        "auth",
        -2,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
    ),
    Spec::node("select", 2, FAST | LOADING | STALE, (0, 0, 0)),
    Spec::node(
        "quit",
        -1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
    ),
    Spec::node(
        "reset",
        1,
        FAST | NO_AUTH | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
    ),
    Spec::node("client", -2, NOSCRIPT | LOADING | STALE, (0, 0, 0)).subcommands(),
    // Redis Cluster's commands: the node answers them (a standalone node
    // with Redis's "cluster support disabled" error).
    Spec::node("cluster", -2, 0, (0, 0, 0)).subcommands(),
    Spec::node("readonly", 1, FAST | LOADING | STALE, (0, 0, 0)),
    Spec::node("readwrite", 1, FAST | LOADING | STALE, (0, 0, 0)),
    Spec::node("asking", 1, FAST, (0, 0, 0)),
    Spec::node("multi", 1, FAST | NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node("exec", 1, NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node("discard", 1, FAST | NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node(
        "watch",
        -2,
        FAST | NOSCRIPT | LOADING | STALE | NO_MULTI,
        (1, -1, 1),
    ),
    Spec::node("unwatch", 1, FAST | NOSCRIPT | LOADING | STALE, (0, 0, 0)),
    Spec::node(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
    ),
    Spec::node(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
    ),
    Spec::node(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
    ),
    Spec::node(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (0, 0, 0),
    ),
    Spec::node(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (1, -1, 1),
    ),
    Spec::node(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_OK,
        (1, -1, 1),
    ),
    Spec::node("publish", 3, PUBSUB | LOADING | STALE | FAST, (0, 0, 0)),
    Spec::node("spublish", 3, PUBSUB | LOADING | STALE | FAST, (1, 1, 1)),
    Spec::node("pubsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0)).subcommands(),
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
