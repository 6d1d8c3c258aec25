//! `run --discover` over its targets (one, or several: regions, accounts, an organization; one target
//! is the one-target case of many): each target plans,
//! lists and describes on its own (its client, its list and describe limiters, its workers), into one
//! dataset where its rows are numbered in its own lane. At most `--max-targets-in-flight` targets at
//! once; a target that cannot be connected is recorded as failed while the others go on
//! ([`Stop::TargetsFailed`]); a resume skips, in each target, the pairs that target committed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::resume::{self, OriginKey};
use super::{identity_of, list, list_and_describe, plan, units_of, Ctx, Describing, ListLimiters};
use crate::audit::baseline::Baseline;
use crate::audit::config::{DiscoverSpec, RunConfig};
use crate::audit::engine::{Stop, TargetEnd};
use crate::audit::error::RunError;
use crate::audit::output::{prepare_output, RunOutput};
use crate::audit::session::Session;
use crate::audit::summary::{Summary, SummaryBase};
use crate::audit::turns::{take_turns, TargetView};
use crate::aws::client::{FleetClient, FleetLister};
use crate::aws::targets::PendingTarget;
use crate::dataset::{Manifest, OutputDir};
use crate::input::identity::InputIdentity;
use crate::input::Names;

/// The pairs an earlier run committed (their keys), by the origin of their rows.
type Committed = HashMap<OriginKey, HashSet<u128>>;

/// What every target's turn shares.
struct Shared<'a> {
    cfg: &'a RunConfig,
    spec: &'a DiscoverSpec,
    names: Option<&'a Names>,
    baseline: Option<Arc<Baseline>>,
    /// What an earlier run committed, by target; each turn takes its own.
    committed: Mutex<Committed>,
    listed: AtomicU64,
    /// Executions the plans counted, and their list calls (a dry run's figures).
    planned: AtomicU64,
    plan_calls: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// One target named by the flags: its plan line is not labelled (but names the shard), the
    /// baseline's line follows it, and every committed row is its own whatever origin it carries.
    one: bool,
}

/// Runs a discovery over its targets; `names` is what [`super::prepare_scope`] returned.
pub(crate) async fn run_discover_targets<
    C: FleetClient + FleetLister + crate::aws::client::FleetContext,
>(
    cfg: RunConfig,
    out: RunOutput,
    spec: DiscoverSpec,
    names: Option<Names>,
    targets: Vec<PendingTarget<C>>,
    baseline: Option<Arc<Baseline>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let labels: Vec<String> = targets.iter().map(|t| t.label.clone()).collect();
    let identity = identity_of(&spec, names.as_ref(), cfg.shard, &labels);
    let (mut manifest, committed) = if spec.dry_run {
        (None, HashMap::new())
    } else {
        prepared_output(&cfg, out.dir.as_ref(), &identity).await?
    };
    let resumed: u64 = committed.values().map(|s| s.len() as u64).sum();
    if let Some(m) = manifest.as_ref().filter(|m| m.complete) {
        return Ok(Summary::already_complete(&out.run_id, started, m));
    }
    let next = resume::renumber_lanes(manifest.as_mut(), labels.len());
    let views: Vec<TargetView> = labels
        .iter()
        .map(|label| TargetView::waiting(label, 0, &cfg))
        .collect();
    let shared = Shared {
        cfg: &cfg,
        spec: &spec,
        names: names.as_ref(),
        baseline: baseline.clone(),
        committed: Mutex::new(committed),
        listed: AtomicU64::new(0),
        planned: AtomicU64::new(0),
        plan_calls: AtomicU64::new(0),
        shutdown: shutdown.clone(),
        one: labels.len() == 1 && cfg.targets.flags.org.is_none(),
    };
    if spec.dry_run {
        return plan_only(&shared, &views, targets, &out.run_id, started).await;
    }
    let session = Session::open_targets(
        &cfg,
        out,
        manifest,
        cfg.targets.client.region.clone(),
        views.clone(),
    );
    let rows = session.rows();
    let items: Vec<_> = targets.into_iter().zip(next).collect();
    let result = take_turns(
        &views,
        items,
        cfg.targets.max_in_flight,
        started,
        |_, (t, first), view| target_turn(&shared, t, view, Some(rows.clone()), first),
    )
    .await;
    drop(rows);
    let base = SummaryBase {
        pairs: shared.listed.load(Ordering::Relaxed),
        duplicates: 0,
        resumed,
        baseline: baseline.map(|b| b.location.clone()),
    };
    session.close(result, base).await
}

/// The output prepared (fresh, replaced or resumed: [`prepare_output`]) for a discovery with this
/// `identity`, and the pairs an earlier run committed there, by the origin of their rows.
async fn prepared_output(
    cfg: &RunConfig,
    dir: Option<&OutputDir>,
    identity: &InputIdentity,
) -> Result<(Option<Manifest>, Committed), RunError> {
    let manifest = prepare_output(cfg, dir, identity, 0).await?;
    let committed = match (dir, &manifest) {
        (Some(t), Some(m)) if !m.parts.is_empty() => resume::committed_by_origin(t, m).await?,
        _ => HashMap::new(),
    };
    Ok((manifest, committed))
}

/// A dry run (`--dry-run`): every target's turn plans only, no output and no rows; the summary
/// counts what the plans found (their executions, their list calls), a stop ends it unresumable.
async fn plan_only<C: FleetClient + FleetLister + crate::aws::client::FleetContext>(
    shared: &Shared<'_>,
    views: &[TargetView],
    targets: Vec<PendingTarget<C>>,
    run_id: &str,
    started: Instant,
) -> Result<Summary, RunError> {
    let cfg = shared.cfg;
    let ended = take_turns(
        views,
        targets,
        cfg.targets.max_in_flight,
        started,
        |_, t, view| target_turn(shared, t, view, None, 0),
    )
    .await;
    let mut s = Summary::empty(run_id, started);
    s.list_calls = shared.plan_calls.load(Ordering::Relaxed);
    s.pairs = shared.planned.load(Ordering::Relaxed);
    match ended {
        Ok(()) => Ok(s),
        Err(stop) => Err(RunError::Stopped {
            stop,
            out: cfg.output.layout.path().to_path_buf(),
            resumable: false,
            summary: Box::new(s),
        }),
    }
}

