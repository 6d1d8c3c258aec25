//! The subcommands' glue: settings in, library calls, an exit code out. `main` only calls [`dispatch`].
//!
//! Exit codes: 0 complete; 1 the run failed (setup, output, or a run-level error such as rejected
//! credentials); 2 bad flags or bad input; 4 the dataset is complete but some pairs ended as `error`
//! rows; 5 some targets could not be audited; 130/143 interrupted by SIGINT/SIGTERM (committed work is kept). `report` alone: 3 a
//! `--fail-on` condition holds.
//!
//! One file a subcommand: [`run`] (`run`, and what a run prints and exits with), [`describe`],
//! [`report`], [`sim`] (`sim` and `demo`), [`man`] (a page a subcommand, with these exit codes); this
//! file dispatches and holds what they share.

mod describe;
mod man;
mod remedy;
mod report;
mod run;
mod sim;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;
use tokio::sync::watch;

use crate::cli::{Cli, Command};

pub(crate) use run::{EXIT_PAIR_ERRORS, EXIT_TARGETS_FAILED};
pub use sim::{sim_config, simulator_credentials, write_lists};

/// The signal that asked for shutdown (0 until one does).
static SIGNAL_EXIT: AtomicI32 = AtomicI32::new(0);

/// A shutdown flag set by the first SIGINT/SIGTERM; a second one exits at once.
pub(crate) fn shutdown_on_signals() -> watch::Receiver<bool> {
    shutdown_saying(
        "fleet-audit: stopping: finishing calls in flight, if any (signal again to quit at once)",
    )
}

/// [`shutdown_on_signals`], printing `said` on stderr at the first signal.
pub(crate) fn shutdown_saying(said: &'static str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let code = wait_signal().await;
            count += 1;
            SIGNAL_EXIT.store(code, Ordering::SeqCst);
            if count == 1 {
                eprintln!("{said}");
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
        Command::Run(a) => run::run_command(*a).await,
        Command::Describe(a) => describe::describe_command(a).await,
        Command::Sim(a) => sim::sim_command(a).await,
        Command::Demo(a) => sim::demo_command(a).await,
        Command::Report(a) => report::report_command(a).await,
        Command::Plan(a) => remedy::plan_command(a),
        Command::Apply(a) => remedy::apply_command(a).await,
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
        Command::Man(a) => man::man_command(a),
    }
}

/// `fleet-audit schema`: the schema table, or with `--ddl` a table definition, on stdout. Exit code 2
/// when the definition cannot be made (a bad --location or --partition-by).
fn schema_command(a: crate::cli::SchemaArgs) -> anyhow::Result<i32> {
    use crate::dataset::ddl::{ddl, schema_table, Dialect, TableSpec, PLACEHOLDER_LOCATION};
    let schema = crate::dataset::schema::schema();
    let Some(which) = a.ddl else {
        return write_stdout(&schema_table(&schema)).map(|_| 0);
    };
    let dialect = match which {
        crate::cli::DdlArg::Athena => Dialect::Athena,
        crate::cli::DdlArg::Glue => Dialect::Glue,
        crate::cli::DdlArg::Duckdb => Dialect::DuckDb,
        crate::cli::DdlArg::AthenaDelta => Dialect::AthenaDelta,
        crate::cli::DdlArg::DuckdbDelta => Dialect::DuckDbDelta,
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
    let duck = matches!(dialect, Dialect::DuckDb | Dialect::DuckDbDelta);
    if spec.location.is_none() && !duck {
        eprintln!("fleet-audit schema: note: no --location; the table points at the placeholder {PLACEHOLDER_LOCATION}");
    }
    if !spec.partition_by.is_empty() && !duck {
        eprintln!(
            "fleet-audit schema: note: partitions are not found by themselves: after new folders, run MSCK REPAIR TABLE {} (Athena) or add them with ALTER TABLE ADD PARTITION / a Glue crawler",
            crate::dataset::ddl::TABLE
        );
    }
    Ok(0)
}

/// Writes the metrics text to `--metrics FILE` (atomically) and `--metrics-push URL` (a failed push
/// is a warning), grouped in the Pushgateway by `grouping`.
async fn emit_metrics(
    text: &str,
    file: Option<&Path>,
    push: Option<&str>,
    grouping: &[(&str, &str)],
) -> anyhow::Result<()> {
    if let Some(path) = file {
        crate::report::metrics::write_atomically(path, text)
            .with_context(|| format!("cannot write the metrics {}", path.display()))?;
    }
    if let Some(url) = push {
        crate::report::metrics::push_or_warn(url, grouping, text).await;
    }
    Ok(())
}

pub(super) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}

/// Writes `text` as it is (no newline added); a closed pipe is no error.
pub(super) fn write_raw_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}
