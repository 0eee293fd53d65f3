#!/usr/bin/env bash
# Automatic failover: time from a master's kill -9 to the first write on
# its replica, and acknowledged writes lost, slotd vs redis-server in the
# same run.
#
#   scripts/bench-failover.sh             RUNS kill-9 runs per system
#   SOAK=600 scripts/bench-failover.sh    no kill: SOAK seconds of load per
#                                         system, reports any failover
#
# Each run builds a fresh 3-master + 3-replica cluster (`redis-cli --cluster
# create --cluster-replicas 1`, cluster-node-timeout NODE_TIMEOUT, no
# persistence), waits until every node is ok and every replica's link is up,
# loads KEYS keys (redis-benchmark --cluster SET, 32 B values), then
# bench/failover/fobench.py runs the load (THREADS client threads doing INCR
# on COUNTERS counters of their own, each INCR sent once, acknowledged
# values recorded), kills master (run-1) mod 3 (masters by port) with
# SIGKILL, polls CLUSTER NODES and CLUSTER INFO of the live nodes every
# 25 ms, reads the failover lines of the live nodes' logs, waits for the
# first acknowledged write on the killed master's slots and cluster_state:ok
# everywhere, keeps the load 2 s more, stops it and reads every counter back
# (lost = acknowledged increments missing; before run 1 the checker's
# selftest plants 1 lost and 3 unexpected increments on other counters and
# must find them). Stages in ms after the kill:
# PFAIL, FAIL, election start, promotion, first write, cluster ok; median
# and worst per system. Then the cluster is torn down.
# The markdown goes to bench/results/failover-<date>.md and
# bench/results/failover-latest.md (soak: failover-soak-<date>.md and
# failover-soak-latest.md). Servers are not pinned (slotd with its default
# cores unless SHARDS is set). Log times are UTC (TZ=UTC for redis-server).
#
# Environment: RUNS=5 NODE_TIMEOUT=5000 KEYS=100000 THREADS=4 COUNTERS=2000
#   SOAK=0 (seconds; 0: kill runs) SYSTEMS="slotd redis" SHARDS= (slotd's default)
#   BASE_PORT=7700 (slotd 7700-7705, redis 7710-7715; bus +10000)
#   KEEP_LOGS=DIR: copy every run's node logs and JSON results there
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_init failover
export TZ=UTC

RUNS="${RUNS:-5}"
NODE_TIMEOUT="${NODE_TIMEOUT:-5000}"
KEYS="${KEYS:-100000}"
THREADS="${THREADS:-4}"
COUNTERS="${COUNTERS:-2000}"
SOAK="${SOAK:-0}"
SYSTEMS="${SYSTEMS:-slotd redis}"
SHARDS="${SHARDS:-}"
BASE_PORT="${BASE_PORT:-7700}"
CHECKER="$ROOT/bench/failover/fobench.py"
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || die "redis-server not found"
slotd_binary

# cluster_up KIND: starts 6 nodes of KIND, makes the cluster, waits until it
# is ok with every replica in sync, loads KEYS keys. Sets NODE_PIDS,
# NODE_PORTS, NODE_LOGS.
cluster_up() {
    local kind="$1" base=$BASE_PORT bin="$REDIS" extra=() i p dir pid addrs=()
    [ "$kind" = redis ] && base=$((BASE_PORT + 10))
    if [ "$kind" = slotd ]; then
        bin="$SLOTD_BIN"
        [ -n "$SHARDS" ] && extra=(--shards "$SHARDS")
    fi
    NODE_PIDS=() NODE_PORTS=() NODE_LOGS=()
    for i in 0 1 2 3 4 5; do
        p=$((base + i))
        dir="$WORK/$kind-$p"
        rm -rf "$dir"
        mkdir -p "$dir"
        redis-cli -p "$p" ping >/dev/null 2>&1 && die "port $p is in use"
        "$bin" --port "$p" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
            --cluster-enabled yes --cluster-node-timeout "$NODE_TIMEOUT" \
            --logfile "$dir/log" "${extra[@]}" </dev/null >"$dir/stdout" 2>&1 &
        pid=$!
        disown "$pid" # no "Killed" job notice after the kill -9
        PIDS+=("$pid")
        NODE_PIDS+=("$pid")
        NODE_PORTS+=("$p")
        NODE_LOGS+=("$dir/log")
        addrs+=("127.0.0.1:$p")
    done
    for p in "${NODE_PORTS[@]}"; do
        for _ in $(seq 1 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        redis-cli -p "$p" ping >/dev/null 2>&1 || die "$kind node $p did not start"
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$WORK/create-$kind.log" 2>&1 ||
        { cat "$WORK/create-$kind.log" >&2; die "cluster create failed for $kind"; }
    # Ready: every node ok and seeing 3 replicas, every replica's link up.
    local ok=0 synced=0
    for _ in $(seq 1 300); do
        ok=0 synced=0
        for p in "${NODE_PORTS[@]}"; do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
                [ "$(redis-cli -p "$p" cluster nodes 2>/dev/null | grep -c slave)" = 3 ] && ok=$((ok + 1))
            redis-cli -p "$p" info replication 2>/dev/null | grep -q 'master_link_status:up' && synced=$((synced + 1))
        done
        [ "$ok" = 6 ] && [ "$synced" = 3 ] && break
        sleep 0.2
    done
    [ "$ok" = 6 ] && [ "$synced" = 3 ] || die "$kind cluster not ready: $ok nodes ok with 3 replicas, $synced replicas in sync"
    [ "$KEYS" = 0 ] || redis-benchmark --cluster -h 127.0.0.1 -p "$base" -t set -n "$KEYS" -r "$KEYS" \
        -d 32 -c 20 -P 16 -q >/dev/null 2>&1 || die "$kind: loading $KEYS keys failed"
}

cluster_down() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        stop_pid "$pid"
    done
}

