//! Helpers shared by the integration tests: an in-process simulator on 127.0.0.1:0, run settings that
//! point the real SDK at it, and a reader that turns the written dataset back into plain rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use fleet_audit::app::simulator_credentials;
use fleet_audit::audit::config::RunConfig;
use fleet_audit::aws::call::EngineSettings;
use fleet_audit::aws::client::ClientSettings;
use fleet_audit::aws::retry::Backoff;
use fleet_audit::dataset::{Format, Layout};
use fleet_audit::input::InputSpec;
use fleet_audit::sim::{Faults, FleetSpec, Latency, SimConfig, SimServer};

pub const NOW_MS: u64 = 1_764_400_000_000;

pub fn fleet(things: u64, jobs: u32, seed: u64) -> FleetSpec {
    FleetSpec {
        things,
        jobs,
        seed,
        now_ms: NOW_MS,
        epoch_ms: None,
        changed_share: None,
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
        remediation_quota_rps: None,
        context_quota_rps: None,
        indexing: Default::default(),
        latency: Latency::None,
        faults: Faults::default(),
        org: Default::default(),
    }
}

pub async fn start(config: SimConfig) -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    SimServer::start(config, listener).unwrap()
}

/// A simulator that answers every call after 2 ms, so that a run lasts long enough to be interrupted
/// (a signal, a SIGKILL, a lost store) in the middle.
pub async fn start_paced(fleet: FleetSpec) -> SimServer {
    let mut config = sim_config(fleet);
    config.latency = Latency::Fixed(Duration::from_millis(2));
    start(config).await
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
        call_timeout: None,
        role_arn: None,
    }
}

/// A loopback port nothing listens on (bound, then let go): an endpoint that refuses every
/// connection, or a port for a server to take.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Run settings: no rate limit, fast backoff, everything else as the CLI defaults.
pub fn run_config(endpoint: &str, input: InputSpec, out: &Path) -> RunConfig {
    let (layout, format) = match Format::from_path(out) {
        Some(f) => (Layout::File(out.to_path_buf()), f),
        None => (Layout::Dir(out.to_path_buf()), Format::Parquet),
    };
    RunConfig {
        input: fleet_audit::audit::config::Input::Describe(input),
        output: fleet_audit::audit::config::OutputSettings {
            layout,
            format,
            overwrite: false,
            resume: false,
            part_rows: 1_000_000,
            part_interval: std::time::Duration::from_secs(300),
            partition_by: Vec::new(),
            lock_lease: std::time::Duration::from_secs(60),
            delta: false,
        },
        targets: fleet_audit::audit::config::TargetSettings {
            client: client_settings(endpoint),
            flags: Default::default(),
            max_in_flight: 64,
        },
        rate: fleet_audit::audit::config::RateSettings {
            rps: None,
            burst: Some(1),
            adaptive: true,
        },
        engine: EngineSettings {
            concurrency: 16,
            max_attempts: 5,
            call_timeout: Duration::from_secs(5),
            backoff: Backoff {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(100),
            },
        },
        shard: None,
        quiet: true,
        summary_json: None,
        as_of_ms: None,
        retry_errors: false,
        context: fleet_audit::audit::context::ContextSettings::none(),
    }
}

/// Run settings of a discovery (`run --discover`) over `scope`, as [`run_config`] otherwise.
pub fn discover_config(
    endpoint: &str,
    scope: fleet_audit::audit::config::Scope,
    describe: fleet_audit::audit::config::DescribeMode,
    out: &Path,
) -> RunConfig {
    let mut rc = run_config(endpoint, InputSpec::Pairs("unused".into()), out);
    rc.input =
        fleet_audit::audit::config::Input::Discover(fleet_audit::audit::config::DiscoverSpec {
            scope,
            execution_status: None,
            describe,
            list_rps: None,
            dry_run: false,
            baseline: None,
        });
    rc
}

/// Runs `rc` and interrupts it, as a first SIGINT would, at a known point: `server` answers `calls`
/// requests of `op` in all, holds the next ones, and the stop is sent while one is held (so the run
/// is provably mid-way, however slow the machine), then the held ones are answered. Asserts that the
/// run stopped interrupted with its committed rows kept for `--resume`, and returns its summary.
pub async fn run_interrupted(
    rc: RunConfig,
    server: &SimServer,
    op: fleet_audit::sim::Operation,
    calls: u64,
) -> fleet_audit::audit::summary::Summary {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let sim = server.simulator().clone();
    sim.hold_after(op, calls.saturating_sub(sim.stats().calls(op)));
    let stopper = tokio::spawn(async move {
        sim.until_held(op, 1).await;
        tx.send(true).unwrap();
        sim.release(op);
        tx
    });
    let ended = fleet_audit::audit::run::run(rc, rx).await;
    // However the run ended (one that was never held fails below), its stopper goes and the gate
    // opens for what follows.
    stopper.abort();
    let _ = stopper.await;
    server.simulator().release(op);
    let err = ended.expect_err("the run was interrupted");
    match err {
        fleet_audit::audit::error::RunError::Stopped {
            stop: fleet_audit::audit::engine::Stop::Interrupted,
            resumable: true,
            summary,
            ..
        } => *summary,
        err => panic!("expected an interrupted, resumable stop: {err}"),
    }
}

