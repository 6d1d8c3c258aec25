//! The output side of a run: the writer thread, the progress display and the live counters, opened
//! before the engine starts and closed into a [`Summary`] when it ends.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::audit::config::RunConfig;
use crate::audit::engine::Stop;
use crate::audit::error::RunError;
use crate::audit::output::RunOutput;
use crate::audit::summary::{Summary, SummaryBase, TargetSummary};
use crate::audit::turns::TargetView;
use crate::aws::call::Counters;
use crate::aws::limit::CallLimiter;
use crate::dataset::schema::BATCH_ROWS;
use crate::dataset::{
    join_writer, spawn_writer, Completion, FailedTarget, Manifest, OutputDir, Partitioning,
    RemoteError, WriteError, WriterEnd, WriterMsg, WriterSettings,
};
use crate::time::now_ms;

/// Above this many lanes (an organization's targets) one bar shows them all.
const MAX_BARS: usize = 8;

/// One bar per lane, each named by its target, or one bar for all of many lanes; with each bar, the
/// lanes it counts.
fn progress_bars(
    lanes: &[TargetView],
    quiet: bool,
) -> (MultiProgress, Vec<(ProgressBar, Vec<usize>)>) {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr_with_hz(4)
    };
    let multi = MultiProgress::with_draw_target(target);
    let template = if lanes.len() > 1 {
        "{prefix:>24} [{wide_bar}] {pos}/{len} {rate} ETA {eta} {msg}"
    } else {
        "{elapsed_precise} [{wide_bar}] {pos}/{len} {rate} ETA {eta} {msg}"
    };
    let groups: Vec<(String, u64, Vec<usize>)> = if lanes.len() > MAX_BARS {
        let total = lanes.iter().map(|l| l.total).sum();
        let all = (0..lanes.len()).collect();
        vec![(format!("{} targets", lanes.len()), total, all)]
    } else {
        lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.label.clone(), l.total, vec![i]))
            .collect()
    };
    let bars = groups
        .into_iter()
        .map(|(label, total, members)| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template")
                    .with_key("rate", rate_key)
                    .progress_chars("=> "),
            );
            bar.set_prefix(label);
            (bar, members)
        })
        .collect();
    (multi, bars)
}

/// The bar's pace, rows per second as a whole number (`9229/s`; indicatif's own `per_sec` prints
/// four decimals).
fn rate_key(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{}", rate_text(state.per_sec()));
}

fn rate_text(per_sec: f64) -> String {
    let r = if per_sec.is_finite() {
        per_sec.max(0.0)
    } else {
        0.0
    };
    format!("{:.0}/s", r)
}

/// The writer thread; it ends in what it wrote, or why it failed.
type Writer = std::thread::JoinHandle<Result<WriterEnd, WriteError>>;

/// The output side of a run: the writer thread, the progress display and the live counters.
pub(crate) struct Session {
    started: Instant,
    run_id: String,
    tx: mpsc::Sender<WriterMsg>,
    writer: Writer,
    ticker: tokio::task::JoinHandle<()>,
    _multi: MultiProgress,
    bars: Vec<(ProgressBar, Vec<usize>)>,
    lanes: Vec<TargetView>,
    resumable: bool,
    out: PathBuf,
}

impl Session {
    /// Starts the writer of `out` and one progress bar per lane.
    pub(crate) fn open_targets(
        cfg: &RunConfig,
        out: RunOutput,
        manifest: Option<Manifest>,
        region: Option<String>,
        lanes: Vec<TargetView>,
    ) -> Session {
        let RunOutput { run_id, dir } = out;
        let (tx, writer) = start_writer(cfg, &run_id, dir, manifest, region);
        let (multi, bars) = progress_bars(&lanes, cfg.quiet);
        let ticker = start_ticker(tx.clone(), &bars, &lanes);
        Session {
            started: Instant::now(),
            run_id,
            tx,
            writer,
            ticker,
            _multi: multi,
            bars,
            lanes,
            resumable: cfg.output.layout.is_dir(),
            out: cfg.output.layout.path().to_path_buf(),
        }
    }

    /// Where rows go.
    pub fn rows(&self) -> mpsc::Sender<WriterMsg> {
        self.tx.clone()
    }

