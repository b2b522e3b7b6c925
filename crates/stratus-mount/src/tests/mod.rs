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

mod fetcher;
mod overlay;
mod reads;
mod tree;
