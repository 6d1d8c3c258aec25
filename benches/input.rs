//! The input reader: validating and de-duplicating the lists ([`prepare`]), then iterating the lazy
//! cross product ([`PreparedInput::targets`]), in pairs per second.
//!
//! Inputs: 100,000 thing names (`thing-000000`...) x 5 job ids = 500,000 pairs, and the same pairs as
//! a CSV pairs file. `prepare_and_targets` is what a run pays before and while it calls; `targets`
//! alone is the per-pair cost inside the run.

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use fleet_audit::input::{prepare, InputSpec, PreparedInput};

const THINGS: usize = 100_000;
const JOBS: usize = 5;
const PAIRS: u64 = (THINGS * JOBS) as u64;

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) {
    let mut w = BufWriter::new(std::fs::File::create(path).expect("create input file"));
    for l in lines {
        writeln!(w, "{l}").expect("write input file");
    }
    w.flush().expect("flush input file");
}

/// Counts every target, checking none is an error.
fn drain(p: &PreparedInput) -> u64 {
    let mut n = 0;
    for t in p.pairs().expect("open the pairs") {
        black_box(t.expect("valid target"));
        n += 1;
    }
    n
}

fn bench_input(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let things = dir.path().join("things.txt");
    let jobs = dir.path().join("jobs.txt");
    let pairs = dir.path().join("pairs.csv");
    write_lines(&things, (0..THINGS).map(|i| format!("thing-{i:06}")));
    write_lines(&jobs, (0..JOBS).map(|j| format!("job-{j:03}")));
    write_lines(
        &pairs,
        std::iter::once("thing_name,job_id".to_string()).chain(
            (0..THINGS).flat_map(|i| (0..JOBS).map(move |j| format!("thing-{i:06},job-{j:03}"))),
        ),
    );
    let lists = InputSpec::Lists { things, jobs };
    let pairs = InputSpec::Pairs(pairs);

    let prepared = prepare(&lists).expect("valid lists");
    assert_eq!(prepared.total(), PAIRS);
    assert_eq!(drain(&prepared), PAIRS);

    let mut g = c.benchmark_group("input");
    g.throughput(Throughput::Elements(PAIRS))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("lists_prepare", |b| {
        b.iter(|| black_box(prepare(black_box(&lists)).expect("valid lists").total()))
    });
    g.bench_function("lists_targets", |b| b.iter(|| drain(&prepared)));
    g.bench_function("lists_prepare_and_targets", |b| {
        b.iter(|| drain(&prepare(black_box(&lists)).expect("valid lists")))
    });
    g.bench_function("pairs_csv_prepare_and_targets", |b| {
        b.iter(|| drain(&prepare(black_box(&pairs)).expect("valid pairs")))
    });
    g.finish();
}

criterion_group!(benches, bench_input);
criterion_main!(benches);
