//! "Since the previous audit": the [`Changes`] of a report with `--baseline`, as terminal text, JSON
//! and an HTML section; and the trend over the audits a dataset keeps (`--trend`).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::changes::{ChangeCounts, Changes};
use super::classify::Class;
use super::Report;
use super::TrendPoint;
use crate::audit::summary::thousands;
use crate::time::iso_utc;

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
pub(crate) fn attach_json(doc: &mut Value, r: &Report) {
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
pub(crate) fn trend_terminal(out: &mut String, t: &[TrendPoint]) {
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

/// The font size of the trend's axis labels.
const LABEL_SIZE: f64 = 10.0;

/// The width a label takes at `size`, generously: 0.6 em a character, where the page's sans-serif
/// digits, `-` and lower-case letters take at most 0.56 em (Arial's digits), so a layout by it is
/// never clipped.
fn label_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// The HTML section of the trend: a line chart of the stuck and timed-out counts per audit.
pub(crate) fn trend_html(o: &mut String, t: &[TrendPoint], esc: fn(&str) -> String) {
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
    // Each audit's label is centred under its point, so the chart is inset by half the widest label
    // (the first and the last would otherwise run off its edges), and when labels would cover each
    // other only every `step`-th is drawn, the first and the last always.
    let labels: Vec<String> = t.iter().map(label).collect();
    let widest = labels
        .iter()
        .map(|l| label_width(l, LABEL_SIZE))
        .fold(0.0, f64::max);
    let (left, right) = (
        (widest / 2.0 + 4.0).max(40.0),
        W - (widest / 2.0 + 4.0).max(20.0),
    );
    let x = |i: usize| {
        if t.len() < 2 {
            W / 2.0
        } else {
            left + i as f64 * (right - left) / (t.len() - 1) as f64
        }
    };
    let step = if t.len() < 2 {
        1
    } else {
        let spacing = (right - left) / (t.len() - 1) as f64;
        ((widest + 6.0) / spacing).ceil().max(1.0) as usize
    };
    let last = t.len().saturating_sub(1);
    let drawn = |i: usize| i == last || (i.is_multiple_of(step) && last - i >= step);
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
    for line in lines {
        trend_line(o, t, &labels, line, x, y);
    }
    // The scale's foot: 0.
    let _ = write!(
        o,
        "<text x=\"4\" y=\"{:.1}\" font-size=\"11\">0</text>",
        y(0) + 4.0
    );
    for (i, l) in labels.iter().enumerate().filter(|(i, _)| drawn(*i)) {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"{LABEL_SIZE}\" text-anchor=\"middle\">{}</text>",
            x(i),
            H - 4.0,
            esc(l)
        );
    }
    o.push_str("</svg>");
    trend_legend(o, &lines);
    trend_table(o, t, esc);
}

/// One class's line through the audits, with a mark and its count on each audit (one audit alone
/// draws no line).
fn trend_line(
    o: &mut String,
    t: &[TrendPoint],
    labels: &[String],
    (class, colour): (Class, &str),
    x: impl Fn(usize) -> f64,
    y: impl Fn(u64) -> f64,
) {
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
    // A mark on each audit, with its count: one audit alone draws no line.
    for (i, p) in t.iter().enumerate() {
        let n = p.totals.count(class);
        let _ = write!(
            o,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} {}: {}</title></circle>",
            x(i),
            y(n),
            labels[i],
            class.as_str(),
            thousands(n)
        );
    }
}

/// The trend's legend: each line's colour and class.
fn trend_legend(o: &mut String, lines: &[(Class, &str)]) {
    o.push_str("<p class=\"sub\">");
    for (class, colour) in lines {
        let _ = write!(
            o,
            "<span style=\"color:{colour}\">&#9632;</span> {} ",
            class.as_str()
        );
    }
    o.push_str("</p>");
}

