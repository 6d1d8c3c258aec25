//! Runs over several targets (regions, accounts) at once: each target has its own client and its own
//! rate limiter, its rows carry its region and account id, and a resume finishes every target exactly.

use crate::common::*;
use fleet_audit::audit::error::RunError;
use fleet_audit::audit::run::run;
use fleet_audit::aws::targets::TargetFlags;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

const SIM_ACCOUNT: &str = "123456789012";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_each_hold_their_own_rate_against_their_own_quota() {
    // Counted in tokens, not measured in calls per second: two simulators, one per region, each with
    // a quota of BUDGET calls that refills once in 11 days (its bucket, nothing back during the
    // test), and --rps at the same rate with --burst BUDGET, so each target's limiter grants exactly
    // BUDGET attempts, fewer than its 120 pairs. Each target must make exactly BUDGET calls to its
    // own simulator: a budget shared by the targets would give both BUDGET together (the run would
    // never reach BUDGET on each), and a target calling past its limiter would be throttled by its
    // simulator. Once both simulators have BUDGET calls, the run is stopped.
    const BUDGET: u64 = 100;
    const RPS: f64 = 1e-6;
    let mut servers = Vec::new();
    for _ in 0..2 {
        let mut c = sim_config(fleet(30, 4, 5));
        c.quota_rps = Some(RPS);
        c.quota_burst = Some(BUDGET as u32);
        servers.push(start(c).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&servers[0], dir.path());
    let out = dir.path().join("two");
    let mut rc = run_config(
        &servers[0].endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.rate.rps = Some(RPS);
    rc.rate.burst = Some(BUDGET as u32);
    rc.targets.flags = TargetFlags {
        regions: vec!["eu-west-1".into(), "ap-south-1".into()],
        region_endpoints: vec![
            ("eu-west-1".into(), servers[0].endpoint_url()),
            ("ap-south-1".into(), servers[1].endpoint_url()),
        ],
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let sims: Vec<_> = servers.iter().map(|s| s.simulator().clone()).collect();
    let stopper = tokio::spawn(async move {
        let calls = |sims: &[std::sync::Arc<fleet_audit::sim::Simulator>]| -> Vec<u64> {
            sims.iter()
                .map(|s| s.stats().calls(Operation::DescribeJobExecution))
                .collect()
        };
        // A guard against a hang, not a measure: a shared budget never gets here.
        let guard = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while calls(&sims).iter().any(|&c| c < BUDGET) {
            assert!(
                std::time::Instant::now() < guard,
                "each target should have had {BUDGET} calls: {:?}",
                calls(&sims)
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tx.send(true).unwrap();
        tx
    });
    let ended = run(rc, rx).await;
    let _tx = stopper.await.unwrap();
    let s = match ended {
        Err(RunError::Stopped {
            stop: fleet_audit::audit::engine::Stop::Interrupted,
            resumable: true,
            summary,
            ..
        }) => *summary,
        other => panic!(
            "expected a run stopped with its budget spent: {:?}",
            other.err()
        ),
    };
    assert_eq!(s.pairs, 240);
    assert_eq!(s.throttled, 0);
    for server in &servers {
        let st = server.stats();
        assert_eq!(st.calls(Operation::DescribeJobExecution), BUDGET, "{st:?}");
        assert_eq!(st.throttled, 0, "{st:?}");
        assert!(st.sts >= 1, "the account id comes from STS: {st:?}");
    }
    assert_eq!(s.targets.len(), 2);
    for t in &s.targets {
        assert_eq!(
            (t.pairs, t.ok + t.not_found, t.attempts),
            (120, BUDGET, BUDGET)
        );
        assert_eq!(t.account_id.as_deref(), Some(SIM_ACCOUNT));
    }
    let rows = read_rows(&out);
    assert_eq!(rows.len() as u64, 2 * BUDGET);
    let keys = by_key(&rows);
    for region in ["eu-west-1", "ap-south-1"] {
        let n = keys.keys().filter(|k| k.0 == region).count() as u64;
        assert_eq!(n, BUDGET, "{region}");
    }
    assert!(rows
        .iter()
        .all(|r| r.account_id.as_deref() == Some(SIM_ACCOUNT)));
    // The fleet answers the same in both regions (one seed): each row equals the simulator's.
    for r in &rows {
        assert_row_matches_fleet(r, servers[0].simulator().fleet());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_assumed_and_rows_carry_each_account() {
    let server = start(sim_config(fleet(40, 3, 9))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("accounts.parquet");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.targets.flags = TargetFlags {
        role_arns: vec![
            "arn:aws:iam::111122223333:role/audit".into(),
            "arn:aws:iam::444455556666:role/audit".into(),
        ],
        ..Default::default()
    };
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!(s.pairs, 240);
    let rows = read_rows(&out);
    let keys = by_key(&rows);
    for account in ["111122223333", "444455556666"] {
        // GetCallerIdentity answered with the account of the credentials AssumeRole gave: the
        // role was assumed, and its credentials used.
        let n = keys.keys().filter(|k| k.1 == account).count();
        assert_eq!(n, 120, "{account}");
    }
    assert!(rows
        .iter()
        .all(|r| r.region.as_deref() == Some("us-east-1")));
    // Two AssumeRole and two GetCallerIdentity calls, no more.
    assert_eq!(server.stats().sts, 4, "{:?}", server.stats());
    assert_eq!(server.stats().calls(Operation::DescribeJobExecution), 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_role_stops_the_run_before_any_iot_call() {
    let server = start(sim_config(fleet(10, 2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("never.parquet");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.targets.client.static_credentials = Some(aws_credential_types::Credentials::new(
        "AKIDDENIED",
        "secret",
        None,
        None,
        "test",
    ));
    rc.targets.flags = TargetFlags {
        role_arns: vec![
            "arn:aws:iam::111122223333:role/audit".into(),
            "arn:aws:iam::444455556666:role/audit".into(),
        ],
        ..Default::default()
    };
    let err = run(rc, no_shutdown()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RunError::Setup(_)), "{text}");
    assert!(
        text.starts_with("target 111122223333:audit/us-east-1: "),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(server.stats().total_calls(), 0);
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_multi_region_run_resumes_each_region_exactly() {
    let mut servers = Vec::new();
    for _ in 0..2 {
        servers.push(start_paced(fleet(150, 4, 77)).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&servers[0], dir.path());
    let out = dir.path().join("ds");
    let mut rc = run_config(
        &servers[0].endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.part_rows = 100;
    rc.engine.concurrency = 4;
    rc.targets.flags = TargetFlags {
        regions: vec!["us-east-1".into(), "eu-central-1".into()],
        region_endpoints: vec![
            ("us-east-1".into(), servers[0].endpoint_url()),
            ("eu-central-1".into(), servers[1].endpoint_url()),
        ],
        ..Default::default()
    };
    // The second region is slower, so the two lanes stop at different points.
    run_interrupted(
        rc.clone(),
        &servers[0],
        Operation::DescribeJobExecution,
        300,
    )
    .await;
    let first = read_rows(&out).len();
    assert!(first > 0 && first < 1200, "{first}");

    // Other targets are other inputs: a resume with one region only is refused.
    let mut other = rc.clone();
    other.output.resume = true;
    other.targets.flags.regions.pop();
    let refused = run(other, no_shutdown()).await.unwrap_err().to_string();
    assert!(refused.contains("cannot resume"), "{refused}");

    let before: u64 = servers
        .iter()
        .map(|s| s.stats().calls(Operation::DescribeJobExecution))
        .sum();
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!(s.resumed as usize, first);
    let after: u64 = servers
        .iter()
        .map(|s| s.stats().calls(Operation::DescribeJobExecution))
        .sum();
    assert_eq!(after - before, 1200 - first as u64, "only missing pairs");
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1200);
    let keys = by_key(&rows);
    for region in ["us-east-1", "eu-central-1"] {
        assert_eq!(keys.keys().filter(|k| k.0 == region).count(), 600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_over_two_regions_lists_each_on_its_own_simulator() {
    // Two simulators standing for two regions, each listed and described by its own target: every
    // (region, pair) of the fleet once, each simulator called for its own region's work alone.
    use fleet_audit::audit::config::{DescribeMode, Scope};
    let servers = [
        start(sim_config(fleet(40, 3, 6))).await,
        start(sim_config(fleet(40, 3, 6))).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&servers[0], dir.path());
    let out = dir.path().join("disc");
    let mut rc = discover_config(
        &servers[0].endpoint_url(),
        Scope::Jobs(jobs),
        DescribeMode::Active,
        &out,
    );
    rc.targets.flags = TargetFlags {
        regions: vec!["eu-west-1".into(), "ap-south-1".into()],
        region_endpoints: vec![
            ("eu-west-1".into(), servers[0].endpoint_url()),
            ("ap-south-1".into(), servers[1].endpoint_url()),
        ],
        ..Default::default()
    };
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let fleet = servers[0].simulator().fleet();
    let executions = (0..40u64)
        .flat_map(|i| (0..3u32).map(move |j| (i, j)))
        .filter(|(i, j)| fleet.execution(*i, *j).is_some())
        .count();
    let rows = read_rows(&out);
    let keys = by_key(&rows);
    assert_eq!(rows.len(), 2 * executions);
    for region in ["eu-west-1", "ap-south-1"] {
        assert_eq!(keys.keys().filter(|k| k.0 == region).count(), executions);
    }
    let describes = [0, 1].map(|i| servers[i].stats().calls(Operation::DescribeJobExecution));
    assert_eq!(
        describes[0], describes[1],
        "each region describes its own actives"
    );
    assert_eq!(s.targets.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_of_a_discovery_counts_the_executions_it_listed() {
    // Two regions with fleets of different sizes: each target's summary has its own count, not an
    // equal share of the run's.
    use fleet_audit::audit::config::{DescribeMode, Scope};
    let servers = [
        start(sim_config(fleet(40, 3, 6))).await,
        start(sim_config(fleet(15, 3, 9))).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&servers[0], dir.path());
    let out = dir.path().join("disc");
    let mut rc = discover_config(
        &servers[0].endpoint_url(),
        Scope::Jobs(jobs),
        DescribeMode::None,
        &out,
    );
    rc.targets.flags = TargetFlags {
        regions: vec!["eu-west-1".into(), "ap-south-1".into()],
        region_endpoints: vec![
            ("eu-west-1".into(), servers[0].endpoint_url()),
            ("ap-south-1".into(), servers[1].endpoint_url()),
        ],
        ..Default::default()
    };
    let s = run(rc, no_shutdown()).await.unwrap();
    let executions = |server: &fleet_audit::sim::SimServer| {
        let f = server.simulator().fleet();
        let (things, jobs) = (f.spec().things, f.spec().jobs);
        (0..things)
            .flat_map(|i| (0..jobs).map(move |j| (i, j)))
            .filter(|(i, j)| f.execution(*i, *j).is_some())
            .count() as u64
    };
    let want = [executions(&servers[0]), executions(&servers[1])];
    assert_ne!(want[0], want[1]);
    let got: Vec<(String, u64)> = s
        .targets
        .iter()
        .map(|t| (t.target.clone(), t.pairs))
        .collect();
    assert_eq!(
        got,
        [
            ("eu-west-1".to_string(), want[0]),
            ("ap-south-1".to_string(), want[1])
        ]
    );
    assert_eq!(s.pairs, want[0] + want[1]);
}

#[test]
fn repeated_target_flags_are_refused_before_any_call() {
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-audit"))
        .args([
            "run",
            "--pairs",
            "/dev/null",
            "--regions",
            "us-east-1,us-east-1",
            "--out",
            "/tmp/fleet-audit-never-written",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--regions: us-east-1 is given twice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_each_bring_their_region_endpoint_and_credentials() {
    // Two profiles of a real AWS config file, each with its own region, endpoint (one simulator
    // each) and credentials: `--profiles a,b` audits both through aws-config's profile chain.
    let servers = [
        start(sim_config(fleet(20, 3, 4))).await,
        start(sim_config(fleet(20, 3, 4))).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&servers[0], dir.path());
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile audit-eu]\nregion = eu-west-1\nendpoint_url = {}\n\n[profile audit-us]\nregion = us-west-2\nendpoint_url = {}\n",
            servers[0].endpoint_url(),
            servers[1].endpoint_url()
        ),
    )
    .unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[audit-eu]\naws_access_key_id = AKIDPROFILEEU\naws_secret_access_key = profile-secret-eu\n\n[audit-us]\naws_access_key_id = AKIDPROFILEUS\naws_secret_access_key = profile-secret-us\n",
    )
    .unwrap();
    let out = dir.path().join("profiles.parquet");
    let run = isolated_binary(dir.path())
        .args(["run", "--things"])
        .arg(&things)
        .arg("--jobs")
        .arg(&jobs)
        .arg("--out")
        .arg(&out)
        .args(["--profiles", "audit-eu,audit-us", "--rps", "0", "--quiet"])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "{all}");
    assert!(!all.contains("profile-secret"), "a secret was printed");
    for s in &servers {
        assert_eq!(s.stats().calls(Operation::DescribeJobExecution), 60);
        assert!(s.stats().sts >= 1);
    }
    let rows = read_rows(&out);
    let keys = by_key(&rows);
    for region in ["eu-west-1", "us-west-2"] {
        assert_eq!(
            keys.keys().filter(|k| k.0 == region).count(),
            60,
            "{region}"
        );
    }
}
