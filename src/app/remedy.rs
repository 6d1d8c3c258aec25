//! `fleet-audit plan`: an audit into a plan file to review.

use crate::redact::redact;

use super::write_stdout;
use crate::remedy::plan::{make, summary, PlanSettings};
use crate::remedy::{planfile, PlanError};

/// `fleet-audit plan`: 0 written; 2 bad flags, an audit that cannot be read or is incomplete, an
/// `--out` that exists; 1 the plan cannot be written.
pub(super) fn plan_command(a: crate::cli::PlanArgs) -> anyhow::Result<i32> {
    let made = PlanSettings::from_args(&a).and_then(|s| {
        let (header, actions) = make(&s)?;
        let (header, bytes) = planfile::encode(header, &actions);
        planfile::write_new(&s.out, &bytes)?;
        Ok::<_, PlanError>(header)
    });
    match made {
        Ok(header) => {
            write_stdout(&summary(&header, &a.out))?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("fleet-audit plan: error: {}", redact(&e.to_string()));
            Ok(e.exit().code(0))
        }
    }
}

/// `fleet-audit apply`: 0 every action applied or stopped by its guard (a version conflict, an
/// execution no longer in a state to take it, or gone); 1 any action ended in error, or the apply
/// failed; 2 a plan refused (edited, too old, unreadable), not confirmed, or an output refused;
/// 130/143 interrupted (committed rows kept; `--resume` continues).
pub(super) async fn apply_command(a: crate::cli::ApplyArgs) -> anyhow::Result<i32> {
    use crate::remedy::apply::{apply, ApplyError};
    let fail = |e: &dyn std::fmt::Display, code: i32| {
        eprintln!("fleet-audit apply: error: {}", redact(&e.to_string()));
        Ok(code)
    };
    let s = match apply_settings(&a) {
        Ok(s) => s,
        Err(e) => return fail(&e, e.exit().code(0)),
    };
    let h = &s.plan.header;
    let pending = s.plan.actions.len();
    eprintln!(
        "plan {}: {} {} action{} from {} (read {}){}",
        h.plan_id,
        pending,
        h.action,
        if pending == 1 { "" } else { "s" },
        h.audit.path,
        h.audit.audited_at,
        if h.force { ", with --force" } else { "" }
    );
    for c in &h.counts {
        eprintln!("  {:<24} {:<18} {:>8}", c.job_id, c.class, c.count);
    }
    if a.dry_run {
        write_stdout(&format!(
            "dry run: the plan, its age and {} are fine; {pending} {} calls would be sent, at most \
             {} a second per target; nothing was called or written",
            a.out.display(),
            h.action,
            a.rps
        ))?;
        return Ok(0);
    }
    if !a.yes {
        if let Err(e) = confirm(pending, &h.action) {
            return fail(&e, 2);
        }
    }
    let shutdown = super::shutdown_on_signals();
    match apply(&s, shutdown.clone()).await {
        Ok(done) => applied(&done, &h.plan_id, &a.out),
        Err(e @ ApplyError::Refused(_)) => fail(&e, 2),
        Err(e) => fail(&e, e.exit().code(0)),
    }
}

