//! The audit log: every lifecycle event, ledger entry and administrative act
//! of the cell, hash-chained in the replicated state and signed by replicas
//! (issue 15, item 6).
//!
//! **Records.** [`State::apply`] derives, after a command applied
//! successfully (each command of a batch on its own), the records it
//! deserves ([`crate::audit_derive`]: which commands, and what a record
//! says) and appends them: [`Table::Audit`] (`seq` big-endian → JSON
//! [`AuditRecord`]) with a per-tenant index [`Table::AuditIndex`]
//! (`tenant \0 seq`), as the ledger does. Every ledger entry is recorded
//! where it is posted (`State::post_entry`), so no entry can escape the
//! log, whatever command posts it. A record holds no secret: token and join
//! secrets are never in a command, and hashes of secrets, keys and module
//! bytes are left out too. Subjects and details are bounded
//! ([`MAX_SUBJECT`], [`MAX_DETAIL`]).
//!
//! **The chain.** `hash = BLAKE3(prev ‖ body)`, where `body` is the
//! record's canonical JSON without `prev` and `hash` ([`AuditRecord::body`])
//! and `prev` the hash of the record before (zeros before the first). The
//! head (last seq and hash) is a row of the small state ([`AuditHead`]).
//! Records are stored compact and canonical: a stored record that does not
//! re-encode to exactly its bytes is unreadable, so any change of a stored
//! byte shows.
//!
//! **Signatures.** `apply` cannot sign (every replica applies the same
//! command with its own key), so the leader proposes
//! [`CheckpointCommand`]s: the head `(seq, hash)` signed with its node key
//! (ed25519; the [`NodeId`] is the public key), with the cluster key's
//! vouch for that node (the proof every replica gives agents that it is a
//! replica of this cluster). `apply` accepts a checkpoint only if the head
//! matches, both signatures verify and the cluster key is the one of the
//! first checkpoint; checkpoints are kept in [`Table::AuditCheckpoints`] and
//! are not records themselves (a checkpoint moves no head, so signing never
//! calls for more signing). A record is *signed by* the replica of the
//! first checkpoint at or after it: that replica, the leader of the time,
//! names itself and answers for it. Records after the last checkpoint are
//! "not signed yet".
//!
//! **Verification** ([`crate::audit_verify`]) is pure and runs in the
//! client: it recomputes the chain and every checkpoint's signatures from
//! the records and checkpoints the server serves, and names the first
//! broken record.

use std::ops::Bound;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use stratus_types::{NodeId, TenantName};
use utoipa::ToSchema;

use crate::kv::Table;
use crate::seqlog::{index_key, seq_key, seqs_after};
use crate::{ApplyError, State};

/// Longest subject kept in a record, in bytes (longer ones are cut).
pub const MAX_SUBJECT: usize = 256;
/// Longest detail kept in a record, in bytes (longer ones are cut).
pub const MAX_DETAIL: usize = 512;
/// Most tenants one record names.
pub const MAX_TENANTS: usize = 16;
/// Most records or checkpoints one page returns.
pub const MAX_PAGE: usize = 1_000;
/// Kind of the placeholder served for a stored record that does not read
/// back (never produced by `apply`; the verifier reports it).
pub const UNREADABLE: &str = "unreadable";

/// What a replica signs for a checkpoint (followed by seq BE and the head).
const CHECKPOINT_DOMAIN: &[u8] = b"stratus audit checkpoint v1\0";
/// What the cluster key signs to vouch for a replica (followed by its node
/// id): the same message as `stratus_net::cluster::ClusterKey::vouch`
/// (tested in `stratus-control`).
const VOUCH_DOMAIN: &[u8] = b"stratus cluster vouches for replica v1\0";

/// One record of the audit log, as stored and served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the log (1, 2, ...).
    pub seq: u64,
    /// When (ms since the Unix epoch, the proposing leader's clock; for a
    /// command without a time, the time of the record before).
    pub at_ms: u64,
    /// Raft log index of the command that made it.
    pub index: u64,
    /// What happened (`workload.deploy`, `ledger.deposit`, `token.issue`, ...).
    pub kind: String,
    /// The tenants it concerns (each one lists it).
    pub tenants: Vec<TenantName>,
    /// What it happened to (a workload, an instance, a node, a token id...).
    pub subject: String,
    /// A short description (bounded; never a secret).
    pub detail: String,
    /// Hex BLAKE3 hash of the record before (zeros for the first).
    pub prev: String,
    /// Hex `BLAKE3(prev ‖ body)`.
    pub hash: String,
}

