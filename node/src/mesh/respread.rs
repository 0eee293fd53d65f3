//! Cluster mode: a re-spread moves served slots, keys and all, between the
//! node's cores, once slots leaving the node have made the cores uneven
//! (the bus core plans it: `SlotTable::respread_plan`).
//!
//! A slot changes core only where no request can be on its way to the old
//! one, so nothing routed before the move runs after it on the wrong core:
//! 1. `Shared::respread` is set: every core holds its clients' next
//!    commands (as CLIENT PAUSE ALL does, the master client's too), so no
//!    command starts routing keys.
//! 2. The cores are asked, in rounds, until they are quiet: no lock held,
//!    no deferred request, no task but those waiting for a blocking
//!    command parked on a core, and no blocking request on its way (the
//!    blocking requests received, summed over the cores in one round, equal
//!    those sent, summed in the round after it: both counts only grow, so
//!    none was in flight). Cores that stay busy longer than
//!    [`QUIET_WAIT_MS`] (a MIGRATE, a slow script, a snapshot) call the
//!    re-spread off; the bus core tries again later.
//! 3. Each source core gives its slots up (`engine::Shard::take_slot`:
//!    not one a client is blocked on), up to [`KEYS_MAX`] keys in all, the
//!    target takes them, and the slot table names the target.
//! 4. The cores let their clients go on.
//!
//! Nothing is logged: the keys do not change. A core's writes to a slot
//! before the move are in its own AOF, those after in the new core's, and
//! the new core's dependency annotation on the old one orders them at
//! recovery (`docs/persistence.md`); the answer that carries the keys
//! leaves the old core only once what it reveals is written (or, under
//! `appendfsync always`, on disk).

use super::msg::{AdminQuery, Request, Response};
use super::task::Rpc;
use crate::shared::{now_ms, Shared};
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// How long the cores may take to become quiet before a re-spread is
/// called off.
pub const QUIET_WAIT_MS: i64 = 200;

/// The most keys one re-spread moves (measured: about 3M keys a second on
/// the 2-CPU VM, so clients are held for some 5 ms); the bus core plans the
/// next one at once, and clients run in between.
const KEYS_MAX: usize = 16 * 1024;

/// Carries out `moves` (slot, core); returns how many slots moved.
pub async fn respread(rpc: Rc<Rpc>, shared: &Shared, moves: Vec<(u16, usize)>) -> usize {
    shared.respread.store(true, Ordering::SeqCst);
    let (asked, start) = (moves.len(), now_ms());
    let (moved, keys) = match quiet(&rpc).await {
        true => move_slots(&rpc, moves).await,
        false => {
            crate::log::verbose(format_args!(
                "Slots not moved between cores: the cores stayed busy."
            ));
            (0, 0)
        }
    };
    if moved > 0 {
        crate::log::notice(format_args!(
            "Moved {moved} of {asked} slots ({keys} keys) between cores to even them out, clients held {} ms.",
            now_ms() - start
        ));
    }
    shared.respread.store(false, Ordering::SeqCst);
    rpc.call_all(|_| Request::Admin(AdminQuery::Unpause)).await;
    moved
}

/// Asks the cores until they are quiet (true) or [`QUIET_WAIT_MS`] pass.
async fn quiet(rpc: &Rc<Rpc>) -> bool {
    let start = now_ms();
    let mut before: Option<Vec<(bool, u64, u64)>> = None;
    loop {
        // This task is one of its core's tasks.
        let me = rpc.me;
        let now: Vec<(bool, u64, u64)> = rpc
            .call_all(|c| {
                Request::Admin(AdminQuery::Quiet {
                    own: (c == me) as usize,
                })
            })
            .await
            .into_iter()
            .map(|r| match r {
                Response::Quiet {
                    busy,
                    blocking_sent,
                    blocking_recv,
                } => (busy, blocking_sent, blocking_recv),
                _ => (true, 0, 0),
            })
            .collect();
        if let Some(b) = &before {
            let busy = b.iter().chain(&now).any(|q| q.0);
            let received: u64 = b.iter().map(|q| q.2).sum();
            let sent: u64 = now.iter().map(|q| q.1).sum();
            if !busy && received == sent {
                return true;
            }
        }
        if now_ms() - start > QUIET_WAIT_MS {
            return false;
        }
        before = Some(now);
    }
}

/// Moves the slots, source core by source core; how many, with how many
/// keys.
async fn move_slots(rpc: &Rc<Rpc>, moves: Vec<(u16, usize)>) -> (usize, usize) {
    let table = &rpc.mesh.slots;
    let mut pairs: Vec<((usize, usize), Vec<u16>)> = Vec::new();
    for (slot, to) in moves {
        let from = table.core_of(slot);
        if from == to || to >= table.cores() {
            continue;
        }
        match pairs.iter_mut().find(|(p, _)| *p == (from, to)) {
            Some((_, v)) => v.push(slot),
            None => pairs.push(((from, to), vec![slot])),
        }
    }
    let (mut moved, mut keys) = (0, 0);
    for ((from, to), slots) in pairs {
        let req = Request::TakeSlots {
            slots,
            max_keys: KEYS_MAX.saturating_sub(keys),
        };
        if keys >= KEYS_MAX {
            break;
        }
        let Response::Slots(taken) = rpc.call(from, req).await else {
            continue;
        };
        let slots: Vec<u16> = taken.iter().map(|m| m.slot).collect();
        keys += taken.iter().map(|m| m.keys()).sum::<usize>();
        if slots.is_empty() {
            continue;
        }
        rpc.call(to, Request::PutSlots(taken)).await;
        for &s in &slots {
            table.set(s, to);
        }
        moved += slots.len();
    }
    (moved, keys)
}
