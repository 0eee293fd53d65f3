//! CLUSTER, in cluster mode: COUNTKEYSINSLOT and GETKEYSINSLOT are answered
//! from the per-slot dictionaries of the core that owns the slot; every
//! other subcommand goes to the bus core (`mesh::Bus`), after the keyspace
//! facts it needs (`cluster::command::needs`) were gathered from the cores.

use super::dispatch::{spawn, Next};
use crate::io::Key;
use crate::mesh::{Request, Response, TaskDone};
use crate::shard::Shard;
use bytes::Bytes;
use cluster::command::{needs, Facts, Need};
use engine::{error, Args, Reply};

/// Redis's error for a subcommand it does not know or with the wrong
/// number of arguments.
fn unknown_subcommand(sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR Unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// A slot number as Redis's `getLongLongFromObjectOrReply` reads it.
fn int_arg(raw: &[u8]) -> Result<i64, Reply> {
    engine::resp::parse_i64(raw).ok_or_else(|| Reply::err(error::NOT_INT))
}

pub fn run(shard: &mut Shard, key: Key, args: Args) -> Next {
    let sub = args.get(1).to_ascii_lowercase();
    let rpc = shard.rpc.clone();
    let answer = |shard: &mut Shard, r: Reply| {
        shard.reply(key, &r);
        Next::Continue
    };
    match sub.as_slice() {
        b"countkeysinslot" | b"getkeysinslot" => {
            let count = sub == b"countkeysinslot";
            if args.len() != if count { 3 } else { 4 } {
                return answer(shard, unknown_subcommand(args.get(1)));
            }
            let slot = match int_arg(args.get(2)) {
                Ok(s) => s,
                Err(e) => return answer(shard, e),
            };
            let max = if count {
                0
            } else {
                match int_arg(args.get(3)) {
                    Ok(m) => m,
                    Err(e) => return answer(shard, e),
                }
            };
            if !(0..engine::slot::SLOTS as i64).contains(&slot) || max < 0 {
                let e = if count {
                    "ERR Invalid slot"
                } else {
                    "ERR Invalid slot or number of keys"
                };
                return answer(shard, Reply::err(e));
            }
            let slot = slot as u16;
            let owner = shard.mesh.slots.core_of(slot);
            if owner == shard.id {
                // This core owns the slot (always, with one core): answer
                // from its dictionary without a task, unless another
                // core's transaction holds it, or its own pipeline
                // reserved keys (one of this slot may be on the way).
                if shard.stall_if_locked(key) || shard.stall_if_reserved(key) {
                    return Next::Retry;
                }
                let db = &shard.engine.dbs[0];
                let reply = if count {
                    Reply::Int(db.slot_len(slot) as i64)
                } else {
                    Reply::Array(
                        db.slot_keys(slot)
                            .take(max as usize)
                            .map(Reply::bulk)
                            .collect(),
                    )
                };
                return answer(shard, reply);
            }
            let req = if count {
                Request::CountKeys { slot: Some(slot) }
            } else {
                Request::KeysInSlot {
                    slot,
                    max: max as usize,
                }
            };
            spawn(shard, key, async move {
                let reply = match rpc.call(owner, req).await {
                    Response::Count(n) => Reply::Int(n),
                    Response::Replies(mut r) if r.len() == 1 => r.swap_remove(0),
                    _ => Reply::err("ERR internal error: unexpected answer from a shard"),
                };
                TaskDone::reply(key, reply)
            })
        }
        _ => {
            let Some(bus) = shard.bus.clone() else {
                return answer(
                    shard,
                    Reply::err("ERR This instance has cluster support disabled"),
                );
            };
            let owned: Vec<Bytes> = args.iter_from(0).map(Bytes::copy_from_slice).collect();
            let argv: Vec<&[u8]> = owned.iter().map(|a| &a[..]).collect();
            let need = needs(&argv);
            spawn(shard, key, async move {
                let mut facts = Facts {
                    db_keys: 0,
                    slot_keys: 0,
                };
                match need {
                    Need::Nothing => {}
                    Need::DbKeys => {
                        for r in rpc.call_all(|_| Request::CountKeys { slot: None }).await {
                            if let Response::Count(n) = r {
                                facts.db_keys += n as u64;
                            }
                        }
                    }
                    Need::SlotKeys(s) => {
                        let owner = rpc.mesh.slots.core_of(s);
                        if let Response::Count(n) =
                            rpc.call(owner, Request::CountKeys { slot: Some(s) }).await
                        {
                            facts.slot_keys = n as u64;
                        }
                    }
                }
                let reply = match rpc.call_bus(&bus, owned, facts).await {
                    Response::Replies(mut r) if r.len() == 1 => r.swap_remove(0),
                    _ => Reply::err("ERR internal error: unexpected answer from the cluster bus"),
                };
                TaskDone::reply(key, reply)
            })
        }
    }
}
