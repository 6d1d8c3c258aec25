//! `fleet-audit run`: the run's settings, the run, and what it prints and exits with.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::Context;

use super::{emit_metrics, shutdown_on_signals, write_stdout, SIGNAL_EXIT};
use crate::audit::config::RunConfig;
use crate::audit::engine::Stop;
use crate::audit::error::{Exit, RunError};
use crate::audit::run::run;
use crate::audit::summary::Summary;
use crate::aws::client::ClientSettings;
use crate::cli::RunArgs;
use crate::dataset::Layout;
use crate::redact::redact;

pub(crate) use crate::audit::error::{EXIT_PAIR_ERRORS, EXIT_TARGETS_FAILED};

/// Prints the stuck / timed-out report of a dataset on stdout, with the default thresholds.
pub(super) fn print_report(out: &Path) -> anyhow::Result<()> {
    let thresholds = crate::report::Thresholds::default();
    let report = crate::report::report_path(out, &thresholds)
        .with_context(|| format!("cannot report on {}", out.display()))?;
    print_report_of(&report, &thresholds)
}

fn print_report_of(
    report: &crate::report::Report,
    thresholds: &crate::report::Thresholds,
) -> anyhow::Result<()> {
    warn_ignored(report);
    write_stdout(&report.render_terminal(thresholds.top))
}

/// Names, on stderr, the part files a manifest did not list (so the report did not read).
pub(super) fn warn_ignored(report: &crate::report::Report) {
    if let Some(note) = &report.note {
        eprintln!(
            "fleet-audit report: note: {}: {note}",
            report.dataset.display()
        );
    }
    if let Some(note) = report.ignored_note() {
        eprintln!(
            "fleet-audit report: warning: {}: {note}",
            report.dataset.display()
        );
    }
}

fn print_summary(s: &Summary, quiet: bool, json: Option<&Path>) -> anyhow::Result<()> {
    if !quiet {
        eprintln!("{}", s.render());
    }
    if let Some(p) = json {
        let body = serde_json::to_vec_pretty(s).expect("summary serializes");
        std::fs::write(p, body).with_context(|| format!("cannot write summary {}", p.display()))?;
    }
    Ok(())
}

/// Maps a run's result to its exit code, printing what the user needs.
pub(super) fn finish_run(
    result: Result<Summary, RunError>,
    quiet: bool,
    summary_json: Option<&Path>,
    retry_hint: &str,
) -> anyhow::Result<i32> {
    match result {
        Ok(s) => finish_complete(&s, quiet, summary_json, retry_hint),
        Err(RunError::Stopped {
            stop,
            out,
            resumable,
            summary,
        }) => {
            print_summary(&summary, quiet, summary_json)?;
            say_stopped(&stop, &out, resumable, &summary, quiet);
            Ok(stop.exit().code(SIGNAL_EXIT.load(Ordering::SeqCst)))
        }
        Err(e @ RunError::Interrupted) => {
            eprintln!("fleet-audit: {e}");
            Ok(e.exit().code(SIGNAL_EXIT.load(Ordering::SeqCst)))
        }
        Err(e) => {
            eprintln!("fleet-audit: error: {}", redact(&e.to_string()));
            Ok(e.exit().code(SIGNAL_EXIT.load(Ordering::SeqCst)))
        }
    }
}

/// The exit code of a run that ended with every pair's row: 0, or `PairErrors` when some are error
/// rows, said with what to do about them.
fn finish_complete(
    s: &Summary,
    quiet: bool,
    summary_json: Option<&Path>,
    retry_hint: &str,
) -> anyhow::Result<i32> {
    print_summary(s, quiet, summary_json)?;
    let left = s.errors_left();
    if left == 0 {
        return Ok(0);
    }
    // What to do about them, said even when quiet: the exit code alone does not say it.
    let rows = crate::audit::summary::thousands(left);
    if s.retried_errors.is_some() {
        eprintln!(
            "fleet-audit: {rows} pairs are error rows still, after being described again (their calls failed past --max-attempts: throttling, a service error, a timeout or a dropped connection, in error_code): run the same command again later"
        );
    } else {
        eprintln!(
            "fleet-audit: {rows} pairs ended as error rows (their calls failed past --max-attempts: throttling, a service error, a timeout or a dropped connection, in error_code); {retry_hint}"
        );
    }
    Ok(Exit::PairErrors.code(0))
}

