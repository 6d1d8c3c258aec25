//! `fleet-audit apply`: a reviewed plan carried out, exactly once, each action guarded by the
//! version its audit read.
//!
//! Before any call: the plan is read and checked whole (its checksum), its audit's age against
//! `--max-age`, the ACTIONS output (fresh, or resumed from its manifest: the same plan's), the
//! credentials of each target against the plan's account. Then each action is one
//! CancelJobExecution or DeleteJobExecution through the call layer (a token of the target's own
//! limiter per attempt, retries of throttles and 5xx; a `VersionConflictException` is never retried:
//! it is the guard working), and one row in the ACTIONS dataset.
//!
//! Exactly once: an action's number is journaled ([`super::journal`]) before its call is sent, and
//! a committed row is never sent again. An action journaled but without a committed row (a crash
//! between the call and the part's commit) is described first: cancelled with this plan's status
//! details, or gone after a delete, it is recorded `applied` (`recognised`) and not sent again. A
//! retried call answered 409 is recognised the same way (its first attempt was carried out and its
//! answer lost).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{watch, Mutex};

use super::journal::Journal;
use super::planfile::{Action, Plan};
use super::rows::{ActionRow, Outcome};
use crate::aws::call::{call_with_retries, Counters, EngineSettings, Final};
use crate::aws::client::{
    CallError, CancelRequest, ClientSettings, DeleteRequest, FleetChanger, FleetClient, IotClient,
};
use crate::aws::limit::CallLimiter;

/// Why an apply did not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] super::PlanError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Setup(#[from] crate::aws::client::SetupError),
    #[error(transparent)]
    Lock(#[from] crate::dataset::LockError),
    #[error(transparent)]
    Write(#[from] crate::dataset::WriteError),
    #[error("{path}: {source}")]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stopped: {0}{hint}", hint = .0.next_step())]
    Fatal(CallError),
}

impl ApplyError {
    pub fn exit(&self) -> crate::audit::error::Exit {
        use crate::audit::error::Exit;
        match self {
            ApplyError::Plan(e) => e.exit(),
            ApplyError::Refused(_) => Exit::BadInput,
            ApplyError::Setup(_) | ApplyError::Fatal(_) | ApplyError::Journal { .. } => {
                Exit::Failed
            }
            ApplyError::Lock(e) => e.exit(),
            ApplyError::Write(e) => e.exit(),
        }
    }
}

/// What to call and how.
pub struct ApplySettings {
    pub plan: Plan,
    /// The ACTIONS output: a local directory.
    pub out: PathBuf,
    pub resume: bool,
    pub dry_run: bool,
    /// `--rps` of the action calls, per target (the describes of recognition have their own).
    pub rps: Option<f64>,
    pub engine: EngineSettings,
    pub client: ClientSettings,
}

/// How an apply ended: its rows by outcome (this run's and the earlier runs' of a resume).
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Rows committed by earlier runs (a resume).
    pub earlier: u64,
    /// Actions recognised as carried out before, without a call.
    pub recognised: u64,
    /// Actions left without a row (a shutdown).
    pub left: u64,
    pub calls: u64,
}

/// One target's connection and limiters.
struct Target {
    client: IotClient,
    /// The action API's limiter, and DescribeJobExecution's (recognition).
    act: CallLimiter,
    describe: CallLimiter,
}

/// The status details a cancel leaves on the execution: who and which plan, so that the device
/// and later audits see why, and a resumed apply recognises its own cancel.
pub fn cancel_details(plan_id: &str, a: &Action) -> Vec<(String, String)> {
    vec![
        ("cancelledBy".into(), "fleet-audit".into()),
        ("fleetAuditPlan".into(), plan_id.into()),
        ("fleetAuditReason".into(), a.class.clone()),
    ]
}

/// What describing the execution of `a` says of an action an earlier attempt may have carried
/// out: `Done` (cancelled with this plan's details, or gone after a delete), `Settled` (the answer
/// AWS would give a call now: the execution changed since the audit, or is gone), or `Send` (as
/// planned: the call was never carried out). `Unknown` when it could not be described.
enum Judged {
    Done,
    Settled(Outcome, String),
    Send,
    Unknown,
}

