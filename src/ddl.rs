//! `fleet-audit schema`: the dataset's schema as a table, and the table definitions (DDL) that let
//! Athena, AWS Glue and DuckDB query the dataset where it lies.
//!
//! Everything here is generated from [`crate::schema::schema`], never from a copied column list, so a
//! column added to the dataset cannot be missing from a table definition, and a column of a type an
//! engine cannot express is an error instead of a silently wrong table.
//!
//! Partitions are Hive-style folders (`date=2025-06-01/job_id=fw-7/part-….parquet`). A partition column
//! that is also a dataset column (`job_id`) keeps its type and moves from the columns to the partition
//! keys (engines read it from the folder name, so it is not repeated); any other name (`date`) is a
//! string partition key.

use std::fmt::Write as _;

use arrow::datatypes::{DataType, Field, Schema};

/// The name of the table (Athena, Glue) or view (DuckDB).
pub const TABLE: &str = "fleet_audit";

/// Parquet's Hive SerDe and formats, as Athena and Glue name them.
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

/// The location printed when none is given (Athena and Glue need an S3 prefix); no bucket can have this
/// name (bucket names are lower case), so a table made from it cannot silently read the wrong data.
pub const PLACEHOLDER_LOCATION: &str = "s3://YOUR-BUCKET/fleet-audit/";

/// A query engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Athena `CREATE EXTERNAL TABLE` (Hive DDL).
    Athena,
    /// The `TableInput` JSON of `aws glue create-table`.
    Glue,
    /// A DuckDB `CREATE VIEW` over `read_parquet`.
    DuckDb,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Athena => "Athena",
            Dialect::Glue => "Glue",
            Dialect::DuckDb => "DuckDB",
        }
    }
}

/// Where the table's files are and how they are partitioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSpec {
    /// An S3 prefix (Athena, Glue), or a directory or URL (DuckDB). `None`: [`PLACEHOLDER_LOCATION`]
    /// for Athena and Glue, the current directory for DuckDB.
    pub location: Option<String>,
    /// Partition columns in folder order (outermost first).
    pub partition_by: Vec<String>,
}

/// Why a table definition cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
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
    /// A dataset column whose type cannot be a folder name.
    #[error("--partition-by: {column} is {arrow} in the dataset; a partition column must be a string, integer, boolean or date")]
    PartitionType { column: String, arrow: String },
    /// A location the engine cannot read.
    #[error("--location: {0}")]
    Location(String),
}

/// The Arrow type as README's schema table spells it (`utf8`, `timestamp[ms, UTC]`, `map<utf8, utf8>`).
pub fn arrow_type_name(t: &DataType) -> String {
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

/// The Hive type (Athena DDL and Glue columns) of an Arrow type, if it has one.
fn hive_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Map(entries, _) => {
            let (k, v) = map_kv(entries)?;
            format!("map<{},{}>", hive_type(k)?, hive_type(v)?)
        }
        DataType::List(f) => format!("array<{}>", hive_type(f.data_type())?),
        DataType::Struct(fields) => {
            let inner: Option<Vec<String>> = fields
                .iter()
                .map(|f| Some(format!("{}:{}", f.name(), hive_type(f.data_type())?)))
                .collect();
            format!("struct<{}>", inner?.join(","))
        }
        _ => return None,
    })
}

/// The DuckDB type of an Arrow type as DuckDB reads it from Parquet (and prints in `DESCRIBE`).
fn duckdb_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Date32 => "DATE".into(),
        // Parquet marks a timestamp with a time zone as adjusted to UTC; DuckDB reads it as TIMESTAMPTZ.
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Map(entries, _) => {
            let (k, v) = map_kv(entries)?;
            format!("MAP({}, {})", duckdb_type(k)?, duckdb_type(v)?)
        }
        DataType::List(f) => format!("{}[]", duckdb_type(f.data_type())?),
        DataType::Struct(fields) => {
            let inner: Option<Vec<String>> = fields
                .iter()
                .map(|f| Some(format!("{} {}", f.name(), duckdb_type(f.data_type())?)))
                .collect();
            format!("STRUCT({})", inner?.join(", "))
        }
        _ => return None,
    })
}

