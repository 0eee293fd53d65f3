//! Differential tests: COMMAND and its subcommands, slotd vs redis-server
//! 7.0.15, RESP2 and RESP3. Every command slotd has must be described
//! exactly as Redis describes it (flags, ACL categories, tips, key specs,
//! subcommands, docs), the commands slotd leaves out deliberately
//! (ARCHITECTURE.md, "Commands left out") must be the only ones missing,
//! and every subcommand the docs list must exist (answer something other
//! than an unknown-subcommand error).
use tests::{assert_same, RawConn, Resp, Server};

/// Redis 7.0 commands slotd does not have, each with its reason in
/// ARCHITECTURE.md.
const LEFT_OUT: &[&str] = &["acl", "module", "failover"];

fn parse(reply: &[u8]) -> Resp {
    Resp::parse(reply).expect("a whole reply").0
}

fn items(r: &Resp) -> &[Resp] {
    match r {
        Resp::Agg(_, Some(v)) => v,
        other => panic!("not an aggregate: {other:?}"),
    }
}

fn text(r: &Resp) -> String {
    match r {
        Resp::Bulk(_, Some(b)) | Resp::Line(_, b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a string: {other:?}"),
    }
}

/// name → its element, from a COMMAND / COMMAND INFO reply. Redis lists
/// subcommands in its hash table's order, which changes from one process
/// to the next: they are compared sorted.
fn by_name(r: &Resp) -> std::collections::BTreeMap<String, Resp> {
    items(r)
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Resp::Agg(_, Some(f)) = &mut e {
                if let Some(subs) = f.get_mut(9) {
                    *subs = subs.clone().sorted();
                }
            }
            (text(&items(&e)[0]), e)
        })
        .collect()
}

/// A command's docs with its subcommands sorted (see [`by_name`]).
fn docs_sorted(d: &Resp) -> Resp {
    let mut d = d.clone();
    let resp3 = matches!(d, Resp::Agg(b'%', _));
    if let Resp::Agg(_, Some(f)) = &mut d {
        if resp3 {
            for pair in f.iter_mut() {
                if let Resp::Agg(_, Some(kv)) = pair {
                    if text(&kv[0]) == "subcommands" {
                        kv[1] = kv[1].clone().sorted();
                    }
                }
            }
        } else {
            for i in (0..f.len()).step_by(2) {
                if text(&f[i]) == "subcommands" && i + 1 < f.len() {
                    f[i + 1] = f[i + 1].clone().sorted();
                }
            }
        }
    }
    d
}

/// name → docs, from a COMMAND DOCS reply (RESP3 map or RESP2 flat array).
fn docs_by_name(r: &Resp) -> std::collections::BTreeMap<String, Resp> {
    let v = items(r);
    match r {
        Resp::Agg(b'%', _) => v
            .iter()
            .map(|p| (text(&items(p)[0]), docs_sorted(&items(p)[1])))
            .collect(),
        _ => v
            .chunks(2)
            .map(|p| (text(&p[0]), docs_sorted(&p[1])))
            .collect(),
    }
}

fn hello(c: &mut RawConn, proto: &str) {
    c.cmd_str(&["HELLO", proto]);
}

