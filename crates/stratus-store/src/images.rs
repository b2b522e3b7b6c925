//! Container images: OCI images imported as flists whose file contents are
//! chunks of the object store.
//!
//! A tenant's images live in its images bucket
//! ([`stratus_state::objects::images_bucket`], versioned, tenant dedupe
//! scope), as two kinds of objects:
//!
//! * `flists/NAME:TAG`: the encoded [`Flist`]; its user metadata names the
//!   image digest and the content object. Every import of a tag is a new
//!   version, so old versions stay runnable until removed.
//! * `content/<digest>`: the image's file contents, one chunk list in which
//!   every file starts a chunk (files are chunked one by one), so chunks
//!   dedupe across images, versions and the tenant's ordinary objects. This
//!   object is what keeps the chunks referenced (garbage collection).
//!
//! Import runs here, on a replica, because only replicas hold scope keys:
//! the importer's chunks go straight into the put pipeline (pre-chunked).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use stratus_flist::{ChunkingSink, FlistError};
use stratus_state::objects::{
    images_bucket, Bucket, DedupeScope, KeyScope, ObjectVersion, StoreCommand, Versioning,
};
use stratus_types::{ErrorCode, ImageRef};
use tokio::sync::mpsc;

use crate::write::PutMeta;
use crate::{now_ms, Store, StoreError};

/// Content type of an encoded flist.
pub const FLIST_CONTENT_TYPE: &str = "application/vnd.stratus.flist";
const FLISTS: &str = "flists/";
const CONTENT: &str = "content/";
/// Largest encoded flist a replica reads back into memory.
const MAX_FLIST_OBJECT: u64 = 256 * 1024 * 1024;

/// One stored version of an image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImageInfo {
    /// `NAME:TAG`.
    pub name: String,
    /// Version of its flist object: what a workload pins.
    pub version_id: String,
    /// `sha256:<hex>` of the image manifest.
    pub digest: String,
    /// When it was imported (ms since the Unix epoch).
    pub created_ms: u64,
    /// Regular files.
    pub files: u64,
    /// Bytes of the files.
    pub bytes: u64,
    /// Chunks of the files.
    pub chunks: u64,
    /// Size of the encoded flist.
    pub flist_bytes: u64,
}

impl ImageInfo {
    /// The reference a workload pins to run this version.
    pub fn pinned(&self) -> ImageRef {
        // `name` is normalized (`NAME:TAG`, see [`normalize_image_name`]).
        let (name, tag) = self.name.rsplit_once(':').unwrap_or((&self.name, "latest"));
        ImageRef {
            name: name.to_string(),
            tag: tag.to_string(),
            version: self.version_id.clone(),
        }
    }
}

/// What an import stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// The image as stored.
    pub image: ImageInfo,
    /// Names found in the input.
    pub tags: Vec<String>,
    /// Layers applied.
    pub layers: usize,
    /// Bytes of the (compressed) layers read.
    pub layer_bytes: u64,
    /// Chunks not stored before (the rest deduped).
    pub new_chunks: u64,
    /// Bytes of pieces written to storage nodes.
    pub piece_bytes: u64,
}

/// `NAME[:TAG]` → `NAME:TAG` (tag `latest` by default), checked: NAME is
/// 1–200 characters of a-z, 0-9, `.`, `_`, `-`, `/` (and a registry host's
/// `:PORT` is not part of a local name); TAG 1–128 of A-Z, a-z, 0-9, `_`,
/// `.`, `-`.
pub fn normalize_image_name(name: &str) -> Result<String, StoreError> {
    let bad = |m: &str| StoreError::invalid(format!("image name {name:?}: {m}"));
    let (n, tag) = match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (name, "latest"),
    };
    if n.is_empty() || n.len() > 200 {
        return Err(bad("the name must be 1-200 characters"));
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
        || n.starts_with(['.', '/', '-'])
        || n.contains("..")
        || n.contains("//")
    {
        return Err(bad("use a-z, 0-9, '.', '_', '-' and '/'"));
    }
    if tag.is_empty()
        || tag.len() > 128
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(bad(
            "the tag must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', '-'",
        ));
    }
    Ok(format!("{n}:{tag}"))
}

fn info_of(name: &str, v: &ObjectVersion) -> ImageInfo {
    let num = |k: &str| v.user_meta.get(k).and_then(|x| x.parse().ok()).unwrap_or(0);
    ImageInfo {
        name: name.to_string(),
        version_id: v.version_id.clone(),
        digest: v.user_meta.get("digest").cloned().unwrap_or_default(),
        created_ms: v.created_ms,
        files: num("files"),
        bytes: num("bytes"),
        chunks: num("chunks"),
        flist_bytes: v.size,
    }
}

