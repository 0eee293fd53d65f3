//! Decoding the packed blobs Redis stores in RDB strings: listpacks,
//! ziplists, intsets and zipmaps. Each element comes out as bytes
//! (integers in decimal, as Redis returns them). Every read is bounds
//! checked: a damaged blob is an error naming what was wrong.

type Res<T> = Result<T, String>;

fn get(b: &[u8], at: usize, n: usize) -> Res<&[u8]> {
    at.checked_add(n)
        .and_then(|end| b.get(at..end))
        .ok_or_else(|| "blob ends early".to_string())
}

/// Calls `f` with `n` as decimal text, from a buffer on the stack.
fn with_int<R>(n: i64, f: impl FnOnce(&[u8]) -> R) -> R {
    use std::io::Write;
    let mut buf = [0u8; 24];
    let mut w = &mut buf[..];
    let _ = write!(w, "{n}");
    let len = 24 - w.len();
    f(&buf[..len])
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| acc << 8 | x as u64)
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// The elements of a listpack.
pub fn listpack(b: &[u8]) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    listpack_each(b, |e| out.push(e.to_vec()))?;
    Ok(out)
}

/// Calls `f` with each element of a listpack, checked as Redis's
/// `lpValidateIntegrity` does deeply: its size, each entry's encoding and
/// back-length, its end, its count. Nothing is collected: a listpack of
/// millions of small entries decodes in its own size.
pub fn listpack_each(b: &[u8], mut f: impl FnMut(&[u8])) -> Res<()> {
    let hdr = get(b, 0, 6)?;
    if le(&hdr[..4]) as usize != b.len() {
        return Err("listpack size mismatch".into());
    }
    let count = le(&hdr[4..6]) as usize;
    let mut seen = 0usize;
    let mut at = 6;
    loop {
        let first = get(b, at, 1)?[0];
        if first == 0xFF {
            if at + 1 != b.len() {
                return Err("listpack has bytes after its end".into());
            }
            break;
        }
        let size = match first {
            0x00..=0x7F => {
                with_int(first as i64, &mut f);
                1
            }
            0x80..=0xBF => {
                let n = (first & 0x3F) as usize;
                f(get(b, at + 1, n)?);
                1 + n
            }
            0xC0..=0xDF => {
                let v = ((first as u64 & 0x1F) << 8) | get(b, at + 1, 1)?[0] as u64;
                with_int(sign_extend(v, 13), &mut f);
                2
            }
            0xE0..=0xEF => {
                let n = ((first as usize & 0x0F) << 8) | get(b, at + 1, 1)?[0] as usize;
                f(get(b, at + 2, n)?);
                2 + n
            }
            0xF0 => {
                let n = le(get(b, at + 1, 4)?) as usize;
                f(get(b, at + 5, n)?);
                5 + n
            }
            0xF1..=0xF4 => {
                let bytes = [2usize, 3, 4, 8][(first - 0xF1) as usize];
                let v = le(get(b, at + 1, bytes)?);
                with_int(sign_extend(v, bytes as u32 * 8), &mut f);
                1 + bytes
            }
            _ => return Err(format!("listpack entry with unknown encoding {first:#x}")),
        };
        let back = match size {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        // The back-length, read from its last byte leftwards, 7 bits a
        // byte, the high bit set on every byte but the leftmost.
        let bl = get(b, at + size, back)?;
        let (mut v, mut shift) = (0u64, 0);
        for (i, &x) in bl.iter().rev().enumerate() {
            v |= ((x & 127) as u64) << shift;
            shift += 7;
            if (x & 128 != 0) != (i + 1 < back) {
                return Err("listpack entry with a bad back-length".into());
            }
        }
        if v != size as u64 {
            return Err("listpack entry with a bad back-length".into());
        }
        at += size + back;
        seen += 1;
    }
    if count != 0xFFFF && count != seen {
        return Err("listpack count mismatch".into());
    }
    Ok(())
}

/// The elements of a ziplist (Redis before 7.0).
pub fn ziplist(b: &[u8]) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    ziplist_each(b, |e| out.push(e.to_vec()))?;
    Ok(out)
}

