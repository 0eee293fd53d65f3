#!/usr/bin/env bash
# A 3-master slotd cluster against a 3-master redis-server cluster, side by
# side in one run, driven by `redis-benchmark --cluster`.
#
#   scripts/bench-cluster.sh
#
# Both clusters are created with `redis-cli --cluster create` (masters only),
# node timeout 5000 ms. Pinning as in the per-core benchmark: every server
# thread on SERVER_CPU, redis-benchmark on CLIENT_CPU. slotd runs
# `--shards SHARDS` per node (default 1: three nodes on one CPU already
# share it). For SET and GET at each pipeline depth in PIPELINES (50
# clients, KEYSPACE random keys, 64 B values) each cluster is measured once
# per round, ROUNDS rounds, the order reversed every other round; reported
# per cluster: the median ops/s and the servers' CPU time per operation
# (all threads of the three processes, /proc/PID/task/*/schedstat before
# and after), and slotd/redis ratios.
# Then the reshard: each cluster is filled with RESHARD_KEYS keys (key:0 ..,
# 32 B values, through redis-py's RedisCluster), and one third of the
# slots (5461) move to the third master with `redis-cli --cluster reshard
# --cluster-from all` (its default pipeline of 10 keys per MIGRATE) while
# a client of random GETs and SETs runs (bench/cluster/load.py traffic);
# reported: the reshard's seconds, keys moved, and the client's operations
# and errors. Bar of issue 12: at least twice as fast as redis-server.
# The markdown goes to bench/results/cluster-<date>.md and
# bench/results/cluster-latest.md.
#
# Environment:
#   SERVER_CPU=1 CLIENT_CPU=0  ROUNDS=3  N=200000  CLIENTS=50
#   KEYSPACE=100000  DATASIZE=64  PIPELINES="1 16"  TESTS="set get"
#   SHARDS=1  BASE_PORT=7600 (slotd 7600-7602, redis 7610-7612; bus +10000)
#   RESHARD_KEYS=1000000 (0 skips the reshard)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_init cluster

SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
ROUNDS="${ROUNDS:-3}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-64}"
PIPELINES="${PIPELINES:-1 16}"
TESTS="${TESTS:-set get}"
SHARDS="${SHARDS:-1}"
BASE_PORT="${BASE_PORT:-7600}"
RESHARD_KEYS="${RESHARD_KEYS:-1000000}"
SLOTD="$ROOT/target/release/slotd"
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || die "redis-server not found"

(cd "$ROOT" && cargo build --release -p node --bin slotd >&2)

# start_node KIND PORT: one cluster node, pinned to SERVER_CPU; echoes its pid.
start_node() {
    local kind="$1" port="$2" dir="$WORK/$1-$2" bin extra=()
    mkdir -p "$dir"
    if [ "$kind" = slotd ]; then
        bin="$SLOTD"
        extra=(--shards "$SHARDS")
    else
        bin="$REDIS"
    fi
    taskset -c "$SERVER_CPU" "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save "" --appendonly no --cluster-enabled yes --cluster-node-timeout 5000 \
        "${extra[@]}" </dev/null >"$dir/log" 2>&1 &
    echo $!
}

declare -A PIDS_OF
for kind in slotd redis; do
    base=$BASE_PORT
    [ "$kind" = redis ] && base=$((BASE_PORT + 10))
    pids=() ports=()
    for i in 0 1 2; do
        p=$((base + i))
        redis-cli -p "$p" ping >/dev/null 2>&1 && die "port $p is in use"
        pid="$(start_node "$kind" "$p")"
        PIDS+=("$pid")
        pids+=("$pid")
        ports+=("$p")
    done
    cluster_create "${ports[@]}"
    PIDS_OF[$kind]="${pids[*]}"
    log "$kind cluster up on ports ${ports[*]}"
done

cluster_cpu() { # kind -> ns of all its servers
    local total=0 pid
    for pid in ${PIDS_OF[$1]}; do
        total=$((total + $(cpu_ns "$pid")))
    done
    echo "$total"
}

# run KIND TEST PIPE -> "ops cpu_ns_per_op"
run() {
    local kind="$1" t="$2" pipe="$3" port=$BASE_PORT before after out ops
    [ "$kind" = redis ] && port=$((BASE_PORT + 10))
    before="$(cluster_cpu "$kind")"
    out="$(taskset -c "$CLIENT_CPU" timeout 300 redis-benchmark --cluster -h 127.0.0.1 -p "$port" \
        -t "$t" -n "$N" -c "$CLIENTS" -r "$KEYSPACE" -d "$DATASIZE" -P "$pipe" --csv -q 2>/dev/null |
        grep -i "^\"$t\"" | head -1)"
    after="$(cluster_cpu "$kind")"
    ops="$(echo "$out" | cut -d, -f2 | tr -d '"')"
    [ -n "$ops" ] || die "no result for $kind $t -P $pipe"
    echo "$ops $(awk -v c=$((after - before)) -v n="$N" 'BEGIN{printf "%.3f", c/n/1000}')"
}

