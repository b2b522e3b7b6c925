//! Tests with real FUSE and overlayfs mounts (they need root, `/dev/fuse`
//! and overlayfs, and fail with a clear message without them). Every file
//! system operation on a mount runs under a timeout, and every mount is
//! unmounted on drop, so a broken mount fails a test instead of hanging it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Barrier, Mutex};

use stratus_flist::{ImageConfig, Inode, InodeKind, ROOT};

use super::*;

const K: usize = 1024;
const BIG_CHUNK: usize = 256 * K;
const BIG_CHUNKS: usize = 8;

/// Runs `f` on another thread and fails the test if it takes longer than
/// 60 s (a dead FUSE mount blocks its callers forever).
fn timed<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: no result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: timed out after 60 s (a hung FUSE mount?)")
        }
    }
}

fn require_fuse() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "stratus-mount tests mount file systems and must run as root"
    );
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: load the fuse module (modprobe fuse)"
    );
}

fn require_overlay() {
    require_fuse();
    let fss = fs::read_to_string("/proc/filesystems").unwrap();
    assert!(
        fss.contains("overlay"),
        "overlayfs is not available in this kernel (modprobe overlay)"
    );
}

fn is_mount_point(path: &Path) -> bool {
    let path = path.canonicalize().unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

/// Deterministic pseudo-random bytes.
fn bytes_of(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn chunk_of(bytes: &[u8]) -> FileChunk {
    FileChunk {
        id: *blake3::keyed_hash(&[42; 32], bytes).as_bytes(),
        hash: *blake3::hash(bytes).as_bytes(),
        len: bytes.len() as u32,
    }
}

/// An in-memory chunk source that records what it is asked and can serve
/// wrong bytes for chosen chunks.
#[derive(Default)]
struct MemSource {
    chunks: HashMap<[u8; 32], Vec<u8>>,
    corrupt: Mutex<HashSet<[u8; 32]>>,
    /// Corrupt only the first answer for these.
    corrupt_once: Mutex<HashSet<[u8; 32]>>,
    fetched: Mutex<Vec<[u8; 32]>>,
}

impl MemSource {
    fn fetched(&self) -> Vec<[u8; 32]> {
        self.fetched.lock().unwrap().clone()
    }
}

impl ChunkSource for MemSource {
    fn fetch(&self, chunk: &FileChunk) -> Result<Vec<u8>, SourceError> {
        self.fetched.lock().unwrap().push(chunk.hash);
        let mut bytes = self
            .chunks
            .get(&chunk.hash)
            .cloned()
            .ok_or(SourceError::NotFound)?;
        let once = self.corrupt_once.lock().unwrap().remove(&chunk.hash);
        if once || self.corrupt.lock().unwrap().contains(&chunk.hash) {
            if let Some(b) = bytes.first_mut() {
                *b ^= 1;
            }
        }
        Ok(bytes)
    }
}

/// Builds a test flist and the source holding its chunks.
struct Image {
    flist: Flist,
    source: MemSource,
    /// Path → expected contents of every file.
    contents: BTreeMap<String, Vec<u8>>,
}

impl Image {
    fn new() -> Image {
        Image {
            flist: Flist::new(ImageConfig::default()),
            source: MemSource::default(),
            contents: BTreeMap::new(),
        }
    }

    fn add(&mut self, parent: u32, name: &str, inode: Inode) -> u32 {
        let ino = self.flist.inodes.len() as u32;
        self.flist.inodes.push(inode);
        self.link(parent, name, ino);
        ino
    }

    fn link(&mut self, parent: u32, name: &str, ino: u32) {
        match &mut self.flist.inodes[parent as usize].kind {
            InodeKind::Dir { entries } => {
                entries.insert(serde_bytes_buf(name), ino);
            }
            _ => panic!("not a dir"),
        }
    }

    fn node(kind: InodeKind, mode: u32, uid: u32) -> Inode {
        Inode {
            kind,
            mode,
            uid,
            gid: uid,
            mtime: 1_700_000_000,
            xattrs: BTreeMap::new(),
        }
    }

    fn dir(&mut self, parent: u32, name: &str, mode: u32, uid: u32) -> u32 {
        let mut d = Inode::dir(mode);
        d.uid = uid;
        d.gid = uid;
        d.mtime = 1_700_000_000;
        self.add(parent, name, d)
    }

    /// A file of `data` cut into chunks of the given lengths (the rest in
    /// one last chunk).
    fn file(&mut self, path: &str, parent: u32, data: Vec<u8>, cuts: &[usize], mode: u32) -> u32 {
        let mut chunks = Vec::new();
        let mut at = 0;
        for &len in cuts.iter().chain(std::iter::once(&usize::MAX)) {
            if at >= data.len() {
                break;
            }
            let end = at.saturating_add(len).min(data.len());
            let piece = &data[at..end];
            let c = chunk_of(piece);
            self.source.chunks.insert(c.hash, piece.to_vec());
            chunks.push(c);
            at = end;
        }
        let name = path.rsplit('/').next().unwrap();
        let size = data.len() as u64;
        self.contents.insert(path.to_owned(), data);
        self.add(
            parent,
            name,
            Image::node(InodeKind::File { size, chunks }, mode, 0),
        )
    }

    fn chunks_of(&self, path: &str) -> Vec<FileChunk> {
        let ino = self.flist.resolve(path).unwrap();
        match &self.flist.inodes[ino as usize].kind {
            InodeKind::File { chunks, .. } => chunks.clone(),
            _ => panic!("not a file"),
        }
    }
}

fn serde_bytes_buf(name: &str) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(name.as_bytes().to_vec())
}

/// The test image: directories, multi-chunk files, an empty file, a
/// symlink, a hard link, a fifo, a character device, an xattr, a set-uid
/// file, files and a directory owned by uid/gid 1000.
fn image() -> Image {
    let mut im = Image::new();
    let etc = im.dir(ROOT, "etc", 0o755, 0);
    let host = im.file("etc/hostname", etc, b"stratus\n".to_vec(), &[], 0o644);
    im.flist.inodes[host as usize].xattrs.insert(
        "user.origin".into(),
        serde_bytes::ByteBuf::from(b"image".to_vec()),
    );
    im.file("etc/shadow", etc, b"root:*:1::::::\n".to_vec(), &[], 0o600);
    let bin = im.dir(ROOT, "bin", 0o755, 0);
    let big = im.file(
        "bin/big",
        bin,
        bytes_of("big", BIG_CHUNK * BIG_CHUNKS),
        &[BIG_CHUNK; BIG_CHUNKS - 1],
        0o755,
    );
    im.link(bin, "big-link", big);
    im.contents
        .insert("bin/big-link".into(), im.contents["bin/big"].clone());
    im.file("bin/su", bin, bytes_of("su", 3000), &[], 0o4755);
    let home = im.dir(ROOT, "home", 0o755, 0);
    let user = im.dir(home, "user", 0o750, 1000);
    let notes = im.file(
        "home/user/notes",
        user,
        bytes_of("notes", 9000),
        &[1000, 7, 5000],
        0o640,
    );
    im.flist.inodes[notes as usize].uid = 1000;
    im.flist.inodes[notes as usize].gid = 1000;
    im.file("empty", ROOT, Vec::new(), &[], 0o644);
    im.add(
        ROOT,
        "sh",
        Image::node(
            InodeKind::Symlink {
                target: serde_bytes::ByteBuf::from(b"bin/su".to_vec()),
            },
            0o777,
            0,
        ),
    );
    im.add(ROOT, "fifo", Image::node(InodeKind::Fifo, 0o644, 0));
    im.add(
        ROOT,
        "null",
        Image::node(InodeKind::CharDevice { major: 1, minor: 3 }, 0o666, 0),
    );
    im.flist.validate().unwrap();
    im
}

/// A mount of the test image over a cache in a temporary directory. Field
/// order is drop order: unmount first, then remove the directories.
struct Fixture {
    mounted: Mounted,
    source: Arc<MemSource>,
    cache: Arc<ChunkCache>,
    contents: BTreeMap<String, Vec<u8>>,
    flist: Arc<Flist>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn path(&self, p: &str) -> PathBuf {
        self.mounted.mountpoint().join(p)
    }
}

fn fixture_with(im: Image, cache_limit: u64, opts: MountOptions) -> Fixture {
    require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let cache = Arc::new(ChunkCache::open(&dir.path().join("cache"), cache_limit).unwrap());
    let source = Arc::new(im.source);
    let flist = Arc::new(im.flist);
    let mounted = mount(flist.clone(), source.clone(), cache.clone(), &mnt, opts).unwrap();
    Fixture {
        mounted,
        source,
        cache,
        contents: im.contents,
        flist,
        _dir: dir,
    }
}

fn fixture() -> Fixture {
    fixture_with(image(), 64 << 20, MountOptions::default())
}

fn read_at(path: PathBuf, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    timed("read_at", move || {
        let f = fs::File::open(path)?;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    })
}

fn read_all(path: PathBuf) -> io::Result<Vec<u8>> {
    timed("read", move || fs::read(path))
}

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

    // Hard links: one inode, two names.
    let (a, b) = (fx.path("bin/big"), fx.path("bin/big-link"));
    let (ma, mb) = timed("stat", move || {
        (fs::metadata(a).unwrap(), fs::metadata(b).unwrap())
    });
    assert_eq!((ma.ino(), ma.nlink()), (mb.ino(), 2));
    // Root: `.`, its name-less self and three subdirectories' `..`.
    assert_eq!(fs::metadata(&root).unwrap().nlink(), 5);

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
    let r = root.clone();
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

    // statfs: read-only, sized by the flist.
    let r = root.clone();
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

    let mnt = fx.mounted.mountpoint().to_path_buf();
    fx.mounted.unmount().unwrap();
    assert!(!is_mount_point(&mnt));
}

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

