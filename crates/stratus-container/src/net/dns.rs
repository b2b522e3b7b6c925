//! The resolver inside a container (`127.0.0.11:53`, UDP): the tenant's
//! service names answered here, other names of the cluster refused at
//! once, the rest forwarded to the node's resolvers when the container may
//! reach anything at all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::intercept::Shared;
use super::SUFFIX;

/// Largest query read (EDNS payloads beyond this are not needed here).
const MAX_QUERY: usize = 4096;
/// Queries of one container being answered at once; more are dropped
/// (the client retries).
const MAX_INFLIGHT: usize = 64;
/// How long each upstream resolver is given.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Time to live of a service answer: short, instances move.
const SERVICE_TTL: u32 = 5;

/// What to answer to one query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A service: its address here (A), or no record of that type.
    Service(Option<Ipv4Addr>),
    /// The name does not exist.
    NxDomain,
    /// Not answered by policy (no egress) or for lack of addresses.
    Refused,
    /// Ask the node's resolvers.
    Forward,
}

/// Decides a query for `name` (as asked, any case, trailing dot or not) of
/// type `rtype`.
pub(crate) async fn decide(shared: &Shared, name: &str, rtype: RecordType) -> Answer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = shared.net.domain.to_ascii_lowercase();
    let service = if !name.contains('.') {
        Some(name.as_str())
    } else {
        name.strip_suffix(&format!(".{domain}"))
            .filter(|label| !label.contains('.'))
    };
    if let Some(label) = service {
        if !label.is_empty() && shared.net.services.exists(label).await {
            return match rtype {
                RecordType::A => match shared.vip(label) {
                    Some(ip) => Answer::Service(Some(ip)),
                    None => Answer::Refused,
                },
                _ => Answer::Service(None),
            };
        }
        return Answer::NxDomain;
    }
    if name == SUFFIX || name.ends_with(&format!(".{SUFFIX}")) {
        // Another tenant's services, or none: they do not exist here.
        return Answer::NxDomain;
    }
    if shared.net.egress.is_none() || shared.net.upstream.is_empty() {
        Answer::Refused
    } else {
        Answer::Forward
    }
}

/// Answers queries on `socket` until `stop`, each on a task of its own
/// (at most [`MAX_INFLIGHT`] at once; more are dropped and the client
/// retries).
pub(crate) async fn serve(socket: UdpSocket, shared: Arc<Shared>, stop: CancellationToken) {
    let socket = Arc::new(socket);
    let slots = Arc::new(Semaphore::new(MAX_INFLIGHT));
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let (n, from) = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "container resolver: receive");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let query = buf[..n].to_vec();
        let Ok(msg) = Message::from_vec(&query) else {
            continue;
        };
        if msg.metadata.message_type != MessageType::Query {
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (socket, shared) = (socket.clone(), shared.clone());
        tasks.spawn(async move {
            let decided = match msg.queries.first() {
                Some(q) if msg.metadata.op_code == OpCode::Query => {
                    decide(&shared, &q.name().to_ascii(), q.query_type()).await
                }
                _ => Answer::Refused,
            };
            let bytes = match decided {
                Answer::Forward => match forward(&query, &shared.net.upstream).await {
                    Some(reply) => Some(reply),
                    None => reply(&msg, Answer::Refused),
                },
                local => reply(&msg, local),
            };
            if let Some(b) = bytes {
                let _ = socket.send_to(&b, from).await;
            }
            drop(slot);
        });
    }
    tasks.shutdown().await;
}

