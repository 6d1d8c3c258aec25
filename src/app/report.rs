//! `fleet-audit report`: a dataset's stuck / timed-out report, and what changed since a baseline.

use crate::redact::redact;
use anyhow::Context;

use super::run::warn_ignored;
use super::{emit_metrics, write_stdout};
use crate::aws::client::ClientSettings;

/// `fleet-audit report ACTIONS` (an apply's rows): 0 every action applied or stopped by its guard, 1
/// any ended in error, 2 a dataset that cannot be read.
fn actions_report(cfg: &crate::report::ReportConfig) -> anyhow::Result<i32> {
    let r = match crate::remedy::report::read(&cfg.path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet-audit report: error: {}", redact(&e.to_string()));
            return Ok(2);
        }
    };
    if let Some(p) = &cfg.html {
        std::fs::write(p, r.render_html())
            .with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if cfg.json {
        write_stdout(&serde_json::to_string_pretty(&r.to_json()).expect("serializes"))?;
    } else {
        write_stdout(&r.render_text())?;
    }
    Ok(r.exit_code())
}

/// `fleet-audit report`: 0 done; 2 bad flags or a dataset that cannot be read; 1 the HTML page
/// cannot be written; 3 ([`crate::report::EXIT_FAIL_ON`]) a `--fail-on` condition holds (with
/// `incomplete`: the audit reported is incomplete).
pub(super) async fn report_command(a: crate::cli::ReportArgs) -> anyhow::Result<i32> {
    use crate::report::{ReportConfig, EXIT_FAIL_ON};
    use std::io::IsTerminal;
    let cfg = match ReportConfig::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-audit report: error: {}", redact(&e.to_string()));
            return Ok(2);
        }
    };
    if crate::remedy::report::is_actions(&cfg.path) {
        return actions_report(&cfg);
    }
    let read = crate::report::report_since(
        &cfg.path,
        cfg.baseline.as_deref(),
        &ClientSettings::default(),
        &cfg.thresholds,
        cfg.trend,
    )
    .await;
    let report = match read {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet-audit report: error: {}", redact(&e.to_string()));
            return Ok(2);
        }
    };
    warn_ignored(&report);
    if a.metrics.is_some() || a.metrics_push.is_some() {
        let text = crate::report::metrics::exposition(Some(&report), None);
        let out = report.dataset.to_string_lossy();
        emit_metrics(
            &text,
            a.metrics.as_deref(),
            a.metrics_push.as_deref(),
            &[("out", &out)],
        )
        .await?;
    }
    if let Some(p) = &cfg.html {
        std::fs::write(p, report.render_html())
            .with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if cfg.json {
        let doc = serde_json::to_string_pretty(&report.to_json()).expect("report serializes");
        write_stdout(&doc)?;
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        write_stdout(&report.render_terminal_with(cfg.thresholds.top, colour))?;
    }
    let failing = report.failing(&cfg.fail_on);
    if failing.is_empty() {
        return Ok(0);
    }
    let what: Vec<String> = failing
        .iter()
        .map(|(f, n)| match (f, report.committed_text()) {
            (crate::report::FailOn::Incomplete, Some(what)) => format!("incomplete ({what})"),
            _ => format!("{} {n}", f.as_str()),
        })
        .collect();
    eprintln!("fleet-audit report: --fail-on matched: {}", what.join(", "));
    Ok(EXIT_FAIL_ON)
}
