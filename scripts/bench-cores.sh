#!/usr/bin/env bash
# Cores and hops: what a command forwarded to another shard core costs, and
# slotd's default multi-core setup against redis-server on the same machine.
#
#   scripts/bench-cores.sh
#   CORES="1 2 4 8" SERVER_CPU=9 CLIENT_CPU=8 scripts/bench-cores.sh   # larger host
#
# Setups (each a long-running server on its own port, all started up front):
#   slotd-1-pinned  slotd --shards 1, every thread pinned to SERVER_CPU,
#                   redis-benchmark pinned to CLIENT_CPU
#   slotd-K-pinned  slotd --shards K, ALL shard threads pinned to the same
#                   SERVER_CPU (K from CORES), redis-benchmark on CLIENT_CPU:
#                   same CPU budget as 1 shard, so the difference in CPU per
#                   operation is the cost of the cross-core hops, not
#                   parallelism
#   slotd-K         slotd --shards K not pinned by this script (slotd pins
#                   shard i to the i-th CPU it may use when K is below its
#                   CPUs, else leaves the shard threads to the kernel, as
#                   it does by default), redis-benchmark not pinned either
#   redis-pinned    redis-server, every thread pinned to SERVER_CPU,
#                   redis-benchmark on CLIENT_CPU
#   redis           redis-server and redis-benchmark not pinned
# For SET and GET at -P 1 and -P 16 (50 clients, 100000 random keys, 64 B
# values) it runs every setup once per round, for ROUNDS rounds, the setup
# order reversed every other round, and reports per setup the median over
# rounds of ops/s, p50/p99 latency (redis-benchmark --csv) and the server's
# CPU time per operation (the run time of all its threads, from
# /proc/PID/task/*/schedstat, before/after each run). Then:
#   - bars: CPU/op of slotd-2-pinned vs slotd-1-pinned (<= 1.25x at -P 1,
#     <= 1.75x at -P 16); slotd-2 vs redis, both unpinned: throughput
#     >= 0.9x at -P 1 and >= 1.2x at -P 16, p99 <= redis's; the per-core
#     check slotd-1-pinned vs redis-pinned (ops >= FOUNDATION_OPS_MIN x,
#     CPU/op <= FOUNDATION_CPU_MAX x); the mass-insertion bar below; each
#     bar judged on the ratio of the medians, with the per-round ratios'
#     range and how many rounds pass
#   - the CPU cost of one hop, from the pinned rows: with K shards and
#     uniformly random keys a fraction (K-1)/K of single-key commands run on
#     another core, so hop = (cpu_K - cpu_1) / ((K-1)/K) µs; and a MODEL of
#     CPU/op on N cores: cpu_1 + hop * (N-1)/N, for N in MODEL_CORES
#   - mass insertion: PIPE_N `SET key:<12 digits> <32 random bytes>` (16 B
#     keys, 32 B values) in RESP, generated once, piped with
#     `redis-cli --pipe` into slotd-1, slotd-K (unpinned) and redis
#     (unpinned), FLUSHALL before each run, ROUNDS rounds alternating,
#     medians; each run must report `errors: 0, replies: PIPE_N` and leave
#     DBSIZE = PIPE_N. Bar: slotd-2 within 1.5x of redis-server's time.
# The markdown goes to bench/results/cores-<date>.md and
# bench/results/cores-latest.md.
#
# Environment:
#   CORES="1 2"       shard counts K for the pinned and unpinned slotd rows
#                     (slotd-1-pinned, the baseline, always runs)
#   SERVER_CPU=1 CLIENT_CPU=0   CPUs of the pinned rows
#   UNPINNED_SERVER_CPUS, UNPINNED_CLIENT_CPUS   optional taskset CPU lists
#                     for the "unpinned" rows on a larger host (slotd spreads
#                     its shards over the CPUs it is allowed); default: all
#   ROUNDS=3  N=200000 (requests per redis-benchmark run)  CLIENTS=50
#   KEYSPACE=100000 (-r)  DATASIZE=64 (-d)  PIPELINES="1 16"  TESTS="set get"
#   BENCH_THREADS     redis-benchmark --threads (default: not passed)
#   PIPE_N=1000000    commands for the mass insertion (0 skips it)
#   PIPE_TIMEOUT=600  seconds per redis-cli --pipe run (a timeout is reported
#                     as such and that setup's remaining pipe runs skipped)
#   BENCH_TIMEOUT=900 seconds per redis-benchmark run
#   MODEL_CORES="8 16 64"
#   FOUNDATION_OPS_MIN=1.0 FOUNDATION_CPU_MAX=1.0   per-core check limits
#   QUIET_IDLE=80 QUIET_WAIT=120   before each run wait (at most QUIET_WAIT
#                     s) until the host is at least QUIET_IDLE % idle over
#                     0.5 s; runs that started on a busy host are counted
#   NOISE_MAX=25 NOISE_RETRIES=3   "other CPU" of a run: host user+system
#                     time (/proc/stat) minus the server's and the client's
#                     CPU time, in % of one CPU over the run; a run above
#                     NOISE_MAX is repeated up to NOISE_RETRIES times (the
#                     last one is kept); shown per run in the report
#   SLOTD_BIN         slotd binary (default: build and use
#                     target/release/slotd)
#   SLOTD_COMMIT      commit to print for SLOTD_BIN (default: HEAD of the git
#                     tree the binary lives in, if any)
#   REDIS_BIN=redis-server  BASE_PORT=7291 (one port per setup, upwards;
#                     6379 refused)  OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

