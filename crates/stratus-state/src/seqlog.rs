//! Seq-numbered logs with a per-tenant index (the ledger, the audit log):
//! their keys, and the bounded scan a page is read from.
//!
//! A log's table is keyed by seq (u64 big-endian, so key order is seq
//! order); its index by `tenant \0 seq`, so one tenant's entries are a
//! range scan.

use std::ops::Bound;

use crate::kv::{prefix_end, Kv, Table};

/// The key of entry `seq`.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The index key of entry `seq` for `tenant`.
pub(crate) fn index_key(tenant: &str, seq: u64) -> Vec<u8> {
    let mut k = index_prefix(tenant);
    k.extend_from_slice(&seq_key(seq));
    k
}

fn index_prefix(tenant: &str) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.push(0);
    k
}

/// The seqs after `after`, in order: of the whole log (`tenant` `None`)
/// or of the tenant's index; at most `max`, so a page over a narrow time
/// window costs bounded work. `true` when more follow.
pub(crate) fn seqs_after(
    kv: &dyn Kv,
    log: Table,
    index: Table,
    tenant: Option<&str>,
    after: u64,
    max: usize,
) -> (Vec<u64>, bool) {
    let (table, prefix) = match tenant {
        None => (log, Vec::new()),
        Some(t) => (index, index_prefix(t)),
    };
    let end = prefix_end(&prefix).filter(|_| !prefix.is_empty());
    let mut from = prefix.clone();
    from.extend_from_slice(&seq_key(after.saturating_add(1)));
    let mut seqs = Vec::new();
    let mut more = false;
    kv.scan(table, Bound::Included(&from), &mut |k, _| {
        if end.as_deref().is_some_and(|e| k >= e) {
            return false;
        }
        if seqs.len() == max {
            more = true;
            return false;
        }
        if let Ok(b) = k[prefix.len()..].try_into() {
            seqs.push(u64::from_be_bytes(b));
        }
        true
    });
    (seqs, more)
}
