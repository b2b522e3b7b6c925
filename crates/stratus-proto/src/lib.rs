//! The messages nodes exchange over the QUIC transport.
//!
//! **Owns** the node-to-node message set and its wire compatibility.
//! **Does not own** who may send which message (`stratus-control`'s
//! `authz`) or the transport (`stratus-net`).
//!
//! One request/response pair per QUIC stream. Every request is a [`Request`],
//! every answer a [`Response`]; both are encoded with bincode inside the
//! framing of `stratus-net`, which carries [`PROTOCOL_VERSION`]. Variants are
//! only ever appended so older peers can still decode what they know.
//! Callers send typed requests ([`rpc`]): each names the [`Response`] kind
//! that answers it, so the check for any other answer is made once.
//!
//! Who may send what is decided by the receiver from the *authenticated*
//! peer id of the connection, never from a field in the message:
//! Raft RPCs, forwarded commands and log reads are only accepted from
//! replicas of the Raft cluster; an agent's heartbeat is always about the
//! connection's own node, and an agent reads only what its assignments use
//! (the table is in `stratus-control`'s `authz` module).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use stratus_chunk::PieceId;
use stratus_state::{Command, CommandResult, TypeConfig};
use stratus_types::{ErrorCode, NodeId, NodeInfo};

pub mod piece_rpc;
pub mod rpc;
pub mod rpc_objects;
pub use piece_rpc::{PieceRpc, PieceRpcError};
pub use rpc::{Rpc, RpcError};

/// Version of the message set; checked by the framing layer.
pub const PROTOCOL_VERSION: u8 = 3;

/// ALPN identifier negotiated on every Stratus QUIC connection.
pub const ALPN: &[u8] = b"stratus/1";

