//! Test support: an in-memory backend and key store (**for tests only**), and
//! the [`Backend`](crate::Backend) conformance suite that every backend, the
//! real object store included, should pass. Compiled only for this crate's
//! tests and with the `testing` feature, never in the product:
//!
//! ```no_run
//! # async fn f() {
//! stratus_s3::testing::backend_conformance(stratus_s3::testing::MemBackend::new).await;
//! # }
//! ```

mod conformance;
mod mem;

pub use conformance::*;
pub use mem::{MemBackend, MemKeys};
