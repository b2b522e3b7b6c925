//! Bounds on the strings and lists lenders send (issue 13, item 6).
//!
//! A lender's agent is untrusted: what it registers (its node description)
//! and what it reports (instance events, exec results) goes into the
//! replicated state, every replica's memory and `stratus nodes`/`ps` output.
//! The frame bound of `authz` caps a whole request (16 KiB for a stranger's
//! `Register`, 24 MiB for a registered agent); this module caps each field:
//!
//! * **identifiers refuse**: a node description with a name, version, arch,
//!   os, region, site, label, storage address or runtime list over its limit
//!   is refused with [`BoundsError`], which names the field and the limit;
//! * **free text truncates**: event kinds and messages and exec failure
//!   reasons are cut (on a character boundary) with a note saying how much
//!   was dropped, so a report is never lost for being verbose;
//! * **lists**: at most [`MAX_REPORTS`] instance reports per call are
//!   written (the newest; older ones of a longer backlog are dropped).

use stratus_proto::InstanceReport;
use stratus_state::workloads::ExecState;
use stratus_types::NodeInfo;

/// Longest node name (a DNS name's limit).
pub const MAX_NODE_NAME: usize = 253;
/// Longest version, arch, os, region or site string.
pub const MAX_SHORT_FIELD: usize = 64;
/// Most labels a node may carry.
pub const MAX_LABELS: usize = 64;
/// Longest label key.
pub const MAX_LABEL_KEY: usize = 128;
/// Longest label value.
pub const MAX_LABEL_VALUE: usize = 256;
/// Longest storage address (`host:port`).
pub const MAX_ADDR: usize = 261;
/// Most runtimes a node may list.
pub const MAX_RUNTIMES: usize = 8;
/// Longest event kind kept (longer ones are cut).
pub const MAX_EVENT_KIND: usize = 64;
/// Longest event message or exec failure reason kept (longer ones are cut).
pub const MAX_MESSAGE: usize = 4096;
/// Most instance reports written per call.
pub const MAX_REPORTS: usize = 1000;

/// A field of a node description over its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node description refused: {field} is {len} {unit}, the limit is {limit}")]
pub struct BoundsError {
    /// Which field.
    pub field: String,
    /// Its length or count.
    pub len: usize,
    /// `bytes` or `entries`.
    pub unit: &'static str,
    /// The limit.
    pub limit: usize,
}

fn bytes(field: &str, s: &str, limit: usize) -> Result<(), BoundsError> {
    if s.len() > limit {
        return Err(BoundsError {
            field: field.to_string(),
            len: s.len(),
            unit: "bytes",
            limit,
        });
    }
    Ok(())
}

fn count(field: &str, n: usize, limit: usize) -> Result<(), BoundsError> {
    if n > limit {
        return Err(BoundsError {
            field: field.to_string(),
            len: n,
            unit: "entries",
            limit,
        });
    }
    Ok(())
}

/// Refuses a node description with a field over its limit.
pub fn check_node_info(info: &NodeInfo) -> Result<(), BoundsError> {
    bytes("name", &info.name, MAX_NODE_NAME)?;
    bytes("version", &info.version, MAX_SHORT_FIELD)?;
    let a = &info.attributes;
    bytes("attributes.arch", &a.arch, MAX_SHORT_FIELD)?;
    bytes("attributes.os", &a.os, MAX_SHORT_FIELD)?;
    bytes("attributes.region", &a.region, MAX_SHORT_FIELD)?;
    bytes("attributes.site", &a.site, MAX_SHORT_FIELD)?;
    count("attributes.labels", a.labels.len(), MAX_LABELS)?;
    for (k, v) in &a.labels {
        bytes("a label key", k, MAX_LABEL_KEY)?;
        bytes(&format!("label {k:?}'s value"), v, MAX_LABEL_VALUE)?;
    }
    if let Some(s) = &info.storage {
        bytes("storage.addr", &s.addr, MAX_ADDR)?;
    }
    count("runtimes", info.runtimes.len(), MAX_RUNTIMES)?;
    Ok(())
}

