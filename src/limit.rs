//! The call budget: one rate limiter shared by every task, so that every attempt, retries included,
//! takes a token against the account's quota.
//!
//! The configured `--rps`/`--burst` cap is a governor GCRA limiter. Above it sits an adaptive pace: when
//! the service throttles, the pace drops multiplicatively (at most once per recovery window, so a burst
//! of concurrent throttles counts once) and then climbs back additively towards the cap.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How far the pace drops on throttling, and how fast it recovers.
const DECREASE: f64 = 0.7;
/// Share of the cap regained per second without throttling.
const RECOVERY_PER_SEC: f64 = 0.02;
/// The pace never drops below this share of the cap.
const FLOOR: f64 = 0.05;

struct Pace {
    /// Current allowed rate, calls per second.
    rate: f64,
    /// The next instant a call may start under the adaptive pace.
    next: Instant,
    /// When the last decrease happened.
    last_decrease: Option<Instant>,
    /// When the rate was last increased.
    last_increase: Instant,
}

/// A shared limiter for one API's calls.
pub struct CallLimiter {
    cap: Option<f64>,
    governor: Option<DefaultDirectRateLimiter>,
    adaptive: bool,
    pace: Mutex<Pace>,
}

impl CallLimiter {
    /// `rps = None` means no limit at all. `burst` is how many calls may start at once after idling.
    pub fn new(rps: Option<f64>, burst: u32, adaptive: bool) -> Self {
        let rps = rps.filter(|r| r.is_finite() && *r > 0.0);
        let governor = rps.map(|r| {
            let quota = Quota::with_period(Duration::from_secs_f64(1.0 / r))
                .expect("rate is positive and finite")
                .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst >= 1"));
            RateLimiter::direct(quota)
        });
        let now = Instant::now();
        CallLimiter {
            cap: rps,
            governor,
            adaptive: adaptive && rps.is_some(),
            pace: Mutex::new(Pace {
                rate: rps.unwrap_or(f64::INFINITY),
                next: now,
                last_decrease: None,
                last_increase: now,
            }),
        }
    }

    /// Waits until one call may start.
    pub async fn acquire(&self) {
        if let Some(g) = &self.governor {
            g.until_ready().await;
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
                tokio::time::sleep(w).await;
            }
        }
    }

    /// Records a throttled attempt: lowers the pace, at most once per recovery window.
    pub fn on_throttle(&self) {
        let (Some(cap), true) = (self.cap, self.adaptive) else {
            return;
        };
        let mut p = self.pace.lock().expect("pace lock");
        let now = Instant::now();
        let window = Duration::from_secs_f64((2.0 / p.rate.min(cap)).max(1.0));
        if p.last_decrease.is_some_and(|t| now - t < window) {
            return;
        }
        p.rate = (p.rate.min(cap) * DECREASE).max(cap * FLOOR);
        p.last_decrease = Some(now);
        p.last_increase = now;
        // Pause briefly so the service's bucket can refill.
        p.next = p.next.max(now) + Duration::from_secs_f64(1.0 / p.rate);
    }

    /// Records an attempt that was not throttled: lets the pace climb back towards the cap.
    pub fn on_success(&self) {
        let (Some(cap), true) = (self.cap, self.adaptive) else {
            return;
        };
        let mut p = self.pace.lock().expect("pace lock");
        if p.rate >= cap {
            return;
        }
        let now = Instant::now();
        let dt = (now - p.last_increase).as_secs_f64();
        if dt >= 0.25 {
            p.rate = (p.rate + cap * RECOVERY_PER_SEC * dt).min(cap);
            p.last_increase = now;
        }
    }

    /// The current adaptive rate in calls per second (the cap when nothing was throttled).
    pub fn current_rate(&self) -> Option<f64> {
        self.cap
            .map(|c| self.pace.lock().map(|p| p.rate.min(c)).unwrap_or(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlimited_never_waits() {
        let l = CallLimiter::new(None, 1, true);
        let t = Instant::now();
        for _ in 0..10_000 {
            l.acquire().await;
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(l.current_rate(), None);
    }

    #[test]
    fn throttles_lower_the_rate_once_per_window_and_successes_restore_it() {
        let l = CallLimiter::new(Some(100.0), 1, true);
        l.on_throttle();
        l.on_throttle();
        l.on_throttle();
        let r = l.current_rate().unwrap();
        assert!((r - 70.0).abs() < 1e-9, "{r}");
        // Back-date the last increase to simulate ten quiet seconds.
        l.pace.lock().unwrap().last_increase -= Duration::from_secs(10);
        l.on_success();
        let r2 = l.current_rate().unwrap();
        assert!((r2 - 90.0).abs() < 0.5, "{r2}");
    }

    #[test]
    fn non_adaptive_limiter_ignores_throttles() {
        let l = CallLimiter::new(Some(100.0), 1, false);
        l.on_throttle();
        assert_eq!(l.current_rate(), Some(100.0));
    }
}
