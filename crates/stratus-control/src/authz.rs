//! Who may ask a control replica what: every request is authorized by the
//! role of the connection's *authenticated* key and by what that key owns,
//! never by a field of the message.
//!
//! | role | who | may send | largest request frame |
//! |---|---|---|---|
//! | replica | a member of this replica's Raft membership | Raft RPCs, forwarded writes and heartbeats, status, membership changes, `ReadLogs` (logs and exec output go only to replicas), anything an agent may | [`stratus_net::MAX_FRAME_LEN`] |
//! | vouched replica | not (yet) in this replica's membership, but listed by a replica it trusts (see below) | Raft RPCs only | [`stratus_net::MAX_FRAME_LEN`] |
//! | agent | a registered node | its heartbeats, assignments, reports and output of *its* instances; modules (whole, or their chunk lists), flists and chunks of the workloads *assigned to it*; volumes of its live instances | [`AGENT_MAX_FRAME`] |
//! | stranger | any other key (a banned node too) | `ClusterProof` (the replica proves it is of the cluster), then `Register` (with a join credential; see [`crate::joining`]) | [`STRANGER_MAX_FRAME`] |
//!
//! # Raft RPCs and replicas that are not initialized
//!
//! An initialized replica takes Raft RPCs from members of its membership.
//! Its view can lag (a learner replaying the log from the start sees the
//! bootstrap membership, without the replica that now leads), so a key that
//! is not a member is *vouched* for by a replica this one trusts: one of
//! its own members, or the replica the operator named at start
//! (`stratus server --no-bootstrap --join ID@HOST:PORT`, [`ControlConfig::join`]).
//! The trusted replica is dialed with its key pinned and asked for its
//! membership ([`Request::Peers`]); the key is accepted if it is listed.
//! A replica with no membership yet accepts Raft RPCs only from the
//! replica named by `--join` or from members of that replica's membership
//! — which is the leader that adds it — and from nobody when started
//! without `--join`. Lookups are cached ([`VOUCH_TTL`]) and made at most
//! once per [`VOUCH_MIN_INTERVAL`], so strangers cannot make a replica
//! flood its peers.
//!
//! [`ControlConfig::join`]: crate::ControlConfig::join

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stratus_proto::{rpc, Peer, Response, MAX_VOLUME_PART};
use stratus_state::State;
use stratus_types::{ErrorCode, ModuleRef, NodeId, Payload};

use crate::Control;

/// Largest request frame of a key that is neither a replica nor a
/// registered agent: enough for `Register` with a generous node
/// description.
pub const STRANGER_MAX_FRAME: usize = 16 << 10;
/// Largest request frame of a registered agent: a volume part
/// ([`MAX_VOLUME_PART`]) or a batch of queued output (8 MiB of bytes) with
/// room for their envelopes.
pub const AGENT_MAX_FRAME: usize = MAX_VOLUME_PART as usize + (8 << 20);
/// How long a replica's word that a key is a member is trusted.
pub const VOUCH_TTL: Duration = Duration::from_secs(10);
/// Fewest time between two asks of the trusted replicas.
pub const VOUCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Timeout of one ask.
const VOUCH_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Images whose chunk sets are kept in memory (a set is 32 bytes a chunk).
pub const MAX_CACHED_IMAGES: usize = 32;

/// The role of a peer, from its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A member of the Raft membership (or vouched for as one).
    Replica,
    /// A registered node.
    Agent,
    /// Anyone else.
    Stranger,
}

impl Role {
    /// The largest request frame read from a peer of this role.
    pub fn max_frame(self) -> usize {
        match self {
            Role::Replica => stratus_net::MAX_FRAME_LEN,
            Role::Agent => AGENT_MAX_FRAME,
            Role::Stranger => STRANGER_MAX_FRAME,
        }
    }
}

/// Authorization state of a replica: the vouching cache and the chunk sets
/// of pinned images.
#[derive(Default)]
pub(crate) struct Authz {
    vouched: Mutex<Vouched>,
    /// Serializes asks of the trusted replicas.
    asking: tokio::sync::Mutex<()>,
    chunks: tokio::sync::Mutex<ChunkSets>,
}

