//! The flist: an image's file tree as inodes, with file contents named by
//! chunks; its binary encoding and the checks that make a decoded flist safe
//! to mount.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_chunk::ChunkId;

use crate::FlistError;

/// Format version written by [`Flist::encode`].
pub const FLIST_FORMAT: u32 = 1;
/// Magic bytes at the start of an encoded flist.
pub const FLIST_MAGIC: &[u8; 8] = b"STRFLST\0";
/// The root directory's inode number.
pub const ROOT: u32 = 0;
/// Largest decoded flist accepted (bytes of the bincode body).
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// An image: how to run it and its file tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flist {
    /// Format version ([`FLIST_FORMAT`]).
    pub format: u32,
    /// The image's run configuration (from its OCI config).
    pub config: ImageConfig,
    /// Inodes; `inodes[ROOT]` is the root directory. A directory's entries
    /// name inode numbers (indexes here). Several entries may name the same
    /// non-directory inode (hard links); every directory but the root is
    /// named exactly once.
    pub inodes: Vec<Inode>,
}

/// The run configuration of an image (OCI image config `config` section).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User`: `name`, `uid`, `uid:gid` or `name:group` (empty: root).
    pub user: String,
    /// `ExposedPorts` keys, e.g. `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// Architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// OS (`linux`).
    pub os: String,
}

/// One file-system object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// What it is.
    pub kind: InodeKind,
    /// Permission bits, including set-uid, set-gid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes (name → value).
    pub xattrs: BTreeMap<String, serde_bytes::ByteBuf>,
}

/// The kind of an inode, with what only that kind has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InodeKind {
    /// A directory: entry name (bytes, no `/`, not `.` or `..`) → inode.
    Dir {
        /// Entries, sorted by name.
        entries: BTreeMap<serde_bytes::ByteBuf, u32>,
    },
    /// A regular file whose contents are `chunks` in order.
    File {
        /// Size in bytes (the sum of the chunk lengths).
        size: u64,
        /// The contents.
        chunks: Vec<FileChunk>,
    },
    /// A symbolic link.
    Symlink {
        /// Target, as bytes.
        target: serde_bytes::ByteBuf,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// One chunk of a file's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChunk {
    /// The chunk's id in the object store (keyed BLAKE3 under the tenant's
    /// scope key): what a replica looks up.
    pub id: [u8; 32],
    /// Plain BLAKE3 of the chunk's bytes: what a node that holds no scope
    /// key checks fetched and cached bytes against.
    pub hash: [u8; 32],
    /// Length in bytes.
    pub len: u32,
}

impl FileChunk {
    /// The object-store id.
    pub fn chunk_id(&self) -> ChunkId {
        ChunkId(self.id)
    }

    /// Whether `bytes` are this chunk's bytes.
    pub fn verify(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.len as usize && blake3::hash(bytes).as_bytes() == &self.hash
    }
}

/// Totals of an flist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlistStats {
    /// Inodes of each kind: directories.
    pub dirs: u64,
    /// Regular files (inodes, not names).
    pub files: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Devices and fifos.
    pub specials: u64,
    /// Bytes of file contents (each inode once).
    pub bytes: u64,
    /// Chunk references (each inode once; one chunk may be counted twice).
    pub chunks: u64,
}

impl Inode {
    /// A directory with no entries.
    pub fn dir(mode: u32) -> Inode {
        Inode {
            kind: InodeKind::Dir {
                entries: BTreeMap::new(),
            },
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Dir { .. })
    }

    /// The file-type bits of `st_mode` (`S_IFDIR`, `S_IFREG`, ...).
    pub fn type_bits(&self) -> u32 {
        match self.kind {
            InodeKind::Dir { .. } => 0o040000,
            InodeKind::File { .. } => 0o100000,
            InodeKind::Symlink { .. } => 0o120000,
            InodeKind::CharDevice { .. } => 0o020000,
            InodeKind::BlockDevice { .. } => 0o060000,
            InodeKind::Fifo => 0o010000,
        }
    }

    /// Size as `stat` reports it: contents for files, target length for
    /// symlinks, 0 otherwise.
    pub fn size(&self) -> u64 {
        match &self.kind {
            InodeKind::File { size, .. } => *size,
            InodeKind::Symlink { target } => target.len() as u64,
            _ => 0,
        }
    }
}

