//! **Flists**, the metadata of a container image's file tree,
//! and the import of OCI / Docker images into them.
//!
//! **Owns** the flist format, its validation, and importing OCI/Docker
//! archives into it with their bounds. **Does not own** storing the chunks
//! (`stratus-store`), pulling from registries (`stratus-registry`) or
//! mounting (`stratus-mount`).
//!
//! An [`Flist`] describes every directory, file, symlink and device of an
//! image after its layers are applied, with owners, modes, times and xattrs;
//! a file's contents are [`FileChunk`]s, chunks of the object store named by
//! their store id and checked by their plain BLAKE3. A node mounts an flist
//! read-only and fetches only the chunks a container reads.
//!
//! # Modules
//!
//! - [`model`](Flist): the flist, its versioned encoding and
//!   [`Flist::validate`]. Pure.
//! - [`layer`]: applies OCI/Docker tar layers in order ([`Layers`]), with the
//!   image-spec rules (whiteouts, opaque directories, hard links across
//!   layers, replacement of a different type, implicit parents).
//! - [`sink`]: where file contents go ([`ContentSink`]); [`ChunkingSink`]
//!   cuts each file on its own with FastCDC and names every chunk.
//! - [`oci`]: [`import_image`] reads a `docker save` tarball, an OCI layout
//!   directory or an OCI archive (a tar of a layout).
//! - `build` (feature `testing`, never in the product): `ImageBuilder`
//!   writes small, real OCI / docker-save images from host files, for tests.
//!
//! # Import in two passes
//!
//! Pass 1 reads every layer once, in order, and applies only metadata: each
//! regular file remembers where its bytes are (layer, tar entry number). The
//! same read hashes the compressed blob (sha256, checked against its
//! descriptor digest) and the uncompressed tar (checked against the config's
//! `rootfs.diff_ids`). Pass 2 starts only when every digest has matched: it
//! reads, layer by layer and sequentially, the contents of the files that
//! survive the final tree and hands each to the [`ContentSink`] once (a hard
//! linked file once per inode). Files deleted or overwritten by later layers
//! cost no chunking, hashing or storage. Uncompressed layers are read in
//! place (seeking inside the file or the outer tar); a gzip or zstd layer is
//! decompressed a second time in pass 2 rather than spooled to disk — CPU
//! rather than temporary disk, and pass 2 stops reading a layer after its
//! last surviving file. Nothing is loaded whole in memory except the small
//! JSON documents (at most [`oci::MAX_JSON_BYTES`]) and the metadata of one
//! layer's entries.
//!
//! # Trust
//!
//! Images are untrusted input. Every blob is checked against its digest and
//! a mismatch fails the whole import (nothing is returned, the sink has seen
//! nothing). Paths are normalised (`./`, leading `/`, `.`); a `..` that
//! would climb above the root, a name over 255 bytes, a path over 4096
//! bytes, a NUL byte, more than [`layer::MAX_INODES`] inodes or
//! [`layer::MAX_LAYERS`] layers, a hard link to a missing file or to a
//! directory, a parent that is not a directory, and unsupported tar entry
//! types (sparse files, ...) are refused with a typed error, never applied.
//! Symlinks in the *parents* of an entry are followed inside the image root
//! (an absolute target or a `..` stops at the root, as a chrooted
//! extraction would), so nothing can point outside the tree. JSON documents
//! are size-limited and blob names are taken from digests only after
//! checking they are 64 hex digits. The input file is assumed not to change
//! during the import: pass 2 re-reads it and checks only sizes, not digests
//! (the flist's chunk hashes always describe the bytes actually chunked).
//!
//! # Limits
//!
//! A gzip-compressed outer archive (`docker save | gzip`) is refused: the
//! outer tar must be seekable. Image signatures, foreign layers fetched from
//! URLs and non-`linux` images beyond reading their config are not handled.
//! xattrs are read from PAX `SCHILY.xattr.*` records only.

#[cfg(any(test, feature = "testing"))]
pub mod build;
pub mod layer;
#[cfg(any(test, feature = "testing"))]
mod memory_sink;
mod model;
pub mod oci;
pub mod sink;
pub mod targuard;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_import;

#[cfg(any(test, feature = "testing"))]
pub use build::{busybox_image, busybox_with_program, EntryKind, ImageBuilder, LayerEntry};
pub use layer::{LayerSource, Layers};
#[cfg(any(test, feature = "testing"))]
pub use memory_sink::MemorySink;
pub use model::{
    FileChunk, Flist, FlistStats, ImageConfig, Inode, InodeKind, FLIST_FORMAT, FLIST_MAGIC,
    MAX_DECODED_BYTES, ROOT,
};
pub use oci::{import_image, import_image_with, ImportLimits, ImportedImage};
pub use sink::{ChunkingSink, ContentSink};

/// What can go wrong with an flist or an image import.
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
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image (its JSON documents, layout or archive) is malformed or
    /// not supported.
    #[error("image: {0}")]
    Image(String),
    /// A blob does not match its digest (or its size).
    #[error("blob {blob}: expected {expected}, found {actual}")]
    Digest {
        /// The blob: its path in the image and what it is.
        blob: String,
        /// The digest (or size) its reference promised.
        expected: String,
        /// What its bytes have.
        actual: String,
    },
    /// A layer entry that cannot be applied (e.g. an escaping path).
    #[error("layer {layer}, entry {path:?}: {reason}")]
    Layer {
        /// Index of the layer (0 = bottom).
        layer: usize,
        /// The entry's path as written in the tar.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// An input exceeds a limit (inodes, layers, sizes).
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// The content sink failed.
    #[error("content sink: {0}")]
    Sink(String),
}

impl FlistError {
    /// An [`FlistError::Io`] with context.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FlistError {
        let what = what.into();
        move |source| FlistError::Io { what, source }
    }
}