joined() { local IFS=,; echo "$*"; }

DATE="$(date -u +%Y-%m-%d)"
HOST="$(nproc) CPUs, $(uname -r); redis-server $("$REDIS" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'); slotd $SLOTD_COMMIT"
if [ "$SOAK" != 0 ]; then
    : >"$WORK/soak.jsonl"
    for kind in $SYSTEMS; do
        log "$kind: soak of $SOAK s"
        cluster_up "$kind"
        python3 "$CHECKER" soak --ports "$(joined "${NODE_PORTS[@]}")" --logs "$(joined "${NODE_LOGS[@]}")" \
            --secs "$SOAK" --threads "$THREADS" --counters "$COUNTERS" >"$WORK/soak-$kind.json" ||
            die "$kind: soak checker failed"
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["kind"]=sys.argv[2]; print(json.dumps(r))' \
            "$WORK/soak-$kind.json" "$kind" >>"$WORK/soak.jsonl"
        log "$kind: $(cut -c1-300 "$WORK/soak-$kind.json")"
        cluster_down
    done
    OUT="$ROOT/bench/results/failover-soak-$DATE.md"
    {
        echo "# Failover soak: no false failover under load, slotd vs redis-server"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`SOAK=$SOAK scripts/bench-failover.sh\` (NODE_TIMEOUT=$NODE_TIMEOUT KEYS=$KEYS THREADS=$THREADS COUNTERS=$COUNTERS);"
        echo "$HOST. 3 masters + 3 replicas per system, nothing killed; CLUSTER NODES of every node polled every 25 ms."
        echo
        python3 "$CHECKER" soak-report "$WORK/soak.jsonl"
    } >"$OUT"
    cp "$OUT" "$ROOT/bench/results/failover-soak-latest.md"
    cat "$OUT"
    exit 0
fi

for kind in $SYSTEMS; do
    : >"$WORK/$kind.jsonl"
    for run in $(seq 1 "$RUNS"); do
        cluster_up "$kind"
        if [ "$run" = 1 ]; then
            python3 "$CHECKER" selftest --ports "$(joined "${NODE_PORTS[@]}")" >"$WORK/selftest-$kind.json" ||
                { cat "$WORK/selftest-$kind.json" >&2; die "$kind: the checker's selftest failed"; }
            log "$kind: checker selftest passed (1 lost and 3 unexpected increments planted and found)"
        fi
        pids=()
        for i in "${!NODE_PORTS[@]}"; do pids+=("${NODE_PORTS[$i]}:${NODE_PIDS[$i]}"); done
        python3 "$CHECKER" run --ports "$(joined "${NODE_PORTS[@]}")" --pids "$(joined "${pids[@]}")" \
            --logs "$(joined "${NODE_LOGS[@]}")" --victim $((run - 1)) --threads "$THREADS" \
            --counters "$COUNTERS" >"$WORK/run.json" || die "$kind run $run: checker failed"
        cat "$WORK/run.json" >>"$WORK/$kind.jsonl"
        log "$kind run $run: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(" ".join(f"{k}={r[k]}" for k in ("victim_port","pfail","fail","election","promotion","first_write","cluster_ok","errors","acked","lost","unexpected")))' "$WORK/run.json")"
        mkdir -p "$WORK/keep"
        for i in "${!NODE_PORTS[@]}"; do cp "${NODE_LOGS[$i]}" "$WORK/keep/$kind-run$run-${NODE_PORTS[$i]}.log"; done
        cluster_down
    done
done

OUT="$ROOT/bench/results/failover-$DATE.md"
{
    echo "# Failover: kill -9 of a master under load, slotd vs redis-server"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`scripts/bench-failover.sh\` (RUNS=$RUNS NODE_TIMEOUT=$NODE_TIMEOUT KEYS=$KEYS THREADS=$THREADS COUNTERS=$COUNTERS);"
    echo "$HOST. Each run: a fresh 3 masters + 3 replicas cluster, KEYS keys, then $THREADS client threads INCR their own"
    echo "counters (each INCR sent once; own client, slot map from CLUSTER SLOTS refreshed after errors), master (run-1) mod 3"
    echo "killed with SIGKILL, load kept 2 s after the first write and cluster ok, every counter read back."
    echo "lost: acknowledged INCRs missing from the final value; unexpected: increments beyond acknowledged + unknown-outcome"
    echo "ones (connection lost after sending). errors: failed INCR attempts after the kill (each retried after 5 ms, the"
    echo "slot map refreshed at most every 20 ms per thread), so their count depends on that pace; the window is policy-free."
    echo
    for kind in $SYSTEMS; do
        python3 "$CHECKER" report "$kind" "$WORK/$kind.jsonl"
    done
    echo "Failover log lines of the live nodes (ms after the kill), run 1 of each system:"
    echo
    for kind in $SYSTEMS; do
        echo "$kind:"
        echo
        head -1 "$WORK/$kind.jsonl" | python3 -c 'import json,sys; [print("    " + l) for l in json.load(sys.stdin)["failover_log"]]'
        echo
    done
} >"$OUT"
cp "$OUT" "$ROOT/bench/results/failover-latest.md"
if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS"
    cp "$WORK"/*.jsonl "$WORK"/keep/*.log "$KEEP_LOGS"/
fi
cat "$OUT"
