//! Where a command's keys live: which cores a command touches, from the
//! command table's key spec (`slot = CRC16(key) & 16383`, the core from the
//! node's slot table), and SELECT's database index.

use super::slots::SlotTable;
use engine::cmd::{flags, Spec};
use engine::{error, Args, Reply};

/// Where a command's keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No keys: run on the connection's core.
    Here,
    /// Every key on this core.
    One(usize),
    /// Keys on several cores (sorted, deduplicated).
    Many(Vec<usize>),
    /// A fan-out command.
    All,
    /// A script that may reach any core: it runs with every core locked
    /// (`mesh::script`).
    Everywhere,
}

/// Works out which cores `args` touches; `cores` is the number of shard
/// cores, `table` says which owns each slot.
pub fn route(spec: &Spec, args: &Args, cores: usize, table: &SlotTable) -> Result<Route, Reply> {
    if spec.has(flags::ALL_SHARDS) {
        return Ok(Route::All);
    }
    // The common case, one key at position 1, without allocating (nor
    // hashing, when there is one core).
    if spec.keys.is_none() && spec.first_key == 1 && spec.last_key == 1 {
        if cores == 1 {
            return Ok(Route::One(0));
        }
        let slot = engine::slot::slot_of(args.get(1));
        return Ok(Route::One(table.core_of(slot)));
    }
    if spec.name == "scan" {
        return Ok(
            match std::str::from_utf8(args.get(1))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(c) if c < engine::slot::SLOTS as u64 => Route::One(table.core_of(c as u16)),
                _ => Route::Here,
            },
        );
    }
    if engine::cmd::script::is_script(spec.name) {
        // (Without allocating: a script is often a hot command.)
        let keys = engine::cmd::script::key_range(args);
        if cores > 1 || engine::cmd::script::node_calls_seen() {
            return Ok(script_route(spec, args, keys, table));
        }
        return Ok(if keys.is_empty() {
            Route::Here
        } else {
            Route::One(0)
        });
    }
    let mut idx = Vec::new();
    spec.key_indices(args, &mut idx)?;
    if cores > 1 && spec.name.starts_with("sort") && engine::cmd::sort::uses_patterns(args) {
        // BY/GET patterns may name keys on any core.
        return Ok(Route::Everywhere);
    }
    let mut list: Vec<usize> = idx
        .iter()
        .map(|&i| table.core_of(engine::slot::slot_of(args.get(i))))
        .collect();
    list.sort_unstable();
    list.dedup();
    Ok(match list.len() {
        0 => Route::Here,
        1 => Route::One(list[0]),
        _ => Route::Many(list),
    })
}

/// Where a script runs: on its declared keys' core when they are on one
/// and its runs so far stayed there; else everywhere. An EVALSHA of a
/// malformed name runs here (to answer NOSCRIPT).
fn script_route(
    spec: &Spec,
    args: &Args,
    keys: std::ops::Range<usize>,
    table: &SlotTable,
) -> Route {
    use engine::cmd::script::{placement, sha_of};
    if spec.name.starts_with("evalsha") && sha_of(spec.name, args).is_none() {
        return Route::Here;
    }
    let mut home = None;
    for i in keys {
        let c = table.core_of(engine::slot::slot_of(args.get(i)));
        if home.is_some_and(|h| h != c) {
            return Route::Everywhere;
        }
        home = Some(c);
    }
    match home {
        Some(c) if placement(spec.name, args) == engine::script::store::Placement::Local => {
            Route::One(c)
        }
        _ => Route::Everywhere,
    }
}

/// Parses a SELECT-style database index.
pub fn parse_db(raw: &[u8], databases: usize) -> Result<usize, Reply> {
    match engine::resp::parse_i64(raw) {
        Some(n) if n >= 0 && (n as usize) < databases => Ok(n as usize),
        Some(_) => Err(Reply::err("ERR DB index is out of range")),
        None => Err(Reply::err(error::NOT_INT)),
    }
}
