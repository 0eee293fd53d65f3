//! The consistent cut across cores after a crash, and the replay order.
//!
//! Each writer core has one log in a logical byte space: it starts at
//! `start` (its base's offset) and its records run to `end` (the end of
//! the last whole record of its last incr file). A slotd `#D:` annotation
//! at logical position `p` says that the records after it (up to the next
//! one) may be applied only once core `d`'s log is applied up to offset
//! `off`, for each `(d, off)` it lists. A crash may lose the tail of any
//! core's log, so a record whose dependency was lost must go too:
//! [`plan`] moves each core's end back to the first `#D` with an unmet
//! dependency (out of an unfinished transaction too) until nothing moves,
//! then orders the kept records so that every dependency is applied
//! first. A transaction that spans cores is written as one part per core
//! (an `#X:` annotation naming it and its cores, then a MULTI ... EXEC
//! block): a part is kept only if every other core's part is kept whole,
//! so the transaction comes back on all its cores or on none.

use super::scan::{Dep, Part};

/// One writer core's log, in logical offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreLog {
    /// The writer core.
    pub core: usize,
    /// Where the log starts (what its base image covers).
    pub start: u64,
    /// The end of its last whole record.
    pub end: u64,
    /// `#D:` annotations in order: logical position and dependencies.
    pub deps: Vec<(u64, Vec<Dep>)>,
    /// MULTI ... EXEC blocks, `[start, end)` in logical offsets.
    pub txns: Vec<(u64, u64)>,
    /// `#X:` parts of transactions across cores, at their positions.
    pub parts: Vec<(u64, Part)>,
    /// Transactions whose part on this core is in its base, not its log
    /// (the manifest's `based`): a rewrite's switch of files fell between
    /// their parts on two cores.
    pub based: Vec<String>,
}

/// Replay core log `log` (an index into the logs given) from `from` to
/// `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub log: usize,
    pub from: u64,
    pub to: u64,
}

/// The cut and the replay order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per log: where its kept records end.
    pub ends: Vec<u64>,
    /// Per log: bytes of whole records removed because they depend on
    /// writes lost on other cores.
    pub cut: Vec<u64>,
    /// The replay order; each log's steps are contiguous and cover
    /// `[start, ends[i])`.
    pub steps: Vec<Step>,
}

/// Whether dependency `(d, off)` is met when each log `i` has reached
/// `at[i]`.
fn met(logs: &[CoreLog], at: &[u64], (d, off): Dep) -> bool {
    match logs.iter().position(|l| l.core == d) {
        Some(i) => off <= at[i] || off <= logs[i].start,
        None => off == 0,
    }
}

/// Per transaction id, where a log's part of it ends (the EXEC of the
/// first block after its `#X:`; `u64::MAX` when none follows), computed
/// once per log: looking parts up by scanning made the cut quadratic in
/// the number of transactions (a million MSETs across cores hung the
/// start).
fn part_ends(log: &CoreLog) -> std::collections::HashMap<&str, u64> {
    let mut ends = std::collections::HashMap::with_capacity(log.parts.len());
    for (p, part) in &log.parts {
        let i = log.txns.partition_point(|&(s, _)| s < *p);
        let e = log.txns.get(i).map_or(u64::MAX, |&(_, e)| e);
        let min = ends.entry(part.id.as_str()).or_insert(e);
        *min = (*min).min(e);
    }
    ends
}

/// Whether a log's part of `id` (`ends` from [`part_ends`]), if it has
/// one, ends (its EXEC) before `end`.
fn part_kept(ends: &std::collections::HashMap<&str, u64>, id: &str, end: u64) -> bool {
    ends.get(id).is_some_and(|&e| e <= end)
}

/// A cut at `p` moved out of the transaction it falls in, if any.
fn out_of_txn(log: &CoreLog, p: u64) -> u64 {
    log.txns
        .iter()
        .find(|&&(s, e)| s < p && p < e)
        .map_or(p, |&(s, _)| s)
}

