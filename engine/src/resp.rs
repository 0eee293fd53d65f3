//! RESP request parsing: multibulk (`*N\r\n$len\r\n...`) and inline commands.
//!
//! The parser works on a byte slice and never allocates for multibulk
//! requests: it records each argument as a `(start, end)` span into the
//! caller's buffer. `Incomplete` is a normal outcome, not an error: the caller
//! reads more bytes and calls again. Errors carry Redis 7.0's exact text; the
//! connection that sent them is answered and closed, as Redis does.

use crate::args::BIG_SPAN;

/// Bulk arguments of this many bytes or more are received into a buffer of
/// their own, of their exact size, which becomes the value without a copy
/// (Redis's `PROTO_MBULK_BIG_ARG`): see [`Parsed::BigBulk`].
pub const BIG_ARG: usize = 32 * 1024;

/// Limits that protect the server from a request before it is buffered.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len`: the largest bulk argument accepted.
    pub bulk_bytes_max: usize,
    /// Most arguments in one multibulk request (Redis: `INT_MAX`; a request
    /// this large could never fit the query buffer anyway).
    pub args_max: usize,
    /// Longest inline request or `*`/`$` header line before the `\r\n`.
    pub inline_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            args_max: i32::MAX as usize,
            inline_bytes_max: 64 * 1024,
        }
    }
}

/// What one call to [`parse`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command; its arguments are in `spans`. When `inline` is true the
    /// spans index the `scratch` buffer (inline arguments may need unquoting),
    /// otherwise they index the input buffer.
    Command { consumed: usize, inline: bool },
    /// An empty request (`*0`, `*-1` or a blank inline line): skip it, no reply.
    Empty { consumed: usize },
    /// Not enough bytes yet; parsing again is pointless before the buffer
    /// holds at least `need` bytes.
    Incomplete { need: usize },
    /// A bulk of at least [`BIG_ARG`] bytes whose data starts at `start` is
    /// not all here yet: the caller may receive its `len` bytes into a
    /// buffer of their own, drop them from its buffer, and parse again with
    /// a hole at `start` (see [`parse_with_holes`]). Parsing again without
    /// it is pointless before the buffer holds `start + len + 2` bytes.
    BigBulk { start: usize, len: usize },
}

/// A protocol violation: reply `-ERR Protocol error: <text>` and close.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct ProtocolError(pub &'static str);

