//! The per-core write streams merged into one replication stream, by
//! tickets.
//!
//! Each shard core records its writes in its own write log
//! (`engine::writelog`). At the end of an event-loop turn that produced
//! writes, the core takes one ticket from a global counter (`fetch_add(1)`,
//! once per turn) and pushes a [`Chunk`] with that turn's bytes; it sends
//! the replies of those writes only after the push. So if a write A was
//! acknowledged before a write B began, on any cores, `ticket(A) <
//! ticket(B)`; and a core's own tickets increase, so its order is kept.
//!
//! The [`Merger`] emits chunks strictly in ticket order: a chunk waits until
//! every smaller ticket has arrived. **Assumption: every ticket taken is
//! pushed** (a core that took a ticket and has nothing to say pushes an
//! empty chunk). If a ticket is missing while more than the merger's limit
//! of bytes waits behind it, the merger gives up on it: it drops what it
//! holds, skips past every ticket seen, and reports a [`Gap`] from
//! [`Merger::drain`] (the stream lost writes: replicas must resync fully,
//! under a new replication ID); chunks that arrive later for skipped
//! tickets are dropped. So memory stays bounded whatever the cores do.
//!
//! Database selection: every chunk starts with a `SELECT` (the core resets
//! its log's database at each chunk). The merger follows the database of
//! the merged stream across chunks and drops every `SELECT` of the
//! database already selected, so the stream selects only when the database
//! changes, as Redis's does. [`Merger::reset_db`] makes the next `SELECT`
//! stay (a full resynchronization starts from an unknown database).
//! Annotation lines (`#TS:…`, `#D:…`, `#X:…`, which only the AOF loader
//! skips) are dropped: a Redis replica would take them for inline commands
//! and close the link.
//!
//! Transactions across cores: each core writes its part as a chunk of its
//! own with [`TxnPart`]; the merger emits all the parts together, in ticket
//! order, inside one `MULTI` … `EXEC`, at the position of the part with the
//! greatest ticket (the cores hold the transaction's locks until every part
//! is pushed, so nothing conflicting can come between). A part's own
//! `MULTI`/`EXEC` (the write log's `begin_multi`) is dropped in favour of
//! the wrapper. A transaction on one core arrives wrapped by the engine and
//! is a plain chunk. The `SELECT` a transaction starts with goes before its
//! `MULTI`, as Redis writes it.
//!
//! A command whose keys live on several cores (MSET, DEL, RENAME, …) and a
//! MULTI/EXEC across cores add a part of their coordinator's: the form,
//! what Redis would propagate, in the order the commands ran (the cores
//! hand back what each request logged; what they rebuild for a command
//! run elsewhere goes to their AOF only). The cores' parts then hold only
//! what else happened under the locks (evictions). The stream gets it all
//! in a `MULTI` … `EXEC` only when there is more than one command, as
//! Redis 7.0 wraps what one call propagates.

use engine::resp;
use std::collections::{BTreeMap, HashMap};

/// Held bytes past which a missing ticket is given up (64 MiB).
pub const DEFAULT_LIMIT: usize = 64 * 1024 * 1024;

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// One part of a transaction that spans cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnPart {
    /// Names the transaction (unique among those in flight).
    pub id: u64,
    /// How many parts (one per core, and the form if any) the transaction
    /// has.
    pub parts: u32,
    /// This part is the coordinator's form of the command or transaction
    /// (module doc): it goes after the cores' parts.
    pub form: bool,
}

/// What one core recorded in one event-loop turn, under one ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub ticket: u64,
    /// Set when the chunk is one part of a transaction across cores.
    pub txn: Option<TxnPart>,
    /// RESP commands, as the write log records them.
    pub bytes: Vec<u8>,
}

/// Tickets were given up: the stream misses writes from `from` (inclusive)
/// to `to` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from: u64,
    pub to: u64,
}

/// Parts of a cross-core transaction already reached in ticket order.
struct Waiting {
    parts: u32,
    got: Vec<Chunk>,
}

