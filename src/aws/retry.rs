//! Retries: *whether* to retry an attempt (by error class) and *when* (backoff with full jitter).
//!
//! The audit engine is the one retry owner; the SDK's retry layer is disabled in `client`. Deciding and
//! scheduling are separate so each can be tested alone and the schedule takes its randomness as input.

use std::time::Duration;

use crate::aws::client::CallError;

/// What an attempt's failure means for the pair and for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient: try again after a backoff. `throttled` marks a ThrottlingException.
    Retry { throttled: bool },
    /// The execution does not exist: a final `not_found` row.
    NotFound,
    /// A final answer about this pair (e.g. InvalidRequestException): an `error` row, no retry.
    Final,
    /// Every call would fail the same way (credentials, permissions): stop the run.
    Fatal,
}

/// Error codes that mean the caller's identity or permissions are wrong for every call.
const FATAL_CODES: [&str; 12] = [
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationTokenException",
    "MissingAuthenticationToken",
];

const THROTTLE_CODES: [&str; 5] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

/// Classifies one failed attempt.
pub fn classify(e: &CallError) -> Class {
    match e {
        CallError::Service {
            code, http_status, ..
        } => {
            if THROTTLE_CODES.contains(&code.as_str()) {
                Class::Retry { throttled: true }
            } else if code == "ResourceNotFoundException" {
                Class::NotFound
            } else if FATAL_CODES.contains(&code.as_str()) {
                Class::Fatal
            } else if *http_status >= 500 {
                Class::Retry { throttled: false }
            } else {
                Class::Final
            }
        }
        CallError::Timeout(_)
        | CallError::TransportTimeout(_)
        | CallError::Connection(_)
        | CallError::Malformed(_) => Class::Retry { throttled: false },
        CallError::Credentials(_) | CallError::Other(_) => Class::Fatal,
    }
}

/// Exponential backoff with full jitter: attempt `n` (1-based, the attempt that just failed) waits a
/// uniformly random time in `[0, min(cap, base * 2^(n-1)))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The upper bound of the wait after failed attempt `n`.
    pub(crate) fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u64 << n.saturating_sub(1).min(30);
        self.base
            .checked_mul(factor as u32)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The wait after failed attempt `n`, given a uniform random `u` in `[0, 1)`.
    pub fn delay(&self, n: u32, u: f64) -> Duration {
        self.ceiling(n).mul_f64(u.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str, status: u16) -> CallError {
        CallError::Service {
            code: code.into(),
            message: String::new(),
            http_status: status,
        }
    }

    #[test]
    fn iot_throttling_is_a_400_and_is_retried() {
        assert_eq!(
            classify(&service("ThrottlingException", 400)),
            Class::Retry { throttled: true }
        );
    }

    #[test]
    fn classes_follow_the_error() {
        assert_eq!(
            classify(&service("ResourceNotFoundException", 404)),
            Class::NotFound
        );
        assert_eq!(
            classify(&service("InvalidRequestException", 400)),
            Class::Final
        );
        assert_eq!(
            classify(&service("ServiceUnavailableException", 503)),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&service("InternalFailureException", 500)),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&service("UnrecognizedClientException", 403)),
            Class::Fatal
        );
        assert_eq!(
            classify(&service("ExpiredTokenException", 403)),
            Class::Fatal
        );
        assert_eq!(
            classify(&service("AccessDeniedException", 403)),
            Class::Fatal
        );
        assert_eq!(
            classify(&CallError::Timeout(Duration::from_secs(1))),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&CallError::TransportTimeout(
                "connect timeout after 5s".into()
            )),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&CallError::Connection("reset".into())),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&CallError::Malformed("eof".into())),
            Class::Retry { throttled: false }
        );
        assert_eq!(
            classify(&CallError::Credentials("none".into())),
            Class::Fatal
        );
    }

    #[test]
    fn backoff_grows_exponentially_to_the_cap_with_full_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(6), Duration::from_secs(2));
        assert_eq!(b.ceiling(60), Duration::from_secs(2));
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(200));
        assert!(b.delay(3, 0.999_999) < Duration::from_millis(400));
    }
}
