#!/usr/bin/env bash
# The commands `redis-cli --cluster reshard` sends, one at a time, on slotd
# and on redis-server: server CPU and wall time per command.
#
#   scripts/bench-cluster-cmds.sh
#
# For each server kind, two cluster-enabled nodes that each own all 16384
# slots on their own (not one cluster: the commands are measured alone),
# every server thread pinned to SERVER_CPU, `redis-benchmark -c 1 -n N` on
# CLIENT_CPU (one command in flight, as redis-cli sends them):
#   PING                                   (the round trip's floor)
#   CLUSTER SETSLOT <slot> NODE <own id>   (the bus and a nodes.conf save)
#   CLUSTER GETKEYSINSLOT <slot> 10        (20 keys in the slot)
#   MIGRATE ... COPY REPLACE KEYS <10 keys> to the second node (both
#   nodes' CPU counted; COPY REPLACE so the keys stay for the next one)
# CPU is all threads of the servers involved (/proc/PID/task/*/schedstat
# before and after). Then a model of one slot of a reshard from the wall
# times: `redis-cli --cluster reshard` sends, per slot, two SETSLOTs
# (importing, migrating), a GETKEYSINSLOT and a MIGRATE per 10 keys (61
# keys a slot when 1M keys sit in 16384 slots: 7 of each), and three
# SETSLOT NODEs, one command at a time; the floor is the same count of
# PINGs plus one for each MIGRATE's own trip to the target. The markdown
# goes to bench/results/cluster-cmds-<date>.md
# and bench/results/cluster-cmds-latest.md.
#
# Environment: SERVER_CPU=1 CLIENT_CPU=0 N=20000 BASE_PORT=7650
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
bench_init cluster-cmds

SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
N="${N:-20000}"
BASE_PORT="${BASE_PORT:-7650}"
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || die "redis-server not found"
slotd_binary

# start KIND PORT: one node owning every slot; echoes its pid.
start() {
    local kind="$1" port="$2" dir="$WORK/$1-$2" bin="$REDIS" extra=()
    mkdir -p "$dir"
    if [ "$kind" = slotd ]; then
        bin="$SLOTD_BIN"
        extra=(--shards 1)
    fi
    redis-cli -p "$port" ping >/dev/null 2>&1 && die "port $port is in use"
    taskset -c "$SERVER_CPU" "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save "" --appendonly no --cluster-enabled yes "${extra[@]}" \
        </dev/null >"$dir/log" 2>&1 &
    echo $!
}

# per_op PIDS... -- ARGS...: "cpu_us wall_us" per command of ARGS.
per_op() {
    local pids=() before=0 after=0 t0 t1 p
    while [ "$1" != -- ]; do pids+=("$1"); shift; done
    shift
    for p in "${pids[@]}"; do before=$((before + $(cpu_ns "$p"))); done
    t0="$(date +%s%N)"
    taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$N" -c 1 "$@" >/dev/null
    t1="$(date +%s%N)"
    for p in "${pids[@]}"; do after=$((after + $(cpu_ns "$p"))); done
    awk -v c=$((after - before)) -v w=$((t1 - t0)) -v n="$N" \
        'BEGIN{printf "%.1f %.1f\n", c/n/1000, w/n/1000}'
}

