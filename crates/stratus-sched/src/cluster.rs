//! The cluster model, its indexes, and placement.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use stratus_spec::{Constraints, SpreadBy};
use stratus_types::NodeId;

use crate::compile::{Compiled, Dict, Fail, Hot, NONE};
use crate::market::Priced;
use crate::rng::SplitMix64;
use crate::{Demand, NodeView, Plan, Request, Strategy, Usage};

/// Flag: the node is in [`Request::avoid`].
const AVOID: u8 = 1;
/// Flag: the node hosts an instance of the workload being placed.
const HOST: u8 = 2;

/// Node positions (indexes into [`Cluster::nodes`]) by attribute value.
#[derive(Clone, Debug, Default)]
struct Index {
    all: Vec<u32>,
    by_arch: Vec<Vec<u32>>,
    by_os: Vec<Vec<u32>>,
    by_region: Vec<Vec<u32>>,
    by_site: Vec<Vec<u32>>,
    by_label: Vec<Vec<u32>>,
    /// Nodes with a finite location and a latitude in `[-90, 90]`, sorted by
    /// latitude; `lats` holds the latitudes in the same order.
    by_lat: Vec<u32>,
    lats: Vec<f64>,
    /// Nodes with a finite location but an out-of-range latitude.
    odd_location: Vec<u32>,
    /// Region ids seen at each site (sorted).
    site_regions: Vec<Vec<u32>>,
}

fn bucket(v: &mut Vec<Vec<u32>>, id: u32, i: u32) {
    let id = id as usize;
    if v.len() <= id {
        v.resize_with(id + 1, Vec::new);
    }
    v[id].push(i);
}

fn get(v: &[Vec<u32>], id: u32) -> &[u32] {
    v.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
}

/// The nodes the scheduler may place on, with their usage and indexes.
///
/// Attributes are fixed for the life of a `Cluster` (build a new one when
/// nodes join, leave or change); eligibility and usage can be changed in
/// place. Node ids are expected to be unique; with duplicates, lookups by id
/// find the last one.
#[derive(Clone, Debug)]
pub struct Cluster {
    views: Vec<NodeView>,
    hot: Vec<Hot>,
    label_pool: Vec<u32>,
    dict: Dict,
    index: Index,
    by_id: HashMap<NodeId, u32>,
    /// Per-node scratch flags ([`AVOID`], [`HOST`]); all zero between calls.
    flags: Vec<u8>,
    /// Number of `place` calls so far (mixed into the sampling seed).
    generation: u64,
    /// The nodes placed on most recently, newest first: bin-pack also scores
    /// these, so that a stream of small requests keeps filling the same
    /// partly used nodes instead of starting new ones.
    recent: Vec<u32>,
}

/// Length of [`Cluster::recent`].
const RECENT: usize = 8;

