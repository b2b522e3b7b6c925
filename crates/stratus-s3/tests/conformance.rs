//! The backend conformance suite against the in-memory backend.

use stratus_s3::testing::{backend_conformance, MemBackend};

#[tokio::test]
async fn mem_backend_conforms() {
    backend_conformance(MemBackend::new).await;
}
