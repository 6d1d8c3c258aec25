//! The calls that change the fleet: CancelJobExecution and DeleteJobExecution, one request per
//! call, through `aws-sdk-iot`.
//!
//! Like DescribeJobExecution, each method makes exactly one request; rate limiting, retries and the
//! reading of a refusal (a version conflict is the guard working, never retried) belong to the
//! caller (`apply`).

use std::collections::HashMap;
use std::future::Future;

use super::{classify_sdk_error, CallError, IotClient};

/// One CancelJobExecution request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub thing_name: String,
    pub job_id: String,
    /// Admits an IN_PROGRESS execution (the device can no longer report its status).
    pub force: bool,
    /// The execution's version as audited: AWS refuses the cancel (VersionConflictException) when
    /// the execution changed since.
    pub expected_version: Option<i64>,
    /// The details the cancelled execution keeps (at most 10).
    pub status_details: Vec<(String, String)>,
}

/// One DeleteJobExecution request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub thing_name: String,
    pub job_id: String,
    pub execution_number: i64,
    /// Admits a non-terminal execution.
    pub force: bool,
}

/// The calls that change executions, one request per call.
pub(crate) trait FleetChanger: Send + Sync + 'static {
    fn cancel_job_execution(
        &self,
        req: &CancelRequest,
    ) -> impl Future<Output = Result<(), CallError>> + Send;

    fn delete_job_execution(
        &self,
        req: &DeleteRequest,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
}

impl FleetChanger for IotClient {
    async fn cancel_job_execution(&self, req: &CancelRequest) -> Result<(), CallError> {
        let details: HashMap<String, String> = req.status_details.iter().cloned().collect();
        self.client
            .cancel_job_execution()
            .thing_name(&req.thing_name)
            .job_id(&req.job_id)
            .force(req.force)
            .set_expected_version(req.expected_version)
            .set_status_details((!details.is_empty()).then_some(details))
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(())
    }

    async fn delete_job_execution(&self, req: &DeleteRequest) -> Result<(), CallError> {
        self.client
            .delete_job_execution()
            .thing_name(&req.thing_name)
            .job_id(&req.job_id)
            .execution_number(req.execution_number)
            .force(req.force)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(())
    }
}