/// [`run_interrupted`], then the same run with `--resume` to the end: asserts that some rows were
/// committed before the stop (read back from `out`), that the resume completes, and that it counts
/// exactly those rows as resumed.
pub async fn run_interrupted_then_resumed(
    mut rc: RunConfig,
    server: &SimServer,
    op: fleet_audit::sim::Operation,
    calls: u64,
    out: &Path,
) {
    run_interrupted(rc.clone(), server, op, calls).await;
    let first = read_rows(out).len();
    assert!(first > 0, "some rows were committed before the stop");
    rc.output.resume = true;
    let s = fleet_audit::audit::run::run(rc, no_shutdown())
        .await
        .unwrap();
    assert!(s.complete);
    assert_eq!(s.resumed as usize, first);
}

/// The binary with an environment of its own: nothing inherited but PATH, HOME at `cwd`, no AWS
/// config or credentials files, no instance metadata. Callers add region, credentials and the rest.
pub fn isolated_binary(cwd: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet-audit"));
    c.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .env("AWS_CONFIG_FILE", cwd.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// Waits until `sim` holds a request of `op` at its gate (closed beforehand with
/// [`fleet_audit::sim::Simulator::hold_after`]), so `child` is provably mid-run; fails the test if
/// `child` ends first.
pub async fn until_held_or_exit(
    sim: &fleet_audit::sim::Simulator,
    op: fleet_audit::sim::Operation,
    child: &mut tokio::process::Child,
) {
    tokio::select! {
        _ = sim.until_held(op, 1) => {}
        status = child.wait() => panic!("the run ended ({status:?}) before the simulator held it"),
    }
}

/// SIGKILLs `child` once `sim` holds a request of `op` (its gate closed beforehand with
/// [`fleet_audit::sim::Simulator::hold_after`]), so the kill lands at a known point, mid-run; then
/// opens the gate again. Fails the test if `child` ends by itself.
pub async fn kill_when_held(
    sim: &fleet_audit::sim::Simulator,
    op: fleet_audit::sim::Operation,
    mut child: tokio::process::Child,
) {
    until_held_or_exit(sim, op, &mut child).await;
    let (code, err) = wait_or_kill(child, Some(Duration::ZERO)).await;
    assert_eq!(code, None, "killed by SIGKILL mid-run: {err}");
    sim.release(op);
}

/// `rounds` kill points (numbers of describes a run gets answered before it is held and killed),
/// drawn in `range` from a fixed `seed`, so every run of a test kills at the same points.
pub fn kill_points(seed: u64, rounds: usize, range: std::ops::Range<u64>) -> Vec<u64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..rounds)
        .map(|_| rng.random_range(range.clone()))
        .collect()
}

/// The binary in `cwd` with test credentials, stdout and stderr captured; a `run` is pointed at the
/// simulator at `url`, unlimited and quiet.
pub fn spawn_against(cwd: &Path, url: &str, args: &[&str]) -> tokio::process::Child {
    let mut c = isolated_binary(cwd);
    c.args(args);
    if args.first() == Some(&"run") {
        c.args(["--endpoint-url", url, "--rps", "0", "--quiet"]);
    }
    c.env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTS")
        .env("AWS_SECRET_ACCESS_KEY", "tests-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c.spawn().unwrap()
}

/// Waits for a child (stderr piped) to end, or SIGKILLs it once `kill_after` has passed: its exit code
/// (None when killed by a signal) and its stderr.
pub async fn wait_or_kill(
    mut child: tokio::process::Child,
    kill_after: Option<Duration>,
) -> (Option<i32>, String) {
    if let Some(d) = kill_after {
        if tokio::time::timeout(d, child.wait()).await.is_err() {
            child.start_kill().unwrap();
        }
    }
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    pub carried_from: Option<String>,
}

fn s(a: &dyn Array, i: usize) -> Option<String> {
    let a = a.as_string::<i32>();
    a.is_valid(i).then(|| a.value(i).to_string())
}
fn i64v(a: &dyn Array, i: usize) -> Option<i64> {
    let a = a.as_primitive::<Int64Type>();
    a.is_valid(i).then(|| a.value(i))
}
/// A timestamp column (microseconds, schema version 3) as the epoch milliseconds the fleet has.
fn ts(a: &dyn Array, i: usize) -> Option<i64> {
    let a = a.as_primitive::<TimestampMicrosecondType>();
    a.is_valid(i).then(|| a.value(i) / 1000)
}

/// Every row of a dataset (file or directory).
pub fn read_rows(path: &Path) -> Vec<ReadRow> {
    let mut rows = Vec::new();
    for batch in fleet_audit::dataset::read_dataset(path, 4096).unwrap() {
        push_rows(&batch.unwrap(), &mut rows);
    }
    rows
}

/// Every row of the Parquet file `bytes` stored at `relative` in a dataset directory (partition
/// columns put back from its folders).
pub fn rows_of_parquet(relative: &str, bytes: bytes::Bytes) -> Vec<ReadRow> {
    let values = fleet_audit::dataset::partition::values_of_path(relative);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap_or_else(|e| panic!("{relative} is not a complete Parquet file: {e}"))
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for b in reader {
        let b = fleet_audit::dataset::with_partition_columns(b.unwrap(), &values).unwrap();
        push_rows(&b, &mut rows);
    }
    rows
}

/// Appends the rows of one batch of the dataset schema.
pub fn push_rows(b: &arrow::record_batch::RecordBatch, rows: &mut Vec<ReadRow>) {
    {
        assert_eq!(
            b.schema(),
            fleet_audit::dataset::schema::schema(),
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
                carried_from: s(&c("carried_from"), i),
            });
        }
    }
}

