//! Pub/sub on one core. Subscriptions live with the subscriber's
//! connection, on its core; PUBLISH asks every core to deliver to its own
//! subscribers and adds up the counts.

use crate::core::Core;
use crate::slab::Key;
use bytes::Bytes;
use engine::Reply;
use hashbrown::HashMap;

/// The three kinds of subscription.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

fn table(core: &mut Core, kind: Kind) -> &mut HashMap<Bytes, Vec<Key>> {
    match kind {
        Kind::Channel => &mut core.pubsub.channels,
        Kind::Pattern => &mut core.pubsub.patterns,
        Kind::Shard => &mut core.pubsub.shard_channels,
    }
}

fn push(core: &mut Core, key: Key, items: Vec<Reply>) {
    core.reply(key, &Reply::Push(items));
}

fn count(core: &Core, key: Key, kind: Kind) -> i64 {
    core.conns.get(key).map_or(0, |c| match kind {
        Kind::Shard => c.ssubs.len() as i64,
        _ => (c.subs.len() + c.psubs.len()) as i64,
    })
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE.
pub fn subscribe(core: &mut Core, key: Key, kind: Kind, names: Vec<Bytes>) {
    for n in names {
        let added = match core.conns.get_mut(key) {
            Some(c) => match kind {
                Kind::Channel => c.subs.insert(n.clone()),
                Kind::Pattern => c.psubs.insert(n.clone()),
                Kind::Shard => c.ssubs.insert(n.clone()),
            },
            None => return,
        };
        if added {
            table(core, kind).entry(n.clone()).or_default().push(key);
        }
        let c = count(core, key, kind);
        push(
            core,
            key,
            vec![
                Reply::bulk(kind.names().0.as_bytes()),
                Reply::Bulk(n),
                Reply::Int(c),
            ],
        );
    }
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE (all of that kind when
/// `names` is empty).
pub fn unsubscribe(core: &mut Core, key: Key, kind: Kind, names: Vec<Bytes>) {
    let names = if names.is_empty() {
        match core.conns.get(key) {
            Some(c) => match kind {
                Kind::Channel => c.subs.iter().cloned().collect(),
                Kind::Pattern => c.psubs.iter().cloned().collect(),
                Kind::Shard => c.ssubs.iter().cloned().collect(),
            },
            None => return,
        }
    } else {
        names
    };
    let verb = kind.names().1;
    if names.is_empty() {
        let c = count(core, key, kind);
        push(
            core,
            key,
            vec![Reply::bulk(verb.as_bytes()), Reply::Nil, Reply::Int(c)],
        );
        return;
    }
    for n in names {
        let removed = match core.conns.get_mut(key) {
            Some(c) => match kind {
                Kind::Channel => c.subs.remove(&n),
                Kind::Pattern => c.psubs.remove(&n),
                Kind::Shard => c.ssubs.remove(&n),
            },
            None => return,
        };
        if removed {
            let t = table(core, kind);
            if let Some(v) = t.get_mut(&n) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    t.remove(&n);
                }
            }
        }
        let c = count(core, key, kind);
        push(
            core,
            key,
            vec![Reply::bulk(verb.as_bytes()), Reply::Bulk(n), Reply::Int(c)],
        );
    }
}

/// Delivers a message to this core's subscribers; returns how many got it.
pub fn deliver(core: &mut Core, channel: &Bytes, message: &Bytes, sharded: bool) -> usize {
    let mut n = 0;
    let direct = if sharded {
        core.pubsub.shard_channels.get(channel).cloned()
    } else {
        core.pubsub.channels.get(channel).cloned()
    };
    let kind = if sharded { "smessage" } else { "message" };
    for key in direct.unwrap_or_default() {
        push(
            core,
            key,
            vec![
                Reply::bulk(kind.as_bytes()),
                Reply::Bulk(channel.clone()),
                Reply::Bulk(message.clone()),
            ],
        );
        n += 1;
    }
    if !sharded {
        let matching: Vec<(Bytes, Vec<Key>)> = core
            .pubsub
            .patterns
            .iter()
            .filter(|(p, _)| engine::glob::stringmatchlen(p, channel, false))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        for (p, keys) in matching {
            for key in keys {
                push(
                    core,
                    key,
                    vec![
                        Reply::bulk(b"pmessage"),
                        Reply::Bulk(p.clone()),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(message.clone()),
                    ],
                );
                n += 1;
            }
        }
    }
    n
}

/// This core's part of a PUBSUB subcommand.
pub fn query(core: &Core, sub: &str, args: &[Bytes]) -> Reply {
    let names = |m: &HashMap<Bytes, Vec<Key>>| -> Reply {
        let pat = args.first();
        Reply::Array(
            m.keys()
                .filter(|c| pat.is_none_or(|p| engine::glob::stringmatchlen(p, c, false)))
                .map(|c| Reply::Bulk(c.clone()))
                .collect(),
        )
    };
    let counts = |m: &HashMap<Bytes, Vec<Key>>| -> Reply {
        Reply::Array(
            args.iter()
                .map(|c| Reply::Int(m.get(c).map_or(0, |v| v.len() as i64)))
                .collect(),
        )
    };
    match sub {
        "channels" => names(&core.pubsub.channels),
        "shardchannels" => names(&core.pubsub.shard_channels),
        "numsub" => counts(&core.pubsub.channels),
        "shardnumsub" => counts(&core.pubsub.shard_channels),
        _ => Reply::Array(
            core.pubsub
                .patterns
                .keys()
                .map(|p| Reply::Bulk(p.clone()))
                .collect(),
        ),
    }
}
