//! Real S3 clients (aws cli, rclone, s3cmd, boto3) against the gateway on
//! the in-memory backend, through the harness in `tests/clients/`.
//!
//! The clients are required: a missing one fails its test with the Debian
//! package to install (`apt-get install -y awscli s3cmd rclone python3-boto3`).
//! The same harness runs against any endpoint:
//! `/usr/bin/python3 crates/stratus-s3/tests/clients/s3_clients.py --endpoint URL
//! --access-key AK --secret SK --access-key-b AK2 --secret-b SK2`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::Gateway;

const AK_A: &str = "AKIASTRATUSTENANTA01";
const SK_A: &str = "secret/of+tenant-a/0123456789abcdefghij";
const AK_B: &str = "AKIASTRATUSTENANTB02";
const SK_B: &str = "secret-of-tenant-b-0123456789abcdefghij";

async fn run_client(client: &'static str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = Arc::new(
        MemKeys::new()
            .with(AK_A, SK_A, "tenant-a")
            .with(AK_B, SK_B, "tenant-b"),
    );
    let gateway = Gateway::new(Arc::new(MemBackend::new()), keys);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stratus_s3::serve(listener, gateway, async {
        let _ = stopped.await;
    }));

    let python = Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "/usr/bin/python3 is missing: apt-get install -y python3"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/s3_clients.py");
    let endpoint = format!("http://{addr}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--endpoint", &endpoint])
            .args(["--access-key", AK_A, "--secret", SK_A])
            .args(["--access-key-b", AK_B, "--secret-b", SK_B])
            .args(["--only", client])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(out.status.success(), "{client} failed:\n{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli() {
    run_client("aws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone() {
    run_client("rclone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3cmd() {
    run_client("s3cmd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3() {
    run_client("boto3").await;
}