#[test]
fn command_info_docs_and_list_are_redis_7_0_15s() {
    let slotd = Server::slotd(&["--shards", "2"]);
    let redis = Server::redis(&[]);
    for proto in ["2", "3"] {
        let mut s = slotd.raw();
        let mut r = redis.raw();
        hello(&mut s, proto);
        hello(&mut r, proto);

        let ours = by_name(&parse(&s.cmd_str(&["COMMAND"])));
        let theirs = by_name(&parse(&r.cmd_str(&["COMMAND"])));
        let missing: Vec<&str> = theirs
            .keys()
            .filter(|n| !ours.contains_key(*n))
            .map(|n| n.as_str())
            .collect();
        let mut left_out = LEFT_OUT.to_vec();
        left_out.sort();
        assert_eq!(missing, left_out, "RESP{proto}: commands slotd lacks");
        for (name, info) in &ours {
            assert_eq!(
                Some(info),
                theirs.get(name),
                "RESP{proto}: COMMAND INFO {name}"
            );
        }
        assert_eq!(
            parse(&s.cmd_str(&["COMMAND", "COUNT"])),
            Resp::Line(
                b':',
                (theirs.len() - LEFT_OUT.len()).to_string().into_bytes()
            )
        );
        // COMMAND INFO with no names is COMMAND.
        assert_eq!(
            by_name(&parse(&s.cmd_str(&["COMMAND", "INFO"]))),
            ours,
            "RESP{proto}"
        );

        let ours = docs_by_name(&parse(&s.cmd_str(&["COMMAND", "DOCS"])));
        let theirs = docs_by_name(&parse(&r.cmd_str(&["COMMAND", "DOCS"])));
        assert_eq!(ours.len(), theirs.len() - LEFT_OUT.len());
        for (name, d) in &ours {
            assert_eq!(
                Some(d),
                theirs.get(name),
                "RESP{proto}: COMMAND DOCS {name}"
            );
        }

        let list = |c: &mut RawConn, args: &[&str]| {
            let mut v: Vec<String> = items(&parse(&c.cmd_str(args))).iter().map(text).collect();
            v.sort();
            v
        };
        let mut all = list(&mut r, &["COMMAND", "LIST"]);
        all.retain(|n| !LEFT_OUT.contains(&n.split('|').next().unwrap()));
        assert_eq!(list(&mut s, &["COMMAND", "LIST"]), all, "RESP{proto}");
        for f in [
            ["ACLCAT", "hyperloglog"],
            ["ACLCAT", "SCRIPTING"],
            ["ACLCAT", "nosuch"],
            ["PATTERN", "x*"],
            ["PATTERN", "client|*"],
            ["MODULE", "json"],
        ] {
            let args = ["COMMAND", "LIST", "FILTERBY", f[0], f[1]];
            let mut want = list(&mut r, &args);
            want.retain(|n| !LEFT_OUT.contains(&n.split('|').next().unwrap()));
            assert_eq!(list(&mut s, &args), want, "RESP{proto}: {args:?}");
        }
    }
}

#[test]
fn command_subcommands_answer_as_redis() {
    assert_same(&[
        &[
            "COMMAND",
            "INFO",
            "get",
            "nosuch",
            "config|get",
            "CLIENT|LIST",
            "x|y|z",
        ],
        &["COMMAND", "DOCS", "get", "nosuch", "xinfo|stream"],
        &["COMMAND", "DOCS", "nosuch"],
        &["COMMAND", "COUNT", "x"],
        &["COMMAND", "LIST", "FILTERBY"],
        &["COMMAND", "LIST", "FILTERBY", "nosuch", "x"],
        &["COMMAND", "LIST", "x"],
        &["COMMAND", "GETKEYS"],
        &["COMMAND", "GETKEYSANDFLAGS"],
        &["COMMAND", "NOSUCH"],
        &["COMMAND", "GETKEYS", "get", "a"],
        &["COMMAND", "GETKEYS", "nosuch", "a"],
        &["COMMAND", "GETKEYS", "ping"],
        &["COMMAND", "GETKEYS", "get"],
        &["COMMAND", "GETKEYS", "get", "a", "b"],
        &["COMMAND", "GETKEYS", "config", "get", "x"],
        &["COMMAND", "GETKEYS", "config", "nosuch"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "0"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "2", "a"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "x"],
        &["COMMAND", "GETKEYS", "zunionstore", "d", "0", "a"],
        &[
            "COMMAND", "GETKEYS", "migrate", "h", "1", "", "0", "5", "KEYS", "a", "b",
        ],
        &[
            "COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "5", "KEYS", "a", "b",
        ],
        &["COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "5"],
    ]);
    let mut cases: Vec<Vec<&str>> = vec![
        vec!["get", "a"],
        vec!["set", "a", "1"],
        vec!["set", "a", "1", "GET"],
        vec!["set", "a", "1", "EX", "10", "get"],
        vec!["mset", "a", "1", "b", "2"],
        vec!["msetnx", "a", "1", "b", "2"],
        vec!["del", "a", "b", "c"],
        vec!["unlink", "a"],
        vec!["rename", "a", "b"],
        vec!["copy", "a", "b"],
        vec!["lmove", "a", "b", "left", "right"],
        vec!["blmpop", "0", "2", "a", "b", "left"],
        vec!["lmpop", "2", "a", "b", "left"],
        vec!["bzmpop", "0", "1", "z", "min"],
        vec!["zunionstore", "d", "2", "a", "b"],
        vec!["zinter", "2", "a", "b"],
        vec!["zintercard", "2", "a", "b"],
        vec!["sintercard", "2", "a", "b"],
        vec!["zrangestore", "d", "s", "0", "-1"],
        vec!["sort", "l"],
        vec!["sort", "l", "by", "w*", "get", "#", "store", "d"],
        vec!["sort", "l", "store", "d", "limit", "0", "1", "store", "e"],
        vec!["sort_ro", "l", "by", "w*"],
        vec!["bitfield", "b", "get", "u8", "0"],
        vec!["bitfield", "b", "set", "u8", "0", "1"],
        vec!["bitfield_ro", "b", "get", "u8", "0"],
        vec!["bitop", "and", "d", "a", "b"],
        vec!["georadius", "g", "0", "0", "1", "m", "store", "d"],
        vec!["georadius", "g", "0", "0", "1", "m", "storedist", "d"],
        vec!["georadius", "g", "0", "0", "1", "m", "store"],
        vec!["georadiusbymember", "g", "m", "1", "km", "STORE", "d"],
        vec![
            "geosearchstore",
            "d",
            "s",
            "frommember",
            "m",
            "byradius",
            "1",
            "m",
        ],
        vec!["xread", "count", "2", "streams", "s1", "s2", "0", "0"],
        vec!["xread", "streams", "s1", "s2", "0"],
        vec!["xread", "streams"],
        vec!["xreadgroup", "group", "g", "c", "streams", "s", ">"],
        vec!["xadd", "s", "*", "f", "v"],
        vec!["xinfo", "stream", "s"],
        vec!["xgroup", "create", "s", "g", "$"],
        vec!["object", "encoding", "k"],
        vec!["memory", "usage", "k"],
        vec!["eval", "return 1", "2", "a", "b", "c"],
        vec!["evalsha_ro", "x", "1", "a"],
        vec!["fcall", "f", "1", "a", "b"],
        vec!["migrate", "h", "1", "k", "0", "5", "COPY", "AUTH", "p"],
        vec![
            "migrate", "h", "1", "", "0", "5", "AUTH2", "u", "p", "KEYS", "a", "b",
        ],
        vec!["pfmerge", "d", "a", "b"],
        vec!["pfcount", "a", "b"],
        vec!["watch", "a", "b"],
        vec!["exists", "a", "b"],
        vec!["touch", "a"],
        vec!["getex", "a", "persist"],
        vec!["getdel", "a"],
        vec!["smove", "a", "b", "m"],
        vec!["rpoplpush", "a", "b"],
        vec!["brpoplpush", "a", "b", "0"],
        vec!["lcs", "a", "b"],
        vec!["restore", "k", "0", "x"],
        vec!["dump", "k"],
        vec!["spublish", "ch", "m"],
        vec!["ssubscribe", "a", "b"],
        vec!["publish", "ch", "m"],
    ];
    let mut cmds: Vec<Vec<&str>> = Vec::new();
    for c in cases.drain(..) {
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            let mut v = vec!["COMMAND", sub];
            v.extend(c.iter().copied());
            cmds.push(v);
        }
    }
    let refs: Vec<&[&str]> = cmds.iter().map(|v| v.as_slice()).collect();
    assert_same(&refs);
}

