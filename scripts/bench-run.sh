# The runner the load benchmarks share (sourced after the caller set its
# variables: SERVER_CPU CLIENT_CPU UNPINNED_SERVER_CPUS UNPINNED_CLIENT_CPUS
# BASE_PORT CLIENTS KEYSPACE DATASIZE BENCH_THREADS BENCH_TIMEOUT QUIET_IDLE
# QUIET_WAIT NOISE_MAX NOISE_RETRIES, after bench_init): setups added with
# add_setup, started with start_setup, measured with run_one, and the
# medians and ratios of the report.
# shellcheck shell=bash
# shellcheck disable=SC2034 # arrays and helpers are used by the callers

# Parallel arrays, one entry per setup.
S_NAME=() S_BIN=() S_ARGS=() S_PIN=() S_PORT=() S_PID=()
add_setup() { # name bin "args" pin(pinned|unpinned)
    local port=$((BASE_PORT + ${#S_NAME[@]}))
    [ "$port" != 6379 ] || die "refusing to use port 6379 (BASE_PORT=$BASE_PORT)"
    S_NAME+=("$1") S_BIN+=("$2") S_ARGS+=("$3") S_PIN+=("$4") S_PORT+=("$port") S_PID+=("")
}

idx_of() {
    local i
    for i in $(seq 0 $((NS - 1))); do
        if [ "${S_NAME[$i]}" = "$1" ]; then
            echo "$i"
            return
        fi
    done
    echo -1
}
# Prefix commands for the server and the client of a setup.
server_pin() {
    if [ "${S_PIN[$1]}" = pinned ]; then
        echo "taskset -c $SERVER_CPU"
    elif [ -n "$UNPINNED_SERVER_CPUS" ]; then
        echo "taskset -c $UNPINNED_SERVER_CPUS"
    fi
}
client_pin() {
    if [ "${S_PIN[$1]}" = pinned ]; then
        echo "taskset -c $CLIENT_CPU"
    elif [ -n "$UNPINNED_CLIENT_CPUS" ]; then
        echo "taskset -c $UNPINNED_CLIENT_CPUS"
    fi
}

# thread_affinities PID: "name:cpus name:cpus ..." of every thread
thread_affinities() {
    local t out=""
    for t in /proc/"$1"/task/*; do
        out+="$(cat "$t/comm" 2>/dev/null):$(taskset -pc "${t##*/}" 2>/dev/null | sed 's/.*: //') "
    done
    echo "${out% }"
}

AFFINITY=()
start_setup() { # index
    local i="$1" name="${S_NAME[$1]}" port="${S_PORT[$1]}" logf pid pin t a
    logf="$WORK/$name.log"
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        die "port $port is already in use"
    fi
    pin="$(server_pin "$i")"
    log "start $name: ${pin:+$pin }${S_BIN[$i]} --port $port ${S_ARGS[$i]}"
    # shellcheck disable=SC2086 # pin and args are word lists
    $pin "${S_BIN[$i]}" --port "$port" --bind 127.0.0.1 --save "" --appendonly no ${S_ARGS[$i]} \
        </dev/null >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    S_PID[i]="$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || {
            cat "$logf" >&2
            die "$name exited at start"
        }
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] || {
        cat "$logf" >&2
        die "$name did not answer PING on $port"
    }
    if [ "${S_PIN[$i]}" = pinned ]; then
        # Every thread (shard threads, redis's bio threads...), to be sure.
        for t in /proc/"$pid"/task/*; do
            taskset -pc "$SERVER_CPU" "${t##*/}" >/dev/null
        done
        for t in /proc/"$pid"/task/*; do
            a="$(taskset -pc "${t##*/}" | sed 's/.*: //')"
            [ "$a" = "$SERVER_CPU" ] || die "$name: thread ${t##*/} is on CPUs $a after pinning to $SERVER_CPU"
        done
    fi
    AFFINITY[i]="$(thread_affinities "$pid")"
    log "$name threads (name:CPUs): ${AFFINITY[$i]}"
}


