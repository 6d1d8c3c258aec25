//! Where a run's rows go: `--out` as a layout and a format, and the checks on it made before any
//! call (exists, writable, no link planted where this tool keeps its files); the files a run writes
//! when it ends (`--metrics`, `--summary-json`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{FormatArg, RunArgs, TableFormatArg};
use crate::dataset::{Format, Layout, PartitionKey, Remote};

use super::{flag, parse_duration, ConfigError};

/// The output of a run: where, in what format, how it is started (fresh, replaced, resumed) and cut
/// into parts, and how long its lock lives.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub layout: Layout,
    pub format: Format,
    pub overwrite: bool,
    /// Continue the dataset in a directory output from its manifest.
    pub resume: bool,
    pub part_rows: u64,
    /// A directory output commits its current part at least this often.
    pub part_interval: Duration,
    /// Hive-style partition folders of a directory output (`--partition-by`), in folder order.
    pub partition_by: Vec<PartitionKey>,
    /// How long an S3 output's lock lives without renewal (`--lock-lease`).
    pub lock_lease: Duration,
    /// `--table-format delta`: each complete audit published as a Delta Lake commit.
    pub delta: bool,
}

impl OutputSettings {
    /// The output flags, checked together. Touches the file system only to look at the location
    /// (a resumed directory is checked against its manifest when the run starts).
    pub(super) fn from_args(a: &RunArgs) -> Result<Self, ConfigError> {
        if a.part_rows == 0 {
            return Err(flag("part-rows", "must be at least 1"));
        }
        let part_interval =
            parse_duration(&a.part_interval).map_err(|r| flag("part-interval", r))?;
        let lock_lease = parse_duration(&a.lock_lease).map_err(|r| flag("lock-lease", r))?;
        let (layout, format) = output_of(&a.out, a.format)?;
        if a.resume && matches!(layout, Layout::File(_)) {
            return Err(flag(
                "resume",
                "needs a directory output (--out DIR): a single file is only written when complete",
            ));
        }
        if a.org_role.is_some() && !layout.is_dir() {
            return Err(flag(
                "org-role",
                "needs a directory output (--out DIR or s3://bucket/prefix/), so that a resume can retry the targets that could not be reached",
            ));
        }
        let partition_by =
            PartitionKey::parse_list(&a.partition_by).map_err(|r| flag("partition-by", r))?;
        if !partition_by.is_empty() && !layout.is_dir() {
            return Err(flag(
                "partition-by",
                "needs a directory output (--out DIR or s3://bucket/prefix/), not a single file",
            ));
        }
        if a.resume && a.overwrite {
            return Err(flag("resume", "cannot be combined with --overwrite"));
        }
        let delta = a.table_format == Some(TableFormatArg::Delta);
        if delta && !layout.is_dir() {
            return Err(flag(
                "table-format",
                "needs a directory output (--out DIR or s3://bucket/prefix/): a table is a directory of parts and its log",
            ));
        }
        if delta && format != Format::Parquet {
            return Err(flag(
                "table-format",
                "delta needs Parquet parts (drop --format arrow)",
            ));
        }
        Ok(OutputSettings {
            layout,
            format,
            overwrite: a.overwrite,
            resume: a.resume,
            part_rows: a.part_rows,
            part_interval,
            partition_by,
            lock_lease,
            delta,
        })
    }

    /// Whether the output keeps one audit a date (`--partition-by date`).
    pub fn dated(&self) -> bool {
        self.partition_by.contains(&PartitionKey::Date)
    }

    /// The `--table-format` a manifest records.
    pub(crate) fn table_format(&self) -> Option<String> {
        self.delta.then(|| crate::dataset::delta::DELTA.to_string())
    }

    /// The partition keys by name, as a manifest records them.
    pub(crate) fn partition_names(&self) -> Vec<String> {
        self.partition_by.iter().map(|k| k.name().into()).collect()
    }
}

