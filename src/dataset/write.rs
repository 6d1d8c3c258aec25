//! The dataset writer: rows into batches, batches into part files, parts committed (renamed into
//! place or uploaded) and recorded in the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;

use super::dir::{self, OutputDir};
use super::files::{self, Encoder, FilePart};
use super::partition;
use super::{
    Layout, Manifest, PartDigest, PartEntry, Partitioning, WriteError, WriteReport, WriterSettings,
};
use crate::dataset::schema::{BatchBuilder, RowBuilder};

/// Accumulates rows into batches and batches into committed files.
///
/// A directory output's part is written aside and published when complete: locally beside its final
/// name (renamed into place), for an object store in a local staging folder (then uploaded). With
/// `job_id` partitioning the part is first spooled whole and split by job at commit time, one file per
/// job, so a part still holds at most `part_rows` rows in all.
pub struct DatasetWriter<B: RowBuilder = BatchBuilder> {
    settings: WriterSettings,
    /// The directory of a directory output.
    target: Option<OutputDir>,
    builder: B,
    part: Option<FilePart>,
    part_rows: u64,
    /// `error` rows in the current part (the manifest counts the audit's).
    part_errors: u64,
    /// Ordinals of the pairs in the current part.
    part_ordinals: Vec<u64>,
    part_opened: Option<Instant>,
    next_part: u32,
    report: WriteReport,
    /// Drives object-store requests from the (non-async) writer thread.
    runtime: Option<tokio::runtime::Handle>,
    /// Where parts bound for an object store are written before the upload.
    staging: Option<tempfile::TempDir>,
}

impl DatasetWriter {
    /// A writer of the audit's rows with `settings` into `target`, the directory of a directory
    /// layout (local, or an object store's connection, reached through the runtime current here: see
    /// [`DatasetWriter::with_runtime`] for a writer made outside one); `None` for a single file.
    pub fn new(settings: WriterSettings, target: Option<OutputDir>) -> Self {
        let builder = BatchBuilder::new(&settings.run_id, settings.region.as_deref());
        DatasetWriter::with_builder(builder, settings, target)
    }
}

impl<B: RowBuilder> DatasetWriter<B> {
    /// A writer of `builder`'s rows (see [`DatasetWriter::new`]).
    pub fn with_builder(builder: B, settings: WriterSettings, target: Option<OutputDir>) -> Self {
        DatasetWriter {
            builder,
            // A directory layout without a target: its first commit fails (NotConnected).
            target,
            settings,
            part: None,
            part_rows: 0,
            part_errors: 0,
            part_ordinals: Vec::new(),
            part_opened: None,
            next_part: 0,
            report: WriteReport::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            staging: None,
        }
    }

    /// Uses `rt` to drive object-store requests.
    pub(crate) fn with_runtime(mut self, rt: Option<tokio::runtime::Handle>) -> Self {
        if rt.is_some() {
            self.runtime = rt;
        }
        self
    }

