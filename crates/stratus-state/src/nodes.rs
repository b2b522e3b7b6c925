//! Joining, owners and bans: who may become a node, whose node it is, and
//! which keys may never come back.
//!
//! - The **cluster key** seed ([`Joining::cluster_seed`]) is set once at
//!   bootstrap, sealed under the cluster's KEK like every secret of the
//!   state ([`crate::sealing`]); replicas sign their own node ids with it so
//!   an agent can tie a replica to the pin in its join credential
//!   (`stratus_net::cluster`).
//! - **Join credentials** ([`JoinCredentialRecord`]) are kept by id with the
//!   SHA-256 of their secret only. Each names the tenant that will own the
//!   nodes it joins, may expire, and may be one-time: a one-time credential
//!   is consumed by the registration that uses it, in log order, so two
//!   replicas can never both accept it. Exactly one credential may be the
//!   *default* (the one in the bootstrap replica's `join.token`); creating a
//!   new default replaces it (rotation).
//! - A node's **owner** is stamped from the credential at its first join
//!   and never changes; a node already registered re-registers by its key.
//! - **Bans** are kept by key and outlive the node record: a banned node is
//!   lost for good (its instances and pieces move elsewhere) and can never
//!   register again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_types::{NodeId, NodeInfo, NodeRecord, NodeStatus, TenantName, ADMIN_TENANT};
use utoipa::ToSchema;

use crate::sealing::Sealed;
use crate::{ApplyError, Command, State};

/// Most join credentials kept at once (each is a small record).
pub const MAX_JOIN_CREDENTIALS: usize = 1024;

/// A join credential as the replicas keep it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JoinCredentialRecord {
    /// Public id (the second field of `stj_<id>_<secret>_<pin>`).
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// Tenant that owns the nodes joined with it.
    pub owner: TenantName,
    /// Creation time (ms since the Unix epoch, leader clock).
    pub created_ms: u64,
    /// Refused for new joins from this time on (ms since the Unix epoch).
    pub expires_ms: Option<u64>,
    /// Consumed by its first successful registration.
    pub once: bool,
    /// The cluster's default credential (the bootstrap replica's `join.token`).
    pub default: bool,
    /// The node that consumed it (one-time credentials).
    pub used_by: Option<NodeId>,
}

/// The joining part of the replicated state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Joining {
    /// Seed of the cluster key, once set: sealed under the cluster's KEK
    /// with [`crate::sealing::CLUSTER_KEY`] (whoever holds it can prove to
    /// agents that it is a replica of this cluster).
    pub cluster_seed: Option<Sealed>,
    /// Join credentials by id.
    pub credentials: BTreeMap<String, JoinCredentialRecord>,
    /// Banned node keys, with the time of the ban.
    pub banned: BTreeMap<NodeId, u64>,
}

impl Joining {
    /// Whether the default credential exists.
    pub fn has_default(&self) -> bool {
        self.credentials.values().any(|c| c.default)
    }

    /// Why the credential `id` with secret hash `secret_sha256` may not
    /// join a new node at `now_ms`, or the credential.
    pub fn check(
        &self,
        id: &str,
        secret_sha256: &str,
        now_ms: u64,
    ) -> Result<&JoinCredentialRecord, ApplyError> {
        let refused = |m: String| ApplyError::unauthenticated(m);
        let c = self.credentials.get(id).ok_or_else(|| {
            refused(format!(
                "join credential {id} is unknown or revoked: ask the operator for a new one (`stratus nodes join-token create`)"
            ))
        })?;
        if !constant_time_eq(c.secret_sha256.as_bytes(), secret_sha256.as_bytes()) {
            return Err(refused(format!("wrong secret for join credential {id}")));
        }
        if let Some(at) = c.expires_ms.filter(|at| now_ms >= *at) {
            return Err(refused(format!(
                "join credential {id} expired at {at} ms since the epoch: ask the operator for a new one"
            )));
        }
        if let Some(by) = c.used_by {
            return Err(refused(format!(
                "join credential {id} was for one use and node {} has used it: ask the operator for a new one",
                by.short()
            )));
        }
        Ok(c)
    }
}

