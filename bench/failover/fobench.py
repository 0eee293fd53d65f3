"""Failover timing and consistency checker for scripts/bench-failover.sh.

  fobench.py run  --ports P,P,.. --pids PORT:PID,.. --logs F,F,.. --victim I
                  [--threads 4 --counters 2000 --warm 3 --settle 2 --timeout 60]
      Starts the load (INCR on counters, see Load), kills the I-th master
      (masters sorted by port) with SIGKILL, polls CLUSTER NODES / CLUSTER
      INFO of every live node, waits for the first acknowledged write on the
      killed master's slots (on another node) and for cluster_state:ok
      everywhere, lets the load run --settle more seconds, stops it, reads
      every counter back. Prints one JSON object (stages in ms after the
      kill, lost writes, errors).
  fobench.py soak --ports P,.. --logs F,.. --secs N [--threads --counters]
      The same load for N seconds, nothing killed: reports any fail?/fail
      flag seen, epochs and roles before/after, failover log lines, and the
      consistency check. Prints one JSON object.
  fobench.py selftest --ports P,..    on a live cluster: tampers with two
      counters behind the load's back; the check must report 1 lost and 3
      unexpected (exit status 1 otherwise)
  fobench.py report KIND FILE.jsonl   markdown table of a system's runs
  fobench.py soak-report FILE.jsonl   markdown table of soak results

The client is our own, on plain sockets, so that nothing is retried behind
our back: each INCR is sent once. A counter has a single writer, so its
final value F must satisfy acked <= F <= acked + unknown, where acked is
the number of INCRs acknowledged and unknown the number whose connection
failed after the command was sent (they may or may not have been applied).
lost = acked - F when F < acked; unexpected = F - (acked + unknown) when
F is above. A refused connection, -MOVED, -ASK, -CLUSTERDOWN and -TRYAGAIN
mean the INCR was not applied. Slot map: CLUSTER SLOTS from any live node,
refreshed (at most every 20 ms per thread) after an error or a MOVED.
"""

import binascii
import datetime
import json
import os
import random
import re
import signal
import socket
import statistics
import sys
import threading
import time

REFRESH_S = 0.02
ERROR_PAUSE_S = 0.005
POLL_S = 0.025


def now_ms():
    return time.time() * 1000.0


class RespError(Exception):
    pass


class NotSent(Exception):
    """The command never left: the connection could not be made."""


class Conn:
    def __init__(self, port, timeout=2.0):
        self.port = port
        try:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError as e:
            raise NotSent(str(e)) from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"bad reply {line!r}")


def key_slot(key):
    k = key.encode()
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1 : e]
    return binascii.crc_hqx(k, 0) & 16383


