//! `fleet-audit report` over datasets written by hand with known content: every count and class, the
//! threshold edges, the JSON shape, `--fail-on` exit codes, directory and `.arrow` inputs, unknown
//! status values, and the errors a user meets (each naming the path or file).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use fleet_audit::aws::client::{CallError, ExecutionRecord};
use fleet_audit::dataset::schema::{schema, BatchBuilder, Outcome, Row, Source};
use fleet_audit::report::{report_path, Class, Report, Thresholds};
use parquet::arrow::ArrowWriter;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_fleet-audit");
const NOW: i64 = 1_764_400_000_000;
const S: i64 = 1000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const D: i64 = 24 * H;

/// A row fetched at `NOW + n` seconds (each row its own fetch time, as in a real run), with its
/// timestamps given as "this long before the fetch".
struct Exec {
    job: &'static str,
    thing: &'static str,
    status: &'static str,
    queued_ago: Option<i64>,
    updated_ago: Option<i64>,
    left_s: Option<i64>,
}

fn ex(job: &'static str, thing: &'static str, status: &'static str) -> Exec {
    Exec {
        job,
        thing,
        status,
        queued_ago: None,
        updated_ago: None,
        left_s: None,
    }
}

impl Exec {
    fn queued(mut self, ago: i64) -> Self {
        self.queued_ago = Some(ago);
        self
    }
    fn updated(mut self, ago: i64) -> Self {
        self.updated_ago = Some(ago);
        self
    }
    fn left(mut self, s: i64) -> Self {
        self.left_s = Some(s);
        self
    }
    fn row(&self, n: i64) -> Row {
        let fetched = NOW + n * S;
        Row {
            thing_name: self.thing.into(),
            job_id: self.job.into(),
            requested_execution_number: None,
            outcome: Outcome::Ok,
            error: None,
            attempts: 1,
            fetched_at_ms: fetched,
            execution: Some(ExecutionRecord {
                job_id: Some(self.job.into()),
                status: Some(self.status.into()),
                queued_at_ms: self.queued_ago.map(|a| fetched - a),
                last_updated_at_ms: self.updated_ago.map(|a| fetched - a),
                approximate_seconds_before_timed_out: self.left_s,
                ..Default::default()
            }),
            source: Source::Describe,
            retry_attempt: None,
            origin: None,
            carried_from: None,
            context: Default::default(),
        }
    }
}

fn failed(job: &str, thing: &str, outcome: Outcome, n: i64) -> Row {
    let error = match outcome {
        Outcome::NotFound => CallError::Service {
            code: "ResourceNotFoundException".into(),
            message: "no such execution".into(),
            http_status: 404,
        },
        _ => CallError::Timeout(std::time::Duration::from_secs(10)),
    };
    Row {
        thing_name: thing.into(),
        job_id: job.into(),
        requested_execution_number: None,
        outcome,
        error: Some(error),
        attempts: 5,
        fetched_at_ms: NOW + n * S,
        execution: None,
        source: Source::Describe,
        retry_attempt: None,
        origin: None,
        carried_from: None,
        context: Default::default(),
    }
}

