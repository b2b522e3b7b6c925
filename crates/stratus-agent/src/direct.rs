//! Direct connections between nodes: hole punching through NATs,
//! coordinated by a replica, so that service connections between two
//! nodes that can exchange UDP skip the relay.
//!
//! Node A, whose container connects to a service instance on node B, asks
//! a replica to introduce it ([`Request::Punch`]): the replica checks that
//! A may reach the instance (as for a relayed connection), tells B on its
//! tunnel link that A will come from the address the replica sees A's
//! packets come from, for the services of that instance's tenant
//! ([`Request::PunchOpen`]), and answers A with the address B's link comes
//! from. B, before it answers, sends QUIC handshake packets towards A, so
//! that B's NAT lets A's packets in; then A dials B with B's key pinned.
//! The connection is QUIC with TLS 1.3 between the two node keys, like
//! every connection of the cluster, so no TLS runs inside it.
//!
//! **What B lets in** is B's decision, made from what the replica told it
//! ([`Direct`] permits): its endpoint answers handshakes only from the
//! addresses of peers introduced to it ([`stratus_net::Endpoint::bind_guarded`];
//! to anyone else it looks like a node that only dials out), keeps a
//! connection only from a peer introduced to it (and closes it within
//! half a minute of the introduction running out), and connects a stream on
//! it only to a listed service instance of a tenant that peer was
//! introduced for. An introduction lasts [`PERMIT_FOR`]; A asks again
//! after [`REFRESH_AFTER`] while it keeps connecting, so a node that stops
//! running a tenant's instances (or is banned) loses direct access within
//! two minutes, as the replica stops introducing it.
//!
//! **Behind one NAT.** Two nodes behind the same NAT usually cannot reach
//! each other at its public address (no hairpinning): each also gives the
//! other, through the replica, its private addresses, and A dials them
//! all at once (the first handshake that completes wins).
//!
//! **Fallback.** The first connection to a node is relayed while the
//! introduction runs in the background; later ones go direct once the
//! direct connection is up. When the dial fails (a NAT that maps each
//! destination to another port, UDP blocked) connections stay relayed, and
//! the node asks again only after [`RETRY_AFTER`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stratus_net::{Connection, Endpoint, Links};
use stratus_proto::{rpc, Request, Response, MAX_LOCAL_ADDRS};
use stratus_types::NodeId;

use crate::services::ServiceTable;

/// How long an introduction lets a peer in.
pub const PERMIT_FOR: Duration = Duration::from_secs(120);
/// When a node asks again for an introduction it still uses.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// When a node tries again to reach a node it could not reach directly.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Bound of the introduction call.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the introduced node sends handshake packets towards the
/// peer, and for how long (while the peer has not connected).
const PUNCH_EVERY: Duration = Duration::from_millis(200);
const PUNCH_FOR: Duration = Duration::from_secs(4);
/// How often connections of peers no longer introduced are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Most peers introduced to one node at once (a replica that floods a
/// node with introductions cannot make it keep more).
const MAX_PEERS: usize = 1024;
/// Most tenants one peer is introduced for at once.
const MAX_TENANTS: usize = 64;

/// What a peer introduced to this node may do.
#[derive(Debug)]
struct Permit {
    /// Where its packets come from.
    addr: SocketAddr,
    /// Its addresses on its own network (as it says), where it may come
    /// from when it is behind the same NAT as this node.
    local: Vec<SocketAddr>,
    /// Whose services it may reach, until when.
    tenants: HashMap<String, Instant>,
    /// When this node last started sending packets towards it.
    knocked: Option<Instant>,
}

impl Permit {
    /// Whether it still lets the peer reach some tenant's services.
    fn live(&self, now: Instant) -> bool {
        self.tenants.values().any(|until| *until > now)
    }
}

/// An introduction this node asked for.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// Under way.
    Pending,
    /// Done at this time: the direct connection is up.
    Done(Instant),
    /// Failed at this time: relayed until [`RETRY_AFTER`].
    Failed(Instant),
}

