//! `fleet-audit sim`: a simulator of the AWS IoT Jobs wire API on loopback.
//!
//! It exists so that the auditor can be built, tested, demonstrated and benchmarked without an AWS
//! account: it answers the real AWS SDKs and CLI exactly as AWS IoT does (paths, JSON shapes, error
//! headers, ThrottlingException as HTTP 400), over a deterministic fleet ([`fleet`]), and misbehaves on
//! purpose when its knobs say so ([`Faults`], quotas, latency). Every request received is counted by
//! operation so tests can check what a client really sent ([`StatsSnapshot`]), and a test can hold an
//! operation's requests at a known point of a client's run until it releases them
//! ([`Simulator::hold_after`]; never closed unless a test asks).
//!
//! Requests signed with the access key id `AKIDEXPIRED` or `AKIDDENIED` are refused with
//! ExpiredTokenException or AccessDeniedException (403), so that run-level credential failures can be
//! tested; every other signature is accepted.
//!
//! It also answers STS GetCallerIdentity and AssumeRole ([`sts`]) on the same endpoint, so that runs
//! over several accounts (`--role-arn`) and the account id column work against it; and, with
//! `--org-accounts N`, an AWS Organization ([`org`]): Organizations ListAccounts, Account ListRegions,
//! and AssumeRole refused in a chosen share of member accounts (`--org-missing-role`).
//!
//! The binary's `sim` and `demo` subcommands and the integration tests all start it through
//! [`SimServer::start`] on a listener they own.

mod faults;
pub mod fleet;
mod http;
mod list;
mod operation;
pub(crate) mod org;
mod registry;
mod remedy;
mod server;
mod sts;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fleet::{Fleet, FleetSpec};
pub use operation::Operation;
pub(crate) use operation::OPERATIONS;
pub use org::OrgSpec;
pub use registry::Indexing;

/// Answer latency added before every answer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Latency {
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Log-normally distributed with this median and 99th percentile.
    Distribution { median: Duration, p99: Duration },
}

impl FromStr for Latency {
    type Err = String;
    /// `5` (milliseconds, fixed) or `5,40` (median and p99 in milliseconds).
    fn from_str(s: &str) -> Result<Self, String> {
        let ms = |v: &str| -> Result<f64, String> {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("latency `{v}` is not a number of milliseconds"))?;
            if !(0.0..=600_000.0).contains(&x) {
                return Err(format!("latency {x} ms is outside 0..=600000"));
            }
            Ok(x)
        };
        match s.split_once(',') {
            None => {
                let m = ms(s)?;
                Ok(if m == 0.0 {
                    Latency::None
                } else {
                    Latency::Fixed(Duration::from_secs_f64(m / 1000.0))
                })
            }
            Some((a, b)) => {
                let (median, p99) = (ms(a)?, ms(b)?);
                if p99 < median || median <= 0.0 {
                    return Err("latency needs 0 < median <= p99".into());
                }
                Ok(Latency::Distribution {
                    median: Duration::from_secs_f64(median / 1000.0),
                    p99: Duration::from_secs_f64(p99 / 1000.0),
                })
            }
        }
    }
}

impl Latency {
    fn sample(&self) -> Option<Duration> {
        match *self {
            Latency::None => None,
            Latency::Fixed(d) => Some(d),
            Latency::Distribution { median, p99 } => {
                // z(0.99) of the standard normal.
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / 2.326_348;
                let (u1, u2): (f64, f64) = (rand::random(), rand::random());
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                Some(Duration::from_secs_f64(
                    (median.as_secs_f64() * (sigma * z).exp()).min(600.0),
                ))
            }
        }
    }
}

/// Probabilities (0..=1) of each deliberate misbehaviour, drawn per request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Answer 500 InternalFailureException or 503 ServiceUnavailableException.
    pub p_5xx: f64,
    /// Close the connection without an answer.
    pub p_drop: f64,
    /// Stall for `slow` before answering.
    pub p_slow: f64,
    /// Answer 200 with a malformed body.
    pub p_garbage: f64,
    /// Answer ThrottlingException regardless of the quota.
    pub p_throttle: f64,
    /// How long a slow answer stalls.
    pub slow: Duration,
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub fleet: FleetSpec,
    /// Per-operation quota in calls per second (token bucket); `None` means no quota. The buckets
    /// run on tokio's clock, which is the monotonic clock in a normal runtime; under
    /// `tokio::time::pause()` a test decides when tokens come back (`tokio::time::advance`).
    pub quota_rps: Option<f64>,
    /// Bucket size of the quota; defaults to one second's worth of calls.
    pub quota_burst: Option<u32>,
    /// The quota of the calls that change the fleet (CancelJobExecution, DeleteJobExecution), each
    /// its own bucket as in AWS; `None`: `quota_rps`.
    pub remediation_quota_rps: Option<f64>,
    /// The quota of the context calls ([`Operation::is_context`]: DescribeJob and the registry and
    /// fleet-indexing calls), each its own bucket as in AWS; `None`: `quota_rps`.
    pub context_quota_rps: Option<f64>,
    /// The fleet indexing the account has enabled.
    pub indexing: Indexing,
    pub latency: Latency,
    pub faults: Faults,
    /// The organization the simulator's account manages (none by default).
    pub org: OrgSpec,
}

