//! `stratus bench net`: service-to-service connections, beside plain TCP on
//! loopback in the same run.
//!
//! Three paths to the same TCP echo server, in-process on loopback:
//!
//! * **loopback**: a TCP connection straight to it (the reference);
//! * **same node**: through one userspace splice, as a container's
//!   connection to a service on its own node goes (the agent's proxy
//!   accepts it and copies to the instance's socket);
//! * **relayed**: as a connection to a service on another node goes: the
//!   caller opens a [`Request::Tunnel`] stream to a replica, which opens a
//!   [`Request::TunnelOpen`] stream on the callee's link (a QUIC
//!   connection the callee dialed) and copies between the two; caller and
//!   callee run TLS between their node keys inside (`stratus-net`'s
//!   `seal_dial`/`seal_accept`), the callee connects to the server.
//!
//! * **direct**: as a connection to a service on another node goes once
//!   the two nodes were introduced (hole punching, `stratus-agent`'s
//!   `direct`): a [`Request::TunnelOpen`] stream on the QUIC connection
//!   the caller dialed to the callee's guarded endpoint, no TLS inside
//!   (the connection is already authenticated by both keys), the callee
//!   connecting to the server. On loopback there is no NAT to punch: the
//!   row measures the path a punched connection takes once it is up.
//!
//! Latency is the round trip of one byte (median and 99th percentile);
//! throughput is bytes echoed per second with the sender and the reader
//! running at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stratus_net::{Connection, Endpoint, Identity, Reply};
use stratus_proto::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{bail, Result};

const T: Duration = Duration::from_secs(30);

/// A TCP server echoing every byte.
async fn echo_server() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// A TCP proxy to `to`: one userspace splice per connection.
async fn splice_to(to: SocketAddr) -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                if let Ok(mut up) = TcpStream::connect(to).await {
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                }
            });
        }
    });
    Ok(addr)
}

/// A replica that relays tunnels, and a callee linked to it that connects
/// them to `to`; returns the caller's connection to the replica and the
/// callee's id.
async fn relay_to(to: SocketAddr) -> Result<(Endpoint, Connection, stratus_types::NodeId)> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let replica = Endpoint::bind(&Identity::generate(), any).await?;
    let callee = Endpoint::dial_only(&Identity::generate(), any).await?;
    let caller = Endpoint::dial_only(&Identity::generate(), any).await?;
    let replica_addr = replica.local_addr()?;
    let callee_id = callee.node_id();

    // The callee's link: dialed by it, served by it.
    let link = callee
        .connect(replica_addr, Some(replica.node_id()))
        .await?;
    let served = callee.clone();
    tokio::spawn(async move {
        while let Ok(Some(mut call)) = link.accept_call().await {
            let ep = served.clone();
            tokio::spawn(async move {
                let Ok(Request::TunnelOpen { from, .. }) = call.read::<Request>().await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let Ok(stream) = call.respond_and_stream(&Response::Ok).await else {
                    return;
                };
                if let Ok(mut sealed) = ep.seal_accept(stream, from).await {
                    let _ = tokio::io::copy_bidirectional(&mut sealed, &mut up).await;
                }
            });
        }
    });
    // The replica: takes the callee's link, relays the caller's tunnels.
    let accepted = replica.clone();
    tokio::spawn(async move {
        let mut callee_link: Option<Connection> = None;
        while let Some(conn) = accepted.accept().await {
            if conn.remote_id() == callee_id {
                callee_link = Some(conn);
                continue;
            }
            let Some(link) = callee_link.clone() else {
                continue;
            };
            tokio::spawn(stratus_net::serve_connection_streams(
                conn,
                |_| 1 << 20,
                move |from, req: Request| {
                    let link = link.clone();
                    async move {
                        let Request::Tunnel { instance, port } = req else {
                            return Reply::Frame(Response::Ok);
                        };
                        let open = Request::TunnelOpen {
                            instance,
                            port,
                            from,
                        };
                        match link.open_stream::<_, Response>(&open, T).await {
                            Ok((Response::Ok, mut far)) => Reply::Stream(
                                Response::Ok,
                                Box::new(move |mut near| {
                                    Box::pin(async move {
                                        let _ = tokio::io::copy_bidirectional(&mut near, &mut far)
                                            .await;
                                    })
                                }),
                            ),
                            _ => Reply::Frame(Response::Ok),
                        }
                    }
                },
            ));
        }
    });
    // The callee's link reaches the replica before the caller does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let conn = caller
        .connect(replica_addr, Some(replica.node_id()))
        .await?;
    Ok((caller, conn, callee_id))
}

