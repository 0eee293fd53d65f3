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

fn int_text(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
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
    let hdr = get(b, 0, 6)?;
    if le(&hdr[..4]) as usize != b.len() {
        return Err("listpack size mismatch".into());
    }
    let count = le(&hdr[4..6]) as usize;
    let mut out = Vec::with_capacity(count.min(b.len()));
    let mut at = 6;
    loop {
        let first = *get(b, at, 1)?.first().expect("one byte");
        if first == 0xFF {
            if at + 1 != b.len() {
                return Err("listpack has bytes after its end".into());
            }
            break;
        }
        let (elem, size) = match first {
            0x00..=0x7F => (int_text(first as i64), 1),
            0x80..=0xBF => {
                let n = (first & 0x3F) as usize;
                (get(b, at + 1, n)?.to_vec(), 1 + n)
            }
            0xC0..=0xDF => {
                let v = ((first as u64 & 0x1F) << 8) | get(b, at + 1, 1)?[0] as u64;
                (int_text(sign_extend(v, 13)), 2)
            }
            0xE0..=0xEF => {
                let n = ((first as usize & 0x0F) << 8) | get(b, at + 1, 1)?[0] as usize;
                (get(b, at + 2, n)?.to_vec(), 2 + n)
            }
            0xF0 => {
                let n = le(get(b, at + 1, 4)?) as usize;
                (get(b, at + 5, n)?.to_vec(), 5 + n)
            }
            0xF1..=0xF4 => {
                let bytes = [2usize, 3, 4, 8][(first - 0xF1) as usize];
                let v = le(get(b, at + 1, bytes)?);
                (int_text(sign_extend(v, bytes as u32 * 8)), 1 + bytes)
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
        get(b, at, size + back)?;
        at += size + back;
        out.push(elem);
    }
    if count != 0xFFFF && count != out.len() {
        return Err("listpack count mismatch".into());
    }
    Ok(out)
}

/// The elements of a ziplist (Redis before 7.0).
pub fn ziplist(b: &[u8]) -> Res<Vec<Vec<u8>>> {
    let hdr = get(b, 0, 10)?;
    if le(&hdr[..4]) as usize != b.len() {
        return Err("ziplist size mismatch".into());
    }
    let count = le(&hdr[8..10]) as usize;
    let mut out = Vec::with_capacity(count.min(b.len()));
    let mut at = 10;
    loop {
        let first = get(b, at, 1)?[0];
        if first == 0xFF {
            if at + 1 != b.len() {
                return Err("ziplist has bytes after its end".into());
            }
            break;
        }
        // The previous entry's length: 1 byte, or 0xFE and 4 bytes.
        at += if first == 0xFE { 5 } else { 1 };
        let enc = get(b, at, 1)?[0];
        let (elem, size) = match enc >> 6 {
            0 => {
                let n = (enc & 0x3F) as usize;
                (get(b, at + 1, n)?.to_vec(), 1 + n)
            }
            1 => {
                let n = ((enc as usize & 0x3F) << 8) | get(b, at + 1, 1)?[0] as usize;
                (get(b, at + 2, n)?.to_vec(), 2 + n)
            }
            2 => {
                let l = get(b, at + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (get(b, at + 5, n)?.to_vec(), 5 + n)
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
                (int_text(v), 1 + bytes)
            }
        };
        at += size;
        out.push(elem);
    }
    if count != 0xFFFF && count != out.len() {
        return Err("ziplist count mismatch".into());
    }
    Ok(out)
}

/// The members of an intset, in order.
pub fn intset(b: &[u8]) -> Res<Vec<i64>> {
    let hdr = get(b, 0, 8)?;
    let width = le(&hdr[..4]) as usize;
    let count = le(&hdr[4..8]) as usize;
    if ![2, 4, 8].contains(&width) {
        return Err(format!("intset with width {width}"));
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
    Ok(out)
}
