//! Property tests of what comes from the network: a master's replies and
//! stream fed to a [`Replica`] (valid, cut, split anywhere, damaged, or
//! garbage), a replica's `REPLCONF`/`PSYNC` to a [`Master`], and the
//! backlog against a plain `Vec<u8>`. Nothing panics, nothing is allocated
//! by a length the peer claims, and the actions follow the protocol.

use super::*;
use crate::backlog::{self, Backlog};
use crate::master::{Master, MasterConfig, Out, ReplState};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const ID: &str = "8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f";
const MARK: &str = "ab4e2f7c9d1b3a5c6e8f0a2b4c6d8e0f1a3b5c7d";
const MID_A: &[u8; 40] = b"68a1e6270114fa53f8ff5f3b9a840cd231bca8f7";
const MID_B: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";
const MID_C: &[u8; 40] = b"fedcba9876543210fedcba9876543210fedcba98";

/// `cases`, or `PROPTEST_CASES` when set (for a longer search).
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

// ---------------------------------------------------------------------------
// Replica side: an observer of the actions.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Handshake,
    /// `FullSync` seen, waiting for `RdbStart`.
    Header,
    /// Inside the RDB; bytes still announced by `$<len>`.
    Rdb(Option<u64>),
    Stream,
    Closed,
}

/// Follows one link's actions and checks their order and content.
struct Check {
    stage: Stage,
    /// Where the stream starts: the `+FULLRESYNC` offset, or the
    /// `PartialSync` one.
    base: i64,
    /// Offset reached by the `Proxy` actions.
    proxied: i64,
    /// `offset_after` of the last command.
    last: i64,
    /// Bytes given to `received` on this replica, all links.
    fed: usize,
    rdb: Vec<u8>,
    commands: Vec<Vec<Vec<u8>>>,
    offsets: Vec<i64>,
    stream: Vec<u8>,
    errors: Vec<String>,
    /// Offsets of the `FullSync` actions.
    fulls: Vec<i64>,
}

impl Check {
    fn new() -> Check {
        Check {
            stage: Stage::Handshake,
            base: 0,
            proxied: 0,
            last: 0,
            fed: 0,
            rdb: Vec::new(),
            commands: Vec::new(),
            offsets: Vec::new(),
            stream: Vec::new(),
            errors: Vec::new(),
            fulls: Vec::new(),
        }
    }

    /// A new link on the same replica.
    fn connect(&mut self, r: &mut Replica, now: u64) {
        let fed = self.fed;
        *self = Check::new();
        self.fed = fed;
        let a = r.connected(now);
        assert_eq!(a, vec![Action::Send(encode(&[b"PING"]))]);
    }

    fn feed(&mut self, r: &mut Replica, now: u64, data: &[u8]) {
        self.fed += data.len();
        let a = r.received(now, data);
        self.actions(&a);
        self.bounded(r, &a);
    }

    fn tick(&mut self, r: &mut Replica, now: u64) {
        let a = r.tick(now);
        for x in &a {
            assert!(
                matches!(x, Action::Send(_) | Action::Error(_) | Action::Close),
                "tick gave {x:?}"
            );
        }
        self.actions(&a);
    }

