//! `run --shard K/N` against the simulator: N shard runs side by side over one input write disjoint
//! datasets whose union is exactly the dataset of one unsharded run (describe and discovery modes);
//! a shard resumes only as itself; `--shard N` takes K from the scheduler's environment.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;
use fleet_audit::audit::config::RunConfig;
use fleet_audit::audit::config::{DescribeMode, Scope};
use fleet_audit::audit::run::run;
use fleet_audit::audit::summary::Summary;
use fleet_audit::dataset::Manifest;
use fleet_audit::input::shard::Shard;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

/// Pair -> row, without what legitimately differs between runs (run id, fetch time, attempts).
fn contents(rows: &[ReadRow]) -> HashMap<(String, String), ReadRow> {
    let mut m = HashMap::new();
    for r in rows {
        let mut c = r.clone();
        c.run_id = None;
        c.fetched_at = 0;
        c.attempts = 0;
        let dup = m.insert((r.thing_name.clone(), r.job_id.clone()), c);
        assert!(dup.is_none(), "pair {}/{} twice", r.thing_name, r.job_id);
    }
    m
}

fn part_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    v.sort();
    v
}

fn sharded(mut rc: RunConfig, k: u32, n: u32) -> RunConfig {
    rc.shard = Some(Shard::new(k, n).unwrap());
    rc
}

