#!/usr/bin/env bash
# The one test command for slotd (README and .ci/run call exactly this).
#
#   scripts/test.sh
#
# Steps: the rooms check of node/src (scripts/check-rooms.sh, after its
# self-test), install redis-server/redis-tools if missing (Debian) and
# redis-py if missing (pip; the cluster tests use RedisCluster), cargo fmt
# check, clippy (-D warnings), release build of slotd, the whole workspace's
# tests in release mode (integration tests start target/release/slotd), and
# a smoke run of redis-benchmark's default suite against slotd on port 7399.
#
# Environment:
#   SLOTD_BIN   binary for the integration tests and the smoke check
#               (default: <repo>/target/release/slotd)
#   SMOKE_PORT  port for the smoke check (default 7399; never 6379)
#   SKIP_CARGO=1  skip fmt/clippy/build/test (only to validate this script)
#   TEST_TIMEOUT  seconds cargo test may take (default 2700)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

SMOKE_PORT="${SMOKE_PORT:-7399}"
SMOKE_REQUESTS="${SMOKE_REQUESTS:-100000}"
if [ "$SMOKE_PORT" = 6379 ]; then
    echo "refusing to use port 6379" >&2
    exit 2
fi

STARTED_PIDS=()
TMPDIR_TEST="$(mktemp -d "${TMPDIR:-/tmp}/slotd-test.XXXXXX")"
cleanup() {
    local rc=$?
    for pid in "${STARTED_PIDS[@]:-}"; do
        stop_pid "$pid"
    done
    rm -rf "$TMPDIR_TEST"
    if [ "$rc" -eq 0 ]; then
        echo "==> scripts/test.sh: all steps passed"
    else
        echo "==> scripts/test.sh: FAILED (exit $rc)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
    echo
    echo "==> [$(date +%H:%M:%S)] $*"
}

run() {
    echo "+ $*"
    "$@"
}

# --- 0. Rooms of node/: dependencies one way ---------------------------------
step "scripts/check-rooms.sh --self-test, then on node/src"
run "$ROOT/scripts/check-rooms.sh" --self-test
run "$ROOT/scripts/check-rooms.sh"

# --- 1. Debian packages ------------------------------------------------------
step "check redis-server / redis-cli / redis-benchmark"
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null ||
    ! command -v redis-benchmark >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then
            SUDO="sudo -n"
        else
            echo "redis packages missing and not root (no sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    run $SUDO apt-get update </dev/null
    run $SUDO apt-get install -y redis-server redis-tools </dev/null
    # The package starts the distro's service on 6379; stop it, tests never use it.
    step "stop the distro redis-server service started by apt"
    $SUDO systemctl stop redis-server </dev/null 2>/dev/null ||
        $SUDO service redis-server stop </dev/null 2>/dev/null || true
    for pidfile in /run/redis/redis-server.pid /var/run/redis/redis-server.pid; do
        if [ -f "$pidfile" ]; then
            $SUDO kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
else
    echo "already installed: $(redis-server --version)"
fi

# --- 1b. Python client for the cluster tests (redis-py's RedisCluster) -------
step "check redis-py (python3 -c 'import redis')"
if ! python3 -c 'import redis.cluster' 2>/dev/null; then
    run python3 -m pip install --quiet --disable-pip-version-check 'redis>=4.3,<9' </dev/null ||
        run python3 -m pip install --quiet --break-system-packages 'redis>=4.3,<9' </dev/null
fi
python3 -c 'import redis; print("redis-py", redis.__version__)'

# --- 2. Rust checks, build, tests --------------------------------------------
if [ "${SKIP_CARGO:-0}" != 1 ]; then
step "cargo fmt --all -- --check"
run cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
run cargo clippy --workspace --all-targets -- -D warnings </dev/null

step "cargo build --release -p node"
run cargo build --release -p node </dev/null

SLOTD_BIN="${SLOTD_BIN:-$ROOT/target/release/slotd}"
export SLOTD_BIN
if [ ! -x "$SLOTD_BIN" ]; then
    echo "slotd binary not found at $SLOTD_BIN after the build" >&2
    exit 1
fi

