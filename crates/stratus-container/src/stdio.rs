//! The container's standard streams: pipes whose far ends become the
//! container's fds 0, 1 and 2, read and written asynchronously here.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use stratus_runtime::Output;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ContainerError;

/// Size of one read, hence the largest [`Output`] chunk.
const CHUNK: usize = 64 * 1024;

/// After the container's init exited, how long we keep reading its pipes for
/// output still in flight. Normally EOF comes at once (the pid namespace is
/// gone); a write end held elsewhere (e.g. by a process forked by the agent
/// at that very moment) cannot delay the exit by more than this.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The container side of the streams, handed to libcontainer.
pub(crate) struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Our side: reader tasks that forward output, and a stdin writer task.
pub(crate) struct HostStdio {
    readers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| ContainerError::Io {
        context: "create a pipe".into(),
        source: e.into(),
    })
}

/// Creates the pipes and starts forwarding to `output`. Must be called within
/// a tokio runtime.
pub(crate) fn setup(
    stdin: Option<Vec<u8>>,
    output: mpsc::Sender<Output>,
) -> Result<(ChildStdio, HostStdio), ContainerError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (child_stdin, writer) = match stdin {
        Some(bytes) => {
            let (in_r, in_w) = pipe()?;
            let sender = pipe::Sender::from_owned_fd(in_w).map_err(|e| ContainerError::Io {
                context: "register the stdin pipe".into(),
                source: e,
            })?;
            let task = tokio::spawn(async move {
                let mut sender = sender;
                // The container may exit without reading: a failed write is
                // not an error.
                let _ = sender.write_all(&bytes).await;
            });
            (in_r, Some(task))
        }
        None => {
            let null = File::open("/dev/null").map_err(|e| ContainerError::Io {
                context: "open /dev/null".into(),
                source: e,
            })?;
            (OwnedFd::from(null), None)
        }
    };
    let mut readers = Vec::with_capacity(2);
    for (fd, is_err) in [(out_r, false), (err_r, true)] {
        let rx = pipe::Receiver::from_owned_fd(fd).map_err(|e| ContainerError::Io {
            context: "register an output pipe".into(),
            source: e,
        })?;
        readers.push(tokio::spawn(forward(rx, is_err, output.clone())));
    }
    Ok((
        ChildStdio {
            stdin: child_stdin,
            stdout: out_w,
            stderr: err_w,
        },
        HostStdio { readers, writer },
    ))
}

async fn forward(mut rx: pipe::Receiver, is_err: bool, output: mpsc::Sender<Output>) {
    let mut buf = vec![0u8; CHUNK];
    let mut open = true;
    loop {
        match rx.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let item = if is_err {
                    Output::Stderr(chunk)
                } else {
                    Output::Stdout(chunk)
                };
                // A dropped receiver: keep reading (so the container never
                // blocks on a full pipe) and discard.
                if open && output.send(item).await.is_err() {
                    open = false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading container output");
                break;
            }
        }
    }
}

impl HostStdio {
    /// Waits (at most [`DRAIN_TIMEOUT`]) until both output pipes are at EOF
    /// and everything read was sent; stops feeding stdin.
    pub(crate) async fn finish(mut self) {
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for mut r in std::mem::take(&mut self.readers) {
            if tokio::time::timeout_at(deadline, &mut r).await.is_err() {
                tracing::warn!("container output still open after exit; stopped reading");
                r.abort();
            }
        }
    }
}

impl Drop for HostStdio {
    fn drop(&mut self) {
        if let Some(w) = &self.writer {
            w.abort();
        }
        for r in &self.readers {
            r.abort();
        }
    }
}
