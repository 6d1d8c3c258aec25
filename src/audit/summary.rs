//! The end-of-run figures: what the user reads on stderr and what `--summary-json` writes.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

/// The end-of-run figures (also written by `--summary-json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub run_id: String,
    pub pairs: u64,
    pub ok: u64,
    pub not_found: u64,
    pub errors: u64,
    /// DescribeJobExecution attempts.
    pub attempts: u64,
    /// List and DescribeJob attempts (discovery).
    pub list_calls: u64,
    /// Context attempts (`--context`: DescribeJob, SearchIndex, ListJobExecutionsForThing).
    pub context_calls: u64,
    /// Attempts answered with ThrottlingException.
    pub throttled: u64,
    pub elapsed_s: f64,
    /// Answered calls per second of the run: attempts (describes and lists) that were not
    /// throttled. (Throttled attempts are in `throttled`; counting them would make a throttled run
    /// look faster.)
    pub calls_per_s: f64,
    pub duplicates: u64,
    /// Pairs skipped because an earlier run had committed them (`--resume`).
    pub resumed: u64,
    /// Rows carried from the baseline (`--baseline`): executions unchanged since.
    pub carried: u64,
    /// Describes the baseline saved: carried executions this run would have described.
    pub describes_saved: u64,
    /// Where the baseline was read (`--baseline`; `latest`: the folder of the audit it resolved to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<PathBuf>,
    /// Whether every pair has its row and the dataset is committed.
    pub complete: bool,
    pub files: Vec<PathBuf>,
    /// Per target, in a run over several accounts or regions (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetSummary>,
    /// Targets that could not be audited (an organization-wide audit goes on without them); their
    /// reasons are in `targets` and the manifest, and `--resume` retries them.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed_targets: u64,
    /// The run found its audit already complete (a retry, `--resume`) and made no call.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_complete: bool,
    /// The audit's `error` rows when the run ends (earlier runs' included), as the manifest of a
    /// directory output counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_errors: Option<u64>,
    /// `--retry-errors`: the audit's error rows described again and replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_errors: Option<Retried>,
    /// Then: the run that completed the audit and what it did (the manifest's record; absent in a
    /// manifest written before it was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_by: Option<crate::dataset::Completion>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Above this many targets the human summary names only the failed ones.
const TARGET_LINES: usize = 20;

