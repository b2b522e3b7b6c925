//! Workloads, their instances (allocations) and content-addressed modules.
//!
//! A [`Workload`] is what a tenant deployed (a [`WorkloadSpec`] and the hash
//! of its module). The leader's reconciler turns workloads into
//! [`Instance`]s placed on nodes; agents report what happens to them. Every
//! change is a command in the log, so the history of an instance — scheduled,
//! started, exited, restarted, lost, rescheduled, stopped — is replicated and
//! survives any replica.

use serde::{Deserialize, Serialize};
use stratus_spec::WorkloadSpec;
use stratus_types::{NodeId, Payload, WorkloadId};
use utoipa::ToSchema;

/// Largest module kept inline in the replicated state (replay of the first
/// layouts' `PutModule`/`PutTenantModule`; new modules are objects,
/// [`crate::modules::MAX_MODULE_OBJECT_BYTES`]).
pub const MAX_MODULE_BYTES: usize = 16 * 1024 * 1024;
/// Events kept per instance (oldest dropped first).
pub const MAX_EVENTS: usize = 64;

/// `blake3:<64 hex>` of `bytes`.
pub fn module_hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// A deployed workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workload {
    /// `tenant/name`.
    #[schema(value_type = String)]
    pub id: WorkloadId,
    /// Owner.
    pub tenant: String,
    /// Current spec.
    pub spec: WorkloadSpec,
    /// What the current spec runs: the module's content address
    /// (`blake3:<hex>`) or the pinned image (`image:NAME:TAG@VERSION`).
    #[schema(value_type = String)]
    pub module: Payload,
    /// Bumped on every deploy of a changed spec or module.
    pub generation: u64,
    /// The previous generation's spec and module (for automatic revert).
    #[schema(value_type = Option<(WorkloadSpec, String)>)]
    pub previous: Option<(WorkloadSpec, Payload)>,
    /// Stopped by its owner: no instance is kept running.
    pub stopped: bool,
    /// When first deployed (ms since the Unix epoch, leader clock).
    pub created_ms: u64,
    /// When last changed.
    pub updated_ms: u64,
    /// Instances ever placed for it: new instance ids are numbered from
    /// it, so ids stay unique after ended instances are pruned.
    #[serde(default)]
    pub instances_created: u64,
}

/// What the control plane wants of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Keep it running (or run it to completion, for tasks).
    Run,
    /// Stop it.
    Stop,
}

/// What an instance is doing, as last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Placed; the agent has not started it yet.
    Pending,
    /// Running.
    Running,
    /// A task that exited 0.
    Completed,
    /// Exited non-zero or was killed by a limit, and will not be restarted here.
    Failed {
        /// Exit code.
        code: i32,
        /// Why.
        reason: String,
    },
    /// Its node was lost.
    Lost,
    /// Stopped on request.
    Stopped,
}

impl InstanceState {
    /// Whether the instance has ended for good.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            InstanceState::Completed | InstanceState::Failed { .. } | InstanceState::Stopped
        )
    }
}

/// One entry of an instance's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// When (ms since the Unix epoch).
    pub time_ms: u64,
    /// `scheduled`, `started`, `exited`, `restarted`, `lost`, `rescheduled`, `stopped`, ...
    pub kind: String,
    /// Details for a person.
    pub message: String,
}

/// An instance of a workload placed on a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    /// Unique id: the first 12 hex characters of the BLAKE3 of
    /// `<workload>|<generation>|<slot>|<n>` (opaque: never parsed).
    pub id: String,
    /// Workload id.
    #[schema(value_type = String)]
    pub workload: WorkloadId,
    /// Node it is placed on.
    pub node: NodeId,
    /// Workload generation it runs.
    pub generation: u64,
    /// Task index / replica slot.
    pub slot: u32,
    /// What the control plane wants.
    pub desired: Desired,
    /// What the agent last reported.
    pub state: InstanceState,
    /// Restarts on its node so far.
    pub restarts: u32,
    /// Last exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Id of the instance this one replaces, if any.
    pub replaces: Option<String>,
    /// History, oldest first (at most [`MAX_EVENTS`]).
    pub events: Vec<Event>,
    /// When placed.
    pub created_ms: u64,
    /// When last changed.
    pub updated_ms: u64,
    /// Commands run inside the instance with `stratus exec` (container
    /// images only), oldest first; at most [`MAX_EXECS`] are kept.
    #[serde(default)]
    pub execs: Vec<ExecRecord>,
}

/// Exec records kept per instance.
pub const MAX_EXECS: usize = 16;

/// One command run inside a running container instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecRecord {
    /// Number within the instance (1, 2, ...); its output is the log stream
    /// `<instance>#exec-<n>`.
    pub n: u32,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Where it is.
    pub state: ExecState,
    /// When asked (ms since the Unix epoch).
    pub created_ms: u64,
}

