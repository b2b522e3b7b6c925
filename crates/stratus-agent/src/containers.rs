//! Container images on a lending node: the flist of a pinned image is
//! fetched once (and kept on disk), mounted read-only through FUSE with lazy,
//! verified chunk fetch from the control replicas, shared by every instance
//! of that image on the node; each instance gets an overlayfs upper layer of
//! its own on the node's disk and runs in a libcontainer sandbox.
//!
//! Chunks are fetched from the replica the agent is connected to, which
//! decrypts them (only replicas hold scope keys); the mount checks every
//! chunk against the flist's plain BLAKE3 before it is cached or served, so a
//! replica or a disk that returns wrong bytes is never read by a container.
//! The first start of an image records the chunks it read
//! ([`Mounted::access_log`]); later mounts prefetch them in the background.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratus_container::{ContainerExecutor, ContainerSpec, IdMap, PortMap, Protocol, Volume};
use stratus_flist::{FileChunk, Flist};
use stratus_mount::{ChunkCache, ChunkSource, MountOptions, Mounted, Overlay, SourceError};
use stratus_net::Connection;
use stratus_proto::rpc;
use stratus_spec::{FetchMode, PortSpec, WorkloadSpec};
use stratus_types::{ImageRef, PortRange};

/// Default size of the node's chunk cache.
pub const DEFAULT_CHUNK_CACHE_BYTES: u64 = 2 << 30;
/// How long one chunk fetch may take before it is retried.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of one chunk fetch (the connection may fail over meanwhile).
const CHUNK_ATTEMPTS: usize = 4;

/// Gives the agent's current connection to a control replica (`None` while
/// disconnected).
pub type Connect = Arc<dyn Fn() -> Option<Connection> + Send + Sync>;

/// Fetches chunks of one tenant's image from the connected replica.
struct ReplicaChunks {
    tenant: String,
    connect: Connect,
    rt: tokio::runtime::Handle,
}

impl ChunkSource for ReplicaChunks {
    fn fetch(&self, chunk: &FileChunk) -> Result<Vec<u8>, SourceError> {
        let mut last = String::from("not connected to a control replica");
        for attempt in 0..CHUNK_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 * attempt as u64));
            }
            let Some(conn) = (self.connect)() else {
                continue;
            };
            let req = rpc::GetChunk {
                tenant: self.tenant.clone(),
                id: chunk.id,
            };
            match self.rt.block_on(conn.rpc(req, CHUNK_TIMEOUT)) {
                Ok(bytes) => return Ok(bytes),
                Err(e) if e.code() == Some(stratus_types::ErrorCode::NotFound) => {
                    return Err(SourceError::NotFound)
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(SourceError::Failed(last))
    }
}

/// One image mounted on this node.
struct ImageMount {
    mounted: Option<Mounted>,
    users: usize,
    prefetch_file: PathBuf,
}

/// An instance's prepared root file system (unmounted on drop).
pub struct Rootfs {
    overlay: Option<Overlay>,
    image: String,
    host: Arc<ContainerHost>,
    /// The merged root the container runs in.
    pub path: PathBuf,
    /// The image's flist (run config).
    pub flist: Arc<Flist>,
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if let Some(o) = self.overlay.take() {
            if let Err(e) = o.unmount() {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot unmount a container's root");
            }
        }
        self.host.release(&self.image);
    }
}

/// Parallel chunk fetches of a full image fetch.
const FULL_FETCH_THREADS: usize = 8;

/// Everything a node needs to run container images.
pub struct ContainerHost {
    dir: PathBuf,
    executor: ContainerExecutor,
    cache: Arc<ChunkCache>,
    mounts: Mutex<HashMap<String, ImageMount>>,
    /// Host ports the lender allows published ports on.
    ports: PortRange,
    /// Where the lender lets containers connect.
    egress: crate::services::LenderEgress,
    /// The services running here, by tenant and name.
    services: Arc<crate::services::ServiceTable>,
}

