//! Tests of the model: encoding round trips, validation, hostile bytes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_bytes::ByteBuf;

use crate::{FileChunk, Flist, FlistError, ImageConfig, Inode, InodeKind, ROOT};

fn add(f: &mut Flist, dir: u32, name: &str, inode: Inode) -> u32 {
    let ino = f.inodes.len() as u32;
    f.inodes.push(inode);
    link(f, dir, name, ino);
    ino
}

fn link(f: &mut Flist, dir: u32, name: &str, ino: u32) {
    match &mut f.inodes[dir as usize].kind {
        InodeKind::Dir { entries } => {
            entries.insert(ByteBuf::from(name.as_bytes().to_vec()), ino);
        }
        other => panic!("not a directory: {other:?}"),
    }
}

fn file(bytes: &[u8]) -> Inode {
    let chunk = FileChunk {
        id: [7; 32],
        hash: *blake3::hash(bytes).as_bytes(),
        len: bytes.len() as u32,
    };
    Inode {
        kind: InodeKind::File {
            size: bytes.len() as u64,
            chunks: vec![chunk],
        },
        mode: 0o644,
        uid: 1000,
        gid: 100,
        mtime: 1_700_000_000,
        xattrs: BTreeMap::from([("user.k".to_string(), ByteBuf::from(b"v".to_vec()))]),
    }
}

/// `/etc/hosts`, `/etc/hosts2` (a hard link), `/bin/sh -> busybox`.
fn sample() -> Flist {
    let mut f = Flist::new(ImageConfig {
        cmd: vec!["sh".into()],
        ..ImageConfig::default()
    });
    let etc = add(&mut f, ROOT, "etc", Inode::dir(0o755));
    let bin = add(&mut f, ROOT, "bin", Inode::dir(0o755));
    let hosts = add(&mut f, etc, "hosts", file(b"127.0.0.1 localhost\n"));
    link(&mut f, etc, "hosts2", hosts);
    let mut sh = Inode::dir(0o777);
    sh.kind = InodeKind::Symlink {
        target: ByteBuf::from(b"busybox".to_vec()),
    };
    add(&mut f, bin, "sh", sh);
    f
}

#[test]
fn round_trip_and_lookups() {
    let f = sample();
    let decoded = Flist::decode(&f.encode().unwrap()).unwrap();
    assert_eq!(decoded, f);
    let hosts = decoded.resolve("/etc/hosts").unwrap();
    assert_eq!(decoded.resolve("etc/./hosts2"), Some(hosts));
    assert_eq!(decoded.resolve("/etc/missing"), None);
    assert_eq!(decoded.inode(hosts).unwrap().size(), 20);
    let names: Vec<_> = decoded.entries(ROOT).map(|(n, _)| n.to_vec()).collect();
    assert_eq!(names, vec![b"bin".to_vec(), b"etc".to_vec()]);
    let stats = decoded.stats();
    assert_eq!((stats.dirs, stats.files, stats.symlinks), (3, 1, 1));
    assert_eq!(decoded.chunks().count(), 1);
}

#[test]
fn link_counts_follow_unix_rules() {
    let f = sample();
    let n = f.link_counts();
    // Root: `.`, `..` (itself) and the `..` of etc and bin.
    assert_eq!(n[ROOT as usize], 4);
    let etc = f.resolve("/etc").unwrap();
    assert_eq!(n[etc as usize], 2);
    assert_eq!(n[f.resolve("/etc/hosts").unwrap() as usize], 2);
    assert_eq!(n[f.resolve("/bin/sh").unwrap() as usize], 1);
}

#[test]
fn chunk_verification() {
    let c = FileChunk {
        id: [0; 32],
        hash: *blake3::hash(b"abc").as_bytes(),
        len: 3,
    };
    assert!(c.verify(b"abc"));
    assert!(!c.verify(b"abd"));
    assert!(!c.verify(b"abcd"));
}

fn invalid(f: &Flist) -> String {
    match f.validate() {
        Err(FlistError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn validation_refuses_broken_trees() {
    // A directory cycle: /a/b names /a again.
    let mut f = sample();
    let a = add(&mut f, ROOT, "a", Inode::dir(0o755));
    let b = add(&mut f, a, "b", Inode::dir(0o755));
    link(&mut f, b, "loop", a);
    assert!(invalid(&f).contains("2 names"));

    // A cycle detached from the root.
    let mut f = sample();
    let x = f.inodes.len() as u32;
    f.inodes.push(Inode::dir(0o755));
    f.inodes.push(Inode::dir(0o755));
    link(&mut f, x, "y", x + 1);
    link(&mut f, x + 1, "x", x);
    assert!(invalid(&f).contains("cycle"));

    // An entry naming a missing inode, the root named, bad names.
    let mut f = sample();
    link(&mut f, ROOT, "ghost", 99);
    assert!(invalid(&f).contains("missing inode 99"));
    let mut f = sample();
    link(&mut f, ROOT, "again", ROOT);
    assert!(invalid(&f).contains("root"));
    for name in ["..", "a/b", ""] {
        let mut f = sample();
        add(&mut f, ROOT, name, file(b"x"));
        assert!(invalid(&f).contains("invalid entry name"), "{name:?}");
    }

    // A size that disagrees with the chunks; an unnamed inode.
    let mut f = sample();
    let hosts = f.resolve("/etc/hosts").unwrap() as usize;
    if let InodeKind::File { size, .. } = &mut f.inodes[hosts].kind {
        *size += 1;
    }
    assert!(invalid(&f).contains("add up to"));
    let mut f = sample();
    f.inodes.push(file(b"orphan"));
    assert!(invalid(&f).contains("named by no directory"));
}

#[test]
fn decode_refuses_foreign_and_invalid_bytes() {
    assert!(matches!(Flist::decode(b"nope"), Err(FlistError::Decode(_))));
    let mut bytes = sample().encode().unwrap();
    bytes[8] = 9; // format 9
    let err = Flist::decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("format 9"), "{err}");

    let mut f = sample();
    link(&mut f, ROOT, "ghost", 99);
    let err = Flist::decode(&f.encode().unwrap()).unwrap_err();
    assert!(matches!(err, FlistError::Invalid(_)), "{err}");
}

proptest! {
    /// Hostile bytes never panic the decoder, whether they are random or a
    /// valid flist with bytes flipped.
    #[test]
    fn decode_never_panics(
        junk in proptest::collection::vec(any::<u8>(), 0..512),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let _ = Flist::decode(&junk);
        let mut bytes = sample().encode().unwrap();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x | 1;
        }
        let _ = Flist::decode(&bytes);
    }
}
