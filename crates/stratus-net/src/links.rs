//! Links: connections a peer dialed to this node and asked it to keep for
//! calls the other way. A node that takes no inbound connection (behind a
//! NAT or a firewall) dials out, and is called back over what it dialed.
//!
//! QUIC lets either end of a connection open streams, so a link needs
//! nothing but bookkeeping: the dialing side serves calls on the connection
//! ([`crate::serve_connection`]) as it would on its listening endpoint, and
//! this side keeps the newest live link of each peer, under the id the
//! peer's key proved in the handshake, so no peer can take another's calls.
//! Who may link at all is the caller's decision (made before
//! [`Links::insert`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stratus_types::NodeId;

use crate::Connection;

/// The live links of this node, by peer.
#[derive(Clone, Default)]
pub struct Links(Arc<Mutex<HashMap<NodeId, Connection>>>);

impl Links {
    /// No links.
    pub fn new() -> Links {
        Links::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Connection>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `conn` as the link of its peer, in place of an older one.
    pub fn insert(&self, conn: Connection) {
        let mut map = self.map();
        map.retain(|_, c| !c.is_closed());
        map.insert(conn.remote_id(), conn);
    }

    /// The live link of `node`, if it has one (a closed one is forgotten).
    pub fn get(&self, node: &NodeId) -> Option<Connection> {
        let mut map = self.map();
        match map.get(node) {
            Some(c) if !c.is_closed() => Some(c.clone()),
            Some(_) => {
                map.remove(node);
                None
            }
            None => None,
        }
    }

    /// Closes and forgets the links of the peers `keep` refuses (and the
    /// closed ones).
    pub fn retain(&self, mut keep: impl FnMut(&NodeId) -> bool) {
        self.map().retain(|id, c| {
            let kept = !c.is_closed() && keep(id);
            if !kept {
                c.close();
            }
            kept
        });
    }

    /// The peers with a live link.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut map = self.map();
        map.retain(|_, c| !c.is_closed());
        let mut ids: Vec<NodeId> = map.keys().copied().collect();
        ids.sort();
        ids
    }
}

/// The control replicas a node links to: id → address.
pub type Replicas = std::collections::BTreeMap<NodeId, String>;

/// First wait before dialing a lost or refused link again; it doubles up
/// to [`LINK_RETRY_MAX`].
const LINK_RETRY: std::time::Duration = std::time::Duration::from_millis(250);
/// Longest wait between two attempts to link to a replica.
const LINK_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps a link of kind `what` to every replica in `replicas` until
/// `cancel`: dials it from `endpoint` with the replica's key pinned, has it
/// take the connection (`hello`, e.g. a call asking it to), then runs
/// `serve` on the connection until it ends; dials again when the link ends
/// or is refused (a node is refused until it is registered), waiting
/// longer after each failure, and drops the links of replicas that leave
/// the list.
pub async fn keep_links<H, HF, S, SF>(
    endpoint: crate::Endpoint,
    mut replicas: tokio::sync::watch::Receiver<Replicas>,
    what: &'static str,
    hello: H,
    serve: S,
    cancel: tokio_util::sync::CancellationToken,
) where
    H: Fn(Connection) -> HF + Clone + Send + Sync + 'static,
    HF: std::future::Future<Output = Result<(), String>> + Send + 'static,
    S: Fn(Connection) -> SF + Clone + Send + Sync + 'static,
    SF: std::future::Future<Output = ()> + Send + 'static,
{
    let mut links: HashMap<NodeId, (String, tokio_util::sync::CancellationToken)> = HashMap::new();
    loop {
        let want = replicas.borrow_and_update().clone();
        links.retain(|id, (addr, stop)| {
            let keep = want.get(id) == Some(addr);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (id, addr) in want {
            if links.contains_key(&id) {
                continue;
            }
            let stop = cancel.child_token();
            tokio::spawn(keep_link(
                endpoint.clone(),
                (id, addr.clone()),
                what,
                (hello.clone(), serve.clone()),
                stop.clone(),
            ));
            links.insert(id, (addr, stop));
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = replicas.changed() => if changed.is_err() { break },
        }
    }
    for (_, stop) in links.into_values() {
        stop.cancel();
    }
}

/// One replica's link, kept until `stop`.
async fn keep_link<H, HF, S, SF>(
    endpoint: crate::Endpoint,
    (id, addr): (NodeId, String),
    what: &'static str,
    (hello, serve): (H, S),
    stop: tokio_util::sync::CancellationToken,
) where
    H: Fn(Connection) -> HF,
    HF: std::future::Future<Output = Result<(), String>>,
    S: Fn(Connection) -> SF,
    SF: std::future::Future<Output = ()>,
{
    let mut wait = LINK_RETRY;
    loop {
        let dial = async {
            let sock = endpoint.resolve(&addr).await.map_err(|e| e.to_string())?;
            let conn = endpoint
                .connect(sock, Some(id))
                .await
                .map_err(|e| e.to_string())?;
            hello(conn.clone()).await.map(|()| conn)
        };
        let linked = tokio::select! {
            _ = stop.cancelled() => return,
            r = dial => r,
        };
        match linked {
            Ok(conn) => {
                tracing::info!(replica = %id.short(), %addr, what, "link up");
                wait = LINK_RETRY;
                let open = conn.clone();
                tokio::select! {
                    _ = stop.cancelled() => {
                        open.close();
                        return;
                    }
                    () = serve(conn) => {}
                }
                tracing::info!(replica = %id.short(), what, "link ended; dialing again");
            }
            Err(why) => {
                tracing::debug!(replica = %id.short(), %addr, what, %why, "cannot link");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(LINK_RETRY_MAX);
    }
}
