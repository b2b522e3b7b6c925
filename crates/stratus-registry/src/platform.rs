//! Platforms, and choosing one manifest from an image index / manifest list.

use std::fmt;

use serde::Deserialize;

/// An image platform, in OCI/Go naming (`linux`, `amd64`, `arm64`, variant `v7`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go naming, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// CPU variant (`v7` for arm); `None` accepts any variant.
    pub variant: Option<String>,
}

impl Platform {
    /// A platform without variant.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Linux on this machine's architecture (Rust's `x86_64` is `amd64`,
    /// `aarch64` is `arm64`, and so on).
    pub fn host() -> Self {
        Platform::new("linux", go_arch(std::env::consts::ARCH))
    }

    /// Whether an index entry's platform is this one. arm64's `v8` is the
    /// same as no variant.
    pub(crate) fn matches(&self, other: &IndexPlatform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(wanted) => {
                let norm = |v: Option<&str>| match (self.architecture.as_str(), v) {
                    ("arm64", None) => Some("v8".to_string()),
                    (_, v) => v.map(str::to_string),
                };
                norm(Some(wanted)) == norm(other.variant.as_deref())
            }
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Rust's `std::env::consts::ARCH` in Go/OCI naming.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => {
            if cfg!(target_endian = "little") {
                "ppc64le"
            } else {
                "ppc64"
            }
        }
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The `platform` object of an index entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IndexPlatform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

impl fmt::Display for IndexPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One entry of an index's `manifests`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    #[serde(default)]
    pub(crate) media_type: Option<String>,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) platform: Option<IndexPlatform>,
}

/// An image index / manifest list (only what selection needs).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Index {
    pub(crate) manifests: Vec<IndexEntry>,
}

/// The entry for `wanted`, or the list of platforms on offer (attestation
/// entries, whose platform is `unknown/unknown`, are left out of both).
pub(crate) fn select<'a>(
    index: &'a Index,
    wanted: &Platform,
) -> Result<&'a IndexEntry, Vec<String>> {
    let real = |e: &&IndexEntry| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
    };
    index
        .manifests
        .iter()
        .filter(real)
        .find(|e| e.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .ok_or_else(|| {
            index
                .manifests
                .iter()
                .filter(real)
                .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn index() -> Index {
        serde_json::from_str(
            r#"{"manifests":[
              {"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"digest":"sha256:b","size":2,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
              {"digest":"sha256:c","size":3,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"digest":"sha256:d","size":4,"platform":{"os":"unknown","architecture":"unknown"}},
              {"digest":"sha256:e","size":5}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn picks_by_os_arch_and_variant() {
        let i = index();
        assert_eq!(
            select(&i, &Platform::new("linux", "amd64")).unwrap().digest,
            "sha256:a"
        );
        assert_eq!(
            select(&i, &Platform::new("linux", "arm")).unwrap().digest,
            "sha256:b"
        );
        let mut arm64 = Platform::new("linux", "arm64");
        assert_eq!(select(&i, &arm64).unwrap().digest, "sha256:c");
        arm64.variant = Some("v8".into());
        assert_eq!(select(&i, &arm64).unwrap().digest, "sha256:c");
        let mut arm6 = Platform::new("linux", "arm");
        arm6.variant = Some("v6".into());
        assert!(select(&i, &arm6).is_err());
    }

    #[test]
    fn lists_available_platforms_when_none_match() {
        let avail = select(&index(), &Platform::new("windows", "amd64")).unwrap_err();
        assert_eq!(avail, vec!["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]);
        // attestation entries are never picked
        assert!(select(&index(), &Platform::new("unknown", "unknown")).is_err());
    }

    #[test]
    fn host_arch_uses_go_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.contains('_'), "{host}");
    }
}
