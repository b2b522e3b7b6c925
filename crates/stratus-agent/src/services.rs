//! Container networks on this node: the lender's egress policy and the
//! names of each tenant's services (see `stratus_container::net` for how a
//! container's connections reach them).
//!
//! A container of tenant T reaches, by name, the services of T: the
//! workload's name (`NAME`, or `NAME.T.stratus.internal`) leads to one of
//! its running instances, in turn — one on this node directly, else one on
//! another node through a replica ([`crate::tunnels`]). Another tenant's
//! services do not exist for it: names are looked up in T's entries only,
//! and a replica relays only for a node that runs an instance of T.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ipnet::IpNet;
use stratus_container::net::{egress, Connecting, Finding, Verdict, SUFFIX};
use stratus_container::{Egress, Network, Services};
use stratus_net::{Endpoint, Links};
use stratus_spec::EgressSpec;
use stratus_types::NodeId;
use tokio::sync::{watch, Notify};

use crate::containers::ContainerHost;

/// The lender's egress policy (`stratus node --egress`, `--egress-allow`,
/// `--egress-deny`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LenderEgress {
    /// Containers may reach the internet (everything but private ranges);
    /// `false`: nothing but what `allow` names.
    pub internet: bool,
    /// Ranges containers may reach although the default denies them (a NAS
    /// on the lender's network, say).
    pub allow: Vec<IpNet>,
    /// Ranges containers may not reach; wins over `allow`.
    pub deny: Vec<IpNet>,
}

impl Default for LenderEgress {
    fn default() -> Self {
        LenderEgress {
            internet: true,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl LenderEgress {
    /// Reads `mode` (`internet` or `none`) and comma-separated CIDR lists
    /// (a bare address is a host route).
    pub fn parse(mode: &str, allow: &[String], deny: &[String]) -> Result<Self, String> {
        let internet = match mode {
            "internet" => true,
            "none" => false,
            other => return Err(format!("egress {other:?}: expected `internet` or `none`")),
        };
        let cidrs = |list: &[String]| -> Result<Vec<IpNet>, String> {
            list.iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    stratus_spec::parse_range(s)
                        .ok_or_else(|| format!("{s:?} is not an address or CIDR range"))
                })
                .collect()
        };
        Ok(LenderEgress {
            internet,
            allow: cidrs(allow)?,
            deny: cidrs(deny)?,
        })
    }

    /// The policy a container gets: this node's own addresses denied
    /// first (whatever `allow` says: they are the lender's services), then
    /// `deny`, then `allow`, then the internet minus private ranges (or
    /// nothing).
    pub fn policy(&self) -> Egress {
        let base = if self.internet {
            Egress::internet()
        } else {
            Egress::none()
        };
        let with_allows = self
            .allow
            .iter()
            .rev()
            .fold(base, |e, n| e.first(*n, Verdict::Allow));
        let with_denies = self
            .deny
            .iter()
            .rev()
            .fold(with_allows, |e, n| e.first(*n, Verdict::Deny));
        egress::host_routes(egress::local_addresses())
            .into_iter()
            .fold(with_denies, |e, n| e.first(n, Verdict::Deny))
    }
}

/// A service: (tenant, name).
type Service = (String, String);

/// How a listed instance is reached on this node: a connection to a port.
pub type Dial = Arc<dyn Fn(u16) -> Connecting + Send + Sync>;

/// An instance listed as running here: its listing id (the container id
/// its instance id names, [`crate::containers::container_id`]) and how to
/// reach it.
#[derive(Clone)]
struct Listing {
    id: String,
    dial: Dial,
}

/// The services of the tenants this node runs: their instances running
/// here (containers, WASM HTTP components), and where their other
/// instances run.
pub struct ServiceTable {
    running: Mutex<HashMap<Service, Vec<Listing>>>,
    /// Instances on other nodes: (instance id, node), from the directory.
    remote: Mutex<HashMap<Service, Vec<(String, NodeId)>>>,
    turn: AtomicUsize,
    /// This node's tunnel links to the replicas.
    links: Links,
    /// Its direct connections to other nodes.
    direct: crate::direct::Direct,
    /// This node's endpoint (its key seals relayed connections).
    endpoint: OnceLock<Endpoint>,
    /// Bumped whenever the directory is replaced.
    updated: watch::Sender<u64>,
    /// A name was not found: the directory is wanted now.
    wanted: Notify,
}

impl Default for ServiceTable {
    fn default() -> Self {
        ServiceTable {
            running: Mutex::default(),
            remote: Mutex::default(),
            turn: AtomicUsize::new(0),
            links: Links::new(),
            direct: crate::direct::Direct::default(),
            endpoint: OnceLock::new(),
            updated: watch::Sender::new(0),
            wanted: Notify::new(),
        }
    }
}

/// How long a name that is not (yet) known waits for a fresh directory
/// before it is said not to exist.
const MISS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An instance listed as an instance of a service while this lives.
pub struct Listed {
    table: Weak<ServiceTable>,
    key: Service,
    id: String,
}

impl Drop for Listed {
    fn drop(&mut self) {
        if let Some(t) = self.table.upgrade() {
            let mut running = t.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = running.get_mut(&self.key) {
                list.retain(|l| l.id != self.id);
                if list.is_empty() {
                    running.remove(&self.key);
                }
            }
        }
    }
}

impl ServiceTable {
    /// Lists `id` (reached with `dial`) as an instance of `tenant`'s
    /// service `name` until the returned guard is dropped.
    pub fn list(self: &Arc<Self>, tenant: &str, name: &str, id: &str, dial: Dial) -> Listed {
        let key = (tenant.to_string(), name.to_string());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .push(Listing {
                id: id.to_string(),
                dial,
            });
        Listed {
            table: Arc::downgrade(self),
            key,
            id: id.to_string(),
        }
    }

