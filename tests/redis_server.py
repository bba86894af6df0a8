"""
A private C{redis-server} for the tests of the redis rate-limit backend:
on a free loopback port, in a temporary directory, persisting nothing, and
restartable on the same port (to test an outage and the recovery after it).
"""

from __future__ import annotations

import os
import queue
import shutil
import socket

import pytest

from llmedge.testing.process import ChildProcess


def require_redis_server() -> str:
    """
    The path of C{redis-server}; skip the calling test when it is missing,
    unless LLMEDGE_REQUIRE_TOOLS=1 (CI), where its absence fails.
    """
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("LLMEDGE_REQUIRE_TOOLS"):
            pytest.fail("redis-server is required here but not installed")
        pytest.skip("redis-server is not installed (make test installs it as root)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer(ChildProcess):
    """
    C{redis-server} in the foreground, ready once it accepts connections.
    """

    name = "redis-server"

    def __init__(self, directory: str, port: int | None = None) -> None:
        super().__init__(start_timeout=15.0)
        self.directory = directory
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.directory,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
        ]

    def start(self):
        """
        Start (or start again, on the same port, empty).
        """
        self._lines = queue.Queue()
        return super().start()

    def ready(self, line: str) -> bool:
        return "Ready to accept connections" in line
