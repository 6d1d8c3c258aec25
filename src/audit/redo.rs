//! `run --resume --retry-errors`: the error rows of a complete audit described again, each replaced in
//! place, so the audit keeps one row a pair.
//!
//! The pairs of the audit's `error` rows go through the same engine as any run (the run's rate,
//! concurrency, retries and shutdown). Each part that holds error rows is then written again whole
//! under a new name of this tool's (the other rows as they were, each error row replaced by its new
//! row at the same place: a row that is an error again stays one, with its new attempt), and one
//! manifest write makes the new parts the audit's in place of the old ones; the old parts are deleted
//! after it. A crash before the manifest write leaves new parts no manifest lists (the next run
//! deletes them, as any uncommitted part), a crash after it leaves old ones (the same): at no time
//! does the manifest list a pair twice or lose one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use tokio::sync::{mpsc, watch};

use crate::audit::config::RunConfig;
use crate::audit::engine::{run_engine, Stop, TargetCalls, Work};
use crate::audit::summary::Retried;
use crate::aws::call::Counters;
use crate::aws::client::FleetClient;
use crate::aws::limit::CallLimiter;
use crate::aws::targets::PendingTarget;
use crate::dataset::delta;
use crate::dataset::schema::{BatchBuilder, Row, BATCH_ROWS};
use crate::dataset::{FilePart, Format, Manifest, PartDigest, PartEntry, WriterMsg, MANIFEST};
use crate::input::pair::Pair;

/// Why the error rows could not be described again and replaced.
#[derive(Debug, thiserror::Error)]
pub enum RedoError {
    #[error("cannot retry the error rows of {out}: {reason}")]
    Dataset { out: PathBuf, reason: String },
    /// The target could not be connected: nothing was described or replaced.
    #[error(transparent)]
    Setup(#[from] crate::aws::client::SetupError),
    /// The engine stopped (a signal, credentials refused...): nothing was replaced.
    #[error("{stop}; no error row was replaced")]
    Stopped { stop: Stop },
}

impl RedoError {
    fn dataset(out: &Path, reason: String) -> RedoError {
        RedoError::Dataset {
            out: out.to_path_buf(),
            reason,
        }
    }
}

/// One error row of a part: where it is, and the pair it stands for.
struct ErrorRow {
    part: usize,
    row: usize,
    pair: Pair,
    retry_attempt: Option<i32>,
}

/// Describes the error rows of the complete audit in the local directory `out` again with `target`,
/// and replaces each in its part. `run_id` names the new rows and the new parts. Returns what it
/// did and the parts it wrote.
pub(crate) async fn retry_error_rows<
    C: FleetClient + crate::aws::client::FleetLister + crate::aws::client::FleetContext,
>(
    cfg: &RunConfig,
    out: &Path,
    run_id: &str,
    target: PendingTarget<C>,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
) -> Result<(Retried, Vec<PathBuf>), RedoError> {
    let fail = |reason: String| RedoError::dataset(out, reason);
    let started = std::time::Instant::now();
    let lane_counters = counters.clone();
    let mut m = complete_manifest(out).map_err(fail)?;
    let found = find_error_rows(out, &m).map_err(fail)?;
    if found.is_empty() {
        return Ok((Retried::default(), Vec::new()));
    }
    let (rows, region) = describe_again(cfg, out, &found, target, counters, shutdown).await?;

    // Each part with error rows written again, the new rows in place of the old.
    let mut done = tally(&rows);
    let by_part = rows_by_part(&found, &rows);
    let NewParts { replaced, written } =
        write_new_parts(cfg, out, &m, by_part, run_id, region.as_deref()).map_err(fail)?;
    let done_by = RetryRun {
        run_id,
        error_rows: done.errors,
        counters: &lane_counters,
        started,
    };
    // The commit; the new parts deleted again if it does not happen.
    let old_files = match commit_new_parts(&mut m, out, replaced, done_by) {
        Ok(old_files) => old_files,
        Err(e) => {
            remove_all(&written);
            return Err(fail(e));
        }
    };
    done.parts = old_files.len() as u64;
    if is_delta(&m) {
        // The table gets the new parts in one commit; the old ones stay for the readers of its
        // older versions (until their VACUUM). A publish a crash stops is the next run's.
        let dir = crate::dataset::OutputDir::Local(out.to_path_buf());
        delta::catch_up(&dir, &m)
            .await
            .map_err(|e| fail(e.to_string()))?;
    } else {
        delete_old_parts(out, old_files);
    }
    Ok((done, written))
}

/// Whether the audit is published as a Delta table (`--table-format delta`).
fn is_delta(m: &Manifest) -> bool {
    m.table_format.as_deref() == Some(delta::DELTA)
}

/// The manifest of the complete audit in `out`: only a complete audit's error rows are retried (a
/// resume finishes an incomplete one first).
fn complete_manifest(out: &Path) -> Result<Manifest, String> {
    let m = Manifest::load(out)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("it has no {MANIFEST}"))?;
    if !m.complete {
        return Err("its audit is not complete".into());
    }
    Ok(m)
}

