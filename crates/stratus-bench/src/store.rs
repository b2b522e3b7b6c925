//! `stratus bench store`: the object store end to end over the HTTP API on
//! a local cloud (one large object, a copy of it, many small ones), beside
//! two references measured in the same run: the data path alone on one
//! core with the store's profile, and the same HTTP client against a
//! loopback server that does nothing.

mod cloud;
mod loopback;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use crate::datapath::{self, BenchConfig, BenchReport};
use crate::error::{bail, Result};
use crate::util::{mb_s, percentile, MIB};

pub(crate) use cloud::StoreCloud;
use cloud::{body_1mib, hash_stream, PutAnswer};
use loopback::loopback_http;

/// The data-path configuration the store uses with `nodes` storage nodes.
fn store_datapath_config(nodes: usize) -> BenchConfig {
    let sc = stratus_store::StoreConfig::default();
    let (k, m) = stratus_sched::default_profile(nodes);
    BenchConfig {
        chunker: sc.chunker,
        zstd_level: sc.zstd_level,
        pack_bytes: sc.pack_bytes,
        profile: stratus_chunk::Profile { k, m },
        ..Default::default()
    }
}

/// The same HTTP client against a server that does nothing: times of one
/// PUT and one GET of `data`.
async fn raw_http(data: &Bytes, want: blake3::Hash) -> Result<(Duration, Duration)> {
    let (addr, sink) = loopback_http(data.clone()).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{addr}/x");
    let t = Instant::now();
    let r = http.put(&url).body(body_1mib(data)).send().await?;
    r.error_for_status()?.bytes().await?;
    let raw_put = t.elapsed();
    let t = Instant::now();
    let r = http.get(&url).send().await?.error_for_status()?;
    let (n, h) = hash_stream(r.bytes_stream()).await?;
    let raw_get = t.elapsed();
    if n != data.len() as u64 || h != want {
        bail!("loopback GET returned other bytes");
    }
    sink.abort();
    Ok((raw_put, raw_get))
}

/// The large object: PUT, GET, PUT of the same bytes under a new key.
struct Large {
    first: PutAnswer,
    copy: PutAnswer,
    sealed: u64,
    put: Duration,
    get: Duration,
    put_copy: Duration,
}

async fn large_object(sc: &StoreCloud, data: &Bytes, want: blake3::Hash) -> Result<Large> {
    let t = Instant::now();
    let first = sc.put("bench", "big", data).await?;
    let put = t.elapsed();
    if first.blake3 != want.to_hex().as_str() {
        bail!("the store's BLAKE3 of the object differs from ours");
    }
    let sealed = sc.sealed_bytes();
    let t = Instant::now();
    let (n, h) = sc.get("bench", "big").await?;
    let get = t.elapsed();
    if n != data.len() as u64 || h != want {
        bail!("GET returned other bytes ({n} bytes, BLAKE3 {h})");
    }
    let t = Instant::now();
    let copy = sc.put("bench", "big-copy", data).await?;
    let put_copy = t.elapsed();
    Ok(Large {
        first,
        copy,
        sealed,
        put,
        get,
        put_copy,
    })
}

/// Small objects: times of all PUTs and GETs, sequential then 16 in flight.
struct Small {
    put: Duration,
    put_p50: Duration,
    get: Duration,
    get_p50: Duration,
    put16: Duration,
    get16: Duration,
}

