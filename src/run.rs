//! `fleet-audit run`: validated settings -> inputs, client, writer, engine -> a committed dataset and a
//! summary.
//!
//! The order is the contract: every input line is validated and the output location checked before the
//! SDK is even configured; credentials and region are checked before the first IoT call; the dataset is
//! committed only when every pair has its row.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::audit::{run_engine, Counters, Lane, Stop, Work};
use crate::client::{load_sdk_config, FleetClient, IotClient, SetupError};
use crate::config::Input;
use crate::config::{ConfigError, RunConfig};
use crate::input::{prepare, InputError};
use crate::limit::CallLimiter;
use crate::schema::Origin;
use crate::sink::target::{Entry, Kind};
use crate::sink::{
    join_writer, lane_ordinal, spawn_writer, DoneSet, Holder, Layout, LockError, Manifest,
    ManifestError, OutputLock, Partitioning, RemoteError, SinkError, SinkMsg, SinkSettings, Target,
    WriterEnd,
};

/// Why a run did not produce a complete dataset.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Another run owns the output.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `--resume` into a dataset written by another audit: what differs, and how.
    #[error("cannot resume into {out}: the {what} differ: {detail}")]
    ResumeMismatch {
        out: PathBuf,
        what: Mismatch,
        detail: String,
    },
    /// The committed parts of the dataset could not be read back.
    #[error("cannot resume into {out}: cannot read its committed parts: {reason}")]
    Resume { out: PathBuf, reason: String },
    #[error("{stop}")]
    Stopped {
        stop: Stop,
        out: PathBuf,
        /// Whether the committed rows were kept for `--resume` (directory outputs).
        resumable: bool,
        summary: Box<Summary>,
    },
}

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
    /// All attempts (describes and lists) per second of the run.
    pub calls_per_s: f64,
    pub duplicates: u64,
    /// Pairs skipped because an earlier run had committed them (`--resume`).
    pub resumed: u64,
    /// Whether every pair has its row and the dataset is committed.
    pub complete: bool,
    pub files: Vec<PathBuf>,
    /// Per target, in a run over several accounts or regions (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetSummary>,
}

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
    /// This target's attempts per second, over its own `elapsed_s`.
    pub calls_per_s: f64,
}

impl Summary {
    /// A summary of a run that made no call (yet).
    pub fn empty(started: Instant) -> Summary {
        Summary {
            run_id: new_run_id(),
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
            complete: false,
            files: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The human summary printed on stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} pairs: {} ok, {} not found, {} errors; {} attempts ({} throttled) in {:.1} s, {:.1} calls/s",
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
        for t in &self.targets {
            s.push_str(&format!(
                "\n  {}{}: {} pairs: {} ok, {} not found, {} errors; {} attempts ({} throttled), {:.1} calls/s",
                t.target,
                t.account_id
                    .as_deref()
                    .map(|a| format!(" (account {a})"))
                    .unwrap_or_default(),
                t.pairs,
                t.ok,
                t.not_found,
                t.errors,
                t.attempts,
                t.throttled,
                t.calls_per_s
            ));
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

/// A fresh run id: UTC time plus random bits, safe in file names.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}-{:06x}",
        now.as_secs(),
        rand::random::<u32>() & 0xFF_FFFF
    )
}

/// One bar per lane; several lanes share one display, each bar named by its target.
fn progress_bars(lanes: &[LaneView], quiet: bool) -> (MultiProgress, Vec<ProgressBar>) {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr_with_hz(4)
    };
    let multi = MultiProgress::with_draw_target(target);
    let template = if lanes.len() > 1 {
        "{prefix:>24} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}"
    } else {
        "{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}"
    };
    let bars = lanes
        .iter()
        .map(|l| {
            let bar = multi.add(ProgressBar::new(l.total));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(l.label.clone());
            bar
        })
        .collect();
    (multi, bars)
}

/// Removes what an earlier run left in a directory output, when `--overwrite` (or a resume with
/// nothing committed) allows it: only files this tool writes (part files, the manifest, temporaries),
/// never anything else.
async fn clear_old_parts(target: &Target, entries: &[Entry]) -> Result<(), SinkError> {
    for e in entries {
        if matches!(e.kind, Kind::Part | Kind::Manifest | Kind::Temp) {
            target.delete(&e.relative).await?;
        }
    }
    target.prune_empty_folders();
    Ok(())
}

