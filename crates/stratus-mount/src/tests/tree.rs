use super::*;

#[test]
fn the_tree_reads_back_as_the_flist_describes_it() {
    let fx = fixture();
    let root = fx.mounted.mountpoint().to_path_buf();
    assert!(is_mount_point(&root));

    // Names.
    let r = root.clone();
    let mut names: Vec<String> = timed("readdir", move || {
        fs::read_dir(r)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    });
    names.sort();
    assert_eq!(names, ["bin", "empty", "etc", "fifo", "home", "null", "sh"]);

    check_every_inode(&fx);
    check_links_and_ranges(&fx, &root);
    check_xattrs_and_coreutils(&fx, &root);
    check_statfs_and_permissions(&fx, &root);

    let mnt = fx.mounted.mountpoint().to_path_buf();
    fx.mounted.unmount().unwrap();
    assert!(!is_mount_point(&mnt));
}

/// Every inode's attributes, by walking the flist.
fn check_every_inode(fx: &Fixture) {
    // Every inode's attributes, by walking the flist.
    let link_counts = fx.flist.link_counts();
    let mut stack = vec![(String::new(), ROOT)];
    while let Some((path, ino)) = stack.pop() {
        let inode = &fx.flist.inodes[ino as usize];
        let p = fx.path(&path);
        let meta = timed("lstat", move || fs::symlink_metadata(p)).unwrap();
        assert_eq!(meta.mode(), inode.type_bits() | inode.mode, "{path}");
        assert_eq!((meta.uid(), meta.gid()), (inode.uid, inode.gid), "{path}");
        assert_eq!(meta.nlink(), u64::from(link_counts[ino as usize]), "{path}");
        assert_eq!(meta.ino(), u64::from(ino) + 1, "{path}");
        assert_eq!(meta.mtime(), inode.mtime, "{path}");
        match &inode.kind {
            InodeKind::Dir { .. } => {
                let p = fx.path(&path);
                let mut seen: Vec<String> = timed("readdir", move || {
                    fs::read_dir(p)
                        .unwrap()
                        .map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect()
                });
                seen.sort();
                let want: Vec<String> = fx
                    .flist
                    .entries(ino)
                    .map(|(n, _)| String::from_utf8(n.to_vec()).unwrap())
                    .collect();
                assert_eq!(seen, want, "{path}");
                for (name, child) in fx.flist.entries(ino) {
                    let name = String::from_utf8(name.to_vec()).unwrap();
                    let child_path = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((child_path, child));
                }
            }
            InodeKind::File { size, .. } => {
                assert_eq!(meta.len(), *size, "{path}");
                assert_eq!(meta.blocks(), size.div_ceil(512), "{path}");
                let data = read_all(fx.path(&path)).unwrap();
                assert!(data == fx.contents[&path], "contents of {path}");
            }
            InodeKind::Symlink { target } => {
                let p = fx.path(&path);
                let t = timed("readlink", move || fs::read_link(p)).unwrap();
                assert_eq!(t.as_os_str().as_encoded_bytes(), target.as_slice());
                assert_eq!(meta.len(), target.len() as u64);
            }
            InodeKind::CharDevice { major, minor } => {
                assert!(std::os::unix::fs::FileTypeExt::is_char_device(
                    &meta.file_type()
                ));
                assert_eq!(
                    meta.rdev(),
                    nix::sys::stat::makedev(*major as u64, *minor as u64)
                );
            }
            InodeKind::Fifo => {
                assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
            }
            InodeKind::BlockDevice { .. } => unreachable!(),
        }
    }
}

