"""
Memory per idle keep-alive connection, and idle RSS.

Starts llmedge (everything on), reads its RSS, opens N client connections
that each make one request and then stay open and idle (HTTP/1.1
keep-alive), reads the RSS again, and reports the difference per
connection. The client side raises its own descriptor limit to the hard
limit; the daemon inherits it. The goal (issue 8): idle RSS <= 60 MiB, at
most 50 KiB per idle keep-alive connection with 10,000 open.

    .venv/bin/python bench/idle_connections.py [N]
"""

from __future__ import annotations

import resource
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from llmedge.testing import Daemon  # noqa: E402

KEY = "sk-bench"


def rss_kib(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0])


def main(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        raise SystemExit(f"the descriptor limit ({hard}) is below {n} connections")
    env = {"API_KEYS": KEY, "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_RPM": "100000000"}
    request = (b"GET /v1/models HTTP/1.1\r\nHost: bench\r\n"
               b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n")
    with Daemon(env=env) as daemon:
        pid = daemon.process.pid
        idle = rss_kib(pid)
        sockets = []
        for _ in range(n):
            s = socket.create_connection(daemon.host_port, timeout=30)
            s.sendall(request)
            sockets.append(s)
        for s in sockets:  # every response read: the connections are idle now
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += s.recv(65536)
        loaded = rss_kib(pid)
        for s in sockets:
            s.close()
    print(f"idle RSS: {idle / 1024:.1f} MiB")
    print(f"with {n} idle keep-alive connections: {loaded / 1024:.1f} MiB, "
          f"{(loaded - idle) / n:.1f} KiB per connection")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
