//! `fleet-audit man`: one manual page a subcommand (`fleet-audit-run(1)`, ...) and the overview
//! (`fleet-audit(1)`). Options and synopsis are rendered by `clap_mangen` from the clap definitions, so
//! a page never misses a flag; each page adds its subcommand's EXIT STATUS and EXAMPLES from
//! [`extras`], next to the code that decides them.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::{write_raw_stdout, EXIT_PAIR_ERRORS, EXIT_TARGETS_FAILED};
use crate::cli::{Cli, ManArgs};

/// `fleet-audit man [SUBCOMMAND]` prints one page; `--out DIR` writes them all. Exit code 2 for a
/// subcommand that does not exist.
pub(super) fn man_command(a: ManArgs) -> anyhow::Result<i32> {
    let top = command();
    if let Some(dir) = &a.out {
        for path in write_all(&top, dir)? {
            eprintln!("fleet-audit man: wrote {}", path.display());
        }
        return Ok(0);
    }
    let cmd = match a.subcommand.as_deref() {
        None => top,
        Some(name) => match top.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = top.get_subcommands().map(|s| s.get_name()).collect();
                eprintln!(
                    "fleet-audit man: error: no subcommand {name:?} (one of: {})",
                    names.join(", ")
                );
                return Ok(2);
            }
        },
    };
    write_raw_stdout(&page(&cmd)?).map(|_| 0)
}

/// The whole command, built (every subcommand knows its display name, `fleet-audit-run`, and its
/// bin name, `fleet-audit run`), without clap's `help` subcommand, which has no page.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes every page into `dir` (made if missing); returns their paths, the overview first.
fn write_all(top: &clap::Command, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for cmd in std::iter::once(top).chain(top.get_subcommands().filter(|s| !s.is_hide_set())) {
        let path = dir.join(clap_mangen::Man::new(cmd.clone()).get_filename());
        std::fs::write(&path, page(cmd)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// One page: clap_mangen's sections, then EXIT STATUS, EXAMPLES and SEE ALSO.
fn page(cmd: &clap::Command) -> anyhow::Result<String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("fleet-audit {}", env!("CARGO_PKG_VERSION")))
        .manual("fleet-audit");
    let mut out = Vec::new();
    (|| {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut out)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(&mut out)?;
        }
        std::io::Result::Ok(())
    })()
    .context("cannot render the manual page")?;
    let rendered = String::from_utf8(out).context("the manual page is not UTF-8")?;
    // Each section rendered alone starts with the same two-line string definition: keep the first.
    let mut text = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in rendered.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let is_top = cmd.get_bin_name().unwrap_or(cmd.get_name()) == "fleet-audit";
    let name = if is_top { "" } else { cmd.get_name() };
    if let Some(x) = extras(name) {
        text.push_str(".SH \"EXIT STATUS\"\n");
        for (code, meaning) in x.exit {
            text.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", escape(meaning)));
        }
        text.push_str(".SH EXAMPLES\n");
        for (what, command) in x.examples {
            text.push_str(&format!(
                ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n",
                escape(what),
                escape(command)
            ));
        }
    }
    if !is_top {
        text.push_str(".SH \"SEE ALSO\"\nfleet\\-audit(1)\n");
    }
    Ok(text)
}

/// Text for roff: a backslash is `\e`, a hyphen `\-` (so man shows and searches `--flag` as typed),
/// and no line starts as a request.
fn escape(s: &str) -> String {
    s.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A page's own sections: exit codes and their meaning, examples (what, then the command).
struct Extras {
    exit: Vec<(String, &'static str)>,
    examples: &'static [(&'static str, &'static str)],
}

/// A run's exit codes (`run` and `demo`), as `app::run` returns them.
fn run_exit_codes() -> Vec<(String, &'static str)> {
    vec![
        ("0".into(), "The audit is complete: every pair has its row."),
        ("1".into(), "The run failed: setup, the output, or an error that would repeat for every pair (credentials refused, an endpoint that never answers). Committed parts are kept."),
        ("2".into(), "Bad flags or bad input (a line breaking AWS's naming rules, a resume the output refuses), found before any call."),
        (EXIT_PAIR_ERRORS.to_string(), "The dataset is complete, but some pairs ended as error rows (their calls failed past --max-attempts); --resume --retry-errors describes just those again."),
        (EXIT_TARGETS_FAILED.to_string(), "Some targets (accounts, regions) could not be audited; the others are committed, and --resume retries them."),
        ("130, 143".into(), "Interrupted by SIGINT or SIGTERM; committed work is kept and --resume continues it."),
    ]
}

/// The exit status and examples of the overview (`""`) or a subcommand; `None` for one without.
fn extras(subcommand: &str) -> Option<Extras> {
    Some(match subcommand {
        "" => overview_extras(),
        "run" => run_extras(),
        "describe" => describe_extras(),
        "sim" => sim_extras(),
        "demo" => demo_extras(),
        "report" => report_extras(),
        "plan" => plan_extras(),
        "apply" => apply_extras(),
        "schema" => schema_extras(),
        "completions" => completions_extras(),
        "man" => man_extras(),
        _ => return None,
    })
}

/// The overview's page (`fleet-audit(1)`): every code any subcommand exits with.
fn overview_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "Success."),
            ("1".into(), "The command failed (see its message)."),
            ("2".into(), "Bad flags or bad input, found before any call."),
            ("3".into(), "report: a --fail-on condition holds."),
            (EXIT_PAIR_ERRORS.to_string(), "run: the dataset is complete, but some pairs ended as error rows; --resume --retry-errors describes just those again."),
            (EXIT_TARGETS_FAILED.to_string(), "run: some targets could not be audited (--resume retries them)."),
            ("130, 143".into(), "Interrupted by SIGINT or SIGTERM; committed work is kept."),
            ("252-255".into(), "describe: the AWS CLI v2's codes (see fleet-audit-describe(1))."),
        ],
        examples: &[
            ("Audit a simulated fleet without an AWS account (into ./demo-out):", "fleet-audit demo"),
            ("Audit every thing against every job, then report what is stuck:", "fleet-audit run --things things.txt --jobs jobs.txt --out audit.parquet --region eu-west-1 --report"),
            ("Fail a pipeline when an execution is stuck or timed out:", "fleet-audit report audit/ --fail-on stuck,timed-out --html report.html"),
            ("Install every manual page:", "sudo fleet-audit man --out /usr/local/share/man/man1"),
        ],
    }
}

