//! Organization-wide audits (`--org-role`, `--regions all`) against the simulator's organization:
//! every (account, region, pair) once, the accounts without the role recorded as failed targets (exit
//! 5 from the binary), and a resume that fills them once the role exists.

use std::collections::HashSet;

use crate::common::*;
use fleet_audit::audit::engine::Stop;
use fleet_audit::audit::error::RunError;
use fleet_audit::audit::run::run;
use fleet_audit::aws::targets::{OrgFlags, TargetFlags};
use fleet_audit::dataset::Manifest;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::{OrgSpec, SimServer};

/// The four regions the simulator enables in every account.
const ENABLED: [&str; 4] = ["ap-southeast-2", "eu-west-1", "us-east-1", "us-west-2"];

async fn org_sim(accounts: u32, missing_role: f64) -> SimServer {
    let mut c = sim_config(fleet(3, 1, 11));
    c.org = OrgSpec {
        accounts,
        missing_role,
        seed: 11,
    };
    start(c).await
}

/// The ACTIVE accounts of `org` and, of those, the ones whose role is missing.
fn expected_accounts(org: &OrgSpec) -> (Vec<String>, HashSet<String>) {
    let active: Vec<String> = (0..org.accounts)
        .map(|i| org.account(i))
        .filter(|a| a.status == "ACTIVE")
        .map(|a| a.id)
        .collect();
    let missing = active
        .iter()
        .filter(|id| org.refuses_role(id))
        .cloned()
        .collect();
    (active, missing)
}

