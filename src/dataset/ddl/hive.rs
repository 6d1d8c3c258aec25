//! Athena's `CREATE EXTERNAL TABLE` and Glue's `TableInput`: the two Hive-metastore tables over S3.
//!
//! They are together because they are one table in two spellings: the same Hive column types, the
//! same Parquet SerDe and formats, and the same rule that the location is an `s3://` prefix.

use std::fmt::Write as _;

use arrow::datatypes::{DataType, Schema};

use super::{
    layout, map_kv, sql_string, Column, DdlError, Dialect, TableSpec, PLACEHOLDER_LOCATION, TABLE,
};

/// Parquet's Hive SerDe and formats, as Athena and Glue name them.
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

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

/// An S3 prefix ending in `/`, for Athena and Glue.
pub(super) fn s3_location(location: Option<&str>) -> Result<String, DdlError> {
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

/// Athena DDL: `CREATE EXTERNAL TABLE … STORED AS PARQUET LOCATION …`.
pub(super) fn athena(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
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

/// The `TableInput` JSON of `aws glue create-table --table-input`.
pub(super) fn glue(schema: &Schema, spec: &TableSpec) -> Result<String, DdlError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ddl::{ddl, tests::spec};
    use crate::dataset::schema::schema;
    use arrow::datatypes::Field;
    use std::sync::Arc;

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
        // Glue's and Hive's own names (AWS Glue's CreateTable examples for Parquet), written out
        // here rather than compared with the module's constants.
        assert_eq!(v["Name"], "fleet_audit");
        assert_eq!(v["TableType"], "EXTERNAL_TABLE");
        let sd = &v["StorageDescriptor"];
        assert_eq!(sd["Location"], "s3://b/x/");
        assert_eq!(
            sd["InputFormat"],
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
        );
        assert_eq!(
            sd["OutputFormat"],
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
        );
        assert_eq!(
            sd["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        );
        let cols = sd["Columns"].as_array().unwrap();
        let want: Vec<&Arc<Field>> = s.fields().iter().filter(|f| f.name() != "job_id").collect();
        assert_eq!(cols.len(), want.len());
        for (c, f) in cols.iter().zip(want) {
            assert_eq!(c["Name"], f.name().as_str());
        }
        // Each column's Hive type, as Athena's DDL names them (not derived by the code under test).
        let ty = |n: &str| {
            cols.iter()
                .find(|c| c["Name"] == n)
                .map(|c| c["Type"].as_str().unwrap().to_string())
                .unwrap()
        };
        assert_eq!(ty("run_id"), "string");
        assert_eq!(ty("requested_execution_number"), "bigint");
        assert_eq!(ty("attempts"), "int");
        assert_eq!(ty("force_canceled"), "boolean");
        assert_eq!(ty("fetched_at"), "timestamp");
        assert_eq!(ty("status_details"), "map<string,string>");
        assert_eq!(ty("retry_attempt"), "int");
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
}
