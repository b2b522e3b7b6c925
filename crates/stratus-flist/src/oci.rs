//! Image formats: `docker save` tarballs, OCI image layout directories and
//! OCI archives (a tar of a layout), read into an [`Flist`].
//!
//! Everything is read from the input file in place: a blob inside a tar is
//! a (offset, length) section of it, found by one pass over the outer tar's
//! headers (contents are seeked over). Blobs are checked against their
//! digests during pass 1 of the layer application (see the crate docs), so
//! no content reaches the sink unless every digest matched.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::layer::{LayerSource, Layers};
use crate::{ContentSink, Flist, FlistError, ImageConfig};

/// OCI image index media type.
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker manifest list media type.
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker manifest media type.
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Layer media types understood (compression is detected from the bytes).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
/// Largest JSON document read (index, manifest, config, manifest.json).
pub const MAX_JSON_BYTES: u64 = 8 << 20;
/// Deepest nesting of image indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// Size caps of one import (issue 13, item 6); each refusal names the cap.
/// Tar extension headers and entry counts are bounded as well
/// ([`crate::targuard`], [`crate::layer::MAX_INODES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// Largest archive file (a `docker save` tarball or OCI archive).
    pub max_archive_bytes: u64,
    /// Most bytes one layer may decompress to (gzip and zstd bombs).
    pub max_layer_bytes: u64,
    /// Most bytes all layers together may decompress to.
    pub max_image_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_archive_bytes: 16 << 30,
            max_layer_bytes: 16 << 30,
            max_image_bytes: 64 << 30,
        }
    }
}

/// The OCI name of the host's architecture (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// An imported image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedImage {
    /// The file tree and run configuration.
    pub flist: Flist,
    /// `sha256:<hex>` of the image manifest (docker-save: of the config).
    pub digest: String,
    /// Names found in the input: docker-save `RepoTags`, OCI index
    /// annotation `org.opencontainers.image.ref.name`.
    pub tags: Vec<String>,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of the (compressed) layer blobs.
    pub layer_bytes: u64,
}

/// Imports the image at `path` (a `docker save` tarball, an OCI layout
/// directory or an OCI archive), handing the contents of its surviving
/// files to `sink`. With several images in the input, the one for
/// `linux/<host arch>` is taken, else the only one; otherwise the error
/// lists them (see [`import_image_ref`]).
pub fn import_image(path: &Path, sink: &mut dyn ContentSink) -> Result<ImportedImage, FlistError> {
    import_image_ref(path, None, sink)
}

/// Like [`import_image`], taking only the images named `reference` (an OCI
/// `ref.name` annotation or a docker-save repo tag) when it is given.
pub fn import_image_ref(
    path: &Path,
    reference: Option<&str>,
    sink: &mut dyn ContentSink,
) -> Result<ImportedImage, FlistError> {
    import_image_with(path, reference, sink, &ImportLimits::default())
}

/// Like [`import_image_ref`], under `limits`.
pub fn import_image_with(
    path: &Path,
    reference: Option<&str>,
    sink: &mut dyn ContentSink,
    limits: &ImportLimits,
) -> Result<ImportedImage, FlistError> {
    let meta = std::fs::metadata(path).map_err(FlistError::io(format!("{}", path.display())))?;
    if meta.is_file() && meta.len() > limits.max_archive_bytes {
        return Err(FlistError::Limit(format!(
            "the image archive is {} bytes; the limit is {} bytes",
            meta.len(),
            limits.max_archive_bytes
        )));
    }
    let input = Input::open(path)?;
    let plan = if input.exists("manifest.json") && !input.is_dir() {
        plan_docker(&input, reference)?
    } else if input.exists("index.json") {
        plan_oci(&input, reference)?
    } else {
        return Err(FlistError::Image(format!(
            "{} is neither a docker-save archive (manifest.json) nor an OCI layout (index.json)",
            path.display()
        )));
    };
    run(&input, plan, sink, limits)
}

// ---------------------------------------------------------------- input

/// Where a named member of the input is.
#[derive(Clone, Debug)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// An image input: a directory or a tar file.
#[derive(Debug)]
enum Input {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        members: HashMap<String, Member>,
    },
}

