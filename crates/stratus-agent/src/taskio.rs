//! A WASM instance's `/input` and `/output` folders.
//!
//! The spec never names a folder of this machine: the agent makes both,
//! under its own data directory, per instance (`instances/<id>/input` and
//! `instances/<id>/output`).
//!
//! * **`/input`** (`input: { bucket, prefix }`): before the instance starts,
//!   the agent lists the tenant's objects under the prefix and fetches them
//!   through its control replica (`ListInput`, `GetInput` in ranged parts
//!   of one pinned version; the replica decrypts and verifies them through
//!   the chunk path) into a fresh folder, preopened read-only. Object keys
//!   are the tenant's input, so each is checked before anything is written
//!   ([`key_path`]): a key with an absolute path, `.` or `..`, an empty
//!   component, NUL, a component over 255 bytes or more than
//!   [`MAX_KEY_DEPTH`] levels, or one that needs an existing file to be a
//!   folder **fails the instance** with a message naming the key (skipping
//!   it would run the task on part of its input without anyone noticing).
//!   A key ending in `/` with no bytes is a folder marker (what S3 consoles
//!   make) and becomes an empty folder. Bounded: at most
//!   [`MAX_INPUT_OBJECTS`] objects and `resources.disk_mb` MiB
//!   ([`DEFAULT_DISK_MB`] when unset), checked on the listing before
//!   anything is fetched and again on the bytes received. The input is
//!   fetched afresh at every start of the instance on this node; when no
//!   replica answers (a few attempts), the instance fails and is retried as
//!   its restart policy says.
//! * **`/output`** (`output: true` or `{ bucket, prefix }`): a folder kept
//!   on the node, limited to `resources.disk_mb` MiB ([`DEFAULT_DISK_MB`]
//!   when unset) and [`MAX_OUTPUT_FILES`] entries. A watcher measures it
//!   every [`WATCH_INTERVAL`] while the instance runs and stops the
//!   instance as soon as it is over, and it is measured once more when the
//!   run ends; the instance then fails with a reason that names the limit.
//!   (ARCHITECTURE.md says why a watcher: it works unprivileged, on any file
//!   system, and costs no memory; the price is that a guest can write for
//!   at most one interval past the limit.) With a bucket, when a run ends
//!   (not when it is stopped on request, nor when it went over its limit),
//!   each regular file is stored as the object `<prefix><relative path>`;
//!   symlinks and other special files are never followed nor uploaded.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratus_proto::rpc::{self, Rpc, RpcError};
use stratus_proto::rpc_objects::{
    Abort, Begin, Complete, ListInput, ObjectAt, ObjectPage, ObjectUse, Part, PartData, ReadPart,
    Upload, UploadStep,
};
use stratus_proto::{ListedObject, MAX_VOLUME_PART};
use stratus_spec::{ObjectFolder, WorkloadSpec};
use stratus_types::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::volumes::Replica;

/// Size limit of `/input` and of `/output` when `resources.disk_mb` is 0.
pub const DEFAULT_DISK_MB: u64 = 256;
/// Most objects fetched into one `/input`.
pub const MAX_INPUT_OBJECTS: usize = 10_000;
/// Most entries (files, folders, links) in one `/output`.
pub const MAX_OUTPUT_FILES: usize = 10_000;
/// Deepest path of an input file (folders between `/input` and it, plus one).
pub const MAX_KEY_DEPTH: usize = 64;
/// How often a running instance's `/output` is measured.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(50);
/// Longest object key (the object store's limit).
const MAX_KEY_LEN: usize = 1024;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts of one call while the connection fails (it may fail over).
const CALL_ATTEMPTS: u32 = 5;

