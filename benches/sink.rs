//! The output path alone, without any network: rows -> Arrow RecordBatches -> Parquet / Arrow IPC.
//!
//! Rows are those a real audit of the simulated fleet produces (`fleet-audit sim --seed 1 --jobs 5`:
//! ~72% `ok` with ARNs, timestamps and status details, the rest `not_found` with AWS's message),
//! so the encoders see realistic strings, nulls and maps. Four stages, each in rows per second:
//! - `row_to_arrow`: `BatchBuilder` only (a batch every 8,192 rows, as `run` does);
//! - `row_to_parquet_in_memory`: plus a Parquet `ArrowWriter` with the product's settings, into a
//!   byte counter (encoding and zstd, no file system);
//! - `dataset_writer_{parquet,arrow}_file`: `DatasetWriter` to a real file, including the fsync and
//!   atomic rename of the commit.
//!
//! Bytes per row of each format are printed once before the timings.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use fleet_audit::app::sim_config;
use fleet_audit::cli::{Cli, Command};
use fleet_audit::dataset::schema::{BatchBuilder, Outcome, Row};
use fleet_audit::dataset::{DatasetWriter, Format, Layout, WriterSettings};
use fleet_audit::sim::Fleet;

/// Rows per benchmark iteration.
const ROWS: usize = 100_000;
/// Rows per RecordBatch and per row group, as `fleet_audit::audit::run` sets them.
const BATCH_ROWS: usize = 8192;
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// A fixed "now" so every run encodes the same bytes.
const NOW_MS: u64 = 1_764_400_000_000;

/// The fleet `fleet-audit sim --things N --jobs 5 --seed 1 --now ...` serves, built through the same
/// flags so that the bench follows the simulator's defaults.
fn sim_fleet(things: u64, jobs: u32) -> Fleet {
    let args = [
        "fleet-audit".to_string(),
        "sim".into(),
        "--things".into(),
        things.to_string(),
        "--jobs".into(),
        jobs.to_string(),
        "--seed".into(),
        "1".into(),
        "--now".into(),
        (NOW_MS / 1000).to_string(),
    ];
    match Cli::try_parse_from(args).expect("sim flags").command {
        Command::Sim(a) => Fleet::new(sim_config(&a).expect("sim config").fleet),
        _ => unreachable!("parsed as the sim subcommand"),
    }
}

/// `n` rows in the order an audit of things x jobs produces them.
fn fleet_rows(n: usize) -> Vec<Row> {
    let jobs = 5u32;
    let fleet = sim_fleet((n as u64).div_ceil(u64::from(jobs)), jobs);
    (0..n as u64)
        .map(|k| {
            fleet.audit_row(
                k / u64::from(jobs),
                (k % u64::from(jobs)) as u32,
                (NOW_MS + k / 10) as i64,
            )
        })
        .collect()
}

/// The Parquet settings of `fleet_audit::sink`, from the one place that makes them.
fn parquet_props() -> WriterProperties {
    fleet_audit::dataset::parquet_properties(ROW_GROUP_ROWS)
}

/// A writer that keeps only the count of bytes written.
#[derive(Default)]
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn row_to_arrow(rows: &[Row]) -> usize {
    let mut b = BatchBuilder::new("bench-run", Some("us-east-1"));
    let mut out = 0;
    for chunk in rows.chunks(BATCH_ROWS) {
        for r in chunk {
            b.push(r);
        }
        out += b.finish().expect("batch of the schema").num_rows();
    }
    out
}

/// Encodes `rows` as one Parquet file in memory; returns its size in bytes.
fn row_to_parquet_in_memory(rows: &[Row]) -> u64 {
    let mut b = BatchBuilder::new("bench-run", Some("us-east-1"));
    let mut w = ArrowWriter::try_new(
        ByteCounter::default(),
        b.schema().clone(),
        Some(parquet_props()),
    )
    .expect("parquet writer");
    for chunk in rows.chunks(BATCH_ROWS) {
        for r in chunk {
            b.push(r);
        }
        w.write(&b.finish().expect("batch of the schema"))
            .expect("encode batch");
    }
    w.into_inner().expect("parquet footer").0
}

/// Writes `rows` through `DatasetWriter` to `path` (committed: fsync and rename); returns the file size.
fn dataset_writer(rows: &[Row], path: &Path, format: Format) -> u64 {
    let mut w = DatasetWriter::new(
        WriterSettings {
            layout: Layout::File(path.to_path_buf()),
            format,
            part_rows: u64::MAX,
            part_interval: Duration::from_secs(3600),
            manifest: None,
            batch_rows: BATCH_ROWS,
            row_group_rows: ROW_GROUP_ROWS,
            run_id: "bench-run".into(),
            region: Some("us-east-1".into()),
            shard: None,
            partitioning: None,
            verify_lock: false,
        },
        None,
    );
    for (o, r) in rows.iter().enumerate() {
        w.push(r, o as u64).expect("push row");
    }
    let report = w.finish(true).expect("commit file");
    assert_eq!(report.rows, rows.len() as u64);
    std::fs::metadata(path).expect("committed file").len()
}

fn bench_sink(c: &mut Criterion) {
    let rows = fleet_rows(ROWS);
    let ok = rows.iter().filter(|r| r.outcome == Outcome::Ok).count();
    let dir = tempfile::tempdir().expect("temp dir");
    let parquet_path = dir.path().join("bench.parquet");
    let arrow_path = dir.path().join("bench.arrow");
    let per_row = |bytes: u64| bytes as f64 / ROWS as f64;
    println!(
        "sink: {ROWS} rows of a simulated fleet ({:.0}% ok, the rest not_found): parquet {:.1} bytes/row \
         (in memory {:.1}), arrow ipc {:.1} bytes/row",
        100.0 * ok as f64 / ROWS as f64,
        per_row(dataset_writer(&rows, &parquet_path, Format::Parquet)),
        per_row(row_to_parquet_in_memory(&rows)),
        per_row(dataset_writer(&rows, &arrow_path, Format::Arrow)),
    );

    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Elements(ROWS as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("row_to_arrow", |b| {
        b.iter(|| black_box(row_to_arrow(black_box(&rows))))
    });
    g.bench_function("row_to_parquet_in_memory", |b| {
        b.iter(|| black_box(row_to_parquet_in_memory(black_box(&rows))))
    });
    g.bench_function("dataset_writer_parquet_file", |b| {
        b.iter(|| {
            black_box(dataset_writer(
                black_box(&rows),
                &parquet_path,
                Format::Parquet,
            ))
        })
    });
    g.bench_function("dataset_writer_arrow_file", |b| {
        b.iter(|| black_box(dataset_writer(black_box(&rows), &arrow_path, Format::Arrow)))
    });
    g.finish();
}

criterion_group!(benches, bench_sink);
criterion_main!(benches);
