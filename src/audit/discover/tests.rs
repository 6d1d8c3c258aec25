//! Discovery on the fakes under tokio's paused clock: the listing, the describes it asks for, the
//! limiter and the retries, without a wire or a simulator (`tests/it/discover.rs` has those).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, StringArray};

use crate::audit::config::{DescribeMode, DiscoverSpec, Input, RunConfig, Scope};
use crate::aws::call::EngineSettings;
use crate::aws::client::fake::FakeFleet;
use crate::aws::client::faulty::Faulty;
use crate::aws::retry::Backoff;
use crate::aws::targets::{Origin, PendingTarget, TargetClient};
use crate::dataset::{Format, Layout};

/// 5 things x 2 jobs, every status an execution can be listed in; `thing-4` has no `job-b`.
fn fleet() -> FakeFleet {
    let statuses = ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT"];
    let mut f = FakeFleet::new().page(2);
    for (i, s) in statuses.iter().enumerate() {
        f = f.with(&format!("thing-{i}"), "job-a", s);
        if i < 4 {
            f = f.with(&format!("thing-{i}"), "job-b", statuses[(i + 1) % 5]);
        }
    }
    f
}

fn config(out: &Path, describe: DescribeMode) -> RunConfig {
    RunConfig {
        input: Input::Discover(DiscoverSpec {
            scope: Scope::AllJobs { status: None },
            execution_status: None,
            describe,
            list_rps: Some(10.0),
            dry_run: false,
            baseline: None,
        }),
        output: crate::audit::config::OutputSettings {
            layout: Layout::Dir(out.to_path_buf()),
            format: Format::Parquet,
            overwrite: false,
            resume: false,
            part_rows: 1_000_000,
            part_interval: Duration::from_secs(300),
            partition_by: Vec::new(),
            lock_lease: Duration::from_secs(60),
            delta: false,
        },
        targets: crate::audit::config::TargetSettings {
            client: Default::default(),
            flags: Default::default(),
            max_in_flight: 4,
        },
        rate: crate::audit::config::RateSettings {
            rps: Some(10.0),
            burst: None,
            adaptive: true,
        },
        engine: EngineSettings {
            concurrency: 4,
            max_attempts: 5,
            call_timeout: Duration::from_secs(5),
            backoff: Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_secs(1),
            },
        },
        shard: None,
        quiet: true,
        summary_json: None,
        as_of_ms: None,
        retry_errors: false,
        context: crate::audit::context::ContextSettings::none(),
    }
}

fn target<C: Send + Sync + 'static>(client: C) -> PendingTarget<C> {
    PendingTarget::ready(TargetClient {
        label: "fake".into(),
        client: Arc::new(client),
        origin: Arc::new(Origin {
            region: Some("us-east-1".into()),
            account_id: Some("123456789012".into()),
        }),
    })
}

/// (thing, job) -> (status, source) of every row of the dataset at `out`.
fn rows(out: &Path) -> BTreeMap<(String, String), (String, String)> {
    let mut rows = BTreeMap::new();
    for b in crate::dataset::read::read_dataset(out, 1024).unwrap() {
        let b = b.unwrap();
        let col = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (t, j, s, src) = (
            col("thing_name"),
            col("job_id"),
            col("status"),
            col("source"),
        );
        for i in 0..b.num_rows() {
            let status = if s.is_null(i) { "" } else { s.value(i) };
            let key = (t.value(i).to_string(), j.value(i).to_string());
            assert!(
                rows.insert(key, (status.to_string(), src.value(i).to_string()))
                    .is_none(),
                "a pair written twice"
            );
        }
    }
    rows
}

async fn discover<C>(cfg: RunConfig, client: C) -> crate::audit::summary::Summary
where
    C: crate::aws::client::FleetClient
        + crate::aws::client::FleetLister
        + crate::aws::client::FleetContext,
{
    let Input::Discover(spec) = cfg.input.clone() else {
        unreachable!()
    };
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    // The output's lock, as `run` takes it before any call: the writer checks it is still ours.
    let run_id = crate::dataset::new_run_id();
    let lock = crate::dataset::OutputLock::local(
        cfg.output.layout.path(),
        &crate::dataset::Holder::me(&run_id),
    )
    .unwrap();
    let dir = crate::dataset::OutputDir::local(&cfg.output.layout);
    let s = super::run_discover_targets(
        cfg,
        crate::audit::output::RunOutput { run_id, dir },
        spec,
        None,
        vec![target(client)],
        None,
        shutdown,
    )
    .await
    .unwrap();
    lock.release().await;
    s
}

#[tokio::test(start_paused = true)]
async fn every_listed_execution_is_a_row_and_only_active_ones_are_described() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("audit");
    let s = discover(config(&out, DescribeMode::Active), fleet()).await;
    assert!(s.complete);
    let rows = rows(&out);
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert_eq!(s.pairs, 9);
    // QUEUED and IN_PROGRESS executions are described; the others are their list summary.
    for ((thing, job), (status, source)) in &rows {
        let active = status == "QUEUED" || status == "IN_PROGRESS";
        let want = if active { "describe" } else { "list" };
        assert_eq!(source, want, "{thing} {job} {status}");
    }
    let active = rows
        .values()
        .filter(|(s, _)| s == "QUEUED" || s == "IN_PROGRESS")
        .count() as u64;
    assert_eq!(
        active, 3,
        "job-a: thing-0 QUEUED, thing-1 IN_PROGRESS; job-b: thing-0 IN_PROGRESS"
    );
    assert_eq!(s.attempts, active, "one describe per active execution");
    // ListJobs: 1 page (2 jobs); DescribeJob: 2 (the plan's counts); ListJobExecutionsForJob:
    // job-a 5 executions = 3 pages, job-b 4 = 2 pages.
    assert_eq!(s.list_calls, 1 + 2 + 3 + 2);
}

#[tokio::test(start_paused = true)]
async fn a_quota_throttles_listings_and_describes_which_are_retried_to_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    let (calm, busy) = (d.path().join("calm"), d.path().join("busy"));
    let _ = discover(config(&calm, DescribeMode::All), fleet()).await;
    // One call a second with a bucket of 2: the run's own limiter (10/s) is faster, so the service
    // throttles; every call is retried until answered (paused time: the waits cost nothing).
    let client = Faulty::new(fleet()).quota(1.0, 2);
    let s = discover(config(&busy, DescribeMode::All), client).await;
    assert!(s.complete);
    assert!(s.throttled > 0, "{s:?}");
    assert_eq!(s.errors, 0);
    assert_eq!(rows(&busy), rows(&calm));
    assert!(rows(&busy).values().all(|(_, src)| src == "describe"));
}
