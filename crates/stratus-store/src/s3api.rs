//! What an S3 gateway needs beyond put/get: reading the metadata, committing
//! store commands, multipart parts and server-side copies.

use bytes::Bytes;
use futures::Stream;
use stratus_state::objects::{ObjectVersion, Part, StoreCommand, VersionAttrs};
use stratus_state::{CommandResult, State};

use crate::{now_ms, Store, StoreError};

/// A part stored by [`Store::put_part`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartPut {
    /// Bytes of the part.
    pub size: u64,
    /// Hex MD5 of the part (its ETag).
    pub md5: String,
    /// When it was stored (ms).
    pub created_ms: u64,
}

/// Context of the private-scope seed of a multipart upload.
const UPLOAD_SEED_CONTEXT: &str = "stratus 2026 multipart upload private scope seed";

impl Store {
    /// Runs `f` on this replica's applied metadata. Writes made through this
    /// store are visible here when they return.
    pub fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.read(f)
    }

    /// Commits a store command through the control plane (`Err` when it was
    /// refused: the error carries the state machine's code and message).
    pub async fn command(&self, cmd: StoreCommand) -> Result<CommandResult, StoreError> {
        self.write(cmd).await
    }

    /// Streams `body` as part `number` of multipart upload `upload_id` of
    /// `tenant`, replacing a part of the same number. Every part of an upload
    /// to a private-scope bucket is sealed with one key, derived from the
    /// cluster storage secret and the upload id, so the parts can be joined.
    /// A body that fails midway stores no part.
    pub async fn put_part<S>(
        &self,
        tenant: &str,
        upload_id: &str,
        number: u32,
        body: S,
    ) -> Result<PartPut, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        self.put_part_sealed(tenant, upload_id, number, body, None, || None)
            .await
    }

    /// [`Store::put_part`] with the client's key of an upload created under
    /// one (S3 SSE-C, its `customer_seal`): the part must carry exactly
    /// that key, and an upload without one takes no key
    /// ([`crate::CustomerKeyError`]); records the part's additional
    /// checksum that `checksum` gives once the body has streamed (`None`:
    /// the part has none, and a checksum of the part it replaces is
    /// forgotten).
    pub async fn put_part_sealed<S>(
        &self,
        tenant: &str,
        upload_id: &str,
        number: u32,
        body: S,
        customer: Option<&stratus_chunk::CustomerKey>,
        checksum: impl FnOnce() -> Option<String> + Send,
    ) -> Result<PartPut, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        if !(1..=10_000).contains(&number) {
            return Err(StoreError::invalid("part numbers go from 1 to 10000"));
        }
        let kek = self.kek()?;
        let (bucket, secret, seal) = self.read(|s| {
            let u = s
                .store
                .uploads
                .get(upload_id)
                .filter(|u| u.tenant == tenant)
                .ok_or_else(|| {
                    StoreError::not_found(format!(
                        "multipart upload {upload_id:?} does not exist (NoSuchUpload)"
                    ))
                })?;
            let secret = Store::master_secret(&kek, s)?;
            let seal = s.store.upload_attrs_of(upload_id).customer_seal;
            Ok::<_, StoreError>((u.bucket.clone(), secret, seal.map(Into::into)))
        })?;
        if let Some(e) = self.read(|s| s.stored_bytes_full(tenant, "", "")) {
            return Err(e.into());
        }
        let seed = upload_seed(&secret, upload_id);
        let sealing = crate::customer::part_sealing(seal, customer, seed)?;
        let ing = self
            .ingest_sealed(tenant, &bucket, body, sealing, false)
            .await?;
        let created_ms = now_ms();
        self.write(StoreCommand::PutPartWith {
            tenant: tenant.to_string(),
            upload: upload_id.to_string(),
            number,
            part: Part {
                size: ing.size,
                md5: ing.md5.clone(),
                data: ing.data,
                created_ms,
            },
            checksum: checksum(),
        })
        .await?;
        Ok(PartPut {
            size: ing.size,
            md5: ing.md5,
            created_ms,
        })
    }

    /// Copies a version of `src_bucket/src_key` (the latest when `src_version`
    /// is `None`) to `dst_bucket/dst_key`, both of `tenant`, without copying
    /// data: the new version references the source's chunks (sealed with the
    /// source version's key scope, which the version records). `meta`
    /// replaces the content type, user metadata, stored headers and tags
    /// (and may carry a precondition); `None` keeps the source's. The part
    /// sizes of a multipart source are kept either way. Returns the committed version (with its id).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        tenant: &str,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        dst_bucket: &str,
        dst_key: &str,
        meta: Option<crate::PutMeta>,
    ) -> Result<ObjectVersion, StoreError> {
        let (mut version, mut attrs) = self.read(|s| {
            s.store.bucket_of(tenant, src_bucket)?;
            s.store.bucket_of(tenant, dst_bucket)?;
            let v = s.store.version(src_bucket, src_key, src_version)?;
            if v.is_delete_marker() {
                return Err(StoreError::not_found(format!(
                    "{src_bucket}/{src_key} version {} is a delete marker",
                    v.version_id
                )));
            }
            // Read with the client's key and written again, never shared.
            if v.data
                .as_ref()
                .is_some_and(|d| d.scope.customer_seal().is_some())
            {
                return Err(crate::CustomerKeyError::Required.into());
            }
            let attrs = s.store.version_attrs(src_bucket, src_key, &v.version_id);
            Ok::<_, StoreError>((v.clone(), attrs))
        })?;
        version.version_id = String::new();
        version.created_ms = now_ms();
        let mut condition = None;
        let meta_was_copy = meta.is_none();
        // A copy does not inherit the source's object lock (as S3): its
        // lock is the one `meta` asks for, or the bucket's default.
        attrs.retention = None;
        attrs.legal_hold = None;
        if let Some(m) = meta {
            version.content_type = m.content_type;
            version.user_meta = m.user_meta;
            // The parts follow the data; headers and tags are the new ones.
            attrs = VersionAttrs {
                part_sizes: attrs.part_sizes,
                ..m.attrs
            };
            condition = m.condition;
        }
        // The copy was not completed from an upload.
        attrs.upload_id = None;
        // Nor does it inherit the source's ACL (S3: a copy gets the ACL its
        // request gives, the default without one).
        if meta_was_copy {
            attrs.acl = None;
        }
        let r = self
            .write(StoreCommand::PutObjectWith {
                tenant: tenant.to_string(),
                bucket: dst_bucket.to_string(),
                key: dst_key.to_string(),
                version: version.clone(),
                attrs: attrs.to_doc(),
                condition,
            })
            .await?;
        version.version_id = r.id.unwrap_or_default();
        Ok(version)
    }
}

/// The private-scope seed of a multipart upload: a keyed BLAKE3 of the
/// upload id under a key derived from the storage secret.
fn upload_seed(secret: &[u8; 32], upload_id: &str) -> [u8; 32] {
    let key = blake3::derive_key(UPLOAD_SEED_CONTEXT, secret);
    *blake3::keyed_hash(&key, upload_id.as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::upload_seed;

    #[test]
    fn upload_seeds_are_per_upload_and_per_secret() {
        let a = upload_seed(&[1; 32], "u1");
        assert_eq!(a, upload_seed(&[1; 32], "u1"));
        assert_ne!(a, upload_seed(&[1; 32], "u2"));
        assert_ne!(a, upload_seed(&[2; 32], "u1"));
    }
}
