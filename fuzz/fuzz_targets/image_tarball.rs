//! A tenant's image tarball (`docker save` or OCI archive): the import must
//! refuse what is malformed, never panic or write outside memory.
#![no_main]
use std::io::Write;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let mut sink = stratus_flist::MemorySink::new();
    let _ = stratus_flist::import_image(file.path(), &mut sink);
});