    /// The manifest as committed so far (directory outputs only).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.settings.manifest.as_ref()
    }

    fn by_job(&self) -> bool {
        self.settings
            .partitioning
            .as_ref()
            .is_some_and(Partitioning::by_job)
    }

    /// The file name of part `n`: `part-<run_id>-<n>.<ext>`, or `part-<run_id>-s<K>of<N>-<n>.<ext>`
    /// for shard K of N.
    fn part_name(&self, n: u32) -> String {
        let shard = self
            .settings
            .shard
            .map(|s| format!("-{}", s.file_tag()))
            .unwrap_or_default();
        format!(
            "part-{}{shard}-{n:05}.{}",
            self.settings.run_id,
            self.settings.format.extension()
        )
    }

    /// The path of part `n` relative to the dataset directory, in its partition folder.
    fn relative(&self, n: u32, job_id: Option<&str>) -> String {
        match &self.settings.partitioning {
            None => self.part_name(n),
            Some(p) => format!("{}/{}", p.folder(job_id), self.part_name(n)),
        }
    }

    fn staging_dir(&mut self) -> Result<PathBuf, WriteError> {
        if self.staging.is_none() {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("{}{}-", super::files::STAGING, std::process::id()))
                .tempdir()
                .map_err(|source| WriteError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            self.staging = Some(tmp);
        }
        Ok(self
            .staging
            .as_ref()
            .expect("created above")
            .path()
            .to_path_buf())
    }

    /// Where part `n` is written while it fills: the file itself; beside its final name in a local
    /// directory; in the staging folder for an object store. A part split by job is spooled whole
    /// (all columns) and split at commit.
    fn writing_path(&mut self, n: u32) -> Result<PathBuf, WriteError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError::Io { path, source }
        };
        match (&self.settings.layout, self.by_job()) {
            (Layout::File(p), _) => Ok(p.clone()),
            (Layout::Dir(d), true) => {
                std::fs::create_dir_all(d).map_err(io(d))?;
                Ok(d.join(format!("spool-{}", self.part_name(n))))
            }
            (Layout::Dir(d), false) => {
                let p = d.join(self.relative(n, None));
                if let Some(parent) = p.parent() {
                    files::make_dir_within(d, parent).map_err(io(parent))?;
                }
                Ok(p)
            }
            (Layout::Remote(_), _) => {
                let name = self.part_name(n);
                Ok(self.staging_dir()?.join(name))
            }
        }
    }

    /// Opens part `self.next_part` for writing.
    fn open_part(&mut self) -> Result<(), WriteError> {
        let path = self.writing_path(self.next_part)?;
        let schema = if self.by_job() {
            Arc::clone(self.builder.row_schema())
        } else {
            self.file_schema()
        };
        self.part = Some(FilePart::create(
            path,
            self.settings.format,
            schema,
            self.settings.row_group_rows,
        )?);
        Ok(())
    }

    /// The schema of the data files (without the partition columns).
    fn file_schema(&self) -> arrow::datatypes::SchemaRef {
        partition::file_schema(self.builder.row_schema(), self.by_job())
    }

    /// Appends the row of pair `ordinal`; writes a batch when enough rows are buffered and rotates
    /// parts when full.
    pub fn push(&mut self, row: &B::Row, ordinal: u64) -> Result<(), WriteError> {
        self.builder.push_row(row);
        self.part_rows += 1;
        if B::is_error(row) {
            self.part_errors += 1;
        }
        // Only a manifest needs to know which pairs a part holds; a single file does not, and
        // remembering them there would grow with the dataset.
        if self.settings.manifest.is_some() {
            self.part_ordinals.push(ordinal);
        }
        self.part_opened.get_or_insert_with(Instant::now);
        if self.builder.rows() >= self.settings.batch_rows {
            self.flush_batch()?;
        }
        if self.settings.layout.is_dir() && self.part_rows >= self.settings.part_rows {
            self.commit_part()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), WriteError> {
        if self.builder.rows() == 0 {
            return Ok(());
        }
        let path = match &self.settings.layout {
            Layout::File(p) => p.clone(),
            dir => dir.path().join(self.part_name(self.next_part)),
        };
        let batch: RecordBatch =
            self.builder
                .finish_batch()
                .map_err(|source| WriteError::Arrow {
                    path: path.clone(),
                    source,
                })?;
        if self.part.is_none() {
            self.open_part()?;
        }
        // A part split by job keeps every column in its spool (split at commit); without job
        // partitioning the batch already has the files' columns (`date` is no column).
        self.part.as_mut().expect("part opened above").write(&batch)
    }

    /// Commits the current part when it is older than the part interval (directory outputs).
    pub(crate) fn tick(&mut self) -> Result<(), WriteError> {
        let due = self
            .part_opened
            .is_some_and(|t| t.elapsed() >= self.settings.part_interval);
        if due && self.settings.layout.is_dir() {
            self.commit_part()?;
        }
        Ok(())
    }

    /// Splits a spooled part by job: one file per job (without the `job_id` column), encoded in
    /// memory (a part holds at most `part_rows` rows) and written out one at a time. Returns
    /// (relative path, rows, local file) for each.
    fn split_spool(&mut self, part: FilePart) -> Result<Vec<(String, u64, PathBuf)>, WriteError> {
        let n = self.next_part;
        let spool = part.finish_unsynced()?;
        let read = (|| {
            let mut encoders: BTreeMap<String, (Encoder<Vec<u8>>, u64)> = BTreeMap::new();
            for batch in super::read::read_file_as(
                &spool,
                self.settings.format,
                crate::dataset::schema::BATCH_ROWS,
            )
            .map_err(|e| spool_err(&spool, e))?
            {
                let batch = batch.map_err(|e| spool_err(&spool, e))?;
                let by_job =
                    partition::split_by_job(&batch).map_err(|source| WriteError::Arrow {
                        path: spool.clone(),
                        source,
                    })?;
                for (job, b) in by_job {
                    let rel = PathBuf::from(self.relative(n, Some(&job)));
                    let (enc, rows) = match encoders.entry(job) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => e.insert((
                            Encoder::new(
                                Vec::new(),
                                &rel,
                                self.settings.format,
                                self.file_schema(),
                                self.settings.row_group_rows,
                            )?,
                            0,
                        )),
                    };
                    enc.write(&b, &rel)?;
                    *rows += b.num_rows() as u64;
                }
            }
            Ok::<_, WriteError>(encoders)
        })();
        let _ = std::fs::remove_file(&spool);
        let mut files = Vec::new();
        for (job, (enc, rows)) in read? {
            let rel = self.relative(n, Some(&job));
            let bytes = enc.finish(Path::new(&rel))?;
            let (root, local) = match &self.settings.layout {
                Layout::Dir(d) => (d.clone(), d.join(&rel)),
                _ => {
                    let staging = self.staging_dir()?;
                    let local = staging.join(rel.replace('/', "%2F"));
                    (staging, local)
                }
            };
            if let Some(parent) = local.parent() {
                files::make_dir_within(&root, parent).map_err(|source| WriteError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            files::write_atomically(&local, &bytes)?;
            files.push((rel, rows, local));
        }
        Ok(files)
    }

    /// Whether this run still holds its local output (see [`WriterSettings::verify_lock`]): checked
    /// before anything is published, so a run whose lock was removed (and another run let in)
    /// publishes nothing more.
    fn check_lock(&self) -> Result<(), WriteError> {
        let (true, Layout::File(p) | Layout::Dir(p)) =
            (self.settings.verify_lock, &self.settings.layout)
        else {
            return Ok(());
        };
        super::lock::check_local_holder(p, &self.settings.run_id).map_err(|holder| {
            WriteError::LockLost {
                path: p.clone(),
                holder,
            }
        })
    }

    /// Completes the current part: flush, close, sync, publish (rename into place, or upload), then
    /// record it in the manifest (directory outputs).
    pub(crate) fn commit_part(&mut self) -> Result<(), WriteError> {
        if self.settings.layout.is_dir() && self.target.is_none() {
            return Err(WriteError::NotConnected(
                self.settings.layout.path().display().to_string(),
            ));
        }
        self.flush_batch()?;
        if self.part.is_some() {
            self.check_lock()?;
        }
        if let Some(part) = self.part.take() {
            let files = match &self.settings.layout {
                Layout::File(_) => vec![(String::new(), self.part_rows, part.commit()?)],
                _ if self.by_job() => self.split_spool(part)?,
                _ => {
                    let rel = self.relative(self.next_part, None);
                    vec![(rel, self.part_rows, part.commit()?)]
                }
            };
            let mut published = Vec::with_capacity(files.len());
            let delta = self
                .settings
                .manifest
                .as_ref()
                .is_some_and(|m| m.table_format.as_deref() == Some(super::delta::DELTA));
            for (rel, rows, local) in files {
                // A Delta table's readers skip files by their statistics, read from the footer.
                let stats = delta
                    .then(|| super::delta::stats::of_file(&local, self.builder.row_schema()))
                    .flatten();
                // Read back once, as committed: the manifest records what a reader must find.
                let digest = match self.settings.manifest {
                    Some(_) => {
                        Some(
                            PartDigest::of_file(&local).map_err(|source| WriteError::Io {
                                path: local.clone(),
                                source,
                            })?,
                        )
                    }
                    None => None,
                };
                let final_path = match &self.target {
                    Some(OutputDir::Remote(r)) => {
                        let rt = dir::runtime(self.runtime.as_ref())?;
                        let uploaded = rt.block_on(r.upload(&local, &rel));
                        let _ = std::fs::remove_file(&local);
                        uploaded?;
                        PathBuf::from(r.url_of(&rel))
                    }
                    _ => local,
                };
                published.push((rel, rows, final_path, digest, stats));
            }
            if let (Some(m), Some(t)) = (&mut self.settings.manifest, &self.target) {
                for (rel, rows, _, digest, stats) in &published {
                    let mut part = PartEntry::new(rel.clone(), *rows, *digest);
                    part.stats = stats.clone();
                    m.parts.push(part);
                }
                for o in self.part_ordinals.drain(..) {
                    m.committed.insert(o);
                }
                m.error_rows = m.error_rows.map(|e| e + self.part_errors);
                t.store_manifest_blocking(m, self.runtime.as_ref())?;
            }
            self.report
                .files
                .extend(published.into_iter().map(|(_, _, p, _, _)| p));
            self.report.rows += self.part_rows;
            self.next_part += 1;
        }
        self.part_rows = 0;
        self.part_errors = 0;
        self.part_ordinals.clear();
        self.part_opened = None;
        Ok(())
    }

    /// Commits what is buffered; `complete` marks a directory's manifest as holding every pair. A
    /// dataset with no rows at all still gets one valid, empty file (except when split by job: with
    /// no job there is no folder to put it in).
    /// Records in the manifest (written at the next commit) the targets that could not be audited.
    pub(crate) fn set_failed_targets(&mut self, failed: Vec<super::FailedTarget>) {
        if let Some(m) = &mut self.settings.manifest {
            m.failed_targets = failed;
        }
    }

    /// Records in the manifest (written at the final commit) the run that completes the audit.
    pub(crate) fn set_completion(&mut self, done: super::manifest::Completion) {
        if let Some(m) = &mut self.settings.manifest {
            m.completed = Some(done);
        }
    }

    pub fn finish(mut self, complete: bool) -> Result<WriteReport, WriteError> {
        let nothing_yet =
            self.report.files.is_empty() && self.manifest().is_none_or(|m| m.parts.is_empty());
        if self.part.is_none() && self.builder.rows() == 0 && nothing_yet && complete {
            // An empty part still goes through the manifest like any other.
            self.open_part()?;
            self.part_opened = Some(Instant::now());
        }
        self.commit_part()?;
        let held = self.check_lock();
        if let (Some(m), Some(t)) = (&mut self.settings.manifest, &self.target) {
            // An audit that committed nothing, with no earlier audit or failed target to keep, has
            // no manifest: the output stays as the run found it, and the next plain run takes it.
            let nothing = m.parts.is_empty()
                && m.committed.is_empty()
                && m.earlier.is_empty()
                && m.failed_targets.is_empty();
            if complete || !nothing {
                // Stored (and marked complete) only by the run that still holds the output.
                held?;
                m.complete = complete;
                t.store_manifest_blocking(m, self.runtime.as_ref())?;
                self.report.audit_errors = m.error_rows;
                if complete && m.table_format.as_deref() == Some(super::delta::DELTA) {
                    // Readers of the table see the audit from here on, all at once.
                    t.block_on(super::delta::catch_up(t, m), self.runtime.as_ref())?;
                }
            }
        }
        Ok(self.report)
    }

    /// Drops the uncommitted part and, when parts were committed, marks the manifest as made from
    /// an input that changed while it was read: no `--resume` accepts it (its identity is no input's),
    /// since the committed ordinals may stand for other pairs than the input's now.
    pub(crate) fn poison(mut self) -> Result<WriteReport, WriteError> {
        if let Some(part) = self.part.take() {
            part.discard();
        }
        if let (Some(m), Some(t)) = (&mut self.settings.manifest, &self.target) {
            if !m.parts.is_empty() {
                m.input_identity = crate::input::identity::InputIdentity::parse(&m.input_identity)
                    .changed()
                    .to_string();
                t.store_manifest_blocking(m, self.runtime.as_ref())?;
            }
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

/// Name prefix of the staging folders of S3 outputs: `fleet-audit-staging-<pid>-<random>`.
fn spool_err(spool: &Path, e: super::DatasetError) -> WriteError {
    WriteError::Io {
        path: spool.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}
