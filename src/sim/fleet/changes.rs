//! What callers did to the fleet: the executions cancelled or deleted through the API, and the
//! simulator's clock moved forward (`POST /_sim/advance`).
//!
//! The fleet is otherwise a function of its seed and its clock ([`super::history`]); a change is kept
//! beside it, keyed by pair, and wins over the history from the moment it was made: a cancelled
//! execution is terminal (the history has nothing more to say about it), a deleted one is gone. The
//! checks and the change are made under one lock, so two calls racing for one execution are answered
//! one after the other, as AWS answers them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::Execution;

use crate::input::names::is_terminal_status as is_terminal;

/// One pair's change.
#[derive(Debug, Clone)]
enum Change {
    /// Cancelled: the execution as it stands from then on.
    Canceled(Execution),
    Deleted,
}

/// Why a call changed nothing, in AWS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `ResourceNotFoundException` (404).
    NotFound(String),
    /// `InvalidStateTransitionException` (409).
    InvalidState(String),
    /// `VersionConflictException` (409).
    VersionConflict(String),
    /// `InvalidRequestException` (400).
    Invalid(String),
}

/// A CancelJobExecution request, checked for shape by the caller.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    pub force: bool,
    pub expected_version: Option<i64>,
    /// `None`: the details are left as they are.
    pub status_details: Option<Vec<(String, String)>>,
}

/// The changes made so far, by pair.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Whether any change was ever made, so that an unchanged fleet never takes the lock.
    any: AtomicBool,
    by_pair: RwLock<HashMap<(u64, u32), Change>>,
    /// Calls (cancels and deletes, carried out or refused) each execution received.
    calls: std::sync::Mutex<HashMap<(u64, u32), u32>>,
}

/// What a change did to a job's status counts: the status it took an execution from, and the one
/// it left it in (`None`: deleted).
pub(super) type Moved = (&'static str, Option<&'static str>);

impl Changes {
    /// The pair's execution after the changes: `base` (the history's) when nothing was done to it.
    pub(super) fn apply(&self, i: u64, j: u32, base: Option<Execution>) -> Option<Execution> {
        if !self.any.load(Ordering::Acquire) {
            return base;
        }
        match self.by_pair.read().expect("changes lock").get(&(i, j)) {
            None => base,
            Some(Change::Canceled(e)) => Some(e.clone()),
            Some(Change::Deleted) => None,
        }
    }

    /// Cancels the pair's execution as AWS does, at `now`: `current` computes the execution as it
    /// stands (without the changes), under the lock.
    pub(super) fn cancel(
        &self,
        key: (u64, u32),
        now: u64,
        req: &Cancel,
        current: impl FnOnce() -> Option<Execution>,
    ) -> Result<Moved, Refusal> {
        let mut map = self.by_pair.write().expect("changes lock");
        self.called(key);
        let Some(mut e) = stands(&map, key, current) else {
            return Err(Refusal::NotFound(String::new()));
        };
        if let Some(v) = req.expected_version.filter(|v| *v != e.version_number) {
            return Err(Refusal::VersionConflict(format!(
                "The expected version {v} does not match the current version {} of the job execution",
                e.version_number
            )));
        }
        let from = e.status;
        if is_terminal(from) || (from != "QUEUED" && !req.force) {
            return Err(Refusal::InvalidState(format!(
                "Cannot cancel a job execution in status {from}{}",
                if is_terminal(from) {
                    ""
                } else {
                    " without force"
                }
            )));
        }
        e.status = "CANCELED";
        e.force_canceled = Some(req.force);
        e.version_number += 1;
        e.last_updated_at_ms = now.max(e.last_updated_at_ms);
        e.approximate_seconds_before_timed_out = None;
        if let Some(d) = &req.status_details {
            e.details = Some(
                d.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())))
                    .collect(),
            );
        }
        map.insert(key, Change::Canceled(e));
        self.any.store(true, Ordering::Release);
        Ok((from, Some("CANCELED")))
    }

    /// Deletes the pair's execution number `number` as AWS does: a terminal one at once, an active
    /// one with `force` only.
    pub(super) fn delete(
        &self,
        key: (u64, u32),
        number: i64,
        force: bool,
        current: impl FnOnce() -> Option<Execution>,
    ) -> Result<Moved, Refusal> {
        let mut map = self.by_pair.write().expect("changes lock");
        self.called(key);
        let Some(e) = stands(&map, key, current).filter(|e| e.execution_number == number) else {
            return Err(Refusal::NotFound(String::new()));
        };
        if !is_terminal(e.status) && !force {
            return Err(Refusal::InvalidState(format!(
                "Cannot delete a job execution in status {} without force",
                e.status
            )));
        }
        map.insert(key, Change::Deleted);
        self.any.store(true, Ordering::Release);
        Ok((e.status, None))
    }

    /// How many pairs were changed.
    pub(super) fn len(&self) -> usize {
        self.by_pair.read().expect("changes lock").len()
    }

    fn called(&self, key: (u64, u32)) {
        *self
            .calls
            .lock()
            .expect("calls lock")
            .entry(key)
            .or_default() += 1;
    }

    /// The executions that received a cancel or delete, and the most calls any one received.
    pub(super) fn calls(&self) -> (usize, u32) {
        let calls = self.calls.lock().expect("calls lock");
        (calls.len(), calls.values().copied().max().unwrap_or(0))
    }
}

/// The pair's execution as it stands: the change already made to it, or the history's.
fn stands(
    map: &HashMap<(u64, u32), Change>,
    key: (u64, u32),
    current: impl FnOnce() -> Option<Execution>,
) -> Option<Execution> {
    match map.get(&key) {
        Some(Change::Canceled(e)) => Some(e.clone()),
        Some(Change::Deleted) => None,
        None => current(),
    }
}