    /// Commits (complete on success; a checkpoint of a directory output on a stop; nothing for a file
    /// on a stop) and builds the summary.
    pub async fn close(
        self,
        result: Result<(), Stop>,
        base: SummaryBase,
    ) -> Result<Summary, RunError> {
        self.ticker.abort();
        for (bar, _) in &self.bars {
            bar.finish_and_clear();
        }
        // The targets that could not be audited, for the manifest (a resume retries them).
        let failed = failed_targets(&self.lanes);
        let failed_targets = failed.len() as u64;
        let _ = self.tx.send(WriterMsg::FailedTargets(failed)).await;
        let last = self.last_message(&result, &base);
        let _ = self.tx.send(last).await;
        drop(self.tx);
        let writer = self.writer;
        let written = tokio::task::spawn_blocking(move || join_writer(writer))
            .await
            .unwrap_or_else(|e| Err(WriteError::WriterPanicked(e.to_string())));
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut summary = counted_summary(self.run_id, &self.lanes, base, elapsed, failed_targets);
        let stopped = |stop, summary: &Summary| RunError::Stopped {
            stop,
            out: self.out.clone(),
            resumable: self.resumable,
            summary: Box::new(summary.clone()),
        };
        // A writer that failed (or panicked) stops the run like any other stop: what it committed
        // before is in the manifest, so a directory output resumes from there.
        let end = match written {
            Ok(end) => end,
            Err(e) => return Err(stopped(writer_stop(e), &summary)),
        };
        summary.files = end.report.files;
        summary.audit_errors = end.report.audit_errors;
        match result {
            Ok(()) if end.complete => {
                summary.complete = true;
                Ok(summary)
            }
            Ok(()) => Err(stopped(Stop::WriterGone, &summary)),
            Err(stop) => Err(stopped(stop, &summary)),
        }
    }

    /// The writer's last message, by how the run ended: commit the audit complete (with what the
    /// run did) on success; on a stop, a checkpoint of a directory output, nothing for a file, and
    /// nothing at all of rows read from an input that changed since it was validated.
    fn last_message(&self, result: &Result<(), Stop>, base: &SummaryBase) -> WriterMsg {
        match (result, self.resumable) {
            // Every lane has ended, so the counters are final: the manifest of a completed audit
            // records what the run that completed it did (a retry that finds it complete reports it).
            (Ok(()), _) => WriterMsg::Commit(Box::new(Completion {
                run_id: self.run_id.clone(),
                at_ms: crate::time::wall_ms(),
                attempts: total(&self.lanes, |c| &c.attempts),
                list_calls: total(&self.lanes, |c| &c.list_attempts),
                context_calls: total(&self.lanes, |c| &c.context_attempts),
                throttled: total(&self.lanes, |c| &c.throttled),
                elapsed_ms: self.started.elapsed().as_millis() as u64,
                baseline: base.baseline.as_ref().map(|b| b.display().to_string()),
            })),
            // Rows read from an input that changed since it was validated are not committed.
            (Err(stop), _) if stop.input_changed() => WriterMsg::Poison,
            // An endpoint that never answered: the few error rows of the pairs that ended before
            // the run knew it are no audit of anything, and are not committed (the output stays as
            // it was found).
            (Err(Stop::Unreachable { .. }), _)
                if !self.lanes.iter().any(|l| {
                    l.counters
                        .answered
                        .load(std::sync::atomic::Ordering::Relaxed)
                }) =>
            {
                WriterMsg::Abort
            }
            (Err(_), true) => WriterMsg::Checkpoint,
            (Err(_), false) => WriterMsg::Abort,
        }
    }
}

/// The writer thread of a run's output, and where its rows go. A dated audit writes under its own
/// date, a resumed one too (the manifest's); a manifest that names no run is named by this one.
fn start_writer(
    cfg: &RunConfig,
    run_id: &str,
    dir: Option<OutputDir>,
    mut manifest: Option<Manifest>,
    region: Option<String>,
) -> (mpsc::Sender<WriterMsg>, Writer) {
    let mut partitioning = Partitioning::new(&cfg.output.partition_by, now_ms());
    if let Some(m) = manifest.as_mut() {
        m.run_id.get_or_insert_with(|| run_id.to_string());
        if let (Some(p), Some(date)) = (partitioning.as_mut(), &m.date) {
            p.date = date.clone();
        }
    }
    // As many rows in flight to the writer as one batch holds: the back-pressure on the workers.
    let (tx, rx) = mpsc::channel::<WriterMsg>(BATCH_ROWS);
    let writer = spawn_writer(
        WriterSettings {
            layout: cfg.output.layout.clone(),
            format: cfg.output.format,
            part_rows: cfg.output.part_rows,
            part_interval: cfg.output.part_interval,
            manifest,
            batch_rows: BATCH_ROWS,
            row_group_rows: 128 * 1024,
            run_id: run_id.to_string(),
            region,
            shard: cfg.shard,
            partitioning,
            // `run` locks every local output before its first call, under this run id.
            verify_lock: matches!(
                cfg.output.layout,
                crate::dataset::Layout::File(_) | crate::dataset::Layout::Dir(_)
            ),
        },
        dir,
        rx,
    );
    (tx, writer)
}

