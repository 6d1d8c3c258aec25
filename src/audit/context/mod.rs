//! The diagnosis's context stage: between a target's rows and the writer, each row gets its job's
//! context (one DescribeJob per job), its thing's (one SearchIndex per 100 things: thing type,
//! attributes, groups, connectivity) and, for a QUEUED row that waited past `--queued-after` on a
//! thing not known to be offline, what holds up the thing's queue (the account's IN_PROGRESS
//! executions, listed in pages by job and read again when 15 minutes old). Every call goes through
//! `aws/call` with its own limiter, as each API has its own quota at AWS.
//!
//! An account without fleet indexing is no error: its things' type, attributes and groups are read
//! from the registry's listings instead (`registry`), their connectivity is unknown, said once. A
//! shutdown during a context call sends the rows on without what that call would have given: an
//! interrupted run commits what it has, and a row committed then may lack its thing's context.
//! Rows wait here at most [`BATCH_WAIT`] for their thing's batch to fill, so a slow audit still
//! commits its parts on time.

mod calls;
mod registry;
mod things;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audit::engine::Stop;
use crate::aws::call::{Counters, EngineSettings};
use crate::aws::client::{FleetContext, FleetLister, SEARCH_PAGE};
use crate::aws::limit::CallLimiter;
use crate::dataset::schema::{JobContext, Row, ThingContext};
use crate::dataset::WriterMsg;
use crate::input::pair::pair_key;
use registry::Registry;
use things::{short, Things};

/// Longest a row waits for its thing's batch.
const BATCH_WAIT: Duration = Duration::from_secs(2);

/// What context a run fetches (`run --context`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSettings {
    /// DescribeJob per job.
    pub jobs: bool,
    /// SearchIndex per 100 things, and the queue of a stuck QUEUED row's thing.
    pub things: bool,
    /// Calls per second of each context API (`None`: no limit).
    pub rps: Option<f64>,
    /// A QUEUED row waited longer than this (the report's `--queued-after`) has its thing's queue
    /// read.
    pub queued_after_ms: i64,
}

impl ContextSettings {
    /// No context at all.
    pub fn none() -> Self {
        ContextSettings {
            jobs: false,
            things: false,
            rps: None,
            queued_after_ms: i64::MAX,
        }
    }
}

impl ContextSettings {
    /// The line said before the first call: the context calls a target makes for `jobs` jobs
    /// (`None`: not known before the rows come) and `things` things (`at_most`: an upper bound,
    /// the things being known only as listed), and
    /// their time at `--context-rps`, each API at its own quota beside the audit's. `None` without
    /// context.
    pub(crate) fn plan_line(
        &self,
        jobs: Option<u64>,
        things: u64,
        at_most: bool,
    ) -> Option<String> {
        let describe_jobs = if self.jobs { jobs.unwrap_or(1) } else { 0 };
        let searches = if self.things {
            things.div_ceil(SEARCH_PAGE as u64)
        } else {
            0
        };
        if describe_jobs == 0 && searches == 0 {
            return None;
        }
        let t = crate::audit::summary::thousands;
        let bound = if at_most { "at most " } else { "about " };
        let mut calls = Vec::new();
        if self.jobs {
            calls.push(match jobs {
                Some(n) => format!("{} DescribeJob", t(n)),
                None => "a DescribeJob per job".to_string(),
            });
        }
        if self.things {
            calls.push(format!("{bound}{} SearchIndex", t(searches)));
        }
        let time = match self.rps {
            Some(r) => format!(
                "{} at {r} calls/s an API, beside the audit's",
                crate::time::human_duration(describe_jobs.max(searches) as f64 / r)
            ),
            None => "no rate limit".to_string(),
        };
        let queues = if self.things {
            "; the account's IN_PROGRESS executions in pages (250 a call) once a stuck QUEUED \
             row needs its thing's queue; without fleet indexing, the registry's listings (a call \
             per 250 things of the account) instead of SearchIndex"
        } else {
            ""
        };
        Some(format!(
            "context: {} calls ({time}){queues}",
            calls.join(" and ")
        ))
    }
}

/// What a target's stage needs besides its client.
pub(crate) struct StageParts {
    pub settings: ContextSettings,
    pub engine: EngineSettings,
    pub counters: Arc<Counters>,
    pub shutdown: watch::Receiver<bool>,
    /// The target's label in warnings (empty for a run's one target).
    pub label: String,
}

