//! `run --discover`: list first, describe only what needs detail.
//!
//! DescribeJobExecution answers one pair per call; ListJobExecutionsForJob answers up to 250 execution
//! summaries per call at the same kind of quota. Discovery lists every job's executions (or every
//! thing's), turns each summary into a row (`source = list`), and sends only the executions that need
//! detail (by default the active ones, QUEUED and IN_PROGRESS, which can be stuck) through the same
//! describe engine as `run` (`source = describe`, carrying the summary's `retry_attempt`). Each API has
//! its own limiter, as each has its own quota at AWS, and every call has the same retries.
//!
//! Resume: a discovery dataset cannot be numbered before it is listed, so a resumed discovery lists
//! again (lists are cheap) and skips every (thing, job) already in the committed parts, which it reads
//! back as 128-bit hashes. A listing interrupted in the middle of a job thus resumes exactly.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use tokio::sync::{mpsc, watch};

use crate::audit::{
    call_with_retries, now_ms, run_engine, stop_for, Attempted, Counters, EngineSettings, Final,
    Lane, Stop, Work,
};
use crate::client::{
    ExecutionRecord, ExecutionSummary, FleetClient, FleetLister, JobCounts, ListedExecution, Page,
    MAX_PAGE,
};
use crate::config::RunConfig;
use crate::input::{prepare_names, InputError, ListKind, Names, Target};
use crate::limit::CallLimiter;
use crate::run::{human_duration, RunError, Session, Summary, SummaryBase};
use crate::schema::{Origin, Outcome, Row, Source};
use crate::sink::{Manifest, SinkMsg, Target as OutputDir};

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
    fn wants(self, status: Option<&str>) -> bool {
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
}

/// The plan printed before calls begin.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
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
    pub fn render(&self, spec: &DiscoverSpec, rps: Option<f64>) -> String {
        let eta = |n: u64, r: Option<f64>| r.map(|r| n as f64 / r).unwrap_or(0.0);
        let secs = eta(self.list_calls, spec.list_rps).max(eta(self.describes.unwrap_or(0), rps));
        format!(
            "plan: {} {}; {} executions; about {} list calls and {} describes (--describe {}); ETA {}",
            self.units,
            self.unit_name,
            self.executions
                .map_or("an unknown number of".to_string(), |e| e.to_string()),
            self.list_calls,
            self.describes.map_or("unknown".to_string(), |d| d.to_string()),
            spec.describe.as_str(),
            if rps.is_none() && spec.list_rps.is_none() {
                "unbounded (no rate limit)".to_string()
            } else {
                human_duration(secs)
            },
        )
    }
}

/// Calls per page of the list APIs.
fn pages(n: u64) -> u64 {
    n.div_ceil(MAX_PAGE as u64).max(1)
}

/// One limiter per list API, as AWS gives each its own quota.
struct ListLimiters {
    list_jobs: CallLimiter,
    describe_job: CallLimiter,
    for_job: CallLimiter,
    for_thing: CallLimiter,
}

