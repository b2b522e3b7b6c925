//! Service connections between nodes (see `stratus-control`'s `tunnels`):
//! this node keeps a *tunnel link* to every replica, over which replicas
//! open connections other nodes' containers make to the service instances
//! running here; it learns where its tenants' services run elsewhere
//! ([`sync_directory`]); and it opens relayed connections to them
//! ([`dial`]). Inside every relayed stream the two nodes run TLS between
//! their keys: the relaying replica sees ciphertext. Nodes that can reach
//! each other skip the relay ([`crate::direct`]).

use std::sync::Arc;
use std::time::Duration;

use stratus_net::{Connection, Endpoint, Links, Replicas};
use stratus_proto::{rpc, Request, Response};
use stratus_types::{ErrorCode, NodeId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::containers::ContainerHost;
use crate::services::ServiceTable;

/// Bound of the directory request.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the directory of services is asked for.
const DIRECTORY_EVERY: Duration = Duration::from_secs(1);
/// Least time between two directory requests.
const DIRECTORY_MIN_GAP: Duration = Duration::from_millis(100);
/// How long opening a relayed connection may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Keeps a tunnel link to every replica in `replicas` until `cancel`, and
/// serves the connections replicas open on them to this node's services.
pub async fn keep_links(
    endpoint: Endpoint,
    table: Arc<ServiceTable>,
    replicas: watch::Receiver<Replicas>,
    cancel: CancellationToken,
) {
    let ep = endpoint.clone();
    stratus_net::keep_links(
        endpoint,
        replicas,
        "tunnel",
        |conn| conn.ask_link(Request::TunnelLink),
        move |conn| {
            table.links().insert(conn.clone());
            serve(conn, table.clone(), ep.clone(), Via::Link)
        },
        cancel,
    )
    .await;
}

/// What a connection whose streams this node serves is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Via {
    /// A tunnel link to a replica: it opens connections it decided other
    /// nodes may make (TLS from that node inside) and introduces peers.
    Link,
    /// A direct connection a peer introduced to this node dialed: it
    /// opens connections to the services of the tenants it was
    /// introduced for, itself.
    Direct,
}

