//! The workload spec.
//!
//! **Owns** the workload spec's format, defaults and validation.
//! **Does not own** enforcing it (the agent, the sandboxes, the scheduler).
//!
//! A workload is declared in a versioned file (YAML, or TOML) and validated
//! before anything is scheduled; every error names the field it is about
//! (`resources.memory_mb: ...`). Three kinds:
//!
//! * `task` — runs to completion; `count` instances; retried on failure up to
//!   `restart.attempts` times.
//! * `service` — keeps `count` replicas running; restarted with exponential
//!   backoff; updated one batch at a time with a health check and automatic
//!   revert.
//! * `daemon` — one instance on every node that matches the constraints.
//!
//! ```yaml
//! version: 1
//! name: thumbnailer
//! kind: service
//! count: 3
//! wasm:
//!   module: examples/wasm/service.wasm
//! args: ["--quality", "80"]
//! env: { RUST_LOG: info }
//! resources: { cpu_millis: 250, memory_mb: 64, wall_time_secs: 3600 }
//! constraints:
//!   labels: { gpu: none }
//!   arch: x86_64
//!   near: { latitude: 48.85, longitude: 2.35, within_km: 500 }
//!   energy: [solar, wind]
//! spread: site
//! disconnect: { wait_secs: 60, replace: true }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_types::EnergySource;
use utoipa::ToSchema;

mod ext;
mod file;
mod market;
mod network;
mod taskio;
mod validate;
pub use ext::{Extensions, SelfDescribing, MAX_EXTRA_PORTS};
pub use file::{parse_file, SpecFile};
pub use market::{valid_listing_id, MarketPrefer, MarketSpec, MAX_LISTING_ID_LEN};
pub use network::{
    parse_range, valid_host, EgressSpec, HttpExpose, Networking, MAX_EGRESS_RANGES, MAX_HOST_LEN,
};
pub use taskio::{ObjectFolder, OutputSpec, MAX_FOLDER_PREFIX_LEN};

/// Highest spec version this build reads.
pub const SPEC_VERSION: u32 = 1;

/// What a workload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Runs to completion.
    Task,
    /// Keeps running.
    Service,
    /// One per matching node.
    Daemon,
}

/// A declared workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Spec format version (1).
    pub version: u32,
    /// Name: 1–63 characters of a-z, 0-9 and '-', starting with a letter.
    pub name: String,
    /// Kind.
    pub kind: WorkloadKind,
    /// Instances (task) or replicas (service); ignored for daemons.
    #[serde(default = "one")]
    pub count: u32,
    /// The WASM module to run (this, or `image`).
    #[serde(default)]
    pub wasm: Option<WasmSource>,
    /// The container image to run (this, or `wasm`). Top-level `args`
    /// replace the image's `Cmd` and `env` is added to the image's, as with
    /// `docker run`.
    #[serde(default)]
    pub image: Option<ImageSource>,
    /// Arguments passed to the program (after its name).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Resources each instance needs.
    #[serde(default)]
    pub resources: Resources,
    /// Where instances may run.
    #[serde(default)]
    pub constraints: Constraints,
    /// Spread instances evenly across this failure domain.
    #[serde(default)]
    pub spread: Option<SpreadBy>,
    /// Restarts and retries.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// What to do when the node running an instance is lost.
    #[serde(default)]
    pub disconnect: DisconnectPolicy,
    /// How a service is updated to a new version.
    #[serde(default)]
    pub update: UpdateStrategy,
    /// Objects of the workload's tenant (`{ bucket, prefix }`) the agent
    /// fetches before a WASM instance starts, preopened read-only as
    /// `/input`. Never a folder of the node.
    #[serde(default)]
    pub input: Option<ObjectFolder>,
    /// A writable `/output` folder for each WASM instance, under the agent's
    /// data directory, limited to `resources.disk_mb`: `true` keeps it on
    /// the node; `{ bucket, prefix }` also stores its files in that bucket
    /// of the tenant when a run ends.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub output: OutputSpec,
}

fn one() -> u32 {
    1
}

/// Where the module comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WasmSource {
    /// A path to a `.wasm` or `.wat` file (read by the CLI and uploaded), or a
    /// content address `blake3:<64 hex>` of a module already in the cluster.
    pub module: String,
}