/// The part of a record its hash covers, with `prev`.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    at_ms: u64,
    index: u64,
    kind: &'a str,
    tenants: &'a [TenantName],
    subject: &'a str,
    detail: &'a str,
}

impl AuditRecord {
    /// The canonical bytes the hash covers (with `prev`).
    pub fn body(&self) -> Vec<u8> {
        let body = Body {
            seq: self.seq,
            at_ms: self.at_ms,
            index: self.index,
            kind: &self.kind,
            tenants: &self.tenants,
            subject: &self.subject,
            detail: &self.detail,
        };
        // A struct of strings and integers always encodes.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The hash this record should carry, given the previous one.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(&self.body());
        *h.finalize().as_bytes()
    }
}

/// A signed checkpoint, as stored and served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The last record it signs.
    pub seq: u64,
    /// Hex hash of that record.
    pub head: String,
    /// The replica that signed (its node id is its ed25519 public key).
    pub replica: NodeId,
    /// Hex ed25519 signature of the replica over the head.
    pub signature: String,
    /// Hex ed25519 public key of the cluster.
    pub cluster_key: String,
    /// Hex signature of the cluster key over the replica's id (its proof
    /// of being a replica of this cluster).
    pub vouch: String,
    /// When it was proposed (leader clock, ms).
    pub at_ms: u64,
}

/// A replica signs the audit log's head (proposed by the leader).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCommand {
    /// The last record signed.
    pub seq: u64,
    /// Its hash.
    pub head: [u8; 32],
    /// The signing replica.
    pub replica: NodeId,
    /// ed25519 signature of `replica` over [`checkpoint_message`].
    pub signature: Vec<u8>,
    /// The cluster's public key.
    pub cluster_key: [u8; 32],
    /// The cluster key's signature over [`vouch_message`] of `replica`.
    pub vouch: Vec<u8>,
    /// Leader time.
    pub now_ms: u64,
}

/// The head of the audit log (a row of the small state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Seq of the last record (0: none yet).
    pub seq: u64,
    /// Its hash (zeros when none).
    pub hash: [u8; 32],
    /// The last time a record carried.
    pub last_ms: u64,
    /// Seq of the last checkpoint (0: none).
    pub signed: u64,
    /// The cluster key every checkpoint is vouched by (set by the first).
    pub cluster_key: Option<[u8; 32]>,
}

/// What a replica signs for a checkpoint of `seq` with hash `head`.
pub fn checkpoint_message(seq: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut m = CHECKPOINT_DOMAIN.to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// What the cluster key signs to vouch for `replica`.
pub fn vouch_message(replica: NodeId) -> Vec<u8> {
    let mut m = VOUCH_DOMAIN.to_vec();
    m.extend_from_slice(&replica.0);
    m
}

/// Whether `signature` is `key`'s ed25519 signature of `message` (strict:
/// no malleable or weak-key forms).
pub fn signed_by(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(k), Ok(s)) = (
        VerifyingKey::from_bytes(key),
        Signature::from_slice(signature),
    ) else {
        return false;
    };
    k.verify_strict(message, &s).is_ok() && k.verify(message, &s).is_ok()
}

/// A record about to be appended (what `audit_derive` makes of a command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending {
    pub kind: String,
    pub tenants: Vec<TenantName>,
    pub subject: String,
    pub detail: String,
    /// The command's time, when it has one.
    pub at_ms: Option<u64>,
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A page of audit records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Where the next page starts (its `after`), or `None` at the end.
    pub next: Option<u64>,
}

