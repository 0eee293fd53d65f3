#!/usr/bin/env bash
# Scripts and streams, slotd vs stock redis-server, side by side in one run:
#
#   scripts/bench-scripting.sh
#
# Servers: redis-server, slotd --shards 1 and slotd --shards 2, each with
# every thread pinned to SERVER_CPU (the per-core benchmark's pinning: the
# same CPU budget for 1 and 2 shards), redis-benchmark pinned to
# CLIENT_CPU. Tests (redis-benchmark with a custom command, 50 clients):
#   evalsha     EVALSHA of a rate limiter touching one random key
#               (INCR, and EXPIRE on the first hit), -r KEYSPACE
#   xadd        XADD bench:stream * field value   (one stream)
#   xreadgroup  XREADGROUP GROUP g c COUNT 1 STREAMS bench:stream >
#               (a group created at 0 on what xadd added: each read takes
#               one new entry)
# A test a server does not have (e.g. streams before they exist) is
# reported as "n/a". For each, per server, the median over ROUNDS of
# ops/s and the server's CPU time per operation (its threads' run time,
# /proc/PID/task/*/schedstat), and slotd/redis ratios. The markdown goes
# to bench/results/scripting-<date>.md and scripting-latest.md.
#
# Environment:
#   ROUNDS=3  N=200000  CLIENTS=50  KEYSPACE=100000  PIPELINES="1 16"
#   TESTS="evalsha xadd xreadgroup"  SHARDS="1 2"
#   SERVER_CPU=1 CLIENT_CPU=0  REDIS_BIN=redis-server  BASE_PORT=7291
#   SLOTD_BIN (default: build target/release/slotd)  OUT_DIR=bench/results
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
TESTS="${TESTS:-evalsha xadd xreadgroup}"
SHARDS="${SHARDS:-1 2}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7291}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

bench_init scripting
for tool in redis-benchmark redis-cli taskset; do
    command -v "$tool" >/dev/null || {
        echo "missing tool: $tool" >&2
        exit 1
    }
done
slotd_binary

LIMITER='local n = redis.call("incr", KEYS[1]) if n == 1 then redis.call("expire", KEYS[1], ARGV[1]) end return n'

# Servers: name, port, pid.
NAMES=(redis)
for k in $SHARDS; do NAMES+=("slotd-$k"); done
declare -A PORT PID
port=$BASE_PORT
for name in "${NAMES[@]}"; do
    [ "$port" = 6379 ] && port=$((port + 1))
    PORT[$name]=$port
    port=$((port + 1))
done

start() {
    local name="$1" bin args
    if [ "$name" = redis ]; then
        bin="$REDIS_BIN"
        args=()
    else
        bin="$SLOTD_BIN"
        args=(--shards "${name#slotd-}")
    fi
    local p="${PORT[$name]}"
    taskset -c "$SERVER_CPU" "$bin" --port "$p" --bind 127.0.0.1 --save "" --appendonly no "${args[@]}" \
        </dev/null >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("${PID[$name]}")
    for _ in $(seq 1 100); do
        [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] || {
        echo "$name did not start:" >&2
        cat "$WORK/$name.log" >&2
        exit 1
    }
    taskset -a -p -c "$SERVER_CPU" "${PID[$name]}" >/dev/null
}

for name in "${NAMES[@]}"; do start "$name"; done

SHA="$(redis-cli -p "${PORT[redis]}" script load "$LIMITER")"

# has SERVER TEST: whether the server has the test's commands.
has() {
    local p="${PORT[$1]}"
    case "$2" in
    evalsha) true ;;
    *) ! redis-cli -p "$p" xlen bench:probe 2>&1 | grep -qi 'unknown command' ;;
    esac
}

# prepare SERVER TEST: state the test needs (run before each measured run).
prepare() {
    local p="${PORT[$1]}"
    case "$2" in
    evalsha) redis-cli -p "$p" script load "$LIMITER" >/dev/null ;;
    xadd) redis-cli -p "$p" del bench:stream >/dev/null ;;
    xreadgroup)
        redis-cli -p "$p" xgroup destroy bench:stream g >/dev/null 2>&1 || true
        redis-cli -p "$p" xgroup create bench:stream g 0 mkstream >/dev/null
        ;;
    esac
}

command_of() {
    case "$1" in
    evalsha) echo "evalsha $SHA 1 rate:__rand_int__ 60" ;;
    xadd) echo "xadd bench:stream * field value" ;;
    xreadgroup) echo "xreadgroup group g c count 1 streams bench:stream >" ;;
    esac
}

