//! `fleet-audit report ACTIONS`: an apply's rows counted by job and outcome, in text, JSON and HTML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use serde_json::{json, Value};

use super::rows::Outcome;
use crate::report::ReportError;

/// At most this many failed actions are listed.
const ERRORS_SHOWN: usize = 10;

/// What an ACTIONS dataset says.
#[derive(Debug, Clone, Default)]
pub struct ActionsReport {
    pub path: PathBuf,
    pub plan_ids: BTreeSet<String>,
    pub rows: u64,
    /// Per job, its rows by outcome.
    pub by_job: BTreeMap<String, BTreeMap<Outcome, u64>>,
    pub totals: BTreeMap<Outcome, u64>,
    pub recognised: u64,
    /// The first actions that ended in error: (job, thing, code, message).
    pub errors: Vec<(String, String, String, String)>,
    /// The apply is incomplete (its manifest says so).
    pub incomplete: bool,
}

/// Whether the dataset at `path` is an apply's ACTIONS (its files have an `action_n` column).
pub fn is_actions(path: &Path) -> bool {
    let Ok(data) = crate::dataset::data_files(path) else {
        return false;
    };
    let Some(first) = data.files.first() else {
        return false;
    };
    crate::dataset::read_file(first, 1)
        .ok()
        .and_then(|mut it| it.next())
        .and_then(Result::ok)
        .is_some_and(|b| b.column_by_name("action_n").is_some())
}

/// Reads the ACTIONS dataset at `path`.
pub fn read(path: &Path) -> Result<ActionsReport, ReportError> {
    let data = crate::dataset::data_files(path)?;
    let mut r = ActionsReport {
        path: path.to_path_buf(),
        incomplete: data.incomplete.is_some(),
        ..ActionsReport::default()
    };
    for file in &data.files {
        for batch in crate::dataset::read_file_in(path, file, crate::report::BATCH_ROWS)? {
            let batch = batch?;
            let text = |name: &str| -> Result<arrow::array::StringArray, ReportError> {
                let col = batch
                    .column_by_name(name)
                    .ok_or_else(|| ReportError::Schema {
                        path: file.clone(),
                        reason: format!("missing column {name}: not an ACTIONS dataset"),
                    })?;
                let c = cast(col, &DataType::Utf8).map_err(|e| ReportError::Schema {
                    path: file.clone(),
                    reason: format!("column {name}: {e}"),
                })?;
                Ok(c.as_string::<i32>().clone())
            };
            let (plan, job, thing, outcome) = (
                text("plan_id")?,
                text("job_id")?,
                text("thing_name")?,
                text("outcome")?,
            );
            let (code, message, recognised) = (
                text("error_code")?,
                text("error_message")?,
                text("recognised")?,
            );
            for i in 0..batch.num_rows() {
                let o = Outcome::parse(outcome.value(i)).ok_or_else(|| ReportError::Schema {
                    path: file.clone(),
                    reason: format!("outcome {:?} is not an apply's", outcome.value(i)),
                })?;
                if !r.plan_ids.contains(plan.value(i)) {
                    r.plan_ids.insert(plan.value(i).to_string());
                }
                r.rows += 1;
                *r.totals.entry(o).or_default() += 1;
                *r.by_job
                    .entry(job.value(i).to_string())
                    .or_default()
                    .entry(o)
                    .or_default() += 1;
                r.recognised += u64::from(recognised.value(i) == "true");
                if o == Outcome::Error && r.errors.len() < ERRORS_SHOWN {
                    let opt = |a: &arrow::array::StringArray| {
                        if a.is_valid(i) {
                            a.value(i).to_string()
                        } else {
                            String::new()
                        }
                    };
                    r.errors.push((
                        job.value(i).to_string(),
                        thing.value(i).to_string(),
                        opt(&code),
                        opt(&message),
                    ));
                }
            }
        }
    }
    Ok(r)
}

