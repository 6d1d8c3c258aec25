//! A previous audit as the baseline of the next: `run --discover --baseline PATH`.
//!
//! A scheduled audit sees the same fleet every day, and most of it has not moved since the last one:
//! the same offline devices QUEUED for weeks. AWS bumps `lastUpdatedAt` on every update, force-cancel
//! and timeout, so a listed execution whose summary (status, `lastUpdatedAt`, execution number) equals
//! its row in the previous audit has not changed, and its row is carried from there
//! (`source = carried`, `carried_from` = the baseline row's `run_id`) instead of described again.
//!
//! The baseline is read whole before any IoT call (it is input like any other, and a bad one stops
//! the run with exit 2): every file, every column of this schema version, one row per pair, the
//! region and account of the run. Its batches stay in memory as read (columnar, a few hundred bytes
//! a row), with an index of the pairs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Int32Array, Int64Array, MapArray, StringArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;

use crate::aws::client::{ExecutionRecord, ExecutionSummary};
use crate::dataset::schema::{schema, Origin, Outcome, Row, Source, BATCH_ROWS};
use crate::dataset::{data_files, read_file_in, DatasetError};
use crate::input::pair::pair_key;

/// The schema version this build writes (a version 2 dataset still serves as a baseline: its
/// millisecond timestamps are read as they are).
pub(crate) use crate::dataset::schema::SCHEMA_VERSION;

/// Why a baseline cannot be used, naming it.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline {name}: cannot be read: {source}")]
    Read {
        name: String,
        #[source]
        source: DatasetError,
    },
    #[error(
        "baseline {name}: {file} has schema version {found}, and this fleet-audit writes version \
         {SCHEMA_VERSION} (run one full audit without --baseline to start a history)"
    )]
    SchemaVersion {
        name: String,
        file: PathBuf,
        found: u32,
    },
    #[error("baseline {name}: {file} is not a fleet-audit dataset: {reason}")]
    NotOurs {
        name: String,
        file: PathBuf,
        reason: String,
    },
    #[error(
        "baseline {name}: holds several audits: {file} has a second row of thing {thing} and job \
         {job}; name one audit (a dataset with its manifest, or --baseline latest)"
    )]
    SeveralAudits {
        name: String,
        file: PathBuf,
        thing: String,
        job: String,
    },
    #[error(
        "baseline {name}: it audited {found}, and this run audits {want}: a baseline must be of the \
         same region and account"
    )]
    Origin {
        name: String,
        found: String,
        want: String,
    },
    #[error("baseline {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Which previous audit `--baseline` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineSpec {
    /// A dataset this tool wrote: a file or a directory.
    Path(PathBuf),
    /// A dataset in an object store (`s3://bucket/prefix/`).
    Url(String),
    /// The newest complete earlier run under `--out` itself.
    Latest,
}

