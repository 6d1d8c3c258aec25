//! The rate limiter's own cost per `acquire`, when it never has to wait.
//!
//! - `unlimited`: `--rps 0` (no governor, no adaptive pace): the floor.
//! - `rps_1e9_adaptive` / `rps_1e9_fixed`: a governor GCRA limiter at 10^9 calls/s with a burst of
//!   10^6, so every token is available at once, with and without the adaptive pace (its mutex).
//! - `rps_1e9_adaptive_16_tasks`: the same limiter shared by 16 tasks on a 2-worker runtime, as the
//!   engine shares one limiter between its concurrent pairs (contention on the GCRA state and mutex).
//!
//! Each measured iteration is one `acquire(&shutdown)`; the runtime is entered once per sample, not per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::watch;

use fleet_audit::aws::limit::CallLimiter;

/// A rate no benchmark can reach, so that the limiter never waits.
const HUGE_RPS: f64 = 1e9;
const HUGE_BURST: u32 = 1_000_000;
const TASKS: u64 = 16;

/// A shutdown that never comes (what `acquire` watches while it waits).
fn running() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

/// Time of `iters` acquires from one task.
fn sequential(rt: &Runtime, limiter: &CallLimiter, iters: u64) -> Duration {
    let shutdown = running();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            limiter.acquire(&shutdown).await;
        }
        start.elapsed()
    })
}

/// Time of `iters` acquires spread over [`TASKS`] tasks sharing `limiter`.
fn contended(rt: &Runtime, limiter: &Arc<CallLimiter>, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let limiter = Arc::clone(limiter);
                // The first tasks take the remainder, so exactly `iters` acquires happen.
                let n = iters / TASKS + u64::from(t < iters % TASKS);
                let shutdown = running();
                tokio::spawn(async move {
                    for _ in 0..n {
                        limiter.acquire(&shutdown).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("acquire task");
        }
        start.elapsed()
    })
}

fn bench_limiter(c: &mut Criterion) {
    let single = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let unlimited = CallLimiter::new(None, 1, true);
    let adaptive = CallLimiter::new(Some(HUGE_RPS), HUGE_BURST, true);
    let fixed = CallLimiter::new(Some(HUGE_RPS), HUGE_BURST, false);
    let shared = Arc::new(CallLimiter::new(Some(HUGE_RPS), HUGE_BURST, true));

    let mut g = c.benchmark_group("limiter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("unlimited", |b| {
        b.iter_custom(|iters| sequential(&single, &unlimited, iters))
    });
    g.bench_function("rps_1e9_adaptive", |b| {
        b.iter_custom(|iters| sequential(&single, &adaptive, iters))
    });
    g.bench_function("rps_1e9_fixed", |b| {
        b.iter_custom(|iters| sequential(&single, &fixed, iters))
    });
    g.bench_function("rps_1e9_adaptive_16_tasks", |b| {
        b.iter_custom(|iters| contended(&multi, &shared, iters))
    });
    g.finish();
}

criterion_group!(benches, bench_limiter);
criterion_main!(benches);
