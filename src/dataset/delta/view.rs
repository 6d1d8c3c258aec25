//! What a Delta table's readers see, as a manifest: the readers of this tool (`report`, `report
//! --trend`, `--baseline latest`) read a `--table-format delta` output through its table, so that
//! they see what Athena or Spark see — whole published audits, and the files a compaction put in
//! their place — never a part the table does not hold.

use std::collections::{BTreeMap, HashMap};

use super::log::Snapshot;
use crate::dataset::manifest::{EarlierAudit, Manifest, PartEntry};

/// The manifest `m` as its table `snap` publishes it: one audit per `date` value of the table's
/// files (one audit in all when the table is not dated), oldest first, each with the files of the
/// table's latest version; an audit the manifest holds that is not complete stays last, so readers
/// report the latest complete one and say so. A table with no commit yet leaves `m` as it is.
pub(crate) fn published_view(m: Manifest, snap: &Snapshot) -> Manifest {
    if snap.version.is_none() {
        return m;
    }
    let known: HashMap<&str, &PartEntry> = m.all_parts().map(|p| (p.file.as_str(), p)).collect();
    let mut by_date: BTreeMap<Option<String>, Vec<PartEntry>> = BTreeMap::new();
    for (path, f) in &snap.live {
        let entry = match known.get(path.as_str()) {
            Some(p) => (*p).clone(),
            // A file another tool put in the table (a compaction): its size and rows as the log says.
            None => PartEntry {
                file: path.clone(),
                rows: f.rows.unwrap_or(0),
                size: u64::try_from(f.size).ok(),
                xxh3: None,
                stats: None,
            },
        };
        let date = f.partition_values.get("date").cloned().flatten();
        by_date.entry(date).or_default().push(entry);
    }
    let run_of = |date: &Option<String>| {
        m.earlier
            .iter()
            .map(|a| (&a.date, &a.run_id))
            .chain(std::iter::once((&m.date, &m.run_id)))
            .find(|(d, _)| *d == date)
            .and_then(|(_, r)| r.clone())
    };
    let mut audits: Vec<EarlierAudit> = by_date
        .into_iter()
        .map(|(date, parts)| EarlierAudit {
            run_id: run_of(&date),
            pairs: parts.iter().map(|p| p.rows).sum(),
            date,
            parts,
            generation: 0,
        })
        .collect();
    let mut v = m.clone();
    if m.complete || audits.is_empty() {
        // The table's last audit is the current one (a complete audit not yet published is not
        // one its readers see).
        let last = audits.pop();
        v.complete = true;
        v.failed_targets = Vec::new();
        match last {
            Some(a) => {
                v.run_id = a.run_id;
                v.date = a.date;
                v.parts = a.parts;
            }
            None => v.parts = Vec::new(),
        }
    }
    v.earlier = audits;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(commits: &[&str]) -> Snapshot {
        let mut s = Snapshot::default();
        for (v, c) in commits.iter().enumerate() {
            s.apply(v as u64, c).unwrap();
        }
        s
    }

    fn manifest() -> Manifest {
        let mut m = Manifest::new("pairs:1".into(), 10, "parquet");
        m.partition_by = vec!["date".into()];
        m.earlier = vec![EarlierAudit {
            run_id: Some("r1".into()),
            date: Some("2026-12-01".into()),
            pairs: 5,
            parts: vec![PartEntry::new("date=2026-12-01/a.parquet".into(), 5, None)],
            generation: 0,
        }];
        m.run_id = Some("r2".into());
        m.date = Some("2026-12-02".into());
        m.parts = vec![PartEntry::new("date=2026-12-02/b.parquet".into(), 6, None)];
        m
    }

    const DAY1: &str = r#"{"add":{"path":"date=2026-12-01/a.parquet","partitionValues":{"date":"2026-12-01"},"size":1}}"#;
    const DAY2: &str = r#"{"add":{"path":"date=2026-12-02/b.parquet","partitionValues":{"date":"2026-12-02"},"size":1}}"#;

    #[test]
    fn an_audit_in_progress_is_not_what_readers_of_the_table_read() {
        let v = published_view(manifest(), &snap(&[DAY1]));
        // The table holds day 1 only: it is the complete audit, day 2 the one in progress.
        assert_eq!(v.earlier.len(), 1);
        assert_eq!(v.earlier[0].run_id.as_deref(), Some("r1"));
        assert!(!v.complete);
        assert_eq!(v.parts[0].file, "date=2026-12-02/b.parquet");
    }

    #[test]
    fn a_compacted_day_is_read_from_the_files_the_table_names() {
        let mut m = manifest();
        m.complete = true;
        let compaction = r#"{"remove":{"path":"date=2026-12-01/a.parquet"}}
{"add":{"path":"date=2026-12-01/part-00001-c.zstd.parquet","partitionValues":{"date":"2026-12-01"},"size":42,"stats":"{\"numRecords\":5}"}}"#;
        let v = published_view(m, &snap(&[DAY1, DAY2, compaction]));
        assert!(v.complete);
        assert_eq!(v.run_id.as_deref(), Some("r2"));
        assert_eq!(v.parts[0].file, "date=2026-12-02/b.parquet");
        let day1 = &v.earlier[0];
        assert_eq!(
            day1.parts[0].file,
            "date=2026-12-01/part-00001-c.zstd.parquet"
        );
        assert_eq!((day1.parts[0].rows, day1.parts[0].size), (5, Some(42)));
        assert_eq!(day1.pairs, 5);
    }

    #[test]
    fn a_complete_audit_not_yet_published_is_not_read() {
        let mut m = manifest();
        m.complete = true;
        let v = published_view(m, &snap(&[DAY1]));
        assert!(v.complete && v.earlier.is_empty());
        assert_eq!(v.run_id.as_deref(), Some("r1"));
        assert_eq!(v.parts[0].file, "date=2026-12-01/a.parquet");
    }
}
