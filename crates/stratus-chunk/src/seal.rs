//! Chunk ids and convergent sealing: zstd, then AES-256-GCM.

use std::cell::RefCell;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::{ChunkError, ChunkId, ScopeKey};

/// Largest plaintext [`open_chunk`] returns (16 MiB, FastCDC's largest `max`).
pub const MAX_CHUNK_LEN: usize = 16 << 20;
/// zstd level used when the caller has no preference.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Bytes a sealed chunk adds to its payload: nonce, flag byte, GCM tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 1 + TAG_LEN;

const TAG_LEN: usize = 16;
const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;
/// blake3 `derive_key` context for per-chunk key material.
const CTX_SEAL: &str = "stratus 2025-01 chunk seal v1: aes-256-gcm key and nonce key";

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Chunk id = BLAKE3 keyed hash (key: the scope key) of the plaintext: equal
/// content in one scope has one id; ids reveal nothing about content to
/// someone without the scope key.
pub fn chunk_id(scope: &ScopeKey, plaintext: &[u8]) -> ChunkId {
    ChunkId(*blake3::keyed_hash(scope.as_bytes(), plaintext).as_bytes())
}

/// The chunk's AES key and the key for its synthetic nonce, both derived
/// from (scope key, chunk id).
fn chunk_keys(scope: &ScopeKey, id: &ChunkId) -> (LessSafeKey, [u8; 32]) {
    let mut h = blake3::Hasher::new_derive_key(CTX_SEAL);
    h.update(scope.as_bytes());
    h.update(&id.0);
    let mut okm = [0u8; 64];
    h.finalize_xof().fill(&mut okm);
    let (aes, nonce_key) = okm.split_at(32);
    #[allow(clippy::expect_used)]
    let key = UnboundKey::new(&AES_256_GCM, aes).expect("32-byte AES-256 key");
    let mut nk = [0u8; 32];
    nk.copy_from_slice(nonce_key);
    (LessSafeKey::new(key), nk)
}

/// Compresses into `dst` (whose length is the budget); `None` if zstd fails
/// or the output would not fit.
fn compress_into(level: i32, src: &[u8], dst: &mut [u8]) -> Option<usize> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some((l, _)) if *l == level => {}
            Some((l, c)) => {
                c.set_compression_level(level).ok()?;
                *l = level;
            }
            None => *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?)),
        }
        let (_, c) = slot.as_mut()?;
        c.compress_to_buffer(src, dst).ok()
    })
}

/// Compress (zstd at `zstd_level`; stored raw if that does not shrink it),
/// then encrypt with AES-256-GCM under a key derived from (scope key, chunk
/// id). Convergent: the same content in the same scope seals to identical
/// bytes (for the same zstd level and library version). The raw/compressed
/// flag is inside the ciphertext.
///
/// Layout: `nonce (12) || AES-256-GCM(payload || flag) || tag (16)`, where
/// the nonce is a keyed BLAKE3 hash of `payload || flag` (a synthetic IV),
/// so two different payloads under one key (say, another zstd level or
/// version) never share a nonce.
///
/// # Panics
/// If `plaintext` is beyond AES-GCM's limit (about 64 GiB).
pub fn seal_chunk(scope: &ScopeKey, id: &ChunkId, plaintext: &[u8], zstd_level: i32) -> Vec<u8> {
    let n = plaintext.len();
    let mut out = Vec::with_capacity(n + SEAL_OVERHEAD);
    let mut compressed = None;
    if n > 1 {
        // Budget n - 1 bytes: use zstd only if it shrinks the chunk.
        out.resize(NONCE_LEN + n - 1, 0);
        compressed = compress_into(zstd_level, plaintext, &mut out[NONCE_LEN..]);
    }
    match compressed {
        Some(c) => {
            out.truncate(NONCE_LEN + c);
            out.push(FLAG_ZSTD);
        }
        None => {
            out.clear();
            out.resize(NONCE_LEN, 0);
            out.extend_from_slice(plaintext);
            out.push(FLAG_RAW);
        }
    }
    let (key, nonce_key) = chunk_keys(scope, id);
    let (nonce_bytes, body) = out.split_at_mut(NONCE_LEN);
    let siv = blake3::keyed_hash(&nonce_key, body);
    nonce_bytes.copy_from_slice(&siv.as_bytes()[..NONCE_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(nonce_bytes);
    #[allow(clippy::expect_used)]
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), body)
        .expect("chunk within AES-GCM length limit");
    out.extend_from_slice(tag.as_ref());
    out
}

