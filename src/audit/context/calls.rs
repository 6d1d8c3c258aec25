//! One context call with its retries, and what its failure turns off: a missing index (the
//! registry's listings then say what the things are), an API the policy does not permit, an API
//! that fails call after call. Each is said once; only a fatal error or a shutdown stops the run.

use std::collections::HashSet;

use super::{Stage, APIS, SEARCH_INDEX};
use crate::audit::engine::{stop_for, Stop};
use crate::aws::call::{call_with_retries, Attempted, Final};
use crate::aws::client::{CallError, FleetContext, FleetLister, Page};
use crate::aws::retry::{classify, Class};

/// Calls of one API that may fail in a row, each after its retries, before the API is asked no
/// more this run: an API that stalls would otherwise hold every batch's rows for its timeouts.
pub(super) const GIVE_UP_AFTER: u32 = 3;

/// The context APIs by their index in [`Stage::limits`], and what is lost without each.
const API_NAMES: [&str; APIS] = [
    "DescribeJob",
    "SearchIndex",
    "ListJobExecutionsForJob",
    "ListJobs",
    "ListThings",
    "ListThingGroups",
    "ListThingsInThingGroup",
];
const API_LOSS: [&str; APIS] = [
    "the jobs' status and timeout are unknown (QUEUED rows are judged as without context)",
    "the things' connectivity is unknown, and so are the causes that need it; their type, \
     attributes and groups are read from the registry instead",
    "the things' queues are unknown: stuck QUEUED rows on online things are `unknown`, not \
     `not_picked_up` or `blocked`",
    "the things' queues are unknown: stuck QUEUED rows on online things are `unknown`, not \
     `not_picked_up` or `blocked`",
    REGISTRY_LOSS,
    REGISTRY_LOSS,
    REGISTRY_LOSS,
];
const REGISTRY_LOSS: &str =
    "without fleet indexing, the things' type, attributes and groups are unknown";

/// Most pages of one listing: a listing that pages on past this (or repeats a token) is an
/// answer gone wrong, and the rest of it is not read.
const MAX_PAGES: usize = 1_000_000;

/// Whether SearchIndex's error says the account has no index (fleet indexing off, or being built).
fn is_index_missing(e: &CallError) -> bool {
    matches!(
        e.code(),
        "ResourceNotFoundException" | "IndexNotReadyException"
    )
}

/// Whether `e` is an error the call retried (and ran out of attempts on), not an answer about
/// what was asked.
fn is_retryable(e: &CallError) -> bool {
    matches!(classify(e), Class::Retry { .. })
}

impl<C: FleetContext + FleetLister> Stage<C> {
    pub(super) fn warn(&self, what: &str) {
        let label = &self.parts.label;
        let sep = if label.is_empty() { "" } else { ": " };
        eprintln!("fleet-audit: warning: {label}{sep}{what}");
    }

    /// One context call with retries. A call that ends in an answer that is not the thing asked
    /// (a job gone, an index missing, a refusal) is `None`; only a fatal error or a shutdown stops
    /// the run.
    pub(super) async fn call<T, F, Fut>(
        &mut self,
        api: usize,
        what: &str,
        call: F,
    ) -> Result<Option<T>, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let p = &self.parts;
        let Attempted { result, .. } = call_with_retries(
            &self.limits[api],
            &p.engine,
            &p.counters,
            &p.counters.context_attempts,
            &p.shutdown,
            call,
        )
        .await;
        match result {
            Final::Ok(v) => {
                self.failed_in_row[api] = 0;
                Ok(Some(v))
            }
            Final::NotFound(e) | Final::Failed(e) => {
                self.failed(api, what, &e);
                Ok(None)
            }
            // Not permitted (iot:SearchIndex, iot:DescribeJob, iot:ListJobs, iot:ListJobExecutionsForJob
            // missing from the policy): that context is left out, said once; the audit goes on.
            Final::Fatal(e) if e.code() == "AccessDeniedException" => {
                self.turn_off(api);
                self.warn(&format!(
                    "{} is not permitted ({}): {}",
                    API_NAMES[api],
                    e.code(),
                    API_LOSS[api]
                ));
                Ok(None)
            }
            Final::Fatal(e) => Err(stop_for(e)),
            Final::Interrupted => Err(Stop::Interrupted),
        }
    }

    /// A call that ended without what it asked for: said once per API and error, and what it
    /// turns off turned off.
    fn failed(&mut self, api: usize, what: &str, e: &CallError) {
        // No index in the account (or not built yet): asked no more.
        if api == SEARCH_INDEX && is_index_missing(e) {
            self.turn_off(api);
            self.warn(&format!(
                "fleet indexing does not answer ({}): the things' connectivity is unknown, and so \
                 are the causes that need it; their type, attributes and groups are read from the \
                 registry instead (ListThings, ListThingGroups, ListThingsInThingGroup: a call per \
                 250 things of the account)",
                e.code()
            ));
            return;
        }
        // An answer about what was asked (a job gone) is no failure of the API.
        if !is_retryable(e) {
            self.failed_in_row[api] = 0;
        } else {
            // Out of attempts on a timeout, a dropped connection, a throttle or a 5xx: the third
            // call in a row turns the API off.
            self.failed_in_row[api] += 1;
            if self.failed_in_row[api] >= GIVE_UP_AFTER {
                self.turn_off(api);
                self.warn(&format!(
                    "{what}: {}; {} failed {GIVE_UP_AFTER} times in a row and is not asked again \
                     this run: {}",
                    e.code(),
                    API_NAMES[api],
                    API_LOSS[api]
                ));
                return;
            }
        }
        if self.said.insert((api, e.code().to_string())) {
            self.warn(&format!(
                "{what}: {}; its context is unknown (further {} failures of this kind are not \
                 said)",
                e.code(),
                API_NAMES[api]
            ));
        }
    }

    /// `api` is not called again this run; without SearchIndex, the registry's listings still say
    /// what the things are.
    fn turn_off(&mut self, api: usize) {
        self.off[api] = true;
        self.registry_wanted |= api == SEARCH_INDEX;
    }

    /// Every page of one listing through [`Stage::call`], each page's items to `take` (which
    /// says whether to read on); whether the listing was read to its end (or to a token it had
    /// given before, or as far as `take` wanted).
    pub(super) async fn pages<T, F, Fut>(
        &mut self,
        api: usize,
        what: &str,
        mut call: F,
        mut take: impl FnMut(Vec<T>) -> bool,
    ) -> Result<bool, Stop>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, CallError>>,
    {
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let Some(page) = self.call(api, what, || call(token.clone())).await? else {
                return Ok(false);
            };
            if !take(page.items) {
                return Ok(true);
            }
            token = page.next_token;
            match &token {
                None => return Ok(true),
                Some(t) if !seen.insert(t.clone()) => return Ok(true),
                Some(_) => {}
            }
        }
        Ok(true)
    }
}
