//! Image routes: import an image archive, list and remove images.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use futures::TryStreamExt;
use serde::Deserialize;
use stratus_store::{ImageInfo, ImportReport};
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{AppState, ErrorBody};

/// Which image.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ImageQuery {
    /// `NAME[:TAG]`. On import: the name to store the image under (default:
    /// the tag recorded in the archive).
    pub name: Option<String>,
}

/// Imports an image archive: a `docker save` tarball or an OCI image layout
/// as a tar (`skopeo copy ... oci-archive:FILE`). The body is spooled to the
/// replica's disk, every blob is checked against its digest, and the file
/// tree becomes an flist whose contents are chunks of the object store.
#[utoipa::path(post, path = "/v1/images", tag = "images", security(("bearer" = [])),
    params(ImageQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 201, body = ImportReport), (status = 400, body = ErrorBody)))]
pub async fn import(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<ImageQuery>,
    body: Body,
) -> Result<(StatusCode, Json<ImportReport>), ApiError> {
    let spool = tempfile::Builder::new()
        .prefix("stratus-image-")
        .tempfile()
        .map_err(ApiError::Spool)?;
    let path = spool.path().to_path_buf();
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(ApiError::Spool)?);
    let cap = st.store.config().image_limits.max_archive_bytes;
    let mut spooled = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(data) = stream.try_next().await.map_err(ApiError::Body)? {
        spooled += data.len() as u64;
        if spooled > cap {
            return Err(ApiError::too_large(format!(
                "the image archive is over {cap} bytes (the upload limit)"
            )));
        }
        file.write_all(&data).await.map_err(ApiError::Spool)?;
    }
    file.flush().await.map_err(ApiError::Spool)?;
    drop(file);
    let report = st
        .store
        .import_image(&c.tenant, path, q.name.as_deref())
        .await?;
    drop(spool);
    Ok((StatusCode::CREATED, Json(report)))
}

/// Every stored version of the caller's images (newest last per name).
#[utoipa::path(get, path = "/v1/images", tag = "images", security(("bearer" = [])),
    params(ImageQuery),
    responses((status = 200, body = [ImageInfo])))]
pub async fn list(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<ImageQuery>,
) -> Result<Json<Vec<ImageInfo>>, ApiError> {
    let all = st.store.list_images(&c.tenant);
    Ok(Json(match q.name {
        Some(n) => {
            let n = stratus_store::normalize_image_name(&n)?;
            all.into_iter().filter(|i| i.name == n).collect()
        }
        None => all,
    }))
}

/// Removes every version of an image (and the contents no other image
/// version uses). Workloads that run it must be stopped first.
#[utoipa::path(delete, path = "/v1/images", tag = "images", security(("bearer" = [])),
    params(ImageQuery),
    responses((status = 200, body = usize), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<ImageQuery>,
) -> Result<Json<usize>, ApiError> {
    let name = q
        .name
        .ok_or_else(|| ApiError::bad_request("give the image: ?name=NAME[:TAG]"))?;
    let name = stratus_store::normalize_image_name(&name)?;
    let users: Vec<String> = st.control.state().read(|s| {
        s.workloads
            .values()
            .filter(|w| {
                w.tenant == c.tenant
                    && !w.stopped
                    && w.module.image().is_some_and(|i| i.name_tag() == name)
            })
            .map(|w| w.id.to_string())
            .collect()
    });
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "image {name} is used by {}; stop them first",
            users.join(", ")
        )));
    }
    Ok(Json(st.store.delete_image(&c.tenant, &name).await?))
}
