//! The bearer token of an API request and a node id from a URL.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = stratus_control::secrets::parse_token(s);
        let _ = s.parse::<stratus_types::NodeId>();
    }
});
