//! RESP request parsing: pipelined SET/GET batches, as the node sees them.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::resp::{parse, Limits, Parsed};

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` commands alternating SET key:i <value> / GET key:i.
fn pipeline(n: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let mut buf = Vec::new();
    for i in 0..n {
        let key = format!("key:{:012}", i);
        if i % 2 == 0 {
            encode(&mut buf, &[b"SET", key.as_bytes(), &value]);
        } else {
            encode(&mut buf, &[b"GET", key.as_bytes()]);
        }
    }
    buf
}

/// Parses every command in `buf`; returns the number of commands.
fn parse_all(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<(u32, u32)>,
    scratch: &mut Vec<u8>,
) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while pos < buf.len() {
        match parse(&buf[pos..], limits, spans, scratch) {
            Ok(Parsed::Command { consumed, .. }) => {
                black_box(&spans);
                pos += consumed;
                n += 1;
            }
            Ok(Parsed::Empty { consumed }) => pos += consumed,
            Ok(Parsed::Incomplete { .. } | Parsed::BigBulk { .. }) => break,
            Err(e) => panic!("protocol error in benchmark input: {:?}", e),
        }
    }
    n
}

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("resp_parse_pipeline");
    for &(n, vlen) in &[(1usize, 3usize), (16, 3), (16, 64), (128, 3), (128, 1024)] {
        let buf = pipeline(n, vlen);
        let mut spans = Vec::with_capacity(8);
        let mut scratch = Vec::new();
        assert_eq!(parse_all(&buf, &limits, &mut spans, &mut scratch), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("set_get_v{vlen}"), n),
            &buf,
            |b, buf| b.iter(|| parse_all(black_box(buf), &limits, &mut spans, &mut scratch)),
        );
    }
    group.finish();

    // Inline commands (redis-benchmark's PING_INLINE, telnet users).
    let mut inline = Vec::new();
    for i in 0..64 {
        inline
            .extend_from_slice(format!("SET key:{i} \"some value\"\r\nGET key:{i}\r\n").as_bytes());
    }
    let mut spans = Vec::with_capacity(8);
    let mut scratch = Vec::new();
    let n = parse_all(&inline, &limits, &mut spans, &mut scratch);
    assert_eq!(n, 128);
    let mut group = c.benchmark_group("resp_parse_inline");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("set_get_128", |b| {
        b.iter(|| parse_all(black_box(&inline), &limits, &mut spans, &mut scratch))
    });
    group.finish();

    // A request split at every byte boundary of its header: cost of Incomplete.
    let one = pipeline(1, 16);
    let mut group = c.benchmark_group("resp_parse_incomplete");
    group.bench_function("set_prefixes", |b| {
        b.iter(|| {
            let mut k = 0;
            for end in 1..one.len() {
                if let Ok(Parsed::Incomplete { .. }) =
                    parse(black_box(&one[..end]), &limits, &mut spans, &mut scratch)
                {
                    k += 1;
                }
            }
            k
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
