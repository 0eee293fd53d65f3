//! Command arguments: a view of spans into one buffer, and its owned form
//! that crosses cores. A big bulk argument (see [`crate::resp::BIG_ARG`])
//! may instead be its own `Bytes`, received straight into a buffer of its
//! size: the span then names it in a side list, so a value of hundreds of
//! megabytes reaches the keyspace (and other cores) without a copy.

use crate::error;
use crate::reply::Reply;
use crate::resp::parse_i64;
use bytes::Bytes;

/// The start of a span that is not a range of the buffer: its end is the
/// index of the argument in the side list of big arguments. (A real span
/// never starts after its end.)
pub const BIG_SPAN: u32 = u32::MAX;

/// A command's arguments (`args.get(0)` is the command name). Borrowed from
/// the connection's read buffer, so building it costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    buf: &'a [u8],
    spans: &'a [(u32, u32)],
    bigs: &'a [Bytes],
    /// `buf` starts with these arguments as the client sent them, a RESP
    /// multibulk request (see [`Args::from_request`]).
    wire: bool,
}

impl<'a> Args<'a> {
    /// Arguments given as spans into `buf`. Every span must lie in `buf`.
    pub fn new(buf: &'a [u8], spans: &'a [(u32, u32)]) -> Self {
        debug_assert!(spans
            .iter()
            .all(|&(s, e)| s <= e && e as usize <= buf.len()));
        Args {
            buf,
            spans,
            bigs: &[],
            wire: false,
        }
    }

    /// Arguments given as spans into `buf`, or ([`BIG_SPAN`], `i`) for
    /// `bigs[i]`.
    pub fn with_bigs(buf: &'a [u8], spans: &'a [(u32, u32)], bigs: &'a [Bytes]) -> Self {
        debug_assert!(spans.iter().all(|&(s, e)| if s == BIG_SPAN {
            (e as usize) < bigs.len()
        } else {
            s <= e && e as usize <= buf.len()
        }));
        Args {
            buf,
            spans,
            bigs,
            wire: false,
        }
    }

    /// Arguments parsed from a multibulk request that starts `buf` (spans
    /// and big arguments as for [`Args::with_bigs`]): what
    /// [`Args::wire_bytes`] may hand over as the request itself.
    pub fn from_request(buf: &'a [u8], spans: &'a [(u32, u32)], bigs: &'a [Bytes]) -> Self {
        Args {
            wire: true,
            ..Args::with_bigs(buf, spans, bigs)
        }
    }

    /// The request these arguments were parsed from, byte for byte, when
    /// it is whole in the buffer (no big argument received apart). The
    /// parser accepts a multibulk request only in the one form RESP
    /// writes (no sign, no leading zero in a length: Redis's rule), so
    /// these bytes are what encoding the arguments again would give: the
    /// write log copies them instead.
    pub fn wire_bytes(&self) -> Option<&'a [u8]> {
        if !self.wire || !self.bigs.is_empty() {
            return None;
        }
        let &(_, end) = self.spans.last()?;
        self.buf.get(..end as usize + 2)
    }

    /// Number of arguments, including the command name.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`, or the empty slice past the end (arity is checked
    /// before a command runs, so handlers never see that case).
    pub fn get(&self, i: usize) -> &'a [u8] {
        match self.spans.get(i) {
            Some(&(s, e)) => slice(self.buf, self.bigs, s, e),
            None => &[],
        }
    }

    /// Argument `i` when it was received as its own buffer: sharing it
    /// costs no copy.
    pub fn shared(&self, i: usize) -> Option<&'a Bytes> {
        match self.spans.get(i) {
            Some(&(BIG_SPAN, e)) => self.bigs.get(e as usize),
            _ => None,
        }
    }

    /// Argument `i` as `Bytes`: shared when it was received as its own
    /// buffer, else copied.
    pub fn bytes(&self, i: usize) -> Bytes {
        match self.shared(i) {
            Some(b) => b.clone(),
            None => Bytes::copy_from_slice(self.get(i)),
        }
    }

    /// Arguments from `i` to the end.
    pub fn iter_from(&self, i: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let (buf, bigs) = (self.buf, self.bigs);
        self.spans
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .map(move |&(s, e)| slice(buf, bigs, s, e))
    }

    /// All arguments.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        self.iter_from(0)
    }

    /// Argument `i` as an integer, or Redis's "not an integer" error.
    pub fn int(&self, i: usize) -> Result<i64, Reply> {
        parse_i64(self.get(i)).ok_or_else(|| Reply::err(error::NOT_INT))
    }

    /// Argument `i` as a float, or Redis's "not a valid float" error.
    pub fn float(&self, i: usize) -> Result<f64, Reply> {
        parse_float(self.get(i)).ok_or_else(|| Reply::err(error::NOT_FLOAT))
    }

    /// True when argument `i` equals `word`, ignoring ASCII case.
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    /// The command name in lowercase (for error messages).
    pub fn name_lower(&self) -> String {
        String::from_utf8_lossy(self.get(0)).to_ascii_lowercase()
    }

    /// An owned copy, to send to another core: big arguments are shared,
    /// not copied.
    pub fn to_owned(&self) -> OwnedArgs {
        let mut o = OwnedArgs::default();
        for i in 0..self.len() {
            match self.shared(i) {
                Some(b) => o.push_shared(b.clone()),
                None => o.push(self.get(i)),
            }
        }
        o
    }
}

