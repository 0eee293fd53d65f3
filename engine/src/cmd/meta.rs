//! Redis 7.0.15's command metadata, as COMMAND INFO and COMMAND DOCS show
//! it: flags, ACL categories, tips, key specs, subcommands, summaries,
//! arguments and history.
//!
//! `meta/redis-7.0.15.resp` holds redis-server 7.0.15's own RESP3 replies
//! to `COMMAND INFO` and `COMMAND DOCS`, one after the other, captured by
//! `scripts/gen-command-meta.py`. They are the interface slotd promises, so
//! they are served as they are for every command slotd has (a command of
//! the file that is not in [`super::registry`] is hidden), converted to
//! RESP2 for RESP2 clients as Redis converts them. The table is indexed
//! once (byte ranges, no copies); a reply is decoded from its range when
//! asked. The key specs also drive COMMAND GETKEYS and GETKEYSANDFLAGS,
//! with Redis's key-spec search and its fallbacks
//! (`getKeysFromCommandWithSpecs`).

use crate::args::Args;
use crate::glob;
use crate::reply::Reply;
use bytes::Bytes;
use hashbrown::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

static DATA: &[u8] = include_bytes!("meta/redis-7.0.15.resp");

/// One command or subcommand of the file.
struct Entry {
    /// Full name, lowercase: `get`, `client|list`.
    name: String,
    arity: i64,
    /// Flagged `denyoom`: refused while memory is full.
    denyoom: bool,
    /// Flagged `write`.
    write: bool,
    /// Its COMMAND INFO element.
    info: Range<usize>,
    /// Its COMMAND DOCS value (the map after its name).
    docs: Range<usize>,
    subs: Vec<Entry>,
}

struct Table {
    cmds: Vec<Entry>,
    /// `container|sub` → the subcommand's arity.
    sub_arity: HashMap<String, i64>,
    /// The subcommands flagged `denyoom` or `write` (`container|sub`).
    sub_denyoom: Vec<String>,
    sub_write: Vec<String>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        index(DATA).unwrap_or(Table {
            cmds: Vec::new(),
            sub_arity: HashMap::new(),
            sub_denyoom: Vec::new(),
            sub_write: Vec::new(),
        })
    })
}

