//! Flags -> validated settings. Every error a user can fix is found here, before any network call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{ConnectionArgs, DescribeArg, FormatArg, RunArgs};
use crate::input::names::{JOB_EXECUTION_STATUSES, JOB_STATUSES};

use crate::aws::call::EngineSettings;
use crate::aws::client::ClientSettings;
use crate::aws::retry::Backoff;
use crate::aws::targets::TargetFlags;
use crate::dataset::{Format, Layout, PartitionKey, Remote};
use crate::input::shard::Shard;
use crate::input::InputSpec;
use crate::time::parse_span;

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

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub input: Input,
    pub layout: Layout,
    pub format: Format,
    pub overwrite: bool,
    pub client: ClientSettings,
    /// The accounts and regions audited at once, around `client` (none given: `client` alone).
    pub targets: TargetFlags,
    /// `--max-targets-in-flight`: targets audited at once (the others wait without a client).
    pub max_targets_in_flight: usize,
    /// `None`: no rate limit.
    pub rps: Option<f64>,
    /// `--burst`; `None`: [`crate::aws::limit::burst_for`]'s default for each limiter's rate.
    pub burst: Option<u32>,
    pub adaptive: bool,
    pub engine: EngineSettings,
    pub part_rows: u64,
    /// A directory output commits its current part at least this often.
    pub part_interval: Duration,
    /// Continue the dataset in a directory output from its manifest.
    pub resume: bool,
    pub quiet: bool,
    pub summary_json: Option<PathBuf>,
    /// Audit only this shard of the input (`--shard K/N`); `None`: all of it.
    pub shard: Option<Shard>,
    /// Hive-style partition folders of a directory output (`--partition-by`), in folder order.
    pub partition_by: Vec<PartitionKey>,
    /// How long an S3 output's lock lives without renewal (`--lock-lease`).
    pub lock_lease: Duration,
    /// `--as-of`: the audit's clock (epoch milliseconds at the start), against a simulator only.
    pub as_of_ms: Option<i64>,
    /// `--retry-errors`: once the audit is complete, its error rows are described again.
    pub retry_errors: bool,
}

/// Parses `10s`, `500ms`, `2m`, or a plain number of seconds: positive and under a week (the
/// durations of a run: timeouts, part interval, lock lease). [`crate::time::parse_span`] is the
/// parser; the report's thresholds use it with days and up to a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let under_a_week = Duration::from_millis(7 * 86_400_000 - 1);
    parse_span(s, false, under_a_week, "under a week")
}

/// Which listed executions are also described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescribeMode {
    /// Every listed execution.
    All,
    /// QUEUED and IN_PROGRESS executions: the ones that can be stuck.
    Active,
    /// None: list rows only.
    None,
}

impl DescribeMode {
    pub fn wants(self, status: Option<&str>) -> bool {
        match self {
            DescribeMode::All => true,
            DescribeMode::None => false,
            DescribeMode::Active => matches!(status, Some("QUEUED" | "IN_PROGRESS")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DescribeMode::All => "all",
            DescribeMode::Active => "active",
            DescribeMode::None => "none",
        }
    }
}

/// What to list.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// These jobs (a file of job ids).
    Jobs(PathBuf),
    /// Every job ListJobs returns, optionally only those in one JobStatus.
    AllJobs { status: Option<String> },
    /// These things (a file of thing names), through ListJobExecutionsForThing.
    Things(PathBuf),
}

/// Discovery settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverSpec {
    pub scope: Scope,
    /// Only executions in this status (the list APIs' `status` filter).
    pub execution_status: Option<String>,
    pub describe: DescribeMode,
    /// Calls per second for each list API (and DescribeJob); `None`: no limit.
    pub list_rps: Option<f64>,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// The previous audit whose rows of unchanged executions are carried (`--baseline`).
    pub baseline: Option<crate::audit::baseline::BaselineSpec>,
}