impl Cluster {
    /// Builds the cluster and its indexes (`O(n log n)`).
    pub fn new(nodes: Vec<NodeView>) -> Cluster {
        let mut dict = Dict::default();
        let mut label_pool = Vec::new();
        let mut index = Index::default();
        let mut by_id = HashMap::with_capacity(nodes.len());
        let mut hot = Vec::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            let i = i as u32;
            let h = Hot::build(&mut dict, &mut label_pool, n);
            index.all.push(i);
            bucket(&mut index.by_arch, h.arch, i);
            bucket(&mut index.by_os, h.os, i);
            bucket(&mut index.by_region, h.region, i);
            bucket(&mut index.by_site, h.site, i);
            let at = h.labels_at as usize;
            for &l in &label_pool[at..at + h.labels_len as usize] {
                bucket(&mut index.by_label, l, i);
            }
            if h.lat.is_finite() && h.lon.is_finite() {
                if (-90.0..=90.0).contains(&h.lat) {
                    index.by_lat.push(i);
                } else {
                    index.odd_location.push(i);
                }
            }
            let site = h.site as usize;
            if index.site_regions.len() <= site {
                index.site_regions.resize_with(site + 1, Vec::new);
            }
            if let Err(at) = index.site_regions[site].binary_search(&h.region) {
                index.site_regions[site].insert(at, h.region);
            }
            by_id.insert(n.id, i);
            hot.push(h);
        }
        index.by_lat.sort_by(|&a, &b| {
            hot[a as usize]
                .lat
                .total_cmp(&hot[b as usize].lat)
                .then(a.cmp(&b))
        });
        index.lats = index.by_lat.iter().map(|&i| hot[i as usize].lat).collect();
        // Make sure every interned id has a (possibly empty) bucket.
        index.by_region.resize_with(dict.region.len(), Vec::new);
        index.by_site.resize_with(dict.site.len(), Vec::new);
        index.by_label.resize_with(dict.labels.len(), Vec::new);
        let flags = vec![0; nodes.len()];
        Cluster {
            views: nodes,
            hot,
            label_pool,
            dict,
            index,
            by_id,
            flags,
            generation: 0,
            recent: Vec::with_capacity(RECENT + 1),
        }
    }

    /// The nodes, in the order given to [`Cluster::new`], with current usage.
    pub fn nodes(&self) -> &[NodeView] {
        &self.views
    }

    /// One node by id.
    pub fn node(&self, id: &NodeId) -> Option<&NodeView> {
        self.by_id.get(id).map(|&i| &self.views[i as usize])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Returns one instance's resources to a node (saturating at zero).
    /// Returns false if the node is unknown.
    pub fn release(&mut self, node: &NodeId, demand: &Demand) -> bool {
        let Some(&i) = self.by_id.get(node) else {
            return false;
        };
        let i = i as usize;
        let d = demand.arr();
        for (u, d) in self.hot[i].used.iter_mut().zip(d) {
            *u = u.saturating_sub(d);
        }
        self.views[i].used = Usage::from_arr(self.hot[i].used);
        true
    }

    /// Marks a node eligible or not (ready and not draining). Returns false if
    /// the node is unknown.
    pub fn set_eligible(&mut self, node: &NodeId, eligible: bool) -> bool {
        let Some(&i) = self.by_id.get(node) else {
            return false;
        };
        self.hot[i as usize].eligible = eligible;
        self.views[i as usize].eligible = eligible;
        true
    }

    /// Places `req.count` instances and reserves their demand on the chosen
    /// nodes, so later calls see the new usage. See the crate docs for how
    /// nodes are chosen.
    pub fn place(&mut self, req: &Request<'_>) -> Plan {
        self.generation = self.generation.wrapping_add(1);
        let mut rng =
            SplitMix64::new(req.seed ^ self.generation.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let comp = Compiled::new(&self.dict, req.constraints, &req.demand);

        // Mark avoided and hosting nodes.
        let mut avoided = Vec::new();
        for id in &req.avoid {
            if let Some(&i) = self.by_id.get(id) {
                self.flags[i as usize] |= AVOID;
                avoided.push(i);
            }
        }
        let mut hosting = Vec::new();
        for id in &req.existing {
            if let Some(&i) = self.by_id.get(id) {
                if self.flags[i as usize] & HOST == 0 {
                    self.flags[i as usize] |= HOST;
                    hosting.push(i);
                }
            }
        }

        let ids: Vec<NodeId> = req
            .market
            .map_or_else(Vec::new, |_| self.views.iter().map(|v| v.id).collect());
        let mut st = State {
            priced: req.market.map(|m| Priced::new(m, &ids)),
            hot: &mut self.hot,
            views: &mut self.views,
            flags: &mut self.flags,
            pool: &self.label_pool,
            comp: &comp,
            strategy: req.strategy,
            distinct: req.distinct_nodes,
            hosting,
            placements: Vec::with_capacity(req.count),
            scratch: Vec::new(),
            recent: &mut self.recent,
        };
        match req.spread {
            None => place_plain(&mut st, &self.index, req.count, &mut rng),
            Some(by) => {
                let mut counts: Vec<u64> = vec![0; domain_count(&self.index, by)];
                for id in &req.existing {
                    if let Some(&i) = self.by_id.get(id) {
                        counts[domain_of(&st.hot[i as usize], by) as usize] += 1;
                    }
                }
                place_spread(&mut st, &self.index, by, counts, req.count, &mut rng);
            }
        }
        let State {
            placements,
            hosting,
            priced,
            ..
        } = st;
        let unplaced = req.count - placements.len();
        let reasons = if unplaced > 0 {
            diagnose(
                &self.hot,
                &self.flags,
                &self.label_pool,
                &comp,
                priced.as_ref(),
            )
        } else {
            BTreeMap::new()
        };
        for i in avoided.into_iter().chain(hosting) {
            self.flags[i as usize] = 0;
        }
        Plan {
            placements: placements
                .into_iter()
                .map(|i| self.views[i as usize].id)
                .collect(),
            unplaced,
            reasons,
        }
    }
}

/// Every eligible node that satisfies the constraints and has room for one
/// instance of `demand` (where a daemon runs), in cluster order.
pub fn daemon_targets(
    cluster: &Cluster,
    demand: &Demand,
    constraints: &Constraints,
) -> Vec<NodeId> {
    let comp = Compiled::new(&cluster.dict, constraints, demand);
    let base = narrowest(&cluster.index, &comp);
    let mut out: Vec<u32> = base
        .iter()
        .copied()
        .filter(|&i| comp.ok(&cluster.hot[i as usize], &cluster.label_pool))
        .collect();
    out.sort_unstable();
    out.into_iter()
        .map(|i| cluster.views[i as usize].id)
        .collect()
}

/// The smallest index bucket that contains every node that can satisfy the
/// constraints.
fn narrowest<'a>(index: &'a Index, c: &Compiled) -> Cow<'a, [u32]> {
    let mut best: &[u32] = &index.all;
    let mut consider = |s: &'a [u32]| {
        if s.len() < best.len() {
            best = s;
        }
    };
    let id_bucket = |v: &'a [Vec<u32>], id: Option<u32>| id.map(|id| get(v, id));
    for s in [
        id_bucket(&index.by_site, c.site),
        id_bucket(&index.by_region, c.region),
        id_bucket(&index.by_arch, c.arch),
        id_bucket(&index.by_os, c.os),
    ]
    .into_iter()
    .flatten()
    {
        consider(s);
    }
    for &l in &c.labels {
        consider(if l == NONE {
            &[]
        } else {
            get(&index.by_label, l)
        });
    }
    if let Some(n) = &c.near {
        let (lo, hi) = match n.band_deg {
            Some(b) => (
                index.lats.partition_point(|&x| x < n.lat - b),
                index.lats.partition_point(|&x| x <= n.lat + b),
            ),
            None => (0, index.lats.len()),
        };
        let band = &index.by_lat[lo..hi.max(lo)];
        if band.len() + index.odd_location.len() < best.len() {
            if index.odd_location.is_empty() {
                return Cow::Borrowed(band);
            }
            let mut v = band.to_vec();
            v.extend_from_slice(&index.odd_location);
            return Cow::Owned(v);
        }
    }
    Cow::Borrowed(best)
}

