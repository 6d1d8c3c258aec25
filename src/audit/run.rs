//! `fleet-audit run`: validated settings -> inputs, output, clients, engines -> a committed dataset
//! and a summary.
//!
//! The order is the contract: every input line is validated first; then the local output is locked;
//! then each target's credentials are checked with STS (and its account read); then an S3 output is
//! connected, checked and locked, and the output prepared (a resume checked against its manifest),
//! all before the first IoT call; the dataset is committed only when every pair has its row.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::audit::config::{Input, RunConfig};
use crate::audit::context;
use crate::audit::engine::{run_engine, Stop, TargetEnd, Work};
use crate::audit::error::RunError;
use crate::audit::output::{connect_output, prepare_output, RunOutput};
use crate::audit::session::Session;
use crate::audit::summary::{Summary, SummaryBase};
use crate::audit::turns::{take_turns, TargetView};
use crate::aws::client::{FleetClient, FleetContext, FleetLister, IotClient};
use crate::aws::targets::{PendingTarget, TargetClient};
use crate::dataset::new_run_id;
use crate::dataset::schema::Origin;
use crate::dataset::{lane_ordinal, DoneSet, Holder, Layout, OutputLock};
use crate::input::identity::InputIdentity;
use crate::input::{prepare, InputError};
use crate::time::human_duration;

