//! The plan file: what a person reviews, a pull request holds, and `apply` carries out.
//!
//! JSON Lines. The first line is the header (the audit it was made from, when, the selectors, the
//! counts, and `actions_sha256`: the SHA-256 of every byte after the header's line, so that
//! `tail -n +2 PLAN | sha256sum` checks it by hand); then one action a line, numbered from 1. A plan
//! edited after it was written no longer matches its checksum, and `apply` refuses it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PlanError;

/// The plan format this build writes and reads.
pub const PLAN_FORMAT: u32 = 1;

/// The audit a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRef {
    /// As the user named it.
    pub path: String,
    /// The runs whose rows the plan acts on.
    pub run_ids: Vec<String>,
    /// When the oldest row acted on was read (RFC 3339): the plan's age is counted from it.
    pub audited_at: String,
    /// The same, epoch milliseconds.
    pub audited_at_ms: i64,
}

/// How the actions were chosen, as the flags said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    pub classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub things: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// `--cause`: only stuck executions of these causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    pub queued_after: String,
    pub stale_after: String,
    pub near_timeout: String,
}

/// One count line of the header: actions of a job, target, action and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct CountLine {
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub job_id: String,
    pub action: String,
    pub class: String,
    pub count: u64,
}

/// The plan's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub fleet_audit_plan: u32,
    pub plan_id: String,
    pub created_at: String,
    pub audit: AuditRef,
    pub selectors: Selectors,
    /// `cancel` or `delete`.
    pub action: String,
    /// Whether active executions (IN_PROGRESS for a cancel, any for a delete) were admitted.
    pub force: bool,
    /// Actions per account, region, job, action and class.
    pub counts: Vec<CountLine>,
    /// Executions the selectors matched that the action cannot apply to (and why), not planned.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Action lines.
    pub actions: u64,
    /// SHA-256 (hex) of every byte after the header's line.
    pub actions_sha256: String,
}

/// One planned action on one execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Its line's number among the actions, from 1: the action's identity in `apply`'s rows.
    pub n: u64,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub job_id: String,
    pub thing_name: String,
    /// `cancel` or `delete`.
    pub action: String,
    pub force: bool,
    /// The execution's version in the audit: AWS refuses a cancel once it changed.
    pub expected_version: i64,
    pub execution_number: i64,
    /// The execution's status in the audit.
    pub status: String,
    /// Why: the report's class, and how long the execution had been so when read.
    pub class: String,
    /// The stuck execution's cause in the audit (the report's), where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub age_seconds: Option<i64>,
    pub fetched_at: String,
    pub run_id: Option<String>,
}

/// The plan as bytes: the header (with the count and checksum of `actions`, returned as written)
/// and the action lines.
pub fn encode(mut header: Header, actions: &[Action]) -> (Header, Vec<u8>) {
    let mut body = Vec::with_capacity(actions.len() * 300);
    for a in actions {
        serde_json::to_writer(&mut body, a).expect("an action serializes");
        body.push(b'\n');
    }
    header.actions = actions.len() as u64;
    header.actions_sha256 = sha256_hex(&body);
    let mut out = serde_json::to_vec(&header).expect("a header serializes");
    out.push(b'\n');
    out.extend_from_slice(&body);
    (header, out)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plan read back and checked whole: its header, and its actions in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub header: Header,
    pub actions: Vec<Action>,
}

/// Reads the plan at `path` and checks it before anything is called: the format, the checksum of
/// the action lines, their count and numbering, and each action against the header.
pub fn read(path: &Path) -> Result<Plan, PlanError> {
    let bad = |line: u64, reason: String| PlanError::Bad {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = std::io::BufReader::new(file);
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let header: Header = serde_json::from_str(first.trim_end())
        .map_err(|e| bad(1, format!("the header is not a fleet-audit plan's: {e}")))?;
    if header.fleet_audit_plan != PLAN_FORMAT {
        return Err(bad(
            1,
            format!(
                "plan format {} (this fleet-audit reads format {PLAN_FORMAT})",
                header.fleet_audit_plan
            ),
        ));
    }
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut body).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let found = sha256_hex(&body);
    if found != header.actions_sha256 {
        return Err(PlanError::Edited {
            path: path.to_path_buf(),
            want: header.actions_sha256.clone(),
            found,
        });
    }
    let mut actions = Vec::with_capacity(header.actions as usize);
    for (k, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let at = k as u64 + 2;
        let a: Action =
            serde_json::from_slice(line).map_err(|e| bad(at, format!("not an action: {e}")))?;
        check_action(&header, &a, actions.len() as u64 + 1).map_err(|r| bad(at, r))?;
        actions.push(a);
    }
    if actions.len() as u64 != header.actions {
        return Err(bad(
            1,
            format!(
                "the header counts {} actions and the file holds {}",
                header.actions,
                actions.len()
            ),
        ));
    }
    Ok(Plan {
        path: path.to_path_buf(),
        header,
        actions,
    })
}

/// An action as the header says they all are, numbered in order, with names AWS accepts.
fn check_action(h: &Header, a: &Action, n: u64) -> Result<(), String> {
    if a.n != n {
        return Err(format!("action number {} where {n} was expected", a.n));
    }
    if a.action != h.action {
        return Err(format!(
            "action {} in a plan of {} actions",
            a.action, h.action
        ));
    }
    if a.force && !h.force {
        return Err("force on an action of a plan made without --force".into());
    }
    if !crate::input::names::is_valid_thing_name(&a.thing_name) {
        return Err(format!("{:?} is not a valid thing name", a.thing_name));
    }
    if !crate::input::names::is_valid_job_id(&a.job_id) {
        return Err(format!("{:?} is not a valid job id", a.job_id));
    }
    Ok(())
}

/// Writes `bytes` at `path` as a new file: refused when something is there, written aside, synced
/// and renamed into place (never half a plan under its name).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), PlanError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(PlanError::Exists(path.to_path_buf()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fleet-audit-plan-")
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // Not over a file made meanwhile: a plan is never replaced.
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            PlanError::Exists(path.to_path_buf())
        } else {
            io(e.error)
        }
    })?;
    Ok(())
}
