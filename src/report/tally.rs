//! Accumulating a report row by row in bounded memory: counters per job, a fixed-size age histogram,
//! and for each job (and overall) a heap that never holds more than `top` of the oldest pairs.
//!
//! Memory grows with the number of jobs and distinct status values, never with the number of rows.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::path::Path;

use super::classify::{aged_since, classify, Cause, Class, Counts, Execution};
use super::{Report, Thresholds};

/// AWS's job execution statuses in lifecycle order; the report lists them first, then any other value.
pub(crate) use crate::input::names::JOB_EXECUTION_STATUSES as AWS_STATUSES;

/// One of the oldest stuck or timed-out pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldestPair {
    /// The thing of the pair.
    pub thing_name: String,
    /// The job of the pair.
    pub job_id: String,
    /// `StuckQueued`, `StaleInProgress` or `TimedOut`.
    pub class: Class,
    /// The execution's status as spelled in the dataset.
    pub status: String,
    /// Since when (epoch ms): `queued_at` for `stuck_queued`, `last_updated_at` otherwise.
    pub since_ms: i64,
    /// `fetched_at - since`, in milliseconds.
    pub age_ms: i64,
}

/// Older first; among equal ages, thing then job in name order (so the choice is deterministic).
fn rank(a: (i64, &str, &str), b: (i64, &str, &str)) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| b.1.cmp(a.1))
        .then_with(|| b.2.cmp(a.2))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranked(OldestPair);

impl Ranked {
    fn key(&self) -> (i64, &str, &str) {
        (self.0.age_ms, &self.0.thing_name, &self.0.job_id)
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank(self.key(), other.key())
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `cap` oldest pairs offered so far; the youngest kept one is on top, ready to be displaced.
#[derive(Debug, Clone)]
struct Oldest {
    cap: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl Oldest {
    fn new(cap: usize) -> Self {
        Oldest {
            cap,
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, e: &Execution<'_>, class: Class, since_ms: i64, age_ms: i64) {
        if self.cap == 0 {
            return;
        }
        if self.heap.len() >= self.cap {
            let youngest = &self.heap.peek().expect("full heap").0;
            // Decide before allocating: most rows do not enter a full heap.
            if rank((age_ms, e.thing_name, e.job_id), youngest.key()) != Ordering::Greater {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Reverse(Ranked(OldestPair {
            thing_name: e.thing_name.to_string(),
            job_id: e.job_id.to_string(),
            class,
            status: e.status.unwrap_or_default().to_string(),
            since_ms,
            age_ms,
        })));
    }

    /// Oldest first.
    fn into_sorted(self) -> Vec<OldestPair> {
        // Ascending order of Reverse(rank) is descending rank: oldest first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(Ranked(p))| p)
            .collect()
    }
}

/// Lower bounds of the age histogram's buckets, in seconds, with their labels; the last is open-ended.
pub(crate) const AGE_BUCKETS: [(i64, &str); 11] = [
    (0, "< 1h"),
    (3_600, "1–3h"),
    (3 * 3_600, "3–6h"),
    (6 * 3_600, "6–12h"),
    (12 * 3_600, "12–24h"),
    (86_400, "1–2d"),
    (2 * 86_400, "2–3d"),
    (3 * 86_400, "3–7d"),
    (7 * 86_400, "7–14d"),
    (14 * 86_400, "14–30d"),
    (30 * 86_400, "≥ 30d"),
];

/// How long the stuck executions have been stuck, in the fixed buckets of [`AGE_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgeHistogram {
    /// Per bucket: `[stuck_queued, stale_in_progress]`.
    pub buckets: [[u64; 2]; AGE_BUCKETS.len()],
}

impl AgeHistogram {
    fn add(&mut self, class: Class, age_ms: i64) {
        let col = match class {
            Class::StuckQueued => 0,
            Class::StaleInProgress => 1,
            _ => return,
        };
        let secs = age_ms / 1000;
        let b = AGE_BUCKETS
            .iter()
            .rposition(|(lo, _)| secs >= *lo)
            .unwrap_or(0);
        self.buckets[b][col] += 1;
    }

    /// Stuck executions counted.
    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|b| b[0] + b[1]).sum()
    }
}

/// What the report says about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The job.
    pub job_id: String,
    /// Its rows' counts.
    pub counts: Counts,
    /// This job's oldest stuck or timed-out pairs, oldest first (at most `top`).
    pub oldest: Vec<OldestPair>,
}

/// Accumulates rows into a [`Report`]; feed it with [`Analyzer::add`], then call [`Analyzer::finish`].
#[derive(Debug, Clone)]
pub(crate) struct Analyzer {
    thresholds: Thresholds,
    totals: Counts,
    jobs: BTreeMap<String, (Counts, Oldest)>,
    oldest: Oldest,
    stuck_ages: AgeHistogram,
    targets: super::targets::TargetTally,
    failed_targets: Vec<crate::dataset::FailedTarget>,
    /// Stuck QUEUED executions blocked, by the job of the IN_PROGRESS execution ahead of them.
    held_up: BTreeMap<String, u64>,
    /// `--group-by`: the counts of each group.
    groups: super::group::Groups,
    /// The oldest examples of each stuck class and cause.
    cause_oldest: BTreeMap<(Class, Cause), Oldest>,
}

/// Examples kept of each cause.
const CAUSE_EXAMPLES: usize = 3;

impl Analyzer {
    /// An empty analysis under `thresholds`.
    pub fn new(thresholds: Thresholds) -> Self {
        Analyzer {
            oldest: Oldest::new(thresholds.top),
            thresholds,
            totals: Counts::default(),
            jobs: BTreeMap::new(),
            stuck_ages: AgeHistogram::default(),
            targets: Default::default(),
            failed_targets: Vec::new(),
            held_up: BTreeMap::new(),
            groups: Default::default(),
            cause_oldest: BTreeMap::new(),
        }
    }