/// A request sent by one node to another.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// Raft: replicate log entries (leader → follower).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote (candidate → voter).
    Vote(VoteRequest<NodeId>),
    /// Raft: send a snapshot chunk (leader → lagging follower).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A control replica forwards a client write to the leader it knows.
    Forward(Command),
    /// An agent registers (or re-registers) itself.
    Register {
        /// Node description; its `id` must equal the connection's peer id.
        info: NodeInfo,
        /// Join credential (`stj_<id>_<secret>_<pin>`), sent only to a
        /// replica that answered [`Request::ClusterProof`] with a proof the
        /// pin accepts. Ignored for a key already registered.
        join_token: String,
    },
    /// An agent is alive. Sent over the agent's own connection.
    Heartbeat,
    /// A follower relays an agent's heartbeat to the leader, which keeps the
    /// failure detector.
    ForwardHeartbeat {
        /// The agent that heartbeated.
        node: NodeId,
    },
    /// Ask a control replica who the control replicas are.
    Peers,
    /// Ask the leader for the cluster status (it alone knows replication lag).
    Status,
    /// A replica relays a membership change to the leader.
    ChangeMembership(MembershipChange),
    /// An agent asks what it should run; answered once the replica's applied
    /// state is past `after_index` or `wait_ms` elapsed (long poll).
    Assignments {
        /// Applied index the agent has already seen.
        after_index: u64,
        /// Longest wait.
        wait_ms: u64,
    },
    /// An agent fetches a module by content address.
    GetModule {
        /// `blake3:<hex>`.
        hash: String,
    },
    /// An agent fetches the encoded flist of a container image one of its
    /// instances runs.
    GetFlist {
        /// Owner of the workload.
        tenant: String,
        /// The pinned image, `image:NAME:TAG@VERSION` (an assignment's
        /// `module`).
        image: String,
    },
    /// An agent fetches one chunk of an image's file contents, decrypted by
    /// the replica; the agent checks it against the flist's plain BLAKE3.
    GetChunk {
        /// Owner of the workload.
        tenant: String,
        /// The chunk's store id.
        id: [u8; 32],
    },
    /// An agent reports what happened to its instances.
    Report(Vec<InstanceReport>),
    /// An agent reports the progress of an exec in one of its instances.
    ReportExec {
        /// Instance id.
        instance: String,
        /// Exec number.
        n: u32,
        /// New state.
        state: stratus_state::workloads::ExecState,
    },
    /// An agent sends output of its instances.
    PushLogs(Vec<LogChunk>),
    /// A replica asks another for the logs it holds of an instance.
    ReadLogs {
        /// Instance id.
        instance: String,
        /// First byte wanted.
        offset: u64,
    },
    /// An agent reads part of the archive of a volume kept in the object
    /// store (`VolumeSpec::bucket`), decrypted by the replica. Served only
    /// to a node assigned a live instance of a workload of `tenant` that
    /// declares a volume in `bucket`/`key`. Answered with
    /// [`Response::VolumeData`].
    GetVolume {
        /// Owner of the workload.
        tenant: String,
        /// Bucket of the volume.
        bucket: String,
        /// Object key of the volume's archive.
        key: String,
        /// The version to read (`None`: the latest). Later parts of one
        /// restore name the version the first part answered, so a restore
        /// never mixes versions.
        version: Option<String>,
        /// First byte wanted.
        offset: u64,
        /// Bytes wanted (at most [`MAX_VOLUME_PART`]).
        len: u64,
    },
    /// An agent stores a new version of a volume's archive, in parts of at
    /// most [`MAX_VOLUME_PART`] bytes (a multipart upload of the object
    /// store). Served only to a node assigned a live instance of a workload
    /// of `tenant` that declares a writable volume in `bucket`/`key`.
    PutVolume {
        /// Owner of the workload.
        tenant: String,
        /// Bucket of the volume.
        bucket: String,
        /// Object key of the volume's archive.
        key: String,
        /// The step of the upload.
        step: VolumePut,
    },
    /// An agent lists the objects of a task's input (`input: { bucket,
    /// prefix }`), at most [`MAX_LIST_PAGE`] per answer, in key order.
    /// Served only to a node assigned a live instance of a workload of
    /// `tenant` whose spec declares an input in `bucket` with a prefix that
    /// `prefix` starts with. Answered with [`Response::ObjectList`].
    ListInput {
        /// Owner of the workload.
        tenant: String,
        /// Bucket of the input.
        bucket: String,
        /// Key prefix.
        prefix: String,
        /// List keys after this one (the last key of the previous page).
        after: Option<String>,
    },
    /// An agent reads part of one input object, decrypted by the replica;
    /// authorized as [`Request::ListInput`] (the key must be under the
    /// declared prefix). Answered with [`Response::VolumeData`] (version
    /// `None`: the object is gone).
    GetInput {
        /// Owner of the workload.
        tenant: String,
        /// Bucket of the input.
        bucket: String,
        /// Object key.
        key: String,
        /// The version to read (`None`: the latest); later parts name the
        /// version the first part answered.
        version: Option<String>,
        /// First byte wanted.
        offset: u64,
        /// Bytes wanted (at most [`MAX_VOLUME_PART`]).
        len: u64,
    },
    /// An agent stores one file of a task's `/output` as an object, in parts
    /// of at most [`MAX_VOLUME_PART`] bytes. Served only to a node assigned
    /// a live instance of a workload of `tenant` whose spec declares
    /// `output: { bucket, prefix }` with `key` under that prefix. Answered
    /// as [`Request::PutVolume`].
    PutOutput {
        /// Owner of the workload.
        tenant: String,
        /// Bucket of the output.
        bucket: String,
        /// Object key (`<prefix><relative path>`).
        key: String,
        /// The step of the upload.
        step: VolumePut,
    },
    /// A replica asks another for the cluster's key-encryption key, which
    /// opens the sealed secrets of the replicated state. Answered only to
    /// members of the Raft membership, with [`Response::Blob`] (32 bytes).
    GetKek,
    /// An agent asks a replica to prove it belongs to the cluster its join
    /// credential pins, *before* it sends the credential. Answered with
    /// [`Response::ClusterProof`] by anyone (nothing secret is in it).
    ClusterProof,
    /// An agent asks for the chunk list of a module stored as an object
    /// (`stratus_state::modules`) one of its instances runs; it then
    /// fetches each chunk with [`Request::GetChunk`] and checks the whole
    /// module against its BLAKE3 address. Answered with
    /// [`Response::ModuleChunks`], or `NotFound` for a module of the first
    /// layouts (fetched whole with [`Request::GetModule`]).
    GetModuleChunks {
        /// Owner of the workload.
        tenant: String,
        /// `blake3:<hex>`.
        hash: String,
    },
    /// An agent reports what its instances used, each report signed with
    /// its node key (`stratus_market::metering`).
    ReportUsage(Vec<stratus_market::UsageReport>),
    /// An agent sets its own node's offer (its lender gave the prices when
    /// it started the node: `stratus node --price`).
    SetOwnOffer {
        /// Prices and availability.
        offer: stratus_market::Offer,
        /// Price per task.
        task: stratus_market::Amount,
    },
    /// An agent asks the deterministic environment of a replica of a
    /// verified run it was assigned: a [`Response::TrustTerms`].
    TrustTerms {
        /// The instance.
        instance: String,
    },
    /// An agent commits to its replica's result (`stratus_state::trusted`).
    CommitResult {
        /// The instance.
        instance: String,
        /// `stratus_verify::commitment(node, result, salt)`.
        commitment: [u8; 32],
    },
    /// An agent reveals its replica's result; refused (`Conflict`) while
    /// other replicas have not committed yet.
    RevealResult {
        /// The instance.
        instance: String,
        /// The result.
        parts: stratus_verify::ResultParts,
        /// The salt of the commitment.
        salt: [u8; 32],
    },
    /// A storage node asks the replica to keep this connection as its piece
    /// link: the replica then sends the node's [`PieceRequest`]s as calls
    /// on it, which the node serves (so a node behind a NAT, which no
    /// replica can dial, lends disk). Answered [`Response::Ok`]; refused to
    /// anyone but a registered storage node, and taken only on the
    /// connection it arrives on.
    PieceLink,
    /// An agent asks the replica to keep this connection as its tunnel
    /// link: the replica then opens [`Request::TunnelOpen`] streams on it
    /// for connections other nodes' containers make to this node's service
    /// instances. Answered [`Response::Ok`]; refused to anyone but a
    /// registered, unbanned node.
    TunnelLink,
    /// An agent asks for a connection to `port` of service instance
    /// `instance` on another node, relayed by this replica over the
    /// instance's node's tunnel link. Answered [`Response::Ok`], after
    /// which the stream carries the connection's bytes (inside TLS between
    /// the two nodes' keys: the relay sees ciphertext). Refused unless the
    /// asking node runs an instance of the same tenant.
    Tunnel {
        /// The service instance.
        instance: String,
        /// Its port.
        port: u16,
    },
    /// A replica opens, on a node's tunnel link, a connection for node
    /// `from` to `port` of `instance` (which runs on the node). Answered
    /// [`Response::Ok`] once connected; then the stream carries TLS from
    /// `from`.
    TunnelOpen {
        /// The service instance.
        instance: String,
        /// Its port.
        port: u16,
        /// The node whose container connects (the TLS client's key).
        from: NodeId,
    },
    /// An agent asks where the services of the tenants it runs instances
    /// of run: answered [`Response::Directory`].
    ServiceDirectory,
    /// An agent asks the network of an instance it was assigned, before
    /// its container starts: answered [`Response::Network`].
    InstanceNetwork {
        /// The instance.
        instance: String,
    },
    /// An agent whose containers connect to `instance` on another node
    /// asks to be introduced to that node, to reach it directly (hole
    /// punching): the replica checks what it checks for
    /// [`Request::Tunnel`], tells the node on its tunnel link
    /// ([`Request::PunchOpen`]) and answers [`Response::Punched`] with the
    /// address the node's link comes from. Asked on a connection from the
    /// socket the asking node dials from, whose address the node is told.
    Punch {
        /// The service instance.
        instance: String,
        /// The asking node's addresses on its own network (`ip:port`, at
        /// most [`MAX_LOCAL_ADDRS`]): a node behind the same NAT reaches
        /// it there, where the NAT's public address may not lead back in.
        local: Vec<String>,
    },
    /// A replica tells a node, on its tunnel link, that node `from`, seen
    /// at `addr`, may connect to it directly for the services of `tenant`
    /// for a while (and the node sends packets to `addr` so its NAT lets
    /// `from` in). Answered [`Response::Ok`], or an error by a node that
    /// takes no direct connections.
    PunchOpen {
        /// The node that will connect.
        from: NodeId,
        /// Where its packets come from, as the replica sees them.
        addr: String,
        /// Whose services it may reach.
        tenant: String,
        /// Its addresses on its own network (as it says).
        local: Vec<String>,
    },
    /// An agent asks what the spec of an instance it was assigned says
    /// beyond the spec's layout (published UDP ports, ports of an HTTP
    /// component), before it starts: answered [`Response::Extensions`].
    InstanceExtensions {
        /// The instance.
        instance: String,
    },
}

