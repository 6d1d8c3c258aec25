//! The manifest of a directory output: which part files are committed, which input pairs they hold,
//! and which inputs they came from. It is what makes `--resume` exact.
//!
//! Pairs are identified by their ordinal in the (de-duplicated, deterministic) input order. Rows finish
//! out of order, but only within the window of pairs in flight, so the committed set is stored as a
//! watermark (every ordinal below it is committed) plus the few committed ordinals above it.
//! The manifest is rewritten atomically (temporary file, sync, rename, directory sync) after each part
//! is committed; a part file on disk that the manifest does not list was never committed and is deleted
//! on resume, so a crash between a part's rename and the manifest's never doubles a row.
//!
//! A manifest read back is checked whole before anything it names is used (`check`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::sync_dir;

mod check;

/// File name of the manifest inside the output directory.
pub(crate) const MANIFEST: &str = "_manifest.json";
const VERSION: u32 = 1;

/// Ordinals carry their lane (the target of a run over several accounts or regions) in their top
/// bits: lane `l`'s pair `o` is `l << LANE_SHIFT | o`. A single-target run uses lane 0 only.
pub(crate) const LANE_SHIFT: u32 = 48;
const ORDINAL_MASK: u64 = (1 << LANE_SHIFT) - 1;

/// The ordinal of pair `o` of lane `lane`.
pub(crate) fn lane_ordinal(lane: u16, o: u64) -> u64 {
    (u64::from(lane) << LANE_SHIFT) | (o & ORDINAL_MASK)
}

/// Committed ordinals of one lane: a watermark plus the few committed above it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneDone {
    /// Every ordinal below this is committed.
    pub watermark: u64,
    /// Committed ordinals at or above the watermark, ascending.
    pub above: BTreeSet<u64>,
}

impl LaneDone {
    fn insert(&mut self, o: u64) {
        if o < self.watermark {
            return;
        }
        if o == self.watermark {
            self.watermark += 1;
            while self.above.remove(&self.watermark) {
                self.watermark += 1;
            }
        } else {
            self.above.insert(o);
        }
    }

    fn contains(&self, o: u64) -> bool {
        o < self.watermark || self.above.contains(&o)
    }

    fn len(&self) -> u64 {
        self.watermark + self.above.len() as u64
    }
}

/// The set of committed pair ordinals, per lane. Each lane progresses at its own target's pace, so
/// each keeps its own watermark (lane 0's fields are at the top level, as a single-target run has them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneSet {
    /// Every lane-0 ordinal below this is committed.
    pub watermark: u64,
    /// Committed lane-0 ordinals at or above the watermark, ascending.
    pub above: BTreeSet<u64>,
    /// Lanes 1 and up, in a run over several targets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lanes: BTreeMap<u16, LaneDone>,
}

impl DoneSet {
    fn split(ordinal: u64) -> (u16, u64) {
        ((ordinal >> LANE_SHIFT) as u16, ordinal & ORDINAL_MASK)
    }

    pub fn insert(&mut self, ordinal: u64) {
        match Self::split(ordinal) {
            (0, o) => {
                let mut l = LaneDone {
                    watermark: self.watermark,
                    above: std::mem::take(&mut self.above),
                };
                l.insert(o);
                self.watermark = l.watermark;
                self.above = l.above;
            }
            (lane, o) => self.lanes.entry(lane).or_default().insert(o),
        }
    }

    pub fn contains(&self, ordinal: u64) -> bool {
        match Self::split(ordinal) {
            (0, o) => o < self.watermark || self.above.contains(&o),
            (lane, o) => self.lanes.get(&lane).is_some_and(|l| l.contains(o)),
        }
    }

    /// Number of committed ordinals in all lanes.
    pub fn len(&self) -> u64 {
        self.watermark
            + self.above.len() as u64
            + self.lanes.values().map(LaneDone::len).sum::<u64>()
    }

