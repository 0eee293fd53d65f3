//! A cluster client that routes by CLUSTER SLOTS (the `redis` crate's
//! `ClusterClient`, as most cluster clients do), for the benchmarks that
//! need one: `redis-benchmark --cluster` routes by CLUSTER NODES and never
//! sees the per-core ports of `shard-port-base`.
//!
//! ```text
//! cluster-client HOST:PORT TEST THREADS REQUESTS KEYSPACE DATASIZE
//! ```
//! TEST is `set` or `get`. THREADS connections (one cluster client each)
//! send REQUESTS commands in all, one at a time, on random keys
//! `key:NNNNNNNNNNNN` below KEYSPACE with DATASIZE-byte values. Prints
//! `<ops per second> <seconds>`.

use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 6 {
        eprintln!("usage: cluster-client HOST:PORT set|get THREADS REQUESTS KEYSPACE DATASIZE");
        std::process::exit(2);
    }
    let num = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("not a number: {}", args[i]);
            std::process::exit(2)
        })
    };
    let (threads, requests, keyspace, size) = (num(2).max(1), num(3), num(4).max(1), num(5));
    let set = match args[1].as_str() {
        "set" => true,
        "get" => false,
        other => {
            eprintln!("unknown test {other}: set or get");
            std::process::exit(2)
        }
    };
    let url = format!("redis://{}", args[0]);
    let value = vec![b'x'; size as usize];
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (url, value) = (url.clone(), value.clone());
            let share = requests / threads + u64::from(t < requests % threads);
            std::thread::spawn(move || -> redis::RedisResult<()> {
                let client = redis::cluster::ClusterClient::new(vec![url])?;
                let mut conn = client.get_connection()?;
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                for _ in 0..share {
                    let key = format!("key:{:012}", rng.gen_range(0..keyspace));
                    if set {
                        redis::cmd("SET")
                            .arg(&key)
                            .arg(&value[..])
                            .query::<()>(&mut conn)?;
                    } else {
                        redis::cmd("GET")
                            .arg(&key)
                            .query::<Option<Vec<u8>>>(&mut conn)?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("cluster-client: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0} {:.3}", requests as f64 / secs, secs);
}
