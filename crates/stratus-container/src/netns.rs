//! Work inside a container's network namespace from the host process.
//!
//! `setns(CLONE_NEWNET)` switches only the calling *thread*, so each piece of
//! work runs on a fresh, short-lived thread that enters the namespace, does
//! its work and ends; no thread of the runtime (tokio workers, the blocking
//! pool) ever changes namespace. A socket keeps the namespace it was created
//! in, so a socket made there stays usable from any thread afterwards.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use libcontainer::network::link::LinkClient;
use libcontainer::network::wrapper::create_network_client;
use nix::sched::{setns, CloneFlags};

use crate::executor::io_err;
use crate::ContainerError;

/// How long a proxied connection may take to reach the container's port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open handle on a container's network namespace (`/proc/<pid>/ns/net`);
/// holding it keeps the namespace alive.
#[derive(Clone)]
pub(crate) struct NetNs(Arc<File>);

impl NetNs {
    /// Opens the network namespace of process `pid`.
    pub(crate) fn of_pid(pid: i32) -> Result<Self, ContainerError> {
        let path = format!("/proc/{pid}/ns/net");
        File::open(&path)
            .map(|f| NetNs(Arc::new(f)))
            .map_err(|e| ContainerError::Io {
                context: format!("open {path}"),
                source: e,
            })
    }

    /// Spawns a thread that enters the namespace, runs `f` and hands its
    /// result to `deliver`.
    fn spawn<T, F, D>(&self, what: &'static str, f: F, deliver: D) -> Result<(), ContainerError>
    where
        F: FnOnce() -> Result<T, ContainerError> + Send + 'static,
        D: FnOnce(Result<T, ContainerError>) + Send + 'static,
    {
        let ns = self.0.clone();
        std::thread::Builder::new()
            .name(format!("netns-{what}"))
            .spawn(move || {
                let result = setns(ns.as_ref(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| ContainerError::Io {
                        context: format!("{what}: setns into the container's network namespace"),
                        source: e.into(),
                    })
                    .and_then(|()| f());
                deliver(result);
            })
            .map(drop)
            .map_err(|e| ContainerError::Io {
                context: format!("{what}: spawn a namespace thread"),
                source: e,
            })
    }

    /// Runs `f` on a new thread inside the namespace and returns its result.
    pub(crate) async fn run<T, F>(&self, what: &'static str, f: F) -> Result<T, ContainerError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ContainerError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The receiver may be gone (caller dropped); nothing to do then.
        self.spawn(what, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| ContainerError::Internal(format!("{what}: namespace thread died")))?
    }

    /// [`NetNs::run`] for blocking callers.
    pub(crate) fn run_blocking<T, F>(&self, what: &'static str, f: F) -> Result<T, ContainerError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ContainerError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn(what, f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .map_err(|_| ContainerError::Internal(format!("{what}: namespace thread died")))?
    }

    /// Brings the loopback interface up (a new network namespace starts with
    /// `lo` down, so nothing could listen on 127.0.0.1). Blocking.
    pub(crate) fn loopback_up_blocking(&self) -> Result<(), ContainerError> {
        self.run_blocking("lo-up", || {
            let mut links = LinkClient::new(create_network_client())
                .map_err(|e| ContainerError::Network(format!("netlink: {e}")))?;
            let lo = links
                .get_by_name("lo")
                .map_err(|e| ContainerError::Network(format!("find lo: {e}")))?;
            links
                .set_up(lo.header.index)
                .map_err(|e| ContainerError::Network(format!("set lo up: {e}")))
        })
    }

    /// A UDP socket inside the namespace, connected to `127.0.0.1:port`.
    pub(crate) async fn udp_local(&self, port: u16) -> Result<UdpSocket, ContainerError> {
        self.run("udp", move || {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| io_err("bind a UDP socket in the container", e))?;
            s.connect((Ipv4Addr::LOCALHOST, port))
                .map_err(|e| io_err(&format!("connect to UDP port {port} in the container"), e))?;
            Ok(s)
        })
        .await
    }

    /// Connects to `127.0.0.1:port` inside the namespace.
    pub(crate) async fn connect_local(&self, port: u16) -> Result<TcpStream, ContainerError> {
        self.run("connect", move || {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
                ContainerError::Io {
                    context: format!("connect to {addr} in the container"),
                    source: e,
                }
            })?;
            // A proxy leg: small writes go out at once.
            let _ = s.set_nodelay(true);
            Ok(s)
        })
        .await
    }
}
