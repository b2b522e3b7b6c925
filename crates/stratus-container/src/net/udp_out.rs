//! Outbound UDP of a container.
//!
//! Every datagram to an address outside the container is redirected (rules
//! in its namespace) to `127.0.0.1:`[`PROXY_PORT`] over UDP, where the
//! agent asks the namespace's conntrack table where it was going
//! ([`super::conntrack`]) and routes it as a TCP connection is routed
//! ([`super::intercept::route`]): to an address the egress policy allows,
//! from the node, over a socket of its own per flow; anything else
//! (refused addresses, the tenant's services, which take TCP) is dropped.
//! Answers are sent back from the redirected socket, so conntrack gives
//! them the destination's address as their source: the container sees its
//! peer answer. A flow is the container's socket as the proxy sees it
//! (the rules give each of the container's flows its own source port), so
//! one socket of the container may talk to many peers. Flows are relayed
//! by [`crate::udp::relay`]: at most [`MAX_FLOWS`] per container, at most
//! [`MAX_NEW_FLOWS_PER_SEC`] opened per second (each costs a conntrack
//! query), forgotten after a minute of silence.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::conntrack::Conntrack;
use super::intercept::{route, Route, Shared};
use super::PROXY_PORT;
use crate::executor::io_err;
use crate::udp::Limits;
use crate::ContainerError;

/// Most UDP flows one container has out at once (the least recently used
/// makes way).
pub const MAX_FLOWS: usize = 256;
/// Most UDP flows one container opens per second; more new ones are
/// dropped.
pub const MAX_NEW_FLOWS_PER_SEC: usize = 64;

const LIMITS: Limits = Limits {
    idle: Duration::from_secs(60),
    sweep: Duration::from_secs(1),
    flows: MAX_FLOWS,
    opened: MAX_NEW_FLOWS_PER_SEC,
};

/// Carries the container's outbound UDP, redirected to `socket`, until
/// `stop`.
pub(crate) async fn serve(
    socket: UdpSocket,
    conntrack: Conntrack,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let conntrack = Arc::new(conntrack);
    let proxy = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PROXY_PORT);
    let open = move |client: SocketAddr| {
        let (conntrack, shared) = (conntrack.clone(), shared.clone());
        async move {
            let SocketAddr::V4(client) = client else {
                return Ok(None);
            };
            let asked =
                tokio::task::spawn_blocking(move || conntrack.original_destination(client, proxy))
                    .await
                    .map_err(|e| ContainerError::Internal(format!("conntrack query: {e}")))??;
            let Some(dst) = asked else {
                tracing::debug!(%client, "container datagram without a conntrack entry");
                return Ok(None);
            };
            match route(&shared, SocketAddr::V4(dst)) {
                Route::Out(addr) => {
                    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                        .map_err(|e| io_err("bind a UDP socket for a container", e))?;
                    s.connect(addr)
                        .map_err(|e| io_err(&format!("UDP to {addr} for a container"), e))?;
                    Ok(Some(s))
                }
                Route::Service(name, port) => {
                    tracing::debug!(%name, port, "container UDP to a service: dropped (TCP only)");
                    Ok(None)
                }
                Route::Refused(why) => {
                    tracing::debug!(%dst, why, "container datagram refused");
                    Ok(None)
                }
            }
        }
    };
    crate::udp::relay(socket, open, LIMITS, stop).await;
}