CORES="${CORES:-1 2}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
UNPINNED_SERVER_CPUS="${UNPINNED_SERVER_CPUS:-}"
UNPINNED_CLIENT_CPUS="${UNPINNED_CLIENT_CPUS:-}"
ROUNDS="${ROUNDS:-3}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-64}"
PIPELINES="${PIPELINES:-1 16}"
TESTS="${TESTS:-set get}"
BENCH_THREADS="${BENCH_THREADS:-}"
PIPE_N="${PIPE_N:-1000000}"
PIPE_TIMEOUT="${PIPE_TIMEOUT:-600}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"
MODEL_CORES="${MODEL_CORES:-8 16 64}"
FOUNDATION_OPS_MIN="${FOUNDATION_OPS_MIN:-1.0}"
FOUNDATION_CPU_MAX="${FOUNDATION_CPU_MAX:-1.0}"
QUIET_IDLE="${QUIET_IDLE:-80}"
QUIET_WAIT="${QUIET_WAIT:-120}"
NOISE_MAX="${NOISE_MAX:-25}"
NOISE_RETRIES="${NOISE_RETRIES:-3}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7291}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

bench_init cores

for tool in redis-benchmark redis-cli taskset getconf timeout python3 awk; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
command -v "$REDIS_BIN" >/dev/null || [ -x "$REDIS_BIN" ] || die "missing $REDIS_BIN"

NCPU="$(getconf _NPROCESSORS_ONLN)"
[ "$NCPU" -ge 2 ] || die "needs at least 2 CPUs (server and client on different CPUs); this host has $NCPU"
for c in "$SERVER_CPU" "$CLIENT_CPU"; do
    taskset -c "$c" true 2>/dev/null || die "cannot run on CPU $c"
done
[ "$SERVER_CPU" != "$CLIENT_CPU" ] || die "SERVER_CPU and CLIENT_CPU must differ"

KS=()
for k in $CORES; do
    [[ "$k" =~ ^[1-9][0-9]*$ ]] || die "CORES: not a shard count: $k"
    KS+=("$k")
done
[ "${#KS[@]}" -gt 0 ] || die "CORES is empty"

slotd_binary