/// Why an instance's input or output failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskIoError {
    /// An input object's key cannot name a file under `/input`.
    #[error("input: object key {key:?} cannot be a file under /input: {why}")]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// More objects than one task may fetch.
    #[error(
        "input: more than {MAX_INPUT_OBJECTS} objects under {folder} (the limit of one instance)"
    )]
    TooManyObjects {
        /// `bucket/prefix`.
        folder: String,
    },
    /// More bytes than the instance's disk limit.
    #[error("input: the objects under {folder} hold more than {limit_mb} MiB (resources.disk_mb, {DEFAULT_DISK_MB} when unset)")]
    TooLarge {
        /// `bucket/prefix`.
        folder: String,
        /// The limit.
        limit_mb: u64,
    },
    /// The output folder has more than its limit.
    #[error("output: /output holds {found} (limit {limit}: resources.disk_mb MiB, {DEFAULT_DISK_MB} when unset, and {MAX_OUTPUT_FILES} entries); the instance was stopped")]
    OutputFull {
        /// What was found (bytes or entries).
        found: String,
        /// The limit passed.
        limit: String,
    },
    /// A container's writable layer and volumes hold more than its limit.
    #[error("disk: the container's writable layer and volumes hold {found} (limit {limit}: resources.disk_mb MiB, {DEFAULT_DISK_MB} when unset, and {MAX_CONTAINER_ENTRIES} entries); the instance was stopped")]
    DiskFull {
        /// What was found (bytes or entries).
        found: String,
        /// The limit passed.
        limit: String,
    },
    /// A file of `/output` cannot be an object key.
    #[error("output: {path:?} cannot be stored: {why}")]
    BadOutput {
        /// The file, relative to `/output`.
        path: String,
        /// Why.
        why: String,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The replica refused or failed a request.
    #[error("{context}: {message}")]
    Replica {
        /// What was being done.
        context: String,
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// No replica answered, or it answered nonsense.
    #[error("{context}: {message}")]
    Unreachable {
        /// What was being done.
        context: String,
        /// What happened.
        message: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TaskIoError {
    let context = context.into();
    move |source| TaskIoError::Io { context, source }
}

/// The limit of `/input` and `/output` of `spec`, in bytes.
pub fn disk_limit(spec: &WorkloadSpec) -> u64 {
    let mb = match spec.resources.disk_mb {
        0 => DEFAULT_DISK_MB,
        mb => mb,
    };
    mb.saturating_mul(1 << 20)
}

/// Where an input object goes under `/input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyTarget {
    /// A file at this relative path.
    File(PathBuf),
    /// A folder marker: an empty folder at this relative path.
    Dir(PathBuf),
}

/// Maps the key of an input object (under `prefix`, `size` bytes) to a
/// path relative to `/input`: the key without the prefix (and without the
/// `/` right after it when the prefix does not end with one). Refuses whatever could leave the folder or is not
/// a plain relative path: see the module docs.
pub fn key_path(prefix: &str, key: &str, size: u64) -> Result<KeyTarget, &'static str> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or("it is not under the input's prefix")?;
    // `prefix: data` names the same files as `prefix: data/`.
    let rest = match prefix.is_empty() || prefix.ends_with('/') {
        true => rest,
        false => rest.strip_prefix('/').unwrap_or(rest),
    };
    if rest.contains('\0') {
        return Err("it contains NUL");
    }
    if rest.starts_with('/') {
        return Err("it is an absolute path");
    }
    let (rest, dir) = match rest.strip_suffix('/') {
        Some(d) if size == 0 => (d, true),
        Some(_) => return Err("it ends with '/' but holds bytes"),
        None => (rest, false),
    };
    if rest.is_empty() {
        return if dir {
            Err("it names /input itself")
        } else {
            Err("it names /input itself (nothing after the prefix)")
        };
    }
    let mut depth = 0;
    for c in rest.split('/') {
        depth += 1;
        match c {
            "" => return Err("it has an empty path component ('//')"),
            "." | ".." => return Err("it has a '.' or '..' component"),
            c if c.len() > 255 => return Err("a component is longer than 255 bytes"),
            _ => {}
        }
    }
    if depth > MAX_KEY_DEPTH {
        return Err("it is nested more than 64 levels deep");
    }
    let p = PathBuf::from(rest);
    Ok(if dir {
        KeyTarget::Dir(p)
    } else {
        KeyTarget::File(p)
    })
}

/// One call to the replica, retried while no replica answers.
pub(crate) async fn call<R: Rpc>(
    rpc: &dyn Replica,
    context: &str,
    req: impl Fn() -> R,
) -> Result<R::Reply, TaskIoError> {
    let mut last = String::new();
    for attempt in 0..CALL_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
        }
        match tokio::time::timeout(CALL_TIMEOUT, rpc.call(req().into_request())).await {
            Ok(Ok(r)) => {
                return rpc::decode::<R>(r).map_err(|e| match e {
                    RpcError::Refused { code, message } => TaskIoError::Replica {
                        context: context.into(),
                        code,
                        message,
                    },
                    e @ RpcError::WrongReply { .. } => TaskIoError::Unreachable {
                        context: context.into(),
                        message: format!("bad answer from the replica: {e}"),
                    },
                })
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = "timed out".into(),
        }
    }
    Err(TaskIoError::Unreachable {
        context: context.into(),
        message: format!("no control replica answered: {last}"),
    })
}

