//! Redis's listpack, as stream nodes hold it: a 6-byte header (total
//! bytes, element count, little-endian), elements each encoded as an
//! integer or a string followed by their length backwards (so the list can
//! be walked from either end), and a 0xFF terminator. Stream nodes are
//! stored in exactly this form so that RDB files and DUMP payloads carry
//! them byte for byte as Redis does.
//!
//! The accessors assume a listpack that [`valid`] accepted (every one
//! slotd builds, and every one it loads); they never index past the
//! buffer even so, answering a zero element instead.

/// The header's size.
pub const HDR: usize = 6;
/// The terminator byte.
const EOF: u8 = 0xFF;
/// The element count meaning "unknown, walk to count".
const NUMELE_UNKNOWN: u16 = u16::MAX;

/// One element: an integer or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ele<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Ele<'_> {
    /// The element as bytes (integers in decimal, as Redis returns them).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Ele::Int(v) => v.to_string().into_bytes(),
            Ele::Str(s) => s.to_vec(),
        }
    }

    /// The element as an integer (strings that spell one; 0 otherwise).
    pub fn int(self) -> i64 {
        match self {
            Ele::Int(v) => v,
            Ele::Str(s) => str_to_i64(s).unwrap_or(0),
        }
    }

    /// True when the element's bytes are `s`.
    pub fn eq_bytes(self, s: &[u8]) -> bool {
        match self {
            Ele::Int(v) => str_to_i64(s) == Some(v),
            Ele::Str(b) => b == s,
        }
    }
}

/// An empty listpack.
pub fn new() -> Vec<u8> {
    let mut lp = Vec::with_capacity(64);
    lp.extend_from_slice(&[7, 0, 0, 0, 0, 0, EOF]);
    lp
}

/// `lpStringToInt64`: the integer a string spells exactly (no sign `+`,
/// no leading zeros, at most 20 bytes).
pub fn str_to_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let first = *digits.first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn put_backlen(out: &mut Vec<u8>, l: usize) {
    let n = backlen_size(l);
    for i in (0..n).rev() {
        let b = ((l >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { b } else { b | 128 });
    }
}

/// Appends the encoding of integer `v` with its back length.
pub fn enc_int(out: &mut Vec<u8>, v: i64) {
    let start = out.len();
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = if v < 0 { (1 << 13) + v } else { v } as u16;
        out.extend_from_slice(&[(u >> 8) as u8 | 0xC0, u as u8]);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xF1);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8388608..=8388607).contains(&v) {
        out.push(0xF2);
        out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(0xF3);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        out.push(0xF4);
        out.extend_from_slice(&v.to_le_bytes());
    }
    let l = out.len() - start;
    put_backlen(out, l);
}