async fn small_objects(sc: &StoreCloud, small: usize) -> Result<Small> {
    let smalls: Vec<Bytes> = (0..small)
        .map(|i| Bytes::from(datapath::generate(4096, 0.5, 1000 + i as u64)))
        .collect();
    let mut lat = Vec::with_capacity(small);
    let t = Instant::now();
    for (i, d) in smalls.iter().enumerate() {
        let t = Instant::now();
        sc.put("bench", &format!("small/{i}"), d).await?;
        lat.push(t.elapsed());
    }
    let put = t.elapsed();
    lat.sort();
    let put_p50 = percentile(&lat, 0.5);
    lat.clear();
    let t = Instant::now();
    for (i, d) in smalls.iter().enumerate() {
        let t = Instant::now();
        let (n, h) = sc.get("bench", &format!("small/{i}")).await?;
        if n != 4096 || h != blake3::hash(d) {
            bail!("small/{i} read back other bytes");
        }
        lat.push(t.elapsed());
    }
    let get = t.elapsed();
    lat.sort();
    let get_p50 = percentile(&lat, 0.5);
    let t = Instant::now();
    futures::stream::iter(smalls.iter().enumerate())
        .map(|(i, d)| async move { sc.put("bench", &format!("small16/{i}"), d).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let put16 = t.elapsed();
    let t = Instant::now();
    futures::stream::iter(0..small)
        .map(|i| async move { sc.get("bench", &format!("small16/{i}")).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let get16 = t.elapsed();
    Ok(Small {
        put,
        put_p50,
        get,
        get_p50,
        put16,
        get16,
    })
}

/// Runs the benchmark.
pub(crate) async fn store_bench(mib: usize, nodes: usize, small: usize) -> Result<()> {
    let total = mib << 20;
    println!("generating {mib} MiB (half text, half random) ...");
    let data = Bytes::from(datapath::generate(total, 0.5, 1));
    let want = blake3::hash(&data);

    // Reference 1: the data path alone on one core, same profile as the store.
    let cfg = store_datapath_config(nodes);
    let ref_mib = mib.min(128);
    let dp = tokio::task::block_in_place(|| datapath::run(ref_mib << 20, &cfg));

    // Reference 2: the same HTTP client against a server that does nothing.
    let raw = raw_http(&data, want).await?;

    println!("starting a local cloud: 1 replica, {nodes} storage nodes ...");
    let sc = StoreCloud::start(nodes).await?;
    sc.create_bucket("bench").await?;
    let large = large_object(&sc, &data, want).await?;
    let smalls = small_objects(&sc, small).await?;
    let profiles = sc.profiles();
    sc.shutdown().await;

    let run = Run {
        mib,
        nodes,
        small,
        profiles,
        ref_mib,
    };
    print_report(&run, &dp, raw, &large, &smalls);
    Ok(())
}

/// The run's parameters, as the report names them.
struct Run {
    mib: usize,
    nodes: usize,
    small: usize,
    profiles: String,
    ref_mib: usize,
}

fn print_report(
    run: &Run,
    dp: &BenchReport,
    (raw_put, raw_get): (Duration, Duration),
    large: &Large,
    s: &Small,
) {
    let Run {
        mib,
        nodes,
        small,
        ref profiles,
        ref_mib,
    } = *run;
    let (p1, p2) = (&large.first, &large.copy);
    let b = (mib << 20) as u64;
    let limit_in = dp.ingest_limit() / 1e6;
    let limit_out = dp.read_limit() / 1e6;
    println!(
        "object store end to end: 1 replica, {nodes} storage nodes (profile {profiles}), HTTP on loopback, one machine and disk"
    );
    println!(
        "  object {mib} MiB: {} chunks, {:.1} MiB sealed, {:.1} MiB of pieces",
        p1.chunks,
        large.sealed as f64 / MIB,
        p1.piece_bytes as f64 / MIB
    );
    println!(
        "{:<32} {:>10} {:>16} {:>16}",
        "", "MB/s", "/ data path", "/ raw HTTP"
    );
    let row = |name: &str, v: f64, lim: f64, raw: f64| {
        println!(
            "  {name:<30} {v:>10.1} {:>15.0}% {:>15.0}%",
            100.0 * v / lim,
            100.0 * v / raw
        );
    };
    let raw_in = mb_s(b, raw_put);
    let raw_out = mb_s(b, raw_get);
    row("PUT (new data)", mb_s(b, large.put), limit_in, raw_in);
    row(
        "GET (authenticated)",
        mb_s(b, large.get),
        limit_out,
        raw_out,
    );
    row(
        "PUT (same bytes, new key)",
        mb_s(b, large.put_copy),
        limit_in,
        raw_in,
    );
    println!(
        "  dedupe: second PUT wrote {} new chunks of {}, {} piece bytes",
        p2.new_chunks, p2.chunks, p2.piece_bytes
    );
    println!("{small} objects of 4 KiB        ops/s   p50 ms (sequential)   ops/s (16 in flight)");
    let ops = |d: Duration| small as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "  PUT                  {:>10.0} {:>10.2} {:>22.0}",
        ops(s.put),
        s.put_p50.as_secs_f64() * 1e3,
        ops(s.put16)
    );
    println!(
        "  GET                  {:>10.0} {:>10.2} {:>22.0}",
        ops(s.get),
        s.get_p50.as_secs_f64() * 1e3,
        ops(s.get16)
    );
    println!("references measured in this run:");
    println!(
        "  data path on one core ({ref_mib} MiB, same profile): ingest {:.1} MB/s (limit {limit_in:.1}), read {:.1} MB/s (limit {limit_out:.1})",
        dp.ingest_throughput() / 1e6,
        dp.read_throughput() / 1e6
    );
    println!(
        "  raw loopback HTTP (same client, server that drops/serves bytes): PUT {raw_in:.1} MB/s, GET {raw_out:.1} MB/s"
    );
}
