//! The simulated fleet: a deterministic function of `(seed, things, jobs, epoch, now)`.
//!
//! Nothing per execution is stored. Every job's and every execution's attributes are derived on demand
//! from a keyed hash of the seed and the indices, so a fleet of millions of things starts at once, takes
//! no memory, and is the same on every machine. Only the per-job status counts that DescribeJob reports
//! (a full scan of the things) are computed lazily and cached.
//!
//! This file holds the fleet's shape: the job table, names, ARNs and lookups. How one execution's
//! status, timestamps and details are drawn at the epoch is in `fleet/lifecycle.rs`; what happens to
//! it after the epoch, up to `now`, in `fleet/history.rs`; what callers did to it (cancelled or
//! deleted executions, the clock moved forward) in `fleet/changes.rs`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

mod changes;
mod history;
mod lifecycle;
mod things;

pub use changes::{Cancel, Refusal};
pub use things::{Behaviour, Thing};

/// A status detail's name and value: drawn by the fleet (static) or set by a caller.
pub type Detail = (Cow<'static, str>, Cow<'static, str>);

/// Details drawn by the fleet.
fn drawn(pairs: &[(&'static str, &'static str)]) -> Option<Vec<Detail>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
            .collect(),
    )
}

/// AWS's own spelling of the job execution statuses.
pub(crate) use crate::input::names::JOB_EXECUTION_STATUSES as STATUSES;

/// A status value AWS does not send today; the fleet reports it for a configurable share of executions
/// so that clients can be tested against a value added later.
pub(crate) const FUTURE_STATUS: &str = "PAUSED";

/// Account id in every ARN the simulator makes.
pub(crate) const ACCOUNT_ID: &str = "123456789012";

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
/// A windowed job's maintenance window: daily from 02:00 UTC, two hours.
pub(crate) const WINDOW_START_MS: u64 = 2 * HOUR_MS;
pub(crate) const WINDOW_MS: u64 = 2 * HOUR_MS;

/// The parameters that fully determine a fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Number of things, named `thing-000000` upwards.
    pub things: u64,
    /// Number of jobs, named `job-000` upwards.
    pub jobs: u32,
    /// Seed of every derived attribute.
    pub seed: u64,
    /// The fleet's "now" in epoch milliseconds when it starts: every timestamp lies at or before it.
    /// The clock moves on only when asked ([`Fleet::advance`]).
    pub now_ms: u64,
    /// When the fleet's history begins (epoch milliseconds, at or before `now_ms`; `None`: `now_ms`).
    /// The fleet at its epoch is a snapshot; later moments of the same seed and epoch replay the
    /// events between (see `fleet/history.rs`).
    pub epoch_ms: Option<u64>,
    /// Share (0..=1) of executions with an event in each day after the epoch (`None`: the natural
    /// rate, three in ten active executions a day).
    pub changed_share: Option<f64>,
    /// Region in ARNs.
    pub region: String,
    /// Share (0..=1) of executions that report [`FUTURE_STATUS`] instead of their real status.
    pub future_status: f64,
    /// Share (0..=1) of executions that are active (QUEUED or IN_PROGRESS), instead of the natural
    /// mix (about a fifth); jobs that were canceled still cancel theirs.
    pub active_share: Option<f64>,
}

/// Per-job attributes derived from the seed.
#[derive(Debug, Clone)]
pub struct Job {
    pub index: u32,
    pub id: String,
    pub created_at_ms: u64,
    /// `COMPLETED`, `IN_PROGRESS` or `CANCELED` as AWS spells JobStatus.
    pub status: &'static str,
    /// `timeoutConfig.inProgressTimeoutInMinutes`, when the job has one.
    pub timeout_minutes: Option<u64>,
    /// A job in progress with a daily maintenance window (`schedulingConfig`): outside it the job
    /// is SCHEDULED (see [`Fleet::job_status`]).
    pub windowed: bool,
    /// `jobExecutionsRolloutConfig.maximumPerMinute`, when the job rolls out gradually.
    pub rollout_per_minute: Option<u32>,
    /// Share of things targeted, in thousandths.
    coverage_permille: u64,
}

