//! The state as format 3 kept it — one in-memory value, serialized whole
//! into each snapshot — read once to migrate a data directory written by
//! that version into the tables of format 4.
//!
//! The field order is the old serde order (bincode is positional): do not
//! change it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stratus_chunk::wrap::Sealed;
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::{NodeId, NodeRecord, Tenant, TenantName, TokenRecord};

use crate::kv::{Kv, KvError};
use crate::objects::{AccessKey, Bucket, ChunkEntry, ObjectVersion, Pack, ScrubRecord, Upload};
use crate::{marks, nodes, quotas, Instance, State, Var, Workload};

/// The object store of format 3.
#[derive(Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LegacyObjectStore {
    pub secret: Option<Sealed>,
    pub buckets: BTreeMap<String, Bucket>,
    pub objects: BTreeMap<String, BTreeMap<String, Vec<ObjectVersion>>>,
    pub chunks: BTreeMap<ChunkId, ChunkEntry>,
    pub packs: BTreeMap<u64, Pack>,
    pub node_used: BTreeMap<NodeId, u64>,
    pub deletions: BTreeMap<NodeId, BTreeSet<PieceId>>,
    pub uploads: BTreeMap<String, Upload>,
    pub scrubs: BTreeMap<NodeId, ScrubRecord>,
    pub next_pack: u64,
    pub next_version: u64,
    pub access_keys: BTreeMap<String, AccessKey>,
    pub usage: BTreeMap<TenantName, quotas::StoreUsage>,
}

/// The whole state of format 3.
#[derive(Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LegacyState {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub tenants: BTreeMap<TenantName, Tenant>,
    pub tokens: BTreeMap<String, TokenRecord>,
    pub vars: BTreeMap<TenantName, BTreeMap<String, Var>>,
    pub join_token_sha256: Option<String>,
    pub modules: BTreeMap<String, Vec<u8>>,
    pub workloads: BTreeMap<String, Workload>,
    pub instances: BTreeMap<String, Instance>,
    pub draining: BTreeSet<NodeId>,
    pub store: LegacyObjectStore,
    pub quotas: quotas::Quotas,
    pub marks: BTreeMap<NodeId, marks::NodeMark>,
    pub joining: nodes::Joining,
}

impl LegacyState {
    /// The format-3 shape of `s` (to test the migration).
    #[cfg(any(test, feature = "testing"))]
    pub fn from_state(s: &State) -> Self {
        let st = &s.store;
        let mut objects: BTreeMap<String, BTreeMap<String, Vec<ObjectVersion>>> = BTreeMap::new();
        for b in st.buckets.keys() {
            let (keys, _) = st.list_keys(b, "", None, usize::MAX);
            if !keys.is_empty() {
                objects.insert(b.clone(), keys.into_iter().collect());
            }
        }
        let mut chunks = BTreeMap::new();
        st.scan_chunks(&mut |id, e| {
            chunks.insert(id, e);
            true
        });
        LegacyState {
            nodes: (*s.nodes).clone(),
            tenants: (*s.tenants).clone(),
            tokens: (*s.tokens).clone(),
            vars: (*s.vars).clone(),
            join_token_sha256: (*s.join_token_sha256).clone(),
            modules: (*s.modules).clone(),
            workloads: (*s.workloads).clone(),
            instances: (*s.instances).clone(),
            draining: (*s.draining).clone(),
            store: LegacyObjectStore {
                secret: (*st.secret).clone(),
                buckets: (*st.buckets).clone(),
                objects,
                chunks,
                packs: st.packs().into_iter().map(|p| (p.id, p)).collect(),
                node_used: (*st.node_used).clone(),
                deletions: (*st.deletions).clone(),
                uploads: (*st.uploads).clone(),
                scrubs: (*st.scrubs).clone(),
                next_pack: *st.next_pack,
                next_version: *st.next_version,
                access_keys: (*st.access_keys).clone(),
                usage: (*st.usage).clone(),
            },
            quotas: (*s.quotas).clone(),
            marks: (*s.marks).clone(),
            joining: (*s.joining).clone(),
        }
    }

    /// Writes this state into `kv` (which should be empty) and returns it
    /// opened there. Call [`State::commit`] to make it durable.
    pub fn migrate(self, kv: Box<dyn Kv>) -> Result<State, KvError> {
        let mut s = State::open(kv)?;
        s.nodes = self.nodes.into_iter().collect();
        s.tenants = self.tenants.into_iter().collect();
        s.tokens = self.tokens.into_iter().collect();
        s.vars = self.vars.into_iter().collect();
        *s.join_token_sha256 = self.join_token_sha256;
        s.modules = self.modules.into_iter().collect();
        s.workloads = self.workloads.into_iter().collect();
        s.instances = self.instances.into_iter().collect();
        *s.draining = self.draining;
        *s.quotas = self.quotas;
        *s.marks = self.marks;
        *s.joining = self.joining;
        let old = self.store;
        let st = &mut s.store;
        *st.secret = old.secret;
        st.buckets = old.buckets.into_iter().collect();
        *st.node_used = old.node_used;
        *st.deletions = old.deletions;
        st.uploads = old.uploads.into_iter().collect();
        *st.scrubs = old.scrubs;
        *st.next_pack = old.next_pack;
        *st.next_version = old.next_version;
        st.access_keys = old.access_keys.into_iter().collect();
        *st.usage = old.usage;
        for (bucket, keys) in &old.objects {
            for (key, versions) in keys {
                for v in versions {
                    st.push_version(bucket, key, v);
                }
            }
        }
        for (id, e) in &old.chunks {
            st.add_chunk(id, e);
        }
        for p in old.packs.values() {
            st.set_pack(p);
        }
        s.flush();
        Ok(s)
    }
}
