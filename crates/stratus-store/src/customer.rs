//! Objects sealed under a key only the client holds (S3 SSE-C).
//!
//! **Owns** the choice of scope key for a request that may carry a
//! client's key, and the refusals when the key is missing, wrong, or given
//! for an object that has none ([`CustomerKeyError`]).
//!
//! Such a version's [`KeyScope::Customer`] holds a salt and a keyed check
//! ([`stratus_chunk::CustomerSeal`]), never the key: its scope key is
//! derived from (client's key, salt) while a request carrying the key is
//! served, and forgotten after. So the control plane, whoever runs a
//! gateway between requests, and the storage nodes cannot open its chunks.
//! A multipart upload under a client's key keeps its seal in its
//! attributes (`VersionAttrs::customer_seal`); every part is sealed under
//! it, so a part must carry the same key. Copies of such versions are not
//! metadata-only: the gateway reads them with the source key and writes
//! them again (`Store::copy_object` refuses them).

use stratus_chunk::{CustomerKey, CustomerSeal, ScopeKey};
use stratus_state::objects::KeyScope;
use stratus_state::sealing::Kek;
use stratus_state::State;

use crate::{Store, StoreError};

/// Why a request and a version's customer key do not go together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CustomerKeyError {
    /// The version (or upload) is sealed under a client's key and the
    /// request carries none.
    #[error(
        "the object was stored with a customer-provided key (SSE-C); the request must carry it"
    )]
    Required,
    /// The request's key is not the one the version (or upload) is sealed
    /// under.
    #[error("the customer-provided key does not match the object's")]
    Mismatch,
    /// The request carries a key for a version (or upload) that has none.
    #[error("the object was not stored with a customer-provided key; the encryption parameters are not applicable")]
    NotApplicable,
}

/// A new seal of `key` (a fresh random salt): of a new object or
/// multipart upload.
pub fn fresh_seal(key: &CustomerKey) -> CustomerSeal {
    key.seal(rand::random())
}

/// How new data is sealed.
pub(crate) enum Sealing<'a> {
    /// By the bucket's dedupe scope; the seed makes a private key.
    Bucket([u8; 32]),
    /// Under a client's key and this seal (made from it).
    Customer {
        /// The client's key.
        key: &'a CustomerKey,
        /// Its salt and check.
        seal: CustomerSeal,
    },
}

/// The scope key that opens a version sealed with `scope`, for a request
/// that carries `customer`.
pub(crate) fn scope_for(
    kek: &Kek,
    state: &State,
    scope: &KeyScope,
    customer: Option<&CustomerKey>,
) -> Result<ScopeKey, StoreError> {
    match (scope.customer_seal(), customer) {
        (Some(seal), Some(key)) => Ok(seal.scope(key).ok_or(CustomerKeyError::Mismatch)?),
        (Some(_), None) => Err(CustomerKeyError::Required.into()),
        (None, Some(_)) => Err(CustomerKeyError::NotApplicable.into()),
        (None, None) => Store::scope_key(kek, state, scope),
    }
}

/// How a part of an upload sealed with `seal` (if any) is sealed, for a
/// request that carries `customer`.
pub(crate) fn part_sealing(
    seal: Option<CustomerSeal>,
    customer: Option<&CustomerKey>,
    private_seed: [u8; 32],
) -> Result<Sealing<'_>, CustomerKeyError> {
    match (seal, customer) {
        (Some(seal), Some(key)) if seal.opens_with(key) => Ok(Sealing::Customer { key, seal }),
        (Some(_), Some(_)) => Err(CustomerKeyError::Mismatch),
        (Some(_), None) => Err(CustomerKeyError::Required),
        (None, Some(_)) => Err(CustomerKeyError::NotApplicable),
        (None, None) => Ok(Sealing::Bucket(private_seed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_needs_the_uploads_key_exactly() {
        let (a, b) = (CustomerKey::new([1; 32]), CustomerKey::new([2; 32]));
        let seal = a.seal([5; 32]);
        assert!(matches!(
            part_sealing(Some(seal), Some(&a), [0; 32]),
            Ok(Sealing::Customer { .. })
        ));
        for (s, k, want) in [
            (Some(seal), Some(&b), CustomerKeyError::Mismatch),
            (Some(seal), None, CustomerKeyError::Required),
            (None, Some(&a), CustomerKeyError::NotApplicable),
        ] {
            assert_eq!(part_sealing(s, k, [0; 32]).err(), Some(want));
        }
        assert!(matches!(
            part_sealing(None, None, [3; 32]),
            Ok(Sealing::Bucket(seed)) if seed == [3; 32]
        ));
    }
}