/// The ticker: four times a second, a tick to the writer through `tx` (so it commits a part on
/// time even when rows are slow to come) and each bar brought up to its lanes' counters.
fn start_ticker(
    tx: mpsc::Sender<WriterMsg>,
    bars: &[(ProgressBar, Vec<usize>)],
    lanes: &[TargetView],
) -> tokio::task::JoinHandle<()> {
    type Shown = (ProgressBar, Vec<Arc<Counters>>, Option<Arc<CallLimiter>>);
    let shown: Vec<Shown> = bars
        .iter()
        .map(|(b, members)| {
            let counters = members.iter().map(|&i| lanes[i].counters.clone()).collect();
            // A bar of one target of several shows that target's current pace.
            let limiter = match members[..] {
                [i] => lanes[i].limiter.clone(),
                _ => None,
            };
            (b.clone(), counters, limiter)
        })
        .collect();
    let several = lanes.len() > 1;
    tokio::spawn(async move {
        loop {
            // Lets the writer commit a part on time even when rows are slow to come.
            let _ = tx.try_send(WriterMsg::Tick);
            for (bar, counters, limiter) in &shown {
                let sum = |f: fn(&Counters) -> &AtomicU64| -> u64 {
                    counters.iter().map(|c| Counters::get(f(c))).sum()
                };
                bar.set_position(sum(|c| &c.done));
                let pace = match limiter.as_ref().and_then(|l| l.current_rate()) {
                    Some(r) if several => format!(" pace {r:.0}/s"),
                    _ => String::new(),
                };
                bar.set_message(format!(
                    "errors {} throttled {}{pace}",
                    sum(|c| &c.errors),
                    sum(|c| &c.throttled)
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// The targets that could not be connected, each with why.
fn failed_targets(lanes: &[TargetView]) -> Vec<FailedTarget> {
    lanes
        .iter()
        .filter_map(|l| {
            l.failed.get().map(|e| FailedTarget {
                target: l.label.clone(),
                error: e.clone(),
            })
        })
        .collect()
}

/// One counter summed over every lane.
fn total(lanes: &[TargetView], f: fn(&Counters) -> &AtomicU64) -> u64 {
    lanes.iter().map(|l| Counters::get(f(&l.counters))).sum()
}

/// The summary of a run by its final counters (`elapsed` seconds; `failed_targets`: the targets
/// that could not be connected): what the writer reports (its files, whether the audit is
/// complete) is added once it has ended.
fn counted_summary(
    run_id: String,
    lanes: &[TargetView],
    base: SummaryBase,
    elapsed: f64,
    failed_targets: u64,
) -> Summary {
    let sum = |f: fn(&Counters) -> &AtomicU64| total(lanes, f);
    let attempts = sum(|c| &c.attempts);
    let list_calls = sum(|c| &c.list_attempts);
    let per_s = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    let targets = target_summaries(lanes, base.pairs, elapsed);
    Summary {
        run_id,
        pairs: base.pairs,
        ok: sum(|c| &c.ok),
        not_found: sum(|c| &c.not_found),
        errors: sum(|c| &c.errors),
        attempts,
        list_calls,
        context_calls: sum(|c| &c.context_attempts),
        throttled: sum(|c| &c.throttled),
        elapsed_s: elapsed,
        // Answered calls: a throttled attempt, or one with no answer, would make a run that could
        // not call look faster.
        calls_per_s: per_s(lanes.iter().map(|l| l.counters.answered_calls()).sum()),
        duplicates: base.duplicates,
        resumed: base.resumed,
        carried: sum(|c| &c.carried),
        describes_saved: sum(|c| &c.describes_saved),
        baseline: base.baseline,
        complete: false,
        files: Vec::new(),
        targets,
        failed_targets,
        already_complete: false,
        completed_by: None,
        retried_errors: None,
        audit_errors: None,
    }
}

/// How a writer that failed (or panicked) stops the run: another run took the output over, or the
/// writer failed.
fn writer_stop(e: WriteError) -> Stop {
    let error = e.to_string();
    match e {
        WriteError::Remote(RemoteError::Conflict { .. }) | WriteError::LockLost { .. } => {
            Stop::OutputTakenOver { error }
        }
        _ => Stop::WriterFailed { error },
    }
}

/// Per target of a run over several (none for one): its counts, and its pace over its own time
/// (`elapsed`: the run's, for a target still going). `pairs`: the run's.
fn target_summaries(lanes: &[TargetView], pairs: u64, elapsed: f64) -> Vec<TargetSummary> {
    if lanes.len() < 2 {
        return Vec::new();
    }
    lanes
        .iter()
        .map(|l| {
            let c = &l.counters;
            let attempts = Counters::get(&c.attempts);
            let answered = c.answered_calls();
            let secs = l.finished_s.get().copied().unwrap_or(elapsed);
            TargetSummary {
                target: l.label.clone(),
                region: l.origin.get().and_then(|o| o.region.clone()),
                account_id: l.origin.get().and_then(|o| o.account_id.clone()),
                error: l.failed.get().cloned(),
                pairs: l
                    .listed
                    .get()
                    .copied()
                    .unwrap_or(pairs / lanes.len() as u64),
                ok: Counters::get(&c.ok),
                not_found: Counters::get(&c.not_found),
                errors: Counters::get(&c.errors),
                attempts,
                throttled: Counters::get(&c.throttled),
                elapsed_s: secs,
                calls_per_s: if secs > 0.0 {
                    answered as f64 / secs
                } else {
                    0.0
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_is_a_whole_number() {
        assert_eq!(rate_text(9_228.582_2), "9229/s");
        assert_eq!(rate_text(f64::NAN), "0/s");
        assert_eq!(rate_text(0.4), "0/s");
    }

    /// A panic in the writer thread stops the run with a resumable stop naming it, instead of
    /// aborting the process.
    #[tokio::test]
    async fn a_writer_panic_is_a_resumable_stop() {
        use clap::Parser;
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("audit");
        let cli = crate::cli::Cli::parse_from([
            "fleet-audit",
            "run",
            "--pairs",
            "pairs.csv",
            "--out",
            out.to_str().unwrap(),
        ]);
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("a run command");
        };
        let cfg = RunConfig::from_args(&args).unwrap();
        let lane = TargetView {
            label: String::new(),
            origin: Default::default(),
            failed: Default::default(),
            total: 0,
            counters: Arc::new(Counters::default()),
            limiter: None,
            finished_s: Default::default(),
            listed: Default::default(),
        };
        let manifest = Manifest::new("pairs:0".into(), 1, "parquet");
        let dir = crate::dataset::OutputDir::local(&cfg.output.layout);
        let out = RunOutput {
            run_id: "r".into(),
            dir,
        };
        let mut session = Session::open_targets(&cfg, out, Some(manifest), None, vec![lane]);
        session.writer = std::thread::spawn(|| panic!("boom in the writer"));
        let base = SummaryBase {
            pairs: 1,
            duplicates: 0,
            resumed: 0,
            baseline: None,
        };
        match session.close(Ok(()), base).await {
            Err(RunError::Stopped {
                stop: Stop::WriterFailed { error },
                resumable: true,
                ..
            }) => assert_eq!(error, "the writer thread panicked: boom in the writer"),
            other => panic!("{other:?}"),
        }
    }

    /// Each target's view has a limiter of its own at the run's --rps: on tokio's paused clock, two
    /// targets calling at once each get 20 calls a second (a shared limiter would give each 10).
    #[tokio::test(start_paused = true)]
    async fn each_target_has_its_own_limiter_at_the_runs_rps() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from([
            "fleet-audit",
            "run",
            "--pairs",
            "pairs.csv",
            "--out",
            "audit",
            "--rps",
            "20",
        ]);
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("a run command");
        };
        let cfg = RunConfig::from_args(&args).unwrap();
        let views = [
            TargetView::waiting("a", 0, &cfg),
            TargetView::waiting("b", 0, &cfg),
        ];
        let (_tx, sd) = tokio::sync::watch::channel(false);
        let started = tokio::time::Instant::now();
        let calls = |v: &TargetView| {
            let (l, sd) = (v.limiter.clone().unwrap(), sd.clone());
            async move {
                for _ in 0..120 {
                    assert!(l.acquire(&sd).await);
                }
            }
        };
        tokio::join!(calls(&views[0]), calls(&views[1]));
        // 120 calls each: a burst of 2 (a tenth of a second's worth, at least 2), then 118 at 20/s.
        let ms = started.elapsed().as_millis();
        assert_eq!(ms.div_ceil(10) * 10, 5_900, "{ms} ms");
    }
}