/// The error rows of every part (checked against the manifest by this run's resume, under its
/// lock; one part in memory at a time, those that hold an error row read again to be rewritten).
fn find_error_rows(out: &Path, m: &Manifest) -> Result<Vec<ErrorRow>, String> {
    let mut found: Vec<ErrorRow> = Vec::new();
    for (i, p) in m.parts.iter().enumerate() {
        let (_, full) = read_part(out, &out.join(&p.file))?;
        found.extend(error_rows(i, &full).map_err(|e| format!("{}: {e}", p.file))?);
    }
    Ok(found)
}

/// The pairs of `found` described again, through the engine (rate, retries, concurrency,
/// shutdown), with `target` connected now: each pair's new row by its place in `found`, and the
/// target's region (the new rows carry it). Nothing is replaced unless every pair has its new row.
async fn describe_again<
    C: FleetClient + crate::aws::client::FleetLister + crate::aws::client::FleetContext,
>(
    cfg: &RunConfig,
    out: &Path,
    found: &[ErrorRow],
    target: PendingTarget<C>,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
) -> Result<(BTreeMap<u64, Row>, Option<String>), RedoError> {
    let target = target.connect().await?;
    // The rows described again get their context as the audit's did.
    let parts = crate::audit::context::StageParts {
        settings: cfg.context.clone(),
        engine: cfg.engine.clone(),
        counters: counters.clone(),
        shutdown: shutdown.clone(),
        label: String::new(),
    };
    let lane = TargetCalls {
        client: target.client.clone(),
        limiter: Arc::new(CallLimiter::new(
            cfg.rate.rps,
            crate::aws::limit::burst_for(cfg.rate.burst, cfg.rate.rps),
            cfg.rate.adaptive,
        )),
        origin: Some(target.origin.clone()),
        counters,
    };
    let work: Vec<Result<Work, crate::input::InputError>> = found
        .iter()
        .enumerate()
        .map(|(k, e)| {
            Ok(Work {
                ordinal: k as u64,
                pair: e.pair.clone(),
                retry_attempt: e.retry_attempt,
            })
        })
        .collect();
    let (tx, rx) = mpsc::channel::<WriterMsg>(BATCH_ROWS);
    let collect = tokio::spawn(collect_rows(rx));
    let (tx, stage) = crate::audit::context::spawn(target.client.clone(), parts, tx);
    let ran = run_engine(
        lane,
        cfg.engine.clone(),
        futures::stream::iter(work),
        tx,
        shutdown,
    )
    .await;
    let ran = crate::audit::context::join(ran, stage).await;
    let rows = collect
        .await
        .map_err(|e| RedoError::dataset(out, e.to_string()))?;
    if let Err(stop) = ran {
        return Err(RedoError::Stopped { stop });
    }
    if rows.len() != found.len() {
        return Err(RedoError::Stopped {
            stop: Stop::WriterGone,
        });
    }
    Ok((rows, target.origin.region.clone()))
}

/// The engine's rows, by ordinal, until it ends (it stands where a run's writer would).
async fn collect_rows(mut rx: mpsc::Receiver<WriterMsg>) -> BTreeMap<u64, Row> {
    let mut rows: BTreeMap<u64, Row> = BTreeMap::new();
    while let Some(msg) = rx.recv().await {
        if let WriterMsg::Row { row, ordinal } = msg {
            rows.insert(ordinal, *row);
        }
    }
    rows
}

/// What the pairs described again came to: how many, and their outcomes.
fn tally(rows: &BTreeMap<u64, Row>) -> Retried {
    let mut done = Retried {
        retried: rows.len() as u64,
        ..Retried::default()
    };
    for r in rows.values() {
        match r.outcome {
            crate::dataset::schema::Outcome::Ok => done.ok += 1,
            crate::dataset::schema::Outcome::NotFound => done.not_found += 1,
            crate::dataset::schema::Outcome::Error => done.errors += 1,
        }
    }
    done
}

/// The new rows by the part they go in, each with the place of the row it replaces.
fn rows_by_part<'r>(
    found: &[ErrorRow],
    rows: &'r BTreeMap<u64, Row>,
) -> BTreeMap<usize, Vec<(usize, &'r Row)>> {
    let mut by_part: BTreeMap<usize, Vec<(usize, &Row)>> = BTreeMap::new();
    for (k, e) in found.iter().enumerate() {
        by_part
            .entry(e.part)
            .or_default()
            .push((e.row, &rows[&(k as u64)]));
    }
    by_part
}

