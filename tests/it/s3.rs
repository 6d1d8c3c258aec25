//! `run --out s3://…` against a real S3-compatible server on loopback (moto's server from `.venv`,
//! started by the tests) and the IoT side against the simulator: a partitioned dataset that pyarrow
//! reads back with the same rows as a local run; SIGKILL mid-upload then `--resume` leaving no partial
//! or orphan object and every pair once; a store lost mid-run stopping it with the URL named; bad
//! outputs refused before any IoT call.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use fleet_audit::dataset::Manifest;
use fleet_audit::sim::Latency;

const BIN: &str = env!("CARGO_BIN_EXE_fleet-audit");

/// Starts the binary with the S3 server's environment (fake credentials), stderr captured; `tmp` is its
/// TMPDIR when given.
fn spawn(moto: &Moto, args: &[&str], tmp: Option<&Path>) -> tokio::process::Child {
    let mut c = tokio::process::Command::new(BIN);
    if let Some(t) = tmp {
        c.env("TMPDIR", t);
    }
    c.args(args)
        .envs(moto.env())
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c.spawn().unwrap()
}

/// Runs the binary to its end, or SIGKILLs it after `kill_after`: (exit code, None when killed; stderr).
async fn run_bin(
    moto: &Moto,
    args: &[&str],
    kill_after: Option<Duration>,
    tmp: Option<&Path>,
) -> (Option<i32>, String) {
    wait_or_kill(spawn(moto, args, tmp), kill_after).await
}

/// What a dataset in the bucket holds: its manifest, and its data files (relative path -> bytes).
async fn s3_dataset(
    moto: &Moto,
    bucket: &str,
    prefix: &str,
) -> (Manifest, Vec<(String, bytes::Bytes)>) {
    let objects = s3_objects(&moto.store(bucket), prefix).await;
    let manifest = objects
        .iter()
        .find(|(k, _)| k == "_manifest.json")
        .map(|(_, b)| Manifest::from_json(b, Path::new("_manifest.json")).unwrap())
        .expect("a manifest");
    let files = objects
        .into_iter()
        .filter(|(k, _)| k != "_manifest.json")
        .collect();
    (manifest, files)
}

/// Checks the objects are exactly the manifest's parts (no orphan, nothing partial) and returns their
/// rows.
fn committed_rows(manifest: &Manifest, files: &[(String, bytes::Bytes)]) -> Vec<ReadRow> {
    let listed: BTreeSet<&str> = manifest.parts.iter().map(|p| p.file.as_str()).collect();
    let stored: BTreeSet<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        listed, stored,
        "objects under the prefix = the manifest's parts"
    );
    let mut rows = Vec::new();
    for (key, bytes) in files {
        let r = rows_of_parquet(key, bytes.clone());
        let want = manifest.parts.iter().find(|p| &p.file == key).unwrap().rows;
        assert_eq!(r.len() as u64, want, "{key}: rows as the manifest says");
        rows.extend(r);
    }
    rows
}

fn today() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    fleet_audit::dataset::partition::utc_date(ms)
}

