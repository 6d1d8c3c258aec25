//! The directory a dataset is committed into, local or in an object store, seen the same way: its
//! files by relative path (`date=…/job_id=…/part-….parquet`, `_manifest.json`), which of them this
//! tool wrote, the manifest, and deletion. `run` prepares a fresh, replaced or resumed dataset through
//! it; the writer thread publishes parts and manifests through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifest::{Manifest, MANIFEST};
use super::s3::RemoteDir;
use super::{Layout, WriteError};

/// A dataset directory.
#[derive(Debug, Clone)]
pub enum OutputDir {
    Local(PathBuf),
    Remote(Arc<RemoteDir>),
}

/// The folder of a Delta table's log (`--table-format delta`), under the dataset directory.
pub(crate) const DELTA_LOG: &str = "_delta_log";

/// What a file under the dataset directory is, to this tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A part file (`part-…`), at the top or in `key=value` folders.
    Part,
    /// `_manifest.json`.
    Manifest,
    /// A temporary (`.….tmp`) or a writability probe: never committed.
    Temp,
    /// The output's lock (an object-store prefix's `_fleet-audit.lock`): never data, never deleted
    /// by a cleanup.
    Lock,
    /// The Delta log folder (`_delta_log/…`) of `--table-format delta`: never deleted by this tool,
    /// and this tool's only when the table is (its metadata says so).
    DeltaLog,
    /// Anything else: not this tool's.
    Foreign,
}

/// One file (or, locally, a foreign folder) under the dataset directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path relative to the dataset directory, `/`-separated.
    pub relative: String,
    pub kind: Kind,
}

/// What a relative path is. Only names this tool gives are its own: `date=YYYY-MM-DD` and
/// `job_id=ID` folders leading to `part-RUN[-sKofN]-NNNNN.parquet|arrow` (RUN a run id,
/// `<epoch seconds>-<6 hex digits>`), their hidden `.….tmp` temporaries, the manifest, the lock and
/// the writability probe. A file of another shape (pyarrow's `part-0.parquet`, Spark's
/// `part-00000-<uuid>-c000.snappy.parquet`, a `year=2025/` folder) is `Foreign`: never deleted.
pub(crate) fn kind_of(relative: &str) -> Kind {
    if relative == MANIFEST {
        return Kind::Manifest;
    }
    if relative == super::s3::LOCK {
        return Kind::Lock;
    }
    if relative == DELTA_LOG || relative.starts_with(&format!("{DELTA_LOG}/")) {
        return Kind::DeltaLog;
    }
    let mut segments: Vec<&str> = relative.split('/').collect();
    let name = segments.pop().unwrap_or("");
    if !segments.iter().all(|s| is_our_folder(s)) {
        return Kind::Foreign;
    }
    if name.starts_with(".fleet-audit-probe") {
        return Kind::Temp;
    }
    if let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        let inner = inner.strip_prefix("spool-").unwrap_or(inner);
        let ours = is_our_part_name(inner) || (segments.is_empty() && inner == MANIFEST);
        return if ours { Kind::Temp } else { Kind::Foreign };
    }
    if is_our_part_name(name) {
        Kind::Part
    } else {
        Kind::Foreign
    }
}

/// `date=YYYY-MM-DD` or `job_id=ID`: the partition folders this tool makes.
fn is_our_folder(folder: &str) -> bool {
    match folder.split_once('=') {
        Some(("date", v)) => crate::time::is_valid_date(v),
        Some(("job_id", v)) => crate::input::names::is_valid_job_id(v),
        _ => false,
    }
}

/// `part-RUN[-sKofN]-NNNNN.parquet|arrow`, RUN being `<digits>-<6 hex digits>` (`dataset::new_run_id`).
fn is_our_part_name(name: &str) -> bool {
    let Some(stem) = name.strip_prefix("part-").and_then(|n| {
        n.strip_suffix(".parquet")
            .or_else(|| n.strip_suffix(".arrow"))
    }) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fields: Vec<&str> = stem.split('-').collect();
    let shard_ok = |s: &str| {
        s.strip_prefix('s')
            .and_then(|s| s.split_once("of"))
            .is_some_and(|(k, n)| digits(k) && digits(n))
    };
    let (run_secs, run_hex, rest) = match fields.as_slice() {
        [secs, hex, rest @ ..] => (*secs, *hex, rest),
        _ => return false,
    };
    let run_ok = digits(run_secs)
        && run_hex.len() == 6
        && run_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let tail_ok = match rest {
        [n] => digits(n) && n.len() >= 5,
        [shard, n] => shard_ok(shard) && digits(n) && n.len() >= 5,
        _ => false,
    };
    run_ok && tail_ok
}

