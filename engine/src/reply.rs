//! Reply values and their RESP2/RESP3 encoding.
//!
//! Commands return a [`Reply`]; only the caller encodes it, for the
//! protocol version its client chose with HELLO. RESP3-only shapes (maps,
//! sets, doubles, booleans, null) are lowered to their RESP2 form here, in
//! one place, so commands never look at the protocol version.

use bytes::Bytes;
use std::borrow::Cow;

/// Bulk replies of this many bytes or more are sent from the value itself
/// rather than copied into the connection's output (see
/// [`Reply::encode_split`]).
pub const BIG_REPLY: usize = 32 * 1024;

/// Replies encoded for a client, their big bulks kept apart and shared
/// (see [`Reply::encode_split`]): what crosses cores, so that a big value
/// is not copied on its way out.
#[derive(Debug, Default)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Where each big bulk belongs in `bytes`, in order.
    pub bigs: Vec<(usize, Bytes)>,
}

impl Encoded {
    /// Appends `r` encoded.
    pub fn push(&mut self, r: &Reply, resp3: bool) {
        r.encode_split(resp3, &mut self.bytes, &mut self.bigs);
    }

    /// Appends `bytes[from..to]` of `other`, and its big bulks there.
    pub fn extend_from(&mut self, other: &Encoded, from: usize, to: usize) {
        let Some(part) = other.bytes.get(from..to) else {
            return;
        };
        let shift = self.bytes.len();
        self.bytes.extend_from_slice(part);
        self.bigs.extend(
            other
                .bigs
                .iter()
                .filter(|(at, _)| (from..to).contains(at))
                .map(|(at, b)| (at - from + shift, b.clone())),
        );
    }

    /// Bytes, big bulks included.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.bigs.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// True when nothing is encoded.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.bigs.is_empty()
    }
}

