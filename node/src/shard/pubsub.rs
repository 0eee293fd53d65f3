//! Pub/sub on one core. Subscriptions live with the subscriber's
//! connection, on its core; PUBLISH asks every core to deliver to its own
//! subscribers and adds up the counts. Keyspace notifications
//! ([`Shard::publish_events`]) go the same way, without a count: the
//! events of a command leave as one message per core that has
//! subscribers, before any message or reply that could reveal its writes.

use super::Shard;
use crate::io::Key;
use bytes::Bytes;
use engine::Reply;
use hashbrown::HashMap;

/// The pub/sub subscribers on this core.
#[derive(Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, Vec<Key>>,
    pub patterns: HashMap<Bytes, Vec<Key>>,
    pub shard_channels: HashMap<Bytes, Vec<Key>>,
}

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

fn table(shard: &mut Shard, kind: Kind) -> &mut HashMap<Bytes, Vec<Key>> {
    match kind {
        Kind::Channel => &mut shard.pubsub.channels,
        Kind::Pattern => &mut shard.pubsub.patterns,
        Kind::Shard => &mut shard.pubsub.shard_channels,
    }
}

/// Tells the other cores how many channel and pattern subscriptions this
/// core has (keyspace notifications skip cores without any).
fn count_subscriptions(shard: &Shard) {
    let n = shard.pubsub.channels.len() + shard.pubsub.patterns.len();
    shard.mesh.subscriptions[shard.id].store(n, std::sync::atomic::Ordering::Release);
}

impl Shard {
    /// Publishes the keyspace events the keyspace collected (Redis's
    /// `notifyKeyspaceEvent`): delivered here at once, and to each other
    /// core with subscribers as one message. Called after each command,
    /// before any message or direct reply leaves ([`Shard::send_out`]) and
    /// at the end of a turn (the cron's expiry and eviction), so
    /// subscribers see events in the order their writes were made.
    /// In cluster mode only this node's subscribers get them, as in Redis.
    pub fn publish_events(&mut self) {
        let events = self.engine.take_events();
        let flags = self.engine.notify_flags;
        let subs = &self.mesh.subscriptions;
        if events.is_empty()
            || !subs
                .iter()
                .any(|n| n.load(std::sync::atomic::Ordering::Acquire) > 0)
        {
            return;
        }
        let mut msgs = Vec::with_capacity(events.len() * 2);
        for e in &events {
            e.messages(flags, &mut msgs);
        }
        let msgs = std::sync::Arc::new(msgs);
        for c in 0..self.cores {
            if c != self.id
                && self.mesh.subscriptions[c].load(std::sync::atomic::Ordering::Acquire) > 0
            {
                self.rpc.tell(c, crate::mesh::Request::Notify(msgs.clone()));
            }
        }
        if !self.pubsub.channels.is_empty() || !self.pubsub.patterns.is_empty() {
            for (channel, message) in msgs.iter() {
                deliver(self, channel, message, false);
            }
        }
    }
}

fn push(shard: &mut Shard, key: Key, items: Vec<Reply>) {
    shard.reply(key, &Reply::Push(items));
}

fn count(shard: &Shard, key: Key, kind: Kind) -> i64 {
    shard.conns.get(key).map_or(0, |c| match kind {
        Kind::Shard => c.ssubs.len() as i64,
        _ => (c.subs.len() + c.psubs.len()) as i64,
    })
}

/// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE.
pub fn subscribe(shard: &mut Shard, key: Key, kind: Kind, names: Vec<Bytes>) {
    for n in names {
        let added = match shard.conns.get_mut(key) {
            Some(c) => match kind {
                Kind::Channel => c.subs.insert(n.clone()),
                Kind::Pattern => c.psubs.insert(n.clone()),
                Kind::Shard => c.ssubs.insert(n.clone()),
            },
            None => return,
        };
        if added {
            table(shard, kind).entry(n.clone()).or_default().push(key);
            count_subscriptions(shard);
        }
        let c = count(shard, key, kind);
        push(
            shard,
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
pub fn unsubscribe(shard: &mut Shard, key: Key, kind: Kind, names: Vec<Bytes>) {
    let names = if names.is_empty() {
        match shard.conns.get(key) {
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
        let c = count(shard, key, kind);
        push(
            shard,
            key,
            vec![Reply::bulk(verb.as_bytes()), Reply::Nil, Reply::Int(c)],
        );
        return;
    }
    for n in names {
        let removed = match shard.conns.get_mut(key) {
            Some(c) => match kind {
                Kind::Channel => c.subs.remove(&n),
                Kind::Pattern => c.psubs.remove(&n),
                Kind::Shard => c.ssubs.remove(&n),
            },
            None => return,
        };
        if removed {
            let t = table(shard, kind);
            if let Some(v) = t.get_mut(&n) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    t.remove(&n);
                }
            }
            count_subscriptions(shard);
        }
        let c = count(shard, key, kind);
        push(
            shard,
            key,
            vec![Reply::bulk(verb.as_bytes()), Reply::Bulk(n), Reply::Int(c)],
        );
    }
}

/// Delivers a message to this core's subscribers; returns how many got it.
pub fn deliver(shard: &mut Shard, channel: &Bytes, message: &Bytes, sharded: bool) -> usize {
    let mut n = 0;
    let direct = if sharded {
        shard.pubsub.shard_channels.get(channel).cloned()
    } else {
        shard.pubsub.channels.get(channel).cloned()
    };
    let kind = if sharded { "smessage" } else { "message" };
    for key in direct.unwrap_or_default() {
        push(
            shard,
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
        let matching: Vec<(Bytes, Vec<Key>)> = shard
            .pubsub
            .patterns
            .iter()
            .filter(|(p, _)| engine::glob::stringmatchlen(p, channel, false))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        for (p, keys) in matching {
            for key in keys {
                push(
                    shard,
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
pub fn query(shard: &Shard, sub: &str, args: &[Bytes]) -> Reply {
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
        "channels" => names(&shard.pubsub.channels),
        "shardchannels" => names(&shard.pubsub.shard_channels),
        "numsub" => counts(&shard.pubsub.channels),
        "shardnumsub" => counts(&shard.pubsub.shard_channels),
        _ => Reply::Array(
            shard
                .pubsub
                .patterns
                .keys()
                .map(|p| Reply::Bulk(p.clone()))
                .collect(),
        ),
    }
}

/// Drops every subscription of connection `key` (it is closing).
pub(super) fn forget(shard: &mut Shard, key: Key) {
    let Some(c) = shard.conns.get_mut(key) else {
        return;
    };
    let subs: Vec<Bytes> = c.subs.drain().collect();
    let psubs: Vec<Bytes> = c.psubs.drain().collect();
    let ssubs: Vec<Bytes> = c.ssubs.drain().collect();
    for (map, names) in [
        (&mut shard.pubsub.channels, subs),
        (&mut shard.pubsub.patterns, psubs),
        (&mut shard.pubsub.shard_channels, ssubs),
    ] {
        for n in names {
            if let Some(v) = map.get_mut(&n) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    map.remove(&n);
                }
            }
        }
    }
    count_subscriptions(shard);
}
