//! Service connections between nodes (see `stratus-control`'s `tunnels`):
//! this node keeps a *tunnel link* to every replica, over which replicas
//! open connections other nodes' containers make to the service instances
//! running here; it learns where its tenants' services run elsewhere
//! ([`sync_directory`]); and it opens relayed connections to them
//! ([`dial`]). Inside every relayed stream the two nodes run TLS between
//! their keys: the relaying replica sees ciphertext.

use std::sync::Arc;
use std::time::Duration;

use stratus_net::{Connection, Endpoint, Replicas};
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
        move |conn| serve(conn, table.clone(), ep.clone()),
        cancel,
    )
    .await;
}

/// Serves the streams a replica opens on this node's link until it ends.
async fn serve(conn: Connection, table: Arc<ServiceTable>, endpoint: Endpoint) {
    let links = table.links();
    links.insert(conn.clone());
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
            let Request::TunnelOpen {
                instance,
                port,
                from,
            } = req
            else {
                let _ = call
                    .respond(&error(
                        ErrorCode::BadRequest,
                        "a tunnel link serves tunnels only",
                    ))
                    .await;
                return;
            };
            let listing = crate::containers::container_id(&instance);
            // Only instances listed as services (running, not tasks).
            let target = match table.connect_listed(&listing, port) {
                Some(connecting) => connecting.await.map_err(|e| e.to_string()),
                None => Err(format!("no service instance {instance} runs here")),
            };
            let local = match target {
                Ok(s) => s,
                Err(why) => {
                    let _ = call.respond(&error(ErrorCode::NotFound, &why)).await;
                    return;
                }
            };
            let Ok(stream) = call.respond_and_stream(&Response::Ok).await else {
                return;
            };
            let mut sealed = match endpoint.seal_accept(stream, from).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%instance, error = %e, "tunnel refused");
                    return;
                }
            };
            let mut local = local;
            if let Err(e) = tokio::io::copy_bidirectional(&mut sealed, &mut local).await {
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

/// A connection to `port` of `instance` on `node`, relayed by a replica
/// this node has a link to, with TLS to `node`'s key inside.
pub async fn dial(
    table: &ServiceTable,
    instance: &str,
    node: NodeId,
    port: u16,
) -> std::io::Result<stratus_container::net::Conn> {
    let other = |m: String| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, m);
    let endpoint = table
        .endpoint()
        .ok_or_else(|| other("this node has no endpoint for tunnels yet".into()))?;
    let links = table.links();
    let mut last = String::from("no link to any replica");
    for replica in links.peers() {
        let Some(conn) = links.get(&replica) else {
            continue;
        };
        let req = Request::Tunnel {
            instance: instance.to_string(),
            port,
        };
        match conn.open_stream::<_, Response>(&req, OPEN_TIMEOUT).await {
            Ok((Response::Ok, stream)) => {
                let sealed = endpoint
                    .seal_dial(stream, node)
                    .await
                    .map_err(|e| other(e.to_string()))?;
                return Ok(Box::new(sealed));
            }
            Ok((Response::Error { message, .. }, _)) => last = message,
            Ok((r, _)) => last = format!("unexpected answer {}", r.kind()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(other(format!("{instance}: {last}")))
}