    /// Number of committed ordinals of one lane.
    pub(crate) fn lane_len(&self, lane: u16) -> u64 {
        match lane {
            0 => self.watermark + self.above.len() as u64,
            l => self.lanes.get(&l).map_or(0, LaneDone::len),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One committed part file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Path relative to the output directory, `/`-separated (`date=…/job_id=…/part-….parquet` when
    /// partitioned).
    pub file: String,
    pub rows: u64,
    /// Its size in bytes and the xxh3-64 of its bytes (16 hex digits), recorded when it was
    /// committed: a part missing, truncated or altered since is found before it is trusted
    /// (`--resume`, `report`, `--baseline`). Absent in manifests written before they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
    /// Its Delta statistics (JSON), recorded for `--table-format delta` when it was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

impl PartEntry {
    /// A part of `rows` rows whose bytes are described by `digest` (`None`: not recorded).
    pub fn new(file: String, rows: u64, digest: Option<PartDigest>) -> PartEntry {
        PartEntry {
            file,
            rows,
            size: digest.map(|d| d.size),
            xxh3: digest.map(|d| d.hex()),
            stats: None,
        }
    }

    /// Whether `found` (the bytes as they are now) are the bytes committed: `Err` says how they
    /// differ. A part committed without a digest is only checked for existence by its caller.
    pub(crate) fn verify(&self, found: &PartDigest) -> Result<(), String> {
        if let Some(size) = self.size {
            if found.size != size {
                return Err(format!(
                    "{} is {} bytes, but {size} were committed (truncated or replaced)",
                    self.file, found.size
                ));
            }
        }
        if let Some(sum) = &self.xxh3 {
            if found.hex() != *sum {
                return Err(format!(
                    "{}'s bytes are not those committed (xxh3 {}, committed {sum}): it was altered",
                    self.file,
                    found.hex()
                ));
            }
        }
        Ok(())
    }
}

/// The size and xxh3-64 of a part file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartDigest {
    pub size: u64,
    pub xxh3: u64,
}

impl PartDigest {
    pub(crate) fn of_bytes(bytes: &[u8]) -> PartDigest {
        PartDigest {
            size: bytes.len() as u64,
            xxh3: xxhash_rust::xxh3::xxh3_64(bytes),
        }
    }

    /// The digest of a local file, read once in 1 MiB blocks (`O_NOFOLLOW`: a part is a file this
    /// tool wrote, never a link).
    pub(crate) fn of_file(path: &Path) -> std::io::Result<PartDigest> {
        use std::io::Read;
        let mut f = super::files::open_no_follow(path)?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        Ok(PartDigest {
            size,
            xxh3: h.digest(),
        })
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.xxh3)
    }
}

/// An earlier complete audit that a `--partition-by date` output keeps (one audit a date): its parts
/// stay where they are, and a later audit neither rewrites nor deletes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierAudit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Its `date=` partition, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Rows, all committed.
    pub pairs: u64,
    pub parts: Vec<PartEntry>,
    /// How many times `--retry-errors` replaced its parts (its Delta publish number, less one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A target of the run that could not be audited (an organization-wide audit goes on without it);
/// `--resume` retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTarget {
    pub target: String,
    pub error: String,
}

/// The run that completed an audit, and what it did: a later run that finds the audit complete (a
/// retry, `--resume`) reports these figures instead of its own zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub run_id: String,
    /// When it completed (the wall clock, epoch milliseconds; a metric's time of success).
    pub at_ms: i64,
    /// Its DescribeJobExecution attempts, list and DescribeJob attempts, throttled attempts.
    pub attempts: u64,
    pub list_calls: u64,
    /// Its context attempts (`--context`); absent from a manifest written before them.
    #[serde(default)]
    pub context_calls: u64,
    pub throttled: u64,
    pub elapsed_ms: u64,
    /// The baseline it carried rows from (`--baseline`), as its summary names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Identity of the inputs (content hashes, targets, shard): an
    /// [`InputIdentity`](crate::input::identity::InputIdentity)'s text, read back with its `parse`;
    /// a resume with other inputs is refused.
    pub input_identity: String,
    /// Distinct pairs in the inputs.
    pub pairs: u64,
    /// `parquet` or `arrow`.
    pub format: String,
    pub parts: Vec<PartEntry>,
    pub committed: DoneSet,
    /// Whether every pair is committed.
    pub complete: bool,
    /// The partition columns of the layout, in folder order (`date`, `job_id`); empty: flat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// Which write this is (object stores): every write's bytes differ, so does its ETag, and a
    /// write conditional on an earlier version always fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    /// The run that started this audit (a resume keeps it), and the audit's `date=` partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The earlier audits of a `--partition-by date` output, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EarlierAudit>,
    /// The targets this audit could not reach yet (their rows are missing, so it is not complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_targets: Vec<FailedTarget>,
    /// The audit's committed `error` rows (absent in manifests from before they were counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rows: Option<u64>,
    /// The run that completed this audit (absent until it is complete, and in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Completion>,
    /// `delta` when every complete audit is published as a Delta Lake commit (`--table-format`);
    /// absent: Parquet parts and this manifest only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_format: Option<String>,
    /// How many times `--retry-errors` replaced this audit's parts: a Delta table gets each
    /// replacement as a commit of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

/// Manifest read/write errors, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a fleet-audit manifest: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Manifest {
    pub fn new(input_identity: String, pairs: u64, format: &str) -> Self {
        Manifest {
            version: VERSION,
            input_identity,
            pairs,
            format: format.to_string(),
            parts: Vec::new(),
            committed: DoneSet::default(),
            complete: false,
            partition_by: Vec::new(),
            stamp: None,
            run_id: None,
            date: None,
            earlier: Vec::new(),
            failed_targets: Vec::new(),
            completed: None,
            error_rows: Some(0),
            table_format: None,
            generation: 0,
        }
    }

