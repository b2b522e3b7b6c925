//! Behaviour of the piece store on a real directory.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use stratus_pieces::{PieceError, PieceId, PieceStore, FORMAT_VERSION};

fn piece(seed: u8, len: usize) -> (PieceId, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    (*blake3::hash(&bytes).as_bytes(), bytes)
}

fn piece_path(root: &Path, id: &PieceId) -> PathBuf {
    let hex = hex::encode(id);
    root.join("p").join(&hex[..2]).join(hex)
}

fn count_files(dir: &Path) -> usize {
    match fs::read_dir(dir) {
        Ok(entries) => entries.count(),
        Err(_) => 0,
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

const MIB: u64 = 1 << 20;

#[test]
fn put_get_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(1, 5000);
    assert!(!store.contains(&id));
    assert!(store.put(&id, &bytes).unwrap());
    assert!(store.contains(&id));
    assert_eq!(store.get(&id).unwrap(), bytes);
    assert!(piece_path(dir.path(), &id).is_file());
    assert_eq!(
        fs::read_to_string(dir.path().join("FORMAT")).unwrap(),
        format!("{FORMAT_VERSION}\n")
    );
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces, u.capacity_bytes), (5000, 1, MIB));
    assert!(u.fs_available_bytes > 0);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);

    // The empty piece is a piece too.
    let (empty, no_bytes) = piece(0, 0);
    assert!(store.put(&empty, &no_bytes).unwrap());
    assert_eq!(store.get(&empty).unwrap(), Vec::<u8>::new());
}

#[test]
fn get_of_absent_piece_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, _) = piece(1, 10);
    assert!(matches!(store.get(&id), Err(PieceError::NotFound { .. })));
    assert!(matches!(
        store.get_range(&id, 0, 1),
        Err(PieceError::NotFound { .. })
    ));
}

#[test]
fn put_with_wrong_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, mut bytes) = piece(1, 100);
    bytes[3] ^= 0xff;
    let err = store.put(&id, &bytes).unwrap_err();
    assert!(matches!(err, PieceError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&hex::encode(id)));
    assert!(!store.contains(&id));
    assert_eq!(store.usage().used_bytes, 0);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

#[test]
fn put_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(2, 1000);
    assert!(store.put(&id, &bytes).unwrap());
    assert!(!store.put(&id, &bytes).unwrap());
    assert!(!store.put(&id, &bytes).unwrap());
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces), (1000, 1));
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn capacity_limit_refuses_with_numbers_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), 1500).unwrap();
    let (a, a_bytes) = piece(1, 1000);
    let (b, b_bytes) = piece(2, 600);
    let (c, c_bytes) = piece(3, 500);
    assert!(store.put(&a, &a_bytes).unwrap());
    match store.put(&b, &b_bytes) {
        Err(PieceError::Full {
            needed_bytes,
            used_bytes,
            capacity_bytes,
            ..
        }) => assert_eq!(
            (needed_bytes, used_bytes, capacity_bytes),
            (600, 1000, 1500)
        ),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(!store.contains(&b));
    assert!(!piece_path(dir.path(), &b).exists());
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(store.usage().used_bytes, 1000);
    // Exactly up to the capacity fits.
    assert!(store.put(&c, &c_bytes).unwrap());
    assert_eq!(store.usage().used_bytes, 1500);
    // Deleting frees the space.
    assert!(store.delete(&a).unwrap());
    assert!(store.put(&b, &b_bytes).unwrap());
    assert_eq!(store.usage().used_bytes, 1100);
}

#[test]
fn corrupt_piece_is_quarantined_on_get() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(4, 2000);
    let (other, other_bytes) = piece(5, 300);
    store.put(&id, &bytes).unwrap();
    store.put(&other, &other_bytes).unwrap();
    flip_byte(&piece_path(dir.path(), &id), 1234);

    let err = store.get(&id).unwrap_err();
    let PieceError::Corrupt { quarantined_to, .. } = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert!(quarantined_to.starts_with(dir.path().join("quarantine")));
    assert!(quarantined_to.is_file());
    assert_eq!(count_files(&dir.path().join("quarantine")), 1);
    assert!(!store.contains(&id));
    let listed: Vec<PieceId> = store.list().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(listed, vec![other]);
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces), (300, 1));
    assert!(matches!(store.get(&id), Err(PieceError::NotFound { .. })));
    // It can be repaired by storing it again.
    assert!(store.put(&id, &bytes).unwrap());
    assert_eq!(store.get(&id).unwrap(), bytes);
}

