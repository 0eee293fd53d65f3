//! HyperLogLog in Redis 7.0's representation, byte for byte (its
//! `hyperloglog.c`): a string of a 16-byte header (`HYLL`, the encoding,
//! three zero bytes, the cached cardinality in little endian with its top
//! bit marking it stale) and 16384 registers of 6 bits, either dense
//! (12288 bytes, the registers packed from the least significant bit) or
//! sparse (opcodes: `00xxxxxx` 1-64 zero registers, `01xxxxxx yyyyyyyy`
//! 1-16384 zero registers, `1vvvvvxx` 1-4 registers of value 1-32). A
//! sparse HLL turns dense when a register needs more than 32 or it would
//! grow past `hll-sparse-max-bytes`. The same algorithms as Redis's, so
//! PFADD leaves the same bytes, which DUMP/RESTORE, RDB files and
//! replication carry between slotd and redis-server as plain strings.
//! The cardinality is Redis 7.0's estimator (Otmar Ertl's improved raw
//! estimator, from the registers' histogram).
//!
//! Nothing here panics on any input: a corrupt HLL is an `Err(Invalid)`.

/// Registers (`HLL_REGISTERS`, 2^14).
pub const REGISTERS: usize = 1 << P;
/// Header bytes (`HLL_HDR_SIZE`).
pub const HDR: usize = 16;
/// A dense HLL's size (`HLL_DENSE_SIZE`).
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
/// `hll-sparse-max-bytes`'s default.
pub const SPARSE_MAX_BYTES: usize = 3000;

const P: usize = 14;
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u64 = (1 << BITS) - 1;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A corrupt HLL (Redis's `-INVALIDOBJ Corrupted HLL object detected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// The error a corrupt HLL answers.
pub const INVALID_ERR: &str = "INVALIDOBJ Corrupted HLL object detected";
/// The error for a string that is not an HLL.
pub const NOT_HLL_ERR: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// MurmurHash64A, as Redis's copy reads the key (little endian).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `ele` hashes to and the length of its `000..1` pattern
/// (`hllPatLen`).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty HLL, sparse (`createHLLObject`).
pub fn new_sparse() -> Vec<u8> {
    let mut s = vec![0u8; HDR];
    s[..4].copy_from_slice(b"HYLL");
    s[4] = SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(SPARSE_XZERO_MAX_LEN);
        put_xzero(&mut s, n);
        left -= n;
    }
    s
}

/// Whether a string holds an HLL (`isHLLObjectOrReply`).
pub fn is_hll(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == b"HYLL"
        && s[4] <= SPARSE
        && (s[4] != DENSE || s.len() == DENSE_SIZE)
}

/// Whether the HLL is sparse.
pub fn is_sparse(s: &[u8]) -> bool {
    s[4] == SPARSE
}

/// The cached cardinality, if valid.
pub fn cached(s: &[u8]) -> Option<u64> {
    let card = u64::from_le_bytes([s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]]);
    (s[15] & 0x80 == 0).then_some(card)
}

/// Records the cardinality in the header.
pub fn set_cached(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

/// Marks the cached cardinality stale (`HLL_INVALIDATE_CACHE`).
pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u64;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u64;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX) as u8
}

fn dense_put(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let fb8 = 8 - fb;
    let v = v as u64;
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((REGISTER_MAX << fb) as u8);
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((REGISTER_MAX >> fb8) as u8);
        *b |= (v >> fb8) as u8;
    }
}

/// `hllDenseSet`: raises register `i` to `count`; true when it changed.
fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
fn xzero_len(b: u8, b1: u8) -> usize {
    ((((b & 0x3f) as usize) << 8) | b1 as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}
fn val_op(value: u8, len: usize) -> u8 {
    (((value - 1) << 2) | (len as u8 - 1)) | 0x80
}
fn put_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(((l >> 8) as u8) | 0x40);
    out.push((l & 0xff) as u8);
}
fn put_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        put_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

