//! The call budget: each target has its own limiter (DescribeJobExecution), and a discovery one per
//! list API, each shared by the workers calling that API, so that every attempt, retries included,
//! takes a token against that API's quota.
//!
//! The configured `--rps`/`--burst` cap is a governor GCRA limiter. Below it sits an adaptive pace
//! (AIMD): the first throttle of a run halves the pace (the cap is often far above the real quota);
//! later ones drop it to 85% of the lower of the current pace and the success rate actually measured
//! (which, once the service's bucket is empty, is the service's real quota). Throttles within a short
//! window after a decrease count once, since the calls then in flight were sent at the old pace.
//! Without throttling, the pace climbs back by 1% of the cap per second.
//! The slow climb makes each probe past the real quota cost one or two throttled calls every ten
//! seconds or more, so the run keeps well over 90% of the quota with about 1% of attempts throttled.
//!
//! Without a cap (`--rps 0`) calls are not paced until the first throttle. That throttle starts a
//! pace at half the rate of answered calls observed so far (which, until the service's bucket
//! empties, is what the client could send); each later one drops it to 85% of the lower of the pace
//! and the rate of calls answered since the last decrease (the service's real quota once its bucket
//! is empty). Within the window after a decrease, a throttle counts only when at least
//! [`MIN_ANSWERED`] calls were answered since and their rate is under half the pace: so a start far
//! above the quota comes down within a few answers, not a window of throttles. The pace never drops
//! below half the first answered rate so measured: throttles that lowering the pace cannot cure
//! (injected at random, as the simulator's `--fault-throttle` does) would otherwise bring it down
//! step by step to nothing. Without throttling the pace climbs by 1% a second of the answered rate
//! it was last set from.
//!
//! Time is tokio's clock (`tokio::time::Instant`, governor reading it through [`TokioClock`]), so a
//! test under `tokio::time::pause()` drives the limiter without waiting; every wait is a tokio sleep
//! that a shutdown interrupts.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;
use tokio::time::Instant;

/// governor's view of tokio's clock: nanoseconds since the limiter was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    start: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// A GCRA limiter on tokio's clock (also the simulator's quota bucket).
pub(crate) type Governor = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Share of the rate kept on the run's first throttle, and on later ones.
const FIRST_DECREASE: f64 = 0.5;
const DECREASE: f64 = 0.85;
/// Share of the cap regained per second without throttling.
const RECOVERY_PER_SEC: f64 = 0.01;
/// The pace never drops below this share of the cap.
const FLOOR: f64 = 0.02;
/// Length of one success-rate measurement.
const MEASURE: Duration = Duration::from_secs(1);
/// Without a cap: answered calls needed before their rate is taken as the service's.
pub(crate) const MIN_ANSWERED: u64 = 5;
/// Without a cap: the pace never drops below this many calls per second (nor, once measured, below
/// half the first answered rate measured after a decrease).
const UNCAPPED_FLOOR: f64 = 0.5;

struct Pace {
    /// Current allowed rate, calls per second.
    rate: f64,
    /// The next instant a call may start under the adaptive pace.
    next: Instant,
    /// When the last decrease happened.
    last_decrease: Option<Instant>,
    /// When the rate was last increased.
    last_increase: Instant,
    /// Successes since `window_start`, and the last complete measurement (calls per second).
    successes: u64,
    window_start: Instant,
    measured: Option<f64>,
    /// Without a cap: calls answered (not throttled) since `answered_since` (the start, then the
    /// last decrease), and the answered rate the pace was last set from (its climb is 1% of it a
    /// second).
    answered: u64,
    answered_since: Instant,
    scale: f64,
    /// Without a cap: the pace's floor, half the first answered rate measured after a decrease
    /// (see the module's documentation); [`UNCAPPED_FLOOR`] until then.
    floor: f64,
}