/// State of an exec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecState {
    /// Waiting for the agent.
    Pending,
    /// Running in the container.
    Running,
    /// Ended with this exit code.
    Exited {
        /// Exit code (128 + signal when killed).
        code: i32,
    },
    /// Could not be run.
    Failed {
        /// Why.
        reason: String,
    },
}

impl ExecState {
    /// Whether it has ended.
    pub fn is_over(&self) -> bool {
        matches!(self, ExecState::Exited { .. } | ExecState::Failed { .. })
    }
}

/// The log stream of exec `n` of `instance`.
pub fn exec_log_id(instance: &str, n: u32) -> String {
    stratus_types::LogStream {
        instance,
        exec: Some(n),
    }
    .to_string()
}

impl Instance {
    /// A new instance of generation `generation` of `workload` in `slot`,
    /// placed on `node` at `now_ms`: wanted running, pending, with no
    /// history yet.
    pub fn pending(
        id: String,
        workload: WorkloadId,
        node: NodeId,
        generation: u64,
        slot: u32,
        now_ms: u64,
    ) -> Instance {
        Instance {
            id,
            workload,
            node,
            generation,
            slot,
            desired: Desired::Run,
            state: InstanceState::Pending,
            restarts: 0,
            exit_code: None,
            replaces: None,
            events: Vec::new(),
            created_ms: now_ms,
            updated_ms: now_ms,
            execs: Vec::new(),
        }
    }

    /// Appends an event, dropping the oldest beyond [`MAX_EVENTS`].
    pub fn push_event(&mut self, time_ms: u64, kind: &str, message: impl Into<String>) {
        self.events.push(Event {
            time_ms,
            kind: kind.into(),
            message: message.into(),
        });
        if self.events.len() > MAX_EVENTS {
            let extra = self.events.len() - MAX_EVENTS;
            self.events.drain(..extra);
        }
        self.updated_ms = time_ms;
    }

    /// Whether it holds resources on its node (placed, wanted, not ended).
    pub fn is_live(&self) -> bool {
        self.desired == Desired::Run
            && !self.state.is_terminal()
            && self.state != InstanceState::Lost
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratus_spec::WorkloadSpec;

    /// [`Workload`] as it was stored before its id and module were types.
    #[derive(Serialize)]
    struct OldWorkload {
        id: String,
        tenant: String,
        spec: WorkloadSpec,
        module: String,
        generation: u64,
        previous: Option<(WorkloadSpec, String)>,
        stopped: bool,
        created_ms: u64,
        updated_ms: u64,
        instances_created: u64,
    }

    /// [`Instance`] as it was stored before its workload id was a type.
    #[derive(Serialize)]
    struct OldInstance {
        id: String,
        workload: String,
        node: NodeId,
        generation: u64,
        slot: u32,
        desired: Desired,
        state: InstanceState,
        restarts: u32,
        exit_code: Option<i32>,
        replaces: Option<String>,
        events: Vec<Event>,
        created_ms: u64,
        updated_ms: u64,
        execs: Vec<ExecRecord>,
    }

    const HASH: &str = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn spec(name: &str) -> WorkloadSpec {
        stratus_spec::parse(
            &format!("version: 1\nname: {name}\nkind: service\nwasm: {{ module: m.wasm }}\n"),
            stratus_spec::Format::Yaml,
        )
        .unwrap()
    }

    #[test]
    fn rows_stored_with_string_ids_decode_and_encode_to_the_same_bytes() {
        let old = OldWorkload {
            id: "acme/web".into(),
            tenant: "acme".into(),
            spec: spec("web"),
            module: "image:lib/web:1.2@000000000000002a".into(),
            generation: 2,
            previous: Some((spec("web"), HASH.into())),
            stopped: false,
            created_ms: 1,
            updated_ms: 2,
            instances_created: 3,
        };
        let bytes = bincode::serialize(&old).unwrap();
        let w: Workload = bincode::deserialize(&bytes).unwrap();
        assert_eq!((w.id.tenant(), w.id.name()), ("acme", "web"));
        assert_eq!(
            w.module.image().map(|i| i.name_tag()),
            Some("lib/web:1.2".into())
        );
        assert!(w.previous.as_ref().unwrap().1.module().is_some());
        assert_eq!(bincode::serialize(&w).unwrap(), bytes);

        let old = OldInstance {
            id: "0123456789ab".into(),
            workload: "acme/web".into(),
            node: NodeId([7; 32]),
            generation: 2,
            slot: 0,
            desired: Desired::Run,
            state: InstanceState::Pending,
            restarts: 0,
            exit_code: None,
            replaces: None,
            events: Vec::new(),
            created_ms: 1,
            updated_ms: 1,
            execs: Vec::new(),
        };
        let bytes = bincode::serialize(&old).unwrap();
        let i: Instance = bincode::deserialize(&bytes).unwrap();
        assert_eq!(i.workload, "acme/web");
        assert_eq!(bincode::serialize(&i).unwrap(), bytes);
        // The API's JSON is the same too.
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["workload"], "acme/web");
    }
}
