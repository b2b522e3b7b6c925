//! The FUSE file system: an flist served read-only.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use stratus_flist::{FileChunk, Flist, Inode, InodeKind, ROOT};

use crate::fetch::{Fetcher, Job};

/// Block size reported by `stat` and `statfs`.
const BLOCK: u32 = 4096;

/// The file system handed to fuser. Everything but `read` is answered from
/// the (immutable, in-memory) flist on the session thread; reads go to the
/// worker pool.
pub(crate) struct FlistFs {
    flist: Arc<Flist>,
    nlink: Vec<u32>,
    /// Parent directory of every directory (the root is its own parent).
    parent: Vec<u32>,
    /// For every file inode, the offset at which each chunk starts (empty
    /// for other inodes).
    starts: Vec<Box<[u64]>>,
    fetcher: Arc<Fetcher>,
    pool: crossbeam_channel::Sender<Job>,
    ttl: Duration,
    /// Added to every owner (see [`MountOptions::id_shift`]).
    ///
    /// [`MountOptions::id_shift`]: crate::MountOptions::id_shift
    id_shift: u32,
}

/// Ids from 0 up to this are shifted; larger ones (outside a user
/// namespace's 65,536 ids) show as the shifted `nobody`.
const SHIFTED_IDS: u32 = 65_536;
/// `nobody`'s id.
const NOBODY: u32 = 65_534;

/// The owner id `id` of the flist as the mount shows it with `shift`.
pub(crate) fn shifted(id: u32, shift: u32) -> u32 {
    if shift == 0 {
        return id;
    }
    let id = if id < SHIFTED_IDS { id } else { NOBODY };
    shift.saturating_add(id)
}

/// The new (32-bit) Linux encoding of a device number, as FUSE sends it.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn to_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

fn kind_of(inode: &Inode) -> FileType {
    match inode.kind {
        InodeKind::Dir { .. } => FileType::Directory,
        InodeKind::File { .. } => FileType::RegularFile,
        InodeKind::Symlink { .. } => FileType::Symlink,
        InodeKind::CharDevice { .. } => FileType::CharDevice,
        InodeKind::BlockDevice { .. } => FileType::BlockDevice,
        InodeKind::Fifo => FileType::NamedPipe,
    }
}

/// The chunks of a file that cover `[offset, end)`, given the chunk start
/// offsets (`starts[i]` is where `chunks[i]` begins), with the offset of the
/// first one.
pub(crate) fn covering<'a>(
    chunks: &'a [FileChunk],
    starts: &[u64],
    offset: u64,
    end: u64,
) -> (u64, &'a [FileChunk]) {
    if offset >= end || chunks.is_empty() {
        return (offset, &[]);
    }
    // The last chunk starting at or before `offset`.
    let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
    let last = starts.partition_point(|&s| s < end);
    let first_start = starts.get(first).copied().unwrap_or(0);
    (first_start, chunks.get(first..last).unwrap_or(&[]))
}

impl FlistFs {
    pub(crate) fn new(
        flist: Arc<Flist>,
        fetcher: Arc<Fetcher>,
        pool: crossbeam_channel::Sender<Job>,
        ttl: Duration,
        id_shift: u32,
    ) -> FlistFs {
        let nlink = flist.link_counts();
        let mut parent = vec![ROOT; flist.inodes.len()];
        let mut starts = Vec::with_capacity(flist.inodes.len());
        for (ino, inode) in flist.inodes.iter().enumerate() {
            match &inode.kind {
                InodeKind::Dir { entries } => {
                    for &child in entries.values() {
                        if flist.inode(child).is_some_and(Inode::is_dir) {
                            if let Some(p) = parent.get_mut(child as usize) {
                                // A validated flist names each directory once.
                                *p = ino as u32;
                            }
                        }
                    }
                    starts.push(Box::default());
                }
                InodeKind::File { chunks, .. } => {
                    let mut at = 0u64;
                    let s: Box<[u64]> = chunks
                        .iter()
                        .map(|c| {
                            let here = at;
                            at += u64::from(c.len);
                            here
                        })
                        .collect();
                    starts.push(s);
                }
                _ => starts.push(Box::default()),
            }
        }
        FlistFs {
            flist,
            nlink,
            parent,
            starts,
            fetcher,
            pool,
            ttl,
            id_shift,
        }
    }

    /// The flist index of a FUSE inode number.
    fn index(&self, ino: INodeNo) -> Option<u32> {
        let i = ino.0.checked_sub(1)?;
        (i < self.flist.inodes.len() as u64).then_some(i as u32)
    }