/// Most local addresses a node gives in [`Request::Punch`] and
/// [`Response::Punched`] (more are ignored).
pub const MAX_LOCAL_ADDRS: usize = 4;

/// Most entries of one [`Response::Directory`].
pub const MAX_DIRECTORY: usize = 10_000;

/// A running instance of a service ([`Request::ServiceDirectory`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The owner.
    pub tenant: String,
    /// The service's name (its workload's).
    pub name: String,
    /// The instance.
    pub instance: String,
    /// The node it runs on.
    pub node: NodeId,
}

/// Most objects in one [`Response::ObjectList`].
pub const MAX_LIST_PAGE: usize = 1000;

/// An object of a listing ([`Request::ListInput`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Largest part of a volume archive in one message (reads and writes).
pub const MAX_VOLUME_PART: u64 = 16 << 20;

/// One step of storing a volume's archive ([`Request::PutVolume`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum VolumePut {
    /// Start an upload; answered with [`VolumeAnswer::Upload`].
    Begin,
    /// Store part `number` (1, 2, ...); answered with [`VolumeAnswer::Part`].
    Part {
        /// Upload id.
        upload: String,
        /// Part number (1–10000).
        number: u32,
        /// The bytes (at most [`MAX_VOLUME_PART`]).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Commit the parts, in order, as the new version; answered with
    /// [`VolumeAnswer::Saved`].
    Complete {
        /// Upload id.
        upload: String,
        /// Part numbers with the MD5 each part was answered with.
        parts: Vec<(u32, String)>,
    },
    /// Give the upload up; answered with [`Response::Ok`].
    Abort {
        /// Upload id.
        upload: String,
    },
}

