//! Tests of the transport over loopback.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::*;

const T: Duration = Duration::from_secs(10);

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn endpoint() -> Endpoint {
    Endpoint::bind(&Identity::generate(), localhost())
        .await
        .expect("bind")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    seq: u64,
    text: String,
    blob: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pong {
    seq: u64,
    from: NodeId,
    len: usize,
}

async fn pong(from: NodeId, req: Ping) -> Pong {
    Pong {
        seq: req.seq,
        from,
        len: req.text.len() + req.blob.len(),
    }
}

/// Accepts connections forever, serving each with [`pong`].
fn spawn_server(ep: Endpoint) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            tokio::spawn(serve_connection(conn, pong));
        }
    })
}

#[tokio::test]
async fn handshake_both_sides_see_each_others_id() {
    let server = endpoint().await;
    let client = endpoint().await;
    let addr = server.local_addr().expect("addr");

    let (dialed, accepted) = tokio::join!(
        client.connect(addr, Some(server.node_id())),
        server.accept()
    );
    let dialed = dialed.expect("connect");
    let accepted = accepted.expect("accept");
    assert_eq!(dialed.remote_id(), server.node_id());
    assert_eq!(accepted.remote_id(), client.node_id());
    assert_eq!(dialed.remote_addr(), addr);
    assert_eq!(
        accepted.raw().remote_address(),
        client.local_addr().expect("addr")
    );

    // Without pinning the identity, the peer's key is still learned.
    let (dialed, accepted) = tokio::join!(client.connect(addr, None), server.accept());
    assert_eq!(dialed.expect("connect").remote_id(), server.node_id());
    assert_eq!(accepted.expect("accept").remote_id(), client.node_id());

    // And the other way round: every endpoint both dials and accepts.
    let client_addr = client.local_addr().expect("addr");
    let (dialed, accepted) = tokio::join!(
        server.connect(client_addr, Some(client.node_id())),
        client.accept()
    );
    assert_eq!(dialed.expect("connect").remote_id(), client.node_id());
    assert_eq!(accepted.expect("accept").remote_id(), server.node_id());
}

#[tokio::test]
async fn wrong_expected_id_fails() {
    let server = endpoint().await;
    let client = endpoint().await;
    let _srv = spawn_server(server.clone());
    let addr = server.local_addr().expect("addr");
    let someone_else = Identity::generate().node_id();

    let err = client
        .connect(addr, Some(someone_else))
        .await
        .expect_err("must refuse the wrong peer");
    match &err {
        NetError::WrongPeer { expected, got, .. } => {
            assert_eq!(*expected, someone_else);
            assert_eq!(*got, server.node_id());
        }
        other => panic!("expected WrongPeer, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&someone_else.to_string()), "{msg}");
    assert!(msg.contains(&server.node_id().to_string()), "{msg}");
    assert!(err.is_transport());

    // The right id still works afterwards.
    let conn = client
        .connect(addr, Some(server.node_id()))
        .await
        .expect("connect");
    assert_eq!(conn.remote_id(), server.node_id());
}

#[tokio::test]
async fn call_round_trip() {
    let server = endpoint().await;
    let client = endpoint().await;
    let addr = server.local_addr().expect("addr");
    let client_id = client.node_id();

    let srv = {
        let server = server.clone();
        tokio::spawn(async move {
            let conn = server.accept().await.expect("accept");
            let mut call = conn
                .accept_call()
                .await
                .expect("accept_call")
                .expect("a call");
            assert_eq!(call.peer(), client_id);
            let req: Ping = call.read().await.expect("read");
            let resp = pong(conn.remote_id(), req).await;
            call.respond(&resp).await.expect("respond");
            // The client closes; the serving side sees a clean end.
            assert!(conn.accept_call().await.expect("clean close").is_none());
        })
    };

    let conn = client
        .connect(addr, Some(server.node_id()))
        .await
        .expect("connect");
    let req = Ping {
        seq: 7,
        text: "héllo".into(),
        blob: vec![1, 2, 3],
    };
    let resp: Pong = conn.call(&req, T).await.expect("call");
    assert_eq!(
        resp,
        Pong {
            seq: 7,
            from: client_id,
            len: 9
        }
    );
    conn.close();
    assert!(conn.is_closed());
    srv.await.expect("server task");
}

#[tokio::test]
async fn fifty_concurrent_calls_on_one_connection() {
    let server = endpoint().await;
    let client = endpoint().await;
    let _srv = tokio::spawn({
        let server = server.clone();
        async move {
            while let Some(conn) = server.accept().await {
                // Answers out of order: later requests finish first.
                tokio::spawn(serve_connection(
                    conn,
                    |from: NodeId, req: Ping| async move {
                        tokio::time::sleep(Duration::from_millis(50 - req.seq)).await;
                        pong(from, req).await
                    },
                ));
            }
        }
    });
    let conn = client
        .connect(server.local_addr().expect("addr"), Some(server.node_id()))
        .await
        .expect("connect");
    let calls = (0..50u64).map(|seq| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let req = Ping {
                seq,
                text: "x".repeat(seq as usize),
                blob: vec![0; 1000],
            };
            conn.call::<Ping, Pong>(&req, T).await
        })
    });
    let calls: Vec<_> = calls.collect();
    for (seq, call) in calls.into_iter().enumerate() {
        let resp = call.await.expect("task").expect("call");
        assert_eq!(resp.seq, seq as u64);
        assert_eq!(resp.from, client.node_id());
        assert_eq!(resp.len, seq + 1000);
    }
}