/// Deletes what a crashed run left uncommitted: temporaries, and part files the manifest does not list
/// (published but never recorded), so a resume can never double a row.
async fn remove_uncommitted(target: &Target, m: &Manifest) -> Result<(), SinkError> {
    let listed: HashSet<&str> = m.parts.iter().map(|p| p.file.as_str()).collect();
    for e in target.entries().await? {
        let stale = match e.kind {
            Kind::Temp => true,
            Kind::Part => !listed.contains(e.relative.as_str()),
            Kind::Manifest | Kind::Lock | Kind::Foreign => false,
        };
        if stale {
            tracing::info!(file = %e.relative, "removing uncommitted file left by an earlier run");
            target.delete(&e.relative).await?;
        }
    }
    target.prune_empty_folders();
    Ok(())
}

/// Connects an object-store output and checks it before any IoT call: reachable, empty unless
/// `--resume` or `--overwrite`, and writable. A failure is a bad output (exit 2) naming the URL. A
/// local output needs nothing (no AWS configuration is loaded for it).
pub(crate) async fn connect_output(
    cfg: &mut RunConfig,
    first_region: Option<aws_config::Region>,
    holder: Option<&Holder>,
) -> Result<Option<OutputLock>, RunError> {
    let (resume, overwrite, lease) = (cfg.resume, cfg.overwrite, cfg.lock_lease);
    let Layout::Remote(r) = &mut cfg.layout else {
        return Ok(None);
    };
    // The output is written as the run's own configuration (--profile, --region), not as an
    // audited account's role; with several regions and none of its own, in the first target's.
    let mut sdk = load_sdk_config(&cfg.client).await;
    if sdk.region().is_none() {
        if let Some(r) = first_region {
            sdk = sdk.into_builder().region(r).build();
        }
    }
    let sdk = &sdk;
    let url = PathBuf::from(&r.url);
    let bad = |e: &RemoteError| ConfigError::Output {
        path: url.clone(),
        reason: e.reason(),
    };
    r.connect(sdk, |k| std::env::var(k).ok())
        .map_err(|e| bad(&e))?;
    let dir = r.dir().expect("connected above");
    let non_empty = dir.holds_objects().await.map_err(|e| bad(&e))?;
    if non_empty && !resume && !overwrite {
        return Err(ConfigError::OutputExists(url).into());
    }
    dir.check_writable().await.map_err(|e| bad(&e))?;
    let Some(holder) = holder else {
        return Ok(None);
    };
    let (lock, took_over) = OutputLock::remote(dir.clone(), holder, lease).await?;
    if let Some(note) = took_over {
        tracing::warn!("{note}");
        eprintln!("fleet-audit: warning: {note}");
    }
    Ok(Some(lock))
}

/// What differs between a dataset to resume and the run asking to resume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Inputs,
    Format,
    Shard,
    Targets,
    Partitions,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mismatch::Inputs => "inputs",
            Mismatch::Format => "formats",
            Mismatch::Shard => "shards",
            Mismatch::Targets => "targets",
            Mismatch::Partitions => "partitions",
        })
    }
}

/// An input identity split into its parts: `BASE[:targets=A,B][:shard=K/N]`.
fn identity_parts(id: &str) -> (&str, &str, &str) {
    let (rest, shard) = id.split_once(":shard=").unwrap_or((id, ""));
    let (base, targets) = rest.split_once(":targets=").unwrap_or((rest, ""));
    (base, targets, shard)
}