/// Whether a file found under a dataset is a data file some writer made (this tool's part, or
/// another tool's `.parquet` / `.arrow`, not hidden): read from a dataset without a manifest, and
/// named as ignored beside one.
pub(crate) fn looks_like_data(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or("");
    !name.starts_with('.')
        && !name.starts_with('_')
        && (name.ends_with(".parquet") || name.ends_with(".arrow"))
}

impl OutputDir {
    /// The directory of a local directory layout; `None` for a single file or an object store's
    /// prefix, whose directory is a connection ([`crate::dataset::Remote::connect`]).
    pub fn local(layout: &Layout) -> Option<OutputDir> {
        match layout {
            Layout::Dir(d) => Some(OutputDir::Local(d.clone())),
            Layout::File(_) | Layout::Remote(_) => None,
        }
    }

    /// The path or URL, for messages.
    pub fn name(&self) -> String {
        match self {
            OutputDir::Local(d) => d.display().to_string(),
            OutputDir::Remote(r) => r.url().to_string(),
        }
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
        let path = path.to_path_buf();
        move |source| WriteError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The names under a local dataset directory that this tool would write through but did not
    /// make: a symbolic link (or anything but a folder) named as its partition folders, a link
    /// named as its files. Found before anything is deleted or written (a run would otherwise
    /// clear the old audit, then stop at the link). Relative paths; none for an object store.
    pub fn planted(&self) -> Vec<String> {
        fn scan(root: &Path, rel: &str, out: &mut Vec<String>) {
            let dir = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let relative = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let Ok(ty) = e.file_type() else { continue };
                if rel.is_empty() && name == DELTA_LOG {
                    // The Delta log: a real folder, holding no link.
                    if ty.is_dir() {
                        for inner in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                            if inner.file_type().is_ok_and(|t| t.is_symlink()) {
                                let n = inner.file_name().to_string_lossy().into_owned();
                                out.push(format!("{DELTA_LOG}/{n}"));
                            }
                        }
                    } else {
                        out.push(relative);
                    }
                } else if is_our_folder(&name) {
                    if ty.is_dir() {
                        scan(root, &relative, out);
                    } else {
                        out.push(relative);
                    }
                } else if ty.is_symlink() && kind_of(&relative) != Kind::Foreign {
                    out.push(relative);
                }
            }
        }
        let mut out = Vec::new();
        if let OutputDir::Local(d) = self {
            scan(d, "", &mut out);
        }
        out.sort();
        out
    }

    /// Every file under the directory (locally, a folder that cannot hold this tool's files is one
    /// `Foreign` entry), in path order. A directory that does not exist has none.
    /// Whether every part of `parts` is in the directory as it was committed: locally its size and
    /// xxh3, in an object store its size (a listing). `Ok(Err(why))` names the first that is not.
    pub(crate) async fn verify_parts<'a>(
        &self,
        parts: impl Iterator<Item = &'a super::PartEntry>,
    ) -> Result<Result<(), String>, WriteError> {
        match self {
            OutputDir::Local(d) => {
                for p in parts {
                    let found = match super::PartDigest::of_file(&d.join(&p.file)) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Ok(Err(format!(
                                "part {} is listed in the manifest but missing",
                                p.file
                            )))
                        }
                        Err(e) => return Ok(Err(format!("part {} cannot be read: {e}", p.file))),
                    };
                    if let Err(why) = p.verify(&found) {
                        return Ok(Err(why));
                    }
                }
            }
            OutputDir::Remote(r) => {
                let sizes: std::collections::HashMap<String, u64> =
                    r.list().await?.into_iter().collect();
                for p in parts {
                    match sizes.get(&p.file) {
                        None => {
                            return Ok(Err(format!(
                                "part {} is listed in the manifest but missing",
                                p.file
                            )))
                        }
                        Some(size) if p.size.is_some_and(|s| s != *size) => {
                            return Ok(Err(format!(
                                "{} is {size} bytes, but {} were committed (truncated or replaced)",
                                p.file,
                                p.size.unwrap_or_default()
                            )))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(Ok(()))
    }

    pub(crate) async fn entries(&self) -> Result<Vec<Entry>, WriteError> {
        match self {
            OutputDir::Local(d) => {
                let mut out = Vec::new();
                if d.is_dir() {
                    walk(d, "", &mut out).map_err(self.io(d))?;
                }
                out.sort_by(|a, b| a.relative.cmp(&b.relative));
                Ok(out)
            }
            OutputDir::Remote(r) => Ok(r
                .list()
                .await?
                .into_iter()
                .map(|(relative, _)| Entry {
                    kind: kind_of(&relative),
                    relative,
                })
                .collect()),
        }
    }

    /// The manifest, or `None` when there is none.
    pub async fn load_manifest(&self) -> Result<Option<Manifest>, WriteError> {
        match self {
            OutputDir::Local(d) => Ok(Manifest::load(d)?),
            OutputDir::Remote(r) => match r.get_manifest().await? {
                None => Ok(None),
                Some(bytes) => Ok(Some(Manifest::from_json(
                    &bytes,
                    Path::new(&r.url_of(MANIFEST)),
                )?)),
            },
        }
    }

    /// Deletes one file (a missing one is not an error).
    pub async fn delete(&self, relative: &str) -> Result<(), WriteError> {
        match self {
            OutputDir::Local(d) => {
                let p = d.join(relative);
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(&p)(e)),
                    _ => Ok(()),
                }
            }
            OutputDir::Remote(r) => Ok(r.delete(relative).await?),
        }
    }

    /// Removes the `key=value` folders left empty by deletions (local only; an object store has no
    /// folders).
    pub(crate) fn prune_empty_folders(&self) {
        if let OutputDir::Local(d) = self {
            prune(d, true);
        }
    }

    /// Stores the manifest: atomically replaced locally; in an object store one PUT conditional on
    /// the version last read or written (a manifest changed by another writer is never overwritten).
    pub async fn store_manifest(&self, m: &Manifest) -> Result<(), WriteError> {
        match self {
            OutputDir::Local(d) => Ok(m.store(d)?),
            OutputDir::Remote(r) => {
                let mut m = m.clone();
                m.stamp = Some(write_stamp());
                Ok(r.put_manifest(m.to_json()).await?)
            }
        }
    }

    /// Drives `fut`, a request to this directory, from a thread outside the runtime (the writer
    /// thread): an object store's through the runtime `rt`, a local directory's (plain file system
    /// calls) on this thread.
    pub(crate) fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, WriteError>>,
        rt: Option<&tokio::runtime::Handle>,
    ) -> Result<T, WriteError> {
        match self {
            OutputDir::Local(_) => futures::executor::block_on(fut),
            OutputDir::Remote(_) => runtime(rt)?.block_on(fut),
        }
    }

    /// [`OutputDir::store_manifest`] from a thread outside the runtime (the writer thread).
    pub(crate) fn store_manifest_blocking(
        &self,
        m: &Manifest,
        rt: Option<&tokio::runtime::Handle>,
    ) -> Result<(), WriteError> {
        match self {
            OutputDir::Local(d) => Ok(m.store(d)?),
            OutputDir::Remote(_) => runtime(rt)?.block_on(self.store_manifest(m)),
        }
    }
}

