//! Orders and deals (issue 15, item 3): the market order a deploy may
//! carry (checked before it is written: no offer fits → 409 naming why,
//! not enough money → 402 with the shortfall), the pool's fee
//! (`GET/PUT /v1/market/fee`) and the open deals (`GET /v1/market/deals`:
//! the requester's and the lender's own, all for the operator).

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_market::{Amount, Order, OrderSignature, Prefer};
use stratus_spec::{MarketPrefer, MarketSpec, WorkloadSpec};
use stratus_state::accounts::MarketCommand;
use stratus_state::{ApplyError, Command, Workload};
use stratus_types::{Payload, WorkloadId};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState, JsonBody};

/// A requester's signature over its order (`stratus_market::Order::signed_bytes`),
/// hex-encoded.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedBy {
    /// The tenant's order key (ed25519 public key, 64 hex digits).
    pub key: String,
    /// The order is refused from this time on (ms since the Unix epoch).
    pub expires_ms: u64,
    /// What the deploy runs, as the requester named it (the `module` of
    /// the deploy: a content address, or empty for an image).
    pub module: String,
    /// The signature (128 hex digits).
    pub signature: String,
}

impl SignedBy {
    fn parse(&self) -> Result<OrderSignature, ApiError> {
        let bad = |what: &str| ApiError::bad_request(format!("order signature: {what}"));
        let key: [u8; 32] = hex::decode(&self.key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("key must be 64 hex digits"))?;
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("signature must be 128 hex digits"))?;
        Ok(OrderSignature {
            key,
            expires_ms: self.expires_ms,
            module: self.module.clone(),
            signature,
        })
    }
}

/// The order a deploy's `market` block asks for (signed by `signed_by`),
/// or why it cannot be taken (verified results only for WASM tasks).
pub fn order_of(
    m: &MarketSpec,
    spec: &WorkloadSpec,
    signed_by: Option<&SignedBy>,
) -> Result<Order, ApiError> {
    m.validate(spec).map_err(|errs| {
        ApiError::bad_request(stratus_spec::SpecError::Invalid(errs).to_string())
    })?;
    if m.trust.is_some_and(|t| t > 1) {
        // Replicas of a task are compared result against result: only a
        // deterministic program gives the same result on every node.
        let why = if spec.image.is_some() && m.app.is_none() {
            Some("a container is not deterministic (clocks, randomness, threads and the kernel differ from node to node), so its replicas' results could not be compared; run a WASM task instead, or a published image app its owner declares deterministic")
        } else if spec.kind != stratus_spec::WorkloadKind::Task {
            Some("a service or daemon has no single result to compare")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ApiError::bad_request(format!(
                "market.trust above 1 (results verified by several lenders) is refused: {why}"
            )));
        }
    }
    Ok(Order {
        signature: signed_by.map(SignedBy::parse).transpose()?,
        ..unsigned_order(m)
    })
}

/// The terms of a `market` block as an order, not yet signed (what the
/// requester signs, and what the pool checks the signature against).
pub fn unsigned_order(m: &MarketSpec) -> Order {
    Order {
        max_price: m.max_price.map(Amount),
        prefer: m.prefer.map(|p| match p {
            MarketPrefer::Cheapest => Prefer::Cheapest,
            MarketPrefer::Nearest => Prefer::Nearest,
            MarketPrefer::Greenest => Prefer::Greenest,
        }),
        signature: None,
    }
}

/// A tenant's order key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderKey {
    /// The tenant.
    #[serde(default)]
    pub tenant: String,
    /// Its ed25519 public key (64 hex digits), or none.
    pub public_key: Option<String>,
}

/// The caller's order key (the operator: any tenant's).
#[utoipa::path(get, path = "/v1/account/order-key", tag = "market", security(("bearer" = [])),
    params(crate::accounts::TenantQuery),
    responses((status = 200, body = OrderKey), (status = 403, body = ErrorBody)))]
pub async fn get_order_key(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<crate::accounts::TenantQuery>,
) -> ApiResult<OrderKey> {
    let tenant = q.tenant.unwrap_or_else(|| c.tenant.clone());
    c.require_tenant(&tenant)?;
    let key = st
        .control
        .state()
        .read(|s| s.order_keys.get(&tenant).copied());
    Ok(Json(OrderKey {
        tenant,
        public_key: key.map(hex::encode),
    }))
}

