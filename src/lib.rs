//! fleet-audit: audit the AWS IoT job executions of a device fleet at high throughput.
//!
//! Map of the modules, in the order data flows:
//! - [`cli`] clap definitions only; [`config`] turns flags into validated settings (every input error
//!   before any network call).
//! - [`input`] thing/job lists and pairs files -> a lazy stream of targets; [`names`] AWS's naming rules.
//! - [`client`] the fleet client trait and its `aws-sdk-iot` implementation (the one place that builds
//!   SDK configuration); [`targets`] the accounts and regions of a run, each with its own client and
//!   limiter; [`limit`] a target's rate limiter; [`retry`] error classes and backoff.
//! - [`audit`] targets -> bounded concurrent calls -> rows; [`schema`] the one Arrow schema;
//!   [`sink`] Parquet / Arrow IPC writers that commit files atomically, into a file, a local
//!   directory or S3 (`object_store`), flat or in Hive-style partition folders, each output locked
//!   for one writer (`sink::lock`); [`dataset`] reads a dataset back (what its manifest lists).
//! - [`report`] what a written dataset says: stuck / timed-out analysis per job.
//! - [`run`] one audit end to end; [`shard`] the hash partition that splits one audit over N
//!   processes; [`describe`] the AWS CLI-compatible single describe; [`sim`] the AWS IoT Jobs
//!   simulator; [`app`] the subcommands' glue and exit codes.
//! - [`ddl`] table definitions of the dataset (Athena, Glue, DuckDB) generated from [`schema`].
pub mod app;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod dataset;
pub mod ddl;
pub mod describe;
pub mod discover;
pub mod input;
pub mod limit;
pub mod names;
pub mod report;
pub mod retry;
pub mod run;
pub mod schema;
pub mod shard;
pub mod sim;
pub mod sink;
pub mod targets;