/// Runs an audit with the real `aws-sdk-iot` client, one per target, each built from `cfg`'s settings.
///
/// The output is this run's alone from before the first IoT call until it returns: a local output is
/// locked right after the inputs are validated, an object-store output once it is connected (see
/// [`crate::dataset::lock`]); a second run on the same output is refused there.
pub async fn run(cfg: RunConfig, shutdown: watch::Receiver<bool>) -> Result<Summary, RunError> {
    let run_id = new_run_id();
    // Inputs first: a bad line stops the run before anything else happens.
    let (input, names) = match &cfg.input {
        Input::Describe(spec) => (Some(prepare(spec)?), None),
        Input::Discover(spec) => (None, crate::audit::discover::prepare_scope(&spec.scope)?),
    };
    let dry_run = matches!(&cfg.input, Input::Discover(d) if d.dry_run);
    let holder = Holder::me(&run_id);
    let local_lock = match &cfg.output.layout {
        Layout::File(p) | Layout::Dir(p) if !dry_run => Some(OutputLock::local(p, &holder)?),
        _ => None,
    };
    if !dry_run {
        if let Err(e) = crate::audit::output::check_table_before_calls(&cfg).await {
            if let Some(lock) = local_lock {
                lock.release().await;
            }
            return Err(e);
        }
    }
    // A retry of a local audit that is already complete ends here, before any call (not even STS
    // or a discovery's listing); an object store's, or an organization's, is found complete after
    // connecting, as any resume.
    if let Some(done) = finished_before_calls(&cfg, &run_id, input.as_ref(), names.as_ref()).await {
        if let Some(lock) = local_lock {
            lock.release().await;
        }
        return done;
    }
    // Setting up (STS, Organizations, the output's store) makes no IoT call and has nothing to
    // commit: a signal ends it at once, rather than after the call it waits on.
    let setup = async {
        let (targets, first_region) = connect_targets(&cfg).await?;
        let opened = connect_output(&cfg, first_region, (!dry_run).then_some(&holder)).await?;
        Ok::<_, RunError>((targets, opened))
    };
    let mut stop = shutdown.clone();
    let (targets, (dir, remote_lock)) = tokio::select! {
        r = setup => r?,
        // (A sender gone, as in tests that never stop, is no signal.)
        Ok(_) = stop.wait_for(|s| *s) => return Err(RunError::Interrupted),
    };
    let redo = cfg
        .retry_errors
        .then(|| (cfg.clone(), run_id.clone(), shutdown.clone()));
    let out = RunOutput { run_id, dir };
    let result = match (input, cfg.input.clone()) {
        (Some(input), _) => run_targets(cfg, out, input, targets, shutdown).await,
        (None, Input::Discover(spec)) => {
            // One target named by the flags: the baseline must be its own (checked before any
            // IoT call); over several, each target carries only its own rows of it.
            let origin = (targets.len() == 1 && cfg.targets.flags.org.is_none())
                .then(|| targets[0].known.clone());
            match open_baseline(&spec, &cfg, out.dir.as_ref(), origin.as_ref()).await {
                Ok(baseline) => {
                    crate::audit::discover::run_discover_targets(
                        cfg, out, spec, names, targets, baseline, shutdown,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        (None, Input::Describe(_)) => unreachable!("describe inputs are prepared above"),
    };
    // `--retry-errors`: the complete audit's error rows described again, while the output is still
    // this run's.
    let result = match (result, redo) {
        (Ok(s), Some((cfg, run_id, shutdown))) if s.complete => {
            retry_errors(&cfg, s, &run_id, shutdown).await
        }
        (r, _) => r,
    };
    for lock in [remote_lock, local_lock].into_iter().flatten() {
        lock.release().await;
    }
    result
}

/// The summary of a retry of a local audit that is already complete, found before any call (not
/// even STS or a discovery's listing); `None` when the run has work to do. An object store's, or an
/// organization's, is found complete after connecting, as any resume.
async fn finished_before_calls(
    cfg: &RunConfig,
    run_id: &str,
    input: Option<&crate::input::PreparedInput>,
    names: Option<&crate::input::Names>,
) -> Option<Result<Summary, RunError>> {
    let identity = identity_before_calls(cfg, input, names)?;
    let m = match crate::audit::output::complete_before_calls(cfg, &identity).await {
        Ok(None) => return None,
        // `--retry-errors` goes on to describe its error rows again (an older manifest that does
        // not count them: to look for some).
        Ok(Some(m)) if cfg.retry_errors && m.error_rows != Some(0) => return None,
        Ok(Some(m)) => m,
        Err(e) => return Some(Err(e)),
    };
    let mut s = Summary::already_complete(run_id, Instant::now(), &m);
    if cfg.retry_errors {
        s.retried_errors = Some(crate::audit::summary::Retried::default());
    }
    Some(Ok(s))
}

/// `--retry-errors` after a complete audit (`s`, this run's summary): its error rows described again
/// with a client of its one target (connected only if there is an error row), each replaced in place.
async fn retry_errors(
    cfg: &RunConfig,
    mut s: Summary,
    run_id: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    let Layout::Dir(out) = &cfg.output.layout else {
        return Ok(s);
    };
    // Its one target (the flags say which, no call), connected when an error row needs it.
    let Some(target) = crate::aws::targets::plan(&cfg.targets.client, &cfg.targets.flags)
        .await?
        .into_iter()
        .next()
        .map(PendingTarget::lazy)
    else {
        return Ok(s);
    };
    let counters = Arc::new(crate::aws::call::Counters::default());
    let started = Instant::now();
    let redone =
        crate::audit::redo::retry_error_rows(cfg, out, run_id, target, counters.clone(), shutdown)
            .await;
    s.attempts += crate::aws::call::Counters::get(&counters.attempts);
    s.throttled += crate::aws::call::Counters::get(&counters.throttled);
    match redone {
        Ok((r, parts)) => {
            if r.retried > 0 {
                // It made calls and wrote parts: this run's figures are no longer a no-op's.
                s.already_complete = false;
                s.ok += r.ok;
                s.not_found += r.not_found;
                s.errors = s.errors.saturating_sub(r.retried) + r.errors;
                s.elapsed_s += started.elapsed().as_secs_f64();
                let answered = (s.attempts + s.list_calls).saturating_sub(
                    s.throttled + crate::aws::call::Counters::get(&counters.unanswered),
                );
                s.calls_per_s = if s.elapsed_s > 0.0 {
                    answered as f64 / s.elapsed_s
                } else {
                    0.0
                };
                s.files = parts;
            }
            s.audit_errors = Some(r.errors);
            s.retried_errors = Some(r);
            Ok(s)
        }
        Err(crate::audit::redo::RedoError::Stopped { stop }) => {
            // It made calls (and replaced nothing): no longer a no-op's summary.
            s.already_complete = false;
            s.elapsed_s += started.elapsed().as_secs_f64();
            Err(RunError::Stopped {
                stop,
                out: out.clone(),
                resumable: true,
                summary: Box::new(s),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The targets of the run (STS, and Organizations for an organization's), each ready or (an
/// organization's) connected when its turn comes, and the first target's region.
async fn connect_targets(
    cfg: &RunConfig,
) -> Result<(Vec<PendingTarget<IotClient>>, Option<aws_config::Region>), RunError> {
    let specs = crate::aws::targets::plan(&cfg.targets.client, &cfg.targets.flags).await?;
    let (targets, first_region) = if cfg.targets.flags.org.is_some() {
        // An organization's targets are connected when their turn comes, and one that cannot be
        // (its role missing, its credentials refused) is recorded while the others go on.
        let first = specs
            .first()
            .and_then(|s| s.client.region.clone())
            .map(aws_config::Region::new);
        (specs.into_iter().map(PendingTarget::lazy).collect(), first)
    } else {
        let resolved = crate::aws::targets::resolve(&specs).await?;
        let first = resolved.first().and_then(|t| t.sdk.region().cloned());
        let ready = resolved
            .into_iter()
            .map(|t| {
                PendingTarget::ready(TargetClient {
                    label: t.label,
                    client: Arc::new(IotClient::new(&t.sdk)),
                    origin: t.origin,
                })
            })
            .collect::<Vec<_>>();
        (ready, first)
    };
    Ok((targets, first_region))
}

/// The discovery's baseline, read and checked against its target (before any IoT call); over
/// several targets (`origin` None), each target carries only its own rows of it.
async fn open_baseline(
    spec: &crate::audit::config::DiscoverSpec,
    cfg: &RunConfig,
    dir: Option<&crate::dataset::OutputDir>,
    origin: Option<&Origin>,
) -> Result<Option<Arc<crate::audit::baseline::Baseline>>, RunError> {
    let Some(b) = &spec.baseline else {
        return Ok(None);
    };
    let dated = cfg.output.dated();
    let Some(baseline) =
        crate::audit::baseline::open(b, &cfg.output.layout, dir, dated, &cfg.targets.client)
            .await?
    else {
        eprintln!(
            "fleet-audit: note: --baseline latest: {} holds no complete audit yet, so this one describes what it needs without a baseline",
            cfg.output.layout.path().display()
        );
        return Ok(None);
    };
    if let Some(origin) = origin {
        baseline.check_origin(origin)?;
    }
    Ok(Some(Arc::new(baseline)))
}

/// Runs an audit of prepared inputs against every target, at most `--max-targets-in-flight` at once:
/// each target audits every pair with its own client, its own rate limiter and its own workers, so a
/// slow or throttled target never holds the others back. Rows of target `t` are numbered in lane `t`
/// of the manifest. A target that cannot be connected is recorded (summary, manifest) and the others
/// go on; the run then ends with [`Stop::TargetsFailed`], resumable.
pub(crate) async fn run_targets<C: FleetClient + FleetLister + crate::aws::client::FleetContext>(
    cfg: RunConfig,
    out: RunOutput,
    input: crate::input::PreparedInput,
    targets: Vec<PendingTarget<C>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let per_target = match cfg.shard {
        None => input.total(),
        Some(s) => count_in_shard(&input, s)?,
    };
    let total = per_target * targets.len() as u64;
    let labels: Vec<String> = targets.iter().map(|t| t.label.clone()).collect();
    let identity = identity_of(&cfg, &input, &labels);
    let manifest = prepare_output(&cfg, out.dir.as_ref(), &identity, total).await?;
    let done: Arc<DoneSet> = Arc::new(
        manifest
            .as_ref()
            .map(|m| m.committed.clone())
            .unwrap_or_default(),
    );
    let base = SummaryBase {
        pairs: total,
        duplicates: input.duplicates(),
        resumed: done.len(),
        baseline: None,
    };
    if let Some(m) = manifest.as_ref().filter(|m| m.complete) {
        let mut s = Summary::already_complete(&out.run_id, started, m);
        s.duplicates = base.duplicates;
        return Ok(s);
    }
    if !cfg.quiet {
        eprintln!(
            "{}",
            announce(&cfg, &input, targets.len() as u64, per_target, base.resumed)
        );
        let (things, jobs, at_most) = input.things_and_jobs();
        if let Some(line) = cfg.context.plan_line(jobs, things, at_most) {
            // Each target makes its own.
            let per = if targets.len() > 1 {
                "each target's "
            } else {
                ""
            };
            eprintln!("{per}{line}");
        }
    }
    // Every target's view (counters, limiter) exists from the start, for progress and the summary;
    // its client only while its turn lasts.
    let views: Vec<TargetView> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| TargetView::waiting(label, per_target - done.lane_len(i as u16), &cfg))
        .collect();
    let region = cfg.targets.client.region.clone();
    let session = Session::open_targets(&cfg, out, manifest, region, views.clone());
    let rows = session.rows();
    let (input, cfg) = (&input, &cfg);
    let result = take_turns(
        &views,
        targets,
        cfg.targets.max_in_flight,
        started,
        |i, t, view| {
            let (done, rows, shutdown) = (done.clone(), rows.clone(), shutdown.clone());
            target_turn(cfg, input, i as u16, t, view, done, rows, shutdown)
        },
    )
    .await;
    drop(rows);
    session.close(result, base).await
}

/// One target's turn: connect it (unless an earlier run committed all its rows), then audit its
/// lane's pairs; the client and its connections are dropped when the turn ends.
#[allow(clippy::too_many_arguments)]
async fn target_turn<C: FleetClient + FleetLister + FleetContext>(
    cfg: &RunConfig,
    input: &crate::input::PreparedInput,
    lane: u16,
    target: PendingTarget<C>,
    view: &TargetView,
    done: Arc<DoneSet>,
    rows: tokio::sync::mpsc::Sender<crate::dataset::WriterMsg>,
    shutdown: watch::Receiver<bool>,
) -> TargetEnd {
    if view.total == 0 {
        return TargetEnd::Ran(Ok(()));
    }
    let t = match view.connect(target, &shutdown).await {
        Ok(t) => t,
        Err(end) => return end,
    };
    let (rows, stage) = context::spawn(
        t.client.clone(),
        stage_parts(cfg, view, &t.label, &shutdown),
        rows,
    );
    let lane_state = view.calls(t);
    let work = match lane_work(input, cfg.shard, lane, done) {
        Ok(w) => w,
        Err(e) => return TargetEnd::Ran(Err(Stop::Input(e))),
    };
    let engine = run_engine(
        lane_state,
        cfg.engine.clone(),
        futures::stream::iter(work),
        rows,
        shutdown,
    )
    .await;
    let end = context::join(engine, stage).await;
    TargetEnd::of(end, cfg.targets.flags.org.is_some(), &view.failed)
}

/// What a target's context stage needs of the run.
pub(crate) fn stage_parts(
    cfg: &RunConfig,
    view: &TargetView,
    label: &str,
    shutdown: &watch::Receiver<bool>,
) -> context::StageParts {
    context::StageParts {
        settings: cfg.context.clone(),
        engine: cfg.engine.clone(),
        counters: view.counters.clone(),
        shutdown: shutdown.clone(),
        label: label.to_string(),
    }
}

/// The input identity of a resumed run when it is known before any call: its targets are named by
/// the flags (not an organization's, nor `--regions all`).
fn identity_before_calls(
    cfg: &RunConfig,
    input: Option<&crate::input::PreparedInput>,
    names: Option<&crate::input::Names>,
) -> Option<InputIdentity> {
    if !cfg.output.resume || cfg.targets.flags.org.is_some() || cfg.targets.flags.all_regions {
        return None;
    }
    let labels: Vec<String> = crate::aws::targets::expand(&cfg.targets.client, &cfg.targets.flags)
        .ok()?
        .into_iter()
        .map(|t| t.label)
        .collect();
    match (&cfg.input, input) {
        (Input::Describe(_), Some(input)) => Some(identity_of(cfg, input, &labels)),
        (Input::Discover(spec), _) if !spec.dry_run => Some(crate::audit::discover::identity_of(
            spec, names, cfg.shard, &labels,
        )),
        _ => None,
    }
}

/// The input identity a manifest records: the inputs' fingerprint, the targets of a run over several,
/// and the shard.
fn identity_of(
    cfg: &RunConfig,
    input: &crate::input::PreparedInput,
    labels: &[String],
) -> InputIdentity {
    InputIdentity::of(input.source().clone())
        .with_targets(labels)
        .with_shard(cfg.shard)
}

/// `auditing N pairs (notes), at most R calls/s: about T`, printed before the first call.
fn announce(
    cfg: &RunConfig,
    input: &crate::input::PreparedInput,
    n_targets: u64,
    per_target: u64,
    resumed: u64,
) -> String {
    let remaining = per_target * n_targets - resumed;
    let eta = cfg
        .rate
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
        notes.push(format!(
            "{} pairs in each of {n_targets} targets",
            crate::audit::summary::thousands(per_target)
        ));
    }
    if input.duplicates() > 0 {
        notes.push(crate::audit::summary::duplicate_lines(input.duplicates()));
    }
    if let Some(s) = cfg.shard {
        notes.push(format!(
            "shard {s} of {} input pairs",
            crate::audit::summary::thousands(input.total())
        ));
    }
    if resumed > 0 {
        notes.push(format!(
            "resuming: {} already committed",
            crate::audit::summary::thousands(resumed)
        ));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    format!(
        "auditing {} pairs{notes}{eta}",
        crate::audit::summary::thousands(remaining)
    )
}

/// The work of lane `lane`: the shard's pairs in input order, numbered in the lane, less those an
/// earlier run committed. The shard's pairs are numbered among themselves: the numbering is as
/// deterministic as the input's (the identity names the shard), and the manifest's committed set
/// stays a watermark instead of holding every N-th ordinal of the whole input.
fn lane_work(
    input: &crate::input::PreparedInput,
    shard: Option<crate::input::shard::Shard>,
    lane: u16,
    done: Arc<DoneSet>,
) -> Result<impl Iterator<Item = Result<Work, InputError>> + Send + 'static, InputError> {
    Ok(input
        .pairs()?
        .filter(move |r| match (shard, r) {
            (Some(s), Ok(p)) => s.owns_pair(&p.thing_name, &p.job_id),
            _ => true,
        })
        .enumerate()
        .map(move |(o, r)| {
            r.map(|pair| Work {
                ordinal: lane_ordinal(lane, o as u64),
                pair,
                retry_attempt: None,
            })
        })
        .filter(move |r| !matches!(r, Ok(w) if done.contains(w.ordinal))))
}

/// The number of distinct pairs of `input` in `shard`: one more read of the input files.
fn count_in_shard(
    input: &crate::input::PreparedInput,
    shard: crate::input::shard::Shard,
) -> Result<u64, InputError> {
    let mut n = 0;
    for p in input.pairs()? {
        let p = p?;
        if shard.owns_pair(&p.thing_name, &p.job_id) {
            n += 1;
        }
    }
    Ok(n)
}
