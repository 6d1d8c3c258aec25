//! A part's Delta statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`), from its Parquet
//! footer: what readers skip files by (a DuckDB, Spark or Athena query on `job_id` or `status`).
//! Only exact values are given: a string statistic the Parquet writer truncated is left out, since a
//! truncated maximum would make a reader skip a file that holds the value.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;
use serde_json::{json, Map, Value};

use arrow::datatypes::{DataType, SchemaRef};

/// One column's running figures.
#[derive(Default)]
struct Column {
    min: Option<Value>,
    max: Option<Value>,
    /// `None` once a row group gave no figure: then the column gets no statistic at all.
    nulls: Option<u64>,
    exact: bool,
}

/// The statistics of the Parquet file at `path`, whose columns are `schema`'s (a column missing from
/// the file, such as a partition column, has none). `None` when the footer cannot be read: the
/// statistics are optional to Delta readers.
pub(crate) fn of_file(path: &Path, schema: &SchemaRef) -> Option<String> {
    let file = crate::dataset::files::open_no_follow(path).ok()?;
    let reader = SerializedFileReader::new(file).ok()?;
    let meta = reader.metadata();
    let rows: i64 = meta.file_metadata().num_rows();
    let leaves = meta.file_metadata().schema_descr();
    let mut min_values = Map::new();
    let mut max_values = Map::new();
    let mut null_count = Map::new();
    for field in schema.fields() {
        let scalar = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::Int64 | DataType::Int32 | DataType::Timestamp(..)
        );
        // The leaf that is the column itself (a map's leaves are its keys and values).
        let Some(leaf) = (0..leaves.num_columns()).find(|&i| {
            let p = leaves.column(i).path().parts().to_vec();
            p.len() == 1 && p[0] == *field.name()
        }) else {
            continue;
        };
        let mut col = Column {
            nulls: Some(0),
            exact: true,
            ..Default::default()
        };
        for rg in meta.row_groups() {
            let Some(st) = rg.column(leaf).statistics() else {
                col.nulls = None;
                col.exact = false;
                continue;
            };
            col.nulls = col.nulls.zip(st.null_count_opt()).map(|(a, b)| a + b);
            if scalar {
                add_range(&mut col, st, field.data_type());
            }
        }
        if let Some(n) = col.nulls {
            null_count.insert(field.name().clone(), json!(n));
        }
        if scalar && col.exact {
            if let (Some(lo), Some(hi)) = (col.min, col.max) {
                min_values.insert(field.name().clone(), lo);
                max_values.insert(field.name().clone(), hi);
            }
        }
    }
    Some(
        json!({
            "numRecords": rows,
            "minValues": min_values,
            "maxValues": max_values,
            "nullCount": null_count,
        })
        .to_string(),
    )
}

/// Folds one row group's minimum and maximum into the column's.
fn add_range(col: &mut Column, st: &Statistics, ty: &DataType) {
    let pair: Option<(Value, Value, bool)> = match (st, ty) {
        (Statistics::ByteArray(s), DataType::Utf8) => {
            let text = |b: Option<&parquet::data_type::ByteArray>| {
                b.and_then(|b| std::str::from_utf8(b.data()).ok().map(str::to_string))
            };
            text(s.min_opt())
                .zip(text(s.max_opt()))
                .map(|(lo, hi)| (json!(lo), json!(hi), s.min_is_exact() && s.max_is_exact()))
        }
        (Statistics::Int64(s), DataType::Timestamp(..)) => s
            .min_opt()
            .zip(s.max_opt())
            .map(|(lo, hi)| (json!(iso_micros(*lo)), json!(iso_micros(*hi)), true)),
        (Statistics::Int64(s), _) => s
            .min_opt()
            .zip(s.max_opt())
            .map(|(lo, hi)| (json!(lo), json!(hi), true)),
        (Statistics::Int32(s), _) => s
            .min_opt()
            .zip(s.max_opt())
            .map(|(lo, hi)| (json!(lo), json!(hi), true)),
        _ => None,
    };
    let Some((lo, hi, exact)) = pair else {
        // A row group of nulls only has no range; its column still has the others'.
        if st.null_count_opt().is_none() {
            col.exact = false;
        }
        return;
    };
    col.exact &= exact;
    let less = |a: &Value, b: &Value| match (a, b) {
        (Value::String(a), Value::String(b)) => a < b,
        (a, b) => a.as_i64() < b.as_i64(),
    };
    if col.min.as_ref().is_none_or(|m| less(&lo, m)) {
        col.min = Some(lo);
    }
    if col.max.as_ref().is_none_or(|m| less(m, &hi)) {
        col.max = Some(hi);
    }
}

/// Microseconds since the epoch as Delta statistics spell a timestamp
/// (`2026-12-06T07:06:40.123Z`; the dataset's times are whole milliseconds).
fn iso_micros(us: i64) -> String {
    crate::time::iso_utc(us.div_euclid(1000), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::client::ExecutionRecord;
    use crate::dataset::schema::{schema, BatchBuilder, Outcome, Row, Source};

    fn row(thing: &str, status: Option<&str>, at: i64) -> Row {
        Row {
            thing_name: thing.into(),
            job_id: "job-1".into(),
            requested_execution_number: None,
            outcome: Outcome::Ok,
            error: None,
            attempts: 1,
            fetched_at_ms: at,
            execution: Some(ExecutionRecord {
                status: status.map(str::to_string),
                ..Default::default()
            }),
            source: Source::Describe,
            retry_attempt: None,
            origin: None,
            carried_from: None,
            context: Default::default(),
        }
    }

    #[test]
    fn statistics_are_the_files_ranges_and_null_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let mut b = BatchBuilder::new("run-1", Some("us-east-1"));
        b.push(&row("t2", Some("QUEUED"), 1_764_400_000_000));
        b.push(&row("t1", None, 1_764_400_000_123));
        b.push(&row("t3", Some("FAILED"), 1_764_400_000_050));
        let batch = b.finish().unwrap();
        let f = std::fs::File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let s: Value = serde_json::from_str(&of_file(&path, &schema()).unwrap()).unwrap();
        assert_eq!(s["numRecords"], 3);
        assert_eq!(s["minValues"]["thing_name"], "t1");
        assert_eq!(s["maxValues"]["thing_name"], "t3");
        assert_eq!(s["minValues"]["status"], "FAILED");
        assert_eq!(s["maxValues"]["status"], "QUEUED");
        assert_eq!(s["nullCount"]["status"], 1);
        assert_eq!(s["nullCount"]["queued_at"], 3);
        assert_eq!(s["minValues"]["fetched_at"], "2025-11-29T07:06:40.000Z");
        assert_eq!(s["maxValues"]["fetched_at"], "2025-11-29T07:06:40.123Z");
        assert_eq!(s["minValues"]["attempts"], 1);
        assert!(s["minValues"].get("status_details").is_none());
    }
}
