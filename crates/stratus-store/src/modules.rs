//! WASM modules as objects: a module is streamed into its tenant's images
//! bucket (the same put pipeline as any object: chunked, deduplicated in the
//! tenant's scope, encrypted, erasure coded) and committed under
//! `modules/<hex BLAKE3>` together with the state's reference to it
//! ([`Command::PutModuleObject`], see `stratus_state::modules`).
//!
//! The images bucket is reused rather than a sibling bucket: it is already
//! the tenant's reserved, system-named bucket (no other tenant can own it),
//! versioned, in the tenant's dedupe scope (so a module dedupes against the
//! tenant's other data), created on demand, and readable by agents chunk by
//! chunk through `GetChunk`. Its keys do not collide: images use `flists/`
//! and `content/`.
//!
//! Upload happens in two steps so the caller can check what it streamed
//! (is it a WebAssembly module?) before anything becomes visible:
//! [`Store::ingest_module`] writes the chunks (an upload that is abandoned
//! or refused commits nothing; its packs are garbage), then
//! [`Store::commit_module`] commits the version and the reference in one
//! command.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use stratus_state::modules::MAX_MODULE_OBJECT_BYTES;
use stratus_state::objects::ObjectVersion;
use stratus_state::Command;

use crate::write::Ingested;
use crate::{now_ms, Store, StoreError};

/// Content type of a stored module.
pub const MODULE_CONTENT_TYPE: &str = "application/wasm";

/// A module whose chunks are stored but which is not committed yet.
pub struct IngestedModule {
    tenant: String,
    ingested: Ingested,
}

impl IngestedModule {
    /// Content address, `blake3:<hex>`.
    pub fn hash(&self) -> String {
        format!("blake3:{}", self.ingested.blake3)
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.ingested.size
    }
}

/// A committed module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredModule {
    /// Content address, `blake3:<hex>`.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Chunks not stored before (the rest deduped).
    pub new_chunks: u64,
    /// Bytes of pieces written to storage nodes.
    pub piece_bytes: u64,
}

fn too_large(limit: u64) -> StoreError {
    StoreError::ModuleTooLarge { limit }
}

impl Store {
    /// Streams a module's bytes into `tenant`'s images bucket (created if
    /// needed), refusing more than `limit` bytes (at most
    /// [`MAX_MODULE_OBJECT_BYTES`]) with [`stratus_types::ErrorCode::TooLarge`] as soon as
    /// the stream passes it. Nothing is visible until
    /// [`Store::commit_module`].
    pub async fn ingest_module<S>(
        &self,
        tenant: &str,
        body: S,
        limit: u64,
    ) -> Result<IngestedModule, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let limit = limit.min(MAX_MODULE_OBJECT_BYTES);
        let bucket = self.images_bucket(tenant).await?;
        let over = Arc::new(AtomicBool::new(false));
        let flag = over.clone();
        let mut seen = 0u64;
        let body = body.map(move |part| {
            let part = part?;
            seen = seen.saturating_add(part.len() as u64);
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(format!(
                    "the module is larger than the limit of {limit} bytes"
                )));
            }
            Ok(part)
        });
        match self.ingest(tenant, &bucket, body, [0; 32], false).await {
            Ok(ingested) => Ok(IngestedModule {
                tenant: tenant.to_string(),
                ingested,
            }),
            Err(_) if over.load(Ordering::Relaxed) => Err(too_large(limit)),
            Err(e) => Err(e),
        }
    }

    /// Commits an ingested module as its tenant's object and reference (or
    /// renews the tenant's claim on the same module stored before).
    pub async fn commit_module(&self, m: IngestedModule) -> Result<StoredModule, StoreError> {
        let hash = m.hash();
        let ing = m.ingested;
        let now = now_ms();
        self.inner
            .meta
            .write(Command::PutModuleObject {
                tenant: m.tenant,
                hash: hash.clone(),
                version: ObjectVersion {
                    version_id: String::new(),
                    size: ing.size,
                    etag: ing.md5,
                    blake3: ing.blake3,
                    created_ms: now,
                    content_type: Some(MODULE_CONTENT_TYPE.into()),
                    user_meta: BTreeMap::new(),
                    data: Some(ing.data),
                },
                now_ms: now,
            })
            .await?;
        Ok(StoredModule {
            hash,
            size: ing.size,
            new_chunks: ing.new_chunks,
            piece_bytes: ing.piece_bytes,
        })
    }
}