/// Hard links, the root's link count and ranged reads.
fn check_links_and_ranges(fx: &Fixture, root: &Path) {
    // Hard links: one inode, two names.
    let (a, b) = (fx.path("bin/big"), fx.path("bin/big-link"));
    let (ma, mb) = timed("stat", move || {
        (fs::metadata(a).unwrap(), fs::metadata(b).unwrap())
    });
    assert_eq!((ma.ino(), ma.nlink()), (mb.ino(), 2));
    // Root: `.`, its name-less self and three subdirectories' `..`.
    assert_eq!(fs::metadata(root).unwrap().nlink(), 5);

    // A range in the middle of a multi-chunk file, across a chunk boundary.
    let off = (3 * BIG_CHUNK - 100) as u64;
    let got = read_at(fx.path("bin/big"), off, 300).unwrap();
    assert_eq!(
        got,
        fx.contents["bin/big"][off as usize..off as usize + 300]
    );
    // Past the end: nothing.
    let end = (BIG_CHUNK * BIG_CHUNKS) as u64;
    assert!(read_at(fx.path("bin/big"), end + 10, 10)
        .unwrap()
        .is_empty());
    // A tail read is cut at the end.
    assert_eq!(read_at(fx.path("bin/big"), end - 5, 100).unwrap().len(), 5);
    // Seek + read through std.
    let p = fx.path("home/user/notes");
    let want = fx.contents["home/user/notes"][1003..1010].to_vec();
    let got = timed("seek", move || {
        let mut f = fs::File::open(p).unwrap();
        f.seek(SeekFrom::Start(1003)).unwrap();
        let mut buf = [0u8; 7];
        f.read_exact(&mut buf).unwrap();
        buf.to_vec()
    });
    assert_eq!(got, want);
}

/// Extended attributes, and what `ls` and `stat` show.
fn check_xattrs_and_coreutils(fx: &Fixture, root: &Path) {
    // Extended attributes.
    let p = fx.path("etc/hostname");
    let (value, names) = timed("xattr", move || {
        (
            xattr::get(&p, "user.origin").unwrap(),
            xattr::list(&p).unwrap().collect::<Vec<_>>(),
        )
    });
    assert_eq!(value.as_deref(), Some(&b"image"[..]));
    assert_eq!(names, vec![std::ffi::OsString::from("user.origin")]);
    let p = fx.path("etc/hostname");
    assert_eq!(
        timed("xattr", move || xattr::get(&p, "user.none")).unwrap(),
        None
    );

    // ls -l and stat(1) agree.
    let r = root.to_path_buf();
    let ls = timed("ls", move || {
        Command::new("ls")
            .arg("-ln")
            .arg(r.join("bin"))
            .output()
            .unwrap_or_else(|e| panic!("this test needs ls (coreutils): {e}"))
    });
    let ls: Vec<String> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode, links, uid, gid, size, name
            [f[0], f[1], f[2], f[3], f[4], f[f.len() - 1]].join(" ")
        })
        .collect();
    assert_eq!(
        ls,
        [
            "-rwxr-xr-x 2 0 0 2097152 big",
            "-rwxr-xr-x 2 0 0 2097152 big-link",
            "-rwsr-xr-x 1 0 0 3000 su",
        ]
    );
    let p = fx.path("home/user/notes");
    let st = timed("stat", move || {
        Command::new("stat")
            .args(["-c", "%a %u %g %s %h %F"])
            .arg(p)
            .output()
            .unwrap_or_else(|e| panic!("this test needs stat (coreutils): {e}"))
    });
    assert_eq!(
        String::from_utf8_lossy(&st.stdout).trim(),
        "640 1000 1000 9000 1 regular file"
    );
}

/// statfs, and modes enforced for other users.
fn check_statfs_and_permissions(fx: &Fixture, root: &Path) {
    // statfs: read-only, sized by the flist.
    let r = root.to_path_buf();
    let sfs = timed("statfs", move || nix::sys::statvfs::statvfs(&r).unwrap());
    assert!(sfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    assert_eq!(sfs.files(), fx.flist.inodes.len() as u64);

    // Other users get in (allow_other), and the modes are enforced
    // (default_permissions): uid 1000 reads its notes and the world-readable
    // hostname, not root's shadow.
    let as_user = |path: PathBuf| {
        timed("cat as uid 1000", move || {
            Command::new("cat")
                .arg(path)
                .uid(1000)
                .gid(1000)
                .output()
                .unwrap_or_else(|e| panic!("this test needs cat (coreutils): {e}"))
        })
    };
    let out = as_user(fx.path("etc/hostname"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"stratus\n");
    let out = as_user(fx.path("home/user/notes"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, fx.contents["home/user/notes"]);
    let out = as_user(fx.path("etc/shadow"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
}
