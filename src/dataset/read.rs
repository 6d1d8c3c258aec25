//! Reading a dataset the tool wrote: a Parquet or Arrow IPC file, or a directory of part files (flat,
//! or in Hive-style `key=value` folders), as a stream of RecordBatches (bounded memory: one batch at a
//! time). A partition column that is a dataset column (`job_id`) is put back from the folder name, at
//! its place in the schema; other keys (`date`) are not dataset columns and are left out.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{ArrayRef, StringArray};
use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::Format;

/// Errors reading a dataset, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    /// A `--table-format delta` dataset whose Delta log cannot be read.
    #[error("{path}: its Delta table cannot be read: {reason}")]
    Table { path: PathBuf, reason: String },
    #[error("{0}: no .parquet or .arrow files found")]
    Empty(PathBuf),
    #[error("{url}: {reason}")]
    Remote { url: String, reason: String },
    #[error(transparent)]
    Manifest(#[from] super::ManifestError),
    /// A symbolic link where a dataset's data file (or partition folder) is.
    #[error("{path}: a symbolic link inside the dataset: this tool never reads through a link it did not make (remove it, or name the file it points to)")]
    Link { path: PathBuf },
    #[error("{path}: listed in the manifest {manifest}, but missing")]
    Missing { path: PathBuf, manifest: PathBuf },
    /// A part whose bytes are not those its manifest recorded when it was committed.
    #[error("{path}: not the part committed: {reason}")]
    Altered { path: PathBuf, reason: String },
}

/// The data files of a dataset, and the part files a manifest did not list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFiles {
    /// The files to read, in order.
    pub files: Vec<PathBuf>,
    /// Part files in the directory that its manifest does not list (never committed, or another
    /// writer's): not read. Relative paths, in path order.
    pub ignored: Vec<String>,
    /// Every audit the manifest names (a `--partition-by date` output keeps one a date; otherwise
    /// there is one), oldest first, or the `date=` folders of a directory without a manifest; empty
    /// for a file or a directory of one audit without a manifest. `files` are those of the latest
    /// complete one.
    pub audits: Vec<AuditFiles>,
    /// Why `files` are not the last audit's (it is incomplete, the one before is reported).
    pub note: Option<String>,
    /// The targets the reported audit could not reach (its manifest's `failed_targets`).
    pub failed_targets: Vec<super::FailedTarget>,
    /// The audit read is incomplete (its manifest says so): how far it got.
    pub incomplete: Option<Incomplete>,
}

/// How far an incomplete audit got, by its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete {
    /// Pairs committed (rows in its parts).
    pub committed: u64,
    /// Pairs of its inputs; `None` when not known before it ends (a discovery).
    pub expected: Option<u64>,
}

/// The audit that readers read of the dataset `m` describes, when it is incomplete: its last audit,
/// unless an earlier complete one is read instead (see [`audits_of`]).
pub(crate) fn incomplete_of(m: &super::Manifest) -> Option<Incomplete> {
    (!m.complete && m.earlier.is_empty()).then(|| Incomplete {
        committed: m.committed.len(),
        expected: (m.pairs > 0).then_some(m.pairs),
    })
}

/// One audit of a dataset (of those a `--partition-by date` output keeps, or its only one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFiles {
    pub run_id: Option<String>,
    pub date: Option<String>,
    pub files: Vec<PathBuf>,
    pub complete: bool,
}

/// The audits a manifest names, oldest first, their parts joined to `root` (or to the name of a
/// remote dataset), and which of them is the latest complete one, with a note when it is not the
/// last.
pub(crate) fn audits_of(
    m: &super::Manifest,
    join: impl Fn(&str) -> PathBuf,
) -> (Vec<AuditFiles>, usize, Option<String>) {
    let mut audits: Vec<AuditFiles> = m
        .earlier
        .iter()
        .map(|a| AuditFiles {
            run_id: a.run_id.clone(),
            date: a.date.clone(),
            files: a.parts.iter().map(|p| join(&p.file)).collect(),
            complete: true,
        })
        .collect();
    audits.push(AuditFiles {
        run_id: m.run_id.clone(),
        date: m.date.clone(),
        files: m.parts.iter().map(|p| join(&p.file)).collect(),
        complete: m.complete,
    });
    let last = audits.len() - 1;
    if m.complete || last == 0 {
        return (audits, last, None);
    }
    let shown = |a: &AuditFiles| a.date.clone().unwrap_or_else(|| "(no date)".into());
    let note = format!(
        "the audit of {} is not complete: the audit of {} is reported",
        shown(&audits[last]),
        shown(&audits[last - 1])
    );
    (audits, last - 1, Some(note))
}

