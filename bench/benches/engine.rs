//! Engine command execution without the network: `engine::cmd::run` on one
//! shard, the per-command cost the node adds I/O on top of.
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::{cmd, Shard};

const NOW_MS: i64 = 1_700_000_000_000;
const KEYS: usize = 10_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{:012}", i).into_bytes())
        .collect()
}

fn filled_shard(keys: &[Vec<u8>]) -> Shard {
    let mut shard = Shard::new(16, 42);
    for k in keys {
        cmd::run(&mut shard, 0, NOW_MS, &[b"SET", k, b"xxx"]);
    }
    shard
}

fn bench_strings(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("engine_strings");
    group.throughput(Throughput::Elements(1));

    // A key's slot: hashed where a command is routed, where its entry is
    // prefetched and where it runs (16-byte keys, as redis-benchmark's).
    let mut i = 0;
    group.bench_function("slot_of_16b_key", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            engine::slot::slot_of(black_box(&keys[i]))
        })
    });

    let mut shard = Shard::new(16, 42);
    group.bench_function("set_same_key", |b| {
        b.iter(|| cmd::run(&mut shard, 0, NOW_MS, black_box(&[b"SET", b"k", b"v"])))
    });

    let mut shard = filled_shard(&keys);
    let mut i = 0usize;
    group.bench_function("set_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            cmd::run(&mut shard, 0, NOW_MS, &[b"SET", &keys[i], b"value"])
        })
    });
    group.bench_function("get_hit_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            cmd::run(&mut shard, 0, NOW_MS, &[b"GET", &keys[i]])
        })
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| cmd::run(&mut shard, 0, NOW_MS, black_box(&[b"GET", b"no-such-key"])))
    });
    group.bench_function("incr", |b| {
        b.iter(|| cmd::run(&mut shard, 0, NOW_MS, black_box(&[b"INCR", b"counter"])))
    });
    group.bench_function("set_ex", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            cmd::run(
                &mut shard,
                0,
                NOW_MS,
                &[b"SET", &keys[i], b"value", b"EX", b"100"],
            )
        })
    });
    group.finish();
}

fn bench_collections(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_collections");
    group.throughput(Throughput::Elements(1));
    let mut shard = Shard::new(16, 42);
    group.bench_function("lpush_rpop", |b| {
        b.iter(|| {
            cmd::run(&mut shard, 0, NOW_MS, &[b"LPUSH", b"list", b"element"]);
            cmd::run(&mut shard, 0, NOW_MS, &[b"RPOP", b"list"])
        })
    });
    let mut n = 0u64;
    group.bench_function("hset_1k_fields", |b| {
        b.iter(|| {
            n += 1;
            let f = format!("f{}", n % 1000);
            cmd::run(
                &mut shard,
                0,
                NOW_MS,
                &[b"HSET", b"hash", f.as_bytes(), b"v"],
            )
        })
    });
    group.bench_function("sadd_1k_members", |b| {
        b.iter(|| {
            n += 1;
            let m = format!("m{}", n % 1000);
            cmd::run(&mut shard, 0, NOW_MS, &[b"SADD", b"set", m.as_bytes()])
        })
    });
    group.bench_function("zadd_1k_members", |b| {
        b.iter(|| {
            n += 1;
            let m = format!("m{}", n % 1000);
            let s = (n % 977).to_string();
            cmd::run(
                &mut shard,
                0,
                NOW_MS,
                &[b"ZADD", b"zset", s.as_bytes(), m.as_bytes()],
            )
        })
    });
    for i in 0..600 {
        let e = format!("e{i}");
        cmd::run(&mut shard, 0, NOW_MS, &[b"RPUSH", b"l600", e.as_bytes()]);
    }
    group.bench_function("lrange_100", |b| {
        b.iter(|| {
            cmd::run(
                &mut shard,
                0,
                NOW_MS,
                black_box(&[b"LRANGE", b"l600", b"0", b"99"]),
            )
        })
    });
    group.bench_function("zrange_withscores_10", |b| {
        b.iter(|| {
            cmd::run(
                &mut shard,
                0,
                NOW_MS,
                black_box(&[b"ZRANGE", b"zset", b"0", b"9", b"WITHSCORES"]),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("engine_fill");
    let keys = keys();
    group.throughput(Throughput::Elements(KEYS as u64));
    group.sample_size(20);
    group.bench_function("set_10k_into_empty_shard", |b| {
        b.iter_batched(
            || Shard::new(16, 42),
            |mut shard| {
                for k in &keys {
                    cmd::run(&mut shard, 0, NOW_MS, &[b"SET", k, b"xxx"]);
                }
                shard
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_strings, bench_collections);
criterion_main!(benches);
