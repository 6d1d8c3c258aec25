//! Inputs: thing and job lists, or a pairs file, turned into a lazy stream of (thing, job) targets.
//!
//! Reading happens in two passes so that a run of millions of pairs neither holds them in memory nor
//! makes a single call before every line is known good. [`prepare`] validates every line (UTF-8, AWS's
//! naming rules, CSV/JSON shape), fingerprints the file's bytes in the same pass (the input identity),
//! and finds duplicates from a sorted vector of 64-bit line hashes; then
//! [`PreparedInput::targets`] re-reads the files lazily. Lines whose hash occurred more than once are
//! compared by content in that second pass, so a hash collision never drops a pair. Every later pass
//! hashes what it reads too, and one that reaches the end with another fingerprint fails with
//! [`InputError::Changed`]: a file edited during a run is never mistaken for the one validated. Standard input
//! (`-`) is spooled to a temporary file first so it can be read twice.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::names::{is_valid_job_id, is_valid_thing_name, JOB_ID_RULE, THING_NAME_RULE};

/// One pair to describe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub thing_name: String,
    pub job_id: String,
    /// The execution number asked for (from a pairs file), or `None` for the latest.
    pub execution_number: Option<i64>,
}

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
    #[error("{file}:{line}: {reason}")]
    BadRow {
        file: String,
        line: u64,
        reason: String,
    },
    #[error("only one input can be read from standard input (-)")]
    StdinTwice,
    /// The file is not what was validated: it changed while the run read it.
    #[error("{file}: changed while this run was reading it (its content no longer hashes as it did when it was validated); stopped without committing what was read since: run again once it stays put")]
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

/// One readable input: where to read it and how to name it in messages.
#[derive(Debug)]
struct Source {
    display: String,
    path: PathBuf,
    /// Keeps a spooled copy of standard input alive.
    _spool: Option<tempfile::NamedTempFile>,
}

impl Source {
    fn open(p: &Path) -> Result<Source, InputError> {
        if p.as_os_str() == "-" {
            let display = "<stdin>".to_string();
            let mut spool = tempfile::NamedTempFile::new().map_err(|source| InputError::Io {
                file: display.clone(),
                source,
            })?;
            std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut()).map_err(|source| {
                InputError::Io {
                    file: display.clone(),
                    source,
                }
            })?;
            return Ok(Source {
                display,
                path: spool.path().to_path_buf(),
                _spool: Some(spool),
            });
        }
        let display = p.display().to_string();
        // Open now so a missing or unreadable file is reported at once, with its name.
        File::open(p).map_err(|source| InputError::Io {
            file: display.clone(),
            source,
        })?;
        if p.is_dir() {
            return Err(InputError::Io {
                file: display,
                source: std::io::Error::other("is a directory"),
            });
        }
        Ok(Source {
            display,
            path: p.to_path_buf(),
            _spool: None,
        })
    }

    /// Reads the file from the start. `expect`: the xxh3 of its bytes when it was validated; a read
    /// to the end that hashes otherwise ends with [`InputError::Changed`].
    fn lines(&self, expect: Option<u64>) -> Result<Lines, InputError> {
        let f = File::open(&self.path).map_err(|source| InputError::Io {
            file: self.display.clone(),
            source,
        })?;
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 16, f),
            buf: Vec::with_capacity(256),
            line: 0,
            file: self.display.as_str().into(),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            expect,
            at_end: false,
        })
    }
}

/// Significant lines of a file: BOM, CR, surrounding blanks, blank lines and `#` comments removed.
/// Every byte read is hashed on the way, so the pass that validates a file also fingerprints it, and a
/// later pass can tell that the file changed in between.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    line: u64,
    file: std::sync::Arc<str>,
    hash: xxhash_rust::xxh3::Xxh3,
    expect: Option<u64>,
    at_end: bool,
}

impl Lines {
    /// The xxh3 of the bytes read so far (of the whole file once [`Lines::next_line`] gave `None`).
    fn digest(&self) -> u64 {
        self.hash.digest()
    }

    /// The next significant line and its 1-based number.
    fn next_line(&mut self) -> Option<Result<(u64, &str), InputError>> {
        let (start, end) = loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    if self.at_end {
                        return None;
                    }
                    self.at_end = true;
                    return match self.expect {
                        Some(e) if e != self.hash.digest() => Some(Err(InputError::Changed {
                            file: self.file.to_string(),
                        })),
                        _ => None,
                    };
                }
                Ok(_) => self.hash.update(&self.buf),
                Err(source) => {
                    return Some(Err(InputError::Io {
                        file: self.file.to_string(),
                        source,
                    }))
                }
            }
            self.line += 1;
            let mut start = 0;
            if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
            let mut end = self.buf.len();
            while start < end && self.buf[start].is_ascii_whitespace() {
                start += 1;
            }
            while end > start && self.buf[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            if start == end || self.buf[start] == b'#' {
                continue;
            }
            break (start, end);
        };
        let line = self.line;
        Some(match std::str::from_utf8(&self.buf[start..end]) {
            Ok(s) => Ok((line, s)),
            Err(_) => Err(InputError::NotUtf8 {
                file: self.file.to_string(),
                line,
            }),
        })
    }
}

