//! AWS IoT's own naming rules for things and jobs, and its status enumerations, shared by the input
//! reader, the simulator and the report.
//!
//! Every name that reaches a request path is checked here first, so no input can make the tool call a
//! path AWS would reject or escape into another resource.

/// AWS IoT's JobExecutionStatus values, in lifecycle order.
pub(crate) const JOB_EXECUTION_STATUSES: [&str; 8] = [
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "REJECTED",
    "REMOVED",
    "CANCELED",
];

/// Whether an execution in `status` is terminal: AWS neither cancels it nor needs `force` to delete
/// it: the six AWS names besides QUEUED and IN_PROGRESS (a status it adds later is not terminal).
pub(crate) fn is_terminal_status(status: &str) -> bool {
    JOB_EXECUTION_STATUSES[2..].contains(&status)
}

/// AWS IoT's JobStatus values (ListJobs' `status` filter).
pub(crate) const JOB_STATUSES: [&str; 5] = [
    "IN_PROGRESS",
    "CANCELED",
    "COMPLETED",
    "DELETION_IN_PROGRESS",
    "SCHEDULED",
];

/// The rule a thing name must satisfy, as AWS states it.
pub(crate) const THING_NAME_RULE: &str = "thingName must match [a-zA-Z0-9:_-]{1,128}";
/// The rule a job id must satisfy, as AWS states it.
pub(crate) const JOB_ID_RULE: &str = "jobId must match [a-zA-Z0-9_-]{1,64}";

/// Whether `name` is a valid thingName: 1 to 128 of `[a-zA-Z0-9:_-]`.
pub(crate) fn is_valid_thing_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// Whether `id` is a valid jobId: 1 to 64 of `[a-zA-Z0-9_-]`.
pub(crate) fn is_valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names_follow_aws_rules() {
        assert!(is_valid_thing_name("MyRaspberryPi"));
        assert!(is_valid_thing_name("a:b_c-d9"));
        assert!(is_valid_thing_name(&"x".repeat(128)));
        assert!(!is_valid_thing_name(&"x".repeat(129)));
        assert!(!is_valid_thing_name(""));
        assert!(!is_valid_thing_name("has space"));
        assert!(!is_valid_thing_name("../etc"));
        assert!(!is_valid_thing_name("caf\u{e9}"));
    }

    #[test]
    fn job_ids_follow_aws_rules() {
        assert!(is_valid_job_id("example-job-01"));
        assert!(is_valid_job_id(&"j".repeat(64)));
        assert!(!is_valid_job_id(&"j".repeat(65)));
        assert!(!is_valid_job_id("a:b"));
        assert!(!is_valid_job_id(""));
    }
}
