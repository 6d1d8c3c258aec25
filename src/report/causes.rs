//! Why the stuck executions are stuck, as the report says it: each class split by cause (text,
//! JSON, HTML), the oldest examples of each cause with what it means, the jobs holding others up,
//! and the `--group-by` table of the HTML page.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::classify::{Cause, Class, Counts, CAUSED};
use super::html::{class_cell_kind, esc, num_cell};
use super::render::{age_text, oldest_json, pct, printable, thousands, Style};
use super::Report;

/// `{class: {cause: count}}` for the stuck classes, each cause with rows, largest first.
pub(super) fn causes_json(c: &Counts) -> Value {
    let mut m = Map::new();
    for class in CAUSED {
        let by: Map<String, Value> = c
            .causes_of(class)
            .into_iter()
            .map(|(cause, n)| (cause.as_str().to_string(), json!(n)))
            .collect();
        m.insert(class.as_str().into(), Value::Object(by));
    }
    Value::Object(m)
}

/// The stuck classes split by cause, largest first: `stuck_queued: device_offline 40 (50.0%), ...`.
pub(super) fn causes_text(out: &mut String, c: &Counts, st: Style) {
    for class in CAUSED {
        let causes = c.causes_of(class);
        if causes.is_empty() {
            continue;
        }
        let total = c.count(class);
        let parts: Vec<String> = causes
            .iter()
            .map(|(cause, n)| format!("{} {} ({})", cause.as_str(), thousands(*n), pct(*n, total)))
            .collect();
        let _ = writeln!(
            out,
            "  {} by cause: {}",
            st.bold(class.as_str()),
            parts.join(", ")
        );
    }
}

/// Each stuck class's causes over all jobs, in class order, largest first.
fn stuck_causes(r: &Report) -> Vec<(Class, Cause, u64)> {
    CAUSED
        .iter()
        .flat_map(|class| {
            r.totals
                .causes_of(*class)
                .into_iter()
                .map(move |(cause, n)| (*class, cause, n))
        })
        .collect()
}

/// The stuck classes' causes over all jobs, largest first, each with what it means and its oldest
/// examples.
pub(super) fn why_text(out: &mut String, r: &Report, st: Style) {
    let causes = stuck_causes(r);
    if causes.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", st.bold("why stuck (the oldest of each cause):"));
    for (class, cause, n) in causes {
        let _ = writeln!(
            out,
            "  {} {}: {} - {}",
            class.as_str(),
            st.bold(cause.as_str()),
            thousands(n),
            cause.advice(class)
        );
        for p in r.cause_examples.get(&(class, cause)).into_iter().flatten() {
            let _ = writeln!(
                out,
                "      {:>8}  {}  {}",
                age_text(p.age_ms),
                printable(&p.job_id),
                printable(&p.thing_name)
            );
        }
    }
}

/// `why`: each stuck class and cause over all jobs, largest first, with its advice and examples.
pub(super) fn why_json(r: &Report) -> Value {
    Value::Array(
        stuck_causes(r)
            .into_iter()
            .map(|(class, cause, n)| {
                let examples = r
                    .cause_examples
                    .get(&(class, cause))
                    .map_or(&[][..], Vec::as_slice);
                json!({
                    "class": class.as_str(),
                    "cause": cause.as_str(),
                    "count": n,
                    "advice": cause.advice(class),
                    "oldest": oldest_json(examples),
                })
            })
            .collect(),
    )
}

/// The jobs whose IN_PROGRESS executions hold up stuck QUEUED ones.
pub(super) fn held_up_text(out: &mut String, r: &Report) {
    if r.held_up.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "held up behind another job's IN_PROGRESS execution (fix that one first):"
    );
    for (job, n) in &r.held_up {
        let _ = writeln!(
            out,
            "  {}: holds up {} stuck QUEUED executions",
            printable(job),
            thousands(*n)
        );
    }
}

