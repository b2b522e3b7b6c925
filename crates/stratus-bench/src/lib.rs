//! The benchmark harness behind `stratus bench ...`.
//!
//! **Owns** every measurement of a build on its machine, one module per
//! family: control-plane commit rate (`control`), scheduler placements
//! (`sched`), `stratus run` against wasmtime alone (`runtime`), idle agent
//! memory (`agent`), the object data path on one core (`datapath`), the
//! object store end to end over HTTP (`store`), deduplication of real
//! releases beside restic (`dedupe`), object metadata at 100 k–10 M
//! versions (`meta`), service-to-service connections (`net`) and the ingress beside nginx (`ingress`); the clap types of the `bench` subcommands
//! ([`BenchCmd`]) and their entry point ([`run`]). Each figure is printed
//! beside a physical reference measured in the same run (fsync rate, sum of
//! data-path stages, raw loopback HTTP), so the numbers mean something on a
//! shared, noisy machine. Errors are typed ([`BenchError`]); the `stratus`
//! binary prints them.
//!
//! **Does not own** the code it measures, nor the `stratus` binary: the
//! CLI parses `stratus bench ...` with [`BenchCmd`] and calls [`run`];
//! benchmarks that start processes (`agent-rss`, `run`, `meta`) re-run the
//! current executable, which must therefore be `stratus`. The scheduler's
//! synthetic cluster stays in `stratus-sched` (behind its `bench` feature,
//! which only this crate enables) because it draws from the scheduler's
//! private seeded generator; the synthetic object commands of `meta` stay in
//! `stratus-state` (`synth`, behind its `bench` feature) because
//! `stratus-raft`'s tests use them too.

mod agent;
mod control;
mod datapath;
mod dedupe;
mod error;
mod ingress;
mod market;
mod meta;
mod net;
mod runtime;
mod sched;
mod store;
mod trust;
mod util;

use clap::Subcommand;

pub use error::{BenchError, Result};

