#!/usr/bin/env bash
# Does `shard-port-base` pay? A 3-master slotd cluster without it, the same
# with it, and a 3-master redis-server cluster for reference, side by side
# in one run, driven by a client that routes by CLUSTER SLOTS (the `redis`
# crate's ClusterClient: bench/src/bin/cluster-client.rs; redis-benchmark
# --cluster routes by CLUSTER NODES and would never use the core ports).
#
#   scripts/bench-shard-ports.sh
#
# Every server thread is pinned to SERVER_CPU, the client to CLIENT_CPU;
# slotd runs `--shards SHARDS` per node. For SET and GET (THREADS
# connections, one command at a time each, N commands on KEYSPACE random
# keys, DATASIZE-byte values) each cluster is measured once per round,
# ROUNDS rounds, the order rotated every round. Reported per cluster: the
# median ops/s and server CPU time per operation (all threads of its three
# processes, /proc/PID/task/*/schedstat before and after), and the ratios
# with the ports on against off and against redis-server.
# The markdown goes to bench/results/shard-ports-<date>.md and
# bench/results/shard-ports-latest.md.
#
# Environment:
#   SERVER_CPU=1 CLIENT_CPU=0  ROUNDS=3  N=100000  THREADS=16
#   KEYSPACE=100000  DATASIZE=64  TESTS="set get"  SHARDS=2
#   BASE_PORT=7800 (off 7800-7802, on 7810-7812 with core ports
#   7850.., redis 7820-7822; bus ports +10000)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_init shard-ports

SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
ROUNDS="${ROUNDS:-3}"
N="${N:-100000}"
THREADS="${THREADS:-16}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-64}"
TESTS="${TESTS:-set get}"
SHARDS="${SHARDS:-2}"
BASE_PORT="${BASE_PORT:-7800}"
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || die "redis-server not found"

cd "$ROOT"
slotd_binary
log "cargo build --release -p bench --bin cluster-client"
cargo build --release -p bench --bin cluster-client </dev/null
CLIENT="$ROOT/target/release/cluster-client"

KINDS="off on redis"
base_of() { # kind -> first client port
    case "$1" in
        off) echo "$BASE_PORT" ;;
        on) echo $((BASE_PORT + 10)) ;;
        redis) echo $((BASE_PORT + 20)) ;;
    esac
}

# start_node KIND INDEX: one cluster node pinned to SERVER_CPU; echoes its pid.
start_node() {
    local kind="$1" i="$2" port dir bin extra=()
    port=$(($(base_of "$kind") + i))
    dir="$WORK/$kind-$port"
    mkdir -p "$dir"
    bin="$SLOTD_BIN"
    case "$kind" in
        off) extra=(--shards "$SHARDS") ;;
        on) extra=(--shards "$SHARDS" --shard-port-base $((BASE_PORT + 50 + i * SHARDS))) ;;
        redis) bin="$REDIS" ;;
    esac
    taskset -c "$SERVER_CPU" "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save "" --appendonly no --cluster-enabled yes --cluster-node-timeout 5000 \
        "${extra[@]}" </dev/null >"$dir/log" 2>&1 &
    echo $!
}

declare -A PIDS_OF
for kind in $KINDS; do
    base=$(base_of "$kind")
    pids=() ports=()
    for i in 0 1 2; do
        redis-cli -p $((base + i)) ping >/dev/null 2>&1 && die "port $((base + i)) is in use"
        pid="$(start_node "$kind" "$i")"
        PIDS+=("$pid")
        pids+=("$pid")
        ports+=($((base + i)))
    done
    cluster_create "${ports[@]}"
    PIDS_OF[$kind]="${pids[*]}"
    log "$kind cluster up on ports ${ports[*]}"
done
# With the ports on, every node names one run of slots per core of each
# master (3 x SHARDS entries); off, one per master.
want=$((3 * SHARDS))
for _ in $(seq 1 100); do
    got=0
    for i in 0 1 2; do
        n="$(redis-cli -p $(($(base_of on) + i)) cluster slots | grep -c '^127.0.0.1$' || true)"
        [ "$n" = "$want" ] && got=$((got + 1))
    done
    [ "$got" = 3 ] && break
    sleep 0.2
done
[ "$got" = 3 ] || die "the core ports never showed in CLUSTER SLOTS"

cluster_cpu() { # kind -> ns of all its servers
    local total=0 pid
    for pid in ${PIDS_OF[$1]}; do
        total=$((total + $(cpu_ns "$pid")))
    done
    echo "$total"
}

RAW="$WORK/raw"
: >"$RAW"
for r in $(seq 1 "$ROUNDS"); do
    # Rotate the order: off on redis, on redis off, redis off on, ...
    order="$(echo $KINDS $KINDS | cut -d' ' -f$(((r - 1) % 3 + 1))-$(((r - 1) % 3 + 3)))"
    for t in $TESTS; do
        for kind in $order; do
            before="$(cluster_cpu "$kind")"
            read -r ops _ < <(taskset -c "$CLIENT_CPU" timeout 600 "$CLIENT" \
                "127.0.0.1:$(base_of "$kind")" "$t" "$THREADS" "$N" "$KEYSPACE" "$DATASIZE")
            after="$(cluster_cpu "$kind")"
            cpu="$(awk -v c=$((after - before)) -v n="$N" 'BEGIN{printf "%.3f", c/n/1000}')"
            log "round $r $kind $t: $ops ops/s, $cpu us/op"
            echo "$kind $t 1 $ops $cpu" >>"$RAW"
        done
    done
done

DATE="$(date -u +%Y-%m-%d_%H%M%S)"
OUT="$ROOT/bench/results/shard-ports-$DATE.md"
{
    echo "# shard-port-base: a client routing by CLUSTER SLOTS, with and without per-core ports"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), slotd $SLOTD_COMMIT, redis-server $("$REDIS" --version | awk '{print $3}' | cut -d= -f2)."
    echo "\`scripts/bench-shard-ports.sh\` (ROUNDS=$ROUNDS N=$N THREADS=$THREADS KEYSPACE=$KEYSPACE DATASIZE=$DATASIZE SHARDS=$SHARDS):"
    echo "three 3-master clusters (slotd without the directive, slotd with it, redis-server), every server thread on CPU $SERVER_CPU,"
    echo "the client (bench/src/bin/cluster-client.rs, the redis crate's ClusterClient, $THREADS connections, one command at a time each) on CPU $CLIENT_CPU;"
    echo "$(nproc) CPUs, $(uname -r). Medians over rounds; CPU is all threads of a cluster's three processes."
    echo
    echo "| test | off ops/s | on ops/s | redis ops/s | off CPU µs/op | on CPU µs/op | redis CPU µs/op | on/off CPU | on/redis CPU | on/off ops |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in $TESTS; do
        oo="$(median off "$t" 1 4)" no="$(median on "$t" 1 4)" ro="$(median redis "$t" 1 4)"
        oc="$(median off "$t" 1 5)" nc="$(median on "$t" 1 5)" rc="$(median redis "$t" 1 5)"
        echo "| ${t^^} | $(fmt "$oo" %.0f) | $(fmt "$no" %.0f) | $(fmt "$ro" %.0f) | $(fmt "$oc" %.2f) | $(fmt "$nc" %.2f) | $(fmt "$rc" %.2f) | $(ratio "$nc" "$oc") | $(ratio "$nc" "$rc") | $(ratio "$no" "$oo") |"
    done
    echo
    echo "Every round (cluster, test, -P, ops/s, CPU µs/op):"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
} >"$OUT"
cp "$OUT" "$ROOT/bench/results/shard-ports-latest.md"
cat "$OUT"
