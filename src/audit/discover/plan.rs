//! The plan of a discovery, made and printed before the listing starts: how many jobs or things,
//! executions (from DescribeJob's counts), list calls and describes, and the time they take.

use crate::audit::config::{DescribeMode, DiscoverSpec, Scope};
use crate::audit::engine::Stop;
use crate::audit::summary::thousands;
use crate::aws::call::Counters;
use crate::aws::client::{FleetClient, FleetLister, JobCounts, MAX_PAGE};
use crate::input::{InputError, Names};
use crate::time::human_duration;

use super::Ctx;

/// The plan printed before calls begin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Jobs or things to list.
    pub units: u64,
    pub unit_name: &'static str,
    /// Executions the jobs report (None when listing by thing: unknown before listing).
    pub executions: Option<u64>,
    pub list_calls: u64,
    /// Estimated describes (an upper bound when listing by thing).
    pub describes: Option<u64>,
    /// Calls made to build the plan (ListJobs, DescribeJob).
    pub plan_calls: u64,
}

impl Plan {
    /// The plan as printed.
    pub(crate) fn render(&self, spec: &DiscoverSpec, rps: Option<f64>) -> String {
        let eta = |n: u64, r: Option<f64>| r.map(|r| n as f64 / r).unwrap_or(0.0);
        let secs = eta(self.list_calls, spec.list_rps).max(eta(self.describes.unwrap_or(0), rps));
        format!(
            "plan: {} {}; {} executions; about {} list calls and {} describes (--describe {}); ETA {}",
            thousands(self.units),
            self.unit_name,
            self.executions
                .map_or("an unknown number of".to_string(), thousands),
            thousands(self.list_calls),
            self.describes.map_or("unknown".to_string(), thousands),
            spec.describe.as_str(),
            if rps.is_none() && spec.list_rps.is_none() {
                "unknown (no rate limit: as fast as the service answers)".to_string()
            } else {
                human_duration(secs)
            },
        )
    }
}

/// The plan's line about the baseline: what it holds and the describes it can save (its rows of
/// active executions: those still unchanged when listed are carried, not described).
pub(crate) fn baseline_line(b: &crate::audit::baseline::Baseline, plan: &Plan) -> String {
    let saved = plan.describes.map_or(b.active, |d| d.min(b.active));
    format!(
        "baseline: {} ({} rows, run {}): executions unchanged since are carried; up to {} of the describes saved",
        b.name,
        thousands(b.len()),
        b.runs(),
        thousands(saved)
    )
}

/// Calls per page of the list APIs.
fn pages(n: u64) -> u64 {
    n.div_ceil(MAX_PAGE as u64).max(1)
}

/// Makes the plan of `spec` (ListJobs and one DescribeJob per job when listing by job): the plan and
/// the jobs to list (empty when listing by thing). `in_shard` keeps this shard's jobs or things.
pub(super) async fn make_plan<C: FleetClient + FleetLister>(
    ctx: &Ctx<C>,
    spec: &DiscoverSpec,
    names: Option<&Names>,
    in_shard: impl Fn(&str) -> bool,
    sharded: bool,
) -> Result<(Plan, Vec<String>), Stop> {
    let mut plan = Plan {
        units: 0,
        unit_name: "jobs",
        executions: None,
        list_calls: 0,
        describes: None,
        plan_calls: 0,
    };
    if let (Scope::Things(_), Some(n)) = (&spec.scope, names) {
        plan.units = if sharded {
            // One more read of the things file, to count the shard's things.
            let mut count = 0;
            for thing in n.iter()? {
                count += u64::from(in_shard(&thing?));
            }
            count
        } else {
            n.len()
        };
        plan.unit_name = "things";
        plan.list_calls = plan.units;
        return Ok((plan, Vec::new()));
    }
    let mut jobs: Vec<String> = match names {
        Some(n) => n.iter()?.collect::<Result<_, InputError>>()?,
        None => {
            let status = match &spec.scope {
                Scope::AllJobs { status } => status.as_deref(),
                _ => None,
            };
            ctx.list_all_jobs(status).await?
        }
    };
    jobs.retain(|j| in_shard(j));
    plan.units = jobs.len() as u64;
    let (mut execs, mut describes, mut lists) = (0, 0, 0);
    for job in &jobs {
        let counts: JobCounts = ctx
            .call(
                &ctx.limits.describe_job,
                &format!("DescribeJob {job}"),
                || ctx.client.describe_job(job),
            )
            .await?
            .unwrap_or_default();
        let (listed, described) = job_estimate(spec, &counts);
        execs += listed;
        lists += pages(listed);
        describes += described;
    }
    plan.executions = Some(execs);
    plan.list_calls = lists;
    plan.describes = Some(describes);
    plan.plan_calls = Counters::get(&ctx.counters.list_attempts);
    Ok((plan, jobs))
}

/// The executions a job's listing returns and how many of them are described, from its counts.
fn job_estimate(spec: &DiscoverSpec, counts: &JobCounts) -> (u64, u64) {
    let listed = match spec.execution_status.as_deref() {
        None => counts.total,
        Some("QUEUED") => counts.queued,
        Some("IN_PROGRESS") => counts.in_progress,
        // jobProcessDetails counts the other statuses too, but not by name here.
        Some(_) => counts.total,
    };
    let described = match spec.describe {
        DescribeMode::All => listed,
        DescribeMode::None => 0,
        DescribeMode::Active => match spec.execution_status.as_deref() {
            None => counts.queued + counts.in_progress,
            Some("QUEUED" | "IN_PROGRESS") => listed,
            Some(_) => 0,
        },
    };
    (listed, described)
}
