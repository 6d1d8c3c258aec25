//! `run --discover`: list first, describe only what needs detail.
//!
//! DescribeJobExecution answers one pair per call; ListJobExecutionsForJob answers up to 250 execution
//! summaries per call at the same kind of quota. Discovery lists every job's executions (or every
//! thing's), turns each summary into a row (`source = list`), and sends only the executions that need
//! detail (by default the active ones, QUEUED and IN_PROGRESS, which can be stuck) through the same
//! describe engine as `run` (`source = describe`, carrying the summary's `retry_attempt`). Each API has
//! its own limiter, as each has its own quota at AWS, and every call has the same retries.
//!
//! Parts: `plan` (the plan printed first), `list` (the listing task), `resume` (what an earlier run
//! committed, and the renumbering of a resumed discovery).

mod list;
mod plan;
mod resume;
mod targets;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::audit::config::{DiscoverSpec, Scope};
use crate::audit::engine::{run_engine, stop_for, Stop, TargetCalls, Work};
use crate::aws::call::EngineSettings;
use crate::aws::call::{call_with_retries, Attempted, Counters, Final};
use crate::aws::client::{
    ExecutionRecord, ExecutionSummary, FleetClient, FleetLister, ListedExecution, Page,
};
use crate::aws::limit::CallLimiter;
use crate::dataset::schema::{Outcome, Row, Source};
use crate::input::identity::{InputIdentity, Listed, Source as InputSource};
use crate::input::{prepare_names, InputError, ListKind, Names};
use crate::time::now_ms;

pub(crate) use targets::run_discover_targets;

/// One limiter per list API, as AWS gives each its own quota.
struct ListLimiters {
    list_jobs: CallLimiter,
    describe_job: CallLimiter,
    for_job: CallLimiter,
    for_thing: CallLimiter,
}

impl ListLimiters {
    fn new(rps: Option<f64>, burst: Option<u32>, adaptive: bool) -> Self {
        let l = || CallLimiter::new(rps, crate::aws::limit::burst_for(burst, rps), adaptive);
        ListLimiters {
            list_jobs: l(),
            describe_job: l(),
            for_job: l(),
            for_thing: l(),
        }
    }
}

/// Everything a discovery needs shared between its tasks.
struct Ctx<C> {
    client: Arc<C>,
    limits: ListLimiters,
    settings: EngineSettings,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
}

impl<C: FleetClient + FleetLister> Ctx<C> {
    /// One list-family call with retries; a final failure is a run-level stop.
    pub(super) async fn call<T, F, Fut>(
        &self,
        limiter: &CallLimiter,
        what: &str,
        call: F,
    ) -> Result<Option<T>, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::aws::client::CallError>>,
    {
        // A listing has nothing in flight worth waiting for: a signal ends it at once.
        let mut stop = self.shutdown.clone();
        let Attempted { result, .. } = tokio::select! {
            a = call_with_retries(
                limiter,
                &self.settings,
                &self.counters,
                &self.counters.list_attempts,
                &self.shutdown,
                call,
            ) => a,
            Ok(_) = stop.wait_for(|s| *s) => return Err(Stop::Interrupted),
        };
        match result {
            Final::Ok(v) => Ok(Some(v)),
            Final::NotFound(e) => {
                eprintln!("fleet-audit: warning: {what}: {e}; skipped");
                Ok(None)
            }
            Final::Failed(error) => Err(Stop::ListFailed {
                what: what.to_string(),
                error,
            }),
            Final::Fatal(e) => Err(stop_for(e)),
            Final::Interrupted => Err(Stop::Interrupted),
        }
    }

