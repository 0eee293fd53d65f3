//! Property tests: what arrives from a peer (bus frames, MODULE payloads),
//! from a client (CLUSTER arguments) or from a file (`nodes.conf`) gets a
//! result or an error, never a panic, and no allocation sized by a length
//! field. Inputs are valid samples of every kind, then damaged.
//!
//! The state machine checks its invariants after every call in debug
//! builds, so feeding it messages also checks it stays consistent.

use crate::command::{self, Facts};
use crate::cores::{self, CorePorts};
use crate::nodes_conf::{self, NodeLine, NodesConf};
use crate::state::{Action, Cluster, Config, LinkId};
use crate::wire::{
    self, flags, mflags0, Body, Gossip, GossipEntry, Header, Msg, PingExt, GOSSIP_BYTES,
    HEADER_BYTES,
};
use crate::{NodeId, SlotBitmap, SLOTS, SLOT_BITMAP_BYTES};
use proptest::prelude::*;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ----- Allocation tracking --------------------------------------------------

/// The system allocator, noting the largest request made while a thread
/// tracks (see [`largest_alloc`]).
struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let on = TRACKING.try_with(Cell::get).unwrap_or(false);
    if on {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
    }
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// `f()` and the largest single allocation it asked for.
fn largest_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|m| m.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, LARGEST.with(Cell::get))
}

/// Decodes `buf`, checking that no allocation exceeds what the bytes
/// present can justify.
fn decode_bounded(buf: &[u8]) -> Result<Msg, wire::WireError> {
    let (r, largest) = largest_alloc(|| wire::decode(buf));
    let bound = 2 * buf.len() + 8192;
    assert!(
        largest <= bound,
        "decode of {} bytes allocated {largest} bytes at once",
        buf.len()
    );
    r
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ----- Messages ---------------------------------------------------------------

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => 0u64..8,
        1 => prop::sample::select(vec![u64::MAX, u64::MAX - 1, i64::MAX as u64, 1 << 63]),
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        3 => "[0-9a-f]{40}".prop_map(|s| NodeId(s.as_bytes().try_into().unwrap())),
        1 => Just(NodeId::NULL),
        1 => prop::array::uniform32(any::<u8>()).prop_map(|a| {
            let mut id = [0u8; 40];
            id[..32].copy_from_slice(&a);
            NodeId(id)
        }),
    ]
}

fn slots() -> impl Strategy<Value = SlotBitmap> {
    prop_oneof![
        Just(SlotBitmap::new()),
        Just(SlotBitmap(Box::new([0xff; SLOT_BITMAP_BYTES]))),
        (0u16..SLOTS as u16, 0u16..SLOTS as u16).prop_map(|(a, b)| {
            let mut s = SlotBitmap::new();
            for slot in a.min(b)..=a.max(b) {
                s.set(slot, true);
            }
            s
        }),
        // Random bits from a seed: 2048 strategies of a byte cost too much.
        any::<u64>().prop_map(|seed| {
            let mut s = SlotBitmap::new();
            rand::RngCore::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(seed), &mut s.0[..]);
            s
        }),
    ]
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("127.0.0.1".to_string()),
        "[0-9a-f.:]{1,45}",
        // What decode lets through: printable, no space, no comma.
        "[!-+\\--~]{1,45}",
    ]
}

/// An IP for nodes.conf: no space or comma.
fn conf_ip() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[0-9a-f.:]{1,45}"]
}

fn header() -> impl Strategy<Value = Header> {
    (
        (any::<u16>(), edge_u64(), edge_u64(), edge_u64()),
        (node_id(), slots(), node_id(), ip()),
        (any::<u16>(), any::<u16>(), any::<u16>(), any::<u8>()),
        any::<[u8; 3]>(),
    )
        .prop_map(
            |(
                (port, current_epoch, config_epoch, offset),
                (sender, myslots, slaveof, myip),
                (pport, cport, node_flags, state),
                mut mflags,
            )| {
                mflags[0] &= !mflags0::EXT_DATA;
                Header {
                    port,
                    current_epoch,
                    config_epoch,
                    offset,
                    sender,
                    myslots,
                    slaveof,
                    myip,
                    pport,
                    cport,
                    flags: node_flags,
                    state,
                    mflags,
                }
            },
        )
}

