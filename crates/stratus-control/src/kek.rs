//! The cluster's key-encryption key (KEK): what keeps the secrets of the
//! replicated state sealed at rest.
//!
//! The Raft log and snapshots (`DATA/control/raft/raft.redb`) hold the
//! cluster storage secret, S3 secret keys and private-scope seeds only as
//! AES-256-GCM ciphertext under this key (`stratus_state::sealing`). The key
//! lives in its own file, `DATA/control/storage.kek` (64 hex digits, mode
//! 0600, written with fsync and rename), never in the replicated state.
//!
//! **Where it comes from.** The leader that first sets the storage secret
//! mints the KEK (if it holds none), writes its file, and only then proposes
//! the secret sealed under it, so a committed secret always has a key on
//! some disk. Every sealed value names the KEK that sealed it, so a replica
//! knows whether the key it holds is the cluster's. A replica without it (a
//! replica added later, or one whose file was lost) asks the other members
//! of the Raft membership with [`Request::GetKek`] over connections pinned to
//! their keys (mutual TLS), and installs the answer only if its id is the one
//! the state names. A replica answers only members of the membership: a
//! member receives the whole state anyway; the KEK only keeps the files on
//! disk (and their backups and copies) from revealing the secrets. The
//! operator may also copy the file to a new replica before starting it.
//!
//! What this protects: a copy of the Raft store (a backup, a stolen disk
//! image of the store's volume, a snapshot file) reveals no secret without the
//! KEK file. It does not protect against someone who reads the whole data
//! directory (the key is beside the store) or a running replica's memory.
//! Rotation: see ARCHITECTURE.md ("Secrets at rest").

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use stratus_proto::Response;
use stratus_state::sealing::{Kek, KekId, Sealed};
use stratus_types::{ErrorCode, NodeId};

use crate::{resolve, secrets, Control, ControlError, RPC_TIMEOUT};

/// File in the control data directory holding the KEK.
pub const KEK_FILE: &str = "storage.kek";

/// How often a replica without the cluster's KEK asks its peers.
const FETCH_EVERY: Duration = Duration::from_millis(250);

/// The KEK this replica holds, and its file.
pub(crate) struct KekSlot {
    path: PathBuf,
    held: RwLock<Option<Kek>>,
}

impl KekSlot {
    /// Loads the KEK file of `dir`, if there is one.
    pub(crate) fn open(dir: &Path) -> Result<KekSlot, ControlError> {
        let path = dir.join(KEK_FILE);
        let io = |source| ControlError::Io {
            context: format!("key-encryption key file {}", path.display()),
            source,
        };
        let held = match secrets::read_secret_file(&path).map_err(io)? {
            None => None,
            Some(text) => Some(parse(&text).ok_or_else(|| {
                ControlError::Invalid(format!(
                    "{} does not hold a key-encryption key (64 hex digits)",
                    path.display()
                ))
            })?),
        };
        Ok(KekSlot {
            path,
            held: RwLock::new(held),
        })
    }

    fn get(&self) -> Option<Kek> {
        self.held.read().ok().and_then(|k| k.clone())
    }

    /// Writes `kek` to the file (0600, fsynced) and holds it.
    fn install(&self, kek: Kek) -> Result<(), ControlError> {
        secrets::write_secret_file(&self.path, &hex::encode(kek.to_bytes())).map_err(|source| {
            ControlError::Io {
                context: format!("writing {}", self.path.display()),
                source,
            }
        })?;
        if let Ok(mut h) = self.held.write() {
            *h = Some(kek);
        }
        Ok(())
    }
}

fn parse(text: &str) -> Option<Kek> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    Some(Kek::from_bytes(bytes))
}

impl Control {
    /// The id of the KEK the replicated state's secrets are sealed with
    /// (`None` before the storage secret is set).
    fn cluster_kek_id(&self) -> Option<KekId> {
        self.inner
            .reader
            .read(|s| s.store.secret.as_ref().map(|s| s.kek))
    }

    /// The cluster's KEK, if this replica holds it (`None` before the
    /// storage secret is set, and while a replica has not fetched it yet).
    pub fn kek(&self) -> Option<Kek> {
        let want = self.cluster_kek_id()?;
        self.inner.kek.get().filter(|k| k.id() == want)
    }

    /// Seals `plaintext` under the cluster's KEK with `label`
    /// (`stratus_state::sealing`), for a command to carry.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Sealed, ControlError> {
        let kek = self.kek().ok_or(ControlError::NoKek)?;
        kek.seal(label, plaintext)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// The KEK to seal a new storage secret with: the one held, or a new
    /// one written to disk first.
    pub(crate) fn kek_for_new_secret(&self) -> Result<Kek, ControlError> {
        if let Some(k) = self.inner.kek.get() {
            return Ok(k);
        }
        let k = Kek::generate().map_err(|e| ControlError::Invalid(e.to_string()))?;
        self.inner.kek.install(k.clone())?;
        tracing::info!(kek = %hex::encode(k.id()), "key-encryption key created");
        Ok(k)
    }

    /// Answers [`Request::GetKek`] (the caller checked `peer` is a member).
    pub(crate) fn answer_kek(&self, peer: &NodeId) -> Response {
        match self.kek() {
            Some(k) => {
                tracing::info!(peer = %peer.short(), "handing the key-encryption key to a replica");
                Response::Blob(k.to_bytes().to_vec())
            }
            None => Response::Error {
                code: ErrorCode::Unavailable,
                message: "this replica does not hold the cluster's key-encryption key".into(),
            },
        }
    }

    /// Background task: while the state's secrets are sealed under a KEK
    /// this replica does not hold, ask the other members for it.
    pub(crate) async fn keep_kek(self) {
        let mut applied = self.inner.reader.subscribe();
        loop {
            if let Some(want) = self.cluster_kek_id() {
                if self.inner.kek.get().map(|k| k.id()) != Some(want) {
                    self.fetch_kek(want).await;
                }
            }
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tokio::time::sleep(FETCH_EVERY) => {}
                r = applied.changed() => if r.is_err() { return },
            }
        }
    }

    async fn fetch_kek(&self, want: KekId) {
        for p in self.peers().into_iter().filter(|p| p.id != self.id()) {
            let Ok(addr) = resolve(&p.addr).await else {
                continue;
            };
            let answer = self
                .inner
                .pool
                .rpc(addr, Some(p.id), stratus_proto::rpc::GetKek, RPC_TIMEOUT)
                .await;
            let kek = answer
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .map(Kek::from_bytes);
            match kek {
                Some(k) if k.id() == want => {
                    if let Err(e) = self.inner.kek.install(k) {
                        tracing::warn!(error = %e, "storing the key-encryption key");
                        return;
                    }
                    tracing::info!(from = %p.id.short(), "received the key-encryption key");
                    return;
                }
                Some(_) => {
                    tracing::warn!(from = %p.id.short(), "a replica sent a key-encryption key that is not the cluster's");
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kek_file_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let slot = KekSlot::open(dir.path()).expect("open");
        assert!(slot.get().is_none());
        let k = Kek::generate().expect("kek");
        slot.install(k.clone()).expect("install");
        let path = dir.path().join(KEK_FILE);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = KekSlot::open(dir.path()).expect("open");
        assert_eq!(again.get().map(|k| k.id()), Some(k.id()));
        std::fs::write(&path, "not a key").expect("write");
        assert!(KekSlot::open(dir.path()).is_err());
    }
}