step "cargo test --release --workspace (SLOTD_BIN=$SLOTD_BIN)"
# Bounded: a test that hangs fails the run here, with the output so far,
# instead of using up CI's time.
run timeout -k 30 "${TEST_TIMEOUT:-2700}" cargo test --release --workspace </dev/null
else
    step "SKIP_CARGO=1: skipping fmt, clippy, build and tests"
    SLOTD_BIN="${SLOTD_BIN:-$ROOT/target/release/slotd}"
fi

# --- 3. Smoke check: redis-benchmark's default suite -------------------------
step "smoke: slotd --port $SMOKE_PORT --shards 2 + redis-benchmark -n $SMOKE_REQUESTS"
if redis-cli -h 127.0.0.1 -p "$SMOKE_PORT" ping >/dev/null 2>&1; then
    echo "something is already listening on 127.0.0.1:$SMOKE_PORT" >&2
    exit 1
fi
SMOKE_ARGS=(--port "$SMOKE_PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel notice)
case "$(basename "$SLOTD_BIN")" in
redis-server*) ;; # validation mode: stock redis has no --shards
*) SMOKE_ARGS+=(--shards 2) ;;
esac
SMOKE_LOG="$TMPDIR_TEST/slotd-smoke.log"
echo "+ $SLOTD_BIN ${SMOKE_ARGS[*]}"
"$SLOTD_BIN" "${SMOKE_ARGS[@]}" </dev/null >"$SMOKE_LOG" 2>&1 &
SMOKE_PID=$!
STARTED_PIDS+=("$SMOKE_PID")
ready=0
for _ in $(seq 1 100); do
    if ! kill -0 "$SMOKE_PID" 2>/dev/null; then
        break
    fi
    if grep -q "Ready to accept connections" "$SMOKE_LOG" &&
        [ "$(redis-cli -h 127.0.0.1 -p "$SMOKE_PORT" ping 2>/dev/null)" = PONG ]; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" -ne 1 ]; then
    echo "slotd did not become ready on port $SMOKE_PORT; log:" >&2
    cat "$SMOKE_LOG" >&2
    exit 1
fi

BENCH_OUT="$TMPDIR_TEST/redis-benchmark.out"
echo "+ redis-benchmark -h 127.0.0.1 -p $SMOKE_PORT -q -n $SMOKE_REQUESTS"
if ! timeout 900 redis-benchmark -h 127.0.0.1 -p "$SMOKE_PORT" -q -n "$SMOKE_REQUESTS" \
    </dev/null >"$BENCH_OUT" 2>&1; then
    echo "redis-benchmark failed or timed out:" >&2
    tr '\r' '\n' <"$BENCH_OUT" >&2
    echo "--- slotd log ---" >&2
    cat "$SMOKE_LOG" >&2
    exit 1
fi
# -q rewrites progress lines with \r; keep only the final line of each test.
FINAL="$TMPDIR_TEST/redis-benchmark.final"
tr '\r' '\n' <"$BENCH_OUT" | grep -E 'requests per second|[Ee]rr' >"$FINAL" || true
grep 'requests per second' "$FINAL" || true
fail=0
if grep -qiE 'error|err ' "$BENCH_OUT"; then
    echo "redis-benchmark reported errors:" >&2
    tr '\r' '\n' <"$BENCH_OUT" | grep -iE 'error|err ' | sort | uniq -c | head -20 >&2
    fail=1
fi
for t in PING_INLINE PING_MBULK SET GET INCR LPUSH RPUSH LPOP RPOP SADD HSET SPOP ZADD \
    ZPOPMIN LRANGE_100 LRANGE_300 LRANGE_500 LRANGE_600 MSET; do
    if ! grep -qE "^${t}( \([^)]*\))?: [0-9.]+ requests per second" "$FINAL"; then
        echo "missing requests-per-second line for $t" >&2
        fail=1
    fi
done
if ! kill -0 "$SMOKE_PID" 2>/dev/null; then
    echo "slotd exited during the smoke run; log:" >&2
    cat "$SMOKE_LOG" >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "--- full redis-benchmark output ---" >&2
    tr '\r' '\n' <"$BENCH_OUT" >&2
    exit 1
fi
echo "smoke check passed"