RAW="$WORK/raw.tsv" # server test pipeline round rps cpu_us_per_op
: >"$RAW"

run_one() {
    local srv="$1" t="$2" pl="$3" n="$4" p pid before after out rps
    p="${PORT[$srv]}"
    pid="${PID[$srv]}"
    prepare "$srv" "$t"
    # Split into words without globbing (XADD's `*`).
    local cmd
    read -ra cmd <<<"$(command_of "$t")"
    before="$(cpu_ns "$pid")"
    out="$(timeout 600 taskset -c "$CLIENT_CPU" redis-benchmark -p "$p" -c "$CLIENTS" -n "$n" \
        -P "$pl" -r "$KEYSPACE" --csv "${cmd[@]}" </dev/null 2>&1)" || {
        echo "redis-benchmark failed against $srv ($t):" >&2
        echo "$out" >&2
        exit 1
    }
    after="$(cpu_ns "$pid")"
    if echo "$out" | grep -qi 'error'; then
        echo "errors from $srv ($t): $out" >&2
        exit 1
    fi
    rps="$(echo "$out" | tr -d '\r"' | awk -F, 'NR > 1 && $2 ~ /^[0-9.]+$/ { r = $2 } END { print r }')"
    awk -v r="$rps" -v d=$((after - before)) -v n="$n" 'BEGIN { printf "%s %.4f\n", r, d / 1e3 / n }'
}

log "warm-up"
for srv in "${NAMES[@]}"; do
    for t in $TESTS; do
        has "$srv" "$t" && run_one "$srv" "$t" 16 20000 >/dev/null
    done
done

for r in $(seq 1 "$ROUNDS"); do
    order=("${NAMES[@]}")
    [ $((r % 2)) -eq 0 ] && order=($(printf '%s\n' "${NAMES[@]}" | tac))
    for t in $TESTS; do
        for pl in $PIPELINES; do
            for srv in "${order[@]}"; do
                has "$srv" "$t" || continue
                # xreadgroup reads what the xadd run of this round added.
                [ "$t" = xreadgroup ] && run_one "$srv" xadd "$pl" "$N" >/dev/null
                res="$(run_one "$srv" "$t" "$pl" "$N")"
                log "round $r $srv $t -P $pl: ops/s cpu_us/op = $res"
                echo "$srv $t $pl $r $res" >>"$RAW"
            done
        done
    done
done


DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/scripting-$DATE.md"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
    echo "# Scripts and streams, slotd vs redis-server: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN --shards K\` (commit $COMMIT); redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version | head -1))"
    echo "- every server thread pinned to CPU $SERVER_CPU (so --shards 2 has the CPU budget of 1), redis-benchmark on CPU $CLIENT_CPU"
    echo "- redis-benchmark \`-c $CLIENTS -n $N -r $KEYSPACE --csv <command>\`, $ROUNDS rounds, medians"
    echo "- evalsha: \`$(command_of evalsha | sed "s/$SHA/<sha>/")\`, the script: \`$LIMITER\`"
    echo "- xadd: \`$(command_of xadd)\`; xreadgroup: \`$(command_of xreadgroup)\` after an xadd run of the same size"
    echo "- CPU/op: server CPU time per request (all its threads, /proc/PID/task/*/schedstat), µs"
    echo
    echo "| test | -P | server | ops/s | CPU µs/op | ops vs redis | CPU/op vs redis |"
    echo "|---|---:|---|---:|---:|---:|---:|"
    for t in $TESTS; do
        for pl in $PIPELINES; do
            rr="$(median redis "$t" "$pl" 5)"
            rc="$(median redis "$t" "$pl" 6)"
            for srv in "${NAMES[@]}"; do
                sr="$(median "$srv" "$t" "$pl" 5)"
                sc="$(median "$srv" "$t" "$pl" 6)"
                echo "| $t | $pl | $srv | $(fmt "$sr" %.0f) | $(fmt "$sc" %.3f) | $(ratio "$sr" "$rr") | $(ratio "$sc" "$rc") |"
            done
        done
    done
    echo
    echo "<details><summary>All runs</summary>"
    echo
    echo "| server | test | -P | round | ops/s | CPU µs/op |"
    echo "|---|---|---:|---:|---:|---:|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$RAW"
    echo
    echo "</details>"
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/scripting-latest.md"
cat "$REPORT"
log "wrote $REPORT"
