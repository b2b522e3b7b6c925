//! Container networks, as root: a busybox container resolves its tenant's
//! service names, reaches a service and what the egress policy allows, and
//! nothing else (see `stratus_container::net`).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stratus_container::net::{egress, Conn, Connecting, Finding, Verdict};
use stratus_container::{Egress, IdMap, Network, Services};
use stratus_runtime::Exit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

/// One service, `pong`, answered by a server of the test.
struct Pong(SocketAddr);

impl Services for Pong {
    fn exists<'a>(&'a self, name: &'a str) -> Finding<'a> {
        Box::pin(async move { name == "pong" })
    }
    fn connect(&self, _name: &str, _port: u16) -> Connecting {
        let to = self.0;
        Box::pin(async move { Ok(Box::new(TcpStream::connect(to).await?) as Conn) })
    }
}

/// A server that answers every connection with `reply`, on `ip`.
async fn server(ip: IpAddr, reply: &'static str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// A DNS server on `ip` that answers every A question with 192.0.2.77 (and
/// any other with no record): something UDP to reach "outside".
async fn dns_server(ip: IpAddr) -> SocketAddr {
    let s = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            if let Some(answer) = dns_answer(&buf[..n]) {
                let _ = s.send_to(&answer, peer).await;
            }
        }
    });
    addr
}

fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    let mut i = 12;
    while *q.get(i)? != 0 {
        i += 1 + usize::from(q[i]);
    }
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let mut r = q.get(..i + 5)?.to_vec();
    r[2] = 0x81; // a response, recursion desired
    r[3] = 0x80; // recursion available, no error
    r[6..12].copy_from_slice(&[0, u8::from(qtype == 1), 0, 0, 0, 0]);
    if qtype == 1 {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
    }
    Some(r)
}

/// An address of this host that is not loopback: "somewhere outside" the
/// container, which the policy then allows or denies.
fn outside_address() -> Ipv4Addr {
    egress::local_addresses()
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .expect("this host has a non-loopback IPv4 address")
}

/// `try HOST PORT WHAT`: prints what the server at HOST:PORT answers, or
/// `refused-WHAT` when nothing comes back (busybox `nc` exits 0 on a
/// connection that is accepted and then reset, as the proxy refuses).
const TRY: &str = "try() { r=$(echo hi | nc -w 3 \"$1\" \"$2\" 2>/dev/null); \
    if [ -n \"$r\" ]; then echo \"$r\"; else echo \"refused-$3\"; fi; };";

fn network(egress: Egress, pong: SocketAddr) -> Network {
    Network {
        egress,
        services: Arc::new(Pong(pong)),
        domain: "alice.stratus.internal".into(),
        upstream: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_reaches_its_services_by_name_and_only_what_the_policy_allows() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let pong = server(IpAddr::V4(Ipv4Addr::LOCALHOST), "pong\n").await;
    let outside_ip = outside_address();
    let outside = server(IpAddr::V4(outside_ip), "outside\n").await;
    let dns = dns_server(IpAddr::V4(outside_ip)).await;
    let script = format!(
        "{TRY} ip addr show eth0 | grep -q 10.0.2.100 && echo eth0; \
         grep -q '^nameserver 127.0.0.11' /etc/resolv.conf && echo resolv; \
         nslookup pong | grep -q 198.18. && echo resolved; \
         nslookup pong.alice.stratus.internal | grep -q 198.18. && echo qualified; \
         nslookup ping >/dev/null 2>&1 || echo no-ping; \
         nslookup pong.bob.stratus.internal >/dev/null 2>&1 || echo no-bob; \
         try pong 6379 pong; \
         try pong.alice.stratus.internal 80 pong; \
         try {ip} {port} outside; \
         try 198.18.0.99 80 unknown-vip; \
         nslookup example.com {dns} 2>/dev/null | grep -q 192.0.2.77 && echo udp-out || echo no-udp",
        ip = outside.ip(),
        port = outside.port()
    );

    // The lender allows this one address: reached.
    let allow = Egress::internet().first(IpAddr::V4(outside_ip).into(), Verdict::Allow);
    let mut spec = f.spec("net-allow", &script);
    spec.network = Some(network(allow, pong));
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "eth0\nresolv\nresolved\nqualified\nno-ping\nno-bob\npong\npong\noutside\nrefused-unknown-vip\nudp-out\n",
        "{}",
        out.stderr
    );
    assert_cleaned(&f, "net-allow");

    // The lender's own address is denied (the default for every private
    // range and for the node's addresses): the connection is reset, while
    // the service is still reached.
    let deny = Egress::internet().first(IpAddr::V4(outside_ip).into(), Verdict::Deny);
    let mut spec = f.spec("net-deny", &script);
    spec.network = Some(network(deny, pong));
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "eth0\nresolv\nresolved\nqualified\nno-ping\nno-bob\npong\npong\nrefused-outside\nrefused-unknown-vip\nno-udp\n",
        "{}",
        out.stderr
    );

    // The same in a user namespace (as the agent runs containers): the
    // namespace is the container's, its rules and sockets still the
    // executor's.
    let mapped = fixture_with(Some(IdMap::new(231_072)));
    let mut spec = mapped.spec("net-mapped", &script);
    spec.network = Some(network(
        Egress::internet().first(IpAddr::V4(outside_ip).into(), Verdict::Allow),
        pong,
    ));
    let (exit, out) = run(&mapped, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "eth0\nresolv\nresolved\nqualified\nno-ping\nno-bob\npong\npong\noutside\nrefused-unknown-vip\nudp-out\n"
        ),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // Without a network: only lo, no resolver, nothing reached.
    let (exit, out) = run(
        &f,
        f.spec(
            "net-none",
            &format!(
                "{TRY} ip addr | grep -q eth0 && echo eth0; try {} {} outside",
                outside.ip(),
                outside.port()
            ),
        ),
    )
    .await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(out.stdout, "refused-outside\n", "{}", out.stderr);
}

/// The attacker's container connects to the proxy's own port (TCP and
/// UDP), floods it with connections and datagram flows, and asks the
/// resolver for names of another tenant: nothing it gets is more than a
/// refusal, and its tenant's service is still reached afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_and_resolver_give_an_attacker_nothing() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let pong = server(IpAddr::V4(Ipv4Addr::LOCALHOST), "pong\n").await;
    let script = "{TRY} try 127.0.0.1 15001 proxy; \
         i=0; while [ $i -lt 200 ]; do (echo x | nc -w 5 93.184.216.34 80 >/dev/null 2>&1 &); i=$((i+1)); done; \
         i=0; while [ $i -lt 100 ]; do (nslookup x 93.184.216.$i >/dev/null 2>&1 &); i=$((i+1)); done; \
         nslookup x 127.0.0.1:15001 >/dev/null 2>&1 || echo no-udp-proxy; \
         nslookup pong.bob.stratus.internal >/dev/null 2>&1 || echo no-bob; \
         nslookup stratus.internal >/dev/null 2>&1 || echo no-suffix; \
         try pong 1 pong; echo done";
    let script = script.replace("{TRY}", TRY);
    let mut spec = f.spec("net-attacker", &script);
    spec.pids = 512;
    spec.network = Some(network(Egress::none(), pong));
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(
        out.stdout, "refused-proxy\nno-udp-proxy\nno-bob\nno-suffix\npong\ndone\n",
        "{}",
        out.stderr
    );
}