/// A container image to run, imported into the tenant's images first
/// (`stratus image import|pull`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// `NAME[:TAG]` of the image (tag `latest` when omitted). The deploy pins
    /// the version current at that moment.
    pub name: String,
    /// Replaces the image's `Entrypoint` (empty: keep it).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Replaces the image's `User` (`name`, `uid`, `uid:gid`).
    #[serde(default)]
    pub user: Option<String>,
    /// Replaces the image's `WorkingDir`.
    #[serde(default)]
    pub workdir: Option<String>,
    /// TCP ports of the container published on the node.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Named volumes on the node's disk, kept across container restarts and
    /// across instances of the workload on that node; a volume with a
    /// `bucket` is also kept in the tenant's object store, so it follows the
    /// workload to any node.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// When the node fetches the image's file contents.
    #[serde(default)]
    pub fetch: FetchMode,
}

/// When a node fetches the file contents of an image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    /// On first read: the container starts at once and the node fetches only
    /// what it reads (typically a few percent of the image).
    #[default]
    Lazy,
    /// The whole image before the container starts: slower to start, but the
    /// container never waits on the network afterwards, and keeps working
    /// when the replicas are out of reach.
    Full,
}

/// A published port (TCP in `image.ports`; UDP in [`Extensions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Port the service listens on inside the container.
    pub container: u16,
    /// Port on the node (0: any free port, shown by `stratus inspect`).
    #[serde(default)]
    pub host: u16,
}

/// A named volume mounted into the container.
///
/// Without `bucket`, the volume lives on the node's disk only (it survives
/// container restarts on that node, not a move to another node).
///
/// With `bucket`, the volume is also kept in the tenant's object store as a
/// **snapshot**: a tar archive (modes, owners, times, symlinks; no sockets,
/// devices or xattrs) stored as the object `<bucket>/<key>`. When an instance
/// starts on a node, the agent restores the volume from the object's latest
/// version, unless the node's copy already is that version (a marker next to
/// the volume records the version it restored or saved); no object yet means
/// an empty volume. Whenever the container exits (exit, failure, stop, and
/// before each restart) the agent archives the volume and stores it as a
/// new version (none when nothing changed since the last save). Changes are
/// therefore kept at container exits (and every `sync_secs`), not
/// continuously: a node that is lost while the container runs loses what
/// was written since the last save. A failed save is reported in the instance's output, the node
/// keeps its copy and saves again at the next exit. The bucket must exist
/// and belong to the workload's tenant; with a versioned bucket every save
/// is a version of its own. When two instances write the same volume, the
/// last save wins. `read_only` volumes are restored, never saved. With
/// `sync_secs`, the agent also saves while the container runs (a snapshot
/// of files as they are at that moment), so a lost node loses at most that
/// many seconds of changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// Name: 1–63 characters of a-z, 0-9 and '-'.
    pub name: String,
    /// Absolute path in the container.
    pub path: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Bucket of the workload's tenant that keeps the volume's contents, so
    /// they survive restarts on any node (none: the node's disk only).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Object key of the volume's archive in `bucket` (default:
    /// `volumes/<workload name>/<volume name>.tar`); 1–1024 bytes, no
    /// leading '/'.
    #[serde(default)]
    pub key: Option<String>,
    /// Also save the volume every this many seconds while the container
    /// runs (none: only when it exits). Needs a `bucket`; not with
    /// `read_only`. Each save that changed something is a new version.
    #[serde(default)]
    pub sync_secs: Option<u64>,
}

impl VolumeSpec {
    /// The object key of this volume's archive for workload `workload`
    /// (the spec's `name`): `key`, or `volumes/<workload>/<name>.tar`.
    pub fn object_key(&self, workload: &str) -> String {
        match &self.key {
            Some(k) => k.clone(),
            None => format!("volumes/{workload}/{}.tar", self.name),
        }
    }
}

/// Largest `resources.disk_mb` (1 TiB).
pub const MAX_DISK_MB: u64 = 1 << 20;

/// Longest object key of a volume, in bytes.
pub const MAX_VOLUME_KEY_LEN: usize = 1024;

