//! Resuming a discovery: a discovery dataset cannot be numbered before it is listed, so a resumed
//! discovery lists again (lists are cheap) and skips every (thing, job) already in the committed
//! parts, read back as 128-bit pair keys whatever string type a tool rewrote them with. Its new rows
//! are numbered on from the committed count (see [`renumber_lanes`]).

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};

use crate::audit::error::RunError;
use crate::dataset::schema::BATCH_ROWS;
use crate::dataset::{lane_ordinal, DoneSet, Manifest, OutputDir};
use crate::input::pair::pair_key;

/// Where a committed row was read from: (region, account id).
pub(super) type OriginKey = (Option<String>, Option<String>);

/// The pairs already in a manifest's committed parts, by the region and account of their rows (a
/// discovery over several targets skips, in each target, that target's own).
pub(super) async fn committed_by_origin(
    target: &OutputDir,
    m: &Manifest,
) -> Result<HashMap<OriginKey, HashSet<u128>>, RunError> {
    let mut keys: HashMap<OriginKey, HashSet<u128>> = HashMap::new();
    let resume_err = |reason: String| RunError::Resume {
        out: std::path::PathBuf::from(target.name()),
        reason,
    };
    for part in &m.parts {
        let batches = crate::dataset::read_part(target, &part.file, BATCH_ROWS)
            .await
            .map_err(|e| resume_err(e.to_string()))?;
        for b in batches {
            let b = b.map_err(|e| resume_err(e.to_string()))?;
            let (Some(things), Some(jobs)) = (
                text_column(&b, "thing_name", &part.file).map_err(resume_err)?,
                text_column(&b, "job_id", &part.file).map_err(resume_err)?,
            ) else {
                return Err(resume_err(format!("{} lacks thing_name/job_id", part.file)));
            };
            let regions = text_column(&b, "region", &part.file).map_err(resume_err)?;
            let accounts = text_column(&b, "account_id", &part.file).map_err(resume_err)?;
            let text = |a: &Option<arrow::array::StringArray>, i: usize| {
                a.as_ref()
                    .and_then(|a| a.is_valid(i).then(|| a.value(i).to_string()))
            };
            for i in 0..b.num_rows() {
                keys.entry((text(&regions, i), text(&accounts, i)))
                    .or_default()
                    .insert(pair_key(things.value(i), jobs.value(i)));
            }
        }
    }
    Ok(keys)
}

/// Ordinals only number a discovery's rows: a resume finds what is done by the committed pairs, not
/// by ordinal. So a resumed discovery renumbers: each of its `lanes` (targets) has its committed rows
/// become its watermark, and its new rows continue from it (the returned first ordinals, lane
/// encoded). Ordinals the earlier run handed out but never committed (pairs in flight or queued when
/// it stopped) would otherwise be holes under which the watermark never moves again, and every later
/// row would be kept one by one in the manifest.
pub(super) fn renumber_lanes(manifest: Option<&mut Manifest>, lanes: usize) -> Vec<u64> {
    let counts: Vec<u64> = (0..lanes)
        .map(|l| {
            manifest
                .as_ref()
                .map_or(0, |m| m.committed.lane_len(l as u16))
        })
        .collect();
    if let Some(m) = manifest {
        let mut done = DoneSet {
            watermark: counts.first().copied().unwrap_or(0),
            ..Default::default()
        };
        for (l, n) in counts.iter().enumerate().skip(1).filter(|(_, n)| **n > 0) {
            let lane = crate::dataset::LaneDone {
                watermark: *n,
                above: Default::default(),
            };
            done.lanes.insert(l as u16, lane);
        }
        m.committed = done;
    }
    counts
        .iter()
        .enumerate()
        .map(|(l, n)| lane_ordinal(l as u16, *n))
        .collect()
}

/// A string column of a committed part as Utf8, whatever string type it was written with (a dataset
/// rewritten by pyarrow, DuckDB or Spark may hold LargeUtf8, Utf8View or dictionaries); `None` when the
/// part lacks it; an error naming the part when it is no string at all.
fn text_column(
    b: &arrow::record_batch::RecordBatch,
    name: &str,
    part: &str,
) -> Result<Option<arrow::array::StringArray>, String> {
    use arrow::datatypes::DataType;
    let Some(c) = b.column_by_name(name) else {
        return Ok(None);
    };
    let utf8 = match c.data_type() {
        DataType::Utf8 => c.clone(),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            arrow::compute::cast(c, &DataType::Utf8)
                .map_err(|e| format!("{part}: column {name} cannot be read as a string: {e}"))?
        }
        other => return Err(format!("{part}: column {name} is {other}, not a string")),
    };
    Ok(Some(utf8.as_string::<i32>().clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{ArrayRef, Int64Array, LargeStringArray, StringViewArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    fn part(dir: &std::path::Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> Manifest {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let f = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut m = Manifest::new("discover:test".into(), 0, "parquet");
        m.parts.push(crate::dataset::PartEntry::new(
            name.into(),
            batch.num_rows() as u64,
            None,
        ));
        for o in 0..batch.num_rows() as u64 {
            m.committed.insert(o);
        }
        m
    }

    /// A discovery dataset rewritten by another tool with other string types still resumes; a part
    /// whose pair columns are no strings is refused with its name, never a panic.
    #[tokio::test]
    async fn resume_reads_pairs_written_as_large_or_view_strings() {
        let d = tempfile::tempdir().unwrap();
        let target = OutputDir::Local(d.path().to_path_buf());
        let things: ArrayRef = Arc::new(LargeStringArray::from(vec!["t-1", "t-2"]));
        let jobs: ArrayRef = Arc::new(StringViewArray::from(vec!["j-1", "j-2"]));
        let m = part(
            d.path(),
            "part-r-00000.parquet",
            vec![("thing_name", things), ("job_id", jobs)],
        );
        let keys: HashSet<u128> = committed_by_origin(&target, &m)
            .await
            .unwrap()
            .into_values()
            .flatten()
            .collect();
        let want: HashSet<u128> = [pair_key("t-1", "j-1"), pair_key("t-2", "j-2")].into();
        assert_eq!(keys, want);

        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let jobs: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["j-1", "j-2"]));
        let m = part(
            d.path(),
            "part-r-00001.parquet",
            vec![("thing_name", numbers), ("job_id", jobs)],
        );
        let err = committed_by_origin(&target, &m)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("part-r-00001.parquet: column thing_name is Int64, not a string"),
            "{err}"
        );
    }
}
