//! `--metrics FILE`: what a monitoring system reads of an audit, in Prometheus' text exposition
//! format (version 0.0.4), for node-exporter's textfile collector. The dataset's figures come from
//! the report (executions by job and status, each report class by job); a run adds its own (pairs by
//! outcome, calls by API, throttles, duration, the time of its last success). The file is written
//! aside and renamed, so the collector never reads half of it.

use std::fmt::Write as _;
use std::path::Path;

use crate::audit::summary::Summary;
use crate::input::names::JOB_EXECUTION_STATUSES;
use crate::redact::redact;
use crate::report::classify::{Cause, CAUSED};
use crate::report::{Class, Report};

/// One metric family being written: its `# HELP` and `# TYPE` lines come first.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the format asks: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of `report` (a dataset) and, after a run, of its `summary`; `now_s` is the time of
/// a run's success (epoch seconds).
pub(crate) fn exposition(report: Option<&Report>, run: Option<(&Summary, f64)>) -> String {
    let mut out = String::new();
    if let Some(r) = report {
        dataset_figures(&mut out, r);
    }
    if let Some((s, _)) = run.filter(|(s, _)| s.already_complete) {
        already_complete(&mut out, report, s);
    } else if let Some((s, now_s)) = run {
        run_figures(&mut out, s, now_s);
    }
    out
}

/// The dataset's figures: executions by job and status, each report class by job, and the changes
/// since a baseline when the report has them.
fn dataset_figures(out: &mut String, r: &Report) {
    family(
        out,
        "fleet_audit_executions",
        "gauge",
        "Executions in the audited dataset, by job and status.",
    );
    for j in &r.jobs {
        // Every AWS status, zeros included (an alert on a series that vanishes cannot tell 0
        // from missing), then any other value the dataset spells.
        let others = j
            .counts
            .by_status
            .keys()
            .map(String::as_str)
            .filter(|s| !JOB_EXECUTION_STATUSES.contains(s));
        for status in JOB_EXECUTION_STATUSES.into_iter().chain(others) {
            let _ = writeln!(
                out,
                "fleet_audit_executions{{job_id=\"{}\",status=\"{}\"}} {}",
                label(&j.job_id),
                label(status),
                j.counts.status(status)
            );
        }
    }
    family(
        out,
        "fleet_audit_stuck",
        "gauge",
        "Executions in each class of the report (stuck_queued, stale_in_progress, timed_out, near_timeout, waiting, not_found, errors), by job.",
    );
    for j in &r.jobs {
        for c in Class::ALL {
            let _ = writeln!(
                out,
                "fleet_audit_stuck{{job_id=\"{}\",class=\"{}\"}} {}",
                label(&j.job_id),
                c.as_str(),
                j.counts.count(c)
            );
        }
    }
    cause_figures(out, r);
    if let Some(ch) = &r.changes {
        family(
            out,
            "fleet_audit_changes",
            "gauge",
            "Changes since the baseline audit (new_stuck; of the executions stuck then: recovered, ended_timed_out, ended_failed, ended_canceled, ended_other, still_stuck; new_timed_out, new_failed), by job; zero counts included.",
        );
        for (job, counts) in &ch.jobs {
            for (change, n) in counts.named() {
                let _ = writeln!(
                    out,
                    "fleet_audit_changes{{job_id=\"{}\",change=\"{change}\"}} {n}",
                    label(job)
                );
            }
        }
    }
}

/// `fleet_audit_stuck_by_cause`: each job's stuck classes by cause, zeros included.
fn cause_figures(out: &mut String, r: &Report) {
    family(
        out,
        "fleet_audit_stuck_by_cause",
        "gauge",
        "Stuck executions (stuck_queued, stale_in_progress) by job and cause (device_offline, blocked, not_picked_up, no_progress, unknown); zero counts included.",
    );
    for j in &r.jobs {
        for class in CAUSED {
            for cause in Cause::ALL {
                let _ = writeln!(
                    out,
                    "fleet_audit_stuck_by_cause{{job_id=\"{}\",class=\"{}\",cause=\"{}\"}} {}",
                    label(&j.job_id),
                    class.as_str(),
                    cause.as_str(),
                    j.counts.cause_count(class, cause)
                );
            }
        }
    }
}

