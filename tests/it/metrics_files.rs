//! Issue 23, items 2 and 3: a metrics file is readable as the umask allows (a node_exporter running
//! as another user reads it), and a file a flag names that cannot be written is bad input before
//! any call, not an error after the audit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::*;

/// The binary under `sh -c 'umask U; exec …'`, against `url`, in `cwd`.
async fn under_umask(cwd: &Path, umask: &str, args: &[&str]) -> (Option<i32>, String) {
    let script = format!("umask {umask}; exec \"$0\" \"$@\"");
    let mut c = tokio::process::Command::new("sh");
    c.current_dir(cwd)
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_fleet-audit"))
        .args(args)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDMETRICS")
        .env("AWS_SECRET_ACCESS_KEY", "metrics-secret")
        .env("AWS_CONFIG_FILE", cwd.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    wait_or_kill(
        c.spawn().unwrap(),
        Some(std::time::Duration::from_secs(120)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_files_follow_the_umask_and_bad_paths_are_refused_before_any_call() {
    let server = start(sim_config(fleet(20, 2, 107))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let run = |out: &'static str, extra: &'static [&'static str]| {
        let mut a = vec![
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--rps",
            "0",
            "--quiet",
            "--endpoint-url",
            &url,
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (umask, mode, out) in [
        ("022", 0o644, "a"),
        ("077", 0o600, "b"),
        ("002", 0o664, "c"),
    ] {
        let prom = format!("{out}.prom");
        let mut a = run(out, &[]);
        a.extend(["--metrics".to_string(), prom.clone()]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, stderr) = under_umask(d.path(), umask, &a).await;
        assert_eq!(code, Some(0), "{stderr}");
        let got = std::fs::metadata(d.path().join(&prom))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(got, mode, "umask {umask}: {got:o}");
        // The report's metrics too.
        let rprom = format!("{out}-report.prom");
        let (code, stderr) =
            under_umask(d.path(), umask, &["report", out, "--metrics", &rprom]).await;
        assert_eq!(code, Some(0), "{stderr}");
        let got = std::fs::metadata(d.path().join(&rprom))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(got, mode, "report, umask {umask}: {got:o}");
    }

    // A folder that does not exist, or a folder where a file goes: exit 2 before any call.
    let calls = server.stats().total_calls();
    for (flag, value) in [
        ("--metrics", "missing/m.prom"),
        ("--summary-json", "missing/s.json"),
        ("--metrics", "."),
    ] {
        let mut a = run("never", &[]);
        a.extend([flag.to_string(), value.to_string()]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, stderr) = under_umask(d.path(), "022", &a).await;
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(&flag[2..]), "{flag}: {stderr}");
        assert!(!d.path().join("never").exists(), "{flag}: nothing written");
    }
    assert_eq!(server.stats().total_calls(), calls, "no call made");
    for (flag, value) in [
        ("--metrics", "missing/m.prom"),
        ("--html", "missing/r.html"),
    ] {
        let (code, stderr) = under_umask(d.path(), "022", &["report", "a", flag, value]).await;
        assert_eq!(code, Some(2), "report {flag}: {stderr}");
        assert!(stderr.contains("does not exist"), "report {flag}: {stderr}");
    }
}
