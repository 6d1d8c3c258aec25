//! What changed since the previous audit: `report CURRENT --baseline PREVIOUS`.
//!
//! On a large fleet the absolute counts never reach zero, so an alert on them is noise; the change is
//! what an operator acts on. The baseline is read first into a compact map (pair -> status, whether
//! stuck, when fetched: a few dozen bytes a pair); the current dataset is then streamed once, and
//! each of its rows compared with its pair's baseline row.
//!
//! - `new_stuck`: stuck now (`stuck_queued` or `stale_in_progress`), not stuck or absent before;
//! - stuck before, in the dataset now and not stuck, split by what became of it (a stuck execution
//!   that timed out is no good news): `recovered` (SUCCEEDED, or QUEUED / IN_PROGRESS and moving
//!   again), `ended_timed_out` (TIMED_OUT), `ended_failed` (FAILED, REJECTED), `ended_canceled`
//!   (CANCELED, REMOVED), `ended_other` (anything else: no status now, a status AWS may add);
//! - `still_stuck`: stuck in both; the baseline's `fetched_at` is when it was first seen stuck;
//! - `new_timed_out`, `new_failed`: TIMED_OUT (FAILED) now, not before or absent;
//! - transitions: status before -> status now, counts; absent before or gone now is `null`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::classify::{classify, Class, Execution};
use super::{ReportError, Thresholds};
use crate::input::pair::pair_key;

/// The change counts of one job, or of all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    /// Stuck now, not stuck (or absent) in the baseline.
    pub new_stuck: u64,
    /// Stuck in the baseline; SUCCEEDED now, or QUEUED / IN_PROGRESS and no longer stuck.
    pub recovered: u64,
    /// Stuck in the baseline, TIMED_OUT now.
    pub ended_timed_out: u64,
    /// Stuck in the baseline, FAILED or REJECTED now.
    pub ended_failed: u64,
    /// Stuck in the baseline, CANCELED or REMOVED now.
    pub ended_canceled: u64,
    /// Stuck in the baseline, not stuck now in any other way (no status, an unknown status).
    pub ended_other: u64,
    /// Stuck in both.
    pub still_stuck: u64,
    /// TIMED_OUT now, not in the baseline.
    pub new_timed_out: u64,
    /// FAILED now, not in the baseline.
    pub new_failed: u64,
}

impl ChangeCounts {
    /// The counts by name, in the order the report shows them.
    pub fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("new_stuck", self.new_stuck),
            ("recovered", self.recovered),
            ("ended_timed_out", self.ended_timed_out),
            ("ended_failed", self.ended_failed),
            ("ended_canceled", self.ended_canceled),
            ("ended_other", self.ended_other),
            ("still_stuck", self.still_stuck),
            ("new_timed_out", self.new_timed_out),
            ("new_failed", self.new_failed),
        ]
    }
}

/// An execution stuck in both audits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillStuck {
    /// The job.
    pub job_id: String,
    /// The thing.
    pub thing_name: String,
    /// When the baseline saw it stuck (its row's `fetched_at`).
    pub first_seen_stuck_ms: i64,
}

/// What changed between the baseline and the dataset reported on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The baseline as the user named it.
    pub baseline: PathBuf,
    /// Over all jobs.
    pub totals: ChangeCounts,
    /// Per job of the current dataset (and of the baseline, for jobs that only recovered), by id.
    pub jobs: BTreeMap<String, ChangeCounts>,
    /// `(status before, status now)` -> executions; `None` before: new; `None` now: gone.
    pub transitions: BTreeMap<(Option<String>, Option<String>), u64>,
    /// The executions stuck longest across the audits, first seen stuck first (at most `top`).
    pub still_stuck_oldest: Vec<StillStuck>,
}

/// A baseline row, as much as the comparison needs.
#[derive(Debug, Clone, Copy)]
struct Before {
    /// Index into `Tracker::statuses`; 0 is "no status".
    status: u16,
    stuck: bool,
    fetched_at_ms: i64,
    seen: bool,
}

/// Compares the rows of a dataset with a baseline's, one row at a time.
#[derive(Debug)]
pub(crate) struct Tracker {
    thresholds: Thresholds,
    statuses: Vec<Option<String>>,
    before: HashMap<u128, Before>,
    changes: Changes,
    still: Vec<StillStuck>,
}

fn stuck(e: &Execution<'_>, t: &Thresholds) -> bool {
    let c = classify(e, t);
    c.contains(Class::StuckQueued) || c.contains(Class::StaleInProgress)
}

