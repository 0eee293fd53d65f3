//! Property tests: what arrives from the network or from a file (RESP
//! requests, DUMP payloads given to RESTORE, RDB files, AOF files and
//! manifests) gets an answer or an error, never a panic or an allocation
//! sized by a length it claims. Inputs are valid samples of every kind,
//! then damaged: bytes overwritten, inserted, deleted, cut, and huge or
//! negative numbers planted.

use crate::cmd::run;
use crate::rdb::{self, read, write};
use crate::reply::Reply;
use crate::resp::{self, Parsed};
use crate::shard::Shard;
use crate::value::{EncodingLimits, Value};
use proptest::prelude::*;

/// `cases` per property, or `PROPTEST_CASES` when set (for a longer
/// search than the test suite's).
fn config(cases: u32) -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    ProptestConfig {
        cases: env.unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One damage: (kind, position, number).
type Mutation = (u8, usize, u64);

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec((0u8..8, any::<usize>(), any::<u64>()), 1..6)
}

/// Numbers a length field may be set to: small, at the edges of the
/// integer widths, or anything.
fn planted(n: u64) -> u64 {
    const EDGES: [u64; 10] = [
        0,
        1,
        0x3f,
        0x40,
        0x3fff,
        0xffff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        u64::MAX,
        i64::MAX as u64,
    ];
    match n % 3 {
        0 => EDGES[(n / 3 % EDGES.len() as u64) as usize],
        1 => n >> 40,
        _ => n,
    }
}

/// `input` with the `muts` applied (positions taken modulo its length).
fn damage(input: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = input.to_vec();
    for &(kind, pos, n) in muts {
        let at = if v.is_empty() { 0 } else { pos % v.len() };
        match kind {
            0 | 1 => {
                if let Some(b) = v.get_mut(at) {
                    *b = n as u8;
                }
            }
            2 => v.insert(at, n as u8),
            3 => {
                if at < v.len() {
                    v.remove(at);
                }
            }
            4 => v.truncate(at),
            // An RDB 32- or 64-bit length.
            5 => {
                let x = planted(n);
                let mut b = vec![0x81];
                b.extend_from_slice(&x.to_be_bytes());
                if n & 1 == 0 {
                    b = vec![0x80];
                    b.extend_from_slice(&(x as u32).to_be_bytes());
                }
                v.splice(at..(at + b.len()).min(v.len()), b);
            }
            // A little-endian u32 (listpack and intset headers, counts).
            6 => {
                let b = (planted(n) as u32).to_le_bytes();
                v.splice(at..(at + 4).min(v.len()), b);
            }
            // A decimal number (text formats: RESP, AOF, manifests).
            _ => {
                let x = planted(n) as i64;
                let s = if n & 1 == 0 {
                    x.to_string()
                } else {
                    (x as u64).to_string()
                };
                v.splice(at..(at + s.len()).min(v.len()), s.into_bytes());
            }
        }
    }
    v
}

fn s(v: &str) -> &[u8] {
    v.as_bytes()
}

/// A shard holding every type in every encoding it writes, keys `k0`…
fn sample_shard() -> (Shard, Vec<Vec<u8>>) {
    let mut sh = Shard::new(2, 7);
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut c = |args: &[&[u8]]| cmds.push(args.iter().map(|a| a.to_vec()).collect());
    c(&[s("SET"), s("k0"), s("12345")]);
    c(&[s("SET"), s("k1"), s("hello")]);
    let long = "abc".repeat(2000);
    c(&[s("SET"), s("k2"), long.as_bytes()]);
    c(&[s("PFADD"), s("k3"), s("a"), s("b"), s("c")]);
    c(&[
        s("RPUSH"),
        s("k4"),
        s("a"),
        s("b"),
        s("1"),
        s("300"),
        s("-5"),
    ]);
    c(&[s("HSET"), s("k5"), s("f1"), s("v1"), s("f2"), s("2")]);
    c(&[s("SADD"), s("k6"), s("1"), s("2"), s("3"), s("-70000")]);
    c(&[s("SADD"), s("k7"), s("x"), s("y")]);
    c(&[
        s("ZADD"),
        s("k8"),
        s("1"),
        s("a"),
        s("2.5"),
        s("b"),
        s("-3"),
        s("c"),
    ]);
    for i in 0..300 {
        let (f, v) = (format!("f{i}"), format!("{}", i * 7));
        c(&[s("RPUSH"), s("k9"), f.as_bytes()]);
        c(&[s("HSET"), s("k10"), f.as_bytes(), v.as_bytes()]);
        c(&[s("SADD"), s("k11"), f.as_bytes()]);
        c(&[s("ZADD"), s("k12"), v.as_bytes(), f.as_bytes()]);
    }
    c(&[s("RPUSH"), s("k9"), long.as_bytes()]);
    for i in 0..5 {
        let id = format!("{}-1", i + 1);
        c(&[
            s("XADD"),
            s("k13"),
            id.as_bytes(),
            s("f"),
            s("v"),
            s("n"),
            s("1"),
        ]);
    }
    c(&[s("XGROUP"), s("CREATE"), s("k13"), s("g"), s("0")]);
    c(&[
        s("XREADGROUP"),
        s("GROUP"),
        s("g"),
        s("c1"),
        s("COUNT"),
        s("2"),
        s("STREAMS"),
        s("k13"),
        s(">"),
    ]);
    c(&[s("XDEL"), s("k13"), s("3-1")]);
    c(&[s("PEXPIREAT"), s("k1"), s("4102444800000")]);
    for a in &cmds {
        let argv: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
        let r = run(&mut sh, 0, 1_700_000_000_000, &argv);
        assert!(!matches!(r, Reply::Error(_)), "{a:?}: {r:?}");
    }
    let keys = (0..14).map(|i| format!("k{i}").into_bytes()).collect();
    (sh, keys)
}

