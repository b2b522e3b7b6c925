//! Container networks: outbound connections under an egress policy, and
//! the names of the tenant's services, without a route out of the
//! container.
//!
//! A container with a [`Network`] gets, in its own network namespace:
//!
//! * an interface `eth0` (10.0.2.100/24, default route via 10.0.2.2) whose
//!   veth peer `sink0` is in the same namespace and forwards nothing: a
//!   packet that leaves `eth0` goes nowhere. There is no link to the host,
//!   no bridge, no host firewall rule and no `ip_forward`;
//! * netfilter rules in *its* namespace (never the host's): every TCP
//!   connection to an address outside the container is redirected to
//!   `127.0.0.1:`[`PROXY_PORT`], where the agent accepts it, reads the
//!   address the container dialed (`SO_ORIGINAL_DST`) and decides: a
//!   service address (from the resolver, below) is connected to an
//!   instance of that service through [`Services`]; any other address is
//!   connected from the node, as the agent, only if the [`Egress`] policy
//!   allows it, and reset otherwise. UDP goes the same way, datagram flow
//!   by datagram flow (the destination read from the namespace's conntrack
//!   table, see `udp_out`): out where the policy allows, dropped
//!   otherwise. Other protocols are rejected at once (ICMP port
//!   unreachable);
//! * a resolver at `127.0.0.11:53` (`/etc/resolv.conf` says so): a service
//!   name of the tenant (`NAME`, or `NAME.<domain>`) resolves to an address
//!   of 198.18.0.0/15 that stands for it in this container only; any other
//!   name under the cluster suffix is NXDOMAIN at once (another tenant's
//!   services do not exist for this one); other names are forwarded to the
//!   node's resolvers when the policy allows any egress, else REFUSED.
//!
//! This is user-mode networking in the shape of a service-mesh sidecar:
//! every byte that leaves the container passes through the agent, which
//! knows who the container belongs to and what it may reach, so policy is
//! decided on the real destination of each connection with no rule set to
//! keep in step, and the lender's host network is untouched (its firewall
//! sees the agent's own connections). The cost is a userspace copy per
//! byte, measured in `docs/BENCHMARKS.md`.
//!
//! The sockets are made by the creation helper inside the new namespace,
//! before the container's process runs, and handed back over the helper's
//! socket (`SCM_RIGHTS`), so the workload never runs a moment without its
//! resolver or proxy.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ContainerError;

mod conntrack;
mod dns;
pub mod egress;
mod intercept;
pub(crate) mod setup;
mod udp_out;

pub use egress::{Egress, Verdict};

/// The port, on the container's loopback, its outbound TCP is redirected
/// to (reserved: a workload cannot listen on it).
pub const PROXY_PORT: u16 = 15001;
/// The resolver's address inside the container.
pub const RESOLVER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 11)),
    53,
);
/// The suffix under which every tenant's services are named:
/// `NAME.TENANT.<suffix>` (`.internal` is reserved for private use).
pub const SUFFIX: &str = "stratus.internal";

/// A connection to a service instance.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// A boxed connection to a service instance.
pub type Conn = Box<dyn Duplex>;
/// What [`Services::connect`] returns.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;
/// What [`Services::exists`] returns.
pub type Finding<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// The services a container may reach by name (its tenant's), implemented
/// by the agent.
pub trait Services: Send + Sync {
    /// Whether `name` (lowercase, one DNS label) is one of them (may ask
    /// the control plane, briefly, before saying no).
    fn exists<'a>(&'a self, name: &'a str) -> Finding<'a>;
    /// A connection to `port` of a healthy instance of service `name`.
    fn connect(&self, name: &str, port: u16) -> Connecting;
}

/// The network of one container ([`crate::ContainerSpec::network`]).
#[derive(Clone)]
pub struct Network {
    /// Where outbound connections may go.
    pub egress: Egress,
    /// The tenant's services.
    pub services: Arc<dyn Services>,
    /// The search domain, `TENANT.`[`SUFFIX`]: `NAME.<domain>` is the fully
    /// qualified name of service `NAME`.
    pub domain: String,
    /// The node's resolvers, for names that are not services.
    pub upstream: Vec<SocketAddr>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("egress", &self.egress)
            .field("domain", &self.domain)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Network {
    fn eq(&self, other: &Self) -> bool {
        self.egress == other.egress
            && Arc::ptr_eq(&self.services, &other.services)
            && self.domain == other.domain
            && self.upstream == other.upstream
    }
}

impl Eq for Network {}

/// The nameservers of this host's `/etc/resolv.conf` (port 53); none if it
/// cannot be read.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default()
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The `/etc/resolv.conf` a container with a network sees.
pub(crate) fn resolv_conf(net: &Network) -> String {
    format!(
        "# Stratus: your tenant's services resolve here as NAME or NAME.{}; other names\n\
         # are looked up by the node when the egress policy lets this container out.\n\
         nameserver {}\nsearch {}\noptions ndots:1\n",
        net.domain,
        RESOLVER.ip(),
        net.domain
    )
}

/// The resolver and proxy of one running container; [`Served::stop`] (or
/// drop) ends them and every connection they carry.
pub(crate) struct Served {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Served {
    /// Serves the container's proxy and resolver on the sockets the helper
    /// made inside its namespace ([`setup::configure`]: the TCP listener,
    /// the resolver's socket, the proxy's UDP socket, the conntrack
    /// socket).
    pub(crate) fn start(net: Network, fds: Vec<OwnedFd>) -> Result<Self, ContainerError> {
        let [tcp, udp, udp_out, conntrack]: [OwnedFd; 4] =
            fds.try_into().map_err(|v: Vec<OwnedFd>| {
                ContainerError::Internal(format!("network: {} sockets came back, not 4", v.len()))
            })?;
        let register = |e| ContainerError::Io {
            context: "network: register the container's sockets".into(),
            source: e,
        };
        let listener = std::net::TcpListener::from(tcp);
        listener.set_nonblocking(true).map_err(register)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(register)?;
        let resolver = std::net::UdpSocket::from(udp);
        resolver.set_nonblocking(true).map_err(register)?;
        let resolver = tokio::net::UdpSocket::from_std(resolver).map_err(register)?;
        let udp_out = std::net::UdpSocket::from(udp_out);
        udp_out.set_nonblocking(true).map_err(register)?;
        let udp_out = tokio::net::UdpSocket::from_std(udp_out).map_err(register)?;
        let stop = CancellationToken::new();
        let shared = Arc::new(intercept::Shared::new(net));
        let mut tasks = JoinSet::new();
        tasks.spawn(intercept::serve(listener, shared.clone(), stop.clone()));
        tasks.spawn(udp_out::serve(
            udp_out,
            conntrack::Conntrack::new(conntrack),
            shared.clone(),
            stop.clone(),
        ));
        tasks.spawn(dns::serve(resolver, shared, stop.clone()));
        Ok(Served { stop, tasks })
    }

    /// Closes the sockets and every proxied connection.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_and_junk_is_skipped() {
        let text = "# comment\nnameserver 127.0.0.53\nnameserver  2001:db8::1 \nnameserver bogus\nsearch lan\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap_or(RESOLVER),
                "[2001:db8::1]:53".parse::<SocketAddr>().unwrap_or(RESOLVER),
            ]
        );
    }
}
