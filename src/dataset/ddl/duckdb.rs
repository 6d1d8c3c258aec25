//! DuckDB: a `CREATE VIEW` over `read_parquet` of every Parquet file under the location.
//!
//! DuckDB reads a local directory, a URL or S3 alike, so unlike the Hive tables the location need not
//! be an `s3://` prefix. DuckDB takes the column types from the files (the view names only the
//! partition keys' types), so the view's comment lists them as `DESCRIBE` will show them.

use std::fmt::Write as _;

use arrow::datatypes::{DataType, Schema};

use super::{layout, map_kv, sql_string, DdlError, Dialect, TableSpec, TABLE};

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

/// The location DuckDB reads (default: the current directory), without its trailing `/` (`/`
/// stays): a directory or URL, never empty nor holding a control character.
pub(super) fn base_of(spec: &TableSpec) -> Result<&str, DdlError> {
    let location = spec.location.as_deref().unwrap_or(".").trim();
    if location.is_empty() || location.chars().any(char::is_control) {
        return Err(DdlError::Location(format!(
            "{location:?} is not a directory or URL"
        )));
    }
    Ok(match location.trim_end_matches('/') {
        "" => "/",
        b => b,
    })
}

/// The view, with a comment listing its columns and types.
pub(super) fn view(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
    let base = base_of(spec)?;
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
    use crate::dataset::ddl::{ddl, tests::spec};
    use crate::dataset::schema::schema;

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
}