/// One target's share of a run over several accounts or regions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetSummary {
    pub target: String,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub pairs: u64,
    pub ok: u64,
    pub not_found: u64,
    pub errors: u64,
    pub attempts: u64,
    pub throttled: u64,
    /// Seconds from the start of the run until this target's last row.
    pub elapsed_s: f64,
    /// This target's answered (not throttled) attempts, describes and lists, per second over its
    /// own `elapsed_s`.
    pub calls_per_s: f64,
    /// Why the target could not be audited (its role missing, its credentials refused...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    /// A summary of run `run_id` that made no call (yet).
    pub fn empty(run_id: &str, started: Instant) -> Summary {
        Summary {
            run_id: run_id.to_string(),
            pairs: 0,
            ok: 0,
            not_found: 0,
            errors: 0,
            attempts: 0,
            list_calls: 0,
            context_calls: 0,
            throttled: 0,
            elapsed_s: started.elapsed().as_secs_f64(),
            calls_per_s: 0.0,
            duplicates: 0,
            resumed: 0,
            carried: 0,
            describes_saved: 0,
            baseline: None,
            complete: false,
            files: Vec::new(),
            targets: Vec::new(),
            failed_targets: 0,
            already_complete: false,
            completed_by: None,
            retried_errors: None,
            audit_errors: None,
        }
    }

    /// The audit's error rows now: those left after `--retry-errors`, else the audit's as its
    /// manifest counts them (a resume's earlier runs' included), else this run's.
    pub(crate) fn errors_left(&self) -> u64 {
        match (self.retried_errors, self.audit_errors) {
            (Some(r), _) => r.errors,
            (None, Some(n)) => n.max(self.errors),
            (None, None) => self.errors,
        }
    }

    /// The summary of run `run_id`, which found the audit of `m` already complete and made no call:
    /// the audit's pairs (all committed earlier), and the run that completed it.
    pub fn already_complete(
        run_id: &str,
        started: Instant,
        m: &crate::dataset::Manifest,
    ) -> Summary {
        let committed = m.committed.len();
        let mut s = Summary::empty(run_id, started);
        s.pairs = committed;
        s.resumed = committed;
        s.complete = true;
        s.already_complete = true;
        s.completed_by = m.completed.clone();
        s.audit_errors = m.error_rows;
        s.baseline = m
            .completed
            .as_ref()
            .and_then(|c| c.baseline.as_ref())
            .map(PathBuf::from);
        s
    }

    /// The human summary printed on stderr: counts with thousands separators, rates as whole
    /// numbers (as `report` prints them).
    pub(crate) fn render(&self) -> String {
        let t = thousands;
        if self.already_complete {
            return self.render_already_complete();
        }
        // After a resume, the audit's total and this run's share of it.
        let whose = match self.resumed {
            0 => String::new(),
            r => format!(", {} committed by earlier runs; this run", t(r)),
        };
        let mut s = format!(
            "{} pairs{whose}: {} ok, {} not found, {} errors; {} attempts ({} throttled, context and listings included) in {:.1} s, {} answered calls/s",
            t(self.pairs),
            t(self.ok),
            t(self.not_found),
            t(self.errors),
            t(self.attempts),
            t(self.throttled),
            self.elapsed_s,
            t(self.calls_per_s.round() as u64)
        );
        if self.duplicates > 0 {
            s.push_str(&format!("; {}", duplicate_lines(self.duplicates)));
        }
        if self.carried > 0 {
            s.push_str(&format!(
                "; {} rows carried from the baseline ({} describes saved)",
                t(self.carried),
                t(self.describes_saved)
            ));
        }
        self.render_targets(&mut s);
        if let Some(r) = &self.retried_errors {
            s.push_str(&format!("\n{}", r.render()));
        }
        // (After --retry-errors alone, what was written is the parts rewritten, said above.)
        let only_rewrote = self.retried_errors.is_some() && self.resumed >= self.pairs;
        if self.complete && !only_rewrote {
            let rows = thousands(self.ok + self.not_found + self.errors);
            match self.files.as_slice() {
                [one] => s.push_str(&format!("\nwrote {rows} rows to {}", one.display())),
                many => s.push_str(&format!(
                    "\nwrote {rows} rows in {} files",
                    thousands(many.len() as u64)
                )),
            }
        }
        s
    }

    /// The summary of a run that found its audit complete: who completed it, and that this run did
    /// nothing.
    fn render_already_complete(&self) -> String {
        let t = thousands;
        let by = match &self.completed_by {
            Some(c) => format!(
                ", completed by run {} at {} ({} describe attempts, {} throttled, in {:.1} s)",
                c.run_id,
                crate::time::iso_utc(c.at_ms, false),
                t(c.attempts),
                t(c.throttled),
                c.elapsed_ms as f64 / 1000.0
            ),
            None => String::new(),
        };
        match &self.retried_errors {
            None => format!(
                "already complete: {} pairs{by}; this run made no call and wrote nothing",
                t(self.pairs)
            ),
            Some(_) => format!(
                "already complete: {} pairs{by}; it holds no error row to describe again: this run made no call and wrote nothing",
                t(self.pairs)
            ),
        }
    }

    /// The lines of the targets, appended to `s`: the count of targets when there are many, the
    /// targets not audited, and when there are few each audited target's figures.
    fn render_targets(&self, s: &mut String) {
        let many = self.targets.len() > TARGET_LINES;
        if many {
            s.push_str(&format!(
                "\n  {} targets, {} audited, {} could not be (per target: --summary-json)",
                self.targets.len(),
                self.targets.len() as u64 - self.failed_targets,
                self.failed_targets
            ));
        }
        for line in failed_target_lines(&self.targets) {
            s.push_str(&format!("\n  {line}"));
        }
        for t in &self.targets {
            let account = t
                .account_id
                .as_deref()
                .map(|a| format!(" (account {a})"))
                .unwrap_or_default();
            match &t.error {
                Some(_) => {}
                None if many => {}
                None => s.push_str(&format!(
                    "\n  {}{account}: {} pairs: {} ok, {} not found, {} errors; {} attempts ({} throttled, context and listings included), {} answered calls/s",
                    t.target,
                    thousands(t.pairs),
                    thousands(t.ok),
                    thousands(t.not_found),
                    thousands(t.errors),
                    thousands(t.attempts),
                    thousands(t.throttled),
                    thousands(t.calls_per_s.round() as u64)
                )),
            }
        }
    }
}

