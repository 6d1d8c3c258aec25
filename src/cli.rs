//! Command-line definitions only: plain parsed flags, no I/O. `config` turns them into settings.
//! `run`'s flags, the most numerous, are in `cli/run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod plan;
mod run;

pub use plan::{ActionArg, ApplyArgs, PlanArgs, PlanCauseArg, PlanClassArg};
pub use run::{ContextArg, DescribeArg, FormatArg, RunArgs, TableFormatArg};

#[derive(Debug, Parser)]
#[command(
    name = "fleet-audit",
    version,
    about = "Audit AWS IoT job executions across a device fleet: stuck, timed out, failed.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (the program's name first). A refusal comes with its exit code: clap's (2;
    /// 0 for --help and --version), except that `describe`, which stands in for
    /// `aws iot describe-job-execution`, exits 252 on bad syntax as AWS CLI v2 does.
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, (clap::Error, i32)>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        Cli::try_parse_from(&args).map_err(|e| {
            let describe = args.get(1).is_some_and(|a| a == "describe");
            let code = if describe && e.use_stderr() {
                252
            } else {
                e.exit_code()
            };
            (e, code)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe every (thing, job) pair through DescribeJobExecution and write one row per pair.
    Run(Box<RunArgs>),
    /// Describe one job execution and print it as `aws iot describe-job-execution` does.
    Describe(DescribeArgs),
    /// Serve a simulated fleet over the AWS IoT Jobs wire API (for tests, demos, benchmarks).
    Sim(SimArgs),
    /// Start the simulator in-process, audit its whole fleet into ./demo-out, and print the summary.
    Demo(DemoArgs),
    /// Summarize a dataset this tool wrote: counts per job by status, stuck, timed-out and failing
    /// executions, the oldest of them (exit code 3 with --fail-on when any match).
    Report(ReportArgs),
    /// Turn an audit's stuck executions into a plan of cancellations (or deletions) to review,
    /// then carry out with `apply`.
    Plan(PlanArgs),
    /// Carry out a reviewed plan: each action once, guarded by the version its audit read, a row
    /// per action in the ACTIONS dataset (exit 1 when any action ended in error).
    Apply(ApplyArgs),
    /// Print the dataset's schema, or with --ddl the table definition for Athena, Glue or DuckDB.
    Schema(SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(CompletionsArgs),
    /// Print a manual page (roff) on stdout, or write every page (one a subcommand) into a folder.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print, e.g. `run` (default: fleet-audit(1), the overview).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "out")]
    pub subcommand: Option<String>,
    /// Write every page instead (fleet-audit.1, fleet-audit-run.1, ...) into this folder, made if
    /// missing, e.g. /usr/local/share/man/man1.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// AWS region to call (else AWS_REGION or the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from the AWS config and credentials files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Endpoint URL instead of the region's (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_IOT also work).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The unique identifier you assigned to this job when it was created.
    #[arg(long)]
    pub job_id: Option<String>,
    /// The name of the thing on which the job execution is running.
    #[arg(long)]
    pub thing_name: Option<String>,
    /// A particular execution of the job on the thing.
    #[arg(long)]
    pub execution_number: Option<i64>,
    /// Arguments as JSON (text, or `file://PATH`), in the format of --generate-cli-skeleton.
    #[arg(long, value_name = "JSON", conflicts_with = "cli_input_yaml")]
    pub cli_input_json: Option<String>,
    /// Arguments as YAML (text, or `file://PATH`), in the format of --generate-cli-skeleton yaml-input.
    #[arg(long, value_name = "YAML")]
    pub cli_input_yaml: Option<String>,
    /// Print a skeleton (input, yaml-input or output) without calling AWS.
    #[arg(long, value_name = "KIND", num_args = 0..=1, default_missing_value = "input")]
    pub generate_cli_skeleton: Option<String>,
    #[command(flatten, next_help_heading = "Global Options")]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub global: CliGlobalArgs,
}

/// The AWS CLI's global options that `describe` honours, as `aws help` documents them.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global Options")]
pub struct CliGlobalArgs {
    /// The formatting style for command output: json, text, table, yaml or yaml-stream (else
    /// AWS_DEFAULT_OUTPUT, else the profile's `output`, else json).
    #[arg(
        long,
        value_name = "FORMAT",
        value_parser = OutputFormatParser,
        hide_possible_values = true
    )]
    pub output: Option<String>,
    /// A JMESPath query to use in filtering the response data.
    #[arg(long, value_name = "EXPR")]
    pub query: Option<String>,
    /// The maximum socket connect time in seconds (0: blocking, no limit).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cli_connect_timeout: Option<String>,
    /// The maximum socket read time in seconds (0: blocking, no limit).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cli_read_timeout: Option<String>,
    /// The CA certificate bundle (PEM) to verify TLS with (else AWS_CA_BUNDLE).
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Log the request and the answer on stderr (never a credential).
    #[arg(long)]
    pub debug: bool,
    /// Colour of the table output: on, off or auto (a terminal).
    #[arg(long, value_name = "on|off|auto", default_value = "auto")]
    pub color: String,
    /// Accepted for scripts written for the AWS CLI: no pager is ever used.
    #[arg(long)]
    pub no_cli_pager: bool,
}

