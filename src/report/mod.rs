//! `fleet-audit report`: what a written dataset says about the fleet, per job.
//!
//! It exists so that a user (or a scheduled audit) does not need DuckDB to answer "which executions are
//! stuck, timed out or failing, and since when". The dataset is streamed one RecordBatch at a time;
//! only counters per job, a fixed-size age histogram and bounded heaps of the oldest pairs are kept, so
//! memory does not grow with the number of rows.
//!
//! Parts: [`classify`] decides the classes of one execution; `read` turns batches into plain column
//! views (checking the schema, naming the file); `tally` accumulates counts; `render` and `html` write
//! the terminal text, the JSON document and the HTML page.
//!
//! Library use (e.g. at the end of a run):
//! ```no_run
//! # fn main() -> Result<(), fleet_audit::report::ReportError> {
//! use fleet_audit::report::{report_path, Thresholds};
//! let report = report_path("out/executions.parquet".as_ref(), &Thresholds::default())?;
//! eprintln!("{}", report.render_terminal(10));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod causes;
pub(crate) mod changes;
pub(crate) mod classify;
pub mod group;
mod html;
pub(crate) mod metrics;
pub(crate) mod read;
pub(crate) mod render;
mod since;
mod tally;
mod targets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use changes::{ChangeCounts, Changes};
pub use classify::{Class, Counts, Execution};
pub(crate) use tally::Analyzer;
pub use tally::{AgeHistogram, JobReport, OldestPair};
pub use targets::TargetReport;

use crate::audit::config::ConfigError;
use crate::cli::{FailOnArg, ReportArgs};
use crate::dataset::DatasetError;
pub use crate::dataset::Incomplete;

pub use crate::dataset::schema::BATCH_ROWS;

/// The thresholds of the classes and how many of the oldest pairs to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// `stuck_queued`: QUEUED and `fetched_at - queued_at` strictly longer than this.
    pub queued_after: Duration,
    /// `stale_in_progress`: IN_PROGRESS and `fetched_at - last_updated_at` at least this.
    pub stale_after: Duration,
    /// `near_timeout`: QUEUED or IN_PROGRESS with `approximate_seconds_before_timed_out` strictly
    /// below this.
    pub near_timeout: Duration,
    /// How many of the oldest stuck or timed-out pairs are kept, per job and over all jobs.
    pub top: usize,
    /// `--group-by`: the classes per group of this key too.
    pub group_by: Option<group::GroupBy>,
}

impl Default for Thresholds {
    /// The CLI defaults: 24h, 1h, 5m, top 10.
    fn default() -> Self {
        Thresholds {
            queued_after: Duration::from_secs(24 * 3600),
            stale_after: Duration::from_secs(3600),
            near_timeout: Duration::from_secs(300),
            top: 10,
            group_by: None,
        }
    }
}

impl Thresholds {
    /// `queued_after` in whole milliseconds (the dataset's resolution).
    pub(crate) fn queued_after_ms(&self) -> i64 {
        millis(self.queued_after)
    }
    /// `stale_after` in whole milliseconds.
    pub(crate) fn stale_after_ms(&self) -> i64 {
        millis(self.stale_after)
    }
    /// `near_timeout` in whole milliseconds.
    pub(crate) fn near_timeout_ms(&self) -> i64 {
        millis(self.near_timeout)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Parses a threshold such as `24h`, `90m`, `5m`, `30s`, `500ms` or `14d` (a plain number is seconds).
///
/// The same parser as [`crate::audit::config::parse_duration`] with another policy: that one guards call
/// timeouts and refuses a week or more, while an execution queued for weeks is exactly what a report
/// looks for. Accepted: positive, at most a year, units ms, s, m, h, d.
pub(crate) use crate::time::parse_threshold;

/// A `--fail-on` condition: the report "fails" (exit code 3) when any row has one of its classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// `stuck_queued` or `stale_in_progress`.
    Stuck,
    /// `timed_out`.
    TimedOut,
    /// `errors` (outcome `error`).
    Errors,
    /// `near_timeout`.
    NearTimeout,
    /// `not_found`.
    NotFound,
    /// Stuck now, not stuck (or absent) in the baseline.
    NewStuck,
    /// TIMED_OUT now, not in the baseline.
    NewTimedOut,
    /// FAILED now, not in the baseline.
    NewFailed,
    /// The audit reported is incomplete (its manifest says so).
    Incomplete,
}

impl FailOn {
    /// The flag value as the user spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Stuck => "stuck",
            FailOn::TimedOut => "timed-out",
            FailOn::Errors => "errors",
            FailOn::NearTimeout => "near-timeout",
            FailOn::NotFound => "not-found",
            FailOn::NewStuck => "new-stuck",
            FailOn::NewTimedOut => "new-timed-out",
            FailOn::NewFailed => "new-failed",
            FailOn::Incomplete => "incomplete",
        }
    }

    /// Whether the condition compares with a baseline.
    pub(crate) fn needs_baseline(self) -> bool {
        matches!(
            self,
            FailOn::NewStuck | FailOn::NewTimedOut | FailOn::NewFailed
        )
    }

    /// The classes this condition covers.
    pub fn classes(self) -> &'static [Class] {
        match self {
            FailOn::Stuck => &[Class::StuckQueued, Class::StaleInProgress],
            FailOn::TimedOut => &[Class::TimedOut],
            FailOn::Errors => &[Class::Error],
            FailOn::NearTimeout => &[Class::NearTimeout],
            FailOn::NotFound => &[Class::NotFound],
            FailOn::NewStuck | FailOn::NewTimedOut | FailOn::NewFailed | FailOn::Incomplete => &[],
        }
    }
}

