//! A run's output before the first call: connected (S3), locked for this run alone, and prepared as
//! a fresh, replaced or resumed dataset (the manifest checked against this run: inputs, shard,
//! targets, format, partitions).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::audit::config::{ConfigError, RunConfig};
use crate::audit::error::RunError;
use crate::dataset::delta;
use crate::dataset::{
    Entry, Holder, Kind, Layout, Manifest, OutputDir, OutputLock, RemoteError, WriteError, MANIFEST,
};
use crate::input::identity::InputIdentity;
use crate::time::{now_ms, utc_date};

mod mismatch;
use mismatch::mismatch;

/// Removes what an earlier run left in a directory output, when `--overwrite` (or a resume with
/// nothing committed) allows it: only what this tool can show is its own. With a manifest `m`, the
/// parts it lists; with or without one, files named exactly as this tool names its parts and
/// temporaries (a run id in the name), and the manifest. Without a manifest, a directory that holds
/// anything else is refused and nothing is deleted: no manifest shows the rest is this tool's.
async fn clear_old_parts(
    target: &OutputDir,
    entries: &[Entry],
    m: Option<&Manifest>,
) -> Result<(), RunError> {
    let listed: HashSet<&str> = m
        .map(|m| m.all_parts().map(|p| p.file.as_str()).collect())
        .unwrap_or_default();
    // What a Delta table's versions name stays for its readers (until their VACUUM); its log is
    // never deleted, and is this tool's only when the table is.
    let table = delta::snapshot(target).await?;
    let our_table = table.version.is_some()
        && table
            .refusal(
                &table.partition_columns(),
                crate::dataset::schema::SCHEMA_VERSION,
            )
            .is_none();
    // A Delta table's manifest stays until the writer replaces it: a run killed before its first
    // commit leaves the table and its journal as they were, never a table without one.
    let ours = |e: &Entry| {
        (matches!(e.kind, Kind::Part | Kind::Temp)
            || (e.kind == Kind::Manifest && !our_table)
            || listed.contains(e.relative.as_str()))
            && !table.referenced.contains(&e.relative)
    };
    if m.is_none() {
        let foreign: Vec<&str> = entries
            .iter()
            .filter(|e| !ours(e) && e.kind != Kind::Lock)
            .filter(|e| !(our_table && e.kind == Kind::DeltaLog))
            .filter(|e| !table.referenced.contains(&e.relative))
            .map(|e| e.relative.as_str())
            .collect();
        if !foreign.is_empty() {
            let shown: Vec<&str> = foreign.iter().take(5).copied().collect();
            let more = if foreign.len() > 5 { ", …" } else { "" };
            return Err(ConfigError::Output {
                path: PathBuf::from(target.name()),
                reason: format!(
                    "holds {} file(s) this tool did not write ({}{more}) and no manifest that shows \
                     what is its own: nothing was deleted; move them away or choose another --out",
                    foreign.len(),
                    shown.join(", ")
                ),
            }
            .into());
        }
    }
    for e in entries.iter().filter(|e| ours(e)) {
        target.delete(&e.relative).await?;
    }
    target.prune_empty_folders();
    Ok(())
}

/// The manifest of a local directory's audit that a `--resume` finds already complete, read before
/// any network call (`identity`: the run's, known without one): its parts are checked as a resume
/// checks them. `None` when the run has work to do or only [`prepare_output`] can tell (a manifest
/// that is unreadable, of other inputs or another layout, or of an earlier date: it says why).
pub(crate) async fn complete_before_calls(
    cfg: &RunConfig,
    identity: &InputIdentity,
) -> Result<Option<Manifest>, RunError> {
    if !cfg.output.resume || !matches!(cfg.output.layout, crate::dataset::Layout::Dir(_)) {
        return Ok(None);
    }
    let Some(target) = OutputDir::local(&cfg.output.layout) else {
        return Ok(None);
    };
    let Ok(Some(m)) = target.load_manifest().await else {
        return Ok(None);
    };
    let partition_by: Vec<String> = cfg.output.partition_names();
    let dated = cfg.output.dated();
    let today = utc_date(now_ms());
    let same = m.complete
        && InputIdentity::parse(&m.input_identity) == *identity
        && m.format == cfg.output.format.extension()
        && m.partition_by == partition_by
        && m.table_format == cfg.output.table_format()
        && (!dated || m.date.as_deref() == Some(today.as_str()));
    // A link where a folder of ours goes is for the full preparation to refuse, saying so; no part
    // is read through one.
    if !same || !target.planted().is_empty() {
        return Ok(None);
    }
    check_committed_parts(&target, &m).await?;
    // Complete, but perhaps not yet published (a crash between the manifest and the commit).
    delta::before_run(
        &target,
        Some(&m),
        cfg.output.delta,
        &partition_by,
        (false, false),
    )
    .await?;
    Ok(Some(m))
}

