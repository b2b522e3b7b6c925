//! Bounds of image imports (issue 13, item 6), tested as an attacker who
//! uploads a crafted image would.

#![allow(clippy::unwrap_used)]

use crate::targuard::{MAX_LONG_NAME, MAX_PAX_HEADER};
use crate::{
    import_image_with, FlistError, ImageBuilder, ImportLimits, LayerEntry, Layers, MemorySink,
};

/// A ustar header block of `kind` with `size` bytes of data.
fn header(path: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(512) {
        v.push(0);
    }
}

/// A layer whose first entry is a `kind` extension header carrying
/// `data`, then a small regular file and the end of the archive: valid
/// for `tar`, which reads the extension's data into memory whole.
fn layer_with(kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut t = header("././@Ext", kind, data.len() as u64);
    t.extend_from_slice(data);
    pad(&mut t);
    t.extend(header("etc/hello", tar::EntryType::Regular, 5));
    t.extend_from_slice(b"hello");
    pad(&mut t);
    t.extend(vec![0; 1024]);
    t
}

/// A well-formed PAX record of exactly `len` bytes.
fn pax_record(len: usize) -> Vec<u8> {
    let digits = len.to_string().len();
    let fill = len - digits - " comment=\n".len();
    format!("{len} comment={}\n", "x".repeat(fill)).into_bytes()
}

fn limit_message(r: Result<(), FlistError>) -> String {
    match r {
        Err(FlistError::Limit(m)) => m,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn a_one_mib_pax_header_is_refused_naming_the_limit() {
    let rec = pax_record(1 << 20);
    assert_eq!(rec.len(), 1 << 20);
    let m = limit_message(Layers::new().apply(&layer_with(tar::EntryType::XHeader, &rec)[..]));
    assert!(
        m.contains("PAX extended header of 1048576 bytes")
            && m.contains(&MAX_PAX_HEADER.to_string()),
        "{m}"
    );
    // A global one too.
    let m =
        limit_message(Layers::new().apply(&layer_with(tar::EntryType::XGlobalHeader, &rec)[..]));
    assert!(m.contains("PAX"), "{m}");
    // A PAX header within the limit is read as before.
    let small = pax_record(1000);
    Layers::new()
        .apply(&layer_with(tar::EntryType::XHeader, &small)[..])
        .unwrap();
}

#[test]
fn a_huge_gnu_long_name_is_refused_naming_the_limit() {
    let mut name = vec![b'a'; 1 << 20];
    name.push(0);
    let t = layer_with(tar::EntryType::GNULongName, &name);
    let m = limit_message(Layers::new().apply(&t[..]));
    assert!(
        m.contains("long name of 1048577 bytes") && m.contains(&MAX_LONG_NAME.to_string()),
        "{m}"
    );
}

#[test]
fn a_pax_size_record_moves_the_guard_as_it_moves_tar() {
    // A PAX `size` overrides the next entry's header size; the guard must
    // skip the same data `tar` skips, or it would read file bytes as a
    // header (here: bytes that look like a huge PAX header).
    let mut inner = header("x", tar::EntryType::XHeader, 1 << 30);
    inner.resize(1024, 0);
    let rec = b"13 size=1024\n".to_vec();
    let mut t = header("././@Pax", tar::EntryType::XHeader, rec.len() as u64);
    t.extend_from_slice(&rec);
    pad(&mut t);
    t.extend(header("data", tar::EntryType::Regular, 0));
    t.extend_from_slice(&inner);
    t.extend(vec![0; 1024]);
    Layers::new().apply(&t[..]).unwrap();
}

#[test]
fn a_gzip_bomb_layer_is_refused_at_the_decompressed_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.tar");
    // 64 MiB of zeros: about 64 KiB once gzipped.
    ImageBuilder::new()
        .layer(vec![LayerEntry::file("zeros", 0o644, vec![0u8; 64 << 20])])
        .write_docker_save(&path, "bomb:latest")
        .unwrap();
    let limits = ImportLimits {
        max_layer_bytes: 8 << 20,
        ..Default::default()
    };
    let mut sink = MemorySink::new();
    let err = import_image_with(&path, None, &mut sink, &limits).unwrap_err();
    let FlistError::Limit(m) = err else {
        panic!("expected a limit error, got {err:?}");
    };
    assert!(
        m.contains("more than 8388608 bytes (the limit per layer)"),
        "{m}"
    );
    // The whole-image cap, and the archive cap.
    let limits = ImportLimits {
        max_image_bytes: 1 << 20,
        ..Default::default()
    };
    let err = import_image_with(&path, None, &mut sink, &limits).unwrap_err();
    assert!(
        err.to_string().contains("the limit of the whole image"),
        "{err}"
    );
    let limits = ImportLimits {
        max_archive_bytes: 1000,
        ..Default::default()
    };
    let err = import_image_with(&path, None, &mut sink, &limits).unwrap_err();
    assert!(err.to_string().contains("the limit is 1000 bytes"), "{err}");
    // Under the default caps it imports.
    import_image_with(&path, None, &mut sink, &ImportLimits::default()).unwrap();
}

#[test]
fn a_global_header_takes_pending_pax_records_as_tar_does() {
    // `x` (size=1024), then `g`: `tar` attaches the records to `g`, so the
    // regular entry after it keeps its own size (0) and the next block is
    // a header. A guard that applied the 1024 would skip the huge long
    // name below and let `tar` buffer it.
    let rec = b"13 size=1024\n".to_vec();
    let mut t = header("././@Pax", tar::EntryType::XHeader, rec.len() as u64);
    t.extend_from_slice(&rec);
    pad(&mut t);
    t.extend(header("././@Global", tar::EntryType::XGlobalHeader, 0));
    t.extend(header("empty", tar::EntryType::Regular, 0));
    let mut name = vec![b'a'; 1 << 20];
    name.push(0);
    t.extend(layer_with(tar::EntryType::GNULongName, &name));
    let m = limit_message(Layers::new().apply(&t[..]));
    assert!(m.contains("long name of 1048577 bytes"), "{m}");
}
