//! The table definitions of a `--table-format delta` output: Athena's and DuckDB's. Both read the
//! columns, their types and the partitions from the Delta log, so neither lists them (Athena refuses
//! a Delta table's DDL with anything beyond its location and `table_type`), and each reads only the
//! files of the table's latest version: whole audits.

use super::{hive::s3_location, sql_string, DdlError, TableSpec, TABLE};

/// The table's partitions are in its log; a `--partition-by` here is a mistake worth naming.
fn no_partitions(spec: &TableSpec) -> Result<(), DdlError> {
    match spec.partition_by.first() {
        None => Ok(()),
        Some(_) => Err(DdlError::Location(
            "a Delta table's columns and partitions are read from its log: drop --partition-by"
                .into(),
        )),
    }
}

/// Athena, as AWS documents a Delta Lake table in S3 (`CREATE EXTERNAL TABLE … LOCATION …
/// TBLPROPERTIES ('table_type' = 'DELTA')`: no columns, no SerDe, no other property).
pub(super) fn athena(spec: &TableSpec) -> Result<String, DdlError> {
    no_partitions(spec)?;
    let location = s3_location(spec.location.as_deref())?;
    Ok(format!(
        "CREATE EXTERNAL TABLE {TABLE}\nLOCATION {}\nTBLPROPERTIES ('table_type' = 'DELTA')",
        sql_string(&location)
    ))
}

/// DuckDB: a view over `delta_scan` (the `delta` extension) of the table's directory or URL.
pub(super) fn duckdb(spec: &TableSpec) -> Result<String, DdlError> {
    no_partitions(spec)?;
    let base = super::duckdb::base_of(spec)?;
    Ok(format!(
        "-- fleet-audit Delta table: the complete audits of its latest version, read through its Delta log.\n\
         -- Needs DuckDB's delta extension: run INSTALL delta once.\n\
         LOAD delta;\n\
         CREATE VIEW {TABLE} AS SELECT * FROM delta_scan({});",
        sql_string(base)
    ))
}

#[cfg(test)]
mod tests {
    use crate::dataset::ddl::{ddl, tests::spec, Dialect};
    use crate::dataset::schema::schema;

    #[test]
    fn athenas_delta_table_is_the_documented_statement() {
        let d = ddl(
            &schema(),
            Dialect::AthenaDelta,
            &spec(Some("s3://audit-bucket/fleet-audit"), &[]),
        )
        .unwrap();
        // AWS's form: CREATE EXTERNAL TABLE [db_name.]table_name LOCATION 's3://…/' TBLPROPERTIES
        // ('table_type' = 'DELTA'), nothing else.
        let words: Vec<&str> = d.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "CREATE",
                "EXTERNAL",
                "TABLE",
                "fleet_audit",
                "LOCATION",
                "'s3://audit-bucket/fleet-audit/'",
                "TBLPROPERTIES",
                "('table_type'",
                "=",
                "'DELTA')"
            ]
        );
        let e = ddl(&schema(), Dialect::AthenaDelta, &spec(Some("/local"), &[])).unwrap_err();
        assert!(e.to_string().contains("s3://"), "{e}");
        let e = ddl(
            &schema(),
            Dialect::AthenaDelta,
            &spec(Some("s3://b/p/"), &["date"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("drop --partition-by"), "{e}");
    }

    #[test]
    fn duckdbs_view_scans_the_table() {
        let d = ddl(
            &schema(),
            Dialect::DuckDbDelta,
            &spec(Some("/data/it's/"), &[]),
        )
        .unwrap();
        assert!(
            d.ends_with("CREATE VIEW fleet_audit AS SELECT * FROM delta_scan('/data/it''s');"),
            "{d}"
        );
        assert!(d.contains("LOAD delta;"), "{d}");
    }
}