impl From<FailOnArg> for FailOn {
    fn from(a: FailOnArg) -> Self {
        match a {
            FailOnArg::Stuck => FailOn::Stuck,
            FailOnArg::TimedOut => FailOn::TimedOut,
            FailOnArg::Errors => FailOn::Errors,
            FailOnArg::NearTimeout => FailOn::NearTimeout,
            FailOnArg::NotFound => FailOn::NotFound,
            FailOnArg::NewStuck => FailOn::NewStuck,
            FailOnArg::NewTimedOut => FailOn::NewTimedOut,
            FailOnArg::NewFailed => FailOn::NewFailed,
            FailOnArg::Incomplete => FailOn::Incomplete,
        }
    }
}

/// The `report` subcommand's flags, validated.
#[derive(Debug, Clone)]
pub(crate) struct ReportConfig {
    /// The dataset: a file or a directory of parts.
    pub path: PathBuf,
    /// The classes' thresholds and `--top`.
    pub thresholds: Thresholds,
    /// Print the JSON document instead of the terminal text.
    pub json: bool,
    /// Also write the HTML page here.
    pub html: Option<PathBuf>,
    /// Conditions that make the command exit with [`EXIT_FAIL_ON`].
    pub fail_on: Vec<FailOn>,
    /// The previous audit to compare with.
    pub baseline: Option<PathBuf>,
    /// Add the totals of every audit the dataset keeps.
    pub trend: bool,
}

/// Exit code of `report` when a `--fail-on` condition holds.
pub(crate) const EXIT_FAIL_ON: i32 = 3;

impl Thresholds {
    /// The thresholds the flags give (`report`'s and `plan`'s), keeping the `top` pairs.
    pub(crate) fn from_args(
        a: &crate::cli::ThresholdArgs,
        top: usize,
    ) -> Result<Self, ConfigError> {
        let dur = |flag: &'static str, v: &str| {
            parse_threshold(v).map_err(|reason| ConfigError::Flag { flag, reason })
        };
        Ok(Thresholds {
            queued_after: dur("queued-after", &a.queued_after)?,
            stale_after: dur("stale-after", &a.stale_after)?,
            near_timeout: dur("near-timeout", &a.near_timeout)?,
            top,
            group_by: None,
        })
    }
}

impl ReportConfig {
    /// Validates the flags; of the file system, looks only at where `--html` and `--metrics` go.
    pub(crate) fn from_args(a: &ReportArgs) -> Result<ReportConfig, ConfigError> {
        let mut fail_on: Vec<FailOn> = Vec::new();
        for f in &a.fail_on {
            let f = FailOn::from(*f);
            if f.needs_baseline() && a.baseline.is_none() {
                return Err(ConfigError::Flag {
                    flag: "fail-on",
                    reason: format!(
                        "{} compares with a previous audit: give --baseline",
                        f.as_str()
                    ),
                });
            }
            if !fail_on.contains(&f) {
                fail_on.push(f);
            }
        }
        // Files written after the report is made: a bad path is found now.
        if let Some(p) = &a.html {
            crate::audit::config::check_file_destination("html", p)?;
        }
        if let Some(p) = &a.metrics {
            crate::audit::config::check_file_destination("metrics", p)?;
        }
        let mut thresholds = Thresholds::from_args(&a.thresholds, a.top)?;
        thresholds.group_by = a
            .group_by
            .as_deref()
            .map(group::GroupBy::parse)
            .transpose()
            .map_err(|reason| ConfigError::Flag {
                flag: "group-by",
                reason,
            })?;
        Ok(ReportConfig {
            path: a.path.clone(),
            thresholds,
            json: a.json,
            html: a.html.clone(),
            fail_on,
            baseline: a.baseline.clone(),
            trend: a.trend,
        })
    }
}

