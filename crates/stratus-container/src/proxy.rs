//! Published ports: a userspace TCP proxy per port (UDP: [`crate::udp`]).
//!
//! The container has its own network namespace with no route to the host,
//! so a published port is a host listener; each accepted connection is paired
//! with a socket created *inside* the container's namespace and connected to
//! `127.0.0.1:<container_port>` (see [`NetNs::connect_local`]), and bytes are
//! copied both ways until either side closes. No veth, bridge or iptables
//! rule is needed, and the container cannot reach the host's network: the
//! proxy only ever dials the container's own loopback.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::netns::NetNs;
use crate::ports::Listener;

/// The proxies of one container; [`Proxies::stop`] (or drop) ends them.
pub(crate) struct Proxies {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Proxies {
    /// Starts one proxy per `(listener, container_port)`.
    pub(crate) fn start(listeners: Vec<(Listener, u16)>, netns: NetNs) -> Self {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (listener, port) in listeners {
            match listener {
                Listener::Tcp(l) => tasks.spawn(serve(l, port, netns.clone(), stop.clone())),
                Listener::Udp(s) => {
                    tasks.spawn(crate::udp::serve(s, port, netns.clone(), stop.clone()))
                }
            };
        }
        Proxies { stop, tasks }
    }

    /// Closes the listeners and every proxied connection.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, port: u16, netns: NetNs, stop: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    conns.spawn(proxy_one(client, peer, port, netns.clone(), stop.clone()));
                }
                Err(e) => {
                    // Transient (e.g. EMFILE): back off a little, keep serving.
                    tracing::warn!(error = %e, "accept on published port");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn proxy_one(
    mut client: TcpStream,
    peer: SocketAddr,
    port: u16,
    netns: NetNs,
    stop: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    let upstream = match netns.connect_local(port).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, port, error = %e, "proxy: container port unreachable");
            return;
        }
    };
    let mut upstream = match upstream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(upstream))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "proxy: register upstream socket");
            return;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(%peer, port, error = %e, "proxy connection ended");
            }
        }
    }
}
