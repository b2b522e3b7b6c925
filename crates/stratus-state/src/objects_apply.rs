//! Applying [`StoreCommand`]s: the object store's half of
//! [`State::apply`], checked before anything changes so a refused command
//! leaves the state as it was.

use std::collections::{BTreeMap, BTreeSet};

use stratus_chunk::ChunkId;

use super::*;
use crate::{ApplyError, State};

impl State {
    pub(crate) fn apply_store(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        match cmd {
            StoreCommand::SetSecret { .. }
            | StoreCommand::CreateBucket { .. }
            | StoreCommand::DeleteBucket { .. }
            | StoreCommand::SetVersioning { .. }
            | StoreCommand::CreateAccessKey { .. }
            | StoreCommand::DeleteAccessKey { .. } => self.apply_keys(cmd),
            StoreCommand::CommitPack { .. }
            | StoreCommand::PutObject { .. }
            | StoreCommand::DeleteObject { .. } => self.apply_objects(cmd),
            StoreCommand::MovePieces { .. }
            | StoreCommand::MarkBad { .. }
            | StoreCommand::CollectGarbage { .. }
            | StoreCommand::PiecesDeleted { .. }
            | StoreCommand::RecordScrub { .. } => self.apply_upkeep(cmd),
            StoreCommand::CreateUpload { .. }
            | StoreCommand::PutPart { .. }
            | StoreCommand::CompleteUpload { .. }
            | StoreCommand::AbortUpload { .. } => self.apply_uploads(cmd),
            StoreCommand::SetBucketConfig { .. } => self.apply_bucket_config(cmd),
            StoreCommand::Expire(_) => self.apply_expire(cmd),
            StoreCommand::PutObjectWith { .. }
            | StoreCommand::SetObjectTags { .. }
            | StoreCommand::CreateUploadWith { .. }
            | StoreCommand::CompleteUploadWith { .. }
            | StoreCommand::DeleteObjectWith { .. }
            | StoreCommand::DeleteBucketAbortingUploads { .. }
            | StoreCommand::SetObjectAcl { .. } => self.apply_attrs(cmd),
            StoreCommand::CreateBucketWithConfigs { .. }
            | StoreCommand::SetObjectRetention { .. }
            | StoreCommand::SetObjectLegalHold { .. }
            | StoreCommand::DeleteObjectBypassing { .. } => self.apply_lock(cmd),
            StoreCommand::PutPartWith { .. } | StoreCommand::CompleteUploadChecked { .. } => {
                self.apply_checksums(cmd)
            }
        }
    }