impl ListLimiters {
    fn new(rps: Option<f64>, burst: u32, adaptive: bool) -> Self {
        let l = || CallLimiter::new(rps, burst, adaptive);
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
    async fn call<T, F, Fut>(
        &self,
        limiter: &CallLimiter,
        what: &str,
        call: F,
    ) -> Result<Option<T>, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::client::CallError>>,
    {
        let Attempted { result, .. } = call_with_retries(
            limiter,
            &self.settings,
            &self.counters,
            &self.counters.list_attempts,
            &self.shutdown,
            call,
        )
        .await;
        match result {
            Final::Ok(v) => Ok(Some(v)),
            Final::NotFound(e) => {
                tracing::warn!("{what}: {e}");
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

    async fn list_all_jobs(&self, status: Option<&str>) -> Result<Vec<String>, Stop> {
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

/// What one listing walks: a job's executions, or a thing's.
enum Unit {
    Job(String),
    Thing(String),
}

/// Stable 128-bit key of a pair, for skipping committed rows on resume.
fn pair_key(thing: &str, job: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(thing.as_bytes());
    h.update(&[0]);
    h.update(job.as_bytes());
    h.digest128()
}

/// The pairs already in a manifest's committed parts.
async fn committed_pairs(target: &OutputDir, m: &Manifest) -> Result<HashSet<u128>, RunError> {
    let mut keys = HashSet::new();
    let resume_err = |reason: String| RunError::Resume {
        out: std::path::PathBuf::from(target.name()),
        reason,
    };
    for part in &m.parts {
        let batches = crate::dataset::read_part(target, &part.file, 8192)
            .await
            .map_err(|e| resume_err(e.to_string()))?;
        for b in batches {
            let b = b.map_err(|e| resume_err(e.to_string()))?;
            let (Some(things), Some(jobs)) = (
                text_column(&b, "thing_name", &part.file).map_err(resume_err)?,
                text_column(&b, "job_id", &part.file).map_err(resume_err)?,
            ) else {
                return Err(resume_err(format!("{} lacks thing_name/job_id", part.file)));
            };
            for i in 0..b.num_rows() {
                keys.insert(pair_key(things.value(i), jobs.value(i)));
            }
        }
    }
    Ok(keys)
}

/// A string column of a committed part as Utf8, whatever string type it was written with (a dataset
/// rewritten by pyarrow, DuckDB or Spark may hold LargeUtf8, Utf8View or dictionaries); `None` when the
/// part lacks it; an error naming the part when it is no string at all.
fn text_column(
    b: &arrow::record_batch::RecordBatch,
    name: &str,
    part: &str,
) -> Result<Option<arrow::array::StringArray>, String> {
    use arrow::datatypes::DataType;
    let Some(c) = b.column_by_name(name) else {
        return Ok(None);
    };
    let utf8 = match c.data_type() {
        DataType::Utf8 => c.clone(),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            arrow::compute::cast(c, &DataType::Utf8)
                .map_err(|e| format!("{part}: column {name} cannot be read as a string: {e}"))?
        }
        other => return Err(format!("{part}: column {name} is {other}, not a string")),
    };
    Ok(Some(utf8.as_string::<i32>().clone()))
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

/// Runs a discovery audit with any client that can describe and list. `names` is what
/// [`prepare_scope`] returned for `spec.scope`.
pub async fn run_discover<C: FleetClient + FleetLister>(
    cfg: RunConfig,
    run_id: String,
    spec: DiscoverSpec,
    names: Option<Names>,
    client: Arc<C>,
    origin: Arc<Origin>,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    let identity = match (&spec.scope, &names) {
        (Scope::Jobs(_), Some(n)) => format!("jobs={}", n.identity()),
        (Scope::Things(_), Some(n)) => format!("things={}", n.identity()),
        (Scope::AllJobs { status }, _) => {
            format!("list-jobs={}", status.as_deref().unwrap_or("*"))
        }
        (_, None) => unreachable!("prepare_scope gives names for a jobs or things scope"),
    };
    let identity = crate::shard::identity_with(
        &format!(
            "discover:{identity}:execution-status={}:describe={}",
            spec.execution_status.as_deref().unwrap_or("*"),
            spec.describe.as_str()
        ),
        cfg.shard,
    );
    // A shard lists only its own jobs (by job id) or things (by thing name).
    let shard = cfg.shard;
    let in_shard = move |name: &str| shard.is_none_or(|s| s.owns_name(name));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        limits: ListLimiters::new(spec.list_rps, cfg.burst, cfg.adaptive),
        settings: cfg.engine.clone(),
        counters: Arc::new(Counters::default()),
        shutdown: shutdown.clone(),
    });
    let started = Instant::now();

    // The plan.
    let mut plan = Plan {
        units: 0,
        unit_name: "jobs",
        executions: None,
        list_calls: 0,
        describes: None,
        plan_calls: 0,
    };
    let mut jobs: Vec<String> = Vec::new();
    let plan_result: Result<(), Stop> = async {
        match (&spec.scope, &names) {
            (Scope::Things(_), Some(n)) => {
                plan.units = match shard {
                    None => n.len(),
                    // One more read of the things file, to count the shard's things.
                    Some(_) => {
                        let mut count = 0;
                        for thing in n.iter()? {
                            count += u64::from(in_shard(&thing?));
                        }
                        count
                    }
                };
                plan.unit_name = "things";
                plan.list_calls = plan.units;
            }
            _ => {
                jobs = match &names {
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
                    let listed = match spec.execution_status.as_deref() {
                        None => counts.total,
                        Some("QUEUED") => counts.queued,
                        Some("IN_PROGRESS") => counts.in_progress,
                        // jobProcessDetails counts the other statuses too, but not by name here.
                        Some(_) => counts.total,
                    };
                    execs += listed;
                    lists += pages(listed);
                    describes += match spec.describe {
                        DescribeMode::All => listed,
                        DescribeMode::None => 0,
                        DescribeMode::Active => match spec.execution_status.as_deref() {
                            None => counts.queued + counts.in_progress,
                            Some("QUEUED" | "IN_PROGRESS") => listed,
                            Some(_) => 0,
                        },
                    };
                }
                plan.executions = Some(execs);
                plan.list_calls = lists;
                plan.describes = Some(describes);
            }
        }
        Ok(())
    }
    .await;
    plan.plan_calls = Counters::get(&ctx.counters.list_attempts);
    if let Err(stop) = plan_result {
        return Err(match stop {
            Stop::Input(e) => RunError::Input(e),
            stop => RunError::Stopped {
                stop,
                out: cfg.layout.path().to_path_buf(),
                resumable: false,
                summary: Box::new(Summary::empty(started)),
            },
        });
    }
    if !cfg.quiet || spec.dry_run {
        let shard_note = shard.map(|s| format!("shard {s}: ")).unwrap_or_default();
        eprintln!("{shard_note}{}", plan.render(&spec, cfg.rps));
    }
    if spec.dry_run {
        let mut s = Summary::empty(started);
        s.list_calls = plan.plan_calls;
        s.pairs = plan.executions.unwrap_or(0);
        return Ok(s);
    }

    // Output, and what an earlier run already committed.
    let manifest = crate::run::prepare_output(&cfg, &identity, 0).await?;
    let committed = match (OutputDir::of(&cfg.layout)?, &manifest) {
        (Some(t), Some(m)) if !m.parts.is_empty() => committed_pairs(&t, m).await?,
        _ => HashSet::new(),
    };
    let resumed = committed.len() as u64;
    if manifest.as_ref().is_some_and(|m| m.complete) {
        let mut s = Summary::empty(started);
        s.complete = true;
        s.resumed = resumed;
        return Ok(s);
    }
    // Ordinals only number a discovery's rows: a resume finds what is done by the committed pairs
    // (above), not by ordinal. So a resumed discovery renumbers: what is committed becomes one
    // watermark and new rows continue from it. Ordinals the earlier run handed out but never
    // committed (pairs in flight or queued when it stopped) would otherwise be holes under which the
    // watermark never moves again, and every later row would be kept one by one in the manifest.
    let mut manifest = manifest;
    let first_ordinal = match manifest.as_mut() {
        Some(m) => {
            let n = m.committed.len();
            m.committed = crate::sink::DoneSet {
                watermark: n,
                ..Default::default()
            };
            n
        }
        None => 0,
    };
    let session = Session::open(
        &cfg,
        run_id,
        manifest,
        origin.region.clone(),
        plan.executions.unwrap_or(0).saturating_sub(resumed),
        ctx.counters.clone(),
    );
    let rows = session.rows();

    // Listing feeds rows (list summaries) and describe work (the executions that need detail).
    let (work_tx, mut work_rx) = mpsc::channel::<Result<Work, InputError>>(1024);
    let lane_origin = origin.clone();
    let lister = {
        let ctx = ctx.clone();
        let spec = spec.clone();
        let rows = rows.clone();
        let things_iter = match (&spec.scope, &names) {
            (Scope::Things(_), Some(n)) => Some(n.iter()?.filter(move |r| match r {
                Ok(thing) => in_shard(thing),
                Err(_) => true,
            })),
            _ => None,
        };
        tokio::spawn(async move {
            let mut ordinal = first_ordinal;
            let mut listed = 0u64;
            let mut emit = |page: Page<ListedExecution>| {
                let mut out = Vec::with_capacity(page.items.len());
                for item in page.items {
                    listed += 1;
                    if committed.contains(&pair_key(&item.thing_name, &item.job_id)) {
                        continue;
                    }
                    ordinal += 1;
                    out.push((ordinal - 1, item));
                }
                out
            };
            // Sends one page's items: describes to the engine, the rest as list rows.
            async fn dispatch(
                items: Vec<(u64, ListedExecution)>,
                describe: DescribeMode,
                origin: &Arc<Origin>,
                counters: &Counters,
                rows: &mpsc::Sender<SinkMsg>,
                work: &mpsc::Sender<Result<Work, InputError>>,
            ) -> Result<(), Stop> {
                for (ordinal, item) in items {
                    if describe.wants(item.summary.status.as_deref()) {
                        let w = Work {
                            ordinal,
                            target: Target {
                                thing_name: item.thing_name,
                                job_id: item.job_id,
                                execution_number: None,
                            },
                            retry_attempt: item.summary.retry_attempt,
                        };
                        work.send(Ok(w)).await.map_err(|_| Stop::WriterGone)?;
                    } else {
                        let mut row = Box::new(list_row(&item, 1));
                        row.origin = Some(origin.clone());
                        rows.send(SinkMsg::Row { row, ordinal })
                            .await
                            .map_err(|_| Stop::WriterGone)?;
                        counters.ok.fetch_add(1, Ordering::Relaxed);
                        counters.done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            let status = spec.execution_status.as_deref();
            // What the listing walks: each thing's executions, or each job's.
            let units: Box<dyn Iterator<Item = Result<Unit, InputError>> + Send> = match things_iter
            {
                Some(things) => Box::new(things.map(|r| r.map(Unit::Thing))),
                None => Box::new(jobs.into_iter().map(|j| Ok(Unit::Job(j)))),
            };
            let result: Result<(), Stop> = async {
                for unit in units {
                    let unit = unit?;
                    let (limiter, what) = match &unit {
                        Unit::Job(j) => {
                            (&ctx.limits.for_job, format!("ListJobExecutionsForJob {j}"))
                        }
                        Unit::Thing(t) => (
                            &ctx.limits.for_thing,
                            format!("ListJobExecutionsForThing {t}"),
                        ),
                    };
                    let mut token = None;
                    loop {
                        let page = ctx
                            .call(limiter, &what, || {
                                let (ctx, unit, token) = (&ctx, &unit, token.clone());
                                async move {
                                    match unit {
                                        Unit::Job(j) => {
                                            ctx.client.list_for_job(j, status, token).await
                                        }
                                        Unit::Thing(t) => {
                                            ctx.client.list_for_thing(t, status, token).await
                                        }
                                    }
                                }
                            })
                            .await?;
                        let Some(page) = page else { break };
                        token = page.next_token.clone();
                        let items = emit(page);
                        dispatch(
                            items,
                            spec.describe,
                            &origin,
                            &ctx.counters,
                            &rows,
                            &work_tx,
                        )
                        .await?;
                        if token.is_none() {
                            break;
                        }
                    }
                }
                Ok(())
            }
            .await;
            drop(work_tx);
            (result, listed)
        })
    };
    let work = futures::stream::poll_fn(move |cx| work_rx.poll_recv(cx));
    let describe_limiter = Arc::new(CallLimiter::new(cfg.rps, cfg.burst, cfg.adaptive));
    let lane = Lane {
        client,
        limiter: describe_limiter,
        origin: Some(lane_origin),
        counters: ctx.counters.clone(),
    };
    let engine = run_engine(lane, cfg.engine.clone(), work, rows, shutdown).await;
    let (list_result, listed) = lister.await.expect("lister task does not panic");
    // A listing stop (interrupt, fatal) explains an engine that ended early, so it comes first;
    // unless the listing only stopped because the engine had stopped taking work.
    let result = match (list_result, engine) {
        (Err(Stop::WriterGone), Err(stop)) => Err(stop),
        (Err(stop), _) => Err(stop),
        (Ok(()), r) => r,
    };
    session
        .close(
            result,
            SummaryBase {
                pairs: listed,
                duplicates: 0,
                resumed,
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, LargeStringArray, StringViewArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    fn part(dir: &std::path::Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> Manifest {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let f = std::fs::File::create(dir.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut m = Manifest::new("discover:test".into(), 0, "parquet");
        m.parts.push(crate::sink::PartEntry {
            file: name.into(),
            rows: batch.num_rows() as u64,
        });
        for o in 0..batch.num_rows() as u64 {
            m.committed.insert(o);
        }
        m
    }

    /// A discovery dataset rewritten by another tool with other string types still resumes; a part
    /// whose pair columns are no strings is refused with its name, never a panic.
    #[tokio::test]
    async fn resume_reads_pairs_written_as_large_or_view_strings() {
        let d = tempfile::tempdir().unwrap();
        let target = OutputDir::Local(d.path().to_path_buf());
        let things: ArrayRef = Arc::new(LargeStringArray::from(vec!["t-1", "t-2"]));
        let jobs: ArrayRef = Arc::new(StringViewArray::from(vec!["j-1", "j-2"]));
        let m = part(
            d.path(),
            "part-r-00000.parquet",
            vec![("thing_name", things), ("job_id", jobs)],
        );
        let keys = committed_pairs(&target, &m).await.unwrap();
        let want: HashSet<u128> = [pair_key("t-1", "j-1"), pair_key("t-2", "j-2")].into();
        assert_eq!(keys, want);

        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let jobs: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["j-1", "j-2"]));
        let m = part(
            d.path(),
            "part-r-00001.parquet",
            vec![("thing_name", numbers), ("job_id", jobs)],
        );
        let err = committed_pairs(&target, &m).await.unwrap_err().to_string();
        assert!(
            err.contains("part-r-00001.parquet: column thing_name is Int64, not a string"),
            "{err}"
        );
    }
}