impl DataFiles {}

/// `3 part files not in the manifest were ignored: a, b, c`, naming at most five.
pub(crate) fn ignored_note(ignored: &[String]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let shown: Vec<&str> = ignored.iter().take(5).map(String::as_str).collect();
    let more = if ignored.len() > 5 { ", …" } else { "" };
    let (n, verb) = match ignored.len() {
        1 => ("1 part file".to_string(), "was"),
        n => (format!("{n} part files"), "were"),
    };
    Some(format!(
        "{n} not in the manifest {verb} ignored: {}{more}",
        shown.join(", ")
    ))
}

/// The data files of a dataset: the file itself; for a directory with a manifest, the parts the
/// manifest lists (checked: nothing outside the directory can be named), other part files being
/// reported as ignored; for a directory without one, its part files and those of its `key=value`
/// folders (hidden and `_` names excluded), in path order.
pub fn data_files(path: &Path) -> Result<DataFiles, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        return Ok(DataFiles {
            files: vec![path.to_path_buf()],
            ..DataFiles::default()
        });
    }
    let mut found = Vec::new();
    collect(path, &mut found).map_err(io)?;
    found.sort();
    if let Some(link) = found.iter().find(|f| is_link(path, f)) {
        return Err(DatasetError::Link { path: link.clone() });
    }
    let Some(m) = super::Manifest::load(path)? else {
        if found.is_empty() {
            return Err(DatasetError::Empty(path.to_path_buf()));
        }
        return Ok(by_date(path, found));
    };
    // A Delta table is read as its readers see it; the files of its older versions are no strays.
    let (m, mut listed) = published(path, m)?;
    listed.extend(m.all_parts().map(|p| path.join(&p.file)));
    let (audits, latest, note) = audits_of(&m, |f| path.join(f));
    let files = audits[latest].files.clone();
    present(path, audits.iter().flat_map(|a| &a.files))?;
    // The parts to be read are the bytes committed: their size and xxh3 as the manifest recorded.
    let recorded: std::collections::HashMap<PathBuf, &super::PartEntry> =
        m.all_parts().map(|p| (path.join(&p.file), p)).collect();
    for f in &files {
        if let Some(entry) = recorded
            .get(f)
            .filter(|e| e.size.is_some() || e.xxh3.is_some())
        {
            let found = super::PartDigest::of_file(f).map_err(|source| DatasetError::Io {
                path: f.clone(),
                source,
            })?;
            entry
                .verify(&found)
                .map_err(|reason| DatasetError::Altered {
                    path: f.clone(),
                    reason,
                })?;
        }
    }
    let ignored = found
        .iter()
        .filter(|f| !listed.contains(*f))
        .map(|f| relative_name(path, f))
        .collect();
    // A complete audit of nothing (a shard with no jobs) is a dataset of no rows, not a missing one.
    if files.is_empty() && !(m.complete && m.parts.is_empty() && note.is_none()) {
        return Err(DatasetError::Empty(path.to_path_buf()));
    }
    // The failed targets are the manifest's current audit's: named when that is the one read.
    let failed_targets = match note {
        None => m.failed_targets.clone(),
        Some(_) => Vec::new(),
    };
    Ok(DataFiles {
        files,
        ignored,
        audits,
        note,
        failed_targets,
        incomplete: incomplete_of(&m),
    })
}