impl Flist {
    /// An flist with an empty root directory (mode 0755).
    pub fn new(config: ImageConfig) -> Flist {
        Flist {
            format: FLIST_FORMAT,
            config,
            inodes: vec![Inode::dir(0o755)],
        }
    }

    /// The inode `ino`.
    pub fn inode(&self, ino: u32) -> Option<&Inode> {
        self.inodes.get(ino as usize)
    }

    /// The entry `name` of directory `dir`.
    pub fn lookup(&self, dir: u32, name: &[u8]) -> Option<u32> {
        match &self.inode(dir)?.kind {
            InodeKind::Dir { entries } => entries.get(serde_bytes::Bytes::new(name)).copied(),
            _ => None,
        }
    }

    /// The entries of directory `dir` in name order (empty for a
    /// non-directory).
    pub fn entries(&self, dir: u32) -> impl Iterator<Item = (&[u8], u32)> {
        let entries = match self.inode(dir).map(|i| &i.kind) {
            Some(InodeKind::Dir { entries }) => Some(entries),
            _ => None,
        };
        entries
            .into_iter()
            .flat_map(|e| e.iter().map(|(k, v)| (k.as_slice(), *v)))
    }

    /// Resolves an absolute or relative path from the root without
    /// following symlinks (`None` when a component is missing).
    pub fn resolve(&self, path: &str) -> Option<u32> {
        path.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .try_fold(ROOT, |ino, c| self.lookup(ino, c.as_bytes()))
    }

    /// Link counts of every inode: names pointing at it, plus for a
    /// directory its `.` and its subdirectories' `..`.
    pub fn link_counts(&self) -> Vec<u32> {
        let mut n = vec![0u32; self.inodes.len()];
        if let Some(root) = n.get_mut(ROOT as usize) {
            *root = 2;
        }
        for (ino, inode) in self.inodes.iter().enumerate() {
            if let InodeKind::Dir { entries } = &inode.kind {
                for &child in entries.values() {
                    let is_dir = self.inode(child).is_some_and(Inode::is_dir);
                    if let Some(c) = n.get_mut(child as usize) {
                        // Its name, plus its own `.` for a directory.
                        *c += if is_dir { 2 } else { 1 };
                    }
                    if is_dir {
                        // The subdirectory's `..`.
                        n[ino] += 1;
                    }
                }
            }
        }
        n
    }

    /// Totals.
    pub fn stats(&self) -> FlistStats {
        let mut s = FlistStats::default();
        for inode in &self.inodes {
            match &inode.kind {
                InodeKind::Dir { .. } => s.dirs += 1,
                InodeKind::File { size, chunks } => {
                    s.files += 1;
                    s.bytes += size;
                    s.chunks += chunks.len() as u64;
                }
                InodeKind::Symlink { .. } => s.symlinks += 1,
                _ => s.specials += 1,
            }
        }
        s
    }

    /// Every chunk reference of every file inode, in inode order.
    pub fn chunks(&self) -> impl Iterator<Item = &FileChunk> {
        self.inodes.iter().flat_map(|i| match &i.kind {
            InodeKind::File { chunks, .. } => chunks.as_slice(),
            _ => &[],
        })
    }

