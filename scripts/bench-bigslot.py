#!/usr/bin/env python3
"""The longest a client waits during BGSAVE when one slot holds most keys.

    scripts/bench-bigslot.py [--keys 1000000] [--rounds 3]
                             [--slotd target/release/slotd] [--redis redis-server]

Loads KEYS keys under one hash tag ({t}k0, {t}k1, ...) into slotd (default
shards) and into redis-server, then, for each round, starts BGSAVE while
one client sends SETs one at a time (alternately to the big slot and to
other keys) and reports the BGSAVE's duration and the client's p50, p99
and longest wait. slotd walks a slot that big in parts
(`engine/src/snapshot.rs`); redis-server's wait is its fork.
Loopback only; every server it starts is stopped.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis


def start(cmd, port):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, client
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"bench-bigslot: {cmd[0]} did not answer on port {port}")


def round_(client, port, keys):
    waits, stop = [], threading.Event()

    def probe():
        c = redis.Redis(port=port)
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            c.set(b"{t}k%d" % (i * 7919 % keys), b"new")
            waits.append(time.perf_counter() - t)
            t = time.perf_counter()
            c.set(b"other%d" % i, b"x")
            waits.append(time.perf_counter() - t)
            i += 1

    th = threading.Thread(target=probe)
    th.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    client.bgsave()
    while client.info("persistence")["rdb_bgsave_in_progress"] == 1:
        time.sleep(0.005)
    job = time.perf_counter() - t0
    time.sleep(0.2)
    stop.set()
    th.join()
    if client.info("persistence")["rdb_last_bgsave_status"] != "ok":
        sys.exit("bench-bigslot: BGSAVE failed")
    waits.sort()
    ms = lambda s: s * 1000
    return ms(job), ms(waits[len(waits) // 2]), ms(waits[int(len(waits) * 0.99)]), ms(waits[-1])


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slotd", default=os.path.join(root, "target/release/slotd"))
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--port", type=int, default=7831)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-bigslot.")
    try:
        data = os.path.join(work, "data.resp")
        with open(data, "wb") as f:
            for i in range(a.keys):
                k = b"{t}k%d" % i
                f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$8\r\nvaluexyz\r\n" % (len(k), k))
        print(f"{a.keys} keys under one hash tag; BGSAVE while one client SETs; ms")
        print("server round bgsave_ms p50_ms p99_ms max_ms")
        for name, port in (("slotd", a.port), ("redis", a.port + 1)):
            d = os.path.join(work, name)
            os.makedirs(d)
            cmd = [a.slotd] if name == "slotd" else [a.redis]
            cmd += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d]
            proc, client = start(cmd, port)
            try:
                with open(data, "rb") as f:
                    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f,
                                   stdout=subprocess.DEVNULL, check=True)
                for r in range(1, a.rounds + 1):
                    job, p50, p99, top = round_(client, port, a.keys)
                    print(f"{name} {r} {job:.0f} {p50:.2f} {p99:.2f} {top:.1f}", flush=True)
            finally:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
