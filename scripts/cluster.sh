#!/usr/bin/env bash
# A local slotd cluster for trying things out.
#
#   scripts/cluster.sh up       build slotd, start 6 nodes on
#                               127.0.0.1:7000-7005 and join them with
#                               `redis-cli --cluster create
#                               --cluster-replicas 1`: 3 masters, each
#                               with one replica
#   scripts/cluster.sh status   `redis-cli --cluster check` and each node's
#                               cluster_state
#   scripts/cluster.sh down     stop the nodes (their files stay)
#
# Environment:
#   CLUSTER_DIR   where each node keeps nodes.conf, logs and data
#                 (default: <repo>/target/cluster; node N in CLUSTER_DIR/N)
#   FIRST_PORT    first client port (default 7000; bus ports are +10000)
#   NODES         number of nodes (default 6)
#   REPLICAS      replicas per master (default 1; 0: every node a master)
#   SHARDS        shard cores per node (default: slotd's, one per CPU)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/target/cluster}"
FIRST_PORT="${FIRST_PORT:-7000}"
NODES="${NODES:-6}"
REPLICAS="${REPLICAS:-1}"
BIN="$ROOT/target/release/slotd"

ports() { seq "$FIRST_PORT" $((FIRST_PORT + NODES - 1)); }

up() {
    (cd "$ROOT" && cargo build --release -p node --bin slotd)
    local p addrs=()
    for p in $(ports); do
        mkdir -p "$CLUSTER_DIR/$p"
        if [ -f "$CLUSTER_DIR/$p/slotd.pid" ] && kill -0 "$(cat "$CLUSTER_DIR/$p/slotd.pid")" 2>/dev/null; then
            echo "node $p already runs"
        else
            local extra=()
            [ -n "${SHARDS:-}" ] && extra=(--shards "$SHARDS")
            nohup "$BIN" --port "$p" --bind 127.0.0.1 --dir "$CLUSTER_DIR/$p" \
                --cluster-enabled yes --cluster-config-file nodes.conf \
                --cluster-node-timeout 5000 --appendonly yes \
                --pidfile "$CLUSTER_DIR/$p/slotd.pid" --logfile "$CLUSTER_DIR/$p/slotd.log" \
                "${extra[@]}" >/dev/null 2>&1 &
        fi
        addrs+=("127.0.0.1:$p")
    done
    for p in $(ports); do
        for _ in $(seq 1 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    local known
    known="$(redis-cli -p "$FIRST_PORT" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')"
    if [ "$known" = "1" ]; then
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$REPLICAS" --cluster-yes
    else
        echo "the nodes already form a cluster ($known known nodes)"
    fi
    status
}

status() {
    redis-cli --cluster check "127.0.0.1:$FIRST_PORT" || true
    local p
    for p in $(ports); do
        printf '127.0.0.1:%s %s\n' "$p" \
            "$(redis-cli -p "$p" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state:' || echo 'not running')"
    done
}

down() {
    local p pid
    for p in $(ports); do
        pid="$(cat "$CLUSTER_DIR/$p/slotd.pid" 2>/dev/null || true)"
        stop_pid "$pid"
    done
    echo "stopped; files kept under $CLUSTER_DIR"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *)
        sed -n '2,17p' "$0"
        exit 2
        ;;
esac
