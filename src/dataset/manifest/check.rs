//! The check of a manifest read back (`Manifest::from_json`): a manifest is input like any other (it
//! may lie in a shared bucket), so before anything it names is read or deleted, its format and keys,
//! its dates, its part names (`check_part_name`: this tool's own relative paths, never outside the
//! dataset) and its counts must be what this tool writes.

use std::collections::BTreeSet;

use super::{Manifest, PartEntry, ORDINAL_MASK};

/// Whether `file` is the relative path of a part this tool writes: folders `key=value` with the keys
/// of `partition_by` in order, then `part-….EXT`; every segment of ASCII letters, digits, `-`, `_`, `.`
/// and `=`, never starting with `.` (so no `..`, no absolute path, no hidden file).
pub(crate) fn check_part_name(
    file: &str,
    ext: &str,
    partition_by: &[String],
) -> Result<(), String> {
    let segments: Vec<&str> = file.split('/').collect();
    let ok_segment = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
    };
    if let Some(bad) = segments.iter().find(|s| !ok_segment(s)) {
        return Err(format!(
            "{bad:?} is not a folder or file name this tool writes (a relative path of letters, digits, - _ . =)"
        ));
    }
    let (name, folders) = segments
        .split_last()
        .expect("split gives one segment at least");
    if folders.len() != partition_by.len() {
        return Err(format!(
            "lies {} folders deep; the dataset is partitioned by {} key(s)",
            folders.len(),
            partition_by.len()
        ));
    }
    for (folder, key) in folders.iter().zip(partition_by) {
        let Some((k, value)) = folder.split_once('=') else {
            return Err(format!("folder {folder:?} is not a {key}=… folder"));
        };
        if k != key {
            return Err(format!("folder {folder:?} is not a {key}=… folder"));
        }
        // The values are what this tool writes there: a date, or a job id (AWS's rule).
        let valid = match key.as_str() {
            "date" => crate::time::is_valid_date(value),
            _ => crate::input::names::is_valid_job_id(value),
        };
        if !valid {
            let rule = match key.as_str() {
                "date" => "a date YYYY-MM-DD".to_string(),
                _ => crate::input::names::JOB_ID_RULE.to_string(),
            };
            return Err(format!("folder {folder:?}: its value must be {rule}"));
        }
    }
    if !name.starts_with("part-") || !name.ends_with(&format!(".{ext}")) {
        return Err(format!("{name:?} is not a part-….{ext} file"));
    }
    Ok(())
}

impl Manifest {
    /// A manifest is input like any other (it may lie in a shared bucket): every part must be a
    /// relative path of this tool's own shape (`[key=value/…]part-….ext`, the keys those of
    /// `partition_by`, in order), named once, and the counts must add up: the parts' rows are the
    /// committed pairs, no more than the inputs hold. Nothing outside the dataset can be named.
    pub(super) fn check(&self) -> Result<(), String> {
        let ext = self.check_keys()?;
        self.check_dates()?;
        self.check_digests()?;
        self.check_failed_targets()?;
        self.check_part_names(ext)?;
        self.check_counts()
    }

    /// The format (the parts' extension, returned) and the partition keys are ones this tool writes.
    fn check_keys(&self) -> Result<&str, String> {
        let ext = match self.format.as_str() {
            "parquet" | "arrow" => self.format.as_str(),
            f => return Err(format!("format {f:?} is neither parquet nor arrow")),
        };
        for key in &self.partition_by {
            if !matches!(key.as_str(), "date" | "job_id") {
                return Err(format!("partition key {key:?} is neither date nor job_id"));
            }
        }
        Ok(ext)
    }