/// A byte range of a file.
struct Section {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(left) as usize;
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Section {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        }
        .ok_or_else(|| std::io::Error::other("seek before the start of a section"))?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

/// `a/./b//c` → `a/b/c` (names inside an outer tar; `..` is kept verbatim
/// and so never matches a name we look up).
fn clean(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Input {
    fn open(path: &Path) -> Result<Input, FlistError> {
        let meta =
            std::fs::metadata(path).map_err(FlistError::io(format!("stat {}", path.display())))?;
        if meta.is_dir() {
            return Ok(Input::Dir(path.to_path_buf()));
        }
        let mut file =
            File::open(path).map_err(FlistError::io(format!("opening {}", path.display())))?;
        let mut magic = [0u8; 4];
        let n = file
            .read(&mut magic)
            .map_err(FlistError::io(format!("reading {}", path.display())))?;
        if n >= 2 && magic[..2] == [0x1f, 0x8b] || n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(FlistError::Image(format!(
                "{} is a compressed archive; decompress it first (the outer tar must be seekable)",
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(FlistError::io(format!("reading {}", path.display())))?;
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(file);
        let terr = |e: std::io::Error| FlistError::Image(format!("{}: tar: {e}", path.display()));
        for entry in archive.entries_with_seek().map_err(terr)? {
            let entry = entry.map_err(terr)?;
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::Data {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                t @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let target = if t == tar::EntryType::Symlink && !target.starts_with('/') {
                        // Relative to the link's directory; resolve `..`.
                        let mut parts: Vec<&str> = name.split('/').collect();
                        parts.pop();
                        for c in target.split('/') {
                            match c {
                                "" | "." => {}
                                ".." => {
                                    parts.pop();
                                }
                                c => parts.push(c),
                            }
                        }
                        parts.join("/")
                    } else {
                        clean(&target)
                    };
                    Member::Link(target)
                }
                _ => continue,
            };
            members.insert(name, member);
        }
        Ok(Input::Tar {
            path: path.to_path_buf(),
            members,
        })
    }

    fn is_dir(&self) -> bool {
        matches!(self, Input::Dir(_))
    }

    fn exists(&self, name: &str) -> bool {
        match self {
            Input::Dir(d) => d.join(name).is_file(),
            Input::Tar { .. } => self.locate(name).is_ok(),
        }
    }

    /// (offset, size) of a tar member, following links.
    fn locate(&self, name: &str) -> Result<(u64, u64), FlistError> {
        let Input::Tar { members, path } = self else {
            return Err(FlistError::Image("not a tar".into()));
        };
        let mut n = clean(name);
        for _ in 0..8 {
            match members.get(&n) {
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(t)) => n = t.clone(),
                None => break,
            }
        }
        Err(FlistError::Image(format!(
            "{}: no file {name:?} in the archive",
            path.display()
        )))
    }

    /// A reader of member `name` and its size.
    fn open_member(&self, name: &str) -> Result<(Section, u64), FlistError> {
        match self {
            Input::Dir(d) => {
                let p = d.join(name);
                let file =
                    File::open(&p).map_err(FlistError::io(format!("opening {}", p.display())))?;
                let len = file
                    .metadata()
                    .map_err(FlistError::io(format!("stat {}", p.display())))?
                    .len();
                Ok((
                    Section {
                        file,
                        start: 0,
                        len,
                        pos: 0,
                    },
                    len,
                ))
            }
            Input::Tar { path, .. } => {
                let (offset, size) = self.locate(name)?;
                let mut file = File::open(path)
                    .map_err(FlistError::io(format!("opening {}", path.display())))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(FlistError::io(format!("seeking in {}", path.display())))?;
                Ok((
                    Section {
                        file,
                        start: offset,
                        len: size,
                        pos: 0,
                    },
                    size,
                ))
            }
        }
    }

    /// A small member, whole, checked against `digest` when given.
    fn read_small(&self, name: &str, digest: Option<&Desc>) -> Result<Vec<u8>, FlistError> {
        let (r, len) = self.open_member(name)?;
        if len > MAX_JSON_BYTES {
            return Err(FlistError::Limit(format!(
                "{name} is {len} bytes (at most {MAX_JSON_BYTES})"
            )));
        }
        let mut bytes = Vec::new();
        r.take(MAX_JSON_BYTES)
            .read_to_end(&mut bytes)
            .map_err(FlistError::io(format!("reading {name}")))?;
        if let Some(d) = digest {
            check_size(name, d.size, bytes.len() as u64)?;
            check_digest(name, &d.digest, &sha256_hex(&bytes))?;
        }
        Ok(bytes)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_digest(blob: &str, expected: &str, actual_hex: &str) -> Result<(), FlistError> {
    let actual = format!("sha256:{actual_hex}");
    if expected != actual {
        return Err(FlistError::Digest {
            blob: blob.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

fn check_size(blob: &str, expected: Option<u64>, actual: u64) -> Result<(), FlistError> {
    match expected {
        Some(e) if e != actual => Err(FlistError::Digest {
            blob: blob.to_string(),
            expected: format!("{e} bytes"),
            actual: format!("{actual} bytes"),
        }),
        _ => Ok(()),
    }
}

/// The hex of a `sha256:<64 hex>` digest (the only algorithm accepted).
fn digest_hex(d: &str) -> Result<&str, FlistError> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(FlistError::Image(format!(
            "unsupported or malformed digest {d:?} (need sha256:<64 lowercase hex>)"
        ))),
    }
}

fn blob_path(d: &str) -> Result<String, FlistError> {
    Ok(format!("blobs/sha256/{}", digest_hex(d)?))
}

// ---------------------------------------------------------------- JSON

#[derive(Debug, Deserialize, Clone)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct DockerSaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Deserialize, Default)]
struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn parse<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, FlistError> {
    serde_json::from_slice(bytes).map_err(|e| FlistError::Image(format!("{what}: {e}")))
}

// ---------------------------------------------------------------- plans

/// A descriptor's digest and size, for checks.
#[derive(Debug)]
struct Desc {
    digest: String,
    size: Option<u64>,
}

/// One layer blob to read.
#[derive(Debug)]
struct LayerBlob {
    /// Member name in the input.
    name: String,
    /// Digest and size of the blob itself, when the format names them.
    blob: Option<Desc>,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    diff_id: String,
}

/// What to import.
#[derive(Debug)]
struct Plan {
    digest: String,
    tags: Vec<String>,
    config: ConfigFile,
    layers: Vec<LayerBlob>,
}

fn check_layer_type(mt: &str, name: &str) -> Result<(), FlistError> {
    if mt.is_empty() || LAYER_TYPES.contains(&mt) {
        Ok(())
    } else {
        Err(FlistError::Image(format!(
            "layer {name} has unsupported media type {mt:?}"
        )))
    }
}

fn plan_docker(input: &Input, reference: Option<&str>) -> Result<Plan, FlistError> {
    let bytes = input.read_small("manifest.json", None)?;
    let entries: Vec<DockerSaveEntry> = parse("manifest.json", &bytes)?;
    let tags_of = |e: &DockerSaveEntry| e.repo_tags.clone().unwrap_or_default();
    let chosen: Vec<&DockerSaveEntry> = entries
        .iter()
        .filter(|e| reference.is_none_or(|r| tags_of(e).iter().any(|t| t == r)))
        .collect();
    let entry = match chosen.as_slice() {
        [one] => *one,
        _ => {
            let list: Vec<String> = entries
                .iter()
                .map(|e| format!("{} {:?}", e.config, tags_of(e)))
                .collect();
            return Err(FlistError::Image(format!(
                "the docker-save archive holds {} images matching {reference:?}, need one: {}",
                chosen.len(),
                list.join(", ")
            )));
        }
    };
    let config_bytes = input.read_small(&entry.config, None)?;
    let config_hex = sha256_hex(&config_bytes);
    // `<hex>.json` (classic) or `blobs/sha256/<hex>` (docker 25+): check it.
    let named = clean(&entry.config);
    let named_hex = named
        .strip_suffix(".json")
        .or_else(|| named.strip_prefix("blobs/sha256/"));
    if let Some(h) = named_hex.filter(|h| digest_hex(&format!("sha256:{h}")).is_ok()) {
        check_digest(&entry.config, &format!("sha256:{h}"), &config_hex)?;
    }
    let config: ConfigFile = parse(&entry.config, &config_bytes)?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(FlistError::Image(format!(
            "manifest.json lists {} layers but the config has {} diff_ids",
            entry.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let layers = entry
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(name, diff_id)| {
            let cleaned = clean(name);
            let blob = cleaned
                .strip_prefix("blobs/sha256/")
                .map(|h| format!("sha256:{h}"))
                .filter(|d| digest_hex(d).is_ok())
                .map(|digest| Desc { digest, size: None });
            Ok(LayerBlob {
                name: name.clone(),
                blob,
                diff_id: diff_id.clone(),
            })
        })
        .collect::<Result<Vec<_>, FlistError>>()?;
    Ok(Plan {
        digest: format!("sha256:{config_hex}"),
        tags: tags_of(entry),
        config,
        layers,
    })
}

/// An image manifest found through the index(es).
#[derive(Debug, Clone)]
struct Candidate {
    desc: Descriptor,
    refs: Vec<String>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn collect(
    input: &Input,
    descs: &[Descriptor],
    inherited: &[String],
    depth: usize,
    out: &mut Vec<Candidate>,
) -> Result<(), FlistError> {
    for d in descs {
        let ann = d.annotations.clone().unwrap_or_default();
        let mut refs = inherited.to_vec();
        if let Some(r) = ann.get(REF_NAME) {
            refs.push(r.clone());
        }
        if ann.get("vnd.docker.reference.type").map(String::as_str) == Some("attestation-manifest")
        {
            continue;
        }
        match d.media_type.as_str() {
            MT_INDEX | MT_DOCKER_LIST => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(FlistError::Limit(format!(
                        "image indexes nested deeper than {MAX_INDEX_DEPTH}"
                    )));
                }
                let name = blob_path(&d.digest)?;
                let bytes = input.read_small(
                    &name,
                    Some(&Desc {
                        digest: d.digest.clone(),
                        size: Some(d.size),
                    }),
                )?;
                let index: Index = parse(&name, &bytes)?;
                collect(input, &index.manifests, &refs, depth + 1, out)?;
            }
            MT_MANIFEST | MT_DOCKER_MANIFEST | "" => out.push(Candidate {
                desc: d.clone(),
                refs,
            }),
            _ => {} // artifacts and other things that are not images
        }
    }
    Ok(())
}

fn platform_of(c: &Candidate) -> String {
    match &c.desc.platform {
        Some(p) => match &p.variant {
            Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
            None => format!("{}/{}", p.os, p.architecture),
        },
        None => "unknown platform".into(),
    }
}

fn plan_oci(input: &Input, reference: Option<&str>) -> Result<Plan, FlistError> {
    let bytes = input.read_small("index.json", None)?;
    let index: Index = parse("index.json", &bytes)?;
    let mut all = Vec::new();
    collect(input, &index.manifests, &[], 0, &mut all)?;
    let named: Vec<Candidate> = all
        .iter()
        .filter(|c| reference.is_none_or(|r| c.refs.iter().any(|x| x == r)))
        .cloned()
        .collect();
    let distinct = |cs: &[&Candidate]| {
        let mut d: Vec<&str> = cs.iter().map(|c| c.desc.digest.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d.len()
    };
    let host: Vec<&Candidate> = named
        .iter()
        .filter(|c| {
            c.desc
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
        })
        .collect();
    let every: Vec<&Candidate> = named.iter().collect();
    let pick = if distinct(&host) == 1 {
        host
    } else if distinct(&every) == 1 {
        every
    } else {
        let list: Vec<String> = named
            .iter()
            .map(|c| format!("{} ({}) {:?}", c.desc.digest, platform_of(c), c.refs))
            .collect();
        return Err(FlistError::Image(format!(
            "cannot choose one image for linux/{} among {} manifests{}: {}",
            host_arch(),
            named.len(),
            reference
                .map(|r| format!(" named {r:?}"))
                .unwrap_or_default(),
            list.join(", ")
        )));
    };
    let desc = pick[0].desc.clone();
    let mut tags: Vec<String> = pick.iter().flat_map(|c| c.refs.clone()).collect();
    tags.sort();
    tags.dedup();
    let mname = blob_path(&desc.digest)?;
    let mbytes = input.read_small(
        &mname,
        Some(&Desc {
            digest: desc.digest.clone(),
            size: Some(desc.size),
        }),
    )?;
    let manifest: Manifest = parse(&mname, &mbytes)?;
    let cname = blob_path(&manifest.config.digest)?;
    let cbytes = input.read_small(
        &cname,
        Some(&Desc {
            digest: manifest.config.digest.clone(),
            size: Some(manifest.config.size),
        }),
    )?;
    let config: ConfigFile = parse(&cname, &cbytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(FlistError::Image(format!(
            "the manifest lists {} layers but the config has {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(l, diff_id)| {
            let name = blob_path(&l.digest)?;
            check_layer_type(&l.media_type, &name)?;
            Ok(LayerBlob {
                name,
                blob: Some(Desc {
                    digest: l.digest.clone(),
                    size: Some(l.size),
                }),
                diff_id: diff_id.clone(),
            })
        })
        .collect::<Result<Vec<_>, FlistError>>()?;
    Ok(Plan {
        digest: desc.digest,
        tags,
        config,
        layers,
    })
}

// ---------------------------------------------------------------- run

/// A reader that hashes (sha256) and counts what passes through it.
struct HashRead<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

impl<R> HashRead<R> {
    fn new(inner: R) -> Self {
        HashRead {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn decompressor<'a, R: BufRead + 'a>(
    c: Compression,
    r: R,
    name: &str,
) -> Result<Box<dyn Read + 'a>, FlistError> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .map_err(FlistError::io(format!("zstd {name}")))?,
        ),
    })
}

/// Pass 1 of one layer: applies it, checks the blob and diff digests.
/// `cap` bounds what the layer may decompress to (`what` names the cap);
/// returns the compression, the blob's length and its decompressed length.
fn apply_layer(
    input: &Input,
    l: &LayerBlob,
    layers: &mut Layers,
    (cap, what): (u64, &str),
) -> Result<(Compression, u64, u64), FlistError> {
    let (section, len) = input.open_member(&l.name)?;
    if let Some(b) = &l.blob {
        check_size(&l.name, b.size, len)?;
    }
    let mut buf = BufReader::with_capacity(256 << 10, section);
    let magic = buf
        .fill_buf()
        .map_err(FlistError::io(format!("reading {}", l.name)))?;
    let comp = detect(magic);
    let mut raw = HashRead::new(buf);
    let result = (|| {
        let dec = decompressor(comp, BufReader::new(&mut raw), &l.name)?;
        // One byte past the cap tells a layer at the cap from one over it.
        let mut diff = HashRead::new(dec.take(cap.saturating_add(1)));
        let over = |n: u64| {
            (n > cap).then(|| {
                FlistError::Limit(format!(
                    "{} decompresses to more than {cap} bytes ({what})",
                    l.name
                ))
            })
        };
        let applied = layers.apply(&mut diff);
        if let Some(e) = over(diff.n) {
            return Err(e);
        }
        applied?;
        // The tar's end-of-archive padding belongs to the digest.
        std::io::copy(&mut diff, &mut std::io::sink())
            .map_err(FlistError::io(format!("reading {}", l.name)))?;
        if let Some(e) = over(diff.n) {
            return Err(e);
        }
        Ok::<_, FlistError>((hex::encode(diff.hash.finalize()), diff.n))
    })();
    // Whatever happened, finish the blob's own digest: a corrupt blob is
    // reported as such rather than as the parse error it caused.
    let drained = std::io::copy(&mut raw, &mut std::io::sink());
    let raw_hex = hex::encode(raw.hash.clone().finalize());
    if let (Some(b), Ok(_)) = (&l.blob, &drained) {
        check_digest(&l.name, &b.digest, &raw_hex)?;
    }
    let (diff_hex, plain) = result?;
    drained.map_err(FlistError::io(format!("reading {}", l.name)))?;
    check_digest(&format!("{} (uncompressed)", l.name), &l.diff_id, &diff_hex)?;
    Ok((comp, len, plain))
}

fn run(
    input: &Input,
    plan: Plan,
    sink: &mut dyn ContentSink,
    limits: &ImportLimits,
) -> Result<ImportedImage, FlistError> {
    let mut layers = Layers::new();
    let mut comps = Vec::new();
    let mut layer_bytes = 0u64;
    let mut plain_bytes = 0u64;
    for l in &plan.layers {
        digest_hex(&l.diff_id)?;
        let left = limits.max_image_bytes.saturating_sub(plain_bytes);
        let cap = if left < limits.max_layer_bytes {
            (left, "the limit of the whole image")
        } else {
            (limits.max_layer_bytes, "the limit per layer")
        };
        let (comp, len, plain) = apply_layer(input, l, &mut layers, cap)?;
        comps.push(comp);
        layer_bytes += len;
        plain_bytes += plain;
    }
    let rc = plan.config.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: rc.entrypoint.unwrap_or_default(),
        cmd: rc.cmd.unwrap_or_default(),
        env: rc.env.unwrap_or_default(),
        working_dir: rc.working_dir.unwrap_or_default(),
        user: rc.user.unwrap_or_default(),
        exposed_ports: rc.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: rc.labels.unwrap_or_default(),
        architecture: plan.config.architecture,
        os: plan.config.os,
    };
    let n = plan.layers.len();
    let flist = layers.finish(
        config,
        &mut |i| {
            let l = plan
                .layers
                .get(i)
                .ok_or_else(|| FlistError::Image(format!("no layer {i}")))?;
            let (section, _) = input.open_member(&l.name)?;
            Ok(match comps.get(i).copied().unwrap_or(Compression::None) {
                Compression::None => LayerSource::Seekable(Box::new(section)),
                c => LayerSource::Stream(decompressor(
                    c,
                    BufReader::with_capacity(256 << 10, section),
                    &l.name,
                )?),
            })
        },
        sink,
    )?;
    Ok(ImportedImage {
        flist,
        digest: plan.digest,
        tags: plan.tags,
        layers: n,
        layer_bytes,
    })
}