impl From<&ConnectionArgs> for ClientSettings {
    fn from(c: &ConnectionArgs) -> Self {
        ClientSettings {
            region: c.region.clone(),
            profile: c.profile.clone(),
            endpoint_url: c.endpoint_url.clone(),
            static_credentials: None,
            connect_timeout: None,
            call_timeout: None,
            role_arn: None,
        }
    }
}

/// Where the output goes and in what format, from `--out` and `--format`: a file, a local directory,
/// or a directory in an object store (`s3://bucket/prefix/`; `file://PATH` is the local PATH).
pub fn output_of(out: &Path, format: Option<FormatArg>) -> Result<(Layout, Format), ConfigError> {
    let text = out.to_string_lossy();
    if let Some(local) = text.strip_prefix("file://") {
        return output_of(Path::new(local), format);
    }
    if crate::dataset::s3::is_url(&text) {
        let remote = Remote::parse(&text).map_err(|reason| ConfigError::Output {
            path: out.to_path_buf(),
            reason,
        })?;
        if Format::from_path(Path::new(remote.prefix.as_str())).is_some() {
            return Err(ConfigError::Output {
                path: out.to_path_buf(),
                reason: "an object-store output is a directory of parts: name a prefix, not a file"
                    .into(),
            });
        }
        let format = match format {
            Some(FormatArg::Arrow) => Format::Arrow,
            _ => Format::Parquet,
        };
        return Ok((Layout::Remote(remote), format));
    }
    let resolved = resolve_local(out)?;
    let out = resolved.as_path();
    let by_ext = Format::from_path(out);
    if by_ext.is_none() && !out.is_dir() {
        if let Some(ext) = out
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
        {
            if OTHER_FILE_TYPES.contains(&ext.as_str()) {
                return Err(ConfigError::Output {
                    path: out.to_path_buf(),
                    reason: format!(
                        "names a .{ext} file, which this tool does not write: name a .parquet or \
                         .arrow file, or a directory"
                    ),
                });
            }
        }
    }
    let asked = format.map(|f| match f {
        FormatArg::Parquet => Format::Parquet,
        FormatArg::Arrow => Format::Arrow,
    });
    match (by_ext, asked) {
        (Some(e), Some(a)) if e != a => Err(flag(
            "format",
            format!(
                "{} does not match the extension of {}",
                a.extension(),
                out.display()
            ),
        )),
        (Some(e), _) => Ok((Layout::File(out.to_path_buf()), e)),
        (None, a) => Ok((Layout::Dir(out.to_path_buf()), a.unwrap_or(Format::Parquet))),
    }
}

/// Extensions of files of other types: `--out audit.csv` is a mistake, never a directory named so.
const OTHER_FILE_TYPES: &[&str] = &[
    "csv", "tsv", "txt", "json", "jsonl", "ndjson", "yaml", "yml", "xml", "html", "htm", "orc",
    "avro", "feather", "ipc", "pq", "parq", "xlsx", "xls", "gz", "zip", "zst", "bz2", "xz", "tar",
    "db", "sqlite", "duckdb", "log", "md",
];

/// A local `--out` as it will be written. A symbolic link at `--out` itself is the user's way of
/// naming its target, and is resolved, so that every spelling of one output is one output (its lock
/// is keyed by the real path, and a file output is replaced where the link points, never the link
/// itself); a link to nothing is refused rather than replaced.
fn resolve_local(out: &Path) -> Result<PathBuf, ConfigError> {
    let is_link = std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(out.to_path_buf());
    }
    std::fs::canonicalize(out).map_err(|_| ConfigError::Output {
        path: out.to_path_buf(),
        reason: format!(
            "is a symbolic link to {}, which does not exist: name the real path (nothing is \
             written through a link to nothing)",
            std::fs::read_link(out)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into())
        ),
    })
}

/// Refuses a symbolic link (or anything but a regular file) where this tool will create one of its
/// own files beside the output (the lock, a file output's temporary): it never writes through a
/// link it did not make.
pub(crate) fn check_no_planted_link(out: &Path, own: &Path) -> Result<(), ConfigError> {
    match std::fs::symlink_metadata(own) {
        Ok(m) if !m.file_type().is_file() => Err(ConfigError::Output {
            path: out.to_path_buf(),
            reason: format!(
                "{} is a {} where this tool keeps its own file: it never writes through a link \
                 (or into anything) it did not make; remove it",
                own.display(),
                if m.file_type().is_symlink() {
                    "symbolic link"
                } else {
                    "non-file"
                }
            ),
        }),
        _ => Ok(()),
    }
}