/// A callee that takes the caller's direct connection and connects its
/// streams to `to`; returns the caller's direct connection.
async fn direct_to(to: SocketAddr) -> Result<Connection> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let callee = Endpoint::bind_guarded(&Identity::generate(), any).await?;
    let caller = Endpoint::dial_only(&Identity::generate(), any).await?;
    let expected = caller.local_addr()?;
    callee.set_guard(std::sync::Arc::new(move |a| a == expected));
    let accepting = callee.clone();
    tokio::spawn(async move {
        while let Some(conn) = accepting.accept().await {
            tokio::spawn(async move {
                while let Ok(Some(mut call)) = conn.accept_call().await {
                    tokio::spawn(async move {
                        let Ok(Request::TunnelOpen { .. }) = call.read::<Request>().await else {
                            return;
                        };
                        let Ok(mut up) = TcpStream::connect(to).await else {
                            return;
                        };
                        let _ = up.set_nodelay(true);
                        if let Ok(mut stream) = call.respond_and_stream(&Response::Ok).await {
                            let _ = tokio::io::copy_bidirectional(&mut stream, &mut up).await;
                        }
                    });
                }
            });
        }
    });
    Ok(caller
        .connect(callee.local_addr()?, Some(callee.node_id()))
        .await?)
}

/// Round trips of one byte: (median, 99th percentile).
async fn latency<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    n: usize,
) -> Result<(Duration, Duration)> {
    let mut times = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for i in 0..n + n / 10 {
        let t = Instant::now();
        s.write_all(&[7]).await?;
        s.flush().await?;
        s.read_exact(&mut b).await?;
        if i >= n / 10 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 99 / 100]))
}

/// Echoes `bytes` through `s` (writer and reader at once): bytes per second.
async fn throughput<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    bytes: u64,
) -> Result<f64> {
    let (mut r, mut w) = tokio::io::split(s);
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        let block = vec![0x5au8; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            w.write_all(&block[..n]).await?;
            left -= n as u64;
        }
        w.flush().await?;
        Ok::<_, std::io::Error>(w)
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0u64;
    while got < bytes {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            bail!("the echo ended after {got} of {bytes} bytes");
        }
        got += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    let _w = writer.await??;
    Ok(bytes as f64 / secs)
}

/// Runs the benchmark: `mib` MiB echoed and `trips` round trips per path.
pub(crate) async fn net(mib: u64, trips: usize) -> Result<()> {
    let echo = echo_server().await?;
    let spliced = splice_to(echo).await?;
    let (caller, conn, callee) = relay_to(echo).await?;
    let relayed = || async {
        let req = Request::Tunnel {
            instance: "bench".into(),
            port: 0,
        };
        let (answer, stream) = conn.open_stream::<_, Response>(&req, T).await?;
        if !matches!(answer, Response::Ok) {
            bail!("the relay answered {answer:?}");
        }
        Ok(caller.seal_dial(stream, callee).await?)
    };
    let direct_conn = direct_to(echo).await?;
    let direct = || async {
        let req = Request::TunnelOpen {
            instance: "bench".into(),
            port: 0,
            from: caller.node_id(),
        };
        let (answer, stream) = direct_conn.open_stream::<_, Response>(&req, T).await?;
        if !matches!(answer, Response::Ok) {
            bail!("the callee answered {answer:?}");
        }
        Ok(stream)
    };
    let bytes = mib << 20;
    println!("service-to-service connections, {trips} round trips of 1 byte and {mib} MiB echoed per path");
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>10}",
        "path", "rtt p50", "rtt p99", "MiB/s", "vs loopback"
    );
    let mut rows = Vec::new();
    let mut s = TcpStream::connect(echo).await?;
    s.set_nodelay(true)?;
    let lat = latency(&mut s, trips).await?;
    let tput = throughput(TcpStream::connect(echo).await?, bytes).await?;
    rows.push(("loopback TCP (reference)", lat, tput));
    let mut s = TcpStream::connect(spliced).await?;
    s.set_nodelay(true)?;
    let lat = latency(&mut s, trips).await?;
    let tput = throughput(TcpStream::connect(spliced).await?, bytes).await?;
    rows.push(("same node (one splice)", lat, tput));
    let mut s = relayed().await?;
    let lat = latency(&mut s, trips).await?;
    let tput = throughput(relayed().await?, bytes).await?;
    rows.push(("relayed (QUIC + TLS e2e)", lat, tput));
    let mut s = direct().await?;
    let lat = latency(&mut s, trips).await?;
    let tput = throughput(direct().await?, bytes).await?;
    rows.push(("direct (QUIC, hole-punched)", lat, tput));
    let (base_lat, base_tput) = (rows[0].1 .0, rows[0].2);
    let (relayed_tput, direct_tput) = (rows[2].2, rows[3].2);
    for (name, (p50, p99), tput) in rows {
        println!(
            "{name:<28} {:>10.1}µs {:>10.1}µs {:>12.0} {:>5.2}× / {:.2}×",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            tput / (1 << 20) as f64,
            p50.as_secs_f64() / base_lat.as_secs_f64(),
            tput / base_tput,
        );
    }
    println!("(vs loopback: latency ratio / throughput ratio; goals: direct and same-node latency ≤ 1.5×, relayed throughput ≥ 0.5× of direct)");
    println!(
        "relayed throughput / direct: {:.2}×",
        relayed_tput / direct_tput
    );
    Ok(())
}
