//! How one execution's story is drawn: the status it reaches, and the timestamps, version, details
//! and retry count that go with that status.
//!
//! It is apart from the fleet's job table, names and lookups so that each status's story reads on its
//! own. Every function takes the execution's one [`Draw`] stream and draws from it in a fixed order
//! (the status first, then that status's own values), because the fleet must be the same for a seed
//! on every run and every machine: changing the order of draws here changes every fleet.

use super::{drawn, Draw, Execution, FleetSpec, Job, DAY_MS, HOUR_MS, MINUTE_MS};

const FAILED_DETAILS: [(&str, &str); 4] = [
    ("errorCode", "E_CHECKSUM"),
    ("errorCode", "E_NO_SPACE"),
    ("errorCode", "E_FLASH_WRITE"),
    ("errorCode", "E_SIGNATURE"),
];
const PROGRESS_STEPS: [&str; 4] = ["downloading", "verifying", "installing", "rebooting"];
const PROGRESS_PCT: [&str; 5] = ["5%", "25%", "50%", "75%", "95%"];

/// The times an execution's story is drawn against.
pub(super) struct Clock {
    /// The fleet's now: every timestamp lies at or before it.
    pub(super) now: u64,
    /// When the execution was first queued.
    pub(super) queued_at: u64,
    /// Time from queued to now, at least 1 ms.
    pub(super) job_age: u64,
    /// The job's in-progress timeout, when it has one.
    pub(super) timeout_ms: Option<u64>,
}

impl Clock {
    /// When a started execution started: some seconds to hours after it was queued.
    fn started(&self, d: &mut Draw) -> u64 {
        self.queued_at + d.range(1_000, (self.job_age / 2).max(2_000))
    }
}

/// The status the story leads to, before a canceled job or the future-status share rewrites it: the
/// natural mix, or with `active_share` that share active and the rest the terminal part of the mix.
/// `held`: the thing never picks up work (offline, or its agent ignores it), so an active execution
/// stays queued.
pub(super) fn kind(spec: &FleetSpec, job: &Job, held: bool, d: &mut Draw) -> &'static str {
    let roll = d.range(0, 1000);
    if let Some(p) = spec.active_share {
        let active = d.range(0, 1_000_000) < (p.clamp(0.0, 1.0) * 1_000_000.0) as u64;
        match (active, held || roll.is_multiple_of(2)) {
            (true, true) => "QUEUED",
            (true, false) => "IN_PROGRESS",
            // The terminal part of the natural mix, stretched over all of `roll`.
            (false, _) => match roll * 830 / 1000 {
                0..=679 => "SUCCEEDED",
                680..=739 => "FAILED",
                740..=769 => "TIMED_OUT",
                770..=789 => "REJECTED",
                790..=799 => "REMOVED",
                _ => "CANCELED",
            },
        }
    } else if held && job.status != "CANCELED" {
        "QUEUED"
    } else {
        match roll {
            0..=679 => "SUCCEEDED",
            680..=739 => "FAILED",
            740..=769 => "TIMED_OUT",
            770..=789 => "REJECTED",
            790..=799 => "REMOVED",
            800..=829 => "CANCELED",
            830..=909 => "IN_PROGRESS",
            _ => "QUEUED",
        }
    }
}

/// QUEUED: offline things have sat in the queue since the job began; a few online ones were
/// re-queued recently.
pub(super) fn queued(e: &mut Execution, d: &mut Draw, c: &Clock, offline: bool) {
    if !offline {
        e.queued_at_ms = c
            .now
            .saturating_sub(d.range(MINUTE_MS, 6 * HOUR_MS))
            .max(c.queued_at);
        e.last_updated_at_ms = e.queued_at_ms;
    }
    e.approximate_seconds_before_timed_out = c.timeout_ms.map(|t| (t / 1000) as i64);
}

