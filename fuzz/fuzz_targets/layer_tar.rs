//! One layer's uncompressed tar, as a tenant's image carries it: applying
//! it must refuse what is malformed or over a limit (long names, PAX
//! headers, entry counts: `stratus_flist::targuard`), never panic, and
//! never buffer more than the guard allows.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stratus_flist::Layers::new().apply(data);
});
