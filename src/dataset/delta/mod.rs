//! `--table-format delta`: every complete audit of a directory output published as one Delta Lake
//! commit, so that Delta readers (Athena, Spark, DuckDB's `delta_scan`, `deltalake`, polars) see a
//! whole audit or the one before it, never half of one.
//!
//! The parts are written and committed to the manifest as for any directory output; the manifest
//! stays the writer's journal (resume, failed targets, input identity). When the manifest says an
//! audit is complete, [`publish`] writes the next `_delta_log/NNN.json`: the audit's parts as `add`
//! actions (partition values, size, statistics), the files of the audit it replaces (the same date,
//! or the whole table when it keeps one audit) as `remove`s, a `txn` naming the audit
//! (`fleet-audit:<run id>`, its publish number) and `commitInfo`. The commit file is created only if
//! absent (a hard link locally, `PutMode::Create` in S3): two writers never both commit a version.
//! A publish that a crash interrupted is done by the next run on the output ([`catch_up`]); the
//! `txn` makes a second publish of one audit a no-op.
//!
//! Files that any version of the table names are never deleted by this tool ([`Snapshot::referenced`]):
//! readers of older versions read them until the user's `VACUUM`.

mod checkpoint;
mod log;
pub(crate) mod stats;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use super::dir::OutputDir;
use super::manifest::{Manifest, PartEntry};
use super::WriteError;
pub use log::Snapshot;
pub(crate) use log::LOG_DIR;
pub(crate) use view::published_view;

/// The `--table-format` value a manifest records.
pub(crate) const DELTA: &str = "delta";

/// Why a Delta table cannot be published to, naming it.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error(
        "{table}: another writer committed version {version} of the Delta table first: this audit \
         was not published (its parts and manifest are kept; `--resume` publishes it)"
    )]
    Lost { table: String, version: u64 },
    #[error("{table}: {file}: not a Delta log this tool can read: {reason}")]
    Log {
        table: String,
        file: String,
        reason: String,
    },
    #[error("{table}: {reason}")]
    Refused { table: String, reason: String },
    #[error("{table}: the Delta log has neither every commit from version 0 nor a complete checkpoint followed by every later commit: it cannot be read")]
    Checkpointed { table: String },
    #[error("{table}: {part} has no recorded size in the manifest; it cannot be published")]
    NoSize { table: String, part: String },
    /// A complete audit whose parts are no longer what it committed: never published.
    #[error(
        "{table}: {reason}; the audit cannot be published whole, and nothing was committed: start \
         it again with --overwrite"
    )]
    Broken { table: String, reason: String },
}

/// One complete audit as the table receives it.
pub struct Audit<'a> {
    pub run_id: &'a str,
    /// Its `date=` partition (a `--partition-by date` output keeps one audit a date).
    pub date: Option<&'a str>,
    /// 0 when first written; each `--retry-errors` that replaces parts adds one.
    pub generation: u64,
    pub parts: &'a [PartEntry],
}

impl Audit<'_> {
    fn app_id(&self) -> String {
        format!("fleet-audit:{}", self.run_id)
    }

    /// The `txn` version of this audit's publish.
    fn txn_version(&self) -> i64 {
        self.generation as i64 + 1
    }
}