    /// Every audit's date is a date, and with `date` folders each of its parts lies in its own.
    fn check_dates(&self) -> Result<(), String> {
        // A date becomes a path (`date=…/`): it must be a date, and every part of an audit lies in
        // its audit's date folder.
        let dated = self.partition_by.iter().any(|k| k == "date");
        let audits = std::iter::once((self.date.as_deref(), &self.parts))
            .chain(self.earlier.iter().map(|a| (a.date.as_deref(), &a.parts)));
        for (date, parts) in audits {
            if let Some(d) = date {
                if !crate::time::is_valid_date(d) {
                    return Err(format!(
                        "date {:?} is not a date YYYY-MM-DD",
                        d.chars().take(64).collect::<String>()
                    ));
                }
            }
            // (A dataset written before audits were dated has none: its folders are checked as dates.)
            if let (true, Some(d)) = (dated, date) {
                let folder = format!("date={d}");
                if let Some(p) = parts
                    .iter()
                    .find(|p| !p.file.split('/').any(|s| s == folder))
                {
                    return Err(format!(
                        "part {:?} lies outside its audit's folder {folder}/",
                        p.file
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every part's digest, when recorded, is an xxh3: 16 hex digits.
    fn check_digests(&self) -> Result<(), String> {
        for p in self.all_parts() {
            if let Some(x) = &p.xxh3 {
                if x.len() != 16 || !x.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "part {:?}: xxh3 {x:?} is not 16 hex digits",
                        p.file
                    ));
                }
            }
        }
        Ok(())
    }

    /// Failed targets only in an incomplete audit, each named in 1 to 256 bytes with a bounded reason.
    fn check_failed_targets(&self) -> Result<(), String> {
        if self.complete && !self.failed_targets.is_empty() {
            return Err("a complete audit cannot have failed targets".into());
        }
        for t in &self.failed_targets {
            if t.target.is_empty() || t.target.len() > 256 || t.error.len() > 4096 {
                return Err(format!(
                    "failed target {:?}: a name of 1 to 256 bytes and a reason of at most 4096",
                    t.target.chars().take(64).collect::<String>()
                ));
            }
        }
        Ok(())
    }

    /// Every part (this audit's and the earlier ones') has this tool's name and is listed once.
    fn check_part_names(&self, ext: &str) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for p in self.all_parts() {
            check_part_name(&p.file, ext, &self.partition_by)
                .map_err(|rule| format!("part {:?}: {rule}", p.file))?;
            if !seen.insert(p.file.as_str()) {
                return Err(format!("part {:?} is listed twice", p.file));
            }
        }
        Ok(())
    }

    /// The counts add up: each earlier audit's parts hold its pairs, this audit's parts hold its
    /// committed pairs, no more than the inputs hold (all of them when it is complete).
    fn check_counts(&self) -> Result<(), String> {
        let sum = |parts: &[PartEntry]| {
            parts
                .iter()
                .try_fold(0u64, |n, p| n.checked_add(p.rows))
                .ok_or("the parts' row counts overflow")
        };
        for a in &self.earlier {
            if sum(&a.parts)? != a.pairs {
                return Err(format!(
                    "the earlier audit {} lists parts of {} rows, not its {} pairs",
                    a.date.as_deref().unwrap_or("(no date)"),
                    sum(&a.parts)?,
                    a.pairs
                ));
            }
        }
        let rows = sum(&self.parts)?;
        let committed = self.committed_pairs()?;
        if rows != committed {
            return Err(format!(
                "its parts hold {rows} rows, but it records {committed} committed pairs"
            ));
        }
        if self.pairs > 0 && committed > self.pairs {
            return Err(format!(
                "it records {committed} committed pairs of inputs that hold {}",
                self.pairs
            ));
        }
        if self.complete && self.pairs > 0 && committed != self.pairs {
            return Err(format!(
                "it is marked complete with {committed} of {} pairs committed",
                self.pairs
            ));
        }
        Ok(())
    }

    /// The committed pairs the manifest records, lane by lane (each ordinal within range, above its
    /// lane's watermark).
    fn committed_pairs(&self) -> Result<u64, String> {
        let mut committed: u64 = 0;
        let lanes = std::iter::once((0u16, self.committed.watermark, &self.committed.above)).chain(
            self.committed
                .lanes
                .iter()
                .map(|(l, d)| (*l, d.watermark, &d.above)),
        );
        for (lane, watermark, above) in lanes {
            if lane == 0 && self.committed.lanes.contains_key(&0) {
                return Err("lane 0 is given twice".into());
            }
            if watermark > ORDINAL_MASK {
                return Err(format!(
                    "lane {lane}'s watermark {watermark} is out of range"
                ));
            }
            if let Some(o) = above
                .iter()
                .find(|o| **o <= watermark || **o > ORDINAL_MASK)
            {
                return Err(format!(
                    "lane {lane}'s committed ordinal {o} is not above its watermark {watermark}"
                ));
            }
            committed = committed
                .checked_add(watermark + above.len() as u64)
                .ok_or("the committed counts overflow")?;
        }
        Ok(committed)
    }
}
