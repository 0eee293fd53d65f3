#!/usr/bin/env bash
# slotd with a generated tuning profile vs slotd with the default placement.
#
#   scripts/bench-tuning.sh
#
# Default placement: shard core 0 on the first CPU the process may use,
# redis-benchmark on the last CPU. Profile placement: `slotd-tune plan`
# writes a profile for this host; slotd pins its shard cores as it says and
# redis-benchmark runs on the profile's housekeeping (bus) CPU, away from
# the shard cores. Alternates A/B runs for ROUNDS rounds and prints ops/s
# and server CPU time per operation (threads' run time from schedstat) for
# SET and GET at -P 1 and -P 16, and writes bench/results/tuning-latest.md.
#
# Environment: ROUNDS=3 N=200000 CLIENTS=50 PORT=7291 OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
PORT="${PORT:-7291}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/slotd-tuning.XXXXXX")"
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -q -p node -p tuning
SLOTD="$ROOT/target/release/slotd"
TUNE="$ROOT/target/release/slotd-tune"
"$TUNE" plan --shards 1 --out "$WORK/profile.toml" >/dev/null
PROFILE_BUS_CPU=$(awk '/^\[bus\]/{b=1} b && /^cpu =/{print $3; exit}' "$WORK/profile.toml")
LAST_CPU=$(($(nproc) - 1))

start() { # args: extra slotd args...
    "$SLOTD" --port "$PORT" --bind 127.0.0.1 --shards 1 --save "" --appendonly no "$@" >"$WORK/slotd.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.05
    done
    echo "slotd did not start" >&2
    cat "$WORK/slotd.log" >&2
    exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
# CPU time of slotd in ns: its threads' run time (as bench-vs-redis.sh).
cpu_ns() {
    local total=0 f t
    for f in /proc/"$PID"/task/*/schedstat; do
        read -r t _ <"$f" 2>/dev/null || continue
        total=$((total + t))
    done
    echo "$total"
}

run() { # placement test pipeline client_cpu
    local t0 t1 out rps
    t0=$(cpu_ns)
    out=$(taskset -c "$4" redis-benchmark -p "$PORT" -c "$CLIENTS" -n "$N" -P "$3" -r 100000 -t "$2" --csv 2>/dev/null | tail -1)
    t1=$(cpu_ns)
    rps=$(echo "$out" | cut -d, -f2 | tr -d '"')
    echo "$1 $2 $3 $rps $(echo "scale=4; ($t1 - $t0) / 1000 / $N" | bc)" >>"$WORK/runs"
}

for round in $(seq 1 "$ROUNDS"); do
    order="default profile"
    [ $((round % 2)) -eq 0 ] && order="profile default"
    for placement in $order; do
        if [ "$placement" = default ]; then
            start
            client=$LAST_CPU
        else
            start --tuning-profile "$WORK/profile.toml"
            client=$PROFILE_BUS_CPU
        fi
        for p in 1 16; do
            for t in set get; do run "$placement" "$t" "$p" "$client"; done
        done
        stop
    done
done

mkdir -p "$OUT_DIR"
{
    echo "# slotd: tuning profile vs default placement ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Medians over $ROUNDS alternating rounds; $CLIENTS clients, $N requests per run, 100000 random keys."
    echo "Profile: \`slotd-tune plan --shards 1\` on this host (shard CPU $(awk '/^\[\[shards\]\]/{s=1} s && /^cpu =/{print $3; exit}' "$WORK/profile.toml"), client on bus CPU $PROFILE_BUS_CPU); default: shard on the first allowed CPU, client on CPU $LAST_CPU."
    echo
    echo "| test | -P | default ops/s | profile ops/s | ratio | default CPU µs/op | profile CPU µs/op |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in set get; do
        for p in 1 16; do
            med() { grep "^$1 $t $p " "$WORK/runs" | awk -v c="$2" '{print $c}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
            d=$(med default 4)
            q=$(med profile 4)
            echo "| ${t^^} | $p | $d | $q | $(echo "scale=2; $q / $d" | bc) | $(med default 5) | $(med profile 5) |"
        done
    done
} | tee "$OUT_DIR/tuning-latest.md"