/// Appends the encoding of `s` (as an integer when it spells one).
pub fn enc_str(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(v) = str_to_i64(s) {
        return enc_int(out, v);
    }
    let start = out.len();
    let n = s.len();
    if n < 64 {
        out.push(0x80 | n as u8);
    } else if n < 4096 {
        out.extend_from_slice(&[0xE0 | (n >> 8) as u8, n as u8]);
    } else {
        out.push(0xF0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
    let l = out.len() - start;
    put_backlen(out, l);
}

fn set_total(lp: &mut [u8], n: usize) {
    lp[..4].copy_from_slice(&(n as u32).to_le_bytes());
}

/// The element count of the header.
pub fn num_elements(lp: &[u8]) -> u16 {
    u16::from_le_bytes([lp[4], lp[5]])
}

fn bump_count(lp: &mut [u8]) {
    let n = num_elements(lp);
    if n != NUMELE_UNKNOWN {
        lp[4..6].copy_from_slice(&(n + 1).to_le_bytes());
    }
}

/// Appends encoded elements (from [`enc_int`] / [`enc_str`]), `count` of them.
pub fn append(lp: &mut Vec<u8>, encoded: &[u8], count: usize) {
    lp.pop();
    lp.extend_from_slice(encoded);
    lp.push(EOF);
    let n = lp.len();
    set_total(lp, n);
    for _ in 0..count {
        bump_count(lp);
    }
}

/// Length of the element at `p` without its back length (encoding and
/// data), if it is one that fits in `lp`.
fn ele_len(lp: &[u8], p: usize) -> Option<usize> {
    let b = *lp.get(p)?;
    let byte = |i: usize| lp.get(p + i).copied().map(|x| x as usize);
    let n = if b & 0x80 == 0 {
        1
    } else if b & 0xC0 == 0x80 {
        1 + (b & 0x3F) as usize
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        2 + (((b & 0x0F) as usize) << 8 | byte(1)?)
    } else {
        match b {
            0xF1 => 3,
            0xF2 => 4,
            0xF3 => 5,
            0xF4 => 9,
            0xF0 => 5 + (byte(1)? | byte(2)? << 8 | byte(3)? << 16 | byte(4)? << 24),
            _ => return None,
        }
    };
    (p + n <= lp.len()).then_some(n)
}

/// The position of the first element, if any.
pub fn first(lp: &[u8]) -> Option<usize> {
    (lp.get(HDR).is_some_and(|&b| b != EOF)).then_some(HDR)
}

/// The position of the element after the one at `p`, if any.
pub fn next(lp: &[u8], p: usize) -> Option<usize> {
    let l = ele_len(lp, p)?;
    let q = p + l + backlen_size(l);
    (lp.get(q).is_some_and(|&b| b != EOF)).then_some(q)
}

/// The start of the element that ends (back length included) just
/// before `end`, read from its back length.
fn ending_at(lp: &[u8], end: usize) -> Option<usize> {
    let mut q = end.checked_sub(1)?;
    let mut val = 0usize;
    let mut shift = 0;
    loop {
        let b = *lp.get(q)?;
        val |= ((b & 127) as usize) << shift;
        if b & 128 == 0 {
            break;
        }
        q = q.checked_sub(1)?;
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    q.checked_sub(val).filter(|&s| s >= HDR)
}

/// The position of the last element, if any.
pub fn last(lp: &[u8]) -> Option<usize> {
    first(lp)?;
    ending_at(lp, lp.len().checked_sub(1)?)
}

/// The position of the element before the one at `p`, if any.
pub fn prev(lp: &[u8], p: usize) -> Option<usize> {
    if p <= HDR {
        return None;
    }
    ending_at(lp, p)
}

/// The element at `p`.
pub fn get(lp: &[u8], p: usize) -> Ele<'_> {
    let Some(n) = ele_len(lp, p) else {
        return Ele::Int(0);
    };
    let e = &lp[p..p + n];
    let b = e[0];
    let uint = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64);
    if b & 0x80 == 0 {
        Ele::Int(b as i64)
    } else if b & 0xC0 == 0x80 {
        Ele::Str(&e[1..])
    } else if b & 0xE0 == 0xC0 {
        let u = ((b & 0x1F) as i64) << 8 | e[1] as i64;
        Ele::Int(if u >= 1 << 12 { u - (1 << 13) } else { u })
    } else if b & 0xF0 == 0xE0 {
        Ele::Str(&e[2..])
    } else {
        match b {
            0xF1 => Ele::Int(uint(&e[1..3]) as u16 as i16 as i64),
            0xF2 => {
                let u = uint(&e[1..4]) as i64;
                Ele::Int(if u >= 1 << 23 { u - (1 << 24) } else { u })
            }
            0xF3 => Ele::Int(uint(&e[1..5]) as u32 as i32 as i64),
            0xF4 => Ele::Int(uint(&e[1..9]) as i64),
            _ => Ele::Str(&e[5..]),
        }
    }
}

/// The integer at `p`.
pub fn get_int(lp: &[u8], p: usize) -> i64 {
    get(lp, p).int()
}

/// Replaces the element at `p` with integer `v` (`lpReplaceInteger`).
pub fn replace_int(lp: &mut Vec<u8>, p: usize, v: i64) {
    let Some(l) = ele_len(lp, p) else {
        return;
    };
    let old = l + backlen_size(l);
    let mut enc = Vec::with_capacity(11);
    enc_int(&mut enc, v);
    lp.splice(p..p + old, enc);
    let n = lp.len();
    set_total(lp, n);
}

/// Checks a listpack's framing (`lpValidateIntegrity` deep): the header's
/// size, every element within bounds with a matching back length, the
/// terminator, the count when known. Returns the element count.
pub fn valid(lp: &[u8]) -> Option<usize> {
    if lp.len() < HDR + 1 || u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize != lp.len() {
        return None;
    }
    if lp[lp.len() - 1] != EOF {
        return None;
    }
    let mut p = HDR;
    let mut count = 0usize;
    while lp[p] != EOF {
        let l = ele_len(lp, p)?;
        let bl = backlen_size(l);
        if p + l + bl >= lp.len() {
            return None;
        }
        let mut enc = Vec::with_capacity(5);
        put_backlen(&mut enc, l);
        if lp[p + l..p + l + bl] != enc[..] {
            return None;
        }
        p += l + bl;
        count += 1;
    }
    if p != lp.len() - 1 {
        return None;
    }
    let n = num_elements(lp);
    if n != NUMELE_UNKNOWN && n as usize != count {
        return None;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_round_trip() {
        let vals = [
            0i64,
            1,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            32767,
            -32768,
            40000,
            -8388608,
            8388607,
            8388608,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ];
        let mut lp = new();
        for v in vals {
            let mut e = Vec::new();
            enc_int(&mut e, v);
            append(&mut lp, &e, 1);
        }
        let long = vec![b'x'; 5000];
        let strs: [&[u8]; 5] = [b"", b"abc", &[b'y'; 100], &long, b"007"];
        for s in strs {
            let mut e = Vec::new();
            enc_str(&mut e, s);
            append(&mut lp, &e, 1);
        }
        assert_eq!(valid(&lp), Some(vals.len() + strs.len()));
        let mut p = first(&lp);
        for v in vals {
            assert_eq!(get(&lp, p.unwrap()), Ele::Int(v));
            p = next(&lp, p.unwrap());
        }
        for s in strs {
            assert_eq!(get(&lp, p.unwrap()), Ele::Str(s));
            p = next(&lp, p.unwrap());
        }
        assert_eq!(p, None);
        // And backwards.
        let mut p = last(&lp);
        for s in strs.iter().rev() {
            assert_eq!(get(&lp, p.unwrap()), Ele::Str(s));
            p = prev(&lp, p.unwrap());
        }
        for v in vals.iter().rev() {
            assert_eq!(get(&lp, p.unwrap()), Ele::Int(*v));
            p = prev(&lp, p.unwrap());
        }
        assert_eq!(p, None);
        // Replacing changes the width in place.
        replace_int(&mut lp, HDR, 100_000);
        assert_eq!(get(&lp, HDR), Ele::Int(100_000));
        assert!(valid(&lp).is_some());
    }

    #[test]
    fn string_to_int_is_strict() {
        assert_eq!(str_to_i64(b"12"), Some(12));
        assert_eq!(str_to_i64(b"-12"), Some(-12));
        for s in [
            &b"012"[..],
            b"+1",
            b"-",
            b"",
            b"1a",
            b"-0",
            b"99999999999999999999",
        ] {
            assert_eq!(str_to_i64(s), None, "{s:?}");
        }
        assert_eq!(str_to_i64(b"-9223372036854775808"), Some(i64::MIN));
    }
}