fn domain_count(index: &Index, by: SpreadBy) -> usize {
    match by {
        SpreadBy::Site => index.by_site.len(),
        SpreadBy::Region => index.by_region.len(),
    }
}

fn domain_of(h: &Hot, by: SpreadBy) -> u32 {
    match by {
        SpreadBy::Site => h.site,
        SpreadBy::Region => h.region,
    }
}

/// `max(8, ⌈log2 n⌉)`: how many fresh feasible nodes each placement scores
/// (small clusters are scored exhaustively).
fn sample_size(n: usize) -> usize {
    let bits = usize::BITS - n.saturating_sub(1).leading_zeros();
    (bits as usize).max(8)
}

/// Mutable placement state of one request.
struct State<'c> {
    hot: &'c mut [Hot],
    views: &'c mut [NodeView],
    flags: &'c mut [u8],
    pool: &'c [u32],
    comp: &'c Compiled,
    strategy: Strategy,
    distinct: bool,
    /// Nodes flagged [`HOST`].
    hosting: Vec<u32>,
    placements: Vec<u32>,
    scratch: Vec<u32>,
    recent: &'c mut Vec<u32>,
    /// The market order's side, if the request has one.
    priced: Option<Priced>,
}

impl State<'_> {
    /// Whether `i` can take an instance; hosting nodes count only when
    /// `allow_host` (or when nodes need not be distinct).
    #[inline]
    fn ok(&self, i: u32, allow_host: bool) -> bool {
        let mask = if self.distinct && !allow_host {
            AVOID | HOST
        } else {
            AVOID
        };
        self.flags[i as usize] & mask == 0
            && self.comp.ok(&self.hot[i as usize], self.pool)
            && self.priced.as_ref().is_none_or(|p| p.refusal(i).is_none())
    }

    /// With a preference, every feasible node is scored, not a sample.
    fn sample(&self, n: usize) -> usize {
        match self.priced.as_ref().and_then(|p| p.prefer) {
            Some(_) => n.max(1),
            None => sample_size(n),
        }
    }

    /// Higher is better: the market preference's rank first (if any), then
    /// the strategy's utilization score.
    fn score(&self, i: u32) -> (u64, u64) {
        let rank = self
            .priced
            .as_ref()
            .map_or(0, |p| p.rank(i, &self.hot[i as usize]));
        (rank, self.utilization_score(i))
    }

    /// CPU and memory utilization after the placement, in parts per million
    /// each (bin-pack), or its complement (spread).
    fn utilization_score(&self, i: u32) -> u64 {
        let h = &self.hot[i as usize];
        let d = &self.comp.demand;
        let ppm = |r: usize| {
            let after = u128::from(h.used[r].saturating_add(d[r]));
            match h.cap[r] {
                0 => 1_000_000,
                cap => (after * 1_000_000 / u128::from(cap)).min(1_000_000) as u64,
            }
        };
        let util = ppm(0) + ppm(1);
        match self.strategy {
            Strategy::BinPack => util,
            Strategy::Spread => 2_000_000 - util,
        }
    }

    /// The best-scoring candidate; ties go to the lower position.
    fn best(&self, cands: impl IntoIterator<Item = u32>) -> Option<u32> {
        cands
            .into_iter()
            .map(|i| (self.score(i), std::cmp::Reverse(i)))
            .max()
            .map(|(_, std::cmp::Reverse(i))| i)
    }

    /// Scores the next window of `k` fresh feasible nodes from `walk`, plus
    /// `last`, plus (bin-pack) the cluster's recently used nodes; returns the
    /// best. `domain`: only nodes of this failure domain.
    fn pick(
        &mut self,
        walk: &mut Walk<'_>,
        k: usize,
        last: Option<u32>,
        domain: Option<(SpreadBy, u32)>,
    ) -> Option<u32> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        walk.window(k, &mut out, |i| self.ok(i, false));
        let recent: &[u32] = match self.strategy {
            Strategy::BinPack => self.recent,
            Strategy::Spread => &[],
        };
        for &l in last.iter().chain(recent) {
            let in_domain = domain.is_none_or(|(by, d)| domain_of(&self.hot[l as usize], by) == d);
            if in_domain && !out.contains(&l) && self.ok(l, false) {
                out.push(l);
            }
        }
        let best = self.best(out.iter().copied());
        self.scratch = out;
        best
    }

    /// Best node already hosting the workload (used when nodes should be
    /// distinct but no other is left), optionally within one domain.
    fn best_hosting(&self, domain: Option<(SpreadBy, u32)>) -> Option<u32> {
        if !self.distinct {
            return None;
        }
        self.best(self.hosting.iter().copied().filter(|&i| {
            domain.is_none_or(|(by, d)| domain_of(&self.hot[i as usize], by) == d)
                && self.ok(i, true)
        }))
    }

    fn apply(&mut self, i: u32) {
        let d = self.comp.demand;
        let h = &mut self.hot[i as usize];
        for (u, d) in h.used.iter_mut().zip(d) {
            *u = u.saturating_add(d);
        }
        self.views[i as usize].used = Usage::from_arr(h.used);
        if self.flags[i as usize] & HOST == 0 {
            self.flags[i as usize] |= HOST;
            self.hosting.push(i);
        }
        self.placements.push(i);
        if let Some(p) = self.priced.as_mut() {
            p.spend(i);
        }
        if self.recent.first() != Some(&i) {
            self.recent.retain(|&r| r != i);
            self.recent.insert(0, i);
            self.recent.truncate(RECENT);
        }
    }
}

