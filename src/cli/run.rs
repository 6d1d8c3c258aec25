//! `fleet-audit run`'s flags (`RunArgs`, under the help headings Input, Output, Discovery, Rate and
//! retries, AWS, Organization, History and Display) and their value enums (`FormatArg`,
//! `DescribeArg`). The subcommand's one-line help is `Command::Run`'s, in `cli`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::ConnectionArgs;

/// Which discovered executions to describe.
/// `run --context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContextArg {
    All,
    Jobs,
    Things,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeArg {
    /// Every listed execution.
    All,
    /// QUEUED and IN_PROGRESS only (the ones that can be stuck).
    Active,
    /// None: rows from the list summaries only.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Parquet,
    Arrow,
}

/// `--table-format`: how complete audits are published beside the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormatArg {
    /// Every complete audit becomes one Delta Lake commit (`_delta_log/`).
    Delta,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// File of thing names, one a line (`-`: stdin).
    ///
    /// Audited against every job of --jobs; with --discover alone: list each thing's executions.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "pairs",
        help_heading = "Input"
    )]
    pub things: Option<PathBuf>,
    /// File of job ids, one a line (`-`: stdin).
    ///
    /// With --discover alone: list each job's executions.
    #[arg(long, value_name = "FILE", help_heading = "Input")]
    pub jobs: Option<PathBuf>,
    /// CSV or JSON Lines file of pairs (`-`: stdin).
    ///
    /// CSV with the header thing_name,job_id[,execution_number] in any order, or JSON Lines with those
    /// keys.
    #[arg(long, value_name = "FILE", help_heading = "Input")]
    pub pairs: Option<PathBuf>,
    /// A .parquet or .arrow file, or a directory of parts, local or `s3://bucket/prefix/`.
    ///
    /// The S3 endpoint comes from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.
    #[arg(long, value_name = "PATH|URL", help_heading = "Output")]
    pub out: PathBuf,
    /// Hive-style folders of a directory output: `date` and/or `job_id`, in folder order.
    ///
    /// `date` is the run's UTC start date; a partition column is taken out of the data files.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "COLUMNS",
        help_heading = "Output"
    )]
    pub partition_by: Vec<String>,
    /// Output format (default: from --out's extension, else parquet).
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<FormatArg>,
    /// Publish each complete audit of a directory output as one Delta Lake table version, so that
    /// Delta readers (Athena, Spark, DuckDB's delta_scan, deltalake, polars) never see part of one.
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Output")]
    pub table_format: Option<TableFormatArg>,
    /// Replace existing output (only this tool's files of a directory).
    #[arg(long, help_heading = "Output")]
    pub overwrite: bool,
    /// Rows per part file in a directory output.
    #[arg(long, default_value_t = 1_000_000, help_heading = "Output")]
    pub part_rows: u64,
    /// Commit a directory output's current part at least this often, e.g. `5m`.
    #[arg(
        long,
        default_value = "5m",
        value_name = "DURATION",
        help_heading = "Output"
    )]
    pub part_interval: String,
    /// Lease of an S3 output's lock: renewed every quarter of it, taken over once it lapses.
    #[arg(
        long,
        default_value = "1m",
        value_name = "DURATION",
        help_heading = "Output"
    )]
    pub lock_lease: String,
    /// Continue an interrupted audit in the same directory, skipping what is committed.
    #[arg(long, help_heading = "Output")]
    pub resume: bool,
    /// With --resume: describe the audit's error rows again once it is complete, each replaced in
    /// its part (one row a pair).
    ///
    /// A pair whose calls all failed (throttling or 5xx storms past --max-attempts) is an `error`
    /// row; this describes just those pairs again, at the run's rate, and rewrites the parts that
    /// hold them in one manifest commit. Local directory outputs of one target.
    #[arg(long, requires = "resume", help_heading = "Output")]
    pub retry_errors: bool,
    #[command(flatten, next_help_heading = "AWS")]
    pub connection: ConnectionArgs,
    /// Audit these regions at once (comma-separated), each at its own --rps; `all`: the regions
    /// enabled in each account (Account ListRegions).
    #[arg(long, value_name = "REGION,...|all", help_heading = "AWS")]
    pub regions: Option<String>,
    /// Audit every ACTIVE account of the organization through this role (`arn:aws:iam::ID:role/NAME`).
    ///
    /// The accounts come from Organizations ListAccounts, called with the credentials of the
    /// management account or a delegated administrator. An account whose role cannot be assumed is
    /// recorded as a failed target and the others go on (exit 5); --resume retries it.
    #[arg(long, value_name = "NAME", help_heading = "Organization")]
    pub org_role: Option<String>,
    /// With --org-role: only these accounts (comma-separated ids).
    #[arg(
        long,
        value_name = "ID,...",
        requires = "org_role",
        help_heading = "Organization"
    )]
    pub accounts: Option<String>,
    /// With --org-role: not these accounts (comma-separated ids).
    #[arg(
        long,
        value_name = "ID,...",
        requires = "org_role",
        help_heading = "Organization"
    )]
    pub exclude_accounts: Option<String>,
    /// At most this many targets audited at once; the others wait, without a client or connection.
    #[arg(
        long,
        default_value_t = 64,
        value_name = "N",
        help_heading = "Organization"
    )]
    pub max_targets_in_flight: usize,
    /// Audit these profiles' accounts at once (comma-separated), each at its own --rps.
    #[arg(
        long,
        value_name = "PROFILE,...",
        conflicts_with = "profile",
        help_heading = "AWS"
    )]
    pub profiles: Option<String>,
    /// Assume this role (through STS) and audit its account; repeatable.
    #[arg(long = "role-arn", value_name = "ARN", help_heading = "AWS")]
    pub role_arns: Vec<String>,
    /// The endpoint of one region, `REGION=URL`; repeatable.
    ///
    /// For emulators and private endpoints.
    #[arg(
        long = "region-endpoint",
        value_name = "REGION=URL",
        help_heading = "AWS"
    )]
    pub region_endpoints: Vec<String>,
    /// Most calls per second per target, retries included (0: no cap).
    ///
    /// A target is one account and region; each has its own limiter. With 0, calls are not paced
    /// until the service throttles one; then the adaptive pace starts from the rate of answered
    /// calls (unless --no-adaptive).
    #[arg(long, default_value_t = 10.0, help_heading = "Rate and retries")]
    pub rps: f64,
    /// Calls that may start at once after an idle moment (default: a tenth of a second's worth,
    /// at least 2).
    ///
    /// A little burst lets a worker that reaches its slot late still take it, so the rate holds at
    /// --rps; it stays far inside the service's own bucket (a second's worth at AWS).
    #[arg(long, help_heading = "Rate and retries")]
    pub burst: Option<u32>,
    /// Most pairs in flight at once, per target.
    #[arg(long, default_value_t = 16, help_heading = "Rate and retries")]
    pub concurrency: usize,
    /// Attempts per pair, the first included.
    #[arg(long, default_value_t = 5, help_heading = "Rate and retries")]
    pub max_attempts: u32,
    /// Upper bound of one attempt, e.g. `10s`, `500ms`.
    #[arg(
        long,
        default_value = "10s",
        value_name = "DURATION",
        help_heading = "Rate and retries"
    )]
    pub call_timeout: String,
    /// Keep the rate at --rps even when throttled.
    ///
    /// By default a throttle lowers the pace, which then climbs back slowly; with --rps 0 the first
    /// throttle starts a pace from the rate of answered calls.
    #[arg(long, help_heading = "Rate and retries")]
    pub no_adaptive: bool,
    /// List executions first and describe only what needs detail.
    ///
    /// ListJobExecutionsForJob answers 250 a call. Jobs come from --jobs, or from ListJobs; with
    /// --things instead, each thing's executions.
    #[arg(long, conflicts_with = "pairs", help_heading = "Discovery")]
    pub discover: bool,
    /// Only jobs in this status (no --jobs/--things), e.g. IN_PROGRESS.
    #[arg(
        long,
        value_name = "STATUS",
        requires = "discover",
        help_heading = "Discovery"
    )]
    pub job_status: Option<String>,
    /// Only executions in this status, e.g. QUEUED.
    #[arg(
        long,
        value_name = "STATUS",
        requires = "discover",
        help_heading = "Discovery"
    )]
    pub execution_status: Option<String>,
    /// Which listed executions to describe too.
    #[arg(
        long,
        value_enum,
        default_value = "active",
        requires = "discover",
        help_heading = "Discovery"
    )]
    pub describe: DescribeArg,
    /// Most calls per second of each list API (0: no limit).
    ///
    /// Each list API has its own quota at AWS, and its own limiter here.
    #[arg(
        long,
        default_value_t = 10.0,
        requires = "discover",
        help_heading = "Discovery"
    )]
    pub list_rps: f64,
    /// What each row learns besides its execution: `all` (its job and its thing), `jobs`
    /// (DescribeJob, once per job), `things` (fleet indexing, one SearchIndex per 100 things: thing
    /// type, attributes, groups, connectivity, or without fleet indexing the registry's listings;
    /// and the queue of a thing whose QUEUED execution waited past --queued-after), `none`.
    #[arg(long, value_enum, default_value = "all", help_heading = "Diagnosis")]
    pub context: ContextArg,
    /// Calls per second of each context API (DescribeJob, SearchIndex, ListJobs,
    /// ListJobExecutionsForJob; ListThings, ListThingGroups, ListThingsInThingGroup without fleet
    /// indexing), each its own limiter as each has its own quota at AWS; 0: no limit.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "N",
        help_heading = "Diagnosis"
    )]
    pub context_rps: f64,
    /// A QUEUED execution waiting longer than this has its thing's queue read (blocked_by), as
    /// `report --queued-after` calls it stuck.
    #[arg(
        long,
        default_value = "24h",
        value_name = "DURATION",
        help_heading = "Diagnosis"
    )]
    pub queued_after: String,
    /// Print the plan (jobs, list calls, describes, ETA) and stop.
    #[arg(long, requires = "discover", help_heading = "Discovery")]
    pub dry_run: bool,
    /// A previous audit: executions unchanged since are carried from it, not described.
    ///
    /// PATH is a dataset this tool wrote (a file, a directory, an s3:// prefix), or `latest`: the
    /// newest complete earlier run under --out (a --partition-by date output keeps one run a date).
    /// An execution whose list summary (status, lastUpdatedAt, execution number) equals its baseline
    /// row gets that row, with source = carried and carried_from = the baseline's run_id.
    #[arg(
        long,
        value_name = "PATH|latest",
        requires = "discover",
        help_heading = "History"
    )]
    pub baseline: Option<String>,
    /// Run as if it were this time (epoch seconds): against a simulator only.
    ///
    /// The date of a --partition-by date audit, `fetched_at` and so the report's ages follow the
    /// simulator's `--now` instead of this machine's clock, so that audits a day apart can be made
    /// on a fleet a day apart. Refused unless the IoT endpoint is set (--endpoint-url,
    /// --region-endpoint, AWS_ENDPOINT_URL_IOT or AWS_ENDPOINT_URL) and is not AWS's.
    #[arg(long, value_name = "EPOCH_SECONDS", help_heading = "History")]
    pub as_of: Option<f64>,
    /// Audit only shard K of N (0-based); `N` or `auto/N` reads K from the scheduler.
    ///
    /// The pairs whose hash of thing and job modulo N is K (with --discover: the jobs, or things,
    /// whose hash is K). K comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
    /// AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch) with `N` or `auto/N`.
    #[arg(long, value_name = "K/N", help_heading = "Scale-out")]
    pub shard: Option<String>,
    /// No progress bar and no summary on stderr.
    #[arg(long, short, help_heading = "Display")]
    pub quiet: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE", help_heading = "Display")]
    pub summary_json: Option<PathBuf>,
    /// At the end, print the stuck / timed-out report of the dataset.
    #[arg(long, help_heading = "Display")]
    pub report: bool,
    /// Write the run's and the dataset's metrics to this file (Prometheus text format).
    ///
    /// Written atomically, for node-exporter's textfile collector.
    #[arg(long, value_name = "FILE", help_heading = "Display")]
    pub metrics: Option<PathBuf>,
    /// Also push the metrics to this Prometheus Pushgateway (job fleet-audit, grouped by target).
    ///
    /// A Pushgateway that cannot be reached is a warning, never a failed audit.
    #[arg(long, value_name = "URL", help_heading = "Display")]
    pub metrics_push: Option<String>,
}