/// The trend's table: a row per audit, its total and each class's count.
fn trend_table(o: &mut String, t: &[TrendPoint], esc: fn(&str) -> String) {
    o.push_str("<div class=\"scroll\"><table><tr><th>audit</th><th>total</th>");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A generous width of one character, in em: digits, `-` and lower-case letters of the page's
    /// sans-serif fonts are narrower (Arial's digits 0.556 em), so a label that fits here fits there.
    const CHAR_EM: f64 = 0.6;

    fn attr(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_string())
    }

    /// A `<text>` of the SVG and the box it covers, in viewBox units.
    #[derive(Debug)]
    struct TextBox {
        text: String,
        left: f64,
        right: f64,
        top: f64,
        bottom: f64,
    }

    /// Each `<text>` of the trend's SVG, with the viewBox's width and height.
    fn text_boxes(page: &str) -> (f64, f64, Vec<TextBox>) {
        let svg = &page[page.find("<svg class=\"trend\"").unwrap()..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        let view: Vec<f64> = attr(svg, "viewBox")
            .unwrap()
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(&view[..2], &[0.0, 0.0]);
        let mut boxes = Vec::new();
        for piece in svg.split("<text").skip(1) {
            let tag = &piece[..piece.find('>').unwrap()];
            let text = &piece[tag.len() + 1..piece.find("</text>").unwrap()];
            let chars = text.chars().count() - text.matches('&').count() * 3; // &lt; &gt; &amp;
            let num = |n: &str| attr(tag, n).unwrap().parse::<f64>().unwrap();
            let (x, y, size) = (num("x"), num("y"), num("font-size"));
            let width = chars as f64 * size * CHAR_EM;
            let left = match attr(tag, "text-anchor").as_deref() {
                None | Some("start") => x,
                Some("middle") => x - width / 2.0,
                Some("end") => x - width,
                Some(other) => panic!("anchor {other}"),
            };
            // From the baseline: ascent at most one em above, descent at most a quarter below.
            boxes.push(TextBox {
                text: text.to_string(),
                left,
                right: left + width,
                top: y - size,
                bottom: y + size / 4.0,
            });
        }
        (view[2], view[3], boxes)
    }

    fn point(date: Option<&str>, run_id: &str) -> TrendPoint {
        TrendPoint {
            run_id: Some(run_id.into()),
            date: date.map(str::to_string),
            complete: true,
            totals: Default::default(),
        }
    }

    #[test]
    fn every_trend_label_lies_inside_the_chart_and_none_overlap() {
        let dates = |n: usize| -> Vec<TrendPoint> {
            (0..n)
                .map(|i| point(Some(&format!("2026-12-{:02}", i + 1)), "1764892800-a1b2c3"))
                .collect()
        };
        let undated = |n: usize| -> Vec<TrendPoint> {
            (0..n)
                .map(|i| point(None, &format!("17648{i:05}-a1b2c3")))
                .collect()
        };
        for t in [
            dates(1),
            dates(2),
            dates(5),
            dates(31),
            undated(1),
            undated(3),
            undated(12),
        ] {
            let mut page = String::new();
            trend_html(&mut page, &t, |s| s.to_string());
            let (w, h, boxes) = text_boxes(&page);
            for TextBox {
                text,
                left,
                right,
                top,
                bottom,
            } in &boxes
            {
                assert!(
                    *left >= 0.0 && *right <= w && *top >= 0.0 && *bottom <= h,
                    "{} points: {text:?} spans x {left:.1}..{right:.1}, y {top:.1}..{bottom:.1} of {w} x {h}",
                    t.len()
                );
            }
            // The axis labels (one line, under the chart) never cover each other, and the first and
            // the last audit are always named.
            let axis: Vec<_> = boxes.iter().filter(|b| b.bottom > h - 10.0).collect();
            for pair in axis.windows(2) {
                assert!(
                    pair[0].right <= pair[1].left,
                    "{} points: {pair:?}",
                    t.len()
                );
            }
            assert_eq!(axis.first().unwrap().text, label(&t[0]), "{page}");
            assert_eq!(
                axis.last().unwrap().text,
                label(t.last().unwrap()),
                "{page}"
            );
        }
    }
}
