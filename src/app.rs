//! The subcommands' glue: settings in, library calls, an exit code out. `main` only calls [`dispatch`].
//!
//! Exit codes: 0 complete; 1 the run failed (setup, output, or a run-level error such as rejected
//! credentials); 2 bad flags or bad input; 4 the dataset is complete but some pairs ended as `error`
//! rows; 130/143 interrupted by SIGINT/SIGTERM (committed work is kept). `report` alone: 3 a
//! `--fail-on` condition holds.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_credential_types::Credentials;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{Cli, Command, DemoArgs, DescribeArgs, FleetArgs, RunArgs, SimArgs};
use crate::client::ClientSettings;
use crate::config::RunConfig;
use crate::dataset::{Layout, ManifestError, SinkError};
use crate::engine::Stop;
use crate::error::RunError;
use crate::run::run;
use crate::sim::{Faults, FleetSpec, Latency, SimConfig, SimServer};
use crate::summary::Summary;

/// Exit code of a run whose dataset is complete but holds `error` rows.
pub const EXIT_PAIR_ERRORS: i32 = 4;

/// The signal that asked for shutdown (0 until one does).
static SIGNAL_EXIT: AtomicI32 = AtomicI32::new(0);

/// A shutdown flag set by the first SIGINT/SIGTERM; a second one exits at once.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let code = wait_signal().await;
            count += 1;
            SIGNAL_EXIT.store(code, Ordering::SeqCst);
            if count == 1 {
                eprintln!("fleet-audit: stopping: finishing calls in flight (signal again to quit at once)");
                let _ = tx.send(true);
            } else {
                // Temporary files are never under a final name, so leaving now loses only work.
                std::process::exit(code);
            }
        }
    });
    rx
}

#[cfg(unix)]
async fn wait_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    }
}

#[cfg(not(unix))]
async fn wait_signal() -> i32 {
    let _ = tokio::signal::ctrl_c().await;
    130
}

/// Runs the parsed command and returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(a) => run_command(*a).await,
        Command::Describe(a) => describe_command(a).await,
        Command::Sim(a) => sim_command(a).await,
        Command::Demo(a) => demo_command(a).await,
        Command::Report(a) => report_command(a).await,
        Command::Schema(a) => schema_command(a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "fleet-audit", &mut out);
            let mut script = String::from_utf8_lossy(&out).into_owned();
            if a.shell == clap_complete::Shell::Bash {
                // clap_complete 4.6 spells a hyphenated binary's case labels `fleet__subcmd__audit…`
                // but sets `cmd` to `fleet__audit…`, so no subcommand's flags would complete.
                script = script.replace("fleet__subcmd__audit", "fleet__audit");
            }
            write_raw_stdout(&script).map(|_| 0)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut out)
                .context("cannot render the manual page")?;
            write_raw_stdout(&String::from_utf8_lossy(&out)).map(|_| 0)
        }
    }
}

/// `fleet-audit schema`: the schema table, or with `--ddl` a table definition, on stdout. Exit code 2
/// when the definition cannot be made (a bad --location or --partition-by).
fn schema_command(a: crate::cli::SchemaArgs) -> anyhow::Result<i32> {
    use crate::ddl::{ddl, schema_table, Dialect, TableSpec, PLACEHOLDER_LOCATION};
    let schema = crate::schema::schema();
    let Some(which) = a.ddl else {
        return write_stdout(&schema_table(&schema)).map(|_| 0);
    };
    let dialect = match which {
        crate::cli::DdlArg::Athena => Dialect::Athena,
        crate::cli::DdlArg::Glue => Dialect::Glue,
        crate::cli::DdlArg::Duckdb => Dialect::DuckDb,
    };
    let spec = TableSpec {
        location: a.location,
        partition_by: a.partition_by,
    };
    let text = match ddl(&schema, dialect, &spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fleet-audit schema: error: {e}");
            return Ok(2);
        }
    };
    write_stdout(&text)?;
    if spec.location.is_none() && dialect != Dialect::DuckDb {
        eprintln!("fleet-audit schema: note: no --location; the table points at the placeholder {PLACEHOLDER_LOCATION}");
    }
    if !spec.partition_by.is_empty() && dialect != Dialect::DuckDb {
        eprintln!(
            "fleet-audit schema: note: partitions are not found by themselves: after new folders, run MSCK REPAIR TABLE {} (Athena) or add them with ALTER TABLE ADD PARTITION / a Glue crawler",
            crate::ddl::TABLE
        );
    }
    Ok(0)
}

