//! One audit a date (issue 28): a run on a new date after an incomplete audit is refused until
//! `--resume` finishes it (audits are never merged), and the resume does finish it.

use std::path::Path;

use crate::common::*;
use fleet_audit::audit::run::run;
use fleet_audit::dataset::{Manifest, PartitionKey};
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

/// Moves the (only, incomplete) audit of `out` to the date `to`: its folder and its manifest.
fn move_audit_to(out: &Path, to: &str) {
    let mut m = Manifest::load(out).unwrap().unwrap();
    let from = m.date.clone().unwrap();
    std::fs::rename(
        out.join(format!("date={from}")),
        out.join(format!("date={to}")),
    )
    .unwrap();
    for p in &mut m.parts {
        p.file = p
            .file
            .replacen(&format!("date={from}/"), &format!("date={to}/"), 1);
    }
    m.date = Some(to.into());
    m.store(out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dated_run_after_an_incomplete_audit_is_refused_until_resumed() {
    let server = start_paced(fleet(200, 2, 101)).await;
    let d = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, d.path());
    let out = d.path().join("daily");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.partition_by = vec![PartitionKey::Date];
    rc.output.part_rows = 50;
    rc.engine.concurrency = 2;
    run_interrupted(rc.clone(), &server, Operation::DescribeJobExecution, 120).await;
    // The interrupted audit is an earlier day's: today's run would be the next audit, if the last
    // one were complete.
    move_audit_to(&out, "2026-01-02");
    let before = Manifest::load(&out).unwrap().unwrap();
    assert!(!before.complete && !before.parts.is_empty());
    let calls = server.stats().total_calls();
    let err = run(rc.clone(), no_shutdown())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds an incomplete audit of 2026-01-02: --resume finishes it"),
        "{err}"
    );
    assert_eq!(
        server.stats().total_calls(),
        calls,
        "refused before any call"
    );
    assert_eq!(
        Manifest::load(&out).unwrap().unwrap(),
        before,
        "nothing changed"
    );

    // --resume finishes that audit, under its own date, and nothing is merged.
    let mut resume = rc.clone();
    resume.output.resume = true;
    let s = run(resume, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let m = Manifest::load(&out).unwrap().unwrap();
    assert!(m.complete && m.earlier.is_empty());
    assert_eq!(m.date.as_deref(), Some("2026-01-02"));
    assert!(m
        .parts
        .iter()
        .all(|p| p.file.starts_with("date=2026-01-02/")));
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 400);
    contents(&rows);
}
