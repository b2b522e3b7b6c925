//! A blocked Bloom filter over byte keys, stored in the state database
//! beside the sorted run it summarises ([`crate::runs`]).
//!
//! Each key sets [`PROBES`] bits inside one 512-bit block (one cache line),
//! so asking costs one memory access whatever the number of probes. At
//! [`BITS_PER_KEY`] bits a key about 1 % of absent keys are reported as
//! maybe present. The hash is this module's own (SplitMix64 over the key's
//! 8-byte words), so a filter written by one build reads the same in every
//! later one: its bits are part of the database's format.

/// Bits of filter per key it is sized for.
const BITS_PER_KEY: u64 = 12;
/// Bits one key sets (all in one block).
const PROBES: u32 = 6;
/// Bits per block.
const BLOCK_BITS: u64 = 512;
const WORDS: usize = (BLOCK_BITS / 64) as usize;

/// A set of keys that may answer "maybe" for a key it does not hold, and
/// never "no" for one it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bloom {
    blocks: Vec<[u64; WORDS]>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Two independent 64-bit hashes of `key`.
fn hash(key: &[u8]) -> (u64, u64) {
    let mut h = mix(key.len() as u64);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = mix(h ^ u64::from_le_bytes(b));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(b));
    }
    (h, mix(h ^ 0x5bd1_e995_5bd1_e995))
}

impl Bloom {
    /// An empty filter sized for `keys` keys.
    pub fn with_capacity(keys: u64) -> Bloom {
        let blocks = (keys.max(1) * BITS_PER_KEY).div_ceil(BLOCK_BITS);
        Bloom {
            blocks: vec![[0; WORDS]; usize::try_from(blocks).unwrap_or(usize::MAX >> 7)],
        }
    }

    fn locate(&self, key: &[u8]) -> (usize, u64) {
        let (h, g) = hash(key);
        // Multiply-shift: a block index without a division.
        let block = ((u128::from(h) * self.blocks.len() as u128) >> 64) as usize;
        (block, g)
    }

    /// Bit `i` of the probes `g` gives (9 bits of `g` each).
    fn bit(g: u64, i: u32) -> (usize, u64) {
        let b = (g >> (i * 9)) & (BLOCK_BITS - 1);
        ((b / 64) as usize, 1u64 << (b % 64))
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: &[u8]) {
        let (block, g) = self.locate(key);
        let words = &mut self.blocks[block];
        for i in 0..PROBES {
            let (w, m) = Self::bit(g, i);
            words[w] |= m;
        }
    }

    /// `false` only if `key` was never added.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        let (block, g) = self.locate(key);
        let words = &self.blocks[block];
        (0..PROBES).all(|i| {
            let (w, m) = Self::bit(g, i);
            words[w] & m != 0
        })
    }

    /// The filter's bytes (little-endian words, block after block).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.blocks
            .iter()
            .flatten()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    /// The filter `to_bytes` gave; `None` if `bytes` is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Bloom> {
        let block = BLOCK_BITS as usize / 8;
        if bytes.is_empty() || !bytes.len().is_multiple_of(block) {
            return None;
        }
        let blocks = bytes
            .chunks_exact(block)
            .map(|b| {
                let mut words = [0u64; WORDS];
                for (w, c) in words.iter_mut().zip(b.chunks_exact(8)) {
                    let mut x = [0u8; 8];
                    x.copy_from_slice(c);
                    *w = u64::from_le_bytes(x);
                }
                words
            })
            .collect();
        Some(Bloom { blocks })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(i: u64) -> [u8; 32] {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn holds_what_it_was_given_and_rarely_more() {
        let n = 20_000;
        let mut b = Bloom::with_capacity(n);
        for i in 0..n {
            b.insert(&key(i));
        }
        assert!((0..n).all(|i| b.may_contain(&key(i))), "no false negative");
        let fp = (n..n + 100_000).filter(|i| b.may_contain(&key(*i))).count();
        assert!(
            fp < 3_000,
            "{fp} of 100000 absent keys reported (expect ~1 %)"
        );
        // Short and odd-length keys too.
        let mut s = Bloom::with_capacity(3);
        for k in [&b""[..], b"a", b"abcdefghi"] {
            s.insert(k);
            assert!(s.may_contain(k));
        }
    }

    #[test]
    fn the_bytes_round_trip_and_the_hash_is_stable() {
        let mut b = Bloom::with_capacity(100);
        for i in 0..100 {
            b.insert(&key(i));
        }
        let back = Bloom::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
        assert!(Bloom::from_bytes(&[1, 2, 3]).is_none());
        assert!(Bloom::from_bytes(&[]).is_none());
        // Filters are stored: this must never change between builds.
        assert_eq!(hash(b"stratus"), hash(b"stratus"));
        assert_eq!(hash(b"stratus").0, 5_214_402_538_358_392_644);
    }
}
