//! SORT and SORT_RO, as Redis 7.0's `sortCommandGeneric`: numeric or
//! ALPHA order, ASC/DESC, LIMIT, BY (a pattern, or one without `*` for no
//! sorting), GET (`#`, patterns, `->field` of hashes) and STORE.
//!
//! The patterns name other keys, anywhere. On one core (or a node whose
//! pattern keys all live with the source) it runs here as any command;
//! otherwise the node gathers the source and every key its patterns name
//! ([`pattern_keys`]) into a scratch keyspace under every core's lock and
//! runs this same handler there.

use super::{flags::*, Ctx, Spec};
use crate::args::Args;
use crate::error;
use crate::reply::Reply;
use crate::value::Value;
use bytes::Bytes;

pub static COMMANDS: &[Spec] = &[
    Spec::new("sort", -2, WRITE | DENYOOM, (1, 1, 1), sort).movable(sort_keys),
    // (Its keys listed by a function, as SORT's: the router's one-key
    // shortcut would miss that BY and GET may name keys of any core.)
    Spec::new("sort_ro", -2, READONLY, (1, 1, 1), sort_ro).movable(sort_ro_keys),
];

/// SORT_RO's key: the source (the keys BY and GET name are found from the
/// data: [`pattern_keys`]).
fn sort_ro_keys(_: &Args) -> Result<Vec<usize>, Reply> {
    Ok(vec![1])
}

/// SORT's keys: the source and the STORE destination (the keys BY and GET
/// name are found from the data: [`pattern_keys`]).
fn sort_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let mut keys = vec![1];
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "limit") && left >= 2 {
            j += 2;
        } else if (args.is(j, "store") || args.is(j, "by") || args.is(j, "get")) && left >= 1 {
            if args.is(j, "store") {
                keys.push(j + 1);
            }
            j += 1;
        }
        j += 1;
    }
    Ok(keys)
}

/// The options of one SORT.
struct Opts<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    dontsort: bool,
    gets: Vec<&'a [u8]>,
}

