//! `fleet-audit plan`: an audit's rows, chosen by the report's classes and the selectors, into the
//! actions of a plan file.
//!
//! An action is planned only where AWS can carry it out: a cancel on a QUEUED execution (an
//! IN_PROGRESS one with `--force`), a delete on a terminal one (an active one with `--force`), and
//! only from a row with the version and execution number DescribeJobExecution answered. A matched
//! execution the action cannot apply to is counted under `skipped`, with why.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::planfile::{self, Action, AuditRef, CountLine, Header, Selectors};
use super::PlanError;
use crate::report::classify::{classify, Cause, Class, Classes, Execution};
use crate::report::read::Versions;
use crate::report::Thresholds;

/// What a plan does to each execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// CancelJobExecution: QUEUED executions (IN_PROGRESS ones with `--force`).
    Cancel,
    /// DeleteJobExecution: terminal executions (active ones with `--force`).
    Delete,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Cancel => "cancel",
            ActionKind::Delete => "delete",
        }
    }

    /// Why the action cannot apply to an execution in `status`, `force` given or not.
    pub(crate) fn refusal(self, status: &str, force: bool) -> Option<&'static str> {
        let terminal = crate::input::names::is_terminal_status(status);
        match self {
            ActionKind::Cancel if terminal => Some("terminal (nothing to cancel)"),
            ActionKind::Cancel if status == "QUEUED" => None,
            ActionKind::Cancel if force => None,
            ActionKind::Cancel => Some("active, not QUEUED (cancelling it needs --force)"),
            ActionKind::Delete if terminal || force => None,
            ActionKind::Delete => Some("active (deleting it needs --force)"),
        }
    }
}

/// A plan's settings, made from `plan`'s flags in one place.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub audit: PathBuf,
    pub out: PathBuf,
    pub classes: Vec<Class>,
    pub jobs: BTreeSet<String>,
    pub things: Option<HashSet<String>>,
    pub older_than: Option<Duration>,
    /// `--cause`: only stuck rows of these causes (empty: any).
    pub causes: Vec<Cause>,
    pub action: ActionKind,
    pub force: bool,
    pub thresholds: Thresholds,
    /// The selectors as given, for the header.
    pub selectors: Selectors,
}

impl PlanSettings {
    /// Checks `plan`'s flags and reads `--things` (every line checked: file, line and rule named).
    pub fn from_args(a: &crate::cli::PlanArgs) -> Result<PlanSettings, PlanError> {
        let span = |flag: &str, v: &str| {
            crate::report::parse_threshold(v).map_err(|e| PlanError::Config(format!("{flag}: {e}")))
        };
        let thresholds = Thresholds::from_args(&a.thresholds, 0)
            .map_err(|e| PlanError::Config(e.to_string()))?;
        let older_than = a
            .older_than
            .as_deref()
            .map(|v| span("--older-than", v))
            .transpose()?;
        let mut jobs = BTreeSet::new();
        for j in &a.jobs {
            if !crate::input::names::is_valid_job_id(j) {
                return Err(PlanError::Config(format!(
                    "--jobs: {j:?} is not a valid job id (1-64 of A-Z a-z 0-9 _ -)"
                )));
            }
            jobs.insert(j.clone());
        }
        let things = match &a.things {
            None => None,
            Some(p) => {
                let names = crate::input::prepare_names(p, crate::input::ListKind::Things)?;
                Some(names.iter()?.collect::<Result<HashSet<_>, _>>()?)
            }
        };
        use crate::cli::{ActionArg, PlanClassArg};
        let causes = causes_of(&a.cause);
        let classes: Vec<Class> = a
            .class
            .iter()
            .map(|c| match c {
                PlanClassArg::StuckQueued => Class::StuckQueued,
                PlanClassArg::StaleInProgress => Class::StaleInProgress,
                PlanClassArg::TimedOut => Class::TimedOut,
                PlanClassArg::NearTimeout => Class::NearTimeout,
            })
            .collect();
        if !causes.is_empty()
            && !classes
                .iter()
                .any(|c| crate::report::classify::CAUSED.contains(c))
        {
            return Err(PlanError::Config(
                "--cause: only stuck executions have a cause: give --class stuck_queued or \
                 stale_in_progress"
                    .into(),
            ));
        }
        let action = match a.action {
            ActionArg::Cancel => ActionKind::Cancel,
            ActionArg::Delete => ActionKind::Delete,
        };
        Ok(PlanSettings {
            audit: a.audit.clone(),
            out: a.out.clone(),
            action,
            force: a.force,
            selectors: Selectors {
                classes: classes.iter().map(|c| c.as_str().to_string()).collect(),
                jobs: jobs.iter().cloned().collect(),
                things: a.things.as_ref().map(|p| p.display().to_string()),
                older_than: a.older_than.clone(),
                causes: causes.iter().map(|c| c.as_str().to_string()).collect(),
                queued_after: a.thresholds.queued_after.clone(),
                stale_after: a.thresholds.stale_after.clone(),
                near_timeout: a.thresholds.near_timeout.clone(),
            },
            classes,
            jobs,
            things,
            older_than,
            causes,
            thresholds,
        })
    }
}