/// Checks, before a resume trusts them, that the parts the manifest `m` lists as committed are there
/// with the bytes committed: locally their size and xxh3, in an object store their size (a listing;
/// the bytes are checked when a reader fetches them). A part missing, truncated or altered is bad
/// input (exit 2) naming it: its rows cannot be counted as committed, and which pairs it held is
/// only written in it.
async fn check_committed_parts(target: &OutputDir, m: &Manifest) -> Result<(), RunError> {
    let bad = |reason: String| -> RunError {
        ConfigError::Output {
            path: PathBuf::from(target.name()),
            reason: format!(
                "{reason}; its committed rows are not all there, so --resume cannot continue this \
                 audit: start it again with --overwrite"
            ),
        }
        .into()
    };
    // A part a Delta table replaced (a compaction's `remove`) is published already, and its
    // bytes are in the files that replaced it: a VACUUM may have deleted it.
    let replaced: HashSet<String> = if m.table_format.as_deref() == Some(delta::DELTA) {
        let snap = delta::snapshot(target).await?;
        snap.referenced
            .into_iter()
            .filter(|f| !snap.live.contains_key(f))
            .collect()
    } else {
        HashSet::new()
    };
    let parts = m.parts.iter().filter(|p| !replaced.contains(&p.file));
    target.verify_parts(parts).await?.map_err(bad)
}

/// Deletes what a crashed run left uncommitted: temporaries, and part files the manifest does not list
/// (published but never recorded), so a resume can never double a row.
pub(crate) async fn remove_uncommitted(target: &OutputDir, m: &Manifest) -> Result<(), WriteError> {
    let listed: HashSet<&str> = m.all_parts().map(|p| p.file.as_str()).collect();
    // A Delta table's versions may name parts the manifest no longer lists (a replaced audit's):
    // its readers read them until a VACUUM.
    let in_table = delta::referenced(target).await?;
    for e in target.entries().await? {
        let stale = match e.kind {
            Kind::Temp => true,
            Kind::Part => !listed.contains(e.relative.as_str()) && !in_table.contains(&e.relative),
            Kind::Manifest | Kind::Lock | Kind::DeltaLog | Kind::Foreign => false,
        };
        if stale {
            tracing::info!(file = %e.relative, "removing uncommitted file left by an earlier run");
            target.delete(&e.relative).await?;
        }
    }
    target.prune_empty_folders();
    Ok(())
}

/// A run's output once opened: the run id that names its parts (and holds its lock), and the
/// directory it writes, local or an object store's connection (`None`: a single file). The
/// connection lives here, never in the settings ([`crate::audit::config::OutputSettings`]).
#[derive(Debug, Clone)]
pub(crate) struct RunOutput {
    pub run_id: String,
    pub dir: Option<OutputDir>,
}

/// Opens a run's output directory: a local one as it is; an object store's is connected and checked
/// before any IoT call (reachable, empty unless `--resume` or `--overwrite`, and writable: a failure
/// is a bad output, exit 2, naming the URL) and locked for `holder`. A local output loads no AWS
/// configuration.
pub(crate) async fn connect_output(
    cfg: &RunConfig,
    first_region: Option<aws_config::Region>,
    holder: Option<&Holder>,
) -> Result<(Option<OutputDir>, Option<OutputLock>), RunError> {
    let (resume, overwrite, lease) = (
        cfg.output.resume,
        cfg.output.overwrite,
        cfg.output.lock_lease,
    );
    let dated = cfg.output.dated();
    let Layout::Remote(r) = &cfg.output.layout else {
        return Ok((OutputDir::local(&cfg.output.layout), None));
    };
    let url = PathBuf::from(&r.url);
    let bad = |e: &RemoteError| ConfigError::Output {
        path: url.clone(),
        reason: e.reason(),
    };
    // The output is written as the run's own configuration (--profile, --region), not as an
    // audited account's role; with several regions and none of its own, in the first target's.
    let dir = r
        .connect_as(&cfg.targets.client, first_region)
        .await
        .map_err(|e| bad(&e))?;
    // The check's own retries, named: a write in the run retries longer (docs/outputs.md, Output to S3).
    let unusable = |e: &RemoteError| ConfigError::Output {
        path: url.clone(),
        reason: format!("{} ({})", e.reason(), crate::dataset::s3::check_note()),
    };
    let non_empty = dir.holds_objects().await.map_err(|e| unusable(&e))?;
    // A --partition-by date output holds earlier audits: preparing the output decides.
    if non_empty && !resume && !overwrite && !dated {
        return Err(ConfigError::DirExists(url).into());
    }
    if non_empty {
        // A table this run must not write (another tool's, another layout's) is refused before the
        // probe and the lock are put in its prefix.
        table_checks(cfg, &OutputDir::Remote(dir.clone()), false).await?;
    }
    dir.check_writable().await.map_err(|e| unusable(&e))?;
    let lock = match holder {
        None => None,
        Some(holder) => {
            let (lock, took_over) = OutputLock::remote(dir.clone(), holder, lease).await?;
            if let Some(note) = took_over {
                eprintln!("fleet-audit: warning: {note}");
            }
            Some(lock)
        }
    };
    Ok((Some(OutputDir::Remote(dir)), lock))
}