fn gossip_entry() -> impl Strategy<Value = GossipEntry> {
    (
        node_id(),
        any::<u32>(),
        any::<u32>(),
        ip(),
        any::<[u16; 4]>(),
    )
        .prop_map(
            |(node, ping_sent, pong_received, ip, [port, cport, flags, pport])| GossipEntry {
                node,
                ping_sent,
                pong_received,
                ip,
                port,
                cport,
                flags,
                pport,
            },
        )
}

fn ping_ext() -> impl Strategy<Value = PingExt> {
    prop_oneof![
        "[a-z0-9.-]{0,30}".prop_map(PingExt::Hostname),
        "[!-~]{0,30}".prop_map(PingExt::Hostname),
        (1u16..9, prop::collection::vec(any::<u64>(), 0..4)).prop_map(|(kind, words)| {
            PingExt::Unknown {
                kind,
                data: words.iter().flat_map(|w| w.to_be_bytes()).collect(),
            }
        }),
    ]
}

fn gossip() -> impl Strategy<Value = Gossip> {
    (
        prop::collection::vec(gossip_entry(), 0..6),
        prop::collection::vec(ping_ext(), 0..3),
    )
        .prop_map(|(entries, extensions)| Gossip {
            entries,
            extensions,
        })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn cores_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        1usize..5,
        prop::collection::vec((0u16..SLOTS as u16, 0u16..8), 0..6),
    )
        .prop_map(|(n, runs)| {
            let mut core = vec![cores::NO_CORE; SLOTS];
            for (slot, c) in runs {
                core[slot as usize] = c % n as u16;
            }
            CorePorts {
                ports: (0..n as u16).map(|i| 7100 + i).collect(),
                core,
            }
            .encode()
        })
}

/// Every message type, with the gossip sections and extensions of
/// PING/PONG/MEET.
fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        gossip().prop_map(Body::Ping),
        gossip().prop_map(Body::Pong),
        gossip().prop_map(Body::Meet),
        node_id().prop_map(|about| Body::Fail { about }),
        (bytes(40), bytes(200)).prop_map(|(channel, message)| Body::Publish { channel, message }),
        (bytes(40), bytes(40))
            .prop_map(|(channel, message)| Body::PublishShard { channel, message }),
        Just(Body::FailoverAuthRequest),
        Just(Body::FailoverAuthAck),
        Just(Body::MfStart),
        (edge_u64(), node_id(), slots()).prop_map(|(config_epoch, node, slots)| Body::Update {
            config_epoch,
            node,
            slots
        }),
        (any::<[u8; 8]>(), any::<u8>(), bytes(60)).prop_map(|(module_id, kind, payload)| {
            Body::Module {
                module_id,
                kind,
                payload,
            }
        }),
        (any::<u8>(), cores_payload()).prop_map(|(kind, payload)| Body::Module {
            module_id: cores::MODULE_ID,
            kind: kind % 2,
            payload,
        }),
        (11u16.., bytes(60)).prop_map(|(msg_type, data)| Body::Unknown { msg_type, data }),
    ]
}

fn msg() -> impl Strategy<Value = Msg> {
    (header(), body()).prop_map(|(header, body)| Msg { header, body })
}

// ----- Frame damage -------------------------------------------------------------

/// Offsets of the length and count fields of an encoded frame: header
/// fields, the body's first words, each ping extension's length.
fn length_fields(buf: &[u8]) -> Vec<usize> {
    let mut out = vec![4, 8, 12, 14, 2214, 2253];
    let h = HEADER_BYTES;
    out.extend([h, h + 4, h + 8, h + 9]);
    let count = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let mut at = h + count * GOSSIP_BYTES;
    let kind = u16::from_be_bytes([buf[12], buf[13]]);
    if kind <= wire::msg_type::MEET {
        while at + 8 <= buf.len() {
            out.push(at);
            let len = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            if len < 8 {
                break;
            }
            at += len;
        }
    }
    out
}

/// One damage to a frame.
#[derive(Debug, Clone)]
enum Damage {
    /// Overwrite a byte anywhere.
    Byte(usize, u8),
    /// Set a 16-bit field (a known one, or anywhere) to a value.
    U16(bool, usize, u16),
    /// Set a 32-bit field to a value.
    U32(bool, usize, u32),
    /// Cut the frame.
    Truncate(usize),
    /// Append bytes.
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    let u16s = prop_oneof![
        any::<u16>(),
        prop::sample::select(vec![0u16, 1, 2, 0x7fff, 0x8000, 0xfffe, 0xffff]),
    ];
    let u32s = prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![
            0u32,
            1,
            7,
            8,
            9,
            16,
            HEADER_BYTES as u32,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fff8,
            0xffff_ffff,
        ]),
    ];
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Byte(at, b)),
        3 => (any::<bool>(), any::<usize>(), u16s).prop_map(|(f, at, v)| Damage::U16(f, at, v)),
        3 => (any::<bool>(), any::<usize>(), u32s).prop_map(|(f, at, v)| Damage::U32(f, at, v)),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => bytes(300).prop_map(Damage::Append),
    ]
}

