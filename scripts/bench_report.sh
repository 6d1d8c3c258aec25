#!/usr/bin/env bash
# `fleet-audit report` over large datasets: wall time and peak RSS at 1M and 10M rows, to show that the
# report streams with flat memory. Datasets are written by examples/gen_dataset (the product's own
# writer, rows from the simulator's fleet), so no network is involved.
# Usage: scripts/bench_report.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked -q --bin fleet-audit --example gen_dataset
echo "| rows | dataset MB | generate s | report s | report peak RSS MB |"
echo "|---:|---:|---:|---:|---:|"
for things in 200000 2000000; do
  dir="$work/ds-$things"
  rm -rf "$dir"
  gen=$( { /usr/bin/time -f "%e" target/release/examples/gen_dataset "$dir" "$things" 5 >/dev/null; } 2>&1 | tail -1)
  mb=$(du -sm "$dir" | cut -f1)
  rep=$( { /usr/bin/time -f "%e %M" target/release/fleet-audit report "$dir" --json >/dev/null; } 2>&1 | tail -1)
  read -r secs kb <<<"$rep"
  echo "| $((things * 5)) | $mb | $gen | $secs | $((kb / 1024)) |"
done
