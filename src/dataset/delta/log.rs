//! The Delta log, read and written: a table's state replayed from its JSON commits (the files live
//! in each version, every file any version added, the `txn` of each application, its metadata), and
//! the actions of a new commit.
//!
//! What is written is the protocol's simplest table: reader version 1, writer version 2 (no table
//! features), one JSON commit per version under `_delta_log/`, append-only except for a replaced
//! audit's files. See the protocol: <https://github.com/delta-io/delta/blob/master/PROTOCOL.md>.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use arrow::datatypes::{DataType, Field, SchemaRef};

/// The folder of the log, under the table's directory.
pub(crate) use crate::dataset::dir::DELTA_LOG as LOG_DIR;

/// The metadata configuration key that marks a table this tool made, with the schema version of its
/// files: a Delta table of any other origin is never written to.
pub(crate) const OURS_KEY: &str = "fleet-audit.schemaVersion";

/// The protocol versions written: no table features.
const READER_VERSION: i64 = 1;
const WRITER_VERSION: i64 = 2;

/// `_delta_log/00000000000000000007.json`.
pub(crate) fn commit_name(version: u64) -> String {
    format!("{LOG_DIR}/{version:020}.json")
}

/// The version of a commit file's name (relative to the table), `None` for any other log file
/// (checkpoints, `_last_checkpoint`, temporaries, another tool's files).
pub(crate) fn version_of(relative: &str) -> Option<u64> {
    let name = relative.strip_prefix(LOG_DIR)?.strip_prefix('/')?;
    twenty_digits(name.strip_suffix(".json")?)
}

fn twenty_digits(digits: &str) -> Option<u64> {
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A checkpoint file's version, part and number of parts: `N.checkpoint.parquet` (one part) or
/// `N.checkpoint.P.K.parquet` (part P of K, both ten digits); `None` for any other name (a V2
/// checkpoint's among them: those belong to tables whose protocol this tool does not write).
pub(crate) fn checkpoint_of(relative: &str) -> Option<(u64, u32, u32)> {
    let name = relative.strip_prefix(LOG_DIR)?.strip_prefix('/')?;
    let (digits, rest) = name.split_once(".checkpoint.")?;
    let v = twenty_digits(digits)?;
    if rest == "parquet" {
        return Some((v, 1, 1));
    }
    let rest = rest.strip_suffix(".parquet")?;
    let (p, k) = rest.split_once('.')?;
    let ten = |s: &str| s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit());
    if !ten(p) || !ten(k) {
        return None;
    }
    let (p, k): (u32, u32) = (p.parse().ok()?, k.parse().ok()?);
    (1..=k).contains(&p).then_some((v, p, k))
}

/// A file live in the table: its partition values and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    /// Its rows, when its statistics say (`numRecords`).
    pub rows: Option<u64>,
}

/// A table's state at its latest version, replayed from its commits.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The latest version; `None`: no commit yet (no table).
    pub version: Option<u64>,
    /// The files of the latest version, by path (relative to the table, decoded).
    pub live: BTreeMap<String, LiveFile>,
    /// Every file any version added or removed: files a reader of an older version may still need
    /// (until a `VACUUM` deletes them), which this tool never deletes.
    pub referenced: HashSet<String>,
    /// The latest `txn` version of each application id.
    pub txns: HashMap<String, i64>,
    /// The latest `metaData` action, as written.
    pub metadata: Option<Value>,
    /// The latest `protocol` action, as written.
    pub protocol: Option<Value>,
}