impl Tracker {
    /// Reads the baseline at `path` (`name` names it in the report).
    pub(crate) fn from_baseline(
        path: &Path,
        name: &Path,
        thresholds: &Thresholds,
    ) -> Result<Tracker, ReportError> {
        let mut t = Tracker::empty(name, thresholds);
        super::read::for_each_execution(path, super::BATCH_ROWS, |e| {
            let status = t.intern(e.status);
            let b = Before {
                status,
                stuck: stuck(e, &t.thresholds),
                fetched_at_ms: e.fetched_at_ms.unwrap_or(0),
                seen: false,
            };
            t.before.insert(pair_key(e.thing_name, e.job_id), b);
        })?;
        Ok(t)
    }

    fn empty(name: &Path, thresholds: &Thresholds) -> Tracker {
        Tracker {
            thresholds: thresholds.clone(),
            statuses: vec![None],
            before: HashMap::new(),
            changes: Changes {
                baseline: name.to_path_buf(),
                totals: ChangeCounts::default(),
                jobs: BTreeMap::new(),
                transitions: BTreeMap::new(),
                still_stuck_oldest: Vec::new(),
            },
            still: Vec::new(),
        }
    }

    fn intern(&mut self, status: Option<&str>) -> u16 {
        let Some(s) = status else { return 0 };
        match self.statuses.iter().position(|x| x.as_deref() == Some(s)) {
            Some(i) => i as u16,
            None => {
                self.statuses.push(Some(s.to_string()));
                (self.statuses.len() - 1) as u16
            }
        }
    }

    /// Compares one row of the current dataset with its baseline row.
    pub fn add(&mut self, e: &Execution<'_>) {
        let now_stuck = stuck(e, &self.thresholds);
        let before = self
            .before
            .get_mut(&pair_key(e.thing_name, e.job_id))
            .map(|b| {
                b.seen = true;
                *b
            });
        let was = |s: &str| {
            before.is_some_and(|b| self.statuses[b.status as usize].as_deref() == Some(s))
        };
        let mut c = ChangeCounts::default();
        match (before.map(|b| b.stuck), now_stuck) {
            (Some(true), true) => c.still_stuck = 1,
            (Some(true), false) => match e.status {
                Some("SUCCEEDED" | "QUEUED" | "IN_PROGRESS") => c.recovered = 1,
                Some("TIMED_OUT") => c.ended_timed_out = 1,
                Some("FAILED" | "REJECTED") => c.ended_failed = 1,
                Some("CANCELED" | "REMOVED") => c.ended_canceled = 1,
                _ => c.ended_other = 1,
            },
            (_, true) => c.new_stuck = 1,
            _ => {}
        }
        c.new_timed_out = u64::from(e.status == Some("TIMED_OUT") && !was("TIMED_OUT"));
        c.new_failed = u64::from(e.status == Some("FAILED") && !was("FAILED"));
        if c.still_stuck == 1 {
            self.still.push(StillStuck {
                job_id: e.job_id.to_string(),
                thing_name: e.thing_name.to_string(),
                first_seen_stuck_ms: before.map_or(0, |b| b.fetched_at_ms),
            });
            // Bounded: keep the `top` first seen (ties by pair), trimmed now and then.
            if self.still.len() > 4 * self.thresholds.top.max(1) {
                self.trim();
            }
        }
        self.count(e.job_id, c);
        let from = before.and_then(|b| self.statuses[b.status as usize].clone());
        let key = (from, e.status.map(str::to_string));
        *self.changes.transitions.entry(key).or_default() += 1;
    }

    fn count(&mut self, job_id: &str, c: ChangeCounts) {
        let add = |t: &mut ChangeCounts| {
            t.new_stuck += c.new_stuck;
            t.recovered += c.recovered;
            t.ended_timed_out += c.ended_timed_out;
            t.ended_failed += c.ended_failed;
            t.ended_canceled += c.ended_canceled;
            t.ended_other += c.ended_other;
            t.still_stuck += c.still_stuck;
            t.new_timed_out += c.new_timed_out;
            t.new_failed += c.new_failed;
        };
        add(&mut self.changes.totals);
        if !self.changes.jobs.contains_key(job_id) {
            self.changes
                .jobs
                .insert(job_id.to_string(), ChangeCounts::default());
        }
        add(self.changes.jobs.get_mut(job_id).expect("inserted above"));
    }

    fn trim(&mut self) {
        self.still.sort_by(|a, b| {
            (a.first_seen_stuck_ms, &a.job_id, &a.thing_name).cmp(&(
                b.first_seen_stuck_ms,
                &b.job_id,
                &b.thing_name,
            ))
        });
        self.still.truncate(self.thresholds.top);
    }

