//! What happens to the fleet after its epoch: one deterministic history per seed.
//!
//! The fleet at its epoch is the snapshot `lifecycle` draws. After it, time runs in whole days from
//! the epoch: in each day an active execution (QUEUED or IN_PROGRESS) has an event with the day's
//! probability, at a time drawn inside that day, from a stream keyed by the seed, the pair and the
//! day. Nothing depends on `now` but which events have happened by then, so the same seed and epoch
//! at two moments are one fleet seen twice: unchanged where nothing happened, moved on where
//! something did. An event starts a queued execution, updates a running one (a new version and
//! `lastUpdatedAt`), or finishes it (SUCCEEDED, FAILED); a running execution whose job has an
//! in-progress timer times out when the timer runs out, as AWS does, whatever the draws. A pair with
//! no execution may get one (queued) while its job is still in progress, as a continuous job's do.

use std::borrow::Cow;

use super::{drawn, h3, Draw, Execution, DAY_MS};

/// Keys the history's streams apart from the snapshot's.
const HISTORY: u64 = 0x4849_5354_4F52_5921;

/// Per-day probabilities, in millionths.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    /// That an active execution has an event in a given day.
    pub(super) event: u64,
    /// That a pair without an execution, of a job still in progress, gets one in a given day.
    pub(super) new: u64,
}

impl Rates {
    /// With `changed_share`, the share of all executions with an event in a day: events happen to
    /// active executions, so each active one's chance is that share over the active share (the
    /// fleet's own, or about a fifth in the natural mix). Without it, the natural rate: three active
    /// executions in ten move on each day.
    pub(super) fn new(changed_share: Option<f64>, active_share: Option<f64>) -> Rates {
        let event = match changed_share {
            Some(p) => {
                let active = active_share.unwrap_or(0.2).max(1e-6);
                (p / active).clamp(0.0, 1.0)
            }
            None => 0.3,
        };
        let event = (event * 1_000_000.0).round() as u64;
        Rates {
            event,
            new: event / 20,
        }
    }
}

/// The moments a history is read between.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) seed: u64,
    pub(super) epoch: u64,
    pub(super) now: u64,
    /// The job's in-progress timer, when it has one.
    pub(super) timeout_ms: Option<u64>,
}

fn day_draw(s: &Span, thing: u64, job: u32, day: u64, salt: u64) -> Draw {
    Draw(h3(
        s.seed ^ HISTORY ^ salt,
        thing,
        (u64::from(job) + 1) | (day << 32),
    ))
}

/// The days after the epoch that have begun by `now`.
fn days(s: &Span) -> u64 {
    s.now.saturating_sub(s.epoch).div_ceil(DAY_MS)
}

/// When a pair without an execution at the epoch gets one (queued), if it has by `now`.
pub(super) fn new_execution_at(s: &Span, rates: Rates, thing: u64, job: u32) -> Option<u64> {
    (0..days(s)).find_map(|day| {
        let mut d = day_draw(s, thing, job, day, 0x4E45_5700);
        if d.range(0, 1_000_000) >= rates.new {
            return None;
        }
        let t = s.epoch + day * DAY_MS + d.range(1, DAY_MS + 1);
        (t <= s.now).then_some(t)
    })
}

/// Plays the execution's events after the epoch (or after `from`, when it was queued later) up to
/// `now`.
pub(super) fn advance(e: &mut Execution, s: &Span, rates: Rates, from: u64) {
    let deadline = |e: &Execution| match (e.status, e.started_at_ms, s.timeout_ms) {
        ("IN_PROGRESS", Some(started), Some(t)) => Some(started + t),
        _ => None,
    };
    for day in 0..days(s) {
        if !matches!(e.status, "QUEUED" | "IN_PROGRESS") {
            break;
        }
        let mut d = day_draw(s, e.thing_index, e.job_index, day, 0);
        if d.range(0, 1_000_000) >= rates.event {
            continue;
        }
        let t = s.epoch + day * DAY_MS + d.range(1, DAY_MS + 1);
        if t > s.now {
            break;
        }
        if t <= from {
            continue;
        }
        if let Some(end) = deadline(e).filter(|end| *end <= t) {
            timed_out(e, end);
            break;
        }
        event(e, &mut d, t);
    }
    if let Some(end) = deadline(e).filter(|end| *end <= s.now) {
        timed_out(e, end);
    }
    e.approximate_seconds_before_timed_out = match (e.status, s.timeout_ms) {
        // The in-progress timer runs from the start; a queued execution's has not started.
        ("IN_PROGRESS", Some(_)) => {
            deadline(e).map(|end| (end.saturating_sub(s.now) / 1000) as i64)
        }
        ("QUEUED", Some(t)) => Some((t / 1000) as i64),
        _ => None,
    };
}

/// A queued execution started at `t` by its device (one back online).
pub(super) fn picked_up(e: &mut Execution, t: u64, s: &Span) {
    e.status = "IN_PROGRESS";
    e.started_at_ms = Some(t);
    e.last_updated_at_ms = t;
    e.version_number += 1;
    e.details = drawn(&[("step", "downloading"), ("progress", "5%")]);
    e.approximate_seconds_before_timed_out = s.timeout_ms.map(|m| (m / 1000) as i64);
}

/// One event at `t`: a start, an update or a finish.
fn event(e: &mut Execution, d: &mut Draw, t: u64) {
    e.last_updated_at_ms = t;
    e.version_number += 1;
    if e.status == "QUEUED" {
        e.status = "IN_PROGRESS";
        e.started_at_ms = Some(t);
        e.details = drawn(&[("step", "downloading"), ("progress", "5%")]);
        return;
    }
    match d.range(0, 100) {
        0..=39 => {
            let (step, progress) = match d.range(0, 3) {
                0 => ("verifying", "50%"),
                1 => ("installing", "75%"),
                _ => ("rebooting", "95%"),
            };
            e.details = drawn(&[("step", step), ("progress", progress)]);
        }
        40..=84 => {
            e.status = "SUCCEEDED";
            e.details = drawn(&[("firmware", "2.4.1")]);
        }
        _ => {
            e.status = "FAILED";
            e.details = drawn(&[("errorCode", "E_FLASH_WRITE")]);
        }
    }
}

/// AWS's own timeout of a running execution, at `end`.
fn timed_out(e: &mut Execution, end: u64) {
    let step = e
        .details
        .as_ref()
        .and_then(|d| d.iter().find(|(k, _)| k == "step").map(|(_, v)| v.clone()))
        .unwrap_or(Cow::Borrowed("downloading"));
    e.status = "TIMED_OUT";
    e.last_updated_at_ms = end;
    e.version_number += 1;
    e.details = Some(vec![(Cow::Borrowed("step"), step)]);
}

/// A new execution queued at `t`.
pub(super) fn queued_at(e: &mut Execution, t: u64, s: &Span) {
    e.queued_at_ms = t;
    e.last_updated_at_ms = t;
    e.approximate_seconds_before_timed_out = s.timeout_ms.map(|t| (t / 1000) as i64);
}