    /// The running instances of a service here, the next one in turn
    /// first.
    fn instances(&self, tenant: &str, name: &str) -> Vec<Listing> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        in_turn(
            &self.turn,
            running.get(&(tenant.to_string(), name.to_string())),
        )
    }

    /// Its instances on other nodes, the next one in turn first.
    fn remote_instances(&self, tenant: &str, name: &str) -> Vec<(String, NodeId)> {
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        in_turn(
            &self.turn,
            remote.get(&(tenant.to_string(), name.to_string())),
        )
    }

    /// A connection to `port` of `id` if it is listed as a service
    /// instance here of a tenant `may` accepts (`None`: it is not).
    pub fn connect_listed(
        &self,
        id: &str,
        port: u16,
        may: impl Fn(&str) -> bool,
    ) -> Option<Connecting> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .filter(|((tenant, _), _)| may(tenant))
            .flat_map(|(_, listings)| listings)
            .find(|l| l.id == id)
            .map(|l| (l.dial)(port))
    }

    /// Replaces what is known of other nodes' service instances.
    pub fn set_remote(&self, entries: impl IntoIterator<Item = stratus_proto::ServiceEntry>) {
        let mut map: HashMap<Service, Vec<(String, NodeId)>> = HashMap::new();
        for e in entries {
            map.entry((e.tenant, e.name))
                .or_default()
                .push((e.instance, e.node));
        }
        *self.remote.lock().unwrap_or_else(|p| p.into_inner()) = map;
        self.updated.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Waits until the directory is wanted ([`ServiceTable::find`] missed).
    pub(crate) async fn wanted(&self) {
        self.wanted.notified().await;
    }

    fn known(&self, tenant: &str, name: &str) -> bool {
        !self.instances(tenant, name).is_empty() || !self.remote_instances(tenant, name).is_empty()
    }

    /// Whether `tenant` has a service `name`: known here, or in a directory
    /// asked for now (a service placed a moment ago is found, a name that
    /// does not exist is said so after one round trip to a replica).
    pub async fn find(&self, tenant: &str, name: &str) -> bool {
        if self.known(tenant, name) {
            return true;
        }
        let mut fresh = self.updated.subscribe();
        fresh.mark_unchanged();
        self.wanted.notify_one();
        let _ = tokio::time::timeout(MISS_WAIT, fresh.changed()).await;
        self.known(tenant, name)
    }

    /// Gives the table this node's endpoint (once).
    pub fn attach(&self, endpoint: Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    pub(crate) fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.get()
    }

    /// This node's id, once attached.
    pub(crate) fn node(&self) -> Option<NodeId> {
        self.endpoint.get().map(Endpoint::node_id)
    }

    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    pub(crate) fn direct(&self) -> &crate::direct::Direct {
        &self.direct
    }
}

/// `list`, rotated by one more step each call (connections spread over the
/// instances).
fn in_turn<T: Clone>(turn: &AtomicUsize, list: Option<&Vec<T>>) -> Vec<T> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    let start = turn.fetch_add(1, Ordering::Relaxed) % list.len();
    list[start..]
        .iter()
        .chain(&list[..start])
        .cloned()
        .collect()
}

/// One tenant's services, as its containers on this node see them.
struct TenantServices {
    tenant: String,
    table: Arc<ServiceTable>,
}

impl Services for TenantServices {
    fn exists<'a>(&'a self, name: &'a str) -> Finding<'a> {
        Box::pin(self.table.find(&self.tenant, name))
    }

