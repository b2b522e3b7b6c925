//! Writing an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! A blob file exists only once its bytes were verified against its digest:
//! content is written to a temporary file in the same directory (a name
//! starting with `.partial-`, removed on every failure path including a
//! dropped future) and renamed into place after the digest and size check.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::RegistryError;

/// The `org.opencontainers.image.ref.name` annotation.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The OCI image index media type (of `index.json`).
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The hex part of `sha256:<64 lowercase hex>`, or an error. Digests are used
/// as file names, so nothing else may pass (no `/`, no `..`).
pub(crate) fn sha256_hex(digest: &str) -> Result<&str, RegistryError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(RegistryError::UnsupportedDigest {
            digest: digest.to_string(),
        }),
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout directory being written.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    dir: PathBuf,
    blobs: PathBuf,
}

impl Layout {
    /// Opens `dir` as a layout, creating it (and `oci-layout`, `blobs/sha256`)
    /// when missing. An existing `oci-layout` must be version 1.x.
    pub(crate) async fn open_or_create(dir: &Path) -> Result<Self, RegistryError> {
        let blobs = dir.join("blobs").join("sha256");
        tokio::fs::create_dir_all(&blobs)
            .await
            .map_err(|e| RegistryError::io(&blobs, e))?;
        let marker = dir.join("oci-layout");
        match tokio::fs::read(&marker).await {
            Ok(bytes) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidLayout {
                        path: dir.to_path_buf(),
                        reason: format!("oci-layout: {e}"),
                    })?;
                let version = v.get("imageLayoutVersion").and_then(|v| v.as_str());
                if !version.is_some_and(|v| v == "1.0.0" || v.starts_with("1.")) {
                    return Err(RegistryError::InvalidLayout {
                        path: dir.to_path_buf(),
                        reason: format!("unsupported imageLayoutVersion {version:?}"),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(dir, &marker, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
            }
            Err(e) => return Err(RegistryError::io(&marker, e)),
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            blobs,
        })
    }

    /// The layout directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` lives.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        Ok(self.blobs.join(sha256_hex(digest)?))
    }

    /// True when the blob is present with the right size and digest. A present
    /// file that fails the check is removed (it will be downloaded again).
    pub(crate) async fn has_verified_blob(
        &self,
        digest: &str,
        size: u64,
    ) -> Result<bool, RegistryError> {
        let path = self.blob_path(digest)?;
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(RegistryError::io(&path, e)),
        };
        let ok = if meta.is_file() && meta.len() == size {
            let p = path.clone();
            let actual = tokio::task::spawn_blocking(move || hash_file(&p))
                .await
                .map_err(|e| RegistryError::io(&path, std::io::Error::other(e)))?
                .map_err(|e| RegistryError::io(&path, e))?;
            actual == digest
        } else {
            false
        };
        if !ok {
            tracing::warn!(path = %path.display(), "removing a blob that fails verification");
            tokio::fs::remove_file(&path)
                .await
                .map_err(|e| RegistryError::io(&path, e))?;
        }
        Ok(ok)
    }

    /// Writes an in-memory blob after checking it against `digest`.
    pub(crate) async fn put_blob_bytes(
        &self,
        what: &'static str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let mut w = self.blob_writer(what, digest, bytes.len() as u64)?;
        w.write(bytes).await?;
        w.finish().await
    }

    /// A writer for the blob `digest` of `size` bytes.
    pub(crate) fn blob_writer(
        &self,
        what: &'static str,
        digest: &str,
        size: u64,
    ) -> Result<BlobWriter, RegistryError> {
        let target = self.blob_path(digest)?;
        let temp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&self.blobs)
            .map_err(|e| RegistryError::io(&self.blobs, e))?;
        let (file, temp) = temp.into_parts();
        Ok(BlobWriter {
            what,
            digest: digest.to_string(),
            size,
            target,
            file: tokio::fs::File::from_std(file),
            temp,
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Points `ref_name` (or, without one, an unnamed entry) at `descriptor`
    /// in `index.json`, keeping every other entry and field as it was.
    pub(crate) async fn set_index_entry(
        &self,
        mut descriptor: serde_json::Map<String, serde_json::Value>,
        ref_name: Option<&str>,
    ) -> Result<(), RegistryError> {
        let path = self.dir.join("index.json");
        let invalid = |reason: String| RegistryError::InvalidLayout {
            path: self.dir.clone(),
            reason,
        };
        let mut index: serde_json::Map<String, serde_json::Value> =
            match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("index.json: {e}")))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut m = serde_json::Map::new();
                    m.insert("schemaVersion".into(), 2.into());
                    m.insert("mediaType".into(), OCI_INDEX_MEDIA_TYPE.into());
                    m
                }
                Err(e) => return Err(RegistryError::io(&path, e)),
            };
        let digest = descriptor
            .get("digest")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_string();
        let manifests = index
            .entry("manifests")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| invalid("index.json: manifests is not an array".into()))?;
        let name_of = |m: &serde_json::Value| {
            m.get("annotations")
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .and_then(|n| n.as_str())
                .map(str::to_string)
        };
        manifests.retain(|m| match ref_name {
            Some(name) => name_of(m).as_deref() != Some(name),
            None => {
                !(name_of(m).is_none()
                    && m.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
            }
        });
        if let Some(name) = ref_name {
            let annotations = descriptor
                .entry("annotations")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(REF_NAME_ANNOTATION.into(), name.into());
            }
        }
        manifests.push(serde_json::Value::Object(descriptor));
        let bytes =
            serde_json::to_vec_pretty(&index).map_err(|e| invalid(format!("index.json: {e}")))?;
        write_atomic(&self.dir, &path, &bytes).await
    }
}

