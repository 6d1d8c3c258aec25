//! The report as terminal text and as the `--json` document, plus the time formatting both share.
//!
//! The terminal text is aligned for a monospace terminal; colour is only added when asked (the caller
//! decides whether stdout is a terminal), and padding is computed before colour so it stays aligned.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::classify::Class;
use super::classify::Counts;
use super::tally::OldestPair;
use super::Report;

const DAY_MS: i64 = 86_400_000;

pub(crate) use crate::time::iso_utc;

/// An age in two units: `61d 4h`, `5h 12m`, `12m 5s`, `45s`.
pub(crate) fn age_text(ms: i64) -> String {
    crate::time::span_text((ms.max(0) / 1000) as u64)
}

/// A threshold in the largest unit that states it exactly: `24h`, `90m`, `30s`, `1500ms`, `14d`
/// (days only from two days on).
pub(crate) fn duration_text(ms: i64) -> String {
    for (unit, size) in [("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        // `24h` and `36h` read better than `1d` and `1.5d`; days from two on.
        if ms % size == 0 && (unit != "d" || ms >= 2 * DAY_MS) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

pub use crate::audit::summary::thousands;

/// One line per class: its name, its rule with the threshold, and the flag that sets it.
pub(crate) fn class_rules(r: &Report) -> [(Class, String, Option<&'static str>); 8] {
    let t = &r.thresholds;
    [
        (
            Class::StuckQueued,
            format!(
                "QUEUED for more than {} when fetched, its job running",
                duration_text(t.queued_after_ms())
            ),
            Some("--queued-after"),
        ),
        (
            Class::StaleInProgress,
            format!(
                "IN_PROGRESS with no update for {} or more (or its job's in-progress timeout, if shorter)",
                duration_text(t.stale_after_ms())
            ),
            Some("--stale-after"),
        ),
        (Class::TimedOut, "status TIMED_OUT".into(), None),
        (
            Class::NearTimeout,
            format!(
                "IN_PROGRESS with under {} before it times out",
                duration_text(t.near_timeout_ms())
            ),
            Some("--near-timeout"),
        ),
        (
            Class::Waiting,
            "QUEUED, its job not running (SCHEDULED outside its window, COMPLETED, CANCELED): \
             not stuck"
                .into(),
            None,
        ),
        (
            Class::NoTimeout,
            "QUEUED or IN_PROGRESS, its job without an in-progress timeout: never ends by itself"
                .into(),
            None,
        ),
        (
            Class::NotFound,
            "the service has no such execution (outcome not_found): usually a thing the job \
             never targeted, so no action"
                .into(),
            None,
        ),
        (
            Class::Error,
            "the pair could not be described (outcome error)".into(),
            None,
        ),
    ]
}

/// ANSI styling that is a no-op when colour is off.
#[derive(Clone, Copy)]
pub(super) struct Style {
    on: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.on && !text.trim().is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub(super) fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
    fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
    /// Red for the classes that usually need action, yellow for near timeouts, plain for not_found
    /// (usually a pair its job never targeted); only when non-zero.
    fn class_count(self, c: Class, n: u64, text: &str) -> String {
        match (n, c) {
            (0, _) => self.dim(text),
            (_, Class::NotFound | Class::Waiting) => text.to_string(),
            (_, Class::NearTimeout | Class::NoTimeout) => self.paint("33", text),
            _ => self.paint("1;31", text),
        }
    }
}

/// A value from the dataset as the terminal may show it: control characters (an escape sequence, a
/// newline) written escaped, an empty value as `(empty)`.
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() {
        "(empty)".into()
    } else if s.chars().any(char::is_control) {
        s.escape_debug().to_string().into()
    } else {
        s.into()
    }
}

pub(super) fn pct(n: u64, total: u64) -> String {
    if n == 0 || total == 0 {
        String::new()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

/// The side-by-side status and class table of one set of counts.
fn counts_table(out: &mut String, r: &Report, c: &Counts, st: Style) {
    let mut statuses: Vec<(String, u64)> = r
        .statuses
        .iter()
        .map(|s| (s.clone(), c.status(s)))
        .collect();
    if r.totals.no_status > 0 {
        statuses.push(("(no status)".into(), c.no_status));
    }
    let sw = statuses
        .iter()
        .map(|(s, _)| s.chars().count())
        .chain([6])
        .max()
        .unwrap_or(6);
    let cw = Class::ALL
        .iter()
        .map(|c| c.as_str().len())
        .max()
        .unwrap_or(0);
    let nw = thousands(c.total).len().max(5);
    let _ = writeln!(
        out,
        "  {}  {}  {}    {}  {}  {}",
        st.dim(&format!("{:<sw$}", "status")),
        st.dim(&format!("{:>nw$}", "count")),
        st.dim(&format!("{:>6}", "%")),
        st.dim(&format!("{:<cw$}", "class")),
        st.dim(&format!("{:>nw$}", "count")),
        st.dim(&format!("{:>6}", "%")),
    );
    let rows = statuses.len().max(Class::ALL.len());
    for i in 0..rows {
        let left = match statuses.get(i) {
            Some((s, n)) => {
                let line = format!(
                    "{:<sw$}  {:>nw$}  {:>6}",
                    s,
                    thousands(*n),
                    pct(*n, c.total)
                );
                if *n == 0 {
                    st.dim(&line)
                } else {
                    line
                }
            }
            None => " ".repeat(sw + nw + 10),
        };
        let right = match Class::ALL.get(i) {
            Some(k) => {
                let n = c.count(*k);
                format!(
                    "{}  {}",
                    format_args!("{:<cw$}", k.as_str()),
                    st.class_count(
                        *k,
                        n,
                        &format!("{:>nw$}  {:>6}", thousands(n), pct(n, c.total))
                    )
                )
            }
            None => String::new(),
        };
        let line = format!("  {left}    {right}");
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn oldest_table(out: &mut String, pairs: &[OldestPair], st: Style) {
    let head = ["age", "class", "status", "since (UTC)", "job", "thing"];
    let rows: Vec<[String; 6]> = pairs
        .iter()
        .map(|p| {
            [
                age_text(p.age_ms),
                p.class.as_str().to_string(),
                p.status.clone(),
                iso_utc(p.since_ms, false),
                p.job_id.clone(),
                p.thing_name.clone(),
            ]
        })
        .collect();
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = format!("  {:>w0$}", cells[0], w0 = w[0]);
        for i in 1..6 {
            let _ = write!(s, "  {:<wi$}", cells[i], wi = w[i]);
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", st.dim(&line(head)));
    for r in &rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
}

/// See [`Report::render_terminal_with`].
pub fn terminal(r: &Report, top: usize, colour: bool) -> String {
    let st = Style { on: colour };
    let mut out = String::new();
    terminal_head(&mut out, r, st);
    job_tables(&mut out, r, st);
    oldest_section(&mut out, r, top, st);
    super::targets::terminal(&mut out, r);
    if let Some(c) = &r.changes {
        super::since::terminal(&mut out, c);
    }
    if let Some(t) = &r.trend {
        super::since::trend_terminal(&mut out, t);
    }
    out.truncate(out.trim_end().len());
    out
}

/// The report's head: what it is missing (an incomplete audit, targets not audited), the dataset
/// and its size, then each class's rule.
fn terminal_head(out: &mut String, r: &Report, st: Style) {
    if let Some(line) = r.incomplete_text() {
        let _ = writeln!(out, "{}", st.paint("1;31", &line));
    }
    // Targets not audited come first: "no stuck executions" says nothing of their rows.
    let failed = r.targets.iter().filter(|t| t.error.is_some()).count();
    if failed > 0 {
        let line = format!(
            "{} of {} targets were not audited: their executions are not in this report (the \
             targets table below says why; the run's --resume retries them)",
            thousands(failed as u64),
            thousands(r.targets.len() as u64)
        );
        let _ = writeln!(out, "{}", st.paint("1;31", &line));
    }
    let _ = writeln!(
        out,
        "{} {} ({} file{}): {} executions, {} job{}",
        st.bold("fleet-audit report of"),
        r.dataset.display(),
        r.files,
        if r.files == 1 { "" } else { "s" },
        thousands(r.totals.total),
        r.jobs.len(),
        if r.jobs.len() == 1 { "" } else { "s" },
    );
    let _ = writeln!(out);
    let rules = class_rules(r);
    let rw = rules.iter().map(|(_, t, _)| t.len()).max().unwrap_or(0);
    for (class, text, flag) in &rules {
        let line = format!(
            "  {:<18} {:<rw$}  {}",
            class.as_str(),
            text,
            flag.unwrap_or("")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// Each job's counts by status and class, then all jobs' when there are several.
fn job_tables(out: &mut String, r: &Report, st: Style) {
    for j in &r.jobs {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}: {} executions",
            st.bold(&j.job_id),
            thousands(j.counts.total)
        );
        counts_table(out, r, &j.counts, st);
        super::causes::causes_text(out, &j.counts, st);
    }
    if r.jobs.len() > 1 {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}: {} executions",
            st.bold("all jobs"),
            thousands(r.totals.total)
        );
        counts_table(out, r, &r.totals, st);
        super::causes::causes_text(out, &r.totals, st);
    }
    super::causes::why_text(out, r, st);
    if !r.held_up.is_empty() {
        let _ = writeln!(out);
        super::causes::held_up_text(out, r);
    }
    if let Some((key, groups)) = &r.groups {
        super::group::text(out, key, groups);
    }
}

/// How many executions are stuck or timed out, and the `top` oldest of them.
fn oldest_section(out: &mut String, r: &Report, top: usize, st: Style) {
    let _ = writeln!(out);
    let aged = r.totals.stuck_or_timed_out();
    let shown = &r.oldest[..top.min(r.oldest.len())];
    if aged == 0 {
        let _ = writeln!(out, "no stuck or timed-out executions");
    } else if shown.is_empty() {
        let _ = writeln!(out, "{} stuck or timed-out executions", thousands(aged));
    } else {
        let _ = writeln!(
            out,
            "{} {} of {} stuck or timed-out executions",
            st.bold("oldest"),
            shown.len(),
            thousands(aged)
        );
        oldest_table(out, shown, st);
    }
}

/// A duration in seconds as a JSON number: an integer when whole.
fn seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

pub(super) fn oldest_json(pairs: &[OldestPair]) -> Value {
    pairs
        .iter()
        .map(|p| {
            json!({
                "thing_name": p.thing_name,
                "job_id": p.job_id,
                "class": p.class.as_str(),
                "status": p.status,
                "since": iso_utc(p.since_ms, true),
                "age_s": p.age_ms / 1000,
            })
        })
        .collect()
}

/// `total`, `by_status` (every status of the dataset, zeros included), `no_status`, the classes.
fn counts_json(m: &mut Map<String, Value>, r: &Report, c: &Counts) {
    m.insert("total".into(), json!(c.total));
    let by: Map<String, Value> = r
        .statuses
        .iter()
        .map(|s| (s.clone(), json!(c.status(s))))
        .collect();
    m.insert("by_status".into(), Value::Object(by));
    m.insert("no_status".into(), json!(c.no_status));
    for k in Class::ALL {
        m.insert(k.as_str().into(), json!(c.count(k)));
    }
    m.insert("causes".into(), super::causes::causes_json(c));
}

/// See [`Report::to_json`].
pub fn json(r: &Report) -> Value {
    let t = &r.thresholds;
    let mut totals = Map::new();
    totals.insert("jobs".into(), json!(r.jobs.len()));
    counts_json(&mut totals, r, &r.totals);
    totals.insert("oldest".into(), oldest_json(&r.oldest));
    let jobs: Vec<Value> = r
        .jobs
        .iter()
        .map(|j| {
            let mut m = Map::new();
            m.insert("job_id".into(), json!(j.job_id));
            counts_json(&mut m, r, &j.counts);
            m.insert("oldest".into(), oldest_json(&j.oldest));
            Value::Object(m)
        })
        .collect();
    let held_up: Vec<Value> = r
        .held_up
        .iter()
        .map(|(job, n)| json!({"job_id": job, "holds_up": n}))
        .collect();
    let mut doc = json!({
        "dataset": r.dataset.to_string_lossy(),
        "files": r.files,
        "complete": r.complete(),
        "pairs_expected": r.pairs_expected(),
        "being_written_by": r.writer,
        "thresholds": {
            "queued_after_s": seconds(t.queued_after_ms()),
            "stale_after_s": seconds(t.stale_after_ms()),
            "near_timeout_s": seconds(t.near_timeout_ms()),
            "top": t.top,
        },
        "totals": totals,
        "jobs": jobs,
        "why": super::causes::why_json(r),
        "held_up": held_up,
    });
    if let Some((key, groups)) = &r.groups {
        doc["groups"] = super::group::json(key, groups);
    }
    if !r.ignored.is_empty() {
        doc["ignored_files"] = json!(r.ignored);
    }
    if !r.targets.is_empty() {
        doc["targets"] = super::targets::json(r);
    }
    super::since::attach_json(&mut doc, r);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(iso_utc(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_764_400_000_123, true), "2025-11-29T07:06:40.123Z");
        assert_eq!(iso_utc(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(-1, true), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn durations_and_ages_read_well() {
        assert_eq!(duration_text(86_400_000), "24h");
        assert_eq!(duration_text(14 * 86_400_000), "14d");
        assert_eq!(duration_text(5_400_000), "90m");
        assert_eq!(duration_text(1_500), "1500ms");
        assert_eq!(age_text(59_999), "59s");
        assert_eq!(age_text(90 * 60_000), "1h 30m");
        assert_eq!(age_text(49 * 3_600_000), "2d 1h");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
