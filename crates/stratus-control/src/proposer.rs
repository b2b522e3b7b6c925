//! Group commit above Raft.
//!
//! openraft 0.9 appends and fsyncs each client write on its own before it
//! takes the next, so one command per log entry caps the write rate at one
//! fsync per write. The proposer packs every command submitted while the
//! previous entry was being committed into one [`Command::Batch`] entry: one
//! append, one fsync and one replication round for the whole batch. Exactly
//! one entry is in flight at a time, so batches grow with the load and a lone
//! write still costs a single round.

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use stratus_raft::Raft;
use stratus_state::{Command, CommandResult};
use stratus_types::NodeId;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most commands in one log entry.
pub const MAX_BATCH: usize = 1024;
/// Largest command, encoded: a larger one is refused before it reaches the
/// log (a 16 MiB module and its envelope fit). Such a command travels as a
/// log entry of its own, which must reach a follower within one heartbeat
/// interval (openraft's deadline for AppendEntries): modules leave the log
/// with issue 14.
pub const MAX_COMMAND_BYTES: u64 = 20 << 20;
/// A batch stops growing once its commands add up to this (a larger command
/// goes alone), so batches of small writes cross the network in time.
pub const MAX_BATCH_BYTES: u64 = 1 << 20;

/// Why a proposal did not commit here.
#[derive(Debug)]
pub enum ProposeError {
    /// This replica does not lead; the leader, if known.
    NotLeader(Option<(NodeId, BasicNode)>),
    /// Raft failed or is shutting down.
    Failed(String),
    /// The command is larger than [`MAX_COMMAND_BYTES`] encoded.
    TooLarge {
        /// Its encoded size.
        size: u64,
    },
}

type Reply = oneshot::Sender<Result<(u64, CommandResult), ProposeError>>;
type Proposal = (Command, u64, Reply);

/// Handle to the proposer task.
#[derive(Clone, Debug)]
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Starts the proposer task for `raft`; it stops with `cancel`.
    pub fn start(raft: Raft, cancel: CancellationToken) -> (Proposer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        (Proposer { tx }, tokio::spawn(run(raft, rx, cancel)))
    }

    /// Proposes `cmd`; answers with its log index and result once committed
    /// and applied.
    pub async fn propose(&self, cmd: Command) -> Result<(u64, CommandResult), ProposeError> {
        let size = bincode::serialized_size(&cmd)
            .map_err(|e| ProposeError::Failed(format!("encoding the command: {e}")))?;
        if size > MAX_COMMAND_BYTES {
            return Err(ProposeError::TooLarge { size });
        }
        let (reply, rx) = oneshot::channel();
        let stopped = || ProposeError::Failed("the control replica is shutting down".into());
        self.tx
            .send((cmd, size, reply))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>, cancel: CancellationToken) {
    // A proposal taken from the queue that did not fit the previous batch.
    let mut held: Option<Proposal> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => tokio::select! {
                _ = cancel.cancelled() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            },
        };
        let mut bytes = first.1;
        let (mut cmds, mut replies) = (vec![first.0], vec![first.2]);
        while cmds.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) if bytes + p.1 > MAX_BATCH_BYTES => {
                    held = Some(p);
                    break;
                }
                Ok((c, size, r)) => {
                    bytes += size;
                    cmds.push(c);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        let single = cmds.len() == 1;
        let entry = match (single, cmds.pop()) {
            (true, Some(c)) => c,
            (_, last) => {
                cmds.extend(last);
                Command::Batch(cmds)
            }
        };
        match raft.client_write(entry).await {
            Ok(r) => {
                let index = r.log_id.index;
                if single {
                    for reply in replies {
                        let _ = reply.send(Ok((index, r.data.clone())));
                    }
                } else {
                    let mut results = r.data.batch.into_iter();
                    for reply in replies {
                        let _ = reply.send(match results.next() {
                            Some(res) => Ok((index, res)),
                            None => Err(ProposeError::Failed("a batch result is missing".into())),
                        });
                    }
                }
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let leader = f.leader_id.zip(f.leader_node);
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::NotLeader(leader.clone())));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::Failed(msg.clone())));
                }
            }
        }
    }
}
