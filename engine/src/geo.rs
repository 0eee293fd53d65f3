//! Redis 7.0's geohash maths (`geohash.c`, `geohash_helper.c`): a position
//! is a 52-bit interleaved geohash (26 steps of longitude and latitude over
//! Web Mercator's latitude range) stored as a sorted set score; searches
//! cover a shape with a box of the estimated step and its 8 neighbours and
//! filter by the haversine distance. Every operation is done in the same
//! order as Redis's C so results agree to the last bit (the libm functions
//! are the C library's, as Redis's are).

/// Latitude limits (EPSG:900913).
pub const LAT_MIN: f64 = -85.05112878;
/// See [`LAT_MIN`].
pub const LAT_MAX: f64 = 85.05112878;
/// Longitude limits.
pub const LONG_MIN: f64 = -180.0;
/// See [`LONG_MIN`].
pub const LONG_MAX: f64 = 180.0;
/// 26 steps: 52 bits.
pub const STEP_MAX: u8 = 26;

const D_R: f64 = std::f64::consts::PI / 180.0;
/// Earth's quadratic mean radius for WGS-84.
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A geohash of `step` steps (`2 * step` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashBits {
    /// The interleaved bits (latitude in the even ones).
    pub bits: u64,
    /// Steps.
    pub step: u8,
}

impl HashBits {
    /// Redis's `HASHISZERO`: a neighbour dropped from a search.
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The 52-bit score of this hash (`geohashAlign52Bits`).
    pub fn align52(&self) -> u64 {
        let shift = 52u32.saturating_sub(u32::from(self.step) * 2);
        self.bits << shift
    }
}

/// A closed range of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

/// The area a hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Area {
    /// Longitudes.
    pub longitude: Range,
    /// Latitudes.
    pub latitude: Range,
}

/// Redis's coordinate ranges.
pub const WGS84: (Range, Range) = (
    Range {
        min: LONG_MIN,
        max: LONG_MAX,
    },
    Range {
        min: LAT_MIN,
        max: LAT_MAX,
    },
);

/// Interleaves the low 32 bits of `x` (even bits) and `y` (odd bits).
fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(xlo);
    let mut y = u64::from(ylo);
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