/// Cuts `s` to at most `limit` bytes (on a character boundary), saying how
/// many bytes were dropped.
pub fn truncate(s: &mut String, limit: usize) {
    if s.len() <= limit {
        return;
    }
    let dropped = s.len() - limit;
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(&format!(" [... {dropped} bytes cut]"));
}

/// Bounds a batch of instance reports: the newest [`MAX_REPORTS`], with
/// kinds and messages cut to their limits.
pub fn bound_reports(mut reports: Vec<InstanceReport>) -> Vec<InstanceReport> {
    if reports.len() > MAX_REPORTS {
        let extra = reports.len() - MAX_REPORTS;
        tracing::warn!(
            dropped = extra,
            "an agent sent more than {MAX_REPORTS} instance reports at once; the oldest are dropped"
        );
        reports.drain(..extra);
    }
    for r in &mut reports {
        truncate(&mut r.kind, MAX_EVENT_KIND);
        truncate(&mut r.message, MAX_MESSAGE);
    }
    reports
}

/// Cuts an exec failure reason to [`MAX_MESSAGE`].
pub fn bound_exec_state(state: &mut ExecState) {
    if let ExecState::Failed { reason } = state {
        truncate(reason, MAX_MESSAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_state::InstanceState;
    use stratus_types::{Attributes, Capacity, NodeId, PortRange};

    fn info() -> NodeInfo {
        NodeInfo {
            id: NodeId([1; 32]),
            name: "n1".into(),
            version: "0.1.0".into(),
            capacity: Capacity::default(),
            attributes: Attributes::default(),
            storage: None,
            runtimes: Vec::new(),
            ports: PortRange::default(),
        }
    }

    #[test]
    fn oversized_node_descriptions_are_refused_naming_the_limit() {
        assert!(check_node_info(&info()).is_ok());
        let mut i = info();
        i.name = "x".repeat(10 << 20);
        let e = check_node_info(&i).expect_err("refused");
        assert_eq!((e.field.as_str(), e.limit), ("name", MAX_NODE_NAME));
        assert!(e
            .to_string()
            .contains("name is 10485760 bytes, the limit is 253"));
        let mut i = info();
        for n in 0..100_000 {
            i.attributes.labels.insert(format!("k{n}"), "v".into());
        }
        let e = check_node_info(&i).expect_err("refused");
        assert_eq!(e.field, "attributes.labels");
        assert!(e.to_string().contains("100000 entries, the limit is 64"));
        let mut i = info();
        i.attributes.labels.insert("zone".into(), "v".repeat(300));
        assert!(check_node_info(&i)
            .expect_err("refused")
            .field
            .contains("zone"));
        let mut i = info();
        i.attributes.region = "r".repeat(65);
        assert_eq!(
            check_node_info(&i).expect_err("refused").field,
            "attributes.region"
        );
    }

    #[test]
    fn reports_are_truncated_not_refused() {
        let r = |n: u32| InstanceReport {
            id: format!("i{n}"),
            state: InstanceState::Running,
            restarts: n,
            exit_code: None,
            kind: "k".repeat(1000),
            message: "é".repeat(1 << 20),
            time_ms: 0,
        };
        let out = bound_reports((0..MAX_REPORTS as u32 + 5).map(r).collect());
        assert_eq!(out.len(), MAX_REPORTS);
        // The newest are kept.
        assert_eq!(out[0].restarts, 5);
        for o in &out {
            assert!(o.kind.len() <= MAX_EVENT_KIND + 40);
            assert!(o.message.len() <= MAX_MESSAGE + 40);
            assert!(o.message.ends_with("bytes cut]"));
        }
        let mut s = ExecState::Failed {
            reason: "x".repeat(100_000),
        };
        bound_exec_state(&mut s);
        assert!(matches!(s, ExecState::Failed { reason } if reason.len() < MAX_MESSAGE + 40));
    }
}
