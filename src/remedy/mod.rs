//! Acting on what an audit found, safely: `plan` turns an audit's rows into a reviewed list of
//! cancellations or deletions (`plan`, written as a [`planfile`]), which `apply` carries out exactly
//! once (its [`journal`], its [`rows`] in an ACTIONS dataset), and `report` counts.
//!
//! A plan is made from the audit alone, without a call: every action names the execution's version
//! as audited (`expectedVersion`), so that AWS refuses the action on an execution that moved since,
//! and its execution number, account and region.

pub mod apply;
mod journal;
pub mod plan;
pub mod planfile;
pub mod report;
pub mod rows;
pub mod verify;

use std::path::PathBuf;

/// Why a plan could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Flags that cannot work together, or a value out of range.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error(transparent)]
    Audit(#[from] crate::report::ReportError),
    #[error(
        "{path}: its latest audit is incomplete ({committed} pairs committed): a plan is made from a \
         complete audit (resume it first)"
    )]
    Incomplete { path: PathBuf, committed: u64 },
    #[error("{0}: already exists; a plan is never replaced (remove it, or choose another --out)")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Bad {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error(
        "{path}: edited after it was written: its action lines hash to {found}, and its header says \
         {want}; make a new plan instead of editing one"
    )]
    Edited {
        path: PathBuf,
        want: String,
        found: String,
    },
}

impl PlanError {
    /// Every plan error is about what the user gave (flags, an audit, a plan file), except a file
    /// that cannot be written or read.
    pub fn exit(&self) -> crate::audit::error::Exit {
        use crate::audit::error::Exit;
        match self {
            PlanError::Io { .. } => Exit::Failed,
            PlanError::Config(_)
            | PlanError::Input(_)
            | PlanError::Audit(_)
            | PlanError::Incomplete { .. }
            | PlanError::Exists(_)
            | PlanError::Bad { .. }
            | PlanError::Edited { .. } => Exit::BadInput,
        }
    }
}

#[cfg(test)]
mod tests;
