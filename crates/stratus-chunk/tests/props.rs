//! Property tests for the data path.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use stratus_chunk::*;

fn small_params() -> ChunkerParams {
    ChunkerParams {
        min: 64,
        avg: 256,
        max: 1024,
    }
}

/// Data with both random and repetitive stretches (so cuts at `max` happen).
fn data_strategy(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2000),
            (any::<u8>(), 0usize..3000).prop_map(|(b, n)| vec![b; n]),
        ],
        0..6,
    )
    .prop_map(move |parts| {
        let mut v = parts.concat();
        v.truncate(max_len);
        v
    })
}

/// The one-shot FastCDC 2020 chunker (normalization level 1).
fn reference(p: ChunkerParams, data: &[u8]) -> Vec<Vec<u8>> {
    fastcdc::v2020::FastCDC::new(data, p.min, p.avg, p.max)
        .map(|c| data[c.offset..c.offset + c.length].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chunker_split_invariance(data in data_strategy(12_000), cuts in prop::collection::vec(0usize..12_000, 0..12)) {
        let p = small_params();
        let whole = reference(p, &data);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut c = StreamChunker::new(p).unwrap();
        let mut got = Vec::new();
        let mut prev = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            got.extend(c.push(&data[prev..cut]));
            prop_assert!(c.pending() < p.max as usize);
            prev = cut;
        }
        got.extend(c.finish());
        prop_assert_eq!(&got, &whole);
        prop_assert_eq!(got.concat(), data.clone());
        for (i, ch) in got.iter().enumerate() {
            prop_assert!(ch.len() <= p.max as usize);
            prop_assert!(!ch.is_empty());
            if i + 1 < got.len() {
                prop_assert!(ch.len() >= p.min as usize);
            }
        }
        prop_assert_eq!(chunk_all(p, &data).unwrap(), whole);
    }

    #[test]
    fn byte_at_a_time_equals_one_push(data in data_strategy(4000)) {
        let p = small_params();
        let mut c = StreamChunker::new(p).unwrap();
        let mut got = Vec::new();
        for b in &data {
            got.extend(c.push(std::slice::from_ref(b)));
        }
        got.extend(c.finish());
        prop_assert_eq!(got, reference(p, &data));
    }

    #[test]
    fn seal_open_round_trip(data in prop::collection::vec(any::<u8>(), 0..3000), text in any::<bool>(), seed in any::<[u8; 32]>()) {
        let data = if text { data.iter().map(|b| b"ab c"[(*b % 4) as usize]).collect() } else { data };
        let scope = ScopeKey::private(seed);
        let id = chunk_id(&scope, &data);
        let sealed = seal_chunk(&scope, &id, &data, 3);
        prop_assert_eq!(open_chunk(&scope, &id, &sealed).unwrap(), data.clone());
        // Opening in place gives the same bytes.
        let mut buf = sealed.clone();
        let in_place = match open_chunk_in_place(&scope, &id, &mut buf, MAX_CHUNK_LEN).unwrap() {
            Opened::InPlace(r) => buf[r].to_vec(),
            Opened::Owned(v) => v,
        };
        prop_assert_eq!(&in_place, &data);
        // Convergent within a scope.
        prop_assert_eq!(&seal_chunk(&scope, &id, &data, 3), &sealed);
        // Another scope: another id and other bytes; neither opens across.
        let other = ScopeKey::tenant(&seed, "t");
        let id2 = chunk_id(&other, &data);
        prop_assert_ne!(id, id2);
        let sealed2 = seal_chunk(&other, &id2, &data, 3);
        prop_assert_ne!(&sealed2, &sealed);
        prop_assert!(open_chunk(&other, &id, &sealed).is_err());
        prop_assert!(open_chunk(&other, &id2, &sealed).is_err());
        prop_assert!(open_chunk(&scope, &id2, &sealed).is_err());
    }

    #[test]
    fn any_bit_flip_is_detected(data in prop::collection::vec(any::<u8>(), 0..600), text in any::<bool>(), bit in any::<prop::sample::Index>()) {
        let data = if text { vec![b'x'; data.len()] } else { data };
        let scope = ScopeKey::public();
        let id = chunk_id(&scope, &data);
        let sealed = seal_chunk(&scope, &id, &data, 3);
        let i = bit.index(sealed.len() * 8);
        let mut bad = sealed.clone();
        bad[i / 8] ^= 1 << (i % 8);
        prop_assert!(open_chunk(&scope, &id, &bad).is_err());
        prop_assert!(open_chunk_in_place(&scope, &id, &mut bad, MAX_CHUNK_LEN).is_err());
    }

    #[test]
    fn stripes_round_trip(
        data in prop::collection::vec(any::<u8>(), 0..40_000),
        k in 1u8..=10,
        m in 0u8..=5,
        order in Just((0..15).collect::<Vec<usize>>()).prop_shuffle(),
        extra_pad in 0usize..300_000,
    ) {
        // Occasionally big stripes (up to a few hundred KiB).
        let data = if extra_pad > 250_000 { let mut d = data; d.resize(d.len() + extra_pad, 7); d } else { data };
        let p = Profile { k, m };
        let pieces = encode_stripe(p, &data).unwrap();
        prop_assert_eq!(pieces.len(), p.total());
        let len = piece_len(p, data.len() as u64) as usize;
        prop_assert!(len.is_multiple_of(2) && len >= 2 && len * usize::from(k) >= data.len());
        prop_assert!(pieces.iter().all(|x| x.len() == len));
        // Drop m pieces chosen by the shuffled order.
        let lost: Vec<usize> = order.into_iter().filter(|&i| i < p.total()).take(usize::from(m)).collect();
        let got: Vec<Option<Vec<u8>>> = pieces.iter().enumerate().map(|(i, x)| (!lost.contains(&i)).then(|| x.clone())).collect();
        prop_assert_eq!(&decode_stripe(p, data.len() as u64, &got).unwrap(), &data);
        prop_assert_eq!(&decode_stripe_owned(p, data.len() as u64, got.clone()).unwrap(), &data);
        // With every piece (the common read: the first data piece is reused).
        let all: Vec<Option<Vec<u8>>> = pieces.iter().cloned().map(Some).collect();
        prop_assert_eq!(&decode_stripe_owned(p, data.len() as u64, all).unwrap(), &data);
        let rebuilt = rebuild_pieces(p, &got, &lost).unwrap();
        for (w, r) in lost.iter().zip(&rebuilt) {
            prop_assert_eq!(&pieces[*w], r);
        }
        // One more loss: too few pieces.
        if let Some(j) = (0..p.total()).find(|i| !lost.contains(i)) {
            let mut fewer = got.clone();
            fewer[j] = None;
            let is_too_few = matches!(decode_stripe(p, data.len() as u64, &fewer), Err(ChunkError::TooFewPieces { .. }));
            prop_assert!(is_too_few);
            let owned_too_few = matches!(decode_stripe_owned(p, data.len() as u64, fewer.clone()), Err(ChunkError::TooFewPieces { .. }));
            prop_assert!(owned_too_few);
            prop_assert!(rebuild_pieces(p, &fewer, &[j]).is_err());
        }
    }
}