/// [`call`], asked again for as long as no replica answers (what a step
/// that must not go on without the answer needs); `Ok(None)`: `cancel`
/// came first.
pub(crate) async fn call_until_answered<R: Rpc>(
    rpc: &dyn Replica,
    context: &str,
    req: impl Fn() -> R,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<R::Reply>, TaskIoError> {
    loop {
        let answer = tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            a = call(rpc, context, &req) => a,
        };
        match answer {
            Err(TaskIoError::Unreachable { .. }) => {
                tracing::debug!(%context, "no control replica answers: waiting");
            }
            a => return a.map(Some),
        }
    }
}

/// What [`fetch_input`] fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Objects (files and folder markers).
    pub objects: usize,
    /// Bytes.
    pub bytes: u64,
}

/// Fills `dir` (removed first, then created empty) with `tenant`'s objects
/// under `folder`, at most `limit` bytes.
pub async fn fetch_input(
    rpc: &dyn Replica,
    tenant: &str,
    folder: &ObjectFolder,
    dir: &Path,
    limit: u64,
) -> Result<Fetched, TaskIoError> {
    let name = format!("{}/{}", folder.bucket, folder.prefix);
    // 1. The listing, bounded in count and bytes, every key checked.
    let mut objects: Vec<ListedObject> = Vec::new();
    let mut after: Option<String> = None;
    let context = format!("input: listing {name}");
    loop {
        let ObjectPage {
            objects: page,
            truncated,
        } = call(rpc, &context, || ListInput {
            tenant: tenant.into(),
            bucket: folder.bucket.clone(),
            prefix: folder.prefix.clone(),
            after: after.clone(),
        })
        .await?;
        // A page must move forward, or a replica could keep us listing.
        if page.is_empty() && truncated {
            return Err(TaskIoError::Unreachable {
                context,
                message: "the replica answered an empty page with more to come".into(),
            });
        }
        after = page.last().map(|o| o.key.clone());
        objects.extend(page);
        if objects.len() > MAX_INPUT_OBJECTS {
            return Err(TaskIoError::TooManyObjects { folder: name });
        }
        if !truncated {
            break;
        }
    }
    let too_large = || TaskIoError::TooLarge {
        folder: name.clone(),
        limit_mb: limit >> 20,
    };
    let total = objects
        .iter()
        .try_fold(0u64, |sum, o| sum.checked_add(o.size))
        .ok_or_else(too_large)?;
    if total > limit {
        return Err(too_large());
    }
    let targets = objects
        .iter()
        .map(|o| {
            key_path(&folder.prefix, &o.key, o.size).map_err(|why| TaskIoError::BadKey {
                key: o.key.clone(),
                why,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // 2. A fresh folder (nothing of a previous run, no link planted in it).
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("input: clearing {}", dir.display()))(e)),
    }
    std::fs::create_dir_all(dir).map_err(io(format!("input: creating {}", dir.display())))?;

    // 3. The objects, each read at one version.
    let mut received = 0u64;
    for (o, target) in objects.iter().zip(targets) {
        let rel = match target {
            KeyTarget::Dir(rel) => {
                make_parents(dir, &rel, &o.key, true)?;
                continue;
            }
            KeyTarget::File(rel) => rel,
        };
        make_parents(dir, &rel, &o.key, false)?;
        let path = dir.join(&rel);
        // `create_new` (O_EXCL) never opens an existing file or link.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => TaskIoError::BadKey {
                    key: o.key.clone(),
                    why: "another key already made this path a folder",
                },
                _ => io(format!("input: creating {}", path.display()))(e),
            })?;
        let context = format!("input: reading {}/{}", folder.bucket, o.key);
        let mut version: Option<String> = None;
        let mut offset = 0u64;
        loop {
            let PartData {
                version: v,
                size,
                data,
            } = call(rpc, &context, || ReadPart {
                of: ObjectUse::TaskIo,
                at: ObjectAt {
                    tenant: tenant.into(),
                    bucket: folder.bucket.clone(),
                    key: o.key.clone(),
                },
                version: version.clone(),
                offset,
                len: MAX_VOLUME_PART,
            })
            .await?;
            let Some(v) = v else {
                return Err(TaskIoError::Replica {
                    context,
                    code: ErrorCode::NotFound,
                    message: "the object was deleted while the input was fetched".into(),
                });
            };
            version = Some(v);
            received = received.saturating_add(data.len() as u64);
            if received > limit {
                return Err(too_large());
            }
            file.write_all(&data)
                .map_err(io(format!("input: writing {}", path.display())))?;
            offset += data.len() as u64;
            if offset >= size {
                break;
            }
            if data.is_empty() {
                return Err(TaskIoError::Unreachable {
                    context,
                    message: "the replica answered no bytes before the end".into(),
                });
            }
        }
    }
    Ok(Fetched {
        objects: objects.len(),
        bytes: received,
    })
}