    fn actions(&mut self, a: &[Action]) {
        for (i, x) in a.iter().enumerate() {
            assert_ne!(self.stage, Stage::Closed, "{x:?} after Close");
            match x {
                Action::Send(b) => assert!(!b.is_empty()),
                Action::Notice(n) => assert!(!n.is_empty()),
                Action::Error(m) => {
                    assert!(!m.is_empty());
                    assert_eq!(a.get(i + 1), Some(&Action::Close), "Error without Close");
                    self.errors.push(m.clone());
                }
                Action::Close => {
                    assert!(i > 0 && matches!(a[i - 1], Action::Error(_)));
                    assert_eq!(i + 1, a.len(), "actions after Close");
                    self.stage = Stage::Closed;
                }
                Action::FullSync { replid, offset } => {
                    assert_eq!(self.stage, Stage::Handshake, "{x:?}");
                    match replid {
                        None => assert_eq!(*offset, -1),
                        // 40 bytes read as lossy UTF-8: at most 40 chars.
                        Some(id) => assert!((1..=RUN_ID_SIZE).contains(&id.chars().count())),
                    }
                    assert!(*offset <= OFFSET_MAX, "{x:?}");
                    self.base = *offset;
                    self.fulls.push(*offset);
                    self.stage = Stage::Header;
                }
                Action::RdbStart { len } => {
                    assert_eq!(self.stage, Stage::Header, "{x:?}");
                    self.stage = Stage::Rdb(*len);
                }
                Action::RdbChunk(b) => {
                    let Stage::Rdb(left) = self.stage else {
                        panic!("RdbChunk in {:?}", self.stage);
                    };
                    assert!(!b.is_empty());
                    if let Some(left) = left {
                        assert!(b.len() as u64 <= left, "chunk past the length");
                        self.stage = Stage::Rdb(Some(left - b.len() as u64));
                    }
                    self.rdb.extend_from_slice(b);
                }
                Action::RdbDone => {
                    assert!(
                        matches!(self.stage, Stage::Rdb(None | Some(0))),
                        "RdbDone in {:?}",
                        self.stage
                    );
                    self.stage = Stage::Stream;
                    self.proxied = self.base;
                    self.last = self.base;
                }
                Action::PartialSync { replid, offset } => {
                    assert_eq!(self.stage, Stage::Handshake, "{x:?}");
                    assert!(!replid.is_empty());
                    assert!(*offset <= OFFSET_MAX, "{x:?}");
                    self.base = *offset;
                    self.proxied = *offset;
                    self.last = *offset;
                    self.stage = Stage::Stream;
                }
                Action::Command { argv, offset_after } => {
                    assert_eq!(self.stage, Stage::Stream, "{x:?}");
                    assert!(!argv.is_empty());
                    assert!(*offset_after >= self.last, "offset went back");
                    assert!(*offset_after <= OFFSET_MAX);
                    self.last = *offset_after;
                    self.commands.push(argv.clone());
                    self.offsets.push(*offset_after);
                }
                Action::Proxy { bytes, offset } => {
                    assert_eq!(self.stage, Stage::Stream, "{x:?}");
                    assert!(!bytes.is_empty());
                    assert_eq!(*offset - self.proxied, bytes.len() as i64);
                    assert!(*offset >= self.last);
                    self.proxied = *offset;
                    self.stream.extend_from_slice(bytes);
                }
            }
        }
    }

    /// The replica's buffers and the actions are sized by the bytes
    /// received, not by any length those bytes claim.
    fn bounded(&self, r: &Replica, a: &[Action]) {
        let cap = 2 * self.fed + 1024;
        for (name, c) in [
            ("buf", r.buf.capacity()),
            ("tail", r.tail.capacity()),
            ("proxy", r.proxy.capacity()),
            ("scratch", r.scratch.capacity()),
            ("spans", r.spans.capacity()),
        ] {
            assert!(c <= cap, "{name} capacity {c} after {} bytes", self.fed);
        }
        let out: usize = a
            .iter()
            .map(|x| match x {
                Action::Send(b) | Action::RdbChunk(b) => b.len(),
                Action::Proxy { bytes, .. } => bytes.len(),
                Action::Command { argv, .. } => argv.iter().map(Vec::len).sum(),
                Action::Error(m) | Action::Notice(m) => m.len(),
                _ => 0,
            })
            .sum();
        assert!(out <= 3 * self.fed + 4096, "{out} bytes of actions");
    }
}

// ---------------------------------------------------------------------------
// Replica side: valid sessions.

/// A valid session from the master's side, with what it must produce.
#[derive(Clone, Debug)]
struct Session {
    bytes: Vec<u8>,
    /// Where the command stream starts in `bytes`.
    stream_at: usize,
    rdb: Vec<u8>,
    offset: i64,
    /// The commands reported (all but REPLCONF), with their offsets.
    commands: Vec<Vec<Vec<u8>>>,
    offsets: Vec<i64>,
    /// The offset once everything is applied.
    end: i64,
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            &b"MULTI"[..], b"EXEC", b"DISCARD", b"SELECT", b"SET", b"REPLCONF", b"GETACK",
            b"PING", b"*", b"3", b"multi", b"exec", b"\r\n", b"",
        ])
        .prop_map(|s| s.to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..24),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    (
        any::<bool>(),
        prop_oneof![Just(0i64), Just(-1i64), 0i64..1 << 40],
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec((0usize..3, prop::collection::vec(arg(), 1..5)), 0..14),
        0usize..3,
    )
        .prop_map(|(eof, offset, rdb, cmds, nl)| {
            let mut s = b"+PONG\r\n+OK\r\n+OK\r\n".to_vec();
            s.extend_from_slice(&b"\n".repeat(nl));
            s.extend_from_slice(format!("+FULLRESYNC {ID} {offset}\r\n").as_bytes());
            s.extend_from_slice(&b"\n".repeat(nl));
            if eof {
                s.extend_from_slice(format!("$EOF:{MARK}\r\n").as_bytes());
                s.extend_from_slice(&rdb);
                s.extend_from_slice(MARK.as_bytes());
            } else {
                s.extend_from_slice(format!("${}\r\n", rdb.len()).as_bytes());
                s.extend_from_slice(&rdb);
            }
            let stream_at = s.len();
            // Offsets as the module doc gives them: by the bytes of each
            // command, keepalives included, held still inside MULTI.
            let (mut commands, mut offsets) = (Vec::new(), Vec::new());
            let (mut reploff, mut in_multi) = (offset, false);
            for (keepalives, argv) in cmds {
                s.extend_from_slice(&b"\n".repeat(keepalives));
                let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                s.extend_from_slice(&encode(&args));
                let name = argv[0].to_ascii_lowercase();
                match name.as_slice() {
                    b"multi" => in_multi = true,
                    b"exec" | b"discard" => in_multi = false,
                    _ => {}
                }
                if !in_multi {
                    reploff = offset + (s.len() - stream_at) as i64;
                }
                if name != b"replconf" {
                    commands.push(argv);
                    offsets.push(reploff);
                }
            }
            Session {
                bytes: s,
                stream_at,
                rdb,
                offset,
                commands,
                offsets,
                end: reploff,
            }
        })
}

