//! Lazy freeing (Redis's `lazyfree.c`): a value whose freeing takes many
//! steps is not dropped by the command that deletes it but set aside as
//! [`Garbage`], which the node hands to a thread that frees it, so the
//! core's other clients see no pause. Which deletions may do so is what the
//! `lazyfree-lazy-*` directives choose ([`Settings`]); UNLINK and
//! `FLUSHALL ASYNC` always do.
//!
//! The engine only decides and collects ([`crate::shard::Shard::take_garbage`]);
//! it starts no thread.

use crate::db::{Db, Node};
use crate::value::Value;

/// Redis's `LAZYFREE_THRESHOLD`: a value is freed lazily when its effort
/// ([`effort`]) is above this.
pub const THRESHOLD: usize = 64;

/// Why a value is being freed: picks the directive that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// UNLINK: always lazily.
    Unlink,
    /// DEL (`lazyfree-lazy-user-del`).
    UserDel,
    /// An implicit delete or overwrite: SET over a value, RENAME over a
    /// key, a STORE destination (`lazyfree-lazy-server-del`).
    ServerDel,
    /// An expired key (`lazyfree-lazy-expire`).
    Expire,
    /// An evicted key (`lazyfree-lazy-eviction`).
    Eviction,
}

/// The `lazyfree-lazy-*` directives (all `no` by default, as in Redis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub eviction: bool,
    pub expire: bool,
    pub server_del: bool,
    pub user_del: bool,
    /// FLUSHALL/FLUSHDB without ASYNC or SYNC.
    pub user_flush: bool,
}

impl Settings {
    /// Every deletion lazy (a scratch keyspace's copies).
    pub const ALL: Settings = Settings {
        eviction: true,
        expire: true,
        server_del: true,
        user_del: true,
        user_flush: true,
    };

    /// Whether a deletion for `why` may be lazy.
    pub fn lazy(&self, why: Why) -> bool {
        match why {
            Why::Unlink => true,
            Why::UserDel => self.user_del,
            Why::ServerDel => self.server_del,
            Why::Expire => self.expire,
            Why::Eviction => self.eviction,
        }
    }
}

/// Bytes of a string that cost about one step to free: above
/// [`THRESHOLD`] of them (1 MiB) a string is freed lazily too.
pub const STRING_STEP: usize = 16 * 1024;

/// How many steps freeing `v` takes, as Redis's `lazyfreeGetFreeEffort`
/// counts them for the encoding Redis would use: the elements of a
/// `hashtable` or `skiplist`, the nodes of a list; 1 for packed forms (one
/// allocation each).
///
/// Strings differ from Redis, which frees them all at once: a big one is
/// one free, but returning its pages to the system costs about 0.1 ms per
/// MiB here (DEL of a 200 MB string: 12-30 ms on the core, measured with a
/// client timing DEL after SET on a one-core slotd), as much as a hash of
/// thousands of fields. So a string counts one step per [`STRING_STEP`]
/// bytes, and from 1 MiB up it goes to the lazy free thread.
pub fn effort(v: &Value) -> usize {
    match v {
        Value::Str(s) => 1 + s.len() / STRING_STEP,
        Value::List(l) => l.chunk_count(),
        Value::Hash(h) if !h.is_packed() => h.len(),
        Value::Set(s) if s.encoding_name() == "hashtable" => s.len(),
        Value::ZSet(z) if !z.is_packed() => z.len(),
        // Redis: the tree's nodes, plus each group and its PEL.
        Value::Stream(s) => {
            s.rax_nodes() + s.groups.values().map(|g| 1 + g.pel.len()).sum::<usize>()
        }
        _ => 1,
    }
}

/// Something to free off the core, with how many objects INFO counts for
/// it (`lazyfree_pending_objects` until freed, then `lazyfreed_objects`).
pub struct Garbage {
    /// Objects as Redis counts them: 1 per value, a flushed database's
    /// keys; 0 for slotd's internal copies, which Redis does not have.
    pub objects: u64,
    item: Box<dyn std::any::Any + Send>,
}

impl Garbage {
    /// One value.
    pub fn value(v: Value) -> Garbage {
        Garbage::new(1, v)
    }

    /// A key's whole entry.
    pub fn entry(n: Node) -> Garbage {
        Garbage::new(1, n)
    }

    /// Whole databases (FLUSHALL/FLUSHDB ASYNC), counted by their keys.
    pub fn dbs(dbs: Vec<Db>) -> Garbage {
        let keys = dbs.iter().map(|d| d.len() as u64).sum();
        Garbage::new(keys, dbs)
    }

    /// Anything else big (a connection's buffers), not counted by INFO.
    pub fn uncounted(item: impl Send + 'static) -> Garbage {
        Garbage::new(0, item)
    }

    fn new(objects: u64, item: impl Send + 'static) -> Garbage {
        Garbage {
            objects,
            item: Box::new(item),
        }
    }

    /// Does not count this for INFO (copies slotd makes internally).
    pub fn not_counted(mut self) -> Garbage {
        self.objects = 0;
        self
    }

