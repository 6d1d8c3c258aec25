//! `run --discover`'s settings: what is listed, the filters, which listed executions are described,
//! the list rate and the baseline.

use std::path::PathBuf;

use crate::cli::{DescribeArg, RunArgs};
use crate::input::names::{JOB_EXECUTION_STATUSES, JOB_STATUSES};

use super::{flag, ConfigError};

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
    pub(crate) fn wants(self, status: Option<&str>) -> bool {
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

/// The discovery settings of `run --discover` (what to list, filters, describe mode, list rate).
pub(super) fn discover_spec(a: &RunArgs) -> Result<DiscoverSpec, ConfigError> {
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
