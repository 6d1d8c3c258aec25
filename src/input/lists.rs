//! Thing and job lists: one name a line, validated against AWS's naming rules and de-duplicated.

use std::collections::{HashMap, HashSet};

use super::dedup::{distinct, repeated, Dedup};
use super::lines::{clip, Lines, Source};
use super::InputError;
use crate::input::names::{is_valid_job_id, is_valid_thing_name, JOB_ID_RULE, THING_NAME_RULE};
use crate::input::pair::name_hash;

/// The most bytes of an invalid name quoted in its message (a valid one is at most 128).
const QUOTED_NAME: usize = 160;

pub(super) fn check_thing(file: &str, line: u64, name: &str) -> Result<(), InputError> {
    if is_valid_thing_name(name) {
        Ok(())
    } else {
        Err(InputError::InvalidName {
            file: file.to_string(),
            line,
            what: "thing name",
            name: clip(name, QUOTED_NAME),
            rule: THING_NAME_RULE,
        })
    }
}

pub(super) fn check_job(file: &str, line: u64, id: &str) -> Result<(), InputError> {
    if is_valid_job_id(id) {
        Ok(())
    } else {
        Err(InputError::InvalidName {
            file: file.to_string(),
            line,
            what: "job id",
            name: clip(id, QUOTED_NAME),
            rule: JOB_ID_RULE,
        })
    }
}

/// Which AWS naming rule a list's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    Things,
    Jobs,
}

/// A validated list of names.
pub(super) struct NameList {
    pub(super) source: Source,
    pub(super) kind: ListKind,
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) suspects: HashSet<u64>,
    /// xxh3 of the file's bytes as validated.
    pub(super) content: u64,
}

impl NameList {
    pub(super) fn prepare(source: Source, kind: ListKind) -> Result<NameList, InputError> {
        let mut lines = source.lines(None)?;
        let mut hashes = Vec::new();
        while let Some(r) = lines.next_line() {
            let (line, name) = r?;
            match kind {
                ListKind::Things => check_thing(&source.display, line, name)?,
                ListKind::Jobs => check_job(&source.display, line, name)?,
            }
            hashes.push(name_hash(name));
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
        let mut list = NameList {
            source,
            kind,
            unique: lines_total,
            duplicates: 0,
            suspects: repeated(hashes),
            content,
        };
        (list.unique, list.duplicates) = distinct(lines_total, &list.suspects, || list.iter())?;
        Ok(list)
    }

    pub(super) fn iter(&self) -> Result<NameIter, InputError> {
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

pub(super) struct NameIter {
    pub(super) file: std::sync::Arc<str>,
    pub(super) lines: Lines,
    pub(super) kind: ListKind,
    pub(super) dedup: Dedup,
}

impl NameIter {
    pub(super) fn next_name(&mut self) -> Option<Result<String, InputError>> {
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
            let h = name_hash(name);
            let name = name.to_string();
            if self.dedup.is_duplicate(h, || name.clone()) {
                continue;
            }
            return Some(Ok(name));
        }
    }
}

impl Iterator for NameIter {
    type Item = Result<String, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_name()
    }
}
