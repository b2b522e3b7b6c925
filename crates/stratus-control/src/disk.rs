//! The free-space watermark of a replica's Raft log disk (issue 13, item 10).
//!
//! A replica whose log disk fills up cannot append, so it cannot even apply
//! the deletes that would free space. Before that, writes that add data are
//! refused with [`ErrorCode::InsufficientStorage`] (HTTP 507, S3
//! `ServiceUnavailable`) while the file system holding the log has less free
//! space than the watermark; reads, deletes and the cluster's own
//! housekeeping (node status, repair, garbage collection, marks) still go
//! through, so an operator can free space.
//!
//! The watermark is [`ControlConfig::min_free_bytes`](crate::ControlConfig)
//! when set, else [`default_watermark`]: 1 GiB, but at most 5% of the file
//! system. 1 GiB holds a lab cluster's snapshot and the housekeeping
//! entries written while an operator frees space; the 5% cap keeps small
//! disks (an 8 GB SD card) usable. A percentage alone would not do: on a
//! 270 GB disk shared with builds, 5% (13.5 GB) refused writes with 13 GB
//! free, which is plenty for a Raft log.
//! Free space is read with `statvfs` at most once per [`MEASURE_EVERY`], so
//! the check costs a mutex and a clock read per write.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use stratus_state::objects::StoreCommand;
use stratus_state::Command;
use utoipa::ToSchema;

/// How long a free-space reading is reused.
pub const MEASURE_EVERY: Duration = Duration::from_secs(1);
/// The default watermark on large disks.
pub const DEFAULT_WATERMARK: u64 = 1 << 30;

/// The default watermark for a file system of `total` bytes: 1 GiB, at most
/// 5% of it.
pub fn default_watermark(total: u64) -> u64 {
    DEFAULT_WATERMARK.min(total / 20)
}

/// The log disk of a replica as `stratus status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskStatus {
    /// Bytes free for this replica on the file system holding its Raft log.
    pub free_bytes: u64,
    /// Size of that file system.
    pub total_bytes: u64,
    /// Writes that add data are refused below this many free bytes.
    pub watermark_bytes: u64,
    /// Free space is under the watermark: such writes are refused now.
    pub low: bool,
}

/// Whether `cmd` adds data for a client (refused while the disk is low).
/// Deletes, revocations and the cluster's own housekeeping are not.
pub fn adds_data(cmd: &Command) -> bool {
    match cmd {
        Command::Batch(cmds) => cmds.iter().any(adds_data),
        Command::CreateTenant { .. }
        | Command::CreateToken { .. }
        | Command::IssueToken { .. }
        | Command::PutVar { .. }
        | Command::Exec { .. }
        | Command::PutModule { .. }
        | Command::PutTenantModule { .. }
        | Command::PutModuleObject { .. }
        | Command::CreateJoinCredential { .. }
        | Command::DeployWorkload { .. }
        | Command::DeployOrdered { .. }
        | Command::DeployUsing { .. }
        | Command::DeployTrusted { .. }
        | Command::DeployNetworked { .. }
        | Command::DeployExtended { .. }
        | Command::Catalog(_) => true,
        Command::Store(s) => matches!(
            s,
            StoreCommand::CreateBucket { .. }
                | StoreCommand::CommitPack { .. }
                | StoreCommand::PutObject { .. }
                | StoreCommand::CreateUpload { .. }
                | StoreCommand::PutPart { .. }
                | StoreCommand::CompleteUpload { .. }
                | StoreCommand::CreateAccessKey { .. }
                | StoreCommand::PutObjectWith { .. }
                | StoreCommand::SetObjectTags { .. }
                | StoreCommand::CreateUploadWith { .. }
                | StoreCommand::CompleteUploadWith { .. }
                | StoreCommand::SetObjectAcl { .. }
        ),
        // Listed one by one, so a new command must be placed on a side.
        Command::RegisterNode { .. }
        | Command::SetNodeStatus { .. }
        | Command::RemoveNode { .. }
        | Command::RevokeToken { .. }
        | Command::ReportExec { .. }
        | Command::SetJoinToken { .. }
        | Command::StopWorkload { .. }
        | Command::PlaceInstances { .. }
        | Command::SetDesired { .. }
        | Command::ReportInstance { .. }
        | Command::SetDrain { .. }
        | Command::DeleteVar { .. }
        | Command::SetQuota { .. }
        | Command::Prune { .. }
        | Command::Marks(_)
        | Command::SetClusterKey { .. }
        | Command::RevokeJoinCredential { .. }
        | Command::JoinNode { .. }
        | Command::BanNode { .. } => false,
        // Money moves even on a low disk: an entry is a few hundred bytes,
        // and a settlement that could not be recorded would be money lost.
        Command::Market(_) | Command::ReportUsage(_) | Command::Trust(_) => false,
        // A checkpoint is small and signs what is already written.
        Command::AuditCheckpoint(_) => false,
    }
}