/// The first difference between the manifest `m` and this run, named and explained.
fn mismatch(
    m: &Manifest,
    identity: &str,
    total: u64,
    cfg: &RunConfig,
    partition_by: &[String],
) -> Option<(Mismatch, String)> {
    let (base_m, targets_m, shard_m) = identity_parts(&m.input_identity);
    let (base_i, targets_i, shard_i) = identity_parts(identity);
    if base_m != base_i {
        return Some((
            Mismatch::Inputs,
            format!("it was written from other inputs (identity {base_m}); these inputs have identity {base_i}"),
        ));
    }
    if shard_m != shard_i {
        let what = |s: &str| {
            if s.is_empty() {
                "all of these inputs".to_string()
            } else {
                format!("shard {s} of these inputs")
            }
        };
        return Some((
            Mismatch::Shard,
            format!(
                "it holds {}, and this run asks for {}",
                what(shard_m),
                what(shard_i)
            ),
        ));
    }
    if targets_m != targets_i {
        let what = |t: &str| {
            if t.is_empty() {
                "one target".to_string()
            } else {
                format!("targets {t}")
            }
        };
        return Some((
            Mismatch::Targets,
            format!(
                "it was written for {}, and this run audits {}",
                what(targets_m),
                what(targets_i)
            ),
        ));
    }
    if m.pairs != total {
        return Some((
            Mismatch::Inputs,
            format!(
                "it was written from other inputs ({} pairs); these inputs have {total} pairs",
                m.pairs
            ),
        ));
    }
    if m.format != cfg.format.extension() {
        return Some((
            Mismatch::Format,
            format!(
                "it holds {} files, not {}",
                m.format,
                cfg.format.extension()
            ),
        ));
    }
    if m.partition_by != partition_by {
        let show = |p: &[String]| {
            if p.is_empty() {
                "no partitions".to_string()
            } else {
                format!("--partition-by {}", p.join(","))
            }
        };
        return Some((
            Mismatch::Partitions,
            format!(
                "it was written with {}, and this run asks for {}",
                show(&m.partition_by),
                show(partition_by)
            ),
        ));
    }
    None
}

/// Prepares the output location: a fresh, replaced or resumed dataset. Returns the starting manifest
/// of a directory output.
pub(crate) async fn prepare_output(
    cfg: &RunConfig,
    identity: &str,
    total: u64,
) -> Result<Option<Manifest>, RunError> {
    let Some(target) = Target::of(&cfg.layout)? else {
        crate::config::check_output(&cfg.layout, cfg.overwrite)?;
        return Ok(None);
    };
    let out = || cfg.layout.path().to_path_buf();
    let partition_by: Vec<String> = cfg.partition_by.iter().map(|k| k.name().into()).collect();
    let existing = if cfg.resume {
        target.load_manifest().await?
    } else {
        None
    };
    if let Some(m) = existing {
        if let Some((what, detail)) = mismatch(&m, identity, total, cfg, &partition_by) {
            return Err(RunError::ResumeMismatch {
                out: out(),
                what,
                detail,
            });
        }
        // Rewritten (conditionally, in an object store) before anything is deleted: a writer that
        // lost the output and still holds the version read here can no longer publish a part that
        // the cleanup below is about to delete.
        target.store_manifest(&m).await?;
        remove_uncommitted(&target, &m).await?;
        return Ok(Some(m));
    }
    // The output's own lock is no content.
    let mut entries: Vec<Entry> = target
        .entries()
        .await?
        .into_iter()
        .filter(|e| e.kind != Kind::Lock)
        .collect();
    if cfg.resume && !entries.is_empty() && !cfg.overwrite {
        // A run killed (SIGKILL, out of memory, node lost) before its first commit leaves only its
        // uncommitted files: nothing was committed, so the resume starts the dataset afresh. Anything
        // else in the directory is not ours to delete.
        if entries
            .iter()
            .any(|e| !matches!(e.kind, Kind::Part | Kind::Temp | Kind::Lock))
        {
            return Err(ConfigError::Output {
                path: out(),
                reason: "holds no manifest to resume from; pass --overwrite to start over".into(),
            }
            .into());
        }
        tracing::info!(out = %target.name(), "no manifest yet: removing the uncommitted files of an earlier run");
        clear_old_parts(&target, &entries).await?;
        entries.clear();
    }
    match &cfg.layout {
        Layout::Remote(_) if !entries.is_empty() && !cfg.overwrite => {
            return Err(ConfigError::OutputExists(out()).into())
        }
        Layout::Remote(_) => {}
        layout => crate::config::check_output(layout, cfg.overwrite)?,
    }
    if cfg.overwrite {
        clear_old_parts(&target, &entries).await?;
    }
    target.create()?;
    let mut m = Manifest::new(identity.to_string(), total, cfg.format.extension());
    m.partition_by = partition_by;
    Ok(Some(m))
}

