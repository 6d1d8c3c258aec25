//! One writer per output, and a dataset nobody can make lie (issue 13): a second run on an output in
//! use is refused before any call, `kill -9` frees the output at once, a manifest is checked like any
//! input, readers read what it lists, and the defects found with it stay fixed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use fleet_audit::audit::config::{DescribeMode, Scope};
use fleet_audit::audit::engine::Stop;
use fleet_audit::audit::error::RunError;
use fleet_audit::audit::run::run;
use fleet_audit::dataset::Manifest;
use fleet_audit::input::{InputError, InputSpec};
use fleet_audit::sim::Operation;

async fn fa(cwd: &Path, url: &str, args: &[&str]) -> (Option<i32>, String) {
    wait_or_kill(spawn_against(cwd, url, args), None).await
}

/// Every row of every data file under `dir` (what a reader globbing `*.parquet` sees), ignoring the
/// manifest.
fn rows_of_every_file(dir: &Path) -> Vec<ReadRow> {
    let mut rows = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        for b in fleet_audit::dataset::read_file(&f, 4096).unwrap() {
            push_rows(&b.unwrap(), &mut rows);
        }
    }
    rows
}

fn distinct_pairs(rows: &[ReadRow]) -> usize {
    rows.iter()
        .map(|r| (r.thing_name.clone(), r.job_id.clone()))
        .collect::<HashSet<_>>()
        .len()
}

