//! Interned node attributes and constraints compiled to integer comparisons.
//!
//! Everything here must agree exactly with [`crate::feasible`]; the property
//! tests compare the two on random clusters.

use std::collections::HashMap;

use stratus_spec::Constraints;
use stratus_types::{EnergySource, PortRange, Runtime};

use crate::{haversine_km, Demand, Reason, EARTH_RADIUS_KM};

/// Id of a value no node has: matches nothing.
pub(crate) const NONE: u32 = u32::MAX;

/// Strings to dense ids, in order of first appearance.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interner {
    map: HashMap<String, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.map.len() as u32;
        self.map.insert(s.to_owned(), id);
        id
    }

    pub(crate) fn get(&self, s: &str) -> u32 {
        self.map.get(s).copied().unwrap_or(NONE)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// `key=value` label pairs to dense ids.
#[derive(Clone, Debug, Default)]
pub(crate) struct LabelInterner {
    map: HashMap<String, HashMap<String, u32>>,
    len: u32,
}

impl LabelInterner {
    pub(crate) fn intern(&mut self, k: &str, v: &str) -> u32 {
        let values = self.map.entry(k.to_owned()).or_default();
        if let Some(&id) = values.get(v) {
            return id;
        }
        let id = self.len;
        self.len += 1;
        values.insert(v.to_owned(), id);
        id
    }

    pub(crate) fn get(&self, k: &str, v: &str) -> u32 {
        self.map
            .get(k)
            .and_then(|m| m.get(v))
            .copied()
            .unwrap_or(NONE)
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// All the interners of a cluster.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dict {
    pub(crate) arch: Interner,
    pub(crate) os: Interner,
    pub(crate) region: Interner,
    pub(crate) site: Interner,
    pub(crate) labels: LabelInterner,
}

/// The hot, compact form of a node: what the inner loops read.
#[derive(Clone, Debug)]
pub(crate) struct Hot {
    /// `[cpu millis, memory bytes, disk bytes]`.
    pub(crate) cap: [u64; 3],
    pub(crate) used: [u64; 3],
    pub(crate) eligible: bool,
    /// One bit per [`Runtime`] the node runs.
    pub(crate) runtimes: u8,
    /// Host ports the lender allows.
    pub(crate) ports: PortRange,
    pub(crate) energy: u8,
    pub(crate) arch: u32,
    pub(crate) os: u32,
    pub(crate) region: u32,
    pub(crate) site: u32,
    /// Range in the cluster's label pool (sorted pair ids).
    pub(crate) labels_at: u32,
    pub(crate) labels_len: u32,
    /// Degrees; NaN when not declared.
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

impl Hot {
    pub(crate) fn build(dict: &mut Dict, pool: &mut Vec<u32>, n: &crate::NodeView) -> Hot {
        let a = &n.attributes;
        let labels_at = pool.len() as u32;
        let start = pool.len();
        for (k, v) in &a.labels {
            pool.push(dict.labels.intern(k, v));
        }
        pool[start..].sort_unstable();
        let (lat, lon) = match (a.latitude, a.longitude) {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => (f64::NAN, f64::NAN),
        };
        Hot {
            cap: crate::capacity_arr(&n.capacity),
            used: n.used.arr(),
            eligible: n.eligible,
            runtimes: n.runtimes.iter().fold(0, |m, r| m | runtime_bit(*r)),
            ports: n.ports,
            energy: energy_bit(a.energy),
            arch: dict.arch.intern(&a.arch),
            os: dict.os.intern(&a.os),
            region: dict.region.intern(&a.region),
            site: dict.site.intern(&a.site),
            labels_at,
            labels_len: (pool.len() - start) as u32,
            lat,
            lon,
        }
    }

    #[inline]
    pub(crate) fn fits(&self, d: &[u64; 3]) -> bool {
        d[0] <= self.cap[0].saturating_sub(self.used[0])
            && d[1] <= self.cap[1].saturating_sub(self.used[1])
            && d[2] <= self.cap[2].saturating_sub(self.used[2])
    }
}

fn runtime_bit(r: Runtime) -> u8 {
    match r {
        Runtime::Wasm => 1,
        Runtime::Oci => 2,
    }
}

fn energy_bit(e: EnergySource) -> u8 {
    match e {
        EnergySource::Unknown => 0,
        EnergySource::Grid => 1,
        EnergySource::Solar => 2,
        EnergySource::Wind => 3,
        EnergySource::Hydro => 4,
        EnergySource::Nuclear => 5,
        EnergySource::Fossil => 6,
        EnergySource::Battery => 7,
    }
}

/// A `near` constraint, with the latitude band that bounds it.
#[derive(Clone, Debug)]
pub(crate) struct NearC {
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    pub(crate) within_km: f64,
    /// When set, a node whose valid latitude (in `[-90, 90]`) differs from
    /// `lat` by more than this many degrees is surely too far: the
    /// great-circle distance is at least the latitude difference times the
    /// Earth's radius. Padded against rounding.
    pub(crate) band_deg: Option<f64>,
}

impl NearC {
    #[inline]
    fn holds(&self, h: &Hot) -> bool {
        if let Some(band) = self.band_deg {
            if (-90.0..=90.0).contains(&h.lat) && (h.lat - self.lat).abs() > band {
                return false;
            }
        }
        haversine_km(self.lat, self.lon, h.lat, h.lon) <= self.within_km
    }
}

/// Which check a node failed first (see [`crate::feasible`] for the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Fail {
    Ineligible,
    Runtime,
    Ports,
    Label(usize),
    Arch,
    Os,
    Region,
    Site,
    Near,
    Energy,
    Cpu,
    Memory,
    Disk,
}

/// A request's constraints and demand, compiled against a cluster's [`Dict`].
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    /// Required label pair ids, in label key order ([`NONE`] if unknown).
    pub(crate) labels: Vec<u32>,
    pub(crate) label_keys: Vec<String>,
    pub(crate) arch: Option<u32>,
    pub(crate) os: Option<u32>,
    pub(crate) region: Option<u32>,
    pub(crate) site: Option<u32>,
    pub(crate) near: Option<NearC>,
    /// Accepted energy bits; all ones when any is accepted.
    pub(crate) energy_mask: u8,
    pub(crate) demand: [u64; 3],
    /// The [`runtime_bit`] of the demand's runtime.
    pub(crate) runtime: u8,
    /// The demand's fixed host ports (lowest, highest).
    pub(crate) host_ports: Option<(u16, u16)>,
}

impl Compiled {
    pub(crate) fn new(dict: &Dict, c: &Constraints, demand: &Demand) -> Compiled {
        let opt = |v: &Option<String>, i: &Interner| v.as_deref().map(|s| i.get(s));
        let energy_mask = if c.energy.is_empty() {
            u8::MAX
        } else {
            c.energy.iter().fold(0u8, |m, e| m | (1 << energy_bit(*e)))
        };
        let near = c.near.as_ref().map(|n| {
            let valid = (-90.0..=90.0).contains(&n.latitude) && n.within_km.is_finite();
            let band_deg = valid.then(|| {
                (n.within_km.max(0.0) / EARTH_RADIUS_KM).to_degrees() * (1.0 + 1e-9) + 1e-7
            });
            NearC {
                lat: n.latitude,
                lon: n.longitude,
                within_km: n.within_km,
                band_deg,
            }
        });
        Compiled {
            labels: c
                .labels
                .iter()
                .map(|(k, v)| dict.labels.get(k, v))
                .collect(),
            label_keys: c.labels.keys().cloned().collect(),
            arch: opt(&c.arch, &dict.arch),
            os: opt(&c.os, &dict.os),
            region: opt(&c.region, &dict.region),
            site: opt(&c.site, &dict.site),
            near,
            energy_mask,
            demand: demand.arr(),
            runtime: runtime_bit(demand.runtime),
            host_ports: demand.host_ports,
        }
    }

    #[inline]
    fn has_labels(&self, h: &Hot, pool: &[u32]) -> bool {
        if self.labels.is_empty() {
            return true;
        }
        let at = h.labels_at as usize;
        let mine = &pool[at..at + h.labels_len as usize];
        self.labels.iter().all(|l| mine.binary_search(l).is_ok())
    }

    /// Constraint checks only (not eligibility, not capacity).
    #[inline]
    pub(crate) fn constraints_ok(&self, h: &Hot, pool: &[u32]) -> bool {
        self.arch.is_none_or(|x| x == h.arch)
            && self.os.is_none_or(|x| x == h.os)
            && self.region.is_none_or(|x| x == h.region)
            && self.site.is_none_or(|x| x == h.site)
            && (self.energy_mask >> h.energy) & 1 == 1
            && self.has_labels(h, pool)
            && self.near.as_ref().is_none_or(|n| n.holds(h))
    }

    /// Whether the node can take one instance now (fast path; checks in the
    /// cheapest-first order).
    #[inline]
    pub(crate) fn ok(&self, h: &Hot, pool: &[u32]) -> bool {
        h.fits(&self.demand)
            && h.eligible
            && h.runtimes & self.runtime != 0
            && crate::ports_fit(&h.ports, self.host_ports)
            && self.constraints_ok(h, pool)
    }

    /// The first failed check, in [`crate::feasible`]'s order.
    pub(crate) fn first_failure(&self, h: &Hot, pool: &[u32]) -> Option<Fail> {
        if !h.eligible {
            return Some(Fail::Ineligible);
        }
        if h.runtimes & self.runtime == 0 {
            return Some(Fail::Runtime);
        }
        if !crate::ports_fit(&h.ports, self.host_ports) {
            return Some(Fail::Ports);
        }
        let at = h.labels_at as usize;
        let mine = &pool[at..at + h.labels_len as usize];
        if let Some(i) = self
            .labels
            .iter()
            .position(|l| mine.binary_search(l).is_err())
        {
            return Some(Fail::Label(i));
        }
        if self.arch.is_some_and(|x| x != h.arch) {
            return Some(Fail::Arch);
        }
        if self.os.is_some_and(|x| x != h.os) {
            return Some(Fail::Os);
        }
        if self.region.is_some_and(|x| x != h.region) {
            return Some(Fail::Region);
        }
        if self.site.is_some_and(|x| x != h.site) {
            return Some(Fail::Site);
        }
        if !self.near.as_ref().is_none_or(|n| n.holds(h)) {
            return Some(Fail::Near);
        }
        if (self.energy_mask >> h.energy) & 1 == 0 {
            return Some(Fail::Energy);
        }
        let d = &self.demand;
        for (r, fail) in [Fail::Cpu, Fail::Memory, Fail::Disk]
            .into_iter()
            .enumerate()
        {
            if d[r] > h.cap[r].saturating_sub(h.used[r]) {
                return Some(fail);
            }
        }
        None
    }

    pub(crate) fn reason(&self, f: Fail) -> Reason {
        match f {
            Fail::Ineligible => Reason::Ineligible,
            Fail::Runtime => Reason::Runtime,
            Fail::Ports => Reason::Ports,
            Fail::Label(i) => Reason::Label(self.label_keys.get(i).cloned().unwrap_or_default()),
            Fail::Arch => Reason::Arch,
            Fail::Os => Reason::Os,
            Fail::Region => Reason::Region,
            Fail::Site => Reason::Site,
            Fail::Near => Reason::Near,
            Fail::Energy => Reason::Energy,
            Fail::Cpu => Reason::Cpu,
            Fail::Memory => Reason::Memory,
            Fail::Disk => Reason::Disk,
        }
    }
}