/// `describe --output`'s formats, as the AWS CLI names them.
pub(crate) const OUTPUT_FORMATS: [&str; 5] = ["json", "text", "table", "yaml", "yaml-stream"];

/// `--output`'s parser: any text (`describe` refuses an unknown format itself, with the AWS CLI's
/// message and exit code 252, not clap's 2), with [`OUTPUT_FORMATS`] as its possible values so shell
/// completion offers them instead of file names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputFormatParser;

impl clap::builder::TypedValueParser for OutputFormatParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            OUTPUT_FORMATS.iter().map(clap::builder::PossibleValue::new),
        ))
    }
}

#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    /// Number of things in the simulated fleet.
    #[arg(long, default_value_t = 10_000)]
    pub things: u64,
    /// Number of jobs in the simulated fleet.
    #[arg(long, default_value_t = 5)]
    pub jobs: u32,
    /// Seed of the fleet: same seed, same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The fleet's "now" in epoch seconds (default: when it starts); fixes every timestamp.
    #[arg(long, value_name = "EPOCH_SECONDS")]
    pub now: Option<f64>,
    /// When the fleet's history begins, in epoch seconds (default: --now). The fleet at its epoch is
    /// a snapshot; a later --now with the same --seed and --epoch is the same fleet that much later:
    /// unchanged where nothing happened, moved on where something did.
    #[arg(long, value_name = "EPOCH_SECONDS")]
    pub epoch: Option<f64>,
    /// Share (0..1) of executions with an event (a start, an update, a finish) in each day after
    /// --epoch (default: three in ten active executions a day). In-progress timers that run out
    /// time executions out on top, as AWS does.
    #[arg(long, value_name = "P")]
    pub changed_share: Option<f64>,
    /// Region in the fleet's ARNs.
    #[arg(long = "fleet-region", default_value = "us-east-1")]
    pub region: String,
    /// Share (0..1) of executions that report a status AWS may add later (PAUSED).
    #[arg(long, default_value_t = 0.0)]
    pub future_status: f64,
    /// Share (0..1) of executions that are QUEUED or IN_PROGRESS (default: the natural mix, ~1/5).
    #[arg(long)]
    pub active_share: Option<f64>,
}