/// Fixed-key hashing so that pass 1 and pass 2 agree.
fn key_hash(parts: &[&str], n: Option<i64>) -> u64 {
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0xff);
    }
    h.write_i64(n.unwrap_or(-1));
    h.finish()
}

/// Hashes that occur more than once in `v` (which is sorted in place).
fn repeated(mut v: Vec<u64>) -> HashSet<u64> {
    v.sort_unstable();
    v.windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect()
}

/// Exact de-duplication given the set of hashes seen more than once.
#[derive(Default)]
struct Dedup {
    suspects: HashSet<u64>,
    seen: HashMap<u64, Vec<String>>,
}

impl Dedup {
    /// Whether the key was seen before (and records it if not).
    fn is_duplicate(&mut self, h: u64, key: impl FnOnce() -> String) -> bool {
        if !self.suspects.contains(&h) {
            return false;
        }
        let k = key();
        let seen = self.seen.entry(h).or_default();
        if seen.contains(&k) {
            true
        } else {
            seen.push(k);
            false
        }
    }
}

fn check_thing(file: &str, line: u64, name: &str) -> Result<(), InputError> {
    if is_valid_thing_name(name) {
        Ok(())
    } else {
        Err(InputError::InvalidName {
            file: file.to_string(),
            line,
            what: "thing name",
            name: name.to_string(),
            rule: THING_NAME_RULE,
        })
    }
}

fn check_job(file: &str, line: u64, id: &str) -> Result<(), InputError> {
    if is_valid_job_id(id) {
        Ok(())
    } else {
        Err(InputError::InvalidName {
            file: file.to_string(),
            line,
            what: "job id",
            name: id.to_string(),
            rule: JOB_ID_RULE,
        })
    }
}

/// Which AWS naming rule a list's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Things,
    Jobs,
}

/// A validated list of names.
struct NameList {
    source: Source,
    kind: ListKind,
    unique: u64,
    duplicates: u64,
    suspects: HashSet<u64>,
    /// xxh3 of the file's bytes as validated.
    content: u64,
}

impl NameList {
    fn prepare(source: Source, kind: ListKind) -> Result<NameList, InputError> {
        let mut lines = source.lines(None)?;
        let mut hashes = Vec::new();
        while let Some(r) = lines.next_line() {
            let (line, name) = r?;
            match kind {
                ListKind::Things => check_thing(&source.display, line, name)?,
                ListKind::Jobs => check_job(&source.display, line, name)?,
            }
            hashes.push(key_hash(&[name], None));
        }
        let content = lines.digest();
        drop(lines);
        let lines_total = hashes.len() as u64;
        if lines_total == 0 {
            return Err(InputError::Empty {
                file: source.display.clone(),
                what: match kind {
                    ListKind::Things => "thing names",
                    ListKind::Jobs => "job ids",
                },
            });
        }
        let suspects = repeated(hashes);
        let mut list = NameList {
            source,
            kind,
            unique: lines_total,
            duplicates: 0,
            suspects,
            content,
        };
        if !list.suspects.is_empty() {
            let mut unique = 0;
            let mut it = list.iter()?;
            while let Some(r) = it.next_name() {
                r?;
                unique += 1;
            }
            list.unique = unique;
            list.duplicates = lines_total - unique;
        }
        Ok(list)
    }

    fn iter(&self) -> Result<NameIter, InputError> {
        let lines = self.source.lines(Some(self.content))?;
        Ok(NameIter {
            file: lines.file.clone(),
            lines,
            kind: self.kind,
            dedup: Dedup {
                suspects: self.suspects.clone(),
                seen: HashMap::new(),
            },
        })
    }
}

struct NameIter {
    file: std::sync::Arc<str>,
    lines: Lines,
    kind: ListKind,
    dedup: Dedup,
}

