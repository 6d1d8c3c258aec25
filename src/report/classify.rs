//! The classes of one execution, decided from its row alone.
//!
//! Kept apart from reading and counting so that the rules, and their edges at exactly the threshold,
//! live in one small place that a test (or a reader of the report) can check against the docs.

use std::collections::BTreeMap;

use super::Thresholds;

/// What the report looks for. A row may be in several classes (a QUEUED row can be both
/// `stuck_queued` and `near_timeout`) or in none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Status QUEUED and `fetched_at - queued_at` strictly longer than `--queued-after`, of a job
    /// running (`job_status` IN_PROGRESS, or not known).
    StuckQueued,
    /// Status IN_PROGRESS and `fetched_at - last_updated_at` at least `--stale-after`, or the job's
    /// in-progress timeout when that is shorter.
    StaleInProgress,
    /// Status TIMED_OUT.
    TimedOut,
    /// Status IN_PROGRESS and `approximate_seconds_before_timed_out` strictly below
    /// `--near-timeout` (a QUEUED execution's timer has not started).
    NearTimeout,
    /// Status QUEUED, of a job that is not running (`job_status` SCHEDULED outside its maintenance
    /// window, CANCELED, COMPLETED, DELETION_IN_PROGRESS): waiting, not stuck.
    Waiting,
    /// Status QUEUED or IN_PROGRESS, of a job known to have no in-progress timeout: nothing but the
    /// device (or a cancel) will ever end it.
    NoTimeout,
    /// Outcome `not_found`: the service has no such execution.
    NotFound,
    /// Outcome `error`: the pair could not be described.
    Error,
}

impl Class {
    /// Every class, in the order the report shows them.
    pub const ALL: [Class; 8] = [
        Class::StuckQueued,
        Class::StaleInProgress,
        Class::TimedOut,
        Class::NearTimeout,
        Class::Waiting,
        Class::NoTimeout,
        Class::NotFound,
        Class::Error,
    ];

    /// The name in the report and its JSON (`errors` for [`Class::Error`], as the JSON key).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::StuckQueued => "stuck_queued",
            Class::StaleInProgress => "stale_in_progress",
            Class::TimedOut => "timed_out",
            Class::NearTimeout => "near_timeout",
            Class::Waiting => "waiting",
            Class::NoTimeout => "no_timeout",
            Class::NotFound => "not_found",
            Class::Error => "errors",
        }
    }

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Classes(u8);

impl Classes {
    /// Adds `c`.
    pub fn insert(&mut self, c: Class) {
        self.0 |= 1 << c.index();
    }
    /// Whether `c` is in the set.
    pub fn contains(self, c: Class) -> bool {
        self.0 & (1 << c.index()) != 0
    }
    /// The classes in the set, in [`Class::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Class> {
        Class::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

/// One row of the dataset, as much of it as the report reads (timestamps in epoch milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Execution<'a> {
    /// The job of the pair.
    pub job_id: &'a str,
    /// The thing of the pair.
    pub thing_name: &'a str,
    /// `ok`, `not_found` or `error`.
    pub outcome: &'a str,
    /// As spelled in the dataset; `None` for rows without an execution.
    pub status: Option<&'a str>,
    /// Never null in a dataset the tool wrote; without it no age is known.
    pub fetched_at_ms: Option<i64>,
    /// When the execution was queued.
    pub queued_at_ms: Option<i64>,
    /// When the execution last changed.
    pub last_updated_at_ms: Option<i64>,
    /// `approximate_seconds_before_timed_out`: seconds left before the execution times out.
    pub seconds_before_timed_out: Option<i64>,
    /// The account the row was read from (a run over several targets).
    pub account_id: Option<&'a str>,
    /// The region the row was read from.
    pub region: Option<&'a str>,
    /// The job's status when the row was read (schema version 4; `None`: not known).
    pub job_status: Option<&'a str>,
    /// The job's in-progress timeout in minutes, when it has one.
    pub job_timeout_minutes: Option<i64>,
    /// Whether the thing was connected (`None`: connectivity not known).
    pub connected: Option<bool>,
    /// The job of the IN_PROGRESS execution a QUEUED one waits behind.
    pub blocked_by: Option<&'a str>,
    /// Whether the run read the thing's queue for this row (`blocked_by` null then means nothing
    /// ahead of it).
    pub queue_read: bool,
    /// The thing's type, groups and attributes, read when asked for (`--group-by`).
    pub thing: ThingView<'a>,
}

