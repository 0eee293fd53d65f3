use super::*;

#[test]
fn interleave_round_trips() {
    for (x, y) in [
        (0u32, 0u32),
        (1, 0),
        (0, 1),
        (0x3ff_ffff, 0x155_5555),
        (u32::MAX, 7),
    ] {
        let i = interleave64(x, y);
        assert_eq!(deinterleave64(i), u64::from(x) | (u64::from(y) << 32));
    }
    assert_eq!(interleave64(1, 0), 1);
    assert_eq!(interleave64(0, 1), 2);
}

// Scores, positions and hashes below are redis-server 7.0.15's.
#[test]
fn encode_and_decode_like_redis() {
    // GEOADD Sicily 13.361389 38.115556 "Palermo" 15.087269 37.502669 "Catania"
    assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
    assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
    let [lon, lat] = decode_score(3479099956230698.0);
    assert_eq!(crate::ldouble::human(lon), "13.36138933897018433");
    assert_eq!(crate::ldouble::human(lat), "38.11555639549629859");
    assert_eq!(&hash_string(3479099956230698.0), b"sqc8b49rny0");
    assert_eq!(&hash_string(3479447370796909.0), b"sqdtr74hyu0");
    // Out of Redis's limits nothing encodes.
    assert_eq!(score_of(180.1, 0.0), None);
    assert_eq!(score_of(0.0, 85.06), None);
    assert!(score_of(-180.0, -85.05112878).is_some());
    assert!(score_of(180.0, 85.05112878).is_some());
}

#[test]
fn distances_like_redis() {
    let [x1, y1] = decode_score(3479099956230698.0);
    let [x2, y2] = decode_score(3479447370796909.0);
    assert_eq!(fmt_distance(distance(x1, y1, x2, y2)), "166274.1516");
    assert_eq!(fmt_distance(distance(x1, y1, x2, y2) / 1000.0), "166.2742");
    assert_eq!(fmt_distance(0.0), "0.0000");
    assert_eq!(fmt_distance(0.00004), "0.0000");
    assert_eq!(fmt_distance(0.00005), "0.0000");
    // llrint rounds half to even: 312.5 and 937.5 exactly.
    assert_eq!(fmt_distance(0.03125), "0.0312");
    assert_eq!(fmt_distance(0.09375), "0.0938");
    assert_eq!(fmt_distance(12.5), "12.5000");
}

#[test]
fn neighbours_move_one_box() {
    let h = encode_wgs84(13.361389, 38.115556, 10).unwrap();
    let area = |h| decode(WGS84.0, WGS84.1, h).unwrap();
    let a = area(h);
    let n = neighbors(h);
    let eps = 1e-9;
    assert!((area(n[NORTH]).latitude.min - a.latitude.max).abs() < eps);
    assert!((area(n[SOUTH]).latitude.max - a.latitude.min).abs() < eps);
    assert!((area(n[EAST]).longitude.min - a.longitude.max).abs() < eps);
    assert!((area(n[WEST]).longitude.max - a.longitude.min).abs() < eps);
    assert_eq!(area(n[NORTH_EAST]).latitude, area(n[NORTH]).latitude);
    assert_eq!(area(n[NORTH_EAST]).longitude, area(n[EAST]).longitude);
    assert_eq!(area(n[SOUTH_WEST]).latitude, area(n[SOUTH]).latitude);
    assert_eq!(area(n[SOUTH_WEST]).longitude, area(n[WEST]).longitude);
    assert_eq!(area(n[NORTH_WEST]).longitude, area(n[WEST]).longitude);
    assert_eq!(area(n[SOUTH_EAST]).longitude, area(n[EAST]).longitude);
    // The east neighbour of the last column wraps to the first.
    let edge = encode_wgs84(179.99, 0.0, 4).unwrap();
    assert_eq!(area(neighbors(edge)[EAST]).longitude.min, -180.0);
}

#[test]
fn any_score_decodes_without_panicking() {
    for s in [
        -1.0,
        -1e300,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.5,
        (1u64 << 52) as f64,
        (1u64 << 63) as f64,
        1.8e19,
        4e19,
    ] {
        let [lon, lat] = decode_score(s);
        assert!((LONG_MIN..=LONG_MAX).contains(&lon), "{s}");
        assert!((LAT_MIN..=LAT_MAX).contains(&lat), "{s}");
        hash_string(s);
    }
    assert_eq!(c_double_to_i64(1e30), i64::MIN);
    assert_eq!(c_double_to_i64(-1.9), -1);
    assert_eq!(c_double_to_u64(-1.0), u64::MAX);
    assert_eq!(c_double_to_u64(1e20), 0);
    assert_eq!(c_double_to_u64(1.5e19), 15000000000000000000);
}

#[test]
fn steps_by_radius() {
    assert_eq!(estimate_steps_by_radius(0.0, 0.0), 26);
    assert_eq!(estimate_steps_by_radius(1000.0, 0.0), 14);
    assert_eq!(estimate_steps_by_radius(1000.0, 70.0), 13);
    assert_eq!(estimate_steps_by_radius(1000.0, -85.0), 12);
    assert_eq!(estimate_steps_by_radius(1e9, 0.0), 1);
}

#[test]
fn pqsort_puts_the_range_in_place() {
    let mut seed = 12345u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in [1usize, 2, 6, 7, 8, 40, 41, 100, 1000] {
        for k in [1usize, 3, 10, 500] {
            let k = k.min(n);
            let v: Vec<u64> = (0..n).map(|_| rnd() % 50).collect();
            let mut sorted = v.clone();
            sorted.sort();
            let mut p = v.clone();
            pqsort(&mut p, 0, k - 1, &|a: &u64, b: &u64| a.cmp(b));
            assert_eq!(p[..k], sorted[..k], "n={n} k={k}");
            let mut all = v.clone();
            pqsort(&mut all, 0, n - 1, &|a: &u64, b: &u64| a.cmp(b));
            assert_eq!(all, sorted);
        }
    }
}

#[test]
fn merge_sort_is_glibcs() {
    let mut seed = 99u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in [0usize, 1, 2, 3, 5, 17, 64, 333] {
        let v: Vec<(u64, usize)> = (0..n).map(|i| (rnd() % 10, i)).collect();
        let mut stable = v.clone();
        stable.sort_by_key(|p| p.0);
        let mut m = v.clone();
        merge_sort(&mut m, &|a: &(u64, usize), b: &(u64, usize)| a.0.cmp(&b.0));
        assert_eq!(m, stable, "n={n}");
    }
    // NaN is "less" either way round, as in Redis's comparator.
    assert_eq!(cmp_dist(f64::NAN, 1.0), std::cmp::Ordering::Less);
    assert_eq!(cmp_dist(1.0, f64::NAN), std::cmp::Ordering::Less);
    // What glibc 2.36's qsort made of these with Redis's comparator.
    let d = [
        3.0,
        f64::NAN,
        1.0,
        2.0,
        5.0,
        f64::NAN,
        0.0,
        4.0,
        4.0,
        f64::NAN,
        7.0,
    ];
    let mut v: Vec<(f64, usize)> = d.iter().copied().zip(0..).collect();
    merge_sort(&mut v, &|a: &(f64, usize), b: &(f64, usize)| {
        cmp_dist(a.0, b.0)
    });
    let order: Vec<usize> = v.iter().map(|p| p.1).collect();
    assert_eq!(order, [2, 3, 0, 1, 4, 5, 6, 7, 8, 9, 10]);
}
