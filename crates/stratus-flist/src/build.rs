//! Builds small OCI images from host files, for tests, examples and
//! benchmarks.
//!
//! [`ImageBuilder`] holds layers of [`LayerEntry`]s and an [`ImageConfig`]
//! and writes them as an OCI image layout directory, an OCI archive (a tar
//! of a layout, what `skopeo copy ... oci-archive:FILE` writes) or a
//! `docker save` tarball. OCI layers are gzip-compressed like pushed images;
//! docker-save layers are plain tars like `docker save` writes them. The
//! output is deterministic (same entries, same digests) and is accepted by
//! `skopeo inspect`. Layers are built in memory: keep images small.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::oci::{host_arch, MT_CONFIG, MT_INDEX, MT_LAYER_GZIP, MT_MANIFEST};
use crate::{FlistError, ImageConfig};

/// What a [`LayerEntry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A regular file whose contents are read from this host file.
    HostFile(PathBuf),
    /// A directory.
    Dir,
    /// A symlink to this target.
    Symlink(String),
    /// A hard link to this path (of this or a lower layer).
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A fifo.
    Fifo,
    /// A whiteout: deletes `path` of the lower layers (written as
    /// `dir/.wh.name`).
    Whiteout,
    /// An opaque marker: hides the lower entries of directory `path`
    /// (written as `path/.wh..wh..opq`).
    Opaque,
}

/// One entry of a layer: a path, its metadata and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path in the image (a leading `/` is dropped).
    pub path: String,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds since the epoch).
    pub mtime: u64,
    /// Extended attributes, written as PAX `SCHILY.xattr.*` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// What it is.
    pub kind: EntryKind,
}

impl LayerEntry {
    fn new(path: &str, mode: u32, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.to_string(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
            kind,
        }
    }

    /// A regular file.
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::File(data.into()))
    }

    /// A regular file with the contents of host file `host`.
    pub fn host_file(path: &str, mode: u32, host: impl Into<PathBuf>) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::HostFile(host.into()))
    }

    /// A directory.
    pub fn dir(path: &str, mode: u32) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::Dir)
    }

    /// A symlink.
    pub fn symlink(path: &str, target: &str) -> LayerEntry {
        LayerEntry::new(path, 0o777, EntryKind::Symlink(target.to_string()))
    }

    /// A hard link to `target`.
    pub fn hardlink(path: &str, target: &str) -> LayerEntry {
        LayerEntry::new(path, 0o644, EntryKind::Hardlink(target.to_string()))
    }

    /// A character device.
    pub fn char_device(path: &str, mode: u32, major: u32, minor: u32) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::CharDevice { major, minor })
    }

    /// A block device.
    pub fn block_device(path: &str, mode: u32, major: u32, minor: u32) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::BlockDevice { major, minor })
    }

    /// A fifo.
    pub fn fifo(path: &str, mode: u32) -> LayerEntry {
        LayerEntry::new(path, mode, EntryKind::Fifo)
    }

    /// Deletes `path` of the lower layers.
    pub fn whiteout(path: &str) -> LayerEntry {
        LayerEntry::new(path, 0o644, EntryKind::Whiteout)
    }

    /// Hides the lower entries of directory `dir`.
    pub fn opaque(dir: &str) -> LayerEntry {
        LayerEntry::new(dir, 0o644, EntryKind::Opaque)
    }

    /// With this owner.
    pub fn owner(mut self, uid: u32, gid: u32) -> LayerEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// With this extended attribute.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> LayerEntry {
        self.xattrs.push((name.to_string(), value.to_vec()));
        self
    }

    /// With this mtime.
    pub fn mtime(mut self, mtime: u64) -> LayerEntry {
        self.mtime = mtime;
        self
    }
}

fn tar_err(e: std::io::Error) -> FlistError {
    FlistError::io("writing a layer tar")(e)
}

/// `dir/.wh.name` style path for a marker inside the parent of `path`.
fn marker(path: &str, prefix: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{prefix}{name}"),
        None => format!("{prefix}{path}"),
    }
}

