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
//! The salt lives only in memory: an agent restarted between commit and
//! reveal cannot reveal, and its replica counts for nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;
use stratus_net::CallError;
use stratus_proto::rpc::{self, RpcError};
use stratus_proto::Assignment;
use stratus_runtime::Determinism;
use stratus_spec::WorkloadKind;
use stratus_types::ErrorCode;
use stratus_verify::{commitment, files_digest, ResultParts};
use tokio_util::sync::CancellationToken;

use super::Runner;

/// How long before a refused reveal is offered again (the control plane
/// holds a reveal a few seconds until it can be taken, so a refusal means
/// a slow replica).
const REVEAL_RETRY: Duration = Duration::from_millis(200);
/// How long a reveal is offered.
const REVEAL_FOR: Duration = Duration::from_secs(600);
/// How long one call may take.
const CALL: Duration = Duration::from_secs(15);
/// Attempts of a call while there is no connection.
const ATTEMPTS: u32 = 50;

/// Whether `a` may be a replica of a verified run (a task: the assignment
/// does not say, the control plane does). A container replica (an image
/// app its owner declared deterministic) gets the same seed and clock
/// start, which only a WASM guest is held to.
pub(crate) fn may_be_verified(a: &Assignment) -> bool {
    a.spec.kind == WorkloadKind::Task
}

/// The digest of what `/output` holds: each regular file's path (relative,
/// `/`-separated) and BLAKE3; links and special files are left out, as
/// they are never uploaded.
fn output_files(dir: &Path) -> std::io::Result<[u8; 32]> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            let path = entry.path();
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut h = blake3::Hasher::new();
                h.update_reader(std::fs::File::open(&path)?)?;
                files.push((rel, *h.finalize().as_bytes()));
            }
        }
    }
    Ok(files_digest(&files))
}

impl Runner {
    /// Sends what `make` makes until a replica answers, waiting for a
    /// connection (a few attempts); `Err(None)`: none answered.
    async fn call<R, F>(&self, make: F) -> Result<R::Reply, Option<RpcError>>
    where
        R: rpc::Rpc,
        F: Fn() -> R,
    {
        for _ in 0..ATTEMPTS {
            if let Some(conn) = self.connection() {
                match conn.rpc(make(), CALL).await {
                    Ok(r) => return Ok(r),
                    Err(CallError::Rpc(e)) => return Err(Some(e)),
                    Err(CallError::Net(e)) => {
                        tracing::debug!(error = %e, "verified run: call failed; retrying")
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(None)
    }

    /// The deterministic environment of `instance` when it is a replica of
    /// a verified run (`Ok(None)`: it is not). Waits for a control replica
    /// to answer (a replica run outside its environment would only lose);
    /// `Err(None)`: cancelled first.
    pub(crate) async fn trust_terms(
        &self,
        instance: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Determinism>, Option<String>> {
        loop {
            let asked = self.call(|| rpc::TrustTerms {
                instance: instance.to_string(),
            });
            let answer = tokio::select! {
                _ = cancel.cancelled() => return Err(None),
                a = asked => a,
            };
            match answer {
                Ok(t) => {
                    return Ok(Some(Determinism {
                        seed: t.seed,
                        start_ms: t.start_ms,
                        fuel: t.fuel,
                    }))
                }
                Err(Some(e)) if e.code() == Some(ErrorCode::NotFound) => return Ok(None),
                Err(Some(e)) => {
                    return Err(Some(format!(
                        "cannot tell whether this is a verified run: {e}"
                    )))
                }
                Err(None) => {
                    tracing::debug!(%instance, "no control replica: waiting to learn whether it is a verified run")
                }
            }
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
                .map_err(|e| format!("verified run: cannot read /output: {e}"))?,
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
        self.call(|| rpc::CommitResult {
            instance: instance.to_string(),
            commitment: c,
        })
        .await
        .map_err(|e| {
            format!(
                "verified run: the result could not be committed: {}",
                e.map_or("no control replica answered".into(), |e| e.to_string())
            )
        })?;
        let me = self.clone();
        let id = instance.to_string();
        tokio::spawn(async move { me.reveal(&id, parts, salt).await });
        Ok(())
    }

    async fn reveal(&self, instance: &str, parts: ResultParts, salt: [u8; 32]) {
        let until = Instant::now() + REVEAL_FOR;
        while Instant::now() < until && !self.inner.cancel.is_cancelled() {
            let sent = match self.connection() {
                Some(conn) => {
                    let req = rpc::RevealResult {
                        instance: instance.to_string(),
                        parts,
                        salt,
                    };
                    Some(conn.rpc(req, CALL).await)
                }
                None => None,
            };
            match sent {
                Some(Ok(())) => {
                    tracing::info!(%instance, "verified run: result revealed");
                    return;
                }
                // Others have not committed yet.
                Some(Err(CallError::Rpc(RpcError::Refused {
                    code: ErrorCode::Conflict,
                    ..
                })))
                | Some(Err(CallError::Net(_)))
                | None => {}
                Some(Err(e)) => {
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
}