impl NameIter {
    fn next_name(&mut self) -> Option<Result<String, InputError>> {
        loop {
            let (line, name) = match self.lines.next_line()? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            let file = &*self.file;
            let checked = match self.kind {
                ListKind::Things => check_thing(file, line, name),
                ListKind::Jobs => check_job(file, line, name),
            };
            if let Err(e) = checked {
                return Some(Err(e));
            }
            let h = key_hash(&[name], None);
            let name = name.to_string();
            if self.dedup.is_duplicate(h, || name.clone()) {
                continue;
            }
            return Some(Ok(name));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairsFormat {
    Csv {
        thing: usize,
        job: usize,
        number: Option<usize>,
        columns: usize,
    },
    JsonLines,
}

/// A validated pairs file.
struct PairsFile {
    source: Source,
    format: PairsFormat,
    /// xxh3 of the file's bytes as validated (`None` until the validating pass is done).
    content: Option<u64>,
    unique: u64,
    duplicates: u64,
    suspects: HashSet<u64>,
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur).trim().to_string());
            at_start = true;
        } else {
            if !c.is_whitespace() {
                at_start = false;
            }
            cur.push(c);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

fn parse_number(file: &str, line: u64, s: &str) -> Result<Option<i64>, InputError> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(InputError::BadRow {
            file: file.to_string(),
            line,
            reason: format!("execution_number {s:?} is not a non-negative integer"),
        }),
    }
}

impl PairsFile {
    fn prepare(source: Source) -> Result<PairsFile, InputError> {
        let ext = source
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let declared = match (source._spool.is_some(), ext.as_deref()) {
            (false, Some("jsonl" | "ndjson" | "json")) => Some(true),
            (false, Some("csv")) => Some(false),
            _ => None,
        };
        let mut lines = source.lines(None)?;
        let Some(first) = lines.next_line() else {
            return Err(InputError::Empty {
                file: source.display.clone(),
                what: "pairs",
            });
        };
        let (first_line, first_text) = first?;
        let json = declared.unwrap_or_else(|| first_text.starts_with('{'));
        let format = if json {
            PairsFormat::JsonLines
        } else {
            let header = split_csv(first_text).map_err(|reason| InputError::BadRow {
                file: source.display.clone(),
                line: first_line,
                reason,
            })?;
            let pos = |n: &str| header.iter().position(|h| h == n);
            match (pos("thing_name"), pos("job_id")) {
                (Some(thing), Some(job)) => PairsFormat::Csv {
                    thing,
                    job,
                    number: pos("execution_number"),
                    columns: header.len(),
                },
                _ => {
                    return Err(InputError::MissingColumns {
                        file: source.display.clone(),
                        line: first_line,
                        header: first_text.to_string(),
                    })
                }
            }
        };
        drop(lines);
        let mut pf = PairsFile {
            source,
            format,
            content: None,
            unique: 0,
            duplicates: 0,
            suspects: HashSet::new(),
        };
        let mut hashes = Vec::new();
        {
            let mut it = pf.raw_iter()?;
            while let Some(r) = it.next_raw() {
                let t = r?;
                hashes.push(key_hash(&[&t.thing_name, &t.job_id], t.execution_number));
            }
            pf.content = Some(it.lines.digest());
        }
        let total = hashes.len() as u64;
        if total == 0 {
            return Err(InputError::Empty {
                file: pf.source.display.clone(),
                what: "pairs",
            });
        }
        pf.suspects = repeated(hashes);
        pf.unique = total;
        if !pf.suspects.is_empty() {
            let mut unique = 0;
            for r in pf.iter()? {
                r?;
                unique += 1;
            }
            pf.unique = unique;
            pf.duplicates = total - unique;
        }
        Ok(pf)
    }

    fn raw_iter(&self) -> Result<PairsIter, InputError> {
        let mut lines = self.source.lines(self.content)?;
        if matches!(self.format, PairsFormat::Csv { .. }) {
            // Skip the header.
            if let Some(r) = lines.next_line() {
                r?;
            }
        }
        Ok(PairsIter {
            lines,
            format: self.format,
            dedup: None,
        })
    }

    fn iter(&self) -> Result<PairsIter, InputError> {
        let mut it = self.raw_iter()?;
        it.dedup = Some(Dedup {
            suspects: self.suspects.clone(),
            seen: HashMap::new(),
        });
        Ok(it)
    }
}

#[derive(serde::Deserialize)]
struct JsonPair {
    thing_name: String,
    job_id: String,
    #[serde(default)]
    execution_number: Option<i64>,
}

struct PairsIter {
    lines: Lines,
    format: PairsFormat,
    dedup: Option<Dedup>,
}