/// A reader over RESP3 values.
struct Cur<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.d.get(self.pos..)?;
        let n = rest.windows(2).position(|w| w == b"\r\n")?;
        self.pos += n + 2;
        Some(&rest[..n])
    }

    /// A value's first line: its type and its number (0 for a status,
    /// whose text is [`Cur::status`]).
    fn head(&mut self) -> Option<(u8, i64)> {
        let l = self.line()?;
        let (&t, rest) = l.split_first()?;
        let n = match t {
            b'+' => 0,
            _ => std::str::from_utf8(rest).ok()?.parse().ok()?,
        };
        Some((t, n))
    }

    /// The text of the status line just read by [`Cur::head`].
    fn status(&self) -> &'a [u8] {
        let l = &self.d[..self.pos - 2];
        let start = l.iter().rposition(|&c| c == b'+').map_or(0, |i| i + 1);
        &l[start..]
    }

    fn bytes(&mut self, n: i64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let b = self.d.get(self.pos..self.pos + n)?;
        if self.d.get(self.pos + n..self.pos + n + 2)? != b"\r\n" {
            return None;
        }
        self.pos += n + 2;
        Some(b)
    }

    /// Skips one value; returns its range.
    fn skip(&mut self) -> Option<Range<usize>> {
        let start = self.pos;
        let at = self.pos;
        let (t, n) = self.head()?;
        match t {
            b'$' => {
                self.bytes(n)?;
            }
            b'*' | b'~' => (0..n).try_for_each(|_| self.skip().map(drop))?,
            b'%' => (0..2 * n).try_for_each(|_| self.skip().map(drop))?,
            b'+' | b':' => {}
            _ => {
                self.pos = at;
                return None;
            }
        }
        Some(start..self.pos)
    }

    /// Decodes one value.
    fn value(&mut self) -> Option<Reply> {
        let (t, n) = self.head()?;
        Some(match t {
            b'$' => Reply::Bulk(Bytes::copy_from_slice(self.bytes(n)?)),
            b'+' => Reply::Status(String::from_utf8_lossy(self.status()).into_owned().into()),
            b':' => Reply::Int(n),
            b'*' => Reply::Array((0..n).map(|_| self.value()).collect::<Option<_>>()?),
            b'~' => Reply::Set((0..n).map(|_| self.value()).collect::<Option<_>>()?),
            b'%' => Reply::Map(
                (0..n)
                    .map(|_| Some((self.value()?, self.value()?)))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

fn decode(r: &Range<usize>) -> Reply {
    let mut c = Cur {
        d: &DATA[..r.end],
        pos: r.start,
    };
    c.value().unwrap_or(Reply::Nil)
}

/// Indexes the COMMAND INFO array and the COMMAND DOCS map that follows.
fn index(d: &[u8]) -> Option<Table> {
    let mut c = Cur { d, pos: 0 };
    let cmds = info_entries(&mut c)?;
    let mut docs = Vec::new();
    docs_entries(&mut c, &mut docs)?;
    let mut cmds = cmds;
    attach_docs(&mut cmds, &docs);
    let sub_arity = cmds
        .iter()
        .flat_map(|e| &e.subs)
        .map(|s| (s.name.clone(), s.arity))
        .collect();
    let flagged = |f: fn(&Entry) -> bool| {
        cmds.iter()
            .flat_map(|e| &e.subs)
            .filter(|s| f(s))
            .map(|s| s.name.clone())
            .collect()
    };
    let (sub_denyoom, sub_write) = (flagged(|s| s.denyoom), flagged(|s| s.write));
    Some(Table {
        cmds,
        sub_arity,
        sub_denyoom,
        sub_write,
    })
}

/// An array of COMMAND INFO elements (the top level or a subcommand list).
fn info_entries(c: &mut Cur) -> Option<Vec<Entry>> {
    let (t, n) = c.head()?;
    if t != b'*' && t != b'~' {
        return None;
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let start = c.pos;
        let (t, fields) = c.head()?;
        if t != b'*' || fields != 10 {
            return None;
        }
        let (_, len) = c.head()?;
        let name = String::from_utf8(c.bytes(len)?.to_vec()).ok()?;
        let (_, arity) = c.head()?;
        let flags = strings(Some(&c.value()?));
        let flag = |name: &str| flags.iter().any(|f| f == name);
        let (denyoom, write) = (flag("denyoom"), flag("write"));
        for _ in 3..9 {
            c.skip()?;
        }
        let subs = info_entries(c)?;
        out.push(Entry {
            name,
            arity,
            denyoom,
            write,
            info: start..c.pos,
            docs: 0..0,
            subs,
        });
    }
    Some(out)
}

/// A COMMAND DOCS map: (full name, range of its docs), subcommands too.
fn docs_entries(c: &mut Cur, out: &mut Vec<(String, Range<usize>)>) -> Option<()> {
    let (t, n) = c.head()?;
    if t != b'%' {
        return None;
    }
    for _ in 0..n {
        let (_, len) = c.head()?;
        let name = String::from_utf8(c.bytes(len)?.to_vec()).ok()?;
        let start = c.pos;
        let (t, fields) = c.head()?;
        if t != b'%' {
            return None;
        }
        for _ in 0..fields {
            let (_, flen) = c.head()?;
            if c.bytes(flen)? == b"subcommands" {
                docs_entries(c, out)?;
            } else {
                c.skip()?;
            }
        }
        out.push((name, start..c.pos));
    }
    Some(())
}

fn attach_docs(entries: &mut [Entry], docs: &[(String, Range<usize>)]) {
    for e in entries {
        if let Some((_, r)) = docs.iter().find(|(n, _)| *n == e.name) {
            e.docs = r.clone();
        }
        attach_docs(&mut e.subs, docs);
    }
}

/// The commands slotd has, in the file's order.
fn present() -> impl Iterator<Item = &'static Entry> {
    let reg = super::registry();
    table()
        .cmds
        .iter()
        .filter(move |e| reg.lookup(e.name.as_bytes()).is_some())
}

/// Redis's `lookupCommandBySds`: `name` or `name|sub`, any case.
fn by_full_name(name: &[u8]) -> Option<&'static Entry> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let mut parts = name.split('|');
    let (top, sub) = (parts.next()?, parts.next());
    if parts.next().is_some() {
        return None;
    }
    let e = present().find(|e| e.name == top)?;
    match sub {
        None => Some(e),
        Some(s) => e.subs.iter().find(|x| x.name == format!("{top}|{s}")),
    }
}

/// Redis's `lookupCommand` on argv: a container with a second argument
/// names its subcommand.
fn by_argv(args: &Args) -> Option<&'static Entry> {
    let top = String::from_utf8_lossy(args.get(0)).to_ascii_lowercase();
    let e = present().find(|e| e.name == top)?;
    if args.len() == 1 || e.subs.is_empty() {
        return Some(e);
    }
    let sub = format!(
        "{top}|{}",
        String::from_utf8_lossy(args.get(1)).to_ascii_lowercase()
    );
    e.subs.iter().find(|x| x.name == sub)
}

/// The arity of subcommand `sub` of container `cmd` (`None`: Redis has no
/// such subcommand).
pub fn subcommand_arity(cmd: &str, sub: &[u8]) -> Option<i64> {
    let sub = std::str::from_utf8(sub).ok()?.to_ascii_lowercase();
    table().sub_arity.get(&format!("{cmd}|{sub}")).copied()
}

/// The name INFO commandstats counts command `spec` with `args` under:
/// with its subcommand (`object|encoding`), as Redis 7.0 (a lookup in the
/// command table for container commands only).
pub fn stats_name(spec: &'static super::Spec, args: &crate::Args) -> &'static str {
    if spec.has(super::flags::SUBCOMMANDS) && args.len() > 1 {
        if let Some(name) = full_name(spec.name, args.get(1)) {
            return name;
        }
    }
    spec.name
}

/// The full name of subcommand `sub` of container `cmd` (`client|info`),
/// as CLIENT LIST's `cmd=` shows it.
pub fn full_name(cmd: &str, sub: &[u8]) -> Option<&'static str> {
    let e = table().cmds.iter().find(|e| e.name == cmd)?;
    e.subs
        .iter()
        .find(|s| {
            s.name
                .split_once('|')
                .is_some_and(|(_, x)| x.as_bytes().eq_ignore_ascii_case(sub))
        })
        .map(|s| s.name.as_str())
}

/// True when subcommand `sub` of container `cmd` is flagged `denyoom`
/// (XGROUP CREATE, FUNCTION LOAD, ...).
pub fn subcommand_denies_oom(cmd: &str, sub: &[u8]) -> bool {
    listed(&table().sub_denyoom, cmd, sub)
}

/// True when subcommand `sub` of container `cmd` is flagged `write`
/// (FUNCTION FLUSH, ...).
pub fn subcommand_writes(cmd: &str, sub: &[u8]) -> bool {
    listed(&table().sub_write, cmd, sub)
}

/// True when `cmd|sub` is in `list` (no allocation unless a name of the
/// list starts with `cmd|`: most commands have no subcommand there).
fn listed(list: &[String], cmd: &str, sub: &[u8]) -> bool {
    list.iter().any(|full| {
        full.strip_prefix(cmd)
            .and_then(|rest| rest.strip_prefix('|'))
            .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// COMMAND COUNT.
pub fn count() -> usize {
    present().count()
}

/// COMMAND and COMMAND INFO with no names: every command.
pub fn info_all() -> Reply {
    Reply::Array(present().map(|e| decode(&e.info)).collect())
}

/// COMMAND INFO name...: a nil for a name slotd does not have.
pub fn info<'a>(names: impl Iterator<Item = &'a [u8]>) -> Reply {
    Reply::Array(
        names
            .map(|n| by_full_name(n).map_or(Reply::Nil, |e| decode(&e.info)))
            .collect(),
    )
}

/// COMMAND DOCS [name...]: names slotd does not have are left out.
pub fn docs<'a>(names: Option<impl Iterator<Item = &'a [u8]>>) -> Reply {
    let pick: Vec<&Entry> = match names {
        None => present().collect(),
        Some(ns) => ns.filter_map(by_full_name).collect(),
    };
    Reply::Map(
        pick.into_iter()
            .map(|e| (Reply::bulk(e.name.as_bytes()), decode(&e.docs)))
            .collect(),
    )
}

/// A COMMAND LIST filter.
pub enum Filter<'a> {
    None,
    /// `FILTERBY MODULE name`: slotd loads no modules.
    Module,
    AclCat(&'a [u8]),
    Pattern(&'a [u8]),
}

/// COMMAND LIST [FILTERBY ...]: full names, subcommands after their
/// container, as Redis walks its tables.
pub fn list(filter: Filter) -> Reply {
    let mut out = Vec::new();
    fn walk(es: &[Entry], filter: &Filter, out: &mut Vec<Reply>) {
        for e in es {
            let keep = match filter {
                Filter::None => true,
                Filter::Module => false,
                Filter::AclCat(cat) => acl_categories(e).iter().any(|c| {
                    c.strip_prefix('@')
                        .is_some_and(|c| c.as_bytes().eq_ignore_ascii_case(cat))
                }),
                Filter::Pattern(p) => glob::stringmatchlen(p, e.name.as_bytes(), true),
            };
            if keep {
                out.push(Reply::bulk(e.name.as_bytes()));
            }
            walk(&e.subs, filter, out);
        }
    }
    let top: Vec<&Entry> = present().collect();
    for e in top {
        walk(std::slice::from_ref(e), &filter, &mut out);
    }
    Reply::Array(out)
}

fn strings(r: Option<&Reply>) -> Vec<String> {
    match r {
        Some(Reply::Set(v) | Reply::Array(v)) => v
            .iter()
            .filter_map(|x| match x {
                Reply::Status(s) => Some(s.to_string()),
                Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn acl_categories(e: &Entry) -> Vec<String> {
    match decode(&e.info) {
        Reply::Array(f) => strings(f.get(6)),
        _ => Vec::new(),
    }
}

fn field<'r>(m: &'r Reply, name: &str) -> Option<&'r Reply> {
    match m {
        Reply::Map(kv) => kv.iter().find_map(|(k, v)| match k {
            Reply::Bulk(b) if b.as_ref() == name.as_bytes() => Some(v),
            _ => None,
        }),
        _ => None,
    }
}

fn int(r: Option<&Reply>) -> i64 {
    match r {
        Some(Reply::Int(n)) => *n,
        _ => 0,
    }
}

fn text(r: Option<&Reply>) -> String {
    match r {
        Some(Reply::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Where a key spec's search begins.
enum Begin {
    Index(i64),
    Keyword { word: String, from: i64 },
    Unknown,
}

/// How a key spec finds its keys from there.
enum Find {
    Range { last: i64, step: i64, limit: i64 },
    KeyNum { idx: i64, first: i64, step: i64 },
    Unknown,
}

struct KeySpec {
    flags: Vec<String>,
    begin: Begin,
    find: Find,
}

/// What COMMAND GETKEYS needs of a command.
struct Shape {
    name: String,
    arity: i64,
    flags: Vec<String>,
    specs: Vec<KeySpec>,
}

fn shape(e: &Entry) -> Option<Shape> {
    let Reply::Array(f) = decode(&e.info) else {
        return None;
    };
    let specs = match f.get(8) {
        Some(Reply::Array(v) | Reply::Set(v)) => v
            .iter()
            .map(|s| {
                let bs = field(s, "begin_search");
                let bspec = bs.and_then(|b| field(b, "spec"));
                let begin = match text(bs.and_then(|b| field(b, "type"))).as_str() {
                    "index" => Begin::Index(int(bspec.and_then(|b| field(b, "index")))),
                    "keyword" => Begin::Keyword {
                        word: text(bspec.and_then(|b| field(b, "keyword"))),
                        from: int(bspec.and_then(|b| field(b, "startfrom"))),
                    },
                    _ => Begin::Unknown,
                };
                let fk = field(s, "find_keys");
                let fspec = fk.and_then(|b| field(b, "spec"));
                let get = |n| int(fspec.and_then(|b| field(b, n)));
                let find = match text(fk.and_then(|b| field(b, "type"))).as_str() {
                    "range" => Find::Range {
                        last: get("lastkey"),
                        step: get("keystep"),
                        limit: get("limit"),
                    },
                    "keynum" => Find::KeyNum {
                        idx: get("keynumidx"),
                        first: get("firstkey"),
                        step: get("keystep"),
                    },
                    _ => Find::Unknown,
                };
                KeySpec {
                    flags: strings(field(s, "flags")),
                    begin,
                    find,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Shape {
        name: e.name.clone(),
        arity: int(f.get(1)),
        flags: strings(f.get(2)),
        specs,
    })
}

/// Commands with a `getkeys_proc` in Redis 7.0.15: their keys may come from
/// it when the key specs cannot say.
const GETKEYS_PROCS: &[&str] = &[
    "bitfield",
    "migrate",
    "sort",
    "sort_ro",
    "georadius",
    "georadiusbymember",
    "blmpop",
    "lmpop",
    "eval",
    "evalsha",
    "evalsha_ro",
    "eval_ro",
    "fcall",
    "fcall_ro",
    "sintercard",
    "bzmpop",
    "zdiff",
    "zdiffstore",
    "zinter",
    "zintercard",
    "zinterstore",
    "zmpop",
    "zunion",
    "zunionstore",
    "xread",
    "xreadgroup",
    "set",
];

type Keys = Vec<(usize, Vec<&'static str>)>;

const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];

/// Redis's `getKeysUsingKeySpecs` (default search: no `not_key` specs, no
/// partial results): `None` when a spec cannot find its keys here.
fn keys_by_specs(sh: &Shape, a: &Args) -> Option<Vec<(usize, Vec<String>)>> {
    let argc = a.len() as i64;
    let mut out = Vec::new();
    for s in &sh.specs {
        if s.flags.iter().any(|f| f == "not_key") {
            continue;
        }
        let mut first = match &s.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { word, from } => {
                let start = if *from > 0 { *from } else { argc + from };
                let end = if *from > 0 { argc - 1 } else { 1 };
                let mut i = start;
                let mut found = 0;
                loop {
                    if i == end || i >= argc || i < 1 {
                        break;
                    }
                    if a.get(i as usize).eq_ignore_ascii_case(word.as_bytes()) {
                        found = i + 1;
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            Begin::Unknown => return None,
        };
        let (last, step) = match &s.find {
            Find::Range { last, step, limit } => {
                let l = if *last >= 0 {
                    first + last
                } else if *limit == 0 {
                    argc + last
                } else {
                    first + ((argc - first) / limit + last)
                };
                (l, *step)
            }
            Find::KeyNum {
                idx,
                first: f,
                step,
            } => {
                if *idx >= argc || first + idx >= argc {
                    return None;
                }
                let n: i64 = std::str::from_utf8(a.get((first + idx) as usize))
                    .ok()?
                    .parse()
                    .ok()?;
                if n < 0 {
                    return None;
                }
                first += f;
                (first + n - 1, *step)
            }
            Find::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        let mut i = first;
        while i <= last && step > 0 {
            out.push((i as usize, s.flags.clone()));
            i += step;
        }
        if s.flags.iter().any(|f| f == "incomplete") {
            return None;
        }
    }
    Some(out)
}

/// The `getkeys_proc` fallbacks of Redis 7.0.15 that can find keys where
/// the specs could not (the others then find none).
fn keys_by_proc(name: &str, a: &Args) -> Keys {
    let argc = a.len();
    let word = |i: usize, w: &str| a.get(i).eq_ignore_ascii_case(w.as_bytes());
    match name {
        "set" => {
            let get = (3..argc).any(|i| word(i, "get"));
            vec![(
                1,
                if get {
                    RW_ACCESS_UPDATE.to_vec()
                } else {
                    vec!["OW", "update"]
                },
            )]
        }
        "bitfield" => {
            let mut ro = true;
            let mut i = 2;
            while i < argc {
                let rem = argc - i - 1;
                if word(i, "get") && rem >= 2 {
                    i += 2;
                } else if (word(i, "set") || word(i, "incrby")) && rem >= 3 {
                    ro = false;
                    break;
                } else if word(i, "overflow") && rem >= 1 {
                    i += 1;
                } else {
                    ro = false;
                    break;
                }
                i += 1;
            }
            vec![(
                1,
                if ro {
                    RO_ACCESS.to_vec()
                } else {
                    RW_ACCESS_UPDATE.to_vec()
                },
            )]
        }
        "migrate" => {
            let (mut first, mut num) = (3, 1);
            if argc > 6 {
                let mut i = 6;
                while i < argc {
                    if word(i, "keys") {
                        if a.get(3).is_empty() {
                            first = i + 1;
                            num = argc - first;
                        } else {
                            num = 0;
                        }
                        break;
                    }
                    if word(i, "auth") {
                        i += 1;
                    } else if word(i, "auth2") {
                        i += 2;
                    }
                    i += 1;
                }
            }
            (first..first + num)
                .map(|i| (i, vec!["RW", "access", "delete"]))
                .collect()
        }
        "sort_ro" => vec![(1, RO_ACCESS.to_vec())],
        "sort" => {
            let mut keys = vec![(1, RO_ACCESS.to_vec())];
            let mut store = None;
            let mut i = 2;
            while i < argc {
                if word(i, "limit") {
                    i += 2;
                } else if word(i, "get") || word(i, "by") {
                    i += 1;
                } else if word(i, "store") && i + 1 < argc {
                    store = Some(i + 1);
                }
                i += 1;
            }
            keys.extend(store.map(|p| (p, vec!["OW", "update"])));
            keys
        }
        "georadius" | "georadiusbymember" => {
            let mut stored = None;
            let mut i = 5;
            while i < argc {
                if (word(i, "store") || word(i, "storedist")) && i + 1 < argc {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            std::iter::once((1, Vec::new()))
                .chain(stored.map(|p| (p, Vec::new())))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// COMMAND GETKEYS (`with_flags` false) and COMMAND GETKEYSANDFLAGS on the
/// command in `a`, as Redis's `getKeysSubcommandImpl`.
pub fn getkeys(a: &Args, with_flags: bool) -> Reply {
    let Some(sh) = (!a.is_empty())
        .then(|| by_argv(a))
        .flatten()
        .and_then(shape)
    else {
        return Reply::err("ERR Invalid command specified");
    };
    let has_proc = GETKEYS_PROCS.contains(&sh.name.as_str());
    let has_spec = sh
        .specs
        .iter()
        .any(|s| !s.flags.iter().any(|f| f == "not_key"));
    if !has_proc && !has_spec {
        return Reply::err("ERR The command has no key arguments");
    }
    let argc = a.len() as i64;
    if (sh.arity > 0 && sh.arity != argc) || argc < -sh.arity {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    let variable = sh
        .specs
        .iter()
        .any(|s| s.flags.iter().any(|f| f == "variable_flags"));
    let by_specs = if has_spec && !variable {
        keys_by_specs(&sh, a)
    } else {
        None
    };
    let keys: Vec<(usize, Vec<String>)> = match by_specs {
        Some(k) => k,
        None if has_proc => keys_by_proc(&sh.name, a)
            .into_iter()
            .map(|(i, f)| (i, f.into_iter().map(String::from).collect()))
            .collect(),
        None => Vec::new(),
    };
    if keys.is_empty() {
        return if sh.flags.iter().any(|f| f == "no_mandatory_keys") {
            Reply::Array(Vec::new())
        } else {
            Reply::err("ERR Invalid arguments specified for command")
        };
    }
    Reply::Array(
        keys.into_iter()
            .map(|(i, f)| {
                let key = Reply::bulk(a.get(i));
                if with_flags {
                    Reply::Array(vec![
                        key,
                        Reply::Set(f.into_iter().map(|x| Reply::Status(x.into())).collect()),
                    ])
                } else {
                    key
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OwnedArgs;

    fn args(words: &[&str]) -> OwnedArgs {
        OwnedArgs::from_iter(words.iter().map(|w| w.as_bytes()))
    }

    #[test]
    fn the_whole_file_indexes_and_decodes() {
        let t = table();
        assert_eq!(t.cmds.len(), 240, "redis-server 7.0.15 has 240 commands");
        let subs: usize = t.cmds.iter().map(|e| e.subs.len()).sum();
        assert!(subs > 100, "{subs}");
        for e in t.cmds.iter().chain(t.cmds.iter().flat_map(|e| &e.subs)) {
            let Reply::Array(f) = decode(&e.info) else {
                panic!("{}: info does not decode", e.name)
            };
            assert_eq!(f.len(), 10, "{}", e.name);
            assert!(!e.docs.is_empty(), "{}: no docs", e.name);
            assert!(matches!(decode(&e.docs), Reply::Map(_)), "{}", e.name);
        }
    }

    /// The registry and Redis agree on every command's arity and key
    /// positions (what routing derives from the table).
    #[test]
    fn the_registry_matches_redis() {
        let reg = super::super::registry();
        for s in reg.all() {
            let e = by_full_name(s.name.as_bytes())
                .unwrap_or_else(|| panic!("{} is not a Redis 7.0 command", s.name));
            let Reply::Array(f) = decode(&e.info) else {
                panic!()
            };
            let got = (int(f.get(1)), int(f.get(3)), int(f.get(4)), int(f.get(5)));
            let ours = (
                s.arity as i64,
                s.first_key as i64,
                s.last_key as i64,
                s.step as i64,
            );
            assert_eq!(got, ours, "{}: arity, first, last, step", s.name);
            assert_eq!(
                s.has(super::super::flags::SUBCOMMANDS),
                !e.subs.is_empty(),
                "{}: a container in Redis",
                s.name
            );
        }
    }

    #[test]
    fn getkeys_follows_specs_and_fallbacks() {
        let k = |w: &[&str]| getkeys(&args(w).as_args(), true);
        let names = |r: Reply| match r {
            Reply::Array(v) => v
                .into_iter()
                .map(|x| match x {
                    Reply::Array(p) => match (&p[0], &p[1]) {
                        (Reply::Bulk(b), Reply::Set(f)) => format!(
                            "{}:{}",
                            String::from_utf8_lossy(b),
                            f.iter()
                                .map(|s| match s {
                                    Reply::Status(s) => s.to_string(),
                                    _ => String::new(),
                                })
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        _ => String::new(),
                    },
                    _ => String::new(),
                })
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(names(k(&["get", "a"])), ["a:RO,access"]);
        assert_eq!(names(k(&["set", "a", "1"])), ["a:OW,update"]);
        assert_eq!(names(k(&["set", "a", "1", "GET"])), ["a:RW,access,update"]);
        assert_eq!(
            names(k(&["mset", "a", "1", "b", "2"])),
            ["a:OW,update", "b:OW,update"]
        );
        assert_eq!(
            names(k(&["sort", "l", "by", "w*", "store", "d"])),
            ["l:RO,access", "d:OW,update"]
        );
        assert_eq!(
            names(k(&["xread", "count", "2", "streams", "s1", "s2", "0", "0"])),
            ["s1:RO,access", "s2:RO,access"]
        );
        assert_eq!(names(k(&["eval", "return 1", "0"])), Vec::<String>::new());
        assert_eq!(
            k(&["zunionstore", "d", "0", "a"]),
            Reply::err("ERR Invalid arguments specified for command")
        );
        assert_eq!(
            k(&["ping"]),
            Reply::err("ERR The command has no key arguments")
        );
        assert_eq!(k(&["nosuch"]), Reply::err("ERR Invalid command specified"));
        assert_eq!(
            k(&["get"]),
            Reply::err("ERR Invalid number of arguments specified for command")
        );
        assert_eq!(names(k(&["xinfo", "stream", "s"])), ["s:RO,access"]);
    }

    #[test]
    fn list_filters() {
        let n = |r: Reply| match r {
            Reply::Array(v) => v.len(),
            _ => 0,
        };
        assert!(n(list(Filter::None)) > count());
        assert_eq!(n(list(Filter::Module)), 0);
        assert_eq!(n(list(Filter::AclCat(b"nosuchcat"))), 0);
        assert!(n(list(Filter::AclCat(b"hyperloglog"))) >= 5);
        assert_eq!(
            list(Filter::Pattern(b"client|setn*")),
            Reply::Array(vec![Reply::bulk(b"client|setname")])
        );
    }
}
