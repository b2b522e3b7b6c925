//! A frame from a hostile peer: must decode or fail, never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stratus_net::decode_frame::<stratus_proto::Request>(data);
    let _ = stratus_net::decode_frame::<stratus_proto::Response>(data);
    // What a storage node receives from the network, and answers.
    let _ = stratus_net::decode_frame::<stratus_proto::PieceRequest>(data);
    let _ = stratus_net::decode_frame::<stratus_proto::PieceResponse>(data);
});