fn sample_values() -> &'static [(Vec<u8>, Value)] {
    static V: std::sync::OnceLock<Vec<(Vec<u8>, Value)>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let (sh, keys) = sample_shard();
        keys.into_iter()
            .map(|k| {
                let v = sh.dbs[0].get(&k).expect("sample key").value.clone();
                (k, v)
            })
            .collect()
    })
}

/// Commands that read a key of any type whole (`@`: the key).
const READERS: &[&[&str]] = &[
    &["TYPE", "@"],
    &["OBJECT", "ENCODING", "@"],
    &["DEBUG", "DIGEST-VALUE", "@"],
    &["DUMP", "@"],
    &["STRLEN", "@"],
    &["GETRANGE", "@", "0", "-1"],
    &["LRANGE", "@", "0", "-1"],
    &["LINDEX", "@", "-1"],
    &["HGETALL", "@"],
    &["HRANDFIELD", "@", "-5", "WITHVALUES"],
    &["SMEMBERS", "@"],
    &["SRANDMEMBER", "@", "-5"],
    &["SISMEMBER", "@", "3"],
    &["ZRANGE", "@", "0", "-1", "WITHSCORES"],
    &["ZRANGEBYSCORE", "@", "-inf", "+inf"],
    &["ZRANK", "@", "a"],
    &["ZRANDMEMBER", "@", "-5", "WITHSCORES"],
    &["XRANGE", "@", "-", "+"],
    &["XINFO", "STREAM", "@", "FULL"],
    &["XINFO", "GROUPS", "@"],
    &["XPENDING", "@", "g", "-", "+", "10"],
    &["PFCOUNT", "@"],
    &["MEMORY", "USAGE", "@"],
    &["RPUSH", "@", "x"],
    &["HSET", "@", "new", "1"],
    &["SADD", "@", "new"],
    &["ZADD", "@", "1", "new"],
    &["XADD", "@", "*", "f", "v"],
    &["PFADD", "@", "new"],
    &["APPEND", "@", "x"],
];

/// Runs every reader on `key` of `sh`: each answers (an error is an
/// answer), none panics.
fn read_all(sh: &mut Shard, key: &[u8]) {
    for cmd in READERS {
        let argv: Vec<&[u8]> = cmd
            .iter()
            .map(|a| if *a == "@" { key } else { a.as_bytes() })
            .collect();
        run(sh, 0, 1_700_000_000_000, &argv);
    }
}

/// An RDB file of every sample value (checksum 0: not checked, so a
/// damaged file reaches the decoders).
fn sample_file() -> Vec<u8> {
    let mut out = Vec::new();
    write::header(&mut out);
    write::aux(&mut out, "redis-ver", b"7.0.15");
    write::select_db(&mut out, 0, 14, 1);
    for (i, (k, v)) in sample_values().iter().enumerate() {
        let expire = (i % 3 == 0).then_some(4_102_444_800_000);
        write::entry(&mut out, k, v, expire, i % 2 == 0);
    }
    out.push(0xff);
    out.extend_from_slice(&[0; 8]);
    out
}

