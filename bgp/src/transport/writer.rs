//! The write side of a session: a task that owns the socket's write half
//! and coalesces whatever encoded messages are queued into one write, so a
//! burst of small UPDATEs or an initial table dump costs few syscalls.

use std::io;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound for one coalesced write.
const MAX_BATCH: usize = 256 * 1024;
/// Sends encoded messages (one or many per chunk) to the writer task.
/// Dropping every sender flushes what is queued and shuts the socket down.
/// Unbounded because the speaker's single RIB task must never wait on one
/// slow peer; what a peer has not yet taken is bounded by the table size
/// (Adj-RIB-Out), and the hold timer ends a peer that takes nothing.
pub type WriteQueue = mpsc::UnboundedSender<Vec<u8>>;

/// `flushed` is held by the task until the socket is written out and shut
/// down (or has failed): whoever keeps the receiving end learns that every
/// writer is done when the last sender is dropped, without sleeping.
pub fn spawn_writer(
    mut w: OwnedWriteHalf,
    flushed: mpsc::Sender<()>,
) -> (WriteQueue, JoinHandle<io::Result<()>>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let task = tokio::spawn(async move {
        let _flushed = flushed;
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&first);
            while buf.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            w.write_all(&buf).await?;
        }
        w.shutdown().await
    });
    (tx, task)
}