impl RunConfig {
    /// Validates the flags. Touches the file system only to look at the output location.
    pub fn from_args(a: &RunArgs) -> Result<RunConfig, ConfigError> {
        let input = if a.discover {
            Input::Discover(discover_spec(a)?)
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
        if !a.rps.is_finite() || a.rps < 0.0 {
            return Err(flag("rps", "must be a number >= 0 (0 means no limit)"));
        }
        if a.burst == Some(0) {
            return Err(flag("burst", "must be at least 1"));
        }
        if !(1..=100_000).contains(&a.concurrency) {
            return Err(flag("concurrency", "must be between 1 and 100000"));
        }
        if !(1..=100).contains(&a.max_attempts) {
            return Err(flag("max-attempts", "must be between 1 and 100"));
        }
        if a.part_rows == 0 {
            return Err(flag("part-rows", "must be at least 1"));
        }
        let call_timeout = parse_duration(&a.call_timeout).map_err(|r| flag("call-timeout", r))?;
        let part_interval =
            parse_duration(&a.part_interval).map_err(|r| flag("part-interval", r))?;
        let lock_lease = parse_duration(&a.lock_lease).map_err(|r| flag("lock-lease", r))?;
        let shard = a
            .shard
            .as_deref()
            .map(|s| Shard::parse(s, |var| std::env::var(var).ok()))
            .transpose()
            .map_err(|e| flag("shard", e.to_string()))?;
        let client = ClientSettings {
            // Every SDK call of the run (STS, Organizations, Account, IoT) ends within it.
            call_timeout: Some(call_timeout),
            ..ClientSettings::from(&a.connection)
        };
        let targets = target_flags(a)?;
        let (layout, format) = output_of(&a.out, a.format)?;
        if a.resume && matches!(layout, Layout::File(_)) {
            return Err(flag(
                "resume",
                "needs a directory output (--out DIR): a single file is only written when complete",
            ));
        }
        if targets.org.is_some() && !layout.is_dir() {
            return Err(flag(
                "org-role",
                "needs a directory output (--out DIR or s3://bucket/prefix/), so that a resume can retry the targets that could not be reached",
            ));
        }
        if a.max_targets_in_flight == 0 {
            return Err(flag("max-targets-in-flight", "must be at least 1"));
        }
        let partition_by =
            PartitionKey::parse_list(&a.partition_by).map_err(|r| flag("partition-by", r))?;
        if !partition_by.is_empty() && !layout.is_dir() {
            return Err(flag(
                "partition-by",
                "needs a directory output (--out DIR or s3://bucket/prefix/), not a single file",
            ));
        }
        if a.resume && a.overwrite {
            return Err(flag("resume", "cannot be combined with --overwrite"));
        }
        // Files written when the run ends (`--metrics`, `--summary-json`): a bad path is found now,
        // not after the audit.
        if let Some(p) = &a.metrics {
            check_file_destination("metrics", p)?;
        }
        if let Some(p) = &a.summary_json {
            check_file_destination("summary-json", p)?;
        }
        let as_of_ms = a.as_of.map(|t| check_as_of(t, a)).transpose()?;
        if a.retry_errors {
            if !matches!(layout, Layout::Dir(_)) {
                return Err(flag(
                    "retry-errors",
                    "rewrites the parts of a local directory output (--out DIR); not a single file or an s3:// prefix yet",
                ));
            }
            let one = targets.org.is_none()
                && !targets.all_regions
                && targets.regions.len() <= 1
                && targets.profiles.len() <= 1
                && targets.role_arns.len() <= 1;
            if !one {
                return Err(flag(
                    "retry-errors",
                    "describes again with one target (one account and region); not with --regions, --profiles, --role-arns of several or --org-role yet",
                ));
            }
        }
        // A resumed directory is checked against its manifest when the run starts.
        if !a.resume {
            check_output(&layout, a.overwrite)?;
        }
        Ok(RunConfig {
            input,
            layout,
            format,
            overwrite: a.overwrite,
            client,
            targets,
            max_targets_in_flight: a.max_targets_in_flight,
            rps: (a.rps > 0.0).then_some(a.rps),
            burst: a.burst,
            adaptive: !a.no_adaptive,
            engine: EngineSettings {
                concurrency: a.concurrency,
                max_attempts: a.max_attempts,
                call_timeout,
                backoff: Backoff::default(),
            },
            part_rows: a.part_rows,
            part_interval,
            resume: a.resume,
            quiet: a.quiet,
            summary_json: a.summary_json.clone(),
            shard,
            partition_by,
            lock_lease,
            as_of_ms,
            retry_errors: a.retry_errors,
        })
    }
}

/// `--as-of T`: a time in epoch seconds, for a run against a simulator only. The IoT endpoint must
/// be set and none of AWS's: a real account's executions are as of the real time, and rows dated
/// otherwise would lie about when they were seen.
fn check_as_of(t: f64, a: &RunArgs) -> Result<i64, ConfigError> {
    // From 2001-09-09 to 2286-11-20: epoch seconds, not milliseconds.
    if !(t.is_finite() && (1e9..1e10).contains(&t)) {
        return Err(flag(
            "as-of",
            "must be a time in epoch seconds (a simulator's --now, such as 1764806400)",
        ));
    }
    let mut endpoints: Vec<String> = a.connection.endpoint_url.iter().cloned().collect();
    endpoints.extend(
        a.region_endpoints
            .iter()
            .filter_map(|e| e.split_once('=').map(|(_, url)| url.to_string())),
    );
    if a.connection.endpoint_url.is_none() {
        // What the SDK reads when no flag names an endpoint.
        endpoints.extend(
            ["AWS_ENDPOINT_URL_IOT", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty())),
        );
    }
    if endpoints.is_empty() {
        return Err(flag(
            "as-of",
            "is for a run against a simulator: give its --endpoint-url (against AWS, a run's time is this machine's clock)",
        ));
    }
    if let Some(aws) = endpoints.iter().find(|u| is_aws_host(u)) {
        return Err(flag(
            "as-of",
            format!(
                "is for a run against a simulator, and {} is AWS's endpoint",
                crate::redact::redact(aws)
            ),
        ));
    }
    Ok((t * 1000.0).round() as i64)
}

