//! Volumes kept in the object store (`VolumeSpec::bucket`).
//!
//! A volume is a **snapshot**: a tar archive stored as the object
//! `<bucket>/<key>` of the workload's tenant. Agents hold no storage keys, so
//! they read and write it through their control replica (`GetVolume` in
//! ranged parts, `PutVolume` as a multipart upload, parts of at most
//! [`MAX_VOLUME_PART`] bytes).
//!
//! * **Start**: the agent restores the volume's folder from the object's
//!   latest version, unless the node's copy already is that version. A
//!   marker file next to the folder (`<name>.version`, not inside it, so the
//!   container cannot change it) records the version the node restored or
//!   saved and the BLAKE3 of that archive. No object means an empty volume.
//!   A restore is unpacked beside the folder and swapped in whole. When the
//!   replica cannot be reached and the node already holds a copy, the
//!   instance starts with that copy.
//! * **Exit** (any exit: success, failure, stop, before a restart): the agent
//!   archives the folder and stores it as a new version, unless the archive
//!   is identical to the one the marker records. A failed save is written
//!   to the instance's output and flagged in the marker; the folder is never
//!   touched by a save, and the next exit saves again. A restore that would
//!   replace a folder with unsaved changes moves the folder aside
//!   (`<name>.unsaved-<ms>`) instead of deleting it.
//!
//! Archives ([`crate::archive`]) keep modes, owners, times and symlinks (in
//! a sorted, so reproducible, order); hard links are stored as copies;
//! sockets are skipped; device files are neither stored nor restored (an
//! archive from the bucket is the tenant's input: it must not give a
//! container a host device), setuid/setgid bits are dropped on restore, and
//! a save never follows a symlink the container swaps in while it runs.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratus_container::IdMap;
use stratus_proto::rpc::{self, Rpc, RpcError};
use stratus_proto::rpc_objects::{
    Abort, Begin, Complete, ObjectAt, ObjectUse, Part, ReadPart, Upload, UploadStep,
};
use stratus_proto::{Request, Response, MAX_VOLUME_PART};
use stratus_spec::WorkloadSpec;
use stratus_types::ErrorCode;

use crate::archive::{pack, remove_any, unpack};
use crate::containers::{Connect, ContainerHost};

/// How long one volume call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts of one call while the connection fails (it may fail over).
const CALL_ATTEMPTS: u32 = 5;
/// Restores started again because the object changed during a restore.
const RESTORE_ATTEMPTS: u32 = 3;

