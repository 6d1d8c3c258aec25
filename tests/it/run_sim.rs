//! `run` end to end through the real aws-sdk-iot client against the simulator on 127.0.0.1:0.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use fleet_audit::audit::engine::Stop;
use fleet_audit::audit::error::RunError;
use fleet_audit::audit::run::run;
use fleet_audit::aws::client::SetupError;
use fleet_audit::input::{prepare, InputSpec};
use fleet_audit::sim::{Faults, Operation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_once_with_the_simulators_fields() {
    let server = start(sim_config(fleet(300, 4, 11))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("out.parquet");
    let summary = run(
        run_config(
            &server.endpoint_url(),
            InputSpec::Lists { things, jobs },
            &out,
        ),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert!(summary.complete);
    assert_eq!(summary.pairs, 1200);
    assert_eq!(summary.ok + summary.not_found, 1200);
    assert_eq!(summary.errors, 0);

    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1200);
    let pairs: HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r.thing_name.clone(), r.job_id.clone()))
        .collect();
    assert_eq!(pairs.len(), 1200, "no pair twice");
    let fleet = server.simulator().fleet();
    for r in &rows {
        assert_row_matches_fleet(r, fleet);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.run_id.as_deref(), Some(summary.run_id.as_str()));
    }
    let not_found = rows.iter().filter(|r| r.outcome == "not_found").count() as u64;
    assert!(
        not_found > 0,
        "the fleet leaves some pairs without an execution"
    );
    assert_eq!(not_found, summary.not_found);
    // The simulator saw exactly one call per pair.
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 1200);
    // Nothing but the final file is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_and_counted_in_attempts() {
    let mut cfg = sim_config(fleet(200, 3, 5));
    cfg.faults = Faults {
        p_5xx: 0.15,
        p_drop: 0.1,
        p_garbage: 0.1,
        p_throttle: 0.1,
        p_slow: 0.0,
        slow: Duration::ZERO,
    };
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("out.arrow");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.engine.max_attempts = 12;
    let summary = run(rc, no_shutdown()).await.unwrap();
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 600);
    let fleet = server.simulator().fleet();
    for r in &rows {
        assert_row_matches_fleet(r, fleet);
    }
    let retried = rows.iter().filter(|r| r.attempts > 1).count();
    assert!(retried > 50, "faults must show in attempts: {retried}");
    let attempts: u64 = rows.iter().map(|r| r.attempts as u64).sum();
    assert_eq!(attempts, summary.attempts);
    let stats = server.stats();
    // Every attempt reached the simulator, and the throttles it sent are the ones counted.
    assert_eq!(stats.calls(Operation::DescribeJobExecution), attempts);
    assert_eq!(stats.throttled, summary.throttled);
    assert!(summary.throttled > 0);
    for kind in ["5xx", "drop", "garbage", "throttle"] {
        assert!(stats.faults[kind] > 0, "{kind} never injected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_answers_are_ended_by_the_call_timeout() {
    let mut cfg = sim_config(fleet(60, 2, 3));
    cfg.faults.p_slow = 0.3;
    cfg.faults.slow = Duration::from_secs(60);
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("out.parquet");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.engine.call_timeout = Duration::from_millis(300);
    rc.engine.max_attempts = 20;
    let started = std::time::Instant::now();
    let summary = run(rc, no_shutdown()).await.unwrap();
    // Stalls are 60 s each; finishing at all means the per-attempt timeout ended them.
    assert!(started.elapsed() < Duration::from_secs(50));
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 120);
    assert_eq!(summary.errors, 0);
    assert!(rows.iter().any(|r| r.attempts > 1));
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_line_fails_before_any_call() {
    let server = start(sim_config(fleet(10, 1, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let things = dir.path().join("things.txt");
    std::fs::write(&things, "thing-000001\n# ok\nthing 2\n").unwrap();
    let jobs = dir.path().join("jobs.txt");
    std::fs::write(&jobs, "job-000\n").unwrap();
    let out = dir.path().join("out.parquet");
    let err = run(
        run_config(
            &server.endpoint_url(),
            InputSpec::Lists { things, jobs },
            &out,
        ),
        no_shutdown(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::Input(_)), "{msg}");
    assert!(
        msg.contains("things.txt:3") && msg.contains("thingName must match"),
        "{msg}"
    );
    assert_eq!(server.stats().total_calls(), 0, "no call may be made");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_with_execution_numbers() {
    let server = start(sim_config(fleet(50, 2, 9))).await;
    let fleet = server.simulator().fleet();
    // Find a pair that has an execution.
    let (i, e) = (0..50)
        .find_map(|i| fleet.execution(i, 1).map(|e| (i, e)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.csv");
    let name = fleet.thing_name(i);
    std::fs::write(
        &pairs,
        format!(
            "thing_name,job_id,execution_number\n{name},job-001,{}\n{name},job-001,{}\n{name},job-001,\n{name},job-001,{}\n",
            e.execution_number,
            e.execution_number + 7,
            e.execution_number
        ),
    )
    .unwrap();
    let out = dir.path().join("out.parquet");
    let summary = run(
        run_config(&server.endpoint_url(), InputSpec::Pairs(pairs), &out),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert_eq!(summary.pairs, 3);
    assert_eq!(summary.duplicates, 1);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_row_matches_fleet(r, fleet);
    }
    let wrong = rows
        .iter()
        .find(|r| r.requested_execution_number == Some(e.execution_number + 7))
        .unwrap();
    assert_eq!(wrong.outcome, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_stop_the_run_without_an_output() {
    let server = start(sim_config(fleet(500, 4, 2))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("out.parquet");
    let with_key = |key: &str| {
        let mut rc = run_config(
            &server.endpoint_url(),
            InputSpec::Lists {
                things: things.clone(),
                jobs: jobs.clone(),
            },
            &out,
        );
        rc.targets.client.static_credentials = Some(aws_credential_types::Credentials::new(
            key, "secret", None, None, "test",
        ));
        rc
    };
    // Expired credentials: STS GetCallerIdentity refuses them before the first IoT call.
    let err = run(with_key("AKIDEXPIRED"), no_shutdown())
        .await
        .unwrap_err();
    match &err {
        RunError::Setup(SetupError::Rejected(error)) => assert_eq!(error.code(), "ExpiredToken"),
        other => panic!("expected a setup error, got {other}"),
    }
    assert!(
        err.to_string().contains("AWS refused the credentials")
            && err
                .to_string()
                .contains("the credentials have expired: refresh them"),
        "{err}"
    );
    assert_eq!(server.stats().total_calls(), 0, "{:?}", server.stats());
    assert!(!out.exists());

    // Credentials IoT denies (STS accepts any): the first answers stop the run.
    let err = run(with_key("AKIDDENIED"), no_shutdown())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the credentials lack a permission: README's IAM section"),
        "the next step is said: {err}"
    );
    match err {
        RunError::Stopped {
            stop: Stop::Fatal { error },
            ..
        } => {
            assert_eq!(error.code(), "AccessDeniedException")
        }
        other => panic!("expected a fatal stop, got {other}"),
    }
    // It stopped early: far fewer calls than the 2000 pairs, and no output under the final name.
    assert!(server.stats().total_calls() < 100, "{:?}", server.stats());
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "only the two lists remain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_stops_the_run() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let things = dir.path().join("t.txt");
    std::fs::write(
        &things,
        (0..200).map(|i| format!("t{i}\n")).collect::<String>(),
    )
    .unwrap();
    let jobs = dir.path().join("j.txt");
    std::fs::write(&jobs, "j1\nj2\n").unwrap();
    let out = dir.path().join("out.parquet");
    let mut rc = run_config(
        &format!("http://127.0.0.1:{port}"),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.engine.max_attempts = 2;
    let err = run(rc, no_shutdown()).await.unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Stopped {
                stop: Stop::Unreachable { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    assert!(!out.exists());
}

/// An endpoint that refuses every connection, with a directory output: the run stops as unreachable
/// (exit 1) and commits none of the error rows of the pairs that ended before it knew, so the
/// directory is left as it was found (not there) and the same command runs again without --resume;
/// no call was answered, and the summary says 0 answered calls/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_leaves_a_directory_output_as_it_was_found() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.txt"),
        (0..30).map(|i| format!("t{i}\n")).collect::<String>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("j.txt"), "j1\nj2\n").unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let args = [
        "run",
        "--things",
        "t.txt",
        "--jobs",
        "j.txt",
        "--out",
        "e1/",
        "--max-attempts",
        "2",
        "--summary-json",
        "s.json",
    ];
    let child = spawn_against(dir.path(), &url, &args);
    let (code, err) = wait_or_kill(child, Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the endpoint cannot be reached")
            && err.contains("nothing was committed to e1/"),
        "{err}"
    );
    assert!(!dir.path().join("e1").exists(), "{err}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert!(s["attempts"].as_u64().unwrap() >= 6, "{s}");
    assert_eq!(s["calls_per_s"].as_f64(), Some(0.0), "{s}");
    assert_eq!(s["complete"], false, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_output_rotates_parts_and_unknown_statuses_are_kept() {
    let mut spec = fleet(400, 3, 21);
    spec.future_status = 0.05;
    let server = start(sim_config(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("dataset");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.part_rows = 500;
    let summary = run(rc, no_shutdown()).await.unwrap();
    assert_eq!(summary.files.len(), 3, "{:?}", summary.files);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1200);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
    assert!(rows.iter().any(|r| r.status.as_deref() == Some("PAUSED")));
    // Input validation ran once: it counted what the targets then yielded.
    let input = prepare(&InputSpec::Lists {
        things: dir.path().join("things.txt"),
        jobs: dir.path().join("jobs.txt"),
    })
    .unwrap();
    assert_eq!(input.total(), 1200);
}

/// Issue 22, item 11: with no --rps cap (`--rps 0`) against a service whose quota is far below what
/// the client could send, over the wire: the quota is met (throttles happen, and the run's count is
/// the service's), every pair gets its answer, and `calls_per_s` counts answered calls only. How
/// well the pace settles depends on the machine's load here (a real clock), so the share of throttled
/// attempts is asserted where time is driven: `engine::tests::without_a_cap_the_pace_adapts_to_the_quota`
/// (paused clock). Enough attempts are allowed that a loaded machine cannot turn a throttle into an
/// error row; counts, not timings, are asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rps_cap_adapts_to_a_low_quota() {
    let mut cfg = sim_config(fleet(500, 4, 71));
    cfg.quota_rps = Some(200.0);
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("out.parquet");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    assert_eq!(rc.rate.rps, None, "--rps 0: no cap");
    // The CLI's backoff (100 ms to 20 s), with attempts to spare.
    rc.engine.backoff = fleet_audit::aws::retry::Backoff::default();
    rc.engine.max_attempts = 20;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert_eq!(s.pairs, 2_000);
    assert_eq!(s.errors, 0, "no pair ended as a throttled error row: {s:?}");
    let answered = s.attempts - s.throttled;
    assert_eq!(answered, 2_000, "{s:?}");
    assert!(s.throttled > 0, "the quota was met: {s:?}");
    assert_eq!(server.stats().throttled, s.throttled);
    let want = answered as f64 / s.elapsed_s;
    assert!(
        (s.calls_per_s - want).abs() < 1e-6 * want,
        "calls_per_s is answered calls over the run: {} against {want}",
        s.calls_per_s
    );
}
