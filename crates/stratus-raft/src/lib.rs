//! The Raft plumbing of the control plane.
//!
//! **Owns** the durability of the control plane: the Raft log, the state
//! machine's database, snapshots on disk and on the wire, and the Raft
//! timing defaults. **Does not own** the state's rules (`stratus-state`) or
//! when to snapshot (`stratus-control`'s `snapshots`).
//!
//! - [`store`]: durable openraft storage on redb (log, vote, commit pointer)
//!   and, in `sm`, the state machine around [`stratus_state::State`]
//!   applied into its own redb database ([`statedb`]: the `Kv` backend and
//!   the streamed, checksummed snapshot files), with a cheap [`StateReader`]
//!   for the rest of the node;
//! - [`network`]: openraft's network over the authenticated QUIC transport
//!   of `stratus-net`;
//! - [`default_config`]: the Raft timing and snapshot policy Stratus uses.
//!
//! Wiring it together:
//!
//! ```ignore
//! let (log, sm) = stratus_raft::store::open(&data_dir.join("raft")).await?;
//! let reader = sm.reader();
//! let config = std::sync::Arc::new(stratus_raft::default_config("stratus")?);
//! let raft = stratus_raft::Raft::new(my_id, config, Network::new(pool), log, sm).await?;
//! ```

mod batch;
mod bloom;
pub mod network;
mod runs;
mod sm;
pub mod statedb;
pub mod store;

pub use network::{Network, NetworkConnection};
pub use runs::Tuning as ChunkRunTuning;
pub use store::{open, LogStore, StateMachineStore, StateReader, StoreError};

/// The Raft node of the Stratus control plane.
pub type Raft = openraft::Raft<stratus_state::TypeConfig>;

/// Heartbeat interval of the leader, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 250;
/// Lower bound of the randomized election timeout, in milliseconds.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1000;
/// Upper bound of the randomized election timeout, in milliseconds.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2000;
/// A snapshot is built every this many applied log entries.
pub const SNAPSHOT_EVERY_LOGS: u64 = 5000;
/// Log entries kept after a snapshot, so slightly lagging followers catch up
/// from the log instead of a full snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1000;

/// The openraft configuration Stratus uses, validated. (The error, boxed
/// because it is large, can only come from inconsistent timing constants.)
///
/// Tuned for replicas spread over the Internet rather than a data centre:
/// heartbeats every 250 ms, elections after 1–2 s of silence, a snapshot
/// every 5000 entries keeping the last 1000, and snapshots sent in 1 MiB
/// chunks with a 10 s timeout per chunk.
///
/// openraft bounds each AppendEntries call by the heartbeat interval, so a
/// follower is only replicated to if its round trip time stays well under
/// 250 ms (connection setup is done in the background, see
/// [`NetworkConnection`]).
pub fn default_config(cluster_name: &str) -> Result<openraft::Config, Box<openraft::ConfigError>> {
    openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_LOGS),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        purge_batch_size: 256,
        install_snapshot_timeout: 10_000,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let config = default_config("test").expect("valid config");
        assert_eq!(config.cluster_name, "test");
        assert_eq!(config.heartbeat_interval, 250);
        assert!(config.election_timeout_min < config.election_timeout_max);
        assert!(matches!(
            config.snapshot_policy,
            openraft::SnapshotPolicy::LogsSinceLast(5000)
        ));
    }
}