proptest! {
    #![proptest_config(config(3000))]

    /// Any bytes: the parser answers within the buffer, never panics.
    #[test]
    fn resp_parses_any_bytes_within_bounds(buf in prop::collection::vec(any::<u8>(), 0..200)) {
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        if let Ok(p) = resp::parse(&buf, &resp::Limits::default(), &mut spans, &mut scratch) {
            match p {
                Parsed::Command { consumed, inline } => {
                    prop_assert!(consumed <= buf.len());
                    let within = if inline { scratch.len() } else { consumed };
                    prop_assert!(spans.iter().all(|&(a, b)| a <= b && b as usize <= within));
                }
                Parsed::Empty { consumed } => prop_assert!(consumed <= buf.len()),
                Parsed::Incomplete { need } => prop_assert!(need > buf.len()),
                Parsed::BigBulk { start, len } => prop_assert!(start <= buf.len() && len >= resp::BIG_ARG),
            }
        }
    }

    /// Encoded requests parse back to their arguments; every prefix is
    /// incomplete; damaged ones are an error or a request, never a panic.
    #[test]
    fn resp_requests_round_trip_and_survive_damage(
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
        muts in mutations(),
    ) {
        let mut wire = Vec::new();
        crate::writelog::encode(&mut wire, args.iter().map(|a| &a[..]));
        let lim = resp::Limits::default();
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        let p = resp::parse(&wire, &lim, &mut spans, &mut scratch);
        prop_assert_eq!(p, Ok(Parsed::Command { consumed: wire.len(), inline: false }));
        let got: Vec<&[u8]> = spans.iter().map(|&(a, b)| &wire[a as usize..b as usize]).collect();
        prop_assert_eq!(got, args.iter().map(|a| &a[..]).collect::<Vec<_>>());
        prop_assert!(request_is_its_encoding(&wire, wire.len(), &spans));
        for n in 1..wire.len() {
            let p = resp::parse(&wire[..n], &lim, &mut spans, &mut scratch);
            prop_assert!(matches!(p, Ok(Parsed::Incomplete { .. })), "prefix {}: {:?}", n, p);
        }
        let bad = damage(&wire, &muts);
        if let Ok(Parsed::Command { consumed, inline: false }) =
            resp::parse(&bad, &lim, &mut spans, &mut scratch)
        {
            prop_assert!(request_is_its_encoding(&bad, consumed, &spans));
        }
    }

    /// A multibulk request the parser accepts is byte for byte what
    /// encoding its arguments gives (the write log copies it as is:
    /// `Args::wire_bytes`), whatever the lengths' digits.
    #[test]
    fn accepted_requests_are_their_own_encoding(
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..4),
        forms in prop::collection::vec(0u8..6, 4),
    ) {
        // Lengths written the ways a client might: "+3", "03", "3 ",
        // " 3", "-0" and the plain form; only the plain one may parse.
        let length = |n: usize, form: u8| match form {
            0 => format!("+{n}"),
            1 => format!("0{n}"),
            2 => format!("{n} "),
            3 => format!(" {n}"),
            4 if n == 0 => "-0".to_string(),
            _ => n.to_string(),
        };
        let mut wire = format!("*{}\r\n", length(args.len(), forms[0])).into_bytes();
        for (i, a) in args.iter().enumerate() {
            wire.extend_from_slice(format!("${}\r\n", length(a.len(), forms[(i + 1) % 4])).as_bytes());
            wire.extend_from_slice(a);
            wire.extend_from_slice(b"\r\n");
        }
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        if let Ok(Parsed::Command { consumed, inline: false }) =
            resp::parse(&wire, &resp::Limits::default(), &mut spans, &mut scratch)
        {
            prop_assert!(request_is_its_encoding(&wire, consumed, &spans));
        }
    }
}

/// True when the request parsed from `buf` (`consumed` bytes, `spans`)
/// is what the write log's encoding of its arguments gives, and
/// `Args::wire_bytes` hands over exactly those bytes.
fn request_is_its_encoding(buf: &[u8], consumed: usize, spans: &[(u32, u32)]) -> bool {
    let args = crate::Args::from_request(buf, spans, &[]);
    let mut again = Vec::new();
    crate::writelog::encode(&mut again, args.iter());
    again == buf[..consumed] && args.wire_bytes() == Some(&buf[..consumed])
}

