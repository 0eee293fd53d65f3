#!/usr/bin/env bash
# Multi-key commands whose keys live on several cores: MSET and MGET of 10
# random keys (redis-benchmark's `-t mset`, and `MGET key:__rand_int__` x10),
# on redis-server and on slotd with SHARDS shards (and, with OLD_BIN, an
# older slotd binary for a before/after in the same run), all unpinned.
# Each setup is started fresh per round, loaded with N SETs, then measured:
# ops/s, p99 (redis-benchmark --csv) and the server's CPU µs per operation
# (its threads' run time, /proc/PID/task/*/schedstat). Medians over ROUNDS
# rounds, the setup order reversed every other round.
# The markdown goes to bench/results/multikey-<date>.md and
# bench/results/multikey-latest.md.
#
#   scripts/bench-multikey.sh
#   OLD_BIN=/tmp/slotd-old ROUNDS=3 scripts/bench-multikey.sh
#
# Environment: ROUNDS=3 N=40000 CLIENTS=50 KEYSPACE=100000 SHARDS=2
#   SLOTD_BIN OLD_BIN REDIS_BIN=redis-server PORT=7421 OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
N="${N:-40000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
SHARDS="${SHARDS:-2}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
PORT="${PORT:-7421}"
OUT_DIR="${OUT_DIR:-bench/results}"
OLD_BIN="${OLD_BIN:-}"

bench_init multikey
slotd_binary
for tool in redis-benchmark redis-cli "$REDIS_BIN"; do
    command -v "$tool" >/dev/null || die "missing: $tool"
done

SETUPS=(redis "slotd-$SHARDS")
[ -n "$OLD_BIN" ] && SETUPS+=("slotd-$SHARDS-old")
KEYS10=()
for _ in $(seq 1 10); do KEYS10+=("key:__rand_int__"); done
RAW="$WORK/raw.tsv" # setup test pipeline round rps p99 cpu_us
: >"$RAW"

# start SETUP: starts it on PORT, fresh (in $WORK: no data file to load),
# and waits for PONG; sets SPID.
start() {
    case "$1" in
    redis) "$REDIS_BIN" --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/$1.log" 2>&1 & ;;
    *-old) "$OLD_BIN" --port "$PORT" --bind 127.0.0.1 --shards "$SHARDS" --save "" --dir "$WORK" >"$WORK/$1.log" 2>&1 & ;;
    *) "$SLOTD_BIN" --port "$PORT" --bind 127.0.0.1 --shards "$SHARDS" --save "" --dir "$WORK" >"$WORK/$1.log" 2>&1 & ;;
    esac
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 1 100); do
        # (redis-cli exits 0 on an error reply such as -LOADING.)
        [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    die "$1 did not start"
}

# measure SETUP TEST ROUND ARGS...: one redis-benchmark run, recorded.
measure() {
    local setup="$1" test="$2" round="$3" before after line
    shift 3
    before="$(cpu_ns "$SPID")"
    line="$(redis-benchmark -p "$PORT" -c "$CLIENTS" -n "$N" -r "$KEYSPACE" -d 64 --csv "$@" | tail -1)"
    after="$(cpu_ns "$SPID")"
    # "name","rps","avg","min","p50","p95","p99","max"
    awk -F'"' -v s="$setup" -v t="$test" -v r="$round" -v cpu=$((after - before)) -v n="$N" \
        '{ printf "%s %s 1 %s %s %s %.3f\n", s, t, r, $4, $14, cpu / 1000 / n }' <<<"$line" >>"$RAW"
    log "round $round $setup $test: $(tail -1 "$RAW" | cut -d' ' -f5-)"
}

for r in $(seq 1 "$ROUNDS"); do
    order=("${SETUPS[@]}")
    if [ $((r % 2)) -eq 0 ]; then
        order=()
        for ((i = ${#SETUPS[@]} - 1; i >= 0; i--)); do order+=("${SETUPS[$i]}"); done
    fi
    for s in "${order[@]}"; do
        start "$s"
        redis-benchmark -p "$PORT" -c "$CLIENTS" -n "$N" -r "$KEYSPACE" -d 64 -q -t set >/dev/null
        measure "$s" mset "$r" -t mset
        measure "$s" mget "$r" MGET "${KEYS10[@]}"
        stop_pid "$SPID"
    done
done

STAMP="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/multikey-$STAMP.md"
{
    echo "# Multi-key commands across cores: $STAMP"
    echo
    echo "- slotd: \`$SLOTD_BIN --shards $SHARDS\` (commit $SLOTD_COMMIT)${OLD_BIN:+; slotd-$SHARDS-old: \`$OLD_BIN --shards $SHARDS\`}"
    echo "- redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version | head -1))"
    echo "- every server fresh per round, unpinned, \`--save \"\"\`; $N SETs first, then redis-benchmark \`-c $CLIENTS -n $N -r $KEYSPACE -d 64\` for \`-t mset\` (MSET of 10 keys) and \`MGET\` of 10 \`key:__rand_int__\`; $ROUNDS rounds, medians"
    echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- CPU/op: server CPU time per request, µs (its threads' run time from /proc/PID/task/*/schedstat)"
    echo
    echo "| setup | MSET ops/s | MSET p99 ms | MSET CPU µs/op | MGET ops/s | MGET p99 ms | MGET CPU µs/op | MSET ops vs redis | MGET ops vs redis |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in "${SETUPS[@]}"; do
        row="| $s |"
        for t in mset mget; do
            row+=" $(fmt "$(median "$s" "$t" 1 5)" %.0f) | $(fmt "$(median "$s" "$t" 1 6)" %.3f) | $(fmt "$(median "$s" "$t" 1 7)" %.1f) |"
        done
        for t in mset mget; do
            row+=" $(ratio "$(median "$s" "$t" 1 5)" "$(median redis "$t" 1 5)") |"
        done
        echo "$row"
    done
    echo
    echo "<details><summary>All runs (setup test -P round ops/s p99 cpu_us)</summary>"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
    echo "</details>"
} >"$OUT"
cp "$OUT" "$OUT_DIR/multikey-latest.md"
log "wrote $OUT and $OUT_DIR/multikey-latest.md"
