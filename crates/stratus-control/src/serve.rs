//! Serving the node-to-node protocol: every request a replica receives,
//! from other replicas and from agents, is answered here. Who may ask what
//! is decided by [`crate::authz`] from the connection's authenticated key
//! before anything is done (see the table there).

use std::time::{Duration, Instant};

use stratus_net::{Endpoint, Reply};
use stratus_proto::{rpc, Request, Response};
use stratus_state::trusted::TrustCommand;
use stratus_state::Command;
use stratus_types::{ErrorCode, ImageRef, ModuleRef, NodeId, NodeStatus, Payload};

use crate::proposer::ProposeError;
use crate::{now_ms, resolve, Control, ControlError, ImageServer, VolumeServer, RPC_TIMEOUT};

impl Control {
    /// Answers an agent's volume request with `f` of the attached server,
    /// if `peer` may use `bucket/key` of `tenant` (to write, with `write`).
    async fn serve_volume(
        &self,
        peer: &NodeId,
        (tenant, bucket, key): (&str, &str, &str),
        write: bool,
        f: impl FnOnce(
            &dyn VolumeServer,
        )
            -> futures::future::BoxFuture<'static, Result<Response, (ErrorCode, String)>>,
    ) -> Response {
        if !self.uses_volume(peer, tenant, bucket, key, write) {
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: format!(
                    "{peer} runs no instance of a workload of {tenant} with a{} volume in {bucket}/{key}",
                    if write { " writable" } else { "" }
                ),
            };
        }
        let server = self.inner.volumes.lock().ok().and_then(|v| v.clone());
        let Some(server) = server else {
            return Response::Error {
                code: ErrorCode::Unavailable,
                message: "this replica serves no volumes".into(),
            };
        };
        match f(server.as_ref()).await {
            Ok(r) => r,
            Err((code, message)) => Response::Error { code, message },
        }
    }

    /// Whether `peer` is assigned a live instance (not ended, not lost: a
    /// replaced instance must not overwrite its replacement's data) of a
    /// workload of `tenant` whose spec (current, or previous during an
    /// update) declares a volume kept in `bucket/key` (writable, with
    /// `write`).
    fn uses_volume(
        &self,
        peer: &NodeId,
        tenant: &str,
        bucket: &str,
        key: &str,
        write: bool,
    ) -> bool {
        self.peer_runs(peer, tenant, true, |w| {
            [Some(&w.spec), w.previous.as_ref().map(|p| &p.0)]
                .into_iter()
                .flatten()
                .any(|spec| {
                    spec.image.iter().flat_map(|im| &im.volumes).any(|v| {
                        v.bucket.as_deref() == Some(bucket)
                            && v.object_key(&spec.name) == key
                            && !(write && v.read_only)
                    })
                })
        })
    }

    /// Whether `peer` is assigned an instance (a live one — not ended, not
    /// lost — with `live`) of a workload of `tenant` that `accept` accepts:
    /// what agent requests for image and volume data are authorized by.
    pub(crate) fn peer_runs(
        &self,
        peer: &NodeId,
        tenant: &str,
        live: bool,
        accept: impl Fn(&stratus_state::Workload) -> bool,
    ) -> bool {
        self.inner.reader.read(|s| {
            s.instances.values().any(|i| {
                i.node == *peer
                    && !(live
                        && (i.state.is_terminal() || i.state == stratus_state::InstanceState::Lost))
                    && s.workloads
                        .get(i.workload.as_str())
                        .is_some_and(|w| w.tenant == tenant && accept(w))
            })
        })
    }

    /// Answers [`Request::GetModuleChunks`]: only to a node assigned an
    /// instance of a workload of `tenant` running module `hash`.
    fn module_chunks(&self, peer: &NodeId, tenant: &str, hash: &str) -> Response {
        self.inner.reader.read(|s| {
            let holder = hash.parse::<ModuleRef>().ok().and_then(|m| {
                crate::authz::assigned_modules(s, peer).remove(&(tenant.to_string(), m.into()))
            });
            let Some(holder) = holder else {
                return Response::Error {
                    code: ErrorCode::Forbidden,
                    message: format!(
                        "{peer} is assigned no instance of a workload of {tenant} running module {hash}"
                    ),
                };
            };
            match s.module_data(&holder, hash) {
                Some((size, data)) => Response::ModuleChunks {
                    size,
                    chunks: data
                        .chunks
                        .iter()
                        .map(|c| stratus_proto::ModuleChunk {
                            id: c.id.0,
                            len: c.len,
                        })
                        .collect(),
                },
                None => Response::Error {
                    code: ErrorCode::NotFound,
                    message: format!("module {hash} of {tenant} is not stored as an object"),
                },
            }
        })
    }

    /// Answers an agent's image request with `f` of the attached server.
    async fn serve_image(
        &self,
        peer: &NodeId,
        allowed: bool,
        f: impl FnOnce(
            &dyn ImageServer,
        )
            -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>>,
    ) -> Response {
        if !allowed {
            return images_forbidden(peer);
        }
        let server = self.inner.images.lock().ok().and_then(|i| i.clone());
        let Some(server) = server else {
            return images_unavailable();
        };
        match f(server.as_ref()).await {
            Ok(bytes) => Response::Blob(bytes),
            Err((code, message)) => Response::Error { code, message },
        }
    }

    /// Whose store holds container image `image` run by a workload of
    /// `tenant` that `peer` is assigned an instance of (`None`: no such
    /// workload): an agent reads only the images of what it runs.
    fn image_holder(&self, peer: &NodeId, tenant: &str, image: &ImageRef) -> Option<String> {
        self.inner.reader.read(|s| {
            crate::authz::assigned_modules(s, peer)
                .remove(&(tenant.to_string(), Payload::Image(image.clone())))
        })
    }

    pub(crate) async fn accept_loop(self, endpoint: Endpoint) {
        loop {
            let conn = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                c = endpoint.accept() => match c { Some(c) => c, None => return },
            };
            let me = self.clone();
            let bound = self.clone();
            let link = conn.clone();
            tokio::spawn(stratus_net::serve_connection_streams(
                conn,
                move |peer| bound.max_frame(&peer),
                move |peer, req: Request| {
                    let me = me.clone();
                    let link = link.clone();
                    async move {
                        match req {
                            Request::PieceLink => {
                                Reply::Frame(me.take_link(&PIECE_LINKS, peer, link))
                            }
                            Request::TunnelLink => Reply::Frame(me.take_link(
                                &crate::tunnels::TUNNEL_LINKS,
                                peer,
                                link,
                            )),
                            // Who may ask is decided by `tunnel` (a node
                            // running an instance of the tenant).
                            Request::Tunnel { instance, port } => {
                                me.tunnel(peer, instance, port).await
                            }
                            // The asker is told where the instance's node
                            // is, the node where the asker's packets come
                            // from: this connection's address.
                            Request::Punch { instance, local } => Reply::Frame(
                                me.punch(peer, (link.remote_addr(), local), &instance).await,
                            ),
                            req => Reply::Frame(me.handle(peer, req).await),
                        }
                    }
                },
            ));
        }
    }

    /// Handles one request from an authenticated peer: who may send it is
    /// checked first ([`Control::refuse`]), then each request goes to the
    /// function of its family (Raft and replicas, agents' sessions, content
    /// agents read and write, agents' reports in `agent_reports`).
    pub async fn handle(&self, peer: NodeId, req: Request) -> Response {
        if let Some(refused) = self.refuse(&peer, &req).await {
            return refused;
        }
        let raft = &self.inner.raft;
        match req {
            // Raft and replica-to-replica.
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Forward(cmd) => self.forwarded_write(cmd).await,
            Request::ForwardHeartbeat { node } => match self.heartbeat(node).await {
                Ok(()) => Response::Ok,
                Err(e) => error_response(e.code(), e),
            },
            Request::Status => Response::Status(self.local_status()),
            Request::GetKek => self.answer_kek(&peer),
            Request::ChangeMembership(change) => self.forwarded_membership(change).await,
            Request::ReadLogs { instance, offset } => {
                let (offset, data, known) = self.inner.logs.read(&instance, offset);
                Response::Logs {
                    offset,
                    data,
                    known,
                }
            }
            // An agent's session.
            Request::Register { info, join_token } => self.register(peer, info, join_token).await,
            Request::ClusterProof => self.cluster_proof(),
            Request::Heartbeat => match self.heartbeat(peer).await {
                Ok(()) => self.welcome(),
                Err(e) => error_response(e.code(), e),
            },
            Request::Peers => self.answer_peers(&peer),
            Request::Assignments {
                after_index,
                wait_ms,
            } => {
                if !self.is_registered(&peer) {
                    return not_member(&peer);
                }
                let (index, assignments) = self.assignments(peer, after_index, wait_ms).await;
                Response::Assignments { index, assignments }
            }
            // What agents read and write: modules, images, volumes, task I/O.
            Request::GetModule { hash } => self.module(&peer, &hash),
            Request::GetModuleChunks { tenant, hash } => self.module_chunks(&peer, &tenant, &hash),
            Request::GetFlist { tenant, image } => self.flist(&peer, tenant, &image).await,
            Request::GetChunk { tenant, id } => {
                let holder = match self.chunk_holder(&peer, &tenant, &id).await {
                    Ok(holder) => holder,
                    Err(answer) => return answer,
                };
                let allowed = holder.is_some();
                self.serve_image(&peer, allowed, |i| i.chunk(holder.unwrap_or(tenant), id))
                    .await
            }
            Request::GetVolume {
                tenant,
                bucket,
                key,
                version,
                offset,
                len,
            } => {
                let target = (tenant.as_str(), bucket.as_str(), key.as_str());
                let (t, b, k) = (tenant.clone(), bucket.clone(), key.clone());
                self.serve_volume(&peer, target, false, |v| {
                    v.read_volume(t, b, k, version, offset, len)
                })
                .await
            }
            Request::PutVolume {
                tenant,
                bucket,
                key,
                step,
            } => {
                let target = (tenant.as_str(), bucket.as_str(), key.as_str());
                let (t, b, k) = (tenant.clone(), bucket.clone(), key.clone());
                self.serve_volume(&peer, target, true, |v| v.put_volume(t, b, k, step))
                    .await
            }
            r @ (Request::ListInput { .. }
            | Request::GetInput { .. }
            | Request::PutOutput { .. }) => self.serve_task_io(peer, r).await,
            // What agents report.
            Request::Report(reports) => self.take_reports(peer, reports).await,
            Request::PushLogs(chunks) => self.take_logs(peer, chunks),
            Request::ReportUsage(reports) => self.take_usage(peer, reports).await,
            Request::SetOwnOffer { offer, task } => self.set_own_offer(peer, offer, task).await,
            Request::TrustTerms { instance } => self.trust_terms(peer, &instance),
            Request::CommitResult {
                instance,
                commitment,
            } => {
                let cmd = TrustCommand::Commit {
                    instance,
                    node: peer,
                    commitment,
                    now_ms: now_ms(),
                };
                self.trust_step(peer, cmd).await
            }
            Request::RevealResult {
                instance,
                parts,
                salt,
            } => {
                self.reveal_when_ready(&instance).await;
                let cmd = TrustCommand::Reveal {
                    instance,
                    node: peer,
                    parts,
                    salt,
                };
                self.trust_step(peer, cmd).await
            }
            Request::ReportExec { instance, n, state } => {
                self.take_exec_report(peer, instance, n, state).await
            }
            Request::PieceLink
            | Request::TunnelLink
            | Request::Tunnel { .. }
            | Request::Punch { .. } => Response::Error {
                code: ErrorCode::BadRequest,
                message: "links and tunnels are taken only on the connection they arrive on".into(),
            },
            Request::TunnelOpen { .. } | Request::PunchOpen { .. } => Response::Error {
                code: ErrorCode::BadRequest,
                message: "replicas open tunnels on nodes' links; they take none".into(),
            },
            Request::ServiceDirectory => self.service_directory(&peer),
            Request::InstanceNetwork { instance } => {
                self.of_instance(&peer, &instance, |s, w| Response::Network(s.network_of(w)))
            }
            Request::InstanceExtensions { instance } => {
                self.of_instance(&peer, &instance, |s, w| {
                    Response::Extensions(stratus_spec::SelfDescribing(s.extensions_of(w)))
                })
            }
        }
    }

    /// Keeps `conn`, which `peer` dialed, as `peer`'s link of `kind` if
    /// `kind.may` lets it (and only as itself: `peer` is the key the
    /// connection proved).
    pub(crate) fn take_link(
        &self,
        kind: &LinkKind,
        peer: NodeId,
        conn: stratus_net::Connection,
    ) -> Response {
        if !self.inner.reader.read(|s| (kind.may)(s, &peer)) {
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: format!(
                    "node {} is not a registered {} of this cluster",
                    peer.short(),
                    kind.who
                ),
            };
        }
        (kind.links)(self).insert(conn);
        tracing::debug!(node = %peer.short(), link = kind.name, "link taken");
        Response::Ok
    }

    /// Closes the links of `kind` of nodes `kind.may` no longer lets link
    /// (a ban ends a node's links on every replica).
    pub(crate) fn prune_links(&self, kind: &LinkKind) {
        let links = (kind.links)(self);
        self.inner
            .reader
            .read(|s| links.retain(|id| (kind.may)(s, id)));
    }

    /// Why `peer` may not send `req`, if it may not. Raft RPCs: from
    /// members, or from replicas a trusted replica vouches for (a lagging
    /// or uninitialized replica; see `authz`). Other replica-to-replica
    /// requests, and logs (instances' output and exec output go only to
    /// replicas), only from members of the current Raft membership (the
    /// connection's key proves who speaks).
    async fn refuse(&self, peer: &NodeId, req: &Request) -> Option<Response> {
        let raft_rpc = matches!(
            req,
            Request::AppendEntries(_) | Request::Vote(_) | Request::InstallSnapshot(_)
        );
        if raft_rpc {
            if let Err(message) = self.may_send_raft(peer).await {
                return Some(Response::Error {
                    code: ErrorCode::Forbidden,
                    message,
                });
            }
        }
        let replicas_only = matches!(
            req,
            Request::Forward(_)
                | Request::ForwardHeartbeat { .. }
                | Request::Status
                | Request::ChangeMembership(_)
                | Request::ReadLogs { .. }
                | Request::GetKek
        );
        (replicas_only && !self.is_member(peer)).then(|| not_member(peer))
    }

    /// A write another replica forwarded to this one as the leader.
    async fn forwarded_write(&self, cmd: Command) -> Response {
        if self.inner.disk.check(&cmd).is_err() {
            let low = self.inner.disk.status();
            return error_response(ErrorCode::InsufficientStorage, ControlError::DiskLow(low));
        }
        match self.inner.proposer.propose(cmd).await {
            Ok((index, result)) => Response::Forwarded { index, result },
            Err(ProposeError::NotLeader(_)) => Response::Error {
                code: ErrorCode::NoLeader,
                message: "this replica is no longer the leader".into(),
            },
            Err(ProposeError::Failed(e)) => error_response(ErrorCode::Internal, e),
            Err(ProposeError::TooLarge { size }) => error_response(
                ErrorCode::TooLarge,
                ControlError::TooLarge {
                    size,
                    limit: crate::proposer::MAX_COMMAND_BYTES,
                },
            ),
        }
    }

    /// A membership change another replica relayed to this one as the leader.
    async fn forwarded_membership(&self, change: stratus_proto::MembershipChange) -> Response {
        if !self.is_leader() {
            return Response::Error {
                code: ErrorCode::NoLeader,
                message: "this replica is not the leader".into(),
            };
        }
        match self.change_membership_local(change).await {
            Ok(()) => Response::Ok,
            Err(e) => error_response(e.code(), e),
        }
    }

    /// Who the replicas are: for replicas and registered nodes.
    fn answer_peers(&self, peer: &NodeId) -> Response {
        if !self.is_member(peer) && !self.is_registered(peer) {
            return not_member(peer);
        }
        Response::Peers {
            leader: self.leader(),
            peers: self.peers(),
        }
    }

    /// A module of the first layouts, whole: for replicas and nodes
    /// assigned an instance of a workload running it.
    fn module(&self, peer: &NodeId, hash: &str) -> Response {
        if !self.may_read_module(peer, hash) {
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: format!(
                    "{peer} is assigned no instance of a workload running module {hash}"
                ),
            };
        }
        match self.inner.reader.read(|s| s.modules.get(hash).cloned()) {
            Some(bytes) => Response::Module(bytes),
            None => Response::Error {
                code: ErrorCode::NotFound,
                message: format!("module {hash} is not stored"),
            },
        }
    }

    /// The flist of a pinned image one of `peer`'s workloads runs.
    async fn flist(&self, peer: &NodeId, tenant: String, image: &str) -> Response {
        // A string that is no image reference pins nothing.
        let Some(pinned) = image.parse::<ImageRef>().ok() else {
            return images_forbidden(peer);
        };
        match self.image_holder(peer, &tenant, &pinned) {
            Some(holder) => {
                self.serve_image(peer, true, |i| i.flist(holder, pinned))
                    .await
            }
            None => images_forbidden(peer),
        }
    }

    /// What `node` should run: its instances that are not over, with specs.
    /// Waits up to `wait_ms` for the applied index to pass `after_index`.
    async fn assignments(
        &self,
        node: NodeId,
        after_index: u64,
        wait_ms: u64,
    ) -> (u64, Vec<stratus_proto::Assignment>) {
        let mut rx = self.inner.reader.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(30_000));
        while *rx.borrow_and_update() <= after_index {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.inner.cancel.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
            }
        }
        self.inner.reader.read_indexed(|s| {
            s.instances
                .values()
                .filter(|i| {
                    i.node == node
                        && !i.state.is_terminal()
                        && i.state != stratus_state::InstanceState::Lost
                })
                .filter_map(|i| {
                    let w = s.workloads.get(i.workload.as_str())?;
                    let (spec, module) = match &w.previous {
                        Some((spec, module)) if i.generation != w.generation => {
                            (spec.clone(), module.clone())
                        }
                        _ => {
                            let mut spec = w.spec.clone();
                            // A paid dataset is the task's `/input`.
                            if let Some((_, folder)) = s.dataset_input(w.id.as_str()) {
                                spec.input = Some(folder.clone());
                            }
                            (spec, w.module.clone())
                        }
                    };
                    Some(stratus_proto::Assignment {
                        instance: i.clone(),
                        spec,
                        module,
                    })
                })
                .collect()
        })
    }

    /// Output of an instance from `offset` on: from this replica if its agent
    /// sends logs here, else from the replica that has them.
    pub async fn read_logs(
        &self,
        instance: &str,
        offset: u64,
    ) -> Result<(u64, Vec<u8>), ControlError> {
        let (off, data, known) = self.inner.logs.read(instance, offset);
        if known {
            return Ok((off, data));
        }
        for p in self.peers().into_iter().filter(|p| p.id != self.inner.id) {
            let Ok(addr) = resolve(&p.addr).await else {
                continue;
            };
            let req = rpc::ReadLogs {
                instance: instance.to_string(),
                offset,
            };
            if let Ok(logs) = self
                .inner
                .pool
                .rpc(addr, Some(p.id), req, RPC_TIMEOUT)
                .await
            {
                if logs.known {
                    return Ok((logs.offset, logs.data));
                }
            }
        }
        Ok((offset, Vec::new()))
    }

    pub(crate) fn welcome(&self) -> Response {
        Response::Welcome {
            heartbeat_interval_ms: self.inner.cfg.heartbeat_interval.as_millis() as u64,
            peers: self.peers(),
        }
    }

    /// Records that `node` is alive: on the leader, in the failure detector
    /// (reviving a lost node through the log); on a follower, relayed to the leader.
    pub(crate) async fn heartbeat(&self, node: NodeId) -> Result<(), ControlError> {
        let status = self
            .inner
            .reader
            .read(|s| s.nodes.get(&node).map(|n| (n.status, n.banned)));
        if let Some((_, true)) = status {
            return Err(ControlError::Remote {
                code: ErrorCode::Forbidden,
                message: format!("node {node} is banned from this cluster"),
            });
        }
        let Some((status, _)) = status else {
            return Err(ControlError::Remote {
                code: ErrorCode::NotFound,
                message: format!("node {node} is not registered; register again"),
            });
        };
        if self.is_leader() {
            if let Ok(mut d) = self.inner.detector.lock() {
                d.heard(node, Instant::now());
            }
            if status == NodeStatus::Lost {
                tracing::info!(node = %node.short(), "node is back");
                self.write(Command::SetNodeStatus {
                    id: node,
                    status: NodeStatus::Ready,
                    now_ms: now_ms(),
                })
                .await?;
            }
            return Ok(());
        }
        self.call_leader(rpc::ForwardHeartbeat { node }, RPC_TIMEOUT)
            .await
    }
}