/// Starts the stage in front of `out`: rows sent to the returned sender reach `out` with their
/// context. The task ends when the sender is dropped and everything sent has gone on.
pub(crate) fn spawn<C: FleetContext + FleetLister>(
    client: Arc<C>,
    parts: StageParts,
    out: mpsc::Sender<WriterMsg>,
) -> (
    mpsc::Sender<WriterMsg>,
    Option<JoinHandle<Result<(), Stop>>>,
) {
    if !parts.settings.jobs && !parts.settings.things {
        return (out, None);
    }
    let (tx, rx) = mpsc::channel(crate::dataset::schema::BATCH_ROWS);
    let rps = parts.settings.rps;
    let limiter = || CallLimiter::new(rps, crate::aws::limit::burst_for(None, rps), true);
    let stage = Stage {
        client,
        limits: std::array::from_fn(|_| limiter()),
        parts,
        out,
        jobs: HashMap::new(),
        things: Things::default(),
        running: None,
        running_failed: false,
        registry: None,
        registry_wanted: false,
        registry_read: false,
        interrupted: false,
        connectivity_checked: false,
        paging_said: false,
        off: [false; APIS],
        failed_in_row: [0; APIS],
        said: HashSet::new(),
        colon_said: false,
        pending: Vec::new(),
        wanted: HashSet::new(),
    };
    (tx, Some(tokio::spawn(stage.run(rx))))
}

/// Most pages read for one query of at most 100 things (one page, in AWS).
const MAX_SEARCH_PAGES: usize = 10;

const APIS: usize = 7;
const DESCRIBE_JOB: usize = 0;
const SEARCH_INDEX: usize = 1;
const LIST_FOR_JOB: usize = 2;
const LIST_JOBS: usize = 3;
const LIST_THINGS: usize = 4;
const LIST_THING_GROUPS: usize = 5;
const LIST_THINGS_IN_GROUP: usize = 6;

/// How long a read of the account's IN_PROGRESS executions answers for the things' queues.
const RUNNING_FRESH: Duration = Duration::from_secs(15 * 60);

struct Stage<C> {
    client: Arc<C>,
    limits: [CallLimiter; APIS],
    parts: StageParts,
    out: mpsc::Sender<WriterMsg>,
    jobs: HashMap<String, Option<Arc<JobContext>>>,
    /// Things asked for, packed: a run keeps every thing it met (a thing's rows of several jobs
    /// come apart), in a few bytes each.
    things: Things,
    /// Things whose queue was read: the job of an IN_PROGRESS execution, if any.
    /// The account's IN_PROGRESS executions by thing, as last read (`None`: not read yet, or
    /// it could not be).
    running: Option<Running>,
    /// Whether reading them failed (not tried again).
    running_failed: bool,
    /// The account's registry, for the things' context where the fleet index cannot give it
    /// (`registry_wanted`); read once (`registry_read`), at the first thing that needs it.
    registry: Option<Registry>,
    registry_wanted: bool,
    registry_read: bool,
    /// A shutdown came while a context call was made: the rows still to come go on as they are
    /// (the writer commits what it has for `--resume`), with no more calls.
    interrupted: bool,
    /// Whether a page with documents was seen (and a missing connectivity said).
    connectivity_checked: bool,
    /// Whether an index that pages without end was said.
    paging_said: bool,
    /// The context APIs not called again: the policy does not permit them, they failed
    /// [`GIVE_UP_AFTER`] times in a row, or (SearchIndex) the account has no index.
    off: [bool; APIS],
    /// Each API's calls failed in a row since its last answer.
    failed_in_row: [u32; APIS],
    /// The failures said, by API and error code.
    said: HashSet<(usize, String)>,
    /// Whether a thing name the query cannot hold (a `:`) was said.
    colon_said: bool,
    /// Rows waiting for their thing's batch, and the things of the batch.
    pending: Vec<(Box<Row>, u64)>,
    wanted: HashSet<String>,
}

