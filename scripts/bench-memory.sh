#!/usr/bin/env bash
# Memory: bytes per key / element, slotd (1 and 2 shards) vs redis-server.
#
#   scripts/bench-memory.sh
#   ROWS="lists biglist" SHARDS=1 scripts/bench-memory.sh   # a subset
#
# Every row starts each server fresh (`--save "" --appendonly no`, loopback,
# `--maxclients 10000`), reads its RSS (VmRSS of the whole process,
# /proc/PID/status) after a PING, loads the row's data with
# `redis-cli --pipe` (RESP generated once per row by a python3 generator
# into a temp file and reused for every server; each run must report
# `errors: 0, replies: N` and leave the expected DBSIZE), waits 0.5 s and
# reads the RSS again; then stops the server. Growth / count is the figure.
#
# Rows (ROWS, default all, in this order):
#   strings   1M `SET key:<12 digits> <32 B>` (16 B keys)         B/key
#   hashes    100k hashes of 10 fields (8 B field, 8 B value)    B/hash
#   sets      100k sets of 10 members (member000..member009)     B/set
#   zsets     100k sorted sets of 10 members (score = index)     B/zset
#   lists     100k lists of 10 items (member000..member009)      B/list
#   bighash   1000 hashes of 1000 fields (8 B + 8 B)             B/field
#   bigset    1000 sets of 1000 members (member0000..0999)       B/member
#   bigzset   1000 sorted sets of 1000 members                   B/member
#   biglist   1000 lists of 1000 items (member0000..0999)        B/item
#   bigvalue  one SET of a BIGVALUE_MB MB value: RSS growth, and the
#             wall time of the redis-cli --pipe that sends it
#   conns     CONNS idle connections (a python3 client opens them all,
#             PINGs on each, holds them): RSS growth per connection
#   flush     the strings row, then FLUSHALL (and 1 s): RSS above the
#             server's own fresh-start RSS, absolute RSS shown too
#   ttl       1M `SET ... PX 1500`: seconds from the end of the load until
#             DBSIZE reaches 0 (polled every 0.1 s, at most TTL_WAIT s),
#             server CPU time meanwhile (cpu_ns of scripts/lib.sh: its
#             threads' schedstat run time, else utime+stime) and RSS after
#   evict     `--maxmemory EVICT_MB mb --maxmemory-policy allkeys-lru`, then
#             EVICT_TIMES x that written as SETs of 1000 B values to
#             distinct 16 B keys (streamed to redis-cli --pipe through a
#             FIFO), while a python3 client reads INFO memory's used_memory
#             every 10 ms on its own connection: the highest sample, and
#             after the load used_memory, RSS growth over the fresh start
#             and evicted_keys
# Bars (printed with each ratio): every per-item row <= 1.0x redis-server;
# strings <= 0.7x; 2 shards within 5% of 1 shard (ratio <= 1.05) on every
# per-item row; bigvalue RSS <= 1.2x and time <= 1.5x; flush residue
# <= 1.5x redis's; ttl time <= redis's with CPU <= redis's; evict: no
# used_memory sample above maxmemory, used_memory after >= 0.85x it, RSS
# growth <= 1.1x it.
# The markdown goes to stdout, bench/results/memory-<date>.md and
# bench/results/memory-latest.md.
#
# Environment:
#   ROWS (above)  SHARDS="1 2" (slotd --shards counts)
#   ROUNDS=1      runs per row and server (server order reversed every other
#                 round); the report shows medians, every run in the details
#   BIGVALUE_MB=200  CONNS=9000  TTL_WAIT=120  PIPE_TIMEOUT=600
#   EVICT_MB=1024  EVICT_TIMES=3
#   SLOTD_BIN     slotd binary (default: build and use target/release/slotd)
#   SLOTD_COMMIT  commit to print for SLOTD_BIN (default: HEAD of the git tree
#                 the binary lives in)
#   REDIS_BIN=redis-server  BASE_PORT=7301 (one port per server; 6379
#                 refused)  OUT_DIR=bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

