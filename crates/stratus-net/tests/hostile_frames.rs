//! What a hostile peer sends: arbitrary bytes and corrupted frames must be
//! refused with an error, never a panic or an unbounded allocation. The same
//! entry point is a cargo-fuzz target (`fuzz/fuzz_targets/wire_frame.rs`);
//! this runs it over random inputs in every CI run.

use proptest::prelude::*;
use stratus_net::{decode_frame, encode_frame, NetError};
use stratus_proto::{Request, Response};
use stratus_state::Command;
use stratus_types::{Attributes, Capacity, NodeId, NodeInfo};

fn samples() -> Vec<Vec<u8>> {
    let info = NodeInfo {
        id: NodeId([3; 32]),
        name: "n".into(),
        version: "0".into(),
        capacity: Capacity {
            cpu_cores: 2,
            memory_bytes: 1 << 30,
            disk_bytes: 1 << 40,
        },
        attributes: Attributes {
            latitude: Some(1.5),
            ..Attributes::default()
        },
        storage: Some(stratus_types::StorageInfo {
            addr: "127.0.0.1:1".into(),
            capacity_bytes: 1 << 30,
        }),
        runtimes: vec![stratus_types::Runtime::Wasm, stratus_types::Runtime::Oci],
        ports: stratus_types::PortRange::DEFAULT,
    };
    let reqs = [
        Request::Register {
            info: info.clone(),
            join_token: "stj_x".into(),
        },
        Request::Heartbeat,
        Request::Forward(Command::RegisterNode { info, now_ms: 5 }),
        Request::Forward(Command::PutVar {
            tenant: "a".into(),
            key: "k".into(),
            value: "v".repeat(100),
            now_ms: 1,
        }),
    ];
    reqs.iter()
        .map(|r| encode_frame(r).expect("encodes"))
        .collect()
}

#[test]
fn valid_frames_round_trip() {
    for f in samples() {
        let r: Request = decode_frame(&f).expect("decodes");
        assert_eq!(encode_frame(&r).expect("re-encodes"), f);
    }
}

#[test]
fn truncated_and_oversized_frames_are_refused() {
    let f = &samples()[0];
    for cut in 0..f.len() {
        assert!(
            decode_frame::<Request>(&f[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    let mut huge = f.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_frame::<Request>(&huge),
        Err(NetError::FrameTooLarge { .. })
    ));
    let mut bad_version = f.clone();
    bad_version[4] = 0xff;
    assert!(matches!(
        decode_frame::<Request>(&bad_version),
        Err(NetError::BadVersion { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame::<Request>(&data);
        let _ = decode_frame::<Response>(&data);
        let _ = decode_frame::<stratus_proto::PieceRequest>(&data);
        let _ = decode_frame::<stratus_proto::PieceResponse>(&data);
    }

    #[test]
    fn corrupted_piece_requests_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut f = encode_frame(&stratus_proto::PieceRequest::Put {
            id: stratus_chunk::PieceId([9; 32]),
            bytes: vec![1; 300],
        })
        .expect("encodes");
        for (i, b) in flips {
            let i = i.index(f.len());
            f[i] ^= b;
        }
        let _ = decode_frame::<stratus_proto::PieceRequest>(&f);
    }

    #[test]
    fn corrupted_frames_never_panic(which in 0usize..4, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut f = samples()[which].clone();
        for (i, b) in flips {
            let i = i.index(f.len());
            f[i] ^= b;
        }
        let _ = decode_frame::<Request>(&f);
    }
}
