//! Differential tests: the GEO commands, slotd vs redis-server 7.0: replies
//! to the digit (positions, distances, hashes), errors byte for byte, search
//! order (ties included), the sorted sets STORE and STOREDIST leave, in
//! RESP2 and RESP3, and on 2 cores where STORE's keys are on different
//! cores.
use rand::{Rng, SeedableRng};
use tests::assert_same_with;

fn run(slotd_args: &[&str], cmds: &[Vec<String>]) {
    let owned: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(|s| s.as_str()).collect())
        .collect();
    let refs: Vec<&[&str]> = owned.iter().map(|c| c.as_slice()).collect();
    assert_same_with(slotd_args, &refs);
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The Sicily example, every reading command, and the stored results.
#[rustfmt::skip]
fn basics() -> Vec<Vec<String>> {
    [
        &["GEOADD", "Sicily", "13.361389", "38.115556", "Palermo"][..],
        &["GEOADD", "Sicily", "15.087269", "37.502669", "Catania"],
        &["GEOADD", "Sicily", "13.361389", "38.115556", "Palermo"],
        &["ZRANGE", "Sicily", "0", "-1", "WITHSCORES"],
        &["GEODIST", "Sicily", "Palermo", "Catania"],
        &["GEODIST", "Sicily", "Palermo", "Catania", "km"],
        &["GEODIST", "Sicily", "Palermo", "Catania", "MI"],
        &["GEODIST", "Sicily", "Palermo", "Catania", "ft"],
        &["GEODIST", "Sicily", "Palermo", "Palermo"],
        &["GEODIST", "Sicily", "Palermo", "nosuch"],
        &["GEODIST", "nokey", "a", "b"],
        &["GEOPOS", "Sicily", "Palermo", "nosuch", "Catania"],
        &["GEOPOS", "nokey", "a", "b"],
        &["GEOPOS", "Sicily"],
        &["GEOHASH", "Sicily", "Palermo", "Catania", "nosuch"],
        &["GEOHASH", "nokey", "a"],
        &["GEOHASH", "Sicily"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHCOORD", "WITHHASH", "WITHDIST", "DESC"],
        &["GEORADIUS", "Sicily", "15", "37", "100", "km", "WITHCOORD"],
        &["GEORADIUS", "Sicily", "15", "37", "1", "m"],
        &["GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "ASC", "COUNT", "1"],
        &["GEORADIUSBYMEMBER", "Sicily", "Palermo", "200", "km", "WITHDIST"],
        &["GEORADIUSBYMEMBER_RO", "Sicily", "Catania", "500", "km", "withdist", "withhash", "desc"],
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"],
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "ASC", "WITHCOORD", "WITHDIST", "WITHHASH"],
        &["GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km", "DESC", "WITHDIST"],
        &["GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYRADIUS", "0", "km", "WITHDIST"],
        &["GEOSEARCH", "Sicily", "BYRADIUS", "500", "km", "FROMMEMBER", "Catania", "COUNT", "1", "ANY"],
        &["GEOSEARCH", "nokey", "FROMMEMBER", "x", "BYRADIUS", "1", "km"],
        &["GEOSEARCHSTORE", "{g}d", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"],
        &["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
        &["GEOSEARCHSTORE", "{g}d", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "STOREDIST", "DESC", "COUNT", "1"],
        &["ZRANGE", "{g}d", "0", "-1", "WITHSCORES"],
        &["OBJECT", "ENCODING", "{g}d"],
        &["GEOSEARCHSTORE", "{g}d", "Sicily", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m"],
        &["EXISTS", "{g}d"],
        &["SET", "{g}d", "string"],
        &["GEOSEARCHSTORE", "{g}d", "nokey", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m"],
        &["EXISTS", "{g}d"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "{g}r"],
        &["ZRANGE", "{g}r", "0", "-1", "WITHSCORES"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "STOREDIST", "{g}r", "ASC"],
        &["ZRANGE", "{g}r", "0", "-1", "WITHSCORES"],
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "{g}x", "STOREDIST", "{g}y"],
        &["EXISTS", "{g}x", "{g}y"],
        &["ZRANGE", "{g}y", "0", "-1", "WITHSCORES"],
        &["GEORADIUSBYMEMBER", "Sicily", "Palermo", "100", "km", "STORE", "{g}r"],
        &["ZRANGE", "{g}r", "0", "-1", "WITHSCORES"],
        &["GEORADIUSBYMEMBER", "nokey", "m", "bad", "bad", "STORE", "{g}r"],
        &["EXISTS", "{g}r"],
        &["GEORADIUSBYMEMBER", "nokey", "m", "bad", "bad"],
        &["GEORADIUS", "nokey", "1", "1", "1", "km", "STORE", "{g}r"],
        // GEOADD's options, and GEO on any sorted set.
        &["GEOADD", "Sicily", "NX", "0", "0", "Palermo", "1", "1", "new"],
        &["GEOPOS", "Sicily", "Palermo", "new"],
        &["GEOADD", "Sicily", "XX", "CH", "2", "2", "new", "3", "3", "other"],
        &["GEOPOS", "Sicily", "new", "other"],
        &["GEOADD", "Sicily", "CH", "2", "2", "new", "4", "4", "other"],
        &["GEOADD", "Sicily", "CH", "XX", "2", "2", "new"],
        &["GEOADD", "Sicily", "ch", "nx", "5", "5", "new"],
        &["GEOADD", "new", "XX", "1", "1", "a"],
        &["EXISTS", "new"],
        &["ZADD", "z", "-1", "neg", "1.5", "frac", "1e20", "huge", "4503599627370496", "two52", "0", "zero"],
        &["ZADD", "z", "inf", "inf", "-inf", "ninf", "9223372036854775808", "two63"],
        &["GEOPOS", "z", "neg", "frac", "huge", "two52", "zero", "inf", "ninf", "two63"],
        &["GEOHASH", "z", "neg", "frac", "huge", "two52", "zero", "inf", "ninf", "two63"],
        &["GEODIST", "z", "neg", "huge"],
        &["GEODIST", "z", "zero", "two52", "km"],
        &["GEOSEARCH", "z", "FROMMEMBER", "zero", "BYRADIUS", "20000", "km", "WITHHASH", "WITHCOORD", "WITHDIST"],
        &["GEOSEARCH", "z", "FROMMEMBER", "neg", "BYBOX", "40000", "40000", "km", "WITHHASH", "ASC"],
        &["GEOSEARCH", "z", "FROMMEMBER", "huge", "BYRADIUS", "100", "km"],
        // Where the keys are (the source, and a STORE's destination).
        &["COMMAND", "GETKEYS", "GEORADIUS", "k", "1", "2", "3", "km"],
        &["COMMAND", "GETKEYS", "GEORADIUS", "k", "1", "2", "3", "km", "STORE", "a"],
        &["COMMAND", "GETKEYS", "GEORADIUS", "k", "1", "2", "3", "km", "COUNT", "1", "STOREDIST", "a"],
        &["COMMAND", "GETKEYS", "GEORADIUSBYMEMBER", "k", "m", "3", "km", "STORE", "a"],
        &["COMMAND", "GETKEYS", "GEORADIUS_RO", "k", "1", "2", "3", "km"],
        &["COMMAND", "GETKEYS", "GEOSEARCHSTORE", "d", "s", "FROMMEMBER", "x", "BYRADIUS", "1", "km"],
        &["COMMAND", "GETKEYS", "GEOADD", "k", "1", "2", "m"],
        // Infinite and huge shapes.
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "inf", "km", "WITHDIST"],
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "inf", "1", "km", "WITHDIST"],
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1e308", "1e308", "km"],
        &["GEORADIUS", "Sicily", "0x0f", "37", "0x100", "km", "WITHDIST"],
    ]
    .iter()
    .map(|c| cmd(c))
    .collect()
}

/// Every error, in the order Redis checks.
#[rustfmt::skip]
fn errors() -> Vec<Vec<String>> {
    [
        &["GEOADD", "g", "1", "2", "a"][..],
        &["GEOADD", "g"],
        &["GEOADD", "g", "1", "2"],
        &["GEOADD", "g", "1", "2", "a", "3"],
        &["GEOADD", "g", "NX", "XX", "1", "2", "a"],
        &["GEOADD", "g", "NX", "CH", "NX"],
        &["GEOADD", "g", "GT", "1", "2", "a"],
        &["GEOADD", "g", "x", "2", "a"],
        &["GEOADD", "g", "1", "y", "a"],
        &["GEOADD", "g", "1", "2", "ok", "200", "100", "a"],
        &["GEOADD", "g", "1", "2", "ok", "180.0000001", "0", "a"],
        &["GEOADD", "g", "-180.1", "0", "a"],
        &["GEOADD", "g", "0", "85.05112879", "a"],
        &["GEOADD", "g", "0", "-85.05112879", "a"],
        &["GEOADD", "g", "0", "90", "a"],
        &["GEOADD", "g", "inf", "0", "a"],
        &["GEOADD", "g", "0", "-inf", "a"],
        &["GEOADD", "g", "1e300", "0", "a"],
        &["GEOADD", "g", "nan", "0", "a"],
        &["GEOADD", "g", "0.0000005", "-91", "a"],
        // Floats as Redis's strtod reads them.
        &["GEOADD", "g", "1e400", "0", "a"],
        &["GEOADD", "g", "1e-400", "0", "a"],
        &["GEOADD", "g", " 1", "0", "a"],
        &["GEOADD", "g", "1 ", "0", "a"],
        &["GEOADD", "g", "", "0", "a"],
        &["GEOADD", "g", "0x10", "-0x1p2", "hex"],
        &["GEOADD", "g", "1e-310", "+.5", "tiny"],
        &["GEOPOS", "g", "hex", "tiny"],
        &["ZREM", "g", "hex", "tiny"],
        &["GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "1e400", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "1e-400", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYBOX", "1e400", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYBOX", "1", "1e-400", "km"],
        &["EXISTS", "g"],
        &["GEOADD", "g", "180", "85.05112878", "ne", "-180", "-85.05112878", "sw", "180", "-85.05112878", "se", "-180", "85.05112878", "nw"],
        &["GEOPOS", "g", "ne", "sw", "se", "nw"],
        &["GEOHASH", "g", "ne", "sw", "se", "nw"],
        &["GEODIST", "g", "ne", "sw"],
        &["GEODIST", "g", "ne", "nw", "km"],
        &["GEODIST", "g", "ne", "sw", "parsec"],
        &["GEODIST", "g", "ne", "sw", "km", "extra"],
        &["GEODIST", "nokey", "ne", "sw", "parsec"],
        &["GEODIST", "g", "ne"],
        &["SET", "s", "x"],
        &["GEOADD", "s", "1", "2", "a"],
        &["GEOADD", "s", "200", "2", "a"],
        &["GEOADD", "s", "NX", "XX", "1", "2", "a"],
        &["GEODIST", "s", "a", "b"],
        &["GEOPOS", "s", "a"],
        &["GEOHASH", "s", "a"],
        &["GEORADIUS", "s", "1", "2", "3", "km"],
        &["GEORADIUS", "s", "bad", "2", "3", "km"],
        &["GEOSEARCH", "s", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km"],
        &["GEOSEARCHSTORE", "d", "s", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km"],
        &["GEOSEARCHSTORE", "s", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km"],
        &["TYPE", "s"],
        &["GEORADIUS", "g", "x", "2", "3", "km"],
        &["GEORADIUS", "g", "1", "2", "x", "km"],
        &["GEORADIUS", "g", "1", "2", "-1", "km"],
        &["GEORADIUS", "g", "1", "2", "3", "yd"],
        &["GEORADIUS", "g", "200", "2", "x", "yd"],
        &["GEORADIUS", "g", "1", "2", "3"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "0"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "-1"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "x"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "+1"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "01"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "-0"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "9223372036854775808"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "COUNT", "9223372036854775807", "ANY"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "ANY"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "ANY", "COUNT", "0"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "STORE"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "STORE", "d", "WITHDIST"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "WITHHASH", "STOREDIST", "d"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "FROMMEMBER", "ne"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "BYRADIUS", "1", "km"],
        &["GEORADIUS", "g", "1", "2", "3", "km", "nosuch"],
        &["GEORADIUS_RO", "g", "1", "2", "3", "km", "STORE", "d"],
        &["GEORADIUS_RO", "g", "1", "2", "3", "km", "STOREDIST", "d"],
        &["GEORADIUSBYMEMBER", "g", "nosuch", "3", "km"],
        &["GEORADIUSBYMEMBER", "g", "ne", "x", "km"],
        &["GEORADIUSBYMEMBER", "g", "ne", "3", "lightyears"],
        &["GEORADIUSBYMEMBER", "g", "ne", "3", "km", "STORE", "d", "WITHCOORD"],
        &["GEORADIUSBYMEMBER_RO", "g", "ne", "3", "km", "STORE", "d"],
        &["GEORADIUSBYMEMBER", "nokey", "x", "3", "km", "WITHDIST", "STORE", "d"],
        &["GEORADIUSBYMEMBER", "nokey", "x", "3", "km", "ANY"],
        &["GEOSEARCH", "g", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "x", "y"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "COUNT", "1"],
        &["geoSearch", "g", "FROMLONLAT", "1", "2", "COUNT", "1"],
        &["GEOSEARCH", "g", "COUNT", "1", "BYRADIUS", "1", "km"],
        &["GeoSearch", "g", "WITHDIST", "BYBOX", "1", "1", "km"],
        &["GEOSEARCH", "g", "FROMMEMBER", "ne", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "FROMMEMBER", "ne", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "BYBOX", "1", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "1", "1", "km", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMMEMBER", "nosuch", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "x", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "-1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "kms"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "x", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "1", "x", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "-1", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "1", "-1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "1", "1", "x"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYBOX", "1", "1"],
        &["GEOSEARCH", "g", "FROMLONLAT", "181", "2", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "x", "2", "BYRADIUS", "1", "km"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "STORE", "d"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "STOREDIST"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "ANY"],
        &["GEOSEARCH", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "COUNT", "0"],
        &["GEOSEARCH", "nokey", "FROMMEMBER", "x", "BYRADIUS", "1", "km", "ANY"],
        &["GEOSEARCH", "nokey", "FROMMEMBER", "x", "BYRADIUS", "x", "km"],
        &["GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "WITHDIST"],
        &["GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "1", "2", "BYRADIUS", "1", "km", "STORE", "x"],
        &["GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "1", "2"],
        &["GEOSEARCHSTORE", "d", "g", "BYRADIUS", "1", "km", "FOO"],
        &["GEOSEARCHSTORE", "d", "nokey", "FROMMEMBER", "x", "BYRADIUS", "1", "km", "ANY"],
        &["GEOSEARCHSTORE", "d", "g"],
        &["GEOSEARCH", "g"],
        &["GEORADIUS", "g", "1", "2", "3"],
        &["GEORADIUSBYMEMBER", "g", "ne", "3"],
        &["GEOPOS"],
        &["GEOHASH"],
    ]
    .iter()
    .map(|c| cmd(c))
    .collect()
}

/// A position: mostly anywhere, often near the poles' limits and the
/// antimeridian, sometimes exactly on a limit.
fn position(rng: &mut impl Rng) -> (f64, f64) {
    const LAT: f64 = 85.05112878;
    match rng.gen_range(0..10) {
        0 => (rng.gen_range(179.0..=180.0), rng.gen_range(-LAT..=LAT)),
        1 => (rng.gen_range(-180.0..=-179.0), rng.gen_range(-LAT..=LAT)),
        2 => (rng.gen_range(-180.0..=180.0), rng.gen_range(80.0..=LAT)),
        3 => (rng.gen_range(-180.0..=180.0), rng.gen_range(-LAT..=-80.0)),
        4 => {
            let lon = [180.0, -180.0, 0.0][rng.gen_range(0..3)];
            let lat = [LAT, -LAT, 0.0][rng.gen_range(0..3)];
            (lon, lat)
        }
        5 => (rng.gen_range(12.0..16.0), rng.gen_range(36.0..40.0)),
        _ => (rng.gen_range(-180.0..=180.0), rng.gen_range(-LAT..=LAT)),
    }
}

fn num(x: f64) -> String {
    format!("{x}")
}

/// `n` seeded random points in `key` (some sharing a position, so
/// distances tie), then searches of every kind around random centres and
/// members; STORE/STOREDIST into `dsts` and their contents.
fn random_round(seed: u64, key: &str, n: usize, dsts: &[&str]) -> Vec<Vec<String>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cmds = Vec::new();
    let mut points = Vec::new();
    for chunk in 0..n.div_ceil(50) {
        let mut c = cmd(&["GEOADD", key]);
        for j in 0..50.min(n - chunk * 50) {
            let i = chunk * 50 + j;
            let (lon, lat) = if i > 0 && rng.gen_range(0..8) == 0 {
                points[rng.gen_range(0..points.len())]
            } else {
                position(&mut rng)
            };
            points.push((lon, lat));
            c.extend([num(lon), num(lat), format!("m{i}")]);
        }
        cmds.push(c);
    }
    cmds.push(cmd(&["ZCARD", key]));
    cmds.push(cmd(&["OBJECT", "ENCODING", key]));
    let members: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let mut pos = cmd(&["GEOPOS", key]);
    pos.extend(members.iter().cloned());
    cmds.push(pos);
    let mut hash = cmd(&["GEOHASH", key]);
    hash.extend(members.iter().cloned());
    cmds.push(hash);
    for _ in 0..40 {
        let a = &members[rng.gen_range(0..n)];
        let b = &members[rng.gen_range(0..n)];
        let unit = ["m", "km", "mi", "ft"][rng.gen_range(0..4)];
        cmds.push(cmd(&["GEODIST", key, a, b, unit]));
    }
    let units = ["m", "km", "mi", "ft"];
    for round in 0..120 {
        let unit = units[rng.gen_range(0..4)];
        let per_m = match unit {
            "m" => 1.0,
            "km" => 1000.0,
            "mi" => 1609.34,
            _ => 0.3048,
        };
        // Radii from 1 m to 20000 km, log-uniform, in the unit.
        let r_m = 10f64.powf(rng.gen_range(0.0..7.3));
        let r = num((r_m / per_m * 1000.0).round() / 1000.0);
        let w = num(((r_m * rng.gen_range(0.3..3.0)) / per_m).round());
        let h = num(((r_m * rng.gen_range(0.3..3.0)) / per_m).round());
        let (lon, lat) = if rng.gen_bool(0.3) {
            points[rng.gen_range(0..n)]
        } else {
            position(&mut rng)
        };
        let member = &members[rng.gen_range(0..n)];
        let mut opts: Vec<String> = Vec::new();
        for o in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if rng.gen_bool(0.4) {
                opts.push(o.into());
            }
        }
        match rng.gen_range(0..4) {
            0 => opts.push("ASC".into()),
            1 => opts.push("DESC".into()),
            _ => {}
        }
        if rng.gen_bool(0.4) {
            opts.extend(["COUNT".into(), rng.gen_range(1..12).to_string()]);
            if rng.gen_bool(0.3) {
                opts.push("ANY".into());
            }
        }
        let from: Vec<String> = if rng.gen_bool(0.5) {
            cmd(&["FROMLONLAT", &num(lon), &num(lat)])
        } else {
            cmd(&["FROMMEMBER", member])
        };
        let by: Vec<String> = if rng.gen_bool(0.5) {
            cmd(&["BYRADIUS", &r, unit])
        } else {
            cmd(&["BYBOX", &w, &h, unit])
        };
        let mut search = cmd(&["GEOSEARCH", key]);
        search.extend(from.iter().cloned());
        search.extend(by.iter().cloned());
        search.extend(opts.iter().cloned());
        cmds.push(search);
        let mut radius = match round % 4 {
            0 => cmd(&["GEORADIUS", key, &num(lon), &num(lat), &r, unit]),
            1 => cmd(&["GEORADIUS_RO", key, &num(lon), &num(lat), &r, unit]),
            2 => cmd(&["GEORADIUSBYMEMBER", key, member, &r, unit]),
            _ => cmd(&["GEORADIUSBYMEMBER_RO", key, member, &r, unit]),
        };
        radius.extend(opts.iter().cloned());
        cmds.push(radius.clone());
        // The stored forms take no WITH* options.
        let plain: Vec<String> = opts
            .iter()
            .filter(|o| !o.starts_with("WITH"))
            .cloned()
            .collect();
        let dst = dsts[round % dsts.len()];
        let mut store = cmd(&["GEOSEARCHSTORE", dst, key]);
        store.extend(from.iter().cloned());
        store.extend(by.iter().cloned());
        store.extend(plain.iter().cloned());
        if rng.gen_bool(0.5) {
            store.push("STOREDIST".into());
        }
        cmds.push(store);
        cmds.push(cmd(&["ZRANGE", dst, "0", "-1", "WITHSCORES"]));
        cmds.push(cmd(&["OBJECT", "ENCODING", dst]));
        if round % 4 < 3 && round % 4 != 1 {
            let mut rs = radius.clone();
            rs.retain(|o| !o.starts_with("WITH"));
            let dst2 = dsts[(round + 1) % dsts.len()];
            let how = if rng.gen_bool(0.5) {
                "STORE"
            } else {
                "STOREDIST"
            };
            rs.extend([how.to_string(), dst2.to_string()]);
            cmds.push(rs);
            cmds.push(cmd(&["ZRANGE", dst2, "0", "-1", "WITHSCORES"]));
        }
    }
    cmds
}

#[test]
fn geo_basics() {
    run(&[], &basics());
}

#[test]
fn geo_errors() {
    run(&[], &errors());
}

#[test]
fn geo_basics_and_errors_resp3() {
    let mut cmds = vec![cmd(&["HELLO", "3"])];
    cmds.extend(basics());
    cmds.extend(errors());
    run(&[], &cmds);
}

#[test]
fn geo_random_small_sets() {
    // At most 128 members: listpack-encoded sources and results.
    let mut cmds = Vec::new();
    for seed in 0..4 {
        cmds.extend(random_round(
            seed,
            &format!("{{g}}small{seed}"),
            100,
            &["{g}d1", "{g}d2"],
        ));
    }
    run(&[], &cmds);
}

#[test]
fn geo_random_large_sets() {
    let mut cmds = random_round(100, "{g}big", 1500, &["{g}d1", "{g}d2", "{g}d3"]);
    cmds.extend(random_round(101, "{g}dense", 300, &["{g}d1"]));
    run(&[], &cmds);
}

#[test]
fn geo_random_resp3() {
    let mut cmds = vec![cmd(&["HELLO", "3"])];
    cmds.extend(random_round(200, "{g}k", 400, &["{g}d"]));
    run(&[], &cmds);
}

#[test]
fn geo_store_across_cores() {
    // Sources and destinations spread over both cores: STORE, STOREDIST and
    // GEOSEARCHSTORE run under the node's ordered locks.
    let dsts = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"];
    let mut cmds = random_round(300, "src-a", 200, &dsts);
    cmds.extend(random_round(301, "src-b", 50, &dsts));
    for d in dsts {
        cmds.push(cmd(&["ZRANGE", d, "0", "-1", "WITHSCORES"]));
    }
    // Empty results and missing sources delete the destination wherever
    // it is; transactions across cores.
    for d in dsts {
        cmds.push(cmd(&[
            "GEOSEARCHSTORE",
            d,
            "nokey",
            "FROMMEMBER",
            "x",
            "BYRADIUS",
            "1",
            "km",
        ]));
        cmds.push(cmd(&["EXISTS", d]));
        cmds.push(cmd(&["GEOADD", d, "1", "1", "p"]));
        cmds.push(cmd(&["GEORADIUS", "src-a", "0", "0", "0", "m", "STORE", d]));
        cmds.push(cmd(&["EXISTS", d]));
        cmds.push(cmd(&["GEOADD", d, "1", "1", "p"]));
        cmds.push(cmd(&[
            "GEORADIUSBYMEMBER",
            "src-b",
            "m1",
            "1",
            "m",
            "STOREDIST",
            d,
        ]));
        cmds.push(cmd(&["ZRANGE", d, "0", "-1", "WITHSCORES"]));
    }
    for t in [
        &["MULTI"][..],
        &["GEOADD", "t1", "10", "20", "a", "10.001", "20.001", "b"],
        &[
            "GEOSEARCHSTORE",
            "t2",
            "t1",
            "FROMLONLAT",
            "10",
            "20",
            "BYRADIUS",
            "1",
            "km",
            "STOREDIST",
        ],
        &["GEORADIUS", "t1", "10", "20", "1", "km", "STORE", "t3"],
        &["GEOSEARCH", "t2", "FROMMEMBER", "a", "BYRADIUS", "1", "km"],
        &["EXEC"],
        &["ZRANGE", "t2", "0", "-1", "WITHSCORES"],
        &["ZRANGE", "t3", "0", "-1", "WITHSCORES"],
    ] {
        cmds.push(cmd(t));
    }
    run(&["--shards", "2"], &cmds);
}
