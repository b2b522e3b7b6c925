//! Fetching a module: from the node's cache, else chunk by chunk from a
//! control replica.
//!
//! A module stored as an object (`stratus_state::modules`) is fetched as an
//! image's files are: its chunk list ([`stratus_proto::Request::GetModuleChunks`]), then
//! every chunk ([`stratus_proto::Request::GetChunk`], decrypted by the replica), a few at a
//! time. The replica is not trusted with the bytes: each chunk must have
//! the length the list gives, the module is at most
//! [`MAX_MODULE_OBJECT_BYTES`], and the whole module must hash to its BLAKE3
//! address before it is cached or compiled. Modules of the first layouts,
//! held inline in the state, are fetched whole ([`stratus_proto::Request::GetModule`]) and
//! checked the same way.
//!
//! Verified modules are cached in `DATA/agent/modules/` (checked again when
//! read back) and, up to [`MAX_MEMORY_CACHED_MODULE`] bytes, in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use stratus_net::{CallError, Connection};
use stratus_proto::{rpc, ModuleChunk, RpcError};
use stratus_state::modules::MAX_MODULE_OBJECT_BYTES;
use stratus_state::workloads::module_hash;
use tokio_util::sync::CancellationToken;

use super::Runner;

/// Modules up to this size are also kept in memory once verified.
const MAX_MEMORY_CACHED_MODULE: usize = 16 * 1024 * 1024;
/// Chunks of one module fetched at once.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Time for one request.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a fetch failed (retried after a pause).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The replica has no chunk list for it: it may be stored inline
    /// (first layouts).
    #[error("no chunk list")]
    Inline,
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// Checks a chunk list against the limit and its declared size.
fn check_list(size: u64, chunks: &[ModuleChunk]) -> Result<(), String> {
    if size > MAX_MODULE_OBJECT_BYTES {
        return Err(format!(
            "the module is {size} bytes, over the {MAX_MODULE_OBJECT_BYTES} limit"
        ));
    }
    let sum: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
    if sum != size {
        return Err(format!("its chunks add up to {sum} bytes, not {size}"));
    }
    Ok(())
}

async fn fetch_chunks(conn: &Connection, tenant: &str, hash: &str) -> Result<Vec<u8>, FetchError> {
    let req = rpc::GetModuleChunks {
        tenant: tenant.into(),
        hash: hash.into(),
    };
    let (size, chunks) = match conn.rpc(req, CALL_TIMEOUT).await {
        Ok(list) => (list.size, list.chunks),
        // Not stored as an object here (a module of the first layouts, or
        // a replica that predates modules as objects): ask for it whole.
        Err(CallError::Rpc(RpcError::Refused { .. })) => return Err(FetchError::Inline),
        Err(e) => return Err(FetchError::Failed(e.to_string())),
    };
    check_list(size, &chunks).map_err(FetchError::Failed)?;
    let mut bytes = Vec::with_capacity(size as usize);
    let mut parts = futures::stream::iter(chunks)
        .map(|c| async move {
            let req = rpc::GetChunk {
                tenant: tenant.into(),
                id: c.id,
            };
            match conn.rpc(req, CALL_TIMEOUT).await {
                Ok(b) if b.len() == c.len as usize => Ok(b),
                Ok(b) => Err(FetchError::Failed(format!(
                    "a chunk of {} bytes came back as {}",
                    c.len,
                    b.len()
                ))),
                Err(e) => Err(FetchError::Failed(e.to_string())),
            }
        })
        .buffered(CHUNKS_IN_FLIGHT);
    while let Some(part) = parts.try_next().await? {
        bytes.extend_from_slice(&part);
    }
    Ok(bytes)
}

async fn fetch_inline(conn: &Connection, hash: &str) -> Result<Vec<u8>, FetchError> {
    conn.rpc(rpc::GetModule { hash: hash.into() }, CALL_TIMEOUT)
        .await
        .map_err(|e| FetchError::Failed(e.to_string()))
}

impl Runner {
    fn remember(&self, hash: &str, bytes: Vec<u8>) -> Arc<Vec<u8>> {
        let m = Arc::new(bytes);
        if m.len() <= MAX_MEMORY_CACHED_MODULE {
            if let Ok(mut c) = self.inner.modules.lock() {
                c.insert(hash.into(), m.clone());
            }
        }
        m
    }

    /// Module `hash` of `tenant`, verified (`None`: cancelled first). Waits
    /// for a connection when the module is not on this node yet.
    pub(super) async fn module(
        &self,
        tenant: &str,
        hash: &str,
        cancel: &CancellationToken,
    ) -> Option<Arc<Vec<u8>>> {
        if let Some(m) = self
            .inner
            .modules
            .lock()
            .ok()
            .and_then(|m| m.get(hash).cloned())
        {
            return Some(m);
        }
        let path = self.inner.dir.join("modules").join(hash.replace(':', "-"));
        let cached = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .ok()
                .and_then(Result::ok)
        };
        if let Some(bytes) = cached {
            if module_hash(&bytes) == hash {
                return Some(self.remember(hash, bytes));
            }
        }
        loop {
            if let Some(conn) = self.connection() {
                let got = match fetch_chunks(&conn, tenant, hash).await {
                    Err(FetchError::Inline) => fetch_inline(&conn, hash).await,
                    other => other,
                };
                match got {
                    Ok(bytes) if module_hash(&bytes) == hash => {
                        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
                        let tmp = path.with_extension("part");
                        if std::fs::write(&tmp, &bytes).is_ok() {
                            let _ = std::fs::rename(&tmp, &path);
                        }
                        return Some(self.remember(hash, bytes));
                    }
                    Ok(_) => {
                        tracing::warn!(%hash, "module bytes do not match their hash; refusing them")
                    }
                    Err(e) => {
                        tracing::debug!(%hash, error = %e, "module fetch failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.inner.conn_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_list_must_add_up_and_stay_under_the_limit() {
        let c = |len| ModuleChunk { id: [0; 32], len };
        assert!(check_list(30, &[c(10), c(20)]).is_ok());
        assert!(check_list(31, &[c(10), c(20)]).is_err());
        let huge = vec![c(u32::MAX); (MAX_MODULE_OBJECT_BYTES / u64::from(u32::MAX)) as usize + 1];
        let size = huge.iter().map(|c| u64::from(c.len)).sum();
        assert!(check_list(size, &huge)
            .expect_err("over the limit")
            .contains("limit"));
    }
}
