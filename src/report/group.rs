//! `report --group-by KEY`: the classes (and statuses) of each group of rows that share a value of
//! what the fleet is made of (thing type, thing group, an attribute, connectivity), of the cause or
//! of the job, sorted by stuck share. "FAILED 40% on model M200 with firmware 1.2" is how a rollout
//! gets investigated.
//!
//! A row is counted once in each of its groups: a thing in two thing groups counts in both, and a
//! row with no value is counted under `(none)` (`unknown` for connectivity).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::classify::{Cause, Class, Classes, Counts, Execution};

/// What rows are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The thing's type (`thing_type`).
    ThingType,
    /// Each of the thing's groups (`thing_group`).
    ThingGroup,
    /// One attribute of the thing, by name (`attribute:NAME`).
    Attribute(String),
    /// `true`, `false` or `unknown` (`connected`).
    Connected,
    /// A stuck row's cause, `(not stuck)` for the others (`cause`).
    Cause,
    /// The row's job (`job_id`).
    JobId,
}

/// The value of a row that has none.
const NONE: &str = "(none)";

impl GroupBy {
    /// `thing_type`, `thing_group`, `attribute:NAME`, `connected`, `cause`, `job_id`.
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        Ok(match s {
            "thing_type" => GroupBy::ThingType,
            "thing_group" => GroupBy::ThingGroup,
            "connected" => GroupBy::Connected,
            "cause" => GroupBy::Cause,
            "job_id" => GroupBy::JobId,
            _ => match s.strip_prefix("attribute:") {
                Some(name) if !name.is_empty() => GroupBy::Attribute(name.to_string()),
                _ => {
                    return Err(format!(
                        "{s:?} is not a key: thing_type, thing_group, attribute:NAME, connected, \
                         cause or job_id"
                    ))
                }
            },
        })
    }

    /// The key as the flag spells it.
    pub fn key(&self) -> String {
        match self {
            GroupBy::ThingType => "thing_type".into(),
            GroupBy::ThingGroup => "thing_group".into(),
            GroupBy::Attribute(n) => format!("attribute:{n}"),
            GroupBy::Connected => "connected".into(),
            GroupBy::Cause => "cause".into(),
            GroupBy::JobId => "job_id".into(),
        }
    }

    /// The groups row `e` is in.
    fn values(&self, e: &Execution<'_>, cause: Option<Cause>, mut f: impl FnMut(&str)) {
        match self {
            GroupBy::ThingType => f(e.thing.thing_type().unwrap_or(NONE)),
            GroupBy::ThingGroup => {
                let mut any = false;
                e.thing.each_group(|g| {
                    any = true;
                    f(g)
                });
                if !any {
                    f(NONE)
                }
            }
            GroupBy::Attribute(name) => f(e.thing.attribute(name).unwrap_or(NONE)),
            GroupBy::Connected => f(match e.connected {
                Some(true) => "true",
                Some(false) => "false",
                None => "unknown",
            }),
            GroupBy::Cause => f(cause.map_or("(not stuck)", Cause::as_str)),
            GroupBy::JobId => f(e.job_id),
        }
    }
}

/// The counts of every group seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    by: BTreeMap<String, Counts>,
}

/// One group of the report: its value and its rows' counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The value the group's rows share.
    pub value: String,
    /// Its rows' counts.
    pub counts: Counts,
}

/// Rows stuck (`stuck_queued`, `stale_in_progress`) per row of the group.
fn stuck_share(c: &Counts) -> f64 {
    let stuck = c.count(Class::StuckQueued) + c.count(Class::StaleInProgress);
    if c.total == 0 {
        0.0
    } else {
        stuck as f64 / c.total as f64
    }
}

impl Groups {
    /// Counts row `e` in each of its groups.
    pub(crate) fn add(
        &mut self,
        by: &GroupBy,
        e: &Execution<'_>,
        classes: Classes,
        cause: Option<(Class, Cause)>,
    ) {
        by.values(e, cause.map(|(_, c)| c), |v| {
            let counts = match self.by.get_mut(v) {
                Some(c) => c,
                None => self.by.entry(v.to_string()).or_default(),
            };
            counts.add(e.status, classes, cause);
        });
    }

    /// The groups, the largest stuck share first (then the most rows, then by value).
    pub(crate) fn finish(self) -> Vec<Group> {
        let mut v: Vec<Group> = self
            .by
            .into_iter()
            .map(|(value, counts)| Group { value, counts })
            .collect();
        v.sort_by(|a, b| {
            stuck_share(&b.counts)
                .total_cmp(&stuck_share(&a.counts))
                .then(b.counts.total.cmp(&a.counts.total))
                .then(a.value.cmp(&b.value))
        });
        v
    }
}

fn pct(n: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

/// The statuses shown beside the classes in the text table.
const STATUS_COLUMNS: [&str; 3] = ["SUCCEEDED", "FAILED", "TIMED_OUT"];

/// The groups as a text table: the value, rows, stuck share, the stuck classes and the share of a
/// few statuses.
pub(crate) fn text(out: &mut String, key: &str, groups: &[Group]) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "by {key} (largest stuck share first; shares are of all the group's rows):"
    );
    if groups
        .iter()
        .all(|g| g.value == NONE || g.value == "unknown")
    {
        let _ = writeln!(
            out,
            "  note: no row has a {key} (a dataset without the run's thing context, or a name no \
             thing has)"
        );
    }
    let vw = groups
        .iter()
        .map(|g| super::render::printable(&g.value).chars().count())
        .chain([key.len()])
        .max()
        .unwrap_or(5);
    let _ = writeln!(
        out,
        "  {:<vw$}  {:>9}  {:>7}  {:>12}  {:>17}  {:>9}  {:>7}  {:>9}  {:>9}",
        key,
        "rows",
        "stuck",
        "stuck_queued",
        "stale_in_progress",
        "timed_out",
        "waiting",
        "SUCCEEDED",
        "FAILED"
    );
    for g in groups {
        let c = &g.counts;
        let _ = writeln!(
            out,
            "  {:<vw$}  {:>9}  {:>7}  {:>12}  {:>17}  {:>9}  {:>7}  {:>9}  {:>9}",
            super::render::printable(&g.value),
            c.total,
            pct(
                c.count(Class::StuckQueued) + c.count(Class::StaleInProgress),
                c.total
            ),
            c.count(Class::StuckQueued),
            c.count(Class::StaleInProgress),
            c.count(Class::TimedOut),
            c.count(Class::Waiting),
            pct(c.status(STATUS_COLUMNS[0]), c.total),
            pct(c.status(STATUS_COLUMNS[1]), c.total),
        );
    }
}

/// `groups: [{key, value, total, classes, by_status}]`.
pub(crate) fn json(key: &str, groups: &[Group]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| {
                let classes: Map<String, Value> = Class::ALL
                    .iter()
                    .map(|k| (k.as_str().to_string(), json!(g.counts.count(*k))))
                    .collect();
                json!({
                    "key": key,
                    "value": g.value,
                    "total": g.counts.total,
                    "classes": classes,
                    "by_status": g.counts.by_status,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_name_themselves() {
        for k in [
            "thing_type",
            "thing_group",
            "attribute:firmware",
            "connected",
            "cause",
            "job_id",
        ] {
            assert_eq!(GroupBy::parse(k).unwrap().key(), k);
        }
        assert!(GroupBy::parse("attribute:").is_err());
        assert!(GroupBy::parse("model")
            .unwrap_err()
            .contains("attribute:NAME"));
    }
}
