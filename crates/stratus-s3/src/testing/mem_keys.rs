//! [`MemKeys`], the in-memory [`KeyStore`] the tests sign with.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::backend::{KeyRecord, KeyStore};

/// An in-memory [`KeyStore`] (for tests).
#[derive(Default)]
pub struct MemKeys {
    keys: RwLock<HashMap<String, KeyRecord>>,
}

impl MemKeys {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `access_key` with `secret`, acting for `tenant`.
    pub fn insert(&self, access_key: &str, secret: &str, tenant: &str) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(
            access_key.to_owned(),
            KeyRecord {
                secret: secret.to_owned(),
                tenant: tenant.to_owned(),
            },
        );
    }

    /// Builder form of [`MemKeys::insert`].
    #[must_use]
    pub fn with(self, access_key: &str, secret: &str, tenant: &str) -> Self {
        self.insert(access_key, secret, tenant);
        self
    }
}

impl KeyStore for MemKeys {
    fn lookup(&self, access_key: &str) -> Option<KeyRecord> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(access_key).cloned()
    }

    fn tenant_exists(&self, tenant: &str) -> bool {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.values().any(|k| k.tenant == tenant)
    }
}