/// The known dataset; the comment on each row says how the default thresholds classify it.
fn known_rows() -> Vec<Row> {
    let execs = [
        ex("job-a", "a01", "QUEUED").queued(24 * H), // exactly 24h: not stuck
        ex("job-a", "a02", "QUEUED").queued(24 * H + 1), // stuck_queued
        ex("job-a", "a03", "QUEUED").queued(30 * D).left(299), // stuck_queued, near_timeout
        ex("job-a", "a04", "QUEUED").queued(H).left(300), // exactly 5m left: not near
        ex("job-a", "a05", "IN_PROGRESS").updated(H), // exactly 1h: stale_in_progress
        ex("job-a", "a06", "IN_PROGRESS").updated(H - 1), // not stale
        ex("job-a", "a07", "IN_PROGRESS").updated(2 * D).left(10), // stale, near_timeout
        ex("job-a", "a08", "TIMED_OUT").queued(5 * D).updated(3 * D), // timed_out
        ex("job-a", "a09", "SUCCEEDED").updated(D).left(1), // nothing: near only while pending
        ex("job-a", "a12", "QUEUED"),                // no queued_at: no age, not stuck
        ex("job-b", "b01", "TIMED_OUT").updated(10 * D), // timed_out
        ex("job-b", "b02", "FAILED").updated(D),     // nothing
        ex("job-b", "b05", "PAUSED").updated(40 * D), // unknown status, kept as spelled
    ];
    let mut rows: Vec<Row> = execs
        .iter()
        .enumerate()
        .map(|(i, e)| e.row(i as i64))
        .collect();
    rows.push(failed("job-a", "a10", Outcome::NotFound, 20));
    rows.push(failed("job-a", "a11", Outcome::Error, 21));
    rows.push(failed("job-b", "b03", Outcome::Error, 22));
    rows.push(failed("job-b", "b04", Outcome::Error, 23));
    rows
}

fn batches(rows: &[Row], per_batch: usize) -> Vec<RecordBatch> {
    let mut b = BatchBuilder::new("run-test", Some("us-east-1"));
    rows.chunks(per_batch)
        .map(|chunk| {
            for r in chunk {
                b.push(r);
            }
            b.finish().unwrap()
        })
        .collect()
}

fn write_parquet(path: &Path, rows: &[Row]) {
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema(), None).unwrap();
    for batch in batches(rows, 4) {
        w.write(&batch).unwrap();
    }
    w.close().unwrap();
}

fn write_arrow(path: &Path, rows: &[Row]) {
    let f = File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(f, &schema()).unwrap();
    for batch in batches(rows, 3) {
        w.write(&batch).unwrap();
    }
    w.finish().unwrap();
}

/// A directory of parts as a run leaves it, with a manifest and a hidden leftover to be ignored.
fn write_parts(dir: &Path, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut m =
        fleet_audit::dataset::Manifest::new("pairs:test".into(), rows.len() as u64, "parquet");
    for (i, chunk) in rows.chunks(5).enumerate() {
        let file = format!("part-run-test-{i:05}.parquet");
        write_parquet(&dir.join(&file), chunk);
        m.parts.push(fleet_audit::dataset::PartEntry::new(
            file,
            chunk.len() as u64,
            None,
        ));
    }
    for o in 0..rows.len() as u64 {
        m.committed.insert(o);
    }
    m.complete = true;
    m.store(dir).unwrap();
    std::fs::write(dir.join(".part-run-test-00009.parquet"), b"half-written").unwrap();
}

