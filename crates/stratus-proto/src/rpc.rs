//! Requests that name their reply.
//!
//! The wire carries one [`Request`] and one [`Response`] enum (appended to,
//! never reordered). Over them, each request a node sends is a type
//! implementing [`Rpc`]: it says which [`Request`] it becomes and which
//! [`Response`] kind answers it, so a caller gets its typed reply or an
//! [`RpcError`] — the peer refused ([`Response::Error`]), or answered with
//! another kind — decided here, once, instead of an "unexpected answer" arm
//! at every call site. `stratus-net`'s `Connection::rpc` and `Pool::rpc`
//! send them. The bytes on the wire are those of the [`Request`] and
//! [`Response`] variants, unchanged.

// `reply` hands a response of another kind back by value (it is moved, not
// copied) so `decode` can name it; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use stratus_state::{Command, CommandResult, TypeConfig};
use stratus_types::{ClusterStatus, ErrorCode, NodeId, NodeInfo};

use crate::{
    Assignment, InstanceReport, LogChunk, MembershipChange, ModuleChunk, Peer, Request, Response,
};

/// A request that names its reply.
pub trait Rpc {
    /// What the expected answer carries.
    type Reply;
    /// The request's name, for errors.
    const NAME: &'static str;
    /// The request as sent on the wire.
    fn into_request(self) -> Request;
    /// The reply when `r` is the expected kind of answer; `r` back when not.
    fn reply(r: Response) -> Result<Self::Reply, Response>;
}

/// Why a request got no reply of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The peer refused it ([`Response::Error`]).
    #[error("{message}")]
    Refused {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// The peer answered with another kind of response.
    #[error("unexpected answer to {request}: {got}")]
    WrongReply {
        /// The request sent.
        request: &'static str,
        /// The kind of answer received.
        got: &'static str,
    },
}

impl RpcError {
    /// The peer's code, when it refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RpcError::Refused { code, .. } => Some(*code),
            RpcError::WrongReply { .. } => None,
        }
    }
}

/// Turns the answer `r` to an `R` into its reply.
pub fn decode<R: Rpc>(r: Response) -> Result<R::Reply, RpcError> {
    R::reply(r).map_err(|other| match other {
        Response::Error { code, message } => RpcError::Refused { code, message },
        other => RpcError::WrongReply {
            request: R::NAME,
            got: other.kind(),
        },
    })
}

impl Response {
    /// The variant's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::AppendEntries(_) => "AppendEntries",
            Response::Vote(_) => "Vote",
            Response::InstallSnapshot(_) => "InstallSnapshot",
            Response::Forwarded { .. } => "Forwarded",
            Response::Welcome { .. } => "Welcome",
            Response::Peers { .. } => "Peers",
            Response::Status(_) => "Status",
            Response::Assignments { .. } => "Assignments",
            Response::Module(_) => "Module",
            Response::Blob(_) => "Blob",
            Response::Logs { .. } => "Logs",
            Response::Ok => "Ok",
            Response::Error { .. } => "Error",
            Response::VolumeData { .. } => "VolumeData",
            Response::Volume(_) => "Volume",
            Response::ObjectList { .. } => "ObjectList",
            Response::ClusterProof { .. } => "ClusterProof",
            Response::ModuleChunks { .. } => "ModuleChunks",
            Response::TrustTerms { .. } => "TrustTerms",
            Response::Directory(_) => "Directory",
            Response::Network(_) => "Network",
            Response::Punched { .. } => "Punched",
            Response::Extensions(_) => "Extensions",
        }
    }
}

impl Rpc for AppendEntriesRequest<TypeConfig> {
    type Reply = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
    const NAME: &'static str = "AppendEntries";
    fn into_request(self) -> Request {
        Request::AppendEntries(self)
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::AppendEntries(a) => Ok(a),
            other => Err(other),
        }
    }
}

impl Rpc for InstallSnapshotRequest<TypeConfig> {
    type Reply = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
    const NAME: &'static str = "InstallSnapshot";
    fn into_request(self) -> Request {
        Request::InstallSnapshot(self)
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::InstallSnapshot(a) => Ok(a),
            other => Err(other),
        }
    }
}

impl Rpc for VoteRequest<NodeId> {
    type Reply = Result<VoteResponse<NodeId>, RaftError<NodeId>>;
    const NAME: &'static str = "Vote";
    fn into_request(self) -> Request {
        Request::Vote(self)
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::Vote(a) => Ok(a),
            other => Err(other),
        }
    }
}

