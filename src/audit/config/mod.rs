//! Flags -> validated settings, in parts that mirror `run`'s groups of flags: the input, the output
//! (`output`), the targets (`targets`), the call rate, the engine, and discovery (`discover`). Every
//! error a user can fix is found here, before any network call; no part holds a connection.

mod discover;
mod output;
mod targets;

use std::path::PathBuf;
use std::time::Duration;

use crate::aws::call::EngineSettings;
use crate::aws::retry::Backoff;
use crate::cli::RunArgs;
use crate::input::shard::Shard;
use crate::input::InputSpec;
use crate::time::parse_span;

pub use discover::{DescribeMode, DiscoverSpec, Scope};
pub(crate) use output::check_no_planted_link;
pub use output::OutputSettings;
pub(crate) use output::{check_file_destination, check_not_nested, check_output};
pub use targets::TargetSettings;

/// A flag value or an output location that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Flag { flag: &'static str, reason: String },
    #[error("give either --things and --jobs, or --pairs (or --discover)")]
    NoInput,
    #[error("output {0} exists; pass --overwrite to replace it")]
    OutputExists(PathBuf),
    /// A directory output that holds something: an audit to finish or replace.
    #[error("output {0} exists; pass --resume to finish (or re-check) the audit it holds, or --overwrite to replace it")]
    DirExists(PathBuf),
    #[error("output {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error(transparent)]
    Targets(#[from] crate::aws::targets::TargetError),
}

fn flag(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Flag {
        flag,
        reason: reason.into(),
    }
}

/// What a run audits.
#[derive(Debug, Clone)]
pub enum Input {
    /// Describe every pair of these inputs.
    Describe(InputSpec),
    /// List, then describe what needs detail.
    Discover(DiscoverSpec),
}

/// Everything `run` needs, validated, in parts.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub input: Input,
    pub output: OutputSettings,
    pub targets: TargetSettings,
    pub rate: RateSettings,
    pub engine: EngineSettings,
    /// Audit only this shard of the input (`--shard K/N`); `None`: all of it.
    pub shard: Option<Shard>,
    pub quiet: bool,
    pub summary_json: Option<PathBuf>,
    /// `--as-of`: the audit's clock (epoch milliseconds at the start), against a simulator only.
    pub as_of_ms: Option<i64>,
    /// `--retry-errors`: once the audit is complete, its error rows are described again.
    pub retry_errors: bool,
    /// `--context`: what each row learns of its job and thing.
    pub context: crate::audit::context::ContextSettings,
}

/// `--context`, `--context-rps`, `--queued-after`.
fn context_settings(a: &RunArgs) -> Result<crate::audit::context::ContextSettings, ConfigError> {
    use crate::cli::ContextArg;
    if !a.context_rps.is_finite() || a.context_rps < 0.0 {
        return Err(flag(
            "context-rps",
            "must be a number >= 0 (0 means no limit)",
        ));
    }
    let queued_after = crate::time::parse_threshold(&a.queued_after)
        .map_err(|reason| flag("queued-after", reason))?;
    Ok(crate::audit::context::ContextSettings {
        jobs: matches!(a.context, ContextArg::All | ContextArg::Jobs),
        things: matches!(a.context, ContextArg::All | ContextArg::Things),
        rps: (a.context_rps > 0.0).then_some(a.context_rps),
        queued_after_ms: i64::try_from(queued_after.as_millis()).unwrap_or(i64::MAX),
    })
}

/// The pace of DescribeJobExecution calls, per target.
#[derive(Debug, Clone, Default)]
pub struct RateSettings {
    /// `--rps`; `None`: no rate limit.
    pub rps: Option<f64>,
    /// `--burst`; `None`: [`crate::aws::limit::burst_for`]'s default for each limiter's rate.
    pub burst: Option<u32>,
    /// Whether throttles slow the pace down (`--no-adaptive` turns it off).
    pub adaptive: bool,
}

impl RateSettings {
    fn from_args(a: &RunArgs) -> Result<Self, ConfigError> {
        if !a.rps.is_finite() || a.rps < 0.0 {
            return Err(flag("rps", "must be a number >= 0 (0 means no limit)"));
        }
        if a.burst == Some(0) {
            return Err(flag("burst", "must be at least 1"));
        }
        Ok(RateSettings {
            rps: (a.rps > 0.0).then_some(a.rps),
            burst: a.burst,
            adaptive: !a.no_adaptive,
        })
    }
}

