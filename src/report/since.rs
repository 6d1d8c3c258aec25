//! "Since the previous audit": the [`Changes`] of a report with `--baseline`, as terminal text, JSON
//! and an HTML section; and the trend over the audits a dataset keeps (`--trend`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::changes::{ChangeCounts, Changes};
use super::classify::Class;
use super::render::{iso_utc, thousands};
use super::Report;
use super::TrendPoint;

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

/// Renders the changes and the trend into a whole report's JSON, when it has them.
pub fn attach_json(doc: &mut Value, r: &Report) {
    if let Some(c) = &r.changes {
        doc["changes"] = json(c);
    }
    if let Some(t) = &r.trend {
        doc["trend"] = t
            .iter()
            .map(|p| {
                let mut m = serde_json::Map::new();
                m.insert("run_id".into(), json!(p.run_id));
                m.insert("date".into(), json!(p.date));
                m.insert("complete".into(), json!(p.complete));
                m.insert("total".into(), json!(p.totals.total));
                for c in Class::ALL {
                    m.insert(c.as_str().into(), json!(p.totals.count(c)));
                }
                Value::Object(m)
            })
            .collect();
    }
}

fn label(p: &TrendPoint) -> String {
    p.date
        .clone()
        .or_else(|| p.run_id.clone())
        .unwrap_or_else(|| "(audit)".into())
}

/// The terminal table of the trend.
pub fn trend_terminal(out: &mut String, t: &[TrendPoint]) {
    let _ = writeln!(out);
    let _ = writeln!(out, "audits, oldest first:");
    let w = t.iter().map(|p| label(p).len()).max().unwrap_or(0).max(5);
    let mut head = format!("  {:<w$}  {:>10}", "audit", "total");
    for c in Class::ALL {
        head.push_str(&format!("  {:>17}", c.as_str()));
    }
    let _ = writeln!(out, "{head}");
    for p in t {
        let mut line = format!("  {:<w$}  {:>10}", label(p), thousands(p.totals.total));
        for c in Class::ALL {
            line.push_str(&format!("  {:>17}", thousands(p.totals.count(c))));
        }
        if !p.complete {
            line.push_str("  (incomplete)");
        }
        let _ = writeln!(out, "{line}");
    }
}

/// The HTML section of the trend: a line chart of the stuck and timed-out counts per audit.
pub fn trend_html(o: &mut String, t: &[TrendPoint], esc: fn(&str) -> String) {
    const W: f64 = 640.0;
    const H: f64 = 200.0;
    let lines = [
        (Class::StuckQueued, "#64748b"),
        (Class::StaleInProgress, "#3b82f6"),
        (Class::TimedOut, "#f97316"),
    ];
    let max = t
        .iter()
        .flat_map(|p| lines.iter().map(|(c, _)| p.totals.count(*c)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |i: usize| {
        if t.len() < 2 {
            W / 2.0
        } else {
            40.0 + i as f64 * (W - 60.0) / (t.len() - 1) as f64
        }
    };
    let y = |n: u64| H - 20.0 - (n as f64 / max) * (H - 40.0);
    let _ = write!(
        o,
        "<section><h2>Trend</h2><svg class=\"trend\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"stuck and timed-out executions per audit\">"
    );
    let _ = write!(
        o,
        "<text x=\"4\" y=\"14\" font-size=\"11\">{}</text>",
        thousands(max as u64)
    );
    for (class, colour) in lines {
        let points: Vec<String> = t
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.totals.count(class))))
            .collect();
        let _ = write!(
            o,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            class.as_str()
        );
    }
    for (i, p) in t.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            x(i),
            H - 4.0,
            esc(&label(p))
        );
    }
    o.push_str("</svg><p class=\"sub\">");
    for (class, colour) in lines {
        let _ = write!(
            o,
            "<span style=\"color:{colour}\">&#9632;</span> {} ",
            class.as_str()
        );
    }
    o.push_str("</p><div class=\"scroll\"><table><tr><th>audit</th><th>total</th>");
    for c in Class::ALL {
        let _ = write!(o, "<th>{}</th>", c.as_str());
    }
    o.push_str("</tr>");
    for p in t {
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td>",
            esc(&label(p)),
            thousands(p.totals.total)
        );
        for c in Class::ALL {
            let _ = write!(o, "<td class=\"num\">{}</td>", thousands(p.totals.count(c)));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table></div></section>\n");
}