/// Registers (or, with no key, removes) the caller's order key: from then
/// on its market orders must be signed by it.
#[utoipa::path(put, path = "/v1/account/order-key", tag = "market", security(("bearer" = [])),
    params(crate::accounts::TenantQuery), request_body = OrderKey,
    responses((status = 200, body = OrderKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_order_key(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<crate::accounts::TenantQuery>,
    JsonBody(body): JsonBody<OrderKey>,
) -> ApiResult<OrderKey> {
    let tenant = q.tenant.unwrap_or_else(|| c.tenant.clone());
    c.require_tenant(&tenant)?;
    let key = body
        .public_key
        .as_deref()
        .map(|k| {
            hex::decode(k)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| ApiError::bad_request("public_key must be 64 hex digits"))
        })
        .transpose()?;
    st.control
        .write(Command::Market(MarketCommand::SetOrderKey {
            tenant: tenant.clone(),
            key,
        }))
        .await?;
    Ok(Json(OrderKey {
        tenant,
        public_key: key.map(hex::encode),
    }))
}

/// Refuses a deploy of `spec` running `module` for `tenant` under `order`
/// when no node's offer could fit it (409, naming why) or the cheapest
/// that fits costs more than the tenant's balance (402, with the
/// shortfall). Capacity is the scheduler's to judge later.
pub(crate) fn check_order(
    st: &AppState,
    tenant: &str,
    spec: &WorkloadSpec,
    module: &str,
    order: Option<&Order>,
    uses: &stratus_state::catalog::Uses,
) -> Result<(), ApiError> {
    let (Ok(id), Ok(payload)) = (
        WorkloadId::new(tenant, &spec.name),
        module.parse::<Payload>(),
    ) else {
        return Ok(()); // refused with its own reason by the deploy
    };
    let w = Workload {
        id,
        tenant: tenant.to_string(),
        spec: spec.clone(),
        module: payload,
        generation: 0,
        previous: None,
        stopped: false,
        created_ms: 0,
        updated_ms: 0,
        instances_created: 0,
    };
    let now = now_ms();
    st.control.state().read(|s| {
        let used = if uses.is_empty() {
            None
        } else {
            Some(s.resolve_uses(uses, module)?)
        };
        let mut s_order = s.order(w.id.as_str());
        if let Some(o) = order {
            s_order = o.clone();
        }
        let mut quotes = Vec::new();
        let mut free = false;
        for node in s.nodes.keys() {
            // The order being deployed, not the stored one, decides.
            match s.placement_terms_with(&w, node, now, &s_order, used.as_ref()) {
                Ok(None) => free = true,
                Ok(Some(t)) => quotes.push(Ok(t.held.0)),
                Err(e) => quotes.push(Err(e.to_string())),
            }
        }
        if free || quotes.is_empty() {
            return Ok(());
        }
        let cheapest = quotes.iter().filter_map(|q| q.as_ref().ok()).copied().min();
        let Some(cheapest) = cheapest else {
            let mut why: Vec<String> = quotes.into_iter().filter_map(Result::err).collect();
            why.sort();
            why.dedup();
            return Err(ApiError::conflict(format!(
                "no offer fits this order: {}",
                why.join("; ")
            )));
        };
        let balance = s.account(tenant).balance.0;
        if cheapest > balance {
            return Err(ApiError::Rejected(ApplyError::InsufficientFunds(format!(
                "the cheapest fitting offer holds {cheapest} per instance in escrow and tenant {tenant} has {balance}: short by {}",
                cheapest - balance
            ))));
        }
        Ok(())
    })
}

/// The pool operator's terms: its fee, and the stake lenders hold per
/// replica of a verified run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolFee {
    /// Basis points of lenders' amounts (100 = 1%).
    pub fee_bps: u32,
    /// The stake a lender holds per replica of a verified run (its owner
    /// loses a third of it to the winners when its result loses). Absent
    /// in a `PUT`: unchanged.
    #[serde(default)]
    pub trusted_stake: Option<u64>,
}

/// The pool's fee on lenders' amounts.
#[utoipa::path(get, path = "/v1/market/fee", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = PoolFee)))]
pub async fn get_fee(State(st): State<AppState>, _c: Caller) -> Json<PoolFee> {
    let (fee_bps, stake) = st
        .control
        .state()
        .read(|s| (*s.pool_fee_bps, s.trusted_stake.0));
    Json(PoolFee {
        fee_bps,
        trusted_stake: Some(stake),
    })
}

