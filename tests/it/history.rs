//! Audit history: `run --discover --baseline` on the simulator's fleet a day later describes only what
//! changed, and its rows equal those of a full audit of the same moment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use fleet_audit::audit::baseline::BaselineSpec;
use fleet_audit::audit::config::{DescribeMode, Input, Scope};
use fleet_audit::audit::error::RunError;
use fleet_audit::audit::run::run;
use fleet_audit::sim::{Fleet, FleetSpec, Operation, SimServer};

use crate::common::*;

const DAY_MS: u64 = 86_400_000;

/// A fleet at `NOW_MS` and the same fleet a day later.
fn fleets(things: u64, jobs: u32, seed: u64) -> (FleetSpec, FleetSpec) {
    let mut day0 = fleet(things, jobs, seed);
    day0.active_share = Some(0.2);
    day0.changed_share = Some(0.05);
    let mut day1 = day0.clone();
    day1.epoch_ms = Some(day0.now_ms);
    day1.now_ms = day0.now_ms + DAY_MS;
    (day0, day1)
}

fn discovery(
    server: &SimServer,
    jobs: &Path,
    out: &Path,
    baseline: Option<&Path>,
) -> fleet_audit::audit::config::RunConfig {
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::Jobs(jobs.to_path_buf()),
        DescribeMode::Active,
        out,
    );
    if let Input::Discover(spec) = &mut rc.input {
        spec.baseline = baseline.map(|b| BaselineSpec::Path(b.to_path_buf()));
    }
    rc
}

/// What must be described a day later: executions active now that are new or changed since.
fn expected(day0: &FleetSpec, day1: &FleetSpec) -> (u64, u64) {
    let (a, b) = (Fleet::new(day0.clone()), Fleet::new(day1.clone()));
    let (mut describes, mut unchanged) = (0, 0);
    for i in 0..day1.things {
        for j in 0..day1.jobs {
            let Some(now) = b.execution(i, j) else {
                continue;
            };
            let same = a.execution(i, j).is_some_and(|then| {
                (then.status, then.last_updated_at_ms, then.execution_number)
                    == (now.status, now.last_updated_at_ms, now.execution_number)
            });
            unchanged += u64::from(same);
            describes += u64::from(!same && matches!(now.status, "QUEUED" | "IN_PROGRESS"));
        }
    }
    (describes, unchanged)
}

/// Rows by pair, without what differs between an incremental and a full audit of one moment.
fn comparable(rows: &[ReadRow]) -> HashMap<(String, String), ReadRow> {
    let mut m = contents(rows);
    for r in m.values_mut() {
        r.source = String::new();
        r.carried_from = None;
    }
    m
}

fn run_id_of(rows: &[ReadRow]) -> String {
    rows[0].run_id.clone().unwrap()
}

struct Day {
    dir: tempfile::TempDir,
    jobs: PathBuf,
    baseline: PathBuf,
    baseline_run: String,
    day0: FleetSpec,
    day1: FleetSpec,
}

