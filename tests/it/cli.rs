//! The `fleet-audit` binary as a user meets it: exit codes, messages, files left behind.

use std::path::Path;
use std::process::Output;

use crate::common::*;
use fleet_audit::sim::Operation;

const BIN: &str = env!("CARGO_BIN_EXE_fleet-audit");
const SECRET: &str = "cli-test-secret-never-printed";

/// Runs the binary with a clean AWS environment (no profile files, no IMDS) and test credentials.
async fn fa(args: &[&str], cwd: &Path, creds: bool) -> Output {
    let mut c = isolated_binary(cwd);
    c.args(args)
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "debug");
    if creds {
        c.env("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", "cli-test-session-token");
    }
    let out = c.output().await.unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(SECRET), "secret leaked: {all}");
    assert!(
        !all.contains("cli-test-session-token"),
        "token leaked: {all}"
    );
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    std::fs::write(dir.join(name), body).unwrap();
    dir.join(name).to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_the_dataset_and_a_summary() {
    let server = start(sim_config(fleet(100, 3, 4))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    let o = fa(
        &[
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "a.parquet",
            "--endpoint-url",
            &url,
            "--rps",
            "0",
            "--summary-json",
            "s.json",
        ],
        d.path(),
        true,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["pairs"], 300);
    assert_eq!(s["attempts"], 300);
    assert_eq!(read_rows(&d.path().join("a.parquet")).len(), 300);
    assert!(stderr(&o).contains("300 pairs:"), "{}", stderr(&o));

    // Again without --overwrite: refused before any call.
    let before = server.stats().calls(Operation::DescribeJobExecution);
    let o = fa(
        &[
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "a.parquet",
            "--endpoint-url",
            &url,
        ],
        d.path(),
        true,
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a.parquet exists; pass --overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        server.stats().calls(Operation::DescribeJobExecution),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_file_line_and_rule_before_any_call() {
    let server = start(sim_config(fleet(10, 1, 1))).await;
    let url = server.endpoint_url();
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let jobs = write(p, "jobs.txt", "job-000\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--things".into(),
                write(p, "t1.txt", "ok\nbad/name\n"),
                "--jobs".into(),
                jobs.clone(),
            ],
            "t1.txt:2: invalid thing name \"bad/name\": thingName must match [a-zA-Z0-9:_-]{1,128}",
        ),
        (
            vec![
                "--things".into(),
                write(p, "t2.txt", "# only comments\n\n"),
                "--jobs".into(),
                jobs.clone(),
            ],
            "t2.txt: no thing names",
        ),
        (
            vec![
                "--things".into(),
                "missing.txt".into(),
                "--jobs".into(),
                jobs.clone(),
            ],
            "missing.txt: cannot read",
        ),
        (
            vec!["--pairs".into(), write(p, "p.csv", "thing,job\na,b\n")],
            "p.csv:1: the CSV header must name the columns thing_name and job_id",
        ),
        (
            vec![
                "--pairs".into(),
                write(p, "q.jsonl", "{\"thing_name\":\"a\",\"job_id\":\"b c\"}\n"),
            ],
            "q.jsonl:1: invalid job id \"b c\"",
        ),
        (
            vec![
                "--things".into(),
                write(p, "t3.txt", "ok\n"),
                "--jobs".into(),
                write(p, "j.txt", "\u{e9}t\u{e9}\n"),
            ],
            "j.txt:1: invalid job id",
        ),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = vec!["run"];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--out", "o.parquet", "--endpoint-url", &url]);
        let o = fa(&all, p, true).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{args:?}: want {want:?} in {}",
            stderr(&o)
        );
        assert!(!p.join("o.parquet").exists());
    }
    // Not UTF-8.
    std::fs::write(p.join("bin.txt"), b"ok\n\xff\n").unwrap();
    let o = fa(
        &[
            "run",
            "--things",
            "bin.txt",
            "--jobs",
            &jobs,
            "--out",
            "o.parquet",
            "--endpoint-url",
            &url,
        ],
        p,
        true,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bin.txt:2: not valid UTF-8"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        server.stats().total_calls(),
        0,
        "no call was made for any bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_stop_before_the_first_call() {
    let server = start(sim_config(fleet(10, 1, 1))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let o = fa(
        &[
            "run",
            "--things",
            "things.txt",
            "--jobs",
            "jobs.txt",
            "--out",
            "o.parquet",
            "--endpoint-url",
            &server.endpoint_url(),
        ],
        d.path(),
        false,
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no usable AWS credentials"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.stats().total_calls(), 0);
    assert!(!d.path().join("o.parquet").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_audits_the_embedded_fleet() {
    let d = tempfile::tempdir().unwrap();
    let o = fa(&["demo", "--things", "300", "--jobs", "2"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows = read_rows(&d.path().join("demo-out/executions.parquet"));
    assert_eq!(rows.len(), 600);
    // A second demo replaces the first.
    let o = fa(&["demo", "--things", "200", "--jobs", "2"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        read_rows(&d.path().join("demo-out/executions.parquet")).len(),
        400
    );
}

/// Issue 27: the demo as a Delta table: one commit holding the audit, read back through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_writes_a_delta_table_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let args = [
        "demo",
        "--things",
        "150",
        "--jobs",
        "2",
        "--table-format",
        "delta",
    ];
    let o = fa(&args, d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = d.path().join("demo-out/executions");
    let log: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(log, ["00000000000000000000.json"]);
    let commit =
        std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
    assert_eq!(commit.matches(r#"{"add":"#).count(), 1, "{commit}");
    assert!(commit.contains(r#""numOutputRows":"300""#), "{commit}");
    assert_eq!(read_rows(&table).len(), 300);
    assert!(stderr(&o).contains("delta_scan("), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_announces_its_address_first() {
    let d = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["sim", "--things", "5", "--jobs", "1", "--write-lists"])
        .arg(d.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("things.txt"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_skeletons_and_usage() {
    let d = tempfile::tempdir().unwrap();
    let o = fa(&["describe", "--generate-cli-skeleton"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"jobId": "", "thingName": "", "executionNumber": 0})
    );
    let o = fa(&["describe", "--job-id", "j"], d.path(), true).await;
    // AWS CLI v2's code for bad syntax or a bad parameter (issue 16; was 2).
    assert_eq!(o.status.code(), Some(252));
    assert!(
        stderr(&o).contains("required: --thing-name"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_source_in_bash_and_the_man_page_renders() {
    let d = tempfile::tempdir().unwrap();
    let o = fa(&["completions", "bash"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = d.path().join("fleet-audit.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    // Sourced by a real bash, the function completes `fleet-audit ru` to `run` and `run --res`.
    let probe = format!(
        "source {} && complete -p fleet-audit && COMP_WORDS=(fleet-audit ru) COMP_CWORD=1 && _fleet__audit fleet-audit ru fleet-audit && echo \"${{COMPREPLY[@]}}\" && COMP_WORDS=(fleet-audit run --res) COMP_CWORD=2 && _fleet__audit fleet-audit --res run && echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let b = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&b.stdout);
    assert!(
        b.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&b.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("-F _fleet__audit fleet-audit"), "{out}");
    assert_eq!(lines[1], "run", "{out}");
    assert!(lines[2].split(' ').any(|w| w == "--resume"), "{out}");
    for shell in ["zsh", "fish", "powershell"] {
        let o = fa(&["completions", shell], d.path(), false).await;
        assert_eq!(o.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("fleet-audit"),
            "{shell}"
        );
    }
    let man = fa(&["man"], d.path(), false).await;
    let page = String::from_utf8_lossy(&man.stdout);
    assert_eq!(man.status.code(), Some(0));
    assert!(
        page.contains(".TH fleet-audit 1") && page.contains("describe"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_refuses_a_partition_key_a_run_cannot_write() {
    let d = tempfile::tempdir().unwrap();
    for dialect in ["athena", "glue", "duckdb"] {
        let o = fa(
            &["schema", "--ddl", dialect, "--partition-by", "foo"],
            d.path(),
            false,
        )
        .await;
        assert_eq!(o.status.code(), Some(2), "{dialect}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{dialect}: no table is printed");
        assert!(
            stderr(&o).contains(
                "--partition-by: \"foo\" is not a partition column (use date and/or job_id"
            ),
            "{dialect}: {}",
            stderr(&o)
        );
    }
    // What a run writes is still accepted.
    let o = fa(
        &["schema", "--ddl", "athena", "--partition-by", "date,job_id"],
        d.path(),
        false,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completes_describe_output_with_its_formats() {
    let d = tempfile::tempdir().unwrap();
    // A file whose name starts like a format: offered only if completion falls back to file names.
    std::fs::write(d.path().join("yaml-notes.txt"), "").unwrap();
    let o = fa(&["completions", "bash"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = d.path().join("fleet-audit.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let probe = format!(
        "source {} && cd {} && COMP_WORDS=(fleet-audit describe --output '') COMP_CWORD=3 && _fleet__audit fleet-audit '' --output && echo \"${{COMPREPLY[@]}}\" && COMP_WORDS=(fleet-audit describe --output y) COMP_CWORD=3 && _fleet__audit fleet-audit y --output && echo \"${{COMPREPLY[@]}}\"",
        script.display(),
        d.path().display()
    );
    let b = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&b.stdout);
    assert!(
        b.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&b.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["json text table yaml yaml-stream", "yaml yaml-stream"],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_help_says_an_s3_prefix_works() {
    let d = tempfile::tempdir().unwrap();
    let o = fa(&["report", "--help"], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    // The dataset argument's own help names an S3 prefix (the --baseline line already did).
    let path_help: String = help.split("Options:").next().unwrap().to_string();
    assert!(path_help.contains("s3://"), "{help}");
}

/// A roff page as a reader sees its words: `\-` is a plain hyphen.
fn roff_text(page: &str) -> String {
    page.replace("\\-", "-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_writes_a_page_a_subcommand_with_every_flag_exit_codes_and_examples() {
    use clap::CommandFactory;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1");
    let o = fa(&["man", "--out", dir.to_str().unwrap()], d.path(), false).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut cmd = fleet_audit::cli::Cli::command();
    cmd.build();
    let top = std::fs::read_to_string(dir.join("fleet-audit.1")).unwrap();
    assert!(top.contains("\n.TH fleet-audit 1 "), "{top}");
    let mut pages = vec![("fleet-audit.1".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        // The top page points to every subcommand's page, and that page exists.
        let name = format!("fleet-audit-{}", sub.get_name());
        assert!(
            roff_text(&top).contains(&format!("{name}(1)")),
            "{name}: {top}"
        );
        pages.push((format!("{name}.1"), sub.clone()));
    }
    assert!(pages.len() >= 9, "{pages:?}");
    for (file, sub) in &pages {
        let page =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let text = roff_text(&page);
        let title = file.trim_end_matches(".1");
        assert!(
            page.contains(&format!("\n.TH {title} 1 ")),
            "{file}: {page}"
        );
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(text.contains(&format!("--{long}")), "{file}: --{long}");
            } else if arg.is_positional() {
                let value = arg.get_value_names().unwrap()[0].as_str();
                assert!(text.contains(value), "{file}: <{value}>");
            }
        }
        assert!(text.contains(".SH \"EXIT STATUS\""), "{file}: {page}");
        assert!(text.contains(".SH EXAMPLES"), "{file}: {page}");
        // Every page's examples run this subcommand.
        let example = match title.strip_prefix("fleet-audit-") {
            Some(s) => format!("fleet-audit {s}"),
            None => "fleet-audit ".to_string(),
        };
        assert!(text.contains(&example), "{file}: {page}");
    }
    // `man run` prints run's page; its exit codes are run's own.
    let run = fa(&["man", "run"], d.path(), false).await;
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let run_page = String::from_utf8(run.stdout).unwrap();
    assert_eq!(
        run_page,
        std::fs::read_to_string(dir.join("fleet-audit-run.1")).unwrap()
    );
    for code in ["130", "143"] {
        assert!(run_page.contains(code), "{run_page}");
    }
    let report = std::fs::read_to_string(dir.join("fleet-audit-report.1")).unwrap();
    assert!(report.contains("--fail-on") || roff_text(&report).contains("--fail-on"));
    let describe = std::fs::read_to_string(dir.join("fleet-audit-describe.1")).unwrap();
    assert!(
        describe.contains("252") && describe.contains("255"),
        "{describe}"
    );
    // No page for a subcommand that does not exist.
    let bad = fa(&["man", "nope"], d.path(), false).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("run"), "{}", stderr(&bad));
    // man(1) renders a page, when it is installed.
    let rendered = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("fleet-audit-run.1"))
        .env("MANWIDTH", "100")
        .env_remove("MAN_KEEP_FORMATTING")
        .output();
    match rendered {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("man is not installed: the pages were not rendered")
        }
        Err(e) => panic!("man: {e}"),
        Ok(m) => {
            let shown = String::from_utf8_lossy(&m.stdout);
            assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
            for want in ["EXIT STATUS", "EXAMPLES", "--resume", "--partition-by"] {
                assert!(shown.contains(want), "{want}: {shown}");
            }
        }
    }
}

/// `fleet-audit run` into `out` against the simulator at `url` with `key` as access key id and the
/// default log filter (no RUST_LOG), stderr piped (not a terminal).
async fn plain_run(d: &Path, url: &str, key: &str, out: &str, extra: &[&str]) -> Output {
    let mut c = isolated_binary(d);
    c.args([
        "run",
        "--things",
        "things.txt",
        "--jobs",
        "jobs.txt",
        "--out",
        out,
        "--endpoint-url",
        url,
        "--rps",
        "0",
    ])
    .args(extra)
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", key)
    .env("AWS_SECRET_ACCESS_KEY", SECRET);
    c.output().await.unwrap()
}

/// Issue 22, item 13c: a warning is printed once, and with no ANSI escape when stderr is not a
/// terminal (here a pipe), with `-q` as a scheduled job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_prints_once_and_plain_on_a_pipe() {
    let server = start(sim_config(fleet(20, 2, 4))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    // A port nobody listens on: the push fails, which is a warning, not a failed audit.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let url = server.endpoint_url();
    let o = plain_run(
        d.path(),
        &url,
        "AKIDCLITEST",
        "a.parquet",
        &["-q", "--metrics-push", &dead],
    )
    .await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains('\x1b'), "ANSI escapes on a pipe: {err:?}");
    let mentions = err
        .lines()
        .filter(|l| l.contains("cannot push the metrics"))
        .count();
    assert_eq!(mentions, 1, "the warning once: {err}");
    assert!(
        err.contains(&format!(
            "fleet-audit: warning: cannot push the metrics to {dead}"
        )),
        "{err}"
    );
}

/// Issue 22, item 13g: a run refused by IoT at its first call (AccessDenied) committed nothing, so it
/// leaves the output as it found it: no dataset directory, no manifest, and the next plain run with
/// good credentials writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_refused_at_its_first_call_leaves_no_dataset_behind() {
    let server = start(sim_config(fleet(20, 2, 4))).await;
    let d = tempfile::tempdir().unwrap();
    lists(&server, d.path());
    let url = server.endpoint_url();
    // The simulator answers AccessDeniedException to IoT calls signed with AKIDDENIED (STS accepts it).
    let o = plain_run(d.path(), &url, "AKIDDENIED", "audit", &["-q"]).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("AccessDenied"), "{err}");
    assert!(server.stats().calls(Operation::DescribeJobExecution) > 0);
    let out = d.path().join("audit");
    assert!(
        !out.join("_manifest.json").exists(),
        "no manifest of nothing committed"
    );
    assert!(!out.exists(), "the output is as the run found it (absent)");

    let o = plain_run(d.path(), &url, "AKIDCLITEST", "audit", &["-q"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read_rows(&out).len(), 40);
}
