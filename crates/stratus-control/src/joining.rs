//! Joining: the cluster key, join credentials, registration and bans.
//!
//! - At bootstrap the leader sets the cluster key's seed in the replicated
//!   state and writes the default join credential
//!   (`stj_<id>_<secret>_<pin>`, see `stratus_net::cluster`) to the
//!   bootstrap replica's `join.token` before its hash is committed.
//! - Any replica answers [`Request::ClusterProof`]: the cluster public key
//!   and its signature over this replica's node id, so an agent can tie the
//!   replica's key to the pin of its credential before sending the secret.
//! - `Register` from a key not yet registered needs a credential that is
//!   known, not expired, not used (one-time) and whose secret matches; the
//!   owner of the credential becomes the owner of the node. It is checked
//!   here on the local state (so a stranger costs no Raft entry) and again
//!   by the state machine in log order ([`Command::JoinNode`]), which is
//!   what makes one-time credentials single-use across replicas. A key
//!   already registered re-registers by its key.
//! - A banned key is refused everything an agent may do.
//!
//! [`Request::ClusterProof`]: stratus_proto::Request::ClusterProof

use std::path::Path;

use stratus_net::cluster::{ClusterKey, JoinCredential};
use stratus_proto::Response;
use stratus_state::nodes::JoinCredentialRecord;
use stratus_state::sealing::CLUSTER_KEY;
use stratus_state::Command;
use stratus_types::{ErrorCode, NodeId, NodeInfo, ADMIN_TENANT};

use crate::{now_ms, secrets, Control, ControlError, JOIN_TOKEN_FILE};

/// A join credential just minted: the string to hand out (once) and what
/// the replicas keep.
#[derive(Clone, Debug)]
pub struct NewJoinCredential {
    /// `stj_<id>_<secret>_<pin>`.
    pub credential: String,
    /// The stored record.
    pub record: JoinCredentialRecord,
}

/// What a join credential is made with.
#[derive(Clone, Debug, Default)]
pub struct JoinCredentialSpec {
    /// Tenant owning the nodes it joins (the admin tenant when `None`).
    pub owner: Option<String>,
    /// Refused for new joins from this time on (ms since the epoch).
    pub expires_ms: Option<u64>,
    /// Consumed by its first registration.
    pub once: bool,
    /// Replaces the default credential (rotation).
    pub default: bool,
}

fn mint(pin: [u8; 32], spec: &JoinCredentialSpec, now_ms: u64) -> NewJoinCredential {
    let c = JoinCredential {
        id: secrets::random_hex(6),
        secret: secrets::random_hex(32),
        pin,
    };
    record_of(&c, spec, now_ms)
}

fn record_of(c: &JoinCredential, spec: &JoinCredentialSpec, now_ms: u64) -> NewJoinCredential {
    NewJoinCredential {
        credential: c.encode(),
        record: JoinCredentialRecord {
            id: c.id.clone(),
            secret_sha256: c.secret_sha256(),
            owner: spec.owner.clone().unwrap_or_else(|| ADMIN_TENANT.into()),
            created_ms: now_ms,
            expires_ms: spec.expires_ms,
            once: spec.once,
            default: spec.default,
            used_by: None,
        },
    }
}

impl Control {
    /// The cluster key, once bootstrapped and while this replica holds the
    /// KEK its seed is sealed under.
    pub(crate) fn cluster_key(&self) -> Option<ClusterKey> {
        let sealed = self.inner.reader.read(|s| s.joining.cluster_seed.clone())?;
        match self.kek()?.open_key(CLUSTER_KEY, &sealed) {
            Ok(seed) => Some(ClusterKey::from_seed(&seed)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the cluster key");
                None
            }
        }
    }

    /// The pin of this cluster (SHA-256 of its public key), once bootstrapped.
    pub fn cluster_pin(&self) -> Option<[u8; 32]> {
        self.cluster_key().map(|k| k.pin())
    }

    /// Mints and stores a join credential.
    pub async fn create_join_credential(
        &self,
        spec: JoinCredentialSpec,
    ) -> Result<NewJoinCredential, ControlError> {
        let pin = self.cluster_pin().ok_or_else(|| ControlError::Remote {
            code: ErrorCode::Unavailable,
            message: "the cluster key is not set yet; retry".into(),
        })?;
        let new = mint(pin, &spec, now_ms());
        self.write(Command::CreateJoinCredential {
            record: new.record.clone(),
        })
        .await?;
        // A rotated default replaces the `join.token` this replica keeps
        // (the bootstrap replica's), so that file stays the one that works.
        let path = self.join_token_path();
        if spec.default && path.exists() {
            secrets::write_secret_file(&path, &new.credential).map_err(|source| {
                ControlError::Io {
                    context: format!("secret file {}", path.display()),
                    source,
                }
            })?;
        }
        Ok(new)
    }