    /// The targets the dataset's manifest names as not audited, for the report's targets table.
    pub(crate) fn set_failed_targets(&mut self, failed: Vec<crate::dataset::FailedTarget>) {
        self.failed_targets = failed;
    }

    /// Counts one row.
    pub fn add(&mut self, e: &Execution<'_>) {
        let classes = classify(e, &self.thresholds);
        let cause = super::classify::cause(e, classes);
        if let (Some((_, super::classify::Cause::Blocked)), Some(by)) = (cause, e.blocked_by) {
            match self.held_up.get_mut(by) {
                Some(n) => *n += 1,
                None => {
                    self.held_up.insert(by.to_string(), 1);
                }
            }
        }
        self.totals.add(e.status, classes, cause);
        if let Some(by) = &self.thresholds.group_by {
            self.groups.add(by, e, classes, cause);
        }
        self.targets.add(e.account_id, e.region, e.status, classes);
        let top = self.thresholds.top;
        if !self.jobs.contains_key(e.job_id) {
            // Allocate the key only for a job not seen before.
            let fresh = (Counts::default(), Oldest::new(top));
            self.jobs.insert(e.job_id.to_string(), fresh);
        }
        let (counts, oldest) = self.jobs.get_mut(e.job_id).expect("inserted above");
        counts.add(e.status, classes, cause);
        let aged = aged_since(e, classes).zip(e.fetched_at_ms);
        if let Some(((class, since_ms), fetched)) = aged {
            let age_ms = fetched.saturating_sub(since_ms).max(0);
            oldest.offer(e, class, since_ms, age_ms);
            if let Some(key) = cause.filter(|(c, _)| *c == class) {
                self.cause_oldest
                    .entry(key)
                    .or_insert_with(|| Oldest::new(CAUSE_EXAMPLES))
                    .offer(e, class, since_ms, age_ms);
            }
            self.oldest.offer(e, class, since_ms, age_ms);
            self.stuck_ages.add(class, age_ms);
        }
    }

    /// The report of every row added; `dataset` and `files` say what was read.
    pub fn finish(self, dataset: &Path, files: usize) -> Report {
        let mut statuses: Vec<String> = AWS_STATUSES
            .iter()
            .filter(|s| self.totals.by_status.contains_key(**s))
            .map(|s| s.to_string())
            .collect();
        statuses.extend(
            self.totals
                .by_status
                .keys()
                .filter(|s| !AWS_STATUSES.contains(&s.as_str()))
                .cloned(),
        );
        let groups = self
            .thresholds
            .group_by
            .as_ref()
            .map(|by| (by.key(), self.groups.finish()));
        Report {
            dataset: dataset.to_path_buf(),
            files,
            thresholds: self.thresholds,
            statuses,
            totals: self.totals,
            jobs: self
                .jobs
                .into_iter()
                .map(|(job_id, (counts, oldest))| JobReport {
                    job_id,
                    counts,
                    oldest: oldest.into_sorted(),
                })
                .collect(),
            oldest: self.oldest.into_sorted(),
            stuck_ages: self.stuck_ages,
            ignored: Vec::new(),
            note: None,
            incomplete: None,
            writer: None,
            changes: None,
            trend: None,
            targets: self.targets.finish(&self.failed_targets),
            groups,
            cause_examples: self
                .cause_oldest
                .into_iter()
                .map(|(k, o)| (k, o.into_sorted()))
                .collect(),
            held_up: {
                let mut v: Vec<(String, u64)> = self.held_up.into_iter().collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                v
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuck(thing: &'static str, queued_at_ms: i64) -> Execution<'static> {
        Execution {
            account_id: None,
            region: None,
            job_id: "j",
            thing_name: thing,
            outcome: "ok",
            status: Some("QUEUED"),
            fetched_at_ms: Some(100 * 86_400_000),
            queued_at_ms: Some(queued_at_ms),
            last_updated_at_ms: Some(queued_at_ms),
            seconds_before_timed_out: None,
            ..Default::default()
        }
    }

    #[test]
    fn heap_keeps_the_oldest_with_ties_in_name_order() {
        let mut a = Analyzer::new(Thresholds {
            top: 3,
            ..Thresholds::default()
        });
        for (t, q) in [("d", 5), ("a", 1), ("c", 1), ("b", 1), ("e", 0), ("f", 9)] {
            a.add(&stuck(t, q));
        }
        let r = a.finish(Path::new("x"), 1);
        let names: Vec<_> = r.oldest.iter().map(|p| p.thing_name.as_str()).collect();
        assert_eq!(names, ["e", "a", "b"]);
        assert_eq!(r.jobs[0].oldest, r.oldest);
        assert_eq!(r.totals.count(Class::StuckQueued), 6);
        assert_eq!(r.stuck_ages.total(), 6);
        assert_eq!(r.stuck_ages.buckets[AGE_BUCKETS.len() - 1][0], 6);
    }

    #[test]
    fn unknown_statuses_follow_aws_ones() {
        let mut a = Analyzer::new(Thresholds::default());
        for s in ["PAUSED", "SUCCEEDED", "QUEUED", "ARCHIVED"] {
            a.add(&Execution {
                account_id: None,
                region: None,
                status: Some(s),
                queued_at_ms: None,
                ..stuck("t", 0)
            });
        }
        let r = a.finish(Path::new("x"), 1);
        assert_eq!(r.statuses, ["QUEUED", "SUCCEEDED", "ARCHIVED", "PAUSED"]);
    }
}
