//! Inputs: thing and job lists, or a pairs file, turned into a lazy stream of (thing, job) pairs.
//!
//! Reading happens in two passes so that a run of millions of pairs neither holds them in memory nor
//! makes a single call before every line is known good. [`prepare`] validates every line (UTF-8, AWS's
//! naming rules, CSV/JSON shape), fingerprints the file's bytes in the same pass (the input identity),
//! and finds duplicates from a sorted vector of 64-bit line hashes; then
//! [`PreparedInput::pairs`] re-reads the files lazily. Lines whose hash occurred more than once are
//! compared by content in that second pass, so a hash collision never drops a pair. Every later pass
//! hashes what it reads too, and one that reaches the end with another fingerprint fails with
//! [`InputError::Changed`]: a file edited during a run is never mistaken for the one validated. Standard input
//! (`-`), and any input that is not a regular file (a FIFO, `/dev/stdin`, a process substitution), is
//! spooled to a temporary file first so it can be read twice. No line may be longer than
//! [`MAX_LINE`] bytes.

//!
//! Parts: `lines` (a file's significant lines, hashed as they are read), `lists` (thing and job
//! lists), `pairs` (CSV and JSON Lines pairs files), `dedup` (exact de-duplication).

mod dedup;
pub(crate) mod identity;
mod lines;
mod lists;
pub(crate) mod names;
pub(crate) mod pair;
mod pairs;
pub mod shard;

use std::path::{Path, PathBuf};

use crate::input::pair::Pair;

use lines::Source;
pub(crate) use lines::MAX_LINE;

/// The rule a pairs file's CSV header keeps.
pub(crate) const COLUMNS_RULE: &str =
    "the columns are thing_name, job_id and optionally execution_number, each named once";
use lists::NameList;
use pairs::PairsFile;

pub(crate) use lists::ListKind;

/// Input errors; each names the file (and the line, where there is one) and the rule broken.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: not valid UTF-8")]
    NotUtf8 { file: String, line: u64 },
    /// A line over [`MAX_LINE`] bytes: only its start is read and quoted.
    #[error("{file}:{line}: a line may hold at most {MAX_LINE} bytes (64 KiB); this one is longer (it starts {start:?})")]
    LineTooLong {
        file: String,
        line: u64,
        start: String,
    },
    #[error("{file}:{line}: invalid {what} {name:?}: {rule}")]
    InvalidName {
        file: String,
        line: u64,
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error("{file}: no {what} in the file (it is empty or holds only blank lines and comments)")]
    Empty { file: String, what: &'static str },
    #[error("{file}:{line}: the CSV header must name the columns thing_name and job_id (optionally execution_number); found {header:?}")]
    MissingColumns {
        file: String,
        line: u64,
        header: String,
    },
    /// A CSV header with a column it does not know, or a column twice.
    #[error("{file}:{line}: {problem} in the CSV header: {COLUMNS_RULE}")]
    BadHeader {
        file: String,
        line: u64,
        problem: String,
    },
    #[error("{file}:{line}: {reason}")]
    BadRow {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("only one input can be read from standard input (-)")]
    StdinTwice,
    /// The file is not what was validated: it changed while the run read it.
    #[error("{file}: changed while this run was reading it (its content no longer hashes as it did when it was validated); stopped, committing nothing more: start again with --overwrite once the file stays put")]
    Changed { file: String },
}

/// What the user gave.
#[derive(Debug, Clone)]
pub enum InputSpec {
    /// The cross product of a things list and a jobs list.
    Lists { things: PathBuf, jobs: PathBuf },
    /// A CSV or JSON Lines file of pairs.
    Pairs(PathBuf),
}

/// One validated, de-duplicated list of names (for discovery), streamed lazily.
pub(crate) struct Names {
    list: NameList,
    identity: String,
}

/// Validates every line of a list of thing names or job ids (`-` reads stdin).
pub(crate) fn prepare_names(path: &Path, kind: ListKind) -> Result<Names, InputError> {
    let list = NameList::prepare(Source::open(path)?, kind)?;
    let identity = format!("{:016x}", list.content);
    Ok(Names { list, identity })
}

impl Names {
    /// Distinct names.
    pub fn len(&self) -> u64 {
        self.list.unique
    }