/// The answer to a [`VolumePut`] step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeAnswer {
    /// `Begin`: the upload id.
    Upload(String),
    /// `Part`: the part's hex MD5.
    Part(String),
    /// `Complete`: the version stored.
    Saved(String),
}

/// One chunk of a module stored as an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleChunk {
    /// The chunk's store id (what [`Request::GetChunk`] names).
    pub id: [u8; 32],
    /// Plaintext length.
    pub len: u32,
}

/// One change of an instance, as an agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    /// Instance id.
    pub id: String,
    /// New state.
    pub state: stratus_state::InstanceState,
    /// Restarts so far.
    pub restarts: u32,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Event kind (`started`, `exited`, `restarted`, ...).
    pub kind: String,
    /// Event message.
    pub message: String,
    /// When it happened (agent clock, ms since the Unix epoch).
    pub time_ms: u64,
}

/// Output of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Instance id.
    pub instance: String,
    /// Byte offset of `data` in the instance's combined output.
    pub offset: u64,
    /// `true` for stderr.
    pub stderr: bool,
    /// The bytes.
    pub data: Vec<u8>,
}

/// An instance an agent should run (or stop), with what it needs to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The instance as recorded.
    pub instance: stratus_state::Instance,
    /// The spec of its generation.
    pub spec: stratus_spec::WorkloadSpec,
    /// What it runs (serialized as the old `module` string).
    pub module: stratus_types::Payload,
}