/// Serves the streams opened on `conn` until it ends.
pub(crate) async fn serve(
    conn: Connection,
    table: Arc<ServiceTable>,
    endpoint: Endpoint,
    via: Via,
) {
    let peer = conn.remote_id();
    loop {
        let mut call = match conn.accept_call().await {
            Ok(Some(call)) => call,
            Ok(None) | Err(_) => break,
        };
        let (table, endpoint) = (table.clone(), endpoint.clone());
        tokio::spawn(async move {
            let Ok(req) = call.read::<Request>().await else {
                return;
            };
            let (instance, port, from) = match (req, via) {
                (
                    Request::TunnelOpen {
                        instance,
                        port,
                        from,
                    },
                    Via::Link,
                ) => (instance, port, from),
                // Over a direct connection the peer is who its key says.
                (Request::TunnelOpen { instance, port, .. }, Via::Direct) => (instance, port, peer),
                (
                    Request::PunchOpen {
                        from,
                        addr,
                        tenant,
                        local,
                    },
                    Via::Link,
                ) => {
                    let answer = crate::direct::punch_open(&table, from, (&addr, &local), &tenant);
                    let _ = call.respond(&answer).await;
                    return;
                }
                _ => {
                    let _ = call
                        .respond(&error(
                            ErrorCode::BadRequest,
                            "a tunnel link serves tunnels and introductions only",
                        ))
                        .await;
                    return;
                }
            };
            let listing = crate::containers::container_id(&instance);
            let now = std::time::Instant::now();
            // Only instances listed as services (running, not tasks); over
            // a direct connection, of a tenant the peer was introduced for.
            let may = |tenant: &str| via == Via::Link || table.direct().permits(&from, tenant, now);
            let target = match table.connect_listed(&listing, port, may) {
                Some(connecting) => connecting.await.map_err(|e| e.to_string()),
                None => Err(format!("no service instance {instance} runs here")),
            };
            let mut local = match target {
                Ok(s) => s,
                Err(why) => {
                    let _ = call.respond(&error(ErrorCode::NotFound, &why)).await;
                    return;
                }
            };
            let Ok(mut stream) = call.respond_and_stream(&Response::Ok).await else {
                return;
            };
            let ended = match via {
                Via::Direct => tokio::io::copy_bidirectional(&mut stream, &mut local).await,
                Via::Link => match endpoint.seal_accept(stream, from).await {
                    Ok(mut sealed) => tokio::io::copy_bidirectional(&mut sealed, &mut local).await,
                    Err(e) => {
                        tracing::debug!(%instance, error = %e, "tunnel refused");
                        return;
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!(%instance, error = %e, "tunnel ended");
            }
        });
    }
}

fn error(code: ErrorCode, message: &str) -> Response {
    Response::Error {
        code,
        message: message.to_string(),
    }
}

/// Asks `conn`'s replica where the services of the tenants this node runs
/// instances of run, and keeps the answer: every second while a container
/// runs here (nothing else looks names up), and at once when a container
/// looks up a name not known yet (at most every [`DIRECTORY_MIN_GAP`]),
/// until `cancel`.
pub async fn sync_directory(conn: Connection, host: Arc<ContainerHost>, cancel: CancellationToken) {
    let table = host.services();
    let me = table.node();
    loop {
        if !host.executor().running().is_empty() {
            match conn.rpc(rpc::ServiceDirectory, CALL_TIMEOUT).await {
                Ok(entries) => table.set_remote(entries.into_iter().filter(|e| Some(e.node) != me)),
                Err(e) => tracing::debug!(error = %e, "service directory"),
            }
        }
        tokio::time::sleep(DIRECTORY_MIN_GAP).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = tokio::time::sleep(DIRECTORY_EVERY) => {}
            () = table.wanted() => {}
        }
        if conn.is_closed() {
            return;
        }
    }
}

/// A connection to `port` of `tenant`'s `instance` on `node`: over the
/// direct connection to `node` if one is up, else relayed by a replica
/// this node has a link to, with TLS to `node`'s key inside (and an
/// introduction to `node` asked in the background, so that the next
/// connections may go direct).
pub async fn dial(
    table: &Arc<ServiceTable>,
    tenant: &str,
    instance: &str,
    node: NodeId,
    port: u16,
) -> std::io::Result<stratus_container::net::Conn> {
    let other = |m: String| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, m);
    let endpoint = table
        .endpoint()
        .ok_or_else(|| other("this node has no endpoint for tunnels yet".into()))?;
    let direct = table.direct();
    let now = std::time::Instant::now();
    let mut opened = None;
    if let Some(conn) = direct.usable(&node, tenant, now) {
        match crate::direct::open(&conn, endpoint.node_id(), instance, port, OPEN_TIMEOUT).await {
            Ok(stream) => opened = Some(stream),
            Err(why) => {
                tracing::debug!(peer = %node.short(), %why, "direct connection refused; relayed");
                direct.forget(&node, tenant);
            }
        }
    }
    crate::direct::introduce_if_due(table, tenant, instance, node, now);
    if let Some(stream) = opened {
        return Ok(Box::new(stream));
    }
    let stream = first_replica(table.links(), |conn| async move {
        let req = Request::Tunnel {
            instance: instance.to_string(),
            port,
        };
        match conn.open_stream::<_, Response>(&req, OPEN_TIMEOUT).await {
            Ok((Response::Ok, stream)) => Ok(stream),
            Ok((Response::Error { message, .. }, _)) => Err(message),
            Ok((r, _)) => Err(format!("unexpected answer {}", r.kind())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|last| other(format!("{instance}: {last}")))?;
    let sealed = endpoint
        .seal_dial(stream, node)
        .await
        .map_err(|e| other(e.to_string()))?;
    Ok(Box::new(sealed))
}

/// The first answer `ask` gets from this node's replicas, over its links
/// to them in turn, or the last reason none answered.
pub(crate) async fn first_replica<T, F, Fut>(links: &Links, ask: F) -> Result<T, String>
where
    F: Fn(Connection) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::from("no link to any replica");
    for replica in links.peers() {
        let Some(conn) = links.get(&replica) else {
            continue;
        };
        match ask(conn).await {
            Ok(answer) => return Ok(answer),
            Err(why) => last = why,
        }
    }
    Err(last)
}