/// One target's turn: connect, plan, then list and describe (`rows`: where rows go; `None`, a dry
/// run: the plan only). `first`: the first ordinal of its lane.
async fn target_turn<C: FleetClient + FleetLister + crate::aws::client::FleetContext>(
    shared: &Shared<'_>,
    target: PendingTarget<C>,
    view: &TargetView,
    rows: Option<mpsc::Sender<crate::dataset::WriterMsg>>,
    first: u64,
) -> TargetEnd {
    let (cfg, spec) = (shared.cfg, shared.spec);
    let lenient = cfg.targets.flags.org.is_some();
    let t = match view.connect(target, &shared.shutdown).await {
        Ok(t) => t,
        Err(end) => return end,
    };
    let shard = cfg.shard;
    let in_shard = move |name: &str| shard.is_none_or(|s| s.owns_name(name));
    let ctx = Arc::new(Ctx {
        client: t.client.clone(),
        limits: ListLimiters::new(spec.list_rps, cfg.rate.burst, cfg.rate.adaptive),
        settings: cfg.engine.clone(),
        counters: view.counters.clone(),
        shutdown: shared.shutdown.clone(),
    });
    let (plan, jobs) =
        match plan::make_plan(&ctx, spec, shared.names, in_shard, shard.is_some()).await {
            Ok(p) => p,
            Err(stop) => return TargetEnd::of(Err(stop), lenient, &view.failed),
        };
    note_plan(shared, &t.label, &plan);
    let Some(rows) = rows else {
        return TargetEnd::Ran(Ok(()));
    };
    let key = (t.origin.region.clone(), t.origin.account_id.clone());
    let committed = take_committed(shared, &key);
    let units = match units_of(spec, shared.names, jobs, in_shard) {
        Ok(u) => u,
        Err(e) => return TargetEnd::Ran(Err(Stop::Input(e))),
    };
    let parts = crate::audit::run::stage_parts(cfg, view, &t.label, &shared.shutdown);
    let (rows, stage) = crate::audit::context::spawn(t.client.clone(), parts, rows);
    let (work_tx, work_rx) = mpsc::channel(1024);
    let lister = list::Lister {
        ctx: ctx.clone(),
        spec: spec.clone(),
        origin: t.origin.clone(),
        rows: rows.clone(),
        work: work_tx,
        committed,
        next_ordinal: first,
        listed: 0,
        baseline: shared.baseline.clone(),
    };
    let describing = Describing {
        lane: view.calls(t),
        settings: cfg.engine.clone(),
        work: work_rx,
        rows,
    };
    let (result, listed) =
        list_and_describe(lister, units, describing, shared.shutdown.clone()).await;
    let result = crate::audit::context::join(result, stage).await;
    shared.listed.fetch_add(listed, Ordering::Relaxed);
    let _ = view.listed.set(listed);
    TargetEnd::of(result, lenient, &view.failed)
}

/// Adds a target's plan to the run's figures (a dry run's), and says it unless quiet (a dry run
/// says it even then): labelled by its target; or, for one target named by the flags, unlabelled
/// but with the shard's note, the baseline's line after it.
fn note_plan(shared: &Shared<'_>, label: &str, plan: &plan::Plan) {
    let (cfg, spec, shard) = (shared.cfg, shared.spec, shared.cfg.shard);
    shared
        .planned
        .fetch_add(plan.executions.unwrap_or(0), Ordering::Relaxed);
    shared
        .plan_calls
        .fetch_add(plan.plan_calls, Ordering::Relaxed);
    if !cfg.quiet || spec.dry_run {
        if shared.one {
            let shard_note = shard.map(|s| format!("shard {s}: ")).unwrap_or_default();
            eprintln!("{shard_note}{}", plan.render(spec, cfg.rate.rps));
            if let Some(b) = &shared.baseline {
                eprintln!("{shard_note}{}", plan::baseline_line(b, plan));
            }
            if let Some(line) = context_line(cfg, plan) {
                eprintln!("{shard_note}{line}");
            }
        } else {
            eprintln!("{label}: {}", plan.render(spec, cfg.rate.rps));
            if let Some(line) = context_line(cfg, plan) {
                eprintln!("{label}: {line}");
            }
        }
    }
}

/// The plan's context line: DescribeJob for the jobs listed, SearchIndex for at most as many
/// things as executions (by job) or for the things listed (by thing).
fn context_line(cfg: &RunConfig, plan: &plan::Plan) -> Option<String> {
    let (jobs, things) = match plan.unit_name {
        "things" => (None, plan.units),
        _ => (Some(plan.units), plan.executions.unwrap_or(0)),
    };
    cfg.context.plan_line(jobs, things, true)
}

/// The pairs an earlier run committed of the target whose rows carry `key`, taken from what the
/// turns share (each turn takes its own once).
fn take_committed(shared: &Shared<'_>, key: &OriginKey) -> HashSet<u128> {
    let mut by_origin = shared
        .committed
        .lock()
        .expect("no panic holds the committed sets");
    if shared.one {
        // (An earlier run may have had no account, STS unreachable: its rows are this target's.)
        by_origin.drain().flat_map(|(_, keys)| keys).collect()
    } else {
        by_origin.remove(key).unwrap_or_default()
    }
}