// The fetcher on its own: single flight and the retry.

struct SlowSource {
    inner: MemSource,
    calls: AtomicUsize,
    release: Mutex<mpsc::Receiver<()>>,
}

impl ChunkSource for SlowSource {
    fn fetch(&self, chunk: &FileChunk) -> Result<Vec<u8>, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.lock().unwrap().recv();
        self.inner.fetch(chunk)
    }
}

#[test]
fn concurrent_reads_of_a_missing_chunk_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
    let data = bytes_of("flight", 5000);
    let chunk = chunk_of(&data);
    let mut inner = MemSource::default();
    inner.chunks.insert(chunk.hash, data.clone());
    let (tx, rx) = mpsc::channel();
    let source = Arc::new(SlowSource {
        inner,
        calls: AtomicUsize::new(0),
        release: Mutex::new(rx),
    });
    let fetcher = Arc::new(fetch::Fetcher::new(source.clone(), cache, 0));
    let n = 6;
    let ready = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (f, r) = (fetcher.clone(), ready.clone());
            std::thread::spawn(move || {
                r.wait();
                f.get(&chunk, false)
            })
        })
        .collect();
    ready.wait();
    // The first caller is inside the source; give the others time to pile
    // up behind it (more overlap, never a false pass: a second source call
    // at any time fails the test).
    while source.calls.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(100));
    tx.send(()).unwrap();
    drop(tx);
    for t in threads {
        assert_eq!(&*t.join().unwrap().unwrap(), &data[..]);
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    assert_eq!(fetcher.counters.fetched_chunks.load(Ordering::SeqCst), 1);
}