/// `run`'s page: a run's exit codes, and audits from the simplest to a daily one in S3.
fn run_extras() -> Extras {
    Extras {
        exit: run_exit_codes(),
        examples: &[
            ("Every thing against every job, into one Parquet file, with the report at the end:", "fleet-audit run --things things.txt --jobs jobs.txt --out audit.parquet --region eu-west-1 --report"),
            ("Pairs from a CSV file, into a directory of parts:", "fleet-audit run --pairs pairs.csv --out audit/ --profile prod --rps 10 --concurrency 32"),
            ("List first, describe only what can be stuck:", "fleet-audit run --discover --job-status IN_PROGRESS --out audit/"),
            ("Continue an interrupted audit (the same command, with --resume):", "fleet-audit run --pairs pairs.csv --out audit/ --resume"),
            ("Describe just the error rows of a complete audit again (after exit 4), each replaced in place:", "fleet-audit run --pairs pairs.csv --out audit/ --resume --retry-errors"),
            ("A daily audit, one a date, describing only what changed since the last one, each published as one Delta Lake commit:", "fleet-audit run --discover --out audit/ --partition-by date --baseline latest --resume --report --table-format delta"),
            ("Several regions at once, each at its own rate:", "fleet-audit run --things things.txt --jobs jobs.txt --out audit/ --regions us-east-1,eu-west-1 --rps 10"),
            ("Into S3, in Hive-style folders:", "fleet-audit run --pairs pairs.csv --out s3://audit-bucket/fleet-audit/ --partition-by date,job_id --resume"),
        ],
    }
}

/// `describe`'s page: the AWS CLI v2's exit codes.
fn describe_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "The execution was described."),
            ("252".into(), "Bad syntax or a bad parameter (the AWS CLI v2's code)."),
            ("253".into(), "Invalid configuration or credentials."),
            ("254".into(), "The service answered with an error (e.g. ResourceNotFoundException)."),
            ("255".into(), "No answer could be had (connection, timeout)."),
            ("130".into(), "Interrupted (SIGINT, Ctrl-C)."),
        ],
        examples: &[
            ("As aws iot describe-job-execution does, in JSON:", "fleet-audit describe --job-id fw-7 --thing-name sensor-0042"),
            ("As a table:", "fleet-audit describe --job-id fw-7 --thing-name sensor-0042 --output table"),
            ("One field:", "fleet-audit describe --job-id fw-7 --thing-name sensor-0042 --query execution.status --output text"),
        ],
    }
}

/// `sim`'s page: how the simulator stops, and fleets to serve.
fn sim_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "Stopped by SIGINT or SIGTERM."),
            (
                "1".into(),
                "The simulator could not start (the address cannot be listened on, a bad setting).",
            ),
            ("2".into(), "Bad flags."),
        ],
        examples: &[
            (
                "A million things at AWS's quota (the first line printed is its address):",
                "fleet-audit sim --things 1000000 --jobs 5 --quota-rps 10",
            ),
            (
                "On a fixed port, with its thing and job lists written out:",
                "fleet-audit sim --listen 127.0.0.1:9001 --things 1000 --write-lists lists/",
            ),
        ],
    }
}

/// `demo`'s page: a run's exit codes.
fn demo_extras() -> Extras {
    Extras {
        exit: run_exit_codes(),
        examples: &[
            (
                "10,000 things x 5 jobs into ./demo-out:",
                "fleet-audit demo",
            ),
            (
                "A larger fleet, elsewhere:",
                "fleet-audit demo --things 100000 --out /tmp/demo",
            ),
        ],
    }
}