/// IN_PROGRESS: inside the job's timer when it has one, else anywhere from just updated to silent
/// for days.
pub(super) fn in_progress(e: &mut Execution, d: &mut Draw, c: &Clock) {
    let (now, queued_at) = (c.now, c.queued_at);
    let started;
    let last;
    if let Some(t) = c.timeout_ms {
        // Still inside the in-progress timer.
        started = now.saturating_sub(d.range(MINUTE_MS, t)).max(queued_at + 1);
        last = d.range(started, now.max(started + 1));
        let remaining = t.saturating_sub(now - started) / 1000;
        e.approximate_seconds_before_timed_out = Some(remaining as i64);
    } else {
        // No timer: some progress recently, some silent for hours or days.
        started = c.started(d);
        last = if d.range(0, 2) == 0 {
            now.saturating_sub(d.range(MINUTE_MS, 30 * MINUTE_MS))
        } else {
            now.saturating_sub(d.range(2 * HOUR_MS, 3 * DAY_MS))
        }
        .max(started);
    }
    e.status = "IN_PROGRESS";
    e.started_at_ms = Some(started);
    e.last_updated_at_ms = last;
    e.version_number = d.range(2, 7) as i64;
    e.details = drawn(&[
        ("step", PROGRESS_STEPS[d.range(0, 4) as usize]),
        ("progress", PROGRESS_PCT[d.range(0, 5) as usize]),
    ]);
}

/// IN_PROGRESS on a device stuck on it: started some time after it was queued, and not updated
/// for days since.
pub(super) fn stalled(e: &mut Execution, d: &mut Draw, c: &Clock) {
    let started = c.started(d);
    e.status = "IN_PROGRESS";
    e.started_at_ms = Some(started);
    e.last_updated_at_ms = c
        .now
        .saturating_sub(d.range(2 * DAY_MS, 10 * DAY_MS))
        .max(started);
    e.version_number = d.range(2, 4) as i64;
    e.details = drawn(&[("step", PROGRESS_STEPS[d.range(0, 4) as usize])]);
}

/// A terminal status: finished some time after it started (a timed-out one when its timer ran out),
/// with the details that status carries. Without a timer a job cannot time out, so TIMED_OUT is
/// FAILED there.
pub(super) fn finished(e: &mut Execution, d: &mut Draw, c: &Clock, terminal: &'static str) {
    let started = c.started(d);
    let finished = match (terminal, c.timeout_ms) {
        ("TIMED_OUT", Some(t)) => started + t,
        _ => started + d.range(10_000, 2 * HOUR_MS),
    }
    .min(c.now);
    e.status = if terminal == "TIMED_OUT" && c.timeout_ms.is_none() {
        "FAILED"
    } else {
        terminal
    };
    e.version_number = d.range(2, 9) as i64;
    e.last_updated_at_ms = finished;
    match e.status {
        "SUCCEEDED" => {
            e.started_at_ms = Some(started);
            e.details = drawn(&[("firmware", "2.4.1")]);
        }
        "FAILED" => {
            e.started_at_ms = Some(started);
            e.details = drawn(&[FAILED_DETAILS[d.range(0, 4) as usize]]);
            e.retry_attempt = d.range(0, 3) as i32;
        }
        "TIMED_OUT" => {
            e.started_at_ms = Some(started);
            e.details = drawn(&[("step", PROGRESS_STEPS[d.range(0, 4) as usize])]);
            e.retry_attempt = d.range(0, 2) as i32;
        }
        "REJECTED" => {
            e.details = drawn(&[("reason", "incompatible hardware revision")]);
        }
        "REMOVED" => {
            e.version_number = 1;
        }
        _ => {
            // CANCELED: half were force-canceled while in progress.
            let forced = d.range(0, 2) == 0;
            e.force_canceled = Some(forced);
            if forced {
                e.started_at_ms = Some(started);
                e.details = drawn(&[("step", "installing")]);
            }
        }
    }
}
