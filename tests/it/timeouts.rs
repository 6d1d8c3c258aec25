//! An endpoint that accepts connections and never answers: every SDK call ends within its timeouts,
//! and one signal ends a run still setting up.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// A listener on 127.0.0.1:0 that accepts every connection, reads nothing, answers nothing and keeps
/// it open: `http://ADDR` and the number of connections accepted so far.
async fn blackhole() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (url, accepted)
}

/// The binary against `url` (STS, IoT and every other service: `--endpoint-url`), with test
/// credentials and lists of 20 things and one job in `cwd`.
fn spawn(cwd: &Path, url: &str, extra: &[&str]) -> tokio::process::Child {
    let things: String = (0..20).map(|i| format!("thing-{i}\n")).collect();
    std::fs::write(cwd.join("things.txt"), things).unwrap();
    std::fs::write(cwd.join("jobs.txt"), "job-1\n").unwrap();
    isolated_binary(cwd)
        .args(["run", "--things", "things.txt", "--jobs", "jobs.txt"])
        .args(["--out", "o.parquet", "--endpoint-url", url, "--rps", "0"])
        .args(extra)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDHANGTEST")
        .env("AWS_SECRET_ACCESS_KEY", "hang-test-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_ends_the_run_within_its_timeouts() {
    let (url, accepted) = blackhole().await;
    let d = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = spawn(
        d.path(),
        &url,
        &["--call-timeout", "1s", "--max-attempts", "2"],
    );
    // 1 s a call, 2 attempts: a few seconds; 30 s is far beyond, 90 s is when the test gives up.
    let (code, err) = wait_or_kill(child, Some(Duration::from_secs(90))).await;
    let took = started.elapsed();
    assert!(accepted.load(Ordering::SeqCst) > 0, "no connection: {err}");
    assert_eq!(code, Some(1), "after {took:?}: {err}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");
    assert!(
        err.contains("the endpoint cannot be reached") && err.contains("timed out"),
        "{err}"
    );
    assert!(!d.path().join("o.parquet").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sigterm_ends_a_run_waiting_on_sts() {
    let (url, accepted) = blackhole().await;
    let d = tempfile::tempdir().unwrap();
    // A minute a call: the run would wait that long on STS GetCallerIdentity.
    let child = spawn(d.path(), &url, &["--call-timeout", "60s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the run never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-15", &child.id().unwrap().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, err) = wait_or_kill(child, Some(Duration::from_secs(30))).await;
    let took = sent.elapsed();
    assert_eq!(code, Some(143), "after {took:?}: {err}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {err}");
    assert!(!d.path().join("o.parquet").exists());
    assert!(
        !d.path().join(".o.parquet.fleet-audit.lock").exists(),
        "the lock file is removed"
    );
}