/// `data` in pieces cut at `cuts` (any numbers, taken modulo the length).
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn run(r: &mut Replica, chk: &mut Check, data: &[u8], cuts: &[usize]) {
    for p in pieces(data, cuts) {
        chk.feed(r, 0, p);
    }
}

/// What a whole valid session must have produced.
fn assert_session(r: &Replica, chk: &Check, s: &Session) -> Result<(), TestCaseError> {
    prop_assert!(chk.errors.is_empty(), "{:?}", chk.errors);
    prop_assert_eq!(chk.stage, Stage::Stream);
    prop_assert_eq!(&chk.rdb, &s.rdb);
    prop_assert_eq!(&chk.commands, &s.commands);
    prop_assert_eq!(&chk.offsets, &s.offsets);
    prop_assert_eq!(r.offset(), s.end);
    let applied = (s.end - s.offset) as usize;
    prop_assert_eq!(
        &chk.stream[..],
        &s.bytes[s.stream_at..s.stream_at + applied]
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Replica side: damage.

/// Pieces of protocol planted into a session.
const PLANTS: &[&[u8]] = &[
    b"$-5\r\n",
    b"$99999999999999999999\r\n",
    b"$9223372036854775807\r\n",
    b"$-9223372036854775808\r\n",
    b"$EOF:\r\n",
    b"$EOF:short\r\n",
    b"+FULLRESYNC 8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f -1\r\n",
    b"+FULLRESYNC 8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f 9223372036854775807\r\n",
    b"+FULLRESYNC 8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f -9223372036854775808\r\n",
    b"+FULLRESYNC 8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f 99999999999999999999\r\n",
    b"+FULLRESYNC x\r\n",
    b"+CONTINUE\r\n",
    b"+CONTINUE 8f1e5a3c0b6d4e2f9a7c1b3d5e7f9a0b2c4d6e8f\r\n",
    b"-NOAUTH Authentication required.\r\n",
    b"-LOADING\r\n",
    b"-ERR x\r\n",
    b"*2147483647\r\n",
    b"*2147483648\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*1\r\n$2147483647\r\n",
    b"*1\r\n$9223372036854775807\r\n",
    b"*1\r\n$-1\r\n",
    b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n",
    b"*1\r\n$5\r\nMULTI\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"PING\r\n",
];

/// Numbers planted over a number of the session.
const NUMBERS: &[&str] = &[
    "-1",
    "-5",
    "0",
    "2147483647",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999",
    "4611686018427387903",
    "4611686018427387904",
];

/// (kind, position, value)
type Damage = (u8, usize, usize);

fn damage(s: &mut Vec<u8>, (kind, pos, val): Damage) {
    let at = pos % (s.len() + 1);
    match kind {
        0 if !s.is_empty() => {
            let i = pos % s.len();
            s[i] = val as u8;
        }
        1 => {
            let p = PLANTS[val % PLANTS.len()];
            s.splice(at..at, p.iter().copied());
        }
        2 => {
            let end = (at + val % 8).min(s.len());
            s.drain(at..end);
        }
        3 => {
            // The next run of digits (with its sign) becomes an extreme.
            let Some(d) = s[at..].iter().position(u8::is_ascii_digit) else {
                return;
            };
            let mut start = at + d;
            if start > 0 && s[start - 1] == b'-' {
                start -= 1;
            }
            let len = s[at + d..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let n = NUMBERS[val % NUMBERS.len()].bytes();
            s.splice(start..at + d + len, n);
        }
        _ => s.truncate(at),
    }
}

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    prop::collection::vec((0u8..5, any::<usize>(), any::<usize>()), 1..5)
}

/// The offset a line-level number may take: extremes, near them, any.
fn wild_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -2,
            -1,
            0,
            1,
            i64::MAX,
            i64::MAX - 1,
            OFFSET_MAX,
            OFFSET_MAX - 1,
            OFFSET_MAX + 1,
        ]),
        (OFFSET_MAX - 200)..=(OFFSET_MAX + 200),
        (i64::MAX - 200)..=i64::MAX,
        any::<i64>(),
        -10i64..1000,
    ]
}

