//! Applying OCI / Docker tar layers, in order, onto one file tree.
//!
//! The rules are the OCI image-spec's layer rules, as overlay-based runtimes
//! apply them:
//!
//! - Each tar entry creates or replaces the object at its path: regular
//!   files, directories, symlinks, hard links, character and block devices,
//!   fifos, with mode (permission, set-uid, set-gid and sticky bits), owner,
//!   mtime and PAX `SCHILY.xattr.*` extended attributes.
//! - A directory entry over an existing directory updates its metadata and
//!   keeps its children; any other combination replaces the old object (and
//!   its subtree) by the new one.
//! - A hard link (tar `1` entry) names the inode of its target, which must
//!   already exist as a non-directory in this or a lower layer.
//! - `D/.wh.N` deletes `D/N` of the lower layers; `D/.wh..wh..opq` hides all
//!   lower entries of `D`. Whiteouts apply to lower layers only, whatever
//!   their position in the tar: each layer's whiteouts are applied before
//!   its other entries. Other `.wh..wh.*` names (aufs metadata) are ignored.
//! - Missing parent directories are created (mode 0755, root-owned).
//!   Symlinks among an entry's parents are followed inside the tree (an
//!   absolute target or `..` stops at the root); a parent that is a file is
//!   an error.
//! - Paths are normalised (leading `/`, `./`, `.`, empty components, a `..`
//!   that stays inside the root); a `..` that would climb above the root is
//!   refused with [`FlistError::Layer`], never applied.
//!
//! [`Layers::apply`] is pass 1 (metadata only); [`Layers::finish`] is pass 2:
//! it reads the contents of the files that survive and hands them to a
//! [`ContentSink`].

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};

use serde_bytes::ByteBuf;

use crate::{ContentSink, FileChunk, Flist, FlistError, ImageConfig, Inode, InodeKind, ROOT};

/// Most inodes a tree may allocate while layers are applied (replaced and
/// deleted ones included).
pub const MAX_INODES: usize = 1 << 20;
/// Most layers an image may have.
pub const MAX_LAYERS: usize = 512;
/// Longest name of one path component, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest path (and symlink target), in bytes.
pub const MAX_PATH: usize = 4096;
/// Most bytes of extended attributes (names and values) of one inode.
pub const MAX_XATTR_BYTES: usize = 64 << 10;
/// Most symlinks followed while resolving one path.
const MAX_SYMLINK_HOPS: usize = 40;

/// Whiteout prefix.
const WH: &[u8] = b".wh.";
/// Opaque-directory marker.
const WH_OPQ: &[u8] = b".wh..wh..opq";
/// Prefix of aufs metadata names (ignored).
const WH_META: &[u8] = b".wh..wh.";

/// A layer's uncompressed tar, as opened for pass 2.
pub enum LayerSource {
    /// A stream: entries are read through.
    Stream(Box<dyn Read>),
    /// A seekable tar: the contents of skipped entries are seeked over.
    Seekable(Box<dyn ReadSeek>),
}

impl std::fmt::Debug for LayerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerSource::Stream(_) => "LayerSource::Stream",
            LayerSource::Seekable(_) => "LayerSource::Seekable",
        })
    }
}

/// `Read + Seek`, as a trait object.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Metadata of an entry.
#[derive(Clone, Debug)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: BTreeMap<String, ByteBuf>,
}

/// What one tar entry does.
#[derive(Debug)]
enum Op {
    Whiteout(Vec<u8>),
    Opaque,
    Dir(Meta),
    File(Meta, u64),
    Symlink(Meta, Vec<u8>),
    Hardlink(Vec<Vec<u8>>),
    Char(Meta, u32, u32),
    Block(Meta, u32, u32),
    Fifo(Meta),
}

/// One tar entry of a layer, read in pass 1.
#[derive(Debug)]
struct Rec {
    /// Position among the tar's entries.
    index: u64,
    /// The path as written (for errors).
    raw: String,
    /// Normalised parent components.
    parent: Vec<Vec<u8>>,
    /// Final component (empty for the root itself).
    name: Vec<u8>,
    op: Op,
}