#[derive(Default)]
struct Vouched {
    /// When the trusted replicas were last asked.
    at: Option<Instant>,
    /// The members they listed then.
    ids: BTreeSet<NodeId>,
}

/// The log stream an agent pushes to: an instance's output, or the output
/// of exec `n` in it (`<instance>#exec-<n>`, [`stratus_types::LogStream`]).
/// `None` for anything else.
pub fn parse_log_id(id: &str) -> Option<(&str, Option<u32>)> {
    stratus_types::LogStream::parse(id).map(|l| (l.instance, l.exec))
}

/// Whether `node` may push output to the log stream `id`: the instance is
/// placed on `node`, and an exec stream names an exec asked of it.
pub fn may_push_log(s: &State, node: &NodeId, id: &str) -> bool {
    let Some((instance, exec)) = parse_log_id(id) else {
        return false;
    };
    s.instances
        .get(instance)
        .is_some_and(|i| i.node == *node && exec.is_none_or(|n| i.execs.iter().any(|e| e.n == n)))
}

/// Whether `node` may report on exec `n` of `instance`: the instance is
/// on `node` and the exec was asked and has not ended.
pub fn may_report_exec(s: &State, node: &NodeId, instance: &str, n: u32) -> bool {
    s.instances
        .get(instance)
        .is_some_and(|i| i.node == *node && i.execs.iter().any(|e| e.n == n && !e.state.is_over()))
}

/// The modules and pinned images (`image:...`) of the workloads `node` is
/// assigned an instance of (current and previous generation), by the
/// workload's tenant, with the tenant whose store holds each (the owner of
/// a published app the workload runs, see [`State::payload_holder`]): all
/// an agent may fetch, and where from.
pub fn assigned_modules(s: &State, node: &NodeId) -> BTreeMap<(String, Payload), String> {
    s.instances
        .values()
        .filter(|i| i.node == *node)
        .filter_map(|i| s.workloads.get(i.workload.as_str()))
        .flat_map(|w| {
            let holder = s.payload_holder(w).to_string();
            [Some(&w.module), w.previous.as_ref().map(|p| &p.1)]
                .into_iter()
                .flatten()
                .map(move |m| ((w.tenant.clone(), m.clone()), holder.clone()))
        })
        .collect()
}

/// Chunk ids of pinned images, least recently loaded dropped first.
#[derive(Default)]
struct ChunkSets {
    sets: HashMap<(String, String), Arc<HashSet<[u8; 32]>>>,
    order: VecDeque<(String, String)>,
}

impl ChunkSets {
    fn insert(&mut self, key: (String, String), set: Arc<HashSet<[u8; 32]>>) {
        if self.sets.insert(key.clone(), set).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_CACHED_IMAGES {
            if let Some(old) = self.order.pop_front() {
                self.sets.remove(&old);
            }
        }
    }
}

impl Control {
    /// Whether `peer` is in this replica's current Raft membership (voter
    /// or learner). An empty membership has no members.
    pub(crate) fn is_member(&self, peer: &NodeId) -> bool {
        // Asked before every request is read: borrow, do not clone the metrics.
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().get_node(peer).is_some()
    }

    pub(crate) fn is_registered(&self, peer: &NodeId) -> bool {
        self.inner
            .reader
            .read(|s| s.nodes.get(peer).is_some_and(|n| !n.banned))
    }

    /// The role of `peer` right now, without asking anyone.
    pub fn role(&self, peer: &NodeId) -> Role {
        if self.is_member(peer) || self.vouched_now(peer) {
            Role::Replica
        } else if self.is_registered(peer) {
            Role::Agent
        } else {
            Role::Stranger
        }
    }

    /// The largest request frame read from `peer` (asked before each
    /// request is read). A key this replica does not know may be a replica
    /// its lagging view misses: the trusted replicas are asked in the
    /// background, so a replica's retry gets the full bound.
    pub(crate) fn max_frame(&self, peer: &NodeId) -> usize {
        let role = self.role(peer);
        if role == Role::Stranger && !self.trusted_replicas().is_empty() {
            let me = self.clone();
            let peer = *peer;
            tokio::spawn(async move {
                me.vouch(&peer).await;
            });
        }
        role.max_frame()
    }