#[tokio::test]
async fn oversize_frame_refused_by_sender() {
    let server = endpoint().await;
    let client = endpoint().await;
    let _srv = spawn_server(server.clone());
    let conn = client
        .connect(server.local_addr().expect("addr"), None)
        .await
        .expect("connect");
    let req = Ping {
        seq: 1,
        text: String::new(),
        blob: vec![0; MAX_FRAME_LEN],
    };
    let err = conn
        .call::<Ping, Pong>(&req, T)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, NetError::FrameTooLarge { max, .. } if max == MAX_FRAME_LEN as u64),
        "{err:?}"
    );
    assert!(!err.is_transport());
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    // The connection is still usable.
    let small = Ping {
        seq: 2,
        text: "ok".into(),
        blob: vec![],
    };
    let resp: Pong = conn.call(&small, T).await.expect("call");
    assert_eq!(resp.seq, 2);
}

#[tokio::test]
async fn oversize_and_bad_version_frames_refused_by_receiver() {
    let server = endpoint().await;
    let client = endpoint().await;
    let (dialed, accepted) = tokio::join!(
        client.connect(server.local_addr().expect("addr"), None),
        server.accept()
    );
    let dialed = dialed.expect("connect");
    let accepted = accepted.expect("accept");

    // A header announcing 100 MiB: refused before anything is allocated.
    let (mut send, _recv) = dialed.raw().open_bi().await.expect("open");
    send.write_all(&(100u32 << 20).to_be_bytes())
        .await
        .expect("write");
    send.write_all(&[stratus_proto::PROTOCOL_VERSION])
        .await
        .expect("write");
    let mut call = accepted.accept_call().await.expect("accept").expect("call");
    let err = call.read::<Ping>().await.expect_err("too large");
    assert!(
        matches!(err, NetError::FrameTooLarge { size, .. } if size == 100 << 20),
        "{err:?}"
    );

    // A frame with an unknown protocol version.
    let (mut send, _recv) = dialed.raw().open_bi().await.expect("open");
    send.write_all(&5u32.to_be_bytes()).await.expect("write");
    send.write_all(&[stratus_proto::PROTOCOL_VERSION.wrapping_add(1), 0, 0, 0, 0])
        .await
        .expect("write");
    let mut call = accepted.accept_call().await.expect("accept").expect("call");
    let err = call.read::<u32>().await.expect_err("bad version");
    assert!(matches!(err, NetError::BadVersion { .. }), "{err:?}");
    assert!(
        err.to_string().contains("unsupported protocol version"),
        "{err}"
    );
}

