//! Failing storage nodes and full disks in the API (issue 13, items 5
//! and 10): the challenge records of storage nodes, clearing a mark (admin),
//! and the status the answering replica adds to `/v1/status` (its log disk
//! against its watermark, and the storage nodes that are full).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::disk::DiskStatus;
use stratus_state::marks::{MarkCommand, NodeMark};
use stratus_state::Command;
use stratus_store::NodeSpace;
use stratus_types::{ClusterStatus, NodeId};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, WriteResult};

/// The challenge record of one storage node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeMarkView {
    /// The node.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Failed challenges and the mark, if any.
    #[serde(flatten)]
    pub record: NodeMark,
}

/// `/v1/status`: the control plane, plus this replica's log disk and the
/// storage nodes that are full.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// The control plane.
    #[serde(flatten)]
    pub cluster: ClusterStatus,
    /// The answering replica's Raft log disk against its watermark.
    pub disk: DiskStatus,
    /// Storage nodes with less than one pack's worth of space (they get no
    /// pieces), as the answering replica last measured them.
    pub full_storage_nodes: Vec<NodeSpace>,
}

pub(crate) async fn status_view(st: &AppState) -> StatusView {
    StatusView {
        cluster: st.control.cluster_status().await,
        disk: st.control.disk_status(),
        full_storage_nodes: st
            .store
            .node_space()
            .into_iter()
            .filter(|n| n.full)
            .collect(),
    }
}

/// Storage nodes that failed challenges, with their strikes and marks.
#[utoipa::path(get, path = "/v1/nodes/marks", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, body = [NodeMarkView]), (status = 401, body = ErrorBody)))]
pub async fn list_marks(State(st): State<AppState>, _c: Caller) -> Json<Vec<NodeMarkView>> {
    Json(st.control.state().read(|s| {
        s.marks
            .iter()
            .map(|(id, m)| NodeMarkView {
                node: *id,
                name: s
                    .nodes
                    .get(id)
                    .map(|n| n.info.name.clone())
                    .unwrap_or_default(),
                record: m.clone(),
            })
            .collect()
    }))
}

/// Clears a storage node's mark and strikes (admin): it gets new pieces
/// again. Pieces repair moved away stay where they are.
#[utoipa::path(post, path = "/v1/nodes/{id}/unmark", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "full node id")),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unmark(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<WriteResult>, ApiError> {
    c.require_admin()?;
    let node: NodeId = id.parse()?;
    let applied = st
        .control
        .write(Command::Marks(MarkCommand::Clear { node }))
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}
