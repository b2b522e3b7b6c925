#![allow(clippy::unwrap_used)]
use super::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

#[test]
fn tar_round_trip_keeps_modes_owners_times_and_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), b"alpha").unwrap();
    std::fs::write(src.join("sub/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        src.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("sub/deeper"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::symlink("../a.txt", src.join("sub/link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs-link")).unwrap();
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    // A time of its own, so an unpack that does not restore it shows.
    set_mtime(&src.join("fifo"), 2_000_000).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("sub/deeper/big.bin"), &big).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o711)).unwrap();
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        std::os::unix::fs::chown(src.join("a.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(&src, Some(999), Some(999)).unwrap();
    }
    // A socket is skipped, not an error.
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    File::open(src.join("sub"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();

    let tar = tmp.path().join("v.tar");
    let hash = pack(&src, &tar, None).unwrap();
    assert_eq!(
        hash,
        blake3::hash(&std::fs::read(&tar).unwrap())
            .to_hex()
            .to_string()
    );
    // Reproducible: the same tree gives the same archive.
    assert_eq!(
        pack(&src, &tmp.path().join("again.tar"), None).unwrap(),
        hash
    );

    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(&tar, &dst, None).unwrap();
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(dst.join("sub/deeper/big.bin")).unwrap(), big);
    let mode = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("sub/run.sh"), 0o750);
    assert_eq!(mode("sub/deeper"), 0o700);
    assert_eq!(std::fs::metadata(&dst).unwrap().mode() & 0o7777, 0o711);
    assert_eq!(
        std::fs::read_link(dst.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
    assert_eq!(
        std::fs::read_link(dst.join("abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    let fifo = std::fs::symlink_metadata(dst.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mtime(), 2_000_000);
    assert!(!dst.join("sock").exists());
    assert_eq!(
        std::fs::metadata(dst.join("sub")).unwrap().mtime(),
        1_000_000,
        "folder times are restored after their contents"
    );
    if root {
        let m = std::fs::metadata(dst.join("a.txt")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        let m = std::fs::metadata(&dst).unwrap();
        assert_eq!((m.uid(), m.gid()), (999, 999));
    }
    // The unpacked tree archives to the very same bytes (every time in
    // the archive is restored; a FIFO's once was not, which showed only
    // when the unpack ran in a later second than the mkfifo).
    drop(_sock);
    std::fs::remove_file(src.join("sock")).unwrap();
    assert_eq!(
        pack(&dst, &tmp.path().join("back.tar"), None).unwrap(),
        hash
    );
}

#[test]
fn unpack_skips_devices_and_paths_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("evil.tar");
    let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Block);
    h.set_device_major(8).unwrap();
    h.set_device_minor(0).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    b.append_data(&mut h, "sda", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(3);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    // `append_data` refuses "..", so write the name by hand.
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    b.append(&h, &b"bad"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "ok", &b"ok"[..]).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(&tar_path, &dst, None).unwrap();
    assert!(!dst.join("sda").exists());
    assert!(!tmp.path().join("escape").exists());
    assert_eq!(std::fs::read(dst.join("ok")).unwrap(), b"ok");
}

#[test]
fn unpack_drops_setuid_and_setgid_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("suid.tar");
    let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
    for (name, mode) in [
        ("suid-sh", 0o4755),
        ("sgid-dir/", 0o2775),
        ("sticky/", 0o1777),
    ] {
        let mut h = tar::Header::new_gnu();
        let dir = name.ends_with('/');
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(mode);
        h.set_size(if dir { 0 } else { 2 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, &b"#!"[..usize::from(!dir) * 2])
            .unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_mode(0o6644);
    h.set_size(0);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "fifo", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o6755);
    h.set_size(0);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, ".", std::io::empty()).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(&tar_path, &dst, None).unwrap();
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&dst.join("suid-sh")), 0o755);
    assert_eq!(mode(&dst.join("sgid-dir")), 0o775);
    assert_eq!(mode(&dst.join("sticky")), 0o1777, "the sticky bit is kept");
    assert_eq!(mode(&dst.join("fifo")), 0o644);
    assert_eq!(mode(&dst), 0o755);
}

#[test]
fn unpack_never_writes_through_a_symlink_it_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let tar_path = tmp.path().join("evil.tar");
    let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "evil", &outside).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "evil/planted", &b"bad"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "hard", "../outside/x").ok();
    b.into_inner().unwrap().sync_all().unwrap();
    std::fs::write(outside.join("x"), b"host").unwrap();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    // Refused or skipped; either way nothing lands outside.
    let _ = unpack(&tar_path, &dst, None);
    assert!(!outside.join("planted").exists());
    assert!(!dst.join("hard").exists());
}