impl ContainerHost {
    /// Sets up under `dir` (images, chunk cache, container state); fails
    /// when this machine cannot run containers (not root, no cgroups, no
    /// FUSE).
    /// Published ports use only host ports inside `ports`. With
    /// `userns: Some(first)`, containers run in a user namespace whose
    /// root is host uid `first` (when the kernel has user namespaces; it
    /// warns and runs without one otherwise). Containers connect out only
    /// where `egress` lets them, and find their tenants' services in
    /// `services`.
    pub fn new(
        dir: &Path,
        cache_bytes: u64,
        ports: PortRange,
        userns: Option<u32>,
        egress: crate::services::LenderEgress,
        services: Arc<crate::services::ServiceTable>,
    ) -> Result<ContainerHost, String> {
        let mut executor = ContainerExecutor::new(&dir.join("containers"))
            .map_err(|e| format!("containers: {e}"))?
            .with_port_range(ports.first..=ports.last);
        match (userns, user_namespaces()) {
            (Some(first), Ok(())) => {
                executor = executor.with_user_namespace(IdMap::new(first));
                tracing::info!(
                    first,
                    "containers run in user namespaces: container root is host uid {first}"
                );
            }
            (Some(_), Err(why)) => tracing::warn!(
                "{why}: container root is host root on this node (confined by capabilities, seccomp and namespaces)"
            ),
            (None, _) => tracing::warn!(
                "user namespaces are turned off (--userns off): container root is host root on this node"
            ),
        }
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse: images cannot be mounted".into());
        }
        let cache = ChunkCache::open(&dir.join("chunks"), cache_bytes)
            .map_err(|e| format!("chunk cache: {e}"))?;
        Ok(ContainerHost {
            dir: dir.to_path_buf(),
            executor,
            cache: Arc::new(cache),
            mounts: Mutex::new(HashMap::new()),
            ports,
            egress,
            services,
        })
    }

    /// The container executor.
    pub fn executor(&self) -> &ContainerExecutor {
        &self.executor
    }

    /// The lender's egress policy.
    pub fn egress(&self) -> &crate::services::LenderEgress {
        &self.egress
    }

    /// The services running on this node.
    pub fn services(&self) -> &Arc<crate::services::ServiceTable> {
        &self.services
    }

    fn image_dir(&self, image: &str) -> PathBuf {
        let h = blake3::hash(image.as_bytes()).to_hex();
        self.dir.join("images").join(&h[..32])
    }

    /// The flist of `image` (from disk, else from the replica).
    async fn flist(
        &self,
        tenant: &str,
        image: &str,
        connect: &Connect,
    ) -> Result<Arc<Flist>, String> {
        let file = self.image_dir(image).join("flist");
        // Decoded and validated here, so a bad flist is never stored (the
        // mount validates again: it trusts no caller).
        let decode = |bytes: &[u8]| Flist::decode(bytes).and_then(|f| f.validate().map(|_| f));
        if let Some(f) = std::fs::read(&file).ok().and_then(|b| decode(&b).ok()) {
            return Ok(Arc::new(f));
        }
        let conn = connect().ok_or("not connected to a control replica")?;
        let req = rpc::GetFlist {
            tenant: tenant.into(),
            image: image.into(),
        };
        let bytes = conn
            .rpc(req, Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        let flist = decode(&bytes).map_err(|e| format!("the replica sent a bad flist: {e}"))?;
        if let Some(d) = file.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&file, &bytes);
        Ok(Arc::new(flist))
    }

    /// Mounts `image` if it is not yet, and prepares `instance`'s root over
    /// it (an overlayfs upper layer kept in `inst_dir`, so files the
    /// container wrote survive its restarts). [`FetchMode::Full`] fetches
    /// every chunk of the image first.
    pub async fn prepare(
        self: &Arc<Self>,
        tenant: &str,
        image: &ImageRef,
        inst_dir: &Path,
        connect: Connect,
        fetch: FetchMode,
    ) -> Result<Rootfs, String> {
        // Mounts, folders and the replica's `GetFlist` use its string form.
        let image = image.to_string();
        let image = image.as_str();
        let flist = self.flist(tenant, image, &connect).await?;
        let lower = self.image_dir(image).join("mnt");
        let full = {
            let mut mounts = self.mounts.lock().map_err(|_| "mount table poisoned")?;
            if let Some(m) = mounts.get_mut(image) {
                m.users += 1;
            } else {
                std::fs::create_dir_all(&lower)
                    .map_err(|e| format!("creating {}: {e}", lower.display()))?;
                let prefetch_file = self.image_dir(image).join("prefetch");
                let prefetch = std::fs::read(&prefetch_file)
                    .ok()
                    .map(|b| {
                        b.chunks_exact(32)
                            .filter_map(|c| c.try_into().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                let source = Arc::new(ReplicaChunks {
                    tenant: tenant.to_string(),
                    connect: connect.clone(),
                    rt: tokio::runtime::Handle::current(),
                });
                let mounted = stratus_mount::mount(
                    flist.clone(),
                    source,
                    self.cache.clone(),
                    &lower,
                    MountOptions {
                        prefetch,
                        fs_name: format!("stratus:{image}"),
                        id_shift: self.ids().map_or(0, |ids| ids.first),
                        ..MountOptions::default()
                    },
                )
                .map_err(|e| format!("mounting the image: {e}"))?;
                mounts.insert(
                    image.to_string(),
                    ImageMount {
                        mounted: Some(mounted),
                        users: 1,
                        prefetch_file,
                    },
                );
            }
            (fetch == FetchMode::Full)
                .then(|| mounts.get(image)?.mounted.as_ref())
                .flatten()
                .map(|m| m.full_fetch(&flist))
        };
        let mut root = Rootfs {
            overlay: None,
            image: image.to_string(),
            host: self.clone(),
            path: inst_dir.join("rootfs"),
            flist,
        };
        if let Some(full) = full {
            let report = tokio::task::spawn_blocking(move || full.run(FULL_FETCH_THREADS))
                .await
                .map_err(|e| format!("fetching the whole image: {e}"))?
                .map_err(|e| e.to_string())?;
            tracing::info!(%image, bytes = report.bytes, fetched = report.fetched_bytes, "image fetched in full");
        }
        let (upper, work) = (inst_dir.join("upper"), inst_dir.join("work"));
        for d in [&upper, &work, &root.path] {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        // The container's `/` is the upper folder: owned as the image's
        // root folder is, in the container's ids.
        if let (Some(ids), Some(top)) = (self.ids(), root.flist.inode(stratus_flist::ROOT)) {
            let owner = |id: u32| ids.to_host(id).or(ids.to_host(NOBODY));
            std::os::unix::fs::chown(&upper, owner(top.uid), owner(top.gid))
                .map_err(|e| format!("giving {} to the container: {e}", upper.display()))?;
        }
        root.overlay = Some(
            Overlay::mount(&lower, &upper, &work, &root.path)
                .map_err(|e| format!("mounting the container's root: {e}"))?,
        );
        Ok(root)
    }

    /// Fetch counters of `image`'s mount: (chunks, bytes) fetched.
    pub fn fetched(&self, image: &str) -> Option<(u64, u64)> {
        let mounts = self.mounts.lock().ok()?;
        let s = mounts.get(image)?.mounted.as_ref()?.stats();
        Some((s.fetched_chunks, s.fetched_bytes))
    }

    fn release(&self, image: &str) {
        let Ok(mut mounts) = self.mounts.lock() else {
            return;
        };
        let Some(m) = mounts.get_mut(image) else {
            return;
        };
        // Record what this start read, for the next one to prefetch.
        if let Some(mounted) = &m.mounted {
            let log = mounted.access_log();
            if !log.is_empty() && !m.prefetch_file.exists() {
                let _ = std::fs::write(&m.prefetch_file, log.concat());
            }
        }
        m.users = m.users.saturating_sub(1);
        if m.users == 0 {
            if let Some(m) = mounts.remove(image) {
                if let Some(mounted) = m.mounted {
                    if let Err(e) = mounted.unmount() {
                        tracing::warn!(%image, error = %e, "cannot unmount an image");
                    }
                }
            }
        }
    }

    /// The user namespace containers run in here, if any.
    pub fn ids(&self) -> Option<IdMap> {
        self.executor.user_namespace()
    }

    /// Host folder of a named volume of a workload (created on first use,
    /// owned by container root).
    pub fn volume_dir(&self, workload: &str, name: &str) -> Result<PathBuf, String> {
        let d = self
            .dir
            .join("volumes")
            .join(workload.replace('/', "_"))
            .join(name);
        if !d.exists() {
            std::fs::create_dir_all(&d).map_err(|e| format!("creating volume {name}: {e}"))?;
            if let Some(ids) = self.ids() {
                std::os::unix::fs::chown(&d, Some(ids.first), Some(ids.first))
                    .map_err(|e| format!("giving volume {name} to the container: {e}"))?;
            }
        }
        Ok(d)
    }

    /// The container spec of an instance: the image's run config with the
    /// workload's overrides (args replace `Cmd`, env is added).
    pub fn container_spec(
        &self,
        id: &str,
        workload: &str,
        spec: &WorkloadSpec,
        udp: &[PortSpec],
        root: &Rootfs,
    ) -> Result<ContainerSpec, String> {
        let image = spec.image.clone().unwrap_or_default();
        check_ports(&image.ports, &self.ports)?;
        check_ports(udp, &self.ports)?;
        let cfg = &root.flist.config;
        let entrypoint = if image.entrypoint.is_empty() {
            cfg.entrypoint.clone()
        } else {
            image.entrypoint.clone()
        };
        let cmd = if spec.args.is_empty() {
            cfg.cmd.clone()
        } else {
            spec.args.clone()
        };
        let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if args.is_empty() {
            return Err("the image has no entrypoint or cmd and the workload gives no args".into());
        }
        let mut env: Vec<(String, String)> = cfg
            .env
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .filter(|(k, _)| !spec.env.contains_key(k))
            .collect();
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let volumes = image
            .volumes
            .iter()
            .map(|v| {
                Ok(Volume {
                    host_path: self.volume_dir(workload, &v.name)?,
                    container_path: v.path.clone(),
                    read_only: v.read_only,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ContainerSpec {
            id: container_id(id),
            rootfs: root.path.clone(),
            args,
            env,
            cwd: image
                .workdir
                .clone()
                .unwrap_or_else(|| cfg.working_dir.clone()),
            user: image.user.clone().unwrap_or_else(|| cfg.user.clone()),
            hostname: spec.name.clone(),
            memory_bytes: spec.resources.memory_mb.saturating_mul(1024 * 1024),
            cpu_millis: spec.resources.cpu_millis,
            pids: 1024,
            wall_time: None,
            ports: (image.ports.iter().map(|p| (p, Protocol::Tcp)))
                .chain(udp.iter().map(|p| (p, Protocol::Udp)))
                .map(|(p, protocol)| PortMap {
                    container_port: p.container,
                    host_port: p.host,
                    host_ip: std::net::IpAddr::from([0, 0, 0, 0]),
                    protocol,
                })
                .collect(),
            volumes,
            // Set by the supervisor (`services::network` needs the host's Arc).
            network: None,
            stdin: None,
            meter: stratus_runtime::Meter::default(),
        })
    }
}

/// `nobody`: the owner of ids a user namespace does not map.
const NOBODY: u32 = 65_534;

/// Whether this kernel lets the agent make user namespaces.
fn user_namespaces() -> Result<(), String> {
    if !Path::new("/proc/self/ns/user").exists() {
        return Err("this kernel has no user namespaces".into());
    }
    match std::fs::read_to_string("/proc/sys/user/max_user_namespaces") {
        Ok(n) if n.trim() == "0" => {
            Err("user namespaces are disabled (user.max_user_namespaces = 0)".into())
        }
        _ => Ok(()),
    }
}

/// Refuses a fixed host port outside the ports the lender allows (the
/// scheduler does not place such a workload here; this is the second wall).
pub fn check_ports(ports: &[PortSpec], allowed: &PortRange) -> Result<(), String> {
    match ports
        .iter()
        .find(|p| p.host != 0 && !allowed.contains(p.host))
    {
        Some(p) => Err(format!(
            "host port {} is outside the ports this node allows ({allowed})",
            p.host
        )),
        None => Ok(()),
    }
}

/// A container id from an instance id (`tenant/name/gen-slot-index`):
/// `[a-z0-9-]` only, unique per instance.
pub fn container_id(instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let h = blake3::hash(instance.as_bytes()).to_hex();
    let head: String = clean.chars().take(40).collect();
    format!("{head}-{}", &h[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second wall: a spec asking for host port 22 or 80 on a node that
    /// allows 20000-29999 is refused by the agent even if a scheduler placed
    /// it there; `host: 0` and ports inside the range pass.
    #[test]
    fn host_ports_outside_the_nodes_range_are_refused() {
        let range = PortRange::DEFAULT;
        let port = |host| PortSpec {
            container: 80,
            host,
        };
        for bad in [22, 80, 1023, 19999, 30000] {
            let err = check_ports(&[port(20001), port(bad)], &range)
                .expect_err("port outside the range must be refused");
            assert!(
                err.contains(&bad.to_string()) && err.contains("20000-29999"),
                "{err}"
            );
        }
        assert_eq!(
            check_ports(&[port(0), port(20000), port(29999)], &range),
            Ok(())
        );
        let low = PortRange {
            first: 80,
            last: 80,
        };
        assert_eq!(check_ports(&[port(80)], &low), Ok(()));
    }
}
