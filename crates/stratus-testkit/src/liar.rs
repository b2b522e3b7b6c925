//! A lying lender, for tests only (never in the product binary): an
//! executor that runs the task for real in the WASM sandbox and then alters
//! what it returns, the way a lender that wants to be paid without the
//! work, or to sabotage a requester, would.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stratus_runtime::{Executor, Exit, Output, RuntimeError, TaskSpec, WasmExecutor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a [`Liar`] lies.
#[derive(Clone, Debug)]
pub struct Lie {
    /// Bytes added to the end of the task's standard output (liars with
    /// the same bytes collude: they return the same wrong result).
    pub append: Vec<u8>,
    /// How long it waits after the task ends before it returns (a liar
    /// hoping to see the others' answers first).
    pub wait: Duration,
}

/// An executor that lies (see the module docs).
pub struct Liar {
    inner: Arc<WasmExecutor>,
    lie: Lie,
}

impl Liar {
    /// A liar telling `lie`.
    pub fn new(lie: Lie) -> Result<Liar, RuntimeError> {
        Ok(Liar {
            inner: Arc::new(WasmExecutor::new()?),
            lie,
        })
    }
}

impl Executor for Liar {
    fn run(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Exit, RuntimeError>> + Send {
        let inner = self.inner.clone();
        let lie = self.lie.clone();
        async move {
            let (tx, mut rx) = mpsc::channel(256);
            let forward = async {
                while let Some(o) = rx.recv().await {
                    let _ = output.send(o).await;
                }
            };
            let (exit, ()) = tokio::join!(inner.run(spec, tx, cancel), forward);
            tokio::time::sleep(lie.wait).await;
            if !lie.append.is_empty() {
                let _ = output.send(Output::Stdout(lie.append.clone())).await;
            }
            exit
        }
    }
}
