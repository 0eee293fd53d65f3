//! Redis's `long double` arithmetic for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Redis parses both operands with `strtold`, adds them as `long double`
//! (the x87 80-bit extended format on x86-64) and prints the sum with
//! `%.17Lf` minus trailing zeros. Rust has no such type, and `f64` gives
//! different digits (`10.5 + 0.1 - 3 + 1e3` is `998.6` in `f64`, Redis says
//! `998.59999999999999998`), so the arithmetic is done by a tiny C file,
//! `csrc/ldouble.c`, calling the same C library functions Redis does. It
//! is pure computation: no I/O, no allocation.
//!
//! GEO uses the same file for the two C library calls its replies depend
//! on: a coordinate printed as a long double ([`human`]) and a float
//! argument read by `strtod` ([`string2d`]: hexadecimal forms, overflow
//! and underflow as Redis refuses them).

use std::os::raw::{c_char, c_int};

/// Redis's `MAX_LONG_DOUBLE_CHARS`: operands this long or longer are
/// refused, and formatted sums are at most this long.
pub const MAX_CHARS: usize = 5 * 1024;

const OK: c_int = 0;
const BAD_VALUE: c_int = 1;
const BAD_INCR: c_int = 2;

extern "C" {
    fn slotd_ld_check(s: *const c_char, len: usize, is_inf: *mut c_int) -> c_int;
    fn slotd_ld_incr(
        val: *const c_char,
        val_len: usize,
        incr: *const c_char,
        incr_len: usize,
        out: *mut c_char,
        out_cap: usize,
        out_len: *mut usize,
    ) -> c_int;
    fn slotd_ld_human(value: f64, out: *mut c_char, out_cap: usize) -> usize;
    fn slotd_string2d(s: *const c_char, len: usize, out: *mut f64) -> c_int;
}

/// Why an increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The current value is not a float (Redis's `string2ld` refused it).
    BadValue,
    /// The increment is not a float.
    BadIncr,
    /// The sum is NaN or infinite.
    NanOrInf,
}

/// What [`parse`] found in a valid operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Float {
    /// A finite number.
    Finite,
    /// `inf`, `-inf`, or a number too large for a `long double`.
    Infinite,
}

/// Checks `s` the way Redis's `string2ld` does: not empty, shorter than
/// [`MAX_CHARS`], no leading space, no trailing garbage, not NaN, no
/// underflow to zero. `None` when it is not a valid float.
pub fn parse(s: &[u8]) -> Option<Float> {
    let mut inf: c_int = 0;
    // SAFETY: the pointer and length describe `s`; the C side copies at
    // most `len` bytes (and refuses `len >= MAX_CHARS`) and writes `inf`.
    let ok = unsafe { slotd_ld_check(s.as_ptr().cast(), s.len(), &mut inf) };
    match (ok, inf) {
        (0, _) => None,
        (_, 0) => Some(Float::Finite),
        _ => Some(Float::Infinite),
    }
}