/// Placement without failure-domain spreading.
fn place_plain(st: &mut State<'_>, index: &Index, count: usize, rng: &mut SplitMix64) {
    let base = narrowest(index, st.comp);
    let k = st.sample(base.len());
    let mut walk = Walk::new(base, rng);
    let mut last = None;
    for _ in 0..count {
        let chosen = st
            .pick(&mut walk, k, last, None)
            .or_else(|| st.best_hosting(None));
        let Some(i) = chosen else { break };
        st.apply(i);
        last = Some(i);
    }
}

/// Lazily created per-domain state.
struct Domain<'a> {
    walk: Walk<'a>,
    k: usize,
    last: Option<u32>,
}

/// Placement with spreading: water-filling over domains.
fn place_spread(
    st: &mut State<'_>,
    index: &Index,
    by: SpreadBy,
    mut counts: Vec<u64>,
    count: usize,
    rng: &mut SplitMix64,
) {
    let n = counts.len();
    if n == 0 || count == 0 {
        return;
    }
    let buckets: &[Vec<u32>] = match by {
        SpreadBy::Site => &index.by_site,
        SpreadBy::Region => &index.by_region,
    };
    // Domains the constraints rule out entirely.
    let c = st.comp;
    let possible = |d: u32| -> bool {
        match by {
            SpreadBy::Site => {
                c.site.is_none_or(|s| s == d)
                    && c.region.is_none_or(|r| {
                        index
                            .site_regions
                            .get(d as usize)
                            .is_some_and(|v| v.binary_search(&r).is_ok())
                    })
            }
            SpreadBy::Region => {
                c.region.is_none_or(|r| r == d)
                    && c.site.is_none_or(|s| {
                        index
                            .site_regions
                            .get(s as usize)
                            .is_some_and(|v| v.binary_search(&d).is_ok())
                    })
            }
        }
    };
    // Ties between equally loaded domains are broken by a rotation so that
    // successive requests do not all start with the same domain.
    let rot = rng.below(n as u64) as usize;
    let tie = |d: usize| ((d + n - rot) % n) as u32;
    let mut queue: BTreeSet<(u64, u32, u32)> = (0..n as u32)
        .filter(|&d| possible(d) && !buckets[d as usize].is_empty())
        .map(|d| (counts[d as usize], tie(d as usize), d))
        .collect();
    let mut domains: Vec<Option<Domain<'_>>> = (0..n).map(|_| None).collect();

    let mut placed = 0;
    while placed < count {
        let Some(&(c0, _, d0)) = queue.first() else {
            break;
        };
        // A fresh node in the emptiest domain, or (distinct nodes) in another
        // domain just as empty, or a node already hosting the workload in
        // the emptiest domain.
        let mut chosen = pick_in(st, by, &mut domains, buckets, d0, rng);
        let mut d_chosen = d0;
        if chosen.is_none() && st.distinct {
            let peers: Vec<u32> = queue
                .range((c0, 0, 0)..(c0 + 1, 0, 0))
                .map(|&(_, _, d)| d)
                .filter(|&d| d != d0)
                .collect();
            for d in peers {
                if let Some(i) = pick_in(st, by, &mut domains, buckets, d, rng) {
                    chosen = Some(i);
                    d_chosen = d;
                    break;
                }
            }
        }
        if chosen.is_none() {
            chosen = st.best_hosting(Some((by, d0)));
            d_chosen = d0;
        }
        let Some(i) = chosen else {
            // Nothing left in this domain for this request.
            queue.remove(&(c0, tie(d0 as usize), d0));
            continue;
        };
        st.apply(i);
        placed += 1;
        if let Some(dom) = domains[d_chosen as usize].as_mut() {
            dom.last = Some(i);
        }
        let dc = d_chosen as usize;
        queue.remove(&(counts[dc], tie(dc), d_chosen));
        counts[dc] += 1;
        queue.insert((counts[dc], tie(dc), d_chosen));
    }
}

