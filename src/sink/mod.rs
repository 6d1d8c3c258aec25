//! Output: rows -> RecordBatches -> Parquet or Arrow IPC files, committed atomically.
//!
//! One thread owns the writer and is fed through a bounded channel (which is also the back-pressure on
//! the callers). Every file is written under a hidden temporary name beside its final one, synced, and
//! renamed only when complete, so no reader ever sees a half-written file under a final name. A
//! directory output is a set of part files, rotated every `part_rows` rows.

mod files;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

pub use files::{FilePart, Format};

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
    /// Rows per RecordBatch handed to the file writer.
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub run_id: String,
    pub region: Option<String>,
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
            next_part: 0,
            report: WriteReport::default(),
        }
    }

    /// The final path of part `n` of a directory output.
    fn part_path(&self, n: u32) -> PathBuf {
        match &self.settings.layout {
            Layout::File(p) => p.clone(),
            Layout::Dir(d) => d.join(format!(
                "part-{}-{n:05}.{}",
                self.settings.run_id,
                self.settings.format.extension()
            )),
        }
    }

    /// Appends one row; writes a batch when enough rows are buffered and rotates parts when full.
    pub fn push(&mut self, row: &Row) -> Result<(), SinkError> {
        self.builder.push(row);
        self.part_rows += 1;
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

    /// Completes the current part: flush, close, sync, rename to its final name.
    pub fn commit_part(&mut self) -> Result<(), SinkError> {
        self.flush_batch()?;
        if let Some(part) = self.part.take() {
            let path = part.commit()?;
            self.report.files.push(path);
            self.report.rows += self.part_rows;
            self.next_part += 1;
        }
        self.part_rows = 0;
        Ok(())
    }

    /// Commits what is buffered. A file output with no rows still gets a valid, empty file.
    pub fn finish(mut self) -> Result<WriteReport, SinkError> {
        if self.part.is_none() && self.builder.is_empty() && self.report.files.is_empty() {
            let path = self.part_path(0);
            let part = FilePart::create(
                path,
                self.settings.format,
                Arc::clone(self.builder.schema()),
                self.settings.row_group_rows,
            )?;
            self.report.files.push(part.commit()?);
            return Ok(self.report);
        }
        self.commit_part()?;
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
    Row(Box<Row>),
    /// Commit everything and stop.
    Commit,
    /// Discard what is not committed and stop.
    Abort,
}

/// Runs a writer on its own thread, fed by `rx`. If the channel closes without [`SinkMsg::Commit`],
/// the uncommitted part is discarded: an interrupted run never leaves a partial file under a final name.
pub fn spawn_writer(
    settings: SinkSettings,
    mut rx: tokio::sync::mpsc::Receiver<SinkMsg>,
) -> std::thread::JoinHandle<Result<(WriteReport, bool), SinkError>> {
    std::thread::Builder::new()
        .name("fleet-audit-writer".into())
        .spawn(move || {
            let mut w = DatasetWriter::new(settings);
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    SinkMsg::Row(row) => {
                        if let Err(e) = w.push(&row) {
                            w.abort();
                            return Err(e);
                        }
                    }
                    SinkMsg::Commit => return w.finish().map(|r| (r, true)),
                    SinkMsg::Abort => return Ok((w.abort(), false)),
                }
            }
            Ok((w.abort(), false))
        })
        .expect("spawn writer thread")
}
