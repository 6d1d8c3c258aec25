//! The engine: targets -> bounded concurrent, rate-limited, retried calls -> rows -> the writer.
//!
//! A dispatcher takes a concurrency permit before spawning each pair's task and moves the permit into
//! it, so at most `concurrency` pairs are in flight; each attempt first takes a token from the shared
//! [`CallLimiter`]. A pair's failure is a row, never a stop, except for failures that would repeat for
//! every pair (credentials, permissions): those stop the dispatcher and are returned as [`Stop::Fatal`].
//! Rows go to the writer through a bounded channel, which is also the back-pressure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::client::{CallError, FleetClient};
use crate::input::{InputError, Target};
use crate::limit::CallLimiter;
use crate::retry::{classify, Backoff, Class};
use crate::schema::{Outcome, Row, Source};
use crate::sink::SinkMsg;

/// How pairs are called.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Pairs in flight at once.
    pub concurrency: usize,
    /// Attempts per pair, the first included.
    pub max_attempts: u32,
    /// Upper bound of one attempt.
    pub call_timeout: Duration,
    pub backoff: Backoff,
}

/// One pair to describe: its input ordinal, the pair, and what a list summary already said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub ordinal: u64,
    pub target: Target,
    /// `retryAttempt` from the list summary that found the pair (discovery), carried to the row.
    pub retry_attempt: Option<i32>,
}

/// Live counters, shared with the progress display.
#[derive(Debug, Default)]
pub struct Counters {
    pub done: AtomicU64,
    pub ok: AtomicU64,
    pub not_found: AtomicU64,
    pub errors: AtomicU64,
    pub attempts: AtomicU64,
    pub throttled: AtomicU64,
    /// List and DescribeJob attempts (discovery).
    pub list_attempts: AtomicU64,
    /// Whether any attempt has had an HTTP answer (success or a service error).
    pub answered: AtomicBool,
    /// Pairs that ended on transport errors before any answer was ever had.
    pub unanswered_failures: AtomicU64,
}

/// Pairs that may exhaust their attempts on transport errors, with no answer ever had, before the run
/// stops as unreachable instead of writing an error row for every pair.
const UNREACHABLE_AFTER: u64 = 3;

impl Counters {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

/// Why the engine stopped before every pair had a row.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// Every further call would fail the same way.
    #[error("stopped: {error} (every call would fail the same way)")]
    Fatal { error: CallError },
    /// No attempt ever got an answer: the endpoint cannot be reached.
    #[error("stopped: the endpoint cannot be reached ({error})")]
    Unreachable { error: CallError },
    /// Shutdown was requested (a signal).
    #[error("interrupted")]
    Interrupted,
    /// The input could not be read to the end.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A listing failed after its retries (discovery): the executions it would list are unknown.
    #[error("stopped: {what} failed: {error}")]
    ListFailed { what: String, error: CallError },
    /// The writer stopped taking rows.
    #[error("the output writer stopped")]
    WriterGone,
}

/// Wall-clock epoch milliseconds (the `fetched_at` column).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The run-level stop an error returned by [`describe_pair`] means.
pub fn stop_for(error: CallError) -> Stop {
    match error {
        CallError::Connection(_) | CallError::Timeout(_) => Stop::Unreachable { error },
        error => Stop::Fatal { error },
    }
}

/// How a call ended after its retries.
#[derive(Debug)]
pub enum Final<T> {
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
pub struct Attempted<T> {
    pub result: Final<T>,
    pub attempts: u32,
}

/// Makes `call` until a final answer, the attempt budget, a fatal error or a shutdown. Every attempt
/// first takes a token from `limiter` and is counted in `attempts`; throttles lower the limiter's pace.
pub async fn call_with_retries<T, F, Fut>(
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
        limiter.acquire().await;
        attempts.fetch_add(1, Ordering::Relaxed);
        let result = match tokio::time::timeout(settings.call_timeout, call()).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout(settings.call_timeout)),
        };
        if matches!(result, Ok(_) | Err(CallError::Service { .. })) {
            counters.answered.store(true, Ordering::Relaxed);
        }
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
                    let unreachable =
                        matches!(err, CallError::Connection(_) | CallError::Timeout(_))
                            && !counters.answered.load(Ordering::Relaxed)
                            && counters.unanswered_failures.fetch_add(1, Ordering::Relaxed) + 1
                                >= UNREACHABLE_AFTER;
                    return end(if unreachable {
                        Final::Fatal(err)
                    } else {
                        Final::Failed(err)
                    });
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

