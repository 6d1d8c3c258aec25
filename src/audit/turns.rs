//! Each target's turn: its view (label, origin, counters, limiter, what the progress display and
//! the summary show of it), connected when its turn comes, and `take_turns`, which gives every
//! target its turn, at most `--max-targets-in-flight` at once. Describe and discovery drive their
//! targets through it alike.

use std::sync::Arc;
use std::time::Instant;

use crate::audit::config::RunConfig;
use crate::audit::engine::{end_of_turns, Stop, TargetCalls, TargetEnd};
use crate::aws::call::Counters;
use crate::aws::limit::CallLimiter;
use crate::dataset::schema::Origin;

/// What the progress display and the summary show of one target.
#[derive(Clone)]
pub(crate) struct TargetView {
    pub label: String,
    /// The region and account of the target, once it is connected.
    pub origin: Arc<std::sync::OnceLock<Arc<Origin>>>,
    /// Why the target could not be audited (set when it could not be connected).
    pub failed: Arc<std::sync::OnceLock<String>>,
    /// Rows expected (0 if unknown).
    pub total: u64,
    pub counters: Arc<Counters>,
    pub limiter: Option<Arc<CallLimiter>>,
    /// Seconds from the start until this target's last row (set when its engine ends).
    pub finished_s: Arc<std::sync::OnceLock<f64>>,
    /// The pairs this target turned out to have (a discovery's listing); unset: an equal share of
    /// the run's.
    pub listed: Arc<std::sync::OnceLock<u64>>,
}

impl TargetView {
    /// The calls of this target's turn: the connected client `t`, this view's limiter and
    /// counters, and the origin its rows carry.
    pub fn calls<C>(&self, t: crate::aws::targets::TargetClient<C>) -> TargetCalls<C> {
        TargetCalls {
            client: t.client,
            limiter: self
                .limiter
                .clone()
                .expect("every target's view has its limiter"),
            origin: Some(t.origin),
            counters: self.counters.clone(),
        }
    }

    /// The view of a target waiting for its turn (`total` rows expected, 0 if unknown), with its
    /// own describe limiter at the run's `--rps`.
    pub fn waiting(label: &str, total: u64, cfg: &RunConfig) -> TargetView {
        TargetView {
            label: label.to_string(),
            origin: Default::default(),
            failed: Default::default(),
            total,
            counters: Default::default(),
            limiter: Some(Arc::new(CallLimiter::new(
                cfg.rate.rps,
                crate::aws::limit::burst_for(cfg.rate.burst, cfg.rate.rps),
                cfg.rate.adaptive,
            ))),
            finished_s: Default::default(),
            listed: Default::default(),
        }
    }

    /// The start of a target's turn: its client, connected now (a lazy target assumes its role and
    /// reads its account here), with the view's origin set; or how the turn ends at once: interrupted
    /// before it began, or failed to connect (the reason kept in the view).
    pub async fn connect<C: Send + Sync + 'static>(
        &self,
        target: crate::aws::targets::PendingTarget<C>,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<crate::aws::targets::TargetClient<C>, TargetEnd> {
        if *shutdown.borrow() {
            return Err(TargetEnd::Ran(Err(Stop::Interrupted)));
        }
        let known = target.known.clone();
        // Connecting makes no IoT call: a signal ends it at once.
        let mut stop = shutdown.clone();
        let connected = tokio::select! {
            r = target.connect() => r,
            Ok(_) = stop.wait_for(|s| *s) => return Err(TargetEnd::Ran(Err(Stop::Interrupted))),
        };
        match connected {
            Ok(t) => {
                let _ = self.origin.set(t.origin.clone());
                Ok(t)
            }
            Err(e) => {
                let _ = self
                    .failed
                    .set(crate::redact::redact(&e.to_string()).into_owned());
                // Named by what its spec says: its region, its account.
                let _ = self.origin.set(Arc::new(known));
                Err(TargetEnd::Failed)
            }
        }
    }
}

/// Gives every target its turn, at most `in_flight` at once (the others wait, without a client):
/// `turn(i, item, view)` for target `i`, its item and its view; each view notes when its turn ended
/// (seconds since `started`). Returns how the turns ended, combined ([`end_of_turns`]).
pub(crate) async fn take_turns<'v, T, F, Fut>(
    views: &'v [TargetView],
    items: Vec<T>,
    in_flight: usize,
    started: Instant,
    turn: F,
) -> Result<(), Stop>
where
    F: Fn(usize, T, &'v TargetView) -> Fut,
    Fut: std::future::Future<Output = TargetEnd>,
{
    use futures::StreamExt;
    let turn = &turn;
    let ends: Vec<(usize, TargetEnd)> =
        futures::stream::iter(items.into_iter().zip(views).enumerate())
            .map(|(i, (item, view))| async move {
                let end = turn(i, item, view).await;
                let _ = view.finished_s.set(started.elapsed().as_secs_f64());
                (i, end)
            })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
    let labels: Vec<String> = views.iter().map(|v| v.label.clone()).collect();
    end_of_turns(ends, &labels)
}
