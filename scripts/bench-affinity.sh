#!/usr/bin/env bash
# Connections go where their keys are: does moving a connection to the
# core its commands keep going to pay? A workload with affinity, every key
# of one hashtag (so of one core), against
#
#   slotd-1         slotd --shards 1
#   slotd-2-nomove  slotd --shards 2, connections never move
#                   (SLOTD_MOVE_AFTER=0, the test and benchmark switch):
#                   the connections placed on the other core hop per command
#   slotd-2         slotd --shards 2 as it runs by default (they move)
#   redis           redis-server
#
# all unpinned (slotd leaves 2 shards on 2 CPUs to the kernel), with
# redis-benchmark `-c CLIENTS -n N -r KEYSPACE -P p SET '{TAG}:__rand_int__'
# xxx` then `GET '{TAG}:__rand_int__'`, for p in PIPELINES, ROUNDS rounds
# (setup order reversed every other round), medians of ops/s, p50/p99 and
# server CPU µs per operation (its threads' run time, /proc/PID/task/*/
# schedstat). Each slotd-2 row also says how many connections moved during
# its runs (INFO slotd_connections_moved). The host's load average is noted
# before each run.
# The markdown goes to bench/results/affinity-<date>.md and
# bench/results/affinity-latest.md.
#
#   scripts/bench-affinity.sh
#   ROUNDS=5 PIPELINES="1" scripts/bench-affinity.sh
#
# Environment: ROUNDS=3 N=200000 CLIENTS=50 KEYSPACE=100000 PIPELINES="1 16"
#   TAG=a (its slot, 15495, is on core 1 of 2)  QUIET_IDLE=80 QUIET_WAIT=30
#   NOISE_MAX=25 NOISE_RETRIES=2  BENCH_TIMEOUT=900  SLOTD_BIN  REDIS_BIN
#   BASE_PORT=7391  OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
PIPELINES="${PIPELINES:-1 16}"
TAG="${TAG:-a}"
QUIET_IDLE="${QUIET_IDLE:-80}"
QUIET_WAIT="${QUIET_WAIT:-30}"
NOISE_MAX="${NOISE_MAX:-25}"
NOISE_RETRIES="${NOISE_RETRIES:-2}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7391}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"
# (bench-run.sh's names; this script pins nothing.)
SERVER_CPU="" CLIENT_CPU="" UNPINNED_SERVER_CPUS="" UNPINNED_CLIENT_CPUS=""
BENCH_THREADS=""

bench_init affinity
for tool in redis-benchmark redis-cli timeout awk; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
slotd_binary

# shellcheck source=scripts/bench-run.sh
. "$ROOT/scripts/bench-run.sh"
add_setup slotd-1 "$SLOTD_BIN" "--shards 1" unpinned
add_setup slotd-2-nomove "$SLOTD_BIN" "--shards 2" unpinned
add_setup slotd-2 "$SLOTD_BIN" "--shards 2" unpinned
add_setup redis "$REDIS_BIN" "" unpinned
NS=${#S_NAME[@]}
for i in $(seq 0 $((NS - 1))); do
    if [ "${S_NAME[$i]}" = slotd-2-nomove ]; then
        export SLOTD_MOVE_AFTER=0
        start_setup "$i"
        unset SLOTD_MOVE_AFTER
    else
        start_setup "$i"
    fi
done

moved() { redis-cli -p "${S_PORT[$1]}" info stats | tr -d '\r' | awk -F: '$1 == "slotd_connections_moved" { print $2 }'; }

# run_tag INDEX TEST PIPELINE -> "rps p50 p99 cpu_us_per_op other% moved load1"
run_tag() {
    local i="$1" t="$2" p="$3" pid port out line before after h0 h1 w0 w1 other m0 m1 load attempt
    pid="${S_PID[$i]}" port="${S_PORT[$i]}"
    kill -0 "$pid" 2>/dev/null || die "${S_NAME[$i]} (pid $pid) is not running"
    local cmd=(SET "{$TAG}:__rand_int__" xxx)
    [ "$t" = set ] || cmd=(GET "{$TAG}:__rand_int__")
    for attempt in $(seq 0 "$NOISE_RETRIES"); do
        wait_quiet
        load="$(cut -d' ' -f1 /proc/loadavg)"
        m0="$(moved "$i")"
        h0="$(host_busy_ns)" w0="$(date +%s%N)" before="$(cpu_ns "$pid")"
        if ! out="$(
            timeout "$BENCH_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" \
                -c "$CLIENTS" -n "$N" -P "$p" -r "$KEYSPACE" --csv "${cmd[@]}" </dev/null 2>&1
            rc=$?
            times >"$WORK/times"
            exit "$rc"
        )"; then
            echo "$out" >&2
            die "redis-benchmark failed against ${S_NAME[$i]} ($t -P $p)"
        fi
        after="$(cpu_ns "$pid")" w1="$(date +%s%N)" h1="$(host_busy_ns)"
        m1="$(moved "$i")"
        other="$(other_pct $((h1 - h0)) $((after - before)) "$(times_ns "$WORK/times")" $((w1 - w0)))"
        [ "$other" -gt "$NOISE_MAX" ] || break
        if [ "$attempt" -lt "$NOISE_RETRIES" ]; then
            log "${S_NAME[$i]} $t -P $p: other processes used $other% of a CPU; repeating"
            note_noise "repeated ${S_NAME[$i]} $t $p $other"
        fi
    done
    line="$(echo "$out" | tr -d '\r' | grep -i "^\"$t " | tail -1 || true)"
    [ -n "$line" ] && ! echo "$out" | grep -qi error || {
        echo "$out" >&2
        die "unexpected redis-benchmark output against ${S_NAME[$i]} ($t -P $p)"
    }
    echo "$line" | tr -d '"' | awk -F, -v d=$((after - before)) -v n="$N" -v o="$other" \
        -v m=$(( ${m1:-0} - ${m0:-0} )) -v l="$load" \
        '{ printf "%s %s %s %.4f %s %s %s\n", $2, $5, $7, d / 1e3 / n, o, m, l }'
}

