#!/usr/bin/env bash
# Snapshots and rewrites under load, slotd (without fork) against
# redis-server (fork), side by side:
#   - BGSAVE of KEYS keys while a SET load runs: how long it takes, the
#     peak memory of the server (slotd: its PSS; redis-server: the PSS of
#     the parent plus the child, so pages they share count once; sampled
#     in a run of its own), and the load's p99 latency against the same
#     load without a snapshot (scripts/job-watch.py watches every run alike);
#   - BGREWRITEAOF of the same data under the same load: time, and p99
#     against the same load with the AOF on and no rewrite;
#   - start-up: the time from launch to the first PONG with the KEYS-key
#     dump.rdb, then with the append-only directory.
#
#   scripts/bench-persist.sh
#   KEYS=1000000 ROUNDS=2 scripts/bench-persist.sh
#
# Both servers run unpinned with their defaults (slotd: one shard per CPU),
# each in its own fresh `dir`, `--save ""`. The data: KEYS `SET
# key:<12 digits> <VALUE_BYTES random bytes>` through redis-cli --pipe. The
# load: redis-benchmark -t set -c 50 -r KEYS -d 64 for LOAD_SECONDS.
# Rounds alternate which server goes first; medians are reported. The
# markdown goes to bench/results/persist-<date>.md and persist-latest.md.
#
# Environment: KEYS=1000000 VALUE_BYTES=64 ROUNDS=2 LOAD_N=400000 (requests
#   of each load run) SLOTD_BIN SLOTD_COMMIT REDIS_BIN=redis-server
#   BASE_PORT=7491 OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

KEYS="${KEYS:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-64}"
ROUNDS="${ROUNDS:-2}"
LOAD_N="${LOAD_N:-400000}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7491}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

bench_init persist
for tool in redis-benchmark redis-cli python3 awk; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
slotd_binary

DATA="$WORK/data.resp"
log "generating $KEYS SET commands"
python3 - "$KEYS" "$VALUE_BYTES" "$DATA" <<'EOF'
import os, sys
n, vb, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = os.urandom(vb * n)
head = b"*3\r\n$3\r\nSET\r\n$16\r\n"
vlen = b"\r\n$%d\r\n" % vb
with open(path, "wb", buffering=1 << 20) as f:
    for i in range(n):
        f.write(head + b"key:%012d" % i + vlen + rnd[vb * i:vb * i + vb] + b"\r\n")
EOF