/// The second byte of an XZERO at `p` (Redis reads the string's
/// terminating zero past the end).
fn byte_after(s: &[u8], p: usize) -> u8 {
    s.get(p + 1).copied().unwrap_or(0)
}

/// The sparse opcodes as (register value, run length), in order.
fn sparse_runs(s: &[u8]) -> impl Iterator<Item = (u8, usize)> + '_ {
    let mut p = HDR;
    std::iter::from_fn(move || {
        let b = *s.get(p)?;
        Some(if is_zero(b) {
            p += 1;
            (0, zero_len(b))
        } else if is_xzero(b) {
            let len = xzero_len(b, byte_after(s, p));
            p += 2;
            (0, len)
        } else {
            p += 1;
            (val_value(b), val_len(b))
        })
    })
}

/// `hllSparseToDense`: the same registers, dense (the header kept).
pub fn to_dense(s: &mut Vec<u8>) -> Result<(), Invalid> {
    if s[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&s[..HDR]);
    dense[4] = DENSE;
    let mut idx = 0;
    for (v, len) in sparse_runs(s) {
        if v > 0 {
            if idx + len > REGISTERS {
                break;
            }
            for i in idx..idx + len {
                dense_put(&mut dense[HDR..], i, v);
            }
        }
        idx += len;
    }
    if idx != REGISTERS {
        return Err(Invalid);
    }
    *s = dense;
    Ok(())
}

/// `hllSparseSet`: raises register `index` to `count`, rewriting the run
/// that holds it and merging equal neighbours, or turning the HLL dense.
/// True when the register changed.
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Invalid> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    let end = s.len();
    let (mut p, mut first, mut span) = (HDR, 0usize, 0usize);
    let mut prev = None;
    while p < end {
        let b = s[p];
        let (len, oplen) = if is_zero(b) {
            (zero_len(b), 1)
        } else if is_val(b) {
            (val_len(b), 1)
        } else {
            (xzero_len(b, byte_after(s, p)), 2)
        };
        span = len;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Invalid);
    }
    let b = s[p];
    let (zero, xzero) = (is_zero(b), is_xzero(b));
    let runlen = if zero {
        zero_len(b)
    } else if xzero {
        xzero_len(b, byte_after(s, p))
    } else {
        val_len(b)
    };
    let mut simple = false;
    if !zero && !xzero {
        if val_value(b) >= count {
            return Ok(false);
        }
        simple = runlen == 1;
    }
    if zero && runlen == 1 {
        simple = true;
    }
    if simple {
        s[p] = val_op(count, 1);
    } else {
        // The run becomes up to three: before, the register, after.
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        if zero || xzero {
            if index != first {
                put_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                put_zeros(&mut seq, last - index);
            }
        } else {
            let cur = val_value(b);
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        }
        let oldlen = if xzero { 2 } else { 1 };
        if seq.len() > oldlen && s.len() + seq.len() - oldlen > max_bytes {
            return promote(s, index, count);
        }
        s.splice(p..(p + oldlen).min(end), seq);
    }
    // Merge adjacent runs of one value, from the opcode before.
    let mut end = s.len();
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < end && scan > 0 {
        scan -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        }
        if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(s[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(s[p + 1]));
            let len = val_len(b) + val_len(s[p + 1]);
            if v1 == v2 && len <= SPARSE_VAL_MAX_LEN {
                s[p + 1] = val_op(v1, len);
                s.remove(p);
                end -= 1;
                continue;
            }
        }
        p += 1;
    }
    invalidate(s);
    Ok(true)
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Invalid> {
    to_dense(s)?;
    Ok(dense_set(&mut s[HDR..], index, count))
}

/// Raises register `index` to `count` in either encoding (what PFMERGE
/// does register by register).
pub fn set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Invalid> {
    match s[4] {
        DENSE => Ok(dense_set(&mut s[HDR..], index, count)),
        SPARSE => sparse_set(s, index, count, max_bytes),
        _ => Err(Invalid),
    }
}