    /// A fingerprint of the file's content.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The distinct names in file order.
    pub fn iter(
        &self,
    ) -> Result<impl Iterator<Item = Result<String, InputError>> + Send, InputError> {
        let mut it = self.list.iter()?;
        Ok(std::iter::from_fn(move || it.next_name()))
    }
}

/// Inputs validated and counted, ready to be streamed.
pub struct PreparedInput {
    kind: Prepared,
    source: identity::Source,
}

enum Prepared {
    Lists {
        things: NameList,
        jobs: Vec<String>,
        job_duplicates: u64,
    },
    Pairs(PairsFile),
}

/// Validates every line of the inputs. Nothing is called before this returns `Ok`.
pub fn prepare(spec: &InputSpec) -> Result<PreparedInput, InputError> {
    match spec {
        InputSpec::Lists { things, jobs } => {
            if things.as_os_str() == "-" && jobs.as_os_str() == "-" {
                return Err(InputError::StdinTwice);
            }
            let things_src = Source::open(things)?;
            let jobs_src = Source::open(jobs)?;
            let job_list = NameList::prepare(jobs_src, ListKind::Jobs)?;
            let things = NameList::prepare(things_src, ListKind::Things)?;
            // The fingerprints of the validating pass: every later pass checks it reads the same.
            let source = identity::Source::Lists {
                things: format!("{:016x}", things.content),
                jobs: format!("{:016x}", job_list.content),
            };
            let mut ids = Vec::with_capacity(job_list.unique as usize);
            let mut it = job_list.iter()?;
            while let Some(r) = it.next_name() {
                ids.push(r?);
            }
            Ok(PreparedInput {
                kind: Prepared::Lists {
                    things,
                    jobs: ids,
                    job_duplicates: job_list.duplicates,
                },
                source,
            })
        }
        InputSpec::Pairs(p) => {
            let pairs = PairsFile::prepare(Source::open(p)?)?;
            let source = identity::Source::Pairs {
                content: format!("{:016x}", pairs.content.unwrap_or_default()),
            };
            Ok(PreparedInput {
                kind: Prepared::Pairs(pairs),
                source,
            })
        }
    }
}

impl PreparedInput {
    /// The inputs' content fingerprints (an [`identity::InputIdentity`]'s source): the same files
    /// give the same source, and so the same targets in the same order.
    pub fn source(&self) -> &identity::Source {
        &self.source
    }

    /// Number of distinct pairs the targets will yield.
    pub fn total(&self) -> u64 {
        match &self.kind {
            Prepared::Lists { things, jobs, .. } => things.unique * jobs.len() as u64,
            Prepared::Pairs(p) => p.unique,
        }
    }

    /// The distinct things and jobs of lists; of a pairs file, its pairs (a bound of its things)
    /// and no count of jobs (not known before it is read).
    pub fn things_and_jobs(&self) -> (u64, Option<u64>, bool) {
        match &self.kind {
            Prepared::Lists { things, jobs, .. } => (things.unique, Some(jobs.len() as u64), false),
            Prepared::Pairs(p) => (p.unique, None, true),
        }
    }

    /// Duplicate lines dropped (names in lists, pairs in a pairs file).
    pub fn duplicates(&self) -> u64 {
        match &self.kind {
            Prepared::Lists {
                things,
                job_duplicates,
                ..
            } => things.duplicates + job_duplicates,
            Prepared::Pairs(p) => p.duplicates,
        }
    }

