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
    /// stuck_queued: QUEUED for longer than this when fetched (as `report`).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub queued_after: String,
    /// stale_in_progress: IN_PROGRESS with no update for at least this long (as `report`).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub stale_after: String,
    /// near_timeout: less than this left before timing out (as `report`).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub near_timeout: String,
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

/// `--action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// CancelJobExecution.
    Cancel,
    /// DeleteJobExecution.
    Delete,
}