/// A run's own figures: pairs by outcome, calls by API, throttles, duration, and when it completed
/// its dataset the time of that success (`now_s`).
fn run_figures(out: &mut String, s: &Summary, now_s: f64) {
    pairs_figures(out, s.ok, s.not_found, s.errors);
    call_figures(
        out,
        &Calls {
            attempts: s.attempts,
            list_calls: s.list_calls,
            context_calls: s.context_calls,
            throttled: s.throttled,
            elapsed_s: s.elapsed_s,
            success_s: s.complete.then_some(now_s),
        },
    );
}

/// The run's figures of a run that found its audit already complete (a retry) and made no call: those
/// of the audit, which it keeps, not zeros and a new time of success (the families and their help are
/// the same; a comment line says whose figures they are). Pairs by outcome come from the
/// dataset's rows, calls, throttles, duration and the time of success from the run that completed it
/// (as the manifest records it; a manifest from before that record gives the pairs alone).
fn already_complete(out: &mut String, report: Option<&Report>, s: &Summary) {
    let by = s.completed_by.as_ref();
    let _ = writeln!(
        out,
        "# fleet-audit: run {} found the audit already complete and made no call; these are the figures of {} (the run that completed it)",
        s.run_id,
        by.map_or("the audit".to_string(), |c| format!("run {}", c.run_id))
    );
    if let Some(r) = report {
        let (nf, err) = (
            r.totals.count(Class::NotFound),
            r.totals.count(Class::Error),
        );
        pairs_figures(out, r.totals.total.saturating_sub(nf + err), nf, err);
    }
    let Some(c) = by else {
        return;
    };
    call_figures(
        out,
        &Calls {
            attempts: c.attempts,
            list_calls: c.list_calls,
            context_calls: c.context_calls,
            throttled: c.throttled,
            elapsed_s: c.elapsed_ms as f64 / 1000.0,
            success_s: Some(c.at_ms as f64 / 1000.0),
        },
    );
}

/// `fleet_audit_pairs_total` by outcome.
fn pairs_figures(out: &mut String, ok: u64, not_found: u64, errors: u64) {
    family(
        out,
        "fleet_audit_pairs_total",
        "counter",
        "Pairs this run audited, by outcome.",
    );
    for (outcome, n) in [("ok", ok), ("not_found", not_found), ("error", errors)] {
        let _ = writeln!(out, "fleet_audit_pairs_total{{outcome=\"{outcome}\"}} {n}");
    }
}

/// What a run's calls were: by API, throttled, how long, and when it completed its dataset.
struct Calls {
    attempts: u64,
    list_calls: u64,
    /// The context calls (`run --context`); 0 when not known.
    context_calls: u64,
    throttled: u64,
    elapsed_s: f64,
    /// When the run completed its dataset (epoch seconds); `None`: it did not.
    success_s: Option<f64>,
}

/// `fleet_audit_calls_total` by API, `fleet_audit_throttled_total`, the run's duration and, when it
/// completed its dataset, the time of that success.
fn call_figures(out: &mut String, c: &Calls) {
    family(
        out,
        "fleet_audit_calls_total",
        "counter",
        "API calls this run made (attempts, retries included), by API.",
    );
    let _ = writeln!(
        out,
        "fleet_audit_calls_total{{api=\"DescribeJobExecution\"}} {}",
        c.attempts
    );
    let _ = writeln!(
        out,
        "fleet_audit_calls_total{{api=\"list\"}} {}",
        c.list_calls
    );
    let _ = writeln!(
        out,
        "fleet_audit_calls_total{{api=\"context\"}} {}",
        c.context_calls
    );
    family(
        out,
        "fleet_audit_throttled_total",
        "counter",
        "Attempts of this run answered with ThrottlingException.",
    );
    let _ = writeln!(out, "fleet_audit_throttled_total {}", c.throttled);
    family(
        out,
        "fleet_audit_run_duration_seconds",
        "gauge",
        "How long this run took.",
    );
    let _ = writeln!(out, "fleet_audit_run_duration_seconds {}", c.elapsed_s);
    if let Some(at) = c.success_s {
        family(
            out,
            "fleet_audit_last_success_timestamp_seconds",
            "gauge",
            "When a run last completed its dataset (epoch seconds).",
        );
        let _ = writeln!(out, "fleet_audit_last_success_timestamp_seconds {at}");
    }
}

