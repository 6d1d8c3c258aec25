#!/usr/bin/env bash
# End-to-end benchmark: fleet-audit against `fleet-audit sim` on this machine, next to the bare
# aws-sdk-iot loop (examples/sdk_loop.rs), boto3 (scripts/boto3_audit.py) and the AWS CLI
# (scripts/cli_loop.sh); then memory at scale, and rate accuracy against a simulated quota.
#
# The simulator and the client share this machine's cores, so throughput figures are client + server
# on one box. Client CPU and peak RSS are the client process's alone (/usr/bin/time; for the CLI loop,
# bash and its aws children). calls/s is each tool's own figure over its calling phase (fleet-audit:
# --summary-json calls_per_s, attempts / run time); wall s is the whole process, startup included.
#
# Usage: scripts/bench.sh            (~19 minutes on 2 cores, after the release build)
# Env:   BENCH_SCALE=small           quick check with small sizes (~2 minutes)
#        BENCH_10M=1                 adds the 10M-pair scale rows (~12 min per layout at 14k calls/s)
#        BENCH_SCALE_PAIRS="100000 1000000"     the scale rows' sizes (multiples of 5)
#        BENCH_SCALE_LAYOUTS="file dir"   scale rows into one .parquet file and/or a directory of parts
#        BENCH_RATE_SECS=30          seconds per rate-accuracy row
#        BENCH_ROUNDS=3              interleaved fleet-audit / SDK-loop / SDK-loop-with-jemalloc rounds per concurrency (median shown)
#        BENCH_SECTIONS="throughput instructions scale rate history diagnosis targets"   which sections to run
#        BENCH_OUT=target/bench-results.md        where the tables are also written
#        BENCH_WAIT_IDLE=600         first wait up to this many seconds for no rustc to be running
#        CARGO_TARGET_DIR, CARGO_PROFILE_PROFILING_*   build elsewhere / with other settings, e.g. to
#                                    compare LTO: CARGO_TARGET_DIR=target-lto CARGO_PROFILE_PROFILING_LTO=fat
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scale=${BENCH_SCALE:-full}
case $scale in
  full) pairs=150000 boto_calls=5000 cli_calls=20 scale_pairs="100000 1000000" rate_secs=30 rounds=3 ;;
  small) pairs=10000 boto_calls=500 cli_calls=5 scale_pairs="10000 100000" rate_secs=5 rounds=1 ;;
  *) echo "bench: BENCH_SCALE must be full or small" >&2; exit 2 ;;
esac
rate_secs=${BENCH_RATE_SECS:-$rate_secs}
rounds=${BENCH_ROUNDS:-$rounds}
[ "${BENCH_10M:-0}" = 1 ] && scale_pairs="$scale_pairs 10000000"
scale_pairs=${BENCH_SCALE_PAIRS:-$scale_pairs}
sections=${BENCH_SECTIONS:-throughput instructions scale rate history diagnosis targets}
layouts=${BENCH_SCALE_LAYOUTS:-file dir}
results=${BENCH_OUT:-$root/target/bench-results.md}
concurrencies="16 64 256"
now=1764400000

log() { echo "bench: $*" >&2; }

if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
log "building (the profiling profile: release, with line tables and symbols)"
cargo build --profile profiling --locked --bins --examples
scripts/venv.sh
built=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")/profiling
bin=$built/fleet-audit
sdk_loop=$built/examples/sdk_loop
sdk_loop_jemalloc=$built/examples/sdk_loop_jemalloc
py=$root/.venv/bin/python

wait_idle=${BENCH_WAIT_IDLE:-0}
while [ "$wait_idle" -gt 0 ] && pgrep -x rustc >/dev/null; do
  [ "$((wait_idle % 60))" -ne 0 ] || log "waiting for other builds (rustc) to finish (${wait_idle}s left)"
  sleep 5
  wait_idle=$((wait_idle - 5))
done
if pgrep -x rustc >/dev/null; then
  log "warning: other builds are running; the figures will show it (see the load line)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-audit-bench.XXXXXX")
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ]; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every client signs with these; the simulator accepts any key but the two test ones.
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_IOT

