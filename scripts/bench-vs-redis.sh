#!/usr/bin/env bash
# Load-test driver: slotd (--shards 1) vs stock redis-server, same settings.
#
#   scripts/bench-vs-redis.sh
#
# Both servers are pinned to CPU 0 (all threads), redis-benchmark to CPU 1.
# For SET and GET at -P 1 and -P 16 with 50 clients it alternates A/B runs
# for ROUNDS rounds and reports, per server, the median over rounds of:
# ops/s, p50/p99 latency (redis-benchmark --csv) and the server's CPU time
# per operation (its threads' run time from /proc/PID/task/*/schedstat,
# before/after each run),
# then the slotd/redis ratios. The markdown table goes to
# bench/results/vs-redis-<date>.md and bench/results/latest.md.
#
# Environment:
#   ROUNDS=3        rounds (A/B order alternates every round)
#   N=300000        requests per redis-benchmark run
#   CLIENTS=50      redis-benchmark -c
#   KEYSPACE=100000 redis-benchmark -r (random keys key:000000xxxxxx)
#   PIPELINES="1 16"  TESTS="set get"
#   SLOTD_BIN       slotd binary (default: build and use target/release/slotd;
#                   any Redis-compatible binary works, e.g. redis-server to
#                   validate this script: ratios should be ~1.0)
#   REDIS_BIN=redis-server  REDIS_PORT=7281  SLOTD_PORT=7282
#   OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
N="${N:-300000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
PIPELINES="${PIPELINES:-1 16}"
TESTS="${TESTS:-set get}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
REDIS_PORT="${REDIS_PORT:-7281}"
SLOTD_PORT="${SLOTD_PORT:-7282}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

for p in "$REDIS_PORT" "$SLOTD_PORT"; do
    if [ "$p" = 6379 ]; then
        echo "refusing to use port 6379" >&2
        exit 2
    fi
done

bench_init bench

for tool in redis-benchmark redis-cli taskset getconf; do
    command -v "$tool" >/dev/null || {
        echo "missing tool: $tool" >&2
        exit 1
    }
done
command -v "$REDIS_BIN" >/dev/null || [ -x "$REDIS_BIN" ] || {
    echo "missing $REDIS_BIN" >&2
    exit 1
}

slotd_binary

NCPU="$(getconf _NPROCESSORS_ONLN)"
if [ "$NCPU" -ge 2 ]; then
    SERVER_CPU=0
    CLIENT_CPU=1
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_CLIENT=(taskset -c "$CLIENT_CPU")
else
    log "WARNING: only $NCPU CPU; not pinning"
    PIN_SERVER=()
    PIN_CLIENT=()
fi

# start_server NAME BIN ARGS... ; sets STARTED_PID
start_server() {
    local name="$1" bin="$2"
    shift 2
    local port="$1"
    shift
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        echo "port $port is already in use" >&2
        exit 1
    fi
    local logf="$WORK/$name.log"
    log "start $name: ${PIN_SERVER[*]:-} $bin --port $port $*"
    "${PIN_SERVER[@]}" "$bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no "$@" \
        </dev/null >"$logf" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for _ in $(seq 1 100); do
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            echo "$name exited at start; log:" >&2
            cat "$logf" >&2
            exit 1
        fi
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            break
        fi
        sleep 0.1
    done
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" != PONG ]; then
        echo "$name did not answer PING on $port; log:" >&2
        cat "$logf" >&2
        exit 1
    fi
    # Pin every thread (io threads, bio threads, shard threads...) to be sure.
    if [ "${#PIN_SERVER[@]}" -gt 0 ]; then
        taskset -a -p -c "$SERVER_CPU" "$STARTED_PID" >/dev/null
    fi
}


SLOTD_ARGS=(--shards 1)
case "$(basename "$SLOTD_BIN")" in
redis-server*) SLOTD_ARGS=() ;; # validation mode
esac

start_server redis "$REDIS_BIN" "$REDIS_PORT"
REDIS_PID="$STARTED_PID"
start_server slotd "$SLOTD_BIN" "$SLOTD_PORT" "${SLOTD_ARGS[@]}"
SLOTD_PID="$STARTED_PID"

port_of() { if [ "$1" = redis ]; then echo "$REDIS_PORT"; else echo "$SLOTD_PORT"; fi; }
pid_of() { if [ "$1" = redis ]; then echo "$REDIS_PID"; else echo "$SLOTD_PID"; fi; }

RAW="$WORK/raw.tsv" # server test pipeline round rps p50 p99 cpu_us_per_op
: >"$RAW"

