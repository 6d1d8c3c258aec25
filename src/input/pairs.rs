//! Pairs files: CSV with a header naming `thing_name`, `job_id` (and optionally `execution_number`),
//! or JSON Lines with those keys, validated and de-duplicated.

use std::collections::{HashMap, HashSet};

use super::dedup::{distinct, repeated, Dedup};
use super::lines::{clip, Lines, Source};
use super::lists::{check_job, check_thing};
use super::InputError;
use crate::input::pair::Pair;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairsFormat {
    Csv {
        thing: usize,
        job: usize,
        number: Option<usize>,
        columns: usize,
    },
    JsonLines,
}

/// A validated pairs file.
pub(super) struct PairsFile {
    pub(super) source: Source,
    pub(super) format: PairsFormat,
    /// xxh3 of the file's bytes as validated (`None` until the validating pass is done).
    pub(super) content: Option<u64>,
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) suspects: HashSet<u64>,
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
pub(super) fn split_csv(line: &str) -> Result<Vec<String>, String> {
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

pub(super) fn parse_number(file: &str, line: u64, s: &str) -> Result<Option<i64>, InputError> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(InputError::BadRow {
            file: file.to_string(),
            line,
            reason: format!(
                "execution_number {:?} is not an integer of at least 1 (execution numbers start at 1)",
                clip(s, QUOTED)
            ),
        }),
    }
}

/// The most bytes of a header, a field or a parser's message quoted in a message.
const QUOTED: usize = 160;

/// The columns of a CSV header: thing_name and job_id, optionally execution_number, each once and
/// nothing else. `Err(None)`: thing_name or job_id is missing; `Err(Some(problem))`: a column
/// unknown or named twice.
fn csv_format(header: &[String]) -> Result<PairsFormat, Option<String>> {
    let pos = |n: &str| header.iter().position(|h| h == n);
    let (Some(thing), Some(job)) = (pos("thing_name"), pos("job_id")) else {
        return Err(None);
    };
    for (i, h) in header.iter().enumerate() {
        if !matches!(h.as_str(), "thing_name" | "job_id" | "execution_number") {
            return Err(Some(format!("unknown column {:?}", clip(h, QUOTED))));
        }
        if header[..i].contains(h) {
            return Err(Some(format!("{h:?} is named twice")));
        }
    }
    Ok(PairsFormat::Csv {
        thing,
        job,
        number: pos("execution_number"),
        columns: header.len(),
    })
}

impl PairsFile {
    pub(super) fn prepare(source: Source) -> Result<PairsFile, InputError> {
        let declared = match source.ext.as_deref() {
            Some("jsonl" | "ndjson" | "json") => Some(true),
            Some("csv") => Some(false),
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
            csv_format(&header).map_err(|problem| match problem {
                None => InputError::MissingColumns {
                    file: source.display.clone(),
                    line: first_line,
                    header: clip(first_text, QUOTED),
                },
                Some(problem) => InputError::BadHeader {
                    file: source.display.clone(),
                    line: first_line,
                    problem,
                },
            })?
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
                hashes.push(t.line_hash());
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
        (pf.unique, pf.duplicates) = distinct(total, &pf.suspects, || pf.iter())?;
        Ok(pf)
    }

    pub(super) fn raw_iter(&self) -> Result<PairsIter, InputError> {
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

    pub(super) fn iter(&self) -> Result<PairsIter, InputError> {
        let mut it = self.raw_iter()?;
        it.dedup = Some(Dedup {
            suspects: self.suspects.clone(),
            seen: HashMap::new(),
        });
        Ok(it)
    }
}

/// One JSON Lines pair: exactly these keys, each once (an unknown key, a misspelt
/// `execution_numbr`, is refused as an unknown CSV column is, rather than silently ignored).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JsonPair {
    pub(super) thing_name: String,
    pub(super) job_id: String,
    #[serde(default)]
    pub(super) execution_number: Option<i64>,
}

pub(super) struct PairsIter {
    pub(super) lines: Lines,
    pub(super) format: PairsFormat,
    pub(super) dedup: Option<Dedup>,
}

impl PairsIter {
    pub(super) fn parse(&self, line: u64, text: &str) -> Result<Pair, InputError> {
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
                        "not a JSON object with the string keys thing_name and job_id (and optionally the integer execution_number), each once: {}",
                        clip(&e.to_string(), QUOTED)
                    ))
                })?;
                if p.execution_number.is_some_and(|n| n < 1) {
                    return Err(bad(
                        "execution_number must be at least 1 (execution numbers start at 1)".into(),
                    ));
                }
                Pair {
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
                Pair {
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

    pub(super) fn next_raw(&mut self) -> Option<Result<Pair, InputError>> {
        let (line, text) = match self.lines.next_line()? {
            Ok((l, t)) => (l, t.to_string()),
            Err(e) => return Some(Err(e)),
        };
        Some(self.parse(line, &text))
    }
}

impl Iterator for PairsIter {
    type Item = Result<Pair, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let t = match self.next_raw()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            if let Some(d) = &mut self.dedup {
                let h = t.line_hash();
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
