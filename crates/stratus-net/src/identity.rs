//! The node's long-term ed25519 key.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use stratus_types::NodeId;

use crate::NetError;

/// Name of the key file inside the node's data directory.
const KEY_FILE: &str = "node.key";

/// A node's long-term identity: an ed25519 signing key. Its public half is
/// the [`NodeId`].
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `dir/node.key` (PKCS#8 PEM), or generates a new key and writes
    /// it there with mode 0600 if the file does not exist. `dir` is created
    /// if missing.
    pub fn load_or_create(dir: &Path) -> Result<Identity, NetError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                warn_if_exposed(&path);
                let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| NetError::KeyFile {
                    path: path.clone(),
                    reason: format!("not a PKCS#8 PEM ed25519 private key: {e}"),
                })?;
                Ok(Identity { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity::generate();
                identity.write_new(&path)?;
                tracing::info!(node_id = %identity.node_id(), path = %path.display(), "created node identity");
                Ok(identity)
            }
            Err(e) => Err(NetError::KeyFile {
                path,
                reason: format!("cannot read: {e}"),
            }),
        }
    }

    /// Generates a fresh random identity (not persisted).
    pub fn generate() -> Identity {
        Identity {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// This node's ed25519 signature of `message` (audit checkpoints).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The node id: the 32-byte ed25519 public key.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.key.verifying_key().to_bytes())
    }

    /// The private key as PKCS#8 v2 DER (includes the public key).
    pub(crate) fn pkcs8_der(&self) -> Result<Vec<u8>, NetError> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|e| NetError::Tls(format!("cannot encode node key as PKCS#8: {e}")))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// Writes the key (0600) so a crash never leaves a truncated key behind
    /// ([`crate::write_secret_file`]).
    fn write_new(&self, path: &Path) -> Result<(), NetError> {
        let key_err = |reason: String| NetError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| key_err(format!("cannot encode key: {e}")))?;
        crate::write_secret_file(path, pem.as_bytes())
            .map_err(|e| key_err(format!("cannot write: {e}")))
    }
}

/// Logs a warning if the key file is readable by group or others.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "node key file is accessible by group or others; it should be mode 0600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