/// Checks a bucket name against S3's rules (3–63 characters of a-z, 0-9,
/// '.' and '-', starting and ending with a letter or digit, no "..", not an
/// IP address): the object store's rules, checked here so a spec is
/// refused before it is deployed.
fn validate_bucket(name: &str) -> Result<(), String> {
    let ends = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && ends(name.bytes().next())
        && ends(name.bytes().last())
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid bucket name {name:?}: use 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        ))
    }
}

/// Resources of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub cpu_millis: u32,
    /// Memory in MiB (the WASM memory limit).
    pub memory_mb: u64,
    /// Disk in MiB: the limit of a WASM task's `/output` folder and of the
    /// bytes fetched into its `/input`, and of what a container writes in its
    /// writable layer and volumes together (0: the agent's default, 256 MiB);
    /// at most 1048576 (1 TiB).
    pub disk_mb: u64,
    /// Wall-clock limit in seconds (none: unlimited for services, 1 hour for tasks).
    pub wall_time_secs: Option<u64>,
    /// CPU-time budget in seconds of guest execution (none: unlimited). An
    /// instance that uses it up is stopped (`CPU limit reached`).
    pub cpu_secs: Option<u64>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_millis: 100,
            memory_mb: 64,
            disk_mb: 0,
            wall_time_secs: None,
            cpu_secs: None,
        }
    }
}

/// A location constraint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Near {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Greatest great-circle distance in km.
    pub within_km: f64,
}

/// Where instances may run. Every given field must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Constraints {
    /// Labels the node must carry with these values.
    pub labels: BTreeMap<String, String>,
    /// CPU architecture.
    pub arch: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Within a distance of a point.
    pub near: Option<Near>,
    /// Accepted energy sources (empty: any).
    pub energy: Vec<EnergySource>,
}

/// Failure domain to spread across.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpreadBy {
    /// Spread across sites.
    Site,
    /// Spread across regions.
    Region,
}

/// Restarts (services) and retries (tasks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// Retries of a failed task instance; restarts of a service replica within
    /// `window_secs` before it is declared failed (0 for services: unlimited).
    pub attempts: u32,
    /// First delay before a restart, in ms; doubles each time.
    pub delay_ms: u64,
    /// Longest delay, in ms.
    pub max_delay_ms: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            attempts: 2,
            delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

/// What happens to instances on a node the control plane has lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DisconnectPolicy {
    /// How long after the node is marked lost to wait before acting, in seconds.
    pub wait_secs: u64,
    /// `true`: start replacements elsewhere (the originals are stopped when
    /// their node returns); `false`: keep waiting for the original node.
    pub replace: bool,
}

impl Default for DisconnectPolicy {
    fn default() -> Self {
        DisconnectPolicy {
            wait_secs: 0,
            replace: true,
        }
    }
}

/// Rolling update of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateStrategy {
    /// Replicas replaced at once.
    pub max_parallel: u32,
    /// A new replica must run this long without exiting to count as healthy.
    pub healthy_after_secs: u64,
    /// Roll back to the previous version if a new replica is not healthy in time.
    pub auto_revert: bool,
    /// Time a new replica has to become healthy, in seconds.
    pub deadline_secs: u64,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_parallel: 1,
            healthy_after_secs: 5,
            auto_revert: true,
            deadline_secs: 60,
        }
    }
}

/// A problem in a spec, located by the path of the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Dotted path of the field (`resources.memory_mb`), or `(file)` for syntax errors.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// Why a spec was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The file is not valid YAML/TOML for the schema.
    #[error("{0}")]
    Parse(FieldError),
    /// The spec parsed but breaks rules.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// Format of a spec file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
}

impl Format {
    /// Guesses the format from a file name (`.toml` → TOML, else YAML).
    pub fn from_path(path: &str) -> Format {
        if path.ends_with(".toml") {
            Format::Toml
        } else {
            Format::Yaml
        }
    }
}

/// Parses and validates a spec.
pub fn parse(text: &str, format: Format) -> Result<WorkloadSpec, SpecError> {
    let spec = decode(text, format)?;
    spec.validate().map_err(SpecError::Invalid)?;
    Ok(spec)
}