/// The metrics of a run (`summary`) and, when it completed, of its dataset at `dataset` (a path, or
/// an object store's URL read with `client`'s configuration), with the changes since the run's
/// baseline when it had one.
pub(crate) async fn of_run(
    summary: &Summary,
    dataset: &Path,
    client: &crate::aws::client::ClientSettings,
) -> String {
    let thresholds = crate::report::Thresholds::default();
    let report = if !summary.complete {
        None
    } else {
        let since =
            |baseline| crate::report::report_since(dataset, baseline, client, &thresholds, false);
        match since(summary.baseline.as_deref()).await {
            Ok(r) => Some(r),
            // A baseline that cannot be read now (a retry from another folder, a baseline since
            // removed) loses the changes, not the dataset's own figures.
            Err(_) if summary.baseline.is_some() => since(None).await.ok(),
            Err(_) => None,
        }
    };
    let now_s = crate::time::wall_ms() as f64 / 1000.0;
    exposition(report.as_ref(), Some((summary, now_s)))
}

/// Why a push to a Pushgateway failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// `--metrics-push` names no http(s) URL.
    #[error("{url} is not an http:// or https:// URL")]
    Url {
        /// The URL as given (its password redacted).
        url: String,
    },
    /// The Pushgateway could not be reached or refused the push.
    #[error("cannot push the metrics to {url}: {reason}")]
    Failed {
        /// The URL pushed to (its password redacted).
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The Pushgateway URL of job `fleet-audit` and a grouping: `…/metrics/job/fleet-audit/KEY@base64/…`
/// (each value base64url-encoded, as the Pushgateway reads it, so a path or an ARN needs no escaping).
pub(crate) fn push_url(base: &str, grouping: &[(&str, &str)]) -> Result<String, PushError> {
    use base64::Engine as _;
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(PushError::Url {
            url: redact(base).into_owned(),
        });
    }
    let mut url = format!("{}/metrics/job/fleet-audit", base.trim_end_matches('/'));
    for (k, v) in grouping {
        // An empty value is `=` in base64, which the Pushgateway reads as empty.
        let enc = base64::engine::general_purpose::URL_SAFE.encode(v.as_bytes());
        let enc = if enc.is_empty() { "=".to_string() } else { enc };
        url.push_str(&format!("/{k}@base64/{enc}"));
    }
    Ok(url)
}

/// Pushes `text` to the Pushgateway at `base`, replacing the group's metrics (HTTP PUT).
pub async fn push(base: &str, grouping: &[(&str, &str)], text: &str) -> Result<(), PushError> {
    let url = push_url(base, grouping)?;
    // The URL may carry a Pushgateway's basic-auth password (`http://user:password@host/`): it is
    // sent, never printed; reqwest's errors quote the URL too.
    let failed = |reason: String| PushError::Failed {
        url: redact(base).into_owned(),
        reason: redact(&reason).into_owned(),
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let answer = client
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(text.to_string())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        return Err(failed(format!("HTTP {status}: {}", body.trim())));
    }
    Ok(())
}

/// Pushes, and turns a failure into a warning on stderr: metrics never fail an audit.
pub(crate) async fn push_or_warn(base: &str, grouping: &[(&str, &str)], text: &str) {
    if let Err(e) = push(base, grouping, text).await {
        eprintln!("fleet-audit: warning: {e}");
    }
}

/// Writes `text` to `path` atomically: a hidden temporary beside it, synced, then renamed.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut b = tempfile::Builder::new();
    b.prefix(".fleet-audit-metrics-");
    // Readable as the umask allows (0644 under 022), like any file a program writes: a
    // node_exporter running as another user must read it (a temporary file is 0600 by default).
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = b.tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_group_by_base64_values() {
        assert_eq!(
            push_url(
                "http://pg:9091/",
                &[("target", "us-east-1"), ("out", "/a b")]
            )
            .unwrap(),
            "http://pg:9091/metrics/job/fleet-audit/target@base64/dXMtZWFzdC0x/out@base64/L2EgYg=="
        );
        assert_eq!(
            push_url("http://pg:9091", &[("target", "")]).unwrap(),
            "http://pg:9091/metrics/job/fleet-audit/target@base64/="
        );
        assert!(push_url("pg:9091", &[]).is_err());
    }

    #[test]
    fn labels_are_escaped_and_families_typed() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let text = exposition(None, None);
        assert!(text.is_empty());
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fleet_audit.prom");
        write_atomically(&p, "x 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x 1\n");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