/// Checks each shard's dataset (rows its own, summary and manifest its own count, part names) and
/// returns the union of their contents, asserting no pair is in two shards.
fn union_of_shards(
    outs: &[std::path::PathBuf],
    summaries: &[Summary],
    owns: impl Fn(&Shard, &ReadRow) -> bool,
) -> HashMap<(String, String), ReadRow> {
    let n = outs.len() as u32;
    let mut union = HashMap::new();
    for (k, (out, s)) in outs.iter().zip(summaries).enumerate() {
        let shard = Shard::new(k as u32, n).unwrap();
        let rows = read_rows(out);
        assert!(s.complete);
        assert_eq!(
            s.pairs as usize,
            rows.len(),
            "summary pairs are the shard's"
        );
        for r in &rows {
            assert!(
                owns(&shard, r),
                "{}/{} is not shard {shard}'s",
                r.thing_name,
                r.job_id
            );
        }
        let tag = format!("-s{k}of{n}-");
        let parts = part_files(out);
        assert!(!parts.is_empty());
        for p in &parts {
            assert!(p.starts_with(&format!("part-{}{tag}", s.run_id)), "{p}");
        }
        let m = Manifest::load(out).unwrap().expect("a manifest");
        assert!(m.complete);
        assert!(
            m.input_identity.ends_with(&format!(":shard={k}/{n}")),
            "{}",
            m.input_identity
        );
        for (key, row) in contents(&rows) {
            assert!(
                union.insert(key.clone(), row).is_none(),
                "{key:?} in two shards"
            );
        }
    }
    union
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_side_by_side_equal_one_run() {
    let server = start(sim_config(fleet(700, 4, 17))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let spec = InputSpec::Lists { things, jobs };
    let url = server.endpoint_url();

    let whole = dir.path().join("whole");
    let s = run(run_config(&url, spec.clone(), &whole), no_shutdown())
        .await
        .unwrap();
    assert_eq!(s.pairs, 2800);
    let reference = contents(&read_rows(&whole));
    assert_eq!(reference.len(), 2800);

    let outs: Vec<_> = (0..3)
        .map(|k| dir.path().join(format!("shard-{k}")))
        .collect();
    let cfg = |k: u32| {
        let mut rc = sharded(run_config(&url, spec.clone(), &outs[k as usize]), k, 3);
        rc.output.part_rows = 300;
        rc
    };
    let (a, b, c) = tokio::join!(
        run(cfg(0), no_shutdown()),
        run(cfg(1), no_shutdown()),
        run(cfg(2), no_shutdown())
    );
    let summaries = [a.unwrap(), b.unwrap(), c.unwrap()];
    let union = union_of_shards(&outs, &summaries, |s, r| {
        s.owns_pair(&r.thing_name, &r.job_id)
    });
    assert_eq!(union.len(), 2800, "no pair missing");
    assert_eq!(union, reference, "same contents as one run");
    for (k, s) in summaries.iter().enumerate() {
        // About a third each (a hash, not a count, decides).
        assert!((750..=1120).contains(&s.pairs), "shard {k}: {}", s.pairs);
        assert!(part_files(&outs[k]).len() >= 3, "rotated at 300 rows");
        // The shard's pairs are numbered among themselves: the committed set is one watermark.
        let m = Manifest::load(&outs[k]).unwrap().unwrap();
        assert_eq!(m.pairs, s.pairs);
        assert_eq!(
            (m.committed.watermark, m.committed.above.len()),
            (s.pairs, 0)
        );
    }

    // A shard's directory resumes only as that shard.
    let mut rc = cfg(1);
    rc.output.layout = fleet_audit::dataset::Layout::Dir(outs[0].clone());
    rc.output.resume = true;
    let err = run(rc, no_shutdown()).await.unwrap_err().to_string();
    assert!(
        err.contains("it holds shard 0/3 of these inputs, and this run asks for shard 1/3"),
        "{err}"
    );
    let mut rc = run_config(&url, spec.clone(), &outs[0]);
    rc.output.resume = true;
    let err = run(rc, no_shutdown()).await.unwrap_err().to_string();
    assert!(
        err.contains("this run asks for all of these inputs"),
        "{err}"
    );
    // As itself, a complete shard has nothing left to do.
    let mut rc = cfg(0);
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert_eq!(
        (s.complete, s.attempts, s.pairs),
        (true, 0, summaries[0].pairs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_shard_resumes_exactly() {
    let server = start_paced(fleet(600, 4, 23)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let spec = InputSpec::Lists { things, jobs };
    let out = dir.path().join("s1");
    let mut rc = sharded(run_config(&server.endpoint_url(), spec.clone(), &out), 1, 2);
    rc.output.part_rows = 100;
    rc.engine.concurrency = 8;

    let summary = run_interrupted(rc.clone(), &server, Operation::DescribeJobExecution, 500).await;
    let first = read_rows(&out).len();
    assert!(first >= 300 && (first as u64) < summary.pairs, "{first}");

    let before = server.stats().calls(Operation::DescribeJobExecution);
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    assert_eq!((s.pairs, s.resumed), (summary.pairs, first as u64));
    let calls = server.stats().calls(Operation::DescribeJobExecution) - before;
    assert_eq!(
        calls,
        s.pairs - first as u64,
        "only the shard's missing pairs"
    );
    let rows = read_rows(&out);
    let got = contents(&rows);
    assert_eq!(got.len() as u64, s.pairs);
    let shard = Shard::new(1, 2).unwrap();
    assert!(rows
        .iter()
        .all(|r| shard.owns_pair(&r.thing_name, &r.job_id)));
    for r in &rows {
        assert_row_matches_fleet(r, server.simulator().fleet());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_killed_before_its_first_commit_resumes_from_scratch() {
    let server = start(sim_config(fleet(200, 3, 11))).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let spec = InputSpec::Lists { things, jobs };
    // What SIGKILL leaves before the first manifest: a temporary, and a part renamed but not recorded.
    let out = dir.path().join("shard-0");
    std::fs::create_dir_all(&out).unwrap();
    // (Named as this tool names them, a run id in each: only such names are its own.)
    std::fs::write(
        out.join(".part-1764662400-3fa2c1-s0of2-00000.parquet.tmp"),
        b"half",
    )
    .unwrap();
    std::fs::write(
        out.join("part-1764662400-3fa2c1-s0of2-00000.parquet"),
        b"never recorded",
    )
    .unwrap();
    let mut rc = sharded(run_config(&server.endpoint_url(), spec.clone(), &out), 0, 2);
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let rows = read_rows(&out);
    assert_eq!(rows.len() as u64, s.pairs);
    contents(&rows);
    let parts = part_files(&out);
    assert!(
        parts
            .iter()
            .all(|p| p.starts_with(&format!("part-{}-s0of2-", s.run_id))),
        "{parts:?}"
    );
    assert!(!out
        .join(".part-1764662400-3fa2c1-s0of2-00000.parquet.tmp")
        .exists());

    // A directory with anything else in it is not the tool's to clear.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    std::fs::write(other.join(".part-1-00000.parquet.tmp"), b"half").unwrap();
    let mut rc = sharded(run_config(&server.endpoint_url(), spec, &other), 0, 2);
    rc.output.resume = true;
    let err = run(rc, no_shutdown()).await.unwrap_err().to_string();
    assert!(err.contains("holds no manifest to resume from"), "{err}");
    assert!(other.join("notes.txt").exists() && other.join(".part-1-00000.parquet.tmp").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_shards_by_job_or_by_thing_and_their_union_is_one_discovery() {
    let mut spec = fleet(1_200, 9, 29);
    spec.active_share = Some(0.15);
    let server = start(sim_config(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, dir.path());
    let url = server.endpoint_url();

    for (name, scope) in [
        ("jobs", Scope::Jobs(jobs.clone())),
        ("things", Scope::Things(things.clone())),
        ("all-jobs", Scope::AllJobs { status: None }),
    ] {
        let whole = dir.path().join(format!("{name}-whole"));
        run(
            discover_config(&url, scope.clone(), DescribeMode::Active, &whole),
            no_shutdown(),
        )
        .await
        .unwrap();
        let reference = contents(&read_rows(&whole));
        assert!(reference.len() > 5_000, "{name}: {}", reference.len());

        server.simulator().reset_stats();
        let outs: Vec<_> = (0..3)
            .map(|k| dir.path().join(format!("{name}-shard-{k}")))
            .collect();
        let cfg = |k: u32| {
            sharded(
                discover_config(&url, scope.clone(), DescribeMode::Active, &outs[k as usize]),
                k,
                3,
            )
        };
        let (a, b, c) = tokio::join!(
            run(cfg(0), no_shutdown()),
            run(cfg(1), no_shutdown()),
            run(cfg(2), no_shutdown())
        );
        let summaries = [a.unwrap(), b.unwrap(), c.unwrap()];
        let by_thing = matches!(scope, Scope::Things(_));
        let union = union_of_shards(&outs, &summaries, |s, r| {
            s.owns_name(if by_thing { &r.thing_name } else { &r.job_id })
        });
        assert_eq!(union.len(), reference.len(), "{name}: no execution missing");
        assert_eq!(union, reference, "{name}: same contents as one discovery");
        // Each job (or thing) was listed by one shard only.
        let stats = server.stats();
        let lists = if by_thing {
            stats.calls(Operation::ListJobExecutionsForThing)
        } else {
            stats.calls(Operation::ListJobExecutionsForJob)
        };
        let units = if by_thing { 1_200 } else { 9 };
        assert!(lists >= units, "{name}: {lists} list calls");
        if !by_thing {
            assert_eq!(
                stats.calls(Operation::DescribeJob),
                9,
                "{name}: each job planned once"
            );
        } else {
            assert_eq!(lists, 1_200, "{name}: one page per thing, each listed once");
        }
    }
}

/// The binary with a clean environment, test credentials and `vars`.
async fn fa(args: &[&str], cwd: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut c = isolated_binary(cwd);
    c.args(args)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDSHARDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "shard-test-secret");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_n_takes_its_index_from_the_scheduler_environment() {
    let server = start(sim_config(fleet(300, 3, 5))).await;
    let d = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, d.path());
    let url = server.endpoint_url();
    let args = |shard: &str, out: &str| -> Vec<String> {
        [
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--endpoint-url",
            &url,
            "--rps",
            "0",
            "--quiet",
            "--shard",
            shard,
            "--out",
            out,
            "--summary-json",
            "s.json",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };

    // Neither variable set: a clear error before anything runs.
    let a = args("3", "none");
    let o = fa(&argv(&a), d.path(), &[]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--shard:")
            && err.contains("JOB_COMPLETION_INDEX")
            && err.contains("AWS_BATCH_JOB_ARRAY_INDEX"),
        "{err}"
    );
    assert!(!d.path().join("none").exists());
    // K >= N, naming the variable it came from.
    let a = args("auto/3", "big");
    let o = fa(&argv(&a), d.path(), &[("JOB_COMPLETION_INDEX", "3")]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("shard index 3 (from JOB_COMPLETION_INDEX) must be below the shard count 3"),
        "{err}"
    );

    // Kubernetes and AWS Batch each give their index; the run is that shard.
    for (var, k, out) in [
        ("JOB_COMPLETION_INDEX", "2", "k8s"),
        ("AWS_BATCH_JOB_ARRAY_INDEX", "1", "batch"),
    ] {
        let a = args("3", out);
        let o = fa(&argv(&a), d.path(), &[(var, k)]).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let shard = Shard::new(k.parse().unwrap(), 3).unwrap();
        let rows = read_rows(&d.path().join(out));
        assert!(!rows.is_empty());
        assert!(rows
            .iter()
            .all(|r| shard.owns_pair(&r.thing_name, &r.job_id)));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
        assert_eq!(s["pairs"].as_u64(), Some(rows.len() as u64));
        let want = {
            let things = std::fs::read_to_string(&things).unwrap();
            let jobs = std::fs::read_to_string(&jobs).unwrap();
            things
                .lines()
                .flat_map(|t| jobs.lines().map(move |j| (t, j)))
                .filter(|(t, j)| shard.owns_pair(t, j))
                .count()
        };
        assert_eq!(rows.len(), want);
        assert!(part_files(&d.path().join(out))
            .iter()
            .all(|p| p.contains(&format!("-s{k}of3-"))));
    }
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