/// Writes `entries` as an uncompressed tar layer.
pub fn layer_tar(entries: &[LayerEntry]) -> Result<Vec<u8>, FlistError> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let path = e.path.trim_start_matches('/');
        if !e.xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            b.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(tar_err)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(u64::from(e.uid));
        h.set_gid(u64::from(e.gid));
        h.set_mtime(e.mtime);
        h.set_size(0);
        use tar::EntryType as T;
        match &e.kind {
            EntryKind::File(data) => {
                h.set_entry_type(T::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
                    .map_err(tar_err)?;
            }
            EntryKind::HostFile(host) => {
                let f = fs::File::open(host)
                    .map_err(FlistError::io(format!("opening {}", host.display())))?;
                let len = f
                    .metadata()
                    .map_err(FlistError::io(format!("stat {}", host.display())))?
                    .len();
                h.set_entry_type(T::Regular);
                h.set_size(len);
                b.append_data(&mut h, path, f).map_err(tar_err)?;
            }
            EntryKind::Dir => {
                h.set_entry_type(T::Directory);
                b.append_data(&mut h, path, std::io::empty())
                    .map_err(tar_err)?;
            }
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                h.set_entry_type(if matches!(e.kind, EntryKind::Symlink(_)) {
                    T::Symlink
                } else {
                    T::Link
                });
                b.append_link(
                    &mut h,
                    path,
                    target.trim_start_matches(if matches!(e.kind, EntryKind::Hardlink(_)) {
                        "/"
                    } else {
                        ""
                    }),
                )
                .map_err(tar_err)?;
            }
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                h.set_entry_type(if matches!(e.kind, EntryKind::CharDevice { .. }) {
                    T::Char
                } else {
                    T::Block
                });
                h.set_device_major(*major).map_err(tar_err)?;
                h.set_device_minor(*minor).map_err(tar_err)?;
                b.append_data(&mut h, path, std::io::empty())
                    .map_err(tar_err)?;
            }
            EntryKind::Fifo => {
                h.set_entry_type(T::Fifo);
                b.append_data(&mut h, path, std::io::empty())
                    .map_err(tar_err)?;
            }
            EntryKind::Whiteout => {
                h.set_entry_type(T::Regular);
                b.append_data(&mut h, marker(path, ".wh."), std::io::empty())
                    .map_err(tar_err)?;
            }
            EntryKind::Opaque => {
                h.set_entry_type(T::Regular);
                let p = format!("{}/.wh..wh..opq", path.trim_end_matches('/'));
                b.append_data(&mut h, p, std::io::empty())
                    .map_err(tar_err)?;
            }
        }
    }
    b.into_inner().map_err(tar_err)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Files to write: (relative path, bytes).
type Files = Vec<(String, Vec<u8>)>;

/// The blobs of a built image.
struct Built {
    /// (plain tar, gzip blob, diff_id, blob digest) per layer.
    layers: Vec<(Vec<u8>, Vec<u8>, String, String)>,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
}

/// Builds small OCI images (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct ImageBuilder {
    config: ImageConfig,
    layers: Vec<Vec<LayerEntry>>,
}

impl ImageBuilder {
    /// An image with no layers and an empty config (linux, host arch).
    pub fn new() -> ImageBuilder {
        ImageBuilder::default()
    }

    /// Sets the run configuration (empty `architecture` / `os`: the host's
    /// / `linux`).
    pub fn config(mut self, c: ImageConfig) -> ImageBuilder {
        self.config = c;
        self
    }

    /// Adds a layer on top.
    pub fn layer(mut self, entries: Vec<LayerEntry>) -> ImageBuilder {
        self.layers.push(entries);
        self
    }

    /// The layers' uncompressed tars, bottom first.
    pub fn layer_tars(&self) -> Result<Vec<Vec<u8>>, FlistError> {
        self.layers.iter().map(|l| layer_tar(l)).collect()
    }

    /// The config as the image will carry it.
    pub fn image_config(&self) -> ImageConfig {
        let mut c = self.config.clone();
        if c.architecture.is_empty() {
            c.architecture = host_arch().to_string();
        }
        if c.os.is_empty() {
            c.os = "linux".into();
        }
        c
    }