impl ActionsReport {
    /// 1 when any action ended in error, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.totals.get(&Outcome::Error).is_some_and(|n| *n > 0))
    }

    fn counts(m: &BTreeMap<Outcome, u64>) -> Value {
        Outcome::ALL
            .iter()
            .map(|o| {
                (
                    o.as_str().to_string(),
                    json!(m.get(o).copied().unwrap_or(0)),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "dataset": self.path.display().to_string(),
            "plan_ids": self.plan_ids,
            "actions": self.rows,
            "complete": !self.incomplete,
            "outcomes": Self::counts(&self.totals),
            "recognised": self.recognised,
            "jobs": self.by_job.iter().map(|(j, m)| json!({"job_id": j, "outcomes": Self::counts(m)})).collect::<Vec<_>>(),
            "errors": self.errors.iter().map(|(j, t, c, m)| json!({"job_id": j, "thing_name": t, "error_code": c, "error_message": m})).collect::<Vec<_>>(),
        })
    }

    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let plans: Vec<&str> = self.plan_ids.iter().map(String::as_str).collect();
        let _ = writeln!(
            s,
            "{}: {} actions of plan {}{}",
            self.path.display(),
            self.rows,
            plans.join(", "),
            if self.incomplete {
                " (incomplete: --resume the apply)"
            } else {
                ""
            }
        );
        let head: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| format!("{:>18}", o.as_str()))
            .collect();
        let _ = writeln!(s, "  {:<24}{}", "job", head.join(""));
        let line = |name: &str, m: &BTreeMap<Outcome, u64>| {
            let cells: Vec<String> = Outcome::ALL
                .iter()
                .map(|o| format!("{:>18}", m.get(o).copied().unwrap_or(0)))
                .collect();
            format!("  {name:<24}{}", cells.join(""))
        };
        for (job, m) in &self.by_job {
            let _ = writeln!(s, "{}", line(job, m));
        }
        let _ = writeln!(s, "{}", line("all jobs", &self.totals));
        if self.recognised > 0 {
            let _ = writeln!(
                s,
                "{} carried out by an earlier run's call, read back after a crash",
                self.recognised
            );
        }
        for (j, t, c, m) in &self.errors {
            let _ = writeln!(s, "error: {j} {t}: {c}: {m}");
        }
        s.trim_end().to_string()
    }

    pub fn render_html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let head: String = Outcome::ALL
            .iter()
            .map(|o| format!("<th>{}</th>", o.as_str()))
            .collect();
        let row = |name: &str, m: &BTreeMap<Outcome, u64>| {
            let cells: String = Outcome::ALL
                .iter()
                .map(|o| format!("<td>{}</td>", m.get(o).copied().unwrap_or(0)))
                .collect();
            format!("<tr><th>{}</th>{cells}</tr>", esc(name))
        };
        let mut rows: String = self.by_job.iter().map(|(j, m)| row(j, m)).collect();
        rows.push_str(&row("all jobs", &self.totals));
        let errors: String = self
            .errors
            .iter()
            .map(|(j, t, c, m)| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(j),
                    esc(t),
                    esc(c),
                    esc(m)
                )
            })
            .collect();
        let plans: Vec<&str> = self.plan_ids.iter().map(String::as_str).collect();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>fleet-audit: \
             actions of {plans}</title><style>body{{font:14px system-ui,sans-serif;margin:2em}}\
             table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px \
             10px;text-align:right}}th:first-child{{text-align:left}}</style></head><body>\
             <h1>Actions of plan {plans}</h1><p>{path}: {n} actions{incomplete}; {rec} carried out by \
             an earlier run's call, read back after a crash.</p><table><tr><th>job</th>{head}</tr>\
             {rows}</table>{errors}</body></html>",
            plans = esc(&plans.join(", ")),
            path = esc(&self.path.display().to_string()),
            n = self.rows,
            incomplete = if self.incomplete {
                " (incomplete)"
            } else {
                ""
            },
            rec = self.recognised,
            errors = if errors.is_empty() {
                String::new()
            } else {
                format!(
                    "<h2>Errors</h2><table><tr><th>job</th><th>thing</th><th>code</th>\
                     <th>message</th></tr>{errors}</table>"
                )
            },
        )
    }
}