# start_sim NAME SIM_ARGS...: starts a simulator that writes its lists to $work/NAME; sets $url.
start_sim() {
  local name=$1
  shift
  "$bin" sim --seed 1 --now "${sim_now:-$now}" --write-lists "$work/$name" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  sim_pid=$!
  for _ in $(seq 600); do
    grep -q '^listening on ' "$work/$name.out" && break
    kill -0 "$sim_pid" 2>/dev/null || break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$work/$name.out")
  if [ -z "$url" ]; then
    log "simulator $name did not start:"
    cat "$work/$name.err" >&2
    exit 1
  fi
  log "simulator $name on $url ($*)"
}

stop_sim() {
  kill "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  sim_pid=
}

# The first N things of a list: N things x 5 jobs = the pairs of one row.
subset() { head -n "$2" "$1/things.txt" >"$1/things-$2.txt"; echo "$1/things-$2.txt"; }

# Load while measuring: the machine's busy CPU time during the sections, less what this script and
# everything it started used (bash `times`: the shell and its waited-for children, simulators and
# clients included), is what other processes (other builds) took meanwhile.
hz=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# Sets $our_cpu: user+sys seconds so far (`times` must run in this shell, not in a subshell).
snap_cpu() {
  times >"$work/times"
  our_cpu=$(tr 'ms' '  ' <"$work/times" | awk '{ t += $1 * 60 + $2 + $3 * 60 + $4 } END { print t }')
}
busy_s=0 ours_s=0 max_rustc=0
note_load() {
  local n
  n=$(pgrep -c -x rustc || true)
  if [ "${n:-0}" -gt "$max_rustc" ]; then max_rustc=$n; fi
}

# timed CMD...: runs CMD under /usr/bin/time; sets rc, wall, cpu_s (user+sys) and rss_mb.
timed() {
  note_load
  rc=0
  /usr/bin/time -o "$work/time" -f '%e %U %S %M' "$@" || rc=$?
  read -r wall user sys rss_kb <"$work/time"
  cpu_s=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
  rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }')
}

kv() { grep -o "\b$1=[^ ]*" "$2" | head -n1 | cut -d= -f2; }
json() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
us_per_call() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.0f", (n > 0 ? c * 1e6 / n : 0) }'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf "%.*f", d, x }'; }

throughput_rows=""
tp_row() { # tool concurrency calls calls/s
  throughput_rows+="| $1 | $2 | $3 | $(fmt "$4" "$(awk -v x="$4" 'BEGIN { print (x < 100 ? 1 : 0) }')") | $(us_per_call "$cpu_s" "$3") | $rss_mb | $(fmt "$wall" 1) |"$'\n'
}

# fleet-audit run, unthrottled; sets fa_note when the run was not clean.
fa_run() { # things-file concurrency out summary
  timed "$bin" run --things "$1" --jobs "$(dirname "$1")/jobs.txt" --out "$3" --overwrite \
    --endpoint-url "$url" --region us-east-1 --rps 0 --concurrency "$2" --quiet --summary-json "$4"
  fa_note=""
  if [ "$rc" -ne 0 ] || [ "$(json "$4" errors)" != 0 ]; then
    fa_note=" (exit $rc, $(json "$4" errors) error rows)"
  fi
}

# median_round FILE: picks the line of FILE (one round a line: calls calls/s cpu_s rss_mb wall [note])
# whose calls/s is the median; sets m_calls, m_cps, m_note, and cpu_s, rss_mb, wall for tp_row.
median_round() {
  local line
  line=$(sort -k2,2 -g "$1" | sed -n "$(( ($(wc -l <"$1") + 1) / 2 ))p")
  read -r m_calls m_cps cpu_s rss_mb wall m_note <<<"$line"
}