/// Creates the folders above `rel` (and `rel` itself with `dir_too`) under
/// `root`; a file or link in the way is a key that conflicts with another.
fn make_parents(root: &Path, rel: &Path, key: &str, dir_too: bool) -> Result<(), TaskIoError> {
    let comps: Vec<_> = rel.components().collect();
    let upto = if dir_too {
        comps.len()
    } else {
        comps.len().saturating_sub(1)
    };
    let mut at = root.to_path_buf();
    for c in &comps[..upto] {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(TaskIoError::BadKey {
                    key: key.into(),
                    why: "another key already made a folder of it a file",
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(io(format!("input: creating {}", at.display())))?
            }
            Err(e) => return Err(io(format!("input: reading {}", at.display()))(e)),
        }
    }
    Ok(())
}

/// An instance's folders, made ready before it starts.
#[derive(Debug, Default)]
pub struct Folders {
    /// `/input`, filled.
    pub input: Option<PathBuf>,
    /// `/output`, created.
    pub output: Option<PathBuf>,
    /// What was fetched into `/input`.
    pub fetched: Option<Fetched>,
}

/// Makes `/input` (fetched from `tenant`'s objects) and `/output` of a WASM
/// instance in `inst_dir`, as `spec` asks.
pub async fn prepare(
    rpc: &dyn Replica,
    tenant: &str,
    spec: &WorkloadSpec,
    inst_dir: &Path,
) -> Result<Folders, TaskIoError> {
    let mut f = Folders::default();
    if spec.output.enabled() {
        let d = inst_dir.join("output");
        std::fs::create_dir_all(&d).map_err(io("output: creating the folder"))?;
        f.output = Some(d);
    }
    if let Some(folder) = &spec.input {
        let d = inst_dir.join("input");
        f.fetched = Some(fetch_input(rpc, tenant, folder, &d, disk_limit(spec)).await?);
        f.input = Some(d);
    }
    Ok(f)
}