/// A blob being written through a temporary file.
pub(crate) struct BlobWriter {
    what: &'static str,
    digest: String,
    size: u64,
    target: PathBuf,
    file: tokio::fs::File,
    temp: tempfile::TempPath,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    /// Appends `chunk`; fails as soon as the blob grows past its declared size.
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> Result<(), RegistryError> {
        self.written += chunk.len() as u64;
        if self.written > self.size {
            return Err(RegistryError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.written,
            });
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| RegistryError::io(&*self.temp, e))
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The digest of the bytes written so far.
    pub(crate) fn digest_so_far(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// Checks size and digest, syncs, and renames the blob into place. On any
    /// error the temporary file is removed.
    pub(crate) async fn finish(mut self) -> Result<(), RegistryError> {
        let actual = self.digest_so_far();
        if actual != self.digest {
            return Err(RegistryError::DigestMismatch {
                what: self.what,
                expected: self.digest,
                actual,
            });
        }
        if self.written != self.size {
            return Err(RegistryError::SizeMismatch {
                digest: self.digest,
                expected: self.size,
                actual: self.written,
            });
        }
        self.file
            .flush()
            .await
            .map_err(|e| RegistryError::io(&*self.temp, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| RegistryError::io(&*self.temp, e))?;
        drop(self.file);
        let target = self.target;
        self.temp
            .persist(&target)
            .map_err(|e| RegistryError::io(&target, e.error))?;
        Ok(())
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Writes `bytes` to `path` via a temporary file in `dir` and a rename.
async fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let temp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(|e| RegistryError::io(dir, e))?;
    let (file, temp) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    file.write_all(bytes)
        .await
        .map_err(|e| RegistryError::io(&*temp, e))?;
    file.sync_all()
        .await
        .map_err(|e| RegistryError::io(&*temp, e))?;
    drop(file);
    temp.persist(path)
        .map_err(|e| RegistryError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn digest_syntax_is_strict() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(sha256_hex(&good).unwrap(), "ab".repeat(32));
        for bad in [
            "sha256:".to_string(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha512:{}", "ab".repeat(64)),
            format!("sha256:../../{}", "a".repeat(58)),
            format!("sha256:{}", "ab".repeat(33)),
            "ab".repeat(32),
        ] {
            assert!(sha256_hex(&bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn verified_blob_is_renamed_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(tmp.path()).await.unwrap();
        let data = b"hello blob".to_vec();
        let digest = sha256_digest(&data);
        layout
            .put_blob_bytes("layer", &digest, &data)
            .await
            .unwrap();
        let hex = sha256_hex(&digest).unwrap().to_string();
        assert_eq!(entries(tmp.path()), vec![hex.clone()]);
        assert_eq!(
            std::fs::read(tmp.path().join("blobs/sha256").join(&hex)).unwrap(),
            data
        );
        assert!(layout
            .has_verified_blob(&digest, data.len() as u64)
            .await
            .unwrap());
        let marker = std::fs::read_to_string(tmp.path().join("oci-layout")).unwrap();
        assert!(marker.contains("1.0.0"));
    }

    #[tokio::test]
    async fn wrong_digest_or_size_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(tmp.path()).await.unwrap();
        let other = sha256_digest(b"other");
        let err = layout
            .put_blob_bytes("layer", &other, b"bytes")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::DigestMismatch { what: "layer", .. }),
            "{err:?}"
        );
        // too long: stops at the declared size
        let digest = sha256_digest(b"bytes");
        let mut w = layout.blob_writer("layer", &digest, 3).unwrap();
        let err = w.write(b"bytes").await.unwrap_err();
        assert!(
            matches!(err, RegistryError::SizeMismatch { expected: 3, .. }),
            "{err:?}"
        );
        drop(w);
        // too short
        let mut w = layout.blob_writer("layer", &digest, 9).unwrap();
        w.write(b"bytes").await.unwrap();
        let err = w.finish().await.unwrap_err();
        assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err:?}");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }

    #[tokio::test]
    async fn corrupt_present_blob_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(tmp.path()).await.unwrap();
        let digest = sha256_digest(b"good");
        let path = layout.blob_path(&digest).unwrap();
        std::fs::write(&path, b"evil").unwrap();
        assert!(!layout.has_verified_blob(&digest, 4).await.unwrap());
        assert!(!path.exists());
        assert!(!layout.has_verified_blob(&digest, 4).await.unwrap());
    }

    #[tokio::test]
    async fn index_entries_are_replaced_by_ref_name() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(tmp.path()).await.unwrap();
        let desc = |d: &str| {
            let mut m = serde_json::Map::new();
            m.insert(
                "mediaType".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            );
            m.insert("digest".into(), d.into());
            m.insert("size".into(), 1.into());
            m
        };
        let (a, b) = (sha256_digest(b"a"), sha256_digest(b"b"));
        layout.set_index_entry(desc(&a), Some("v1")).await.unwrap();
        layout.set_index_entry(desc(&a), Some("v2")).await.unwrap();
        layout.set_index_entry(desc(&b), Some("v1")).await.unwrap();
        layout.set_index_entry(desc(&b), None).await.unwrap();
        layout.set_index_entry(desc(&b), None).await.unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        let got: Vec<(String, Option<String>)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap().to_string(),
                    m["annotations"][REF_NAME_ANNOTATION]
                        .as_str()
                        .map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (a.clone(), Some("v2".into())),
                (b.clone(), Some("v1".into())),
                (b.clone(), None)
            ]
        );
    }

    #[tokio::test]
    async fn refuses_a_foreign_layout_version() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let err = Layout::open_or_create(tmp.path()).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidLayout { .. }),
            "{err:?}"
        );
    }
}