/// Merges the cores' chunks into one stream (see the module doc).
pub struct Merger {
    /// The next ticket to emit.
    next: u64,
    /// Chunks that arrived ahead of `next`.
    ahead: BTreeMap<u64, Chunk>,
    /// Cross-core transactions with parts passed in ticket order.
    txns: HashMap<u64, Waiting>,
    /// Bytes in `ahead` and `txns`.
    held: usize,
    limit: usize,
    /// The database the merged stream is in (`None`: unknown).
    db: Option<Vec<u8>>,
    /// Emitted, not drained yet.
    out: Vec<u8>,
    gap: Option<Gap>,
    /// Commands other than SELECT emitted so far.
    emitted: u64,
    spans: Vec<(u32, u32)>,
    scratch: Vec<u8>,
}

impl Default for Merger {
    fn default() -> Self {
        Merger::new()
    }
}

impl Merger {
    /// A merger whose first ticket is 0, with [`DEFAULT_LIMIT`].
    pub fn new() -> Merger {
        Merger::starting_at(0, DEFAULT_LIMIT)
    }

    /// A merger whose first ticket is `ticket`, giving up a missing ticket
    /// when more than `limit` bytes wait behind it.
    pub fn starting_at(ticket: u64, limit: usize) -> Merger {
        Merger {
            next: ticket,
            ahead: BTreeMap::new(),
            txns: HashMap::new(),
            held: 0,
            limit,
            db: None,
            out: Vec::new(),
            gap: None,
            emitted: 0,
            spans: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The next ticket the merged stream waits for.
    pub fn next_ticket(&self) -> u64 {
        self.next
    }

    /// Bytes held back (chunks ahead of a missing ticket, parts of
    /// transactions not complete yet).
    pub fn held(&self) -> usize {
        self.held
    }

    /// The next `SELECT` is kept whatever the database (Redis's
    /// `slaveseldb = -1` when a full resynchronization starts).
    pub fn reset_db(&mut self) {
        self.db = None;
    }

    /// A chunk from a core, in any order. A chunk whose ticket was emitted
    /// or given up already, or is already held, is dropped.
    pub fn push(&mut self, chunk: Chunk) {
        if chunk.ticket < self.next || self.ahead.contains_key(&chunk.ticket) {
            return;
        }
        if chunk.ticket == self.next {
            self.pass(chunk);
            self.advance();
        } else {
            self.held += chunk.bytes.len();
            self.ahead.insert(chunk.ticket, chunk);
        }
        if self.held > self.limit {
            self.give_up();
        }
    }

    /// Moves the ready bytes (in stream order) to the end of `out`; reports
    /// a [`Gap`] once if tickets were given up since the last call (the
    /// bytes after a gap are still appended).
    pub fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), Gap> {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
        match self.gap.take() {
            Some(g) => Err(g),
            None => Ok(()),
        }
    }

    /// Emits the chunks that follow `next` without a hole.
    fn advance(&mut self) {
        while let Some(chunk) = self.ahead.remove(&self.next) {
            self.held -= chunk.bytes.len();
            self.pass(chunk);
        }
    }

    /// The chunk of ticket `next` reached its turn.
    fn pass(&mut self, chunk: Chunk) {
        self.next = chunk.ticket + 1;
        let Some(part) = chunk.txn else {
            self.emit(&chunk.bytes, false);
            return;
        };
        let w = self.txns.entry(part.id).or_insert_with(|| Waiting {
            parts: part.parts.max(1),
            got: Vec::new(),
        });
        self.held += chunk.bytes.len();
        w.got.push(chunk);
        if w.got.len() < w.parts as usize {
            return;
        }
        let Some(mut w) = self.txns.remove(&part.id) else {
            return;
        };
        for c in &w.got {
            self.held -= c.bytes.len();
        }
        // The form goes last.
        if let Some(i) = w.got.iter().position(|c| c.txn.is_some_and(|t| t.form)) {
            let form = w.got.remove(i);
            w.got.push(form);
        }
        let (start, db, emitted) = (self.out.len(), self.db.clone(), self.emitted);
        self.out.extend_from_slice(MULTI);
        for c in &w.got {
            self.emit(&c.bytes, true);
        }
        match self.emitted - emitted {
            // Nothing was written under the locks (a barrier, or writes
            // that changed nothing): no empty transaction in the stream.
            0 => {
                self.out.truncate(start);
                self.db = db;
            }
            // One command: no wrapper.
            1 => {
                self.out.drain(start..start + MULTI.len());
            }
            _ => {
                self.out.extend_from_slice(EXEC);
                self.select_before_multi(start);
            }
        }
    }

    /// A transaction emitted at `start` that selects its database first:
    /// the `SELECT` goes before the `MULTI`.
    fn select_before_multi(&mut self, start: usize) {
        let body = start + MULTI.len();
        let Some(rest) = self.out.get(body..) else {
            return;
        };
        let limits = resp::Limits::default();
        if let Ok(resp::Parsed::Command { consumed, .. }) =
            resp::parse(rest, &limits, &mut self.spans, &mut self.scratch)
        {
            if self.spans.len() == 2 && arg(rest, &self.spans, 0).eq_ignore_ascii_case(b"select") {
                self.out[start..body + consumed].rotate_left(MULTI.len());
            }
        }
    }

    /// Drops everything held and skips past every ticket seen.
    fn give_up(&mut self) {
        let last = self.ahead.keys().next_back().copied().unwrap_or(self.next);
        let from = self
            .txns
            .values()
            .flat_map(|w| w.got.iter().map(|c| c.ticket))
            .min();
        let gap = Gap {
            from: from.unwrap_or(self.next).min(self.next),
            to: last + 1,
        };
        self.gap = Some(match self.gap {
            Some(g) => Gap {
                from: g.from.min(gap.from),
                to: gap.to,
            },
            None => gap,
        });
        self.ahead.clear();
        self.txns.clear();
        self.held = 0;
        self.next = last + 1;
    }

    /// Appends a chunk's commands, without annotations or redundant
    /// `SELECT`s (nor, in a transaction's part, its own `MULTI`/`EXEC`).
    fn emit(&mut self, bytes: &[u8], in_txn: bool) {
        let limits = resp::Limits {
            bulk_bytes_max: i64::MAX as usize,
            ..resp::Limits::default()
        };
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            if rest[0] == b'#' {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |n| n + 1);
                pos += end;
                continue;
            }
            let consumed = match resp::parse(rest, &limits, &mut self.spans, &mut self.scratch) {
                Ok(resp::Parsed::Command {
                    consumed,
                    inline: false,
                }) => consumed,
                // Not a multibulk command (a core never writes one): kept
                // as it is, with whatever follows.
                _ => {
                    self.out.extend_from_slice(rest);
                    return;
                }
            };
            let name = arg(rest, &self.spans, 0);
            let keep = if self.spans.len() == 2 && name.eq_ignore_ascii_case(b"select") {
                let db = arg(rest, &self.spans, 1);
                let changed = self.db.as_deref() != Some(db);
                if changed {
                    self.db = Some(db.to_vec());
                }
                changed
            } else {
                !(in_txn
                    && self.spans.len() == 1
                    && (name.eq_ignore_ascii_case(b"multi") || name.eq_ignore_ascii_case(b"exec")))
            };
            if keep {
                self.out.extend_from_slice(&rest[..consumed]);
                if !(self.spans.len() == 2 && name.eq_ignore_ascii_case(b"select")) {
                    self.emitted += 1;
                }
            }
            pos += consumed;
        }
    }
}

/// Argument `i` of the command parsed from `rest`.
fn arg<'a>(rest: &'a [u8], spans: &[(u32, u32)], i: usize) -> &'a [u8] {
    spans
        .get(i)
        .and_then(|&(s, e)| rest.get(s as usize..e as usize))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
