//! The versioned TOML configuration file.
//!
//! Every field is optional: the binary merges, in order of precedence,
//! command-line flags, `STRATUS_*` environment variables, this file, and
//! built-in defaults.
//!
//! ```toml
//! version = 1
//! data_dir = "/var/lib/stratus"
//! name = "factory-7"
//!
//! [server]
//! listen = "0.0.0.0:7400"          # QUIC, node-to-node
//! advertise = "10.1.2.3:7400"      # what other replicas dial
//! api = "127.0.0.1:7420"           # HTTP API
//! s3 = "0.0.0.0:7480"              # S3 gateway (optional; off when absent)
//! bootstrap = true                 # start a new cluster if this replica is empty
//! heartbeat_interval_ms = 2000
//! node_lost_after_ms = 10000
//! min_free = "2GiB"                # refuse writes that add data below this (default 1 GiB, at most 5% of the disk)
//! state_cache = "256MiB"           # page cache of the replicated state (default 64 MiB)
//!
//! [agent]
//! control = ["10.1.2.3:7400"]
//! join_token_file = "/etc/stratus/join.token"
//! region = "eu-west"
//! site = "paris-1"
//! latitude = 48.85
//! longitude = 2.35
//! energy = "solar"
//! labels = { gpu = "none" }
//! containers = true                # run OCI images when root, cgroups and FUSE allow
//!
//! [storage]                        # lend disk space for object pieces
//! listen = "0.0.0.0:7410"          # QUIC piece service (replicas may dial it;
//! advertise = "10.1.2.7:7410"      #   behind a NAT they use the links it dials)
//! capacity = "500GiB"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Highest configuration format version this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// Contents of a configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version; must be 1.
    pub version: u32,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Node name.
    pub name: Option<String>,
    /// Control-replica settings.
    #[serde(default)]
    pub server: ServerSection,
    /// Agent settings.
    #[serde(default)]
    pub agent: AgentSection,
    /// Storage settings (the node lends disk space when `listen` is set).
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[storage]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// QUIC listen address of the piece service.
    pub listen: Option<String>,
    /// Address the replicas dial.
    pub advertise: Option<String>,
    /// Space lent, e.g. `"500GiB"` or a number of bytes.
    pub capacity: Option<String>,
}

/// Parses a size: a number of bytes, or a number with a unit (`K`, `M`,
/// `G`, `T` with an optional `B`/`iB`; all binary), e.g. `10GiB`, `512M`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("size {s:?} must be a number with an optional unit, e.g. 10GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?} (use K, M, G or T)"
            ))
        }
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// `[server]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// QUIC listen address.
    pub listen: Option<String>,
    /// Address other replicas dial.
    pub advertise: Option<String>,
    /// HTTP API listen address.
    pub api: Option<String>,
    /// S3 gateway listen address (no gateway when absent).
    #[serde(default)]
    pub s3: Option<String>,
    /// Ingress listen address (no ingress when absent).
    #[serde(default)]
    pub ingress: Option<String>,
    /// Start a new cluster if empty.
    pub bootstrap: Option<bool>,
    /// Agents' heartbeat interval.
    pub heartbeat_interval_ms: Option<u64>,
    /// Silence after which a node is lost.
    pub node_lost_after_ms: Option<u64>,
    /// Snapshot and compact the log every this many entries.
    pub snapshot_every: Option<u64>,
    /// Seconds a finished workload is kept (default 86400: 24 h).
    #[serde(default)]
    pub task_retention_secs: Option<u64>,
    /// Seconds a multipart upload may stay open (default 604800: 7 days).
    #[serde(default)]
    pub upload_expiry_secs: Option<u64>,
    /// Seconds in a lifecycle-rule "day" (default 86400; shorter only to
    /// try rules out, e.g. 10 as ceph/s3-tests expects).
    #[serde(default)]
    pub lifecycle_day_secs: Option<u64>,
    /// Free-space watermark of the Raft log's disk (`"2GiB"`; default
    /// 1 GiB, at most 5% of the disk): below it, writes that add data are refused (507).
    #[serde(default)]
    pub min_free: Option<String>,
    /// Page cache of the replicated state (`"256MiB"`; default 64 MiB, at
    /// least 4 MiB). The state may be far larger: what is not cached is read
    /// from its file.
    #[serde(default)]
    pub state_cache: Option<String>,
    /// Seconds between two storage billings the leader proposes (default
    /// 3600: an hour).
    #[serde(default)]
    pub storage_billing_secs: Option<u64>,
}

/// `[agent]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Control replicas to dial.
    pub control: Option<Vec<String>>,
    /// Join credential (`stj_<id>_<secret>_<pin>`; pins the cluster).
    pub join_token: Option<String>,
    /// File holding the join credential.
    pub join_token_file: Option<PathBuf>,
    /// Region.
    pub region: Option<String>,
    /// Site.
    pub site: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Energy source.
    pub energy: Option<String>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Run container images (default: when the machine can).
    pub containers: Option<bool>,
    /// Host ports published container ports may use, `FIRST-LAST`
    /// (default `20000-29999`).
    pub ports: Option<String>,
    /// Host uid of container root, or `"off"` (default `1000000000`).
    pub userns: Option<String>,
    /// Where containers may connect: `"internet"` (default) or `"none"`.
    pub egress: Option<String>,
    /// Ranges containers may reach although the default denies them.
    pub egress_allow: Option<Vec<String>>,
    /// Ranges containers may never reach.
    pub egress_deny: Option<Vec<String>>,
    /// The node's prices, `KEY=AMOUNT,...` (`stratus node --price`).
    pub price: Option<String>,
    /// When the node takes work, weekly UTC windows (`--available`).
    pub available: Option<String>,
}

/// Why a configuration file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// Unknown version.
    #[error("config file {path}: version {found} is not supported (this build reads version {CONFIG_VERSION}); add `version = 1`")]
    Version {
        /// File.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
}

impl FileConfig {
    /// Parses configuration text (`path` is only used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if cfg.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path: path.to_path_buf(),
                found: cfg.version,
            });
        }
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_in_docs_parses() {
        let text = r#"
version = 1
data_dir = "/var/lib/stratus"
[server]
listen = "0.0.0.0:7400"
node_lost_after_ms = 10000
state_cache = "256MiB"
[agent]
control = ["10.1.2.3:7400"]
energy = "solar"
labels = { gpu = "none" }
"#;
        let c = FileConfig::parse(text, Path::new("x.toml")).expect("parses");
        assert_eq!(c.server.node_lost_after_ms, Some(10000));
        assert_eq!(c.server.state_cache.as_deref(), Some("256MiB"));
        assert_eq!(c.agent.labels.expect("labels")["gpu"], "none");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = FileConfig::parse("version = 1\n[server]\nlisten = 5\n", Path::new("c.toml"))
            .expect_err("bad type");
        let msg = e.to_string();
        assert!(msg.contains("c.toml") && msg.contains("listen"), "{msg}");
        let e = FileConfig::parse("version = 1\nbogus = 1\n", Path::new("c.toml"))
            .expect_err("unknown field");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = FileConfig::parse("version = 2\n", Path::new("c.toml")).expect_err("version");
        assert!(matches!(e, ConfigError::Version { found: 2, .. }));
        assert!(
            FileConfig::parse("", Path::new("c.toml")).is_err(),
            "version is required"
        );
    }
}