/// Prints the stuck / timed-out report of a dataset on stdout, with the default thresholds.
fn print_report(out: &Path) -> anyhow::Result<()> {
    let thresholds = crate::report::Thresholds::default();
    let report = crate::report::report_path(out, &thresholds)
        .with_context(|| format!("cannot report on {}", out.display()))?;
    print_report_of(&report, &thresholds)
}

fn print_report_of(
    report: &crate::report::Report,
    thresholds: &crate::report::Thresholds,
) -> anyhow::Result<()> {
    warn_ignored(report);
    write_stdout(&report.render_terminal(thresholds.top))
}

/// Names, on stderr, the part files a manifest did not list (so the report did not read).
fn warn_ignored(report: &crate::report::Report) {
    if let Some(note) = &report.note {
        eprintln!(
            "fleet-audit report: note: {}: {note}",
            report.dataset.display()
        );
    }
    if let Some(note) = report.ignored_note() {
        eprintln!(
            "fleet-audit report: warning: {}: {note}",
            report.dataset.display()
        );
    }
}

fn print_summary(s: &Summary, quiet: bool, json: Option<&Path>) -> anyhow::Result<()> {
    if !quiet {
        eprintln!("{}", s.render());
    }
    if let Some(p) = json {
        let body = serde_json::to_vec_pretty(s).expect("summary serializes");
        std::fs::write(p, body).with_context(|| format!("cannot write summary {}", p.display()))?;
    }
    Ok(())
}

/// Maps a run's result to its exit code, printing what the user needs.
fn finish_run(
    result: Result<Summary, RunError>,
    quiet: bool,
    summary_json: Option<&Path>,
) -> anyhow::Result<i32> {
    match result {
        Ok(s) => {
            print_summary(&s, quiet, summary_json)?;
            Ok(if s.errors > 0 { EXIT_PAIR_ERRORS } else { 0 })
        }
        Err(RunError::Stopped {
            stop,
            out,
            resumable,
            summary,
        }) => {
            print_summary(&summary, quiet, summary_json)?;
            if resumable {
                eprintln!(
                    "fleet-audit: {stop}; the rows committed so far are kept in {}: run the same command with --resume to finish",
                    out.display()
                );
            } else {
                eprintln!(
                    "fleet-audit: {stop}; nothing was written to {} (use a directory output to keep partial work)",
                    out.display()
                );
            }
            Ok(match stop {
                Stop::Interrupted => match SIGNAL_EXIT.load(Ordering::SeqCst) {
                    0 => 130,
                    c => c,
                },
                // Bad or changed input found while streaming it: bad input, as before the run.
                s if s.is_input() => 2,
                _ => 1,
            })
        }
        Err(
            e @ (RunError::Config(_)
            | RunError::Input(_)
            | RunError::ResumeMismatch { .. }
            | RunError::Baseline(_)
            | RunError::Manifest(ManifestError::Invalid { .. })
            | RunError::Sink(SinkError::Manifest(ManifestError::Invalid { .. }))),
        ) => {
            eprintln!("fleet-audit: error: {e}");
            Ok(2)
        }
        Err(e) => {
            eprintln!("fleet-audit: error: {e}");
            Ok(1)
        }
    }
}