/// This node's direct connections: the peers introduced to it, and the
/// direct connections it dialed.
#[derive(Default)]
pub struct Direct {
    /// Whether this node takes direct connections (its endpoint is
    /// guarded and belongs to the agent).
    enabled: std::sync::atomic::AtomicBool,
    permits: Mutex<HashMap<NodeId, Permit>>,
    asked: Mutex<HashMap<(NodeId, String), Asked>>,
    dialed: Links,
    /// Connections peers dialed to this node, by peer.
    accepted: Links,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Direct {
    /// Takes direct connections from now on.
    pub(crate) fn enable(&self) {
        self.enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lets `peer`, whose packets come from `addr`, reach `tenant`'s
    /// services here until `now + PERMIT_FOR` (a new address replaces the
    /// old: the peer's NAT mapping changed). Refused when the node takes
    /// no direct connections, or keeps too many introductions. `Ok(true)`:
    /// packets should be sent towards `addr` now (not while an earlier
    /// introduction's are still being sent there: a node asking again and
    /// again makes this node knock no more often).
    pub(crate) fn admit(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        local: &[SocketAddr],
        tenant: &str,
        now: Instant,
    ) -> Result<bool, String> {
        if !self.enabled() {
            return Err("this node takes no direct connections".into());
        }
        let mut permits = lock(&self.permits);
        permits.retain(|_, p| {
            p.tenants.retain(|_, until| *until > now);
            !p.tenants.is_empty()
        });
        if !permits.contains_key(&peer) && permits.len() >= MAX_PEERS {
            return Err("this node keeps too many introductions".into());
        }
        let p = permits.entry(peer).or_insert_with(|| Permit {
            addr,
            local: Vec::new(),
            tenants: HashMap::new(),
            knocked: None,
        });
        p.local = local.to_vec();
        if !p.tenants.contains_key(tenant) && p.tenants.len() >= MAX_TENANTS {
            return Err("too many tenants for one peer".into());
        }
        if p.addr != addr {
            p.addr = addr;
            p.knocked = None;
        }
        p.tenants.insert(tenant.to_string(), now + PERMIT_FOR);
        let knock = p
            .knocked
            .is_none_or(|at| now.duration_since(at) >= PUNCH_FOR);
        if knock {
            p.knocked = Some(now);
        }
        Ok(knock)
    }

    /// Whether a handshake from `addr` is answered: the address of a peer
    /// introduced and not expired.
    pub(crate) fn expects(&self, addr: SocketAddr, now: Instant) -> bool {
        lock(&self.permits)
            .values()
            .any(|p| (p.addr == addr || p.local.contains(&addr)) && p.live(now))
    }

    /// Whether `peer` may reach `tenant`'s services here now.
    pub(crate) fn permits(&self, peer: &NodeId, tenant: &str, now: Instant) -> bool {
        lock(&self.permits)
            .get(peer)
            .and_then(|p| p.tenants.get(tenant))
            .is_some_and(|until| *until > now)
    }

    /// Whether `peer` may keep a direct connection to this node at all.
    fn introduced(&self, peer: &NodeId, now: Instant) -> bool {
        lock(&self.permits).get(peer).is_some_and(|p| p.live(now))
    }

    /// The direct connection to `node` for `tenant`'s services, if one is
    /// up and its introduction has not run out. An introduction whose
    /// connection has ended is forgotten, so the next connection asks
    /// again.
    pub(crate) fn usable(&self, node: &NodeId, tenant: &str, now: Instant) -> Option<Connection> {
        let mut asked = lock(&self.asked);
        let key = (*node, tenant.to_string());
        let fresh = matches!(
            asked.get(&key),
            Some(Asked::Done(at)) if now.duration_since(*at) < PERMIT_FOR - REFRESH_AFTER / 4
        );
        if !fresh {
            return None;
        }
        let conn = self.dialed.get(node);
        if conn.is_none() {
            asked.remove(&key);
        }
        conn
    }

    /// Whether an introduction to `node` for `tenant` should be asked now
    /// (none yet, or one to refresh, or a failure long enough ago); marks
    /// it under way if so.
    pub(crate) fn should_ask(&self, node: &NodeId, tenant: &str, now: Instant) -> bool {
        let mut asked = lock(&self.asked);
        let key = (*node, tenant.to_string());
        let ask = match asked.get(&key) {
            None => true,
            Some(Asked::Pending) => false,
            Some(Asked::Done(at)) => now.duration_since(*at) >= REFRESH_AFTER,
            Some(Asked::Failed(at)) => now.duration_since(*at) >= RETRY_AFTER,
        };
        if ask {
            asked.insert(key, Asked::Pending);
        }
        ask
    }

    fn settle(&self, node: NodeId, tenant: &str, outcome: Asked) {
        lock(&self.asked).insert((node, tenant.to_string()), outcome);
    }

    /// Forgets that the introduction to `node` for `tenant` worked (its
    /// connection failed): the next connection asks again.
    pub(crate) fn forget(&self, node: &NodeId, tenant: &str) {
        lock(&self.asked).remove(&(*node, tenant.to_string()));
    }
}

/// Makes `table`'s node take direct connections on `endpoint`, if the
/// endpoint is the agent's own guarded one (a node that is also a replica
/// has a server endpoint, whose connections the replica serves: it takes
/// none).
pub(crate) fn accept(endpoint: Endpoint, table: Arc<ServiceTable>) {
    if !endpoint.is_guarded() {
        return;
    }
    let direct = table.direct();
    direct.enable();
    let guard_table = Arc::downgrade(&table);
    endpoint.set_guard(Arc::new(move |addr| {
        guard_table
            .upgrade()
            .is_some_and(|t| t.direct().expects(addr, Instant::now()))
    }));
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let conn = tokio::select! {
                c = endpoint.accept() => match c { Some(c) => c, None => return },
                _ = sweep.tick() => {
                    // A peer whose introductions ran out keeps no
                    // connection here.
                    let now = Instant::now();
                    let direct = table.direct();
                    direct.accepted.retain(|peer| direct.introduced(peer, now));
                    continue;
                }
            };
            let peer = conn.remote_id();
            if !table.direct().introduced(&peer, Instant::now()) {
                tracing::debug!(peer = %peer.short(), "direct connection from a node not introduced: closed");
                conn.close();
                continue;
            }
            tracing::info!(peer = %peer.short(), addr = %conn.remote_addr(), "direct link from a peer up");
            table.direct().accepted.insert(conn.clone());
            tokio::spawn(crate::tunnels::serve(
                conn,
                table.clone(),
                endpoint.clone(),
                crate::tunnels::Via::Direct,
            ));
        }
    });
}