    /// Applies the commands for the storage secret, buckets and access keys.
    fn apply_keys(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let tenant_exists = |s: &State, t: &str| s.tenants.contains_key(t);
        let st = &mut self.store;
        match cmd {
            StoreCommand::SetSecret { secret } => {
                if st.secret.is_some() {
                    return Err(ApplyError::conflict("the storage secret is already set"));
                }
                crate::sealing::check_len(secret, 32, 32)?;
                *st.secret = Some(secret.clone());
                Ok(StoreResult::None)
            }
            StoreCommand::CreateBucket { bucket } => {
                validate_bucket_name(&bucket.name).map_err(ApplyError::invalid)?;
                if bucket.name.starts_with(IMAGES_BUCKET_PREFIX)
                    && bucket.name != images_bucket(&bucket.tenant)
                {
                    return Err(ApplyError::forbidden(format!(
                            "bucket names starting with {IMAGES_BUCKET_PREFIX:?} are reserved for container images"
                        ),
                    ));
                }
                if let Some(p) = bucket.profile {
                    p.validate().map_err(ApplyError::invalid)?;
                }
                if !tenant_exists(self, &bucket.tenant) {
                    return Err(ApplyError::not_found(format!(
                        "tenant {:?} does not exist",
                        bucket.tenant
                    )));
                }
                let st = &mut self.store;
                if let Some(b) = st.buckets.get(&bucket.name) {
                    let whose = if b.tenant == bucket.tenant {
                        "you already own it"
                    } else {
                        "another tenant owns it"
                    };
                    return Err(ApplyError::conflict(format!(
                        "bucket {:?} already exists: {whose}",
                        bucket.name
                    )));
                }
                st.buckets.insert(bucket.name.clone(), bucket.clone());
                Ok(StoreResult::None)
            }
            StoreCommand::DeleteBucket { tenant, name } => {
                st.bucket_of(tenant, name)?;
                if !st.bucket_is_empty(name) {
                    return Err(ApplyError::conflict(format!(
                        "bucket {name:?} is not empty (delete every object version first)"
                    )));
                }
                if st.uploads.values().any(|u| u.bucket == *name) {
                    return Err(ApplyError::conflict(format!(
                        "bucket {name:?} has multipart uploads in progress; abort them first"
                    )));
                }
                st.buckets.remove(name);
                st.bucket_stats.remove(name);
                st.drop_bucket_configs(name);
                Ok(StoreResult::None)
            }
            StoreCommand::SetVersioning {
                tenant,
                name,
                versioning,
            } => {
                st.bucket_of(tenant, name)?;
                crate::object_lock::check_versioning_change(st, name, *versioning)?;
                if *versioning == Versioning::Unversioned {
                    return Err(ApplyError::invalid(
                        "versioning can only be enabled or suspended",
                    ));
                }
                if let Some(b) = st.buckets.get_mut(name) {
                    b.versioning = *versioning;
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CreateAccessKey {
                access_key,
                secret,
                tenant,
                created_ms,
            } => {
                let ok_id = !access_key.is_empty()
                    && access_key.len() <= MAX_ACCESS_KEY_LEN
                    && access_key.bytes().all(|b| b.is_ascii_alphanumeric());
                if !ok_id || crate::sealing::check_len(secret, 16, 256).is_err() {
                    return Err(ApplyError::invalid(
                        "an access key id is 1-128 ASCII letters and digits; a secret 16-256 bytes",
                    ));
                }
                if !tenant_exists(self, tenant) {
                    return Err(ApplyError::not_found(format!(
                        "tenant {tenant:?} does not exist"
                    )));
                }
                let st = &mut self.store;
                if st.access_keys.contains_key(access_key) {
                    return Err(ApplyError::conflict(format!(
                        "access key {access_key:?} already exists"
                    )));
                }
                st.access_keys.insert(
                    access_key.clone(),
                    AccessKey {
                        secret: secret.clone(),
                        tenant: tenant.clone(),
                        created_ms: *created_ms,
                    },
                );
                Ok(StoreResult::Id(access_key.clone()))
            }
            StoreCommand::DeleteAccessKey { access_key, tenant } => {
                match st.access_keys.get(access_key) {
                    Some(k) if tenant.as_ref().is_none_or(|t| *t == k.tenant) => {
                        st.access_keys.remove(access_key);
                        Ok(StoreResult::None)
                    }
                    _ => Err(ApplyError::not_found(format!(
                        "access key {access_key:?} does not exist"
                    ))),
                }
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }

    /// Applies the commands for packs, object puts and deletes.
    fn apply_objects(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let st = &mut self.store;
        match cmd {
            StoreCommand::CommitPack {
                profile,
                data_len,
                piece_len,
                pieces,
                chunks,
                now_ms,
            } => {
                profile.validate().map_err(ApplyError::invalid)?;
                if pieces.len() != profile.width() {
                    return Err(ApplyError::invalid(format!(
                        "a {profile} pack has {} pieces, not {}",
                        profile.width(),
                        pieces.len()
                    )));
                }
                let distinct: BTreeSet<_> = pieces.iter().map(|p| p.1).collect();
                if distinct.len() != pieces.len() {
                    return Err(ApplyError::invalid(
                        "the pieces of a pack must be on distinct nodes",
                    ));
                }
                if chunks
                    .iter()
                    .any(|c| c.offset + u64::from(c.sealed_len) > *data_len)
                {
                    return Err(ApplyError::invalid("a chunk lies outside its pack"));
                }
                *st.next_pack += 1;
                let id = *st.next_pack;
                let mut live = 0;
                for c in chunks {
                    if st.chunk(&c.id).is_some() {
                        continue;
                    }
                    live += 1;
                    st.add_chunk(
                        &c.id,
                        &ChunkEntry {
                            pack: id,
                            offset: c.offset,
                            sealed_len: c.sealed_len,
                            plain_len: c.plain_len,
                            refs: 0,
                            created_ms: *now_ms,
                        },
                    );
                }
                for (_, node) in pieces {
                    st.add_usage(*node, *piece_len);
                }
                st.set_pack(&Pack {
                    id,
                    profile: *profile,
                    data_len: *data_len,
                    piece_len: *piece_len,
                    pieces: pieces
                        .iter()
                        .map(|(p, n)| PieceSlot {
                            id: *p,
                            node: *n,
                            bad: false,
                        })
                        .collect(),
                    live_chunks: live,
                    created_ms: *now_ms,
                });
                Ok(StoreResult::Number(id))
            }
            StoreCommand::PutObject {
                tenant,
                bucket,
                key,
                version,
            } => {
                st.bucket_of(tenant, bucket)?;
                validate_key(key).map_err(ApplyError::invalid)?;
                validate_meta(&version.user_meta)?;
                if let Some(d) = &version.data {
                    let sum: u64 = d.chunks.iter().map(|c| u64::from(c.len)).sum();
                    if sum != version.size {
                        return Err(ApplyError::invalid(format!(
                            "the chunks add up to {sum} bytes, not {}",
                            version.size
                        )));
                    }
                    st.add_refs(d)?;
                }
                Ok(StoreResult::Id(st.put_version(
                    bucket,
                    key,
                    version.clone(),
                )))
            }
            StoreCommand::DeleteObject {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
            } => {
                let versioning = st.bucket_of(tenant, bucket)?.versioning;
                match version_id {
                    None if versioning == Versioning::Unversioned => {
                        // Never versioned: the object goes, no marker (S3).
                        st.guard_removal(bucket, key, NULL_VERSION, *now_ms, false)?;
                        if let Some(v) = st.take_version(bucket, key, NULL_VERSION) {
                            st.drop_version(bucket, v);
                        }
                        Ok(StoreResult::None)
                    }
                    None => {
                        let marker = ObjectVersion {
                            version_id: String::new(),
                            size: 0,
                            etag: String::new(),
                            blake3: String::new(),
                            created_ms: *now_ms,
                            content_type: None,
                            user_meta: BTreeMap::new(),
                            data: None,
                        };
                        Ok(StoreResult::Id(st.put_version(bucket, key, marker)))
                    }
                    Some(v) => {
                        // Object lock: no path removes a locked version.
                        st.guard_removal(bucket, key, v, *now_ms, false)?;
                        let removed = st.take_version(bucket, key, v).ok_or_else(|| {
                            ApplyError::not_found(format!("{bucket}/{key} has no version {v:?}"))
                        })?;
                        st.drop_version(bucket, removed);
                        Ok(StoreResult::Id(v.clone()))
                    }
                }
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }

    /// Applies the commands for piece moves, bad pieces, garbage collection and scrub records.
    fn apply_upkeep(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let st = &mut self.store;
        match cmd {
            StoreCommand::MovePieces { moves } => {
                for mv in moves {
                    let Some(mut pack) = st.pack(mv.pack) else {
                        continue;
                    };
                    let piece_len = pack.piece_len;
                    let others_on_target = pack.pieces.iter().any(|s| s.node == mv.to);
                    let Some(slot) = pack.pieces.get_mut(mv.index as usize) else {
                        continue;
                    };
                    if slot.node != mv.from || others_on_target {
                        continue; // stale, or would put two pieces on one node
                    }
                    slot.node = mv.to;
                    slot.bad = false;
                    st.set_pack(&pack);
                    // The old copy (if its node comes back) is an orphan for GC.
                    st.sub_usage(mv.from, piece_len);
                    st.add_usage(mv.to, piece_len);
                }
                Ok(StoreResult::None)
            }
            StoreCommand::MarkBad { pieces } => {
                for (pack, index, node) in pieces {
                    let Some(mut p) = st.pack(*pack) else {
                        continue;
                    };
                    if let Some(slot) = p.pieces.get_mut(*index as usize) {
                        if slot.node == *node && !slot.bad {
                            slot.bad = true;
                            st.set_pack(&p);
                        }
                    }
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CollectGarbage { now_ms, grace_ms } => {
                let cutoff = now_ms.saturating_sub(*grace_ms);
                let dead: Vec<ChunkId> = st
                    .unreferenced_chunks()
                    .into_iter()
                    .filter(|id| st.chunk(id).is_some_and(|e| e.created_ms <= cutoff))
                    .collect();
                for id in &dead {
                    if let Some(e) = st.remove_chunk(id) {
                        if let Some(mut p) = st.pack(e.pack) {
                            p.live_chunks = p.live_chunks.saturating_sub(1);
                            st.set_pack(&p);
                        }
                    }
                }
                // Packs left empty now, and packs committed empty (every
                // chunk already indexed elsewhere) once past the grace.
                let empty: Vec<u64> = st
                    .empty_packs()
                    .into_iter()
                    .filter(|id| st.pack(*id).is_some_and(|p| p.created_ms <= cutoff))
                    .collect();
                let mut freed = 0u64;
                for id in empty {
                    if let Some(p) = st.remove_pack(id) {
                        for s in &p.pieces {
                            st.sub_usage(s.node, p.piece_len);
                            st.deletions.entry(s.node).or_default().insert(s.id);
                        }
                        freed += 1;
                    }
                }
                // A piece shared by a live pack on the same node (identical
                // packs written by concurrent uploads) must stay.
                if freed > 0 {
                    let mut deletions = std::mem::take(&mut *st.deletions);
                    for (node, set) in deletions.iter_mut() {
                        set.retain(|p| !st.holds(node, p));
                    }
                    deletions.retain(|_, s| !s.is_empty());
                    *st.deletions = deletions;
                }
                Ok(StoreResult::Number(dead.len() as u64))
            }
            StoreCommand::PiecesDeleted { node, pieces } => {
                if let Some(set) = st.deletions.get_mut(node) {
                    for p in pieces {
                        set.remove(p);
                    }
                    if set.is_empty() {
                        st.deletions.remove(node);
                    }
                }
                Ok(StoreResult::None)
            }
            StoreCommand::RecordScrub {
                node,
                checked_pieces,
                checked_bytes,
                corrupt,
                wrapped,
                now_ms,
            } => {
                let r = st.scrubs.entry(*node).or_default();
                r.checked_pieces = *checked_pieces;
                r.checked_bytes = *checked_bytes;
                r.corrupt_total += corrupt;
                r.passes += u64::from(*wrapped);
                r.at_ms = *now_ms;
                Ok(StoreResult::None)
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }

    /// Applies the commands for multipart uploads.
    fn apply_uploads(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let st = &mut self.store;
        match cmd {
            StoreCommand::CreateUpload { upload } => {
                st.bucket_of(&upload.tenant, &upload.bucket)?;
                validate_key(&upload.key).map_err(ApplyError::invalid)?;
                validate_meta(&upload.user_meta)?;
                *st.next_version += 1;
                let id = format!("u{:016x}", *st.next_version);
                let mut u = upload.clone();
                u.id = id.clone();
                u.parts.clear();
                st.uploads.insert(id.clone(), u);
                Ok(StoreResult::Id(id))
            }
            StoreCommand::PutPart {
                tenant,
                upload,
                number,
                part,
            } => {
                if !(1..=10_000).contains(number) {
                    return Err(ApplyError::invalid("part numbers go from 1 to 10000"));
                }
                upload_of(st, tenant, upload)?;
                st.add_refs(&part.data)?;
                let old = st
                    .uploads
                    .get_mut(upload)
                    .and_then(|u| u.parts.insert(*number, part.clone()));
                st.charge(tenant, part.size, 1);
                if let Some(old) = old {
                    st.drop_part(tenant, old);
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CompleteUpload {
                tenant,
                upload,
                parts,
                now_ms,
            } => {
                let u = upload_of(st, tenant, upload)?;
                if parts.is_empty() {
                    return Err(ApplyError::invalid("no parts given"));
                }
                if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(ApplyError::invalid(
                        "parts must be listed in ascending order (InvalidPartOrder)",
                    ));
                }
                let mut chunks = Vec::new();
                let mut size = 0;
                let mut md5s = Vec::new();
                for (n, etag) in parts {
                    let p = u.parts.get(n).ok_or_else(|| {
                        ApplyError::invalid(format!("part {n} was not uploaded (InvalidPart)"))
                    })?;
                    if !etag.trim_matches('"').eq_ignore_ascii_case(&p.md5) {
                        return Err(ApplyError::invalid(format!(
                            "part {n} has ETag {:?}, not {etag:?} (InvalidPart)",
                            p.md5
                        )));
                    }
                    chunks.extend_from_slice(&p.data.chunks);
                    size += p.size;
                    md5s.push(p.md5.clone());
                }
                let scope = u
                    .parts
                    .get(&parts[0].0)
                    .map(|p| p.data.scope.clone())
                    .unwrap_or(KeyScope::Public);
                if parts
                    .iter()
                    .filter_map(|(n, _)| u.parts.get(n))
                    .any(|p| p.data.scope != scope)
                {
                    return Err(ApplyError::invalid("the parts were sealed with different keys (bucket scope changed during the upload?)",
                    ));
                }
                let etag = multipart_etag(&md5s);
                let version = ObjectVersion {
                    version_id: String::new(),
                    size,
                    etag,
                    blake3: String::new(),
                    created_ms: *now_ms,
                    content_type: u.content_type.clone(),
                    user_meta: u.user_meta.clone(),
                    data: Some(ObjectData { scope, chunks }),
                };
                let (bucket, key) = (u.bucket.clone(), u.key.clone());
                let data = version.data.clone();
                if let Some(d) = &data {
                    st.add_refs(d)?;
                }
                // The parts' own references (and use) end with the upload.
                st.remove_upload(upload);
                Ok(StoreResult::Id(st.put_version(&bucket, &key, version)))
            }
            StoreCommand::AbortUpload { tenant, upload } => {
                upload_of(st, tenant, upload)?;
                st.remove_upload(upload);
                Ok(StoreResult::None)
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }
}

fn upload_of<'a>(st: &'a ObjectStore, tenant: &str, id: &str) -> Result<&'a Upload, ApplyError> {
    match st.uploads.get(id) {
        Some(u) if u.tenant == tenant => Ok(u),
        _ => Err(ApplyError::not_found(format!(
            "multipart upload {id:?} does not exist (NoSuchUpload)"
        ))),
    }
}

fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), ApplyError> {
    let size: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_META {
        return Err(ApplyError::invalid(format!(
            "user metadata is {size} bytes; the limit is {MAX_USER_META}"
        )));
    }
    Ok(())
}
