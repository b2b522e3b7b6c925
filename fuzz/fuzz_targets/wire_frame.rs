//! A frame from a hostile peer: must decode or fail, never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stratus_net::decode_frame::<stratus_proto::Request>(data);
    let _ = stratus_net::decode_frame::<stratus_proto::Response>(data);
});