proptest! {
    #![proptest_config(config(1500))]

    /// A damaged DUMP payload, resealed so that it passes the checksum,
    /// is refused or restored; a restored key then answers every reader.
    #[test]
    fn restore_of_damaged_payloads_never_panics(which in 0usize..14, compress: bool, muts in mutations()) {
        let (key, value) = &sample_values()[which];
        let good = rdb::dump(value, compress);
        let lim = EncodingLimits::default();
        prop_assert_eq!(&rdb::undump(&good, &lim).unwrap().unwrap(), value);
        let mut body = damage(&good[..good.len() - 10], &muts);
        rdb::seal_dump(&mut body);
        let mut sh = Shard::new(1, 1);
        let r = run(&mut sh, 0, 1_700_000_000_000, &[b"RESTORE", key, b"0", &body]);
        if matches!(r, Reply::Ok) {
            read_all(&mut sh, key);
        }
    }

    /// A damaged RDB file is read to an error or to its records, never a
    /// panic.
    #[test]
    fn damaged_rdb_files_never_panic(muts in mutations()) {
        static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = FILE.get_or_init(sample_file);
        let lim = EncodingLimits::default();
        let mut n = 0;
        prop_assert!(read::file(good, &lim, |_| n += 1).is_ok());
        prop_assert_eq!(n, 2 + 14);
        let bad = damage(good, &muts);
        let _ = read::file(&bad, &lim, |_| {});
        let _ = read::head_aux(&bad);
    }
}

/// An AOF of every kind of record slotd writes: commands, MULTI/EXEC,
/// timestamp and slotd's transaction and dependency annotations.
fn sample_aof() -> Vec<u8> {
    let mut out = b"#TS:1700000000\r\n".to_vec();
    let mut cmd = |a: &[&[u8]]| crate::writelog::encode(&mut out, a.iter().copied());
    cmd(&[b"SELECT", b"0"]);
    cmd(&[b"SET", b"a", b"1"]);
    cmd(&[b"MULTI"]);
    cmd(&[b"INCR", b"a"]);
    cmd(&[b"EXEC"]);
    out.extend_from_slice(b"#X:7:0,1\r\n#D:0=5,1=9\r\n");
    crate::writelog::encode(&mut out, [&b"DEL"[..], b"a"].into_iter());
    out
}

const SAMPLE_MANIFEST: &[u8] = b"file appendonly.aof.2.base.rdb seq 2 type b cores 2\n\
file appendonly.aof.1.incr.aof seq 1 type i core 0 slots 0-8191 offset 12\n\
file appendonly.aof.3.incr.aof seq 3 type i core 1 slots 8192-16383\n\
# a comment\n\
file appendonly.aof.1.base.rdb seq 1 type h core 0\n";

proptest! {
    #![proptest_config(config(2000))]

    /// Damaged AOF files scan to records and at most one failure.
    #[test]
    fn damaged_aof_files_never_panic(muts in mutations()) {
        let good = sample_aof();
        prop_assert!(crate::aof::scan::Scanner::new(&good, 1).all(|r| r.is_ok()));
        let bad = damage(&good, &muts);
        let mut errors = 0;
        for r in crate::aof::scan::Scanner::new(&bad, 1) {
            errors += r.is_err() as usize;
        }
        prop_assert!(errors <= 1);
        let _ = crate::aof::scan::index(&bad);
    }

    /// Damaged manifests parse to an error or to files, whose grouping
    /// per core never panics nor allocates per claimed core.
    #[test]
    fn damaged_manifests_never_panic(muts in mutations()) {
        let m = crate::aof::manifest::Manifest::parse(SAMPLE_MANIFEST);
        prop_assert_eq!(m.map(|m| m.logs().len()).ok(), Some(2));
        let bad = damage(SAMPLE_MANIFEST, &muts);
        if let Ok(m) = crate::aof::manifest::Manifest::parse(&bad) {
            let _ = m.logs();
            let _ = m.max_seq();
        }
    }

    /// The cut across two damaged logs: a plan, or an error, within
    /// what the files hold.
    #[test]
    fn the_cut_over_damaged_logs_never_panics(m0 in mutations(), m1 in mutations()) {
        let logs: Vec<_> = [m0, m1]
            .iter()
            .enumerate()
            .map(|(core, muts)| {
                let ix = crate::aof::scan::index(&damage(&sample_aof(), muts));
                crate::aof::cut::CoreLog {
                    core,
                    start: 0,
                    end: ix.valid as u64,
                    deps: ix.deps.into_iter().map(|(p, d)| (p as u64, d)).collect(),
                    txns: ix.txns.iter().map(|&(a, b)| (a as u64, b as u64)).collect(),
                    parts: ix.parts.into_iter().map(|(p, x)| (p as u64, x)).collect(),
                    based: Vec::new(),
                }
            })
            .collect();
        if let Ok(plan) = crate::aof::cut::plan(&logs) {
            for (i, l) in logs.iter().enumerate() {
                prop_assert!(plan.cut.get(i).is_none_or(|&c| c <= l.end));
            }
        }
    }
}

