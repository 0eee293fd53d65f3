//! The merger against chunks made by the engine's own write log.

use super::*;
use engine::writelog::WriteLog;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// What a replica applies, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Cmd(u16, Vec<Vec<u8>>),
    Multi,
    Exec,
}

/// Parses a merged stream back into items; panics on a SELECT of the
/// database already selected or a command before any SELECT.
fn parse_back(stream: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut db: Option<u16> = None;
    let (mut spans, mut scratch) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let Ok(resp::Parsed::Command {
            consumed,
            inline: false,
        }) = resp::parse(rest, &resp::Limits::default(), &mut spans, &mut scratch)
        else {
            panic!(
                "not a command at {pos}: {:?}",
                String::from_utf8_lossy(rest)
            );
        };
        let argv: Vec<Vec<u8>> = spans
            .iter()
            .map(|&(s, e)| rest[s as usize..e as usize].to_vec())
            .collect();
        pos += consumed;
        match argv[0].as_slice() {
            b"SELECT" => {
                let n: u16 = std::str::from_utf8(&argv[1]).unwrap().parse().unwrap();
                assert_ne!(db, Some(n), "redundant SELECT {n} at {pos}");
                db = Some(n);
            }
            b"MULTI" => items.push(Item::Multi),
            b"EXEC" => items.push(Item::Exec),
            _ => items.push(Item::Cmd(db.expect("a command before any SELECT"), argv)),
        }
    }
    items
}

/// A cross-core transaction whose parts are not all written yet.
struct Open {
    id: u64,
    parts: u32,
    cores_left: Vec<usize>,
    items: Vec<Item>,
}

/// One random write on `log`, and the item it means.
fn op(rng: &mut StdRng, n: &mut u64, log: &mut WriteLog, items: &mut Vec<Item>) {
    *n += 1;
    let db = rng.gen_range(0..3u16);
    let key = format!("k{}", rng.gen_range(0..20));
    let argv: Vec<Vec<u8>> = if rng.gen_bool(0.7) {
        vec![
            b"SET".to_vec(),
            key.into_bytes(),
            format!("v{n}").into_bytes(),
        ]
    } else {
        vec![b"DEL".to_vec(), key.into_bytes()]
    };
    if rng.gen_bool(0.1) {
        log.set_prelude(format!("#D:1={n}").as_bytes());
    }
    log.record(db, argv.iter().map(|a| a.as_slice()));
    items.push(Item::Cmd(db, argv));
}

/// A random history on `cores` cores: the chunks (in ticket order) and the
/// serial order a replica must apply.
fn history(rng: &mut StdRng, cores: usize, turns: usize) -> (Vec<Chunk>, Vec<Item>) {
    let mut logs: Vec<WriteLog> = (0..cores).map(|_| WriteLog::new(0)).collect();
    let mut chunks: Vec<Chunk> = Vec::new();
    // Per ticket, what it adds to the serial order (a cross-core
    // transaction adds itself at its last part).
    let mut serial: Vec<Vec<Item>> = Vec::new();
    let mut open: Option<Open> = None;
    let mut next_txn = 0u64;
    let mut n = 0u64;
    let mut turn = 0;
    while turn < turns || open.is_some() {
        turn += 1;
        let ticket = chunks.len() as u64;
        let roll = rng.gen_range(0..10);
        let mut items = Vec::new();
        // The next part of the open transaction (always, after the last
        // turn).
        if let Some(o) = open.as_mut().filter(|_| roll <= 2 || turn > turns) {
            let core = o.cores_left.pop().unwrap();
            let log = &mut logs[core];
            log.reset_db();
            let m = log.begin_multi(Some(format!("#X:{}", o.id).as_bytes()));
            for _ in 0..rng.gen_range(1..4) {
                op(rng, &mut n, log, &mut o.items);
            }
            log.end_multi(m, false);
            let mut bytes = Vec::new();
            log.take(&mut bytes);
            chunks.push(Chunk {
                ticket,
                txn: Some(TxnPart {
                    id: o.id,
                    parts: o.parts,
                    form: false,
                }),
                bytes,
            });
            if o.cores_left.is_empty() {
                let o = open.take().unwrap();
                if o.items.len() > 1 {
                    items.push(Item::Multi);
                    items.extend(o.items);
                    items.push(Item::Exec);
                } else {
                    items.extend(o.items);
                }
            }
            serial.push(items);
            continue;
        }
        if turn > turns {
            continue;
        }
        let core = rng.gen_range(0..cores);
        let log = &mut logs[core];
        log.reset_db();
        if rng.gen_bool(0.1) {
            log.stamp(Some(1_700_000_000 + ticket));
        }
        let mut txn = None;
        if roll == 0 && open.is_none() && cores > 1 {
            // A transaction across 2..=cores cores starts with this part.
            let parts = rng.gen_range(2..=cores) as u32;
            let mut others: Vec<usize> = (0..cores).filter(|&c| c != core).collect();
            others.shuffle(rng);
            others.truncate(parts as usize - 1);
            let id = next_txn;
            next_txn += 1;
            let mut o = Open {
                id,
                parts,
                cores_left: others,
                items: Vec::new(),
            };
            let m = log.begin_multi(Some(format!("#X:{id}").as_bytes()));
            for _ in 0..rng.gen_range(1..4) {
                op(rng, &mut n, log, &mut o.items);
            }
            log.end_multi(m, false);
            txn = Some(TxnPart {
                id,
                parts,
                form: false,
            });
            open = Some(o);
        } else if roll == 3 {
            // A transaction on one core, wrapped by the engine when it
            // holds more than one command (as Redis 7.0 propagates).
            let m = log.begin_multi(None);
            let mut txn_items = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                op(rng, &mut n, log, &mut txn_items);
            }
            log.end_multi(m, false);
            if txn_items.len() > 1 {
                items.push(Item::Multi);
                items.extend(txn_items);
                items.push(Item::Exec);
            } else {
                items.extend(txn_items);
            }
        } else if roll != 4 {
            // roll 4: a turn with nothing to say (an empty chunk).
            for _ in 0..rng.gen_range(1..5) {
                op(rng, &mut n, log, &mut items);
            }
        }
        let mut bytes = Vec::new();
        log.take(&mut bytes);
        chunks.push(Chunk { ticket, txn, bytes });
        serial.push(items);
    }
    (chunks, serial.into_iter().flatten().collect())
}