async fn run_command(a: RunArgs) -> anyhow::Result<i32> {
    let cfg = match RunConfig::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-audit: error: {e}");
            return Ok(2);
        }
    };
    let (quiet, summary_json) = (cfg.quiet, cfg.summary_json.clone());
    // The parsed location, not the flag's text: `file:///abs/dir` is reported on as `/abs/dir`.
    // The parsed location, not the flag's text: `file:///abs/dir` is reported on as `/abs/dir`; an
    // object store's dataset is fetched to report on it.
    let dataset = match &cfg.layout {
        Layout::Remote(r) => std::path::PathBuf::from(&r.url),
        l => l.path().to_path_buf(),
    };
    let shutdown = shutdown_on_signals();
    let result = run(cfg, shutdown).await;
    let ran = match &result {
        Ok(s) => Some(s.clone()),
        Err(RunError::Stopped { summary, .. }) => Some((**summary).clone()),
        Err(_) => None,
    };
    let done = result.is_ok();
    let code = finish_run(result, quiet, summary_json.as_deref())?;
    if let (true, true, Some(summary)) = (a.report, done, &ran) {
        // With a baseline, the report says what changed since it too.
        let thresholds = crate::report::Thresholds::default();
        let report = crate::report::report_since(
            &dataset,
            summary.baseline.as_deref(),
            &ClientSettings::from(&a.connection),
            &thresholds,
            false,
        )
        .await
        .with_context(|| format!("cannot report on {}", dataset.display()))?;
        print_report_of(&report, &thresholds)?;
    }
    if let (true, Some(summary)) = (a.metrics.is_some() || a.metrics_push.is_some(), &ran) {
        let client = ClientSettings::from(&a.connection);
        let text = crate::metrics::of_run(summary, &dataset, &client).await;
        if let Some(path) = &a.metrics {
            crate::metrics::write_atomically(path, &text)
                .with_context(|| format!("cannot write the metrics {}", path.display()))?;
        }
        if let Some(url) = &a.metrics_push {
            // Grouped by target: the run's accounts and regions, and its output.
            let target = if summary.targets.is_empty() {
                a.connection
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "default".into())
            } else {
                let labels: Vec<&str> = summary.targets.iter().map(|t| t.target.as_str()).collect();
                labels.join("+")
            };
            let out = dataset.to_string_lossy();
            crate::metrics::push_or_warn(url, &[("target", &target), ("out", &out)], &text).await;
        }
    }
    Ok(code)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

async fn describe_command(a: DescribeArgs) -> anyhow::Result<i32> {
    use crate::describe::format::{render, terminal_width, TableStyle};
    use crate::describe::options::{Env, GlobalOptions};
    use crate::describe::{
        apply_query, attempt_timeout, describe, request_of, sdk_config, skeleton, EXIT_INTERRUPTED,
    };
    use std::io::IsTerminal;
    let usage = |e: crate::describe::DescribeError| {
        eprintln!("fleet-audit describe: error: {e}");
        Ok(e.exit_code())
    };
    if let Some(kind) = &a.generate_cli_skeleton {
        return match skeleton(kind) {
            Ok(s) => write_stdout(&s).map(|_| 0),
            Err(e) => usage(e),
        };
    }
    // Every option is checked before any call: bad syntax 252, bad configuration 253.
    let var = |k: &str| std::env::var(k).ok();
    let env = Env {
        var: &var,
        stdout_is_terminal: std::io::stdout().is_terminal(),
    };
    let opts = match GlobalOptions::resolve(&a.global, a.connection.profile.as_deref(), &env) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let req = match request_of(&a) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let sdk = match sdk_config(&ClientSettings::from(&a.connection), &opts).await {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if let Err(e) = crate::client::preflight(&sdk).await {
        eprintln!("fleet-audit describe: error: {e}");
        return Ok(253);
    }
    let client = aws_sdk_iot::Client::new(&sdk);
    let answer = tokio::select! {
        r = describe(&client, &req, attempt_timeout(&opts), opts.debug) => r,
        _ = tokio::signal::ctrl_c() => return Ok(EXIT_INTERRUPTED),
    };
    let doc = match answer.and_then(|doc| apply_query(&doc, opts.query.as_ref())) {
        Ok(doc) => doc,
        Err(e @ crate::describe::DescribeError::Usage(_)) => return usage(e),
        Err(e) => {
            eprintln!("\n{e}");
            return Ok(e.exit_code());
        }
    };
    let style = TableStyle {
        color: opts.color,
        terminal_width: if env.stdout_is_terminal {
            terminal_width()
        } else {
            80
        },
    };
    write_raw_stdout(&render(&doc, opts.output, "DescribeJobExecution", style)).map(|_| 0)
}

/// Writes `text` as it is (no newline added); a closed pipe is no error.
fn write_raw_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

fn fleet_spec(f: &FleetArgs) -> anyhow::Result<FleetSpec> {
    let seconds = |s: Option<f64>, flag: &str| match s {
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some((s * 1000.0).round() as u64)),
        Some(_) => anyhow::bail!("{flag} must be positive epoch seconds"),
        None => Ok(None),
    };
    let now_ms = match seconds(f.now, "--now")? {
        Some(ms) => ms,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_millis() as u64,
    };
    let epoch_ms = seconds(f.epoch, "--epoch")?;
    anyhow::ensure!(
        epoch_ms.is_none_or(|e| e <= now_ms),
        "--epoch must not be after --now: a fleet's history begins before the moment it is seen"
    );
    anyhow::ensure!(
        f.changed_share.is_none_or(|p| (0.0..=1.0).contains(&p)),
        "--changed-share must be between 0 and 1"
    );
    anyhow::ensure!(f.things > 0, "--things must be at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&f.jobs),
        "--jobs must be between 1 and 1000"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&f.future_status),
        "--future-status must be between 0 and 1"
    );
    anyhow::ensure!(
        f.active_share.is_none_or(|p| (0.0..=1.0).contains(&p)),
        "--active-share must be between 0 and 1"
    );
    Ok(FleetSpec {
        things: f.things,
        jobs: f.jobs,
        seed: f.seed,
        now_ms,
        epoch_ms,
        changed_share: f.changed_share,
        region: f.region.clone(),
        future_status: f.future_status,
        active_share: f.active_share,
    })
}

