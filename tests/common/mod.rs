//! Helpers shared by the integration tests: an in-process simulator on 127.0.0.1:0, run settings that
//! point the real SDK at it, and a reader that turns the written dataset back into plain rows.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};
use fleet_audit::app::simulator_credentials;
use fleet_audit::audit::EngineSettings;
use fleet_audit::client::ClientSettings;
use fleet_audit::config::RunConfig;
use fleet_audit::input::InputSpec;
use fleet_audit::retry::Backoff;
use fleet_audit::sim::{Faults, FleetSpec, Latency, SimConfig, SimServer};
use fleet_audit::sink::{Format, Layout};

pub const NOW_MS: u64 = 1_764_400_000_000;

pub fn fleet(things: u64, jobs: u32, seed: u64) -> FleetSpec {
    FleetSpec {
        things,
        jobs,
        seed,
        now_ms: NOW_MS,
        region: "us-east-1".into(),
        future_status: 0.0,
        active_share: None,
    }
}

pub fn sim_config(fleet: FleetSpec) -> SimConfig {
    SimConfig {
        fleet,
        quota_rps: None,
        quota_burst: None,
        latency: Latency::None,
        faults: Faults::default(),
    }
}

pub async fn start(config: SimConfig) -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    SimServer::start(config, listener).unwrap()
}

/// Writes the fleet's lists into `dir` and returns (things, jobs) paths.
pub fn lists(server: &SimServer, dir: &Path) -> (PathBuf, PathBuf) {
    fleet_audit::app::write_lists(server.simulator().fleet(), dir).unwrap();
    (dir.join("things.txt"), dir.join("jobs.txt"))
}

pub fn client_settings(endpoint: &str) -> ClientSettings {
    ClientSettings {
        region: Some("us-east-1".into()),
        profile: None,
        endpoint_url: Some(endpoint.to_string()),
        static_credentials: Some(simulator_credentials()),
        connect_timeout: Some(Duration::from_secs(2)),
        role_arn: None,
    }
}

/// Run settings: no rate limit, fast backoff, everything else as the CLI defaults.
pub fn run_config(endpoint: &str, input: InputSpec, out: &Path) -> RunConfig {
    let (layout, format) = match Format::from_path(out) {
        Some(f) => (Layout::File(out.to_path_buf()), f),
        None => (Layout::Dir(out.to_path_buf()), Format::Parquet),
    };
    RunConfig {
        input: fleet_audit::config::Input::Describe(input),
        layout,
        format,
        overwrite: false,
        client: client_settings(endpoint),
        targets: Default::default(),
        rps: None,
        burst: 1,
        adaptive: true,
        engine: EngineSettings {
            concurrency: 16,
            max_attempts: 5,
            call_timeout: Duration::from_secs(5),
            backoff: Backoff {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(100),
            },
        },
        part_rows: 1_000_000,
        part_interval: std::time::Duration::from_secs(300),
        resume: false,
        quiet: true,
        summary_json: None,
        shard: None,
    }
}

pub fn no_shutdown() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    rx
}

/// One dataset row, read back with plain types.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRow {
    pub run_id: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub job_id: String,
    pub thing_name: String,
    pub requested_execution_number: Option<i64>,
    pub outcome: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub fetched_at: i64,
    pub status: Option<String>,
    pub force_canceled: Option<bool>,
    pub status_details: Option<Vec<(String, String)>>,
    pub thing_arn: Option<String>,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub last_updated_at: Option<i64>,
    pub execution_number: Option<i64>,
    pub version_number: Option<i64>,
    pub approximate_seconds_before_timed_out: Option<i64>,
    pub source: String,
    pub retry_attempt: Option<i32>,
}

fn s(a: &dyn Array, i: usize) -> Option<String> {
    let a = a.as_string::<i32>();
    a.is_valid(i).then(|| a.value(i).to_string())
}
fn i64v(a: &dyn Array, i: usize) -> Option<i64> {
    let a = a.as_primitive::<Int64Type>();
    a.is_valid(i).then(|| a.value(i))
}
fn ts(a: &dyn Array, i: usize) -> Option<i64> {
    let a = a.as_primitive::<TimestampMillisecondType>();
    a.is_valid(i).then(|| a.value(i))
}

