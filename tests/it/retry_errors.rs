//! Issue 23, item 12: a run whose pairs ended as error rows (exit 4) says how to describe just
//! those again, and `--resume --retry-errors` does: each error row is replaced in its part, the
//! audit keeps one row a pair, every row is the fleet's, and nothing but the manifest's parts is left.

use std::collections::HashSet;
use std::path::Path;

use crate::common::*;
use fleet_audit::dataset::Manifest;
use fleet_audit::sim::Faults;

/// Every file under `dir` (relative, `/`-separated), the manifest's own files left out.
fn files_under(dir: &Path) -> HashSet<String> {
    fn walk(root: &Path, d: &Path, out: &mut HashSet<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if !rel.contains("_manifest.json") {
                    out.insert(rel);
                }
            }
        }
    }
    let mut out = HashSet::new();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rows_are_described_again_and_replaced_in_place() {
    let d = tempfile::tempdir().unwrap();
    // A service failing 3 calls in 10, and one attempt a pair: about 270 of 900 pairs are errors.
    let mut stormy = sim_config(fleet(300, 3, 8));
    stormy.faults = Faults {
        p_5xx: 0.3,
        ..Faults::default()
    };
    let storm = start(stormy).await;
    lists(&storm, d.path());
    let args = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "audit",
        "--partition-by",
        "job_id",
        "--part-rows",
        "100",
        "--max-attempts",
        "1",
    ];
    let (code, err) =
        wait_or_kill(spawn_against(d.path(), &storm.endpoint_url(), &args), None).await;
    assert_eq!(code, Some(4), "{err}");
    let out = d.path().join("audit");
    let before = read_rows(&out);
    let errors = before.iter().filter(|r| r.outcome == "error").count();
    assert!(errors > 100, "{errors} error rows");
    assert!(
        err.contains(&format!(
            "{} pairs ended as error rows (their calls failed past --max-attempts",
            fleet_audit::audit::summary::thousands(errors as u64)
        )) && err.contains("the same command with --resume --retry-errors"),
        "exit 4 says what to do next: {err}"
    );
    let m1 = Manifest::load(&out).unwrap().unwrap();
    drop(storm);

    // The service is well again: just the error rows are described again.
    let calm = start(sim_config(fleet(300, 3, 8))).await;
    let mut retry: Vec<&str> = args.to_vec();
    retry.extend([
        "--resume",
        "--retry-errors",
        "--summary-json",
        "s.json",
        "--metrics",
        "m.prom",
    ]);
    let (code, err) =
        wait_or_kill(spawn_against(d.path(), &calm.endpoint_url(), &retry), None).await;
    assert_eq!(code, Some(0), "{err}");
    let stats = calm.stats();
    assert_eq!(
        stats.calls(fleet_audit::sim::Operation::DescribeJobExecution),
        errors as u64,
        "one describe an error row, nothing else"
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["retried_errors"]["retried"], errors);
    assert_eq!(s["retried_errors"]["errors"], 0);
    // This run's figures are the retry's: its calls, its rows, its parts; not a no-op's.
    assert_eq!(s.get("already_complete"), None, "{s}");
    assert_eq!(s["attempts"], errors);
    assert_eq!(s["errors"], 0);
    assert!(s["elapsed_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        s["files"].as_array().unwrap().len() as u64,
        s["retried_errors"]["parts"].as_u64().unwrap()
    );
    let metrics = std::fs::read_to_string(d.path().join("m.prom")).unwrap();
    assert!(!metrics.contains("made no call"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "fleet_audit_calls_total{{api=\"DescribeJobExecution\"}} {errors}\n"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("fleet_audit_stuck{job_id=\"job-000\",class=\"errors\"} 0\n"));

    let after = read_rows(&out);
    assert_eq!(after.len(), 900, "one row a pair");
    let pairs: HashSet<(String, String)> = after
        .iter()
        .map(|r| (r.thing_name.clone(), r.job_id.clone()))
        .collect();
    assert_eq!(pairs.len(), 900, "no pair twice");
    assert!(after.iter().all(|r| r.outcome != "error"));
    let fleet = calm.simulator().fleet();
    for r in &after {
        assert_row_matches_fleet(r, fleet);
    }
    // The rows that were not errors are the same rows, run and all.
    let kept = |rows: &[ReadRow]| -> HashSet<String> {
        rows.iter()
            .filter(|r| r.outcome != "error")
            .map(|r| {
                format!(
                    "{}/{}/{:?}/{}",
                    r.thing_name, r.job_id, r.run_id, r.fetched_at
                )
            })
            .collect()
    };
    assert!(kept(&before).is_subset(&kept(&after)));
    // One manifest, its parts and nothing else on disk; the same number of parts, each checked.
    let m2 = Manifest::load(&out).unwrap().unwrap();
    assert!(m2.complete);
    assert_eq!(m2.parts.len(), m1.parts.len());
    assert_eq!(m2.committed, m1.committed);
    let listed: HashSet<String> = m2.parts.iter().map(|p| p.file.clone()).collect();
    assert_eq!(files_under(&out), listed);
    let (code, report) = wait_or_kill(
        spawn_against(d.path(), "", &["report", "audit", "--json"]),
        None,
    )
    .await;
    assert_eq!(code, Some(0), "{report}");

    // Again: nothing left to retry, no call at all (not even STS).
    let before = calm.stats();
    let (code, err) =
        wait_or_kill(spawn_against(d.path(), &calm.endpoint_url(), &retry), None).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(calm.stats().total_calls(), before.total_calls());
    assert_eq!(calm.stats().sts, before.sts);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["already_complete"], true);
    // ...and the audit's last success is the retry's now (a no-op does not go back in time).
    let m3 = Manifest::load(&out).unwrap().unwrap();
    assert_ne!(
        m3.completed.as_ref().unwrap().run_id,
        m1.completed.as_ref().unwrap().run_id
    );
}

