//! Why a run did not produce a complete dataset: one error type for the whole `run` path, each
//! variant naming what to fix. The binary maps them to exit codes (`app`).

use std::path::PathBuf;

use crate::client::SetupError;
use crate::config::ConfigError;
use crate::dataset::{LockError, ManifestError, SinkError};
use crate::engine::Stop;
use crate::input::InputError;
use crate::summary::Summary;

/// Why a run did not produce a complete dataset.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The targets of an organization-wide audit could not be listed (or their flags are bad).
    #[error(transparent)]
    Targets(#[from] crate::targets::PlanError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `--baseline` names a dataset that cannot be a baseline of this run.
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
    /// Another run owns the output.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `--retry-errors` could not describe the error rows again or replace them.
    #[error(transparent)]
    Redo(#[from] crate::redo::RedoError),
    /// `--resume` into a dataset written by another audit: what differs, and how.
    #[error("cannot resume into {out}: the {what} differ: {detail}. To finish that audit, run it with the inputs and flags it was written with; to audit these instead, start again with --overwrite (in place of --resume)")]
    ResumeMismatch {
        out: PathBuf,
        what: Mismatch,
        detail: String,
    },
    /// The committed parts of the dataset could not be read back.
    #[error("cannot resume into {out}: cannot read its committed parts: {reason}")]
    Resume { out: PathBuf, reason: String },
    /// A signal came while the run was still setting up (STS, the targets, the output), before any
    /// IoT call: it ends at once, with nothing written.
    #[error("interrupted while setting up, before the first IoT call: nothing was written")]
    Interrupted,
    #[error("{stop}")]
    Stopped {
        stop: Stop,
        out: PathBuf,
        /// Whether the committed rows were kept for `--resume` (directory outputs).
        resumable: bool,
        summary: Box<Summary>,
    },
}

/// What differs between a dataset to resume and the run asking to resume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Inputs,
    Format,
    Shard,
    Targets,
    Partitions,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mismatch::Inputs => "inputs",
            Mismatch::Format => "formats",
            Mismatch::Shard => "shards",
            Mismatch::Targets => "targets",
            Mismatch::Partitions => "partitions",
        })
    }
}