/// The parts written again, not yet the audit's.
struct NewParts {
    /// Each new part's entry, by the place in the manifest of the part it replaces.
    replaced: Vec<(usize, PartEntry)>,
    /// The new parts' files, deleted again if the commit does not happen.
    written: Vec<PathBuf>,
}

/// Writes each part of `m` that holds error rows again whole, under a new name in the same folder,
/// with `by_part`'s new rows in place of the old (named by `run_id`, in `region`). On a failure the
/// new parts written so far are deleted again: nothing lists them.
fn write_new_parts(
    cfg: &RunConfig,
    out: &Path,
    m: &Manifest,
    by_part: BTreeMap<usize, Vec<(usize, &Row)>>,
    run_id: &str,
    region: Option<&str>,
) -> Result<NewParts, String> {
    let format = if m.format == Format::Arrow.extension() {
        Format::Arrow
    } else {
        Format::Parquet
    };
    let mut new = NewParts {
        replaced: Vec::new(),
        written: Vec::new(),
    };
    // The new parts' names carry an id of their own: this run may have written parts numbered from
    // 00000 under its run id already (a resume finishing the audit first).
    let parts_id = crate::dataset::new_run_id();
    no_planted_links(out)?;
    for (n, (part, new_rows)) in by_part.into_iter().enumerate() {
        let old = &m.parts[part];
        let name = part_name(cfg, &parts_id, n as u32, format);
        let file = match old.file.rsplit_once('/') {
            Some((folder, _)) => format!("{folder}/{name}"),
            None => name,
        };
        let rewritten = read_part(out, &out.join(&old.file)).and_then(|(stored, _)| {
            replace_rows(&stored, &new_rows, run_id, region)
                .map_err(|e| format!("{}: {e}", old.file))
        });
        let path = out.join(&file);
        match rewritten.and_then(|batch| write_part(&path, format, &batch)) {
            Ok(digest) => {
                let mut entry = PartEntry::new(file, old.rows, Some(digest));
                if is_delta(m) {
                    entry.stats = delta::stats::of_file(&path, &crate::dataset::schema::schema());
                }
                new.written.push(path);
                new.replaced.push((part, entry));
            }
            Err(e) => {
                remove_all(&new.written);
                return Err(e);
            }
        }
    }
    Ok(new)
}

/// `batch` written as a part at `path` (aside, then renamed), and the digest of what was written.
fn write_part(path: &Path, format: Format, batch: &RecordBatch) -> Result<PartDigest, String> {
    let mut f = FilePart::create(path.to_path_buf(), format, batch.schema(), BATCH_ROWS)
        .map_err(|e| e.to_string())?;
    f.write(batch).map_err(|e| e.to_string())?;
    f.commit().map_err(|e| e.to_string())?;
    PartDigest::of_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the manifest records of the run that retried the error rows.
struct RetryRun<'a> {
    run_id: &'a str,
    /// The error rows left: the new rows that are errors again.
    error_rows: u64,
    counters: &'a Counters,
    started: std::time::Instant,
}

/// The commit: one manifest write puts the new parts in place of the old ones, by the run that
/// still holds the output, in folders that are still its own. Returns the old parts' files, no
/// longer listed.
fn commit_new_parts(
    m: &mut Manifest,
    out: &Path,
    replaced: Vec<(usize, PartEntry)>,
    by: RetryRun,
) -> Result<Vec<String>, String> {
    no_planted_links(out)?;
    if let Err(e) = crate::dataset::lock::check_local_holder(out, by.run_id) {
        return Err(format!(
            "this run's lock on the output was removed or replaced ({e})"
        ));
    }
    let old_files: Vec<String> = replaced
        .iter()
        .map(|(i, _)| m.parts[*i].file.clone())
        .collect();
    for (i, entry) in replaced {
        m.parts[i] = entry;
    }
    // Every error row was described again: those left are the new ones; and this run is the audit's
    // last success (a later no-op retry reports it).
    m.error_rows = Some(by.error_rows);
    // Its Delta table takes the replacement as a publish of its own.
    m.generation += u64::from(is_delta(m));
    m.completed = Some(crate::dataset::Completion {
        run_id: by.run_id.to_string(),
        at_ms: crate::time::wall_ms(),
        attempts: Counters::get(&by.counters.attempts),
        list_calls: 0,
        context_calls: 0,
        throttled: Counters::get(&by.counters.throttled),
        elapsed_ms: by.started.elapsed().as_millis() as u64,
        baseline: m.completed.as_ref().and_then(|c| c.baseline.clone()),
    });
    m.store(out).map_err(|e| e.to_string())?;
    Ok(old_files)
}

