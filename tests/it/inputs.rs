//! Inputs that are not regular files (a FIFO, `/dev/stdin`, a device) and lines without bounds, as a
//! user passes them to the binary.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use tokio::io::AsyncWriteExt;

/// The binary with test credentials against `url`, in `cwd`, stdout and stderr piped.
fn binary(cwd: &Path, url: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = isolated_binary(cwd);
    c.arg("run")
        .args(args)
        .args(["--endpoint-url", url, "--rps", "0", "--quiet"])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDINPUTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "input-test-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Runs the binary (stdin closed), killed after 60 s: exit code and stderr.
async fn run(cwd: &Path, url: &str, args: &[&str]) -> (Option<i32>, String) {
    let child = binary(cwd, url, args).stdin(Stdio::null()).spawn().unwrap();
    wait_or_kill(child, Some(Duration::from_secs(60))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_and_dev_stdin_give_the_rows_of_a_regular_file() {
    let server = start(sim_config(fleet(40, 2, 8))).await;
    let url = server.endpoint_url();
    let d = tempfile::tempdir().unwrap();
    let (things, _) = lists(&server, d.path());
    let body = std::fs::read(&things).unwrap();

    let (code, err) = run(
        d.path(),
        &url,
        &[
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "file.parquet",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let want = contents(&read_rows(&d.path().join("file.parquet")));
    assert_eq!(want.len(), 80);

    // A FIFO, fed once by a writer thread (it blocks until the run opens it).
    let fifo = d.path().join("things.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let (fifo, body) = (fifo.clone(), body.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
            f.write_all(&body)
        })
    };
    let (code, err) = run(
        d.path(),
        &url,
        &[
            "--things",
            "things.fifo",
            "--jobs",
            "jobs.txt",
            "--out",
            "fifo.parquet",
        ],
    )
    .await;
    if !writer.is_finished() {
        // The run never opened the FIFO: a reader that does not wait lets the writer go.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
    }
    let _ = writer.join();
    assert_eq!(code, Some(0), "a FIFO: {err}");
    assert_eq!(contents(&read_rows(&d.path().join("fifo.parquet"))), want);

    // `/dev/stdin`, a pipe.
    let mut child = binary(
        d.path(),
        &url,
        &[
            "--things",
            "/dev/stdin",
            "--jobs",
            "jobs.txt",
            "--out",
            "stdin.parquet",
        ],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).await.unwrap();
    drop(stdin);
    let (code, err) = wait_or_kill(child, Some(Duration::from_secs(60))).await;
    assert_eq!(code, Some(0), "/dev/stdin: {err}");
    assert_eq!(contents(&read_rows(&d.path().join("stdin.parquet"))), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_lines_stop_at_the_cap_with_a_short_message() {
    let server = start(sim_config(fleet(10, 1, 1))).await;
    let url = server.endpoint_url();
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("jobs.txt"), "job-000\n").unwrap();

    // /dev/zero: one line that never ends.
    let started = std::time::Instant::now();
    let (code, err) = run(
        d.path(),
        &url,
        &[
            "--things",
            "/dev/zero",
            "--jobs",
            "jobs.txt",
            "--out",
            "z.parquet",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{}", &err[..err.len().min(500)]);
    assert!(
        err.contains("/dev/zero:1:") && err.contains("65536 bytes"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 4096, "{} bytes of stderr", err.len());
    assert!(started.elapsed() < Duration::from_secs(30));

    // A regular file with a line of a megabyte.
    let mut big = b"thing-1\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    big.push(b'\n');
    std::fs::write(d.path().join("big.txt"), &big).unwrap();
    let (code, err) = run(
        d.path(),
        &url,
        &[
            "--things",
            "big.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "b.parquet",
        ],
    )
    .await;
    assert_eq!(code, Some(2), "{}", &err[..err.len().min(500)]);
    assert!(
        err.contains("big.txt:2:") && err.contains("65536 bytes"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 4096, "{} bytes of stderr", err.len());
    assert_eq!(server.stats().total_calls(), 0);
}
