//! Geospatial commands (`geo` group): GEOADD, GEODIST, GEOPOS, GEOHASH,
//! GEOSEARCH, GEOSEARCHSTORE and the GEORADIUS family, on sorted sets whose
//! scores are 52-bit geohashes ([`crate::geo`]), with Redis 7.0's replies,
//! errors and search order (`geo.c`).

use super::{check, flags::*, peek, Ctx, Spec};
use crate::args::{Args, OwnedArgs};
use crate::error;
use crate::geo::{self, Kind, Shape};
use crate::reply::Reply;
use crate::value::Value;
use crate::zset::ZSet;
use bytes::Bytes;
use std::ops::Bound;

/// The geo family's table.
pub static COMMANDS: &[Spec] = &[
    Spec::new("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), geoadd),
    Spec::new("geodist", -4, READONLY, (1, 1, 1), geodist),
    Spec::new("geohash", -2, READONLY, (1, 1, 1), geohash),
    Spec::new("geopos", -2, READONLY, (1, 1, 1), geopos),
    Spec::new("georadius", -6, WRITE | DENYOOM, (1, 1, 1), georadius).movable(radius_keys),
    Spec::new("georadius_ro", -6, READONLY, (1, 1, 1), georadius_ro),
    Spec::new(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM,
        (1, 1, 1),
        georadiusbymember,
    )
    .movable(radius_keys),
    Spec::new(
        "georadiusbymember_ro",
        -5,
        READONLY,
        (1, 1, 1),
        georadiusbymember_ro,
    ),
    Spec::new("geosearch", -7, READONLY, (1, 1, 1), geosearch),
    Spec::new(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        (1, 2, 1),
        geosearchstore,
    ),
];

const UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

/// GEORADIUS's and GEORADIUSBYMEMBER's keys (Redis's `georadiusGetKeys`):
/// the source, and the key after the last STORE or STOREDIST.
fn radius_keys(args: &Args) -> Result<Vec<usize>, Reply> {
    let mut stored = None;
    let mut i = 5;
    while i < args.len() {
        if (args.is(i, "store") || args.is(i, "storedist")) && i + 1 < args.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    Ok(std::iter::once(1).chain(stored).collect())
}

/// A longitude and latitude at `args[i]`, `args[i + 1]`
/// (`extractLongLatOrReply`).
fn lonlat(args: &Args, i: usize) -> Result<[f64; 2], Reply> {
    let lon = float_or(args, i, error::NOT_FLOAT)?;
    let lat = float_or(args, i + 1, error::NOT_FLOAT)?;
    if !(geo::LONG_MIN..=geo::LONG_MAX).contains(&lon)
        || !(geo::LAT_MIN..=geo::LAT_MAX).contains(&lat)
    {
        return Err(Reply::err(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok([lon, lat])
}

/// Meters per `unit` (`extractUnitOrReply`).
fn unit(u: &[u8]) -> Result<f64, Reply> {
    match u.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(Reply::err(UNIT)),
    }
}

/// A float argument as Redis reads it, with `msg` as the error
/// (`getDoubleFromObjectOrReply`).
fn float_or(args: &Args, i: usize, msg: &'static str) -> Result<f64, Reply> {
    crate::ldouble::string2d(args.get(i)).ok_or_else(|| Reply::err(msg))
}

/// `radius unit` at `args[i]` (`extractDistanceOrReply`): the radius and
/// meters per unit.
fn radius(args: &Args, i: usize) -> Result<(f64, f64), Reply> {
    let r = float_or(args, i, "ERR need numeric radius")?;
    if r < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((r, unit(args.get(i + 1))?))
}

/// `width height unit` at `args[i]` (`extractBoxOrReply`).
fn box_size(args: &Args, i: usize) -> Result<(f64, f64, f64), Reply> {
    let w = float_or(args, i, "ERR need numeric width")?;
    let h = float_or(args, i + 1, "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(args.get(i + 2))?))
}

/// The position of `member` of the sorted set at `key`.
fn member_pos(ctx: &Ctx, key: &[u8], member: &[u8]) -> Option<[f64; 2]> {
    let score = peek::<ZSet>(ctx, key)?.score(member)?;
    Some(geo::decode_score(score))
}

/// ```text
/// GEOADD key [NX | XX] [CH] longitude latitude member [longitude latitude member ...]
/// ```
/// Adds the points as ZADD of their geohash scores, and replicates that
/// ZADD, as Redis does.
fn geoadd(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let (mut nx, mut xx) = (false, false);
    let mut longidx = 2;
    while longidx < args.len() {
        match args.get(longidx).to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"ch" => {}
            _ => break,
        }
        longidx += 1;
    }
    if !(args.len() - longidx).is_multiple_of(3) || (xx && nx) {
        return Reply::err(error::SYNTAX);
    }
    let mut zadd: Vec<Bytes> = vec![Bytes::from_static(b"zadd")];
    zadd.extend((1..longidx).map(|i| args.bytes(i)));
    for i in (longidx..args.len()).step_by(3) {
        let [lon, lat] = tri!(lonlat(&args, i));
        // `lonlat` checked the limits the encoding checks: always Some.
        let Some(score) = geo::score_of(lon, lat) else {
            return Reply::err(error::SYNTAX);
        };
        zadd.push(Bytes::from(score.to_string()));
        zadd.push(args.bytes(i + 2));
    }
    let owned = OwnedArgs::from_iter(zadd.iter().map(|b| &b[..]));
    let reply = {
        let mut sub = Ctx::new(&mut *ctx.shard, ctx.db, ctx.now_ms, owned.as_args());
        sub.slots = ctx.slots.clone();
        sub.in_multi = ctx.in_multi;
        super::zset::zadd(&mut sub)
    };
    ctx.propagate_as(vec![zadd]);
    reply
}

/// ```text
/// GEODIST key member1 member2 [M | KM | FT | MI]
/// ```
/// The distance between two members, 4 decimals; nil when one is missing.
fn geodist(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let to_meter = match args.len() {
        5 => tri!(unit(args.get(4))),
        4 => 1.0,
        _ => return Reply::err(error::SYNTAX),
    };
    let key = args.get(1);
    if !tri!(check::<ZSet>(ctx, key)) {
        return Reply::Nil;
    }
    match (
        member_pos(ctx, key, args.get(2)),
        member_pos(ctx, key, args.get(3)),
    ) {
        (Some([x1, y1]), Some([x2, y2])) => {
            let d = geo::distance(x1, y1, x2, y2) / to_meter;
            Reply::Bulk(Bytes::from(geo::fmt_distance(d)))
        }
        _ => Reply::Nil,
    }
}

/// ```text
/// GEOHASH key [member [member ...]]
/// ```
/// Each member's standard 11-character geohash, nil for a missing one.
fn geohash(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    tri!(check::<ZSet>(ctx, key));
    let z = peek::<ZSet>(ctx, key);
    Reply::Array(
        args.iter_from(2)
            .map(|m| match z.and_then(|z| z.score(m)) {
                Some(s) => Reply::bulk(&geo::hash_string(s)),
                None => Reply::Nil,
            })
            .collect(),
    )
}

/// ```text
/// GEOPOS key [member [member ...]]
/// ```
/// Each member's longitude and latitude, a nil array for a missing one.
fn geopos(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let key = args.get(1);
    tri!(check::<ZSet>(ctx, key));
    let z = peek::<ZSet>(ctx, key);
    Reply::Array(
        args.iter_from(2)
            .map(|m| match z.and_then(|z| z.score(m)) {
                Some(s) => {
                    let [lon, lat] = geo::decode_score(s);
                    Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
                }
                None => Reply::NilArray,
            })
            .collect(),
    )
}

/// Which command of the search family runs (Redis's `georadiusGeneric`
/// flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEORADIUS: centre from coordinates.
    Coords,
    /// GEORADIUSBYMEMBER: centre from a member.
    Member,
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
}

/// One point found.
#[derive(Clone)]
struct Point {
    member: Bytes,
    score: f64,
    dist: f64,
    xy: [f64; 2],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// The points of `z` inside `shape`, box by box in Redis's order; with
/// `limit` (ANY) it stops once that many are found
/// (`membersOfAllNeighbors`).
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let boxes = geo::areas_by_shape(shape);
    let mut found = Vec::new();
    let full = |found: &Vec<Point>| limit > 0 && found.len() >= limit;
    // Index 0 counts as "nothing processed yet", as in Redis.
    let mut last = 0;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() || (last != 0 && *b == boxes[last]) {
            continue;
        }
        if full(&found) {
            break;
        }
        let (min, max) = geo::score_range(*b);
        for (m, score) in z.range_by_score(Bound::Included(min as f64), Bound::Excluded(max as f64))
        {
            let xy = geo::decode_score(score);
            if let Some(dist) = geo::within(shape, xy) {
                found.push(Point {
                    member: Bytes::copy_from_slice(m),
                    score,
                    dist,
                    xy,
                });
            }
            if full(&found) {
                break;
            }
        }
        last = i;
    }
    found
}

/// The body of the search family (Redis's `georadiusGeneric`); the source
/// key is `args[src]`.
fn radius_generic(ctx: &mut Ctx, src: usize, form: Form, nostore: bool) -> Reply {
    let args = ctx.args;
    let src_key = args.get(src);
    let exists = tri!(check::<ZSet>(ctx, src_key));
    let search_form = matches!(form, Form::Search | Form::SearchStore);
    let mut store: Option<&[u8]> = None;
    let mut storedist = false;
    let mut center = [0.0f64; 2];
    let mut kind = Kind::Circle(0.0);
    let mut conversion = 0.0;
    let base = match form {
        Form::Coords => {
            center = tri!(lonlat(&args, 2));
            let (r, c) = tri!(radius(&args, 4));
            (kind, conversion) = (Kind::Circle(r), c);
            6
        }
        // Without a source there is nothing to decode: the options are
        // still parsed, to know which empty reply to give.
        Form::Member if !exists => 5,
        Form::Member => {
            let Some(xy) = member_pos(ctx, src_key, args.get(2)) else {
                return Reply::err(NO_MEMBER);
            };
            center = xy;
            let (r, c) = tri!(radius(&args, 3));
            (kind, conversion) = (Kind::Circle(r), c);
            5
        }
        Form::Search => 2,
        Form::SearchStore => {
            store = Some(args.get(1));
            3
        }
    };
    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let mut i = base;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let arg = args.get(i).to_ascii_lowercase();
        match arg.as_slice() {
            b"withdist" => withdist = true,
            b"withhash" => withhash = true,
            b"withcoord" => withcoord = true,
            b"any" => any = true,
            b"asc" => sort = Sort::Asc,
            b"desc" => sort = Sort::Desc,
            b"count" if more >= 1 => {
                count = tri!(args.int(i + 1));
                if count <= 0 {
                    return Reply::err("ERR COUNT must be > 0");
                }
                i += 1;
            }
            b"store" | b"storedist" if more >= 1 && !nostore && !search_form => {
                store = Some(args.get(i + 1));
                storedist = arg == b"storedist";
                i += 1;
            }
            b"storedist" if form == Form::SearchStore => storedist = true,
            b"frommember" if more >= 1 && search_form && !fromloc => {
                if exists {
                    let Some(xy) = member_pos(ctx, src_key, args.get(i + 1)) else {
                        return Reply::err(NO_MEMBER);
                    };
                    center = xy;
                }
                frommember = true;
                i += 1;
            }
            b"fromlonlat" if more >= 2 && search_form && !frommember => {
                center = tri!(lonlat(&args, i + 1));
                fromloc = true;
                i += 2;
            }
            b"byradius" if more >= 2 && search_form && !bybox => {
                let (r, c) = tri!(radius(&args, i + 1));
                (kind, conversion) = (Kind::Circle(r), c);
                byradius = true;
                i += 2;
            }
            b"bybox" if more >= 3 && search_form && !byradius => {
                let (w, h, c) = tri!(box_size(&args, i + 1));
                (kind, conversion) = (Kind::Box(w, h), c);
                bybox = true;
                i += 3;
            }
            _ => return Reply::err(error::SYNTAX),
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let what = match form {
            Form::SearchStore => "GEOSEARCHSTORE",
            _ => "STORE option in GEORADIUS",
        };
        return Reply::err(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        ));
    }
    let name = || String::from_utf8_lossy(args.get(0)).into_owned();
    if search_form && !(frommember || fromloc) {
        return Reply::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        ));
    }
    if search_form && !(byradius || bybox) {
        return Reply::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        ));
    }
    if any && count == 0 {
        return Reply::err("ERR the ANY argument requires COUNT argument");
    }
    if !exists {
        return match store {
            Some(dst) => {
                if ctx.shard.remove(ctx.db, dst) {
                    ctx.notify(crate::notify::GENERIC, "del", dst);
                    ctx.dirty(1);
                }
                Reply::Int(0)
            }
            None => Reply::Array(Vec::new()),
        };
    }
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        xy: center,
        conversion,
        kind,
    };
    let limit = if any { count as usize } else { 0 };
    let mut found = match peek::<ZSet>(ctx, src_key) {
        Some(z) => search(z, &shape, limit),
        None => Vec::new(),
    };
    if found.is_empty() && store.is_none() {
        return Reply::Array(Vec::new());
    }
    let returned = match usize::try_from(count) {
        Ok(c) if c > 0 && c < found.len() => c,
        _ => found.len(),
    };
    if sort != Sort::None {
        let cmp = |a: &Point, b: &Point| match sort {
            Sort::Desc => geo::cmp_dist(a.dist, b.dist).reverse(),
            _ => geo::cmp_dist(a.dist, b.dist),
        };
        if returned == found.len() {
            geo::merge_sort(&mut found, &cmp);
        } else {
            geo::pqsort(&mut found, 0, returned - 1, &cmp);
        }
    }
    found.truncate(returned);
    match store {
        None => {
            let options = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
            Reply::Array(
                found
                    .into_iter()
                    .map(|p| {
                        if options == 0 {
                            return Reply::Bulk(p.member);
                        }
                        let mut item = Vec::with_capacity(options + 1);
                        item.push(Reply::Bulk(p.member));
                        if withdist {
                            let d = geo::fmt_distance(p.dist / conversion);
                            item.push(Reply::Bulk(Bytes::from(d)));
                        }
                        if withhash {
                            item.push(Reply::Int(geo::c_double_to_i64(p.score)));
                        }
                        if withcoord {
                            item.push(Reply::Array(vec![
                                Reply::HumanDouble(p.xy[0]),
                                Reply::HumanDouble(p.xy[1]),
                            ]));
                        }
                        Reply::Array(item)
                    })
                    .collect(),
            )
        }
        Some(dst) => {
            let n = found.len();
            let db = ctx.db;
            if n > 0 {
                let lim = ctx.shard.limits;
                let mut z = ZSet::new_large();
                for p in &found {
                    let score = if storedist {
                        p.dist / conversion
                    } else {
                        p.score
                    };
                    z.insert(&p.member, score, &lim);
                }
                z.fit(&lim);
                ctx.shard.set(db, dst, Value::ZSet(Box::new(z)), ctx.now_ms);
                ctx.shard.signal_ready(db, dst);
                let event = if form == Form::SearchStore {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                ctx.notify(crate::notify::ZSET, event, dst);
                ctx.dirty(n as u64);
            } else if ctx.shard.remove(db, dst) {
                ctx.notify(crate::notify::GENERIC, "del", dst);
                ctx.dirty(1);
            }
            Reply::Int(n as i64)
        }
    }
}

