//! Reed–Solomon erasure coding of stripes (a pack, usually) into pieces.

use std::cell::RefCell;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use serde::{Deserialize, Serialize};

use crate::{ChunkError, PieceId};

/// Most pieces (`k + m`) a stripe may have.
pub const MAX_PIECES: usize = 32;

thread_local! {
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
}

/// Erasure profile: `k` data pieces plus `m` parity pieces; any `k` of the
/// `k + m` rebuild the stripe.
///
/// Valid profiles have `k >= 1` and `k + m <=` [`MAX_PIECES`]. `m == 0` is
/// allowed and means no redundancy (the stripe is just split in `k`; every
/// piece is needed). `k == 1` is plain replication: Reed–Solomon over one
/// data shard, each of the `1 + m` pieces is enough on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile {
    /// Data pieces.
    pub k: u8,
    /// Parity pieces.
    pub m: u8,
}

impl Profile {
    /// Checks `k >= 1` and `k + m <= MAX_PIECES`.
    pub fn validate(&self) -> Result<(), ChunkError> {
        let err = |reason| ChunkError::InvalidProfile {
            k: self.k,
            m: self.m,
            reason,
        };
        if self.k == 0 {
            return Err(err("k must be at least 1"));
        }
        if self.total() > MAX_PIECES {
            return Err(err("k + m must be at most 32"));
        }
        Ok(())
    }

    /// `k + m`.
    pub fn total(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }
}

/// Length of each piece for a stripe of `data_len` bytes: `data_len / k`
/// rounded up to an even number (reed-solomon-simd needs even shards) and at
/// least 2 (so an empty stripe still has pieces).
pub fn piece_len(profile: Profile, data_len: u64) -> u64 {
    let k = u64::from(profile.k.max(1));
    let per = data_len.div_ceil(k);
    (per + (per & 1)).max(2)
}

/// Plain BLAKE3 of the piece bytes.
pub fn piece_id(piece: &[u8]) -> PieceId {
    PieceId(*blake3::hash(piece).as_bytes())
}

fn rs_err(e: reed_solomon_simd::Error) -> ChunkError {
    ChunkError::Erasure(e.to_string())
}

/// Computes the `m` parity shards of `originals` (`k` shards of `len`).
fn parity(k: usize, m: usize, len: usize, originals: &[&[u8]]) -> Result<Vec<Vec<u8>>, ChunkError> {
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some(enc) => enc.reset(k, m, len).map_err(rs_err)?,
            None => *slot = Some(ReedSolomonEncoder::new(k, m, len).map_err(rs_err)?),
        }
        let Some(enc) = slot.as_mut() else {
            return Err(ChunkError::Erasure("no encoder".into()));
        };
        for o in originals {
            enc.add_original_shard(o).map_err(rs_err)?;
        }
        let res = enc.encode().map_err(rs_err)?;
        Ok(res.recovery_iter().map(<[u8]>::to_vec).collect())
    })
}

/// Split `data` into `k` equal data pieces (the last zero-padded to
/// [`piece_len`]) and add `m` parity pieces: `k + m` pieces, all the same
/// length, data pieces first.
pub fn encode_stripe(profile: Profile, data: &[u8]) -> Result<Vec<Vec<u8>>, ChunkError> {
    profile.validate()?;
    let (k, m) = (usize::from(profile.k), usize::from(profile.m));
    let len = usize::try_from(piece_len(profile, data.len() as u64))
        .map_err(|_| ChunkError::Erasure("stripe too large".into()))?;
    let mut pieces: Vec<Vec<u8>> = Vec::with_capacity(k + m);
    for i in 0..k {
        let start = (i * len).min(data.len());
        let end = ((i + 1) * len).min(data.len());
        let mut p = Vec::with_capacity(len);
        p.extend_from_slice(&data[start..end]);
        p.resize(len, 0);
        pieces.push(p);
    }
    if m > 0 {
        let originals: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let par = parity(k, m, len, &originals)?;
        pieces.extend(par);
    }
    Ok(pieces)
}

/// Checks slot count, that all present pieces have one even length (`want`
/// if given), and that at least `k` are present. Returns the piece length.
fn check(
    profile: Profile,
    pieces: &[Option<Vec<u8>>],
    want_len: Option<usize>,
) -> Result<usize, ChunkError> {
    profile.validate()?;
    if pieces.len() != profile.total() {
        return Err(ChunkError::PieceCount {
            expected: profile.total(),
            got: pieces.len(),
        });
    }
    let mut len = want_len;
    let mut have = 0;
    for (index, p) in pieces.iter().enumerate() {
        let Some(p) = p else { continue };
        have += 1;
        match len {
            None if p.is_empty() || !p.len().is_multiple_of(2) => {
                return Err(ChunkError::PieceLength {
                    index,
                    len: p.len(),
                    expected: p.len() + 1 - p.len() % 2,
                })
            }
            None => len = Some(p.len()),
            Some(l) if l != p.len() => {
                return Err(ChunkError::PieceLength {
                    index,
                    len: p.len(),
                    expected: l,
                })
            }
            Some(_) => {}
        }
    }
    let need = usize::from(profile.k);
    match len {
        Some(l) if have >= need => Ok(l),
        _ => Err(ChunkError::TooFewPieces { have, need }),
    }
}