/// Why a volume could not be restored or saved.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The replica refused or failed the request.
    #[error("{message}")]
    Replica {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// No answer from a replica (not connected, timeouts).
    #[error("no control replica answered: {0}")]
    Unreachable(String),
    /// The replica answered something that makes no sense.
    #[error("bad answer from the replica: {0}")]
    BadAnswer(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let context = context.into();
    move |source| VolumeError::Io { context, source }
}

/// Sends volume requests to a control replica.
pub trait Replica: Send + Sync {
    /// One request and its answer (`Err`: no answer).
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>>;
}

/// The agent's connection to its current replica.
#[derive(Clone)]
pub(crate) struct Connected(pub(crate) Connect);

impl Replica for Connected {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        let conn = (self.0)();
        Box::pin(async move {
            let conn = conn.ok_or("not connected to a control replica")?;
            conn.call::<_, Response>(&req, CALL_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// What the node knows of its copy of a volume (the marker file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Version of the object the folder was restored from or saved as.
    pub version: Option<String>,
    /// BLAKE3 of that archive.
    pub archive: Option<String>,
    /// A save failed since: the folder holds changes the store has not.
    #[serde(default)]
    pub unsaved: bool,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restored {
    /// The object does not exist: the folder is left as it is (empty on a
    /// first start).
    NoObject,
    /// The node's copy already was the latest version.
    UpToDate(String),
    /// The folder now holds this version.
    Fetched(String),
}

/// What a save did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saved {
    /// A read-only volume: never saved.
    ReadOnly,
    /// Nothing changed since the version the marker records.
    Unchanged,
    /// Stored as this version.
    Stored(String),
}

/// One volume of one workload, kept in `bucket/key` of `tenant`.
#[derive(Clone, Debug)]
pub struct Volume {
    /// Owner of the workload.
    pub tenant: String,
    /// Bucket.
    pub bucket: String,
    /// Object key of the archive.
    pub key: String,
    /// The folder mounted into the container.
    pub dir: PathBuf,
    /// Restored, never saved.
    pub read_only: bool,
    /// Also saved this often while the container runs.
    pub sync: Option<Duration>,
    /// The user namespace of the node's containers: archives hold the
    /// container's owners, the folder the host ids they map to.
    pub ids: Option<IdMap>,
}

/// Serializes restores and saves of one folder on this node (instances of
/// one workload on one node share its volumes).
fn lock_of(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(dir.to_path_buf()).or_default().clone()
}

impl Volume {
    fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A file next to the folder: `<name>.<suffix>`.
    fn beside(&self, suffix: &str) -> PathBuf {
        self.dir.with_file_name(format!("{}.{suffix}", self.name()))
    }

    /// The marker file (next to the folder, never inside it).
    pub fn marker_path(&self) -> PathBuf {
        self.beside("version")
    }

    /// The marker (default when absent or unreadable: nothing known).
    pub fn marker(&self) -> Marker {
        std::fs::read(self.marker_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn set_marker(&self, m: &Marker) -> Result<(), VolumeError> {
        let path = self.marker_path();
        let tmp = self.beside("version.tmp");
        let bytes = serde_json::to_vec(m).map_err(|e| VolumeError::Io {
            context: "encoding the volume marker".into(),
            source: std::io::Error::other(e),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io(format!("writing {}", path.display())))
    }

    fn what(&self) -> String {
        format!("volume {} ({}/{})", self.name(), self.bucket, self.key)
    }

    /// Sends `req` (again after a failed call), and takes its typed reply.
    async fn call<R: Rpc>(
        &self,
        rpc: &dyn Replica,
        req: impl Fn() -> R,
    ) -> Result<R::Reply, VolumeError> {
        let mut last = String::new();
        for attempt in 0..CALL_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
            }
            match rpc.call(req().into_request()).await {
                Ok(r) => {
                    return rpc::decode::<R>(r).map_err(|e| match e {
                        RpcError::Refused { code, message } => {
                            VolumeError::Replica { code, message }
                        }
                        e @ RpcError::WrongReply { .. } => VolumeError::BadAnswer(e.to_string()),
                    })
                }
                Err(e) => last = e,
            }
        }
        Err(VolumeError::Unreachable(last))
    }

    fn at(&self) -> ObjectAt {
        ObjectAt {
            tenant: self.tenant.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
        }
    }

    /// Restores the folder from the latest version of the object unless the
    /// node's copy already is that version.
    pub async fn restore(&self, rpc: &dyn Replica) -> Result<Restored, VolumeError> {
        let lock = lock_of(&self.dir);
        let _held = lock.lock().await;
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.restore_once(rpc).await {
                Err(VolumeError::Replica {
                    code: ErrorCode::Conflict,
                    ..
                }) if attempt < RESTORE_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    async fn read(
        &self,
        rpc: &dyn Replica,
        version: Option<&str>,
        offset: u64,
        len: u64,
    ) -> Result<(Option<String>, u64, Vec<u8>), VolumeError> {
        let req = || ReadPart {
            of: ObjectUse::Volume,
            at: self.at(),
            version: version.map(str::to_string),
            offset,
            len,
        };
        let part = self.call(rpc, req).await?;
        Ok((part.version, part.size, part.data))
    }

    async fn restore_once(&self, rpc: &dyn Replica) -> Result<Restored, VolumeError> {
        // The latest version first (no bytes), then its bytes if needed.
        let (version, size, _) = self.read(rpc, None, 0, 0).await?;
        let Some(version) = version else {
            return Ok(Restored::NoObject);
        };
        let marker = self.marker();
        if marker.version.as_deref() == Some(version.as_str()) {
            return Ok(Restored::UpToDate(version));
        }
        // Download beside the folder, checking every part is of one version.
        let download = self.beside("download");
        let mut file =
            File::create(&download).map_err(io(format!("creating {}", download.display())))?;
        let mut hasher = blake3::Hasher::new();
        let mut got = 0;
        while got < size {
            let (v, s, data) = self.read(rpc, Some(&version), got, MAX_VOLUME_PART).await?;
            if v.as_deref() != Some(version.as_str()) || s != size || data.is_empty() {
                return Err(VolumeError::BadAnswer(format!(
                    "asked for {got} bytes of version {version} ({size} bytes), got {} bytes of {v:?} ({s} bytes)",
                    data.len()
                )));
            }
            got += data.len() as u64;
            hasher.update(&data);
            file.write_all(&data)
                .map_err(io(format!("writing {}", download.display())))?;
        }
        if got != size {
            return Err(VolumeError::BadAnswer(format!(
                "got {got} bytes of a {size}-byte archive"
            )));
        }
        file.sync_all()
            .map_err(io(format!("writing {}", download.display())))?;
        drop(file);
        // Unpack beside the folder, then swap it in.
        let staging = self.beside("restoring");
        let (tar, stage, ids) = (download.clone(), staging.clone(), self.ids);
        tokio::task::spawn_blocking(move || {
            remove_any(&stage)?;
            std::fs::create_dir_all(&stage)?;
            unpack(&tar, &stage, ids)
        })
        .await
        .map_err(|e| VolumeError::Io {
            context: "unpacking".into(),
            source: std::io::Error::other(e),
        })?
        .map_err(io(format!(
            "unpacking {} into {}",
            self.what(),
            staging.display()
        )))?;
        if self.dir.exists() {
            let aside = if marker.unsaved {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                let p = self.beside(&format!("unsaved-{ms}"));
                tracing::warn!(volume = %self.what(), kept = %p.display(), "the node's copy had unsaved changes and a newer version was stored elsewhere; keeping the copy aside");
                p
            } else {
                self.beside("old")
            };
            remove_any(&aside).map_err(io(format!("removing {}", aside.display())))?;
            std::fs::rename(&self.dir, &aside)
                .map_err(io(format!("moving {} aside", self.dir.display())))?;
            std::fs::rename(&staging, &self.dir)
                .map_err(io(format!("moving {} into place", staging.display())))?;
            if !marker.unsaved {
                remove_any(&aside).map_err(io(format!("removing {}", aside.display())))?;
            }
        } else {
            std::fs::rename(&staging, &self.dir)
                .map_err(io(format!("moving {} into place", staging.display())))?;
        }
        self.set_marker(&Marker {
            version: Some(version.clone()),
            archive: Some(hasher.finalize().to_hex().to_string()),
            unsaved: false,
        })?;
        let _ = std::fs::remove_file(&download);
        Ok(Restored::Fetched(version))
    }

    /// Archives the folder and stores it as a new version of the object
    /// (nothing when it is unchanged since the marker's version). On failure
    /// the marker flags unsaved changes; the folder is never touched.
    pub async fn save(&self, rpc: &dyn Replica) -> Result<Saved, VolumeError> {
        if self.read_only {
            return Ok(Saved::ReadOnly);
        }
        let lock = lock_of(&self.dir);
        let _held = lock.lock().await;
        let archive = self.beside("tar");
        let (dir, out, ids) = (self.dir.clone(), archive.clone(), self.ids);
        let hash = tokio::task::spawn_blocking(move || pack(&dir, &out, ids))
            .await
            .map_err(|e| VolumeError::Io {
                context: "archiving".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(io(format!("archiving {}", self.dir.display())))?;
        let mut marker = self.marker();
        if marker.version.is_some()
            && marker.archive.as_deref() == Some(hash.as_str())
            && !marker.unsaved
        {
            let _ = std::fs::remove_file(&archive);
            return Ok(Saved::Unchanged);
        }
        match self.upload(rpc, &archive).await {
            Ok(version) => {
                self.set_marker(&Marker {
                    version: Some(version.clone()),
                    archive: Some(hash),
                    unsaved: false,
                })?;
                let _ = std::fs::remove_file(&archive);
                Ok(Saved::Stored(version))
            }
            Err(e) => {
                marker.unsaved = true;
                if let Err(m) = self.set_marker(&marker) {
                    tracing::warn!(volume = %self.what(), error = %m, "cannot flag unsaved changes");
                }
                let _ = std::fs::remove_file(&archive);
                Err(e)
            }
        }
    }

    async fn put<S: UploadStep>(
        &self,
        rpc: &dyn Replica,
        step: impl Fn() -> S,
    ) -> Result<S::Reply, VolumeError> {
        self.call(rpc, || Upload {
            of: ObjectUse::Volume,
            at: self.at(),
            step: step(),
        })
        .await
    }

    async fn upload(&self, rpc: &dyn Replica, archive: &Path) -> Result<String, VolumeError> {
        let upload = self.put(rpc, || Begin).await?;
        let result = self.upload_parts(rpc, archive, &upload).await;
        if result.is_err() {
            let _ = self
                .put(rpc, || Abort {
                    upload: upload.clone(),
                })
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        rpc: &dyn Replica,
        archive: &Path,
        upload: &str,
    ) -> Result<String, VolumeError> {
        let mut file = File::open(archive).map_err(io(format!("opening {}", archive.display())))?;
        let mut parts = Vec::new();
        loop {
            let mut data = Vec::with_capacity(MAX_VOLUME_PART as usize);
            (&mut file)
                .take(MAX_VOLUME_PART)
                .read_to_end(&mut data)
                .map_err(io(format!("reading {}", archive.display())))?;
            if data.is_empty() && !parts.is_empty() {
                break;
            }
            let number = parts.len() as u32 + 1;
            let last = (data.len() as u64) < MAX_VOLUME_PART;
            let md5 = self
                .put(rpc, || Part {
                    upload: upload.to_string(),
                    number,
                    data: data.clone(),
                })
                .await?;
            parts.push((number, md5));
            if last {
                break;
            }
        }
        self.put(rpc, || Complete {
            upload: upload.to_string(),
            parts: parts.clone(),
        })
        .await
    }
}

/// The volumes of `spec` kept in the object store, for workload `workload`
/// (`tenant/name`) of `tenant` on this node.
pub fn of_workload(
    host: &ContainerHost,
    tenant: &str,
    workload: &str,
    spec: &WorkloadSpec,
) -> Result<Vec<Volume>, String> {
    let Some(image) = &spec.image else {
        return Ok(Vec::new());
    };
    image
        .volumes
        .iter()
        .filter_map(|v| {
            let bucket = v.bucket.clone()?;
            Some(host.volume_dir(workload, &v.name).map(|dir| Volume {
                tenant: tenant.to_string(),
                bucket,
                key: v.object_key(&spec.name),
                dir,
                read_only: v.read_only,
                sync: v.sync_secs.map(Duration::from_secs),
                ids: host.executor().user_namespace(),
            }))
        })
        .collect()
}

/// The volumes of one instance, restored before its container starts and
/// saved after it exits. Problems are written to the instance's output.
pub struct InstanceVolumes {
    volumes: Vec<Volume>,
    rpc: Connected,
}

impl InstanceVolumes {
    /// The bucket-backed volumes of `spec` (none when it declares none).
    pub fn new(
        host: &ContainerHost,
        tenant: &str,
        workload: &str,
        spec: &WorkloadSpec,
        connect: Connect,
    ) -> Result<InstanceVolumes, String> {
        Ok(InstanceVolumes {
            volumes: of_workload(host, tenant, workload, spec)?,
            rpc: Connected(connect),
        })
    }

    /// Restores every volume. A volume that cannot be restored fails the
    /// start, unless the node already holds a copy of it (then the copy is
    /// used and the problem written to `out`).
    pub async fn restore(
        &self,
        out: &tokio::sync::mpsc::Sender<stratus_runtime::Output>,
    ) -> Result<(), String> {
        for v in &self.volumes {
            match v.restore(&self.rpc).await {
                Ok(r) => tracing::info!(volume = %v.what(), outcome = ?r, "volume restored"),
                Err(e)
                    if v.marker().version.is_some()
                        && !matches!(
                            e,
                            VolumeError::Replica {
                                code: ErrorCode::Forbidden | ErrorCode::NotFound,
                                ..
                            }
                        ) =>
                {
                    say(
                        out,
                        &format!(
                            "cannot restore {}: {e}; starting with this node's copy",
                            v.what()
                        ),
                    )
                    .await;
                }
                Err(e) => return Err(format!("volume data: cannot restore {}: {e}", v.what())),
            }
        }
        Ok(())
    }

    /// Runs `run` (the container) while saving the volumes that have
    /// `sync_secs` that often; the last periodic save has ended when this
    /// returns.
    pub async fn around<T>(
        &self,
        run: impl Future<Output = T>,
        out: &tokio::sync::mpsc::Sender<stratus_runtime::Output>,
    ) -> T {
        let stop = tokio_util::sync::CancellationToken::new();
        let syncers: Vec<_> = self
            .volumes
            .iter()
            .filter(|v| !v.read_only)
            .filter_map(|v| Some((v.clone(), v.sync?)))
            .map(|(v, every)| {
                let (rpc, out, stop) = (self.rpc.clone(), out.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(every) => {}
                        }
                        match v.save(&rpc).await {
                            Ok(s) => tracing::debug!(volume = %v.what(), outcome = ?s, "periodic volume save"),
                            Err(e) => {
                                tracing::warn!(volume = %v.what(), error = %e, "periodic volume save failed");
                                say(&out, &format!("cannot save {}: {e}; trying again in {} s", v.what(), every.as_secs())).await;
                            }
                        }
                    }
                })
            })
            .collect();
        let r = run.await;
        stop.cancel();
        for s in syncers {
            let _ = s.await;
        }
        r
    }

    /// Saves every writable volume; failures are written to `out` (the node
    /// keeps its copy and saves again at the next exit).
    pub async fn save(&self, out: &tokio::sync::mpsc::Sender<stratus_runtime::Output>) {
        for v in &self.volumes {
            match v.save(&self.rpc).await {
                Ok(s) => tracing::info!(volume = %v.what(), outcome = ?s, "volume saved"),
                Err(e) => {
                    tracing::warn!(volume = %v.what(), error = %e, "volume not saved");
                    say(
                        out,
                        &format!("cannot save {}: {e}; this node keeps its copy and saves it again at the next exit", v.what()),
                    )
                    .await;
                }
            }
        }
    }
}

async fn say(out: &tokio::sync::mpsc::Sender<stratus_runtime::Output>, line: &str) {
    let _ = out
        .send(stratus_runtime::Output::Stderr(
            format!("[stratus] volume data: {line}\n").into_bytes(),
        ))
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stratus_proto::{VolumeAnswer, VolumePut};

    type Parts = Vec<(u32, Vec<u8>)>;

    /// An in-memory replica holding versions of objects, as the object store
    /// does (versioned bucket), with a switch to fail saves.
    #[derive(Default)]
    struct FakeReplica {
        objects: Mutex<HashMap<String, Vec<Vec<u8>>>>,
        uploads: Mutex<HashMap<String, Parts>>,
        fail_puts: std::sync::atomic::AtomicBool,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl FakeReplica {
        fn answer(&self, req: Request) -> Result<Response, String> {
            let err = |code, message: &str| Response::Error {
                code,
                message: message.into(),
            };
            match req {
                Request::GetVolume {
                    key,
                    version,
                    offset,
                    len,
                    ..
                } => {
                    self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let objects = self.objects.lock().unwrap();
                    let Some(versions) = objects.get(&key) else {
                        return Ok(Response::VolumeData {
                            version: None,
                            size: 0,
                            data: Vec::new(),
                        });
                    };
                    let n = match version {
                        Some(v) => v.parse::<usize>().map_err(|e| e.to_string())?,
                        None => versions.len(),
                    };
                    let data = &versions[n - 1];
                    let start = (offset as usize).min(data.len());
                    let end = (start + len.min(MAX_VOLUME_PART) as usize).min(data.len());
                    Ok(Response::VolumeData {
                        version: Some(n.to_string()),
                        size: data.len() as u64,
                        data: data[start..end].to_vec(),
                    })
                }
                Request::PutVolume { key, step, .. } => {
                    if self.fail_puts.load(std::sync::atomic::Ordering::SeqCst) {
                        return Ok(err(ErrorCode::Unavailable, "the store is down"));
                    }
                    let mut uploads = self.uploads.lock().unwrap();
                    match step {
                        VolumePut::Begin => {
                            let id = format!("u{}", uploads.len() + 1);
                            uploads.insert(id.clone(), Vec::new());
                            Ok(Response::Volume(VolumeAnswer::Upload(id)))
                        }
                        VolumePut::Part {
                            upload,
                            number,
                            data,
                        } => {
                            assert!(data.len() as u64 <= MAX_VOLUME_PART);
                            let md5 = blake3::hash(&data).to_hex().to_string();
                            uploads
                                .get_mut(&upload)
                                .ok_or("no upload")?
                                .push((number, data));
                            Ok(Response::Volume(VolumeAnswer::Part(md5)))
                        }
                        VolumePut::Complete { upload, parts } => {
                            let got = uploads.remove(&upload).ok_or("no upload")?;
                            assert_eq!(
                                parts.iter().map(|p| p.0).collect::<Vec<_>>(),
                                got.iter().map(|p| p.0).collect::<Vec<_>>()
                            );
                            let mut objects = self.objects.lock().unwrap();
                            let versions = objects.entry(key).or_default();
                            versions.push(got.into_iter().flat_map(|p| p.1).collect());
                            Ok(Response::Volume(VolumeAnswer::Saved(
                                versions.len().to_string(),
                            )))
                        }
                        VolumePut::Abort { upload } => {
                            uploads.remove(&upload);
                            Ok(Response::Ok)
                        }
                    }
                }
                other => Err(format!("unexpected {other:?}")),
            }
        }
    }

    impl Replica for Arc<FakeReplica> {
        fn call(
            &self,
            req: Request,
        ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
            let r = self.answer(req);
            Box::pin(async move { r })
        }
    }

    fn volume(root: &Path, node: &str) -> Volume {
        Volume {
            tenant: "t".into(),
            bucket: "bkt".into(),
            key: "volumes/db/data.tar".into(),
            dir: root.join(node).join("volumes/t_db/data"),
            read_only: false,
            sync: None,
            ids: None,
        }
    }

    #[tokio::test]
    async fn save_then_restore_on_another_node_and_the_marker_skips_what_is_current() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = Arc::new(FakeReplica::default());
        let a = volume(tmp.path(), "node-a");
        let b = volume(tmp.path(), "node-b");

        // First start anywhere: no object, empty volume.
        assert_eq!(a.restore(&replica).await.unwrap(), Restored::NoObject);
        assert_eq!(std::fs::read_dir(&a.dir).unwrap().count(), 0);
        std::fs::write(a.dir.join("db.txt"), b"v1").unwrap();
        let v1 = match a.save(&replica).await.unwrap() {
            Saved::Stored(v) => v,
            other => panic!("{other:?}"),
        };
        // The marker sits next to the folder, not inside it.
        assert_eq!(a.marker_path().parent(), a.dir.parent());
        assert!(!a.dir.join("data.version").exists());
        assert_eq!(a.marker().version.as_deref(), Some(v1.as_str()));
        // Nothing changed: no new version.
        assert_eq!(a.save(&replica).await.unwrap(), Saved::Unchanged);
        assert_eq!(
            replica.objects.lock().unwrap()["volumes/db/data.tar"].len(),
            1
        );

        // Another node restores it.
        assert_eq!(
            b.restore(&replica).await.unwrap(),
            Restored::Fetched(v1.clone())
        );
        assert_eq!(std::fs::read(b.dir.join("db.txt")).unwrap(), b"v1");
        // Restarting there reads no bytes: the marker says it is current.
        let reads = replica.reads.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            b.restore(&replica).await.unwrap(),
            Restored::UpToDate(v1.clone())
        );
        assert_eq!(
            replica.reads.load(std::sync::atomic::Ordering::SeqCst),
            reads + 1
        );
        // A copy restored from the store is not saved back unchanged.
        assert_eq!(b.save(&replica).await.unwrap(), Saved::Unchanged);

        // Node b writes; node a, back on stale data, gets b's version whole
        // (files b deleted are gone too).
        std::fs::remove_file(b.dir.join("db.txt")).unwrap();
        std::fs::write(b.dir.join("new.txt"), b"v2").unwrap();
        let v2 = match b.save(&replica).await.unwrap() {
            Saved::Stored(v) => v,
            other => panic!("{other:?}"),
        };
        assert_ne!(v1, v2);
        assert_eq!(
            a.restore(&replica).await.unwrap(),
            Restored::Fetched(v2.clone())
        );
        assert!(!a.dir.join("db.txt").exists());
        assert_eq!(std::fs::read(a.dir.join("new.txt")).unwrap(), b"v2");
        assert!(!a.dir.with_file_name("data.old").exists());
        assert!(!a.dir.with_file_name("data.restoring").exists());
    }

    #[tokio::test]
    async fn a_failed_save_keeps_the_copy_and_is_retried() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = Arc::new(FakeReplica::default());
        let a = volume(tmp.path(), "node-a");
        a.restore(&replica).await.unwrap();
        std::fs::write(a.dir.join("f"), b"one").unwrap();
        let v1 = match a.save(&replica).await.unwrap() {
            Saved::Stored(v) => v,
            other => panic!("{other:?}"),
        };
        std::fs::write(a.dir.join("f"), b"two").unwrap();
        replica
            .fail_puts
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let e = a.save(&replica).await.expect_err("the store is down");
        assert!(e.to_string().contains("the store is down"), "{e}");
        assert_eq!(std::fs::read(a.dir.join("f")).unwrap(), b"two");
        let m = a.marker();
        assert!(m.unsaved);
        assert_eq!(m.version.as_deref(), Some(v1.as_str()));
        // Next start on this node: the store still has v1, the marker too:
        // the local changes are kept, not overwritten by v1.
        assert_eq!(
            a.restore(&replica).await.unwrap(),
            Restored::UpToDate(v1.clone())
        );
        assert_eq!(std::fs::read(a.dir.join("f")).unwrap(), b"two");
        // Next exit saves them.
        replica
            .fail_puts
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let v2 = match a.save(&replica).await.unwrap() {
            Saved::Stored(v) => v,
            other => panic!("{other:?}"),
        };
        assert!(!a.marker().unsaved);
        let b = volume(tmp.path(), "node-b");
        assert_eq!(b.restore(&replica).await.unwrap(), Restored::Fetched(v2));
        assert_eq!(std::fs::read(b.dir.join("f")).unwrap(), b"two");
    }

    #[tokio::test]
    async fn unsaved_changes_are_moved_aside_not_deleted_by_a_newer_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = Arc::new(FakeReplica::default());
        let (a, b) = (volume(tmp.path(), "node-a"), volume(tmp.path(), "node-b"));
        a.restore(&replica).await.unwrap();
        std::fs::write(a.dir.join("f"), b"a1").unwrap();
        a.save(&replica).await.unwrap();
        std::fs::write(a.dir.join("f"), b"a-unsaved").unwrap();
        replica
            .fail_puts
            .store(true, std::sync::atomic::Ordering::SeqCst);
        a.save(&replica).await.expect_err("down");
        replica
            .fail_puts
            .store(false, std::sync::atomic::Ordering::SeqCst);
        b.restore(&replica).await.unwrap();
        std::fs::write(b.dir.join("f"), b"b2").unwrap();
        b.save(&replica).await.unwrap();
        assert!(matches!(
            a.restore(&replica).await.unwrap(),
            Restored::Fetched(_)
        ));
        assert_eq!(std::fs::read(a.dir.join("f")).unwrap(), b"b2");
        let parent = a.dir.parent().unwrap();
        let aside: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("data.unsaved-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(aside[0].path().join("f")).unwrap(),
            b"a-unsaved"
        );
    }

    #[tokio::test]
    async fn big_volumes_go_in_parts_and_read_only_ones_are_never_saved() {
        let tmp = tempfile::tempdir().unwrap();
        let replica = Arc::new(FakeReplica::default());
        let a = volume(tmp.path(), "node-a");
        a.restore(&replica).await.unwrap();
        let big: Vec<u8> = (0..(MAX_VOLUME_PART as u32 + 5_000_000))
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(a.dir.join("big"), &big).unwrap();
        a.save(&replica).await.unwrap();
        let stored = replica.objects.lock().unwrap()["volumes/db/data.tar"][0].len() as u64;
        assert!(stored > MAX_VOLUME_PART, "{stored}");
        let b = volume(tmp.path(), "node-b");
        b.restore(&replica).await.unwrap();
        assert_eq!(std::fs::read(b.dir.join("big")).unwrap(), big);

        let ro = Volume {
            read_only: true,
            ..volume(tmp.path(), "node-c")
        };
        ro.restore(&replica).await.unwrap();
        std::fs::write(ro.dir.join("x"), b"x").unwrap();
        assert_eq!(ro.save(&replica).await.unwrap(), Saved::ReadOnly);
        assert_eq!(
            replica.objects.lock().unwrap()["volumes/db/data.tar"].len(),
            1
        );
    }
}
