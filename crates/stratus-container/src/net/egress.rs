//! The egress policy: which destinations a container's outbound
//! connections may reach.
//!
//! An ordered list of CIDR rules, the first match deciding, and a default
//! for addresses no rule matches. The agent composes it from the lender's
//! policy (`stratus node --egress …`) and the node's own addresses; the
//! proxy asks it for every connection, with the address the container
//! dialed (after DNS, so a name that resolves to a private address is
//! judged by that address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// What a rule does with the addresses it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The connection is made.
    Allow,
    /// The connection is refused (reset).
    Deny,
}

/// Ranges a lender denies by default: everything that is not the public
/// internet — loopback, private networks (RFC 1918, RFC 4193), carrier-grade
/// NAT, link-local (cloud metadata services live at 169.254.169.254),
/// "this network", benchmarking, multicast and reserved space.
pub const PRIVATE_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/3",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// An ordered egress policy (first matching rule wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    rules: Vec<(IpNet, Verdict)>,
    default: Verdict,
    /// The tenant's narrowing: when set, only these ranges may be reached
    /// (and only where the rules allow them too).
    only: Option<Vec<IpNet>>,
}

impl Egress {
    /// Nothing is reachable.
    pub fn none() -> Self {
        Egress {
            rules: Vec::new(),
            default: Verdict::Deny,
            only: None,
        }
    }

    /// The public internet: everything but [`PRIVATE_RANGES`].
    pub fn internet() -> Self {
        let mut e = Egress {
            rules: Vec::new(),
            default: Verdict::Allow,
            only: None,
        };
        for r in PRIVATE_RANGES {
            if let Ok(net) = r.parse() {
                e.rules.push((net, Verdict::Deny));
            }
        }
        e
    }

    /// This policy with `net` decided as `verdict` before every rule it
    /// already has.
    pub fn first(mut self, net: IpNet, verdict: Verdict) -> Self {
        self.rules.insert(0, (net, verdict));
        self
    }

    /// This policy with `net` decided as `verdict` after every rule it
    /// already has (and before the default).
    pub fn then(mut self, net: IpNet, verdict: Verdict) -> Self {
        self.rules.push((net, verdict));
        self
    }

    /// This policy narrowed to `nets`: an address outside them is denied
    /// whatever the rules say, one inside is decided by them. Narrowing
    /// twice keeps what both allow.
    pub fn only(mut self, nets: Vec<IpNet>) -> Self {
        let nets = nets.into_iter().map(|n| n.trunc()).collect::<Vec<_>>();
        self.only = Some(match self.only.take() {
            None => nets,
            // What lies in both: the narrower of each overlapping pair.
            Some(had) => had
                .iter()
                .flat_map(|a| {
                    nets.iter().filter_map(move |b| {
                        if a.contains(b) {
                            Some(*b)
                        } else if b.contains(a) {
                            Some(*a)
                        } else {
                            None
                        }
                    })
                })
                .collect(),
        });
        self
    }

