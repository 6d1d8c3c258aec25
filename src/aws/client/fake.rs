//! An in-memory fleet: a [`FleetClient`] that answers from a map, with no wire and no clock, for the
//! engine's tests (under `tokio::time::pause()`). Faults and latency are added by wrapping it in
//! [`super::faulty::Faulty`], never by a flag here. The simulator (`fleet-audit sim`) stays for the wire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CallError, ExecutionRecord, FleetClient};

/// Executions by (thing, job); every other pair is ResourceNotFound, as AWS answers.
#[derive(Debug, Default)]
pub struct FakeFleet {
    executions: HashMap<(String, String), ExecutionRecord>,
    calls: AtomicU64,
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

    /// DescribeJobExecution calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
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
