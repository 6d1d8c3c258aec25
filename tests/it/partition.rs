//! `run --partition-by` into a local directory: Hive-style paths, the partition column out of the
//! files and back from the path when read, the union of the rows equal to a flat run, and resume
//! (describe and discovery) across an interruption.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use fleet_audit::audit::config::{DescribeMode, Scope};
use fleet_audit::audit::run::run;
use fleet_audit::dataset::{Manifest, PartitionKey};
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

/// Every file under `dir`, relative, `/`-separated.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_run_resumes_into_hive_folders_with_the_rows_of_a_flat_run() {
    let server = start_paced(fleet(400, 5, 31)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let spec = InputSpec::Lists { things, jobs };
    let out = dir.path().join("ds");
    let mut rc = run_config(&server.endpoint_url(), spec.clone(), &out);
    rc.output.partition_by = vec![PartitionKey::Date, PartitionKey::JobId];
    rc.output.part_rows = 150;
    rc.engine.concurrency = 8;

    run_interrupted(rc.clone(), &server, Operation::DescribeJobExecution, 700).await;
    let first = read_rows(&out);
    assert!(first.len() >= 600 && first.len() < 2000, "{}", first.len());
    assert!(
        files_under(&out).iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        files_under(&out)
    );

    rc.output.resume = true;
    let s = run(rc.clone(), no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!(s.resumed as usize, first.len());

    // Hive-style paths; the manifest lists exactly the files on disk.
    let m = Manifest::load(&out).unwrap().unwrap();
    assert_eq!(m.partition_by, ["date", "job_id"]);
    let on_disk: BTreeSet<String> = files_under(&out)
        .into_iter()
        .filter(|f| f != "_manifest.json")
        .collect();
    let listed: BTreeSet<String> = m.parts.iter().map(|p| p.file.clone()).collect();
    assert_eq!(on_disk, listed);
    let mut run_ids = BTreeSet::new();
    for f in &on_disk {
        let seg: Vec<&str> = f.split('/').collect();
        assert_eq!(seg.len(), 3, "{f}");
        let date = seg[0].strip_prefix("date=").expect(f);
        assert!(date.len() == 10 && date.starts_with("20"), "{f}");
        assert!(seg[1].starts_with("job_id=job-"), "{f}");
        let name = seg[2].strip_prefix("part-").expect(f);
        assert!(name.ends_with(".parquet"), "{f}");
        run_ids.insert(name.rsplit_once('-').unwrap().0.to_string());
        // job_id is in the path, not in the file.
        let file = std::fs::File::open(out.join(f)).unwrap();
        let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .schema()
            .clone();
        assert!(schema.field_with_name("job_id").is_err(), "{f}");
        assert_eq!(
            schema.fields().len(),
            fleet_audit::dataset::schema::schema().fields().len() - 1,
            "{f}"
        );
    }
    assert_eq!(run_ids.len(), 2, "two runs wrote parts: {run_ids:?}");

    // Read back with job_id from the path: the rows of an uninterrupted flat run.
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 2000);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
    let flat = dir.path().join("flat");
    run(
        run_config(&server.endpoint_url(), spec, &flat),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert_eq!(contents(&rows), contents(&read_rows(&flat)));

    // `report` reads the partitioned dataset as it reads the flat one.
    let t = fleet_audit::report::Thresholds::default();
    // (Without the ages of the oldest pairs, which depend on when each run fetched them.)
    let counts = |p: &Path| {
        let mut j = fleet_audit::report::report_path(p, &t).unwrap().to_json();
        for job in j["jobs"].as_array_mut().unwrap() {
            job.as_object_mut().unwrap().remove("oldest");
        }
        j["totals"].as_object_mut().unwrap().remove("oldest");
        j
    };
    let (a, b) = (counts(&out), counts(&flat));
    assert_eq!(a["jobs"], b["jobs"]);
    assert_eq!(a["totals"], b["totals"]);
    assert_eq!(a["jobs"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_discovery_resumes_with_job_ids_from_the_paths() {
    let server = start_paced(fleet(3_000, 2, 17)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&server, dir.path());
    let out = dir.path().join("disc");
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::Jobs(jobs),
        DescribeMode::Active,
        &out,
    );
    rc.output.partition_by = vec![PartitionKey::JobId];
    rc.output.part_rows = 200;
    rc.engine.concurrency = 4;
    run_interrupted_then_resumed(rc, &server, Operation::ListJobExecutionsForJob, 4, &out).await;
    let rows = read_rows(&out);
    let fleet = server.simulator().fleet();
    let expected: usize = (0..3_000)
        .map(|i| (0..2).filter(|&j| fleet.execution(i, j).is_some()).count())
        .sum();
    assert_eq!(
        contents(&rows).len(),
        expected,
        "every execution exactly once across the resume"
    );
    assert!(files_under(&out)
        .iter()
        .filter(|f| *f != "_manifest.json")
        .all(|f| f.starts_with("job_id=job-00")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioning_needs_a_directory_and_known_columns() {
    let bin = env!("CARGO_BIN_EXE_fleet-audit");
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.txt");
    std::fs::write(&t, "thing-1\n").unwrap();
    let t = t.to_string_lossy();
    for (out, by, want) in [
        ("x.parquet", "date", "needs a directory output"),
        ("d", "status", "not a partition column"),
        ("d", "date,date", "given twice"),
    ] {
        let out = dir.path().join(out);
        let o = std::process::Command::new(bin)
            .args(["run", "--things", &t, "--jobs", &t, "--out"])
            .arg(&out)
            .args(["--partition-by", by])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{by}: {err}");
    }
}