    /// The manifest of the next audit of a `--partition-by date` output: this complete audit joins
    /// the earlier ones, and the next starts with nothing committed.
    pub(crate) fn next_audit(self, input_identity: String, pairs: u64, date: String) -> Manifest {
        debug_assert!(self.complete);
        let mut earlier = self.earlier;
        earlier.push(EarlierAudit {
            run_id: self.run_id,
            date: self.date,
            pairs: self.parts.iter().map(|p| p.rows).sum(),
            parts: self.parts,
            generation: self.generation,
        });
        let mut m = Manifest::new(input_identity, pairs, &self.format);
        m.partition_by = self.partition_by;
        m.table_format = self.table_format;
        m.stamp = self.stamp;
        m.date = Some(date);
        m.earlier = earlier;
        m
    }

    /// The manifest of an audit that replaces this one (`--overwrite`, or this one never started):
    /// the earlier audits stay, and the new one starts with nothing committed.
    pub(crate) fn replacing_last(
        self,
        input_identity: String,
        pairs: u64,
        date: String,
    ) -> Manifest {
        let mut m = Manifest::new(input_identity, pairs, &self.format);
        m.partition_by = self.partition_by;
        m.table_format = self.table_format;
        m.stamp = self.stamp;
        m.date = Some(date);
        m.earlier = self.earlier;
        m
    }

    /// Every part file the manifest names: this audit's and the earlier audits'.
    pub(crate) fn all_parts(&self) -> impl Iterator<Item = &PartEntry> {
        self.parts
            .iter()
            .chain(self.earlier.iter().flat_map(|a| a.parts.iter()))
    }