fn merge(chunks: &[Chunk], rng: &mut StdRng) -> Vec<u8> {
    let mut shuffled = chunks.to_vec();
    shuffled.shuffle(rng);
    let mut m = Merger::new();
    let mut out = Vec::new();
    for c in shuffled {
        m.push(c);
        if rng.gen_bool(0.3) {
            m.drain(&mut out).unwrap();
        }
    }
    m.drain(&mut out).unwrap();
    assert_eq!(m.held(), 0);
    assert_eq!(m.next_ticket(), chunks.len() as u64);
    out
}

#[test]
fn any_arrival_order_gives_the_serial_order() {
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (chunks, serial) = history(&mut rng, 1 + (seed % 4) as usize, 120);
        if seed % 4 != 0 {
            assert!(chunks.iter().any(|c| c.txn.is_some()), "seed {seed}");
        }
        let first = merge(&chunks, &mut rng);
        assert_eq!(parse_back(&first), serial, "seed {seed}");
        for _ in 0..5 {
            assert_eq!(merge(&chunks, &mut rng), first, "seed {seed}");
        }
    }
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    crate::encode(&args)
}

fn chunk(ticket: u64, cmds: &[&[&str]]) -> Chunk {
    Chunk {
        ticket,
        txn: None,
        bytes: cmds.iter().flat_map(|c| cmd(c)).collect(),
    }
}