/// The thing columns of a batch (schema version 4), each absent from older datasets.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThingColumns {
    pub thing_type: Option<arrow::array::StringArray>,
    pub groups: Option<arrow::array::ListArray>,
    pub attributes: Option<arrow::array::MapArray>,
}

/// One row's thing columns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThingView<'a> {
    cols: Option<&'a ThingColumns>,
    i: usize,
}

impl<'a> ThingView<'a> {
    pub(crate) fn new(cols: &'a ThingColumns, i: usize) -> Self {
        ThingView {
            cols: Some(cols),
            i,
        }
    }

    /// The thing's type, if it has one.
    pub fn thing_type(&self) -> Option<&'a str> {
        use arrow::array::Array;
        let a = self.cols?.thing_type.as_ref()?;
        a.is_valid(self.i).then(|| a.value(self.i))
    }

    /// Calls `f` with each of the thing's groups.
    pub fn each_group(&self, mut f: impl FnMut(&str)) {
        use arrow::array::{Array, AsArray};
        let Some(a) = self.cols.and_then(|c| c.groups.as_ref()) else {
            return;
        };
        if a.is_null(self.i) {
            return;
        }
        let v = a.value(self.i);
        let v = v.as_string::<i32>();
        for k in 0..v.len() {
            if v.is_valid(k) {
                f(v.value(k));
            }
        }
    }

    /// The value of the thing's attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        use arrow::array::{Array, AsArray};
        let a = self.cols?.attributes.as_ref()?;
        if a.is_null(self.i) {
            return None;
        }
        let offsets = a.value_offsets();
        let (start, end) = (offsets[self.i] as usize, offsets[self.i + 1] as usize);
        let keys = a.keys().as_string::<i32>();
        let values = a.values().as_string::<i32>();
        (start..end)
            .find(|k| keys.value(*k) == name)
            .filter(|k| values.is_valid(*k))
            .map(|k| values.value(k))
    }
}

impl PartialEq for ThingView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.thing_type() == other.thing_type()
    }
}
impl Eq for ThingView<'_> {}

/// Why a stuck execution is stuck: the first that holds, in this order (see [`cause`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The thing was disconnected when its context was read: wait for it, or look at the device.
    DeviceOffline,
    /// Another execution of the thing is IN_PROGRESS (`blocked_by`): that one holds the queue.
    Blocked,
    /// Online, nothing ahead of it, its job running: the device's agent never picked it up.
    NotPickedUp,
    /// Online and IN_PROGRESS, but no update since `--stale-after`: the agent stopped reporting.
    NoProgress,
    /// The thing's connectivity is not known (no fleet indexing, or `--context` without things).
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::DeviceOffline,
        Cause::Blocked,
        Cause::NotPickedUp,
        Cause::NoProgress,
        Cause::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::DeviceOffline => "device_offline",
            Cause::Blocked => "blocked",
            Cause::NotPickedUp => "not_picked_up",
            Cause::NoProgress => "no_progress",
            Cause::Unknown => "unknown",
        }
    }

    /// What the cause means for a row of `class` and what to do about it, in a sentence.
    pub fn advice(self, class: Class) -> &'static str {
        match (self, class) {
            (Cause::DeviceOffline, Class::StaleInProgress) => {
                "the device went away in the middle of the job: wait for it, or cancel with \
                 --force (its disconnect reason says why it went)"
            }
            (Cause::DeviceOffline, _) => {
                "the device was disconnected when read: wait for it to come back, or look at the \
                 device (its disconnect reason says why)"
            }
            (Cause::Blocked, _) => {
                "another job's execution is IN_PROGRESS on the thing and holds its queue: fix or \
                 cancel that one first (see held up)"
            }
            (Cause::NotPickedUp, _) => {
                "online, nothing ahead of it, its job running, yet never started: the device's \
                 job agent is not taking jobs - the bug to chase"
            }
            (Cause::NoProgress, _) => {
                "online but no update since --stale-after: the agent stopped reporting; cancel \
                 with --force, or let a timeout end it"
            }
            (Cause::Unknown, Class::StuckQueued) => {
                "its thing's connectivity or queue is not known: fleet indexing off or without \
                 connectivity, the thing not indexed yet, a run with --context none or jobs, or a \
                 report --queued-after shorter than the run's (the queue is read past the run's)"
            }
            (Cause::Unknown, _) => {
                "its thing's connectivity is not known: fleet indexing off or without \
                 connectivity, the thing not indexed yet, or a run with --context none or jobs"
            }
        }
    }
}