async fn judge(
    t: &Target,
    s: &ApplySettings,
    counters: &Counters,
    shutdown: &watch::Receiver<bool>,
    (a, sent): (&Action, bool),
) -> Judged {
    let plan_id = &s.plan.header.plan_id;
    let attempts = std::sync::atomic::AtomicU64::new(0);
    let r = call_with_retries(
        &t.describe,
        &s.engine,
        counters,
        &attempts,
        shutdown,
        || {
            t.client
                .describe_job_execution(&a.thing_name, &a.job_id, Some(a.execution_number))
        },
    )
    .await;
    let ours = |e: &crate::aws::client::ExecutionRecord| {
        e.status.as_deref() == Some("CANCELED")
            && e.status_details
                .as_ref()
                .is_some_and(|d| d.iter().any(|(k, v)| k == "fleetAuditPlan" && v == plan_id))
    };
    match (r.result, a.action.as_str()) {
        (Final::Ok(e), "cancel") if ours(&e) => Judged::Done,
        (Final::Ok(e), _) if e.version_number != Some(a.expected_version) => Judged::Settled(
            Outcome::VersionConflict,
            format!(
                "read before sending again: version {} (status {}), planned at {}",
                e.version_number.unwrap_or_default(),
                e.status.as_deref().unwrap_or("?"),
                a.expected_version
            ),
        ),
        (Final::Ok(_), _) => Judged::Send,
        (Final::NotFound(_), "delete") if sent => Judged::Done,
        (Final::NotFound(_), _) => Judged::Settled(
            Outcome::NotFound,
            "read before sending again: the execution is gone".into(),
        ),
        _ => Judged::Unknown,
    }
}

/// The action's call, until its final answer.
async fn send(
    t: &Target,
    s: &ApplySettings,
    counters: &Counters,
    shutdown: &watch::Receiver<bool>,
    a: &Action,
) -> crate::aws::call::Attempted<()> {
    let attempts = std::sync::atomic::AtomicU64::new(0);
    let plan_id = s.plan.header.plan_id.as_str();
    call_with_retries(
        &t.act,
        &s.engine,
        counters,
        &attempts,
        shutdown,
        || async move {
            if a.action == "delete" {
                let req = DeleteRequest {
                    thing_name: a.thing_name.clone(),
                    job_id: a.job_id.clone(),
                    execution_number: a.execution_number,
                    force: a.force,
                };
                t.client.delete_job_execution(&req).await
            } else {
                let req = CancelRequest {
                    thing_name: a.thing_name.clone(),
                    job_id: a.job_id.clone(),
                    force: a.force,
                    expected_version: Some(a.expected_version),
                    status_details: cancel_details(plan_id, a),
                };
                t.client.cancel_job_execution(&req).await
            }
        },
    )
    .await
}

/// The error code a settled outcome stands for (AWS's answer had the call been sent).
fn settled_code(o: Outcome) -> &'static str {
    match o {
        Outcome::VersionConflict => "VersionConflictException",
        Outcome::InvalidState => "InvalidStateTransitionException",
        Outcome::NotFound => "ResourceNotFoundException",
        Outcome::Applied | Outcome::Error => "",
    }
}

/// The outcome of a call's final answer.
fn outcome_of(e: &CallError) -> Outcome {
    match e.code() {
        "VersionConflictException" => Outcome::VersionConflict,
        "InvalidStateTransitionException" => Outcome::InvalidState,
        "ResourceNotFoundException" => Outcome::NotFound,
        _ => Outcome::Error,
    }
}