/// A command's answer, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple string, e.g. `+PONG` or `+QUEUED`.
    Status(Cow<'static, str>),
    /// An error line without the leading `-`, e.g. `ERR syntax error`.
    Error(Cow<'static, str>),
    /// `:n`.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP3 `%`), a flat array of key, value, ... in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3 `~`), an array in RESP2.
    Set(Vec<Reply>),
    /// A double (RESP3 `,`), a bulk string in `%.17g` form in RESP2.
    Double(f64),
    /// A double in Redis's human long double form (`addReplyHumanLongDouble`:
    /// `%.17Lf` without trailing zeros, GEOPOS's coordinates): RESP3 `,`, a
    /// bulk string in RESP2.
    HumanDouble(f64),
    /// A boolean (RESP3 `#`), the integer 1 or 0 in RESP2.
    Bool(bool),
    /// Verbatim text (RESP3 `=` with format `txt`), a bulk string in RESP2.
    Verbatim(Bytes),
    /// An out-of-band push (RESP3 `>`), an array in RESP2: pub/sub messages.
    Push(Vec<Reply>),
    /// Pairs such as member/score (ZRANGE ... WITHSCORES): an array of
    /// 2-element arrays in RESP3, one flat array in RESP2, as Redis 7.0.
    Pairs(Vec<(Reply, Reply)>),
    /// Keyed results such as XREAD's streams: a map in RESP3, an array of
    /// 2-element arrays in RESP2, as Redis 7.0.
    Keyed(Vec<(Reply, Reply)>),
}

impl Reply {
    /// A bulk string copied from `b`.
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_int(n: i64) -> Reply {
        Reply::Bulk(Bytes::from(n.to_string()))
    }

    /// An error reply; `msg` includes the error code (`ERR ...`).
    pub fn err(msg: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(msg.into())
    }

    /// Simple-string reply.
    pub fn status(msg: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Status(msg.into())
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP encoding of `self` to `out`. `resp3` selects RESP3.
    pub fn encode(&self, resp3: bool, out: &mut Vec<u8>) {
        self.encode_to(resp3, out, None);
    }

    /// [`Reply::encode`], but bulk strings of [`BIG_REPLY`] bytes or more
    /// are not copied: their bytes are shared into `bigs`, with the
    /// position in `out` where they belong (after their `$len` line, before
    /// their CRLF), to be sent from the values themselves.
    pub fn encode_split(&self, resp3: bool, out: &mut Vec<u8>, bigs: &mut Vec<(usize, Bytes)>) {
        self.encode_to(resp3, out, Some(bigs));
    }

    fn encode_to(
        &self,
        resp3: bool,
        out: &mut Vec<u8>,
        mut bigs: Option<&mut Vec<(usize, Bytes)>>,
    ) {
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => {
                out.push(b':');
                push_int(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => match bigs {
                Some(bigs) if b.len() >= BIG_REPLY => {
                    header(out, b'$', b.len());
                    bigs.push((out.len(), b.clone()));
                    out.extend_from_slice(b"\r\n");
                }
                _ => bulk(out, b),
            },
            Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for i in items {
                    i.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                for i in items {
                    i.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Push(items) => {
                header(out, if resp3 { b'>' } else { b'*' }, items.len());
                for i in items {
                    i.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Pairs(pairs) => {
                header(out, b'*', if resp3 { pairs.len() } else { pairs.len() * 2 });
                for (k, v) in pairs {
                    if resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.encode_to(resp3, out, bigs.as_deref_mut());
                    v.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Keyed(pairs) => {
                header(out, if resp3 { b'%' } else { b'*' }, pairs.len());
                for (k, v) in pairs {
                    if !resp3 {
                        out.extend_from_slice(b"*2\r\n");
                    }
                    k.encode_to(resp3, out, bigs.as_deref_mut());
                    v.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode_to(resp3, out, bigs.as_deref_mut());
                    v.encode_to(resp3, out, bigs.as_deref_mut());
                }
            }
            Reply::Double(d) => {
                let s = fmt_g17(*d);
                if resp3 {
                    line(out, b',', s.as_bytes());
                } else {
                    bulk(out, s.as_bytes());
                }
            }
            Reply::HumanDouble(d) => {
                let s = crate::ldouble::human(*d);
                if resp3 {
                    line(out, b',', s.as_bytes());
                } else {
                    bulk(out, s.as_bytes());
                }
            }
            Reply::Bool(b) => {
                if resp3 {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Reply::Verbatim(text) => {
                if resp3 {
                    header(out, b'=', text.len() + 4);
                    out.extend_from_slice(b"txt:");
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, text);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, tag: u8, s: &[u8]) {
    out.push(tag);
    // A status or error line must not break the framing.
    out.extend(
        s.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n` without allocating.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Formats like C's `printf("%.17g", d)`, which Redis 7.0 uses for double
/// replies (ZSCORE, ZINCRBY, RESP3 doubles).
pub fn fmt_g17(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // 17 significant digits in scientific form tells us the exponent after
    // rounding, which decides between %e and %f style as C does.
    let sci = format!("{:.16e}", d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut v = Vec::new();
        r.encode(resp3, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn resp2_and_resp3() {
        assert_eq!(enc(&Reply::Ok, false), "+OK\r\n");
        assert_eq!(enc(&Reply::Int(-42), false), ":-42\r\n");
        assert_eq!(
            enc(&Reply::Int(i64::MIN), false),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(enc(&Reply::bulk(b"hi"), false), "$2\r\nhi\r\n");
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, false), "*-1\r\n");
        let m = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        assert_eq!(enc(&m, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), true), ",1.5\r\n");
        assert_eq!(
            enc(&Reply::HumanDouble(13.361389338970184), false),
            "$20\r\n13.36138933897018433\r\n"
        );
        assert_eq!(
            enc(&Reply::HumanDouble(13.361389338970184), true),
            ",13.36138933897018433\r\n"
        );
        assert_eq!(enc(&Reply::Bool(true), false), ":1\r\n");
        assert_eq!(enc(&Reply::Bool(false), true), "#f\r\n");
        assert_eq!(enc(&Reply::err("ERR a\r\nb"), false), "-ERR a  b\r\n");
    }

    #[test]
    fn big_bulks_are_shared_in_place_not_copied() {
        let big = Bytes::from(vec![b'x'; BIG_REPLY]);
        let small = Reply::bulk(&vec![b'y'; BIG_REPLY - 1]);
        let r = Reply::Array(vec![
            Reply::Bulk(big.clone()),
            small,
            Reply::Bulk(big.clone()),
        ]);
        let (mut out, mut bigs) = (Vec::new(), Vec::new());
        r.encode_split(false, &mut out, &mut bigs);
        assert_eq!(bigs.len(), 2);
        assert!(bigs.iter().all(|(_, b)| b.as_ptr() == big.as_ptr()));
        // Put back in place, the bytes are the ordinary encoding.
        let mut joined = Vec::new();
        let mut from = 0;
        for (at, b) in &bigs {
            joined.extend_from_slice(&out[from..*at]);
            joined.extend_from_slice(b);
            from = *at;
        }
        joined.extend_from_slice(&out[from..]);
        let mut plain = Vec::new();
        r.encode(false, &mut plain);
        assert_eq!(joined, plain);
    }

    #[test]
    fn g17_matches_c() {
        assert_eq!(fmt_g17(1.0), "1");
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(-2.25), "-2.25");
        assert_eq!(fmt_g17(1e17), "1e+17");
        assert_eq!(fmt_g17(123456789.0), "123456789");
        assert_eq!(fmt_g17(0.0001), "0.0001");
        assert_eq!(fmt_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(fmt_g17(f64::INFINITY), "inf");
        assert_eq!(fmt_g17(3.0e-300), "3.0000000000000002e-300");
    }
}