/// Every subcommand slotd's COMMAND DOCS lists exists: called with
/// placeholder arguments it answers, but never an unknown-command or
/// unknown-subcommand error (a wrong-arguments error is fine: the
/// placeholders are not valid for every subcommand).
#[test]
fn every_listed_subcommand_exists() {
    let slotd = Server::slotd(&[]);
    let mut c = slotd.raw();
    hello(&mut c, "3");
    let docs = docs_by_name(&parse(&c.cmd_str(&["COMMAND", "DOCS"])));
    let mut subs = Vec::new();
    for d in docs.values() {
        for pair in items(d) {
            let kv = items(pair);
            if text(&kv[0]) == "subcommands" {
                subs.extend(docs_by_name(&kv[1]).into_keys());
            }
        }
    }
    assert!(subs.len() > 100, "{subs:?}");
    // Subcommands that would end the connection, the server, the test's
    // own data, or wait for a long time.
    let skip = [
        "client|kill",
        "client|pause",
        "client|reply",
        "cluster|reset",
        "cluster|failover",
        "script|kill",
        "function|kill",
        "debug|segfault",
    ];
    let mut bad = Vec::new();
    for name in subs.iter().filter(|n| !skip.contains(&n.as_str())) {
        let mut args: Vec<&str> = name.split('|').collect();
        args.extend(["x", "y"]);
        for n in [2, 3, 4] {
            let reply = String::from_utf8_lossy(&c.cmd_str(&args[..n])).into_owned();
            let lower = reply.to_ascii_lowercase();
            if lower.starts_with("-err unknown subcommand '")
                || lower.starts_with("-err unknown command")
                || lower.contains("not supported by slotd")
            {
                bad.push(format!("{:?}: {}", &args[..n], reply.trim_end()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "subcommands that do not exist:\n{}",
        bad.join("\n")
    );
}
