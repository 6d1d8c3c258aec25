//! The integration tests, one binary: each module is one area (see docs/development.md). One binary
//! links the crate and its dependencies once, not once per file, which keeps the test build small and
//! quick.

mod as_of;
mod cli;
mod common;
mod dated;
mod discover;
mod exits;
mod flags;
mod history;
mod inputs;
mod integrity;
mod metrics_files;
mod org;
mod partition;
mod paths;
mod report;
mod resilience;
mod retry_errors;
mod run_sim;
mod s3;
mod secrets;
mod shard;
mod sim;
mod targets;
mod timeouts;