#[test]
fn full_path_round_trip() {
    let scope = ScopeKey::tenant(&[1; 32], "acme");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| {
            if (i / 100_000) % 2 == 0 {
                (i % 7) as u8
            } else {
                (i.wrapping_mul(2_654_435_761) >> 24) as u8
            }
        })
        .collect();
    let mut c = StreamChunker::new(ChunkerParams::default()).unwrap();
    let mut chunks = c.push(&data);
    chunks.extend(c.finish());
    let mut pack = PackBuilder::new(1 << 20);
    let mut refs = Vec::new();
    for ch in &chunks {
        let id = chunk_id(&scope, ch);
        let (offset, sealed_len) = pack.add(&seal_chunk(&scope, &id, ch, 3));
        refs.push(ChunkRef {
            id,
            plain_len: ch.len() as u32,
            offset,
            sealed_len,
        });
    }
    let pack = pack.finish();
    let p = Profile { k: 4, m: 2 };
    let pieces = encode_stripe(p, &pack).unwrap();
    let got: Vec<Option<Vec<u8>>> = pieces
        .iter()
        .enumerate()
        .map(|(i, x)| (i != 1 && i != 4).then(|| x.clone()))
        .collect();
    let back = decode_stripe(p, pack.len() as u64, &got).unwrap();
    let mut out = Vec::new();
    for r in &refs {
        let s = &back[r.offset as usize..r.offset as usize + r.sealed_len as usize];
        let plain = open_chunk(&scope, &r.id, s).unwrap();
        assert_eq!(plain.len(), r.plain_len as usize);
        out.extend(plain);
    }
    assert_eq!(out, data);
    // Storage nodes see no chunk boundary markers: a dedupe-equal chunk seals
    // to the same bytes, so they only see it if the whole pack repeats.
    let pieces2 = encode_stripe(p, &pack).unwrap();
    assert_eq!(
        pieces.iter().map(|x| piece_id(x)).collect::<Vec<_>>(),
        pieces2.iter().map(|x| piece_id(x)).collect::<Vec<_>>()
    );
}
