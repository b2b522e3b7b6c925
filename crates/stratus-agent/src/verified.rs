//! Replicas of verified runs (`market.trust` above 1; the control plane's
//! `stratus_state::trusted`): this node's side of commit, then reveal.
//!
//! Before a task starts, the agent asks whether it is a replica of a
//! verified run (the assignment does not say; an answer costs one round
//! trip, and the agent waits for one while it has no connection), and if
//! so its deterministic environment (seed, clock, fuel: the same for every
//! replica of the run), and runs it there. When
//! it ends, the agent hashes its result — exit code, the output stream as
//! forwarded (what `stratus logs` serves), and every regular file under
//! `/output` — and commits to it with a random salt before it reports the
//! end. It then offers the reveal until the control plane takes it: it is
//! refused (`Conflict`) while other replicas have not committed, and the
//! agent tries again every [`REVEAL_RETRY`] for at most [`REVEAL_FOR`].
//! The salt and the result are kept in the instance's folder
//! (`reveal.json`, readable by the agent only) from before the commitment
//! until the reveal is taken, so an agent restarted in between reveals at
//! its next start ([`Runner::resume_reveals`]; the control plane waits for
//! a committed replica's reveal a while).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use stratus_proto::rpc;
use stratus_proto::Assignment;
use stratus_runtime::Determinism;
use stratus_spec::WorkloadKind;
use stratus_state::InstanceState;
use stratus_types::ErrorCode;
use stratus_verify::{commitment, files_digest, ResultParts};
use tokio_util::sync::CancellationToken;

use super::Runner;
use crate::taskio::{self, TaskIoError};
use crate::volumes::Connected;

/// How long before a refused reveal is offered again (the control plane
/// holds a reveal a few seconds until it can be taken, so a refusal means
/// a slow replica).
const REVEAL_RETRY: Duration = Duration::from_millis(200);
/// How long a reveal is offered.
const REVEAL_FOR: Duration = Duration::from_secs(600);

/// What a replica must keep until it has revealed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    parts: ResultParts,
    salt: [u8; 32],
}

/// Name of the file that keeps a [`Pending`] in the instance's folder.
const PENDING_FILE: &str = "reveal.json";

/// Writes `p` to `path`, readable by the agent only, whole or not at all.
fn save_pending(path: &Path, p: &Pending) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(p).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn load_pending(path: &Path) -> Option<Pending> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Whether `a` may be a replica of a verified run (a task: the assignment
/// does not say, the control plane does). A container replica (an image
/// app its owner declared deterministic) gets the same seed and clock
/// start, which only a WASM guest is held to.
pub(crate) fn may_be_verified(a: &Assignment) -> bool {
    a.spec.kind == WorkloadKind::Task
}

/// The digest of what `/output` holds: each regular file's path (relative,
/// `/`-separated) and BLAKE3 — the files an upload would store
/// ([`taskio::output_files`]: links and special files left out, at most
/// `MAX_OUTPUT_FILES` entries).
fn output_files(dir: &Path) -> Result<[u8; 32], TaskIoError> {
    let mut files = Vec::new();
    for (rel, path) in taskio::output_files(dir)? {
        let read = |source| TaskIoError::Io {
            context: format!("output: reading {rel}"),
            source,
        };
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(&path).map_err(read)?)
            .map_err(read)?;
        files.push((rel, *h.finalize().as_bytes()));
    }
    Ok(files_digest(&files))
}