/// [`open_chunk_with_limit`] with the limit [`MAX_CHUNK_LEN`].
pub fn open_chunk(scope: &ScopeKey, id: &ChunkId, sealed: &[u8]) -> Result<Vec<u8>, ChunkError> {
    open_chunk_with_limit(scope, id, sealed, MAX_CHUNK_LEN)
}

/// Decrypt, decompress (refusing to produce more than `max_len` bytes: the
/// zstd frame must announce its size, and it must be within the limit), and
/// verify `chunk_id(scope, out) == id`. Any tampering, a wrong scope or a
/// wrong id gives an error.
pub fn open_chunk_with_limit(
    scope: &ScopeKey,
    id: &ChunkId,
    sealed: &[u8],
    max_len: usize,
) -> Result<Vec<u8>, ChunkError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(ChunkError::Decrypt);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let mut buf = body.to_vec();
    Ok(match open_body(scope, id, nonce, &mut buf, max_len)? {
        Opened::InPlace(range) => {
            buf.truncate(range.end);
            buf
        }
        Opened::Owned(out) => out,
    })
}

/// Where [`open_chunk_in_place`] left the plaintext.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Stored raw: the plaintext is this range of the buffer, decrypted in
    /// place (no copy).
    InPlace(std::ops::Range<usize>),
    /// Stored compressed: the decompressed plaintext.
    Owned(Vec<u8>),
}

/// [`open_chunk_with_limit`] decrypting in `sealed` itself (which it
/// overwrites), so a reader holding a whole decoded stripe opens its chunks
/// without copying them out first. The same checks, the same errors.
pub fn open_chunk_in_place(
    scope: &ScopeKey,
    id: &ChunkId,
    sealed: &mut [u8],
    max_len: usize,
) -> Result<Opened, ChunkError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(ChunkError::Decrypt);
    }
    let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
    Ok(match open_body(scope, id, nonce, body, max_len)? {
        Opened::InPlace(r) => Opened::InPlace(r.start + NONCE_LEN..r.end + NONCE_LEN),
        owned => owned,
    })
}

/// Opens a sealed chunk's `body` (what follows its nonce) in place; an
/// `InPlace` range is relative to `body`.
fn open_body(
    scope: &ScopeKey,
    id: &ChunkId,
    nonce_bytes: &[u8],
    body: &mut [u8],
    max_len: usize,
) -> Result<Opened, ChunkError> {
    let (key, _) = chunk_keys(scope, id);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(nonce_bytes);
    let plain_len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), body)
        .map_err(|_| ChunkError::Decrypt)?
        .len();
    let Some((&flag, payload)) = body[..plain_len].split_last() else {
        return Err(ChunkError::Decrypt);
    };
    let opened = match flag {
        FLAG_RAW => {
            if payload.len() > max_len {
                return Err(ChunkError::TooLarge {
                    len: payload.len() as u64,
                    max: max_len as u64,
                });
            }
            if chunk_id(scope, payload) != *id {
                return Err(ChunkError::IdMismatch);
            }
            Opened::InPlace(0..payload.len())
        }
        FLAG_ZSTD => {
            let out = decompress_bounded(payload, max_len)?;
            if chunk_id(scope, &out) != *id {
                return Err(ChunkError::IdMismatch);
            }
            Opened::Owned(out)
        }
        _ => return Err(ChunkError::Decrypt),
    };
    Ok(opened)
}