    /// The changes, once every current row was added: baseline rows never matched are gone.
    pub fn finish(mut self) -> Changes {
        for b in self.before.values().filter(|b| !b.seen) {
            let from = self.statuses[b.status as usize].clone();
            *self.changes.transitions.entry((from, None)).or_default() += 1;
        }
        self.trim();
        self.changes.still_stuck_oldest = std::mem::take(&mut self.still);
        self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn row<'a>(thing: &'a str, status: &'a str, fetched: i64, queued: i64) -> Execution<'a> {
        Execution {
            account_id: None,
            region: None,
            job_id: "j",
            thing_name: thing,
            outcome: "ok",
            status: Some(status),
            fetched_at_ms: Some(fetched),
            queued_at_ms: Some(queued),
            last_updated_at_ms: Some(queued),
            seconds_before_timed_out: None,
            ..Default::default()
        }
    }

    #[test]
    fn each_change_is_counted_once_and_gone_rows_are_transitions() {
        let mut t = Tracker::empty(Path::new("b"), &Thresholds::default());
        // Whether each was stuck in the baseline is written out (QUEUED for 10 days: stuck; just
        // updated, or ended: not), not taken from the `stuck` under test.
        let base = [
            (row("stuck-both", "QUEUED", 10 * DAY, 0), true),
            (row("recovers", "QUEUED", 10 * DAY, 0), true),
            (row("fails", "IN_PROGRESS", 10 * DAY, 10 * DAY), false),
            (row("gone", "SUCCEEDED", 10 * DAY, 0), false),
            (row("was-timed-out", "TIMED_OUT", 10 * DAY, 0), false),
            // Stuck, then ended without success: not counted as recovered (issue 23, item 1).
            (row("times-out", "QUEUED", 10 * DAY, 0), true),
            (row("is-rejected", "IN_PROGRESS", 10 * DAY, 0), true),
            (row("is-removed", "QUEUED", 10 * DAY, 0), true),
            (row("vanishes", "QUEUED", 10 * DAY, 0), true),
            (row("moves", "QUEUED", 10 * DAY, 0), true),
        ];
        for (e, stuck) in &base {
            let (e, stuck) = (e, *stuck);
            let status = t.intern(e.status);
            t.before.insert(
                pair_key(e.thing_name, e.job_id),
                Before {
                    status,
                    stuck,
                    fetched_at_ms: 10 * DAY,
                    seen: false,
                },
            );
        }
        for e in [
            row("stuck-both", "QUEUED", 11 * DAY, 0),
            row("recovers", "SUCCEEDED", 11 * DAY, 0),
            row("fails", "FAILED", 11 * DAY, 10 * DAY),
            row("was-timed-out", "TIMED_OUT", 11 * DAY, 0),
            row("new", "QUEUED", 11 * DAY, 8 * DAY),
            row("times-out", "TIMED_OUT", 11 * DAY, 0),
            row("is-rejected", "REJECTED", 11 * DAY, 0),
            row("is-removed", "REMOVED", 11 * DAY, 0),
            row("moves", "IN_PROGRESS", 11 * DAY, 11 * DAY),
        ] {
            t.add(&e);
        }
        let mut gone = row("vanishes", "QUEUED", 11 * DAY, 0);
        gone.status = None;
        gone.outcome = "not_found";
        t.add(&gone);
        let c = t.finish();
        assert_eq!(
            c.totals,
            ChangeCounts {
                new_stuck: 1,
                recovered: 2,
                ended_timed_out: 1,
                ended_failed: 1,
                ended_canceled: 1,
                ended_other: 1,
                still_stuck: 1,
                new_timed_out: 1,
                new_failed: 1,
            }
        );
        let tr = |a: Option<&str>, b: Option<&str>| {
            c.transitions[&(a.map(str::to_string), b.map(str::to_string))]
        };
        assert_eq!(tr(Some("SUCCEEDED"), None), 1);
        assert_eq!(tr(None, Some("QUEUED")), 1);
        assert_eq!(tr(Some("QUEUED"), Some("SUCCEEDED")), 1);
        assert_eq!(tr(Some("TIMED_OUT"), Some("TIMED_OUT")), 1);
        assert_eq!(tr(Some("QUEUED"), Some("TIMED_OUT")), 1);
        assert_eq!(tr(Some("QUEUED"), None), 1, "no status now");
        assert_eq!(c.transitions.values().sum::<u64>(), 11);
        assert_eq!(c.still_stuck_oldest.len(), 1);
        assert_eq!(c.still_stuck_oldest[0].first_seen_stuck_ms, 10 * DAY);
    }
}