impl BaselineSpec {
    /// `--baseline`'s value: `latest`, an `s3://` URL, or a path (`file://PATH` is PATH).
    pub fn parse(s: &str) -> BaselineSpec {
        if s == "latest" {
            BaselineSpec::Latest
        } else if s.starts_with("s3://") {
            BaselineSpec::Url(s.to_string())
        } else {
            BaselineSpec::Path(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        }
    }
}

/// Reads the baseline a run names, before any IoT call: fetched from an object store (with the run's
/// AWS settings), or read locally; `latest` is resolved under the run's own output, and is `None`
/// while that output holds no complete audit yet (a schedule's first run is a full audit).
pub async fn open(
    spec: &BaselineSpec,
    layout: &crate::dataset::Layout,
    dir: Option<&crate::dataset::OutputDir>,
    dated: bool,
    client: &crate::aws::client::ClientSettings,
) -> Result<Option<Baseline>, BaselineError> {
    match spec {
        BaselineSpec::Path(p) => Baseline::load(p, &p.display().to_string()).map(Some),
        BaselineSpec::Url(url) => fetch(url, client).await.map(Some),
        BaselineSpec::Latest => latest(layout, dir, dated, client).await,
    }
}

async fn fetch(
    url: &str,
    client: &crate::aws::client::ClientSettings,
) -> Result<Baseline, BaselineError> {
    let fetched = crate::dataset::fetch_remote(url, client, false)
        .await
        .map_err(|source| BaselineError::Read {
            name: url.to_string(),
            source,
        })?;
    Baseline::load(fetched.dir.path(), url)
}

/// `--baseline latest`: the newest complete audit that the run's own `--partition-by date` output
/// keeps (read before the run starts its own audit there).
async fn latest(
    layout: &crate::dataset::Layout,
    dir: Option<&crate::dataset::OutputDir>,
    dated: bool,
    client: &crate::aws::client::ClientSettings,
) -> Result<Option<Baseline>, BaselineError> {
    use crate::dataset::{Layout, Manifest};
    let name = format!("latest (under {})", layout.path().display());
    let invalid = |reason: String| BaselineError::Invalid {
        name: name.clone(),
        reason,
    };
    if !dated || matches!(layout, Layout::File(_)) {
        return Err(invalid(
            "--baseline latest reads the earlier audits that a --partition-by date directory output \
             keeps, and this output keeps none: name the previous dataset instead"
                .into(),
        ));
    }
    let manifest = match (layout, dir) {
        (Layout::Dir(p), _) => Manifest::load(p).map_err(|e| invalid(e.to_string()))?,
        (_, Some(dir)) => dir
            .load_manifest()
            .await
            .map_err(|e| invalid(e.to_string()))?,
        _ => None,
    };
    let Some(m) = manifest.filter(|m| m.complete || !m.earlier.is_empty()) else {
        return Ok(None);
    };
    let mut b = match layout {
        Layout::Remote(r) => fetch(&r.url, client).await?,
        l => Baseline::load(l.path(), &name)?,
    };
    // The audit the readers read: the same choice `data_files` made for `Baseline::load`.
    let (audits, chosen, _) = crate::dataset::read::audits_of(&m, |f| PathBuf::from(f));
    if let Some(d) = audits[chosen].date.as_deref() {
        b.name = format!("{name}: the audit of {d}");
        b.location = match layout {
            Layout::Remote(r) => {
                PathBuf::from(format!("{}/date={d}/", r.url.trim_end_matches('/')))
            }
            l => l.path().join(format!("date={d}")),
        };
    }
    Ok(Some(b))
}

/// Where a baseline's row is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    batch: u32,
    row: u32,
}

/// A previous audit, read and indexed by pair.
#[derive(Debug)]
pub struct Baseline {
    /// As the user named it, for messages.
    pub name: String,
    /// Where it can be read again (a path or an `s3://` URL): `latest` is the folder of the audit it
    /// resolved to.
    pub location: PathBuf,
    batches: Vec<Columns>,
    index: HashMap<u128, Loc>,
    /// The same pair's rows in other targets (regions, accounts) of a baseline over several.
    more: HashMap<u128, Vec<Loc>>,
    /// The run ids of its rows (one, for a dataset of one run).
    pub run_ids: BTreeSet<String>,
    /// The regions and accounts its rows were read from.
    origins: BTreeSet<(Option<String>, Option<String>)>,
    /// Rows in QUEUED or IN_PROGRESS: an upper bound of the describes it can save.
    pub active: u64,
}

impl Baseline {
    /// Reads the dataset at `path` (a file or a directory, partitioned or not); `name` names it in
    /// messages (the URL it was fetched from, or the path).
    pub fn load(path: &Path, name: &str) -> Result<Baseline, BaselineError> {
        let read = |source| BaselineError::Read {
            name: name.to_string(),
            source,
        };
        let files = data_files(path).map_err(read)?.files;
        let mut b = Baseline {
            name: name.to_string(),
            location: PathBuf::from(name),
            batches: Vec::new(),
            index: HashMap::new(),
            more: HashMap::new(),
            run_ids: BTreeSet::new(),
            origins: BTreeSet::new(),
            active: 0,
        };
        for file in &files {
            for batch in read_file_in(path, file, BATCH_ROWS).map_err(read)? {
                let cols = Columns::of(&batch.map_err(read)?).map_err(|e| match e {
                    ColumnsError::Version(found) => BaselineError::SchemaVersion {
                        name: name.to_string(),
                        file: file.clone(),
                        found,
                    },
                    ColumnsError::Other(reason) => BaselineError::NotOurs {
                        name: name.to_string(),
                        file: file.clone(),
                        reason,
                    },
                })?;
                b.add(cols, file)?;
            }
        }
        Ok(b)
    }

