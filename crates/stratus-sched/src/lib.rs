//! The workload scheduler.
//!
//! **Owns** placement decisions for instances and pieces, as pure code.
//! **Does not own** when to place (the control plane's reconciler and the
//! store's repair) or the state it reads (passed in).
//!
//! Pure code: no IO, no async, no clock (except in `sim`, the synthetic
//! cluster of `stratus bench sched`, compiled only for this crate's tests and
//! with the `bench` feature, which only `stratus-bench` enables: it draws from
//! the crate's private seeded generator, so it cannot live outside). Given
//! the same [`Cluster`] history and the same [`Request`], it returns the same
//! [`Plan`]. The Raft leader computes placements with it and then writes them
//! through Raft.
//!
//! # What a placement must satisfy
//!
//! A node is **feasible** for an instance ([`feasible`]) when it is eligible
//! (ready and not draining), runs the payload's runtime, allows every fixed
//! host port the workload publishes (the lender's `--ports` range), every
//! given constraint holds (labels equal;
//! `arch`/`os`/`region`/`site` equal; `near`: the node declares a latitude and
//! longitude within `within_km`; `energy`: the node's source is listed, when
//! the list is not empty), and its free capacity fits the demand on CPU,
//! memory and disk. Nodes are never over-committed.
//!
//! # How a node is chosen
//!
//! * **Indexes.** [`Cluster::new`] interns attribute values and builds
//!   buckets (by site, region, arch, os, label, and a latitude-sorted list for
//!   `near`). A request's constraints are compiled once to integer
//!   comparisons, and its candidates come from the narrowest bucket.
//! * **Bounded sampling** (as Nomad does): candidates are visited in a
//!   seeded pseudo-random order and each placement scores only the next
//!   `max(8, ⌈log2 n⌉)` feasible nodes (plus the node chosen last), so a
//!   placement costs about `log2 n` feasibility checks, not `n`. Nodes found
//!   infeasible are never looked at again by the same request (usage only
//!   grows during a request); after one full pass the request cycles through
//!   the feasible nodes it found.
//! * **Scoring** ([`Strategy`]): bin-pack prefers the node whose CPU and
//!   memory would be fullest after the placement; spread the emptiest.
//! * **Failure domains** ([`SpreadBy`]): with `spread`, each instance goes to
//!   the domain (site or region) with the fewest instances of the workload so
//!   far (existing plus newly placed) among the domains that still have a
//!   feasible node ("water-filling"), so per-domain counts differ by at most
//!   one whenever capacity allows (and existing instances were balanced).
//!   Spreading takes precedence over `distinct_nodes`.
//! * **Distinct nodes**: nodes already hosting the workload are used only when
//!   no other feasible node is left (in the chosen domain, when spreading).
//!
//! # Piece placement
//!
//! The object store's erasure-coded pieces are placed by [`pieces`], apart
//! from workload placement: [`place_pieces`] chooses distinct storage nodes
//! with enough free space for the new pieces of one stripe, never a node
//! already holding one, water-filling the stripe over sites (each piece goes
//! to a site with the fewest pieces of the stripe so far) and, within a site,
//! picking a node at random in proportion to its free bytes (seeded). A node
//! with an unknown site (`""`) counts as a site of its own.
//! [`fault_tolerance`] tells how many node and whole-site losses a stripe
//! survives, and [`default_profile`] picks `k + m` for a cluster size
//! (surviving 2 node losses from 3 nodes up with 2 nodes spare for repair
//! from 5 nodes up: 2+2 on 6 nodes, 4+2 from 8).

mod cluster;
mod compile;
pub mod market;
pub mod pieces;
mod rng;
#[cfg(any(test, feature = "bench"))]
pub mod sim;

use std::collections::BTreeMap;

pub use stratus_spec::{Constraints, Near, SpreadBy};
use stratus_spec::{Resources, WorkloadSpec};
pub use stratus_types::Runtime;
use stratus_types::{Attributes, Capacity, NodeId, PortRange};

pub use cluster::{daemon_targets, Cluster};
pub use market::{Market, Prefer, Quote};
pub use pieces::{
    default_profile, default_profile_owned, fault_tolerance, place_pieces, place_stripe, Held,
    PiecePlacementError, StorageNode,
};

/// One MiB in bytes.
pub const MIB: u64 = 1024 * 1024;

/// Mean Earth radius used by [`haversine_km`], in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Identity.
    pub id: NodeId,
    /// Ready and not draining.
    pub eligible: bool,
    /// Resources lent (CPU counts `cpu_cores * 1000` millis).
    pub capacity: Capacity,
    /// Attributes matched by constraints.
    pub attributes: Attributes,
    /// Payloads the node can run.
    pub runtimes: Vec<Runtime>,
    /// Resources reserved by instances placed on the node.
    pub used: Usage,
    /// Host ports the lender allows published container ports on.
    pub ports: PortRange,
}

