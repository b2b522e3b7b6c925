//! Content-defined chunking (FastCDC 2020, normalization level 1), streaming.

use fastcdc::v2020;

use crate::ChunkError;

/// Bounds for content-defined chunking, in bytes.
///
/// Chunk boundaries follow `fastcdc::v2020::FastCDC::new(data, min, avg,
/// max)` (normalization level 1, the standard gear table) exactly, so chunks
/// agree with any other FastCDC 2020 implementation using the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk (except the last one of an input). Even, 64 B ..= 1 MiB.
    pub min: u32,
    /// Target average chunk size. 256 B ..= 4 MiB.
    pub avg: u32,
    /// Largest chunk. 1 KiB ..= 16 MiB.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 64 KiB / 256 KiB / 1 MiB.
    fn default() -> Self {
        ChunkerParams {
            min: 64 << 10,
            avg: 256 << 10,
            max: 1 << 20,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC supports, `min <= avg <= max`, and that
    /// `min` is even (FastCDC examines bytes in pairs from `min / 2 * 2`, so
    /// an odd `min` could yield a chunk one byte shorter than `min`).
    pub fn validate(&self) -> Result<(), ChunkError> {
        let bad = |s: String| Err(ChunkError::InvalidParams(s));
        if !(v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min) {
            return bad(format!(
                "min {} not in {}..={}",
                self.min,
                v2020::MINIMUM_MIN,
                v2020::MINIMUM_MAX
            ));
        }
        if !(v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg) {
            return bad(format!(
                "avg {} not in {}..={}",
                self.avg,
                v2020::AVERAGE_MIN,
                v2020::AVERAGE_MAX
            ));
        }
        if !(v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max) {
            return bad(format!(
                "max {} not in {}..={}",
                self.max,
                v2020::MAXIMUM_MIN,
                v2020::MAXIMUM_MAX
            ));
        }
        if self.min > self.avg || self.avg > self.max {
            return bad(format!(
                "need min <= avg <= max, got {} / {} / {}",
                self.min, self.avg, self.max
            ));
        }
        if !self.min.is_multiple_of(2) {
            return bad(format!("min {} must be even", self.min));
        }
        Ok(())
    }
}

/// Streaming content-defined chunker: feed arbitrary slices, get the same
/// chunks as chunking the whole input at once.
///
/// The gear-hash scan is resumable, so each input byte is hashed once however
/// the input is split, and a chunk is emitted as soon as its end is certain:
/// when a cut point is found, or when `max` bytes are pending. Pending bytes
/// (always fewer than `max`) are the only state kept between pushes; a push
/// whose input starts a fresh chunk is cut in place and copied once, into
/// the returned chunks.
pub struct StreamChunker {
    min_half: usize,
    avg_half: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    mask_s_ls: u64,
    mask_l_ls: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// Bytes of the current (unfinished) chunk, when it spans pushes.
    buf: Vec<u8>,
    /// Next byte pair of the current chunk to hash.
    index: usize,
    /// Gear hash state of the current chunk.
    hash: u64,
}

impl std::fmt::Debug for StreamChunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamChunker")
            .field("max", &self.max)
            .field("pending", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl StreamChunker {
    /// A chunker with the given (validated) bounds.
    pub fn new(params: ChunkerParams) -> Result<Self, ChunkError> {
        params.validate()?;
        let bits = v2020::logarithm2(params.avg);
        let norm = v2020::Normalization::Level1.bits();
        // validate() bounds avg to 2^8..=2^22, so these indices are in range.
        let mask_s = v2020::MASKS[(bits + norm) as usize];
        let mask_l = v2020::MASKS[(bits - norm) as usize];
        let (gear, gear_ls) = v2020::get_gear_with_seed(0);
        Ok(StreamChunker {
            min_half: params.min as usize / 2,
            avg_half: params.avg as usize / 2,
            max: params.max as usize,
            mask_s,
            mask_l,
            mask_s_ls: mask_s << 1,
            mask_l_ls: mask_l << 1,
            gear,
            gear_ls,
            buf: Vec::new(),
            index: params.min as usize / 2,
            hash: 0,
        })
    }

    /// Bytes received but not yet returned in a chunk (always `< max`).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `data`; returns the chunks whose end is now known.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.push_with(data, |c| out.push(c.to_vec()));
        out
    }

    /// Like [`StreamChunker::push`], but hands each complete chunk to `sink`
    /// as a borrowed slice (no allocation per chunk).
    pub fn push_with(&mut self, mut data: &[u8], mut sink: impl FnMut(&[u8])) {
        loop {
            if self.buf.is_empty() {
                // The current chunk starts at data[0]: cut in place.
                match self.scan(data) {
                    Some(cut) => {
                        sink(&data[..cut]);
                        data = &data[cut..];
                        self.reset();
                    }
                    None => {
                        self.buf.extend_from_slice(data);
                        return;
                    }
                }
            } else {
                // Append only as much as can complete the pending chunk.
                let old = self.buf.len();
                let take = data.len().min(self.max.saturating_sub(old));
                self.buf.extend_from_slice(&data[..take]);
                let buf = std::mem::take(&mut self.buf);
                let cut = self.scan(&buf);
                self.buf = buf;
                match cut {
                    // buf.len() < max, so everything was taken.
                    None => return,
                    Some(cut) => {
                        sink(&self.buf[..cut]);
                        self.reset();
                        if cut >= old {
                            data = &data[cut - old..];
                            self.buf.clear();
                        } else {
                            self.buf.truncate(old);
                            self.buf.drain(..cut);
                        }
                    }
                }
            }
        }
    }

    /// Ends the input: the last chunk, or `None` if there is nothing pending.
    pub fn finish(self) -> Option<Vec<u8>> {
        // The scan of the pending bytes found no cut and they are fewer than
        // `max`, so a whole-input chunker would make them one chunk too.
        if self.buf.is_empty() {
            None
        } else {
            Some(self.buf)
        }
    }

    fn reset(&mut self) {
        self.index = self.min_half;
        self.hash = 0;
    }

    /// Continues the gear scan of the current chunk, whose bytes so far are
    /// `s`. Returns the chunk length if its end is now certain.
    ///
    /// Mirrors `fastcdc::v2020::cut_gear`: pairs below `avg / 2` use the
    /// strict masks, the rest the loose ones, up to `min(len, max) / 2`. That
    /// choice does not depend on how much input follows as long as the scan
    /// stays below the current length, which is what makes it resumable.
    fn scan(&mut self, s: &[u8]) -> Option<usize> {
        let end = s.len().min(self.max) / 2;
        let mut i = self.index;
        let mut hash = self.hash;
        let gear = &*self.gear;
        let gear_ls = &*self.gear_ls;
        let strict_end = end.min(self.avg_half);
        for (masks, stop) in [
            ((self.mask_s_ls, self.mask_s), strict_end),
            ((self.mask_l_ls, self.mask_l), end),
        ] {
            if i >= stop {
                continue;
            }
            let (m_ls, m) = masks;
            for pair in s[2 * i..2 * stop].chunks_exact(2) {
                hash = (hash << 2).wrapping_add(gear_ls[pair[0] as usize]);
                if hash & m_ls == 0 {
                    return Some(2 * i);
                }
                hash = hash.wrapping_add(gear[pair[1] as usize]);
                if hash & m == 0 {
                    return Some(2 * i + 1);
                }
                i += 1;
            }
        }
        self.index = i;
        self.hash = hash;
        if s.len() >= self.max {
            Some(self.max)
        } else {
            None
        }
    }
}

/// Chunks a whole in-memory input (convenience over [`StreamChunker`]).
pub fn chunk_all(params: ChunkerParams, data: &[u8]) -> Result<Vec<Vec<u8>>, ChunkError> {
    let mut c = StreamChunker::new(params)?;
    let mut out = c.push(data);
    out.extend(c.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn reference(p: ChunkerParams, data: &[u8]) -> Vec<Vec<u8>> {
        v2020::FastCDC::new(data, p.min, p.avg, p.max)
            .map(|c| data[c.offset..c.offset + c.length].to_vec())
            .collect()
    }

    #[test]
    fn validate_bounds() {
        assert!(ChunkerParams::default().validate().is_ok());
        let p = |min, avg, max| ChunkerParams { min, avg, max };
        assert!(p(32, 256, 1024).validate().is_err());
        assert!(p(65, 256, 1024).validate().is_err());
        assert!(p(512, 256, 1024).validate().is_err());
        assert!(p(64, 2048, 1024).validate().is_err());
        assert!(p(64, 256, 32 << 20).validate().is_err());
        assert!(StreamChunker::new(p(64, 100, 50)).is_err());
    }

    #[test]
    fn matches_fastcdc_default_params() {
        let data = pseudo_random(5 << 20, 1);
        let p = ChunkerParams::default();
        let want = reference(p, &data);
        assert!(want.len() > 5);
        assert_eq!(chunk_all(p, &data).unwrap(), want);
        // Odd-sized pushes.
        let mut c = StreamChunker::new(p).unwrap();
        let mut got = Vec::new();
        for piece in data.chunks(77_777) {
            got.extend(c.push(piece));
            assert!(c.pending() < p.max as usize);
        }
        got.extend(c.finish());
        assert_eq!(got, want);
    }

    #[test]
    fn zeros_cut_at_max_and_empty_input() {
        let p = ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
        };
        let data = vec![0u8; 4000];
        let got = chunk_all(p, &data).unwrap();
        assert_eq!(got, reference(p, &data));
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            [1024, 1024, 1024, 928]
        );
        let c = StreamChunker::new(p).unwrap();
        assert_eq!(c.finish(), None);
        let mut c = StreamChunker::new(p).unwrap();
        assert!(c.push(&[]).is_empty());
        assert_eq!(c.finish(), None);
    }
}