/// Restores the missing data pieces; `out[i]` is `Some` for each missing
/// data piece `i < k`.
fn restore(
    profile: Profile,
    len: usize,
    pieces: &[Option<Vec<u8>>],
) -> Result<Vec<Option<Vec<u8>>>, ChunkError> {
    let (k, m) = (usize::from(profile.k), usize::from(profile.m));
    let mut out = vec![None; k];
    if pieces[..k].iter().all(Option::is_some) {
        return Ok(out);
    }
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        match slot.as_mut() {
            Some(dec) => dec.reset(k, m, len).map_err(rs_err)?,
            None => *slot = Some(ReedSolomonDecoder::new(k, m, len).map_err(rs_err)?),
        }
        let Some(dec) = slot.as_mut() else {
            return Err(ChunkError::Erasure("no decoder".into()));
        };
        // Exactly k shards are needed: originals first, then parity.
        let mut given = 0;
        for (i, p) in pieces[..k].iter().enumerate() {
            if let Some(p) = p {
                dec.add_original_shard(i, p).map_err(rs_err)?;
                given += 1;
            }
        }
        for (i, p) in pieces[k..].iter().enumerate() {
            if given == k {
                break;
            }
            if let Some(p) = p {
                dec.add_recovery_shard(i, p).map_err(rs_err)?;
                given += 1;
            }
        }
        let res = dec.decode().map_err(rs_err)?;
        for (i, slot) in out.iter_mut().enumerate() {
            if pieces[i].is_none() {
                let r = res
                    .restored_original(i)
                    .ok_or_else(|| ChunkError::Erasure(format!("piece {i} not restored")))?;
                *slot = Some(r.to_vec());
            }
        }
        Ok(out)
    })
}

/// Rebuild the original `data_len` bytes from any `>= k` pieces (`None` =
/// missing). Errors if fewer than `k` are present, there are not `k + m`
/// slots, or a present piece is not [`piece_len`]`(profile, data_len)` long.
pub fn decode_stripe(
    profile: Profile,
    data_len: u64,
    pieces: &[Option<Vec<u8>>],
) -> Result<Vec<u8>, ChunkError> {
    profile.validate()?;
    let len = usize::try_from(piece_len(profile, data_len))
        .map_err(|_| ChunkError::Erasure("stripe too large".into()))?;
    let n =
        usize::try_from(data_len).map_err(|_| ChunkError::Erasure("stripe too large".into()))?;
    check(profile, pieces, Some(len))?;
    let restored = restore(profile, len, pieces)?;
    let mut out = Vec::with_capacity(n);
    for (i, r) in restored.iter().enumerate() {
        let piece = match (&pieces[i], r) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => return Err(ChunkError::Erasure(format!("piece {i} missing"))),
        };
        let take = (n - out.len()).min(len);
        out.extend_from_slice(&piece[..take]);
    }
    Ok(out)
}

/// [`decode_stripe`] taking the pieces by value: when every data piece is
/// present (the common read), the first one becomes the output buffer and
/// only the others are copied after it, instead of copying all of them.
pub fn decode_stripe_owned(
    profile: Profile,
    data_len: u64,
    mut pieces: Vec<Option<Vec<u8>>>,
) -> Result<Vec<u8>, ChunkError> {
    profile.validate()?;
    let k = usize::from(profile.k);
    let all_data = pieces.len() >= k && pieces[..k].iter().all(Option::is_some);
    if !all_data {
        return decode_stripe(profile, data_len, &pieces);
    }
    let len = usize::try_from(piece_len(profile, data_len))
        .map_err(|_| ChunkError::Erasure("stripe too large".into()))?;
    let n =
        usize::try_from(data_len).map_err(|_| ChunkError::Erasure("stripe too large".into()))?;
    check(profile, &pieces, Some(len))?;
    let mut out = pieces[0].take().unwrap_or_default();
    out.truncate(n.min(len));
    out.reserve(n - out.len());
    for piece in pieces[1..k].iter().flatten() {
        let take = (n - out.len()).min(len);
        out.extend_from_slice(&piece[..take]);
    }
    Ok(out)
}