#[test]
fn put_replaces_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(6, 1000);
    store.put(&id, &bytes).unwrap();
    let path = piece_path(dir.path(), &id);
    fs::write(&path, &bytes[..10]).unwrap();
    drop(store);
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    assert_eq!(store.usage().used_bytes, 10);
    assert!(store.put(&id, &bytes).unwrap());
    assert_eq!(store.get(&id).unwrap(), bytes);
    assert_eq!(store.usage().used_bytes, 1000);
    assert_eq!(count_files(&dir.path().join("quarantine")), 1);
}

#[test]
fn get_range_reads_without_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(7, 4096);
    store.put(&id, &bytes).unwrap();
    assert_eq!(store.get_range(&id, 100, 50).unwrap(), &bytes[100..150]);
    assert_eq!(store.get_range(&id, 0, 4096).unwrap(), bytes);
    assert_eq!(store.get_range(&id, 4096, 0).unwrap(), Vec::<u8>::new());
    assert!(matches!(
        store.get_range(&id, 4000, 97),
        Err(PieceError::OutOfRange { size: 4096, .. })
    ));
    assert!(matches!(
        store.get_range(&id, u64::MAX, 2),
        Err(PieceError::OutOfRange { .. })
    ));
    // Not verified: a flipped byte is served as is.
    flip_byte(&piece_path(dir.path(), &id), 10);
    assert_eq!(store.get_range(&id, 10, 1).unwrap(), vec![bytes[10] ^ 1]);
    assert!(store.contains(&id));
}

#[test]
fn delete_removes_and_reports_existence() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let (id, bytes) = piece(8, 700);
    store.put(&id, &bytes).unwrap();
    assert!(store.delete(&id).unwrap());
    assert!(!store.delete(&id).unwrap());
    assert!(!store.contains(&id));
    assert!(matches!(store.get(&id), Err(PieceError::NotFound { .. })));
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces), (0, 0));
}

#[test]
fn list_reports_every_piece_sorted_with_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let mut expected: Vec<(PieceId, u64)> = (0..20u8)
        .map(|i| {
            let (id, bytes) = piece(i, 100 + usize::from(i));
            store.put(&id, &bytes).unwrap();
            (id, bytes.len() as u64)
        })
        .collect();
    expected.sort();
    // Stray files are not pieces.
    fs::write(dir.path().join("p").join("zz"), b"x").unwrap();
    let listed = store.list().unwrap();
    let got: Vec<(PieceId, u64)> = listed.iter().map(|m| (m.id, m.size)).collect();
    assert_eq!(got, expected);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for m in &listed {
        assert!(m.modified_ms > now_ms - 600_000 && m.modified_ms <= now_ms + 1000);
    }
}

#[test]
fn scrub_finds_corruption_and_wraps_around() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();

    let empty = store.scrub(u64::MAX).unwrap();
    assert_eq!((empty.checked_pieces, empty.wrapped), (0, true));

    let mut ids = Vec::new();
    for i in 0..10u8 {
        let (id, bytes) = piece(i, 1000);
        store.put(&id, &bytes).unwrap();
        ids.push(id);
    }
    ids.sort();
    let bad = ids[6];
    flip_byte(&piece_path(dir.path(), &bad), 0);

    // 3000 bytes a call: three pieces, then three, then three (finding the
    // bad one), then the last one and the wrap.
    let mut corrupt = Vec::new();
    let mut calls = Vec::new();
    loop {
        let r = store.scrub(3000).unwrap();
        calls.push((r.checked_pieces, r.checked_bytes, r.wrapped));
        corrupt.extend(r.corrupt);
        if r.wrapped {
            break;
        }
    }
    assert_eq!(
        calls,
        vec![
            (3, 3000, false),
            (3, 3000, false),
            (3, 3000, false),
            (1, 1000, true)
        ]
    );
    assert_eq!(corrupt, vec![bad]);
    assert!(!store.contains(&bad));
    assert_eq!(count_files(&dir.path().join("quarantine")), 1);
    assert_eq!(store.usage().pieces, 9);

    // After the wrap, it starts again from the beginning; a budget below one
    // piece still checks one.
    let r = store.scrub(0).unwrap();
    assert_eq!((r.checked_pieces, r.wrapped), (1, false));
    let r = store.scrub(u64::MAX).unwrap();
    assert_eq!((r.checked_pieces, r.wrapped), (8, true));
    assert!(r.corrupt.is_empty());
}

