//! Requesters' orders and what a placement could cost at most.
//!
//! An [`Order`] says the most a requester pays for one instance and which
//! of the fitting nodes it prefers. A node's offer **fits** an order when
//! the worst case of one instance there ([`worst_case`]: the per-task price
//! plus the instance's reserved CPU and memory for its whole wall-clock
//! limit, or one billing period for a service) is within the order's
//! `max_price` after the app and dataset prices. That worst case is what
//! the deal holds in escrow, so a lender is always paid in full for what it
//! reserved, and a requester never pays more than it said.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::money::{Amount, MoneyError};
use crate::settle::{usage_cost, Prices, Usage};

/// Which of the fitting nodes a requester prefers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    /// The lowest worst-case cost.
    Cheapest,
    /// The shortest distance to the spec's `constraints.near` point.
    Nearest,
    /// The cleanest declared energy source (solar, wind, hydro first).
    Greenest,
}

impl std::str::FromStr for Prefer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cheapest" => Ok(Prefer::Cheapest),
            "nearest" => Ok(Prefer::Nearest),
            "greenest" => Ok(Prefer::Greenest),
            _ => Err(format!(
                "{s:?} is no preference: use cheapest, nearest or greenest"
            )),
        }
    }
}

/// A requester's order for a workload's instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The most one instance may cost (`None`: whatever the requester's
    /// balance covers).
    pub max_price: Option<Amount>,
    /// Which fitting node to choose.
    pub prefer: Option<Prefer>,
    /// The requester's signature, when it signs its orders.
    pub signature: Option<OrderSignature>,
}

/// What one instance reserves on a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    /// CPU it may use, thousandths of a core.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// How long it may run (a task's wall-clock limit, a service's billing
    /// period), milliseconds.
    pub wall_ms: u64,
}

/// The most one instance reserving `r` can cost at `prices` plus the
/// per-task price `task`: every reserved resource used for the whole time.
pub fn worst_case(prices: &Prices, task: Amount, r: &Reserved) -> Result<Amount, MoneyError> {
    let cpu_ms = u128::from(r.cpu_millis) * u128::from(r.wall_ms) / 1000;
    let usage = Usage {
        cpu_ms: u64::try_from(cpu_ms).map_err(|_| MoneyError::Overflow {
            what: "a worst-case cost",
        })?,
        memory_peak_bytes: r.memory_bytes,
        wall_ms: r.wall_ms,
        bytes_served: 0,
    };
    usage_cost(prices, &usage)?.checked_add(task, "a worst-case cost")
}

/// Longest module reference an order's signature names, in bytes.
pub const MAX_ORDER_MODULE: usize = 512;
const ORDER_DOMAIN: &[u8] = b"stratus order v1\0";

/// A requester's signature over its order, made with the tenant's order
/// key (ed25519) so that another pool, or an auditor, can check later that
/// the requester asked for exactly this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSignature {
    /// The tenant's order key (public half).
    pub key: [u8; 32],
    /// The order is refused from this time on (ms since the Unix epoch).
    pub expires_ms: u64,
    /// What the requester deploys, as it named it (a module's content
    /// address; empty for an image, which the spec names).
    pub module: String,
    /// Ed25519 signature of [`Order::signed_bytes`].
    #[serde(with = "crate::metering::sig_bytes")]
    pub signature: [u8; 64],
}

/// Why an order's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The tenant has an order key and the order is not signed.
    #[error("tenant {0} signs its orders: this one is not signed")]
    Unsigned(String),
    /// Signed by another key than the tenant's.
    #[error("the order is signed by a key that is not tenant {0}'s order key")]
    WrongKey(String),
    /// The signature does not match the order.
    #[error("the order's signature does not match the order (forged or altered)")]
    BadSignature,
    /// Past its expiry.
    #[error("the order expired at {expires_ms} ms (now {now_ms} ms); sign a new one")]
    Expired {
        /// When it expired.
        expires_ms: u64,
        /// Now.
        now_ms: u64,
    },
    /// A field too long.
    #[error("the order's module reference is {0} bytes; at most {MAX_ORDER_MODULE}")]
    TooLong(usize),
}

