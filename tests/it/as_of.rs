//! Issue 23, items 4, 8 and 9: the daily command on the simulator, as of its day (`--as-of`):
//! two audits a day apart, each dated by the simulator's day, with ages on its clock; a retry after
//! a complete audit makes no call (not even STS or a listing) and keeps the audit's metrics.

use std::path::Path;

use crate::common::*;
use fleet_audit::dataset::Manifest;
use fleet_audit::time::utc_date;

const DAY_S: u64 = 86_400;

/// The daily command of "Scheduled audits" (docs/history.md) against the simulator at `url`, as of
/// `as_of` (epoch seconds), not quiet: its exit code and stderr.
async fn daily(cwd: &Path, url: &str, as_of: u64, metrics: &str) -> (Option<i32>, String) {
    let mut c = isolated_binary(cwd);
    c.args([
        "run",
        "--discover",
        "--jobs",
        "jobs.txt",
        "--out",
        "audit",
        "--partition-by",
        "date",
        "--baseline",
        "latest",
        "--resume",
        "--metrics",
        metrics,
        "--endpoint-url",
        url,
        "--rps",
        "0",
        "--list-rps",
        "0",
        "--as-of",
        &as_of.to_string(),
    ])
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDTESTS")
    .env("AWS_SECRET_ACCESS_KEY", "tests-secret")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    wait_or_kill(
        c.spawn().unwrap(),
        Some(std::time::Duration::from_secs(120)),
    )
    .await
}

/// The metric lines of a Prometheus text file (comments and help left out), without the two that
/// hold a time: the run's duration and its time of success.
fn series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            !l.starts_with("fleet_audit_run_duration_seconds")
                && !l.starts_with("fleet_audit_last_success")
        })
        .collect()
}

fn value_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_a_day_apart_on_the_simulator_and_a_retry_that_keeps_the_metrics() {
    let d = tempfile::tempdir().unwrap();
    let now_s = NOW_MS / 1000;
    let day1 = fleet(300, 3, 8);
    let mut day2 = day1.clone();
    day2.epoch_ms = Some(NOW_MS);
    day2.now_ms = NOW_MS + DAY_S * 1000;

    // Day 1: the simulator's fleet is a year behind this machine's clock; the audit is of its day.
    let sim1 = start(sim_config(day1)).await;
    lists(&sim1, d.path());
    let (code, err) = daily(d.path(), &sim1.endpoint_url(), now_s, "m1.prom").await;
    assert_eq!(code, Some(0), "{err}");
    let first_day = utc_date(NOW_MS as i64);
    let out = d.path().join("audit");
    assert!(out.join(format!("date={first_day}")).is_dir(), "{err}");
    let rows = read_rows(&out);
    assert!(!rows.is_empty());
    for r in &rows {
        let at = r.fetched_at as u64;
        assert!(
            (NOW_MS..NOW_MS + 120_000).contains(&at),
            "fetched_at {at} is not the simulator's day"
        );
    }
    drop(sim1);

    // Day 2: the same fleet a day later; the run prints what it did, and a second audit is dated.
    let sim2 = start(sim_config(day2)).await;
    let url = sim2.endpoint_url();
    let (code, err) = daily(d.path(), &url, now_s + DAY_S, "m2.prom").await;
    assert_eq!(code, Some(0), "{err}");
    let second_day = utc_date((NOW_MS + DAY_S * 1000) as i64);
    let m = Manifest::load(&out).unwrap().unwrap();
    assert!(m.complete);
    assert_eq!(m.date.as_deref(), Some(second_day.as_str()));
    assert_eq!(m.earlier.len(), 1, "the first day's audit is kept");
    let pairs = m.committed.len();
    assert!(
        err.contains(&format!(
            "{} pairs:",
            fleet_audit::audit::summary::thousands(pairs)
        )) && err.contains(&format!("to audit/date={second_day}/")),
        "the second day's command says what it did: {err}"
    );
    assert!(
        err.contains(&format!("the audit of {first_day}")),
        "and which baseline it used: {err}"
    );

    // A run dated before the last audit would make a second audit of a date: refused.
    let (code, err) = daily(d.path(), &url, now_s, "back.prom").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "holds an audit of {second_day}, later than this run's date {first_day}"
        )),
        "{err}"
    );

    // The retry of a complete audit: no call at all, and the same metrics.
    let calls = sim2.stats();
    let (code, retry_err) = daily(d.path(), &url, now_s + DAY_S, "m3.prom").await;
    assert_eq!(code, Some(0), "{retry_err}");
    let after = sim2.stats();
    assert_eq!(after.total_calls(), calls.total_calls(), "no IoT call");
    assert_eq!(after.sts, calls.sts, "no STS call");
    let by = m
        .completed
        .as_ref()
        .expect("the manifest names the run that completed it");
    assert!(
        retry_err.contains(&format!(
            "already complete: {} pairs, completed by run {}",
            fleet_audit::audit::summary::thousands(pairs),
            by.run_id
        )) && retry_err.contains("this run made no call"),
        "{retry_err}"
    );
    assert_eq!(Manifest::load(&out).unwrap().unwrap(), m, "nothing written");
    let m2 = std::fs::read_to_string(d.path().join("m2.prom")).unwrap();
    let m3 = std::fs::read_to_string(d.path().join("m3.prom")).unwrap();
    assert_eq!(series(&m3), series(&m2), "the audit's figures are kept");
    assert!(
        m3.contains("found the audit already complete and made no call"),
        "and the file says whose they are:\n{m3}"
    );
    assert_eq!(
        value_of(&m3, "fleet_audit_last_success_timestamp_seconds")
            .parse::<f64>()
            .unwrap(),
        by.at_ms as f64 / 1000.0,
        "the time of success stays the audit's"
    );
    // Zero counts are series too: every status of every job, every change of every job.
    let executions = series(&m3)
        .into_iter()
        .filter(|l| l.starts_with("fleet_audit_executions{job_id=\"job-000\""))
        .count();
    assert_eq!(executions, 8, "{m3}");
    let changes = series(&m3)
        .into_iter()
        .filter(|l| l.starts_with("fleet_audit_changes{"))
        .count();
    assert_eq!(changes, 3 * 9, "nine changes for each of the 3 jobs:\n{m3}");

    // Nor does it connect: the simulator gone, the retry still ends at once.
    drop(sim2);
    let (code, err) = daily(d.path(), "http://127.0.0.1:9", now_s + DAY_S, "m4.prom").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("already complete"), "{err}");
}