/// Why the stuck executions are stuck: each class's causes over all jobs, largest first, with what
/// each means, a bar of its share and its oldest examples; then the jobs holding others up.
pub(super) fn html(o: &mut String, r: &Report) {
    let rows = stuck_causes(r);
    if rows.is_empty() {
        return;
    }
    o.push_str(
        "<section><h2>Why they are stuck</h2><div class=\"scroll\"><table><tr><th class=\"l\">class</th>\
         <th class=\"l\">cause</th><th>count</th><th class=\"l\">share</th><th class=\"l\">what it means</th>\
         <th class=\"l\">oldest</th></tr>",
    );
    for (class, cause, n) in rows {
        let total = r.totals.count(class).max(1);
        let pct = n as f64 * 100.0 / total as f64;
        let examples: Vec<String> = r
            .cause_examples
            .get(&(class, cause))
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} <span class=\"mono\">{}</span> on <span class=\"mono\">{}</span>",
                    age_text(p.age_ms),
                    esc(&p.job_id),
                    esc(&p.thing_name)
                )
            })
            .collect();
        let _ = write!(
            o,
            "<tr><td class=\"l mono\">{}</td><td class=\"l mono\"><strong>{}</strong></td><td class=\"bad\">{}</td>\
             <td class=\"l\"><span class=\"share\" style=\"width:{:.0}px\"></span> {:.1}%</td>\
             <td class=\"advice\">{}</td><td class=\"ex\">{}</td></tr>",
            class.as_str(),
            cause.as_str(),
            thousands(n),
            pct.max(1.0),
            pct,
            esc(cause.advice(class)),
            examples.join("<br>")
        );
    }
    o.push_str("</table></div>");
    if !r.held_up.is_empty() {
        o.push_str("<h2 style=\"margin-top:16px\">Held up behind another job's IN_PROGRESS execution</h2><table><tr><th class=\"l\">job holding the queue</th><th>stuck QUEUED executions behind it</th></tr>");
        for (job, n) in &r.held_up {
            let _ = write!(
                o,
                "<tr><td class=\"l mono\">{}</td><td class=\"bad\">{}</td></tr>",
                esc(job),
                thousands(*n)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>\n");
}

/// `--group-by`: the classes of each group, the largest stuck share first.
pub(super) fn groups_html(o: &mut String, r: &Report) {
    let Some((key, groups)) = &r.groups else {
        return;
    };
    let _ = write!(
        o,
        "<section><h2>By {}</h2><div class=\"scroll\"><table><tr><th class=\"l\">{}</th><th>total</th><th>stuck</th>",
        esc(key),
        esc(key)
    );
    for c in Class::ALL {
        let _ = write!(o, "<th>{}</th>", c.as_str());
    }
    o.push_str("<th>SUCCEEDED</th><th>FAILED</th></tr>");
    for g in groups {
        let c = &g.counts;
        let stuck = c.count(Class::StuckQueued) + c.count(Class::StaleInProgress);
        let _ = write!(
            o,
            "<tr><td class=\"l mono\">{}</td><td>{}</td><td class=\"{}\">{:.1}%</td>",
            esc(&g.value),
            thousands(c.total),
            if stuck == 0 { "zero" } else { "bad" },
            stuck as f64 * 100.0 / c.total.max(1) as f64
        );
        for k in Class::ALL {
            let n = c.count(k);
            num_cell(o, n, class_cell_kind(k, n));
        }
        let share = |s: &str| c.status(s) as f64 * 100.0 / c.total.max(1) as f64;
        let _ = write!(
            o,
            "<td>{:.1}%</td><td>{:.1}%</td></tr>",
            share("SUCCEEDED"),
            share("FAILED")
        );
    }
    o.push_str(
        "</table></div><p class=\"sub\">The largest stuck share first; every share is of the \
         group's rows, not_found ones included.</p></section>\n",
    );
}
