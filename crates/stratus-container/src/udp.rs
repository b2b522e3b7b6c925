//! Published UDP ports: datagrams relayed per client address.
//!
//! The published port's socket receives a client's datagram; the first one
//! from an address opens a *flow*: a socket made inside the container's
//! network namespace (by a short-lived thread that enters it, as for TCP),
//! connected to `127.0.0.1:<port>`. The service thus sees each client as a
//! peer of its own, and what it answers to that peer is sent to the client
//! from the published port. A flow without traffic either way for a minute
//! is forgotten; at most [`MAX_UDP_FLOWS`] live at once per port, the least
//! recently used making way for a new one, and at most
//! [`MAX_NEW_UDP_FLOWS_PER_SEC`] open per second, so a flood of spoofed
//! sources costs other clients their flows (they reopen on their next
//! datagram), never the node its memory or more than a sliver of a core. Datagrams are dropped, never queued, when a
//! socket's buffer is full: UDP's own promise.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::netns::NetNs;
use crate::ContainerError;

/// Most flows (client addresses) one published UDP port relays at once.
pub const MAX_UDP_FLOWS: usize = 1024;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Most flows opened per second on one port: each costs a thread that
/// enters the container's namespace, so a flood of spoofed sources is
/// dropped past this rather than kept a core busy.
pub const MAX_NEW_UDP_FLOWS_PER_SEC: usize = 512;

/// When flows are forgotten.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// A flow without traffic for this long is forgotten.
    pub(crate) idle: Duration,
    /// How often idle flows are looked for (and new ones counted anew).
    pub(crate) sweep: Duration,
    /// Most flows at once.
    pub(crate) flows: usize,
    /// Most flows opened per `sweep`.
    pub(crate) opened: usize,
}

const LIMITS: Limits = Limits {
    idle: Duration::from_secs(60),
    sweep: Duration::from_secs(1),
    flows: MAX_UDP_FLOWS,
    opened: MAX_NEW_UDP_FLOWS_PER_SEC,
};

/// Relays datagrams between the published socket `outer` and port `port`
/// of the container whose namespace is `netns`, until `stop`.
pub(crate) async fn serve(outer: UdpSocket, port: u16, netns: NetNs, stop: CancellationToken) {
    let open = move |_client| {
        let netns = netns.clone();
        async move { netns.udp_local(port).await.map(Some) }
    };
    relay(outer, open, LIMITS, stop).await;
}

/// When a flow last carried traffic: in ms since the relay started (for
/// idleness), and in the relay's order of events (for the least recently
/// used: many events share a millisecond).
#[derive(Default)]
struct Touched {
    ms: AtomicU64,
    order: AtomicU64,
}

impl Touched {
    fn touch(&self, clock: &Clock) {
        self.ms.store(ms_since(clock.epoch), Ordering::Relaxed);
        self.order.store(
            clock.events.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

/// The relay's clocks.
struct Clock {
    epoch: Instant,
    events: AtomicU64,
}

/// One client's flow.
struct Flow {
    /// Connected to the service, inside the container.
    inner: Arc<UdpSocket>,
    /// When it last carried traffic, either way.
    last: Arc<Touched>,
    /// Carries the service's answers back.
    back: tokio::task::AbortHandle,
}

/// Relays datagrams between `outer` and, per client address, the socket
/// `open` makes for it (`None`: the client's datagrams are dropped), until
/// `stop`.
pub(crate) async fn relay<F, Fut>(
    outer: UdpSocket,
    open: F,
    limits: Limits,
    stop: CancellationToken,
) where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = Result<Option<std::net::UdpSocket>, ContainerError>>,
{
    let outer = Arc::new(outer);
    let clock = Arc::new(Clock {
        epoch: Instant::now(),
        events: AtomicU64::new(0),
    });
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut backs = JoinSet::new();
    let mut sweep = tokio::time::interval(limits.sweep);
    let mut opened = 0usize;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sweep.tick() => {
                opened = 0;
                let now = ms_since(clock.epoch);
                let idle = u64::try_from(limits.idle.as_millis()).unwrap_or(u64::MAX);
                flows.retain(|_, f| {
                    let keep = now.saturating_sub(f.last.ms.load(Ordering::Relaxed)) < idle;
                    if !keep {
                        f.back.abort();
                    }
                    keep
                });
            }
            Some(_) = backs.join_next(), if !backs.is_empty() => {}
            got = outer.recv_from(&mut buf) => {
                let (n, client) = match got {
                    Ok(got) => got,
                    Err(e) => {
                        tracing::debug!(error = %e, "UDP relay: receive");
                        continue;
                    }
                };
                if let Some(f) = flows.get(&client) {
                    f.last.touch(&clock);
                    // Never waits long: a datagram a full receiver cannot
                    // take is dropped, not queued.
                    let _ = f.inner.send(&buf[..n]).await;
                    continue;
                }
                if opened >= limits.opened {
                    continue;
                }
                opened += 1;
                let inner = match open(client).await.and_then(|s| {
                    s.map(|s| {
                        s.set_nonblocking(true)
                            .and_then(|()| UdpSocket::from_std(s))
                            .map_err(|e| ContainerError::Io {
                                context: "register a UDP flow".into(),
                                source: e,
                            })
                    })
                    .transpose()
                }) {
                    Ok(Some(s)) => Arc::new(s),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "UDP relay: open a flow");
                        continue;
                    }
                };
                if flows.len() >= limits.flows {
                    let oldest = flows
                        .iter()
                        .min_by_key(|(_, f)| f.last.order.load(Ordering::Relaxed))
                        .map(|(a, _)| *a);
                    if let Some(f) = oldest.and_then(|a| flows.remove(&a)) {
                        f.back.abort();
                    }
                }
                let _ = inner.send(&buf[..n]).await;
                let last = Arc::new(Touched::default());
                last.touch(&clock);
                let back = backs.spawn(back(
                    inner.clone(),
                    outer.clone(),
                    client,
                    last.clone(),
                    clock.clone(),
                ));
                flows.insert(client, Flow { inner, last, back });
            }
        }
    }
    backs.shutdown().await;
}

