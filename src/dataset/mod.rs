//! The dataset: what a run writes and what readers read back, local or in S3.
//!
//! Rows -> RecordBatches -> Parquet or Arrow IPC files, committed atomically. One thread owns the
//! writer and is fed through a bounded channel (which is also the back-pressure on the callers). Every
//! file is written under a hidden temporary name beside its final one, synced, and renamed only when
//! complete, so no reader ever sees a half-written file under a final name. A directory output is a
//! set of part files, rotated every `part_rows` rows, recorded in a manifest.
//!
//! Parts: `files` (one file's encoder, atomic commit); `write` (the dataset writer: parts, rotation,
//! manifest updates); `writer` (the thread that owns it and the messages it takes); `manifest` (what
//! is committed, for resume); `partition` (Hive-style `key=value` folders); `dir` (a dataset
//! directory, local or remote, seen the same way); `s3` (the directory in S3 through `object_store`:
//! parts are written to a local staging folder, uploaded with a multipart upload that only completes
//! when whole, then the manifest is replaced with one PUT, conditional on the version last written);
//! `lock` (one writer per output: a local `flock`, an S3 lease); `read` (reading a dataset back:
//! what its manifest lists); `fetch` (an object-store dataset's committed files, fetched for those
//! readers).

mod credentials;
pub(crate) mod ddl;
pub mod delta;
mod dir;
mod fetch;
mod files;
pub(crate) mod lock;
pub(crate) mod manifest;
pub mod partition;
pub mod read;
pub(crate) mod s3;
pub mod schema;
mod thread;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use dir::OutputDir;
pub(crate) use dir::{Entry, Kind};
pub(crate) use fetch::{fetch_remote, Fetched};
pub(crate) use files::temp_path;
pub use files::{parquet_properties, FilePart, Format};
pub use lock::LockError;
pub(crate) use lock::{Holder, OutputLock};
pub(crate) use manifest::{lane_ordinal, MANIFEST};
pub use manifest::{
    Completion, DoneSet, FailedTarget, LaneDone, Manifest, ManifestError, PartDigest, PartEntry,
};
pub use partition::{PartitionKey, Partitioning};
pub use read::{
    data_files, read_dataset, read_file, with_partition_columns, AuditFiles, DataFiles,
    DatasetError, Incomplete,
};
pub(crate) use read::{ignored_note, read_file_in, read_part};
pub use s3::{Remote, RemoteError};
pub(crate) use thread::{join_writer, spawn_writer, WriterEnd, WriterMsg};
pub use write::DatasetWriter;

/// A fresh run id: UTC time plus random bits, safe in file names (a part's name carries the id of
/// the run that wrote it).
pub(crate) fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{:06x}",
        now.as_secs(),
        rand::random::<u32>() & 0xFF_FFFF
    )
}

/// Where the dataset goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One file with this final path.
    File(PathBuf),
    /// A directory of part files.
    Dir(PathBuf),
    /// A directory of part files in an object store (`s3://bucket/prefix/`).
    Remote(Remote),
}

impl Layout {
    /// The file or directory path, or the URL as a path.
    pub fn path(&self) -> &Path {
        match self {
            Layout::File(p) | Layout::Dir(p) => p,
            Layout::Remote(r) => r.display(),
        }
    }

    /// Whether the dataset is a directory of parts (local or remote), committed part by part.
    pub fn is_dir(&self) -> bool {
        !matches!(self, Layout::File(_))
    }
}

/// How to write the dataset.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub layout: Layout,
    pub format: Format,
    /// Rows per part in a directory output (a part split by job holds this many rows in all).
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
    pub shard: Option<crate::input::shard::Shard>,
    /// Hive-style folders of a directory output; `None`: every part at the top.
    pub partitioning: Option<Partitioning>,
    /// A local output is locked by this run (`run_id`): before each commit the writer checks that
    /// the lock file beside it is still this run's, and stops if it was removed or replaced.
    pub verify_lock: bool,
}

/// Errors of the output side; each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The lock of a local output is no longer this run's (removed or replaced while it ran): another
    /// run may be writing the output, so nothing more is committed.
    #[error("{path}: this run's lock on the output was removed or replaced while it ran ({holder}): another run may be writing it, so this run commits nothing more")]
    LockLost { path: PathBuf, holder: String },
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
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
    #[error("an object-store output needs an async runtime to drive its requests")]
    NoRuntime,
    #[error("{0}: the object store was not connected before writing")]
    NotConnected(String),
    /// The writer thread panicked (a bug): what it had committed is kept.
    #[error("the writer thread panicked: {0}")]
    WriterPanicked(String),
}

/// What was committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub rows: u64,
    /// The `error` rows of the whole audit as its manifest counts them (a directory output; `None`
    /// for a file, or a manifest from before they were counted).
    pub audit_errors: Option<u64>,
    /// Final paths of the committed files, in order.
    pub files: Vec<PathBuf>,
}
