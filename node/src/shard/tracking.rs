//! Client-side caching on the node: routing the invalidations a core's
//! keyspace produces (`engine::tracking`) to the cores serving the
//! clients, and delivering them there as Redis 7.0's `tracking.c` does:
//! a RESP3 push `invalidate`, or through a redirection a pub/sub message
//! on `__redis__:invalidate` to a RESP2 subscriber.

use super::Shard;
use crate::io::Key;
use crate::mesh::{Msg, Request, Track};
use engine::tracking::{Inval, What};

/// The pub/sub header of an invalidation for a RESP2 subscriber.
const PUBSUB_HEADER: &[u8] = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n";
/// The push header of an invalidation for a RESP3 client.
const PUSH_HEADER: &[u8] = b">2\r\n$10\r\ninvalidate\r\n";

/// An array of keys in RESP.
fn key_array<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut v = format!("*{}\r\n", keys.len()).into_bytes();
    for k in keys {
        v.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
        v.extend_from_slice(k);
        v.extend_from_slice(b"\r\n");
    }
    v
}

impl Shard {
    /// After commands ran on this core: tells tracking clients about the
    /// keys modified and the flushes. `bcast`: at the end of a turn, the
    /// keys collected for BCAST prefixes go too (Redis sends those before
    /// sleeping). Costs one comparison and one branch when nobody tracks.
    /// `tracking-table-max-keys` is checked then too.
    #[inline]
    pub fn track_after(&mut self, bcast: bool) {
        if self.engine.flushes != self.seen_flushes {
            self.seen_flushes = self.engine.flushes;
            self.flush_nulls();
        }
        if bcast && self.settings.tracking_max_keys > 0 {
            self.track_limit();
        }
        if self
            .engine
            .tracking
            .as_deref()
            .is_some_and(|t| t.has_pending())
        {
            self.route_invalidations(bcast);
        }
    }

    /// The client on whose behalf the request being served came (for
    /// NOLOOP and a pipeline passed on to another core).
    pub fn set_req_client(&mut self, client: u64) {
        self.req_client = client;
        if let Some(t) = self.engine.tracking.as_deref_mut() {
            t.writer = client;
        }
    }

    /// `tracking-table-max-keys`, split evenly over the cores (each core
    /// holds the keys of its own slots).
    fn track_limit(&mut self) {
        let max = self.settings.tracking_max_keys;
        let cores = self.cores as u64;
        let share = max / cores + u64::from((self.id as u64) < max % cores);
        if let Some(t) = self.engine.tracking.as_deref_mut() {
            t.limit(share as usize);
        }
    }

    fn route_invalidations(&mut self, bcast: bool) {
        let Some(t) = self.engine.tracking.as_deref_mut() else {
            return;
        };
        let invals = t.take(bcast);
        let mut remote: Vec<Vec<Inval>> = Vec::new();
        for inv in invals {
            let core = inv.core as usize;
            if core == self.id {
                self.invalidate(inv);
            } else {
                if remote.len() <= core {
                    remote.resize_with(core + 1, Vec::new);
                }
                remote[core].push(inv);
            }
        }
        for (core, v) in remote.into_iter().enumerate() {
            if !v.is_empty() {
                self.send_out(core, Msg::Track(Track::Invalidate(v)));
            }
        }
    }

    /// A flush on this core: every tracking client of this core gets a
    /// null (Redis's `trackingInvalidateKeysOnFlush`; every core flushes
    /// once per FLUSHALL/FLUSHDB, so each client gets one).
    fn flush_nulls(&mut self) {
        let keys: Vec<Key> = self.tracking_conns.values().copied().collect();
        for key in keys {
            let Some(c) = self.conns.get(key) else {
                continue;
            };
            let value = if c.resp3 { &b"_\r\n"[..] } else { b"$-1\r\n" };
            self.tell_client(key, value.to_vec());
        }
    }

    /// Handles a mesh message of client-side caching.
    pub fn track_msg(&mut self, m: Track) {
        match m {
            Track::Invalidate(v) => {
                for inv in v {
                    self.invalidate(inv);
                }
            }
            Track::Redirected {
                to,
                from,
                from_core,
                value,
            } => self.redirected(to, from, from_core, &value),
            Track::Broken { id } => self.redirect_broken(id),
        }
    }

    /// One invalidation for a client of this core, if it still wants it
    /// (Redis's checks in `trackingInvalidateKey` and NOLOOP's).
    fn invalidate(&mut self, inv: Inval) {
        let Some(&key) = self.tracking_conns.get(&inv.id) else {
            return;
        };
        let Some(t) = self.conns.get(key).and_then(|c| c.tracking.as_deref()) else {
            return;
        };
        let value = match &inv.what {
            What::Key(k) => {
                if t.bcast || (t.noloop && inv.writer == inv.id) {
                    return;
                }
                key_array(std::iter::once(&k[..]))
            }
            What::Keys(keys) => {
                if !t.bcast {
                    return;
                }
                let mine = |w: u64| t.noloop && w == inv.id;
                let n = keys.iter().filter(|(_, w)| !mine(*w)).count();
                if n == 0 {
                    return;
                }
                let mut v = format!("*{n}\r\n").into_bytes();
                for (k, _) in keys.iter().filter(|(_, w)| !mine(*w)) {
                    v.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
                    v.extend_from_slice(k);
                    v.extend_from_slice(b"\r\n");
                }
                v
            }
        };
        self.tell_client(key, value);
    }