/// One job execution, as DescribeJobExecution reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub thing_index: u64,
    pub job_index: u32,
    pub status: &'static str,
    pub force_canceled: Option<bool>,
    /// `None` means the answer carries `"statusDetails": {}` (no detailsMap).
    pub details: Option<Vec<Detail>>,
    pub queued_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub last_updated_at_ms: u64,
    pub execution_number: i64,
    pub version_number: i64,
    pub approximate_seconds_before_timed_out: Option<i64>,
    pub retry_attempt: i32,
}

impl Execution {
    /// A new execution of job `j` on thing `i`, queued at `t`.
    fn queued(i: u64, j: u32, t: u64) -> Execution {
        Execution {
            thing_index: i,
            job_index: j,
            status: "QUEUED",
            force_canceled: None,
            details: None,
            queued_at_ms: t,
            started_at_ms: None,
            last_updated_at_ms: t,
            execution_number: i64::from(j) + 1,
            version_number: 1,
            approximate_seconds_before_timed_out: None,
            retry_attempt: 0,
        }
    }
}

/// Per-job counts by status, as DescribeJob's jobProcessDetails reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatusCounts {
    /// Indexed like [`STATUSES`]; executions in [`FUTURE_STATUS`] are not counted by AWS's fields.
    pub by_status: [u64; 8],
}

/// A generated fleet. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Fleet {
    spec: FleetSpec,
    jobs: Vec<Job>,
    thing_width: usize,
    /// Per job, its status counts once computed (cleared when the clock moves).
    counts: Vec<Mutex<Option<StatusCounts>>>,
    rates: history::Rates,
    /// The fleet's now, epoch milliseconds.
    now_ms: AtomicU64,
    changes: changes::Changes,
}

/// splitmix64: a fast, well-mixed, portable 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn h3(seed: u64, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed) ^ a) ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// Draws successive independent values from one key.
struct Draw(u64);
impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

impl Fleet {
    /// Builds the fleet's job table; executions are derived on demand.
    pub fn new(spec: FleetSpec) -> Self {
        let jobs = (0..spec.jobs)
            .map(|j| {
                let mut d = Draw(h3(spec.seed, 0x6A6F_6273, u64::from(j)));
                let age_days = d.range(2, 30);
                let created_at_ms = spec
                    .epoch_ms
                    .unwrap_or(spec.now_ms)
                    .saturating_sub(age_days * DAY_MS + d.range(0, DAY_MS));
                let status = match d.range(0, 10) {
                    0..=6 => "IN_PROGRESS",
                    7 | 8 => "COMPLETED",
                    _ => "CANCELED",
                };
                // Half the jobs have an in-progress timeout, so both kinds exist in any fleet of 2+ jobs.
                let timeout_minutes = match j % 4 {
                    0 => Some(30),
                    2 => Some(120),
                    _ => None,
                };
                let coverage_permille = d.range(500, 1001);
                Job {
                    index: j,
                    id: format!("job-{j:03}"),
                    created_at_ms,
                    status,
                    timeout_minutes,
                    windowed: status == "IN_PROGRESS" && j % 5 == 3,
                    rollout_per_minute: (j % 3 == 0).then_some(100),
                    coverage_permille,
                }
            })
            .collect();
        let digits = spec.things.saturating_sub(1).to_string().len();
        Fleet {
            thing_width: digits.max(6),
            counts: (0..spec.jobs).map(|_| Mutex::new(None)).collect(),
            rates: history::Rates::new(spec.changed_share, spec.active_share),
            now_ms: AtomicU64::new(spec.now_ms),
            changes: changes::Changes::default(),
            spec,
            jobs,
        }
    }

    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The name of thing `i`.
    pub fn thing_name(&self, i: u64) -> String {
        format!("thing-{i:0width$}", width = self.thing_width)
    }

    /// The index of a thing name this fleet holds, or `None`.
    pub fn thing_index(&self, name: &str) -> Option<u64> {
        let digits = name.strip_prefix("thing-")?;
        if digits.len() != self.thing_width || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i: u64 = digits.parse().ok()?;
        (i < self.spec.things).then_some(i)
    }