/// [`Request::Forward`]: a client write sent to the leader.
#[derive(Debug)]
pub struct Forward(pub Command);

/// The leader applied a forwarded write.
#[derive(Debug)]
pub struct Forwarded {
    /// Log index it was applied at.
    pub index: u64,
    /// What applying it returned.
    pub result: CommandResult,
}

impl Rpc for Forward {
    type Reply = Forwarded;
    const NAME: &'static str = "Forward";
    fn into_request(self) -> Request {
        Request::Forward(self.0)
    }
    fn reply(r: Response) -> Result<Forwarded, Response> {
        match r {
            Response::Forwarded { index, result } => Ok(Forwarded { index, result }),
            other => Err(other),
        }
    }
}

impl Rpc for MembershipChange {
    type Reply = ();
    const NAME: &'static str = "ChangeMembership";
    fn into_request(self) -> Request {
        Request::ChangeMembership(self)
    }
    fn reply(r: Response) -> Result<(), Response> {
        match r {
            Response::Ok => Ok(()),
            other => Err(other),
        }
    }
}

/// A replica's welcome: how often to heartbeat, and who the replicas are.
#[derive(Debug)]
pub struct Welcome {
    /// Heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// The control replicas.
    pub peers: Vec<Peer>,
}

fn welcome(r: Response) -> Result<Welcome, Response> {
    match r {
        Response::Welcome {
            heartbeat_interval_ms,
            peers,
        } => Ok(Welcome {
            heartbeat_interval_ms,
            peers,
        }),
        other => Err(other),
    }
}

/// [`Request::Register`].
#[derive(Debug)]
pub struct Register {
    /// Node description.
    pub info: NodeInfo,
    /// Join credential.
    pub join_token: String,
}

impl Rpc for Register {
    type Reply = Welcome;
    const NAME: &'static str = "Register";
    fn into_request(self) -> Request {
        Request::Register {
            info: self.info,
            join_token: self.join_token,
        }
    }
    fn reply(r: Response) -> Result<Welcome, Response> {
        welcome(r)
    }
}

/// [`Request::Heartbeat`].
#[derive(Debug)]
pub struct Heartbeat;

impl Rpc for Heartbeat {
    type Reply = Welcome;
    const NAME: &'static str = "Heartbeat";
    fn into_request(self) -> Request {
        Request::Heartbeat
    }
    fn reply(r: Response) -> Result<Welcome, Response> {
        welcome(r)
    }
}

/// [`Request::ForwardHeartbeat`].
#[derive(Debug)]
pub struct ForwardHeartbeat {
    /// The agent that heartbeated.
    pub node: NodeId,
}

impl Rpc for ForwardHeartbeat {
    type Reply = ();
    const NAME: &'static str = "ForwardHeartbeat";
    fn into_request(self) -> Request {
        Request::ForwardHeartbeat { node: self.node }
    }
    fn reply(r: Response) -> Result<(), Response> {
        match r {
            Response::Ok => Ok(()),
            other => Err(other),
        }
    }
}

/// [`Request::Peers`].
#[derive(Debug)]
pub struct Peers;

/// Who the replicas are, as one replica knows.
#[derive(Debug)]
pub struct PeerList {
    /// The leader, if known.
    pub leader: Option<NodeId>,
    /// The replicas.
    pub peers: Vec<Peer>,
}

impl Rpc for Peers {
    type Reply = PeerList;
    const NAME: &'static str = "Peers";
    fn into_request(self) -> Request {
        Request::Peers
    }
    fn reply(r: Response) -> Result<PeerList, Response> {
        match r {
            Response::Peers { leader, peers } => Ok(PeerList { leader, peers }),
            other => Err(other),
        }
    }
}

/// [`Request::Status`].
#[derive(Debug)]
pub struct Status;

impl Rpc for Status {
    type Reply = ClusterStatus;
    const NAME: &'static str = "Status";
    fn into_request(self) -> Request {
        Request::Status
    }
    fn reply(r: Response) -> Result<ClusterStatus, Response> {
        match r {
            Response::Status(s) => Ok(s),
            other => Err(other),
        }
    }
}

/// [`Request::Assignments`].
#[derive(Debug)]
pub struct Assignments {
    /// Applied index the agent has already seen.
    pub after_index: u64,
    /// Longest wait.
    pub wait_ms: u64,
}

/// What a node should run, as of an applied index.
#[derive(Debug)]
pub struct AssignmentList {
    /// Applied index they are current as of.
    pub index: u64,
    /// The node's instances.
    pub assignments: Vec<Assignment>,
}