    /// The distinct pairs, lazily: things in file order, and for each thing every job.
    pub fn pairs(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<Pair, InputError>> + Send>, InputError> {
        match &self.kind {
            Prepared::Lists { things, jobs, .. } => {
                let mut names = things.iter()?;
                let jobs = jobs.clone();
                let mut current: Option<String> = None;
                let mut j = 0usize;
                Ok(Box::new(std::iter::from_fn(move || loop {
                    if let Some(t) = &current {
                        if j < jobs.len() {
                            j += 1;
                            return Some(Ok(Pair {
                                thing_name: t.clone(),
                                job_id: jobs[j - 1].clone(),
                                execution_number: None,
                            }));
                        }
                    }
                    match names.next_name()? {
                        Ok(n) => {
                            current = Some(n);
                            j = 0;
                        }
                        Err(e) => return Some(Err(e)),
                    }
                })))
            }
            Prepared::Pairs(p) => Ok(Box::new(p.iter()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::dedup::Dedup;
    use super::pairs::split_csv;
    use super::*;
    use crate::input::names::{JOB_ID_RULE, THING_NAME_RULE};
    use std::io::Write;

    fn file(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(body).unwrap();
        p
    }

    fn all(p: &PreparedInput) -> Vec<Pair> {
        p.pairs().unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn lists_skip_comments_blanks_bom_crlf_and_drop_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let things = file(
            &d,
            "things.txt",
            b"\xEF\xBB\xBFthing-1\r\n# comment\r\n\r\n  thing-2 \r\nthing-1\r\n",
        );
        let jobs = file(&d, "jobs.txt", b"job-a\njob-b\njob-a\n");
        let p = prepare(&InputSpec::Lists { things, jobs }).unwrap();
        assert_eq!(p.total(), 4);
        assert_eq!(p.duplicates(), 2);
        let t = all(&p);
        let names: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.thing_name.as_str(), t.job_id.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("thing-1", "job-a"),
                ("thing-1", "job-b"),
                ("thing-2", "job-a"),
                ("thing-2", "job-b")
            ]
        );
    }

    #[test]
    fn a_bad_name_names_file_line_and_rule() {
        let d = tempfile::tempdir().unwrap();
        let things = file(&d, "things.txt", b"ok-1\n\nbad name\n");
        let jobs = file(&d, "jobs.txt", b"job-a\n");
        let e = prepare(&InputSpec::Lists { things, jobs })
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("things.txt:3"), "{e}");
        assert!(e.contains("\"bad name\""), "{e}");
        assert!(e.contains(THING_NAME_RULE), "{e}");
    }

    #[test]
    fn job_ids_may_not_hold_colons() {
        let d = tempfile::tempdir().unwrap();
        let things = file(&d, "t.txt", b"a:b\n");
        let jobs = file(&d, "j.txt", b"job:1\n");
        let e = prepare(&InputSpec::Lists { things, jobs })
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("j.txt:1") && e.contains(JOB_ID_RULE), "{e}");
    }

    #[test]
    fn not_utf8_empty_and_missing_files_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let jobs = file(&d, "j.txt", b"job-a\n");
        let bad = file(&d, "t.txt", b"ok\n\xff\xfe\n");
        let e = prepare(&InputSpec::Lists {
            things: bad,
            jobs: jobs.clone(),
        })
        .err()
        .unwrap();
        assert!(matches!(e, InputError::NotUtf8 { line: 2, .. }), "{e}");
        let empty = file(&d, "e.txt", b"# nothing\n\n");
        let e = prepare(&InputSpec::Lists {
            things: empty,
            jobs: jobs.clone(),
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("e.txt: no thing names"), "{e}");
        let e = prepare(&InputSpec::Lists {
            things: d.path().join("missing.txt"),
            jobs,
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("missing.txt: cannot read"), "{e}");
    }

    #[test]
    fn csv_pairs_with_any_column_order_and_execution_numbers() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "pairs.csv",
            b"job_id,execution_number,thing_name\njob-1,,t1\njob-1,3,t2\n\"job-2\",,t1\njob-1,,t1\n",
        );
        let prep = prepare(&InputSpec::Pairs(p)).unwrap();
        assert_eq!(prep.total(), 3);
        assert_eq!(prep.duplicates(), 1);
        let t = all(&prep);
        assert_eq!(t[1].execution_number, Some(3));
        assert_eq!(t[2].job_id, "job-2");
    }

    #[test]
    fn csv_without_needed_columns_or_with_bad_rows_fails() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "p.csv", b"thing,job\nt1,j1\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap();
        assert!(
            matches!(e, InputError::MissingColumns { line: 1, .. }),
            "{e}"
        );
        let p = file(&d, "q.csv", b"thing_name,job_id\nt1,j1\nt2\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("q.csv:3") && e.contains("expected 2 CSV fields"),
            "{e}"
        );
        let p = file(
            &d,
            "r.csv",
            b"thing_name,job_id,execution_number\nt1,j1,-4\n",
        );
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(e.contains("r.csv:2") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn json_lines_pairs() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "p.jsonl",
            b"{\"thing_name\":\"t1\",\"job_id\":\"j1\"}\n{\"thing_name\":\"t1\",\"job_id\":\"j1\",\"execution_number\":2}\n",
        );
        let prep = prepare(&InputSpec::Pairs(p)).unwrap();
        assert_eq!(prep.total(), 2);
        assert_eq!(all(&prep)[1].execution_number, Some(2));
        let p = file(&d, "b.jsonl", b"{\"thing_name\":\"t1\"}\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(e.contains("b.jsonl:1"), "{e}");
    }