    /// Replicas whose membership this one trusts: its own members and the
    /// `--join` replica.
    fn trusted_replicas(&self) -> Vec<Peer> {
        let mut out: Vec<Peer> = self
            .peers()
            .into_iter()
            .filter(|p| p.id != self.inner.id)
            .collect();
        if let Some(j) = &self.inner.cfg.join {
            if j.id != self.inner.id && !out.iter().any(|p| p.id == j.id) {
                out.push(j.clone());
            }
        }
        out
    }

    fn vouched_now(&self, peer: &NodeId) -> bool {
        if self.inner.cfg.join.as_ref().is_some_and(|j| j.id == *peer) {
            return true;
        }
        self.inner
            .authz
            .vouched
            .lock()
            .is_ok_and(|v| v.at.is_some_and(|at| at.elapsed() < VOUCH_TTL) && v.ids.contains(peer))
    }

    /// Whether `peer` may send Raft RPCs: a member, or vouched for by a
    /// trusted replica (see the module docs). `Err` says why not.
    pub(crate) async fn may_send_raft(&self, peer: &NodeId) -> Result<(), String> {
        if self.is_member(peer) || self.vouch(peer).await {
            return Ok(());
        }
        let empty = self.peers().is_empty();
        Err(if empty && self.inner.cfg.join.is_none() {
            format!(
                "{peer} may not send Raft messages: this replica is not initialized and was \
                 started without --join ID@HOST:PORT (a replica of the cluster that will add it)"
            )
        } else {
            format!("{peer} is not a control replica of this cluster")
        })
    }

    /// Whether a trusted replica lists `peer` as a member (cached; asks at
    /// most once per [`VOUCH_MIN_INTERVAL`]).
    async fn vouch(&self, peer: &NodeId) -> bool {
        if self.vouched_now(peer) {
            return true;
        }
        let trusted = self.trusted_replicas();
        if trusted.is_empty() {
            return false;
        }
        let _asking = self.inner.authz.asking.lock().await;
        if self.vouched_now(peer) {
            return true;
        }
        let recent = self
            .inner
            .authz
            .vouched
            .lock()
            .is_ok_and(|v| v.at.is_some_and(|at| at.elapsed() < VOUCH_MIN_INTERVAL));
        if recent {
            return false;
        }
        let mut ids = BTreeSet::new();
        for t in trusted {
            let Ok(addr) = crate::resolve(&t.addr).await else {
                continue;
            };
            let answer = self
                .inner
                .pool
                .rpc(addr, Some(t.id), rpc::Peers, VOUCH_CALL_TIMEOUT)
                .await;
            if let Ok(list) = answer {
                ids.insert(t.id);
                ids.extend(list.peers.into_iter().map(|p| p.id));
                if ids.contains(peer) {
                    break;
                }
            }
        }
        let found = ids.contains(peer);
        if let Ok(mut v) = self.inner.authz.vouched.lock() {
            v.at = Some(Instant::now());
            v.ids = ids;
        }
        if found {
            tracing::debug!(peer = %peer.short(), "vouched for as a replica of this cluster");
        }
        found
    }

    /// Whether `peer` may read module `hash`: a replica, or a node assigned
    /// an instance of a workload running it.
    pub(crate) fn may_read_module(&self, peer: &NodeId, hash: &str) -> bool {
        self.is_member(peer)
            || self.inner.reader.read(|s| {
                assigned_modules(s, peer)
                    .keys()
                    .any(|(_, m)| m.module().is_some_and(|m| m.as_str() == hash))
            })
    }