    /// Bans `node` for good (see [`Command::BanNode`]).
    pub async fn ban_node(&self, node: NodeId) -> Result<(), ControlError> {
        self.write(Command::BanNode {
            id: node,
            now_ms: now_ms(),
        })
        .await?;
        Ok(())
    }

    /// Sets the cluster key and the default join credential if the state
    /// lacks them. The credential is written to `join.token` before its
    /// hash is committed.
    pub(crate) async fn ensure_joining(&self, dir: &Path) -> Result<(), ControlError> {
        if self.cluster_key().is_none() {
            let seed: [u8; 32] = rand::random();
            match self
                .write(Command::SetClusterKey {
                    seed: self.seal(CLUSTER_KEY, &seed)?,
                })
                .await
            {
                Ok(_) => tracing::info!("cluster key created"),
                Err(e) if e.code() == ErrorCode::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        if self.inner.reader.read(|s| s.joining.has_default()) {
            return Ok(());
        }
        let pin = self.cluster_pin().ok_or(ControlError::NoLeader)?;
        let path = dir.join(JOIN_TOKEN_FILE);
        let io = |source| ControlError::Io {
            context: format!("secret file {}", path.display()),
            source,
        };
        let spec = JoinCredentialSpec {
            default: true,
            ..Default::default()
        };
        // A credential left by a crash before its commit is reused if it
        // pins this cluster; anything else is replaced.
        let existing = secrets::read_secret_file(&path)
            .map_err(io)?
            .and_then(|s| JoinCredential::parse(&s).ok())
            .filter(|c| c.pin == pin);
        let new = match existing {
            Some(c) => record_of(&c, &spec, now_ms()),
            None => {
                let new = mint(pin, &spec, now_ms());
                secrets::write_secret_file(&path, &new.credential).map_err(io)?;
                new
            }
        };
        match self
            .write(Command::CreateJoinCredential { record: new.record })
            .await
        {
            Ok(_) => {
                tracing::info!(path = %path.display(), "default join credential created");
                Ok(())
            }
            Err(e) if e.code() == ErrorCode::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Answers [`stratus_proto::Request::ClusterProof`].
    pub(crate) fn cluster_proof(&self) -> Response {
        match self.cluster_key() {
            Some(k) => Response::ClusterProof {
                cluster_key: k.public(),
                signature: k.vouch(self.inner.id),
            },
            None => Response::Error {
                code: ErrorCode::Unavailable,
                message: "the cluster is not bootstrapped yet; retry".into(),
            },
        }
    }

    /// Whether `node` is banned.
    pub fn is_banned(&self, node: &NodeId) -> bool {
        self.inner
            .reader
            .read(|s| s.joining.banned.contains_key(node))
    }

    /// Answers `Register` from `peer` (see the module docs).
    pub(crate) async fn register(
        &self,
        peer: NodeId,
        info: NodeInfo,
        credential: String,
    ) -> Response {
        let refuse = |code, message: String| Response::Error { code, message };
        if info.id != peer {
            return refuse(
                ErrorCode::Forbidden,
                "a node may only register itself (node id differs from its key)".into(),
            );
        }
        if self.is_banned(&peer) {
            return refuse(
                ErrorCode::Forbidden,
                format!("node {peer} is banned from this cluster"),
            );
        }
        if let Err(e) = crate::bounds::check_node_info(&info) {
            return refuse(ErrorCode::BadRequest, e.to_string());
        }
        let parsed = match JoinCredential::parse(&credential) {
            Ok(c) => c,
            Err(e) => return refuse(ErrorCode::Unauthenticated, e.to_string()),
        };
        let secret_sha256 = parsed.secret_sha256();
        let now = now_ms();
        // Checked on this replica's state first, so a stranger costs no
        // Raft entry; `JoinNode` checks again in log order.
        let refused: Option<(ErrorCode, String)> = self.inner.reader.read(|s| {
            if !s.is_bootstrapped() || s.joining.cluster_seed.is_none() {
                return Some((
                    ErrorCode::Unavailable,
                    "the cluster is not bootstrapped yet; retry".to_string(),
                ));
            }
            if s.nodes.contains_key(&peer) {
                return None;
            }
            s.joining
                .check(&parsed.id, &secret_sha256, now)
                .err()
                .map(|e| (e.code(), e.to_string()))
        });
        if let Some((code, message)) = refused {
            return refuse(code, message);
        }
        let name = info.name.clone();
        match self
            .write(Command::JoinNode {
                info,
                credential: parsed.id,
                secret_sha256,
                now_ms: now,
            })
            .await
        {
            Ok(_) => {
                tracing::info!(node = %peer.short(), %name, "node registered");
                if let Err(e) = self.heartbeat(peer).await {
                    tracing::debug!(error = %e, "first heartbeat");
                }
                self.welcome()
            }
            Err(e) => Response::Error {
                code: e.code(),
                message: e.to_string(),
            },
        }
    }
}