/// The schema as a table: column, Arrow type, nullable.
pub fn schema_table(schema: &Schema) -> String {
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

/// An S3 prefix ending in `/`, for Athena and Glue.
fn s3_location(location: Option<&str>) -> Result<String, DdlError> {
    let loc = location.unwrap_or(PLACEHOLDER_LOCATION).trim();
    let Some(rest) = loc.strip_prefix("s3://") else {
        return Err(DdlError::Location(format!(
            "{loc:?} is not an s3:// prefix (Athena and Glue read from S3)"
        )));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(DdlError::Location(format!("{loc:?} names no bucket")));
    }
    if loc.contains('\'') || loc.chars().any(char::is_control) {
        return Err(DdlError::Location(format!(
            "{loc:?} holds a quote or a control character"
        )));
    }
    Ok(if loc.ends_with('/') {
        loc.to_string()
    } else {
        format!("{loc}/")
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
        Dialect::Athena => athena(schema, spec),
        Dialect::Glue => glue(schema, spec),
        Dialect::DuckDb => duckdb(schema, spec),
    }
}

fn athena(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
    let location = s3_location(spec.location.as_deref())?;
    let l = layout(schema, spec, Dialect::Athena, hive_type, "string")?;
    // Backticks: `date` and other partition names are reserved words in Hive DDL.
    let list = |cols: &[Column]| {
        cols.iter()
            .map(|c| format!("  `{}` {}", c.name, c.ty))
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let mut out = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {TABLE} (\n{}\n)\n",
        list(&l.columns)
    );
    if !l.partitions.is_empty() {
        let _ = writeln!(out, "PARTITIONED BY (\n{}\n)", list(&l.partitions));
    }
    let _ = write!(
        out,
        "STORED AS PARQUET\nLOCATION {}\nTBLPROPERTIES ('classification' = 'parquet')",
        sql_string(&location)
    );
    Ok(out)
}

fn glue(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
    let location = s3_location(spec.location.as_deref())?;
    let l = layout(schema, spec, Dialect::Glue, hive_type, "string")?;
    let cols = |cols: &[Column]| {
        cols.iter()
            .map(|c| serde_json::json!({ "Name": c.name, "Type": c.ty }))
            .collect::<Vec<_>>()
    };
    // PartitionKeys is always present: Athena fails on a Glue table whose PartitionKeys is missing.
    let doc = serde_json::json!({
        "Name": TABLE,
        "Description": "AWS IoT job executions audited by fleet-audit, one row per (thing, job) pair",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": { "classification": "parquet", "EXTERNAL": "TRUE" },
        "PartitionKeys": cols(&l.partitions),
        "StorageDescriptor": {
            "Columns": cols(&l.columns),
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": { "serialization.format": "1" }
            }
        }
    });
    Ok(serde_json::to_string_pretty(&doc).expect("a JSON value serializes"))
}

fn duckdb(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
    let location = spec.location.as_deref().unwrap_or(".").trim();
    if location.is_empty() || location.chars().any(char::is_control) {
        return Err(DdlError::Location(format!(
            "{location:?} is not a directory or URL"
        )));
    }
    let base = match location.trim_end_matches('/') {
        "" => "/",
        b => b,
    };
    let glob = if base == "/" {
        "/**/*.parquet".to_string()
    } else {
        format!("{base}/**/*.parquet")
    };
    let l = layout(schema, spec, Dialect::DuckDb, duckdb_type, "VARCHAR")?;
    let mut out = String::from(
        "-- fleet-audit dataset: one row per (thing, job) pair. Columns as DESCRIBE fleet_audit shows them:\n",
    );
    let width = l
        .columns
        .iter()
        .chain(&l.partitions)
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &l.columns {
        let _ = writeln!(out, "--   {:width$}  {}", c.name, c.ty);
    }
    for c in &l.partitions {
        let _ = writeln!(
            out,
            "--   {:width$}  {}  (from the folder names)",
            c.name, c.ty
        );
    }
    let _ = write!(
        out,
        "CREATE VIEW {TABLE} AS SELECT * FROM read_parquet({}, hive_partitioning = true",
        sql_string(&glob)
    );
    if !l.partitions.is_empty() {
        let types: Vec<String> = l
            .partitions
            .iter()
            .map(|c| format!("{}: {}", sql_string(&c.name), c.ty))
            .collect();
        let _ = write!(out, ", hive_types = {{{}}}", types.join(", "));
    }
    out.push_str(");");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::schema;
    use std::sync::Arc;

    fn spec(location: Option<&str>, partition_by: &[&str]) -> TableSpec {
        TableSpec {
            location: location.map(str::to_string),
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The `name type` pairs between the first `(` line and its `)` line after `header`.
    fn athena_block(ddl: &str, header: &str) -> Vec<(String, String)> {
        let start = ddl.find(header).expect("header present") + header.len();
        let body = &ddl[start..];
        let end = body.find("\n)").expect("block closes");
        body[..end]
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let l = l.trim().trim_end_matches(',');
                let (n, t) = l.split_once(' ').expect("name and type");
                (n.trim_matches('`').to_string(), t.to_string())
            })
            .collect()
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
        assert!(t.contains("timestamp[ms, UTC]  no"), "{t}");
        assert!(t.contains("map<utf8, utf8>"), "{t}");
    }

    #[test]
    fn athena_ddl_has_every_column_with_its_hive_type() {
        let s = schema();
        let d = ddl(&s, Dialect::Athena, &spec(Some("s3://b/audits"), &[])).unwrap();
        assert!(
            d.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS fleet_audit (\n"),
            "{d}"
        );
        assert!(
            d.contains("\nSTORED AS PARQUET\nLOCATION 's3://b/audits/'\n"),
            "{d}"
        );
        assert!(!d.contains("PARTITIONED BY"), "{d}");
        let cols = athena_block(&d, "fleet_audit (");
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        let want: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, want);
        let ty = |n: &str| cols.iter().find(|c| c.0 == n).unwrap().1.clone();
        assert_eq!(ty("run_id"), "string");
        assert_eq!(ty("requested_execution_number"), "bigint");
        assert_eq!(ty("attempts"), "int");
        assert_eq!(ty("force_canceled"), "boolean");
        assert_eq!(ty("fetched_at"), "timestamp");
        assert_eq!(ty("status_details"), "map<string,string>");
        assert_eq!(ty("retry_attempt"), "int");
    }

    #[test]
    fn athena_partitions_move_dataset_columns_out_of_the_column_list() {
        let s = schema();
        let d = ddl(
            &s,
            Dialect::Athena,
            &spec(Some("s3://b/p/"), &["date", "job_id"]),
        )
        .unwrap();
        let parts = athena_block(&d, "PARTITIONED BY (");
        assert_eq!(
            parts,
            [
                ("date".to_string(), "string".to_string()),
                ("job_id".to_string(), "string".to_string())
            ]
        );
        let cols = athena_block(&d, "fleet_audit (");
        assert_eq!(cols.len(), s.fields().len() - 1, "job_id is not repeated");
        assert!(cols.iter().all(|c| c.0 != "job_id" && c.0 != "date"));
        // The order Hive requires: columns, PARTITIONED BY, STORED AS, LOCATION.
        let at = |k: &str| d.find(k).unwrap();
        assert!(at("PARTITIONED BY") < at("STORED AS PARQUET"));
        assert!(at("STORED AS PARQUET") < at("LOCATION 's3://b/p/'"));
    }

    #[test]
    fn glue_table_input_matches_the_schema() {
        let s = schema();
        let d = ddl(
            &s,
            Dialect::Glue,
            &spec(Some("s3://b/x"), &["date", "job_id"]),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["Name"], TABLE);
        assert_eq!(v["TableType"], "EXTERNAL_TABLE");
        let sd = &v["StorageDescriptor"];
        assert_eq!(sd["Location"], "s3://b/x/");
        assert_eq!(sd["InputFormat"], PARQUET_INPUT);
        assert_eq!(sd["OutputFormat"], PARQUET_OUTPUT);
        assert_eq!(sd["SerdeInfo"]["SerializationLibrary"], PARQUET_SERDE);
        let cols = sd["Columns"].as_array().unwrap();
        let want: Vec<&Arc<Field>> = s.fields().iter().filter(|f| f.name() != "job_id").collect();
        assert_eq!(cols.len(), want.len());
        for (c, f) in cols.iter().zip(want) {
            assert_eq!(c["Name"], f.name().as_str());
            assert_eq!(c["Type"], hive_type(f.data_type()).unwrap().as_str());
        }
        let keys: Vec<(&str, &str)> = v["PartitionKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["Name"].as_str().unwrap(), k["Type"].as_str().unwrap()))
            .collect();
        assert_eq!(keys, [("date", "string"), ("job_id", "string")]);
        // Unpartitioned: the key list is there, and empty.
        let d = ddl(&s, Dialect::Glue, &spec(Some("s3://b/x/"), &[])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["PartitionKeys"], serde_json::json!([]));
        assert_eq!(
            v["StorageDescriptor"]["Columns"].as_array().unwrap().len(),
            s.fields().len()
        );
    }

    #[test]
    fn duckdb_view_reads_every_parquet_file_under_the_location() {
        let s = schema();
        let d = ddl(&s, Dialect::DuckDb, &spec(Some("/data/audit/"), &[])).unwrap();
        assert!(d.ends_with(
            "CREATE VIEW fleet_audit AS SELECT * FROM read_parquet('/data/audit/**/*.parquet', hive_partitioning = true);"
        ), "{d}");
        // The comment lists every column with the type DuckDB shows.
        let comment: Vec<&str> = d.lines().filter(|l| l.starts_with("--   ")).collect();
        assert_eq!(comment.len(), s.fields().len());
        assert!(
            d.contains("fetched_at") && d.contains("TIMESTAMP WITH TIME ZONE"),
            "{d}"
        );
        assert!(d.contains("MAP(VARCHAR, VARCHAR)"), "{d}");
        // Quotes are escaped; the default location is the current directory.
        let d = ddl(&s, Dialect::DuckDb, &spec(Some("/it's"), &[])).unwrap();
        assert!(d.contains("read_parquet('/it''s/**/*.parquet'"), "{d}");
        let d = ddl(&s, Dialect::DuckDb, &TableSpec::default()).unwrap();
        assert!(d.contains("read_parquet('./**/*.parquet'"), "{d}");
    }

    #[test]
    fn duckdb_partitions_are_typed_and_listed_last() {
        let s = schema();
        let d = ddl(
            &s,
            Dialect::DuckDb,
            &spec(Some("s3://b/p"), &["date", "job_id"]),
        )
        .unwrap();
        assert!(
            d.contains(
                "hive_partitioning = true, hive_types = {'date': VARCHAR, 'job_id': VARCHAR});"
            ),
            "{d}"
        );
        let comment: Vec<&str> = d.lines().filter(|l| l.starts_with("--   ")).collect();
        assert_eq!(
            comment.len(),
            s.fields().len() + 1,
            "job_id once, date added"
        );
        assert!(
            comment[comment.len() - 1].contains("job_id")
                && comment[comment.len() - 1].contains("folder")
        );
    }

    #[test]
    fn bad_partitions_and_locations_are_refused() {
        let s = schema();
        let e = ddl(&s, Dialect::Athena, &spec(None, &["job id"])).unwrap_err();
        assert_eq!(e, DdlError::PartitionName("job id".into()));
        let e = ddl(&s, Dialect::Athena, &spec(None, &["date", "date"])).unwrap_err();
        assert_eq!(e, DdlError::PartitionTwice("date".into()));
        let e = ddl(&s, Dialect::Glue, &spec(None, &["status_details"])).unwrap_err();
        assert!(matches!(e, DdlError::PartitionType { .. }), "{e}");
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