/// Why a dataset could not be reported on; every variant names the path or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The path given does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    /// A file could not be listed, opened or decoded (the error names it).
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A file lacks a needed column, or has it with a type the report cannot read.
    #[error("{path}: not a fleet-audit dataset: {reason}")]
    Schema {
        /// The file whose schema does not fit.
        path: PathBuf,
        /// Which columns are missing, or which column has which unusable type.
        reason: String,
    },
}

/// Everything the report says about one dataset.
#[derive(Debug, Clone)]
pub struct Report {
    /// The path the report was asked for.
    pub dataset: PathBuf,
    /// How many data files were read.
    pub files: usize,
    /// The thresholds the rows were classified under.
    pub thresholds: Thresholds,
    /// Every status value seen, AWS's statuses in their lifecycle order first, then unknown values
    /// (kept as spelled) in name order.
    pub statuses: Vec<String>,
    /// Counts over all rows.
    pub totals: Counts,
    /// One entry per job id, in job id order.
    pub jobs: Vec<JobReport>,
    /// The oldest stuck or timed-out pairs over all jobs, oldest first (at most `thresholds.top`).
    pub oldest: Vec<OldestPair>,
    /// Ages of the stuck executions (`stuck_queued` and `stale_in_progress`).
    pub stuck_ages: AgeHistogram,
    /// Part files of the directory that its manifest does not list, so were not read.
    pub ignored: Vec<String>,
    /// Why the audit reported is not the dataset's last (that one is incomplete).
    pub note: Option<String>,
    /// The audit reported is incomplete (its manifest says so): how far it got. `None` for a
    /// complete audit, a file (written only when complete) and a directory without a manifest.
    pub incomplete: Option<Incomplete>,
    /// The run writing the dataset now (a local output whose lock names a live process): an
    /// incomplete audit that is still going, not one that stopped.
    pub writer: Option<String>,
    /// What changed since the baseline (`--baseline`).
    pub changes: Option<Changes>,
    /// Per-audit totals of a dataset that keeps several audits, oldest first (`--trend`).
    pub trend: Option<Vec<TrendPoint>>,
    /// Per account and region of a dataset of several targets, and the targets not audited (empty
    /// for a dataset of one target).
    pub targets: Vec<TargetReport>,
    /// Jobs whose IN_PROGRESS executions hold up stuck QUEUED ones (`blocked`), and how many,
    /// most first.
    pub held_up: Vec<(String, u64)>,
    /// The oldest examples of each stuck class and cause.
    pub cause_examples: BTreeMap<(Class, classify::Cause), Vec<OldestPair>>,
    /// `--group-by`: the key and its groups, the largest stuck share first.
    pub groups: Option<(String, Vec<group::Group>)>,
}

/// One audit's totals in a trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    /// The run that started the audit, when known.
    pub run_id: Option<String>,
    /// Its `date=` partition, when it has one.
    pub date: Option<String>,
    /// Whether the audit is complete (the last may be under way).
    pub complete: bool,
    /// Its rows' counts.
    pub totals: Counts,
}

/// The totals of every audit the dataset at `path` keeps, oldest first (one point for a dataset of
/// one audit).
pub fn trend_of(path: &Path, thresholds: &Thresholds) -> Result<Vec<TrendPoint>, ReportError> {
    let data = crate::dataset::data_files(path)?;
    // A file, or a directory of one audit without a manifest: complete as far as anyone can tell.
    let audits = if data.audits.is_empty() {
        vec![crate::dataset::AuditFiles {
            run_id: None,
            date: None,
            files: data.files,
            complete: true,
        }]
    } else {
        data.audits
    };
    audits
        .into_iter()
        .map(|a| {
            let mut analyzer = Analyzer::new(thresholds.clone());
            read::for_each_in(path, &a.files, BATCH_ROWS, |e| analyzer.add(e))?;
            Ok(TrendPoint {
                run_id: a.run_id,
                date: a.date,
                complete: a.complete,
                totals: analyzer.finish(path, a.files.len()).totals,
            })
        })
        .collect()
}

