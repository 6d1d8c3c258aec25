//! `fleet-audit describe`: one DescribeJobExecution, printed as the AWS CLI prints it.

use super::{write_raw_stdout, write_stdout};
use crate::aws::client::ClientSettings;
use crate::cli::DescribeArgs;
use crate::redact::redact;

pub(super) async fn describe_command(a: DescribeArgs) -> anyhow::Result<i32> {
    use crate::describe::format::{render, terminal_width, TableStyle};
    use crate::describe::options::{Env, GlobalOptions};
    use crate::describe::{
        apply_query, attempt_timeout, describe, request_of, sdk_config, skeleton, EXIT_INTERRUPTED,
    };
    use std::io::IsTerminal;
    let usage = |e: crate::describe::DescribeError| {
        eprintln!("fleet-audit describe: error: {}", redact(&e.to_string()));
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
    if let Err(e) = crate::aws::client::preflight(&sdk).await {
        eprintln!("fleet-audit describe: error: {}", redact(&e.to_string()));
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
            eprintln!("\n{}", redact(&e.to_string()));
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
