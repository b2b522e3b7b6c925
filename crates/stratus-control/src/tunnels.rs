//! Service connections between nodes, relayed by replicas.
//!
//! A container on node A that connects to a service instance on node B
//! gets there through a replica: A asks the replica for a
//! [`Request::Tunnel`], the replica opens a [`Request::TunnelOpen`] stream
//! on B's *tunnel link* (a connection B dialed to it, so B may sit behind a
//! NAT), and copies bytes between the two streams. A and B run TLS between
//! their node keys inside, so the replica carries ciphertext it cannot read
//! or alter. The replica decides who may connect: only a node that runs an
//! instance of the service's tenant, only to a running instance of one of
//! that tenant's services. Where the services run is told to each node for
//! the tenants it runs instances of ([`Request::ServiceDirectory`]).
//!
//! Two nodes that can exchange UDP packets skip the relay: A asks the
//! replica for an introduction ([`Request::Punch`], checked like a relayed
//! connection), the replica tells B on its link who will come and from
//! where ([`Request::PunchOpen`]) and tells A where B's packets come from;
//! B sends packets towards A (opening its NAT), and A dials B over QUIC,
//! both keys pinned. B then serves A's connections to the introduced
//! tenant's services for a while, on its own (see `stratus-agent`'s
//! `direct`).

use std::time::Duration;

use stratus_net::Reply;
use stratus_proto::{Request, Response, ServiceEntry, MAX_DIRECTORY};
use stratus_spec::WorkloadKind;
use stratus_state::{InstanceState, State};
use stratus_types::{ErrorCode, NodeId};

use crate::serve::LinkKind;
use crate::Control;

/// How long the instance's node may take to connect to the service.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the instance's node may take to answer an introduction.
const PUNCH_TIMEOUT: Duration = Duration::from_secs(5);

fn refused(code: ErrorCode, message: String) -> Response {
    Response::Error { code, message }
}

/// Whether `node` may keep a tunnel link: a registered, unbanned node.
pub(crate) fn may_tunnel_link(s: &State, node: &NodeId) -> bool {
    s.nodes.get(node).is_some_and(|n| !n.banned)
}

/// Whether instance `i` is a running instance of a service (a workload
/// that keeps running and so has a name to be reached by).
fn serving(s: &State, i: &stratus_state::Instance) -> bool {
    i.state == InstanceState::Running
        && s.workloads
            .get(i.workload.as_str())
            .is_some_and(|w| !w.stopped && w.spec.kind != WorkloadKind::Task)
}

/// The tenants `node` runs instances of (not ended).
fn tenants_on(s: &State, node: &NodeId) -> std::collections::BTreeSet<String> {
    s.instances
        .values()
        .filter(|i| i.node == *node && i.is_live())
        .map(|i| i.workload.tenant().to_string())
        .collect()
}

/// Where the services of the tenants `node` runs instances of run.
pub(crate) fn directory(s: &State, node: &NodeId) -> Vec<ServiceEntry> {
    let tenants = tenants_on(s, node);
    s.instances
        .values()
        .filter(|i| tenants.contains(i.workload.tenant()) && serving(s, i))
        .take(MAX_DIRECTORY)
        .map(|i| ServiceEntry {
            tenant: i.workload.tenant().to_string(),
            name: i.workload.name().to_string(),
            instance: i.id.clone(),
            node: i.node,
        })
        .collect()
}

/// The node `from` may reach `instance` on and the instance's tenant, or
/// why not.
pub(crate) fn may_connect(
    s: &State,
    from: &NodeId,
    instance: &str,
) -> Result<(NodeId, String), String> {
    let i = s
        .instances
        .get(instance)
        .filter(|i| serving(s, i))
        .ok_or_else(|| format!("no running service instance {instance}"))?;
    if !tenants_on(s, from).contains(i.workload.tenant()) {
        // Said the same way as a missing instance: whether another
        // tenant's instance exists is not this node's business.
        return Err(format!("no running service instance {instance}"));
    }
    Ok((i.node, i.workload.tenant().to_string()))
}

/// At most [`stratus_proto::MAX_LOCAL_ADDRS`] local addresses, each of a
/// sane length (what one node says of itself, passed to another).
fn bounded(mut local: Vec<String>) -> Vec<String> {
    local.truncate(stratus_proto::MAX_LOCAL_ADDRS);
    local.retain(|a| a.len() <= 64);
    local
}

/// Tunnel links: replicas open other nodes' service connections over them;
/// any registered, unbanned node may keep one.
pub(crate) const TUNNEL_LINKS: LinkKind = LinkKind {
    name: "tunnel",
    who: "node",
    links: |c| &c.inner.tunnel_links,
    may: may_tunnel_link,
};

impl Control {
    /// Answers [`Request::ServiceDirectory`].
    pub(crate) fn service_directory(&self, peer: &NodeId) -> Response {
        Response::Directory(self.inner.reader.read(|s| directory(s, peer)))
    }

    /// Answers [`Request::InstanceNetwork`] and
    /// [`Request::InstanceExtensions`]: `answer` of the workload of an
    /// instance `peer` runs (the same refusal as for a missing one
    /// otherwise).
    pub(crate) fn of_instance(
        &self,
        peer: &NodeId,
        instance: &str,
        answer: impl FnOnce(&State, &str) -> Response,
    ) -> Response {
        self.inner.reader.read(
            |s| match s.instances.get(instance).filter(|i| i.node == *peer) {
                Some(i) => answer(s, i.workload.as_str()),
                None => refused(
                    ErrorCode::NotFound,
                    format!("no instance {instance} is assigned to this node"),
                ),
            },
        )
    }

