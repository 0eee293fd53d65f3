//! Stream commands (`stream` group), with Redis 7.0.15's replies, errors
//! and propagated forms (`t_stream.c`): XADD, XRANGE, XREVRANGE, XLEN,
//! XDEL, XTRIM, XSETID, XREAD, XGROUP, XREADGROUP, XACK, XPENDING,
//! XCLAIM, XAUTOCLAIM, XINFO.
//!
//! XREAD and XREADGROUP block as BLPOP does ([`Ctx::block`]), handing the
//! node the command to re-run when a key is signalled: `$` already
//! resolved to the stream's last ID, and the 1000-entry COUNT Redis
//! serves a woken reader with when none was given.

use super::{check, flags::*, peek, write, Block, Ctx, Spec};
use crate::args::Args;
use crate::error;
use crate::notify;
use crate::reply::Reply;
use crate::stream::{Group, Id, Stream, Trim, ENTRIES_READ_INVALID};
use crate::value::{Typed, Value};
use bytes::Bytes;

/// The stream family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), xadd),
    Spec::new("xrange", -4, READONLY, (1, 1, 1), xrange),
    Spec::new("xrevrange", -4, READONLY, (1, 1, 1), xrevrange),
    Spec::new("xlen", 2, READONLY | FAST, (1, 1, 1), xlen),
    Spec::new("xdel", -3, WRITE | FAST, (1, 1, 1), xdel),
    Spec::new("xtrim", -4, WRITE, (1, 1, 1), xtrim),
    Spec::new("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), xsetid),
    Spec::new("xread", -4, READONLY | BLOCKING, (0, 0, 0), xread).movable(xread_keys),
    Spec::new("xreadgroup", -7, WRITE | BLOCKING, (0, 0, 0), xreadgroup).movable(xread_keys),
    Spec::new("xgroup", -2, WRITE, (0, 0, 0), xgroup)
        .subcommands()
        .movable(sub_key),
    Spec::new("xack", -4, WRITE | FAST, (1, 1, 1), xack),
    Spec::new("xpending", -3, READONLY, (1, 1, 1), xpending),
    Spec::new("xclaim", -6, WRITE | FAST, (1, 1, 1), xclaim),
    Spec::new("xautoclaim", -6, WRITE | FAST, (1, 1, 1), xautoclaim),
    Spec::new("xinfo", -2, READONLY, (0, 0, 0), xinfo)
        .subcommands()
        .movable(sub_key),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const BAD_START: &str = "ERR invalid start ID for the interval";
const BAD_END: &str = "ERR invalid end ID for the interval";
/// How many entries a woken XREAD without COUNT gets.
const BLOCKED_DEFAULT_COUNT: i64 = 1000;

impl Typed for Stream {
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::Stream(s) => Some(s),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Stream(s) => Some(s),
            _ => None,
        }
    }
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn err(msg: String) -> Reply {
    Reply::Error(msg.into())
}

/// `getLongLongFromObjectOrReply`, with Redis's default message or `msg`.
fn int_arg(a: &[u8], msg: Option<&str>) -> Result<i64, Reply> {
    crate::resp::parse_i64(a).ok_or_else(|| match msg {
        Some(m) => err(format!("ERR {m}")),
        None => Reply::err(error::NOT_INT),
    })
}

/// Redis's `string2ull`: a strict integer first, else `strtoull` (leading
/// spaces, a sign, digits to the end, no overflow).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::resp::parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i == s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `streamGenericParseIDOrReply`: `Ok((id, seq_given))`.
fn parse_id_full(
    a: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star: bool,
) -> Result<(Id, bool), Reply> {
    let bad = || Reply::err(INVALID_ID);
    if a.len() > 127 {
        return Err(bad());
    }
    // C strings end at the first NUL.
    let a = &a[..a.iter().position(|&c| c == 0).unwrap_or(a.len())];
    if a == b"-" || a == b"+" {
        if strict {
            return Err(bad());
        }
        return Ok((if a == b"-" { Id::MIN } else { Id::MAX }, true));
    }
    match a.iter().position(|&c| c == b'-') {
        None => Ok((Id::new(string2ull(a).ok_or_else(bad)?, missing_seq), true)),
        Some(d) => {
            let ms = string2ull(&a[..d]).ok_or_else(bad)?;
            let rest = &a[d + 1..];
            if allow_star && rest == b"*" {
                return Ok((Id::new(ms, 0), false));
            }
            Ok((Id::new(ms, string2ull(rest).ok_or_else(bad)?), true))
        }
    }
}

fn parse_id(a: &[u8], missing_seq: u64) -> Result<Id, Reply> {
    parse_id_full(a, missing_seq, false, false).map(|r| r.0)
}

fn parse_strict(a: &[u8]) -> Result<Id, Reply> {
    parse_id_full(a, 0, true, false).map(|r| r.0)
}

/// `streamParseIntervalIDOrReply`: the ID and whether it is exclusive.
fn parse_interval(a: &[u8], missing_seq: u64) -> Result<(Id, bool), Reply> {
    if a.len() > 1 && a[0] == b'(' {
        Ok((parse_id_full(&a[1..], missing_seq, true, false)?.0, true))
    } else {
        Ok((parse_id(a, missing_seq)?, false))
    }
}

fn id_reply(id: Id) -> Reply {
    Reply::Bulk(id.text())
}

fn entry_reply((id, fields): (Id, Vec<Bytes>)) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.into_iter().map(Reply::Bulk).collect()),
    ])
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn num(n: i64) -> Bytes {
    Bytes::from(n.to_string())
}

/// The stream at `key` for a read: `Ok(None)` when missing.
fn read<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Stream>, Reply> {
    if check::<Stream>(ctx, key)? {
        Ok(peek::<Stream>(ctx, key))
    } else {
        Ok(None)
    }
}

/// XADD/XTRIM's options (`streamAddTrimArgs`).
struct AddTrim {
    id: Id,
    id_given: bool,
    seq_given: bool,
    no_mkstream: bool,
    trim: Trim,
    approx: bool,
    /// The position of the MAXLEN/MINID argument.
    trim_arg: usize,
    limit: i64,
}

