//! A volume archive from a tenant's bucket: unpacking must stay inside its
//! folder and refuse, never panic.
#![no_main]
use std::io::Write;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let tar = dir.path().join("v.tar");
    let dst = dir.path().join("dst");
    let ok = std::fs::File::create(&tar).and_then(|mut f| f.write_all(data));
    if ok.is_err() || std::fs::create_dir(&dst).is_err() {
        return;
    }
    // No user namespace: owners as archived (the path checks are the same).
    let _ = stratus_agent::archive::unpack(&tar, &dst, None);
    // Nothing may appear beside the folder but the archive itself.
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        beside.len() <= 2,
        "unpack wrote outside its folder: {beside:?}"
    );
});
