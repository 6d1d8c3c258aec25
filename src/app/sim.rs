//! `fleet-audit sim` and `fleet-audit demo`: the simulator from its flags, alone or with a run.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_credential_types::Credentials;
use tokio::net::TcpListener;

use super::run::{finish_run, print_report};
use super::{shutdown_on_signals, write_stdout};
use crate::audit::config::RunConfig;
use crate::audit::run::run;
use crate::cli::{Cli, Command, DemoArgs, FleetArgs, FleetIndexingArg, SimArgs};
use crate::sim::{Faults, FleetSpec, Indexing, Latency, OrgSpec, SimConfig, SimServer};

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
    for (q, flag) in [
        (a.quota_rps, "--quota-rps"),
        (a.remediation_quota_rps, "--remediation-quota-rps"),
        (a.context_quota_rps, "--context-quota-rps"),
    ] {
        if let Some(q) = q {
            anyhow::ensure!(q.is_finite() && q > 0.0, "{flag} must be positive");
        }
    }
    Ok(SimConfig {
        fleet: fleet_spec(&a.fleet)?,
        quota_rps: a.quota_rps,
        quota_burst: a.quota_burst,
        remediation_quota_rps: a.remediation_quota_rps,
        context_quota_rps: a.context_quota_rps,
        indexing: match a.fleet_indexing {
            FleetIndexingArg::Off => Indexing::Off,
            FleetIndexingArg::Registry => Indexing::Registry,
            FleetIndexingArg::Connectivity => Indexing::Connectivity,
        },
        latency,
        faults: Faults {
            p_5xx: probability("fault-5xx", a.fault_5xx)?,
            p_drop: probability("fault-drop", a.fault_drop)?,
            p_slow: probability("fault-slow", a.fault_slow)?,
            p_garbage: probability("fault-garbage", a.fault_garbage)?,
            p_throttle: probability("fault-throttle", a.fault_throttle)?,
            slow: std::time::Duration::from_millis(a.fault_slow_ms),
        },
        org: OrgSpec {
            accounts: a.org_accounts,
            missing_role: probability("org-missing-role", a.org_missing_role)?,
            seed: a.fleet.seed,
        },
    })
}

pub(super) async fn sim_command(a: SimArgs) -> anyhow::Result<i32> {
    let config = sim_config(&a)?;
    let listener = TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let server = SimServer::start(config, listener)?;
    if let Some(dir) = &a.write_lists {
        write_lists(server.simulator().fleet(), dir)?;
    }
    write_stdout(&format!("listening on {}", server.endpoint_url()))?;
    let mut shutdown = super::shutdown_saying("fleet-audit sim: stopped");
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

pub(super) async fn demo_command(a: DemoArgs) -> anyhow::Result<i32> {
    let spec = fleet_spec(&a.fleet)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = SimServer::start(
        SimConfig {
            fleet: spec,
            quota_rps: None,
            quota_burst: None,
            remediation_quota_rps: None,
            context_quota_rps: None,
            indexing: Default::default(),
            latency: Latency::None,
            faults: Faults::default(),
            org: OrgSpec::default(),
        },
        listener,
    )?;
    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_lists(server.simulator().fleet(), out)?;
    let delta = a.table_format.is_some();
    let dataset = out.join(["executions.parquet", "executions"][usize::from(delta)]);
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
    let mut argv: Vec<&std::ffi::OsStr> = vec![
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
    if delta {
        argv.extend([
            std::ffi::OsStr::new("--table-format"),
            std::ffi::OsStr::new("delta"),
        ]);
    }
    let Command::Run(args) = <Cli as clap::Parser>::try_parse_from::<_, &std::ffi::OsStr>(argv)
        .context("the demo's run command")?
        .command
    else {
        anyhow::bail!("the demo's command is a run");
    };
    let mut cfg = RunConfig::from_args(&args).context("the demo's run settings")?;
    cfg.targets.client.static_credentials = Some(simulator_credentials());
    let shutdown = shutdown_on_signals();
    let result = run(cfg, shutdown).await;
    let ok = result.is_ok();
    let code = finish_run(result, false, None, "run the demo again")?;
    if ok {
        print_report(&dataset)?;
    }
    server.stop().await;
    if code == 0 {
        eprintln!("\n{}", how_to_read(&dataset, delta));
    }
    Ok(code)
}

/// How to read the demo's dataset: a Parquet file, or a Delta table.
fn how_to_read(dataset: &std::path::Path, delta: bool) -> String {
    let d = dataset.display();
    if delta {
        format!(
            "read it as a Delta table: DuckDB `LOAD delta; SELECT status, count(*) FROM \
             delta_scan('{d}') GROUP BY status;`, or Python `deltalake.DeltaTable('{d}').to_pyarrow_table()`"
        )
    } else {
        format!(
            "read it with DuckDB: SELECT status, count(*) FROM '{d}' GROUP BY status;\n\
             stuck QUEUED on online things, by thing type: SELECT thing_type, count(*) FROM '{d}' \
             WHERE status = 'QUEUED' AND connected AND job_status = 'IN_PROGRESS' AND fetched_at - \
             queued_at > INTERVAL 24 HOURS GROUP BY thing_type ORDER BY 2 DESC;\n\
             and the report by group: fleet-audit report {d} --group-by attribute:firmware"
        )
    }
}