/// Whether an endpoint URL's host is AWS's (`*.amazonaws.com`, `*.amazonaws.com.cn`, `*.api.aws`).
fn is_aws_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// The discovery settings of `run --discover` (what to list, filters, describe mode, list rate).
fn discover_spec(a: &RunArgs) -> Result<DiscoverSpec, ConfigError> {
    let scope = match (&a.things, &a.jobs) {
        (Some(_), Some(_)) => {
            return Err(flag(
                "discover",
                "give --jobs (list each job's executions) or --things (each thing's), not both",
            ))
        }
        (None, Some(j)) => Scope::Jobs(j.clone()),
        (Some(t), None) => Scope::Things(t.clone()),
        (None, None) => Scope::AllJobs {
            status: a.job_status.clone(),
        },
    };
    if a.job_status.is_some() && !matches!(scope, Scope::AllJobs { .. }) {
        return Err(flag(
            "job-status",
            "filters ListJobs: it cannot be combined with --jobs or --things",
        ));
    }
    if let Some(s) = &a.job_status {
        if !JOB_STATUSES.contains(&s.as_str()) {
            return Err(flag(
                "job-status",
                format!("must be one of {}", JOB_STATUSES.join(", ")),
            ));
        }
    }
    if let Some(s) = &a.execution_status {
        if !JOB_EXECUTION_STATUSES.contains(&s.as_str()) {
            return Err(flag(
                "execution-status",
                format!("must be one of {}", JOB_EXECUTION_STATUSES.join(", ")),
            ));
        }
    }
    if !a.list_rps.is_finite() || a.list_rps < 0.0 {
        return Err(flag("list-rps", "must be a number >= 0 (0 means no limit)"));
    }
    Ok(DiscoverSpec {
        scope,
        execution_status: a.execution_status.clone(),
        describe: match a.describe {
            DescribeArg::All => DescribeMode::All,
            DescribeArg::Active => DescribeMode::Active,
            DescribeArg::None => DescribeMode::None,
        },
        list_rps: (a.list_rps > 0.0).then_some(a.list_rps),
        dry_run: a.dry_run,
        baseline: a
            .baseline
            .as_deref()
            .map(crate::audit::baseline::BaselineSpec::parse),
    })
}

