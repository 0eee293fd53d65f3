//! Keyspace notifications (Redis 7.0's `notify.c`): the event classes of
//! `notify-keyspace-events`, their string form both ways, and the events
//! a shard collects for the node to publish.
//!
//! A command calls [`crate::shard::Shard::notify`] where Redis calls
//! `notifyKeyspaceEvent`; with notifications off (the default) that is one
//! test of a flag word. The node takes the collected events after the
//! command and publishes each to `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>`.

use bytes::Bytes;

/// `K`: publish to `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish to `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: DEL, EXPIRE, RENAME, ... (type-independent commands).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read missed (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (slotd has no modules; kept so the string
/// round-trips as in Redis).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The error Redis gives for a character that names no class.
pub const BAD_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses a class string (`keyspaceEventsStringToFlags`); `None` for a
/// character that names no class.
pub fn parse(classes: &str) -> Option<u32> {
    let mut flags = 0;
    for c in classes.chars() {
        flags |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// The normalised class string CONFIG GET shows
/// (`keyspaceEventsFlagsToString`'s order).
pub fn to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The classes a shard collects events of for `flags`: none unless `K`
/// or `E` says where to publish them (Redis then publishes nothing).
pub fn effective(flags: u32) -> u32 {
    if flags & (KEYSPACE | KEYEVENT) == 0 {
        0
    } else {
        flags
    }
}

/// One event, as Redis's `notifyKeyspaceEvent` receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: &'static str,
    pub db: u16,
    pub key: Bytes,
}

impl Event {
    /// The (channel, message) pairs to publish under `flags`, in Redis's
    /// order: the keyspace channel first, then the keyevent one.
    pub fn messages(&self, flags: u32, out: &mut Vec<(Bytes, Bytes)>) {
        let event = Bytes::from_static(self.event.as_bytes());
        if flags & KEYSPACE != 0 {
            let mut ch = format!("__keyspace@{}__:", self.db).into_bytes();
            ch.extend_from_slice(&self.key);
            out.push((Bytes::from(ch), event.clone()));
        }
        if flags & KEYEVENT != 0 {
            let ch = format!("__keyevent@{}__:{}", self.db, self.event);
            out.push((Bytes::from(ch), self.key.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_strings_round_trip_as_redis_shows_them() {
        assert_eq!(parse("KEA").map(to_string).as_deref(), Some("AKE"));
        assert_eq!(parse("Elg$").map(to_string).as_deref(), Some("g$lE"));
        assert_eq!(parse("").map(to_string).as_deref(), Some(""));
        assert_eq!(parse("mnKtx").map(to_string).as_deref(), Some("xtnKm"));
        assert_eq!(parse("g$lshzxetd").map(to_string).as_deref(), Some("A"));
        assert_eq!(parse("KEq"), None);
        assert_eq!(effective(parse("A").unwrap()), 0);
        assert_eq!(effective(parse("Kx").unwrap()), KEYSPACE | EXPIRED);
    }

    #[test]
    fn messages_in_redis_order() {
        let e = Event {
            event: "set",
            db: 3,
            key: Bytes::from_static(b"k"),
        };
        let mut out = Vec::new();
        e.messages(KEYSPACE | KEYEVENT, &mut out);
        assert_eq!(
            out,
            vec![
                (
                    Bytes::from_static(b"__keyspace@3__:k"),
                    Bytes::from_static(b"set")
                ),
                (
                    Bytes::from_static(b"__keyevent@3__:set"),
                    Bytes::from_static(b"k")
                ),
            ]
        );
    }
}