    /// Opens a stream to `port` of `instance` on `node`'s tunnel link, for
    /// TLS from `from`'s key inside.
    async fn open_on_link(
        &self,
        node: NodeId,
        instance: &str,
        port: u16,
        from: NodeId,
    ) -> Result<stratus_net::Stream, (ErrorCode, String)> {
        let Some(link) = self.inner.tunnel_links.get(&node) else {
            return Err((
                ErrorCode::Unavailable,
                format!("node {} has no tunnel link to this replica", node.short()),
            ));
        };
        let open = Request::TunnelOpen {
            instance: instance.to_string(),
            port,
            from,
        };
        match link.open_stream::<_, Response>(&open, OPEN_TIMEOUT).await {
            Ok((Response::Ok, stream)) => Ok(stream),
            Ok((Response::Error { code, message }, _)) => Err((code, message)),
            Ok((other, _)) => Err((
                ErrorCode::Internal,
                format!("node {} answered {}", node.short(), other.kind()),
            )),
            Err(e) => Err((
                ErrorCode::Unavailable,
                format!("node {}: {e}", node.short()),
            )),
        }
    }

    /// Where the ingress sends requests for `host`: the port of the
    /// workload exposed as `host` and its running instances.
    pub fn ingress_route(&self, host: &str) -> Option<(u16, Vec<String>)> {
        self.inner.reader.read(|s| {
            let (w, port) = s.exposed_as(host)?;
            let running = s
                .instances
                .values()
                .filter(|i| i.workload == w.id && serving(s, i))
                .map(|i| i.id.clone())
                .collect();
            Some((port, running))
        })
    }

    /// A connection from this replica to `port` of service instance
    /// `instance` (the ingress's), with TLS to its node's key inside.
    pub async fn dial_instance(
        &self,
        instance: &str,
        port: u16,
    ) -> Result<stratus_net::SealedClient<stratus_net::Stream>, String> {
        let node = self
            .inner
            .reader
            .read(|s| {
                s.instances
                    .get(instance)
                    .filter(|i| serving(s, i))
                    .map(|i| i.node)
            })
            .ok_or_else(|| format!("no running service instance {instance}"))?;
        let stream = self
            .open_on_link(node, instance, port, self.inner.id)
            .await
            .map_err(|(_, m)| m)?;
        self.inner
            .pool
            .endpoint()
            .seal_dial(stream, node)
            .await
            .map_err(|e| format!("node {}: {e}", node.short()))
    }

    /// Answers [`Request::Punch`]: introduces `peer`, whose packets come
    /// from `seen` (and who says it has the `local` addresses on its own
    /// network), to the node of `instance` (if `peer` may reach it, as for
    /// a relayed connection) and tells `peer` where that node's come from,
    /// and its local addresses. Both public addresses are the ones this
    /// replica sees, so both nodes may be behind NATs; the node sends the
    /// first packets (its NAT then lets `peer`'s in) before `peer` is
    /// answered.
    pub(crate) async fn punch(
        &self,
        peer: NodeId,
        (seen, local): (std::net::SocketAddr, Vec<String>),
        instance: &str,
    ) -> Response {
        let (node, tenant) = match self.inner.reader.read(|s| may_connect(s, &peer, instance)) {
            Ok(found) => found,
            Err(why) => return refused(ErrorCode::NotFound, why),
        };
        let Some(link) = self.inner.tunnel_links.get(&node) else {
            return refused(
                ErrorCode::Unavailable,
                format!("node {} has no tunnel link to this replica", node.short()),
            );
        };
        let open = Request::PunchOpen {
            from: peer,
            addr: seen.to_string(),
            tenant,
            local: bounded(local),
        };
        match link.call::<_, Response>(&open, PUNCH_TIMEOUT).await {
            Ok(Response::Punched { local, .. }) => Response::Punched {
                addr: link.remote_addr().to_string(),
                local: bounded(local),
            },
            Ok(Response::Error { code, message }) => refused(code, message),
            Ok(other) => refused(
                ErrorCode::Internal,
                format!("node {} answered {}", node.short(), other.kind()),
            ),
            Err(e) => refused(
                ErrorCode::Unavailable,
                format!("node {}: {e}", node.short()),
            ),
        }
    }

    /// Relays a connection of `peer`'s container to `port` of `instance`.
    pub(crate) async fn tunnel(
        &self,
        peer: NodeId,
        instance: String,
        port: u16,
    ) -> Reply<Response> {
        let node = match self.inner.reader.read(|s| may_connect(s, &peer, &instance)) {
            Ok((node, _)) => node,
            Err(why) => return Reply::Frame(refused(ErrorCode::NotFound, why)),
        };
        let far = match self.open_on_link(node, &instance, port, peer).await {
            Ok(far) => far,
            Err((code, message)) => return Reply::Frame(refused(code, message)),
        };
        Reply::Stream(
            Response::Ok,
            Box::new(move |near| {
                Box::pin(async move {
                    let (mut near, mut far) = (near, far);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut near, &mut far).await {
                        tracing::debug!(%instance, error = %e, "relayed connection ended");
                    }
                })
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that says it has many addresses, or huge ones, passes on at
    /// most a few of a sane length.
    #[test]
    fn what_a_node_says_of_its_addresses_is_bounded() {
        let said: Vec<String> = (0..10)
            .map(|i| format!("192.168.1.{i}:7000"))
            .chain(["x".repeat(1 << 20)])
            .collect();
        let kept = bounded(said);
        assert_eq!(kept.len(), stratus_proto::MAX_LOCAL_ADDRS);
        assert!(kept.iter().all(|a| a.len() <= 64));
        let huge = bounded(vec!["x".repeat(65), "10.0.0.1:1".into()]);
        assert_eq!(huge, vec!["10.0.0.1:1".to_string()]);
    }
}
