use super::*;

#[test]
fn a_read_fetches_only_the_covering_chunk_once() {
    let fx = fixture();
    let chunks = fx.source.chunks.len();
    assert!(chunks > BIG_CHUNKS);
    let big = fx.path("bin/big");
    let big_chunks = {
        let im = image();
        im.chunks_of("bin/big")
    };

    // One byte in the middle of chunk 3 (well inside it, so the kernel's
    // read-ahead stays in the chunk too).
    let off = (3 * BIG_CHUNK + 1000) as u64;
    let got = read_at(big.clone(), off, 1).unwrap();
    assert_eq!(got, [fx.contents["bin/big"][off as usize]]);
    let s = fx.mounted.stats();
    assert_eq!(s.fetched_chunks, 1, "{s:?}");
    assert_eq!(s.fetched_bytes, BIG_CHUNK as u64);
    assert_eq!(fx.source.fetched(), vec![big_chunks[3].hash]);
    assert!(fx.cache.contains(&big_chunks[3].hash));
    assert!(!fx.cache.contains(&big_chunks[2].hash));
    assert!(!fx.cache.contains(&big_chunks[4].hash));
    assert_eq!(fx.mounted.access_log(), vec![big_chunks[3].hash]);

    // Again, and elsewhere in the same chunk: no new fetch.
    let got = read_at(big.clone(), off, 1).unwrap();
    assert_eq!(got, [fx.contents["bin/big"][off as usize]]);
    let off2 = (4 * BIG_CHUNK - 10) as u64;
    let got = read_at(big, off2, 10).unwrap();
    assert_eq!(
        got,
        fx.contents["bin/big"][off2 as usize..off2 as usize + 10]
    );
    assert_eq!(fx.mounted.stats().fetched_chunks, 1);
    assert_eq!(fx.source.fetched().len(), 1);
}

#[test]
fn wrong_bytes_from_the_source_fail_the_read_and_are_never_served() {
    let fx = fixture();
    let big_chunks = image().chunks_of("bin/big");
    fx.source.corrupt.lock().unwrap().insert(big_chunks[2].hash);

    let off = (2 * BIG_CHUNK + 5) as u64;
    let err = read_at(fx.path("bin/big"), off, 10).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(Errno::EIO as i32), "{err}");
    let s = fx.mounted.stats();
    // Every failed read asked the source twice (the kernel may retry a
    // failed read itself).
    assert!(s.read_errors >= 1, "{s:?}");
    assert_eq!(s.refused, 2 * s.read_errors, "{s:?}");
    assert_eq!(s.fetched_chunks, 0);
    assert!(!fx.cache.contains(&big_chunks[2].hash));

    // The rest is fine: another chunk of the same file, another file.
    let got = read_at(fx.path("bin/big"), 10, 10).unwrap();
    assert_eq!(got, fx.contents["bin/big"][10..20]);
    let notes = read_all(fx.path("home/user/notes")).unwrap();
    assert!(notes == fx.contents["home/user/notes"]);

    // The source heals: the chunk reads correctly.
    fx.source.corrupt.lock().unwrap().clear();
    let got = read_at(fx.path("bin/big"), off, 10).unwrap();
    assert_eq!(got, fx.contents["bin/big"][off as usize..off as usize + 10]);
}