/// Runs an audit with the real `aws-sdk-iot` client, one per target, each built from `cfg`'s settings.
///
/// The output is this run's alone from before the first IoT call until it returns: a local output is
/// locked right after the inputs are validated, an object-store output once it is connected (see
/// [`crate::sink::lock`]); a second run on the same output is refused there.
pub async fn run(mut cfg: RunConfig, shutdown: watch::Receiver<bool>) -> Result<Summary, RunError> {
    let run_id = new_run_id();
    // Inputs first: a bad line stops the run before anything else happens.
    let (input, names) = match &cfg.input {
        Input::Describe(spec) => (Some(prepare(spec)?), None),
        Input::Discover(spec) => (None, crate::discover::prepare_scope(&spec.scope)?),
    };
    let dry_run = matches!(&cfg.input, Input::Discover(d) if d.dry_run);
    let holder = Holder::me(&run_id);
    let local_lock = match &cfg.layout {
        Layout::File(p) | Layout::Dir(p) if !dry_run => Some(OutputLock::local(p, &holder)?),
        _ => None,
    };
    let specs = cfg.target_specs()?;
    let resolved = crate::targets::resolve(&specs).await?;
    let first_region = resolved.first().and_then(|t| t.sdk.region().cloned());
    let remote_lock = connect_output(&mut cfg, first_region, (!dry_run).then_some(&holder)).await?;
    let targets: Vec<TargetClient<IotClient>> = resolved
        .into_iter()
        .map(|t| TargetClient {
            label: t.label,
            client: Arc::new(IotClient::new(&t.sdk)),
            origin: t.origin,
        })
        .collect();
    let result = match (input, cfg.input.clone()) {
        (Some(input), _) => run_targets(cfg, run_id, input, targets, shutdown).await,
        (None, Input::Discover(spec)) => {
            let t = targets
                .into_iter()
                .next()
                .expect("a discovery has exactly one target");
            crate::discover::run_discover(cfg, run_id, spec, names, t.client, t.origin, shutdown)
                .await
        }
        (None, Input::Describe(_)) => unreachable!("describe inputs are prepared above"),
    };
    for lock in [remote_lock, local_lock].into_iter().flatten() {
        lock.release().await;
    }
    result
}

/// One target of a run, ready to call.
pub struct TargetClient<C> {
    /// Names the target in progress and summaries (ignored with one target).
    pub label: String,
    pub client: Arc<C>,
    /// The region and account its rows carry.
    pub origin: Arc<Origin>,
}

