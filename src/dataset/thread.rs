//! The writer thread: one thread owns the dataset writer, fed through a bounded channel; a panic in
//! it is a failed write, never an aborted process.

use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;

use super::{DatasetWriter, WriteError, WriteReport, WriterSettings};
use crate::dataset::schema::Row;

/// A message to the writer thread.
pub(crate) enum WriterMsg {
    /// The row of the pair with this input ordinal.
    Row { row: Box<Row>, ordinal: u64 },
    /// Time passed: commit the part if it is older than the part interval.
    Tick,
    /// The targets that could not be audited, recorded in the manifest at the final commit.
    FailedTargets(Vec<super::FailedTarget>),
    /// Every pair has its row: commit everything, mark the dataset complete (recording the run that
    /// completed it), and stop.
    Commit(Box<super::manifest::Completion>),
    /// The run stopped early: commit the rows received (directory outputs, for `--resume`) and stop.
    Checkpoint,
    /// Discard what is not committed and stop.
    Abort,
    /// An input changed while it was read: discard what is not committed, make the dataset
    /// unresumable, and stop.
    Poison,
}

/// How the writer thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriterEnd {
    pub report: WriteReport,
    /// Whether the dataset was committed as complete.
    pub complete: bool,
}

/// Waits for the writer thread; a panic in it becomes [`WriteError::WriterPanicked`] (with the panic's
/// message) instead of taking the process down, so the run can stop with its committed parts kept.
pub(crate) fn join_writer(
    writer: std::thread::JoinHandle<Result<WriterEnd, WriteError>>,
) -> Result<WriterEnd, WriteError> {
    writer.join().unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(WriteError::WriterPanicked(message))
    })
}

/// How long the writer thread lets rows accumulate between drains while they keep coming.
const WRITER_NAP: Duration = Duration::from_millis(2);

/// Runs a writer on its own thread, fed by `rx`. If the channel closes without a final message, the
/// uncommitted part is discarded: an interrupted run never leaves a partial file under a final name.
pub(crate) fn spawn_writer(
    settings: WriterSettings,
    target: Option<super::OutputDir>,
    mut rx: tokio::sync::mpsc::Receiver<WriterMsg>,
) -> std::thread::JoinHandle<Result<WriterEnd, WriteError>> {
    // Object-store requests are driven from the writer thread through this runtime's handle
    // (`block_on` on a non-runtime thread): no runtime worker is ever blocked by an upload.
    let rt = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name("fleet-audit-writer".into())
        .spawn(move || {
            let mut w = DatasetWriter::new(settings, target).with_runtime(rt);
            let end = |report, complete| WriterEnd { report, complete };
            // One message: a row or a tick is taken here; the last message is returned.
            let step = |w: &mut DatasetWriter, msg| -> Result<Option<WriterMsg>, WriteError> {
                match msg {
                    WriterMsg::Row { row, ordinal } => w.push(&row, ordinal).map(|_| None),
                    WriterMsg::Tick => w.tick().map(|_| None),
                    WriterMsg::FailedTargets(t) => {
                        w.set_failed_targets(t);
                        Ok(None)
                    }
                    last => Ok(Some(last)),
                }
            };
            // While rows flow, drain what has arrived and nap: one wake-up per batch of rows instead
            // of a futex wake and a context switch per row. When nothing came since the last nap,
            // park until the next message (a slow run costs no polling).
            let mut drained = 0usize;
            let last = loop {
                let msg = match rx.try_recv() {
                    Ok(msg) => {
                        drained += 1;
                        msg
                    }
                    Err(TryRecvError::Empty) if drained > 0 => {
                        drained = 0;
                        std::thread::sleep(WRITER_NAP);
                        continue;
                    }
                    Err(TryRecvError::Empty) => match rx.blocking_recv() {
                        Some(msg) => msg,
                        None => break None,
                    },
                    Err(TryRecvError::Disconnected) => break None,
                };
                match step(&mut w, msg) {
                    Ok(None) => {}
                    Ok(Some(last)) => break Some(last),
                    Err(e) => {
                        w.abort();
                        return Err(e);
                    }
                }
            };
            match last {
                Some(WriterMsg::Commit(done)) => {
                    w.set_completion(*done);
                    w.finish(true).map(|r| end(r, true))
                }
                Some(WriterMsg::Checkpoint) => w.finish(false).map(|r| end(r, false)),
                Some(WriterMsg::Poison) => w.poison().map(|r| end(r, false)),
                // Abort, or the channel closed without a final message.
                _ => Ok(end(w.abort(), false)),
            }
        })
        .expect("spawn writer thread")
}
