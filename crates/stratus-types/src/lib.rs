//! The vocabulary every other crate shares.
//!
//! **Owns** the shared vocabulary and the stable error codes. **Does not
//! own** any behaviour: no IO, no async, no rules.
//!
//! Identifiers ([`NodeId`]), what a lending machine reports about itself
//! ([`NodeInfo`], [`Capacity`], [`Attributes`]), its lifecycle ([`NodeStatus`]),
//! tenants and API tokens, workload ids and what a workload runs
//! ([`WorkloadId`], [`Payload`]: parsed and printed only here), and the
//! stable error codes the API returns ([`ErrorCode`]). This crate does no
//! IO and has no async runtime, so it can be used by pure code (state
//! machine, scheduler) and by fuzz targets alike.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod ports;
pub use ports::{PortRange, PortRangeError};
mod workload;
pub use workload::{ImageRef, LogStream, ModuleRef, Payload, RefError, WorkloadId};

/// Version of every persisted or transmitted structure defined by Stratus.
/// Bumped on incompatible changes; readers refuse versions they do not know.
pub const FORMAT_VERSION: u16 = 3;

/// A node's identity: its ed25519 public key (32 bytes).
///
/// Displayed and serialized as 64 lowercase hex characters. The first 8
/// characters ([`NodeId::short`]) are what people usually see.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// Abbreviated form for humans (first 8 hex characters).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

/// Why a string is not a [`NodeId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseNodeIdError {
    /// Not 64 hex characters.
    #[error("a node id is 64 hex characters (an ed25519 public key), got {0} characters")]
    Length(usize),
    /// Not hex.
    #[error("a node id is hex: {0}")]
    Hex(String),
}

impl FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != 64 {
            return Err(ParseNodeIdError::Length(s.len()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| ParseNodeIdError::Hex(e.to_string()))?;
        Ok(NodeId(out))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for NodeId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("ed25519 public key of the node, 64 hex characters"))
            .min_length(Some(64))
            .max_length(Some(64))
            .into()
    }
}
impl ToSchema for NodeId {}

/// Resources a node lends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Capacity {
    /// Logical CPU cores.
    pub cpu_cores: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk space available to Stratus in bytes.
    pub disk_bytes: u64,
}

/// Where a node's energy comes from (for market and placement criteria).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnergySource {
    /// Not declared.
    #[default]
    Unknown,
    /// Grid power, mix not declared.
    Grid,
    /// Solar.
    Solar,
    /// Wind.
    Wind,
    /// Hydro.
    Hydro,
    /// Nuclear.
    Nuclear,
    /// Fossil fuel.
    Fossil,
    /// Battery (e.g. a phone or a laptop off its charger).
    Battery,
}

impl FromStr for EnergySource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "unknown" | "" => Self::Unknown,
            "grid" => Self::Grid,
            "solar" => Self::Solar,
            "wind" => Self::Wind,
            "hydro" => Self::Hydro,
            "nuclear" => Self::Nuclear,
            "fossil" => Self::Fossil,
            "battery" => Self::Battery,
            other => {
                return Err(format!(
                    "unknown energy source {other:?}; expected one of unknown, grid, solar, wind, hydro, nuclear, fossil, battery"
                ))
            }
        })
    }
}

/// A kind of payload a node can run.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// WebAssembly modules in wasmtime (every node that runs workloads).
    #[default]
    Wasm,
    /// OCI container images (needs root, cgroups, FUSE and overlayfs).
    Oci,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Wasm => "wasm",
            Runtime::Oci => "oci",
        })
    }
}

fn wasm_only() -> Vec<Runtime> {
    vec![Runtime::Wasm]
}

/// Descriptive attributes of a node, used by placement constraints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attributes {
    /// CPU architecture (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// Operating system (`linux`, ...).
    pub os: String,
    /// Free-form labels (`key=value`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Region (coarse failure domain), e.g. `eu-west`.
    #[serde(default)]
    pub region: String,
    /// Site (fine failure domain: a building, a rack), e.g. `paris-1`.
    #[serde(default)]
    pub site: String,
    /// Latitude in degrees, if declared.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Longitude in degrees, if declared.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Energy source.
    #[serde(default)]
    pub energy: EnergySource,
}

/// Everything a node reports about itself when it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Identity (public key).
    pub id: NodeId,
    /// Human-friendly name (hostname by default).
    pub name: String,
    /// Stratus version the node runs.
    pub version: String,
    /// Resources lent.
    pub capacity: Capacity,
    /// Attributes for placement.
    pub attributes: Attributes,
    /// The node's storage service, if it lends disk space for object pieces.
    #[serde(default)]
    pub storage: Option<StorageInfo>,
    /// Payloads the node can run (probed by its agent; empty when it runs
    /// no workloads).
    #[serde(default = "wasm_only")]
    pub runtimes: Vec<Runtime>,
    /// Host ports the lender allows published container ports on
    /// (`stratus node --ports`; the default range for nodes that do not say).
    #[serde(default)]
    pub ports: PortRange,
}