/// A local directory output's Delta checks ([`delta::before_run`]) before any call, not only once
/// the targets are connected: a table this run must not write is refused without a call to STS.
/// (An object store's is checked when connected, as every check of it is.)
pub(crate) async fn check_table_before_calls(cfg: &RunConfig) -> Result<(), RunError> {
    match OutputDir::local(&cfg.output.layout) {
        Some(target) => table_checks(cfg, &target, true).await,
        None => Ok(()),
    }
}

/// The Delta checks of `target` as this run would write it, from its manifest as far as it can be
/// read (an unreadable one is for [`prepare_output`] to name): [`delta::before_run`] when
/// `catch_up` (under the output's lock), otherwise [`delta::check`], which only reads (an object
/// store's prefix before the run puts its probe and its lock there).
async fn table_checks(cfg: &RunConfig, target: &OutputDir, catch_up: bool) -> Result<(), RunError> {
    let loaded = target.load_manifest().await.ok().flatten();
    let replaces_all = cfg.output.overwrite && !cfg.output.dated();
    let partition_by = cfg.output.partition_names();
    let m = loaded.as_ref();
    if catch_up {
        let overwrites = (replaces_all, cfg.output.overwrite);
        delta::before_run(target, m, cfg.output.delta, &partition_by, overwrites).await?;
    } else {
        delta::check(target, m, cfg.output.delta, &partition_by, replaces_all).await?;
    }
    Ok(())
}

/// Prepares the output location: a fresh, replaced or resumed dataset. Returns the starting manifest
/// of a directory output.
pub(crate) async fn prepare_output(
    cfg: &RunConfig,
    dir: Option<&OutputDir>,
    identity: &InputIdentity,
    total: u64,
) -> Result<Option<Manifest>, RunError> {
    let Some(target) = dir else {
        crate::audit::config::check_output(&cfg.output.layout, cfg.output.overwrite)?;
        return Ok(None);
    };
    let out = || cfg.output.layout.path().to_path_buf();
    if let OutputDir::Local(d) = target {
        refuse_planted_links(d, target)?;
    }
    let partition_by: Vec<String> = cfg.output.partition_names();
    // A Delta table's checks, and an unfinished publish done, before anything is deleted.
    table_checks(cfg, target, true).await?;
    if cfg.output.dated() {
        if let Some(m) = next_dated_audit(cfg, target, identity, total, &partition_by).await? {
            return Ok(Some(m));
        }
    }
    let existing = if cfg.output.resume {
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
        check_committed_parts(target, &m).await?;
        // Rewritten (conditionally, in an object store) before anything is deleted: a writer that
        // lost the output and still holds the version read here can no longer publish a part that
        // the cleanup below is about to delete.
        target.store_manifest(&m).await?;
        remove_uncommitted(target, &m).await?;
        return Ok(Some(m));
    }
    clear_for_a_fresh_start(cfg, target).await?;
    // A local directory is made by the first part the writer commits: a run that commits nothing
    // (refused by IoT at its first call, interrupted at once) leaves the output as it found it.
    let mut m = Manifest::new(identity.to_string(), total, cfg.output.format.extension());
    m.partition_by = partition_by;
    m.table_format = cfg.output.table_format();
    if cfg.output.dated() {
        m.date = Some(utc_date(now_ms()));
    }
    Ok(Some(m))
}

/// Refuses a link planted where a local output keeps its own files: the manifest and its temporary
/// (fixed names), and a link (or a file) where a partition folder or a part goes, before anything
/// is deleted, not once the old audit is gone. Their writes never follow one either.
fn refuse_planted_links(d: &std::path::Path, target: &OutputDir) -> Result<(), RunError> {
    for own in [MANIFEST.to_string(), format!(".{MANIFEST}.tmp")] {
        crate::audit::config::check_no_planted_link(d, &d.join(own))?;
    }
    let planted = target.planted();
    if planted.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = planted.iter().take(5).map(String::as_str).collect();
    Err(ConfigError::Output {
        path: d.to_path_buf(),
        reason: format!(
            "{} is a symbolic link (or not a folder) where this tool writes its own folders \
             and files; it never writes through a link it did not make: remove it (nothing \
             was deleted)",
            shown.join(", ")
        ),
    }
    .into())
}