/// The reply to `query` for a local answer.
fn reply(query: &Message, answer: Answer) -> Option<Vec<u8>> {
    let mut r = Message::response(query.metadata.id, query.metadata.op_code);
    r.metadata.recursion_desired = query.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_queries(query.queries.iter().take(1).cloned());
    match answer {
        Answer::Service(ip) => {
            r.metadata.authoritative = true;
            if let (Some(ip), Some(q)) = (ip, query.queries.first()) {
                r.add_answer(Record::from_rdata(
                    q.name().clone(),
                    SERVICE_TTL,
                    RData::A(A(ip)),
                ));
            }
        }
        Answer::NxDomain => {
            r.metadata.authoritative = true;
            r.metadata.response_code = ResponseCode::NXDomain;
        }
        Answer::Refused | Answer::Forward => r.metadata.response_code = ResponseCode::Refused,
    }
    r.to_vec().ok()
}

/// Asks each upstream resolver in turn, from the node; the first reply
/// whose id matches the query's wins.
async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for server in upstream {
        let bind: SocketAddr = match server.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.connect(server).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                match sock.recv(&mut buf).await {
                    Ok(n) if buf.get(..2) == Some(id) => return Some(n),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await;
        if let Ok(Some(n)) = got {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::net::{Connecting, Egress, Network, Services};

    struct Pong;
    impl Services for Pong {
        fn exists<'a>(&'a self, name: &'a str) -> crate::net::Finding<'a> {
            Box::pin(async move { name == "pong" })
        }
        fn connect(&self, _: &str, _: u16) -> Connecting {
            Box::pin(async { Err(std::io::ErrorKind::Unsupported.into()) })
        }
    }

    fn shared(egress: Egress, upstream: &[&str]) -> Shared {
        Shared::new(Network {
            egress,
            services: Arc::new(Pong),
            domain: "alice.stratus.internal".into(),
            upstream: upstream.iter().map(|s| s.parse().unwrap()).collect(),
        })
    }

    #[tokio::test]
    async fn service_names_resolve_here_and_other_tenants_do_not_exist() {
        let s = shared(Egress::internet(), &["127.0.0.53:53"]);
        let Answer::Service(Some(ip)) = decide(&s, "pong", RecordType::A).await else {
            panic!("pong")
        };
        for same in [
            "PONG.",
            "pong.alice.stratus.internal",
            "Pong.Alice.Stratus.Internal.",
        ] {
            assert_eq!(
                decide(&s, same, RecordType::A).await,
                Answer::Service(Some(ip)),
                "{same}"
            );
        }
        assert_eq!(
            decide(&s, "pong", RecordType::AAAA).await,
            Answer::Service(None)
        );
        for missing in [
            "ping",
            "ping.alice.stratus.internal",
            "pong.bob.stratus.internal",
            "stratus.internal",
            "a.b.alice.stratus.internal",
        ] {
            assert_eq!(
                decide(&s, missing, RecordType::A).await,
                Answer::NxDomain,
                "{missing}"
            );
        }
        assert_eq!(
            decide(&s, "example.com.", RecordType::A).await,
            Answer::Forward
        );
        // No egress, or nowhere to ask: refused, never forwarded.
        let closed = shared(Egress::none(), &["127.0.0.53:53"]);
        assert_eq!(
            decide(&closed, "example.com", RecordType::A).await,
            Answer::Refused
        );
        assert!(matches!(
            decide(&closed, "pong", RecordType::A).await,
            Answer::Service(Some(_))
        ));
        let alone = shared(Egress::internet(), &[]);
        assert_eq!(
            decide(&alone, "example.com", RecordType::A).await,
            Answer::Refused
        );
    }

    #[test]
    fn replies_carry_the_query_and_the_answer() {
        let mut q = Message::query();
        q.metadata.id = 77;
        q.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("pong.").unwrap(),
            RecordType::A,
        ));
        let bytes = reply(&q, Answer::Service(Some(Ipv4Addr::new(198, 18, 0, 1)))).unwrap();
        let r = Message::from_vec(&bytes).unwrap();
        assert_eq!(r.metadata.id, 77);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(Ipv4Addr::new(198, 18, 0, 1))));
        let nx = Message::from_vec(&reply(&q, Answer::NxDomain).unwrap()).unwrap();
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert!(nx.answers.is_empty());
    }
}
