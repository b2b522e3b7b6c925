//! Where a redirected datagram was going: a conntrack query (ctnetlink)
//! inside the container's namespace.
//!
//! `SO_ORIGINAL_DST` answers for TCP only. A datagram the container's
//! rules redirected to the proxy left a NAT entry in the namespace's
//! conntrack table whose *reply* tuple is what the proxy sees (from the
//! client's address as it arrived, to the proxy's port); asking the table
//! for the entry of that reply tuple gives the original one, whose
//! destination is where the datagram was going. The netlink socket is made
//! by the creation helper inside the namespace, so it sees that
//! namespace's table and no other.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

use crate::ContainerError;

/// How long the kernel may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

// netlink and ctnetlink numbers (linux/netlink.h, linux/netfilter/nfnetlink*.h).
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;

/// A failed netlink call.
fn failed(what: &str, e: nix::Error) -> ContainerError {
    ContainerError::Network(format!("conntrack: {what}: {e}"))
}

/// A ctnetlink socket inside one container's namespace.
pub(crate) struct Conntrack {
    fd: Mutex<(OwnedFd, u32)>,
}

/// Opens a ctnetlink socket in the namespace the calling thread is in.
pub(crate) fn open() -> Result<OwnedFd, ContainerError> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| failed("socket", e))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| failed("bind", e))?;
    let timeout =
        nix::sys::time::TimeVal::new(i64::try_from(ANSWER_TIMEOUT.as_secs()).unwrap_or(1), 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| failed("timeout", e))?;
    Ok(fd)
}

impl Conntrack {
    /// Queries on `fd` (from [`open`]).
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Conntrack {
            fd: Mutex::new((fd, 0)),
        }
    }

    /// Where the UDP datagram that reached `proxy` from `client` was going
    /// (`None`: no such entry). Blocking: at most [`ANSWER_TIMEOUT`].
    pub(crate) fn original_destination(
        &self,
        client: SocketAddrV4,
        proxy: SocketAddrV4,
    ) -> Result<Option<SocketAddrV4>, ContainerError> {
        let mut guard = self.fd.lock().unwrap_or_else(|p| p.into_inner());
        guard.1 = guard.1.wrapping_add(1);
        let seq = guard.1;
        let fd = &guard.0;
        send(
            fd.as_raw_fd(),
            &request(seq, proxy, client),
            MsgFlags::empty(),
        )
        .map_err(|e| failed("send", e))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(|e| failed("receive", e))?;
            match answer(&buf[..n], seq) {
                Answer::Other => continue,
                Answer::Found(dst) => return Ok(Some(dst)),
                Answer::Missing => return Ok(None),
                Answer::Error(errno) => {
                    return Err(ContainerError::Network(format!(
                        "conntrack: the kernel answered error {errno}"
                    )))
                }
            }
        }
    }
}

/// Appends a netlink attribute (padded to 4 bytes).
fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A nested attribute made of what `inner` appends.
fn nested(out: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    inner(&mut body);
    attr(out, kind | NLA_F_NESTED, &body);
}

/// A tuple: addresses and ports of one direction of a UDP flow.
fn tuple(out: &mut Vec<u8>, src: SocketAddrV4, dst: SocketAddrV4) {
    nested(out, CTA_TUPLE_IP, |ip| {
        attr(ip, CTA_IP_V4_SRC, &src.ip().octets());
        attr(ip, CTA_IP_V4_DST, &dst.ip().octets());
    });
    nested(out, CTA_TUPLE_PROTO, |p| {
        attr(p, CTA_PROTO_NUM, &[IPPROTO_UDP]);
        attr(p, CTA_PROTO_SRC_PORT, &src.port().to_be_bytes());
        attr(p, CTA_PROTO_DST_PORT, &dst.port().to_be_bytes());
    });
}

/// `IPCTNL_MSG_CT_GET` of the entry whose reply tuple goes from `proxy`
/// to `client`.
pub(crate) fn request(seq: u32, proxy: SocketAddrV4, client: SocketAddrV4) -> Vec<u8> {
    let mut body = vec![AF_INET, 0, 0, 0]; // nfgenmsg: family, version 0, res_id 0
    nested(&mut body, CTA_TUPLE_REPLY, |t| tuple(t, proxy, client));
    let mut msg = Vec::with_capacity(16 + body.len());
    let len = u32::try_from(16 + body.len()).unwrap_or(u32::MAX);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET).to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    msg.extend_from_slice(&body);
    msg
}

