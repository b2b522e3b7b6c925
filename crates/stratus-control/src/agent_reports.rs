//! What agents report to a replica: what happened to their instances,
//! their output, and the progress of execs. Each is taken only for the
//! sender's own instances (the connection's key says who sends), and what
//! would cost a Raft entry for nothing is dropped first.

use stratus_proto::{InstanceReport, LogChunk, Response};
use stratus_state::trusted::TrustCommand;
use stratus_state::workloads::ExecState;
use stratus_state::Command;
use stratus_types::{ErrorCode, NodeId};

use crate::serve::{error_response, not_member};

/// Most usage reports an agent sends in one call.
pub const MAX_USAGE_REPORTS: usize = 1_000;
use crate::Control;

/// Longest a reveal is held waiting for the other replicas' commitments.
const REVEAL_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

impl Control {
    /// [`stratus_proto::Request::Report`]: what happened to `peer`'s instances.
    pub(crate) async fn take_reports(
        &self,
        peer: NodeId,
        reports: Vec<InstanceReport>,
    ) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        // Reports about instances not on this node are dropped before they
        // cost a Raft entry; texts are bounded.
        let reports: Vec<_> = self.inner.reader.read(|s| {
            crate::bounds::bound_reports(reports)
                .into_iter()
                .filter(|r| s.instances.get(&r.id).is_some_and(|i| i.node == peer))
                .collect()
        });
        let writes = reports.into_iter().map(|r| {
            self.write(Command::ReportInstance {
                id: r.id,
                node: peer,
                state: r.state,
                restarts: r.restarts,
                exit_code: r.exit_code,
                kind: r.kind,
                message: r.message,
                now_ms: r.time_ms,
            })
        });
        for r in futures::future::join_all(writes).await {
            match r {
                Ok(_) => {}
                // Reports about instances that are gone or moved are dropped.
                Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::Forbidden) => {}
                Err(e) => return error_response(e.code(), e),
            }
        }
        Response::Ok
    }

    /// [`stratus_proto::Request::ReportUsage`]: signed usage of `peer`'s
    /// instances. Only reports the peer signed itself about its own
    /// instances with an open deal cost a Raft entry (a free placement has
    /// nothing to pay); at most [`MAX_USAGE_REPORTS`] per call. The state's
    /// apply checks the signature and the sequence again.
    pub(crate) async fn take_usage(
        &self,
        peer: NodeId,
        reports: Vec<stratus_market::UsageReport>,
    ) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        if reports.len() > MAX_USAGE_REPORTS {
            return error_response(
                ErrorCode::TooLarge,
                format!("at most {MAX_USAGE_REPORTS} usage reports per call"),
            );
        }
        let reports: Vec<_> = self.inner.reader.read(|s| {
            reports
                .into_iter()
                .filter(|r| r.node == peer.0 && s.deals.contains_key(&r.instance))
                .collect()
        });
        let writes = reports
            .into_iter()
            .map(|r| self.write(Command::ReportUsage(r)));
        for r in futures::future::join_all(writes).await {
            match r {
                Ok(_) => {}
                // Stale, replayed or closed: the state refused it; the
                // agent must not retry it forever.
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::NotFound
                            | ErrorCode::Forbidden
                            | ErrorCode::Conflict
                            | ErrorCode::BadRequest
                    ) =>
                {
                    tracing::debug!(peer = %peer.short(), error = %e, "usage report refused");
                }
                Err(e) => return error_response(e.code(), e),
            }
        }
        Response::Ok
    }

    /// [`stratus_proto::Request::SetOwnOffer`]: a registered node prices
    /// itself (the prices its lender gave at start); a node prices only
    /// itself, whatever it sends.
    pub(crate) async fn set_own_offer(
        &self,
        peer: NodeId,
        offer: stratus_market::Offer,
        task: stratus_market::Amount,
    ) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        let cmd = Command::Market(stratus_state::accounts::MarketCommand::SetOfferWithTask {
            node: peer,
            offer: Some(offer),
            task,
        });
        match self.write(cmd).await {
            Ok(_) => Response::Ok,
            Err(e) => error_response(e.code(), e),
        }
    }

    /// [`stratus_proto::Request::TrustTerms`]: the deterministic
    /// environment of `peer`'s replica `instance` of a verified run.
    pub(crate) fn trust_terms(&self, peer: NodeId, instance: &str) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        match self.inner.reader.read(|s| s.trust_terms(instance, &peer)) {
            Ok((seed, start_ms, fuel)) => Response::TrustTerms {
                seed,
                start_ms,
                fuel,
            },
            Err(e) => error_response(e.code(), e),
        }
    }

    /// [`stratus_proto::Request::CommitResult`] and
    /// [`stratus_proto::Request::RevealResult`]: a step of `peer`'s
    /// replica of a verified run (the state checks it is `peer`'s).
    pub(crate) async fn trust_step(&self, peer: NodeId, cmd: TrustCommand) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        match self.write(Command::Trust(cmd)).await {
            Ok(_) => Response::Ok,
            Err(e) => error_response(e.code(), e),
        }
    }

    /// Holds a reveal of `instance` until the other replicas have committed
    /// (as this replica sees the state), at most [`REVEAL_HOLD`]: the agent
    /// then hears at once instead of polling.
    pub(crate) async fn reveal_when_ready(&self, instance: &str) {
        let mut rx = self.inner.reader.subscribe();
        let deadline = tokio::time::Instant::now() + REVEAL_HOLD;
        while !self.inner.reader.read(|s| s.reveal_ready(instance)) {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.inner.cancel.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
            }
        }
    }

    /// [`stratus_proto::Request::PushLogs`]: output of `peer`'s instances.
    pub(crate) fn take_logs(&self, peer: NodeId, chunks: Vec<LogChunk>) -> Response {
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        // Only output of the peer's own instances, and of execs asked of
        // them (`<instance>#exec-<n>`); the rest is dropped.
        let owned: Vec<_> = self.inner.reader.read(|s| {
            chunks
                .into_iter()
                .filter(|c| crate::authz::may_push_log(s, &peer, &c.instance))
                .collect()
        });
        self.inner.logs.append(owned);
        Response::Ok
    }

    /// [`stratus_proto::Request::ReportExec`]: the progress of exec `n` in
    /// one of `peer`'s instances.
    pub(crate) async fn take_exec_report(
        &self,
        peer: NodeId,
        instance: String,
        n: u32,
        mut state: ExecState,
    ) -> Response {
        crate::bounds::bound_exec_state(&mut state);
        if !self.is_registered(&peer) {
            return not_member(&peer);
        }
        // Only a pending or running exec asked of the peer's own instance is
        // written (anything else would cost a Raft entry for nothing).
        let live = self
            .inner
            .reader
            .read(|s| crate::authz::may_report_exec(s, &peer, &instance, n));
        if !live {
            return Response::Ok;
        }
        match self
            .write(Command::ReportExec {
                instance,
                node: peer,
                n,
                state,
            })
            .await
        {
            Ok(_) => Response::Ok,
            Err(e) => error_response(e.code(), e),
        }
    }
}