/// ```text
/// GEORADIUS key longitude latitude radius M|KM|FT|MI [WITHCOORD] [WITHDIST]
///   [WITHHASH] [COUNT count [ANY]] [ASC|DESC] [STORE key | STOREDIST key]
/// ```
/// Members within a radius of a position (deprecated for GEOSEARCH).
fn georadius(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 1, Form::Coords, false)
}

/// GEORADIUS without STORE.
fn georadius_ro(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 1, Form::Coords, true)
}

/// ```text
/// GEORADIUSBYMEMBER key member radius M|KM|FT|MI [...GEORADIUS's options]
/// ```
/// Members within a radius of a member.
fn georadiusbymember(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 1, Form::Member, false)
}

/// GEORADIUSBYMEMBER without STORE.
fn georadiusbymember_ro(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 1, Form::Member, true)
}

/// ```text
/// GEOSEARCH key FROMMEMBER member | FROMLONLAT longitude latitude
///   BYRADIUS radius M|KM|FT|MI | BYBOX width height M|KM|FT|MI
///   [ASC|DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]
/// ```
/// Members inside a circle or a box.
fn geosearch(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 1, Form::Search, false)
}

/// ```text
/// GEOSEARCHSTORE destination source ...GEOSEARCH's area... [ASC|DESC]
///   [COUNT count [ANY]] [STOREDIST]
/// ```
/// GEOSEARCH stored as a sorted set (scores: geohashes, or distances).
fn geosearchstore(ctx: &mut Ctx) -> Reply {
    radius_generic(ctx, 2, Form::SearchStore, false)
}
