//! Module upload: the body streams into the object store
//! (`stratus_store::modules`), never whole in memory, up to
//! [`MAX_MODULE_BYTES`].
//!
//! A module is checked before it is committed, so a broken one never
//! reaches a node: one of at most [`FULLY_CHECKED_BYTES`] (the limit of the
//! first layouts) is validated whole as it was before; a larger binary has
//! its header checked here and is validated whole by the node that compiles
//! it (a failure is reported on the instance). WAT text is compiled by the
//! node and so is bounded by [`FULLY_CHECKED_BYTES`].

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use stratus_types::ErrorCode;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::workloads::ModuleRef;
use crate::AppState;

/// Largest module accepted by `POST /v1/modules`, in bytes (1 GiB).
pub const MAX_MODULE_BYTES: u64 = stratus_state::modules::MAX_MODULE_OBJECT_BYTES;

/// Modules up to this size are validated whole at upload; WAT text may not
/// be larger.
pub const FULLY_CHECKED_BYTES: usize = 16 * 1024 * 1024;

/// The first [`FULLY_CHECKED_BYTES`] of an upload, kept for its check.
#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    total: u64,
}

impl Head {
    /// Takes one part of the body; `Err` for WAT text past the bound.
    fn take(&mut self, part: &[u8]) -> Result<(), std::io::Error> {
        self.total = self.total.saturating_add(part.len() as u64);
        let room = FULLY_CHECKED_BYTES.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&part[..part.len().min(room)]);
        if self.total > FULLY_CHECKED_BYTES as u64 && !self.bytes.starts_with(b"\0asm") {
            return Err(std::io::Error::other(wat_too_large()));
        }
        Ok(())
    }
}

fn wat_too_large() -> String {
    format!(
        "WAT text modules are limited to {FULLY_CHECKED_BYTES} bytes; compile it to a WebAssembly binary (up to {MAX_MODULE_BYTES} bytes)"
    )
}

fn module_too_large() -> ApiError {
    ApiError::too_large(format!(
        "the module is larger than the limit of {MAX_MODULE_BYTES} bytes (1 GiB)"
    ))
}

/// Refuses bytes that are neither a valid WebAssembly binary (module or
/// component) nor WAT text, so a broken module never reaches a node.
pub(crate) fn validate_module(bytes: &[u8]) -> Result<(), ApiError> {
    let bad = ApiError::InvalidModule;
    if bytes.is_empty() {
        return Err(bad("empty".into()));
    }
    if bytes.starts_with(b"\0asm") {
        // The default feature set includes the component model (crate feature).
        wasmparser::Validator::new()
            .validate_all(bytes)
            .map(|_| ())
            .map_err(|e| bad(e.to_string()))
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| bad("neither a WebAssembly binary (\\0asm) nor WAT text".into()))?;
        wat::parse_str(text)
            .map(|_| ())
            .map_err(|e| bad(e.to_string()))
    }
}

