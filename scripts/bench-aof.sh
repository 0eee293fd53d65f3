#!/usr/bin/env bash
# The append-only file's cost: SET throughput and server CPU per operation
# without AOF, with `appendfsync everysec` and with `appendfsync always`,
# for slotd --shards 1, slotd --shards 2 and redis-server, side by side.
#
#   scripts/bench-aof.sh
#   ROUNDS=3 N=200000 scripts/bench-aof.sh
#
# Every setup is a long-running server with its own fresh `dir` (the AOF
# files grow during the run; the automatic rewrite runs as configured by
# default, in both servers), all threads pinned to SERVER_CPU (slotd's
# io_uring workers follow their core's CPU through the ring's io-wq
# affinity; they are threads of the process, so their CPU time counts),
# redis-benchmark pinned to CLIENT_CPU. For SET at -P 1 and -P 16 (50
# clients, 100000 random keys, 64 B values) each setup runs once per round,
# the order reversed every other round; medians of ops/s, p50/p99 and CPU
# µs per operation (the server's threads' run time from
# /proc/PID/task/*/schedstat, plus the kernel's threads' during the run:
# under `always` slotd's direct writes complete in kworkers) are reported,
# with the bars:
#   slotd everysec >= 0.95x slotd without AOF in ops/s, <= 1.1x in CPU/op
#   slotd always   >= 0.85x slotd without AOF, >= 1.5x redis-server always
# for each shard count. The policy `everysec-norw` (everysec with
# `auto-aof-rewrite-percentage 0`) is a diagnostic, not a bar: beside
# `everysec` it tells the appends' own cost from the automatic rewrites',
# which slotd runs on its cores (they count in its CPU) and redis-server
# in a forked child (which does not: the child is another process). The
# report gives each setup's number of rewrites over the whole run. The
# markdown goes to bench/results/aof-<date>.md and
# bench/results/aof-latest.md.
#
# Environment: SHARDS="1 2" POLICIES="no everysec everysec-norw always" ROUNDS=3
#   N=200000 NP=8*N CLIENTS=50 KEYSPACE=100000 DATASIZE=64 PIPELINES="1 16"
#   SERVER_CPU=1 CLIENT_CPU=0 QUIET_IDLE=80 QUIET_WAIT=120 NOISE_MAX=25
#   NOISE_RETRIES=3 BENCH_TIMEOUT=900 SLOTD_BIN SLOTD_COMMIT
#   REDIS_BIN=redis-server BASE_PORT=7391 OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

SHARDS="${SHARDS:-1 2}"
POLICIES="${POLICIES:-no everysec everysec-norw always}"
ROUNDS="${ROUNDS:-3}"
N="${N:-200000}"
# Pipelined runs send NP requests (8x N by default): about as long as a
# -P 1 run, so that each takes its share of the automatic rewrites (which
# a 0.2 s run had or not by chance).
NP="${NP:-$((N * 8))}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
DATASIZE="${DATASIZE:-64}"
PIPELINES="${PIPELINES:-1 16}"
SERVER_CPU="${SERVER_CPU:-1}"
CLIENT_CPU="${CLIENT_CPU:-0}"
UNPINNED_SERVER_CPUS="" UNPINNED_CLIENT_CPUS=""
BENCH_THREADS=""
QUIET_IDLE="${QUIET_IDLE:-80}"
QUIET_WAIT="${QUIET_WAIT:-120}"
NOISE_MAX="${NOISE_MAX:-25}"
NOISE_RETRIES="${NOISE_RETRIES:-3}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-900}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7391}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

bench_init aof
for tool in redis-benchmark redis-cli taskset getconf timeout awk; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[ "$SERVER_CPU" != "$CLIENT_CPU" ] || die "SERVER_CPU and CLIENT_CPU must differ"
slotd_binary

# The kernel's threads count with the server (bench-run.sh: kthreads_ns).
KTHREADS_IN_CPU=1
# shellcheck source=scripts/bench-run.sh
. "$ROOT/scripts/bench-run.sh"
aof_args() { # policy dir
    mkdir -p "$2"
    if [ "$1" = no ]; then
        echo "--appendonly no --dir $2"
    elif [ "$1" = everysec-norw ]; then
        echo "--appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0 --dir $2"
    else
        echo "--appendonly yes --appendfsync $1 --dir $2"
    fi
}
for k in $SHARDS; do
    for p in $POLICIES; do
        add_setup "slotd-$k-$p" "$SLOTD_BIN" "--shards $k $(aof_args "$p" "$WORK/slotd-$k-$p")" pinned
    done
done
for p in $POLICIES; do
    add_setup "redis-$p" "$REDIS_BIN" "$(aof_args "$p" "$WORK/redis-$p")" pinned