/// Answers a replica's [`Request::PunchOpen`]: admits the peer, sends
/// handshake packets towards it (the first before this returns, so the
/// NAT in front of this node lets the peer in by the time the peer is
/// told where to dial), and keeps sending them for a while in the
/// background until the peer has connected.
pub(crate) fn punch_open(
    table: &Arc<ServiceTable>,
    from: NodeId,
    (addr, local): (&str, &[String]),
    tenant: &str,
) -> Response {
    let refused = |message: String| Response::Error {
        code: stratus_types::ErrorCode::Unavailable,
        message,
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return refused(format!("bad address {addr:?}"));
    };
    let Some(endpoint) = table.endpoint().cloned() else {
        return refused("this node has no endpoint yet".into());
    };
    let answer = Response::Punched {
        addr: String::new(),
        local: local_addrs(&endpoint),
    };
    match table
        .direct()
        .admit(from, addr, &candidates(local), tenant, Instant::now())
    {
        Err(why) => return refused(why),
        Ok(false) => return answer,
        Ok(true) if table.direct().accepted.get(&from).is_some() => return answer,
        Ok(true) => {}
    }
    let knock = move |endpoint: &Endpoint| {
        // A handshake the peer does not answer (it expects no one): its
        // only use is the packet it sends through this node's NAT.
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(PUNCH_EVERY, endpoint.connect(addr, Some(from))).await;
        });
    };
    knock(&endpoint);
    let table = Arc::downgrade(table);
    tokio::spawn(async move {
        let until = Instant::now() + PUNCH_FOR;
        while Instant::now() < until {
            tokio::time::sleep(PUNCH_EVERY).await;
            let Some(t) = table.upgrade() else { return };
            if t.direct().accepted.get(&from).is_some() {
                return;
            }
            knock(&endpoint);
        }
    });
    answer
}

/// Asks for an introduction to `node` for `tenant` in the background
/// (through `instance`, one of its service instances there) if one is due
/// ([`Direct::should_ask`]).
pub(crate) fn introduce_if_due(
    table: &Arc<ServiceTable>,
    tenant: &str,
    instance: &str,
    node: NodeId,
    now: Instant,
) {
    if table.direct().should_ask(&node, tenant, now) {
        tokio::spawn(introduce(
            table.clone(),
            tenant.to_string(),
            instance.to_string(),
            node,
        ));
    }
}