/// The log's commits, read and replayed: from version 0 while the log still holds every commit,
/// otherwise from its latest complete checkpoint (another Delta writer's) and the commits after it.
pub async fn snapshot(dir: &OutputDir) -> Result<Snapshot, WriteError> {
    let table = dir.name();
    let names = log_files(dir).await?;
    let mut versions: Vec<(u64, String)> = names
        .iter()
        .filter_map(|rel| log::version_of(rel).map(|v| (v, rel.clone())))
        .collect();
    versions.sort();
    let mut snap = Snapshot::default();
    let Some(&(last, _)) = versions.last() else {
        // A checkpoint with no commit at all is a table this tool cannot replay, not an empty one.
        if names.iter().any(|n| log::checkpoint_of(n).is_some()) {
            return Err(DeltaError::Checkpointed { table }.into());
        }
        return Ok(snap);
    };
    // Commits after `from` must all be there, in order.
    let start = match versions.first() {
        Some((0, _)) if contiguous(&versions) => None,
        _ => Some(latest_checkpoint(&names, &versions, last).ok_or_else(|| {
            DeltaError::Checkpointed {
                table: table.clone(),
            }
        })?),
    };
    if let Some((v, parts)) = &start {
        for rel in parts {
            let bytes = read_log_file(dir, rel).await?;
            checkpoint::apply(&mut snap, bytes.into()).map_err(|reason| DeltaError::Log {
                table: table.clone(),
                file: rel.clone(),
                reason,
            })?;
        }
        snap.version = Some(*v);
    }
    let from = start.map_or(0, |(v, _)| v + 1);
    for (v, rel) in versions.iter().filter(|(v, _)| *v >= from) {
        let bytes = read_log_file(dir, rel).await?;
        let text = String::from_utf8_lossy(&bytes);
        snap.apply(*v, &text).map_err(|reason| DeltaError::Log {
            table: table.clone(),
            file: rel.clone(),
            reason,
        })?;
    }
    Ok(snap)
}

/// Whether the commits are numbered from the first without a gap.
fn contiguous(versions: &[(u64, String)]) -> bool {
    versions.windows(2).all(|w| w[1].0 == w[0].0 + 1)
}

/// The latest checkpoint whose parts are all there and after which every commit up to `last` is:
/// its version and its parts' names, in part order.
fn latest_checkpoint(
    names: &[String],
    versions: &[(u64, String)],
    last: u64,
) -> Option<(u64, Vec<String>)> {
    let mut by_version: BTreeMap<u64, Vec<(u32, u32, String)>> = BTreeMap::new();
    for rel in names {
        if let Some((v, p, k)) = log::checkpoint_of(rel) {
            by_version.entry(v).or_default().push((p, k, rel.clone()));
        }
    }
    let have: HashSet<u64> = versions.iter().map(|(v, _)| *v).collect();
    by_version.into_iter().rev().find_map(|(v, mut parts)| {
        parts.sort();
        let k = parts.first()?.1;
        let whole = parts.len() == k as usize
            && parts
                .iter()
                .enumerate()
                .all(|(i, (p, kk, _))| *p == i as u32 + 1 && *kk == k);
        let after = (v + 1..=last).all(|n| have.contains(&n));
        (whole && after && v <= last).then(|| (v, parts.into_iter().map(|(_, _, r)| r).collect()))
    })
}

/// Publishes `audit` as the table's next version, unless it is published already (its `txn`).
/// Returns the version written, or `None` when there was nothing to do.
pub async fn publish(
    dir: &OutputDir,
    m: &Manifest,
    audit: &Audit<'_>,
) -> Result<Option<u64>, WriteError> {
    let snap = snapshot(dir).await?;
    // Published already: its txn says so, or (a txn the table's retention expired) every one of
    // its parts is a file some version of the table names.
    let by_txn = snap
        .txns
        .get(&audit.app_id())
        .is_some_and(|v| *v >= audit.txn_version());
    let by_files = snap.version.is_some()
        && !audit.parts.is_empty()
        && audit
            .parts
            .iter()
            .all(|p| snap.referenced.contains(&p.file));
    if by_txn || by_files {
        return Ok(None);
    }
    // A version names only files that are what the audit committed: a part deleted or altered
    // since (a foreign VACUUM of unpublished files after a crash) would make every reader fail.
    let adding = audit
        .parts
        .iter()
        .filter(|p| !snap.live.contains_key(&p.file));
    if let Err(reason) = dir.verify_parts(adding).await? {
        return Err(DeltaError::Broken {
            table: dir.name(),
            reason,
        }
        .into());
    }
    commit_over(dir, &snap, m, audit).await.map(Some)
}

