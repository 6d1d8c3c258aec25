//! The list operations discovery uses: ListJobs, DescribeJob (for the plan's counts),
//! ListJobExecutionsForJob and ListJobExecutionsForThing, one page per call, through `aws-sdk-iot`.
//!
//! Like DescribeJobExecution, each method makes exactly one request; paging, rate limiting and retries
//! belong to the caller (discovery).

use std::future::Future;

use aws_sdk_iot::types::{JobExecutionStatus, JobExecutionSummary, JobStatus};

use super::{classify_sdk_error, epoch_millis, CallError, IotClient};

/// A job execution as a list summary reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionSummary {
    pub status: Option<String>,
    pub queued_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub last_updated_at_ms: Option<i64>,
    pub execution_number: Option<i64>,
    pub retry_attempt: Option<i32>,
}

/// One listed execution: the pair it belongs to and its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedExecution {
    pub thing_name: String,
    pub job_id: String,
    /// Only ListJobExecutionsForJob reports it.
    pub thing_arn: Option<String>,
    pub summary: ExecutionSummary,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What DescribeJob says of a job: its execution counts by status (jobProcessDetails, for a
/// discovery's plan) and its status and timeout (a diagnosis's context).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct JobCounts {
    pub queued: u64,
    pub in_progress: u64,
    /// All executions the job reports, every status.
    pub total: u64,
    pub context: super::JobContext,
}

/// Largest page the list operations allow.
pub(crate) const MAX_PAGE: i32 = 250;

/// The list operations, one request per call.
pub(crate) trait FleetLister: Send + Sync + 'static {
    fn list_jobs(
        &self,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, CallError>> + Send;

    fn describe_job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<JobCounts, CallError>> + Send;

    fn list_for_job(
        &self,
        job_id: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<ListedExecution>, CallError>> + Send;

    fn list_for_thing(
        &self,
        thing_name: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<ListedExecution>, CallError>> + Send;
}

fn summary(s: Option<&JobExecutionSummary>) -> ExecutionSummary {
    let Some(s) = s else {
        return ExecutionSummary::default();
    };
    ExecutionSummary {
        status: s.status().map(|v| v.as_str().to_string()),
        queued_at_ms: s.queued_at().map(epoch_millis),
        started_at_ms: s.started_at().map(epoch_millis),
        last_updated_at_ms: s.last_updated_at().map(epoch_millis),
        execution_number: s.execution_number(),
        retry_attempt: s.retry_attempt(),
    }
}

/// The thing name at the end of a thing ARN (`arn:aws:iot:REGION:ACCOUNT:thing/NAME`).
pub(crate) fn thing_name_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":thing/")
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty())
}

impl FleetLister for IotClient {
    async fn list_jobs(
        &self,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<String>, CallError> {
        let out = self
            .sdk()
            .list_jobs()
            .set_status(status.map(JobStatus::from))
            .set_next_token(next_token)
            .max_results(MAX_PAGE)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        Ok(Page {
            items: out
                .jobs()
                .iter()
                .filter_map(|j| j.job_id().map(str::to_string))
                .collect(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn describe_job(&self, job_id: &str) -> Result<JobCounts, CallError> {
        let out = self
            .sdk()
            .describe_job()
            .job_id(job_id)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        let job = out.job();
        let context = super::JobContext {
            status: job.and_then(|j| j.status()).map(|s| s.as_str().to_string()),
            in_progress_timeout_minutes: job
                .and_then(|j| j.timeout_config())
                .and_then(|t| t.in_progress_timeout_in_minutes()),
        };
        let d = job.and_then(|j| j.job_process_details());
        let n = |v: Option<i32>| v.unwrap_or(0).max(0) as u64;
        Ok(match d {
            None => JobCounts {
                context,
                ..JobCounts::default()
            },
            Some(d) => JobCounts {
                context,
                queued: n(d.number_of_queued_things()),
                in_progress: n(d.number_of_in_progress_things()),
                total: [
                    d.number_of_canceled_things(),
                    d.number_of_succeeded_things(),
                    d.number_of_failed_things(),
                    d.number_of_rejected_things(),
                    d.number_of_queued_things(),
                    d.number_of_in_progress_things(),
                    d.number_of_removed_things(),
                    d.number_of_timed_out_things(),
                ]
                .into_iter()
                .map(n)
                .sum(),
            },
        })
    }

    async fn list_for_job(
        &self,
        job_id: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        let out = self
            .sdk()
            .list_job_executions_for_job()
            .job_id(job_id)
            .set_status(status.map(JobExecutionStatus::from))
            .set_next_token(next_token)
            .max_results(MAX_PAGE)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        let mut items = Vec::with_capacity(out.execution_summaries().len());
        for s in out.execution_summaries() {
            let arn = s.thing_arn().unwrap_or_default();
            let Some(thing) = thing_name_of_arn(arn) else {
                return Err(CallError::Malformed(format!(
                    "execution summary without a thing ARN ({arn:?})"
                )));
            };
            items.push(ListedExecution {
                thing_name: thing.to_string(),
                job_id: job_id.to_string(),
                thing_arn: Some(arn.to_string()),
                summary: summary(s.job_execution_summary()),
            });
        }
        Ok(Page {
            items,
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn list_for_thing(
        &self,
        thing_name: &str,
        status: Option<&str>,
        next_token: Option<String>,
    ) -> Result<Page<ListedExecution>, CallError> {
        let out = self
            .sdk()
            .list_job_executions_for_thing()
            .thing_name(thing_name)
            .set_status(status.map(JobExecutionStatus::from))
            .set_next_token(next_token)
            .max_results(MAX_PAGE)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        let mut items = Vec::with_capacity(out.execution_summaries().len());
        for s in out.execution_summaries() {
            let Some(job) = s.job_id() else {
                return Err(CallError::Malformed(
                    "execution summary without a job id".into(),
                ));
            };
            items.push(ListedExecution {
                thing_name: thing_name.to_string(),
                job_id: job.to_string(),
                thing_arn: None,
                summary: summary(s.job_execution_summary()),
            });
        }
        Ok(Page {
            items,
            next_token: out.next_token().map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names_come_from_arns() {
        assert_eq!(
            thing_name_of_arn("arn:aws:iot:us-east-1:123456789012:thing/MyRaspberryPi"),
            Some("MyRaspberryPi")
        );
        assert_eq!(thing_name_of_arn("arn:aws:iot:us-east-1:1:thing/"), None);
        assert_eq!(thing_name_of_arn("nonsense"), None);
    }
}