    /// Whether a connection to `ip` is allowed. IPv4-mapped IPv6 addresses
    /// are judged as the IPv4 address they carry.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self
            .only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n.contains(&ip)))
        {
            return false;
        }
        let verdict = self
            .rules
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map_or(self.default, |(_, v)| *v);
        verdict == Verdict::Allow
    }

    /// Whether nothing at all is reachable (no rule allows, default deny).
    pub fn is_none(&self) -> bool {
        self.only.as_ref().is_some_and(Vec::is_empty)
            || (self.default == Verdict::Deny
                && self.rules.iter().all(|(_, v)| *v == Verdict::Deny))
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; everything else as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Host routes (`/32`, `/128`) of `addrs`: to deny a node's own addresses.
pub fn host_routes(addrs: impl IntoIterator<Item = IpAddr>) -> Vec<IpNet> {
    addrs
        .into_iter()
        .map(|a| IpNet::from(canonical(a)))
        .collect()
}

/// The addresses of this host's interfaces (what "the node's own services"
/// listen on besides loopback).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_internet_is_allowed_and_private_and_metadata_ranges_are_not() {
        let e = Egress::internet();
        for ok in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(e.allows(ip(ok)), "{ok}");
        }
        for no in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
            "239.1.1.1",
        ] {
            assert!(!e.allows(ip(no)), "{no}");
        }
        assert!(!e.is_none());
        assert!(Egress::none().is_none());
        assert!(!Egress::none().allows(ip("1.1.1.1")));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        // A lender lets containers reach its NAS but denies one public range,
        // and its own address stays denied whatever comes later.
        let e = Egress::internet()
            .first("192.168.1.50/32".parse().unwrap(), Verdict::Allow)
            .first("192.168.1.50/32".parse().unwrap(), Verdict::Deny)
            .then("203.0.113.0/24".parse().unwrap(), Verdict::Deny);
        assert!(!e.allows(ip("192.168.1.50")));
        assert!(!e.allows(ip("203.0.113.9")));
        let e = Egress::internet().first("192.168.1.50/32".parse().unwrap(), Verdict::Allow);
        assert!(e.allows(ip("192.168.1.50")));
        assert!(!e.allows(ip("192.168.1.51")));
    }

    #[test]
    fn own_addresses_are_host_routes() {
        let own = local_addresses();
        assert!(own.contains(&ip("127.0.0.1")), "{own:?}");
        let routes = host_routes(own);
        assert!(routes.contains(&"127.0.0.1/32".parse().unwrap()));
    }

    #[test]
    fn a_tenant_narrows_and_never_widens() {
        let lender = Egress::internet().first("10.77.0.0/24".parse().unwrap(), Verdict::Allow);
        let e = lender.clone().only(vec![
            "10.77.0.1/32".parse().unwrap(),
            "10.9.0.0/16".parse().unwrap(),
        ]);
        assert!(e.allows(ip("10.77.0.1")));
        assert!(!e.allows(ip("10.77.0.2")), "outside the tenant's list");
        assert!(!e.allows(ip("10.9.1.1")), "the lender denies it");
        assert!(!e.allows(ip("1.1.1.1")));
        assert!(lender.clone().only(Vec::new()).is_none());
        let twice = lender
            .only(vec!["10.77.0.0/24".parse().unwrap()])
            .only(vec![
                "10.77.0.0/28".parse().unwrap(),
                "1.0.0.0/8".parse().unwrap(),
            ]);
        assert!(twice.allows(ip("10.77.0.3")));
        assert!(!twice.allows(ip("10.77.0.30")));
        assert!(!twice.allows(ip("1.1.1.1")));
    }

    proptest! {
        /// Narrowing never allows an address the policy did not.
        #[test]
        fn narrowing_only_takes_away(a in any::<u8>(), b in any::<u8>(), bits in 0u8..=32, probe in any::<u32>()) {
            let net = IpNet::new(IpAddr::V4(Ipv4Addr::new(a, b, 0, 0)), bits).unwrap().trunc();
            let probe = IpAddr::V4(Ipv4Addr::from(probe));
            for base in [Egress::internet(), Egress::none(), Egress::internet().first(net, Verdict::Deny)] {
                let narrowed = base.clone().only(vec![net]);
                prop_assert!(!narrowed.allows(probe) || base.allows(probe));
                prop_assert_eq!(narrowed.allows(probe), base.allows(probe) && net.contains(&probe));
            }
        }

        /// Whatever the lender adds after the defaults, a private address
        /// stays denied; and a mapped address is judged as its IPv4 form.
        #[test]
        fn later_rules_never_open_a_denied_range(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), bits in 8u8..=32) {
            let private = Ipv4Addr::new(10, a, b, c);
            let net = IpNet::new(IpAddr::V4(private), bits).unwrap().trunc();
            let e = Egress::internet().then(net, Verdict::Allow);
            prop_assert!(!e.allows(IpAddr::V4(private)));
            prop_assert!(!e.allows(IpAddr::V6(private.to_ipv6_mapped())));
            let public = Ipv4Addr::new(8, a, b, c);
            prop_assert_eq!(e.allows(IpAddr::V4(public)), e.allows(IpAddr::V6(public.to_ipv6_mapped())));
        }
    }
}