/// Asks a replica to introduce this node to `node` (which runs
/// `instance` of `tenant`), then dials it directly; the outcome decides
/// whether this node's next connections to `node` go direct or stay
/// relayed. Runs in the background of a relayed connection.
async fn introduce(table: Arc<ServiceTable>, tenant: String, instance: String, node: NodeId) {
    let outcome = async {
        let endpoint = table.endpoint().cloned().ok_or("no endpoint yet")?;
        let mine = local_addrs(&endpoint);
        let (addr, local) = crate::tunnels::first_replica(table.links(), |conn| {
            let req = rpc::Punch {
                instance: instance.clone(),
                local: mine.clone(),
            };
            async move { conn.rpc(req, ASK_TIMEOUT).await.map_err(|e| e.to_string()) }
        })
        .await?;
        if table.direct().dialed.get(&node).is_some() {
            return Ok(());
        }
        let seen: SocketAddr = addr
            .parse()
            .map_err(|_| format!("the replica gave a bad address {addr:?}"))?;
        // Where the replica sees it, and where it says it is on its own
        // network (behind the same NAT, the public address may not lead
        // back in): all at once, the first handshake that completes wins.
        let mut tries = tokio::task::JoinSet::new();
        for to in std::iter::once(seen).chain(candidates(&local)) {
            let endpoint = endpoint.clone();
            tries.spawn(async move { (to, endpoint.connect(to, Some(node)).await) });
        }
        let mut why = String::from("no address to dial");
        let (conn, addr) = loop {
            match tries.join_next().await {
                Some(Ok((to, Ok(conn)))) => break (conn, to),
                Some(Ok((to, Err(e)))) => why = format!("{to}: {e}"),
                Some(Err(e)) => why = e.to_string(),
                None => return Err(why),
            }
        };
        tries.abort_all();
        tracing::info!(peer = %node.short(), %addr, "direct link to a peer up");
        table.direct().dialed.insert(conn);
        Ok::<(), String>(())
    };
    let settled = match outcome.await {
        Ok(()) => Asked::Done(Instant::now()),
        Err(why) => {
            tracing::info!(peer = %node.short(), %why, "no direct link to the peer: its connections stay relayed");
            Asked::Failed(Instant::now())
        }
    };
    table.direct().settle(node, &tenant, settled);
}

/// This node's addresses on its own network, with its endpoint's port:
/// the private IPv4 addresses of its interfaces (or the one it is bound
/// to), at most [`MAX_LOCAL_ADDRS`].
fn local_addrs(endpoint: &Endpoint) -> Vec<String> {
    let Ok(bound) = endpoint.local_addr() else {
        return Vec::new();
    };
    let mut ips = if bound.ip().is_unspecified() {
        // Sorted and without duplicates.
        stratus_container::net::egress::local_addresses()
    } else {
        vec![bound.ip()]
    };
    ips.retain(|ip| local(*ip));
    ips.truncate(MAX_LOCAL_ADDRS);
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, bound.port()).to_string())
        .collect()
}

/// Whether `ip` is an address of a private network (where a peer behind
/// the same NAT may reach it): RFC 1918 or shared address space (CGNAT).
fn local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(_) => false,
    }
}

/// The addresses of a peer's local list this node accepts and dials: at
/// most [`MAX_LOCAL_ADDRS`], private ones only (a peer cannot make this
/// node dial, or expect, addresses of the internet).
fn candidates(list: &[String]) -> Vec<SocketAddr> {
    list.iter()
        .take(MAX_LOCAL_ADDRS)
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .filter(|a| local(a.ip()))
        .collect()
}