/// Bytes and entries under `dir`, never following a link: a regular file
/// counts its length or its allocated blocks, whichever is more. The walk
/// stops past `max_entries` entries.
pub fn usage(dir: &Path, max_entries: usize) -> (u64, usize) {
    let mut bytes = 0u64;
    let mut entries = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            entries += 1;
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                bytes = bytes.saturating_add(m.len().max(m.blocks().saturating_mul(512)));
            }
        }
        // Past the entry cap, the count alone decides.
        if entries > max_entries {
            break;
        }
    }
    (bytes, entries)
}

/// Why `/output` is over its limit, if it is.
fn over_limit(dir: &Path, limit: u64) -> Option<TaskIoError> {
    let (bytes, entries) = usage(dir, MAX_OUTPUT_FILES);
    if entries > MAX_OUTPUT_FILES {
        Some(TaskIoError::OutputFull {
            found: format!("more than {MAX_OUTPUT_FILES} entries"),
            limit: format!("{MAX_OUTPUT_FILES} entries"),
        })
    } else if bytes > limit {
        Some(TaskIoError::OutputFull {
            found: format!("{bytes} bytes"),
            limit: format!("{} MiB", limit >> 20),
        })
    } else {
        None
    }
}

/// Why a container's writable layer and volumes (`dirs`) are over `limit`
/// bytes or [`MAX_CONTAINER_ENTRIES`] entries, if they are.
fn container_over_limit(dirs: &[PathBuf], limit: u64) -> Option<TaskIoError> {
    let (mut bytes, mut entries) = (0u64, 0usize);
    for d in dirs {
        let (b, e) = usage(d, MAX_CONTAINER_ENTRIES.saturating_sub(entries));
        bytes = bytes.saturating_add(b);
        entries += e;
        if entries > MAX_CONTAINER_ENTRIES {
            return Some(TaskIoError::DiskFull {
                found: format!("more than {MAX_CONTAINER_ENTRIES} entries"),
                limit: format!("{MAX_CONTAINER_ENTRIES} entries"),
            });
        }
    }
    (bytes > limit).then(|| TaskIoError::DiskFull {
        found: format!("{bytes} bytes"),
        limit: format!("{} MiB", limit >> 20),
    })
}

/// Entries a container's writable layer and volumes may hold together.
pub const MAX_CONTAINER_ENTRIES: usize = 1_000_000;
/// How often a container's writable layer and volumes are measured (they
/// can hold many files; `/output` is measured every [`WATCH_INTERVAL`]).
pub const CONTAINER_WATCH_INTERVAL: Duration = Duration::from_secs(1);

type Check = Arc<dyn Fn() -> Option<TaskIoError> + Send + Sync>;

/// Watches what a running instance writes on the node — a WASM task's
/// `/output`, or a container's writable layer and volumes — and stops the
/// run (cancels `run`) as soon as it is over its limit.
pub struct OutputWatch {
    stop: CancellationToken,
    /// Stops the watcher when the run ends early.
    _stop_on_drop: tokio_util::sync::DropGuard,
    task: tokio::task::JoinHandle<()>,
    over: Arc<Mutex<Option<TaskIoError>>>,
    check: Check,
}

impl OutputWatch {
    /// Starts watching a WASM task's `/output` folder `dir`.
    pub fn start(dir: PathBuf, limit: u64, run: CancellationToken) -> OutputWatch {
        Self::watch(
            Arc::new(move || over_limit(&dir, limit)),
            WATCH_INTERVAL,
            run,
        )
    }

    /// Starts watching a container's writable layer and volume folders.
    pub fn container(dirs: Vec<PathBuf>, limit: u64, run: CancellationToken) -> OutputWatch {
        Self::watch(
            Arc::new(move || container_over_limit(&dirs, limit)),
            CONTAINER_WATCH_INTERVAL,
            run,
        )
    }