/// Commits `audit` (of the manifest `m`) as the version after `snap`, the table as this writer
/// read it. When another writer committed that version since, nothing is written and the answer
/// is [`DeltaError::Lost`]: two writers never both commit one version.
pub async fn commit_over(
    dir: &OutputDir,
    snap: &Snapshot,
    m: &Manifest,
    audit: &Audit<'_>,
) -> Result<u64, WriteError> {
    let table = dir.name();
    if let Some(reason) = snap.refusal(&m.partition_by, super::schema::SCHEMA_VERSION) {
        return Err(DeltaError::Refused { table, reason }.into());
    }
    let actions = commit_actions(snap, m, audit, crate::time::wall_ms()).map_err(|part| {
        DeltaError::NoSize {
            table: table.clone(),
            part,
        }
    })?;
    let append_only = snap
        .metadata
        .as_ref()
        .and_then(|m| m.pointer("/configuration/delta.appendOnly"))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if append_only && actions.iter().any(|a| a.get("remove").is_some()) {
        return Err(DeltaError::Refused {
            table,
            reason: "its Delta table is append-only (delta.appendOnly), and this audit replaces \
                     another's files: nothing was committed"
                .into(),
        }
        .into());
    }
    let next = snap.version.map_or(0, |v| v + 1);
    if !create_log_file(dir, &log::commit_name(next), &log::lines(&actions)).await? {
        return Err(DeltaError::Lost {
            table,
            version: next,
        }
        .into());
    }
    tracing::info!(table = %dir.name(), version = next, run_id = audit.run_id, "published the audit as a Delta commit");
    Ok(next)
}

/// The actions of the commit that publishes `audit` over the table `snap`: the table's own on its
/// first commit, the `txn`, a `remove` for each file of the audit it replaces (the same date's, or
/// every file of a table that keeps one audit), an `add` for each of its parts not yet in the table,
/// and `commitInfo`. `Err` names a part without a recorded size.
fn commit_actions(
    snap: &Snapshot,
    m: &Manifest,
    audit: &Audit<'_>,
    now: i64,
) -> Result<Vec<Value>, String> {
    let ours: HashSet<&str> = audit.parts.iter().map(|p| p.file.as_str()).collect();
    let dated = m.partition_by.iter().any(|p| p == "date");
    let replaced = snap.live.iter().filter(|(path, f)| {
        let in_scope = match (dated, audit.date) {
            (true, Some(d)) => f.partition_values.get("date").and_then(|v| v.as_deref()) == Some(d),
            (true, None) => false,
            (false, _) => true,
        };
        in_scope && !ours.contains(path.as_str())
    });
    let mut actions: Vec<Value> = Vec::new();
    let schema = super::schema::schema();
    let version = super::schema::SCHEMA_VERSION;
    match &snap.metadata {
        None => actions.extend(log::table_actions(&schema, &m.partition_by, version, now)),
        // A table of an earlier schema version of ours gets this one's columns.
        Some(old) => actions.extend(log::evolved_metadata(
            old,
            &schema,
            &m.partition_by,
            version,
        )),
    }
    actions.push(log::txn_action(&audit.app_id(), audit.txn_version(), now));
    let before = actions.len();
    actions.extend(replaced.map(|(path, f)| log::remove_action(path, f, now)));
    let removed = actions.len() - before;
    for p in audit
        .parts
        .iter()
        .filter(|p| !snap.live.contains_key(&p.file))
    {
        let size = p.size.ok_or_else(|| p.file.clone())?;
        let values: BTreeMap<String, Option<String>> = super::partition::values_of_path(&p.file)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        actions.push(log::add_action(
            &p.file,
            &values,
            size,
            now,
            p.stats.as_deref(),
        ));
    }
    let added: Vec<&PartEntry> = audit
        .parts
        .iter()
        .filter(|p| !snap.live.contains_key(&p.file))
        .collect();
    let rows: u64 = added.iter().map(|p| p.rows).sum();
    let replacing = removed > 0;
    actions.push(json!({"commitInfo": {
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {
            "mode": if replacing { "Overwrite" } else { "Append" },
            "partitionBy": serde_json::to_string(&m.partition_by).unwrap_or_default(),
        },
        "isBlindAppend": !replacing,
        "engineInfo": concat!("fleet-audit/", env!("CARGO_PKG_VERSION")),
        "clientVersion": concat!("fleet-audit-", env!("CARGO_PKG_VERSION")),
        "operationMetrics": {
            "numFiles": added.len().to_string(),
            "numOutputRows": rows.to_string(),
            "numRemovedFiles": removed.to_string(),
        },
        "fleetAuditRunId": audit.run_id,
        "fleetAuditDate": audit.date,
    }}));
    Ok(actions)
}