/// What one netlink read said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The entry: its original destination.
    Found(SocketAddrV4),
    /// No such entry (`ENOENT`).
    Missing,
    /// Another error (its errno, positive).
    Error(i32),
    /// Nothing about our request (another sequence number, or unreadable).
    Other,
}

/// The attributes of `bytes`: (type without flags, value).
fn attrs(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?) & NLA_TYPE_MASK;
        let value = bytes.get(4..len)?;
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn find(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(bytes).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// Reads the kernel's answer to request `seq` from one datagram.
pub(crate) fn answer(mut bytes: &[u8], seq: u32) -> Answer {
    while bytes.len() >= 16 {
        let u32_at = |b: &[u8], at: usize| {
            b.get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let (Some(len), Some(got_seq)) = (u32_at(bytes, 0), u32_at(bytes, 8)) else {
            return Answer::Other;
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let Some(msg) = bytes.get(16..len) else {
            return Answer::Other;
        };
        if got_seq == seq {
            if kind == NLMSG_ERROR {
                let errno = msg
                    .get(0..4)
                    .and_then(|s| s.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(0);
                return match -errno {
                    0 => Answer::Other, // an acknowledgement
                    e if e == libc::ENOENT => Answer::Missing,
                    e => Answer::Error(e),
                };
            }
            if kind == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW {
                let dst = msg.get(4..).and_then(|a| {
                    let orig = find(a, CTA_TUPLE_ORIG)?;
                    let ip: [u8; 4] = find(find(orig, CTA_TUPLE_IP)?, CTA_IP_V4_DST)?
                        .try_into()
                        .ok()?;
                    let port: [u8; 2] = find(find(orig, CTA_TUPLE_PROTO)?, CTA_PROTO_DST_PORT)?
                        .try_into()
                        .ok()?;
                    Some(SocketAddrV4::new(
                        Ipv4Addr::from(ip),
                        u16::from_be_bytes(port),
                    ))
                });
                return dst.map_or(Answer::Other, Answer::Found);
            }
        }
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    Answer::Other
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    /// What the kernel would answer: the entry, its original tuple first.
    fn entry(seq: u32, orig_dst: SocketAddrV4) -> Vec<u8> {
        let mut body = vec![AF_INET, 0, 0, 0];
        nested(&mut body, CTA_TUPLE_ORIG, |t| {
            tuple(t, at("10.0.2.100:5000"), orig_dst)
        });
        nested(&mut body, CTA_TUPLE_REPLY, |t| {
            tuple(t, at("127.0.0.1:15001"), at("10.0.2.100:5000"))
        });
        let mut msg = request(seq, at("127.0.0.1:15001"), at("10.0.2.100:5000"));
        msg.truncate(16);
        msg[0..4].copy_from_slice(&u32::try_from(16 + body.len()).unwrap().to_ne_bytes());
        msg[4..6]
            .copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW).to_ne_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_original_destination_is_read_from_the_entry() {
        let dst = at("203.0.113.7:53");
        assert_eq!(answer(&entry(7, dst), 7), Answer::Found(dst));
        // Another request's answer, or half a message, is not ours.
        assert_eq!(answer(&entry(7, dst), 8), Answer::Other);
        let whole = entry(7, dst);
        for cut in [0, 3, 15, 20, whole.len() - 1] {
            assert_eq!(answer(&whole[..cut], 7), Answer::Other, "cut at {cut}");
        }
    }

    #[test]
    fn errors_are_told_apart() {
        let mut err = request(3, at("127.0.0.1:1"), at("10.0.2.100:2"));
        err.truncate(16);
        err[0..4].copy_from_slice(&20u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(answer(&err, 3), Answer::Missing);
        err[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(answer(&err, 3), Answer::Error(libc::EPERM));
    }

    /// Garbage never panics.
    #[test]
    fn any_bytes_are_read_without_panicking() {
        let mut x: u32 = 1;
        for len in 0..600usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = answer(&bytes, 1);
        }
    }
}