# Host idle % over 0.5 s, from /proc/stat (idle + iowait over all).
idle_pct() {
    local a b
    a="$(awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat)"
    sleep 0.5
    b="$(awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat)"
    echo "$a $b" | awk '{ d = $3 - $1; if (d <= 0) print 100; else printf "%d\n", 100 * ($4 - $2) / d }'
}
wait_quiet() {
    local start=$SECONDS idle
    while :; do
        idle="$(idle_pct)"
        [ "$idle" -ge "$QUIET_IDLE" ] && return 0
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
            log "WARNING: host still only $idle% idle after ${QUIET_WAIT}s; running anyway"
            note_noise "busy-start $idle"
            return 0
        fi
        [ $((SECONDS - start)) -gt 0 ] || log "host only $idle% idle (something else is running); waiting up to ${QUIET_WAIT}s"
        sleep 1
    done
}

BENCH_EXTRA=()
[ -z "$BENCH_THREADS" ] || BENCH_EXTRA=(--threads "$BENCH_THREADS")

# host_busy_ns: CPU time (ns, all CPUs) spent in user, nice and system
# since boot (/proc/stat; irq, softirq, steal and idle left out).
CLK_TCK="$(getconf CLK_TCK)"
host_busy_ns() { awk -v hz="$CLK_TCK" '/^cpu / { printf "%.0f\n", ($2 + $3 + $4) * 1e9 / hz; exit }' /proc/stat; }
# kthreads_ns: CPU time (ns) of the kernel's own threads (children of
# kthreadd: kworkers, ksoftirqd, ...). With KTHREADS_IN_CPU=1 their time
# during a run counts as the server's: a direct write's completion and
# its cache flush run in a kworker, outside the server's threads.
KTHREADS_IN_CPU="${KTHREADS_IN_CPU:-0}"
kthreads_ns() {
    local total=0 p t
    [ "$KTHREADS_IN_CPU" = 1 ] || {
        echo 0
        return
    }
    for p in $(ps -o pid= --ppid 2); do
        read -r t _ 2>/dev/null </proc/"$p"/schedstat && total=$((total + t))
    done
    echo "$total"
}
# times_ns FILE: children's user+sys in ns from the output of bash's `times`.
times_ns() {
    awk 'NR == 2 { t = 0
        for (k = 1; k <= 2; k++) { v = $k; sub(/s$/, "", v); split(v, a, "m"); t += a[1] * 60 + a[2] }
        printf "%.0f\n", t * 1e9 }' "$1"
}
# other_pct HOST_NS SERVER_NS CLIENT_NS WALL_NS: CPU used by anything but
# the server and the client during a run, in % of one CPU.
other_pct() { awk -v h="$1" -v s="$2" -v c="$3" -v w="$4" 'BEGIN { o = (h - s - c) / w * 100; printf "%.0f\n", (o < 0 ? 0 : o) }'; }
note_noise() { echo "$*" >>"$WORK/noise"; }

