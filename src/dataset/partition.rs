//! Hive-style partitioning of a directory dataset: `date=2026-11-29/job_id=fw-7/part-….parquet`.
//!
//! It exists so that Athena, Glue, Spark and DuckDB can prune by folder. A partition column is taken
//! out of the data files (Spark refuses a column that is both in the files and in the path; the other
//! engines read it from the path), which is what `fleet-audit schema --ddl … --partition-by` declares.
//! `date` is the run's UTC start date, one value for the whole run; `job_id` splits each part by job
//! when it is committed ([`split_by_job`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// A column a run can partition by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKey {
    /// The run's UTC start date, `YYYY-MM-DD` (not a dataset column).
    Date,
    /// The dataset's `job_id` column.
    JobId,
}

impl PartitionKey {
    /// The key as it appears in folder names and `--partition-by`.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKey::Date => "date",
            PartitionKey::JobId => "job_id",
        }
    }

    /// Parses `--partition-by`'s list: `date` and/or `job_id`, each once, in folder order.
    pub(crate) fn parse_list(items: &[String]) -> Result<Vec<PartitionKey>, String> {
        let mut keys = Vec::new();
        for item in items {
            let key = match item.trim() {
                "date" => PartitionKey::Date,
                "job_id" => PartitionKey::JobId,
                other => {
                    return Err(format!(
                        "{other:?} is not a partition column (use date and/or job_id)"
                    ))
                }
            };
            if keys.contains(&key) {
                return Err(format!("{} is given twice", key.name()));
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// How a run lays out its files: the keys in folder order, and the run's date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    pub keys: Vec<PartitionKey>,
    /// `YYYY-MM-DD` of the run's start, UTC.
    pub date: String,
}

impl Partitioning {
    /// Partitioning by `keys` for a run started at `started_ms` (epoch milliseconds); `None` when no
    /// key is given.
    pub fn new(keys: &[PartitionKey], started_ms: i64) -> Option<Partitioning> {
        (!keys.is_empty()).then(|| Partitioning {
            keys: keys.to_vec(),
            date: utc_date(started_ms),
        })
    }

    pub fn by_job(&self) -> bool {
        self.keys.contains(&PartitionKey::JobId)
    }

    /// The folder of a file, `date=…/job_id=…` in key order, without a trailing `/`. `job_id` must be
    /// given when partitioning by job (AWS job ids are `[a-zA-Z0-9_-]`, so no escaping is needed).
    pub fn folder(&self, job_id: Option<&str>) -> String {
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| match k {
                PartitionKey::Date => format!("date={}", self.date),
                PartitionKey::JobId => format!("job_id={}", job_id.unwrap_or("")),
            })
            .collect();
        parts.join("/")
    }

    /// The names of the keys, as recorded in the manifest.
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name().to_string()).collect()
    }
}

/// The schema of the data files: the dataset schema without the partition columns.
pub(crate) fn file_schema(full: &SchemaRef, by_job: bool) -> SchemaRef {
    if !by_job {
        return full.clone();
    }
    let fields: Vec<_> = full
        .fields()
        .iter()
        .filter(|f| f.name() != PartitionKey::JobId.name())
        .cloned()
        .collect();
    Arc::new(Schema::new_with_metadata(fields, full.metadata().clone()))
}

/// `batch` without its `job_id` column.
pub(crate) fn without_job_id(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| batch.schema().field(i).name() != PartitionKey::JobId.name())
        .collect();
    batch.project(&keep)
}

/// Splits `batch` by its `job_id` column: one batch per job (rows in their order, `job_id` removed),
/// in job order.
pub(crate) fn split_by_job(
    batch: &RecordBatch,
) -> Result<BTreeMap<String, RecordBatch>, ArrowError> {
    let col = batch
        .column_by_name(PartitionKey::JobId.name())
        .ok_or_else(|| ArrowError::SchemaError("no job_id column".into()))?;
    let jobs = col
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("job_id is not a string column".into()))?;
    let mut rows: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for i in 0..jobs.len() {
        let job = if jobs.is_valid(i) { jobs.value(i) } else { "" };
        rows.entry(job).or_default().push(i as u32);
    }
    let data = without_job_id(batch)?;
    let mut out = BTreeMap::new();
    for (job, idx) in rows {
        let part = if idx.len() == batch.num_rows() {
            data.clone()
        } else {
            take_record_batch(&data, &UInt32Array::from(idx))?
        };
        out.insert(job.to_string(), part);
    }
    Ok(out)
}

pub use crate::time::utc_date;

/// The partition values a relative file path carries: every `key=value` folder, outermost first.
pub fn values_of_path(relative: &str) -> Vec<(String, String)> {
    let mut segments: Vec<&str> = relative.split('/').collect();
    segments.pop(); // the file name
    segments
        .into_iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_764_400_000_000), "2025-11-29");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_798_761_599_999), "2026-12-31");
        assert_eq!(utc_date(-1), "1969-12-31");
    }

    #[test]
    fn keys_parse_in_order_once_each() {
        let l = |v: &[&str]| {
            PartitionKey::parse_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            l(&["job_id", "date"]).unwrap(),
            vec![PartitionKey::JobId, PartitionKey::Date]
        );
        assert!(l(&["date", "date"]).unwrap_err().contains("twice"));
        assert!(l(&["status"])
            .unwrap_err()
            .contains("not a partition column"));
        let p = Partitioning::new(&l(&["date", "job_id"]).unwrap(), 1_764_400_000_000).unwrap();
        assert_eq!(p.folder(Some("fw-7")), "date=2025-11-29/job_id=fw-7");
        assert_eq!(
            values_of_path("date=2025-11-29/job_id=fw-7/part-1-00000.parquet"),
            vec![
                ("date".to_string(), "2025-11-29".to_string()),
                ("job_id".to_string(), "fw-7".to_string())
            ]
        );
        assert!(Partitioning::new(&[], 0).is_none());
    }

    #[test]
    fn a_batch_splits_by_job_without_the_job_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("job_id", DataType::Utf8, false),
            Field::new("n", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["b", "a", "b", "a", "c"])),
                Arc::new(Int32Array::from(vec![0, 1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let parts = split_by_job(&batch).unwrap();
        let got: Vec<(String, Vec<i32>)> = parts
            .iter()
            .map(|(k, b)| {
                assert_eq!(b.num_columns(), 1);
                let n = b.column(0).as_primitive::<arrow::datatypes::Int32Type>();
                (k.clone(), n.values().to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), vec![1, 3]),
                ("b".into(), vec![0, 2]),
                ("c".into(), vec![4])
            ]
        );
        assert_eq!(file_schema(&schema, true).fields().len(), 1);
    }
}