fn apply(buf: &mut Vec<u8>, d: &Damage) {
    let pick = |field: bool, at: usize, buf: &[u8], width: usize| -> Option<usize> {
        let at = if field {
            let fields = length_fields(buf);
            fields[at % fields.len()]
        } else {
            at % buf.len().max(1)
        };
        (at + width <= buf.len()).then_some(at)
    };
    match d {
        Damage::Byte(at, b) => {
            if !buf.is_empty() {
                let n = buf.len();
                buf[at % n] = *b;
            }
        }
        Damage::U16(field, at, v) => {
            if buf.len() >= HEADER_BYTES {
                if let Some(at) = pick(*field, *at, buf, 2) {
                    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
        Damage::U32(field, at, v) => {
            if buf.len() >= HEADER_BYTES {
                if let Some(at) = pick(*field, *at, buf, 4) {
                    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
        Damage::Truncate(n) => {
            let n = n % (buf.len() + 1);
            buf.truncate(n);
        }
        Damage::Append(extra) => buf.extend_from_slice(extra),
    }
}

/// Checks what `decode` made of damaged bytes: an error, or a message
/// that encodes back to bytes decoding the same.
fn check_decoded(buf: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(msg) = decode_bounded(buf) {
        let again = wire::encode(&msg);
        prop_assert_eq!(wire::decode(&again), Ok(msg));
    }
    if buf.len() >= 8 {
        let first8: [u8; 8] = buf[..8].try_into().unwrap();
        let _ = wire::frame_len(&first8);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    /// Any bytes, and any bytes behind a valid signature and length.
    #[test]
    fn decode_arbitrary_bytes(buf in bytes(4096), framed in any::<bool>()) {
        let mut buf = buf;
        if framed && buf.len() >= 10 {
            buf[..4].copy_from_slice(b"RCmb");
            let n = buf.len() as u32;
            buf[4..8].copy_from_slice(&n.to_be_bytes());
            buf[8..10].copy_from_slice(&1u16.to_be_bytes());
        }
        check_decoded(&buf)?;
        let mut first8 = [0u8; 8];
        let n = buf.len().min(8);
        first8[..n].copy_from_slice(&buf[..n]);
        let len = wire::frame_len(&first8);
        if let Ok(len) = len {
            prop_assert!((HEADER_BYTES..=wire::MSG_BYTES_MAX).contains(&len));
        }
    }
}

proptest! {
    #![proptest_config(config(1200))]

    /// Valid frames of every type, damaged, with or without `totlen`
    /// patched to the damaged length.
    #[test]
    fn damaged_frames(
        msg in msg(),
        damages in prop::collection::vec(damage(), 0..5),
        fix_totlen in any::<bool>(),
    ) {
        let clean = wire::encode(&msg);
        prop_assert_eq!(decode_bounded(&clean), Ok(msg.clone()));
        let first8: [u8; 8] = clean[..8].try_into().unwrap();
        prop_assert_eq!(wire::frame_len(&first8), Ok(clean.len()));
        let mut buf = clean;
        for d in &damages {
            apply(&mut buf, d);
        }
        if fix_totlen && buf.len() >= 8 {
            let n = buf.len() as u32;
            buf[4..8].copy_from_slice(&n.to_be_bytes());
        }
        check_decoded(&buf)?;
    }
}

proptest! {
    #![proptest_config(config(600))]

    /// The shard-core map of MODULE messages.
    #[test]
    fn core_ports_payloads(
        payload in cores_payload(),
        damages in prop::collection::vec(damage(), 0..4),
        raw in bytes(300),
    ) {
        let map = CorePorts::decode(&payload);
        prop_assert!(map.is_some());
        prop_assert_eq!(map.map(|m| m.encode()), Some(payload.clone()));
        let mut buf = payload;
        for d in &damages {
            match d {
                Damage::U16(_, at, v) if !buf.is_empty() => {
                    let at = at % buf.len();
                    let end = (at + 2).min(buf.len());
                    buf[at..end].copy_from_slice(&v.to_be_bytes()[..end - at]);
                }
                d => apply(&mut buf, d),
            }
        }
        for b in [&buf, &raw] {
            let (map, largest) = largest_alloc(|| CorePorts::decode(b));
            // The slot table is the only allocation not bounded by the input.
            prop_assert!(largest <= 2 * b.len() + 2 * SLOTS + 1024);
            if let Some(map) = map {
                prop_assert_eq!(CorePorts::decode(&map.encode()), Some(map));
            }
        }
    }
}

// ----- nodes.conf -----------------------------------------------------------------

fn conf_id(i: usize, seed: u64) -> NodeId {
    let s = format!("{i:02x}{seed:016x}{:022x}", seed.rotate_left(17));
    NodeId::parse(s.as_bytes()).unwrap()
}

/// A valid file: node 0 is myself (a master, or a replica of node 1),
/// masters own disjoint slot ranges, replicas name a master.
fn nodes_conf() -> impl Strategy<Value = NodesConf> {
    (
        2usize..6,
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(
            (
                conf_ip(),
                any::<[u16; 2]>(),
                "[a-z0-9.-]{0,12}",
                0u16..512,
                [edge_u64(), edge_u64(), edge_u64()],
                any::<bool>(),
                0u16..3,
            ),
            6,
        ),
        (edge_u64(), edge_u64()),
        prop::collection::vec((0u16..SLOTS as u16, any::<bool>(), 0usize..6), 0..4),
    )
        .prop_map(|(n, seed, me_replica, lines, epochs, moving)| {
            let ids: Vec<NodeId> = (0..n).map(|i| conf_id(i, seed)).collect();
            let width = SLOTS as u16 / n as u16;
            let mut nodes = Vec::new();
            for (i, (ip, [port, cport], hostname, extra, [ping, pong, epoch], up, runs)) in
                lines.into_iter().take(n).enumerate()
            {
                let replica = (i == 0 && me_replica) || (i > 1 && extra % 3 == 0);
                let mut node_flags = if replica { flags::SLAVE } else { flags::MASTER };
                if i == 0 {
                    node_flags |= flags::MYSELF;
                } else {
                    node_flags |= extra & (flags::PFAIL | flags::NOADDR | flags::NOFAILOVER);
                    if extra & flags::PFAIL == 0 {
                        node_flags |= extra & flags::FAIL;
                    }
                }
                let first = i as u16 * width;
                let slots = if replica {
                    Vec::new()
                } else {
                    (0..runs)
                        .map(|r| (first + r * 10, first + r * 10 + extra % 10))
                        .collect()
                };
                nodes.push(NodeLine {
                    id: ids[i],
                    ip,
                    port,
                    cport,
                    hostname,
                    flags: node_flags,
                    master: replica.then_some(ids[(i + 1) % 2]),
                    ping_sent: ping,
                    pong_received: pong,
                    config_epoch: epoch,
                    connected: up,
                    slots,
                    migrating: Vec::new(),
                    importing: Vec::new(),
                });
            }
            for (slot, out, peer) in moving {
                let peer = ids[peer % n];
                let me = &mut nodes[0];
                if out {
                    if !me.migrating.iter().any(|m| m.0 == slot) {
                        me.migrating.push((slot, peer));
                    }
                } else if !me.importing.iter().any(|m| m.0 == slot) {
                    me.importing.push((slot, peer));
                }
            }
            let me = &mut nodes[0];
            me.migrating.sort();
            me.importing.sort();
            let importing = me.importing.clone();
            me.migrating
                .retain(|m| !importing.iter().any(|i| i.0 == m.0));
            NodesConf {
                nodes,
                current_epoch: epochs.0,
                last_vote_epoch: epochs.1,
            }
        })
}

/// Fields a damaged line may get.
const TOKENS: &[&str] = &[
    "",
    "-",
    "0",
    "-1",
    "16383",
    "16384",
    "65535",
    "65536",
    "18446744073709551615",
    "18446744073709551616",
    "0-16383",
    "16383-0",
    "5-",
    "-5",
    "--",
    "[0->-",
    "[]",
    "[",
    "]",
    "[16384->-0000000000000000000000000000000000000000]",
    "[1-<-0000000000000000000000000000000000000000]",
    "myself",
    "myself,master,slave",
    "master,slave",
    "myself,slave",
    "myself,fail",
    "fail,fail?",
    "myself,fail?",
    "myself,handshake",
    "noflags",
    "noaddr",
    "handshake",
    "connected",
    "disconnected",
    "vars",
    "currentEpoch",
    "lastVoteEpoch",
    "127.0.0.1:7000@17000",
    ":0@0",
    "1:2",
    "::1:3@4,host",
    "a:b@c",
    "x:65536@1",
    "x:1@65536",
    "0000000000000000000000000000000000000000",
    "é",
    "\u{0}",
];

#[derive(Debug, Clone)]
enum LineDamage {
    /// Replace field `f` of line `l` with a token, a node ID of the file,
    /// or a random word.
    Replace(usize, usize, usize),
    Delete(usize, usize),
    Insert(usize, usize, usize),
    DupLine(usize),
    DelLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
    InsertChar(usize, char),
}

fn line_damage() -> impl Strategy<Value = LineDamage> {
    let (u, w) = (any::<usize>, any::<usize>);
    prop_oneof![
        4 => (u(), w(), any::<usize>()).prop_map(|(l, f, t)| LineDamage::Replace(l, f, t)),
        1 => (u(), w()).prop_map(|(l, f)| LineDamage::Delete(l, f)),
        1 => (u(), w(), any::<usize>()).prop_map(|(l, f, t)| LineDamage::Insert(l, f, t)),
        1 => u().prop_map(LineDamage::DupLine),
        1 => u().prop_map(LineDamage::DelLine),
        1 => (u(), w()).prop_map(|(a, b)| LineDamage::SwapLines(a, b)),
        1 => u().prop_map(LineDamage::Truncate),
        1 => (u(), any::<char>()).prop_map(|(at, c)| LineDamage::InsertChar(at, c)),
    ]
}

fn damage_conf(text: &str, ids: &[String], damages: &[LineDamage]) -> String {
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let token = |t: usize| -> String {
        let n = TOKENS.len() + ids.len();
        match t % n {
            i if i < TOKENS.len() => TOKENS[i].to_string(),
            i => ids[i - TOKENS.len()].clone(),
        }
    };
    let mut tail: Vec<&LineDamage> = Vec::new();
    for d in damages {
        let nl = lines.len().max(1);
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        match *d {
            LineDamage::Replace(l, f, t) => {
                let line = &mut lines[l % nl];
                if !line.is_empty() {
                    let n = line.len();
                    line[f % n] = token(t);
                }
            }
            LineDamage::Delete(l, f) => {
                let line = &mut lines[l % nl];
                if !line.is_empty() {
                    let n = line.len();
                    line.remove(f % n);
                }
            }
            LineDamage::Insert(l, f, t) => {
                let line = &mut lines[l % nl];
                let n = line.len();
                line.insert(f % (n + 1), token(t));
            }
            LineDamage::DupLine(l) => {
                let line = lines[l % nl].clone();
                lines.insert(l % nl, line);
            }
            LineDamage::DelLine(l) => {
                lines.remove(l % nl);
            }
            LineDamage::SwapLines(a, b) => lines.swap(a % nl, b % nl),
            LineDamage::Truncate(_) | LineDamage::InsertChar(..) => tail.push(d),
        }
    }
    let mut out: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
    for d in tail {
        match *d {
            LineDamage::Truncate(n) => {
                let mut at = n % (out.len() + 1);
                while !out.is_char_boundary(at) {
                    at -= 1;
                }
                out.truncate(at);
            }
            LineDamage::InsertChar(n, c) => {
                let mut at = n % (out.len() + 1);
                while !out.is_char_boundary(at) {
                    at -= 1;
                }
                out.insert(at, c);
            }
            _ => {}
        }
    }
    out
}

const T0: u64 = 1_700_000_000_000;

fn node_config() -> Config {
    let mut c = Config::new(7000);
    c.announce_ip = "10.0.0.1".into();
    c.node_timeout_ms = 1000;
    c
}

/// A file that parses starts a node, which runs and saves a file that
/// parses back.
fn check_conf(text: &str, seed: u64) -> Result<(), TestCaseError> {
    let Ok(conf) = nodes_conf::parse(text) else {
        return Ok(());
    };
    let Ok(mut c) = Cluster::from_conf(&conf, node_config(), T0) else {
        return Ok(());
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..3 {
        c.tick(T0 + i * 1500, &mut rng);
    }
    let saved = nodes_conf::render(&c.nodes_conf());
    let reread = nodes_conf::parse(&saved);
    prop_assert!(reread.is_ok(), "{:?}\n{}", reread, saved);
    Ok(())
}

proptest! {
    #![proptest_config(config(600))]

    /// Text of any kind.
    #[test]
    fn parse_arbitrary_text(text in prop_oneof![
        any::<String>(),
        "[0-9a-f :@,\\-\\[\\]<>?\n]{0,300}",
        "([0-9a-f]{40} [0-9.]{0,9}:[0-9]{1,6}@[0-9]{1,6} (myself,|master|slave|fail\\?|,)+ (-|[0-9a-f]{40}) [0-9]{1,3} [0-9]{1,3} [0-9]{1,20} (dis)?connected( [0-9]{1,5}(-[0-9]{1,5})?)*\n){1,4}(vars( [a-zA-Z]{1,14} [0-9]{1,20})*\n)?",
    ], seed in any::<u64>()) {
        check_conf(&text, seed)?;
    }
}

proptest! {
    #![proptest_config(config(400))]

    /// Valid files, damaged line by line and field by field.
    #[test]
    fn damaged_conf_files(
        conf in nodes_conf(),
        damages in prop::collection::vec(line_damage(), 0..5),
        seed in any::<u64>(),
    ) {
        let text = nodes_conf::render(&conf);
        prop_assert_eq!(nodes_conf::parse(&text), Ok(conf.clone()));
        let started = Cluster::from_conf(&conf, node_config(), T0);
        prop_assert!(started.is_ok(), "{:?}", started.err());
        let ids: Vec<String> = conf.nodes.iter().map(|n| n.id.to_string()).collect();
        let damaged = damage_conf(&text, &ids, &damages);
        check_conf(&damaged, seed)?;
    }
}

// ----- The state machine ----------------------------------------------------------

/// Node A is myself (or, with `replica`, C is: A's replica); B a master
/// with its replica D; E a master without slots, PFAIL.
fn cluster_text(replica: bool) -> String {
    let id = |c: char| c.to_string().repeat(40);
    let (a_flags, c_flags) = if replica {
        ("master", "myself,slave")
    } else {
        ("myself,master", "slave")
    };
    format!(
        "{a} 10.0.0.1:7000@17000 {a_flags} - 0 0 3 connected 0-8000\n\
         {b} 10.0.0.2:7000@17000 master - 0 0 2 connected 8001-16383\n\
         {c} 10.0.0.3:7000@17000 {c_flags} {a} 0 0 3 connected\n\
         {d} 10.0.0.4:7000@17000 slave {b} 0 0 2 connected\n\
         {e} 10.0.0.5:7000@17000 master,fail? - 0 0 1 connected\n\
         vars currentEpoch 3 lastVoteEpoch 0\n",
        a = id('a'),
        b = id('b'),
        c = id('c'),
        d = id('d'),
        e = id('e'),
    )
}

/// A started node with its outbound links up and two inbound links.
fn started(replica: bool, rng: &mut rand::rngs::StdRng) -> (Cluster, Vec<LinkId>) {
    let conf = nodes_conf::parse(&cluster_text(replica)).unwrap();
    let mut c = Cluster::from_conf(&conf, node_config(), T0).unwrap();
    let mut links = Vec::new();
    let actions = c.tick(T0, rng);
    for a in actions {
        if let Action::Connect { link, .. } = a {
            c.connected(T0, link, "10.0.0.1", rng);
            links.push(link);
        }
    }
    links.push(c.accept(T0, "10.0.0.9", "10.0.0.1"));
    links.push(c.accept(T0, "10.0.0.2", "10.0.0.1"));
    (c, links)
}

/// Who a message claims to come from: any ID, or one of the file's.
fn sender() -> impl Strategy<Value = Option<char>> {
    prop_oneof![
        1 => Just(None),
        4 => prop::sample::select(vec!['a', 'b', 'c', 'd', 'e']).prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
enum Event {
    /// A message on link `usize` (modulo the links), from `sender`.
    Msg(usize, Option<char>, Option<char>, Box<Msg>),
    /// Time passes by this many ms, then a tick.
    Tick(u16),
    /// A link breaks.
    Closed(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (any::<usize>(), sender(), sender(), msg())
            .prop_map(|(l, s, about, m)| Event::Msg(l, s, about, Box::new(m))),
        2 => any::<u16>().prop_map(Event::Tick),
        1 => any::<usize>().prop_map(Event::Closed),
    ]
}

/// Points the message's sender, and the node a body names, at the file's
/// nodes when asked.
fn aim(mut m: Msg, sender: Option<char>, about: Option<char>) -> Msg {
    let id = |c: char| NodeId([c as u8; 40]);
    if let Some(s) = sender {
        m.header.sender = id(s);
    }
    if let Some(a) = about {
        match &mut m.body {
            Body::Fail { about } => *about = id(a),
            Body::Update { node, .. } => *node = id(a),
            Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => {
                if let Some(e) = g.entries.first_mut() {
                    e.node = id(a);
                }
            }
            _ => {}
        }
        if m.header.slaveof != NodeId::NULL {
            m.header.slaveof = id(a);
        }
    }
    m
}

proptest! {
    #![proptest_config(config(50))]

    /// Messages of any content from known and unknown senders, ticks and
    /// broken links, on a master and on a replica: no panic, and the
    /// invariants hold after every call.
    #[test]
    fn state_machine_takes_any_message(
        replica in any::<bool>(),
        seed in any::<u64>(),
        events in prop::collection::vec(event(), 1..10),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut c, mut links) = started(replica, &mut rng);
        let mut now = T0;
        for e in events {
            let actions = match e {
                Event::Msg(l, s, about, m) => {
                    // As the driver gets it: what decodes.
                    let Ok(m) = wire::decode(&wire::encode(&aim(*m, s, about))) else {
                        continue;
                    };
                    now += 1;
                    let link = links[l % links.len()];
                    c.handle(now, link, m, &mut rng)
                }
                Event::Tick(dt) => {
                    now += u64::from(dt);
                    c.tick(now, &mut rng)
                }
                Event::Closed(l) => c.closed(now, links[l % links.len()]),
            };
            for a in actions {
                if let Action::Connect { link, .. } = a {
                    c.connected(now, link, "10.0.0.1", &mut rng);
                    links.push(link);
                }
            }
            let saved = nodes_conf::render(&c.nodes_conf());
            let reread = nodes_conf::parse(&saved);
            prop_assert!(reread.is_ok(), "{:?}\n{}", reread, saved);
        }
    }
}

proptest! {
    #![proptest_config(config(60))]

    /// A message other than MEET from a sender this node does not know, on
    /// a link not tied to a node, changes nothing.
    #[test]
    fn unknown_senders_change_nothing(
        replica in any::<bool>(),
        seed in any::<u64>(),
        msgs in prop::collection::vec(msg(), 1..8),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut c, _) = started(replica, &mut rng);
        for m in msgs {
            if matches!(m.body, Body::Meet(_)) || c.node_flags(&m.header.sender).is_some() {
                continue;
            }
            // A fresh inbound link: not tied to a node yet.
            let link = c.accept(T0, "10.0.0.9", "10.0.0.1");
            let before = (c.nodes_conf(), c.links(), c.nodes(), c.current_epoch());
            let actions = c.handle(T0 + 1, link, m, &mut rng);
            let after = (c.nodes_conf(), c.links(), c.nodes(), c.current_epoch());
            prop_assert_eq!(before, after);
            for a in &actions {
                // A PONG to a PING, a PUBLISH delivered: nothing else.
                let reply = matches!(a, Action::Send { .. } | Action::Deliver { .. });
                prop_assert!(reply, "{:?}", a);
            }
        }
    }
}

// ----- CLUSTER arguments ----------------------------------------------------------

const ARGS: &[&str] = &[
    "addslots",
    "addslotsrange",
    "bumpepoch",
    "count-failure-reports",
    "delslots",
    "delslotsrange",
    "failover",
    "flushslots",
    "forget",
    "keyslot",
    "links",
    "meet",
    "myid",
    "nodes",
    "replicas",
    "replicate",
    "reset",
    "set-config-epoch",
    "setslot",
    "shards",
    "slaves",
    "slots",
    "info",
    "importing",
    "migrating",
    "stable",
    "node",
    "force",
    "takeover",
    "hard",
    "soft",
    "0",
    "1",
    "-1",
    "16383",
    "16384",
    "65535",
    "65536",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "127.0.0.1",
    "::1",
    "",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "cccccccccccccccccccccccccccccccccccccccc",
    "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
];

proptest! {
    #![proptest_config(config(80))]

    /// CLUSTER with any arguments, after messages that may have set the
    /// epochs to their limits.
    #[test]
    fn cluster_command_any_arguments(
        replica in any::<bool>(),
        seed in any::<u64>(),
        epoch in edge_u64(),
        calls in prop::collection::vec(
            (prop::collection::vec(prop_oneof![
                4 => (0..ARGS.len()).prop_map(|i| ARGS[i].as_bytes().to_vec()),
                1 => bytes(8),
            ], 0..6), any::<u64>()),
            1..5,
        ),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut c, links) = started(replica, &mut rng);
        // A PING from B announcing `epoch` as its current and config epoch.
        let ping = Msg {
            header: Header {
                port: 7000,
                current_epoch: epoch,
                config_epoch: epoch,
                offset: 0,
                sender: NodeId([b'b'; 40]),
                myslots: SlotBitmap::new(),
                slaveof: NodeId::NULL,
                myip: String::new(),
                pport: 0,
                cport: 17000,
                flags: flags::MASTER,
                state: 0,
                mflags: [0; 3],
            },
            body: Body::Ping(Gossip::default()),
        };
        c.handle(T0 + 1, links[links.len() - 1], ping, &mut rng);
        for (args, keys) in calls {
            let mut argv: Vec<&[u8]> = vec![b"CLUSTER"];
            argv.extend(args.iter().map(Vec::as_slice));
            let facts = Facts {
                db_keys: keys % 2,
                slot_keys: keys % 3,
            };
            let _ = command::needs(&argv);
            let _ = command::execute(&mut c, &argv, &facts, T0 + 2, &mut rng);
        }
    }
}

// ----- Length fields at their limits ------------------------------------------

/// A frame of `body` with `(offset, value)` patched in as 32-bit or 16-bit
/// big-endian numbers.
fn patched(body: Body, u16s: &[(usize, u16)], u32s: &[(usize, u32)]) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let header = Header {
        port: 7000,
        current_epoch: 1,
        config_epoch: 1,
        offset: 0,
        sender: NodeId::random(&mut rng),
        myslots: SlotBitmap::new(),
        slaveof: NodeId::NULL,
        myip: String::new(),
        pport: 0,
        cport: 17000,
        flags: flags::MASTER,
        state: 0,
        mflags: [0; 3],
    };
    let mut buf = wire::encode(&Msg { header, body });
    for &(at, v) in u16s {
        buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    for &(at, v) in u32s {
        buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    buf
}

/// Counts and lengths claiming far more than the frame holds are errors,
/// found before anything is allocated for them.
#[test]
fn huge_counts_and_lengths_are_errors() {
    let h = HEADER_BYTES;
    let ping = || Body::Ping(Gossip::default());
    let hostname = || {
        Body::Pong(Gossip {
            entries: Vec::new(),
            extensions: vec![PingExt::Hostname("h".into())],
        })
    };
    let publish = || Body::Publish {
        channel: b"c".to_vec(),
        message: b"m".to_vec(),
    };
    let module = || Body::Module {
        module_id: *b"whatever",
        kind: 0,
        payload: vec![1, 2, 3],
    };
    let cases = [
        // 65535 gossip entries in an empty PING.
        patched(ping(), &[(14, u16::MAX)], &[]),
        // 65535 extensions, EXT_DATA set.
        patched(hostname(), &[(2214, u16::MAX)], &[]),
        // An extension 2^31 long.
        patched(hostname(), &[], &[(h, 1 << 31)]),
        patched(hostname(), &[], &[(h, u32::MAX - 7)]),
        // PUBLISH channel and message lengths of 2^31 and 2^32-1.
        patched(publish(), &[], &[(h, 1 << 31)]),
        patched(publish(), &[], &[(h + 4, u32::MAX)]),
        patched(publish(), &[], &[(h, u32::MAX), (h + 4, u32::MAX)]),
        // A MODULE payload of 2^32-1 bytes.
        patched(module(), &[], &[(h + 8, u32::MAX)]),
    ];
    for buf in cases {
        assert!(decode_bounded(&buf).is_err());
    }
    // A totlen of 2^31 with few bytes present, and one above the limit.
    let mut buf = patched(ping(), &[], &[(4, 1 << 31)]);
    assert!(decode_bounded(&buf).is_err());
    let first8: [u8; 8] = buf[..8].try_into().unwrap();
    assert!(wire::frame_len(&first8).is_err());
    buf[4..8].copy_from_slice(&(wire::MSG_BYTES_MAX as u32 + 1).to_be_bytes());
    let first8: [u8; 8] = buf[..8].try_into().unwrap();
    assert!(wire::frame_len(&first8).is_err());
}