# pss_kb PID...: the summed PSS of the processes (kB), from smaps_rollup.
pss_kb() {
    local total=0 p v
    for p in "$@"; do
        v="$(awk '/^Pss:/ { print $2; exit }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
now_ms() { date +%s%3N; }
info_field() { redis-cli -p "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }

# start NAME PORT DIR [args...] -> sets SPID; the time to the first PONG
# in ms goes to STARTUP_MS.
start() {
    local name="$1" port="$2" dir="$3" bin t0
    shift 3
    if [ "$name" = slotd ]; then bin="$SLOTD_BIN"; else bin="$REDIS_BIN"; fi
    t0="$(now_ms)"
    "$bin" --port "$port" --bind 127.0.0.1 --save "" --dir "$dir" "$@" </dev/null >>"$WORK/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 1 6000); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
        kill -0 "$SPID" 2>/dev/null || {
            tail -20 "$WORK/$name.log" >&2
            die "$name exited at start"
        }
        sleep 0.01
    done
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || die "$name did not start"
    STARTUP_MS=$(($(now_ms) - t0))
}
stop() { # port pid
    redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
    stop_pid "$2"
}
# P99: the p99 of a SET load (ms). scripts/job-watch.py polls INFO
# persistence through the whole load in every run; with JOB=bgsave|
# bgrewriteaof it starts the job 0.3 s into the load and sets JOB_MS (its
# duration); with PSS=1 it also samples the server's PSS (redis-server:
# with its fork) while the job runs and sets PEAK_KB. The PSS run is apart:
# reading smaps_rollup walks the page tables, and its p99 is not the job's.
load_p99() { # port pid
    local port="$1" pid="$2" out watch
    redis-benchmark -p "$port" -t set -c 50 -n "$LOAD_N" -r "$KEYS" -d 64 --csv >"$WORK/load.csv" 2>&1 &
    local bpid=$!
    local pss="-"
    [ -z "${PSS:-}" ] || pss="$pid"
    watch="$(python3 "$ROOT/scripts/job-watch.py" "$port" "$bpid" "${JOB:--}" "$pss")" ||
        die "job-watch failed"
    read -r JOB_MS PEAK_KB <<<"$watch"
    wait "$bpid" || die "redis-benchmark failed"
    out="$(tr -d '"\r' <"$WORK/load.csv" | awk -F, '$1 == "SET" { print $7 }')"
    [ -n "$out" ] || die "no redis-benchmark result: $(cat "$WORK/load.csv")"
    P99="$out"
}

RAW="$WORK/raw.tsv" # server round metric value
: >"$RAW"
rec() { echo "$1 $2 $3 $4" >>"$RAW"; log "round $2 $1 $3 = $4"; }

round() { # name round port
    local name="$1" r="$2" port="$3" dir="$WORK/$1-$2" pid
    mkdir -p "$dir"
    start "$name" "$port" "$dir"
    pid="$SPID"
    redis-cli -p "$port" --pipe <"$DATA" >/dev/null
    [ "$(redis-cli -p "$port" dbsize)" = "$KEYS" ] || die "$name: DBSIZE is not $KEYS"
    rec "$name" "$r" idle_pss_kb "$(pss_kb "$pid")"
    JOB="" load_p99 "$port" "$pid"
    rec "$name" "$r" p99_ms_no_job "$P99"
    JOB=bgsave load_p99 "$port" "$pid"
    rec "$name" "$r" p99_ms_bgsave "$P99"
    rec "$name" "$r" bgsave_ms "$JOB_MS"
    PSS=1 JOB=bgsave load_p99 "$port" "$pid"
    rec "$name" "$r" bgsave_peak_pss_kb "$PEAK_KB"
    [ "$(info_field "$port" rdb_last_bgsave_status)" = ok ] || die "$name: BGSAVE failed"
    # The AOF: turning it on writes a base; then a rewrite under load.
    redis-cli -p "$port" config set appendonly yes >/dev/null
    for _ in $(seq 1 3000); do
        [ "$(info_field "$port" aof_rewrite_in_progress)" = 0 ] &&
            [ "$(info_field "$port" aof_rewrite_scheduled)" = 0 ] &&
            [ "$(info_field "$port" aof_enabled)" = 1 ] && break
        sleep 0.02
    done
    JOB="" load_p99 "$port" "$pid"
    rec "$name" "$r" p99_ms_aof_no_job "$P99"
    JOB=bgrewriteaof load_p99 "$port" "$pid"
    rec "$name" "$r" p99_ms_rewrite "$P99"
    rec "$name" "$r" rewrite_ms "$JOB_MS"
    [ "$(info_field "$port" aof_last_bgrewrite_status)" = ok ] || die "$name: rewrite failed"
    redis-cli -p "$port" save >/dev/null
    stop "$port" "$pid"
    # Start-up from the RDB, then from the append-only directory.
    start "$name" "$port" "$dir" --appendonly no
    rec "$name" "$r" load_rdb_ms "$STARTUP_MS"
    stop "$port" "$SPID"
    start "$name" "$port" "$dir" --appendonly yes
    rec "$name" "$r" load_aof_ms "$STARTUP_MS"
    [ "$(redis-cli -p "$port" dbsize)" -ge "$KEYS" ] || die "$name: keys lost across the AOF restart"
    stop "$port" "$SPID"
    rm -rf "$dir"
}

for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        round slotd "$r" "$BASE_PORT"
        round redis "$r" $((BASE_PORT + 1))
    else
        round redis "$r" $((BASE_PORT + 1))
        round slotd "$r" "$BASE_PORT"
    fi
done

med() { # server metric
    awk -v s="$1" -v m="$2" '$1 == s && $3 == m { print $4 }' "$RAW" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/persist-$DATE.md"
{
    echo "# Snapshots, rewrites and start-up: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN\` (commit $SLOTD_COMMIT), default shards ($(getconf _NPROCESSORS_ONLN) CPUs); redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version | head -1))"
    echo "- data: $KEYS keys of 16 B with $VALUE_BYTES B random values; load: \`redis-benchmark -t set -c 50 -n $LOAD_N -r $KEYS -d 64\`; $ROUNDS rounds, medians; files on $(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
    echo "- memory: PSS (/proc/PID/smaps_rollup), for redis-server the parent's plus the fork's, sampled every 20 ms during a BGSAVE under the same load, in a run of its own"
    echo "- every load run has the same observer, scripts/job-watch.py (INFO persistence every 20 ms on one connection), which starts the job 0.3 s in"
    echo
    echo "| metric | slotd | redis-server | slotd / redis |"
    echo "|---|---:|---:|---:|"
    for m in idle_pss_kb bgsave_peak_pss_kb bgsave_ms p99_ms_no_job p99_ms_bgsave rewrite_ms p99_ms_aof_no_job p99_ms_rewrite load_rdb_ms load_aof_ms; do
        a="$(med slotd "$m")" b="$(med redis "$m")"
        echo "| $m | $a | $b | $(ratio "$a" "$b") |"
    done
    echo
    for s in slotd redis; do
        a="$(med "$s" p99_ms_bgsave)" b="$(med "$s" p99_ms_rewrite)" c="$(med "$s" p99_ms_no_job)" d="$(med "$s" p99_ms_aof_no_job)"
        echo "- $s: p99 during BGSAVE / without: $(ratio "$a" "$c"); during the rewrite / without it (AOF on, everysec): $(ratio "$b" "$d") (bar for slotd: at most 2)"
    done
    echo
    echo '```'
    cat "$RAW"
    echo '```'
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/persist-latest.md"
cat "$REPORT"
log "report: $REPORT"