    /// Parses a manifest document; `path` names it in errors.
    pub fn from_json(text: &[u8], path: &Path) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
        if m.version != VERSION {
            return Err(invalid(format!("version {} is not {VERSION}", m.version)));
        }
        m.check().map_err(invalid)?;
        Ok(m)
    }

    /// The manifest document (compact: it is rewritten at every commit).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// Reads `dir/_manifest.json`, or `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(MANIFEST);
        // This tool writes its manifest as a file; a link in its place was planted, and is never
        // followed.
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(ManifestError::Invalid {
                    path,
                    reason: "it is a symbolic link or not a file (this tool writes a file, and never follows a link it did not make)".into(),
                })
            }
            _ => {}
        }
        let mut text = String::new();
        let read = super::files::open_no_follow(&path)
            .and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut text));
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Io { path, source }),
        }
        Manifest::from_json(text.as_bytes(), &path).map(Some)
    }

    /// Writes the manifest atomically into `dir`.
    pub fn store(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join(format!(".{MANIFEST}.tmp"));
        let io = |source| ManifestError::Io {
            path: path.clone(),
            source,
        };
        let body = self.to_json();
        let written = super::files::create_exclusive(&tmp).and_then(|mut f| {
            f.write_all(&body)?;
            f.sync_all()
        });
        if let Err(e) = written {
            // A full disk must not leave a stray temporary behind; the old manifest stays valid.
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(dir).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_set_tracks_out_of_order_completion() {
        let mut d = DoneSet::default();
        for o in [2, 0, 5, 1, 3] {
            d.insert(o);
        }
        assert_eq!(d.watermark, 4);
        assert_eq!(d.above, [5].into_iter().collect());
        assert!(d.contains(3) && d.contains(5) && !d.contains(4));
        assert_eq!(d.len(), 5);
        d.insert(4);
        assert_eq!(d.watermark, 6);
        assert!(d.above.is_empty());
    }

    #[test]
    fn lanes_keep_their_own_watermarks() {
        let mut d = DoneSet::default();
        for o in [0, 1, 2] {
            d.insert(lane_ordinal(0, o));
        }
        for o in [0, 1, 2, 3, 4, 6] {
            d.insert(lane_ordinal(2, o));
        }
        assert_eq!(d.watermark, 3);
        assert_eq!(d.lanes[&2].watermark, 5);
        assert_eq!(d.lanes[&2].above, [6].into_iter().collect());
        assert!(d.contains(lane_ordinal(2, 6)) && !d.contains(lane_ordinal(2, 5)));
        assert!(!d.contains(lane_ordinal(1, 0)) && !d.contains(lane_ordinal(0, 4)));
        assert_eq!((d.len(), d.lane_len(0), d.lane_len(2)), (9, 3, 6));
        // A single-lane set serializes as before (no `lanes` key), and lanes survive a round trip.
        let one: DoneSet = serde_json::from_str(r#"{"watermark":3,"above":[5]}"#).unwrap();
        assert!(!one.contains(4) && one.contains(5));
        assert!(!serde_json::to_string(&one).unwrap().contains("lanes"));
        let back: DoneSet = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn manifest_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::load(dir.path()).unwrap().is_none());
        let mut m = Manifest::new("lists:1:2".into(), 10, "parquet");
        m.parts
            .push(PartEntry::new("part-x-00000.parquet".into(), 3, None));
        for o in [0, 2, 1] {
            m.committed.insert(o);
        }
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap().unwrap(), m);
        assert!(!dir.path().join(format!(".{MANIFEST}.tmp")).exists());
        std::fs::write(dir.path().join(MANIFEST), "{}").unwrap();
        assert!(Manifest::load(dir.path()).is_err());
    }

    /// A manifest naming anything but this tool's parts, or whose counts do not add up, is refused
    /// with the file named and the rule broken.
    #[test]
    fn manifests_that_lie_are_refused() {
        let good = || {
            let mut m = Manifest::new("lists:1:2".into(), 10, "parquet");
            m.partition_by = vec!["date".into()];
            m.parts.push(PartEntry::new(
                "date=2026-12-01/part-r-00000.parquet".into(),
                2,
                None,
            ));
            m.committed.insert(0);
            m.committed.insert(1);
            m
        };
        let path = Path::new("/data/out/_manifest.json");
        let parse = |m: &Manifest| Manifest::from_json(&m.to_json(), path);
        assert_eq!(parse(&good()).unwrap(), good());
        let named = |file: &str| {
            let mut m = good();
            m.parts[0].file = file.into();
            m
        };
        for file in [
            "../x/part-r-00000.parquet",
            "date=2026-12-01/../../etc/part-r-00000.parquet",
            "/etc/part-r-00000.parquet",
            "date=2026-12-01//part-r-00000.parquet",
            "date=2026-12-01/.part-r-00000.parquet",
            "date=2026-12-01/notes.parquet",
            "date=2026-12-01/part-r-00000.arrow",
            "part-r-00000.parquet",
            "job_id=a/part-r-00000.parquet",
            "date=2026-12-01\\part-r-00000.parquet",
            "date=2026-12-01/part-r 00000.parquet",
            "date=../part-r-00000.parquet",
            "date=2026-02-30/part-r-00000.parquet",
        ] {
            let err = parse(&named(file)).unwrap_err().to_string();
            assert!(
                err.starts_with("/data/out/_manifest.json: not a fleet-audit manifest: part"),
                "{file}: {err}"
            );
        }
        // A date becomes a folder: it must be a date, and the audit's parts lie in it.
        for date in ["../../../outside_written", "2026-12-1", ".."] {
            let mut m = good();
            m.date = Some(date.into());
            let err = parse(&m).unwrap_err().to_string();
            assert!(err.contains("is not a date YYYY-MM-DD"), "{date}: {err}");
        }
        let mut elsewhere = good();
        elsewhere.date = Some("2026-12-02".into());
        let err = parse(&elsewhere).unwrap_err().to_string();
        assert!(
            err.contains("lies outside its audit's folder date=2026-12-02/"),
            "{err}"
        );
        let mut sum = good();
        sum.parts[0].xxh3 = Some("../etc".into());
        assert!(parse(&sum)
            .unwrap_err()
            .to_string()
            .contains("is not 16 hex digits"));
        let mut twice = good();
        twice.parts.push(twice.parts[0].clone());
        twice.parts[0].rows = 1;
        twice.parts[1].rows = 1;
        assert!(parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        let mut rows = good();
        rows.parts[0].rows = 5;
        assert!(parse(&rows)
            .unwrap_err()
            .to_string()
            .contains("its parts hold 5 rows, but it records 2 committed pairs"));
        let mut over = good();
        over.pairs = 1;
        assert!(parse(&over)
            .unwrap_err()
            .to_string()
            .contains("inputs that hold 1"));
        let mut complete = good();
        complete.complete = true;
        assert!(parse(&complete)
            .unwrap_err()
            .to_string()
            .contains("marked complete"));
        let mut failed = good();
        failed.failed_targets.push(FailedTarget {
            target: "123456789012/eu-west-1".into(),
            error: "x".repeat(5_000),
        });
        assert!(parse(&failed)
            .unwrap_err()
            .to_string()
            .contains("failed target \"123456789012/eu-west-1\""));
        failed.failed_targets[0].error = "AccessDenied".into();
        assert_eq!(parse(&failed).unwrap(), failed);
        let mut huge = good();
        huge.committed.watermark = u64::MAX;
        assert!(parse(&huge)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let mut below = good();
        below.committed.above.insert(1);
        below.parts[0].rows = 3;
        assert!(parse(&below)
            .unwrap_err()
            .to_string()
            .contains("not above its watermark"));
        let mut format = good();
        format.format = "csv".into();
        assert!(parse(&format)
            .unwrap_err()
            .to_string()
            .contains("neither parquet nor arrow"));
    }
}