/// Text that is not a decimal integer as `string2ll` reads it.
fn not_an_integer() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "+1",
            "01",
            "-0",
            "- 1",
            " 1",
            "1 ",
            "1a",
            "0x10",
            "1.5",
            "abc",
            "-",
            "99999999999999999999",
            "-99999999999999999999",
            "9223372036854775808",
            "-9223372036854775809",
        ])
        .prop_map(String::from),
        "[a-z]{1,4}",
    ]
}

/// A replica whose link carries the stream at `offset`.
fn streaming_at(offset: i64) -> (Replica, Check) {
    let mut r = Replica::new(Config::new(1));
    let mut chk = Check::new();
    chk.connect(&mut r, 0);
    let hs = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {ID} {offset}\r\n$0\r\n");
    chk.feed(&mut r, 0, hs.as_bytes());
    assert_eq!(chk.stage, Stage::Stream);
    (r, chk)
}

proptest! {
    #![proptest_config(config(800))]

    /// A valid session split anywhere gives exactly its RDB, commands and
    /// offsets; cut short, a prefix of them and no error.
    #[test]
    fn valid_session_split_anywhere(
        s in session(),
        cut in any::<usize>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut r = Replica::new(Config::new(1));
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        let cut = cut % (s.bytes.len() + 1);
        run(&mut r, &mut chk, &s.bytes[..cut], &cuts);
        prop_assert!(chk.errors.is_empty(), "{:?}", chk.errors);
        prop_assert!(s.rdb.starts_with(&chk.rdb));
        prop_assert!(s.commands.starts_with(&chk.commands));
        prop_assert!(s.offsets.starts_with(&chk.offsets));
        run(&mut r, &mut chk, &s.bytes[cut..], &cuts);
        assert_session(&r, &chk, &s)?;
    }

    /// A damaged session, split anywhere, with time passing: the actions
    /// stay in protocol order, buffers stay sized by what arrived, and a
    /// fresh link with the valid session afterwards works in full.
    #[test]
    fn damaged_session(
        s in session(),
        dmg in damages(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        ticks in prop::collection::vec(0u64..3000, 0..8),
    ) {
        let mut bytes = s.bytes.clone();
        for d in &dmg {
            damage(&mut bytes, *d);
        }
        let mut r = Replica::new(Config::new(1));
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        let mut now = 0;
        for (i, p) in pieces(&bytes, &cuts).into_iter().enumerate() {
            chk.feed(&mut r, now, p);
            if let Some(t) = ticks.get(i) {
                now += t;
                chk.tick(&mut r, now);
            }
        }
        if chk.stage == Stage::Closed {
            prop_assert_eq!(chk.errors.len(), 1);
            prop_assert!(!r.is_streaming());
            prop_assert!(r.received(now, b"+PONG\r\n").is_empty());
        } else {
            prop_assert!(chk.errors.is_empty());
            r.closed();
        }
        r.take_aborted_multi();
        chk.connect(&mut r, now);
        // A resumable replica offers its cached master: a valid full
        // resynchronization follows either way.
        run(&mut r, &mut chk, &s.bytes, &cuts);
        assert_session(&r, &chk, &s)?;
    }

    /// Any bytes at any point of a valid session: no panic, protocol order.
    #[test]
    fn garbage_at_any_point(
        s in session(),
        cut in any::<usize>(),
        garbage in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut r = Replica::new(Config::new(1));
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        let cut = cut % (s.bytes.len() + 1);
        run(&mut r, &mut chk, &s.bytes[..cut], &[]);
        run(&mut r, &mut chk, &garbage, &cuts);
        chk.tick(&mut r, 10);
    }

    /// In the stream, a line that is neither a multibulk nor a keepalive
    /// is an error that drops the cached master, with no command applied.
    #[test]
    fn inline_garbage_in_the_stream_is_an_error(
        first in any::<u8>().prop_filter("not * or a newline", |b| !b"*\r\n".contains(b)),
        rest in prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..100),
        offset in 0i64..1 << 40,
    ) {
        let (mut r, mut chk) = streaming_at(offset);
        let mut line = vec![first];
        line.extend_from_slice(&rest);
        line.push(b'\n');
        chk.feed(&mut r, 0, &line);
        prop_assert_eq!(chk.stage, Stage::Closed);
        prop_assert!(chk.commands.is_empty());
        prop_assert_eq!(r.offset(), offset);
        prop_assert_eq!(r.resume_point(), None);
    }

    /// `*<n>` and `*1 $<n>` headers with any number: refused when out of
    /// range, otherwise waited on without allocating for them.
    #[test]
    fn stream_headers_with_any_number(
        n in prop_oneof![wild_i64().prop_map(|n| n.to_string()), not_an_integer()],
        bulk in any::<bool>(),
        offset in 0i64..1 << 40,
    ) {
        let (mut r, mut chk) = streaming_at(offset);
        let head = if bulk { format!("*1\r\n${n}\r\n") } else { format!("*{n}\r\n") };
        chk.feed(&mut r, 0, head.as_bytes());
        let refused = match n.parse::<i64>() {
            Ok(v) if n == v.to_string() && n != "-0" => {
                if bulk { v < 0 } else { v > i32::MAX as i64 }
            }
            _ => true,
        };
        prop_assert_eq!(chk.stage == Stage::Closed, refused, "{:?}", chk.errors);
        prop_assert!(chk.commands.is_empty());
        prop_assert_eq!(r.offset(), offset);
    }

    /// `$<n>` after `+FULLRESYNC`: a length when it is one, else an error.
    #[test]
    fn rdb_header_with_any_number(
        n in prop_oneof![wild_i64().prop_map(|n| n.to_string()), not_an_integer()],
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut r = Replica::new(Config::new(1));
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        let hs = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {ID} 0\r\n${n}\r\n");
        chk.feed(&mut r, 0, hs.as_bytes());
        chk.feed(&mut r, 0, &payload);
        match n.parse::<i64>() {
            Ok(v) if v >= 0 && n == v.to_string() => {
                // Bytes past the RDB are the stream: garbage there may fail.
                if payload.len() as i64 <= v {
                    prop_assert!(chk.errors.is_empty());
                }
                let got = payload.len().min(v as usize);
                prop_assert_eq!(&chk.rdb[..], &payload[..got]);
                if (payload.len() as i64) < v {
                    prop_assert_eq!(chk.stage, Stage::Rdb(Some((v - got as i64) as u64)));
                } else if payload.len() as i64 == v {
                    prop_assert_eq!(chk.stage, Stage::Stream);
                }
            }
            _ => prop_assert_eq!(chk.stage, Stage::Closed),
        }
    }

    /// Any `+FULLRESYNC` offset: accepted up to `OFFSET_MAX` and followed
    /// from there, the stream refused where it would pass it.
    #[test]
    fn fullresync_with_any_offset(
        offset in wild_i64(),
        cmds in prop::collection::vec(prop::collection::vec(arg(), 1..3), 1..6),
    ) {
        let mut r = Replica::new(Config::new(1));
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        let hs = format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {ID} {offset}\r\n$0\r\n");
        chk.feed(&mut r, 0, hs.as_bytes());
        if offset > OFFSET_MAX {
            prop_assert_eq!(chk.stage, Stage::Closed);
            prop_assert!(chk.fulls.is_empty());
            prop_assert_eq!(r.offset(), -1);
            return Ok(());
        }
        prop_assert_eq!(chk.stage, Stage::Stream);
        // `strtol` saturates the digits first: i64::MIN reads as MIN + 1.
        let offset = if offset == i64::MIN { offset + 1 } else { offset };
        prop_assert_eq!(&chk.fulls, &vec![offset]);
        let mut total: i64 = 0;
        for argv in &cmds {
            // No MULTI or REPLCONF here: every command moves the offset.
            let mut argv = argv.clone();
            argv.insert(0, b"SET".to_vec());
            let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
            let bytes = encode(&args);
            total += bytes.len() as i64;
            chk.feed(&mut r, 0, &bytes);
            if offset.checked_add(total).is_none_or(|o| o > OFFSET_MAX) {
                prop_assert_eq!(chk.stage, Stage::Closed);
                prop_assert_eq!(r.resume_point(), None);
                return Ok(());
            }
            prop_assert_eq!(chk.offsets.last(), Some(&(offset + total)));
        }
        prop_assert_eq!(r.offset(), offset + total);
    }

    /// A saved resume point with any offset: a cached master is offered
    /// only within `OFFSET_MAX`, and `+CONTINUE` is followed from it.
    #[test]
    fn resume_with_any_offset(offset in wild_i64(), cmd in prop::collection::vec(arg(), 1..3)) {
        let mut cfg = Config::new(1);
        cfg.resume = Some(Resume { replid: ID.into(), offset, db: 0 });
        let mut r = Replica::new(cfg);
        let mut chk = Check::new();
        chk.connect(&mut r, 0);
        chk.feed(&mut r, 0, b"+PONG\r\n+OK\r\n+OK\r\n+CONTINUE\r\n");
        if offset > OFFSET_MAX {
            prop_assert_eq!(chk.stage, Stage::Closed);
            return Ok(());
        }
        prop_assert_eq!(chk.stage, Stage::Stream);
        let mut argv = cmd;
        argv.insert(0, b"SET".to_vec());
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let bytes = encode(&args);
        chk.feed(&mut r, 0, &bytes);
        match offset.checked_add(bytes.len() as i64) {
            Some(o) if o <= OFFSET_MAX => prop_assert_eq!(r.offset(), o),
            _ => prop_assert_eq!(chk.stage, Stage::Closed),
        }
    }
}