/// Says, on stderr, why a run stopped and what became of its output in `out`: resume, leave it to
/// the run that took it over, or put the cause right.
fn say_stopped(stop: &Stop, out: &Path, resumable: bool, summary: &Summary, quiet: bool) {
    // An endpoint given with a password (`http://user:password@host`) may be quoted.
    let said = redact(&stop.to_string()).into_owned();
    if let (Stop::TargetsFailed { .. }, true) = (stop, resumable) {
        if quiet {
            // The summary names them otherwise: a line per account and reason.
            for line in crate::audit::summary::failed_target_lines(&summary.targets) {
                eprintln!("fleet-audit: {line}");
            }
        }
        eprintln!(
            "fleet-audit: {said}; the rows of every other target are committed in {}: run the same command with --resume to retry them",
            out.display()
        );
    } else if let Stop::OutputTakenOver { .. } = stop {
        eprintln!(
            "fleet-audit: {stop}; another run now owns {}: do not resume over it (that run finishes the audit)",
            out.display()
        );
    } else if stop.input_changed() {
        // Its message says what to do: what was committed may hold rows of the changed
        // content, so no --resume accepts it.
        eprintln!("fleet-audit: {stop}");
    } else if resumable
        && (summary.resumed > 0
            || !summary.files.is_empty()
            // A writer that failed reports no files, though it may have committed some.
            || matches!(stop, Stop::WriterFailed { .. } | Stop::WriterGone))
    {
        eprintln!(
            "fleet-audit: {said}; the rows committed so far are kept in {}: run the same command with --resume to finish",
            out.display()
        );
    } else if resumable || crate::dataset::Format::from_path(out).is_none() {
        // A directory output that nothing was committed to is left as it was found.
        eprintln!(
            "fleet-audit: {said}; nothing was committed to {}: run the same command once that is put right",
            out.display()
        );
    } else {
        eprintln!(
            "fleet-audit: {said}; nothing was written to {} (a single file is written only whole: use a directory output to keep partial work)",
            out.display()
        );
    }
}

/// How a run's error rows are described again, for this run's output and targets.
fn retry_hint(cfg: &crate::audit::config::RunConfig) -> String {
    let t = &cfg.targets.flags;
    let one = t.org.is_none()
        && !t.all_regions
        && t.regions.len() <= 1
        && t.profiles.len() <= 1
        && t.role_arns.len() <= 1;
    match (&cfg.output.layout, one) {
        (Layout::Dir(_), true) => format!(
            "to describe just those again and replace them: the same command with {}--retry-errors",
            if cfg.output.resume { "" } else { "--resume " }
        ),
        (Layout::File(_), _) => "a single-file output is written whole: run the same command with --overwrite to describe every pair again (a directory output, --out DIR, can retry just the error rows with --resume --retry-errors)".into(),
        _ => "to audit again: the same command with --overwrite (--retry-errors describes just the error rows again in a local directory output of one target)".into(),
    }
}

pub(super) async fn run_command(a: RunArgs) -> anyhow::Result<i32> {
    let cfg = match RunConfig::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            // A flag's value may be a URL with a password (`--region-endpoint R=URL`).
            eprintln!("fleet-audit: error: {}", redact(&e.to_string()));
            return Ok(Exit::BadInput.code(0));
        }
    };
    // `--as-of` (a simulator's day): the audit's clock, from here on.
    if let Some(ms) = cfg.as_of_ms {
        crate::time::set_as_of(ms);
    }
    // A dry run prints its plan and makes no call: a summary of zeros after it would say nothing.
    let dry_run = matches!(&cfg.input, crate::audit::config::Input::Discover(d) if d.dry_run);
    let (quiet, summary_json) = (cfg.quiet || dry_run, cfg.summary_json.clone());
    // The parsed location, not the flag's text: `file:///abs/dir` is reported on as `/abs/dir`; an
    // object store's dataset is fetched to report on it.
    let dataset = match &cfg.output.layout {
        Layout::Remote(r) => std::path::PathBuf::from(&r.url),
        l => l.path().to_path_buf(),
    };
    let retry_hint = retry_hint(&cfg);
    let shutdown = shutdown_on_signals();
    let result = run(cfg, shutdown).await;
    let ran = match &result {
        Ok(s) => Some(s.clone()),
        Err(RunError::Stopped { summary, .. }) => Some((**summary).clone()),
        Err(_) => None,
    };
    let done = result.is_ok();
    let code = finish_run(result, quiet, summary_json.as_deref(), &retry_hint)?;
    if let (true, true, Some(summary)) = (a.report, done, &ran) {
        // With a baseline, the report says what changed since it too; a QUEUED execution is stuck
        // past the run's own --queued-after, as its context was read.
        let thresholds = crate::report::Thresholds {
            queued_after: crate::time::parse_threshold(&a.queued_after)
                .map_err(|e| anyhow::anyhow!("--queued-after: {e}"))?,
            ..Default::default()
        };
        let report = crate::report::report_since(
            &dataset,
            summary.baseline.as_deref(),
            &ClientSettings::from(&a.connection),
            &thresholds,
            false,
        )
        .await
        .with_context(|| format!("cannot report on {}", dataset.display()))?;
        print_report_of(&report, &thresholds)?;
    }
    if let (true, Some(summary)) = (a.metrics.is_some() || a.metrics_push.is_some(), &ran) {
        let client = ClientSettings::from(&a.connection);
        let text = crate::report::metrics::of_run(summary, &dataset, &client).await;
        // Grouped by target: the run's accounts and regions, and its output.
        let target = if summary.targets.is_empty() {
            a.connection
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "default".into())
        } else {
            let labels: Vec<&str> = summary.targets.iter().map(|t| t.target.as_str()).collect();
            labels.join("+")
        };
        let out = dataset.to_string_lossy();
        let grouping = [("target", target.as_str()), ("out", &out)];
        emit_metrics(
            &text,
            a.metrics.as_deref(),
            a.metrics_push.as_deref(),
            &grouping,
        )
        .await?;
    }
    Ok(code)
}
