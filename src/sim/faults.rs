//! The simulator's deliberate misbehaviour: the per-operation quota, the injected faults ([`Faults`])
//! and the answer latency, decided for each request before it is served.
//!
//! It is apart from the routing so that what a request meets, and in which order, is in one place.
//! The order is part of the wire: the quota comes first (an empty bucket throttles before any fault is
//! drawn); then drop, throttle and 5xx, which answer at once; then the slow stall and the configured
//! latency, which delay whatever follows; then garbage, so that a garbage answer comes as late as a
//! good one would. Each counter is bumped when its fault is decided.
//!
//! [`Faults`]: super::Faults

use std::sync::atomic::Ordering;

use hyper::{Response, StatusCode};

use super::http::{error, ok, Body, Dropped};
use super::{Operation, Simulator};

/// What a request gets instead of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// The operation's quota bucket is empty: ThrottlingException.
    Quota,
    /// Close the connection without an answer.
    Drop,
    /// ThrottlingException regardless of the quota.
    Throttle,
    /// 503 ServiceUnavailableException.
    Unavailable,
    /// 500 InternalFailureException.
    Internal,
    /// 200 with a truncated JSON body.
    Garbage,
}

/// The fault, if any, that a request for `op` meets, counted in the stats. On the way it stalls for
/// the slow fault and the configured latency, so the caller answers (well or not) after them.
pub(super) async fn decide(sim: &Simulator, op: Operation) -> Option<Fault> {
    if let Some(limiter) = &sim.limiters[op as usize] {
        if limiter.check().is_err() {
            sim.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Some(Fault::Quota);
        }
    }
    let f = &sim.faults;
    if f.p_drop > 0.0 && rand::random::<f64>() < f.p_drop {
        sim.stats.fault_drop.fetch_add(1, Ordering::Relaxed);
        return Some(Fault::Drop);
    }
    if f.p_throttle > 0.0 && rand::random::<f64>() < f.p_throttle {
        sim.stats.fault_throttle.fetch_add(1, Ordering::Relaxed);
        sim.stats.throttled.fetch_add(1, Ordering::Relaxed);
        return Some(Fault::Throttle);
    }
    if f.p_5xx > 0.0 && rand::random::<f64>() < f.p_5xx {
        sim.stats.fault_5xx.fetch_add(1, Ordering::Relaxed);
        return Some(if rand::random::<bool>() {
            Fault::Unavailable
        } else {
            Fault::Internal
        });
    }
    if f.p_slow > 0.0 && rand::random::<f64>() < f.p_slow {
        sim.stats.fault_slow.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(f.slow).await;
    }
    if let Some(d) = sim.latency.sample() {
        tokio::time::sleep(d).await;
    }
    if f.p_garbage > 0.0 && rand::random::<f64>() < f.p_garbage {
        sim.stats.fault_garbage.fetch_add(1, Ordering::Relaxed);
        return Some(Fault::Garbage);
    }
    None
}

impl Fault {
    /// The answer AWS gives in this case; `Err(Dropped)` makes hyper close the connection instead.
    pub(super) fn answer(self, sim: &Simulator) -> Result<Response<Body>, Dropped> {
        Ok(match self {
            Fault::Drop => return Err(Dropped),
            // AWS throttles with HTTP 400, not 429.
            Fault::Quota | Fault::Throttle => error(
                sim,
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded",
            ),
            Fault::Unavailable => error(
                sim,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "Service is unavailable",
            ),
            Fault::Internal => error(
                sim,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailureException",
                "An internal failure occurred",
            ),
            // Cut mid-string: a 200 whose body no JSON parser accepts.
            Fault::Garbage => ok(sim, b"{\"execution\": {\"jobId\": \"job-0".to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Faults, FleetSpec, Latency, SimConfig};

    fn sim(faults: Faults, quota_rps: Option<f64>) -> Simulator {
        Simulator::new(SimConfig {
            fleet: FleetSpec {
                things: 1,
                jobs: 1,
                seed: 1,
                now_ms: 1_764_400_000_000,
                epoch_ms: None,
                changed_share: None,
                region: "us-east-1".into(),
                future_status: 0.0,
                active_share: None,
            },
            quota_rps,
            remediation_quota_rps: None,
            context_quota_rps: None,
            indexing: Default::default(),
            quota_burst: Some(1),
            latency: Latency::None,
            faults,
            org: Default::default(),
        })
    }

    // The quota's bucket runs on tokio's clock: paused, no token comes back until the test says.
    #[tokio::test(start_paused = true)]
    async fn the_quota_comes_before_the_faults_and_each_is_counted() {
        let s = sim(
            Faults {
                p_drop: 1.0,
                p_throttle: 1.0,
                ..Faults::default()
            },
            Some(1.0),
        );
        let op = Operation::DescribeJobExecution;
        // The bucket's one token passes the quota; drop is drawn before throttle.
        assert_eq!(decide(&s, op).await, Some(Fault::Drop));
        assert_eq!(decide(&s, op).await, Some(Fault::Quota));
        let st = s.stats();
        assert_eq!(
            (st.throttled, st.faults["drop"], st.faults["throttle"]),
            (1, 1, 0)
        );
        // Other operations have their own bucket.
        assert_eq!(decide(&s, Operation::ListJobs).await, Some(Fault::Drop));
        // A second later (1 call/s) the bucket has its token again, and only one.
        tokio::time::advance(std::time::Duration::from_millis(999)).await;
        assert_eq!(decide(&s, op).await, Some(Fault::Quota));
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert_eq!(decide(&s, op).await, Some(Fault::Drop));
        assert_eq!(decide(&s, op).await, Some(Fault::Quota));
    }

    #[tokio::test]
    async fn no_knob_no_fault() {
        let s = sim(Faults::default(), None);
        for op in Operation::ALL {
            assert_eq!(decide(&s, op).await, None);
        }
        assert_eq!(s.stats().faults.values().sum::<u64>(), 0);
    }

    #[test]
    fn answers_carry_aws_status_and_error_type() {
        let s = sim(Faults::default(), None);
        let kind = |f: Fault| {
            let r = f.answer(&s).unwrap();
            let t = r
                .headers()
                .get("x-amzn-ErrorType")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), t)
        };
        let t = |s: &str| Some(s.to_string());
        assert_eq!(kind(Fault::Quota), (400, t("ThrottlingException")));
        assert_eq!(kind(Fault::Throttle), (400, t("ThrottlingException")));
        assert_eq!(
            kind(Fault::Unavailable),
            (503, t("ServiceUnavailableException"))
        );
        assert_eq!(kind(Fault::Internal), (500, t("InternalFailureException")));
        assert_eq!(kind(Fault::Garbage), (200, None));
        assert!(Fault::Drop.answer(&s).is_err());
    }
}
