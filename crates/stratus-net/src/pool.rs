//! A cache of live connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_types::NodeId;

use crate::{Connection, Endpoint, NetError};

type Key = (SocketAddr, Option<NodeId>);
type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Caches one live connection per (address, expected id) and redials when
/// the cached one is closed. Cheap to clone; clones share the cache.
///
/// Concurrent [`Pool::get`]s for the same key share a single dial.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    endpoint: Endpoint,
    slots: Mutex<HashMap<Key, Slot>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool dialing from `endpoint`.
    pub fn new(endpoint: Endpoint) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                endpoint,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The endpoint connections are dialed from.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    fn slot(&self, key: Key) -> Slot {
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key).or_default().clone()
    }

    /// The cached live connection to `addr` (with identity `expected`, if
    /// given), dialing a new one if there is none or it has closed.
    pub async fn get(
        &self,
        addr: SocketAddr,
        expected: Option<NodeId>,
    ) -> Result<Connection, NetError> {
        let slot = self.slot((addr, expected));
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        *cached = None;
        let conn = self.inner.endpoint.connect(addr, expected).await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the cached connection for `key` if it is still `stable_id`.
    async fn invalidate(&self, key: Key, stable_id: usize) {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if cached.as_ref().map(Connection::stable_id) == Some(stable_id) {
            *cached = None;
        }
    }

    /// [`Pool::get`] then [`Connection::call`]; `timeout` bounds both. On a
    /// transport error ([`NetError::is_transport`]) the cached connection is
    /// dropped so the next call redials. Calls are never retried here: the
    /// request may or may not have been processed.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        expected: Option<NodeId>,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = match tokio::time::timeout_at(deadline, self.get(addr, expected)).await {
            Ok(conn) => conn?,
            Err(_) => return Err(NetError::Timeout(timeout)),
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = conn.call(req, remaining).await;
        if let Err(e) = &result {
            if e.is_transport() {
                tracing::debug!(%addr, error = %e, "dropping pooled connection");
                self.invalidate((addr, expected), conn.stable_id()).await;
            }
        }
        // Report the caller's timeout, not the remainder after dialing.
        match result {
            Err(NetError::Timeout(_)) => Err(NetError::Timeout(timeout)),
            other => other,
        }
    }
}