/// A change of the control plane's replica set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a replica: first as a learner that catches up, then as a voter.
    Add(Peer),
    /// Remove a replica from the voters and the cluster.
    Remove(NodeId),
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// Answer to [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Request::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Request::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to [`Request::Forward`]: the command was committed at `index`
    /// and applied with `result`.
    Forwarded {
        /// Log index of the committed command.
        index: u64,
        /// What applying it produced.
        result: CommandResult,
    },
    /// Answer to [`Request::Register`] and [`Request::Heartbeat`].
    Welcome {
        /// How often the agent should heartbeat.
        heartbeat_interval_ms: u64,
        /// Control replicas the agent may fail over to.
        peers: Vec<Peer>,
    },
    /// Answer to [`Request::Peers`].
    Peers {
        /// Current leader, if known.
        leader: Option<NodeId>,
        /// Control replicas.
        peers: Vec<Peer>,
    },
    /// Answer to [`Request::Status`].
    Status(stratus_types::ClusterStatus),
    /// Answer to [`Request::Assignments`].
    Assignments {
        /// Applied index of the answering replica.
        index: u64,
        /// Everything placed on the asking node that is not over.
        assignments: Vec<Assignment>,
    },
    /// Answer to [`Request::GetModule`].
    Module(Vec<u8>),
    /// Answer to [`Request::GetFlist`] and [`Request::GetChunk`].
    Blob(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Answer to [`Request::ReadLogs`]: bytes from `offset` on, and whether
    /// this replica has the instance's log at all.
    Logs {
        /// Offset of `data`.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
        /// Whether this replica holds a log for the instance.
        known: bool,
    },
    /// Plain acknowledgement.
    Ok,
    /// The request failed.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// What happened and what to do.
        message: String,
    },
    /// Answer to [`Request::GetVolume`] and [`Request::GetInput`].
    VolumeData {
        /// The version read (`None`: there is no such object, the volume
        /// starts empty). A version string names one content: versioned
        /// buckets give every save an id of its own, unversioned ones reuse
        /// `null`, so the string also carries the version's ETag.
        version: Option<String>,
        /// Size of the whole archive.
        size: u64,
        /// The bytes from the asked offset.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Answer to [`Request::PutVolume`] and [`Request::PutOutput`].
    Volume(VolumeAnswer),
    /// Answer to [`Request::ListInput`].
    ObjectList {
        /// Objects (at most [`MAX_LIST_PAGE`]), in key order.
        objects: Vec<ListedObject>,
        /// More objects follow the last one.
        truncated: bool,
    },
    /// Answer to [`Request::ClusterProof`]: the cluster's public key and
    /// its signature over the answering replica's node id (see
    /// `stratus_net::cluster`).
    ClusterProof {
        /// The cluster public key (ed25519).
        cluster_key: [u8; 32],
        /// Signature of the replica's node id by the cluster key.
        signature: Vec<u8>,
    },
    /// Answer to [`Request::GetModuleChunks`]: the module's chunks, in
    /// order (their lengths add up to `size`).
    ModuleChunks {
        /// Size of the module.
        size: u64,
        /// Its chunks.
        chunks: Vec<ModuleChunk>,
    },
    /// Answer to [`Request::TrustTerms`].
    TrustTerms {
        /// Seed of the guest's random numbers.
        seed: [u8; 32],
        /// Where its wall clock starts (ms since the Unix epoch).
        start_ms: u64,
        /// Fuel it may burn.
        fuel: u64,
    },
    /// Answer to [`Request::ServiceDirectory`].
    Directory(Vec<ServiceEntry>),
    /// Answer to [`Request::InstanceNetwork`].
    Network(stratus_spec::Networking),
    /// Answer to [`Request::Punch`]: the node was told, and this is where
    /// its packets come from (dial it there).
    Punched {
        /// `ip:port`, as the replica sees the node's link.
        addr: String,
        /// The node's addresses on its own network (as it says).
        local: Vec<String>,
    },
    /// Answer to [`Request::InstanceExtensions`].
    Extensions(stratus_spec::SelfDescribing<stratus_spec::Extensions>),
}

/// A control replica and its QUIC address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Replica identity.
    pub id: NodeId,
    /// `host:port` of its QUIC endpoint.
    pub addr: String,
}

/// A request to a storage node's piece service (its own QUIC endpoint).
/// Served only to control replicas (gateways and the repair worker).
#[derive(Debug, Serialize, Deserialize)]
pub enum PieceRequest {
    /// Store a piece durably; refused if the bytes do not hash to `id`.
    Put {
        /// BLAKE3 of the bytes.
        id: PieceId,
        /// The piece.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Read a whole piece.
    Get {
        /// Piece.
        id: PieceId,
    },
    /// Read part of a piece.
    GetRange {
        /// Piece.
        id: PieceId,
        /// First byte.
        offset: u64,
        /// Bytes wanted.
        len: u64,
    },
    /// Delete pieces (missing ones are fine).
    Delete {
        /// Pieces.
        ids: Vec<PieceId>,
    },
    /// List every piece held, with size and age.
    List,
    /// Capacity and use.
    Usage,
    /// Re-hash up to `max_bytes` of pieces (continuing the previous round).
    Scrub {
        /// Budget of the round.
        max_bytes: u64,
    },
    /// A storage challenge: prove holding `len` bytes of piece `id` from
    /// `offset` with a BLAKE3 verified-streaming (Bao) slice that the replica
    /// checks against the id (`stratus-store`'s `audit`).
    Prove {
        /// Piece.
        id: PieceId,
        /// First byte of the range.
        offset: u64,
        /// Bytes of the range (bounded by the node).
        len: u64,
    },
}

/// A piece held by a storage node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceInfo {
    /// Piece.
    pub id: PieceId,
    /// Bytes.
    pub size: u64,
    /// Last modification (ms since the Unix epoch, node clock).
    pub modified_ms: u64,
}

