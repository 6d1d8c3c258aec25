//! `run --discover` against the simulator: few calls per execution, rows equal to a describe-everything
//! run, pagination across pages and across a resume.

use std::collections::HashMap;

use crate::common::*;
use fleet_audit::audit::config::Input;
use fleet_audit::audit::config::{DescribeMode, Scope};
use fleet_audit::audit::run::run;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

fn by_pair(rows: Vec<ReadRow>) -> HashMap<(String, String), ReadRow> {
    let mut m = HashMap::new();
    for r in rows {
        let k = (r.thing_name.clone(), r.job_id.clone());
        assert!(m.insert(k, r).is_none(), "a pair twice");
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_makes_few_calls_and_matches_describe_everything() {
    let mut spec = fleet(3_000, 4, 41);
    spec.active_share = Some(0.1);
    let server = start(sim_config(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());

    // Describe everything: the reference.
    let full = dir.path().join("full.parquet");
    run(
        run_config(
            &server.endpoint_url(),
            InputSpec::Lists {
                things,
                jobs: jobs.clone(),
            },
            &full,
        ),
        no_shutdown(),
    )
    .await
    .unwrap();
    let reference: HashMap<_, _> = by_pair(read_rows(&full))
        .into_iter()
        .filter(|(_, r)| r.outcome == "ok")
        .collect();
    server.simulator().reset_stats();

    // Discover with --describe active.
    let out = dir.path().join("disc");
    let s = run(
        discover_config(
            &server.endpoint_url(),
            Scope::Jobs(jobs),
            DescribeMode::Active,
            &out,
        ),
        no_shutdown(),
    )
    .await
    .unwrap();
    let rows = by_pair(read_rows(&out));
    assert_eq!(rows.len(), reference.len(), "every execution once");
    assert_eq!(s.pairs as usize, reference.len());
    let mut active = 0;
    for (k, r) in &rows {
        let want = &reference[k];
        // The columns every list summary provides.
        assert_eq!(r.status, want.status, "{k:?}");
        assert_eq!(r.queued_at, want.queued_at, "{k:?}");
        assert_eq!(r.started_at, want.started_at, "{k:?}");
        assert_eq!(r.last_updated_at, want.last_updated_at, "{k:?}");
        assert_eq!(r.execution_number, want.execution_number, "{k:?}");
        assert_eq!(r.thing_arn, want.thing_arn, "{k:?}");
        assert_eq!(r.outcome, "ok");
        assert!(
            r.retry_attempt.is_some(),
            "list summaries carry retryAttempt"
        );
        if matches!(r.status.as_deref(), Some("QUEUED" | "IN_PROGRESS")) {
            active += 1;
            // Active executions are described: every column equals the reference.
            assert_eq!(r.source, "describe");
            assert_eq!(r.force_canceled, want.force_canceled, "{k:?}");
            assert_eq!(r.status_details, want.status_details, "{k:?}");
            assert_eq!(r.version_number, want.version_number, "{k:?}");
            assert_eq!(
                r.approximate_seconds_before_timed_out,
                want.approximate_seconds_before_timed_out
            );
        } else {
            assert_eq!(r.source, "list");
            assert_eq!(r.version_number, None, "the list does not give it");
            assert_eq!(r.status_details, None);
        }
    }
    let stats = server.stats();
    assert_eq!(stats.calls(Operation::DescribeJobExecution), active);
    let calls = stats.total_calls() as f64;
    let per_execution = calls / rows.len() as f64;
    assert!(
        per_execution <= 0.15,
        "{per_execution} calls per execution ({stats:?})"
    );
    // Many pages per job: 250 per page.
    assert!(stats.calls(Operation::ListJobExecutionsForJob) >= (rows.len() as u64).div_ceil(250));
    assert_eq!(
        s.list_calls,
        stats.calls(Operation::ListJobExecutionsForJob) + 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_of_100k_executions_costs_at_most_015_calls_each() {
    let mut spec = fleet(29_000, 5, 8);
    spec.active_share = Some(0.1);
    let server = start(sim_config(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disc");
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::AllJobs { status: None },
        DescribeMode::Active,
        &out,
    );
    rc.engine.concurrency = 64;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.pairs >= 100_000, "{}", s.pairs);
    let stats = server.stats();
    let per = stats.total_calls() as f64 / s.pairs as f64;
    assert!(per <= 0.15, "{per} calls per execution: {stats:?}");
    assert_eq!(stats.calls(Operation::ListJobs), 1);
    assert_eq!(stats.calls(Operation::DescribeJob), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_resumes_in_the_middle_of_a_jobs_listing() {
    let server = start_paced(fleet(4_000, 2, 17)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&server, dir.path());
    let out = dir.path().join("disc");
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::Jobs(jobs.clone()),
        DescribeMode::Active,
        &out,
    );
    rc.output.part_rows = 200;
    rc.engine.concurrency = 4;
    // Stop after a few pages of the first job.
    run_interrupted_then_resumed(rc, &server, Operation::ListJobExecutionsForJob, 4, &out).await;
    let rows = by_pair(read_rows(&out));
    let fleet = server.simulator().fleet();
    let expected: usize = (0..4_000)
        .map(|i| (0..2).filter(|&j| fleet.execution(i, j).is_some()).count())
        .sum();
    assert_eq!(
        rows.len(),
        expected,
        "every execution exactly once across the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_by_thing_and_dry_run() {
    let server = start(sim_config(fleet(300, 6, 23))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, _) = lists(&server, dir.path());
    let out = dir.path().join("by-thing.parquet");
    let s = run(
        discover_config(
            &server.endpoint_url(),
            Scope::Things(things),
            DescribeMode::None,
            &out,
        ),
        no_shutdown(),
    )
    .await
    .unwrap();
    let rows = read_rows(&out);
    let fleet = server.simulator().fleet();
    let expected: usize = (0..300)
        .map(|i| (0..6).filter(|&j| fleet.execution(i, j).is_some()).count())
        .sum();
    assert_eq!(rows.len(), expected);
    assert_eq!(s.pairs as usize, expected);
    assert!(rows
        .iter()
        .all(|r| r.source == "list" && r.thing_arn.is_none()));
    assert_eq!(
        server.stats().calls(Operation::ListJobExecutionsForThing),
        300
    );
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 0);

    // A dry run makes only the plan's calls and writes nothing.
    server.simulator().reset_stats();
    let out = dir.path().join("dry");
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::AllJobs { status: None },
        DescribeMode::Active,
        &out,
    );
    if let Input::Discover(d) = &mut rc.input {
        d.dry_run = true;
    }
    let s = run(rc, no_shutdown()).await.unwrap();
    let stats = server.stats();
    assert_eq!(stats.calls(Operation::ListJobs), 1);
    assert_eq!(stats.calls(Operation::DescribeJob), 6);
    assert_eq!(stats.total_calls(), 7);
    assert_eq!(
        s.pairs as usize, expected,
        "the plan counts every execution"
    );
    assert!(!out.exists());
}
