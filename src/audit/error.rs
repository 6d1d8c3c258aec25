//! Why a run did not produce a complete dataset: one error type for the whole `run` path, each
//! variant naming what to fix, and what each means to the shell ([`Exit`]: README's exit-code
//! table), decided here by one exhaustive match per error type, so a new variant must say its code.

use std::path::PathBuf;

use crate::audit::config::ConfigError;
use crate::audit::engine::Stop;
use crate::audit::summary::Summary;
use crate::aws::client::SetupError;
use crate::dataset::{LockError, ManifestError, WriteError};
use crate::input::InputError;

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
    Targets(#[from] crate::aws::targets::PlanError),
    #[error(transparent)]
    Sink(#[from] WriteError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `--baseline` names a dataset that cannot be a baseline of this run.
    #[error(transparent)]
    Baseline(#[from] crate::audit::baseline::BaselineError),
    /// Another run owns the output.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `--retry-errors` could not describe the error rows again or replace them.
    #[error(transparent)]
    Redo(#[from] crate::audit::redo::RedoError),
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

/// What the end of a run means to the shell (README's exit-code table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: the run failed (the service, the output, credentials...).
    Failed,
    /// 2: bad input, flags, or an output this run must not write; found before any IoT call
    /// where it can be (an input changed while read is found later).
    BadInput,
    /// 4: the dataset is complete, but some pairs ended as error rows.
    PairErrors,
    /// 5: some targets could not be audited; every other target is committed.
    TargetsFailed,
    /// 130 (SIGINT) or 143 (SIGTERM): a signal stopped the run.
    Interrupted,
}

/// Exit code of a run whose dataset is complete but holds `error` rows.
pub(crate) const EXIT_PAIR_ERRORS: i32 = 4;

/// Exit code of an organization-wide run whose reachable targets are complete while some targets
/// could not be audited.
pub(crate) const EXIT_TARGETS_FAILED: i32 = 5;

impl Exit {
    /// The process's exit code; `signal` is the code of the signal that stopped it (0: none, then
    /// SIGINT's 130).
    pub fn code(self, signal: i32) -> i32 {
        match self {
            Exit::Failed => 1,
            Exit::BadInput => 2,
            Exit::PairErrors => EXIT_PAIR_ERRORS,
            Exit::TargetsFailed => EXIT_TARGETS_FAILED,
            Exit::Interrupted if signal == 0 => 130,
            Exit::Interrupted => signal,
        }
    }
}

impl RunError {
    /// What this error means to the shell.
    pub fn exit(&self) -> Exit {
        match self {
            RunError::Config(_)
            | RunError::Input(_)
            | RunError::Baseline(_)
            | RunError::ResumeMismatch { .. } => Exit::BadInput,
            RunError::Setup(_) | RunError::Resume { .. } => Exit::Failed,
            RunError::Targets(e) => e.exit(),
            RunError::Sink(e) => e.exit(),
            RunError::Manifest(e) => e.exit(),
            RunError::Lock(e) => e.exit(),
            RunError::Redo(e) => e.exit(),
            RunError::Interrupted => Exit::Interrupted,
            RunError::Stopped { stop, .. } => stop.exit(),
        }
    }
}

impl Stop {
    /// What stopping this way means to the shell.
    pub fn exit(&self) -> Exit {
        match self {
            Stop::TargetsFailed { .. } => Exit::TargetsFailed,
            Stop::Interrupted => Exit::Interrupted,
            // Bad or changed input found while streaming it: bad input, as before the run.
            Stop::Input(_) => Exit::BadInput,
            Stop::InTarget { stop, .. } => match stop.exit() {
                Exit::BadInput => Exit::BadInput,
                _ => Exit::Failed,
            },
            Stop::Fatal { .. }
            | Stop::Unreachable { .. }
            | Stop::ListFailed { .. }
            | Stop::WriterGone
            | Stop::EngineGone
            | Stop::WriterFailed { .. }
            | Stop::OutputTakenOver { .. } => Exit::Failed,
        }
    }
}

impl crate::aws::targets::PlanError {
    /// Bad flags or accounts are bad input; a failed listing or set-up is a failure.
    pub fn exit(&self) -> Exit {
        use crate::aws::targets::PlanError as E;
        match self {
            E::Flags(_) | E::NotInOrg(_) | E::NoAccounts => Exit::BadInput,
            E::Setup(_) | E::Org(_) => Exit::Failed,
        }
    }
}

impl WriteError {
    /// A manifest that is not ours is bad input (the output named is not this tool's); every
    /// other writer error is a failure.
    pub fn exit(&self) -> Exit {
        match self {
            WriteError::Manifest(e) => e.exit(),
            WriteError::Delta(e) => e.exit(),
            WriteError::LockLost { .. }
            | WriteError::Io { .. }
            | WriteError::Parquet { .. }
            | WriteError::Arrow { .. }
            | WriteError::Remote(_)
            | WriteError::NoRuntime
            | WriteError::NotConnected(_)
            | WriteError::WriterPanicked(_) => Exit::Failed,
        }
    }
}

impl crate::dataset::delta::DeltaError {
    /// A table this tool must not write (another writer's, another schema, a log it cannot replay)
    /// is bad input; a commit lost to another writer, a failure.
    pub fn exit(&self) -> Exit {
        use crate::dataset::delta::DeltaError as E;
        match self {
            E::Refused { .. } | E::Log { .. } | E::Checkpointed { .. } | E::Broken { .. } => {
                Exit::BadInput
            }
            E::Lost { .. } | E::NoSize { .. } => Exit::Failed,
        }
    }
}

impl ManifestError {
    /// A manifest that is not ours is bad input; one that cannot be read, a failure.
    pub fn exit(&self) -> Exit {
        match self {
            ManifestError::Invalid { .. } => Exit::BadInput,
            ManifestError::Io { .. } => Exit::Failed,
        }
    }
}

impl LockError {
    /// A link planted where the lock goes is bad input (the output is not this tool's to write);
    /// a held or unwritable lock, a failure.
    pub fn exit(&self) -> Exit {
        match self {
            LockError::Planted { .. } => Exit::BadInput,
            LockError::Held { .. } | LockError::Io { .. } | LockError::Remote(_) => Exit::Failed,
        }
    }
}

impl crate::audit::redo::RedoError {
    /// A retry that could not run is a failure; one stopped, as its stop.
    pub fn exit(&self) -> Exit {
        use crate::audit::redo::RedoError as E;
        match self {
            E::Dataset { .. } | E::Setup(_) => Exit::Failed,
            E::Stopped { stop } => stop.exit(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InputError;

    #[test]
    fn each_end_has_readme_s_code() {
        assert_eq!(Exit::Failed.code(0), 1);
        assert_eq!(Exit::BadInput.code(0), 2);
        assert_eq!(Exit::PairErrors.code(0), 4);
        assert_eq!(Exit::TargetsFailed.code(0), 5);
        assert_eq!(Exit::Interrupted.code(0), 130);
        assert_eq!(Exit::Interrupted.code(143), 143);
        let bad_line = || InputError::Empty {
            file: "things.txt".into(),
            what: "thing names",
        };
        let in_target = |stop| Stop::InTarget {
            target: "111111111111/us-east-1".into(),
            stop: Box::new(stop),
        };
        assert_eq!(in_target(Stop::Input(bad_line())).exit(), Exit::BadInput);
        assert_eq!(in_target(Stop::WriterGone).exit(), Exit::Failed);
        let manifest = ManifestError::Invalid {
            path: "out/_manifest.json".into(),
            reason: "not JSON".into(),
        };
        assert_eq!(
            RunError::Sink(WriteError::Manifest(manifest)).exit(),
            Exit::BadInput
        );
        assert_eq!(RunError::Interrupted.exit(), Exit::Interrupted);
    }

    #[test]
    fn describe_refuses_bad_syntax_with_the_aws_cli_s_code() {
        let code = |args: &[&str]| crate::cli::Cli::parse_from_args(args).err().map(|(_, c)| c);
        assert_eq!(code(&["fleet-audit", "describe", "--nope"]), Some(252));
        assert_eq!(code(&["fleet-audit", "run", "--nope"]), Some(2));
        assert_eq!(code(&["fleet-audit", "--version"]), Some(0));
    }
}