/// The answer to a [`PieceRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PieceResponse {
    /// `Put`: stored (`true` if it was new).
    Stored(bool),
    /// `Get`/`GetRange`: the bytes.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// `Delete`: how many existed.
    Deleted(u64),
    /// `List`.
    List(Vec<PieceInfo>),
    /// `Usage`.
    Usage {
        /// Bytes lent.
        capacity_bytes: u64,
        /// Bytes of pieces.
        used_bytes: u64,
        /// Pieces held.
        pieces: u64,
        /// Free bytes of the file system.
        fs_available_bytes: u64,
    },
    /// `Scrub`.
    Scrub {
        /// Pieces checked.
        checked_pieces: u64,
        /// Bytes checked.
        checked_bytes: u64,
        /// Pieces found corrupt (now quarantined).
        corrupt: Vec<PieceId>,
        /// The round completed a full pass.
        wrapped: bool,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        kind: PieceErrorKind,
        /// What happened.
        message: String,
    },
    /// `Prove`: the Bao slice of the range (its bytes and the tree nodes
    /// that tie them to the piece id).
    Proof(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Why a piece request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PieceErrorKind {
    /// No such piece.
    NotFound,
    /// The stored piece failed verification (it is quarantined).
    Corrupt,
    /// The bytes do not hash to the id given.
    HashMismatch,
    /// Out of lent capacity or disk space.
    Full,
    /// The caller may not use this service.
    Forbidden,
    /// Anything else (IO errors).
    Io,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bincode_round_trip() {
        let req = Request::ForwardHeartbeat {
            node: NodeId([7; 32]),
        };
        let bytes = bincode::serialize(&req).expect("encode");
        let back: Request = bincode::deserialize(&bytes).expect("decode");
        assert!(matches!(back, Request::ForwardHeartbeat { node } if node == NodeId([7; 32])));
        let resp = Response::Error {
            code: ErrorCode::NoLeader,
            message: "x".into(),
        };
        let bytes = bincode::serialize(&resp).expect("encode");
        let back: Response = bincode::deserialize(&bytes).expect("decode");
        assert!(matches!(
            back,
            Response::Error {
                code: ErrorCode::NoLeader,
                ..
            }
        ));
    }

    #[test]
    fn task_io_messages_round_trip() {
        let req = Request::ListInput {
            tenant: "t".into(),
            bucket: "b".into(),
            prefix: "p/".into(),
            after: Some("p/a".into()),
        };
        let back: Request =
            bincode::deserialize(&bincode::serialize(&req).expect("encode")).expect("decode");
        assert!(matches!(back, Request::ListInput { after: Some(a), .. } if a == "p/a"));
        let resp = Response::ObjectList {
            objects: vec![ListedObject {
                key: "p/a".into(),
                size: 3,
            }],
            truncated: true,
        };
        let back: Response =
            bincode::deserialize(&bincode::serialize(&resp).expect("encode")).expect("decode");
        assert!(
            matches!(back, Response::ObjectList { objects, truncated: true } if objects[0].size == 3)
        );
    }

    #[test]
    fn volume_messages_round_trip_below_the_frame_limit() {
        let req = Request::PutVolume {
            tenant: "t".into(),
            bucket: "b".into(),
            key: "k".into(),
            step: VolumePut::Part {
                upload: "u1".into(),
                number: 1,
                data: vec![7; MAX_VOLUME_PART as usize],
            },
        };
        let bytes = bincode::serialize(&req).expect("encode");
        // A full part and its envelope fit a frame with room to spare.
        assert!(bytes.len() < (MAX_VOLUME_PART as usize) + 1024);
        match bincode::deserialize(&bytes).expect("decode") {
            Request::PutVolume {
                step: VolumePut::Part { number, data, .. },
                ..
            } => assert_eq!((number, data.len()), (1, MAX_VOLUME_PART as usize)),
            other => panic!("{other:?}"),
        }
        let resp = Response::VolumeData {
            version: Some("v1:abc".into()),
            size: 9,
            data: vec![1, 2, 3],
        };
        let back: Response =
            bincode::deserialize(&bincode::serialize(&resp).expect("encode")).expect("decode");
        assert!(
            matches!(back, Response::VolumeData { version: Some(v), size: 9, data } if v == "v1:abc" && data == [1, 2, 3])
        );
    }
}