/// The classes a cause is given for, in the order of [`Counts::causes`].
pub const CAUSED: [Class; 2] = [Class::StuckQueued, Class::StaleInProgress];

/// The cause of a stuck row (one in [`CAUSED`]), first match wins: stuck QUEUED ->
/// `device_offline`, `blocked`, `not_picked_up`, `unknown`; stale IN_PROGRESS -> `device_offline`,
/// `no_progress`, `unknown`.
pub fn cause(e: &Execution<'_>, classes: Classes) -> Option<(Class, Cause)> {
    if classes.contains(Class::StuckQueued) {
        let c = match (e.connected, e.blocked_by) {
            (Some(false), _) => Cause::DeviceOffline,
            (_, Some(_)) => Cause::Blocked,
            // Nothing ahead of it only if its queue was read.
            (Some(true), None) if e.queue_read => Cause::NotPickedUp,
            _ => Cause::Unknown,
        };
        Some((Class::StuckQueued, c))
    } else if classes.contains(Class::StaleInProgress) {
        let c = match e.connected {
            Some(false) => Cause::DeviceOffline,
            Some(true) => Cause::NoProgress,
            None => Cause::Unknown,
        };
        Some((Class::StaleInProgress, c))
    } else {
        None
    }
}

/// The classes of `e` under `t`. A needed timestamp that is missing means the class is not given
/// (the report never guesses an age).
pub fn classify(e: &Execution<'_>, t: &Thresholds) -> Classes {
    let mut c = Classes::default();
    match e.outcome {
        "not_found" => c.insert(Class::NotFound),
        "error" => c.insert(Class::Error),
        _ => {}
    }
    let waited = |since: Option<i64>| Some(e.fetched_at_ms?.saturating_sub(since?));
    let status = e.status.unwrap_or_default();
    // A job known not to be running holds its queued executions back on purpose.
    let job_running = e.job_status.is_none_or(|s| s == "IN_PROGRESS");
    if status == "QUEUED" && !job_running {
        c.insert(Class::Waiting);
    } else if status == "QUEUED" && waited(e.queued_at_ms).is_some_and(|w| w > t.queued_after_ms())
    {
        c.insert(Class::StuckQueued);
    }
    // Judged against the job's in-progress timeout where it is the shorter: past it without an
    // update, AWS's own timer should have ended the execution.
    let stale_after = match e.job_timeout_minutes {
        Some(m) if m > 0 => t.stale_after_ms().min(m.saturating_mul(60_000)),
        _ => t.stale_after_ms(),
    };
    if status == "IN_PROGRESS" && waited(e.last_updated_at_ms).is_some_and(|w| w >= stale_after) {
        c.insert(Class::StaleInProgress);
    }
    // An active execution of a job known to have no in-progress timeout never ends by itself.
    if matches!(status, "QUEUED" | "IN_PROGRESS")
        && e.job_status.is_some()
        && e.job_timeout_minutes.is_none()
    {
        c.insert(Class::NoTimeout);
    }
    if status == "TIMED_OUT" {
        c.insert(Class::TimedOut);
    }
    if status == "IN_PROGRESS"
        && e.seconds_before_timed_out
            .is_some_and(|s| s.saturating_mul(1000) < t.near_timeout_ms())
    {
        c.insert(Class::NearTimeout);
    }
    c
}

/// For a stuck or timed-out row: its ranking class and since when it has been so (epoch ms):
/// `queued_at` for `stuck_queued`, `last_updated_at` for `stale_in_progress` and `timed_out` (the last
/// change of a timed-out execution is its timing out). `None` when the row is in none of those classes
/// or the timestamp is missing.
pub(crate) fn aged_since(e: &Execution<'_>, classes: Classes) -> Option<(Class, i64)> {
    if classes.contains(Class::StuckQueued) {
        Some((Class::StuckQueued, e.queued_at_ms?))
    } else if classes.contains(Class::StaleInProgress) {
        Some((Class::StaleInProgress, e.last_updated_at_ms?))
    } else if classes.contains(Class::TimedOut) {
        Some((Class::TimedOut, e.last_updated_at_ms?))
    } else {
        None
    }
}