    #[test]
    fn csv_headers_name_each_known_column_once() {
        let d = tempfile::tempdir().unwrap();
        let p = file(&d, "dup.csv", b"thing_name,job_id,job_id\nt1,j1,j2\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("dup.csv:1:") && e.contains("\"job_id\" is named twice"),
            "{e}"
        );
        let p = file(&d, "unk.csv", b"thing_name,job_id,colour\nt1,j1,red\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("unk.csv:1:") && e.contains("unknown column \"colour\""),
            "{e}"
        );
    }

    #[test]
    fn execution_numbers_start_at_one() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "z.csv",
            b"thing_name,job_id,execution_number\nt1,j1,1\nt1,j1,0\n",
        );
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(e.contains("z.csv:3:") && e.contains("at least 1"), "{e}");
        let p = file(
            &d,
            "z.jsonl",
            b"{\"thing_name\":\"t1\",\"job_id\":\"j1\",\"execution_number\":0}\n",
        );
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(e.contains("z.jsonl:1:") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn json_lines_refuse_unknown_and_repeated_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "u.jsonl",
            b"{\"thing_name\":\"t1\",\"job_id\":\"j1\",\"execution_numbr\":2}\n",
        );
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("u.jsonl:1:") && e.contains("unknown field `execution_numbr`"),
            "{e}"
        );
        let p = file(
            &d,
            "r.jsonl",
            b"{\"thing_name\":\"t1\",\"job_id\":\"j1\",\"job_id\":\"j2\"}\n",
        );
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("r.jsonl:1:") && e.contains("duplicate field `job_id`"),
            "{e}"
        );
    }

    #[test]
    fn a_line_over_the_cap_is_refused_quoting_only_its_start() {
        let d = tempfile::tempdir().unwrap();
        let jobs = file(&d, "j.txt", b"job-a\n");
        let mut body = b"thing-1\n".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body.push(b'\n');
        let things = file(&d, "big.txt", &body);
        let e = prepare(&InputSpec::Lists { things, jobs })
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("big.txt:2:") && e.contains("65536 bytes"),
            "{}",
            &e[..e.len().min(300)]
        );
        assert!(e.len() < 300, "{} bytes of message", e.len());
        // A long line under the cap is an invalid name, quoted short too.
        let jobs = file(&d, "j2.txt", b"job-a\n");
        let things = file(&d, "long.txt", &[b'b'; 60_000]);
        let e = prepare(&InputSpec::Lists { things, jobs })
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("long.txt:1: invalid thing name"),
            "{}",
            &e[..e.len().min(300)]
        );
        assert!(e.len() < 400, "{} bytes of message", e.len());
        // A header and a JSON reason are quoted short as well.
        let mut header = b"thing_name,job_id,".to_vec();
        header.extend([b'c'; 60_000]);
        header.push(b'\n');
        let p = file(&d, "wide.csv", &header);
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("wide.csv:1:") && e.len() < 400,
            "{}",
            &e[..e.len().min(300)]
        );
        let mut j = b"{\"thing_name\":\"t\",\"job_id\":\"".to_vec();
        j.extend([b'x'; 60_000]);
        j.extend(b"\"}\n");
        let p = file(&d, "long.jsonl", &j);
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(
            e.contains("long.jsonl:1:") && e.len() < 400,
            "{}",
            &e[..e.len().min(300)]
        );
    }

    #[test]
    fn dedup_is_exact_when_hashes_repeat() {
        let mut d = Dedup {
            suspects: [7].into_iter().collect(),
            seen: HashMap::new(),
        };
        // Two different keys with the same hash are both kept; a true repeat is dropped.
        assert!(!d.is_duplicate(7, || "a".into()));
        assert!(!d.is_duplicate(7, || "b".into()));
        assert!(d.is_duplicate(7, || "a".into()));
        assert!(!d.is_duplicate(8, || "a".into()));
    }

    #[test]
    fn split_csv_handles_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\"").unwrap(),
            ["a", "b,c", "d\"e"]
        );
        assert!(split_csv("\"open").is_err());
    }
}
