//! Scope keys from the sealed secrets of the replicated state.
//!
//! The state holds the cluster storage secret and private-scope seeds only
//! sealed under the cluster KEK (`stratus_state::sealing`); the store opens
//! them with the KEK its [`Meta`](crate::Meta) hands out, and seals a new
//! private seed before it goes into a command.

use stratus_chunk::ScopeKey;
use stratus_state::objects::{Bucket, DedupeScope, KeyScope};
use stratus_state::sealing::{s3_secret_label, Kek, Sealed, PRIVATE_SEED, STORAGE_SECRET};
use stratus_state::State;
use stratus_types::TenantName;

use crate::{Store, StoreError};

impl Store {
    /// The cluster KEK this replica holds.
    pub(crate) fn kek(&self) -> Result<Kek, StoreError> {
        self.inner.meta.kek().ok_or_else(|| {
            StoreError::unavailable(
                "this replica does not hold the cluster's key-encryption key yet (it is fetched from another replica); retry",
            )
        })
    }

    /// The secret and tenant of S3 access key `access_key`, opened (`None`
    /// when there is no such key or it cannot be opened here, which is
    /// logged).
    pub fn s3_secret(&self, access_key: &str) -> Option<(String, TenantName)> {
        let (sealed, tenant) = self.read(|s| {
            s.store
                .access_keys
                .get(access_key)
                .map(|k| (k.secret.clone(), k.tenant.clone()))
        })?;
        let opened = self
            .kek()
            .and_then(|kek| {
                kek.open(&s3_secret_label(access_key), &sealed)
                    .map_err(StoreError::from)
            })
            .and_then(|v| {
                String::from_utf8(v).map_err(|_| StoreError::internal("secret is not UTF-8"))
            });
        match opened {
            Ok(secret) => Some((secret, tenant)),
            Err(e) => {
                tracing::warn!(access_key, error = %e, "cannot open an S3 secret key");
                None
            }
        }
    }

    /// The cluster storage secret, opened.
    pub(crate) fn master_secret(kek: &Kek, state: &State) -> Result<[u8; 32], StoreError> {
        let sealed = state.store.secret.as_ref().ok_or_else(|| {
            StoreError::unavailable("the cluster storage secret is not set yet; retry")
        })?;
        open_key(kek, STORAGE_SECRET, sealed)
    }

    /// The scope key of a version's chunks.
    pub(crate) fn scope_key(
        kek: &Kek,
        state: &State,
        scope: &KeyScope,
    ) -> Result<ScopeKey, StoreError> {
        match scope {
            KeyScope::Public => Ok(ScopeKey::public()),
            KeyScope::Private(k) => Ok(ScopeKey::private(open_key(kek, PRIVATE_SEED, k)?)),
            KeyScope::Tenant(t) => Ok(ScopeKey::tenant(&Store::master_secret(kek, state)?, t)),
            // Only the client's key opens it (`customer::scope_for`).
            KeyScope::Customer { .. } => Err(crate::CustomerKeyError::Required.into()),
        }
    }

    /// The key scope new data of `bucket` is sealed with; `private_seed`
    /// makes the private key (random per object, derived per upload), which
    /// is sealed before it is stored.
    pub(crate) fn key_scope(
        kek: &Kek,
        bucket: &Bucket,
        private_seed: [u8; 32],
    ) -> Result<KeyScope, StoreError> {
        Ok(match bucket.scope {
            DedupeScope::Tenant => KeyScope::Tenant(bucket.tenant.clone()),
            DedupeScope::Public => KeyScope::Public,
            DedupeScope::Private => KeyScope::Private(
                kek.seal(PRIVATE_SEED, &private_seed)
                    .map_err(StoreError::from)?,
            ),
        })
    }
}

fn open_key(kek: &Kek, label: &str, sealed: &Sealed) -> Result<[u8; 32], StoreError> {
    kek.open_key(label, sealed).map_err(StoreError::from)
}
