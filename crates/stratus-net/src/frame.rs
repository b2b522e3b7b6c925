//! Length-prefixed, versioned bincode frames.

use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_proto::PROTOCOL_VERSION;

use crate::NetError;

/// Largest frame accepted or sent: the version byte plus the bincode payload,
/// i.e. the value of the 4-byte length prefix (64 MiB).
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Size of the length prefix.
const LEN_BYTES: usize = 4;

/// Serializes `msg` into a complete frame (length prefix, version, payload).
/// Exported as `encode_frame`.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, NetError> {
    let payload_len = bincode::serialized_size(msg).map_err(|e| NetError::Encode(e.to_string()))?;
    let frame_len = payload_len.saturating_add(1);
    if frame_len > MAX_FRAME_LEN as u64 {
        return Err(NetError::FrameTooLarge {
            size: frame_len,
            max: MAX_FRAME_LEN as u64,
        });
    }
    // Fits in u32 and usize: bounded by MAX_FRAME_LEN above.
    let frame_len_u32 = u32::try_from(frame_len).map_err(|_| NetError::FrameTooLarge {
        size: frame_len,
        max: MAX_FRAME_LEN as u64,
    })?;
    let mut buf = Vec::with_capacity(LEN_BYTES + frame_len_u32 as usize);
    buf.extend_from_slice(&frame_len_u32.to_be_bytes());
    buf.push(PROTOCOL_VERSION);
    bincode::serialize_into(&mut buf, msg).map_err(|e| NetError::Encode(e.to_string()))?;
    Ok(buf)
}

/// Decodes a payload (what follows the version byte).
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, NetError> {
    bincode::deserialize(payload).map_err(|e| NetError::Decode(e.to_string()))
}

/// Checks a frame header against `max` (at most [`MAX_FRAME_LEN`]),
/// returning the payload length to read.
pub(crate) fn check_len(len_prefix: [u8; LEN_BYTES], max: usize) -> Result<usize, NetError> {
    let len = u32::from_be_bytes(len_prefix) as usize;
    let max = max.min(MAX_FRAME_LEN);
    if len > max {
        return Err(NetError::FrameTooLarge {
            size: len as u64,
            max: max as u64,
        });
    }
    if len == 0 {
        return Err(NetError::Decode(
            "empty frame (no protocol version byte)".to_string(),
        ));
    }
    Ok(len - 1)
}

/// Checks the version byte of a frame.
pub(crate) fn check_version(version: u8) -> Result<(), NetError> {
    if version != PROTOCOL_VERSION {
        return Err(NetError::BadVersion {
            got: version,
            expected: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

/// Decodes a complete frame held in memory (length prefix, version byte,
/// payload), with the same checks as the stream reader. Used by tests and
/// the fuzz targets: this is what a hostile peer controls. Compiled only for
/// tests and with the `testing` feature (the fuzz crate's), never in the
/// product.
#[cfg(any(test, feature = "testing"))]
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, NetError> {
    let prefix: [u8; LEN_BYTES] = frame
        .get(..LEN_BYTES)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| NetError::Decode("frame shorter than its length prefix".to_string()))?;
    let payload_len = check_len(prefix, MAX_FRAME_LEN)?;
    let version = *frame
        .get(LEN_BYTES)
        .ok_or_else(|| NetError::Decode("frame without a version byte".to_string()))?;
    check_version(version)?;
    let payload = &frame[LEN_BYTES + 1..];
    if payload.len() != payload_len {
        return Err(NetError::Decode(format!(
            "frame declares {payload_len} payload bytes but holds {}",
            payload.len()
        )));
    }
    decode(payload)
}

/// Reads one frame of at most `max` bytes (capped at [`MAX_FRAME_LEN`])
/// from `recv` and returns its payload.
///
/// The declared length is checked before anything is allocated: a longer
/// frame fails with [`NetError::FrameTooLarge`] after its 4-byte prefix.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<Vec<u8>, NetError> {
    let mut prefix = [0u8; LEN_BYTES];
    recv.read_exact(&mut prefix).await?;
    let payload_len = check_len(prefix, max)?;
    let mut version = [0u8; 1];
    recv.read_exact(&mut version).await?;
    check_version(version[0])?;
    let mut payload = vec![0u8; payload_len];
    recv.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes a complete frame and leaves the stream open (a byte stream
/// follows: [`crate::Stream`]).
pub(crate) async fn write_frame_open(
    send: &mut quinn::SendStream,
    frame: &[u8],
) -> Result<(), NetError> {
    send.write_all(frame).await?;
    Ok(())
}

/// Writes a complete frame (as produced by [`encode`]) and finishes the stream.
pub(crate) async fn write_frame(
    send: &mut quinn::SendStream,
    frame: &[u8],
) -> Result<(), NetError> {
    write_frame_open(send, frame).await?;
    send.finish()
        .map_err(|e| NetError::Stream(format!("cannot finish stream: {e}")))?;
    Ok(())
}
