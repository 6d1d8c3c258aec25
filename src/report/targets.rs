//! The report's `targets` table: per account and region of a dataset written over several targets
//! (an organization-wide audit), its executions, stuck and timed-out counts, and the targets that
//! could not be audited (from the manifest, with their reasons).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::classify::Class;
use super::classify::Counts;
use super::Report;
use crate::audit::summary::thousands;
use crate::dataset::FailedTarget;

/// One target of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    /// `ACCOUNT/REGION` (as an organization-wide run names its targets), or the run's own label for a
    /// target that could not be audited.
    pub target: String,
    /// Its rows' counts (none for a target not audited).
    pub counts: Counts,
    /// Why it could not be audited.
    pub error: Option<String>,
}

/// Per-target counts, keyed by (account, region) of the rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetTally {
    by_origin: BTreeMap<(String, String), Counts>,
}

impl TargetTally {
    /// Counts one row of `account` in `region` (rows without either are not a target's).
    pub fn add(
        &mut self,
        account: Option<&str>,
        region: Option<&str>,
        status: Option<&str>,
        classes: super::classify::Classes,
    ) {
        if account.is_none() && region.is_none() {
            return;
        }
        let key = (
            account.unwrap_or("?").to_string(),
            region.unwrap_or("?").to_string(),
        );
        self.by_origin
            .entry(key)
            .or_default()
            .add(status, classes, None);
    }

    /// The targets, in (account, region) order, then the failed ones; none for a dataset of one
    /// target that nothing failed in.
    pub fn finish(self, failed: &[FailedTarget]) -> Vec<TargetReport> {
        if self.by_origin.len() < 2 && failed.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<TargetReport> = self
            .by_origin
            .into_iter()
            .map(|((a, r), counts)| TargetReport {
                target: format!("{a}/{r}"),
                counts,
                error: None,
            })
            .collect();
        out.extend(failed.iter().map(|f| TargetReport {
            target: f.target.clone(),
            counts: Counts::default(),
            error: Some(f.error.clone()),
        }));
        out
    }
}

fn stuck(c: &Counts) -> u64 {
    c.count(Class::StuckQueued) + c.count(Class::StaleInProgress)
}

/// Above this many targets the text lists only those with something to look at.
const TEXT_ROWS: usize = 20;

/// The text section: a line per target (or, over many, per target with stuck, timed-out or error
/// rows, and every failed one).
pub fn terminal(out: &mut String, r: &Report) {
    if r.targets.is_empty() {
        return;
    }
    let failed = r.targets.iter().filter(|t| t.error.is_some()).count();
    let _ = writeln!(out);
    let _ = writeln!(out, "targets: {} ({} not audited)", r.targets.len(), failed);
    let w = r.targets.iter().map(|t| t.target.len()).max().unwrap_or(0);
    let many = r.targets.len() > TEXT_ROWS;
    let _ = writeln!(
        out,
        "  {:<w$}  {:>10}  {:>8}  {:>9}  {:>7}",
        "target", "executions", "stuck", "timed_out", "errors"
    );
    for t in &r.targets {
        let c = &t.counts;
        let notable = stuck(c) + c.count(Class::TimedOut) + c.count(Class::Error) > 0;
        match &t.error {
            Some(e) => {
                let _ = writeln!(out, "  {:<w$}  not audited: {e}", t.target);
            }
            None if many && !notable => {}
            None => {
                let _ = writeln!(
                    out,
                    "  {:<w$}  {:>10}  {:>8}  {:>9}  {:>7}",
                    t.target,
                    thousands(c.total),
                    thousands(stuck(c)),
                    thousands(c.count(Class::TimedOut)),
                    thousands(c.count(Class::Error))
                );
            }
        }
    }
    if many {
        let _ = writeln!(
            out,
            "  (targets with nothing stuck, timed out or in error are in --json)"
        );
    }
}

/// The `targets` array of `--json`: `target`, `total`, every class count, and `error` for a target
/// not audited.
pub fn json(r: &Report) -> Value {
    r.targets
        .iter()
        .map(|t| {
            let mut m = serde_json::Map::new();
            m.insert("target".into(), json!(t.target));
            m.insert("total".into(), json!(t.counts.total));
            for c in Class::ALL {
                m.insert(c.as_str().into(), json!(t.counts.count(c)));
            }
            if let Some(e) = &t.error {
                m.insert("error".into(), json!(e));
            }
            Value::Object(m)
        })
        .collect()
}

/// The HTML section: the same table.
pub fn html(o: &mut String, r: &Report, esc: fn(&str) -> String) {
    if r.targets.is_empty() {
        return;
    }
    o.push_str("<section><h2>Targets</h2><div class=\"scroll\"><table><tr><th>target</th><th>executions</th><th>stuck</th><th>timed_out</th><th>errors</th><th class=\"l\">not audited: why</th></tr>");
    for t in &r.targets {
        let c = &t.counts;
        if let Some(why) = &t.error {
            // Not audited: no counts to show, and the reason wraps within the page.
            let _ = write!(
                o,
                "<tr><td class=\"mono\">{}</td><td class=\"l\" colspan=\"4\">not audited</td><td class=\"why\">{}</td></tr>",
                esc(&t.target),
                esc(why)
            );
            continue;
        }
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&t.target),
            c.total,
            stuck(c),
            c.count(Class::TimedOut),
            c.count(Class::Error),
            esc(t.error.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table></div></section>\n");
}