#[test]
fn a_corrupted_cache_file_is_detected_and_fetched_again() {
    let fx = fixture();
    let notes = read_all(fx.path("home/user/notes")).unwrap();
    assert!(notes == fx.contents["home/user/notes"]);
    assert_eq!(fx.mounted.stats().fetched_chunks, 4);
    let cache = fx.cache.clone();
    let source = fx.source.clone();
    let flist = fx.flist.clone();
    let want = fx.contents["home/user/notes"].clone();
    let chunks = image().chunks_of("home/user/notes");
    let dir = fx._dir.path().to_path_buf();
    // Unmount (the kernel's page cache goes with it), keep the directory.
    let Fixture {
        mounted, _dir: tmp, ..
    } = fx;
    mounted.unmount().unwrap();

    // Flip one byte of the cached copy of chunk 0.
    let file = cache.dir().join(hex::encode(chunks[0].hash));
    let mut bytes = fs::read(&file).unwrap();
    bytes[10] ^= 0x80;
    fs::write(&file, &bytes).unwrap();

    let mnt = dir.join("mnt");
    let mounted = mount(
        flist,
        source.clone(),
        cache.clone(),
        &mnt,
        MountOptions::default(),
    )
    .unwrap();
    let got = read_all(mnt.join("home/user/notes")).unwrap();
    assert!(got == want, "correct bytes after refetch");
    let s = mounted.stats();
    assert_eq!(cache.stats().corrupt, 1);
    assert_eq!(s.fetched_chunks, 1, "only the corrupted chunk: {s:?}");
    assert_eq!(s.cache_hits, 3);
    assert_eq!(source.fetched().last(), Some(&chunks[0].hash));
    // The cache holds the good bytes again.
    assert!(chunks[0].verify(&fs::read(&file).unwrap()));
    mounted.unmount().unwrap();
    drop(tmp);
}

#[test]
fn the_cache_stays_under_its_limit() {
    let limit = (600 * K) as u64;
    let fx = fixture_with(image(), limit, MountOptions::default());
    let data = read_all(fx.path("bin/big")).unwrap();
    assert!(data == fx.contents["bin/big"]);
    let on_disk: u64 = fs::read_dir(fx.cache.dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= limit, "{on_disk} > {limit}");
    let cs = fx.cache.stats();
    assert!(cs.bytes <= limit);
    assert_eq!(cs.entries, 2, "two 256 KiB chunks fit in 600 KiB");
    assert!(cs.evicted >= 6, "{cs:?}");
}

#[test]
fn every_write_fails_with_erofs() {
    let fx = fixture();
    let root = fx.mounted.mountpoint().to_path_buf();
    let errors: Vec<(&str, Option<i32>)> = timed("writes", move || {
        let e = |r: io::Result<()>| r.err().and_then(|e| e.raw_os_error());
        vec![
            ("create", e(fs::File::create(root.join("new")).map(|_| ()))),
            (
                "open for write",
                e(fs::OpenOptions::new()
                    .write(true)
                    .open(root.join("etc/hostname"))
                    .map(|_| ())),
            ),
            ("unlink", e(fs::remove_file(root.join("etc/hostname")))),
            ("mkdir", e(fs::create_dir(root.join("newdir")))),
            ("rmdir", e(fs::remove_dir(root.join("home/user")))),
            (
                "rename",
                e(fs::rename(root.join("etc/hostname"), root.join("etc/h2"))),
            ),
            (
                "chmod",
                e(fs::set_permissions(
                    root.join("etc/hostname"),
                    fs::Permissions::from_mode(0o777),
                )),
            ),
            (
                "symlink",
                e(std::os::unix::fs::symlink("x", root.join("newlink"))),
            ),
            (
                "link",
                e(fs::hard_link(root.join("etc/hostname"), root.join("h3"))),
            ),
            (
                "setxattr",
                e(xattr::set(root.join("etc/hostname"), "user.x", b"1")),
            ),
        ]
    });
    for (op, errno) in errors {
        assert_eq!(errno, Some(Errno::EROFS as i32), "{op}");
    }
    let data = read_all(fx.path("etc/hostname")).unwrap();
    assert_eq!(data, b"stratus\n");
}