/// Sets the pool's fee and, if given, the stake of verified runs (the
/// operator); deals and replicas already placed keep theirs.
#[utoipa::path(put, path = "/v1/market/fee", tag = "market", security(("bearer" = [])),
    request_body = PoolFee,
    responses((status = 200, body = PoolFee), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_fee(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(fee): JsonBody<PoolFee>,
) -> ApiResult<PoolFee> {
    if !c.is_admin() {
        return Err(ApiError::forbidden("only the pool operator sets its fee"));
    }
    st.control
        .write(Command::Market(MarketCommand::SetPoolFee {
            bps: fee.fee_bps,
        }))
        .await?;
    if let Some(stake) = fee.trusted_stake {
        st.control
            .write(Command::Market(MarketCommand::SetTrustedStake {
                amount: Amount(stake),
            }))
            .await?;
    }
    Ok(Json(fee))
}

/// An open deal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DealView {
    /// The instance (also the deal's id in ledger entries).
    pub instance: String,
    /// The workload.
    pub workload: String,
    /// Who pays.
    pub requester: String,
    /// Who is paid for running it.
    pub lender: String,
    /// The node (hex id).
    pub node: String,
    /// Put in escrow so far.
    pub held: u64,
    /// Paid to the lender and the pool so far.
    pub paid: u64,
    /// Still in escrow.
    pub left: u64,
    /// The pool's fee, basis points.
    pub fee_bps: u32,
    /// CPU milliseconds reported so far.
    pub cpu_ms: u64,
    /// Wall milliseconds reported so far.
    pub wall_ms: u64,
    /// When it was placed (ms since the Unix epoch).
    pub opened_ms: u64,
    /// Its requester could not top it up: the instance is being stopped.
    pub unfunded: bool,
}

/// Open deals the caller pays or is paid for (every one for the operator).
#[utoipa::path(get, path = "/v1/market/deals", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = [DealView])))]
pub async fn list_deals(State(st): State<AppState>, c: Caller) -> Json<Vec<DealView>> {
    Json(st.control.state().read(|s| {
        s.deals
            .iter()
            .filter(|(_, d)| {
                let t = &d.deal.terms;
                c.is_admin() || t.requester == c.tenant || t.lender == c.tenant
            })
            .map(|(id, d)| {
                let t = &d.deal.terms;
                DealView {
                    instance: id.clone(),
                    workload: d.workload.clone(),
                    requester: t.requester.clone(),
                    lender: t.lender.clone(),
                    node: d.node.to_string(),
                    held: t.held.0,
                    paid: d.deal.paid.0,
                    left: d.deal.left().0,
                    fee_bps: t.fee_bps,
                    cpu_ms: d.deal.usage.cpu_ms,
                    wall_ms: d.deal.usage.wall_ms,
                    opened_ms: d.opened_ms,
                    unfunded: d.unfunded,
                }
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WorkloadSpec {
        stratus_spec::parse(yaml, stratus_spec::Format::Yaml).expect("spec")
    }

    /// `trust > 1` is refused with the reason that fits the workload
    /// (issue 16, item 5: containers and services are not deterministic),
    /// and taken for WASM tasks.
    #[test]
    fn verified_results_are_refused_saying_why_except_for_wasm_tasks() {
        let m = MarketSpec {
            trust: Some(3),
            ..MarketSpec::default()
        };
        let why = |yaml: &str| match order_of(&m, &spec(yaml), None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("trust 3 taken for {yaml}"),
        };
        let container = why("version: 1\nname: c\nkind: task\nimage: { name: busybox }\n");
        assert!(
            container.contains("container is not deterministic"),
            "{container}"
        );
        let service = why("version: 1\nname: s\nkind: service\nwasm: { module: m.wat }\n");
        assert!(service.contains("no single result"), "{service}");
        // A WASM task is verified.
        assert!(order_of(
            &m,
            &spec("version: 1\nname: t\nkind: task\nwasm: { module: m.wat }\n"),
            None
        )
        .is_ok());
        // trust 1 is an ordinary order.
        let one = MarketSpec {
            trust: Some(1),
            ..MarketSpec::default()
        };
        assert!(order_of(
            &one,
            &spec("version: 1\nname: t\nkind: task\nwasm: { module: m.wat }\n"),
            None
        )
        .is_ok());
    }
}
