//! An HTTP request built from bytes through the whole S3 service (router,
//! SigV4 parsing and checking, XML, the gateway) over the in-memory backend.
//! See `stratus_s3::fuzzing::fuzz_request` for the input layout.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stratus_s3::fuzzing::fuzz_request(data);
});