/// `report`'s page: a --fail-on condition's exit code, and reports of an audit, its changes, a trend.
/// `apply`'s page.
fn apply_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "Every action was applied, or stopped by its guard (version_conflict, invalid_state, not_found)."),
            ("1".into(), "Some action ended in error, or the apply failed; committed rows are kept and --resume continues."),
            ("2".into(), "Refused before any call: a plan edited or older than --max-age, no --yes without a terminal, an output holding another apply, credentials of another account."),
            ("130, 143".into(), "Interrupted by SIGINT or SIGTERM; --resume continues, sending no action twice."),
        ],
        examples: &[
            (
                "Carry a reviewed plan out, asking first:",
                "fleet-audit apply cancel.plan --out actions/",
            ),
            (
                "In a pipeline, after the plan's review:",
                "fleet-audit apply cancel.plan --out actions/ --yes",
            ),
            (
                "Continue after a crash or a Ctrl-C:",
                "fleet-audit apply cancel.plan --out actions/ --yes --resume",
            ),
        ],
    }
}

/// `plan`'s page.
fn plan_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "The plan was written."),
            ("1".into(), "The plan could not be written."),
            ("2".into(), "Bad flags or a bad --things line, an audit that cannot be read or is incomplete, or an --out that exists; nothing is written."),
        ],
        examples: &[
            (
                "Cancel the executions QUEUED for more than a day of two jobs (review the file, then apply it):",
                "fleet-audit plan audit/ --out cancel.plan --class stuck_queued --jobs fw-7,fw-8",
            ),
            (
                "Delete the timed-out executions older than a week:",
                "fleet-audit plan audit/ --out delete.plan --class timed_out --older-than 7d --action delete",
            ),
        ],
    }
}

fn report_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "The report was made."),
            (
                "1".into(),
                "The HTML page or the metrics could not be written.",
            ),
            ("2".into(), "Bad flags, or a dataset that cannot be read."),
            (
                crate::report::EXIT_FAIL_ON.to_string(),
                "A --fail-on condition holds.",
            ),
        ],
        examples: &[
            (
                "Stuck and timed-out executions, failing a pipeline when there are any:",
                "fleet-audit report audit/ --fail-on stuck,timed-out --html report.html",
            ),
            (
                "What changed since an earlier audit, as JSON:",
                "fleet-audit report audit/ --baseline previous.parquet --json",
            ),
            (
                "Every date of a daily output, from S3, as a chart:",
                "fleet-audit report s3://audit-bucket/fleet-audit/ --trend --html trend.html",
            ),
        ],
    }
}

/// `schema`'s page: the columns, and table definitions for DuckDB and Athena.
fn schema_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "The schema or table definition was printed."),
            ("2".into(), "Bad flags, or a definition that cannot be made (a bad --location or --partition-by)."),
        ],
        examples: &[
            ("The columns and their types:", "fleet-audit schema"),
            ("A DuckDB view over a local output:", "fleet-audit schema --ddl duckdb --location audit/ | duckdb audit.duckdb"),
            ("An Athena table over a daily output in S3:", "fleet-audit schema --ddl athena --location s3://my-bucket/fleet-audit/ --partition-by date"),
            ("Athena's table over a --table-format delta output:", "fleet-audit schema --ddl athena-delta --location s3://my-bucket/fleet-audit/"),
        ],
    }
}

/// `completions`'s page: a script for bash, one for zsh.
fn completions_extras() -> Extras {
    Extras {
        exit: vec![("0".into(), "The script was printed."), ("1".into(), "Standard output could not be written."), ("2".into(), "Bad flags (a shell it does not know).")],
        examples: &[
            ("bash:", "fleet-audit completions bash > ~/.local/share/bash-completion/completions/fleet-audit"),
            ("zsh:", "fleet-audit completions zsh > \"${fpath[1]}/_fleet-audit\""),
        ],
    }
}

/// `man`'s page: one page read, or every page installed.
fn man_extras() -> Extras {
    Extras {
        exit: vec![
            ("0".into(), "The page was printed, or the pages written."),
            ("1".into(), "A page could not be written."),
            (
                "2".into(),
                "Bad flags, or a subcommand that does not exist.",
            ),
        ],
        examples: &[
            (
                "Read run's page without installing it:",
                "fleet-audit man run | man -l -",
            ),
            (
                "Install every page:",
                "sudo fleet-audit man --out /usr/local/share/man/man1 && man fleet-audit-run",
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_its_exit_status_and_examples() {
        let top = command();
        assert!(extras("").is_some());
        for sub in top.get_subcommands() {
            let x = extras(sub.get_name()).unwrap_or_else(|| panic!("{}", sub.get_name()));
            assert!(!x.exit.is_empty() && !x.examples.is_empty());
            for (_, example) in x.examples {
                assert!(
                    example.starts_with(&format!("fleet-audit {}", sub.get_name()))
                        || example.starts_with(&format!("sudo fleet-audit {}", sub.get_name())),
                    "{example}"
                );
            }
        }
    }

    #[test]
    fn text_never_starts_a_request() {
        assert_eq!(
            escape(".hidden\n'x\\y --z"),
            "\\&.hidden\n\\&'x\\ey \\-\\-z"
        );
    }
}
