//! The outbound proxy: every TCP connection the container opens to an
//! address outside itself arrives here (see [`crate::net`]), and is
//! carried to a service instance, to the internet under the egress policy,
//! or reset.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::OriginalDst};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Conn, Network};

/// Most connections one container has open through the proxy at once;
/// more are reset.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long an outbound connection may take to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First address standing for a service (198.18.0.0/15, RFC 2544: never
/// routed on the internet).
const VIP_BASE: u32 = u32::from_be_bytes([198, 18, 0, 1]);
/// Most service addresses one container hands out.
pub(crate) const MAX_VIPS: u32 = 65_536;

/// What the proxy and the resolver of one container share.
pub(crate) struct Shared {
    pub(crate) net: Network,
    vips: Mutex<Vips>,
}

#[derive(Default)]
struct Vips {
    by_name: HashMap<String, Ipv4Addr>,
    by_ip: HashMap<Ipv4Addr, String>,
}

impl Shared {
    pub(crate) fn new(net: Network) -> Self {
        Shared {
            net,
            vips: Mutex::new(Vips::default()),
        }
    }

    /// The address standing for service `name` in this container (made on
    /// first use); `None` when the container has used up [`MAX_VIPS`].
    pub(crate) fn vip(&self, name: &str) -> Option<Ipv4Addr> {
        let mut v = self.vips.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = v.by_name.get(name) {
            return Some(*ip);
        }
        let n = u32::try_from(v.by_name.len())
            .ok()
            .filter(|n| *n < MAX_VIPS)?;
        let ip = Ipv4Addr::from(VIP_BASE + n);
        v.by_name.insert(name.to_string(), ip);
        v.by_ip.insert(ip, name.to_string());
        Some(ip)
    }

    fn service_of(&self, ip: Ipv4Addr) -> Option<String> {
        let v = self.vips.lock().unwrap_or_else(|p| p.into_inner());
        v.by_ip.get(&ip).cloned()
    }
}

/// Accepts redirected connections until `stop`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let shared = shared.clone();
                        let stop = stop.clone();
                        conns.spawn(async move {
                            carry(client, &shared, &stop).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        tracing::debug!("container proxy: too many connections");
                        reset(client);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the container proxy");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Where a redirected connection was going.
fn original_destination(s: &TcpStream) -> Option<SocketAddr> {
    let raw = getsockopt(s, OriginalDst).ok()?;
    let ip = Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr));
    Some(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(raw.sin_port),
    )))
}

/// What a connection to `dst` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A service of the tenant, by name.
    Service(String, u16),
    /// An address the policy allows.
    Out(SocketAddr),
    /// Refused, and why.
    Refused(&'static str),
}

pub(crate) fn route(shared: &Shared, dst: SocketAddr) -> Route {
    let ip = dst.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        // Only a direct connection to the proxy's own port gets here.
        return Route::Refused("the proxy itself");
    }
    if let IpAddr::V4(v4) = ip {
        if let Some(name) = shared.service_of(v4) {
            return Route::Service(name, dst.port());
        }
        let n = u32::from(v4).wrapping_sub(VIP_BASE);
        if n < MAX_VIPS {
            return Route::Refused("a service address this container was never given");
        }
    }
    if shared.net.egress.allows(ip) {
        Route::Out(dst)
    } else {
        Route::Refused("the egress policy")
    }
}

async fn carry(mut client: TcpStream, shared: &Shared, stop: &CancellationToken) {
    // Small writes go out at once on both legs (the workload chose its
    // own batching; a proxy must not add Nagle's delay).
    let _ = client.set_nodelay(true);
    let Some(dst) = original_destination(&client) else {
        reset(client);
        return;
    };
    let upstream: std::io::Result<Conn> = match route(shared, dst) {
        Route::Service(name, port) => shared.net.services.connect(&name, port).await,
        Route::Out(addr) => {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    Ok(Box::new(s) as Conn)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
        Route::Refused(why) => {
            tracing::debug!(%dst, why, "container connection refused");
            reset(client);
            return;
        }
    };
    let mut upstream = match upstream {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(%dst, error = %e, "container connection failed");
            reset(client);
            return;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(%dst, error = %e, "container connection ended");
            }
        }
    }
}

/// Closes `s` with a reset, so the container's client fails at once.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::net::{Connecting, Egress, Services};

    struct Two;
    impl Services for Two {
        fn exists<'a>(&'a self, name: &'a str) -> crate::net::Finding<'a> {
            Box::pin(async move { name == "a" || name == "b" })
        }
        fn connect(&self, _: &str, _: u16) -> Connecting {
            Box::pin(async { Err(std::io::ErrorKind::Unsupported.into()) })
        }
    }

    fn shared(egress: Egress) -> Shared {
        Shared::new(Network {
            egress,
            services: Arc::new(Two),
            domain: "t.stratus.internal".into(),
            upstream: Vec::new(),
        })
    }

    #[test]
    fn destinations_route_to_services_out_or_nowhere() {
        let s = shared(Egress::internet());
        let a = s.vip("a").unwrap();
        assert_eq!(s.vip("a"), Some(a), "stable");
        let b = s.vip("b").unwrap();
        assert_ne!(a, b);
        let at = |ip: Ipv4Addr, port| SocketAddr::from((ip, port));
        assert_eq!(route(&s, at(a, 80)), Route::Service("a".into(), 80));
        assert_eq!(route(&s, at(b, 6379)), Route::Service("b".into(), 6379));
        // A service address nobody resolved, in this container.
        let unknown = Ipv4Addr::from(u32::from(b) + 1);
        assert!(matches!(route(&s, at(unknown, 80)), Route::Refused(_)));
        let out = "93.184.216.34:443".parse().unwrap();
        assert_eq!(route(&s, out), Route::Out(out));
        for no in ["192.168.1.1:22", "169.254.169.254:80", "127.0.0.1:15001"] {
            assert!(
                matches!(route(&s, no.parse().unwrap()), Route::Refused(_)),
                "{no}"
            );
        }
        let closed = shared(Egress::none());
        assert!(matches!(route(&closed, out), Route::Refused(_)));
        let a = closed.vip("a").unwrap();
        assert_eq!(route(&closed, at(a, 80)), Route::Service("a".into(), 80));
    }
}
