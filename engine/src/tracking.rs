//! Client-side caching's server half on one core (Redis 7.0's
//! `tracking.c`): which clients read which of this core's keys (default
//! mode), and the prefixes clients in BCAST mode registered. A modified
//! key ([`crate::Shard::touch`], Redis's `signalModifiedKey`) becomes
//! invalidations for the node to route to the clients' cores; the node
//! decides there whether each is still wanted (tracking on, NOLOOP).
//!
//! As in Redis the table is keyed by key name only, whatever the
//! database. It exists only once some client tracks: until then
//! [`crate::Shard`] holds `None` and a write costs one branch.

use std::collections::BTreeMap;

use hashbrown::HashMap;

/// A tracking client: its id and the core serving its connection.
pub type Client = (u64, u16);

/// What a client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// One key it read (default mode).
    Key(Box<[u8]>),
    /// The keys modified under one of its prefixes (BCAST mode), sorted,
    /// each with the client that last modified it (0: none), so NOLOOP
    /// can leave out a client's own changes.
    Keys(Vec<(Box<[u8]>, u64)>),
}

/// One invalidation for client `id` on core `core`; `writer` is the
/// client whose command modified the key (0: none, e.g. expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inval {
    pub id: u64,
    pub core: u16,
    pub writer: u64,
    pub what: What,
}

/// Clients in BCAST mode for one prefix, and the keys under it modified
/// since the node last took them.
#[derive(Debug, Default)]
struct Prefix {
    clients: Vec<Client>,
    keys: BTreeMap<Box<[u8]>, u64>,
}

/// One core's tracking state.
#[derive(Debug, Default)]
pub struct Tracking {
    /// Key → the clients that read it since it last changed.
    table: HashMap<Box<[u8]>, Vec<Client>>,
    /// Sum of the table's client lists (INFO `tracking_total_items`).
    items: u64,
    /// BCAST prefixes, as every core holds them.
    prefixes: BTreeMap<Box<[u8]>, Prefix>,
    /// Default-mode invalidations not yet taken by the node.
    pending: Vec<Inval>,
    /// Modified keys wait in `prefixes` for the node.
    bcast_due: bool,
    /// The client whose command runs now (0: none).
    pub writer: u64,
    /// Turns in a row that ended over the key limit (Redis's
    /// `timeout_counter`: each spends more effort).
    over_turns: u32,
}

impl Tracking {
    /// Remembers that `client` read `key` (Redis's `trackingRememberKeys`).
    pub fn remember(&mut self, key: &[u8], client: Client) {
        let ids = self.table.entry_ref(key).or_default();
        if !ids.iter().any(|c| c.0 == client.0) {
            ids.push(client);
            self.items += 1;
        }
    }

    /// `key` was modified: every client that read it gets an invalidation
    /// and is forgotten for it; BCAST prefixes it matches collect it.
    pub fn modified(&mut self, key: &[u8]) {
        if !self.prefixes.is_empty() {
            for (p, state) in self.prefixes.iter_mut() {
                if key.starts_with(p) {
                    state.keys.insert(key.into(), self.writer);
                    self.bcast_due = true;
                }
            }
        }
        self.invalidate(key);
    }

    /// Every key of `slot` that clients read (existing or not) is
    /// invalidated ([`Tracking::invalidate`]): the slot moves to another
    /// shard, which has not seen those reads.
    pub fn invalidate_slot(&mut self, slot: u16) {
        let keys: Vec<Box<[u8]>> = self
            .table
            .keys()
            .filter(|k| crate::slot::slot_of(k) == slot)
            .cloned()
            .collect();
        for k in keys {
            self.invalidate(&k);
        }
    }

    /// Every client that read `key` gets an invalidation and is forgotten
    /// for it (BCAST prefixes are not told: nothing changed).
    pub fn invalidate(&mut self, key: &[u8]) {
        if let Some(ids) = self.table.remove(key) {
            self.items -= ids.len() as u64;
            for (id, core) in ids {
                self.pending.push(Inval {
                    id,
                    core,
                    writer: self.writer,
                    what: What::Key(key.into()),
                });
            }
        }
    }

    /// Keeps at most `max` keys (`tracking-table-max-keys`, Redis's
    /// `trackingLimitUsedSlots`): keys are forgotten in the table's own
    /// (hash) order, their clients told as if they were modified, at most
    /// 100 per turn more for each turn in a row that ended over.
    pub fn limit(&mut self, max: usize) {
        if self.table.len() <= max {
            self.over_turns = 0;
            return;
        }
        let effort = 100 * (self.over_turns as usize + 1);
        let n = (self.table.len() - max).min(effort);
        let victims: Vec<Box<[u8]>> = self.table.keys().take(n).cloned().collect();
        for k in victims {
            if let Some(ids) = self.table.remove(&k) {
                self.items -= ids.len() as u64;
                for (id, core) in ids {
                    self.pending.push(Inval {
                        id,
                        core,
                        writer: 0,
                        what: What::Key(k.clone()),
                    });
                }
            }
        }
        if self.table.len() > max {
            self.over_turns += 1;
        } else {
            self.over_turns = 0;
        }
    }