#[test]
fn reopen_after_crash_cleans_tmp_and_recomputes_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_bytes) = piece(1, 1234);
    let (b, b_bytes) = piece(2, 766);
    {
        let store = PieceStore::open(dir.path(), MIB).unwrap();
        store.put(&a, &a_bytes).unwrap();
        store.put(&b, &b_bytes).unwrap();
    }
    // A write interrupted by a crash.
    let stray = dir
        .path()
        .join("tmp")
        .join(format!("{}.1.0.tmp", hex::encode(a)));
    fs::write(&stray, b"half a piece").unwrap();
    fs::create_dir(dir.path().join("tmp").join("junk")).unwrap();

    let store = PieceStore::open(dir.path(), MIB).unwrap();
    assert!(!stray.exists());
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces), (2000, 2));
    assert_eq!(store.get(&a).unwrap(), a_bytes);
    assert_eq!(store.get(&b).unwrap(), b_bytes);
}

#[test]
fn a_directory_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = PieceStore::open(dir.path(), MIB).unwrap();
    let err = PieceStore::open(dir.path(), MIB).unwrap_err();
    assert!(matches!(err, PieceError::Locked { .. }), "{err}");
    drop(store);
    PieceStore::open(dir.path(), MIB).unwrap();
}

#[test]
fn concurrent_puts_of_one_piece_leave_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PieceStore::open(dir.path(), MIB).unwrap());
    let (id, bytes) = piece(9, 64 * 1024);
    let bytes = Arc::new(bytes);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (store, bytes) = (store.clone(), bytes.clone());
            std::thread::spawn(move || store.put(&id, &bytes))
        })
        .collect();
    let results: Vec<bool> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|new| **new).count(), 1);
    let shard = piece_path(dir.path(), &id).parent().unwrap().to_path_buf();
    assert_eq!(count_files(&shard), 1);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    let u = store.usage();
    assert_eq!((u.used_bytes, u.pieces), (64 * 1024, 1));
    assert_eq!(store.get(&id).unwrap(), *bytes);
}

#[test]
fn concurrent_puts_never_exceed_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(PieceStore::open(dir.path(), 5000).unwrap());
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let (id, bytes) = piece(i, 1000);
                store.put(&id, &bytes).is_ok()
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 5);
    assert_eq!(store.usage().used_bytes, 5000);
    assert_eq!(store.list().unwrap().len(), 5);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("FORMAT"), "2\n").unwrap();
    let err = PieceStore::open(dir.path(), MIB).unwrap_err();
    let PieceError::UnsupportedFormat {
        found, supported, ..
    } = &err
    else {
        panic!("expected UnsupportedFormat, got {err:?}");
    };
    assert_eq!((found.as_str(), *supported), ("2", 1));
    let msg = err.to_string();
    assert!(
        msg.contains("FORMAT") && msg.contains("supports only version 1"),
        "{msg}"
    );
    // Nothing was created in the refused store.
    assert!(!dir.path().join("p").exists());

    fs::write(dir.path().join("FORMAT"), "garbage").unwrap();
    assert!(matches!(
        PieceStore::open(dir.path(), MIB),
        Err(PieceError::UnsupportedFormat { .. })
    ));
    fs::write(dir.path().join("FORMAT"), "1\n").unwrap();
    PieceStore::open(dir.path(), MIB).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Usage always equals the sum of what is listed, and survives a reopen.
    #[test]
    fn usage_matches_listing(ops in proptest::collection::vec((0u8..6, any::<bool>()), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let store = PieceStore::open(dir.path(), MIB).unwrap();
        for (seed, put) in ops {
            let (id, bytes) = piece(seed, 100 * usize::from(seed));
            if put { store.put(&id, &bytes).unwrap(); } else { store.delete(&id).unwrap(); }
            let listed = store.list().unwrap();
            let u = store.usage();
            prop_assert_eq!(u.used_bytes, listed.iter().map(|m| m.size).sum::<u64>());
            prop_assert_eq!(u.pieces, listed.len() as u64);
        }
        let before = store.usage();
        drop(store);
        let after = PieceStore::open(dir.path(), MIB).unwrap().usage();
        prop_assert_eq!((before.used_bytes, before.pieces), (after.used_bytes, after.pieces));
    }
}