def one_shot(port, *args, timeout=1.0):
    c = Conn(port, timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def parse_nodes(text):
    """CLUSTER NODES -> {id: {port, flags, master, epoch, slots}}."""
    nodes = {}
    for line in text.decode().splitlines() if isinstance(text, bytes) else text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        port = int(f[1].split("@")[0].rsplit(":", 1)[1] or 0)
        slots = []
        for r in f[8:]:
            if r.startswith("["):
                continue
            a, _, b = r.partition("-")
            slots.append((int(a), int(b or a)))
        nodes[f[0]] = {
            "port": port,
            "flags": f[2].split(","),
            "master": f[3],
            "epoch": int(f[6]),
            "slots": slots,
        }
    return nodes


class SlotMap:
    def __init__(self, ports):
        self.ports = list(ports)
        self.owner = [None] * 16384

    def refresh(self, avoid=()):
        ports = [p for p in self.ports if p not in avoid] or self.ports
        random.shuffle(ports)
        for p in ports:
            try:
                slots = one_shot(p, "CLUSTER", "SLOTS")
            except (OSError, NotSent, RespError, ConnectionError):
                continue
            owner = [None] * 16384
            for r in slots:
                for s in range(r[0], r[1] + 1):
                    owner[s] = r[2][1]
            self.owner = owner
            return True
        return False


class Counter:
    __slots__ = ("key", "slot", "acked", "unknown", "regressed")

    def __init__(self, key):
        self.key = key
        self.slot = key_slot(key)
        self.acked = 0
        self.unknown = 0
        self.regressed = 0


class Load:
    """Threads doing INCR round-robin over their own counters."""

    def __init__(self, ports, threads, counters, prefix="fo"):
        self.ports = ports
        self.stop = threading.Event()
        self.victim_slots = None  # set at the kill
        self.victim_port = None
        self.kill_ms = None
        self.first_write_ms = None
        self.lock = threading.Lock()
        self.errors = []  # (ms, kind, port)
        self.acks = 0
        self.regressions = []  # (ms, key, acked before, value, port)
        per = max(1, counters // threads)
        self.counters = [[Counter(f"{prefix}:{t}:{i}") for i in range(per)] for t in range(threads)]
        self.threads = [threading.Thread(target=self.work, args=(cs,), daemon=True) for cs in self.counters]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def error(self, kind, port=None):
        with self.lock:
            self.errors.append((now_ms(), kind, port))

    def work(self, counters):
        smap = SlotMap(self.ports)
        smap.refresh()
        last_refresh = time.time()
        conns = {}
        acks = 0
        while not self.stop.is_set():
            for c in counters:
                if self.stop.is_set():
                    break
                port = smap.owner[c.slot]
                ok = False
                for _hop in range(3):  # follow up to two MOVEDs
                    if port is None:
                        self.error("no owner")
                        break
                    conn = conns.get(port)
                    try:
                        if conn is None:
                            conn = conns[port] = Conn(port)
                        v = conn.call("INCR", c.key)
                    except NotSent:
                        conns.pop(port, None)
                        self.error("connect refused", port)
                        break
                    except (OSError, ConnectionError):
                        conns.pop(port, None)
                        if conn is not None:
                            conn.close()
                        c.unknown += 1
                        self.error("connection lost (outcome unknown)", port)
                        break
                    except RespError as e:
                        msg = str(e)
                        if msg.startswith("MOVED"):
                            port = int(msg.split()[2].rsplit(":", 1)[1])
                            smap.owner[c.slot] = port
                            continue
                        self.error(msg.split()[0], port)
                        break
                    # Acknowledged.
                    if v < c.acked + 1:
                        if not c.regressed:  # later replies repeat the same loss
                            with self.lock:
                                self.regressions.append((now_ms(), c.key, c.acked, v, port))
                        c.regressed += 1
                    c.acked += 1
                    acks += 1
                    ok = True
                    if (
                        self.victim_slots is not None
                        and port != self.victim_port
                        and self.victim_slots[c.slot]
                        and self.first_write_ms is None
                    ):
                        t = now_ms()
                        with self.lock:
                            if self.first_write_ms is None:
                                self.first_write_ms = t
                    break
                if not ok:
                    time.sleep(ERROR_PAUSE_S)
                    if time.time() - last_refresh >= REFRESH_S:
                        smap.refresh(avoid=(self.victim_port,))
                        last_refresh = time.time()
        for conn in conns.values():
            conn.close()
        with self.lock:
            self.acks += acks

    def check(self, ports):
        """Reads every counter back: {lost, lost_counters, unexpected, ...}."""
        smap = SlotMap(ports)
        smap.refresh()
        lost = lost_keys = unexpected = unexpected_keys = unknown = regressed = 0
        acked = unread = 0
        lost_detail = []
        for cs in self.counters:
            for c in cs:
                value = None
                port = smap.owner[c.slot]
                for _ in range(20):
                    try:
                        v = one_shot(port, "GET", c.key)
                        value = int(v) if v is not None else 0
                        break
                    except RespError as e:
                        if str(e).startswith("MOVED"):
                            port = int(str(e).split()[2].rsplit(":", 1)[1])
                            continue
                    except (OSError, NotSent, ConnectionError):
                        pass
                    time.sleep(0.1)
                    smap.refresh()
                    port = smap.owner[c.slot]
                if value is None:
                    unread += 1
                    continue
                acked += c.acked
                unknown += c.unknown
                regressed += 1 if c.regressed else 0
                if value < c.acked:
                    lost += c.acked - value
                    lost_keys += 1
                    lost_detail.append(f"{c.key}: acked {c.acked}, unknown {c.unknown}, holds {value}")
                elif value > c.acked + c.unknown:
                    unexpected += value - c.acked - c.unknown
                    unexpected_keys += 1
        return {
            "acked": acked,
            "lost": lost,
            "lost_counters": lost_keys,
            "unexpected": unexpected,
            "unexpected_counters": unexpected_keys,
            "unknown_outcome": unknown,
            "regressed_counters": regressed,
            "unread_counters": unread,
            "lost_detail": lost_detail[:10],
        }


LOG_RE = re.compile(r"^\d+:\w (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) . (.*)$")


def log_events(path, since_ms):
    """(ms, message) of each line at or after since_ms (log times are UTC)."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_RE.match(line.rstrip("\n"))
                if not m:
                    continue
                t = datetime.datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f")
                ms = t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000.0
                # Log times have ms resolution: a line of the kill's ms is kept.
                if ms >= since_ms - 1:
                    out.append((ms, m.group(2)))
    except OSError:
        pass
    return out


class Monitor(threading.Thread):
    """Polls CLUSTER NODES (and CLUSTER INFO) of the given ports."""

    def __init__(self, ports, watch_id=None, replica_id=None):
        super().__init__(daemon=True)
        self.ports = ports
        self.watch = watch_id
        self.replica = replica_id
        self.stop = threading.Event()
        self.first = {}  # event -> ms
        self.all_ok_ms = None
        self.state_ok = {}
        self.flags_seen = set()  # (port, node id, flag) of any fail?/fail
        self.polls = 0

    def mark(self, name):
        self.first.setdefault(name, now_ms())

    def run(self):
        conns = {}
        while not self.stop.is_set():
            t0 = time.time()
            for p in self.ports:
                try:
                    if p not in conns:
                        conns[p] = Conn(p, timeout=1.0)
                    nodes = parse_nodes(conns[p].call("CLUSTER", "NODES"))
                    state = conns[p].call("CLUSTER", "INFO").decode()
                except (OSError, NotSent, ConnectionError, RespError):
                    c = conns.pop(p, None)
                    if c:
                        c.close()
                    continue
                for nid, n in nodes.items():
                    for fl in ("fail?", "fail"):
                        if fl in n["flags"]:
                            self.flags_seen.add((p, nid, fl))
                w = nodes.get(self.watch) if self.watch else None
                if w:
                    if "fail?" in w["flags"]:
                        self.mark("pfail")
                    if "fail" in w["flags"]:
                        self.mark("fail")
                r = nodes.get(self.replica) if self.replica else None
                if r and "master" in r["flags"]:
                    self.mark("promoted")
                self.state_ok[p] = "cluster_state:ok" in state
            self.polls += 1
            if self.first.get("promoted") and all(self.state_ok.get(p) for p in self.ports):
                if self.all_ok_ms is None:
                    self.all_ok_ms = now_ms()
            self.stop.wait(max(0.0, POLL_S - (time.time() - t0)))
        for c in conns.values():
            c.close()


def topology(ports):
    for p in ports:
        try:
            return parse_nodes(one_shot(p, "CLUSTER", "NODES"))
        except (OSError, NotSent, ConnectionError, RespError):
            continue
    raise SystemExit("no node answers CLUSTER NODES")


def opt(args, name, default):
    if name in args:
        return args[args.index(name) + 1]
    return default


def first_line(events, pattern):
    for ms, msg in sorted(events):
        if pattern in msg:
            return ms, msg
    return None, None


def cmd_run(args):
    ports = [int(p) for p in opt(args, "--ports", "").split(",")]
    pids = dict(tuple(int(x) for x in pp.split(":")) for pp in opt(args, "--pids", "").split(","))
    logs = dict(zip(ports, opt(args, "--logs", "").split(",")))
    victim_i = int(opt(args, "--victim", "0"))
    threads = int(opt(args, "--threads", "4"))
    counters = int(opt(args, "--counters", "2000"))
    warm = float(opt(args, "--warm", "3"))
    settle = float(opt(args, "--settle", "2"))
    timeout = float(opt(args, "--timeout", "60"))

    nodes = topology(ports)
    masters = sorted((n["port"], nid) for nid, n in nodes.items() if "master" in n["flags"] and n["slots"])
    vport, vid = masters[victim_i % len(masters)]
    replicas = [nid for nid, n in nodes.items() if n["master"] == vid]
    if not replicas:
        raise SystemExit(f"master {vport} has no replica: {json.dumps(nodes)}")
    rid = replicas[0]
    victim_slots = [False] * 16384
    for a, b in nodes[vid]["slots"]:
        for s in range(a, b + 1):
            victim_slots[s] = True
    live = [p for p in ports if p != vport]
    epoch_before = max(n["epoch"] for n in nodes.values())

    load = Load(ports, threads, counters)
    load.start()
    time.sleep(warm)
    warm_acks = sum(c.acked for cs in load.counters for c in cs)
    warm_errors = len(load.errors)
    mon = Monitor(live, vid, rid)
    mon.start()
    time.sleep(0.2)
    load.victim_port = vport
    load.victim_slots = victim_slots
    kill_ms = now_ms()
    os.kill(pids[vport], signal.SIGKILL)
    load.kill_ms = kill_ms
    deadline = time.time() + timeout
    while time.time() < deadline:
        if load.first_write_ms is not None and mon.all_ok_ms is not None:
            break
        time.sleep(0.02)
    settled = load.first_write_ms is not None and mon.all_ok_ms is not None
    time.sleep(settle if settled else 0)
    load.finish()
    mon.stop.set()
    mon.join()
    end_ms = now_ms()

    events = []
    for p in live:
        events += [(ms, f"{p}: {msg}") for ms, msg in log_events(logs[p], kill_ms)]
    rel = lambda ms: None if ms is None else round(ms - kill_ms)  # noqa: E731
    fail_log, _ = first_line(events, f"Marking node {vid} as failing")
    delay_ms, delay_msg = first_line(events, "Start of election delayed for")
    start_ms, _ = first_line(events, "Starting a failover election for epoch")
    won_ms, _ = first_line(events, "Failover election won")
    fail_poll = mon.first.get("fail")
    fail_ms = min(x for x in (fail_log, fail_poll) if x is not None) if (fail_log or fail_poll) else None
    window = [e for e in load.errors if e[0] >= kill_ms]
    kinds = {}
    detail = {}
    for ms, k, port in window:
        kinds[k] = kinds.get(k, 0) + 1
        d = detail.setdefault(k, {"count": 0, "first": rel(ms), "ports": {}})
        d["count"] += 1
        d["last"] = rel(ms)
        d["ports"][str(port)] = d["ports"].get(str(port), 0) + 1
    after = topology(live)
    result = {
        "victim_port": vport,
        "victim_id": vid,
        "replica_port": nodes[rid]["port"],
        "settled": settled,
        "pfail": rel(mon.first.get("pfail")),
        "fail": rel(fail_ms),
        "fail_log": rel(fail_log),
        "fail_poll": rel(fail_poll),
        "delay_scheduled": rel(delay_ms),
        "delay_line": delay_msg,
        "election": rel(start_ms),
        "promotion": rel(won_ms),
        "promoted_poll": rel(mon.first.get("promoted")),
        "first_write": rel(load.first_write_ms),
        "cluster_ok": rel(mon.all_ok_ms),
        "load_ms_after_kill": round(end_ms - kill_ms),
        "warm_acks": warm_acks,
        "warm_errors": warm_errors,
        "errors": len(window),
        "error_kinds": kinds,
        "error_detail": detail,
        "error_window": [rel(window[0][0]), rel(window[-1][0])] if window else None,
        "epoch_before": epoch_before,
        "epoch_after": max(n["epoch"] for n in after.values()),
        "new_master_port": next((n["port"] for nid, n in after.items() if nid == rid and "master" in n["flags"]), None),
        "monitor_polls": mon.polls,
        "regressions": [f"{rel(ms)} ms {key} on {port}: INCR replied {v} after {a} acknowledged"
                        for ms, key, a, v, port in load.regressions[:10]],
        "failover_log": [f"{round(ms - kill_ms)} ms {msg}" for ms, msg in sorted(events)
                         if re.search(r"failing|FAIL|election|Failover|Cluster state|configEpoch|rank", msg)][:40],
    }
    result.update(load.check(live))
    print(json.dumps(result))


def cmd_soak(args):
    ports = [int(p) for p in opt(args, "--ports", "").split(",")]
    logs = dict(zip(ports, opt(args, "--logs", "").split(",")))
    secs = float(opt(args, "--secs", "60"))
    threads = int(opt(args, "--threads", "4"))
    counters = int(opt(args, "--counters", "2000"))
    before = topology(ports)
    start_ms = now_ms()
    load = Load(ports, threads, counters)
    mon = Monitor(ports)
    mon.start()
    load.start()
    time.sleep(secs)
    load.finish()
    mon.stop.set()
    mon.join()
    after = topology(ports)
    events = []
    for p in ports:
        events += [f"{p}: {msg}" for _, msg in log_events(logs[p], start_ms)
                   if re.search(r"failing|election|FAIL|possibly", msg)]
    result = {
        "secs": secs,
        "acks": sum(c.acked for cs in load.counters for c in cs),
        "errors": len(load.errors),
        "flags_seen": sorted(f"{p} saw {nid[:8]} {fl}" for p, nid, fl in mon.flags_seen),
        "epochs_before": {n["port"]: n["epoch"] for n in before.values()},
        "epochs_after": {n["port"]: n["epoch"] for n in after.values()},
        "roles_before": {n["port"]: "master" if "master" in n["flags"] else "replica" for n in before.values()},
        "roles_after": {n["port"]: "master" if "master" in n["flags"] else "replica" for n in after.values()},
        "failover_log": events[:40],
        "monitor_polls": mon.polls,
    }
    result["failover_happened"] = bool(
        result["epochs_before"] != result["epochs_after"]
        or result["roles_before"] != result["roles_after"]
        or any("fail" == f.split()[-1] for f in result["flags_seen"])
        or events
    )
    result.update(load.check(ports))
    print(json.dumps(result))


def cmd_selftest(args):
    """Checks that the check can fail: on a live cluster (nothing killed),
    takes one increment from one counter and adds 3 to another behind the
    load's back; the check must find exactly 1 lost and 3 unexpected."""
    ports = [int(p) for p in opt(args, "--ports", "").split(",")]
    load = Load(ports, 2, 200, prefix="selftest")
    load.start()
    time.sleep(1)
    load.finish()
    if load.errors:
        raise SystemExit(f"selftest: errors without a failover: {load.errors[:3]}")
    clean = load.check(ports)
    a, b = load.counters[0][0], load.counters[1][0]
    smap = SlotMap(ports)
    smap.refresh()
    one_shot(smap.owner[a.slot], "DECR", a.key)
    one_shot(smap.owner[b.slot], "INCRBY", b.key, 3)
    tampered = load.check(ports)
    ok = (clean["lost"], clean["unexpected"], tampered["lost"], tampered["unexpected"]) == (0, 0, 1, 3)
    print(json.dumps({"ok": ok, "clean": clean, "tampered": tampered}))
    sys.exit(0 if ok else 1)


STAGES = [
    ("pfail", "PFAIL"),
    ("fail", "FAIL"),
    ("election", "election start"),
    ("promotion", "promotion"),
    ("first_write", "first write"),
    ("cluster_ok", "cluster ok"),
]


def fmt(v):
    return "-" if v is None else str(v)


def cmd_report(args):
    kind, path = args[0], args[1]
    runs = [json.loads(line) for line in open(path) if line.strip()]
    print(f"### {kind}")
    print()
    print("ms after the kill -9. PFAIL: first `fail?` in any live node's CLUSTER NODES (polled every 25 ms);"
          " FAIL: first `Marking node .. as failing` log line or `fail` flag; election start / promotion:"
          " the replica's `Starting a failover election` / `Failover election won` log lines; first write:"
          " first INCR acknowledged by another node on the killed master's slots; cluster ok: every live node"
          " `cluster_state:ok` after the promotion was seen.")
    print()
    print("| run | killed | " + " | ".join(n for _, n in STAGES)
          + " | election delay | errors | error window ms | acked | lost | unexpected | unknown outcome |")
    print("|---|---|" + "---:|" * (len(STAGES) + 7))
    for i, r in enumerate(runs, 1):
        delay = "-"
        if r.get("delay_line"):
            m = re.search(r"delayed for (\d+) milliseconds \(rank #(\d+)", r["delay_line"])
            delay = f"{m.group(1)} (rank {m.group(2)})" if m else "-"
        win = r.get("error_window")
        print(f"| {i} | {r['victim_port']} | " + " | ".join(fmt(r.get(k)) for k, _ in STAGES)
              + f" | {delay} | {r['errors']} | {fmt(win and f'{win[0]}..{win[1]}')} | {r['acked']} | {r['lost']}"
              + f" | {r['unexpected']} | {r['unknown_outcome']} |")
    for label, f in (("median", statistics.median), ("worst", max)):
        cells = []
        for k, _ in STAGES:
            vals = [r[k] for r in runs if r.get(k) is not None]
            cells.append(fmt(round(f(vals)) if vals else None))
        errs = [r["errors"] for r in runs]
        lost = [r["lost"] for r in runs]
        unexp = [r["unexpected"] for r in runs]
        print(f"| **{label}** | | " + " | ".join(cells)
              + f" | | {round(f(errs))} | | | {round(f(lost))} | {round(f(unexp))} | |")
    missing = [i for i, r in enumerate(runs, 1) if not r["settled"]]
    if missing:
        print()
        print(f"Runs that did not settle (no first write or no cluster ok within the timeout): {missing}")
    print()
    kinds = {}
    for r in runs:
        for k, n in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
    print("Client errors by kind, all runs: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"))
    print()
    print("Errors per run and kind (count, first..last ms after the kill, the port asked (count)); lost writes;"
          " regressions (an INCR reply below the acknowledged count):")
    print()
    for i, r in enumerate(runs, 1):
        for k, d in sorted(r.get("error_detail", {}).items()):
            ports = ", ".join(f"{p} ({n})" for p, n in sorted(d["ports"].items()))
            print(f"- run {i}: {k}: {d['count']}, {d['first']}..{d['last']} ms, {ports}")
    for i, r in enumerate(runs, 1):
        for line in r["lost_detail"]:
            print(f"- run {i}: lost: {line}")
        seen = set()
        for line in r.get("regressions", []):
            key = line.split()[2]
            if key not in seen:  # the first reply of a counter that lost writes
                seen.add(key)
                print(f"- run {i}: regression: {line}")
    print()
    print(f"Errors before the kill (warm-up), all runs: {sum(r['warm_errors'] for r in runs)};"
          f" counters that regressed during a run (an ack lower than acked before): "
          f"{sum(r['regressed_counters'] for r in runs)}; counters not readable at the check: "
          f"{sum(r['unread_counters'] for r in runs)}.")
    print()


def cmd_soak_report(args):
    rows = [json.loads(line) for line in open(args[0]) if line.strip()]
    print("| system | seconds | INCRs acked | client errors | fail?/fail flags seen | epochs changed | roles changed"
          " | failover log lines | lost | unexpected | false failover |")
    print("|---|---:|---:|---:|---|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['secs']:.0f} | {r['acks']} | {r['errors']} | {', '.join(r['flags_seen']) or 'none'}"
              f" | {'yes' if r['epochs_before'] != r['epochs_after'] else 'no'}"
              f" | {'yes' if r['roles_before'] != r['roles_after'] else 'no'} | {len(r['failover_log'])}"
              f" | {r['lost']} | {r['unexpected']} | {'YES' if r['failover_happened'] else 'no'} |")
    for r in rows:
        if r["failover_log"]:
            print()
            print(f"{r['kind']} log lines: ")
            for line in r["failover_log"]:
                print(f"    {line}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    handlers = {
        "run": cmd_run,
        "soak": cmd_soak,
        "report": cmd_report,
        "soak-report": cmd_soak_report,
        "selftest": cmd_selftest,
    }
    if cmd not in handlers:
        print(__doc__)
        sys.exit(2)
    handlers[cmd](sys.argv[2:])
