//! `stratus bench datapath`: single-thread throughput of each object
//! data-path stage (`stratus-chunk`: chunk, id, seal, pack, erasure-code
//! and back) and of the whole pipelines, over generated data.
//!
//! Every stage is timed on its own over the whole input, on the outputs of
//! the previous stage computed beforehand; then the full ingest and read
//! pipelines are timed. Throughputs are bytes of *object* input per second,
//! so stage times add up: the sum-of-stages limit `1 / Σ(1 / stage)` is
//! what a one-thread pipeline would reach if its stages cost exactly what
//! they cost alone. The ratio pipeline / limit shows overhead beyond the
//! stages (extra copies, cache misses). `bench store` uses the same
//! measurement as its data-path reference.

mod measure;
mod report;

pub(crate) use measure::{generate, run};
pub(crate) use report::{BenchConfig, BenchReport};

/// Runs the benchmark over `mib` MiB.
pub(crate) fn datapath(mib: usize) {
    let r = tokio::task::block_in_place(|| run(mib << 20, &BenchConfig::default()));
    print!("{r}");
    println!(
        "ingest {:.0}% and read {:.0}% of their sum-of-stages limits (goal >= 80%)",
        100.0 * r.ingest_ratio(),
        100.0 * r.read_ratio()
    );
}