/// Carries out one action: recognised if an earlier run sent it, else journaled and called.
/// `None` when a shutdown came first (no row: a resume does it).
async fn one(
    t: &Target,
    s: &ApplySettings,
    journal: &Mutex<Journal>,
    counters: &Counters,
    shutdown: &watch::Receiver<bool>,
    a: &Action,
) -> Result<Option<ActionRow>, ApplyError> {
    let row = |outcome, error: Option<&CallError>, attempts, recognised| ActionRow {
        plan_id: Arc::from(s.plan.header.plan_id.as_str()),
        planned: a.clone(),
        outcome,
        error_code: error.map(|e| e.code().to_string()),
        error_message: error.map(CallError::message),
        attempts,
        applied_at_ms: crate::time::now_ms(),
        recognised,
    };
    let sent = journal.lock().await.was_sent(a.n);
    // A journaled action may have been carried out; a delete has no expectedVersion at AWS, so its
    // guard is reading the execution's version first.
    if sent || a.action == "delete" {
        match judge(t, s, counters, shutdown, (a, sent)).await {
            Judged::Done => return Ok(Some(row(Outcome::Applied, None, 0, true))),
            Judged::Settled(outcome, why) => {
                let e = CallError::Service {
                    code: settled_code(outcome).into(),
                    message: why,
                    http_status: 0,
                };
                return Ok(Some(row(outcome, Some(&e), 0, false)));
            }
            Judged::Unknown if *shutdown.borrow() => return Ok(None),
            // A delete is guarded only by that read: never sent unread.
            Judged::Unknown if a.action == "delete" => {
                let e = CallError::Other(
                    "the execution could not be read before deleting it; nothing was sent".into(),
                );
                return Ok(Some(row(Outcome::Error, Some(&e), 0, false)));
            }
            // Not describable: sending a cancel again is guarded by its expectedVersion.
            Judged::Send | Judged::Unknown => {}
        }
    }
    if *shutdown.borrow() {
        return Ok(None);
    }
    {
        let mut j = journal.lock().await;
        j.sending(a.n).map_err(|source| ApplyError::Journal {
            path: j.path().to_path_buf(),
            source,
        })?;
    }
    let r = send(t, s, counters, shutdown, a).await;
    let n = r.attempts;
    Ok(Some(match r.result {
        Final::Ok(()) => row(Outcome::Applied, None, n, false),
        Final::Interrupted => return Ok(None),
        Final::Fatal(e) => return Err(ApplyError::Fatal(e)),
        Final::NotFound(e) | Final::Failed(e) => {
            // Refused as if done, or no answer had: an attempt may have been carried out (its
            // answer lost, or another apply of this plan), so the execution is read back.
            match judge(t, s, counters, shutdown, (a, true)).await {
                Judged::Done => row(Outcome::Applied, None, n, true),
                Judged::Settled(o, why) if outcome_of(&e) == Outcome::Error => {
                    let read = CallError::Service {
                        code: settled_code(o).into(),
                        message: format!("{why} (the call's answer: {})", e.message()),
                        http_status: 0,
                    };
                    row(o, Some(&read), n, false)
                }
                _ => row(outcome_of(&e), Some(&e), n, false),
            }
        }
    }))
}

/// The ACTIONS output as this apply takes it: locked, its manifest (fresh, or the same plan's to
/// resume, what an earlier run left uncommitted removed), and the plan's journal.
async fn prepare(
    s: &ApplySettings,
    run_id: &str,
) -> Result<
    (
        crate::dataset::OutputLock,
        crate::dataset::Manifest,
        Journal,
    ),
    ApplyError,
> {
    use crate::dataset::{Layout, Manifest, OutputDir};
    let h = &s.plan.header;
    let identity = format!("plan:{}:{}", h.plan_id, h.actions_sha256);
    let layout = Layout::Dir(s.out.clone());
    let refused = |e: crate::audit::config::ConfigError| ApplyError::Refused(e.to_string());
    crate::audit::config::check_not_nested(&layout).map_err(refused)?;
    let lock = crate::dataset::OutputLock::local(&s.out, &crate::dataset::Holder::me(run_id))?;
    let dir = OutputDir::Local(s.out.clone());
    let journal_path = super::journal::path_of(&s.out).map_err(|source| ApplyError::Journal {
        path: s.out.clone(),
        source,
    })?;
    let journaled = journal_of(s, &dir, &journal_path).await?;
    let manifest = match dir.load_manifest().await? {
        Some(_) if !s.resume => {
            return Err(ApplyError::Refused(format!(
                "{}: holds an apply already; --resume continues it, or name another --out",
                s.out.display()
            )))
        }
        Some(m) if m.input_identity != identity => {
            return Err(ApplyError::Refused(format!(
                "{}: holds the actions of another plan ({}); name another --out",
                s.out.display(),
                m.input_identity
            )))
        }
        Some(m) => {
            crate::audit::output::remove_uncommitted(&dir, &m).await?;
            m
        }
        None => {
            if journaled.is_some() && !s.resume {
                return Err(ApplyError::Refused(format!(
                    "an earlier apply of plan {} into {} was stopped before its first rows were \
                     committed (its journal {} names the calls it sent): --resume continues it",
                    h.plan_id,
                    s.out.display(),
                    journal_path.display()
                )));
            }
            crate::audit::config::check_output(&layout, false).map_err(refused)?;
            Manifest::new(identity, h.actions, "parquet")
        }
    };
    let journal =
        Journal::open(&journal_path, &h.plan_id).map_err(|source| ApplyError::Journal {
            path: journal_path,
            source,
        })?;
    Ok((lock, manifest, journal))
}