    /// The index of a job id this fleet holds, or `None`.
    pub fn job_index(&self, id: &str) -> Option<u32> {
        let digits = id.strip_prefix("job-")?;
        if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let j: u32 = digits.parse().ok()?;
        // `job-7` and `job-0007` are not `job-007`.
        (j < self.spec.jobs && format!("{j:03}") == digits).then_some(j)
    }

    pub fn thing_arn(&self, i: u64) -> String {
        format!(
            "arn:aws:iot:{}:{ACCOUNT_ID}:thing/{}",
            self.spec.region,
            self.thing_name(i)
        )
    }

    pub(crate) fn job_arn(&self, j: u32) -> String {
        format!(
            "arn:aws:iot:{}:{ACCOUNT_ID}:job/{}",
            self.spec.region, self.jobs[j as usize].id
        )
    }

    /// The row an audit writes for thing `i` and job `j` when its first call is answered: the
    /// execution as DescribeJobExecution reports it, or `not_found` with AWS's message. For benchmarks
    /// and generated datasets that need realistic rows without a network.
    pub fn audit_row(&self, i: u64, j: u32, fetched_at_ms: i64) -> crate::dataset::schema::Row {
        use crate::aws::client::{CallError, ExecutionRecord};
        use crate::dataset::schema::{Outcome, Row, Source};
        let thing_name = self.thing_name(i);
        let job_id = self.jobs[j as usize].id.clone();
        let (outcome, error, execution) = match self.execution(i, j) {
            Some(e) => (
                Outcome::Ok,
                None,
                Some(ExecutionRecord {
                    job_id: Some(job_id.clone()),
                    status: Some(e.status.to_string()),
                    force_canceled: e.force_canceled,
                    status_details: e.details.map(|d| {
                        let mut v: Vec<(String, String)> = d
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        v.sort();
                        v
                    }),
                    thing_arn: Some(self.thing_arn(i)),
                    queued_at_ms: Some(e.queued_at_ms as i64),
                    started_at_ms: e.started_at_ms.map(|t| t as i64),
                    last_updated_at_ms: Some(e.last_updated_at_ms as i64),
                    execution_number: Some(e.execution_number),
                    version_number: Some(e.version_number),
                    approximate_seconds_before_timed_out: e.approximate_seconds_before_timed_out,
                }),
            ),
            None => (
                Outcome::NotFound,
                Some(CallError::Service {
                    code: "ResourceNotFoundException".into(),
                    message: format!(
                        "Job Execution for job {job_id} on thing {thing_name} does not exist"
                    ),
                    http_status: 404,
                }),
                None,
            ),
        };
        Row {
            thing_name,
            job_id,
            requested_execution_number: None,
            outcome,
            error,
            attempts: 1,
            fetched_at_ms,
            execution,
            source: Source::Describe,
            retry_attempt: None,
            origin: None,
            carried_from: None,
            context: Default::default(),
        }
    }

    /// The fleet's epoch: when its history begins.
    pub fn epoch_ms(&self) -> u64 {
        self.spec.epoch_ms.unwrap_or(self.spec.now_ms)
    }

