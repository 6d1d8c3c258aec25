//! Dataset batches -> [`Execution`] views, one file at a time, checking each batch's schema.
//!
//! Uses [`crate::dataset::data_files`] and [`crate::dataset::read_file_in`] (the pieces of
//! `read_dataset`) rather than `read_dataset` itself so that a schema problem can name the file it is
//! in. Columns are cast to the types the tool writes when a compatible type was used instead (a
//! dataset rewritten by pyarrow or DuckDB may carry microsecond timestamps or large strings).

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{Execution, ReportError};
use crate::dataset::{data_files, read_file_in, DataFiles};

/// The columns the report needs.
pub(crate) const NEEDED: [&str; 8] = [
    "job_id",
    "thing_name",
    "outcome",
    "status",
    "fetched_at",
    "queued_at",
    "last_updated_at",
    "approximate_seconds_before_timed_out",
];

/// Calls `f` for every row of the dataset at `path`; returns the files it read (and those a manifest
/// made it ignore).
pub(crate) fn for_each_execution(
    path: &Path,
    batch_rows: usize,
    mut f: impl FnMut(&Execution<'_>),
) -> Result<DataFiles, ReportError> {
    let data = data_files(path)?;
    for_each_in(path, &data.files, batch_rows, &mut f)?;
    Ok(data)
}

/// Calls `f` for every row of `files` of the dataset at `root`.
pub(crate) fn for_each_in(
    root: &Path,
    files: &[std::path::PathBuf],
    batch_rows: usize,
    mut f: impl FnMut(&Execution<'_>),
) -> Result<(), ReportError> {
    visit(root, files, batch_rows, |cols, i| f(&cols.row(i)))
}

/// What an action on a row's execution needs beyond the report's view: the versions AWS checks, and
/// the run that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions<'a> {
    pub execution_number: Option<i64>,
    pub version_number: Option<i64>,
    pub run_id: Option<&'a str>,
}

/// Calls `f` for every row of the dataset at `path`, with its [`Versions`].
pub(crate) fn for_each_versioned(
    path: &Path,
    batch_rows: usize,
    mut f: impl FnMut(&Execution<'_>, Versions<'_>),
) -> Result<DataFiles, ReportError> {
    let data = data_files(path)?;
    visit(path, &data.files, batch_rows, |cols, i| {
        f(&cols.row(i), cols.versions(i));
    })?;
    Ok(data)
}

fn visit(
    root: &Path,
    files: &[std::path::PathBuf],
    batch_rows: usize,
    mut f: impl FnMut(&Columns, usize),
) -> Result<(), ReportError> {
    for file in files {
        for batch in read_file_in(root, file, batch_rows)? {
            let batch = batch?;
            let cols = Columns::of(file, &batch)?;
            for i in 0..batch.num_rows() {
                f(&cols, i);
            }
        }
    }
    Ok(())
}

/// The needed columns of one batch, in the types the report reads.
struct Columns {
    job_id: StringArray,
    thing_name: StringArray,
    outcome: StringArray,
    status: StringArray,
    fetched_at: TimestampMillisecondArray,
    queued_at: TimestampMillisecondArray,
    last_updated_at: TimestampMillisecondArray,
    seconds_before_timed_out: Int64Array,
    /// Absent from datasets other tools wrote without them.
    account_id: Option<StringArray>,
    region: Option<StringArray>,
    /// Read when present: what an action needs ([`Versions`]).
    execution_number: Option<Int64Array>,
    version_number: Option<Int64Array>,
    run_id: Option<StringArray>,
    context: ContextColumns,
}

/// The context columns (schema version 4); absent from older datasets.
struct ContextColumns {
    job_status: Option<StringArray>,
    job_timeout: Option<Int64Array>,
    blocked_by: Option<StringArray>,
    queue_read: Option<arrow::array::BooleanArray>,
    connected: Option<arrow::array::BooleanArray>,
    thing: super::classify::ThingColumns,
}

impl ContextColumns {
    fn of(
        batch: &RecordBatch,
        text: &dyn Fn(&str) -> Result<StringArray, ReportError>,
        schema_err: &dyn Fn(String) -> ReportError,
    ) -> Result<ContextColumns, ReportError> {
        let optional = |n: &str| {
            batch
                .column_by_name(n)
                .is_some()
                .then(|| text(n))
                .transpose()
        };
        Ok(ContextColumns {
            job_status: optional("job_status")?,
            job_timeout: batch
                .column_by_name("job_in_progress_timeout_minutes")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>().cloned()),
            blocked_by: optional("blocked_by")?,
            queue_read: batch
                .column_by_name("queue_read")
                .and_then(|c| c.as_boolean_opt().cloned()),
            connected: match batch.column_by_name("connected") {
                None => None,
                Some(c) => Some(c.as_boolean_opt().cloned().ok_or_else(|| {
                    schema_err(format!(
                        "column connected is {}, expected boolean",
                        c.data_type()
                    ))
                })?),
            },
            thing: super::classify::ThingColumns {
                thing_type: optional("thing_type")?,
                groups: batch
                    .column_by_name("thing_groups")
                    .and_then(|c| c.as_list_opt::<i32>().cloned())
                    .filter(|l| l.values().as_string_opt::<i32>().is_some()),
                attributes: batch
                    .column_by_name("thing_attributes")
                    .and_then(|c| c.as_map_opt().cloned())
                    .filter(|m| {
                        m.keys().as_string_opt::<i32>().is_some()
                            && m.values().as_string_opt::<i32>().is_some()
                    }),
            },
        })
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Time,
    Integer,
}

impl Kind {
    fn accepts(self, t: &DataType) -> bool {
        match self {
            Kind::Text => matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(..)
            ),
            Kind::Time => matches!(t, DataType::Timestamp(..)),
            Kind::Integer => t.is_integer(),
        }
    }

    fn target(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Time => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Kind::Integer => DataType::Int64,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Time => "a timestamp",
            Kind::Integer => "an integer",
        }
    }
}