/// A storage node's piece service, as it registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorageInfo {
    /// `host:port` of the QUIC endpoint that serves pieces (replicas use
    /// it only for a node that has no piece link to them: a node behind a
    /// NAT may advertise an address nobody can reach); empty: links only.
    pub addr: String,
    /// Bytes lent for pieces.
    pub capacity_bytes: u64,
}

/// Lifecycle of a registered node as seen by the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Heartbeating; eligible for work.
    Ready,
    /// No heartbeat within the configured timeout.
    Lost,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeStatus::Ready => "ready",
            NodeStatus::Lost => "lost",
        })
    }
}

/// A node as recorded in the replicated state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeRecord {
    /// What the node reported.
    pub info: NodeInfo,
    /// Current status.
    pub status: NodeStatus,
    /// When the node first registered (ms since the Unix epoch, leader clock).
    pub registered_ms: u64,
    /// When the status last changed (ms since the Unix epoch, leader clock).
    pub status_changed_ms: u64,
    /// The tenant that lends this node: the owner of the join credential it
    /// joined with (never what the node says). Placement never gives one
    /// owner's nodes more than `m` pieces of a stripe.
    #[serde(default)]
    pub owner: TenantName,
    /// Banned for good (`stratus nodes ban`): lost, never ready again.
    #[serde(default)]
    pub banned: bool,
}

/// Name of a tenant: 1–63 characters of `[a-z0-9-]`, starting with a letter.
pub type TenantName = String;

/// The reserved tenant that owns the cluster.
pub const ADMIN_TENANT: &str = "admin";

/// Checks a tenant name.
pub fn validate_tenant_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=63).contains(&name.len());
    let ok_first = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "invalid tenant name {name:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

/// A tenant: the unit of isolation and billing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// Unique name.
    pub name: TenantName,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
}

/// What an API token may do, within its tenant.
///
/// Rights are only partly ordered: `admin` covers everything, `full` covers
/// every scope but `admin`, and the three narrow scopes cover only
/// themselves ([`TokenScope::covers`]). New scopes are appended (the
/// persisted form is the variant's position).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TokenScope {
    /// The cluster operator: everything, on every tenant. Only tokens of the
    /// [`ADMIN_TENANT`] have it.
    Admin,
    /// Everything of its tenant.
    Full,
    /// Reads (GET and HEAD) of everything of its tenant.
    ReadOnly,
    /// Buckets, objects and S3 keys of its tenant.
    Storage,
    /// Workloads of its tenant: modules, images, deploy, ps, logs, exec.
    Workloads,
}

impl TokenScope {
    /// Every scope, from the most to the least rights.
    pub const ALL: [TokenScope; 5] = [
        TokenScope::Admin,
        TokenScope::Full,
        TokenScope::ReadOnly,
        TokenScope::Storage,
        TokenScope::Workloads,
    ];

    /// The name used by the API and the CLI (`read-only`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Full => "full",
            TokenScope::ReadOnly => "read-only",
            TokenScope::Storage => "storage",
            TokenScope::Workloads => "workloads",
        }
    }

    /// Whether a token of scope `self` has every right of one of scope `other`.
    pub fn covers(self, other: TokenScope) -> bool {
        match self {
            TokenScope::Admin => true,
            TokenScope::Full => other != TokenScope::Admin,
            narrow => narrow == other,
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a [`TokenScope`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown token scope {0:?}: use admin, full, read-only, storage or workloads")]
pub struct ParseTokenScopeError(pub String);

impl FromStr for TokenScope {
    type Err = ParseTokenScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenScope::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseTokenScopeError(s.to_string()))
    }
}

/// An API token as stored: only the SHA-256 of the secret is kept.
///
/// This is the second layout of the record; the first, [`TokenRecordV1`]
/// (no scope, no expiry), is still read from old Raft logs and becomes a
/// full, non-expiring token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRecord {
    /// Public token id (first part of the token string).
    pub id: String,
    /// Tenant the token acts for.
    pub tenant: TenantName,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
    /// What the token may do.
    pub scope: TokenScope,
    /// When it stops working (ms since the Unix epoch); `None`: never.
    pub expires_ms: Option<u64>,
}

impl TokenRecord {
    /// Whether the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// The first layout of [`TokenRecord`], before scopes and expiry. Kept so
/// that Raft logs written by older versions still decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecordV1 {
    /// Public token id.
    pub id: String,
    /// Tenant the token acts for.
    pub tenant: TenantName,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
}

impl From<TokenRecordV1> for TokenRecord {
    /// An old token keeps the rights it had: everything of its tenant (the
    /// operator's for the admin tenant), forever.
    fn from(v1: TokenRecordV1) -> Self {
        let scope = if v1.tenant == ADMIN_TENANT {
            TokenScope::Admin
        } else {
            TokenScope::Full
        };
        TokenRecord {
            id: v1.id,
            tenant: v1.tenant,
            secret_sha256: v1.secret_sha256,
            created_ms: v1.created_ms,
            scope,
            expires_ms: None,
        }
    }
}

