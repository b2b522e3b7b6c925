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
