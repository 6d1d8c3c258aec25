//! The floor of what `aws-sdk-iot` costs: `--concurrency` tasks calling DescribeJobExecution as fast
//! as the endpoint answers, with no rate limiter, no retries, no timeouts of our own and no rows.
//!
//! It builds the SDK configuration exactly as `fleet-audit run` does ([`load_sdk_config`], SDK
//! retries off, credentials from the default chain: the environment in `scripts/bench.sh`, so both
//! pay for the same credential lookup on each call), and asks for varied pairs `thing-NNNNNN` x
//! `job-NNN` of a simulated fleet (`--things` below 1,000,000, so names have 6 digits).
//! `fleet-audit run`'s throughput at the same concurrency, compared with this, is what its own
//! engine and writer cost.
//!
//! ```sh
//! target/release/fleet-audit sim --things 200000 --jobs 5 &     # prints its URL
//! export AWS_ACCESS_KEY_ID=AKIDLOOP AWS_SECRET_ACCESS_KEY=any   # the simulator takes any key
//! cargo run --release --example sdk_loop -- --endpoint-url http://127.0.0.1:PORT --concurrency 64
//! ```
//!
//! Prints one line: `calls=.. ok=.. not_found=.. errors=.. elapsed_s=.. calls_per_s=.. concurrency=..`.
//! Exit code 1 when any call failed otherwise than with ResourceNotFoundException.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use fleet_audit::aws::client::{error_chain, load_sdk_config, ClientSettings};

#[derive(Debug, Parser)]
#[command(about = "Bare aws-sdk-iot DescribeJobExecution loop against fleet-audit sim")]
struct Args {
    /// The simulator's URL (`listening on ...`).
    #[arg(long)]
    endpoint_url: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Tasks calling at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Calls in all.
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    /// Things in the simulated fleet (names `thing-%06d`).
    #[arg(long, default_value_t = 200_000)]
    things: u64,
    /// Jobs in the simulated fleet (ids `job-%03d`).
    #[arg(long, default_value_t = 5)]
    jobs: u64,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    not_found: AtomicU64,
    errors: AtomicU64,
}

/// Call `k`'s pair: every job in turn, things spread over the fleet by a multiplicative hash.
fn pair(k: u64, things: u64, jobs: u64) -> (String, String) {
    let thing = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) % things;
    (format!("thing-{thing:06}"), format!("job-{:03}", k % jobs))
}

async fn run(a: Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        a.things > 0 && a.jobs > 0,
        "--things and --jobs must be positive"
    );
    let config = load_sdk_config(&ClientSettings {
        region: Some(a.region.clone()),
        endpoint_url: Some(a.endpoint_url.clone()),
        ..ClientSettings::default()
    })
    .await;
    let client = aws_sdk_iot::Client::new(&config);
    let next = Arc::new(AtomicU64::new(0));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.concurrency.max(1))
        .map(|_| {
            let (client, next, counts) = (client.clone(), next.clone(), counts.clone());
            let (calls, things, jobs) = (a.calls, a.things, a.jobs);
            tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= calls {
                        break;
                    }
                    let (thing, job) = pair(k, things, jobs);
                    let answer = client
                        .describe_job_execution()
                        .thing_name(thing)
                        .job_id(job)
                        .send()
                        .await;
                    let counter = match answer {
                        Ok(_) => &counts.ok,
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_resource_not_found_exception()) =>
                        {
                            &counts.not_found
                        }
                        Err(e) => {
                            if counts.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("sdk_loop: first error: {}", error_chain(&e));
                            }
                            continue;
                        }
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.context("call task")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let errors = get(&counts.errors);
    println!(
        "calls={} ok={} not_found={} errors={errors} elapsed_s={elapsed:.3} calls_per_s={:.1} concurrency={}",
        a.calls,
        get(&counts.ok),
        get(&counts.not_found),
        a.calls as f64 / elapsed,
        a.concurrency
    );
    Ok(errors == 0)
}

pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    if !runtime.block_on(run(args))? {
        std::process::exit(1);
    }
    Ok(())
}
