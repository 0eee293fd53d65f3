#!/usr/bin/env python3
"""Captures Redis 7.0.15's command table for slotd's COMMAND INFO/DOCS.

    scripts/gen-command-meta.py [redis-server binary]

Starts the given redis-server (default: redis-server on PATH, which must be
7.0.15) on a free loopback port with no persistence, asks it in RESP3 for
`COMMAND INFO` (every command with its flags, ACL categories, tips, key
specs and subcommands) and `COMMAND DOCS` (summaries, arguments, history),
and writes the two replies, as the server sent them, one after the other
to engine/src/cmd/meta/redis-7.0.15.resp. engine/src/cmd/meta.rs serves
them. Run it again only to follow a newer Redis version.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "engine", "src", "cmd", "meta", "redis-7.0.15.resp")


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def need(self, n):
        while len(self.buf) - self.pos < n:
            d = self.sock.recv(1 << 20)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                s = self.buf[self.pos:i]
                self.pos = i + 2
                return s
            self.need(len(self.buf) - self.pos + 1)

    def value(self):
        """Skips one RESP3 value; returns its first line for checks."""
        head = self.line()
        t, rest = head[:1], head[1:]
        if t in b"$=!":
            n = int(rest)
            if n >= 0:
                self.need(n + 2)
                self.pos += n + 2
        elif t in b"*~>":
            for _ in range(max(int(rest), 0)):
                self.value()
        elif t == b"%":
            for _ in range(2 * int(rest)):
                self.value()
        elif t not in b"+-:_,#(":
            raise ValueError("unexpected RESP3 type %r" % head)
        return head

    def reply(self):
        start = self.pos
        head = self.value()
        if head.startswith(b"-"):
            raise RuntimeError(head.decode())
        return self.buf[start:self.pos]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "redis-server"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    if "v=7.0.15" not in version:
        sys.exit("need redis-server 7.0.15, got: " + version.strip())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    sock = socket.create_connection(("127.0.0.1", port))
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                sys.exit("redis-server did not start")
            r = Reader(sock)
            sock.sendall(encode("HELLO", "3"))
            r.reply()
            sock.sendall(encode("COMMAND", "INFO"))
            info = r.reply()
            sock.sendall(encode("COMMAND", "DOCS"))
            docs = r.reply()
            sock.close()
        finally:
            server.terminate()
            server.wait()
    with open(OUT, "wb") as f:
        f.write(info)
        f.write(docs)
    print("wrote %s (%d bytes)" % (OUT, len(info) + len(docs)))


if __name__ == "__main__":
    main()