/// Reads a spec without validating it.
fn decode(text: &str, format: Format) -> Result<WorkloadSpec, SpecError> {
    Ok(match format {
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                SpecError::Parse(FieldError {
                    path: display_path(&path),
                    message: e.into_inner().to_string(),
                })
            })?
        }
        Format::Toml => {
            let de = toml::Deserializer::new(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                SpecError::Parse(FieldError {
                    path: display_path(&path),
                    message: e.into_inner().message().to_string(),
                })
            })?
        }
    })
}

fn display_path(p: &str) -> String {
    if p.is_empty() || p == "." {
        "(file)".into()
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_EXAMPLE: &str = r#"
version: 1
name: thumbnailer
kind: service
count: 3
wasm:
  module: examples/wasm/service.wasm
args: ["--quality", "80"]
env: { RUST_LOG: info }
resources: { cpu_millis: 250, memory_mb: 64, wall_time_secs: 3600 }
constraints:
  labels: { gpu: none }
  arch: x86_64
  near: { latitude: 48.85, longitude: 2.35, within_km: 500 }
  energy: [solar, wind]
spread: site
disconnect: { wait_secs: 60, replace: true }
"#;

    #[test]
    fn documented_example_parses() {
        let s = parse(DOC_EXAMPLE, Format::Yaml).expect("parses");
        assert_eq!(s.kind, WorkloadKind::Service);
        assert_eq!(s.count, 3);
        assert_eq!(
            s.constraints.energy,
            vec![EnergySource::Solar, EnergySource::Wind]
        );
        assert_eq!(s.spread, Some(SpreadBy::Site));
        assert_eq!(s.restart, RestartPolicy::default());
    }

    #[test]
    fn toml_works_too() {
        let t = "version = 1\nname = \"hello\"\nkind = \"task\"\n[wasm]\nmodule = \"hello.wasm\"\n";
        let s = parse(t, Format::Toml).expect("parses");
        assert_eq!(s.count, 1);
        assert_eq!(s.resources, Resources::default());
    }

    #[test]
    fn errors_point_at_the_field() {
        let bad_type = DOC_EXAMPLE.replace("memory_mb: 64", "memory_mb: lots");
        let e = parse(&bad_type, Format::Yaml).expect_err("bad type");
        assert!(e.to_string().starts_with("resources.memory_mb:"), "{e}");

        let unknown = DOC_EXAMPLE.replace("arch: x86_64", "archh: x86_64");
        let e = parse(&unknown, Format::Yaml).expect_err("unknown field");
        assert!(e.to_string().contains("archh"), "{e}");

        let bad_kind = DOC_EXAMPLE.replace("kind: service", "kind: cronjob");
        let e = parse(&bad_kind, Format::Yaml).expect_err("bad kind");
        assert!(e.to_string().starts_with("kind:"), "{e}");

        let invalid = DOC_EXAMPLE
            .replace("within_km: 500", "within_km: -1")
            .replace("count: 3", "count: 0");
        match parse(&invalid, Format::Yaml).expect_err("invalid") {
            SpecError::Invalid(errs) => {
                let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
                assert_eq!(paths, vec!["count", "constraints.near.within_km"]);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }

        let e = parse("version: 1\nname: x\n", Format::Yaml).expect_err("missing kind");
        assert!(e.to_string().contains("kind"), "{e}");
        let e = parse("{{{", Format::Yaml).expect_err("syntax");
        assert!(matches!(e, SpecError::Parse(_)));
    }

    #[test]
    fn an_image_workload_parses_and_is_checked() {
        let y = "version: 1\nname: web\nkind: service\nimage:\n  name: nginx:1.22\n  ports: [{ container: 80, host: 8080 }]\n  volumes: [{ name: data, path: /var/www }]\nargs: [nginx, -g, 'daemon off;']\n";
        let s = parse(y, Format::Yaml).expect("parses");
        let image = s.image.expect("image");
        assert_eq!(image.name, "nginx:1.22");
        assert_eq!(
            image.ports,
            vec![PortSpec {
                container: 80,
                host: 8080
            }]
        );
        assert_eq!(image.volumes[0].path, "/var/www");
        assert!(s.wasm.is_none());

        let errs = |text: &str| match parse(text, Format::Yaml) {
            Err(SpecError::Invalid(errs)) => errs.into_iter().map(|e| e.path).collect::<Vec<_>>(),
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(errs("version: 1\nname: x\nkind: task\n"), vec!["wasm"]);
        assert_eq!(
            errs("version: 1\nname: x\nkind: task\nwasm: { module: a.wasm }\nimage: { name: a }\n"),
            vec!["image"]
        );
        assert_eq!(
            errs("version: 1\nname: x\nkind: task\nimage: { name: a, ports: [{ container: 0 }], volumes: [{ name: Data, path: ../x }] }\n"),
            vec!["image.ports[0].container", "image.volumes[0].name", "image.volumes[0].path"]
        );
    }

    #[test]
    fn bucket_volumes_parse_default_their_key_and_are_checked() {
        let y = "version: 1\nname: db\nkind: service\nimage:\n  name: busybox\n  volumes:\n    - { name: data, path: /data, bucket: my-volumes, sync_secs: 30 }\n    - { name: seed, path: /seed, bucket: my-volumes, key: seeds/v1.tar, read_only: true }\n    - { name: tmp, path: /tmp }\n";
        let s = parse(y, Format::Yaml).expect("parses");
        let v = s.image.expect("image").volumes;
        assert_eq!(v[0].bucket.as_deref(), Some("my-volumes"));
        assert_eq!(v[0].object_key("db"), "volumes/db/data.tar");
        assert_eq!(v[0].sync_secs, Some(30));
        assert_eq!(v[1].object_key("db"), "seeds/v1.tar");
        assert!(v[1].read_only);
        assert_eq!(v[2].bucket, None);

        // Specs travel bincode-encoded in the Raft log: every field must
        // round trip (no skipped fields).
        let s = parse(y, Format::Yaml).expect("parses");
        let back: WorkloadSpec =
            serde_json::from_value(serde_json::to_value(&s).expect("json")).expect("json back");
        assert_eq!(back, s);

        let errs = |text: &str| match parse(text, Format::Yaml) {
            Err(SpecError::Invalid(errs)) => errs.into_iter().map(|e| e.path).collect::<Vec<_>>(),
            other => panic!("expected Invalid, got {other:?}"),
        };
        let base = "version: 1\nname: db\nkind: service\nimage: { name: a, volumes: [";
        for (vols, want) in [
            ("{ name: d, path: /d, bucket: My_Bucket }", vec!["image.volumes[0].bucket"]),
            ("{ name: d, path: /d, bucket: ab }", vec!["image.volumes[0].bucket"]),
            ("{ name: d, path: /d, bucket: 10.0.0.1 }", vec!["image.volumes[0].bucket"]),
            ("{ name: d, path: /d, bucket: bkt, key: /abs }", vec!["image.volumes[0].key"]),
            ("{ name: d, path: /d, bucket: bkt, key: '' }", vec!["image.volumes[0].key"]),
            ("{ name: d, path: /d, key: k }", vec!["image.volumes[0].key"]),
            ("{ name: d, path: /d, sync_secs: 5 }", vec!["image.volumes[0].sync_secs"]),
            (
                "{ name: d, path: /d, bucket: bkt, sync_secs: 0 }",
                vec!["image.volumes[0].sync_secs"],
            ),
            (
                "{ name: d, path: /d, bucket: bkt, read_only: true, sync_secs: 5 }",
                vec!["image.volumes[0].sync_secs"],
            ),
            (
                "{ name: d, path: /d, bucket: bkt, key: k }, { name: e, path: /e, bucket: bkt, key: k }",
                vec!["image.volumes[1]"],
            ),
        ] {
            assert_eq!(errs(&format!("{base}{vols}] }}\n")), want, "{vols}");
        }
        let long = "k".repeat(MAX_VOLUME_KEY_LEN + 1);
        assert_eq!(
            errs(&format!(
                "{base}{{ name: d, path: /d, bucket: bkt, key: {long} }}] }}\n"
            )),
            vec!["image.volumes[0].key"]
        );
        let max = "k".repeat(MAX_VOLUME_KEY_LEN);
        parse(
            &format!("{base}{{ name: d, path: /d, bucket: bkt, key: {max} }}] }}\n"),
            Format::Yaml,
        )
        .expect("a key of 1024 bytes is fine");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = parse(&s, Format::Yaml);
            let _ = parse(&s, Format::Toml);
        }
    }
}
