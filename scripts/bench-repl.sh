#!/usr/bin/env bash
# Replication: full-sync time and replica catch-up rate, slotd vs
# redis-server, measured in the same run.
#
#   scripts/bench-repl.sh
#
# Three pairs, master -> replica: slotd -> redis-server, redis-server ->
# redis-server, redis-server -> slotd. For each:
#   1. the master gets KEYS keys (16 B names, 32 B values) through
#      `redis-cli --pipe`;
#   2. full sync: a fresh replica starts with --replicaof; the time from its
#      start to `master_link_status:up` with every key loaded;
#   3. catch-up: `redis-benchmark -t set -n OPS -r KEYS -d 32 -P 16 -c 50`
#      on the master; the time from its start until the replica's
#      `slave_repl_offset` reaches the master's offset, and the rate
#      (OPS / that time) beside the master's own benchmark time.
# Masters run with `repl-diskless-sync-delay 0` (redis-server would wait
# 5 s for more replicas); slotd runs with its default cores; the master is pinned to MASTER_CPU,
# the replica to REPLICA_CPU, the loaders unpinned. The markdown goes to
# bench/results/repl-<date>.md and bench/results/repl-latest.md.
#
# Environment: KEYS=1000000 OPS=1000000 MASTER_CPU=1 REPLICA_CPU=0 BASE_PORT=7680
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_init repl

KEYS="${KEYS:-1000000}"
OPS="${OPS:-1000000}"
MASTER_CPU="${MASTER_CPU:-1}"
REPLICA_CPU="${REPLICA_CPU:-0}"
BASE_PORT="${BASE_PORT:-7680}"
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || die "redis-server not found"
slotd_binary

# start KIND PORT CPU ARGS...: echoes the pid.
start() {
    local kind="$1" port="$2" cpu="$3" dir="$WORK/$1-$2" bin="$REDIS"
    shift 3
    mkdir -p "$dir"
    [ "$kind" = slotd ] && bin="$SLOTD_BIN"
    redis-cli -p "$port" ping >/dev/null 2>&1 && die "port $port is in use"
    taskset -c "$cpu" "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save "" --appendonly no "$@" </dev/null >"$dir/log" 2>&1 &
    echo $!
}

up() {
    for _ in $(seq 1 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    die "port $1 did not answer"
}

field() { redis-cli -p "$1" info replication | tr -d '\r' | sed -n "s/^$2://p"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

PIPE_FILE="$WORK/load.resp"
log "writing $KEYS SET commands"
awk -v n="$KEYS" 'BEGIN {
    v = sprintf("%032d", 7);
    for (i = 0; i < n; i++) {
        k = sprintf("key:%012d", i);
        printf "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n", k, v;
    }
}' >"$PIPE_FILE"

declare -A SYNC RATE BENCH FULL
for pair in slotd:redis redis:redis redis:slotd; do
    mk="${pair%%:*}" rk="${pair#*:}"
    mport=$BASE_PORT rport=$((BASE_PORT + 1))
    BASE_PORT=$((BASE_PORT + 2))
    # redis-server would wait 5 s for more replicas before a diskless sync.
    m="$(start "$mk" "$mport" "$MASTER_CPU" --repl-diskless-sync-delay 0)"
    PIDS+=("$m")
    up "$mport"
    redis-cli -p "$mport" --pipe <"$PIPE_FILE" >/dev/null
    [ "$(redis-cli -p "$mport" dbsize)" = "$KEYS" ] || die "$pair: the master does not hold $KEYS keys"
    t0="$(now_ms)"
    r="$(start "$rk" "$rport" "$REPLICA_CPU" --replicaof 127.0.0.1 "$mport")"
    PIDS+=("$r")
    up "$rport"
    for _ in $(seq 1 6000); do
        [ "$(field "$rport" master_link_status)" = up ] && [ "$(redis-cli -p "$rport" dbsize)" = "$KEYS" ] && break
        sleep 0.01
    done
    t1="$(now_ms)"
    [ "$(redis-cli -p "$rport" dbsize)" = "$KEYS" ] || die "$pair: the replica did not load $KEYS keys"
    SYNC[$pair]=$((t1 - t0))
    t0="$(now_ms)"
    redis-benchmark -h 127.0.0.1 -p "$mport" -t set -n "$OPS" -r "$KEYS" -d 32 -P 16 -c 50 -q >/dev/null
    tb="$(now_ms)"
    want="$(field "$mport" master_repl_offset)"
    for _ in $(seq 1 60000); do
        [ "$(field "$rport" slave_repl_offset)" -ge "$want" ] && break
        sleep 0.01
    done
    t1="$(now_ms)"
    [ "$(field "$rport" slave_repl_offset)" -ge "$want" ] || die "$pair: the replica did not catch up"
    BENCH[$pair]=$((tb - t0))
    FULL[$pair]="$(redis-cli -p "$mport" info stats | tr -d '\r' | sed -n 's/^sync_full://p')"
    RATE[$pair]=$(awk -v n="$OPS" -v ms=$((t1 - t0)) 'BEGIN{printf "%.0f", n / (ms / 1000)}')
    log "$pair: full sync ${SYNC[$pair]} ms, master benchmark ${BENCH[$pair]} ms, replica caught up at ${RATE[$pair]} writes/s"
    stop_pid "$r"
    stop_pid "$m"
done

DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/repl-$DATE.md"
{
    echo "# Replication: full sync and catch-up, slotd vs redis-server"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`scripts/bench-repl.sh\` (KEYS=$KEYS of 16 B + 32 B, OPS=$OPS SETs at -P 16 -c 50),"
    echo "master pinned to CPU $MASTER_CPU, replica to CPU $REPLICA_CPU; $(nproc) CPUs, $(uname -r); slotd with its default cores, $SLOTD_COMMIT."
    echo "Full sync: from the replica's start to its link up with every key loaded. Catch-up: from the start of the"
    echo "master's benchmark until the replica's offset reaches the master's, as writes per second."
    echo
    echo "| master -> replica | full sync ms | master benchmark ms | replica caught up, writes/s | master's sync_full |"
    echo "|---|---:|---:|---:|---:|"
    for pair in slotd:redis redis:redis redis:slotd; do
        printf '| %s -> %s | %s | %s | %s | %s |\n' "${pair%%:*}" "${pair#*:}" "${SYNC[$pair]}" "${BENCH[$pair]}" "${RATE[$pair]}" "${FULL[$pair]}"
    done
} >"$OUT"
cp "$OUT" "$ROOT/bench/results/repl-latest.md"
cat "$OUT"