impl Report {
    /// The warning naming the part files a manifest made the report ignore, if any.
    pub(crate) fn ignored_note(&self) -> Option<String> {
        crate::dataset::ignored_note(&self.ignored)
    }

    /// Whether the audit reported is complete: its manifest says so, or it has none (a file is
    /// written only when complete).
    pub fn complete(&self) -> bool {
        self.incomplete.is_none()
    }

    /// The pairs the audit reported is of: its rows when complete, its inputs' pairs when not
    /// (`None` when not known before it ends: a discovery).
    pub fn pairs_expected(&self) -> Option<u64> {
        match &self.incomplete {
            None => Some(self.totals.total),
            Some(i) => i.expected,
        }
    }

    /// `17 of 10,000 pairs committed`, or `17 pairs committed` when the total is not known; `None`
    /// for a complete audit.
    pub(crate) fn committed_text(&self) -> Option<String> {
        let i = self.incomplete?;
        let committed = render::thousands(i.committed);
        Some(match i.expected {
            Some(n) => format!("{committed} of {} pairs committed", render::thousands(n)),
            None => format!("{committed} pairs committed"),
        })
    }

    /// The warning an incomplete audit's report starts with: what it holds, and how to finish it.
    pub(crate) fn incomplete_text(&self) -> Option<String> {
        let what = self.committed_text()?;
        let unknown = self.incomplete.is_some_and(|i| i.expected.is_none());
        let discovery = if unknown {
            " (a discovery: how many it lists is known when it ends)"
        } else {
            ""
        };
        if let Some(w) = &self.writer {
            return Some(format!(
                "incomplete audit, being written now by {w}: {what} so far{discovery}; every count \
                 below is of those only. Report again when that run ends"
            ));
        }
        Some(format!(
            "incomplete audit: {what}{discovery}; every count below is of those only. Finish it \
             with the same `fleet-audit run` command and --resume"
        ))
    }
}