/// Writes `dir/things.txt` and `dir/jobs.txt` for a fleet.
pub fn write_lists(fleet: &crate::sim::Fleet, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let things = dir.join("things.txt");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&things)
            .with_context(|| format!("cannot create {}", things.display()))?,
    );
    for i in 0..fleet.spec().things {
        writeln!(w, "{}", fleet.thing_name(i))?;
    }
    w.flush()?;
    let jobs: String = fleet.jobs().iter().map(|j| format!("{}\n", j.id)).collect();
    std::fs::write(dir.join("jobs.txt"), jobs)?;
    Ok(())
}

fn probability(name: &str, p: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&p),
        "--{name} must be a probability between 0 and 1"
    );
    Ok(p)
}

/// Builds a simulator configuration from the `sim` flags.
pub fn sim_config(a: &SimArgs) -> anyhow::Result<SimConfig> {
    let latency: Latency = a
        .latency_ms
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--latency-ms: {e}"))?;
    if let Some(q) = a.quota_rps {
        anyhow::ensure!(q.is_finite() && q > 0.0, "--quota-rps must be positive");
    }
    Ok(SimConfig {
        fleet: fleet_spec(&a.fleet)?,
        quota_rps: a.quota_rps,
        quota_burst: a.quota_burst,
        latency,
        faults: Faults {
            p_5xx: probability("fault-5xx", a.fault_5xx)?,
            p_drop: probability("fault-drop", a.fault_drop)?,
            p_slow: probability("fault-slow", a.fault_slow)?,
            p_garbage: probability("fault-garbage", a.fault_garbage)?,
            p_throttle: probability("fault-throttle", a.fault_throttle)?,
            slow: std::time::Duration::from_millis(a.fault_slow_ms),
        },
    })
}

async fn sim_command(a: SimArgs) -> anyhow::Result<i32> {
    let config = sim_config(&a)?;
    let listener = TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let server = SimServer::start(config, listener)?;
    if let Some(dir) = &a.write_lists {
        write_lists(server.simulator().fleet(), dir)?;
    }
    write_stdout(&format!("listening on {}", server.endpoint_url()))?;
    let mut shutdown = shutdown_on_signals();
    let _ = shutdown.wait_for(|s| *s).await;
    server.stop().await;
    Ok(0)
}

/// Fixed credentials for the embedded simulator: the demo never sends a user's real keys anywhere.
pub fn simulator_credentials() -> Credentials {
    Credentials::new(
        "AKIDFLEETAUDITSIM",
        "fleet-audit-simulator-secret",
        None,
        None,
        "fleet-audit-simulator",
    )
}

