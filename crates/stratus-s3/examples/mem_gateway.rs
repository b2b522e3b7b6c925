//! The gateway on the in-memory backend, for trying clients by hand:
//! `cargo run -p stratus-s3 --example mem_gateway -- 127.0.0.1:9000`
//! Keys: `AKIAEXAMPLETENANTA` / `secret-a` (tenant-a) and
//! `AKIAEXAMPLETENANTB` / `secret-b` (tenant-b).

use std::sync::Arc;

use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::Gateway;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let keys = MemKeys::new()
        .with("AKIAEXAMPLETENANTA", "secret-a", "tenant-a")
        .with("AKIAEXAMPLETENANTB", "secret-b", "tenant-b");
    let gateway = Gateway::new(Arc::new(MemBackend::new()), Arc::new(keys));
    stratus_s3::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