/// Reads (free, total) bytes of the file system holding a path.
pub type Probe = Box<dyn Fn(&std::path::Path) -> std::io::Result<(u64, u64)> + Send + Sync>;

/// `statvfs`: bytes available to this user, and the file system's size.
pub fn statvfs(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    // The field types differ between platforms.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let frag = u64::from(s.fragment_size() as u64);
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let (avail, blocks) = (
        u64::from(s.blocks_available() as u64),
        u64::from(s.blocks() as u64),
    );
    Ok((avail.saturating_mul(frag), blocks.saturating_mul(frag)))
}

/// The watermark check of one replica.
pub struct Watermark {
    dir: PathBuf,
    configured: Mutex<Option<u64>>,
    probe: Probe,
    last: Mutex<Option<(Instant, DiskStatus)>>,
}

impl Watermark {
    /// Checks the file system of `dir` with `statvfs`; `min_free` overrides
    /// the default watermark.
    pub fn new(dir: PathBuf, min_free: Option<u64>) -> Watermark {
        Self::with_probe(dir, min_free, Box::new(statvfs))
    }

    /// As [`Watermark::new`] with another way to measure (tests).
    pub fn with_probe(dir: PathBuf, min_free: Option<u64>, probe: Probe) -> Watermark {
        Watermark {
            dir,
            configured: Mutex::new(min_free),
            probe,
            last: Mutex::new(None),
        }
    }

    /// Changes the watermark (`None`: the default) from now on.
    pub fn set_min_free(&self, min_free: Option<u64>) {
        if let Ok(mut c) = self.configured.lock() {
            *c = min_free;
        }
        if let Ok(mut l) = self.last.lock() {
            *l = None;
        }
    }

    /// The disk now (measured at most once per [`MEASURE_EVERY`]). A disk
    /// that cannot be measured is not reported low (the append itself will
    /// fail with the reason if the disk is really gone).
    pub fn status(&self) -> DiskStatus {
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if let Some((at, s)) = last.as_ref() {
            if at.elapsed() < MEASURE_EVERY {
                return s.clone();
            }
        }
        let configured = self.configured.lock().map(|c| *c).unwrap_or(None);
        let s = match (self.probe)(&self.dir) {
            Ok((free, total)) => {
                let watermark = configured.unwrap_or_else(|| default_watermark(total));
                DiskStatus {
                    free_bytes: free,
                    total_bytes: total,
                    watermark_bytes: watermark,
                    low: free < watermark,
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure the log disk");
                DiskStatus {
                    free_bytes: 0,
                    total_bytes: 0,
                    watermark_bytes: configured.unwrap_or(DEFAULT_WATERMARK),
                    low: false,
                }
            }
        };
        *last = Some((Instant::now(), s.clone()));
        s
    }

    /// `Err` with the disk's state when `cmd` adds data and the disk is low.
    pub fn check(&self, cmd: &Command) -> Result<(), DiskStatus> {
        if !adds_data(cmd) {
            return Ok(());
        }
        let s = self.status();
        if s.low {
            Err(s)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_default_watermark_is_a_gib_at_most_five_percent() {
        assert_eq!(default_watermark(8 << 30), (8 << 30) / 20);
        assert_eq!(default_watermark(20 << 30), 1 << 30);
        assert_eq!(default_watermark(270 << 30), 1 << 30);
    }

    #[test]
    fn only_writes_that_add_data_are_refused_when_low() {
        let free = Arc::new(AtomicU64::new(10 << 30));
        let f = free.clone();
        let w = Watermark::with_probe(
            PathBuf::from("/"),
            Some(2 << 30),
            Box::new(move |_| Ok((f.load(Ordering::SeqCst), 100 << 30))),
        );
        let put = Command::PutVar {
            tenant: "t".into(),
            key: "k".into(),
            value: "v".into(),
            now_ms: 0,
        };
        let del = Command::DeleteVar {
            tenant: "t".into(),
            key: "k".into(),
        };
        assert!(w.check(&put).is_ok());
        free.store(1 << 30, Ordering::SeqCst);
        // The reading is cached for a second.
        assert!(w.check(&put).is_ok());
        w.set_min_free(Some(2 << 30));
        let s = w.check(&put).unwrap_err();
        assert!(s.low && s.free_bytes == 1 << 30 && s.watermark_bytes == 2 << 30);
        assert!(w.check(&del).is_ok());
        assert!(w
            .check(&Command::Batch(vec![del.clone(), put.clone()]))
            .is_err());
        assert!(w.check(&Command::Batch(vec![del])).is_ok());
    }

    #[test]
    fn statvfs_measures_a_real_folder() {
        let (free, total) = statvfs(std::path::Path::new("/")).unwrap();
        assert!(total > 0 && free <= total);
    }
}