/// Stable, machine-readable error codes returned by the API and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No or malformed credentials.
    Unauthenticated,
    /// Credentials valid but not allowed to do this.
    Forbidden,
    /// Request body or parameters are malformed.
    BadRequest,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing already exists / conflicts with current state.
    Conflict,
    /// No leader is known right now (election in progress); retry.
    NoLeader,
    /// The control plane could not be reached or did not answer in time.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
    /// The request (or a command it makes) is larger than a limit allows;
    /// the message names the limit.
    TooLarge,
    /// A per-tenant quota would be exceeded; the message names the quota,
    /// its limit and the current use (HTTP 403, as Ceph RGW's S3
    /// `QuotaExceeded`: retrying does not help until something is deleted
    /// or the operator raises the quota).
    QuotaExceeded,
    /// A replica's disk is nearly full: writes that add data are refused
    /// until space is freed (reads and deletes still work).
    InsufficientStorage,
    /// An account lacks the money asked for; the message names the account,
    /// its balance and the shortfall (HTTP 402).
    InsufficientFunds,
}

impl ErrorCode {
    /// HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::BadRequest => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::NoLeader | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::TooLarge => 413,
            ErrorCode::QuotaExceeded => 403,
            ErrorCode::InsufficientStorage => 507,
            ErrorCode::InsufficientFunds => 402,
        }
    }
}

/// Role of a control replica in the Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaRole {
    /// Accepts writes and replicates them.
    Leader,
    /// Replicates from the leader and votes.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Receives the log but does not vote.
    Learner,
    /// Not running.
    Shutdown,
}

/// A control replica as listed by `stratus status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaStatus {
    /// Replica identity.
    pub id: NodeId,
    /// QUIC address.
    pub addr: String,
    /// Whether it votes (false: learner).
    pub voter: bool,
    /// Highest log index known to be replicated to it (known on the leader only).
    pub matched_index: Option<u64>,
    /// Entries it is behind the leader's last log index (known on the leader only).
    pub lag: Option<u64>,
}

/// Health of the control plane as seen by one replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// Replica that answered.
    pub answered_by: NodeId,
    /// Its role.
    pub role: ReplicaRole,
    /// Current leader, if one is known.
    pub leader: Option<NodeId>,
    /// Raft term.
    pub term: u64,
    /// Last log index on the answering replica.
    pub last_log_index: u64,
    /// Last applied index on the answering replica.
    pub last_applied: u64,
    /// Index of the last snapshot, if any.
    pub snapshot_index: Option<u64>,
    /// Replicas in the current membership.
    pub replicas: Vec<ReplicaStatus>,
    /// Registered nodes that are ready.
    pub nodes_ready: usize,
    /// Registered nodes that are lost.
    pub nodes_lost: usize,
    /// `ok` when a leader is known and a quorum of replicas is caught up, else `degraded` or `unavailable`.
    pub health: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn node_id_round_trips(bytes in any::<[u8; 32]>()) {
            let id = NodeId(bytes);
            let parsed: NodeId = id.to_string().parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(parsed, id);
            let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: NodeId = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, id);
        }

        #[test]
        fn node_id_parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<NodeId>();
        }
    }

    #[test]
    fn node_id_rejects_bad_input() {
        assert_eq!("abc".parse::<NodeId>(), Err(ParseNodeIdError::Length(3)));
        assert!(matches!(
            "z".repeat(64).parse::<NodeId>(),
            Err(ParseNodeIdError::Hex(_))
        ));
    }

    #[test]
    fn tenant_names() {
        assert!(validate_tenant_name("acme-1").is_ok());
        assert!(validate_tenant_name("").is_err());
        assert!(validate_tenant_name("1acme").is_err());
        assert!(validate_tenant_name("Acme").is_err());
        assert!(validate_tenant_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn energy_parse() {
        assert_eq!("Solar".parse::<EnergySource>(), Ok(EnergySource::Solar));
        assert!("coal-ish".parse::<EnergySource>().is_err());
    }

    /// No scope but admin covers admin; narrow scopes cover only themselves.
    #[test]
    fn token_scopes_cover_and_parse() {
        use TokenScope::*;
        for s in TokenScope::ALL {
            assert!(Admin.covers(s));
            assert!(s.covers(s));
            assert_eq!(s.as_str().parse::<TokenScope>(), Ok(s));
            assert_eq!(Full.covers(s), s != Admin);
        }
        for narrow in [ReadOnly, Storage, Workloads] {
            for other in TokenScope::ALL {
                assert_eq!(narrow.covers(other), narrow == other, "{narrow} {other}");
            }
        }
        assert!("root".parse::<TokenScope>().is_err());
        let json = serde_json::to_string(&ReadOnly).expect("json");
        assert_eq!(json, "\"read-only\"");
    }
}