# ---------------------------------------------------------------- setups
# shellcheck source=scripts/bench-run.sh
. "$ROOT/scripts/bench-run.sh"
add_setup slotd-1-pinned "$SLOTD_BIN" "--shards 1" pinned
for k in "${KS[@]}"; do
    [ "$k" = 1 ] || add_setup "slotd-$k-pinned" "$SLOTD_BIN" "--shards $k" pinned
done
for k in "${KS[@]}"; do
    add_setup "slotd-$k" "$SLOTD_BIN" "--shards $k" unpinned
done
add_setup redis-pinned "$REDIS_BIN" "" pinned
add_setup redis "$REDIS_BIN" "" unpinned
NS=${#S_NAME[@]}
for i in $(seq 0 $((NS - 1))); do start_setup "$i"; done

RAW="$WORK/raw.tsv" # setup test pipeline round rps p50 p99 cpu_us other%
: >"$RAW"
: >"$WORK/noise"
log "warm-up (N/10 at -P 16 per setup and test)"
for i in $(seq 0 $((NS - 1))); do
    for t in $TESTS; do
        run_one "$i" "$t" 16 $((N / 10 > 1000 ? N / 10 : 1000)) warm >/dev/null
    done
done

FWD="$(seq 0 $((NS - 1)) | tr '\n' ' ')"
REV="$(seq $((NS - 1)) -1 0 | tr '\n' ' ')"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="$FWD"; else order="$REV"; fi
    for t in $TESTS; do
        for p in $PIPELINES; do
            for i in $order; do
                wait_quiet
                res="$(run_one "$i" "$t" "$p" "$N")"
                log "round $r/$ROUNDS ${S_NAME[$i]} $t -P $p: ops/s p50 p99 cpu_us/op = $res"
                echo "${S_NAME[$i]} $t $p $r $res" >>"$RAW"
            done
        done
    done
done

# ---------------------------------------------------------- mass insertion
PIPE_RAW="$WORK/pipe.tsv" # setup round seconds cpu_us_per_cmd other% (or: setup round timeout)
: >"$PIPE_RAW"
PIPE_SETUPS=()
if [ "$PIPE_N" -gt 0 ]; then
    for k in "${KS[@]}"; do PIPE_SETUPS+=("$(idx_of "slotd-$k")"); done
    PIPE_SETUPS+=("$(idx_of redis)")
    PIPE_FILE="$WORK/pipe.resp"
    log "generating $PIPE_N SET commands (RESP) in $PIPE_FILE"
    python3 - "$PIPE_N" "$PIPE_FILE" <<'EOF'
import os, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = os.urandom(32 * n)
with open(path, "wb", buffering=1 << 20) as f:
    for i in range(n):
        key = b"key:%012d" % i  # 16 bytes
        f.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$32\r\n" + rnd[32 * i:32 * i + 32] + b"\r\n")
EOF
    declare -A PIPE_SKIP=()
    PFWD="${PIPE_SETUPS[*]}"
    PREV="$(printf '%s\n' "${PIPE_SETUPS[@]}" | tac | tr '\n' ' ')"
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="$PFWD"; else order="$PREV"; fi
        for i in $order; do
            name="${S_NAME[$i]}" port="${S_PORT[$i]}" pid="${S_PID[$i]}"
            if [ -n "${PIPE_SKIP[$name]:-}" ]; then
                log "pipe round $r/$ROUNDS $name: skipped (an earlier run timed out)"
                continue
            fi
            kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is not running"
            for attempt in $(seq 0 "$NOISE_RETRIES"); do
                [ "$(timeout 120 redis-cli -p "$port" flushall 2>&1)" = OK ] || die "$name: FLUSHALL failed"
                [ "$(redis-cli -p "$port" dbsize)" = 0 ] || die "$name: DBSIZE not 0 after FLUSHALL"
                wait_quiet
                h0="$(host_busy_ns)" before="$(cpu_ns "$pid")" t0="$(date +%s%N)"
                rc=0
                out="$(
                    timeout "$PIPE_TIMEOUT" redis-cli -h 127.0.0.1 -p "$port" --pipe <"$PIPE_FILE" 2>&1
                    rc=$?
                    times >"$WORK/times"
                    exit "$rc"
                )" || rc=$?
                t1="$(date +%s%N)" after="$(cpu_ns "$pid")" h1="$(host_busy_ns)"
                [ "$rc" != 124 ] || break
                other="$(other_pct $((h1 - h0)) $((after - before)) "$(times_ns "$WORK/times")" $((t1 - t0)))"
                [ "$other" -gt "$NOISE_MAX" ] || break
                if [ "$attempt" -lt "$NOISE_RETRIES" ]; then
                    log "pipe $name: other processes used $other% of a CPU during the run; repeating it"
                    note_noise "repeated $name pipe - $other"
                else
                    log "WARNING: pipe $name: other processes used $other% of a CPU; kept after $NOISE_RETRIES repeats"
                    note_noise "kept $name pipe - $other"
                fi
            done
            if [ "$rc" = 124 ]; then
                log "pipe round $r/$ROUNDS $name: TIMEOUT after ${PIPE_TIMEOUT}s; skipping its remaining pipe runs"
                echo "$name $r timeout" >>"$PIPE_RAW"
                PIPE_SKIP[$name]=1
                continue
            fi
            [ "$rc" = 0 ] || {
                echo "$out" >&2
                die "$name: redis-cli --pipe failed (exit $rc)"
            }
            echo "$out" | tr -d '\r' | grep -q "^errors: 0, replies: $PIPE_N\$" || {
                echo "$out" >&2
                die "$name: redis-cli --pipe did not report errors: 0, replies: $PIPE_N"
            }
            dbsize="$(redis-cli -p "$port" dbsize)"
            [ "$dbsize" = "$PIPE_N" ] || die "$name: DBSIZE $dbsize after the pipe, expected $PIPE_N"
            res="$(awk -v a="$t0" -v b="$t1" -v c=$((after - before)) -v n="$PIPE_N" -v o="$other" \
                'BEGIN { printf "%.3f %.4f %s", (b - a) / 1e9, c / 1e3 / n, o }')"
            log "pipe round $r/$ROUNDS $name: seconds cpu_us/cmd = $res (DBSIZE $dbsize)"
            echo "$name $r $res" >>"$PIPE_RAW"
        done
    done