    /// Sends tracking client `key` an invalidation's value, after the
    /// reply of its command in flight if there is one.
    fn tell_client(&mut self, key: Key, value: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.wait.in_flight() {
            c.track_later.push(value);
            return;
        }
        self.emit(key, value);
    }

    /// The invalidations held while client `key`'s command ran go now,
    /// after its reply.
    pub fn track_release(&mut self, key: Key) {
        let later = match self.conns.get_mut(key) {
            Some(c) if !c.track_later.is_empty() => std::mem::take(&mut c.track_later),
            _ => return,
        };
        for v in later {
            self.emit(key, v);
        }
    }

    /// Writes an invalidation for tracking client `key`: to itself in
    /// RESP3, or to its redirection target (Redis's `sendTrackingMessage`).
    fn emit(&mut self, key: Key, value: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(t) = c.tracking.as_deref() else {
            return;
        };
        if t.redirect != 0 {
            let (to, from, core) = (t.redirect, c.id, t.redirect_core);
            if core == self.id {
                self.redirected(to, from, self.id, &value);
            } else {
                self.send_out(
                    core,
                    Msg::Track(Track::Redirected {
                        to,
                        from,
                        from_core: self.id,
                        value,
                    }),
                );
            }
            return;
        }
        if c.resp3 {
            c.out.extend_from_slice(PUSH_HEADER);
            c.out.extend_from_slice(&value);
            self.want_flush(key);
        }
    }

    /// An invalidation for client `to` of this core, the redirection
    /// target of client `from` (of core `from_core`).
    fn redirected(&mut self, to: u64, from: u64, from_core: usize, value: &[u8]) {
        let target =
            self.redirect_targets
                .get(&to)
                .copied()
                .filter(|&k| self.conns.get(k).is_some_and(|c| c.id == to && !c.closing))
                .or_else(|| {
                    let k =
                        self.conns.keys().into_iter().find(|&k| {
                            self.conns.get(k).is_some_and(|c| c.id == to && !c.closing)
                        })?;
                    self.redirect_targets.insert(to, k);
                    Some(k)
                });
        let Some(key) = target else {
            self.redirect_targets.remove(&to);
            if from_core == self.id {
                self.redirect_broken(from);
            } else {
                self.send_out(from_core, Msg::Track(Track::Broken { id: from }));
            }
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let header = if c.resp3 {
            PUSH_HEADER
        } else if c.sub_count() > 0 {
            PUBSUB_HEADER
        } else {
            return;
        };
        c.out.extend_from_slice(header);
        c.out.extend_from_slice(value);
        self.want_flush(key);
    }

    /// Client `id`'s redirection target is gone: flag `R`, and a RESP3
    /// client is told `tracking-redir-broken`.
    fn redirect_broken(&mut self, id: u64) {
        let Some(&key) = self.tracking_conns.get(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(t) = c.tracking.as_deref_mut() else {
            return;
        };
        t.broken_redir = true;
        if c.resp3 {
            let msg = format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{}\r\n", t.redirect);
            c.out.extend_from_slice(msg.as_bytes());
            self.want_flush(key);
        }
    }

    /// Client `key` starts tracking with `t` (or changes its options).
    pub fn tracking_on(&mut self, key: Key, t: Box<crate::io::Tracking>) {
        if let Some(c) = self.conns.get_mut(key) {
            self.tracking_conns.insert(c.id, key);
            c.tracking = Some(t);
        }
    }

    /// Client `key` stops tracking (CLIENT TRACKING OFF, RESET, closing):
    /// its BCAST prefixes are dropped on every core.
    pub fn tracking_off(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(t) = c.tracking.take() else {
            return;
        };
        c.track_later.clear();
        let id = c.id;
        self.tracking_conns.remove(&id);
        if !t.prefixes.is_empty() {
            for core in 0..self.cores {
                self.rpc.tell(
                    core,
                    Request::TrackPrefixes {
                        id,
                        core: self.id,
                        prefixes: t.prefixes.clone(),
                        on: false,
                    },
                );
            }
        }
    }

    /// Remembers that tracking client `key` reads `keys` (default mode):
    /// on this core at once, on others by a message sent before the read.
    pub fn track_keys(&mut self, key: Key, keys: &[&[u8]]) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let id = c.id;
        let mut remote: Vec<Vec<bytes::Bytes>> = Vec::new();
        for k in keys {
            let core = self.mesh.slots.core_of(engine::slot::slot_of(k));
            if core == self.id {
                self.engine.tracking().remember(k, (id, self.id as u16));
            } else {
                if remote.len() <= core {
                    remote.resize_with(core + 1, Vec::new);
                }
                remote[core].push(bytes::Bytes::copy_from_slice(k));
            }
        }
        for (core, keys) in remote.into_iter().enumerate() {
            if !keys.is_empty() {
                self.rpc.tell(
                    core,
                    Request::TrackKeys {
                        id,
                        core: self.id,
                        keys,
                    },
                );
            }
        }
    }
}