    fn build(&self) -> Result<Built, FlistError> {
        let mut layers = Vec::new();
        for tar in self.layer_tars()? {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).map_err(tar_err)?;
            let gz = gz.finish().map_err(tar_err)?;
            let diff_id = sha256_digest(&tar);
            let digest = sha256_digest(&gz);
            layers.push((tar, gz, diff_id, digest));
        }
        let c = self.image_config();
        let ports: serde_json::Map<String, serde_json::Value> = c
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        let mut run = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value, empty: bool| {
            if !empty {
                run.insert(k.to_string(), v);
            }
        };
        put("Entrypoint", json!(c.entrypoint), c.entrypoint.is_empty());
        put("Cmd", json!(c.cmd), c.cmd.is_empty());
        put("Env", json!(c.env), c.env.is_empty());
        put("WorkingDir", json!(c.working_dir), c.working_dir.is_empty());
        put("User", json!(c.user), c.user.is_empty());
        put("ExposedPorts", json!(ports), ports.is_empty());
        put("Labels", json!(c.labels), c.labels.is_empty());
        let config = json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": c.architecture,
            "os": c.os,
            "config": run,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>(),
            },
        });
        let config = serde_json::to_vec(&config)
            .map_err(|e| FlistError::Image(format!("config json: {e}")))?;
        let config_digest = sha256_digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": MT_LAYER_GZIP, "digest": l.3, "size": l.1.len(),
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest)
            .map_err(|e| FlistError::Image(format!("manifest json: {e}")))?;
        let manifest_digest = sha256_digest(&manifest);
        Ok(Built {
            layers,
            config,
            config_digest,
            manifest,
            manifest_digest,
        })
    }

    /// The files of an OCI layout: (relative path, bytes).
    fn layout_files(&self, tag: &str) -> Result<(Files, String), FlistError> {
        let b = self.build()?;
        let c = self.image_config();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{
                "mediaType": MT_MANIFEST,
                "digest": b.manifest_digest,
                "size": b.manifest.len(),
                "platform": {"architecture": c.architecture, "os": c.os},
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        let index =
            serde_json::to_vec(&index).map_err(|e| FlistError::Image(format!("index: {e}")))?;
        let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        let mut files = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), index),
            (blob(&b.manifest_digest), b.manifest),
            (blob(&b.config_digest), b.config),
        ];
        for (_, gz, _, digest) in b.layers {
            files.push((blob(&digest), gz));
        }
        Ok((files, b.manifest_digest))
    }

    /// Writes an OCI image layout into `dir` (created if missing; an
    /// existing `index.json` is replaced) with one manifest named `tag`;
    /// returns the manifest digest.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) -> Result<String, FlistError> {
        let (files, digest) = self.layout_files(tag)?;
        fs::create_dir_all(dir.join("blobs/sha256"))
            .map_err(FlistError::io(format!("creating {}", dir.display())))?;
        for (path, bytes) in files {
            let p = dir.join(&path);
            fs::write(&p, bytes).map_err(FlistError::io(format!("writing {}", p.display())))?;
        }
        Ok(digest)
    }

    /// Writes an OCI archive (a tar of an OCI layout) to `file`; returns the
    /// manifest digest.
    pub fn write_oci_archive(&self, file: &Path, tag: &str) -> Result<String, FlistError> {
        let (files, digest) = self.layout_files(tag)?;
        write_tar(file, &files)?;
        Ok(digest)
    }

    /// Writes a `docker save` tarball to `file` (the classic layout:
    /// `manifest.json`, `<config hex>.json`, `<diff id hex>/layer.tar`,
    /// uncompressed layers).
    pub fn write_docker_save(&self, file: &Path, repo_tag: &str) -> Result<(), FlistError> {
        let b = self.build()?;
        let hexof = |d: &str| d.trim_start_matches("sha256:").to_string();
        let config_name = format!("{}.json", hexof(&b.config_digest));
        let layer_names: Vec<String> = b
            .layers
            .iter()
            .map(|l| format!("{}/layer.tar", hexof(&l.2)))
            .collect();
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": layer_names,
        }]);
        let manifest = serde_json::to_vec(&manifest)
            .map_err(|e| FlistError::Image(format!("manifest json: {e}")))?;
        let mut files = vec![(config_name, b.config)];
        let mut seen = std::collections::HashSet::new();
        for (name, (tar, ..)) in layer_names.into_iter().zip(b.layers) {
            if seen.insert(name.clone()) {
                files.push((name, tar));
            }
        }
        files.push(("manifest.json".to_string(), manifest));
        write_tar(file, &files)
    }
}