// ---------------------------------------------------------------------------
// Master side.

fn sent_to(out: &[Out], conn: u64) -> String {
    out.iter()
        .filter_map(|o| match o {
            Out::Send(c, b) if *c == conn => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

/// Stream bytes that tell their position: byte `o` (1-based offset) is
/// `o % 251`.
fn stream_bytes(from: i64, n: usize) -> Vec<u8> {
    (0..n as i64).map(|i| ((from + i) % 251) as u8).collect()
}

/// (kind, value): the PSYNC offset, absolute or relative to the backlog.
fn psync_offset() -> impl Strategy<Value = (u8, i64)> {
    prop_oneof![
        (Just(0u8), wild_i64()),
        (Just(1u8), -3i64..4),
        (Just(2u8), -3i64..4),
        (Just(3u8), 0i64..70_000),
    ]
}

proptest! {
    #![proptest_config(config(500))]

    /// PSYNC with any ID and offset: `+CONTINUE` exactly when the ID is
    /// the master's (or its previous one, up to where it is valid) and
    /// the backlog holds the offset, then the bytes from there; a full
    /// resynchronization otherwise.
    #[test]
    fn psync_is_served_iff_the_backlog_covers_it(
        feeds in prop::collection::vec(0usize..12_000, 0..6),
        promote in any::<bool>(),
        after in prop::collection::vec(0usize..12_000, 0..3),
        id in 0u8..5,
        (kind, value) in psync_offset(),
        psync2 in any::<bool>(),
    ) {
        let cfg = MasterConfig { backlog_size: 0, ..MasterConfig::default() };
        let mut m = Master::new(*MID_A, cfg);
        m.replconf(1, "::1", &[b"REPLCONF", b"listening-port", b"6380"], 0);
        let out = m.sync(1, "::1", &[b"PSYNC", b"?", b"-1"], 0, *MID_B);
        prop_assert!(
            out.iter().any(|o| matches!(o, Out::FullResync { offset: 0, .. })),
            "no full resync"
        );
        m.rdb_transfer(1, false);
        m.rdb_done(1, 0);
        let mut total: i64 = 0;
        let mut second = (*b"0000000000000000000000000000000000000000", -1i64);
        for (i, n) in feeds.iter().chain(&after).enumerate() {
            if promote && i == feeds.len() {
                m.shift_replid(*MID_C);
                second = (*MID_B, total + 1);
            }
            m.feed(&stream_bytes(total + 1, *n));
            total += *n as i64;
        }
        if promote && second.1 == -1 {
            m.shift_replid(*MID_C);
            second = (*MID_B, total + 1);
        }
        let replid = if promote { *MID_C } else { *MID_B };
        prop_assert_eq!(m.offset(), total);
        let held = total.min(backlog::MIN_SIZE as i64);
        let first = total - held + 1;
        let offset = match kind {
            0 => value,
            1 => first + value,
            2 => total + 1 + value,
            _ => value,
        };
        let asked: Vec<u8> = match id {
            0 => replid.to_vec(),
            1 => replid.to_ascii_uppercase(),
            2 => second.0.to_vec(),
            3 => b"?".to_vec(),
            _ => b"ffffffffffffffffffffffffffffffffffffffff".to_vec(),
        };
        if psync2 {
            m.replconf(2, "::1", &[b"REPLCONF", b"capa", b"psync2"], 0);
        }
        let off = offset.to_string();
        let out = m.sync(2, "::1", &[b"PSYNC", &asked, off.as_bytes()], 0, *MID_A);
        let known = asked.eq_ignore_ascii_case(&replid)
            || (asked.eq_ignore_ascii_case(&second.0) && offset <= second.1);
        let serve = known && offset >= first && offset <= total + 1;
        let line = String::from_utf8_lossy(&replid).into_owned();
        if serve {
            let want = if psync2 { format!("+CONTINUE {line}\r\n") } else { "+CONTINUE\r\n".into() };
            prop_assert_eq!(sent_to(&out, 2), want);
            prop_assert!(
                !out.iter().any(|o| matches!(o, Out::FullResync { .. })),
                "continue and full resync"
            );
            prop_assert_eq!(m.replica(2), Some((ReplState::Online, 0)));
            let mut bytes = Vec::new();
            prop_assert!(m.output(2, &mut bytes));
            prop_assert_eq!(bytes, stream_bytes(offset, (total + 1 - offset) as usize));
        } else {
            prop_assert_eq!(sent_to(&out, 2), format!("+FULLRESYNC {line} {total}\r\n"));
            let full = Out::FullResync { conn: 2, offset: total, eof: false, empty: false };
            prop_assert!(out.contains(&full));
            prop_assert_eq!(m.replica(2), Some((ReplState::WaitBgsave, 0)));
        }
    }

    /// PSYNC and SYNC with arguments that are not an offset: an error
    /// reply, and the connection does not become a replica.
    #[test]
    fn psync_with_a_bad_offset_is_refused(
        off in not_an_integer(),
        id in prop::collection::vec(any::<u8>(), 0..50),
    ) {
        let mut m = Master::new(*MID_A, MasterConfig::default());
        let out = m.sync(3, "::1", &[b"PSYNC", &id, off.as_bytes()], 0, *MID_B);
        prop_assert_eq!(sent_to(&out, 3), "-ERR value is not an integer or out of range\r\n");
        prop_assert_eq!(m.replica(3), None);
        prop_assert_eq!(m.sync_stats(), (0, 0, 0));
    }

    /// `REPLCONF ACK <n> [FACK <n>]` with any values: no reply, and the
    /// acknowledged offset is the greatest valid one.
    #[test]
    fn replconf_ack_keeps_the_greatest(
        acks in prop::collection::vec(
            (prop_oneof![wild_i64().prop_map(|n| n.to_string()), not_an_integer()],
             prop::option::of(wild_i64())),
            0..12),
    ) {
        let mut m = Master::new(*MID_A, MasterConfig::default());
        m.sync(1, "::1", &[b"PSYNC", b"?", b"-1"], 0, *MID_B);
        m.rdb_transfer(1, false);
        m.rdb_done(1, 0);
        let mut want = 0i64;
        for (i, (ack, fack)) in acks.iter().enumerate() {
            let fack = fack.map(|f| f.to_string());
            let mut argv: Vec<&[u8]> = vec![b"REPLCONF", b"ACK", ack.as_bytes()];
            if let Some(f) = &fack {
                argv.extend([&b"FACK"[..], f.as_bytes()]);
            }
            let reply = m.replconf(1, "::1", &argv, i as u64);
            prop_assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
            if let Ok(v) = ack.parse::<i64>() {
                if *ack == v.to_string() {
                    want = want.max(v);
                }
            }
            prop_assert_eq!(m.replica(1), Some((ReplState::Online, want)));
        }
        prop_assert_eq!(m.count_acks(want), 1);
    }

    /// Any REPLCONF: `+OK`, an `-ERR` line, or nothing (ACK, GETACK).
    #[test]
    fn replconf_with_any_arguments(
        args in prop::collection::vec(prop_oneof![
            prop::sample::select(vec![
                &b"listening-port"[..], b"ip-address", b"capa", b"ack", b"getack",
                b"rdb-only", b"rdb-filter-only", b"eof", b"psync2", b"functions",
                b"-1", b"1", b"0", b"2", b"99999999999999999999", b"",
            ]).prop_map(<[u8]>::to_vec),
            prop::collection::vec(any::<u8>(), 0..300),
            wild_i64().prop_map(|n| n.to_string().into_bytes()),
        ], 0..8),
        replica in any::<bool>(),
    ) {
        let mut m = Master::new(*MID_A, MasterConfig::default());
        if replica {
            m.sync(1, "::1", &[b"PSYNC", b"?", b"-1"], 0, *MID_B);
        }
        let mut argv: Vec<&[u8]> = vec![b"REPLCONF"];
        argv.extend(args.iter().map(Vec::as_slice));
        let reply = m.replconf(1, "::1", &argv, 0);
        let text = String::from_utf8_lossy(&reply);
        prop_assert!(
            reply.is_empty() || text == "+OK\r\n"
                || (text.starts_with("-ERR ") && text.ends_with("\r\n")),
            "{text:?}"
        );
        m.info(0);
    }

    /// A master continuing any history (offsets from a peer or a file,
    /// extremes included): no panic whatever happens next, offsets never
    /// go back, the backlog never holds more than its size.
    #[test]
    fn master_from_any_offset(
        start in wild_i64(),
        promote in any::<bool>(),
        ops in prop::collection::vec((0u8..6, 0usize..20_000, psync_offset()), 0..12),
    ) {
        let cfg = MasterConfig { backlog_size: 0, ..MasterConfig::default() };
        let mut m = Master::new(*MID_A, cfg);
        m.restart_at(*MID_B, start);
        if promote {
            m.shift_replid(*MID_C);
        }
        let mut now = 0;
        for (i, (op, n, (kind, value))) in ops.into_iter().enumerate() {
            let conn = (n % 3) as u64;
            let before = m.offset();
            now += 700;
            match op {
                0 => m.feed(&vec![b'x'; n]),
                1 => {
                    let off = match kind {
                        1 => m.backlog().map_or(0, |b| b.first_byte_offset()).saturating_add(value),
                        2 => m.offset().saturating_add(value),
                        _ => value,
                    };
                    let id = if n % 2 == 0 { *MID_B } else { *MID_C };
                    let off = off.to_string();
                    m.sync(conn, "::1", &[b"PSYNC", &id, off.as_bytes()], now, *MID_A);
                }
                2 => {
                    let v = value.to_string();
                    m.replconf(conn, "::1", &[b"REPLCONF", b"ACK", v.as_bytes()], now);
                }
                3 => {
                    let mut out = Vec::new();
                    if !m.output(conn, &mut out) {
                        m.closed(conn, now);
                    }
                }
                4 => {
                    m.rdb_transfer(conn, i % 2 == 0);
                    m.rdb_done(conn, now);
                }
                _ => drop(m.tick(now)),
            }
            prop_assert!(m.offset() >= before);
            let b = m.backlog().expect("restart_at makes a backlog");
            prop_assert!(b.histlen() <= b.size() as i64);
            prop_assert_eq!(b.master_repl_offset(), m.offset());
            let info = m.info(now);
            let line = format!("master_repl_offset:{}\r\n", m.offset());
            prop_assert!(info.contains(&line));
        }
    }
}

// ---------------------------------------------------------------------------
// Backlog.

#[derive(Clone, Debug)]
enum Op {
    Feed(usize),
    Resize(usize),
    /// Read at an offset: absolute (kind 0) or relative to the first byte
    /// (1) or the last (2).
    Read(u8, i64),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0usize..40_000).prop_map(Op::Feed),
            1 => (0usize..70_000).prop_map(Op::Resize),
            4 => psync_offset().prop_map(|(k, v)| Op::Read(k, v)),
        ],
        0..16,
    )
}