/// `--cause`'s values as the report's causes.
fn causes_of(args: &[crate::cli::PlanCauseArg]) -> Vec<Cause> {
    use crate::cli::PlanCauseArg;
    args.iter()
        .map(|c| match c {
            PlanCauseArg::DeviceOffline => Cause::DeviceOffline,
            PlanCauseArg::Blocked => Cause::Blocked,
            PlanCauseArg::NotPickedUp => Cause::NotPickedUp,
            PlanCauseArg::NoProgress => Cause::NoProgress,
            PlanCauseArg::Unknown => Cause::Unknown,
        })
        .collect()
}

/// Since when a row has been in `class` (epoch ms): `queued_at` for the QUEUED classes,
/// `last_updated_at` for the others.
fn since(e: &Execution<'_>, class: Class) -> Option<i64> {
    match class {
        Class::StuckQueued => e.queued_at_ms,
        Class::NearTimeout if e.status == Some("QUEUED") => e.queued_at_ms,
        _ => e.last_updated_at_ms,
    }
}

/// The plan being made: its actions, counts and what was skipped.
struct Planner<'a> {
    s: &'a PlanSettings,
    actions: Vec<Action>,
    counts: BTreeMap<(Option<String>, Option<String>, String, String), u64>,
    skipped: BTreeMap<String, u64>,
    run_ids: BTreeSet<String>,
    oldest_ms: Option<i64>,
    /// When the audit read its first row (a plan of no action is dated by it).
    first_read_ms: Option<i64>,
}

impl Planner<'_> {
    /// The class a row is planned for: the first of the selected classes it is in.
    fn class_of(&self, classes: Classes) -> Option<Class> {
        self.s
            .classes
            .iter()
            .copied()
            .find(|c| classes.contains(*c))
    }

    fn consider(&mut self, e: &Execution<'_>, v: Versions<'_>) {
        let s = self.s;
        if e.outcome != "ok"
            || (!s.jobs.is_empty() && !s.jobs.contains(e.job_id))
            || s.things.as_ref().is_some_and(|t| !t.contains(e.thing_name))
        {
            return;
        }
        let fetched = e.fetched_at_ms.unwrap_or_default();
        self.first_read_ms = Some(self.first_read_ms.map_or(fetched, |o| o.min(fetched)));
        let classes = classify(e, &s.thresholds);
        let Some(class) = self.class_of(classes) else {
            return;
        };
        let cause = crate::report::classify::cause(e, classes)
            .filter(|(c, _)| *c == class)
            .map(|(_, c)| c);
        if !s.causes.is_empty() && !cause.is_some_and(|c| s.causes.contains(&c)) {
            return;
        }
        let age_ms = since(e, class).map(|t| fetched.saturating_sub(t));
        if let Some(min) = s.older_than {
            if age_ms.is_none_or(|a| a < i64::try_from(min.as_millis()).unwrap_or(i64::MAX)) {
                return;
            }
        }
        let status = e.status.unwrap_or_default();
        let skip = |me: &mut Self, why: &str| *me.skipped.entry(why.to_string()).or_default() += 1;
        if let Some(why) = s.action.refusal(status, s.force) {
            return skip(self, why);
        }
        let (Some(version), Some(number)) = (v.version_number, v.execution_number) else {
            return skip(
                self,
                "no version or execution number in the audit (a listed row)",
            );
        };
        if let Some(r) = v.run_id {
            if !self.run_ids.contains(r) {
                self.run_ids.insert(r.to_string());
            }
        }
        self.oldest_ms = Some(self.oldest_ms.map_or(fetched, |o| o.min(fetched)));
        let key = (
            e.account_id.map(str::to_string),
            e.region.map(str::to_string),
            e.job_id.to_string(),
            class.as_str().to_string(),
        );
        *self.counts.entry(key).or_default() += 1;
        self.actions.push(Action {
            n: self.actions.len() as u64 + 1,
            account_id: e.account_id.map(str::to_string),
            region: e.region.map(str::to_string),
            job_id: e.job_id.to_string(),
            thing_name: e.thing_name.to_string(),
            action: s.action.as_str().to_string(),
            // Force only where the action needs it.
            force: s.force && s.action.refusal(status, false).is_some(),
            expected_version: version,
            execution_number: number,
            status: status.to_string(),
            class: class.as_str().to_string(),
            cause: cause.map(|c| c.as_str().to_string()),
            age_seconds: age_ms.map(|a| a / 1000),
            fetched_at: crate::time::iso_utc(fetched, true),
            run_id: v.run_id.map(str::to_string),
        });
    }
}