/// Counters of everything received, readable while the simulator runs.
#[derive(Default)]
struct Stats {
    operations: [AtomicU64; OPERATIONS],
    /// Requests that reached their operation's handler (past the quota, faults and gate): for the
    /// calls that change the fleet, the ones that were carried out or refused by the fleet itself.
    handled: [AtomicU64; OPERATIONS],
    /// Microseconds since the Unix epoch of each operation's first and last request (0: none yet).
    first_us: [AtomicU64; OPERATIONS],
    last_us: [AtomicU64; OPERATIONS],
    sts: AtomicU64,
    organizations: AtomicU64,
    unknown: AtomicU64,
    unauthenticated: AtomicU64,
    throttled: AtomicU64,
    fault_5xx: AtomicU64,
    fault_drop: AtomicU64,
    fault_slow: AtomicU64,
    fault_garbage: AtomicU64,
    fault_throttle: AtomicU64,
}

/// A copy of the simulator's counters, also served as JSON at `GET /_sim/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatsSnapshot {
    /// Requests received per operation, answered or not.
    pub operations: BTreeMap<String, u64>,
    /// Per operation with any, the requests its handler answered (not a quota, fault or dropped
    /// connection): a cancel or delete here was carried out or refused by the fleet itself.
    #[serde(default)]
    pub handled: BTreeMap<String, u64>,
    /// Executions cancelled or deleted so far.
    #[serde(default)]
    pub changed: u64,
    /// Executions that received a cancel or delete (carried out or refused by the fleet), and the
    /// most such calls any one execution received.
    #[serde(default)]
    pub change_targets: u64,
    #[serde(default)]
    pub most_changes_per_execution: u64,
    /// Requests answered with ThrottlingException (quota and injected alike).
    pub throttled: u64,
    /// Requests rejected for having no Authorization header.
    pub unauthenticated: u64,
    /// Requests to paths the simulator does not serve.
    pub unknown: u64,
    /// STS requests (GetCallerIdentity, AssumeRole), not counted among the IoT operations.
    #[serde(default)]
    pub sts: u64,
    /// Organizations ListAccounts and Account ListRegions requests.
    #[serde(default)]
    pub organizations: u64,
    /// Injected faults by kind: `5xx`, `drop`, `slow`, `garbage`, `throttle`.
    pub faults: BTreeMap<String, u64>,
    /// Per operation with requests: when the first and the last arrived (epoch microseconds), so a
    /// client's rate is measured over its calling phase alone.
    #[serde(default)]
    pub first_us: BTreeMap<String, u64>,
    #[serde(default)]
    pub last_us: BTreeMap<String, u64>,
}

impl StatsSnapshot {
    /// Requests received for `op`.
    pub fn calls(&self, op: Operation) -> u64 {
        self.operations.get(op.name()).copied().unwrap_or(0)
    }

    /// Requests received for all operations.
    pub fn total_calls(&self) -> u64 {
        self.operations.values().sum()
    }
}

/// A quota bucket on tokio's clock (see [`SimConfig::quota_rps`]).
type Limiter = crate::aws::limit::Governor;

/// Where one operation's gate stands (see [`Simulator::hold_after`]): open (`pass: None`, the
/// default), or letting `pass` more requests through before it holds the later ones; `held` counts
/// the requests waiting at it now.
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    pass: Option<u64>,
    held: u64,
}

/// One operation's gate: its state, and whether it was ever closed (so that a simulator nobody
/// holds never takes the gate's lock on its way).
struct GateCell {
    state: tokio::sync::watch::Sender<Gate>,
    used: std::sync::atomic::AtomicBool,
}

impl Default for GateCell {
    fn default() -> Self {
        GateCell {
            state: tokio::sync::watch::Sender::new(Gate::default()),
            used: Default::default(),
        }
    }
}

/// A request waiting at a gate: counted in `held` until it passes or is dropped (its client gone).
struct Waiting<'a>(&'a tokio::sync::watch::Sender<Gate>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|g| g.held -= 1);
    }
}

/// The shared state behind every connection.
pub struct Simulator {
    fleet: Fleet,
    latency: Latency,
    faults: Faults,
    /// Per operation, its quota bucket when it has one.
    limiters: [Option<Limiter>; OPERATIONS],
    gates: [GateCell; OPERATIONS],
    stats: Stats,
    request_ids: AtomicU64,
    org: OrgSpec,
    indexing: Indexing,
}