declare -A CPU WALL
for kind in slotd redis; do
    base=$BASE_PORT
    [ "$kind" = redis ] && base=$((BASE_PORT + 2))
    a="$(start "$kind" "$base")"
    b="$(start "$kind" $((base + 1)))"
    PIDS+=("$a" "$b")
    for p in "$base" $((base + 1)); do
        for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
        redis-cli -p "$p" cluster addslotsrange 0 16383 >/dev/null
        for _ in $(seq 1 100); do
            redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break
            sleep 0.1
        done
    done
    PORT=$base
    keys=()
    for i in $(seq 1 20); do
        redis-cli -p "$base" set "{tag}:$i" "$(printf 'v%.0s' $(seq 1 32))" >/dev/null
        [ "$i" -le 10 ] && keys+=("{tag}:$i")
    done
    slot="$(redis-cli -p "$base" cluster keyslot '{tag}')"
    id="$(redis-cli -p "$base" cluster myid)"
    read -r c w < <(per_op "$a" -- ping)
    CPU[$kind-ping]=$c WALL[$kind-ping]=$w
    read -r c w < <(per_op "$a" -- cluster setslot "$slot" node "$id")
    CPU[$kind-setslot]=$c WALL[$kind-setslot]=$w
    read -r c w < <(per_op "$a" -- cluster getkeysinslot "$slot" 10)
    CPU[$kind-getkeys]=$c WALL[$kind-getkeys]=$w
    read -r c w < <(per_op "$a" "$b" -- migrate 127.0.0.1 $((base + 1)) "" 0 5000 COPY REPLACE KEYS "${keys[@]}")
    CPU[$kind-migrate]=$c WALL[$kind-migrate]=$w
    [ "$(redis-cli -p $((base + 1)) dbsize)" = 10 ] || die "$kind: MIGRATE did not copy the 10 keys"
    log "$kind: setslot ${CPU[$kind-setslot]} us, getkeysinslot ${CPU[$kind-getkeys]} us, migrate ${CPU[$kind-migrate]} us of CPU per command"
    stop_pid "$a"
    stop_pid "$b"
done

DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/cluster-cmds-$DATE.md"
{
    echo "# The reshard's commands one at a time: slotd vs redis-server"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`scripts/bench-cluster-cmds.sh\` (N=$N, \`redis-benchmark -c 1\`),"
    echo "servers pinned to CPU $SERVER_CPU, client to CPU $CLIENT_CPU; $(nproc) CPUs, $(uname -r); slotd --shards 1, $SLOTD_COMMIT."
    echo "CPU is all threads of the servers involved (MIGRATE: source and target)."
    echo
    echo "| command | slotd CPU µs | redis CPU µs | CPU ratio | slotd wall µs | redis wall µs |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in ping:"PING" setslot:"CLUSTER SETSLOT s NODE own-id" getkeys:"CLUSTER GETKEYSINSLOT s 10" migrate:"MIGRATE COPY REPLACE KEYS (10 keys of 32 B)"; do
        k="${t%%:*}" name="${t#*:}"
        printf '| %s | %s | %s | %.2f | %s | %s |\n' "$name" "${CPU[slotd-$k]}" "${CPU[redis-$k]}" \
            "$(awk -v a="${CPU[slotd-$k]}" -v b="${CPU[redis-$k]}" 'BEGIN{print a/b}')" \
            "${WALL[slotd-$k]}" "${WALL[redis-$k]}"
    done
    slot_ms() { # kind -> ms per slot of a reshard, from the wall times
        awk -v s="${WALL[$1-setslot]}" -v g="${WALL[$1-getkeys]}" -v m="${WALL[$1-migrate]}" \
            'BEGIN{printf "%.2f", (5 * s + 7 * (g + m)) / 1000}'
    }
    floor="$(awk -v p="${WALL[slotd-ping]}" 'BEGIN{printf "%.2f", (5 + 7 * 3) * p / 1000}')"
    echo
    echo "One slot of a reshard (5 SETSLOTs, 7 GETKEYSINSLOT + MIGRATE of 10 keys, one at a time): slotd $(slot_ms slotd) ms, redis-server $(slot_ms redis) ms (ratio $(awk -v a="$(slot_ms slotd)" -v b="$(slot_ms redis)" 'BEGIN{printf "%.2f", a/b}')); the same count of round trips at slotd's PING time (26, each MIGRATE counting two) takes $floor ms."
} >"$OUT"
cp "$OUT" "$ROOT/bench/results/cluster-cmds-latest.md"
cat "$OUT"