/// A file tree being built from layers (pass 1), then filled (pass 2).
#[derive(Debug)]
pub struct Layers {
    nodes: Vec<Inode>,
    /// Where each file node's bytes are: (layer, entry index).
    src: HashMap<u32, (usize, u64)>,
    layers: usize,
}

impl Default for Layers {
    fn default() -> Self {
        Layers::new()
    }
}

fn layer_err(layer: usize, raw: &str, reason: impl Into<String>) -> FlistError {
    FlistError::Layer {
        layer,
        path: raw.to_string(),
        reason: reason.into(),
    }
}

/// Splits and normalises a path: components without `.`, empty ones and
/// resolvable `..`. `Err` with the reason if it escapes or breaks a limit.
fn normalize(path: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if path.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    if path.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("path escapes the image root with `..`".into());
                }
            }
            c if c.len() > MAX_NAME => {
                return Err(format!("path component longer than {MAX_NAME} bytes"));
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn meta_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: usize,
    raw: &str,
) -> Result<Meta, FlistError> {
    let h = entry.header();
    let bad = |what: &str, e: std::io::Error| layer_err(layer, raw, format!("{what}: {e}"));
    let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
    let uid = h.uid().map_err(|e| bad("uid", e))?;
    let gid = h.gid().map_err(|e| bad("gid", e))?;
    let mut mtime = i64::try_from(h.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX);
    let uid = u32::try_from(uid).map_err(|_| layer_err(layer, raw, "uid above 2^32"))?;
    let gid = u32::try_from(gid).map_err(|_| layer_err(layer, raw, "gid above 2^32"))?;
    let mut xattrs = BTreeMap::new();
    let mut xattr_bytes = 0usize;
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|e| bad("pax extensions", e))?
    {
        for ext in pax {
            let ext = ext.map_err(|e| bad("pax extension", e))?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                let name = std::str::from_utf8(name)
                    .map_err(|_| layer_err(layer, raw, "xattr name is not UTF-8"))?;
                xattr_bytes += name.len() + ext.value_bytes().len();
                if xattr_bytes > MAX_XATTR_BYTES {
                    return Err(FlistError::Limit(format!(
                        "layer {layer}, entry {raw:?}: more than {MAX_XATTR_BYTES} bytes of xattrs"
                    )));
                }
                xattrs.insert(name.to_string(), ByteBuf::from(ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                // Seconds, possibly with a fraction or a sign.
                if let Some(secs) = ext
                    .value()
                    .ok()
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    mtime = secs;
                }
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Reads one tar entry's metadata into a [`Rec`] (`None`: ignored entry).
fn read_rec<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    index: u64,
    layer: usize,
) -> Result<Option<Rec>, FlistError> {
    let path_bytes = entry.path_bytes().into_owned();
    let raw = String::from_utf8_lossy(&path_bytes).into_owned();
    let mut comps = normalize(&path_bytes).map_err(|r| layer_err(layer, &raw, r))?;
    let name = comps.pop().unwrap_or_default();
    let ty = entry.header().entry_type();
    use tar::EntryType as T;
    if matches!(
        ty,
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
    ) {
        return Ok(None);
    }
    let rec = |op| {
        Ok(Some(Rec {
            index,
            raw: raw.clone(),
            parent: comps.clone(),
            name: name.clone(),
            op,
        }))
    };
    if name == WH_OPQ {
        return rec(Op::Opaque);
    }
    if name.starts_with(WH_META) {
        return Ok(None);
    }
    if let Some(target) = name.strip_prefix(WH) {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(layer_err(layer, &raw, "whiteout of an invalid name"));
        }
        return rec(Op::Whiteout(target.to_vec()));
    }
    let devs = |e: &tar::Entry<'_, R>| -> Result<(u32, u32), FlistError> {
        let h = e.header();
        let major = h
            .device_major()
            .map_err(|e| layer_err(layer, &raw, format!("device major: {e}")))?;
        let minor = h
            .device_minor()
            .map_err(|e| layer_err(layer, &raw, format!("device minor: {e}")))?;
        Ok((major.unwrap_or(0), minor.unwrap_or(0)))
    };
    let op = match ty {
        T::Regular | T::Continuous => Op::File(meta_of(entry, layer, &raw)?, entry.size()),
        T::Directory => Op::Dir(meta_of(entry, layer, &raw)?),
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| layer_err(layer, &raw, "symlink without a target"))?
                .into_owned();
            if target.len() > MAX_PATH || target.contains(&0) {
                return Err(layer_err(
                    layer,
                    &raw,
                    "symlink target too long or with NUL",
                ));
            }
            Op::Symlink(meta_of(entry, layer, &raw)?, target)
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| layer_err(layer, &raw, "hard link without a target"))?;
            let target = normalize(&target)
                .map_err(|r| layer_err(layer, &raw, format!("hard link target: {r}")))?;
            if target.is_empty() {
                return Err(layer_err(layer, &raw, "hard link to the root"));
            }
            Op::Hardlink(target)
        }
        T::Char => {
            let (ma, mi) = devs(entry)?;
            Op::Char(meta_of(entry, layer, &raw)?, ma, mi)
        }
        T::Block => {
            let (ma, mi) = devs(entry)?;
            Op::Block(meta_of(entry, layer, &raw)?, ma, mi)
        }
        T::Fifo => Op::Fifo(meta_of(entry, layer, &raw)?),
        other => {
            return Err(layer_err(
                layer,
                &raw,
                format!("unsupported tar entry type {:?}", other.as_byte() as char),
            ))
        }
    };
    rec(op)
}

