//! The `--html` page: one self-contained file (inline CSS and SVG, no scripts, nothing fetched) that
//! can be mailed, attached to a ticket or opened offline.
//!
//! Every value that came from the dataset (job ids, thing names, status values) is escaped.

use std::fmt::Write as _;

use super::classify::Class;
use super::classify::Counts;
use super::render::{age_text, class_rules, duration_text, iso_utc, thousands};
use super::tally::{AgeHistogram, AGE_BUCKETS};
use super::Report;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A status's colour: AWS's statuses have fixed ones, others take one of a spare palette by position.
fn status_colour(status: &str, unknown_index: usize) -> &'static str {
    match status {
        "QUEUED" => "#64748b",
        "IN_PROGRESS" => "#3b82f6",
        "SUCCEEDED" => "#16a34a",
        "FAILED" => "#dc2626",
        "TIMED_OUT" => "#f97316",
        "REJECTED" => "#9333ea",
        "REMOVED" => "#a8a29e",
        "CANCELED" => "#eab308",
        _ => ["#db2777", "#0d9488", "#7c3aed", "#0284c7", "#65a30d"][unknown_index % 5],
    }
}

const NO_STATUS_COLOUR: &str = "#e2e8f0";

/// Statuses with their colours, in report order, plus `(no status)` when the dataset has such rows.
fn palette(r: &Report) -> Vec<(String, &'static str)> {
    let mut unknown = 0;
    let mut p: Vec<(String, &'static str)> = r
        .statuses
        .iter()
        .map(|s| {
            let c = status_colour(s, unknown);
            if !super::tally::AWS_STATUSES.contains(&s.as_str()) {
                unknown += 1;
            }
            (s.clone(), c)
        })
        .collect();
    if r.totals.no_status > 0 {
        p.push(("(no status)".into(), NO_STATUS_COLOUR));
    }
    p
}

fn count_of(c: &Counts, status: &str) -> u64 {
    if status == "(no status)" {
        c.no_status
    } else {
        c.status(status)
    }
}

/// Shortens a label for a fixed-width column (the full text stays in a tooltip).
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f8fafc; color: #0f172a;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.sub { color: #475569; margin: 0 0 20px; }
.banner { background: #fef2f2; border: 1px solid #fca5a5; border-left: 6px solid #b91c1c;
  border-radius: 8px; color: #7f1d1d; padding: 12px 16px; margin: 0 0 20px; }
.sub .mono { overflow-wrap: anywhere; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 18px 20px;
  margin: 0 0 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(118px, 1fr)); gap: 10px; margin: 0 0 20px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px; }
.card .n { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: #475569; font-size: 12px; }
.card.bad .n { color: #b91c1c; } .card.warn .n { color: #b45309; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eef2f7; text-align: right; white-space: nowrap; }
td { font-size: 13px; }
th { color: #475569; font-weight: 600; font-size: 11.5px; background: #f8fafc; }
th:first-child, td:first-child { text-align: left; }
td.l, th.l { text-align: left; }
tr.all td { font-weight: 650; border-top: 2px solid #cbd5e1; }
td.zero { color: #cbd5e1; }
td.bad { color: #b91c1c; font-weight: 650; } td.warn { color: #b45309; font-weight: 650; }
.scroll { overflow-x: auto; }
td.advice { text-align: left; white-space: normal; color: #334155; min-width: 14em; max-width: 24em; }
td.ex { text-align: left; white-space: nowrap; font-size: 12px; color: #475569; }
.share { display: inline-block; height: 10px; background: #b91c1c; border-radius: 2px; vertical-align: middle; }
td.why { text-align: left; white-space: normal; overflow-wrap: anywhere; color: #b91c1c; min-width: 18em; }
dl.rules { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.rules dt { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
dl.rules dd { margin: 0; color: #334155; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 0 0 10px; font-size: 12.5px; color: #334155; }
.legend span::before { content: ""; display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 6px; vertical-align: -1px; background: var(--c); }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.empty { color: #64748b; margin: 0; }
footer { color: #94a3b8; font-size: 12px; }
"#;

pub(super) fn class_cell_kind(c: Class, n: u64) -> &'static str {
    match (n, c) {
        (0, _) => "zero",
        // Usually a pair the job never targeted: neutral, not a warning.
        (_, Class::NotFound) => "neutral",
        // A job not running holds its queued executions back on purpose: not stuck.
        (_, Class::Waiting) => "neutral",
        (_, Class::NearTimeout | Class::NoTimeout) => "warn",
        _ => "bad",
    }
}

fn cards(o: &mut String, r: &Report) {
    o.push_str("<div class=\"cards\">");
    let _ = write!(
        o,
        "<div class=\"card\"><div class=\"n\">{}</div><div class=\"k\">executions in {} job{}</div></div>",
        thousands(r.totals.total),
        r.jobs.len(),
        if r.jobs.len() == 1 { "" } else { "s" }
    );
    for c in Class::ALL {
        let n = r.totals.count(c);
        let kind = match class_cell_kind(c, n) {
            "zero" => "",
            k => k,
        };
        let _ = write!(
            o,
            "<div class=\"card {kind}\"><div class=\"n\">{}</div><div class=\"k\">{}</div></div>",
            thousands(n),
            c.as_str()
        );
    }
    o.push_str("</div>\n");
}

fn rules(o: &mut String, r: &Report) {
    o.push_str("<section><h2>Classes</h2><dl class=\"rules\">");
    for (c, text, flag) in class_rules(r) {
        let _ = write!(o, "<dt>{}</dt><dd>{}", c.as_str(), esc(&text));
        if let Some(f) = flag {
            let _ = write!(o, " <span class=\"mono\">({f})</span>");
        }
        o.push_str("</dd>");
    }
    o.push_str("</dl></section>\n");
}

/// One horizontal 100% bar per job, split by status, with the job's total at the right.
fn status_bars(o: &mut String, r: &Report) {
    let pal = palette(r);
    o.push_str("<section><h2>Status by job</h2><div class=\"legend\">");
    for (s, c) in &pal {
        let _ = write!(o, "<span style=\"--c:{c}\">{}</span>", esc(s));
    }
    o.push_str("</div>");
    if r.jobs.is_empty() {
        o.push_str("<p class=\"empty\">The dataset has no rows.</p></section>\n");
        return;
    }
    let (label_w, bar_w, total_w, row_h, bar_h) = (170.0, 760.0, 110.0, 30.0, 20.0);
    let width = label_w + bar_w + total_w;
    let height = row_h * r.jobs.len() as f64 + 4.0;
    let _ = write!(
        o,
        "<svg role=\"img\" aria-label=\"Status by job\" viewBox=\"0 0 {width} {height}\" width=\"100%\">"
    );
    for (i, j) in r.jobs.iter().enumerate() {
        let y = 2.0 + i as f64 * row_h;
        let mid = y + row_h / 2.0;
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{mid:.1}\" dy=\"0.35em\" text-anchor=\"end\" font-size=\"13\" fill=\"#0f172a\">\
             <title>{}</title>{}</text>",
            label_w - 10.0,
            esc(&j.job_id),
            esc(&fit(&j.job_id, 22))
        );
        let by = mid - bar_h / 2.0;
        let _ = write!(
            o,
            "<rect x=\"{label_w}\" y=\"{by:.1}\" width=\"{bar_w}\" height=\"{bar_h}\" fill=\"#f1f5f9\"/>"
        );
        let total = j.counts.total.max(1) as f64;
        let mut x = label_w;
        for (s, c) in &pal {
            let n = count_of(&j.counts, s);
            if n == 0 {
                continue;
            }
            let w = bar_w * n as f64 / total;
            let share = n as f64 * 100.0 / total;
            let _ = write!(
                o,
                "<rect x=\"{x:.2}\" y=\"{by:.1}\" width=\"{w:.2}\" height=\"{bar_h}\" fill=\"{c}\">\
                 <title>{}: {} ({share:.1}%)</title></rect>",
                esc(s),
                thousands(n)
            );
            if w >= 44.0 {
                let text_fill = if *c == NO_STATUS_COLOUR || *c == "#eab308" {
                    "#0f172a"
                } else {
                    "#fff"
                };
                let _ = write!(
                    o,
                    "<text x=\"{:.2}\" y=\"{mid:.1}\" dy=\"0.35em\" text-anchor=\"middle\" font-size=\"11\" \
                     fill=\"{text_fill}\" pointer-events=\"none\">{share:.0}%</text>",
                    x + w / 2.0
                );
            }
            x += w;
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{mid:.1}\" dy=\"0.35em\" font-size=\"13\" fill=\"#334155\">{}</text>",
            label_w + bar_w + 10.0,
            thousands(j.counts.total)
        );
    }
    o.push_str("</svg></section>\n");
}

/// A round axis maximum at or above `n`: 1, 2 or 5 times a power of ten.
fn nice_max(n: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= n {
                return m * p;
            }
        }
        p = p.saturating_mul(10);
    }
}

/// Stacked columns per age bucket: `stuck_queued` at the bottom, `stale_in_progress` above.
fn age_histogram(o: &mut String, r: &Report) {
    let h = &r.stuck_ages;
    let (cq, cp) = (status_colour("QUEUED", 0), status_colour("IN_PROGRESS", 0));
    let _ = write!(
        o,
        "<section><h2>How long stuck executions have been stuck</h2><div class=\"legend\">\
         <span style=\"--c:{cq}\">stuck_queued (since queued_at)</span>\
         <span style=\"--c:{cp}\">stale_in_progress (since last_updated_at)</span></div>"
    );
    if h.total() == 0 {
        o.push_str("<p class=\"empty\">No stuck executions.</p></section>\n");
        return;
    }
    let (width, height) = (1000.0, 300.0);
    let (left, right, top, bottom) = (56.0, 12.0, 18.0, 42.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = nice_max(h.buckets.iter().map(|b| b[0] + b[1]).max().unwrap_or(1));
    let y_of = |v: f64| top + plot_h - plot_h * v / max as f64;
    let _ = write!(
        o,
        "<svg role=\"img\" aria-label=\"Age histogram of stuck executions\" viewBox=\"0 0 {width} {height}\" \
         width=\"100%\">"
    );
    for k in 0..=4 {
        let v = max as f64 * k as f64 / 4.0;
        let y = y_of(v);
        let _ = write!(
            o,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" dy=\"0.35em\" text-anchor=\"end\" font-size=\"12\" fill=\"#64748b\">{}</text>",
            width - right,
            if k == 0 { "#94a3b8" } else { "#e2e8f0" },
            left - 8.0,
            thousands(v.round() as u64)
        );
    }
    age_columns(o, h, left, plot_w, top + plot_h, y_of, (cq, cp));
    let _ = write!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#64748b\">age when fetched</text>",
        left + plot_w / 2.0,
        height - 4.0
    );
    o.push_str("</svg></section>\n");
}

/// A stacked column per age bucket (`stuck_queued` in `cq` below, `stale_in_progress` in `cp`
/// above), its total over it and its label under the plot, whose foot is at `base`.
fn age_columns(
    o: &mut String,
    h: &AgeHistogram,
    left: f64,
    plot_w: f64,
    base: f64,
    y_of: impl Fn(f64) -> f64,
    (cq, cp): (&str, &str),
) {
    let slot = plot_w / AGE_BUCKETS.len() as f64;
    let bw = slot * 0.68;
    for (i, (b, (_, label))) in h.buckets.iter().zip(AGE_BUCKETS).enumerate() {
        let x = left + slot * i as f64 + (slot - bw) / 2.0;
        let (q, p) = (b[0] as f64, b[1] as f64);
        if q > 0.0 {
            let y = y_of(q);
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{cq}\">\
                 <title>{label}: {} stuck_queued</title></rect>",
                base - y,
                thousands(b[0])
            );
        }
        if p > 0.0 {
            let y = y_of(q + p);
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{cp}\">\
                 <title>{label}: {} stale_in_progress</title></rect>",
                y_of(q) - y,
                thousands(b[1])
            );
        }
        if q + p > 0.0 {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#0f172a\">{}</text>",
                x + bw / 2.0,
                y_of(q + p) - 5.0,
                thousands(b[0] + b[1])
            );
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#334155\">{label}</text>",
            x + bw / 2.0,
            base + 20.0
        );
    }
}

pub(super) fn num_cell(o: &mut String, n: u64, kind: &str) {
    let _ = write!(o, "<td class=\"{kind}\">{}</td>", thousands(n));
}

fn classes_table(o: &mut String, r: &Report) {
    o.push_str("<section><h2>Classes by job</h2><div class=\"scroll\"><table><tr><th>job</th><th>total</th>");
    for c in Class::ALL {
        let _ = write!(o, "<th>{}</th>", c.as_str());
    }
    o.push_str("</tr>");
    let row = |o: &mut String, name: &str, c: &Counts, class: &str| {
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td class=\"mono\">{}</td>",
            esc(name)
        );
        num_cell(o, c.total, "");
        for k in Class::ALL {
            let n = c.count(k);
            num_cell(o, n, class_cell_kind(k, n));
        }
        o.push_str("</tr>");
    };
    job_rows(o, r, row);
}

/// A row per job, then "all jobs" when there are several, and the table's end.
fn job_rows(o: &mut String, r: &Report, row: impl Fn(&mut String, &str, &Counts, &str)) {
    for j in &r.jobs {
        row(o, &j.job_id, &j.counts, "");
    }
    if r.jobs.len() > 1 {
        row(o, "all jobs", &r.totals, "all");
    }
    o.push_str("</table></div></section>\n");
}

fn statuses_table(o: &mut String, r: &Report) {
    let pal = palette(r);
    o.push_str("<section><h2>Statuses by job</h2><div class=\"scroll\"><table><tr><th>job</th><th>total</th>");
    for (s, _) in &pal {
        let _ = write!(o, "<th>{}</th>", esc(s));
    }
    o.push_str("</tr>");
    let row = |o: &mut String, name: &str, c: &Counts, class: &str| {
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td class=\"mono\">{}</td>",
            esc(name)
        );
        num_cell(o, c.total, "");
        for (s, _) in &pal {
            let n = count_of(c, s);
            num_cell(o, n, if n == 0 { "zero" } else { "" });
        }
        o.push_str("</tr>");
    };
    job_rows(o, r, row);
}

fn oldest_table(o: &mut String, r: &Report) {
    let aged = r.totals.stuck_or_timed_out();
    let _ = write!(
        o,
        "<section><h2>Oldest {} of {} stuck or timed-out executions</h2>",
        r.oldest.len(),
        thousands(aged)
    );
    if r.oldest.is_empty() {
        o.push_str("<p class=\"empty\">None.</p></section>\n");
        return;
    }
    o.push_str(
        "<div class=\"scroll\"><table><tr><th>age</th><th class=\"l\">class</th><th class=\"l\">status</th>\
         <th class=\"l\">since (UTC)</th><th class=\"l\">job</th><th class=\"l\">thing</th></tr>",
    );
    for p in &r.oldest {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l mono\">{}</td>\
             <td class=\"l mono\">{}</td><td class=\"l mono\">{}</td></tr>",
            age_text(p.age_ms),
            p.class.as_str(),
            esc(&p.status),
            iso_utc(p.since_ms, false),
            esc(&p.job_id),
            esc(&p.thing_name)
        );
    }
    o.push_str("</table></div></section>\n");
}

/// See [`Report::render_html`].
pub fn page(r: &Report) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let t = &r.thresholds;
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>fleet-audit report: {}</title><style>{CSS}</style></head><body><main>\n\
         <h1>Fleet audit report</h1><p class=\"sub\"><span class=\"mono\">{}</span> · {} file{} · \
         thresholds: queued after {}, stale after {}, near timeout {}</p>\n",
        esc(&r.dataset.to_string_lossy()),
        esc(&r.dataset.to_string_lossy()),
        r.files,
        if r.files == 1 { "" } else { "s" },
        duration_text(t.queued_after_ms()),
        duration_text(t.stale_after_ms()),
        duration_text(t.near_timeout_ms()),
    );
    if let (Some(what), Some(w)) = (r.committed_text(), &r.writer) {
        let _ = writeln!(
            o,
            "<p class=\"banner\" role=\"alert\"><strong>Incomplete audit, being written now: {} so \
             far.</strong> Every count on this page is of those only. {} is writing it: report again \
             when that run ends.</p>",
            esc(&what),
            esc(w)
        );
    } else if let Some(what) = r.committed_text() {
        let _ = writeln!(
            o,
            "<p class=\"banner\" role=\"alert\"><strong>Incomplete audit: {}.</strong> Every count on \
             this page is of those only. Finish it with the same <code>fleet-audit run</code> command \
             and <code>--resume</code>.</p>",
            esc(&what)
        );
    }
    cards(&mut o, r);
    status_bars(&mut o, r);
    age_histogram(&mut o, r);
    super::causes::html(&mut o, r);
    classes_table(&mut o, r);
    super::causes::groups_html(&mut o, r);
    statuses_table(&mut o, r);
    super::targets::html(&mut o, r, esc);
    if let Some(c) = &r.changes {
        super::since::html(&mut o, c, esc);
    }
    if let Some(t) = &r.trend {
        super::since::trend_html(&mut o, t, esc);
    }
    oldest_table(&mut o, r);
    rules(&mut o, r);
    o.push_str("<footer>Written by fleet-audit report.</footer>\n</main></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_axis() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(150), 200);
        assert_eq!(nice_max(500), 500);
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