/// SORT's options; in cluster mode a BY with a pattern and any GET are
/// refused, as Redis refuses them there.
fn parse<'a>(args: &Args<'a>, readonly: bool, cluster: bool) -> Result<Opts<'a>, Reply> {
    let mut o = Opts {
        desc: false,
        alpha: false,
        limit: None,
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "asc") {
            o.desc = false;
        } else if args.is(j, "desc") {
            o.desc = true;
        } else if args.is(j, "alpha") {
            o.alpha = true;
        } else if args.is(j, "limit") && left >= 2 {
            o.limit = Some((args.int(j + 1)?, args.int(j + 2)?));
            j += 2;
        } else if !readonly && args.is(j, "store") && left >= 1 {
            o.store = Some(args.get(j + 1));
            j += 1;
        } else if args.is(j, "by") && left >= 1 {
            let p = args.get(j + 1);
            o.by = Some(p);
            o.dontsort = !p.contains(&b'*');
            if cluster && !o.dontsort {
                return Err(Reply::err("ERR BY option of SORT denied in Cluster mode."));
            }
            j += 1;
        } else if args.is(j, "get") && left >= 1 {
            if cluster {
                return Err(Reply::err("ERR GET option of SORT denied in Cluster mode."));
            }
            o.gets.push(args.get(j + 1));
            j += 1;
        } else {
            return Err(Reply::err(error::SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// A pattern's key for element `sub`, and the hash field after `->`
/// (`None`: the pattern names no key: `#`, or no `*`).
fn pattern_key(pattern: &[u8], sub: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if pattern == b"#" {
        return None;
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let field = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| f + 2 < after.len());
    let (post, field) = match field {
        Some(f) => (&after[..f], Some(after[f + 2..].to_vec())),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + sub.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(sub);
    key.extend_from_slice(post);
    Some((key, field))
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; else the
/// string at the pattern's key, or the field of the hash there.
fn lookup(ctx: &mut Ctx, pattern: &[u8], sub: &[u8]) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(Bytes::copy_from_slice(sub));
    }
    let (key, field) = pattern_key(pattern, sub)?;
    let e = ctx.shard.lookup_read(ctx.db, &key, ctx.now_ms)?;
    match (&e.value, field) {
        (Value::Hash(h), Some(f)) => h.get(&f).map(Bytes::copy_from_slice),
        (Value::Str(s), None) => Some(s.to_bytes()),
        _ => None,
    }
}

/// Every key the BY and GET patterns of `args` name for the elements of
/// `source` (the node gathers them before running SORT elsewhere).
pub fn pattern_keys(args: &Args, source: Option<&Value>) -> Vec<Bytes> {
    let Ok(o) = parse(args, false, false) else {
        return Vec::new();
    };
    let Some(source) = source else {
        return Vec::new();
    };
    let mut patterns: Vec<&[u8]> = o.gets.clone();
    if let (Some(by), false) = (o.by, o.dontsort) {
        patterns.push(by);
    }
    let mut keys = Vec::new();
    for el in elements(source) {
        for p in &patterns {
            if let Some((k, _)) = pattern_key(p, &el) {
                keys.push(Bytes::from(k));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Whether the BY or GET options of `args` name other keys.
pub fn uses_patterns(args: &Args) -> bool {
    parse(args, false, false).is_ok_and(|o| {
        o.gets.iter().any(|g| *g != b"#" && g.contains(&b'*'))
            || o.by.is_some_and(|b| b.contains(&b'*'))
    })
}

/// The members of a list (in order), set or sorted set (by score).
fn elements(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::List(l) => l.iter().map(|x| x.to_vec()).collect(),
        Value::Set(s) => s.iter().map(|x| x.to_vec()).collect(),
        Value::ZSet(z) => z.iter().map(|(m, _)| m.to_vec()).collect(),
        _ => Vec::new(),
    }
}

fn sort(ctx: &mut Ctx) -> Reply {
    sort_generic(ctx, false)
}

fn sort_ro(ctx: &mut Ctx) -> Reply {
    sort_generic(ctx, true)
}

/// One element being sorted: the element, its numeric weight, its ALPHA
/// BY value.
struct Item {
    obj: Vec<u8>,
    score: f64,
    cmp: Option<Bytes>,
}

/// strtod as SORT reads a weight: leading space allowed, the whole rest a
/// number (an empty string is 0); NaN and out of range refused.
fn weight(s: &[u8]) -> Option<f64> {
    let t = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .map_or(&s[s.len()..], |i| &s[i..]);
    if t.is_empty() {
        return (s.is_empty()).then_some(0.0);
    }
    crate::ldouble::string2d(t)
}

fn sort_generic(ctx: &mut Ctx, readonly: bool) -> Reply {
    let args = ctx.args;
    let mut o = match parse(&args, readonly, ctx.shard.cluster_mode) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let key = args.get(1);
    let (kind, mut all): (u8, Vec<Vec<u8>>) = match ctx.shard.lookup_read(ctx.db, key, ctx.now_ms) {
        None => (b'l', Vec::new()),
        Some(e) => match &e.value {
            Value::List(_) => (b'l', elements(&e.value)),
            Value::Set(_) => (b's', elements(&e.value)),
            Value::ZSet(_) => (b'z', elements(&e.value)),
            _ => return Reply::err(error::WRONGTYPE),
        },
    };
    // A set has no order of its own: sorted when stored (or in a script).
    if o.dontsort && kind == b's' && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = all.len() as i64;
    let (lstart, lcount) = o.limit.unwrap_or((0, -1));
    let mut start = lstart.max(0).min(len);
    let lcount = lcount.max(-1).min(len);
    let mut end = if lcount < 0 {
        len - 1
    } else {
        start + lcount - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if o.dontsort && kind != b's' {
        // Lists and sorted sets: the range in their order (reversed for
        // DESC), without sorting.
        if o.desc {
            all.reverse();
        }
        if end >= start {
            all = all.drain(start as usize..=end as usize).collect();
            end -= start;
            start = 0;
        } else {
            all.clear();
        }
    }
    let mut items: Vec<Item> = all
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();
    let mut conversion_error = false;
    if !o.dontsort {
        for it in items.iter_mut() {
            let byval = match o.by {
                Some(p) => match lookup(ctx, p, &it.obj) {
                    Some(v) => v,
                    None => continue,
                },
                None => Bytes::copy_from_slice(&it.obj),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match weight(&byval) {
                    Some(w) => it.score = w,
                    None => conversion_error = true,
                }
            }
        }
        let (alpha, by, desc) = (o.alpha, o.by.is_some(), o.desc);
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.obj.cmp(&b.obj))
            } else if by {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.obj.cmp(&b.obj)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }
    if conversion_error {
        return Reply::err("ERR One or more scores can't be converted into double");
    }
    let range = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &items[..0]
    };
    let Some(dst) = o.store else {
        let mut out = Vec::new();
        for it in range {
            if o.gets.is_empty() {
                out.push(Reply::bulk(&it.obj));
            }
            for g in &o.gets {
                out.push(lookup(ctx, g, &it.obj).map_or(Reply::Nil, Reply::Bulk));
            }
        }
        return Reply::Array(out);
    };
    let mut values: Vec<Bytes> = Vec::new();
    for it in range {
        if o.gets.is_empty() {
            values.push(Bytes::copy_from_slice(&it.obj));
        }
        for g in &o.gets {
            values.push(lookup(ctx, g, &it.obj).unwrap_or_default());
        }
    }
    let n = values.len();
    if n > 0 {
        let mut list = crate::list::PackedList::new();
        let fill = crate::list::Fill(ctx.shard.limits.list_listpack_size);
        for v in &values {
            list.push_back(v, fill);
        }
        ctx.shard
            .set(ctx.db, dst, Value::List(Box::new(list)), ctx.now_ms);
        // A new list wakes the clients blocked on its key (Redis's dbAdd).
        ctx.shard.signal_ready(ctx.db, dst);
        ctx.notify(crate::notify::LIST, "sortstore", dst);
        ctx.dirty(n as u64);
    } else if ctx.shard.remove(ctx.db, dst) {
        ctx.notify(crate::notify::GENERIC, "del", dst);
        ctx.dirty(1);
    }
    Reply::Int(n as i64)
}