fn org_flags() -> TargetFlags {
    TargetFlags {
        all_regions: true,
        org: Some(OrgFlags {
            role: "fleet-audit".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_and_enabled_region_once_and_a_resume_fills_the_missing_roles() {
    // 208 accounts, every 25th suspended: 200 ACTIVE accounts x 4 enabled regions = 800 targets.
    let server = org_sim(208, 0.05).await;
    let org = server.simulator().org().clone();
    let (active, missing) = expected_accounts(&org);
    assert_eq!(active.len(), 200);
    assert!(
        !missing.is_empty(),
        "the test needs accounts without the role"
    );
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let out = dir.path().join("org");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists {
            things: things.clone(),
            jobs: jobs.clone(),
        },
        &out,
    );
    rc.targets.flags = org_flags();
    rc.targets.max_in_flight = 32;
    let first = run(rc.clone(), no_shutdown()).await;
    let Err(RunError::Stopped {
        stop: Stop::TargetsFailed { failed, of },
        resumable: true,
        summary,
        ..
    }) = first
    else {
        panic!("expected some targets to fail: {first:?}");
    };
    assert_eq!(of, 800);
    assert_eq!(failed, 4 * missing.len());
    assert_eq!(summary.failed_targets, failed as u64);
    // The failed targets are named, with AWS's refusal, in the summary and the manifest.
    let failed_labels: HashSet<String> = summary
        .targets
        .iter()
        .filter(|t| t.error.is_some())
        .map(|t| t.target.clone())
        .collect();
    let want: HashSet<String> = missing
        .iter()
        .flat_map(|a| ENABLED.iter().map(move |r| format!("{a}/{r}")))
        .collect();
    assert_eq!(failed_labels, want);
    // Each is named by its region and account too (issue 23, item 13: its region was null).
    for t in summary.targets.iter().filter(|t| t.error.is_some()) {
        assert_eq!(
            format!(
                "{}/{}",
                t.account_id.as_deref().unwrap_or("?"),
                t.region.as_deref().unwrap_or("?")
            ),
            t.target
        );
    }
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join("_manifest.json")).unwrap()).unwrap();
    assert!(!manifest.complete);
    assert_eq!(manifest.failed_targets.len(), failed);
    assert!(
        manifest.failed_targets[0].error.contains("AccessDenied"),
        "{:?}",
        manifest.failed_targets[0]
    );
    // Every reachable (account, region, pair) once, carrying its account and region.
    let rows = read_rows(&out);
    let keys = by_key(&rows);
    assert_eq!(rows.len(), (800 - failed) * 3);
    for (region, account, _, _) in keys.keys() {
        assert!(active.contains(account) && !missing.contains(account));
        assert!(ENABLED.contains(&region.as_str()), "{region}");
    }

    // The report's targets table: every audited target with its executions, and the failed ones
    // with their reasons.
    let report =
        fleet_audit::report::report_path(&out, &fleet_audit::report::Thresholds::default())
            .unwrap();
    assert_eq!(report.targets.len(), 800);
    let not_audited: HashSet<String> = report
        .targets
        .iter()
        .filter(|t| t.error.is_some())
        .map(|t| t.target.clone())
        .collect();
    assert_eq!(not_audited, want);
    assert!(report
        .targets
        .iter()
        .filter(|t| t.error.is_none())
        .all(|t| t.counts.total == 3));
    let json = report.to_json();
    assert_eq!(json["targets"].as_array().unwrap().len(), 800);
    let text = report.render_terminal(5);
    assert!(text.contains("targets: 800 ("));
    // The targets not audited are said first, before any count (issue 23, item 13).
    let first_lines: Vec<&str> = text.lines().take(2).collect();
    assert!(
        first_lines
            .iter()
            .any(|l| l.starts_with(&format!("{failed} of 800 targets were not audited: "))),
        "{text}"
    );

    // The roles now exist: a resume audits the failed targets alone, and the dataset is complete.
    let fixed = org_sim(208, 0.0).await;
    let mut again = rc;
    again.targets.client = client_settings(&fixed.endpoint_url());
    again.output.resume = true;
    let s = run(again, no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!(s.failed_targets, 0);
    assert_eq!(s.resumed, ((800 - failed) * 3) as u64);
    assert_eq!(
        s.attempts,
        (failed * 3) as u64,
        "only the failed targets' pairs"
    );
    // Nor are the committed targets connected again: STS (AssumeRole, GetCallerIdentity) is asked
    // for the failed targets alone (at most two calls each, and the run's own identity), where a
    // connection of every target would take at least one a target.
    let sts = fixed.stats().sts;
    assert!(
        sts <= (2 * failed + 2) as u64,
        "{sts} STS calls to resume {failed} targets of 800"
    );
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 2_400);
    assert_eq!(by_key(&rows).len(), 2_400);
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(out.join("_manifest.json")).unwrap()).unwrap();
    assert!(manifest.complete && manifest.failed_targets.is_empty());
    let report =
        fleet_audit::report::report_path(&out, &fleet_audit::report::Thresholds::default())
            .unwrap();
    assert_eq!(report.targets.len(), 800);
    assert!(report
        .targets
        .iter()
        .all(|t| t.error.is_none() && t.counts.total == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_5_names_the_failed_targets_and_narrows_accounts() {
    let server = org_sim(30, 0.2).await;
    let org = server.simulator().org().clone();
    let (active, missing) = expected_accounts(&org);
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let bin = |extra: &[&str]| {
        let mut c = isolated_binary(dir.path());
        c.env("AWS_ACCESS_KEY_ID", "AKIDSIM")
            .env("AWS_SECRET_ACCESS_KEY", "simulator-secret")
            .args(["run", "--things"])
            .arg(&things)
            .arg("--jobs")
            .arg(&jobs)
            .args(["--region", "us-east-1", "--endpoint-url"])
            .arg(server.endpoint_url())
            .args(["--rps", "0", "--quiet", "--org-role", "fleet-audit"])
            .args(extra)
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let out = dir.path().join("all");
    let (code, stderr) = wait_or_kill(
        bin(&[
            "--regions",
            "eu-west-1,us-east-1",
            "--out",
            out.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code, Some(5), "{stderr}");
    // A line per account and reason, not per account x region (issue 23, item 13).
    let m = missing.iter().next().unwrap();
    assert!(
        stderr.contains(&format!(
            "account {m}: not audited in 2 regions (eu-west-1, us-east-1): "
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("not audited").count(),
        missing.len(),
        "{stderr}"
    );
    assert!(stderr.contains("--resume to retry them"), "{stderr}");
    assert_eq!(
        read_rows(&out).len(),
        (active.len() - missing.len()) * 2 * 3
    );

    // A region that is not enabled: IoT refuses every call there, so each account's target in it
    // fails on its own (after its role was assumed) and the others complete.
    let optin = dir.path().join("optin");
    let (code, stderr) = wait_or_kill(
        bin(&[
            "--regions",
            "us-east-1,me-south-1",
            "--out",
            optin.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code, Some(5), "{stderr}");
    let reachable = active.len() - missing.len();
    let ok = active.iter().find(|a| !missing.contains(*a)).unwrap();
    assert!(
        stderr.contains(&format!("{ok}/me-south-1: not audited:"))
            && stderr.contains("UnrecognizedClientException"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!(
        "{} of {} targets could not be audited",
        active.len() + missing.len(),
        2 * active.len()
    )));
    let rows = read_rows(&optin);
    assert_eq!(rows.len(), reachable * 3);
    assert!(rows
        .iter()
        .all(|r| r.region.as_deref() == Some("us-east-1")));

    // --accounts narrows to reachable accounts: a complete run, exit 0; --exclude-accounts drops one.
    let ok: Vec<&String> = active.iter().filter(|a| !missing.contains(*a)).collect();
    let narrow = dir.path().join("narrow");
    let accounts = format!("{},{},{}", ok[0], ok[1], ok[2]);
    let (code, stderr) = wait_or_kill(
        bin(&[
            "--accounts",
            &accounts,
            "--exclude-accounts",
            ok[2],
            "--out",
            narrow.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let got: HashSet<String> = read_rows(&narrow)
        .into_iter()
        .filter_map(|r| r.account_id)
        .collect();
    assert_eq!(got, HashSet::from([ok[0].clone(), ok[1].clone()]));

    // An account outside the organization, or a bad id, is bad input (exit 2), no IoT call made.
    let before = server.stats().total_calls();
    for (accounts, words) in [
        (
            "999999999999",
            "999999999999 is not an ACTIVE account of the organization",
        ),
        ("12345", "--accounts: \"12345\": not an account id"),
    ] {
        let (code, stderr) = wait_or_kill(
            bin(&[
                "--accounts",
                accounts,
                "--out",
                dir.path().join("bad").to_str().unwrap(),
            ]),
            None,
        )
        .await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
    }
    // Every account excluded: nothing to audit is bad input too, not an empty "complete" dataset.
    let (code, stderr) = wait_or_kill(
        bin(&[
            "--accounts",
            ok[0],
            "--exclude-accounts",
            ok[0],
            "--out",
            dir.path().join("none").to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no ACTIVE account"), "{stderr}");
    assert!(!dir.path().join("none").exists());
    assert_eq!(server.stats().total_calls(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_over_the_organization_resumes_its_failed_targets_and_carries_a_baseline() {
    use fleet_audit::audit::baseline::BaselineSpec;
    use fleet_audit::audit::config::{DescribeMode, Input, Scope};
    use fleet_audit::sim::Operation;
    // 20 accounts (all ACTIVE) x 4 regions = 80 targets; every target lists the same fleet.
    let server = org_sim(20, 0.15).await;
    let org = server.simulator().org().clone();
    let (active, missing) = expected_accounts(&org);
    assert_eq!(active.len(), 20);
    assert!(!missing.is_empty());
    let fleet = server.simulator().fleet();
    let executions = (0..fleet.spec().things)
        .flat_map(|i| (0..fleet.spec().jobs).map(move |j| (i, j)))
        .filter(|(i, j)| fleet.execution(*i, *j).is_some())
        .count();
    assert!(executions > 0);
    let dir = tempfile::tempdir().unwrap();
    let (_, jobs) = lists(&server, dir.path());
    let discovery = |endpoint: &str, out: &std::path::Path, baseline: Option<&std::path::Path>| {
        let mut rc = discover_config(
            endpoint,
            Scope::Jobs(jobs.clone()),
            DescribeMode::Active,
            out,
        );
        if let Input::Discover(spec) = &mut rc.input {
            spec.baseline = baseline.map(|b| BaselineSpec::Path(b.to_path_buf()));
        }
        rc.targets.flags = org_flags();
        rc.targets.max_in_flight = 16;
        rc
    };
    let out = dir.path().join("disc");
    let first = run(discovery(&server.endpoint_url(), &out, None), no_shutdown()).await;
    let Err(RunError::Stopped {
        stop: Stop::TargetsFailed { failed, of },
        ..
    }) = first
    else {
        panic!("expected failed targets: {first:?}");
    };
    assert_eq!((failed, of), (4 * missing.len(), 80));
    let reachable = 80 - failed;
    let rows = read_rows(&out);
    assert_eq!(rows.len(), reachable * executions);

    // The roles exist now: the resume lists every target again but writes only the failed ones'.
    let fixed = org_sim(20, 0.0).await;
    let mut again = discovery(&fixed.endpoint_url(), &out, None);
    again.output.resume = true;
    let s = run(again, no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!(s.resumed, (reachable * executions) as u64);
    let rows = read_rows(&out);
    let keys: HashSet<_> = by_key(&rows).into_keys().collect();
    assert_eq!(rows.len(), 80 * executions);
    assert_eq!(keys.len(), rows.len(), "a row twice");

    // A re-audit of the same fleet with that dataset as its baseline describes nothing: a baseline
    // over several targets (the same pair once in each) is read, and every target carries its rows.
    let before = fixed.stats().calls(Operation::DescribeJobExecution);
    let next = dir.path().join("next");
    let s = run(
        discovery(&fixed.endpoint_url(), &next, Some(&out)),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert!(s.complete);
    assert_eq!(fixed.stats().calls(Operation::DescribeJobExecution), before);
    // Nothing changed: every row is carried.
    assert_eq!(s.carried, rows.len() as u64);
    let carried = read_rows(&next);
    assert_eq!(carried.len(), rows.len());
    let carried_keys: HashSet<_> = by_key(&carried).into_keys().collect();
    assert_eq!(carried_keys, keys);
}
