use super::*;
use crate::value::{EncodingLimits, StrData, Value};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// DUMP payloads written by redis-server 7.0.15 (`DUMP key` after the
/// command shown), one per encoding it writes for small values.
const REDIS_7_0: &[(&str, &str)] = &[
    ("SET s1 hello", "000568656c6c6f0a006372df766534200a"),
    ("SET s2 12345", "00c139300a009d94ea2793fc08b9"),
    (
        "SET s3 a×100",
        "00c3094064016161e057000161610a00e8a3b507b06df271",
    ),
    (
        "HSET h1 f1 v1 f2 2",
        "10151500000004008266310382763103826632030201ff0a005c5ea813feec1ff5",
    ),
    (
        "ZADD z1 1 a 2.5 b -3 c",
        "111a1a0000000600816302dffd02816102010181620283322e3504ff0a00a68a1ab1a9f2dcc2",
    ),
    (
        "SADD i1 1 2 3 -70000",
        "0b18040000000400000090eefeff0100000002000000030000000a00a8b63c622cbf2c9c",
    ),
    ("SADD p1 x y", "0202017801790a00ac3a8d681184aa31"),
    (
        "RPUSH l1 a b 1 300 -5",
        "120102151500000005008161028162020101c12c02dffb02ff0a004fa1e8c2c4f29832",
    ),
];

fn load(cmd: &str) -> Value {
    let payload = REDIS_7_0.iter().find(|(c, _)| *c == cmd).unwrap().1;
    undump(&hex(payload), &EncodingLimits::default())
        .expect("version and checksum")
        .expect("decodes")
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn redis_payloads_decode_to_their_values() {
    let lim = EncodingLimits::default();
    assert_eq!(
        load("SET s1 hello"),
        Value::Str(StrData::copy_from_slice(b"hello"))
    );
    assert_eq!(
        load("SET s2 12345"),
        Value::Str(StrData::copy_from_slice(b"12345"))
    );
    assert_eq!(
        load("SET s3 a×100"),
        Value::Str(StrData::copy_from_slice(&[b'a'; 100]))
    );
    let Value::Hash(h) = load("HSET h1 f1 v1 f2 2") else {
        panic!()
    };
    assert_eq!(h.get(b"f1"), Some(&b"v1"[..]));
    assert_eq!(h.get(b"f2"), Some(&b"2"[..]));
    assert_eq!(h.len(), 2);
    let Value::ZSet(z) = load("ZADD z1 1 a 2.5 b -3 c") else {
        panic!()
    };
    let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
    assert_eq!(
        got,
        vec![
            (b"c".to_vec(), -3.0),
            (b"a".to_vec(), 1.0),
            (b"b".to_vec(), 2.5)
        ]
    );
    let Value::Set(s) = load("SADD i1 1 2 3 -70000") else {
        panic!()
    };
    assert_eq!(s.encoding_name(), "intset");
    let mut m: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
    m.sort();
    assert_eq!(m, strs(&["-70000", "1", "2", "3"]));
    let Value::Set(s) = load("SADD p1 x y") else {
        panic!()
    };
    assert!(s.contains(b"x") && s.contains(b"y") && s.len() == 2);
    let Value::List(l) = load("RPUSH l1 a b 1 300 -5") else {
        panic!()
    };
    let items: Vec<Vec<u8>> = l.iter().map(|i| i.to_vec()).collect();
    assert_eq!(items, strs(&["a", "b", "1", "300", "-5"]));
    let _ = lim;
}

#[test]
fn strings_dump_byte_for_byte_as_redis() {
    for cmd in ["SET s1 hello", "SET s2 12345"] {
        let v = load(cmd);
        let payload = REDIS_7_0.iter().find(|(c, _)| *c == cmd).unwrap().1;
        assert_eq!(dump(&v, true), hex(payload), "{cmd}");
    }
}

#[test]
fn every_value_round_trips() {
    let lim = EncodingLimits::default();
    let mut values = vec![load("HSET h1 f1 v1 f2 2"), load("ZADD z1 1 a 2.5 b -3 c")];
    for name in [
        "SET s1 hello",
        "SET s3 a×100",
        "SADD i1 1 2 3 -70000",
        "SADD p1 x y",
        "RPUSH l1 a b 1 300 -5",
    ] {
        values.push(load(name));
    }
    // Large forms too, and strings of every integer width and LZF.
    let mut h = crate::hashval::HashVal::default();
    let mut z = crate::zset::ZSet::new();
    let mut set_members = Vec::new();
    for i in 0..1000 {
        h.set(
            format!("field:{i}").as_bytes(),
            format!("{i}").as_bytes(),
            &lim,
        );
        z.insert(format!("m{i}").as_bytes(), i as f64 / 3.0, &lim);
        set_members.push(format!("member:{i}").into_bytes());
    }
    values.push(Value::Hash(Box::new(h)));
    values.push(Value::ZSet(Box::new(z)));
    values.push(Value::Set(Box::new(crate::setval::SetVal::from_members(
        set_members.iter().map(|m| &m[..]),
        &lim,
    ))));
    values.push(Value::List(
        (0..5000).map(|i| format!("item {i}")).collect(),
    ));
    for s in [
        "-129",
        "127",
        "-32769",
        "2147483647",
        "2147483648",
        "007",
        "+5",
        "",
        "x".repeat(5000).as_str(),
    ] {
        values.push(Value::Str(StrData::copy_from_slice(s.as_bytes())));
    }
    for v in values {
        for compress in [false, true] {
            let p = dump(&v, compress);
            assert_eq!(undump(&p, &lim).unwrap().unwrap(), v, "{v:?}");
        }
    }
}

#[test]
fn damaged_payloads_are_refused_never_a_panic() {
    let lim = EncodingLimits::default();
    let good = hex(REDIS_7_0[3].1);
    // Any flipped byte: the checksum no longer matches.
    for i in 0..good.len() {
        let mut p = good.clone();
        p[i] ^= 0x40;
        assert!(undump(&p, &lim).is_none(), "byte {i}");
    }
    // A newer version is refused.
    let mut p = good.clone();
    let n = p.len();
    p[n - 10] = 11;
    assert!(undump(&p, &lim).is_none());
    // Bodies that are garbage but carry a valid footer decode to an
    // error, never a panic: truncations and random bytes.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for cut in 0..good.len() - 10 {
        let mut body = good[..cut].to_vec();
        for _ in 0..3 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            body.push(rng as u8);
        }
        body.extend_from_slice(&VERSION.to_le_bytes());
        let mut crc = crc64();
        crc.update(&body);
        body.extend_from_slice(&crc.finalize().to_le_bytes());
        let _ = undump(&body, &lim);
    }
}