pub(crate) fn error_response(code: ErrorCode, e: impl std::fmt::Display) -> Response {
    Response::Error {
        code,
        message: e.to_string(),
    }
}

/// The answer to a replica-only request from another peer.
pub(crate) fn not_member(peer: &NodeId) -> Response {
    Response::Error {
        code: ErrorCode::Forbidden,
        message: format!("{peer} is not a control replica of this cluster"),
    }
}

pub(crate) fn images_forbidden(peer: &NodeId) -> Response {
    Response::Error {
        code: ErrorCode::Forbidden,
        message: format!("{peer} runs no instance of this image"),
    }
}

pub(crate) fn images_unavailable() -> Response {
    Response::Error {
        code: ErrorCode::Unavailable,
        message: "this replica serves no images".into(),
    }
}

/// A kind of link nodes dial to a replica for calls the other way.
pub(crate) struct LinkKind {
    /// For logs.
    pub(crate) name: &'static str,
    /// Who may keep one, for the refusal.
    pub(crate) who: &'static str,
    /// The replica's links of this kind.
    pub(crate) links: fn(&Control) -> &stratus_net::Links,
    /// Whether a node may keep one.
    pub(crate) may: fn(&stratus_state::State, &NodeId) -> bool,
}

/// Piece links: the object store sends a storage node's piece requests
/// over it; only registered, unbanned storage nodes.
pub(crate) const PIECE_LINKS: LinkKind = LinkKind {
    name: "piece",
    who: "storage node",
    links: |c| &c.inner.piece_links,
    may: may_link,
};

/// Whether `node` may keep a piece link to a replica: a registered,
/// unbanned storage node.
fn may_link(s: &stratus_state::State, node: &NodeId) -> bool {
    s.nodes
        .get(node)
        .is_some_and(|n| !n.banned && n.info.storage.is_some())
}