/// Where the output goes and in what format, from `--out` and `--format`: a file, a local directory,
/// or a directory in an object store (`s3://bucket/prefix/`; `file://PATH` is the local PATH).
pub(crate) fn output_of(
    out: &Path,
    format: Option<FormatArg>,
) -> Result<(Layout, Format), ConfigError> {
    let text = out.to_string_lossy();
    if let Some(local) = text.strip_prefix("file://") {
        return output_of(Path::new(local), format);
    }
    if crate::dataset::s3::is_url(&text) {
        let remote = Remote::parse(&text).map_err(|reason| ConfigError::Output {
            path: out.to_path_buf(),
            reason,
        })?;
        if Format::from_path(Path::new(remote.prefix.as_str())).is_some() {
            return Err(ConfigError::Output {
                path: out.to_path_buf(),
                reason: "an object-store output is a directory of parts: name a prefix, not a file"
                    .into(),
            });
        }
        let format = match format {
            Some(FormatArg::Arrow) => Format::Arrow,
            _ => Format::Parquet,
        };
        return Ok((Layout::Remote(remote), format));
    }
    let resolved = resolve_local(out)?;
    let out = resolved.as_path();
    let by_ext = Format::from_path(out);
    if by_ext.is_none() && !out.is_dir() {
        if let Some(ext) = out
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
        {
            if OTHER_FILE_TYPES.contains(&ext.as_str()) {
                return Err(ConfigError::Output {
                    path: out.to_path_buf(),
                    reason: format!(
                        "names a .{ext} file, which this tool does not write: name a .parquet or \
                         .arrow file, or a directory"
                    ),
                });
            }
        }
    }
    let asked = format.map(|f| match f {
        FormatArg::Parquet => Format::Parquet,
        FormatArg::Arrow => Format::Arrow,
    });
    match (by_ext, asked) {
        (Some(e), Some(a)) if e != a => Err(flag(
            "format",
            format!(
                "{} does not match the extension of {}",
                a.extension(),
                out.display()
            ),
        )),
        (Some(e), _) => Ok((Layout::File(out.to_path_buf()), e)),
        (None, a) => Ok((Layout::Dir(out.to_path_buf()), a.unwrap_or(Format::Parquet))),
    }
}

/// Extensions of files of other types: `--out audit.csv` is a mistake, never a directory named so.
const OTHER_FILE_TYPES: &[&str] = &[
    "csv", "tsv", "txt", "json", "jsonl", "ndjson", "yaml", "yml", "xml", "html", "htm", "orc",
    "avro", "feather", "ipc", "pq", "parq", "xlsx", "xls", "gz", "zip", "zst", "bz2", "xz", "tar",
    "db", "sqlite", "duckdb", "log", "md",
];

/// A local `--out` as it will be written. A symbolic link at `--out` itself is the user's way of
/// naming its target, and is resolved, so that every spelling of one output is one output (its lock
/// is keyed by the real path, and a file output is replaced where the link points, never the link
/// itself); a link to nothing is refused rather than replaced.
fn resolve_local(out: &Path) -> Result<PathBuf, ConfigError> {
    let is_link = std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(out.to_path_buf());
    }
    std::fs::canonicalize(out).map_err(|_| ConfigError::Output {
        path: out.to_path_buf(),
        reason: format!(
            "is a symbolic link to {}, which does not exist: name the real path (nothing is \
             written through a link to nothing)",
            std::fs::read_link(out)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into())
        ),
    })
}