/// The burst of a limiter at `rps`: the one given, or a tenth of a second's worth and at least 2.
///
/// With a burst of 1, a worker that reaches its slot a little late (a timer's granularity, a busy
/// core) loses the slot for good, and the rate falls a few percent short of `--rps`. A tenth of a
/// second's worth lets late workers catch up, and stays far inside a service bucket of a second's
/// worth, AWS's and the simulator's default.
pub(crate) fn burst_for(given: Option<u32>, rps: Option<f64>) -> u32 {
    given.unwrap_or_else(|| match rps {
        Some(r) if r.is_finite() && r > 0.0 => ((r / 10.0).ceil() as u32).max(2),
        _ => 1,
    })
}

/// A shared limiter for one API's calls.
pub struct CallLimiter {
    cap: Option<f64>,
    governor: Option<Governor>,
    clock: TokioClock,
    adaptive: bool,
    pace: Mutex<Pace>,
}

impl CallLimiter {
    /// `rps = None` means no limit at all. `burst` is how many calls may start at once after idling.
    pub fn new(rps: Option<f64>, burst: u32, adaptive: bool) -> Self {
        let rps = rps.filter(|r| r.is_finite() && *r > 0.0);
        let clock = TokioClock::default();
        let governor = rps.map(|r| {
            let quota = Quota::with_period(Duration::from_secs_f64(1.0 / r))
                .expect("rate is positive and finite")
                .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst >= 1"));
            RateLimiter::direct_with_clock(quota, clock.clone())
        });
        let now = Instant::now();
        CallLimiter {
            cap: rps,
            governor,
            clock,
            adaptive,
            pace: Mutex::new(Pace {
                rate: rps.unwrap_or(f64::INFINITY),
                next: now,
                last_decrease: None,
                last_increase: now,
                successes: 0,
                window_start: now,
                measured: None,
                answered: 0,
                answered_since: now,
                scale: rps.unwrap_or(0.0),
                floor: UNCAPPED_FLOOR,
            }),
        }
    }

    /// Waits until one call may start; `false` when `shutdown` came first. (A slot reserved for
    /// an interrupted wait is not given back: it only happens once, at shutdown.)
    pub async fn acquire(&self, shutdown: &watch::Receiver<bool>) -> bool {
        if let Some(g) = &self.governor {
            while let Err(not_until) = g.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                if !sleep_unless_stopped(wait, shutdown).await {
                    return false;
                }
            }
        }
        if self.adaptive {
            let wait = {
                let mut p = self.pace.lock().expect("pace lock");
                let cap = self.cap.unwrap_or(f64::INFINITY);
                if p.rate >= cap {
                    None
                } else {
                    let now = Instant::now();
                    let slot = p.next.max(now);
                    p.next = slot + Duration::from_secs_f64(1.0 / p.rate);
                    Some(slot - now)
                }
            };
            if let Some(w) = wait.filter(|w| !w.is_zero()) {
                return sleep_unless_stopped(w, shutdown).await;
            }
        }
        true
    }

    /// Records a throttled attempt: lowers the pace, at most once per recovery window (without a
    /// cap: starts it, see the module's documentation).
    pub(crate) fn on_throttle(&self) {
        if !self.adaptive {
            return;
        }
        let mut p = self.pace.lock().expect("pace lock");
        let now = Instant::now();
        let Some(cap) = self.cap else {
            uncapped_throttle(&mut p, now);
            return;
        };
        let current = p.rate.min(cap);
        // Two call spacings plus a typical round trip: the calls already sent at the old pace.
        let window = Duration::from_secs_f64(2.0 / current + 0.2);
        if p.last_decrease.is_some_and(|t| now - t < window) {
            return;
        }
        p.rate = match p.last_decrease {
            None => current * FIRST_DECREASE,
            Some(_) => p.measured.map_or(current, |m| m.min(current)) * DECREASE,
        }
        .max(cap * FLOOR);
        p.last_decrease = Some(now);
        p.last_increase = now;
        p.next = p.next.max(now) + Duration::from_secs_f64(1.0 / p.rate);
    }

    /// Records an attempt that was not throttled: measures the success rate and lets the pace climb
    /// back towards the cap.
    pub(crate) fn on_success(&self) {
        if !self.adaptive {
            return;
        }
        let mut p = self.pace.lock().expect("pace lock");
        let now = Instant::now();
        let Some(cap) = self.cap else {
            p.answered += 1;
            let dt = (now - p.last_increase).as_secs_f64();
            if p.rate.is_finite() && dt >= 0.25 {
                p.rate += p.scale * RECOVERY_PER_SEC * dt;
                p.last_increase = now;
            }
            return;
        };
        p.successes += 1;
        let span = now - p.window_start;
        if span >= MEASURE {
            p.measured = Some(p.successes as f64 / span.as_secs_f64());
            p.successes = 0;
            p.window_start = now;
        }
        if p.rate >= cap {
            return;
        }
        let dt = (now - p.last_increase).as_secs_f64();
        if dt >= 0.25 {
            p.rate = (p.rate + cap * RECOVERY_PER_SEC * dt).min(cap);
            p.last_increase = now;
        }
    }

    /// The current adaptive rate in calls per second (the cap when nothing was throttled; without a
    /// cap, `None` until a throttle starts the pace).
    pub(crate) fn current_rate(&self) -> Option<f64> {
        let rate = self.pace.lock().map(|p| p.rate).unwrap_or(f64::INFINITY);
        match self.cap {
            Some(c) => Some(rate.min(c)),
            None => rate.is_finite().then_some(rate),
        }
    }
}