# run_one SERVER TEST PIPELINE REQUESTS -> prints "rps p50 p99 cpu_us"
run_one() {
    local srv="$1" t="$2" p="$3" n="$4"
    local port pid before after out line
    port="$(port_of "$srv")"
    pid="$(pid_of "$srv")"
    kill -0 "$pid" 2>/dev/null || {
        echo "$srv (pid $pid) is not running" >&2
        exit 1
    }
    before="$(cpu_ns "$pid")"
    if ! out="$(timeout 900 "${PIN_CLIENT[@]}" redis-benchmark -h 127.0.0.1 -p "$port" \
        -c "$CLIENTS" -n "$n" -P "$p" -r "$KEYSPACE" -t "$t" --csv </dev/null 2>&1)"; then
        echo "redis-benchmark failed against $srv ($t -P $p):" >&2
        echo "$out" >&2
        exit 1
    fi
    after="$(cpu_ns "$pid")"
    line="$(echo "$out" | tr -d '\r' | grep -i "^\"${t}\"," | tail -1 || true)"
    if [ -z "$line" ] || echo "$out" | grep -qi 'error'; then
        echo "unexpected redis-benchmark output against $srv ($t -P $p):" >&2
        echo "$out" >&2
        exit 1
    fi
    # "test","rps","avg","min","p50","p95","p99","max"
    echo "$line" | tr -d '"' | awk -F, -v d=$((after - before)) -v n="$n" \
        '{ printf "%s %s %s %.4f\n", $2, $5, $7, d / 1e3 / n }'
}

log "warm-up (N/10 per server)"
for srv in redis slotd; do
    for t in $TESTS; do
        run_one "$srv" "$t" 16 $((N / 10 > 1000 ? N / 10 : 1000)) >/dev/null
    done
done

for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="redis slotd"; else order="slotd redis"; fi
    for t in $TESTS; do
        for p in $PIPELINES; do
            for srv in $order; do
                res="$(run_one "$srv" "$t" "$p" "$N")"
                log "round $r/$ROUNDS $srv $t -P $p: ops/s p50 p99 cpu_us/op = $res"
                echo "$srv $t $p $r $res" >>"$RAW"
            done
        done
    done
done


DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/vs-redis-$DATE.md"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -qv '^??' && echo ' (dirty)' || true)"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
{
    echo "# slotd vs redis-server: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN ${SLOTD_ARGS[*]:-}\` (commit $COMMIT$DIRTY)"
    echo "- redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version 2>/dev/null | head -1))"
    echo "- both: \`--save \"\" --appendonly no\`, all threads pinned to CPU ${SERVER_CPU:-none}; redis-benchmark pinned to CPU ${CLIENT_CPU:-none}"
    echo "- redis-benchmark: \`-c $CLIENTS -n $N -r $KEYSPACE --csv\`, $ROUNDS rounds (A/B order alternating), medians shown"
    echo "- host: $NCPU CPUs, ${CPU_MODEL:-unknown CPU}, $(uname -sr)"
    echo "- CPU/op: server CPU time per request, in µs: the sum of its threads' run time (/proc/PID/task/*/schedstat, ns)"
    echo
    echo "| test | -P | redis ops/s | slotd ops/s | slotd/redis ops | redis p50 ms | slotd p50 ms | redis p99 ms | slotd p99 ms | redis CPU µs/op | slotd CPU µs/op | slotd/redis CPU/op |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in $TESTS; do
        for p in $PIPELINES; do
            rr="$(median redis "$t" "$p" 5)"
            sr="$(median slotd "$t" "$p" 5)"
            r50="$(median redis "$t" "$p" 6)"
            s50="$(median slotd "$t" "$p" 6)"
            r99="$(median redis "$t" "$p" 7)"
            s99="$(median slotd "$t" "$p" 7)"
            rc="$(median redis "$t" "$p" 8)"
            sc="$(median slotd "$t" "$p" 8)"
            T="$(echo "$t" | tr '[:lower:]' '[:upper:]')"
            echo "| $T | $p | $(fmt "$rr" %.0f) | $(fmt "$sr" %.0f) | $(ratio "$sr" "$rr") |" \
                "$(fmt "$r50" %.3f) | $(fmt "$s50" %.3f) | $(fmt "$r99" %.3f) | $(fmt "$s99" %.3f) |" \
                "$(fmt "$rc" %.3f) | $(fmt "$sc" %.3f) | $(ratio "$sc" "$rc") |"
        done
    done
    echo
    echo "<details><summary>All runs</summary>"
    echo
    echo "| server | test | -P | round | ops/s | p50 ms | p99 ms | CPU µs/op |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, toupper($2), $3, $4, $5, $6, $7, $8 }' "$RAW"
    echo
    echo "</details>"
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/latest.md"
cat "$REPORT"
log "wrote $REPORT and $OUT_DIR/latest.md"
