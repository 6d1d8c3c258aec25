//! The engine: targets -> bounded concurrent, rate-limited, retried calls -> rows -> the writer.
//!
//! `concurrency` long-lived workers take pairs from the shared input stream, so at most that many pairs
//! are in flight and no task is spawned per pair; each attempt first takes a token from the target's
//! [`CallLimiter`]. A pair's failure is a row, never a stop, except for failures that would repeat for
//! every pair (credentials, permissions): those stop the dispatcher and are returned as [`Stop::Fatal`].
//! Rows go to the writer through a bounded channel, which is also the back-pressure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{CallError, FleetClient};
use crate::input::{InputError, Target};
use crate::limit::CallLimiter;
use crate::retry::{classify, Backoff, Class};
use crate::schema::{Origin, Outcome, Row, Source};
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
    /// The writer failed (an error or a panic) after committing what it had committed.
    #[error("the output writer failed: {error}")]
    WriterFailed { error: String },
    /// One target of several stopped (the others ran on).
    #[error("target {target}: {stop}")]
    InTarget { target: String, stop: Box<Stop> },
}

impl Stop {
    /// Whether an input file changed while it was read (here or in one target of several): what was
    /// read since it was validated must not be committed.
    pub fn input_changed(&self) -> bool {
        match self {
            Stop::Input(InputError::Changed { .. }) => true,
            Stop::InTarget { stop, .. } => stop.input_changed(),
            _ => false,
        }
    }

    /// Whether the stop is the input's fault (bad or changed input), not the run's.
    pub fn is_input(&self) -> bool {
        match self {
            Stop::Input(_) => true,
            Stop::InTarget { stop, .. } => stop.is_input(),
            _ => false,
        }
    }
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
        CallError::Connection(_) | CallError::Timeout(_) | CallError::TransportTimeout(_) => {
            Stop::Unreachable { error }
        }
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
                    let unreachable = matches!(
                        err,
                        CallError::Connection(_)
                            | CallError::Timeout(_)
                            | CallError::TransportTimeout(_)
                    ) && !counters.answered.load(Ordering::Relaxed)
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
        origin: None,
    }))
}

/// One target's calls: its client, its rate limiter, what its rows carry, and its own counters.
pub struct Lane<C> {
    pub client: Arc<C>,
    pub limiter: Arc<CallLimiter>,
    /// Region and account of the rows (`None`: the writer's region, no account).
    pub origin: Option<Arc<Origin>>,
    pub counters: Arc<Counters>,
}

impl<C> Clone for Lane<C> {
    fn clone(&self) -> Self {
        Lane {
            client: self.client.clone(),
            limiter: self.limiter.clone(),
            origin: self.origin.clone(),
            counters: self.counters.clone(),
        }
    }
}

/// What the workers of one engine share.
struct Shared<I> {
    /// The input, one pair per lock. `futures`' lock, not tokio's: tokio's is fair and hands the lock
    /// to the next waiting task on release, so every pair waited for that task to be scheduled and
    /// the workers convoyed behind it (runtime threads idle in `epoll_wait` 20 times as often as the
    /// bare SDK loop's, with pairs waiting); this one is free again at once for whichever worker
    /// comes first, and only wakes a waiter.
    work: futures::lock::Mutex<std::pin::Pin<Box<I>>>,
    /// The first reason to stop; once set, no worker takes more work.
    stop: Mutex<Option<Stop>>,
    stopping: AtomicBool,
    /// Pairs that ended without a row: abandoned on shutdown, or refused by a stopped writer.
    abandoned: AtomicU64,
    lost: AtomicU64,
}

impl<I> Shared<I> {
    fn set_stop(&self, stop: Stop) {
        self.stop.lock().expect("stop lock").get_or_insert(stop);
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Runs every pair of `targets` (with its input ordinal) through [`describe_pair`] on `lane` and sends
/// each row to `rows`. `settings.concurrency` long-lived workers each take the next pair, call, and
/// send the row, so no task is spawned per pair. Returns when all targets have rows, or with the
/// reason it stopped early (after the pairs already in flight have finished).
pub async fn run_engine<C, I>(
    lane: Lane<C>,
    settings: EngineSettings,
    targets: I,
    rows: mpsc::Sender<SinkMsg>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Stop>
where
    C: FleetClient,
    I: futures::Stream<Item = Result<Work, InputError>> + Send + 'static,
{
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared {
        work: futures::lock::Mutex::new(Box::pin(targets)),
        stop: Mutex::new(None),
        stopping: AtomicBool::new(false),
        abandoned: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    });
    let mut workers = JoinSet::new();
    for _ in 0..settings.concurrency.max(1) {
        let (lane, settings, shared, rows, shutdown) = (
            lane.clone(),
            settings.clone(),
            shared.clone(),
            rows.clone(),
            shutdown.clone(),
        );
        workers.spawn(worker(lane, settings, shared, rows, shutdown));
    }
    while let Some(r) = workers.join_next().await {
        if let Err(e) = r {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    let stop = shared.stop.lock().expect("stop lock").take();
    match stop {
        Some(s) => Err(s),
        None if shared.lost.load(Ordering::Relaxed) > 0 => Err(Stop::WriterGone),
        None if shared.abandoned.load(Ordering::Relaxed) > 0 => Err(Stop::Interrupted),
        None => Ok(()),
    }
}

/// One worker: takes the next pair until the work runs out or the engine stops.
async fn worker<C, I>(
    lane: Lane<C>,
    settings: Arc<EngineSettings>,
    shared: Arc<Shared<I>>,
    rows: mpsc::Sender<SinkMsg>,
    shutdown: watch::Receiver<bool>,
) where
    C: FleetClient,
    I: futures::Stream<Item = Result<Work, InputError>>,
{
    let counters = &*lane.counters;
    loop {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if *shutdown.borrow() {
            shared.set_stop(Stop::Interrupted);
            return;
        }
        if rows.is_closed() {
            shared.set_stop(Stop::WriterGone);
            return;
        }
        let next = {
            let mut work = shared.work.lock().await;
            if shared.stopping.load(Ordering::Relaxed) {
                return;
            }
            futures::StreamExt::next(&mut *work).await
        };
        let Work {
            ordinal,
            target,
            retry_attempt,
        } = match next {
            None => return,
            Some(Ok(w)) => w,
            Some(Err(e)) => {
                shared.set_stop(Stop::Input(e));
                return;
            }
        };
        let described = describe_pair(
            &*lane.client,
            &lane.limiter,
            &settings,
            counters,
            target,
            &shutdown,
        )
        .await;
        match described {
            Ok(Some(mut row)) => {
                row.retry_attempt = retry_attempt;
                row.origin = lane.origin.clone();
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
                    shared.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => {
                shared.abandoned.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => shared.set_stop(stop_for(e)),
        }
    }
}