/// Each target of the plan connected, its credentials checked against the plan's account before
/// any IoT call.
async fn connect(
    s: &ApplySettings,
) -> Result<BTreeMap<(Option<String>, Option<String>), Target>, ApplyError> {
    let mut targets = BTreeMap::new();
    for a in &s.plan.actions {
        let key = (a.account_id.clone(), a.region.clone());
        if targets.contains_key(&key) {
            continue;
        }
        let mut client = s.client.clone();
        if a.region.is_some() {
            client.region = a.region.clone();
        }
        let config = crate::aws::client::load_sdk_config(&client).await;
        let caller = crate::aws::client::caller_account(&config, None).await?;
        if let (Some(want), Some(have)) = (&a.account_id, &caller) {
            if want != have {
                return Err(ApplyError::Refused(format!(
                    "the plan's actions are in account {want}, and these credentials are account \
                     {have}: nothing was called"
                )));
            }
        }
        let burst = crate::aws::limit::burst_for(None, s.rps);
        targets.insert(
            key,
            Target {
                client: IotClient::new(&config),
                act: CallLimiter::new(s.rps, burst, true),
                describe: CallLimiter::new(s.rps, burst, true),
            },
        );
    }
    Ok(targets)
}

/// Carries the plan out into its ACTIONS output (see the module's words).
pub async fn apply(
    s: &ApplySettings,
    shutdown: watch::Receiver<bool>,
) -> Result<Applied, ApplyError> {
    use crate::dataset::{DatasetWriter, Format, Layout, OutputDir, WriterSettings};
    let run_id = crate::dataset::new_run_id();
    let (_lock, manifest, journal) = prepare(s, &run_id).await?;
    let targets = connect(s).await?;
    let mut done = Applied {
        earlier: manifest.committed.len(),
        ..Applied::default()
    };
    let pending: Vec<&Action> = s
        .plan
        .actions
        .iter()
        .filter(|a| !manifest.committed.contains(a.n - 1))
        .collect();
    let settings = WriterSettings {
        layout: Layout::Dir(s.out.clone()),
        format: Format::Parquet,
        part_rows: 1000,
        part_interval: std::time::Duration::from_secs(5),
        manifest: Some(manifest),
        batch_rows: 1000,
        row_group_rows: 128 * 1024,
        run_id: run_id.clone(),
        region: None,
        shard: None,
        partitioning: None,
        verify_lock: true,
    };
    let dir = OutputDir::Local(s.out.clone());
    let mut writer =
        DatasetWriter::with_builder(super::rows::ActionBuilder::default(), settings, Some(dir));
    let journal = Mutex::new(journal);
    let counters = Counters::default();
    let mut calls = futures::stream::iter(pending.into_iter().map(|a| {
        let t = &targets[&(a.account_id.clone(), a.region.clone())];
        let (journal, counters, shutdown) = (&journal, &counters, &shutdown);
        async move { one(t, s, journal, counters, shutdown, a).await }
    }))
    .buffer_unordered(s.engine.concurrency.max(1));
    let mut failed = None;
    while let Some(r) = calls.next().await {
        match r {
            Ok(Some(row)) => {
                done.recognised += u64::from(row.recognised);
                done.calls += u64::from(row.attempts);
                *done.by_outcome.entry(row.outcome).or_default() += 1;
                writer.push(&row, row.planned.n - 1)?;
                writer.tick()?;
            }
            Ok(None) => done.left += 1,
            Err(e) => {
                // Every further call would fail the same way (credentials, permissions): stop.
                failed.get_or_insert(e);
                break;
            }
        }
    }
    drop(calls);
    writer.finish(done.left == 0 && failed.is_none())?;
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// The journal beside the output when it names calls of this plan. Another plan's journal naming
/// calls is refused: their rows may not all be committed, and its record is what keeps them from
/// being sent twice; only that plan's complete apply releases it.
async fn journal_of(
    s: &ApplySettings,
    dir: &crate::dataset::OutputDir,
    journal_path: &std::path::Path,
) -> Result<Option<(String, std::collections::HashSet<u64>)>, ApplyError> {
    let h = &s.plan.header;
    let journaled = super::journal::read(journal_path)
        .map_err(|source| ApplyError::Journal {
            path: journal_path.to_path_buf(),
            source,
        })?
        .filter(|(_, sent)| !sent.is_empty());
    if let Some((other, _)) = journaled.as_ref().filter(|(p, _)| *p != h.plan_id) {
        let done = dir
            .load_manifest()
            .await?
            .is_some_and(|m| m.complete && m.input_identity.starts_with(&format!("plan:{other}:")));
        if !done {
            return Err(ApplyError::Refused(format!(
                "{}: an apply of another plan ({other}) into {} is unfinished (its journal {} names \
                 calls it sent): finish it with --resume and that plan, or name another --out",
                s.plan.path.display(),
                s.out.display(),
                journal_path.display()
            )));
        }
    }
    Ok(journaled.filter(|(p, _)| *p == h.plan_id))
}