/// Calls `f` with each element of a ziplist, checked as Redis's
/// `ziplistValidateIntegrity` does (always deeply, for ziplists): its
/// size, each entry's encoding and its `prevlen` (the entry before's
/// size, 0 for the first), the tail offset (the last entry's), its end,
/// its count.
pub fn ziplist_each(b: &[u8], mut f: impl FnMut(&[u8])) -> Res<()> {
    let hdr = get(b, 0, 10)?;
    if le(&hdr[..4]) as usize != b.len() {
        return Err("ziplist size mismatch".into());
    }
    let tail = le(&hdr[4..8]) as usize;
    let count = le(&hdr[8..10]) as usize;
    let (mut seen, mut prev_size, mut last) = (0usize, 0usize, 10usize);
    let mut at = 10;
    loop {
        let first = get(b, at, 1)?[0];
        if first == 0xFF {
            if at + 1 != b.len() {
                return Err("ziplist has bytes after its end".into());
            }
            break;
        }
        let start = at;
        // The previous entry's length: 1 byte, or 0xFE and 4 bytes.
        let prevlen = if first == 0xFE {
            le(get(b, at + 1, 4)?) as usize
        } else {
            first as usize
        };
        if prevlen != prev_size {
            return Err("ziplist entry with a bad prevlen".into());
        }
        at += if first == 0xFE { 5 } else { 1 };
        let enc = get(b, at, 1)?[0];
        let size = match enc >> 6 {
            0 => {
                let n = (enc & 0x3F) as usize;
                f(get(b, at + 1, n)?);
                1 + n
            }
            1 => {
                let n = ((enc as usize & 0x3F) << 8) | get(b, at + 1, 1)?[0] as usize;
                f(get(b, at + 2, n)?);
                2 + n
            }
            2 => {
                let l = get(b, at + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                f(get(b, at + 5, n)?);
                5 + n
            }
            _ => {
                let (bytes, bits) = match enc {
                    0xC0 => (2, 16),
                    0xD0 => (4, 32),
                    0xE0 => (8, 64),
                    0xF0 => (3, 24),
                    0xFE => (1, 8),
                    0xF1..=0xFD => (0, 0),
                    _ => return Err(format!("ziplist entry with unknown encoding {enc:#x}")),
                };
                let v = if bytes == 0 {
                    (enc & 0x0F) as i64 - 1
                } else {
                    sign_extend(le(get(b, at + 1, bytes)?), bits)
                };
                with_int(v, &mut f);
                1 + bytes
            }
        };
        at += size;
        prev_size = at - start;
        last = start;
        seen += 1;
    }
    if seen > 0 && tail != last {
        return Err("ziplist tail offset mismatch".into());
    }
    if count != 0xFFFF && count != seen {
        return Err("ziplist count mismatch".into());
    }
    Ok(())
}

/// The members of an intset, in order.
pub fn intset(b: &[u8]) -> Res<Vec<i64>> {
    let hdr = get(b, 0, 8)?;
    let width = le(&hdr[..4]) as usize;
    let count = le(&hdr[4..8]) as usize;
    if ![2, 4, 8].contains(&width) {
        return Err(format!("intset with width {width}"));
    }
    if count == 0 {
        // Redis's `intsetValidateIntegrity` refuses it: never written.
        return Err("intset is empty".into());
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(b.len()) {
        return Err("intset size mismatch".into());
    }
    let vals: Vec<i64> = b[8..]
        .chunks_exact(width)
        .map(|c| sign_extend(le(c), width as u32 * 8))
        .collect();
    if vals.windows(2).any(|w| w[0] >= w[1]) {
        return Err("intset out of order".into());
    }
    Ok(vals)
}

/// The fields and values of a zipmap (Redis before 2.6), flattened.
pub fn zipmap(b: &[u8]) -> Res<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut at = 1;
    let len_at = |at: usize| -> Res<(usize, usize)> {
        match get(b, at, 1)?[0] {
            n @ 0..=253 => Ok((n as usize, 1)),
            254 => Ok((le(get(b, at + 1, 4)?) as usize, 5)),
            _ => Err("zipmap length expected".into()),
        }
    };
    loop {
        if get(b, at, 1)?[0] == 0xFF {
            break;
        }
        let (klen, n) = len_at(at)?;
        at += n;
        out.push(get(b, at, klen)?.to_vec());
        at += klen;
        let (vlen, n) = len_at(at)?;
        at += n;
        let free = get(b, at, 1)?[0] as usize;
        at += 1;
        out.push(get(b, at, vlen)?.to_vec());
        at += vlen + free;
    }
    // As Redis's `zipmapValidateIntegrity`: the end marker ends the blob,
    // and the count (when below 254, the "unknown" mark) is the pairs'.
    if at + 1 != b.len() {
        return Err("zipmap has bytes after its end".into());
    }
    let pairs = out.len() / 2;
    if pairs == 0 || (b[0] < 254 && b[0] as usize != pairs) {
        return Err("zipmap count mismatch".into());
    }
    Ok(out)
}