    /// An instance on this node if one answers (no relay), else one on
    /// another node through a replica.
    fn connect(&self, name: &str, port: u16) -> Connecting {
        let t = self.table.clone();
        let (here, there) = (
            t.instances(&self.tenant, name),
            t.remote_instances(&self.tenant, name),
        );
        let name = name.to_string();
        let self_tenant = self.tenant.clone();
        Box::pin(async move {
            let mut last = String::from("no instance is running");
            for listing in here {
                match (listing.dial)(port).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e.to_string(),
                }
            }
            for (instance, node) in there {
                match crate::tunnels::dial(&t, &self_tenant, &instance, node, port).await {
                    Ok(c) => return Ok(c),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("service {name}, port {port}: {last}"),
            ))
        })
    }
}

impl LenderEgress {
    /// The lender's policy narrowed by a tenant's `egress` (never widened).
    pub fn narrowed(&self, egress: &EgressSpec) -> Egress {
        let lender = self.policy();
        match egress {
            EgressSpec::Internet => lender,
            EgressSpec::None => lender.only(Vec::new()),
            // Normalized ranges (checked by the state); one that does not
            // read narrows to nothing rather than to less than asked.
            EgressSpec::Only(ranges) => lender.only(
                ranges
                    .iter()
                    .filter_map(|r| stratus_spec::parse_range(r))
                    .collect(),
            ),
        }
    }
}

/// The network of a container of `tenant` on `host`: the lender's egress
/// policy narrowed by the tenant's `egress`.
pub fn network(host: &Arc<ContainerHost>, tenant: &str, egress: &EgressSpec) -> Network {
    Network {
        egress: host.egress().narrowed(egress),
        services: Arc::new(TenantServices {
            tenant: tenant.to_string(),
            table: host.services().clone(),
        }),
        domain: format!("{tenant}.{SUFFIX}"),
        upstream: stratus_container::net::host_resolvers(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_lender_policy_parses_and_keeps_its_own_addresses_closed() {
        let p = LenderEgress::parse(
            "internet",
            &["192.168.1.50, 127.0.0.1".into()],
            &["203.0.113.0/24".into()],
        )
        .unwrap();
        let e = p.policy();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(e.allows(ip("192.168.1.50")));
        assert!(!e.allows(ip("192.168.1.51")));
        assert!(!e.allows(ip("203.0.113.7")));
        assert!(e.allows(ip("1.1.1.1")));
        // Allowed by the lender, but it is this node: still closed.
        assert!(!e.allows(ip("127.0.0.1")));
        for own in egress::local_addresses() {
            assert!(!e.allows(own), "{own}");
        }
        let none = LenderEgress::parse("none", &["198.51.100.0/24".into()], &[]).unwrap();
        assert!(!none.policy().allows(ip("1.1.1.1")));
        assert!(none.policy().allows(ip("198.51.100.1")));
        for bad in ["everything", ""] {
            assert!(LenderEgress::parse(bad, &[], &[]).is_err());
        }
        let err = LenderEgress::parse("internet", &["10.0.0.0/33".into()], &[]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    fn nowhere() -> Dial {
        Arc::new(|_| Box::pin(async { Err(std::io::Error::other("not dialed in this test")) }))
    }

    fn ids(l: Vec<Listing>) -> Vec<String> {
        l.into_iter().map(|l| l.id).collect()
    }

    #[test]
    fn instances_are_listed_while_they_run_and_taken_in_turn() {
        let t = Arc::new(ServiceTable::default());
        let a = t.list("alice", "web", "c1", nowhere());
        let b = t.list("alice", "web", "c2", nowhere());
        let _other = t.list("bob", "web", "c3", nowhere());
        let first: Vec<_> = (0..4)
            .map(|_| ids(t.instances("alice", "web"))[0].clone())
            .collect();
        assert!(first.contains(&"c1".to_string()) && first.contains(&"c2".to_string()));
        assert!(!ids(t.instances("alice", "web")).contains(&"c3".to_string()));
        assert!(t.connect_listed("c3", 80, |_| true).is_some());
        // A peer introduced for alice's services reaches none of bob's.
        assert!(t.connect_listed("c3", 80, |t| t == "alice").is_none());
        assert!(t.connect_listed("c1", 80, |t| t == "alice").is_some());
        drop(a);
        assert_eq!(ids(t.instances("alice", "web")), vec!["c2".to_string()]);
        assert!(t.connect_listed("c1", 80, |_| true).is_none());
        drop(b);
        assert!(t.instances("alice", "web").is_empty());
        assert_eq!(ids(t.instances("bob", "web")), vec!["c3".to_string()]);
    }
}