/// Rebuild the listed pieces (by index; for repair) from any `>= k` present
/// pieces, returned in the order of `want`. Wanted pieces that are present
/// are returned as they are. Rebuilt pieces are byte-identical to what
/// [`encode_stripe`] produced.
pub fn rebuild_pieces(
    profile: Profile,
    pieces: &[Option<Vec<u8>>],
    want: &[usize],
) -> Result<Vec<Vec<u8>>, ChunkError> {
    let len = check(profile, pieces, None)?;
    let (k, m) = (usize::from(profile.k), usize::from(profile.m));
    if let Some(&index) = want.iter().find(|&&w| w >= k + m) {
        return Err(ChunkError::PieceIndex {
            index,
            count: k + m,
        });
    }
    let restored = restore(profile, len, pieces)?;
    let originals: Vec<&[u8]> = (0..k)
        .map(|i| match (&pieces[i], &restored[i]) {
            (Some(p), _) | (None, Some(p)) => Ok(p.as_slice()),
            (None, None) => Err(ChunkError::Erasure(format!("piece {i} missing"))),
        })
        .collect::<Result<_, _>>()?;
    let need_parity = want.iter().any(|&w| w >= k && pieces[w].is_none());
    let par = if need_parity {
        parity(k, m, len, &originals)?
    } else {
        Vec::new()
    };
    want.iter()
        .map(|&w| match &pieces[w] {
            Some(p) => Ok(p.clone()),
            None if w < k => Ok(originals[w].to_vec()),
            None => par
                .get(w - k)
                .cloned()
                .ok_or_else(|| ChunkError::Erasure(format!("parity {w} not computed"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn drop_pieces(pieces: &[Vec<u8>], lost: &[usize]) -> Vec<Option<Vec<u8>>> {
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (!lost.contains(&i)).then(|| p.clone()))
            .collect()
    }

    #[test]
    fn piece_lengths() {
        let p = Profile { k: 4, m: 2 };
        assert_eq!(piece_len(p, 0), 2);
        assert_eq!(piece_len(p, 1), 2);
        assert_eq!(piece_len(p, 8), 2);
        assert_eq!(piece_len(p, 9), 4);
        assert_eq!(piece_len(p, 13), 4);
        assert_eq!(piece_len(p, 17), 6);
        assert_eq!(piece_len(Profile { k: 1, m: 0 }, 7), 8);
    }

    #[test]
    fn profiles() {
        assert!(Profile { k: 0, m: 2 }.validate().is_err());
        assert!(Profile { k: 30, m: 3 }.validate().is_err());
        assert!(Profile { k: 30, m: 2 }.validate().is_ok());
        assert!(Profile { k: 1, m: 0 }.validate().is_ok());
        assert!(encode_stripe(Profile { k: 0, m: 1 }, b"x").is_err());
    }

    #[test]
    fn round_trips_with_losses() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 % 251) as u8).collect();
        for (k, m) in [(1, 0), (1, 2), (4, 2), (3, 0), (10, 4), (2, 1)] {
            let p = Profile { k, m };
            let pieces = encode_stripe(p, &data).unwrap();
            assert_eq!(pieces.len(), p.total());
            let lost: Vec<usize> = (0..usize::from(m)).map(|i| i * 2 % p.total()).collect();
            let mut lost = lost;
            lost.dedup();
            let got = drop_pieces(&pieces, &lost);
            assert_eq!(decode_stripe(p, data.len() as u64, &got).unwrap(), data);
            let rebuilt = rebuild_pieces(p, &got, &lost).unwrap();
            for (w, r) in lost.iter().zip(&rebuilt) {
                assert_eq!(&pieces[*w], r);
            }
        }
    }

    #[test]
    fn k1_is_replication_and_empty_stripes() {
        let p = Profile { k: 1, m: 2 };
        let pieces = encode_stripe(p, b"hello!").unwrap();
        assert_eq!(pieces[0], b"hello!");
        for i in 0..3 {
            let only: Vec<Option<Vec<u8>>> = (0..3)
                .map(|j| (j == i).then(|| pieces[j].clone()))
                .collect();
            assert_eq!(decode_stripe(p, 6, &only).unwrap(), b"hello!");
        }
        let q = Profile { k: 4, m: 2 };
        let e = encode_stripe(q, b"").unwrap();
        assert!(e.iter().all(|p| p.len() == 2));
        assert_eq!(decode_stripe(q, 0, &drop_pieces(&e, &[0, 5])).unwrap(), b"");
    }

    #[test]
    fn errors() {
        let p = Profile { k: 4, m: 2 };
        let pieces = encode_stripe(p, &[1u8; 100]).unwrap();
        let got = drop_pieces(&pieces, &[0, 1, 2]);
        assert!(matches!(
            decode_stripe(p, 100, &got),
            Err(ChunkError::TooFewPieces { have: 3, need: 4 })
        ));
        assert!(matches!(
            rebuild_pieces(p, &got, &[0]),
            Err(ChunkError::TooFewPieces { .. })
        ));
        assert!(matches!(
            decode_stripe(p, 100, &got[..5]),
            Err(ChunkError::PieceCount { .. })
        ));
        assert!(matches!(
            decode_stripe(p, 200, &drop_pieces(&pieces, &[])),
            Err(ChunkError::PieceLength { .. })
        ));
        let mut bad = drop_pieces(&pieces, &[]);
        bad[3] = Some(vec![0; 4]);
        assert!(matches!(
            rebuild_pieces(p, &bad, &[0]),
            Err(ChunkError::PieceLength { index: 3, .. })
        ));
        assert!(matches!(
            rebuild_pieces(p, &drop_pieces(&pieces, &[]), &[6]),
            Err(ChunkError::PieceIndex { .. })
        ));
        assert_eq!(piece_id(b"abc").0, *blake3::hash(b"abc").as_bytes());
    }
}