/// A plan made from the audit: its header and actions (not yet written).
pub fn make(s: &PlanSettings) -> Result<(Header, Vec<Action>), PlanError> {
    let mut p = Planner {
        s,
        actions: Vec::new(),
        counts: BTreeMap::new(),
        skipped: BTreeMap::new(),
        run_ids: BTreeSet::new(),
        oldest_ms: None,
        first_read_ms: None,
    };
    let data =
        crate::report::read::for_each_versioned(&s.audit, crate::report::BATCH_ROWS, |e, v| {
            p.consider(e, v)
        })?;
    if let Some(i) = data.incomplete {
        return Err(PlanError::Incomplete {
            path: s.audit.clone(),
            committed: i.committed,
        });
    }
    let audited_at_ms = p.oldest_ms.or(p.first_read_ms).unwrap_or_default();
    let header = Header {
        fleet_audit_plan: planfile::PLAN_FORMAT,
        plan_id: format!("plan-{}", crate::dataset::new_run_id()),
        created_at: crate::time::iso_utc(crate::time::wall_ms(), true),
        audit: AuditRef {
            // Absolute, so that apply finds it from anywhere (or is told where with --audit).
            path: std::path::absolute(&s.audit)
                .unwrap_or_else(|_| s.audit.clone())
                .display()
                .to_string(),
            run_ids: p.run_ids.into_iter().collect(),
            audited_at: crate::time::iso_utc(audited_at_ms, true),
            audited_at_ms,
        },
        selectors: s.selectors.clone(),
        action: s.action.as_str().to_string(),
        force: s.force,
        counts: p
            .counts
            .into_iter()
            .map(|((account_id, region, job_id, class), count)| CountLine {
                account_id,
                region,
                job_id,
                action: s.action.as_str().to_string(),
                class,
                count,
            })
            .collect(),
        skipped: p.skipped,
        actions: 0,
        actions_sha256: String::new(),
    };
    Ok((header, p.actions))
}

/// The calls a target may make a second (AWS's CancelJobExecution and DeleteJobExecution quotas).
pub const DEFAULT_RPS: f64 = 10.0;

/// What `plan` prints: the counts per job, action and class, what was skipped, and how long the
/// calls take at the quota (targets are called side by side, each at its own quota).
pub fn summary(h: &Header, out: &std::path::Path) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plan {}: {} {} action{} from {} (read {})",
        h.plan_id,
        h.actions,
        h.action,
        if h.actions == 1 { "" } else { "s" },
        h.audit.path,
        h.audit.audited_at
    );
    let mut per_target: BTreeMap<(Option<&str>, Option<&str>), u64> = BTreeMap::new();
    for c in &h.counts {
        let _ = writeln!(
            s,
            "  {:<24} {:<8} {:<18} {:>8}  {}",
            c.job_id,
            c.action,
            c.class,
            c.count,
            target_label(c.account_id.as_deref(), c.region.as_deref())
        );
        *per_target
            .entry((c.account_id.as_deref(), c.region.as_deref()))
            .or_default() += c.count;
    }
    for (why, n) in &h.skipped {
        let _ = writeln!(s, "  skipped {n}: {why}");
    }
    let longest = per_target.values().copied().max().unwrap_or(0);
    let _ = writeln!(
        s,
        "at {DEFAULT_RPS} calls/s a target: about {}",
        crate::time::human_duration(longest as f64 / DEFAULT_RPS)
    );
    if h.force {
        let _ = writeln!(
            s,
            "--force: an IN_PROGRESS execution cancelled (or an active one deleted) can no longer \
             report its status from the device; the device's agent must recover by itself"
        );
    }
    let _ = write!(
        s,
        "wrote {}; review it, then: fleet-audit apply {} --out ACTIONS",
        out.display(),
        out.display()
    );
    s
}

fn target_label(account: Option<&str>, region: Option<&str>) -> String {
    match (account, region) {
        (Some(a), Some(r)) => format!("{a}/{r}"),
        (None, Some(r)) => r.to_string(),
        (Some(a), None) => a.to_string(),
        (None, None) => String::new(),
    }
}
