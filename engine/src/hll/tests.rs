use super::*;

#[test]
fn an_empty_hll_is_redis_s_bytes() {
    let h = new_sparse();
    assert_eq!(
        h,
        [&b"HYLL"[..], &[1, 0, 0, 0], &[0; 8], &[0x7f, 0xff]].concat()
    );
    assert!(is_hll(&h) && is_sparse(&h));
    assert_eq!(count(&h), Ok(0));
    assert_eq!(cached(&h), Some(0));
    assert_eq!(decode(&h), "Z:16384");
}

#[test]
fn dense_registers_round_trip_at_every_position() {
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    for i in 0..REGISTERS {
        dense_put(&mut regs, i, (i % 64) as u8);
    }
    for i in 0..REGISTERS {
        assert_eq!(dense_get(&regs, i), (i % 64) as u8, "register {i}");
    }
}

/// The same elements in a sparse and a dense HLL give the same registers
/// and count; the sparse one stays sparse while small, and turns dense
/// past `max_bytes` or a register above 32; adding again changes nothing.
#[test]
fn sparse_and_dense_agree() {
    let mut sparse = new_sparse();
    let mut dense = new_sparse();
    to_dense(&mut dense).unwrap();
    for j in 0..20_000u32 {
        let e = format!("element:{j}");
        let a = add(&mut sparse, e.as_bytes(), SPARSE_MAX_BYTES).unwrap();
        let b = add(&mut dense, e.as_bytes(), SPARSE_MAX_BYTES).unwrap();
        assert_eq!(a, b, "{j}");
        assert!(!add(&mut sparse, e.as_bytes(), SPARSE_MAX_BYTES).unwrap());
        if j == 100 {
            assert!(is_sparse(&sparse));
            let mut copy = sparse.clone();
            to_dense(&mut copy).unwrap();
            assert_eq!(registers(&copy), registers(&dense));
            assert_eq!(count(&sparse), count(&dense));
        }
    }
    assert!(!is_sparse(&sparse));
    assert_eq!(sparse[HDR..], dense[HDR..]);
    let n = count(&dense).unwrap() as f64;
    assert!((n - 20_000.0).abs() < 20_000.0 * 0.03, "{n}");
    let mut max = vec![0u8; REGISTERS];
    merge_into(&mut max, &dense).unwrap();
    assert_eq!(count_registers(&max), count(&dense).unwrap());
}

/// Whatever the bytes after a valid header, nothing panics: a sparse body
/// that does not cover the registers is `Invalid`.
#[test]
fn corrupt_hlls_are_errors_never_panics() {
    let mut seed = 7u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000 {
        let mut h = new_sparse();
        h.truncate(HDR);
        for _ in 0..(rnd() % 40) {
            h.push(rnd() as u8);
        }
        if round % 2 == 1 {
            h = vec![0u8; DENSE_SIZE];
            h[..4].copy_from_slice(b"HYLL");
            for b in &mut h[HDR..] {
                *b = rnd() as u8;
            }
        }
        let _ = count(&h);
        let mut max = vec![0u8; REGISTERS];
        let _ = merge_into(&mut max, &h);
        let _ = decode(&h);
        let mut c = h.clone();
        let _ = to_dense(&mut c);
        let mut c = h.clone();
        for j in 0..20u32 {
            let _ = add(&mut c, &j.to_le_bytes(), 60);
        }
    }
    let mut short = new_sparse();
    short.pop();
    assert_eq!(count(&short), Err(Invalid));
}

#[test]
fn selftest_passes() {
    assert_eq!(selftest(12345, SPARSE_MAX_BYTES), Ok(()));
}