impl Runner {
    /// The deterministic environment of `instance` when it is a replica of
    /// a verified run (`Ok(None)`: it is not). Waits for a control replica
    /// to answer (a replica run outside its environment would only lose);
    /// `Err(None)`: cancelled first.
    pub(crate) async fn trust_terms(
        &self,
        instance: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Determinism>, Option<String>> {
        let replica = Connected(self.connector());
        let req = || rpc::TrustTerms {
            instance: instance.to_string(),
        };
        match taskio::call_until_answered(&replica, "verified run", req, cancel).await {
            Ok(Some(t)) => Ok(Some(Determinism {
                seed: t.seed,
                start_ms: t.start_ms,
                fuel: t.fuel,
            })),
            Ok(None) => Err(None),
            Err(TaskIoError::Replica {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(Some(format!(
                "cannot tell whether this is a verified run: {e}"
            ))),
        }
    }

    /// Commits to the result of `instance` — its exit code, the BLAKE3 of
    /// its output stream, and what `/output` holds — before the end is
    /// reported, then offers the reveal in the background.
    pub(crate) async fn commit(
        &self,
        instance: &str,
        exit_code: i32,
        output: [u8; 32],
        output_dir: Option<PathBuf>,
    ) -> Result<(), String> {
        let files = match output_dir {
            Some(dir) => tokio::task::spawn_blocking(move || output_files(&dir))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map_err(|e| format!("verified run: {e}"))?,
            None => files_digest(&[]),
        };
        let parts = ResultParts {
            exit_code,
            output,
            files,
        };
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let c = commitment(&self.inner.node.0, &parts.digest(), &salt);
        // Kept before it is committed: a commitment whose salt is lost
        // could never be revealed.
        let path = self.pending_path(instance);
        save_pending(&path, &Pending { parts, salt })
            .map_err(|e| format!("verified run: cannot keep the result to reveal: {e}"))?;
        let committed = taskio::call(
            &Connected(self.connector()),
            "committing the result",
            || rpc::CommitResult {
                instance: instance.to_string(),
                commitment: c,
            },
        )
        .await;
        if let Err(e) = committed {
            let _ = std::fs::remove_file(&path);
            return Err(format!("verified run: {e}"));
        }
        let me = self.clone();
        let id = instance.to_string();
        tokio::spawn(async move { me.reveal(&id, parts, salt).await });
        Ok(())
    }

    /// Where `instance` keeps what it must reveal.
    fn pending_path(&self, instance: &str) -> PathBuf {
        self.inner
            .dir
            .join("instances")
            .join(instance)
            .join(PENDING_FILE)
    }

    /// Whether `a` is a replica this node committed to before a restart:
    /// it is not run again (a new run would need a new commitment, which
    /// is refused); its end is reported from what it committed to, and its
    /// reveal is offered by [`Runner::resume_reveals`].
    pub(crate) fn committed_before(&self, a: &Assignment) -> bool {
        let Some(p) = load_pending(&self.pending_path(&a.instance.id)) else {
            return false;
        };
        let code = p.parts.exit_code;
        let state = if code == 0 {
            InstanceState::Completed
        } else {
            InstanceState::Failed {
                code,
                reason: "exited".into(),
            }
        };
        let restarts = a.instance.restarts;
        let why =
            format!("exited with code {code} before the agent restarted; its result is committed");
        self.report(&a.instance.id, state, restarts, Some(code), "exited", why);
        true
    }

    /// Offers again the reveals an earlier run of the agent committed to
    /// but had not revealed when it stopped.
    pub(crate) fn resume_reveals(&self) {
        let Ok(dirs) = std::fs::read_dir(self.inner.dir.join("instances")) else {
            return;
        };
        for d in dirs.flatten() {
            let id = d.file_name().to_string_lossy().into_owned();
            if let Some(p) = load_pending(&d.path().join(PENDING_FILE)) {
                tracing::info!(instance = %id, "verified run: revealing a result committed before a restart");
                let me = self.clone();
                tokio::spawn(async move { me.reveal(&id, p.parts, p.salt).await });
            }
        }
    }

    async fn reveal(&self, instance: &str, parts: ResultParts, salt: [u8; 32]) {
        self.offer_reveal(instance, parts, salt).await;
        let _ = std::fs::remove_file(self.pending_path(instance));
    }

    /// Offers the reveal until it is taken, refused for good, or too late.
    async fn offer_reveal(&self, instance: &str, parts: ResultParts, salt: [u8; 32]) {
        let until = Instant::now() + REVEAL_FOR;
        let replica = Connected(self.connector());
        while Instant::now() < until && !self.inner.cancel.is_cancelled() {
            let sent = taskio::call(&replica, "revealing the result", || rpc::RevealResult {
                instance: instance.to_string(),
                parts,
                salt,
            })
            .await;
            match sent {
                Ok(()) => {
                    tracing::info!(%instance, "verified run: result revealed");
                    return;
                }
                // Others have not committed yet, or no replica answers.
                Err(TaskIoError::Replica {
                    code: ErrorCode::Conflict,
                    ..
                })
                | Err(TaskIoError::Unreachable { .. }) => {}
                Err(e) => {
                    tracing::warn!(%instance, error = %e, "verified run: reveal refused");
                    return;
                }
            }
            tokio::time::sleep(REVEAL_RETRY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path, bytes) under a fresh folder, in the order
    /// given.
    fn folder(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (path, bytes) in files {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("write");
        }
        d
    }

    #[test]
    fn the_output_digest_is_of_paths_and_bytes_not_of_order_or_links() {
        let a = folder(&[("x/a.txt", b"1"), ("b.txt", b"2")]);
        let b = folder(&[("b.txt", b"2"), ("x/a.txt", b"1")]);
        let digest = |d: &tempfile::TempDir| output_files(d.path()).expect("digest");
        assert_eq!(digest(&a), digest(&b));
        // A link is not a file of the result (it is never uploaded either).
        std::os::unix::fs::symlink("/etc/hostname", b.path().join("link")).expect("symlink");
        assert_eq!(digest(&a), digest(&b));
        for other in [
            folder(&[("x/a.txt", b"1"), ("b.txt", b"3")]),
            folder(&[("y/a.txt", b"1"), ("b.txt", b"2")]),
            folder(&[("x/a.txt", b"1")]),
        ] {
            assert_ne!(digest(&a), digest(&other));
        }
        assert_eq!(digest(&folder(&[])), files_digest(&[]));
    }

    #[test]
    fn what_must_be_revealed_is_kept_for_the_agent_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join(PENDING_FILE);
        let p = Pending {
            parts: ResultParts {
                exit_code: 3,
                output: [1; 32],
                files: [2; 32],
            },
            salt: [9; 32],
        };
        save_pending(&path, &p).expect("saved");
        assert_eq!(load_pending(&path), Some(p));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"{not json").expect("write");
        assert_eq!(load_pending(&path), None);
    }
}
