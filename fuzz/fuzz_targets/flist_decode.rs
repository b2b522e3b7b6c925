//! An encoded flist as a replica or a node's disk could hand it over:
//! decoding and the validation that makes it safe to mount must refuse,
//! never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = stratus_flist::Flist::decode(data) {
        let _ = f.validate();
    }
});