impl ProtocolError {
    /// The error reply line, without the leading `-` and trailing CRLF.
    pub fn message(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = memchr(b'\r', &buf[i..]) {
        let at = i + off;
        if at + 1 < buf.len() {
            if buf[at + 1] == b'\n' {
                return Some(at);
            }
            i = at + 1;
        } else {
            return None;
        }
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// C's `strtol(line + from, &end, 10)`: the value (saturated) and where
/// the number ends (`from` when there is none). For the lines Redis reads
/// with `strtol`/`strtoll` (AOF annotations, replication replies).
pub fn strtol(line: &[u8], from: usize) -> (i64, usize) {
    let mut i = from;
    while i < line.len() && matches!(line[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match line.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = line[i.min(line.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return (0, from);
    }
    let mut n: i64 = 0;
    for &b in &line[i..i + digits] {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    (if neg { -n } else { n }, i + digits)
}

/// Parses a decimal integer the way Redis's `string2ll` does (no spaces, no
/// `+`, no leading zeros except "0").
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// Parses one request from the start of `buf`.
///
/// `spans` is cleared and filled with the argument spans; `scratch` is used
/// only for inline requests. Neither is allocated for anything but what was
/// actually received.
pub fn parse(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> Result<Parsed, ProtocolError> {
    parse_with_holes(buf, limits, spans, scratch, &[])
}

/// [`parse`] over a buffer from which big bulks were taken out: `holes`
/// lists, in increasing order, where the data of each would start (right
/// after its `$len` line; its CRLF stays in `buf`). The span of the
/// argument in hole `i` is ([`BIG_SPAN`], `i`): the caller holds its bytes
/// (see [`crate::Args::with_bigs`]).
pub fn parse_with_holes(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
    holes: &[usize],
) -> Result<Parsed, ProtocolError> {
    spans.clear();
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { need: 1 });
    }
    if buf[0] != b'*' {
        return parse_inline(buf, limits, spans, scratch);
    }
    let Some(eol) = find_crlf(buf, 1) else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError("too big mbulk count string"));
        }
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    let count = match parse_i64(&buf[1..eol]) {
        Some(n) if n <= limits.args_max as i64 && n <= i32::MAX as i64 => n,
        _ => return Err(ProtocolError("invalid multibulk length")),
    };
    let mut pos = eol + 2;
    if count <= 0 {
        return Ok(Parsed::Empty { consumed: pos });
    }
    let mut hole = 0;
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete { need: pos + 1 });
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(expected_dollar(buf[pos])));
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > limits.inline_bytes_max {
                return Err(ProtocolError("too big bulk count string"));
            }
            return Ok(Parsed::Incomplete {
                need: buf.len() + 1,
            });
        };
        let len = match parse_i64(&buf[pos + 1..eol]) {
            Some(n) if n >= 0 && n as u64 <= limits.bulk_bytes_max as u64 => n as usize,
            _ => return Err(ProtocolError("invalid bulk length")),
        };
        let start = eol + 2;
        if holes.get(hole) == Some(&start) {
            if buf.len() < start + 2 {
                return Ok(Parsed::Incomplete { need: start + 2 });
            }
            if &buf[start..start + 2] != b"\r\n" {
                return Err(ProtocolError("invalid bulk length"));
            }
            spans.push((BIG_SPAN, hole as u32));
            hole += 1;
            pos = start + 2;
            continue;
        }
        let end = start + len;
        if buf.len() < end + 2 {
            if len >= BIG_ARG {
                return Ok(Parsed::BigBulk { start, len });
            }
            return Ok(Parsed::Incomplete { need: end + 2 });
        }
        if &buf[end..end + 2] != b"\r\n" {
            // Redis trusts the length and skips two bytes; a request whose
            // bulk is not followed by CRLF is malformed, so refuse it.
            return Err(ProtocolError("invalid bulk length"));
        }
        if end > u32::MAX as usize {
            return Err(ProtocolError("invalid bulk length"));
        }
        spans.push((start as u32, end as u32));
        pos = end + 2;
    }
    Ok(Parsed::Command {
        consumed: pos,
        inline: false,
    })
}

/// Redis names the unexpected byte in this error; we keep its wording.
fn expected_dollar(got: u8) -> &'static str {
    // The message embeds one character; precomputing all 256 keeps the error
    // type `&'static str` without allocating.
    static TABLE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0u8..=255)
            .map(|c| format!("expected '$', got '{}'", c as char))
            .collect()
    });
    table[got as usize].as_str()
}

