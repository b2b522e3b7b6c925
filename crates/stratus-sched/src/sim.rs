//! A synthetic cluster and job stream for measuring the scheduler
//! (`stratus bench sched`).
//!
//! The cluster is heterogeneous: 2–64 cores, 2–8 GiB per core, three disk
//! sizes, 20 sites in 5 regions with city coordinates (70% of nodes declare a
//! location), two architectures, labels (`ssd`, `gpu`, `tier`), mixed energy
//! sources, 2% of nodes ineligible. Jobs have skewed counts (40% single
//! instances, a few hundreds), varied demands, and a mix of constraints
//! (arch, region, site, labels, near, energy), spreading, both strategies and
//! distinct nodes. Everything is generated from the seed; the only clock in
//! the crate times the placement loop (job generation and
//! [`Cluster::new`] are timed separately).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stratus_spec::{Constraints, Near, SpreadBy};
use stratus_types::{Attributes, Capacity, EnergySource, NodeId, Runtime};

use crate::rng::SplitMix64;
use crate::{Cluster, Demand, NodeView, Request, Strategy, Usage, MIB};

const GIB: u64 = 1024 * MIB;

/// A site: name, latitude, longitude.
type Site = (&'static str, f64, f64);

/// Regions, each with four sites.
const REGIONS: [(&str, [Site; 4]); 5] = [
    (
        "eu-west",
        [
            ("paris", 48.86, 2.35),
            ("london", 51.51, -0.13),
            ("madrid", 40.42, -3.70),
            ("amsterdam", 52.37, 4.90),
        ],
    ),
    (
        "eu-central",
        [
            ("frankfurt", 50.11, 8.68),
            ("warsaw", 52.23, 21.01),
            ("vienna", 48.21, 16.37),
            ("zurich", 47.37, 8.54),
        ],
    ),
    (
        "us-east",
        [
            ("new-york", 40.71, -74.01),
            ("toronto", 43.65, -79.38),
            ("atlanta", 33.75, -84.39),
            ("miami", 25.76, -80.19),
        ],
    ),
    (
        "us-west",
        [
            ("san-francisco", 37.77, -122.42),
            ("seattle", 47.61, -122.33),
            ("los-angeles", 34.05, -118.24),
            ("denver", 39.74, -104.99),
        ],
    ),
    (
        "ap",
        [
            ("tokyo", 35.68, 139.69),
            ("singapore", 1.35, 103.82),
            ("sydney", -33.87, 151.21),
            ("mumbai", 19.08, 72.88),
        ],
    ),
];

const ENERGY: [EnergySource; 8] = [
    EnergySource::Unknown,
    EnergySource::Grid,
    EnergySource::Solar,
    EnergySource::Wind,
    EnergySource::Hydro,
    EnergySource::Nuclear,
    EnergySource::Fossil,
    EnergySource::Battery,
];

/// Picks from `(weight, value)` pairs.
fn weighted<T: Copy>(rng: &mut SplitMix64, table: &[(u32, T)]) -> T {
    let total: u64 = table.iter().map(|(w, _)| u64::from(*w)).sum();
    let mut x = rng.below(total.max(1));
    for &(w, v) in table {
        if x < u64::from(w) {
            return v;
        }
        x -= u64::from(w);
    }
    table[table.len() - 1].1
}

fn pick<T: Copy>(rng: &mut SplitMix64, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

/// A synthetic heterogeneous cluster of `n` empty nodes.
pub fn cluster(n: usize, seed: u64) -> Vec<NodeView> {
    let mut rng = SplitMix64::new(seed ^ 0x5EED_C1A5);
    (0..n)
        .map(|_| {
            let mut id = [0u8; 32];
            for chunk in id.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let cores = weighted(
                &mut rng,
                &[(15, 2), (25, 4), (30, 8), (20, 16), (7, 32), (3, 64)],
            );
            let gib_per_core = weighted(&mut rng, &[(30, 2), (50, 4), (20, 8)]);
            let disk_gib = weighted(&mut rng, &[(30, 64), (50, 256), (20, 1024)]);
            let (region, sites) = REGIONS[rng.below(REGIONS.len() as u64) as usize];
            let (site, lat, lon) = pick(&mut rng, &sites);
            let mut labels = BTreeMap::new();
            labels.insert("ssd".to_owned(), rng.chance(0.5).to_string());
            let gpu = if rng.chance(0.08) { "nvidia" } else { "none" };
            labels.insert("gpu".to_owned(), gpu.to_owned());
            let tier = if rng.chance(0.7) { "edge" } else { "core" };
            labels.insert("tier".to_owned(), tier.to_owned());
            let located = rng.chance(0.7);
            let jitter = |rng: &mut SplitMix64| rng.unit() - 0.5;
            let (latitude, longitude) = if located {
                (Some(lat + jitter(&mut rng)), Some(lon + jitter(&mut rng)))
            } else {
                (None, None)
            };
            NodeView {
                id: NodeId(id),
                eligible: !rng.chance(0.02),
                capacity: Capacity {
                    cpu_cores: cores,
                    memory_bytes: u64::from(cores) * gib_per_core * GIB,
                    disk_bytes: disk_gib * GIB,
                },
                attributes: Attributes {
                    arch: if rng.chance(0.8) { "x86_64" } else { "aarch64" }.to_owned(),
                    os: if rng.chance(0.97) { "linux" } else { "freebsd" }.to_owned(),
                    labels,
                    region: region.to_owned(),
                    site: site.to_owned(),
                    latitude,
                    longitude,
                    energy: pick(&mut rng, &ENERGY),
                },
                runtimes: vec![Runtime::Wasm, Runtime::Oci],
                used: Usage::default(),
                ports: stratus_types::PortRange::DEFAULT,
            }
        })
        .collect()
}

/// One job of the synthetic stream.
#[derive(Clone, Debug)]
pub struct Job {
    /// Instances.
    pub count: usize,
    /// Per instance.
    pub demand: Demand,
    /// Placement constraints.
    pub constraints: Constraints,
    /// Failure-domain spreading.
    pub spread: Option<SpreadBy>,
    /// Scoring.
    pub strategy: Strategy,
    /// Replicas on distinct nodes.
    pub distinct_nodes: bool,
}

/// A synthetic job stream totalling `tasks` instances.
pub fn jobs(tasks: usize, seed: u64) -> Vec<Job> {
    let mut rng = SplitMix64::new(seed ^ 0x0B5_5EED);
    let mut out = Vec::new();
    let mut left = tasks;
    while left > 0 {
        let (lo, hi): (u64, u64) = weighted(
            &mut rng,
            &[
                (40, (1, 1)),
                (30, (2, 5)),
                (20, (6, 20)),
                (8, (21, 100)),
                (2, (101, 500)),
            ],
        );
        let count = ((lo + rng.below(hi - lo + 1)) as usize).min(left);
        left -= count;
        let demand = Demand {
            cpu_millis: weighted(
                &mut rng,
                &[(20, 100), (25, 250), (25, 500), (20, 1000), (10, 2000)],
            ),
            memory_bytes: weighted(
                &mut rng,
                &[(20, 64), (30, 256), (25, 512), (20, 1024), (5, 4096)],
            ) * MIB,
            disk_bytes: weighted(&mut rng, &[(60, 0), (30, 1024), (10, 10240)]) * MIB,
            runtime: Runtime::Wasm,
            host_ports: None,
        };
        let mut c = Constraints::default();
        let (region, sites) = pick(&mut rng, &REGIONS);
        let (site, lat, lon) = pick(&mut rng, &sites);
        match rng.below(100) {
            0..=59 => {}
            60..=69 => c.arch = Some(if rng.chance(0.8) { "x86_64" } else { "aarch64" }.to_owned()),
            70..=77 => c.region = Some(region.to_owned()),
            78..=81 => c.site = Some(site.to_owned()),
            82..=86 => {
                let (k, v) = if rng.chance(0.7) {
                    ("ssd", "true")
                } else {
                    ("gpu", "nvidia")
                };
                c.labels.insert(k.to_owned(), v.to_owned());
            }
            87..=91 => {
                c.near = Some(Near {
                    latitude: lat,
                    longitude: lon,
                    within_km: 200.0 + 1300.0 * rng.unit(),
                })
            }
            92..=95 => {
                c.energy = vec![EnergySource::Solar, EnergySource::Wind, EnergySource::Hydro]
            }
            _ => {
                c.arch = Some("x86_64".to_owned());
                c.region = Some(region.to_owned());
                c.labels.insert("tier".to_owned(), "edge".to_owned());
            }
        }
        let spread = weighted(
            &mut rng,
            &[
                (80, None),
                (15, Some(SpreadBy::Site)),
                (5, Some(SpreadBy::Region)),
            ],
        );
        let strategy = if rng.chance(0.7) {
            Strategy::BinPack
        } else {
            Strategy::Spread
        };
        out.push(Job {
            count,
            demand,
            constraints: c,
            spread,
            strategy,
            distinct_nodes: rng.chance(0.35),
        });
    }
    out
}

/// What a simulation measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReport {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Jobs submitted.
    pub jobs: usize,
    /// Instances placed.
    pub placements: usize,
    /// Instances that did not fit anywhere.
    pub unplaced: usize,
    /// Time spent in [`Cluster::place`] for all jobs.
    pub elapsed: Duration,
    /// Time spent in [`Cluster::new`].
    pub build: Duration,
}

impl SimReport {
    /// Placed instances per second of scheduling time.
    pub fn placements_per_sec(&self) -> f64 {
        self.placements as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Builds a cluster of `nodes` and schedules a stream of jobs totalling
/// `tasks` instances on it, one job after the other, on the calling thread.
pub fn simulate(nodes: usize, tasks: usize, seed: u64) -> SimReport {
    let views = cluster(nodes, seed);
    let jobs = jobs(tasks, seed);
    let t0 = Instant::now();
    let mut cluster = Cluster::new(views);
    let build = t0.elapsed();
    let (mut placements, mut unplaced) = (0, 0);
    let t1 = Instant::now();
    for (n, job) in jobs.iter().enumerate() {
        let plan = cluster.place(&Request {
            count: job.count,
            demand: job.demand,
            constraints: &job.constraints,
            spread: job.spread,
            strategy: job.strategy,
            existing: Vec::new(),
            avoid: Vec::new(),
            distinct_nodes: job.distinct_nodes,
            seed: seed.wrapping_add(n as u64),
            market: None,
        });
        placements += plan.placements.len();
        unplaced += plan.unplaced;
    }
    SimReport {
        nodes,
        jobs: jobs.len(),
        placements,
        unplaced,
        elapsed: t1.elapsed(),
        build,
    }
}