async fn demo_command(a: DemoArgs) -> anyhow::Result<i32> {
    let spec = fleet_spec(&a.fleet)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = SimServer::start(
        SimConfig {
            fleet: spec,
            quota_rps: None,
            quota_burst: None,
            latency: Latency::None,
            faults: Faults::default(),
        },
        listener,
    )?;
    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_lists(server.simulator().fleet(), out)?;
    let dataset = out.join("executions.parquet");
    eprintln!(
        "simulator on {} with {} things x {} jobs; lists in {}",
        server.endpoint_url(),
        a.fleet.things,
        a.fleet.jobs,
        out.display()
    );
    // The run the user would type, so the demo keeps the CLI's defaults; only the credentials are
    // the simulator's fixed ones (a user's real keys are never sent anywhere).
    let (things, jobs) = (out.join("things.txt"), out.join("jobs.txt"));
    let concurrency = a.concurrency.to_string();
    let endpoint = server.endpoint_url();
    let argv = [
        "fleet-audit".as_ref(),
        "run".as_ref(),
        "--things".as_ref(),
        things.as_os_str(),
        "--jobs".as_ref(),
        jobs.as_os_str(),
        "--out".as_ref(),
        dataset.as_os_str(),
        "--overwrite".as_ref(),
        "--rps".as_ref(),
        "0".as_ref(),
        "--concurrency".as_ref(),
        concurrency.as_ref(),
        "--region".as_ref(),
        "us-east-1".as_ref(),
        "--endpoint-url".as_ref(),
        endpoint.as_ref(),
    ];
    let Command::Run(args) = <Cli as clap::Parser>::try_parse_from::<_, &std::ffi::OsStr>(argv)
        .context("the demo's run command")?
        .command
    else {
        anyhow::bail!("the demo's command is a run");
    };
    let mut cfg = RunConfig::from_args(&args).context("the demo's run settings")?;
    cfg.client.static_credentials = Some(simulator_credentials());
    let shutdown = shutdown_on_signals();
    let result = run(cfg, shutdown).await;
    let ok = result.is_ok();
    let code = finish_run(result, false, None)?;
    if ok {
        print_report(&dataset)?;
    }
    server.stop().await;
    if code == 0 {
        eprintln!(
            "\nread it with DuckDB: SELECT status, count(*) FROM '{}' GROUP BY status;",
            dataset.display()
        );
    }
    Ok(code)
}

/// `fleet-audit report`: 0 done; 2 bad flags or a dataset that cannot be read; 1 the HTML page
/// cannot be written; 3 ([`crate::report::EXIT_FAIL_ON`]) a `--fail-on` condition holds.
async fn report_command(a: crate::cli::ReportArgs) -> anyhow::Result<i32> {
    use crate::report::{ReportConfig, EXIT_FAIL_ON};
    use std::io::IsTerminal;
    let cfg = match ReportConfig::from_args(&a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-audit report: error: {e}");
            return Ok(2);
        }
    };
    let read = crate::report::report_since(
        &cfg.path,
        cfg.baseline.as_deref(),
        &ClientSettings::default(),
        &cfg.thresholds,
        cfg.trend,
    )
    .await;
    let report = match read {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet-audit report: error: {e}");
            return Ok(2);
        }
    };
    warn_ignored(&report);
    if a.metrics.is_some() || a.metrics_push.is_some() {
        let text = crate::metrics::exposition(Some(&report), None);
        if let Some(p) = &a.metrics {
            crate::metrics::write_atomically(p, &text)
                .with_context(|| format!("cannot write the metrics {}", p.display()))?;
        }
        if let Some(url) = &a.metrics_push {
            let out = report.dataset.to_string_lossy();
            crate::metrics::push_or_warn(url, &[("out", &out)], &text).await;
        }
    }
    if let Some(p) = &cfg.html {
        std::fs::write(p, report.render_html())
            .with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if cfg.json {
        let doc = serde_json::to_string_pretty(&report.to_json()).expect("report serializes");
        write_stdout(&doc)?;
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        write_stdout(&report.render_terminal_with(cfg.thresholds.top, colour))?;
    }
    let failing = report.failing(&cfg.fail_on);
    if failing.is_empty() {
        return Ok(0);
    }
    let what: Vec<String> = failing
        .iter()
        .map(|(f, n)| format!("{} {n}", f.as_str()))
        .collect();
    eprintln!("fleet-audit report: --fail-on matched: {}", what.join(", "));
    Ok(EXIT_FAIL_ON)
}