    fn watch(check: Check, every: Duration, run: CancellationToken) -> OutputWatch {
        let stop = CancellationToken::new();
        let over = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let (stop, over, check) = (stop.clone(), over.clone(), check.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    let c = check.clone();
                    let found = tokio::task::spawn_blocking(move || c())
                        .await
                        .ok()
                        .flatten();
                    if let Some(why) = found {
                        if let Ok(mut o) = over.lock() {
                            *o = Some(why);
                        }
                        run.cancel();
                        return;
                    }
                }
            }
        });
        OutputWatch {
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            task,
            over,
            check,
        }
    }

    /// Stops watching once the run ended; `Err` when the folder went over
    /// its limit (while running, or as the run ended).
    pub async fn finish(self) -> Result<(), TaskIoError> {
        self.stop.cancel();
        let _ = self.task.await;
        if let Some(why) = self.over.lock().ok().and_then(|mut o| o.take()) {
            return Err(why);
        }
        let check = self.check;
        match tokio::task::spawn_blocking(move || check()).await {
            Ok(Some(why)) => Err(why),
            _ => Ok(()),
        }
    }
}

/// The regular files under `dir` as (relative path with '/', full path),
/// sorted; links and special files are left out (and never followed).
pub(crate) fn output_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, TaskIoError> {
    let mut files = BTreeSet::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    let mut seen = 0usize;
    while let Some((rel, d)) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(io(format!("output: reading {}", d.display())))?;
        for e in rd {
            let e = e.map_err(io(format!("output: reading {}", d.display())))?;
            seen += 1;
            if seen > MAX_OUTPUT_FILES {
                return Err(TaskIoError::OutputFull {
                    found: format!("more than {MAX_OUTPUT_FILES} entries"),
                    limit: format!("{MAX_OUTPUT_FILES} entries"),
                });
            }
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                return Err(TaskIoError::BadOutput {
                    path: format!("{rel}{}", name.to_string_lossy()),
                    why: "its name is not UTF-8".into(),
                });
            };
            let r = format!("{rel}{name}");
            let ft = e
                .file_type()
                .map_err(io(format!("output: reading {}", e.path().display())))?;
            if ft.is_dir() {
                stack.push((format!("{r}/"), e.path()));
            } else if ft.is_file() {
                files.insert((r, e.path()));
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// What [`upload_output`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// Files stored.
    pub files: usize,
    /// Bytes stored.
    pub bytes: u64,
}

/// Stores each regular file of `dir` as the object `<prefix><path>` of
/// `tenant`'s `folder.bucket`.
pub async fn upload_output(
    rpc: &dyn Replica,
    tenant: &str,
    folder: &ObjectFolder,
    dir: &Path,
) -> Result<Uploaded, TaskIoError> {
    let d = dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || output_files(&d))
        .await
        .map_err(|e| io("output: listing /output")(std::io::Error::other(e)))??;
    let mut done = Uploaded { files: 0, bytes: 0 };
    for (rel, path) in files {
        let key = format!("{}{rel}", folder.prefix);
        if key.len() > MAX_KEY_LEN {
            return Err(TaskIoError::BadOutput {
                path: rel,
                why: format!("its key would be longer than {MAX_KEY_LEN} bytes"),
            });
        }
        // Not following a link swapped in for the file.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io(format!("output: opening {}", path.display())))?;
        done.bytes += put_file(rpc, tenant, &folder.bucket, &key, &mut file).await?;
        done.files += 1;
    }
    Ok(done)
}

/// One step of storing `bucket/key`.
async fn put<S: UploadStep>(
    rpc: &dyn Replica,
    context: &str,
    (tenant, bucket, key): (&str, &str, &str),
    step: impl Fn() -> S,
) -> Result<S::Reply, TaskIoError> {
    call(rpc, context, || Upload {
        of: ObjectUse::TaskIo,
        at: ObjectAt {
            tenant: tenant.into(),
            bucket: bucket.into(),
            key: key.into(),
        },
        step: step(),
    })
    .await
}