/// A container swaps names in its volume while the agent saves it: a
/// regular file and a folder are replaced, again and again, by symlinks to
/// a host secret and a host folder. The archive must never hold the host's
/// bytes (the symlinks may be archived, as symlinks).
#[test]
fn pack_never_follows_a_symlink_swapped_in_during_the_save() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("dir")).unwrap();
    std::fs::write(host.join("shadow"), b"HOST-SECRET-4b1d").unwrap();
    std::fs::write(host.join("dir/key"), b"HOST-SECRET-4b1d").unwrap();
    let vol = tmp.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("file"), b"harmless").unwrap();
    std::fs::create_dir(vol.join("sub")).unwrap();
    std::fs::write(vol.join("sub/key"), b"harmless").unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swapper = {
        let (vol, host, stop) = (vol.clone(), host.clone(), stop.clone());
        std::thread::spawn(move || {
            // Prepared once; each swap is one atomic rename.
            let stage = vol.join(".stage");
            std::fs::create_dir(&stage).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _ = std::os::unix::fs::symlink(host.join("shadow"), stage.join("l"));
                let _ = std::fs::rename(stage.join("l"), vol.join("file"));
                let _ = std::fs::write(stage.join("f"), b"harmless");
                let _ = std::fs::rename(stage.join("f"), vol.join("file"));
                let _ = std::fs::rename(vol.join("sub"), stage.join("sub"));
                let _ = std::os::unix::fs::symlink(host.join("dir"), vol.join("sub"));
                let _ = std::fs::remove_file(vol.join("sub"));
                let _ = std::fs::rename(stage.join("sub"), vol.join("sub"));
            }
        })
    };
    let out = tmp.path().join("v.tar");
    for _ in 0..500 {
        // A save may fail on an entry that vanished; it must never leak.
        if pack(&vol, &out, None).is_ok() {
            let bytes = std::fs::read(&out).unwrap();
            assert!(
                !bytes.windows(16).any(|w| w == b"HOST-SECRET-4b1d"),
                "the archive holds a host file"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
}

#[test]
fn pack_stores_device_nodes_and_sockets_never() {
    let tmp = tempfile::tempdir().unwrap();
    let vol = tmp.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(vol.join("sock")).unwrap();
    // Only root can make a device node; /dev/null's numbers are harmless.
    let dev = nix::sys::stat::mknod(
        &vol.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    );
    std::fs::write(vol.join("plain"), b"x").unwrap();
    let out = tmp.path().join("v.tar");
    pack(&vol, &out, None).unwrap();
    let mut a = tar::Archive::new(File::open(&out).unwrap());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, [".", "plain"], "mknod: {dev:?}");
}

/// In a user namespace an archive holds the container's owners: a volume
/// saved on one node (host ids `first + uid`) restores on a node with
/// another range as the same container owners, and a host id outside the
/// range (a file the agent made as host root) is archived as `nobody`, so
/// it can never be restored as container — or host — root.
#[test]
fn owners_are_archived_as_the_container_sees_them() {
    use std::os::unix::fs::{chown, lchown};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test changes file owners: run it as root (scripts/test does)"
    );
    let (here, there) = (IdMap::new(1_000_000_000), IdMap::new(2_000_000_000));
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("www")).unwrap();
    std::fs::write(src.join("www/index.html"), b"hi").unwrap();
    std::fs::write(src.join("hosts-root"), b"made by the host").unwrap();
    std::os::unix::fs::symlink("www/index.html", src.join("link")).unwrap();
    chown(&src, Some(here.first), Some(here.first)).unwrap();
    chown(
        src.join("www"),
        Some(here.first + 33),
        Some(here.first + 33),
    )
    .unwrap();
    chown(
        src.join("www/index.html"),
        Some(here.first + 33),
        Some(here.first + 34),
    )
    .unwrap();
    lchown(src.join("link"), Some(here.first + 7), Some(here.first + 7)).unwrap();
    chown(src.join("hosts-root"), Some(0), Some(0)).unwrap();

    let tar = tmp.path().join("v.tar");
    pack(&src, &tar, Some(here)).unwrap();
    let mut archived = std::collections::BTreeMap::new();
    for e in tar::Archive::new(File::open(&tar).unwrap())
        .entries()
        .unwrap()
    {
        let e = e.unwrap();
        let h = e.header();
        archived.insert(
            e.path().unwrap().display().to_string(),
            (h.uid().unwrap(), h.gid().unwrap()),
        );
    }
    assert_eq!(archived["."], (0, 0));
    assert_eq!(archived["www"], (33, 33));
    assert_eq!(archived["www/index.html"], (33, 34));
    assert_eq!(archived["link"], (7, 7));
    assert_eq!(archived["hosts-root"], (65_534, 65_534));

    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(&tar, &dst, Some(there)).unwrap();
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    let t = there.first;
    assert_eq!(owner(&dst), (t, t));
    assert_eq!(owner(&dst.join("www")), (t + 33, t + 33));
    assert_eq!(owner(&dst.join("www/index.html")), (t + 33, t + 34));
    assert_eq!(owner(&dst.join("link")), (t + 7, t + 7));
    assert_eq!(owner(&dst.join("hosts-root")), (t + 65_534, t + 65_534));
    // And back: the same archive, byte for byte.
    let again = tmp.path().join("again.tar");
    assert_eq!(
        pack(&dst, &again, Some(there)).unwrap(),
        blake3::hash(&std::fs::read(&tar).unwrap())
            .to_hex()
            .to_string()
    );
}
