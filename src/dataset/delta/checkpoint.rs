//! Reading a Delta checkpoint (`N.checkpoint.parquet`, or its parts): the table's state at version N,
//! one action a row (`add`, `remove`, `txn`, `metaData`, `protocol`), written by other Delta writers
//! (a `deltalake` compaction, Spark) so that readers need not replay every commit, after which those
//! writers may delete the early commits. Each row is turned into the JSON action it stands for and
//! applied as a commit's line would be.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use super::log::Snapshot;

/// The actions a checkpoint row may hold, as their columns are named.
const ACTIONS: [&str; 5] = ["add", "remove", "txn", "metaData", "protocol"];

/// Applies every action of one checkpoint part's bytes to `snap`.
pub(crate) fn apply(snap: &mut Snapshot, bytes: bytes::Bytes) -> Result<(), String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| format!("not a checkpoint this tool can read: {e}"))?;
    for batch in reader {
        let batch = batch.map_err(|e| format!("not a checkpoint this tool can read: {e}"))?;
        apply_batch(snap, &batch)?;
    }
    Ok(())
}

fn apply_batch(snap: &mut Snapshot, batch: &RecordBatch) -> Result<(), String> {
    let columns: Vec<(&str, &ArrayRef)> = ACTIONS
        .iter()
        .filter_map(|name| batch.column_by_name(name).map(|c| (*name, c)))
        .collect();
    for row in 0..batch.num_rows() {
        for (name, col) in &columns {
            if col.is_valid(row) {
                let mut action = Map::new();
                action.insert((*name).to_string(), value(col.as_ref(), row));
                snap.apply_action(&Value::Object(action))
                    .map_err(|e| format!("row {row}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// One value of an Arrow column as JSON: strings, integers, booleans, lists, string maps and
/// structs (what the actions hold); another type is `null` (no action field this tool reads has one).
fn value(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Value::from(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(a.as_string::<i64>().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Boolean => Value::from(a.as_boolean().value(i)),
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            Value::Array((0..l.len()).map(|j| value(l.as_ref(), j)).collect())
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let entries = m.value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut out = Map::new();
            for j in 0..entries.len() {
                if let Value::String(k) = value(keys.as_ref(), j) {
                    out.insert(k, value(values.as_ref(), j));
                }
            }
            Value::Object(out)
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut out = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                out.insert(f.name().clone(), value(c.as_ref(), i));
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}
