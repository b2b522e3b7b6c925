//! Building a container's network inside its new namespace (see the
//! module docs of [`crate::net`]): interfaces and routes with `ip`, the
//! redirect and reject rules with `iptables-restore`, then the proxy's and
//! resolver's sockets. Runs in the creation helper, on a thread that
//! entered the namespace ([`crate::netns::NetNs::run_blocking`]); the
//! commands it starts inherit that thread's namespace, never the host's.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{PROXY_PORT, RESOLVER};
use crate::ContainerError;

/// The container's own address on `eth0`.
pub(crate) const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);

/// Interfaces and routes (`ip -batch`).
fn links() -> String {
    format!(
        "link set lo up\n\
         link add eth0 type veth peer name sink0\n\
         addr add {ADDRESS}/24 dev eth0\n\
         link set sink0 up\n\
         link set eth0 up\n\
         route add default via 10.0.2.2 dev eth0\n"
    )
}

/// The rules (`iptables-restore`): TCP and UDP to anything but the
/// container itself go to the proxy (UDP with a source port of its own per
/// flow, so that each flow's conntrack entry is found by what the proxy
/// sees); every other protocol is rejected at once, except to the
/// container itself (its loopback and its own address).
fn rules() -> String {
    format!(
        "*nat\n\
         :OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n\
         -A OUTPUT -d 127.0.0.0/8 -j RETURN\n\
         -A OUTPUT -d {ADDRESS}/32 -j RETURN\n\
         -A OUTPUT -p tcp -j REDIRECT --to-ports {PROXY_PORT}\n\
         -A OUTPUT -p udp -j REDIRECT --to-ports {PROXY_PORT}\n\
         -A POSTROUTING -p udp -d 127.0.0.1/32 --dport {PROXY_PORT} -j SNAT --to-source {ADDRESS}:1024-65535\n\
         COMMIT\n\
         *filter\n\
         :OUTPUT ACCEPT [0:0]\n\
         -A OUTPUT -d 127.0.0.0/8 -j ACCEPT\n\
         -A OUTPUT -d {ADDRESS}/32 -j ACCEPT\n\
         -A OUTPUT -p tcp -j ACCEPT\n\
         -A OUTPUT -j REJECT\n\
         COMMIT\n"
    )
}

/// Configures the namespace the calling thread is in and makes the proxy's
/// listener, the resolver's socket, the proxy's UDP socket and a conntrack
/// socket: `[tcp, resolver, udp, conntrack]`.
pub(crate) fn configure() -> Result<Vec<OwnedFd>, ContainerError> {
    run("ip", &["-batch", "-"], &links())?;
    run("iptables-restore", &[], &rules())?;
    let proxy = SocketAddr::from((Ipv4Addr::LOCALHOST, PROXY_PORT));
    let tcp = TcpListener::bind(proxy).map_err(|source| ContainerError::Port {
        addr: proxy,
        source,
    })?;
    let resolver = UdpSocket::bind(RESOLVER).map_err(|source| ContainerError::Port {
        addr: RESOLVER,
        source,
    })?;
    let udp = UdpSocket::bind(proxy).map_err(|source| ContainerError::Port {
        addr: proxy,
        source,
    })?;
    let conntrack = super::conntrack::open()?;
    Ok(vec![tcp.into(), resolver.into(), udp.into(), conntrack])
}

/// Where `tool` is: the sbin folders are often not on a service's `PATH`.
fn find(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.exists())
}

/// Runs `tool args` with `input` on its stdin; its stderr is the error.
fn run(tool: &str, args: &[&str], input: &str) -> Result<(), ContainerError> {
    let path = find(tool).ok_or_else(|| {
        ContainerError::HostUnsupported(format!(
            "container networks need `{tool}` (Debian: apt install iproute2 iptables)"
        ))
    })?;
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ContainerError::Network(format!("start {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| ContainerError::Network(format!("{tool}: write its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ContainerError::Network(format!("{tool}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ContainerError::Network(format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
