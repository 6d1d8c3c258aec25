//! One call until its final answer: every attempt takes a limiter token, is timed out, classified
//! ([`crate::aws::retry`] decides whether to retry, its backoff when), counted, and retried or ended. This is
//! the one retry owner of the product: the SDK's retries are off, and no other layer retries a call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::aws::client::CallError;
use crate::aws::limit::CallLimiter;
use crate::aws::retry::{classify, Backoff, Class};

/// How calls are made: the engine's pairs in flight, and every call's attempts, timeout and backoff.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Pairs in flight at once.
    pub concurrency: usize,
    /// Attempts per pair, the first included.
    pub max_attempts: u32,
    /// Upper bound of one attempt.
    pub call_timeout: Duration,
    /// The wait before each retry.
    pub backoff: Backoff,
}

/// Live counters, shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub done: AtomicU64,
    pub ok: AtomicU64,
    pub not_found: AtomicU64,
    pub errors: AtomicU64,
    pub attempts: AtomicU64,
    pub throttled: AtomicU64,
    /// List and DescribeJob attempts (discovery).
    pub list_attempts: AtomicU64,
    /// The context stage's attempts (DescribeJob, SearchIndex, ListJobExecutionsForThing).
    pub context_attempts: AtomicU64,
    /// Rows carried from the baseline (`--baseline`), and of those, the executions that would
    /// have been described without it.
    pub carried: AtomicU64,
    pub describes_saved: AtomicU64,
    /// Whether any attempt has had an HTTP answer (success or a service error).
    pub answered: AtomicBool,
    /// Pairs that ended on transport errors before any answer was ever had.
    pub unanswered_failures: AtomicU64,
    /// Attempts that had no answer at all (connection refused or dropped, a timeout).
    pub unanswered: AtomicU64,
}

/// Pairs that may exhaust their attempts on transport errors, with no answer ever had, before the run
/// stops as unreachable instead of writing an error row for every pair.
const UNREACHABLE_AFTER: u64 = 3;

impl Counters {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    /// Attempts (describes and lists) that the service answered, throttles aside: a throttled
    /// attempt, or one that had no answer, would make a run that could not call look fast.
    pub(crate) fn answered_calls(&self) -> u64 {
        (Self::get(&self.attempts)
            + Self::get(&self.list_attempts)
            + Self::get(&self.context_attempts))
        .saturating_sub(Self::get(&self.throttled) + Self::get(&self.unanswered))
    }
}

/// How a call ended after its retries.
#[derive(Debug)]
pub(crate) enum Final<T> {
    Ok(T),
    /// ResourceNotFoundException.
    NotFound(CallError),
    /// A final error about this call, or the last error once the attempts ran out.
    Failed(CallError),
    /// Every further call would fail the same way (credentials, permissions, no endpoint).
    Fatal(CallError),
    /// Shutdown came first.
    Interrupted,
}

/// A call's end and the attempts it took.
#[derive(Debug)]
pub(crate) struct Attempted<T> {
    pub result: Final<T>,
    pub attempts: u32,
}

/// Makes `call` until a final answer, the attempt budget, a fatal error or a shutdown. Every attempt
/// first takes a token from `limiter` and is counted in `attempts`; throttles lower the limiter's pace.
pub(crate) async fn call_with_retries<T, F, Fut>(
    limiter: &CallLimiter,
    settings: &EngineSettings,
    counters: &Counters,
    attempts: &AtomicU64,
    shutdown: &watch::Receiver<bool>,
    mut call: F,
) -> Attempted<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut attempt: u32 = 0;
    loop {
        if *shutdown.borrow() {
            return Attempted {
                result: Final::Interrupted,
                attempts: attempt,
            };
        }
        attempt += 1;
        // A shutdown while waiting for a slot (a low --rps) ends the call before it is made.
        if !limiter.acquire(shutdown).await {
            return Attempted {
                result: Final::Interrupted,
                attempts: attempt - 1,
            };
        }
        attempts.fetch_add(1, Ordering::Relaxed);
        let result = attempt_once(settings, counters, call()).await;
        let end = |result| Attempted {
            result,
            attempts: attempt,
        };
        let err = match result {
            Ok(v) => {
                limiter.on_success();
                return end(Final::Ok(v));
            }
            Err(e) => e,
        };
        match classify(&err) {
            Class::NotFound => {
                limiter.on_success();
                return end(Final::NotFound(err));
            }
            Class::Final => return end(Final::Failed(err)),
            Class::Fatal => return end(Final::Fatal(err)),
            Class::Retry { throttled } => {
                if throttled {
                    counters.throttled.fetch_add(1, Ordering::Relaxed);
                    limiter.on_throttle();
                }
                tracing::debug!(attempt, error = %err, "attempt failed");
                if attempt >= settings.max_attempts {
                    return end(out_of_attempts(err, counters));
                }
                let wait = settings.backoff.delay(attempt, rand::random::<f64>());
                let mut sd = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = sd.wait_for(|s| *s) => return end(Final::Interrupted),
                }
            }
        }
    }
}

/// One attempt, bounded by `--call-timeout`; an answer (a value or a service error) marks the
/// target as one that answers.
async fn attempt_once<T>(
    settings: &EngineSettings,
    counters: &Counters,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let result = match tokio::time::timeout(settings.call_timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout(settings.call_timeout)),
    };
    match &result {
        Ok(_) | Err(CallError::Service { .. }) => counters.answered.store(true, Ordering::Relaxed),
        Err(CallError::Connection(_) | CallError::Timeout(_) | CallError::TransportTimeout(_)) => {
            counters.unanswered.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {}
    }
    result
}

/// The end of a call whose attempts ran out on `err`: fatal when `err` is a transport error, no
/// attempt was ever answered and this is the [`UNREACHABLE_AFTER`]th pair to end so (the target
/// cannot be reached); failed otherwise.
fn out_of_attempts<T>(err: CallError, counters: &Counters) -> Final<T> {
    let unreachable = matches!(
        err,
        CallError::Connection(_) | CallError::Timeout(_) | CallError::TransportTimeout(_)
    ) && !counters.answered.load(Ordering::Relaxed)
        && counters.unanswered_failures.fetch_add(1, Ordering::Relaxed) + 1 >= UNREACHABLE_AFTER;
    if unreachable {
        Final::Fatal(err)
    } else {
        Final::Failed(err)
    }
}