/// A stamp no other manifest write carries: this process, the time, and a counter.
fn write_stamp() -> String {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        crate::time::wall_ms(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The runtime that drives object-store requests from the writer thread.
pub(crate) fn runtime(
    rt: Option<&tokio::runtime::Handle>,
) -> Result<&tokio::runtime::Handle, WriteError> {
    rt.ok_or(WriteError::NoRuntime)
}

fn walk(root: &Path, rel: &str, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if name.contains('=') && !name.starts_with('.') {
                walk(root, &relative, out)?;
            } else if rel.is_empty() && name == DELTA_LOG {
                out.push(Entry {
                    relative,
                    kind: Kind::DeltaLog,
                });
            } else {
                out.push(Entry {
                    relative,
                    kind: Kind::Foreign,
                });
            }
        } else {
            let kind = if ty.is_file() {
                kind_of(&relative)
            } else {
                Kind::Foreign
            };
            out.push(Entry { relative, kind });
        }
    }
    Ok(())
}

/// Removes the empty partition folders this tool makes (`date=…`, `job_id=…`) under `dir`; returns whether `dir` itself is now empty.
fn prune(dir: &Path, top: bool) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && is_our_folder(&name) && prune(&entry.path(), false) {
            let _ = std::fs::remove_dir(entry.path());
        } else {
            empty = false;
        }
    }
    empty && !top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_tool_gives_are_its_own() {
        let run = "part-1764662400-3fa2c1";
        assert_eq!(kind_of(&format!("{run}-00000.parquet")), Kind::Part);
        assert_eq!(kind_of(&format!("{run}-s0of3-00012.arrow")), Kind::Part);
        assert_eq!(
            kind_of(&format!("date=2026-11-29/job_id=fw-7/{run}-00000.parquet")),
            Kind::Part
        );
        assert_eq!(kind_of("_manifest.json"), Kind::Manifest);
        assert_eq!(kind_of("._manifest.json.tmp"), Kind::Temp);
        assert_eq!(kind_of("_fleet-audit.lock"), Kind::Lock);
        assert_eq!(kind_of("job_id=a/_fleet-audit.lock"), Kind::Foreign);
        assert_eq!(kind_of(&format!(".{run}-00000.parquet.tmp")), Kind::Temp);
        assert_eq!(
            kind_of(&format!(".spool-{run}-00000.parquet.tmp")),
            Kind::Temp
        );
        assert_eq!(
            kind_of(&format!("job_id=a/.{run}-00001.parquet.tmp")),
            Kind::Temp
        );
        assert_eq!(kind_of(".fleet-audit-probe-0a1b2c3d"), Kind::Temp);
        // Other tools' files, and folders this tool does not make.
        for foreign in [
            "part-0.parquet",
            "part-00000-6b7c1b2e-4f1a-4b8e-9d1e-2c3b4a5d6e7f-c000.snappy.parquet",
            "year=2025/part-1764662400-3fa2c1-00000.parquet",
            "date=../part-1764662400-3fa2c1-00000.parquet",
            "date=2026-13-01/part-1764662400-3fa2c1-00000.parquet",
            "part-old-00000.parquet",
            "part-1-00000.parquet",
            ".part-0.parquet.tmp",
            "notes/part-1764662400-3fa2c1-00000.parquet",
            "readme.txt",
            "job_id=a/_manifest.json",
        ] {
            assert_eq!(kind_of(foreign), Kind::Foreign, "{foreign}");
        }
    }

    #[tokio::test]
    async fn local_entries_walk_partition_folders() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("date=2026-11-29/job_id=j1");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("part-1764662400-3fa2c1-00000.parquet"), b"x").unwrap();
        std::fs::write(d.path().join(MANIFEST), b"{}").unwrap();
        std::fs::create_dir(d.path().join("other")).unwrap();
        let t = OutputDir::Local(d.path().to_path_buf());
        let got: Vec<(String, Kind)> = t
            .entries()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.relative, e.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("_manifest.json".into(), Kind::Manifest),
                (
                    "date=2026-11-29/job_id=j1/part-1764662400-3fa2c1-00000.parquet".into(),
                    Kind::Part
                ),
                ("other".into(), Kind::Foreign),
            ]
        );
        t.delete("date=2026-11-29/job_id=j1/part-1764662400-3fa2c1-00000.parquet")
            .await
            .unwrap();
        t.prune_empty_folders();
        assert!(!d.path().join("date=2026-11-29").exists());
        assert!(d.path().join("other").exists());
    }
}