RAW="$WORK/raw.tsv" # setup test pipeline round rps p50 p99 cpu_us other% moved load1
: >"$RAW"
: >"$WORK/noise"
FWD="$(seq 0 $((NS - 1)) | tr '\n' ' ')"
REV="$(seq $((NS - 1)) -1 0 | tr '\n' ' ')"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="$FWD"; else order="$REV"; fi
    for t in set get; do
        for p in $PIPELINES; do
            for i in $order; do
                res="$(run_tag "$i" "$t" "$p")"
                log "round $r/$ROUNDS ${S_NAME[$i]} $t -P $p: ops/s p50 p99 cpu_us/op other% moved load = $res"
                echo "${S_NAME[$i]} $t $p $r $res" >>"$RAW"
            done
        done
    done
done

UP() { echo "$1" | tr '[:lower:]' '[:upper:]'; }
DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/affinity-$DATE.md"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
{
    echo "# Connections go where their keys are: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN\` (commit $SLOTD_COMMIT)"
    echo "- redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version 2>/dev/null | head -1))"
    echo "- workload: redis-benchmark \`-c $CLIENTS -n $N -r $KEYSPACE -P p --csv SET '{$TAG}:__rand_int__' xxx\` and \`GET '{$TAG}:__rand_int__'\`: every key on one core of 2"
    echo "- setups: slotd-2-nomove is slotd-2 with \`SLOTD_MOVE_AFTER=0\` (connections never move); nothing pinned by the script (slotd pins its shards only when they are fewer than its CPUs); $ROUNDS rounds, order reversed every other round, medians"
    echo "- host: $(getconf _NPROCESSORS_ONLN) CPUs, ${CPU_MODEL:-unknown CPU}, $(uname -sr); load average (1 min) before the runs: $(awk '{ print $11 }' "$RAW" | sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%s-%s", a[1], a[NR] }'); runs repeated for other CPU over ${NOISE_MAX}%: $(grep -c '^repeated' "$WORK/noise" || true); runs started on a host < $QUIET_IDLE% idle after ${QUIET_WAIT}s: $(grep -c '^busy-start' "$WORK/noise" || true)"
    echo "- CPU/op: server CPU time per request, µs (all its threads); other CPU: host CPU used by anything but the server and the client during a run, % of one CPU"
    echo
    echo "| setup | test | -P | ops/s | p50 ms | p99 ms | CPU µs/op | ops/s vs slotd-2-nomove | CPU/op vs slotd-2-nomove | connections moved (per run) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in set get; do
        for p in $PIPELINES; do
            bo="$(m slotd-2-nomove "$t" "$p" 5)" bc="$(m slotd-2-nomove "$t" "$p" 8)"
            for i in $(seq 0 $((NS - 1))); do
                s="${S_NAME[$i]}"
                o="$(m "$s" "$t" "$p" 5)" c="$(m "$s" "$t" "$p" 8)"
                mv="$(awk -v s="$s" -v t="$t" -v p="$p" '$1 == s && $2 == t && $3 == p { printf "%s%s", sep, $10; sep = "," }' "$RAW")"
                case "$s" in slotd-2*) ;; *) mv="" ;; esac
                echo "| $s | $(UP "$t") | $p | $(fmt "$o" %.0f) | $(fmt "$(m "$s" "$t" "$p" 6)" %.3f) | $(fmt "$(m "$s" "$t" "$p" 7)" %.3f) |" \
                    "$(fmt "$c" %.3f) | $(ratio "$o" "$bo") | $(ratio "$c" "$bc") | $mv |"
            done
        done
    done
    echo
    echo "<details><summary>All runs</summary>"
    echo
    echo "| setup | test | -P | round | ops/s | p50 ms | p99 ms | CPU µs/op | other CPU % | moved | load1 |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, toupper($2), $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$RAW"
    echo
    echo "</details>"
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/affinity-latest.md"
cat "$REPORT"
log "wrote $REPORT and $OUT_DIR/affinity-latest.md"
