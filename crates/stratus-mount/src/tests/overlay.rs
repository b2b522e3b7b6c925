use super::*;

#[test]
fn overlays_write_to_their_upper_and_leave_the_flist_alone() {
    require_overlay();
    let fx = fixture();
    let lower = fx.mounted.mountpoint().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str| {
        let p = dir.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    };
    let (u1, w1, t1) = (mk("upper1"), mk("work1"), mk("merged1"));
    let (u2, w2, t2) = (mk("upper2"), mk("work2"), mk("merged2"));
    let o1 = Overlay::mount(&lower, &u1, &w1, &t1).unwrap();
    let o2 = Overlay::mount(&lower, &u2, &w2, &t2).unwrap();
    assert!(is_mount_point(&t1) && is_mount_point(&t2));

    let (a, b) = (t1.clone(), t2.clone());
    timed("overlay writes", move || {
        // Reads go through to the flist.
        assert_eq!(fs::read(a.join("etc/hostname")).unwrap(), b"stratus\n");
        // A write lands in the upper layer.
        fs::write(a.join("etc/hostname"), b"changed\n").unwrap();
        fs::write(a.join("new-file"), b"new").unwrap();
        fs::remove_file(a.join("etc/shadow")).unwrap();
        fs::create_dir(b.join("only-in-2")).unwrap();
    });
    assert_eq!(fs::read(t1.join("etc/hostname")).unwrap(), b"changed\n");
    assert_eq!(fs::read(u1.join("etc/hostname")).unwrap(), b"changed\n");
    assert_eq!(fs::read(u1.join("new-file")).unwrap(), b"new");
    assert!(!t1.join("etc/shadow").exists());
    assert!(!t1.join("only-in-2").exists());
    // The lower is untouched, and so is the other overlay.
    let (l, b) = (lower.clone(), t2.clone());
    timed("lower and overlay 2", move || {
        assert_eq!(fs::read(l.join("etc/hostname")).unwrap(), b"stratus\n");
        assert!(l.join("etc/shadow").exists());
        assert!(!l.join("new-file").exists());
        assert_eq!(fs::read(b.join("etc/hostname")).unwrap(), b"stratus\n");
        assert!(b.join("etc/shadow").exists());
        assert!(!b.join("new-file").exists());
        assert!(b.join("only-in-2").is_dir());
    });
    // Copy-up kept owner and mode; a big file reads through whole.
    let meta = fs::metadata(t1.join("etc/hostname")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o644, 0));
    let p = t2.join("bin/big");
    let big = timed("read through overlay", move || fs::read(p)).unwrap();
    assert!(big == fx.contents["bin/big"]);

    o1.unmount().unwrap();
    assert!(!is_mount_point(&t1));
    drop(o2);
    assert!(!is_mount_point(&t2));
    // With the overlays gone, the flist mount unmounts normally.
    fx.mounted.unmount().unwrap();
    assert!(!is_mount_point(&lower));
}

#[test]
fn an_overlay_keeps_reading_after_its_lower_is_unmounted() {
    require_overlay();
    let fx = fixture();
    let lower = fx.mounted.mountpoint().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    for d in ["u", "w", "t"] {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let p = |d: &str| dir.path().join(d);
    let overlay = Overlay::mount(&lower, &p("u"), &p("w"), &p("t")).unwrap();
    // The overlay holds the flist file system (through a private clone of
    // the mount): unmounting takes the mount away, and the session keeps
    // serving the overlay.
    fx.mounted.unmount().unwrap();
    assert!(!is_mount_point(&lower));
    let t = p("t");
    let data = timed("read after detach", move || {
        fs::read(t.join("etc/hostname"))
    })
    .unwrap();
    assert_eq!(data, b"stratus\n");
    overlay.unmount().unwrap();
}

#[test]
fn mount_errors_are_typed_and_nothing_is_mounted() {
    require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ChunkCache::open(&dir.path().join("cache"), 1 << 20).unwrap());
    let im = image();
    let source: Arc<dyn ChunkSource> = Arc::new(im.source);
    let flist = Arc::new(im.flist);

    let missing = dir.path().join("missing");
    let err = mount(
        flist.clone(),
        source.clone(),
        cache.clone(),
        &missing,
        MountOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MountError::Mountpoint { .. }), "{err}");

    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = mount(
        flist.clone(),
        source.clone(),
        cache.clone(),
        &file,
        MountOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MountError::Mountpoint { .. }), "{err}");

    // A file whose size disagrees with its chunks: refused before mounting.
    let mut bad = (*flist).clone();
    let ino = bad.resolve("etc/hostname").unwrap();
    if let InodeKind::File { size, .. } = &mut bad.inodes[ino as usize].kind {
        *size += 1;
    }
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let err = mount(
        Arc::new(bad),
        source.clone(),
        cache.clone(),
        &mnt,
        MountOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MountError::InvalidFlist(_)), "{err}");
    assert!(!is_mount_point(&mnt));

    // A directory cycle: refused too.
    let mut cyclic = (*flist).clone();
    let home = cyclic.resolve("home").unwrap();
    let user = cyclic.resolve("home/user").unwrap();
    if let InodeKind::Dir { entries } = &mut cyclic.inodes[user as usize].kind {
        entries.insert(serde_bytes_buf("loop"), home);
    }
    let err = mount(
        Arc::new(cyclic),
        source,
        cache,
        &mnt,
        MountOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, MountError::InvalidFlist(_)), "{err}");
    assert!(!is_mount_point(&mnt));

    // Overlay with a missing upper: typed, nothing mounted.
    let err = Overlay::mount(&mnt, &dir.path().join("nope"), &mnt, &mnt).unwrap_err();
    assert!(matches!(err, MountError::Overlay { .. }), "{err}");
}
