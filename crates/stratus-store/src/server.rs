//! The storage node's piece service: answers [`PieceRequest`]s from control
//! replicas out of a local piece store, on connections they dial to it
//! ([`serve`]) and on links it dials to them ([`dial_links`]: how a node
//! behind a NAT, which no replica can dial, lends disk).

use std::future::Future;
use std::sync::Arc;

use stratus_net::{serve_connection_limited, Connection, Endpoint, MAX_FRAME_LEN};
use stratus_pieces::{PieceError, PieceStore};
use stratus_proto::{PieceErrorKind, PieceInfo, PieceRequest, PieceResponse, Request};
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

/// The control replicas a storage node serves, by id, with the address of
/// each one's QUIC endpoint.
pub type Replicas = stratus_net::Replicas;

/// Serves the piece requests `conn`'s peer sends until the connection
/// ends, if the peer is in `allowed`; any other key gets `Forbidden`, its
/// requests refused unread beyond [`STRANGER_MAX_PIECE_FRAME`] bytes.
fn serve_pieces(
    conn: Connection,
    backend: Arc<dyn PieceBackend>,
    allowed: watch::Receiver<Replicas>,
) -> impl Future<Output = ()> + Send {
    let bound = allowed.clone();
    serve_connection_limited(
        conn,
        move |peer: NodeId| {
            if bound.borrow().contains_key(&peer) {
                MAX_FRAME_LEN
            } else {
                STRANGER_MAX_PIECE_FRAME
            }
        },
        move |peer: NodeId, req: PieceRequest| {
            let backend = backend.clone();
            let ok = allowed.borrow().contains_key(&peer);
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
    )
}

/// Serves piece requests arriving at `endpoint` until `cancel`, from peers in
/// `allowed` only (the control replicas the node's agent knows). Any other
/// key — an agent of the cluster included — gets `Forbidden`, and its
/// requests are refused unread beyond [`STRANGER_MAX_PIECE_FRAME`] bytes.
pub async fn serve(
    endpoint: Endpoint,
    backend: Arc<dyn PieceBackend>,
    allowed: watch::Receiver<Replicas>,
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
        tokio::spawn(serve_pieces(conn, backend.clone(), allowed.clone()));
    }
    endpoint.close().await;
}

/// Keeps a piece link to every control replica in `replicas` until
/// `cancel` ([`stratus_net::keep_links`]): asks each to take the
/// connection as this node's link ([`Request::PieceLink`]), then serves its
/// piece requests on that connection exactly as [`serve`] does.
pub async fn dial_links(
    endpoint: Endpoint,
    backend: Arc<dyn PieceBackend>,
    replicas: watch::Receiver<Replicas>,
    cancel: CancellationToken,
) {
    let allowed = replicas.clone();
    stratus_net::keep_links(
        endpoint,
        replicas,
        "piece",
        |conn| conn.ask_link(Request::PieceLink),
        move |conn| serve_pieces(conn, backend.clone(), allowed.clone()),
        cancel,
    )
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;
    use stratus_net::Identity;

    /// A piece service that answers every request with its usage.
    struct Fixed;

    impl PieceBackend for Fixed {
        fn handle(&self, _req: PieceRequest) -> PieceResponse {
            PieceResponse::Usage {
                capacity_bytes: 7,
                used_bytes: 0,
                pieces: 0,
                fs_available_bytes: 0,
            }
        }
    }

    async fn endpoint() -> Endpoint {
        Endpoint::bind(&Identity::generate(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_links_only_to_the_key_it_knows_and_drops_a_link_it_no_longer_wants() {
        let node = endpoint().await;
        let replica = endpoint().await;
        let impostor = endpoint().await;
        let (tx, rx) = watch::channel(Replicas::new());
        let cancel = CancellationToken::new();
        tokio::spawn(dial_links(
            node.clone(),
            Arc::new(Fixed),
            rx,
            cancel.clone(),
        ));
        // Another key at the replica's address: the pinned handshake fails,
        // so it never gets a connection, let alone a link request.
        let addr = |e: &Endpoint| e.local_addr().unwrap().to_string();
        tx.send_replace([(replica.node_id(), addr(&impostor))].into());
        let got = tokio::time::timeout(Duration::from_millis(1500), impostor.accept()).await;
        assert!(got.is_err(), "the impostor was connected to");
        // The replica's own address: it is asked to take the link, then
        // calls the node's piece service over the connection the node dialed.
        tx.send_replace([(replica.node_id(), addr(&replica))].into());
        let conn = tokio::time::timeout(Duration::from_secs(10), replica.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(conn.remote_id(), node.node_id());
        let mut ask = conn.accept_call().await.unwrap().unwrap();
        assert!(matches!(
            ask.read::<Request>().await.unwrap(),
            Request::PieceLink
        ));
        ask.respond(&stratus_proto::Response::Ok).await.unwrap();
        let answer: PieceResponse = conn
            .call(&PieceRequest::Usage, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(
            answer,
            PieceResponse::Usage {
                capacity_bytes: 7,
                ..
            }
        ));
        // The replica is gone from what the agent knows: the link closes.
        tx.send_replace(Replicas::new());
        tokio::time::timeout(Duration::from_secs(5), async {
            while !conn.is_closed() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        cancel.cancel();
    }
}
