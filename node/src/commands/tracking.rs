//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO, with Redis 7.0's
//! checks, error texts and replies (`clientCommand` in networking.c).

use super::dispatch::{spawn, Next};
use crate::io::{Key, Tracking};
use crate::mesh::{AdminQuery, Effect, Request, Response, TaskDone};
use crate::shard::Shard;
use engine::{error, Args, Reply};

const REDIR_MISSING: &str = "ERR The client ID you want redirect to does not exist";

fn ok(shard: &mut Shard, key: Key, r: Reply) -> Next {
    shard.reply(key, &r);
    Next::Continue
}

/// Two prefixes overlap when one starts the other.
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// What CLIENT TRACKING ON asks for, once checked.
struct On {
    state: Box<Tracking>,
    /// Prefixes every core must start watching for this client.
    new_prefixes: Vec<Vec<u8>>,
    /// Redis 7.0's `checkPrefixCollisionsOrReply` replies an overlap
    /// between two given prefixes after the first as an error and yet
    /// goes on (it returns the index): that error, before the `+OK`.
    stray: Option<Reply>,
    /// The client's id.
    client: u64,
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP].
pub(super) fn tracking(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let n = args.len();
    let mut redir: Option<i64> = None;
    let (mut bcast, mut optin, mut optout, mut noloop) = (false, false, false, false);
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    let mut parse_err = None;
    let mut j = 3;
    while j < n {
        let more = j + 1 < n;
        if args.is(j, "redirect") && more {
            j += 1;
            if redir.is_some() {
                parse_err = Some(Reply::err(
                    "ERR A client can only redirect to a single other client",
                ));
                break;
            }
            match engine::resp::parse_i64(args.get(j)) {
                Some(v) => redir = Some(v),
                None => {
                    parse_err = Some(Reply::err(error::NOT_INT));
                    break;
                }
            }
        } else if args.is(j, "bcast") {
            bcast = true;
        } else if args.is(j, "optin") {
            optin = true;
        } else if args.is(j, "optout") {
            optout = true;
        } else if args.is(j, "noloop") {
            noloop = true;
        } else if args.is(j, "prefix") && more {
            j += 1;
            prefixes.push(args.get(j).to_vec());
        } else {
            parse_err = Some(Reply::err(error::SYNTAX));
            break;
        }
        j += 1;
    }
    // What to answer if the redirection target exists (Redis checks it
    // while parsing, so a missing one comes before any later error).
    let outcome: Result<Option<On>, Reply> = match parse_err {
        Some(e) => Err(e),
        None if args.is(2, "on") => check_on(
            shard,
            key,
            redir.unwrap_or(0) as u64,
            (bcast, optin, optout, noloop),
            prefixes,
        )
        .map(Some),
        None if args.is(2, "off") => Ok(None),
        None => Err(Reply::err(error::SYNTAX)),
    };
    let Some(r) = redir else {
        return finish(shard, key, outcome, None);
    };
    if r > 0 {
        // The target's core is remembered: connections stop moving.
        shard
            .shared
            .tracking_redirects
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let local = r > 0 && shard.conns.iter().any(|c| c.id == r as u64 && !c.closing);
    if local {
        let me = shard.id;
        return finish(shard, key, outcome, Some(me));
    }
    if r <= 0 || shard.cores == 1 {
        return ok(shard, key, Reply::err(REDIR_MISSING));
    }
    // The target may be another core's client.
    let rpc = shard.rpc.clone();
    let me = shard.id;
    spawn(shard, key, async move {
        let answers = rpc
            .call_all(|_| {
                Request::Admin(AdminQuery::ClientList {
                    ids: vec![r as u64],
                    kind: None,
                })
            })
            .await;
        let core = answers
            .iter()
            .position(|a| matches!(a, Response::Lines(l) if !l.is_empty()));
        let Some(core) = core.filter(|&c| c != me) else {
            return TaskDone::reply(key, Reply::err(REDIR_MISSING));
        };
        match outcome {
            Err(e) => TaskDone::reply(key, e),
            Ok(None) => TaskDone {
                conn: key,
                replies: vec![Reply::Ok],
                effects: vec![Effect::TrackingOff],
                encoded: engine::Encoded::default(),
            },
            Ok(Some(mut on)) => {
                on.state.redirect_core = core;
                register(&rpc, me, &on).await;
                done_on(key, on)
            }
        }
    })
}

/// CLIENT TRACKING OFF, or ON once checked: applied at once unless
/// prefixes must first be registered on every core.
fn finish(
    shard: &mut Shard,
    key: Key,
    outcome: Result<Option<On>, Reply>,
    redirect_core: Option<usize>,
) -> Next {
    match outcome {
        Err(e) => ok(shard, key, e),
        Ok(None) => {
            shard.tracking_off(key);
            ok(shard, key, Reply::Ok)
        }
        Ok(Some(mut on)) => {
            on.state.redirect_core = redirect_core.unwrap_or(shard.id);
            if on.new_prefixes.is_empty() {
                if let Some(e) = on.stray.take() {
                    shard.reply(key, &e);
                }
                shard.tracking_on(key, on.state);
                return ok(shard, key, Reply::Ok);
            }
            let rpc = shard.rpc.clone();
            let me = shard.id;
            spawn(shard, key, async move {
                register(&rpc, me, &on).await;
                done_on(key, on)
            })
        }
    }
}

/// Registers a client's new BCAST prefixes on every core, and waits for
/// all, so a write after the reply is seen.
async fn register(rpc: &std::rc::Rc<crate::mesh::Rpc>, me: usize, on: &On) {
    if on.new_prefixes.is_empty() {
        return;
    }
    let id = on.client;
    rpc.call_all(|_| Request::TrackPrefixes {
        id,
        core: me,
        prefixes: on.new_prefixes.clone(),
        on: true,
    })
    .await;
}

fn done_on(key: Key, on: On) -> TaskDone {
    let mut replies = Vec::new();
    replies.extend(on.stray);
    replies.push(Reply::Ok);
    TaskDone {
        conn: key,
        replies,
        effects: vec![Effect::Tracking(on.state)],
        encoded: engine::Encoded::default(),
    }
}

/// Redis's checks of CLIENT TRACKING ON against the options and the
/// client's current mode, and the state it enables (`enableTracking`).
fn check_on(
    shard: &Shard,
    key: Key,
    redirect: u64,
    (bcast, optin, optout, noloop): (bool, bool, bool, bool),
    prefixes: Vec<Vec<u8>>,
) -> Result<On, Reply> {
    let c = shard
        .conns
        .get(key)
        .ok_or_else(|| Reply::err(error::SYNTAX))?;
    let cur = c.tracking.as_deref();
    if !bcast && !prefixes.is_empty() {
        return Err(Reply::err(
            "ERR PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if cur.is_some_and(|t| t.bcast != bcast) {
        return Err(Reply::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    if bcast && (optin || optout) {
        return Err(Reply::err(
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if optin && optout {
        return Err(Reply::err(
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if cur.is_some_and(|t| (optin && t.optout) || (optout && t.optin)) {
        return Err(Reply::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    let existing: Vec<Vec<u8>> = cur.map(|t| t.prefixes.clone()).unwrap_or_default();
    let mut stray = None;
    if bcast {
        'check: for (i, p) in prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Err(Reply::Error(
                    format!(
                        "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                        String::from_utf8_lossy(p),
                        String::from_utf8_lossy(e)
                    )
                    .into(),
                ));
            }
            for q in &prefixes[i + 1..] {
                if overlap(p, q) {
                    let e = Reply::Error(
                        format!(
                            "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(q)
                        )
                        .into(),
                    );
                    if i == 0 {
                        return Err(e);
                    }
                    stray = Some(e);
                    break 'check;
                }
            }
        }
    }
    let mut all = existing.clone();
    let mut new_prefixes = Vec::new();
    if bcast {
        let wanted = if prefixes.is_empty() {
            vec![Vec::new()]
        } else {
            prefixes
        };
        for p in wanted {
            if !all.contains(&p) {
                all.push(p.clone());
                new_prefixes.push(p);
            }
        }
        all.sort();
    }
    let state = Box::new(Tracking {
        bcast,
        optin,
        optout,
        noloop,
        caching: cur.is_some_and(|t| t.caching),
        broken_redir: false,
        redirect,
        redirect_core: shard.id,
        prefixes: all,
    });
    Ok(On {
        state,
        new_prefixes,
        stray,
        client: c.id,
    })
}

/// CLIENT CACHING YES|NO.
pub(super) fn caching(shard: &mut Shard, key: Key, args: &Args) -> Next {
    let Some(c) = shard.conns.get_mut(key) else {
        return Next::Wait;
    };
    let Some(t) = c.tracking.as_deref_mut() else {
        return ok(shard, key, Reply::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    };
    let r = if args.is(2, "yes") {
        if t.optin {
            t.caching = true;
            Reply::Ok
        } else {
            Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            )
        }
    } else if args.is(2, "no") {
        if t.optout {
            t.caching = true;
            Reply::Ok
        } else {
            Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            )
        }
    } else {
        Reply::err(error::SYNTAX)
    };
    ok(shard, key, r)
}

/// CLIENT GETREDIR: the redirection (0: none), -1 when not tracking.
pub(super) fn getredir(shard: &mut Shard, key: Key) -> Next {
    let r = shard
        .conns
        .get(key)
        .and_then(|c| c.tracking.as_deref())
        .map_or(-1, |t| t.redirect as i64);
    ok(shard, key, Reply::Int(r))
}

/// CLIENT TRACKINGINFO.
pub(super) fn trackinginfo(shard: &mut Shard, key: Key) -> Next {
    let t = shard.conns.get(key).and_then(|c| c.tracking.as_deref());
    let mut flags = vec![Reply::bulk(if t.is_some() { b"on" } else { b"off" })];
    let mut redirect = -1;
    let mut prefixes = Vec::new();
    if let Some(t) = t {
        let mut flag = |on: bool, name: &'static [u8]| {
            if on {
                flags.push(Reply::bulk(name));
            }
        };
        flag(t.bcast, b"bcast");
        flag(t.optin, b"optin");
        flag(t.optin && t.caching, b"caching-yes");
        flag(t.optout, b"optout");
        flag(t.optout && t.caching, b"caching-no");
        flag(t.noloop, b"noloop");
        flag(t.broken_redir, b"broken_redirect");
        redirect = t.redirect as i64;
        prefixes = t.prefixes.iter().map(|p| Reply::bulk(&p[..])).collect();
    }
    let r = Reply::Map(vec![
        (Reply::bulk(b"flags"), Reply::Set(flags)),
        (Reply::bulk(b"redirect"), Reply::Int(redirect)),
        (Reply::bulk(b"prefixes"), Reply::Array(prefixes)),
    ]);
    ok(shard, key, r)
}