    fn attr(&self, idx: u32, inode: &Inode) -> FileAttr {
        let size = inode.size();
        let time = to_time(inode.mtime);
        let rdev = match inode.kind {
            InodeKind::CharDevice { major, minor } | InodeKind::BlockDevice { major, minor } => {
                encode_dev(major, minor)
            }
            _ => 0,
        };
        FileAttr {
            ino: INodeNo(u64::from(idx) + 1),
            size,
            blocks: size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: kind_of(inode),
            perm: (inode.mode & 0o7777) as u16,
            nlink: self.nlink.get(idx as usize).copied().unwrap_or(1),
            uid: shifted(inode.uid, self.id_shift),
            gid: shifted(inode.gid, self.id_shift),
            rdev,
            blksize: BLOCK,
            flags: 0,
        }
    }

    fn inode(&self, ino: INodeNo) -> Result<(u32, &Inode), Errno> {
        let idx = self.index(ino).ok_or(Errno::ENOENT)?;
        let inode = self.flist.inode(idx).ok_or(Errno::ENOENT)?;
        Ok((idx, inode))
    }

    /// `.`, `..`, then the entries, from position `offset`.
    fn dir_entries(&self, idx: u32) -> impl Iterator<Item = (&[u8], u32)> {
        let parent = self.parent.get(idx as usize).copied().unwrap_or(ROOT);
        [(&b"."[..], idx), (&b".."[..], parent)]
            .into_iter()
            .chain(self.flist.entries(idx))
    }
}

