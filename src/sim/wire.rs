//! The simulator's JSON bodies, written by hand in AWS IoT's restJson1 shapes.
//!
//! Bodies are rendered straight into a byte buffer (no intermediate tree) because the simulator must
//! answer tens of thousands of calls a second. Absent members are omitted, never written as `null`, and
//! timestamps are epoch seconds with milliseconds, exactly as AWS IoT sends them.

use super::fleet::{Execution, Fleet, STATUSES};

/// Appends `s` as a JSON string literal.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn push_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends epoch milliseconds as epoch seconds with three decimals (`1560787023.636`).
pub(crate) fn push_ts(out: &mut Vec<u8>, ms: u64) {
    push_int(out, ms / 1000);
    out.push(b'.');
    let frac = ms % 1000;
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + (frac / 10 % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    push_str(out, k);
    out.push(b':');
}

/// `{"execution": {...}}`: DescribeJobExecution's answer.
pub(crate) fn describe_execution(out: &mut Vec<u8>, fleet: &Fleet, e: &Execution) {
    let job = &fleet.jobs()[e.job_index as usize];
    out.extend_from_slice(b"{\"execution\":{");
    let mut first = true;
    key(out, &mut first, "jobId");
    push_str(out, &job.id);
    key(out, &mut first, "status");
    push_str(out, e.status);
    if let Some(fc) = e.force_canceled {
        key(out, &mut first, "forceCanceled");
        out.extend_from_slice(if fc { b"true" } else { b"false" });
    }
    key(out, &mut first, "statusDetails");
    out.push(b'{');
    if let Some(details) = &e.details {
        out.extend_from_slice(b"\"detailsMap\":{");
        for (n, (k, v)) in details.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            push_str(out, k);
            out.push(b':');
            push_str(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
    key(out, &mut first, "thingArn");
    push_str(out, &fleet.thing_arn(e.thing_index));
    times_and_number(out, &mut first, e);
    key(out, &mut first, "versionNumber");
    push_int(out, e.version_number);
    if let Some(a) = e.approximate_seconds_before_timed_out {
        key(out, &mut first, "approximateSecondsBeforeTimedOut");
        push_int(out, a);
    }
    out.extend_from_slice(b"}}");
}

/// The fields a JobExecution and a JobExecutionSummary share: queuedAt, startedAt (when started),
/// lastUpdatedAt, executionNumber.
fn times_and_number(out: &mut Vec<u8>, first: &mut bool, e: &Execution) {
    key(out, first, "queuedAt");
    push_ts(out, e.queued_at_ms);
    if let Some(s) = e.started_at_ms {
        key(out, first, "startedAt");
        push_ts(out, s);
    }
    key(out, first, "lastUpdatedAt");
    push_ts(out, e.last_updated_at_ms);
    key(out, first, "executionNumber");
    push_int(out, e.execution_number);
}

/// A JobExecutionSummary object (status, timestamps, executionNumber, retryAttempt).
pub(crate) fn execution_summary(out: &mut Vec<u8>, e: &Execution) {
    out.push(b'{');
    let mut first = true;
    key(out, &mut first, "status");
    push_str(out, e.status);
    times_and_number(out, &mut first, e);
    key(out, &mut first, "retryAttempt");
    push_int(out, e.retry_attempt);
    out.push(b'}');
}

/// Appends `,"nextToken":"..."` when there is a next page, then closes the object.
pub(crate) fn close_page(out: &mut Vec<u8>, next_token: Option<&str>) {
    if let Some(t) = next_token {
        out.extend_from_slice(b",\"nextToken\":");
        push_str(out, t);
    }
    out.push(b'}');
}

/// A JobSummary object for ListJobs.
pub(crate) fn job_summary(out: &mut Vec<u8>, fleet: &Fleet, j: u32) {
    let job = &fleet.jobs()[j as usize];
    out.push(b'{');
    let mut first = true;
    key(out, &mut first, "jobArn");
    push_str(out, &fleet.job_arn(j));
    key(out, &mut first, "jobId");
    push_str(out, &job.id);
    key(out, &mut first, "targetSelection");
    push_str(out, "SNAPSHOT");
    key(out, &mut first, "status");
    push_str(out, fleet.job_status(j));
    key(out, &mut first, "createdAt");
    push_ts(out, job.created_at_ms);
    key(out, &mut first, "lastUpdatedAt");
    push_ts(out, fleet.job_last_updated_ms(j));
    if job.status != "IN_PROGRESS" {
        key(out, &mut first, "completedAt");
        push_ts(out, fleet.job_last_updated_ms(j));
    }
    key(out, &mut first, "isConcurrent");
    out.extend_from_slice(b"false");
    out.push(b'}');
}

/// `{"job": {...}}`: DescribeJob's answer, with jobProcessDetails counts.
pub(crate) fn describe_job(out: &mut Vec<u8>, fleet: &Fleet, j: u32) {
    let job = &fleet.jobs()[j as usize];
    let counts = fleet.status_counts(j);
    let n = |s: &str| counts.by_status[STATUSES.iter().position(|x| *x == s).unwrap_or(0)];
    out.extend_from_slice(b"{\"job\":{");
    let mut first = true;
    key(out, &mut first, "jobArn");
    push_str(out, &fleet.job_arn(j));
    key(out, &mut first, "jobId");
    push_str(out, &job.id);
    key(out, &mut first, "targetSelection");
    push_str(out, "SNAPSHOT");
    key(out, &mut first, "status");
    push_str(out, fleet.job_status(j));
    if job.status == "CANCELED" {
        key(out, &mut first, "forceCanceled");
        out.extend_from_slice(b"true");
    }
    key(out, &mut first, "description");
    push_str(out, "simulated firmware rollout");
    key(out, &mut first, "createdAt");
    push_ts(out, job.created_at_ms);
    key(out, &mut first, "lastUpdatedAt");
    push_ts(out, fleet.job_last_updated_ms(j));
    if job.status != "IN_PROGRESS" {
        key(out, &mut first, "completedAt");
        push_ts(out, fleet.job_last_updated_ms(j));
    }
    key(out, &mut first, "jobProcessDetails");
    out.push(b'{');
    let mut f2 = true;
    for (name, status) in [
        ("numberOfCanceledThings", "CANCELED"),
        ("numberOfSucceededThings", "SUCCEEDED"),
        ("numberOfFailedThings", "FAILED"),
        ("numberOfRejectedThings", "REJECTED"),
        ("numberOfQueuedThings", "QUEUED"),
        ("numberOfInProgressThings", "IN_PROGRESS"),
        ("numberOfRemovedThings", "REMOVED"),
        ("numberOfTimedOutThings", "TIMED_OUT"),
    ] {
        key(out, &mut f2, name);
        push_int(out, n(status));
    }
    out.push(b'}');
    if let Some(m) = job.timeout_minutes {
        key(out, &mut first, "timeoutConfig");
        out.extend_from_slice(b"{\"inProgressTimeoutInMinutes\":");
        push_int(out, m);
        out.push(b'}');
    }
    job_configs(out, &mut first, job);
    key(out, &mut first, "isConcurrent");
    out.extend_from_slice(b"false");
    out.extend_from_slice(b"}}");
}

/// A job's rollout, retry, abort and scheduling configs, where it has them.
fn job_configs(out: &mut Vec<u8>, first: &mut bool, job: &crate::sim::fleet::Job) {
    if let Some(n) = job.rollout_per_minute {
        key(out, first, "jobExecutionsRolloutConfig");
        out.extend_from_slice(b"{\"maximumPerMinute\":");
        push_int(out, u64::from(n));
        out.push(b'}');
    }
    if job.timeout_minutes.is_some() {
        key(out, first, "jobExecutionsRetryConfig");
        out.extend_from_slice(
            b"{\"criteriaList\":[{\"failureType\":\"TIMED_OUT\",\"numberOfRetries\":2}]}",
        );
        key(out, first, "abortConfig");
        out.extend_from_slice(b"{\"criteriaList\":[{\"failureType\":\"FAILED\",\"action\":\"CANCEL\",\"thresholdPercentage\":50.0,\"minNumberOfExecutedThings\":100}]}");
    }
    if job.windowed {
        key(out, first, "schedulingConfig");
        out.extend_from_slice(b"{\"maintenanceWindows\":[{\"startTime\":\"cron(0 2 * * ? *)\",\"durationInMinutes\":120}]}");
    }
}

/// `{"message": "..."}`: the body of every AWS error.
pub(crate) fn error_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"message\":");
    push_str(&mut out, message);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_epoch_seconds_with_millis() {
        let mut v = Vec::new();
        push_ts(&mut v, 1_560_787_023_636);
        assert_eq!(v, b"1560787023.636");
        v.clear();
        push_ts(&mut v, 1_560_787_023_005);
        assert_eq!(v, b"1560787023.005");
    }

    #[test]
    fn strings_are_escaped() {
        let mut v = Vec::new();
        push_str(&mut v, "a\"b\\c\n\u{1}");
        assert_eq!(String::from_utf8(v).unwrap(), r#""a\"b\\c\n\u0001""#);
    }
}