/// Calls DescribeJobExecution for one pair until a final answer, the attempt budget, a fatal error or a
/// shutdown. `Ok(None)` means shutdown came first and the pair has no row; `Err` is a run-level error.
pub async fn describe_pair<C: FleetClient>(
    client: &C,
    limiter: &CallLimiter,
    settings: &EngineSettings,
    counters: &Counters,
    target: Target,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Row>, CallError> {
    let a = call_with_retries(
        limiter,
        settings,
        counters,
        &counters.attempts,
        shutdown,
        || {
            client.describe_job_execution(
                &target.thing_name,
                &target.job_id,
                target.execution_number,
            )
        },
    )
    .await;
    let (outcome, error, execution) = match a.result {
        Final::Ok(rec) => (Outcome::Ok, None, Some(rec)),
        Final::NotFound(e) => (Outcome::NotFound, Some(e), None),
        Final::Failed(e) => (Outcome::Error, Some(e), None),
        Final::Fatal(e) => return Err(e),
        Final::Interrupted => return Ok(None),
    };
    Ok(Some(Row {
        thing_name: target.thing_name,
        job_id: target.job_id,
        requested_execution_number: target.execution_number,
        outcome,
        error,
        attempts: a.attempts as i32,
        fetched_at_ms: now_ms(),
        execution,
        source: Source::Describe,
        retry_attempt: None,
    }))
}

/// Runs every target (with its input ordinal) through [`describe_pair`] and sends each row to `rows`. Returns when all targets
/// have rows, or with the reason it stopped early (after the pairs already in flight have finished).
pub async fn run_engine<C, I>(
    client: Arc<C>,
    limiter: Arc<CallLimiter>,
    settings: EngineSettings,
    counters: Arc<Counters>,
    targets: I,
    rows: mpsc::Sender<SinkMsg>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Stop>
where
    C: FleetClient,
    I: futures::Stream<Item = Result<Work, InputError>>,
{
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let fatal: Arc<Mutex<Option<CallError>>> = Arc::new(Mutex::new(None));
    // Pairs that ended without a row: abandoned on shutdown, or refused by a stopped writer.
    let abandoned = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let mut stop: Option<Stop> = None;
    let mut sd = shutdown.clone();
    let targets = std::pin::pin!(targets);
    let mut targets = targets;
    while let Some(work) = futures::StreamExt::next(&mut targets).await {
        let Work {
            ordinal,
            target,
            retry_attempt,
        } = match work {
            Ok(w) => w,
            Err(e) => {
                stop = Some(Stop::Input(e));
                break;
            }
        };
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            _ = sd.wait_for(|s| *s) => {
                stop = Some(Stop::Interrupted);
                break;
            }
        };
        if let Some(error) = fatal.lock().expect("fatal lock").clone() {
            stop = Some(stop_for(error));
            break;
        }
        if rows.is_closed() {
            stop = Some(Stop::WriterGone);
            break;
        }
        let (client, limiter, settings, counters, rows, fatal, shutdown) = (
            client.clone(),
            limiter.clone(),
            settings.clone(),
            counters.clone(),
            rows.clone(),
            fatal.clone(),
            shutdown.clone(),
        );
        let (abandoned, lost) = (abandoned.clone(), lost.clone());
        tasks.spawn(async move {
            let _permit = permit;
            match describe_pair(&*client, &limiter, &settings, &counters, target, &shutdown).await {
                Ok(Some(mut row)) => {
                    row.retry_attempt = retry_attempt;
                    let c = match row.outcome {
                        Outcome::Ok => &counters.ok,
                        Outcome::NotFound => &counters.not_found,
                        Outcome::Error => &counters.errors,
                    };
                    let msg = SinkMsg::Row {
                        row: Box::new(row),
                        ordinal,
                    };
                    if rows.send(msg).await.is_ok() {
                        c.fetch_add(1, Ordering::Relaxed);
                        counters.done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {
                    abandoned.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    fatal.lock().expect("fatal lock").get_or_insert(e);
                }
            }
        });
        // Reap finished tasks so the set stays as small as the concurrency.
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    if stop.is_none() {
        if let Some(error) = fatal.lock().expect("fatal lock").take() {
            stop = Some(stop_for(error));
        } else if lost.load(Ordering::Relaxed) > 0 {
            stop = Some(Stop::WriterGone);
        } else if abandoned.load(Ordering::Relaxed) > 0 {
            stop = Some(Stop::Interrupted);
        }
    }
    match stop {
        Some(s) => Err(s),
        None => Ok(()),
    }
}