impl Store {
    /// Creates the tenant's images bucket if it does not exist yet.
    pub(crate) async fn images_bucket(&self, tenant: &str) -> Result<String, StoreError> {
        let name = images_bucket(tenant);
        if self.read(|s| s.store.buckets.contains_key(&name)) {
            return Ok(name);
        }
        let created = self
            .write(StoreCommand::CreateBucket {
                bucket: Bucket {
                    name: name.clone(),
                    tenant: tenant.to_string(),
                    profile: None,
                    scope: DedupeScope::Tenant,
                    versioning: Versioning::Enabled,
                    created_ms: now_ms(),
                },
            })
            .await;
        match created {
            Ok(_) => Ok(name),
            // Created concurrently by another import.
            Err(e)
                if e.code() == ErrorCode::Conflict
                    && self.read(|s| s.store.bucket_of(tenant, &name).is_ok()) =>
            {
                Ok(name)
            }
            Err(e) => Err(e),
        }
    }

    /// Imports the image at `path` (a `docker save` tarball, an OCI layout
    /// directory or its tar) for `tenant`, as `name` (`NAME[:TAG]`; the
    /// input's own tag when `None`).
    ///
    /// Every layer blob is checked against its digest before anything is
    /// committed; an import that fails commits no image (packs it wrote are
    /// reclaimed by garbage collection).
    pub async fn import_image(
        &self,
        tenant: &str,
        path: PathBuf,
        name: Option<&str>,
    ) -> Result<ImportReport, StoreError> {
        let given = name.map(normalize_image_name).transpose()?;
        let bucket = self.images_bucket(tenant).await?;
        let kek = self.kek()?;
        let scope =
            self.read(|s| Store::scope_key(&kek, s, &KeyScope::Tenant(tenant.to_string())))?;
        let params = self.inner.cfg.chunker;
        let limits = self.inner.cfg.image_limits;
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let importer = tokio::task::spawn_blocking(move || {
            let mut sink = ChunkingSink::new(params, scope, |_, bytes: &[u8]| {
                tx.blocking_send(Bytes::copy_from_slice(bytes))
                    .map_err(|_| FlistError::Image("the upload of the contents stopped".into()))
            })?;
            stratus_flist::import_image_with(&path, None, &mut sink, &limits)
        });
        let body =
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok::<_, std::io::Error>);
        let ingest = self.ingest(tenant, &bucket, body, [0; 32], true);
        let (ingested, imported) = tokio::join!(ingest, importer);
        let imported = imported
            .map_err(StoreError::thread("import"))?
            .map_err(StoreError::Image)?;
        let ing = ingested?;
        let name = match given {
            Some(n) => n,
            None => {
                let tag = imported.tags.first().ok_or_else(|| {
                    StoreError::invalid("the image names no tag; give it a name (NAME[:TAG])")
                })?;
                normalize_image_name(tag.rsplit('/').next().unwrap_or(tag))?
            }
        };
        let stats = imported.flist.stats();
        let digest_hex = imported
            .digest
            .strip_prefix("sha256:")
            .unwrap_or(&imported.digest)
            .to_string();
        let content_key = format!("{CONTENT}{digest_hex}");
        let content = self
            .write(StoreCommand::PutObject {
                tenant: tenant.to_string(),
                bucket: bucket.clone(),
                key: content_key.clone(),
                version: ObjectVersion {
                    version_id: String::new(),
                    size: ing.size,
                    etag: ing.md5.clone(),
                    blake3: ing.blake3.clone(),
                    created_ms: now_ms(),
                    content_type: Some("application/vnd.stratus.image-content".into()),
                    user_meta: BTreeMap::new(),
                    data: Some(ing.data.clone()),
                },
            })
            .await?;
        let encoded = imported.flist.encode().map_err(StoreError::Flist)?;
        let flist_bytes = encoded.len() as u64;
        let user_meta = BTreeMap::from([
            ("digest".to_string(), imported.digest.clone()),
            ("content".to_string(), content_key),
            (
                "content-version".to_string(),
                content.id.unwrap_or_default(),
            ),
            ("files".to_string(), stats.files.to_string()),
            ("bytes".to_string(), stats.bytes.to_string()),
            ("chunks".to_string(), stats.chunks.to_string()),
        ]);
        let put = self
            .put(
                tenant,
                &bucket,
                &format!("{FLISTS}{name}"),
                PutMeta {
                    content_type: Some(FLIST_CONTENT_TYPE.into()),
                    user_meta: user_meta.clone(),
                    ..PutMeta::default()
                },
                futures::stream::iter([Ok(Bytes::from(encoded))]),
            )
            .await?;
        Ok(ImportReport {
            image: ImageInfo {
                name,
                version_id: put.version_id,
                digest: imported.digest,
                created_ms: now_ms(),
                files: stats.files,
                bytes: stats.bytes,
                chunks: stats.chunks,
                flist_bytes,
            },
            tags: imported.tags,
            layers: imported.layers,
            layer_bytes: imported.layer_bytes,
            new_chunks: ing.new_chunks + put.new_chunks,
            piece_bytes: ing.piece_bytes + put.piece_bytes,
        })
    }

    /// Every stored version of the tenant's images, by name, newest last.
    pub fn list_images(&self, tenant: &str) -> Vec<ImageInfo> {
        let bucket = images_bucket(tenant);
        self.read(|s| {
            let (keys, _) = s.store.list_keys(&bucket, FLISTS, None, usize::MAX);
            keys.iter()
                .flat_map(|(k, versions)| {
                    let name = &k[FLISTS.len()..];
                    versions
                        .iter()
                        .filter(|v| !v.is_delete_marker())
                        .map(move |v| info_of(name, v))
                })
                .collect()
        })
    }

    /// The latest version of image `name` (`NAME[:TAG]`).
    pub fn resolve_image(&self, tenant: &str, name: &str) -> Result<ImageInfo, StoreError> {
        let name = normalize_image_name(name)?;
        let bucket = images_bucket(tenant);
        self.read(|s| {
            let v = s
                .store
                .version(&bucket, &format!("{FLISTS}{name}"), None)
                .map_err(|_| {
                    StoreError::not_found(format!(
                        "image {name} does not exist; import it with `stratus image import`"
                    ))
                })?;
            Ok(info_of(&name, &v))
        })
    }

    /// The encoded flist of a pinned image version.
    pub async fn image_flist(&self, tenant: &str, image: &ImageRef) -> Result<Vec<u8>, StoreError> {
        let bucket = images_bucket(tenant);
        let key = format!("{FLISTS}{}", image.name_tag());
        let (version, mut body) = self
            .get(tenant, &bucket, &key, Some(&image.version), None)
            .await?;
        if version.size > MAX_FLIST_OBJECT {
            return Err(StoreError::internal(format!(
                "flist of {} is {} bytes, over the {MAX_FLIST_OBJECT} limit",
                image.name, version.size
            )));
        }
        let mut out = Vec::with_capacity(version.size as usize);
        while let Some(part) = body.next().await {
            out.extend_from_slice(&part?);
        }
        Ok(out)
    }

    /// Removes every version of image `name` and the contents no remaining
    /// version uses. Returns the versions removed.
    pub async fn delete_image(&self, tenant: &str, name: &str) -> Result<usize, StoreError> {
        let name = normalize_image_name(name)?;
        let bucket = images_bucket(tenant);
        let key = format!("{FLISTS}{name}");
        let versions: Vec<ObjectVersion> = self.read(|s| s.store.versions(&bucket, &key));
        if versions.iter().all(|v| v.is_delete_marker()) {
            return Err(StoreError::not_found(format!(
                "image {name} does not exist"
            )));
        }
        for v in &versions {
            self.write(StoreCommand::DeleteObject {
                tenant: tenant.to_string(),
                bucket: bucket.clone(),
                key: key.clone(),
                version_id: Some(v.version_id.clone()),
                now_ms: now_ms(),
            })
            .await?;
        }
        // Contents no remaining image version names.
        let (used, contents): (Vec<String>, Vec<(String, Vec<String>)>) = self.read(|s| {
            let (flists, _) = s.store.list_keys(&bucket, FLISTS, None, usize::MAX);
            let used = flists
                .iter()
                .flat_map(|(_, vs)| {
                    vs.iter()
                        .filter_map(|v| v.user_meta.get("content").cloned())
                })
                .collect();
            let (contents, _) = s.store.list_keys(&bucket, CONTENT, None, usize::MAX);
            let contents = contents
                .into_iter()
                .map(|(k, vs)| (k, vs.iter().map(|v| v.version_id.clone()).collect()))
                .collect();
            (used, contents)
        });
        for (k, ids) in contents.into_iter().filter(|(k, _)| !used.contains(k)) {
            for id in ids {
                self.write(StoreCommand::DeleteObject {
                    tenant: tenant.to_string(),
                    bucket: bucket.clone(),
                    key: k.clone(),
                    version_id: Some(id),
                    now_ms: now_ms(),
                })
                .await?;
            }
        }
        Ok(versions.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(normalize_image_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_image_name("lib/web:1.2").unwrap(), "lib/web:1.2");
        assert_eq!(
            normalize_image_name("localhost:5000/web").unwrap(),
            "localhost:5000/web:latest"
        );
        for bad in ["", ":x", "UPPER", "a/../b", "/abs", "a:", "a:t@g", "a b"] {
            assert!(normalize_image_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_refs_round_trip() {
        let r = ImageRef {
            name: "lib/web".into(),
            tag: "1.2".into(),
            version: "000000000000002a".into(),
        };
        assert_eq!(r.to_string().parse::<ImageRef>().ok(), Some(r));
        assert!("blake3:abc".parse::<ImageRef>().is_err());
        assert!("image:web:1@".parse::<ImageRef>().is_err());
    }
}