/// Checks the header of a binary too large to validate whole here.
fn validate_header(head: &[u8]) -> Result<(), ApiError> {
    let bad = ApiError::InvalidModule;
    match wasmparser::Parser::new(0).parse(head, false) {
        Ok(wasmparser::Chunk::Parsed {
            payload: wasmparser::Payload::Version { .. },
            ..
        }) => Ok(()),
        Ok(_) => Err(bad("no WebAssembly header".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Uploads a WASM module (raw bytes, streamed, up to 1 GiB).
///
/// Returns its content address. The module is stored as an object of the
/// caller's images bucket and counts against its stored bytes and module
/// quotas.
#[utoipa::path(post, path = "/v1/modules", tag = "workloads", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = ModuleRef), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "the module is larger than 1 GiB (or WAT text larger than 16 MiB)", body = ErrorBody)))]
pub async fn put_module(
    State(st): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ModuleRef>), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MODULE_BYTES) {
        return Err(module_too_large());
    }
    if !st.store.has_storage() {
        return put_inline_module(&st, &c, body).await;
    }
    let head = Arc::new(Mutex::new(Head::default()));
    let seen = head.clone();
    let stream = body.into_data_stream().map(move |part| {
        let part = part.map_err(std::io::Error::other)?;
        match seen.lock() {
            Ok(mut h) => h.take(&part)?,
            Err(_) => return Err(std::io::Error::other("upload check poisoned")),
        }
        Ok(part)
    });
    let ingested = st
        .store
        .ingest_module(&c.tenant, stream, MAX_MODULE_BYTES)
        .await;
    let head = match head.lock() {
        Ok(mut h) => std::mem::take(&mut *h),
        Err(_) => return Err(ApiError::internal("upload check poisoned")),
    };
    let ingested = match ingested {
        Ok(m) => m,
        Err(e) if e.code() == ErrorCode::TooLarge => return Err(module_too_large()),
        Err(_) if head.total > FULLY_CHECKED_BYTES as u64 && !head.bytes.starts_with(b"\0asm") => {
            return Err(ApiError::too_large(wat_too_large()))
        }
        Err(e) => return Err(e.into()),
    };
    if head.total <= FULLY_CHECKED_BYTES as u64 {
        validate_module(&head.bytes)?;
    } else {
        validate_header(&head.bytes)?;
    }
    let stored = st.store.commit_module(ingested).await?;
    Ok((
        StatusCode::CREATED,
        Json(ModuleRef {
            hash: stored.hash,
            size: stored.size as usize,
        }),
    ))
}

/// A cluster that lends compute but no disk keeps modules up to 16 MiB in
/// the replicated state, as before modules were objects (the agent fetches
/// them whole with `GetModule`); larger ones need storage nodes.
async fn put_inline_module(
    st: &AppState,
    c: &Caller,
    body: Body,
) -> Result<(StatusCode, Json<ModuleRef>), ApiError> {
    let bytes = axum::body::to_bytes(body, FULLY_CHECKED_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "this cluster has no storage node, so modules are kept in the replicated state, \
                     up to {FULLY_CHECKED_BYTES} bytes (16 MiB); add a node lending disk to upload \
                     larger ones (up to {MAX_MODULE_BYTES} bytes)"
            ))
        })?;
    validate_module(&bytes)?;
    let hash = stratus_state::workloads::module_hash(&bytes);
    let size = bytes.len();
    st.control
        .write(stratus_state::Command::PutTenantModule {
            tenant: c.tenant.clone(),
            bytes: bytes.to_vec(),
            now_ms: stratus_control::now_ms(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(ModuleRef { hash, size })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_validated_at_upload() {
        let module = wat::parse_str("(module (func (export \"_start\")))").expect("wat");
        let component = wat::parse_str("(component)").expect("wat");
        assert!(validate_module(&module).is_ok());
        assert!(
            validate_module(&component).is_ok(),
            "preview 2 components are accepted"
        );
        assert!(validate_module(b"(module)").is_ok(), "WAT text is accepted");
        for bad in [
            &b""[..],
            b"\0asm\x01\0\0\0garbage",
            b"\xff\xfe",
            b"(module (func (unknown)))",
        ] {
            let e = validate_module(bad).expect_err("refused");
            assert!(e.to_string().starts_with("invalid module"), "{e}");
        }
        assert!(validate_header(&module).is_ok());
        assert!(validate_header(b"\0asm\x63\0\0\0").is_err(), "bad version");
    }

    /// WAT text past the bound is refused while streaming, before the rest
    /// of the body is read; a binary is only kept up to the bound.
    #[test]
    fn the_head_kept_for_the_check_is_bounded() {
        let mut wat = Head::default();
        let part = vec![b' '; FULLY_CHECKED_BYTES / 2];
        assert!(wat.take(&part).is_ok() && wat.take(&part).is_ok());
        assert!(wat.take(b" ").is_err());
        let mut bin = Head::default();
        assert!(bin.take(b"\0asm\x01\0\0\0").is_ok());
        for _ in 0..3 {
            assert!(bin.take(&part).is_ok());
        }
        assert_eq!(bin.bytes.len(), FULLY_CHECKED_BYTES);
        assert_eq!(bin.total, 8 + 3 * part.len() as u64);
    }
}