ratio_notes=""
# The bare SDK loop in two builds: as a user would write it (the system allocator), and with the
# allocator fleet-audit's binary uses (jemalloc), so the ratio is shown like for like too.
sdk_loop_rounds() { # name binary concurrency
  log "round $r: $1 --concurrency $3"
  timed "$2" --endpoint-url "$url" --concurrency "$3" --calls "$pairs" \
    --things 200000 --jobs 5 >"$work/$1-$3.out"
  echo "$(kv calls "$work/$1-$3.out") $(kv calls_per_s "$work/$1-$3.out") $cpu_s $rss_mb $wall $([ "$rc" = 0 ] || echo "(exit $rc)")" \
    >>"$work/$1-$3.rounds"
}
round_list() { cut -d' ' -f2 "$1" | xargs printf '%.0f ' | sed 's/ $//'; }
section_throughput() {
  log "throughput: $pairs pairs per fleet-audit and SDK row, $rounds interleaved rounds (median shown)"
  start_sim tp --things 200000 --jobs 5
  local things c r fa sdk sdkj
  things=$(subset "$work/tp" $((pairs / 5)))
  for c in $concurrencies; do
    : >"$work/fa-$c.rounds"
    : >"$work/sdk-$c.rounds"
    : >"$work/sdkj-$c.rounds"
    # fleet-audit and the bare SDK loops take turns, so a drift in the machine's speed hits all.
    for r in $(seq "$rounds"); do
      log "round $r: fleet-audit run --rps 0 --concurrency $c"
      fa_run "$things" "$c" "$work/tp-$c.parquet" "$work/tp-$c.json"
      echo "$(json "$work/tp-$c.json" attempts) $(json "$work/tp-$c.json" calls_per_s) $cpu_s $rss_mb $wall $fa_note" \
        >>"$work/fa-$c.rounds"
      rm -f "$work/tp-$c.parquet"
      sdk_loop_rounds sdk "$sdk_loop" "$c"
      sdk_loop_rounds sdkj "$sdk_loop_jemalloc" "$c"
    done
  done
  for c in $concurrencies; do
    median_round "$work/fa-$c.rounds"
    tp_row "fleet-audit run --rps 0${m_note:+ $m_note}" "$c" "$m_calls" "$m_cps"
    fa=$m_cps
    median_round "$work/sdk-$c.rounds"
    tp_row "bare aws-sdk-iot loop (examples/sdk_loop.rs)${m_note:+ $m_note}" "$c" "$m_calls" "$m_cps"
    sdk=$m_cps
    median_round "$work/sdkj-$c.rounds"
    tp_row "bare aws-sdk-iot loop + jemalloc (examples/sdk_loop_jemalloc.rs)${m_note:+ $m_note}" "$c" "$m_calls" "$m_cps"
    sdkj=$m_cps
    ratio_notes+="concurrency $c: fleet-audit at $(awk -v a="$fa" -v b="$sdk" 'BEGIN { printf "%.0f", 100 * a / b }')% of the bare SDK loop's calls/s, $(awk -v a="$fa" -v b="$sdkj" 'BEGIN { printf "%.0f", 100 * a / b }')% of the loop with jemalloc (rounds, calls/s: fleet-audit $(round_list "$work/fa-$c.rounds"); SDK loop $(round_list "$work/sdk-$c.rounds"); with jemalloc $(round_list "$work/sdkj-$c.rounds"))"$'\n'
  done
  log "boto3 ThreadPoolExecutor, 32 threads, $boto_calls pairs"
  timed "$py" scripts/boto3_audit.py --things "$things" --jobs "$work/tp/jobs.txt" \
    --endpoint-url "$url" --threads 32 --limit "$boto_calls" --out "$work/boto3.parquet" \
    >"$work/boto3.out"
  tp_row "boto3 + ThreadPoolExecutor (scripts/boto3_audit.py)$([ "$rc" = 0 ] || echo " (exit $rc)")" \
    32 "$(kv calls "$work/boto3.out")" "$(kv calls_per_s "$work/boto3.out")"
  log "AWS CLI loop, $cli_calls calls"
  timed scripts/cli_loop.sh "$url" "$things" "$work/tp/jobs.txt" "$cli_calls" >"$work/cli.out"
  tp_row "aws iot describe-job-execution loop (scripts/cli_loop.sh)$([ "$rc" = 0 ] || echo " (exit $rc)")" \
    1 "$(kv calls "$work/cli.out")" "$(kv calls_per_s "$work/cli.out")"
  stop_sim
}