/// Stores `file` as `bucket/key` in parts; returns its bytes.
async fn put_file(
    rpc: &dyn Replica,
    tenant: &str,
    bucket: &str,
    key: &str,
    file: &mut std::fs::File,
) -> Result<u64, TaskIoError> {
    let context = format!("output: storing {bucket}/{key}");
    let target = (tenant, bucket, key);
    let upload = put(rpc, &context, target, || Begin).await?;
    let mut parts = Vec::new();
    let mut bytes = 0u64;
    let result: Result<(), TaskIoError> = async {
        loop {
            let mut data = Vec::new();
            (&mut *file)
                .take(MAX_VOLUME_PART)
                .read_to_end(&mut data)
                .map_err(io(format!("output: reading {key}")))?;
            // Every file is at least one part, even an empty one.
            if data.is_empty() && !parts.is_empty() {
                return Ok(());
            }
            let number = parts.len() as u32 + 1;
            let last = (data.len() as u64) < MAX_VOLUME_PART;
            bytes += data.len() as u64;
            let step = || Part {
                upload: upload.clone(),
                number,
                data: data.clone(),
            };
            parts.push((number, put(rpc, &context, target, step).await?));
            if last {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        let abort = || Abort {
            upload: upload.clone(),
        };
        let _ = put(rpc, &context, target, abort).await;
        return Err(e);
    }
    let complete = || Complete {
        upload: upload.clone(),
        parts: parts.clone(),
    };
    put(rpc, &context, target, complete).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_proto::{Request, Response};

    #[test]
    fn keys_map_to_plain_relative_paths() {
        let file = |p: &str| Ok(KeyTarget::File(PathBuf::from(p)));
        assert_eq!(key_path("jobs/", "jobs/a.txt", 3), file("a.txt"));
        assert_eq!(key_path("jobs", "jobs/a/b.txt", 3), file("a/b.txt"));
        assert_eq!(key_path("", "x", 0), file("x"));
        assert_eq!(
            key_path("jobs/", "jobs/sub/", 0),
            Ok(KeyTarget::Dir(PathBuf::from("sub")))
        );
    }

    /// Keys a hostile tenant (or a replica) could choose.
    #[test]
    fn hostile_keys_are_refused() {
        for key in [
            "jobs/../../etc/shadow",
            "jobs/a/../../../x",
            "jobs/..",
            "jobs/.",
            "jobs/./a",
            "jobs//etc/passwd",
            "jobs/a//b",
            "jobs/a/",
            "jobs/",
            "jobs",
            "jobs/a\0b",
            "other/a",
            "/etc/shadow",
        ] {
            assert!(key_path("jobs/", key, 1).is_err(), "{key:?} was accepted");
        }
        assert!(key_path("", "/etc/shadow", 1).is_err());
        assert!(key_path("", "", 0).is_err());
        assert!(key_path("", "/", 0).is_err());
        let deep = vec!["d"; MAX_KEY_DEPTH + 1].join("/");
        assert!(key_path("", &deep, 1).is_err());
        let long = "n".repeat(256);
        assert!(key_path("", &long, 1).is_err());
    }

    proptest::proptest! {
        /// Whatever the key, an accepted one stays strictly inside the
        /// folder: only normal components, never absolute.
        #[test]
        fn accepted_keys_never_leave_the_folder(
            key in "[a./\\\\\\x00-]{0,12}",
            size in 0u64..2,
        ) {
            if let Ok(KeyTarget::File(p) | KeyTarget::Dir(p)) = key_path("", &key, size) {
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().count() >= 1);
                for c in p.components() {
                    proptest::prop_assert!(matches!(c, std::path::Component::Normal(_)), "{key:?} -> {p:?}");
                }
                let root = Path::new("/srv/input");
                proptest::prop_assert!(root.join(&p).starts_with(root));
            }
        }
    }

    /// A replica that serves a fixed listing and contents.
    struct Fake(Vec<(String, Vec<u8>)>);

    impl Replica for Fake {
        fn call(
            &self,
            req: Request,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, String>> + Send>>
        {
            let r = match req {
                Request::ListInput { .. } => Response::ObjectList {
                    objects: self
                        .0
                        .iter()
                        .map(|(k, d)| ListedObject {
                            key: k.clone(),
                            size: d.len() as u64,
                        })
                        .collect(),
                    truncated: false,
                },
                Request::GetInput { key, offset, .. } => {
                    let d = self
                        .0
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, d)| d.clone())
                        .unwrap_or_default();
                    Response::VolumeData {
                        version: Some("v".into()),
                        size: d.len() as u64,
                        data: d[offset as usize..].to_vec(),
                    }
                }
                _ => Response::Ok,
            };
            Box::pin(async move { Ok(r) })
        }
    }

    fn folder() -> ObjectFolder {
        ObjectFolder {
            bucket: "in".into(),
            prefix: "p/".into(),
        }
    }

    #[tokio::test]
    async fn a_fetch_writes_inside_the_folder_or_not_at_all() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("input");
        let ok = Fake(vec![
            ("p/a.txt".into(), b"alpha".to_vec()),
            ("p/d/".into(), Vec::new()),
            ("p/d/b.txt".into(), b"beta".to_vec()),
        ]);
        let f = fetch_input(&ok, "t", &folder(), &dir, 1 << 20)
            .await
            .expect("fetch");
        assert_eq!(
            f,
            Fetched {
                objects: 3,
                bytes: 9
            }
        );
        assert_eq!(std::fs::read(dir.join("d/b.txt")).expect("b"), b"beta");

        // A hostile key fails the whole fetch before anything is written.
        let bad = Fake(vec![
            ("p/a.txt".into(), b"alpha".to_vec()),
            ("p/../../escaped".into(), b"x".to_vec()),
        ]);
        let e = fetch_input(&bad, "t", &folder(), &dir, 1 << 20)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("p/../../escaped"), "{e}");
        assert!(!tmp.path().join("escaped").exists());
        // A key that needs a file to be a folder.
        let clash = Fake(vec![
            ("p/a".into(), b"file".to_vec()),
            ("p/a/b".into(), b"x".to_vec()),
        ]);
        let e = fetch_input(&clash, "t", &folder(), &dir, 1 << 20)
            .await
            .expect_err("clash");
        assert!(matches!(e, TaskIoError::BadKey { .. }), "{e}");
        // Too many bytes: refused on the listing.
        let big = Fake(vec![("p/big".into(), vec![0; 2048])]);
        let e = fetch_input(&big, "t", &folder(), &dir, 1024)
            .await
            .expect_err("big");
        assert!(matches!(e, TaskIoError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn output_listing_skips_links_and_counts_blocks() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("output");
        std::fs::create_dir_all(out.join("sub")).expect("mkdir");
        std::fs::write(out.join("a"), b"1").expect("a");
        std::fs::write(out.join("sub/b"), b"22").expect("b");
        std::fs::write(tmp.path().join("secret"), b"host").expect("secret");
        std::os::unix::fs::symlink(tmp.path().join("secret"), out.join("link")).expect("link");
        std::os::unix::fs::symlink("/etc", out.join("etc")).expect("dir link");
        let files: Vec<_> = output_files(&out)
            .expect("list")
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(files, ["a", "sub/b"]);
        let (bytes, entries) = usage(&out, MAX_OUTPUT_FILES);
        assert_eq!(entries, 5);
        assert!(bytes >= 3, "{bytes}");
        assert!(over_limit(&out, 1).is_some());
        assert!(over_limit(&out, 1 << 20).is_none());
    }
}