impl Simulator {
    /// Builds the fleet and the quota buckets.
    pub fn new(config: SimConfig) -> Self {
        let bucket = |rps: Option<f64>| {
            let rps = rps.filter(|r| *r > 0.0)?;
            let burst = config
                .quota_burst
                .unwrap_or_else(|| rps.ceil().max(1.0) as u32)
                .max(1);
            let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rps))
                .expect("positive period")
                .allow_burst(NonZeroU32::new(burst).expect("burst >= 1"));
            Some(RateLimiter::direct_with_clock(
                quota,
                crate::aws::limit::TokioClock::default(),
            ))
        };
        let limiters = std::array::from_fn(|k| {
            let op = Operation::ALL[k];
            if op.changes_fleet() {
                bucket(config.remediation_quota_rps.or(config.quota_rps))
            } else if op.is_context() {
                bucket(config.context_quota_rps.or(config.quota_rps))
            } else {
                bucket(config.quota_rps)
            }
        });
        Simulator {
            fleet: Fleet::new(config.fleet),
            latency: config.latency,
            faults: config.faults,
            limiters,
            gates: Default::default(),
            stats: Stats::default(),
            request_ids: AtomicU64::new(1),
            org: config.org,
            indexing: config.indexing,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The fleet indexing the simulated account has enabled.
    pub fn indexing(&self) -> Indexing {
        self.indexing
    }

    /// The simulated organization.
    pub fn org(&self) -> &OrgSpec {
        &self.org
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // One reading of the calls map: the two figures are of one moment.
        let (change_targets, most) = self.fleet.change_calls();
        StatsSnapshot {
            operations: Operation::ALL
                .iter()
                .map(|op| (op.name().to_string(), get(&s.operations[*op as usize])))
                .collect(),
            throttled: get(&s.throttled),
            unauthenticated: get(&s.unauthenticated),
            unknown: get(&s.unknown),
            sts: get(&s.sts),
            organizations: get(&s.organizations),
            faults: [
                ("5xx", &s.fault_5xx),
                ("drop", &s.fault_drop),
                ("slow", &s.fault_slow),
                ("garbage", &s.fault_garbage),
                ("throttle", &s.fault_throttle),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), get(v)))
            .collect(),
            first_us: times(&s.first_us),
            handled: times(&s.handled),
            changed: self.fleet.changed() as u64,
            change_targets: change_targets as u64,
            most_changes_per_execution: u64::from(most),
            last_us: times(&s.last_us),
        }
    }

    /// Counts one request of `op`, and when it arrived.
    pub(crate) fn count(&self, op: Operation) {
        let s = &self.stats;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        s.operations[op as usize].fetch_add(1, Ordering::Relaxed);
        let _ =
            s.first_us[op as usize].compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        s.last_us[op as usize].fetch_max(now, Ordering::Relaxed);
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        let s = &self.stats;
        for a in s
            .operations
            .iter()
            .chain(&s.first_us)
            .chain(&s.handled)
            .chain(&s.last_us)
            .chain([
                &s.unknown,
                &s.sts,
                &s.organizations,
                &s.unauthenticated,
                &s.throttled,
                &s.fault_5xx,
                &s.fault_drop,
                &s.fault_slow,
                &s.fault_garbage,
                &s.fault_throttle,
            ])
        {
            a.store(0, Ordering::Relaxed);
        }
    }
}

impl Simulator {
    /// Test hook, so a test can catch a client at a known point of its run instead of guessing how
    /// long it lasts: lets `n` more requests of `op` through from now, then holds every later one
    /// (counted in the stats as received, not answered) until [`Simulator::release`] or a later
    /// `hold_after` lets them go. A held request waits after the authentication checks and before
    /// the quota, faults and latency. By default every gate is open and nothing is held; only this
    /// call closes one (`fleet-audit sim` never does).
    pub fn hold_after(&self, op: Operation, n: u64) {
        let gate = &self.gates[op as usize];
        gate.used.store(true, Ordering::SeqCst);
        gate.state.send_modify(|g| g.pass = Some(n));
    }

    /// Opens `op`'s gate: the requests it holds go on, and later ones pass.
    pub fn release(&self, op: Operation) {
        self.gates[op as usize].state.send_modify(|g| g.pass = None);
    }

    /// Requests of `op` held at its gate now.
    pub fn held(&self, op: Operation) -> u64 {
        self.gates[op as usize].state.borrow().held
    }

    /// Waits until at least `n` requests of `op` are held at its gate.
    pub async fn until_held(&self, op: Operation, n: u64) {
        let mut rx = self.gates[op as usize].state.subscribe();
        // The sender lives as long as the simulator, which outlives this borrow.
        let _ = rx.wait_for(|g| g.held >= n).await;
    }