scale_rows=""
section_scale() {
  start_sim scale --things 2000000 --jobs 5
  local n things out layout bytes
  for n in $scale_pairs; do
    things=$(subset "$work/scale" $((n / 5)))
    for layout in $layouts; do
      log "scale: fleet-audit run over $n pairs into a $layout"
      case $layout in
        file) out="$work/scale-$n.parquet" ;;
        dir) out="$work/scale-$n" ;;
        *) log "BENCH_SCALE_LAYOUTS: file or dir, not $layout"; exit 2 ;;
      esac
      fa_run "$things" 64 "$out" "$work/scale-$n.json"
      bytes=$(find "$out" -name '*.parquet' -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }')
      scale_rows+="| $n$fa_note | $layout | $(fmt "$(json "$work/scale-$n.json" calls_per_s)" 0) "
      scale_rows+="| $(us_per_call "$cpu_s" "$(json "$work/scale-$n.json" attempts)") | $rss_mb "
      scale_rows+="| $(fmt "$wall" 1) | $(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.1f", b / n }') |"$'\n'
      rm -rf "$out"
    done
    rm -f "$things"
  done
  stop_sim
}

rate_rows=""
# stat_of STATS_JSON FIELD OP: one operation's value of the simulator's stats (0 when absent).
stat_of() {
  "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]].get(sys.argv[3], 0))' "$1" "$2" "$3"
}
# Rate precision: fleet-audit --rps R against a simulated quota of R/s (its default bucket, a
# second's worth), R in 10, 50, 200, 1000; and --rps 200 with --burst 1, the old default. The rate
# is the simulator's: requests received over the span from the first to the last, so start-up and
# shutdown do not count.
section_rate() {
  local r burst s st n span
  for r in 10 50 200 1000 200/1; do
    burst=${r#*/}
    [ "$burst" = "$r" ] && burst=
    r=${r%/*}
    start_sim rate --things 200000 --jobs 5 --quota-rps "$r"
    log "rate: fleet-audit run --rps $r${burst:+ --burst $burst} against a quota of $r/s for ${rate_secs}s"
    s="$work/rate-$r.json"
    # Stopped by SIGINT after the interval: the summary is still written (exit 130 expected).
    timed timeout -s INT -k 30 "$rate_secs" "$bin" run --things "$work/rate/things.txt" \
      --jobs "$work/rate/jobs.txt" --out "$work/rate-$r.parquet" --overwrite \
      --endpoint-url "$url" --region us-east-1 --rps "$r" ${burst:+--burst "$burst"} --quiet \
      --summary-json "$s" 2>"$work/rate-$r.err"
    st="$work/stats-$r.json"
    curl -fsS "$url/_sim/stats" >"$st"
    stop_sim
    if [ ! -s "$s" ]; then
      log "fleet-audit --rps $r wrote no summary (exit $rc):"
      cat "$work/rate-$r.err" >&2
      rate_rows+="| $r | ${burst:-default} | no summary (exit $rc) | | | | |"$'\n'
      continue
    fi
    n=$(stat_of "$st" operations DescribeJobExecution)
    span=$(awk -v a="$(stat_of "$st" first_us DescribeJobExecution)" -v b="$(stat_of "$st" last_us DescribeJobExecution)" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
    rate_rows+="| $r | ${burst:-default ($(awk -v r="$r" 'BEGIN { b = int((r + 9) / 10); if (b < 2) b = 2; print b }'))} | $n | $span "
    rate_rows+="| $(awk -v n="$n" -v s="$span" 'BEGIN { printf "%.2f", (s > 0 ? (n - 1) / s : 0) }') "
    rate_rows+="| $(awk -v n="$n" -v s="$span" -v r="$r" 'BEGIN { printf "%.1f%%", (s > 0 ? 100 * (n - 1) / s / r : 0) }') "
    rate_rows+="| $(json "$s" throttled) | $(json "$st" throttled) |"$'\n'
  done
}

# Audit history: a fleet of about 1,000,000 executions (267,000 things x 5 jobs), 10% active, 1% of
# executions with an event in the day; a full discovery (--describe active), then the same fleet a
# day later audited with --baseline. Calls are counted by the simulator; the time each would take at
# AWS's default quotas is max over the APIs of calls / 10 (each list API and DescribeJobExecution
# has its own 10/s quota, and fleet-audit calls them side by side). Then the prediction is checked
# with one quota-limited incremental run of a fleet a tenth the size against a simulated quota of
# 10/s per API.
history_rows=""
history_notes=""
# At AWS quotas: each API its own 10/s, side by side; the context stage's calls are made one at a
# time, so SearchIndex counts with ListJobExecutionsForThing (which a discovery by job does not use);
# its few ListJobs and ListJobExecutionsForJob pages share those APIs' quotas with the listing.
quota_time() { # stats.json: seconds at 10 calls/s per API
  "$py" -c '
import json, sys
o = json.load(open(sys.argv[1]))["operations"]
ctx = o.get("SearchIndex", 0) + o.get("ListJobExecutionsForThing", 0)
rest = [v for k, v in o.items() if k not in ("SearchIndex", "ListJobExecutionsForThing")]
print("%.0f" % (max(rest + [ctx]) / 10))' "$1"
}
history_audit() { # name things now epoch baseline quota rps: one discovery, its row
  local name=$1 things=$2 t=$3 epoch=$4 baseline=$5 quota=$6 rps=$7 s st
  sim_now=$t start_sim "h-$name" --things "$things" --jobs 5 ${epoch:+--epoch "$epoch"} \
    --active-share 0.1 --changed-share 0.01 ${quota:+--quota-rps "$quota"}
  s="$work/h-$name.json"
  log "history: $name discovery of $things things x 5 jobs${baseline:+ with --baseline}"
  timed "$bin" run --discover --jobs "$work/h-$name/jobs.txt" --out "$work/h-$name.audit" \
    --endpoint-url "$url" --region us-east-1 --rps "$rps" --list-rps "$rps" --quiet \
    --summary-json "$s" ${baseline:+--baseline "$baseline"} 2>"$work/h-$name.err"
  st="$work/h-$name-stats.json"
  curl -fsS "$url/_sim/stats" >"$st"
  stop_sim
  if [ "$rc" != 0 ]; then
    log "history: $name failed (exit $rc):"
    cat "$work/h-$name.err" >&2
    exit 1
  fi
  history_rows+="| $name | $(json "$s" pairs) | $(stat_of "$st" operations ListJobExecutionsForJob) "
  history_rows+="| $(stat_of "$st" operations DescribeJobExecution) | $(json "$s" carried) "
  history_rows+="| $(json "$s" context_calls) | $(quota_time "$st") | $(fmt "$wall" 1) | $rss_mb |"$'\n'
}
section_history() {
  local t0=$now t1=$((now + 86400)) things=267000 small=26700 predicted
  [ "$scale" = small ] && things=26700 small=2670
  history_audit full "$things" "$t0" "" "" "" 0
  history_audit incremental "$things" "$t1" "$t0" "$work/h-full.audit" "" 0
  # The prediction at a tenth the size, then the same audit limited to 10/s per API for real.
  history_audit small-full "$small" "$t0" "" "" "" 0
  history_audit small-incremental-predicted "$small" "$t1" "$t0" "$work/h-small-full.audit" "" 0
  predicted=$(quota_time "$work/h-small-incremental-predicted-stats.json")
  history_audit small-incremental-at-10-per-s "$small" "$t1" "$t0" "$work/h-small-full.audit" 10 10
  history_notes="The quota-limited incremental run at a tenth the size took $(fmt "$wall" 0) s against a prediction of $predicted s ($(awk -v w="$wall" -v p="$predicted" 'BEGIN { printf "%.2f", (p > 0 ? w / p : 0) }') x)."
}

# The diagnosis's context calls (run --context, the default all) on a fleet of 1,000,000 things x 1
# job, 10% active: a discovery (--describe active) with --context none, then all, each against a
# fresh simulator; the calls by API, their time at AWS's default quotas, and the client's peak RSS.
diag_rows=""
section_diagnosis() {
  local things=1000000 ctx s st
  [ "$scale" = small ] && things=100000
  for ctx in none all; do
    start_sim "d-$ctx" --things "$things" --jobs 1 --active-share 0.1
    s="$work/d-$ctx.json"
    log "diagnosis: discovery of $things things x 1 job, --context $ctx"
    timed "$bin" run --discover --jobs "$work/d-$ctx/jobs.txt" --out "$work/d-$ctx.audit" \
      --endpoint-url "$url" --region us-east-1 --rps 0 --list-rps 0 --context-rps 0 \
      --context "$ctx" --as-of "$now" --quiet --summary-json "$s" 2>"$work/d-$ctx.err"
    st="$work/d-$ctx-stats.json"
    curl -fsS "$url/_sim/stats" >"$st"
    stop_sim
    if [ "$rc" != 0 ]; then
      log "diagnosis: --context $ctx failed (exit $rc):"
      cat "$work/d-$ctx.err" >&2
      exit 1
    fi
    diag_rows+="| $ctx | $(json "$s" pairs) | $(stat_of "$st" operations ListJobExecutionsForJob) "
    diag_rows+="| $(stat_of "$st" operations DescribeJobExecution) | $(stat_of "$st" operations DescribeJob) "
    diag_rows+="| $(stat_of "$st" operations SearchIndex) | $(stat_of "$st" operations ListJobExecutionsForThing) "
    diag_rows+="| $(quota_time "$st") | $(fmt "$wall" 1) | $rss_mb |"$'\n'
    rm -rf "$work/d-$ctx.audit"
  done
}

# Many targets in one process: an organization-wide run (--org-role, --regions all) over the
# simulator's organization (--org-accounts; 4 enabled regions an account), 2 pairs a target, at most
# --max-targets-in-flight (64) connected at once. Peak RSS must stay bounded whatever the number of
# targets (issue 18's budget: 128 MB at 2,000 targets).
targets_rows=""
section_targets() {
  local accounts n
  for accounts in 52 520; do
    # Every 25th account is SUSPENDED: 52 -> 50 ACTIVE (200 targets), 520 -> 500 (2,000 targets).
    start_sim "org-$accounts" --things 2 --jobs 1 --org-accounts "$accounts"
    log "targets: fleet-audit run --org-role over $accounts accounts x 4 regions"
    timed "$bin" run --things "$work/org-$accounts/things.txt" --jobs "$work/org-$accounts/jobs.txt" \
      --out "$work/org-$accounts-out" --overwrite --endpoint-url "$url" --region us-east-1 --rps 0 \
      --org-role audit --regions all --quiet --summary-json "$work/org-$accounts.json"
    n=$("$py" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["targets"]))' "$work/org-$accounts.json")
    targets_rows+="| $n | $(json "$work/org-$accounts.json" pairs) | $rc | $rss_mb | $(fmt "$wall" 1) |"$'\n'
    rm -rf "$work/org-$accounts-out"
    stop_sim
  done
}

# Instructions per call, counted by valgrind's callgrind: the same count whatever else the machine
# is doing, so it shows what fleet-audit adds to the SDK's own work without the noise of timings.
# Counted for 1,000 and 6,000 pairs at concurrency 16; the difference over 5,000 calls is per call
# (start-up cancels out). User space only (the kernel's TCP work is not counted), and valgrind's CPU
# has no SHA extensions, so the SDK's SHA-256 signing runs in software and inflates every row alike.
instr_rows=""
callgrind_ir() { # command...: total instructions of the client process
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
section_instructions() {
  if ! command -v valgrind >/dev/null; then
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
  fi
  start_sim ir --things 200000 --jobs 5
  local n things tool lo hi ir per fa_ir=
  for tool in fleet-audit sdk_loop sdk_loop_jemalloc; do
    lo= hi=
    for n in 1000 6000; do
      log "instructions: $tool, $n calls under callgrind"
      case $tool in
        fleet-audit)
          things=$(subset "$work/ir" $((n / 5)))
          ir=$(callgrind_ir "$bin" run --things "$things" --jobs "$work/ir/jobs.txt" \
            --out "$work/ir.parquet" --overwrite --endpoint-url "$url" --region us-east-1 \
            --rps 0 --concurrency 16 --quiet) ;;
        *)
          ir=$(callgrind_ir "$built/examples/$tool" --endpoint-url "$url" \
            --concurrency 16 --calls "$n" --things 6000 --jobs 5) ;;
      esac
      if [ -z "$ir" ]; then
        log "instructions: valgrind gave no count for $tool ($n calls)"
        exit 1
      fi
      if [ -z "$lo" ]; then lo=$ir; else hi=$ir; fi
    done
    per=$(( (hi - lo) / 5000 ))
    [ -n "$fa_ir" ] || fa_ir=$per
    if [ "$tool" = fleet-audit ]; then
      instr_rows+="| fleet-audit run (writes Parquet) | $per | |"$'\n'
    else
      instr_rows+="| bare loop, examples/$tool.rs | $per | $(awk -v a="$fa_ir" -v b="$per" 'BEGIN { printf "%+.1f%%", 100 * (a - b) / b }') |"$'\n'
    fi
  done
  stop_sim
}

log "sections: $sections (BENCH_SCALE=$scale)"
for s in $sections; do
  case $s in
    throughput | scale | rate | instructions | history | diagnosis | targets)
      snap_cpu
      b0=$(busy_jiffies) o0=$our_cpu
      "section_$s"
      busy_s=$(awk -v a="$busy_s" -v b0="$b0" -v b1="$(busy_jiffies)" -v hz="$hz" 'BEGIN { print a + (b1 - b0) / hz }')
      snap_cpu
      ours_s=$(awk -v a="$ours_s" -v o0="$o0" -v o1="$our_cpu" 'BEGIN { print a + o1 - o0 }')
      ;;
    *) log "unknown section $s"; exit 2 ;;
  esac
done

{
  echo "fleet-audit benchmark, $(date -u +%Y-%m-%dT%H:%MZ), BENCH_SCALE=$scale, $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), simulator and client on the same machine"
  awk -v b="$busy_s" -v o="$ours_s" -v r="$max_rustc" 'BEGIN {
    x = b - o; if (x < 0) x = 0
    printf "load while measuring: %.0f CPU-seconds busy, %.0f of them by other processes than this benchmark (%.0f%%); at most %d rustc processes seen\n", b, x, (b > 0 ? 100 * x / b : 0), r }'
  if [ -n "$throughput_rows" ]; then
    echo
    echo "| tool | concurrency | calls | calls/s | client CPU µs/call | peak RSS MB | wall s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$throughput_rows"
    echo
    printf '%s' "$ratio_notes"
  fi
  if [ -n "$instr_rows" ]; then
    echo
    echo "Instructions per call (valgrind callgrind, user space, concurrency 16, (6,000 - 1,000 calls) / 5,000; fleet-audit writes Parquet)"
    echo
    echo "| tool | instructions per call | fleet-audit run against this |"
    echo "|---|---:|---:|"
    printf '%s' "$instr_rows"
  fi
  if [ -n "$scale_rows" ]; then
    echo
    echo "Scale: fleet-audit run --rps 0 --concurrency 64, fleet of 2,000,000 things x 5 jobs; output one .parquet file, or a directory of parts (1,000,000 rows each)"
    echo
    echo "| pairs | output | calls/s | client CPU µs/call | peak RSS MB | wall s | parquet bytes/row |"
    echo "|---:|---|---:|---:|---:|---:|---:|"
    printf '%s' "$scale_rows"
  fi
  if [ -n "$rate_rows" ]; then
    echo
    echo "Rate precision: simulator --quota-rps equal to --rps (its default bucket: a second's worth), fleet-audit --concurrency 16 stopped (SIGINT) after ${rate_secs} s; rate = (requests - 1) / (last - first request) at the simulator"
    echo
    echo "| --rps | --burst | requests | span s | calls/s | of --rps | throttled (summary) | throttled (simulator) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$rate_rows"
  fi
  if [ -n "$targets_rows" ]; then
    echo
    echo "Many targets in one process: run --org-role audit --regions all, 2 pairs a target, --max-targets-in-flight 64 (peak RSS of the client)"
    echo
    echo "| targets | rows | exit | peak RSS MB | wall s |"
    echo "|---:|---:|---:|---:|---:|"
    printf '%s' "$targets_rows"
  fi
  if [ -n "$diag_rows" ]; then
    echo
    echo "The diagnosis's context calls: run --discover --describe active (the default), 1 job, 10% active, with --context none and all; calls counted by the simulator; at AWS quotas as in the history table (the context calls one at a time)"
    echo
    echo "| --context | executions | list calls | describes | DescribeJob | SearchIndex | ListJobExecutionsForThing | s at AWS quotas | wall s here | peak RSS MB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$diag_rows"
  fi
  if [ -n "$history_rows" ]; then
    echo
    echo "Audit history: run --discover --describe active, 5 jobs, 10% active, 1% of executions with an event in the day; the incremental audit is the same fleet a day later with --baseline (the full audit). Calls counted by the simulator; at AWS quotas = the busiest API's calls / 10 (each API its own 10/s quota)"
    echo
    echo "| audit | executions | list calls | describes | carried | context calls | s at AWS quotas | wall s here | peak RSS MB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s' "$history_rows"
    echo
    echo "$history_notes"
  fi
} | tee "$results"
log "tables also written to $results"
