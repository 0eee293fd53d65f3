#!/usr/bin/env python3
"""Watches a server while a load runs, for scripts/bench-persist.sh.

    job-watch.py PORT LOAD_PID JOB PSS_PID

From start until the load's process (LOAD_PID) exits (and the job ends), asks the server for
INFO persistence every 20 ms on one connection, in every run alike, so a
run with a job and a run without one carry the same observer. With JOB
(bgsave or bgrewriteaof; "-" for none), sends it 0.3 s in and times it
until INFO says it is over. With PSS_PID (not "-"), also reads the PSS of
that process and its children (redis-server's fork) at each poll, from
/proc/PID/smaps_rollup; that walks the processes' page tables, so the
script measures memory in a run of its own.

Prints "JOB_MS PEAK_KB" ("-" for what was not measured). One long-lived
process: the shell's polling (redis-cli, awk and pgrep forked every 20 ms)
took enough of the two CPUs to raise the load's p99 by itself.
"""

import os
import socket
import sys
import time

POLL = 0.02
DELAY = 0.3


def info(sock, buf):
    sock.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\npersistence\r\n")
    while b"\r\n" not in buf:
        buf += recv(sock)
    head, _, rest = bytes(buf).partition(b"\r\n")
    if not head.startswith(b"$"):
        sys.exit("job-watch: INFO answered %r" % head[:80])
    n = int(head[1:])
    while len(rest) < n + 2:
        rest += recv(sock)
    fields = {}
    for line in rest[:n].decode().split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            fields[k] = v
    return fields, bytearray(rest[n + 2:])


def recv(sock):
    b = sock.recv(65536)
    if not b:
        sys.exit("job-watch: the server closed the connection")
    return b


def command(sock, *args):
    req = b"*%d\r\n" % len(args)
    for a in args:
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(req)
    line = b""
    while not line.endswith(b"\r\n"):
        line += recv(sock)
    if line.startswith(b"-"):
        sys.exit("job-watch: %s" % line.decode().strip())


def pss_kb(pid):
    pids = [pid]
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def running(fields, job):
    if job == "bgsave":
        return fields.get("rdb_bgsave_in_progress") == "1"
    return "1" in (fields.get("aof_rewrite_in_progress"), fields.get("aof_rewrite_scheduled"))


def main():
    port, load_pid, job, pss_pid = sys.argv[1:5]
    load_pid = int(load_pid)
    job = None if job == "-" else job
    pss_pid = None if pss_pid == "-" else int(pss_pid)
    sock = socket.create_connection(("127.0.0.1", int(port)))
    buf = bytearray()
    start = time.monotonic()
    t0 = done = None
    peak = 0
    while os.path.exists("/proc/%d" % load_pid) or (t0 is not None and done is None):
        fields, buf = info(sock, buf)
        now = time.monotonic()
        if pss_pid is not None and (job is None or (t0 is not None and done is None)):
            peak = max(peak, pss_kb(pss_pid))
        if job and t0 is None and now - start >= DELAY:
            if running(fields, "bgsave") or running(fields, "bgrewriteaof"):
                sys.exit("job-watch: a job already runs")
            command(sock, job.upper().encode())
            t0 = now
        elif t0 is not None and done is None and not running(fields, job):
            done = now
        time.sleep(POLL)
    if job and t0 is None:
        sys.exit("job-watch: the load ended before %s was sent" % job)
    job_ms = "-" if done is None else "%d" % ((done - t0) * 1000)
    print(job_ms, peak if pss_pid is not None else "-")


if __name__ == "__main__":
    main()
