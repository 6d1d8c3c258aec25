//! The table's commits on a local directory: one commit per audit, a replaced audit's files
//! removed from the table but kept on disk, a second publish a no-op, and a race for one version
//! lost by one writer with nothing doubled.

use super::*;

/// A part of `rows` rows, its file placed under `root` (a publish checks that every part it adds is
/// there as committed).
fn part(root: &std::path::Path, file: &str, rows: u64) -> PartEntry {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![b'x'; 100 + rows as usize]).unwrap();
    let digest = crate::dataset::PartDigest::of_file(&path).unwrap();
    let mut p = PartEntry::new(file.into(), rows, Some(digest));
    p.stats = Some(format!(r#"{{"numRecords":{rows}}}"#));
    p
}

fn manifest(partition_by: &[&str]) -> Manifest {
    let mut m = Manifest::new("pairs:1".into(), 10, "parquet");
    m.partition_by = partition_by.iter().map(|s| s.to_string()).collect();
    m.table_format = Some(DELTA.into());
    m
}

fn audit<'a>(run_id: &'a str, date: Option<&'a str>, parts: &'a [PartEntry]) -> Audit<'a> {
    Audit {
        run_id,
        date,
        generation: 0,
        parts,
    }
}

fn live(s: &Snapshot) -> Vec<&str> {
    s.live.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn each_audit_is_one_commit_and_a_second_publish_adds_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = OutputDir::Local(d.path().to_path_buf());
    let m = manifest(&["date"]);
    let day1 = [part(
        d.path(),
        "date=2026-12-01/part-1-aaaaaa-00000.parquet",
        5,
    )];
    let day2 = [part(
        d.path(),
        "date=2026-12-02/part-2-bbbbbb-00000.parquet",
        6,
    )];
    assert_eq!(
        publish(&dir, &m, &audit("r1", Some("2026-12-01"), &day1))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        publish(&dir, &m, &audit("r1", Some("2026-12-01"), &day1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        publish(&dir, &m, &audit("r2", Some("2026-12-02"), &day2))
            .await
            .unwrap(),
        Some(1)
    );
    let s = snapshot(&dir).await.unwrap();
    assert_eq!(s.version, Some(1));
    assert_eq!(live(&s), [day1[0].file.as_str(), day2[0].file.as_str()]);
    let first = std::fs::read_to_string(d.path().join(log::commit_name(0))).unwrap();
    assert!(
        first.contains(r#""partitionValues":{"date":"2026-12-01"}"#),
        "{first}"
    );
    assert!(first.contains(r#""stats":"{\"numRecords\":5}""#), "{first}");
    assert!(first.contains(r#""appId":"fleet-audit:r1""#), "{first}");

    // Today's audit again (--overwrite): the old one's files leave the table, not the disk's care.
    let again = [part(
        d.path(),
        "date=2026-12-02/part-3-cccccc-00000.parquet",
        7,
    )];
    assert_eq!(
        publish(&dir, &m, &audit("r3", Some("2026-12-02"), &again))
            .await
            .unwrap(),
        Some(2)
    );
    let s = snapshot(&dir).await.unwrap();
    assert_eq!(live(&s), [day1[0].file.as_str(), again[0].file.as_str()]);
    assert!(
        s.referenced.contains(&day2[0].file),
        "an older version still names it"
    );
    let third = std::fs::read_to_string(d.path().join(log::commit_name(2))).unwrap();
    assert!(third.contains(r#""mode":"Overwrite""#), "{third}");
}

#[tokio::test]
async fn two_writers_racing_for_one_version_one_wins_and_nothing_is_doubled() {
    let d = tempfile::tempdir().unwrap();
    let dir = OutputDir::Local(d.path().to_path_buf());
    let m = manifest(&[]);
    let a = [part(d.path(), "part-1-aaaaaa-00000.parquet", 5)];
    let b = [part(d.path(), "part-2-bbbbbb-00000.parquet", 6)];
    // Both read the table before either commits (the lock bypassed).
    let seen = snapshot(&dir).await.unwrap();
    assert_eq!(
        commit_over(&dir, &seen, &m, &audit("ra", None, &a))
            .await
            .unwrap(),
        0
    );
    let err = commit_over(&dir, &seen, &m, &audit("rb", None, &b))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("another writer committed version 0 of the Delta table first"),
        "{text}"
    );
    assert!(matches!(
        err,
        WriteError::Delta(DeltaError::Lost { version: 0, .. })
    ));
    let s = snapshot(&dir).await.unwrap();
    assert_eq!(s.version, Some(0));
    assert_eq!(live(&s), [a[0].file.as_str()]);
    assert!(!s.txns.contains_key("fleet-audit:rb"));
    // No temporary is left in the log.
    let names: Vec<String> = std::fs::read_dir(d.path().join(LOG_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["00000000000000000000.json"]);
}

#[tokio::test]
async fn another_writers_table_and_a_linked_log_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = OutputDir::Local(d.path().to_path_buf());
    std::fs::create_dir(d.path().join(LOG_DIR)).unwrap();
    std::fs::write(
        d.path().join(log::commit_name(0)),
        r#"{"metaData":{"partitionColumns":[],"configuration":{}}}"#,
    )
    .unwrap();
    let m = manifest(&[]);
    let a = [part(d.path(), "part-1-aaaaaa-00000.parquet", 5)];
    let err = publish(&dir, &m, &audit("ra", None, &a))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not make"), "{err}");
    assert_eq!(snapshot(&dir).await.unwrap().version, Some(0));

    let e = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), e.path().join(LOG_DIR)).unwrap();
    let dir = OutputDir::Local(e.path().to_path_buf());
    let err = publish(&dir, &m, &audit("ra", None, &a))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn links_in_the_log_are_refused_as_bad_input_and_never_removed() {
    let d = tempfile::tempdir().unwrap();
    let dir = OutputDir::Local(d.path().to_path_buf());
    let m = manifest(&[]);
    let a = [part(d.path(), "part-1-aaaaaa-00000.parquet", 5)];
    let victim = d.path().join("victim.json");
    std::fs::write(&victim, b"precious").unwrap();
    let log_dir = d.path().join(LOG_DIR);
    std::fs::create_dir(&log_dir).unwrap();
    // A link at this writer's temporary name: refused, left where it is, its target untouched.
    let tmp = log_dir.join(format!(
        ".{}.{}.tmp",
        log::commit_name(0).trim_start_matches(&format!("{LOG_DIR}/")),
        std::process::id()
    ));
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    let err = publish(&dir, &m, &audit("ra", None, &a)).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(&tmp)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    std::fs::remove_file(&tmp).unwrap();
    // A link at a commit's name: the log is refused (exit 2), not read through it.
    std::os::unix::fs::symlink(&victim, d.path().join(log::commit_name(0))).unwrap();
    let err = publish(&dir, &m, &audit("ra", None, &a)).await.unwrap_err();
    assert!(
        matches!(&err, WriteError::Delta(DeltaError::Refused { .. })),
        "{err}"
    );
    assert_eq!(err.exit(), crate::audit::error::Exit::BadInput);
    assert!(
        err.to_string()
            .contains("_delta_log/00000000000000000000.json is a symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // The output's check of planted links names it too.
    assert_eq!(dir.planted(), [log::commit_name(0)]);
}

#[test]
fn a_log_naming_a_file_outside_the_table_is_refused() {
    for path in [
        "../elsewhere.parquet",
        "/etc/passwd",
        "s3://other/x.parquet",
        "a//b.parquet",
        "date=x/../../y",
        "file:/x",
    ] {
        let mut s = Snapshot::default();
        let line = json!({"add": {"path": path, "partitionValues": {}, "size": 1}}).to_string();
        let err = s.apply(0, &line).unwrap_err();
        assert!(err.contains("outside the table"), "{path}: {err}");
    }
    for path in [
        "part-0.parquet",
        "date=2026-12-01/job_id=fw%3A1/part-1.parquet",
        "ts=2026-01-01 10:00/p.parquet",
    ] {
        let mut s = Snapshot::default();
        let line = json!({"add": {"path": path, "partitionValues": {}, "size": 1}}).to_string();
        s.apply(0, &line).unwrap();
        assert_eq!(s.live.len(), 1, "{path}");
    }
}

#[tokio::test]
async fn an_audit_whose_parts_are_gone_or_altered_is_never_published() {
    let d = tempfile::tempdir().unwrap();
    let dir = OutputDir::Local(d.path().to_path_buf());
    let m = manifest(&["date"]);
    let day = [
        part(d.path(), "date=2026-12-01/part-1-aaaaaa-00000.parquet", 5),
        part(d.path(), "date=2026-12-01/part-1-aaaaaa-00001.parquet", 6),
    ];
    // A foreign VACUUM after a crash deleted one part; another truncated the other.
    std::fs::remove_file(d.path().join(&day[0].file)).unwrap();
    let err = publish(&dir, &m, &audit("r1", Some("2026-12-01"), &day))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::Delta(DeltaError::Broken { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::write(d.path().join(&day[0].file), vec![b'x'; 105]).unwrap();
    std::fs::write(d.path().join(&day[1].file), b"short").unwrap();
    let err = publish(&dir, &m, &audit("r1", Some("2026-12-01"), &day))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated or replaced"), "{err}");
    assert_eq!(snapshot(&dir).await.unwrap().version, None, "no commit");
}

#[test]
fn deletion_vectors_and_newer_reader_protocols_are_refused() {
    let mut s = Snapshot::default();
    let dv = r#"{"add":{"path":"part-1-aaaaaa-00000.parquet","partitionValues":{},"size":1,"modificationTime":0,"dataChange":true,"deletionVector":{"storageType":"i","pathOrInlineDv":"wi5b=000010000siXQKl0rr91000f","offset":1,"sizeInBytes":36,"cardinality":100}}}"#;
    let e = s.apply(0, dv).unwrap_err();
    assert!(e.contains("deletion vector"), "{e}");
    let p = r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}"#;
    let e = s.apply(0, p).unwrap_err();
    assert!(
        e.contains("reader version 3") && e.contains("deletionVectors"),
        "{e}"
    );
    let plain = r#"{"add":{"path":"part-1-aaaaaa-00000.parquet","partitionValues":{},"size":1,"modificationTime":0,"dataChange":true,"deletionVector":null}}"#;
    s.apply(0, plain).unwrap();
}
