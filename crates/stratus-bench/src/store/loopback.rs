//! A minimal HTTP/1.1 server on loopback: PUT bodies are read and dropped,
//! GETs answer `data`. The reference of `bench store` for the cost of the
//! HTTP client and TCP alone.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Result;

/// Starts the server; returns its address and its task (abort it to stop).
pub(crate) async fn loopback_http(
    data: Bytes,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(serve(sock, data.clone()));
        }
    });
    Ok((addr, task))
}

/// Answers the requests of one connection until it closes (or errs).
async fn serve(mut sock: TcpStream, data: Bytes) {
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    loop {
        // Read one request head.
        let end = loop {
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        let is_get = text.starts_with("get ");
        let chunked = text.contains("transfer-encoding: chunked");
        let rest = head.split_off(end);
        head = rest;
        if !is_get
            && chunked
            && skip_chunked_body(&mut sock, &mut buf, &mut head)
                .await
                .is_none()
        {
            return;
        }
        let answer = if is_get {
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", data.len())
        } else {
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string()
        };
        if sock.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if is_get {
            for c in data.chunks(1 << 20) {
                if sock.write_all(c).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Skips a chunked body chunk by chunk (`head` holds what was already
/// read); `None` when the connection closed or the body is malformed.
async fn skip_chunked_body(sock: &mut TcpStream, buf: &mut [u8], head: &mut Vec<u8>) -> Option<()> {
    loop {
        let line = loop {
            if let Some(i) = head.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            match sock.read(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        };
        let size = std::str::from_utf8(&head[..line])
            .ok()
            .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())?;
        let mut skip = line + 2 + size + 2;
        while head.len() < skip {
            skip -= head.len();
            head.clear();
            let want = skip.min(buf.len());
            match sock.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        head.drain(..skip);
        if size == 0 {
            return Some(());
        }
    }
}