fn write_tar(file: &Path, files: &[(String, Vec<u8>)]) -> Result<(), FlistError> {
    let out =
        fs::File::create(file).map_err(FlistError::io(format!("creating {}", file.display())))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(out));
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        let mut acc = String::new();
        for p in parts {
            acc.push_str(p);
            acc.push('/');
            if dirs.insert(acc.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_mtime(1_700_000_000);
                h.set_size(0);
                b.append_data(&mut h, &acc, std::io::empty())
                    .map_err(tar_err)?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes.as_slice())
            .map_err(tar_err)?;
    }
    let mut w = b.into_inner().map_err(tar_err)?;
    w.flush().map_err(tar_err)?;
    Ok(())
}

/// A one-layer busybox image: `/bin/busybox` (the host file `busybox`, e.g.
/// the `busybox-static` package's `/bin/busybox`) and symlinks to it for the
/// common applets in `/bin`; `/proc`, `/sys`, `/dev`, `/tmp` (1777), `/root`
/// and `/etc` with `passwd` and `group` (root and nobody, 65534); `Cmd
/// ["sh"]`.
pub fn busybox_image(busybox: &Path) -> ImageBuilder {
    let mut entries = vec![
        LayerEntry::dir("bin", 0o755),
        LayerEntry::host_file("bin/busybox", 0o755, busybox),
    ];
    for applet in [
        "sh", "echo", "cat", "ls", "ps", "sleep", "head", "wc", "id", "hostname", "mount", "dd",
        "true", "false", "env", "httpd", "wget", "nc", "nslookup", "grep", "mkdir", "tr",
    ] {
        entries.push(LayerEntry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    entries.extend([
        LayerEntry::dir("proc", 0o555),
        LayerEntry::dir("sys", 0o555),
        LayerEntry::dir("dev", 0o755),
        LayerEntry::dir("tmp", 0o1777),
        LayerEntry::dir("root", 0o700),
        LayerEntry::dir("etc", 0o755),
        LayerEntry::file(
            "etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        LayerEntry::file("etc/group", 0o644, "root:x:0:\nnobody:x:65534:\n"),
    ]);
    ImageBuilder::new()
        .config(ImageConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            ..ImageConfig::default()
        })
        .layer(entries)
}

/// The busybox image of [`busybox_image`] with a dynamically linked
/// program of the host added at `/usr/bin/NAME`, with the shared libraries
/// `ldd` names for it at their host paths: e.g. Debian's `redis-server`,
/// for a two-service app (a web frontend in busybox that calls redis).
pub fn busybox_with_program(busybox: &Path, program: &Path) -> Result<ImageBuilder, FlistError> {
    let io = |source: std::io::Error| FlistError::Io {
        what: format!("ldd {}", program.display()),
        source,
    };
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .map_err(io)?;
    let mut libs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)".
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    libs.sort();
    libs.dedup();
    let name = program
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io(std::io::Error::other("the program has no file name")))?;
    let mut entries = vec![
        LayerEntry::dir("usr", 0o755),
        LayerEntry::dir("usr/bin", 0o755),
        LayerEntry::host_file(&format!("usr/bin/{name}"), 0o755, program),
    ];
    let mut dirs = std::collections::BTreeSet::new();
    for lib in &libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        let mut parent = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            parent.push(c);
            if dirs.insert(parent.clone()) {
                entries.push(LayerEntry::dir(&parent.to_string_lossy(), 0o755));
            }
        }
        entries.push(LayerEntry::host_file(&rel.to_string_lossy(), 0o755, lib));
    }
    Ok(busybox_image(busybox)
        .config(ImageConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin:/usr/bin".into()],
            ..ImageConfig::default()
        })
        .layer(entries))
}