/// `hllDenseAdd` on a dense HLL's bytes, in place: true when a register
/// changed.
pub fn add_dense(s: &mut [u8], ele: &[u8]) -> bool {
    let (index, count) = pattern(ele);
    dense_set(&mut s[HDR..], index, count)
}

/// `hllAdd`: true when a register changed (the cache is then stale in
/// the sparse case; the caller invalidates it for both).
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Invalid> {
    let (index, count) = pattern(ele);
    set(s, index, count, max_bytes)
}

/// `hllMerge`: raises `max` (one byte per register) to the HLL's.
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), Invalid> {
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(&s[HDR..], i));
        }
        return Ok(());
    }
    let mut i = 0;
    for (v, len) in sparse_runs(s) {
        if v > 0 {
            if i + len > REGISTERS {
                break;
            }
            for m in &mut max[i..i + len] {
                *m = (*m).max(v);
            }
        }
        i += len;
    }
    if i != REGISTERS {
        return Err(Invalid);
    }
    Ok(())
}

/// `hllSigma`.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

/// `hllTau`.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x).powf(2.0) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// The estimate from the registers' histogram (`hllCount`).
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The cardinality of an HLL (`Err` for a sparse one whose runs do not
/// cover the registers exactly).
pub fn count(s: &[u8]) -> Result<u64, Invalid> {
    let mut histo = [0u64; 64];
    if s[4] == DENSE {
        for i in 0..REGISTERS {
            histo[dense_get(&s[HDR..], i) as usize] += 1;
        }
    } else {
        let mut idx = 0;
        for (v, len) in sparse_runs(s) {
            idx += len;
            histo[v as usize] += len as u64;
        }
        if idx != REGISTERS {
            return Err(Invalid);
        }
    }
    Ok(estimate(&histo))
}

/// The cardinality of registers kept one per byte (PFCOUNT of several
/// keys).
pub fn count_registers(max: &[u8]) -> u64 {
    let mut histo = [0u64; 64];
    for &v in max {
        histo[(v & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// Every register's value (PFDEBUG GETREG of a dense HLL).
pub fn registers(s: &[u8]) -> Vec<u8> {
    (0..REGISTERS).map(|i| dense_get(&s[HDR..], i)).collect()
}

/// PFDEBUG DECODE's text of a sparse HLL.
pub fn decode(s: &[u8]) -> String {
    let mut out = Vec::new();
    let mut p = HDR;
    while let Some(&b) = s.get(p) {
        if is_zero(b) {
            out.push(format!("z:{}", zero_len(b)));
            p += 1;
        } else if is_xzero(b) {
            out.push(format!("Z:{}", xzero_len(b, byte_after(s, p))));
            p += 2;
        } else {
            out.push(format!("v:{},{}", val_value(b), val_len(b)));
            p += 1;
        }
    }
    out.join(" ")
}

/// PFSELFTEST: the dense register accessors against a byte per register,
/// then sparse and dense HLLs fed the same 10M elements, which must agree
/// and stay within Redis's error bound at each power of ten. `seed`
/// drives the random parts.
pub fn selftest(seed: u64, max_bytes: usize) -> Result<(), String> {
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (next() & REGISTER_MAX) as u8;
            *b = r;
            dense_put(&mut regs, i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let v = dense_get(&regs, i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    let mut dense = new_sparse();
    to_dense(&mut dense).map_err(|_| "TESTFAILED sparse to dense".to_string())?;
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let salt = next();
    for j in 1..=10_000_000u64 {
        let ele = (j ^ salt).to_le_bytes();
        let _ = add(&mut dense, &ele, max_bytes);
        let _ = add(&mut sparse, &ele, max_bytes);
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && !is_sparse(&sparse) {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let (cd, cs) = (count(&dense), count(&sparse));
        if cd != cs {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - cd.unwrap_or(0) as i64).unsigned_abs();
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
