//! One audit end to end: flags become settings (`config`), the output is connected, locked and
//! prepared (`output`), pairs or listings (`discover`) go through the engine's workers (`engine`) to
//! the writer thread (`session`), and the run ends in a `summary` (and `metrics`); `shard` splits an
//! audit over processes, `baseline` carries a previous audit's unchanged rows, `redo` describes a
//! complete audit's error rows again. `run` drives it all.

pub mod baseline;
pub mod config;
pub mod context;
pub(crate) mod discover;
pub mod engine;
pub mod error;
pub(crate) mod output;
pub(crate) mod redo;
pub mod run;
pub(crate) mod session;
pub mod summary;
pub(crate) mod turns;