impl Filesystem for FlistFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            // Optional: an older kernel without them still works.
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let dir = match self.inode(parent) {
            Ok((idx, inode)) if inode.is_dir() => idx,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let Some(child) = self.flist.lookup(dir, name.as_bytes()) else {
            return reply.error(Errno::ENOENT);
        };
        match self.flist.inode(child) {
            Some(inode) => reply.entry(&self.ttl, &self.attr(child, inode), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok((idx, inode)) => reply.attr(&self.ttl, &self.attr(idx, inode)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino) {
            Ok((_, inode)) => match &inode.kind {
                InodeKind::Symlink { target } => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.inode(ino) {
            Ok((_, inode)) => {
                if !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY) {
                    return reply.error(Errno::EROFS);
                }
                if inode.is_dir() {
                    return reply.error(Errno::EISDIR);
                }
                // Contents never change: let the kernel keep cached pages
                // across opens.
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (idx, inode) = match self.inode(ino) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let (file_size, chunks) = match &inode.kind {
            InodeKind::File { size, chunks } => (*size, chunks),
            InodeKind::Dir { .. } => return reply.error(Errno::EISDIR),
            _ => return reply.error(Errno::EINVAL),
        };
        let end = offset.saturating_add(u64::from(size)).min(file_size);
        let starts = self.starts.get(idx as usize).map(|s| &s[..]).unwrap_or(&[]);
        let (first_start, needed) = covering(chunks, starts, offset, end);
        if needed.is_empty() {
            self.fetcher.counters.reads.fetch_add(1, Ordering::Relaxed);
            return reply.data(&[]);
        }
        for c in needed {
            self.fetcher.record_access(&c.hash);
        }
        let needed: Vec<FileChunk> = needed.to_vec();
        let fetcher = self.fetcher.clone();
        let job: Job = Box::new(move || {
            let mut out = Vec::with_capacity((end - offset) as usize);
            let mut at = first_start;
            for c in &needed {
                let bytes = match fetcher.get(c, true) {
                    Ok(b) => b,
                    Err(_) => {
                        fetcher.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                        return reply.error(Errno::EIO);
                    }
                };
                let len = u64::from(c.len);
                let from = offset.max(at) - at;
                let to = end.min(at + len) - at;
                if let Some(part) = bytes.get(from as usize..to as usize) {
                    out.extend_from_slice(part);
                }
                at += len;
            }
            fetcher.counters.reads.fetch_add(1, Ordering::Relaxed);
            fetcher
                .counters
                .bytes_served
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            reply.data(&out);
        });
        if let Err(e) = self.pool.send(job) {
            // The pool is gone (unmounting): the job's reply, dropped with
            // it, answers EIO.
            drop(e);
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inode(ino) {
            Ok((_, inode)) if inode.is_dir() => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let idx = match self.inode(ino) {
            Ok((idx, inode)) if inode.is_dir() => idx,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, child)) in self.dir_entries(idx).enumerate().skip(skip) {
            let Some(inode) = self.flist.inode(child) else {
                continue;
            };
            let full = reply.add(
                INodeNo(u64::from(child) + 1),
                i as u64 + 1,
                kind_of(inode),
                OsStr::from_bytes(name),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let idx = match self.inode(ino) {
            Ok((idx, inode)) if inode.is_dir() => idx,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, child)) in self.dir_entries(idx).enumerate().skip(skip) {
            let Some(inode) = self.flist.inode(child) else {
                continue;
            };
            let full = reply.add(
                INodeNo(u64::from(child) + 1),
                i as u64 + 1,
                OsStr::from_bytes(name),
                &self.ttl,
                &self.attr(child, inode),
                Generation(0),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let stats = self.flist.stats();
        let blocks = stats.bytes.div_ceil(u64::from(BLOCK));
        reply.statfs(
            blocks,
            0,
            0,
            self.flist.inodes.len() as u64,
            0,
            BLOCK,
            255,
            BLOCK,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let inode = match self.inode(ino) {
            Ok((_, inode)) => inode,
            Err(e) => return reply.error(e),
        };
        let Some(value) = name.to_str().and_then(|n| inode.xattrs.get(n)) else {
            return reply.error(Errno::NO_XATTR);
        };
        reply_xattr(reply, value, size);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let inode = match self.inode(ino) {
            Ok((_, inode)) => inode,
            Err(e) => return reply.error(e),
        };
        let mut names = Vec::new();
        for name in inode.xattrs.keys() {
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        reply_xattr(reply, &names, size);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // With `default_permissions` the kernel checks modes itself; only
        // the read-only answer is ours.
        match self.inode(ino) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // Every write operation: read-only file system.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

fn reply_xattr(reply: ReplyXattr, value: &[u8], size: u32) {
    let Ok(len) = u32::try_from(value.len()) else {
        return reply.error(Errno::E2BIG);
    };
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chunks(lens: &[u32]) -> (Vec<FileChunk>, Vec<u64>) {
        let mut at = 0;
        let mut starts = Vec::new();
        let cs = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                starts.push(at);
                at += u64::from(len);
                FileChunk {
                    id: [i as u8; 32],
                    hash: [i as u8; 32],
                    len,
                }
            })
            .collect();
        (cs, starts)
    }

    #[test]
    fn covering_picks_exactly_the_chunks_of_a_range() {
        let (cs, starts) = chunks(&[10, 10, 10, 10]);
        let ids = |r: &[FileChunk]| r.iter().map(|c| c.id[0]).collect::<Vec<_>>();
        let (s, r) = covering(&cs, &starts, 0, 1);
        assert_eq!((s, ids(r)), (0, vec![0]));
        let (s, r) = covering(&cs, &starts, 9, 11);
        assert_eq!((s, ids(r)), (0, vec![0, 1]));
        let (s, r) = covering(&cs, &starts, 10, 20);
        assert_eq!((s, ids(r)), (10, vec![1]));
        let (s, r) = covering(&cs, &starts, 25, 40);
        assert_eq!((s, ids(r)), (20, vec![2, 3]));
        let (_, r) = covering(&cs, &starts, 40, 40);
        assert!(r.is_empty());
        let (_, r) = covering(&[], &[], 0, 10);
        assert!(r.is_empty());
    }

    #[test]
    fn device_numbers_use_the_kernel_encoding() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(8, 0x12345), 0x1230_0845);
        // The low 32 bits of the C library's dev_t agree for small majors.
        assert_eq!(
            encode_dev(8, 0x12345),
            nix::sys::stat::makedev(8, 0x12345) as u32
        );
    }
}

#[cfg(test)]
mod shift_tests {
    use super::shifted;

    #[test]
    fn owners_shift_into_the_range_and_never_past_it() {
        assert_eq!(shifted(0, 0), 0);
        assert_eq!(shifted(70_000, 0), 70_000);
        assert_eq!(shifted(0, 1_000_000_000), 1_000_000_000);
        assert_eq!(shifted(1000, 1_000_000_000), 1_000_001_000);
        assert_eq!(shifted(65_535, 1_000_000_000), 1_000_065_535);
        // Outside the 65,536 mapped ids: the shifted nobody, not the next
        // range's ids.
        assert_eq!(shifted(65_536, 1_000_000_000), 1_000_065_534);
        assert_eq!(shifted(u32::MAX, 1_000_000_000), 1_000_065_534);
        assert_eq!(shifted(5, u32::MAX - 1), u32::MAX);
    }
}