/// Computes the consistent cut and the replay order. `Err` when the
/// dependencies cannot be satisfied in any order (a cycle: the logs are
/// corrupt).
pub fn plan(logs: &[CoreLog]) -> Result<Plan, String> {
    let mut ends: Vec<u64> = logs.iter().map(|l| l.end.max(l.start)).collect();
    let parts: Vec<_> = logs.iter().map(part_ends).collect();
    loop {
        let mut changed = false;
        for (i, log) in logs.iter().enumerate() {
            let unmet = log
                .deps
                .iter()
                .take_while(|(p, _)| *p < ends[i])
                .find(|(_, deps)| deps.iter().any(|&d| !met(logs, &ends, d)));
            if let Some(&(p, _)) = unmet {
                let to = out_of_txn(log, p).max(log.start);
                if to < ends[i] {
                    ends[i] = to;
                    changed = true;
                }
            }
            // A part of a transaction whose part on another core is gone.
            let orphan = log
                .parts
                .iter()
                .take_while(|(p, _)| *p < ends[i])
                .find(|(_, part)| {
                    part.cores.iter().filter(|&&d| d != log.core).any(|&d| {
                        match logs.iter().position(|l| l.core == d) {
                            Some(j) => {
                                !part_kept(&parts[j], &part.id, ends[j])
                                    && !logs[j].based.contains(&part.id)
                            }
                            None => true,
                        }
                    })
                });
            if let Some(&(p, _)) = orphan {
                let to = out_of_txn(log, p).max(log.start);
                if to < ends[i] {
                    ends[i] = to;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let cut = logs
        .iter()
        .zip(&ends)
        .map(|(l, &e)| l.end.max(l.start) - e)
        .collect();
    let mut at: Vec<u64> = logs.iter().map(|l| l.start).collect();
    // Per log: the next `#D` not yet passed.
    let mut next = vec![0usize; logs.len()];
    let mut steps: Vec<Step> = Vec::new();
    while at.iter().zip(&ends).any(|(a, e)| a < e) {
        let mut progress = false;
        for (i, log) in logs.iter().enumerate() {
            while at[i] < ends[i] {
                // Pass the annotations at the current position whose
                // dependencies are met.
                while let Some((p, deps)) = log.deps.get(next[i]) {
                    if *p > at[i] {
                        break;
                    }
                    if !deps.iter().all(|&d| met(logs, &at, d)) {
                        break;
                    }
                    next[i] += 1;
                    progress = true;
                }
                if log.deps.get(next[i]).is_some_and(|(p, _)| *p <= at[i]) {
                    break; // waits for another core
                }
                let to = log
                    .deps
                    .get(next[i])
                    .map_or(ends[i], |(p, _)| (*p).min(ends[i]));
                match steps.last_mut() {
                    Some(s) if s.log == i && s.to == at[i] => s.to = to,
                    _ => steps.push(Step {
                        log: i,
                        from: at[i],
                        to,
                    }),
                }
                at[i] = to;
                progress = true;
            }
        }
        if !progress {
            let stuck: Vec<String> = logs
                .iter()
                .zip(&at)
                .zip(&ends)
                .filter(|((_, a), e)| a < e)
                .map(|((l, a), _)| format!("core {} at offset {a}", l.core))
                .collect();
            return Err(format!(
                "AOF dependencies between cores can't be satisfied in any order ({}): the AOF is corrupt",
                stuck.join(", ")
            ));
        }
    }
    Ok(Plan { ends, cut, steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn log(core: usize, start: u64, end: u64, deps: &[(u64, &[Dep])]) -> CoreLog {
        CoreLog {
            core,
            start,
            end,
            deps: deps.iter().map(|(p, d)| (*p, d.to_vec())).collect(),
            txns: Vec::new(),
            parts: Vec::new(),
            based: Vec::new(),
        }
    }

    #[test]
    fn a_transaction_across_cores_comes_back_whole_or_not_at_all() {
        let part = |id: &str| Part {
            id: id.into(),
            cores: vec![0, 1],
        };
        // Core 0: part of t1 at 10 (its MULTI at 20..60); core 1: part at
        // 5 (MULTI 15..50).
        let mut a = log(0, 0, 100, &[]);
        a.parts = vec![(10, part("t1"))];
        a.txns = vec![(20, 60)];
        let mut b = log(1, 0, 80, &[]);
        b.parts = vec![(5, part("t1"))];
        b.txns = vec![(15, 50)];
        let p = plan(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(p.ends, vec![100, 80]);
        // Core 1 lost its EXEC: core 0's part goes too (cut at its `#X`).
        b.end = 40;
        let p = plan(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            p.ends,
            vec![10, 5],
            "the loader reverts core 1's open MULTI"
        );
        // Core 1 has no part at all.
        b.parts.clear();
        b.txns.clear();
        b.end = 80;
        let p = plan(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(p.ends, vec![10, 80]);
        // Unless its part is in its base: a rewrite's switch of files came
        // between the two parts, and the manifest names the transaction.
        b.based = vec!["t1".into()];
        let p = plan(&[a, b]).unwrap();
        assert_eq!(p.ends, vec![100, 80]);
    }

    #[test]
    fn lost_tail_cuts_dependents() {
        // Core 0's records from 100 on need core 1 up to 50; core 1 kept
        // only 40 bytes.
        let logs = [log(0, 0, 200, &[(100, &[(1, 50)])]), log(1, 0, 40, &[])];
        let p = plan(&logs).unwrap();
        assert_eq!(p.ends, vec![100, 40]);
        assert_eq!(p.cut, vec![100, 0]);
        // Nothing else to wait for: core 0 then core 1.
        assert_eq!(
            p.steps,
            vec![
                Step {
                    log: 0,
                    from: 0,
                    to: 100
                },
                Step {
                    log: 1,
                    from: 0,
                    to: 40
                }
            ]
        );
        // Everything kept: core 0 waits at 100 for core 1.
        let logs = [log(0, 0, 200, &[(100, &[(1, 50)])]), log(1, 0, 60, &[])];
        let p = plan(&logs).unwrap();
        assert_eq!(p.ends, vec![200, 60]);
        assert_eq!(
            p.steps,
            vec![
                Step {
                    log: 0,
                    from: 0,
                    to: 100
                },
                Step {
                    log: 1,
                    from: 0,
                    to: 60
                },
                Step {
                    log: 0,
                    from: 100,
                    to: 200
                }
            ]
        );
    }

    #[test]
    fn cascades_base_offsets_and_transactions() {
        // 2 needs 1, which needs 0, whose tail is lost.
        let mut logs = vec![
            log(0, 0, 10, &[]),
            log(1, 0, 100, &[(30, &[(0, 20)])]),
            log(2, 0, 100, &[(70, &[(1, 40)])]),
        ];
        let p = plan(&logs).unwrap();
        assert_eq!(p.ends, vec![10, 30, 70]);
        // A dependency covered by the base image is always met.
        logs[0].start = 25;
        logs[0].end = 25;
        assert_eq!(plan(&logs).unwrap().ends, vec![25, 100, 100]);
        // A cut inside a transaction removes the whole transaction.
        let mut l = log(0, 0, 100, &[(50, &[(1, 10)])]);
        l.txns.push((40, 60));
        let p = plan(&[l, log(1, 0, 5, &[])]).unwrap();
        assert_eq!(p.ends, vec![40, 5]);
        // A core missing from the manifest: only offset 0 is met.
        let p = plan(&[log(0, 0, 100, &[(10, &[(7, 0)]), (20, &[(7, 1)])])]).unwrap();
        assert_eq!(p.ends, vec![20]);
    }

    #[test]
    fn cycle_is_corruption() {
        let logs = [
            log(0, 0, 100, &[(10, &[(1, 50)])]),
            log(1, 0, 100, &[(10, &[(0, 50)])]),
        ];
        let e = plan(&logs).unwrap_err();
        assert!(e.contains("can't be satisfied"), "{e}");
    }

    /// Random histories of 2-4 writer cores: each core appends records
    /// and sometimes a `#D` naming the other cores' current lengths (the
    /// writes it has seen), then each loses a random tail. The kept cut
    /// must be closed (every kept record's dependencies are kept) and as
    /// large as possible (each end is the lost tail or an unmet `#D`), and
    /// the steps must apply every dependency first.
    #[test]
    fn random_histories_give_closed_cuts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5107_d0a0);
        for _ in 0..3000 {
            let n = rng.gen_range(2..=4);
            let mut logs: Vec<CoreLog> = (0..n)
                .map(|c| {
                    let start = if rng.gen_bool(0.3) {
                        rng.gen_range(0..50)
                    } else {
                        0
                    };
                    log(c, start, start, &[])
                })
                .collect();
            // Record boundaries per core.
            let mut bounds: Vec<Vec<u64>> = logs.iter().map(|l| vec![l.start]).collect();
            for _ in 0..rng.gen_range(0..60) {
                let c = rng.gen_range(0..n);
                if rng.gen_bool(0.3) {
                    let mut deps: Vec<Dep> = Vec::new();
                    for (d, other) in logs.iter().enumerate() {
                        if d != c && rng.gen_bool(0.6) {
                            deps.push((d, rng.gen_range(0..=other.end)));
                        }
                    }
                    if !deps.is_empty() {
                        let p = logs[c].end;
                        logs[c].deps.push((p, deps));
                        logs[c].end += 12;
                        bounds[c].push(logs[c].end);
                        continue;
                    }
                }
                logs[c].end += rng.gen_range(1..30);
                bounds[c].push(logs[c].end);
            }
            // Lose tails at record boundaries.
            for c in 0..n {
                let keep = rng.gen_range(0..bounds[c].len());
                if rng.gen_bool(0.5) {
                    logs[c].end = bounds[c][keep];
                }
            }
            let p = plan(&logs).unwrap();
            for (i, l) in logs.iter().enumerate() {
                assert!(p.ends[i] <= l.end.max(l.start));
                assert!(p.ends[i] >= l.start);
                // Closed: every #D before the end is met by the ends.
                for (pos, deps) in &l.deps {
                    if *pos < p.ends[i] {
                        assert!(
                            deps.iter().all(|&d| met(&logs, &p.ends, d)),
                            "{logs:?} {p:?}"
                        );
                    }
                }
                // Maximal: the end is the original end or an unmet #D.
                if p.ends[i] < l.end {
                    let (_, deps) = l.deps.iter().find(|(q, _)| *q == p.ends[i]).unwrap();
                    assert!(deps.iter().any(|&d| !met(&logs, &p.ends, d)));
                }
            }
            // Steps: contiguous per log, cover [start, end), and each #D is
            // met by what was applied before the step that passes it.
            let mut at: Vec<u64> = logs.iter().map(|l| l.start).collect();
            for s in &p.steps {
                assert_eq!(s.from, at[s.log]);
                assert!(s.to > s.from);
                for (pos, deps) in &logs[s.log].deps {
                    if s.from <= *pos && *pos < s.to {
                        assert!(deps.iter().all(|&d| met(&logs, &at, d)), "{logs:?} {p:?}");
                    }
                }
                at[s.log] = s.to;
            }
            assert_eq!(at, p.ends);
        }
    }
}