/// `stratus bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Control-plane commit throughput and latency (in-process replicas on loopback QUIC, real disk)
    Control {
        /// Number of replicas
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Number of writes
        #[arg(long, default_value_t = 5000)]
        writes: usize,
        /// Writes in flight at once
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Market deals settled per second through the control plane (placement holding escrow + signed last usage report), beside plain commits
    Market {
        /// Number of deals
        #[arg(long, default_value_t = 5000)]
        deals: usize,
        /// Deals in flight at once
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Verified results: cost and wall time of a CPU-bound task at each trust level, and the consensus overhead (local cloud of 5 priced nodes)
    Trust {
        /// Trust levels, comma-separated (the first is the reference)
        #[arg(long, default_value = "1,2,4,50", value_delimiter = ',')]
        levels: Vec<u32>,
        /// Runs per level
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Steps of the task's loop
        #[arg(long, default_value_t = 200_000_000)]
        iterations: u64,
    },
    /// Scheduler placements per second on one core (simulated cluster)
    Sched {
        /// Simulated nodes
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Tasks to place
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Seed of the simulated cluster and jobs
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// `stratus run` of hello-world on a local cloud vs. the same module run directly by wasmtime
    Run {
        /// Runs of each
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// (internal) run a module directly with the WASM executor, as the reference of `bench run`
    #[command(hide = true)]
    WasmDirect {
        /// Module
        module: std::path::PathBuf,
        /// Arguments
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Object data path (chunk, seal, pack, erasure-code and back) on one core vs. its sum-of-stages limit
    Datapath {
        /// MiB of generated data (half text, half random)
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
    /// Object store end to end over the HTTP API on a local cloud, beside the data-path limit and raw loopback HTTP
    Store {
        /// MiB of the large object (generated: half text, half random)
        #[arg(long, default_value_t = 512)]
        mib: usize,
        /// Storage nodes
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Small (4 KiB) objects to PUT and GET
        #[arg(long, default_value_t = 500)]
        small: usize,
    },
    /// Stored bytes of consecutive releases of a crate (registry source archives), beside restic on the same files
    Dedupe {
        /// Crate whose releases are stored
        #[arg(long = "crate", default_value = "tokio")]
        krate: String,
        /// Consecutive releases (the newest ones)
        #[arg(long, default_value_t = 8)]
        versions: usize,
        /// Storage nodes
        #[arg(long, default_value_t = 6)]
        nodes: usize,
    },
    /// Service-to-service connections (same node; relayed by a replica with TLS between the nodes inside; direct QUIC between the nodes, as after hole punching) beside plain TCP on loopback
    Net {
        /// MiB echoed through each path
        #[arg(long, default_value_t = 256)]
        mib: u64,
        /// Round trips of one byte per path
        #[arg(long, default_value_t = 5000)]
        trips: usize,
    },
    /// HTTP requests per second through the ingress (to nginx, and to a
    /// WASM service of a local cloud) beside nginx serving the same page
    /// (runs wrk)
    Ingress {
        /// Seconds of wrk per row
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Open connections of wrk
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// Resident memory of an idle agent process (spawns a server and a node)
    AgentRss {
        /// Seconds to let the agent idle before measuring
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Object metadata at scale: RSS, disk, put rate, page listing and snapshots at each size, on disk (the product) and in memory
    Meta {
        /// Object versions to reach, comma-separated
        #[arg(long, default_value = "100000,1000000,10000000", value_delimiter = ',')]
        sizes: Vec<u64>,
        /// Largest size the in-memory state is also run to
        #[arg(long, default_value_t = 1_000_000)]
        mem_up_to: u64,
        /// Largest size the control run is also made to: the disk backend
        /// with chunk ids that grow instead of content hashes, to show what
        /// the chunk index's random inserts cost (0: no control run)
        #[arg(long, default_value_t = 1_000_000)]
        ordered_up_to: u64,
        /// Largest size a snapshot is also installed on a fresh replica
        #[arg(long, default_value_t = 10_000_000)]
        install_up_to: u64,
        /// Page cache of the state database on disk, in MiB (as `stratus server --state-cache`)
        #[arg(long, default_value_t = 64)]
        state_cache_mib: u64,
        /// Working directory (default: a temporary one)
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// (internal) one backend of `bench meta`
    #[command(hide = true)]
    MetaChild {
        /// `disk`, `disk-ordered` or `mem`
        #[arg(long)]
        backend: String,
        /// Sizes
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<u64>,
        /// Largest size a snapshot is also installed
        #[arg(long)]
        install_up_to: u64,
        /// Page cache of the state database, in MiB
        #[arg(long, default_value_t = 64)]
        state_cache_mib: u64,
        /// Working directory
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

/// Runs a benchmark, printing its figures on stdout.
pub async fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Control {
            replicas,
            writes,
            concurrency,
        } => control::control(replicas, writes, concurrency).await,
        BenchCmd::AgentRss { seconds } => agent::agent_rss(seconds).await,
        BenchCmd::Net { mib, trips } => net::net(mib, trips).await,
        BenchCmd::Ingress { secs, connections } => ingress::ingress(secs, connections).await,
        BenchCmd::Market { deals, concurrency } => market::market(deals, concurrency).await,
        BenchCmd::Trust {
            levels,
            runs,
            iterations,
        } => trust::trust(&levels, runs, iterations).await,
        BenchCmd::Sched { nodes, tasks, seed } => {
            sched::sched(nodes, tasks, seed);
            Ok(())
        }
        BenchCmd::Run { runs } => runtime::run_bench(runs).await,
        BenchCmd::WasmDirect { module, args } => runtime::wasm_direct(&module, args).await,
        BenchCmd::Datapath { mib } => {
            datapath::datapath(mib);
            Ok(())
        }
        BenchCmd::Store { mib, nodes, small } => store::store_bench(mib, nodes, small).await,
        BenchCmd::Dedupe {
            krate,
            versions,
            nodes,
        } => dedupe::dedupe_bench(&krate, versions, nodes).await,
        BenchCmd::Meta {
            sizes,
            mem_up_to,
            ordered_up_to,
            install_up_to,
            state_cache_mib,
            dir,
        } => meta::run(
            &sizes,
            mem_up_to,
            ordered_up_to,
            install_up_to,
            state_cache_mib,
            dir,
        ),
        BenchCmd::MetaChild {
            backend,
            sizes,
            install_up_to,
            state_cache_mib,
            dir,
        } => match backend.as_str() {
            "disk" => {
                let ids = stratus_state::synth::ChunkIds::Hashed;
                meta::run_disk(&sizes, &dir, install_up_to, state_cache_mib, ids).await
            }
            "disk-ordered" => {
                let ids = stratus_state::synth::ChunkIds::Ordered;
                meta::run_disk(&sizes, &dir, install_up_to, state_cache_mib, ids).await
            }
            "mem" => meta::run_mem(&sizes),
            other => error::bail!("unknown backend {other:?}"),
        },
    }
}
