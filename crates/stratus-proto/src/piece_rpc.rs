//! Piece-service requests that name their reply: the same shape as
//! [`crate::rpc`] over [`PieceRequest`]/[`PieceResponse`] (unchanged on the
//! wire), so the replica's store gets a typed reply or one
//! [`PieceRpcError`] and no call site carries an "unexpected answer" arm.

// `reply` hands a response of another kind back by value (moved, not
// copied) so `decode` can name it.
#![allow(clippy::result_large_err)]

use stratus_chunk::PieceId;

use crate::{PieceErrorKind, PieceInfo, PieceRequest, PieceResponse};

/// A piece-service request that names its reply.
pub trait PieceRpc {
    /// What the expected answer carries.
    type Reply;
    /// The request's name, for errors.
    const NAME: &'static str;
    /// The request as sent on the wire.
    fn into_request(self) -> PieceRequest;
    /// The reply when `r` is the expected kind of answer; `r` back when not.
    fn reply(r: PieceResponse) -> Result<Self::Reply, PieceResponse>;
}

/// Why a piece request got no reply of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PieceRpcError {
    /// The node refused it ([`PieceResponse::Error`]).
    #[error("{message}")]
    Refused {
        /// What kind of failure.
        kind: PieceErrorKind,
        /// What happened.
        message: String,
    },
    /// The node answered with another kind of response.
    #[error("unexpected answer to {request}: {got}")]
    WrongReply {
        /// The request sent.
        request: &'static str,
        /// The kind of answer received.
        got: &'static str,
    },
}

impl PieceRpcError {
    /// The node's kind of failure, when it refused.
    pub fn kind(&self) -> Option<PieceErrorKind> {
        match self {
            PieceRpcError::Refused { kind, .. } => Some(*kind),
            PieceRpcError::WrongReply { .. } => None,
        }
    }
}

/// Turns the answer `r` to an `R` into its reply.
pub fn decode<R: PieceRpc>(r: PieceResponse) -> Result<R::Reply, PieceRpcError> {
    R::reply(r).map_err(|other| match other {
        PieceResponse::Error { kind, message } => PieceRpcError::Refused { kind, message },
        other => PieceRpcError::WrongReply {
            request: R::NAME,
            got: other.kind(),
        },
    })
}

impl PieceResponse {
    /// The variant's name.
    pub fn kind(&self) -> &'static str {
        match self {
            PieceResponse::Stored(_) => "Stored",
            PieceResponse::Bytes(_) => "Bytes",
            PieceResponse::Deleted(_) => "Deleted",
            PieceResponse::List(_) => "List",
            PieceResponse::Usage { .. } => "Usage",
            PieceResponse::Scrub { .. } => "Scrub",
            PieceResponse::Error { .. } => "Error",
            PieceResponse::Proof(_) => "Proof",
        }
    }
}

fn bytes(r: PieceResponse) -> Result<Vec<u8>, PieceResponse> {
    match r {
        PieceResponse::Bytes(b) => Ok(b),
        other => Err(other),
    }
}

fn deleted(r: PieceResponse) -> Result<u64, PieceResponse> {
    match r {
        PieceResponse::Deleted(n) => Ok(n),
        other => Err(other),
    }
}

/// [`PieceRequest::Put`]: answered whether the piece was new.
#[derive(Debug)]
pub struct Put {
    /// BLAKE3 of the bytes.
    pub id: PieceId,
    /// The piece.
    pub bytes: Vec<u8>,
}

impl PieceRpc for Put {
    type Reply = bool;
    const NAME: &'static str = "Put";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Put {
            id: self.id,
            bytes: self.bytes,
        }
    }
    fn reply(r: PieceResponse) -> Result<bool, PieceResponse> {
        match r {
            PieceResponse::Stored(new) => Ok(new),
            other => Err(other),
        }
    }
}

/// [`PieceRequest::Get`]: the whole piece.
#[derive(Debug)]
pub struct Get {
    /// Piece.
    pub id: PieceId,
}

impl PieceRpc for Get {
    type Reply = Vec<u8>;
    const NAME: &'static str = "Get";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Get { id: self.id }
    }
    fn reply(r: PieceResponse) -> Result<Vec<u8>, PieceResponse> {
        bytes(r)
    }
}

/// [`PieceRequest::GetRange`]: part of a piece.
#[derive(Debug)]
pub struct GetRange {
    /// Piece.
    pub id: PieceId,
    /// First byte.
    pub offset: u64,
    /// Bytes wanted.
    pub len: u64,
}

impl PieceRpc for GetRange {
    type Reply = Vec<u8>;
    const NAME: &'static str = "GetRange";
    fn into_request(self) -> PieceRequest {
        PieceRequest::GetRange {
            id: self.id,
            offset: self.offset,
            len: self.len,
        }
    }
    fn reply(r: PieceResponse) -> Result<Vec<u8>, PieceResponse> {
        bytes(r)
    }
}