/// `value + incr` as Redis's INCRBYFLOAT computes and formats it; `None`
/// for a missing value (0). The value is checked before the increment.
pub fn incr(value: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, IncrError> {
    let mut out = [0u8; MAX_CHARS];
    let mut len = 0usize;
    let (vp, vl) = match value {
        Some(v) => (v.as_ptr().cast(), v.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: every pointer/length pair describes a live buffer (`vp` may
    // be null, which the C side takes as "missing"); the C side reads at
    // most the given lengths and writes at most `out.len()` bytes to `out`
    // and the length (<= out.len() - 1) to `len`.
    let rc = unsafe {
        slotd_ld_incr(
            vp,
            vl,
            incr.as_ptr().cast(),
            incr.len(),
            out.as_mut_ptr().cast(),
            out.len(),
            &mut len,
        )
    };
    match rc {
        OK => Ok(out[..len.min(out.len())].to_vec()),
        BAD_VALUE => Err(IncrError::BadValue),
        BAD_INCR => Err(IncrError::BadIncr),
        _ => Err(IncrError::NanOrInf),
    }
}

/// `d` as Redis's `addReplyHumanLongDouble` writes it (`%.17Lf` of the
/// value as a long double, without trailing zeros): GEOPOS's coordinates.
/// Values of 10^46 or more, which coordinates never are, give "".
pub fn human(d: f64) -> String {
    let mut out = [0u8; 64];
    // SAFETY: the C side writes at most `out.len()` bytes to `out` and
    // returns the length of the text before its NUL (0 when it did not fit).
    let len = unsafe { slotd_ld_human(d, out.as_mut_ptr().cast(), out.len()) };
    String::from_utf8_lossy(&out[..len.min(out.len())]).into_owned()
}

/// A double as Redis's `string2d` (`getDoubleFromObject`) reads it, with
/// the C library's `strtod` (hexadecimal and `inf` accepted; leading
/// space, trailing bytes, NaN, overflow and underflow to zero refused).
pub fn string2d(s: &[u8]) -> Option<f64> {
    // strtod stops at a NUL, so such a string is never all a number.
    if s.contains(&0) {
        return None;
    }
    let mut z = Vec::with_capacity(s.len() + 1);
    z.extend_from_slice(s);
    z.push(0);
    let mut v = 0.0f64;
    // SAFETY: `z` is NUL-terminated and `s.len()` bytes precede the NUL;
    // the C side reads up to the NUL and writes `v`.
    let ok = unsafe { slotd_string2d(z.as_ptr().cast(), s.len(), &mut v) };
    (ok != 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(v: Option<&str>, by: &str) -> Result<String, IncrError> {
        incr(v.map(str::as_bytes), by.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    /// Applies increments in sequence from a missing value.
    fn chain(steps: &[&str]) -> String {
        let mut cur: Option<String> = None;
        for by in steps {
            cur = Some(add(cur.as_deref(), by).unwrap());
        }
        cur.unwrap()
    }

    // Expected values checked against redis-server 7.0.15.
    #[test]
    fn long_double_results() {
        assert_eq!(
            chain(&["10.5", "0.1", "-3", "1e3"]),
            "1007.59999999999999998"
        );
        assert_eq!(chain(&["1.5", "0.1", "-3", "1e3"]), "998.59999999999999998");
        assert_eq!(chain(&["0.1", "0.2"]), "0.3");
        assert_eq!(chain(&["1.1", "2.2"]), "3.3");
        assert_eq!(add(Some("10.50"), "0.1").unwrap(), "10.6");
        assert_eq!(add(Some("5.0e3"), "2.0e2").unwrap(), "5200");
        assert_eq!(add(None, "3.0000000000000000001").unwrap(), "3");
        assert_eq!(
            add(Some("9223372036854775807"), "1").unwrap(),
            "9223372036854775808"
        );
        assert_eq!(add(None, "0x10").unwrap(), "16");
        assert_eq!(add(None, "0x1p3").unwrap(), "8");
        assert_eq!(add(Some("-0.0"), "0").unwrap(), "0");
        assert_eq!(add(None, "-0.0").unwrap(), "0");
        assert_eq!(chain(&["1e-20", "-1e-20"]), "0");
        assert_eq!(add(None, "1e-20").unwrap(), "0");
        assert_eq!(add(None, "1e-4940").unwrap(), "0");
        assert_eq!(
            add(None, "1e300").unwrap(),
            "1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144"
        );
        // The largest long doubles still format (about 4933 digits).
        let big = add(None, "1e4932").unwrap();
        assert_eq!(big.len(), 4933);
        assert!(big.starts_with("10000000000000000000060189493879638913238"));
        // The NUL ends the number, as C's strtold sees it.
        assert_eq!(incr(Some(b"1\0abc"), b"1").unwrap(), b"2");
    }

    #[test]
    fn human_doubles() {
        assert_eq!(human(13.361389338970184), "13.36138933897018433");
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(180.0), "180");
        assert_eq!(human(1.5), "1.5");
        assert_eq!(human(1e50), "");
    }

    #[test]
    fn string2d_like_redis() {
        assert_eq!(string2d(b"1.5"), Some(1.5));
        assert_eq!(string2d(b"-0x10"), Some(-16.0));
        assert_eq!(string2d(b"inf"), Some(f64::INFINITY));
        assert_eq!(string2d(b"1e-310"), Some(1e-310));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"1\x00",
            b"x",
        ] {
            assert_eq!(string2d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "", " 1", "1 ", "abc", "1.5e", "nan", "-nan", "1e-5000", "1,5",
        ] {
            assert_eq!(add(None, bad), Err(IncrError::BadIncr), "{bad:?}");
            assert_eq!(add(Some(bad), "1"), Err(IncrError::BadValue), "{bad:?}");
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        // The value is checked first.
        assert_eq!(add(Some("x"), "y"), Err(IncrError::BadValue));
        // Operands of MAX_CHARS bytes or more are refused.
        let long = format!("{}1", "0".repeat(MAX_CHARS - 1));
        assert_eq!(add(None, &long), Err(IncrError::BadIncr));
        assert_eq!(add(None, &long[1..]).as_deref(), Ok("1"));
        // Overflow is refused like garbage; only a literal infinity parses.
        assert_eq!(add(None, "1e5000"), Err(IncrError::BadIncr));
        assert_eq!(parse(b"1e5000"), None);
        for inf in ["inf", "-infinity", "+INF"] {
            assert_eq!(add(None, inf), Err(IncrError::NanOrInf), "{inf}");
            assert_eq!(parse(inf.as_bytes()), Some(Float::Infinite), "{inf}");
        }
        assert_eq!(add(Some("inf"), "-inf"), Err(IncrError::NanOrInf));
        assert_eq!(add(Some("1e4932"), "1e4932"), Err(IncrError::NanOrInf));
        assert_eq!(parse(b"1.5"), Some(Float::Finite));
        assert_eq!(parse(b"1e-4940"), Some(Float::Finite));
    }
}
