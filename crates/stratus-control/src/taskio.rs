//! Serving a WASM task's `/input` and `/output` objects to agents.
//!
//! A task's spec names objects of its tenant (`input: { bucket, prefix }`,
//! `output: { bucket, prefix }`), never a folder of the node. Agents hold no
//! storage keys, so they list and read input objects and store output files
//! through their control replica ([`Request::ListInput`],
//! [`Request::GetInput`], [`Request::PutOutput`]).
//!
//! Who may ask is decided here, from the authenticated peer and the
//! replicated state, the way volumes are ([`Control::peer_runs`]): the peer
//! must be assigned a live instance of a workload of `tenant` whose spec
//! (current, or previous during an update) declares that input (the bucket,
//! and a key or listing prefix under the declared prefix) or that output
//! (the bucket, and a key under the declared prefix). The store then checks
//! that the bucket belongs to `tenant`, so a workload naming another
//! tenant's bucket is refused there. The one exception is a paid dataset
//! (`market: { dataset: OWNER/NAME }`, [`stratus_state::catalog`]): a node
//! running a live instance of a workload that uses it, under an open
//! deal, reads the dataset's objects from its owner's store.

use std::sync::Arc;

use futures::future::BoxFuture;
use stratus_proto::{Request, Response, VolumePut};
use stratus_spec::{ObjectFolder, WorkloadSpec};
use stratus_types::{ErrorCode, NodeId};

use crate::Control;

/// Store side of task input and output: implemented over the object store
/// by the node and attached with [`Control::attach_task_io`]. The control
/// plane checks who may ask before calling it; implementations check that
/// the bucket belongs to `tenant`.
pub trait TaskIoServer: Send + Sync + 'static {
    /// Up to [`stratus_proto::MAX_LIST_PAGE`] objects of `tenant`'s
    /// `bucket` whose keys start with `prefix`, after `after`: a
    /// [`Response::ObjectList`].
    fn list_objects(
        &self,
        tenant: String,
        bucket: String,
        prefix: String,
        after: Option<String>,
    ) -> BoxFuture<'static, Result<Response, (ErrorCode, String)>>;
    /// Up to `len` bytes from `offset` of `version` (the latest when
    /// `None`) of `tenant`'s `bucket/key`: a [`Response::VolumeData`].
    fn read_object(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        version: Option<String>,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'static, Result<Response, (ErrorCode, String)>>;
    /// One step of storing `tenant`'s `bucket/key`: a [`Response::Volume`]
    /// (or [`Response::Ok`] for `Abort`).
    fn put_object(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        step: VolumePut,
    ) -> BoxFuture<'static, Result<Response, (ErrorCode, String)>>;
}

/// Which folder of a spec a request is about.
#[derive(Clone, Copy)]
enum Folder {
    Input,
    Output,
}

impl Folder {
    fn of(self, spec: &WorkloadSpec) -> Option<&ObjectFolder> {
        match self {
            Folder::Input => spec.input.as_ref(),
            Folder::Output => spec.output.upload(),
        }
    }
}

impl Control {
    /// Attaches the server agents fetch task input and store task output
    /// through.
    pub fn attach_task_io(&self, server: Arc<dyn TaskIoServer>) {
        if let Ok(mut t) = self.inner.task_io.lock() {
            *t = Some(server);
        }
    }

    /// Answers [`Request::ListInput`], [`Request::GetInput`] and
    /// [`Request::PutOutput`] (anything else is a bad request).
    pub(crate) async fn serve_task_io(&self, peer: NodeId, req: Request) -> Response {
        let (folder, tenant, bucket, key) = match &req {
            Request::ListInput {
                tenant,
                bucket,
                prefix,
                ..
            } => (Folder::Input, tenant, bucket, prefix),
            Request::GetInput {
                tenant,
                bucket,
                key,
                ..
            } => (Folder::Input, tenant, bucket, key),
            Request::PutOutput {
                tenant,
                bucket,
                key,
                ..
            } => (Folder::Output, tenant, bucket, key),
            _ => {
                return Response::Error {
                    code: ErrorCode::BadRequest,
                    message: "not a task input or output request".into(),
                }
            }
        };
        let holder = if self.declares(&peer, folder, tenant, bucket, key) {
            Some(tenant.clone())
        } else {
            match folder {
                Folder::Input => self.dataset_holder(&peer, tenant, bucket, key),
                Folder::Output => None,
            }
        };
        let Some(holder) = holder else {
            let what = match folder {
                Folder::Input => "an input",
                Folder::Output => "an output",
            };
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: format!(
                    "{peer} runs no instance of a workload of {tenant} with {what} in {bucket}/{key}"
                ),
            };
        };
        let server = self.inner.task_io.lock().ok().and_then(|t| t.clone());
        let Some(server) = server else {
            return Response::Error {
                code: ErrorCode::Unavailable,
                message: "this replica serves no task input or output".into(),
            };
        };
        let answer = match req {
            // Input is read from the store of its holder: the tenant's own,
            // or a paid dataset's owner.
            Request::ListInput {
                bucket,
                prefix,
                after,
                ..
            } => server.list_objects(holder, bucket, prefix, after),
            Request::GetInput {
                bucket,
                key,
                version,
                offset,
                len,
                ..
            } => server.read_object(holder, bucket, key, version, offset, len),
            Request::PutOutput {
                tenant,
                bucket,
                key,
                step,
            } => server.put_object(tenant, bucket, key, step),
            _ => return Response::Ok,
        };
        match answer.await {
            Ok(r) => r,
            Err((code, message)) => Response::Error { code, message },
        }
    }

    /// The owner of the paid dataset `bucket/key` (a key, or a listing
    /// prefix, under the dataset's prefix) when `peer` runs a live instance
    /// of a workload of `tenant` that uses it, under an open deal: a
    /// dataset is read only inside a paid deal, for that instance
    /// ([`stratus_state::catalog`]).
    fn dataset_holder(
        &self,
        peer: &NodeId,
        tenant: &str,
        bucket: &str,
        key: &str,
    ) -> Option<String> {
        self.inner.reader.read(|s| {
            s.instances.values().find_map(|i| {
                let live = !i.state.is_terminal() && i.state != stratus_state::InstanceState::Lost;
                if i.node != *peer || !live || !s.deals.contains_key(&i.id) {
                    return None;
                }
                let w = s.workloads.get(i.workload.as_str())?;
                let (owner, folder) = s.dataset_input(w.id.as_str())?;
                (w.tenant == tenant && folder.bucket == bucket && key.starts_with(&folder.prefix))
                    .then(|| owner.to_string())
            })
        })
    }

    /// Whether `peer` is assigned a live instance of a workload of `tenant`
    /// whose spec (current, or previous during an update) declares `folder`
    /// in `bucket` with `key` (a key, or a listing prefix) under its prefix.
    fn declares(
        &self,
        peer: &NodeId,
        folder: Folder,
        tenant: &str,
        bucket: &str,
        key: &str,
    ) -> bool {
        self.peer_runs(peer, tenant, true, |w| {
            [Some(&w.spec), w.previous.as_ref().map(|p| &p.0)]
                .into_iter()
                .flatten()
                .filter_map(|spec| folder.of(spec))
                .any(|f| f.bucket == bucket && key.starts_with(&f.prefix))
        })
    }
}