/// Runs an audit of prepared inputs against every target at once: each target audits every pair with
/// its own client, its own rate limiter and its own workers, so a slow or throttled target never holds
/// the others back. Rows of target `t` are numbered in lane `t` of the manifest.
pub async fn run_targets<C: FleetClient>(
    cfg: RunConfig,
    run_id: String,
    input: crate::input::PreparedInput,
    targets: Vec<TargetClient<C>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let shard = cfg.shard;
    let per_target = match shard {
        None => input.total(),
        Some(s) => count_in_shard(&input, s)?,
    };
    let n_targets = targets.len() as u64;
    let total = per_target * n_targets;
    let base_identity = if targets.len() > 1 {
        let labels: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
        format!("{}:targets={}", input.identity(), labels.join(","))
    } else {
        input.identity().to_string()
    };
    let identity = crate::shard::identity_with(&base_identity, shard);
    let manifest = prepare_output(&cfg, &identity, total).await?;
    let done: Arc<DoneSet> = Arc::new(
        manifest
            .as_ref()
            .map(|m| m.committed.clone())
            .unwrap_or_default(),
    );
    let resumed = done.len();
    let base = SummaryBase {
        pairs: total,
        duplicates: input.duplicates(),
        resumed,
    };
    if manifest.as_ref().is_some_and(|m| m.complete) {
        if !cfg.quiet {
            eprintln!(
                "{}: already complete; nothing to do",
                cfg.layout.path().display()
            );
        }
        let mut s = Summary::empty(started);
        s.run_id = run_id;
        s.pairs = total;
        s.duplicates = input.duplicates();
        s.resumed = resumed;
        s.complete = true;
        return Ok(s);
    }
    let remaining = total - resumed;
    if !cfg.quiet {
        let eta = cfg
            .rps
            .map(|r| {
                let per = if n_targets > 1 { " per target" } else { "" };
                format!(
                    ", at most {r} calls/s{per}: about {}",
                    human_duration(remaining as f64 / (r * n_targets as f64))
                )
            })
            .unwrap_or_default();
        let mut notes = Vec::new();
        if n_targets > 1 {
            notes.push(format!("{per_target} pairs in each of {n_targets} targets"));
        }
        if input.duplicates() > 0 {
            notes.push(format!(
                "{} duplicate input lines dropped",
                input.duplicates()
            ));
        }
        if let Some(s) = shard {
            notes.push(format!("shard {s} of {} input pairs", input.total()));
        }
        if resumed > 0 {
            notes.push(format!("resuming: {resumed} already committed"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        eprintln!("auditing {remaining} pairs{notes}{eta}");
    }
    let lanes: Vec<Lane<C>> = targets
        .iter()
        .map(|t| Lane {
            client: t.client.clone(),
            limiter: Arc::new(CallLimiter::new(cfg.rps, cfg.burst, cfg.adaptive)),
            origin: Some(t.origin.clone()),
            counters: Arc::new(Counters::default()),
        })
        .collect();
    let views = targets
        .iter()
        .zip(&lanes)
        .enumerate()
        .map(|(i, (t, l))| LaneView {
            label: t.label.clone(),
            origin: Some(t.origin.clone()),
            total: per_target - done.lane_len(i as u16),
            counters: l.counters.clone(),
            limiter: Some(l.limiter.clone()),
            finished_s: Default::default(),
        })
        .collect::<Vec<LaneView>>();
    let finished: Vec<_> = views.iter().map(|v| v.finished_s.clone()).collect();
    let region = targets.first().and_then(|t| t.origin.region.clone());
    let session = Session::open_lanes(&cfg, run_id, manifest, region, views);
    let mut engines = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let lane_no = i as u16;
        let done = done.clone();
        // The shard's pairs are numbered among themselves: the numbering is as deterministic as the
        // input's (the identity names the shard), and the manifest's committed set stays a watermark
        // instead of holding every N-th ordinal of the whole input.
        let work = input
            .targets()?
            .filter(move |r| match (shard, r) {
                (Some(s), Ok(t)) => s.owns_pair(&t.thing_name, &t.job_id),
                _ => true,
            })
            .enumerate()
            .map(move |(o, r)| {
                r.map(|target| Work {
                    ordinal: lane_ordinal(lane_no, o as u64),
                    target,
                    retry_attempt: None,
                })
            })
            .filter(move |r| !matches!(r, Ok(w) if done.contains(w.ordinal)));
        let engine = run_engine(
            lane,
            cfg.engine.clone(),
            futures::stream::iter(work),
            session.rows(),
            shutdown.clone(),
        );
        let finished = finished[i].clone();
        engines.push(async move {
            let r = engine.await;
            let _ = finished.set(started.elapsed().as_secs_f64());
            r
        });
    }
    let results = futures::future::join_all(engines).await;
    let result = combine_stops(
        results,
        &targets.iter().map(|t| t.label.clone()).collect::<Vec<_>>(),
    );
    session.close(result, base).await
}

/// One result of several targets' engines: success when all succeeded; else an interrupt if there was
/// one, else the first other stop, named by its target when there are several.
fn combine_stops(results: Vec<Result<(), Stop>>, labels: &[String]) -> Result<(), Stop> {
    let several = results.len() > 1;
    let mut first: Option<Stop> = None;
    for (r, label) in results.into_iter().zip(labels) {
        let Err(stop) = r else { continue };
        let stop = match stop {
            Stop::Interrupted => Stop::Interrupted,
            s if several => Stop::InTarget {
                target: label.clone(),
                stop: Box::new(s),
            },
            s => s,
        };
        match (&first, &stop) {
            (None, _) | (Some(Stop::InTarget { .. }), Stop::Interrupted) => first = Some(stop),
            _ => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// The number of distinct pairs of `input` in `shard`: one more read of the input files.
fn count_in_shard(
    input: &crate::input::PreparedInput,
    shard: crate::shard::Shard,
) -> Result<u64, InputError> {
    let mut n = 0;
    for t in input.targets()? {
        let t = t?;
        if shard.owns_pair(&t.thing_name, &t.job_id) {
            n += 1;
        }
    }
    Ok(n)
}

/// What the caller knows of a run's summary before it starts.
pub(crate) struct SummaryBase {
    pub pairs: u64,
    pub duplicates: u64,
    pub resumed: u64,
}

/// What the progress display and the summary show of one target.
pub(crate) struct LaneView {
    pub label: String,
    pub origin: Option<Arc<Origin>>,
    /// Rows expected (0 if unknown).
    pub total: u64,
    pub counters: Arc<Counters>,
    pub limiter: Option<Arc<CallLimiter>>,
    /// Seconds from the start until this target's last row (set when its engine ends).
    pub finished_s: Arc<std::sync::OnceLock<f64>>,
}

/// The output side of a run: the writer thread, the progress display and the live counters.
pub(crate) struct Session {
    started: Instant,
    run_id: String,
    tx: mpsc::Sender<SinkMsg>,
    writer: std::thread::JoinHandle<Result<WriterEnd, SinkError>>,
    ticker: tokio::task::JoinHandle<()>,
    _multi: MultiProgress,
    bars: Vec<ProgressBar>,
    lanes: Vec<LaneView>,
    resumable: bool,
    out: PathBuf,
}

impl Session {
    /// Starts the writer and the progress display (`bar_total` rows expected, 0 if unknown) of a run
    /// with one target.
    pub(crate) fn open(
        cfg: &RunConfig,
        run_id: String,
        manifest: Option<Manifest>,
        region: Option<String>,
        bar_total: u64,
        counters: Arc<Counters>,
    ) -> Session {
        let lane = LaneView {
            label: String::new(),
            origin: None,
            total: bar_total,
            counters,
            limiter: None,
            finished_s: Default::default(),
        };
        Session::open_lanes(cfg, run_id, manifest, region, vec![lane])
    }

    /// Starts the writer and one progress bar per lane.
    pub(crate) fn open_lanes(
        cfg: &RunConfig,
        run_id: String,
        manifest: Option<Manifest>,
        region: Option<String>,
        lanes: Vec<LaneView>,
    ) -> Session {
        let (tx, rx) = mpsc::channel::<SinkMsg>(8192);
        let writer = spawn_writer(
            SinkSettings {
                layout: cfg.layout.clone(),
                format: cfg.format,
                part_rows: cfg.part_rows,
                part_interval: cfg.part_interval,
                manifest,
                batch_rows: 8192,
                row_group_rows: 128 * 1024,
                run_id: run_id.clone(),
                region,
                shard: cfg.shard,
                partitioning: Partitioning::new(&cfg.partition_by, now_ms()),
            },
            rx,
        );
        let (multi, bars) = progress_bars(&lanes, cfg.quiet);
        let ticker = {
            let tx = tx.clone();
            let shown: Vec<(ProgressBar, Arc<Counters>, Option<Arc<CallLimiter>>)> = bars
                .iter()
                .zip(&lanes)
                .map(|(b, l)| (b.clone(), l.counters.clone(), l.limiter.clone()))
                .collect();
            let several = lanes.len() > 1;
            tokio::spawn(async move {
                loop {
                    // Lets the writer commit a part on time even when rows are slow to come.
                    let _ = tx.try_send(SinkMsg::Tick);
                    for (bar, c, limiter) in &shown {
                        bar.set_position(Counters::get(&c.done));
                        let pace = match limiter.as_ref().and_then(|l| l.current_rate()) {
                            Some(r) if several => format!(" pace {r:.0}/s"),
                            _ => String::new(),
                        };
                        bar.set_message(format!(
                            "errors {} throttled {}{pace}",
                            Counters::get(&c.errors),
                            Counters::get(&c.throttled)
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Session {
            started: Instant::now(),
            run_id,
            tx,
            writer,
            ticker,
            _multi: multi,
            bars,
            lanes,
            resumable: cfg.layout.is_dir(),
            out: cfg.layout.path().to_path_buf(),
        }
    }

    /// Where rows go.
    pub(crate) fn rows(&self) -> mpsc::Sender<SinkMsg> {
        self.tx.clone()
    }

    /// Commits (complete on success; a checkpoint of a directory output on a stop; nothing for a file
    /// on a stop) and builds the summary.
    pub(crate) async fn close(
        self,
        result: Result<(), Stop>,
        base: SummaryBase,
    ) -> Result<Summary, RunError> {
        self.ticker.abort();
        for bar in &self.bars {
            bar.finish_and_clear();
        }
        let _ = self
            .tx
            .send(match (&result, self.resumable) {
                (Ok(()), _) => SinkMsg::Commit,
                // Rows read from an input that changed since it was validated are not committed.
                (Err(stop), true) if !stop.input_changed() => SinkMsg::Checkpoint,
                (Err(_), _) => SinkMsg::Abort,
            })
            .await;
        drop(self.tx);
        let writer = self.writer;
        let written = tokio::task::spawn_blocking(move || join_writer(writer))
            .await
            .unwrap_or_else(|e| Err(SinkError::WriterPanicked(e.to_string())));
        let elapsed = self.started.elapsed().as_secs_f64();
        let sum = |f: fn(&Counters) -> &std::sync::atomic::AtomicU64| -> u64 {
            self.lanes
                .iter()
                .map(|l| Counters::get(f(&l.counters)))
                .sum()
        };
        let attempts = sum(|c| &c.attempts);
        let list_calls = sum(|c| &c.list_attempts);
        let per_s = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        let targets = if self.lanes.len() > 1 {
            self.lanes
                .iter()
                .map(|l| {
                    let c = &l.counters;
                    let attempts = Counters::get(&c.attempts);
                    let secs = l.finished_s.get().copied().unwrap_or(elapsed);
                    TargetSummary {
                        target: l.label.clone(),
                        region: l.origin.as_ref().and_then(|o| o.region.clone()),
                        account_id: l.origin.as_ref().and_then(|o| o.account_id.clone()),
                        pairs: base.pairs / self.lanes.len() as u64,
                        ok: Counters::get(&c.ok),
                        not_found: Counters::get(&c.not_found),
                        errors: Counters::get(&c.errors),
                        attempts,
                        throttled: Counters::get(&c.throttled),
                        elapsed_s: secs,
                        calls_per_s: if secs > 0.0 {
                            attempts as f64 / secs
                        } else {
                            0.0
                        },
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut summary = Summary {
            run_id: self.run_id,
            pairs: base.pairs,
            ok: sum(|c| &c.ok),
            not_found: sum(|c| &c.not_found),
            errors: sum(|c| &c.errors),
            attempts,
            list_calls,
            throttled: sum(|c| &c.throttled),
            elapsed_s: elapsed,
            calls_per_s: per_s(attempts + list_calls),
            duplicates: base.duplicates,
            resumed: base.resumed,
            complete: false,
            files: Vec::new(),
            targets,
        };
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
            Err(e) => {
                return Err(stopped(
                    Stop::WriterFailed {
                        error: e.to_string(),
                    },
                    &summary,
                ))
            }
        };
        summary.files = end.report.files;
        match result {
            Ok(()) if end.complete => {
                summary.complete = true;
                Ok(summary)
            }
            Ok(()) => Err(stopped(Stop::WriterGone, &summary)),
            Err(stop) => Err(stopped(stop, &summary)),
        }
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `3h 20m`, `4m 10s`, `12s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let lane = LaneView {
            label: String::new(),
            origin: None,
            total: 0,
            counters: Arc::new(Counters::default()),
            limiter: None,
            finished_s: Default::default(),
        };
        let manifest = Manifest::new("pairs:0".into(), 1, "parquet");
        let mut session = Session::open_lanes(&cfg, "r".into(), Some(manifest), None, vec![lane]);
        session.writer = std::thread::spawn(|| panic!("boom in the writer"));
        let base = SummaryBase {
            pairs: 1,
            duplicates: 0,
            resumed: 0,
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

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(12.2), "12s");
        assert_eq!(human_duration(250.0), "4m 10s");
        assert_eq!(human_duration(12_000.0), "3h 20m");
        assert_eq!(human_duration(100_000.0), "1d 3h");
    }
}