/// Counts of a set of rows: total, by status, by class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows.
    pub total: u64,
    /// Rows by status value as spelled in the dataset (rows without a status are not here).
    pub by_status: BTreeMap<String, u64>,
    /// Rows without a status (in practice the `not_found` and `error` rows).
    pub no_status: u64,
    classes: [u64; Class::ALL.len()],
    /// Per class of [`CAUSED`], rows by [`Cause`] (indexed like [`Cause::ALL`]).
    causes: [[u64; Cause::ALL.len()]; CAUSED.len()],
}

impl Counts {
    /// Rows in class `c`.
    pub fn count(&self, c: Class) -> u64 {
        self.classes[c.index()]
    }

    /// Rows of class `class` (one of [`CAUSED`]) with cause `cause`.
    pub fn cause_count(&self, class: Class, cause: Cause) -> u64 {
        CAUSED
            .iter()
            .position(|c| *c == class)
            .map_or(0, |k| self.causes[k][cause as usize])
    }

    /// The causes of class `class` with rows, largest first.
    pub fn causes_of(&self, class: Class) -> Vec<(Cause, u64)> {
        let mut v: Vec<(Cause, u64)> = Cause::ALL
            .iter()
            .map(|c| (*c, self.cause_count(class, *c)))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Rows whose status is `status` (0 when none).
    pub fn status(&self, status: &str) -> u64 {
        self.by_status.get(status).copied().unwrap_or(0)
    }

    /// Rows that are stuck (`stuck_queued` or `stale_in_progress`) or `timed_out`.
    pub(crate) fn stuck_or_timed_out(&self) -> u64 {
        self.count(Class::StuckQueued)
            + self.count(Class::StaleInProgress)
            + self.count(Class::TimedOut)
    }

    pub(super) fn add(
        &mut self,
        status: Option<&str>,
        classes: Classes,
        cause: Option<(Class, Cause)>,
    ) {
        if let Some((class, c)) = cause {
            if let Some(k) = CAUSED.iter().position(|x| *x == class) {
                self.causes[k][c as usize] += 1;
            }
        }
        self.total += 1;
        match status {
            Some(s) => match self.by_status.get_mut(s) {
                Some(n) => *n += 1,
                None => {
                    self.by_status.insert(s.to_string(), 1);
                }
            },
            None => self.no_status += 1,
        }
        for c in classes.iter() {
            self.classes[c.index()] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn ex(status: &'static str) -> Execution<'static> {
        Execution {
            account_id: None,
            region: None,
            job_id: "j",
            thing_name: "t",
            outcome: "ok",
            status: Some(status),
            fetched_at_ms: Some(100 * H),
            queued_at_ms: None,
            last_updated_at_ms: None,
            seconds_before_timed_out: None,
            ..Default::default()
        }
    }

    fn classes(e: Execution<'_>) -> Vec<Class> {
        classify(&e, &Thresholds::default()).iter().collect()
    }

    #[test]
    fn queued_is_stuck_only_beyond_the_threshold() {
        let at = |ms| Execution {
            account_id: None,
            region: None,
            queued_at_ms: Some(100 * H - ms),
            ..ex("QUEUED")
        };
        assert_eq!(classes(at(24 * H)), vec![]);
        assert_eq!(classes(at(24 * H + 1)), vec![Class::StuckQueued]);
        assert_eq!(classes(ex("QUEUED")), vec![], "no queued_at, no age");
    }

    #[test]
    fn in_progress_is_stale_from_the_threshold_on() {
        let at = |ms| Execution {
            account_id: None,
            region: None,
            last_updated_at_ms: Some(100 * H - ms),
            ..ex("IN_PROGRESS")
        };
        assert_eq!(classes(at(H - 1)), vec![]);
        assert_eq!(classes(at(H)), vec![Class::StaleInProgress]);
    }

    #[test]
    fn near_timeout_is_strictly_below_and_only_while_pending() {
        let at = |status, s| Execution {
            account_id: None,
            region: None,
            seconds_before_timed_out: Some(s),
            ..ex(status)
        };
        assert_eq!(classes(at("IN_PROGRESS", 300)), vec![]);
        assert_eq!(classes(at("IN_PROGRESS", 299)), vec![Class::NearTimeout]);
        assert_eq!(
            classes(at("QUEUED", 0)),
            vec![],
            "a queued execution's timer has not started"
        );
        assert_eq!(classes(at("SUCCEEDED", 1)), vec![]);
    }

    #[test]
    fn a_queued_execution_of_a_job_not_running_is_waiting_not_stuck() {
        let old = |job_status| Execution {
            queued_at_ms: Some(0),
            job_status,
            job_timeout_minutes: Some(30),
            ..ex("QUEUED")
        };
        assert_eq!(classes(old(Some("SCHEDULED"))), vec![Class::Waiting]);
        assert_eq!(classes(old(Some("COMPLETED"))), vec![Class::Waiting]);
        assert_eq!(classes(old(Some("IN_PROGRESS"))), vec![Class::StuckQueued]);
        assert_eq!(
            classes(old(None)),
            vec![Class::StuckQueued],
            "no context: as before"
        );
    }

    #[test]
    fn a_job_s_timeout_judges_its_executions() {
        let t = Thresholds::default();
        let running = |timeout, quiet_ms| Execution {
            job_status: Some("IN_PROGRESS"),
            job_timeout_minutes: timeout,
            last_updated_at_ms: Some(100 * H - quiet_ms),
            ..ex("IN_PROGRESS")
        };
        let has = |e: Execution<'_>, c| classify(&e, &t).contains(c);
        // A 30-minute timer: 30 minutes without an update is stale, 29 not.
        assert!(has(running(Some(30), 30 * 60_000), Class::StaleInProgress));
        assert!(!has(running(Some(30), 29 * 60_000), Class::StaleInProgress));
        // A timer longer than --stale-after: the flag's hour still rules.
        assert!(has(running(Some(120), H), Class::StaleInProgress));
        // No timer: never ends by itself.
        assert!(has(running(None, 0), Class::NoTimeout));
        assert!(!has(running(Some(30), 0), Class::NoTimeout));
        // Without context nothing is known of the job's timer.
        assert!(!has(ex("IN_PROGRESS"), Class::NoTimeout));
    }

    #[test]
    fn every_stuck_row_has_one_cause_first_match_wins() {
        let t = Thresholds::default();
        let q = |connected, blocked_by| Execution {
            queued_at_ms: Some(0),
            connected,
            blocked_by,
            queue_read: true,
            ..ex("QUEUED")
        };
        let of = |e: Execution<'_>| cause(&e, classify(&e, &t)).map(|(_, c)| c);
        assert_eq!(of(q(Some(false), Some("j2"))), Some(Cause::DeviceOffline));
        assert_eq!(of(q(Some(true), Some("j2"))), Some(Cause::Blocked));
        assert_eq!(of(q(None, Some("j2"))), Some(Cause::Blocked));
        assert_eq!(of(q(Some(true), None)), Some(Cause::NotPickedUp));
        assert_eq!(of(q(None, None)), Some(Cause::Unknown));
        let unread = Execution {
            queue_read: false,
            ..q(Some(true), None)
        };
        assert_eq!(
            of(unread),
            Some(Cause::Unknown),
            "online, but its queue not read"
        );
        let p = |connected| Execution {
            last_updated_at_ms: Some(0),
            connected,
            ..ex("IN_PROGRESS")
        };
        assert_eq!(of(p(Some(false))), Some(Cause::DeviceOffline));
        assert_eq!(of(p(Some(true))), Some(Cause::NoProgress));
        assert_eq!(of(p(None)), Some(Cause::Unknown));
        assert_eq!(of(ex("SUCCEEDED")), None);
    }

    #[test]
    fn outcomes_and_timed_out() {
        let mut e = ex("TIMED_OUT");
        e.last_updated_at_ms = Some(0);
        let c = classify(&e, &Thresholds::default());
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![Class::TimedOut]);
        assert_eq!(aged_since(&e, c), Some((Class::TimedOut, 0)));
        let nf = Execution {
            account_id: None,
            region: None,
            outcome: "not_found",
            status: None,
            ..ex("")
        };
        assert_eq!(classes(nf), vec![Class::NotFound]);
        let err = Execution {
            account_id: None,
            region: None,
            outcome: "error",
            status: None,
            ..ex("")
        };
        assert_eq!(classes(err), vec![Class::Error]);
    }
}