impl Rpc for Assignments {
    type Reply = AssignmentList;
    const NAME: &'static str = "Assignments";
    fn into_request(self) -> Request {
        Request::Assignments {
            after_index: self.after_index,
            wait_ms: self.wait_ms,
        }
    }
    fn reply(r: Response) -> Result<AssignmentList, Response> {
        match r {
            Response::Assignments { index, assignments } => {
                Ok(AssignmentList { index, assignments })
            }
            other => Err(other),
        }
    }
}

fn blob(r: Response) -> Result<Vec<u8>, Response> {
    match r {
        Response::Blob(b) => Ok(b),
        other => Err(other),
    }
}

/// [`Request::GetFlist`]: answered with the encoded flist.
#[derive(Debug)]
pub struct GetFlist {
    /// Owner.
    pub tenant: String,
    /// `image:NAME:TAG@VERSION`.
    pub image: String,
}

impl Rpc for GetFlist {
    type Reply = Vec<u8>;
    const NAME: &'static str = "GetFlist";
    fn into_request(self) -> Request {
        Request::GetFlist {
            tenant: self.tenant,
            image: self.image,
        }
    }
    fn reply(r: Response) -> Result<Vec<u8>, Response> {
        blob(r)
    }
}

/// [`Request::GetChunk`]: answered with the chunk's plain bytes.
#[derive(Debug)]
pub struct GetChunk {
    /// Owner of the key scope.
    pub tenant: String,
    /// Chunk id.
    pub id: [u8; 32],
}

impl Rpc for GetChunk {
    type Reply = Vec<u8>;
    const NAME: &'static str = "GetChunk";
    fn into_request(self) -> Request {
        Request::GetChunk {
            tenant: self.tenant,
            id: self.id,
        }
    }
    fn reply(r: Response) -> Result<Vec<u8>, Response> {
        blob(r)
    }
}

/// [`Request::GetKek`]: answered with the 32-byte key-encryption key.
#[derive(Debug)]
pub struct GetKek;

impl Rpc for GetKek {
    type Reply = Vec<u8>;
    const NAME: &'static str = "GetKek";
    fn into_request(self) -> Request {
        Request::GetKek
    }
    fn reply(r: Response) -> Result<Vec<u8>, Response> {
        blob(r)
    }
}

/// [`Request::ClusterProof`].
#[derive(Debug)]
pub struct ClusterProof;

/// A replica's proof that the cluster key vouches for it.
#[derive(Debug)]
pub struct Proof {
    /// The cluster's public key.
    pub cluster_key: [u8; 32],
    /// Its signature over the replica's id.
    pub signature: Vec<u8>,
}

impl Rpc for ClusterProof {
    type Reply = Proof;
    const NAME: &'static str = "ClusterProof";
    fn into_request(self) -> Request {
        Request::ClusterProof
    }
    fn reply(r: Response) -> Result<Proof, Response> {
        match r {
            Response::ClusterProof {
                cluster_key,
                signature,
            } => Ok(Proof {
                cluster_key,
                signature,
            }),
            other => Err(other),
        }
    }
}

/// [`Request::ReadLogs`].
#[derive(Debug)]
pub struct ReadLogs {
    /// Instance id (or exec stream).
    pub instance: String,
    /// First byte wanted.
    pub offset: u64,
}

/// Output a replica holds of an instance.
#[derive(Debug)]
pub struct Logs {
    /// Offset of `data`.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// Whether the replica knows the stream at all.
    pub known: bool,
}

impl Rpc for ReadLogs {
    type Reply = Logs;
    const NAME: &'static str = "ReadLogs";
    fn into_request(self) -> Request {
        Request::ReadLogs {
            instance: self.instance,
            offset: self.offset,
        }
    }
    fn reply(r: Response) -> Result<Logs, Response> {
        match r {
            Response::Logs {
                offset,
                data,
                known,
            } => Ok(Logs {
                offset,
                data,
                known,
            }),
            other => Err(other),
        }
    }
}

fn ok(r: Response) -> Result<(), Response> {
    match r {
        Response::Ok => Ok(()),
        other => Err(other),
    }
}

/// [`Request::Report`]: what happened to the agent's instances.
#[derive(Debug)]
pub struct Report(pub Vec<InstanceReport>);