# run_one INDEX TEST PIPELINE REQUESTS [warm] -> "rps p50 p99 cpu_us_per_op other%"
# A run during which other processes used more than NOISE_MAX % of a CPU
# is repeated, at most NOISE_RETRIES times (the last one is kept); not
# for warm-up runs.
run_one() {
    local i="$1" t="$2" p="$3" n="$4" retries="$NOISE_RETRIES" pid port pin before after out line h0 h1 w0 w1 cl other attempt
    pid="${S_PID[$i]}" port="${S_PORT[$i]}"
    pin="$(client_pin "$i")"
    kill -0 "$pid" 2>/dev/null || die "${S_NAME[$i]} (pid $pid) is not running"
    [ "${5:-}" != warm ] || retries=0
    for attempt in $(seq 0 "$retries"); do
        [ "$attempt" = 0 ] || wait_quiet
        h0="$(host_busy_ns)" w0="$(date +%s%N)" before=$(($(cpu_ns "$pid") + $(kthreads_ns)))
        # shellcheck disable=SC2086
        if ! out="$(
            timeout "$BENCH_TIMEOUT" $pin redis-benchmark -h 127.0.0.1 -p "$port" \
                -c "$CLIENTS" -n "$n" -P "$p" -r "$KEYSPACE" -d "$DATASIZE" -t "$t" \
                "${BENCH_EXTRA[@]}" --csv </dev/null 2>&1
            rc=$?
            times >"$WORK/times"
            exit "$rc"
        )"; then
            echo "$out" >&2
            die "redis-benchmark failed or timed out (${BENCH_TIMEOUT}s) against ${S_NAME[$i]} ($t -P $p)"
        fi
        after=$(($(cpu_ns "$pid") + $(kthreads_ns))) w1="$(date +%s%N)" h1="$(host_busy_ns)"
        cl="$(times_ns "$WORK/times")"
        other="$(other_pct $((h1 - h0)) $((after - before)) "$cl" $((w1 - w0)))"
        [ "$other" -gt "$NOISE_MAX" ] && [ "${5:-}" != warm ] || break
        if [ "$attempt" -lt "$retries" ]; then
            log "${S_NAME[$i]} $t -P $p: other processes used $other% of a CPU during the run; repeating it"
            note_noise "repeated ${S_NAME[$i]} $t $p $other"
        else
            log "WARNING: ${S_NAME[$i]} $t -P $p: other processes used $other% of a CPU; kept after $NOISE_RETRIES repeats"
            note_noise "kept ${S_NAME[$i]} $t $p $other"
        fi
    done
    line="$(echo "$out" | tr -d '\r' | grep -i "^\"${t}\"," | tail -1 || true)"
    if [ -z "$line" ] || echo "$out" | grep -qi 'error'; then
        echo "$out" >&2
        die "unexpected redis-benchmark output against ${S_NAME[$i]} ($t -P $p)"
    fi
    # "test","rps","avg","min","p50","p95","p99","max"
    echo "$line" | tr -d '"' | awk -F, -v d=$((after - before)) -v n="$n" -v o="$other" \
        '{ printf "%s %s %s %.4f %s\n", $2, $5, $7, d / 1e3 / n, o }'
}


# median FILE KEY-COLUMNS-MATCH VALUE-COLUMN: median of column c over the
# rows whose first fields equal the given ones.
med() { # file col match...
    local file="$1" col="$2"
    shift 2
    awk -v c="$col" -v m="$*" 'BEGIN { k = split(m, w, " ") }
        { ok = 1; for (j = 1; j <= k; j++) if ($j != w[j]) ok = 0
          if (ok && $c ~ /^[0-9.]+$/) print $c }' "$file" |
        sort -g | awk '{ a[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
m() { med "$RAW" "$4" "$1" "$2" "$3"; } # setup test pipeline col(5 rps 6 p50 7 p99 8 cpu)
# verdict RATIO OP LIMIT -> PASS/FAIL
verdict() { awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (r == "n/a") { print "n/a"; exit }
    ok = (op == "<=") ? (r + 0 <= l + 0) : (r + 0 >= l + 0); print ok ? "PASS" : "FAIL" }'; }
has() { [ "$(idx_of "$1")" -ge 0 ]; }
# per_round A B TEST PIPELINE COL OP LIMIT: "min–max, k/R": the per-round
# ratio A/B of column COL, its range and how many rounds meet OP LIMIT.
# PER_FILE=pipe file: rows "setup round seconds ..." (TEST/PIPELINE "-").
per_round() {
    local file="${PER_FILE:-$RAW}"
    awk -v A="$1" -v B="$2" -v t="$3" -v p="$4" -v c="$5" -v op="$6" -v l="$7" -v pipe="${PER_FILE:+1}" '
        { if (pipe) { s = $1; r = $2; ok = 1 } else { s = $1; r = $4; ok = ($2 == t && $3 == p) }
          if (!ok || $c !~ /^[0-9.]+$/) next
          if (s == A) a[r] = $c; else if (s == B) b[r] = $c }
        END { n = 0; k = 0
          for (r in a) if ((r in b) && b[r] + 0 > 0) {
              x = a[r] / b[r]; n++
              if (n == 1 || x < lo) lo = x; if (n == 1 || x > hi) hi = x
              if ((op == "<=" && x <= l + 0) || (op == ">=" && x >= l + 0)) k++ }
          if (n == 0) print "n/a"; else printf "%.2f–%.2f, %d/%d\n", lo, hi, k, n }' "$file"
}