#[test]
fn the_access_log_prefetches_the_next_start() {
    // First start: read a few things, over one cache.
    let fx = fixture();
    read_all(fx.path("home/user/notes")).unwrap();
    read_at(fx.path("bin/big"), (5 * BIG_CHUNK + 7) as u64, 3).unwrap();
    read_all(fx.path("etc/hostname")).unwrap();
    let log = fx.mounted.access_log();
    let notes = image().chunks_of("home/user/notes");
    let big = image().chunks_of("bin/big");
    let hostname = image().chunks_of("etc/hostname");
    let mut want: Vec<[u8; 32]> = notes.iter().map(|c| c.hash).collect();
    want.push(big[5].hash);
    want.push(hostname[0].hash);
    assert_eq!(log, want);
    drop(fx);

    // Second start over an empty cache, with the log as prefetch list.
    let opts = MountOptions {
        prefetch: log.clone(),
        ..MountOptions::default()
    };
    let fx = fixture_with(image(), 64 << 20, opts);
    assert!(fx.mounted.wait_prefetch(Duration::from_secs(30)));
    let s = fx.mounted.stats();
    assert!(s.prefetch_done);
    assert_eq!(s.prefetched_chunks, log.len() as u64, "{s:?}");
    assert_eq!(s.fetched_chunks, log.len() as u64);
    for h in &log {
        assert!(fx.cache.contains(h));
    }
    // The reads of the first start now fetch nothing.
    read_all(fx.path("home/user/notes")).unwrap();
    read_at(fx.path("bin/big"), (5 * BIG_CHUNK + 7) as u64, 3).unwrap();
    read_all(fx.path("etc/hostname")).unwrap();
    let s2 = fx.mounted.stats();
    assert_eq!(s2.fetched_chunks, s.fetched_chunks, "{s2:?}");
    assert_eq!(s2.cache_hits, log.len() as u64);
    // Nothing else was fetched: not another chunk of bin/big.
    assert!(!fx.cache.contains(&big[4].hash));
}

#[test]
fn a_full_fetch_brings_every_chunk_once_and_refuses_what_cannot_be_had() {
    let fx = fixture();
    read_all(fx.path("home/user/notes")).unwrap();
    let before = fx.source.fetched().len();
    let full = fx.mounted.full_fetch(&fx.flist);
    let distinct: HashSet<[u8; 32]> = fx.flist.chunks().map(|c| c.hash).collect();
    let local = distinct.iter().filter(|h| fx.cache.contains(h)).count();
    assert!(local > 0);
    let r = full.run(4).unwrap();
    assert_eq!(r.chunks, distinct.len() as u64);
    assert_eq!(r.bytes, full.bytes());
    assert!(r.fetched_bytes < r.bytes, "the notes were local: {r:?}");
    for h in &distinct {
        assert!(fx.cache.contains(h));
    }
    // Each missing chunk was asked once; a second run fetches nothing.
    assert_eq!(fx.source.fetched().len() - before, distinct.len() - local);
    let again = full.run(4).unwrap();
    assert_eq!(again.fetched_bytes, 0);
    // Reads are now served without the source.
    let n = fx.source.fetched().len();
    for (path, want) in &fx.contents {
        assert!(read_all(fx.path(path)).unwrap() == *want, "{path}");
    }
    assert_eq!(fx.source.fetched().len(), n);

    // A chunk the source only corrupts fails the whole fetch, and is not kept.
    let fx = fixture();
    let big = image().chunks_of("bin/big");
    fx.source.corrupt.lock().unwrap().insert(big[1].hash);
    let err = fx.mounted.full_fetch(&fx.flist).run(2).unwrap_err();
    assert!(
        matches!(err, MountError::FullFetch { failed: 1, .. }),
        "{err}"
    );
    assert!(!fx.cache.contains(&big[1].hash));

    // An image larger than the cache is refused up front.
    let fx = fixture_with(image(), 1024, MountOptions::default());
    let err = fx.mounted.full_fetch(&fx.flist).run(2).unwrap_err();
    assert!(matches!(err, MountError::TooLargeForCache { .. }), "{err}");
    assert!(fx.source.fetched().is_empty());
}

#[test]
fn prefetch_plan_keeps_order_drops_unknown_and_repeats_and_stops_at_budget() {
    let im = image();
    let big = im.chunks_of("bin/big");
    let notes = im.chunks_of("home/user/notes");
    let hashes = vec![
        notes[1].hash,
        [0xee; 32],
        big[0].hash,
        notes[1].hash,
        notes[0].hash,
        big[1].hash,
    ];
    let plan = prefetch_plan(&im.flist, &hashes, 10 << 20);
    let got: Vec<_> = plan.iter().map(|c| c.hash).collect();
    assert_eq!(
        got,
        vec![notes[1].hash, big[0].hash, notes[0].hash, big[1].hash]
    );
    // 7 + 256 KiB + 1000 fit in 300 KiB; the second big chunk does not.
    let plan = prefetch_plan(&im.flist, &hashes, (300 * K) as u64);
    assert_eq!(plan.len(), 3);
}