#[tokio::test]
async fn undecodable_request_fails_the_call_not_the_connection() {
    let server = endpoint().await;
    let client = endpoint().await;
    let _srv = spawn_server(server.clone());
    let conn = client
        .connect(server.local_addr().expect("addr"), None)
        .await
        .expect("connect");
    // The server expects a Ping; a bare u8 does not decode as one.
    let err = conn
        .call::<u8, Pong>(&1u8, T)
        .await
        .expect_err("undecodable");
    assert!(matches!(err, NetError::Stream(_)), "{err:?}");
    let ok: Pong = conn
        .call(
            &Ping {
                seq: 3,
                text: String::new(),
                blob: vec![],
            },
            T,
        )
        .await
        .expect("call");
    assert_eq!(ok.seq, 3);
}

#[tokio::test]
async fn call_times_out() {
    let server = endpoint().await;
    let client = endpoint().await;
    let _srv = tokio::spawn({
        let server = server.clone();
        async move {
            while let Some(conn) = server.accept().await {
                tokio::spawn(serve_connection(conn, |_: NodeId, _: u8| async {
                    std::future::pending::<u8>().await
                }));
            }
        }
    });
    let conn = client
        .connect(server.local_addr().expect("addr"), None)
        .await
        .expect("connect");
    let err = conn
        .call::<u8, u8>(&1, Duration::from_millis(100))
        .await
        .expect_err("timeout");
    assert!(matches!(err, NetError::Timeout(_)), "{err:?}");
    assert!(!err.is_transport());
}

#[test]
fn identity_file_is_private_and_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_dir = dir.path().join("nested").join("data");
    let first = Identity::load_or_create(&key_dir).expect("create");
    let path = key_dir.join("node.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&path).expect("read");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let second = Identity::load_or_create(&key_dir).expect("reload");
    assert_eq!(first.node_id(), second.node_id());
    assert_ne!(first.node_id(), Identity::generate().node_id());

    std::fs::write(&path, "garbage").expect("write");
    let err = Identity::load_or_create(&key_dir).expect_err("garbage key");
    assert!(matches!(err, NetError::KeyFile { .. }), "{err:?}");
}

#[tokio::test]
async fn pool_reuses_and_redials_after_close() {
    let server = endpoint().await;
    let _srv = spawn_server(server.clone());
    let addr = server.local_addr().expect("addr");
    let pool = Pool::new(endpoint().await);
    let expected = Some(server.node_id());

    let a = pool.get(addr, expected).await.expect("get");
    let b = pool.get(addr, expected).await.expect("get");
    assert_eq!(a.stable_id(), b.stable_id());

    a.close();
    let c = pool.get(addr, expected).await.expect("redial");
    assert_ne!(a.stable_id(), c.stable_id());
    assert!(!c.is_closed());
    let ping = Ping {
        seq: 1,
        text: String::new(),
        blob: vec![],
    };
    let resp: Pong = pool.call(addr, expected, &ping, T).await.expect("call");
    assert_eq!(resp.from, pool.endpoint().node_id());
}