ALL_ROWS="strings hashes sets zsets lists bighash bigset bigzset biglist bigvalue conns flush ttl evict"
ROWS="${ROWS:-$ALL_ROWS}"
SHARDS="${SHARDS:-1 2}"
BIGVALUE_MB="${BIGVALUE_MB:-200}"
CONNS="${CONNS:-9000}"
TTL_WAIT="${TTL_WAIT:-120}"
EVICT_MB="${EVICT_MB:-1024}"
EVICT_TIMES="${EVICT_TIMES:-3}"
PIPE_TIMEOUT="${PIPE_TIMEOUT:-600}"
ROUNDS="${ROUNDS:-1}"
REDIS_BIN="${REDIS_BIN:-redis-server}"
BASE_PORT="${BASE_PORT:-7301}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"

bench_init memory

for tool in redis-cli python3 awk timeout; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
command -v "$REDIS_BIN" >/dev/null || [ -x "$REDIS_BIN" ] || die "missing $REDIS_BIN"
for r in $ROWS; do
    case " $ALL_ROWS " in *" $r "*) ;; *) die "ROWS: unknown row $r (rows: $ALL_ROWS)" ;; esac
done
KS=()
for k in $SHARDS; do
    [[ "$k" =~ ^[1-9][0-9]*$ ]] || die "SHARDS: not a shard count: $k"
    KS+=("$k")
done
[ "${#KS[@]}" -gt 0 ] || die "SHARDS is empty"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS: not a count: $ROUNDS"

# Idle connections need descriptors: servers and the client inherit this.
NOFILE_NEED=$((CONNS + 200))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ " $ROWS " == *" conns "* ]] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NOFILE_NEED" ]; then
    die "conns row: needs ulimit -n >= $NOFILE_NEED (hard limit is $(ulimit -Hn))"
fi

slotd_binary

# ---------------------------------------------------------------- servers
SERVERS=(redis)
for k in "${KS[@]}"; do SERVERS+=("slotd-$k"); done
port_of() { # server -> port
    local i
    for i in "${!SERVERS[@]}"; do
        if [ "${SERVERS[$i]}" = "$1" ]; then
            echo $((BASE_PORT + i))
            return
        fi
    done
}
for s in "${SERVERS[@]}"; do
    [ "$(port_of "$s")" != 6379 ] || die "refusing to use port 6379 (BASE_PORT=$BASE_PORT)"
done