    /// The fleet's now (epoch milliseconds): its start, moved on by [`Fleet::advance`].
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }

    /// Moves the clock `ms` forward: the fleet moves on as its history says. Returns the new now.
    pub fn advance(&self, ms: u64) -> u64 {
        let now = self.now_ms.fetch_add(ms, Ordering::AcqRel) + ms;
        for c in &self.counts {
            *c.lock().expect("counts lock") = None;
        }
        now
    }

    /// CancelJobExecution of job `j` on thing `i`, now; AWS's refusals otherwise.
    pub fn cancel(&self, i: u64, j: u32, req: &Cancel) -> Result<(), Refusal> {
        self.change(j, |now| {
            self.changes
                .cancel((i, j), now, req, || self.history_execution(i, j, now))
        })
    }

    /// DeleteJobExecution of execution `number` of job `j` on thing `i`; AWS's refusals otherwise.
    pub fn delete(&self, i: u64, j: u32, number: i64, force: bool) -> Result<(), Refusal> {
        self.change(j, |now| {
            self.changes
                .delete((i, j), number, force, || self.history_execution(i, j, now))
        })
    }

    /// Makes a change to one of job `j`'s executions, and moves the job's counts with it. The
    /// counts are locked first, as [`Fleet::status_counts`] does, so a count being made sees the
    /// change whole or not at all.
    fn change(
        &self,
        j: u32,
        make: impl FnOnce(u64) -> Result<changes::Moved, Refusal>,
    ) -> Result<(), Refusal> {
        let Some(cell) = self.counts.get(j as usize) else {
            return Err(Refusal::NotFound(String::new()));
        };
        let mut counts = cell.lock().expect("counts lock");
        let (from, to) = make(self.now_ms())?;
        if let Some(c) = counts.as_mut() {
            let at = |s: &str| STATUSES.iter().position(|x| *x == s);
            if let Some(k) = at(from) {
                c.by_status[k] -= 1;
            }
            if let Some(k) = to.and_then(at) {
                c.by_status[k] += 1;
            }
        }
        Ok(())
    }

    /// How many executions callers cancelled or deleted.
    pub fn changed(&self) -> usize {
        self.changes.len()
    }

    /// How many executions received a cancel or delete (carried out or refused), and the most
    /// such calls any one of them received.
    pub fn change_calls(&self) -> (usize, u32) {
        self.changes.calls()
    }

    /// The execution of job `j` on thing `i`, or `None` when the job does not target the thing (or a
    /// caller deleted it).
    pub fn execution(&self, i: u64, j: u32) -> Option<Execution> {
        let now = self.now_ms();
        self.changes.apply(i, j, self.history_execution(i, j, now))
    }

    /// The execution of job `j` on thing `i` at `now` as the fleet's history has it.
    fn history_execution(&self, i: u64, j: u32, now: u64) -> Option<Execution> {
        if i >= self.spec.things || j >= self.spec.jobs {
            return None;
        }
        let job = &self.jobs[j as usize];
        let mut d = Draw(h3(self.spec.seed, i, u64::from(j) + 1));
        let span = history::Span {
            seed: self.spec.seed,
            epoch: self.epoch_ms(),
            now,
            timeout_ms: job.timeout_minutes.map(|m| m * MINUTE_MS),
        };
        let mut e = if d.range(0, 1000) < job.coverage_permille {
            self.snapshot(i, j, &mut d, &span)
        } else if job.status == "IN_PROGRESS" {
            // Not targeted at the epoch; a job still in progress may reach the thing later.
            let t = history::new_execution_at(&span, self.rates, i, j)?;
            let mut e = Execution::queued(i, j, t);
            history::queued_at(&mut e, t, &span);
            e
        } else {
            return None;
        };
        // Only a device that takes its jobs moves its executions on: a normal one from the epoch, an
        // offline one from when it comes back; the others' stay as they were.
        let online_from = match self.behaviour(i) {
            Behaviour::Normal => Some(span.epoch),
            Behaviour::Offline => self.reconnects_at(i),
            Behaviour::Ignoring | Behaviour::Stalled => None,
        };
        if let Some(online) = online_from.filter(|t| span.now > *t) {
            let mut from = e.queued_at_ms.max(online);
            // A device back online picks up what waited for it, a few minutes later.
            if online > span.epoch && e.status == "QUEUED" {
                let t =
                    online + h3(self.spec.seed, 0x7069_636B, i ^ u64::from(j)) % (30 * MINUTE_MS);
                if t <= span.now {
                    history::picked_up(&mut e, t, &span);
                    from = t;
                }
            }
            history::advance(&mut e, &span, self.rates, from);
        }
        // The future-status share is drawn last, so turning it on does not change any other draw.
        if self.spec.future_status > 0.0 {
            let p = (self.spec.future_status * 1_000_000.0) as u64;
            if d.range(0, 1_000_000) < p {
                e.status = FUTURE_STATUS;
                e.approximate_seconds_before_timed_out = None;
            }
        }
        Some(e)
    }

    /// The execution of a targeted pair as it stood at the epoch.
    fn snapshot(&self, i: u64, j: u32, d: &mut Draw, span: &history::Span) -> Execution {
        let job = &self.jobs[j as usize];
        let now = span.epoch;
        let queued_at = job.created_at_ms + d.range(0, 10 * MINUTE_MS);
        let clock = lifecycle::Clock {
            now,
            queued_at,
            job_age: now.saturating_sub(queued_at).max(1),
            timeout_ms: span.timeout_ms,
        };
        let mut e = Execution::queued(i, j, queued_at);
        let behaviour = self.behaviour(i);
        let held = matches!(behaviour, Behaviour::Offline | Behaviour::Ignoring);
        let kind = lifecycle::kind(&self.spec, job, held, d);
        // A stalled device is stuck on its jobs without a timer, and the rest wait behind them.
        let stalled = match behaviour {
            Behaviour::Stalled => matches!(kind, "QUEUED" | "IN_PROGRESS"),
            // Half the offline devices went away in the middle of a job without a timer.
            Behaviour::Offline => {
                kind == "QUEUED"
                    && job.timeout_minutes.is_none()
                    && h3(self.spec.seed, 0x6D69_6473, i).is_multiple_of(2)
            }
            _ => false,
        };
        match kind {
            _ if stalled && job.timeout_minutes.is_none() => lifecycle::stalled(&mut e, d, &clock),
            _ if stalled => lifecycle::queued(&mut e, d, &clock, true),
            "QUEUED" => lifecycle::queued(&mut e, d, &clock, held),
            "IN_PROGRESS" => lifecycle::in_progress(&mut e, d, &clock),
            terminal => lifecycle::finished(&mut e, d, &clock, terminal),
        }
        // A bad combination for the rollouts to find: model M200 on firmware 1.2.0 fails half its
        // updates (`report --group-by attribute:firmware`).
        if e.status == "SUCCEEDED"
            && self.bad_combination(i)
            && h3(self.spec.seed, 0x6661_696C, (i << 20) | u64::from(j)).is_multiple_of(2)
        {
            e.status = "FAILED";
            e.details = drawn(&[("errorCode", "E_FLASH_WRITE")]);
        }
        // A canceled job cancels what was still active.
        if job.status == "CANCELED" && matches!(e.status, "QUEUED" | "IN_PROGRESS") {
            e.force_canceled = Some(e.status == "IN_PROGRESS");
            e.status = "CANCELED";
            e.approximate_seconds_before_timed_out = None;
            e.version_number += 1;
        }
        e
    }

    /// Counts of job `j`'s executions by status (computed once, then kept until the clock moves).
    pub(crate) fn status_counts(&self, j: u32) -> StatusCounts {
        let mut cell = self.counts[j as usize].lock().expect("counts lock");
        cell.get_or_insert_with(|| {
            let mut c = StatusCounts::default();
            for i in 0..self.spec.things {
                if let Some(e) = self.execution(i, j) {
                    if let Some(k) = STATUSES.iter().position(|s| *s == e.status) {
                        c.by_status[k] += 1;
                    }
                }
            }
            c
        })
        .clone()
    }

    /// Job `j`'s status now, as DescribeJob reports it: a windowed job in progress is SCHEDULED
    /// outside its daily window (02:00 to 04:00 UTC).
    pub fn job_status(&self, j: u32) -> &'static str {
        let job = &self.jobs[j as usize];
        let in_window =
            (WINDOW_START_MS..WINDOW_START_MS + WINDOW_MS).contains(&(self.now_ms() % DAY_MS));
        if job.windowed && !in_window {
            "SCHEDULED"
        } else {
            job.status
        }
    }

    /// Timestamp of the job's last update: the latest execution update, bounded by now.
    pub(crate) fn job_last_updated_ms(&self, j: u32) -> u64 {
        let job = &self.jobs[j as usize];
        (job.created_at_ms + DAY_MS).min(self.now_ms())
    }
}

#[cfg(test)]
mod tests;