/// The bytes a span names.
#[inline]
fn slice<'a>(buf: &'a [u8], bigs: &'a [Bytes], s: u32, e: u32) -> &'a [u8] {
    if s == BIG_SPAN {
        bigs.get(e as usize).map_or(&[], |b| &b[..])
    } else {
        &buf[s as usize..e as usize]
    }
}

/// Parses a float as Redis's `getDoubleFromObject` accepts it (ZADD's
/// scores, WEIGHTS): what C's `strtod` reads from the whole text, decimal
/// or hexadecimal, `inf`/`-inf` allowed; NaN, a leading space and a number
/// out of a double's range (ERANGE) refused.
pub fn parse_float(s: &[u8]) -> Option<f64> {
    strtod(s).filter(|&(_, erange)| !erange).map(|(v, _)| v)
}

/// What C's `strtod` reads from the whole of `s`: the value, and whether
/// it fell out of a double's range (ERANGE: a finite number past the
/// largest double, which reads as infinite, or a nonzero one that rounds
/// to zero). `None` for text that is not a number, NaN, or a leading space
/// (which Redis refuses before `strtod`).
pub fn strtod(s: &[u8]) -> Option<(f64, bool)> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let (neg, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (v, erange) = if lower == "inf" || lower == "infinity" {
        (f64::INFINITY, false)
    } else if let Some(hex) = lower.strip_prefix("0x") {
        hex_float(hex)?
    } else {
        if lower.contains("inf") || lower.contains("nan") || body.starts_with(['+', '-']) {
            return None;
        }
        let v = body.parse::<f64>().ok()?;
        let mantissa = lower.split('e').next().unwrap_or("");
        let nonzero = mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
        (v, v.is_infinite() || (v == 0.0 && nonzero))
    };
    if v.is_nan() {
        return None;
    }
    Some((if neg { -v } else { v }, erange))
}

/// A hexadecimal float's digits after `0x` (`1.8p3`): its value and
/// whether it is out of a double's range.
fn hex_float(s: &str) -> Option<(f64, bool)> {
    let (digits, exp) = match s.split_once('p') {
        Some((d, e)) => (d, e.parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mantissa = 0f64;
    let mut nonzero = false;
    for c in int.chars().chain(frac.chars()) {
        let d = c.to_digit(16)?;
        nonzero |= d != 0;
        mantissa = mantissa * 16.0 + d as f64;
    }
    if !nonzero {
        return Some((0.0, false));
    }
    let shift = exp.saturating_sub(4 * frac.len() as i64).clamp(-4000, 4000) as i32;
    let v = mantissa * 2f64.powi(shift / 2) * 2f64.powi(shift - shift / 2);
    Some((v, v.is_infinite() || (v == 0.0 && nonzero)))
}

/// Arguments that own their bytes: what a cross-core message carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedArgs {
    buf: Vec<u8>,
    spans: Vec<(u32, u32)>,
    bigs: Vec<Bytes>,
}

impl<'b> FromIterator<&'b [u8]> for OwnedArgs {
    /// Copies the given arguments.
    fn from_iter<I: IntoIterator<Item = &'b [u8]>>(items: I) -> Self {
        let mut o = OwnedArgs::default();
        for a in items {
            o.push(a);
        }
        o
    }
}

