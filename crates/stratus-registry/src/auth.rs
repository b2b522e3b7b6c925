//! Registry credentials, and reading them from Docker's `config.json`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// How to authenticate to a registry.
///
/// The credentials are sent only to the registry of the reference (and, for
/// token auth, to the token realm that registry names); never to the extra
/// `urls` a layer descriptor may list.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    /// No credentials (public images; Docker Hub still hands out an anonymous token).
    #[default]
    Anonymous,
    /// A user name and password (or access token used as a password).
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
}

impl fmt::Debug for RegistryAuth {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl RegistryAuth {
    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryAuth::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }
}

/// The credentials Docker's client stored for `registry` (e.g. `docker.io`,
/// `ghcr.io`, `127.0.0.1:5000`), read from `$DOCKER_CONFIG/config.json`, or
/// `~/.docker/config.json` when `DOCKER_CONFIG` is unset.
///
/// Only the inline `auths.<host>.auth` (base64 `user:pass`) and
/// `auths.<host>.username`/`password` forms are read; credential helpers
/// (`credsStore`, `credHelpers`) are not run. `None` when there is no file,
/// it does not parse, or it has no entry for the registry.
pub fn docker_config_auth(registry: &str) -> Option<RegistryAuth> {
    let path = docker_config_path()?;
    let bytes = std::fs::read(path).ok()?;
    docker_config_auth_from(&bytes, registry)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".docker").join("config.json"))
}

/// Like [`docker_config_auth`], from the bytes of a `config.json`.
///
/// Keys are matched by host: `https://index.docker.io/v1/`, `index.docker.io`,
/// `registry-1.docker.io` and `docker.io` all stand for Docker Hub; a scheme
/// or path on a key (`https://ghcr.io/v2/`) is ignored.
pub fn docker_config_auth_from(config_json: &[u8], registry: &str) -> Option<RegistryAuth> {
    let config: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let wanted = canonical_host(registry);
    let entry = auths
        .iter()
        .find(|(key, _)| canonical_host(key) == wanted)
        .map(|(_, v)| v)?;
    if let Some(encoded) = entry.get("auth").and_then(|v| v.as_str()) {
        if !encoded.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(RegistryAuth::Basic {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
    }
    let username = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some(RegistryAuth::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/v2/` → `h:5000`.
fn canonical_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            crate::reference::DOCKER_HUB.to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn basic(u: &str, p: &str) -> Option<RegistryAuth> {
        Some(RegistryAuth::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn reads_inline_auth_by_host() {
        // "alice:s3cr:et" — the password may contain ':'
        let cfg = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcjpldA=="},
            "127.0.0.1:5000":{"auth":"Ym9iOnB3"},
            "https://ghcr.io/v2/":{"username":"carol","password":"tok"}
        }}"#;
        assert_eq!(
            docker_config_auth_from(cfg, "docker.io"),
            basic("alice", "s3cr:et")
        );
        assert_eq!(
            docker_config_auth_from(cfg, "index.docker.io"),
            basic("alice", "s3cr:et")
        );
        assert_eq!(
            docker_config_auth_from(cfg, "127.0.0.1:5000"),
            basic("bob", "pw")
        );
        assert_eq!(
            docker_config_auth_from(cfg, "ghcr.io"),
            basic("carol", "tok")
        );
        assert_eq!(docker_config_auth_from(cfg, "quay.io"), None);
        assert_eq!(docker_config_auth_from(cfg, "127.0.0.1:5001"), None);
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(docker_config_auth_from(b"not json", "docker.io"), None);
        assert_eq!(
            docker_config_auth_from(br#"{"auths":[]}"#, "docker.io"),
            None
        );
        assert_eq!(
            docker_config_auth_from(br#"{"auths":{"docker.io":{"auth":"!!"}}}"#, "docker.io"),
            None
        );
        // no ':' in the decoded value
        assert_eq!(
            docker_config_auth_from(
                br#"{"auths":{"docker.io":{"auth":"YWxpY2U="}}}"#,
                "docker.io"
            ),
            None
        );
        // a helper-only entry has no inline credentials
        assert_eq!(
            docker_config_auth_from(
                br#"{"auths":{"docker.io":{}},"credsStore":"pass"}"#,
                "docker.io"
            ),
            None
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let a = basic("u", "hunter2").unwrap();
        let shown = format!("{a:?}");
        assert!(shown.contains('u'));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
