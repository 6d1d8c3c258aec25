//! `plan`'s flags: which of an audit's executions to act on, and how.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The audit: a dataset this tool wrote (a file or a directory: its latest complete audit).
    pub audit: PathBuf,
    /// The plan file to write (JSON Lines); never replaces an existing file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The report's classes to act on (comma list).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        required = true,
        value_name = "LIST"
    )]
    pub class: Vec<PlanClassArg>,
    /// Only these jobs (comma list).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub jobs: Vec<String>,
    /// Only the things named in this file (one a line, as `run`'s things list).
    #[arg(long, value_name = "FILE")]
    pub things: Option<PathBuf>,
    /// Only stuck executions of these causes (comma list; the report's, see `report`):
    /// device_offline, blocked, not_picked_up, no_progress, unknown. Needs a class that has causes
    /// (stuck_queued, stale_in_progress).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub cause: Vec<PlanCauseArg>,
    /// Only executions in their class for at least this long when audited (e.g. 3d, 36h).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// What to do to each execution: cancel (QUEUED ones) or delete (terminal ones).
    #[arg(long, value_enum, default_value = "cancel")]
    pub action: ActionArg,
    /// Admit active executions: IN_PROGRESS ones for cancel (the device can no longer report its
    /// status), QUEUED and IN_PROGRESS ones for delete.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub thresholds: crate::cli::ThresholdArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file `fleet-audit plan` wrote (refused if edited since).
    pub plan: PathBuf,
    /// The ACTIONS dataset: a local directory of Parquet parts, a row per action.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue an interrupted apply of the same plan into the same --out: no action whose row is
    /// committed is sent again, and one whose call may have been sent is described first.
    #[arg(long)]
    pub resume: bool,
    /// Apply without asking (needed where there is no terminal to ask on).
    #[arg(long)]
    pub yes: bool,
    /// Everything but the calls: check the plan, its age and the output, print what would be done.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse a plan whose audit is older than this (e.g. 24h, 3d).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub max_age: String,
    /// Calls a second per target (CancelJobExecution and DeleteJobExecution: AWS allows 10); 0: no
    /// limit.
    #[arg(long, default_value_t = 10.0, value_name = "RPS")]
    pub rps: f64,
    /// Actions in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// Attempts per call, the first included (throttles and 5xx are retried; a version conflict
    /// never is).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_attempts: u32,
    /// Where the plan's audit is now, when not where the plan says (the plan is checked against it:
    /// every action must be an execution the audit read, at that version and status).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
    /// Count the plan's age as if it were this moment (epoch seconds), as `run --as-of` does on the
    /// simulator.
    #[arg(long, value_name = "EPOCH_SECONDS")]
    pub as_of: Option<f64>,
    #[command(flatten)]
    pub connection: crate::cli::ConnectionArgs,
}

/// The classes a plan can act on, spelled as the report spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PlanClassArg {
    StuckQueued,
    StaleInProgress,
    TimedOut,
    NearTimeout,
}

/// The causes a plan can select, spelled as the report spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PlanCauseArg {
    DeviceOffline,
    Blocked,
    NotPickedUp,
    NoProgress,
    Unknown,
}

/// `--action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// CancelJobExecution.
    Cancel,
    /// DeleteJobExecution.
    Delete,
}
