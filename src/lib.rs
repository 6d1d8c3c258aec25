//! fleet-audit: audit the AWS IoT job executions of a device fleet at high throughput.
//!
//! Map of the modules, in the order data flows (ARCHITECTURE.md has the whole code map):
//! - [`time`] clock, civil dates, human durations, the one duration parser; [`names`] AWS's naming
//!   rules; [`pair`] the pair and its one hash; [`cli`] clap definitions only.
//! - [`client`] the fleet client traits, `aws-sdk-iot` behind them (the one place that builds SDK
//!   configuration), an in-memory fake and a fault-injecting wrapper; [`retry`] error classes and
//!   backoff; [`limit`] a rate limiter on tokio's clock; [`schema`] the one Arrow schema;
//!   [`shard`] the hash partition of one audit over N processes; [`targets`] accounts and regions
//!   (an organization's too, each connected when its turn comes).
//! - [`input`] thing/job lists and pairs files -> a validated, de-duplicated lazy stream of pairs.
//! - [`dataset`] Parquet / Arrow IPC writers that commit files atomically into a file, a local
//!   directory or S3, flat or in Hive-style folders; manifests; one writer per output; reading back.
//! - [`config`] flags -> validated settings (every input error before any network call).
//! - [`call`] one call's attempts until its final answer (the one retry owner); [`engine`] workers,
//!   lanes, stops.
//! - [`summary`], [`error`] a run's figures and errors; [`session`] its writer thread and progress;
//!   [`output`] its output connected, locked and prepared; [`discover`] list-first audits; [`run`]
//!   one audit end to end.
//! - [`report`] what a written dataset says: stuck / timed-out analysis per job; [`metrics`] the
//!   run's and the dataset's figures for Prometheus; [`ddl`] table
//!   definitions (Athena, Glue, DuckDB) from [`schema`]; [`describe`] the AWS CLI-compatible single
//!   describe; [`sim`] the AWS IoT Jobs simulator; [`app`] the subcommands' glue and exit codes.
pub mod app;
pub mod baseline;
pub mod call;
pub mod cli;
pub mod client;
pub mod config;
pub mod dataset;
pub mod ddl;
pub mod describe;
pub mod discover;
pub mod engine;
pub mod error;
pub mod input;
pub mod limit;
pub mod metrics;
pub mod names;
pub mod output;
pub mod pair;
pub mod redact;
pub mod redo;
pub mod report;
pub mod retry;
pub mod run;
pub mod schema;
pub mod session;
pub mod shard;
pub mod sim;
pub mod summary;
pub mod targets;
pub mod time;