SPID=""
EXTRA_ARGS=() # per row
start_server() { # server
    local s="$1" port logf
    port="$(port_of "$s")"
    logf="$WORK/$s.log"
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
        die "port $port is already in use"
    fi
    local args=(--port "$port" --bind 127.0.0.1 --save "" --appendonly no --maxclients 10000
        ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"})
    if [ "$s" = redis ]; then
        "$REDIS_BIN" "${args[@]}" </dev/null >"$logf" 2>&1 &
    else
        "$SLOTD_BIN" "${args[@]}" --shards "${s#slotd-}" </dev/null >"$logf" 2>&1 &
    fi
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 1 100); do
        kill -0 "$SPID" 2>/dev/null || {
            cat "$logf" >&2
            die "$s exited at start"
        }
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    cat "$logf" >&2
    die "$s did not answer PING on $port"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

# pipe FILE EXPECTED_REPLIES: redis-cli --pipe into $PORT, checked; prints
# the wall time in seconds.
pipe() {
    local out rc t0 t1
    t0="$(date +%s%N)"
    rc=0
    out="$(timeout "$PIPE_TIMEOUT" redis-cli -h 127.0.0.1 -p "$PORT" --pipe <"$1" 2>&1)" || rc=$?
    t1="$(date +%s%N)"
    [ "$rc" != 124 ] || die "$SERVER: redis-cli --pipe timed out after ${PIPE_TIMEOUT}s"
    [ "$rc" = 0 ] || {
        echo "$out" >&2
        die "$SERVER: redis-cli --pipe failed (exit $rc)"
    }
    echo "$out" | tr -d '\r' | grep -q "^errors: 0, replies: $2\$" || {
        echo "$out" >&2
        die "$SERVER: redis-cli --pipe did not report errors: 0, replies: $2"
    }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
check_dbsize() {
    local n
    n="$(cli dbsize)"
    [ "$n" = "$1" ] || die "$SERVER: DBSIZE $n after the load, expected $1"
}

# ---------------------------------------------------------------- data
# gen MODE FILE [ARG]: RESP for a row (python3; written once per row).
gen() {
    python3 - "$@" <<'EOF'
import sys
mode, path = sys.argv[1], sys.argv[2]
arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def key(i):
    return b"key:%012d" % i  # 16 bytes

def value(i):
    return b"v%031d" % i  # 32 bytes

with open(path, "wb", buffering=1 << 20) as f:
    w = f.write
    if mode == "strings":
        for i in range(1_000_000):
            w(cmd(b"SET", key(i), value(i)))
    elif mode == "ttl":
        for i in range(1_000_000):
            w(cmd(b"SET", key(i), value(i), b"PX", b"1500"))
    elif mode in ("hashes", "bighash"):
        n, m = (100_000, 10) if mode == "hashes" else (1000, 1000)
        args = []
        for j in range(m):
            args += [b"fld%05d" % j, b"val%05d" % j]  # 8 B + 8 B
        for i in range(n):
            w(cmd(b"HSET", key(i), *args))
    elif mode in ("sets", "lists", "bigset", "biglist"):
        small = mode in ("sets", "lists")
        n, m = (100_000, 10) if small else (1000, 1000)
        fmt = b"member%03d" if small else b"member%04d"
        verb = b"SADD" if mode.endswith("set") or mode == "sets" else b"RPUSH"
        members = [fmt % j for j in range(m)]
        for i in range(n):
            w(cmd(verb, key(i), *members))
    elif mode in ("zsets", "bigzset"):
        n, m = (100_000, 10) if mode == "zsets" else (1000, 1000)
        fmt = b"member%03d" if mode == "zsets" else b"member%04d"
        args = []
        for j in range(m):
            args += [b"%d" % j, fmt % j]
        for i in range(n):
            w(cmd(b"ZADD", key(i), *args))
    elif mode == "evict":
        v = b"x" * 1000
        for i in range(arg):
            w(cmd(b"SET", key(i), v))
    elif mode == "bigvalue":
        size = arg * 1024 * 1024
        w(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
        chunk = b"x" * (1 << 20)
        for _ in range(arg):
            w(chunk)
        w(b"\r\n")
    else:
        sys.exit("unknown mode " + mode)
EOF
}

# Idle connections: opens N, PINGs on each, says "ready", holds them until
# killed (or 600 s).
CONN_PY='
import resource, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
for s in socks:
    s.sendall(b"PING\r\n")
for s in socks:
    buf = b""
    while not buf.endswith(b"\r\n"):
        d = s.recv(64)
        if not d:
            sys.exit("connection closed")
        buf += d
    if buf != b"+PONG\r\n":
        sys.exit("unexpected reply %r" % buf)
print("ready", flush=True)
time.sleep(600)
'

# used_memory sampled every 10 ms until the file argv[2] exists; prints
# the highest sample and the number of samples.
SAMPLE_PY='
import os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
top = n = 0
while not os.path.exists(stop):
    s.sendall(b"INFO memory\r\n")
    size = int(f.readline()[1:])
    for line in f.read(size + 2).split(b"\r\n"):
        if line.startswith(b"used_memory:"):
            top, n = max(top, int(line[12:])), n + 1
    time.sleep(0.01)
print(top, n)
'

# ---------------------------------------------------------------- rows
RAW="$WORK/raw" # lines: row server round field value
: >"$RAW"
put() { echo "$ROW $SERVER $ROUND $1 $2" >>"$RAW"; }

# Per-item rows: ROW -> "count unit expected-replies keys"
row_spec() {
    case "$1" in
    strings) echo "1000000 B/key 1000000 1000000" ;;
    hashes) echo "100000 B/hash 100000 100000" ;;
    sets) echo "100000 B/set 100000 100000" ;;
    zsets) echo "100000 B/zset 100000 100000" ;;
    lists) echo "100000 B/list 100000 100000" ;;
    bighash) echo "1000000 B/field 1000 1000" ;;
    bigset | bigzset) echo "1000000 B/member 1000 1000" ;;
    biglist) echo "1000000 B/item 1000 1000" ;;
    esac
}