fn parse_inline(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError("too big inline request"));
        }
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    if nl > limits.inline_bytes_max {
        return Err(ProtocolError("too big inline request"));
    }
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    scratch.clear();
    split_args(line, spans, scratch)?;
    if spans.is_empty() {
        return Ok(Parsed::Empty { consumed: nl + 1 });
    }
    Ok(Parsed::Command {
        consumed: nl + 1,
        inline: true,
    })
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`:
/// whitespace separates, `"..."` allows escapes (`\n`, `\xHH`, ...), `'...'`
/// allows only `\'`. A closing quote must be followed by a space or the end.
fn split_args(
    line: &[u8],
    spans: &mut Vec<(u32, u32)>,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    const UNBALANCED: ProtocolError = ProtocolError("unbalanced quotes in request");
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(());
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(UNBALANCED);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex_val(line[i + 2]), hex_val(line[i + 3])) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(UNBALANCED);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else if in_sq {
                if i >= n {
                    return Err(UNBALANCED);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    out.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(UNBALANCED);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => out.push(c),
                }
                i += 1;
            }
        }
        spans.push((start as u32, out.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(buf: &[u8]) -> Result<(Parsed, Vec<Vec<u8>>), ProtocolError> {
        let mut spans = Vec::new();
        let mut scratch = Vec::new();
        let p = parse(buf, &Limits::default(), &mut spans, &mut scratch)?;
        let src = match p {
            Parsed::Command { inline: true, .. } => &scratch[..],
            _ => buf,
        };
        let v = spans
            .iter()
            .map(|&(s, e)| src[s as usize..e as usize].to_vec())
            .collect();
        Ok((p, v))
    }

    #[test]
    fn multibulk() {
        let (p, v) = args(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra").unwrap();
        assert_eq!(
            p,
            Parsed::Command {
                consumed: 20,
                inline: false
            }
        );
        assert_eq!(v, vec![b"GET".to_vec(), b"k".to_vec()]);
    }

    #[test]
    fn incomplete_at_every_cut() {
        let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            match args(&full[..cut]).unwrap().0 {
                Parsed::Incomplete { need } => assert!(need > cut && need <= full.len()),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            args(full).unwrap().0,
            Parsed::Command { consumed, .. } if consumed == full.len()
        ));
    }

    #[test]
    fn big_bulks_are_offered_out_and_parsed_as_holes() {
        let len = BIG_ARG;
        let mut req = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        let start = req.len();
        req.extend_from_slice(b"xyz");
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        let l = Limits::default();
        assert_eq!(
            parse(&req, &l, &mut spans, &mut scratch),
            Ok(Parsed::BigBulk { start, len })
        );
        // One byte short of a big bulk: an ordinary incomplete request.
        let small = format!("*2\r\n$3\r\nGET\r\n${}\r\nab", len - 1);
        assert!(matches!(
            parse(small.as_bytes(), &l, &mut spans, &mut scratch),
            Ok(Parsed::Incomplete { .. })
        ));
        // The data taken out: the CRLF after the hole completes it.
        req.truncate(start);
        assert_eq!(
            parse_with_holes(&req, &l, &mut spans, &mut scratch, &[start]),
            Ok(Parsed::Incomplete { need: start + 2 })
        );
        req.extend_from_slice(b"\r\n*1\r\n");
        assert_eq!(
            parse_with_holes(&req, &l, &mut spans, &mut scratch, &[start]),
            Ok(Parsed::Command {
                consumed: start + 2,
                inline: false
            })
        );
        assert_eq!(spans[2], (BIG_SPAN, 0));
        req[start] = b'x';
        assert_eq!(
            parse_with_holes(&req, &l, &mut spans, &mut scratch, &[start]),
            Err(ProtocolError("invalid bulk length"))
        );
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            args(b"*x\r\n").unwrap_err().message(),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            args(b"*1\r\n+GET\r\n").unwrap_err().message(),
            "ERR Protocol error: expected '$', got '+'"
        );
        assert_eq!(args(b"*1\r\n$-5\r\n").unwrap_err().0, "invalid bulk length");
        let limits = Limits {
            bulk_bytes_max: 10,
            ..Limits::default()
        };
        let mut s = Vec::new();
        let mut sc = Vec::new();
        // Refused from the header alone: the 11 bytes never need to arrive.
        assert_eq!(
            parse(b"*1\r\n$11\r\n", &limits, &mut s, &mut sc)
                .unwrap_err()
                .0,
            "invalid bulk length"
        );
        let long = vec![b'a'; 70 * 1024];
        assert_eq!(args(&long).unwrap_err().0, "too big inline request");
        let mut mb = b"*".to_vec();
        mb.extend(vec![b'1'; 70 * 1024]);
        assert_eq!(args(&mb).unwrap_err().0, "too big mbulk count string");
    }

    #[test]
    fn empty_requests() {
        assert_eq!(args(b"*0\r\n").unwrap().0, Parsed::Empty { consumed: 4 });
        assert_eq!(args(b"*-1\r\n").unwrap().0, Parsed::Empty { consumed: 5 });
        assert_eq!(args(b"  \r\n").unwrap().0, Parsed::Empty { consumed: 4 });
    }

    #[test]
    fn inline() {
        let (_, v) = args(b"set k \"a b\\x41\\n\" 'it\\'s'\r\n").unwrap();
        assert_eq!(
            v,
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"a bA\n".to_vec(),
                b"it's".to_vec()
            ]
        );
        assert_eq!(args(b"PING\n").unwrap().1, vec![b"PING".to_vec()]);
        assert_eq!(
            args(b"set k \"abc\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        assert_eq!(
            args(b"set k \"abc\"x\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut spans = Vec::new();
        let mut scratch = Vec::new();
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && !buf.is_empty() {
                buf[0] = b'*';
            }
            if let Ok(Parsed::Command { consumed, inline }) =
                parse(&buf, &Limits::default(), &mut spans, &mut scratch)
            {
                assert!(consumed <= buf.len());
                let src_len = if inline { scratch.len() } else { buf.len() };
                assert!(spans.iter().all(|&(s, e)| s <= e && e as usize <= src_len));
            }
        }
    }
}
