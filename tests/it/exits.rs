//! Exit codes that a scheduler acts on (issue 28): 4, "complete, but some pairs ended as error rows",
//! which the Kubernetes Job's `podFailurePolicy` fails at once (`deploy/k8s/indexed-job.yaml`).

use crate::common::*;
use fleet_audit::sim::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_audit_with_error_rows_exits_4_and_holds_them() {
    // Every answer has a 30% chance of a 500; with one attempt a pair, some pairs end as error rows
    // (0.7^400 of never: impossible in practice), the others are described.
    let mut config = sim_config(fleet(200, 2, 67));
    config.faults = Faults {
        p_5xx: 0.3,
        ..Faults::default()
    };
    let server = start(config).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let mut c = isolated_binary(d.path());
    c.args([
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "ds",
        "--max-attempts",
        "1",
        "--rps",
        "0",
        "--quiet",
        "--summary-json",
        "s.json",
        "--endpoint-url",
    ])
    .arg(server.endpoint_url())
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDEXITS")
    .env("AWS_SECRET_ACCESS_KEY", "exits-secret")
    .stderr(std::process::Stdio::piped());
    let (code, stderr) = wait_or_kill(c.spawn().unwrap(), None).await;
    assert_eq!(code, Some(4), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["complete"], true, "{s}");
    let errors = s["errors"].as_u64().unwrap();
    assert!(errors > 0 && errors < 400, "{s}");
    let rows = read_rows(&d.path().join("ds"));
    assert_eq!(rows.len(), 400, "a row per pair, errors included");
    let error_rows = rows.iter().filter(|r| r.outcome == "error").count() as u64;
    assert_eq!(
        error_rows, errors,
        "the error rows are the summary's errors"
    );

    // The same audit without faults has no error row: exit 0.
    let clean = start(sim_config(fleet(200, 2, 67))).await;
    let mut c = isolated_binary(d.path());
    c.args([
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "clean",
        "--max-attempts",
        "1",
        "--rps",
        "0",
        "--quiet",
        "--endpoint-url",
    ])
    .arg(clean.endpoint_url())
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDEXITS")
    .env("AWS_SECRET_ACCESS_KEY", "exits-secret")
    .stderr(std::process::Stdio::piped());
    let (code, stderr) = wait_or_kill(c.spawn().unwrap(), None).await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// `describe` exits as AWS CLI v2 does: 255 for anything else (here an endpoint nobody listens on),
/// 130 on Ctrl-C (here while the simulator holds the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_exits_255_when_it_cannot_connect_and_130_on_ctrl_c() {
    let d = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let describe = |url: &str| {
        let mut c = isolated_binary(d.path());
        c.args([
            "describe",
            "--job-id",
            "job-000",
            "--thing-name",
            "thing-000001",
        ])
        .args(["--endpoint-url", url])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXITS")
        .env("AWS_SECRET_ACCESS_KEY", "exits-secret")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
        c
    };
    let (code, stderr) = wait_or_kill(
        describe(&closed).spawn().unwrap(),
        Some(std::time::Duration::from_secs(120)),
    )
    .await;
    assert_eq!(code, Some(255), "{stderr}");

    let mut config = sim_config(fleet(10, 1, 71));
    config.latency = fleet_audit::sim::Latency::Fixed(std::time::Duration::from_secs(60));
    let server = start(config).await;
    let child = describe(&server.endpoint_url()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server
        .stats()
        .calls(fleet_audit::sim::Operation::DescribeJobExecution)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "never called");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (code, stderr) = wait_or_kill(child, Some(std::time::Duration::from_secs(50))).await;
    assert_eq!(code, Some(130), "{stderr}");
}

/// `describe` makes its call through the product's call layer: a throttled attempt is retried with
/// backoff up to its 5 attempts (counted by the simulator), then the AWS CLI's error line, exit 254.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_retries_a_throttle_through_the_call_layer() {
    let d = tempfile::tempdir().unwrap();
    let describe = |url: &str| {
        let mut c = isolated_binary(d.path());
        c.args(["describe", "--job-id", "job-000", "--thing-name"])
            .arg("thing-000001")
            .args(["--endpoint-url", url, "--query", "execution.jobId"])
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXITS")
            .env("AWS_SECRET_ACCESS_KEY", "exits-secret")
            .kill_on_drop(true);
        c
    };
    let mut config = sim_config(fleet(10, 1, 71));
    config.faults = Faults {
        p_throttle: 1.0,
        ..Faults::default()
    };
    let server = start(config).await;
    let o = describe(&server.endpoint_url())
        .arg("--debug")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(254), "{stderr}");
    assert!(
        stderr.contains("DEBUG - DescribeJobExecution: 5 attempts, 5 throttled"),
        "{stderr}"
    );
    assert!(
        stderr.contains("An error occurred (ThrottlingException) when calling the DescribeJobExecution operation"),
        "{stderr}"
    );
    let calls = server
        .stats()
        .calls(fleet_audit::sim::Operation::DescribeJobExecution);
    assert_eq!((calls, server.stats().throttled), (5, 5));

    // The service's quota, not a fault knob: one token, given back only after 1,000 s. The first
    // describe takes it (one call, exit 0); the second is throttled on each of its 5 attempts.
    let mut config = sim_config(fleet(10, 1, 71));
    config.quota_rps = Some(0.001);
    config.quota_burst = Some(1);
    let server = start(config).await;
    let o = describe(&server.endpoint_url()).output().await.unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "\"job-000\"\n");
    let o = describe(&server.endpoint_url()).output().await.unwrap();
    assert_eq!(
        o.status.code(),
        Some(254),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = server.stats();
    assert_eq!(
        (
            s.calls(fleet_audit::sim::Operation::DescribeJobExecution),
            s.throttled
        ),
        (6, 5)
    );
}