impl PairsIter {
    fn parse(&self, line: u64, text: &str) -> Result<Target, InputError> {
        let file = &*self.lines.file;
        let bad = |reason: String| InputError::BadRow {
            file: file.to_string(),
            line,
            reason,
        };
        let t = match self.format {
            PairsFormat::JsonLines => {
                let p: JsonPair = serde_json::from_str(text).map_err(|e| {
                    bad(format!(
                        "not a JSON object with string keys thing_name and job_id: {e}"
                    ))
                })?;
                if p.execution_number.is_some_and(|n| n < 0) {
                    return Err(bad("execution_number must be non-negative".into()));
                }
                Target {
                    thing_name: p.thing_name,
                    job_id: p.job_id,
                    execution_number: p.execution_number,
                }
            }
            PairsFormat::Csv {
                thing,
                job,
                number,
                columns,
            } => {
                let f = split_csv(text).map_err(bad)?;
                if f.len() != columns {
                    return Err(bad(format!(
                        "expected {columns} CSV fields as in the header, found {}",
                        f.len()
                    )));
                }
                Target {
                    thing_name: f[thing].clone(),
                    job_id: f[job].clone(),
                    execution_number: match number {
                        Some(n) => parse_number(file, line, &f[n])?,
                        None => None,
                    },
                }
            }
        };
        check_thing(file, line, &t.thing_name)?;
        check_job(file, line, &t.job_id)?;
        Ok(t)
    }

    fn next_raw(&mut self) -> Option<Result<Target, InputError>> {
        let (line, text) = match self.lines.next_line()? {
            Ok((l, t)) => (l, t.to_string()),
            Err(e) => return Some(Err(e)),
        };
        Some(self.parse(line, &text))
    }
}

impl Iterator for PairsIter {
    type Item = Result<Target, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let t = match self.next_raw()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            if let Some(d) = &mut self.dedup {
                let h = key_hash(&[&t.thing_name, &t.job_id], t.execution_number);
                if d.is_duplicate(h, || {
                    format!(
                        "{}\u{0}{}\u{0}{:?}",
                        t.thing_name, t.job_id, t.execution_number
                    )
                }) {
                    continue;
                }
            }
            return Some(Ok(t));
        }
    }
}

/// One validated, de-duplicated list of names (for discovery), streamed lazily.
pub struct Names {
    list: NameList,
    identity: String,
}

/// Validates every line of a list of thing names or job ids (`-` reads stdin).
pub fn prepare_names(path: &Path, kind: ListKind) -> Result<Names, InputError> {
    let list = NameList::prepare(Source::open(path)?, kind)?;
    let identity = format!("{:016x}", list.content);
    Ok(Names { list, identity })
}

impl Names {
    /// Distinct names.
    pub fn len(&self) -> u64 {
        self.list.unique
    }

    pub fn is_empty(&self) -> bool {
        self.list.unique == 0
    }

    /// Duplicate lines dropped.
    pub fn duplicates(&self) -> u64 {
        self.list.duplicates
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
    identity: String,
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
            let identity = format!(
                "lists:things={:016x}:jobs={:016x}",
                things.content, job_list.content
            );
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
                identity,
            })
        }
        InputSpec::Pairs(p) => {
            let pairs = PairsFile::prepare(Source::open(p)?)?;
            let identity = format!("pairs:{:016x}", pairs.content.unwrap_or_default());
            Ok(PreparedInput {
                kind: Prepared::Pairs(pairs),
                identity,
            })
        }
    }
}

impl PreparedInput {
    /// A fingerprint of the inputs' content (`lists:things=..:jobs=..` or `pairs:..`): the same files
    /// give the same identity, and so the same targets in the same order.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Number of distinct pairs the targets will yield.
    pub fn total(&self) -> u64 {
        match &self.kind {
            Prepared::Lists { things, jobs, .. } => things.unique * jobs.len() as u64,
            Prepared::Pairs(p) => p.unique,
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
    pub fn targets(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<Target, InputError>> + Send>, InputError> {
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
                            return Some(Ok(Target {
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

/// Reads all of a small file (used for `--cli-input-json`/`yaml`).
pub fn read_small(path: &Path) -> Result<String, InputError> {
    let file = path.display().to_string();
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|source| InputError::Io { file, source })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(body).unwrap();
        p
    }

    fn all(p: &PreparedInput) -> Vec<Target> {
        p.targets().unwrap().map(|r| r.unwrap()).collect()
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
        assert!(e.contains("r.csv:2") && e.contains("non-negative"), "{e}");
    }

    #[test]
    fn json_lines_pairs() {
        let d = tempfile::tempdir().unwrap();
        let p = file(
            &d,
            "p.jsonl",
            b"{\"thing_name\":\"t1\",\"job_id\":\"j1\"}\n{\"thing_name\":\"t1\",\"job_id\":\"j1\",\"execution_number\":2,\"extra\":true}\n",
        );
        let prep = prepare(&InputSpec::Pairs(p)).unwrap();
        assert_eq!(prep.total(), 2);
        assert_eq!(all(&prep)[1].execution_number, Some(2));
        let p = file(&d, "b.jsonl", b"{\"thing_name\":\"t1\"}\n");
        let e = prepare(&InputSpec::Pairs(p)).err().unwrap().to_string();
        assert!(e.contains("b.jsonl:1"), "{e}");
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