declare -A OPS CPU
for r in $(seq 1 "$ROUNDS"); do
    order="slotd redis"
    [ $((r % 2)) = 0 ] && order="redis slotd"
    for t in $TESTS; do
        for pipe in $PIPELINES; do
            for kind in $order; do
                read -r ops cpu < <(run "$kind" "$t" "$pipe")
                log "round $r $kind $t -P $pipe: $ops ops/s, $cpu us/op"
                OPS[$kind-$t-$pipe]+="$ops "
                CPU[$kind-$t-$pipe]+="$cpu "
            done
        done
    done
done

# reshard KIND -> "seconds moved ops errors"
reshard() {
    local kind="$1" base=$BASE_PORT c start end out moved
    [ "$kind" = redis ] && base=$((BASE_PORT + 10))
    redis-cli -p "$base" flushall >/dev/null
    for i in 1 2; do redis-cli -p $((base + i)) flushall >/dev/null; done
    python3 "$ROOT/bench/cluster/load.py" fill "$base" "$RESHARD_KEYS" >/dev/null
    before="$(redis-cli -p $((base + 2)) dbsize)"
    rm -f "/tmp/slotd-bench-cluster-$base.stop"
    python3 "$ROOT/bench/cluster/load.py" traffic "$base" 600 "$RESHARD_KEYS" >"$WORK/traffic-$kind" &
    local tpid=$!
    sleep 1
    c="$(redis-cli -p $((base + 2)) cluster myid)"
    start="$(date +%s.%N)"
    timeout 1200 redis-cli --cluster reshard "127.0.0.1:$base" --cluster-from all --cluster-to "$c" \
        --cluster-slots 5461 --cluster-yes >"$WORK/reshard-$kind.log" 2>&1 ||
        { tail -5 "$WORK/reshard-$kind.log" >&2; die "reshard failed on $kind"; }
    end="$(date +%s.%N)"
    touch "/tmp/slotd-bench-cluster-$base.stop"
    wait "$tpid"
    rm -f "/tmp/slotd-bench-cluster-$base.stop"
    moved=$(($(redis-cli -p $((base + 2)) dbsize) - before))
    read -r ops errs <"$WORK/traffic-$kind"
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}') $moved $ops $errs"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/cluster-$DATE.md"
{
    echo "# Cluster: 3 slotd masters vs 3 redis-server masters, redis-benchmark --cluster"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`scripts/bench-cluster.sh\` (ROUNDS=$ROUNDS N=$N CLIENTS=$CLIENTS KEYSPACE=$KEYSPACE DATASIZE=$DATASIZE SHARDS=$SHARDS),"
    echo "servers pinned to CPU $SERVER_CPU, redis-benchmark to CPU $CLIENT_CPU; $(nproc) CPUs, $(uname -r)."
    echo "Medians over rounds; CPU is all threads of the three server processes."
    echo
    echo "| test | slotd ops/s | redis ops/s | ops ratio | slotd CPU µs/op | redis CPU µs/op | CPU ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in $TESTS; do
        for pipe in $PIPELINES; do
            so="$(echo "${OPS[slotd-$t-$pipe]}" | median)"
            ro="$(echo "${OPS[redis-$t-$pipe]}" | median)"
            sc="$(echo "${CPU[slotd-$t-$pipe]}" | median)"
            rc="$(echo "${CPU[redis-$t-$pipe]}" | median)"
            printf '| %s -P %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.2f |\n' \
                "${t^^}" "$pipe" "$so" "$ro" "$(awk -v a="$so" -v b="$ro" 'BEGIN{print a/b}')" \
                "$sc" "$rc" "$(awk -v a="$sc" -v b="$rc" 'BEGIN{print a/b}')"
        done
    done
    if [ "$RESHARD_KEYS" != 0 ]; then
        echo
        echo "Reshard of one third of the slots (5461) to the third master, $RESHARD_KEYS keys in the cluster, redis-cli --cluster reshard with its defaults, a random GET/SET client running:"
        echo
        echo "| cluster | seconds | keys moved | client ops during | client errors |"
        echo "|---|---:|---:|---:|---:|"
        for kind in slotd redis; do
            read -r secs moved ops errs < <(reshard "$kind")
            log "reshard $kind: $secs s, $moved keys moved, client $ops ops $errs errors"
            echo "| $kind | $secs | $moved | $ops | $errs |"
            eval "RS_$kind=$secs"
        done
        echo
        echo "slotd/redis time: $(awk -v a="$RS_slotd" -v b="$RS_redis" 'BEGIN{printf "%.2f", a/b}') (bar: <= 0.50)"
    fi
} >"$OUT"
cp "$OUT" "$ROOT/bench/results/cluster-latest.md"
cat "$OUT"