#[test]
fn selects_only_when_the_database_changes() {
    let mut m = Merger::new();
    m.push(chunk(
        1,
        &[
            &["SELECT", "0"],
            &["SET", "b", "2"],
            &["SELECT", "1"],
            &["DEL", "c"],
        ],
    ));
    m.push(chunk(0, &[&["SELECT", "0"], &["SET", "a", "1"]]));
    m.push(chunk(2, &[&["SELECT", "1"], &["DEL", "d"]]));
    m.push(Chunk {
        ticket: 3,
        txn: None,
        bytes: b"#TS:1700000000\r\n"
            .iter()
            .copied()
            .chain(cmd(&["SELECT", "1"]))
            .chain(cmd(&["INCR", "n"]))
            .collect(),
    });
    let mut out = Vec::new();
    m.drain(&mut out).unwrap();
    let want: Vec<u8> = [
        cmd(&["SELECT", "0"]),
        cmd(&["SET", "a", "1"]),
        cmd(&["SET", "b", "2"]),
        cmd(&["SELECT", "1"]),
        cmd(&["DEL", "c"]),
        cmd(&["DEL", "d"]),
        cmd(&["INCR", "n"]),
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
    // After reset_db (a full resync starts) the next SELECT stays.
    m.reset_db();
    m.push(chunk(4, &[&["SELECT", "1"], &["DEL", "e"]]));
    let mut out = Vec::new();
    m.drain(&mut out).unwrap();
    assert_eq!(out, [cmd(&["SELECT", "1"]), cmd(&["DEL", "e"])].concat());
}

#[test]
fn cross_core_transaction_wrapped_once_at_its_last_part() {
    let mut m = Merger::new();
    let part = |ticket, db: &str, key: &str| Chunk {
        ticket,
        txn: Some(TxnPart {
            id: 7,
            parts: 2,
            form: false,
        }),
        bytes: [
            b"#X:7\r\n".to_vec(),
            cmd(&["MULTI"]),
            cmd(&["SELECT", db]),
            cmd(&["SET", key, "x"]),
            cmd(&["EXEC"]),
        ]
        .concat(),
    };
    m.push(part(2, "0", "b"));
    m.push(chunk(1, &[&["SELECT", "0"], &["SET", "other", "1"]]));
    let mut out = Vec::new();
    m.drain(&mut out).unwrap();
    assert!(out.is_empty(), "ticket 0 missing");
    m.push(part(0, "0", "a"));
    m.drain(&mut out).unwrap();
    let want: Vec<u8> = [
        cmd(&["SELECT", "0"]),
        cmd(&["SET", "other", "1"]),
        cmd(&["MULTI"]),
        cmd(&["SET", "a", "x"]),
        cmd(&["SET", "b", "x"]),
        cmd(&["EXEC"]),
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(m.held(), 0);
}

#[test]
fn a_missing_ticket_is_given_up_past_the_limit() {
    let mut m = Merger::starting_at(10, 200);
    let big = |t| chunk(t, &[&["SELECT", "0"], &["SET", "k", &"x".repeat(30)]]);
    m.push(big(11));
    m.push(big(12));
    assert_eq!(m.held(), 2 * big(11).bytes.len());
    let mut out = Vec::new();
    assert_eq!(m.drain(&mut out), Ok(()));
    m.push(big(13));
    assert_eq!(m.held(), 0, "over 100 bytes held: given up");
    assert_eq!(m.next_ticket(), 14);
    assert_eq!(m.drain(&mut out), Err(Gap { from: 10, to: 14 }));
    assert!(out.is_empty());
    // The late ticket is dropped; the stream goes on, selecting again.
    m.push(big(10));
    m.push(big(14));
    assert_eq!(m.drain(&mut out), Ok(()));
    assert_eq!(out, big(14).bytes);
    // Duplicates are dropped.
    m.push(big(14));
    m.push(big(16));
    m.push(big(16));
    assert_eq!(m.held(), big(16).bytes.len());
}

/// A command or transaction across cores: the coordinator's form goes
/// after the parts, alone when it is one command; the `SELECT` of a
/// transaction goes before its `MULTI`.
#[test]
fn forms_of_commands_across_cores() {
    let part = |ticket, id, parts, form, cmds: &[&[&str]]| Chunk {
        ticket,
        txn: Some(TxnPart { id, parts, form }),
        bytes: cmds.iter().map(|c| cmd(c)).collect::<Vec<_>>().concat(),
    };
    let run = |chunks: Vec<Chunk>| {
        let mut m = Merger::new();
        for c in chunks {
            m.push(c);
        }
        let mut out = Vec::new();
        m.drain(&mut out).unwrap();
        assert_eq!(m.held(), 0);
        String::from_utf8_lossy(&out).into_owned()
    };
    let show = |cmds: &[&[&str]]| {
        String::from_utf8_lossy(&cmds.iter().map(|c| cmd(c)).collect::<Vec<_>>().concat())
            .into_owned()
    };
    // MSET: the parts wrote nothing to the stream; the form alone.
    let mset = &["MSET", "a", "1", "b", "2"][..];
    let out = run(vec![
        part(0, 1, 3, false, &[&["SELECT", "2"]]),
        part(1, 1, 3, false, &[]),
        part(2, 1, 3, true, &[&["SELECT", "2"], mset]),
    ]);
    assert_eq!(out, show(&[&["SELECT", "2"], mset]));
    // A key expired, then the command: wrapped, SELECT first; a part's
    // eviction goes before.
    let store = &["SUNIONSTORE", "d", "a", "b"][..];
    let out = run(vec![
        part(
            0,
            2,
            2,
            true,
            &[&["SELECT", "0"], &["DEL", "a"], &["SELECT", "0"], store],
        ),
        part(1, 2, 2, false, &[&["SELECT", "0"], &["DEL", "evicted"]]),
    ]);
    assert_eq!(
        out,
        show(&[
            &["SELECT", "0"],
            &["MULTI"],
            &["DEL", "evicted"],
            &["DEL", "a"],
            store,
            &["EXEC"]
        ])
    );
    // Nothing anywhere: nothing.
    assert_eq!(
        run(vec![
            part(0, 5, 2, false, &[&["SELECT", "0"]]),
            part(1, 5, 2, true, &[]),
        ]),
        ""
    );
}