impl Report {
    /// The `--fail-on` conditions that hold, each with how many rows match it (only those above zero;
    /// `incomplete`: 1, the audit).
    pub fn failing(&self, conditions: &[FailOn]) -> Vec<(FailOn, u64)> {
        conditions
            .iter()
            .map(|c| {
                let changed = self.changes.as_ref().map(|ch| ch.totals);
                let n = match c {
                    FailOn::NewStuck => changed.map_or(0, |t| t.new_stuck),
                    FailOn::NewTimedOut => changed.map_or(0, |t| t.new_timed_out),
                    FailOn::NewFailed => changed.map_or(0, |t| t.new_failed),
                    FailOn::Incomplete => u64::from(self.incomplete.is_some()),
                    _ => c.classes().iter().map(|k| self.totals.count(*k)).sum(),
                };
                (*c, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Plain-text tables (no colour) showing at most `top` of the oldest pairs; see
    /// [`Report::render_terminal_with`].
    pub fn render_terminal(&self, top: usize) -> String {
        render::terminal(self, top, false)
    }

    /// The terminal text: the class definitions with their thresholds, one table per job (total, every
    /// status, every class), a table over all jobs when there are several, and the oldest `top` stuck
    /// or timed-out pairs with their ages. `colour` adds ANSI colour (only for a terminal).
    pub(crate) fn render_terminal_with(&self, top: usize, colour: bool) -> String {
        render::terminal(self, top, colour)
    }

    /// The `--json` document: `dataset`, `files`, `thresholds` (`queued_after_s`, `stale_after_s`,
    /// `near_timeout_s`, `top`), `totals` (`jobs` plus the counts below and the overall `oldest`) and
    /// `jobs`: one object per job with `job_id`, `total`, `by_status` (every status of the dataset,
    /// zeros included), `no_status`, `stuck_queued`, `stale_in_progress`, `timed_out`,
    /// `near_timeout`, `not_found`, `errors` and `oldest` (entries: `thing_name`, `job_id`, `class`,
    /// `status`, `since` as ISO-8601 UTC with milliseconds, `age_s` in whole seconds).
    pub fn to_json(&self) -> serde_json::Value {
        render::json(self)
    }

    /// A self-contained HTML page (inline CSS and SVG, nothing fetched) with per-job status bars, the
    /// age histogram of stuck executions and the tables.
    pub(crate) fn render_html(&self) -> String {
        html::page(self)
    }
}

/// Reads the dataset at `path` (a `.parquet`/`.arrow` file or a directory of part files) batch by batch
/// and returns its report.
pub fn report_path(path: &Path, thresholds: &Thresholds) -> Result<Report, ReportError> {
    report_path_since(path, thresholds, None)
}

/// [`report_path`], with what changed since `baseline`: `(where it was read, as it is named)`.
pub(crate) fn report_path_since(
    path: &Path,
    thresholds: &Thresholds,
    baseline: Option<(&Path, &Path)>,
) -> Result<Report, ReportError> {
    for p in std::iter::once(path).chain(baseline.map(|(p, _)| p)) {
        if let Err(e) = std::fs::metadata(p) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(ReportError::NotFound(p.to_path_buf()));
            }
        }
    }
    let mut tracker = match baseline {
        Some((p, name)) => Some(changes::Tracker::from_baseline(p, name, thresholds)?),
        None => None,
    };
    let mut analyzer = Analyzer::new(thresholds.clone());
    let data = read::for_each_execution(path, BATCH_ROWS, |e| {
        analyzer.add(e);
        if let Some(t) = tracker.as_mut() {
            t.add(e);
        }
    })?;
    analyzer.set_failed_targets(data.failed_targets);
    let mut report = analyzer.finish(path, data.files.len());
    report.ignored = data.ignored;
    report.note = data.note;
    report.incomplete = data.incomplete;
    if report.incomplete.is_some() {
        report.writer = crate::dataset::lock::local_writer(path);
    }
    report.changes = tracker.map(changes::Tracker::finish);
    Ok(report)
}

/// The report of the dataset at `path` (local, or `s3://`: fetched), with what changed since
/// `baseline` (local or `s3://`) when one is given.
pub(crate) async fn report_since(
    path: &Path,
    baseline: Option<&Path>,
    client: &crate::aws::client::ClientSettings,
    thresholds: &Thresholds,
    trend: bool,
) -> Result<Report, ReportError> {
    let fetch = |p: &Path| {
        let text = p.to_string_lossy().into_owned();
        async move {
            if crate::dataset::s3::is_url(&text) {
                crate::dataset::fetch_remote(&text, client, trend)
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        }
    };
    let current = fetch(path).await?;
    let previous = match baseline {
        Some(b) => fetch(b).await?,
        None => None,
    };
    let local = |p: &Path, f: &Option<crate::dataset::Fetched>| {
        f.as_ref()
            .map_or_else(|| p.to_path_buf(), |f| f.dir.path().to_path_buf())
    };
    let here = local(path, &current);
    let base = baseline.map(|b| (local(b, &previous), b));
    let mut report = report_path_since(
        &here,
        thresholds,
        base.as_ref().map(|(l, n)| (l.as_path(), *n)),
    )?;
    if trend {
        report.trend = Some(trend_of(&here, thresholds)?);
    }
    if let Some(f) = current {
        report.dataset = path.to_path_buf();
        report.ignored = f.ignored;
        report.note = f.note;
        report.incomplete = f.incomplete;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_beyond_a_week() {
        assert_eq!(parse_threshold("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_threshold("90m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_threshold("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_threshold("30").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_threshold("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_threshold("14d").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(
            parse_threshold("200h").unwrap(),
            Duration::from_secs(200 * 3600)
        );
        for bad in ["0s", "-1h", "ten", "5w", "400d", "", "h"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fail_on_counts_only_conditions_that_hold() {
        let mut a = Analyzer::new(Thresholds::default());
        a.add(&Execution {
            account_id: None,
            region: None,
            job_id: "j",
            thing_name: "t",
            outcome: "ok",
            status: Some("TIMED_OUT"),
            fetched_at_ms: Some(10_000),
            queued_at_ms: Some(0),
            last_updated_at_ms: Some(5_000),
            seconds_before_timed_out: None,
            ..Default::default()
        });
        let r = a.finish(Path::new("x"), 1);
        assert_eq!(
            r.failing(&[FailOn::Stuck, FailOn::TimedOut, FailOn::Errors]),
            vec![(FailOn::TimedOut, 1)]
        );
    }
}
