//! The pure data path.
//!
//! **Owns** the bytes-to-pieces transforms (chunking, ids, compression,
//! sealing, packs, erasure coding) and key wrapping. **Does not own**
//! metadata, placement or any IO (`stratus-store`).
//!
//! No IO, no async, no clocks (its benchmark, `stratus bench datapath`, lives
//! in `stratus-bench` and uses only this crate's public API).
//! Everything a storage gateway needs to turn object bytes into
//! erasure-coded pieces that storage nodes (untrusted lenders' machines)
//! hold, and back. Storage nodes see neither plaintext nor chunk boundaries.
//!
//! # The data path
//!
//! **Write** (object bytes → pieces):
//!
//! 1. **Chunk.** [`StreamChunker`] cuts the byte stream into content-defined
//!    chunks (FastCDC 2020, default 64 KiB / 256 KiB / 1 MiB), so an insert
//!    or delete in an object changes only the chunks around it. Chunks are
//!    the same however the stream is split into pushes.
//! 2. **Identify.** [`chunk_id`] = BLAKE3 keyed hash of the plaintext under
//!    the object's [`ScopeKey`]. The gateway looks the id up in its metadata:
//!    a chunk already stored in the scope is not stored again (dedupe).
//! 3. **Seal.** [`seal_chunk`] compresses with zstd (level configurable,
//!    default 3; stored raw when zstd does not shrink it) and encrypts with
//!    AES-256-GCM under a key derived from (scope key, chunk id). The
//!    raw/compressed flag is inside the ciphertext. Sealing is convergent:
//!    equal chunks in one scope seal to equal bytes. The nonce is synthetic
//!    (a keyed hash of the payload), so two different payloads under one key
//!    (another zstd level or version) never share a nonce.
//! 4. **Pack.** [`PackBuilder`] concatenates sealed chunks, with no header,
//!    until a target size. The caller's metadata records each chunk's
//!    [`ChunkRef`] (id, plaintext length, offset and length in the pack);
//!    storage nodes never see where one chunk ends and the next begins.
//! 5. **Encode.** [`encode_stripe`] splits a pack (a stripe) into `k` data
//!    pieces plus `m` Reed–Solomon parity pieces ([`Profile`]), all the same
//!    length; each piece goes to a different storage node and is named by
//!    [`piece_id`] (plain BLAKE3, so nodes can verify what they hold).
//!
//! **Read** is the reverse: fetch any `k` pieces of the pack,
//! [`decode_stripe`], slice each chunk out by its [`ChunkRef`], and
//! [`open_chunk`] (authenticate and decrypt, decompress with a size bound
//! against decompression bombs, and check the plaintext against its id).
//! **Repair** fetches any `k` pieces and [`rebuild_pieces`] recreates lost
//! ones byte for byte.
//!
//! ```
//! use stratus_chunk::*;
//!
//! let scope = ScopeKey::tenant(&[7; 32], "acme");
//! let object = b"hello, stratus ".repeat(10_000);
//!
//! // Write: chunk, id, seal, pack, encode.
//! let mut chunker = StreamChunker::new(ChunkerParams::default())?;
//! let mut chunks = chunker.push(&object);
//! chunks.extend(chunker.finish());
//! let mut pack = PackBuilder::new(4 << 20);
//! let mut refs = Vec::new();
//! for c in &chunks {
//!     let id = chunk_id(&scope, c);
//!     let (offset, sealed_len) = pack.add(&seal_chunk(&scope, &id, c, DEFAULT_ZSTD_LEVEL));
//!     refs.push(ChunkRef { id, plain_len: c.len() as u32, offset, sealed_len });
//! }
//! let pack = pack.finish();
//! let profile = Profile { k: 4, m: 2 };
//! let pieces = encode_stripe(profile, &pack)?;
//!
//! // Read with two pieces lost.
//! let mut have: Vec<Option<Vec<u8>>> = pieces.into_iter().map(Some).collect();
//! have[0] = None;
//! have[5] = None;
//! let pack2 = decode_stripe(profile, pack.len() as u64, &have)?;
//! let mut out = Vec::new();
//! for r in &refs {
//!     let sealed = &pack2[r.offset as usize..][..r.sealed_len as usize];
//!     out.extend(open_chunk(&scope, &r.id, sealed)?);
//! }
//! assert_eq!(out, object);
//! # Ok::<(), ChunkError>(())
//! ```
//!
//! # What convergent encryption leaks
//!
//! Convergent encryption is what makes deduplication of encrypted data
//! possible, and it has a price: equal plaintexts give equal ids and equal
//! ciphertexts, within a scope. What that reveals depends on the scope.
//!
//! * **Tenant scope** ([`ScopeKey::tenant`], derived from a cluster master
//!   secret and the tenant name). Anyone holding the scope key, that is the
//!   control plane and the gateways, can confirm whether the tenant stores a
//!   given file (or any chunk of it): chunk the candidate file, compute the
//!   ids, look them up. They can also tell which of the tenant's objects
//!   share content. Other tenants learn nothing: they cannot compute this
//!   tenant's ids, and their own chunks never deduplicate against it.
//!   Storage nodes hold no key: they learn only piece sizes and counts
//!   (hence roughly pack sizes), when pieces arrive and are read, and which
//!   pieces are identical across time (a pack re-uploaded with the same
//!   content yields the same pieces and piece ids). They learn neither
//!   plaintext nor chunk boundaries nor chunk ids.
//! * **Public scope** ([`ScopeKey::public`], a fixed key everyone can
//!   compute). Ids depend on content alone, so chunks deduplicate across all
//!   tenants, and through that dedupe any tenant can tell whether a given
//!   chunk is stored by anyone (upload it and see whether it was already
//!   there, or observe the cost or latency difference). Anyone who sees
//!   public-scope ids or sealed chunks can test them against guessed content.
//!   Use it only for content that is public anyway (packages, images,
//!   datasets).
//! * **Private scope** ([`ScopeKey::private`], fresh randomness per object
//!   or per owner). No deduplication beyond that scope and nothing leaks
//!   beyond sizes (of chunks to the gateway, of pieces to storage nodes) and
//!   access patterns.
//!
//! * **Customer scope** ([`CustomerKey::scope`], S3 SSE-C: derived from a
//!   key only the client holds and a random salt per object or multipart
//!   upload; stored beside the object are the salt and a keyed check,
//!   [`CustomerSeal`]). Nobody without the key (control plane, gateway
//!   operator, storage nodes) can compute the ids or open the chunks;
//!   chunks deduplicate only within the one object (or upload), never
//!   across objects, even under the same key. The gateway sees the key and
//!   the plaintext while it serves a request that carries the key, and
//!   forgets both after. The check lets anyone holding the state test a
//!   guessed key offline (as the sealed chunks would too): a key with less
//!   than 128 bits of entropy (derived from a password) is guessable.
//!
//! In every scope, compression means a chunk's sealed length depends on its
//! content: someone who sees sealed lengths and can guess the content
//! learns something. Storage nodes see only whole-piece lengths, where
//! chunks are already mixed in a pack.

mod chunker;
mod customer;
mod erasure;
mod error;
mod ids;
mod pack;
mod seal;
pub mod wrap;

pub use chunker::{chunk_all, ChunkerParams, StreamChunker};
pub use customer::{CustomerKey, CustomerSeal};
pub use erasure::{
    decode_stripe, decode_stripe_owned, encode_stripe, piece_id, piece_len, rebuild_pieces,
    Profile, MAX_PIECES,
};
pub use error::ChunkError;
pub use ids::{ChunkId, PieceId, ScopeKey};
pub use pack::{ChunkRef, PackBuilder};
pub use seal::{
    chunk_id, open_chunk, open_chunk_in_place, open_chunk_with_limit, seal_chunk, Opened,
    DEFAULT_ZSTD_LEVEL, MAX_CHUNK_LEN, SEAL_OVERHEAD,
};