/// `streamParseAddOrTrimArgsOrReply`: the options and, for XADD, the
/// ID's position.
fn parse_add_trim(args: &Args, xadd: bool, node_entries: i64) -> Result<(AddTrim, usize), Reply> {
    let mut a = AddTrim {
        id: Id::MIN,
        id_given: false,
        seq_given: true,
        no_mkstream: false,
        trim: Trim::None,
        approx: false,
        trim_arg: 0,
        limit: 0,
    };
    let argc = args.len();
    let mut i = 2;
    let mut limit_given = false;
    // `=` written out: the form Redis propagates an approximate trim as,
    // keeping its LIMIT (which Redis ignores from its master and AOF).
    let mut explicit_exact = false;
    const BOTH: &str =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    while i < argc {
        let more = argc - 1 - i;
        let opt = args.get(i);
        if xadd && opt == b"*" {
            break;
        } else if eq(opt, "maxlen") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::err(BOTH));
            }
            a.approx = false;
            let next = args.get(i + 1);
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                explicit_exact = true;
                i += 1;
            }
            let n = int_arg(args.get(i + 1), None)?;
            if n < 0 {
                return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
            }
            i += 1;
            a.trim = Trim::MaxLen(n as u64);
            a.trim_arg = i;
        } else if eq(opt, "minid") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::err(BOTH));
            }
            a.approx = false;
            let next = args.get(i + 1);
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                explicit_exact = true;
                i += 1;
            }
            let id = parse_strict(args.get(i + 1))?;
            i += 1;
            a.trim = Trim::MinId(id);
            a.trim_arg = i;
        } else if eq(opt, "limit") && more > 0 {
            a.limit = int_arg(args.get(i + 1), None)?;
            if a.limit < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 1;
        } else if xadd && eq(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_full(opt, 0, true, true)?;
            a.id = id;
            a.seq_given = seq_given;
            a.id_given = true;
            break;
        } else {
            return Err(Reply::err(error::SYNTAX));
        }
        i += 1;
    }
    if a.limit != 0 && a.trim == Trim::None {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim == Trim::None {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if explicit_exact && !a.approx {
            a.limit = 0;
        } else if !a.approx {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if a.approx {
        a.limit = (100 * node_entries).clamp(0, 1_000_000);
        if a.limit <= 0 {
            a.limit = 10_000;
        }
    } else {
        a.limit = 0;
    }
    Ok((a, i))
}

/// The arguments as owned bytes, to be rewritten for propagation.
fn argv(args: &Args) -> Vec<Bytes> {
    args.iter().map(Bytes::copy_from_slice).collect()
}

/// `streamRewriteApproxSpecifier` + `streamRewriteTrimArgument`: an
/// approximate trim propagates as the exact one it did (`=` and the
/// resulting length, or the first ID), its LIMIT kept as Redis keeps it.
fn rewrite_trim(v: &mut [Bytes], s: &Stream, a: &AddTrim) {
    v[a.trim_arg - 1] = b("=");
    v[a.trim_arg] = match a.trim {
        Trim::MaxLen(_) => num(s.length as i64),
        _ => s.edge(true, false).unwrap_or(Id::MAX).text(),
    };
}

fn node_limits(ctx: &Ctx) -> (usize, i64) {
    (
        ctx.shard.limits.stream_node_max_bytes,
        ctx.shard.limits.stream_node_max_entries,
    )
}

/// ```text
/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
/// ```
fn xadd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let (max_bytes, max_entries) = node_limits(ctx);
    let (a, idpos) = match parse_add_trim(&args, true, max_entries) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let fields = idpos + 1;
    let nf = args.len().saturating_sub(fields);
    if nf < 2 || !nf.is_multiple_of(2) {
        return err(error::wrong_arity("xadd"));
    }
    if a.id_given && a.seq_given && a.id.is_zero() {
        return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
    }
    let now = ctx.now_ms;
    let db = ctx.db;
    let exists = match write::<Stream>(ctx, key) {
        Err(e) => return e,
        Ok(s) => s.is_some(),
    };
    if !exists {
        if a.no_mkstream {
            return Reply::Nil;
        }
        ctx.shard
            .set(db, key, Value::Stream(Box::new(Stream::new())), now);
    }
    // The propagated form is only built for a log that takes it.
    let logging = ctx.shard.log_enabled();
    let Ok(Some(s)) = write::<Stream>(ctx, key) else {
        return Reply::Nil;
    };
    if s.last_id == Id::MAX {
        return Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
    }
    let id = if !a.id_given {
        if now as u64 > s.last_id.ms {
            Some(Id::new(now as u64, 0))
        } else {
            s.last_id.incr()
        }
    } else if a.seq_given {
        Some(a.id)
    } else if s.last_id.ms == a.id.ms {
        if s.last_id.seq == u64::MAX {
            None
        } else {
            Some(Id::new(a.id.ms, s.last_id.seq + 1))
        }
    } else {
        Some(a.id)
    };
    let too_small =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    let id = match id {
        Some(id) if id > s.last_id => id,
        other => {
            // (`ms-*` past the last sequence number of `ms`: Redis's
            // EDOM from `streamAppendItem`, worded as for a big entry.)
            let e = match other {
                None => Reply::err("ERR Elements are too large to be stored"),
                Some(_) => Reply::err(too_small),
            };
            if !exists {
                ctx.shard.remove(db, key);
            }
            return e;
        }
    };
    let fv: Vec<&[u8]> = args.iter_from(fields).collect();
    let total: usize = fv.iter().map(|f| f.len()).sum();
    if total > crate::stream::LISTPACK_MAX_SIZE {
        return Reply::err("ERR Elements are too large to be stored");
    }
    s.append(id, &fv, max_bytes, max_entries);
    let mut prop = None;
    let mut trimmed = 0;
    if a.trim != Trim::None {
        trimmed = s.trim(a.trim, a.approx, a.limit);
        if a.approx && logging {
            let mut v = argv(&args);
            rewrite_trim(&mut v, s, &a);
            prop = Some(v);
        }
    }
    if logging && (!a.id_given || !a.seq_given) {
        let mut v = prop.unwrap_or_else(|| argv(&args));
        let at = v.len() - nf - 1;
        v[at] = id.text();
        prop = Some(v);
    }
    if let Some(v) = prop {
        ctx.propagate_as(vec![v]);
    }
    ctx.shard.touch(db, key);
    ctx.shard.signal_ready(db, key);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    ctx.dirty(1);
    id_reply(id)
}

fn xrange(ctx: &mut Ctx) -> Reply {
    range(ctx, false)
}

fn xrevrange(ctx: &mut Ctx) -> Reply {
    range(ctx, true)
}

/// ```text
/// XRANGE key start end [COUNT count]
/// XREVRANGE key end start [COUNT count]
/// ```
fn range(ctx: &mut Ctx, rev: bool) -> Reply {
    let args = ctx.args;
    let (sa, ea) = if rev {
        (args.get(3), args.get(2))
    } else {
        (args.get(2), args.get(3))
    };
    let parsed = (|| {
        let (mut start, sx) = parse_interval(sa, 0)?;
        if sx {
            start = start.incr().ok_or_else(|| Reply::err(BAD_START))?;
        }
        let (mut end, ex) = parse_interval(ea, u64::MAX)?;
        if ex {
            end = end.decr().ok_or_else(|| Reply::err(BAD_END))?;
        }
        let mut count = -1i64;
        let mut j = 4;
        while j < args.len() {
            if eq(args.get(j), "count") && j + 1 < args.len() {
                count = int_arg(args.get(j + 1), None)?.max(0);
                j += 2;
            } else {
                return Err(Reply::err(error::SYNTAX));
            }
        }
        Ok((start, end, count))
    })();
    let (start, end, count) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    let s = match read(ctx, args.get(1)) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(vec![]),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::NilArray;
    }
    let (lo, hi) = (start, end);
    let entries = s.range(lo, hi, rev, count.max(0) as usize, true);
    Reply::Array(entries.into_iter().map(entry_reply).collect())
}

