//! A [`FleetClient`] wrapper that injects failures and latency in front of another client (the
//! mountpoint-s3 way: wrappers stack on a plain fake instead of one fake with every knob).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{CallError, ExecutionRecord, FleetClient};

/// What a failed attempt answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
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

/// `inner`, but the first `failures` attempts of every pair fail with `fault`, and every attempt
/// takes `latency` (on tokio's clock) before it answers.
#[derive(Debug)]
pub struct Faulty<C> {
    inner: C,
    fault: Fault,
    failures: u32,
    latency: Duration,
    attempts: Mutex<HashMap<(String, String), u32>>,
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
        }
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
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: FleetClient> FleetClient for Faulty<C> {
    async fn describe_job_execution(
        &self,
        thing_name: &str,
        job_id: &str,
        execution_number: Option<i64>,
    ) -> Result<ExecutionRecord, CallError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
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
