//! `fleet-audit schema`: the dataset's schema as a table, and the table definitions (DDL) that let
//! Athena, AWS Glue and DuckDB query the dataset where it lies.
//!
//! Everything here is generated from [`crate::dataset::schema::schema`], never from a copied column list, so a
//! column added to the dataset cannot be missing from a table definition, and a column of a type an
//! engine cannot express is an error instead of a silently wrong table.
//!
//! Partitions are Hive-style folders (`date=2025-06-01/job_id=fw-7/part-….parquet`). A partition column
//! that is also a dataset column (`job_id`) keeps its type and moves from the columns to the partition
//! keys (engines read it from the folder name, so it is not repeated); `date`, not a dataset column, is a
//! string partition key. Only the keys `run --partition-by` writes are accepted: a table partitioned by
//! a folder no run makes would find no data.
//!
//! This file holds the public API and what every engine shares: the schema table, the Arrow type
//! names, and the split of the schema into columns and partition keys with its checks. Each engine's
//! types and text are in its own file, so adding or fixing one dialect touches one file: `hive.rs`
//! (Athena DDL and the Glue `TableInput`, both Hive tables over S3), `duckdb.rs` (a view over
//! `read_parquet`) and `delta.rs` (Athena's and DuckDB's tables over a `--table-format delta`
//! output, whose columns and partitions come from the Delta log).

mod delta;
mod duckdb;
mod hive;

use std::fmt::Write as _;

use arrow::datatypes::{DataType, Field, Schema};

use crate::dataset::PartitionKey;

/// The name of the table (Athena, Glue) or view (DuckDB).
pub(crate) const TABLE: &str = "fleet_audit";

/// The location printed when none is given (Athena and Glue need an S3 prefix); no bucket can have this
/// name (bucket names are lower case), so a table made from it cannot silently read the wrong data.
pub(crate) const PLACEHOLDER_LOCATION: &str = "s3://YOUR-BUCKET/fleet-audit/";

/// A query engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Athena `CREATE EXTERNAL TABLE` (Hive DDL).
    Athena,
    /// The `TableInput` JSON of `aws glue create-table`.
    Glue,
    /// A DuckDB `CREATE VIEW` over `read_parquet`.
    DuckDb,
    /// Athena's table over a `--table-format delta` output (`table_type` DELTA).
    AthenaDelta,
    /// A DuckDB view over `delta_scan` of a `--table-format delta` output.
    DuckDbDelta,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Athena => "Athena",
            Dialect::Glue => "Glue",
            Dialect::DuckDb => "DuckDB",
            Dialect::AthenaDelta => "Athena (Delta)",
            Dialect::DuckDbDelta => "DuckDB (Delta)",
        }
    }
}

/// Where the table's files are and how they are partitioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableSpec {
    /// An S3 prefix (Athena, Glue), or a directory or URL (DuckDB). `None`: [`PLACEHOLDER_LOCATION`]
    /// for Athena and Glue, the current directory for DuckDB.
    pub location: Option<String>,
    /// Partition columns in folder order (outermost first).
    pub partition_by: Vec<String>,
}

/// Why a table definition cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DdlError {
    /// A column's Arrow type has no counterpart in the engine.
    #[error("column {column}: {dialect} has no type for Arrow {arrow}")]
    Unsupported {
        column: String,
        dialect: &'static str,
        arrow: String,
    },
    /// A partition column name engines cannot use as a folder key.
    #[error(
        "--partition-by: {0:?} is not a column name (a letter or _, then letters, digits or _)"
    )]
    PartitionName(String),
    /// The same partition column twice.
    #[error("--partition-by: {0} is given twice")]
    PartitionTwice(String),
    /// A partition column no run writes.
    #[error("--partition-by: {0:?} is not a partition column (use date and/or job_id, the folders `run --partition-by` writes)")]
    PartitionKey(String),
    /// A dataset column whose type cannot be a folder name.
    #[error("--partition-by: {column} is {arrow} in the dataset; a partition column must be a string, integer, boolean or date")]
    PartitionType { column: String, arrow: String },
    /// A location the engine cannot read.
    #[error("--location: {0}")]
    Location(String),
}

/// The Arrow type as the schema table (docs/outputs.md) spells it (`utf8`, `timestamp[us, UTC]`, `map<utf8, utf8>`).
pub(crate) fn arrow_type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date32".into(),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                arrow::datatypes::TimeUnit::Second => "s",
                arrow::datatypes::TimeUnit::Millisecond => "ms",
                arrow::datatypes::TimeUnit::Microsecond => "us",
                arrow::datatypes::TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{unit}, {tz}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        DataType::Map(entries, _) => match map_kv(entries) {
            Some((k, v)) => format!("map<{}, {}>", arrow_type_name(k), arrow_type_name(v)),
            None => format!("{t}"),
        },
        DataType::List(f) => format!("list<{}>", arrow_type_name(f.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), arrow_type_name(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        other => format!("{other}"),
    }
}

/// The key and value types of a map's entries field.
fn map_kv(entries: &Field) -> Option<(&DataType, &DataType)> {
    match entries.data_type() {
        DataType::Struct(kv) if kv.len() == 2 => Some((kv[0].data_type(), kv[1].data_type())),
        _ => None,
    }
}

/// The schema as a table: column, Arrow type, nullable.
pub(crate) fn schema_table(schema: &Schema) -> String {
    let rows: Vec<(String, String, &str)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                arrow_type_name(f.data_type()),
                if f.is_nullable() { "yes" } else { "no" },
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(10);
    let mut out = format!("{:w0$}  {:w1$}  nullable\n", "column", "arrow type");
    for (name, ty, nullable) in rows {
        let _ = writeln!(out, "{name:w0$}  {ty:w1$}  {nullable}");
    }
    out.truncate(out.trim_end().len());
    out
}