/// Sends what the service answers on `inner` to `client` from `outer`.
async fn back(
    inner: Arc<UdpSocket>,
    outer: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<Touched>,
    clock: Arc<Clock>,
) {
    loop {
        if inner.readable().await.is_err() {
            return;
        }
        // A buffer for each burst of answers, dropped once it is drained:
        // idle flows hold none, and a busy one does not allocate per
        // datagram.
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match inner.try_recv(&mut buf) {
                Ok(n) => {
                    last.touch(&clock);
                    let _ = outer.send_to(&buf[..n], client).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Nothing listens on the port yet (ICMP port unreachable):
                // the client's next datagram may find it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => {
                    tracing::debug!(%client, error = %e, "UDP relay: flow ended");
                    return;
                }
            }
        }
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A UDP service that answers each datagram with the address it came
    /// from: each flow is a peer of its own.
    async fn whoami() -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((_, peer)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(peer.to_string().as_bytes(), peer).await;
            }
        });
        addr
    }

    /// A relay with `limits` in front of a [`whoami`] service: its address,
    /// its stop and its task.
    async fn relayed(
        limits: Limits,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        relayed_to(whoami().await, limits).await
    }

    /// A relay with `limits` in front of whatever listens (or will) on
    /// `service`: its address, its stop and its task.
    async fn relayed_to(
        service: SocketAddr,
        limits: Limits,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let outer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let published = outer.local_addr().unwrap();
        let open = move |_| async move {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(service).unwrap();
            Ok(Some(s))
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay(outer, open, limits, stop.clone()));
        (published, stop, task)
    }

    async fn ask(client: &UdpSocket, to: SocketAddr) -> String {
        client.send_to(b"who", to).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer through the relay to {:?}", client.local_addr()))
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Each client is its own flow, kept while it talks; past the bound the
    /// least recently used flow makes way; an idle flow is forgotten.
    #[tokio::test]
    async fn clients_get_flows_of_their_own_bounded_and_forgotten_when_idle() {
        // An idle time far above a round trip even on a loaded machine.
        let (published, stop, relay) = relayed(Limits {
            idle: Duration::from_millis(1500),
            sweep: Duration::from_millis(50),
            flows: 2,
            opened: usize::MAX,
        })
        .await;

        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a1 = ask(&a, published).await;
        let b1 = ask(&b, published).await;
        assert_ne!(a1, b1, "two clients, two flows");
        assert_ne!(a1, a.local_addr().unwrap().to_string(), "relayed");
        assert_eq!(ask(&a, published).await, a1, "a's flow is kept");
        // A third client: b's flow (least recently used) makes way, a's stays.
        let _ = ask(&c, published).await;
        assert_eq!(ask(&a, published).await, a1);
        assert_ne!(ask(&b, published).await, b1, "b got a new flow");
        // Silent for longer than the idle time: a new flow.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_ne!(ask(&a, published).await, a1, "an idle flow is forgotten");

        stop.cancel();
        relay.await.unwrap();
    }

    /// Past the most flows opened per sweep, a new source is dropped while
    /// the flows already open keep working.
    #[tokio::test]
    async fn new_flows_are_rate_limited() {
        let (published, stop, relay) = relayed(Limits {
            sweep: Duration::from_secs(3600),
            opened: 1,
            ..LIMITS
        })
        .await;
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let first = ask(&a, published).await;
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        b.send_to(b"who", published).await.unwrap();
        let mut buf = [0u8; 64];
        let dropped = tokio::time::timeout(Duration::from_millis(500), b.recv(&mut buf)).await;
        assert!(dropped.is_err(), "a second flow in the same second");
        assert_eq!(ask(&a, published).await, first, "the open flow still works");
        stop.cancel();
        relay.await.unwrap();
    }

    /// Nothing listens on the port yet: the datagram is lost (as UDP is),
    /// and the flow still works once the service is up.
    #[tokio::test]
    async fn a_service_that_starts_late_is_reached() {
        let late = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = late.local_addr().unwrap();
        drop(late);
        let (published, stop, relay) = relayed_to(port, LIMITS).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"early", published).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let service = UdpSocket::bind(port).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, peer)) = service.recv_from(&mut buf).await {
                let _ = service.send_to(&buf[..n], peer).await;
            }
        });
        let mut buf = [0u8; 64];
        let mut answer = None;
        for _ in 0..50 {
            client.send_to(b"late", published).await.unwrap();
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf)).await
            {
                answer = Some(buf[..n].to_vec());
                break;
            }
        }
        assert_eq!(answer.as_deref(), Some(&b"late"[..]));
        stop.cancel();
        relay.await.unwrap();
    }
}