fn decompress_bounded(payload: &[u8], max_len: usize) -> Result<Vec<u8>, ChunkError> {
    let size = match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(size)) => size,
        Ok(None) => return Err(ChunkError::Decompress("frame has no content size".into())),
        Err(_) => return Err(ChunkError::Decompress("bad frame header".into())),
    };
    if size > max_len as u64 {
        return Err(ChunkError::TooLarge {
            len: size,
            max: max_len as u64,
        });
    }
    // size <= max_len, so it fits in usize.
    let size = size as usize;
    let out = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| ChunkError::Decompress(e.to_string()))?,
            );
        }
        let Some(d) = slot.as_mut() else {
            return Err(ChunkError::Decompress("no decompressor".into()));
        };
        d.decompress(payload, size)
            .map_err(|e| ChunkError::Decompress(e.to_string()))
    })?;
    if out.len() != size {
        return Err(ChunkError::Decompress(format!(
            "frame announced {size} bytes, produced {}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog. "
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()
    }

    #[test]
    fn round_trip_compressible_and_raw() {
        let s = ScopeKey::public();
        for data in [text(100_000), (0..=255u8).collect(), vec![], vec![9]] {
            let id = chunk_id(&s, &data);
            let sealed = seal_chunk(&s, &id, &data, DEFAULT_ZSTD_LEVEL);
            assert_eq!(open_chunk(&s, &id, &sealed).unwrap(), data);
            assert!(sealed.len() <= data.len() + SEAL_OVERHEAD);
        }
        let data = text(100_000);
        let id = chunk_id(&s, &data);
        assert!(seal_chunk(&s, &id, &data, 3).len() < 10_000);
    }

    #[test]
    fn levels_differ_but_both_open() {
        let s = ScopeKey::private([3; 32]);
        let mut x = 1u32;
        let data: Vec<u8> = (0..50_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b"abcdefgh  "[(x >> 16) as usize % 10]
            })
            .collect();
        let id = chunk_id(&s, &data);
        let a = seal_chunk(&s, &id, &data, 1);
        let b = seal_chunk(&s, &id, &data, 19);
        assert_eq!(a, seal_chunk(&s, &id, &data, 1));
        assert_ne!(a.len(), b.len());
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_eq!(open_chunk(&s, &id, &a).unwrap(), data);
        assert_eq!(open_chunk(&s, &id, &b).unwrap(), data);
    }

    #[test]
    fn limit_stops_bombs() {
        let s = ScopeKey::public();
        let data = vec![0u8; 1 << 20];
        let id = chunk_id(&s, &data);
        let sealed = seal_chunk(&s, &id, &data, 3);
        assert!(sealed.len() < 1000);
        assert!(matches!(
            open_chunk_with_limit(&s, &id, &sealed, 1000),
            Err(ChunkError::TooLarge { .. })
        ));
        let raw: Vec<u8> = (0..=255u8).collect();
        let id = chunk_id(&s, &raw);
        let sealed = seal_chunk(&s, &id, &raw, 3);
        assert!(open_chunk_with_limit(&s, &id, &sealed, 255).is_err());
        assert!(open_chunk_with_limit(&s, &id, &sealed, 256).is_ok());
    }

    #[test]
    fn truncated_and_wrong_keys_fail() {
        let s = ScopeKey::public();
        let data = text(1000);
        let id = chunk_id(&s, &data);
        let sealed = seal_chunk(&s, &id, &data, 3);
        for n in 0..sealed.len() {
            assert!(open_chunk(&s, &id, &sealed[..n]).is_err());
        }
        let other = ScopeKey::private([1; 32]);
        assert!(open_chunk(&other, &id, &sealed).is_err());
        assert!(open_chunk(&s, &ChunkId([0; 32]), &sealed).is_err());
    }
}
