//! The engine: pairs -> bounded concurrent, rate-limited, retried calls -> rows -> the writer.
//!
//! `concurrency` long-lived workers take pairs from the shared input stream, so at most that many pairs
//! are in flight and no task is spawned per pair; each pair goes through [`crate::audit::engine::describe_pair`]
//! (whose every attempt first takes a token from the target's [`CallLimiter`]). A pair's failure is a
//! row, never a stop, except for failures that would repeat for every pair (credentials, permissions):
//! those stop the workers and are returned as [`Stop::Fatal`]. Rows go to the writer through a bounded
//! channel, which is also the back-pressure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::aws::call::EngineSettings;
use crate::aws::call::{call_with_retries, Counters, Final};
use crate::aws::client::{CallError, FleetClient};
use crate::aws::limit::CallLimiter;
use crate::dataset::schema::{Origin, Outcome, Row, Source};
use crate::dataset::WriterMsg;
use crate::input::pair::Pair;
use crate::input::InputError;
use crate::time::now_ms;

/// One pair to describe: its input ordinal, the pair, and what a list summary already said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Work {
    pub ordinal: u64,
    pub pair: Pair,
    /// `retryAttempt` from the list summary that found the pair (discovery), carried to the row.
    pub retry_attempt: Option<i32>,
}

/// Why the engine stopped before every pair had a row.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// Every further call would fail the same way.
    #[error("stopped: {error} (every call would fail the same way{})", error.next_step())]
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
    /// The engine stopped taking work (discovery's listing has nobody to hand executions to).
    #[error("the describe engine stopped")]
    EngineGone,
    /// The writer failed (an error or a panic) after committing what it had committed.
    #[error("the output writer failed: {error}")]
    WriterFailed { error: String },
    /// Another run took the output over (its lock, or a manifest written by another writer): this
    /// run stopped writing, and the output is the other run's.
    #[error("the output writer stopped: {error}")]
    OutputTakenOver { error: String },
    /// One target of several stopped (the others ran on).
    #[error("target {target}: {stop}")]
    InTarget { target: String, stop: Box<Stop> },
    /// Some targets of an organization-wide audit could not be connected (role missing, credentials
    /// refused); every other target's rows are committed.
    #[error("{failed} of {of} targets could not be audited")]
    TargetsFailed { failed: usize, of: usize },
}

impl Stop {
    /// Whether an input file changed while it was read (here or in one target of several): what was
    /// read since it was validated must not be committed.
    pub(crate) fn input_changed(&self) -> bool {
        match self {
            Stop::Input(InputError::Changed { .. }) => true,
            Stop::InTarget { stop, .. } => stop.input_changed(),
            _ => false,
        }
    }
}

/// Calls DescribeJobExecution for one pair until a final answer, the attempt budget, a fatal error or a
/// shutdown. `Ok(None)` means shutdown came first and the pair has no row; `Err` is a run-level error.
pub(crate) async fn describe_pair<C: FleetClient>(
    client: &C,
    limiter: &CallLimiter,
    settings: &EngineSettings,
    counters: &Counters,
    pair: Pair,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<Row>, CallError> {
    let a = call_with_retries(
        limiter,
        settings,
        counters,
        &counters.attempts,
        shutdown,
        || client.describe_job_execution(&pair.thing_name, &pair.job_id, pair.execution_number),
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
        thing_name: pair.thing_name,
        job_id: pair.job_id,
        requested_execution_number: pair.execution_number,
        outcome,
        error,
        attempts: a.attempts as i32,
        fetched_at_ms: now_ms(),
        execution,
        source: Source::Describe,
        retry_attempt: None,
        origin: None,
        carried_from: None,
        context: Default::default(),
    }))
}

/// The run-level stop an error returned by [`describe_pair`] means.
pub(crate) fn stop_for(error: CallError) -> Stop {
    match error {
        CallError::Connection(_) | CallError::Timeout(_) | CallError::TransportTimeout(_) => {
            Stop::Unreachable { error }
        }
        error => Stop::Fatal { error },
    }
}

