//! A [`FleetClient`] wrapper that injects failures and latency in front of another client (the
//! mountpoint-s3 way: wrappers stack on a plain fake instead of one fake with every knob).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::list::{FleetLister, JobCounts, ListedExecution, Page};
use super::{CallError, ExecutionRecord, FleetClient};

/// What a failed attempt answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// ThrottlingException, HTTP 400 with `x-amzn-ErrorType` as IoT sends it.
    Throttle,
    /// InternalFailureException, HTTP 500.
    ServerError,
}

impl Fault {
    fn error(self) -> CallError {
        match self {
            Fault::Throttle => CallError::Service {
                code: "ThrottlingException".into(),
                message: "Rate exceeded".into(),
                http_status: 400,
            },
            Fault::ServerError => CallError::Service {
                code: "InternalFailureException".into(),
                message: "internal failure".into(),
                http_status: 500,
            },
        }
    }
}

/// `inner`, but the first `failures` attempts of every pair fail with `fault`, every attempt takes
/// `latency` (on tokio's clock) before it answers, and with a quota, an attempt that finds the quota's
/// bucket empty is throttled.
#[derive(Debug)]
pub(crate) struct Faulty<C> {
    inner: C,
    fault: Fault,
    failures: u32,
    latency: Duration,
    attempts: Mutex<HashMap<(String, String), u32>>,
    quota: Option<Mutex<Bucket>>,
}

/// A service's quota as a token bucket on tokio's clock: `rps` tokens a second, at most `burst`.
#[derive(Debug)]
struct Bucket {
    rps: f64,
    burst: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = (now - self.at).as_secs_f64() * self.rps;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<C> Faulty<C> {
    /// `inner` with no fault and no latency yet.
    pub fn new(inner: C) -> Self {
        Faulty {
            inner,
            fault: Fault::ServerError,
            failures: 0,
            latency: Duration::ZERO,
            attempts: Mutex::new(HashMap::new()),
            quota: None,
        }
    }

    /// A quota of `rps` calls a second with a bucket of `burst` (full at the start), as a service
    /// has: an attempt that finds the bucket empty is answered with ThrottlingException.
    pub fn quota(mut self, rps: f64, burst: u32) -> Self {
        self.quota = Some(Mutex::new(Bucket {
            rps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: tokio::time::Instant::now(),
        }));
        self
    }

    /// The first `n` attempts of each pair fail with `fault`.
    pub fn failing(mut self, fault: Fault, n: u32) -> Self {
        self.fault = fault;
        self.failures = n;
        self
    }

    /// Every attempt takes `d` before it answers.
    pub fn slow(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// The wrapped client.
    pub(crate) fn inner(&self) -> &C {
        &self.inner
    }

    /// What every call meets first: the latency, then the quota.
    async fn before_call(&self) -> Result<(), CallError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if let Some(q) = &self.quota {
            if !q.lock().expect("quota lock").take() {
                return Err(Fault::Throttle.error());
            }
        }
        Ok(())
    }
}

impl<C: FleetClient> FleetClient for Faulty<C> {
    async fn describe_job_execution(
        &self,
        thing_name: &str,
        job_id: &str,
        execution_number: Option<i64>,
    ) -> Result<ExecutionRecord, CallError> {
        self.before_call().await?;
        let n = {
            let mut a = self.attempts.lock().expect("attempts lock");
            let n = a
                .entry((thing_name.to_string(), job_id.to_string()))
                .or_insert(0);
            *n += 1;
            *n
        };
        if n <= self.failures {
            return Err(self.fault.error());
        }
        self.inner
            .describe_job_execution(thing_name, job_id, execution_number)
            .await
    }
}

/// The context calls pass through as the listings do.
impl<C: FleetClient + super::FleetContext> super::FleetContext for Faulty<C> {
    async fn search_things(
        &self,
        query: &str,
        next_token: Option<String>,
    ) -> Result<Page<(String, super::ThingContext)>, CallError> {
        self.before_call().await?;
        self.inner.search_things(query, next_token).await
    }
    async fn list_things(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<(String, super::ThingShape)>, CallError> {
        self.before_call().await?;
        self.inner.list_things(next_token).await
    }
    async fn list_thing_groups(
        &self,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        self.before_call().await?;
        self.inner.list_thing_groups(next_token).await
    }
    async fn list_things_in_group(
        &self,
        group: &str,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        self.before_call().await?;
        self.inner.list_things_in_group(group, next_token).await
    }
}

/// Listings pass through with the same latency and quota as describes (a fault per pair applies to
/// DescribeJobExecution only).
impl<C: FleetClient + FleetLister> FleetLister for Faulty<C> {
    async fn list_jobs(
        &self,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        self.before_call().await?;
        self.inner.list_jobs(status, next_token).await
    }

    async fn describe_job(&self, job_id: &str) -> Result<JobCounts, CallError> {
        self.before_call().await?;
        self.inner.describe_job(job_id).await
    }

    async fn list_for_job(
        &self,
        job_id: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        self.before_call().await?;
        self.inner.list_for_job(job_id, status, next_token).await
    }

    async fn list_for_thing(
        &self,
        thing_name: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        self.before_call().await?;
        self.inner
            .list_for_thing(thing_name, status, next_token)
            .await
    }
}
