//! The lifecycle pass: the leader carries out buckets' lifecycle rules
//! (`stratus_state::lifecycle`) as repair carries out redundancy.
//!
//! A pass walks the buckets that have rules, in name order, and in each the
//! key ranges the rules cover (one range scan per rule prefix, a page of
//! [`PAGE_KEYS`] keys per state read, so no bucket is ever loaded whole);
//! the pure [`evaluate_key_tagged`] says which versions expire, and the pass
//! proposes conditional [`StoreCommand::Expire`] commands (the same deletes a
//! client makes, so usage, quotas and garbage collection follow) and
//! [`StoreCommand::AbortUpload`] for old multipart uploads, at most
//! [`WRITES_IN_FLIGHT`] at a time (the proposer commits them in batches).
//! A pass visits at most [`StoreConfig::lifecycle_keys_per_pass`] keys;
//! past that it stops and the next pass resumes where it stopped.
//!
//! Time is the leader's clock; a day lasts
//! [`StoreConfig::lifecycle_day`] (86,400 s; tests shorten it).
//!
//! [`StoreConfig::lifecycle_keys_per_pass`]: crate::StoreConfig::lifecycle_keys_per_pass
//! [`StoreConfig::lifecycle_day`]: crate::StoreConfig::lifecycle_day

use stratus_state::bucket_configs::BucketConfigKind;
use stratus_state::lifecycle::{evaluate_key_tagged, upload_expires, Expiry, LifecycleConfig};
use stratus_state::object_lock::check_removal;
use stratus_state::objects::StoreCommand;

use crate::{now_ms, Store, StoreConfig};

/// Keys read per state read.
pub const PAGE_KEYS: usize = 256;
/// Lifecycle commands proposed at once.
pub const WRITES_IN_FLIGHT: usize = 64;

/// What a lifecycle pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    /// Buckets with rules visited.
    pub buckets: u64,
    /// Keys looked at.
    pub keys: u64,
    /// Versions expired (current ones hidden or removed, noncurrent ones
    /// removed).
    pub versions_expired: u64,
    /// Expired delete markers removed.
    pub markers_removed: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Commands that failed (logged; retried by the next pass).
    pub failed: u64,
    /// The pass reached the end of the last bucket (otherwise the next one
    /// resumes where it stopped).
    pub complete: bool,
    /// When it ran (leader clock, ms since the epoch).
    pub at_ms: u64,
}

/// Where the next pass resumes: a bucket and the last key done in it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cursor {
    bucket: Option<String>,
    after: Option<String>,
}

impl StoreConfig {
    /// Shortens (or lengthens) the lifecycle day, for trying rules out
    /// (ceph/s3-tests counts a day as 10 s): passes then run every fifth
    /// of a day, between 1 s and the default 300 s.
    #[must_use]
    pub fn with_lifecycle_day(mut self, day: std::time::Duration) -> Self {
        self.lifecycle_day = day;
        self.lifecycle_interval = (day / 5).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(300),
        );
        self
    }
}

/// One command of a pass and what it counts as.
enum Work {
    Expire(StoreCommand, bool),
    Abort(StoreCommand),
}