run_row() {
    local before after secs n unit replies keys t0 cpu0 cpu1 elapsed cpid
    case "$ROW" in
    strings | hashes | sets | zsets | lists | bighash | bigset | bigzset | biglist)
        read -r n unit replies keys <<<"$(row_spec "$ROW")"
        before="$(rss_kb "$SPID")"
        secs="$(pipe "$WORK/$ROW.resp" "$replies")"
        check_dbsize "$keys"
        sleep 0.5
        after="$(rss_kb "$SPID")"
        put base_kb "$before"
        put rss_kb "$after"
        put load_s "$secs"
        put per "$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')"
        ;;
    bigvalue)
        before="$(rss_kb "$SPID")"
        secs="$(pipe "$WORK/bigvalue.resp" 1)"
        [ "$(cli strlen big)" = $((BIGVALUE_MB * 1024 * 1024)) ] || die "$SERVER: STRLEN big is not $BIGVALUE_MB MB"
        sleep 0.5
        after="$(rss_kb "$SPID")"
        put base_kb "$before"
        put rss_kb "$after"
        put growth_kb $((after - before))
        put set_s "$secs"
        ;;
    conns)
        before="$(rss_kb "$SPID")"
        python3 -c "$CONN_PY" "$PORT" "$CONNS" >"$WORK/conns.out" 2>&1 &
        cpid=$!
        PIDS+=("$cpid")
        for _ in $(seq 1 1200); do
            grep -q ready "$WORK/conns.out" && break
            kill -0 "$cpid" 2>/dev/null || {
                cat "$WORK/conns.out" >&2
                die "$SERVER: the connection client failed"
            }
            sleep 0.1
        done
        grep -q ready "$WORK/conns.out" || die "$SERVER: $CONNS connections not ready after 120 s"
        sleep 0.5
        after="$(rss_kb "$SPID")"
        local cc
        cc="$(cli info clients | tr -d '\r' | awk -F: '$1 == "connected_clients" { print $2 }')"
        [ "$cc" -ge "$CONNS" ] || die "$SERVER: connected_clients $cc, expected >= $CONNS"
        stop_pid "$cpid"
        put base_kb "$before"
        put rss_kb "$after"
        put per "$(awk -v a="$after" -v b="$before" -v n="$CONNS" 'BEGIN { printf "%.1f", (a - b) * 1024 / n }')"
        ;;
    flush)
        before="$(rss_kb "$SPID")"
        pipe "$WORK/strings.resp" 1000000 >/dev/null
        check_dbsize 1000000
        sleep 0.5
        put loaded_kb "$(rss_kb "$SPID")"
        [ "$(cli flushall)" = OK ] || die "$SERVER: FLUSHALL failed"
        check_dbsize 0
        sleep 1
        after="$(rss_kb "$SPID")"
        put base_kb "$before"
        put rss_kb "$after"
        put residue_kb $((after - before))
        ;;
    evict)
        before="$(rss_kb "$SPID")"
        n=$((EVICT_TIMES * EVICT_MB * 1024 * 1024 / 1000))
        rm -f "$WORK/sample.stop" "$WORK/evict.fifo"
        python3 -c "$SAMPLE_PY" "$PORT" "$WORK/sample.stop" >"$WORK/sample.out" 2>&1 &
        cpid=$!
        PIDS+=("$cpid")
        mkfifo "$WORK/evict.fifo"
        gen evict "$WORK/evict.fifo" "$n" &
        PIDS+=("$!")
        secs="$(pipe "$WORK/evict.fifo" "$n")"
        touch "$WORK/sample.stop"
        wait "$cpid" || {
            cat "$WORK/sample.out" >&2
            die "$SERVER: the used_memory sampler failed"
        }
        sleep 0.5
        after="$(rss_kb "$SPID")"
        local top samples
        read -r top samples <"$WORK/sample.out"
        put base_kb "$before"
        put rss_kb "$after"
        put growth_kb $((after - before))
        put load_s "$secs"
        put top_used "$top"
        put samples "$samples"
        put used "$(cli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')"
        put evicted "$(cli info stats | tr -d '\r' | awk -F: '$1 == "evicted_keys" { print $2 }')"
        ;;
    ttl)
        before="$(rss_kb "$SPID")"
        secs="$(pipe "$WORK/ttl.resp" 1000000)"
        t0="$(date +%s%N)"
        cpu0="$(cpu_ns "$SPID")"
        elapsed=""
        while :; do
            if [ "$(cli dbsize)" = 0 ]; then
                elapsed="$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
                break
            fi
            [ $(($(date +%s%N) - t0)) -lt $((TTL_WAIT * 1000000000)) ] || break
            sleep 0.1
        done
        cpu1="$(cpu_ns "$SPID")"
        after="$(rss_kb "$SPID")"
        put base_kb "$before"
        put rss_kb "$after"
        put load_s "$secs"
        put expire_s "${elapsed:-timeout}"
        put cpu_s "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
        ;;
    esac
}