fn inode(kind: InodeKind, m: Meta) -> Inode {
    Inode {
        kind,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
        xattrs: m.xattrs,
    }
}

impl Layers {
    /// An empty tree: the root directory (mode 0755, root-owned).
    pub fn new() -> Layers {
        Layers {
            nodes: vec![Inode::dir(0o755)],
            src: HashMap::new(),
            layers: 0,
        }
    }

    /// Layers applied so far.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Pass 1 for the next layer: reads its uncompressed tar to the end of
    /// the archive and applies every entry's metadata. File contents are
    /// skipped; each regular file remembers its entry. The caller may drain
    /// `tar` afterwards (e.g. to finish a digest).
    pub fn apply(&mut self, tar: impl Read) -> Result<(), FlistError> {
        let layer = self.layers;
        if layer >= MAX_LAYERS {
            return Err(FlistError::Limit(format!("more than {MAX_LAYERS} layers")));
        }
        let (guarded, violation) = crate::targuard::TarGuard::new(tar);
        let mut archive = tar::Archive::new(guarded);
        let mut recs = Vec::new();
        // A tar error caused by a bound of the guard is reported as that.
        let tar_err = |e: std::io::Error| match violation.borrow().as_ref() {
            Some(v) => FlistError::Limit(format!("layer {layer}: {v}")),
            None => layer_err(layer, "", format!("tar: {e}")),
        };
        let entries = archive.entries().map_err(tar_err)?;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(tar_err)?;
            if let Some(rec) = read_rec(&mut entry, index as u64, layer)? {
                recs.push(rec);
                if recs.len() > MAX_INODES {
                    return Err(FlistError::Limit(format!(
                        "layer {layer} has more than {MAX_INODES} entries"
                    )));
                }
            }
        }
        // Whiteouts and opaque markers hide lower layers only: first.
        for rec in recs
            .iter()
            .filter(|r| matches!(r.op, Op::Whiteout(_) | Op::Opaque))
        {
            let dir = self.parent_dir(layer, rec)?;
            match &rec.op {
                Op::Whiteout(target) => {
                    if let InodeKind::Dir { entries } = &mut self.nodes[dir as usize].kind {
                        entries.remove(serde_bytes::Bytes::new(target));
                    }
                }
                _ => {
                    if let InodeKind::Dir { entries } = &mut self.nodes[dir as usize].kind {
                        entries.clear();
                    }
                }
            }
        }
        for rec in recs
            .into_iter()
            .filter(|r| !matches!(r.op, Op::Whiteout(_) | Op::Opaque))
        {
            self.apply_rec(layer, rec)?;
        }
        self.layers += 1;
        Ok(())
    }

    fn alloc(&mut self, inode: Inode) -> Result<u32, FlistError> {
        if self.nodes.len() >= MAX_INODES {
            return Err(FlistError::Limit(format!("more than {MAX_INODES} inodes")));
        }
        self.nodes.push(inode);
        Ok((self.nodes.len() - 1) as u32)
    }

    fn child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        match &self.nodes[dir as usize].kind {
            InodeKind::Dir { entries } => entries.get(serde_bytes::Bytes::new(name)).copied(),
            _ => None,
        }
    }

    fn set_child(&mut self, dir: u32, name: &[u8], ino: u32) {
        if let InodeKind::Dir { entries } = &mut self.nodes[dir as usize].kind {
            entries.insert(ByteBuf::from(name.to_vec()), ino);
        }
    }

    /// Resolves directory components from the root, following symlinks
    /// inside the tree; creates missing directories when `create`. `None`:
    /// a component is missing (and not created).
    fn walk(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
        layer: usize,
        raw: &str,
    ) -> Result<Option<u32>, FlistError> {
        let mut stack: Vec<u32> = vec![ROOT];
        let mut queue: std::collections::VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            let cur = *stack.last().unwrap_or(&ROOT);
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            match self.child(cur, &c) {
                None if create => {
                    let ino = self.alloc(Inode::dir(0o755))?;
                    self.set_child(cur, &c, ino);
                    stack.push(ino);
                }
                None => return Ok(None),
                Some(ino) => match &self.nodes[ino as usize].kind {
                    InodeKind::Dir { .. } => stack.push(ino),
                    InodeKind::Symlink { target } => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Err(layer_err(layer, raw, "too many levels of symlinks"));
                        }
                        if target.first() == Some(&b'/') {
                            stack.truncate(1);
                        }
                        for t in target.split(|&b| b == b'/').rev() {
                            queue.push_front(t.to_vec());
                        }
                    }
                    _ => {
                        return Err(layer_err(
                            layer,
                            raw,
                            format!(
                                "parent {:?} is not a directory",
                                String::from_utf8_lossy(&c)
                            ),
                        ))
                    }
                },
            }
        }
        Ok(Some(*stack.last().unwrap_or(&ROOT)))
    }

    fn parent_dir(&mut self, layer: usize, rec: &Rec) -> Result<u32, FlistError> {
        if rec.name.is_empty() {
            return Err(layer_err(layer, &rec.raw, "marker at the root"));
        }
        self.walk(&rec.parent, true, layer, &rec.raw)?
            .ok_or_else(|| layer_err(layer, &rec.raw, "parent missing"))
    }

    fn apply_rec(&mut self, layer: usize, rec: Rec) -> Result<(), FlistError> {
        if rec.name.is_empty() {
            // The root itself.
            return match rec.op {
                Op::Dir(m) => {
                    let root = &mut self.nodes[ROOT as usize];
                    root.mode = m.mode;
                    root.uid = m.uid;
                    root.gid = m.gid;
                    root.mtime = m.mtime;
                    root.xattrs = m.xattrs;
                    Ok(())
                }
                _ => Err(layer_err(layer, &rec.raw, "the root must be a directory")),
            };
        }
        let dir = self.parent_dir(layer, &rec)?;
        let existing = self.child(dir, &rec.name);
        let new = match rec.op {
            Op::Dir(m) => {
                if let Some(ino) = existing.filter(|&i| self.nodes[i as usize].is_dir()) {
                    let node = &mut self.nodes[ino as usize];
                    node.mode = m.mode;
                    node.uid = m.uid;
                    node.gid = m.gid;
                    node.mtime = m.mtime;
                    node.xattrs = m.xattrs;
                    return Ok(());
                }
                self.alloc(inode(
                    InodeKind::Dir {
                        entries: BTreeMap::new(),
                    },
                    m,
                ))?
            }
            Op::File(m, size) => {
                let ino = self.alloc(inode(
                    InodeKind::File {
                        size,
                        chunks: Vec::new(),
                    },
                    m,
                ))?;
                self.src.insert(ino, (layer, rec.index));
                ino
            }
            Op::Symlink(m, target) => self.alloc(inode(
                InodeKind::Symlink {
                    target: ByteBuf::from(target),
                },
                m,
            ))?,
            Op::Char(m, major, minor) => {
                self.alloc(inode(InodeKind::CharDevice { major, minor }, m))?
            }
            Op::Block(m, major, minor) => {
                self.alloc(inode(InodeKind::BlockDevice { major, minor }, m))?
            }
            Op::Fifo(m) => self.alloc(inode(InodeKind::Fifo, m))?,
            Op::Hardlink(target) => {
                let (tname, tparent) = target
                    .split_last()
                    .ok_or_else(|| layer_err(layer, &rec.raw, "hard link to the root"))?;
                let tdir = self
                    .walk(tparent, false, layer, &rec.raw)?
                    .ok_or_else(|| layer_err(layer, &rec.raw, "hard link target does not exist"))?;
                let t = self
                    .child(tdir, tname)
                    .ok_or_else(|| layer_err(layer, &rec.raw, "hard link target does not exist"))?;
                if self.nodes[t as usize].is_dir() {
                    return Err(layer_err(layer, &rec.raw, "hard link to a directory"));
                }
                t
            }
            Op::Whiteout(_) | Op::Opaque => return Ok(()),
        };
        self.set_child(dir, &rec.name, new);
        Ok(())
    }

    /// Pass 2: numbers the surviving inodes (depth first, by name), reads
    /// the contents of every surviving regular file from its layer (opened
    /// with `open(layer)`; layers in order, each sequentially, only up to its
    /// last surviving file) and hands it to `sink`, once per inode. Files of
    /// size 0 are handed an empty reader without opening their layer.
    pub fn finish(
        self,
        config: ImageConfig,
        open: &mut dyn FnMut(usize) -> Result<LayerSource, FlistError>,
        sink: &mut dyn ContentSink,
    ) -> Result<Flist, FlistError> {
        let Layers {
            mut nodes, mut src, ..
        } = self;
        // Renumber reachable inodes, depth first, entries by name.
        let mut map: HashMap<u32, u32> = HashMap::new();
        let mut order: Vec<u32> = Vec::new();
        let mut stack = vec![ROOT];
        map.insert(ROOT, 0);
        order.push(ROOT);
        while let Some(d) = stack.pop() {
            let children: Vec<u32> = match &nodes[d as usize].kind {
                InodeKind::Dir { entries } => entries.values().rev().copied().collect(),
                _ => Vec::new(),
            };
            for c in children.into_iter().rev() {
                if let std::collections::hash_map::Entry::Vacant(v) = map.entry(c) {
                    v.insert(order.len() as u32);
                    order.push(c);
                    if nodes[c as usize].is_dir() {
                        stack.push(c);
                    }
                }
            }
        }
        let mut inodes: Vec<Inode> = Vec::with_capacity(order.len());
        for &old in &order {
            let mut node = std::mem::replace(&mut nodes[old as usize], Inode::dir(0));
            if let InodeKind::Dir { entries } = &mut node.kind {
                for v in entries.values_mut() {
                    *v = map[v];
                }
            }
            inodes.push(node);
        }
        // Wanted entries per layer: entry index -> new inode.
        let mut wanted: BTreeMap<usize, BTreeMap<u64, u32>> = BTreeMap::new();
        for (new, &old) in order.iter().enumerate() {
            if let Some((layer, index)) = src.remove(&old) {
                let size = inodes[new].size();
                if size == 0 {
                    let chunks = sink.file(&mut std::io::empty(), 0)?;
                    set_chunks(&mut inodes[new], chunks, 0)?;
                } else {
                    wanted.entry(layer).or_default().insert(index, new as u32);
                }
            }
        }
        for (layer, mut want) in wanted {
            match open(layer)? {
                LayerSource::Stream(r) => read_wanted(
                    layer,
                    tar::Archive::new(NoSeek(r)),
                    false,
                    &mut want,
                    &mut inodes,
                    sink,
                )?,
                LayerSource::Seekable(r) => read_wanted(
                    layer,
                    tar::Archive::new(r),
                    true,
                    &mut want,
                    &mut inodes,
                    sink,
                )?,
            }
            if let Some((index, _)) = want.first_key_value() {
                return Err(layer_err(
                    layer,
                    "",
                    format!("entry {index} missing when reading contents (layer changed?)"),
                ));
            }
        }
        let flist = Flist {
            format: crate::FLIST_FORMAT,
            config,
            inodes,
        };
        flist.validate()?;
        Ok(flist)
    }
}

