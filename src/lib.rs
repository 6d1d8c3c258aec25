//! fleet-audit: audit the AWS IoT job executions of a device fleet at high throughput.
//!
//! The folders are the pipeline's stages, in the order data flows (ARCHITECTURE.md has the whole
//! code map):
//! - [`input`] thing/job lists and pairs files -> a validated, de-duplicated lazy stream of pairs
//!   (with AWS's naming rules, `names`, and the pair and its one hash, `pair`).
//! - [`aws`] the calls: clients behind traits (the one place SDK configuration is built), the
//!   accounts and regions of a run (`targets`), and the one call layer (`call`: a `limit` token per
//!   attempt, `retry`'s classes and backoff).
//! - [`audit`] one audit end to end: settings (`config`), the output prepared (`output`), the
//!   engine's workers, discovery, the writer thread and progress (`session`), the summary and
//!   metrics; `run` drives it.
//! - [`dataset`] the one Arrow schema (`schema`), Parquet / Arrow IPC writers that commit files
//!   atomically into a file, a local directory or S3; manifests; one writer per output; reading back;
//!   table definitions (`ddl`).
//! - [`report`] what a written dataset says: stuck / timed-out analysis per job, changes, trends.
//! - [`remedy`] acting on it: `plan` (an audit's stuck executions into a plan file to review).
//! - [`describe`] the AWS CLI-compatible single describe; [`sim`] the AWS IoT Jobs simulator.
//! - [`app`] the subcommands' glue; [`cli`] clap definitions only; [`error`] a run's errors and
//!   exit codes; [`time`] clocks, civil dates, durations; [`redact`] URLs' passwords out of text.
pub mod app;
pub mod audit;
pub mod aws;
pub mod cli;
pub mod dataset;
pub(crate) mod describe;
pub mod input;
pub mod redact;
pub mod remedy;
pub mod report;
pub mod sim;
pub mod time;