/// A day whose run commits nothing (its endpoint never answers) leaves an audit never started; the
/// next day's run takes its place under its own date, so no day's rows are filed under another's,
/// and the earlier complete audit stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_that_committed_nothing_is_replaced_by_the_next_days_audit() {
    let d = tempfile::tempdir().unwrap();
    let now_s = NOW_MS / 1000;
    let day1 = fleet(60, 2, 9);
    let mut day3 = day1.clone();
    day3.epoch_ms = Some(NOW_MS);
    day3.now_ms = NOW_MS + 2 * DAY_S * 1000;
    let sim1 = start(sim_config(day1)).await;
    lists(&sim1, d.path());
    let (code, err) = daily(d.path(), &sim1.endpoint_url(), now_s, "m1.prom").await;
    assert_eq!(code, Some(0), "{err}");
    drop(sim1);
    let out = d.path().join("audit");
    let first_day = utc_date(NOW_MS as i64);

    // Day 2: nobody answers; nothing is committed.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = daily(d.path(), &dead, now_s + DAY_S, "m2.prom").await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    let second_day = utc_date((NOW_MS + DAY_S * 1000) as i64);

    // Day 3: its own audit, dated by its day; day 2 left no audit behind.
    let sim3 = start(sim_config(day3)).await;
    let (code, err) = daily(d.path(), &sim3.endpoint_url(), now_s + 2 * DAY_S, "m3.prom").await;
    assert_eq!(code, Some(0), "{err}");
    let third_day = utc_date((NOW_MS + 2 * DAY_S * 1000) as i64);
    let m = Manifest::load(&out).unwrap().unwrap();
    assert!(m.complete, "{err}");
    assert_eq!(m.date.as_deref(), Some(third_day.as_str()), "{err}");
    let earlier: Vec<Option<&str>> = m.earlier.iter().map(|e| e.date.as_deref()).collect();
    assert_eq!(earlier, [Some(first_day.as_str())], "{err}");
    assert!(out.join(format!("date={third_day}")).is_dir(), "{err}");
    assert!(!out.join(format!("date={second_day}")).exists(), "{err}");
}

#[tokio::test]
async fn as_of_is_refused_unless_the_endpoint_is_a_simulator() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("jobs.txt"), "job-1\n").unwrap();
    let refused = |args: &'static [&'static str], why: &'static str| {
        let cwd = d.path().to_path_buf();
        async move {
            let mut c = isolated_binary(&cwd);
            c.args(["run", "--discover", "--jobs", "jobs.txt", "--out", "audit"])
                .args(args)
                .args(["--as-of", "1764400000"])
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "AKIDTESTS")
                .env("AWS_SECRET_ACCESS_KEY", "tests-secret")
                .stderr(std::process::Stdio::piped());
            let (code, err) = wait_or_kill(c.spawn().unwrap(), None).await;
            assert_eq!(code, Some(2), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(!cwd.join("audit").exists(), "nothing written");
        }
    };
    refused(&[], "give its --endpoint-url").await;
    refused(
        &["--endpoint-url", "https://iot.us-east-1.amazonaws.com"],
        "https://iot.us-east-1.amazonaws.com is AWS's endpoint",
    )
    .await;
    refused(
        &[
            "--region-endpoint",
            "eu-west-1=https://IOT.eu-west-1.amazonaws.com:443/",
        ],
        "is AWS's endpoint",
    )
    .await;
}