/// Constant-time equality of two byte strings of equal length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn banned_error(id: &NodeId) -> ApplyError {
    ApplyError::forbidden(format!("node {id} is banned from this cluster"))
}

impl State {
    /// Applies a joining command (see the module docs).
    pub(crate) fn apply_nodes(&mut self, cmd: &Command) -> Result<Option<u64>, ApplyError> {
        match cmd {
            Command::RegisterNode { info, now_ms } => {
                // Kept to replay old logs: new nodes join with `JoinNode`.
                self.not_banned(&info.id)?;
                self.nodes.entry(info.id).or_insert_with(|| NodeRecord {
                    info: info.clone(),
                    status: NodeStatus::Ready,
                    registered_ms: *now_ms,
                    status_changed_ms: *now_ms,
                    owner: ADMIN_TENANT.into(),
                    banned: false,
                });
                self.refresh_node(info, *now_ms);
                Ok(None)
            }
            Command::SetNodeStatus { id, status, now_ms } => {
                if *status == NodeStatus::Ready {
                    self.not_banned(id)?;
                }
                let rec = self
                    .nodes
                    .get_mut(id)
                    .ok_or_else(|| ApplyError::not_found(format!("node {id} is not registered")))?;
                if rec.status != *status {
                    rec.status = *status;
                    rec.status_changed_ms = *now_ms;
                }
                Ok(None)
            }
            Command::RemoveNode { id } => {
                self.nodes
                    .remove(id)
                    .ok_or_else(|| ApplyError::not_found(format!("node {id} is not registered")))?;
                Ok(None)
            }
            Command::SetDrain { node, drain } => {
                if !self.nodes.contains_key(node) {
                    return Err(ApplyError::not_found(format!(
                        "node {node} is not registered"
                    )));
                }
                if *drain {
                    self.draining.insert(*node);
                } else {
                    self.draining.remove(node);
                }
                Ok(None)
            }
            Command::SetClusterKey { seed } => {
                if self.joining.cluster_seed.is_some() {
                    return Err(ApplyError::conflict("the cluster key is already set"));
                }
                crate::sealing::check_len(seed, 32, 32)?;
                self.joining.cluster_seed = Some(seed.clone());
                Ok(None)
            }
            Command::CreateJoinCredential { record } => {
                if !self.tenants.contains_key(&record.owner) {
                    return Err(ApplyError::not_found(format!(
                        "tenant {:?} does not exist",
                        record.owner
                    )));
                }
                if self.joining.credentials.contains_key(&record.id) {
                    return Err(ApplyError::conflict(format!(
                        "join credential {} already exists",
                        record.id
                    )));
                }
                if record.default {
                    // Rotation: the old default stops working for new joins.
                    self.joining.credentials.retain(|_, c| !c.default);
                }
                if self.joining.credentials.len() >= MAX_JOIN_CREDENTIALS {
                    return Err(ApplyError::too_large(format!("the cluster keeps at most {MAX_JOIN_CREDENTIALS} join credentials; revoke some (`stratus nodes join-token revoke ID`)"),
                    ));
                }
                self.joining
                    .credentials
                    .insert(record.id.clone(), record.clone());
                Ok(None)
            }
            Command::RevokeJoinCredential { id } => {
                self.joining.credentials.remove(id).ok_or_else(|| {
                    ApplyError::not_found(format!("join credential {id} does not exist"))
                })?;
                Ok(None)
            }
            Command::JoinNode {
                info,
                credential,
                secret_sha256,
                now_ms,
            } => {
                if self.joining.banned.contains_key(&info.id) {
                    return Err(banned_error(&info.id));
                }
                if !self.nodes.contains_key(&info.id) {
                    let owner = self
                        .joining
                        .check(credential, secret_sha256, *now_ms)?
                        .owner
                        .clone();
                    if let Some(c) = self.joining.credentials.get_mut(credential) {
                        if c.once {
                            c.used_by = Some(info.id);
                        }
                    }
                    self.nodes.insert(
                        info.id,
                        NodeRecord {
                            info: info.clone(),
                            status: NodeStatus::Ready,
                            registered_ms: *now_ms,
                            status_changed_ms: *now_ms,
                            owner,
                            banned: false,
                        },
                    );
                    return Ok(None);
                }
                self.refresh_node(info, *now_ms);
                Ok(None)
            }
            Command::BanNode { id, now_ms } => {
                self.joining.banned.entry(*id).or_insert(*now_ms);
                if let Some(rec) = self.nodes.get_mut(id) {
                    rec.banned = true;
                    if rec.status != NodeStatus::Lost {
                        rec.status = NodeStatus::Lost;
                        rec.status_changed_ms = *now_ms;
                    }
                }
                self.draining.remove(id);
                Ok(None)
            }
            _ => Err(ApplyError::internal("not a joining command")),
        }
    }

