#!/usr/bin/env bash
# The AWS CLI, one process per call: `aws iot describe-job-execution` over the first N pairs of a
# things list x a jobs list (things in file order, every job for each), answers discarded.
# It is the shell baseline of scripts/bench.sh; credentials and region come from the AWS_* variables.
# Usage: scripts/cli_loop.sh ENDPOINT_URL THINGS_FILE JOBS_FILE [N=20]
# Prints one line: calls=.. ok=.. not_found=.. errors=.. elapsed_s=.. calls_per_s=..
set -euo pipefail
[ $# -ge 3 ] || { sed -n 's/^# Usage: //p' "$0" >&2; exit 2; }
url=$1 things=$2 jobs=$3 n=${4:-20}
aws=${AWS_CLI:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/aws}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
mapfile -t job_ids < <(grep -v -e '^[[:space:]]*$' -e '^#' "$jobs")
calls=0 ok=0 not_found=0 errors=0
start=$(date +%s.%N)
while IFS= read -r thing; do
  for job in "${job_ids[@]}"; do
    [ "$calls" -lt "$n" ] || break 2
    calls=$((calls + 1))
    if "$aws" iot describe-job-execution --endpoint-url "$url" \
        --thing-name "$thing" --job-id "$job" >/dev/null 2>"$err"; then
      ok=$((ok + 1))
    elif grep -q ResourceNotFoundException "$err"; then
      not_found=$((not_found + 1))
    else
      errors=$((errors + 1))
      [ "$errors" -gt 1 ] || sed 's/^/cli_loop: first error: /' "$err" >&2
    fi
  done
done < <(grep -v -e '^[[:space:]]*$' -e '^#' "$things")
end=$(date +%s.%N)
awk -v c="$calls" -v o="$ok" -v nf="$not_found" -v e="$errors" -v s="$start" -v t="$end" 'BEGIN {
  printf "calls=%d ok=%d not_found=%d errors=%d elapsed_s=%.3f calls_per_s=%.2f\n", c, o, nf, e, t - s, c / (t - s) }'
[ "$errors" -eq 0 ]