fn fa(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(args: &[&str]) -> Value {
    let out = fa(args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn job<'a>(r: &'a Report, id: &str) -> &'a fleet_audit::report::JobReport {
    r.jobs.iter().find(|j| j.job_id == id).unwrap()
}

fn known_parquet(dir: &Path) -> PathBuf {
    let p = dir.join("executions.parquet");
    write_parquet(&p, &known_rows());
    p
}

#[test]
fn every_count_and_class_of_a_known_dataset() {
    let d = tempfile::tempdir().unwrap();
    let r = report_path(&known_parquet(d.path()), &Thresholds::default()).unwrap();
    assert_eq!(r.files, 1);
    assert_eq!(
        r.statuses,
        [
            "QUEUED",
            "IN_PROGRESS",
            "SUCCEEDED",
            "FAILED",
            "TIMED_OUT",
            "PAUSED"
        ]
    );
    let a = &job(&r, "job-a").counts;
    assert_eq!(a.total, 12);
    assert_eq!(a.status("QUEUED"), 5);
    assert_eq!(a.status("IN_PROGRESS"), 3);
    assert_eq!(a.status("TIMED_OUT"), 1);
    assert_eq!(a.status("SUCCEEDED"), 1);
    assert_eq!(a.by_status.values().sum::<u64>(), 10);
    assert_eq!(a.no_status, 2);
    let classes = |c: &fleet_audit::report::Counts| Class::ALL.map(|k| c.count(k));
    // stuck_queued, stale_in_progress, timed_out, near_timeout, waiting, no_timeout, not_found,
    // errors
    // near_timeout counts no QUEUED execution: a queued one's timer has not started.
    assert_eq!(classes(a), [2, 2, 1, 1, 0, 0, 1, 1]);
    let b = &job(&r, "job-b").counts;
    assert_eq!(b.total, 5);
    assert_eq!(b.status("PAUSED"), 1, "unknown status kept as spelled");
    assert_eq!(b.status("FAILED"), 1);
    assert_eq!(b.status("TIMED_OUT"), 1);
    assert_eq!(b.no_status, 2);
    assert_eq!(classes(b), [0, 0, 1, 0, 0, 0, 0, 2]);
    assert_eq!(r.totals.total, 17);
    assert_eq!(classes(&r.totals), [2, 2, 2, 1, 0, 0, 1, 3]);
    assert_eq!(r.totals.status("PAUSED"), 1);

    // Oldest first, over all jobs: age is fetched_at - since for each row's own fetch.
    let oldest: Vec<_> = r
        .oldest
        .iter()
        .map(|p| (p.thing_name.as_str(), p.class, p.age_ms))
        .collect();
    assert_eq!(
        oldest,
        [
            ("a03", Class::StuckQueued, 30 * D),
            ("b01", Class::TimedOut, 10 * D),
            ("a08", Class::TimedOut, 3 * D),
            ("a07", Class::StaleInProgress, 2 * D),
            ("a02", Class::StuckQueued, 24 * H + 1),
            ("a05", Class::StaleInProgress, H),
        ]
    );
    assert_eq!(r.oldest[0].since_ms, NOW + 2 * S - 30 * D);
    assert_eq!(r.oldest[0].status, "QUEUED");
    let a_oldest: Vec<_> = job(&r, "job-a")
        .oldest
        .iter()
        .map(|p| p.thing_name.as_str())
        .collect();
    assert_eq!(a_oldest, ["a03", "a08", "a07", "a02", "a05"]);
    // Histogram of stuck ages: a05 (1h) in 1–3h, a02 (24h+) and a07 (2d) in 1–2d / 2–3d, a03 in ≥ 30d.
    let h = &r.stuck_ages.buckets;
    assert_eq!(h[1], [0, 1]);
    assert_eq!(h[5], [1, 0]);
    assert_eq!(h[6], [0, 1]);
    assert_eq!(h[10], [1, 0]);
    assert_eq!(r.stuck_ages.total(), 4);
}

#[test]
fn thresholds_from_flags_move_the_edges() {
    let d = tempfile::tempdir().unwrap();
    let p = known_parquet(d.path());
    let p = p.to_str().unwrap();
    // 90m: a01, a02, a03 are stuck; a04 (1h) is not. 2d stale: only a07 (exactly 2d). 300s left is
    // not near with 5m; with 301s it is.
    let doc = json_of(&[
        "report",
        p,
        "--json",
        "--queued-after",
        "90m",
        "--stale-after",
        "2d",
        "--near-timeout",
        "301s",
    ]);
    let a = &doc["jobs"][0];
    assert_eq!(a["job_id"], "job-a");
    assert_eq!(a["stuck_queued"], 3);
    assert_eq!(a["stale_in_progress"], 1);
    // Only IN_PROGRESS executions: a QUEUED one's timer has not started.
    assert_eq!(a["near_timeout"], 1);
    assert_eq!(
        doc["thresholds"],
        json!({"queued_after_s": 5400, "stale_after_s": 172800, "near_timeout_s": 301, "top": 10})
    );
    // Longer than parse_duration's week: nothing queued for more than 14d except a03 (30d).
    let doc = json_of(&["report", p, "--json", "--queued-after", "14d"]);
    assert_eq!(doc["totals"]["stuck_queued"], 1);
    let doc = json_of(&["report", p, "--json", "--near-timeout", "1500ms"]);
    assert_eq!(doc["thresholds"]["near_timeout_s"], 1.5);
    assert_eq!(
        doc["totals"]["near_timeout"], 0,
        "10s left is not under 1.5s"
    );
    let doc = json_of(&["report", p, "--json", "--near-timeout", "11s"]);
    assert_eq!(doc["totals"]["near_timeout"], 1, "only a07 (10s left)");
}

#[test]
fn json_document_shape() {
    let d = tempfile::tempdir().unwrap();
    let p = known_parquet(d.path());
    let doc = json_of(&["report", p.to_str().unwrap(), "--json", "--top", "3"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(&doc),
        [
            "dataset",
            "files",
            "complete",
            "pairs_expected",
            "being_written_by",
            "thresholds",
            "totals",
            "jobs",
            "why",
            "held_up"
        ]
    );
    assert_eq!(doc["dataset"], p.to_str().unwrap());
    assert_eq!(doc["files"], 1);
    let counts = [
        "total",
        "by_status",
        "no_status",
        "stuck_queued",
        "stale_in_progress",
        "timed_out",
        "near_timeout",
        "waiting",
        "no_timeout",
        "not_found",
        "errors",
        "causes",
        "oldest",
    ];
    let mut job_keys = vec!["job_id"];
    job_keys.extend(counts);
    let mut total_keys = vec!["jobs"];
    total_keys.extend(counts);
    assert_eq!(keys(&doc["totals"]), total_keys);
    assert_eq!(doc["totals"]["jobs"], 2);
    let jobs = doc["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    for j in jobs {
        assert_eq!(keys(j), job_keys);
        // Every status of the dataset, zeros included, in the same order for every job.
        assert_eq!(
            keys(&j["by_status"]),
            [
                "QUEUED",
                "IN_PROGRESS",
                "SUCCEEDED",
                "FAILED",
                "TIMED_OUT",
                "PAUSED"
            ]
        );
        assert!(j["oldest"].as_array().unwrap().len() <= 3);
    }
    assert_eq!(
        jobs[1]["by_status"],
        json!({"QUEUED": 0, "IN_PROGRESS": 0, "SUCCEEDED": 0, "FAILED": 1, "TIMED_OUT": 1, "PAUSED": 1})
    );
    assert_eq!(jobs[1]["errors"], 2);
    assert_eq!(jobs[1]["no_status"], 2);
    let oldest = doc["totals"]["oldest"].as_array().unwrap();
    assert_eq!(oldest.len(), 3);
    assert_eq!(
        oldest[0],
        json!({
            "thing_name": "a03",
            "job_id": "job-a",
            "class": "stuck_queued",
            "status": "QUEUED",
            "since": "2025-10-30T07:06:42.000Z",
            "age_s": 30 * 86_400,
        })
    );
    assert_eq!(oldest[1]["thing_name"], "b01");
    assert_eq!(oldest[1]["class"], "timed_out");
    assert_eq!(oldest[2]["thing_name"], "a08");
    assert_eq!(oldest[2]["age_s"], 3 * 86_400);
}

#[test]
fn fail_on_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let p = known_parquet(d.path());
    let p = p.to_str().unwrap();
    let out = fa(&["report", p, "--fail-on", "stuck,timed-out,errors"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("--fail-on matched: stuck 4, timed-out 2, errors 3"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("job-a"),
        "the report is still printed"
    );
    assert_eq!(
        fa(&["report", p, "--fail-on", "errors"]).status.code(),
        Some(3)
    );
    assert_eq!(
        fa(&["report", p, "--json", "--fail-on", "timed-out"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        fa(&["report", p]).status.code(),
        Some(0),
        "no --fail-on, no failure"
    );

    // A clean dataset passes every condition.
    let clean = d.path().join("clean.parquet");
    write_parquet(
        &clean,
        &[
            ex("job-c", "c1", "SUCCEEDED").updated(D).row(0),
            ex("job-c", "c2", "QUEUED").queued(H).row(1),
            ex("job-c", "c3", "IN_PROGRESS").updated(M).row(2),
        ],
    );
    let out = fa(&[
        "report",
        clean.to_str().unwrap(),
        "--fail-on",
        "stuck,timed-out,errors,near-timeout,not-found",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Only the stuck side: a QUEUED row older than the flag fails `stuck`, nothing else.
    let c = clean.to_str().unwrap();
    let args = ["report", c, "--queued-after", "30m", "--fail-on"];
    assert_eq!(fa(&[&args[..], &["stuck"]].concat()).status.code(), Some(3));
    assert_eq!(
        fa(&[&args[..], &["errors,timed-out"]].concat())
            .status
            .code(),
        Some(0)
    );
    let out = fa(&["report", c, "--fail-on", "stuck,sometimes"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "unknown condition is a usage error"
    );
}

#[test]
fn directory_of_parts_and_arrow_file_report_the_same() {
    let d = tempfile::tempdir().unwrap();
    let rows = known_rows();
    let file = known_parquet(d.path());
    let dir = d.path().join("parts");
    write_parts(&dir, &rows);
    let arrow = d.path().join("executions.arrow");
    write_arrow(&arrow, &rows);
    let adir = d.path().join("arrow-parts");
    std::fs::create_dir(&adir).unwrap();
    write_arrow(&adir.join("part-1.arrow"), &rows[..7]);
    write_arrow(&adir.join("part-2.arrow"), &rows[7..]);

    let strip = |p: &Path| {
        let mut v = json_of(&["report", p.to_str().unwrap(), "--json"]);
        let files = v["files"].take();
        v.as_object_mut().unwrap().remove("dataset");
        (v, files)
    };
    let (from_file, n) = strip(&file);
    assert_eq!(n, 1);
    let (from_dir, n) = strip(&dir);
    assert_eq!(
        n, 4,
        "4 parts; the manifest and the hidden leftover are not data"
    );
    assert_eq!(from_dir, from_file);
    let (from_arrow, _) = strip(&arrow);
    assert_eq!(from_arrow, from_file);
    let (from_adir, n) = strip(&adir);
    assert_eq!(n, 2);
    assert_eq!(from_adir, from_file);
    assert_eq!(from_file["totals"]["total"], 17);
}

#[test]
fn terminal_tables_are_aligned_and_plain_when_piped() {
    let d = tempfile::tempdir().unwrap();
    let p = known_parquet(d.path());
    let out = Command::new(BIN)
        .args(["report", p.to_str().unwrap()])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(
        !s.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(s.contains("(1 file): 17 executions, 2 jobs"), "{s}");
    // The thresholds are stated with their flags.
    assert!(s.contains("QUEUED for more than 24h when fetched"), "{s}");
    assert!(
        s.contains("IN_PROGRESS with no update for 1h or more"),
        "{s}"
    );
    assert!(s.contains("under 5m before it times out"), "{s}");
    for flag in ["--queued-after", "--stale-after", "--near-timeout"] {
        assert!(s.contains(flag), "{flag}: {s}");
    }
    // One table per job and one over all jobs, each with the class column aligned.
    for title in [
        "job-a: 12 executions",
        "job-b: 5 executions",
        "all jobs: 17 executions",
    ] {
        let start = s.find(title).unwrap_or_else(|| panic!("{title}: {s}"));
        let table: Vec<&str> = s[start..].lines().skip(1).take(7).collect();
        let col = table[0].find("class").unwrap();
        for (line, class) in table[1..].iter().zip(Class::ALL) {
            assert_eq!(
                line.find(class.as_str()),
                Some(col),
                "{title}:\n{}",
                table.join("\n")
            );
        }
    }
    let a = s.find("job-a: 12").unwrap();
    let a_table = &s[a..s.find("job-b: 5").unwrap()];
    assert!(a_table.contains("stuck_queued           2"), "{a_table}");
    assert!(a_table.contains("PAUSED           0"), "{a_table}");
    assert!(a_table.contains("(no status)      2"), "{a_table}");
    // The oldest pairs, oldest first, with their ages.
    assert!(
        s.contains("oldest 6 of 6 stuck or timed-out executions"),
        "{s}"
    );
    let first = s
        .lines()
        .skip_while(|l| !l.starts_with("oldest"))
        .nth(2)
        .unwrap();
    assert!(first.contains("30d 0h") && first.contains("a03"), "{first}");

    // The library renders the same text for the run command to print.
    let r = report_path(&p, &Thresholds::default()).unwrap();
    assert_eq!(r.render_terminal(10), s.trim_end());
    let short = r.render_terminal(2);
    assert!(short.contains("oldest 2 of 6"), "{short}");
}

#[test]
fn html_page_is_self_contained_and_escaped() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("odd.parquet");
    let mut rows = known_rows();
    rows.push(ex("job-<b>", "thing&\"1\"", "<ARCHIVED>").row(30));
    write_parquet(&p, &rows);
    let html = d.path().join("report.html");
    let out = fa(&[
        "report",
        p.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<svg"), "inline SVG charts");
    assert!(page.contains("Status by job") && page.contains("How long stuck executions"));
    for external in [
        "<script", "src=", "href=", "url(", "@import", "http://", "https://",
    ] {
        assert!(!page.contains(external), "{external} in the page");
    }
    assert!(page.contains("job-&lt;b&gt;") && !page.contains("job-<b>"));
    // not_found (usually a pair its job never targeted) is neutral, and says so (issue 23, item 11).
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_found = doc["totals"]["not_found"].as_u64().unwrap();
    assert!(not_found > 0);
    assert!(
        page.contains(&format!(
            "<div class=\"card neutral\"><div class=\"n\">{not_found}</div><div class=\"k\">not_found</div>"
        )),
        "the not_found card is neutral"
    );
    assert!(!page
        .contains("<div class=\"card warn\"><div class=\"n\">1</div><div class=\"k\">not_found"));
    assert!(page.contains("usually a thing the job never targeted"));
    assert!(page.contains("&lt;ARCHIVED&gt;") && !page.contains("<ARCHIVED>"));
    // --json output is unaffected by --html.
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["totals"]["by_status"]["<ARCHIVED>"], 1);
}

#[test]
fn errors_name_the_path_or_the_file() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope.parquet");
    let out = fa(&["report", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}: no such file or directory", missing.display())),
        "{err}"
    );

    // A Parquet file of some other table.
    let dir = d.path().join("mixed");
    std::fs::create_dir(&dir).unwrap();
    write_parquet(&dir.join("part-1.parquet"), &known_rows());
    let other = Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("thing_name", DataType::Utf8, false),
    ]);
    let batch = RecordBatch::try_new(
        other.clone().into(),
        vec![
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["j"])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec!["t"])),
        ],
    )
    .unwrap();
    let bad = dir.join("part-2.parquet");
    let mut w = ArrowWriter::try_new(File::create(&bad).unwrap(), other.into(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = fa(&["report", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: not a fleet-audit dataset: missing columns outcome, status, fetched_at, queued_at, last_updated_at, approximate_seconds_before_timed_out",
            bad.display()
        )),
        "{err}"
    );

    // A column of the wrong type.
    let wrong = Schema::new(
        schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "fetched_at" => Field::new("fetched_at", DataType::Utf8, false),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    );
    let good = batches(&known_rows()[..1], 1).remove(0);
    let mut cols = good.columns().to_vec();
    let at = good.schema().index_of("fetched_at").unwrap();
    cols[at] = std::sync::Arc::new(arrow::array::StringArray::from(vec!["yesterday"]));
    let typed = d.path().join("typed.parquet");
    let batch = RecordBatch::try_new(wrong.clone().into(), cols).unwrap();
    let mut w = ArrowWriter::try_new(File::create(&typed).unwrap(), wrong.into(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = fa(&["report", typed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: not a fleet-audit dataset: column fetched_at is Utf8, expected a timestamp",
            typed.display()
        )),
        "{err}"
    );

    // Bytes that are not Parquet at all.
    let junk = d.path().join("junk.parquet");
    std::fs::write(&junk, b"this is not parquet").unwrap();
    let out = fa(&["report", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&junk.display().to_string()), "{err}");

    // An empty directory, and a bad threshold.
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = fa(&["report", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no .parquet or .arrow files found"), "{err}");
    let out = fa(&["report", junk.to_str().unwrap(), "--stale-after", "5x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--stale-after: `5x`: unknown unit"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn microsecond_timestamps_from_other_writers_are_read() {
    // A dataset rewritten by another tool may carry microsecond timestamps; the report casts them.
    let d = tempfile::tempdir().unwrap();
    let batch = batches(&known_rows(), 100).remove(0);
    let us = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(..) => Field::new(f.name(), us.clone(), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let cols = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(..) => arrow::compute::cast(c, &us).unwrap(),
            _ => c.clone(),
        })
        .collect();
    let schema = std::sync::Arc::new(Schema::new(fields));
    let b = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let p = d.path().join("us.parquet");
    let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let r = report_path(&p, &Thresholds::default()).unwrap();
    let reference = report_path(&known_parquet(d.path()), &Thresholds::default()).unwrap();
    assert_eq!(r.totals, reference.totals);
    assert_eq!(r.oldest, reference.oldest);
}

/// A directory of parts with a manifest of `pairs` input pairs, `complete` or not, one audit of
/// `date` (a `--partition-by date` output) or flat.
fn write_audit(dir: &Path, rows: &[Row], pairs: u64, complete: bool, date: Option<&str>) {
    let folder = match date {
        Some(d) => dir.join(format!("date={d}")),
        None => dir.to_path_buf(),
    };
    std::fs::create_dir_all(&folder).unwrap();
    let mut m = fleet_audit::dataset::Manifest::new("pairs:test".into(), pairs, "parquet");
    for (i, chunk) in rows.chunks(5).enumerate() {
        let name = format!("part-run-test-{i:05}.parquet");
        write_parquet(&folder.join(&name), chunk);
        m.parts.push(fleet_audit::dataset::PartEntry::new(
            match date {
                Some(d) => format!("date={d}/{name}"),
                None => name,
            },
            chunk.len() as u64,
            None,
        ));
    }
    for o in 0..rows.len() as u64 {
        m.committed.insert(o);
    }
    m.complete = complete;
    m.run_id = Some("run-test".into());
    if let Some(d) = date {
        m.date = Some(d.into());
        m.partition_by = vec!["date".into()];
    }
    m.store(dir).unwrap();
}

/// Issue 22, item 10: an audit whose manifest says it is incomplete is never presented as a normal
/// report: the text's first line says so with the pairs committed and how to finish, the JSON has
/// `complete` and `pairs_expected`, the HTML page a banner, and `--fail-on incomplete` exits 3.
#[test]
fn an_incomplete_audit_says_so_and_can_fail_the_report() {
    let d = tempfile::tempdir().unwrap();
    let rows = known_rows();
    let dir = d.path().join("partial");
    write_audit(&dir, &rows, 10_000, false, None);
    let p = dir.to_str().unwrap();

    let out = fa(&["report", p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("incomplete audit: 17 of 10,000 pairs committed")
            && first.contains("--resume"),
        "{stdout}"
    );

    let doc = json_of(&["report", p, "--json"]);
    assert_eq!(doc["complete"], json!(false));
    assert_eq!(doc["pairs_expected"], json!(10_000));
    assert_eq!(doc["totals"]["total"], json!(17));

    let html = d.path().join("partial.html");
    let out = fa(&["report", p, "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("class=\"banner\"") && page.contains("Incomplete audit: 17 of 10,000 pairs"),
        "{page}"
    );

    let out = fa(&["report", p, "--fail-on", "incomplete"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--fail-on matched: incomplete (17 of 10,000 pairs committed)"),
        "{}",
        text(&out.stderr)
    );

    // A complete audit: no line, no banner, and --fail-on incomplete passes.
    let whole = d.path().join("whole");
    write_audit(&whole, &rows, 17, true, None);
    let w = whole.to_str().unwrap();
    let out = fa(&["report", w, "--fail-on", "incomplete"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("incomplete"));
    let doc = json_of(&["report", w, "--json"]);
    assert_eq!(
        (&doc["complete"], &doc["pairs_expected"]),
        (&json!(true), &json!(17))
    );
}

/// Issue 22, item 10: the trend labels each audit with its run id, date and completeness as its
/// manifest records them, also when the dataset keeps a single (incomplete) dated audit.
#[test]
fn the_trend_labels_an_incomplete_dated_audit_truly() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("daily");
    write_audit(&dir, &known_rows(), 10_000, false, Some("2026-12-01"));
    let doc = json_of(&["report", dir.to_str().unwrap(), "--trend", "--json"]);
    let trend = doc["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 1, "{doc}");
    assert_eq!(trend[0]["run_id"], json!("run-test"));
    assert_eq!(trend[0]["date"], json!("2026-12-01"));
    assert_eq!(trend[0]["complete"], json!(false));
    assert_eq!(trend[0]["total"], json!(17));
    assert_eq!(doc["complete"], json!(false));
}

/// Issue 23, item 12: `report` on an audit a run is writing now says so (and who), not "finish it
/// with --resume"; once that run is gone (killed), the report says how to finish it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_an_audit_being_written_says_so() {
    use crate::common::*;
    use fleet_audit::sim::Operation;
    let sim = start(sim_config(fleet(300, 2, 5))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&sim, d.path());
    let op = Operation::DescribeJobExecution;
    sim.simulator().hold_after(op, 200);
    let args = [
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        "audit",
        "--part-rows",
        "50",
        "--concurrency",
        "2",
        "--call-timeout",
        "1h",
        // Rows wait for their thing's context batch; this test is about parts committed mid-run.
        "--context",
        "none",
    ];
    let mut writer = spawn_against(d.path(), &sim.endpoint_url(), &args);
    until_held_or_exit(sim.simulator(), op, &mut writer).await;
    let pid = writer.id().unwrap();
    let report = |json: bool| {
        let mut c = Command::new(BIN);
        c.current_dir(d.path()).args(["report", "audit"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = report(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains("incomplete audit, being written now by run ")
            && said.contains(&format!("(pid {pid} on host "))
            && said.contains("Report again when that run ends"),
        "{said}"
    );
    assert!(!said.contains("--resume"), "{said}");
    let doc: Value = serde_json::from_slice(&report(true).stdout).unwrap();
    assert_eq!(doc["complete"], json!(false));
    assert!(
        doc["being_written_by"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("pid {pid}"))),
        "{doc}"
    );

    let page = d.path().join("r.html");
    let out = Command::new(BIN)
        .current_dir(d.path())
        .args(["report", "audit", "--html", page.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Incomplete audit, being written now")
            && html.contains(&format!("pid {pid}")),
        "the HTML banner says so too"
    );

    // Killed mid-run: nobody writes it any more, and the report says how to finish it.
    kill_when_held(sim.simulator(), op, writer).await;
    let said = text(&report(false).stdout);
    assert!(
        said.contains("incomplete audit: ") && said.contains("and --resume"),
        "{said}"
    );
    assert!(!said.contains("being written"), "{said}");
    let doc: Value = serde_json::from_slice(&report(true).stdout).unwrap();
    assert_eq!(doc["being_written_by"], Value::Null);
}