#[test]
fn a_whole_file_round_trips() {
    let lim = EncodingLimits::default();
    let mut out = Vec::new();
    write::header(&mut out);
    write::aux(&mut out, "redis-ver", b"7.0.15");
    write::select_db(&mut out, 0, 2, 1);
    write::entry(
        &mut out,
        b"a",
        &load("SET s1 hello"),
        Some(1_700_000_000_000),
        true,
    );
    write::entry(&mut out, b"b", &load("HSET h1 f1 v1 f2 2"), None, true);
    write::select_db(&mut out, 3, 1, 0);
    write::entry(&mut out, b"c", &load("RPUSH l1 a b 1 300 -5"), None, true);
    let mut crc = crc64();
    crc.update(&out);
    write::footer(&mut out, crc, true);
    let mut items = Vec::new();
    read::file(&out, &lim, |i| items.push(format!("{i:?}"))).unwrap();
    assert_eq!(items.len(), 6, "{items:?}");
    assert!(items[2].contains("expire_ms: Some(1700000000000)"));
    // A damaged byte anywhere is caught (by the checksum at worst).
    for i in 9..out.len() {
        let mut bad = out.clone();
        bad[i] ^= 1;
        assert!(read::file(&bad, &lim, |_| {}).is_err(), "byte {i}");
    }
}

#[test]
fn head_aux_reads_the_fields_before_the_first_record() {
    let mut out = Vec::new();
    write::header(&mut out);
    write::aux(&mut out, "repl-stream-db", b"3");
    write::aux(&mut out, "repl-id", b"x");
    write::select_db(&mut out, 0, 1, 0);
    write::aux(&mut out, "late", b"y");
    let aux = read::head_aux(&out);
    assert_eq!(
        aux,
        vec![
            (b"repl-stream-db".to_vec(), b"3".to_vec()),
            (b"repl-id".to_vec(), b"x".to_vec())
        ]
    );
    // A cut anywhere gives the whole fields before it, never a panic.
    for n in 0..out.len() {
        assert!(read::head_aux(&out[..n]).len() <= 2);
    }
    assert!(read::head_aux(b"garbage!!\xfa").is_empty());
}