#[tokio::test]
async fn pool_redials_after_server_restart() {
    let identity = Identity::generate();
    let server = Endpoint::bind(&identity, localhost()).await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let srv = spawn_server(server.clone());
    let pool = Pool::new(endpoint().await);
    let expected = Some(identity.node_id());
    let ping = |seq| Ping {
        seq,
        text: String::new(),
        blob: vec![],
    };

    let resp: Pong = pool.call(addr, expected, &ping(1), T).await.expect("call");
    assert_eq!(resp.seq, 1);

    // Ordered shutdown: close, stop the accept loop, drop every handle.
    server.close().await;
    assert!(server.accept().await.is_none());
    srv.await.expect("server task");
    drop(server);

    // The pool notices the closed connection; calls now fail until the
    // server is back (no timing assumptions: errors are just retried).
    let err = pool
        .call::<Ping, Pong>(addr, expected, &ping(2), Duration::from_secs(2))
        .await
        .expect_err("server is down");
    assert!(
        err.is_transport() || matches!(err, NetError::Timeout(_)),
        "{err:?}"
    );

    // Restart on the same port with the same identity. The old socket is
    // released asynchronously, so retry the bind.
    let mut attempts = 0;
    let server = loop {
        match Endpoint::bind(&identity, addr).await {
            Ok(ep) => break ep,
            Err(e) => {
                attempts += 1;
                assert!(attempts < 200, "cannot rebind {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let _srv = spawn_server(server.clone());

    let mut attempts = 0;
    let resp: Pong = loop {
        match pool.call(addr, expected, &ping(3), T).await {
            Ok(resp) => break resp,
            Err(e) => {
                attempts += 1;
                assert!(attempts < 20 && e.is_transport(), "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(resp.seq, 3);
    assert_eq!(resp.from, pool.endpoint().node_id());
}

#[tokio::test]
async fn closed_endpoint_refuses_to_dial() {
    let server = endpoint().await;
    let client = endpoint().await;
    client.close().await;
    let err = client
        .connect(server.local_addr().expect("addr"), None)
        .await
        .expect_err("closed");
    assert!(matches!(err, NetError::Closed), "{err:?}");
    assert!(client.accept().await.is_none());
}

#[test]
fn certificate_carries_the_node_key() {
    let identity = Identity::generate();
    let tls = crate::tls::TlsIdentity::new(&identity).expect("tls");
    let id = crate::tls::node_id_from_cert(tls.cert_der()).expect("parse");
    assert_eq!(id, identity.node_id());
}

#[test]
fn frame_encoding_layout() {
    let frame = crate::frame::encode(&0x0102_0304u32).expect("encode");
    assert_eq!(&frame[..4], &5u32.to_be_bytes());
    assert_eq!(frame[4], stratus_proto::PROTOCOL_VERSION);
    assert_eq!(&frame[5..], &[4, 3, 2, 1]);
    let v: u32 = crate::frame::decode(&frame[5..]).expect("decode");
    assert_eq!(v, 0x0102_0304);
    assert!(matches!(
        crate::frame::check_len(0u32.to_be_bytes(), crate::MAX_FRAME_LEN),
        Err(NetError::Decode(_))
    ));
}

#[tokio::test]
async fn dial_only_endpoints_refuse_inbound_but_dial_out() {
    let server = Endpoint::bind(&Identity::generate(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind server");
    let agent = Endpoint::dial_only(&Identity::generate(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind agent");
    // Outbound works...
    let conn = agent
        .connect(server.local_addr().expect("addr"), Some(server.node_id()))
        .await
        .expect("agent dials out");
    assert_eq!(conn.remote_id(), server.node_id());
    // ...inbound does not.
    let probe = Endpoint::bind(&Identity::generate(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind probe");
    let err = probe
        .connect(agent.local_addr().expect("addr"), None)
        .await
        .expect_err("a dial-only endpoint accepts nothing");
    assert!(err.is_transport(), "{err}");
}

/// A guarded endpoint answers nobody until its guard lets an address in,
/// then only that address: a stranger's handshake goes unanswered (it
/// times out) while the expected peer's completes.
#[tokio::test]
async fn guarded_endpoints_answer_only_the_addresses_let_in() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let node = Endpoint::bind_guarded(&Identity::generate(), any)
        .await
        .expect("bind guarded");
    assert!(node.is_guarded());
    let addr = node.local_addr().expect("addr");
    let (peer, stranger) = (endpoint().await, endpoint().await);
    // Nobody yet.
    let err = peer
        .connect(addr, Some(node.node_id()))
        .await
        .expect_err("nobody is let in yet");
    assert!(err.is_transport(), "{err}");
    let expected = peer.local_addr().expect("addr");
    node.set_guard(std::sync::Arc::new(move |a| a == expected));
    let accepting = node.clone();
    let accepted = tokio::spawn(async move { accepting.accept().await.map(|c| c.remote_id()) });
    let conn = peer
        .connect(addr, Some(node.node_id()))
        .await
        .expect("the peer let in connects");
    assert_eq!(conn.remote_id(), node.node_id());
    assert_eq!(accepted.await.expect("join"), Some(peer.node_id()));
    let err = stranger
        .connect(addr, Some(node.node_id()))
        .await
        .expect_err("a stranger is not answered");
    assert!(err.is_transport(), "{err}");
    // It still dials out like any endpoint.
    let server = endpoint().await;
    node.connect(server.local_addr().expect("addr"), Some(server.node_id()))
        .await
        .expect("a guarded endpoint dials out");
}