/// A `--table-format delta` dataset's manifest as its table publishes it
/// ([`super::delta::published_view`]), and every file a version of the table names; any other
/// dataset's manifest as it is.
fn published(
    path: &Path,
    m: super::Manifest,
) -> Result<(super::Manifest, std::collections::HashSet<PathBuf>), DatasetError> {
    if m.table_format.as_deref() != Some(super::delta::DELTA) {
        return Ok((m, Default::default()));
    }
    let dir = super::OutputDir::Local(path.to_path_buf());
    let snap = futures::executor::block_on(super::delta::snapshot(&dir)).map_err(|e| {
        DatasetError::Table {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let named = snap.referenced.iter().map(|f| path.join(f)).collect();
    Ok((super::delta::published_view(m, &snap), named))
}

/// The files of a directory without a manifest: when they lie in several `date=` folders (audits of
/// several days, copied without their manifest), each date is an audit and the latest is read.
fn by_date(root: &Path, found: Vec<PathBuf>) -> DataFiles {
    let mut dates: std::collections::BTreeMap<Option<String>, Vec<PathBuf>> = Default::default();
    for f in found {
        let date = super::partition::values_of_path(&relative_name(root, &f))
            .into_iter()
            .find(|(k, _)| k == "date")
            .map(|(_, v)| v);
        dates.entry(date).or_default().push(f);
    }
    if dates.len() < 2 || dates.contains_key(&None) {
        return DataFiles {
            files: dates.into_values().flatten().collect(),
            ..DataFiles::default()
        };
    }
    let audits: Vec<AuditFiles> = dates
        .into_iter()
        .map(|(date, files)| AuditFiles {
            run_id: None,
            date,
            files,
            complete: true,
        })
        .collect();
    let last = audits.last().expect("two dates or more");
    DataFiles {
        files: last.files.clone(),
        note: Some(format!(
            "{} dates and no manifest: the latest, {}, is read",
            audits.len(),
            last.date.as_deref().unwrap_or_default()
        )),
        audits,
        ..DataFiles::default()
    }
}

fn relative_name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/")
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let (p, ty) = (entry.path(), entry.file_type()?);
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        // A link is found (to be refused), never followed.
        let data = Format::from_path(&p).is_some();
        if ty.is_dir() && name.contains('=') {
            collect(&p, files)?;
        } else if (ty.is_file() && data) || (ty.is_symlink() && (data || name.contains('='))) {
            files.push(p);
        }
    }
    Ok(())
}

/// Every file of the dataset `root` to be read is there, and no link (nor in a linked folder).
fn present<'a>(root: &Path, files: impl Iterator<Item = &'a PathBuf>) -> Result<(), DatasetError> {
    for f in files {
        if is_link(root, f) {
            return Err(DatasetError::Link { path: f.clone() });
        }
        if !f.is_file() {
            return Err(DatasetError::Missing {
                path: f.clone(),
                manifest: root.join(super::MANIFEST),
            });
        }
    }
    Ok(())
}

/// Whether `path`, a file under the dataset directory `root`, is a symbolic link or lies in a
/// folder under `root` that is one (not followed: each name is looked at itself).
fn is_link(root: &Path, path: &Path) -> bool {
    path.ancestors()
        .take_while(|a| *a != root && a.starts_with(root))
        .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
}

/// The `key=value` folders between `root` and `file`, outermost first.
pub(crate) fn partition_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let Ok(rel) = file.strip_prefix(root) else {
        return Vec::new();
    };
    let rel = rel
        .to_string_lossy()
        .replace(std::path::MAIN_SEPARATOR, "/");
    super::partition::values_of_path(&rel)
}

/// Puts back into `batch` the partition columns that are dataset columns and that it lacks, at their
/// place in the dataset schema.
pub fn with_partition_columns(
    batch: RecordBatch,
    values: &[(String, String)],
) -> Result<RecordBatch, ArrowError> {
    let full = crate::dataset::schema::schema();
    let missing: Vec<&(String, String)> = values
        .iter()
        .filter(|(k, _)| full.field_with_name(k).is_ok() && batch.column_by_name(k).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(batch);
    }
    let n = batch.num_rows();
    let constant =
        |k: &str, v: &str| -> Result<(arrow::datatypes::FieldRef, ArrayRef), ArrowError> {
            let field = full.field_with_name(k)?.clone();
            let text: ArrayRef = std::sync::Arc::new(StringArray::from(vec![v; n]));
            let array = arrow::compute::cast(&text, field.data_type())?;
            Ok((std::sync::Arc::new(field), array))
        };
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    let schema = batch.schema();
    let in_order = schema
        .fields()
        .iter()
        .all(|f| full.field_with_name(f.name()).is_ok());
    if in_order {
        // Every column is a dataset column: rebuild in the dataset's order.
        for f in full.fields() {
            if let Some(c) = batch.column_by_name(f.name()) {
                let i = schema.index_of(f.name())?;
                fields.push(schema.fields()[i].clone());
                columns.push(c.clone());
            } else if let Some((k, v)) = missing.iter().find(|(k, _)| k == f.name()) {
                let (f, c) = constant(k, v)?;
                fields.push(f);
                columns.push(c);
            }
        }
    } else {
        fields.extend(schema.fields().iter().cloned());
        columns.extend(batch.columns().iter().cloned());
        for (k, v) in missing {
            let (f, c) = constant(k, v)?;
            fields.push(f);
            columns.push(c);
        }
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )),
        columns,
    )
}

