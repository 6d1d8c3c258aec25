//! An in-memory fleet: a [`FleetClient`] and [`FleetLister`] that answer from a map, with no wire and
//! no clock, for the engine's and discovery's tests (under `tokio::time::pause()`). Listings come in
//! pages of [`FakeFleet::page`] items (2 by default, so that paging is exercised). Faults and latency are added by wrapping it in
//! [`super::faulty::Faulty`], never by a flag here. The simulator (`fleet-audit sim`) stays for the wire.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::list::{ExecutionSummary, FleetLister, JobCounts, ListedExecution, Page};
use super::{CallError, ExecutionRecord, FleetClient};

/// Executions by (thing, job); every other pair is ResourceNotFound, as AWS answers.
#[derive(Debug)]
pub(crate) struct FakeFleet {
    executions: BTreeMap<(String, String), ExecutionRecord>,
    calls: AtomicU64,
    page: usize,
}

impl Default for FakeFleet {
    fn default() -> Self {
        FakeFleet {
            executions: BTreeMap::new(),
            calls: AtomicU64::new(0),
            page: 2,
        }
    }
}

impl FakeFleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the execution of `job` on `thing` in `status`.
    pub fn with(mut self, thing: &str, job: &str, status: &str) -> Self {
        self.executions.insert(
            (thing.to_string(), job.to_string()),
            ExecutionRecord {
                job_id: Some(job.to_string()),
                status: Some(status.to_string()),
                execution_number: Some(1),
                version_number: Some(1),
                ..Default::default()
            },
        );
        self
    }

    /// Listings come `n` items a page.
    pub fn page(mut self, n: usize) -> Self {
        self.page = n.max(1);
        self
    }

    /// DescribeJobExecution calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The page of `items` that `token` (an offset, as this fake writes them) starts.
    fn paged<T>(&self, items: Vec<T>, token: Option<String>) -> Result<Page<T>, CallError> {
        let start = match token {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| CallError::Service {
                code: "InvalidRequestException".into(),
                message: format!("bad nextToken {t}"),
                http_status: 400,
            })?,
        };
        let end = (start + self.page).min(items.len());
        let next_token = (end < items.len()).then(|| end.to_string());
        let items = items.into_iter().skip(start).take(end - start).collect();
        Ok(Page { items, next_token })
    }

    /// The listed executions that `keep` admits, in (thing, job) order, of status `status` if given.
    fn listed(
        &self,
        status: Option<&str>,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Vec<ListedExecution> {
        self.executions
            .iter()
            .filter(|((t, j), e)| {
                keep(t, j) && status.is_none_or(|s| e.status.as_deref() == Some(s))
            })
            .map(|((t, j), e)| ListedExecution {
                thing_name: t.clone(),
                job_id: j.clone(),
                thing_arn: None,
                summary: ExecutionSummary {
                    status: e.status.clone(),
                    queued_at_ms: e.queued_at_ms,
                    started_at_ms: e.started_at_ms,
                    last_updated_at_ms: e.last_updated_at_ms,
                    execution_number: e.execution_number,
                    retry_attempt: None,
                },
            })
            .collect()
    }
}

fn job_not_found(job_id: &str) -> CallError {
    CallError::Service {
        code: "ResourceNotFoundException".into(),
        message: format!("Job {job_id} cannot be found."),
        http_status: 404,
    }
}

/// Every job of the fake is IN_PROGRESS; a thing or job it does not hold lists nothing, as AWS's
/// ListJobExecutionsForThing does (ListJobExecutionsForJob and DescribeJob answer 404 for a job).
/// The fake has no fleet index: SearchIndex answers the ResourceNotFoundException of an account
/// without fleet indexing. Its registry holds no thing and no group.
impl super::FleetContext for FakeFleet {
    async fn search_things(
        &self,
        _query: &str,
        _next_token: Option<String>,
    ) -> Result<Page<(String, super::ThingContext)>, CallError> {
        Err(CallError::Service {
            code: "ResourceNotFoundException".into(),
            message: "Index AWS_Things does not exist".into(),
            http_status: 404,
        })
    }
    async fn list_things(
        &self,
        _next_token: Option<String>,
    ) -> Result<Page<(String, super::ThingShape)>, CallError> {
        Ok(Page::default())
    }
    async fn list_thing_groups(&self, _: Option<String>) -> Result<Page<String>, CallError> {
        Ok(Page::default())
    }
    async fn list_things_in_group(
        &self,
        _: &str,
        _: Option<String>,
    ) -> Result<Page<String>, CallError> {
        Ok(Page::default())
    }
}

impl FleetLister for FakeFleet {
    async fn list_jobs(
        &self,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        let mut jobs: Vec<String> = self.executions.keys().map(|(_, j)| j.clone()).collect();
        jobs.sort();
        jobs.dedup();
        if status.is_some_and(|s| s != "IN_PROGRESS") {
            jobs.clear();
        }
        self.paged(jobs, next_token)
    }

    async fn describe_job(&self, job_id: &str) -> Result<JobCounts, CallError> {
        let of_job: Vec<&ExecutionRecord> = self
            .executions
            .iter()
            .filter(|((_, j), _)| j == job_id)
            .map(|(_, e)| e)
            .collect();
        if of_job.is_empty() {
            return Err(job_not_found(job_id));
        }
        let count = |s: &str| {
            of_job
                .iter()
                .filter(|e| e.status.as_deref() == Some(s))
                .count() as u64
        };
        Ok(JobCounts {
            queued: count("QUEUED"),
            in_progress: count("IN_PROGRESS"),
            total: of_job.len() as u64,
            // The fake's jobs have no configs it could tell.
            context: Default::default(),
        })
    }

    async fn list_for_job(
        &self,
        job_id: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        if !self.executions.keys().any(|(_, j)| j == job_id) {
            return Err(job_not_found(job_id));
        }
        self.paged(self.listed(status, |_, j| j == job_id), next_token)
    }

    async fn list_for_thing(
        &self,
        thing_name: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        self.paged(self.listed(status, |t, _| t == thing_name), next_token)
    }
}

impl FleetClient for FakeFleet {
    async fn describe_job_execution(
        &self,
        thing_name: &str,
        job_id: &str,
        _execution_number: Option<i64>,
    ) -> Result<ExecutionRecord, CallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.executions
            .get(&(thing_name.to_string(), job_id.to_string()))
            .cloned()
            .ok_or_else(|| CallError::Service {
                code: "ResourceNotFoundException".into(),
                message: format!("no execution of {job_id} on {thing_name}"),
                http_status: 404,
            })
    }
}