    fn add(&mut self, cols: Columns, file: &Path) -> Result<(), BaselineError> {
        let batch = self.batches.len() as u32;
        for i in 0..cols.len() {
            // A resumed audit's rows carry the run ids of each of its runs.
            if cols.run_id.is_valid(i) && !self.run_ids.contains(cols.run_id.value(i)) {
                self.run_ids.insert(cols.run_id.value(i).to_string());
            }
            let key = pair_key(cols.thing_name.value(i), cols.job_id.value(i));
            let loc = Loc {
                batch,
                row: i as u32,
            };
            // One row a pair in each target: a second row of a pair in the same region and account
            // means the dataset holds several audits.
            let here = (text_ref(&cols.region, i), text_ref(&cols.account_id, i));
            let same_origin = |l: &Loc| {
                let c = if l.batch == batch {
                    &cols
                } else {
                    &self.batches[l.batch as usize]
                };
                let r = l.row as usize;
                (text_ref(&c.region, r), text_ref(&c.account_id, r)) == here
            };
            match self.index.get(&key) {
                None => {
                    self.index.insert(key, loc);
                }
                Some(first) => {
                    let others = self.more.entry(key).or_default();
                    if same_origin(first) || others.iter().any(same_origin) {
                        return Err(BaselineError::SeveralAudits {
                            name: self.name.clone(),
                            file: file.to_path_buf(),
                            thing: cols.thing_name.value(i).to_string(),
                            job: cols.job_id.value(i).to_string(),
                        });
                    }
                    others.push(loc);
                }
            }
            let origin = (text(&cols.region, i), text(&cols.account_id, i));
            if !self.origins.contains(&origin) {
                self.origins.insert(origin);
            }
            self.active += u64::from(matches!(
                text_ref(&cols.status, i),
                Some("QUEUED" | "IN_PROGRESS")
            ));
        }
        self.batches.push(cols);
        Ok(())
    }