/// A throttle without a cap (see the module's documentation).
fn uncapped_throttle(p: &mut Pace, now: Instant) {
    let span = (now - p.answered_since).as_secs_f64().max(0.001);
    let answered = (p.answered > 0).then(|| p.answered as f64 / span);
    let Some(last) = p.last_decrease else {
        // The first throttle: a pace from the calls answered so far; none yet, nothing to start from.
        let Some(observed) = answered else {
            return;
        };
        set_uncapped(p, now, observed, FIRST_DECREASE);
        return;
    };
    let current = p.rate;
    // The service's rate, once enough calls were answered since the last decrease to tell.
    let measured = answered.filter(|_| p.answered >= MIN_ANSWERED);
    if let Some(m) = measured {
        if p.floor <= UNCAPPED_FLOOR {
            p.floor = (m * FIRST_DECREASE).max(UNCAPPED_FLOOR);
        }
    }
    // Two call spacings plus a typical round trip: the calls already sent at the old pace.
    let window = Duration::from_secs_f64(2.0 / current + 0.2);
    if now - last < window {
        match measured {
            Some(m) if m < current * 0.5 => set_uncapped(p, now, m, DECREASE),
            _ => {}
        }
        return;
    }
    set_uncapped(
        p,
        now,
        measured.map_or(current, |m| m.min(current)),
        DECREASE,
    );
}

/// A decrease of the uncapped pace at `now`: `share` of `base` calls per second (at least the
/// floor), climbing back by 1% of `base` a second.
fn set_uncapped(p: &mut Pace, now: Instant, base: f64, share: f64) {
    p.rate = (base * share).max(p.floor);
    p.scale = base;
    p.last_decrease = Some(now);
    p.last_increase = now;
    p.answered = 0;
    p.answered_since = now;
    p.next = p.next.max(now) + Duration::from_secs_f64(1.0 / p.rate);
}