    /// A registered node reports again: new description, ready (never a
    /// banned one). Its owner stays.
    pub(crate) fn refresh_node(&mut self, info: &NodeInfo, now_ms: u64) {
        if let Some(rec) = self.nodes.get_mut(&info.id) {
            rec.info = info.clone();
            if rec.status != NodeStatus::Ready && !rec.banned {
                rec.status = NodeStatus::Ready;
                rec.status_changed_ms = now_ms;
            }
        }
    }

    /// Refuses anything about a banned node.
    pub(crate) fn not_banned(&self, id: &NodeId) -> Result<(), ApplyError> {
        if self.joining.banned.contains_key(id) {
            Err(banned_error(id))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::info;
    use proptest::prelude::*;
    use stratus_types::{ErrorCode, ADMIN_TENANT};

    fn cred(id: &str, owner: &str, expires_ms: Option<u64>, once: bool, default: bool) -> Command {
        Command::CreateJoinCredential {
            record: JoinCredentialRecord {
                id: id.into(),
                secret_sha256: format!("h-{id}"),
                owner: owner.into(),
                created_ms: 0,
                expires_ms,
                once,
                default,
                used_by: None,
            },
        }
    }

    fn join(b: u8, id: &str, secret: &str, now_ms: u64) -> Command {
        Command::JoinNode {
            info: info(b),
            credential: id.into(),
            secret_sha256: secret.into(),
            now_ms,
        }
    }

    fn code(s: &mut State, i: u64, c: &Command) -> Option<ErrorCode> {
        s.apply(i, c).error.map(|e| e.code())
    }

    fn cluster() -> State {
        let mut s = State::default();
        for t in [ADMIN_TENANT, "lender"] {
            s.apply(
                1,
                &Command::CreateTenant {
                    name: t.into(),
                    now_ms: 0,
                },
            );
        }
        s
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (0u8..4, 0u64..100).prop_map(|(b, t)| Command::BanNode {
                id: NodeId([b; 32]),
                now_ms: t
            }),
            (0u8..4, 0u64..100, any::<bool>())
                .prop_map(|(b, t, ok)| { join(b, "c", if ok { "h-c" } else { "x" }, t) }),
            (0u8..4, any::<bool>(), 0u64..100).prop_map(|(b, ready, t)| Command::SetNodeStatus {
                id: NodeId([b; 32]),
                status: if ready {
                    NodeStatus::Ready
                } else {
                    NodeStatus::Lost
                },
                now_ms: t
            }),
            (0u8..4, 0u64..100).prop_map(|(b, t)| Command::RegisterNode {
                info: info(b),
                now_ms: t
            }),
            (0u8..4).prop_map(|b| Command::RemoveNode {
                id: NodeId([b; 32])
            }),
            (any::<bool>(), any::<bool>())
                .prop_map(|(once, default)| { cred("c", "lender", Some(50), once, default) }),
            Just(Command::RevokeJoinCredential { id: "c".into() }),
        ]
    }

    proptest! {
        /// Replicas applying the same joining commands agree; a banned
        /// node is never ready again; a one-time credential joins at most
        /// one node.
        #[test]
        fn joining_is_deterministic_and_bans_hold(cmds in prop::collection::vec(arb_command(), 0..60)) {
            let (mut a, mut b) = (cluster(), cluster());
            for (i, c) in cmds.iter().enumerate() {
                prop_assert_eq!(a.apply(i as u64 + 2, c), b.apply(i as u64 + 2, c));
                for id in a.joining.banned.keys() {
                    prop_assert!(a.nodes.get(id).is_none_or(|n| n.banned && n.status == NodeStatus::Lost));
                }
            }
            let dump = a.dump();
            prop_assert_eq!(&dump, &b.dump());
            // What is stored reads back as the same state.
            let mut back = State::open(Box::new(a.fork_kv())).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back.dump(), &dump);
        }
    }