/// SIGKILLs `child` once `sim` holds it at its gate and its writer has committed an error row to `out` (the
/// rows answered before the gate reach the writer thread a little later): an event, not a delay.
async fn kill_once_committed(
    sim: &fleet_audit::sim::Simulator,
    op: fleet_audit::sim::Operation,
    mut child: tokio::process::Child,
    out: &Path,
) {
    until_held_or_exit(sim, op, &mut child).await;
    let committed = || {
        Manifest::load(out)
            .ok()
            .flatten()
            .is_some_and(|m| m.error_rows.unwrap_or(0) > 0)
    };
    while !committed() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (code, err) = wait_or_kill(child, Some(std::time::Duration::ZERO)).await;
    assert_eq!(code, None, "killed mid-run: {err}");
    sim.release(op);
}

#[tokio::test]
async fn retry_errors_is_refused_where_it_cannot_work() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("t.txt"), "thing-1\n").unwrap();
    std::fs::write(d.path().join("j.txt"), "job-1\n").unwrap();
    for (extra, why) in [
        (
            vec!["--out", "a.parquet", "--retry-errors"],
            "the following required arguments were not provided",
        ),
        (
            vec![
                "--out",
                "a",
                "--resume",
                "--retry-errors",
                "--regions",
                "us-east-1,eu-west-1",
            ],
            "one target",
        ),
        (
            vec!["--out", "s3://bucket/p/", "--resume", "--retry-errors"],
            "local directory output",
        ),
    ] {
        let mut args = vec!["run", "--things", "t.txt", "--jobs", "j.txt"];
        args.extend(extra);
        let (code, err) =
            wait_or_kill(spawn_against(d.path(), "http://127.0.0.1:9", &args), None).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

/// Error rows committed by an interrupted run are the audit's: the resume that completes it exits 4
/// and says how to describe them again, though it made no error row itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_completes_an_audit_with_earlier_error_rows_exits_4() {
    use fleet_audit::sim::Operation;
    let d = tempfile::tempdir().unwrap();
    let mut stormy = sim_config(fleet(200, 2, 9));
    stormy.faults = Faults {
        p_5xx: 0.3,
        ..Faults::default()
    };
    let storm = start(stormy).await;
    lists(&storm, d.path());
    let args = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "audit",
        "--part-rows",
        "20",
        "--max-attempts",
        "1",
        "--concurrency",
        "2",
        "--call-timeout",
        "1h",
    ];
    let op = Operation::DescribeJobExecution;
    storm.simulator().hold_after(op, 150);
    let first = spawn_against(d.path(), &storm.endpoint_url(), &args);
    kill_once_committed(storm.simulator(), op, first, &d.path().join("audit")).await;
    let m = Manifest::load(&d.path().join("audit")).unwrap().unwrap();
    let committed_errors = m.error_rows.unwrap();
    assert!(!m.complete && committed_errors > 0, "{m:?}");
    // A second audit killed alike, to be finished and retried in one run.
    let mut args2 = args.to_vec();
    args2[6] = "audit2";
    storm.simulator().hold_after(op, 150);
    let second = spawn_against(d.path(), &storm.endpoint_url(), &args2);
    kill_once_committed(storm.simulator(), op, second, &d.path().join("audit2")).await;
    drop(storm);

    let calm = start(sim_config(fleet(200, 2, 9))).await;
    let mut resume = args.to_vec();
    resume.extend(["--resume", "--summary-json", "s.json"]);
    let (code, err) =
        wait_or_kill(spawn_against(d.path(), &calm.endpoint_url(), &resume), None).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!("{committed_errors} pairs ended as error rows"))
            && err.contains("--retry-errors"),
        "{err}"
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["errors"], 0, "this run made none");
    assert_eq!(s["audit_errors"], committed_errors);
    let rows = read_rows(&d.path().join("audit"));
    assert_eq!(
        rows.iter().filter(|r| r.outcome == "error").count() as u64,
        committed_errors
    );

    // --resume --retry-errors on an incomplete audit: the resume finishes it (its parts numbered
    // from 00000 under the run's id), then the error rows are replaced (parts of another id): one row
    // a pair, none an error, every part listed on disk.
    let mut both = args2.clone();
    both.extend(["--resume", "--retry-errors"]);
    let (code, err) =
        wait_or_kill(spawn_against(d.path(), &calm.endpoint_url(), &both), None).await;
    assert_eq!(code, Some(0), "{err}");
    let out2 = d.path().join("audit2");
    let rows = read_rows(&out2);
    let pairs: HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r.thing_name.clone(), r.job_id.clone()))
        .collect();
    assert_eq!((rows.len(), pairs.len()), (400, 400), "{err}");
    assert!(rows.iter().all(|r| r.outcome != "error"));
    let m2 = Manifest::load(&out2).unwrap().unwrap();
    let listed: HashSet<String> = m2.parts.iter().map(|p| p.file.clone()).collect();
    assert_eq!(listed.len(), m2.parts.len(), "no part listed twice");
    assert_eq!(files_under(&out2), listed);
}
