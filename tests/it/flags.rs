//! Flags no other test held (issue 28): each test fails when its flag is ignored. Through the binary,
//! against the simulator, the expected rows taken from the simulator's own fleet.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use fleet_audit::sim::{Latency, Operation};

/// The binary in `cwd` with test credentials and region; `args` as given.
fn binary(cwd: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = isolated_binary(cwd);
    c.args(args)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDFLAGS")
        .env("AWS_SECRET_ACCESS_KEY", "flags-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn fa(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    wait_or_kill(
        binary(cwd, args).spawn().unwrap(),
        Some(Duration::from_secs(120)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_filters_by_execution_and_job_status_and_describes_what_it_is_told() {
    let server = start(sim_config(fleet(400, 6, 71))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let f = server.simulator().fleet();
    let executions = |keep: &dyn Fn(&fleet_audit::sim::fleet::Execution) -> bool| {
        let mut n = 0usize;
        for j in 0..f.jobs().len() as u32 {
            for i in 0..400 {
                if f.execution(i, j).is_some_and(|e| keep(&e)) {
                    n += 1;
                }
            }
        }
        n
    };
    let base = [
        "run",
        "--discover",
        "--rps",
        "0",
        "--quiet",
        "--endpoint-url",
        &url,
    ];

    // --execution-status QUEUED: the QUEUED executions, all of them, nothing else.
    let queued = executions(&|e| e.status == "QUEUED");
    let all = executions(&|_| true);
    assert!(queued > 0 && queued < all, "{queued} of {all}");
    let mut a = base.to_vec();
    a.extend([
        "--jobs",
        "jobs.txt",
        "--execution-status",
        "QUEUED",
        "--out",
        "q",
    ]);
    let (code, stderr) = fa(d.path(), &a).await;
    assert_eq!(code, Some(0), "{stderr}");
    let rows = read_rows(&d.path().join("q"));
    assert_eq!(rows.len(), queued, "{stderr}");
    assert!(rows.iter().all(|r| r.status.as_deref() == Some("QUEUED")));

    // --job-status IN_PROGRESS (no job list): the executions of those jobs only.
    let running: HashSet<&str> = f
        .jobs()
        .iter()
        // As ListJobs reports it now: a windowed job outside its window is SCHEDULED.
        .filter(|j| f.job_status(j.index) == "IN_PROGRESS")
        .map(|j| j.id.as_str())
        .collect();
    assert!(
        !running.is_empty() && running.len() < f.jobs().len(),
        "{running:?}"
    );
    let mut a = base.to_vec();
    a.extend(["--job-status", "IN_PROGRESS", "--out", "running"]);
    let (code, stderr) = fa(d.path(), &a).await;
    assert_eq!(code, Some(0), "{stderr}");
    let rows = read_rows(&d.path().join("running"));
    let jobs: HashSet<&str> = rows.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(jobs, running, "{stderr}");
    let want = executions(&|e| running.contains(f.jobs()[e.job_index as usize].id.as_str()));
    assert_eq!(rows.len(), want);

    // --describe all | active | none: how many DescribeJobExecution calls follow the listing.
    let active = executions(&|e| matches!(e.status, "QUEUED" | "IN_PROGRESS"));
    assert!(active > 0 && active < all);
    for (mode, describes) in [("all", all), ("active", active), ("none", 0)] {
        server.simulator().reset_stats();
        let out = format!("describe-{mode}");
        let mut a = base.to_vec();
        a.extend(["--jobs", "jobs.txt", "--describe", mode, "--out", &out]);
        let (code, stderr) = fa(d.path(), &a).await;
        assert_eq!(code, Some(0), "{mode}: {stderr}");
        assert_eq!(read_rows(&d.path().join(&out)).len(), all, "{mode}");
        assert_eq!(
            server.stats().calls(Operation::DescribeJobExecution) as usize,
            describes,
            "--describe {mode}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn things_from_standard_input_are_the_things_of_the_file() {
    let server = start(sim_config(fleet(60, 2, 73))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let common = [
        "--jobs",
        "jobs.txt",
        "--rps",
        "0",
        "--quiet",
        "--endpoint-url",
        &url,
    ];
    let mut a = vec!["run", "--things", "things.txt", "--out", "from-file"];
    a.extend(common);
    let (code, stderr) = fa(d.path(), &a).await;
    assert_eq!(code, Some(0), "{stderr}");
    let mut a = vec!["run", "--things", "-", "--out", "from-stdin"];
    a.extend(common);
    let mut c = binary(d.path(), &a);
    c.stdin(std::fs::File::open(d.path().join("things.txt")).unwrap());
    let (code, stderr) = wait_or_kill(c.spawn().unwrap(), Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(0), "{stderr}");
    let key = |p: &str| {
        let mut k: Vec<(String, String, Option<String>)> = read_rows(&d.path().join(p))
            .into_iter()
            .map(|r| (r.thing_name, r.job_id, r.status))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key("from-stdin").len(), 120);
    assert_eq!(key("from-stdin"), key("from-file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_interval_commits_a_part_at_least_that_often() {
    // 1,000 pairs at 2 ms an answer, 2 at a time: at least a second, however fast the machine (a
    // slower one only adds parts); a part every 100 ms gives several parts, the default (5 min) one.
    let server = start_paced(fleet(500, 2, 79)).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    for (out, extra) in [
        ("ticked", vec!["--part-interval", "100ms"]),
        ("default", vec![]),
    ] {
        let mut a = vec![
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--rps",
            "0",
            "--quiet",
            "--concurrency",
            "2",
            "--endpoint-url",
            &url,
            "--out",
            out,
        ];
        a.extend(extra);
        let (code, stderr) = fa(d.path(), &a).await;
        assert_eq!(code, Some(0), "{stderr}");
        let m = fleet_audit::dataset::Manifest::load(&d.path().join(out))
            .unwrap()
            .unwrap();
        let rows: u64 = m.parts.iter().map(|p| p.rows).sum();
        assert_eq!(rows, 1_000);
        if out == "ticked" {
            assert!(m.parts.len() >= 3, "{out}: {} parts", m.parts.len());
        } else {
            assert_eq!(m.parts.len(), 1, "{out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iot_endpoint_can_come_from_aws_endpoint_url_iot() {
    let server = start(sim_config(fleet(20, 2, 83))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let a = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--rps",
        "0",
        "--quiet",
        "--out",
        "ds",
    ];
    let mut c = binary(d.path(), &a);
    c.env("AWS_ENDPOINT_URL_IOT", server.endpoint_url())
        // STS from the same simulator, so the account is known and nothing leaves the machine.
        .env("AWS_ENDPOINT_URL_STS", server.endpoint_url());
    let (code, stderr) = wait_or_kill(c.spawn().unwrap(), Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 40);
    assert_eq!(read_rows(&d.path().join("ds")).len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sts_leaves_the_account_unknown_and_the_audit_goes_on() {
    let server = start(sim_config(fleet(20, 2, 89))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    // A port nothing listens on: STS is refused at once.
    let closed = free_port();
    let url = server.endpoint_url();
    // (--endpoint-url would serve STS too: the services' own variables keep them apart.)
    for (out, sts) in [
        ("ds", format!("http://127.0.0.1:{closed}")),
        ("known", url.clone()),
    ] {
        let a = [
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--rps",
            "0",
            "--quiet",
            "--out",
            out,
        ];
        let mut c = binary(d.path(), &a);
        c.env("AWS_ENDPOINT_URL_IOT", &url)
            .env("AWS_ENDPOINT_URL_STS", &sts);
        let (code, stderr) = wait_or_kill(c.spawn().unwrap(), Some(Duration::from_secs(120))).await;
        assert_eq!(code, Some(0), "{out}: {stderr}");
        let rows = read_rows(&d.path().join(out));
        assert_eq!(rows.len(), 40, "{out}");
        if out == "ds" {
            assert!(
                rows.iter().all(|r| r.account_id.is_none()),
                "account unknown"
            );
        } else {
            // With STS reachable, the same audit knows its account.
            assert!(rows.iter().all(|r| r.account_id.is_some()), "account known");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_run_without_waiting_for_calls_in_flight() {
    // Every answer takes 60 s: after the first SIGINT the run waits for its calls in flight; the
    // second ends it at once, long before any of them could answer.
    let mut config = sim_config(fleet(40, 2, 97));
    config.latency = Latency::Fixed(Duration::from_secs(60));
    let server = start(config).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let a = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--rps",
        "0",
        "--quiet",
        "--out",
        "ds",
        "--call-timeout",
        "5m",
        "--concurrency",
        "4",
        "--endpoint-url",
        &url,
    ];
    let child = binary(d.path(), &a).spawn().unwrap();
    let pid = child.id().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.stats().calls(Operation::DescribeJobExecution) < 4 {
        assert!(Instant::now() < deadline, "the run never made its calls");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kill = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success())
    };
    kill("-INT");
    // The first signal is taken (the run says it is stopping) and the run goes on waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill("-INT");
    let started = Instant::now();
    let (code, stderr) = wait_or_kill(child, Some(Duration::from_secs(50))).await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "ended by the second signal, not by an answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_targets_in_flight_audits_that_many_targets_at_once() {
    // Three regions, a simulator each (2 ms an answer): with one target in flight their calling
    // phases never overlap; with three, they do (each takes 50 ms at least, all start together).
    use fleet_audit::aws::targets::TargetFlags;
    use fleet_audit::input::InputSpec;
    let regions = ["eu-west-1", "ap-south-1", "us-west-2"];
    for in_flight in [1usize, 3] {
        let mut servers = Vec::new();
        for _ in regions {
            servers.push(start_paced(fleet(50, 2, 103)).await);
        }
        let d = tempfile::tempdir().unwrap();
        let (things, jobs) = lists(&servers[0], d.path());
        let mut rc = run_config(
            &servers[0].endpoint_url(),
            InputSpec::Lists { things, jobs },
            &d.path().join("ds"),
        );
        rc.engine.concurrency = 2;
        rc.targets.max_in_flight = in_flight;
        rc.targets.flags = TargetFlags {
            regions: regions.iter().map(|r| r.to_string()).collect(),
            region_endpoints: regions
                .iter()
                .zip(&servers)
                .map(|(r, s)| (r.to_string(), s.endpoint_url()))
                .collect(),
            ..Default::default()
        };
        let s = fleet_audit::audit::run::run(rc, no_shutdown())
            .await
            .unwrap();
        assert!(s.complete);
        let mut phases: Vec<(u64, u64)> = servers
            .iter()
            .map(|s| {
                let st = s.stats();
                assert_eq!(st.calls(Operation::DescribeJobExecution), 100);
                let name = Operation::DescribeJobExecution.name();
                (st.first_us[name], st.last_us[name])
            })
            .collect();
        phases.sort();
        let overlaps = phases.windows(2).filter(|w| w[1].0 <= w[0].1).count();
        if in_flight == 1 {
            assert_eq!(overlaps, 0, "one target at a time: {phases:?}");
        } else {
            assert_eq!(overlaps, 2, "three at once: {phases:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_its_plan_and_no_summary_of_zeros() {
    let server = start(sim_config(fleet(300, 3, 109))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let a = [
        "run",
        "--discover",
        "--jobs",
        "jobs.txt",
        "--out",
        "ds",
        "--dry-run",
        "--endpoint-url",
        &url,
    ];
    let (code, stderr) = fa(d.path(), &a).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("plan: 3 jobs;"), "{stderr}");
    assert!(!stderr.contains(" ok, "), "no summary: {stderr}");
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 0);
    assert!(!d.path().join("ds").exists());
}
