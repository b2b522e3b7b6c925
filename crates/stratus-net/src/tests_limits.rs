//! What one peer may cost a server: frame bounds chosen per peer before a
//! frame is read, connections per peer key, streams per connection. Each
//! test plays the peer that tries to cost more.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::*;

const T: Duration = Duration::from_secs(20);

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A server whose peers may send frames of at most `max` bytes; counts the
/// requests its handler saw.
async fn limited_server(max: usize) -> (Endpoint, Arc<AtomicUsize>) {
    let server = Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind");
    let seen = Arc::new(AtomicUsize::new(0));
    let (ep, counter) = (server.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            let counter = counter.clone();
            tokio::spawn(serve_connection_limited(
                conn,
                move |_| max,
                move |_, req: Vec<u8>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move { req.len() as u64 }
                },
            ));
        }
    });
    (server, seen)
}

#[tokio::test]
async fn a_frame_over_the_peers_bound_is_cut_off_before_it_is_read() {
    let (server, seen) = limited_server(4096).await;
    let client = Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind");
    let conn = client
        .connect(server.local_addr().expect("addr"), Some(server.node_id()))
        .await
        .expect("connect");

    // 60 MiB: within the transport's 64 MiB frame limit, far over this
    // peer's bound.
    let err = conn
        .call::<Vec<u8>, u64>(&vec![7u8; 60 << 20], T)
        .await
        .expect_err("refused");
    assert!(matches!(err, NetError::FrameRefused), "{err:?}");
    assert!(
        err.to_string().contains("larger than the peer accepts"),
        "{err}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the handler never ran");
    // The receiver stopped the stream after the length prefix: flow control
    // kept the sender from pushing the frame, so it was never buffered.
    let sent = conn.raw().stats().udp_tx.bytes;
    assert!(sent < 16 << 20, "{sent} bytes went out for a refused frame");

    // The connection stays usable for requests within the bound.
    let n: u64 = conn.call(&vec![1u8; 100], T).await.expect("small call");
    assert_eq!(n, 100);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_frame_just_over_the_bound_is_refused_and_one_at_it_served() {
    // bincode of a Vec<u8>: 8-byte length + bytes; the frame adds the
    // version byte.
    let max = 1000;
    let (server, _) = limited_server(max).await;
    let client = Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind");
    let conn = client
        .connect(server.local_addr().expect("addr"), None)
        .await
        .expect("connect");
    let fits = max - 1 - 8;
    let n: u64 = conn.call(&vec![0u8; fits], T).await.expect("at the bound");
    assert_eq!(n, fits as u64);
    let err = conn
        .call::<Vec<u8>, u64>(&vec![0u8; fits + 1], T)
        .await
        .expect_err("over the bound");
    assert!(matches!(err, NetError::FrameRefused), "{err:?}");
}

#[tokio::test]
async fn one_peer_key_holds_a_bounded_number_of_connections() {
    let (server, _) = limited_server(4096).await;
    let addr = server.local_addr().expect("addr");
    let client = Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind");
    let mut conns = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_PEER {
        let c = client.connect(addr, None).await.expect("connect");
        let n: u64 = c.call(&vec![1u8; 3], T).await.expect("call");
        assert_eq!(n, 3);
        conns.push(c);
    }
    // One more from the same key: closed by the server after the handshake.
    let extra = client.connect(addr, None).await.expect("handshake");
    let err = extra
        .call::<Vec<u8>, u64>(&vec![1u8; 3], T)
        .await
        .expect_err("over the limit");
    assert!(err.is_transport(), "{err:?}");
    assert!(
        format!("{err:?}").contains("too many connections"),
        "{err:?}"
    );

    // Another key is not affected.
    let other = Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind");
    let c = other.connect(addr, None).await.expect("connect");
    let _: u64 = c.call(&vec![1u8; 3], T).await.expect("another key");

    // Closing one frees a slot.
    conns.pop().expect("a connection").close();
    let mut ok = false;
    for _ in 0..100 {
        let c = client.connect(addr, None).await.expect("connect");
        if c.call::<Vec<u8>, u64>(&vec![1u8; 3], T).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a slot is released when a connection closes");
}