impl Snapshot {
    /// Applies one commit's lines (`version` is its number); `Err` says what is wrong with them.
    pub(crate) fn apply(&mut self, version: u64, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
            self.apply_action(&v)
                .map_err(|what| format!("line {}: {what}", i + 1))?;
        }
        self.version = Some(version);
        Ok(())
    }

    /// Applies one action: a commit's line, or a checkpoint's row as JSON.
    pub(crate) fn apply_action(&mut self, v: &Value) -> Result<(), String> {
        let path_of = |a: &Value, what: &str| {
            let path = a
                .get("path")
                .and_then(Value::as_str)
                .map(percent_decode)
                .ok_or_else(|| format!("{what} action without a path"))?;
            if !inside_table(&path) {
                return Err(format!(
                    "{what} action names {path:?}, a file outside the table's folder (absolute, a \
                     URL, or through `..`): this tool reads and keeps only files inside the table"
                ));
            }
            Ok(path)
        };
        if let Some(add) = v.get("add").filter(|a| !a.is_null()) {
            let path = path_of(add, "an add")?;
            refuse_deletion_vector(add, &path)?;
            let partition_values = add
                .get("partitionValues")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            let size = add.get("size").and_then(Value::as_i64).unwrap_or(0);
            let rows = add
                .get("stats")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(Value::as_u64));
            self.referenced.insert(path.clone());
            let file = LiveFile {
                partition_values,
                size,
                rows,
            };
            self.live.insert(path, file);
        } else if let Some(remove) = v.get("remove").filter(|a| !a.is_null()) {
            let path = path_of(remove, "a remove")?;
            self.live.remove(&path);
            self.referenced.insert(path);
        } else if let Some(txn) = v.get("txn").filter(|a| !a.is_null()) {
            let app = txn
                .get("appId")
                .and_then(Value::as_str)
                .ok_or("a txn action without an appId")?;
            let n = txn.get("version").and_then(Value::as_i64).unwrap_or(0);
            self.txns.insert(app.to_string(), n);
        } else if let Some(m) = v.get("metaData").filter(|a| !a.is_null()) {
            self.metadata = Some(m.clone());
        } else if let Some(p) = v.get("protocol").filter(|a| !a.is_null()) {
            let reader = p
                .get("minReaderVersion")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if reader > READER_VERSION {
                let features = p
                    .get("readerFeatures")
                    .and_then(Value::as_array)
                    .map(|f| {
                        let names: Vec<&str> = f.iter().filter_map(Value::as_str).collect();
                        format!(" (reader features: {})", names.join(", "))
                    })
                    .unwrap_or_default();
                return Err(format!(
                    "the table's protocol needs Delta reader version {reader}{features}: this tool \
                     reads version {READER_VERSION} tables only"
                ));
            }
            self.protocol = Some(p.clone());
        }
        Ok(())
    }

    /// The table's partition columns, by its metadata.
    pub(crate) fn partition_columns(&self) -> Vec<String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.get("partitionColumns"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why this tool must not write to the table, if it must not: made by another tool, of another
    /// schema version or partitioning, or needing a protocol this writer does not implement.
    pub(crate) fn refusal(&self, partition_by: &[String], schema_version: u32) -> Option<String> {
        self.version?;
        let Some(m) = &self.metadata else {
            return Some("its Delta log has no metadata".into());
        };
        let ours = m
            .get("configuration")
            .and_then(|c| c.get(OURS_KEY))
            .and_then(Value::as_str);
        match ours {
            None => {
                return Some(
                    "it is a Delta table this tool did not make (no fleet-audit schema version in \
                     its metadata); it never writes to another writer's table"
                        .into(),
                )
            }
            // Version 4 only added nullable columns at the end: its first commit on a version 3
            // table evolves the table's schema (`evolved_metadata`).
            Some("3") if schema_version == 4 => {}
            Some(v) if v != schema_version.to_string() => {
                return Some(format!(
                    "its files are of fleet-audit schema version {v}, and this fleet-audit writes \
                     version {schema_version}: start a new table (another --out)"
                ))
            }
            Some(_) => {}
        }
        let cols = self.partition_columns();
        if cols != partition_by {
            return Some(format!(
                "its Delta table is partitioned by [{}], and this run by [{}]: another --out",
                cols.join(", "),
                partition_by.join(", ")
            ));
        }
        let writer = self
            .protocol
            .as_ref()
            .and_then(|p| p.get("minWriterVersion"))
            .and_then(Value::as_i64)
            .unwrap_or(WRITER_VERSION);
        (writer > WRITER_VERSION).then(|| {
            format!(
                "its Delta table's protocol needs writer version {writer} (table features this tool \
                 does not implement); it writes version {WRITER_VERSION} only"
            )
        })
    }
}

