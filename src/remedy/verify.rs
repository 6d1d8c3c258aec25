//! A plan checked against the audit it was made from, before anything is called.
//!
//! The plan's checksum catches an accidental edit; it cannot stop a plan rewritten with a new
//! checksum. So `apply` reads the audit again and holds every action to it: the audit read that
//! execution (the same account, region, thing and job), at that version and execution number, in
//! that status, in one of the plan's runs; the action is one the plan's rules admit for that status
//! (a cancel of an IN_PROGRESS execution only in a `--force` plan); no execution is acted on twice.
//! The header's counts and the time its age is counted from are recomputed from the actions and
//! the audit, not taken from the header.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::plan::ActionKind;
use super::planfile::{Action, Plan};
use super::PlanError;
use crate::input::pair::pair_key;

/// Checks `plan` against the audit at `audit`; returns when the audit read the oldest of its
/// actions (epoch ms), which the plan's age is counted from.
pub fn against_audit(plan: &Plan, audit: &Path) -> Result<i64, PlanError> {
    let h = &plan.header;
    let bad = |line: u64, reason: String| PlanError::Bad {
        path: plan.path.clone(),
        line,
        reason,
    };
    let by_pair = index(plan)?;
    let mut read_at: Vec<Option<i64>> = vec![None; plan.actions.len()];
    crate::report::read::for_each_versioned(audit, crate::report::BATCH_ROWS, |e, v| {
        let Some(idx) = by_pair.get(&pair_key(e.thing_name, e.job_id)) else {
            return;
        };
        for &i in idx {
            let a = &plan.actions[i];
            let same = e.thing_name == a.thing_name
                && e.job_id == a.job_id
                && e.account_id == a.account_id.as_deref()
                && e.region == a.region.as_deref()
                && v.version_number == Some(a.expected_version)
                && v.execution_number == Some(a.execution_number)
                && e.status == Some(a.status.as_str())
                && v.run_id
                    .is_some_and(|r| h.audit.run_ids.iter().any(|x| x == r));
            if same {
                read_at[i] = e.fetched_at_ms;
            }
        }
    })?;
    for (i, a) in plan.actions.iter().enumerate() {
        if read_at[i].is_none() {
            return Err(bad(
                i as u64 + 2,
                format!(
                    "action {}: the audit {} has no row of job {} on thing {} at version {} in \
                     status {} read by the plan's runs: a plan acts only on what its audit read",
                    a.n,
                    audit.display(),
                    a.job_id,
                    a.thing_name,
                    a.expected_version,
                    a.status
                ),
            ));
        }
        let kind = if a.action == "delete" {
            ActionKind::Delete
        } else {
            ActionKind::Cancel
        };
        if let Some(why) = kind.refusal(&a.status, h.force) {
            return Err(bad(
                i as u64 + 2,
                format!("action {}: {} of an execution {why}", a.n, a.action),
            ));
        }
    }
    let oldest = read_at.iter().flatten().copied().min();
    check_header(plan, oldest)?;
    Ok(oldest.unwrap_or(h.audit.audited_at_ms))
}

/// The plan's actions by pair; an execution acted on twice (the same pair in the same target) is
/// refused.
fn index(plan: &Plan) -> Result<HashMap<u128, Vec<usize>>, PlanError> {
    let target = |a: &Action| (a.account_id.clone(), a.region.clone());
    let mut by_pair: HashMap<u128, Vec<usize>> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let same = by_pair
            .entry(pair_key(&a.thing_name, &a.job_id))
            .or_default();
        if let Some(&j) = same
            .iter()
            .find(|&&j| target(&plan.actions[j]) == target(a))
        {
            return Err(PlanError::Bad {
                path: plan.path.clone(),
                line: i as u64 + 2,
                reason: format!(
                    "action {} acts again on the execution of action {}: a plan acts on an \
                     execution once",
                    a.n, plan.actions[j].n
                ),
            });
        }
        same.push(i);
    }
    Ok(by_pair)
}

/// The header against what it summarises: the time its audit read the oldest action, its counts.
fn check_header(plan: &Plan, oldest: Option<i64>) -> Result<(), PlanError> {
    let h = &plan.header;
    let bad = |line: u64, reason: String| PlanError::Bad {
        path: plan.path.clone(),
        line,
        reason,
    };
    if let Some(t) = oldest.filter(|t| *t != h.audit.audited_at_ms) {
        return Err(bad(
            1,
            format!(
                "the header says its audit was read at {}, and the audit read its oldest action \
                 at {}: the header was edited",
                h.audit.audited_at_ms, t
            ),
        ));
    }
    let mut counts: BTreeMap<_, u64> = BTreeMap::new();
    for a in &plan.actions {
        let key = (&a.account_id, &a.region, &a.job_id, &a.action, &a.class);
        *counts.entry(key).or_default() += 1;
    }
    let told: BTreeMap<_, u64> = h
        .counts
        .iter()
        .map(|c| {
            (
                (&c.account_id, &c.region, &c.job_id, &c.action, &c.class),
                c.count,
            )
        })
        .collect();
    if counts != told {
        return Err(bad(
            1,
            "the header's counts are not those of its actions: the header was edited".into(),
        ));
    }
    Ok(())
}