done
NS=${#S_NAME[@]}
for i in $(seq 0 $((NS - 1))); do start_setup "$i"; done

RAW="$WORK/raw.tsv" # setup test pipeline round rps p50 p99 cpu_us other%
: >"$RAW"
: >"$WORK/noise"
log "warm-up (N/10 at -P 16 per setup)"
for i in $(seq 0 $((NS - 1))); do
    run_one "$i" set 16 $((N / 10 > 1000 ? N / 10 : 1000)) warm >/dev/null
done
FWD="$(seq 0 $((NS - 1)) | tr '\n' ' ')"
REV="$(seq $((NS - 1)) -1 0 | tr '\n' ' ')"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="$FWD"; else order="$REV"; fi
    for p in $PIPELINES; do
        for i in $order; do
            wait_quiet
            n="$N"
            [ "$p" -gt 1 ] && n="$NP"
            res="$(run_one "$i" set "$p" "$n")"
            log "round $r/$ROUNDS ${S_NAME[$i]} SET -P $p: ops/s p50 p99 cpu_us/op other% = $res"
            echo "${S_NAME[$i]} set $p $r $res" >>"$RAW"
        done
    done
done
# Each slotd setup's AOF must hold what it was sent: its INFO says so.
for i in $(seq 0 $((NS - 1))); do
    case "${S_NAME[$i]}" in slotd-*-no) continue ;; slotd-*) ;; *) continue ;; esac
    info="$(redis-cli -p "${S_PORT[$i]}" info persistence | tr -d '\r')"
    echo "$info" | grep -q '^aof_enabled:1$' || die "${S_NAME[$i]}: AOF not enabled"
    echo "$info" | grep -q '^aof_last_write_status:ok$' || die "${S_NAME[$i]}: AOF write errors"
done
# The automatic rewrites each setup ran over the whole run (warm-up too).
declare -A REWRITES
for i in $(seq 0 $((NS - 1))); do
    REWRITES[${S_NAME[$i]}]="$(redis-cli -p "${S_PORT[$i]}" info persistence | tr -d '\r' |
        awk -F: '$1 == "aof_rewrites" { print $2 }')"
done

DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/aof-$DATE.md"
{
    echo "# Append-only file: $DATE"
    echo
    echo "- slotd: \`$SLOTD_BIN\` (commit $SLOTD_COMMIT); redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version | head -1))"
    echo "- every server thread pinned to CPU $SERVER_CPU, redis-benchmark to CPU $CLIENT_CPU; \`redis-benchmark -t set -c $CLIENTS -n $N (-P 1), $NP (pipelined) -r $KEYSPACE -d $DATASIZE\`, $ROUNDS rounds, medians"
    echo "- host: $(getconf _NPROCESSORS_ONLN) CPUs, $(uname -sr); the AOF files on $(df -T "$WORK" | awk 'NR == 2 { print $2 }') ($WORK)"
    echo "- CPU/op: the server's CPU time per request (all its threads, io_uring workers included, plus the kernel threads' time during the run: kworkers complete slotd's direct writes and their cache flushes), µs"
    echo
    head="| setup |" rule="|---|"
    for p in $PIPELINES; do
        head+=" -P $p ops/s | -P $p p99 ms | -P $p CPU µs/op |" rule+="---:|---:|---:|"
    done
    echo "$head rewrites |"
    echo "$rule---:|"
    for i in $(seq 0 $((NS - 1))); do
        s="${S_NAME[$i]}"
        row="| $s |"
        for p in $PIPELINES; do
            row+=" $(fmt "$(m "$s" set "$p" 5)" %.0f) | $(fmt "$(m "$s" set "$p" 7)" %.3f) | $(fmt "$(m "$s" set "$p" 8)" %.3f) |"
        done
        echo "$row ${REWRITES[$s]:-?} |"
    done
    echo
    echo "rewrites: the setup's automatic AOF rewrites over the whole run (INFO's \`aof_rewrites\`); redis-server's run in a forked child, whose CPU time is not the server's."
    echo
    echo "## Bars"
    echo
    echo "| bar | -P | ratio of medians | per round (range, rounds meeting it) | limit | result |"
    echo "|---|---:|---:|---|---|---|"
    bar() { # label A B col op limit pipeline
        local r
        r="$(ratio "$(m "$2" set "$7" "$4")" "$(m "$3" set "$7" "$4")")"
        echo "| $1 | $7 | $r | $(per_round "$2" "$3" set "$7" "$4" "$5" "$6") | $5 $6 | $(verdict "$r" "$5" "$6") |"
    }
    for k in $SHARDS; do
        for p in $PIPELINES; do
            if has "slotd-$k-everysec" && has "slotd-$k-no"; then
                bar "slotd $k shard(s) everysec / no AOF, ops/s" "slotd-$k-everysec" "slotd-$k-no" 5 ">=" 0.95 "$p"
                bar "slotd $k shard(s) everysec / no AOF, CPU/op" "slotd-$k-everysec" "slotd-$k-no" 8 "<=" 1.1 "$p"
            fi
            if has "slotd-$k-everysec-norw" && has "slotd-$k-no"; then
                bar "(diagnostic) slotd $k shard(s) everysec without automatic rewrites / no AOF, ops/s" "slotd-$k-everysec-norw" "slotd-$k-no" 5 ">=" 0.95 "$p"
                bar "(diagnostic) slotd $k shard(s) everysec without automatic rewrites / no AOF, CPU/op" "slotd-$k-everysec-norw" "slotd-$k-no" 8 "<=" 1.1 "$p"
            fi
            if has "slotd-$k-always" && has "slotd-$k-no"; then
                bar "slotd $k shard(s) always / no AOF, ops/s" "slotd-$k-always" "slotd-$k-no" 5 ">=" 0.85 "$p"
            fi
            if has "slotd-$k-always" && has redis-always; then
                bar "slotd $k shard(s) always / redis always, ops/s" "slotd-$k-always" redis-always 5 ">=" 1.5 "$p"
            fi
        done
    done
    echo
    echo "## Runs"
    echo
    echo "setup, test, -P, round, ops/s, p50 ms, p99 ms, CPU µs/op, other CPU %:"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/aof-latest.md"
cat "$REPORT"
log "report: $REPORT"
