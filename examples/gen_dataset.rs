//! Writes a large dataset of realistic rows without any network, for benchmarking `fleet-audit report`
//! (and the Parquet path): the simulator's fleet gives each (thing, job) pair its execution, and the
//! rows go through the product's own writer, exactly as `run` writes them.
//!
//! Usage: cargo run --release --example gen_dataset -- OUT_DIR THINGS JOBS

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fleet_audit::dataset::{DatasetWriter, Format, Layout, WriterSettings};
use fleet_audit::sim::{Fleet, FleetSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: gen_dataset OUT_DIR THINGS JOBS");
        std::process::exit(2);
    }
    let out = PathBuf::from(&args[1]);
    let things: u64 = args[2].parse()?;
    let jobs: u32 = args[3].parse()?;
    let now_ms = 1_764_400_000_000u64;
    let fleet = Fleet::new(FleetSpec {
        things,
        jobs,
        seed: 1,
        now_ms,
        epoch_ms: None,
        changed_share: None,
        region: "us-east-1".into(),
        future_status: 0.0,
        active_share: None,
    });
    std::fs::create_dir_all(&out)?;
    let layout = Layout::Dir(out.clone());
    let dir = fleet_audit::dataset::OutputDir::local(&layout);
    let mut w = DatasetWriter::new(
        WriterSettings {
            layout,
            format: Format::Parquet,
            part_rows: 1_000_000,
            part_interval: Duration::from_secs(3600),
            manifest: None,
            batch_rows: 8192,
            row_group_rows: 128 * 1024,
            run_id: "gen".into(),
            region: Some("us-east-1".into()),
            shard: None,
            partitioning: None,
            verify_lock: false,
        },
        dir,
    );
    let started = Instant::now();
    let mut n = 0u64;
    for i in 0..things {
        for j in 0..jobs {
            let row = fleet.audit_row(i, j, now_ms as i64);
            w.push(&row, n)?;
            n += 1;
        }
    }
    let report = w.finish(true)?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = report
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{n} rows in {} files, {:.1} MB ({:.1} bytes/row), {:.2} s ({:.0} rows/s)",
        report.files.len(),
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        secs,
        n as f64 / secs
    );
    Ok(())
}