/// A payload of `body` with the footer `undump` checks (any version up to
/// ours: Redis 6 wrote version 9).
fn with_footer(mut body: Vec<u8>, version: u16) -> Vec<u8> {
    body.extend_from_slice(&version.to_le_bytes());
    let mut crc = crc64();
    crc.update(&body);
    body.extend_from_slice(&crc.finalize().to_le_bytes());
    body
}

/// Redis 6's ziplist forms (RDB version 9), built by hand from the
/// ziplist layout: a hash (type 13), a sorted set (type 12) and a
/// quicklist of ziplists (type 14), with string, immediate, int16 and
/// int8 entries.
/// A ziplist of `entries` (each with its prevlen), its tail offset the
/// last entry's.
fn ziplist_blob(entries: &[&[u8]], count: u16) -> Vec<u8> {
    let body = entries.concat();
    let last = body.len() - entries.last().map_or(0, |e| e.len());
    let mut b = ((10 + body.len() + 1) as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&(10 + last as u32).to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&body);
    b.push(0xFF);
    b
}

#[test]
fn redis_6_ziplists_decode() {
    let lim = EncodingLimits::default();
    // HSET h f1 v1 f2 2 n 300: "f1" "v1" "f2" 2 (immediate) "n" 300 (int16).
    let zl = [
        &[0x00, 0x02, b'f', b'1'][..],
        &[0x04, 0x02, b'v', b'1'],
        &[0x04, 0x02, b'f', b'2'],
        &[0x04, 0xF3],
        &[0x02, 0x01, b'n'],
        &[0x03, 0xC0, 0x2C, 0x01],
    ];
    let blob = ziplist_blob;
    let hash = blob(&zl, 6);
    let mut body = vec![TYPE_HASH_ZIPLIST];
    write::string(&mut body, &hash, false);
    let Value::Hash(h) = undump(&with_footer(body, 9), &lim).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(
        (h.get(b"f1"), h.get(b"f2"), h.get(b"n")),
        (Some(&b"v1"[..]), Some(&b"2"[..]), Some(&b"300"[..]))
    );
    // ZADD z -5 a 2.5 b: member, score as text or integer (int8 -5).
    let zz = [
        &[0x00, 0x01, b'a'][..],
        &[0x03, 0xFE, 0xFB],
        &[0x03, 0x01, b'b'],
        &[0x03, 0x03, b'2', b'.', b'5'],
    ];
    let mut body = vec![TYPE_ZSET_ZIPLIST];
    write::string(&mut body, &blob(&zz, 4), false);
    let Value::ZSet(z) = undump(&with_footer(body, 9), &lim).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((z.score(b"a"), z.score(b"b")), (Some(-5.0), Some(2.5)));
    // RPUSH l x 7 as a quicklist of two ziplist nodes.
    let mut body = vec![TYPE_LIST_QUICKLIST];
    write::len(&mut body, 2);
    write::string(&mut body, &blob(&[&[0x00, 0x01, b'x']], 1), false);
    write::string(&mut body, &blob(&[&[0x00, 0xF8]], 1), false);
    let Value::List(l) = undump(&with_footer(body, 9), &lim).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(
        l.iter().map(|i| i.to_vec()).collect::<Vec<_>>(),
        strs(&["x", "7"])
    );
    // A count that does not match the entries is bad data, not a panic.
    let mut body = vec![TYPE_HASH_ZIPLIST];
    write::string(&mut body, &blob(&zl, 5), false);
    assert!(undump(&with_footer(body, 9), &lim).unwrap().is_err());
}