impl State {
    /// Appends `p`, made by the command at log `index`, to the chain.
    pub(crate) fn audit_append(&mut self, index: u64, p: Pending) -> Result<(), ApplyError> {
        let head = &mut *self.audit;
        let at_ms = p.at_ms.unwrap_or(head.last_ms);
        let mut tenants: Vec<TenantName> =
            p.tenants.into_iter().filter(|t| !t.is_empty()).collect();
        tenants.sort();
        tenants.dedup();
        tenants.truncate(MAX_TENANTS);
        let mut record = AuditRecord {
            seq: head.seq + 1,
            at_ms,
            index,
            kind: p.kind,
            tenants,
            subject: cut(&p.subject, MAX_SUBJECT),
            detail: cut(&p.detail, MAX_DETAIL),
            prev: hex::encode(head.hash),
            hash: String::new(),
        };
        let hash = record.compute_hash(&head.hash);
        record.hash = hex::encode(hash);
        let doc = serde_json::to_vec(&record).map_err(|e| {
            ApplyError::internal(format!("cannot encode audit record {}: {e}", record.seq))
        })?;
        head.seq = record.seq;
        head.hash = hash;
        head.last_ms = head.last_ms.max(at_ms);
        let kv = self.store.kv.as_mut();
        for t in &record.tenants {
            kv.put(Table::AuditIndex, &index_key(t, record.seq), &[]);
        }
        kv.put(Table::Audit, &seq_key(record.seq), &doc);
        Ok(())
    }