/// Deletes the old parts the commit unlisted, unless a folder became a link after the commit: then
/// they stay (unlisted) rather than be deleted through it.
fn delete_old_parts(out: &Path, old_files: Vec<String>) {
    if no_planted_links(out).is_err() {
        return;
    }
    for f in old_files {
        // What is left (a crash here) is unlisted: the next run deletes it.
        let _ = std::fs::remove_file(out.join(f));
    }
}

/// That no folder of ours has become a link since the run checked (it never writes, nor deletes,
/// through a link it did not make).
fn no_planted_links(out: &Path) -> Result<(), String> {
    let links = crate::dataset::OutputDir::Local(out.to_path_buf()).planted();
    if links.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} is a symbolic link (or not a folder) where this tool keeps its files: it never writes through a link it did not make; nothing was replaced",
            links.join(", ")
        ))
    }
}

/// Deletes `paths` as far as it can (new parts that will not be committed).
fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// A part's batches as stored (one batch) and with its partition columns put back.
fn read_part(root: &Path, path: &Path) -> Result<(RecordBatch, RecordBatch), String> {
    let values = crate::dataset::read::partition_values(root, path);
    let batches: Vec<RecordBatch> = crate::dataset::read::read_file(path, BATCH_ROWS)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let Some(first) = batches.first() else {
        return Err(format!("{}: holds no batch", path.display()));
    };
    let raw = arrow::compute::concat_batches(&first.schema(), &batches)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let full = crate::dataset::read::with_partition_columns(raw.clone(), &values)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((raw, full))
}

/// The error rows of part `part` (its batch with the partition columns).
fn error_rows(part: usize, b: &RecordBatch) -> Result<Vec<ErrorRow>, String> {
    let col = |name: &str| {
        b.column_by_name(name)
            .ok_or_else(|| format!("no {name} column"))
    };
    let outcome = col("outcome")?
        .as_string_opt::<i32>()
        .ok_or("outcome is not text")?;
    let thing = col("thing_name")?
        .as_string_opt::<i32>()
        .ok_or("thing_name is not text")?;
    let job = col("job_id")?
        .as_string_opt::<i32>()
        .ok_or("job_id is not text")?;
    let requested = col("requested_execution_number")?
        .as_primitive_opt::<Int64Type>()
        .ok_or("requested_execution_number is not an integer")?;
    let retry = b
        .column_by_name("retry_attempt")
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>());
    Ok((0..b.num_rows())
        .filter(|&i| outcome.is_valid(i) && outcome.value(i) == "error")
        .map(|i| ErrorRow {
            part,
            row: i,
            pair: Pair {
                thing_name: thing.value(i).to_string(),
                job_id: job.value(i).to_string(),
                execution_number: requested.is_valid(i).then(|| requested.value(i)),
            },
            retry_attempt: retry.and_then(|r| r.is_valid(i).then(|| r.value(i))),
        })
        .collect())
}

/// `stored` (a part as written) with its rows at the given places replaced by new rows, in its own
/// columns (a partition column the part does not hold is left out of the new rows too).
fn replace_rows(
    stored: &RecordBatch,
    new_rows: &[(usize, &Row)],
    run_id: &str,
    region: Option<&str>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut b = BatchBuilder::new(run_id, region);
    for (_, r) in new_rows {
        b.push(r);
    }
    let fresh = b.finish()?;
    let schema = stored.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            fresh.column_by_name(f.name()).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("no column {}", f.name()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fresh = RecordBatch::try_new(schema.clone(), columns)?;
    // Every row from the stored batch (0) but the replaced ones, from the new rows (1).
    let at: std::collections::HashMap<usize, usize> = new_rows
        .iter()
        .enumerate()
        .map(|(k, (row, _))| (*row, k))
        .collect();
    let picks: Vec<(usize, usize)> = (0..stored.num_rows())
        .map(|i| at.get(&i).map_or((0, i), |k| (1, *k)))
        .collect();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: [&dyn Array; 2] = [stored.column(c).as_ref(), fresh.column(c).as_ref()];
            arrow::compute::interleave(&arrays, &picks)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// `part-<run id>[-sKofN]-NNNNN.ext`: a name this tool gives, so a leftover is known to be its own.
fn part_name(cfg: &RunConfig, run_id: &str, n: u32, format: Format) -> String {
    let shard = cfg
        .shard
        .map(|s| format!("-{}", s.file_tag()))
        .unwrap_or_default();
    format!("part-{run_id}{shard}-{n:05}.{}", format.extension())
}