fn set_chunks(inode: &mut Inode, new: Vec<FileChunk>, expect: u64) -> Result<(), FlistError> {
    let sum: u64 = new.iter().map(|c| u64::from(c.len)).sum();
    if sum != expect {
        return Err(FlistError::Sink(format!(
            "sink returned chunks of {sum} bytes for a file of {expect}"
        )));
    }
    if let InodeKind::File { chunks, .. } = &mut inode.kind {
        *chunks = new;
    }
    Ok(())
}

fn read_wanted<R: Read + Seek>(
    layer: usize,
    mut archive: tar::Archive<R>,
    seek: bool,
    want: &mut BTreeMap<u64, u32>,
    inodes: &mut [Inode],
    sink: &mut dyn ContentSink,
) -> Result<(), FlistError> {
    let terr = |e: std::io::Error| layer_err(layer, "", format!("tar (pass 2): {e}"));
    let entries = if seek {
        archive.entries_with_seek().map_err(terr)?
    } else {
        archive.entries().map_err(terr)?
    };
    for (index, entry) in entries.enumerate() {
        if want.is_empty() {
            break;
        }
        let mut entry = entry.map_err(terr)?;
        let Some(ino) = want.remove(&(index as u64)) else {
            continue;
        };
        let inode = &mut inodes[ino as usize];
        let size = inode.size();
        if entry.size() != size {
            return Err(layer_err(
                layer,
                &String::from_utf8_lossy(&entry.path_bytes()),
                "entry changed size between passes",
            ));
        }
        let chunks = sink.file(&mut entry, size)?;
        set_chunks(inode, chunks, size)?;
    }
    Ok(())
}

/// A `Read` that is never seeked ([`Layers::finish`] reads streams through
/// the same code as seekable tars).
struct NoSeek<R>(R);

impl<R: Read> Read for NoSeek<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Seek for NoSeek<R> {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::other("not seekable"))
    }
}

/// Applies in-memory uncompressed layer tars in order and fills the flist
/// through `sink` (both passes). For tests and small images.
pub fn apply_tars(
    tars: &[Vec<u8>],
    config: ImageConfig,
    sink: &mut dyn ContentSink,
) -> Result<Flist, FlistError> {
    let mut layers = Layers::new();
    for t in tars {
        layers.apply(t.as_slice())?;
    }
    let owned: Vec<Vec<u8>> = tars.to_vec();
    layers.finish(
        config,
        &mut |i| {
            let bytes = owned
                .get(i)
                .cloned()
                .ok_or_else(|| FlistError::Image(format!("no layer {i}")))?;
            Ok(LayerSource::Seekable(Box::new(std::io::Cursor::new(bytes))))
        },
        sink,
    )
}