    /// Rows in the baseline.
    pub fn len(&self) -> u64 {
        (self.index.len() + self.more.values().map(Vec::len).sum::<usize>()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The run ids of its rows, comma-separated (a resumed audit has one per run).
    pub fn runs(&self) -> String {
        self.run_ids.iter().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Refuses a baseline of another region, or of another account when both are known.
    pub(crate) fn check_origin(&self, origin: &Origin) -> Result<(), BaselineError> {
        let show = |region: &Option<String>, account: &Option<String>| {
            format!(
                "region {}{}",
                region.as_deref().unwrap_or("(none)"),
                account
                    .as_deref()
                    .map(|a| format!(", account {a}"))
                    .unwrap_or_default()
            )
        };
        for (region, account) in &self.origins {
            let region_ok = region.is_none() || *region == origin.region;
            let account_ok =
                account.is_none() || origin.account_id.is_none() || *account == origin.account_id;
            if !(region_ok && account_ok) {
                return Err(BaselineError::Origin {
                    name: self.name.clone(),
                    found: show(region, account),
                    want: show(&origin.region, &origin.account_id),
                });
            }
        }
        Ok(())
    }

    /// The baseline's row of a pair in the target of `origin`, if it has one (a row whose region or
    /// account is unknown matches any).
    pub fn get(&self, origin: &Origin, thing_name: &str, job_id: &str) -> Option<BaselineRow<'_>> {
        let key = pair_key(thing_name, job_id);
        let first = self.index.get(&key)?;
        let others = self.more.get(&key).map(Vec::as_slice).unwrap_or_default();
        std::iter::once(first).chain(others).find_map(|loc| {
            let cols = &self.batches[loc.batch as usize];
            let i = loc.row as usize;
            let known = |a: Option<&str>, want: &Option<String>| {
                a.is_none() || want.is_none() || a == want.as_deref()
            };
            // The index is by hash: the row must be the pair's own, and the target's.
            (cols.thing_name.value(i) == thing_name
                && cols.job_id.value(i) == job_id
                && known(text_ref(&cols.region, i), &origin.region)
                && known(text_ref(&cols.account_id, i), &origin.account_id))
            .then_some(BaselineRow { cols, i })
        })
    }
}

fn text(a: &StringArray, i: usize) -> Option<String> {
    text_ref(a, i).map(str::to_string)
}

fn text_ref(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// One row of the baseline.
pub struct BaselineRow<'a> {
    cols: &'a Columns,
    i: usize,
}

impl BaselineRow<'_> {
    /// Whether the listing's summary shows the execution unchanged since: an `ok` row with the same
    /// status, `lastUpdatedAt` and execution number.
    pub fn unchanged(&self, s: &ExecutionSummary) -> bool {
        let (c, i) = (self.cols, self.i);
        let int = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
        let time = |a: &arrow::array::TimestampMillisecondArray| a.is_valid(i).then(|| a.value(i));
        text_ref(&c.outcome, i) == Some(Outcome::Ok.as_str())
            && s.status.is_some()
            && text_ref(&c.status, i) == s.status.as_deref()
            && s.last_updated_at_ms.is_some()
            && time(&c.last_updated_at) == s.last_updated_at_ms
            && s.execution_number.is_some()
            && int(&c.execution_number) == s.execution_number
    }

    /// Whether the row has what DescribeJobExecution answers (a list row has no version number).
    pub fn described(&self) -> bool {
        self.cols.version_number.is_valid(self.i)
    }

    /// Whether the row is of an active execution (QUEUED or IN_PROGRESS).
    pub fn active(&self) -> bool {
        matches!(
            text_ref(&self.cols.status, self.i),
            Some("QUEUED" | "IN_PROGRESS")
        )
    }

    /// The row carried into a run at `fetched_at_ms` (the time of the listing) for `origin`: the
    /// baseline's execution fields, `source = carried`, `carried_from` its run, no attempt made for
    /// it, and a running in-progress timer reduced by the time passed since the baseline read it.
    pub fn carry(&self, fetched_at_ms: i64, origin: Arc<Origin>) -> Row {
        let (c, i) = (self.cols, self.i);
        let int = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
        let time = |a: &arrow::array::TimestampMillisecondArray| a.is_valid(i).then(|| a.value(i));
        let status = text(&c.status, i);
        let then = c.fetched_at.value(i);
        let timer = int(&c.seconds_before_timed_out).map(|s| {
            if status.as_deref() == Some("IN_PROGRESS") {
                (s - (fetched_at_ms - then).max(0) / 1000).max(0)
            } else {
                // A queued execution's in-progress timer has not started.
                s
            }
        });
        Row {
            thing_name: c.thing_name.value(i).to_string(),
            job_id: c.job_id.value(i).to_string(),
            requested_execution_number: int(&c.requested_execution_number),
            outcome: Outcome::Ok,
            error: None,
            attempts: 0,
            fetched_at_ms,
            execution: Some(ExecutionRecord {
                job_id: Some(c.job_id.value(i).to_string()),
                status,
                force_canceled: c
                    .force_canceled
                    .is_valid(i)
                    .then(|| c.force_canceled.value(i)),
                status_details: details(&c.status_details, i),
                thing_arn: text(&c.thing_arn, i),
                queued_at_ms: time(&c.queued_at),
                started_at_ms: time(&c.started_at),
                last_updated_at_ms: time(&c.last_updated_at),
                execution_number: int(&c.execution_number),
                version_number: int(&c.version_number),
                approximate_seconds_before_timed_out: timer,
            }),
            source: Source::Carried,
            retry_attempt: c
                .retry_attempt
                .is_valid(i)
                .then(|| c.retry_attempt.value(i)),
            origin: Some(origin),
            carried_from: text_ref(&c.run_id, i).map(Arc::from),
            context: Default::default(),
        }
    }
}

fn details(m: &MapArray, i: usize) -> Option<Vec<(String, String)>> {
    if m.is_null(i) {
        return None;
    }
    let entries = m.value(i);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    Some(
        (0..entries.len())
            .map(|k| (keys.value(k).to_string(), values.value(k).to_string()))
            .collect(),
    )
}

/// The columns of one baseline batch, typed.
#[derive(Debug)]
struct Columns {
    run_id: StringArray,
    region: StringArray,
    account_id: StringArray,
    job_id: StringArray,
    thing_name: StringArray,
    requested_execution_number: Int64Array,
    outcome: StringArray,
    fetched_at: arrow::array::TimestampMillisecondArray,
    status: StringArray,
    force_canceled: BooleanArray,
    status_details: MapArray,
    thing_arn: StringArray,
    queued_at: arrow::array::TimestampMillisecondArray,
    started_at: arrow::array::TimestampMillisecondArray,
    last_updated_at: arrow::array::TimestampMillisecondArray,
    execution_number: Int64Array,
    version_number: Int64Array,
    seconds_before_timed_out: Int64Array,
    retry_attempt: Int32Array,
}

enum ColumnsError {
    /// An older schema of this tool's.
    Version(u32),
    Other(String),
}

impl Columns {
    fn len(&self) -> usize {
        self.job_id.len()
    }