impl OwnedArgs {
    /// Appends one argument.
    pub fn push(&mut self, a: &[u8]) {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(a);
        self.spans.push((start, self.buf.len() as u32));
    }

    /// Appends one big argument, shared.
    pub fn push_shared(&mut self, b: Bytes) {
        self.spans.push((BIG_SPAN, self.bigs.len() as u32));
        self.bigs.push(b);
    }

    /// Drops every argument, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
        self.bigs.clear();
    }

    /// A borrowed view.
    pub fn as_args(&self) -> Args<'_> {
        Args::with_bigs(&self.buf, &self.spans, &self.bigs)
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Redis's `sdssplitargs`: words separated by blanks, `"..."` with
/// escapes (`\n \r \t \b \a \\ \" \xHH`), `'...'` with `\'`; a closing
/// quote must be followed by a blank or the end. `None` on unbalanced
/// quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // A NUL ends the line, as it ends Redis's C string (without this, a
    // NUL after a word was an endless run of empty words).
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn split_args_stops_at_a_nul() {
        assert_eq!(
            super::split_args(b"a b\0c d").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(super::split_args(b"\0").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn only_a_request_kept_whole_gives_its_bytes() {
        let wire = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let spans = [(8, 11), (17, 18)];
        let whole = Args::from_request(wire, &spans, &[]);
        assert_eq!(whole.wire_bytes(), Some(&wire[..20]));
        // Built from spans elsewhere (inline, owned, a script's call).
        assert_eq!(Args::new(wire, &spans).wire_bytes(), None);
        // A big argument received apart leaves a hole in the buffer.
        let big = [Bytes::from_static(b"k")];
        let spans = [(8, 11), (BIG_SPAN, 0)];
        assert_eq!(Args::from_request(wire, &spans, &big).wire_bytes(), None);
    }

    use super::*;

    #[test]
    fn owned_round_trip() {
        let o = OwnedArgs::from_iter([&b"SET"[..], b"k", b""]);
        let a = o.as_args();
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(1), b"k");
        assert_eq!(a.get(2), b"");
        assert_eq!(a.get(9), b"");
        assert!(a.is(0, "set"));
        assert_eq!(a.to_owned(), o);
    }

    #[test]
    fn big_arguments_are_shared_not_copied() {
        let big = Bytes::from(vec![7u8; 100]);
        let buf = b"SETk";
        let spans = [(0, 3), (3, 4), (BIG_SPAN, 0)];
        let bigs = [big.clone()];
        let a = Args::with_bigs(buf, &spans, &bigs);
        assert_eq!(a.get(2), &big[..]);
        assert_eq!(a.iter().map(|x| x.len()).collect::<Vec<_>>(), [3, 1, 100]);
        assert_eq!(a.shared(2).map(|b| b.as_ptr()), Some(big.as_ptr()));
        assert!(a.shared(1).is_none());
        let o = a.to_owned();
        let oa = o.as_args();
        assert_eq!(oa.get(2).as_ptr(), big.as_ptr());
        assert_eq!(oa.bytes(2).as_ptr(), big.as_ptr());
        assert_eq!(oa.get(0), b"SET");
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"abc"), None);
        // As strtod: hexadecimal, and ERANGE refused by getDoubleFromObject.
        assert_eq!(parse_float(b"0x10"), Some(16.0));
        assert_eq!(parse_float(b"-0x1.8p1"), Some(-3.0));
        assert_eq!(parse_float(b"0x"), None);
        assert_eq!(parse_float(b"0x0p2048"), Some(0.0));
        assert_eq!(parse_float(b"1e500"), None);
        assert_eq!(parse_float(b"1e-400"), None);
        assert_eq!(parse_float(b"0e-400"), Some(0.0));
        assert_eq!(parse_float(b"--1"), None);
        assert_eq!(strtod(b"1e500"), Some((f64::INFINITY, true)));
        assert_eq!(strtod(b"-1e-400"), Some((-0.0, true)));
        assert_eq!(strtod(b"-infinity"), Some((f64::NEG_INFINITY, false)));
    }
}