/// `OUT is being written by run R (pid P on host H, since T)`, as one line.
fn assert_refused_by_holder(stderr: &str, out: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(
        line.contains(&format!("{out} is being written by run ")),
        "{line}"
    );
    assert!(
        line.contains(" (pid ") && line.contains(" on host ") && line.contains(", since 20"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_an_output_in_use_is_refused_before_any_call() {
    // The holder is caught mid-audit: its simulator answers 200 describes, then holds the next ones
    // until the second run has been refused, so the holder is provably still running (its calls may
    // wait as long as that takes: --call-timeout 1h). The second run talks to a simulator of its
    // own, so its calls are counted apart.
    let op = Operation::DescribeJobExecution;
    let first_sim = start(sim_config(fleet(2_000, 2, 31))).await;
    let second_sim = start(sim_config(fleet(2_000, 2, 31))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&first_sim, d.path());
    let base = ["run", "--things", "things.txt", "--jobs", "jobs.txt"];
    for (out, extra) in [("cc", vec!["--part-rows", "500"]), ("one.parquet", vec![])] {
        let first_args: Vec<&str> = base
            .iter()
            .copied()
            .chain(["--out", out, "--concurrency", "4"])
            .chain(extra.iter().copied())
            .collect();
        let holder_args: Vec<&str> = first_args
            .iter()
            .copied()
            .chain(["--call-timeout", "1h"])
            .collect();
        let before = first_sim.stats().calls(op);
        first_sim.simulator().hold_after(op, 200);
        let mut first = spawn_against(d.path(), &first_sim.endpoint_url(), &holder_args);
        until_held_or_exit(first_sim.simulator(), op, &mut first).await;
        // The same command, with --resume (a directory) or --overwrite (what cron would retry with).
        let again = if out == "cc" {
            "--resume"
        } else {
            "--overwrite"
        };
        let second_args: Vec<&str> = first_args.iter().copied().chain([again]).collect();
        let (code, stderr) = fa(d.path(), &second_sim.endpoint_url(), &second_args).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert_refused_by_holder(&stderr, out);
        assert_eq!(
            second_sim.stats().total_calls(),
            0,
            "the refused run made no call"
        );
        // The holder was mid-audit all along: 200 answered, the next ones still held.
        assert!(first_sim.simulator().held(op) >= 1);
        assert!(first.try_wait().unwrap().is_none(), "the holder still runs");
        let received = first_sim.stats().calls(op) - before;
        assert!(
            (201..=204).contains(&received),
            "{received}: 200 answered, the rest held"
        );
        first_sim.simulator().release(op);
        let (code, stderr) = wait_or_kill(first, None).await;
        assert_eq!(code, Some(0), "the holder completes: {stderr}");
        let path = d.path().join(out);
        let rows = if out == "cc" {
            rows_of_every_file(&path)
        } else {
            read_rows(&path)
        };
        assert_eq!(rows.len(), 4_000, "{out}: every pair once");
        assert_eq!(distinct_pairs(&rows), 4_000, "{out}: no pair twice");
        assert!(!d.path().join(format!(".{out}.fleet-audit.lock")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_frees_a_local_output_at_once() {
    let sim = start(sim_config(fleet(2_000, 2, 37))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    let args = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "audit",
        "--part-rows",
        "300",
        "--concurrency",
        "4",
    ];
    // Killed mid-run at a known point: 1,000 describes answered, the next held.
    let op = Operation::DescribeJobExecution;
    sim.simulator().hold_after(op, 1_000);
    let holder = spawn_against(d.path(), &sim.endpoint_url(), &args);
    kill_when_held(sim.simulator(), op, holder).await;
    let mut resume: Vec<&str> = args.to_vec();
    resume.push("--resume");
    let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &resume).await;
    assert_eq!(code, Some(0), "{stderr}");
    let rows = rows_of_every_file(&d.path().join("audit"));
    assert_eq!((rows.len(), distinct_pairs(&rows)), (4_000, 4_000));
}

/// Writes a complete small dataset into `dir/name` and returns its path.
async fn small_dataset(server: &fleet_audit::sim::SimServer, dir: &Path, name: &str) -> PathBuf {
    let (things, jobs) = lists(server, dir);
    let out = dir.join(name);
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.part_rows = 40;
    run(rc, no_shutdown()).await.unwrap();
    out
}

/// An edit that makes a manifest lie.
type Lie = Box<dyn Fn(&mut serde_json::Value)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_lies_is_refused_with_nothing_read_or_written() {
    let server = start(sim_config(fleet(50, 2, 41))).await;
    let d = tempfile::tempdir().unwrap();
    let out = small_dataset(&server, d.path(), "ds").await;
    let manifest_path = out.join("_manifest.json");
    let good = std::fs::read(&manifest_path).unwrap();
    let good_json: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let listing = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // A file the lie points at, outside the dataset: never read.
    let outside = d.path().join("part-outside-00000.parquet");
    std::fs::copy(
        out.join(good_json["parts"][0]["file"].as_str().unwrap()),
        &outside,
    )
    .unwrap();
    let outside_abs = outside.to_string_lossy().into_owned();
    let lies: Vec<(&str, Lie)> = vec![
        (
            "../",
            Box::new(|m| m["parts"][0]["file"] = "../part-outside-00000.parquet".into()),
        ),
        (
            "absolute",
            Box::new(move |m| m["parts"][0]["file"] = outside_abs.clone().into()),
        ),
        (
            "not ours",
            Box::new(|m| m["parts"][0]["file"] = "notes.parquet".into()),
        ),
        (
            "rows",
            Box::new(|m| m["parts"][0]["rows"] = 1_000_000.into()),
        ),
        (
            "watermark",
            Box::new(|m| m["committed"]["watermark"] = u64::MAX.into()),
        ),
    ];
    let before = listing(&out);
    let calls = server.stats().total_calls();
    for (what, lie) in &lies {
        let mut m = good_json.clone();
        lie(&mut m);
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
        let (code, stderr) = fa(d.path(), &server.endpoint_url(), &["report", "ds"]).await;
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("ds/_manifest.json: not a fleet-audit manifest"),
            "{what}: {stderr}"
        );
        let (code, stderr) = fa(
            d.path(),
            &server.endpoint_url(),
            &[
                "run",
                "--things",
                "things.txt",
                "--jobs",
                "jobs.txt",
                "--out",
                "ds",
                "--resume",
            ],
        )
        .await;
        assert_eq!(code, Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("ds/_manifest.json: not a fleet-audit manifest"),
            "{what}: {stderr}"
        );
        assert_eq!(listing(&out), before, "{what}: nothing written or deleted");
        assert_eq!(server.stats().total_calls(), calls, "{what}: no call made");
    }
    std::fs::write(&manifest_path, &good).unwrap();

    // A part file the manifest does not list is named and not read.
    let stray = out.join("part-zz-stray-00000.parquet");
    std::fs::copy(&outside, &stray).unwrap();
    let (code, stderr) = fa(
        d.path(),
        &server.endpoint_url(),
        &["report", "ds", "--json"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("1 part file not in the manifest was ignored: part-zz-stray-00000.parquet"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_report_and_resume_mismatches_are_bad_input_saying_what_differs() {
    let server = start(sim_config(fleet(30, 2, 43))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let abs = d.path().join("viaurl");
    let file_url = format!("file://{}", abs.display());
    let lists_args = ["run", "--things", "things.txt", "--jobs", "jobs.txt"];
    let with = |extra: &[&str]| -> Vec<String> {
        lists_args
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let args = with(&["--out", &file_url, "--report"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = spawn_against(d.path(), &url, &args)
        .wait_with_output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report of the dataset written, as `report` prints it for the plain path.
    let report = spawn_against(d.path(), &url, &["report", abs.to_str().unwrap()])
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(report.status.code(), Some(0));
    assert!(!stdout.trim().is_empty());
    assert_eq!(stdout, String::from_utf8_lossy(&report.stdout));

    // The same dataset resumed with another format, partitions or inputs: exit 2, saying which.
    for (extra, words) in [
        (vec!["--format", "arrow"], "the formats differ"),
        (vec!["--partition-by", "date"], "the partitions differ"),
        (vec!["--shard", "0/2"], "the shards differ"),
    ] {
        let mut a = vec!["--out", "viaurl", "--resume"];
        a.extend(extra);
        let args = with(&a);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = fa(d.path(), &url, &args).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("cannot resume into viaurl: "), "{stderr}");
        assert!(stderr.contains(words), "{words}: {stderr}");
    }
    std::fs::write(d.path().join("jobs.txt"), "job-000\n").unwrap();
    let args = with(&["--out", "viaurl", "--resume"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = fa(d.path(), &url, &args).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the inputs differ"), "{stderr}");
    // Which input, and what to do (issue 23, item 12), not two hashes.
    assert!(
        stderr.contains("the --jobs file's content differs from what it was written from")
            && stderr.contains("start again with --overwrite"),
        "{stderr}"
    );
    assert!(!stderr.contains("identity"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_changed_while_streaming_stops_without_committing_it() {
    // Over 64 KiB, so the tail is read from the file after the run has started.
    let server = start_paced(fleet(10_000, 1, 47)).await;
    let d = tempfile::tempdir().unwrap();
    let (things, jobs) = lists(&server, d.path());
    let original = std::fs::read_to_string(&things).unwrap();
    assert!(original.len() > 100_000);
    let out = d.path().join("audit");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists {
            things: things.clone(),
            jobs: jobs.clone(),
        },
        &out,
    );
    rc.engine.concurrency = 4;
    let editor = {
        let server = server.simulator().clone();
        let things = things.clone();
        let edited = original.replace("thing-0099", "thing-9999");
        tokio::spawn(async move {
            while server.stats().calls(Operation::DescribeJobExecution) < 300 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // In place (same inode), as an editor or a careless script would.
            std::fs::write(&things, edited).unwrap();
        })
    };
    let err = run(rc.clone(), no_shutdown()).await.unwrap_err();
    editor.await.unwrap();
    match &err {
        RunError::Stopped {
            stop: Stop::Input(InputError::Changed { file }),
            resumable: true,
            ..
        } => assert!(file.ends_with("things.txt"), "{file}"),
        other => panic!("expected a changed-input stop, got {other}"),
    }
    assert!(err
        .to_string()
        .contains("changed while this run was reading it"));
    // Nothing read from the changed file was committed: no manifest, no part.
    assert!(Manifest::load(&out).unwrap().is_none());
    let parts = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(parts, 0, "no file in {}", out.display());
    // So a resume starts afresh, from the file as it is now.
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 10_000);
    assert!(rows.iter().any(|r| r.thing_name.starts_with("thing-9999")));
    assert!(!rows.iter().any(|r| r.thing_name.starts_with("thing-0099")));

    // With parts committed before the change was found, their ordinals may stand for other pairs:
    // the dataset is marked so that no --resume accepts it, even with the original file back.
    std::fs::write(&things, &original).unwrap();
    let out = d.path().join("parts");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists {
            things: things.clone(),
            jobs,
        },
        &out,
    );
    rc.engine.concurrency = 4;
    rc.output.part_rows = 1_000;
    let start = server.stats().calls(Operation::DescribeJobExecution);
    let editor = {
        let server = server.simulator().clone();
        let (things, edited) = (things.clone(), original.replace("thing-0099", "thing-9999"));
        tokio::spawn(async move {
            while server.stats().calls(Operation::DescribeJobExecution) < start + 3_000 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            std::fs::write(&things, edited).unwrap();
        })
    };
    let err = run(rc.clone(), no_shutdown()).await.unwrap_err();
    editor.await.unwrap();
    assert!(
        err.to_string()
            .contains("changed while this run was reading it"),
        "{err}"
    );
    let m = Manifest::load(&out).unwrap().unwrap();
    assert!(
        !m.parts.is_empty(),
        "parts were committed before the end of the file"
    );
    assert!(
        m.input_identity.ends_with(":changed-while-read"),
        "{}",
        m.input_identity
    );
    std::fs::write(&things, &original).unwrap();
    rc.output.resume = true;
    let refused = run(rc, no_shutdown()).await.unwrap_err().to_string();
    assert!(refused.contains("the inputs differ"), "{refused}");
    assert!(
        refused.contains("its input changed while that run read it"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_discovery_keeps_its_manifest_small() {
    let mut spec = fleet(40_000, 4, 53);
    spec.active_share = Some(0.2);
    let server = start_paced(spec).await;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("disc");
    let mut rc = discover_config(
        &server.endpoint_url(),
        Scope::AllJobs { status: None },
        DescribeMode::Active,
        &out,
    );
    rc.output.part_rows = 2_000;
    rc.engine.concurrency = 16;
    // Interrupted with describes in flight and queued: their ordinals were handed out, never used.
    run_interrupted(rc.clone(), &server, Operation::DescribeJobExecution, 2_000).await;
    rc.output.resume = true;
    let s = run(rc, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let m = Manifest::load(&out).unwrap().unwrap();
    let rows = read_rows(&out);
    assert!(rows.len() > 100_000, "{}", rows.len());
    assert_eq!(distinct_pairs(&rows), rows.len(), "every execution once");
    assert_eq!(m.committed.watermark, rows.len() as u64);
    assert!(
        m.committed.above.is_empty(),
        "{} above",
        m.committed.above.len()
    );
    let size = std::fs::metadata(out.join("_manifest.json")).unwrap().len();
    assert!(size < 16 * 1024, "{size} bytes for {} parts", m.parts.len());
}

/// Issue 22, item 13a: the binary's message on an input that changed while read says one thing, true
/// whatever was committed: start again with --overwrite (a directory holding parts is refused by
/// every --resume). It never tells the user to --resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changed_input_message_says_start_again_with_overwrite() {
    let server = start_paced(fleet(10_000, 1, 47)).await;
    let d = tempfile::tempdir().unwrap();
    let (things, _) = lists(&server, d.path());
    let original = std::fs::read_to_string(&things).unwrap();
    let url = server.endpoint_url();
    // Held mid-audit (3,000 describes answered, the next held) while the file changes under it.
    let op = Operation::DescribeJobExecution;
    server.simulator().hold_after(op, 3_000);
    let child = spawn_against(
        d.path(),
        &url,
        &[
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "audit",
            "--concurrency",
            "4",
            "--part-rows",
            "1000",
        ],
    );
    server.simulator().until_held(op, 1).await;
    std::fs::write(&things, original.replace("thing-0099", "thing-9999")).unwrap();
    server.simulator().release(op);
    let (code, stderr) = wait_or_kill(child, Some(Duration::from_secs(120))).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("changed while this run was reading it"),
        "{stderr}"
    );
    assert!(stderr.contains("start again with --overwrite"), "{stderr}");
    assert!(
        !stderr.contains("--resume"),
        "one true thing to do: {stderr}"
    );
}