impl Rpc for Report {
    type Reply = ();
    const NAME: &'static str = "Report";
    fn into_request(self) -> Request {
        Request::Report(self.0)
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::ReportUsage`]: signed usage of the agent's instances.
#[derive(Debug)]
pub struct ReportUsage(pub Vec<stratus_market::UsageReport>);

impl Rpc for ReportUsage {
    type Reply = ();
    const NAME: &'static str = "ReportUsage";
    fn into_request(self) -> Request {
        Request::ReportUsage(self.0)
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::SetOwnOffer`]: the agent's node's offer.
#[derive(Debug)]
pub struct SetOwnOffer {
    /// Prices and availability.
    pub offer: stratus_market::Offer,
    /// Price per task.
    pub task: stratus_market::Amount,
}

impl Rpc for SetOwnOffer {
    type Reply = ();
    const NAME: &'static str = "SetOwnOffer";
    fn into_request(self) -> Request {
        Request::SetOwnOffer {
            offer: self.offer,
            task: self.task,
        }
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::TrustTerms`]: the deterministic environment of a replica.
#[derive(Debug)]
pub struct TrustTerms {
    /// The instance.
    pub instance: String,
}

/// What [`TrustTerms`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Seed of the guest's random numbers.
    pub seed: [u8; 32],
    /// Where its wall clock starts (ms since the Unix epoch).
    pub start_ms: u64,
    /// Fuel it may burn.
    pub fuel: u64,
}

impl Rpc for TrustTerms {
    type Reply = Terms;
    const NAME: &'static str = "TrustTerms";
    fn into_request(self) -> Request {
        Request::TrustTerms {
            instance: self.instance,
        }
    }
    fn reply(r: Response) -> Result<Terms, Response> {
        match r {
            Response::TrustTerms {
                seed,
                start_ms,
                fuel,
            } => Ok(Terms {
                seed,
                start_ms,
                fuel,
            }),
            other => Err(other),
        }
    }
}

/// [`Request::CommitResult`]: a replica's commitment.
#[derive(Debug)]
pub struct CommitResult {
    /// The instance.
    pub instance: String,
    /// The commitment.
    pub commitment: [u8; 32],
}

impl Rpc for CommitResult {
    type Reply = ();
    const NAME: &'static str = "CommitResult";
    fn into_request(self) -> Request {
        Request::CommitResult {
            instance: self.instance,
            commitment: self.commitment,
        }
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::RevealResult`]: a replica's result and salt.
#[derive(Debug)]
pub struct RevealResult {
    /// The instance.
    pub instance: String,
    /// The result.
    pub parts: stratus_verify::ResultParts,
    /// The salt.
    pub salt: [u8; 32],
}

impl Rpc for RevealResult {
    type Reply = ();
    const NAME: &'static str = "RevealResult";
    fn into_request(self) -> Request {
        Request::RevealResult {
            instance: self.instance,
            parts: self.parts,
            salt: self.salt,
        }
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::PushLogs`]: output of the agent's instances.
#[derive(Debug)]
pub struct PushLogs(pub Vec<LogChunk>);

impl Rpc for PushLogs {
    type Reply = ();
    const NAME: &'static str = "PushLogs";
    fn into_request(self) -> Request {
        Request::PushLogs(self.0)
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::ReportExec`].
#[derive(Debug)]
pub struct ReportExec {
    /// Instance id.
    pub instance: String,
    /// Exec number.
    pub n: u32,
    /// New state.
    pub state: stratus_state::workloads::ExecState,
}

impl Rpc for ReportExec {
    type Reply = ();
    const NAME: &'static str = "ReportExec";
    fn into_request(self) -> Request {
        Request::ReportExec {
            instance: self.instance,
            n: self.n,
            state: self.state,
        }
    }
    fn reply(r: Response) -> Result<(), Response> {
        ok(r)
    }
}

/// [`Request::GetModule`]: a module of the first layouts, whole.
#[derive(Debug)]
pub struct GetModule {
    /// Content address.
    pub hash: String,
}

impl Rpc for GetModule {
    type Reply = Vec<u8>;
    const NAME: &'static str = "GetModule";
    fn into_request(self) -> Request {
        Request::GetModule { hash: self.hash }
    }
    fn reply(r: Response) -> Result<Vec<u8>, Response> {
        match r {
            Response::Module(b) => Ok(b),
            other => Err(other),
        }
    }
}

/// [`Request::GetModuleChunks`].
#[derive(Debug)]
pub struct GetModuleChunks {
    /// Owner.
    pub tenant: String,
    /// Content address.
    pub hash: String,
}

/// A module's size and chunk list.
#[derive(Debug)]
pub struct ModuleChunkList {
    /// Total bytes.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<ModuleChunk>,
}

impl Rpc for GetModuleChunks {
    type Reply = ModuleChunkList;
    const NAME: &'static str = "GetModuleChunks";
    fn into_request(self) -> Request {
        Request::GetModuleChunks {
            tenant: self.tenant,
            hash: self.hash,
        }
    }
    fn reply(r: Response) -> Result<ModuleChunkList, Response> {
        match r {
            Response::ModuleChunks { size, chunks } => Ok(ModuleChunkList { size, chunks }),
            other => Err(other),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_another_kind_is_one_typed_error() {
        let welcome = Response::Welcome {
            heartbeat_interval_ms: 5,
            peers: Vec::new(),
        };
        assert_eq!(
            decode::<Heartbeat>(welcome).unwrap().heartbeat_interval_ms,
            5
        );
        assert_eq!(
            decode::<Heartbeat>(Response::Blob(vec![1])).unwrap_err(),
            RpcError::WrongReply {
                request: "Heartbeat",
                got: "Blob"
            }
        );
        let refused = decode::<GetChunk>(Response::Error {
            code: ErrorCode::Forbidden,
            message: "no".into(),
        })
        .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
        assert_eq!(refused.to_string(), "no");
    }

    #[test]
    fn typed_requests_encode_as_the_enum_variants() {
        let frame = |r: &Request| bincode::serialize(r).unwrap();
        let typed = GetChunk {
            tenant: "t".into(),
            id: [7; 32],
        }
        .into_request();
        let old = Request::GetChunk {
            tenant: "t".into(),
            id: [7; 32],
        };
        assert_eq!(frame(&typed), frame(&old));
        let typed = Assignments {
            after_index: 3,
            wait_ms: 9,
        }
        .into_request();
        let old = Request::Assignments {
            after_index: 3,
            wait_ms: 9,
        };
        assert_eq!(frame(&typed), frame(&old));
    }
}

/// [`Request::ServiceDirectory`].
#[derive(Debug)]
pub struct ServiceDirectory;

impl Rpc for ServiceDirectory {
    type Reply = Vec<crate::ServiceEntry>;
    const NAME: &'static str = "ServiceDirectory";
    fn into_request(self) -> Request {
        Request::ServiceDirectory
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::Directory(d) => Ok(d),
            other => Err(other),
        }
    }
}

/// [`Request::InstanceExtensions`].
#[derive(Debug)]
pub struct InstanceExtensions {
    /// The instance.
    pub instance: String,
}

impl Rpc for InstanceExtensions {
    type Reply = stratus_spec::Extensions;
    const NAME: &'static str = "InstanceExtensions";
    fn into_request(self) -> Request {
        Request::InstanceExtensions {
            instance: self.instance,
        }
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::Extensions(e) => Ok(e.0),
            other => Err(other),
        }
    }
}

/// [`Request::InstanceNetwork`].
#[derive(Debug)]
pub struct InstanceNetwork {
    /// The instance.
    pub instance: String,
}

impl Rpc for InstanceNetwork {
    type Reply = stratus_spec::Networking;
    const NAME: &'static str = "InstanceNetwork";
    fn into_request(self) -> Request {
        Request::InstanceNetwork {
            instance: self.instance,
        }
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::Network(n) => Ok(n),
            other => Err(other),
        }
    }
}

/// [`Request::Punch`]: where the instance's node can be dialed.
#[derive(Debug)]
pub struct Punch {
    /// The service instance.
    pub instance: String,
    /// The asking node's local addresses.
    pub local: Vec<String>,
}

impl Rpc for Punch {
    /// The node's address as the replica sees it, and its local ones.
    type Reply = (String, Vec<String>);
    const NAME: &'static str = "Punch";
    fn into_request(self) -> Request {
        Request::Punch {
            instance: self.instance,
            local: self.local,
        }
    }
    fn reply(r: Response) -> Result<Self::Reply, Response> {
        match r {
            Response::Punched { addr, local } => Ok((addr, local)),
            other => Err(other),
        }
    }
}

/// A link request ([`Request::PieceLink`], [`Request::TunnelLink`]):
/// answered [`Response::Ok`] when the replica keeps the connection.
#[derive(Debug)]
pub struct Link(pub Request);

impl Rpc for Link {
    type Reply = ();
    const NAME: &'static str = "Link";
    fn into_request(self) -> Request {
        self.0
    }
    fn reply(r: Response) -> Result<(), Response> {
        match r {
            Response::Ok => Ok(()),
            other => Err(other),
        }
    }
}
