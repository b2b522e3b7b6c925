//! Host listeners of published ports, inside the range the lender allows.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use tokio::net::{TcpListener, UdpSocket};

use crate::{ContainerError, PortMap, Protocol};

/// A bound published port.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Listener {
    async fn bind(addr: SocketAddr, protocol: Protocol) -> std::io::Result<Self> {
        Ok(match protocol {
            Protocol::Tcp => Listener::Tcp(TcpListener::bind(addr).await?),
            Protocol::Udp => Listener::Udp(UdpSocket::bind(addr).await?),
        })
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Udp(s) => s.local_addr(),
        }
    }

    pub(crate) fn protocol(&self) -> Protocol {
        match self {
            Listener::Tcp(_) => Protocol::Tcp,
            Listener::Udp(_) => Protocol::Udp,
        }
    }
}

/// Checks every fixed host port against `allowed` (before anything is
/// created): a port outside it is [`ContainerError::PortNotAllowed`].
pub(crate) fn check(
    ports: &[PortMap],
    allowed: Option<&RangeInclusive<u16>>,
) -> Result<(), ContainerError> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    for p in ports {
        if p.host_port != 0 && !allowed.contains(&p.host_port) {
            return Err(ContainerError::PortNotAllowed {
                port: p.host_port,
                first: *allowed.start(),
                last: *allowed.end(),
            });
        }
    }
    Ok(())
}

/// Binds TCP listeners for `ports` as a container's published ports are
/// bound (only inside `allowed`; `host_port: 0` takes a free port of it,
/// tried from a start that `seed` picks): for ports the agent publishes
/// itself, such as a WASM HTTP component's. `protocol` is ignored.
pub async fn bind_tcp(
    ports: &[PortMap],
    allowed: Option<&RangeInclusive<u16>>,
    seed: &str,
) -> Result<Vec<TcpListener>, ContainerError> {
    let tcp: Vec<PortMap> = ports
        .iter()
        .map(|p| PortMap {
            protocol: Protocol::Tcp,
            ..*p
        })
        .collect();
    Ok(bind(&tcp, allowed, seed)
        .await?
        .into_iter()
        .filter_map(|(l, _)| match l {
            Listener::Tcp(l) => Some(l),
            Listener::Udp(_) => None,
        })
        .collect())
}

/// Binds one listener (TCP) or socket (UDP) per port. `host_port: 0` takes any free port: inside
/// `allowed` when there is a range (tried from a pseudo-random start, each
/// port once), else one the kernel picks.
pub(crate) async fn bind(
    ports: &[PortMap],
    allowed: Option<&RangeInclusive<u16>>,
    seed: &str,
) -> Result<Vec<(Listener, u16)>, ContainerError> {
    check(ports, allowed)?;
    let mut listeners = Vec::with_capacity(ports.len());
    for p in ports {
        let l = match (p.host_port, allowed) {
            (0, Some(range)) => bind_in_range(p, range, seed, listeners.len()).await?,
            _ => {
                let addr = SocketAddr::new(p.host_ip, p.host_port);
                Listener::bind(addr, p.protocol)
                    .await
                    .map_err(|source| ContainerError::Port { addr, source })?
            }
        };
        listeners.push((l, p.container_port));
    }
    Ok(listeners)
}

async fn bind_in_range(
    p: &PortMap,
    range: &RangeInclusive<u16>,
    seed: &str,
    index: usize,
) -> Result<Listener, ContainerError> {
    let (first, last) = (u32::from(*range.start()), u32::from(*range.end()));
    let len = (last + 1).saturating_sub(first);
    if len == 0 {
        return Err(ContainerError::InvalidSpec(
            "ports: the allowed range is empty".into(),
        ));
    }
    // FNV-1a of the container id and the port's position: different
    // containers start at different ports, so they rarely collide.
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.bytes().chain(index.to_le_bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let start = h % len;
    let mut last_err = None;
    for i in 0..len {
        let port = u16::try_from(first + (start + i) % len).unwrap_or(u16::MAX);
        match Listener::bind(SocketAddr::new(p.host_ip, port), p.protocol).await {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(ContainerError::Port {
        addr: SocketAddr::new(p.host_ip, 0),
        source: last_err
            .unwrap_or_else(|| std::io::Error::other("no free port in the allowed range")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The attacker asks for host port 22 (and 80) on a node whose lender
    /// allows 20000-29999: refused before anything is bound; `host_port: 0`
    /// gets a port inside the range.
    #[tokio::test]
    async fn host_ports_stay_inside_the_allowed_range() {
        let range = 20000..=29999;
        for port in [22, 80, 19999, 30000] {
            let p = PortMap {
                host_port: port,
                ..PortMap::loopback(80)
            };
            let err = bind(&[p], Some(&range), "c").await.unwrap_err();
            assert!(
                matches!(err, ContainerError::PortNotAllowed { port: q, .. } if q == port),
                "{err}"
            );
            assert!(err.to_string().contains("20000-29999"), "{err}");
        }
        let udp = PortMap {
            protocol: Protocol::Udp,
            ..PortMap::loopback(53)
        };
        let any = [PortMap::loopback(80), PortMap::loopback(81), udp];
        let ls = bind(&any, Some(&range), "some-container").await.unwrap();
        for (l, _) in &ls {
            assert!(range.contains(&l.local_addr().unwrap().port()));
        }
        assert_eq!(ls[2].0.protocol(), Protocol::Udp);
        // Without a range (the library default), anything goes.
        check(
            &[PortMap {
                host_port: 22,
                ..PortMap::loopback(80)
            }],
            None,
        )
        .unwrap();
    }
}