    pub(super) async fn list_all_jobs(&self, status: Option<&str>) -> Result<Vec<String>, Stop> {
        let mut jobs = Vec::new();
        let mut token = None;
        loop {
            let page: Option<Page<String>> = self
                .call(&self.limits.list_jobs, "ListJobs", || {
                    self.client.list_jobs(status, token.clone())
                })
                .await?;
            let Some(page) = page else { break };
            jobs.extend(page.items);
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        Ok(jobs)
    }
}

/// A row from a list summary: the fields the summary lacks are null.
pub fn list_row(item: &ListedExecution, attempts: u32) -> Row {
    let s: &ExecutionSummary = &item.summary;
    Row {
        thing_name: item.thing_name.clone(),
        job_id: item.job_id.clone(),
        requested_execution_number: None,
        outcome: Outcome::Ok,
        error: None,
        attempts: attempts as i32,
        fetched_at_ms: now_ms(),
        execution: Some(ExecutionRecord {
            job_id: Some(item.job_id.clone()),
            status: s.status.clone(),
            thing_arn: item.thing_arn.clone(),
            queued_at_ms: s.queued_at_ms,
            started_at_ms: s.started_at_ms,
            last_updated_at_ms: s.last_updated_at_ms,
            execution_number: s.execution_number,
            ..Default::default()
        }),
        source: Source::List,
        retry_attempt: s.retry_attempt,
        origin: None,
        carried_from: None,
        context: Default::default(),
    }
}

/// Validates the list a scope names (before any call): the jobs or things file, if any.
pub fn prepare_scope(scope: &Scope) -> Result<Option<Names>, InputError> {
    Ok(match scope {
        Scope::Jobs(p) => Some(prepare_names(p, ListKind::Jobs)?),
        Scope::Things(p) => Some(prepare_names(p, ListKind::Things)?),
        Scope::AllJobs { .. } => None,
    })
}

/// The input identity a discovery's manifest records: what is listed, the status filter, the
/// describe mode, the targets and the shard.
pub(crate) fn identity_of(
    spec: &DiscoverSpec,
    names: Option<&Names>,
    shard: Option<crate::input::shard::Shard>,
    targets: &[String],
) -> InputIdentity {
    let listed = match (&spec.scope, names) {
        (Scope::Jobs(_), Some(n)) => Listed::Jobs(n.identity().to_string()),
        (Scope::Things(_), Some(n)) => Listed::Things(n.identity().to_string()),
        (Scope::AllJobs { status }, _) => Listed::AllJobs(status.clone()),
        (_, None) => unreachable!("prepare_scope gives names for a jobs or things scope"),
    };
    InputIdentity::of(InputSource::Discover {
        listed,
        execution_status: spec.execution_status.clone(),
        describe: spec.describe.as_str().to_string(),
    })
    .with_targets(targets)
    .with_shard(shard)
}

/// What a discovery lists, in order: the things of a things scope (this shard's), else the jobs.
fn units_of(
    spec: &DiscoverSpec,
    names: Option<&Names>,
    jobs: Vec<String>,
    in_shard: impl Fn(&str) -> bool + Send + 'static,
) -> Result<Units, InputError> {
    Ok(match (&spec.scope, names) {
        (Scope::Things(_), Some(n)) => Box::new(
            n.iter()?
                .filter(move |r| r.as_ref().map_or(true, |t| in_shard(t)))
                .map(|r| r.map(list::Unit::Thing)),
        ),
        _ => Box::new(jobs.into_iter().map(|j| Ok(list::Unit::Job(j)))),
    })
}

type Units = Box<dyn Iterator<Item = Result<list::Unit, InputError>> + Send>;

/// The describe side of a discovery: its lane, settings, the work the listing sends and where rows go.
struct Describing<C> {
    lane: TargetCalls<C>,
    settings: EngineSettings,
    work: mpsc::Receiver<Result<Work, InputError>>,
    rows: mpsc::Sender<crate::dataset::WriterMsg>,
}

/// Lists every unit on its own task while the describe engine works through what the listing sends;
/// returns how the two ended and how many executions were listed.
async fn list_and_describe<C: FleetClient + FleetLister>(
    mut lister: list::Lister<C>,
    units: Units,
    describing: Describing<C>,
    shutdown: watch::Receiver<bool>,
) -> (Result<(), Stop>, u64) {
    let listing = tokio::spawn(async move {
        let result = lister.run(units).await;
        (result, lister.listed)
    });
    let Describing {
        lane,
        settings,
        work: mut work_rx,
        rows,
    } = describing;
    let work = futures::stream::poll_fn(move |cx| work_rx.poll_recv(cx));
    let engine = run_engine(lane, settings, work, rows, shutdown).await;
    let (list_result, listed) = listing.await.expect("lister task does not panic");
    // A listing stop (interrupt, fatal) explains an engine that ended early, so it comes first;
    // unless the listing only stopped because the engine had stopped taking work.
    let result = match (list_result, engine) {
        (Err(Stop::EngineGone | Stop::WriterGone), Err(stop)) => Err(stop),
        (Err(stop), _) => Err(stop),
        (Ok(()), r) => r,
    };
    (result, listed)
}