    /// A flush: forgets every key read (the clients are told by the node,
    /// with one null each).
    pub fn flushed(&mut self) {
        self.table = HashMap::new();
        self.items = 0;
    }

    /// Registers (`on`) or drops `client`'s BCAST prefixes.
    pub fn set_prefixes(&mut self, client: Client, prefixes: &[Vec<u8>], on: bool) {
        for p in prefixes {
            if on {
                let state = self.prefixes.entry(p[..].into()).or_default();
                if !state.clients.iter().any(|c| c.0 == client.0) {
                    state.clients.push(client);
                }
            } else if let Some(state) = self.prefixes.get_mut(&p[..]) {
                state.clients.retain(|c| c.0 != client.0);
                if state.clients.is_empty() {
                    self.prefixes.remove(&p[..]);
                }
            }
        }
    }

    /// True when invalidations wait for [`Tracking::take`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.bcast_due
    }

    /// Takes the invalidations due: the default mode's, then one per
    /// prefix and client for the keys modified under it (Redis's
    /// `trackingBroadcastInvalidationMessages`, run once per turn).
    pub fn take(&mut self, bcast: bool) -> Vec<Inval> {
        let mut out = std::mem::take(&mut self.pending);
        if bcast && self.bcast_due {
            self.bcast_due = false;
            for state in self.prefixes.values_mut() {
                if state.keys.is_empty() {
                    continue;
                }
                let keys: Vec<(Box<[u8]>, u64)> =
                    std::mem::take(&mut state.keys).into_iter().collect();
                for &(id, core) in &state.clients {
                    out.push(Inval {
                        id,
                        core,
                        writer: 0,
                        what: What::Keys(keys.clone()),
                    });
                }
            }
        }
        out
    }

    /// INFO stats: `tracking_total_keys`, `tracking_total_items` and
    /// `tracking_total_prefixes` of this core.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.table.len() as u64,
            self.items,
            self.prefixes.len() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mode_invalidates_once() {
        let mut t = Tracking::default();
        t.remember(b"a", (7, 1));
        t.remember(b"a", (7, 1));
        t.remember(b"a", (8, 0));
        assert_eq!(t.totals(), (1, 2, 0));
        t.writer = 8;
        t.modified(b"a");
        t.modified(b"b");
        let got = t.take(true);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, 7);
        assert_eq!(got[0].writer, 8);
        assert_eq!(got[0].what, What::Key(b"a"[..].into()));
        assert_eq!(t.totals(), (0, 0, 0));
        t.modified(b"a");
        assert!(!t.has_pending());
    }

    #[test]
    fn limit_forgets_keys_and_tells_their_clients() {
        let mut t = Tracking::default();
        for i in 0..350u32 {
            t.remember(format!("k{i}").as_bytes(), (1, 0));
        }
        t.limit(400);
        assert!(!t.has_pending());
        t.limit(10);
        // At most 100 the first turn, then 200, ...
        assert_eq!(t.totals().0, 250);
        assert_eq!(t.take(false).len(), 100);
        t.limit(10);
        t.limit(10);
        assert_eq!(t.totals(), (10, 10, 0));
        assert_eq!(t.take(false).len(), 240);
    }

    #[test]
    fn bcast_collects_per_prefix() {
        let mut t = Tracking::default();
        t.set_prefixes((5, 0), &[b"a".to_vec(), b"b".to_vec()], true);
        t.set_prefixes((6, 1), &[b"".to_vec()], true);
        assert_eq!(t.totals().2, 3);
        t.modified(b"ax");
        t.modified(b"aa");
        t.modified(b"c");
        let got = t.take(true);
        // "" (client 6: aa, ax, c), then "a" (client 5: aa, ax).
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, 6);
        assert_eq!(
            got[0].what,
            What::Keys(vec![
                (b"aa"[..].into(), 0),
                (b"ax"[..].into(), 0),
                (b"c"[..].into(), 0)
            ])
        );
        assert_eq!(got[1].id, 5);
        assert!(t.take(true).is_empty());
        t.set_prefixes((5, 0), &[b"a".to_vec(), b"b".to_vec()], false);
        assert_eq!(t.totals().2, 1);
    }
}