proptest! {
    #![proptest_config(config(300))]

    /// Appends, resizes and reads at any offset, against a `Vec<u8>` of
    /// everything appended: a read returns exactly the bytes appended from
    /// that offset on, and succeeds exactly when they are all still held.
    #[test]
    fn backlog_matches_a_vec(
        start in -1_000_000_000i64..1_000_000_000_000,
        size in 0usize..50_000,
        ops in ops(),
    ) {
        let mut b = Backlog::new(size, start);
        let mut size = size.max(backlog::MIN_SIZE);
        let mut all: Vec<u8> = Vec::new();
        let mut held = 0usize;
        for op in ops {
            match op {
                Op::Feed(n) => {
                    let from = start + all.len() as i64 + 1;
                    let bytes = stream_bytes(from.rem_euclid(251), n);
                    b.feed(&bytes);
                    all.extend_from_slice(&bytes);
                    held = (held + n).min(size);
                }
                Op::Resize(s) => {
                    b.resize(s);
                    size = s.max(backlog::MIN_SIZE);
                    held = held.min(size);
                }
                Op::Read(kind, v) => {
                    let end = start + all.len() as i64;
                    let first = end - held as i64 + 1;
                    let off = match kind {
                        1 => first.saturating_add(v),
                        2 => end.saturating_add(v),
                        _ => v,
                    };
                    let want = (off >= first && off <= end + 1)
                        .then(|| all[(off - start - 1) as usize..].to_vec());
                    let got = b.read_from(off).map(|(x, y)| [x, y].concat());
                    prop_assert_eq!(got, want, "read at {}", off);
                    prop_assert_eq!(b.covers(off), off >= first && off <= end + 1);
                }
            }
            prop_assert_eq!(b.size(), size);
            prop_assert_eq!(b.master_repl_offset(), start + all.len() as i64);
            prop_assert_eq!(b.histlen(), held as i64);
            prop_assert_eq!(b.first_byte_offset(), start + all.len() as i64 - held as i64 + 1);
        }
    }

    /// A backlog starting at any offset, extremes included: no panic, the
    /// offset never goes back, what a read returns was held.
    #[test]
    fn backlog_from_any_offset(start in wild_i64(), ops in ops()) {
        let mut b = Backlog::new(0, start);
        for op in ops {
            let before = b.master_repl_offset();
            match op {
                Op::Feed(n) => b.feed(&vec![7; n]),
                Op::Resize(s) => b.resize(s),
                Op::Read(kind, v) => {
                    let off = match kind {
                        1 => b.first_byte_offset().saturating_add(v),
                        2 => b.master_repl_offset().saturating_add(v),
                        _ => v,
                    };
                    if let Some((x, y)) = b.read_from(off) {
                        prop_assert!(b.covers(off));
                        prop_assert!(x.len() + y.len() <= b.histlen() as usize);
                    }
                }
            }
            prop_assert!(b.master_repl_offset() >= before);
            prop_assert!(b.histlen() <= b.size() as i64);
            prop_assert!(b.first_byte_offset() <= b.master_repl_offset().saturating_add(1));
        }
    }
}
