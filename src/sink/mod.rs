//! Output: rows -> RecordBatches -> Parquet or Arrow IPC files, committed atomically.
//!
//! One thread owns the writer and is fed through a bounded channel (which is also the back-pressure on
//! the callers). Every file is written under a hidden temporary name beside its final one, synced, and
//! renamed only when complete, so no reader ever sees a half-written file under a final name. A
//! directory output is a set of part files, rotated every `part_rows` rows.

mod files;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::error::TryRecvError;

pub use files::{parquet_properties, FilePart, Format};
pub use manifest::{lane_ordinal, DoneSet, Manifest, ManifestError, PartEntry, MANIFEST};

use crate::schema::{BatchBuilder, Row};

/// Where the dataset goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One file with this final path.
    File(PathBuf),
    /// A directory of part files.
    Dir(PathBuf),
}

impl Layout {
    pub fn path(&self) -> &Path {
        match self {
            Layout::File(p) | Layout::Dir(p) => p,
        }
    }
}

/// How to write the dataset.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub layout: Layout,
    pub format: Format,
    /// Rows per part file in a directory output.
    pub part_rows: u64,
    /// A directory output's part is also committed once it is this old (and holds rows).
    pub part_interval: Duration,
    /// The manifest a directory output starts from (fresh, or loaded to resume); `None` for a file.
    pub manifest: Option<Manifest>,
    /// Rows per RecordBatch handed to the file writer.
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub run_id: String,
    pub region: Option<String>,
    /// The shard a sharded run writes; it goes into the part file names.
    pub shard: Option<crate::shard::Shard>,
}

/// Errors of the output side; each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("cannot encode {path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What was committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub rows: u64,
    /// Final paths of the committed files, in order.
    pub files: Vec<PathBuf>,
}

/// Accumulates rows into batches and batches into committed files.
pub struct DatasetWriter {
    settings: SinkSettings,
    builder: BatchBuilder,
    part: Option<FilePart>,
    part_rows: u64,
    /// Ordinals of the pairs in the current part.
    part_ordinals: Vec<u64>,
    part_opened: Option<Instant>,
    next_part: u32,
    report: WriteReport,
}

impl DatasetWriter {
    pub fn new(settings: SinkSettings) -> Self {
        DatasetWriter {
            builder: BatchBuilder::new(&settings.run_id, settings.region.as_deref()),
            settings,
            part: None,
            part_rows: 0,
            part_ordinals: Vec::new(),
            part_opened: None,
            next_part: 0,
            report: WriteReport::default(),
        }
    }

    /// The manifest as committed so far (directory outputs only).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.settings.manifest.as_ref()
    }

    /// The final path of part `n` of a directory output: `part-<run_id>-<n>.<ext>`, or
    /// `part-<run_id>-s<K>of<N>-<n>.<ext>` for shard K of N.
    fn part_path(&self, n: u32) -> PathBuf {
        match &self.settings.layout {
            Layout::File(p) => p.clone(),
            Layout::Dir(d) => {
                let shard = self
                    .settings
                    .shard
                    .map(|s| format!("-{}", s.file_tag()))
                    .unwrap_or_default();
                d.join(format!(
                    "part-{}{shard}-{n:05}.{}",
                    self.settings.run_id,
                    self.settings.format.extension()
                ))
            }
        }
    }

    /// Appends the row of pair `ordinal`; writes a batch when enough rows are buffered and rotates
    /// parts when full.
    pub fn push(&mut self, row: &Row, ordinal: u64) -> Result<(), SinkError> {
        self.builder.push(row);
        self.part_rows += 1;
        // Only a manifest needs to know which pairs a part holds; a single file does not, and
        // remembering them there would grow with the dataset.
        if self.settings.manifest.is_some() {
            self.part_ordinals.push(ordinal);
        }
        self.part_opened.get_or_insert_with(Instant::now);
        if self.builder.len() >= self.settings.batch_rows {
            self.flush_batch()?;
        }
        if matches!(self.settings.layout, Layout::Dir(_))
            && self.part_rows >= self.settings.part_rows
        {
            self.commit_part()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), SinkError> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let path = self.part_path(self.next_part);
        let batch: RecordBatch = self.builder.finish().map_err(|source| SinkError::Arrow {
            path: path.clone(),
            source,
        })?;
        if self.part.is_none() {
            self.part = Some(FilePart::create(
                path,
                self.settings.format,
                Arc::clone(self.builder.schema()),
                self.settings.row_group_rows,
            )?);
        }
        self.part.as_mut().expect("part opened above").write(&batch)
    }

    /// Commits the current part when it is older than the part interval (directory outputs).
    pub fn tick(&mut self) -> Result<(), SinkError> {
        let due = self
            .part_opened
            .is_some_and(|t| t.elapsed() >= self.settings.part_interval);
        if due && matches!(self.settings.layout, Layout::Dir(_)) {
            self.commit_part()?;
        }
        Ok(())
    }

    /// Completes the current part: flush, close, sync, rename to its final name, then record it in
    /// the manifest (directory outputs).
    pub fn commit_part(&mut self) -> Result<(), SinkError> {
        self.flush_batch()?;
        if let Some(part) = self.part.take() {
            let path = part.commit()?;
            if let (Some(m), Layout::Dir(dir)) =
                (&mut self.settings.manifest, &self.settings.layout)
            {
                m.parts.push(PartEntry {
                    file: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    rows: self.part_rows,
                });
                for o in self.part_ordinals.drain(..) {
                    m.committed.insert(o);
                }
                m.store(dir)?;
            }
            self.report.files.push(path);
            self.report.rows += self.part_rows;
            self.next_part += 1;
        }
        self.part_rows = 0;
        self.part_ordinals.clear();
        self.part_opened = None;
        Ok(())
    }

    /// Commits what is buffered; `complete` marks a directory's manifest as holding every pair. A
    /// dataset with no rows at all still gets one valid, empty file.
    pub fn finish(mut self, complete: bool) -> Result<WriteReport, SinkError> {
        let nothing_yet =
            self.report.files.is_empty() && self.manifest().is_none_or(|m| m.parts.is_empty());
        if self.part.is_none() && self.builder.is_empty() && nothing_yet && complete {
            let path = self.part_path(0);
            let part = FilePart::create(
                path,
                self.settings.format,
                Arc::clone(self.builder.schema()),
                self.settings.row_group_rows,
            )?;
            // An empty part still goes through the manifest like any other.
            self.part = Some(part);
            self.part_opened = Some(Instant::now());
        }
        self.commit_part()?;
        if let (Some(m), Layout::Dir(dir)) = (&mut self.settings.manifest, &self.settings.layout) {
            m.complete = complete;
            m.store(dir)?;
        }
        Ok(self.report)
    }

    /// Drops the uncommitted part (its temporary file is removed) and returns what was committed.
    pub fn abort(mut self) -> WriteReport {
        if let Some(part) = self.part.take() {
            part.discard();
        }
        self.report
    }
}