/// Makes a directory output ready for a new audit (no manifest to resume, or `--overwrite`): a
/// resume that finds only an earlier run's uncommitted files removes them; an existing output
/// needs `--overwrite`, which deletes only what is provably this tool's.
async fn clear_for_a_fresh_start(cfg: &RunConfig, target: &OutputDir) -> Result<(), RunError> {
    let out = || cfg.output.layout.path().to_path_buf();
    // The output's own lock is no content.
    let mut entries: Vec<Entry> = target
        .entries()
        .await?
        .into_iter()
        .filter(|e| e.kind != Kind::Lock)
        .collect();
    if cfg.output.resume && !entries.is_empty() && !cfg.output.overwrite {
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
        clear_old_parts(target, &entries, None).await?;
        entries.clear();
    }
    match &cfg.output.layout {
        Layout::Remote(_) if !entries.is_empty() && !cfg.output.overwrite => {
            return Err(ConfigError::OutputExists(out()).into())
        }
        Layout::Remote(_) => {}
        layout => crate::audit::config::check_output(layout, cfg.output.overwrite)?,
    }
    if cfg.output.overwrite {
        // What the old manifest lists is shown to be this tool's; without one, only names it gives.
        let old = target.load_manifest().await?;
        clear_old_parts(target, &entries, old.as_ref()).await?;
    }
    Ok(())
}

/// A `--partition-by date` output keeps one audit a date: a run on a new date starts the next audit
/// beside the earlier ones when the last is complete, and keeps them all. A run on the date of a
/// complete audit, or after an incomplete one, is refused (never merged): `--resume` finishes an
/// incomplete audit, `--overwrite` replaces the last audit (the earlier ones stay). Returns the
/// manifest to start from, or `None` when there is no dated audit yet (or `--resume` continues one).
async fn next_dated_audit(
    cfg: &RunConfig,
    target: &OutputDir,
    identity: &InputIdentity,
    total: u64,
    partition_by: &[String],
) -> Result<Option<Manifest>, RunError> {
    let Some(m) = target.load_manifest().await? else {
        return Ok(None);
    };
    let today = utc_date(now_ms());
    let refuse = |reason: String| -> RunError {
        ConfigError::Output {
            path: cfg.output.layout.path().to_path_buf(),
            reason,
        }
        .into()
    };
    // (A table format that differs was refused by `delta::before_run`.)
    if m.format != cfg.output.format.extension() || m.partition_by != partition_by {
        if cfg.output.resume {
            // The resume refuses it, saying what differs.
            return Ok(None);
        }
        return Err(refuse(format!(
            "holds audits of {} files partitioned by {}; this run writes {} files partitioned by {}",
            m.format,
            m.partition_by.join(","),
            cfg.output.format.extension(),
            partition_by.join(",")
        )));
    }
    let date = m.date.clone().unwrap_or_else(|| "(no date)".into());
    // Dates only move on: a run dated before the last audit (a clock set back, an earlier --as-of)
    // would make a second audit of a date the output already holds.
    if m.date.as_deref().is_some_and(|d| today.as_str() < d) {
        return Err(refuse(format!(
            "holds an audit of {date}, later than this run's date {today}: a --partition-by date output \
             keeps one audit a date, in order (is this machine's clock, or --as-of, set back?)"
        )));
    }
    let later = m.date.as_deref() != Some(today.as_str());
    let next = m.complete && later;
    // An earlier date's audit that committed nothing (its run stopped before its first part, at an
    // endpoint that never answered, say) was never started: this run's audit takes its place, under
    // this run's date, rather than filing today's rows under that date.
    let unstarted = !m.complete && m.parts.is_empty() && later;
    if cfg.output.resume && !next && !unstarted {
        // Finishes (or finds complete) today's audit, or an earlier incomplete one, as any resume.
        return Ok(None);
    }
    if !next && !unstarted && !cfg.output.overwrite {
        return Err(refuse(if m.complete {
            format!(
                "already holds the audit of {date} (a --partition-by date output keeps one audit a \
                 date): --overwrite replaces it"
            )
        } else {
            format!(
                "holds an incomplete audit of {date}: --resume finishes it, --overwrite replaces it"
            )
        }));
    }
    let fresh = if next {
        m.next_audit(identity.to_string(), total, today)
    } else {
        // --overwrite, or an audit never started: the last audit is replaced, the earlier ones stay.
        m.replacing_last(identity.to_string(), total, today)
    };
    // Written before anything is deleted, as a resume does: then what the new manifest does not
    // list (the replaced audit, temporaries, parts never committed) goes.
    target.store_manifest(&fresh).await?;
    remove_uncommitted(target, &fresh).await?;
    Ok(Some(fresh))
}