/// ```text
/// XLEN key
/// ```
fn xlen(ctx: &mut Ctx) -> Reply {
    let key = ctx.args.get(1);
    match read(ctx, key) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.length as i64)),
    }
}

/// ```text
/// XDEL key id [id ...]
/// ```
fn xdel(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let db = ctx.db;
    let s = match write::<Stream>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let mut ids = Vec::with_capacity(args.len() - 2);
    for a in args.iter_from(2) {
        match parse_strict(a) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let mut deleted = 0;
    let mut first_entry = false;
    for id in ids {
        if s.delete(id) {
            if id == s.first_id {
                first_entry = true;
            }
            if id > s.max_deleted {
                s.max_deleted = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.length == 0 {
            s.first_id = Id::MIN;
        } else if first_entry {
            s.first_id = s.edge(true, true).unwrap_or(Id::MAX);
        }
        ctx.shard.touch(db, key);
        ctx.notify(notify::STREAM, "xdel", key);
        ctx.dirty(deleted as u64);
    }
    Reply::Int(deleted)
}

/// ```text
/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
/// ```
fn xtrim(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let db = ctx.db;
    let (_, max_entries) = node_limits(ctx);
    let a = match parse_add_trim(&args, false, max_entries) {
        Ok((a, _)) => a,
        Err(e) => return e,
    };
    let s = match write::<Stream>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => s,
    };
    let deleted = s.trim(a.trim, a.approx, a.limit);
    if deleted > 0 {
        if a.approx {
            let mut v = argv(&args);
            rewrite_trim(&mut v, s, &a);
            ctx.propagate_as(vec![v]);
        }
        ctx.shard.touch(db, key);
        ctx.notify(notify::STREAM, "xtrim", key);
        ctx.dirty(deleted as u64);
    }
    Reply::Int(deleted)
}

/// ```text
/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
/// ```
fn xsetid(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    let db = ctx.db;
    let parsed = (|| {
        let id = parse_strict(args.get(2))?;
        let mut added = -1i64;
        let mut max_del = Id::MIN;
        let mut i = 3;
        while i < args.len() {
            let more = args.len() - 1 - i;
            let opt = args.get(i);
            if eq(opt, "entriesadded") && more > 0 {
                added = int_arg(args.get(i + 1), None)?;
                if added < 0 {
                    return Err(Reply::err("ERR entries_added must be positive"));
                }
            } else if eq(opt, "maxdeletedid") && more > 0 {
                max_del = parse_strict(args.get(i + 1))?;
                if id < max_del {
                    return Err(Reply::err(
                        "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                    ));
                }
            } else {
                return Err(Reply::err(error::SYNTAX));
            }
            i += 2;
        }
        Ok((id, added, max_del))
    })();
    let (id, added, max_del) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    let s = match write::<Stream>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err(error::NO_KEY),
        Ok(Some(s)) => s,
    };
    if s.length > 0 {
        let top = s.edge(false, true).unwrap_or(Id::MIN);
        if id < top {
            return Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if added != -1 && s.length > added as u64 {
            return Reply::err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.last_id = id;
    if added != -1 {
        s.entries_added = added as u64;
    }
    if !max_del.is_zero() {
        s.max_deleted = max_del;
    }
    ctx.shard.written(db, key);
    ctx.notify(notify::STREAM, "xsetid", key);
    ctx.dirty(1);
    Reply::Ok
}

/// XREAD/XREADGROUP's options up to STREAMS: where STREAMS is (`None`
/// when the command is malformed) and whether a BLOCK option is given.
fn read_options(args: &Args) -> (Option<usize>, bool) {
    let argc = args.len();
    let mut i = 1;
    let mut block = false;
    while i < argc {
        let a = args.get(i);
        if eq(a, "block") || eq(a, "count") {
            block |= eq(a, "block");
            i += 1;
        } else if eq(a, "group") {
            i += 2;
        } else if eq(a, "noack") {
        } else if eq(a, "streams") {
            return (Some(i), block);
        } else {
            break;
        }
        i += 1;
    }
    (None, block)
}

/// Whether an XREAD/XREADGROUP may block: with a BLOCK option, or when
/// malformed (it then fails, wherever it runs). Without BLOCK it answers
/// at once and travels like any single-core command.
pub fn read_may_block(args: &Args) -> bool {
    match read_options(args) {
        (Some(_), block) => block,
        (None, _) => true,
    }
}

/// XREAD/XREADGROUP's keys: after STREAMS, half of what follows
/// (`xreadGetKeys`); none when the command is malformed (it then fails).
fn xread_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let argc = args.len();
    let Some(pos) = read_options(args).0 else {
        return Ok(Vec::new());
    };
    let n = argc - pos - 1;
    if n == 0 || !n.is_multiple_of(2) {
        return Ok(Vec::new());
    }
    Ok((pos + 1..pos + 1 + n / 2).collect())
}

/// XGROUP's and XINFO's key: the third argument of their subcommands that
/// take one.
fn sub_key(args: &Args) -> Result<Vec<usize>, Reply> {
    let sub = args.get(1);
    let keyed = [
        "create",
        "setid",
        "destroy",
        "createconsumer",
        "delconsumer",
        "stream",
        "groups",
        "consumers",
    ]
    .iter()
    .any(|s| eq(sub, s));
    Ok(if keyed && args.len() >= 3 {
        vec![2]
    } else {
        Vec::new()
    })
}

/// What XREADGROUP's delivery propagates (`streamPropagateXCLAIM` and
/// friends), in order.
struct Props(Vec<Vec<Bytes>>);

impl Props {
    fn xclaim(&mut self, key: &[u8], group: &[u8], g: &Group, id: Id) {
        let Some(n) = g.pel.get(&id) else { return };
        self.0.push(vec![
            b("XCLAIM"),
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(group),
            Bytes::copy_from_slice(&n.consumer),
            b("0"),
            id.text(),
            b("TIME"),
            num(n.delivery_time),
            b("RETRYCOUNT"),
            num(n.delivery_count as i64),
            b("FORCE"),
            b("JUSTID"),
            b("LASTID"),
            g.last_id.text(),
        ]);
    }

    /// [`Props::xclaim`] naming the ID as the client wrote it (XCLAIM
    /// propagates its own argument: `5` stays `5`, not `5-0`).
    fn xclaim_as(&mut self, key: &[u8], group: &[u8], g: &Group, id: Id, idarg: Bytes) {
        self.xclaim(key, group, g, id);
        if let Some(last) = self.0.last_mut() {
            last[5] = idarg;
        }
    }

    fn setid(&mut self, key: &[u8], group: &[u8], g: &Group) {
        self.0.push(vec![
            b("XGROUP"),
            b("SETID"),
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(group),
            g.last_id.text(),
            b("ENTRIESREAD"),
            num(g.entries_read),
        ]);
    }

    fn createconsumer(&mut self, key: &[u8], group: &[u8], consumer: &[u8]) {
        self.0.push(vec![
            b("XGROUP"),
            b("CREATECONSUMER"),
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(group),
            Bytes::copy_from_slice(consumer),
        ]);
    }
}

/// The stream `s`'s entries after `start` for group `gname` and
/// `consumer` (`streamReplyWithRange` with a group): moves the group's
/// last ID and read counter, creates or reassigns NACKs.
#[allow(clippy::too_many_arguments)]
fn deliver(
    s: &mut Stream,
    key: &[u8],
    gname: &[u8],
    consumer: &[u8],
    start: Id,
    count: usize,
    noack: bool,
    now: i64,
    props: &mut Props,
) -> Vec<Reply> {
    let entries = s.range(start, Id::MAX, false, count, true);
    let mut out = Vec::with_capacity(entries.len());
    let mut propagate_last = false;
    for (id, fields) in entries {
        let has_tomb = s.has_tombstones_from(id);
        let distance = s.estimate_distance(id);
        let added = s.entries_added;
        let Some(g) = s.groups.get_mut(gname) else {
            break;
        };
        if id > g.last_id {
            if g.entries_read != ENTRIES_READ_INVALID && !has_tomb {
                g.entries_read = g.entries_read.wrapping_add(1);
            } else if added > 0 {
                g.entries_read = distance;
            }
            g.last_id = id;
            if noack {
                propagate_last = true;
            }
        }
        out.push(entry_reply((id, fields)));
        if !noack {
            g.assign(id, consumer, now, true);
            props.xclaim(key, gname, g, id);
        }
    }
    if propagate_last {
        if let Some(g) = s.groups.get(gname) {
            props.setid(key, gname, g);
        }
    }
    out
}

/// A consumer's own pending entries from `start` (`streamReplyWithRangeFromConsumerPEL`).
fn history(
    s: &mut Stream,
    gname: &[u8],
    consumer: &[u8],
    start: Id,
    count: usize,
    now: i64,
) -> Vec<Reply> {
    let ids: Vec<Id> = match s.groups.get(gname).and_then(|g| g.consumers.get(consumer)) {
        Some(c) => c
            .pel
            .range(start..)
            .take(if count == 0 { usize::MAX } else { count })
            .copied()
            .collect(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let found = s.range(id, id, false, 1, true).pop();
        match found {
            Some(e) => {
                out.push(entry_reply(e));
                if let Some(n) = s.groups.get_mut(gname).and_then(|g| g.pel.get_mut(&id)) {
                    n.delivery_time = now;
                    n.delivery_count = n.delivery_count.wrapping_add(1);
                }
            }
            None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
        }
    }
    out
}

fn xread(ctx: &mut Ctx) -> Reply {
    read_streams(ctx, false)
}

fn xreadgroup(ctx: &mut Ctx) -> Reply {
    read_streams(ctx, true)
}

/// ```text
/// XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]
/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]
/// ```
fn read_streams(ctx: &mut Ctx, group_cmd: bool) -> Reply {
    let args = ctx.args;
    let argc = args.len();
    let mut timeout: Option<i64> = None;
    let mut count = 0i64;
    let mut streams_at = 0;
    let mut n = 0;
    let mut noack = false;
    let mut group: Option<(&[u8], &[u8])> = None;
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let o = args.get(i);
        if eq(o, "block") && more > 0 {
            i += 1;
            let t = match crate::resp::parse_i64(args.get(i)) {
                Some(t) => t,
                None => return Reply::err("ERR timeout is not an integer or out of range"),
            };
            if t < 0 {
                return Reply::err(error::TIMEOUT_NEGATIVE);
            }
            timeout = Some(t);
        } else if eq(o, "count") && more > 0 {
            i += 1;
            count = match int_arg(args.get(i), None) {
                Ok(c) => c.max(0),
                Err(e) => return e,
            };
        } else if eq(o, "streams") && more > 0 {
            streams_at = i + 1;
            let rest = argc - streams_at;
            if !rest.is_multiple_of(2) {
                return Reply::err(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                );
            }
            n = rest / 2;
            break;
        } else if eq(o, "group") && more >= 2 {
            if !group_cmd {
                return Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            group = Some((args.get(i + 1), args.get(i + 2)));
            i += 2;
        } else if eq(o, "noack") {
            if !group_cmd {
                return Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                );
            }
            noack = true;
        } else {
            return Reply::err(error::SYNTAX);
        }
        i += 1;
    }
    if streams_at == 0 {
        return Reply::err(error::SYNTAX);
    }
    if group_cmd && group.is_none() {
        return Reply::err("ERR Missing GROUP option for XREADGROUP");
    }
    // Resolve every stream, group and ID first.
    let mut ids: Vec<Option<Id>> = Vec::with_capacity(n); // None: ">"
    let woken = ctx.woken.is_some();
    for k in 0..n {
        let key = args.get(streams_at + k);
        let ida = args.get(streams_at + n + k);
        if ctx.woken.is_some_and(|w| w != key) {
            // Woken, Redis serves the signalled stream only.
            ids.push(Some(Id::MAX));
            continue;
        }
        let s = match read(ctx, key) {
            // Woken for a stream that went away (deleted, or now another
            // type): Redis tells a group reader, an XREAD waits on.
            Err(_) | Ok(None) if woken && group.is_some() => {
                return Reply::err("UNBLOCKED the stream key no longer exists");
            }
            Err(_) if woken => {
                ids.push(Some(Id::MAX));
                continue;
            }
            Err(e) => return e,
            Ok(s) => s,
        };
        if let Some((g, _)) = group {
            if !s.is_some_and(|s| s.groups.contains_key(g)) {
                if woken {
                    return Reply::err(
                        "NOGROUP the consumer group this client was blocked on no longer exists",
                    );
                }
                return err(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    text(key),
                    text(g)
                ));
            }
        }
        if ida == b"$" {
            if group_cmd {
                return Reply::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            ids.push(Some(s.map_or(Id::MIN, |s| s.last_id)));
            continue;
        } else if ida == b">" {
            if !group_cmd {
                return Reply::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            ids.push(None);
            continue;
        }
        match parse_strict(ida) {
            Ok(id) => ids.push(Some(id)),
            Err(e) => return e,
        }
    }
    let now = ctx.now_ms;
    let mut served = Vec::new();
    let mut props = Props(Vec::new());
    let mut dirty = 0u64;
    let mut new_consumer: Vec<&[u8]> = Vec::new();
    let woken_key = ctx.woken;
    for (k, gt) in ids.iter().enumerate() {
        let key = args.get(streams_at + k);
        if woken_key.is_some_and(|w| w != key) {
            continue;
        }
        let Ok(Some(s)) = write::<Stream>(ctx, key) else {
            continue;
        };
        let entries = match group {
            Some((gname, cname)) => {
                let Some(g) = s.groups.get(gname) else {
                    continue;
                };
                let (start, hist) = match gt {
                    Some(id) => (*id, true),
                    // Woken, Redis compares with the last ID (a tombstone
                    // too); served at once, with the last live entry.
                    None if woken => {
                        if s.last_id > g.last_id {
                            (g.last_id, false)
                        } else {
                            continue;
                        }
                    }
                    None if s.length > 0 => {
                        let top = s.edge(false, true).unwrap_or(Id::MIN);
                        if top > g.last_id {
                            (g.last_id, false)
                        } else {
                            continue;
                        }
                    }
                    None => continue,
                };
                let g = s.groups.get_mut(gname).expect("group");
                match g.consumers.get_mut(cname) {
                    Some(c) => c.seen_time = now,
                    None => {
                        g.create_consumer(cname, now);
                        dirty += 1;
                        new_consumer.push(key);
                        if noack {
                            props.createconsumer(key, gname, cname);
                        }
                    }
                }
                dirty += 1;
                // Entries after the ID, for both (Redis's `streamIncrID`).
                let Some(from) = start.incr() else { continue };
                if hist {
                    history(s, gname, cname, from, count as usize, now)
                } else {
                    deliver(
                        s,
                        key,
                        gname,
                        cname,
                        from,
                        count as usize,
                        noack,
                        now,
                        &mut props,
                    )
                }
            }
            None => {
                let gt = gt.unwrap_or(Id::MAX);
                let ready = if woken {
                    s.last_id > gt
                } else {
                    s.length > 0 && s.edge(false, true).is_some_and(|top| top > gt)
                };
                if !ready {
                    continue;
                }
                let Some(from) = gt.incr() else { continue };
                s.range(from, Id::MAX, false, count as usize, true)
                    .into_iter()
                    .map(entry_reply)
                    .collect()
            }
        };
        served.push((Reply::bulk(key), Reply::Array(entries)));
    }
    for key in new_consumer {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    if group_cmd {
        // Propagated as what it did, never as itself.
        ctx.propagate_atomic(props.0);
        ctx.dirty(dirty);
        if dirty > 0 {
            for k in 0..n {
                ctx.shard.written(ctx.db, args.get(streams_at + k));
            }
        }
    }
    if !served.is_empty() {
        return Reply::Keyed(served);
    }
    let Some(t) = timeout else {
        return Reply::NilArray;
    };
    if ctx.in_multi {
        return Reply::NilArray;
    }
    // Park on every key; re-run with `$` resolved and Redis's COUNT for
    // a woken reader.
    let mut rerun: Vec<Bytes> = vec![Bytes::copy_from_slice(args.get(0))];
    if let Some((g, c)) = group {
        rerun.extend([
            b("GROUP"),
            Bytes::copy_from_slice(g),
            Bytes::copy_from_slice(c),
        ]);
        if noack {
            rerun.push(b("NOACK"));
        }
    }
    rerun.extend([b("BLOCK"), num(t)]);
    rerun.extend([
        b("COUNT"),
        num(if count > 0 {
            count
        } else {
            BLOCKED_DEFAULT_COUNT
        }),
    ]);
    rerun.push(b("STREAMS"));
    let keys: Vec<Bytes> = (0..n)
        .map(|k| Bytes::copy_from_slice(args.get(streams_at + k)))
        .collect();
    rerun.extend(keys.iter().cloned());
    for (k, id) in ids.iter().enumerate() {
        rerun.push(match id {
            None => b(">"),
            Some(id) if args.get(streams_at + n + k) == b"$" => id.text(),
            Some(_) => Bytes::copy_from_slice(args.get(streams_at + n + k)),
        });
    }
    ctx.block = Some(Block {
        keys,
        deadline_ms: (t > 0).then(|| now.saturating_add(t)),
        rerun: Some(rerun),
    });
    Reply::NilArray
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::status(*l)).collect())
}

/// A container's subcommand arity (Redis checks it before the handler):
/// `Err` with the reply when the subcommand is unknown or miscounted.
fn sub_arity(args: &Args, cmd: &str, table: &[(&str, i32)]) -> Result<String, Reply> {
    let sub = args.get(1).to_ascii_lowercase();
    let name = String::from_utf8_lossy(&sub).into_owned();
    let Some(&(_, arity)) = table.iter().find(|(n, _)| *n == name) else {
        return Err(err(error::unknown_subcommand(args.get(1), cmd)));
    };
    let argc = args.len() as i32;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Err(err(error::wrong_arity(&format!("{cmd}|{name}"))));
    }
    Ok(name)
}

/// ```text
/// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]
/// XGROUP SETID key group id|$ [ENTRIESREAD n]
/// XGROUP DESTROY key group
/// XGROUP CREATECONSUMER key group consumer
/// XGROUP DELCONSUMER key group consumer
/// XGROUP HELP
/// ```
fn xgroup(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = match sub_arity(
        &args,
        "xgroup",
        &[
            ("create", -5),
            ("setid", -5),
            ("destroy", 4),
            ("createconsumer", 5),
            ("delconsumer", 5),
            ("help", 2),
        ],
    ) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if sub == "help" {
        return help(XGROUP_HELP);
    }
    let syntax = || err(error::subcommand_syntax(args.get(1), "xgroup"));
    let (key, gname) = (args.get(2), args.get(3));
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_INVALID;
    let mut i = 5;
    while i < args.len() {
        let a = args.get(i);
        if sub == "create" && eq(a, "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid") && eq(a, "entriesread") && i + 1 < args.len()
        {
            entries_read = match int_arg(args.get(i + 1), None) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if entries_read < 0 && entries_read != ENTRIES_READ_INVALID {
                return Reply::err("ERR value for ENTRIESREAD must be positive or -1");
            }
            i += 2;
        } else {
            return syntax();
        }
    }
    let now = ctx.now_ms;
    let db = ctx.db;
    let exists = match write::<Stream>(ctx, key) {
        Err(e) => return e,
        Ok(s) => s.is_some(),
    };
    if !mkstream {
        if !exists {
            return Reply::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        }
        let has_group =
            matches!(write::<Stream>(ctx, key), Ok(Some(s)) if s.groups.contains_key(gname));
        if !has_group && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
            return err(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                text(gname),
                text(key)
            ));
        }
    }
    match sub.as_str() {
        "create" if args.len() <= 8 => {
            let ida = args.get(4);
            let id = if ida == b"$" {
                match write::<Stream>(ctx, key) {
                    Ok(Some(s)) => s.last_id,
                    _ => Id::MIN,
                }
            } else {
                match parse_strict(ida) {
                    Ok(id) => id,
                    Err(e) => return e,
                }
            };
            if !exists {
                ctx.shard
                    .set(db, key, Value::Stream(Box::new(Stream::new())), now);
            }
            let Ok(Some(s)) = write::<Stream>(ctx, key) else {
                return Reply::Nil;
            };
            if s.groups.contains_key(gname) {
                return Reply::err("BUSYGROUP Consumer Group name already exists");
            }
            s.groups.insert(gname.into(), Group::new(id, entries_read));
            ctx.shard.written(db, key);
            ctx.notify(notify::STREAM, "xgroup-create", key);
            ctx.dirty(1);
            Reply::Ok
        }
        "setid" if args.len() == 5 || args.len() == 7 => {
            let Ok(Some(s)) = write::<Stream>(ctx, key) else {
                return Reply::Nil;
            };
            let ida = args.get(4);
            let id = if ida == b"$" {
                s.last_id
            } else {
                match parse_id(ida, 0) {
                    Ok(id) => id,
                    Err(e) => return e,
                }
            };
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.shard.written(db, key);
            ctx.notify(notify::STREAM, "xgroup-setid", key);
            ctx.dirty(1);
            Reply::Ok
        }
        "destroy" => {
            let Ok(Some(s)) = write::<Stream>(ctx, key) else {
                return Reply::Int(0);
            };
            if s.groups.remove(gname).is_some() {
                ctx.shard.written(db, key);
                ctx.shard.signal_ready(db, key);
                ctx.notify(notify::STREAM, "xgroup-destroy", key);
                ctx.dirty(1);
                Reply::Int(1)
            } else {
                Reply::Int(0)
            }
        }
        "createconsumer" => {
            let Ok(Some(s)) = write::<Stream>(ctx, key) else {
                return Reply::Int(0);
            };
            let created = s
                .groups
                .get_mut(gname)
                .is_some_and(|g| g.create_consumer(args.get(4), now));
            if created {
                ctx.shard.written(db, key);
                ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
                ctx.dirty(1);
            }
            Reply::Int(created as i64)
        }
        "delconsumer" => {
            let Ok(Some(s)) = write::<Stream>(ctx, key) else {
                return Reply::Int(0);
            };
            let pending = s
                .groups
                .get_mut(gname)
                .and_then(|g| g.delete_consumer(args.get(4)));
            if pending.is_some() {
                ctx.shard.written(db, key);
                ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
                ctx.dirty(1);
            }
            Reply::Int(pending.unwrap_or(0) as i64)
        }
        _ => syntax(),
    }
}

/// ```text
/// XACK key group id [id ...]
/// ```
fn xack(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (key, gname) = (args.get(1), args.get(2));
    match read(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return Reply::Int(0),
    }
    let mut ids = Vec::with_capacity(args.len() - 3);
    for a in args.iter_from(3) {
        match parse_strict(a) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let Ok(Some(s)) = write::<Stream>(ctx, key) else {
        return Reply::Int(0);
    };
    let Some(g) = s.groups.get_mut(gname) else {
        return Reply::Int(0);
    };
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    if acked > 0 {
        ctx.shard.written(ctx.db, key);
    }
    ctx.dirty(acked as u64);
    Reply::Int(acked as i64)
}

fn nogroup(key: &[u8], group: &[u8]) -> Reply {
    err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// ```text
/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
/// ```
fn xpending(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let argc = args.len();
    let (key, gname) = (args.get(1), args.get(2));
    if argc != 3 && !(6..=9).contains(&argc) {
        return Reply::err(error::SYNTAX);
    }
    let mut range = None;
    if argc >= 6 {
        let parsed = (|| {
            let mut at = 3;
            let mut minidle = 0;
            if eq(args.get(3), "idle") {
                minidle = int_arg(args.get(4), None)?;
                if argc < 8 {
                    return Err(Reply::err(error::SYNTAX));
                }
                at += 2;
            }
            let count = int_arg(args.get(at + 2), None)?.max(0);
            let (mut start, sx) = parse_interval(args.get(at), 0)?;
            if sx {
                start = start.incr().ok_or_else(|| Reply::err(BAD_START))?;
            }
            let (mut end, ex) = parse_interval(args.get(at + 1), u64::MAX)?;
            if ex {
                end = end.decr().ok_or_else(|| Reply::err(BAD_END))?;
            }
            let consumer = (at + 3 < argc).then(|| args.get(at + 3));
            Ok((minidle, start, end, count, consumer))
        })();
        match parsed {
            Ok(p) => range = Some(p),
            Err(e) => return e,
        }
    }
    let now = ctx.now_ms;
    let s = match read(ctx, key) {
        Err(e) => return e,
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(gname)) else {
        return nogroup(key, gname);
    };
    let Some((minidle, start, end, count, consumer)) = range else {
        if g.pel.is_empty() {
            return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let per: Vec<Reply> = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| Reply::Array(vec![Reply::bulk(n), Reply::bulk_int(c.pel.len() as i64)]))
            .collect();
        return Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(per),
        ]);
    };
    let ids: Box<dyn Iterator<Item = Id>> = match consumer {
        Some(c) => match g.consumers.get(c) {
            None => return Reply::Array(vec![]),
            Some(c) => Box::new(c.pel.range(start..).copied()),
        },
        None => Box::new(g.pel.range(start..).map(|(k, _)| *k)),
    };
    let mut out = Vec::new();
    let mut left = count;
    for id in ids {
        if left == 0 || id > end {
            break;
        }
        let Some(n) = g.pel.get(&id) else { continue };
        if minidle != 0 && now.wrapping_sub(n.delivery_time) < minidle {
            continue;
        }
        left -= 1;
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::bulk(&n.consumer),
            Reply::Int(now.wrapping_sub(n.delivery_time).max(0)),
            Reply::Int(n.delivery_count as i64),
        ]));
    }
    Reply::Array(out)
}