#[test]
fn a_wrong_answer_is_retried_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
    let data = bytes_of("retry", 3000);
    let chunk = chunk_of(&data);
    let mut s = MemSource::default();
    s.chunks.insert(chunk.hash, data.clone());
    s.corrupt_once.lock().unwrap().insert(chunk.hash);
    let source = Arc::new(s);
    let fetcher = fetch::Fetcher::new(source.clone(), cache.clone(), 1 << 20);
    assert_eq!(&*fetcher.get(&chunk, true).unwrap(), &data[..]);
    assert_eq!(fetcher.counters.refused.load(Ordering::SeqCst), 1);
    assert_eq!(source.fetched().len(), 2);
    assert!(cache.contains(&chunk.hash));
    // Served from memory now.
    fetcher.get(&chunk, true).unwrap();
    assert_eq!(fetcher.counters.memory_hits.load(Ordering::SeqCst), 1);
    // Two wrong answers: refused.
    let other = bytes_of("other", 100);
    let oc = chunk_of(&other);
    let mut s = MemSource::default();
    s.chunks.insert(oc.hash, other);
    s.corrupt.lock().unwrap().insert(oc.hash);
    let fetcher = fetch::Fetcher::new(Arc::new(s), cache.clone(), 1 << 20);
    assert_eq!(fetcher.get(&oc, true).unwrap_err(), fetch::Failure::Refused);
    assert!(!cache.contains(&oc.hash));
}