/// Batches of `file` of the dataset at `root`, with the partition columns of its folders put back.
pub(crate) fn read_file_in(
    root: &Path,
    file: &Path,
    batch_rows: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    let values = partition_values(root, file);
    let it = read_file(file, batch_rows)?;
    if values.is_empty() {
        return Ok(it);
    }
    let p = file.to_path_buf();
    Ok(Box::new(it.map(move |b| {
        b.and_then(|b| {
            with_partition_columns(b, &values).map_err(|source| DatasetError::Arrow {
                path: p.clone(),
                source,
            })
        })
    })))
}

/// Batches of one file, by its extension (Parquet unless `.arrow`/`.feather`/`.ipc`).
pub fn read_file(
    path: &Path,
    batch_rows: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    read_file_as(
        path,
        Format::from_path(path).unwrap_or(Format::Parquet),
        batch_rows,
    )
}

/// Batches of one file of a known format, whatever its name.
pub(crate) fn read_file_as(
    path: &Path,
    format: Format,
    batch_rows: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    let f = File::open(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(Encoded::File(f), format, batch_rows, path)
}

/// The bytes of one data file: open locally, or fetched.
enum Encoded {
    File(File),
    Bytes(bytes::Bytes),
}

/// The one reader set-up of a data file (Parquet or Arrow IPC), its errors naming `path`.
fn decode(
    encoded: Encoded,
    format: Format,
    batch_rows: usize,
    path: &Path,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    let parquet_err = |source| DatasetError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let arrow_err = |source| DatasetError::Arrow {
        path: path.to_path_buf(),
        source,
    };
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send> =
        match (format, encoded) {
            (Format::Parquet, Encoded::File(f)) => Box::new(
                ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.with_batch_size(batch_rows).build())
                    .map_err(parquet_err)?,
            ),
            (Format::Parquet, Encoded::Bytes(b)) => Box::new(
                ParquetRecordBatchReaderBuilder::try_new(b)
                    .and_then(|b| b.with_batch_size(batch_rows).build())
                    .map_err(parquet_err)?,
            ),
            (Format::Arrow, Encoded::File(f)) => {
                Box::new(FileReader::try_new(f, None).map_err(arrow_err)?)
            }
            (Format::Arrow, Encoded::Bytes(b)) => {
                Box::new(FileReader::try_new(std::io::Cursor::new(b), None).map_err(arrow_err)?)
            }
        };
    let p = path.to_path_buf();
    Ok(Box::new(batches.map(move |r| {
        r.map_err(|source| DatasetError::Arrow {
            path: p.clone(),
            source,
        })
    })))
}

/// Every batch of a dataset, file after file, with partition columns put back.
pub fn read_dataset(
    path: &Path,
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, DatasetError>>, DatasetError> {
    let files = data_files(path)?.files;
    let root = path.to_path_buf();
    Ok(files
        .into_iter()
        .flat_map(move |f| match read_file_in(&root, &f, batch_rows) {
            Ok(it) => it,
            Err(e) => Box::new(std::iter::once(Err(e))),
        }))
}

/// Batches of one committed file of a dataset directory (`relative` to it), local or in an object
/// store (fetched into memory: a part is at most `--part-rows` rows), with its partition columns put
/// back.
pub(crate) async fn read_part(
    target: &super::OutputDir,
    relative: &str,
    batch_rows: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DatasetError>> + Send>, DatasetError> {
    match target {
        super::OutputDir::Local(d) => read_file_in(d, &d.join(relative), batch_rows),
        super::OutputDir::Remote(r) => {
            let path = PathBuf::from(r.url_of(relative));
            let bytes = r
                .get(relative)
                .await
                .map_err(|e| DatasetError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.reason()),
                })?
                .ok_or_else(|| DatasetError::Io {
                    path: path.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
            let values = super::partition::values_of_path(relative);
            let format = Format::from_path(Path::new(relative)).unwrap_or(Format::Parquet);
            let batches = decode(Encoded::Bytes(bytes), format, batch_rows, &path)?;
            Ok(Box::new(batches.map(move |b| {
                b.and_then(|b| {
                    with_partition_columns(b, &values).map_err(|source| DatasetError::Arrow {
                        path: path.clone(),
                        source,
                    })
                })
            })))
        }
    }
}