/// Publishes the manifest's audit when it is complete and the table does not have it yet (a run
/// stopped between the manifest's last write and its commit). Only the current audit can be in
/// that state: every run catches up before it starts the next audit. Returns the version written.
pub(crate) async fn catch_up(dir: &OutputDir, m: &Manifest) -> Result<Vec<u64>, WriteError> {
    let mut written = Vec::new();
    if let (true, Some(run_id)) = (m.complete, &m.run_id) {
        let audit = Audit {
            run_id,
            date: m.date.as_deref(),
            generation: m.generation,
            parts: &m.parts,
        };
        written.extend(publish(dir, m, &audit).await?);
    }
    Ok(written)
}

/// Before a run writes or deletes anything in `dir` (its manifest `m`, if any): [`check`], then the
/// publish of the complete audit a crash left unpublished. Under the output's lock only. A run
/// that `overwrites` leaves an unpublished audit whose parts are broken ([`DeltaError::Broken`])
/// unpublished, with a warning, instead of refusing: it is what repairs the output.
pub(crate) async fn before_run(
    dir: &OutputDir,
    m: Option<&Manifest>,
    delta: bool,
    partition_by: &[String],
    (replaces_all, overwrites): (bool, bool),
) -> Result<(), WriteError> {
    check(dir, m, delta, partition_by, replaces_all).await?;
    if let (true, Some(m)) = (delta, m) {
        if m.table_format.as_deref() == Some(DELTA) {
            match catch_up(dir, m).await {
                Ok(written) => {
                    for v in written {
                        tracing::warn!(table = %dir.name(), version = v, "published an audit that an earlier run completed but did not publish");
                    }
                }
                Err(WriteError::Delta(DeltaError::Broken { reason, .. })) if overwrites => {
                    tracing::warn!(table = %dir.name(), %reason, "left unpublished an audit that an earlier run completed: its parts are not what it committed");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Whether a run may write `dir` (its manifest `m`, if any), reading only: the table format it was
/// written with against this run's (`delta`), and the table's own checks (this tool's, of this
/// schema version and partitioning). An output this run must not write is [`DeltaError::Refused`].
/// An object store's prefix is checked so before the run puts anything in it (its probe, its lock).
pub(crate) async fn check(
    dir: &OutputDir,
    m: Option<&Manifest>,
    delta: bool,
    partition_by: &[String],
    replaces_all: bool,
) -> Result<(), WriteError> {
    let refuse = |reason: &str| -> WriteError {
        DeltaError::Refused {
            table: dir.name(),
            reason: reason.to_string(),
        }
        .into()
    };
    let was_delta = m.is_some_and(|m| m.table_format.as_deref() == Some(DELTA));
    if was_delta && !delta {
        return Err(refuse(
            "it is a Delta table (its manifest says --table-format delta): pass --table-format \
             delta, so that its readers see this audit too",
        ));
    }
    if let (Some(_), false, true) = (m, was_delta, delta) {
        if !replaces_all {
            return Err(refuse(
                "its audits were written without --table-format delta: a Delta table starts in a \
                 new output (another --out), or replaces this one whole (--overwrite, without \
                 --partition-by date)",
            ));
        }
    }
    let snap = snapshot(dir).await?;
    let ours = snap.version.is_some()
        && snap
            .refusal(&snap.partition_columns(), super::schema::SCHEMA_VERSION)
            .is_none();
    if !delta && ours {
        return Err(refuse(
            "it holds a Delta table this tool made (_delta_log/): pass --table-format delta, so \
             that its readers see this audit too",
        ));
    }
    if !delta {
        return Ok(());
    }
    match snap.refusal(partition_by, super::schema::SCHEMA_VERSION) {
        Some(reason) => Err(refuse(&reason)),
        None => Ok(()),
    }
}

/// Every file a version of the table names: kept by every cleanup.
pub(crate) async fn referenced(dir: &OutputDir) -> Result<HashSet<String>, WriteError> {
    Ok(snapshot(dir).await?.referenced)
}

/// The log's files, relative to the table (`_delta_log/…`). Locally the folder must be a real one:
/// the log is never read through a link.
async fn log_files(dir: &OutputDir) -> Result<Vec<String>, WriteError> {
    match dir {
        OutputDir::Local(d) => {
            let log = d.join(LOG_DIR);
            let io = |source| WriteError::Io {
                path: log.clone(),
                source,
            };
            match std::fs::symlink_metadata(&log) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io(e)),
                Ok(m) if !m.file_type().is_dir() => return Err(link_in_log(dir, LOG_DIR)),
                Ok(_) => {}
            }
            let mut out = Vec::new();
            for e in std::fs::read_dir(&log).map_err(io)? {
                let e = e.map_err(io)?;
                out.push(format!("{LOG_DIR}/{}", e.file_name().to_string_lossy()));
            }
            Ok(out)
        }
        OutputDir::Remote(r) => Ok(r
            .list()
            .await?
            .into_iter()
            .map(|(rel, _)| rel)
            .filter(|rel| rel.starts_with(&format!("{LOG_DIR}/")))
            .collect()),
    }
}

async fn read_log_file(dir: &OutputDir, rel: &str) -> Result<Vec<u8>, WriteError> {
    match dir {
        OutputDir::Local(d) => {
            use std::io::Read;
            let path = d.join(rel);
            let io = |source| WriteError::Io {
                path: path.clone(),
                source,
            };
            let mut f = super::files::open_no_follow(&path).map_err(|e| {
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    link_in_log(dir, rel)
                } else {
                    io(e)
                }
            })?;
            let mut out = Vec::new();
            f.read_to_end(&mut out).map_err(io)?;
            Ok(out)
        }
        OutputDir::Remote(r) => Ok(r.get(rel).await?.map(|b| b.to_vec()).unwrap_or_default()),
    }
}

/// A symbolic link (or not a folder) at the log's folder, or a link at one of its files: refused,
/// naming it (bad input, before any call when a run checks its output).
fn link_in_log(dir: &OutputDir, rel: &str) -> WriteError {
    DeltaError::Refused {
        table: dir.name(),
        reason: format!(
            "{rel} is a symbolic link or not what a Delta log holds there: this tool never reads \
             or writes through a link it did not make; remove it (nothing was written)"
        ),
    }
    .into()
}

/// Creates a log file only if no file has its name: `false` when one with other bytes does (another
/// writer's commit; the same bytes, which carry a run id and a time to the millisecond, are this
/// commit, found by a PUT the client retried after a lost answer). Locally a synced temporary is
/// hard-linked to the name (`link` fails on an existing name, atomically); in S3 a PUT with
/// `If-None-Match: *`.
pub async fn create_log_file(dir: &OutputDir, rel: &str, body: &[u8]) -> Result<bool, WriteError> {
    match dir {
        OutputDir::Local(d) => {
            let log = d.join(LOG_DIR);
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| WriteError::Io { path, source }
            };
            super::files::make_dir_within(d, &log).map_err(io(&log))?;
            let target = d.join(rel);
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = log.join(format!(".{name}.{}.tmp", std::process::id()));
            super::files::write_synced(&tmp, body).map_err(io(&tmp))?;
            let linked = std::fs::hard_link(&tmp, &target);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    super::files::sync_dir(&log).map_err(io(&log))?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another writer's commit is a file; anything else there was planted.
                    match std::fs::symlink_metadata(&target) {
                        Ok(m) if !m.file_type().is_file() => Err(link_in_log(dir, rel)),
                        _ => Ok(read_log_file(dir, rel).await? == body),
                    }
                }
                Err(e) => Err(io(&target)(e)),
            }
        }
        OutputDir::Remote(r) => {
            if r.put_if(rel, body.to_vec(), None).await?.is_some() {
                return Ok(true);
            }
            // A PUT the client retried after a lost answer (a 5xx, a timeout) finds its own first
            // attempt.
            Ok(r.get(rel).await?.is_some_and(|b| b.as_ref() == body))
        }
    }
}

#[cfg(test)]
mod tests;