/// `fleet-audit run` over `things` x `jobs` into `out` against the simulator at `url`, unthrottled and
/// quiet, then `extra`.
fn run_argv(things: &str, jobs: &str, url: &str, out: &str, extra: &[&str]) -> Vec<String> {
    [
        "run",
        "--things",
        things,
        "--jobs",
        jobs,
        "--out",
        out,
        "--endpoint-url",
        url,
        "--rps",
        "0",
        "--quiet",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_s3_dataset_reads_back_like_a_local_run() {
    let moto = Moto::start();
    moto.create_bucket("audit");
    let server = start(sim_config(fleet(300, 4, 11))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let url = server.endpoint_url();
    let local = dir.path().join("local");
    let local_s = local.to_string_lossy();
    let base = |out: &str| run_argv(&things, &jobs, &url, out, &[]);
    let day_before = today();
    let mut args = base("s3://audit/runs/fleet/");
    // --report reads the dataset back from S3 at the end (a failure there would be exit 1).
    args.extend(
        [
            "--partition-by",
            "date,job_id",
            "--part-rows",
            "250",
            "--report",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = run_bin(&moto, &args, None, None).await;
    assert_eq!(code, Some(0), "{err}");
    let day_after = today();
    let local_args = base(&local_s);
    let local_args: Vec<&str> = local_args.iter().map(String::as_str).collect();
    let (code, err) = run_bin(&moto, &local_args, None, None).await;
    assert_eq!(code, Some(0), "{err}");

    let (manifest, files) = s3_dataset(&moto, "audit", "runs/fleet").await;
    assert!(manifest.complete);
    assert_eq!(manifest.partition_by, ["date", "job_id"]);
    // Hive-style paths: date=<run's UTC date>/job_id=<job>/part-<run_id>-<seq>.parquet.
    for (key, _) in &files {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{key}");
        let date = parts[0].strip_prefix("date=").expect(key);
        assert!(date == day_before || date == day_after, "{key}");
        let job = parts[1].strip_prefix("job_id=").expect(key);
        assert!(job.starts_with("job-"), "{key}");
        assert!(
            parts[2].starts_with("part-") && parts[2].ends_with(".parquet"),
            "{key}"
        );
        // The partition column is not in the file.
        let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            files.iter().find(|(k, _)| k == key).unwrap().1.clone(),
        )
        .unwrap();
        assert!(meta.schema().field_with_name("job_id").is_err(), "{key}");
    }
    let jobs_seen: BTreeSet<&str> = files
        .iter()
        .map(|(k, _)| k.split('/').nth(1).unwrap())
        .collect();
    assert_eq!(jobs_seen.len(), 4);
    let rows = committed_rows(&manifest, &files);
    assert_eq!(rows.len(), 1200);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
    assert_eq!(contents(&rows), contents(&read_rows(&local)));

    // `report` reads the S3 dataset (job_id from the paths) as it reads the local one.
    let report = |what: &str| {
        let out = std::process::Command::new(BIN)
            .args(["report", what, "--json"])
            .envs(moto.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // The ages of the oldest pairs depend on when each run fetched them.
        for job in doc["jobs"].as_array_mut().unwrap() {
            job.as_object_mut().unwrap().remove("oldest");
        }
        (doc["dataset"].clone(), doc["jobs"].clone())
    };
    let (name, remote_jobs) = report("s3://audit/runs/fleet/");
    assert_eq!(name, "s3://audit/runs/fleet/");
    assert_eq!(remote_jobs, report(&local_s).1);
    assert_eq!(remote_jobs.as_array().unwrap().len(), 4);

    // pyarrow (from PyPI, unchanged) reads the S3 dataset with Hive partitioning and finds the local
    // run's rows.
    let script = r#"
import sys
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyarrow import fs
endpoint, local, date = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="AKIDS3TEST",
                     secret_key="s3-test-secret", region="us-east-1")
remote = ds.dataset("audit/runs/fleet/", filesystem=s3, format="parquet", partitioning="hive").to_table()
here = ds.dataset(local, format="parquet").to_table()
assert set(pc.unique(remote["date"].cast("string")).to_pylist()) == {date}, pc.unique(remote["date"])
per_run = {"run_id", "fetched_at", "attempts", "error_message", "date"}
def rows(t):
    cols = [c for c in t.column_names if c not in per_run]
    out = [tuple(repr(r[c]) for c in sorted(cols)) for r in t.select(cols).to_pylist()]
    return sorted(out)
a, b = rows(remote), rows(here)
assert len(a) == len(b) == 1200, (len(a), len(b))
assert a == b
print("same", len(a))
"#;
    let date = files[0]
        .0
        .split('/')
        .next()
        .unwrap()
        .trim_start_matches("date=");
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(&py)
        .args(["-c", script, &moto.endpoint, &local_s, date])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/venv.sh", py.display()));
    assert!(
        out.status.success(),
        "pyarrow: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "same 1200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_upload_then_resume_leaves_no_partial_or_orphan_object() {
    let moto = Moto::start();
    moto.create_bucket("audit");
    let mut cfg = sim_config(fleet(1_500, 4, 77));
    cfg.latency = Latency::Fixed(Duration::from_millis(1));
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let url = server.endpoint_url();
    let base = [
        "run",
        "--things",
        &things,
        "--jobs",
        &jobs,
        "--out",
        "s3://audit/killed/",
        "--partition-by",
        "job_id",
        "--endpoint-url",
        &url,
        "--rps",
        "0",
        "--concurrency",
        "4",
        "--part-rows",
        "200",
        "--quiet",
    ];
    // Killed runs leave their staging folders; the next run removes those of dead processes.
    let staging = dir.path().join("tmp");
    std::fs::create_dir(&staging).unwrap();
    // Killed at counted points: each of the first rounds gets a number of describes answered (drawn
    // from a fixed seed), then the simulator holds the next ones and the run is SIGKILLed, with many
    // small parts uploading or about to. Together the rounds get fewer describes than the 6,000
    // pairs, so none can finish before its kill point; the last round runs to the end.
    let op = fleet_audit::sim::Operation::DescribeJobExecution;
    let points = kill_points(77, 4, 400..1_400);
    assert!(points.iter().sum::<u64>() < 6_000);
    for (round, &n) in points.iter().enumerate() {
        let mut args = base.to_vec();
        if round > 0 {
            args.push("--resume");
        }
        server.simulator().hold_after(op, n);
        kill_when_held(server.simulator(), op, spawn(&moto, &args, Some(&staging))).await;
    }
    let mut args = base.to_vec();
    args.push("--resume");
    let (code, err) = run_bin(&moto, &args, None, Some(&staging)).await;
    assert_eq!(code, Some(0), "the last round finishes: {err}");
    let left: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
    assert!(left.is_empty(), "staging folders left: {left:?}");
    let (manifest, files) = s3_dataset(&moto, "audit", "killed").await;
    assert!(manifest.complete);
    let rows = committed_rows(&manifest, &files);
    assert_eq!(rows.len(), 6_000, "every pair exactly once");
    let got = contents(&rows);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
    // An uninterrupted local run of the same inputs holds the same contents.
    let local = dir.path().join("local");
    let mut args = base.to_vec();
    let local_s = local.to_string_lossy();
    args[6] = &local_s;
    let (code, err) = run_bin(&moto, &args, None, None).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(contents(&read_rows(&local)), got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_s3_outputs_are_refused_before_any_iot_call() {
    let moto = Moto::start();
    moto.create_bucket("audit");
    let server = start(sim_config(fleet(40, 2, 3))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let url = server.endpoint_url();
    let args = |out: &str, extra: &[&str]| run_argv(&things, &jobs, &url, out, extra);
    let run_args = |moto: &Moto, a: Vec<String>| {
        let moto_env = moto.env();
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let mut c = tokio::process::Command::new(BIN);
            c.args(&a)
                .envs(moto_env)
                .env_remove("AWS_ENDPOINT_URL")
                .stderr(std::process::Stdio::piped());
            let out = c.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };

    // No bucket in the URL: a flag error.
    let (code, err) = run_args(&moto, args("s3://", &[])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("names no bucket"), "{err}");
    // A bucket that does not exist.
    let (code, err) = run_args(&moto, args("s3://no-such-bucket/audit/", &[])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("s3://no-such-bucket/audit/"), "{err}");
    // In words (issue 23, item 12), not S3's XML.
    assert!(
        err.contains("the bucket no-such-bucket does not exist: create it"),
        "{err}"
    );
    assert!(
        !err.contains("<Error>") && !err.contains("RequestId"),
        "{err}"
    );
    // An endpoint that nothing answers: refused in seconds, not after minutes of retries.
    let closed = free_port();
    let started = std::time::Instant::now();
    let mut c = tokio::process::Command::new(BIN);
    let a = args("s3://audit/x/", &[]);
    c.args(&a)
        .envs(moto.env())
        .env("AWS_ENDPOINT_URL_S3", format!("http://127.0.0.1:{closed}"))
        .stderr(std::process::Stdio::piped());
    let out = c.output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("s3://audit/x/"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // No secret is ever printed.
    assert!(!err.contains(S3_SECRET), "{err}");
    assert_eq!(server.stats().total_calls(), 0, "no IoT call was made");

    // A prefix holding objects is refused without --resume or --overwrite...
    let store = moto.store("audit");
    {
        use object_store::ObjectStoreExt;
        for key in ["used/part-old-00000.parquet", "used/notes.txt"] {
            store
                .put(&key.into(), b"not ours to judge".to_vec().into())
                .await
                .unwrap();
        }
    }
    let (code, err) = run_args(&moto, args("s3://audit/used/", &[])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pass --resume to finish (or re-check) the audit it holds, or --overwrite"),
        "{err}"
    );
    assert_eq!(server.stats().total_calls(), 0, "no IoT call was made");
    // ...and --resume without a manifest does not delete what is not ours.
    let (code, err) = run_args(&moto, args("s3://audit/used/", &["--resume"])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no manifest"), "{err}");
    assert_eq!(server.stats().total_calls(), 0, "no IoT call was made");
    // Without a manifest, --overwrite deletes nothing it cannot show is its own: a prefix holding
    // other files is refused, nothing deleted (issue 22)...
    let (code, err) = run_args(&moto, args("s3://audit/used/", &["--overwrite"])).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nothing was deleted"), "{err}");
    assert_eq!(s3_keys(&store, "used").await.len(), 2, "nothing deleted");
    assert_eq!(server.stats().total_calls(), 0, "no IoT call was made");
    // ...and with only what a killed run of this tool leaves (its names carry a run id) beside a
    // manifest-less prefix's foreign file gone, --overwrite deletes this tool's old files only.
    // (With debug logs on: still no secret printed.)
    {
        use object_store::ObjectStoreExt;
        store
            .delete(&"used/part-old-00000.parquet".into())
            .await
            .unwrap();
        store
            .put(
                &"used/part-1764662400-3fa2c1-00000.parquet".into(),
                b"a killed run's".to_vec().into(),
            )
            .await
            .unwrap();
    }
    let (code, err) = run_args(&moto, args("s3://audit/used/", &["--overwrite"])).await;
    assert_eq!(code, Some(2), "notes.txt is still not ours: {err}");
    {
        use object_store::ObjectStoreExt;
        store.delete(&"used/notes.txt".into()).await.unwrap();
    }
    let a = args("s3://audit/used/", &["--overwrite"]);
    let out = tokio::process::Command::new(BIN)
        .args(&a)
        .envs(moto.env())
        .env("RUST_LOG", "debug")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("DEBUG"), "debug logs are on");
    assert!(!err.contains(S3_SECRET), "a secret in the logs");
    let keys = s3_keys(&store, "used").await;
    assert!(
        !keys.contains(&"part-1764662400-3fa2c1-00000.parquet".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"_manifest.json".to_string()), "{keys:?}");
    // A resume with another layout is refused.
    let calls = server.stats().total_calls();
    let (code, err) = run_args(
        &moto,
        args(
            "s3://audit/used/",
            &["--resume", "--partition-by", "job_id"],
        ),
    )
    .await;
    // A resume into another layout is bad input (exit 2, as README says), naming what differs.
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the partitions differ"), "{err}");
    assert!(err.contains("--partition-by job_id"), "{err}");
    assert_eq!(server.stats().total_calls(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_lost_mid_run_stops_it_naming_the_url_and_resume_finishes() {
    let moto = Moto::start();
    moto.create_bucket("audit");
    let proxy = Proxy::start(&moto.endpoint).await;
    let server = start_paced(fleet(1_500, 4, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let url = server.endpoint_url();
    let args = run_argv(
        &things.to_string_lossy(),
        &jobs.to_string_lossy(),
        &url,
        "s3://audit/flaky/",
        &["--concurrency", "4", "--part-rows", "200"],
    );
    let through_proxy = |extra: Option<&str>| {
        let mut c = tokio::process::Command::new(BIN);
        c.args(&args)
            .args(extra)
            .envs(moto.env())
            .env("AWS_ENDPOINT_URL_S3", &proxy.endpoint)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c.spawn().unwrap()
    };
    let child = through_proxy(None);
    // Once a part is committed, the store becomes unreachable.
    let store = moto.store("audit");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let keys = s3_keys(&store, "flaky").await;
        if keys.iter().any(|k| k == "_manifest.json") && keys.len() > 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no part was committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.set_broken(true);
    let broken_at = std::time::Instant::now();
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("s3://audit/flaky/"),
        "the message names the URL: {err}"
    );
    assert!(
        err.contains("cannot upload") || err.contains("cannot write"),
        "{err}"
    );
    assert!(
        broken_at.elapsed() < Duration::from_secs(60),
        "retries gave up in {:?}",
        broken_at.elapsed()
    );
    // What was committed stays valid: every part the manifest lists is complete.
    let (manifest, files) = s3_dataset(&moto, "audit", "flaky").await;
    assert!(!manifest.complete);
    let mut committed = 0;
    for p in &manifest.parts {
        let (_, bytes) = files
            .iter()
            .find(|(k, _)| k == &p.file)
            .expect("listed part");
        committed += rows_of_parquet(&p.file, bytes.clone()).len() as u64;
    }
    assert_eq!(committed, manifest.committed.len());
    assert!(committed > 0 && committed < 6_000, "{committed}");

    // Reachable again, --resume finishes: exactly the manifest's objects, every pair once.
    proxy.set_broken(false);
    let out = through_proxy(Some("--resume"))
        .wait_with_output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let (manifest, files) = s3_dataset(&moto, "audit", "flaky").await;
    assert!(manifest.complete);
    let rows = committed_rows(&manifest, &files);
    assert_eq!(contents(&rows).len(), 6_000);
}

/// Puts a lock object under `prefix` as a run on another machine would have left it.
async fn plant_lock(moto: &Moto, bucket: &str, prefix: &str, lease_s: f64) {
    use object_store::ObjectStoreExt;
    let body = serde_json::json!({
        "run_id": "1764000000-other",
        "host": "elsewhere",
        "pid": 4242,
        "started_ms": 1_764_000_000_000i64,
        "lease_s": lease_s,
    });
    moto.store(bucket)
        .put(
            &object_store::path::Path::from(format!("{prefix}/_fleet-audit.lock")),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
}

/// Waits until the store's own clock (the Last-Modified of a probe object it stamps now) is `lease`
/// or more past the Last-Modified of `key`: the clock a run judges a lease by.
async fn until_store_clock_passes(store: &object_store::aws::AmazonS3, key: &str, lease: Duration) {
    use object_store::ObjectStoreExt;
    let key = object_store::path::Path::from(key);
    let stamped = store.head(&key).await.unwrap().last_modified;
    let probe = object_store::path::Path::from("clock-probe");
    loop {
        store.put(&probe, b"now".to_vec().into()).await.unwrap();
        let now = store.head(&probe).await.unwrap().last_modified;
        if (now - stamped).num_milliseconds() >= lease.as_millis() as i64 {
            store.delete(&probe).await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_s3_prefix_with_a_lease_taken_over_once_lapsed() {
    let moto = Moto::start();
    moto.create_bucket("locks");
    let held = start(sim_config(fleet(1_500, 2, 61))).await;
    let other = start(sim_config(fleet(1_500, 2, 61))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&held, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let argv = |sim: &fleet_audit::sim::SimServer, out: &str, extra: &[&str]| {
        run_argv(&things, &jobs, &sim.endpoint_url(), out, extra)
    };
    let refs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<String>>();

    // A lock left by a run on another machine holds while its lease runs (an hour: it cannot lapse
    // during the test, however slow), and is taken over once it lapsed by the store's clock (a lock
    // planted with a lease of 1 s, the run started only once the store's clock is 1 s past it).
    plant_lock(&moto, "locks", "lease", 3_600.0).await;
    let lease_args = refs(&argv(&other, "s3://locks/lease/", &["--part-rows", "1000"]));
    let lease_args: Vec<&str> = lease_args.iter().map(String::as_str).collect();
    let (code, err) = run_bin(&moto, &lease_args, None, None).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "fleet-audit: error: s3://locks/lease/ is being written by run 1764000000-other (pid 4242 on host elsewhere, since 2025-11-24T16:00:00Z)"
    );
    assert_eq!(other.stats().total_calls(), 0, "refused before any call");
    plant_lock(&moto, "locks", "lease", 1.0).await;
    until_store_clock_passes(
        &moto.store("locks"),
        "lease/_fleet-audit.lock",
        Duration::from_secs(1),
    )
    .await;
    let (code, err) = run_bin(&moto, &lease_args, None, None).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("s3://locks/lease/: took over the lock of run 1764000000-other")
            && err.contains("not renewed for")
            && err.contains("(its lease is 1 s)"),
        "{err}"
    );
    let (manifest, files) = s3_dataset(&moto, "locks", "lease").await;
    assert_eq!(committed_rows(&manifest, &files).len(), 3_000);
    let calls_after_lease = other.stats().total_calls();

    // Two runs on one prefix: the second is refused while the first runs, and makes no call. The
    // first is caught mid-audit: its simulator answers 600 describes, then holds the next ones
    // (--call-timeout 1h: they may wait as long as the second run takes), and its lease (an hour)
    // cannot lapse meanwhile.
    let op = fleet_audit::sim::Operation::DescribeJobExecution;
    let holder_args = refs(&argv(
        &held,
        "s3://locks/busy/",
        &[
            "--part-rows",
            "300",
            "--concurrency",
            "4",
            "--lock-lease",
            "1h",
            "--call-timeout",
            "1h",
        ],
    ));
    let holder_args: Vec<&str> = holder_args.iter().map(String::as_str).collect();
    held.simulator().hold_after(op, 600);
    let mut holder = spawn(&moto, &holder_args, None);
    until_held_or_exit(held.simulator(), op, &mut holder).await;
    let second = refs(&argv(&other, "s3://locks/busy/", &["--resume"]));
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let (code, err) = run_bin(&moto, &second, None, None).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.trim()
            .starts_with("fleet-audit: error: s3://locks/busy/ is being written by run ")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(other.stats().total_calls(), calls_after_lease);
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder still runs"
    );
    assert!(held.simulator().held(op) >= 1, "held mid-audit");
    // Killed, its lease still fresh: a resume on the same machine sees its process is gone.
    let (code, _) = wait_or_kill(holder, Some(Duration::ZERO)).await;
    assert_eq!(code, None, "killed");
    held.simulator().release(op);
    let (code, err) = run_bin(&moto, &second, None, None).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("its process is gone"), "{err}");
    let (manifest, files) = s3_dataset(&moto, "locks", "busy").await;
    assert!(manifest.complete);
    let rows = committed_rows(&manifest, &files);
    assert_eq!((rows.len(), contents(&rows).len()), (3_000, 3_000));
}

/// The fence of a takeover: a run that read the manifest before another run rewrote it can never
/// write it again, even when the other run wrote the very same content (every write is stamped, so
/// its ETag differs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_rewritten_by_another_run_is_never_overwritten() {
    let moto = Moto::start();
    moto.create_bucket("fence");
    let connect = || connect_dir(&moto, "s3://fence/ds/");
    let (old, new) = (connect(), connect());
    let m = Manifest::new("pairs:1".into(), 10, "parquet");
    old.store_manifest(&m).await.unwrap();
    // Both read it; the new owner rewrites it unchanged (the fence of a resume).
    assert_eq!(old.load_manifest().await.unwrap().unwrap().pairs, 10);
    new.load_manifest().await.unwrap().unwrap();
    new.store_manifest(&m).await.unwrap();
    let err = old.store_manifest(&m).await.unwrap_err().to_string();
    assert!(err.contains("changed by another writer"), "{err}");
    // The new owner goes on writing.
    new.store_manifest(&m).await.unwrap();
}

/// Issue 22, item 13f: a run whose lock another run took over mid-run stops (exit 1) and is told the
/// truth: another run now owns the output, so it must not resume over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lock_was_taken_over_is_not_told_to_resume() {
    // Held (its simulator answers 300 describes and holds the next) for longer than its lease of
    // 2 s, the holder keeps renewing its lock, so a second run is still refused; once another run's
    // lock replaces its own, as a takeover does, it stops writing and is told the truth (issue 28:
    // a run that outlives its lease; issue 22, item 13f).
    use object_store::ObjectStoreExt;
    let moto = Moto::start();
    moto.create_bucket("taken");
    let sim = start(sim_config(fleet(1_500, 2, 67))).await;
    let op = fleet_audit::sim::Operation::DescribeJobExecution;
    sim.simulator().hold_after(op, 300);
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&sim, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let args = run_argv(
        &things,
        &jobs,
        &sim.endpoint_url(),
        "s3://taken/audit/",
        &[
            "--part-rows",
            "100",
            "--concurrency",
            "1",
            "--lock-lease",
            "2s",
            "--call-timeout",
            "1h",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let holder = spawn(&moto, &args, None);
    sim.simulator().until_held(op, 1).await;
    // Renewed while held, until it has held the output for more than its whole lease.
    let store = moto.store("taken");
    let lock = object_store::path::Path::from("audit/_fleet-audit.lock");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut renewals = std::collections::BTreeSet::new();
    loop {
        let body = store.get(&lock).await.unwrap().bytes().await.unwrap();
        let h: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let (started, renewed) = (h["started_ms"].as_i64().unwrap(), h["renewed_ms"].as_i64());
        if let Some(r) = renewed {
            renewals.insert(r);
            if r - started > 3_000 && renewals.len() >= 3 {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never renewed: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again: Vec<&str> = args.iter().copied().chain(["--resume"]).collect();
    let other = spawn(&moto, &again, None);
    let (code, err) = wait_or_kill(other, Some(Duration::from_secs(60))).await;
    assert_eq!(
        code,
        Some(1),
        "a live lease past its length still refuses: {err}"
    );
    assert!(err.contains("is being written by run "), "{err}");
    // Another run's lock replaces this run's, as a takeover does.
    plant_lock(&moto, "taken", "audit", 60.0).await;
    sim.simulator().release(op);
    let (code, err) = wait_or_kill(holder, Some(Duration::from_secs(60))).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("another run now owns s3://taken/audit/"),
        "{err}"
    );
    assert!(!err.contains("with --resume"), "{err}");
}

/// Issue 22, items 13d and 13e: an S3 output that cannot be reached is refused before any IoT call
/// with exit 2 (README's exit codes say so), and the message says what the check before the run
/// tried (2 retries within 10 s), not only object_store's own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_s3_output_names_the_retries_of_the_check() {
    let server = start(sim_config(fleet(4, 1, 3))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let (things, jobs) = (things.to_string_lossy(), jobs.to_string_lossy());
    let closed = free_port();
    let a = run_argv(&things, &jobs, &server.endpoint_url(), "s3://audit/x/", &[]);
    let mut c = tokio::process::Command::new(BIN);
    c.args(&a)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL_S3", format!("http://127.0.0.1:{closed}"))
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stderr(std::process::Stdio::piped());
    let out = c.output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("s3://audit/x/")
            && err.contains("checked before any IoT call, with 2 retries within 10 s"),
        "{err}"
    );
    assert_eq!(server.stats().total_calls(), 0, "no IoT call was made");
}

/// A holder that cannot renew its lease (the store unreachable) stops writing itself once three
/// quarters of the lease have passed unrenewed, before another run may take the output over; the
/// resume then finishes the audit exactly (issue 28: no test ran longer than a lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_renew_its_lease_stops_writing() {
    let moto = Moto::start();
    moto.create_bucket("lease");
    let proxy = Proxy::start(&moto.endpoint).await;
    let sim = start(sim_config(fleet(1_000, 2, 71))).await;
    let op = fleet_audit::sim::Operation::DescribeJobExecution;
    sim.simulator().hold_after(op, 500);
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&sim, dir.path());
    let args = run_argv(
        &things.to_string_lossy(),
        &jobs.to_string_lossy(),
        &sim.endpoint_url(),
        "s3://lease/held/",
        &[
            "--part-rows",
            "100",
            "--lock-lease",
            "2s",
            "--call-timeout",
            "1h",
        ],
    );
    let through_proxy = |extra: Option<&str>| {
        let mut c = tokio::process::Command::new(BIN);
        c.args(&args)
            .args(extra)
            .envs(moto.env())
            .env("AWS_ENDPOINT_URL_S3", &proxy.endpoint)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c.spawn().unwrap()
    };
    let holder = through_proxy(None);
    sim.simulator().until_held(op, 1).await;
    // Its 500 answered rows are 5 committed parts: the writer is idle, nothing is in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let store = moto.store("lease");
    loop {
        if s3_keys(&store, "held")
            .await
            .iter()
            .any(|k| k == "_manifest.json")
        {
            let (manifest, _) = s3_dataset(&moto, "lease", "held").await;
            if manifest.committed.len() == 500 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "500 rows never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The store is cut off for longer than the whole lease: no renewal can land.
    proxy.set_broken(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.simulator().release(op);
    let (code, err) = wait_or_kill(holder, Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("s3://lease/held/"), "{err}");
    assert!(
        err.contains("this run's lock was not renewed for") && err.contains("it stops writing"),
        "{err}"
    );
    proxy.set_broken(false);
    // Nothing was published after the lease lapsed: the manifest's parts add up to its pairs,
    // and a resume (the lapsed lock taken over) finishes with every pair once.
    // (A part uploaded when the manifest could no longer be written is not listed: the resume
    // deletes it.)
    let (manifest, files) = s3_dataset(&moto, "lease", "held").await;
    assert!(!manifest.complete);
    let mut listed_rows = 0u64;
    for p in &manifest.parts {
        let (_, bytes) = files
            .iter()
            .find(|(k, _)| k == &p.file)
            .expect("listed part");
        listed_rows += rows_of_parquet(&p.file, bytes.clone()).len() as u64;
    }
    assert_eq!(listed_rows, manifest.committed.len());
    assert!(listed_rows <= 500, "{listed_rows}");
    let resume = through_proxy(Some("--resume"));
    let (code, err) = wait_or_kill(resume, Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(0), "{err}");
    let (manifest, files) = s3_dataset(&moto, "lease", "held").await;
    assert!(manifest.complete);
    assert_eq!(committed_rows(&manifest, &files).len(), 2_000);
}

/// A connection of this process to the S3 directory `url` in moto's server, with its test keys.
fn connect_dir(moto: &Moto, url: &str) -> fleet_audit::dataset::OutputDir {
    let env = moto.env();
    let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(S3_KEY_ID, S3_SECRET, None, None, "test"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let r = fleet_audit::dataset::Remote::parse(url).unwrap();
    fleet_audit::dataset::OutputDir::Remote(r.connect(&sdk, lookup).unwrap())
}

/// Issue 27: two writers racing for one version of a Delta table in S3 (the lock bypassed): the
/// commit file is created only if absent (`PutMode::Create`), so one wins, the other fails naming
/// the version, and the table holds the winner's files once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_for_one_delta_version_in_s3_one_wins() {
    use fleet_audit::dataset::delta::{commit_over, publish, snapshot, Audit};
    use fleet_audit::dataset::{PartDigest, PartEntry};
    let moto = Moto::start();
    moto.create_bucket("race");
    let connect = || connect_dir(&moto, "s3://race/table/");
    let (one, two) = (connect(), connect());
    let mut m = Manifest::new("pairs:1".into(), 10, "parquet");
    m.table_format = Some("delta".into());
    let part = |file: &str| {
        vec![PartEntry::new(
            file.into(),
            5,
            Some(PartDigest { size: 99, xxh3: 7 }),
        )]
    };
    let (a, b) = (
        part("part-1-aaaaaa-00000.parquet"),
        part("part-2-bbbbbb-00000.parquet"),
    );
    // The parts are there as committed (a publish checks every part it adds).
    let store = moto.store("race");
    for p in a.iter().chain(&b) {
        use object_store::ObjectStoreExt;
        let key = object_store::path::Path::from(format!("table/{}", p.file));
        store.put(&key, vec![b'x'; 99].into()).await.unwrap();
    }
    let audit = |run_id, parts| Audit {
        run_id,
        date: None,
        generation: 0,
        parts,
    };
    // Both writers read the empty table; the first commits version 0.
    let seen_one = snapshot(&one).await.unwrap();
    let seen_two = snapshot(&two).await.unwrap();
    assert_eq!(seen_one.version, None);
    assert_eq!(
        commit_over(&one, &seen_one, &m, &audit("ra", &a))
            .await
            .unwrap(),
        0
    );
    let err = commit_over(&two, &seen_two, &m, &audit("rb", &b))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another writer committed version 0 of the Delta table first")
            && err.contains("s3://race/table/"),
        "{err}"
    );
    let now = snapshot(&two).await.unwrap();
    assert_eq!(now.version, Some(0));
    assert_eq!(
        now.live.keys().collect::<Vec<_>>(),
        ["part-1-aaaaaa-00000.parquet"]
    );
    // Published again, the winner's audit adds nothing; the loser, reading anew, commits version 1.
    assert_eq!(publish(&one, &m, &audit("ra", &a)).await.unwrap(), None);
    assert_eq!(publish(&two, &m, &audit("rb", &b)).await.unwrap(), Some(1));
}

/// Issue 27: a commit PUT that the client sends again after a lost answer (a 5xx, a timeout) finds
/// its own first attempt in place: the same bytes are this commit, not another writer's. Other
/// bytes at the name are another writer's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_commit_put_retried_after_a_lost_answer_is_not_a_lost_race() {
    use fleet_audit::dataset::delta::create_log_file;
    let moto = Moto::start();
    moto.create_bucket("retry");
    let dir = connect_dir(&moto, "s3://retry/table/");
    let name = "_delta_log/00000000000000000000.json";
    let body = br#"{"commitInfo":{"fleetAuditRunId":"r1","timestamp":1}}"#;
    assert!(create_log_file(&dir, name, body).await.unwrap());
    // The same PUT again, as a retry would send it: its own commit.
    assert!(create_log_file(&dir, name, body).await.unwrap());
    // Another writer's bytes at that version: lost.
    let theirs = br#"{"commitInfo":{"fleetAuditRunId":"r2","timestamp":2}}"#;
    assert!(!create_log_file(&dir, name, theirs).await.unwrap());
}
