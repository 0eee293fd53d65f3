"""Cluster helpers for scripts/bench-cluster.sh (redis-py's RedisCluster).

  load.py fill PORT N        SET key:0 .. key:N-1 (32-byte values) through a
                             cluster pipeline; prints the keys the cluster holds
  load.py traffic PORT SECS  GET/SET of random key:i until SECS pass or the
                             file PORT.stop appears; prints "ops errors"
"""
import os
import random
import sys
import time

from redis.cluster import RedisCluster


def fill(port, n):
    rc = RedisCluster(host="127.0.0.1", port=port)
    pipe = rc.pipeline(transaction=False)
    value = "v" * 32
    for i in range(n):
        pipe.set(f"key:{i}", value)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    print(sum(node.redis_connection.dbsize() for node in rc.get_primaries()))


def traffic(port, secs, keys):
    rc = RedisCluster(host="127.0.0.1", port=port)
    stop = f"/tmp/slotd-bench-cluster-{port}.stop"
    ops = errors = 0
    end = time.time() + secs
    while time.time() < end and not os.path.exists(stop):
        k = f"key:{random.randrange(keys)}"
        try:
            if ops % 2:
                rc.get(k)
            else:
                rc.set(k, "w" * 32)
        except Exception:  # noqa: BLE001 - every client error counts
            errors += 1
        ops += 1
    print(ops, errors)


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(int(sys.argv[2]), int(sys.argv[3]))
    else:
        traffic(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