/// The targets not audited, a line per account and reason (an organization's role missing in an
/// account fails each of its regions alike): `account A: not audited in 4 regions (r1, r2, r3, r4):
/// REASON`; a target of no known account is a line of its own.
pub(crate) fn failed_target_lines(targets: &[TargetSummary]) -> Vec<String> {
    // (account, reason) and its targets, in the order first met.
    type Group<'a> = ((Option<&'a str>, &'a str), Vec<&'a TargetSummary>);
    let mut groups: Vec<Group> = Vec::new();
    for t in targets {
        let Some(e) = t.error.as_deref() else {
            continue;
        };
        let key = (t.account_id.as_deref(), e);
        match groups
            .iter_mut()
            .find(|(k, _)| key.0.is_some() && *k == key)
        {
            Some((_, ts)) => ts.push(t),
            None => groups.push((key, vec![t])),
        }
    }
    groups
        .into_iter()
        .map(|((account, reason), ts)| match (account, ts.as_slice()) {
            (Some(a), [_, _, ..]) => {
                let regions: Vec<&str> = ts
                    .iter()
                    .map(|t| t.region.as_deref().unwrap_or(t.target.as_str()))
                    .collect();
                format!(
                    "account {a}: not audited in {} regions ({}): {reason}",
                    regions.len(),
                    regions.join(", ")
                )
            }
            (_, [t, ..]) => format!("{}: not audited: {reason}", t.target),
            (_, []) => unreachable!("a group has a target"),
        })
        .collect()
}

/// `1234567` -> `1,234,567`: every count a person reads (summaries, plans, reports).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 duplicate input line dropped`, `12,000 duplicate input lines dropped`.
pub(crate) fn duplicate_lines(n: u64) -> String {
    match n {
        1 => "1 duplicate input line dropped".into(),
        n => format!("{} duplicate input lines dropped", thousands(n)),
    }
}

/// What `--retry-errors` did: the audit's error rows described again, and how they came out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retried {
    /// Error rows described again.
    pub retried: u64,
    pub ok: u64,
    pub not_found: u64,
    /// Error rows again.
    pub errors: u64,
    /// Parts written again.
    pub parts: u64,
}

impl Retried {
    /// `12 error rows described again: 11 ok, 0 not found, 1 still an error (3 parts rewritten)`.
    pub(crate) fn render(&self) -> String {
        let t = thousands;
        format!(
            "{} error rows described again: {} ok, {} not found, {} still {} ({} parts rewritten)",
            t(self.retried),
            t(self.ok),
            t(self.not_found),
            t(self.errors),
            if self.errors == 1 {
                "an error"
            } else {
                "errors"
            },
            t(self.parts)
        )
    }
}

/// What the caller knows of a run's summary before it starts.
pub(crate) struct SummaryBase {
    pub pairs: u64,
    pub duplicates: u64,
    pub resumed: u64,
    /// The baseline the run carries rows from (`--baseline`; `latest`: the audit it resolved to).
    pub baseline: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23, item 10: counts with thousands separators, rates as whole numbers, "1 duplicate
    /// input line", and after a resume the audit's total and this run's share.
    #[test]
    fn the_summary_reads_as_the_report_does() {
        let mut s = Summary::empty("r", std::time::Instant::now());
        s.pairs = 50_000;
        s.ok = 36_094;
        s.not_found = 13_906;
        s.attempts = 50_210;
        s.throttled = 210;
        s.elapsed_s = 2.36;
        s.calls_per_s = 21_164.5;
        s.duplicates = 1;
        s.complete = true;
        s.files = vec!["a/part.parquet".into(), "a/part2.parquet".into()];
        assert_eq!(
            s.render(),
            "50,000 pairs: 36,094 ok, 13,906 not found, 0 errors; 50,210 attempts (210 throttled, \
             context and listings included) in 2.4 s, 21,165 answered calls/s; 1 duplicate input line dropped\n\
             wrote 50,000 rows in 2 files"
        );
        s.duplicates = 12_000;
        s.resumed = 40_000;
        s.ok = 6_094;
        s.not_found = 3_906;
        let r = s.render();
        assert!(
            r.starts_with("50,000 pairs, 40,000 committed by earlier runs; this run: 6,094 ok, "),
            "{r}"
        );
        assert!(r.contains("; 12,000 duplicate input lines dropped"), "{r}");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