/// Every row of a dataset (file or directory).
pub fn read_rows(path: &Path) -> Vec<ReadRow> {
    let mut rows = Vec::new();
    for batch in fleet_audit::dataset::read_dataset(path, 4096).unwrap() {
        let b = batch.unwrap();
        assert_eq!(
            b.schema(),
            fleet_audit::schema::schema(),
            "schema is the contract"
        );
        let c = |n: &str| b.column_by_name(n).unwrap().clone();
        let (details, attempts, fc) = (c("status_details"), c("attempts"), c("force_canceled"));
        let details = details.as_map();
        let attempts = attempts.as_primitive::<Int32Type>();
        let fc = fc.as_boolean();
        for i in 0..b.num_rows() {
            rows.push(ReadRow {
                run_id: s(&c("run_id"), i),
                region: s(&c("region"), i),
                account_id: s(&c("account_id"), i),
                job_id: s(&c("job_id"), i).unwrap(),
                thing_name: s(&c("thing_name"), i).unwrap(),
                requested_execution_number: i64v(&c("requested_execution_number"), i),
                outcome: s(&c("outcome"), i).unwrap(),
                error_code: s(&c("error_code"), i),
                error_message: s(&c("error_message"), i),
                attempts: attempts.value(i),
                fetched_at: ts(&c("fetched_at"), i).unwrap(),
                status: s(&c("status"), i),
                force_canceled: fc.is_valid(i).then(|| fc.value(i)),
                status_details: details.is_valid(i).then(|| {
                    let e = details.value(i);
                    let (k, v) = (
                        e.column(0).as_string::<i32>(),
                        e.column(1).as_string::<i32>(),
                    );
                    (0..e.len())
                        .map(|j| (k.value(j).to_string(), v.value(j).to_string()))
                        .collect()
                }),
                thing_arn: s(&c("thing_arn"), i),
                queued_at: ts(&c("queued_at"), i),
                started_at: ts(&c("started_at"), i),
                last_updated_at: ts(&c("last_updated_at"), i),
                execution_number: i64v(&c("execution_number"), i),
                version_number: i64v(&c("version_number"), i),
                approximate_seconds_before_timed_out: i64v(
                    &c("approximate_seconds_before_timed_out"),
                    i,
                ),
                source: s(&c("source"), i).unwrap(),
                retry_attempt: {
                    let a = c("retry_attempt");
                    let a = a.as_primitive::<Int32Type>();
                    a.is_valid(i).then(|| a.value(i))
                },
            });
        }
    }
    rows
}

/// Checks a row against what the simulator holds for its pair, field by field.
pub fn assert_row_matches_fleet(row: &ReadRow, fleet: &fleet_audit::sim::Fleet) {
    let i = fleet.thing_index(&row.thing_name);
    let j = fleet.job_index(&row.job_id);
    let exec = i.zip(j).and_then(|(i, j)| fleet.execution(i, j));
    let exec = exec.filter(|e| {
        row.requested_execution_number
            .is_none_or(|n| n == e.execution_number)
    });
    match exec {
        None => {
            assert_eq!(row.outcome, "not_found", "{row:?}");
            assert_eq!(row.error_code.as_deref(), Some("ResourceNotFoundException"));
            assert_eq!(row.status, None);
        }
        Some(e) => {
            assert_eq!(row.outcome, "ok", "{row:?}");
            assert_eq!(row.error_code, None);
            assert_eq!(row.status.as_deref(), Some(e.status));
            assert_eq!(row.force_canceled, e.force_canceled);
            let mut want: Option<Vec<(String, String)>> = e.details.as_ref().map(|d| {
                d.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            });
            if let Some(w) = &mut want {
                w.sort();
            }
            assert_eq!(row.status_details, want, "{row:?}");
            assert_eq!(row.thing_arn, Some(fleet.thing_arn(e.thing_index)));
            assert_eq!(row.queued_at, Some(e.queued_at_ms as i64));
            assert_eq!(row.started_at, e.started_at_ms.map(|v| v as i64));
            assert_eq!(row.last_updated_at, Some(e.last_updated_at_ms as i64));
            assert_eq!(row.execution_number, Some(e.execution_number));
            assert_eq!(row.version_number, Some(e.version_number));
            assert_eq!(
                row.approximate_seconds_before_timed_out,
                e.approximate_seconds_before_timed_out
            );
        }
    }
}