/// Words commands take as options and subcommands.
const WORDS: &[&str] = &[
    "WITHSCORES",
    "LIMIT",
    "COUNT",
    "MATCH",
    "TYPE",
    "BY",
    "GET",
    "STORE",
    "REV",
    "BYSCORE",
    "BYLEX",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "PERSIST",
    "WITHVALUES",
    "IDLE",
    "TIME",
    "RETRYCOUNT",
    "FORCE",
    "JUSTID",
    "MAXLEN",
    "MINID",
    "~",
    "=",
    "*",
    "-",
    "+",
    "(1",
    "[a",
    "(a",
    "OVERFLOW",
    "WRAP",
    "SAT",
    "FAIL",
    "SET",
    "INCRBY",
    "u8",
    "i64",
    "u63",
    "i65",
    "#1",
    "BIT",
    "BYTE",
    "AND",
    "OR",
    "XOR",
    "NOT",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "RANK",
    "MAXLEN",
    "ALPHA",
    "ASC",
    "DESC",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "FROMMEMBER",
    "FROMLONLAT",
    "BYRADIUS",
    "BYBOX",
    "m",
    "km",
    "WITHCOORD",
    "WITHDIST",
    "WITHHASH",
    "ANY",
    "STOREDIST",
    "LEN",
    "IDX",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "REPLACE",
    "ABSTTL",
    "IDLETIME",
    "FREQ",
    "DB",
    "ENCODING",
    "REFCOUNT",
    "HELP",
    "STREAM",
    "GROUPS",
    "CONSUMERS",
    "FULL",
    "CREATE",
    "SETID",
    "DESTROY",
    "CREATECONSUMER",
    "DELCONSUMER",
    "MKSTREAM",
    "ENTRIESREAD",
    "NOMKSTREAM",
    "BLOCK",
    "STREAMS",
    ">",
    "$",
    "0-0",
    "1-1",
    "3-1",
    "18446744073709551615-18446744073709551615",
    "g",
    "c1",
    "f",
    "f1",
    "a",
    "USAGE",
    "SAMPLES",
    "DOCTOR",
    "STATS",
    "LOAD",
    "FLUSH",
    "EXISTS",
    "NUMSUB",
    "CHANNELS",
    "GETKEYS",
    "INFO",
    "LIST",
    "KILL",
    "0",
    "-1",
    "1",
];

/// An argument: a sample key (or a missing one), a word, a number at an
/// edge (maybe with a unit or a fraction), or any bytes.
fn command_arg() -> impl Strategy<Value = Vec<u8>> {
    let numbers = (any::<u64>(), 0usize..12).prop_map(|(n, form)| {
        let x = planted(n) as i64;
        match form {
            0 => format!("{}", x as u64),
            1 => format!("{}.5", x),
            2 => "inf".into(),
            3 => "-inf".into(),
            4 => "nan".into(),
            5 => "1e400".into(),
            6 => format!("{}", (x % 100)),
            7 => format!("{}", -(x % 100).abs()),
            8 => format!("{}", x % 70_000),
            _ => x.to_string(),
        }
        .into_bytes()
    });
    prop_oneof![
        4 => (0usize..16).prop_map(|i| format!("k{i}").into_bytes()),
        4 => prop::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        4 => numbers,
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #![proptest_config(config(300))]

    /// Any command with any arguments, in any order, on keys of every
    /// type and encoding: an answer or an error, never a panic; after
    /// them, every key still answers every reader.
    #[test]
    fn any_commands_on_every_type_never_panic(
        cmds in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::collection::vec(command_arg(), 0..8), 0usize..2),
            1..30,
        ),
    ) {
        let specs = crate::cmd::registry().all();
        let (mut sh, _) = sample_shard();
        for (which, args, db) in &cmds {
            let spec = specs[which.index(specs.len())];
            let mut argv: Vec<&[u8]> = vec![spec.name.as_bytes()];
            argv.extend(args.iter().map(|a| &a[..]));
            run(&mut sh, *db, 1_700_000_000_000, &argv);
        }
        for i in 0..16 {
            read_all(&mut sh, format!("k{i}").as_bytes());
        }
    }
}