fi

# ---------------------------------------------------------------- report
UP() { echo "$1" | tr '[:lower:]' '[:upper:]'; }

DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/cores-$DATE.md"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
PIPE_DESC="$([ "$PIPE_N" -gt 0 ] && echo "$PIPE_N" || echo "skipped")"
{
    echo "# Cores and hops: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN\` (commit $SLOTD_COMMIT)"
    echo "- redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version 2>/dev/null | head -1))"
    echo "- all servers: \`--bind 127.0.0.1 --save \"\" --appendonly no\`, all running for the whole benchmark on ports $BASE_PORT-$((BASE_PORT + NS - 1))"
    echo "- pinned rows: every server thread pinned to CPU $SERVER_CPU (taskset on /proc/PID/task/*, checked), redis-benchmark pinned to CPU $CLIENT_CPU"
    us="not pinned by the script" uc="not pinned"
    [ -z "$UNPINNED_SERVER_CPUS" ] || us="started on CPUs $UNPINNED_SERVER_CPUS"
    [ -z "$UNPINNED_CLIENT_CPUS" ] || uc="on CPUs $UNPINNED_CLIENT_CPUS"
    echo "- unpinned rows: server $us (slotd pins shard i to the i-th CPU it may use when the shards are fewer than its CPUs, else not at all), redis-benchmark $uc"
    echo "- redis-benchmark: \`-c $CLIENTS -n $N -r $KEYSPACE -d $DATASIZE --csv${BENCH_THREADS:+ --threads $BENCH_THREADS}\`, $ROUNDS rounds (setup order reversed every other round), medians shown"
    echo "- host: $NCPU CPUs, ${CPU_MODEL:-unknown CPU}, $(uname -sr); other CPU (see below) over ${NOISE_MAX}%: $(grep -c '^repeated' "$WORK/noise" || true) run(s) repeated, $(grep -c '^kept' "$WORK/noise" || true) kept after $NOISE_RETRIES repeats; runs started with the host < $QUIET_IDLE% idle after a ${QUIET_WAIT}s wait: $(grep -c '^busy-start' "$WORK/noise" || true)"
    echo "- other CPU: host user+system time (/proc/stat) during a run minus the server's and the client's CPU time, in % of one CPU: CPU that other processes (or the kernel outside the two) used while it ran"
    echo "- CPU/op: server CPU time per request, µs: the sum of its threads' run time (/proc/PID/task/*/schedstat, ns) over the run, divided by requests"
    echo
    echo "## Summary"
    echo
    echo "| setup | SET -P 1 CPU µs/op | SET -P 16 CPU µs/op | SET -P 16 ops/s | GET -P 1 CPU µs/op | GET -P 16 CPU µs/op | GET -P 16 ops/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for i in $(seq 0 $((NS - 1))); do
        s="${S_NAME[$i]}"
        row="| $s |"
        for t in set get; do
            row+=" $(fmt "$(m "$s" "$t" 1 8)" %.3f) | $(fmt "$(m "$s" "$t" 16 8)" %.3f) | $(fmt "$(m "$s" "$t" 16 5)" %.0f) |"
        done
        echo "$row"
    done
    echo
    echo "## All setups"
    echo
    echo "| setup | test | -P | ops/s | p50 ms | p99 ms | CPU µs/op | CPU/op vs slotd-1-pinned |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for t in $TESTS; do
        for p in $PIPELINES; do
            base="$(m slotd-1-pinned "$t" "$p" 8)"
            for i in $(seq 0 $((NS - 1))); do
                s="${S_NAME[$i]}"
                c="$(m "$s" "$t" "$p" 8)"
                echo "| $s | $(UP "$t") | $p | $(fmt "$(m "$s" "$t" "$p" 5)" %.0f) | $(fmt "$(m "$s" "$t" "$p" 6)" %.3f) |" \
                    "$(fmt "$(m "$s" "$t" "$p" 7)" %.3f) | $(fmt "$c" %.3f) | $(ratio "$c" "$base") |"
            done
        done
    done
    echo
    echo "Server threads and their CPUs (name:CPUs) as started:"
    echo
    for i in $(seq 0 $((NS - 1))); do
        echo "- ${S_NAME[$i]}: ${AFFINITY[$i]}"
    done
    echo
    echo "## Bars"
    echo
    echo "| bar | -P | measured (medians) | limit | result | per round: range, rounds passing |"
    echo "|---|---:|---:|---:|---|---|"
    for t in set get; do
        T="$(UP "$t")"
        if has slotd-2-pinned; then
            for pl in "1 1.25" "16 1.75"; do
                read -r p lim <<<"$pl"
                rr="$(ratio "$(m slotd-2-pinned "$t" "$p" 8)" "$(m slotd-1-pinned "$t" "$p" 8)")"
                echo "| $T CPU/op, slotd-2-pinned / slotd-1-pinned | $p | $rr | <= $lim | $(verdict "$rr" "<=" "$lim") | $(per_round slotd-2-pinned slotd-1-pinned "$t" "$p" 8 "<=" "$lim") |"
            done
        fi
        if has slotd-2; then
            for pl in "1 0.9" "16 1.2"; do
                read -r p lim <<<"$pl"
                rr="$(ratio "$(m slotd-2 "$t" "$p" 5)" "$(m redis "$t" "$p" 5)")"
                echo "| $T ops/s, slotd-2 / redis (unpinned) | $p | $rr | >= $lim | $(verdict "$rr" ">=" "$lim") | $(per_round slotd-2 redis "$t" "$p" 5 ">=" "$lim") |"
                a="$(m slotd-2 "$t" "$p" 7)" b="$(m redis "$t" "$p" 7)"
                v="$(awk -v a="$a" -v b="$b" 'BEGIN { if (a == "nan" || b == "nan") print "n/a"; else print (a + 0 <= b + 0) ? "PASS" : "FAIL" }')"
                echo "| $T p99 ms, slotd-2 vs redis (unpinned) | $p | $(fmt "$a" %.3f) vs $(fmt "$b" %.3f) | <= redis | $v | $(per_round slotd-2 redis "$t" "$p" 7 "<=" 1) (p99 ratio) |"
            done
        fi
        for p in $PIPELINES; do
            ro="$(ratio "$(m slotd-1-pinned "$t" "$p" 5)" "$(m redis-pinned "$t" "$p" 5)")"
            rc="$(ratio "$(m slotd-1-pinned "$t" "$p" 8)" "$(m redis-pinned "$t" "$p" 8)")"
            echo "| $T per core: ops/s, slotd-1-pinned / redis-pinned | $p | $ro | >= $FOUNDATION_OPS_MIN | $(verdict "$ro" ">=" "$FOUNDATION_OPS_MIN") | $(per_round slotd-1-pinned redis-pinned "$t" "$p" 5 ">=" "$FOUNDATION_OPS_MIN") |"
            echo "| $T per core: CPU/op, slotd-1-pinned / redis-pinned | $p | $rc | <= $FOUNDATION_CPU_MAX | $(verdict "$rc" "<=" "$FOUNDATION_CPU_MAX") | $(per_round slotd-1-pinned redis-pinned "$t" "$p" 8 "<=" "$FOUNDATION_CPU_MAX") |"
        done
    done
    if [ "$PIPE_N" -gt 0 ] && has slotd-2; then
        if grep -q '^slotd-2 .* timeout$' "$PIPE_RAW"; then
            echo "| redis-cli --pipe of $PIPE_N SETs, slotd-2 / redis time | | timeout (> ${PIPE_TIMEOUT}s) | <= 1.5 | FAIL | |"
        else
            rr="$(ratio "$(med "$PIPE_RAW" 3 slotd-2)" "$(med "$PIPE_RAW" 3 redis)")"
            echo "| redis-cli --pipe of $PIPE_N SETs, slotd-2 / redis time | | $rr | <= 1.5 | $(verdict "$rr" "<=" 1.5) | $(PER_FILE="$PIPE_RAW" per_round slotd-2 redis - - 3 "<=" 1.5) |"
        fi
    fi
    echo
    echo "Per round: the ratio of the two setups' runs in the same round (run back to back), its range over the rounds and in how many rounds it meets the limit; the result column judges the ratio of the medians."
    echo
    echo "The per-core limits (FOUNDATION_OPS_MIN=$FOUNDATION_OPS_MIN, FOUNDATION_CPU_MAX=$FOUNDATION_CPU_MAX) are this script's reading of \"the per-core bars of the foundation\" (slotd on one core not slower and not costlier than redis-server on one core); the other bars are for 2 shards."
    echo
    echo "## Cost of one hop (model)"
    echo
    echo "From the pinned rows (same CPU budget): with K shards and uniformly random keys a fraction (K-1)/K of single-key commands run on another core, so one hop costs hop = (cpu_K - cpu_1) / ((K-1)/K) µs of server CPU. All shards share one CPU here, so this is the CPU work of a hop (message, queueing, wake-up, switching threads), not cross-core cache traffic or the latency of a wake-up on another CPU. MODEL, not a measurement: CPU/op on N cores = cpu_1 + hop × (N-1)/N; efficiency = cpu_1 / CPU/op; capacity = N / CPU/op if every core were busy with server work and keys were spread evenly."
    echo
    echo "| from K | test | -P | cpu_1 µs/op | cpu_K µs/op | hop µs |$(for n in $MODEL_CORES; do printf ' N=%s CPU µs/op (eff., Mops/s) |' "$n"; done)"
    echo "|---:|---|---:|---:|---:|---:|$(for _ in $MODEL_CORES; do printf -- '---:|'; done)"
    for k in "${KS[@]}"; do
        [ "$k" != 1 ] || continue
        for t in $TESTS; do
            for p in $PIPELINES; do
                c1="$(m slotd-1-pinned "$t" "$p" 8)" ck="$(m "slotd-$k-pinned" "$t" "$p" 8)"
                awk -v k="$k" -v t="$(UP "$t")" -v p="$p" -v c1="$c1" -v ck="$ck" -v ns="$MODEL_CORES" 'BEGIN {
                    if (c1 == "nan" || ck == "nan") { printf "| %s | %s | %s | n/a | n/a | n/a |\n", k, t, p; exit }
                    hop = (ck - c1) / ((k - 1) / k)
                    line = sprintf("| %s | %s | %s | %.3f | %.3f | %.3f |", k, t, p, c1, ck, hop)
                    n = split(ns, w, " ")
                    for (j = 1; j <= n; j++) {
                        c = c1 + hop * (w[j] - 1) / w[j]
                        line = line sprintf(" %.3f (%.2f, %.1f) |", c, c1 / c, w[j] / c)
                    }
                    print line }'
            done
        done
    done
    if [ "$PIPE_N" -gt 0 ]; then
        echo
        echo "## Mass insertion"
        echo
        echo "\`redis-cli --pipe\` of $PIPE_N \`SET key:<12 digits> <32 random bytes>\` (RESP, one file), FLUSHALL before each run; every run checked for \`errors: 0, replies: $PIPE_N\` and DBSIZE $PIPE_N; timeout ${PIPE_TIMEOUT}s; medians over $ROUNDS rounds (order reversed every other round)."
        echo
        echo "| setup | seconds | SETs/s | server CPU µs/SET | time vs redis |"
        echo "|---|---:|---:|---:|---:|"
        rt="$(med "$PIPE_RAW" 3 redis)"
        for i in "${PIPE_SETUPS[@]}"; do
            s="${S_NAME[$i]}"
            if grep -q "^$s .* timeout\$" "$PIPE_RAW"; then
                echo "| $s | timeout (> ${PIPE_TIMEOUT}s in $(grep -c "^$s .* timeout\$" "$PIPE_RAW") run(s)) | | | |"
                continue
            fi
            st="$(med "$PIPE_RAW" 3 "$s")"
            echo "| $s | $(fmt "$st" %.2f) | $(awk -v s="$st" -v n="$PIPE_N" 'BEGIN { if (s == "nan" || s == 0) print "n/a"; else printf "%.0f", n / s }') |" \
                "$(fmt "$(med "$PIPE_RAW" 4 "$s")" %.3f) | $(ratio "$st" "$rt") |"
        done
    fi
    echo
    echo "<details><summary>All runs</summary>"
    echo
    echo "| setup | test | -P | round | ops/s | p50 ms | p99 ms | CPU µs/op | other CPU % |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, toupper($2), $3, $4, $5, $6, $7, $8, $9 }' "$RAW"
    if [ "$PIPE_N" -gt 0 ]; then
        echo
        echo "| setup | pipe round | seconds | CPU µs/SET | other CPU % |"
        echo "|---|---:|---:|---:|---:|"
        awk '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$PIPE_RAW"
    fi
    echo
    echo "</details>"
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/cores-latest.md"
cat "$REPORT"
log "wrote $REPORT and $OUT_DIR/cores-latest.md (pipe file: ${PIPE_DESC} SETs)"