/// Refuses a symbolic link (or anything but a regular file) where this tool will create one of its
/// own files beside the output (the lock, a file output's temporary): it never writes through a
/// link it did not make.
pub(crate) fn check_no_planted_link(out: &Path, own: &Path) -> Result<(), ConfigError> {
    match std::fs::symlink_metadata(own) {
        Ok(m) if !m.file_type().is_file() => Err(ConfigError::Output {
            path: out.to_path_buf(),
            reason: format!(
                "{} is a {} where this tool keeps its own file: it never writes through a link \
                 (or into anything) it did not make; remove it",
                own.display(),
                if m.file_type().is_symlink() {
                    "symbolic link"
                } else {
                    "non-file"
                }
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether a file can be created in `dir` or, when it does not exist yet, in its nearest existing
/// ancestor (a probe file is created and removed at once).
pub(super) fn writable_location(dir: &Path) -> Result<(), String> {
    let mut at = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    while !at.exists() {
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !at.is_dir() {
        return Err(format!("{} is not a directory", at.display()));
    }
    tempfile::Builder::new()
        .prefix(".fleet-audit-probe")
        .tempfile_in(at)
        .map(drop)
        .map_err(|e| format!("cannot write in {}: {e}", at.display()))
}

/// Checks, before any call, that a file a flag names (`--metrics FILE`, `--summary-json FILE`) can be
/// written when the run ends: its folder exists and takes a new file, and it is not a folder. Found
/// after an audit, a typo would cost the whole audit's figures.
pub(crate) fn check_file_destination(name: &'static str, path: &Path) -> Result<(), ConfigError> {
    let bad = |reason: String| flag(name, reason);
    if path.is_dir() {
        return Err(bad(format!(
            "{} is a directory; name a file",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad(format!(
            "the folder {} does not exist, so {} could not be written",
            dir.display(),
            path.display()
        )));
    }
    writable_location(dir).map_err(bad)
}

/// Refuses a local output inside another dataset: a folder above it holds a manifest or a Delta log,
/// or is a Delta log. Its cleanup would delete that dataset's parts (a `date=` folder of a table
/// given as `--out`), and that dataset's readers (Spark, Athena: every file under the prefix) would
/// read its files.
pub(crate) fn check_not_nested(layout: &Layout) -> Result<(), ConfigError> {
    let (Layout::File(p) | Layout::Dir(p)) = layout else {
        return Ok(());
    };
    let Ok(abs) = std::path::absolute(p) else {
        return Ok(());
    };
    for above in abs.ancestors().skip(1) {
        let holds = |name: &str| std::fs::symlink_metadata(above.join(name)).is_ok();
        let what = if above
            .file_name()
            .is_some_and(|n| n == crate::dataset::delta::LOG_DIR)
        {
            "is a Delta table's log"
        } else if holds(crate::dataset::MANIFEST) {
            "holds another dataset (its _manifest.json)"
        } else if holds(crate::dataset::delta::LOG_DIR) {
            "holds a Delta table (its _delta_log)"
        } else {
            continue;
        };
        return Err(ConfigError::Output {
            path: p.clone(),
            reason: format!(
                "is inside {}, which {what}: an output inside another dataset would delete or \
                 add to its files; name a folder outside it",
                above.display()
            ),
        });
    }
    Ok(())
}

/// Refuses existing output without `overwrite`, and a location that cannot hold the output.
pub(crate) fn check_output(layout: &Layout, overwrite: bool) -> Result<(), ConfigError> {
    let out = |reason: String| ConfigError::Output {
        path: layout.path().to_path_buf(),
        reason,
    };
    if let Layout::File(p) | Layout::Dir(p) = layout {
        let lock = crate::dataset::lock::local_lock_path(p).map_err(|e| out(e.to_string()))?;
        check_no_planted_link(p, &lock)?;
        if let Layout::File(_) = layout {
            check_no_planted_link(p, &crate::dataset::temp_path(p))?;
        }
    }
    match layout {
        Layout::File(p) => {
            if p.is_dir() {
                return Err(out("is a directory; name a .parquet or .arrow file".into()));
            }
            if p.exists() && !overwrite {
                return Err(ConfigError::OutputExists(p.clone()));
            }
            // A missing folder is created, as for a directory output.
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            writable_location(parent.unwrap_or(Path::new("."))).map_err(out)?;
        }
        Layout::Dir(d) => {
            if d.exists() {
                if !d.is_dir() {
                    return Err(out(
                        "exists and is not a directory (name a .parquet or .arrow file, or a directory)"
                            .into(),
                    ));
                }
                let non_empty = std::fs::read_dir(d)
                    .map_err(|e| out(e.to_string()))?
                    .next()
                    .is_some();
                if non_empty && !overwrite {
                    return Err(ConfigError::DirExists(d.clone()));
                }
            }
            writable_location(d).map_err(out)?;
        }
        // Checked once connected, before any call (`run`).
        Layout::Remote(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_layout_follows_extension_and_format() {
        let (l, f) = output_of(Path::new("a/b.parquet"), None).unwrap();
        assert_eq!(
            (l, f),
            (Layout::File("a/b.parquet".into()), Format::Parquet)
        );
        let (l, f) = output_of(Path::new("x.arrow"), None).unwrap();
        assert_eq!((l, f), (Layout::File("x.arrow".into()), Format::Arrow));
        let (l, f) = output_of(Path::new("outdir"), Some(FormatArg::Arrow)).unwrap();
        assert_eq!((l, f), (Layout::Dir("outdir".into()), Format::Arrow));
        assert!(output_of(Path::new("x.arrow"), Some(FormatArg::Parquet)).is_err());
    }

    #[test]
    fn object_store_urls_are_directories_and_file_urls_are_local() {
        let (l, f) = output_of(Path::new("s3://bucket/audit"), None).unwrap();
        match l {
            Layout::Remote(r) => assert_eq!(r.url, "s3://bucket/audit/"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f, Format::Parquet);
        let e = output_of(Path::new("s3://bucket/audit.parquet"), None).unwrap_err();
        assert!(e.to_string().contains("directory of parts"), "{e}");
        let e = output_of(Path::new("s3://"), None).unwrap_err();
        assert!(e.to_string().contains("no bucket"), "{e}");
        let e = output_of(Path::new("gs://bucket/a"), None).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let (l, _) = output_of(Path::new("file:///tmp/a.parquet"), None).unwrap();
        assert_eq!(l, Layout::File("/tmp/a.parquet".into()));
    }

    #[test]
    fn an_output_inside_another_dataset_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let table = d.path().join("table");
        std::fs::create_dir_all(table.join("_delta_log/sub")).unwrap();
        let nested = [
            Layout::Dir(table.join("date=2026-12-01")),
            Layout::File(table.join("x.parquet")),
            Layout::Dir(table.join("_delta_log/sub")),
        ];
        for l in &nested {
            let e = check_not_nested(l).unwrap_err().to_string();
            assert!(e.contains("inside") && e.contains("table"), "{e}");
        }
        let plain = d.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("_manifest.json"), "{}").unwrap();
        let e = check_not_nested(&Layout::Dir(plain.join("a/b"))).unwrap_err();
        assert!(e.to_string().contains("_manifest.json"), "{e}");
        assert!(
            check_not_nested(&Layout::Dir(table.clone())).is_ok(),
            "the table itself"
        );
        assert!(check_not_nested(&Layout::Dir(d.path().join("beside"))).is_ok());
    }

    #[test]
    fn existing_output_needs_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("o.parquet");
        std::fs::write(&f, b"x").unwrap();
        let e = check_output(&Layout::File(f.clone()), false).unwrap_err();
        assert!(e.to_string().contains("pass --overwrite"), "{e}");
        assert!(check_output(&Layout::File(f.clone()), true).is_ok());
        // A missing folder is created by the run, for a file as for a directory.
        assert!(check_output(&Layout::File(d.path().join("nope/o.parquet")), false).is_ok());
        assert!(!d.path().join("nope").exists(), "checking creates nothing");
        assert!(check_output(&Layout::Dir(d.path().join("fresh")), false).is_ok());
        assert!(!d.path().join("fresh").exists(), "checking creates nothing");
        let e = check_output(&Layout::Dir("/proc/fleet-audit/ds".into()), false).unwrap_err();
        assert!(e.to_string().contains("cannot write in /proc"), "{e}");
        let e = check_output(&Layout::File(f.join("x.parquet")), false).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        let e = check_output(&Layout::Dir(d.path().to_path_buf()), false).unwrap_err();
        assert!(matches!(e, ConfigError::DirExists(_)));
        assert!(
            e.to_string().contains("pass --resume to finish")
                && e.to_string().contains("or --overwrite to replace it"),
            "{e}"
        );
    }
}