/// Audits day 0 (the baseline) on its own simulator.
async fn day0(things: u64, jobs: u32, seed: u64) -> Day {
    let (day0, day1) = fleets(things, jobs, seed);
    let s0 = start(sim_config(day0.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&s0, dir.path());
    let baseline = dir.path().join("day0");
    run(discovery(&s0, &jobs, &baseline, None), no_shutdown())
        .await
        .unwrap();
    let baseline_run = run_id_of(&read_rows(&baseline));
    Day {
        dir,
        jobs,
        baseline,
        baseline_run,
        day0,
        day1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_audit_describes_only_what_changed_and_equals_a_full_one() {
    let d = day0(3_000, 4, 77).await;
    let s1 = start(sim_config(d.day1.clone())).await;
    let full = d.dir.path().join("full1");
    run(discovery(&s1, &d.jobs, &full, None), no_shutdown())
        .await
        .unwrap();
    s1.simulator().reset_stats();

    let inc = d.dir.path().join("inc1");
    let s = run(
        discovery(&s1, &d.jobs, &inc, Some(&d.baseline)),
        no_shutdown(),
    )
    .await
    .unwrap();
    let (describes, unchanged) = expected(&d.day0, &d.day1);
    assert!(
        describes > 100 && unchanged > 1_000,
        "{describes} {unchanged}"
    );
    let stats = s1.simulator().stats();
    assert_eq!(stats.calls(Operation::DescribeJobExecution), describes);
    assert_eq!(s.attempts, describes);
    assert_eq!(s.carried, unchanged);
    assert!(s.describes_saved > 0 && s.describes_saved < unchanged);

    let (rows, reference) = (read_rows(&inc), read_rows(&full));
    assert_eq!(comparable(&rows), comparable(&reference));
    let carried: Vec<&ReadRow> = rows.iter().filter(|r| r.source == "carried").collect();
    assert_eq!(carried.len() as u64, unchanged);
    for r in &carried {
        assert_eq!(r.carried_from.as_deref(), Some(d.baseline_run.as_str()));
        assert_eq!(r.attempts, 0);
    }
    for r in rows.iter().filter(|r| r.source != "carried") {
        assert_eq!(r.carried_from, None, "{r:?}");
    }
    // Carried rows of active executions keep what DescribeJobExecution said the day before.
    assert!(carried
        .iter()
        .any(|r| r.status.as_deref() == Some("QUEUED") && r.version_number.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_incremental_audit_resumes_to_the_same_rows() {
    let d = day0(2_000, 3, 78).await;
    let s1 = start(sim_config(d.day1.clone())).await;
    let full = d.dir.path().join("full1");
    run(discovery(&s1, &d.jobs, &full, None), no_shutdown())
        .await
        .unwrap();
    s1.simulator().reset_stats();
    let inc = d.dir.path().join("inc1");
    let rc = discovery(&s1, &d.jobs, &inc, Some(&d.baseline));
    run_interrupted_then_resumed(rc, &s1, Operation::DescribeJobExecution, 20, &inc).await;
    assert_eq!(comparable(&read_rows(&inc)), comparable(&read_rows(&full)));
}

/// Writes `batches` as one Parquet file.
fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batches[0].schema(), None).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

fn batches(path: &Path) -> Vec<RecordBatch> {
    fleet_audit::dataset::read_dataset(path, 4096)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The batches with column `name` replaced (`Some`) or dropped (`None`).
fn with_column(batches: &[RecordBatch], name: &str, value: Option<&str>) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let mut fields = Vec::new();
            let mut cols: Vec<ArrayRef> = Vec::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                if f.name() != name {
                    fields.push(f.as_ref().clone());
                    cols.push(c.clone());
                } else if let Some(v) = value {
                    fields.push(f.as_ref().clone());
                    cols.push(Arc::new(StringArray::from(vec![v; b.num_rows()])));
                }
            }
            RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_baseline_stops_the_run_before_any_call() {
    let d = day0(500, 2, 79).await;
    let s1 = start(sim_config(d.day1.clone())).await;
    let base = batches(&d.baseline);
    let dir = d.dir.path();

    let v1 = dir.join("v1.parquet");
    write_parquet(&v1, &with_column(&base, "carried_from", None));
    let other_region = dir.join("eu.parquet");
    write_parquet(
        &other_region,
        &with_column(&base, "region", Some("eu-west-1")),
    );
    let other_account = dir.join("account.parquet");
    write_parquet(
        &other_account,
        &with_column(&base, "account_id", Some("999999999999")),
    );
    let foreign = dir.join("foreign.parquet");
    let x: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    write_parquet(&foreign, &[RecordBatch::try_from_iter([("x", x)]).unwrap()]);
    // Two audits in one folder without a manifest: which one is the baseline?
    let two = dir.join("two");
    std::fs::create_dir(&two).unwrap();
    write_parquet(&two.join("part-a.parquet"), &base);
    write_parquet(
        &two.join("part-b.parquet"),
        &with_column(&base, "run_id", Some("1700000000-abcdef")),
    );

    let cases: [(&Path, &str); 6] = [
        (&dir.join("missing"), "cannot be read"),
        (&v1, "schema version 1"),
        (&other_region, "region eu-west-1"),
        (&other_account, "account 999999999999"),
        (
            &foreign,
            "not a fleet-audit dataset: it lacks the carried_from column",
        ),
        (&two, "holds several audits: "),
    ];
    for (i, (baseline, want)) in cases.into_iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        let err = run(discovery(&s1, &d.jobs, &out, Some(baseline)), no_shutdown())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RunError::Baseline(_)), "{text}");
        assert!(text.contains(want), "{want:?} not in {text:?}");
        assert!(text.contains(&baseline.display().to_string()), "{text}");
        assert_eq!(s1.simulator().stats().total_calls(), 0, "{text}");
        assert!(!out.exists(), "{text}");
    }
}

/// The UTC date before `date`, a date of the last few days.
fn day_before(date: &str) -> String {
    let now = fleet_audit::time::now_ms();
    (0..3)
        .map(|k| now - k * DAY_MS as i64)
        .find(|ms| fleet_audit::time::utc_date(*ms) == date)
        .map(|ms| fleet_audit::time::utc_date(ms - DAY_MS as i64))
        .unwrap_or_else(|| panic!("{date} is not a date of the last days"))
}

/// Makes the audit in the dated output `out` the one a run of the day before left (the day before
/// its own date, whatever the date is now).
fn as_if_yesterday(out: &Path) -> String {
    use fleet_audit::dataset::Manifest;
    let mut m = Manifest::load(out).unwrap().unwrap();
    let today = m.date.clone().unwrap();
    let yesterday = day_before(&today);
    std::fs::rename(
        out.join(format!("date={today}")),
        out.join(format!("date={yesterday}")),
    )
    .unwrap();
    for p in &mut m.parts {
        p.file = p
            .file
            .replace(&format!("date={today}/"), &format!("date={yesterday}/"));
    }
    m.date = Some(yesterday.clone());
    m.store(out).unwrap();
    yesterday
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dated_output_keeps_one_audit_a_day_and_latest_is_the_day_before() {
    use fleet_audit::dataset::{Manifest, PartitionKey};
    let (day0, day1) = fleets(2_000, 3, 80);
    let s0 = start(sim_config(day0.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&s0, dir.path());
    let out = dir.path().join("audit");
    let dated = |server: &SimServer, baseline: Option<BaselineSpec>| {
        let mut rc = discovery(server, &jobs, &out, None);
        rc.output.partition_by = vec![PartitionKey::Date, PartitionKey::JobId];
        if let Input::Discover(spec) = &mut rc.input {
            spec.baseline = baseline;
        }
        rc
    };
    // With no audit under --out yet, latest has nothing to read: the first audit is a full one.
    let first = run(dated(&s0, Some(BaselineSpec::Latest)), no_shutdown())
        .await
        .unwrap();
    assert_eq!((first.carried, first.baseline.clone()), (0, None));
    assert!(first.complete);
    let day0_run = run_id_of(&read_rows(&out));
    let yesterday = as_if_yesterday(&out);

    let s1 = start(sim_config(day1.clone())).await;
    // The audit is dated by the UTC day it ran on: the date before it or the date after it (a run
    // across midnight may carry either).
    let date_before = fleet_audit::time::utc_date(fleet_audit::time::now_ms());
    let s = run(dated(&s1, Some(BaselineSpec::Latest)), no_shutdown())
        .await
        .unwrap();
    let date_after = fleet_audit::time::utc_date(fleet_audit::time::now_ms());
    let (describes, unchanged) = expected(&day0, &day1);
    assert_eq!(
        s1.simulator()
            .stats()
            .calls(Operation::DescribeJobExecution),
        describes
    );
    assert_eq!(s.carried, unchanged);
    let rows = read_rows(&out);
    assert!(rows
        .iter()
        .filter(|r| r.source == "carried")
        .all(|r| r.carried_from.as_deref() == Some(day0_run.as_str())));
    let m = Manifest::load(&out).unwrap().unwrap();
    let today = m.date.clone().unwrap();
    assert!(
        today == date_before || today == date_after,
        "dated {today}, run between {date_before} and {date_after}"
    );
    assert_ne!(today, yesterday);
    assert_eq!(m.earlier.len(), 1);
    assert_eq!(m.earlier[0].date.as_deref(), Some(yesterday.as_str()));
    assert!(out.join(format!("date={yesterday}")).is_dir());
    // The dataset's readers read the latest audit: today's rows, once each.
    assert_eq!(rows.len() as u64, s.pairs);
    assert!(m
        .parts
        .iter()
        .all(|p| p.file.starts_with(&format!("date={today}/"))));

    // The trend: one point an audit, oldest first, each counting that audit's rows.
    let trend =
        fleet_audit::report::trend_of(&out, &fleet_audit::report::Thresholds::default()).unwrap();
    let dates: Vec<_> = trend.iter().map(|p| p.date.clone().unwrap()).collect();
    assert_eq!(dates, [yesterday.clone(), today.clone()]);
    for p in &trend {
        let rows = read_rows(&out.join(format!("date={}", p.date.as_deref().unwrap())));
        let timed_out = rows
            .iter()
            .filter(|r| r.status.as_deref() == Some("TIMED_OUT"));
        assert_eq!(p.totals.total, rows.len() as u64);
        assert_eq!(
            p.totals.count(fleet_audit::report::Class::TimedOut),
            timed_out.count() as u64
        );
    }
    assert_eq!(trend[0].run_id.as_deref(), Some(day0_run.as_str()));

    // A second audit the same day is refused; --resume finds it complete; --overwrite replaces it
    // and keeps the day before.
    let err = run(dated(&s1, None), no_shutdown()).await.unwrap_err();
    assert!(
        err.to_string().contains("already holds the audit of"),
        "{err}"
    );
    let mut rc = dated(&s1, None);
    rc.output.resume = true;
    assert!(run(rc, no_shutdown()).await.unwrap().complete);
    let mut rc = dated(&s1, None);
    rc.output.overwrite = true;
    let replaced = run(rc, no_shutdown()).await.unwrap();
    assert!(replaced.complete);
    assert_eq!(replaced.carried, 0, "no baseline: nothing carried");
    let m2 = Manifest::load(&out).unwrap().unwrap();
    assert!(m2.complete);
    assert_eq!(m2.earlier, m.earlier);
    assert!(m2.earlier[0]
        .parts
        .iter()
        .all(|p| out.join(&p.file).is_file()));
    // The replaced audit holds the listing's executions again, each once, none carried (a check
    // over no rows would pass whatever happened).
    let rows = read_rows(&out);
    assert!(!rows.is_empty());
    assert_eq!(rows.len() as u64, replaced.pairs);
    assert_eq!(rows.len(), by_key(&rows).len(), "each pair once");
    assert!(rows.iter().all(|r| r.source != "carried"));

    // latest needs a dated output.
    let mut rc = discovery(&s1, &jobs, &dir.path().join("flat"), None);
    if let Input::Discover(spec) = &mut rc.input {
        spec.baseline = Some(BaselineSpec::Latest);
    }
    let err = run(rc, no_shutdown()).await.unwrap_err();
    assert!(matches!(err, RunError::Baseline(_)), "{err}");
}
