//! Signing the audit log (`stratus_state::audit`): the leader checkpoints
//! the log's head every [`CHECKPOINT_EVERY`] when records were appended
//! since the last checkpoint, and on demand (`POST /v1/audit/checkpoint`,
//! which `stratus audit verify` calls first so it checks a fully signed
//! log).
//!
//! A checkpoint is the head `(seq, hash)` signed with this replica's node
//! key (it never leaves `stratus-net`'s identity), with the cluster key's
//! vouch for this replica, proposed through Raft like any write: every
//! replica's `apply` checks both signatures before keeping it.

use std::time::Duration;

use stratus_state::audit::{checkpoint_message, CheckpointCommand};
use stratus_state::Command;
use stratus_types::ErrorCode;

use crate::{now_ms, Control, ControlError};

/// How often the leader signs the audit log's head, when it moved.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

impl Control {
    /// The leader's checkpointing loop (every replica runs it; only the
    /// leader acts).
    pub(crate) async fn audit_loop(self) {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.is_leader() {
                continue;
            }
            if let Err(e) = self.checkpoint_audit().await {
                tracing::debug!(error = %e, "signing the audit log");
            }
        }
    }

    /// Signs the audit log's head with this replica's key if records were
    /// appended since the last checkpoint; returns the last signed seq.
    pub async fn checkpoint_audit(&self) -> Result<u64, ControlError> {
        let (seq, head, signed) = self.inner.reader.read(|s| s.audit_head());
        if seq == signed {
            return Ok(signed);
        }
        let key = self.cluster_key().ok_or_else(|| ControlError::Remote {
            code: ErrorCode::Unavailable,
            message: "the cluster key is not available on this replica yet; retry".into(),
        })?;
        let me = self.inner.id;
        let cmd = CheckpointCommand {
            seq,
            head,
            replica: me,
            signature: self
                .inner
                .pool
                .endpoint()
                .sign(&checkpoint_message(seq, &head))
                .to_vec(),
            cluster_key: key.public(),
            vouch: key.vouch(me),
            now_ms: now_ms(),
        };
        match self.write(Command::AuditCheckpoint(cmd)).await {
            Ok(_) => Ok(seq),
            // Another checkpoint signed it first.
            Err(ControlError::Rejected(e)) if e.code() == ErrorCode::Conflict => {
                Ok(self.inner.reader.read(|s| s.audit_head().2))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use stratus_net::cluster::ClusterKey;
    use stratus_state::audit::{signed_by, vouch_message};
    use stratus_types::NodeId;

    /// The state checks the vouch with its own copy of the message: it
    /// must be the one `stratus-net` signs.
    #[test]
    fn the_state_verifies_the_cluster_keys_vouch() {
        let key = ClusterKey::from_seed(&[5; 32]);
        let replica = NodeId([9; 32]);
        assert!(signed_by(
            &key.public(),
            &vouch_message(replica),
            &key.vouch(replica)
        ));
        assert!(!signed_by(
            &key.public(),
            &vouch_message(NodeId([8; 32])),
            &key.vouch(replica)
        ));
    }
}