/// `sim --fleet-indexing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetIndexingArg {
    Off,
    Registry,
    Connectivity,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Address to listen on; the first line printed is `listening on http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Per-operation quota in calls per second (a token bucket); off by default.
    #[arg(long, value_name = "N")]
    pub quota_rps: Option<f64>,
    /// Bucket size of the quota (default: one second's worth).
    #[arg(long, value_name = "N")]
    pub quota_burst: Option<u32>,
    /// Quota of CancelJobExecution and DeleteJobExecution in calls per second, each its own bucket
    /// as in AWS (default: --quota-rps).
    #[arg(long, value_name = "N")]
    pub remediation_quota_rps: Option<f64>,
    /// Quota of the context calls (DescribeJob, SearchIndex, GetThingConnectivityData,
    /// ListThingGroupsForThing, ListThings, ListThingGroups, ListThingsInThingGroup) in calls per
    /// second, each its own bucket as in AWS (default: --quota-rps).
    #[arg(long, value_name = "N")]
    pub context_quota_rps: Option<f64>,
    /// The fleet indexing the simulated account has enabled: `off` (SearchIndex answers
    /// ResourceNotFoundException), `registry` (no connectivity), `connectivity`.
    #[arg(long, value_enum, default_value = "connectivity")]
    pub fleet_indexing: FleetIndexingArg,
    /// Added latency: milliseconds (`5`) or median,p99 (`5,40`).
    #[arg(long, value_name = "MS[,P99]", default_value = "0")]
    pub latency_ms: String,
    /// Probability of a 500/503 answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx: f64,
    /// Probability of closing the connection without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_drop: f64,
    /// Probability of a stalled answer (see --fault-slow-ms).
    #[arg(long, default_value_t = 0.0)]
    pub fault_slow: f64,
    /// How long a stalled answer stalls, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub fault_slow_ms: u64,
    /// Probability of a 200 answer with a malformed body.
    #[arg(long, default_value_t = 0.0)]
    pub fault_garbage: f64,
    /// Probability of a ThrottlingException regardless of the quota.
    #[arg(long, default_value_t = 0.0)]
    pub fault_throttle: f64,
    /// Write DIR/things.txt and DIR/jobs.txt for the fleet, then serve.
    #[arg(long, value_name = "DIR")]
    pub write_lists: Option<PathBuf>,
    /// Serve an AWS Organization of N accounts managed by the simulator's own (Organizations
    /// ListAccounts, Account ListRegions; every 25th account SUSPENDED). 0: no organization.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub org_accounts: u32,
    /// The share of member accounts where STS AssumeRole is refused (the audit role is missing).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub org_missing_role: f64,
    /// Server worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Where the demo's dataset and lists go (replaced on every demo).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Pairs in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Write the audit as a Delta Lake table (`demo-out/executions/`) instead of one Parquet file.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub table_format: Option<TableFormatArg>,
}

/// A `--fail-on` condition of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    /// Any stuck_queued or stale_in_progress execution.
    Stuck,
    /// Any TIMED_OUT execution.
    TimedOut,
    /// Any pair that ended as an `error` row.
    Errors,
    /// Any near_timeout execution.
    NearTimeout,
    /// Any pair without an execution (`not_found`).
    NotFound,
    /// Any execution stuck now and not in the baseline (needs --baseline).
    NewStuck,
    /// Any execution TIMED_OUT now and not in the baseline (needs --baseline).
    NewTimedOut,
    /// Any execution FAILED now and not in the baseline (needs --baseline).
    NewFailed,
    /// The audit reported is incomplete (its manifest says so: `run ... --resume` finishes it).
    Incomplete,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The dataset: a .parquet or .arrow file, or a directory of part files, local or
    /// `s3://bucket/prefix/` (the S3 endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL).
    pub path: PathBuf,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// How many of the oldest stuck or timed-out executions to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Print a JSON document instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page (charts and tables) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Exit with code 3 when any execution matches one of these (comma list), or with
    /// `incomplete`, when the audit reported is incomplete.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub fail_on: Vec<FailOnArg>,
    /// Also write the dataset's metrics to this file (Prometheus text format, written atomically).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Also push the dataset's metrics to this Prometheus Pushgateway (job fleet-audit, grouped by
    /// dataset); one that cannot be reached is a warning.
    #[arg(long, value_name = "URL")]
    pub metrics_push: Option<String>,
    /// A previous audit to compare with: what became stuck, recovered, timed out or failed since.
    ///
    /// A dataset this tool wrote (a file, a directory, an s3:// prefix).
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// Add the totals of every audit the dataset keeps (a --partition-by date output: one a date).
    #[arg(long)]
    pub trend: bool,
    /// Also count the classes per group of KEY, the largest stuck share first: `thing_type`,
    /// `thing_group`, `attribute:NAME` (e.g. attribute:firmware), `connected`, `cause`, `job_id`.
    #[arg(long, value_name = "KEY")]
    pub group_by: Option<String>,
}

/// The classes' thresholds, for `report` and `plan` alike.
#[derive(Debug, Args, Clone)]
pub struct ThresholdArgs {
    /// stuck_queued: QUEUED for longer than this when fetched (e.g. 24h, 90m, 14d).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub queued_after: String,
    /// stale_in_progress: IN_PROGRESS with no update for at least this long.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub stale_after: String,
    /// near_timeout: IN_PROGRESS with less than this left before timing out (a QUEUED execution's
    /// timer has not started). A QUEUED execution of a job not running is `waiting`, not stuck.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub near_timeout: String,
}

/// A query engine whose table definition `schema --ddl` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DdlArg {
    /// Athena `CREATE EXTERNAL TABLE ... STORED AS PARQUET`.
    Athena,
    /// The JSON TableInput of `aws glue create-table --table-input`.
    Glue,
    /// A DuckDB view over `read_parquet` of the dataset's files.
    Duckdb,
    /// Athena's table over a `--table-format delta` output: `TBLPROPERTIES ('table_type' = 'DELTA')`.
    AthenaDelta,
    /// A DuckDB view over `delta_scan` of a `--table-format delta` output (the delta extension).
    DuckdbDelta,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print this engine's table definition instead of the schema table.
    #[arg(long, value_enum)]
    pub ddl: Option<DdlArg>,
    /// Where the dataset's files are (Athena and Glue: an s3:// prefix; DuckDB: a directory or URL).
    #[arg(long, value_name = "URL", requires = "ddl")]
    pub location: Option<String>,
    /// Partition columns of Hive-style `key=value` folders: `date` and/or `job_id` (the folders
    /// `run --partition-by` writes), in folder order.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS", requires = "ddl")]
    pub partition_by: Vec<String>,
}