    fn of(batch: &RecordBatch) -> Result<Columns, ColumnsError> {
        let want = schema();
        if batch.column_by_name("carried_from").is_none() {
            let v1 = want
                .fields()
                .iter()
                .filter(|f| f.name() != "carried_from")
                .all(|f| batch.column_by_name(f.name()).is_some());
            return Err(if v1 {
                ColumnsError::Version(1)
            } else {
                ColumnsError::Other("it lacks the carried_from column and others".into())
            });
        }
        for f in want.fields() {
            let Some(col) = batch.column_by_name(f.name()) else {
                // A version 3 dataset has no context; a carried row gets today's.
                if crate::dataset::schema::CONTEXT_COLUMNS.contains(&f.name().as_str()) {
                    continue;
                }
                return Err(ColumnsError::Other(format!("no column {}", f.name())));
            };
            let same = match (f.data_type(), col.data_type()) {
                (DataType::Map(..), DataType::Map(..)) => true,
                (DataType::List(_), DataType::List(_)) => true,
                // Version 2's milliseconds or version 3's microseconds, in UTC.
                (DataType::Timestamp(_, a), DataType::Timestamp(unit, b)) => {
                    a == b && matches!(unit, TimeUnit::Millisecond | TimeUnit::Microsecond)
                }
                (a, b) => a == b,
            };
            if !same {
                return Err(ColumnsError::Other(format!(
                    "column {} is {}, not {}",
                    f.name(),
                    col.data_type(),
                    f.data_type()
                )));
            }
        }
        let col = |n: &str| batch.column_by_name(n).expect("checked above").clone();
        let s = |n: &str| col(n).as_string::<i32>().clone();
        let i64s = |n: &str| col(n).as_primitive::<Int64Type>().clone();
        let ts = |n: &str| -> Result<_, ColumnsError> {
            let c = col(n);
            let ms = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
            let c = if c.data_type() == &ms {
                c
            } else {
                arrow::compute::cast(&c, &ms)
                    .map_err(|e| ColumnsError::Other(format!("column {n}: {e}")))?
            };
            Ok(c.as_primitive::<TimestampMillisecondType>().clone())
        };
        Ok(Columns {
            run_id: s("run_id"),
            region: s("region"),
            account_id: s("account_id"),
            job_id: s("job_id"),
            thing_name: s("thing_name"),
            requested_execution_number: i64s("requested_execution_number"),
            outcome: s("outcome"),
            fetched_at: ts("fetched_at")?,
            status: s("status"),
            force_canceled: col("force_canceled").as_boolean().clone(),
            status_details: col("status_details").as_map().clone(),
            thing_arn: s("thing_arn"),
            queued_at: ts("queued_at")?,
            started_at: ts("started_at")?,
            last_updated_at: ts("last_updated_at")?,
            execution_number: i64s("execution_number"),
            version_number: i64s("version_number"),
            seconds_before_timed_out: i64s("approximate_seconds_before_timed_out"),
            retry_attempt: col("retry_attempt").as_primitive::<Int32Type>().clone(),
        })
    }
}
