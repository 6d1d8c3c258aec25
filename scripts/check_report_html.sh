#!/usr/bin/env bash
# Checks `fleet-audit report --html` the way a user meets it: builds a demo dataset, writes the page,
# checks that it fetches nothing, renders it in headless Chromium and keeps the screenshot to look at.
#
#   scripts/check_report_html.sh [OUT_DIR]     (default: a fresh temporary directory)
#
# Needs Debian's chromium (apt-get update && apt-get install -y chromium). Fails when the page refers
# to anything outside itself, when chromium fails, or when the PNG is missing or tiny (a blank page).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-$(mktemp -d -t fleet-audit-report-XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
bin="${FLEET_AUDIT_BIN:-target/debug/fleet-audit}"
if [ ! -x "$bin" ]; then
  cargo build --quiet
fi
if ! command -v chromium >/dev/null; then
  echo "check_report_html: chromium not found; install it with: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi

# A small fleet with a share of executions in a status AWS does not send today.
"$bin" demo --things 2000 --jobs 4 --future-status 0.02 --out "$out/demo" >"$out/demo.log" 2>&1 \
  || { cat "$out/demo.log" >&2; exit 1; }
"$bin" report "$out/demo/executions.parquet" --html "$out/report.html" >"$out/report.txt"

# Self-contained: no scripts, no links, no external resources of any kind.
if grep -Eqi '<script|<link|<img|<iframe|src=|href=|url\(|@import|https?://' "$out/report.html"; then
  echo "check_report_html: $out/report.html refers to something outside itself:" >&2
  grep -Eoi '.{0,40}(<script|<link|<img|<iframe|src=|href=|url\(|@import|https?://).{0,40}' "$out/report.html" >&2
  exit 1
fi
grep -q '<svg' "$out/report.html" || { echo "check_report_html: no inline SVG in the page" >&2; exit 1; }

png="$out/report.png"
rm -f "$png"
profile="$(mktemp -d -t fleet-audit-chromium-XXXXXX)"
trap 'rm -rf "$profile"' EXIT
if ! timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --screenshot="$png" --window-size=1200,1600 \
    "file://$out/report.html" >"$out/chromium.log" 2>&1; then
  echo "check_report_html: chromium failed (log: $out/chromium.log)" >&2
  tail -20 "$out/chromium.log" >&2
  exit 1
fi
if [ ! -s "$png" ]; then
  echo "check_report_html: no screenshot at $png" >&2
  exit 1
fi
# A blank 1200x1600 page is about 9 KB; the report, with its charts and tables, is well over 40 KB.
size=$(stat -c %s "$png")
if [ "$size" -lt 40000 ]; then
  echo "check_report_html: $png is only $size bytes: the page looks empty" >&2
  exit 1
fi
echo "html: $out/report.html"
echo "png:  $png ($size bytes)"
