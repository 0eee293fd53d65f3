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
//!    no deferred request, no message held for the AOF, no task but those
//!    only waiting for a command parked on a core or for WAIT
//!    (`Rpc::parked`), and no request on its way (the requests the cores
//!    had taken in one round equal those pushed to them by the next: both
//!    counts only grow, so none was in flight, not even a pipeline going
//!    core to core for a client that left). Cores that stay busy longer
//!    than [`QUIET_WAIT_MS`] (a MIGRATE, a slow script) call the re-spread
//!    off; the bus core tries again a second later. Before holding anyone,
//!    one round checks that no core snapshots or loads (busy for long).
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
    // A snapshot or a load keeps cores busy for long: try later, without
    // holding anyone.
    if ask(&rpc).await.iter().any(|q| q.held) {
        return 0;
    }
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
    shared.respread.store(false, Ordering::SeqCst);
    rpc.call_all(|_| Request::Admin(AdminQuery::Unpause)).await;
    if moved > 0 {
        crate::log::notice(format_args!(
            "Moved {moved} of {asked} slots ({keys} keys) between cores to even them out, clients held {} ms.",
            now_ms() - start
        ));
    }
    moved
}

/// One core's answer to [`AdminQuery::Quiet`].
struct Quiet {
    busy: bool,
    held: bool,
    pushed: u64,
    taken: u64,
}

/// Asks every core whether it is quiet (this task aside).
async fn ask(rpc: &Rc<Rpc>) -> Vec<Quiet> {
    let me = rpc.me;
    rpc.call_all(|c| {
        Request::Admin(AdminQuery::Quiet {
            own: (c == me) as usize,
        })
    })
    .await
    .into_iter()
    .map(|r| match r {
        Response::Quiet {
            busy,
            held,
            pushed,
            taken,
        } => Quiet {
            busy,
            held,
            pushed,
            taken,
        },
        _ => Quiet {
            busy: true,
            held: true,
            pushed: 0,
            taken: 0,
        },
    })
    .collect()
}

/// Asks the cores until they are quiet (true) or [`QUIET_WAIT_MS`] pass:
/// none busy in two rounds in a row, and the requests the cores had taken
/// in the first equal those pushed to them by the second (both counts only
/// grow, and a core takes a request only after it was pushed: so none was
/// on its way in the first round, and none was sent since).
async fn quiet(rpc: &Rc<Rpc>) -> bool {
    let start = now_ms();
    let mut before: Option<Vec<Quiet>> = None;
    loop {
        let now = ask(rpc).await;
        if let Some(b) = &before {
            let busy = b.iter().chain(&now).any(|q| q.busy);
            let taken: u64 = b.iter().map(|q| q.taken).sum();
            let pushed: u64 = now.iter().map(|q| q.pushed).sum();
            if !busy && taken == pushed {
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
