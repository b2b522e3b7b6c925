//! Stratus L1: **flists**, the metadata of a container image's file tree.
//!
//! An [`Flist`] describes every directory, file, symlink and device of an
//! image after its layers are applied, with owners, modes, times and xattrs;
//! a file's contents are [`FileChunk`]s, chunks of the object store named by
//! their store id and checked by their plain BLAKE3. A node mounts an flist
//! read-only and fetches only the chunks a container reads.
//!
//! This crate is pure (no IO beyond `Read` streams handed to it): the model
//! and its encoding ([`model`]).

mod model;
#[cfg(test)]
mod tests;

pub use model::{
    FileChunk, Flist, FlistStats, ImageConfig, Inode, InodeKind, FLIST_FORMAT, FLIST_MAGIC,
    MAX_DECODED_BYTES, ROOT,
};

/// What can go wrong with an flist.
#[derive(Debug, thiserror::Error)]
pub enum FlistError {
    /// The flist could not be encoded.
    #[error("cannot encode flist: {0}")]
    Encode(String),
    /// The bytes are not an flist this build reads.
    #[error("cannot decode flist: {0}")]
    Decode(String),
    /// The flist breaks an invariant (see [`Flist::validate`]).
    #[error("invalid flist: {0}")]
    Invalid(String),
}