/// An add whose file has rows another engine deleted in place (a deletion vector): reading the file
/// whole would bring them back.
fn refuse_deletion_vector(add: &Value, path: &str) -> Result<(), String> {
    if add.get("deletionVector").is_some_and(|d| !d.is_null()) {
        return Err(format!(
            "an add action gives {path:?} a deletion vector (rows another engine deleted): this \
             tool reads Delta reader version {READER_VERSION} tables only"
        ));
    }
    Ok(())
}

/// Whether a data file's path (decoded) lies inside the table's folder: relative, `/`-separated,
/// no empty, `.` or `..` segment, no URL scheme (Delta allows absolute URIs; this tool never
/// follows a log out of its table).
pub(crate) fn inside_table(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or("");
    let scheme = first.split_once(':').is_some_and(|(s, _)| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    !path.is_empty()
        && !scheme
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// `%XX` escapes decoded (Delta paths are URIs); anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(n) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Delta type for an Arrow column type of the dataset.
fn delta_type(t: &DataType) -> Value {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => json!("string"),
        DataType::Int64 => json!("long"),
        DataType::Int32 => json!("integer"),
        DataType::Boolean => json!("boolean"),
        DataType::Date32 => json!("date"),
        DataType::Timestamp(_, Some(_)) => json!("timestamp"),
        DataType::Timestamp(_, None) => json!("timestamp_ntz"),
        DataType::Map(entries, _) => {
            let (k, v) = match entries.data_type() {
                DataType::Struct(f) if f.len() == 2 => (f[0].clone(), f[1].clone()),
                _ => unreachable!("a map's entries are a struct of key and value"),
            };
            json!({
                "type": "map",
                "keyType": delta_type(k.data_type()),
                "valueType": delta_type(v.data_type()),
                "valueContainsNull": v.is_nullable(),
            })
        }
        DataType::List(f) => json!({
            "type": "array",
            "elementType": delta_type(f.data_type()),
            "containsNull": f.is_nullable(),
        }),
        other => unreachable!("the dataset has no {other} column"),
    }
}

fn delta_field(f: &Field) -> Value {
    json!({
        "name": f.name(),
        "type": delta_type(f.data_type()),
        "nullable": f.is_nullable(),
        "metadata": {},
    })
}

/// The table's schema string: the dataset's columns, then `date` when it is a partition column (it
/// is a folder, not a column, in the files).
pub(crate) fn schema_string(schema: &SchemaRef, partition_by: &[String]) -> String {
    let mut fields: Vec<Value> = schema.fields().iter().map(|f| delta_field(f)).collect();
    if partition_by.iter().any(|p| p == "date") {
        fields.push(delta_field(&Field::new("date", DataType::Date32, true)));
    }
    json!({"type": "struct", "fields": fields}).to_string()
}

/// The first commit's `protocol` and `metaData` actions.
pub(crate) fn table_actions(
    schema: &SchemaRef,
    partition_by: &[String],
    schema_version: u32,
    now_ms: i64,
) -> Vec<Value> {
    let mut configuration = Map::new();
    configuration.insert(OURS_KEY.into(), json!(schema_version.to_string()));
    vec![
        json!({"protocol": {"minReaderVersion": READER_VERSION, "minWriterVersion": WRITER_VERSION}}),
        json!({"metaData": {
            "id": table_id(),
            "name": null,
            "description": "fleet-audit: AWS IoT job executions, one commit per complete audit",
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema_string(schema, partition_by),
            "partitionColumns": partition_by,
            "configuration": configuration,
            "createdTime": now_ms,
        }}),
    ]
}

/// The `metaData` action that moves an earlier schema version's table to this one, when `old` (the
/// table's metaData) is of another: the same table (id, partitioning, other configuration) with
/// this schema and version. Readers read the columns an older file lacks as null.
pub(crate) fn evolved_metadata(
    old: &Value,
    schema: &SchemaRef,
    partition_by: &[String],
    schema_version: u32,
) -> Option<Value> {
    let current = old.pointer(&format!("/configuration/{}", OURS_KEY.replace('/', "~1")));
    if current.and_then(Value::as_str) == Some(schema_version.to_string().as_str()) {
        return None;
    }
    let mut m = old.clone();
    m["schemaString"] = json!(schema_string(schema, partition_by));
    if !m["configuration"].is_object() {
        m["configuration"] = json!({});
    }
    m["configuration"][OURS_KEY] = json!(schema_version.to_string());
    Some(json!({ "metaData": m }))
}

/// A random UUID (version 4) for the table's id.
fn table_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An `add` action for a part of the audit.
pub(crate) fn add_action(
    path: &str,
    partition_values: &BTreeMap<String, Option<String>>,
    size: u64,
    now_ms: i64,
    stats: Option<&str>,
) -> Value {
    let mut add = json!({
        "path": path,
        "partitionValues": partition_values,
        "size": size,
        "modificationTime": now_ms,
        "dataChange": true,
    });
    if let Some(s) = stats {
        add["stats"] = json!(s);
    }
    json!({ "add": add })
}

/// A `remove` action for a file of the replaced audit.
pub(crate) fn remove_action(path: &str, file: &LiveFile, now_ms: i64) -> Value {
    json!({"remove": {
        "path": path,
        "deletionTimestamp": now_ms,
        "dataChange": true,
        "extendedFileMetadata": true,
        "partitionValues": file.partition_values,
        "size": file.size,
    }})
}

/// The `txn` action naming the audit: its application id and the publish's number.
pub(crate) fn txn_action(app_id: &str, version: i64, now_ms: i64) -> Value {
    json!({"txn": {"appId": app_id, "version": version, "lastUpdated": now_ms}})
}

/// The commit's lines: one JSON object a line.
pub(crate) fn lines(actions: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in actions {
        out.extend_from_slice(a.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_3_table_evolves_to_version_4_and_no_other_is_written_to() {
        let schema = crate::dataset::schema::schema();
        let old = json!({"id": "t1", "partitionColumns": ["date"], "createdTime": 5,
            "schemaString": "{}", "configuration": {OURS_KEY: "3", "delta.appendOnly": "false"}});
        let m = evolved_metadata(&old, &schema, &["date".to_string()], 4).unwrap();
        let m = &m["metaData"];
        assert_eq!(m["id"], "t1", "the same table");
        assert_eq!(m["createdTime"], 5);
        assert_eq!(m["configuration"][OURS_KEY], "4");
        assert_eq!(m["configuration"]["delta.appendOnly"], "false");
        let fields: Value = serde_json::from_str(m["schemaString"].as_str().unwrap()).unwrap();
        let names: Vec<&str> = fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"blocked_by") && names.ends_with(&["date"]),
            "{names:?}"
        );
        // Already this version: no metaData action.
        let now = json!({"configuration": {OURS_KEY: "4"}});
        assert_eq!(evolved_metadata(&now, &schema, &[], 4), None);
        // The writer accepts a version 3 table of its own, and refuses a later one.
        let snap = |v: &str| Snapshot {
            version: Some(0),
            metadata: Some(json!({"partitionColumns": [], "configuration": {OURS_KEY: v}})),
            ..Snapshot::default()
        };
        assert_eq!(snap("3").refusal(&[], 4), None);
        assert!(snap("5").refusal(&[], 4).unwrap().contains("version 5"));
    }

    #[test]
    fn commit_names_are_twenty_digits_and_read_back() {
        assert_eq!(commit_name(7), "_delta_log/00000000000000000007.json");
        assert_eq!(version_of(&commit_name(12_345)), Some(12_345));
        assert_eq!(
            version_of("_delta_log/00000000000000000010.checkpoint.parquet"),
            None
        );
        assert_eq!(version_of("_delta_log/_last_checkpoint"), None);
        assert_eq!(version_of("_delta_log/7.json"), None);
        assert_eq!(version_of("00000000000000000007.json"), None);
        assert_eq!(
            checkpoint_of("_delta_log/00000000000000000010.checkpoint.parquet"),
            Some((10, 1, 1))
        );
        assert_eq!(
            checkpoint_of(
                "_delta_log/00000000000000000010.checkpoint.0000000002.0000000003.parquet"
            ),
            Some((10, 2, 3))
        );
        assert_eq!(
            checkpoint_of("_delta_log/00000000000000000010.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json"),
            None
        );
        assert_eq!(checkpoint_of("_delta_log/_last_checkpoint"), None);
    }

    #[test]
    fn a_replay_keeps_live_files_every_file_ever_named_and_the_latest_txn() {
        let mut s = Snapshot::default();
        s.apply(
            0,
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"partitionColumns":["date"],"configuration":{"fleet-audit.schemaVersion":"3"}}}
{"txn":{"appId":"fleet-audit:r1","version":1}}
{"add":{"path":"date=2026-12-01/part-a.parquet","partitionValues":{"date":"2026-12-01"},"size":10}}"#,
        )
        .unwrap();
        s.apply(
            1,
            r#"{"txn":{"appId":"fleet-audit:r1","version":2}}
{"remove":{"path":"date=2026-12-01/part-a.parquet"}}
{"add":{"path":"date%3D2026-12-01/part-b.parquet","partitionValues":{"date":"2026-12-01"},"size":11}}
{"commitInfo":{"operation":"WRITE"}}"#,
        )
        .unwrap();
        assert_eq!(s.version, Some(1));
        assert_eq!(
            s.live.keys().collect::<Vec<_>>(),
            ["date=2026-12-01/part-b.parquet"]
        );
        assert!(s.referenced.contains("date=2026-12-01/part-a.parquet"));
        assert_eq!(s.txns["fleet-audit:r1"], 2);
        assert_eq!(s.partition_columns(), ["date"]);
        assert_eq!(s.refusal(&["date".into()], 3), None);
        assert!(s.refusal(&[], 3).unwrap().contains("partitioned by [date]"));
        // A version 4 writer evolves a version 3 table; a later one starts another.
        assert_eq!(s.refusal(&["date".into()], 4), None);
        assert!(s
            .refusal(&["date".into()], 5)
            .unwrap()
            .contains("schema version 3"));
        assert!(s.apply(2, "{not json").unwrap_err().contains("line 1"));
    }

    #[test]
    fn another_writers_table_is_refused() {
        let mut s = Snapshot::default();
        s.apply(
            0,
            r#"{"metaData":{"partitionColumns":[],"configuration":{}}}"#,
        )
        .unwrap();
        assert!(s.refusal(&[], 3).unwrap().contains("did not make"));
        assert_eq!(Snapshot::default().refusal(&[], 3), None);
    }

    #[test]
    fn the_schema_string_spells_delta_types() {
        let schema = crate::dataset::schema::schema();
        let s: Value = serde_json::from_str(&schema_string(&schema, &["date".into()])).unwrap();
        let fields = s["fields"].as_array().unwrap();
        let ty = |n: &str| {
            fields
                .iter()
                .find(|f| f["name"] == n)
                .map(|f| f["type"].clone())
                .unwrap()
        };
        assert_eq!(ty("fetched_at"), json!("timestamp"));
        assert_eq!(ty("attempts"), json!("integer"));
        assert_eq!(ty("execution_number"), json!("long"));
        assert_eq!(ty("date"), json!("date"));
        assert_eq!(ty("status_details")["type"], json!("map"));
        assert_eq!(fields.len(), schema.fields().len() + 1);
    }
}