/// Blobs Redis 7.0's integrity checks refuse, refused here too; a
/// payload that claims more than its bytes can hold is refused before
/// anything is reserved; what Redis accepts is accepted.
#[test]
fn blobs_are_checked_as_redis_checks_them() {
    let lim = EncodingLimits::default();
    let undump_body = |body: Vec<u8>, version| undump(&with_footer(body, version), &lim).unwrap();
    let listpack = |entries: &[u8], count: u16| {
        let mut b = ((6 + entries.len() + 1) as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(entries);
        b.push(0xFF);
        b
    };
    // HSET h a b as a listpack: right back-lengths load, wrong ones not.
    for (entries, ok) in [
        (&[0x81, b'a', 0x02, 0x81, b'b', 0x02][..], true),
        (&[0x81, b'a', 0x09, 0x81, b'b', 0x09][..], false),
        (&[0x81, b'a', 0x82, 0x81, b'b', 0x02][..], false),
    ] {
        let mut body = vec![TYPE_HASH_LISTPACK];
        write::string(&mut body, &listpack(entries, 2), false);
        assert_eq!(undump_body(body, 10).is_ok(), ok, "{entries:?}");
    }
    // Ziplists: a prevlen that is not the entry before's size, a tail
    // offset that is not the last entry's.
    let entries: [&[u8]; 2] = [&[0x00, 0x01, b'x'], &[0x03, 0x01, b'y']];
    let good = ziplist_blob(&entries, 2);
    let mut bad_prev = good.clone();
    bad_prev[13] = 0x77;
    let mut bad_tail = good.clone();
    bad_tail[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    for (zl, ok) in [(good, true), (bad_prev, false), (bad_tail, false)] {
        let mut body = vec![TYPE_LIST_ZIPLIST];
        write::string(&mut body, &zl, false);
        assert_eq!(undump_body(body, 9).is_ok(), ok, "{zl:?}");
    }
    // Zipmaps: bytes after the end marker, a count that is not the pairs'.
    for (zm, ok) in [
        (&[0x01, 0x01, b'f', 0x01, 0x00, b'v', 0xFF][..], true),
        (&[0xFE, 0x01, b'f', 0x01, 0x00, b'v', 0xFF][..], true),
        (&[0x01, 0x01, b'f', 0x01, 0x00, b'v', 0xFF, 0xAA][..], false),
        (&[0x07, 0x01, b'f', 0x01, 0x00, b'v', 0xFF][..], false),
        (&[0x00, 0xFF][..], false),
    ] {
        let mut body = vec![TYPE_HASH_ZIPMAP];
        write::string(&mut body, zm, false);
        assert_eq!(undump_body(body, 9).is_ok(), ok, "{zm:?}");
    }
    // An empty intset fails the load (not an empty key skipped).
    let mut body = vec![TYPE_SET_INTSET];
    write::string(&mut body, &[2, 0, 0, 0, 0, 0, 0, 0], false);
    assert!(!undump_body(body, 10).unwrap_err().empty_key);
    // An empty plain quicklist node.
    let body = vec![TYPE_LIST_QUICKLIST_2, 0x01, 0x01, 0x00];
    assert!(undump_body(body, 10).is_err());
    // LZF claiming 4 GiB from 2 bytes: refused on its lengths.
    let body = hex("00c302810000000100000000000061");
    let e = undump_body(body, 10).unwrap_err();
    assert!(e.msg.contains("LZF length"), "{e:?}");
    // A list of a million small integers in one listpack node decodes
    // (element by element into the list, never collected first).
    let mut entries = Vec::new();
    for i in 0..1_000_000u32 {
        entries.extend_from_slice(&[(i % 100) as u8, 0x01]);
    }
    let mut body = vec![TYPE_LIST_QUICKLIST_2, 0x01, 0x02];
    write::string(&mut body, &listpack(&entries, 0xFFFF), true);
    let Ok(Value::List(l)) = undump_body(body, 10) else {
        panic!()
    };
    assert_eq!(l.len(), 1_000_000);
    assert_eq!(
        l.iter().nth(123_456).map(|e| e.to_vec()),
        Some(b"56".to_vec())
    );
    // A sorted set claiming more pairs than it has bytes: an error.
    let mut body = vec![TYPE_ZSET_2];
    write::len(&mut body, 200_000);
    body.extend(std::iter::repeat_n(0u8, 200_000));
    assert!(undump_body(body, 10).is_err());
    // Bytes between the value and the footer: RESTORE takes the value.
    let mut body = vec![TYPE_STRING];
    write::string(&mut body, b"hello", false);
    body.push(0);
    let Ok(Value::Str(v)) = undump_body(body, 10) else {
        panic!()
    };
    assert_eq!(&v.to_bytes()[..], b"hello");
}

#[test]
fn crc64_is_redis_s_in_one_call_or_in_pieces() {
    // The check value of CRC-64/Jones as Redis uses it ("123456789"), and
    // the same sum whether the bytes come at once or in odd pieces (a
    // file's checksum is updated chunk by chunk).
    let mut c = crc64();
    c.update(b"123456789");
    assert_eq!(c.finalize(), 0xe9c6d914c4b8d9ca);
    let li: &[u8] = b"This is a test of the emergency broadcast system.";
    let data: Vec<u8> = li.iter().copied().cycle().take(100_003).collect();
    let mut whole = crc64();
    whole.update(&data);
    let mut pieces = crc64();
    for chunk in data.chunks(777) {
        pieces.update(chunk);
    }
    assert_eq!(whole.finalize(), pieces.finalize());
}