/// ```text
/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
/// ```
fn xclaim(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let argc = args.len();
    let (key, gname, cname) = (args.get(1), args.get(2), args.get(3));
    match read(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return nogroup(key, gname),
    }
    let minidle = match int_arg(
        args.get(4),
        Some("Invalid min-idle-time argument for XCLAIM"),
    ) {
        Ok(v) => v.max(0),
        Err(e) => return e,
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argc {
        match parse_strict(args.get(j)) {
            Ok(id) => ids.push((id, j)),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut force, mut justid) = (false, false);
    let mut retrycount = -1i64;
    let mut deliverytime = -1i64;
    let mut last_id = Id::MIN;
    while j < argc {
        let more = argc - 1 - j;
        let opt = args.get(j);
        if eq(opt, "force") {
            force = true;
        } else if eq(opt, "justid") {
            justid = true;
        } else if eq(opt, "idle") && more > 0 {
            j += 1;
            match int_arg(args.get(j), Some("Invalid IDLE option argument for XCLAIM")) {
                Ok(v) => deliverytime = now.wrapping_sub(v),
                Err(e) => return e,
            }
        } else if eq(opt, "time") && more > 0 {
            j += 1;
            match int_arg(args.get(j), Some("Invalid TIME option argument for XCLAIM")) {
                Ok(v) => deliverytime = v,
                Err(e) => return e,
            }
        } else if eq(opt, "retrycount") && more > 0 {
            j += 1;
            match int_arg(
                args.get(j),
                Some("Invalid RETRYCOUNT option argument for XCLAIM"),
            ) {
                Ok(v) => retrycount = v,
                Err(e) => return e,
            }
        } else if eq(opt, "lastid") && more > 0 {
            j += 1;
            match parse_strict(args.get(j)) {
                Ok(id) => last_id = id,
                Err(e) => return e,
            }
        } else {
            return err(format!("ERR Unrecognized XCLAIM option '{}'", text(opt)));
        }
        j += 1;
    }
    let Ok(Some(s)) = write::<Stream>(ctx, key) else {
        return Reply::Nil;
    };
    let mut props = Props(Vec::new());
    let mut dirty = 0u64;
    let mut propagate_last = false;
    {
        let Some(g) = s.groups.get_mut(gname) else {
            return nogroup(key, gname);
        };
        if last_id > g.last_id {
            g.last_id = last_id;
            propagate_last = true;
        }
    }
    if deliverytime != -1 {
        if deliverytime < 0 || deliverytime > now {
            deliverytime = now;
        }
    } else {
        deliverytime = now;
    }
    let mut out = Vec::new();
    let mut consumer_ready = false;
    let mut new_consumer = false;
    for (id, at) in ids {
        let exists = s.exists(id);
        let fields = if exists && !justid {
            s.range(id, id, false, 1, true).pop()
        } else {
            None
        };
        let Some(g) = s.groups.get_mut(gname) else {
            break;
        };
        let has_nack = g.pel.contains_key(&id);
        if !exists {
            if has_nack {
                props.xclaim_as(key, gname, g, id, Bytes::copy_from_slice(args.get(at)));
                propagate_last = false;
                dirty += 1;
                g.ack(id);
            }
            continue;
        }
        let owned = if has_nack {
            true
        } else if force {
            g.pel.insert(
                id,
                crate::stream::Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: Box::default(),
                },
            );
            false
        } else {
            continue;
        };
        if owned && minidle > 0 {
            let t = g.pel.get(&id).map_or(now, |n| n.delivery_time);
            if now.wrapping_sub(t) < minidle {
                continue;
            }
        }
        if !consumer_ready {
            match g.consumers.get_mut(cname) {
                Some(c) => c.seen_time = now,
                None => {
                    g.create_consumer(cname, now);
                    dirty += 1;
                    new_consumer = true;
                }
            }
            consumer_ready = true;
        }
        let nack = g.assign(id, cname, now, false);
        nack.delivery_time = deliverytime;
        if retrycount >= 0 {
            nack.delivery_count = retrycount as u64;
        } else if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        out.push(match fields {
            Some(e) => entry_reply(e),
            None => id_reply(id),
        });
        props.xclaim_as(key, gname, g, id, Bytes::copy_from_slice(args.get(at)));
        propagate_last = false;
        dirty += 1;
    }
    if propagate_last {
        if let Some(g) = s.groups.get(gname) {
            props.setid(key, gname, g);
        }
        dirty += 1;
    }
    if new_consumer {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.propagate_atomic(props.0);
    ctx.dirty(dirty);
    if dirty > 0 {
        ctx.shard.written(ctx.db, key);
    }
    Reply::Array(out)
}

/// ```text
/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
/// ```
fn xautoclaim(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let argc = args.len();
    let (key, gname, cname) = (args.get(1), args.get(2), args.get(3));
    let parsed = (|| {
        let minidle = int_arg(
            args.get(4),
            Some("Invalid min-idle-time argument for XAUTOCLAIM"),
        )?
        .max(0);
        let (mut start, sx) = parse_interval(args.get(5), 0)?;
        if sx {
            start = start.incr().ok_or_else(|| Reply::err(BAD_START))?;
        }
        let mut count = 100i64;
        let mut justid = false;
        let mut j = 6;
        while j < argc {
            let more = argc - 1 - j;
            let opt = args.get(j);
            if eq(opt, "count") && more > 0 {
                let max = i64::MAX / 16;
                count = match crate::resp::parse_i64(args.get(j + 1)) {
                    Some(c) if (1..=max).contains(&c) => c,
                    _ => return Err(Reply::err("ERR COUNT must be > 0")),
                };
                j += 1;
            } else if eq(opt, "justid") {
                justid = true;
            } else {
                return Err(Reply::err(error::SYNTAX));
            }
            j += 1;
        }
        Ok((minidle, start, count, justid))
    })();
    let (minidle, start, mut count, justid) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    match read(ctx, key) {
        Err(e) => return e,
        Ok(Some(s)) if s.groups.contains_key(gname) => {}
        Ok(_) => return nogroup(key, gname),
    }
    let now = ctx.now_ms;
    let Ok(Some(s)) = write::<Stream>(ctx, key) else {
        return Reply::Nil;
    };
    let mut attempts = count.saturating_mul(10);
    let mut props = Props(Vec::new());
    let mut dirty = 0u64;
    let mut out = Vec::new();
    let mut deleted = Vec::new();
    let mut consumer_ready = false;
    let mut new_consumer = false;
    let mut cursor = start;
    let mut end_id = Id::MIN;
    loop {
        let next = s
            .groups
            .get(gname)
            .and_then(|g| g.pel.range(cursor..).next().map(|(k, _)| *k));
        let Some(id) = next else {
            break;
        };
        if attempts == 0 || count == 0 {
            end_id = id;
            break;
        }
        attempts -= 1;
        cursor = match id.incr() {
            Some(c) => c,
            None => Id::MAX,
        };
        let exists = s.exists(id);
        let fields = if exists && !justid {
            s.range(id, id, false, 1, true).pop()
        } else {
            None
        };
        let Some(g) = s.groups.get_mut(gname) else {
            break;
        };
        if !exists {
            props.xclaim(key, gname, g, id);
            dirty += 1;
            g.ack(id);
            deleted.push(id_reply(id));
            count -= 1;
            if id == Id::MAX {
                break;
            }
            continue;
        }
        if minidle > 0 {
            let t = g.pel.get(&id).map_or(now, |n| n.delivery_time);
            if now.wrapping_sub(t) < minidle {
                if id == Id::MAX {
                    break;
                }
                continue;
            }
        }
        if !consumer_ready {
            match g.consumers.get_mut(cname) {
                Some(c) => c.seen_time = now,
                None => {
                    g.create_consumer(cname, now);
                    dirty += 1;
                    new_consumer = true;
                }
            }
            consumer_ready = true;
        }
        let nack = g.assign(id, cname, now, false);
        nack.delivery_time = now;
        if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        out.push(match fields {
            Some(e) => entry_reply(e),
            None => id_reply(id),
        });
        count -= 1;
        props.xclaim(key, gname, g, id);
        dirty += 1;
        if id == Id::MAX {
            break;
        }
    }
    if new_consumer {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.propagate_atomic(props.0);
    ctx.dirty(dirty);
    if dirty > 0 {
        ctx.shard.written(ctx.db, key);
    }
    Reply::Array(vec![
        id_reply(end_id),
        Reply::Array(out),
        Reply::Array(deleted),
    ])
}

fn bs(s: &'static str) -> Reply {
    Reply::Bulk(b(s))
}

fn lag_reply(s: &Stream, g: &Group) -> Reply {
    s.lag(g).map_or(Reply::Nil, Reply::Int)
}

fn entries_read_reply(g: &Group) -> Reply {
    if g.entries_read != ENTRIES_READ_INVALID {
        Reply::Int(g.entries_read)
    } else {
        Reply::Nil
    }
}

/// ```text
/// XINFO STREAM key [FULL [COUNT count]]
/// XINFO GROUPS key
/// XINFO CONSUMERS key group
/// XINFO HELP
/// ```
fn xinfo(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = match sub_arity(
        &args,
        "xinfo",
        &[("stream", -3), ("groups", 3), ("consumers", 4), ("help", 2)],
    ) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if sub == "help" {
        return help(XINFO_HELP);
    }
    let syntax = || err(error::subcommand_syntax(args.get(1), "xinfo"));
    let key = args.get(2);
    let now = ctx.now_ms;
    let s = match read(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err(error::NO_KEY),
        Ok(Some(s)) => s,
    };
    match sub.as_str() {
        "consumers" => {
            let Some(g) = s.groups.get(args.get(3)) else {
                return err(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    text(args.get(3)),
                    text(key)
                ));
            };
            Reply::Array(
                g.consumers
                    .iter()
                    .map(|(n, c)| {
                        Reply::Map(vec![
                            (bs("name"), Reply::bulk(n)),
                            (bs("pending"), Reply::Int(c.pel.len() as i64)),
                            (bs("idle"), Reply::Int(now.wrapping_sub(c.seen_time).max(0))),
                        ])
                    })
                    .collect(),
            )
        }
        "groups" => Reply::Array(
            s.groups
                .iter()
                .map(|(n, g)| {
                    Reply::Map(vec![
                        (bs("name"), Reply::bulk(n)),
                        (bs("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (bs("pending"), Reply::Int(g.pel.len() as i64)),
                        (bs("last-delivered-id"), id_reply(g.last_id)),
                        (bs("entries-read"), entries_read_reply(g)),
                        (bs("lag"), lag_reply(s, g)),
                    ])
                })
                .collect(),
        ),
        _ => {
            let opts = args.len() - 3;
            let mut full = false;
            let mut count = 10i64;
            if opts > 0 {
                if (opts != 1 && opts != 3) || !eq(args.get(3), "full") {
                    return syntax();
                }
                full = true;
                if opts == 3 {
                    if !eq(args.get(4), "count") {
                        return syntax();
                    }
                    count = match int_arg(args.get(5), None) {
                        Ok(c) if c < 0 => 10,
                        Ok(c) => c,
                        Err(e) => return e,
                    };
                }
            }
            let mut m = vec![
                (bs("length"), Reply::Int(s.length as i64)),
                (bs("radix-tree-keys"), Reply::Int(s.node_count() as i64)),
                (bs("radix-tree-nodes"), Reply::Int(s.rax_nodes() as i64)),
                (bs("last-generated-id"), id_reply(s.last_id)),
                (bs("max-deleted-entry-id"), id_reply(s.max_deleted)),
                (bs("entries-added"), Reply::Int(s.entries_added as i64)),
                (bs("recorded-first-entry-id"), id_reply(s.first_id)),
            ];
            if !full {
                m.push((bs("groups"), Reply::Int(s.groups.len() as i64)));
                let edge = |rev: bool| {
                    s.range(Id::MIN, Id::MAX, rev, 1, true)
                        .pop()
                        .map_or(Reply::Nil, entry_reply)
                };
                m.push((bs("first-entry"), edge(false)));
                m.push((bs("last-entry"), edge(true)));
                return Reply::Map(m);
            }
            let count = count as usize;
            let take = if count == 0 { usize::MAX } else { count };
            let entries = s.range(Id::MIN, Id::MAX, false, count, true);
            m.push((
                bs("entries"),
                Reply::Array(entries.into_iter().map(entry_reply).collect()),
            ));
            let groups = s
                .groups
                .iter()
                .map(|(n, g)| {
                    let pending = g
                        .pel
                        .iter()
                        .take(take)
                        .map(|(id, nk)| {
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::bulk(&nk.consumer),
                                Reply::Int(nk.delivery_time),
                                Reply::Int(nk.delivery_count as i64),
                            ])
                        })
                        .collect();
                    let consumers = g
                        .consumers
                        .iter()
                        .map(|(cn, c)| {
                            let pend = c
                                .pel
                                .iter()
                                .take(take)
                                .map(|id| {
                                    let nk = g.pel.get(id);
                                    Reply::Array(vec![
                                        id_reply(*id),
                                        Reply::Int(nk.map_or(0, |n| n.delivery_time)),
                                        Reply::Int(nk.map_or(0, |n| n.delivery_count as i64)),
                                    ])
                                })
                                .collect();
                            Reply::Map(vec![
                                (bs("name"), Reply::bulk(cn)),
                                (bs("seen-time"), Reply::Int(c.seen_time)),
                                (bs("pel-count"), Reply::Int(c.pel.len() as i64)),
                                (bs("pending"), Reply::Array(pend)),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        (bs("name"), Reply::bulk(n)),
                        (bs("last-delivered-id"), id_reply(g.last_id)),
                        (bs("entries-read"), entries_read_reply(g)),
                        (bs("lag"), lag_reply(s, g)),
                        (bs("pel-count"), Reply::Int(g.pel.len() as i64)),
                        (bs("pending"), Reply::Array(pending)),
                        (bs("consumers"), Reply::Array(consumers)),
                    ])
                })
                .collect();
            m.push((bs("groups"), Reply::Array(groups)));
            Reply::Map(m)
        }
    }
}