    /// Whether chunk `id` of `tenant` belongs to a module (stored as an
    /// object) or an image pinned by a workload `peer` is assigned: each
    /// module's chunk list and each image's flist is read once and its chunk
    /// ids kept ([`MAX_CACHED_IMAGES`] sets). `Some(holder)` when it does:
    /// the tenant whose store holds it (the workload's own, or a published
    /// app's owner).
    pub(crate) async fn chunk_holder(
        &self,
        peer: &NodeId,
        tenant: &str,
        id: &[u8; 32],
    ) -> Result<Option<String>, Response> {
        let (mut images, mut modules) = (Vec::new(), Vec::new());
        self.inner.reader.read(|s| {
            for ((t, m), holder) in assigned_modules(s, peer) {
                match m {
                    _ if t != tenant => {}
                    Payload::Image(i) => images.push((holder, i)),
                    Payload::Wasm(m) => modules.push((holder, m)),
                }
            }
        });
        for (holder, m) in &modules {
            if self
                .module_has_chunk(holder, std::slice::from_ref(m), id)
                .await
            {
                return Ok(Some(holder.clone()));
            }
        }
        if images.is_empty() {
            return Ok(None);
        }
        let server = self.inner.images.lock().ok().and_then(|i| i.clone());
        let Some(server) = server else {
            return Err(crate::serve::images_unavailable());
        };
        let mut sets = self.inner.authz.chunks.lock().await;
        for (holder, image) in images {
            let key = (holder.clone(), image.to_string());
            let set = match sets.sets.get(&key) {
                Some(set) => set.clone(),
                None => {
                    let bytes = server
                        .flist(key.0.clone(), image)
                        .await
                        .map_err(|(code, message)| Response::Error { code, message })?;
                    let flist =
                        stratus_flist::Flist::decode(&bytes).map_err(|e| Response::Error {
                            code: ErrorCode::Internal,
                            message: format!("the flist of {} does not decode: {e}", key.1),
                        })?;
                    let set: Arc<HashSet<[u8; 32]>> =
                        Arc::new(flist.chunks().map(|c| c.id).collect());
                    sets.insert(key, set.clone());
                    set
                }
            };
            if set.contains(id) {
                return Ok(Some(holder));
            }
        }
        Ok(None)
    }
}

impl Control {
    /// Whether chunk `id` is one of the chunks of `tenant`'s modules
    /// `modules` stored as objects (their chunk ids are read from the state
    /// once per module and kept with the images' sets).
    async fn module_has_chunk(&self, tenant: &str, modules: &[ModuleRef], id: &[u8; 32]) -> bool {
        if modules.is_empty() {
            return false;
        }
        let mut sets = self.inner.authz.chunks.lock().await;
        for m in modules {
            let key = (tenant.to_string(), m.to_string());
            let set = match sets.sets.get(&key) {
                Some(set) => set.clone(),
                None => {
                    let found: Option<HashSet<[u8; 32]>> = self.inner.reader.read(|s| {
                        s.module_data(tenant, m.as_str())
                            .map(|(_, d)| d.chunks.iter().map(|c| c.id.0).collect())
                    });
                    let Some(found) = found else {
                        continue;
                    };
                    let set = Arc::new(found);
                    sets.insert(key, set.clone());
                    set
                }
            };
            if set.contains(id) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_parse_only_in_their_canonical_forms() {
        assert_eq!(parse_log_id("t/w-1"), Some(("t/w-1", None)));
        assert_eq!(parse_log_id("t/w-1#exec-3"), Some(("t/w-1", Some(3))));
        for bad in [
            "t/w-1#",
            "t/w-1#exec-",
            "t/w-1#exec-03",
            "t/w-1#exec-+3",
            "t/w-1#exec-3#exec-4",
            "t/w-1#other",
            "t/w-1#exec-99999999999",
        ] {
            assert_eq!(parse_log_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunk_sets_are_bounded() {
        let mut c = ChunkSets::default();
        for i in 0..(MAX_CACHED_IMAGES + 5) {
            c.insert(("t".into(), format!("image:{i}")), Arc::new(HashSet::new()));
        }
        assert_eq!(c.sets.len(), MAX_CACHED_IMAGES);
        assert_eq!(c.order.len(), MAX_CACHED_IMAGES);
        assert!(!c.sets.contains_key(&("t".into(), "image:0".into())));
    }

    #[test]
    fn frame_bounds_grow_with_trust() {
        assert!(Role::Stranger.max_frame() < Role::Agent.max_frame());
        assert!(Role::Agent.max_frame() < Role::Replica.max_frame());
        assert!(Role::Agent.max_frame() > MAX_VOLUME_PART as usize + 1024);
    }
}
