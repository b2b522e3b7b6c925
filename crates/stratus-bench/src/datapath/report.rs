//! What `bench datapath` measures ([`BenchConfig`]) and what it found
//! ([`BenchReport`], printed as a table).

use std::fmt;
use std::time::Duration;

use stratus_chunk::{ChunkerParams, Profile, DEFAULT_ZSTD_LEVEL};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Fraction of the input that is text-like (compressible); the rest is
    /// random. Laid out in alternating 1 MiB segments.
    pub compressible: f64,
    /// Chunker bounds.
    pub chunker: ChunkerParams,
    /// zstd level for sealing.
    pub zstd_level: i32,
    /// Erasure profile for packs.
    pub profile: Profile,
    /// Pack (stripe) target size in bytes.
    pub pack_bytes: usize,
    /// Size of each push into the chunker (as reads from a socket would be).
    pub push_bytes: usize,
    /// Seed for the generated data.
    pub seed: u64,
    /// Times each stage and pipeline is run; the best time counts.
    pub reps: usize,
}

impl Default for BenchConfig {
    /// Half text, half random; default chunker; zstd 3; 4+2; 8 MiB packs;
    /// 1 MiB pushes; best of 3.
    fn default() -> Self {
        BenchConfig {
            compressible: 0.5,
            chunker: ChunkerParams::default(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            profile: Profile { k: 4, m: 2 },
            pack_bytes: 8 << 20,
            push_bytes: 1 << 20,
            seed: 1,
            reps: 3,
        }
    }
}

/// One timed stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageResult {
    /// Stage name.
    pub name: &'static str,
    /// Bytes the stage itself processed (e.g. sealed bytes for RS encode).
    pub stage_bytes: u64,
    /// Wall time on one thread.
    pub elapsed: Duration,
    /// Whether it counts towards the sum-of-stages limit (`false` for
    /// breakdowns such as AES-GCM alone, which is part of sealing).
    pub in_limit: bool,
}

/// Result of [`run`](super::run); `Display` prints a table.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Object bytes processed.
    pub total_bytes: u64,
    /// The configuration used.
    pub config_summary: String,
    /// Chunks produced.
    pub chunks: usize,
    /// Sum of sealed chunk lengths.
    pub sealed_bytes: u64,
    /// Packs (stripes) produced.
    pub packs: usize,
    /// Ingest stages, timed alone.
    pub ingest: Vec<StageResult>,
    /// The full ingest pipeline (chunk → id → seal → pack → encode).
    pub ingest_pipeline: Duration,
    /// Read stages, timed alone.
    pub read: Vec<StageResult>,
    /// The full read pipeline (decode with pieces lost → slice → open).
    pub read_pipeline: Duration,
}

fn rate(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9)
}

fn limit(total: u64, stages: &[StageResult]) -> f64 {
    let t: Duration = stages
        .iter()
        .filter(|s| s.in_limit)
        .map(|s| s.elapsed)
        .sum();
    rate(total, t)
}

impl BenchReport {
    /// Ingest sum-of-stages limit, object bytes per second.
    pub fn ingest_limit(&self) -> f64 {
        limit(self.total_bytes, &self.ingest)
    }

    /// Ingest pipeline throughput, object bytes per second.
    pub fn ingest_throughput(&self) -> f64 {
        rate(self.total_bytes, self.ingest_pipeline)
    }

    /// Ingest pipeline / limit.
    pub fn ingest_ratio(&self) -> f64 {
        self.ingest_throughput() / self.ingest_limit()
    }

    /// Read sum-of-stages limit, object bytes per second.
    pub fn read_limit(&self) -> f64 {
        limit(self.total_bytes, &self.read)
    }

    /// Read pipeline throughput, object bytes per second.
    pub fn read_throughput(&self) -> f64 {
        rate(self.total_bytes, self.read_pipeline)
    }

    /// Read pipeline / limit.
    pub fn read_ratio(&self) -> f64 {
        self.read_throughput() / self.read_limit()
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |r: f64| r / 1e6;
        writeln!(
            f,
            "data path, one thread: {:.1} MiB in, {} chunks, {:.1} MiB sealed ({:.1}%), {} packs; {}",
            self.total_bytes as f64 / 1048576.0,
            self.chunks,
            self.sealed_bytes as f64 / 1048576.0,
            100.0 * self.sealed_bytes as f64 / (self.total_bytes.max(1)) as f64,
            self.packs,
            self.config_summary
        )?;
        writeln!(
            f,
            "{:<34} {:>12} {:>14} {:>14}",
            "stage", "stage MiB", "stage MB/s", "object MB/s"
        )?;
        let section = |f: &mut fmt::Formatter<'_>,
                       title: &str,
                       stages: &[StageResult],
                       pipeline: Duration,
                       lim: f64|
         -> fmt::Result {
            writeln!(f, "{title}")?;
            for s in stages {
                writeln!(
                    f,
                    "  {:<32} {:>12.1} {:>14.1} {:>14.1}",
                    if s.in_limit {
                        s.name.to_string()
                    } else {
                        format!("({})", s.name)
                    },
                    s.stage_bytes as f64 / 1048576.0,
                    mb(rate(s.stage_bytes, s.elapsed)),
                    mb(rate(self.total_bytes, s.elapsed)),
                )?;
            }
            let thr = rate(self.total_bytes, pipeline);
            writeln!(
                f,
                "  {:<32} {:>12} {:>14} {:>14.1}",
                "sum-of-stages limit",
                "",
                "",
                mb(lim)
            )?;
            writeln!(
                f,
                "  {:<32} {:>12} {:>14} {:>14.1}   = {:.0}% of limit",
                "full pipeline",
                "",
                "",
                mb(thr),
                100.0 * thr / lim
            )
        };
        section(
            f,
            "ingest",
            &self.ingest,
            self.ingest_pipeline,
            self.ingest_limit(),
        )?;
        section(f, "read", &self.read, self.read_pipeline, self.read_limit())?;
        writeln!(
            f,
            "(parenthesised stages are breakdowns, not counted in the limit)"
        )
    }
}
