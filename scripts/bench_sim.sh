#!/usr/bin/env bash
# Simulator throughput: wrk (Debian's package) sends DescribeJobExecution for random pairs of a
# 1,000,000-thing x 5-job fleet to `fleet-audit sim` on loopback, both on this machine.
# Usage: scripts/bench_sim.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -q
out=$(mktemp)
target/release/fleet-audit sim --things 1000000 --jobs 5 --seed 1 >"$out" &
sim=$!
trap 'kill $sim 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$out")
wrk -t2 -c"$conns" -d"${secs}s" -s scripts/wrk_describe.lua "$url"
curl -s "$url/_sim/stats"; echo