    /// Records a ledger entry as it is posted (`State::post_entry`).
    pub(crate) fn audit_ledger(
        &mut self,
        r: &crate::accounts::LedgerRecord,
    ) -> Result<(), ApplyError> {
        let reason = serde_json::to_value(r.entry.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", r.entry.reason).to_lowercase());
        let transfers: Vec<String> = r
            .entry
            .transfers
            .iter()
            .map(|t| format!("{} -> {}: {}", t.from, t.to, t.amount))
            .collect();
        let refs = serde_json::to_string(&r.entry.refs).unwrap_or_default();
        let tenants = crate::accounts::tenants_of(&r.entry)
            .into_iter()
            .map(str::to_string)
            .collect();
        let p = Pending {
            kind: format!("ledger.{reason}"),
            tenants,
            subject: format!("ledger entry {}", r.seq),
            detail: format!("{}; refs {refs}", transfers.join(", ")),
            at_ms: Some(r.at_ms),
        };
        self.audit_append(self.applying, p)
    }

    /// Applies a checkpoint: the head it names must be the record's, both
    /// signatures must verify, and the cluster key must be the first one's.
    pub(crate) fn apply_checkpoint(&mut self, c: &CheckpointCommand) -> Result<(), ApplyError> {
        let head = self.audit.clone();
        if c.seq == 0 || c.seq > head.seq {
            return Err(ApplyError::invalid(format!(
                "audit checkpoint at record {} but the log has {} records",
                c.seq, head.seq
            )));
        }
        if c.seq <= head.signed {
            return Err(ApplyError::conflict(format!(
                "audit record {} is already signed (through {})",
                c.seq, head.signed
            )));
        }
        let hash = if c.seq == head.seq {
            head.hash
        } else {
            let r = self
                .audit_record(c.seq)
                .and_then(Result::ok)
                .ok_or_else(|| {
                    ApplyError::internal(format!("audit record {} is unreadable", c.seq))
                })?;
            let mut h = [0u8; 32];
            hex::decode_to_slice(&r.hash, &mut h).map_err(|_| {
                ApplyError::internal(format!("audit record {} has a bad hash", c.seq))
            })?;
            h
        };
        if hash != c.head {
            return Err(ApplyError::invalid(format!(
                "audit checkpoint names a head that is not record {}'s",
                c.seq
            )));
        }
        if !signed_by(
            &c.replica.0,
            &checkpoint_message(c.seq, &c.head),
            &c.signature,
        ) {
            return Err(ApplyError::forbidden(format!(
                "audit checkpoint at record {}: the signature is not node {}'s",
                c.seq, c.replica
            )));
        }
        if !signed_by(&c.cluster_key, &vouch_message(c.replica), &c.vouch) {
            return Err(ApplyError::forbidden(format!(
                "audit checkpoint at record {}: node {} is not vouched for by the cluster key",
                c.seq, c.replica
            )));
        }
        if head.cluster_key.is_some_and(|k| k != c.cluster_key) {
            return Err(ApplyError::forbidden(
                "audit checkpoint vouched by another cluster key than the log's",
            ));
        }
        let cp = Checkpoint {
            seq: c.seq,
            head: hex::encode(c.head),
            replica: c.replica,
            signature: hex::encode(&c.signature),
            cluster_key: hex::encode(c.cluster_key),
            vouch: hex::encode(&c.vouch),
            at_ms: c.now_ms,
        };
        let doc = serde_json::to_vec(&cp)
            .map_err(|e| ApplyError::internal(format!("cannot encode a checkpoint: {e}")))?;
        self.store
            .kv
            .put(Table::AuditCheckpoints, &seq_key(c.seq), &doc);
        let a = &mut *self.audit;
        a.signed = c.seq;
        a.cluster_key = Some(c.cluster_key);
        Ok(())
    }

    /// Record `seq`: `None` if absent, an error if its stored bytes do not
    /// read back as a canonical record.
    pub fn audit_record(&self, seq: u64) -> Option<Result<AuditRecord, String>> {
        let doc = self.store.kv.get(Table::Audit, &seq_key(seq))?;
        Some(decode_canonical(&doc))
    }

    /// A page of the records concerning `tenant` (every record when `None`:
    /// the operator's view) with `seq > after` and `at_ms` in `window`,
    /// oldest first, at most `limit` (capped at [`MAX_PAGE`]). A stored
    /// record that does not read back is served as a placeholder of kind
    /// [`UNREADABLE`] (with its seq), so a verifier stops there.
    pub fn audit_page(
        &self,
        tenant: Option<&str>,
        after: u64,
        window: std::ops::Range<u64>,
        limit: usize,
    ) -> AuditPage {
        let limit = limit.clamp(1, MAX_PAGE);
        let (seqs, mut more) = seqs_after(
            self.store.kv.as_ref(),
            Table::Audit,
            Table::AuditIndex,
            tenant,
            after,
            MAX_PAGE * 10,
        );
        let mut page = AuditPage::default();
        for seq in &seqs {
            if page.records.len() == limit {
                more = true;
                break;
            }
            page.next = Some(*seq);
            match self.audit_record(*seq) {
                Some(Ok(r)) if window.contains(&r.at_ms) => page.records.push(r),
                Some(Ok(_)) | None => {}
                Some(Err(reason)) => page.records.push(AuditRecord {
                    seq: *seq,
                    at_ms: 0,
                    index: 0,
                    kind: UNREADABLE.into(),
                    tenants: Vec::new(),
                    subject: String::new(),
                    detail: cut(&reason, MAX_DETAIL),
                    prev: String::new(),
                    hash: String::new(),
                }),
            }
        }
        if !more {
            page.next = None;
        }
        page
    }

    /// Up to `limit` (capped at [`MAX_PAGE`]) checkpoints signing records
    /// after `after`, oldest first. A stored checkpoint that does not read
    /// back is skipped (the verifier then finds its records unsigned or the
    /// next checkpoint's signature covering them).
    pub fn audit_checkpoints(&self, after: u64, limit: usize) -> Vec<Checkpoint> {
        let limit = limit.clamp(1, MAX_PAGE);
        let from = seq_key(after.saturating_add(1));
        let mut out = Vec::new();
        self.store.kv.scan(
            Table::AuditCheckpoints,
            Bound::Included(&from),
            &mut |_, v| {
                if let Ok(c) = serde_json::from_slice(v) {
                    out.push(c);
                }
                out.len() < limit
            },
        );
        out
    }

    /// The head of the log: (last seq, its hash, last signed seq).
    pub fn audit_head(&self) -> (u64, [u8; 32], u64) {
        (self.audit.seq, self.audit.hash, self.audit.signed)
    }
}

/// Reads a stored record, refusing any bytes that are not exactly its
/// canonical encoding.
fn decode_canonical(doc: &[u8]) -> Result<AuditRecord, String> {
    let r: AuditRecord = serde_json::from_slice(doc)
        .map_err(|e| format!("the stored record does not parse: {e}"))?;
    match serde_json::to_vec(&r) {
        Ok(again) if again == doc => Ok(r),
        _ => Err("the stored record is not in its canonical form".into()),
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