/// One target's calls: its client, its rate limiter, what its rows carry, and its own counters.
pub(crate) struct TargetCalls<C> {
    pub client: Arc<C>,
    pub limiter: Arc<CallLimiter>,
    /// Region and account of the rows (`None`: the writer's region, no account).
    pub origin: Option<Arc<Origin>>,
    pub counters: Arc<Counters>,
}

impl<C> Clone for TargetCalls<C> {
    fn clone(&self) -> Self {
        TargetCalls {
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

/// Runs every pair of `work` (with its input ordinal) through [`describe_pair`] on `lane` and sends
/// each row to `rows`. `settings.concurrency` long-lived workers each take the next pair, call, and
/// send the row, so no task is spawned per pair. Returns when every pair has its row, or with the
/// reason it stopped early (after the pairs already in flight have finished).
pub(crate) async fn run_engine<C, I>(
    lane: TargetCalls<C>,
    settings: EngineSettings,
    work: I,
    rows: mpsc::Sender<WriterMsg>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Stop>
where
    C: FleetClient,
    I: futures::Stream<Item = Result<Work, InputError>> + Send + 'static,
{
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared {
        work: futures::lock::Mutex::new(Box::pin(work)),
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
    lane: TargetCalls<C>,
    settings: Arc<EngineSettings>,
    shared: Arc<Shared<I>>,
    rows: mpsc::Sender<WriterMsg>,
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
            pair,
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
            pair,
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
                let msg = WriterMsg::Row {
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

/// How one target's turn ended.
pub(crate) enum TargetEnd {
    /// Its engine ran (or had nothing left to do).
    Ran(Result<(), Stop>),
    /// It could not be audited (not connected, or stopped by its own fault); the reason is in its
    /// view.
    Failed,
}

impl TargetEnd {
    /// How a turn whose engine (or listing) ended with `result` ends. In an organization-wide run
    /// (`lenient`), a stop that is the target's own (IoT refusing its credentials, its endpoint
    /// unreachable, a listing failing after its retries) fails that target alone, named in
    /// `failed`: its committed rows stay, the other targets go on, and `--resume` retries it.
    pub fn of(
        result: Result<(), Stop>,
        lenient: bool,
        failed: &std::sync::OnceLock<String>,
    ) -> TargetEnd {
        match result {
            Err(
                stop @ (Stop::Fatal { .. } | Stop::Unreachable { .. } | Stop::ListFailed { .. }),
            ) if lenient => {
                let _ = failed.set(stop.to_string());
                TargetEnd::Failed
            }
            r => TargetEnd::Ran(r),
        }
    }
}

/// One result of several targets' engines: success when all succeeded; else an interrupt if there was
/// one, else the first other stop, named by its target when there are several.
pub(crate) fn combine_stops(results: Vec<Result<(), Stop>>, labels: &[String]) -> Result<(), Stop> {
    let several = results.len() > 1;
    let mut first: Option<Stop> = None;
    for (r, label) in results.into_iter().zip(labels) {
        let Err(stop) = r else { continue };
        let stop = match stop {
            Stop::Interrupted => Stop::Interrupted,
            s if several => Stop::InTarget {
                target: label.clone(),
                stop: Box::new(s),
            },
            s => s,
        };
        match (&first, &stop) {
            (None, _) | (Some(Stop::InTarget { .. }), Stop::Interrupted) => first = Some(stop),
            _ => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// The result of every target's turn (`ends` in any order): [`combine_stops`] of those that ran;
/// when they all succeeded but some targets could not be audited, [`Stop::TargetsFailed`].
pub(crate) fn end_of_turns(
    mut ends: Vec<(usize, TargetEnd)>,
    labels: &[String],
) -> Result<(), Stop> {
    ends.sort_by_key(|(i, _)| *i);
    let failed = ends
        .iter()
        .filter(|(_, e)| matches!(e, TargetEnd::Failed))
        .count();
    let results: Vec<Result<(), Stop>> = ends
        .into_iter()
        .map(|(_, e)| match e {
            TargetEnd::Ran(r) => r,
            TargetEnd::Failed => Ok(()),
        })
        .collect();
    match combine_stops(results, labels) {
        Ok(()) if failed > 0 => Err(Stop::TargetsFailed {
            failed,
            of: labels.len(),
        }),
        r => r,
    }
}

/// The engine on the in-memory fleet, under paused time: retries and backoff, throttle adaptation,
/// and shutdowns during long waits, without a wire or a real clock.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::aws::client::fake::FakeFleet;
    use crate::aws::client::faulty::{Fault, Faulty};
    use crate::aws::retry::Backoff;
    use crate::dataset::schema::Row;

    fn settings(max_attempts: u32, base: Duration, cap: Duration) -> EngineSettings {
        EngineSettings {
            concurrency: 4,
            max_attempts,
            call_timeout: Duration::from_secs(10),
            backoff: Backoff { base, cap },
        }
    }

    fn work(n: u64) -> impl futures::Stream<Item = Result<Work, InputError>> + Send + 'static {
        futures::stream::iter((0..n).map(|i| {
            Ok(Work {
                ordinal: i,
                pair: Pair {
                    thing_name: format!("t{i}"),
                    job_id: "j".into(),
                    execution_number: None,
                },
                retry_attempt: None,
            })
        }))
    }

    fn lane<C>(client: C, limiter: CallLimiter) -> TargetCalls<C> {
        TargetCalls {
            client: Arc::new(client),
            limiter: Arc::new(limiter),
            origin: None,
            counters: Default::default(),
        }
    }

    fn fleet(n: u64) -> FakeFleet {
        (0..n).fold(FakeFleet::new(), |f, i| {
            f.with(&format!("t{i}"), "j", "QUEUED")
        })
    }

    /// Runs the engine to its end; its result and the rows it sent.
    async fn run<C: FleetClient>(
        lane: TargetCalls<C>,
        settings: EngineSettings,
        n: u64,
        shutdown: watch::Receiver<bool>,
    ) -> (Result<(), Stop>, Vec<Row>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let engine = tokio::spawn(run_engine(lane, settings, work(n), tx, shutdown));
        let mut rows = Vec::new();
        while let Some(msg) = rx.recv().await {
            if let WriterMsg::Row { row, .. } = msg {
                rows.push(*row);
            }
        }
        (engine.await.unwrap(), rows)
    }

    fn running() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    #[tokio::test(start_paused = true)]
    async fn failed_attempts_are_retried_with_backoff_until_the_budget() {
        let base = Duration::from_secs(1);
        let client = Faulty::new(fleet(8)).failing(Fault::ServerError, 2);
        let l = lane(client, CallLimiter::new(None, 1, true));
        let t = Instant::now();
        let mut s = settings(5, base, Duration::from_secs(8));
        s.concurrency = 8;
        let (r, rows) = run(l.clone(), s, 8, running()).await;
        r.unwrap();
        assert_eq!(rows.len(), 8);
        assert!(rows
            .iter()
            .all(|r| r.outcome == Outcome::Ok && r.attempts == 3));
        // Two backoffs of at most 1 s and 2 s (full jitter) each, all pairs at once, on the paused
        // clock; eight pairs all drawing under half a second is a 1-in-4e9 chance.
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_secs(3),
            "{waited:?}"
        );
        assert_eq!(
            l.client.inner().calls(),
            8,
            "each pair reached the fleet once"
        );
        assert_eq!(Counters::get(&l.counters.attempts), 24);

        // With a budget of two attempts, every pair ends as an error row after two.
        let client = Faulty::new(fleet(3)).failing(Fault::ServerError, 2);
        let l = lane(client, CallLimiter::new(None, 1, true));
        let (r, rows) = run(l, settings(2, base, base), 3, running()).await;
        r.unwrap();
        assert!(rows
            .iter()
            .all(|r| r.outcome == Outcome::Error && r.attempts == 2));
        assert_eq!(
            rows[0].error.as_ref().map(|e| e.code().to_string()),
            Some("InternalFailureException".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_the_rate_and_every_attempt_takes_a_token() {
        // Adaptive (the default) and `--no-adaptive`, under the same throttles.
        for adaptive in [true, false] {
            let client = Faulty::new(fleet(20)).failing(Fault::Throttle, 1);
            let l = lane(client, CallLimiter::new(Some(100.0), 1, adaptive));
            let (r, rows) = run(
                l.clone(),
                settings(5, Duration::from_millis(10), Duration::from_millis(10)),
                20,
                running(),
            )
            .await;
            r.unwrap();
            assert_eq!(rows.len(), 20);
            assert_eq!(Counters::get(&l.counters.throttled), 20);
            let rate = l.limiter.current_rate().unwrap();
            if adaptive {
                assert!(rate <= 51.0, "the first throttle halves 100/s: {rate}");
            } else {
                assert_eq!(rate, 100.0, "not adaptive: the pace stays at 100/s");
            }
        }
    }

    /// Issue 22, item 11: with no cap (`--rps 0`) against a quota far below what the workers can
    /// send, the first throttle starts an adaptive pace from the rate of answered calls, which then
    /// settles under the quota: every pair gets its answer (no throttled error row), and throttled
    /// attempts are a small share of the answered ones.
    #[tokio::test(start_paused = true)]
    async fn without_a_cap_the_pace_adapts_to_the_quota() {
        let client = Faulty::new(fleet(2_000))
            .slow(Duration::from_millis(1))
            .quota(100.0, 100);
        let l = lane(client, CallLimiter::new(None, 1, true));
        let mut s = settings(5, Duration::from_millis(100), Duration::from_secs(20));
        s.concurrency = 16;
        let (r, rows) = run(l.clone(), s, 2_000, running()).await;
        r.unwrap();
        assert_eq!(rows.len(), 2_000);
        let errors = rows.iter().filter(|r| r.outcome == Outcome::Error).count();
        let throttled = Counters::get(&l.counters.throttled);
        let answered = Counters::get(&l.counters.attempts) - throttled;
        assert_eq!(
            (errors, answered),
            (0, 2_000),
            "{throttled} attempts throttled"
        );
        assert!(
            throttled * 10 < answered,
            "{throttled} throttled against {answered} answered"
        );
        let pace = l
            .limiter
            .current_rate()
            .expect("a pace since the first throttle");
        assert!(pace < 150.0, "the pace settled near the quota: {pace}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_a_long_backoff_and_a_slow_limiter_at_once() {
        // Every first attempt fails and backs off for up to an hour.
        let client = Faulty::new(fleet(4)).failing(Fault::ServerError, 1);
        let l = lane(client, CallLimiter::new(None, 1, true));
        let hour = Duration::from_secs(3600);
        let (tx, rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(true).unwrap();
        });
        let t = Instant::now();
        let (r, rows) = run(l, settings(5, hour, hour), 4, rx).await;
        stopper.await.unwrap();
        assert!(matches!(r, Err(Stop::Interrupted)), "{r:?}");
        assert!(rows.is_empty());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

        // At 1 call per 100 s the second pair waits for its slot: a stop ends the wait, and the
        // call it waited for is never made.
        let l = lane(fleet(3), CallLimiter::new(Some(0.01), 1, false));
        let (tx, rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            tx.send(true).unwrap();
        });
        let t = Instant::now();
        let mut s = settings(5, hour, hour);
        s.concurrency = 1;
        let (r, rows) = run(l.clone(), s, 3, rx).await;
        stopper.await.unwrap();
        assert!(matches!(r, Err(Stop::Interrupted)), "{r:?}");
        assert_eq!(rows.len(), 1);
        assert_eq!(l.client.calls(), 1, "no call after the stop");
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    }
}
