//! Issue 22, the output's paths and parts: one lock for every spelling of one output (links
//! included), `--overwrite` deleting only what is provably this tool's, `--resume` over missing,
//! truncated or altered parts, manifest dates that would become paths, planted links at the lock,
//! temporary and manifest names, and `--out` paths that are links, other file types or in missing
//! folders. Each case failed on the code before the fix (the reproductions).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use fleet_audit::audit::run::run;
use fleet_audit::input::InputSpec;
use fleet_audit::sim::Operation;

async fn fa(cwd: &Path, url: &str, args: &[&str]) -> (Option<i32>, String) {
    wait_or_kill(
        spawn_against(cwd, url, args),
        Some(Duration::from_secs(120)),
    )
    .await
}

/// Every file under `dir`, relative, sorted (links listed, not followed).
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            }
            out.push(rel);
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A named change to a file, and what the refusal then says.
type Damage = (&'static str, Box<dyn Fn(&Path)>, &'static str);
/// A named change to a manifest document.
type Edit = (&'static str, Box<dyn Fn(&mut serde_json::Value)>);

const RUN: [&str; 5] = ["run", "--things", "things.txt", "--jobs", "jobs.txt"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    RUN.iter().copied().chain(extra.iter().copied()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_an_output_in_use_is_the_same_output() {
    // The case 1: `ln -s race racelink`; A writes `race`, B `racelink --resume` (or
    // `--overwrite`, or another spelling) is refused by A's lock before any call.
    let first_sim = start_paced(fleet(2_000, 2, 41)).await;
    let second_sim = start(sim_config(fleet(2_000, 2, 41))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&first_sim, d.path());
    std::fs::create_dir(d.path().join("race")).unwrap();
    std::os::unix::fs::symlink("race", d.path().join("racelink")).unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", d.path().join("sub/up")).unwrap();
    let first_args = args(&["--out", "race", "--concurrency", "4", "--part-rows", "500"]);
    let first = spawn_against(d.path(), &first_sim.endpoint_url(), &first_args);
    while first_sim.stats().calls(Operation::DescribeJobExecution) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (out, again) in [
        ("racelink", "--resume"),
        ("racelink", "--overwrite"),
        ("racelink/", "--resume"),
        ("sub/up/race", "--resume"),
        ("./sub/../race", "--overwrite"),
    ] {
        let (code, stderr) = fa(
            d.path(),
            &second_sim.endpoint_url(),
            &args(&["--out", out, again]),
        )
        .await;
        assert_eq!(code, Some(1), "{out} {again}: {stderr}");
        assert!(
            stderr.contains("is being written by run "),
            "{out}: {stderr}"
        );
        assert_eq!(second_sim.stats().total_calls(), 0, "{out}: no call made");
    }
    let (code, stderr) = wait_or_kill(first, None).await;
    assert_eq!(code, Some(0), "{stderr}");
    let rows = read_rows(&d.path().join("race"));
    assert_eq!(rows.len(), 4_000, "every pair once, none doubled");
    contents(&rows);
}

#[test]
fn every_spelling_of_an_s3_prefix_is_one_output() {
    // The lock object lives under the normalised prefix, so these are one lock too.
    let url = |s: &str| fleet_audit::dataset::Remote::parse(s).unwrap().url;
    for s in [
        "s3://audit/a/b",
        "s3://audit/a/b/",
        "s3://audit//a/b//",
        "s3://audit/a/b///",
    ] {
        assert_eq!(url(s), "s3://audit/a/b/", "{s}");
    }
    assert!(fleet_audit::dataset::Remote::parse("s3://audit/a/../b").is_err());
    assert!(fleet_audit::dataset::Remote::parse("s3://audit/a/./b").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_without_a_manifest_deletes_nothing_it_cannot_prove_its_own() {
    let sim = start(sim_config(fleet(50, 2, 43))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    // Another tool's dataset: pyarrow's and Spark's names, a folder this tool never makes.
    let out = d.path().join("lake");
    std::fs::create_dir_all(out.join("year=2025")).unwrap();
    for f in [
        "part-0.parquet",
        "part-00000-6b7c1b2e-4f1a-4b8e-9d1e-2c3b4a5d6e7f-c000.snappy.parquet",
        "year=2025/part-1764662400-3fa2c1-00000.parquet",
    ] {
        std::fs::write(out.join(f), b"theirs").unwrap();
    }
    let before = listing(&out);
    let (code, stderr) = fa(
        d.path(),
        &sim.endpoint_url(),
        &args(&["--out", "lake", "--overwrite"]),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("this tool did not write"), "{stderr}");
    assert!(stderr.contains("nothing was deleted"), "{stderr}");
    assert!(stderr.contains("part-0.parquet"), "names them: {stderr}");
    assert_eq!(listing(&out), before, "nothing deleted");
    assert_eq!(sim.stats().total_calls(), 0, "refused before any call");

    // What a killed run of this tool leaves before its first commit is named as this tool names
    // its files: --overwrite clears exactly that and writes the audit.
    let ours = d.path().join("ours");
    std::fs::create_dir_all(&ours).unwrap();
    for f in [
        "part-1764662400-3fa2c1-00000.parquet",
        ".part-1764662400-3fa2c1-00001.parquet.tmp",
        "._manifest.json.tmp",
    ] {
        std::fs::write(ours.join(f), b"ours").unwrap();
    }
    let (code, stderr) = fa(
        d.path(),
        &sim.endpoint_url(),
        &args(&["--out", "ours", "--overwrite"]),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let left = listing(&ours);
    assert!(left.iter().all(|f| !f.contains("1764662400")), "{left:?}");
    assert_eq!(read_rows(&ours).len(), 100);

    // With this tool's manifest, --overwrite deletes the parts it lists and leaves the rest.
    std::fs::write(ours.join("notes.txt"), b"mine").unwrap();
    std::fs::write(ours.join("part-0.parquet"), b"theirs").unwrap();
    let (code, stderr) = fa(
        d.path(),
        &sim.endpoint_url(),
        &args(&["--out", "ours", "--overwrite"]),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(ours.join("notes.txt").exists() && ours.join("part-0.parquet").exists());
    assert_eq!(read_rows(&ours).len(), 100);
}

/// An interrupted audit of 400 pairs in parts of 50 rows: (the dataset, its settings).
async fn interrupted_dataset(
    server: &fleet_audit::sim::SimServer,
    dir: &Path,
) -> (PathBuf, fleet_audit::audit::config::RunConfig) {
    let (things, jobs) = lists(server, dir);
    let out = dir.join("ds");
    let mut rc = run_config(
        &server.endpoint_url(),
        InputSpec::Lists { things, jobs },
        &out,
    );
    rc.output.part_rows = 50;
    rc.engine.concurrency = 2;
    run_interrupted(rc.clone(), server, Operation::DescribeJobExecution, 220).await;
    (out, rc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_over_a_missing_truncated_or_altered_part_is_refused_naming_it() {
    let server = start_paced(fleet(200, 2, 47)).await;
    let d = tempfile::tempdir().unwrap();
    let (out, rc) = interrupted_dataset(&server, d.path()).await;
    let m = fleet_audit::dataset::Manifest::load(&out).unwrap().unwrap();
    assert!(m.parts.len() >= 3, "{:?}", m.parts);
    assert!(m.parts.iter().all(|p| p.size.is_some() && p.xxh3.is_some()));
    let victim = out.join(&m.parts[1].file);
    let good = std::fs::read(&victim).unwrap();
    let damages: [Damage; 4] = [
        (
            "missing",
            Box::new(|p| std::fs::remove_file(p).unwrap()),
            "listed in the manifest but missing",
        ),
        (
            "truncated",
            Box::new(|p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap()
            }),
            "were committed (truncated or replaced)",
        ),
        (
            "empty",
            Box::new(|p| std::fs::write(p, b"").unwrap()),
            "were committed (truncated or replaced)",
        ),
        (
            "altered",
            Box::new(|p| {
                let mut b = std::fs::read(p).unwrap();
                let i = b.len() / 2;
                b[i] ^= 0x01;
                std::fs::write(p, &b).unwrap()
            }),
            "it was altered",
        ),
    ];
    for (what, damage, says) in damages {
        damage(&victim);
        let calls = server.stats().total_calls();
        let mut again = rc.clone();
        again.output.resume = true;
        let err = run(again, no_shutdown()).await.unwrap_err();
        assert!(
            matches!(err, fleet_audit::audit::error::RunError::Config(_)),
            "{what}: bad input (exit 2): {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&m.parts[1].file),
            "{what}: names the part: {text}"
        );
        assert!(text.contains(says), "{what}: {text}");
        assert!(
            text.contains("--overwrite"),
            "{what}: says what to do: {text}"
        );
        assert_eq!(server.stats().total_calls(), calls, "{what}: no call made");
        let now = fleet_audit::dataset::Manifest::load(&out).unwrap().unwrap();
        assert!(!now.complete, "{what}: never marked complete");
        std::fs::write(&victim, &good).unwrap();
    }
    // The binary says so with exit 2; with the part back, the resume completes every pair once.
    std::fs::remove_file(&victim).unwrap();
    let (code, stderr) = fa(
        d.path(),
        &server.endpoint_url(),
        &args(&["--out", "ds", "--resume", "--part-rows", "50"]),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    std::fs::write(&victim, &good).unwrap();
    let mut again = rc.clone();
    again.output.resume = true;
    let s = run(again, no_shutdown()).await.unwrap();
    assert!(s.complete);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 400);
    contents(&rows);

    // A reader (report, --baseline) refuses an altered part of a complete audit, naming it.
    let m = fleet_audit::dataset::Manifest::load(&out).unwrap().unwrap();
    let victim = out.join(&m.parts[0].file);
    let mut b = std::fs::read(&victim).unwrap();
    let i = b.len() / 3;
    b[i] ^= 0x40;
    std::fs::write(&victim, &b).unwrap();
    let (code, stderr) = fa(d.path(), &server.endpoint_url(), &["report", "ds"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&m.parts[0].file) && stderr.contains("altered"),
        "{stderr}"
    );
    let e = fleet_audit::dataset::data_files(&out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the part committed"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_date_that_is_no_date_is_refused_with_nothing_written() {
    let server = start(sim_config(fleet(50, 2, 53))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let dated = ["--out", "ds", "--partition-by", "date", "--part-rows", "20"];
    let (code, stderr) = fa(d.path(), &server.endpoint_url(), &args(&dated)).await;
    assert_eq!(code, Some(0), "{stderr}");
    let manifest_path = d.path().join("ds/_manifest.json");
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let date = good["date"].as_str().unwrap().to_string();
    let cases: [Edit; 3] = [
        (
            "a date that climbs out",
            Box::new(|m| {
                m["date"] = "../../../outside_written".into();
                m["complete"] = false.into();
            }),
        ),
        (
            "a part under date=..",
            Box::new(|m| {
                let f = m["parts"][0]["file"].as_str().unwrap().to_string();
                let name = f.rsplit('/').next().unwrap().to_string();
                m["parts"][0]["file"] = format!("date=../{name}").into();
            }),
        ),
        (
            "a part in another audit's folder",
            Box::new(|m| {
                let f = m["parts"][0]["file"].as_str().unwrap().to_string();
                let name = f.rsplit('/').next().unwrap().to_string();
                m["parts"][0]["file"] = format!("date=2020-01-01/{name}").into();
            }),
        ),
    ];
    let before = listing(d.path());
    let calls = server.stats().total_calls();
    for (what, edit) in cases {
        let mut m = good.clone();
        edit(&mut m);
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
        for extra in [&["--resume"][..], &[][..]] {
            let a: Vec<&str> = dated.iter().copied().chain(extra.iter().copied()).collect();
            let (code, stderr) = fa(d.path(), &server.endpoint_url(), &args(&a)).await;
            assert_eq!(code, Some(2), "{what} {extra:?}: {stderr}");
            // (Without --resume, the existing output is refused before its manifest is read.)
            assert!(
                stderr.contains("not a fleet-audit manifest") || extra.is_empty(),
                "{what}: {stderr}"
            );
        }
        let (code, stderr) = fa(d.path(), &server.endpoint_url(), &["report", "ds"]).await;
        assert_eq!(code, Some(2), "{what}: report: {stderr}");
        assert_eq!(
            listing(d.path()),
            before,
            "{what}: nothing written or deleted"
        );
    }
    assert_eq!(server.stats().total_calls(), calls, "no call made");
    assert!(!d.path().parent().unwrap().join("outside_written").exists());
    std::fs::write(&manifest_path, serde_json::to_vec(&good).unwrap()).unwrap();
    let (code, stderr) = fa(d.path(), &server.endpoint_url(), &["report", "ds"]).await;
    assert_eq!(code, Some(0), "the date {date} is fine: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_planted_where_the_tool_keeps_its_files_are_refused_and_never_followed() {
    let sim = start(sim_config(fleet(20, 2, 59))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    let victim = d.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    for (out, planted) in [
        ("one.parquet", ".one.parquet.tmp"),
        ("one.parquet", ".one.parquet.fleet-audit.lock"),
        ("dir", ".dir.fleet-audit.lock"),
        ("dir2", "dir2/._manifest.json.tmp"),
        ("dir3", "dir3/_manifest.json"),
    ] {
        let link = d.path().join(planted);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for extra in [&[][..], &["--overwrite"][..]] {
            let mut a = args(&["--out", out]);
            a.extend_from_slice(extra);
            let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &a).await;
            assert_eq!(code, Some(2), "{planted} {extra:?}: {stderr}");
            // (A directory holding the link is refused as existing output without --overwrite.)
            let inside = planted.contains('/');
            assert!(
                stderr.contains("symbolic link")
                    || stderr.contains("never writes through a link")
                    || (inside && extra.is_empty() && stderr.contains("exists")),
                "{planted}: {stderr}"
            );
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{planted}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{planted}: the link is left as it was"
        );
        assert!(!d.path().join(out).join("_manifest.json").is_file() || out == "dir3");
        std::fs::remove_file(&link).unwrap();
    }
    assert_eq!(sim.stats().total_calls(), 0, "no call made");
    // The temporary file is created afresh, never opened through what is there.
    let tmp = d.path().join(".two.parquet.tmp");
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    let e = fleet_audit::dataset::FilePart::create(
        d.path().join("two.parquet"),
        fleet_audit::dataset::Format::Parquet,
        fleet_audit::dataset::schema::schema(),
        1024,
    )
    .err()
    .expect("refused");
    assert!(
        e.to_string().contains("refusing to write through it"),
        "{e}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_paths_that_are_links_other_file_types_or_in_missing_folders() {
    let sim = start(sim_config(fleet(20, 2, 61))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    // A link to nothing at --out is refused, not replaced.
    std::os::unix::fs::symlink("gone.parquet", d.path().join("dangling.parquet")).unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut a = args(&["--out", "dangling.parquet"]);
        a.extend_from_slice(extra);
        let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &a).await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("which does not exist"), "{stderr}");
    }
    assert!(std::fs::symlink_metadata(d.path().join("dangling.parquet"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!d.path().join("gone.parquet").exists());

    // --overwrite through a link to a file replaces the file it points to; the link stays.
    std::fs::create_dir(d.path().join("data")).unwrap();
    std::fs::write(d.path().join("data/real.parquet"), b"stale").unwrap();
    std::os::unix::fs::symlink("data/real.parquet", d.path().join("link.parquet")).unwrap();
    let (code, stderr) = fa(
        d.path(),
        &sim.endpoint_url(),
        &args(&["--out", "link.parquet", "--overwrite"]),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(std::fs::symlink_metadata(d.path().join("link.parquet"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read_rows(&d.path().join("data/real.parquet")).len(), 40);

    // Another file type is a mistake, not a directory named so.
    let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &args(&["--out", "x.csv"])).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("names a .csv file"), "{stderr}");
    assert!(!d.path().join("x.csv").exists());

    // A missing folder is made, for a file as for a directory.
    for out in ["new/a/one.parquet", "new/b/dir"] {
        let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &args(&["--out", out])).await;
        assert_eq!(code, Some(0), "{out}: {stderr}");
        assert_eq!(read_rows(&d.path().join(out)).len(), 40, "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lock_file_was_removed_commits_nothing_more_and_fails() {
    // The attacker's case: the lock file is deleted while run A holds the output, so run B gets in
    // (a flock is on a file, and the file is gone). A must then never publish again nor exit 0.
    let first = start(sim_config(fleet(1_000, 2, 113))).await;
    let second = start(sim_config(fleet(1_000, 2, 113))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&first, d.path());
    let op = Operation::DescribeJobExecution;
    for (out, again) in [("ow", "--overwrite"), ("rs", "--resume")] {
        first.simulator().hold_after(op, 500);
        let a = spawn_against(
            d.path(),
            &first.endpoint_url(),
            &args(&["--out", out, "--part-rows", "100", "--concurrency", "4"]),
        );
        first.simulator().until_held(op, 1).await;
        std::fs::remove_file(d.path().join(format!(".{out}.fleet-audit.lock"))).unwrap();
        let (code, stderr) = fa(
            d.path(),
            &second.endpoint_url(),
            &args(&["--out", out, "--part-rows", "100", again]),
        )
        .await;
        assert_eq!(code, Some(0), "{again}: the second run completes: {stderr}");
        first.simulator().release(op);
        let (code, stderr) = wait_or_kill(a, None).await;
        assert_eq!(code, Some(1), "{again}: the first run fails: {stderr}");
        assert!(
            stderr.contains("lock on the output was removed or replaced"),
            "{stderr}"
        );
        assert!(!stderr.contains("--resume to finish"), "{stderr}");
        // The dataset is the second run's, whole: every pair once, every listed part there.
        let (code, stderr) = fa(d.path(), &first.endpoint_url(), &["report", out]).await;
        assert_eq!(code, Some(0), "{again}: {stderr}");
        let rows = read_rows(&d.path().join(out));
        assert_eq!(rows.len(), 2_000, "{again}");
        contents(&rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_in_place_of_a_partition_folder_is_refused_before_anything_is_deleted() {
    let sim = start(sim_config(fleet(100, 3, 127))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    let by_job = [
        "--out",
        "pj",
        "--partition-by",
        "job_id",
        "--part-rows",
        "50",
    ];
    let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &args(&by_job)).await;
    assert_eq!(code, Some(0), "{stderr}");
    // job-001's folder moved away and a link to another folder put in its place.
    let victim = d.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), b"keep").unwrap();
    std::fs::rename(d.path().join("pj/job_id=job-001"), d.path().join("saved")).unwrap();
    std::os::unix::fs::symlink(&victim, d.path().join("pj/job_id=job-001")).unwrap();
    let before = listing(&d.path().join("pj"));
    let calls = sim.stats().total_calls();
    for again in ["--overwrite", "--resume"] {
        let mut a = args(&by_job);
        a.push(again);
        let (code, stderr) = fa(d.path(), &sim.endpoint_url(), &a).await;
        assert_eq!(code, Some(2), "{again}: {stderr}");
        assert!(
            stderr.contains("job_id=job-001 is a symbolic link"),
            "{stderr}"
        );
        assert!(stderr.contains("nothing was deleted"), "{stderr}");
        assert_eq!(
            listing(&d.path().join("pj")),
            before,
            "{again}: nothing deleted"
        );
    }
    assert_eq!(sim.stats().total_calls(), calls, "no call made");
    assert_eq!(listing(&victim), vec!["keep.txt".to_string()]);
}