fn pick_in<'a>(
    st: &mut State<'_>,
    by: SpreadBy,
    domains: &mut [Option<Domain<'a>>],
    buckets: &'a [Vec<u32>],
    d: u32,
    rng: &mut SplitMix64,
) -> Option<u32> {
    let dom = domains[d as usize].get_or_insert_with(|| {
        let list = &buckets[d as usize];
        Domain {
            k: st.sample(list.len()),
            walk: Walk::new(Cow::Borrowed(list), rng),
            last: None,
        }
    });
    st.pick(&mut dom.walk, dom.k, dom.last, Some((by, d)))
}

/// A pseudo-random full cycle over a list (start and stride coprime with
/// the length, both seeded), yielding only the entries a predicate accepts.
/// Rejected entries are never visited again: the caller guarantees that a
/// node rejected once stays rejected for the rest of the request. After the
/// first pass it cycles over the accepted entries it found.
struct Walk<'a> {
    list: Cow<'a, [u32]>,
    pos: usize,
    stride: usize,
    /// Entries left in the first pass.
    left: usize,
    found: Vec<u32>,
    cursor: usize,
}

impl<'a> Walk<'a> {
    fn new(list: Cow<'a, [u32]>, rng: &mut SplitMix64) -> Walk<'a> {
        let n = list.len();
        let (pos, stride) = if n <= 1 {
            (0, 1)
        } else {
            let pos = rng.below(n as u64) as usize;
            let mut stride = 1 + rng.below(n as u64 - 1) as usize;
            while gcd(stride, n) != 1 {
                stride = stride % (n - 1) + 1;
            }
            (pos, stride)
        };
        Walk {
            left: n,
            list,
            pos,
            stride,
            found: Vec::new(),
            cursor: 0,
        }
    }

    fn next(&mut self, mut ok: impl FnMut(u32) -> bool) -> Option<u32> {
        let n = self.list.len();
        while self.left > 0 {
            let i = self.list[self.pos];
            self.pos += self.stride;
            if self.pos >= n {
                self.pos -= n;
            }
            self.left -= 1;
            if ok(i) {
                self.found.push(i);
                return Some(i);
            }
        }
        while !self.found.is_empty() {
            if self.cursor >= self.found.len() {
                self.cursor = 0;
            }
            let i = self.found[self.cursor];
            if ok(i) {
                self.cursor += 1;
                return Some(i);
            }
            self.found.swap_remove(self.cursor);
        }
        None
    }

    /// Appends up to `k` distinct accepted entries to `out` (stopping early
    /// when the cycle comes back to one already in `out`). Appends nothing
    /// only when no entry is accepted.
    fn window(&mut self, k: usize, out: &mut Vec<u32>, mut ok: impl FnMut(u32) -> bool) {
        let start = out.len();
        while out.len() - start < k {
            match self.next(&mut ok) {
                Some(i) if !out[start..].contains(&i) => out.push(i),
                _ => break,
            }
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// For an unplaceable request: how many nodes each reason rules out.
fn diagnose(
    hot: &[Hot],
    flags: &[u8],
    pool: &[u32],
    comp: &Compiled,
    priced: Option<&Priced>,
) -> BTreeMap<String, usize> {
    let mut counts: HashMap<Fail, usize> = HashMap::new();
    let mut market: BTreeMap<String, usize> = BTreeMap::new();
    let mut avoided = 0;
    for (i, (h, &f)) in hot.iter().zip(flags).enumerate() {
        match comp.first_failure(h, pool) {
            Some(Fail::Ineligible) => *counts.entry(Fail::Ineligible).or_default() += 1,
            _ if f & AVOID != 0 => avoided += 1,
            Some(fail) => *counts.entry(fail).or_default() += 1,
            None => {
                if let Some(why) = priced.and_then(|p| p.refusal(i as u32)) {
                    *market.entry(why.to_string()).or_default() += 1;
                }
            }
        }
    }
    let mut out: BTreeMap<String, usize> = counts
        .into_iter()
        .map(|(f, n)| (comp.reason(f).to_string(), n))
        .collect();
    out.extend(market);
    if avoided > 0 {
        out.insert(crate::Reason::Avoided.to_string(), avoided);
    }
    out
}