/// A message to the writer thread.
pub enum SinkMsg {
    /// The row of the pair with this input ordinal.
    Row { row: Box<Row>, ordinal: u64 },
    /// Time passed: commit the part if it is older than the part interval.
    Tick,
    /// Every pair has its row: commit everything, mark the dataset complete, and stop.
    Commit,
    /// The run stopped early: commit the rows received (directory outputs, for `--resume`) and stop.
    Checkpoint,
    /// Discard what is not committed and stop.
    Abort,
}

/// How the writer thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterEnd {
    pub report: WriteReport,
    /// Whether the dataset was committed as complete.
    pub complete: bool,
}

/// How long the writer thread lets rows accumulate between drains while they keep coming.
const WRITER_NAP: Duration = Duration::from_millis(2);

/// Runs a writer on its own thread, fed by `rx`. If the channel closes without a final message, the
/// uncommitted part is discarded: an interrupted run never leaves a partial file under a final name.
pub fn spawn_writer(
    settings: SinkSettings,
    mut rx: tokio::sync::mpsc::Receiver<SinkMsg>,
) -> std::thread::JoinHandle<Result<WriterEnd, SinkError>> {
    std::thread::Builder::new()
        .name("fleet-audit-writer".into())
        .spawn(move || {
            let mut w = DatasetWriter::new(settings);
            let end = |report, complete| WriterEnd { report, complete };
            // One message: a row or a tick is taken here; the last message is returned.
            let step = |w: &mut DatasetWriter, msg| -> Result<Option<SinkMsg>, SinkError> {
                match msg {
                    SinkMsg::Row { row, ordinal } => w.push(&row, ordinal).map(|_| None),
                    SinkMsg::Tick => w.tick().map(|_| None),
                    last => Ok(Some(last)),
                }
            };
            let last = 'recv: loop {
                // While rows flow, drain what has arrived and nap: one wake-up per batch of rows
                // instead of a futex wake and a context switch per row. When nothing came during a
                // nap, park until the next message (a slow run costs no polling).
                let mut drained = 0usize;
                loop {
                    let msg = match rx.try_recv() {
                        Ok(msg) => msg,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break 'recv None,
                    };
                    drained += 1;
                    match step(&mut w, msg) {
                        Ok(None) => {}
                        Ok(Some(last)) => break 'recv Some(last),
                        Err(e) => {
                            w.abort();
                            return Err(e);
                        }
                    }
                }
                if drained > 0 {
                    std::thread::sleep(WRITER_NAP);
                    continue;
                }
                let Some(msg) = rx.blocking_recv() else {
                    break None;
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
                Some(SinkMsg::Commit) => w.finish(true).map(|r| end(r, true)),
                Some(SinkMsg::Checkpoint) => w.finish(false).map(|r| end(r, false)),
                // Abort, or the channel closed without a final message.
                _ => Ok(end(w.abort(), false)),
            }
        })
        .expect("spawn writer thread")
}