/// The engine's settings from `--concurrency`, `--max-attempts` and `--call-timeout`.
fn engine_settings(a: &RunArgs) -> Result<EngineSettings, ConfigError> {
    if !(1..=100_000).contains(&a.concurrency) {
        return Err(flag("concurrency", "must be between 1 and 100000"));
    }
    if !(1..=100).contains(&a.max_attempts) {
        return Err(flag("max-attempts", "must be between 1 and 100"));
    }
    Ok(EngineSettings {
        concurrency: a.concurrency,
        max_attempts: a.max_attempts,
        call_timeout: parse_duration(&a.call_timeout).map_err(|r| flag("call-timeout", r))?,
        backoff: Backoff::default(),
    })
}

/// Parses `10s`, `500ms`, `2m`, or a plain number of seconds: positive and under a week (the
/// durations of a run: timeouts, part interval, lock lease). [`crate::time::parse_span`] is the
/// parser; the report's thresholds use it with days and up to a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let under_a_week = Duration::from_millis(7 * 86_400_000 - 1);
    parse_span(s, false, under_a_week, "under a week")
}

impl RunConfig {
    /// Validates the flags, part by part, then what holds across parts. Touches the file system
    /// only to look at the output location and the folders of the files written at the end.
    pub(crate) fn from_args(a: &RunArgs) -> Result<RunConfig, ConfigError> {
        let input = if a.discover {
            Input::Discover(discover::discover_spec(a)?)
        } else {
            match (&a.things, &a.jobs, &a.pairs) {
                (Some(t), Some(j), None) => Input::Describe(InputSpec::Lists {
                    things: t.clone(),
                    jobs: j.clone(),
                }),
                (None, None, Some(p)) => Input::Describe(InputSpec::Pairs(p.clone())),
                _ => return Err(ConfigError::NoInput),
            }
        };
        let rate = RateSettings::from_args(a)?;
        let engine = engine_settings(a)?;
        let output = OutputSettings::from_args(a)?;
        let shard = a
            .shard
            .as_deref()
            .map(|s| Shard::parse(s, |var| std::env::var(var).ok()))
            .transpose()
            .map_err(|e| flag("shard", e.to_string()))?;
        let targets = TargetSettings::from_args(a, engine.call_timeout)?;
        // Files written when the run ends (`--metrics`, `--summary-json`): a bad path is found now,
        // not after the audit.
        if let Some(p) = &a.metrics {
            check_file_destination("metrics", p)?;
        }
        if let Some(p) = &a.summary_json {
            check_file_destination("summary-json", p)?;
        }
        let as_of_ms = a.as_of.map(|t| targets::check_as_of(t, a)).transpose()?;
        if a.retry_errors {
            if !matches!(output.layout, crate::dataset::Layout::Dir(_)) {
                return Err(flag(
                    "retry-errors",
                    "rewrites the parts of a local directory output (--out DIR); not a single file or an s3:// prefix yet",
                ));
            }
            if !targets.is_one() {
                return Err(flag(
                    "retry-errors",
                    "describes again with one target (one account and region); not with --regions, --profiles, --role-arns of several or --org-role yet",
                ));
            }
        }
        check_not_nested(&output.layout)?;
        // A resumed directory is checked against its manifest when the run starts.
        if !output.resume {
            check_output(&output.layout, output.overwrite)?;
        }
        Ok(RunConfig {
            input,
            output,
            targets,
            rate,
            engine,
            shard,
            quiet: a.quiet,
            summary_json: a.summary_json.clone(),
            as_of_ms,
            retry_errors: a.retry_errors,
            context: context_settings(a)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}

#[cfg(test)]
mod flag_tests {
    use super::*;
    use clap::Parser;

    fn run_args(extra: &[&str]) -> RunArgs {
        let argv = ["fleet-audit", "run", "--things", "t.txt", "--jobs", "j.txt"];
        let cli = crate::cli::Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
        match cli.command {
            crate::cli::Command::Run(a) => *a,
            _ => unreachable!("a run"),
        }
    }

    /// `--no-adaptive` reaches the limiter's settings (the engine's tests show what each does).
    #[test]
    fn no_adaptive_turns_the_adaptive_pace_off() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("o.parquet");
        let out = out.to_str().unwrap();
        let on = RunConfig::from_args(&run_args(&["--out", out])).unwrap();
        assert!(on.rate.adaptive);
        let off = RunConfig::from_args(&run_args(&["--out", out, "--no-adaptive"])).unwrap();
        assert!(!off.rate.adaptive);
    }
}