/// A connection to `port` of `instance` over the direct connection `conn`
/// (already authenticated both ways: nothing runs inside).
pub(crate) async fn open(
    conn: &Connection,
    me: NodeId,
    instance: &str,
    port: u16,
    timeout: Duration,
) -> Result<stratus_net::Stream, String> {
    let req = Request::TunnelOpen {
        instance: instance.to_string(),
        port,
        from: me,
    };
    match conn.open_stream::<_, Response>(&req, timeout).await {
        Ok((Response::Ok, stream)) => Ok(stream),
        Ok((Response::Error { message, .. }, _)) => Err(message),
        Ok((r, _)) => Err(format!("unexpected answer {}", r.kind())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 77, 0, 10], port))
    }

    #[test]
    fn nothing_is_let_in_until_enabled_and_introduced() {
        let d = Direct::default();
        let now = Instant::now();
        assert!(d.admit(node(1), addr(1), &[], "t", now).is_err());
        assert!(!d.expects(addr(1), now));
        d.enable();
        assert!(!d.expects(addr(1), now));
        assert_eq!(d.admit(node(1), addr(1), &[], "t", now), Ok(true), "knock");
        assert!(d.expects(addr(1), now));
        assert!(!d.expects(addr(2), now), "another address");
        // Asked again at once: admitted, but no second round of packets.
        assert_eq!(d.admit(node(1), addr(1), &[], "t", now), Ok(false));
        assert_eq!(
            d.admit(node(1), addr(1), &[], "t", now + PUNCH_FOR),
            Ok(true)
        );
        assert!(d.permits(&node(1), "t", now));
        assert!(!d.permits(&node(1), "other", now), "another tenant");
        assert!(!d.permits(&node(2), "t", now), "another node");
    }

    #[test]
    fn introductions_run_out_and_a_new_address_replaces_the_old() {
        let d = Direct::default();
        d.enable();
        let now = Instant::now();
        d.admit(node(1), addr(1), &[], "t", now).expect("admitted");
        let later = now + PERMIT_FOR + Duration::from_secs(1);
        assert!(!d.permits(&node(1), "t", later));
        assert!(!d.expects(addr(1), later));
        assert!(!d.introduced(&node(1), later));
        d.admit(node(1), addr(9), &[], "u", now)
            .expect("admitted again");
        assert!(d.expects(addr(9), now));
        assert!(!d.expects(addr(1), now), "the old mapping is forgotten");
        assert!(d.permits(&node(1), "t", now) && d.permits(&node(1), "u", now));
    }

    #[test]
    fn only_a_few_private_local_addresses_are_taken_from_a_peer() {
        let said: Vec<String> = [
            "192.168.1.2:7000",
            "8.8.8.8:53",
            "not an address",
            "10.0.0.1:1",
            "100.64.0.9:2",
            "172.16.0.1:3",
            "10.0.0.2:4",
        ]
        .map(String::from)
        .to_vec();
        let got = candidates(&said);
        assert_eq!(
            got,
            vec![
                "192.168.1.2:7000".parse::<SocketAddr>().expect("addr"),
                "10.0.0.1:1".parse().expect("addr"),
            ],
            "private ones among the first {MAX_LOCAL_ADDRS} only"
        );
        assert!(local("100.64.0.9".parse().expect("ip")));
        assert!(!local("100.128.0.1".parse().expect("ip")));
        assert!(!local("127.0.0.1".parse().expect("ip")));
        // A peer let in at a local address it gave.
        let d = Direct::default();
        d.enable();
        let now = Instant::now();
        d.admit(node(1), addr(1), &got, "t", now).expect("admitted");
        assert!(d.expects(got[0], now) && d.expects(addr(1), now));
    }

    #[test]
    fn a_flood_of_introductions_is_bounded() {
        let d = Direct::default();
        d.enable();
        let now = Instant::now();
        for t in 0..MAX_TENANTS {
            d.admit(node(1), addr(1), &[], &format!("t{t}"), now)
                .expect("admitted");
        }
        assert!(d.admit(node(1), addr(1), &[], "one-more", now).is_err());
        // Expired ones make room.
        let later = now + PERMIT_FOR + Duration::from_secs(1);
        d.admit(node(1), addr(1), &[], "one-more", later)
            .expect("room once the others ran out");
    }

    #[test]
    fn introductions_are_asked_once_refreshed_and_retried_after_a_while() {
        let d = Direct::default();
        let now = Instant::now();
        assert!(d.should_ask(&node(2), "t", now));
        assert!(!d.should_ask(&node(2), "t", now), "one at a time");
        d.settle(node(2), "t", Asked::Failed(now));
        assert!(!d.should_ask(&node(2), "t", now + Duration::from_secs(1)));
        assert!(d.should_ask(&node(2), "t", now + RETRY_AFTER));
        d.settle(node(2), "t", Asked::Done(now));
        assert!(!d.should_ask(&node(2), "t", now + Duration::from_secs(1)));
        assert!(d.should_ask(&node(2), "t", now + REFRESH_AFTER));
        // Without a dialed connection nothing is usable, and the next
        // connection asks again.
        d.settle(node(2), "t", Asked::Done(now));
        assert!(d.usable(&node(2), "t", now).is_none());
        assert!(d.should_ask(&node(2), "t", now));
    }
}
