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
        }
    }

    /// The human summary printed on stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} pairs: {} ok, {} not found, {} errors; {} attempts ({} throttled) in {:.1} s, {:.1} answered calls/s",
            self.pairs,
            self.ok,
            self.not_found,
            self.errors,
            self.attempts,
            self.throttled,
            self.elapsed_s,
            self.calls_per_s
        );
        if self.duplicates > 0 {
            s.push_str(&format!(
                "; {} duplicate input lines dropped",
                self.duplicates
            ));
        }
        if self.carried > 0 {
            s.push_str(&format!(
                "; {} rows carried from the baseline ({} describes saved)",
                self.carried, self.describes_saved
            ));
        }
        let many = self.targets.len() > TARGET_LINES;
        if many {
            s.push_str(&format!(
                "\n  {} targets, {} audited, {} could not be (per target: --summary-json)",
                self.targets.len(),
                self.targets.len() as u64 - self.failed_targets,
                self.failed_targets
            ));
        }
        for t in &self.targets {
            let account = t
                .account_id
                .as_deref()
                .map(|a| format!(" (account {a})"))
                .unwrap_or_default();
            match &t.error {
                Some(e) => s.push_str(&format!("\n  {}: not audited: {e}", t.target)),
                None if many => {}
                None => s.push_str(&format!(
                    "\n  {}{account}: {} pairs: {} ok, {} not found, {} errors; {} attempts ({} throttled), {:.1} answered calls/s",
                    t.target,
                    t.pairs,
                    t.ok,
                    t.not_found,
                    t.errors,
                    t.attempts,
                    t.throttled,
                    t.calls_per_s
                )),
            }
        }
        if self.complete {
            let rows = self.ok + self.not_found + self.errors;
            match self.files.as_slice() {
                [one] => s.push_str(&format!("\nwrote {rows} rows to {}", one.display())),
                many => s.push_str(&format!("\nwrote {rows} rows in {} files", many.len())),
            }
        }
        s
    }
}

/// What the caller knows of a run's summary before it starts.
pub struct SummaryBase {
    pub pairs: u64,
    pub duplicates: u64,
    pub resumed: u64,
}
