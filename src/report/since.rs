//! "Since the previous audit": the [`Changes`] of a report with `--baseline`, as terminal text, JSON
//! and an HTML section; and the trend over the audits a dataset keeps (`--trend`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::changes::{ChangeCounts, Changes};
use super::render::{iso_utc, thousands};
use super::Report;

/// A status in a transition: `(new)` before, `(gone)` now.
fn shown(s: &Option<String>, absent: &'static str) -> String {
    s.clone().unwrap_or_else(|| absent.to_string())
}

/// The terminal section.
pub fn terminal(out: &mut String, c: &Changes) {
    let _ = writeln!(out);
    let _ = writeln!(out, "since the previous audit ({}):", c.baseline.display());
    let line = |t: &ChangeCounts| {
        t.named()
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  all jobs: {}", line(&c.totals));
    if c.jobs.len() > 1 {
        for (job, t) in &c.jobs {
            let _ = writeln!(out, "  {job}: {}", line(t));
        }
    }
    let moved: Vec<(String, u64)> = c
        .transitions
        .iter()
        .filter(|((a, b), _)| a != b)
        .map(|((a, b), n)| {
            (
                format!("{} -> {}", shown(a, "(new)"), shown(b, "(gone)")),
                *n,
            )
        })
        .collect();
    let same: u64 = c
        .transitions
        .iter()
        .filter(|((a, b), _)| a == b)
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(
        out,
        "  transitions ({} executions kept their status):",
        thousands(same)
    );
    let w = moved.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    for (t, n) in &moved {
        let _ = writeln!(out, "    {t:<w$}  {:>9}", thousands(*n));
    }
    if !c.still_stuck_oldest.is_empty() {
        let _ = writeln!(out, "  stuck across audits, first seen stuck first:");
        for s in &c.still_stuck_oldest {
            let _ = writeln!(
                out,
                "    {}  {} / {}",
                iso_utc(s.first_seen_stuck_ms, false),
                s.job_id,
                s.thing_name
            );
        }
    }
}

fn counts_json(t: &ChangeCounts) -> serde_json::Map<String, Value> {
    t.named()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

/// The `changes` object of `--json`.
pub fn json(c: &Changes) -> Value {
    let jobs: Vec<Value> = c
        .jobs
        .iter()
        .map(|(job, t)| {
            let mut m = counts_json(t);
            m.insert("job_id".into(), json!(job));
            Value::Object(m)
        })
        .collect();
    let transitions: Vec<Value> = c
        .transitions
        .iter()
        .map(|((a, b), n)| json!({"from": a, "to": b, "count": n}))
        .collect();
    let still: Vec<Value> = c
        .still_stuck_oldest
        .iter()
        .map(|s| {
            json!({
                "job_id": s.job_id,
                "thing_name": s.thing_name,
                "first_seen_stuck": iso_utc(s.first_seen_stuck_ms, true),
            })
        })
        .collect();
    json!({
        "baseline": c.baseline.to_string_lossy(),
        "totals": Value::Object(counts_json(&c.totals)),
        "jobs": jobs,
        "transitions": transitions,
        "still_stuck_oldest": still,
    })
}

/// The HTML section "Since the previous audit" (`esc` escapes dataset values).
pub fn html(o: &mut String, c: &Changes, esc: fn(&str) -> String) {
    let _ = write!(
        o,
        "<section><h2>Since the previous audit</h2><p class=\"sub\">baseline \
         <span class=\"mono\">{}</span></p><div class=\"scroll\"><table><tr><th>job</th>",
        esc(&c.baseline.to_string_lossy())
    );
    for (k, _) in c.totals.named() {
        let _ = write!(o, "<th>{k}</th>");
    }
    o.push_str("</tr>");
    let row = |o: &mut String, name: &str, t: &ChangeCounts, class: &str| {
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td class=\"mono\">{}</td>",
            esc(name)
        );
        for (_, v) in t.named() {
            let _ = write!(o, "<td class=\"num\">{}</td>", thousands(v));
        }
        o.push_str("</tr>");
    };
    for (job, t) in &c.jobs {
        row(o, job, t, "");
    }
    row(o, "all jobs", &c.totals, "all");
    o.push_str("</table></div><h3>Transitions</h3><div class=\"scroll\"><table><tr><th>before</th><th>now</th><th>executions</th></tr>");
    for ((a, b), n) in &c.transitions {
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&shown(a, "(new)")),
            esc(&shown(b, "(gone)")),
            thousands(*n)
        );
    }
    o.push_str("</table></div></section>\n");
}

/// Renders the changes into a whole report's outputs, when it has them.
pub fn attach_json(doc: &mut Value, r: &Report) {
    if let Some(c) = &r.changes {
        doc["changes"] = json(c);
    }
}
