//! Passwords in user-supplied URLs (`user:password@`) are never printed: not in messages, warnings,
//! debug logs or the summary JSON.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

const PASSWORD: &str = "hunter2-url-password";

/// Runs the binary in `cwd` with debug logs, test credentials and `env`: exit code and everything it
/// printed (stdout, stderr, and the summary JSON when one was written).
async fn run(cwd: &Path, args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut c = isolated_binary(cwd);
    c.arg("run")
        .args(args)
        .args(["--summary-json", "s.json", "--rps", "0"])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDURLTEST")
        .env("AWS_SECRET_ACCESS_KEY", "url-test-secret")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    let child = tokio::time::timeout(Duration::from_secs(120), c.output());
    let out = child.await.expect("the run ends").unwrap();
    let mut all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Ok(s) = std::fs::read_to_string(cwd.join("s.json")) {
        all.push_str(&s);
        std::fs::remove_file(cwd.join("s.json")).unwrap();
    }
    assert!(!all.contains("url-test-secret"), "the secret key leaked");
    (out.status.code(), all)
}

/// The lines of `all` that hold the password (what a failure shows, rather than every debug line).
fn leaks(all: &str) -> Vec<&str> {
    all.lines().filter(|l| l.contains(PASSWORD)).collect()
}

/// The lines of `all` that are not debug logs.
fn messages(all: &str) -> String {
    let lines: Vec<&str> = all.lines().filter(|l| !l.contains("DEBUG")).collect();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_urls_are_never_printed() {
    let server = start(sim_config(fleet(10, 1, 5))).await;
    let url = server.endpoint_url();
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let lists_args = ["--things", "things.txt", "--jobs", "jobs.txt"];

    // A Pushgateway that cannot be reached: a warning that names it, without the password.
    let push = format!("http://admin:{PASSWORD}@127.0.0.1:{}/", free_port());
    let mut args = lists_args.to_vec();
    args.extend(["--out", "a.parquet", "--endpoint-url", &url]);
    args.extend(["--metrics-push", &push]);
    let (code, all) = run(d.path(), &args, &[]).await;
    assert_eq!(code, Some(0), "{}", messages(&all));
    assert!(
        all.contains("warning: cannot push the metrics"),
        "{}",
        messages(&all)
    );
    assert!(all.contains("http://***@127.0.0.1:"), "{}", messages(&all));
    assert!(
        leaks(&all).is_empty(),
        "a push URL's password: {:?}",
        leaks(&all)
    );

    // An S3 endpoint that cannot be reached.
    let s3 = format!("http://admin:{PASSWORD}@127.0.0.1:{}", free_port());
    let mut args = lists_args.to_vec();
    args.extend(["--out", "s3://bucket/audit/", "--endpoint-url", &url]);
    let (code, all) = run(d.path(), &args, &[("AWS_ENDPOINT_URL_S3", s3)]).await;
    assert_eq!(code, Some(2), "{}", messages(&all));
    assert!(
        all.contains("GET http://***@127.0.0.1:"),
        "{}",
        messages(&all)
    );
    assert!(
        leaks(&all).is_empty(),
        "an S3 endpoint's password: {:?}",
        leaks(&all)
    );

    // A live IoT endpoint given with a password, as --endpoint-url, --region-endpoint and
    // AWS_ENDPOINT_URL: the HTTP client's pool logs its key as `("http", user:password@host)`.
    let live = url.replacen("http://", &format!("http://admin:{PASSWORD}@"), 1);
    let region_endpoint = format!("us-east-1={live}");
    for (out, extra, env) in [
        (
            "live1.parquet",
            vec!["--endpoint-url", live.as_str()],
            vec![],
        ),
        (
            "live2.parquet",
            vec![
                "--regions",
                "us-east-1",
                "--region-endpoint",
                region_endpoint.as_str(),
            ],
            vec![],
        ),
        (
            "live3.parquet",
            vec![],
            vec![("AWS_ENDPOINT_URL", live.clone())],
        ),
    ] {
        let mut args = lists_args.to_vec();
        args.extend(["--out", out]);
        args.extend(extra);
        let (code, all) = run(d.path(), &args, &env).await;
        assert_eq!(code, Some(0), "{out}: {}", messages(&all));
        assert!(all.contains("DEBUG"), "{out}: debug logs are on");
        assert!(
            leaks(&all).is_empty(),
            "{out}: a live endpoint's password: {:?}",
            &leaks(&all)[..leaks(&all).len().min(3)]
        );
    }

    // An IoT (and STS) endpoint that cannot be reached.
    let iot = format!("http://admin:{PASSWORD}@127.0.0.1:{}", free_port());
    let mut args = lists_args.to_vec();
    args.extend(["--out", "c.parquet", "--endpoint-url", &iot]);
    args.extend(["--call-timeout", "1s", "--max-attempts", "1"]);
    let (code, all) = run(d.path(), &args, &[]).await;
    assert!(code.is_some(), "{}", messages(&all));
    assert!(
        leaks(&all).is_empty(),
        "an endpoint's password: {:?}",
        leaks(&all)
    );
}
