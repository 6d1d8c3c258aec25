//! Long audits that survive interrupts, kill -9, and every fault the simulator can inject: every pair
//! ends as exactly one row, with the same contents as an uninterrupted run.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use fleet_audit::audit::run::run;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::{Faults, Latency, Operation};

const BIN: &str = env!("CARGO_BIN_EXE_fleet-audit");

fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_to_the_same_dataset() {
    let server = start_paced(fleet(400, 5, 31)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let spec = InputSpec::Lists { things, jobs };
    let out = dir.path().join("ds");
    let mut rc = run_config(&server.endpoint_url(), spec.clone(), &out);
    rc.output.part_rows = 150;
    rc.engine.concurrency = 8;

    // Interrupt after some rows.
    let summary = run_interrupted(rc.clone(), &server, Operation::DescribeJobExecution, 700).await;
    assert!(!summary.complete);
    let first = read_rows(&out);
    assert!(first.len() >= 600 && first.len() < 2000, "{}", first.len());
    assert!(tmp_files(&out).is_empty());

    // Resume: the rest is fetched, nothing twice.
    let calls_before = server.stats().calls(Operation::DescribeJobExecution);
    rc.output.resume = true;
    let s2 = run(rc.clone(), no_shutdown()).await.unwrap();
    assert!(s2.complete);
    assert_eq!(s2.resumed as usize, first.len());
    let calls = server.stats().calls(Operation::DescribeJobExecution) - calls_before;
    assert_eq!(
        calls,
        2000 - first.len() as u64,
        "only the missing pairs are called"
    );
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 2000);
    let got = contents(&rows);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }

    // A complete dataset resumes to nothing.
    let s3 = run(rc.clone(), no_shutdown()).await.unwrap();
    assert_eq!((s3.attempts, s3.complete), (0, true));

    // Same contents as an uninterrupted run.
    let out2 = dir.path().join("ds2");
    run(
        run_config(&server.endpoint_url(), spec, &out2),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert_eq!(contents(&read_rows(&out2)), got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_other_inputs_is_refused() {
    let server = start(sim_config(fleet(50, 2, 3))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("ds");
    let rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists {
            things: things.clone(),
            jobs: jobs.clone(),
        },
        &out,
    );
    run(rc, no_shutdown()).await.unwrap();
    std::fs::write(&things, "thing-000001\nthing-000002\n").unwrap();
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.resume = true;
    let calls = server.stats().total_calls();
    let err = run(rc, no_shutdown()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the --things file's content differs from what it was written from"),
        "{err}"
    );
    assert_eq!(server.stats().total_calls(), calls);
}

/// Starts the binary with test credentials and a clean AWS environment, stderr captured.
fn spawn_binary(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDKILLTEST")
        .env("AWS_SECRET_ACCESS_KEY", "kill-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs the binary; returns its exit status after `kill_after` (SIGKILL) or at its end.
async fn run_binary(args: &[&str], kill_after: Option<Duration>) -> (Option<i32>, String) {
    wait_or_kill(spawn_binary(args), kill_after).await
}

/// Runs the binary and sends it `signal` at a known point, mid-run: the simulator answers `calls`
/// more DescribeJobExecution requests, holds the next ones, the signal is sent while one is held,
/// then the held ones are answered.
async fn run_binary_signal_after_calls(
    args: &[&str],
    sim: &fleet_audit::sim::Simulator,
    calls: u64,
    signal: i32,
) -> (Option<i32>, String) {
    let op = Operation::DescribeJobExecution;
    sim.hold_after(op, calls);
    let mut child = spawn_binary(args);
    until_held_or_exit(sim, op, &mut child).await;
    send_signal(child.id().unwrap(), signal);
    sim.release(op);
    wait_or_kill(child, None).await
}

/// Sends a signal with the system's `kill` command (no libc dependency for one call).
fn send_signal(pid: u32, sig: i32) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_seeded_moments_then_resume_loses_and_doubles_nothing() {
    let mut cfg = sim_config(fleet(1_500, 4, 77));
    cfg.latency = Latency::Fixed(Duration::from_millis(1));
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    lists(&server, dir.path());
    let url = server.endpoint_url();
    let d = dir.path().to_string_lossy().into_owned();
    let (things, jobs, out) = (
        format!("{d}/things.txt"),
        format!("{d}/jobs.txt"),
        format!("{d}/ds"),
    );
    let base = [
        "run",
        "--things",
        &things,
        "--jobs",
        &jobs,
        "--out",
        &out,
        "--endpoint-url",
        &url,
        "--rps",
        "0",
        "--concurrency",
        "4",
        "--part-rows",
        "300",
        "--quiet",
    ];
    // Killed at counted points: each of the first rounds gets a number of describes answered (drawn
    // from a fixed seed), then the simulator holds the next ones and the run is SIGKILLed. Together
    // the rounds get fewer describes than the 6,000 pairs, so none can finish before its kill point;
    // the last round runs to the end.
    let op = Operation::DescribeJobExecution;
    let points = kill_points(1_500, 5, 300..1_100);
    assert!(points.iter().sum::<u64>() < 6_000);
    for (round, &n) in points.iter().enumerate() {
        let mut args = base.to_vec();
        if round > 0 {
            args.push("--resume");
        }
        server.simulator().hold_after(op, n);
        kill_when_held(server.simulator(), op, spawn_binary(&args)).await;
    }
    let mut args = base.to_vec();
    args.push("--resume");
    let (code, err) = run_binary(&args, None).await;
    assert_eq!(code, Some(0), "the last round finishes: {err}");
    let rows = read_rows(Path::new(&out));
    assert_eq!(rows.len(), 6_000);
    let got = contents(&rows);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
    assert!(tmp_files(Path::new(&out)).is_empty());
    // An uninterrupted run of the same inputs holds the same contents.
    let out2 = format!("{d}/ds2");
    let mut args = base.to_vec();
    args[6] = &out2;
    let (code, err) = run_binary(&args, None).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(contents(&read_rows(Path::new(&out2))), got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_commits_and_says_how_to_resume() {
    let mut cfg = sim_config(fleet(2_000, 3, 5));
    cfg.latency = Latency::Fixed(Duration::from_millis(3));
    let server = start(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    lists(&server, dir.path());
    let url = server.endpoint_url();
    let d = dir.path().to_string_lossy().into_owned();
    let (things, jobs, out) = (
        format!("{d}/things.txt"),
        format!("{d}/jobs.txt"),
        format!("{d}/ds"),
    );
    let args = [
        "run",
        "--things",
        &things,
        "--jobs",
        &jobs,
        "--out",
        &out,
        "--endpoint-url",
        &url,
        "--rps",
        "0",
        "--concurrency",
        "4",
    ];
    let sim = server.simulator().clone();
    let (code, err) = run_binary_signal_after_calls(&args, &sim, 200, 2).await;
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let first = read_rows(Path::new(&out)).len();
    assert!(first > 0 && first < 6_000, "{first}");
    let mut args = args.to_vec();
    args.push("--resume");
    let (code, err) = run_binary(&args, None).await;
    assert_eq!(code, Some(0), "{err}");
    let rows = read_rows(Path::new(&out));
    assert_eq!(contents(&rows).len(), 6_000);
    // SIGTERM exits 143.
    let out3 = format!("{d}/ds3");
    let mut args = args.to_vec();
    args.pop();
    args[6] = &out3;
    let (code, err) = run_binary_signal_after_calls(&args, &sim, 200, 15).await;
    assert_eq!(code, Some(143), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_every_knob_alone_and_combined() {
    let knobs: Vec<(&str, Faults)> = vec![
        (
            "5xx",
            Faults {
                p_5xx: 0.3,
                ..Faults::default()
            },
        ),
        (
            "drop",
            Faults {
                p_drop: 0.3,
                ..Faults::default()
            },
        ),
        (
            "slow",
            Faults {
                p_slow: 0.2,
                slow: Duration::from_secs(30),
                ..Faults::default()
            },
        ),
        (
            "garbage",
            Faults {
                p_garbage: 0.3,
                ..Faults::default()
            },
        ),
        (
            "throttle",
            Faults {
                p_throttle: 0.3,
                ..Faults::default()
            },
        ),
        (
            "all",
            Faults {
                p_5xx: 0.1,
                p_drop: 0.1,
                p_slow: 0.05,
                p_garbage: 0.1,
                p_throttle: 0.1,
                slow: Duration::from_secs(30),
            },
        ),
    ];
    for (name, faults) in knobs {
        let mut spec = fleet(120, 3, 13);
        spec.future_status = 0.05;
        let mut cfg = sim_config(spec);
        cfg.faults = faults;
        cfg.latency = "1,5".parse().unwrap();
        let server = start(cfg).await;
        let dir = tempfile::tempdir().unwrap();
        let (things, jobs) = lists(&server, dir.path());
        let out = dir.path().join("ds");
        let mut rc = run_config(
            &server.endpoint_url(),
            InputSpec::Lists { things, jobs },
            &out,
        );
        rc.engine.max_attempts = 30;
        rc.engine.call_timeout = Duration::from_millis(250);
        rc.output.part_rows = 100;
        let s = run(rc, no_shutdown()).await.unwrap();
        let rows = read_rows(&out);
        assert_eq!(rows.len(), 360, "{name}");
        assert_eq!(contents(&rows).len(), 360, "{name}");
        assert_eq!(s.errors, 0, "{name}: every pair ends with its real answer");
        for r in &rows {
            assert_row_matches_fleet(r, server.simulator().fleet());
        }
        let stats = server.stats();
        let injected: u64 = stats.faults.values().sum();
        assert!(injected > 0, "{name}: no fault injected");
        assert!(s.attempts > 360, "{name}: faults must cost attempts");
        server.stop().await;
    }
}

/// Unmounts a test filesystem however the test ends.
struct Mounted(std::path::PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A 160 KiB tmpfs at `dir/small`: a disk that fills up mid-run (the tests run as root here and in
/// CI); unmounted when the guard is dropped.
fn small_disk(dir: &std::path::Path) -> (std::path::PathBuf, Mounted) {
    let mnt = dir.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=160k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a tmpfs needs root");
    (mnt.clone(), Mounted(mnt))
}

/// The binary on a disk that fills up mid-run: parts were committed before it filled, so it says they
/// are kept and that `--resume` finishes the audit, never that nothing was committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_says_what_was_committed_and_how_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (mnt, _guard) = small_disk(dir.path());
    let server = start(sim_config(fleet(3_000, 3, 29))).await;
    lists(&server, dir.path());
    let args = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "small/ds",
        "--part-rows",
        "500",
    ];
    let child = spawn_against(dir.path(), &server.endpoint_url(), &args);
    let (code, err) = wait_or_kill(child, Some(std::time::Duration::from_secs(120))).await;
    assert_eq!(code, Some(1), "{err}");
    let m = fleet_audit::dataset::Manifest::load(&mnt.join("ds"))
        .unwrap()
        .unwrap();
    assert!(
        !m.parts.is_empty(),
        "parts were committed before the disk filled: {err}"
    );
    assert!(
        err.contains("No space left on device")
            && err.contains("the rows committed so far are kept in small/ds")
            && err.contains("--resume"),
        "{err}"
    );
    assert!(!err.contains("nothing was committed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_and_committed_parts_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (mnt, _guard) = small_disk(dir.path());

    let server = start(sim_config(fleet(3_000, 3, 29))).await;
    let (things, jobs) = lists(&server, dir.path());
    let out = mnt.join("ds");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.part_rows = 500;
    let err = run(rc.clone(), no_shutdown()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(
        msg.contains(&out.display().to_string()),
        "the message names the file: {msg}"
    );

    // What was committed is valid and listed; nothing half-written remains.
    let m = fleet_audit::dataset::Manifest::load(&out).unwrap().unwrap();
    assert!(
        !m.parts.is_empty(),
        "some parts were committed before the disk filled"
    );
    let rows = read_rows(&out);
    assert_eq!(
        rows.len() as u64,
        m.parts.iter().map(|p| p.rows).sum::<u64>()
    );
    assert_eq!(m.committed.len(), rows.len() as u64);
    assert!(tmp_files(&out).is_empty(), "{:?}", tmp_files(&out));

    // With room again, --resume finishes the dataset exactly.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=20m"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(grown);
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let rows = read_rows(&out);
    assert_eq!(contents(&rows).len(), 9_000);
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
}