impl<C: FleetContext + FleetLister> Stage<C> {
    async fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) -> Result<(), Stop> {
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                Some(d) => tokio::select! {
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(d) => {
                        self.flush().await?;
                        deadline = None;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            match msg {
                Some(WriterMsg::Row { mut row, ordinal }) => {
                    if !self.interrupted {
                        match self.job(&row.job_id).await {
                            Ok(job) => row.context.job = job,
                            Err(Stop::Interrupted) => self.interrupted = true,
                            Err(stop) => return Err(stop),
                        }
                    }
                    if self.wants_thing(&row.thing_name) && !self.interrupted {
                        self.wanted.insert(row.thing_name.clone());
                        self.pending.push((row, ordinal));
                        deadline.get_or_insert_with(|| Instant::now() + BATCH_WAIT);
                        if self.wanted.len() >= SEARCH_PAGE as usize {
                            self.flush().await?;
                            deadline = None;
                        }
                    } else {
                        self.send(row, ordinal).await?;
                    }
                }
                Some(other) => {
                    self.flush().await?;
                    deadline = None;
                    self.out.send(other).await.map_err(|_| Stop::WriterGone)?;
                }
                None => return self.flush().await,
            }
        }
    }

    /// Whether `thing`'s context is still to be asked for.
    fn wants_thing(&mut self, thing: &str) -> bool {
        if !self.parts.settings.things
            || self.off[SEARCH_INDEX]
            || self.things.known(pair_key(thing, ""))
        {
            return false;
        }
        // The query language would read a `:` in a name as a field.
        if thing.contains(':') {
            if !self.colon_said {
                self.colon_said = true;
                self.warn(&format!(
                    "{thing}: a thing name with `:` cannot be asked of SearchIndex; such things \
                     have no thing context"
                ));
            }
            return false;
        }
        true
    }

    /// A row on to the writer with its thing's context and queue.
    async fn send(&mut self, mut row: Box<Row>, ordinal: u64) -> Result<(), Stop> {
        let key = pair_key(&row.thing_name, "");
        row.context.thing = self.things.get(key);
        if row.context.thing.is_none() && self.registry_wanted && !self.interrupted {
            row.context.thing = self.registry_thing(&row.thing_name).await?;
        }
        if self.needs_queue(&row) && !self.interrupted {
            match self.queue(&row.thing_name, key).await {
                Ok(Some(running)) => {
                    row.context.queue_read = true;
                    row.context.blocked_by = running.iter().find(|j| ***j != *row.job_id).cloned();
                }
                Ok(None) => {}
                Err(Stop::Interrupted) => self.interrupted = true,
                Err(stop) => return Err(stop),
            }
        }
        self.out
            .send(WriterMsg::Row { row, ordinal })
            .await
            .map_err(|_| Stop::WriterGone)
    }

    /// `thing`'s context from the account's registry, read at the first call.
    async fn registry_thing(&mut self, thing: &str) -> Result<Option<ThingContext>, Stop> {
        if !self.registry_read {
            self.registry_read = true;
            match self.read_registry().await {
                Ok(r) => self.registry = r,
                Err(Stop::Interrupted) => {
                    self.interrupted = true;
                    return Ok(None);
                }
                Err(stop) => return Err(stop),
            }
        }
        Ok(self.registry.as_ref().and_then(|r| r.get(thing)))
    }

    /// A QUEUED row that waited past the threshold, on a thing not known to be offline.
    fn needs_queue(&self, row: &Row) -> bool {
        let Some(e) = row.execution.as_ref() else {
            return false;
        };
        let waited = e
            .queued_at_ms
            .map(|q| row.fetched_at_ms.saturating_sub(q) > self.parts.settings.queued_after_ms);
        self.parts.settings.things
            && !self.running_failed
            && e.status.as_deref() == Some("QUEUED")
            && waited == Some(true)
            && row.context.thing.as_ref().and_then(|t| t.connected) != Some(false)
    }

    /// The jobs of `thing`'s IN_PROGRESS executions, from the account's as read at most
    /// [`RUNNING_FRESH`] ago (`None`: they could not be read).
    async fn queue(&mut self, _thing: &str, key: u128) -> Result<Option<Vec<Arc<str>>>, Stop> {
        let stale = self
            .running
            .as_ref()
            .is_none_or(|r| r.read_at.elapsed() > RUNNING_FRESH);
        if stale && !self.running_failed {
            match self.read_running().await? {
                Some(r) => self.running = Some(r),
                None => {
                    self.running_failed = true;
                    self.running = None;
                }
            }
        }
        Ok(self
            .running
            .as_ref()
            .map(|r| r.by_thing.get(&short(key)).cloned().unwrap_or_default()))
    }

    /// Every IN_PROGRESS execution of the account, in pages: its jobs (ListJobs), then each
    /// job's IN_PROGRESS executions (ListJobExecutionsForJob, 250 a page), so that a thing's queue
    /// costs no call of its own. `None` when a listing could not be read.
    async fn read_running(&mut self) -> Result<Option<Running>, Stop> {
        let client = self.client.clone();
        let mut jobs = Vec::new();
        let listed = self
            .pages(
                LIST_JOBS,
                "ListJobs",
                |t| client.list_jobs(None, t),
                |page| {
                    jobs.extend(page);
                    true
                },
            )
            .await?;
        if !listed {
            return Ok(None);
        }
        let mut by_thing: HashMap<u64, Vec<Arc<str>>> = HashMap::new();
        for job in jobs {
            let id: Arc<str> = Arc::from(job.as_str());
            let what = format!("ListJobExecutionsForJob {job} (IN_PROGRESS)");
            let listed = self
                .pages(
                    LIST_FOR_JOB,
                    &what,
                    |t| client.list_for_job(&job, Some("IN_PROGRESS"), t),
                    |page| {
                        for item in page {
                            let k = short(pair_key(&item.thing_name, ""));
                            by_thing.entry(k).or_default().push(id.clone());
                        }
                        true
                    },
                )
                .await?;
            if !listed {
                return Ok(None);
            }
        }
        Ok(Some(Running {
            by_thing,
            read_at: Instant::now(),
        }))
    }

    /// The context of `job` (asked once a run; `None` when DescribeJob could not say).
    async fn job(&mut self, job: &str) -> Result<Option<Arc<JobContext>>, Stop> {
        if !self.parts.settings.jobs || self.off[DESCRIBE_JOB] {
            return Ok(None);
        }
        if let Some(c) = self.jobs.get(job) {
            return Ok(c.clone());
        }
        let client = self.client.clone();
        let c = self
            .call(DESCRIBE_JOB, &format!("DescribeJob {job}"), || {
                client.describe_job(job)
            })
            .await?
            .map(|d| Arc::new(d.context));
        self.jobs.insert(job.to_string(), c.clone());
        Ok(c)
    }

    /// Asks the index for the batch's things, then sends the rows that waited for them.
    async fn flush(&mut self) -> Result<(), Stop> {
        if !self.wanted.is_empty() && !self.off[SEARCH_INDEX] {
            let names: Vec<String> = self.wanted.drain().collect();
            let query = names
                .iter()
                .map(|n| format!("thingName:{n}"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let mut found = match self.search(&query).await {
                Ok(found) => found,
                Err(Stop::Interrupted) => {
                    self.interrupted = true;
                    return self.send_pending().await;
                }
                Err(stop) => return Err(stop),
            };
            for n in names {
                self.things.insert(pair_key(&n, ""), found.remove(&n));
            }
        }
        self.send_pending().await
    }

    /// The rows that waited for a batch, on to the writer.
    async fn send_pending(&mut self) -> Result<(), Stop> {
        self.wanted.clear();
        for (row, ordinal) in std::mem::take(&mut self.pending) {
            self.send(row, ordinal).await?;
        }
        Ok(())
    }

    /// Every page of one query; an index that does not answer is said once and asked no more.
    async fn search(&mut self, query: &str) -> Result<HashMap<String, ThingContext>, Stop> {
        let mut found = HashMap::new();
        let mut token: Option<String> = None;
        let client = self.client.clone();
        // A query names at most 100 things, one page's worth: a few pages more are an index
        // answering oddly, and a token seen before would never end.
        let mut seen = HashSet::new();
        for _ in 0..MAX_SEARCH_PAGES {
            let page = self
                .call(SEARCH_INDEX, "SearchIndex", || {
                    client.search_things(query, token.clone())
                })
                .await?;
            let Some(page) = page else {
                return Ok(found);
            };
            if !self.connectivity_checked && !page.items.is_empty() {
                self.connectivity_checked = true;
                if page.items.iter().all(|(_, t)| t.connected.is_none()) {
                    self.warn(
                        "fleet indexing has no connectivity (thingConnectivityIndexingMode is \
                         off): connectivity is unknown, and so are the causes that need it",
                    );
                }
            }
            found.extend(page.items);
            token = page.next_token;
            match &token {
                None => return Ok(found),
                Some(t) if !seen.insert(t.clone()) => break,
                Some(_) => {}
            }
        }
        if !self.paging_said {
            self.paging_said = true;
            self.warn(
                "SearchIndex kept answering more pages for 100 things; the rest are not read",
            );
        }
        Ok(found)
    }
}

/// The account's IN_PROGRESS executions by thing (the short key of its name), and when read.
struct Running {
    by_thing: HashMap<u64, Vec<Arc<str>>>,
    read_at: Instant,
}

/// How a target's audit and its context stage ended together: the audit's stop first.
pub(crate) async fn join(
    audit: Result<(), Stop>,
    stage: Option<JoinHandle<Result<(), Stop>>>,
) -> Result<(), Stop> {
    let stage = match stage {
        Some(h) => h.await.unwrap_or(Err(Stop::WriterGone)),
        None => Ok(()),
    };
    match (audit, stage) {
        // The audit stopped because the stage it sends to had stopped: the stage says why.
        (Err(Stop::WriterGone), Err(stop)) => Err(stop),
        (Err(stop), _) => Err(stop),
        (Ok(()), r) => r,
    }
}

#[cfg(test)]
mod tests;