    /// Passes `op`'s gate: at once while it is open, else when it lets this request through.
    pub(crate) async fn pass_gate(&self, op: Operation) {
        let cell = &self.gates[op as usize];
        if !cell.used.load(Ordering::SeqCst) {
            return;
        }
        let mut rx = cell.state.subscribe();
        let mut waiting: Option<Waiting> = None;
        loop {
            let (mut through, mut held_now) = (false, false);
            cell.state.send_if_modified(|g| {
                through = match g.pass {
                    None => true,
                    Some(0) => false,
                    Some(n) => {
                        g.pass = Some(n - 1);
                        true
                    }
                };
                if !through && waiting.is_none() {
                    g.held += 1;
                    held_now = true;
                }
                held_now || (through && g.pass.is_some())
            });
            if through {
                // Dropping the guard, if any, takes this request off the held count.
                return;
            }
            if held_now {
                waiting = Some(Waiting(&cell.state));
            }
            // Woken by any change (a release, another request held); the loop looks again.
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn times(a: &[AtomicU64; OPERATIONS]) -> BTreeMap<String, u64> {
    Operation::ALL
        .iter()
        .map(|op| {
            (
                op.name().to_string(),
                a[*op as usize].load(Ordering::Relaxed),
            )
        })
        .filter(|(_, t)| *t > 0)
        .collect()
}

/// A running simulator: its address, its state, and the means to stop it.
pub struct SimServer {
    addr: SocketAddr,
    sim: Arc<Simulator>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Serves `config`'s fleet on `listener` (bind it to `127.0.0.1:0` for a free port) until
    /// [`SimServer::stop`] or drop.
    pub fn start(config: SimConfig, listener: TcpListener) -> std::io::Result<SimServer> {
        let addr = listener.local_addr()?;
        let sim = Arc::new(Simulator::new(config));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, sim.clone(), async {
            let _ = rx.await;
        }));
        Ok(SimServer {
            addr,
            sim,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, for `--endpoint-url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.sim.stats()
    }

    /// Stops accepting, closes every connection, and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Simulator {
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
            quota_rps: None,
            quota_burst: None,
            remediation_quota_rps: None,
            context_quota_rps: None,
            indexing: Default::default(),
            latency: Latency::None,
            faults: Faults::default(),
            org: Default::default(),
        })
    }

    #[tokio::test]
    async fn a_gate_lets_n_through_holds_the_rest_until_released() {
        let sim = Arc::new(tiny());
        let op = Operation::DescribeJobExecution;
        // Open by default: nothing waits.
        sim.pass_gate(op).await;
        sim.hold_after(op, 2);
        sim.pass_gate(op).await;
        sim.pass_gate(op).await;
        let passed = Arc::new(AtomicU64::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (s, p) = (sim.clone(), passed.clone());
                tokio::spawn(async move {
                    s.pass_gate(op).await;
                    p.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        sim.until_held(op, 3).await;
        assert_eq!((sim.held(op), passed.load(Ordering::SeqCst)), (3, 0));
        // Other operations have their own gate.
        sim.pass_gate(Operation::ListJobs).await;
        // One more let through: one waiter goes, two stay (this runtime has one thread, so every
        // waiter woken has run by the time the yields end).
        sim.hold_after(op, 1);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!((sim.held(op), passed.load(Ordering::SeqCst)), (2, 1));
        sim.release(op);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(passed.load(Ordering::SeqCst), 3);
        assert_eq!(sim.held(op), 0);
        sim.pass_gate(op).await;
        // A held request whose client goes away is no longer counted.
        sim.hold_after(op, 0);
        let s = sim.clone();
        let gone = tokio::spawn(async move { s.pass_gate(op).await });
        sim.until_held(op, 1).await;
        gone.abort();
        let _ = gone.await;
        assert_eq!(sim.held(op), 0);
    }

    #[test]
    fn latency_parses_fixed_and_distribution() {
        assert_eq!("0".parse::<Latency>().unwrap(), Latency::None);
        assert_eq!(
            "5".parse::<Latency>().unwrap(),
            Latency::Fixed(Duration::from_millis(5))
        );
        let d: Latency = "5,40".parse().unwrap();
        assert!(matches!(d, Latency::Distribution { .. }));
        assert!("40,5".parse::<Latency>().is_err());
        assert!("x".parse::<Latency>().is_err());
        // The median of many samples sits near the configured median.
        let mut v: Vec<f64> = (0..4001)
            .map(|_| d.sample().unwrap().as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!((4.0..6.0).contains(&v[2000]), "median {}", v[2000]);
        assert!((25.0..65.0).contains(&v[3960]), "p99 {}", v[3960]);
    }
}
