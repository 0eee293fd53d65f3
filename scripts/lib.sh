# Shared by the scripts in this folder (sourced, not run).
# shellcheck shell=bash

# stop_pid PID: stops a process this script started: SIGTERM, up to 5 s to
# exit, then SIGKILL. Nothing happens for an empty or finished PID.
stop_pid() {
    local pid="$1"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# cpu_ns PID: CPU time of the whole process (all threads), in ns: the sum
# of each thread's run time from /proc/PID/task/*/schedstat (the scheduler's
# exact figure); where schedstat is missing, utime+stime from /proc/PID/stat
# (CLK_TCK resolution).
cpu_ns() {
    local total=0 f t stat
    for f in /proc/"$1"/task/*/schedstat; do
        [ -r "$f" ] || continue
        read -r t _ <"$f" || continue
        total=$((total + t))
    done
    if [ "$total" -gt 0 ]; then
        echo "$total"
        return
    fi
    stat="$(cat "/proc/$1/stat")"
    # Fields after the ")" of comm: state is field 3; utime=14, stime=15.
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo $(((${12} + ${13}) * 1000000000 / $(getconf CLK_TCK)))
}

# bench_init NAME: the common frame of the bench scripts: a scratch
# directory WORK (removed at exit), the PIDS array of started servers
# (each stopped at exit with stop_pid), and log / die helpers.
bench_init() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/slotd-$1.XXXXXX")"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]:-}"; do
        stop_pid "$pid"
    done
    rm -rf "$WORK"
}

log() { echo "==> [$(date +%H:%M:%S)] $*" >&2; }

die() {
    echo "$*" >&2
    exit 1
}

# slotd_binary: sets SLOTD_BIN (building target/release/slotd unless it is
# given) and SLOTD_COMMIT (unless given: the commit of the binary's tree,
# marked when dirty) for the bench scripts' reports. Needs ROOT.
slotd_binary() {
    if [ -z "${SLOTD_BIN:-}" ]; then
        log "cargo build --release -p node"
        cargo build --release -p node </dev/null
        SLOTD_BIN="$ROOT/target/release/slotd"
    else
        log "using SLOTD_BIN=$SLOTD_BIN (no build)"
    fi
    [ -x "$SLOTD_BIN" ] || command -v "$SLOTD_BIN" >/dev/null || die "slotd binary not found: $SLOTD_BIN"
    if [ -z "${SLOTD_COMMIT:-}" ]; then
        local bindir
        bindir="$(dirname "$(command -v "$SLOTD_BIN" || echo "$SLOTD_BIN")")"
        if SLOTD_COMMIT="$(git -C "$bindir" rev-parse --short HEAD 2>/dev/null)"; then
            if git -C "$bindir" status --porcelain 2>/dev/null | grep -qv '^??'; then
                SLOTD_COMMIT="$SLOTD_COMMIT (dirty tree)"
            fi
            SLOTD_COMMIT="$SLOTD_COMMIT, HEAD of $(git -C "$bindir" rev-parse --show-toplevel)"
        else
            SLOTD_COMMIT="unknown"
        fi
    fi
}

# median SERVER TEST PIPELINE COLUMN: the median of COLUMN over the rows of
# the whitespace-separated table $RAW whose first three columns match
# (nan when none).
median() {
    awk -v s="$1" -v t="$2" -v p="$3" -v c="$4" '$1==s && $2==t && $3==p { print $c }' "$RAW" |
        sort -g | awk '{ a[NR] = $1 } END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B with two decimals, n/a when either is nan or B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# fmt X FORMAT: X printed with the awk FORMAT, n/a for nan.
fmt() { awk -v x="$1" -v f="$2" 'BEGIN { if (x == "nan") print "n/a"; else printf f, x }'; }

# cluster_create PORT...: waits for each node on 127.0.0.1:PORT to answer
# PONG, makes them one cluster of masters with `redis-cli --cluster create`
# (its output in $WORK/create-<first port>.log) and waits until every node
# says cluster_state:ok. Needs WORK.
cluster_create() {
    local p ok log="$WORK/create-$1.log" addrs=()
    for p in "$@"; do
        addrs+=("127.0.0.1:$p")
        for _ in $(seq 1 100); do
            redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break
            sleep 0.1
        done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-yes >"$log" 2>&1 ||
        { cat "$log" >&2; die "cluster create failed on ports $*"; }
    for _ in $(seq 1 150); do
        ok=0
        for p in "$@"; do
            redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1))
        done
        [ "$ok" = $# ] && return 0
        sleep 0.2
    done
    die "the cluster on ports $* did not reach cluster_state:ok"
}