impl Store {
    /// One lifecycle pass (see the module doc): bounded, resumable, run by
    /// the maintenance worker of the leader; recorded in
    /// [`Store::maintenance_stats`].
    pub async fn lifecycle_once(&self) -> LifecycleReport {
        let cfg = &self.inner.cfg;
        let now = now_ms();
        let day = (cfg.lifecycle_day.as_millis() as u64).max(1);
        let mut budget = cfg.lifecycle_keys_per_pass.max(1);
        let mut report = LifecycleReport {
            at_ms: now,
            ..LifecycleReport::default()
        };
        let mut buckets: Vec<(String, String, LifecycleConfig)> = self.read(|s| {
            s.store
                .bucket_configs_of(BucketConfigKind::Lifecycle)
                .into_iter()
                .filter_map(|(b, doc)| {
                    let tenant = s.store.buckets.get(b)?.tenant.to_string();
                    match LifecycleConfig::parse(doc) {
                        Ok(c) => Some((b.to_owned(), tenant, c)),
                        Err(e) => {
                            tracing::warn!(bucket = b, error = %e, "lifecycle rules skipped");
                            None
                        }
                    }
                })
                .collect()
        });
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        let cursor = self
            .inner
            .lifecycle
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for (bucket, tenant, rules) in buckets {
            if cursor.bucket.as_ref().is_some_and(|c| bucket < *c) {
                continue;
            }
            report.buckets += 1;
            let mut after = cursor
                .after
                .clone()
                .filter(|_| cursor.bucket.as_ref() == Some(&bucket));
            if after.is_none() {
                let aborts: Vec<Work> = self.read(|s| {
                    s.store
                        .uploads
                        .values()
                        .filter(|u| u.bucket == bucket)
                        .filter(|u| upload_expires(&rules.rules, &u.key, u.created_ms, now, day))
                        .map(|u| {
                            Work::Abort(StoreCommand::AbortUpload {
                                tenant: tenant.clone(),
                                upload: u.id.clone(),
                            })
                        })
                        .collect()
                });
                self.run_lifecycle(aborts, &mut report).await;
            }
            for prefix in rules.scan_prefixes() {
                loop {
                    if budget == 0 {
                        self.save_cursor(Cursor {
                            bucket: Some(bucket),
                            after,
                        });
                        self.record_lifecycle(&report);
                        return report;
                    }
                    let limit = budget.min(PAGE_KEYS);
                    let (page, more, tags) = self.read(|s| {
                        let (page, more) =
                            s.store.list_keys(&bucket, &prefix, after.as_deref(), limit);
                        let tags = version_tags(s, &rules, &bucket, &page);
                        (page, more, tags)
                    });
                    budget -= page.len().min(budget);
                    report.keys += page.len() as u64;
                    let mut work = Vec::new();
                    for ((key, versions), tags) in page.iter().zip(&tags) {
                        for e in evaluate_key_tagged(&rules.rules, key, versions, tags, now, day) {
                            // Object lock: a locked noncurrent version stays
                            // (the state refuses it too; this saves the
                            // proposal).
                            if let Expiry::Noncurrent { version_id, .. } = &e {
                                let attrs =
                                    self.read(|s| s.store.version_attrs(&bucket, key, version_id));
                                if check_removal(attrs.lock(), now, false).is_err() {
                                    continue;
                                }
                            }
                            let marker = matches!(e, Expiry::Marker { .. });
                            work.push(Work::Expire(e.command(&tenant, &bucket, key, now), marker));
                        }
                    }
                    self.run_lifecycle(work, &mut report).await;
                    if let Some((last, _)) = page.last() {
                        after = Some(last.clone());
                    }
                    if !more || page.is_empty() {
                        break;
                    }
                }
            }
        }
        report.complete = true;
        self.record_lifecycle(&report);
        report
    }

    fn save_cursor(&self, c: Cursor) {
        if let Ok(mut cur) = self.inner.lifecycle.lock() {
            *cur = c;
        }
    }

    /// Proposes `work`, [`WRITES_IN_FLIGHT`] commands at a time, counting
    /// what took effect.
    async fn run_lifecycle(&self, work: Vec<Work>, report: &mut LifecycleReport) {
        let mut work = work.into_iter().peekable();
        while work.peek().is_some() {
            let slice: Vec<Work> = work.by_ref().take(WRITES_IN_FLIGHT).collect();
            let writes = slice.iter().map(|w| match w {
                Work::Expire(c, _) | Work::Abort(c) => self.write(c.clone()),
            });
            let results = futures::future::join_all(writes).await;
            for (w, r) in slice.iter().zip(results) {
                match (w, r) {
                    (Work::Expire(_, marker), Ok(r)) if r.version == Some(1) => {
                        if *marker {
                            report.markers_removed += 1;
                        } else {
                            report.versions_expired += 1;
                        }
                    }
                    (Work::Expire(..), Ok(_)) => {} // changed since the scan
                    (Work::Abort(_), Ok(_)) => report.uploads_aborted += 1,
                    (_, Err(e)) => {
                        report.failed += 1;
                        tracing::warn!(error = %e, "a lifecycle command failed");
                    }
                }
            }
        }
    }
}

/// The tags of every version of a page of keys (by key, in version order),
/// read only when a rule filters on tags (empty lists otherwise).
fn version_tags(
    s: &stratus_state::State,
    rules: &LifecycleConfig,
    bucket: &str,
    page: &[(String, Vec<stratus_state::objects::ObjectVersion>)],
) -> Vec<Vec<std::collections::BTreeMap<String, String>>> {
    let needed = rules.rules.iter().any(|r| r.filters_on_tags());
    page.iter()
        .map(|(key, versions)| {
            if !needed {
                return Vec::new();
            }
            versions
                .iter()
                .map(|v| s.store.version_attrs(bucket, key, &v.version_id).tags)
                .collect()
        })
        .collect()
}