impl Order {
    /// The bytes a requester signs: the tenant, the workload spec's hash,
    /// the module as named, the order's terms, the key and the expiry.
    pub fn signed_bytes(
        &self,
        tenant: &str,
        spec_hash: &[u8; 32],
        module: &str,
        key: &[u8; 32],
        expires_ms: u64,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(ORDER_DOMAIN.len() + 128 + tenant.len() + module.len());
        b.extend_from_slice(ORDER_DOMAIN);
        for s in [tenant, module] {
            b.extend_from_slice(&(s.len() as u64).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(spec_hash);
        b.extend_from_slice(key);
        match self.max_price {
            Some(m) => {
                b.push(1);
                b.extend_from_slice(&m.0.to_be_bytes());
            }
            None => b.push(0),
        }
        b.push(match self.prefer {
            None => 0,
            Some(Prefer::Cheapest) => 1,
            Some(Prefer::Nearest) => 2,
            Some(Prefer::Greenest) => 3,
        });
        b.extend_from_slice(&expires_ms.to_be_bytes());
        b
    }

    /// Checks that the order is signed by `registered` (the tenant's order
    /// key), over this tenant and spec, and not expired at `now_ms`.
    pub fn check_signature(
        &self,
        tenant: &str,
        spec_hash: &[u8; 32],
        registered: &[u8; 32],
        now_ms: u64,
    ) -> Result<(), OrderError> {
        let s = self
            .signature
            .as_ref()
            .ok_or_else(|| OrderError::Unsigned(tenant.to_string()))?;
        if s.module.len() > MAX_ORDER_MODULE {
            return Err(OrderError::TooLong(s.module.len()));
        }
        if s.key != *registered {
            return Err(OrderError::WrongKey(tenant.to_string()));
        }
        let key = VerifyingKey::from_bytes(&s.key).map_err(|_| OrderError::BadSignature)?;
        let bytes = self.signed_bytes(tenant, spec_hash, &s.module, &s.key, s.expires_ms);
        key.verify(&bytes, &Signature::from_bytes(&s.signature))
            .map_err(|_| OrderError::BadSignature)?;
        if now_ms >= s.expires_ms {
            return Err(OrderError::Expired {
                expires_ms: s.expires_ms,
                now_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_is_every_reserved_resource_for_the_whole_time() {
        let p = Prices {
            cpu_second: Amount(10),
            memory_gib_hour: Amount(3_600),
            ..Prices::default()
        };
        // Half a core for 100 s = 50 CPU-s = 500; 1 GiB for 100 s = 100.
        let r = Reserved {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
            wall_ms: 100_000,
        };
        assert_eq!(worst_case(&p, Amount(7), &r), Ok(Amount(607)));
        let huge = Reserved {
            cpu_millis: u64::MAX,
            memory_bytes: u64::MAX,
            wall_ms: u64::MAX,
        };
        assert!(worst_case(&p, Amount(0), &huge).is_err());
    }

    #[test]
    fn a_signed_order_verifies_and_forged_altered_expired_ones_do_not() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let spec = [9; 32];
        let mut order = Order {
            max_price: Some(Amount(500)),
            prefer: Some(Prefer::Greenest),
            signature: None,
        };
        let sign = |o: &Order, k: &SigningKey, module: &str, expires_ms: u64| OrderSignature {
            key: k.verifying_key().to_bytes(),
            expires_ms,
            module: module.into(),
            signature: k
                .sign(&o.signed_bytes(
                    "bob",
                    &spec,
                    module,
                    &k.verifying_key().to_bytes(),
                    expires_ms,
                ))
                .to_bytes(),
        };
        assert_eq!(
            order.check_signature("bob", &spec, &public, 1),
            Err(OrderError::Unsigned("bob".into()))
        );
        order.signature = Some(sign(&order, &key, "blake3:aa", 100));
        assert_eq!(order.check_signature("bob", &spec, &public, 99), Ok(()));
        assert!(matches!(
            order.check_signature("bob", &spec, &public, 100),
            Err(OrderError::Expired { .. })
        ));
        // Another tenant, another spec, a raised price: the signature fails.
        assert_eq!(
            order.check_signature("eve", &spec, &public, 1),
            Err(OrderError::BadSignature)
        );
        assert_eq!(
            order.check_signature("bob", &[8; 32], &public, 1),
            Err(OrderError::BadSignature)
        );
        let mut raised = order.clone();
        raised.max_price = Some(Amount(501));
        assert_eq!(
            raised.check_signature("bob", &spec, &public, 1),
            Err(OrderError::BadSignature)
        );
        // Signed by a key that is not the tenant's.
        let other = SigningKey::from_bytes(&[4; 32]);
        let mut forged = order.clone();
        forged.signature = Some(sign(&order, &other, "blake3:aa", 100));
        assert_eq!(
            forged.check_signature("bob", &spec, &public, 1),
            Err(OrderError::WrongKey("bob".into()))
        );
        // A module reference past the bound is refused before any check.
        let mut long = order.clone();
        let module = "m".repeat(MAX_ORDER_MODULE + 1);
        long.signature = Some(sign(&order, &key, &module, 100));
        assert_eq!(
            long.check_signature("bob", &spec, &public, 1),
            Err(OrderError::TooLong(MAX_ORDER_MODULE + 1))
        );
    }

    #[test]
    fn preferences_parse_and_unknown_ones_are_named() {
        assert_eq!("greenest".parse(), Ok(Prefer::Greenest));
        let e = "fastest".parse::<Prefer>().expect_err("unknown");
        assert!(e.contains("cheapest, nearest or greenest"), "{e}");
    }
}
