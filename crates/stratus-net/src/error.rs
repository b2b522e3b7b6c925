//! The error type of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use stratus_types::NodeId;

/// Everything that can go wrong in the transport.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An operating-system IO error (binding the socket, creating directories...).
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),

    /// The node key file could not be read, parsed or written.
    #[error("node key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Building the TLS/QUIC configuration failed (certificate generation,
    /// key loading). Indicates a bug or an unusable key, not a network problem.
    #[error("tls configuration: {0}")]
    Tls(String),

    /// Dialing or the handshake failed (unreachable, refused, timed out,
    /// certificate rejected by either side...).
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },

    /// The peer completed the TLS handshake with a key other than the one the
    /// dialer expected.
    #[error("connecting to {addr}: wrong peer identity: expected {expected}, got {got}")]
    WrongPeer {
        /// The address dialed.
        addr: SocketAddr,
        /// The identity the caller asked for.
        expected: NodeId,
        /// The identity the peer proved.
        got: NodeId,
    },

    /// The connection failed while in use (peer vanished, reset, idle timeout,
    /// closed by the peer while a call was in flight).
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] quinn::ConnectionError),

    /// A stream was reset or stopped by the peer, or ended before a complete
    /// frame was read (e.g. the peer dropped a call without answering).
    #[error("stream error: {0}")]
    Stream(String),

    /// The operation did not complete in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// The endpoint or connection has been closed locally.
    #[error("endpoint or connection closed")]
    Closed,

    /// A `host:port` address could not be resolved.
    #[error("cannot resolve {addr:?} (expected host:port): {reason}")]
    Resolve {
        /// The address given.
        addr: String,
        /// Why.
        reason: String,
    },

    /// A frame (received or about to be sent) is larger than [`crate::MAX_FRAME_LEN`].
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size of the frame (version byte + payload).
        size: u64,
        /// The limit.
        max: u64,
    },

    /// The peer refused a request frame larger than it accepts from this
    /// node, before reading it (see `serve_connection_limited`).
    #[error(
        "the peer refused the request: its frame is larger than the peer accepts from this node \
         (a node that is neither a control replica nor a registered agent may send only small \
         requests such as Register)"
    )]
    FrameRefused,

    /// The peer speaks a protocol version this node does not know.
    #[error("unsupported protocol version {got} in frame (this node speaks version {expected})")]
    BadVersion {
        /// Version found in the frame.
        got: u8,
        /// Version this node speaks.
        expected: u8,
    },

    /// A frame was malformed (empty) or its payload did not decode into the
    /// expected type.
    #[error("cannot decode frame: {0}")]
    Decode(String),

    /// A message could not be serialized.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl NetError {
    /// True when the error is about the transport (dialing, handshake,
    /// connection or stream failure, endpoint closed) rather than about the
    /// exchanged messages or local configuration.
    ///
    /// [`NetError::Timeout`] is deliberately *not* a transport error: the
    /// connection may be healthy and the peer merely slow. A dead peer is
    /// detected by the connection's idle timeout, after which calls fail with
    /// [`NetError::ConnectionLost`].
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            NetError::Io(_)
                | NetError::Connect { .. }
                | NetError::WrongPeer { .. }
                | NetError::ConnectionLost(_)
                | NetError::Stream(_)
                | NetError::Closed
        )
    }
}

impl From<quinn::ConnectionError> for NetError {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::LocallyClosed => NetError::Closed,
            other => NetError::ConnectionLost(other),
        }
    }
}

impl From<quinn::WriteError> for NetError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => c.into(),
            quinn::WriteError::Stopped(code) if code == crate::endpoint::REFUSED_CODE.into() => {
                NetError::FrameRefused
            }
            quinn::WriteError::Stopped(code) => {
                NetError::Stream(format!("peer stopped the stream (code {code})"))
            }
            other => NetError::Stream(other.to_string()),
        }
    }
}

impl From<quinn::ReadError> for NetError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => c.into(),
            quinn::ReadError::Reset(code) if code == crate::endpoint::REFUSED_CODE.into() => {
                NetError::FrameRefused
            }
            quinn::ReadError::Reset(code) => {
                NetError::Stream(format!("peer reset the stream (code {code})"))
            }
            other => NetError::Stream(other.to_string()),
        }
    }
}

impl From<quinn::ReadExactError> for NetError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => NetError::Stream(
                "stream ended before a complete frame was received \
                 (did the peer drop the call without answering?)"
                    .to_string(),
            ),
            quinn::ReadExactError::ReadError(r) => r.into(),
        }
    }
}