/// Resources reserved on a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk in bytes.
    pub disk_bytes: u64,
}

/// What one instance needs: resources and a runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Demand {
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk in bytes.
    pub disk_bytes: u64,
    /// The runtime its payload needs.
    pub runtime: Runtime,
    /// The lowest and highest fixed host port it publishes (`None`: no
    /// fixed host port; `host: 0` lets the node pick one in its range).
    pub host_ports: Option<(u16, u16)>,
}

impl From<&Resources> for Demand {
    /// The resources of a WASM instance.
    fn from(r: &Resources) -> Self {
        Demand {
            cpu_millis: u64::from(r.cpu_millis),
            memory_bytes: r.memory_mb.saturating_mul(MIB),
            disk_bytes: r.disk_mb.saturating_mul(MIB),
            runtime: Runtime::Wasm,
            host_ports: None,
        }
    }
}

impl From<&WorkloadSpec> for Demand {
    /// What one instance of the workload needs.
    fn from(spec: &WorkloadSpec) -> Self {
        Demand {
            runtime: if spec.image.is_some() {
                Runtime::Oci
            } else {
                Runtime::Wasm
            },
            host_ports: host_port_span(spec),
            ..Demand::from(&spec.resources)
        }
    }
}

/// The lowest and highest fixed (non-zero) host port a workload publishes.
pub fn host_port_span(spec: &WorkloadSpec) -> Option<(u16, u16)> {
    let ports = spec.image.as_ref()?.ports.iter().map(|p| p.host);
    let fixed: Vec<u16> = ports.filter(|&p| p != 0).collect();
    Some((*fixed.iter().min()?, *fixed.iter().max()?))
}

impl Demand {
    /// The demand with these host ports published too (0: any free port,
    /// which every range has), e.g. a container's UDP ports.
    pub fn with_host_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Demand {
        for p in ports.into_iter().filter(|&p| p != 0) {
            self.host_ports = Some(match self.host_ports {
                Some((lo, hi)) => (lo.min(p), hi.max(p)),
                None => (p, p),
            });
        }
        self
    }
}

/// Whether every fixed host port of `span` is inside `range`.
pub(crate) fn ports_fit(range: &PortRange, span: Option<(u16, u16)>) -> bool {
    span.is_none_or(|(lo, hi)| range.contains(lo) && range.contains(hi))
}

impl Demand {
    pub(crate) fn arr(&self) -> [u64; 3] {
        [self.cpu_millis, self.memory_bytes, self.disk_bytes]
    }
}

impl Usage {
    pub(crate) fn arr(&self) -> [u64; 3] {
        [self.cpu_millis, self.memory_bytes, self.disk_bytes]
    }
    pub(crate) fn from_arr(a: [u64; 3]) -> Usage {
        Usage {
            cpu_millis: a[0],
            memory_bytes: a[1],
            disk_bytes: a[2],
        }
    }
}

/// Capacity of a node as `[cpu millis, memory bytes, disk bytes]`.
pub(crate) fn capacity_arr(c: &Capacity) -> [u64; 3] {
    [
        u64::from(c.cpu_cores).saturating_mul(1000),
        c.memory_bytes,
        c.disk_bytes,
    ]
}

/// How to choose among feasible nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Fill the fullest feasible node first (keeps whole nodes free).
    #[default]
    BinPack,
    /// Use the least loaded feasible node (spreads load).
    Spread,
}

/// What to place.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Instances to place.
    pub count: usize,
    /// Resources of one instance.
    pub demand: Demand,
    /// Where instances may run.
    pub constraints: &'a Constraints,
    /// Spread instances evenly across this failure domain.
    pub spread: Option<SpreadBy>,
    /// Scoring among feasible nodes.
    pub strategy: Strategy,
    /// Nodes already running live instances of this workload (a node may be
    /// listed once per instance): they count toward `spread` and
    /// `distinct_nodes`.
    pub existing: Vec<NodeId>,
    /// Never place on these (e.g. the lost or draining node being replaced).
    pub avoid: Vec<NodeId>,
    /// Put instances on different nodes when possible (services); double up
    /// only when no other feasible node exists.
    pub distinct_nodes: bool,
    /// Seed of the sampling order. Any value works; the plan is a function of
    /// the cluster's history, the request and this seed.
    pub seed: u64,
    /// The market order's side: only nodes whose offer fits, within the
    /// requester's budget, ranked by its preference ([`market`]).
    pub market: Option<&'a Market>,
}

impl<'a> Request<'a> {
    /// A request for `count` instances with default settings: bin-pack, no
    /// spread, nothing existing or avoided, nodes may be shared, seed 0.
    pub fn new(count: usize, demand: Demand, constraints: &'a Constraints) -> Self {
        Request {
            count,
            demand,
            constraints,
            spread: None,
            strategy: Strategy::BinPack,
            existing: Vec::new(),
            avoid: Vec::new(),
            distinct_nodes: false,
            seed: 0,
            market: None,
        }
    }
}