/// The plan read and checked, and the flags, before anything is called.
fn apply_settings(
    a: &crate::cli::ApplyArgs,
) -> Result<crate::remedy::apply::ApplySettings, crate::remedy::apply::ApplyError> {
    use crate::remedy::apply::{ApplyError, ApplySettings};
    let refuse = |m: String| ApplyError::Refused(m);
    let out_text = a.out.to_string_lossy();
    if out_text.contains("://") || crate::dataset::Format::from_path(&a.out).is_some() {
        return Err(refuse(format!(
            "--out {out_text}: the ACTIONS dataset is a local directory (not an object-store URL \
             nor a .parquet or .arrow file)"
        )));
    }
    let plan = planfile::read(&a.plan)?;
    let max_age = crate::report::parse_threshold(&a.max_age)
        .map_err(|e| refuse(format!("--max-age: {e}")))?;
    if !a.rps.is_finite() || a.rps < 0.0 {
        return Err(refuse(
            "--rps: must be a number >= 0 (0 means no limit)".into(),
        ));
    }
    if a.max_attempts == 0 || a.concurrency == 0 {
        return Err(refuse(
            "--max-attempts and --concurrency must be at least 1".into(),
        ));
    }
    if let Some(t) = a.as_of {
        if !(t.is_finite() && (1e9..1e10).contains(&t)) || a.connection.endpoint_url.is_none() {
            return Err(refuse(
                "--as-of: a time in epoch seconds, for an apply against a simulator (its --endpoint-url)"
                    .into(),
            ));
        }
        crate::time::set_as_of((t * 1000.0).round() as i64);
    }
    let audit = a
        .audit
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(&plan.header.audit.path));
    let read_ms = crate::remedy::verify::against_audit(&plan, &audit)?;
    let age_ms = crate::time::now_ms() - read_ms;
    if age_ms < -60_000 {
        return Err(refuse(format!(
            "{}: its audit was read at {}, after now: check this machine's clock (or --as-of)",
            a.plan.display(),
            plan.header.audit.audited_at
        )));
    }
    if age_ms > i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX) {
        return Err(refuse(format!(
            "{}: its audit was read {} ago ({}), more than --max-age {}: the fleet has moved on \
             since; audit and plan again (or pass a larger --max-age)",
            a.plan.display(),
            crate::time::span_text((age_ms / 1000).max(0) as u64),
            plan.header.audit.audited_at,
            a.max_age
        )));
    }
    let mut client = crate::aws::client::ClientSettings::from(&a.connection);
    client.call_timeout = None;
    Ok(ApplySettings {
        plan,
        out: a.out.clone(),
        resume: a.resume,
        dry_run: a.dry_run,
        rps: (a.rps > 0.0).then_some(a.rps),
        engine: crate::aws::call::EngineSettings {
            concurrency: a.concurrency,
            max_attempts: a.max_attempts,
            call_timeout: std::time::Duration::from_secs(10),
            backoff: crate::aws::retry::Backoff::default(),
        },
        client,
    })
}

/// Asks on the terminal; `Err` says why not applied.
fn confirm(n: usize, action: &str) -> Result<(), String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to confirm on: review the plan, then pass --yes".into());
    }
    eprint!("{action} {n} job executions? Type yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err("not confirmed: nothing was called".into())
    }
}

/// What `apply` prints at its end, and its exit code: 0, 1 when an action ended in error, 130 when
/// a shutdown left actions to do.
fn applied(
    done: &crate::remedy::apply::Applied,
    plan_id: &str,
    out: &std::path::Path,
) -> anyhow::Result<i32> {
    let by: Vec<String> = done
        .by_outcome
        .iter()
        .map(|(o, n)| format!("{} {n}", o.as_str()))
        .collect();
    write_stdout(&format!(
        "applied plan {} into {}: {}{}{}; {} calls",
        plan_id,
        out.display(),
        if by.is_empty() {
            "nothing to do".into()
        } else {
            by.join(", ")
        },
        if done.earlier > 0 {
            format!(" (and {} rows of earlier runs)", done.earlier)
        } else {
            String::new()
        },
        if done.recognised > 0 {
            format!(", {} recognised as done before", done.recognised)
        } else {
            String::new()
        },
        done.calls
    ))?;
    if done.left > 0 {
        eprintln!(
            "fleet-audit apply: stopped with {} actions left: --resume continues",
            done.left
        );
        return Ok(crate::audit::error::Exit::Interrupted.code(0));
    }
    let errors = done.by_outcome.get(&crate::remedy::rows::Outcome::Error);
    Ok(if errors.is_some_and(|n| *n > 0) { 1 } else { 0 })
}