/// The inverse of [`interleave64`]: even bits in the low half, odd bits in
/// the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode`: the hash of a position within the given ranges, or
/// `None` outside Redis's limits or the ranges (or a bad step).
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    let zero = |r: Range| r.min == 0.0 && r.max == 0.0;
    if step > 32 || step == 0 || zero(lat_r) || zero(lon_r) {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_offset = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    Some(HashBits {
        bits: interleave64(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// `geohashEncodeWGS84`.
pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    encode(WGS84.0, WGS84.1, lon, lat, step)
}

/// `geohashDecode`: the area `hash` covers.
pub fn decode(lon_r: Range, lat_r: Range, hash: HashBits) -> Option<Area> {
    let zero = |r: Range| r.min == 0.0 && r.max == 0.0;
    if hash.is_zero() || zero(lat_r) || zero(lon_r) {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    Some(Area {
        latitude: Range {
            min: lat_r.min + (f64::from(ilato) * 1.0 / div) * lat_scale,
            max: lat_r.min + (f64::from(ilato.wrapping_add(1)) * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: lon_r.min + (f64::from(ilono) * 1.0 / div) * lon_scale,
            max: lon_r.min + (f64::from(ilono.wrapping_add(1)) * 1.0 / div) * lon_scale,
        },
    })
}

/// The centre of a 52-bit hash, clamped to Redis's limits
/// (`geohashDecodeToLongLatWGS84`): `[longitude, latitude]`.
pub fn decode_to_lonlat(hash: HashBits) -> Option<[f64; 2]> {
    let a = decode(WGS84.0, WGS84.1, hash)?;
    let lon = ((a.longitude.min + a.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.latitude.min + a.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some([lon, lat])
}

/// C's `(uint64_t)d` as gcc compiles it on x86-64 (a score is any double;
/// Redis converts it without a check).
fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    if d < TWO63 {
        c_double_to_i64(d) as u64
    } else {
        (c_double_to_i64(d - TWO63) as u64) ^ (1 << 63)
    }
}

/// C's `(long long)d` on x86-64 (`cvttsd2si`: out of range or NaN gives
/// the "integer indefinite" value).
pub fn c_double_to_i64(d: f64) -> i64 {
    const TWO63: f64 = 9223372036854775808.0;
    if d.is_nan() || !(-TWO63..TWO63).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// The position a sorted set score stands for (Redis's `decodeGeohash`).
pub fn decode_score(score: f64) -> [f64; 2] {
    let hash = HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    // A hash of step 26 is never "zero", so this always decodes.
    decode_to_lonlat(hash).unwrap_or([0.0, 0.0])
}

/// The score of a valid position (GEOADD's).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|h| h.align52())
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let shift = 64 - u32::from(hash.step) * 2;
    let zz = 0x5555555555555555u64.checked_shr(shift).unwrap_or(0);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64.checked_shr(shift).unwrap_or(0);
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let shift = 64 - u32::from(hash.step) * 2;
    let zz = 0xaaaaaaaaaaaaaaaau64.checked_shr(shift).unwrap_or(0);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64.checked_shr(shift).unwrap_or(0);
    hash.bits = x | y;
}

/// A hash's 8 neighbours, in the order Redis searches them after the
/// hash itself: north, south, east, west, north-east, north-west,
/// south-east, south-west.
pub fn neighbors(hash: HashBits) -> [HashBits; 8] {
    const MOVES: [(i8, i8); 8] = [
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    MOVES.map(|(dx, dy)| {
        let mut h = hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    })
}

const NORTH: usize = 0;
const SOUTH: usize = 1;
const EAST: usize = 2;
const WEST: usize = 3;
const NORTH_EAST: usize = 4;
const NORTH_WEST: usize = 5;
const SOUTH_EAST: usize = 6;
const SOUTH_WEST: usize = 7;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// `geohashEstimateStepsByRadius`.
pub fn estimate_steps_by_radius(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// BYRADIUS: a radius in the unit.
    Circle(f64),
    /// BYBOX: width and height in the unit.
    Box(f64, f64),
}

/// A search shape: centre, meters per unit, and the shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// `[longitude, latitude]`.
    pub xy: [f64; 2],
    /// Meters per unit.
    pub conversion: f64,
    /// Radius or box.
    pub kind: Kind,
}

/// `geohashBoundingBox`: `[min lon, min lat, max lon, max lat]`.
fn bounding_box(s: &Shape) -> [f64; 4] {
    let [longitude, latitude] = s.xy;
    let (height, width) = match s.kind {
        Kind::Circle(r) => (s.conversion * r, s.conversion * r),
        Kind::Box(w, h) => (s.conversion * (h / 2.0), s.conversion * (w / 2.0)),
    };
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
    let delta = if latitude < 0.0 {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [
        longitude - delta,
        latitude - lat_delta,
        longitude + delta,
        latitude + lat_delta,
    ]
}

/// The boxes a search reads, in Redis's order: the centre's box, then its
/// neighbours (`geohashCalculateAreasByShapeWGS84`); a dropped neighbour
/// is a zero hash.
pub fn areas_by_shape(s: &Shape) -> [HashBits; 9] {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(s);
    let [longitude, latitude] = s.xy;
    let radius_meters = match s.kind {
        Kind::Circle(r) => r,
        Kind::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
    } * s.conversion;
    let (lon_r, lat_r) = WGS84;
    let mut steps = estimate_steps_by_radius(radius_meters, latitude);
    // The centre is always a valid position here; a zero hash otherwise.
    let at = |steps| encode(lon_r, lat_r, longitude, latitude, steps).unwrap_or_default();
    let area_of = |h| decode(lon_r, lat_r, h).unwrap_or_default();
    let mut hash = at(steps);
    let mut nb = neighbors(hash);
    let mut area = area_of(hash);
    let decrease = area_of(nb[NORTH]).latitude.max < max_lat
        || area_of(nb[SOUTH]).latitude.min > min_lat
        || area_of(nb[EAST]).longitude.max < max_lon
        || area_of(nb[WEST]).longitude.min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        hash = at(steps);
        nb = neighbors(hash);
        area = area_of(hash);
    }
    if steps >= 2 {
        let mut drop = |dirs: [usize; 3]| {
            for d in dirs {
                nb[d] = HashBits::default();
            }
        };
        if area.latitude.min < min_lat {
            drop([SOUTH, SOUTH_WEST, SOUTH_EAST]);
        }
        if area.latitude.max > max_lat {
            drop([NORTH, NORTH_EAST, NORTH_WEST]);
        }
        if area.longitude.min < min_lon {
            drop([WEST, SOUTH_WEST, NORTH_WEST]);
        }
        if area.longitude.max > max_lon {
            drop([EAST, SOUTH_EAST, NORTH_EAST]);
        }
    }
    let mut out = [hash; 9];
    out[1..].copy_from_slice(&nb);
    out
}

/// The scores `[min, max)` of the positions inside `hash`'s box.
pub fn score_range(hash: HashBits) -> (u64, u64) {
    let min = hash.align52();
    let next = HashBits {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    };
    (min, next.align52())
}

fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// The haversine distance in meters (`geohashGetDistance`).
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// The distance from the shape's centre to `xy` when `xy` is inside the
/// shape (`geoWithinShape`).
pub fn within(s: &Shape, xy: [f64; 2]) -> Option<f64> {
    let [x1, y1] = s.xy;
    let [x2, y2] = xy;
    match s.kind {
        Kind::Circle(r) => {
            // Out only when farther: a NaN distance (asin of a rounding
            // just above 1) is in, as in Redis.
            let d = distance(x1, y1, x2, y2);
            let farther = d.partial_cmp(&(r * s.conversion)) == Some(std::cmp::Ordering::Greater);
            (!farther).then_some(d)
        }
        Kind::Box(w, h) => {
            let (width_m, height_m) = (w * s.conversion, h * s.conversion);
            if lat_distance(y2, y1) > height_m / 2.0 {
                return None;
            }
            if distance(x2, y2, x1, y2) > width_m / 2.0 {
                return None;
            }
            Some(distance(x1, y1, x2, y2))
        }
    }
}

/// GEOHASH's 11 characters for a score: the position re-encoded over the
/// standard latitude range -90..90, the last character always `0`.
pub fn hash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let r = (
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
    );
    let bits = encode(r.0, r.1, lon, lat, 26).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// A distance with 4 decimals, rounded half to even as `llrint` rounds
/// (Redis's `addReplyDoubleDistance`).
pub fn fmt_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = c_double_to_i64((d * 10000.0).round_ties_even());
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// Redis's comparator of distances (`sort_gp_asc`): greater, equal, else
/// less, so a NaN is "less" than anything either way round.
pub fn cmp_dist(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a > b {
        Greater
    } else if a == b {
        Equal
    } else {
        Less
    }
}

/// glibc's `qsort` (a top-down merge sort, `msort_with_tmp`), which Redis
/// sorts whole results with: stable, and with a comparator that is not a
/// total order (NaN distances) it ends exactly where glibc's does.
pub fn merge_sort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> std::cmp::Ordering) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort(&mut v[..n1], cmp);
    merge_sort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) != std::cmp::Ordering::Greater {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    // What is left of the second half is already in place.
    let len = merged.len();
    v[..len].clone_from_slice(&merged);
}

/// Redis's `pqsort`: sorts `v` by `cmp` enough that the positions
/// `lrange..=rrange` hold what a full sort would put there (Bentley and
/// McIlroy's quicksort that skips parts outside the range). Not stable:
/// equal elements end where Redis's would.
pub fn pqsort<T>(
    v: &mut [T],
    lrange: usize,
    rrange: usize,
    cmp: &impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    pq(v, 0, v.len(), lrange, rrange, cmp);
}

fn med3<T>(
    v: &[T],
    a: usize,
    b: usize,
    c: usize,
    cmp: &impl Fn(&T, &T) -> std::cmp::Ordering,
) -> usize {
    use std::cmp::Ordering::*;
    if cmp(&v[a], &v[b]) == Less {
        if cmp(&v[b], &v[c]) == Less {
            b
        } else if cmp(&v[a], &v[c]) == Less {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) == Greater {
        b
    } else if cmp(&v[a], &v[c]) == Less {
        a
    } else {
        c
    }
}

/// `_pqsort` on `v[a..a + n]` (indices instead of byte pointers).
fn pq<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    l: usize,
    r: usize,
    cmp: &impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    use std::cmp::Ordering::*;
    // A part [s, s + len) is skipped when the range lies wholly outside it.
    let outside = |s: usize, len: usize| (l < s && r < s) || (l >= s + len && r >= s + len);
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&v[pl - 1], &v[pl]) == Greater {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // pc and pd may step below a; kept as signed positions.
        let (mut pc, mut pd) = ((a + n - 1) as isize, (a + n - 1) as isize);
        loop {
            while pb as isize <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c == Greater {
                    break;
                }
                if c == Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let c = cmp(&v[pc as usize], &v[a]);
                if c == Less {
                    break;
                }
                if c == Equal {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let vecswap = |v: &mut [T], x: usize, y: usize, k: usize| {
            for i in 0..k {
                v.swap(x + i, y + i);
            }
        };
        let k = (pa - a).min(pb - pa);
        vecswap(v, a, pb - k, k);
        let (pc, pd) = (pc as usize, pd as usize);
        let k = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - k, k);
        let left = pb - pa;
        if left > 1 && !outside(a, left) {
            pq(v, a, left, l, r, cmp);
        }
        let right = pd - pc;
        if right > 1 {
            a = pn - right;
            n = right;
            if !outside(a, n) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests;