/// [`PieceRequest::Delete`]: answered how many existed.
#[derive(Debug)]
pub struct Delete {
    /// Pieces.
    pub ids: Vec<PieceId>,
}

impl PieceRpc for Delete {
    type Reply = u64;
    const NAME: &'static str = "Delete";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Delete { ids: self.ids }
    }
    fn reply(r: PieceResponse) -> Result<u64, PieceResponse> {
        deleted(r)
    }
}

/// [`PieceRequest::List`]: every piece held.
#[derive(Debug)]
pub struct List;

impl PieceRpc for List {
    type Reply = Vec<PieceInfo>;
    const NAME: &'static str = "List";
    fn into_request(self) -> PieceRequest {
        PieceRequest::List
    }
    fn reply(r: PieceResponse) -> Result<Vec<PieceInfo>, PieceResponse> {
        match r {
            PieceResponse::List(l) => Ok(l),
            other => Err(other),
        }
    }
}

/// [`PieceRequest::Usage`].
#[derive(Debug)]
pub struct Usage;

/// A storage node's capacity and use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageReply {
    /// Bytes lent.
    pub capacity_bytes: u64,
    /// Bytes of pieces.
    pub used_bytes: u64,
    /// Pieces held.
    pub pieces: u64,
    /// Free bytes of the file system.
    pub fs_available_bytes: u64,
}

impl PieceRpc for Usage {
    type Reply = UsageReply;
    const NAME: &'static str = "Usage";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Usage
    }
    fn reply(r: PieceResponse) -> Result<UsageReply, PieceResponse> {
        match r {
            PieceResponse::Usage {
                capacity_bytes,
                used_bytes,
                pieces,
                fs_available_bytes,
            } => Ok(UsageReply {
                capacity_bytes,
                used_bytes,
                pieces,
                fs_available_bytes,
            }),
            other => Err(other),
        }
    }
}

/// [`PieceRequest::Scrub`].
#[derive(Debug)]
pub struct Scrub {
    /// Budget of the round.
    pub max_bytes: u64,
}

/// What a scrub round checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubReply {
    /// Pieces checked.
    pub checked_pieces: u64,
    /// Bytes checked.
    pub checked_bytes: u64,
    /// Pieces found corrupt (now quarantined).
    pub corrupt: Vec<PieceId>,
    /// The round completed a full pass.
    pub wrapped: bool,
}

impl PieceRpc for Scrub {
    type Reply = ScrubReply;
    const NAME: &'static str = "Scrub";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Scrub {
            max_bytes: self.max_bytes,
        }
    }
    fn reply(r: PieceResponse) -> Result<ScrubReply, PieceResponse> {
        match r {
            PieceResponse::Scrub {
                checked_pieces,
                checked_bytes,
                corrupt,
                wrapped,
            } => Ok(ScrubReply {
                checked_pieces,
                checked_bytes,
                corrupt,
                wrapped,
            }),
            other => Err(other),
        }
    }
}

/// [`PieceRequest::Prove`]: answered with the Bao slice of the range.
#[derive(Debug)]
pub struct Prove {
    /// Piece.
    pub id: PieceId,
    /// First byte of the range.
    pub offset: u64,
    /// Bytes of the range.
    pub len: u64,
}

impl PieceRpc for Prove {
    type Reply = Vec<u8>;
    const NAME: &'static str = "Prove";
    fn into_request(self) -> PieceRequest {
        PieceRequest::Prove {
            id: self.id,
            offset: self.offset,
            len: self.len,
        }
    }
    fn reply(r: PieceResponse) -> Result<Vec<u8>, PieceResponse> {
        match r {
            PieceResponse::Proof(p) => Ok(p),
            other => Err(other),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_reply_of_another_kind_is_one_typed_error() {
        assert_eq!(decode::<Delete>(PieceResponse::Deleted(3)).unwrap(), 3);
        assert_eq!(
            decode::<Get>(PieceResponse::Stored(true)).unwrap_err(),
            PieceRpcError::WrongReply {
                request: "Get",
                got: "Stored"
            }
        );
        let refused = decode::<Prove>(PieceResponse::Error {
            kind: PieceErrorKind::Corrupt,
            message: "rotten".into(),
        })
        .unwrap_err();
        assert_eq!(refused.kind(), Some(PieceErrorKind::Corrupt));
        let typed = bincode::serialize(
            &Get {
                id: PieceId([3; 32]),
            }
            .into_request(),
        )
        .unwrap();
        let old = bincode::serialize(&PieceRequest::Get {
            id: PieceId([3; 32]),
        })
        .unwrap();
        assert_eq!(typed, old);
    }
}