for ROW in $ROWS; do
    case "$ROW" in
    flush) f=strings ;;
    *) f="$ROW" ;;
    esac
    EXTRA_ARGS=()
    if [ "$ROW" = evict ]; then
        EXTRA_ARGS=(--maxmemory "${EVICT_MB}mb" --maxmemory-policy allkeys-lru)
    fi
    if [ ! -s "$WORK/$f.resp" ] && [ "$ROW" != conns ] && [ "$ROW" != evict ]; then
        log "generate $f"
        gen "$f" "$WORK/$f.resp" "$BIGVALUE_MB"
    fi
    for ROUND in $(seq 1 "$ROUNDS"); do
        order=("${SERVERS[@]}")
        if [ $((ROUND % 2)) = 0 ]; then
            order=()
            for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[$i]}"); done
        fi
        for SERVER in "${order[@]}"; do
            PORT="$(port_of "$SERVER")"
            log "$ROW round $ROUND/$ROUNDS: $SERVER on port $PORT"
            start_server "$SERVER"
            run_row
            stop_pid "$SPID"
            log "$ROW $SERVER: $(awk -v r="$ROW" -v s="$SERVER" -v n="$ROUND" '$1 == r && $2 == s && $3 == n { printf "%s=%s ", $4, $5 }' "$RAW")"
        done
    done
    # the big files are not needed again
    case "$ROW" in bigvalue | ttl) rm -f "$WORK/$ROW.resp" ;; esac
done

# ---------------------------------------------------------------- report
# get ROW SERVER FIELD: the median over rounds (a non-numeric value, such
# as "timeout", when no round has a number)
get() {
    awk -v r="$1" -v s="$2" -v f="$3" '$1 == r && $2 == s && $4 == f {
        if ($5 ~ /^-?[0-9.]+$/) print $5; else other = $5 }
        END { if (other != "") print other > "/dev/stderr" }' "$RAW" 2>"$WORK/get.other" |
        sort -g | awk -v o="$(cat "$WORK/get.other" 2>/dev/null)" '{ a[NR] = $1 } END {
            if (NR == 0) { print (o == "" ? "n/a" : o); exit }
            if (NR % 2) { print a[(NR + 1) / 2]; exit }
            m = sprintf("%.4f", (a[NR / 2] + a[NR / 2 + 1]) / 2); sub(/\.?0+$/, "", m); print m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^-?[0-9.]+$/ || b !~ /^-?[0-9.]+$/ || b + 0 <= 0) print "n/a"; else printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v l="$2" 'BEGIN { if (r == "n/a") print "n/a"; else print (r + 0 <= l + 0) ? "PASS" : "FAIL" }'; }