/// The outcome of [`Cluster::place`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One node per placed instance, in placement order.
    pub placements: Vec<NodeId>,
    /// Instances that could not be placed.
    pub unplaced: usize,
    /// When `unplaced > 0`: for each [`Reason`] (its `Display` text, e.g.
    /// `memory`, `constraint: arch`), how many nodes it ruled out, counting
    /// each node once under the first reason that applies, after the
    /// placements were made. Empty when everything was placed.
    pub reasons: BTreeMap<String, usize>,
}

impl Plan {
    /// Whether every instance was placed.
    pub fn is_complete(&self) -> bool {
        self.unplaced == 0
    }
}

/// Why a node cannot take an instance. `Display` gives the key used in
/// [`Plan::reasons`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum Reason {
    /// Not ready, or draining.
    #[error("ineligible")]
    Ineligible,
    /// Cannot run the payload (e.g. an image on a node without containers).
    #[error("cannot run this payload (no container support)")]
    Runtime,
    /// A fixed host port of the workload is outside the ports the node's
    /// lender allows (`stratus node --ports`).
    #[error("host port outside the node's allowed ports")]
    Ports,
    /// Listed in [`Request::avoid`].
    #[error("avoided")]
    Avoided,
    /// Missing a required label (or it has another value).
    #[error("constraint: label {0}")]
    Label(String),
    /// Other architecture.
    #[error("constraint: arch")]
    Arch,
    /// Other operating system.
    #[error("constraint: os")]
    Os,
    /// Other region.
    #[error("constraint: region")]
    Region,
    /// Other site.
    #[error("constraint: site")]
    Site,
    /// No declared location, or too far.
    #[error("constraint: near")]
    Near,
    /// Energy source not accepted.
    #[error("constraint: energy")]
    Energy,
    /// Not enough free CPU.
    #[error("cpu")]
    Cpu,
    /// Not enough free memory.
    #[error("memory")]
    Memory,
    /// Not enough free disk.
    #[error("disk")]
    Disk,
}

/// Checks whether `node` can take one instance of `demand` under
/// `constraints`; on failure, the first reason in the order: eligibility,
/// runtime, host ports, labels (in key order), arch, os, region, site, near, energy, cpu,
/// memory, disk.
pub fn feasible(node: &NodeView, demand: &Demand, constraints: &Constraints) -> Result<(), Reason> {
    if !node.eligible {
        return Err(Reason::Ineligible);
    }
    if !node.runtimes.contains(&demand.runtime) {
        return Err(Reason::Runtime);
    }
    if !ports_fit(&node.ports, demand.host_ports) {
        return Err(Reason::Ports);
    }
    constraints_hold(&node.attributes, constraints)?;
    fits(
        &capacity_arr(&node.capacity),
        &node.used.arr(),
        &demand.arr(),
    )
}

/// Whether the attributes satisfy the constraints (ignoring capacity).
pub(crate) fn constraints_hold(a: &Attributes, c: &Constraints) -> Result<(), Reason> {
    for (k, v) in &c.labels {
        if a.labels.get(k) != Some(v) {
            return Err(Reason::Label(k.clone()));
        }
    }
    let eq = |want: &Option<String>, have: &String| want.as_ref().is_none_or(|w| w == have);
    if !eq(&c.arch, &a.arch) {
        return Err(Reason::Arch);
    }
    if !eq(&c.os, &a.os) {
        return Err(Reason::Os);
    }
    if !eq(&c.region, &a.region) {
        return Err(Reason::Region);
    }
    if !eq(&c.site, &a.site) {
        return Err(Reason::Site);
    }
    if let Some(n) = &c.near {
        let ok = match (a.latitude, a.longitude) {
            (Some(lat), Some(lon)) => {
                haversine_km(n.latitude, n.longitude, lat, lon) <= n.within_km
            }
            _ => false,
        };
        if !ok {
            return Err(Reason::Near);
        }
    }
    if !c.energy.is_empty() && !c.energy.contains(&a.energy) {
        return Err(Reason::Energy);
    }
    Ok(())
}

/// Whether `demand` fits the free part of `cap` given `used`
/// (`[cpu, memory, disk]`).
pub(crate) fn fits(cap: &[u64; 3], used: &[u64; 3], demand: &[u64; 3]) -> Result<(), Reason> {
    const WHY: [Reason; 3] = [Reason::Cpu, Reason::Memory, Reason::Disk];
    for (r, why) in WHY.into_iter().enumerate() {
        if demand[r] > cap[r].saturating_sub(used[r]) {
            return Err(why);
        }
    }
    Ok(())
}

/// Great-circle distance in km between two points given in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests;