    /// Frees it (on whatever thread calls this); returns its object count.
    pub fn free(self) -> u64 {
        drop(self.item);
        self.objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::t;
    use crate::reply::Reply;
    use crate::shard::Shard;
    use crate::value::StrData;

    /// A hash of `fields` fields in a hashtable (one value is too long
    /// for a listpack), so its effort is `fields`.
    fn big_hash(s: &mut Shard, key: &str, fields: usize) {
        for i in 1..fields {
            t(s, 0, &format!("HSET {key} f{i} v"));
        }
        t(s, 0, &format!("HSET {key} long {}", "x".repeat(100)));
    }

    fn freed(s: &mut Shard) -> Vec<u64> {
        s.take_garbage().into_iter().map(Garbage::free).collect()
    }

    #[test]
    fn effort_follows_redis_encodings() {
        let mut s = Shard::new(1, 1);
        for i in 0..100 {
            t(&mut s, 0, &format!("HSET small f{i} v"));
        }
        big_hash(&mut s, "big", 200);
        t(&mut s, 0, "SADD ints 1 2 3");
        t(&mut s, 0, "SET str x");
        let e = |s: &Shard, k: &str| effort(&s.dbs[0].get(k.as_bytes()).unwrap().value);
        assert_eq!(e(&s, "small"), 1, "listpack hash: one allocation");
        assert_eq!(e(&s, "big"), 200);
        assert_eq!(e(&s, "ints"), 1);
        assert_eq!(e(&s, "str"), 1);
        let str_of = |n: usize| Value::Str(StrData::from(vec![0u8; n]));
        assert_eq!(effort(&str_of(16 * 1024 - 1)), 1);
        assert_eq!(
            effort(&str_of((1 << 20) - 1)),
            THRESHOLD,
            "eager below 1 MiB"
        );
        assert!(effort(&str_of(1 << 20)) > THRESHOLD, "lazy from 1 MiB");
    }

    #[test]
    fn unlink_sets_aside_only_what_is_above_the_threshold() {
        let mut s = Shard::new(1, 1);
        big_hash(&mut s, "at", 64);
        big_hash(&mut s, "above", 65);
        assert_eq!(t(&mut s, 0, "UNLINK at above nosuch"), Reply::Int(2));
        assert_eq!(freed(&mut s), vec![1], "only the one above the threshold");
        assert_eq!(s.key_count(), 0);
    }

    #[test]
    fn each_directive_routes_its_deletions() {
        let mut s = Shard::new(16, 1);
        big_hash(&mut s, "h", 100);
        assert_eq!(t(&mut s, 0, "DEL h"), Reply::Int(1));
        assert!(freed(&mut s).is_empty(), "DEL is eager by default");

        s.lazy.user_del = true;
        big_hash(&mut s, "h", 100);
        assert_eq!(t(&mut s, 0, "DEL h"), Reply::Int(1));
        assert_eq!(freed(&mut s), vec![1]);

        // Implicit deletes: SET and RENAME over a big value.
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "SET h x");
        assert!(freed(&mut s).is_empty());
        s.lazy.server_del = true;
        t(&mut s, 0, "DEL h");
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "SET h x");
        t(&mut s, 0, "DEL h");
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "SET k y");
        assert_eq!(t(&mut s, 0, "RENAME k h"), Reply::Ok);
        assert_eq!(freed(&mut s), vec![1, 1]);
        assert_eq!(t(&mut s, 0, "GET h"), crate::cmd::bulk("y"));

        // Expiry, lazy (on lookup) and active.
        t(&mut s, 0, "DEL h");
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "PEXPIRE h 10");
        assert_eq!(t(&mut s, 20, "EXISTS h"), Reply::Int(0));
        assert!(freed(&mut s).is_empty());
        s.lazy.expire = true;
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "PEXPIRE h 10");
        assert_eq!(t(&mut s, 20, "EXISTS h"), Reply::Int(0));
        big_hash(&mut s, "h", 100);
        t(&mut s, 0, "PEXPIRE h 10");
        assert_eq!(s.active_expire(0, 20, 20), (1, 1));
        assert_eq!(freed(&mut s), vec![1, 1]);

        // Eviction.
        s.evict.policy = crate::evict::Policy::AllKeysRandom;
        big_hash(&mut s, "h", 100);
        assert!(s.evict_one(0));
        assert!(freed(&mut s).is_empty());
        s.lazy.eviction = true;
        big_hash(&mut s, "h", 100);
        assert!(s.evict_one(0));
        assert_eq!(freed(&mut s), vec![1]);
        assert_eq!(s.key_count(), 0);
    }

    #[test]
    fn flushes_hand_off_whole_databases() {
        let mut s = Shard::new(16, 1);
        let fill = |s: &mut Shard| {
            t(s, 0, "MSET a 1 b 2 c 3");
            run_db(s, 1, "SET d 4");
        };
        fn run_db(s: &mut Shard, db: usize, line: &str) {
            let parts: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            crate::cmd::run(s, db, 0, &parts);
        }
        fill(&mut s);
        assert_eq!(t(&mut s, 0, "FLUSHALL ASYNC"), Reply::Ok);
        assert_eq!(s.key_count(), 0);
        assert_eq!(freed(&mut s), vec![4], "one hand-off counting every key");
        fill(&mut s);
        assert_eq!(t(&mut s, 0, "FLUSHDB async"), Reply::Ok);
        assert_eq!(freed(&mut s), vec![3]);
        assert_eq!(s.key_count(), 1);
        assert_eq!(t(&mut s, 0, "FLUSHALL"), Reply::Ok);
        assert!(freed(&mut s).is_empty(), "eager by default");
        s.lazy.user_flush = true;
        fill(&mut s);
        assert_eq!(t(&mut s, 0, "FLUSHALL SYNC"), Reply::Ok);
        assert!(freed(&mut s).is_empty(), "SYNC overrides the directive");
        fill(&mut s);
        assert_eq!(t(&mut s, 0, "FLUSHALL"), Reply::Ok);
        assert_eq!(freed(&mut s), vec![4]);
        // The emptied databases work as before.
        assert_eq!(t(&mut s, 0, "SET a 1"), Reply::Ok);
        assert_eq!(t(&mut s, 0, "GET a"), crate::cmd::bulk("1"));
    }
}