    /// The attacker holds a credential that expired, was used once already,
    /// was rotated away, or has the wrong secret: no join.
    #[test]
    fn expired_used_rotated_and_wrong_credentials_are_refused() {
        let mut s = cluster();
        assert_eq!(
            code(&mut s, 2, &cred("exp", "lender", Some(100), false, false)),
            None
        );
        assert_eq!(
            code(&mut s, 3, &cred("one", "lender", None, true, false)),
            None
        );
        assert_eq!(
            code(&mut s, 4, &cred("def", ADMIN_TENANT, None, false, true)),
            None
        );
        assert_eq!(
            code(&mut s, 5, &cred("x", "nobody", None, false, false)),
            Some(ErrorCode::NotFound)
        );

        assert_eq!(
            code(&mut s, 6, &join(1, "exp", "h-exp", 100)),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(code(&mut s, 7, &join(1, "exp", "h-exp", 99)), None);
        assert_eq!(s.nodes[&NodeId([1; 32])].owner, "lender");

        assert_eq!(
            code(&mut s, 8, &join(2, "one", "wrong", 0)),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(code(&mut s, 9, &join(2, "one", "h-one", 0)), None);
        // Second use, by another node (through whatever replica): refused.
        let r = s.apply(10, &join(3, "one", "h-one", 0));
        assert_eq!(
            r.error.as_ref().map(|e| e.code()),
            Some(ErrorCode::Unauthenticated)
        );
        assert!(r
            .error
            .map(|e| e.message().to_owned())
            .unwrap_or_default()
            .contains("one use"));
        // The node that used it re-registers by its key.
        assert_eq!(code(&mut s, 11, &join(2, "one", "h-one", 0)), None);

        // Rotation: the old default no longer joins new nodes.
        assert_eq!(
            code(&mut s, 12, &cred("def2", ADMIN_TENANT, None, false, true)),
            None
        );
        assert_eq!(
            code(&mut s, 13, &join(4, "def", "h-def", 0)),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(code(&mut s, 14, &join(4, "def2", "h-def2", 0)), None);
        assert_eq!(s.nodes[&NodeId([4; 32])].owner, ADMIN_TENANT);
        assert_eq!(
            s.joining.credentials.values().filter(|c| c.default).count(),
            1
        );
    }

    /// A banned node never registers again, even after its record is
    /// removed, and cannot be made ready.
    #[test]
    fn a_banned_node_stays_out() {
        let mut s = cluster();
        s.apply(2, &cred("c", "lender", None, false, false));
        assert_eq!(code(&mut s, 3, &join(1, "c", "h-c", 0)), None);
        assert_eq!(
            code(
                &mut s,
                4,
                &Command::BanNode {
                    id: NodeId([1; 32]),
                    now_ms: 5
                }
            ),
            None
        );
        let rec = &s.nodes[&NodeId([1; 32])];
        assert!(rec.banned && rec.status == NodeStatus::Lost);
        assert_eq!(
            code(&mut s, 5, &join(1, "c", "h-c", 6)),
            Some(ErrorCode::Forbidden)
        );
        let ready = Command::SetNodeStatus {
            id: NodeId([1; 32]),
            status: NodeStatus::Ready,
            now_ms: 7,
        };
        assert_eq!(code(&mut s, 6, &ready), Some(ErrorCode::Forbidden));
        let legacy = Command::RegisterNode {
            info: info(1),
            now_ms: 8,
        };
        assert_eq!(code(&mut s, 7, &legacy), Some(ErrorCode::Forbidden));
        s.apply(
            8,
            &Command::RemoveNode {
                id: NodeId([1; 32]),
            },
        );
        assert_eq!(
            code(&mut s, 9, &join(1, "c", "h-c", 9)),
            Some(ErrorCode::Forbidden)
        );
        assert!(!s.nodes.contains_key(&NodeId([1; 32])));
    }
}