impl Columns {
    fn of(file: &Path, batch: &RecordBatch) -> Result<Columns, ReportError> {
        let schema_err = |reason: String| ReportError::Schema {
            path: file.to_path_buf(),
            reason,
        };
        let missing: Vec<&str> = NEEDED
            .iter()
            .copied()
            .filter(|n| batch.column_by_name(n).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(schema_err(format!(
                "missing column{} {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            )));
        }
        let get = |name: &str, kind: Kind| -> Result<ArrayRef, ReportError> {
            let col = batch.column_by_name(name).expect("checked above");
            if !kind.accepts(col.data_type()) {
                return Err(schema_err(format!(
                    "column {name} is {}, expected {}",
                    col.data_type(),
                    kind.describe()
                )));
            }
            if col.data_type() == &kind.target() {
                return Ok(col.clone());
            }
            cast(col, &kind.target())
                .map_err(|e| schema_err(format!("column {name} cannot be read: {e}")))
        };
        let text = |n: &str| get(n, Kind::Text).map(|a| a.as_string::<i32>().clone());
        let int = |n| {
            get(n, Kind::Integer).map(|a| a.as_primitive::<arrow::datatypes::Int64Type>().clone())
        };
        let optional = |n: &str| batch.column_by_name(n).is_some();
        let time = |n| {
            get(n, Kind::Time).map(|a| {
                a.as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .clone()
            })
        };
        Ok(Columns {
            job_id: text("job_id")?,
            thing_name: text("thing_name")?,
            outcome: text("outcome")?,
            status: text("status")?,
            fetched_at: time("fetched_at")?,
            queued_at: time("queued_at")?,
            last_updated_at: time("last_updated_at")?,
            seconds_before_timed_out: int("approximate_seconds_before_timed_out")?,
            account_id: optional("account_id")
                .then(|| text("account_id"))
                .transpose()?,
            region: optional("region").then(|| text("region")).transpose()?,
            execution_number: optional("execution_number")
                .then(|| int("execution_number"))
                .transpose()?,
            version_number: optional("version_number")
                .then(|| int("version_number"))
                .transpose()?,
            run_id: optional("run_id").then(|| text("run_id")).transpose()?,
            context: ContextColumns::of(batch, &text, &schema_err)?,
        })
    }

    fn versions(&self, i: usize) -> Versions<'_> {
        let int = |a: &Option<Int64Array>| a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i));
        Versions {
            execution_number: int(&self.execution_number),
            version_number: int(&self.version_number),
            run_id: self
                .run_id
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i)),
        }
    }

    fn row(&self, i: usize) -> Execution<'_> {
        fn s(a: &StringArray, i: usize) -> Option<&str> {
            a.is_valid(i).then(|| a.value(i))
        }
        let t = |a: &TimestampMillisecondArray| a.is_valid(i).then(|| a.value(i));
        Execution {
            job_id: s(&self.job_id, i).unwrap_or(""),
            thing_name: s(&self.thing_name, i).unwrap_or(""),
            outcome: s(&self.outcome, i).unwrap_or(""),
            status: s(&self.status, i),
            fetched_at_ms: t(&self.fetched_at),
            queued_at_ms: t(&self.queued_at),
            last_updated_at_ms: t(&self.last_updated_at),
            seconds_before_timed_out: self
                .seconds_before_timed_out
                .is_valid(i)
                .then(|| self.seconds_before_timed_out.value(i)),
            account_id: self.account_id.as_ref().and_then(|a| s(a, i)),
            region: self.region.as_ref().and_then(|a| s(a, i)),
            job_status: self.context.job_status.as_ref().and_then(|a| s(a, i)),
            job_timeout_minutes: self
                .context
                .job_timeout
                .as_ref()
                .and_then(|a| a.is_valid(i).then(|| a.value(i))),
            connected: self
                .context
                .connected
                .as_ref()
                .and_then(|a| a.is_valid(i).then(|| a.value(i))),
            blocked_by: self.context.blocked_by.as_ref().and_then(|a| s(a, i)),
            queue_read: self
                .context
                .queue_read
                .as_ref()
                .is_some_and(|a| a.is_valid(i) && a.value(i)),
            thing: super::classify::ThingView::new(&self.context.thing, i),
        }
    }
}