/// A column of the table: name and engine type.
struct Column {
    name: String,
    ty: String,
}

/// The table's columns and partition keys in one engine's types.
struct Layout {
    columns: Vec<Column>,
    partitions: Vec<Column>,
}

/// The partition keys `run --partition-by` writes: the only folders a table can be partitioned by.
const RUN_PARTITIONS: [PartitionKey; 2] = [PartitionKey::Date, PartitionKey::JobId];

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Splits the schema into columns and partition keys, typed by `ty`.
fn layout(
    schema: &Schema,
    spec: &TableSpec,
    dialect: Dialect,
    ty: fn(&DataType) -> Option<String>,
    string: &str,
) -> Result<Layout, DdlError> {
    let mut partitions = Vec::new();
    for (i, name) in spec.partition_by.iter().enumerate() {
        let name = name.trim();
        if !is_identifier(name) {
            return Err(DdlError::PartitionName(name.to_string()));
        }
        if spec.partition_by[..i].iter().any(|p| p.trim() == name) {
            return Err(DdlError::PartitionTwice(name.to_string()));
        }
        if !RUN_PARTITIONS.iter().any(|k| k.name() == name) {
            return Err(DdlError::PartitionKey(name.to_string()));
        }
        let ty = match schema.field_with_name(name) {
            Err(_) => string.to_string(),
            Ok(f) => {
                let foldable = matches!(
                    f.data_type(),
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Boolean
                        | DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::Date32
                );
                if !foldable {
                    return Err(DdlError::PartitionType {
                        column: name.to_string(),
                        arrow: arrow_type_name(f.data_type()),
                    });
                }
                ty(f.data_type()).expect("every foldable type has a name")
            }
        };
        partitions.push(Column {
            name: name.to_string(),
            ty,
        });
    }
    let mut columns = Vec::new();
    for f in schema.fields() {
        if partitions.iter().any(|p| &p.name == f.name()) {
            continue;
        }
        let t = ty(f.data_type()).ok_or_else(|| DdlError::Unsupported {
            column: f.name().clone(),
            dialect: dialect.name(),
            arrow: arrow_type_name(f.data_type()),
        })?;
        columns.push(Column {
            name: f.name().clone(),
            ty: t,
        });
    }
    Ok(Layout {
        columns,
        partitions,
    })
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The table definition of `schema` for `dialect`: Athena DDL, Glue `TableInput` JSON, or a DuckDB
/// view (with a comment listing the column types its `DESCRIBE` shows).
pub fn ddl(schema: &Schema, dialect: Dialect, spec: &TableSpec) -> Result<String, DdlError> {
    match dialect {
        Dialect::Athena => hive::athena(schema, spec),
        Dialect::Glue => hive::glue(schema, spec),
        Dialect::DuckDb => duckdb::view(schema, spec),
        Dialect::AthenaDelta => delta::athena(spec),
        Dialect::DuckDbDelta => delta::duckdb(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::schema::schema;

    /// A spec from borrowed parts; the dialects' tests use it too.
    pub(super) fn spec(location: Option<&str>, partition_by: &[&str]) -> TableSpec {
        TableSpec {
            location: location.map(str::to_string),
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_schema_table_lists_every_column_with_type_and_nullability() {
        let s = schema();
        let t = schema_table(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), s.fields().len() + 1);
        assert!(lines[0].starts_with("column") && lines[0].ends_with("nullable"));
        for (line, f) in lines[1..].iter().zip(s.fields()) {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells[0], f.name());
            assert_eq!(
                *cells.last().unwrap(),
                if f.is_nullable() { "yes" } else { "no" }
            );
        }
        assert!(t.contains("fetched_at "), "{t}");
        assert!(t.contains("timestamp[us, UTC]  no"), "{t}");
        assert!(t.contains("map<utf8, utf8>"), "{t}");
    }

    #[test]
    fn bad_partitions_and_locations_are_refused() {
        let s = schema();
        let e = ddl(&s, Dialect::Athena, &spec(None, &["job id"])).unwrap_err();
        assert_eq!(e, DdlError::PartitionName("job id".into()));
        let e = ddl(&s, Dialect::Athena, &spec(None, &["date", "date"])).unwrap_err();
        assert_eq!(e, DdlError::PartitionTwice("date".into()));
        // Only the folders a run writes: any other key would partition a table over no data.
        for key in ["foo", "status_details", "region"] {
            let e = ddl(&s, Dialect::Glue, &spec(None, &[key])).unwrap_err();
            assert_eq!(e, DdlError::PartitionKey(key.into()));
        }
        let e = ddl(&s, Dialect::Athena, &spec(Some("/local/dir"), &[])).unwrap_err();
        assert!(e.to_string().contains("not an s3:// prefix"), "{e}");
        let e = ddl(&s, Dialect::Glue, &spec(Some("s3://"), &[])).unwrap_err();
        assert!(e.to_string().contains("no bucket"), "{e}");
        // No location: a placeholder no bucket can have (bucket names are lower case).
        let d = ddl(&s, Dialect::Athena, &TableSpec::default()).unwrap();
        assert!(d.contains(PLACEHOLDER_LOCATION), "{d}");
    }

    #[test]
    fn a_type_an_engine_lacks_is_an_error_not_a_guess() {
        let s = Schema::new(vec![Field::new("blob", DataType::Binary, true)]);
        for dialect in [Dialect::Athena, Dialect::Glue, Dialect::DuckDb] {
            let e = ddl(&s, dialect, &spec(Some("s3://b/"), &[])).unwrap_err();
            assert!(
                matches!(&e, DdlError::Unsupported { column, .. } if column == "blob"),
                "{e}"
            );
        }
    }
}