/// The multi-target flags, split and parsed.
fn target_flags(a: &RunArgs) -> Result<TargetFlags, ConfigError> {
    let list = |flag, v: &Option<String>| {
        v.as_deref()
            .map(|v| crate::aws::targets::split_list(flag, v))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let mut regions = list("regions", &a.regions)?;
    let all_regions = regions.iter().any(|r| r == "all");
    if all_regions && regions.len() > 1 {
        return Err(crate::aws::targets::TargetError::Bad {
            flag: "regions",
            value: regions.join(","),
            reason: "`all` stands alone",
        }
        .into());
    }
    if all_regions {
        regions.clear();
    }
    let org = a.org_role.as_ref().map(|role| {
        Ok::<_, crate::aws::targets::TargetError>(crate::aws::targets::OrgFlags {
            role: role.clone(),
            accounts: list("accounts", &a.accounts)?,
            exclude: list("exclude-accounts", &a.exclude_accounts)?,
        })
    });
    let flags = TargetFlags {
        regions,
        all_regions,
        org: org.transpose()?,
        profiles: list("profiles", &a.profiles)?,
        role_arns: a.role_arns.clone(),
        region_endpoints: a
            .region_endpoints
            .iter()
            .map(|v| crate::aws::targets::parse_region_endpoint(v))
            .collect::<Result<_, _>>()?,
    };
    crate::aws::targets::check_org(&flags)?;
    Ok(flags)
}

/// Whether a file can be created in `dir` or, when it does not exist yet, in its nearest existing
/// ancestor (a probe file is created and removed at once).
fn writable_location(dir: &Path) -> Result<(), String> {
    let mut at = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    while !at.exists() {
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !at.is_dir() {
        return Err(format!("{} is not a directory", at.display()));
    }
    tempfile::Builder::new()
        .prefix(".fleet-audit-probe")
        .tempfile_in(at)
        .map(drop)
        .map_err(|e| format!("cannot write in {}: {e}", at.display()))
}

/// Checks, before any call, that a file a flag names (`--metrics FILE`, `--summary-json FILE`) can be
/// written when the run ends: its folder exists and takes a new file, and it is not a folder. Found
/// after an audit, a typo would cost the whole audit's figures.
pub fn check_file_destination(name: &'static str, path: &Path) -> Result<(), ConfigError> {
    let bad = |reason: String| flag(name, reason);
    if path.is_dir() {
        return Err(bad(format!(
            "{} is a directory; name a file",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad(format!(
            "the folder {} does not exist, so {} could not be written",
            dir.display(),
            path.display()
        )));
    }
    writable_location(dir).map_err(bad)
}

/// Refuses existing output without `overwrite`, and a location that cannot hold the output.
pub fn check_output(layout: &Layout, overwrite: bool) -> Result<(), ConfigError> {
    let out = |reason: String| ConfigError::Output {
        path: layout.path().to_path_buf(),
        reason,
    };
    if let Layout::File(p) | Layout::Dir(p) = layout {
        let lock = crate::dataset::lock::local_lock_path(p).map_err(|e| out(e.to_string()))?;
        check_no_planted_link(p, &lock)?;
        if let Layout::File(_) = layout {
            check_no_planted_link(p, &crate::dataset::temp_path(p))?;
        }
    }
    match layout {
        Layout::File(p) => {
            if p.is_dir() {
                return Err(out("is a directory; name a .parquet or .arrow file".into()));
            }
            if p.exists() && !overwrite {
                return Err(ConfigError::OutputExists(p.clone()));
            }
            // A missing folder is created, as for a directory output.
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            writable_location(parent.unwrap_or(Path::new("."))).map_err(out)?;
        }
        Layout::Dir(d) => {
            if d.exists() {
                if !d.is_dir() {
                    return Err(out(
                        "exists and is not a directory (name a .parquet or .arrow file, or a directory)"
                            .into(),
                    ));
                }
                let non_empty = std::fs::read_dir(d)
                    .map_err(|e| out(e.to_string()))?
                    .next()
                    .is_some();
                if non_empty && !overwrite {
                    return Err(ConfigError::DirExists(d.clone()));
                }
            }
            writable_location(d).map_err(out)?;
        }
        // Checked once connected, before any call (`run`).
        Layout::Remote(_) => {}
    }
    Ok(())
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

    #[test]
    fn output_layout_follows_extension_and_format() {
        let (l, f) = output_of(Path::new("a/b.parquet"), None).unwrap();
        assert_eq!(
            (l, f),
            (Layout::File("a/b.parquet".into()), Format::Parquet)
        );
        let (l, f) = output_of(Path::new("x.arrow"), None).unwrap();
        assert_eq!((l, f), (Layout::File("x.arrow".into()), Format::Arrow));
        let (l, f) = output_of(Path::new("outdir"), Some(FormatArg::Arrow)).unwrap();
        assert_eq!((l, f), (Layout::Dir("outdir".into()), Format::Arrow));
        assert!(output_of(Path::new("x.arrow"), Some(FormatArg::Parquet)).is_err());
    }

    #[test]
    fn object_store_urls_are_directories_and_file_urls_are_local() {
        let (l, f) = output_of(Path::new("s3://bucket/audit"), None).unwrap();
        match l {
            Layout::Remote(r) => assert_eq!(r.url, "s3://bucket/audit/"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f, Format::Parquet);
        let e = output_of(Path::new("s3://bucket/audit.parquet"), None).unwrap_err();
        assert!(e.to_string().contains("directory of parts"), "{e}");
        let e = output_of(Path::new("s3://"), None).unwrap_err();
        assert!(e.to_string().contains("no bucket"), "{e}");
        let e = output_of(Path::new("gs://bucket/a"), None).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let (l, _) = output_of(Path::new("file:///tmp/a.parquet"), None).unwrap();
        assert_eq!(l, Layout::File("/tmp/a.parquet".into()));
    }

    #[test]
    fn existing_output_needs_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("o.parquet");
        std::fs::write(&f, b"x").unwrap();
        let e = check_output(&Layout::File(f.clone()), false).unwrap_err();
        assert!(e.to_string().contains("pass --overwrite"), "{e}");
        assert!(check_output(&Layout::File(f.clone()), true).is_ok());
        // A missing folder is created by the run, for a file as for a directory.
        assert!(check_output(&Layout::File(d.path().join("nope/o.parquet")), false).is_ok());
        assert!(!d.path().join("nope").exists(), "checking creates nothing");
        assert!(check_output(&Layout::Dir(d.path().join("fresh")), false).is_ok());
        assert!(!d.path().join("fresh").exists(), "checking creates nothing");
        let e = check_output(&Layout::Dir("/proc/fleet-audit/ds".into()), false).unwrap_err();
        assert!(e.to_string().contains("cannot write in /proc"), "{e}");
        let e = check_output(&Layout::File(f.join("x.parquet")), false).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        let e = check_output(&Layout::Dir(d.path().to_path_buf()), false).unwrap_err();
        assert!(matches!(e, ConfigError::DirExists(_)));
        assert!(
            e.to_string().contains("pass --resume to finish")
                && e.to_string().contains("or --overwrite to replace it"),
            "{e}"
        );
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
        assert!(on.adaptive);
        let off = RunConfig::from_args(&run_args(&["--out", out, "--no-adaptive"])).unwrap();
        assert!(!off.adaptive);
    }
}