/// The comparable content of a dataset: pair -> row without what legitimately differs between runs
/// (run id, fetch time, attempts, error message); a pair twice fails the test.
pub fn contents(rows: &[ReadRow]) -> std::collections::HashMap<(String, String), ReadRow> {
    let mut m = std::collections::HashMap::new();
    for r in rows {
        let mut c = r.clone();
        c.run_id = None;
        c.fetched_at = 0;
        c.attempts = 0;
        c.error_message = None;
        let dup = m.insert((r.thing_name.clone(), r.job_id.clone()), c);
        assert!(dup.is_none(), "pair {}/{} twice", r.thing_name, r.job_id);
    }
    m
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

/// A real S3-compatible server on loopback: moto's server from `.venv` (scripts/venv.sh installs it),
/// on a free port, stopped when dropped.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// Fake credentials for the S3 server (moto accepts any); never real ones.
pub const S3_KEY_ID: &str = "AKIDS3TEST";
pub const S3_SECRET: &str = "s3-test-secret";

impl Moto {
    /// Starts the server and waits until it answers. Panics (the test fails) when `.venv` has no
    /// moto_server: run scripts/venv.sh.
    pub fn start() -> Moto {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/venv.sh (it installs moto[server] from PyPI into .venv)",
            bin.display()
        );
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if moto.request("GET", "/", "").is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One plain HTTP/1.1 request (moto does not check signatures); the status and body, or `None`
    /// when the server does not answer.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    /// Creates a bucket (in us-east-1).
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = self.request("PUT", &format!("/{name}"), "").unwrap();
        assert_eq!(status, 200, "create bucket {name}: {body}");
    }

    /// An object_store client of a bucket on this server, for tests to look at what was written.
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(S3_KEY_ID)
            .with_secret_access_key(S3_SECRET)
            .build()
            .unwrap()
    }

    /// The environment that points the binary's S3 side at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys under `prefix` of a bucket, relative to it (one listing, no object read).
pub async fn s3_keys(store: &object_store::aws::AmazonS3, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let p = object_store::path::Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
    let mut keys: Vec<String> = metas
        .into_iter()
        .map(|m| {
            let key = m.location.to_string();
            key.strip_prefix(&format!("{prefix}/"))
                .unwrap_or(&key)
                .to_string()
        })
        .collect();
    keys.sort();
    keys
}

/// Every object under `prefix` of a bucket: (key relative to the prefix, bytes).
pub async fn s3_objects(
    store: &object_store::aws::AmazonS3,
    prefix: &str,
) -> Vec<(String, bytes::Bytes)> {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let p = object_store::path::Path::from(prefix);
    let metas: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let key = m.location.to_string();
        let rel = key
            .strip_prefix(&format!("{prefix}/"))
            .unwrap_or(&key)
            .to_string();
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((rel, bytes));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A TCP proxy on loopback in front of a server, that can be broken (open connections cut, new ones
/// closed at once) and healed, to make a server unreachable mid-run.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Proxies to `upstream` (`http://HOST:PORT`).
    pub async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (b, c) = (broken.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if b.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let upstream = upstream.clone();
                let mut cut = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            endpoint,
            broken,
            cut,
        }
    }

    /// Breaks (`true`) or heals (`false`) the proxy.
    pub fn set_broken(&self, broken: bool) {
        self.broken
            .store(broken, std::sync::atomic::Ordering::SeqCst);
        if broken {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

/// Every row keyed by (region, account, thing, job); a key twice fails the test.
pub fn by_key(
    rows: &[ReadRow],
) -> std::collections::HashMap<(String, String, String, String), &ReadRow> {
    let mut m = std::collections::HashMap::new();
    for r in rows {
        let k = (
            r.region.clone().unwrap_or_default(),
            r.account_id.clone().unwrap_or_default(),
            r.thing_name.clone(),
            r.job_id.clone(),
        );
        assert!(m.insert(k.clone(), r).is_none(), "a row twice: {k:?}");
    }
    m
}