/// Sleeps `wait` on tokio's clock; `false` when `shutdown` is (or becomes) set first.
async fn sleep_unless_stopped(wait: Duration, shutdown: &watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let mut sd = shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = sd.wait_for(|s| *s) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_burst_is_a_tenth_of_a_second_and_at_least_two() {
        assert_eq!(burst_for(None, Some(10.0)), 2);
        assert_eq!(burst_for(None, Some(50.0)), 5);
        assert_eq!(burst_for(None, Some(200.0)), 20);
        assert_eq!(burst_for(None, Some(1000.0)), 100);
        assert_eq!(burst_for(None, Some(0.5)), 2);
        assert_eq!(burst_for(None, None), 1);
        assert_eq!(burst_for(Some(1), Some(1000.0)), 1);
    }

    fn running() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let l = CallLimiter::new(None, 1, true);
        let t = std::time::Instant::now();
        let sd = running();
        for _ in 0..10_000 {
            assert!(l.acquire(&sd).await);
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(l.current_rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cap_spaces_calls_on_tokios_clock() {
        let l = CallLimiter::new(Some(10.0), 1, false);
        let sd = running();
        let t = Instant::now();
        for _ in 0..11 {
            assert!(l.acquire(&sd).await);
        }
        // The first slot is free; ten more at 10/s take a second of (paused) time.
        assert_eq!(t.elapsed().as_millis().div_ceil(10) * 10, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_a_wait_for_a_slot() {
        let l = std::sync::Arc::new(CallLimiter::new(Some(0.01), 1, false));
        let (tx, rx) = watch::channel(false);
        assert!(l.acquire(&rx).await, "the first slot is free");
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(&rx).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(true).unwrap();
        // The next slot is 100 s away; the shutdown ends the wait at once.
        let t = Instant::now();
        assert!(!waiting.await.unwrap());
        assert!(t.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_lower_the_rate_once_per_window_and_successes_restore_it() {
        let l = CallLimiter::new(Some(100.0), 1, true);
        l.on_throttle();
        l.on_throttle();
        l.on_throttle();
        let r = l.current_rate().unwrap();
        assert!((r - 50.0).abs() < 1e-9, "the first throttle halves: {r}");
        // Ten seconds without a throttle, 100 successes a second: +1% of the cap per second.
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            l.on_success();
        }
        let r2 = l.current_rate().unwrap();
        assert!((r2 - 60.0).abs() < 0.5, "{r2}");
        // After the window, a later throttle keeps 85%.
        l.on_throttle();
        let r3 = l.current_rate().unwrap();
        assert!((r3 - r2 * 0.85).abs() < 0.5, "{r3}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_drops_to_the_measured_success_rate() {
        let l = CallLimiter::new(Some(100.0), 1, true);
        // A first throttle, then 40 successes over the next measured second: the service's real
        // quota.
        l.on_throttle();
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(25)).await;
            l.on_success();
        }
        l.on_throttle();
        let r = l.current_rate().unwrap();
        assert!((r - 34.0).abs() < 1e-9, "{r}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_cap_the_first_throttle_starts_a_pace_from_the_answered_rate() {
        let l = CallLimiter::new(None, 1, true);
        l.on_throttle();
        assert_eq!(l.current_rate(), None, "nothing answered yet: no pace");
        // 100 calls answered in 0.1 s (the service's bucket), then a throttle: half of 1,000/s.
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(1)).await;
            l.on_success();
        }
        l.on_throttle();
        let r = l.current_rate().unwrap();
        assert!((r - 500.0).abs() < 1e-6, "{r}");
        // 10 answered in the next 0.1 s (100/s: the bucket is empty), far under the pace: the
        // throttle counts within the window, and the pace drops to 85% of the answered rate.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(10)).await;
            l.on_success();
        }
        l.on_throttle();
        let r = l.current_rate().unwrap();
        assert!((r - 85.0).abs() < 1e-6, "{r}");
        // With --no-adaptive, a limiter without a cap never paces.
        let fixed = CallLimiter::new(None, 1, false);
        fixed.on_success();
        fixed.on_throttle();
        assert_eq!(fixed.current_rate(), None);
    }

    #[test]
    fn non_adaptive_limiter_ignores_throttles() {
        let l = CallLimiter::new(Some(100.0), 1, false);
        l.on_throttle();
        assert_eq!(l.current_rate(), Some(100.0));
    }
}