mb() { awk -v k="$1" 'BEGIN { if (k !~ /^-?[0-9.]+$/) print "n/a"; else printf "%.1f", k / 1024 }'; }
has_row() { [[ " $ROWS " == *" $1 "* ]]; }

DATE="$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/memory-$DATE.md"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
SL=("${SERVERS[@]:1}")
{
    echo "# Memory: $(date '+%Y-%m-%d %H:%M')"
    echo
    echo "- slotd: \`$SLOTD_BIN\` (commit $SLOTD_COMMIT)"
    echo "- redis: \`$REDIS_BIN\` ($("$REDIS_BIN" --version 2>/dev/null | head -1))"
    echo "- every server fresh per row: \`--bind 127.0.0.1 --save \"\" --appendonly no --maxclients 10000\` (slotd \`--shards K\`); RSS = VmRSS of the whole process; data sent with \`redis-cli --pipe\` (checked: no errors, all replies, DBSIZE); RSS read 0.5 s after the pipe ends"
    echo "- host: $(getconf _NPROCESSORS_ONLN) CPUs, ${CPU_MODEL:-unknown CPU}, $(uname -sr)"
    echo "- command: \`ROWS=\"$ROWS\" SHARDS=\"$SHARDS\" ROUNDS=$ROUNDS scripts/bench-memory.sh\`; $ROUNDS round(s) (server order reversed every other round), medians shown"
    echo
    per_rows=""
    for r in strings hashes sets zsets lists bighash bigset bigzset biglist conns; do
        has_row "$r" && per_rows+=" $r"
    done
    if [ -n "$per_rows" ]; then
        echo "## Bytes per key / element (RSS growth / count)"
        echo
        hdr="| row | unit | redis |"
        sep="|---|---|---:|"
        for s in "${SL[@]}"; do
            hdr+=" $s | $s / redis |"
            sep+="---:|---:|"
        done
        [ "${#SL[@]}" -lt 2 ] || {
            hdr+=" ${SL[1]} / ${SL[0]} |"
            sep+="---:|"
        }
        echo "$hdr bar |"
        echo "$sep---|"
        for r in $per_rows; do
            case "$r" in
            conns) unit="B/connection ($CONNS idle)" ;;
            *) unit="$(row_spec "$r" | awk '{ print $2 }')" ;;
            esac
            lim=1.0
            [ "$r" != strings ] || lim=0.7
            base="$(get "$r" redis per)"
            line="| $r | $unit | $base |"
            for s in "${SL[@]}"; do
                v="$(get "$r" "$s" per)"
                rr="$(ratio "$v" "$base")"
                line+=" $v | $rr $(verdict "$rr" "$lim") |"
            done
            if [ "${#SL[@]}" -ge 2 ]; then
                rr="$(ratio "$(get "$r" "${SL[1]}" per)" "$(get "$r" "${SL[0]}" per)")"
                line+=" $rr $(verdict "$rr" 1.05) |"
                echo "$line vs redis <= $lim; ${SL[1]} / ${SL[0]} <= 1.05 |"
            else
                echo "$line vs redis <= $lim |"
            fi
        done
        echo
    fi
    if has_row bigvalue; then
        echo "## One SET of a $BIGVALUE_MB MB value"
        echo
        echo "| server | RSS before MB | RSS after MB | growth MB | growth / redis (<= 1.2) | SET s (pipe wall time) | time / redis (<= 1.5) |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for s in "${SERVERS[@]}"; do
            g="$(get bigvalue "$s" growth_kb)" t="$(get bigvalue "$s" set_s)"
            if [ "$s" = redis ]; then
                rg="" rt=""
            else
                rg="$(ratio "$g" "$(get bigvalue redis growth_kb)")"
                rt="$(ratio "$t" "$(get bigvalue redis set_s)")"
                rg="$rg $(verdict "$rg" 1.2)" rt="$rt $(verdict "$rt" 1.5)"
            fi
            echo "| $s | $(mb "$(get bigvalue "$s" base_kb)") | $(mb "$(get bigvalue "$s" rss_kb)") | $(mb "$g") | $rg | $t | $rt |"
        done
        echo
    fi
    if has_row flush; then
        echo "## After FLUSHALL of 1M strings"
        echo
        echo "| server | fresh RSS MB | RSS with 1M keys MB | RSS after FLUSHALL MB | residue MB (after - fresh) | residue / redis (<= 1.5) |"
        echo "|---|---:|---:|---:|---:|---:|"
        for s in "${SERVERS[@]}"; do
            res="$(get flush "$s" residue_kb)"
            rr=""
            if [ "$s" != redis ]; then
                rr="$(ratio "$res" "$(get flush redis residue_kb)")"
                rr="$rr $(verdict "$rr" 1.5)"
            fi
            echo "| $s | $(mb "$(get flush "$s" base_kb)") | $(mb "$(get flush "$s" loaded_kb)") | $(mb "$(get flush "$s" rss_kb)") | $(mb "$res") | $rr |"
        done
        echo
    fi
    if has_row ttl; then
        echo "## 1M keys with a 1.5 s TTL"
        echo
        echo "Seconds from the end of the load until DBSIZE is 0 (polled every 0.1 s, at most ${TTL_WAIT}s), server CPU meanwhile, RSS then."
        echo
        echo "| server | load s | expiry s | time / redis (<= 1) | CPU s | CPU / redis (<= 1) | RSS after MB | fresh RSS MB |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for s in "${SERVERS[@]}"; do
            e="$(get ttl "$s" expire_s)" c="$(get ttl "$s" cpu_s)"
            re="" rc=""
            if [ "$s" != redis ]; then
                re="$(ratio "$e" "$(get ttl redis expire_s)")"
                rc="$(ratio "$c" "$(get ttl redis cpu_s)")"
                re="$re $(verdict "$re" 1.0)" rc="$rc $(verdict "$rc" 1.0)"
            fi
            echo "| $s | $(get ttl "$s" load_s) | $e | $re | $c | $rc | $(mb "$(get ttl "$s" rss_kb)") | $(mb "$(get ttl "$s" base_kb)") |"
        done
        echo
    fi
    if has_row evict; then
        max=$((EVICT_MB * 1024 * 1024))
        echo "## Eviction: maxmemory ${EVICT_MB}mb, allkeys-lru, ${EVICT_TIMES}x that written"
        echo
        echo "1000 B values to distinct keys through redis-cli --pipe; used_memory sampled every 10 ms from another connection during the load; the rest read 0.5 s after it."
        echo
        echo "| server | load s | samples | highest used_memory - maxmemory, B (<= 0) | used_memory after / maxmemory (>= 0.85) | RSS growth / maxmemory (<= 1.1) | evicted keys |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for s in "${SERVERS[@]}"; do
            t="$(awk -v a="$(get evict "$s" top_used)" -v m="$max" 'BEGIN { printf "%d", a - m }')"
            u="$(awk -v a="$(get evict "$s" used)" -v m="$max" 'BEGIN { printf "%.3f", a / m }')"
            g="$(awk -v a="$(get evict "$s" growth_kb)" -v m="$max" 'BEGIN { printf "%.3f", a * 1024 / m }')"
            echo "| $s | $(get evict "$s" load_s) | $(get evict "$s" samples) | $t $(verdict "$t" 0) | $u $(awk -v u="$u" 'BEGIN { print (u >= 0.85) ? "PASS" : "FAIL" }') | $g $(verdict "$g" 1.1) | $(get evict "$s" evicted) |"
        done
        echo
    fi
    echo "<details><summary>All runs (row server round field value; kB for *_kb, bytes for per)</summary>"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
    echo
    echo "</details>"
} >"$REPORT"
cp "$REPORT" "$OUT_DIR/memory-latest.md"
cat "$REPORT"
log "wrote $REPORT and $OUT_DIR/memory-latest.md"
