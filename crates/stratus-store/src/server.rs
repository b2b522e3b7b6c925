//! The storage node's piece service: answers [`PieceRequest`]s from control
//! replicas out of a local piece store.

use std::collections::BTreeSet;
use std::sync::Arc;

use stratus_net::{serve_connection_limited, Endpoint, MAX_FRAME_LEN};
use stratus_pieces::{PieceError, PieceStore};
use stratus_proto::{PieceErrorKind, PieceInfo, PieceRequest, PieceResponse};
use stratus_types::NodeId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What serves piece requests (the local piece store; tests substitute
/// misbehaving nodes). Called on a blocking thread.
pub trait PieceBackend: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: PieceRequest) -> PieceResponse;
}

fn error(e: PieceError) -> PieceResponse {
    let kind = match &e {
        PieceError::NotFound { .. } | PieceError::OutOfRange { .. } => PieceErrorKind::NotFound,
        PieceError::Corrupt { .. } => PieceErrorKind::Corrupt,
        PieceError::HashMismatch { .. } => PieceErrorKind::HashMismatch,
        PieceError::Full { .. } => PieceErrorKind::Full,
        _ => PieceErrorKind::Io,
    };
    PieceResponse::Error {
        kind,
        message: e.to_string(),
    }
}

impl PieceBackend for PieceStore {
    fn handle(&self, req: PieceRequest) -> PieceResponse {
        let r = match req {
            PieceRequest::Put { id, bytes } => self.put(&id.0, &bytes).map(PieceResponse::Stored),
            PieceRequest::Get { id } => self.get(&id.0).map(PieceResponse::Bytes),
            PieceRequest::GetRange { id, offset, len } => {
                self.get_range(&id.0, offset, len).map(PieceResponse::Bytes)
            }
            PieceRequest::Delete { ids } => {
                let mut n = 0;
                for id in ids {
                    match self.delete(&id.0) {
                        Ok(existed) => n += u64::from(existed),
                        Err(e) => return error(e),
                    }
                }
                Ok(PieceResponse::Deleted(n))
            }
            PieceRequest::List => self.list().map(|l| {
                PieceResponse::List(
                    l.into_iter()
                        .map(|m| PieceInfo {
                            id: stratus_chunk::PieceId(m.id),
                            size: m.size,
                            modified_ms: m.modified_ms,
                        })
                        .collect(),
                )
            }),
            PieceRequest::Usage => {
                let u = self.usage();
                Ok(PieceResponse::Usage {
                    capacity_bytes: u.capacity_bytes,
                    used_bytes: u.used_bytes,
                    pieces: u.pieces,
                    fs_available_bytes: u.fs_available_bytes,
                })
            }
            PieceRequest::Scrub { max_bytes } => {
                self.scrub(max_bytes).map(|r| PieceResponse::Scrub {
                    checked_pieces: r.checked_pieces,
                    checked_bytes: r.checked_bytes,
                    corrupt: r.corrupt.into_iter().map(stratus_chunk::PieceId).collect(),
                    wrapped: r.wrapped,
                })
            }
            PieceRequest::Prove { id, offset, len } => {
                if len > crate::audit::MAX_CHALLENGE_LEN {
                    return PieceResponse::Error {
                        kind: PieceErrorKind::Io,
                        message: format!(
                            "a challenge of {len} bytes; at most {} are proved",
                            crate::audit::MAX_CHALLENGE_LEN
                        ),
                    };
                }
                // `get` verifies the piece (and quarantines it if rotten).
                self.get(&id.0)
                    .map(|bytes| match crate::audit::prove(&bytes, offset, len) {
                        Ok(proof) => PieceResponse::Proof(proof),
                        Err(e) => PieceResponse::Error {
                            kind: PieceErrorKind::Io,
                            message: e.to_string(),
                        },
                    })
            }
        };
        r.unwrap_or_else(error)
    }
}

/// Largest request frame read from a key that is not an allowed replica:
/// enough for any request but `Put`, which it may not make anyway.
pub const STRANGER_MAX_PIECE_FRAME: usize = 4 << 10;

/// Serves piece requests arriving at `endpoint` until `cancel`, from peers in
/// `allowed` only (the control replicas the node's agent knows). Any other
/// key — an agent of the cluster included — gets `Forbidden`, and its
/// requests are refused unread beyond [`STRANGER_MAX_PIECE_FRAME`] bytes.
pub async fn serve(
    endpoint: Endpoint,
    backend: Arc<dyn PieceBackend>,
    allowed: watch::Receiver<BTreeSet<NodeId>>,
    cancel: CancellationToken,
) {
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => break,
            c = endpoint.accept() => match c {
                Some(c) => c,
                None => break,
            },
        };
        let backend = backend.clone();
        let allowed = allowed.clone();
        let bound = allowed.clone();
        tokio::spawn(serve_connection_limited(
            conn,
            move |peer: NodeId| {
                if bound.borrow().contains(&peer) {
                    MAX_FRAME_LEN
                } else {
                    STRANGER_MAX_PIECE_FRAME
                }
            },
            move |peer: NodeId, req: PieceRequest| {
                let backend = backend.clone();
                let ok = allowed.borrow().contains(&peer);
                async move {
                    if !ok {
                        return PieceResponse::Error {
                            kind: PieceErrorKind::Forbidden,
                            message: format!(
                                "node {} is not a control replica of this node's cluster",
                                peer.short()
                            ),
                        };
                    }
                    tokio::task::spawn_blocking(move || backend.handle(req))
                        .await
                        .unwrap_or_else(|e| PieceResponse::Error {
                            kind: PieceErrorKind::Io,
                            message: format!("piece handler failed: {e}"),
                        })
                }
            },
        ));
    }
    endpoint.close().await;
}