    /// Encodes: magic, format version (u32 LE), then zstd-compressed bincode.
    pub fn encode(&self) -> Result<Vec<u8>, FlistError> {
        let body = bincode::serialize(self).map_err(|e| FlistError::Encode(e.to_string()))?;
        let packed =
            zstd::bulk::compress(&body, 3).map_err(|e| FlistError::Encode(format!("zstd: {e}")))?;
        let mut out = Vec::with_capacity(FLIST_MAGIC.len() + 4 + packed.len());
        out.extend_from_slice(FLIST_MAGIC);
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&packed);
        Ok(out)
    }

    /// Decodes and [`Flist::validate`]s bytes from anywhere (an flist is
    /// untrusted input on the node that mounts it).
    pub fn decode(bytes: &[u8]) -> Result<Flist, FlistError> {
        let rest = bytes
            .strip_prefix(FLIST_MAGIC.as_slice())
            .ok_or_else(|| FlistError::Decode("not an flist (bad magic)".into()))?;
        let (ver, body) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| FlistError::Decode("truncated header".into()))?;
        let format = u32::from_le_bytes(*ver);
        if format != FLIST_FORMAT {
            return Err(FlistError::Decode(format!(
                "flist format {format} is not supported (this build reads {FLIST_FORMAT})"
            )));
        }
        let mut raw = Vec::new();
        let mut dec = zstd::stream::read::Decoder::new(body)
            .map_err(|e| FlistError::Decode(format!("zstd: {e}")))?;
        use std::io::Read;
        (&mut dec)
            .take(MAX_DECODED_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|e| FlistError::Decode(format!("zstd: {e}")))?;
        if raw.len() as u64 > MAX_DECODED_BYTES {
            return Err(FlistError::Decode(format!(
                "decoded flist is larger than {MAX_DECODED_BYTES} bytes"
            )));
        }
        use bincode::Options;
        let flist: Flist = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .allow_trailing_bytes()
            .with_limit(MAX_DECODED_BYTES)
            .deserialize(&raw)
            .map_err(|e| FlistError::Decode(format!("bincode: {e}")))?;
        if flist.format != format {
            return Err(FlistError::Decode(
                "header and body disagree on the format".into(),
            ));
        }
        flist.validate()?;
        Ok(flist)
    }

    /// Checks the invariants a mount relies on: the root is a directory;
    /// every entry names an existing inode with a valid name; every directory
    /// but the root is named exactly once and the root never (a tree, no
    /// cycles); every inode is reachable; file sizes equal their chunk sums.
    pub fn validate(&self) -> Result<(), FlistError> {
        let bad = |m: String| Err(FlistError::Invalid(m));
        match self.inode(ROOT) {
            Some(i) if i.is_dir() => {}
            _ => return bad("the root is not a directory".into()),
        }
        if self.inodes.len() > u32::MAX as usize {
            return bad("too many inodes".into());
        }
        let mut named = vec![0u32; self.inodes.len()];
        for (ino, inode) in self.inodes.iter().enumerate() {
            match &inode.kind {
                InodeKind::Dir { entries } => {
                    for (name, &child) in entries {
                        if name.is_empty()
                            || name.as_slice() == b"."
                            || name.as_slice() == b".."
                            || name.contains(&b'/')
                            || name.contains(&0)
                        {
                            return bad(format!(
                                "directory {ino} has an invalid entry name {:?}",
                                String::from_utf8_lossy(name)
                            ));
                        }
                        let Some(slot) = named.get_mut(child as usize) else {
                            return bad(format!("directory {ino} names missing inode {child}"));
                        };
                        *slot = slot.saturating_add(1);
                    }
                }
                InodeKind::File { size, chunks } => {
                    let sum: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
                    if sum != *size {
                        return bad(format!(
                            "file {ino} is {size} bytes but its chunks add up to {sum}"
                        ));
                    }
                }
                _ => {}
            }
        }
        for (ino, inode) in self.inodes.iter().enumerate() {
            let n = named[ino];
            if ino == ROOT as usize {
                if n != 0 {
                    return bad("the root directory is named by an entry".into());
                }
            } else if n == 0 {
                return bad(format!("inode {ino} is named by no directory"));
            } else if inode.is_dir() && n != 1 {
                return bad(format!("directory {ino} has {n} names"));
            }
        }
        // Every directory named once and the root never: the directories
        // form a forest whose only root is ROOT iff all are reachable from it.
        let mut seen = vec![false; self.inodes.len()];
        let mut stack = vec![ROOT];
        while let Some(d) = stack.pop() {
            if std::mem::replace(&mut seen[d as usize], true) {
                continue;
            }
            for (_, child) in self.entries(d) {
                if self.inodes[child as usize].is_dir() {
                    stack.push(child);
                } else {
                    seen[child as usize] = true;
                }
            }
        }
        if let Some(ino) = seen.iter().position(|s| !s) {
            return bad(format!("inode {ino} is in a directory cycle"));
        }
        Ok(())
    }
}
