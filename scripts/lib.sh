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
